/* The sparse conv operators beyond their results on the test shapes (test_sparse_conv.c):
 * finite-difference gradients, refresh against a fresh pack, shape checks, band
 * boundaries that cross samples, and outputs written at a channel stride of their own. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "st_gradcheck.h"
#include "st_sparse_conv_cases.h"

typedef struct {
    st_conv2d c;
    st_csr *m;
    float *scratch;
} gc_ctx;

static void gc_fwd(gc_op *op, float *y) {
    gc_ctx *g = op->ctx;
    st_csr_sync_transposed(g->m); /* the checker perturbs val directly */
    st_error err;
    ck_assert_int_eq(st_conv2d_sparse_forward(&g->c, g->m, y, op->in[0], NULL, g->scratch, &err),
                     ST_OK);
}

static void gc_bwd(gc_op *op, float *const *grad, const float *dy) {
    gc_ctx *g = op->ctx;
    st_error err;
    ck_assert_int_eq(st_conv2d_sparse_backward(&g->c, g->m, grad[0], grad[1], NULL, dy, op->in[0],
                                               g->scratch, &err),
                     ST_OK);
}

START_TEST(test_sparse_conv_gradcheck) {
    static const sc_case gcases[] = {
        {2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, "gradcheck 3x3 s1 p1"},
        {2, 4, 6, 6, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2, "gradcheck 3x3 s2 groups 2"},
        {1, 3, 8, 8, 3, 6, 6, 2, 2, 2, 2, 1, 1, 1, "gradcheck 6x6 s2 p2"},
        {3, 5, 3, 3, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, "gradcheck pointwise"},
    };
    const sc_case *cc = &gcases[_i];
    gc_ctx g = {.c = make_conv(cc)};
    st_rng r;
    st_rng_seed(&r, 900 + _i);
    const size_t nw = n_weights(&g.c), nx = (size_t)g.c.N * g.c.C * g.c.H * g.c.W;
    float *w = ot_alloc(nw);
    unsigned char *mask = malloc(nw);
    sparse_weights(&g.c, w, mask, 0.6, &r);
    st_csr m = {0};
    st_error err;
    ck_assert_int_eq(st_csr_pack(&m, &g.c, w, mask, &err), ST_OK);
    g.m = &m;
    size_t ns = st_conv2d_sparse_scratch_floats(&m);
    g.scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    gc_op op = {.name = cc->what, .n_in = 2, .fwd = gc_fwd, .bwd = gc_bwd, .ctx = &g};
    op.in[0] = ot_rand(nx, -1, 1, &r);
    op.in_n[0] = nx;
    op.in_name[0] = "x";
    op.in[1] = m.val;
    op.in_n[1] = (size_t)m.nnz;
    op.in_name[1] = "val";
    op.out_n = (size_t)g.c.N * g.c.K * g.c.P * g.c.Q;
    gc_check(&op, 17 + _i);
    free(op.in[0]), free(g.scratch), free(w), free(mask);
    st_csr_free(&m);
}
END_TEST

static int case_named(const char *what) {
    for (int i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].what, what)) return i;
    ck_abort_msg("no case %s", what);
    return 0;
}

/* After an optimizer step: refresh == fresh pack, and the results follow the new values
 * (loop 1: the copy grouped by channel blocks follows too; loop 2: the quads' copy). */
