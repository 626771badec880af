/* Sparse kernels (every ISA the CPU has, against plain double loops), CSR packing and
 * refresh, and the sparse linear layer against the dense one on the same weights. The
 * convolution operators are tested in test_sparse_conv.c. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "st_ops.h"
#include "st_ops_test_util.h"
#include "st_sparse.h"

/* Random CSR [rows, cols] with the given density; row 0 is empty when rows > 2. */
typedef struct {
    int rows, cols, nnz;
    int32_t *ptr, *idx;
    float *val;
} rcsr;

static rcsr make_rcsr(int rows, int cols, double density, st_rng *r) {
    rcsr m = {.rows = rows, .cols = cols};
    m.ptr = malloc(sizeof(int32_t) * (rows + 1));
    m.idx = malloc(sizeof(int32_t) * ((size_t)rows * cols + 1));
    m.val = malloc(sizeof(float) * ((size_t)rows * cols + 1));
    int e = 0;
    for (int i = 0; i < rows; i++) {
        m.ptr[i] = e;
        for (int j = 0; j < cols; j++) {
            if (rows > 2 && i == 0) continue;
            if (st_rng_uniform(r) >= density) continue;
            m.idx[e] = j;
            m.val[e] = 2.0f * st_rng_uniform(r) - 1.0f;
            e++;
        }
    }
    m.ptr[rows] = e;
    m.nnz = e;
    return m;
}

static void free_rcsr(rcsr *m) { free(m->ptr), free(m->idx), free(m->val); }

static st_isa isas[3];
static int n_isas(void) {
    int n = 0;
    for (int i = ST_ISA_SCALAR; i <= (int)st_cpu_best_isa(); i++) isas[n++] = (st_isa)i;
    return n;
}

/* spmm and sddmm of every ISA against double loops, on odd shapes and strides; rows
 * [1, rows) only in a second call, to check r0 != 0 indexing. */
