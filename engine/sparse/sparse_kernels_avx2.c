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

/* 8 lanes of a 16-lane mask-table word as a vmaskmov mask. */
AI __m256i lanes(const uint16_t *mr, int u) {
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const int byte = (mr[u >> 1] >> ((u & 1) * 8)) & 0xFF;
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), bits), bits);
}

AI __m256 ldx(const int XM, const int MASKED, int v, int NV, const float *p, const uint16_t *mr,
              __m256i km) {
    if (XM) return _mm256_maskload_ps(p + 8 * v, lanes(mr, v));
    if (MASKED && v == NV - 1) return _mm256_maskload_ps(p + 8 * v, km);
    return _mm256_loadu_ps(p + 8 * v);
}

/* XM: X loads masked by the lane-mask table (xm: the 16-lane word of this tile's first
 * column; tiles start on 64-column boundaries, so on whole words). */
AI void spmm_tile(const int NV, const int MASKED, const int TWO, const int XM, int r0, int r1,
                  const int32_t *ptr, const int32_t *idx, const float *val, const float *X,
                  ptrdiff_t ldx_, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,
                  __m256i km, const uint8_t *cls, const uint16_t *xm, int nvec) {
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
                const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
                const float *x1 = X + (ptrdiff_t)idx[e + 1] * ldx_;
                const uint16_t *m0 = XM ? xm + (size_t)cls[e] * nvec : NULL;
                const uint16_t *m1 = XM ? xm + (size_t)cls[e + 1] * nvec : NULL;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    a[v] = _mm256_fmadd_ps(w0, ldx(XM, MASKED, v, NV, x0, m0, km), a[v]);
                    c[v] = _mm256_fmadd_ps(w1, ldx(XM, MASKED, v, NV, x1, m1, km), c[v]);
                }
            }
        }
        for (; e < e1; e++) {
            const __m256 w0 = _mm256_set1_ps(val[e]);
            const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *m0 = XM ? xm + (size_t)cls[e] * nvec : NULL;
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                a[v] = _mm256_fmadd_ps(w0, ldx(XM, MASKED, v, NV, x0, m0, km), a[v]);
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
        ptrdiff_t ldx_, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,            \
        __m256i km, const uint8_t *cls, const uint16_t *xm, int nvec
#define SPMM_PASS r0, r1, ptr, idx, val, X, ldx_, Y, ldy, bias, accumulate, km, cls, xm, nvec
typedef void (*spmm_fn)(SPMM_ARGS);
#define SPMM_VARIANTS(XM)                                                                      \
    static void spmm_full_##XM(SPMM_ARGS) { spmm_tile(8, 0, 0, XM, SPMM_PASS); }               \
    static void spmm_t1_##XM(SPMM_ARGS) { spmm_tile(1, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t2_##XM(SPMM_ARGS) { spmm_tile(2, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t3_##XM(SPMM_ARGS) { spmm_tile(3, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t4_##XM(SPMM_ARGS) { spmm_tile(4, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t5_##XM(SPMM_ARGS) { spmm_tile(5, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t6_##XM(SPMM_ARGS) { spmm_tile(6, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t7_##XM(SPMM_ARGS) { spmm_tile(7, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t8_##XM(SPMM_ARGS) { spmm_tile(8, 1, 0, XM, SPMM_PASS); }                 \
    static const spmm_fn spmm_tab_##XM[9] = {spmm_full_##XM, spmm_t1_##XM, spmm_t2_##XM,       \
                                             spmm_t3_##XM,   spmm_t4_##XM, spmm_t5_##XM,       \
                                             spmm_t6_##XM,   spmm_t7_##XM, spmm_t8_##XM};
SPMM_VARIANTS(0)
SPMM_VARIANTS(1)

static void spmm_avx2(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                      const float *X, ptrdiff_t ldx_, int n, float *Y, ptrdiff_t ldy,
                      const float *bias, int accumulate, const uint8_t *cls,
                      const uint16_t *xmask, const st_epi_op *ops, int n_ops) {
    const spmm_fn *tab = xmask ? spmm_tab_1 : spmm_tab_0;
    const __m256i full = _mm256_set1_epi32(-1);
    const int nvec = (n + 15) / 16;
    int j0 = 0;
    for (; j0 + 64 <= n; j0 += 64)
        tab[0](r0, r1, ptr, idx, val, X + j0, ldx_, Y + j0, ldy, bias, accumulate, full, cls,
               xmask ? xmask + j0 / 16 : NULL, nvec);
    const int left = n - j0;
    if (left > 0) {
        const int nv = (left + 7) / 8;
        tab[nv](r0, r1, ptr, idx, val, X + j0, ldx_, Y + j0, ldy, bias, accumulate,
                tail_mask(left - 8 * (nv - 1)), cls, xmask ? xmask + j0 / 16 : NULL, nvec);
    }
    if (n_ops) st_epi_rows_avx2(Y, ldy, Y, ldy, r1 - r0, (size_t)n, 0.0f, ops, n_ops);
}

AI float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI void sd_put(float *dval, float *part, int e, int e0, __m256 s) {
    if (part) {
        float *p = part + (size_t)(e - e0) * 16;
        _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), s));
    } else {
        dval[e] += hsum(s);
    }
}

