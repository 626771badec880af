/* SparseML-compatible recipes (see ../shared/docs/recipes.md for the behaviour matched).
 *
 * Two layers:
 * - parsing (recipe_*.c): YAML or Markdown front matter -> st_recipe, a list of modifiers
 *   whose fields are fully resolved numbers and strings (variables, anchors/aliases,
 *   eval() expressions and --recipe-args overrides already applied, defaults filled in,
 *   every field type- and range-checked). Needs no model.
 * - running (schedule_*.c, masks_*.c): st_recipe_run binds a recipe to a graph (parameter
 *   selection) and a number of optimizer steps per epoch, and is called at every step to
 *   set learning rates and weight decay and to update and apply masks.
 * Errors are ST_ERR_INPUT with one line naming the file (and line:column where known). */
#ifndef ST_RECIPE_H
#define ST_RECIPE_H

#include <stdint.h>
#include <stdio.h>

#include "st_common.h"

typedef enum {
    ST_MOD_EPOCH_RANGE = 0,
    ST_MOD_GMP,               /* GMPruningModifier */
    ST_MOD_MAGNITUDE,         /* MagnitudePruningModifier (layer-wise GMP) */
    ST_MOD_GLOBAL_MAGNITUDE,  /* GlobalMagnitudePruningModifier */
    ST_MOD_CONSTANT,          /* ConstantPruningModifier */
    ST_MOD_SET_LR,            /* SetLearningRateModifier */
    ST_MOD_LR_FUNCTION,       /* LearningRateFunctionModifier */
    ST_MOD_LR,                /* LearningRateModifier (torch-style schedulers) */
    ST_MOD_SET_WD,            /* SetWeightDecayModifier */
    ST_MOD_NOT_RUN,           /* quantization / distillation: recognised, not run */
    ST_MOD_KIND_COUNT
} st_mod_kind;

typedef enum { ST_INTERP_LINEAR = 0, ST_INTERP_CUBIC, ST_INTERP_INVERSE_CUBIC } st_interp;
typedef enum { ST_MASK_UNSTRUCTURED = 0, ST_MASK_BLOCK, ST_MASK_NM } st_mask_kind;
typedef enum { ST_LRF_LINEAR = 0, ST_LRF_COSINE, ST_LRF_CYCLIC_LINEAR } st_lr_func;
typedef enum {
    ST_LRC_STEP = 0,     /* StepLR: step_size, gamma */
    ST_LRC_MULTISTEP,    /* MultiStepLR: milestones, gamma */
    ST_LRC_EXPONENTIAL,  /* ExponentialLR: gamma */
    ST_LRC_COSINE_WARM,  /* CosineAnnealingWarmRestarts: T_0, T_mult, eta_min */
} st_lr_class;

#define ST_MAX_MILESTONES 32

/* One sparsity target with the parameter selectors it applies to. A GMP modifier has one
 * (final_sparsity: 0.9, params: [...]) or several ({0.9: [a, b], 0.8: [c]}). */
typedef struct st_sparsity_group {
    float final_sparsity;
    int n_params;
    char **params; /* selectors as written: "__ALL_PRUNABLE__", "__ALL__", "name", "re:..." */
} st_sparsity_group;

typedef struct st_modifier {
    st_mod_kind kind;
    char tag[64];    /* as written, e.g. "GMPruningModifier" */
    int line;        /* 1-based line of the modifier in the recipe file */
    float start_epoch, end_epoch; /* -1 = from the start / until the end. The parser stores
                                     start -1 as 0 for GMP/Magnitude/GlobalMagnitude,
                                     LearningRateFunction and LearningRate (their formulas
                                     need a number), and rejects end -1 for EpochRange, the
                                     GMP family and LearningRateFunction (they need an end);
                                     end >= start whenever both are set. */
    float update_frequency;       /* epochs; -1 = every step */

    /* pruning (GMP, Magnitude, GlobalMagnitude, Constant). groups: one per final_sparsity
     * entry (n_groups >= 1, n_params >= 1 each) for the GMP family; exactly one (its
     * final_sparsity unused) for Constant; none for the other kinds. */
    int n_groups;
    st_sparsity_group *groups;
    float init_sparsity;     /* ignored when init_from_param */
    int init_from_param;     /* init_sparsity: __FROM_PARAM__ */
    st_interp inter_func;
    st_mask_kind mask_type;
    int mask_n, mask_m;      /* unstructured (also [1, 1]): 1, 1;
                                block ("block4", "block", [1, m]): n = 1, m >= 2
                                (m input channels); [n, 1]: n >= 2, m = 1 (n output
                                channels);
                                N:M: n of every m kept... see masks.c (2:4 keeps 2 of 4) */
    int leave_enabled;
    int global_sparsity;

    /* learning rate and weight decay */
    float learning_rate;     /* SetLearningRate */
    st_lr_func lr_func;      /* LearningRateFunction */
    float init_lr, final_lr, cycle_epochs;
    st_lr_class lr_class;    /* LearningRate */
    float step_size, gamma, t_0, t_mult, eta_min;
    int n_milestones;        /* MultiStepLR: sorted ascending, 1..ST_MAX_MILESTONES; gamma
                                defaults to 0.1 (torch), T_mult to 1, eta_min to 0 */
    float milestones[ST_MAX_MILESTONES];
    float weight_decay;      /* SetWeightDecay */
    int param_groups;        /* bit mask of groups 0..2 it applies to (default all: 7) */
} st_modifier;

typedef struct st_recipe {
    char *path;
    char *text;        /* the recipe file as read (stored in checkpoints) */
    int n_mods;
    st_modifier *mods;
    float end_epoch;   /* the run's length: largest end (or start, when end is -1) epoch
                          among all modifiers, not-run ones included; 0 when no modifier
                          names an epoch (then --epochs decides) */
    int n_not_run;     /* recognised but not run (quantization, distillation) */
} st_recipe;

/* Loads a .yaml or .md recipe. args_json: NULL or a JSON object of variable overrides
 * ('{"num_epochs": 3}'); an override also reaches every YAML alias of the variable's anchor
 * (`end_epoch: *num_epochs`), not only eval() references. strict: modifiers that are not
 * run become errors. Warnings (a modifier not run, one line each:
 * "FILE:LINE: QuantizationModifier is recognised but not run (...)") go to `log` (may be
 * NULL). On error *out is left empty (st_recipe_free on it is harmless). */
st_status st_recipe_load(const char *path, const char *args_json, int strict, FILE *log,
                         st_recipe *out, st_error *err);
/* The same from text already in memory; name is used in messages, and a name ending in
 * .md means Markdown with YAML front matter. */
st_status st_recipe_parse(const char *text, size_t len, const char *name, const char *args_json,
                          int strict, FILE *log, st_recipe *out, st_error *err);
void st_recipe_free(st_recipe *r);
const char *st_mod_kind_name(st_mod_kind k);
/* Prints every modifier with its resolved fields (for `sparsetrain recipe-check`). */
void st_recipe_print(const st_recipe *r, FILE *f);

/* Evaluates the inside of one eval(...) exactly as a recipe would, with variables from a
 * JSON object (NULL: none; values may themselves be "eval(...)" strings). The result must
 * be a number. For tests and for trying an expression out. */
st_status st_recipe_eval(const char *expr, const char *vars_json, double *out, st_error *err);

#endif
