/* The Winograd stem (st_dense.h): which convolutions, the weight transform, the split of
 * an image's tile rows among the parts. The kernel is dense_wino_avx512.c.
 *
 * Why. yolov5's first convolution (6x6, stride 2, over RGB) is a quarter to a third of a
 * 90-95%-pruned yolov5n's time, and its recipes keep it at 50% zeros or less. Its sparse
 * form is bound by the loads of its FMAs (1.2 cycles per FMA on Zen 4) and pays for tap
 * planes 3x its input; the packed dense kernels run it at ~105 GFLOP/s a core. As a 3x3
 * convolution over the 12-channel space-to-depth input, F(4x4, 3x3) needs 36 x 12
 * multiply-adds per 4x4 tile and output channel, against 16 x 108 dense and 16 x 54 at
 * 50% zeros: a quarter of dense, half of the sparse form, plus transforms. Against
 * double precision the outputs differ by ~3e-6 (inputs in [0, 1], 50%-pruned weights;
 * tests/test_dense_wino.c bounds it). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_dense.h"

int st__wino_ok(const st_conv2d *c) {
    return c->groups == 1 && c->C >= 1 && c->C <= 4 && c->R == 6 && c->S == 6 && c->stride_h == 2 &&
           c->stride_w == 2 && c->dil_h == 1 && c->dil_w == 1 && c->pad_h >= 0 && c->pad_h <= 5 &&
           c->pad_w >= 0 && c->pad_w <= 5 && c->P > 0 && c->Q > 0 && st_cpu_select_isa() >= ST_ISA_AVX512 &&
           !getenv("ST_DENSE_NO_WINO");
}

/* yolov5n's stem (3 -> 16 channels, 320x320) in the engine, step times: one thread, the
 * packed kernels 1.00-1.08 ms, this form 0.59-0.66 ms (1.6-1.7x; the unstructured
 * sparse form at 50% zeros, 0.72-0.77 ms, is modelled at 1.02x the packed time); two
 * threads (dense yolov5n) 0.525 against 0.352 ms (1.49x). */
double st_dense_conv_gain(const st_conv2d *c) { return st__wino_ok(c) ? 1.5 : 1.0; }

/* 20 rows of 80-float blocks: multiples of 16 floats, as the vectors after them need */
size_t st__wino_rows_floats(int C, int Q) { return (size_t)20 * C * st__wino_blocks(Q) * 80; }

size_t st__wino_part_floats(const st_conv2d *c) {
    const size_t C = (size_t)c->C;
    return st__wino_rows_floats(c->C, c->Q) + 16 * (12 * C * 12 + 36 * 4 * C + 16 * 36);
}

st_status st__wino_pack(st_dense_conv *d, const st_conv2d *c, const float *w, st_error *err) {
    static const double G[6][3] = {{1.0 / 4, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    const int K = c->K, C = c->C, CC = 4 * C, K4 = (K + 3) / 4 * 4;
    d->wg = st_alloc((size_t)36 * K4 * CC * sizeof(float));
    if (!d->wg) return st_errorf(err, ST_ERR_NOMEM, "out of memory packing a %dx%d convolution", K, C * 36);
    memset(d->wg, 0, (size_t)36 * K4 * CC * sizeof(float));
    d->wg_K4 = K4;
    /* channel (c, py, px) of the space-to-depth form has the 3x3 kernel g[i][j] =
     * w[k][c][2i + py][2j + px]; U = G g G^T, stored [xi][k][cc] for the GEMM */
    for (int k = 0; k < K; k++)
        for (int ch = 0; ch < C; ch++)
            for (int py = 0; py < 2; py++)
                for (int px = 0; px < 2; px++) {
                    double g[3][3], t[6][3];
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) g[i][j] = w[(((size_t)k * C + ch) * 6 + 2 * i + py) * 6 + 2 * j + px];
                    for (int a = 0; a < 6; a++)
                        for (int j = 0; j < 3; j++) t[a][j] = G[a][0] * g[0][j] + G[a][1] * g[1][j] + G[a][2] * g[2][j];
                    for (int a = 0; a < 6; a++)
                        for (int b = 0; b < 6; b++)
                            d->wg[((size_t)(a * 6 + b) * K4 + k) * CC + 4 * ch + 2 * py + px] =
                                (float)(t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2]);
                }
    return ST_OK;
}

/* Part p of np: a share of the (image, pair of tile rows) units, in order. */
void st__wino_part(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x, const float *bias,
                   const st_epi_op *ops, int n_ops, float *scratch, int p, int np) {
    const int TP = ((c->P + 3) / 4 + 1) / 2; /* pairs of tile rows per image */
    const long units = (long)c->N * TP, u0 = units * p / np, u1 = units * (p + 1) / np;
    const size_t in_img = (size_t)c->C * c->H * c->W, out_img = (size_t)c->K * c->P * c->Q;
    /* the kernel's vectors are 64-byte aligned; the callers' scratch need not be */
    float *scr = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63) + (size_t)p * st__wino_part_floats(c);
    for (long u = u0; u < u1;) {
        const int n = (int)(u / TP), tp0 = (int)(u % TP);
        const int tp1 = u1 - (long)n * TP < TP ? (int)(u1 - (long)n * TP) : TP;
        st__wino_rows_avx512(c, d->wg, d->wg_K4, x + n * in_img, y + n * out_img, bias, ops, n_ops,
                             n * out_img, tp0, tp1, scr);
        u += tp1 - tp0;
    }
}

void st__wino_forward(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x, const float *bias,
                      const st_epi_op *ops, int n_ops, float *scratch) {
    if (omp_in_parallel()) {
        st__wino_part(d, c, y, x, bias, ops, n_ops, scratch, 0, 1);
        return;
    }
#pragma omp parallel
    st__wino_part(d, c, y, x, bias, ops, n_ops, scratch, omp_get_thread_num(), omp_get_num_threads());
}