START_TEST(test_kernels_match_reference) {
    static const int rows_l[] = {1, 3, 17, 100}, cols_l[] = {1, 7, 33, 100};
    static const int n_l[] = {1, 3, 7, 17, 33, 100, 129, 300};
    static const double dens[] = {0.0, 0.1, 0.5, 1.0};
    st_rng r;
    st_rng_seed(&r, 11);
    const int ni = n_isas();
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 8; c++)
                for (int d = 0; d < 4; d++) {
                    const int rows = rows_l[a], cols = cols_l[b], n = n_l[c];
                    rcsr m = make_rcsr(rows, cols, dens[d], &r);
                    const ptrdiff_t ldx = n + 5, ldy = n + 3;
                    float *X = ot_rand((size_t)cols * ldx, -1, 1, &r);
                    float *bias = ot_rand(rows, -1, 1, &r);
                    float *Y0 = ot_rand((size_t)rows * ldy, -1, 1, &r);
                    float *dY = ot_rand((size_t)rows * ldy, -1, 1, &r);
                    float *dv0 = ot_rand(m.nnz + 1, -1, 1, &r);
                    float *ref = ot_copy(Y0, (size_t)rows * ldy), *dref = ot_copy(dv0, m.nnz + 1);
                    /* reference: accumulate + bias */
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < n; j++) {
                            double s = (double)ref[i * ldy + j] + bias[i];
                            for (int e = m.ptr[i]; e < m.ptr[i + 1]; e++)
                                s += (double)m.val[e] * X[m.idx[e] * ldx + j];
                            ref[i * ldy + j] = (float)s;
                        }
                    for (int i = 0; i < rows; i++)
                        for (int e = m.ptr[i]; e < m.ptr[i + 1]; e++) {
                            double s = 0;
                            for (int j = 0; j < n; j++)
                                s += (double)dY[i * ldy + j] * X[m.idx[e] * ldx + j];
                            dref[e] += (float)s;
                        }
                    for (int q = 0; q < ni; q++) {
                        st_sparse_kernels k;
                        st_sparse_kernels_init(&k, isas[q]);
                        ck_assert_int_eq(k.isa, isas[q]);
                        float *Y = ot_copy(Y0, (size_t)rows * ldy);
                        k.spmm(0, rows, m.ptr, m.idx, m.val, X, ldx, n, Y, ldy, bias, 1, NULL, NULL, NULL, 0);
                        OT_ASSERT_NEAR(Y, ref, (size_t)rows * ldy, 1e-5, 1e-5, st_isa_name(k.isa));
                        /* overwrite mode, no bias, rows [1, rows): row 0 untouched */
                        float *Y2 = ot_copy(Y0, (size_t)rows * ldy);
                        if (rows > 1) {
                            k.spmm(1, rows, m.ptr, m.idx, m.val, X, ldx, n, Y2 + ldy, ldy, NULL, 0, NULL, NULL, NULL, 0);
                            if (memcmp(Y2, Y0, sizeof(float) * ldy) != 0)
                                ck_abort_msg("%s spmm wrote row r0 - 1", st_isa_name(k.isa));
                            for (int i = 1; i < rows; i++)
                                for (int j = 0; j < ldy; j++) {
                                    double want = Y0[i * ldy + j];
                                    if (j < n) {
                                        want = 0;
                                        for (int e = m.ptr[i]; e < m.ptr[i + 1]; e++)
                                            want += (double)m.val[e] * X[m.idx[e] * ldx + j];
                                    }
                                    if (!(fabs(Y2[i * ldy + j] - want) <= 1e-4 * (1 + fabs(want))))
                                        ck_abort_msg("%s spmm overwrite row %d col %d: %g vs %g",
                                                     st_isa_name(k.isa), i, j, Y2[i * ldy + j], want);
                                }
                        }
                        float *dv = ot_copy(dv0, m.nnz + 1);
                        k.sddmm(0, rows, m.ptr, m.idx, dY, ldy, X, ldx, n, dv, NULL, NULL, NULL);
                        OT_ASSERT_NEAR(dv, dref, (size_t)m.nnz + 1, 1e-5, 1e-5, st_isa_name(k.isa));
                        /* the same through 16-lane partial sums, in two calls over halves */
                        float *part = ot_zeros((size_t)m.nnz * 16 + 1), *dv2 = ot_copy(dv0, m.nnz + 1);
                        const int h = n / 2;
                        k.sddmm(0, rows, m.ptr, m.idx, dY, ldy, X, ldx, h, dv2, NULL, NULL, part);
                        k.sddmm(0, rows, m.ptr, m.idx, dY + h, ldy, X + h, ldx, n - h, dv2, NULL,
                                NULL, part);
                        st_sparse_reduce16(dv2, part, m.nnz);
                        OT_ASSERT_NEAR(dv2, dref, (size_t)m.nnz + 1, 1e-5, 1e-5, "partials");
                        free(Y), free(Y2), free(dv), free(part), free(dv2);
                    }
                    free(X), free(bias), free(Y0), free(dY), free(dv0), free(ref), free(dref);
                    free_rcsr(&m);
                }
}
END_TEST

/* Lane-masked spmm / sddmm (the direct-conv border masks) and the stride-2 helpers.
 * The table as st_sparse.h has it: classes 4-7 and 8-11 (two tap columns of four tap
 * rows, shift 2) share their masks in the vectors whose row-0 word is 2, and differ in
 * the others, where a kernel must not run a tap column's classes under one mask. Each
 * row's entries come sorted by class, as packed. */
static int cmp_u8(const void *a, const void *b) { return *(const uint8_t *)a - *(const uint8_t *)b; }

