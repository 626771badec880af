/* ONNX round trips through our own exporter and importer: import(export(g)) computes what
 * g computes (BatchNorm kept: bit for bit; folded: within float rounding), a second round
 * trip changes nothing, and an imported model trains. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_exec.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_test_util.h"

/* BN statistics and affine parameters away from their defaults, biases non-zero, and
 * 90% of every prunable weight zeroed, so folding and exact zeros are exercised. */
static void perturb(st_graph *g, uint64_t seed, int prune) {
    st_rng r;
    st_rng_seed(&r, seed);
    for (int i = 0; i < g->n_params; i++) {
        st_param *p = &g->params[i];
        float *d = st_param_data(g, i);
        const char *leaf = strrchr(p->name, '.');
        leaf = leaf ? leaf + 1 : p->name;
        if (!strcmp(leaf, "running_var")) stt_fill_uniform(d, p->numel, 0.5f, 2.0f, &r);
        else if (p->group != ST_PG_WEIGHT) stt_fill_uniform(d, p->numel, -0.5f, 0.5f, &r);
        if (prune && p->prunable) {
            unsigned char *m = st_param_mask(g, i);
            for (size_t j = 0; j < p->numel; j++)
                if (st_rng_uniform(&r) < 0.9f) m[j] = 0, d[j] = 0.0f;
        }
    }
}

static st_graph *every_op_graph(void) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 12, 10);
    int a = st_g_conv2d(g, "m.0.conv", x, 8, 3, 3, 1, 1, 1, 1, 0);
    a = st_g_silu(g, st_g_batchnorm(g, "m.0.bn", a, 1e-3f, 0.03f));
    int p = st_g_pool_ex(g, ST_OP_MAXPOOL, a, 3, 3, 2, 2, 1, 1, 1, 0);     /* 8x7x6 */
    int b1 = st_g_leakyrelu(g, st_g_conv2d(g, "m.1.cv1", p, 4, 1, 1, 1, 0, 1, 1, 1), 0.1f);
    int b2 = st_g_sigmoid(g, st_g_conv2d(g, "m.1.dw", p, 8, 3, 3, 1, 1, 1, 8, 1));
    int c = st_g_concat(g, (int[]){b1, b2}, 2);                            /* 12x7x6 */
    int u = st_g_upsample(g, c, 2);                                        /* 12x14x12 */
    int d = st_g_conv2d_ex(g, "m.2.conv", u, 8, 3, 1, 2, 2, 1, 0, 1, 1, 2, 1); /* 8x7x6 */
    d = st_g_relu(g, st_g_batchnorm(g, "m.2.bn", d, 1e-5f, 0.1f));
    int s = st_g_add(g, d, p);
    int m = st_g_mul(g, s, st_g_clip(g, s, -1.0f, 1.5f));
    int v = st_g_avgpool(g, m, 3, 1, 1, 0, 0);
    v = st_g_batchnorm(g, "m.3.bn", st_g_add(g, v, m), 1e-5f, 0.1f); /* BN after a non-conv */
    int gp = st_g_global_avgpool(g, st_g_softmax(g, v));
    int f = st_g_dropout(g, st_g_flatten(g, gp), 0.3f);
    st_g_output(g, st_g_linear(g, "m.4", f, 5, 1));
    return g;
}

static float *forward(st_graph *g, const float *x, int N) {
    st_exec e;
    st_error err = {0};
    ck_assert_msg(st_exec_plan(&e, g, N, 0, &err) == ST_OK, "%s", err.msg);
    st_shape s = g->values[g->input], o = g->values[g->output];
    memcpy(st_exec_input(&e), x, (size_t)N * st_shape_numel(s) * sizeof(float));
    st_exec_forward(&e, N, 0);
    size_t n = (size_t)N * st_shape_numel(o);
    float *y = malloc(n * sizeof(float));
    memcpy(y, st_exec_output(&e), n * sizeof(float));
    st_exec_free(&e);
    return y;
}

static st_graph *reimport(const st_graph *g, int fold_bn, uint8_t **bytes, size_t *len) {
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.fold_bn = fold_bn;
    o.keep_dropout = 1;
    st_error err = {0};
    ck_assert_msg(st_onnx_export_memory(g, &o, bytes, len, &err) == ST_OK, "%s", err.msg);
    st_onnx_model *m = NULL;
    ck_assert_msg(st_onnx_read_memory(*bytes, *len, "roundtrip", NULL, &m, &err) == ST_OK, "%s", err.msg);
    st_graph *h = NULL;
    ck_assert_msg(st_onnx_import(m, NULL, &h, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    return h;
}

static void check_round_trip(st_graph *g, int N) {
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 3, &err), ST_OK);
    perturb(g, 17, 1);
    st_shape s = g->values[g->input], o = g->values[g->output];
    size_t nin = (size_t)N * st_shape_numel(s), nout = (size_t)N * st_shape_numel(o);
    float *x = malloc(nin * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 5);
    stt_fill_uniform(x, nin, -1, 1, &r);
    float *y0 = forward(g, x, N);
    for (int fold = 0; fold < 2; fold++) {
        uint8_t *b1 = NULL, *b2 = NULL;
        size_t l1 = 0, l2 = 0;
        st_graph *h = reimport(g, fold, &b1, &l1);
        float *y1 = forward(h, x, N);
        if (!fold) {
            /* same graph, same parameters, same kernels: the same bits */
            ck_assert_mem_eq(y1, y0, nout * sizeof(float));
            ck_assert_int_eq(h->n_params, g->n_params);
            for (int i = 0; i < g->n_params; i++) {
                int j = st_graph_find_param(h, g->params[i].name);
                ck_assert_msg(j >= 0, "%s lost in the round trip", g->params[i].name);
                ck_assert_int_eq(h->params[j].prunable, g->params[i].prunable);
                ck_assert_int_eq(h->params[j].group, g->params[i].group);
                ck_assert_mem_eq(st_param_data(h, j), st_param_data(g, i), g->params[i].numel * sizeof(float));
            }
        } else {
            STT_ASSERT_CLOSE(y1, y0, nout, 1e-5, 1e-4);
        }
        /* a second round trip changes nothing either */
        st_graph *h2 = reimport(h, fold, &b2, &l2);
        float *y2 = forward(h2, x, N);
        ck_assert_mem_eq(y2, y1, nout * sizeof(float));
        free(y2);
        st_graph_free(h2);
        st_graph_free(h);
        free(y1), free(b1), free(b2);
    }
    free(y0), free(x);
}

