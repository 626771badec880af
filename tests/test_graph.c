/* The graph and its executor: structure, names, planning, and gradients through a
 * network that uses every operation, checked by central finite differences. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_exec.h"
#include "st_models.h"
#include "st_test_util.h"

/* A small network touching every op kind. Smooth activations (no ReLU kink near the
 * sampled points) keep finite differences meaningful; max-pool inputs are distinct. */
static st_graph *all_ops_graph(int with_dropout) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 8, 8);
    int a = st_g_conv2d(g, "model.0.conv", x, 6, 3, 3, 1, 1, 1, 1, 0);
    a = st_g_silu(g, st_g_batchnorm(g, "model.0.bn", a, 1e-3f, 0.03f));
    int p = st_g_maxpool(g, a, 2, 2, 0, 0);                        /* 6x4x4 */
    int b1 = st_g_leakyrelu(g, st_g_conv2d(g, "model.1.cv1", p, 4, 1, 1, 1, 0, 1, 1, 1), 0.1f);
    int b2 = st_g_sigmoid(g, st_g_conv2d(g, "model.1.dw", p, 6, 3, 3, 1, 1, 1, 6, 1));
    int c = st_g_concat(g, (int[]){b1, b2}, 2);                    /* 10x4x4 */
    int u = st_g_upsample(g, c, 2);                                /* 10x8x8 */
    int d = st_g_conv2d(g, "model.2.conv", u, 6, 3, 3, 2, 1, 1, 2, 1); /* 6x4x4, groups 2 */
    int s = st_g_add(g, d, p);
    int m = st_g_mul(g, s, st_g_sigmoid(g, s));
    int r = st_g_relu(g, st_g_avgpool(g, m, 3, 1, 1, 0, 1));
    /* per-axis kernel/stride/padding, clip and channel softmax */
    int k = st_g_conv2d_ex(g, "model.4", st_g_clip(g, m, -2.0f, 2.0f), 6, 3, 1, 1, 2, 1, 0, 1, 1, 1, 1);
    k = st_g_pool_ex(g, ST_OP_AVGPOOL, k, 3, 1, 1, 1, 1, 0, 0, 0);  /* 6x4x2 */
    k = st_g_upsample(g, st_g_pool_ex(g, ST_OP_MAXPOOL, k, 2, 1, 2, 1, 0, 0, 1, 0), 2); /* 6x4x4 */
    r = st_g_add(g, r, st_g_softmax(g, st_g_conv2d_ex(g, "model.5", k, 6, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1)));
    int gp = st_g_global_avgpool(g, st_g_add(g, r, m));
    int f = st_g_flatten(g, gp);
    if (with_dropout) f = st_g_dropout(g, f, 0.5f);
    int y = st_g_linear(g, "model.3", f, 5, 1);
    st_g_output(g, y);
    return g;
}

static double loss_of(st_exec *e, const float *w_out, int N) {
    st_exec_forward(e, N, 1);
    const float *y = st_exec_output(e);
    size_t n = (size_t)N * st_shape_numel(e->g->values[e->g->output]);
    double l = 0;
    for (size_t i = 0; i < n; i++) l += (double)y[i] * w_out[i];
    return l;
}

START_TEST(test_graph_gradients_by_finite_differences) {
    st_graph *g = all_ops_graph(0);
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 5, &err), ST_OK);
    const int N = 3;
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, N, 1, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 11);
    size_t n_in = (size_t)N * 3 * 8 * 8, n_out = (size_t)N * 5;
    float *x = malloc(n_in * sizeof(float)), *w_out = malloc(n_out * sizeof(float));
    stt_fill_uniform(x, n_in, -1, 1, &r);
    stt_fill_uniform(w_out, n_out, -1, 1, &r);
    memcpy(st_exec_input(&e), x, n_in * sizeof(float));
    /* BN running stats change on every training forward but do not affect the output. */
    loss_of(&e, w_out, N);
    memcpy(st_exec_doutput(&e), w_out, n_out * sizeof(float));
    st_graph_zero_grad(g);
    st_exec_backward(&e);
    int checked = 0, bad = 0;
    for (int pi = 0; pi < g->n_params; pi++) {
        const st_param *p = &g->params[pi];
        if (p->group == ST_PG_BUFFER) continue;
        float *w = st_param_data(g, pi);
        const float *gr = st_param_grad(g, pi);
        for (int t = 0; t < 4; t++) {
            size_t j = st_rng_below(&r, (uint32_t)p->numel);
            float keep = w[j], h = 1e-2f;
            w[j] = keep + h;
            double lp = loss_of(&e, w_out, N);
            w[j] = keep - h;
            double lm = loss_of(&e, w_out, N);
            w[j] = keep;
            double num = (lp - lm) / (2 * h), ana = gr[j];
            double tol = 2e-2 * fmax(fabs(num), fabs(ana)) + 2e-3;
            if (fabs(num - ana) > tol) {
                bad++;
                fprintf(stderr, "grad %s[%zu]: analytic %.6f numeric %.6f\n", p->name, j, ana, num);
            }
            checked++;
        }
    }
    ck_assert_int_gt(checked, 40);
    ck_assert_int_eq(bad, 0);
    st_exec_free(&e);
    st_graph_free(g);
    free(x);
    free(w_out);
}
END_TEST

