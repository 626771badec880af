/* AVX-512 variants; compiled with -mavx512f (and friends) and only called when the CPU
 * has them. Tails use masked loads and stores, so there is no scalar remainder loop. */
#include <immintrin.h>

#include "st_cpu.h"

static inline __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static void axpy_avx512(float *y, float a, const float *x, size_t n) {
    __m512 va = _mm512_set1_ps(a);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vy = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i), vy));
    }
}

static void sgd_avx512(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                       float wd, int nesterov, int first) {
    __m512 vlr = _mm512_set1_ps(lr), vmom = _mm512_set1_ps(momentum), vwd = _mm512_set1_ps(wd);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vp = _mm512_maskz_loadu_ps(k, p + i);
        /* same operation order as the scalar kernel so results agree bit for bit */
        __m512 d = _mm512_add_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_mul_ps(vwd, vp));
        if (momentum != 0.0f) {
            __m512 b = first ? d
                             : _mm512_add_ps(_mm512_mul_ps(vmom, _mm512_maskz_loadu_ps(k, buf + i)), d);
            _mm512_mask_storeu_ps(buf + i, k, b);
            d = nesterov ? _mm512_add_ps(d, _mm512_mul_ps(vmom, b)) : b;
        }
        _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(vp, _mm512_mul_ps(vlr, d)));
    }
}

static void adamw_avx512(float *p, const float *g, float *m, float *v, size_t n, float lr,
                         float b1, float b2, float eps, float wd, float bc1, float bc2) {
    __m512 vdecay = _mm512_set1_ps(1.0f - lr * wd), vb1 = _mm512_set1_ps(b1),
           vb2 = _mm512_set1_ps(b2), v1b1 = _mm512_set1_ps(1.0f - b1),
           v1b2 = _mm512_set1_ps(1.0f - b2), veps = _mm512_set1_ps(eps),
           vstep = _mm512_set1_ps(lr / bc1), vsbc2 = _mm512_set1_ps(__builtin_sqrtf(bc2));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vg = _mm512_maskz_loadu_ps(k, g + i);
        __m512 vp = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), vdecay);
        __m512 vm = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_maskz_loadu_ps(k, m + i)),
                                  _mm512_mul_ps(v1b1, vg));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_maskz_loadu_ps(k, v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(v1b2, vg), vg));
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), vsbc2), veps);
        vp = _mm512_sub_ps(vp, _mm512_div_ps(_mm512_mul_ps(vstep, vm), den));
        _mm512_mask_storeu_ps(m + i, k, vm);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, vp);
    }
}

static void apply_mask_avx512(float *p, const unsigned char *mask, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m128i m8 = _mm_maskz_loadu_epi8(k, mask + i);
        __mmask16 keep = _mm_test_epi8_mask(m8, m8) & k;
        /* zero where the mask byte is 0, keep elsewhere */
        _mm512_mask_storeu_ps(p + i, k, _mm512_maskz_loadu_ps(keep, p + i));
    }
}

/* v where v > a or v is NaN (as the scalar select), else a (a NaN a stays) */
static inline __m512 max_nan16(__m512 a, __m512 v) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), a, v);
}

/* NV full vectors from column i: independent chains, one per vector. */
static inline __attribute__((always_inline)) void max_block16(float *dst, const float *const *rows, int nr,
                                                             size_t i, const int NV) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) a[v] = _mm512_loadu_ps(rows[0] + i + 16 * v);
    for (int r = 1; r < nr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) a[v] = max_nan16(a[v], _mm512_loadu_ps(rows[r] + i + 16 * v));
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(dst + i + 16 * v, a[v]);
}

/* Eight (then four) vectors at a time: each row's compare-and-blend waits on the last,
 * so one vector's chain alone left the core idle (ResNet-18's 3x3/2 pool: ~200 cycles
 * per output row). */
static void max_rows_avx512(float *dst, const float *const *rows, int nr, size_t n) {
    size_t i = 0;
    for (; i + 128 <= n; i += 128) max_block16(dst, rows, nr, i, 8);
    for (; i + 64 <= n; i += 64) max_block16(dst, rows, nr, i, 4);
    for (; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(k, rows[0] + i);
        for (int r = 1; r < nr; r++) {
            a = max_nan16(a, _mm512_maskz_loadu_ps(k, rows[r] + i));
        }
        if (k == 0xFFFF)
            _mm512_storeu_ps(dst + i, a);
        else
            _mm512_mask_storeu_ps(dst + i, k, a);
    }
}

/* Full vectors unmasked; only the last, partial one takes masks. */
static void deint2_avx512(float *d0, float *d1, const float *src, size_t n) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 a = _mm512_loadu_ps(src + 2 * i), b = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(d0 + i, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(d1 + i, _mm512_permutex2var_ps(a, io, b));
    }
    if (i < n) {
        const size_t left = n - i;
        const __m512 a = _mm512_maskz_loadu_ps(tail_mask(2 * left), src + 2 * i);
        const __m512 b = _mm512_maskz_loadu_ps(tail_mask(left > 8 ? 2 * left - 16 : 0), src + 2 * i + 16);
        _mm512_mask_storeu_ps(d0 + i, tail_mask(left), _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(d1 + i, tail_mask(left), _mm512_permutex2var_ps(a, io, b));
    }
}

void st_kernels_avx512(st_kernels *k) {
    k->isa = ST_ISA_AVX512;
    k->axpy = axpy_avx512;
    k->sgd = sgd_avx512;
    k->adamw = adamw_avx512;
    k->apply_mask = apply_mask_avx512;
    k->max_rows = max_rows_avx512;
    k->deint2 = deint2_avx512;
}
