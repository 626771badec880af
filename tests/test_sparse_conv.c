/* Sparse conv2d against the dense fast path (OpenBLAS) and the plain-loop reference on
 * the same weights with explicit zeros: odd shapes, strides 1/2, padding 0/1/2, kernels
 * 1x1/3x3/5x5/6x6-s2-p2, groups 1/2, batch 1/3, sparsity 0..100%, every ISA the CPU
 * has; plus finite-difference gradient checks, refresh vs fresh pack, determinism,
 * band boundaries that cross samples, the in-place 1x1 mode and shape mismatches. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "st_gradcheck.h"
#include "st_ops.h"
#include "st_ops_test_util.h"
#include "act_kernels.h"
#include "st_sparse.h"

typedef struct {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g;
    const char *what;
} sc_case;

static const sc_case cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 on 1x1, one channel"},
    {3, 7, 7, 7, 17, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise N=3"},
    {1, 17, 3, 3, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 3x3 image"},
    {3, 3, 7, 7, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, "1x1 stride 2"},
    {3, 4, 7, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, "pointwise groups 2"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 s1 p1"},
    {1, 7, 17, 17, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2 p1, odd size"},
    {3, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, "3x3 s2 p1 groups 2"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1, "3x3 no pad"},
    {1, 3, 9, 9, 5, 3, 3, 1, 1, 2, 2, 1, 1, 1, "3x3 pad 2"},
    {3, 7, 7, 7, 17, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 pad 2"},
    {1, 3, 17, 17, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO stem 6x6 s2 p2 N=1"},
    {3, 3, 16, 16, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO stem 6x6 s2 p2 N=3"},
    {3, 17, 3, 3, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1, "output 1x1"},
    {3, 7, 3, 3, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1, "padding wider than the image, dilation 2"},
    {3, 4, 7, 7, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, "groups 2 dilation 2"},
    {1, 3, 7, 17, 7, 3, 5, 1, 2, 1, 2, 1, 1, 1, "non-square kernel, stride, pad"},
    {3, 7, 17, 7, 7, 5, 3, 2, 1, 0, 1, 2, 1, 1, "non-square dilation and stride"},
    {3, 6, 7, 7, 9, 3, 3, 3, 3, 1, 1, 1, 1, 3, "stride 3, groups 3"},
    {3, 5, 33, 33, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, "many bands crossing samples"},
    {2, 3, 24, 24, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 24x24"},
    {2, 3, 32, 32, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 32x32"},
    {2, 3, 9, 9, 5, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 same, 9x9 (direct with masks)"},
    {3, 4, 10, 10, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, "3x3 dilation 2 pad 2, groups 2 (same size)"},
    {1, 3, 8, 8, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 same on 8x8, K=7"},
    {3, 8, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, "depthwise"},
    /* stride-2 rows of >= 40 columns go straight into y (spmm_rows), wider ones in tiles */
    {2, 3, 9, 81, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, 41-wide output rows"},
    {1, 2, 5, 300, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, 150-wide rows in two tiles"},
    /* one image in place: 2 or 4 bands, which two parts take whole (rows) */
    {1, 5, 20, 20, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 same 20x20, one image: two bands"},
    {1, 4, 40, 40, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 40x40, one image: four bands"},
    {2, 4, 7, 160, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1, "1x1 s2, 80-wide rows"},
    /* big enough (at low sparsity) for the operators to use several threads */
    {2, 32, 24, 24, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "threaded 3x3 same"},
    {2, 32, 26, 26, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "threaded 3x3 stride 2"},
    {3, 96, 20, 20, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, "threaded pointwise"},
    /* inputs too big for L1 per kernel tile: ST_CSR_CBLK splits them (at 90%, 2+ blocks) */
    {1, 256, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "channel blocks: 3x3 same, 256 channels"},
    {1, 64, 40, 40, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "channel blocks: 3x3 stride 2, 64 channels"},
    {1, 512, 7, 7, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1, "channel blocks: pointwise, 512 channels"},
    {2, 12, 9, 224, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, "channel blocks: 7x7 s2 over 12 channels, rows"},
    /* for the quads (ST_CSR_QUADS: output channels in fours of one pattern) */
    {1, 5, 9, 11, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, "quads: 3x3 same on 9x11, K=8"},
    {2, 7, 13, 13, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1, "quads: pointwise N=2, K=12"},
    {1, 6, 17, 17, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 stride 2, K=16"},
    {1, 9, 7, 7, 20, 5, 5, 1, 1, 2, 2, 1, 1, 1, "quads: 5x5 same on 7x7, K=20"},
    {1, 32, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "quads: 3x3 same 20x20, 32 channels"},
    {2, 5, 9, 85, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 s2, 43-wide rows (row kernel)"},
    {1, 3, 5, 250, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 s2, 125-wide rows (two passes)"},
    {1, 3, 23, 23, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, "quads: ResNet stem 7x7 s2 p3 over RGB"},
    {1, 3, 18, 18, 8, 6, 6, 2, 2, 2, 2, 1, 1, 1, "quads: YOLO stem 6x6 s2 p2 over RGB"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
#define N_SP 5

static st_conv2d make_conv(const sc_case *cc) {
    st_conv2d c = {.N = cc->N, .C = cc->C, .H = cc->H, .W = cc->W, .K = cc->K, .R = cc->R,
                   .S = cc->S, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph,
                   .pad_w = cc->pw, .dil_h = cc->dh, .dil_w = cc->dw, .groups = cc->g};
    ck_assert_msg(st_conv2d_init(&c) == 0, "%s: bad shape", cc->what);
    return c;
}

static size_t n_weights(const st_conv2d *c) {
    return (size_t)c->K * (c->C / c->groups) * c->R * c->S;
}

/* Fraction `sparsity` of zeros; a few masked-on weights exactly 0; row 0 all zero.
 * quads: rows 4q + 1 .. 4q + 3 take row 4q's pattern (mask_type [4, 1]), row 0 still
 * all zero (so the first quad has padding). */
static void sparse_weights_q(const st_conv2d *c, float *w, unsigned char *mask, double sparsity,
                             st_rng *r, int quads) {
    const size_t nw = n_weights(c), per = nw / c->K;
    for (size_t i = 0; i < nw; i++) {
        const size_t k = i / per, row4 = (k & ~(size_t)3) * per + i % per;
        if (quads) { /* row 4q's draw for the whole quad; row 0 cleared below */
            mask[i] = k % 4 ? mask[row4] : (unsigned char)(st_rng_uniform(r) >= sparsity);
            w[i] = mask[i] ? (i % 11 == 5 ? 0.0f : 2.0f * st_rng_uniform(r) - 1.0f) : 0.0f;
            continue;
        }
        int on = st_rng_uniform(r) >= sparsity && !(c->K > 2 && i < per);
        mask[i] = (unsigned char)on;
        w[i] = on ? 2.0f * st_rng_uniform(r) - 1.0f : 0.0f;
        if (on && i % 11 == 5) w[i] = 0.0f;
    }
    if (quads && c->K > 2) memset(mask, 0, per), memset(w, 0, per * sizeof(float));
}

static void sparse_weights(const st_conv2d *c, float *w, unsigned char *mask, double sparsity, st_rng *r) {
    sparse_weights_q(c, w, mask, sparsity, r, 0);
}

static st_isa isas[3];
static int n_isas(void) {
    int n = 0;
    for (int i = ST_ISA_SCALAR; i <= (int)st_cpu_best_isa(); i++) isas[n++] = (st_isa)i;
    return n;
}

typedef struct {
    float *x, *w, *b, *dy, *y_d, *dx_d, *dw_d, *db_d, *dx0, *db0;
    unsigned char *mask;
    size_t nx, nw, ny;
} dense_run;

/* The fused epilogue (in registers, or on the staged rows) gives the plain forward's
 * output with the ops applied by the portable row kernel: ResNet's add + ReLU and a
 * chain of every other op, residuals read at the right index. */
static void check_epilogue(const st_conv2d *c, const st_csr *m, const dense_run *d, const float *y,
                           float *scratch, const char *msg) {
    st_rng r;
    st_rng_seed(&r, 7);
    float *res = ot_rand(d->ny, -1, 1, &r), *got = ot_alloc(d->ny), *want = ot_alloc(d->ny);
    const st_epi_op chains[2][ST_EPI_MAX_OPS] = {
        {{ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_RELU, 0, 0, NULL}},
        {{ST_EPI_OP_SILU, 0, 0, NULL}, {ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_LEAKYRELU, 0.1f, 0, NULL},
         {ST_EPI_OP_CLIP, -0.3f, 2.0f, NULL}}};
    const int n_ops[2] = {2, 4};
    st_error err = {0};
    for (int ch = 0; ch < 2; ch++) {
        memcpy(want, y, d->ny * sizeof(float));
        st_epi_rows_scalar(want, 0, want, 0, 1, d->ny, 0.0f, chains[ch], n_ops[ch]);
        ck_assert_int_eq(st_conv2d_sparse_forward_epi(c, m, got, d->x, d->b, chains[ch], n_ops[ch],
                                                      scratch, &err), ST_OK);
        char what[300];
        snprintf(what, sizeof what, "%s, epilogue chain %d", msg, ch);
        OT_ASSERT_NEAR(got, want, d->ny, 2e-6, 2e-6, what);
    }
    ck_assert_int_eq(st_conv2d_sparse_forward_epi(c, m, got, d->x, d->b, NULL, 1, scratch, &err),
                     ST_ERR_INTERNAL);
    free(res), free(got), free(want);
}

/* The team entry: parts 0..n-1, run one after another with their own scratch slots,
 * write what one call writes (NaN-filled output first, so a row no part covers shows), for 1, 2, 3 and 5 parts, with a residual + SiLU epilogue; a part index out
 * of range is refused. */
static void check_parts(const st_conv2d *c, const st_csr *m, const dense_run *d, const char *msg) {
    st_rng r;
    st_rng_seed(&r, 9);
    float *res = ot_rand(d->ny, -1, 1, &r), *want = ot_alloc(d->ny), *got = ot_alloc(d->ny);
    const st_epi_op ops[2] = {{ST_EPI_OP_ADD, 0, 0, res}, {ST_EPI_OP_SILU, 0, 0, NULL}};
    const size_t ns = m->geom.thread_floats * (size_t)ST_MAX(5, omp_get_max_threads());
    float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    st_error err = {0};
    ck_assert_int_eq(st_conv2d_sparse_forward_epi(c, m, want, d->x, d->b, ops, 2, scratch, &err), ST_OK);
    static const int counts[] = {1, 2, 3, 5};
    for (int q = 0; q < 4; q++) {
        for (size_t i = 0; i < d->ny; i++) got[i] = NAN;
        for (int p = 0; p < counts[q]; p++)
            ck_assert_int_eq(st_conv2d_sparse_forward_part(c, m, got, d->x, d->b, ops, 2, scratch, p,
                                                           counts[q], &err), ST_OK);
        char what[300]; /* band heights differ, so AVX2's column tails may round apart */
        snprintf(what, sizeof what, "%s, %d parts vs one call", msg, counts[q]);
        OT_ASSERT_NEAR(got, want, d->ny, 1e-6, 1e-6, what);
    }
    ck_assert_int_eq(st_conv2d_sparse_forward_part(c, m, got, d->x, d->b, ops, 2, scratch, 2, 2, &err),
                     ST_ERR_INTERNAL);
    free(res), free(want), free(got), free(scratch);
}

/* One shape and sparsity: dense results once, then every ISA's sparse results. */
static void compare_dense(const st_conv2d *c, double sparsity, const char *what, uint64_t seed,
                          int with_ref, int quads) {
    st_rng r;
    st_rng_seed(&r, seed);
    dense_run d;
    d.nx = (size_t)c->N * c->C * c->H * c->W;
    d.nw = n_weights(c);
    d.ny = (size_t)c->N * c->K * c->P * c->Q;
    d.x = ot_rand(d.nx, -1, 1, &r);
    d.w = ot_alloc(d.nw);
    d.mask = malloc(d.nw);
    sparse_weights_q(c, d.w, d.mask, sparsity, &r, quads);
    d.b = ot_rand(c->K, -1, 1, &r);
    d.dy = ot_rand(d.ny, -1, 1, &r);
    d.y_d = ot_alloc(d.ny);
    d.dx0 = ot_rand(d.nx, -1, 1, &r);
    d.db0 = ot_rand(c->K, -1, 1, &r);
    d.dx_d = ot_copy(d.dx0, d.nx);
    d.db_d = ot_copy(d.db0, c->K);
    d.dw_d = ot_zeros(d.nw);
    size_t nsd = st_conv2d_scratch_floats(c);
    float *sd = nsd ? malloc(nsd * sizeof(float)) : NULL;
    st_conv2d_forward(c, d.y_d, d.x, d.w, d.b, sd);
    st_conv2d_backward(c, d.dx_d, d.dw_d, d.db_d, d.dy, d.x, d.w, sd);
    free(sd);
    if (with_ref) { /* the dense path itself against the plain loops */
        float *yr = ot_alloc(d.ny), *dxr = ot_copy(d.dx0, d.nx), *dwr = ot_zeros(d.nw);
        st_conv2d_forward_ref(c, yr, d.x, d.w, d.b);
        st_conv2d_backward_ref(c, dxr, dwr, NULL, d.dy, d.x, d.w);
        OT_ASSERT_NEAR(d.y_d, yr, d.ny, 1e-5, 1e-4, what);
        OT_ASSERT_NEAR(d.dx_d, dxr, d.nx, 1e-5, 1e-4, what);
        free(yr), free(dxr), free(dwr);
    }

    /* banded, direct, banded with the forward-only tap planes (strided shapes), and both
     * with the nonzeros grouped by channel blocks (big inputs) */
    static const int layouts[] = {1, 2, 1 | ST_CSR_TAPS, 1 | ST_CSR_CBLK, 2 | ST_CSR_CBLK,
                                  1 | ST_CSR_TAPS | ST_CSR_CBLK};
    for (int li = 0; li < 6; li++) {
    /* quads: the same layouts asking for them too (where they are built they replace
     * the channel blocks, so those layouts are not skipped for lacking blocks) */
    const int layout = layouts[li] | (quads ? ST_CSR_QUADS : 0);
    st_csr m = {0};
    st_error err = {0};
    ck_assert_msg(st_csr_pack_layout(&m, c, d.w, d.mask, layout, &err) == ST_OK, "%s: %s", what, err.msg);
    /* the quad kernels exist on AVX-512 */
    /* (K >= 8: with row 0 all zero, K = 4 pads a third: more than packing allows) */
    if (quads && sparsity <= 0.9 && c->K % 4 == 0 && c->K >= 8 && c->groups == 1 && st_cpu_best_isa() >= ST_ISA_AVX512)
        ck_assert_msg(m.q_n == c->K / 4, "%s, layout %d: %d quads", what, layout, m.q_n);
    if (!quads && (layout & ST_CSR_CBLK) && sparsity == 0.9 && !strncmp(what, "channel blocks", 14))
        ck_assert_msg(m.cb_n >= 2 || (layout == (2 | ST_CSR_CBLK) && !m.geom.direct), "%s, layout %d: %d blocks",
                      what, layout, m.cb_n);
    if (((layout & 3) == 2 && !m.geom.direct) || ((layout & ST_CSR_TAPS) && !m.geom.taps) ||
        ((layout & ST_CSR_CBLK) && m.cb_n < 2 && !m.q_n)) {
        st_csr_free(&m); /* not a shape for that layout */
        continue;
    }
    int64_t *pos = malloc(sizeof(int64_t) * (m.nnz + 1));
    st_csr_positions(&m, pos);
    float *dw_nz = ot_alloc(m.nnz + 1);
    for (int e = 0; e < m.nnz; e++) dw_nz[e] = d.dw_d[pos[e]];
    size_t ns = st_conv2d_sparse_scratch_floats(&m);
    float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
    const int ni = n_isas();
    char msg[256];
    for (int q = 0; q < ni; q++) {
        st_csr_set_isa(&m, isas[q]);
        snprintf(msg, sizeof msg, "%s, sparsity %.2f, %s, %s%s", what, sparsity, st_isa_name(isas[q]),
                 m.geom.direct ? "direct" : m.geom.taps ? "banded taps" : "banded",
                 m.cb_n ? ", channel blocks" : m.q_n ? ", quads" : "");
        float *y = ot_rand(d.ny, -9, 9, &r), *y2 = ot_alloc(d.ny);
        ck_assert_int_eq(st_conv2d_sparse_forward(c, &m, y, d.x, d.b, scratch, &err), ST_OK);
        OT_ASSERT_NEAR(y, d.y_d, d.ny, 2e-5, 1e-4, msg);
        ck_assert_int_eq(st_conv2d_sparse_forward(c, &m, y2, d.x, d.b, scratch, &err), ST_OK);
        ck_assert_msg(memcmp(y, y2, d.ny * sizeof(float)) == 0, "%s: not deterministic", msg);
        check_epilogue(c, &m, &d, y, scratch, msg);
        check_parts(c, &m, &d, msg);
        float *dx = ot_copy(d.dx0, d.nx), *db = ot_copy(d.db0, c->K), *dval = ot_zeros(m.nnz + 1);
        if (m.geom.taps) { /* forward only: the backward refuses and writes nothing */
            ck_assert_int_eq(st_conv2d_sparse_backward(c, &m, dx, dval, db, d.dy, d.x, scratch, &err),
                             ST_ERR_INPUT);
            ck_assert_msg(memcmp(db, d.db0, sizeof(float) * c->K) == 0, "%s: db written", msg);
            free(y), free(y2), free(dx), free(db), free(dval);
            continue;
        }
        ck_assert_int_eq(
            st_conv2d_sparse_backward(c, &m, dx, dval, db, d.dy, d.x, scratch, &err), ST_OK);
        OT_ASSERT_NEAR(dx, d.dx_d, d.nx, 2e-5, 1e-4, msg);
        OT_ASSERT_NEAR(db, d.db_d, (size_t)c->K, 2e-5, 1e-4, msg);
        OT_ASSERT_NEAR(dval, dw_nz, (size_t)m.nnz, 2e-5, 1e-4, msg);
        /* the dense gradient through the scatter helper */
        float *dw = ot_zeros(d.nw);
        st_csr_scatter_grad(&m, dval, dw);
        for (size_t i = 0; i < d.nw; i++)
            if (!d.mask[i] && dw[i] != 0.0f) ck_abort_msg("%s: gradient off the mask at %zu", msg, i);
        free(y), free(y2), free(dx), free(db), free(dval), free(dw);
    }
    st_csr_free(&m);
    free(pos), free(dw_nz), free(scratch);
    }
    free(d.x), free(d.w), free(d.mask), free(d.b), free(d.dy), free(d.y_d), free(d.dx0);
    free(d.db0), free(d.dx_d), free(d.db_d), free(d.dw_d);
}

START_TEST(test_sparse_conv_matches_dense) {
    const sc_case *cc = &cases[_i / N_SP];
    st_conv2d c = make_conv(cc);
    compare_dense(&c, sparsities[_i % N_SP], cc->what, 100 + (uint64_t)_i, _i % N_SP == 1, 0);
}
END_TEST

/* Weights pruned in blocks of 4 output channels, on every shape with K % 4 == 0. */
START_TEST(test_sparse_conv_quads_match_dense) {
    const sc_case *cc = &cases[_i / N_SP];
    if (cc->K % 4) return;
    st_conv2d c = make_conv(cc);
    compare_dense(&c, sparsities[_i % N_SP], cc->what, 300 + (uint64_t)_i, 0, 1);
}
END_TEST

/* Finite differences through the sparse conv: inputs x and the packed values. */
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

Suite *sparse_conv_suite(void) {
    Suite *s = suite_create("sparse_conv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_sparse_conv_matches_dense, 0, N_CASES * N_SP);
    tcase_add_loop_test(tc, test_sparse_conv_gradcheck, 0, 4);
    tcase_add_loop_test(tc, test_sparse_conv_quads_match_dense, 0, N_CASES * N_SP);
    tcase_add_loop_test(tc, test_sparse_conv_refresh, 0, 3);
    tcase_add_test(tc, test_sparse_conv_shape_check);
    tcase_add_loop_test(tc, test_sparse_conv_band_pack, 0, 12);
    tcase_add_loop_test(tc, test_sparse_conv_forward_ldy, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}