START_TEST(test_sparse_conv_refresh) {
    static const int layouts[3] = {0, ST_CSR_CBLK, ST_CSR_QUADS};
    static const char *names[3] = {NULL, "channel blocks: 3x3 same, 256 channels", "quads: 3x3 same 20x20, 32 channels"};
    const int layout = layouts[_i];
    st_conv2d c = make_conv(&cases[_i ? case_named(names[_i]) : 7]);
    st_rng r;
    st_rng_seed(&r, 4);
    const size_t nw = n_weights(&c), nx = (size_t)c.N * c.C * c.H * c.W;
    const size_t ny = (size_t)c.N * c.K * c.P * c.Q;
    float *w = ot_alloc(nw), *x = ot_rand(nx, -1, 1, &r), *dy = ot_rand(ny, -1, 1, &r);
    unsigned char *mask = malloc(nw);
    sparse_weights_q(&c, w, mask, 0.8, &r, _i == 2);
    st_csr a = {0}, b = {0};
    st_error err;
    ck_assert_int_eq(st_csr_pack_layout(&a, &c, w, mask, layout, &err), ST_OK);
    ck_assert(_i != 1 || a.cb_n >= 2);
    ck_assert(_i != 2 || st_cpu_best_isa() < ST_ISA_AVX512 || a.q_n == c.K / 4);
    for (size_t i = 0; i < nw; i++)
        if (mask[i]) w[i] = 0.3f * w[i] - 0.1f;
    st_csr_refresh(&a, w);
    ck_assert_int_eq(st_csr_pack_layout(&b, &c, w, mask, layout, &err), ST_OK);
    size_t ns = st_conv2d_sparse_scratch_floats(&a);
    float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    float *ya = ot_alloc(ny), *yb = ot_alloc(ny), *yd = ot_alloc(ny);
    float *dxa = ot_zeros(nx), *dxb = ot_zeros(nx), *dva = ot_zeros(a.nnz + 1), *dvb = ot_zeros(a.nnz + 1);
    ck_assert_int_eq(st_conv2d_sparse_forward(&c, &a, ya, x, NULL, scratch, &err), ST_OK);
    ck_assert_int_eq(st_conv2d_sparse_forward(&c, &b, yb, x, NULL, scratch, &err), ST_OK);
    ck_assert_mem_eq(ya, yb, ny * sizeof(float));
    ck_assert_int_eq(st_conv2d_sparse_backward(&c, &a, dxa, dva, NULL, dy, x, scratch, &err), ST_OK);
    ck_assert_int_eq(st_conv2d_sparse_backward(&c, &b, dxb, dvb, NULL, dy, x, scratch, &err), ST_OK);
    ck_assert_mem_eq(dxa, dxb, nx * sizeof(float));
    ck_assert_mem_eq(dva, dvb, (size_t)a.nnz * sizeof(float));
    st_conv2d_forward_ref(&c, yd, x, w, NULL);
    OT_ASSERT_NEAR(ya, yd, ny, 2e-5, 1e-4, "after refresh");
    st_csr_free(&a), st_csr_free(&b);
    free(w), free(x), free(dy), free(mask), free(scratch), free(ya), free(yb), free(yd);
    free(dxa), free(dxb), free(dva), free(dvb);
}
END_TEST

