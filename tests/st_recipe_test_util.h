/* Helpers for the recipe runtime suites: hand-built modifiers (the parser is another
 * branch's work) and a small graph whose parameter names follow YOLOv5's numbering. */
#ifndef ST_RECIPE_TEST_UTIL_H
#define ST_RECIPE_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "st_graph.h"
#include "st_recipe.h"
#include "st_recipe_run.h"

/* A modifier with SparseML's defaults; the caller sets the fields a test is about. */
static inline st_modifier stt_mod(st_mod_kind kind, float start, float end) {
    st_modifier m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    snprintf(m.tag, sizeof m.tag, "%s",
             kind == ST_MOD_GMP              ? "GMPruningModifier"
             : kind == ST_MOD_MAGNITUDE      ? "MagnitudePruningModifier"
             : kind == ST_MOD_GLOBAL_MAGNITUDE ? "GlobalMagnitudePruningModifier"
             : kind == ST_MOD_CONSTANT       ? "ConstantPruningModifier"
             : kind == ST_MOD_SET_LR         ? "SetLearningRateModifier"
             : kind == ST_MOD_LR_FUNCTION    ? "LearningRateFunctionModifier"
             : kind == ST_MOD_LR             ? "LearningRateModifier"
             : kind == ST_MOD_SET_WD         ? "SetWeightDecayModifier"
                                             : "EpochRangeModifier");
    m.line = 1;
    m.start_epoch = start;
    m.end_epoch = end;
    m.update_frequency = -1.0f;
    m.inter_func = ST_INTERP_CUBIC;
    m.mask_type = ST_MASK_UNSTRUCTURED;
    m.leave_enabled = 1;
    m.param_groups = 7;
    m.gamma = 0.1f;
    m.t_mult = 1.0f;
    m.cycle_epochs = 1.0f;
    return m;
}

static inline st_recipe stt_recipe(st_modifier *mods, int n, float end_epoch) {
    st_recipe r;
    memset(&r, 0, sizeof r);
    r.path = "recipe.yaml";
    r.n_mods = n;
    r.mods = mods;
    r.end_epoch = end_epoch;
    return r;
}

/* model.0.conv [8,3,3,3] + model.0.bn, model.2.conv [8,8,3,3], model.21.conv [16,8,1,1]
 * with bias, model.24.fc [10,16] with bias. */
static inline st_graph *stt_small_graph(uint64_t seed) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 6, 6);
    int a = st_g_conv2d(g, "model.0.conv", x, 8, 3, 3, 1, 1, 1, 1, 0);
    a = st_g_batchnorm(g, "model.0.bn", a, 1e-3f, 0.03f);
    a = st_g_conv2d(g, "model.2.conv", a, 8, 3, 3, 1, 1, 1, 1, 0);
    a = st_g_conv2d(g, "model.21.conv", a, 16, 1, 1, 1, 0, 1, 1, 1);
    a = st_g_flatten(g, st_g_global_avgpool(g, a));
    a = st_g_linear(g, "model.24.fc", a, 10, 1);
    st_g_output(g, a);
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, seed, &err) == ST_OK, "%s", err.msg);
    return g;
}

/* Number of zero entries of a param's mask. */
static inline size_t stt_mask_zeros(const st_graph *g, int p) {
    const unsigned char *mk = st_param_mask(g, p);
    size_t z = 0;
    for (size_t i = 0; i < g->params[p].numel; i++) z += mk[i] == 0;
    return z;
}

#endif
