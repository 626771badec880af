/* ONNX import: small hand-built models per operator (odd shapes, per-axis attributes)
 * imported and run in eval mode against the same network built directly with our
 * builders and the same weights; fusions, shape folding, parameter names and flags,
 * and the errors. Interop with PyTorch exports and ONNX Runtime is in test_onnx_interop.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_exec.h"
#include "st_onnx.h"
#include "st_onnx_build.h"
#include "st_test_util.h"

/* Random parameters; variances positive. */
static void randomize(st_graph *g, uint64_t seed) {
    st_rng r;
    st_rng_seed(&r, seed);
    for (int p = 0; p < g->n_params; p++) {
        int var = strstr(g->params[p].name, "var") != NULL;
        stt_fill_uniform(st_param_data(g, p), g->params[p].numel, var ? 0.5f : -1.0f, var ? 1.5f : 1.0f, &r);
    }
}

static st_graph *finalize(st_graph *g) {
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, 1, &err) == ST_OK, "%s", err.msg);
    randomize(g, 77);
    return g;
}

/* Initializer copied from the reference graph's parameter of the same name. */
static void init_from(stb *b, const st_graph *ref, const char *name) {
    int p = st_graph_find_param(ref, name);
    ck_assert_msg(p >= 0, "no param %s", name);
    stb_init(b, name, ref->params[p].ndim, ref->params[p].shape, st_param_data(ref, p));
}

static st_status import(stb *b, const st_onnx_import_opts *o, st_graph **g, st_error *err) {
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    st_onnx_model *m = NULL;
    st_status s = st_onnx_read_memory(buf, len, "m.onnx", NULL, &m, err);
    free(buf);
    *g = NULL;
    if (s) return s;
    s = st_onnx_import(m, o, g, err);
    st_onnx_model_free(m);
    if (s) ck_assert_ptr_null(*g);
    return s;
}

static st_graph *import_ok(stb *b, const st_onnx_import_opts *o) {
    st_graph *g;
    st_error err = {0};
    ck_assert_msg(import(b, o, &g, &err) == ST_OK, "%s", err.msg);
    return g;
}

static void expect_import_error(stb *b, const char *want) {
    st_graph *g;
    st_error err = {0};
    ck_assert_int_eq(import(b, NULL, &g, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, want) && strstr(err.msg, "m.onnx"), "'%s' lacks '%s'", err.msg, want);
}

static float *forward(const st_graph *g, const float *x, int N, size_t *n_out) {
    st_exec e;
    st_error err = {0};
    ck_assert_msg(st_exec_plan(&e, g, N, 0, &err) == ST_OK, "%s", err.msg);
    memcpy(st_exec_input(&e), x, (size_t)N * st_shape_numel(g->values[g->input]) * sizeof(float));
    st_exec_forward(&e, N, 0);
    *n_out = (size_t)N * st_shape_numel(g->values[g->output]);
    float *y = malloc(*n_out * sizeof(float));
    memcpy(y, st_exec_output(&e), *n_out * sizeof(float));
    st_exec_free(&e);
    return y;
}

static void assert_same_forward(const st_graph *ref, const st_graph *imp, int N) {
    st_shape a = ref->values[ref->input], b = imp->values[imp->input];
    ck_assert(a.c == b.c && a.h == b.h && a.w == b.w);
    a = ref->values[ref->output], b = imp->values[imp->output];
    ck_assert_msg(a.c == b.c && a.h == b.h && a.w == b.w, "output %dx%dx%d vs %dx%dx%d", a.c, a.h, a.w, b.c, b.h, b.w);
    size_t nx = (size_t)N * st_shape_numel(ref->values[ref->input]), n1, n2;
    float *x = malloc(nx * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 3);
    stt_fill_uniform(x, nx, -2, 2, &r);
    float *y1 = forward(ref, x, N, &n1), *y2 = forward(imp, x, N, &n2);
    ck_assert_uint_eq(n1, n2);
    STT_ASSERT_CLOSE(y2, y1, n1, 1e-5, 1e-4);
    free(x), free(y1), free(y2);
}

