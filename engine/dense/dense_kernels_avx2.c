/* AVX2 microkernels of the dense convolution (st_dense.h), for CPUs without AVX-512.
 * The 8 x (16*NV) tile of the AVX-512 kernels is done as 4 x 16 register blocks (8 ymm
 * accumulators, 2 loads of the unrolled input and 4 weight broadcasts per step: 16
 * registers leave no room for a wider block), one block per half of the 8-channel
 * weight panel and per 16 columns. Full blocks use plain loads and stores; the masked
 * forms only at a tile's right edge. */
#include <immintrin.h>
#include <stdint.h>

#include "st_dense.h"

#define MR ST_DENSE_MR

static inline __m256i lane_mask8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Rows m < mr (<= 4) of a 4 x 16 block: a points at the panel's first row of the half,
 * b at the block's first column (plus koff[k] or k*ldb per step). */
static inline __attribute__((always_inline)) void block4x16(int kc, const float *a, const float *b,
                                                            size_t ldb, const int32_t *koff, float *c,
                                                            size_t ldc, int mr, int nr, const float *bias,
                                                            int accumulate, const int full) {
    const __m256i m0 = lane_mask8(nr), m1 = lane_mask8(nr - 8);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        const __m256 b0 = _mm256_set1_ps(bias && m < mr ? bias[m] : 0.0f);
        if (accumulate && m < mr) {
            const float *cr = c + (size_t)m * ldc;
            acc[m][0] = full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, m0);
            acc[m][1] = full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, m1);
        } else {
            acc[m][0] = acc[m][1] = b0;
        }
    }
    for (int k = 0; k < kc; k++) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * ldb;
        const __m256 v0 = full ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, m0);
        const __m256 v1 = full ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, m1);
        const float *ak = a + (size_t)k * MR;
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) {
            const __m256 am = _mm256_broadcast_ss(ak + m);
            acc[m][0] = _mm256_fmadd_ps(am, v0, acc[m][0]);
            acc[m][1] = _mm256_fmadd_ps(am, v1, acc[m][1]);
        }
    }
    /* constant row indices (m < mr tested per row) keep acc in registers */
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        if (m < mr) {
            float *cr = c + (size_t)m * ldc;
            if (full) {
                _mm256_storeu_ps(cr, acc[m][0]);
                _mm256_storeu_ps(cr + 8, acc[m][1]);
            } else {
                _mm256_maskstore_ps(cr, m0, acc[m][0]);
                _mm256_maskstore_ps(cr + 8, m1, acc[m][1]);
            }
        }
    }
}

static inline __attribute__((always_inline)) void tile(int nv, int kc, const float *a, const float *b,
                                                       size_t ldb, const int32_t *koff, float *c,
                                                       size_t ldc, int mr, int nr, const float *bias,
                                                       int accumulate) {
    for (int v = 0; v < nv; v++) {
        const int cols = nr - 16 * v;
        if (cols <= 0) break;
        for (int h = 0; h < 2; h++) {
            const int rows = mr - 4 * h;
            if (rows <= 0) break;
            const float *bh = bias ? bias + 4 * h : NULL;
            float *ch = c + (size_t)(4 * h) * ldc + 16 * v;
            if (cols >= 16)
                block4x16(kc, a + 4 * h, b + 16 * v, ldb, koff, ch, ldc, rows, 16, bh, accumulate, 1);
            else
                block4x16(kc, a + 4 * h, b + 16 * v, ldb, koff, ch, ldc, rows, cols, bh, accumulate, 0);
        }
    }
}

/* The epilogue on the stored tile (in L1): 4x16 blocks leave no register room for it. */
#define DEFINE_UKR(NAME, NV)                                                                 \
    static void NAME(int kc, const float *a, const float *b, size_t ldb, const int32_t *koff, \
                     float *c, size_t ldc, int mr, int nr, const float *bias, int accumulate, \
                     const st_epi_op *ops, int n_ops) {                                      \
        tile(NV, kc, a, b, ldb, koff, c, ldc, mr, nr, bias, accumulate);                     \
        if (n_ops) st_epi_rows_avx2(c, (ptrdiff_t)ldc, c, (ptrdiff_t)ldc, mr, (size_t)nr, 0.0f, ops, n_ops); \
    }

DEFINE_UKR(ukr_8x1, 1)
DEFINE_UKR(ukr_8x2, 2)
DEFINE_UKR(ukr_8x3, 3)

void st_dense_ukr_avx2(st_dense_ukr ukr[3], st_dense_ukr ukr_off[3]) {
    /* the offsets are tested per step (koff != NULL): one set serves both */
    ukr[0] = ukr_off[0] = ukr_8x1;
    ukr[1] = ukr_off[1] = ukr_8x2;
    ukr[2] = ukr_off[2] = ukr_8x3;
}
