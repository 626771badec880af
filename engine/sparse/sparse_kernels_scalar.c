/* Sparse kernels: the portable variants, the ISA table and its selection. The SIMD
 * variants (sparse_kernels_avx2.c, sparse_kernels_avx512.c) follow the same contract
 * (st_sparse.h) and agree with these up to rounding. */
#include <stddef.h>
#include <string.h>

#include "st_sparse.h"

/* Columns per pass: keeps a Y tile and the X rows it touches in cache. */
#define SC_TILE 256

#define LANE_ON(m, j) (((m)[(j) >> 4] >> ((j) & 15)) & 1)

static void spmm_scalar(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                        const float *X, ptrdiff_t ldx, int n, float *Y, ptrdiff_t ldy,
                        const float *bias, int accumulate, const uint8_t *cls,
                        const uint16_t *xmask, const st_epi_op *ops, int n_ops) {
    const int nvec = (n + 15) / 16;
    for (int j0 = 0; j0 < n; j0 += SC_TILE) {
        const int nj = ST_MIN(SC_TILE, n - j0);
        for (int r = r0; r < r1; r++) {
            float *y = Y + (ptrdiff_t)(r - r0) * ldy + j0;
            const float b0 = bias ? bias[r] : 0.0f;
            for (int j = 0; j < nj; j++) y[j] = (accumulate ? y[j] : 0.0f) + b0;
            for (int e = ptr[r]; e < ptr[r + 1]; e++) {
                const float v = val[e];
                const float *x = X + (ptrdiff_t)idx[e] * ldx + j0;
                if (xmask) {
                    const uint16_t *m = xmask + (size_t)cls[e] * nvec;
                    for (int j = 0; j < nj; j++)
                        if (LANE_ON(m, j0 + j)) y[j] += v * x[j];
                } else {
                    for (int j = 0; j < nj; j++) y[j] += v * x[j];
                }
            }
        }
    }
    if (n_ops) st_epi_rows_scalar(Y, ldy, Y, ldy, r1 - r0, (size_t)n, 0.0f, ops, n_ops);
}

static void sddmm_scalar(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                         ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval,
                         const uint8_t *cls, const uint16_t *xmask, float *part) {
    const int nvec = (n + 15) / 16;
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            if (xmask) {
                const uint16_t *m = xmask + (size_t)cls[e] * nvec;
                for (int j = 0; j < n; j++)
                    if (LANE_ON(m, j)) s0 += d[j] * x[j];
            } else {
                int j = 0;
                for (; j + 4 <= n; j += 4) {
                    s0 += d[j] * x[j];
                    s1 += d[j + 1] * x[j + 1];
                    s2 += d[j + 2] * x[j + 2];
                    s3 += d[j + 3] * x[j + 3];
                }
                for (; j < n; j++) s0 += d[j] * x[j];
            }
            if (part) part[(size_t)(e - ptr[r0]) * 16] += (s0 + s1) + (s2 + s3);
            else dval[e] += (s0 + s1) + (s2 + s3);
        }
    }
}

void st_sparse_reduce16(float *dval, const float *part, int n) {
    for (int e = 0; e < n; e++) {
        const float *p = part + (size_t)e * 16;
        float s = 0.0f;
        for (int l = 0; l < 16; l++) s += p[l];
        dval[e] += s;
    }
}

static void int2_add_scalar(float *dst, const float *s0, const float *s1, int n) {
    for (int i = 0; i < n; i++) {
        dst[2 * i] += s0[i];
        dst[2 * i + 1] += s1[i];
    }
}

void st_sparse_kernels_scalar(st_sparse_kernels *k) {
    k->isa = ST_ISA_SCALAR;
    k->spmm = spmm_scalar;
    k->spmm_rows = NULL; /* banded convs stage their rows */
    k->sddmm = sddmm_scalar;
    k->int2_add = int2_add_scalar;
    k->taps3 = NULL;
    k->spmm4 = NULL; /* quads stay plain rows */
    k->spmm4_rows = NULL;
}

void st_sparse_kernels_init(st_sparse_kernels *k, st_isa isa) {
    st_isa best = st_cpu_best_isa();
    if (isa > best) isa = best;
    if (isa == ST_ISA_AVX512) st_sparse_kernels_avx512(k);
    else if (isa == ST_ISA_AVX2) st_sparse_kernels_avx2(k);
    else st_sparse_kernels_scalar(k);
    k->isa = isa;
    st_kernels ck; /* the deinterleave is the core kernels' (pooling and dense use it too) */
    st_kernels_init(&ck, isa);
    k->deint2 = ck.deint2;
}