START_TEST(test_kernels_masked_and_helpers) {
    static const int n_l[] = {1, 7, 16, 17, 33, 100, 129, 300};
    st_rng r;
    st_rng_seed(&r, 12);
    const int ni = n_isas();
    for (int c = 0; c < 8; c++) {
        const int rows = 9, cols = 13, n = n_l[c], nvec = (n + 15) / 16, ncls = 12;
        rcsr m = make_rcsr(rows, cols, 0.7, &r);
        uint8_t *cls = malloc(m.nnz + 1);
        for (int e = 0; e < m.nnz; e++) cls[e] = (uint8_t)(4 + st_rng_uniform(&r) * 8);
        for (int i = 0; i < rows; i++) qsort(cls + m.ptr[i], m.ptr[i + 1] - m.ptr[i], 1, cmp_u8);
        uint16_t *xm = calloc((size_t)ncls * nvec + 4, sizeof(uint16_t)); /* + the padding */
        for (int v = 0; v < nvec; v++) xm[v] = st_rng_uniform(&r) < 0.75f ? 2 : 0;
        for (int q = 4; q < ncls; q++)
            for (int j = 0; j < n; j++) {
                const int from = xm[j / 16] ? q & ~3 : q; /* the column's first class */
                if (from == q && st_rng_uniform(&r) < 0.7f) xm[q * nvec + j / 16] |= (uint16_t)(1u << (j % 16));
                if (from != q) xm[q * nvec + j / 16] |= xm[from * nvec + j / 16] & (uint16_t)(1u << (j % 16));
            }
        const ptrdiff_t ldx = n + 1, ldy = n + 2;
        float *X = ot_rand((size_t)cols * ldx, -1, 1, &r), *dY = ot_rand((size_t)rows * ldy, -1, 1, &r);
        float *ref = ot_zeros((size_t)rows * ldy), *dref = ot_zeros(m.nnz + 1);
        for (int i = 0; i < rows; i++)
            for (int e = m.ptr[i]; e < m.ptr[i + 1]; e++)
                for (int j = 0; j < n; j++) {
                    if (!((xm[cls[e] * nvec + j / 16] >> (j % 16)) & 1)) continue;
                    ref[i * ldy + j] += m.val[e] * X[m.idx[e] * ldx + j];
                    dref[e] += dY[i * ldy + j] * X[m.idx[e] * ldx + j];
                }
        for (int q = 0; q < ni; q++) {
            st_sparse_kernels k;
            st_sparse_kernels_init(&k, isas[q]);
            float *Y = ot_zeros((size_t)rows * ldy), *dv = ot_zeros(m.nnz + 1);
            k.spmm(0, rows, m.ptr, m.idx, m.val, X, ldx, n, Y, ldy, NULL, 0, cls, xm, NULL, 0);
            OT_ASSERT_NEAR(Y, ref, (size_t)rows * ldy, 1e-5, 1e-5, st_isa_name(k.isa));
            k.sddmm(0, rows, m.ptr, m.idx, dY, ldy, X, ldx, n, dv, cls, xm, NULL);
            OT_ASSERT_NEAR(dv, dref, (size_t)m.nnz + 1, 1e-5, 1e-5, st_isa_name(k.isa));
            /* stride-2 helpers, with guards that must not change */
            float *src = ot_rand(2 * n + 2, -1, 1, &r), *d0 = ot_zeros(n + 1), *d1 = ot_zeros(n + 1);
            d0[n] = d1[n] = 7.0f;
            k.deint2(d0, d1, src, n);
            for (int j = 0; j < n; j++)
                if (d0[j] != src[2 * j] || d1[j] != src[2 * j + 1])
                    ck_abort_msg("%s deint2 n=%d at %d", st_isa_name(k.isa), n, j);
            ck_assert(d0[n] == 7.0f && d1[n] == 7.0f);
            float *dst = ot_copy(src, 2 * n + 2);
            k.int2_add(dst, d1, d0, n);
            for (int j = 0; j < n; j++)
                if (dst[2 * j] != src[2 * j] + d1[j] || dst[2 * j + 1] != src[2 * j + 1] + d0[j])
                    ck_abort_msg("%s int2_add n=%d at %d", st_isa_name(k.isa), n, j);
            ck_assert(dst[2 * n] == src[2 * n] && dst[2 * n + 1] == src[2 * n + 1]);
            free(Y), free(dv), free(src), free(d0), free(d1), free(dst);
        }
        free(cls), free(xm), free(X), free(dY), free(ref), free(dref);
        free_rcsr(&m);
    }
}
END_TEST

/* Weights with the given fraction of zeros; with a mask, a few masked-on weights are
 * exactly 0 (they keep their slot). */
static void sparse_weights(float *w, unsigned char *mask, size_t n, double sparsity, st_rng *r) {
    for (size_t i = 0; i < n; i++) {
        int on = st_rng_uniform(r) >= sparsity;
        if (mask) mask[i] = (unsigned char)on;
        w[i] = on ? 2.0f * st_rng_uniform(r) - 1.0f : 0.0f;
        if (on && mask && i % 7 == 3) w[i] = 0.0f;
    }
}

