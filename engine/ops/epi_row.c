/* Inference epilogues (act_kernels.h): the portable variant, the reference the
 * vector ones are tested against, and the per-ISA choice. */
#include <math.h>

#include "act_kernels.h"

static inline float sigmoid_(float v) { return 1.0f / (1.0f + expf(-v)); }

void st_epi_rows_scalar(ST_EPI_ROWS_ARGS) {
    for (int r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        const float *xr = x + r * ldx;
        for (size_t i = 0; i < n; i++) {
            float v = xr[i] + bias;
            for (int k = 0; k < n_ops; k++) {
                const st_epi_op *op = &ops[k];
                switch (op->kind) {
                case ST_EPI_OP_RELU: v = v > 0.0f ? v : 0.0f; break;
                case ST_EPI_OP_LEAKYRELU: v = v > 0.0f ? v : v * op->a; break;
                case ST_EPI_OP_SILU: v = v * sigmoid_(v); break;
                case ST_EPI_OP_SIGMOID: v = sigmoid_(v); break;
                case ST_EPI_OP_CLIP:
                    v = v < op->a ? op->a : v;
                    v = v > op->b ? op->b : v;
                    break;
                case ST_EPI_OP_ADD: v += op->src[r * ldy + (ptrdiff_t)i]; break;
                default: break;
                }
            }
            yr[i] = v;
        }
    }
}

st_epi_rows_fn st_epi_rows_for(st_isa isa) {
    return isa >= ST_ISA_AVX512 ? st_epi_rows_avx512
         : isa >= ST_ISA_AVX2   ? st_epi_rows_avx2
                                : st_epi_rows_scalar;
}
