/* Per-ISA row kernels of the fused BatchNorm+activation (internal). */
#ifndef ST_ACT_KERNELS_H
#define ST_ACT_KERNELS_H

#include <stddef.h>

/* y[i] = z * sigmoid(z), s[i] = sigmoid(z) (s may be NULL), z = (x[i] - mf) * scale + shift */
typedef void (*st_bn_silu_row_fn)(float *y, float *s, const float *x, size_t n, float mf,
                                  float scale, float shift);
void st_bn_silu_row_scalar(float *y, float *s, const float *x, size_t n, float mf, float scale,
                           float shift);
void st_bn_silu_row_avx2(float *y, float *s, const float *x, size_t n, float mf, float scale,
                         float shift);
void st_bn_silu_row_avx512(float *y, float *s, const float *x, size_t n, float mf, float scale,
                           float shift);
/* The variant for the ISA st_cpu_select_isa() picks (ST_ISA=scalar forces libm's expf). */
st_bn_silu_row_fn st_bn_silu_row(void);

#endif
