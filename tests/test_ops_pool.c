/* Max and average pooling (training forward with argmax, backward) against PyTorch's
 * output shapes, hand-computed windows, ties and padding, and a naive loop over many
 * shapes; global average pooling. The inference max pool: test_torch_ops.c. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_ops.h"
#include "st_ops_test_util.h"

/* ------------------------------------------------------------------ Pooling */

/* Straight from the definition: walk every kernel tap of every window in padded
 * coordinates. Max: padding is -inf, first maximum wins. Avg: the divisor counts the taps
 * inside the padded input (count_include_pad) or inside the real input. */
static void naive_pool(const st_pool *p, float *ymax, int32_t *amax, float *yavg, const float *x) {
    for (int pl = 0; pl < p->N * p->C; pl++)
        for (int oh = 0; oh < p->P; oh++)
            for (int ow = 0; ow < p->Q; ow++) {
                float m = -INFINITY;
                int32_t mi = -1;
                double s = 0;
                int in_padded = 0, in_real = 0;
                for (int i = 0; i < p->kh; i++)
                    for (int j = 0; j < p->kw; j++) {
                        int h = oh * p->stride_h - p->pad_h + i, w = ow * p->stride_w - p->pad_w + j;
                        if (h < -p->pad_h || h >= p->H + p->pad_h || w < -p->pad_w ||
                            w >= p->W + p->pad_w)
                            continue;
                        in_padded++;
                        if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                        in_real++;
                        float v = x[(size_t)pl * p->H * p->W + h * p->W + w];
                        s += v;
                        if (mi < 0 || v > m) m = v, mi = h * p->W + w;
                    }
                size_t o = ((size_t)pl * p->P + oh) * p->Q + ow;
                ymax[o] = m;
                amax[o] = mi;
                yavg[o] = (float)(s / (p->count_include_pad ? in_padded : in_real));
            }
}

START_TEST(test_pool_output_shapes_match_pytorch) {
    /* {H, k, s, pad, ceil, expected}; the ceil cases include one where PyTorch drops a
     * last window that would start in the right padding. */
    const int t[][6] = {{5, 2, 2, 0, 0, 2}, {5, 2, 2, 0, 1, 3}, {6, 3, 2, 1, 0, 3},
                        {6, 3, 2, 1, 1, 4}, {5, 2, 2, 1, 1, 3}, {5, 2, 2, 1, 0, 3},
                        {13, 5, 1, 2, 0, 13}, {2, 3, 2, 0, 1, 1}, {1, 1, 1, 0, 0, 1}};
    for (int i = 0; i < 9; i++) {
        st_pool p = {.N = 1, .C = 1, .H = t[i][0], .W = t[i][0], .kh = t[i][1], .kw = t[i][1],
                     .stride_h = t[i][2], .stride_w = t[i][2], .pad_h = t[i][3],
                     .pad_w = t[i][3], .ceil_mode = t[i][4], .count_include_pad = 1};
        ck_assert_int_eq(st_pool_init(&p), 0);
        ck_assert_msg(p.P == t[i][5] && p.Q == t[i][5], "case %d: got %d expected %d", i, p.P,
                      t[i][5]);
    }
    st_pool bad = {.N = 1, .C = 1, .H = 5, .W = 5, .kh = 2, .kw = 2, .stride_h = 1,
                   .stride_w = 1, .pad_h = 2, .pad_w = 0};
    ck_assert_int_eq(st_pool_init(&bad), -1); /* pad > k/2 */
    bad.pad_h = 0, bad.kh = 6, bad.kw = 6;
    ck_assert_int_eq(st_pool_init(&bad), -1); /* kernel bigger than the input */
    bad.kh = 2, bad.kw = 2, bad.stride_w = 0;
    ck_assert_int_eq(st_pool_init(&bad), -1);
}
END_TEST

