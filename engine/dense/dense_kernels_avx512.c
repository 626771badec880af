/* AVX-512 microkernels of the dense convolution (st_dense.h): an 8 x (16*NV) tile of the
 * output in 8*NV zmm accumulators over the whole reduction; per step NV loads of the
 * unrolled input and 8 weight broadcasts (embedded in the FMAs). NV = 3 is FMA-bound
 * (24 FMAs per 11 loads); NV = 1 exists for maps of few positions (7x7, 10x10) where
 * wider tiles would mostly compute padding. */
#include <immintrin.h>
#include <stdint.h>

#include "act_vec_avx512.h"
#include "st_dense.h"

#define MR ST_DENSE_MR

/* Full vectors take a plain store: the epilogue reads the tile back at once, and a
 * masked store does not forward to that load (it waits for the store to retire). */
static inline void st_dense_store16(float *p, __mmask16 k, __m512 v) {
    if (k == 0xffff)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, k, v);
}

/* KOFF 0: row k of b at b + k*ldb; KOFF 1: at b + koff[k] (the direct convolution reads
 * the padded input in place, one offset per filter tap). */
#define DEFINE_UKR(NAME, NV, KOFF)                                                            \
    static void NAME(int kc, const float *a, const float *b, size_t ldb, const int32_t *koff,  \
                     float *c, size_t ldc, int mr, int nr, const float *bias, int accumulate,   \
                     const st_epi_op *ops, int n_ops) {                                        \
        __m512 acc[MR][NV];                                                                   \
        __mmask16 mk[NV];                                                                     \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) mk[v] = st_lane_mask16(nr - 16 * v);  \
        _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {                                \
            const __m512 b0 = _mm512_set1_ps(bias && m < mr ? bias[m] : 0.0f);                \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                              \
                acc[m][v] = accumulate && m < mr                                              \
                    ? _mm512_maskz_loadu_ps(mk[v], c + (size_t)m * ldc + 16 * v) : b0;        \
        }                                                                                     \
        for (int k = 0; k < kc; k++) {                                                        \
            __m512 bv[NV];                                                                    \
            const float *bk = KOFF ? b + koff[k] : b;                                         \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                              \
                bv[v] = _mm512_maskz_loadu_ps(mk[v], bk + 16 * v);                            \
            _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {                            \
                const __m512 am = _mm512_set1_ps(a[m]);                                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                          \
                    acc[m][v] = _mm512_fmadd_ps(am, bv[v], acc[m][v]);                        \
            }                                                                                 \
            a += MR;                                                                          \
            if (!KOFF) b += ldb;                                                              \
        }                                                                                     \
        if (n_ops) st_epi_block16(&acc[0][0], MR, NV, mr, ops, n_ops, 0, ldc, mk);             \
        /* constant row indices (m < mr tested per row) keep acc in registers */              \
        _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {                                \
            if (m < mr)                                                                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                          \
                    st_dense_store16(c + (size_t)m * ldc + 16 * v, mk[v], acc[m][v]);         \
        }                                                                                     \
    }

DEFINE_UKR(ukr_8x1, 1, 0)
DEFINE_UKR(ukr_8x2, 2, 0)
DEFINE_UKR(ukr_8x3, 3, 0)
DEFINE_UKR(ukr_8x1_off, 1, 1)
DEFINE_UKR(ukr_8x2_off, 2, 1)
DEFINE_UKR(ukr_8x3_off, 3, 1)

void st_dense_ukr_avx512(st_dense_ukr ukr[3], st_dense_ukr ukr_off[3]) {
    ukr[0] = ukr_8x1, ukr[1] = ukr_8x2, ukr[2] = ukr_8x3;
    ukr_off[0] = ukr_8x1_off, ukr_off[1] = ukr_8x2_off, ukr_off[2] = ukr_8x3_off;
}

/* The channel-vector tile (st_dense.h): 64 output channels in four zmm lanes-wide rows
 * times NP positions, 4 * NP accumulators; per reduction step 4 weight loads and NP
 * broadcasts of input values (one per position, wherever it lies) for 4 * NP FMAs. */
static inline __attribute__((always_inline)) void cvec_tile(const int NP, int crs, const float *w, const float *x,
                                                            const int32_t *koff, const int32_t *pos,
                                                            const float *init, float *out) {
    __m512 a[4][ST_DENSE_CV_NP];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
        _Pragma("GCC unroll 6") for (int i = 0; i < NP; i++)
            a[j][i] = init ? _mm512_loadu_ps(init + i * 64 + j * 16) : _mm512_setzero_ps();
    int32_t p[ST_DENSE_CV_NP];
    _Pragma("GCC unroll 6") for (int i = 0; i < NP; i++) p[i] = pos[i];
    for (int k = 0; k < crs; k++, w += 4 * 16) {
        const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16), w2 = _mm512_load_ps(w + 32),
                     w3 = _mm512_load_ps(w + 48);
        const float *xk = x + koff[k];
        _Pragma("GCC unroll 6") for (int i = 0; i < NP; i++) {
            const __m512 b = _mm512_set1_ps(xk[p[i]]);
            a[0][i] = _mm512_fmadd_ps(w0, b, a[0][i]);
            a[1][i] = _mm512_fmadd_ps(w1, b, a[1][i]);
            a[2][i] = _mm512_fmadd_ps(w2, b, a[2][i]);
            a[3][i] = _mm512_fmadd_ps(w3, b, a[3][i]);
        }
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < NP; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) _mm512_storeu_ps(out + i * 64 + j * 16, a[j][i]);
}

/* A map's last tile takes only its real positions: ResNet-18's 7x7 maps are 8 tiles of
 * 6 and one of 1, which at full width cost 10% of the layer in padding. */
void st_dense_cvec_avx512(int np, int crs, const float *w, const float *x, const int32_t *koff,
                          const int32_t *pos, const float *init, float *out) {
    switch (np) {
    case 1: cvec_tile(1, crs, w, x, koff, pos, init, out); break;
    case 2: cvec_tile(2, crs, w, x, koff, pos, init, out); break;
    case 3: cvec_tile(3, crs, w, x, koff, pos, init, out); break;
    case 4: cvec_tile(4, crs, w, x, koff, pos, init, out); break;
    case 5: cvec_tile(5, crs, w, x, koff, pos, init, out); break;
    default: cvec_tile(ST_DENSE_CV_NP, crs, w, x, koff, pos, init, out); break;
    }
}
