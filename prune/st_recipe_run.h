/* Running a recipe: bound to a graph and a number of optimizer steps per epoch, called at
 * every optimizer step. Time is the fractional epoch step / steps_per_epoch.
 *
 * Per step the trainer does:
 *     st_recipe_run_step(run, g, step, lr, wd);   // before the optimizer step:
 *         sets lr[3] and wd[3] per parameter group, updates masks when an update is due
 *         (and applies them to the weights at once)
 *     ... forward, backward ...
 *     st_optim_step(...)  // masks gradients, updates, re-applies masks to weights
 * Masks live in the graph's mask arena (st_param_mask); "enabled" masks are the ones the
 * optimizer applies: a param no modifier prunes keeps an all-ones mask. */
#ifndef ST_RECIPE_RUN_H
#define ST_RECIPE_RUN_H

#include "st_graph.h"
#include "st_recipe.h"

typedef struct st_recipe_run st_recipe_run;

/* Resolves every modifier's parameter selectors against g. A selector that matches
 * nothing is ST_ERR_INPUT listing the closest parameter names; a pruning selector that
 * matches a param that is not prunable (a BN weight, a bias) is an error too. */
st_status st_recipe_bind(const st_recipe *r, const st_graph *g, int steps_per_epoch,
                         st_recipe_run **out, st_error *err);
void st_recipe_run_free(st_recipe_run *run);

/* Called before optimizer step `step` (0-based). lr and wd hold the current values per
 * group (the trainer's defaults before any modifier sets them) and are updated in place.
 * Returns 1 when masks changed at this step (a GMP update), else 0. */
int st_recipe_run_step(st_recipe_run *run, st_graph *g, int64_t step, float lr[3], float wd[3]);

/* Target sparsity of a pruning modifier's group at a fractional epoch (closed form). */
float st_gmp_target(const st_modifier *m, int group, float epoch);
/* LR a modifier prescribes at a fractional epoch (NaN when it is inactive then). */
float st_modifier_lr(const st_modifier *m, float epoch);

/* The number of epochs the run lasts. */
float st_recipe_run_epochs(const st_recipe_run *run);

/* For reports: the number of bound pruning targets and, for each, its parameter names,
 * the current target and the achieved sparsity. */
int st_recipe_run_num_targets(const st_recipe_run *run);
typedef struct st_prune_target_info {
    int param;          /* param id in the graph */
    int modifier;       /* index in the recipe */
    float target;       /* current target sparsity */
} st_prune_target_info;
st_prune_target_info st_recipe_run_target(const st_recipe_run *run, int i);

/* Modifier state for checkpoints: a small float vector (last update epochs, flags). The
 * masks themselves are saved with the graph. */
size_t st_recipe_run_state_size(const st_recipe_run *run);
void st_recipe_run_state_get(const st_recipe_run *run, float *out);
st_status st_recipe_run_state_set(st_recipe_run *run, const float *in, size_t n, st_error *err);

/* `recipe-check` plan: every modifier, matched params per group (with a graph), and the
 * table epoch -> LR per group and target sparsity per pruning group at each update. */
void st_recipe_print_plan(const st_recipe *r, const st_recipe_run *run, const st_graph *g,
                          int steps_per_epoch, FILE *f);

/* Masks for one tensor (exposed for tests and one-shot pruning). scores = |w|.
 * Unstructured: exactly k = round(s * n) zeros, the k smallest |w|, ties broken by index
 * (lower index pruned first). Block [1, m]: blocks of m consecutive weights along the
 * input-channel axis scored by mean |w|. N:M: in each group of m along the input axis,
 * the m - n smallest are pruned (2:4 keeps 2). */
void st_mask_unstructured(const float *w, size_t n, float sparsity, unsigned char *mask);
void st_mask_block(const float *w, const int64_t *shape, int ndim, int m, float sparsity,
                   unsigned char *mask);
void st_mask_nm(const float *w, const int64_t *shape, int ndim, int keep_n, int m,
                unsigned char *mask);

#endif
