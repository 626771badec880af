/* Conv2d: the fast path (im2col + sgemm, depthwise kernel) against the plain-loop
 * reference on many odd shapes, plus shape validation, batching into chunks, NULL
 * gradients and accumulation. Finite-difference checks live in test_gradcheck.c. */
#include <check.h>
#include <omp.h>
#include <stdlib.h>

#include "st_ops.h"
#include "st_ops_test_util.h"

typedef struct {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g;
    const char *what;
} conv_case;

static const conv_case cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 kernel on a 1x1 single-channel image"},
    {1, 1, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, "C=1 3x3 pad 1"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 stride 1 pad 1"},
    {3, 7, 17, 17, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 stride 2 pad 1"},
    {1, 3, 17, 17, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO first layer 6x6 s2 p2, N=1"},
    {3, 3, 17, 17, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO first layer 6x6 s2 p2, N=3"},
    {3, 7, 7, 7, 17, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 pad 2"},
    {1, 3, 17, 17, 7, 3, 3, 3, 3, 0, 0, 1, 1, 1, "3x3 stride 3 no pad"},
    {3, 17, 7, 7, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise N=3 (staged through scratch)"},
    {1, 17, 7, 7, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise N=1 (gemm on x and y in place)"},
    {3, 4, 7, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, "pointwise groups 2, N=3"},
    {1, 4, 7, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, "pointwise groups 2, N=1"},
    {3, 3, 7, 7, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, "1x1 stride 2"},
    {1, 3, 3, 3, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, "1x1 pad 1"},
    {3, 4, 7, 7, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, "groups 2, dilation 2, pad 2"},
    {3, 6, 7, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 3, "groups 3, stride 2"},
    {1, 3, 7, 17, 7, 3, 5, 1, 2, 1, 2, 1, 1, 1, "non-square kernel, stride and pad"},
    {3, 7, 17, 7, 7, 5, 3, 2, 1, 0, 1, 2, 1, 1, "non-square dilation and stride"},
    {3, 17, 3, 3, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1, "output 1x1"},
    {3, 7, 3, 3, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1, "padding wider than the image"},
    {3, 1, 17, 17, 3, 5, 5, 1, 1, 0, 0, 2, 2, 1, "C=1 5x5 dilation 2"},
    {3, 7, 1, 1, 17, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 spatial, pointwise"},
    {1, 7, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, "1x1 spatial, 3x3 pad 1"},
    {3, 17, 7, 7, 17, 3, 3, 1, 1, 1, 1, 1, 1, 17, "depthwise 3x3"},
    {3, 17, 7, 7, 17, 3, 3, 2, 2, 1, 1, 1, 1, 17, "depthwise 3x3 stride 2"},
    {3, 7, 17, 17, 7, 5, 5, 2, 2, 2, 2, 1, 1, 7, "depthwise 5x5 stride 2 pad 2"},
    {1, 3, 17, 7, 3, 3, 5, 2, 1, 2, 2, 2, 1, 3, "depthwise non-square with dilation"},
    {3, 7, 1, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 7, "depthwise on 1x1 spatial"},
    {1, 7, 17, 7, 14, 3, 3, 2, 1, 1, 0, 1, 2, 7, "groups=C with K=2C (grouped gemm path)"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static st_conv2d make_conv(const conv_case *cc) {
    st_conv2d c = {.N = cc->N, .C = cc->C, .H = cc->H, .W = cc->W, .K = cc->K, .R = cc->R,
                   .S = cc->S, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph,
                   .pad_w = cc->pw, .dil_h = cc->dh, .dil_w = cc->dw, .groups = cc->g};
    ck_assert_msg(st_conv2d_init(&c) == 0, "%s: init rejected a valid shape", cc->what);
    return c;
}

/* Fast vs reference: forward, then backward into gradient buffers that already hold
 * values (so accumulation is checked too). Scratch is exactly the advertised size so
 * ASan catches any overrun. */
static void compare_fast_ref(const st_conv2d *c, const char *what, uint64_t seed) {
    st_rng r;
    st_rng_seed(&r, seed);
    const size_t nx = (size_t)c->N * c->C * c->H * c->W;
    const size_t nw = (size_t)c->K * (c->C / c->groups) * c->R * c->S;
    const size_t ny = (size_t)c->N * c->K * c->P * c->Q;
    float *x = ot_rand(nx, -1, 1, &r), *w = ot_rand(nw, -1, 1, &r), *b = ot_rand(c->K, -1, 1, &r);
    float *dy = ot_rand(ny, -1, 1, &r);
    float *y = ot_alloc(ny), *yr = ot_alloc(ny), *y2 = ot_alloc(ny);
    size_t ns = st_conv2d_scratch_floats(c);
    float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    ck_assert(ns == 0 || scratch);

    st_conv2d_forward(c, y, x, w, b, scratch);
    st_conv2d_forward_ref(c, yr, x, w, b);
    OT_ASSERT_NEAR(y, yr, ny, 1e-5, 1e-4, what);
    /* Same inputs, same thread count: bitwise the same answer. */
    st_conv2d_forward(c, y2, x, w, b, scratch);
    ck_assert_msg(memcmp(y, y2, ny * sizeof(float)) == 0, "%s: forward not deterministic", what);
    /* Without bias. */
    st_conv2d_forward(c, y, x, w, NULL, scratch);
    st_conv2d_forward_ref(c, yr, x, w, NULL);
    OT_ASSERT_NEAR(y, yr, ny, 1e-5, 1e-4, what);

    float *dx = ot_rand(nx, -1, 1, &r), *dw = ot_rand(nw, -1, 1, &r), *db = ot_rand(c->K, -1, 1, &r);
    float *dxr = ot_copy(dx, nx), *dwr = ot_copy(dw, nw), *dbr = ot_copy(db, c->K);
    st_conv2d_backward(c, dx, dw, db, dy, x, w, scratch);
    st_conv2d_backward_ref(c, dxr, dwr, dbr, dy, x, w);
    OT_ASSERT_NEAR(dx, dxr, nx, 1e-5, 1e-4, what);
    OT_ASSERT_NEAR(dw, dwr, nw, 1e-5, 1e-4, what);
    OT_ASSERT_NEAR(db, dbr, (size_t)c->K, 1e-5, 1e-4, what);

    free(x), free(w), free(b), free(dy), free(y), free(yr), free(y2), free(scratch);
    free(dx), free(dw), free(db), free(dxr), free(dwr), free(dbr);
}

START_TEST(test_conv_fast_matches_ref) {
    st_conv2d c = make_conv(&cases[_i]);
    compare_fast_ref(&c, cases[_i].what, 1000 + (uint64_t)_i);
}
END_TEST

START_TEST(test_conv_init_shapes) {
    /* YOLO's stem on a 640 image: 6x6 s2 p2 halves it. */
    st_conv2d c = {.N = 1, .C = 3, .H = 640, .W = 640, .K = 16, .R = 6, .S = 6, .stride_h = 2,
                   .stride_w = 2, .pad_h = 2, .pad_w = 2, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    ck_assert_int_eq(c.P, 320);
    ck_assert_int_eq(c.Q, 320);
    /* floor((H + 2p - d(R-1) - 1) / s) + 1 with a non-square everything. */
    st_conv2d d = {.N = 2, .C = 4, .H = 10, .W = 9, .K = 8, .R = 3, .S = 2, .stride_h = 3,
                   .stride_w = 2, .pad_h = 1, .pad_w = 0, .dil_h = 2, .dil_w = 3, .groups = 2};
    ck_assert_int_eq(st_conv2d_init(&d), 0);
    ck_assert_int_eq(d.P, 3); /* (10 + 2 - 4 - 1) / 3 + 1 */
    ck_assert_int_eq(d.Q, 3); /* (9 - 3 - 1) / 2 + 1 */
}
END_TEST

START_TEST(test_conv_init_rejects_bad_shapes) {
    st_conv2d ok = {.N = 1, .C = 4, .H = 5, .W = 5, .K = 4, .R = 3, .S = 3, .stride_h = 1,
                    .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    st_conv2d c = ok;
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    c = ok, c.R = 6; /* kernel taller than the image */
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.dil_w = 3; /* dilated span 7 > 5 */
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.groups = 3; /* 4 % 3 != 0 */
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.groups = 2, c.K = 3;
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.stride_h = 0;
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.pad_w = -1;
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.dil_h = 0;
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    c = ok, c.N = 0;
    ck_assert_int_eq(st_conv2d_init(&c), -1);
    ck_assert_int_eq(st_conv2d_init(NULL), -1);
}
END_TEST

/* Batches that one sgemm does not take whole: several chunks and a short last one. The
 * first two are limited by the target gemm width (the 5x5 one ends in a chunk of 1 sample,
 * which takes the unstaged path); the last by the scratch budget (C/g*R*S = 12800 rows). */
START_TEST(test_conv_multi_chunk) {
    const conv_case big[] = {
        {9, 64, 17, 17, 4, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 conv split into chunks"},
        {19, 256, 17, 17, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise conv split into chunks"},
        {6, 512, 9, 9, 4, 5, 5, 1, 1, 2, 2, 1, 1, 1, "budget-limited chunks"},
    };
    for (int i = 0; i < 3; i++) {
        st_conv2d c = make_conv(&big[i]);
        int nb = st_conv2d_batch_chunk(&c);
        ck_assert_msg(nb > 1 && nb < c.N && c.N % nb != 0, "%s: chunk %d of N=%d", big[i].what,
                      nb, c.N);
        compare_fast_ref(&c, big[i].what, 77 + i);
    }
}
END_TEST

START_TEST(test_conv_scratch_sizes) {
    st_conv2d dw = make_conv(&cases[23]); /* depthwise */
    ck_assert_uint_eq(st_conv2d_scratch_floats(&dw), 0);
    st_conv2d pw = make_conv(&cases[9]); /* pointwise N=1 */
    ck_assert_uint_eq(st_conv2d_scratch_floats(&pw), 0);
    st_conv2d g = make_conv(&cases[2]); /* 3x3, N=3: col [27, 3*49] + staging [7, 3*49] */
    ck_assert_int_eq(st_conv2d_batch_chunk(&g), 3);
    ck_assert_uint_eq(st_conv2d_scratch_floats(&g), (size_t)(27 + 7) * 3 * 49);
    /* NULL scratch is fine when none is needed. */
    compare_fast_ref(&dw, "depthwise, NULL scratch", 5);
    compare_fast_ref(&pw, "pointwise N=1, NULL scratch", 6);
}
END_TEST

/* NULL gradient pointers are skipped, and each gradient alone equals its part of the full
 * call; calling backward twice accumulates twice. Run on a grouped gemm conv, a depthwise
 * conv and a pointwise one, since they take different code paths. */
START_TEST(test_conv_null_grads_and_accumulation) {
    const int pick[] = {14, 23, 10, 9};
    for (int t = 0; t < 4; t++) {
        const conv_case *cc = &cases[pick[t]];
        st_conv2d c = make_conv(cc);
        st_rng r;
        st_rng_seed(&r, 31 + t);
        const size_t nx = (size_t)c.N * c.C * c.H * c.W;
        const size_t nw = (size_t)c.K * (c.C / c.groups) * c.R * c.S;
        const size_t ny = (size_t)c.N * c.K * c.P * c.Q;
        float *x = ot_rand(nx, -1, 1, &r), *w = ot_rand(nw, -1, 1, &r);
        float *dy = ot_rand(ny, -1, 1, &r);
        size_t ns = st_conv2d_scratch_floats(&c);
        float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
        float *dx = ot_zeros(nx), *dw = ot_zeros(nw), *db = ot_zeros(c.K);
        st_conv2d_backward(&c, dx, dw, db, dy, x, w, scratch);

        float *gx = ot_zeros(nx), *gw = ot_zeros(nw), *gb = ot_zeros(c.K);
        st_conv2d_backward(&c, gx, NULL, NULL, dy, x, w, scratch);
        st_conv2d_backward(&c, NULL, gw, NULL, dy, x, w, scratch);
        st_conv2d_backward(&c, NULL, NULL, gb, dy, x, w, scratch);
        st_conv2d_backward(&c, NULL, NULL, NULL, dy, x, w, scratch);
        OT_ASSERT_NEAR(gx, dx, nx, 1e-6, 1e-6, cc->what);
        OT_ASSERT_NEAR(gw, dw, nw, 1e-6, 1e-6, cc->what);
        OT_ASSERT_NEAR(gb, db, (size_t)c.K, 1e-6, 1e-6, cc->what);

        /* Second call on the same buffers: every gradient doubles. */
        st_conv2d_backward(&c, gx, gw, gb, dy, x, w, scratch);
        for (size_t i = 0; i < nx; i++) dx[i] *= 2;
        for (size_t i = 0; i < nw; i++) dw[i] *= 2;
        for (int i = 0; i < c.K; i++) db[i] *= 2;
        OT_ASSERT_NEAR(gx, dx, nx, 1e-6, 1e-5, cc->what);
        OT_ASSERT_NEAR(gw, dw, nw, 1e-6, 1e-5, cc->what);
        OT_ASSERT_NEAR(gb, db, (size_t)c.K, 1e-6, 1e-5, cc->what);
        free(x), free(w), free(dy), free(scratch), free(dx), free(dw), free(db);
        free(gx), free(gw), free(gb);
    }
}
END_TEST

/* A hand-checkable case, so fast and reference cannot share one misreading of the layout:
 * 1 sample, 2 channels 3x3, one 2x2 filter, stride 1, no pad, bias 0.5. */
START_TEST(test_conv_hand_computed) {
    st_conv2d c = {.N = 1, .C = 2, .H = 3, .W = 3, .K = 1, .R = 2, .S = 2, .stride_h = 1,
                   .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    const float x[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, /* channel 0 */
                         9, 8, 7, 6, 5, 4, 3, 2, 1 /* channel 1 */};
    const float w[8] = {1, 0, 0, -1, /* channel 0: x[i][j] - x[i+1][j+1], always -4 */
                        1, 2, 3, 4 /* channel 1: e.g. top left 9 + 16 + 18 + 20 = 63 */};
    const float b[1] = {0.5f};
    const float expect[4] = {-4 + 63 + 0.5f, -4 + 53 + 0.5f, -4 + 33 + 0.5f, -4 + 23 + 0.5f};
    float y[4], yr[4];
    float scratch[64];
    ck_assert_uint_le(st_conv2d_scratch_floats(&c), 64);
    st_conv2d_forward(&c, y, x, w, b, scratch);
    st_conv2d_forward_ref(&c, yr, x, w, b);
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq_tol(y[i], expect[i], 1e-6);
        ck_assert_float_eq_tol(yr[i], expect[i], 1e-6);
    }
}
END_TEST

/* The depthwise kernel and the bias gradient reduce in a fixed order owned by one thread
 * per output, so their results do not depend on the thread count at all. */
START_TEST(test_conv_depthwise_thread_count_invariant) {
    const conv_case cc = {4, 16, 17, 17, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16, "depthwise"};
    st_conv2d c = make_conv(&cc);
    st_rng r;
    st_rng_seed(&r, 55);
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, nw = (size_t)c.K * c.R * c.S;
    const size_t ny = (size_t)c.N * c.K * c.P * c.Q;
    float *x = ot_rand(nx, -1, 1, &r), *w = ot_rand(nw, -1, 1, &r), *b = ot_rand(c.K, -1, 1, &r);
    float *dy = ot_rand(ny, -1, 1, &r);
    float *y[2], *dx[2], *dw[2], *db[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        y[t] = ot_alloc(ny), dx[t] = ot_zeros(nx), dw[t] = ot_zeros(nw), db[t] = ot_zeros(c.K);
        st_conv2d_forward(&c, y[t], x, w, b, NULL);
        st_conv2d_backward(&c, dx[t], dw[t], db[t], dy, x, w, NULL);
    }
    ck_assert(memcmp(y[0], y[1], ny * sizeof(float)) == 0);
    ck_assert(memcmp(dx[0], dx[1], nx * sizeof(float)) == 0);
    ck_assert(memcmp(dw[0], dw[1], nw * sizeof(float)) == 0);
    ck_assert(memcmp(db[0], db[1], c.K * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]), free(dw[t]), free(db[t]);
    free(x), free(w), free(b), free(dy);
}
END_TEST

Suite *conv2d_suite(void) {
    Suite *s = suite_create("conv2d");
    TCase *tc = tcase_create("fast_vs_ref");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv_fast_matches_ref, 0, N_CASES);
    tcase_add_test(tc, test_conv_multi_chunk);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("api");
    tcase_set_timeout(tb, 60);
    tcase_add_test(tb, test_conv_init_shapes);
    tcase_add_test(tb, test_conv_init_rejects_bad_shapes);
    tcase_add_test(tb, test_conv_scratch_sizes);
    tcase_add_test(tb, test_conv_null_grads_and_accumulation);
    tcase_add_test(tb, test_conv_hand_computed);
    tcase_add_test(tb, test_conv_depthwise_thread_count_invariant);
    suite_add_tcase(s, tb);
    return s;
}