static int count_op(const st_graph *g, st_op_type op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static void const_node(stb *b, const char *out, int ndim, const int64_t *dims, const float *f, const int64_t *i) {
    Onnx__NodeProto *n = stb_node(b, "Constant", NULL, "", out);
    stb_attr_t(b, n, "value", f ? stb_tensor(b, out, ndim, dims, f) : stb_tensor_i64(b, out, ndim, dims, i));
}

/* Conv (grouped, per-axis stride/pad/dilation, SAME_UPPER), BN, LeakyRelu, MaxPool
 * (ceil), AveragePool, x*Sigmoid(x), Clip from Constant inputs, Concat, Resize,
 * Add, GlobalAveragePool, Flatten, Gemm, Softmax. */
static st_graph *chain_ref(int with_softmax) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 7, 9);
    int a = st_g_conv2d_ex(g, "c1", x, 6, 3, 2, 2, 1, 1, 0, 1, 2, 3, 1);
    a = st_g_leakyrelu(g, st_g_batchnorm(g, "bn1", a, 1e-3f, 0.1f), 0.2f);
    a = st_g_pool_ex(g, ST_OP_MAXPOOL, a, 3, 2, 2, 1, 1, 0, 1, 0);
    a = st_g_pool_ex(g, ST_OP_AVGPOOL, a, 3, 3, 1, 1, 1, 1, 0, 0);
    int s = st_g_silu(g, a);
    int c = st_g_clip(g, st_g_relu(g, st_g_conv2d_ex(g, "c2", s, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0)), 0.0f, 0.5f);
    int cat = st_g_concat(g, (int[]){c, s}, 2);
    int u = st_g_upsample(g, cat, 2);
    int v = st_g_add(g, u, st_g_relu(g, u));
    int f = st_g_flatten(g, st_g_global_avgpool(g, v));
    int y = st_g_linear(g, "fc", f, 5, 1);
    if (with_softmax) y = st_g_softmax(g, y);
    st_g_output(g, y);
    return finalize(g);
}

static stb *chain_onnx(const st_graph *ref) {
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 7, 9});
    const char *names[] = {"c1.weight", "c1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                           "bn1.running_var", "c2.weight", "fc.weight", "fc.bias"};
    for (int i = 0; i < 9; i++) init_from(b, ref, names[i]);
    Onnx__NodeProto *n = stb_node(b, "Conv", "conv1", "x,c1.weight,c1.bias", "a1");
    stb_attr_i(b, n, "group", 3);
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 1});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 0, 1, 0});
    stb_attr_ints(b, n, "dilations", 2, (int64_t[]){1, 2});
    n = stb_node(b, "BatchNormalization", "bn", "a1,bn1.weight,bn1.bias,bn1.running_mean,bn1.running_var", "a2");
    stb_attr_f(b, n, "epsilon", 1e-3f);
    stb_attr_f(b, n, "momentum", 0.9f);
    stb_attr_f(b, stb_node(b, "LeakyRelu", "lr", "a2", "a3"), "alpha", 0.2f);
    n = stb_node(b, "MaxPool", "mp", "a3", "a4");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){3, 2});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 1});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 0, 1, 0});
    stb_attr_i(b, n, "ceil_mode", 1);
    n = stb_node(b, "AveragePool", "ap", "a4", "a5");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){3, 3});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_node(b, "Sigmoid", "sig", "a5", "sg");
    stb_node(b, "Mul", "silu", "sg,a5", "s");
    n = stb_node(b, "Conv", "conv2", "s,c2.weight", "c2o");
    stb_attr_s(b, n, "auto_pad", "SAME_UPPER");
    stb_node(b, "Relu", "r2", "c2o", "r2o");
    const_node(b, "lo", 0, NULL, (float[]){0.0f}, NULL);
    const_node(b, "hi", 0, NULL, (float[]){0.5f}, NULL);
    stb_node(b, "Clip", "clip", "r2o,lo,hi", "cl");
    stb_attr_i(b, stb_node(b, "Concat", "cat", "cl,s", "cat"), "axis", 1);
    stb_init(b, "scales", 1, (int64_t[]){4}, (float[]){1, 1, 2, 2});
    n = stb_node(b, "Resize", "up", "cat,,scales", "u");
    stb_attr_s(b, n, "mode", "nearest");
    stb_attr_s(b, n, "coordinate_transformation_mode", "asymmetric");
    stb_attr_s(b, n, "nearest_mode", "floor");
    stb_node(b, "Relu", "r3", "u", "ur");
    stb_node(b, "Add", "add", "u,ur", "v");
    stb_node(b, "GlobalAveragePool", "gap", "v", "g");
    stb_node(b, "Flatten", "flat", "g", "f");
    stb_attr_i(b, stb_node(b, "Gemm", "fc", "f,fc.weight,fc.bias", "logits"), "transB", 1);
    stb_attr_i(b, stb_node(b, "Softmax", "sm", "logits", "y"), "axis", 1);
    stb_output(b, "y");
    return b;
}

