/* Reference conv2d: direct loops in double, no BLAS, no threads. The backward pass is
 * written as a gather (each gradient element sums its own contributions) so it shares
 * no structure with the fast path's im2col / col2im scatter. */
#include "st_ops.h"

void st_conv2d_forward_ref(const st_conv2d *c, float *y, const float *x, const float *w,
                           const float *b) {
    const int Cg = c->C / c->groups, Kg = c->K / c->groups;
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++) {
            const int g = k / Kg;
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    double acc = b ? b[k] : 0.0;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int r = 0; r < c->R; r++) {
                            int ih = p * c->stride_h - c->pad_h + r * c->dil_h;
                            if (ih < 0 || ih >= c->H) continue;
                            for (int s = 0; s < c->S; s++) {
                                int iw = q * c->stride_w - c->pad_w + s * c->dil_w;
                                if (iw < 0 || iw >= c->W) continue;
                                double xv =
                                    x[(((size_t)n * c->C + g * Cg + ci) * c->H + ih) * c->W + iw];
                                double wv = w[(((size_t)k * Cg + ci) * c->R + r) * c->S + s];
                                acc += xv * wv;
                            }
                        }
                    y[(((size_t)n * c->K + k) * c->P + p) * c->Q + q] = (float)acc;
                }
        }
}

/* The output index o whose tap k lands on input i, or -1: o*stride - pad + k*dil == i. */
static int tap_out(int i, int k, int stride, int pad, int dil, int n_out) {
    int t = i + pad - k * dil;
    if (t < 0 || t % stride != 0) return -1;
    t /= stride;
    return t < n_out ? t : -1;
}

void st_conv2d_backward_ref(const st_conv2d *c, float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w) {
    const int Cg = c->C / c->groups, Kg = c->K / c->groups;
    const size_t PQ = (size_t)c->P * c->Q;
    if (db) {
        for (int k = 0; k < c->K; k++) {
            double acc = 0.0;
            for (int n = 0; n < c->N; n++)
                for (size_t i = 0; i < PQ; i++) acc += dy[((size_t)n * c->K + k) * PQ + i];
            db[k] += (float)acc;
        }
    }
    if (dw) {
        for (int k = 0; k < c->K; k++) {
            const int g = k / Kg;
            for (int ci = 0; ci < Cg; ci++)
                for (int r = 0; r < c->R; r++)
                    for (int s = 0; s < c->S; s++) {
                        double acc = 0.0;
                        for (int n = 0; n < c->N; n++)
                            for (int p = 0; p < c->P; p++) {
                                int ih = p * c->stride_h - c->pad_h + r * c->dil_h;
                                if (ih < 0 || ih >= c->H) continue;
                                for (int q = 0; q < c->Q; q++) {
                                    int iw = q * c->stride_w - c->pad_w + s * c->dil_w;
                                    if (iw < 0 || iw >= c->W) continue;
                                    acc += (double)dy[((size_t)n * c->K + k) * PQ +
                                                      (size_t)p * c->Q + q] *
                                           x[(((size_t)n * c->C + g * Cg + ci) * c->H + ih) *
                                                 c->W +
                                             iw];
                                }
                            }
                        dw[(((size_t)k * Cg + ci) * c->R + r) * c->S + s] += (float)acc;
                    }
        }
    }
    if (dx) {
        for (int n = 0; n < c->N; n++)
            for (int ch = 0; ch < c->C; ch++) {
                const int g = ch / Cg, ci = ch % Cg;
                for (int h = 0; h < c->H; h++)
                    for (int wi = 0; wi < c->W; wi++) {
                        double acc = 0.0;
                        for (int r = 0; r < c->R; r++) {
                            int p = tap_out(h, r, c->stride_h, c->pad_h, c->dil_h, c->P);
                            if (p < 0) continue;
                            for (int s = 0; s < c->S; s++) {
                                int q = tap_out(wi, s, c->stride_w, c->pad_w, c->dil_w, c->Q);
                                if (q < 0) continue;
                                for (int k = g * Kg; k < (g + 1) * Kg; k++)
                                    acc += (double)w[(((size_t)k * Cg + ci) * c->R + r) * c->S +
                                                     s] *
                                           dy[((size_t)n * c->K + k) * PQ + (size_t)p * c->Q + q];
                            }
                        }
                        dx[(((size_t)n * c->C + ch) * c->H + h) * c->W + wi] += (float)acc;
                    }
            }
    }
}
