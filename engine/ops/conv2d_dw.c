/* Depthwise conv2d (groups == C == K): a direct kernel. Each channel has a single R x S
 * filter, so im2col would copy R*S times the input to feed a gemm of height 1.
 *
 * Loops run over output rows and, per tap, over the contiguous range of output columns
 * whose input column is inside the image, so the inner loop has no bounds checks. */
#include <string.h>

#include "conv2d_internal.h"
#include "st_common.h"

/* Weight-gradient accumulators per pass; covers kernels up to 8x8 in one pass. */
#define DW_TAP_BLOCK 64

void st__conv2d_dw_forward(const st_conv2d *c, float *y, const float *x, const float *w,
                           const float *b) {
    const int N = c->N, C = c->C, H = c->H, W = c->W, R = c->R, S = c->S, P = c->P, Q = c->Q;
    const int sh = c->stride_h, sw = c->stride_w;
    const size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * PQ * R * S > 32768)
    for (int n = 0; n < N; n++) {
        for (int ch = 0; ch < C; ch++) {
            const float *xp = x + ((size_t)n * C + ch) * HW;
            float *yp = y + ((size_t)n * C + ch) * PQ;
            const float *wc = w + (size_t)ch * R * S;
            const float bias = b ? b[ch] : 0.0f;
            for (size_t i = 0; i < PQ; i++) yp[i] = bias;
            for (int p = 0; p < P; p++) {
                float *yr = yp + (size_t)p * Q;
                for (int r = 0; r < R; r++) {
                    int ih = p * sh + r * c->dil_h - c->pad_h;
                    if (ih < 0 || ih >= H) continue;
                    for (int s = 0; s < S; s++) {
                        int iw0 = s * c->dil_w - c->pad_w, qlo, qhi;
                        st__valid_range(Q, sw, iw0, W, &qlo, &qhi);
                        const float *xr = xp + (size_t)ih * W;
                        const float wv = wc[r * S + s];
                        if (sw == 1) {
                            /* Forced: -O2's cost model will not vectorise this by itself. */
#pragma omp simd
                            for (int q = qlo; q < qhi; q++) yr[q] += wv * xr[q + iw0];
                        } else {
                            for (int q = qlo; q < qhi; q++) yr[q] += wv * xr[q * sw + iw0];
                        }
                    }
                }
            }
        }
    }
}

void st__conv2d_dw_backward(const st_conv2d *c, float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *w) {
    const int N = c->N, C = c->C, H = c->H, W = c->W, R = c->R, S = c->S, P = c->P, Q = c->Q;
    const int sh = c->stride_h, sw = c->stride_w;
    const size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
    const size_t work = (size_t)N * C * PQ * R * S;

    /* Parameter gradients sum over the batch, so a channel's sums belong to one thread:
     * parallel over channels only, batch in a fixed order inside. */
    if (dw || db) {
#pragma omp parallel for schedule(static) if (work > 32768)
        for (int ch = 0; ch < C; ch++) {
            if (db) {
                double acc = 0.0;
                for (int n = 0; n < N; n++) {
                    const float *d = dy + ((size_t)n * C + ch) * PQ;
                    for (size_t i = 0; i < PQ; i++) acc += d[i];
                }
                db[ch] += (float)acc;
            }
            if (!dw) continue;
            /* Sample-major so each (x, dy) plane pair is read while it is in cache, with
             * the taps' sums kept in a small block of accumulators. */
            for (int t0 = 0; t0 < R * S; t0 += DW_TAP_BLOCK) {
                const int t1 = ST_MIN(t0 + DW_TAP_BLOCK, R * S);
                double acc[DW_TAP_BLOCK] = {0};
                for (int n = 0; n < N; n++) {
                    const float *xp = x + ((size_t)n * C + ch) * HW;
                    const float *dp = dy + ((size_t)n * C + ch) * PQ;
                    for (int t = t0; t < t1; t++) {
                        const int r = t / S, s = t % S;
                        int iw0 = s * c->dil_w - c->pad_w, qlo, qhi;
                        st__valid_range(Q, sw, iw0, W, &qlo, &qhi);
                        for (int p = 0; p < P; p++) {
                            int ih = p * sh + r * c->dil_h - c->pad_h;
                            if (ih < 0 || ih >= H) continue;
                            const float *xr = xp + (size_t)ih * W;
                            const float *dr = dp + (size_t)p * Q;
                            float row = 0.0f;
                            /* Lane-wise partial sums: a fixed order, still deterministic. */
#pragma omp simd reduction(+ : row)
                            for (int q = qlo; q < qhi; q++) row += dr[q] * xr[q * sw + iw0];
                            acc[t - t0] += row;
                        }
                    }
                }
                for (int t = t0; t < t1; t++) dw[(size_t)ch * R * S + t] += (float)acc[t - t0];
            }
        }
    }

    if (!dx) return;
    /* Each (sample, channel) plane of dx is written by exactly one thread. */
#pragma omp parallel for collapse(2) schedule(static) if (work > 32768)
    for (int n = 0; n < N; n++) {
        for (int ch = 0; ch < C; ch++) {
            float *dxp = dx + ((size_t)n * C + ch) * HW;
            const float *dp = dy + ((size_t)n * C + ch) * PQ;
            const float *wc = w + (size_t)ch * R * S;
            for (int p = 0; p < P; p++) {
                const float *dr = dp + (size_t)p * Q;
                for (int r = 0; r < R; r++) {
                    int ih = p * sh + r * c->dil_h - c->pad_h;
                    if (ih < 0 || ih >= H) continue;
                    for (int s = 0; s < S; s++) {
                        int iw0 = s * c->dil_w - c->pad_w, qlo, qhi;
                        st__valid_range(Q, sw, iw0, W, &qlo, &qhi);
                        float *xr = dxp + (size_t)ih * W;
                        const float wv = wc[r * S + s];
#pragma omp simd
                        for (int q = qlo; q < qhi; q++) xr[q * sw + iw0] += wv * dr[q];
                    }
                }
            }
        }
    }
}
