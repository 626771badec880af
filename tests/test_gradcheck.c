/* Finite-difference gradient checks for the ops with parameters: conv2d (fast and
 * reference, every code path), linear and batchnorm (training and eval). The harness in
 * st_gradcheck.h also checks NULL gradients and accumulation for each op. */
#include <check.h>
#include <stdlib.h>

#include "st_gradcheck.h"
#include "st_ops.h"

/* ------------------------------------------------------------------ Conv2d */

typedef struct {
    st_conv2d c;
    float *scratch;
    int ref;
} conv_ctx;

static void conv_fwd(gc_op *op, float *y) {
    conv_ctx *k = op->ctx;
    if (k->ref) st_conv2d_forward_ref(&k->c, y, op->in[0], op->in[1], op->in[2]);
    else st_conv2d_forward(&k->c, y, op->in[0], op->in[1], op->in[2], k->scratch);
}

static void conv_bwd(gc_op *op, float *const *g, const float *dy) {
    conv_ctx *k = op->ctx;
    if (k->ref) st_conv2d_backward_ref(&k->c, g[0], g[1], g[2], dy, op->in[0], op->in[1]);
    else st_conv2d_backward(&k->c, g[0], g[1], g[2], dy, op->in[0], op->in[1], k->scratch);
}

/* {N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, groups} */
static const int conv_shapes[][14] = {
    {2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* plain 3x3 */
    {2, 4, 6, 5, 4, 3, 2, 2, 1, 2, 1, 2, 1, 2}, /* groups 2, dilation, non-square */
    {2, 3, 6, 6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3}, /* depthwise stride 2 */
    {1, 2, 7, 5, 2, 3, 3, 1, 1, 2, 1, 2, 2, 2}, /* depthwise dilation 2 */
    {2, 3, 4, 4, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1}, /* pointwise, staged */
    {1, 4, 4, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1, 2}, /* pointwise groups 2, in place */
    {1, 2, 8, 8, 3, 6, 6, 2, 2, 2, 2, 1, 1, 1}, /* YOLO stem 6x6 s2 p2 */
};

START_TEST(test_gradcheck_conv2d) {
    const int *s = conv_shapes[_i / 2];
    conv_ctx k = {.c = {.N = s[0], .C = s[1], .H = s[2], .W = s[3], .K = s[4], .R = s[5],
                        .S = s[6], .stride_h = s[7], .stride_w = s[8], .pad_h = s[9],
                        .pad_w = s[10], .dil_h = s[11], .dil_w = s[12], .groups = s[13]},
                  .ref = _i % 2};
    ck_assert_int_eq(st_conv2d_init(&k.c), 0);
    const st_conv2d *c = &k.c;
    size_t ns = st_conv2d_scratch_floats(c);
    k.scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    st_rng r;
    st_rng_seed(&r, 600 + _i);
    gc_op op = {.name = k.ref ? "conv2d_ref" : "conv2d", .n_in = 3, .fwd = conv_fwd,
                .bwd = conv_bwd, .ctx = &k};
    op.in_n[0] = (size_t)c->N * c->C * c->H * c->W;
    op.in_n[1] = (size_t)c->K * (c->C / c->groups) * c->R * c->S;
    op.in_n[2] = (size_t)c->K;
    op.in_name[0] = "x", op.in_name[1] = "w", op.in_name[2] = "b";
    for (int i = 0; i < 3; i++) op.in[i] = ot_rand(op.in_n[i], -1, 1, &r);
    op.out_n = (size_t)c->N * c->K * c->P * c->Q;
    gc_check(&op, 700 + _i);
    for (int i = 0; i < 3; i++) free(op.in[i]);
    free(k.scratch);
}
END_TEST

/* ------------------------------------------------------------------ Linear */

typedef struct {
    int N, I, O, ref;
} lin_ctx;

static void lin_fwd(gc_op *op, float *y) {
    lin_ctx *k = op->ctx;
    if (k->ref) st_linear_forward_ref(y, op->in[0], op->in[1], op->in[2], k->N, k->I, k->O);
    else st_linear_forward(y, op->in[0], op->in[1], op->in[2], k->N, k->I, k->O);
}

static void lin_bwd(gc_op *op, float *const *g, const float *dy) {
    lin_ctx *k = op->ctx;
    if (k->ref)
        st_linear_backward_ref(g[0], g[1], g[2], dy, op->in[0], op->in[1], k->N, k->I, k->O);
    else st_linear_backward(g[0], g[1], g[2], dy, op->in[0], op->in[1], k->N, k->I, k->O);
}

START_TEST(test_gradcheck_linear) {
    lin_ctx k = {.N = 3, .I = 7, .O = 5, .ref = _i};
    st_rng r;
    st_rng_seed(&r, 800 + _i);
    gc_op op = {.name = k.ref ? "linear_ref" : "linear", .n_in = 3, .fwd = lin_fwd,
                .bwd = lin_bwd, .ctx = &k};
    op.in_n[0] = (size_t)k.N * k.I, op.in_n[1] = (size_t)k.O * k.I, op.in_n[2] = (size_t)k.O;
    op.in_name[0] = "x", op.in_name[1] = "w", op.in_name[2] = "b";
    for (int i = 0; i < 3; i++) op.in[i] = ot_rand(op.in_n[i], -1, 1, &r);
    op.out_n = (size_t)k.N * k.O;
    gc_check(&op, 900 + _i);
    for (int i = 0; i < 3; i++) free(op.in[i]);
}
END_TEST

/* ------------------------------------------------------------------ BatchNorm */

typedef struct {
    st_batchnorm bn;
    int training, ref;
    float *rm0, *rv0, *rm, *rv, *sm, *si;
} bn_ctx;

static void bn_fwd(gc_op *op, float *y) {
    bn_ctx *k = op->ctx;
    /* Fresh running statistics each call: training mode updates them. */
    memcpy(k->rm, k->rm0, sizeof(float) * k->bn.C);
    memcpy(k->rv, k->rv0, sizeof(float) * k->bn.C);
    if (k->ref)
        st_batchnorm_forward_ref(&k->bn, y, op->in[0], op->in[1], op->in[2], k->rm, k->rv, k->sm,
                                 k->si, k->training);
    else
        st_batchnorm_forward(&k->bn, y, op->in[0], op->in[1], op->in[2], k->rm, k->rv, k->sm,
                             k->si, k->training);
}

static void bn_bwd(gc_op *op, float *const *g, const float *dy) {
    bn_ctx *k = op->ctx;
    if (k->ref)
        st_batchnorm_backward_ref(&k->bn, g[0], g[1], g[2], dy, op->in[0], op->in[1], k->sm,
                                  k->si, k->training);
    else
        st_batchnorm_backward(&k->bn, g[0], g[1], g[2], dy, op->in[0], op->in[1], k->sm, k->si,
                              k->training);
}

/* _i: bit 0 = reference, bit 1 = training, bit 2 = second shape. */
START_TEST(test_gradcheck_batchnorm) {
    const int shapes[2][3] = {{2, 3, 5}, {4, 2, 1}};
    const int *s = shapes[(_i >> 2) & 1];
    bn_ctx k = {.bn = {s[0], s[1], s[2], 1e-5f, 0.1f}, .ref = _i & 1, .training = (_i >> 1) & 1};
    const int C = k.bn.C;
    st_rng r;
    st_rng_seed(&r, 1000 + _i);
    k.rm0 = ot_rand(C, -0.5f, 0.5f, &r), k.rv0 = ot_rand(C, 0.5f, 1.5f, &r);
    k.rm = ot_alloc(C), k.rv = ot_alloc(C), k.sm = ot_alloc(C), k.si = ot_alloc(C);
    char name[64];
    snprintf(name, sizeof name, "batchnorm%s %s N=%d", k.ref ? "_ref" : "",
             k.training ? "train" : "eval", s[0]);
    gc_op op = {.name = name, .n_in = 3, .fwd = bn_fwd, .bwd = bn_bwd, .ctx = &k};
    op.in_n[0] = (size_t)k.bn.N * C * k.bn.HW, op.in_n[1] = C, op.in_n[2] = C;
    op.in_name[0] = "x", op.in_name[1] = "gamma", op.in_name[2] = "beta";
    op.in[0] = ot_rand(op.in_n[0], -2, 2, &r);
    op.in[1] = ot_rand(C, 0.5f, 1.5f, &r);
    op.in[2] = ot_rand(C, -1, 1, &r);
    op.out_n = op.in_n[0];
    gc_check(&op, 1100 + _i);
    for (int i = 0; i < 3; i++) free(op.in[i]);
    free(k.rm0), free(k.rv0), free(k.rm), free(k.rv), free(k.sm), free(k.si);
}
END_TEST

Suite *gradcheck_suite(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("params");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_gradcheck_conv2d, 0,
                        2 * (int)(sizeof conv_shapes / sizeof conv_shapes[0]));
    tcase_add_loop_test(tc, test_gradcheck_linear, 0, 2);
    tcase_add_loop_test(tc, test_gradcheck_batchnorm, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}
