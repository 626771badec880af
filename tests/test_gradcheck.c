/* Finite-difference gradient checks for every op: conv2d (fast and reference, every code
 * path), linear, batchnorm (training and eval), activations, pooling, elementwise and
 * shape ops, dropout and the loss. The harness in st_gradcheck.h also checks NULL
 * gradients and accumulation for each op.
 *
 * Inputs of piecewise-linear ops are kept away from their kinks (and max pooling gets
 * distinct, well separated values) so a step of eps never crosses one. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Inputs spread over +-range but at least `gap` away from 0. */
static float *away_from_zero(size_t n, float gap, float range, st_rng *r) {
    float *x = ot_rand(n, gap, range, r);
    for (size_t i = 0; i < n; i++)
        if (st_rng_uniform(r) < 0.5f) x[i] = -x[i];
    return x;
}

/* ------------------------------------------------------------------ Activations */

enum { ACT_RELU, ACT_LEAKY, ACT_SILU, ACT_SIGMOID, ACT_COUNT };

typedef struct {
    int kind;
    float *y; /* sigmoid backward reads the forward output */
} act_ctx;

static void act_fwd(gc_op *op, float *y) {
    act_ctx *k = op->ctx;
    size_t n = op->out_n;
    switch (k->kind) {
    case ACT_RELU: st_relu_forward(y, op->in[0], n); break;
    case ACT_LEAKY: st_leakyrelu_forward(y, op->in[0], n, 0.1f); break;
    case ACT_SILU: st_silu_forward(y, op->in[0], n); break;
    default: st_sigmoid_forward(y, op->in[0], n); break;
    }
    memcpy(k->y, y, n * sizeof(float));
}

static void act_bwd(gc_op *op, float *const *g, const float *dy) {
    act_ctx *k = op->ctx;
    size_t n = op->out_n;
    switch (k->kind) {
    case ACT_RELU: st_relu_backward(g[0], dy, op->in[0], n); break;
    case ACT_LEAKY: st_leakyrelu_backward(g[0], dy, op->in[0], n, 0.1f); break;
    case ACT_SILU: st_silu_backward(g[0], dy, op->in[0], n); break;
    default: st_sigmoid_backward(g[0], dy, k->y, n); break;
    }
}

START_TEST(test_gradcheck_activation) {
    static const char *names[ACT_COUNT] = {"relu", "leakyrelu", "silu", "sigmoid"};
    const size_t n = 97;
    st_rng r;
    st_rng_seed(&r, 1200 + _i);
    act_ctx k = {.kind = _i, .y = ot_alloc(n)};
    gc_op op = {.name = names[_i], .n_in = 1, .fwd = act_fwd, .bwd = act_bwd, .ctx = &k,
                .out_n = n};
    op.in[0] = away_from_zero(n, 0.05f, 6, &r), op.in_n[0] = n, op.in_name[0] = "x";
    gc_check(&op, 1300 + _i);
    free(op.in[0]), free(k.y);
}
END_TEST

/* ------------------------------------------------------------------ Pooling */

typedef struct {
    st_pool p;
    int max;
    int32_t *argmax;
} pool_ctx;

static void pool_fwd(gc_op *op, float *y) {
    pool_ctx *k = op->ctx;
    if (k->max) st_maxpool_forward(&k->p, y, k->argmax, op->in[0]);
    else st_avgpool_forward(&k->p, y, op->in[0]);
}

static void pool_bwd(gc_op *op, float *const *g, const float *dy) {
    pool_ctx *k = op->ctx;
    if (k->max) st_maxpool_backward(&k->p, g[0], dy, k->argmax);
    else st_avgpool_backward(&k->p, g[0], dy);
}

/* {N, C, H, W, kh, kw, sh, sw, ph, pw, ceil, include_pad}; each run as max and avg. */
static const int pool_shapes[][12] = {
    {2, 2, 5, 5, 2, 2, 2, 2, 0, 0, 0, 1}, {1, 3, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1},
    {2, 1, 6, 7, 3, 3, 2, 2, 1, 1, 1, 0}, {1, 2, 7, 5, 5, 3, 1, 2, 2, 1, 0, 1},
    {1, 2, 5, 5, 5, 5, 1, 1, 2, 2, 0, 0}, /* SPPF-style 5x5 s1 p2 */
};

