/* Subcommands of the sparseengine front end (engine/main.c); each returns the exit code. */
#ifndef SE_CLI_H
#define SE_CLI_H

#include "sparseengine.h"

int se_cmd_bench(int argc, char **argv);
int se_cmd_run(int argc, char **argv);
int se_cmd_run_image(const char *model, const char *image, const se_options *o);

/* Compile options shared by bench, run and info --plan: --dense, -ncores/--threads N,
 * --schedule layers|columns and (allow_batch) -b/--batch N. Returns 1 when argument a
 * (value v, NULL at the end of argv) is one of them, 0 when it is not, -1 when its
 * value is missing or bad; *used: how many arguments it takes (1 or 2). */
int se_cli_compile_opt(const char *a, const char *v, se_options *o, int allow_batch, int *used);

/* Elements (batch included) of the compiled model's input (k < 0) or output k. */
size_t se_cli_numel(const se_compiled *c, int k);
/* outs[k] = room for output k, for every output: 0, or 4 when out of memory (the ones
 * allocated so far are set; free them as usual). */
int se_cli_alloc_outputs(const se_compiled *c, float **outs);
/* se_describe's text in a buffer of the size it needs (free it), or NULL out of memory. */
char *se_cli_describe(const se_compiled *c);

/* The exit code for a status of the se_* API (2 bad input, 1 otherwise). */
static inline int se_cli_exit(int rc) { return rc == 0 ? 0 : rc == 2 ? 2 : 1; }

#endif
