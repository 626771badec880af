/* Conv2d fast path: im2col + OpenBLAS sgemm.
 *
 * Several samples share one col buffer [C/g*R*S, nb*P*Q], so late layers with small
 * P*Q still give sgemm a wide matrix; nb is the fewest samples that reach a target gemm
 * width, capped so col + staging stay within a fixed budget. With a single image the
 * gemm writes straight into y / reads dy in place (its [K/g, P*Q] block is contiguous),
 * so the staging buffer is skipped. Depthwise convolutions go to a direct kernel
 * (conv2d_dw.c).
 *
 * The copy loops use OpenMP and sgemm uses OpenBLAS's own pthreads. With libgomp's
 * default active wait the idle OpenMP workers spin while OpenBLAS runs and can halve
 * throughput on few cores; front ends should run with OMP_WAIT_POLICY=passive.
 *
 * Determinism: every output element is written by one thread in a fixed order; weight
 * gradients accumulate chunk by chunk through sgemm with beta = 1. */
#include <string.h>

/* Before cblas.h: its <complex.h> defines I, a parameter name in st_ops.h. */
#include "conv2d_internal.h"
#include "st_common.h"
#include "st_ops.h"

#include <cblas.h>

/* 4M floats (16 MiB) of col + staging: large enough that small late-layer images batch
 * up, small enough not to matter next to activations. */
#define ST_CONV_SCRATCH_BUDGET ((size_t)1 << 22)

/* Output columns (samples x P*Q) one sgemm should get before batching stops paying. */
#ifndef ST_CONV_GEMM_WIDTH
#define ST_CONV_GEMM_WIDTH 2048
#endif

/* Below this many floats of work a parallel region costs more than it saves. */
#define ST_CONV_OMP_MIN 32768

typedef struct {
    int Cg, Kg, RS, rows; /* rows = C/g * R * S: the gemm inner dimension */
    size_t HW, PQ;
    int pointwise;        /* 1x1, stride 1, pad 0: for one sample, col is x itself */
} geom;

static geom make_geom(const st_conv2d *c) {
    geom g;
    g.Cg = c->C / c->groups;
    g.Kg = c->K / c->groups;
    g.RS = c->R * c->S;
    g.rows = g.Cg * g.RS;
    g.HW = (size_t)c->H * c->W;
    g.PQ = (size_t)c->P * c->Q;
    g.pointwise = c->R == 1 && c->S == 1 && c->stride_h == 1 && c->stride_w == 1 &&
                  c->pad_h == 0 && c->pad_w == 0;
    return g;
}

/* Output length along one axis, or -1 when the dilated kernel does not fit. */
static int out_size(int in, int pad, int k, int dil, int stride) {
    long span = (long)dil * (k - 1) + 1;
    long num = (long)in + 2L * pad - span;
    if (num < 0) return -1;
    return (int)(num / stride + 1);
}

int st_conv2d_init(st_conv2d *c) {
    if (!c) return -1;
    if (c->N < 1 || c->C < 1 || c->H < 1 || c->W < 1 || c->K < 1 || c->R < 1 || c->S < 1)
        return -1;
    if (c->stride_h < 1 || c->stride_w < 1 || c->dil_h < 1 || c->dil_w < 1 || c->pad_h < 0 ||
        c->pad_w < 0 || c->groups < 1 || c->C % c->groups != 0 || c->K % c->groups != 0)
        return -1;
    int P = out_size(c->H, c->pad_h, c->R, c->dil_h, c->stride_h);
    int Q = out_size(c->W, c->pad_w, c->S, c->dil_w, c->stride_w);
    if (P < 1 || Q < 1) return -1;
    c->P = P;
    c->Q = Q;
    return 0;
}

int st_conv2d_batch_chunk(const st_conv2d *c) {
    if (st__conv2d_is_depthwise(c)) return c->N;
    geom g = make_geom(c);
    /* Only as many samples as it takes to make the gemm wide enough: packing more costs
     * copies and cache for no gain, and a single image skips staging altogether. */
    size_t nb = (ST_CONV_GEMM_WIDTH + g.PQ - 1) / g.PQ;
    size_t per = ((size_t)g.rows + (size_t)g.Kg) * g.PQ;
    if (nb > ST_CONV_SCRATCH_BUDGET / per) nb = ST_CONV_SCRATCH_BUDGET / per;
    if (nb < 1) nb = 1;
    if (nb > (size_t)c->N) nb = (size_t)c->N;
    return (int)nb;
}

/* Layout of scratch: col [rows, nb*PQ] then staging [Kg, nb*PQ]. */
static size_t col_floats(const st_conv2d *c, const geom *g, int nb) {
    if (g->pointwise && nb == 1) return 0;
    return (size_t)g->rows * nb * g->PQ;
}

