/* AVX-512 kernel of the Winograd stem (st_dense.h, dense_wino.c): a 6x6 stride-2
 * convolution over C <= 4 channels is a 3x3 stride-1 convolution over the 4C channels of
 * the input's space-to-depth (channel cc = 4c + 2py + px holds x[c][2Y + py - pad_h]
 * [2X + px - pad_w] at (Y, X)), run as F(4x4, 3x3): per tile of 4x4 outputs, V = B^T d B
 * of each channel's 6x6 input tile, M = sum over cc of U[cc] (x) V[cc] at each of the 36
 * positions (U: the transformed weights), y = A^T M A.
 *
 * Vectors hold 16 tiles: 8 along a tile row (lanes 0-7: tile row ty, lanes 8-15: ty + 1,
 * same columns), so maps whose tile rows are 8k tiles wide fill every lane (yolov5n's
 * 160-wide stem output is 40 tiles: 16-tile rows lost a sixth of the lanes). In the
 * original image, tile column t of a block of 8 reads columns 8t - pad_w + o, o < 12
 * (s2d column 4t + j is original column 8t + 2j + px - pad_w): the 12 "phase vectors"
 * of an input row, built by a transpose (phase_vectors2), give every d[i][j] the input
 * transform needs as one vector. */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "act_vec_avx512.h"
#include "st_dense.h"

#define WG_KC 16 /* output channels per GEMM pass (M stays at 36 KiB) */

/* vpermt2ps indices of the three transpose stages below */
static const int PV_IX[6][16] __attribute__((aligned(64))) = {
    {0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27},
    {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31},
    {0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
    {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31},
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}};

/* pv[o] lane t = ra[8t + o] (t < 8), lane 8 + t = rb[8t + o], for o < 12: ra, rb two
 * input rows (of tile rows ty and ty + 1), 68 floats each. The 8x8 blocks of o < 8 are
 * transposed in three stages of lane pairs (4 -> 8 -> 16 lanes); o >= 8 is o - 8 one
 * tile on. */
static inline void phase_vectors2(const float *ra, const float *rb, __m512 *pv) {
    __m512 z[8], y[4][2], w[2][2][2];
    for (int m = 0; m < 4; m++) z[m] = _mm512_loadu_ps(ra + 16 * m), z[4 + m] = _mm512_loadu_ps(rb + 16 * m);
    for (int h = 0; h < 2; h++) { /* y[m][h] lane 4o' + tt: tile 4m + tt, o = 4h + o' */
        const __m512i ix = _mm512_load_si512(PV_IX[h]);
        for (int m = 0; m < 4; m++) y[m][h] = _mm512_permutex2var_ps(z[2 * m], ix, z[2 * m + 1]);
    }
    for (int s = 0; s < 2; s++) { /* w[pr][h][s] lane 8oo + t8: tile 8pr + t8, o = 4h + 2s + oo */
        const __m512i ix = _mm512_load_si512(PV_IX[2 + s]);
        for (int pr = 0; pr < 2; pr++)
            for (int h = 0; h < 2; h++) w[pr][h][s] = _mm512_permutex2var_ps(y[2 * pr][h], ix, y[2 * pr + 1][h]);
    }
    for (int oo = 0; oo < 2; oo++) {
        const __m512i ix = _mm512_load_si512(PV_IX[4 + oo]);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2; s++) pv[4 * h + 2 * s + oo] = _mm512_permutex2var_ps(w[0][h][s], ix, w[1][h][s]);
    }
    for (int o = 0; o < 4; o++) {
        const __m512i sh = _mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(rb[64 + o])),
                                               _mm512_castps_si512(pv[o]), 1);
        pv[8 + o] = _mm512_mask_mov_ps(_mm512_castsi512_ps(sh), 0x80, _mm512_set1_ps(ra[64 + o]));
    }
}

/* o = B^T d over six vectors (F(4x4, 3x3)'s input transform, one dimension). */
static inline __attribute__((always_inline)) void bt6(const __m512 *d, __m512 *o) {
    const __m512 f4 = _mm512_set1_ps(4.0f), f5 = _mm512_set1_ps(5.0f), f2 = _mm512_set1_ps(2.0f);
    const __m512 a = _mm512_fnmadd_ps(f4, d[2], d[4]), b = _mm512_fnmadd_ps(f4, d[1], d[3]);
    const __m512 c = _mm512_sub_ps(d[4], d[2]), e = _mm512_mul_ps(f2, _mm512_sub_ps(d[3], d[1]));
    o[0] = _mm512_fmadd_ps(f4, d[0], _mm512_fnmadd_ps(f5, d[2], d[4]));
    o[1] = _mm512_add_ps(a, b);
    o[2] = _mm512_sub_ps(a, b);
    o[3] = _mm512_add_ps(c, e);
    o[4] = _mm512_sub_ps(c, e);
    o[5] = _mm512_fmadd_ps(f4, d[1], _mm512_fnmadd_ps(f5, d[3], d[5]));
}

