/* Pieces shared by the conv2d fast path (conv2d.c) and its depthwise kernel
 * (conv2d_dw.c). Not part of the public op API. */
#ifndef ST_CONV2D_INTERNAL_H
#define ST_CONV2D_INTERNAL_H

#include "st_ops.h"

/* Output positions o in [*lo, *hi) for which o * stride + off lands inside [0, n_in):
 * lets the inner loops run without per-element bounds checks. */
static inline void st__valid_range(int n_out, int stride, int off, int n_in, int *lo, int *hi) {
    int l = 0, h = 0;
    if (off < 0) l = (-off + stride - 1) / stride;
    if (n_in - 1 - off >= 0) h = (n_in - 1 - off) / stride + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* groups == C == K: one filter per channel, where im2col + gemm would be all overhead. */
static inline int st__conv2d_is_depthwise(const st_conv2d *c) {
    return c->groups == c->C && c->K == c->C;
}

void st__conv2d_dw_forward(const st_conv2d *c, float *y, const float *x, const float *w,
                           const float *b);
void st__conv2d_dw_backward(const st_conv2d *c, float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *w);

#endif