START_TEST(test_graph_names_groups_and_flags) {
    st_graph *g = all_ops_graph(1);
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    int w = st_graph_find_param(g, "model.0.conv.weight");
    ck_assert_int_ge(w, 0);
    ck_assert(g->params[w].prunable);
    ck_assert_int_eq(g->params[w].group, ST_PG_WEIGHT);
    ck_assert_int_eq(g->params[w].shape[0], 6);
    ck_assert_int_eq(g->params[w].shape[1], 3);
    ck_assert_int_eq(st_graph_find_param(g, "model.0.conv.bias"), -1);
    int gm = st_graph_find_param(g, "model.0.bn.weight");
    ck_assert_int_eq(g->params[gm].group, ST_PG_BN);
    ck_assert(!g->params[gm].prunable);
    int rv = st_graph_find_param(g, "model.0.bn.running_var");
    ck_assert_int_eq(g->params[rv].group, ST_PG_BUFFER);
    ck_assert_float_eq(st_param_data(g, rv)[0], 1.0f);
    int lb = st_graph_find_param(g, "model.3.bias");
    ck_assert_int_eq(g->params[lb].group, ST_PG_BIAS);
    ck_assert(st_param_mask(g, w) != NULL && st_param_mask(g, lb) == NULL);
    ck_assert_int_eq(st_param_mask(g, w)[0], 1);
    /* every parameter 64-byte aligned in the arena */
    for (int i = 0; i < g->n_params; i++) ck_assert_int_eq(((uintptr_t)st_param_data(g, i)) % 64, 0);
    /* depthwise conv weight is [C, 1, k, k] */
    int dw = st_graph_find_param(g, "model.1.dw.weight");
    ck_assert_int_eq(g->params[dw].shape[1], 1);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, 4, 1, &err), ST_OK);
    ck_assert_uint_eq(e.arena_floats, st_exec_arena_floats(g, 4, 1));
    ck_assert_uint_lt(st_exec_arena_floats(g, 4, 0), e.arena_floats);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

START_TEST(test_graph_builder_errors_are_sticky) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 4, 4);
    int bad = st_g_conv2d(g, "model.0.conv", x, 8, 7, 7, 1, 0, 1, 1, 0); /* 7x7 on 4x4 */
    ck_assert_int_eq(bad, -1);
    ck_assert_int_eq(st_g_relu(g, x), -1); /* later calls fail too */
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "model.0.conv"));
    st_graph_free(g);

    g = st_graph_new();
    x = st_g_input(g, 3, 4, 4);
    ck_assert_int_eq(st_g_conv2d(g, "a", x, 4, 3, 3, 1, 1, 1, 2, 0), -1); /* 3 % 2 groups */
    st_graph_free(g);
    g = st_graph_new();
    x = st_g_input(g, 3, 4, 4);
    int y = st_g_conv2d(g, "a", x, 4, 3, 3, 1, 1, 1, 1, 0);
    ck_assert_int_eq(st_g_conv2d(g, "a", y, 4, 3, 3, 1, 1, 1, 1, 0), -1); /* duplicate name */
    st_graph_free(g);
}
END_TEST

START_TEST(test_dropout_train_vs_eval) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 100, 1, 1);
    st_g_output(g, st_g_dropout(g, x, 0.5f));
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, 2, 1, &err), ST_OK);
    for (int i = 0; i < 200; i++) st_exec_input(&e)[i] = 1.0f;
    e.dropout_seed = 42;
    st_exec_forward(&e, 2, 1);
    int zeros = 0;
    for (int i = 0; i < 200; i++) {
        float v = st_exec_output(&e)[i];
        ck_assert(v == 0.0f || v == 2.0f);
        zeros += v == 0.0f;
    }
    ck_assert(zeros > 60 && zeros < 140);
    st_exec_forward(&e, 2, 0);
    for (int i = 0; i < 200; i++) ck_assert_float_eq(st_exec_output(&e)[i], 1.0f);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