/* y = A^T m over six vectors (the output transform, one dimension). */
static inline __attribute__((always_inline)) void at6(const __m512 *m, __m512 *y) {
    const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* V[xi * 4C + cc] = B^T d B of channel cc's tile, d[i][j] = PV[(2i + py) * C + c][2j + px]. */
static void in_transform(const __m512 *PV, int C, __m512 *V) {
    const int CC = 4 * C;
    for (int c = 0; c < C; c++)
#pragma GCC unroll 2
        for (int py = 0; py < 2; py++)
#pragma GCC unroll 2
            for (int px = 0; px < 2; px++) {
                const int cc = 4 * c + 2 * py + px;
                __m512 t[6][6];
#pragma GCC unroll 6
                for (int j = 0; j < 6; j++) {
                    __m512 d[6], o[6];
#pragma GCC unroll 6
                    for (int i = 0; i < 6; i++) d[i] = PV[((2 * i + py) * C + c) * 12 + 2 * j + px];
                    bt6(d, o);
#pragma GCC unroll 6
                    for (int i = 0; i < 6; i++) t[i][j] = o[i];
                }
#pragma GCC unroll 6
                for (int i = 0; i < 6; i++) {
                    __m512 o[6];
                    bt6(t[i], o);
#pragma GCC unroll 6
                    for (int j = 0; j < 6; j++) V[(i * 6 + j) * CC + cc] = o[j];
                }
            }
}

/* M[(k - k0) * 36 + xi] = sum over cc of U[xi][k][cc] V[xi][cc], k in [k0, k0 + kn), kn a
 * multiple of 4: the 4C vectors of V[xi] in registers, four output channels at a time. */
#define DEFINE_GEMM(CCN)                                                                              \
    static void gemm_##CCN(const float *U, int K4, int k0, int kn, const __m512 *V, __m512 *M) {      \
        for (int xi = 0; xi < 36; xi++) {                                                            \
            __m512 v[CCN];                                                                           \
            _Pragma("GCC unroll 16") for (int cc = 0; cc < CCN; cc++) v[cc] = V[xi * CCN + cc];      \
            const float *u = U + ((size_t)xi * K4 + k0) * CCN;                                       \
            for (int k = 0; k < kn; k += 4) {                                                        \
                const float *u0 = u + (size_t)k * CCN;                                               \
                __m512 a0 = _mm512_mul_ps(_mm512_set1_ps(u0[0]), v[0]);                              \
                __m512 a1 = _mm512_mul_ps(_mm512_set1_ps(u0[CCN]), v[0]);                            \
                __m512 a2 = _mm512_mul_ps(_mm512_set1_ps(u0[2 * CCN]), v[0]);                        \
                __m512 a3 = _mm512_mul_ps(_mm512_set1_ps(u0[3 * CCN]), v[0]);                        \
                _Pragma("GCC unroll 16") for (int cc = 1; cc < CCN; cc++) {                          \
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(u0[cc]), v[cc], a0);                         \
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(u0[CCN + cc]), v[cc], a1);                   \
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(u0[2 * CCN + cc]), v[cc], a2);               \
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(u0[3 * CCN + cc]), v[cc], a3);               \
                }                                                                                    \
                M[k * 36 + xi] = a0;                                                                 \
                M[(k + 1) * 36 + xi] = a1;                                                           \
                M[(k + 2) * 36 + xi] = a2;                                                           \
                M[(k + 3) * 36 + xi] = a3;                                                           \
            }                                                                                        \
        }                                                                                            \
    }
DEFINE_GEMM(4)
DEFINE_GEMM(8)
DEFINE_GEMM(12)
DEFINE_GEMM(16)
typedef void (*gemm_fn)(const float *U, int K4, int k0, int kn, const __m512 *V, __m512 *M);
static const gemm_fn gemm_tab[4] = {gemm_4, gemm_8, gemm_12, gemm_16};

/* Channels [k0, k1) of tile rows ty, ty + 1 at block gb: y = A^T M A, the bias (added to
 * M[1][1], which A^T e1 = (1, 1, 1, 1) spreads to all 16 outputs), the tiles' rows
 * interleaved back into image rows, the epilogue, the stores. */
