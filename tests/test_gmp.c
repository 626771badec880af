/* Gradual magnitude pruning: the closed-form schedule (recipes.md's worked values), the
 * update timing in steps, the forced final update, release, __FROM_PARAM__, constant
 * pruning, the finish step, and GMP with the real optimizer. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "st_cpu.h"
#include "st_optim.h"
#include "st_recipe_test_util.h"
#include "st_test_util.h"

static st_modifier gmp(st_interp f, float init, float fin, float start, float end,
                       st_sparsity_group *grp, char **sel, int n_sel) {
    st_modifier m = stt_mod(ST_MOD_GMP, start, end);
    m.inter_func = f;
    m.init_sparsity = init;
    grp->final_sparsity = fin;
    grp->n_params = n_sel;
    grp->params = sel;
    m.n_groups = 1;
    m.groups = grp;
    return m;
}

START_TEST(test_gmp_worked_values) {
    st_sparsity_group grp;
    char *sel[] = {"__ALL_PRUNABLE__"};
    st_modifier m = gmp(ST_INTERP_CUBIC, 0.05f, 0.80f, 4, 100, &grp, sel, 1);
    const float ep[] = {10, 28, 52, 76};
    const float want[] = {0.182f, 0.484f, 0.706f, 0.788f};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabsf(st_gmp_target(&m, 0, ep[i]) - want[i]) < 1e-3f, "cubic at %g: %g",
                      ep[i], st_gmp_target(&m, 0, ep[i]));
    m.inter_func = ST_INTERP_LINEAR;
    ck_assert_float_eq_tol(st_gmp_target(&m, 0, 52), 0.425f, 1e-3f);
    m.inter_func = ST_INTERP_INVERSE_CUBIC;
    ck_assert_float_eq_tol(st_gmp_target(&m, 0, 52), 0.205f, 1e-3f);
    /* x is clipped to [0, 1]: init before start, final after end */
    m.inter_func = ST_INTERP_CUBIC;
    ck_assert_float_eq(st_gmp_target(&m, 0, 0), 0.05f);
    ck_assert_float_eq(st_gmp_target(&m, 0, 4), 0.05f);
    ck_assert_float_eq(st_gmp_target(&m, 0, 100), 0.80f);
    ck_assert_float_eq(st_gmp_target(&m, 0, 240), 0.80f);
    ck_assert(isnan(st_gmp_target(&m, 1, 10)));
}
END_TEST

/* Steps at which modifier 0 updated, over steps 0 .. n-1. */
static int update_steps(st_recipe *r, st_graph *g, int spe, int n, int64_t *out) {
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_msg(st_recipe_bind(r, g, spe, &run, &err) == ST_OK, "%s", err.msg);
    int k = 0;
    int64_t seen = 0;
    for (int s = 0; s < n; s++) {
        st_recipe_run_step(run, g, s, NULL, NULL);
        st_modifier_status st = st_recipe_run_modifier_status(run, 0);
        if (st.n_updates != seen) {
            ck_assert_int_eq(st.n_updates, seen + 1);
            ck_assert_int_eq(st.last_update_step, s);
            out[k++] = s;
            seen = st.n_updates;
        }
    }
    st_recipe_run_free(run);
    return k;
}