START_TEST(test_cnn_small_shape_and_params) {
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("cnn-small", 1, 28, 28, 10, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    /* conv 288, BN 64, conv 18432, BN 128, fc 401408 + 128, fc 1280 + 10: as in PyTorch */
    ck_assert_uint_eq(st_graph_num_trainable(g), 288 + 64 + 18432 + 128 + 401408 + 128 + 1280 + 10);
    ck_assert_int_eq(g->values[g->output].c, 10);
    st_graph_free(g);
    ck_assert_int_eq(st_model_build("resnet-huge", 1, 28, 28, 10, &g, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "cnn-small"));
}
END_TEST

START_TEST(test_graph_rename_param) {
    st_graph *g = all_ops_graph(0);
    int w = st_graph_find_param(g, "model.0.conv.weight");
    ck_assert_int_eq(st_graph_rename_param(g, w, "onnx::Conv_12"), 0);
    ck_assert_int_eq(st_graph_find_param(g, "onnx::Conv_12"), w);
    ck_assert_int_eq(st_graph_find_param(g, "model.0.conv.weight"), -1);
    /* a duplicate name is a sticky error reported by finalize */
    ck_assert_int_eq(st_graph_rename_param(g, w, "model.3.bias"), -1);
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate parameter name model.3.bias"));
    st_graph_free(g);
}
END_TEST

/* Two outputs (as a detector's scales): backward with gradients on both equals the sum
 * of the backward passes with one gradient each, and the outputs' gradients survive. */
START_TEST(test_graph_two_outputs) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 2, 6, 6);
    int a = st_g_silu(g, st_g_conv2d(g, "m.0", x, 4, 3, 3, 1, 1, 1, 1, 1));
    int b = st_g_conv2d(g, "m.1", a, 3, 3, 3, 2, 1, 1, 1, 1); /* 3x3x3 */
    int c = st_g_conv2d(g, "m.2", st_g_upsample(g, b, 2), 5, 1, 1, 1, 0, 1, 1, 1);
    st_g_output(g, c); /* 5x6x6, listed first */
    st_g_output(g, b);
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 2, &err), ST_OK);
    ck_assert_int_eq(g->n_outputs, 2);
    ck_assert_int_eq(g->output, c);
    const int N = 2;
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, N, 1, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 4);
    stt_fill_uniform(st_exec_input(&e), (size_t)N * 72, -1, 1, &r);
    size_t nc = (size_t)N * 180, nb = (size_t)N * 27;
    float gc[360], gb[54];
    stt_fill_uniform(gc, nc, -1, 1, &r);
    stt_fill_uniform(gb, nb, -1, 1, &r);
    float *sum = calloc(g->param_floats, sizeof(float)), *both = calloc(g->param_floats, sizeof(float));
    for (int pass = 0; pass < 3; pass++) {
        st_exec_forward(&e, N, 1);
        memcpy(e.dact[c], gc, nc * sizeof(float));
        memcpy(e.dact[b], gb, nb * sizeof(float));
        if (pass == 0) memset(e.dact[b], 0, nb * sizeof(float));
        if (pass == 1) memset(e.dact[c], 0, nc * sizeof(float));
        st_graph_zero_grad(g);
        st_exec_backward(&e);
        for (size_t k = 0; k < g->param_floats; k++) (pass < 2 ? sum : both)[k] += g->grad_data[k];
    }
    STT_ASSERT_CLOSE(both, sum, g->param_floats, 1e-6, 1e-5);
    double mag = 0;
    for (size_t k = 0; k < g->param_floats; k++) mag += fabs(both[k]);
    ck_assert(mag > 0);
    st_g_output(g, c); /* after finalize: refused */
    free(sum), free(both);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