static void out_transform(const __m512 *M, const st_conv2d *c, float *y, const float *bias, const st_epi_op *ops,
                          int n_ops, size_t y_index, int k0, int k1, int ty, int gb) {
    const __m512i i01lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i i01hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i i2lo = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i i2hi = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    const int P = c->P, Q = c->Q, q0 = 32 * gb;
    const __mmask16 mk[2] = {st_lane_mask16(Q - q0), st_lane_mask16(Q - q0 - 16)};
    const int rows = P - 4 * ty < 8 ? P - 4 * ty : 8;
    for (int k = k0; k < k1; k++) {
        const __m512 *m = M + (k - k0) * 36;
        __m512 t[4][6];
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
            __m512 d[6], o[4];
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++) d[i] = m[i * 6 + j];
            if (j == 1 && bias) d[1] = _mm512_add_ps(d[1], _mm512_set1_ps(bias[k]));
            at6(d, o);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) t[i][j] = o[i];
        }
        /* a[2r + v]: output row 4ty + r (r < 4 from tile row ty, r >= 4 from ty + 1),
         * columns q0 + 16v .. q0 + 16v + 15 */
        __m512 a[16];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 o[4];
            at6(t[i], o);
            const __m512 e0 = _mm512_permutex2var_ps(o[0], i01lo, o[1]), e1 = _mm512_permutex2var_ps(o[0], i01hi, o[1]);
            const __m512 f0 = _mm512_permutex2var_ps(o[2], i01lo, o[3]), f1 = _mm512_permutex2var_ps(o[2], i01hi, o[3]);
            a[2 * i] = _mm512_permutex2var_ps(e0, i2lo, f0);
            a[2 * i + 1] = _mm512_permutex2var_ps(e0, i2hi, f0);
            a[8 + 2 * i] = _mm512_permutex2var_ps(e1, i2lo, f1);
            a[9 + 2 * i] = _mm512_permutex2var_ps(e1, i2hi, f1);
        }
        const size_t at = ((size_t)k * P + 4 * ty) * Q + q0;
        st_epi_block16(a, 8, 2, rows, ops, n_ops, y_index + at, (size_t)Q, mk);
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < 2; v++)
                if (mk[v]) _mm512_mask_storeu_ps(y + at + (size_t)Q * r + 16 * v, mk[v], a[2 * r + v]);
    }
}

void st__wino_rows_avx512(const st_conv2d *c, const float *U, int K4, const float *x, float *y, const float *bias,
                          const st_epi_op *ops, int n_ops, size_t y_index, int tp0, int tp1, float *scratch) {
    const int C = c->C, CC = 4 * C, H = c->H, W = c->W, K = c->K;
    const int NB = st__wino_blocks(c->Q);
    float *rows = scratch;                                             /* [20][C][NB][80] */
    __m512 *PV = (__m512 *)(scratch + st__wino_rows_floats(C, c->Q));  /* [12][C][12] */
    __m512 *V = PV + 12 * C * 12;                                      /* [36][CC] */
    __m512 *M = V + 36 * CC;                                           /* [WG_KC][36] */
    for (int tp = tp0; tp < tp1; tp++) {
        const int ty = 2 * tp;
        /* rows 8ty - pad_h + rr (rr < 20) of each channel, columns 64gb - pad_w + [0, 80)
         * of every block gb, row by row. The input comes from memory: this copy is ~10% of
         * yolov5n's stem on one thread, and neither reading the blocks in place nor
         * prefetching the next pair's rows took that off (README, session 29). */
        for (int rr = 0; rr < 20; rr++) {
            const int r = 8 * ty + rr - c->pad_h;
            for (int ch = 0; ch < C; ch++) {
                const float *src = x + ((size_t)ch * H + (r < 0 ? 0 : r >= H ? H - 1 : r)) * W;
                for (int gb = 0; gb < NB; gb++) {
                    float *dst = rows + ((rr * C + ch) * NB + gb) * 80;
                    for (int m = 0; m < 5; m++) {
                        const int b0 = 64 * gb - c->pad_w + 16 * m, lo = b0 < 0 ? -b0 : 0, hi = W - b0;
                        __mmask16 k = r >= 0 && r < H && hi > lo ? st_lane_mask16(hi) & (__mmask16)~st_lane_mask16(lo) : 0;
                        _mm512_storeu_ps(dst + 16 * m, _mm512_maskz_loadu_ps(k, src + b0));
                    }
                }
            }
        }
        for (int gb = 0; gb < NB; gb++) {
            for (int rr = 0; rr < 12; rr++)
                for (int ch = 0; ch < C; ch++)
                    phase_vectors2(rows + ((rr * C + ch) * NB + gb) * 80, rows + (((rr + 8) * C + ch) * NB + gb) * 80,
                                   PV + (rr * C + ch) * 12);
            in_transform(PV, C, V);
            for (int k0 = 0; k0 < K; k0 += WG_KC) {
                const int kn = K4 - k0 < WG_KC ? K4 - k0 : WG_KC;
                gemm_tab[C - 1](U, K4, k0, kn, V, M);
                out_transform(M, c, y, bias, ops, n_ops, y_index, k0, k0 + kn < K ? k0 + kn : K, ty, gb);
            }
        }
    }
}