START_TEST(round_trip_cnn_small) {
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("cnn-small", 1, 28, 28, 10, &g, &err), ST_OK);
    check_round_trip(g, 3);
    st_graph_free(g);
}
END_TEST

START_TEST(round_trip_every_op) {
    st_graph *g = every_op_graph();
    check_round_trip(g, 2);
    st_graph_free(g);
}
END_TEST

/* A model from PyTorch's exporter (torchvision resnet18, BN kept) survives import ->
 * export with BN folded -> import: the folded biases get names of their own (this once
 * produced a duplicate parameter name). Needs the file tests/test_onnx_interop.c makes. */
START_TEST(round_trip_pytorch_model) {
    const char *path = ST_BINARY_DIR "/onnx_models/resnet18_train.onnx";
    st_onnx_model *m = NULL;
    st_error err = {0};
    if (st_onnx_read_file(path, &m, &err) != ST_OK) {
        stt_skip("build/onnx_models/resnet18_train.onnx absent (made by the onnx_interop suite)");
        return;
    }
    st_graph *g = NULL;
    ck_assert_msg(st_onnx_import(m, NULL, &g, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    const int N = 2;
    size_t nin = (size_t)N * st_shape_numel(g->values[g->input]);
    size_t nout = (size_t)N * st_shape_numel(g->values[g->output]);
    float *x = malloc(nin * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 3);
    stt_fill_uniform(x, nin, -1, 1, &r);
    float *y0 = forward(g, x, N);
    uint8_t *b = NULL;
    size_t l = 0;
    st_graph *h = reimport(g, 1, &b, &l);
    ck_assert_int_ge(st_graph_find_param(h, "conv1.bias"), 0); /* named after conv1.weight */
    float *y1 = forward(h, x, N);
    STT_ASSERT_CLOSE(y1, y0, nout, 1e-5, 1e-4);
    free(y0), free(y1), free(x), free(b);
    st_graph_free(h);
    st_graph_free(g);
}
END_TEST

/* One SGD step on an imported model lowers the loss on its batch. */
START_TEST(imported_model_trains) {
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("cnn-small", 1, 28, 28, 10, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 3, &err), ST_OK);
    uint8_t *bytes = NULL;
    size_t len = 0;
    st_graph *h = reimport(g, 0, &bytes, &len);
    const int N = 16, C = 10;
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, h, N, 1, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 9);
    stt_fill_uniform(st_exec_input(&e), (size_t)N * 28 * 28, 0, 1, &r);
    int32_t labels[16];
    for (int i = 0; i < N; i++) labels[i] = i % C;
    float probs[16 * 10], loss[3];
    for (int step = 0; step < 3; step++) {
        e.dropout_seed = 1; /* the same dropout mask each time: the same function */
        st_exec_forward(&e, N, 1);
        loss[step] = st_softmax_xent_forward(probs, st_exec_output(&e), labels, N, C);
        ck_assert(isfinite(loss[step]));
        if (step == 2) break;
        memset(st_exec_doutput(&e), 0, sizeof probs);
        st_softmax_xent_backward(st_exec_doutput(&e), probs, labels, N, C, 1.0f);
        st_graph_zero_grad(h);
        st_exec_backward(&e);
        for (int i = 0; i < h->n_params; i++) {
            if (h->params[i].group == ST_PG_BUFFER) continue;
            float *w = st_param_data(h, i);
            const float *gr = st_param_grad(h, i);
            for (size_t j = 0; j < h->params[i].numel; j++) w[j] -= 0.01f * gr[j];
        }
    }
    ck_assert_msg(loss[1] < loss[0] && loss[2] < loss[1], "loss %g -> %g -> %g", loss[0], loss[1], loss[2]);
    st_exec_free(&e);
    st_graph_free(h);
    st_graph_free(g);
    free(bytes);
}
END_TEST

Suite *onnx_roundtrip_suite(void) {
    Suite *s = suite_create("onnx_roundtrip");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip_cnn_small);
    tcase_add_test(tc, round_trip_every_op);
    tcase_add_test(tc, imported_model_trains);
    tcase_add_test(tc, round_trip_pytorch_model);
    suite_add_tcase(s, tc);
    return s;
}