size_t st_conv2d_scratch_floats(const st_conv2d *c) {
    if (st__conv2d_is_depthwise(c)) return 0;
    geom g = make_geom(c);
    int nb = st_conv2d_batch_chunk(c);
    size_t stage = nb == 1 ? 0 : (size_t)g.Kg * nb * g.PQ;
    return col_floats(c, &g, nb) + stage;
}

/* col[row][j*PQ + p*Q + q] = x[n0+j, grp*Cg + ci, p*sh - ph + r*dh, q*sw - pw + s*dw],
 * zero where the tap falls in the padding. */
static void im2col(const st_conv2d *c, const geom *g, float *col, const float *x, int n0,
                   int nbc, int grp) {
    const int P = c->P, Q = c->Q, H = c->H, W = c->W, R = c->R, S = c->S;
    const int sh = c->stride_h, sw = c->stride_w;
    const size_t cols = (size_t)nbc * g->PQ;
    const int rows = g->rows;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * cols > ST_CONV_OMP_MIN)
    for (int row = 0; row < rows; row++) {
        for (int j = 0; j < nbc; j++) {
            int ci = row / g->RS, r = (row / S) % R, s = row % S;
            const float *xp = x + ((size_t)(n0 + j) * c->C + (size_t)grp * g->Cg + ci) * g->HW;
            float *dst = col + (size_t)row * cols + (size_t)j * g->PQ;
            int ih0 = r * c->dil_h - c->pad_h, iw0 = s * c->dil_w - c->pad_w;
            int qlo, qhi;
            st__valid_range(Q, sw, iw0, W, &qlo, &qhi);
            for (int p = 0; p < P; p++) {
                float *d = dst + (size_t)p * Q;
                int ih = p * sh + ih0;
                if (ih < 0 || ih >= H || qlo >= qhi) {
                    memset(d, 0, sizeof(float) * Q);
                    continue;
                }
                const float *xr = xp + (size_t)ih * W;
                for (int q = 0; q < qlo; q++) d[q] = 0.0f;
                if (sw == 1) {
                    memcpy(d + qlo, xr + qlo + iw0, sizeof(float) * (qhi - qlo));
                } else {
                    for (int q = qlo; q < qhi; q++) d[q] = xr[q * sw + iw0];
                }
                for (int q = qhi; q < Q; q++) d[q] = 0.0f;
            }
        }
    }
}

/* Inverse of im2col: dx += every col tap routed back to its input pixel. Each thread owns
 * whole (sample, channel) planes of dx, so there are no write races. */
static void col2im_add(const st_conv2d *c, const geom *g, float *dx, const float *col, int n0,
                       int nbc, int grp) {
    const int P = c->P, Q = c->Q, H = c->H, W = c->W, R = c->R, S = c->S;
    const int sh = c->stride_h, sw = c->stride_w, Cg = g->Cg;
    const size_t cols = (size_t)nbc * g->PQ;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->rows * cols > ST_CONV_OMP_MIN)
    for (int j = 0; j < nbc; j++) {
        for (int ci = 0; ci < Cg; ci++) {
            float *dxp = dx + ((size_t)(n0 + j) * c->C + (size_t)grp * Cg + ci) * g->HW;
            for (int r = 0; r < R; r++) {
                int ih0 = r * c->dil_h - c->pad_h;
                for (int s = 0; s < S; s++) {
                    int iw0 = s * c->dil_w - c->pad_w;
                    int qlo, qhi;
                    st__valid_range(Q, sw, iw0, W, &qlo, &qhi);
                    const float *src =
                        col + (size_t)((ci * R + r) * S + s) * cols + (size_t)j * g->PQ;
                    for (int p = 0; p < P; p++) {
                        int ih = p * sh + ih0;
                        if (ih < 0 || ih >= H) continue;
                        float *dr = dxp + (size_t)ih * W;
                        const float *sr = src + (size_t)p * Q;
                        for (int q = qlo; q < qhi; q++) dr[q * sw + iw0] += sr[q];
                    }
                }
            }
        }
    }
}

