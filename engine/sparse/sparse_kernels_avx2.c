/* Sparse kernels, AVX2 + FMA (compiled with -mavx2 -mfma; called only when the CPU has
 * them). Same structure as the AVX-512 file with 8-float vectors: spmm tiles of 64
 * columns in 8 ymm accumulators, sddmm tiles of 64 columns of dY in 8 registers. Tails
 * use vmaskmov loads and stores (masked-off lanes are never touched). */
#include <immintrin.h>
#include <stddef.h>

#include "st_sparse.h"

#define AI __attribute__((always_inline)) static inline

AI __m256i tail_mask(int left) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
}

AI void spmm_tile(const int NV, const int MASKED, const int TWO, int r0, int r1,
                  const int32_t *ptr, const int32_t *idx, const float *val, const float *X,
                  ptrdiff_t ldx, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,
                  __m256i km) {
    for (int r = r0; r < r1; r++) {
        float *y = Y + (ptrdiff_t)(r - r0) * ldy;
        __m256 a[8], c[8];
        const __m256 vb = _mm256_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            if (!accumulate) a[v] = vb;
            else if (MASKED && v == NV - 1) a[v] = _mm256_add_ps(_mm256_maskload_ps(y + 8 * v, km), vb);
            else a[v] = _mm256_add_ps(_mm256_loadu_ps(y + 8 * v), vb);
            c[v] = _mm256_setzero_ps();
        }
        int e = ptr[r];
        const int e1 = ptr[r + 1];
        if (TWO) {
            for (; e + 1 < e1; e += 2) {
                const __m256 w0 = _mm256_set1_ps(val[e]), w1 = _mm256_set1_ps(val[e + 1]);
                const float *x0 = X + (ptrdiff_t)idx[e] * ldx;
                const float *x1 = X + (ptrdiff_t)idx[e + 1] * ldx;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    if (MASKED && v == NV - 1) {
                        a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(x0 + 8 * v, km), a[v]);
                        c[v] = _mm256_fmadd_ps(w1, _mm256_maskload_ps(x1 + 8 * v, km), c[v]);
                    } else {
                        a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + 8 * v), a[v]);
                        c[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + 8 * v), c[v]);
                    }
                }
            }
        }
        for (; e < e1; e++) {
            const __m256 w0 = _mm256_set1_ps(val[e]);
            const float *x0 = X + (ptrdiff_t)idx[e] * ldx;
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) {
                if (MASKED && v == NV - 1)
                    a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(x0 + 8 * v, km), a[v]);
                else
                    a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + 8 * v), a[v]);
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            if (TWO) a[v] = _mm256_add_ps(a[v], c[v]);
            if (MASKED && v == NV - 1) _mm256_maskstore_ps(y + 8 * v, km, a[v]);
            else _mm256_storeu_ps(y + 8 * v, a[v]);
        }
    }
}

#define SPMM_ARGS                                                                              \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,  \
        ptrdiff_t ldx, float *Y, ptrdiff_t ldy, const float *bias, int accumulate, __m256i km
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

static void spmm_avx2(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                      const float *X, ptrdiff_t ldx, int n, float *Y, ptrdiff_t ldy,
                      const float *bias, int accumulate) {
    const __m256i full = _mm256_set1_epi32(-1);
    int j0 = 0;
    for (; j0 + 64 <= n; j0 += 64)
        spmm_full(r0, r1, ptr, idx, val, X + j0, ldx, Y + j0, ldy, bias, accumulate, full);
    const int left = n - j0;
    if (left > 0) {
        const int nv = (left + 7) / 8;
        spmm_tails[nv](r0, r1, ptr, idx, val, X + j0, ldx, Y + j0, ldy, bias, accumulate,
                       tail_mask(left - 8 * (nv - 1)));
    }
}

AI float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void sddmm_full(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx, float *dval) {
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        __m256 dv[8];
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) dv[v] = _mm256_loadu_ps(d + 8 * v);
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx;
            __m256 s[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) s[u] = _mm256_mul_ps(dv[u], _mm256_loadu_ps(x + 8 * u));
#pragma GCC unroll 8
            for (int v = 4; v < 8; v++)
                s[v & 3] = _mm256_fmadd_ps(dv[v], _mm256_loadu_ps(x + 8 * v), s[v & 3]);
            dval[e] += hsum(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
        }
    }
}

static void sddmm_tail(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval) {
    const int nv = (n + 7) / 8;
    const __m256i km = tail_mask(n - 8 * (nv - 1));
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx;
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
            int v = 0;
            for (; v + 2 < nv; v += 2) {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(d + 8 * v), _mm256_loadu_ps(x + 8 * v), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(d + 8 * v + 8), _mm256_loadu_ps(x + 8 * v + 8),
                                     s1);
            }
            for (; v < nv - 1; v++)
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(d + 8 * v), _mm256_loadu_ps(x + 8 * v), s0);
            s1 = _mm256_fmadd_ps(_mm256_maskload_ps(d + 8 * v, km),
                                 _mm256_maskload_ps(x + 8 * v, km), s1);
            dval[e] += hsum(_mm256_add_ps(s0, s1));
        }
    }
}

static void sddmm_avx2(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval) {
    int j0 = 0;
    for (; j0 + 64 <= n; j0 += 64) sddmm_full(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx, dval);
    if (n > j0) sddmm_tail(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx, n - j0, dval);
}

void st_sparse_kernels_avx2(st_sparse_kernels *k) {
    k->isa = ST_ISA_AVX2;
    k->spmm = spmm_avx2;
    k->sddmm = sddmm_avx2;
}