START_TEST(test_gmp_update_timing) {
    st_graph *g = stt_small_graph(1);
    st_sparsity_group grp;
    char *sel[] = {"__ALL_PRUNABLE__"};
    int64_t got[200];

    /* 10 steps per epoch, every 0.25 epoch from 1 to 3. By hand: first at step 10
     * (epoch 1.0); then epoch >= last + 0.25, i.e. 2.5 steps later -> 3 steps: 13, 16, 19,
     * 22, 25, 28; 31 would pass the end, so the forced final update is at 30 (epoch 3.0). */
    st_modifier m = gmp(ST_INTERP_CUBIC, 0.1f, 0.8f, 1, 3, &grp, sel, 1);
    m.update_frequency = 0.25f;
    st_recipe r = stt_recipe(&m, 1, 5);
    const int64_t want[] = {10, 13, 16, 19, 22, 25, 28, 30};
    int k = update_steps(&r, g, 10, 50, got);
    ck_assert_int_eq(k, 8);
    for (int i = 0; i < k; i++) ck_assert_int_eq(got[i], want[i]);

    /* -1: every step from start to end, both included */
    m.update_frequency = -1;
    k = update_steps(&r, g, 10, 50, got);
    ck_assert_int_eq(k, 21);
    for (int i = 0; i < k; i++) ck_assert_int_eq(got[i], 10 + i);

    /* update_frequency 1 over 0 -> 2.5: 0, 10, 20 and the forced 25 */
    m.start_epoch = 0, m.end_epoch = 2.5f, m.update_frequency = 1;
    k = update_steps(&r, g, 10, 50, got);
    ck_assert_int_eq(k, 4);
    ck_assert_int_eq(got[0], 0);
    ck_assert_int_eq(got[1], 10);
    ck_assert_int_eq(got[2], 20);
    ck_assert_int_eq(got[3], 25);

    /* decimals written in the recipe land on the steps computed by hand: start 0.3 is
     * step 3 (not 4), update every 0.1 epoch = every step (0.1f * 10 is not below 1) */
    m.start_epoch = 0.3f, m.end_epoch = 0.7f, m.update_frequency = 0.1f;
    k = update_steps(&r, g, 10, 50, got);
    ck_assert_int_eq(k, 5);
    for (int i = 0; i < k; i++) ck_assert_int_eq(got[i], 3 + i);

    /* an epoch that is no short decimal: eval(1/3) with 3 steps per epoch is step 1 */
    m.start_epoch = 1.0f / 3, m.end_epoch = 1, m.update_frequency = -1;
    k = update_steps(&r, g, 3, 10, got);
    ck_assert_int_eq(k, 3);
    for (int i = 0; i < k; i++) ck_assert_int_eq(got[i], 1 + i);

    /* a start between steps: the first step after it */
    m.start_epoch = 0.05f, m.end_epoch = 1, m.update_frequency = 0.5f;
    k = update_steps(&r, g, 10, 50, got);
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[1], 6);
    ck_assert_int_eq(got[2], 10);

    /* -1 start and end: from step 0 to the run's end */
    m.start_epoch = -1, m.end_epoch = -1, m.update_frequency = 1;
    k = update_steps(&r, g, 10, 60, got);
    ck_assert_int_eq(k, 6);
    ck_assert_int_eq(got[0], 0);
    ck_assert_int_eq(got[5], 50);
    st_graph_free(g);
}
END_TEST

START_TEST(test_gmp_targets_reach_final) {
    st_graph *g = stt_small_graph(2);
    st_sparsity_group grp;
    char *sel[] = {"__ALL_PRUNABLE__"};
    st_modifier m = gmp(ST_INTERP_CUBIC, 0.05f, 0.8f, 1, 4, &grp, sel, 1);
    m.update_frequency = 0.5f;
    st_recipe r = stt_recipe(&m, 1, 6);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 8, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_num_targets(run), 4);
    float prev = 0;
    for (int s = 0; s < 48; s++) {
        int changed = st_recipe_run_step(run, g, s, NULL, NULL);
        st_modifier_status st = st_recipe_run_modifier_status(run, 0);
        if (st.last_update_step == s) {
            ck_assert_int_eq(changed, 1);
            for (int i = 0; i < st_recipe_run_num_targets(run); i++) {
                st_prune_target_info ti = st_recipe_run_target(run, i);
                float want = s >= 32 ? 0.8f : st_gmp_target(&m, 0, (float)s / 8);
                ck_assert_float_eq_tol(ti.target, want, 1e-6f);
                ck_assert(ti.target >= prev);
                /* the mask has round(target * n) zeros and the weights are zeroed now */
                size_t n = g->params[ti.param].numel;
                ck_assert_uint_eq(stt_mask_zeros(g, ti.param), st_mask_num_pruned(ti.target, n));
                ck_assert(st_param_sparsity(g, ti.param) >= (double)st_mask_num_pruned(ti.target, n) / n);
            }
            prev = st_recipe_run_target(run, 0).target;
        } else {
            ck_assert_int_eq(changed, 0);
        }
    }
    ck_assert_float_eq(prev, 0.8f);
    ck_assert(st_recipe_run_modifier_status(run, 0).finished);
    ck_assert(!st_recipe_run_modifier_status(run, 0).released);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

START_TEST(test_gmp_leave_enabled_false_releases) {
    st_graph *g = stt_small_graph(3);
    st_sparsity_group grp;
    char *sel[] = {"model.2.conv.weight"};
    st_modifier m = gmp(ST_INTERP_LINEAR, 0.2f, 0.6f, 0, 2, &grp, sel, 1);
    m.update_frequency = 1;
    m.leave_enabled = 0;
    st_recipe r = stt_recipe(&m, 1, 4);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 5, &run, &err), ST_OK);
    int p = st_graph_find_param(g, "model.2.conv.weight");
    size_t n = g->params[p].numel;
    for (int s = 0; s < 10; s++) st_recipe_run_step(run, g, s, NULL, NULL);
    ck_assert_uint_eq(stt_mask_zeros(g, p), st_mask_num_pruned(0.2f + 0.5f * 0.4f, n));
    /* step 10 = epoch 2: the final update zeroes the weights, then the mask is released */
    ck_assert_int_eq(st_recipe_run_step(run, g, 10, NULL, NULL), 1);
    ck_assert_uint_eq(stt_mask_zeros(g, p), 0);
    ck_assert_double_eq_tol(st_param_sparsity(g, p), (double)st_mask_num_pruned(0.6f, n) / n, 1e-12);
    st_modifier_status st = st_recipe_run_modifier_status(run, 0);
    ck_assert(st.finished && st.released);
    ck_assert_int_eq(st_recipe_run_step(run, g, 11, NULL, NULL), 0);
    ck_assert_uint_eq(stt_mask_zeros(g, p), 0);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

