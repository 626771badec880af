/* AVX-512 row kernels: the inference epilogue (act_vec_avx512.h) and the fused
 * BatchNorm+SiLU forward: the AVX2 kernel's arithmetic
 * (same z roundings, same Cephes-style polynomial exp) on 16 lanes, 2^n applied by
 * scalef (exact for normal results, as the two multiplies of the AVX2 kernel), and the
 * row's tail under a mask instead of libm: the engine's epilogues run on short rows
 * (10-40 outputs of a small map) where a scalar tail was most of the work. */
#include <immintrin.h>

#include "act_kernels.h"
#include "act_vec_avx512.h"

static inline void silu16(float *y, float *s, const float *x, __mmask16 m, __m512 vm, __m512 vs,
                          __m512 vb) {
    __m512 z = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), vm), vs), vb);
    __m512 sg = sigmoid_train_avx512(z);
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

/* NR rows of NV vectors (the last one under mask mk[NV-1]) through one st_epi_block16:
 * short rows (a banded conv's 40-float output rows) fill a block from several rows. */
static inline __attribute__((always_inline)) void rows_block(float *y, ptrdiff_t ldy, const float *x,
                                                             ptrdiff_t ldx, size_t o, __m512 vb,
                                                             const st_epi_op *ops, int n_ops,
                                                             const __mmask16 *mk, const int NR,
                                                             const int NV) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            a[r * NV + v] = _mm512_add_ps(_mm512_maskz_loadu_ps(mk[v], x + r * ldx + 16 * v), vb);
    st_epi_block16(a, NR, NV, NR, ops, n_ops, o, (size_t)ldy, mk);
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(y + r * ldy + 16 * v, mk[v], a[r * NV + v]);
}

/* Rows of n <= 64 floats, 8 / NV of them per block. */
static inline __attribute__((always_inline)) void short_rows(ST_EPI_ROWS_ARGS, const int NV,
                                                             const __mmask16 *mk) {
    const __m512 vb = _mm512_set1_ps(bias);
    const int NR = 8 / NV;
    int r = 0;
    for (; r + NR <= rows; r += NR)
        rows_block(y + r * ldy, ldy, x + r * ldx, ldx, (size_t)(r * ldy), vb, ops, n_ops, mk, NR, NV);
    for (; r < rows; r++)
        rows_block(y + r * ldy, ldy, x + r * ldx, ldx, (size_t)(r * ldy), vb, ops, n_ops, mk, 1, NV);
}

/* Blocks of 8 vectors through st_epi_block16 (one switch per op and block, the vectors'
 * exp chains overlapping), then single vectors, the last one masked; several rows per
 * block when rows are short. */
void st_epi_rows_avx512(ST_EPI_ROWS_ARGS) {
    const __m512 vb = _mm512_set1_ps(bias);
    const __mmask16 mt = (__mmask16)((1u << (n % 16)) - 1u);
    const __mmask16 full[8] = {0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff};
    if (rows > 1 && n > 0 && n <= 64) {
        const int nv = (int)((n + 15) / 16);
        __mmask16 mk[4] = {0xffff, 0xffff, 0xffff, 0xffff};
        if (n % 16) mk[nv - 1] = mt;
        switch (nv) {
        case 1: short_rows(y, ldy, x, ldx, rows, n, bias, ops, n_ops, 1, mk); return;
        case 2: short_rows(y, ldy, x, ldx, rows, n, bias, ops, n_ops, 2, mk); return;
        case 3: short_rows(y, ldy, x, ldx, rows, n, bias, ops, n_ops, 3, mk); return;
        default: short_rows(y, ldy, x, ldx, rows, n, bias, ops, n_ops, 4, mk); return;
        }
    }
    for (int r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        const float *xr = x + r * ldx;
        const size_t o = (size_t)(r * ldy);
        size_t i = 0;
        for (; i + 128 <= n; i += 128) {
            __m512 a[8];
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) a[v] = _mm512_add_ps(_mm512_loadu_ps(xr + i + 16 * v), vb);
            st_epi_block16(a, 1, 8, 1, ops, n_ops, o + i, 0, full);
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) _mm512_storeu_ps(yr + i + 16 * v, a[v]);
        }
        for (; i + 16 <= n; i += 16) {
            __m512 a = _mm512_add_ps(_mm512_loadu_ps(xr + i), vb);
            st_epi_block16(&a, 1, 1, 1, ops, n_ops, o + i, 0, full);
            _mm512_storeu_ps(yr + i, a);
        }
        if (i < n) {
            __m512 a = _mm512_add_ps(_mm512_maskz_loadu_ps(mt, xr + i), vb);
            st_epi_block16(&a, 1, 1, 1, ops, n_ops, o + i, 0, &mt);
            _mm512_mask_storeu_ps(yr + i, mt, a);
        }
    }
}