START_TEST(test_pool_hand_computed) {
    /* PyTorch: AvgPool2d(2, 2, ceil_mode=True) on arange(9).view(3,3) = [[2, 3.5], [6.5, 8]];
     * MaxPool2d(2, 2, ceil_mode=True) gives [[4, 5], [7, 8]]. */
    float x[9];
    for (int i = 0; i < 9; i++) x[i] = (float)i;
    st_pool p = {.N = 1, .C = 1, .H = 3, .W = 3, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2,
                 .ceil_mode = 1, .count_include_pad = 1};
    ck_assert_int_eq(st_pool_init(&p), 0);
    float y[4];
    int32_t am[4];
    st_avgpool_forward(&p, y, x);
    const float ea[4] = {2, 3.5f, 6.5f, 8};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], ea[i], 1e-6);
    st_maxpool_forward(&p, y, am, x);
    const float em[4] = {4, 5, 7, 8};
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(y[i], em[i]);
        ck_assert_int_eq(am[i], (int)em[i]);
    }
    /* AvgPool2d(3, 2, padding=1) on the same: corner window sees 0+1+3+4 over 9 taps with
     * count_include_pad, over 4 without. */
    st_pool q = {.N = 1, .C = 1, .H = 3, .W = 3, .kh = 3, .kw = 3, .stride_h = 2, .stride_w = 2,
                 .pad_h = 1, .pad_w = 1, .count_include_pad = 1};
    ck_assert_int_eq(st_pool_init(&q), 0);
    ck_assert_int_eq(q.P, 2);
    st_avgpool_forward(&q, y, x);
    ck_assert_float_eq_tol(y[0], 8.0f / 9, 1e-6);
    ck_assert_float_eq_tol(y[3], (4 + 5 + 7 + 8) / 9.0f, 1e-6);
    q.count_include_pad = 0;
    st_avgpool_forward(&q, y, x);
    ck_assert_float_eq_tol(y[0], 2.0f, 1e-6);
    ck_assert_float_eq_tol(y[3], 6.0f, 1e-6);
}
END_TEST

START_TEST(test_maxpool_ties_and_negative_padding) {
    /* Ties: first index of the window wins, as in PyTorch. */
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = 1.0f;
    st_pool p = {.N = 1, .C = 1, .H = 4, .W = 4, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2};
    ck_assert_int_eq(st_pool_init(&p), 0);
    float y[9];
    int32_t am[9];
    st_maxpool_forward(&p, y, am, x);
    const int32_t first[4] = {0, 2, 8, 10};
    for (int i = 0; i < 4; i++) ck_assert_int_eq(am[i], first[i]);
    /* All-negative input with padding: padding is -inf, so it never wins over -5. */
    for (int i = 0; i < 16; i++) x[i] = -5.0f - i;
    st_pool q = {.N = 1, .C = 1, .H = 4, .W = 4, .kh = 3, .kw = 3, .stride_h = 2, .stride_w = 2,
                 .pad_h = 1, .pad_w = 1};
    ck_assert_int_eq(st_pool_init(&q), 0);
    st_maxpool_forward(&q, y, am, x);
    ck_assert_float_eq(y[0], -5.0f);
    ck_assert_int_eq(am[0], 0);
    /* A tie that spans the window: the scan is row-major, first hit kept. */
    for (int i = 0; i < 16; i++) x[i] = 0.0f;
    x[5] = 3.0f, x[6] = 3.0f, x[9] = 3.0f;
    st_maxpool_forward(&q, y, am, x);
    ck_assert_int_eq(am[0], 5); /* window rows 0..1, cols 0..1 */
    ck_assert_int_eq(am[1], 5); /* window rows 0..1, cols 1..3 */
    ck_assert_int_eq(am[2], 5); /* rows 1..3, cols 0..1 */
}
END_TEST

