/* Sparse conv2d against the dense fast path (OpenBLAS) and the plain-loop reference on
 * the same weights with explicit zeros: odd shapes, strides 1/2, padding 0/1/2, kernels
 * 1x1/3x3/5x5/6x6-s2-p2, groups 1/2, batch 1/3, sparsity 0..100%, every ISA the CPU
 * has; plus finite-difference gradient checks, refresh vs fresh pack, determinism,
 * has, every packing layout, determinism, the fused epilogue and the team's parts.
 * Gradients, refresh, shape checks and band packing: test_sparse_conv_api.c. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ops.h"
#include "st_ops_test_util.h"
#include "act_kernels.h"
#include "st_sparse.h"
#include "st_sparse_conv_cases.h"

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


Suite *sparse_conv_suite(void) {
    Suite *s = suite_create("sparse_conv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_sparse_conv_matches_dense, 0, N_CASES * N_SP);
    tcase_add_loop_test(tc, test_sparse_conv_quads_match_dense, 0, N_CASES * N_SP);
    suite_add_tcase(s, tc);
    return s;
}
