/* Test graphs and readers of exported bytes shared by the ONNX export suites
 * (test_onnx_export.c: the file's structure; test_onnx_export_ort.c: the same files
 * through onnx.checker and ONNX Runtime). */
#ifndef ST_ONNX_EXPORT_TEST_UTIL_H
#define ST_ONNX_EXPORT_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_test_util.h"

/* ---- graphs ---------------------------------------------------------------------- */

static inline st_graph *cnn_small(uint64_t seed) {
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("cnn-small", 1, 28, 28, 10, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, seed, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, seed + 1);
    stt_randomize_bn(g, &r);
    return g;
}

/* Every op kind, with the cases the exporter treats differently: BN folded into a conv
 * with and without bias, BN kept (its conv output read twice; not after a conv), per-axis
 * conv/pool, ceil-mode and padded pools, a linear on a 4-D value, Add of a 2-D and a
 * 4-D value, a conv on a 2-D value, softmax on 4-D and 2-D values. */
static inline st_graph *every_op(uint64_t seed) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 9, 9);
    int a = st_g_conv2d(g, "m.c0", x, 8, 3, 3, 1, 1, 1, 1, 1);
    a = st_g_leakyrelu(g, st_g_batchnorm(g, "m.bn0", a, 1e-5f, 0.1f), 0.1f);
    int b = st_g_conv2d_ex(g, "m.c1", a, 8, 3, 1, 1, 1, 1, 0, 1, 1, 2, 0);
    b = st_g_batchnorm(g, "m.bn1", st_g_sigmoid(g, st_g_silu(g, b)), 1e-3f, 0.03f);
    int c = st_g_conv2d(g, "m.c2", a, 8, 1, 1, 1, 0, 1, 1, 0);
    int cb = st_g_batchnorm(g, "m.bn2", c, 1e-5f, 0.1f);
    int s = st_g_dropout(g, st_g_add(g, cb, st_g_mul(g, c, b)), 0.3f); /* 8x9x9 */
    int p[4];
    p[0] = st_g_maxpool(g, s, 3, 2, 1, 1);                                 /* 8x5x5 */
    p[1] = st_g_avgpool(g, s, 3, 2, 1, 1, 0);                              /* 8x5x5 */
    p[2] = st_g_avgpool(g, s, 3, 2, 1, 0, 1);                              /* 8x5x5 */
    p[3] = st_g_pool_ex(g, ST_OP_MAXPOOL, s, 3, 1, 2, 2, 1, 0, 0, 0);      /* 8x5x5 */
    int u = st_g_upsample(g, st_g_concat(g, p, 4), 2);                     /* 32x10x10 */
    u = st_g_softmax(g, st_g_clip(g, u, -0.2f, 0.6f));
    int gp = st_g_global_avgpool(g, u);                                    /* 32x1x1 */
    int h = st_g_linear(g, "m.fc0", gp, 12, 1);                            /* 2-D */
    int hc = st_g_conv2d(g, "m.c3", gp, 12, 1, 1, 1, 0, 1, 1, 1);         /* 4-D */
    h = st_g_relu(g, st_g_add(g, h, hc));
    h = st_g_conv2d(g, "m.c4", h, 12, 1, 1, 1, 0, 1, 1, 0);                /* conv on 2-D */
    h = st_g_batchnorm(g, "m.bn4", h, 1e-5f, 0.1f);
    h = st_g_dropout(g, st_g_flatten(g, h), 0.5f);
    int y = st_g_softmax(g, st_g_linear(g, "m.fc1", h, 6, 0));
    st_g_output(g, y);
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, seed, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, seed + 1);
    stt_randomize_bn(g, &r);
    return g;
}

/* ---- reading the exported bytes --------------------------------------------------- */

static inline Onnx__ModelProto *export_unpack(const st_graph *g, const st_onnx_export_opts *o) {
    uint8_t *buf = NULL;
    size_t len = 0;
    st_error err = {0};
    ck_assert_msg(st_onnx_export_memory(g, o, &buf, &len, &err) == ST_OK, "%s", err.msg);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    ck_assert_ptr_nonnull(m);
    return m;
}

static inline const Onnx__TensorProto *find_init(const Onnx__ModelProto *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (strcmp(m->graph->initializer[i]->name, name) == 0) return m->graph->initializer[i];
    return NULL;
}

static inline int count_op(const Onnx__ModelProto *m, const char *op) {
    int n = 0;
    for (size_t i = 0; i < m->graph->n_node; i++) n += strcmp(m->graph->node[i]->op_type, op) == 0;
    return n;
}

static inline const char *meta(const Onnx__ModelProto *m, const char *key) {
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(m->metadata_props[i]->key, key) == 0) return m->metadata_props[i]->value;
    return NULL;
}

/* Number of initializers the graph's parameters become: all of them, less the four of
 * each folded BN, plus a bias for each folded conv that had none. */
static inline void check_common(const Onnx__ModelProto *m) {
    ck_assert(m->has_ir_version && m->ir_version == 7);
    ck_assert_uint_eq(m->n_opset_import, 1);
    ck_assert_str_eq(m->opset_import[0]->domain ? m->opset_import[0]->domain : "", "");
    ck_assert_int_eq(m->opset_import[0]->version, 13);
    ck_assert_str_eq(m->producer_name, "sparsetrain");
    const Onnx__GraphProto *gp = m->graph;
    ck_assert_uint_eq(gp->n_input, 1);
    ck_assert_uint_eq(gp->n_output, 1);
    ck_assert_str_eq(gp->input[0]->name, "input");
    ck_assert_str_eq(gp->output[0]->name, "output");
    const Onnx__TensorShapeProto *sh = gp->input[0]->type->tensor_type->shape;
    ck_assert_uint_eq(sh->n_dim, 4);
    ck_assert_int_eq(sh->dim[0]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
    ck_assert_str_eq(sh->dim[0]->dim_param, "N");
    sh = gp->output[0]->type->tensor_type->shape;
    ck_assert_str_eq(sh->dim[0]->dim_param, "N");
    /* Tensor names are SSA: every node output is new and no initializer is produced. */
    for (size_t i = 0; i < gp->n_node; i++) {
        const char *o = gp->node[i]->output[0];
        ck_assert_msg(!find_init(m, o), "node output %s is an initializer name", o);
        ck_assert_str_ne(o, "input");
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(o, gp->node[j]->output[0]) != 0, "%s produced twice", o);
    }
}

#endif
