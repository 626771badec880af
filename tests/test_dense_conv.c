/* The batch-1 dense convolution (engine/dense) against the plain-loop reference: odd
 * shapes (1, 3, 7, 17 channels; 1x1 to 33x33 maps), strides 1-3, padding 0-2 and wider
 * than the image, dilation, non-square kernels, the in-place 1x1 path, K not a multiple
 * of the 8-channel panel, output sizes that leave a partial last tile for each tile
 * width (16, 32, 48), batch 1 and 3, with and without bias, weights 0/50/90/99/100%
 * zero, 1 and 2 threads (bit-identical), shared and per-thread input panels; with the
 * AVX-512 and the AVX2 microkernels where the CPU has them (ST_ISA selects). Skips
 * without AVX2 (the engine then keeps im2col + OpenBLAS). */
#include <check.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cpu.h"
#include "st_dense.h"
#include "st_ops.h"
#include "st_test_util.h"

typedef struct {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw;
    const char *what;
} dc_case;

static const dc_case cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, "1x1 on 1x1, one channel"},
    {1, 17, 3, 3, 7, 1, 1, 1, 1, 0, 0, 1, 1, "in-place 1x1, 9 positions"},
    {3, 7, 7, 7, 17, 1, 1, 1, 1, 0, 0, 1, 1, "in-place 1x1, N=3, K=17"},
    {1, 3, 7, 7, 9, 1, 1, 2, 2, 0, 0, 1, 1, "1x1 stride 2 (packed)"},
    {1, 3, 7, 7, 9, 1, 1, 1, 1, 1, 1, 1, 1, "1x1 padded (packed)"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, "3x3 s1 p1"},
    {1, 7, 17, 17, 3, 3, 3, 2, 2, 1, 1, 1, 1, "3x3 s2 p1 odd size"},
    {1, 7, 16, 16, 9, 3, 3, 2, 2, 1, 1, 1, 1, "3x3 s2 p1 even size"},
    {1, 3, 15, 15, 9, 7, 7, 2, 2, 3, 3, 1, 1, "7x7 s2 p3 (ResNet stem) odd size"},
    {1, 3, 9, 9, 5, 3, 3, 1, 1, 2, 2, 1, 1, "3x3 pad 2"},
    {1, 7, 3, 3, 7, 3, 3, 1, 1, 2, 2, 2, 2, "padding wider than the image, dilation 2"},
    {1, 3, 7, 17, 7, 3, 5, 1, 2, 1, 2, 1, 1, "non-square kernel, stride, pad"},
    {3, 7, 17, 7, 7, 5, 3, 2, 1, 0, 1, 2, 1, "non-square dilation and stride"},
    {1, 6, 10, 10, 9, 3, 3, 3, 3, 1, 1, 1, 1, "stride 3"},
    {1, 3, 33, 33, 16, 6, 6, 2, 2, 2, 2, 1, 1, "YOLO stem 6x6 s2 p2"},
    {1, 5, 7, 7, 24, 3, 3, 1, 1, 1, 1, 1, 1, "49 positions (tile 16)"},
    {1, 5, 4, 8, 24, 3, 3, 1, 1, 1, 1, 1, 1, "32 positions (tile 32)"},
    {1, 5, 6, 8, 24, 3, 3, 1, 1, 1, 1, 1, 1, "48 positions (tile 48)"},
    {1, 5, 10, 10, 33, 3, 3, 1, 1, 1, 1, 1, 1, "100 positions, K=33"},
    {2, 16, 33, 33, 40, 3, 3, 1, 1, 1, 1, 1, 1, "1089 positions: per-thread panels"},
    {1, 64, 20, 20, 64, 1, 1, 1, 1, 0, 0, 1, 1, "in-place 1x1, 400 positions"},
    {1, 40, 40, 40, 20, 1, 1, 1, 1, 0, 0, 1, 1, "in-place 1x1, many panels"},
    {1, 64, 48, 48, 24, 1, 1, 1, 1, 0, 0, 1, 1, "in-place 1x1, column panels outer"},
    {1, 32, 90, 90, 9, 3, 3, 3, 3, 1, 1, 1, 1, "stride 3, per-thread unrolled panels"},
    {1, 128, 5, 5, 128, 3, 3, 1, 1, 1, 1, 1, 1, "weights past L2: weight panels outer"},
    {1, 160, 27, 27, 96, 3, 3, 1, 1, 1, 1, 1, 1, "weights and input past L2: chunked reduction"},
    {1, 3, 64, 64, 16, 6, 6, 2, 2, 2, 2, 1, 1, "stem at 64: row tiles"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static st_conv2d make_conv(const dc_case *cc) {
    st_conv2d c = {.N = cc->N, .C = cc->C, .H = cc->H, .W = cc->W, .K = cc->K, .R = cc->R,
                   .S = cc->S, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph,
                   .pad_w = cc->pw, .dil_h = cc->dh, .dil_w = cc->dw, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    return c;
}

/* Absolute tolerance for sums of C*R*S products of values in [-1, 1] in another order:
 * rounding grows with the length (1e-5 up to 100 terms; a lost or doubled chunk of the
 * reduction would be off by O(1)). */
static double sum_atol(const st_conv2d *c) {
    double crs = (double)c->C * c->R * c->S;
    return 1e-5 * (crs > 100 ? crs / 100 : 1);
}

static int have_kernel(void) {
    st_conv2d c = {.N = 1, .C = 1, .H = 1, .W = 1, .K = 1, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                   .dil_h = 1, .dil_w = 1, .groups = 1};
    if (st_dense_conv_supported(&c)) return 1;
    stt_skip("no AVX2 selected: the dense conv kernel is not used on this CPU");
    return 0;
}

/* Runs body once per SIMD level the CPU has (AVX2, AVX-512), ST_ISA set accordingly and
 * restored after. */
#define FOR_EACH_ISA(body)                                                                   \
    do {                                                                                     \
        const char *isa_prev_ = getenv("ST_ISA");                                            \
        char isa_keep_[32] = "";                                                             \
        if (isa_prev_) snprintf(isa_keep_, sizeof isa_keep_, "%s", isa_prev_);               \
        for (int isa_ = ST_ISA_AVX2; isa_ <= (int)st_cpu_best_isa(); isa_++) {               \
            setenv("ST_ISA", st_isa_name((st_isa)isa_), 1);                                  \
            body;                                                                            \
        }                                                                                    \
        if (isa_prev_) setenv("ST_ISA", isa_keep_, 1);                                       \
        else unsetenv("ST_ISA");                                                             \
    } while (0)

static void check_case(int ci);

START_TEST(matches_reference) {
    if (!have_kernel()) return;
    FOR_EACH_ISA(check_case(_i));
}
END_TEST

static void check_case(int ci) {
    static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    const dc_case *cc = &cases[ci];
    st_conv2d c = make_conv(cc);
    st_rng r;
    st_rng_seed(&r, 100 + (uint64_t)ci);
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, nw = (size_t)c.K * c.C * c.R * c.S,
                 ny = (size_t)c.N * c.K * c.P * c.Q;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc((size_t)c.K * sizeof *b);
    float *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got), *got2 = malloc(ny * sizeof *got2);
    float *scr = malloc((st_dense_conv_scratch_floats(&c, 2) + 1) * sizeof(float));
    stt_fill_uniform(x, nx, -1, 1, &r);
    stt_fill_uniform(b, (size_t)c.K, -1, 1, &r);
    for (int sp = 0; sp < 5; sp++) {
        stt_fill_uniform(w, nw, -1, 1, &r);
        for (size_t i = 0; i < nw; i++)
            if (st_rng_uniform(&r) < sparsities[sp]) w[i] = 0.0f;
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bias = with_bias ? b : NULL;
            st_conv2d_forward_ref(&c, want, x, w, bias);
            st_dense_conv d;
            st_error err = {0};
            ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_OK);
            for (int t = 1; t <= 2; t++) {
                omp_set_num_threads(t);
                float *out = t == 1 ? got : got2;
                for (size_t i = 0; i < ny; i++) out[i] = 1e30f; /* every output is written */
                st_dense_conv_forward(&d, &c, out, x, bias, NULL, scr);
                if (t == 1) {
                    ck_assert_msg(stt_first_mismatch(got, want, ny, sum_atol(&c), 1e-4) == (size_t)-1,
                                  "%s (%s): differs from the reference", cc->what, getenv("ST_ISA"));
                }
            }
            ck_assert_msg(!memcmp(got, got2, ny * sizeof *got), "%s (%s): 1 vs 2 threads differ", cc->what,
                          getenv("ST_ISA"));
            omp_set_num_threads(2);
            st_dense_conv_free(&d);
        }
    }
    free(x), free(w), free(b), free(want), free(got), free(got2), free(scr);
}

