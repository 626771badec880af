/* BatchNorm2d followed by a pointwise activation (ReLU, LeakyReLU, SiLU), fused so the
 * activation costs no pass of its own. Same arithmetic as st_batchnorm_* followed by
 * st_<act>_*: the statistics are the two double passes of batchnorm.c (mean, then centred
 * sum of squares, `omp simd` lanes in a fixed order, one thread per channel), z is
 * computed with the same float expression, and act(z) / act'(z) with the same formulas
 * as activation.c, except sigmoid's exp: on AVX2 CPUs SiLU's forward uses a polynomial
 * exp (act_kernels_avx2.c, relative error ~1e-7; ST_ISA=scalar keeps libm's expf), so
 * ReLU/LeakyReLU forward outputs are bit-identical to the separate ops and SiLU's agree
 * to ~1e-7 relative; the backward reductions sum the same terms, possibly in another
 * lane order (rounding).
 *
 * Forward writes y = act(z) and, for SiLU, aux = sigmoid(z) (what backward needs, so
 * backward calls no expf); z itself is not stored: backward recomputes it from x with the
 * per-channel scale saved by the forward (zscale, exactly the float the forward used).
 * Backward: pass 1 computes dz = dy * act'(z) (stored in dz_buf when given) together with
 * the BN reductions sum dz and sum dz * (x - mean); pass 2 accumulates dx. */
#include <math.h>
#include <pthread.h>

#include "act_kernels.h"
#include "st_cpu.h"
#include "bn_stats.h"
#include "st_ops.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void st_bn_silu_row_scalar(float *y, float *s, const float *x, size_t n, float mf, float scale,
                           float shift) {
    if (s) {
        for (size_t i = 0; i < n; i++) {
            float z = (x[i] - mf) * scale + shift;
            float sg = sigmoidf(z);
            s[i] = sg;
            y[i] = z * sg;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float z = (x[i] - mf) * scale + shift;
            y[i] = z * sigmoidf(z);
        }
    }
}

static st_bn_silu_row_fn silu_row;
static pthread_once_t silu_row_once = PTHREAD_ONCE_INIT;
static void silu_row_init(void) {
    const st_isa isa = st_cpu_select_isa();
    silu_row = isa >= ST_ISA_AVX512 ? st_bn_silu_row_avx512
             : isa >= ST_ISA_AVX2   ? st_bn_silu_row_avx2
                                    : st_bn_silu_row_scalar;
}
st_bn_silu_row_fn st_bn_silu_row(void) {
    pthread_once(&silu_row_once, silu_row_init);
    return silu_row;
}

void st_bn_act_forward(const st_batchnorm *bn, st_act_kind act, float slope, float *y,
                       float *aux, const float *x, const float *gamma, const float *beta,
                       float *running_mean, float *running_var, float *save_mean,
                       float *save_invstd, float *zscale, int training) {
    const int N = bn->N, C = bn->C;
    const size_t HW = (size_t)bn->HW;
    const st_bn_silu_row_fn row = st_bn_silu_row();
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double mean, invstd;
        st_bn_channel_stats(bn, x, c, running_mean, running_var, training, &mean, &invstd);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        const float mf = (float)mean, scale = (float)(gamma[c] * invstd), shift = beta[c];
        if (zscale) zscale[c] = scale;
        for (int n = 0; n < N; n++) {
            const size_t off = ((size_t)n * C + c) * HW;
            const float *xp = x + off;
            float *yp = y + off;
            switch (act) {
            case ST_ACT_RELU:
#pragma omp simd
                for (size_t i = 0; i < HW; i++) {
                    float z = (xp[i] - mf) * scale + shift;
                    yp[i] = z > 0.0f ? z : 0.0f;
                }
                break;
            case ST_ACT_LEAKYRELU:
#pragma omp simd
                for (size_t i = 0; i < HW; i++) {
                    float z = (xp[i] - mf) * scale + shift, zs = z * slope;
                    yp[i] = z > 0.0f ? z : zs;
                }
                break;
            case ST_ACT_SILU: row(yp, aux ? aux + off : NULL, xp, HW, mf, scale, shift); break;
            }
        }
    }
}

/* act'(z) * dy with the formulas of activation.c; s = sigmoid(z) for SiLU. */
static inline float act_grad(st_act_kind act, float slope, float g, float z, float s) {
    switch (act) {
    case ST_ACT_RELU: return z > 0.0f ? g : 0.0f;
    case ST_ACT_LEAKYRELU: return z > 0.0f ? g : g * slope;
    default: return g * s * (1.0f + z * (1.0f - s));
    }
}

static inline float relu_grad(float d, float z) { return z > 0.0f ? d : 0.0f; }
static inline float leaky_grad(float d, float z, float slope) {
    float ds = d * slope;
    return z > 0.0f ? d : ds;
}