/* Weights packed for one shape are refused for another; any batch size is fine. */
START_TEST(test_sparse_conv_shape_check) {
    st_conv2d c = make_conv(&cases[5]);
    const size_t nw = n_weights(&c);
    float *w = ot_zeros(nw);
    w[3] = 1.0f;
    st_csr m = {0};
    st_error err = {0};
    ck_assert_int_eq(st_csr_pack(&m, &c, w, NULL, &err), ST_OK);
    ck_assert_int_eq(m.nnz, 1);
    st_conv2d other = c;
    other.pad_h = 0, other.pad_w = 0;
    ck_assert_int_eq(st_conv2d_init(&other), 0);
    /* the automatic layout: stride-1 same-size convs on planes >= 64 pixels in place,
     * and on smaller planes at batch 1 (case 2); small planes at larger batches and
     * strided convs banded */
    static const struct { int ci, direct; } pick[] = {{20, 1}, {21, 1}, {19, 1}, {5, 0},
                                                      {7, 0}, {11, 0}, {2, 1}, {1, 0}};
    st_rng rr;
    st_rng_seed(&rr, 8);
    for (int i = 0; i < 8; i++) {
        st_csr d = {0};
        st_conv2d pc = make_conv(&cases[pick[i].ci]);
        float *wp = ot_rand(n_weights(&pc), -1, 1, &rr);
        ck_assert_int_eq(st_csr_pack(&d, &pc, wp, NULL, &err), ST_OK);
        ck_assert_msg(d.geom.direct == pick[i].direct, "%s", cases[pick[i].ci].what);
        st_csr_free(&d);
        free(wp);
    }
    /* one image on few rows in place: 2, 4 or 8 bands of >= 128 floats (threads take
     * whole bands); 10x10 stays one band, and so does 20x20 at batch 2 */
    static const struct { int N, H, W, L; } bands[] = {{1, 20, 20, 10}, {1, 40, 40, 10}, {1, 56, 56, 7},
                                                       {1, 10, 10, 10}, {2, 20, 20, 20}};
    for (int i = 0; i < 5; i++) {
        st_conv2d bc = {.N = bands[i].N, .C = 2, .H = bands[i].H, .W = bands[i].W, .K = 3, .R = 3, .S = 3,
                        .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1,
                        .groups = 1};
        ck_assert_int_eq(st_conv2d_init(&bc), 0);
        float *wb = ot_rand(n_weights(&bc), -1, 1, &rr);
        st_csr d = {0};
        ck_assert_int_eq(st_csr_pack(&d, &bc, wb, NULL, &err), ST_OK);
        ck_assert_msg(d.geom.direct && d.geom.L == bands[i].L, "N=%d %dx%d: direct %d, band of %d rows",
                      bands[i].N, bands[i].H, bands[i].W, d.geom.direct, d.geom.L);
        st_csr_free(&d);
        free(wb);
    }
    float *y = ot_alloc((size_t)c.N * c.K * c.P * c.Q), *x = ot_zeros((size_t)c.N * c.C * c.H * c.W);
    size_t ns = st_conv2d_sparse_scratch_floats(&m);
    float *scratch = malloc((ns ? ns : 1) * sizeof(float));
    ck_assert_int_eq(st_conv2d_sparse_forward(&other, &m, y, x, NULL, scratch, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "another shape") != NULL, "%s", err.msg);
    st_conv2d one = c;
    one.N = 1;
    ck_assert_int_eq(st_conv2d_sparse_forward(&one, &m, y, x, NULL, scratch, &err), ST_OK);
    st_csr_free(&m);
    free(w), free(y), free(x), free(scratch);
}
END_TEST

/* st_csr_pack_band: a band of output rows from a buffer holding the band's input rows
 * and its halo (zeros beyond the map), channels ldc apart, equals those rows of the
 * whole-map conv; at the map's top, inside and at its bottom, for 1x1, 3x3 and 5x5
 * "same" convs, every ISA, with a SiLU epilogue. Shapes without a direct mode are
 * refused. */