/* The epilogue sees every output exactly once, with its index and channel. */
typedef struct {
    float *base;
    int K;
    size_t PQ;
    unsigned char *seen;
    int bad;
} epi_check;

static void relu_epi(const void *ctx, float *y, size_t n, size_t i0, int k) {
    epi_check *e = (epi_check *)ctx;
    if (y != e->base + i0 || (int)(i0 / e->PQ % (size_t)e->K) != k || (i0 + n - 1) / e->PQ != i0 / e->PQ)
        e->bad = 1; /* racy write of the same value: only ever set */
    for (size_t i = 0; i < n; i++) {
        y[i] = y[i] > 0 ? y[i] : 0;
        e->seen[i0 + i]++;
    }
}

static void check_epilogue(int ci);

START_TEST(epilogue_on_finished_outputs) {
    if (!have_kernel()) return;
    FOR_EACH_ISA(check_epilogue(_i));
}
END_TEST

static void check_epilogue(int ci) {
    const dc_case *cc = &cases[ci];
    st_conv2d c = make_conv(cc);
    st_rng r;
    st_rng_seed(&r, 300 + (uint64_t)ci);
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, nw = (size_t)c.K * c.C * c.R * c.S,
                 ny = (size_t)c.N * c.K * c.P * c.Q;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc((size_t)c.K * sizeof *b);
    float *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got);
    float *scr = malloc((st_dense_conv_scratch_floats(&c, 2) + 1) * sizeof(float));
    stt_fill_uniform(x, nx, -1, 1, &r);
    stt_fill_uniform(w, nw, -1, 1, &r);
    stt_fill_uniform(b, (size_t)c.K, -1, 1, &r);
    st_conv2d_forward_ref(&c, want, x, w, b);
    for (size_t i = 0; i < ny; i++) want[i] = want[i] > 0 ? want[i] : 0;
    st_dense_conv d;
    st_error err = {0};
    ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_OK);
    epi_check ec = {got, c.K, (size_t)c.P * c.Q, calloc(ny, 1), 0};
    const st_dense_epi epi = {relu_epi, &ec};
    omp_set_num_threads(2);
    st_dense_conv_forward(&d, &c, got, x, b, &epi, scr);
    ck_assert_msg(!ec.bad, "%s: epilogue called with a wrong index or channel", cc->what);
    for (size_t i = 0; i < ny; i++) ck_assert_msg(ec.seen[i] == 1, "%s: output %zu seen %d times", cc->what, i, ec.seen[i]);
    STT_ASSERT_CLOSE(got, want, ny, sum_atol(&c), 1e-4);
    st_dense_conv_free(&d);
    free(ec.seen), free(x), free(w), free(b), free(want), free(got), free(scr);
}