START_TEST(test_gradcheck_pool) {
    const int *s = pool_shapes[_i / 2];
    pool_ctx k = {.p = {.N = s[0], .C = s[1], .H = s[2], .W = s[3], .kh = s[4], .kw = s[5],
                        .stride_h = s[6], .stride_w = s[7], .pad_h = s[8], .pad_w = s[9],
                        .ceil_mode = s[10], .count_include_pad = s[11]},
                  .max = _i % 2};
    ck_assert_int_eq(st_pool_init(&k.p), 0);
    const size_t nx = (size_t)k.p.N * k.p.C * k.p.H * k.p.W;
    const size_t ny = (size_t)k.p.N * k.p.C * k.p.P * k.p.Q;
    k.argmax = malloc(ny * sizeof(int32_t));
    st_rng r;
    st_rng_seed(&r, 1400 + _i);
    /* Distinct values 0.05 apart in shuffled order: eps = 1e-2 never changes an argmax. */
    int32_t *perm = malloc(nx * sizeof(int32_t));
    for (size_t i = 0; i < nx; i++) perm[i] = (int32_t)i;
    st_rng_shuffle(&r, perm, (int)nx);
    float *x = ot_alloc(nx);
    for (size_t i = 0; i < nx; i++) x[i] = 0.05f * (float)perm[i] - 0.025f * (float)nx;
    gc_op op = {.name = k.max ? "maxpool" : "avgpool", .n_in = 1, .fwd = pool_fwd,
                .bwd = pool_bwd, .ctx = &k, .out_n = ny};
    op.in[0] = x, op.in_n[0] = nx, op.in_name[0] = "x";
    gc_check(&op, 1500 + _i);
    free(x), free(perm), free(k.argmax);
}
END_TEST

static void gap_fwd(gc_op *op, float *y) { st_global_avgpool_forward(y, op->in[0], 2, 3, 5); }
static void gap_bwd(gc_op *op, float *const *g, const float *dy) {
    st_global_avgpool_backward(g[0], dy, 2, 3, 5);
}

START_TEST(test_gradcheck_global_avgpool) {
    st_rng r;
    st_rng_seed(&r, 1600);
    gc_op op = {.name = "global_avgpool", .n_in = 1, .fwd = gap_fwd, .bwd = gap_bwd, .out_n = 6};
    op.in[0] = ot_rand(30, -1, 1, &r), op.in_n[0] = 30, op.in_name[0] = "x";
    gc_check(&op, 1601);
    free(op.in[0]);
}
END_TEST

/* ------------------------------------------------------------------ Elementwise */

static void add_fwd(gc_op *op, float *y) { st_add_forward(y, op->in[0], op->in[1], op->out_n); }
static void add_bwd(gc_op *op, float *const *g, const float *dy) {
    st_add_backward(g[0], g[1], dy, op->out_n);
}
static void mul_fwd(gc_op *op, float *y) { st_mul_forward(y, op->in[0], op->in[1], op->out_n); }
static void mul_bwd(gc_op *op, float *const *g, const float *dy) {
    st_mul_backward(g[0], g[1], dy, op->in[0], op->in[1], op->out_n);
}

START_TEST(test_gradcheck_add_mul) {
    const size_t n = 41;
    st_rng r;
    st_rng_seed(&r, 1700 + _i);
    gc_op op = {.name = _i ? "mul" : "add", .n_in = 2, .fwd = _i ? mul_fwd : add_fwd,
                .bwd = _i ? mul_bwd : add_bwd, .out_n = n};
    for (int i = 0; i < 2; i++) op.in[i] = ot_rand(n, -2, 2, &r), op.in_n[i] = n;
    op.in_name[0] = "a", op.in_name[1] = "b";
    gc_check(&op, 1710 + _i);
    free(op.in[0]), free(op.in[1]);
}
END_TEST

static const int cat_cs[3] = {1, 3, 2};
static void cat_fwd(gc_op *op, float *y) {
    const float *in[3] = {op->in[0], op->in[1], op->in[2]};
    st_concat_forward(y, in, cat_cs, 3, 2, 4);
}
static void cat_bwd(gc_op *op, float *const *g, const float *dy) {
    st_concat_backward(g, dy, cat_cs, 3, 2, 4);
}

START_TEST(test_gradcheck_concat) {
    st_rng r;
    st_rng_seed(&r, 1800);
    gc_op op = {.name = "concat", .n_in = 3, .fwd = cat_fwd, .bwd = cat_bwd, .out_n = 2 * 6 * 4};
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        op.in_n[i] = (size_t)2 * cat_cs[i] * 4;
        op.in[i] = ot_rand(op.in_n[i], -1, 1, &r);
        op.in_name[i] = names[i];
    }
    gc_check(&op, 1801);
    for (int i = 0; i < 3; i++) free(op.in[i]);
}
END_TEST

