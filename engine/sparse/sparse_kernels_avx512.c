/* Sparse kernels, AVX-512 (compiled with -mavx512f... and only called when the CPU has it).
 *
 * spmm: a tile of up to 128 columns of one output row lives in 8 zmm accumulators; each
 * nonzero is one broadcast and 8 FMAs with 8 loads of X (the bound: load bandwidth).
 * Tiles go column-outer, row-inner, so the X rows a tile touches stay in L1 for all rows.
 * Narrow tiles (<= 64 columns) have too few independent FMA chains to hide the latency,
 * so they alternate nonzeros between two accumulator sets.
 * sddmm: a 256-column tile of dY's row sits in 16 registers; each nonzero's dot product
 * over it takes 16 loads + FMAs into 4 accumulators, then one horizontal sum. */
#include <immintrin.h>
#include <stddef.h>

#include "st_sparse.h"

#define AI __attribute__((always_inline)) static inline

AI __mmask16 tail_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* Rows [r0, r1) over NV vectors of columns; the last vector is masked by km when MASKED. */
AI void spmm_tile(const int NV, const int MASKED, const int TWO, int r0, int r1,
                  const int32_t *ptr, const int32_t *idx, const float *val, const float *X,
                  ptrdiff_t ldx, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,
                  __mmask16 km) {
    for (int r = r0; r < r1; r++) {
        float *y = Y + (ptrdiff_t)(r - r0) * ldy;
        __m512 a[8], c[8];
        const __m512 vb = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            __mmask16 m = (MASKED && v == NV - 1) ? km : (__mmask16)0xFFFF;
            a[v] = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + 16 * v), vb) : vb;
            c[v] = _mm512_setzero_ps();
        }
        int e = ptr[r];
        const int e1 = ptr[r + 1];
        if (TWO) {
            for (; e + 1 < e1; e += 2) {
                const __m512 w0 = _mm512_set1_ps(val[e]), w1 = _mm512_set1_ps(val[e + 1]);
                const float *x0 = X + (ptrdiff_t)idx[e] * ldx;
                const float *x1 = X + (ptrdiff_t)idx[e + 1] * ldx;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    if (MASKED && v == NV - 1) {
                        a[v] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(km, x0 + 16 * v), a[v]);
                        c[v] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(km, x1 + 16 * v), c[v]);
                    } else {
                        a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x0 + 16 * v), a[v]);
                        c[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x1 + 16 * v), c[v]);
                    }
                }
            }
        }
        for (; e < e1; e++) {
            const __m512 w0 = _mm512_set1_ps(val[e]);
            const float *x0 = X + (ptrdiff_t)idx[e] * ldx;
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) {
                if (MASKED && v == NV - 1)
                    a[v] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(km, x0 + 16 * v), a[v]);
                else
                    a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x0 + 16 * v), a[v]);
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            if (TWO) a[v] = _mm512_add_ps(a[v], c[v]);
            if (MASKED && v == NV - 1) _mm512_mask_storeu_ps(y + 16 * v, km, a[v]);
            else _mm512_storeu_ps(y + 16 * v, a[v]);
        }
    }
}

#define SPMM_ARGS                                                                              \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,  \
        ptrdiff_t ldx, float *Y, ptrdiff_t ldy, const float *bias, int accumulate, __mmask16 km
#define SPMM_PASS r0, r1, ptr, idx, val, X, ldx, Y, ldy, bias, accumulate, km
static void spmm_full(SPMM_ARGS) { spmm_tile(8, 0, 0, SPMM_PASS); }
static void spmm_t1(SPMM_ARGS) { spmm_tile(1, 1, 1, SPMM_PASS); }
static void spmm_t2(SPMM_ARGS) { spmm_tile(2, 1, 1, SPMM_PASS); }
static void spmm_t3(SPMM_ARGS) { spmm_tile(3, 1, 1, SPMM_PASS); }
static void spmm_t4(SPMM_ARGS) { spmm_tile(4, 1, 1, SPMM_PASS); }
static void spmm_t5(SPMM_ARGS) { spmm_tile(5, 1, 0, SPMM_PASS); }
static void spmm_t6(SPMM_ARGS) { spmm_tile(6, 1, 0, SPMM_PASS); }
static void spmm_t7(SPMM_ARGS) { spmm_tile(7, 1, 0, SPMM_PASS); }
static void spmm_t8(SPMM_ARGS) { spmm_tile(8, 1, 0, SPMM_PASS); }
static void (*const spmm_tails[9])(SPMM_ARGS) = {NULL,    spmm_t1, spmm_t2, spmm_t3, spmm_t4,
                                                  spmm_t5, spmm_t6, spmm_t7, spmm_t8};

static void spmm_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                        const float *X, ptrdiff_t ldx, int n, float *Y, ptrdiff_t ldy,
                        const float *bias, int accumulate) {
    int j0 = 0;
    for (; j0 + 128 <= n; j0 += 128)
        spmm_full(r0, r1, ptr, idx, val, X + j0, ldx, Y + j0, ldy, bias, accumulate, 0xFFFF);
    const int left = n - j0;
    if (left > 0) {
        const int nv = (left + 15) / 16;
        spmm_tails[nv](r0, r1, ptr, idx, val, X + j0, ldx, Y + j0, ldy, bias, accumulate,
                       tail_mask(left - 16 * (nv - 1)));
    }
}

AI float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* Full 256-column tiles with dY in registers. */
static void sddmm_full(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx, float *dval) {
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        __m512 dv[16];
#pragma GCC unroll 16
        for (int v = 0; v < 16; v++) dv[v] = _mm512_loadu_ps(d + 16 * v);
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx;
            __m512 s[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) s[u] = _mm512_mul_ps(dv[u], _mm512_loadu_ps(x + 16 * u));
#pragma GCC unroll 16
            for (int v = 4; v < 16; v++)
                s[v & 3] = _mm512_fmadd_ps(dv[v], _mm512_loadu_ps(x + 16 * v), s[v & 3]);
            dval[e] += hsum(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
        }
    }
}

/* Up to 255 columns, dY read from memory, last vector masked. */
static void sddmm_tail(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval) {
    const int nv = (n + 15) / 16;
    const __mmask16 km = tail_mask(n - 16 * (nv - 1));
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx;
            __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
            int v = 0;
            for (; v + 2 < nv; v += 2) {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(d + 16 * v), _mm512_loadu_ps(x + 16 * v), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(d + 16 * v + 16),
                                     _mm512_loadu_ps(x + 16 * v + 16), s1);
            }
            for (; v < nv - 1; v++)
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(d + 16 * v), _mm512_loadu_ps(x + 16 * v), s0);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(km, d + 16 * v),
                                 _mm512_maskz_loadu_ps(km, x + 16 * v), s1);
            dval[e] += hsum(_mm512_add_ps(s0, s1));
        }
    }
}

static void sddmm_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                         ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval) {
    int j0 = 0;
    for (; j0 + 256 <= n; j0 += 256)
        sddmm_full(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx, dval);
    if (n > j0) sddmm_tail(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx, n - j0, dval);
}

void st_sparse_kernels_avx512(st_sparse_kernels *k) {
    k->isa = ST_ISA_AVX512;
    k->spmm = spmm_avx512;
    k->sddmm = sddmm_avx512;
}