START_TEST(test_gmp_init_from_param) {
    st_graph *g = stt_small_graph(4);
    int p = st_graph_find_param(g, "model.2.conv.weight"); /* 576 weights */
    size_t n = g->params[p].numel;
    float *w = st_param_data(g, p);
    for (size_t i = 0; i < n; i += 4) w[i] = 0.0f; /* 25% zeros */
    st_sparsity_group grp;
    char *sel[] = {"model.2.conv.weight", "model.21.conv.weight"};
    st_modifier m = gmp(ST_INTERP_LINEAR, 0, 0.75f, 1, 3, &grp, sel, 2);
    m.init_from_param = 1;
    m.update_frequency = 1;
    st_recipe r = stt_recipe(&m, 1, 3);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 4, &run, &err), ST_OK);
    st_recipe_run_step(run, g, 4, NULL, NULL); /* epoch 1: init = each tensor's sparsity */
    ck_assert_float_eq_tol(st_recipe_run_target(run, 0).target, 0.25f, 1e-7f);
    ck_assert_float_eq(st_recipe_run_target(run, 1).target, 0.0f);
    ck_assert_uint_eq(stt_mask_zeros(g, p), n / 4);
    for (size_t i = 0; i < n; i += 4) ck_assert_int_eq(st_param_mask(g, p)[i], 0);
    st_recipe_run_step(run, g, 8, NULL, NULL); /* halfway: init + 0.5 (final - init) */
    ck_assert_float_eq_tol(st_recipe_run_target(run, 0).target, 0.5f, 1e-6f);
    ck_assert_float_eq_tol(st_recipe_run_target(run, 1).target, 0.375f, 1e-6f);
    st_recipe_run_step(run, g, 12, NULL, NULL);
    ck_assert_float_eq(st_recipe_run_target(run, 0).target, 0.75f);
    ck_assert_float_eq(st_recipe_run_target(run, 1).target, 0.75f);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

START_TEST(test_gmp_finish_applies_final_at_run_end) {
    /* the one-shot recipe: start 0, end 1, a run of 1 epoch */
    st_graph *g = stt_small_graph(5);
    st_sparsity_group grp;
    char *sel[] = {"__ALL_PRUNABLE__"};
    st_modifier m = gmp(ST_INTERP_CUBIC, 0.0f, 0.35f, 0, 1, &grp, sel, 1);
    m.update_frequency = 1;
    st_recipe r = stt_recipe(&m, 1, 1);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 7, &run, &err), ST_OK);
    ck_assert_int_eq(st_recipe_run_total_steps(run), 7);
    for (int s = 0; s < 7; s++) st_recipe_run_step(run, g, s, NULL, NULL);
    ck_assert_float_eq(st_recipe_run_target(run, 0).target, 0.0f);
    ck_assert_int_eq(st_recipe_run_finish(run, g), 1);
    for (int i = 0; i < st_recipe_run_num_targets(run); i++) {
        st_prune_target_info ti = st_recipe_run_target(run, i);
        ck_assert_float_eq(ti.target, 0.35f);
        ck_assert_uint_eq(stt_mask_zeros(g, ti.param),
                          st_mask_num_pruned(0.35f, g->params[ti.param].numel));
    }
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