START_TEST(test_pool_against_naive) {
    /* {N, C, H, W, kh, kw, sh, sw, ph, pw, ceil, include_pad} */
    const int t[][12] = {{1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},   {3, 7, 17, 17, 3, 3, 2, 2, 1, 1, 0, 1},
                         {3, 7, 17, 17, 3, 3, 2, 2, 1, 1, 1, 0}, {1, 3, 7, 17, 2, 2, 2, 2, 0, 0, 1, 1},
                         {3, 1, 7, 7, 5, 5, 1, 1, 2, 2, 0, 1},   {3, 3, 7, 7, 5, 5, 1, 1, 2, 2, 0, 0},
                         {1, 17, 3, 7, 3, 2, 2, 3, 1, 1, 1, 1},  {3, 3, 7, 7, 2, 3, 3, 2, 1, 1, 1, 0},
                         {1, 1, 2, 2, 3, 3, 2, 2, 0, 0, 1, 1},   {3, 3, 17, 17, 3, 3, 3, 3, 1, 1, 1, 1}};
    for (int i = 0; i < 10; i++) {
        st_pool p = {.N = t[i][0], .C = t[i][1], .H = t[i][2], .W = t[i][3], .kh = t[i][4],
                     .kw = t[i][5], .stride_h = t[i][6], .stride_w = t[i][7], .pad_h = t[i][8],
                     .pad_w = t[i][9], .ceil_mode = t[i][10], .count_include_pad = t[i][11]};
        ck_assert_int_eq(st_pool_init(&p), 0);
        const size_t nx = (size_t)p.N * p.C * p.H * p.W, ny = (size_t)p.N * p.C * p.P * p.Q;
        st_rng r;
        st_rng_seed(&r, 400 + i);
        float *x = ot_rand(nx, -3, 1, &r);
        float *y = ot_alloc(ny), *ye = ot_alloc(ny), *ya = ot_alloc(ny);
        int32_t *am = malloc(ny * sizeof(int32_t)), *ame = malloc(ny * sizeof(int32_t));
        naive_pool(&p, ye, ame, ya, x);
        st_maxpool_forward(&p, y, am, x);
        for (size_t o = 0; o < ny; o++) {
            ck_assert_float_eq(y[o], ye[o]);
            ck_assert_int_eq(am[o], ame[o]);
        }
        st_avgpool_forward(&p, y, x);
        OT_ASSERT_NEAR(y, ya, ny, 1e-6, 1e-5, "avgpool");

        /* Backward: maxpool routes dy to argmax; avgpool spreads dy/divisor over the
         * window. Checked against the adjoint identity <dy, A x> = <A^T dy, x>, since
         * both are linear in x for fixed argmax. */
        float *dy = ot_rand(ny, -1, 1, &r), *dx = ot_zeros(nx);
        st_avgpool_backward(&p, dx, dy);
        double lhs = 0, rhs = 0;
        for (size_t o = 0; o < ny; o++) lhs += (double)dy[o] * ya[o];
        for (size_t j = 0; j < nx; j++) rhs += (double)dx[j] * x[j];
        ck_assert_double_eq_tol(lhs, rhs, 1e-4 * (1 + fabs(lhs)));
        memset(dx, 0, nx * sizeof(float));
        st_maxpool_backward(&p, dx, dy, am);
        lhs = rhs = 0;
        for (size_t o = 0; o < ny; o++) lhs += (double)dy[o] * ye[o];
        for (size_t j = 0; j < nx; j++) rhs += (double)dx[j] * x[j];
        ck_assert_double_eq_tol(lhs, rhs, 1e-4 * (1 + fabs(lhs)));
        free(x), free(y), free(ye), free(ya), free(am), free(ame), free(dy), free(dx);
    }
}
END_TEST

START_TEST(test_global_avgpool) {
    const float x[12] = {1, 2, 3, 6, /* n0 c0 */ -1, -1, 1, 1, /* n0 c1 */ 4, 4, 4, 4};
    float y[3], dx[12];
    st_global_avgpool_forward(y, x, 1, 3, 4);
    ck_assert_float_eq(y[0], 3);
    ck_assert_float_eq(y[1], 0);
    ck_assert_float_eq(y[2], 4);
    for (int i = 0; i < 12; i++) dx[i] = 1;
    const float dy[3] = {4, -8, 2};
    st_global_avgpool_backward(dx, dy, 1, 3, 4);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(dx[i], 1 + dy[i / 4] / 4);
}
END_TEST

Suite *ops_pool_suite(void) {
    Suite *s = suite_create("ops_pool");
    TCase *tp = tcase_create("pooling");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_pool_output_shapes_match_pytorch);
    tcase_add_test(tp, test_pool_hand_computed);
    tcase_add_test(tp, test_maxpool_ties_and_negative_padding);
    tcase_add_test(tp, test_pool_against_naive);
    tcase_add_test(tp, test_global_avgpool);
    suite_add_tcase(s, tp);
    return s;
}
