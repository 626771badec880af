/* The Winograd stem (engine/dense/dense_wino*.c) against the plain-loop reference: 1-4
 * input channels, 1-40 output channels (K not a multiple of 4 or 16), maps from 6x6 to
 * 64x130 (partial tiles, partial 8-tile blocks, several blocks, odd tile-row counts),
 * padding 0-5, batch 1 and 2, weights 0/50/90/99/100% zero, with and without bias, the
 * fused epilogue (residual add at each output's own index), split into 1-3 parts
 * (bit-identical) and every output written. Skips without AVX-512.
 *
 * Tolerance. F(4x4, 3x3) rounds in its transforms, which mix a whole 6x6 input tile
 * (terms outside an output's receptive field cancel only in exact arithmetic): its error
 * grows with L = sum |w| over the output channel's weights times max |x|. Each output is
 * held to 1.6e-5 L + 1e-6; a wrong transform coefficient or a misplaced tap is off by
 * O(0.1 L). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cpu.h"
#include "st_dense.h"
#include "st_ops.h"
#include "st_test_util.h"

typedef struct {
    int N, C, H, W, K, pad;
    const char *what;
} wg_case;

static const wg_case cases[] = {
    {1, 3, 6, 6, 16, 2, "3x3 output: one partial tile"},
    {1, 1, 7, 9, 1, 0, "one channel in and out, no padding"},
    {2, 2, 17, 31, 5, 1, "N=2, K=5, odd sizes"},
    {1, 3, 37, 53, 17, 2, "37x53: partial tiles both ways, K=17"},
    {1, 4, 64, 130, 40, 3, "33x66 output: three 8-tile blocks, K=40 (three passes)"},
    {1, 3, 8, 300, 16, 5, "pad 5, 7x153 output: one tile-row pair, 39 tiles wide"},
    {2, 3, 70, 66, 16, 2, "N=2, 35x33 output: 9 tile rows (a lone last row)"},
    {1, 3, 320, 320, 16, 2, "yolov5n's stem at 320"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static int have_wino(const st_conv2d *c) {
    if (st__wino_ok(c)) return 1;
    stt_skip("no AVX-512 selected: the Winograd stem is not used on this CPU");
    return 0;
}

static st_conv2d make_conv(const wg_case *k) {
    st_conv2d c = {.N = k->N, .C = k->C, .H = k->H, .W = k->W, .K = k->K, .R = 6, .S = 6, .stride_h = 2,
                   .stride_w = 2, .pad_h = k->pad, .pad_w = k->pad, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    return c;
}

static void no_sync(void *ctx) { (void)ctx; }

/* L per output channel: sum |w| over its weights (inputs in [-1, 1]). */
static void channel_mass(const st_conv2d *c, const float *w, float *mass) {
    const size_t crs = (size_t)c->C * 36;
    for (int k = 0; k < c->K; k++) {
        double s = 0;
        for (size_t i = 0; i < crs; i++) s += fabs(w[k * crs + i]);
        mass[k] = (float)s;
    }
}

/* got within 1.6e-5 L + 1e-6 of want at every output (L: mass[output channel]). */
static void assert_within(const st_conv2d *c, const float *got, const float *want, const float *mass, const char *what,
                          const char *how) {
    const size_t PQ = (size_t)c->P * c->Q, n = (size_t)c->N * c->K * PQ;
    for (size_t i = 0; i < n; i++) {
        const double tol = 1.6e-5 * mass[i / PQ % (size_t)c->K] + 1e-6;
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol, "%s (%s): output %zu is %.9g, want %.9g (tol %.3g)",
                      what, how, i, got[i], want[i], tol);
    }
}

START_TEST(matches_reference) {
    const wg_case *k = &cases[_i];
    st_conv2d c = make_conv(k);
    if (!have_wino(&c)) return;
    static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, nw = (size_t)c.K * c.C * 36, ny = (size_t)c.N * c.K * c.P * c.Q;
    st_rng r;
    st_rng_seed(&r, 500 + (uint64_t)_i);
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *b = malloc((size_t)c.K * sizeof(float));
    float *want = malloc(ny * sizeof(float)), *mass = malloc((size_t)c.K * sizeof(float)), *got = malloc(ny * sizeof(float));
    float *got1 = malloc(ny * sizeof(float));
    float *scr = malloc(st_dense_conv_scratch_floats(&c, 3) * sizeof(float));
    stt_fill_uniform(x, nx, -1, 1, &r);
    stt_fill_uniform(b, (size_t)c.K, -1, 1, &r);
    for (int sp = 0; sp < 5; sp++) {
        stt_fill_uniform(w, nw, -1, 1, &r);
        for (size_t i = 0; i < nw; i++)
            if (st_rng_uniform(&r) < sparsities[sp]) w[i] = 0.0f;
        channel_mass(&c, w, mass);
        st_dense_conv d;
        st_error err = {0};
        ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_OK);
        ck_assert_ptr_nonnull(d.wg);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bias = with_bias ? b : NULL;
            st_conv2d_forward_ref(&c, want, x, w, bias);
            for (int np = 1; np <= 3; np++) {
                float *out = np == 1 ? got1 : got;
                for (size_t i = 0; i < ny; i++) out[i] = NAN; /* every output is written */
                for (int p = 0; p < np; p++)
                    st_dense_conv_forward_part(&d, &c, out, x, bias, NULL, 0, scr, p, np, no_sync, NULL);
                char how[64];
                snprintf(how, sizeof how, "%.0f%% zeros, bias %d, %d parts", 100 * sparsities[sp], with_bias, np);
                if (np == 1) assert_within(&c, out, want, mass, k->what, how);
                else ck_assert_msg(!memcmp(got, got1, ny * sizeof(float)), "%s (%s): parts change the result", k->what, how);
            }
        }
        st_dense_conv_free(&d);
    }
    free(x), free(w), free(b), free(want), free(mass), free(got), free(got1), free(scr);
}
END_TEST

