/* The recipe runtime end to end: parameter selection and its errors, learning-rate
 * functions and schedulers against hand-computed values, param_groups routing and
 * precedence, weight decay, checkpoint resume, and the plan. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_recipe_test_util.h"
#include "st_rng.h"

/* ---- selection ---- */

static st_status bind_sel(st_graph *g, char **sel, int n, st_recipe_run **run, st_error *err) {
    st_sparsity_group grp = {0.5f, n, sel};
    st_modifier m = stt_mod(ST_MOD_GMP, 0, 1);
    m.line = 12;
    m.n_groups = 1, m.groups = &grp;
    st_recipe r = stt_recipe(&m, 1, 1);
    return st_recipe_bind(&r, g, 10, run, err);
}

static int target_has(const st_recipe_run *run, const st_graph *g, const char *name) {
    for (int i = 0; i < st_recipe_run_num_targets(run); i++)
        if (strcmp(g->params[st_recipe_run_target(run, i).param].name, name) == 0) return 1;
    return 0;
}

START_TEST(test_select_all_exact_and_regex) {
    st_graph *g = stt_small_graph(1);
    st_recipe_run *run;
    st_error err = {0};
    const char *weights[] = {"model.0.conv.weight", "model.2.conv.weight",
                             "model.21.conv.weight", "model.24.fc.weight"};
    char *all[] = {"__ALL_PRUNABLE__"}, *all2[] = {"__ALL__"};
    for (int v = 0; v < 2; v++) {
        ck_assert_int_eq(bind_sel(g, v ? all2 : all, 1, &run, &err), ST_OK);
        ck_assert_int_eq(st_recipe_run_num_targets(run), 4);
        for (int i = 0; i < 4; i++) ck_assert(target_has(run, g, weights[i]));
        st_recipe_run_free(run);
    }
    /* exact names, a duplicate counted once */
    char *ex[] = {"model.24.fc.weight", "model.2.conv.weight", "model.24.fc.weight"};
    ck_assert_int_eq(bind_sel(g, ex, 3, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 2);
    ck_assert_int_eq(st_recipe_run_target(run, 0).param, st_graph_find_param(g, "model.24.fc.weight"));
    st_recipe_run_free(run);
    /* re.match: anchored at the start only, so "model.2" also matches model.21 and
     * model.24, as in Python; their biases are skipped (not prunable) */
    char *re1[] = {"re:model.2"};
    ck_assert_int_eq(bind_sel(g, re1, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 3);
    ck_assert(target_has(run, g, "model.2.conv.weight"));
    ck_assert(target_has(run, g, "model.21.conv.weight"));
    ck_assert(target_has(run, g, "model.24.fc.weight"));
    st_recipe_run_free(run);
    char *re2[] = {"re:model\\.2\\."};
    ck_assert_int_eq(bind_sel(g, re2, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 1);
    st_recipe_run_free(run);
    /* Python syntax: \d, lazy quantifier, alternation stays anchored */
    char *re3[] = {"re:model\\.\\d+?\\.conv"};
    ck_assert_int_eq(bind_sel(g, re3, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 3);
    st_recipe_run_free(run);
    char *re4[] = {"re:fc|model.0"};
    ck_assert_int_eq(bind_sel(g, re4, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 1); /* "fc" is anchored: no match */
    ck_assert(target_has(run, g, "model.0.conv.weight"));
    st_recipe_run_free(run);
    char *re6[] = {"re:model\\.(?:0|2)\\.(?P<kind>conv)\\.w"};
    ck_assert_int_eq(bind_sel(g, re6, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 2);
    st_recipe_run_free(run);
    char *re5[] = {"re:.*fc"};
    ck_assert_int_eq(bind_sel(g, re5, 1, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 1);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

START_TEST(test_select_errors) {
    st_graph *g = stt_small_graph(1);
    st_recipe_run *run = (st_recipe_run *)1;
    st_error err = {0};
    char *miss[] = {"model.2.cv1.conv.weight"};
    ck_assert_int_eq(bind_sel(g, miss, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(run);
    const char *head = "recipe.yaml:12: GMPruningModifier: no parameter matches "
                       "'model.2.cv1.conv.weight'; closest: ";
    ck_assert_msg(strncmp(err.msg, head, strlen(head)) == 0, "%s", err.msg);
    /* by edit distance: model.21.conv.weight (3), model.2.conv.weight (4), ... */
    ck_assert_msg(strcmp(err.msg + strlen(head), "model.21.conv.weight, model.2.conv.weight, "
                         "model.0.conv.weight, model.24.fc.weight") == 0, "%s", err.msg);

    /* several failures, one message with every name */
    char *two[] = {"model.2.cv1.conv.weight", "model.0.conv.weight", "model.9.m.0.weight",
                   "re:head"};
    ck_assert_int_eq(bind_sel(g, two, 4, &run, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'model.2.cv1.conv.weight'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "'model.9.m.0.weight'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "'re:head'"));
    ck_assert_ptr_null(strstr(err.msg, "'model.0.conv.weight'"));

    char *bn[] = {"model.0.bn.weight"};
    ck_assert_int_eq(bind_sel(g, bn, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "'model.0.bn.weight' cannot be pruned: it is a batch-norm weight"),
                  "%s", err.msg);
    char *bias[] = {"model.21.conv.bias"};
    ck_assert_int_eq(bind_sel(g, bias, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "it is a bias"), "%s", err.msg);
    char *rebn[] = {"re:model\\.0\\.bn"};
    ck_assert_int_eq(bind_sel(g, rebn, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "matches only parameters that cannot be pruned"), "%s", err.msg);
    char *py1[] = {"re:(?i)model"};
    ck_assert_int_eq(bind_sel(g, py1, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "Python-only"), "%s", err.msg);
    char *py2[] = {"re:model\\b"};
    ck_assert_int_eq(bind_sel(g, py2, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "\\b is Python-only"), "%s", err.msg);
    char *bad[] = {"re:model[0"};
    ck_assert_int_eq(bind_sel(g, bad, 1, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "invalid pattern"), "%s", err.msg);

    /* one param under two modifiers; unmatched names in two modifiers: one message */
    char *a[] = {"model.2.conv.weight", "nope.a"}, *b[] = {"re:model.2", "nope.b"};
    st_sparsity_group ga = {0.5f, 2, a}, gb = {0.7f, 2, b};
    st_modifier ms[2] = {stt_mod(ST_MOD_GMP, 0, 1), stt_mod(ST_MOD_MAGNITUDE, 0, 1)};
    ms[0].line = 10, ms[0].n_groups = 1, ms[0].groups = &ga;
    ms[1].line = 20, ms[1].n_groups = 1, ms[1].groups = &gb;
    st_recipe r = stt_recipe(ms, 2, 1);
    ck_assert_int_eq(st_recipe_bind(&r, g, 10, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "recipe.yaml:10: GMPruningModifier: no parameter matches 'nope.a'"),
                  "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "recipe.yaml:20: MagnitudePruningModifier: 'model.2.conv.weight' "
                         "is already pruned by GMPruningModifier at line 10"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "no parameter matches 'nope.b'"), "%s", err.msg);

    /* many unmatched names: all named, detail for the first ones */
    char *many[40], names[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "model.%d.cv9.conv.weight", 100 + i);
        many[i] = names[i];
    }
    ck_assert_int_eq(bind_sel(g, many, 40, &run, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "closest: "));
    ck_assert_ptr_nonnull(strstr(err.msg, "'model.100.cv9.conv.weight'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "more") ? strstr(err.msg, "more")
                                                  : strstr(err.msg, "'model.139.cv9.conv.weight'"));
    ck_assert(strlen(err.msg) < sizeof err.msg - 1);

    /* N:M must name its own sparsity; steps per epoch must be positive */
    char *allp[] = {"__ALL_PRUNABLE__"};
    st_sparsity_group gn = {0.8f, 1, allp};
    st_modifier mn = stt_mod(ST_MOD_GMP, 0, 1);
    mn.mask_type = ST_MASK_NM, mn.mask_n = 2, mn.mask_m = 4, mn.n_groups = 1, mn.groups = &gn;
    st_recipe rn = stt_recipe(&mn, 1, 1);
    ck_assert_int_eq(st_recipe_bind(&rn, g, 10, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "2:4 gives sparsity 0.5"), "%s", err.msg);
    gn.final_sparsity = 0.5f;
    ck_assert_int_eq(st_recipe_bind(&rn, g, 0, &run, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_recipe_bind(&rn, g, 10, &run, &err), ST_OK);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

/* ---- learning rate ---- */

/* lr[0] after step() at `step`, starting from the trainer's 9 (to see "unset"). */
static float lr_at(st_recipe_run *run, int64_t step, int group) {
    float lr[3] = {9, 9, 9}, wd[3] = {0, 0, 0};
    st_recipe_run_step(run, NULL, step, lr, wd);
    return lr[group];
}

static st_recipe_run *bind_mods(st_modifier *m, int n, float end) {
    st_recipe r = stt_recipe(m, n, end);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_msg(st_recipe_bind(&r, NULL, 10, &run, &err) == ST_OK, "%s", err.msg);
    return run;
}

#define LR_EQ(run, step, want) \
    ck_assert_msg(fabsf(lr_at(run, step, 0) - (float)(want)) <= 1e-6f * fabsf((float)(want)) + 1e-9f, \
                  "step %d: %.9g, want %.9g", (int)(step), lr_at(run, step, 0), (double)(want))

START_TEST(test_lr_functions) {
    st_modifier m = stt_mod(ST_MOD_LR_FUNCTION, 0, 2);
    m.lr_func = ST_LRF_LINEAR, m.init_lr = 0.1f, m.final_lr = 0.01f;
    st_recipe_run *run = bind_mods(&m, 1, 4);
    LR_EQ(run, 0, 0.1);
    LR_EQ(run, 5, 0.1 + 0.25 * (0.01 - 0.1));
    LR_EQ(run, 10, 0.055);
    LR_EQ(run, 19, 0.1 + 0.95 * (0.01 - 0.1));
    LR_EQ(run, 25, 0.1 + 0.95 * (0.01 - 0.1)); /* after end: the last value stays */
    ck_assert_float_eq_tol(st_modifier_lr(&m, 1.0f), 0.055f, 1e-7f);
    ck_assert(isnan(st_modifier_lr(&m, 2.0f)));
    st_recipe_run_free(run);

    m = stt_mod(ST_MOD_LR_FUNCTION, 1, 3);
    m.lr_func = ST_LRF_COSINE, m.init_lr = 0.01f, m.final_lr = 0.001f;
    run = bind_mods(&m, 1, 4);
    ck_assert_float_eq(lr_at(run, 9, 0), 9.0f); /* before start: the trainer's */
    LR_EQ(run, 10, 0.01);
    LR_EQ(run, 20, 0.0055);
    LR_EQ(run, 25, 0.001 + 0.009 * (1 + cos(0.75 * M_PI)) / 2);
    ck_assert(isnan(st_modifier_lr(&m, 0.5f)));
    st_recipe_run_free(run);

    m = stt_mod(ST_MOD_LR_FUNCTION, 0, 4);
    m.lr_func = ST_LRF_CYCLIC_LINEAR, m.init_lr = 0.1f, m.final_lr = 0.0f, m.cycle_epochs = 1;
    run = bind_mods(&m, 1, 4);
    LR_EQ(run, 5, 0.05);
    LR_EQ(run, 10, 0.1); /* restart */
    LR_EQ(run, 13, 0.07);
    LR_EQ(run, 39, 0.01);
    st_recipe_run_free(run);
}
END_TEST

START_TEST(test_lr_schedulers) {
    st_modifier m = stt_mod(ST_MOD_LR, 1, -1);
    m.lr_class = ST_LRC_STEP, m.init_lr = 0.1f, m.step_size = 2, m.gamma = 0.5f;
    st_recipe_run *run = bind_mods(&m, 1, 10);
    ck_assert_float_eq(lr_at(run, 9, 0), 9.0f);
    LR_EQ(run, 10, 0.1);
    LR_EQ(run, 29, 0.1);
    LR_EQ(run, 30, 0.05);
    LR_EQ(run, 55, 0.025);
    st_recipe_run_free(run);

    m = stt_mod(ST_MOD_LR, 0, -1);
    m.lr_class = ST_LRC_MULTISTEP, m.init_lr = 0.1f, m.gamma = 0.1f;
    m.n_milestones = 2, m.milestones[0] = 2, m.milestones[1] = 5;
    run = bind_mods(&m, 1, 10);
    LR_EQ(run, 19, 0.1);
    LR_EQ(run, 20, 0.01);
    LR_EQ(run, 49, 0.01);
    LR_EQ(run, 50, 0.001);
    st_recipe_run_free(run);

    m = stt_mod(ST_MOD_LR, 1, 5);
    m.lr_class = ST_LRC_EXPONENTIAL, m.init_lr = 0.1f, m.gamma = 0.9f;
    run = bind_mods(&m, 1, 10);
    LR_EQ(run, 15, 0.1);
    LR_EQ(run, 20, 0.09);
    LR_EQ(run, 42, 0.0729);
    LR_EQ(run, 70, 0.1 * pow(0.9, 3)); /* end 5: the value at step 49 stays */
    st_recipe_run_free(run);

    m = stt_mod(ST_MOD_LR, 0, -1);
    m.lr_class = ST_LRC_COSINE_WARM, m.init_lr = 0.1f, m.t_0 = 2, m.t_mult = 1, m.eta_min = 0;
    run = bind_mods(&m, 1, 10);
    LR_EQ(run, 10, 0.05);
    LR_EQ(run, 20, 0.1);
    LR_EQ(run, 30, 0.05);
    LR_EQ(run, 5, 0.1 * (1 + cos(M_PI * 0.25)) / 2);
    st_recipe_run_free(run);
    m.t_0 = 1, m.t_mult = 2, m.eta_min = 0.01f; /* cycles of 1, 2, 4 epochs */
    run = bind_mods(&m, 1, 10);
    LR_EQ(run, 5, 0.055);
    LR_EQ(run, 10, 0.1);
    LR_EQ(run, 20, 0.055);
    LR_EQ(run, 30, 0.1);
    LR_EQ(run, 50, 0.055);
    st_recipe_run_free(run);

    /* update_frequency honoured: every 0.5 epoch, value at the update's epoch */
    m = stt_mod(ST_MOD_LR, 0, -1);
    m.lr_class = ST_LRC_COSINE_WARM, m.init_lr = 0.1f, m.t_0 = 2, m.t_mult = 1;
    m.update_frequency = 0.5f;
    run = bind_mods(&m, 1, 10);
    LR_EQ(run, 7, 0.1 * (1 + cos(M_PI * 0.25)) / 2);
    st_recipe_run_free(run);
}
END_TEST

START_TEST(test_lr_param_groups_precedence_and_wd) {
    /* the YOLO split: cosine for all groups from 3, listed first; warm-ups by group */
    st_modifier m[4] = {stt_mod(ST_MOD_LR_FUNCTION, 3, 10), stt_mod(ST_MOD_LR_FUNCTION, 0, 3),
                        stt_mod(ST_MOD_LR_FUNCTION, 0, 3), stt_mod(ST_MOD_SET_WD, 1, -1)};
    m[0].lr_func = ST_LRF_COSINE, m[0].init_lr = 0.01f, m[0].final_lr = 0.002f;
    m[1].lr_func = ST_LRF_LINEAR, m[1].init_lr = 0.0f, m[1].final_lr = 0.01f, m[1].param_groups = 3;
    m[2].lr_func = ST_LRF_LINEAR, m[2].init_lr = 0.1f, m[2].final_lr = 0.01f, m[2].param_groups = 4;
    m[3].weight_decay = 5e-4f, m[3].param_groups = 1;
    st_recipe_run *run = bind_mods(m, 4, 10);
    float lr[3] = {9, 9, 9}, wd[3] = {7, 7, 7};
    st_recipe_run_step(run, NULL, 15, lr, wd); /* epoch 1.5 */
    ck_assert_float_eq_tol(lr[0], 0.005f, 1e-7f);
    ck_assert_float_eq_tol(lr[1], 0.005f, 1e-7f);
    ck_assert_float_eq_tol(lr[2], 0.055f, 1e-7f);
    ck_assert_float_eq_tol(wd[0], 5e-4f, 1e-10f);
    ck_assert_float_eq(wd[1], 7.0f);
    ck_assert_float_eq(wd[2], 7.0f);
    st_recipe_run_step(run, NULL, 30, lr, wd); /* epoch 3: the cosine for all */
    for (int g = 0; g < 3; g++) ck_assert_float_eq_tol(lr[g], 0.01f, 1e-7f);
    st_recipe_run_step(run, NULL, 65, lr, wd);
    for (int g = 0; g < 3; g++) ck_assert_float_eq_tol(lr[g], 0.006f, 1e-7f);
    st_recipe_run_step(run, NULL, 5, lr, wd); /* before the SetWD start: untouched */
    ck_assert_float_eq_tol(wd[0], 5e-4f, 1e-10f);
    float wd2[3] = {1, 1, 1};
    st_recipe_run_step(run, NULL, 5, NULL, wd2);
    ck_assert_float_eq(wd2[0], 1.0f);
    st_recipe_run_free(run);

    /* two modifiers writing the same groups at the same steps: the later one wins;
     * SetLearningRate persists until another modifier writes */
    st_modifier p[3] = {stt_mod(ST_MOD_LR_FUNCTION, 0, 4), stt_mod(ST_MOD_LR_FUNCTION, 1, 2),
                        stt_mod(ST_MOD_SET_LR, 5, -1)};
    p[0].lr_func = ST_LRF_LINEAR, p[0].init_lr = 0.4f, p[0].final_lr = 0.0f;
    p[1].lr_func = ST_LRF_LINEAR, p[1].init_lr = 0.9f, p[1].final_lr = 0.9f;
    p[2].learning_rate = 0.3f;
    run = bind_mods(p, 3, 8);
    LR_EQ(run, 5, 0.35);
    LR_EQ(run, 15, 0.9);
    LR_EQ(run, 25, 0.15);
    LR_EQ(run, 45, 0.4 * (1 - 3.9 / 4)); /* after the first function ends: its last value */
    LR_EQ(run, 50, 0.3);
    LR_EQ(run, 79, 0.3);
    st_recipe_run_free(run);
    /* listed the other way round, the long function wins where both write */
    st_modifier q[2] = {p[1], p[0]};
    run = bind_mods(q, 2, 8);
    LR_EQ(run, 15, 0.4 * (1 - 1.5 / 4));
    st_recipe_run_free(run);
}
END_TEST

/* ---- resume ---- */

typedef struct sim {
    st_graph *g;
    st_recipe_run *run;
} sim;

/* One training step: recipe step, then a deterministic "optimizer" update of the kept
 * weights (noise from (step, index)) with the masks re-applied, as st_optim_step does. */
static int sim_step(sim *s, int64_t step, float lr[3], float wd[3]) {
    int changed = st_recipe_run_step(s->run, s->g, step, lr, wd);
    st_graph *g = s->g;
    for (int p = 0; p < g->n_params; p++) {
        if (g->params[p].group == ST_PG_BUFFER) continue;
        float *w = st_param_data(g, p);
        const unsigned char *mk = st_param_mask(g, p);
        for (size_t i = 0; i < g->params[p].numel; i++) {
            w[i] -= lr[0] * (st_hash_uniform((uint64_t)step, (uint64_t)p * 100003u + i) - 0.5f);
            if (mk && !mk[i]) w[i] = 0.0f;
        }
    }
    return changed;
}

static st_recipe resume_recipe(st_modifier *m, st_sparsity_group *gr, char **s1, char **s2) {
    m[0] = stt_mod(ST_MOD_GMP, 0.5f, 3);
    m[0].init_sparsity = 0.1f, m[0].update_frequency = 0.2f;
    gr[0] = (st_sparsity_group){0.8f, 1, s1};
    gr[1] = (st_sparsity_group){0.6f, 1, s2};
    m[0].n_groups = 2, m[0].groups = gr;
    m[1] = stt_mod(ST_MOD_GLOBAL_MAGNITUDE, 1, 4);
    m[1].init_from_param = 1, m[1].update_frequency = 0.5f, m[1].inter_func = ST_INTERP_LINEAR;
    gr[2] = (st_sparsity_group){0.7f, 1, s2 + 1};
    m[1].n_groups = 1, m[1].groups = gr + 2;
    m[2] = stt_mod(ST_MOD_LR_FUNCTION, 0, 5);
    m[2].lr_func = ST_LRF_COSINE, m[2].init_lr = 0.05f, m[2].final_lr = 0.001f;
    return stt_recipe(m, 3, 5);
}

START_TEST(test_resume_is_exact) {
    enum { STEPS = 50, AT = 20 };
    st_modifier m[3];
    st_sparsity_group gr[3];
    char *s1[] = {"model.2.conv.weight"}, *s2[] = {"model.0.conv.weight", "re:model\\.2[14]"};
    st_recipe r = resume_recipe(m, gr, s1, s2);
    st_error err = {0};
    sim a = {stt_small_graph(9), NULL};
    /* zeros already there, for the __FROM_PARAM__ global modifier */
    float *w24 = st_param_data(a.g, st_graph_find_param(a.g, "model.24.fc.weight"));
    for (int i = 0; i < 160; i += 5) w24[i] = 0.0f;
    ck_assert_int_eq(st_recipe_bind(&r, a.g, 10, &a.run, &err), ST_OK);
    size_t mb = a.g->mask_bytes, pf = a.g->param_floats;
    unsigned char *masks = malloc((size_t)STEPS * mb), *saved_masks = malloc(mb);
    float *lrs = malloc(STEPS * 3 * sizeof(float)), *saved_w = malloc(pf * sizeof(float));
    size_t ns = st_recipe_run_state_size(a.run);
    float *state = malloc(ns * sizeof(float));
    float lr[3] = {0.01f, 0.01f, 0.01f}, wd[3] = {0};
    int n_changes = 0;
    for (int s = 0; s < STEPS; s++) {
        if (s == AT) { /* the trainer's checkpoint: weights, masks, recipe state */
            memcpy(saved_w, a.g->param_data, pf * sizeof(float));
            memcpy(saved_masks, a.g->mask_data, mb);
            st_recipe_run_state_get(a.run, state);
        }
        n_changes += sim_step(&a, s, lr, wd);
        memcpy(masks + (size_t)s * mb, a.g->mask_data, mb);
        memcpy(lrs + 3 * s, lr, sizeof lr);
    }
    ck_assert_int_ge(n_changes, 8);

    sim b = {stt_small_graph(1234), NULL}; /* another init: everything comes from the save */
    ck_assert_int_eq(st_recipe_bind(&r, b.g, 10, &b.run, &err), ST_OK);
    memcpy(b.g->param_data, saved_w, pf * sizeof(float));
    memcpy(b.g->mask_data, saved_masks, mb);
    ck_assert_int_eq(st_recipe_run_state_set(b.run, state, ns, &err), ST_OK);
    float lr2[3] = {0.01f, 0.01f, 0.01f}, wd2[3] = {0};
    for (int s = AT; s < STEPS; s++) {
        sim_step(&b, s, lr2, wd2);
        ck_assert_msg(memcmp(masks + (size_t)s * mb, b.g->mask_data, mb) == 0, "masks differ at step %d", s);
        ck_assert_msg(memcmp(lrs + 3 * s, lr2, sizeof lr2) == 0, "lr differs at step %d", s);
    }
    ck_assert(memcmp(a.g->param_data, b.g->param_data, pf * sizeof(float)) == 0);
    for (int i = 0; i < st_recipe_run_num_targets(a.run); i++)
        ck_assert_float_eq(st_recipe_run_target(a.run, i).target, st_recipe_run_target(b.run, i).target);

    /* a state from another recipe is refused */
    st_recipe r2 = stt_recipe(m, 2, 5);
    st_recipe_run *other;
    ck_assert_int_eq(st_recipe_bind(&r2, b.g, 10, &other, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_state_set(other, state, ns, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "does not match"));
    st_recipe_run_free(other);
    float junk[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(st_recipe_run_state_set(b.run, junk, 5, &err), ST_ERR_INPUT);

    free(masks);
    free(saved_masks);
    free(lrs);
    free(saved_w);
    free(state);
    st_recipe_run_free(a.run);
    st_recipe_run_free(b.run);
    st_graph_free(a.g);
    st_graph_free(b.g);
}
END_TEST

/* ---- plan ---- */

static char *plan_text(const st_recipe *r, const st_recipe_run *run, const st_graph *g, int spe) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_recipe_print_plan(r, run, g, spe, f);
    fclose(f);
    return buf;
}

START_TEST(test_plan) {
    st_modifier m[4];
    st_sparsity_group gr[3];
    char *s1[] = {"model.2.conv.weight"}, *s2[] = {"model.0.conv.weight", "re:model\\.2[14]"};
    st_recipe r = resume_recipe(m, gr, s1, s2);
    m[3] = stt_mod(ST_MOD_EPOCH_RANGE, 0, 5);
    r.n_mods = 4;
    char *t = plan_text(&r, NULL, NULL, 0); /* no graph: the selectors as written */
    ck_assert_ptr_nonnull(strstr(t, "the run lasts 5 epochs = 500 steps at 100 steps per epoch"));
    ck_assert_ptr_nonnull(strstr(t, "GMPruningModifier: cubic 0.1 -> final, epochs 0.5 -> 3"));
    ck_assert_ptr_nonnull(strstr(t, "update every 0.2 epochs (20 steps)"));
    ck_assert_ptr_nonnull(strstr(t, "final_sparsity 0.6: model.0.conv.weight\n"));
    ck_assert_ptr_nonnull(strstr(t, "final_sparsity 0.7: re:model\\.2[14]\n"));
    if (getenv("STT_SHOW_PLAN")) fputs(t, stderr);
    ck_assert_ptr_nonnull(strstr(t, "cosine 0.05 -> 0.001"));
    ck_assert_ptr_nonnull(strstr(t, "Schedule"));
    free(t);

    st_graph *g = stt_small_graph(1);
    t = plan_text(&r, NULL, g, 10); /* with a graph: matched params with shapes */
    ck_assert_ptr_nonnull(strstr(t, "final_sparsity 0.8: 1 params, 576 weights"));
    ck_assert_ptr_nonnull(strstr(t, "model.2.conv.weight"));
    ck_assert_ptr_nonnull(strstr(t, "[8, 8, 3, 3] 576"));
    ck_assert_ptr_nonnull(strstr(t, "final_sparsity 0.7: 2 params"));
    /* the row of the final update: step 30, epoch 3, targets 0.8 and 0.6 */
    ck_assert_msg(strstr(t, "       30    3.0000"), "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "0.8000    0.6000"));
    if (getenv("STT_SHOW_PLAN")) fputs(t, stderr);
    free(t);

    /* a binding error is printed, and the schedule from the recipe alone follows */
    char *miss[] = {"model.7.conv.weight"};
    gr[0].params = miss;
    t = plan_text(&r, NULL, g, 10);
    ck_assert_ptr_nonnull(strstr(t, "error: recipe.yaml:1: GMPruningModifier: no parameter matches"));
    ck_assert_ptr_nonnull(strstr(t, "Schedule"));
    free(t);
    st_graph_free(g);
}
END_TEST

/* ---- [M, 1] blocks ---- */

/* Param p's mask in blocks of 4 output channels (rows k = 4j .. 4j + 3 at one column of
 * the rest; a partial last block when K % 4 != 0): each block all kept or all pruned,
 * pruned weights zero, kept ones as in orig, and every pruned block's mean |orig| at most
 * every kept block's (the weights do not move here, so gradual pruning ends on the
 * lowest blocks). Returns the number of pruned blocks; *n_blocks gets the total. */
static size_t check_row_blocks(const st_graph *g, int p, const float *orig, size_t *n_blocks) {
    const st_param *pp = &g->params[p];
    const float *w = st_param_data(g, p);
    const unsigned char *mk = st_param_mask(g, p);
    int64_t K = pp->shape[0], rest = (int64_t)pp->numel / K;
    size_t pruned = 0;
    double max_pruned = -1, min_kept = INFINITY;
    *n_blocks = 0;
    for (int64_t k0 = 0; k0 < K; k0 += 4)
        for (int64_t c = 0; c < rest; c++) {
            int64_t k1 = k0 + 4 < K ? k0 + 4 : K;
            double mean = 0;
            for (int64_t k = k0; k < k1; k++) {
                size_t i = (size_t)(k * rest + c);
                ck_assert_msg(mk[i] == mk[k0 * rest + c], "%s: block at row %lld col %lld split",
                              pp->name, (long long)k0, (long long)c);
                ck_assert_msg(mk[i] ? w[i] == orig[i] : w[i] == 0.0f, "%s[%zu]", pp->name, i);
                mean += fabsf(orig[i]) / (double)(k1 - k0);
            }
            (*n_blocks)++;
            if (!mk[k0 * rest + c]) pruned++, max_pruned = fmax(max_pruned, mean);
            else min_kept = fmin(min_kept, mean);
        }
    ck_assert_msg(max_pruned <= min_kept + 1e-6, "%s: a kept block is below a pruned one", pp->name);
    return pruned;
}

START_TEST(test_gmp_out_channel_blocks) {
    for (int global = 0; global < 2; global++) {
        st_graph *g = stt_small_graph(5);
        char *all[] = {"__ALL_PRUNABLE__"};
        st_sparsity_group grp = {0.8f, 1, all};
        st_modifier m = stt_mod(ST_MOD_GMP, 0, 2);
        m.init_sparsity = 0.05f, m.update_frequency = 0.5f, m.global_sparsity = global;
        m.mask_type = ST_MASK_BLOCK, m.mask_n = 4, m.mask_m = 1;
        m.n_groups = 1, m.groups = &grp;
        st_recipe r = stt_recipe(&m, 1, 2);
        st_recipe_run *run;
        st_error err = {0};
        ck_assert_msg(st_recipe_bind(&r, g, 10, &run, &err) == ST_OK, "%s", err.msg);
        int nt = st_recipe_run_num_targets(run);
        ck_assert_int_eq(nt, 4); /* the three convs and the linear [10, 16] (partial block) */
        float *orig[4];
        for (int i = 0; i < nt; i++) {
            int p = st_recipe_run_target(run, i).param;
            orig[i] = malloc(g->params[p].numel * sizeof(float));
            memcpy(orig[i], st_param_data(g, p), g->params[p].numel * sizeof(float));
        }
        for (int64_t s = 0; s < st_recipe_run_total_steps(run); s++) st_recipe_run_step(run, g, s, NULL, NULL);
        st_recipe_run_finish(run, g);
        size_t pruned = 0, blocks = 0;
        for (int i = 0; i < nt; i++) {
            st_prune_target_info t = st_recipe_run_target(run, i);
            ck_assert_float_eq_tol(t.target, 0.8f, 1e-6f);
            size_t nb, pb = check_row_blocks(g, t.param, orig[i], &nb);
            if (!global) ck_assert_uint_eq(pb, st_mask_num_pruned(0.8f, nb)); /* layer-wise */
            pruned += pb, blocks += nb;
            free(orig[i]);
        }
        if (global) ck_assert_uint_eq(pruned, st_mask_num_pruned(0.8f, blocks)); /* one threshold */
        st_recipe_run_free(run);
        st_graph_free(g);
    }
    /* a hand-built [2, 4] is refused at bind, naming the recipe line */
    st_graph *g = stt_small_graph(5);
    char *all[] = {"__ALL_PRUNABLE__"};
    st_sparsity_group grp = {0.5f, 1, all};
    st_modifier m = stt_mod(ST_MOD_GMP, 0, 2);
    m.line = 7, m.mask_type = ST_MASK_BLOCK, m.mask_n = 2, m.mask_m = 4;
    m.n_groups = 1, m.groups = &grp;
    st_recipe r = stt_recipe(&m, 1, 2);
    st_recipe_run *run = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 10, &run, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "recipe.yaml:7: GMPruningModifier: mask_type [2, 4]: only [1, M]"),
                  "%s", err.msg);
    /* the plan names [M, 1] blocks */
    m.mask_m = 1;
    char *t = plan_text(&r, NULL, g, 10);
    ck_assert_msg(strstr(t, "mask block [2, 1] (output channels)"), "%s", t);
    free(t);
    st_graph_free(g);
}
END_TEST

Suite *recipe_run_suite(void) {
    Suite *s = suite_create("recipe_run");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_select_all_exact_and_regex);
    tcase_add_test(tc, test_select_errors);
    tcase_add_test(tc, test_lr_functions);
    tcase_add_test(tc, test_lr_schedulers);
    tcase_add_test(tc, test_lr_param_groups_precedence_and_wd);
    tcase_add_test(tc, test_resume_is_exact);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_gmp_out_channel_blocks);
    suite_add_tcase(s, tc);
    return s;
}