START_TEST(op_chain) {
    st_graph *ref = chain_ref(1), *ref_logits = chain_ref(0);
    stb *b = chain_onnx(ref);
    st_graph *g = import_ok(b, NULL);
    assert_same_forward(ref, g, 3);
    ck_assert_int_eq(count_op(g, ST_OP_SILU), 1);
    ck_assert_int_eq(count_op(g, ST_OP_SIGMOID), 0);
    ck_assert_int_eq(count_op(g, ST_OP_MUL), 0);
    ck_assert_int_eq(count_op(g, ST_OP_SOFTMAX), 1);
    /* momentum converted to the PyTorch convention */
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == ST_OP_BATCHNORM) ck_assert_float_eq_tol(g->nodes[i].a.bn.momentum, 0.1f, 1e-6f);
    /* names, groups, prunable flags */
    struct {
        const char *name;
        int group, prunable;
    } want[] = {{"c1.weight", ST_PG_WEIGHT, 1}, {"c1.bias", ST_PG_BIAS, 0}, {"bn1.weight", ST_PG_BN, 0},
                {"bn1.bias", ST_PG_BIAS, 0}, {"bn1.running_mean", ST_PG_BUFFER, 0},
                {"bn1.running_var", ST_PG_BUFFER, 0}, {"c2.weight", ST_PG_WEIGHT, 1},
                {"fc.weight", ST_PG_WEIGHT, 1}, {"fc.bias", ST_PG_BIAS, 0}};
    ck_assert_int_eq(g->n_params, 9);
    for (int i = 0; i < 9; i++) {
        int p = st_graph_find_param(g, want[i].name);
        ck_assert_msg(p >= 0, "%s missing", want[i].name);
        ck_assert_int_eq(g->params[p].group, want[i].group);
        ck_assert_int_eq(g->params[p].prunable, want[i].prunable);
        int q = st_graph_find_param(ref, want[i].name);
        ck_assert_mem_eq(st_param_data(g, p), st_param_data(ref, q), ref->params[q].numel * sizeof(float));
    }
    st_graph_free(g);
    /* strip_softmax drops the trailing Softmax */
    st_onnx_import_opts o = {.strip_softmax = 1};
    g = import_ok(b, &o);
    ck_assert_int_eq(count_op(g, ST_OP_SOFTMAX), 0);
    assert_same_forward(ref_logits, g, 2);
    st_graph_free(g);
    stb_free(b);
    st_graph_free(ref);
    st_graph_free(ref_logits);
}
END_TEST