START_TEST(test_sparse_conv_band_pack) {
    static const sc_case bc[] = {
        {1, 5, 13, 19, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "band 3x3"},
        {1, 3, 11, 23, 5, 5, 5, 1, 1, 2, 2, 1, 1, 1, "band 5x5 pad 2"},
        {1, 6, 9, 17, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, "band 1x1"},
        {1, 4, 12, 16, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1, "band 3x3 dilation 2"},
    };
    const sc_case *cc = &bc[_i / 3];
    const st_conv2d c = make_conv(cc);
    const double sp = (double[]){0.0, 0.5, 0.9}[_i % 3];
    st_rng r;
    st_rng_seed(&r, 300 + (uint64_t)_i);
    const size_t nw = n_weights(&c), plane = (size_t)c.H * c.W;
    float *w = ot_alloc(nw), *x = ot_rand((size_t)c.C * plane, -1, 1, &r);
    float *b = ot_rand((size_t)c.K, -1, 1, &r), *want = ot_alloc((size_t)c.K * plane);
    unsigned char *mask = malloc(nw);
    sparse_weights(&c, w, mask, sp, &r);
    st_conv2d_forward_ref(&c, want, x, w, b);
    const st_epi_op silu = {ST_EPI_OP_SILU, 0, 0, NULL};
    st_epi_rows_scalar(want, 0, want, 0, 1, (size_t)c.K * plane, 0.0f, &silu, 1);
    const int Hb = 4, ph = c.pad_h, ldc = (Hb + 2 * ph) * c.W + 5; /* channels not packed tight */
    st_conv2d band = c;
    band.H = Hb;
    ck_assert_int_eq(st_conv2d_init(&band), 0);
    st_csr m = {0};
    st_error err = {0};
    ck_assert_msg(st_csr_pack_band(&m, &band, w, ldc, &err) == ST_OK, "%s: %s", cc->what, err.msg);
    float *buf = ot_alloc((size_t)c.C * ldc), *got = ot_alloc((size_t)c.K * Hb * c.W);
    size_t ns = st_conv2d_sparse_scratch_floats(&m);
    float *scratch = malloc((ns ? ns : 1) * sizeof(float));
    const int ni = n_isas();
    for (int q = 0; q < ni; q++) {
        st_csr_set_isa(&m, isas[q]);
        for (int o0 = 0; o0 <= c.H - Hb; o0 += (c.H - Hb + 1) / 2) {
            for (int ch = 0; ch < c.C; ch++)
                for (int t = 0; t < Hb + 2 * ph; t++) {
                    const int row = o0 - ph + t;
                    for (int u = 0; u < c.W; u++)
                        buf[(size_t)ch * ldc + (size_t)t * c.W + u] =
                            row >= 0 && row < c.H ? x[(size_t)ch * plane + (size_t)row * c.W + u] : 0.0f;
                }
            for (size_t i = 0; i < (size_t)c.K * Hb * c.W; i++) got[i] = NAN;
            ck_assert_int_eq(st_conv2d_sparse_forward_epi(&band, &m, got, buf + (size_t)ph * c.W, b,
                                                          &silu, 1, scratch, &err), ST_OK);
            for (int k = 0; k < c.K; k++) {
                char what[160];
                snprintf(what, sizeof what, "%s sparsity %.1f %s rows %d-%d channel %d", cc->what, sp,
                         st_isa_name(isas[q]), o0, o0 + Hb - 1, k);
                OT_ASSERT_NEAR(got + (size_t)k * Hb * c.W, want + (size_t)k * plane + (size_t)o0 * c.W,
                               (size_t)Hb * c.W, 2e-5, 1e-4, what);
            }
        }
    }
    st_conv2d s2 = c;
    s2.stride_h = s2.stride_w = 2;
    ck_assert_int_eq(st_conv2d_init(&s2), 0);
    ck_assert_int_eq(st_csr_pack_band(&m, &s2, w, ldc, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(m.row_ptr); /* refused: left empty, as after a failed st_csr_pack */
    st_csr_free(&m);
    free(w), free(x), free(b), free(want), free(mask), free(buf), free(got), free(scratch);
}
END_TEST

/* st_conv2d_sparse_forward_ldy writes each output channel ldy floats apart (a band's
 * rows inside a taller map): the same values as the plain forward, a residual Add read
 * in the map's layout, the map's other rows untouched; direct and banded layouts (staged
 * and straight-into-y stride-2 rows), every ISA. Several images or a short stride are
 * refused. st_conv2d_sparse_forward_ld also reads input channels ldx apart (a window of
 * a taller map) in banded mode, the same values; direct mode refuses another stride. */
START_TEST(test_sparse_conv_forward_ldy) {
    static const sc_case lc[] = {
        {1, 5, 13, 19, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 same (direct)"},
        {1, 6, 9, 17, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 (direct)"},
        {1, 4, 17, 17, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, staged rows"},
        {1, 3, 9, 81, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, 41-wide rows into y"},
    };
    const sc_case *cc = &lc[_i];
    const st_conv2d c = make_conv(cc);
    st_rng r;
    st_rng_seed(&r, 400 + (uint64_t)_i);
    const size_t nw = n_weights(&c), PQ = (size_t)c.P * c.Q, ldy = PQ + 3 * (size_t)c.Q, off = 2 * (size_t)c.Q;
    float *w = ot_alloc(nw), *x = ot_rand((size_t)c.C * c.H * c.W, -1, 1, &r), *b = ot_rand((size_t)c.K, -1, 1, &r);
    unsigned char *mask = malloc(nw);
    sparse_weights(&c, w, mask, 0.5, &r);
    float *res_map = ot_rand((size_t)c.K * ldy, -1, 1, &r), *res = ot_alloc((size_t)c.K * PQ);
    for (int k = 0; k < c.K; k++) memcpy(res + (size_t)k * PQ, res_map + (size_t)k * ldy + off, PQ * sizeof(float));
    st_csr m = {0};
    st_error err = {0};
    ck_assert_int_eq(st_csr_pack(&m, &c, w, mask, &err), ST_OK);
    size_t ns = st_conv2d_sparse_scratch_floats(&m);
    float *scratch = malloc((ns ? ns : 1) * sizeof(float)), *want = ot_alloc((size_t)c.K * PQ);
    float *map = ot_alloc((size_t)c.K * ldy);
    const size_t HW = (size_t)c.H * c.W, ldx = HW + 2 * (size_t)c.W + 5, xoff = (size_t)c.W + 3;
    float *xmap = ot_rand((size_t)c.C * ldx, -1, 1, &r); /* x's rows inside other values */
    for (int ch = 0; ch < c.C; ch++) memcpy(xmap + (size_t)ch * ldx + xoff, x + (size_t)ch * HW, HW * sizeof(float));
    const st_epi_op plain[2] = {{ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_SILU, 0, 0, NULL}};
    const st_epi_op in_map[2] = {{ST_EPI_OP_ADD, 0, 0, res_map + off}, {ST_EPI_OP_SILU, 0, 0, NULL}};
    for (int q = 0; q < n_isas(); q++) {
        st_csr_set_isa(&m, isas[q]);
        ck_assert_int_eq(st_conv2d_sparse_forward_epi(&c, &m, want, x, b, plain, 2, scratch, &err), ST_OK);
        for (size_t i = 0; i < (size_t)c.K * ldy; i++) map[i] = 7.0f;
        ck_assert_int_eq(st_conv2d_sparse_forward_ldy(&c, &m, map + off, ldy, x, b, in_map, 2, scratch, &err),
                         ST_OK);
        for (int k = 0; k < c.K; k++) {
            char what[160];
            snprintf(what, sizeof what, "%s %s (%s) channel %d", cc->what, st_isa_name(isas[q]),
                     m.geom.direct ? "direct" : "banded", k);
            OT_ASSERT_NEAR(map + (size_t)k * ldy + off, want + (size_t)k * PQ, PQ, 1e-6, 1e-6, what);
            for (size_t i = 0; i < ldy; i++)
                if ((i < off || i >= off + PQ) && map[(size_t)k * ldy + i] != 7.0f)
                    ck_abort_msg("%s: wrote outside its rows at %zu", what, i);
        }
        for (size_t i = 0; i < (size_t)c.K * ldy; i++) map[i] = 7.0f;
        const st_status st = st_conv2d_sparse_forward_ld(&c, &m, map + off, ldy, xmap + xoff, ldx, b, in_map, 2,
                                                         scratch, &err);
        if (m.geom.direct) {
            ck_assert_int_eq(st, ST_ERR_INPUT);
            continue;
        }
        ck_assert_int_eq(st, ST_OK);
        for (int k = 0; k < c.K; k++)
            OT_ASSERT_NEAR(map + (size_t)k * ldy + off, want + (size_t)k * PQ, PQ, 1e-6, 1e-6, cc->what);
    }
    ck_assert_int_eq(st_conv2d_sparse_forward_ldy(&c, &m, map, PQ - 1, x, b, NULL, 0, scratch, &err), ST_ERR_INPUT);
    st_conv2d two = c;
    two.N = 2;
    ck_assert_int_eq(st_conv2d_sparse_forward_ldy(&two, &m, map, ldy, x, b, NULL, 0, scratch, &err), ST_ERR_INPUT);
    st_csr_free(&m);
    free(w), free(x), free(b), free(mask), free(res_map), free(res), free(scratch), free(want), free(map), free(xmap);
}
END_TEST

Suite *sparse_conv_api_suite(void) {
    Suite *s = suite_create("sparse_conv_api");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_sparse_conv_gradcheck, 0, 4);
    tcase_add_loop_test(tc, test_sparse_conv_refresh, 0, 3);
    tcase_add_test(tc, test_sparse_conv_shape_check);
    tcase_add_loop_test(tc, test_sparse_conv_band_pack, 0, 12);
    tcase_add_loop_test(tc, test_sparse_conv_forward_ldy, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}
