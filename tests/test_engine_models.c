/* Helpers for the engine tests (see st_engine_models.h) and a check of the helpers
 * themselves: the written files import with the requested sparsity and BN nodes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_engine_models.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_test_util.h"

void stt_engine_write_model(const char *path, const char *name, int size, double prune,
                            int fold_bn, unsigned seed) {
    st_graph *g = NULL;
    st_error err = {0};
    if (!strcmp(name, "conv3x3")) {
        g = st_graph_new();
        int x = st_g_input(g, 64, 32, 32);
        int y = st_g_conv2d(g, "conv", x, 64, 3, 3, 1, 1, 1, 1, 1);
        st_g_output(g, y);
    } else if (!strcmp(name, "cnn-small")) {
        ck_assert_int_eq(st_model_build(name, 1, 28, 28, 10, &g, &err), ST_OK);
    } else {
        ck_assert_int_eq(st_model_build(name, 3, size, size, 3, &g, &err), ST_OK);
    }
    ck_assert_msg(st_graph_finalize(g, seed, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, seed + 17);
    stt_randomize_bn(g, &r);
    if (prune > 0)
        for (int p = 0; p < g->n_params; p++)
            if (g->params[p].prunable) stt_prune_param(g, p, prune, &r);
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.fold_bn = fold_bn;
    ck_assert_msg(st_onnx_export_file(g, &o, path, &err) == ST_OK, "%s", err.msg);
    st_graph_free(g);
}

static st_graph *import(const char *path) {
    st_onnx_model *m = NULL;
    st_error err = {0};
    ck_assert_msg(st_onnx_read_file(path, &m, &err) == ST_OK, "%s", err.msg);
    st_graph *g = NULL;
    ck_assert_msg(st_onnx_import(m, NULL, &g, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    return g;
}

int stt_engine_ref_forward(const char *path, const float *x, int N, float **outs, size_t *ns) {
    st_graph *g = import(path);
    st_error err = {0};
    st_exec e;
    ck_assert_msg(st_exec_plan(&e, g, N, 0, &err) == ST_OK, "%s", err.msg);
    e.dense_only = 1;
    memcpy(st_exec_input(&e), x, (size_t)N * st_shape_numel(g->values[g->input]) * sizeof(float));
    st_exec_forward(&e, N, 0);
    int n = g->n_outputs;
    for (int k = 0; k < n; k++) {
        ns[k] = (size_t)N * st_shape_numel(g->values[g->outputs[k]]);
        outs[k] = malloc(ns[k] * sizeof(float));
        ck_assert_ptr_nonnull(outs[k]);
        memcpy(outs[k], e.act[g->outputs[k]], ns[k] * sizeof(float));
    }
    st_exec_free(&e);
    st_graph_free(g);
    return n;
}

size_t stt_engine_activation_bytes(const char *path, int N) {
    st_graph *g = import(path);
    size_t sum = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        if (nd->op == ST_OP_FLATTEN || nd->op == ST_OP_INPUT) continue;
        sum += (size_t)N * st_shape_numel(g->values[nd->output]) * sizeof(float);
    }
    st_graph_free(g);
    return sum;
}

START_TEST(written_models_import) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-models");
    snprintf(path, sizeof path, "%s/cnn-bn.onnx", dir);
    stt_engine_write_model(path, "cnn-small", 28, 0.9, 0, 3);
    st_graph *g = import(path);
    int bn = 0;
    for (int i = 0; i < g->n_nodes; i++) bn += g->nodes[i].op == ST_OP_BATCHNORM;
    ck_assert_int_eq(bn, 2);
    double s = 0;
    int n = 0;
    for (int p = 0; p < g->n_params; p++)
        if (g->params[p].prunable) s += st_param_sparsity(g, p), n++;
    ck_assert_int_gt(n, 0);
    ck_assert_msg(s / n > 0.89 && s / n < 0.91, "mean sparsity %g", s / n);
    st_graph_free(g);
}
END_TEST

Suite *engine_models_suite(void) {
    Suite *s = suite_create("engine_models");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, written_models_import);
    suite_add_tcase(s, tc);
    return s;
}

se_compiled *stt_engine_compile(const char *path, const se_options *o) {
    char err[1024];
    se_model *m = NULL;
    ck_assert_msg(se_load(path, &m, err, sizeof err) == 0, "%s", err);
    se_compiled *c = NULL;
    const int rc = se_compile(m, o, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    se_model_free(m); /* the compiled model keeps what it needs */
    return c;
}