/* Gemm with transB 0 and 1, alpha/beta folded, scalar C; a [N, F] input. */
START_TEST(gemm_variants) {
    const int K = 7, M = 4;
    float B[7 * 4], C[4], Bt[4 * 7];
    st_rng r;
    st_rng_seed(&r, 9);
    stt_fill_uniform(B, 28, -1, 1, &r);
    stt_fill_uniform(C, 4, -1, 1, &r);
    for (int o = 0; o < M; o++)
        for (int i = 0; i < K; i++) Bt[o * K + i] = B[i * M + o];
    for (int transB = 0; transB < 2; transB++) {
        for (int variant = 0; variant < 3; variant++) {
            float alpha = variant == 1 ? 0.5f : 1.0f, beta = variant == 1 ? 2.0f : 1.0f;
            int scalar_c = variant == 2;
            stb *b = stb_new(11);
            stb_input(b, "x", 2, (int64_t[]){-1, K});
            if (transB) stb_init(b, "W", 2, (int64_t[]){M, K}, Bt);
            else stb_init(b, "W", 2, (int64_t[]){K, M}, B);
            stb_init(b, "C", 1, (int64_t[]){scalar_c ? 1 : M}, C);
            Onnx__NodeProto *n = stb_node(b, "Gemm", "g", "x,W,C", "y");
            stb_attr_i(b, n, "transB", transB);
            stb_attr_f(b, n, "alpha", alpha);
            stb_attr_f(b, n, "beta", beta);
            stb_output(b, "y");
            st_graph *g = import_ok(b, NULL);
            st_graph *ref = st_graph_new();
            st_g_output(ref, st_g_linear(ref, "fc", st_g_input(ref, K, 1, 1), M, 1));
            finalize(ref);
            for (int i = 0; i < M * K; i++) st_param_data(ref, 0)[i] = alpha * Bt[i];
            for (int i = 0; i < M; i++) st_param_data(ref, 1)[i] = beta * C[scalar_c ? 0 : i];
            assert_same_forward(ref, g, 3);
            ck_assert_int_eq(st_graph_find_param(g, "W"), 0);
            ck_assert_int_eq(st_graph_find_param(g, "C"), 1);
            st_graph_free(g);
            st_graph_free(ref);
            stb_free(b);
        }
    }
}
END_TEST

/* MatMul + Add(1-D initializer) fused into one linear layer; a MatMul without bias. */
START_TEST(matmul_add_fusion) {
    st_graph *ref = st_graph_new();
    int x = st_g_input(ref, 6, 1, 1);
    int h = st_g_relu(ref, st_g_linear(ref, "l1", x, 4, 1));
    st_g_output(ref, st_g_linear(ref, "l2", h, 3, 0));
    finalize(ref);
    stb *b = stb_new(13);
    stb_input(b, "x", 2, (int64_t[]){2, 6});
    /* ONNX keeps [K, M]; ours is [M, K] */
    const float *w1 = st_param_data(ref, 0), *w2 = st_param_data(ref, 2);
    float t1[24], t2[12];
    for (int o = 0; o < 4; o++) for (int i = 0; i < 6; i++) t1[i * 4 + o] = w1[o * 6 + i];
    for (int o = 0; o < 3; o++) for (int i = 0; i < 4; i++) t2[i * 3 + o] = w2[o * 4 + i];
    stb_init(b, "W1", 2, (int64_t[]){6, 4}, t1);
    stb_init(b, "b1", 1, (int64_t[]){4}, st_param_data(ref, 1));
    stb_init(b, "W2", 2, (int64_t[]){4, 3}, t2);
    stb_node(b, "MatMul", "mm1", "x,W1", "m1");
    stb_node(b, "Add", "add1", "b1,m1", "a1"); /* bias first: either order */
    stb_node(b, "Relu", "r", "a1", "h");
    stb_node(b, "MatMul", "mm2", "h,W2", "y");
    stb_output(b, "y");
    st_graph *g = import_ok(b, NULL);
    ck_assert_int_eq(count_op(g, ST_OP_LINEAR), 2);
    ck_assert_int_eq(count_op(g, ST_OP_ADD), 0);
    ck_assert_int_eq(g->n_params, 3);
    int pb = st_graph_find_param(g, "b1");
    ck_assert_int_ge(pb, 0);
    ck_assert_int_eq(g->params[pb].group, ST_PG_BIAS);
    ck_assert(g->params[st_graph_find_param(g, "W1")].prunable);
    assert_same_forward(ref, g, 2);
    st_graph_free(g);
    /* the MatMul output read twice: no fusion, and Add of a constant is refused */
    stb_node(b, "Relu", "r9", "m1", "unused");
    expect_import_error(b, "node 'add1' (Add): Add with a constant operand");
    stb_free(b);
    st_graph_free(ref);
}
END_TEST