void st_conv2d_forward(const st_conv2d *c, float *y, const float *x, const float *w,
                       const float *b, float *scratch) {
    if (st__conv2d_is_depthwise(c)) {
        st__conv2d_dw_forward(c, y, x, w, b);
        return;
    }
    const geom g = make_geom(c);
    const int nb = st_conv2d_batch_chunk(c);
    float *col = scratch;
    float *stage = scratch ? scratch + col_floats(c, &g, nb) : NULL;
    const int Kg = g.Kg, rows = g.rows;
    const size_t PQ = g.PQ;

    for (int n0 = 0; n0 < c->N; n0 += nb) {
        const int nbc = ST_MIN(nb, c->N - n0);
        const size_t cols = (size_t)nbc * PQ;
        for (int grp = 0; grp < c->groups; grp++) {
            const float *B;
            int ldb;
            if (g.pointwise && nbc == 1) {
                B = x + ((size_t)n0 * c->C + (size_t)grp * g.Cg) * g.HW;
                ldb = (int)g.HW;
            } else {
                im2col(c, &g, col, x, n0, nbc, grp);
                B = col;
                ldb = (int)cols;
            }
            const float *wg = w + (size_t)grp * Kg * rows;
            const float *bg = b ? b + (size_t)grp * Kg : NULL;
            if (nbc == 1) {
                float *yo = y + ((size_t)n0 * c->K + (size_t)grp * Kg) * PQ;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Kg, (int)PQ, rows, 1.0f,
                            wg, rows, B, ldb, 0.0f, yo, (int)PQ);
                if (bg) {
                    for (int k = 0; k < Kg; k++)
                        for (size_t i = 0; i < PQ; i++) yo[(size_t)k * PQ + i] += bg[k];
                }
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Kg, (int)cols, rows, 1.0f, wg,
                        rows, B, ldb, 0.0f, stage, (int)cols);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)Kg * cols > ST_CONV_OMP_MIN)
            for (int j = 0; j < nbc; j++) {
                for (int k = 0; k < Kg; k++) {
                    float *yo = y + ((size_t)(n0 + j) * c->K + (size_t)grp * Kg + k) * PQ;
                    const float *so = stage + (size_t)k * cols + (size_t)j * PQ;
                    float bias = bg ? bg[k] : 0.0f;
                    for (size_t i = 0; i < PQ; i++) yo[i] = so[i] + bias;
                }
            }
        }
    }
}

/* db[k] += sum over n, p, q of dy, in double, one thread per output channel. */
static void bias_grad(const st_conv2d *c, float *db, const float *dy) {
    const size_t PQ = (size_t)c->P * c->Q;
    const int K = c->K, N = c->N;
#pragma omp parallel for schedule(static) if ((size_t)N * K * PQ > ST_CONV_OMP_MIN)
    for (int k = 0; k < K; k++) {
        double acc = 0.0;
        for (int n = 0; n < N; n++) {
            const float *d = dy + ((size_t)n * K + k) * PQ;
            for (size_t i = 0; i < PQ; i++) acc += d[i];
        }
        db[k] += (float)acc;
    }
}

void st_conv2d_backward(const st_conv2d *c, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, float *scratch) {
    if (st__conv2d_is_depthwise(c)) {
        st__conv2d_dw_backward(c, dx, dw, db, dy, x, w);
        return;
    }
    if (db) bias_grad(c, db, dy);
    if (!dx && !dw) return;
    const geom g = make_geom(c);
    const int nb = st_conv2d_batch_chunk(c);
    float *col = scratch;
    float *stage = scratch ? scratch + col_floats(c, &g, nb) : NULL;
    const int Kg = g.Kg, rows = g.rows;
    const size_t PQ = g.PQ;

    for (int n0 = 0; n0 < c->N; n0 += nb) {
        const int nbc = ST_MIN(nb, c->N - n0);
        const size_t cols = (size_t)nbc * PQ;
        for (int grp = 0; grp < c->groups; grp++) {
            const float *D;
            int ldd;
            if (nbc == 1) {
                D = dy + ((size_t)n0 * c->K + (size_t)grp * Kg) * PQ;
                ldd = (int)PQ;
            } else {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)Kg * cols > ST_CONV_OMP_MIN)
                for (int k = 0; k < Kg; k++) {
                    for (int j = 0; j < nbc; j++) {
                        memcpy(stage + (size_t)k * cols + (size_t)j * PQ,
                               dy + ((size_t)(n0 + j) * c->K + (size_t)grp * Kg + k) * PQ,
                               sizeof(float) * PQ);
                    }
                }
                D = stage;
                ldd = (int)cols;
            }
            const float *wg = w + (size_t)grp * Kg * rows;
            const int direct = g.pointwise && nbc == 1;
            if (dw) {
                const float *B;
                int ldb;
                if (direct) {
                    B = x + ((size_t)n0 * c->C + (size_t)grp * g.Cg) * g.HW;
                    ldb = (int)g.HW;
                } else {
                    im2col(c, &g, col, x, n0, nbc, grp);
                    B = col;
                    ldb = (int)cols;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Kg, rows, (int)cols, 1.0f,
                            D, ldd, B, ldb, 1.0f, dw + (size_t)grp * Kg * rows, rows);
            }
            if (dx) {
                if (direct) {
                    /* col == x here, so dcol is dx itself: accumulate in place. */
                    float *dxo = dx + ((size_t)n0 * c->C + (size_t)grp * g.Cg) * g.HW;
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, (int)PQ, Kg, 1.0f,
                                wg, rows, D, ldd, 1.0f, dxo, (int)g.HW);
                } else {
                    /* col is free again once dw has consumed it. */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, (int)cols, Kg,
                                1.0f, wg, rows, D, ldd, 0.0f, col, (int)cols);
                    col2im_add(c, &g, dx, col, n0, nbc, grp);
                }
            }
        }
    }
}