/* The epilogue runs once on each finished output, with its own index: the reference with
 * the ops applied by the portable kernel. Three chains: add then ReLU; SiLU then add;
 * LeakyReLU, Clip, Sigmoid. Through st_dense_conv_forward (its own threads). */
START_TEST(epilogue_on_finished_outputs) {
    const wg_case *k = &cases[_i];
    st_conv2d c = make_conv(k);
    if (!have_wino(&c)) return;
    const size_t nx = (size_t)c.N * c.C * c.H * c.W, nw = (size_t)c.K * c.C * 36, ny = (size_t)c.N * c.K * c.P * c.Q;
    st_rng r;
    st_rng_seed(&r, 700 + (uint64_t)_i);
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *b = malloc((size_t)c.K * sizeof(float));
    float *res = malloc(ny * sizeof(float)), *want = malloc(ny * sizeof(float)), *got = malloc(ny * sizeof(float));
    float *mass = malloc((size_t)c.K * sizeof(float));
    float *scr = malloc(st_dense_conv_scratch_floats(&c, 2) * sizeof(float));
    stt_fill_uniform(x, nx, -1, 1, &r), stt_fill_uniform(w, nw, -1, 1, &r);
    stt_fill_uniform(b, (size_t)c.K, -1, 1, &r), stt_fill_uniform(res, ny, -1, 1, &r);
    channel_mass(&c, w, mass);
    const st_epi_op chains[3][3] = {
        {{ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_RELU, 0, 0, NULL}},
        {{ST_EPI_OP_SILU, 0, 0, NULL}, {ST_EPI_OP_ADD, 0, 0, res}},
        {{ST_EPI_OP_LEAKYRELU, 0.1f, 0, NULL}, {ST_EPI_OP_CLIP, -0.5f, 0.7f, NULL}, {ST_EPI_OP_SIGMOID, 0, 0, NULL}}};
    st_dense_conv d;
    st_error err = {0};
    ck_assert_int_eq(st_dense_conv_pack(&d, &c, w, &err), ST_OK);
    for (int ch = 0; ch < 3; ch++) {
        const int n_ops = ch == 2 ? 3 : 2;
        st_conv2d_forward_ref(&c, want, x, w, b);
        st_epi_rows_scalar(want, 0, want, 0, 1, ny, 0.0f, chains[ch], n_ops);
        for (size_t i = 0; i < ny; i++) got[i] = NAN;
        st_dense_conv_forward(&d, &c, got, x, b, chains[ch], n_ops, scr);
        /* each op here is 1-Lipschitz, SiLU 1.1: the conv's tolerance carries over */
        for (int i = 0; i < c.K; i++) mass[i] *= ch == 1 ? 1.1f : 1.0f;
        char how[32];
        snprintf(how, sizeof how, "chain %d", ch);
        assert_within(&c, got, want, mass, k->what, how);
    }
    st_dense_conv_free(&d);
    free(x), free(w), free(b), free(res), free(want), free(mass), free(got), free(scr);
}
END_TEST

/* Which convolutions take the Winograd form: exactly the 6x6 stride-2 ones over 1-4
 * channels without dilation or groups (st_dense_conv_mode says so), and the cost model
 * counts its gain only there. */
START_TEST(only_stems) {
    st_conv2d c = make_conv(&cases[0]);
    if (!have_wino(&c)) return;
    ck_assert(!strncmp(st_dense_conv_mode(&c, 1), "Winograd", 8));
    ck_assert(st_dense_conv_gain(&c) > 1.0);
    static const int tweak[][6] = {/* C, R, stride, dil, groups, pad */
                                   {5, 6, 2, 1, 1, 2}, {3, 5, 2, 1, 1, 2}, {3, 6, 1, 1, 1, 2},
                                   {3, 6, 2, 2, 1, 2}, {4, 6, 2, 1, 2, 2}, {3, 7, 2, 1, 1, 3}};
    for (size_t t = 0; t < sizeof tweak / sizeof tweak[0]; t++) {
        st_conv2d o = {.N = 1, .C = tweak[t][0], .H = 40, .W = 40, .K = 16, .R = tweak[t][1], .S = tweak[t][1],
                       .stride_h = tweak[t][2], .stride_w = tweak[t][2], .pad_h = tweak[t][5], .pad_w = tweak[t][5],
                       .dil_h = tweak[t][3], .dil_w = tweak[t][3], .groups = tweak[t][4]};
        ck_assert_int_eq(st_conv2d_init(&o), 0);
        ck_assert_msg(!st__wino_ok(&o), "shape %zu taken as a Winograd stem", t);
        ck_assert(st_dense_conv_gain(&o) == 1.0);
    }
}
END_TEST

Suite *dense_wino_suite(void) {
    Suite *s = suite_create("dense_wino");
    TCase *tc = tcase_create("dense_wino");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, matches_reference, 0, N_CASES);
    tcase_add_loop_test(tc, epilogue_on_finished_outputs, 0, N_CASES);
    tcase_add_test(tc, only_stems);
    suite_add_tcase(s, tc);
    return s;
}
