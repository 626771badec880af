/* AVX-512 vector pieces shared by the activation row kernels and the kernels that apply
 * an epilogue in registers (sparse spmm). Include only from files compiled with
 * AVX-512 enabled. */
#ifndef ST_ACT_VEC_AVX512_H
#define ST_ACT_VEC_AVX512_H

#include <immintrin.h>

#include "act_kernels.h"

/* exp with a Cephes-style polynomial (relative error ~1e-7), 2^n applied by scalef. */
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

/* The epilogue ops (act_kernels.h) on one vector v: ADD reads op->src + off under the
 * lane mask m (lanes outside it are never read). */
static inline __m512 st_epi_vec16(__m512 v, const st_epi_op *ops, int n_ops, size_t off, __mmask16 m) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    for (int k = 0; k < n_ops; k++) {
        const st_epi_op *op = &ops[k];
        switch (op->kind) {
        case ST_EPI_OP_RELU: v = _mm512_max_ps(v, zero); break; /* NaN, -0 -> +0 */
        case ST_EPI_OP_LEAKYRELU:
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ),
                                     _mm512_mul_ps(v, _mm512_set1_ps(op->a)), v);
            break;
        case ST_EPI_OP_SILU:
        case ST_EPI_OP_SIGMOID: {
            const __m512 sg = _mm512_div_ps(one, _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(zero, v))));
            /* the clamp inside exp turns NaN into a number: Sigmoid passes NaN on itself */
            v = op->kind == ST_EPI_OP_SILU ? _mm512_mul_ps(v, sg)
                                           : _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), sg, v);
            break;
        }
        case ST_EPI_OP_CLIP: /* max/min return the second operand for a NaN: kept */
            v = _mm512_min_ps(_mm512_set1_ps(op->b), _mm512_max_ps(_mm512_set1_ps(op->a), v));
            break;
        case ST_EPI_OP_ADD: v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, op->src + off)); break;
        default: break;
        }
    }
    return v;
}

#endif
