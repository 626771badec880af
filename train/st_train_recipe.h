/* Glue between the trainer and the recipe engine: where the recipe comes from (a file,
 * or the text stored in the checkpoint being resumed) and the per-epoch sparsity line. */
#ifndef ST_TRAIN_RECIPE_H
#define ST_TRAIN_RECIPE_H

#include <stdio.h>

#include "st_recipe_run.h"

/* path given: load it (with args); else stored_text (from a checkpoint) if not NULL;
 * else *loaded = 0 and nothing happens. */
st_status st_train_recipe_open(const char *path, const char *args, const char *stored_text,
                               const char *stored_args, int strict, FILE *log, st_recipe *out,
                               int *loaded, st_error *err);
/* "sparsity 0.812 overall; GMPruningModifier#2 0.900/0.900 (target/achieved), ..." */
void st_train_recipe_sparsity_line(const st_recipe *r, const st_recipe_run *run,
                                   const st_graph *g, char *buf, size_t cap);

#endif
