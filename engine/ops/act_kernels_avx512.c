/* AVX-512 row kernel of the fused BatchNorm+SiLU forward: the AVX2 kernel's arithmetic
 * (same z roundings, same Cephes-style polynomial exp) on 16 lanes, 2^n applied by
 * scalef (exact for normal results, as the two multiplies of the AVX2 kernel), and the
 * row's tail under a mask instead of libm: the engine's epilogues run on short rows
 * (10-40 outputs of a small map) where a scalar tail was most of the work. */
#include <immintrin.h>

#include "act_kernels.h"

static inline __m512 exp_avx512(__m512 t) {
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), t);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, fx);
}

static inline void silu16(float *y, float *s, const float *x, __mmask16 m, __m512 vm, __m512 vs,
                          __m512 vb) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), vm), vs), vb);
    __m512 sg = _mm512_div_ps(one, _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z))));
    if (s) _mm512_mask_storeu_ps(s, m, sg);
    _mm512_mask_storeu_ps(y, m, _mm512_mul_ps(z, sg));
}

void st_bn_silu_row_avx512(float *y, float *s, const float *x, size_t n, float mf, float scale,
                           float shift) {
    const __m512 vm = _mm512_set1_ps(mf), vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) silu16(y + i, s ? s + i : NULL, x + i, (__mmask16)0xffff, vm, vs, vb);
    if (i < n) silu16(y + i, s ? s + i : NULL, x + i, (__mmask16)((1u << (n - i)) - 1u), vm, vs, vb);
}
