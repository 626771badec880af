/* AVX-512 vector pieces shared by the activation row kernels and the kernels that apply
 * an epilogue in registers (sparse spmm, dense microkernels). Include only from files compiled with
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

/* 1 / (1 + exp(-z)) as the AVX2 training kernel computes it (the fused BatchNorm+SiLU
 * forward, whose tests hold it to that kernel's flush of tiny results); a NaN z comes out
 * a number (exp's clamp). */
static inline __m512 sigmoid_train_avx512(__m512 z) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z))));
}

/* sigmoid(x) for the inference epilogue: e = exp(-|x|) never overflows, so no clamp
 * above; one Cody-Waite step and a degree-5 polynomial (relative error 1.6e-7 on
 * [-ln2/2, ln2/2], fitted for this); sigmoid = 1/(1+e) for x > 0, e/(1+e) otherwise.
 * Against double precision over [-110, 110]: relative error <= 3.9e-7. A Cephes-style
 * exp (two-step reduction, degree 6, both clamps) took 0.20 ns per SiLU output in the
 * epilogue, this 0.15 (4096-float rows in L1); 1/(1+e) by rcp14 and a Newton step took
 * 0.17. A NaN x comes out a number (the max picks -104): Sigmoid's blend restores it
 * (SiLU has its own form, silu_epi_avx512). */
static inline __m512 sigmoid_epi_avx512(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
    z = _mm512_max_ps(z, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 t = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693147180559945309f), z);
    __m512 p = _mm512_set1_ps(ST_EXP5_C5);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ST_EXP5_C4));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ST_EXP5_C3));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ST_EXP5_C2));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ST_EXP5_C1));
    p = _mm512_fmadd_ps(p, t, one);
    const __m512 e = _mm512_scalef_ps(p, n);
    const __m512 r = _mm512_div_ps(one, _mm512_add_ps(one, e));
    return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NGT_UQ), e, r);
}

/* SiLU for the inference epilogue: x / (1 + exp(-x)), in 12 vector ops against 16 for
 * x * sigmoid_epi_avx512(x) (whose |x| split, compare and two multiplies guard sigmoid's
 * own range). On a Zen 4 core, which issued about one 512-bit op per cycle in this
 * code, that took 0.28 ns per output and this 0.21 (4096-float rows in L1, 8 vectors at
 * once). exp(-x) by the same reduction and polynomial as sigmoid_epi_avx512, written in
 * u = x + n ln2 = -t so that -x is never formed (odd coefficients negated); x is
 * clamped at 100 for the exponent only (beyond ~17 the quotient is x). Below -88.7 the
 * exponent overflows to inf and the result is -0 where the exact value is under 2e-37
 * in magnitude. NaN stays NaN; SiLU(+inf) = +inf, SiLU(-inf) = NaN as -inf * 0. Against
 * double precision over [-88, 120]: relative error <= 4e-7. */
static inline __m512 silu_epi_avx512(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 xc = _mm512_min_ps(x, _mm512_set1_ps(100.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(-1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 u = _mm512_fmadd_ps(n, _mm512_set1_ps(0.693147180559945309f), xc);
    __m512 p = _mm512_set1_ps(-ST_EXP5_C5);
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(ST_EXP5_C4));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(-ST_EXP5_C3));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(ST_EXP5_C2));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(-ST_EXP5_C1));
    p = _mm512_fmadd_ps(p, u, one);
    return _mm512_div_ps(x, _mm512_add_ps(one, _mm512_scalef_ps(p, n)));
}

/* Lanes [0, n) of a 16-lane vector (none for n <= 0, all for n >= 16). */
static inline __mmask16 st_lane_mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* The ops on nr x nv vectors at once, op by op: vector r*nv + v holds the 16 outputs at
 * off0 + r*ld + 16*v (ADD reads op->src there under lane mask mk[v]; rows r >= rvalid
 * are never read). Applying each op across all vectors
 * lets the vectors' exp chains (~50 cycles of latency each) overlap; all ops on one
 * vector, then the next, ran the epilogue pass at 0.41 ns per SiLU output and 0.18 per
 * ReLU output (now 0.15 and 0.03-0.04, 4096-float rows in L1). NaN handling as the
 * scalar definitions: ReLU's max turns NaN and -0 into +0, Clip's min/max keep a NaN
 * (they return the second operand), Sigmoid passes a NaN input on (sigmoid_epi_avx512
 * would turn it into a number). */
static inline __attribute__((always_inline)) void st_epi_block16(__m512 *a, const int nr, const int nv, int rvalid,
                                                                 const st_epi_op *ops, int n_ops, size_t off0,
                                                                 size_t ld, const __mmask16 *mk) {
    const __m512 zero = _mm512_setzero_ps();
    for (int k = 0; k < n_ops; k++) {
        const st_epi_op *op = &ops[k];
        switch (op->kind) {
        case ST_EPI_OP_RELU:
#pragma GCC unroll 32
            for (int i = 0; i < nr * nv; i++) a[i] = _mm512_max_ps(a[i], zero);
            break;
        case ST_EPI_OP_LEAKYRELU: {
            const __m512 sl = _mm512_set1_ps(op->a);
#pragma GCC unroll 32
            for (int i = 0; i < nr * nv; i++)
                a[i] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a[i], zero, _CMP_GT_OQ), _mm512_mul_ps(a[i], sl), a[i]);
            break;
        }
        case ST_EPI_OP_SILU:
#pragma GCC unroll 32
            for (int i = 0; i < nr * nv; i++)
                a[i] = silu_epi_avx512(a[i]);
            break;
        case ST_EPI_OP_SIGMOID:
#pragma GCC unroll 32
            for (int i = 0; i < nr * nv; i++) /* NaN input: kept */
                a[i] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a[i], a[i], _CMP_UNORD_Q), sigmoid_epi_avx512(a[i]), a[i]);
            break;
        case ST_EPI_OP_CLIP: {
            const __m512 lo = _mm512_set1_ps(op->a), hi = _mm512_set1_ps(op->b);
#pragma GCC unroll 32
            for (int i = 0; i < nr * nv; i++) a[i] = _mm512_min_ps(hi, _mm512_max_ps(lo, a[i]));
            break;
        }
        case ST_EPI_OP_ADD:
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++)
                if (r < rvalid)
#pragma GCC unroll 8
                    for (int v = 0; v < nv; v++)
                        a[r * nv + v] = _mm512_add_ps(
                            a[r * nv + v],
                            _mm512_maskz_loadu_ps(mk[v], op->src + off0 + (size_t)r * ld + 16 * (size_t)v));
            break;
        default: break;
        }
    }
}

#endif