/* x.view(x.size(0), -1) as PyTorch exports it with a dynamic batch, and as a constant. */
START_TEST(flatten_patterns) {
    st_graph *ref = st_graph_new();
    int x = st_g_input(ref, 2, 3, 5);
    int c = st_g_conv2d(ref, "c", x, 4, 1, 1, 1, 0, 1, 1, 1);
    st_g_output(ref, st_g_linear(ref, "fc", st_g_flatten(ref, c), 3, 1));
    finalize(ref);
    for (int variant = 0; variant < 3; variant++) {
        stb *b = stb_new(variant == 1 ? 11 : 13);
        stb_input(b, "x", 4, (int64_t[]){-1, 2, 3, 5});
        init_from(b, ref, "c.weight"), init_from(b, ref, "c.bias");
        init_from(b, ref, "fc.weight"), init_from(b, ref, "fc.bias");
        stb_node(b, "Conv", "conv", "x,c.weight,c.bias", "h");
        if (variant < 2) {
            stb_node(b, "Shape", "shape", "h", "s");
            const_node(b, "zero", 0, NULL, NULL, (int64_t[]){0});
            stb_attr_i(b, stb_node(b, "Gather", "gather", "s,zero", "n"), "axis", 0);
            if (variant == 1) {
                stb_attr_ints(b, stb_node(b, "Unsqueeze", "unsq", "n", "n1"), "axes", 1, (int64_t[]){0});
            } else {
                stb_init_i64(b, "ax0", 1, (int64_t[]){1}, (int64_t[]){0});
                stb_node(b, "Unsqueeze", "unsq", "n,ax0", "n1");
            }
            const_node(b, "minus1", 1, (int64_t[]){1}, NULL, (int64_t[]){-1});
            stb_attr_i(b, stb_node(b, "Concat", "cat", "n1,minus1", "target"), "axis", 0);
            stb_attr_i(b, stb_node(b, "Cast", "cast", "target", "target64"), "to", 7);
            stb_node(b, "Reshape", "reshape", "h,target64", "f");
        } else {
            stb_init_i64(b, "target", 1, (int64_t[]){2}, (int64_t[]){2, 60});
            stb_node(b, "Reshape", "reshape", "h,target", "f");
        }
        stb_attr_i(b, stb_node(b, "Gemm", "fc", "f,fc.weight,fc.bias", "y"), "transB", 1);
        stb_output(b, "y");
        st_graph *g = import_ok(b, NULL);
        assert_same_forward(ref, g, 3);
        st_graph_free(g);
        stb_free(b);
    }
    /* a reshape that is not a flatten */
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 2, 3, 5});
    stb_init_i64(b, "t", 1, (int64_t[]){3}, (int64_t[]){-1, 6, 5});
    stb_node(b, "Reshape", "rs", "x,t", "y");
    stb_output(b, "y");
    expect_import_error(b, "node 'rs' (Reshape): Reshape to [-1, 6, 5] is not supported");
    stb_free(b);
    st_graph_free(ref);
}
END_TEST

