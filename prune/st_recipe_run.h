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
 * matches a param that is not prunable (a BN weight, a bias) is an error too.
 * All problems of the recipe are reported in one message. "__ALL__" on a pruning modifier
 * means every prunable param (as in SparseML); "re:PATTERN" is Python re.match run on
 * POSIX ERE (see select.c for the accepted dialect); a pattern's non-prunable matches are
 * skipped. A param may be pruned by one modifier only (else an error naming both).
 * g may be NULL: the run then has no pruning targets (schedule and LR only, for plans). */
st_status st_recipe_bind(const st_recipe *r, const st_graph *g, int steps_per_epoch,
                         st_recipe_run **out, st_error *err);
void st_recipe_run_free(st_recipe_run *run);

/* Called before optimizer step `step` (0-based). lr and wd hold the current values per
 * group (the trainer's defaults before any modifier sets them) and are updated in place
 * (either may be NULL). Returns 1 when masks changed at this step (a GMP update or a
 * release that changed at least one mask entry), else 0.
 * LR and weight decay are a pure function of the step (no state): per group, the value
 * last written by an LR modifier; when two write at the same step, the one listed later
 * in the recipe wins. A group no modifier has written yet keeps the caller's value. */
int st_recipe_run_step(st_recipe_run *run, st_graph *g, int64_t step, float lr[3], float wd[3]);

/* Target sparsity of a pruning modifier's group at a fractional epoch (closed form).
 * Uses m->init_sparsity (also with __FROM_PARAM__); start -1 is 0; end -1 (the run's end,
 * unknown without a run) keeps the target at init. NaN for a bad group. */
float st_gmp_target(const st_modifier *m, int group, float epoch);
/* LR a modifier prescribes at a fractional epoch (NaN when it is inactive then, or it is
 * not an LR modifier). SetLearningRate: from start on. Functions and schedulers: for
 * start <= epoch < end (end -1: no end). */
float st_modifier_lr(const st_modifier *m, float epoch);

/* The number of epochs the run lasts. */
float st_recipe_run_epochs(const st_recipe_run *run);
/* The run's optimizer steps: the first step whose epoch is >= the run's end (steps
 * 0 .. total - 1 are taken). */
int64_t st_recipe_run_total_steps(const st_recipe_run *run);
/* Call once after the last optimizer step (same as st_recipe_run_step at the total step
 * without lr/wd): a pruning modifier whose end_epoch is the run's end gets its forced
 * final update (and release) here, since its end falls on the step after the last one;
 * without this a one-shot recipe (start 0, end 1, a 1-epoch run) would never reach its
 * final sparsity. Returns 1 if masks changed. */
int st_recipe_run_finish(st_recipe_run *run, st_graph *g);

/* For reports: the number of bound pruning targets and, for each, its parameter names,
 * the current target and the achieved sparsity. */
int st_recipe_run_num_targets(const st_recipe_run *run);
typedef struct st_prune_target_info {
    int param;          /* param id in the graph */
    int modifier;       /* index in the recipe */
    float target;       /* current target sparsity */
} st_prune_target_info;
st_prune_target_info st_recipe_run_target(const st_recipe_run *run, int i);

/* Where a modifier stands (for logs and tests): its last update step (-1 before the
 * first), the number of updates made, and whether it started, finished (final update
 * done / constant mask released) and released its masks (leave_enabled false). */
typedef struct st_modifier_status {
    int64_t last_update_step;
    int64_t n_updates;
    int started, finished, released;
} st_modifier_status;
st_modifier_status st_recipe_run_modifier_status(const st_recipe_run *run, int modifier);

/* Modifier state for checkpoints: a small float vector (per modifier: last update step,
 * number of updates, started/finished/released; per pruned param: its init and current
 * target). The masks themselves are saved with the graph. Restoring it and calling
 * step(s), step(s + 1), ... continues exactly like the uninterrupted run. state_set
 * rejects a state from another recipe or model (ST_ERR_INPUT); with different steps per
 * epoch the last update keeps its epoch (approximately, rounded to a step). */
size_t st_recipe_run_state_size(const st_recipe_run *run);
void st_recipe_run_state_get(const st_recipe_run *run, float *out);
st_status st_recipe_run_state_set(st_recipe_run *run, const float *in, size_t n, st_error *err);