static float *copy_floats(const float *src, size_t n) {
    float *p = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* BN+activation fusion in the executor: pairs whose BN output has one reader (a
 * ReLU, LeakyReLU or SiLU) and is no graph output are fused, the others not; outputs,
 * running statistics and gradients equal to rounding with fusion off. */
START_TEST(test_exec_bn_act_fusion) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 7, 5);
    int a = st_g_silu(g, st_g_batchnorm(g, "m.0.bn", st_g_conv2d(g, "m.0.conv", x, 6, 3, 3, 1, 1, 1, 1, 0), 1e-3f, 0.03f));
    int b = st_g_relu(g, st_g_batchnorm(g, "m.1.bn", st_g_conv2d(g, "m.1.conv", a, 5, 3, 3, 2, 1, 1, 1, 0), 1e-5f, 0.1f));
    int c = st_g_batchnorm(g, "m.2.bn", b, 1e-5f, 0.1f);          /* two readers: not fused */
    int d = st_g_add(g, st_g_relu(g, c), c);
    int e2 = st_g_leakyrelu(g, st_g_batchnorm(g, "m.3.bn", st_g_conv2d(g, "m.3.conv", d, 4, 1, 1, 1, 0, 1, 1, 0), 1e-5f, 0.1f), 0.1f);
    int o2 = st_g_batchnorm(g, "m.4.bn", e2, 1e-5f, 0.1f);        /* a graph output: not fused */
    int s = st_g_silu(g, o2);
    int y = st_g_linear(g, "m.5", st_g_flatten(g, st_g_global_avgpool(g, s)), 3, 1);
    st_g_output(g, y);
    st_g_output(g, o2);
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 7, &err), ST_OK);
    const int N = 3;
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, N, 1, &err), ST_OK);
    ck_assert_int_eq(st_exec_set_fusion(&e, 1), ST_OK);
    ck_assert_int_eq(st_exec_fused_count(&e), 3);
    ck_assert_ptr_nonnull(e.fuse);
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == ST_OP_BATCHNORM)
            ck_assert_int_eq(e.fuse[i] >= 0, strncmp(g->nodes[i].name, "m.2", 3) && strncmp(g->nodes[i].name, "m.4", 3));
    st_rng r;
    st_rng_seed(&r, 21);
    size_t n_in = (size_t)N * 3 * 7 * 5, ny = (size_t)N * 3, no2 = (size_t)N * st_shape_numel(g->values[o2]);
    stt_fill_uniform(st_exec_input(&e), n_in, -1, 1, &r);
    float *p0 = malloc(g->param_floats * sizeof(float));
    memcpy(p0, g->param_data, g->param_floats * sizeof(float));
    float *gy = malloc(ny * sizeof(float)), *go2 = malloc(no2 * sizeof(float));
    stt_fill_uniform(gy, ny, -1, 1, &r);
    stt_fill_uniform(go2, no2, -1, 1, &r);
    float *out[2][2], *params[2], *grads[2];
    for (int fused = 0; fused < 2; fused++) {
        ck_assert_int_eq(st_exec_set_fusion(&e, fused), ST_OK);
        ck_assert_int_eq(st_exec_fused_count(&e), fused ? 3 : 0);
        memcpy(g->param_data, p0, g->param_floats * sizeof(float));
        st_exec_forward(&e, N, 1);
        memcpy(e.dact[y], gy, ny * sizeof(float));
        memcpy(e.dact[o2], go2, no2 * sizeof(float));
        st_graph_zero_grad(g);
        st_exec_backward(&e);
        out[fused][0] = copy_floats(e.act[y], ny);
        out[fused][1] = copy_floats(e.act[o2], no2);
        params[fused] = copy_floats(g->param_data, g->param_floats);
        grads[fused] = copy_floats(g->grad_data, g->param_floats);
    }
    /* bit-identical but for SiLU's exp, a polynomial on AVX2 CPUs */
    STT_ASSERT_CLOSE(out[1][0], out[0][0], ny, 1e-6, 1e-5);
    STT_ASSERT_CLOSE(out[1][1], out[0][1], no2, 1e-6, 1e-5);
    STT_ASSERT_CLOSE(params[1], params[0], g->param_floats, 1e-6, 1e-5); /* running stats */
    STT_ASSERT_CLOSE(grads[1], grads[0], g->param_floats, 1e-5, 1e-4);
    double mag = 0;
    for (size_t k = 0; k < g->param_floats; k++) mag += fabs(grads[1][k]);
    ck_assert(mag > 0);
    ck_assert_str_eq(st_exec_node_label(&e, 2), "batchnorm+silu");
    for (int f = 0; f < 2; f++) free(out[f][0]), free(out[f][1]), free(params[f]), free(grads[f]);
    free(p0), free(gy), free(go2);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

Suite *graph_suite(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_graph_gradients_by_finite_differences);
    tcase_add_test(tc, test_graph_names_groups_and_flags);
    tcase_add_test(tc, test_graph_rename_param);
    tcase_add_test(tc, test_graph_two_outputs);
    tcase_add_test(tc, test_exec_bn_act_fusion);
    tcase_add_test(tc, test_graph_builder_errors_are_sticky);
    tcase_add_test(tc, test_dropout_train_vs_eval);
    tcase_add_test(tc, test_cnn_small_shape_and_params);
    suite_add_tcase(s, tc);
    return s;
}
