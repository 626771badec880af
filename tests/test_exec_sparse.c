/* The executor's sparse paths give the dense path's outputs and gradients: a network
 * with pruned conv (1x1, 3x3 stride 1 and 2) and linear layers, run once with the sparse
 * kernels chosen and once forced dense, from the same weights and masks. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_exec.h"
#include "st_recipe_run.h"
#include "st_test_util.h"

static st_graph *net(void) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 16, 12, 12);
    x = st_g_relu(g, st_g_conv2d(g, "model.0.conv", x, 32, 3, 3, 1, 1, 1, 1, 0));
    x = st_g_relu(g, st_g_conv2d(g, "model.1.conv", x, 64, 3, 3, 2, 1, 1, 1, 1));
    x = st_g_relu(g, st_g_conv2d(g, "model.2.conv", x, 64, 1, 1, 1, 0, 1, 1, 0));
    x = st_g_flatten(g, x);
    x = st_g_relu(g, st_g_linear(g, "model.3", x, 64, 1));
    st_g_output(g, st_g_linear(g, "model.4", x, 10, 1));
    return g;
}

static void run(st_graph *g, int dense_only, float sparsity, float *out, float *grads, int *n_sparse) {
    st_error err = {0};
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, 4, 1, &err), ST_OK);
    e.dense_only = dense_only;
    /* prune every prunable weight to `sparsity` by magnitude */
    for (int i = 0; i < g->n_params; i++) {
        if (!g->params[i].prunable) continue;
        st_mask_unstructured(st_param_data(g, i), g->params[i].numel, sparsity, st_param_mask(g, i));
        for (size_t j = 0; j < g->params[i].numel; j++)
            if (!st_param_mask(g, i)[j]) st_param_data(g, i)[j] = 0.0f;
    }
    ck_assert_int_eq(st_exec_sparse_repack(&e, &err), ST_OK);
    *n_sparse = st_exec_sparse_count(&e);
    st_rng r;
    st_rng_seed(&r, 5);
    stt_fill_uniform(st_exec_input(&e), 4 * 16 * 12 * 12, -1, 1, &r);
    st_exec_forward(&e, 4, 1);
    memcpy(out, st_exec_output(&e), 40 * sizeof(float));
    stt_fill_uniform(st_exec_doutput(&e), 40, -1, 1, &r);
    st_graph_zero_grad(g);
    st_exec_backward(&e);
    memcpy(grads, g->grad_data, g->param_floats * sizeof(float));
    st_exec_free(&e);
}

START_TEST(test_sparse_paths_match_dense) {
    const float levels[] = {0.5f, 0.9f, 0.99f};
    for (int l = 0; l < 3; l++) {
        st_graph *g = net();
        st_error err = {0};
        ck_assert_int_eq(st_graph_finalize(g, 3, &err), ST_OK);
        float out_s[40], out_d[40];
        float *gs = malloc(g->param_floats * sizeof(float)), *gd = malloc(g->param_floats * sizeof(float));
        int ns, nd;
        run(g, 0, levels[l], out_s, gs, &ns);
        run(g, 1, levels[l], out_d, gd, &nd);
        ck_assert_int_eq(nd, 0);
        if (levels[l] >= 0.9f) ck_assert_int_gt(ns, 0); /* some layer took the sparse path */
        STT_ASSERT_CLOSE(out_s, out_d, 40, 1e-4, 1e-4);
        /* gradients of every parameter; pruned weights' gradients are what the dense path
         * computes there only on the dense run (the optimizer masks them): compare the
         * kept ones */
        for (int i = 0; i < g->n_params; i++) {
            const st_param *p = &g->params[i];
            const unsigned char *m = st_param_mask(g, i);
            double scale = 1e-6;
            for (size_t j = 0; j < p->numel; j++) scale = fmax(scale, fabs(gd[p->offset + j]));
            for (size_t j = 0; j < p->numel; j++) {
                if (m && !m[j]) continue;
                double d = fabs(gs[p->offset + j] - gd[p->offset + j]);
                ck_assert_msg(d <= 1e-4 * scale + 1e-4 * fabs(gd[p->offset + j]),
                              "%s[%zu] at %.2f: sparse %.7g dense %.7g", p->name, j, levels[l],
                              gs[p->offset + j], gd[p->offset + j]);
            }
        }
        free(gs);
        free(gd);
        st_graph_free(g);
    }
}
END_TEST

Suite *exec_sparse_suite(void) {
    Suite *s = suite_create("exec_sparse");
    TCase *tc = tcase_create("paths");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sparse_paths_match_dense);
    suite_add_tcase(s, tc);
    return s;
}