AI void sddmm_full(const int XM, int r0, int r1, const int32_t *ptr, const int32_t *idx,
                   const float *dY, ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, float *dval,
                   const uint8_t *cls, const uint16_t *xm, int nvec, float *part) {
    const __m256i full = _mm256_set1_epi32(-1);
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        __m256 dv[8];
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) dv[v] = _mm256_loadu_ps(d + 8 * v);
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *mr = XM ? xm + (size_t)cls[e] * nvec : NULL;
            __m256 s[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) s[u] = _mm256_mul_ps(dv[u], ldx(XM, 0, u, 8, x, mr, full));
#pragma GCC unroll 8
            for (int v = 4; v < 8; v++)
                s[v & 3] = _mm256_fmadd_ps(dv[v], ldx(XM, 0, v, 8, x, mr, full), s[v & 3]);
            sd_put(dval, part, e, ptr[r0],
                   _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
        }
    }
}

static void sddmm_tail(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, int n, float *dval,
                       const uint8_t *cls, const uint16_t *xm, int nvec, float *part) {
    const int nv = (n + 7) / 8;
    const __m256i km = tail_mask(n - 8 * (nv - 1)), full = _mm256_set1_epi32(-1);
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *mr = xm ? xm + (size_t)cls[e] * nvec : NULL;
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
            for (int v = 0; v < nv; v++) {
                __m256i m = v == nv - 1 ? km : full;
                if (mr) m = _mm256_and_si256(m, lanes(mr, v));
                const __m256 dd = _mm256_maskload_ps(d + 8 * v, m);
                const __m256 xx = _mm256_maskload_ps(x + 8 * v, m);
                if (v & 1) s1 = _mm256_fmadd_ps(dd, xx, s1);
                else s0 = _mm256_fmadd_ps(dd, xx, s0);
            }
            sd_put(dval, part, e, ptr[r0], _mm256_add_ps(s0, s1));
        }
    }
}

static void sddmm_avx2(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                       ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, int n, float *dval,
                       const uint8_t *cls, const uint16_t *xmask, float *part) {
    const int nvec = (n + 15) / 16;
    int j0 = 0;
    for (; n - j0 >= 80; j0 += 64) {
        if (xmask)
            sddmm_full(1, r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, dval, cls,
                       xmask + j0 / 16, nvec, part);
        else sddmm_full(0, r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, dval, NULL, NULL, 0, part);
    }
    if (n > j0)
        sddmm_tail(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, n - j0, dval, cls,
                   xmask ? xmask + j0 / 16 : NULL, nvec, part);
}

static void int2_add_avx2(float *dst, const float *s0, const float *s1, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(s0 + i), b = _mm256_loadu_ps(s1 + i);
        const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
        /* lo = [a0 b0 a1 b1 | a4 b4 a5 b5], hi = [a2 b2 a3 b3 | a6 b6 a7 b7] */
        float *d = dst + 2 * i;
        _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), _mm256_permute2f128_ps(lo, hi, 0x20)));
        _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8),
                                              _mm256_permute2f128_ps(lo, hi, 0x31)));
    }
    for (; i < n; i++) {
        dst[2 * i] += s0[i];
        dst[2 * i + 1] += s1[i];
    }
}

void st_sparse_kernels_avx2(st_sparse_kernels *k) {
    k->isa = ST_ISA_AVX2;
    k->spmm = spmm_avx2;
    k->spmm_rows = NULL; /* banded convs stage their rows */
    k->sddmm = sddmm_avx2;
    k->int2_add = int2_add_avx2;
    k->taps3 = NULL;
    k->spmm4 = NULL; /* quads stay plain rows */
    k->spmm4_rows = NULL;
}