/* `recipe-check` plan: every modifier, matched params per group (with a graph), and the
 * table epoch -> LR per group and target sparsity per pruning group at each update.
 * run and g may be NULL (the plan from the recipe alone); steps_per_epoch 0 means 100
 * (ignored when run is given: the run's own is used). */
void st_recipe_print_plan(const st_recipe *r, const st_recipe_run *run, const st_graph *g,
                          int steps_per_epoch, FILE *f);

/* Masks for one tensor (exposed for tests and one-shot pruning). scores = |w|.
 * Unstructured: exactly k = round(s * n) zeros, the k smallest |w|, ties broken by index
 * (lower index pruned first). Block [1, m]: blocks of m consecutive weights along the
 * input-channel axis scored by mean |w|. Block [m, 1] (st_mask_block_out): blocks of m
 * consecutive output channels at one input position (conv [K, C, R, S]: k = j*m ..
 * j*m + m - 1 for fixed c, r, s; linear [O, I]: o = j*m .. for fixed i), scored by mean
 * |w|, a last partial block allowed; the inference engine can then share each input load
 * among the m outputs. N:M: in each group of m along the input axis, the m - n smallest
 * are pruned (2:4 keeps 2).
 * Round: Python's round (half to even) of s * n, s taken as the decimal it was written as
 * (SparseML: round(sparsity * numel)). Layout: [out, in, rest...]: [1, m] blocks and N:M
 * groups run along dim 1 for fixed out and rest (conv [K, C, R, S]: c = j*m ..
 * j*m + m - 1 for fixed k, r, s; linear [O, I]: along I); a last partial block or group
 * is allowed (a partial N:M group of L < m keeps min(n, L)). N:M needs m <= 64.
 * In a GMP schedule: block masks prune round(target * number of blocks) blocks; an N:M
 * pattern is structural, so it is applied in full at every update whose target is > 0
 * (target 0: no mask) and its sparsity is 1 - n/m from the first update on; bind requires
 * final_sparsity to equal 1 - n/m within 0.01, as SparseML does. */
void st_mask_unstructured(const float *w, size_t n, float sparsity, unsigned char *mask);
void st_mask_block(const float *w, const int64_t *shape, int ndim, int m, float sparsity,
                   unsigned char *mask);
void st_mask_block_out(const float *w, const int64_t *shape, int ndim, int m, float sparsity,
                       unsigned char *mask);
void st_mask_nm(const float *w, const int64_t *shape, int ndim, int keep_n, int m,
                unsigned char *mask);

/* Number of items pruned at sparsity s out of n: Python round(s * n), clamped to [0, n]. */
size_t st_mask_num_pruned(float sparsity, size_t n);

/* A tensor as the mask updates see it: [outer, c, inner], blocks along c. `mask` holds the
 * previous mask on entry and the new one on return. */
typedef struct st_mask_tensor {
    const float *w;
    unsigned char *mask;
    int64_t outer, c, inner;
} st_mask_tensor;
/* The layout of a param's shape (ndim >= 2: [shape0, shape1, prod(rest)]; else [1, n, 1]). */
void st_mask_layout(const int64_t *shape, int ndim, size_t numel, int64_t *outer, int64_t *c,
                    int64_t *inner);
/* Sets t's outer, c, inner for blocks of `rows` output channels ([rows, 1], rows > 1:
 * [1, shape0, numel / shape0], blocks along dim 0) or else as st_mask_layout does. */
void st_mask_view(const int64_t *shape, int ndim, size_t numel, int rows, st_mask_tensor *t);
/* The update the runtime uses: prunes the k = st_mask_num_pruned(s, total items) lowest
 * items across all n_tensors (one tensor: layer-wise; several: global, one threshold on
 * unnormalised magnitudes), an item being a block of m along c (m = 1: one weight) scored
 * by mean |w|. An item whose entries were all pruned in the previous mask scores below
 * every other, so pruned weights stay pruned (no regrowth) while k allows. Ties: tensor
 * order, then position. O(n), no allocation. Returns 1 if any mask entry changed. */
int st_mask_update(st_mask_tensor *t, int n_tensors, int m, float sparsity);
/* N:M in place: in each group of m along c keep the keep_n best (previously pruned
 * entries first out). Returns 1 if any entry changed. */
int st_mask_nm_update(st_mask_tensor *t, int keep_n, int m);

#endif
