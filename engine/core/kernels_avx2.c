/* AVX2 + FMA variants; compiled with -mavx2 -mfma and only called when the CPU has them. */
#include <immintrin.h>

#include "kernels_impl.h"
#include "st_cpu.h"

static void axpy_avx2(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    st_axpy_scalar(y + i, a, x + i, n - i);
}

static void sgd_avx2(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                     float wd, int nesterov, int first) {
    __m256 vlr = _mm256_set1_ps(lr), vmom = _mm256_set1_ps(momentum), vwd = _mm256_set1_ps(wd);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vp = _mm256_loadu_ps(p + i);
        /* same operation order as the scalar kernel so results agree bit for bit */
        __m256 d = _mm256_add_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(vwd, vp));
        if (momentum != 0.0f) {
            __m256 b = first ? d : _mm256_add_ps(_mm256_mul_ps(vmom, _mm256_loadu_ps(buf + i)), d);
            _mm256_storeu_ps(buf + i, b);
            d = nesterov ? _mm256_add_ps(d, _mm256_mul_ps(vmom, b)) : b;
        }
        _mm256_storeu_ps(p + i, _mm256_sub_ps(vp, _mm256_mul_ps(vlr, d)));
    }
    st_sgd_scalar(p + i, g + i, buf ? buf + i : buf, n - i, lr, momentum, wd, nesterov, first);
}

static void adamw_avx2(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                       float b2, float eps, float wd, float bc1, float bc2) {
    __m256 vdecay = _mm256_set1_ps(1.0f - lr * wd), vb1 = _mm256_set1_ps(b1),
           vb2 = _mm256_set1_ps(b2), v1b1 = _mm256_set1_ps(1.0f - b1),
           v1b2 = _mm256_set1_ps(1.0f - b2), veps = _mm256_set1_ps(eps),
           vstep = _mm256_set1_ps(lr / bc1), vsbc2 = _mm256_set1_ps(__builtin_sqrtf(bc2));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vg = _mm256_loadu_ps(g + i);
        __m256 vp = _mm256_mul_ps(_mm256_loadu_ps(p + i), vdecay);
        __m256 vm = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(v1b1, vg));
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(v1b2, vg), vg));
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), vsbc2), veps);
        vp = _mm256_sub_ps(vp, _mm256_div_ps(_mm256_mul_ps(vstep, vm), den));
        _mm256_storeu_ps(m + i, vm);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, vp);
    }
    st_adamw_scalar(p + i, g + i, m + i, v + i, n - i, lr, b1, b2, eps, wd, bc1, bc2);
}

static void apply_mask_avx2(float *p, const unsigned char *mask, size_t n) {
    size_t i = 0;
    __m256i zero = _mm256_setzero_si256();
    for (; i + 8 <= n; i += 8) {
        __m128i m8 = _mm_loadl_epi64((const __m128i *)(mask + i));
        __m256i m32 = _mm256_cvtepu8_epi32(m8);
        __m256 keep = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(m32, zero),
                                                           _mm256_set1_epi32(-1)));
        _mm256_storeu_ps(p + i, _mm256_and_ps(_mm256_loadu_ps(p + i), keep));
    }
    st_apply_mask_scalar(p + i, mask + i, n - i);
}

/* v where v > a or v is NaN (as the scalar select), else a (a NaN a stays) */
static inline __m256 max_nan8(__m256 a, __m256 v) {
    return _mm256_blendv_ps(a, v, _mm256_or_ps(_mm256_cmp_ps(v, a, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

/* NV full vectors from column i: independent chains, one per vector. */
static inline __attribute__((always_inline)) void max_block8(float *dst, const float *const *rows, int nr,
                                                            size_t i, const int NV) {
    __m256 a[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) a[v] = _mm256_loadu_ps(rows[0] + i + 8 * v);
    for (int r = 1; r < nr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[v] = max_nan8(a[v], _mm256_loadu_ps(rows[r] + i + 8 * v));
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) _mm256_storeu_ps(dst + i + 8 * v, a[v]);
}

/* Four vectors at a time, so the rows' compare-and-blend chains overlap (as AVX-512). */
static void max_rows_avx2(float *dst, const float *const *rows, int nr, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) max_block8(dst, rows, nr, i, 4);
    for (; i + 8 <= n; i += 8) max_block8(dst, rows, nr, i, 1);
    for (; i < n; i++) { /* tail: the scalar select */
        float a = rows[0][i];
        for (int r = 1; r < nr; r++) a = st_max_nan(a, rows[r][i]);
        dst[i] = a;
    }
}

static void deint2_avx2(float *d0, float *d1, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        /* [a0 a2 b0 b2 | a4 a6 b4 b6] -> lanes 0 2 1 3 of 64 bits */
        const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
        _mm256_storeu_ps(d0 + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
        _mm256_storeu_ps(d1 + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
    }
    st_deint2_scalar(d0 + i, d1 + i, src + 2 * i, n - i);
}

void st_kernels_avx2(st_kernels *k) {
    k->isa = ST_ISA_AVX2;
    k->axpy = axpy_avx2;
    k->sgd = sgd_avx2;
    k->adamw = adamw_avx2;
    k->apply_mask = apply_mask_avx2;
    k->max_rows = max_rows_avx2;
    k->deint2 = deint2_avx2;
    k->max3s2 = NULL;
    k->maxs1_narrow = NULL;
}