static void up_fwd(gc_op *op, float *y) { st_upsample_nearest_forward(y, op->in[0], 2, 2, 3, 2, 3); }
static void up_bwd(gc_op *op, float *const *g, const float *dy) {
    st_upsample_nearest_backward(g[0], dy, 2, 2, 3, 2, 3);
}

START_TEST(test_gradcheck_upsample) {
    st_rng r;
    st_rng_seed(&r, 1900);
    gc_op op = {.name = "upsample_nearest", .n_in = 1, .fwd = up_fwd, .bwd = up_bwd,
                .out_n = 2 * 2 * 9 * 6};
    op.in[0] = ot_rand(24, -1, 1, &r), op.in_n[0] = 24, op.in_name[0] = "x";
    gc_check(&op, 1901);
    free(op.in[0]);
}
END_TEST

typedef struct {
    float *mask;
    float p;
} drop_ctx;

static void drop_fwd(gc_op *op, float *y) {
    drop_ctx *k = op->ctx;
    st_dropout_forward(y, k->mask, op->in[0], op->out_n, k->p, 4242);
}
static void drop_bwd(gc_op *op, float *const *g, const float *dy) {
    drop_ctx *k = op->ctx;
    st_dropout_backward(g[0], dy, k->mask, op->out_n);
}

START_TEST(test_gradcheck_dropout) {
    const size_t n = 64;
    st_rng r;
    st_rng_seed(&r, 2000 + _i);
    drop_ctx k = {.mask = ot_alloc(n), .p = _i ? 0.4f : 0.0f};
    gc_op op = {.name = "dropout", .n_in = 1, .fwd = drop_fwd, .bwd = drop_bwd, .ctx = &k,
                .out_n = n};
    op.in[0] = ot_rand(n, -1, 1, &r), op.in_n[0] = n, op.in_name[0] = "x";
    gc_check(&op, 2010 + _i);
    free(op.in[0]), free(k.mask);
}
END_TEST

/* ------------------------------------------------------------------ Loss */

typedef struct {
    float *probs;
    const int32_t *labels;
    int N, C;
} xent_ctx;

static void xent_fwd(gc_op *op, float *y) {
    xent_ctx *k = op->ctx;
    y[0] = st_softmax_xent_forward(k->probs, op->in[0], k->labels, k->N, k->C);
}
/* The loss is y[0]; dy[0] scales its gradient. */
static void xent_bwd(gc_op *op, float *const *g, const float *dy) {
    xent_ctx *k = op->ctx;
    st_softmax_xent_backward(g[0], k->probs, k->labels, k->N, k->C, dy[0]);
}

START_TEST(test_gradcheck_softmax_xent) {
    const int32_t labels[4] = {0, 4, 2, 4};
    xent_ctx k = {.probs = ot_alloc(20), .labels = labels, .N = 4, .C = 5};
    st_rng r;
    st_rng_seed(&r, 2100);
    gc_op op = {.name = "softmax_xent", .n_in = 1, .fwd = xent_fwd, .bwd = xent_bwd, .ctx = &k,
                .out_n = 1};
    /* Logits with a large common offset: the row-max shift must make it irrelevant. */
    op.in[0] = ot_rand(20, -3, 3, &r), op.in_n[0] = 20, op.in_name[0] = "logits";
    for (int i = 0; i < 5; i++) op.in[0][i] += 50.0f;
    gc_check(&op, 2101);
    free(op.in[0]), free(k.probs);
}
END_TEST

/* ------------------------------------------------------------------ BatchNorm + activation */

typedef struct {
    st_batchnorm bn;
    st_act_kind act;
    int training, bufs; /* bufs: pass aux and dz_buf (else NULL: recomputed) */
    float *rm0, *rv0, *rm, *rv, *sm, *si, *zs, *aux, *dz;
} bnact_ctx;

static void bnact_fwd(gc_op *op, float *y) {
    bnact_ctx *k = op->ctx;
    memcpy(k->rm, k->rm0, sizeof(float) * k->bn.C);
    memcpy(k->rv, k->rv0, sizeof(float) * k->bn.C);
    st_bn_act_forward(&k->bn, k->act, 0.1f, y, k->bufs ? k->aux : NULL, op->in[0], op->in[1],
                      op->in[2], k->rm, k->rv, k->sm, k->si, k->zs, k->training);
}