/* Older opsets: Upsample with scales, Clip and Dropout ratio from attributes, Identity,
 * Softmax over a flattened value. */
START_TEST(opset9_ops) {
    st_graph *ref = st_graph_new();
    int x = st_g_input(ref, 3, 4, 4);
    int c = st_g_conv2d(ref, "c", x, 5, 3, 3, 1, 1, 1, 1, 1);
    c = st_g_clip(ref, st_g_upsample(ref, c, 3), -0.5f, 0.25f);
    int f = st_g_dropout(ref, st_g_flatten(ref, st_g_global_avgpool(ref, c)), 0.3f);
    st_g_output(ref, st_g_softmax(ref, st_g_linear(ref, "fc", f, 4, 1)));
    finalize(ref);
    stb *b = stb_new(9);
    stb_input(b, "x", 4, (int64_t[]){1, 3, 4, 4});
    init_from(b, ref, "c.weight"), init_from(b, ref, "c.bias");
    init_from(b, ref, "fc.weight"), init_from(b, ref, "fc.bias");
    stb_attr_ints(b, stb_node(b, "Conv", "conv", "x,c.weight,c.bias", "h"), "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_init(b, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 3, 3});
    stb_node(b, "Upsample", "up", "h,sc", "u");
    Onnx__NodeProto *n = stb_node(b, "Clip", "clip", "u", "cl");
    stb_attr_f(b, n, "min", -0.5f);
    stb_attr_f(b, n, "max", 0.25f);
    stb_node(b, "Identity", "id", "cl", "cl2");
    stb_node(b, "GlobalAveragePool", "gap", "cl2", "g");
    stb_node(b, "Flatten", "flat", "g", "f");
    stb_attr_f(b, stb_node(b, "Dropout", "drop", "f", "d,mask"), "ratio", 0.3f);
    stb_attr_i(b, stb_node(b, "Gemm", "fc", "d,fc.weight,fc.bias", "l"), "transB", 1);
    stb_node(b, "Softmax", "sm", "l", "y");
    stb_output(b, "y");
    st_graph *g = import_ok(b, NULL);
    ck_assert_int_eq(count_op(g, ST_OP_DROPOUT), 1);
    assert_same_forward(ref, g, 2);
    st_graph_free(g);
    stb_free(b);
    st_graph_free(ref);
}
END_TEST

/* Exporters share equal initializers between layers (PyTorch deduplicates, e.g.,
 * zero biases); each layer gets its own copy, the later ones under derived names. */
START_TEST(shared_initializer) {
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 2, 3, 3});
    float w[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8}, w2[4 * 4] = {0}, zb[4] = {0.5f, 0, 0, -0.5f};
    stb_init(b, "w1", 4, (int64_t[]){4, 2, 1, 1}, w);
    stb_init(b, "w2", 4, (int64_t[]){4, 4, 1, 1}, w2);
    stb_init(b, "zero_bias", 1, (int64_t[]){4}, zb);
    stb_node(b, "Conv", "c1", "x,w1,zero_bias", "a");
    stb_node(b, "Conv", "c2", "a,w2,zero_bias", "y");
    stb_output(b, "y");
    st_graph *g = import_ok(b, NULL);
    int p1 = st_graph_find_param(g, "zero_bias"), p2 = st_graph_find_param(g, "zero_bias.shared1");
    ck_assert_int_ge(p1, 0);
    ck_assert_int_ge(p2, 0);
    ck_assert_mem_eq(st_param_data(g, p2), zb, sizeof zb);
    st_graph_free(g);
    stb_free(b);
}
END_TEST

START_TEST(unsupported_listing) {
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 2, 4, 4});
    stb_node(b, "LSTM", "lstm_1", "x", "a");
    stb_node(b, "Relu", "r", "a", "b");
    stb_node(b, "Einsum", "e0", "b", "c");
    stb_node(b, "LSTM", "lstm_2", "c", "d");
    Onnx__NodeProto *n = stb_node(b, "Relu", "custom", "d", "y");
    n->domain = stb_str(b, "com.example");
    stb_output(b, "y");
    expect_import_error(b, "m.onnx: unsupported operators: LSTM (lstm_1, lstm_2), Einsum (e0), "
                           "com.example.Relu (custom)");
    stb_free(b);
}
END_TEST

