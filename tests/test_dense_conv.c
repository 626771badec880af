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
    {1, 160, 27, 27, 96, 3, 3, 1, 1, 1, 1, 1, 1, "weights and input past L2"},
    {1, 32, 64, 64, 8, 7, 7, 1, 1, 3, 3, 1, 1, "7x7 on an input past L2: direct, chunked reduction"},
    {1, 256, 30, 30, 9, 3, 3, 3, 3, 1, 1, 1, 1, "stride 3, few panels: shared unrolled, chunked"},
    {1, 3, 64, 64, 16, 6, 6, 2, 2, 2, 2, 1, 1, "stem at 64: row tiles"},
    /* K a multiple of 64, direct: channel vectors on AVX-512 (tiles of 6 positions) */
    {1, 5, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors: 3x3 on 7x7 (49 positions)"},
    {1, 7, 9, 11, 128, 3, 3, 2, 2, 1, 1, 1, 1, "channel vectors: 3x3 s2 on 9x11, K=128"},
    {3, 3, 8, 8, 64, 3, 3, 1, 1, 2, 2, 2, 2, "channel vectors: dilation 2, N=3"},
    {1, 3, 15, 15, 64, 7, 7, 2, 2, 3, 3, 1, 1, "channel vectors: 7x7 s2 p3 over 3 channels"},
    {1, 2, 1, 1, 64, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors: one position"},
    {1, 4, 4, 5, 64, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors: 20 positions (a last tile of 2)"},
    {1, 6, 3, 3, 128, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors: 9 positions (a last tile of 3)"},
    {1, 130, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors, chunked: 49 positions (a last tile of 1)"},
    /* reductions over 1024 rows go in chunks; parts split the tiles mid-panel */
    {1, 130, 6, 6, 64, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors, chunked: one panel, 36 positions"},
    {1, 120, 7, 5, 192, 3, 3, 1, 1, 1, 1, 1, 1, "channel vectors, chunked: three panels"},
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
    /* the Winograd stem rounds in its transforms: up to ~4e-6 of sum |w| |x|, which is
     * at most crs here (test_dense_wino.c bounds it output by output) */
    if (!strncmp(st_dense_conv_mode(c, 1), "Winograd", 8)) return 1.6e-5 * crs;
    return 1e-5 * (crs > 100 ? crs / 100 : 1);
}

static int have_kernel(void) {
    st_conv2d c = {.N = 1, .C = 1, .H = 1, .W = 1, .K = 1, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                   .dil_h = 1, .dil_w = 1, .groups = 1};
    if (st_dense_conv_supported(&c)) return 1;
    stt_skip("no AVX2 selected: the dense conv kernel is not used on this CPU");
    return 0;
}

/* Runs check(ci) once per SIMD level the CPU has (AVX2, AVX-512), ST_ISA set
 * accordingly and restored after. */
static void for_each_isa(void (*check)(int), int ci) {
    const char *prev = getenv("ST_ISA");
    char keep[32] = "";
    if (prev) snprintf(keep, sizeof keep, "%s", prev);
    for (int isa = ST_ISA_AVX2; isa <= (int)st_cpu_best_isa(); isa++) {
        setenv("ST_ISA", st_isa_name((st_isa)isa), 1);
        check(ci);
    }
    if (prev) setenv("ST_ISA", keep, 1);
    else unsetenv("ST_ISA");
}

/* One case's arrays: x and b random (seeded), w, the reference and two outputs sized,
 * scratch for up to 2 threads. */
typedef struct {
    st_conv2d c;
    size_t nx, nw, ny;
    float *x, *w, *b, *want, *got, *got2, *scr;
    st_rng r;
} dc_bufs;

static void bufs_open(dc_bufs *t, int ci, uint64_t seed) {
    t->c = make_conv(&cases[ci]);
    const st_conv2d *c = &t->c;
    st_rng_seed(&t->r, seed + (uint64_t)ci);
    t->nx = (size_t)c->N * c->C * c->H * c->W, t->nw = (size_t)c->K * c->C * c->R * c->S;
    t->ny = (size_t)c->N * c->K * c->P * c->Q;
    t->x = malloc(t->nx * sizeof(float)), t->w = malloc(t->nw * sizeof(float));
    t->b = malloc((size_t)c->K * sizeof(float));
    t->want = malloc(t->ny * sizeof(float)), t->got = malloc(t->ny * sizeof(float));
    t->got2 = malloc(t->ny * sizeof(float));
    t->scr = malloc((st_dense_conv_scratch_floats(c, 2) + 1) * sizeof(float));
    stt_fill_uniform(t->x, t->nx, -1, 1, &t->r);
    stt_fill_uniform(t->b, (size_t)c->K, -1, 1, &t->r);
}

static void bufs_close(dc_bufs *t) {
    free(t->x), free(t->w), free(t->b), free(t->want), free(t->got), free(t->got2), free(t->scr);
}

static void check_case(int ci);

START_TEST(matches_reference) {
    if (!have_kernel()) return;
    for_each_isa(check_case, _i);
}
END_TEST

static void check_case(int ci) {
    static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    const dc_case *cc = &cases[ci];
    dc_bufs t;
    bufs_open(&t, ci, 100);
    const st_conv2d c = t.c;
    const size_t ny = t.ny;
    for (int sp = 0; sp < 5; sp++) {
        stt_fill_uniform(t.w, t.nw, -1, 1, &t.r);
        for (size_t i = 0; i < t.nw; i++)
            if (st_rng_uniform(&t.r) < sparsities[sp]) t.w[i] = 0.0f;
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bias = with_bias ? t.b : NULL;
            st_conv2d_forward_ref(&c, t.want, t.x, t.w, bias);
            st_dense_conv d;
            st_error err = {0};
            ck_assert_int_eq(st_dense_conv_pack(&d, &c, t.w, &err), ST_OK);
            for (int th = 1; th <= 2; th++) {
                omp_set_num_threads(th);
                float *out = th == 1 ? t.got : t.got2;
                for (size_t i = 0; i < ny; i++) out[i] = 1e30f; /* every output is written */
                st_dense_conv_forward(&d, &c, out, t.x, bias, NULL, 0, t.scr);
                if (th == 1) {
                    ck_assert_msg(stt_first_mismatch(t.got, t.want, ny, sum_atol(&c), 1e-4) == (size_t)-1,
                                  "%s (%s): differs from the reference", cc->what, getenv("ST_ISA"));
                }
            }
            ck_assert_msg(!memcmp(t.got, t.got2, ny * sizeof(float)), "%s (%s): 1 vs 2 threads differ",
                          cc->what, getenv("ST_ISA"));
            omp_set_num_threads(2);
            st_dense_conv_free(&d);
        }
    }
    bufs_close(&t);
}

/* The epilogue sees every output exactly once, with its index and channel. */
static void check_epilogue(int ci);

START_TEST(epilogue_on_finished_outputs) {
    if (!have_kernel()) return;
    for_each_isa(check_epilogue, _i);
}
END_TEST

/* The epilogue fused into the tiles (or the compaction) gives the reference output with
 * the ops applied by the portable kernel: the residual add reads each output's own index
 * (a wrong offset, a skipped or repeated tile would show). Three chains by case: add then
 * ReLU; SiLU then add; LeakyReLU, Clip, Sigmoid (not idempotent: an epilogue run on a
 * partial sum of a chunked reduction, or twice, would show). */
static void check_epilogue(int ci) {
    dc_bufs t;
    bufs_open(&t, ci, 300);
    const st_conv2d c = t.c;
    stt_fill_uniform(t.w, t.nw, -1, 1, &t.r);
    float *res = malloc(t.ny * sizeof(float));
    stt_fill_uniform(res, t.ny, -1, 1, &t.r);
    const st_epi_op chains[3][3] = {
        {{ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_RELU, 0, 0, NULL}},
        {{ST_EPI_OP_SILU, 0, 0, NULL}, {ST_EPI_OP_ADD, 0, 0, res}},
        {{ST_EPI_OP_LEAKYRELU, 0.1f, 0, NULL}, {ST_EPI_OP_CLIP, -0.5f, 0.7f, NULL}, {ST_EPI_OP_SIGMOID, 0, 0, NULL}}};
    const st_epi_op *ops = chains[ci % 3];
    const int n_ops = ci % 3 == 2 ? 3 : 2;
    st_conv2d_forward_ref(&c, t.want, t.x, t.w, t.b);
    st_epi_rows_scalar(t.want, 0, t.want, 0, 1, t.ny, 0.0f, ops, n_ops);
    st_dense_conv d;
    st_error err = {0};
    ck_assert_int_eq(st_dense_conv_pack(&d, &c, t.w, &err), ST_OK);
    omp_set_num_threads(2);
    st_dense_conv_forward(&d, &c, t.got, t.x, t.b, ops, n_ops, t.scr);
    STT_ASSERT_CLOSE(t.got, t.want, t.ny, sum_atol(&c), 1e-4);
    st_dense_conv_free(&d);
    free(res);
    bufs_close(&t);
}

/* The cases above reach every way the kernel runs a convolution. */
START_TEST(cases_cover_every_mode) {
    static const char *modes[] = {"in-place, weight panels outer", "in-place, column panels outer",
                                  "unrolled, shared panels", "unrolled, per-thread panels",
                                  "direct, row tiles, column panels outer", "direct, grid + compaction, column panels outer",
                                  "direct, grid in place"};
    static const char *avx512_modes[] = {"direct, channel vectors", "Winograd F(4x4, 3x3) over the space-to-depth input"};
    const size_t n_modes = sizeof modes / sizeof *modes + 2 * (st_cpu_select_isa() >= ST_ISA_AVX512);
    for (size_t m = 0; m < n_modes; m++) {
        const char *mode = m < sizeof modes / sizeof *modes ? modes[m] : avx512_modes[m - sizeof modes / sizeof *modes];
        int hit = 0;
        for (int i = 0; i < N_CASES && !hit; i++) {
            st_conv2d c = make_conv(&cases[i]);
            hit = !strcmp(st_dense_conv_mode(&c, 2), mode) || !strcmp(st_dense_conv_mode(&c, 1), mode);
        }
        ck_assert_msg(hit, "no test case runs as '%s'", mode);
    }
    /* and the reduction in chunks (tiles accumulated across chunks): direct row tiles,
     * unrolled, and (AVX-512) channel vectors */
    int direct_chunked = 0, unrolled_chunked = 0, cvec_chunked = st_cpu_select_isa() < ST_ISA_AVX512;
    for (int i = 0; i < N_CASES; i++) {
        st_conv2d c = make_conv(&cases[i]);
        if (st_dense_conv_chunks(&c, 2) < 2) continue;
        const char *mode = st_dense_conv_mode(&c, 2);
        const int cvec = !strcmp(mode, "direct, channel vectors");
        direct_chunked |= !cvec && !strncmp(mode, "direct", 6);
        cvec_chunked |= cvec;
        unrolled_chunked |= !strncmp(mode, "unrolled", 8);
    }
    ck_assert_msg(direct_chunked && unrolled_chunked && cvec_chunked,
                  "chunked reduction not covered: direct %d, unrolled %d, channel vectors %d", direct_chunked,
                  unrolled_chunked, cvec_chunked);
}
END_TEST

/* The columns schedule runs a band of a layer's rows (its own H, no vertical padding) on
 * the whole layer's packing. The band must follow that packing, not what the rule would
 * pick for its own shape: a layer packed for channel vectors (7x7, small planes) and one
 * packed for the row tiles (56x56, planes past half of L2) whose bands the rule alone
 * would give channel vectors. Each band output against the plain reference. */
START_TEST(band_follows_the_layer_packing) {
    if (!have_kernel()) return;
    static const int layers[2][3] = {{5, 7, 64}, {64, 56, 64}}; /* C, H (= W), K */
    for (int l = 0; l < 2; l++) {
        st_conv2d c = {.N = 1, .C = layers[l][0], .H = layers[l][1], .W = layers[l][1], .K = layers[l][2],
                       .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1,
                       .dil_w = 1, .groups = 1};
        ck_assert_int_eq(st_conv2d_init(&c), 0);
        st_conv2d band = c;
        band.H = 5, band.pad_h = 0; /* 3 output rows from 5 input rows */
        ck_assert_int_eq(st_conv2d_init(&band), 0);
        const size_t nw = (size_t)c.K * c.C * 9, nx = (size_t)c.C * band.H * c.W, ny = (size_t)c.K * band.P * c.Q;
        st_rng r;
        st_rng_seed(&r, 77 + (uint64_t)l);
        float *w = malloc(nw * sizeof(float)), *x = malloc(nx * sizeof(float)), *b = malloc((size_t)c.K * sizeof(float));
        float *want = malloc(ny * sizeof(float)), *got = malloc(ny * sizeof(float));
        float *scr = malloc((st_dense_conv_scratch_floats(&band, 2) + 16) * sizeof(float));
        stt_fill_uniform(w, nw, -1, 1, &r), stt_fill_uniform(x, nx, -1, 1, &r), stt_fill_uniform(b, (size_t)c.K, -1, 1, &r);
        st_dense_conv d;
        st_error err = {0};
        ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_OK);
        if (st_cpu_select_isa() >= ST_ISA_AVX512) { /* the two sides of the rule */
            ck_assert(l == 0 ? d.wc != NULL : d.wc == NULL);
            ck_assert_str_eq(st_dense_conv_mode(&band, 1), "direct, channel vectors");
        }
        st_conv2d_forward_ref(&band, want, x, w, b);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            st_dense_conv_forward(&d, &band, got, x, b, NULL, 0, scr);
            ck_assert_msg(stt_first_mismatch(got, want, ny, sum_atol(&c), 1e-4) == (size_t)-1,
                          "layer %d, %d threads: band differs from the reference", l, th);
        }
        omp_set_num_threads(2);
        st_dense_conv_free(&d);
        free(w), free(x), free(b), free(want), free(got), free(scr);
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
    tcase_add_test(tc, band_follows_the_layer_packing);
    tcase_add_test(tc, refuses_grouped);
    suite_add_tcase(s, tc);
    return s;
}
