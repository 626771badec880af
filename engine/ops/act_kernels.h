/* Per-ISA row kernels of the fused BatchNorm+activation and of inference epilogues
 * (internal). */
#ifndef ST_ACT_KERNELS_H
#define ST_ACT_KERNELS_H

#include <stddef.h>

#include "st_cpu.h"

/* exp(t) ~ 1 + t*(C1 + t*(C2 + t*(C3 + t*(C4 + t*C5)))) on [-ln2/2, ln2/2]: a fit for the
 * least maximum relative error (1.6e-7 in float), used by the epilogues' SiLU / Sigmoid
 * after one Cody-Waite step. */
#define ST_EXP5_C1 0x1.fffff4p-1f
#define ST_EXP5_C2 0x1.fffdc2p-2f
#define ST_EXP5_C3 0x1.555b5ap-3f
#define ST_EXP5_C4 0x1.573b66p-5f
#define ST_EXP5_C5 0x1.0f4dbep-7f

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

/* Inference epilogue in one pass: y[r*ldy + i] = op_n(... op_1(x[r*ldx + i] + bias)) for
 * rows r < rows and i < n (x == y, ldx == ldy: in place), the ops applied in order while
 * the value is in a register; ST_EPI_OP_ADD adds src[r*ldy + i] (src: the addends of y,
 * laid out like y). Same formulas as the separate ops of activation.c (ReLU y > 0 ? y :
 * 0, LeakyReLU y > 0 ? y : a*y, Clip to [a, b]; NaNs propagate through Clip and
 * LeakyReLU, ReLU maps them to 0), except that Sigmoid and SiLU use the polynomial exp
 * on AVX2/AVX-512 (relative error ~1e-7). */
#define ST_EPI_MAX_OPS 4
enum { ST_EPI_OP_RELU = 1, ST_EPI_OP_LEAKYRELU, ST_EPI_OP_SILU, ST_EPI_OP_SIGMOID, ST_EPI_OP_CLIP,
       ST_EPI_OP_ADD };
typedef struct st_epi_op {
    int kind;
    float a, b;       /* LeakyReLU slope; Clip bounds */
    const float *src; /* ADD: the addend of y[0] */
} st_epi_op;
#define ST_EPI_ROWS_ARGS                                                                       \
    float *y, ptrdiff_t ldy, const float *x, ptrdiff_t ldx, int rows, size_t n, float bias,    \
        const st_epi_op *ops, int n_ops
typedef void (*st_epi_rows_fn)(ST_EPI_ROWS_ARGS);
/* o = ops with every ADD's src moved on by `at` elements (the addends of y + at). */
static inline void st_epi_ops_at(st_epi_op *o, const st_epi_op *ops, int n_ops, size_t at) {
    for (int k = 0; k < n_ops; k++) {
        o[k] = ops[k];
        if (o[k].src) o[k].src += at;
    }
}
void st_epi_rows_scalar(ST_EPI_ROWS_ARGS);
void st_epi_rows_avx2(ST_EPI_ROWS_ARGS);
void st_epi_rows_avx512(ST_EPI_ROWS_ARGS);
/* The variant for isa (every x86-64 build has all three). */
st_epi_rows_fn st_epi_rows_for(st_isa isa);

#endif