/* A model with x[N,3,6,6] -> node -> y, for the error cases. */
static stb *one_conv(const char *auto_pad, const int64_t *pads, int wc, int k) {
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 6, 6});
    float w[4 * 3 * 4 * 4] = {0};
    stb_init(b, "w", 4, (int64_t[]){4, wc, k, k}, w);
    Onnx__NodeProto *n = stb_node(b, "Conv", "cv", "x,w", "y");
    if (auto_pad) stb_attr_s(b, n, "auto_pad", auto_pad);
    if (pads) stb_attr_ints(b, n, "pads", 4, pads);
    stb_output(b, "y");
    return b;
}

START_TEST(import_errors) {
    stb *b = one_conv(NULL, (int64_t[]){1, 1, 0, 0}, 3, 3);
    expect_import_error(b, "node 'cv' (Conv): asymmetric padding on the height axis (pads = [1, 1, 0, 0])");
    stb_free(b);
    b = one_conv("SAME_UPPER", NULL, 3, 2);
    expect_import_error(b, "auto_pad SAME_UPPER needs asymmetric padding");
    stb_free(b);
    b = one_conv(NULL, NULL, 2, 3);
    expect_import_error(b, "node 'cv' (Conv): weight 'w' expects 2 input channels");
    stb_free(b);
    b = one_conv("VALID", NULL, 3, 3);
    for (int k = 0; k < 4; k++) stb_output(b, "x");
    expect_import_error(b, "5 outputs; 1 to 4 are supported");
    stb_free(b);
    b = one_conv("VALID", NULL, 3, 3);
    stb_model(b)->graph->input[0]->type->tensor_type->shape->dim[2]->value_case =
        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    stb_model(b)->graph->input[0]->type->tensor_type->shape->dim[2]->dim_param = stb_str(b, "H");
    expect_import_error(b, "dimension 2 must be a fixed positive size");
    stb_free(b);

    /* non-integer resize, broadcast Mul, a used Dropout mask */
    b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 6, 6});
    stb_init(b, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 1.5f, 1.5f});
    stb_node(b, "Resize", "rz", "x,,sc", "y");
    stb_output(b, "y");
    expect_import_error(b, "node 'rz' (Resize): scales 1.5 x 1.5");
    stb_free(b);
    b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 6, 6});
    stb_node(b, "GlobalAveragePool", "gap", "x", "g");
    stb_node(b, "Mul", "se", "x,g", "y");
    stb_output(b, "y");
    expect_import_error(b, "node 'se' (Mul): Mul of tensors with different shapes");
    stb_free(b);
    b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 6, 6});
    stb_node(b, "Dropout", "dr", "x", "d,mask");
    stb_node(b, "Cast", "c", "mask", "y");
    stb_attr_i(b, stb_model(b)->graph->node[1], "to", 1);
    stb_output(b, "y");
    expect_import_error(b, "node 'dr' (Dropout): the mask output is not supported");
    stb_free(b);
}
END_TEST

Suite *onnx_import_suite(void) {
    Suite *s = suite_create("onnx_import");
    TCase *tc = tcase_create("import");
    tcase_add_test(tc, op_chain);
    tcase_add_test(tc, gemm_variants);
    tcase_add_test(tc, matmul_add_fusion);
    tcase_add_test(tc, flatten_patterns);
    tcase_add_test(tc, opset9_ops);
    tcase_add_test(tc, shared_initializer);
    tcase_add_test(tc, unsupported_listing);
    tcase_add_test(tc, import_errors);
    suite_add_tcase(s, tc);
    return s;
}