START_TEST(test_constant_pruning_holds_zeros) {
    st_graph *g = stt_small_graph(6);
    int p = st_graph_find_param(g, "model.24.fc.weight");
    float *w = st_param_data(g, p);
    size_t n = g->params[p].numel;
    for (size_t i = 0; i < n; i += 3) w[i] = 0.0f;
    char *sel[] = {"__ALL_PRUNABLE__"};
    st_sparsity_group grp = {0, 1, sel};
    st_modifier m = stt_mod(ST_MOD_CONSTANT, 1, 2);
    m.n_groups = 1, m.groups = &grp;
    st_recipe r = stt_recipe(&m, 1, 3);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 10, &run, &err), ST_OK);
    for (int s = 0; s < 10; s++) ck_assert_int_eq(st_recipe_run_step(run, g, s, NULL, NULL), 0);
    ck_assert_uint_eq(stt_mask_zeros(g, p), 0);
    ck_assert_int_eq(st_recipe_run_step(run, g, 10, NULL, NULL), 1);
    ck_assert_uint_eq(stt_mask_zeros(g, p), (n + 2) / 3);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(st_param_mask(g, p)[i], w[i] != 0.0f);
    ck_assert_uint_eq(stt_mask_zeros(g, st_graph_find_param(g, "model.2.conv.weight")), 0);
    for (int s = 11; s < 20; s++) ck_assert_int_eq(st_recipe_run_step(run, g, s, NULL, NULL), 0);
    ck_assert_int_eq(st_recipe_run_step(run, g, 20, NULL, NULL), 1); /* end: released */
    ck_assert_uint_eq(stt_mask_zeros(g, p), 0);
    st_recipe_run_free(run);

    /* end -1: held for ever */
    m.end_epoch = -1;
    ck_assert_int_eq(st_recipe_bind(&r, g, 10, &run, &err), ST_OK);
    for (int s = 0; s < 1000; s += 7) st_recipe_run_step(run, g, s, NULL, NULL);
    ck_assert_uint_eq(stt_mask_zeros(g, p), (n + 2) / 3);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

/* GMP with the real optimizer: pruned weights stay exactly zero, the LR reaches it. */
START_TEST(test_with_optimizer_pruned_stay_zero) {
    st_graph *g = stt_small_graph(17);
    char *sel[] = {"__ALL_PRUNABLE__"};
    st_sparsity_group grp = {0.7f, 1, sel};
    st_modifier m[2] = {stt_mod(ST_MOD_GMP, 0, 2), stt_mod(ST_MOD_LR_FUNCTION, 0, 3)};
    m[0].init_sparsity = 0.05f, m[0].update_frequency = 0.4f, m[0].n_groups = 1, m[0].groups = &grp;
    m[1].lr_func = ST_LRF_COSINE, m[1].init_lr = 0.1f, m[1].final_lr = 0.01f;
    st_recipe r = stt_recipe(m, 2, 3);
    st_recipe_run *run;
    st_error err = {0};
    ck_assert_int_eq(st_recipe_bind(&r, g, 5, &run, &err), ST_OK);
    st_optim o;
    ck_assert_int_eq(st_optim_init(&o, g, ST_OPT_SGD, &err), ST_OK);
    st_kernels k;
    st_kernels_init(&k, st_cpu_select_isa());
    st_rng rng;
    st_rng_seed(&rng, 5);
    for (int s = 0; s < 15; s++) {
        st_recipe_run_step(run, g, s, o.lr, o.weight_decay);
        float want = st_modifier_lr(&m[1], (float)s / 5);
        for (int gi = 0; gi < 3; gi++) ck_assert_float_eq_tol(o.lr[gi], want, 1e-6f);
        stt_fill_uniform(g->grad_data, g->param_floats, -1, 1, &rng);
        st_optim_step(&o, g, &k);
        for (int i = 0; i < st_recipe_run_num_targets(run); i++) {
            int p = st_recipe_run_target(run, i).param;
            const float *w = st_param_data(g, p);
            const unsigned char *mk = st_param_mask(g, p);
            for (size_t j = 0; j < g->params[p].numel; j++)
                if (!mk[j]) ck_assert_msg(w[j] == 0.0f, "step %d: pruned weight moved", s);
        }
    }
    for (int i = 0; i < st_recipe_run_num_targets(run); i++) {
        int p = st_recipe_run_target(run, i).param;
        size_t want = st_mask_num_pruned(0.7f, g->params[p].numel);
        ck_assert_uint_eq(stt_mask_zeros(g, p), want);
        ck_assert(st_param_sparsity(g, p) >= (double)want / g->params[p].numel);
    }
    st_optim_free(&o);
    st_recipe_run_free(run);
    st_graph_free(g);
}
END_TEST

Suite *gmp_suite(void) {
    Suite *s = suite_create("gmp");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gmp_worked_values);
    tcase_add_test(tc, test_gmp_update_timing);
    tcase_add_test(tc, test_gmp_targets_reach_final);
    tcase_add_test(tc, test_gmp_leave_enabled_false_releases);
    tcase_add_test(tc, test_gmp_init_from_param);
    tcase_add_test(tc, test_gmp_finish_applies_final_at_run_end);
    tcase_add_test(tc, test_constant_pruning_holds_zeros);
    tcase_add_test(tc, test_with_optimizer_pruned_stay_zero);
    suite_add_tcase(s, tc);
    return s;
}