START_TEST(test_pack_refresh_scatter) {
    st_rng r;
    st_rng_seed(&r, 5);
    st_conv2d c = {.N = 1, .C = 6, .H = 9, .W = 9, .K = 4, .R = 3, .S = 3, .stride_h = 2,
                   .stride_w = 2, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 2};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    const size_t nw = (size_t)c.K * (c.C / c.groups) * c.R * c.S;
    float *w = ot_alloc(nw);
    unsigned char *mask = malloc(nw);
    sparse_weights(w, mask, nw, 0.6, &r);
    st_csr m = {0}, m2 = {0};
    st_error err = {0};
    ck_assert_int_eq(st_csr_pack(&m, &c, w, mask, &err), ST_OK);
    int on = 0, nonzero = 0;
    for (size_t i = 0; i < nw; i++) on += mask[i], nonzero += w[i] != 0.0f;
    ck_assert_int_eq(m.nnz, on);
    ck_assert_int_eq(m.t_rows, c.C * 4);
    ck_assert_int_eq(m.t_ptr[m.t_rows], on);
    /* without a mask: the nonzero weights */
    ck_assert_int_eq(st_csr_pack(&m2, &c, w, NULL, &err), ST_OK);
    ck_assert_int_eq(m2.nnz, nonzero);
    /* rows sorted, positions on the mask, transposed entries point back */
    int64_t *pos = malloc(sizeof(int64_t) * (m.nnz + 1));
    st_csr_positions(&m, pos);
    for (int k = 0; k < c.K; k++)
        for (int e = m.row_ptr[k]; e < m.row_ptr[k + 1]; e++) {
            if (e > m.row_ptr[k]) ck_assert_int_lt(m.col_idx[e - 1], m.col_idx[e]);
            ck_assert(mask[pos[e]]);
            ck_assert_float_eq(m.val[e], w[pos[e]]);
        }
    for (int i = 0; i < m.nnz; i++) {
        ck_assert_float_eq(m.t_val[i], m.val[m.t_src[i]]);
        int e = m.t_src[i];
        ck_assert(e >= m.row_ptr[m.t_row[i]] && e < m.row_ptr[m.t_row[i] + 1]);
    }
    /* refresh after an optimizer-like update equals a fresh pack */
    for (size_t i = 0; i < nw; i++) w[i] = mask[i] ? w[i] * 0.5f + 0.25f : w[i];
    st_csr_refresh(&m, w);
    ck_assert_int_eq(st_csr_pack(&m2, &c, w, mask, &err), ST_OK);
    ck_assert_int_eq(m.nnz, m2.nnz);
    ck_assert_mem_eq(m.val, m2.val, sizeof(float) * m.nnz);
    ck_assert_mem_eq(m.t_val, m2.t_val, sizeof(float) * m.nnz);
    /* unpack and scatter */
    float *u = ot_alloc(nw), *dw = ot_zeros(nw), *dval = ot_alloc(m.nnz + 1);
    st_csr_unpack(&m, u);
    for (size_t i = 0; i < nw; i++) ck_assert_float_eq(u[i], mask[i] ? w[i] : 0.0f);
    for (int e = 0; e < m.nnz; e++) dval[e] = (float)(e + 1);
    st_csr_scatter_grad(&m, dval, dw);
    st_csr_scatter_grad(&m, dval, dw);
    for (int e = 0; e < m.nnz; e++) ck_assert_float_eq(dw[pos[e]], 2.0f * (e + 1));
    double tot = 0;
    for (size_t i = 0; i < nw; i++) tot += dw[i];
    ck_assert_double_eq(tot, (double)m.nnz * (m.nnz + 1));
    /* invalid shape */
    st_conv2d bad = c;
    bad.groups = 4;
    ck_assert_int_eq(st_csr_pack(&m2, &bad, w, mask, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(m2.row_ptr);
    st_csr_free(&m), st_csr_free(&m2);
    st_csr_free(&m2); /* twice is fine */
    free(w), free(mask), free(pos), free(u), free(dw), free(dval);
}
END_TEST

/* Sparse linear vs the dense one with explicit zeros, every ISA, sparsity 0..100%. */
START_TEST(test_linear_matches_dense) {
    static const int Ns[] = {1, 3, 17, 100}, ins[] = {1, 7, 33}, outs[] = {1, 7, 33};
    static const double sp[] = {0.0, 0.5, 0.9, 0.99, 1.0};
    st_rng r;
    st_rng_seed(&r, 21);
    const int ni = n_isas();
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++)
                for (int d = 0; d < 5; d++) {
                    const int N = Ns[a], In = ins[b], O = outs[c];
                    const size_t nw = (size_t)In * O;
                    float *w = ot_alloc(nw);
                    unsigned char *mask = malloc(nw);
                    sparse_weights(w, mask, nw, sp[d], &r);
                    st_csr m = {0};
                    st_error err = {0};
                    ck_assert_int_eq(st_csr_pack_linear(&m, In, O, w, mask, &err), ST_OK);
                    float *x = ot_rand((size_t)N * In, -1, 1, &r), *bias = ot_rand(O, -1, 1, &r);
                    float *dy = ot_rand((size_t)N * O, -1, 1, &r);
                    float *yd = ot_alloc((size_t)N * O);
                    float *dxd = ot_rand((size_t)N * In, -1, 1, &r), *dwd = ot_zeros(nw);
                    float *dbd = ot_rand(O, -1, 1, &r);
                    float *dx0 = ot_copy(dxd, (size_t)N * In), *db0 = ot_copy(dbd, O);
                    st_linear_forward(yd, x, w, bias, N, In, O);
                    st_linear_backward(dxd, dwd, dbd, dy, x, w, N, In, O);
                    int64_t *pos = malloc(sizeof(int64_t) * (m.nnz + 1));
                    st_csr_positions(&m, pos);
                    float *dwn = ot_alloc(m.nnz + 1);
                    for (int e = 0; e < m.nnz; e++) dwn[e] = dwd[pos[e]];
                    size_t ns = st_linear_sparse_scratch_floats(&m);
                    float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
                    for (int q = 0; q < ni; q++) {
                        st_csr_set_isa(&m, isas[q]);
                        float *y = ot_alloc((size_t)N * O), *dx = ot_copy(dx0, (size_t)N * In);
                        float *db = ot_copy(db0, O), *dval = ot_zeros(m.nnz + 1);
                        ck_assert_int_eq(st_linear_sparse_forward(&m, y, x, bias, N, scratch, &err),
                                         ST_OK);
                        OT_ASSERT_NEAR(y, yd, (size_t)N * O, 2e-5, 1e-4, "linear forward");
                        ck_assert_int_eq(st_linear_sparse_backward(&m, dx, dval, db, dy, x, N,
                                                                   scratch, &err),
                                         ST_OK);
                        OT_ASSERT_NEAR(dx, dxd, (size_t)N * In, 2e-5, 1e-4, "linear dx");
                        OT_ASSERT_NEAR(db, dbd, (size_t)O, 2e-5, 1e-4, "linear db");
                        OT_ASSERT_NEAR(dval, dwn, (size_t)m.nnz, 2e-5, 1e-4, "linear dval");
                        free(y), free(dx), free(db), free(dval);
                    }
                    st_csr_free(&m);
                    free(w), free(mask), free(x), free(bias), free(dy), free(yd), free(dxd);
                    free(dwd), free(dbd), free(dx0), free(db0), free(pos), free(dwn), free(scratch);
                }
}
END_TEST

START_TEST(test_linear_rejects_conv_weights) {
    st_conv2d c = {.N = 1, .C = 2, .H = 5, .W = 5, .K = 2, .R = 3, .S = 3, .stride_h = 1,
                   .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    float w[36] = {1};
    st_csr m = {0};
    st_error err = {0};
    ck_assert_int_eq(st_csr_pack(&m, &c, w, NULL, &err), ST_OK);
    float y[4], x[4] = {0};
    ck_assert_int_eq(st_linear_sparse_forward(&m, y, x, NULL, 1, NULL, &err), ST_ERR_INPUT);
    st_csr_free(&m);
}
END_TEST

START_TEST(test_should_use) {
    st_conv2d c = {.N = 16, .C = 64, .H = 40, .W = 40, .K = 64, .R = 3, .S = 3, .stride_h = 1,
                   .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    ck_assert_int_eq(st_sparse_should_use(&c, 0.0), 0);
    ck_assert_int_eq(st_sparse_should_use(&c, 0.5), 0);
    ck_assert_int_eq(st_sparse_should_use(&c, 0.9), 1);
    ck_assert_int_eq(st_sparse_should_use(&c, 0.98), 1);
    ck_assert(st_sparse_expected_speedup(&c, 0.98) > st_sparse_expected_speedup(&c, 0.9));
    st_conv2d dw = c;
    dw.groups = 64;
    ck_assert_int_eq(st_conv2d_init(&dw), 0);
    ck_assert_int_eq(st_sparse_should_use(&dw, 0.98), 0);
    /* 1x1 stride 2 (ResNet downsample, memory-bound) stays dense even at 90% */
    st_conv2d ds = {.N = 16, .C = 64, .H = 56, .W = 56, .K = 128, .R = 1, .S = 1, .stride_h = 2,
                    .stride_w = 2, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&ds), 0);
    ck_assert_int_eq(st_sparse_should_use(&ds, 0.9), 0);
    /* a linear layer as a 1x1 conv on 1x1 images: batch 256 at 95% is worth it */
    st_conv2d fc = {.N = 256, .C = 512, .H = 1, .W = 1, .K = 1000, .R = 1, .S = 1, .stride_h = 1,
                    .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&fc), 0);
    ck_assert_int_eq(st_sparse_should_use(&fc, 0.95), 1);
    ck_assert_int_eq(st_sparse_should_use(&fc, 0.5), 0);
    /* ResNet's last 3x3 convs at batch 1 (49 output pixels): training keeps them dense
     * (the backward transposes dominate), inference runs them sparse from ~90% on */
    st_conv2d l4 = {.N = 1, .C = 512, .H = 7, .W = 7, .K = 512, .R = 3, .S = 3, .stride_h = 1,
                    .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&l4), 0);
    ck_assert_int_eq(st_sparse_should_use(&l4, 0.95), 0);
    ck_assert(st_sparse_expected_speedup_infer(&l4, 0.95) > 1.3);
    ck_assert(st_sparse_expected_speedup_infer(&l4, 0.0) < 1.0);
    ck_assert(st_sparse_expected_speedup_infer(&l4, 0.5) < 1.3);
    /* away from few columns both models agree */
    ck_assert(st_sparse_expected_speedup_infer(&c, 0.9) == st_sparse_expected_speedup(&c, 0.9));
    /* against the packed dense kernel: 3x3 layers sparse from 90% on, dense at 50% and
     * 0%; yolov5n's 32 -> 16 1x1 at 80x80 sparse from 80% (measured t_sparse / t_packed
     * 0.66 at 80%, 0.53 at 90%), dense at 70% (0.86) and 50% (1.14) */
    ck_assert(st_sparse_expected_speedup_infer_packed(&l4, 0.9) > 1.3);
    ck_assert(st_sparse_expected_speedup_infer_packed(&l4, 0.5) < 1.0);
    st_conv2d pw = {.N = 1, .C = 32, .H = 80, .W = 80, .K = 16, .R = 1, .S = 1, .stride_h = 1,
                    .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&pw), 0);
    ck_assert(st_sparse_expected_speedup_infer_packed(&pw, 0.9) > 1.3);
    ck_assert(st_sparse_expected_speedup_infer_packed(&pw, 0.8) > 1.3);
    ck_assert(st_sparse_expected_speedup_infer_packed(&pw, 0.7) < 1.3);
    ck_assert(st_sparse_expected_speedup_infer_packed(&pw, 0.5) < 1.0);
    /* batch-1 linear layers: ResNet's fc sparse at 90/95% (measured 2x / 3.2x), dense at
     * 50%; a 128 -> 10 head is all overhead and stays dense */
    ck_assert(st_sparse_expected_speedup_infer_linear(1, 512, 1000, 0.95) > 2.5);
    ck_assert(st_sparse_expected_speedup_infer_linear(1, 512, 1000, 0.9) > 1.3);
    ck_assert(st_sparse_expected_speedup_infer_linear(1, 512, 1000, 0.5) < 1.0);
    ck_assert(st_sparse_expected_speedup_infer_linear(1, 128, 10, 0.99) < 1.0);
}
END_TEST

Suite *sparse_suite(void) {
    Suite *s = suite_create("sparse");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kernels_match_reference);
    tcase_add_test(tc, test_kernels_masked_and_helpers);
    tcase_add_test(tc, test_pack_refresh_scatter);
    tcase_add_test(tc, test_linear_matches_dense);
    tcase_add_test(tc, test_linear_rejects_conv_weights);
    tcase_add_test(tc, test_should_use);
    suite_add_tcase(s, tc);
    return s;
}
