/* Saving and restoring a training run: parameters (and BN statistics) by name, masks,
 * optimizer state, position in the schedule, per-epoch history and the run's settings.
 * Built on the generic checkpoint container (st_ckpt.h). */
#ifndef ST_TRAIN_STATE_H
#define ST_TRAIN_STATE_H

#include "st_graph.h"
#include "st_optim.h"

typedef struct st_train_state {
    int epoch;          /* completed epochs */
    int epoch_step;     /* optimizer steps already done inside epoch `epoch` (0-based) */
    int64_t step;       /* global optimizer steps */
    double part[8];     /* partial-epoch sums (see trainer_internal.h ST_P_*) */
    float best_metric;
    float *history;     /* [history_rows][history_cols] */
    int history_rows, history_cols;
    float *recipe_state; /* the recipe run's modifier state (st_recipe_run_state_get) */
    size_t recipe_state_n;
    char *recipe_text;   /* on load: the recipe stored in the checkpoint, or NULL */
    char *recipe_args;   /* on load: its --recipe-args, or NULL */
    float lr_wd[6];      /* learning rate and weight decay per group at the save */
    int has_lr_wd;
    /* Architecture of a model imported from ONNX, saved as tensor "arch/onnx" so the
     * checkpoint alone rebuilds it (st_model_from_checkpoint). Owned; NULL for built-in
     * models. Not filled by st_train_state_load. */
    uint8_t *arch;
    size_t arch_len;
    /* EMA of all parameters and buffers ([param_floats], owned) or NULL; saved as
     * "ema/<name>" tensors and restored by st_train_state_load when present. */
    float *ema;
    int64_t ema_updates;
} st_train_state;

#define ST_META_MAX 32
typedef struct st_meta {
    int n;
    char key[ST_META_MAX][48];
    char value[ST_META_MAX][2048]; /* class-name lists need room */
} st_meta;

void st_meta_set(st_meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *st_meta_get(const st_meta *m, const char *key);

/* Writes atomically. `recipe` may be NULL. */
st_status st_train_state_save(const char *path, const st_graph *g, const st_optim *o,
                              const st_train_state *s, const st_meta *meta, const char *recipe,
                              st_error *err);
/* Reads a checkpoint into g (which must be the same model: names and shapes are checked),
 * o (may be NULL: weights only) and s (may be NULL); meta receives the stored settings.
 * The model name stored must equal `model` unless model is NULL. */
st_status st_train_state_load(const char *path, const char *model, st_graph *g, st_optim *o,
                              st_train_state *s, st_meta *meta, st_error *err);
void st_train_state_free(st_train_state *s);

#endif