static void bnact_bwd(gc_op *op, float *const *g, const float *dy) {
    bnact_ctx *k = op->ctx;
    st_bn_act_backward(&k->bn, k->act, 0.1f, g[0], g[1], g[2], k->bufs ? k->dz : NULL, dy,
                       k->bufs ? k->aux : NULL, op->in[0], op->in[1], op->in[2], k->sm, k->si,
                       k->zs, k->training);
}

/* _i: bits 0-1 activation (relu, leakyrelu, silu), bit 2 training, bit 3 buffers. For the
 * kinked activations the inputs are redrawn until every z = bn(x) is at least 0.1 from
 * the kink, so a step of eps (1e-3 here) never crosses it. */
START_TEST(test_gradcheck_bn_act) {
    if ((_i & 3) == 3) return;
    bnact_ctx k = {.bn = {3, 2, 5, 1e-5f, 0.1f}, .act = (st_act_kind)(_i & 3),
                   .training = (_i >> 2) & 1, .bufs = (_i >> 3) & 1};
    const int C = k.bn.C;
    const size_t n = (size_t)k.bn.N * C * k.bn.HW;
    st_rng r;
    st_rng_seed(&r, 2200 + _i);
    k.rm0 = ot_rand(C, -0.5f, 0.5f, &r), k.rv0 = ot_rand(C, 0.5f, 1.5f, &r);
    k.rm = ot_alloc(C), k.rv = ot_alloc(C), k.sm = ot_alloc(C), k.si = ot_alloc(C);
    k.zs = ot_alloc(C), k.aux = ot_alloc(n), k.dz = ot_alloc(n);
    static const char *acts[] = {"relu", "leakyrelu", "silu"};
    char name[64];
    snprintf(name, sizeof name, "bn_act %s %s%s", acts[k.act], k.training ? "train" : "eval",
             k.bufs ? " bufs" : "");
    gc_op op = {.name = name, .n_in = 3, .fwd = bnact_fwd, .bwd = bnact_bwd, .ctx = &k};
    op.in_n[0] = n, op.in_n[1] = C, op.in_n[2] = C;
    op.in_name[0] = "x", op.in_name[1] = "gamma", op.in_name[2] = "beta";
    op.in[0] = ot_alloc(n), op.in[1] = ot_alloc(C), op.in[2] = ot_alloc(C);
    float *z = ot_alloc(n);
    for (int tries = 0;; tries++) {
        ck_assert_int_lt(tries, 1000);
        stt_fill_uniform(op.in[0], n, -2, 2, &r);
        stt_fill_uniform(op.in[1], C, 0.5f, 1.5f, &r);
        stt_fill_uniform(op.in[2], C, -1, 1, &r);
        if (k.act == ST_ACT_SILU) break;
        memcpy(k.rm, k.rm0, sizeof(float) * C), memcpy(k.rv, k.rv0, sizeof(float) * C);
        st_batchnorm_forward(&k.bn, z, op.in[0], op.in[1], op.in[2], k.rm, k.rv, k.sm, k.si,
                             k.training);
        size_t j = 0;
        while (j < n && fabsf(z[j]) > 0.1f) j++;
        if (j == n) break;
    }
    free(z);
    op.out_n = n;
    op.eps = 1e-3f;
    gc_check(&op, 2300 + _i);
    for (int i = 0; i < 3; i++) free(op.in[i]);
    free(k.rm0), free(k.rv0), free(k.rm), free(k.rv), free(k.sm), free(k.si);
    free(k.zs), free(k.aux), free(k.dz);
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
    tcase_add_loop_test(tc, test_gradcheck_bn_act, 0, 16);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("parameter_free");
    tcase_set_timeout(tf, 60);
    tcase_add_loop_test(tf, test_gradcheck_activation, 0, ACT_COUNT);
    tcase_add_loop_test(tf, test_gradcheck_pool, 0,
                        2 * (int)(sizeof pool_shapes / sizeof pool_shapes[0]));
    tcase_add_test(tf, test_gradcheck_global_avgpool);
    tcase_add_loop_test(tf, test_gradcheck_add_mul, 0, 2);
    tcase_add_test(tf, test_gradcheck_concat);
    tcase_add_test(tf, test_gradcheck_upsample);
    tcase_add_loop_test(tf, test_gradcheck_dropout, 0, 2);
    tcase_add_test(tf, test_gradcheck_softmax_xent);
    suite_add_tcase(s, tf);
    return s;
}