/* The cases above reach every way the kernel runs a convolution. */
START_TEST(cases_cover_every_mode) {
    static const char *modes[] = {"in-place, weight panels outer", "in-place, column panels outer",
                                  "unrolled, shared panels", "unrolled, per-thread panels",
                                  "direct, row tiles, column panels outer", "direct, grid + compaction, column panels outer",
                                  "direct, grid in place"};
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        int hit = 0;
        for (int i = 0; i < N_CASES && !hit; i++) {
            st_conv2d c = make_conv(&cases[i]);
            hit = !strcmp(st_dense_conv_mode(&c, 2), modes[m]) || !strcmp(st_dense_conv_mode(&c, 1), modes[m]);
        }
        ck_assert_msg(hit, "no test case runs as '%s'", modes[m]);
    }
}
END_TEST

START_TEST(refuses_grouped) {
    st_conv2d c = {.N = 1, .C = 4, .H = 5, .W = 5, .K = 4, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1,
                   .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 2};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    ck_assert(!st_dense_conv_supported(&c));
    float w[4 * 2 * 9] = {0};
    st_dense_conv d;
    st_error err = {0};
    ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(d.wp);
}
END_TEST

Suite *dense_conv_suite(void) {
    Suite *s = suite_create("dense_conv");
    TCase *tc = tcase_create("dense_conv");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, matches_reference, 0, N_CASES);
    tcase_add_loop_test(tc, epilogue_on_finished_outputs, 0, N_CASES);
    tcase_add_test(tc, cases_cover_every_mode);
    tcase_add_test(tc, refuses_grouped);
    suite_add_tcase(s, tc);
    return s;
}
