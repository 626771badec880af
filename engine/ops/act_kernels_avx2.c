/* AVX2 + FMA row kernels: the inference epilogue (act_kernels.h) and the fused
 * BatchNorm+SiLU forward: z = (x - mean) * scale +
 * shift (separate sub, mul, add: the same roundings as the scalar code, so z matches the
 * z backward recomputes), s = 1 / (1 + exp(-z)) with a Cephes-style polynomial exp
 * (relative error about 1e-7, within 1e-6 of libm's expf), y = z * s. */
#include <immintrin.h>
#include <math.h>

#include "act_kernels.h"

static inline __m256 exp_avx2(__m256 t) {
    /* clamped to where exp is 0 or inf in float anyway; 2^n is applied as 2^n1 * 2^n2 so
     * each factor stays a normal float and overflow (t > 88.72) and underflow to
     * denormals round as they do in libm */
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), t);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_cvtps_epi32(fx), n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    __m256i e1 = _mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23);
    __m256i e2 = _mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e1)), _mm256_castsi256_ps(e2));
}

/* 1 / (1 + exp(-z)); a NaN z comes out a number (exp's clamp): Sigmoid restores it. */
static inline __m256 sigmoid_avx2(__m256 z) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), z))));
}

/* sigmoid(x) for the inference epilogue, as act_vec_avx512.h's sigmoid_epi_avx512:
 * e = exp(-|x|) from one Cody-Waite step and the same degree-5 polynomial, 2^n added to
 * the exponent bits (clamping -|x| at -87 keeps e a normal float; beyond that e is
 * flushed to 0, as the exact value underflows anyway); 1/(1+e) for x > 0, else e/(1+e).
 * Against double over [-110, 110]: relative error <= 4e-7 where sigmoid(x) >= 1.7e-38, 0
 * below (0.47-0.56 -> 0.37-0.45 ns per SiLU output against the Cephes exp, 4096-float rows
 * in L1). A NaN x comes out a number: Sigmoid's blend restores it (SiLU has its own
 * form, silu_epi_avx2). */
static inline __m256 sigmoid_epi_avx2(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 z = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 zc = _mm256_max_ps(z, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(zc, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 t = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693147180559945309f), zc);
    __m256 p = _mm256_set1_ps(ST_EXP5_C5);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ST_EXP5_C4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ST_EXP5_C3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ST_EXP5_C2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ST_EXP5_C1));
    p = _mm256_fmadd_ps(p, t, one);
    __m256 e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p),
                                                    _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
    e = _mm256_andnot_ps(_mm256_cmp_ps(z, zc, _CMP_LT_OQ), e);
    const __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
    return _mm256_blendv_ps(_mm256_mul_ps(e, r), r, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
}

/* SiLU for the inference epilogue as x / (1 + exp(-x)), as act_vec_avx512.h's
 * silu_epi_avx512 (17 operations against 20 for x * sigmoid_epi_avx2(x)): x is clamped
 * to [-87, 87] for the exponent, so 2^n stays a normal float; below -87 exp(-x) is taken
 * as inf and the result is -0 (the exact value is under 2e-36 in magnitude). NaN stays
 * NaN; SiLU(+inf) = +inf, SiLU(-inf) = NaN as -inf * 0. */
static inline __m256 silu_epi_avx2(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(-1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 u = _mm256_fmadd_ps(n, _mm256_set1_ps(0.693147180559945309f), xc); /* -t */
    __m256 p = _mm256_set1_ps(-ST_EXP5_C5);
    p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(ST_EXP5_C4));
    p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-ST_EXP5_C3));
    p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(ST_EXP5_C2));
    p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-ST_EXP5_C1));
    p = _mm256_fmadd_ps(p, u, one);
    __m256 e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p),
                                                    _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
    e = _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ));
    return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

void st_bn_silu_row_avx2(float *y, float *s, const float *x, size_t n, float mf, float scale,
                         float shift) {
    const __m256 vm = _mm256_set1_ps(mf), vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(shift);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 z = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vs), vb);
        __m256 sg = sigmoid_avx2(z);
        if (s) _mm256_storeu_ps(s + i, sg);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(z, sg));
    }
    st_bn_silu_row_scalar(y + i, s ? s + i : NULL, x + i, n - i, mf, scale, shift);
}

/* The ops on nv vectors at once, op by op, so that the vectors' exp chains overlap
 * (as st_epi_block16 on AVX-512); vector v holds the outputs at off + 8*v, ADD reads
 * src there (under km when masked: lanes outside are never read). */
static inline __attribute__((always_inline)) void epi_block8(__m256 *a, const int nv, const int masked, __m256i km,
                                                            const st_epi_op *ops, int n_ops, size_t off) {
    const __m256 zero = _mm256_setzero_ps();
    for (int k = 0; k < n_ops; k++) {
        const st_epi_op *op = &ops[k];
        switch (op->kind) {
        case ST_EPI_OP_RELU: /* NaN, -0 -> +0 */
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) a[v] = _mm256_max_ps(a[v], zero);
            break;
        case ST_EPI_OP_LEAKYRELU: {
            const __m256 sl = _mm256_set1_ps(op->a);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                a[v] = _mm256_blendv_ps(_mm256_mul_ps(a[v], sl), a[v], _mm256_cmp_ps(a[v], zero, _CMP_GT_OQ));
            break;
        }
        case ST_EPI_OP_SILU:
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                a[v] = silu_epi_avx2(a[v]);
            break;
        case ST_EPI_OP_SIGMOID: /* sigmoid_epi_avx2 turns NaN into a number: passed on here */
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                a[v] = _mm256_blendv_ps(sigmoid_epi_avx2(a[v]), a[v], _mm256_cmp_ps(a[v], a[v], _CMP_UNORD_Q));
            break;
        case ST_EPI_OP_CLIP: { /* max/min return the second operand for a NaN: kept */
            const __m256 lo = _mm256_set1_ps(op->a), hi = _mm256_set1_ps(op->b);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) a[v] = _mm256_min_ps(hi, _mm256_max_ps(lo, a[v]));
            break;
        }
        case ST_EPI_OP_ADD:
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                a[v] = _mm256_add_ps(a[v], masked ? _mm256_maskload_ps(op->src + off + 8 * v, km)
                                                  : _mm256_loadu_ps(op->src + off + 8 * v));
            break;
        default: break;
        }
    }
}

/* Blocks of 4 vectors, then single ones, plain loads and stores (a masked store is slow
 * on AMD and does not forward); the tail masked. */
void st_epi_rows_avx2(ST_EPI_ROWS_ARGS) {
    const __m256 vb = _mm256_set1_ps(bias);
    const __m256i mt = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n % 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int r = 0; r < rows; r++) {
        const size_t o = (size_t)(r * ldy);
        float *yr = y + o;
        const float *xr = x + r * ldx;
        size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256 a[4];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) a[v] = _mm256_add_ps(_mm256_loadu_ps(xr + i + 8 * v), vb);
            epi_block8(a, 4, 0, mt, ops, n_ops, o + i);
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm256_storeu_ps(yr + i + 8 * v, a[v]);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 a = _mm256_add_ps(_mm256_loadu_ps(xr + i), vb);
            epi_block8(&a, 1, 0, mt, ops, n_ops, o + i);
            _mm256_storeu_ps(yr + i, a);
        }
        if (i < n) {
            __m256 a = _mm256_add_ps(_mm256_maskload_ps(xr + i, mt), vb);
            epi_block8(&a, 1, 1, mt, ops, n_ops, o + i);
            _mm256_maskstore_ps(yr + i, mt, a);
        }
    }
}