/* SiLU needs sigmoid(z): from aux, or recomputed when aux is NULL. */
#define ST_BNACT_S(i, z) (act == ST_ACT_SILU ? (ap ? ap[i] : sigmoidf(z)) : 0.0f)

void st_bn_act_backward(const st_batchnorm *bn, st_act_kind act, float slope, float *dx,
                        float *dgamma, float *dbeta, float *dz_buf, const float *dy,
                        const float *aux, const float *x, const float *gamma,
                        const float *beta, const float *save_mean, const float *save_invstd,
                        const float *zscale, int training) {
    const int N = bn->N, C = bn->C;
    const size_t HW = (size_t)bn->HW, M = (size_t)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        const float mf = save_mean[c], scale = zscale[c], shift = beta[c];
        double sdy = 0.0, sdyxc = 0.0; /* sum dz, sum dz * (x - mean) */
        const int need_sums = dgamma || dbeta || (dx && training);
        /* dz is stored for pass 2 only when pass 2 will run */
        float *dzc = dx ? dz_buf : NULL;
        if (need_sums || dzc) {
            for (int n = 0; n < N; n++) {
                const size_t off = ((size_t)n * C + c) * HW;
                const float *xp = x + off, *dp = dy + off, *ap = aux ? aux + off : NULL;
                float *zp = dzc ? dzc + off : NULL;
                /* one loop per activation (and with/without the dz store) so each
                 * vectorises: GCC -O2 does not unswitch a loop on `act` */
#define ST_BNACT_PASS1(GRAD)                                                                   \
    do {                                                                                       \
        if (zp) {                                                                              \
            _Pragma("omp simd reduction(+ : sdy, sdyxc)") for (size_t i = 0; i < HW; i++) {     \
                float z = (xp[i] - mf) * scale + shift;                                        \
                float g = (GRAD);                                                              \
                zp[i] = g;                                                                     \
                sdy += g;                                                                      \
                sdyxc += g * (xp[i] - mean);                                                   \
            }                                                                                  \
        } else {                                                                               \
            _Pragma("omp simd reduction(+ : sdy, sdyxc)") for (size_t i = 0; i < HW; i++) {     \
                float z = (xp[i] - mf) * scale + shift;                                        \
                float g = (GRAD);                                                              \
                sdy += g;                                                                      \
                sdyxc += g * (xp[i] - mean);                                                   \
            }                                                                                  \
        }                                                                                      \
    } while (0)
                /* the ReLU/LeakyReLU selects vectorise only because this file is built
                 * with -fno-trapping-math (CMakeLists.txt): under the default GCC
                 * -O2 does not if-convert them */
                if (act == ST_ACT_RELU) ST_BNACT_PASS1(relu_grad(dp[i], z));
                else if (act == ST_ACT_LEAKYRELU) ST_BNACT_PASS1(leaky_grad(dp[i], z, slope));
                else if (ap) ST_BNACT_PASS1(act_grad(ST_ACT_SILU, slope, dp[i], z, ap[i]));
                else ST_BNACT_PASS1(act_grad(ST_ACT_SILU, slope, dp[i], z, sigmoidf(z)));
#undef ST_BNACT_PASS1
            }
        }
        const double sdyxhat = sdyxc * invstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dx) continue;
        const double gi = gamma[c] * invstd;
        /* training: dx += a*dz + bc*(x - mean) + k, as batchnorm.c; eval: dx += a*dz */
        const float a = (float)gi;
        float bc = 0.0f, k = 0.0f;
        if (training) {
            const double mdy = sdy / (double)M, mdyxhat = sdyxhat / (double)M;
            bc = (float)(-gi * mdyxhat * invstd);
            k = (float)(-gi * mdy);
        }
        for (int n = 0; n < N; n++) {
            const size_t off = ((size_t)n * C + c) * HW;
            const float *xp = x + off;
            float *gp = dx + off;
            if (dzc) {
                const float *zp = dzc + off;
                if (training) {
#pragma omp simd
                    for (size_t i = 0; i < HW; i++) gp[i] += a * zp[i] + bc * (xp[i] - mf) + k;
                } else {
#pragma omp simd
                    for (size_t i = 0; i < HW; i++) gp[i] += a * zp[i];
                }
            } else {
                const float *dp = dy + off, *ap = aux ? aux + off : NULL;
#pragma omp simd
                for (size_t i = 0; i < HW; i++) {
                    float z = (xp[i] - mf) * scale + shift;
                    float g = act_grad(act, slope, dp[i], z, ST_BNACT_S(i, z));
                    gp[i] += training ? a * g + bc * (xp[i] - mf) + k : a * g;
                }
            }
        }
    }
}
