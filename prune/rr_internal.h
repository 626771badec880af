/* Internal state of a bound recipe run, shared by the prune/ sources (not installed).
 *
 * Time is kept in optimizer steps: every modifier's start and end epoch is turned into
 * "the first step whose epoch step / steps_per_epoch is >= that epoch" once, at bind. The
 * epochs come from the recipe as floats; rr_dec() recovers the decimal the user wrote
 * (0.1f -> 0.1) so that a schedule lands on the step a person computing by hand (or
 * SparseML in Python doubles) expects, and a relative tolerance of FLT_EPSILON (the
 * precision a float epoch is known to) absorbs the rounding of products such as 0.3 * 10
 * or of an epoch that is not a short decimal (eval(1/3)). */
#ifndef ST_RR_INTERNAL_H
#define ST_RR_INTERNAL_H

#include <stdint.h>

#include "st_recipe_run.h"

#define RR_NEVER INT64_MAX

/* One (modifier, sparsity group, parameter) binding. */
typedef struct rr_target {
    int param, mod, group;
    float init;   /* init sparsity; per tensor with __FROM_PARAM__, captured at the first update */
    float target; /* target applied at the last update (0 before the first) */
} rr_target;

typedef struct rr_mod {
    st_modifier m;          /* a copy; m.groups is NULL (selectors are not kept) */
    float *finals;          /* final_sparsity per group (m.n_groups) */
    double start, end;      /* resolved epochs (-1 replaced; end may be INFINITY) */
    int64_t s_start, s_end; /* first step with epoch >= start / >= end; RR_NEVER: never */
    int64_t gap;            /* steps between regular updates (update_frequency), >= 1 */
    int t0, nt;             /* its targets: run->targets[t0 .. t0 + nt) */
    /* schedule state, saved in checkpoints */
    int64_t last;           /* step of the last update, -1 before the first */
    int64_t n_updates;
    int started, finished, released;
} rr_mod;

struct st_recipe_run {
    int n_mods;
    rr_mod *mods;           /* one per recipe modifier, same order and index */
    int n_targets;
    rr_target *targets;     /* grouped by modifier, then by sparsity group */
    int spe;                /* optimizer steps per epoch */
    double run_end;         /* the run's length in epochs */
    int n_params;           /* params of the bound graph (0 when bound without one) */
    st_mask_tensor *scratch; /* one per target of the largest modifier (global masks) */
};

/* schedule.c */
double rr_dec(float f);
int64_t rr_first_step(double epoch, int spe);
int rr_is_pruning(st_mod_kind k);
int rr_is_lr(st_mod_kind k);
double rr_interp(st_interp f, double x);
/* Resolves start/end/steps of every modifier of run (needs run->spe and run->run_end). */
void rr_resolve_times(st_recipe_run *run);
/* Interpolation progress y in [0, 1] of a GMP modifier at an update made at `step`;
 * exactly 1 at or after its end step. */
double rr_gmp_y(const st_recipe_run *run, const rr_mod *md, int64_t step);
/* LR / weight decay the modifiers prescribe at `step`: overwrite lr[g] / wd[g] for every
 * group some modifier has written by then (either pointer may be NULL). */
void rr_lr_at(const st_recipe_run *run, int64_t step, float *lr, float *wd);
/* Last step <= step at which a GMP modifier updates (by the closed-form schedule), -1 if
 * none yet; used by the plan. */
int64_t rr_gmp_last_update(const rr_mod *md, int64_t step);

/* select.c: binds every pruning modifier's selectors to params of g (fills run->targets). */
st_status rr_select(const st_recipe *r, const st_graph *g, st_recipe_run *run, st_error *err);

/* recipe_run.c */
const char *rr_kind_name(st_mod_kind k);

#endif
