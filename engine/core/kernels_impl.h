/* Scalar kernels shared by the SIMD files for their tails. Internal header. */
#ifndef ST_KERNELS_IMPL_H
#define ST_KERNELS_IMPL_H

#include <stddef.h>

void st_axpy_scalar(float *y, float a, const float *x, size_t n);
void st_sgd_scalar(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                   float wd, int nesterov, int first);
void st_adamw_scalar(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                     float b2, float eps, float wd, float bc1, float bc2);
void st_apply_mask_scalar(float *p, const unsigned char *mask, size_t n);
void st_max_rows_scalar(float *dst, const float *const *rows, int nr, size_t n);
void st_deint2_scalar(float *d0, float *d1, const float *src, size_t n);
/* The definition of st_kernels.max3s2, for tests (no ISA table points at it). */
void st_max3s2_scalar(float *y, const float *const *rows, int nr, int W, int off, size_t Q);

#endif
