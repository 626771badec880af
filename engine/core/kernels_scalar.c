/* Portable reference versions of the elementwise kernels; the SIMD files must agree
 * with these (tests/test_kernels.c). */
#include <math.h>

#include "kernels_impl.h"
#include "st_cpu.h"

void st_axpy_scalar(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void st_sgd_scalar(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                   float wd, int nesterov, int first) {
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        if (momentum != 0.0f) {
            float b = first ? d : momentum * buf[i] + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}

void st_adamw_scalar(float *p, const float *g, float *m, float *v, size_t n, float lr,
                     float b1, float b2, float eps, float wd, float bc1, float bc2) {
    float sbc2 = sqrtf(bc2);
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1.0f - lr * wd;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= (lr / bc1) * m[i] / (sqrtf(v[i]) / sbc2 + eps);
    }
}

void st_apply_mask_scalar(float *p, const unsigned char *mask, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!mask[i]) p[i] = 0.0f;
}

void st_max_rows_scalar(float *dst, const float *const *rows, int nr, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float a = rows[0][i];
        for (int r = 1; r < nr; r++) a = st_max_nan(a, rows[r][i]);
        dst[i] = a;
    }
}

void st_deint2_scalar(float *d0, float *d1, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) d0[i] = src[2 * i], d1[i] = src[2 * i + 1];
}

void st_max3s2_scalar(float *y, const float *const *rows, int nr, int W, int off, size_t Q) {
    for (size_t j = 0; j < Q; j++) {
        float a = -INFINITY;
        for (int r = 0; r < nr; r++)
            for (long c = 2 * (long)j + off; c < 2 * (long)j + off + 3; c++)
                if (c >= 0 && c < W) a = st_max_nan(a, rows[r][c]);
        y[j] = a;
    }
}

void st_kernels_scalar(st_kernels *k) {
    k->isa = ST_ISA_SCALAR;
    k->axpy = st_axpy_scalar;
    k->sgd = st_sgd_scalar;
    k->adamw = st_adamw_scalar;
    k->apply_mask = st_apply_mask_scalar;
    k->max_rows = st_max_rows_scalar;
    k->deint2 = st_deint2_scalar;
    k->max3s2 = NULL;
    k->maxs1_narrow = NULL;
}
