/* BatchNorm2d fast path: one thread per channel, reductions in double in an order fixed
 * by the binary (`omp simd` lanes, then the lane sum), so results are deterministic for
 * any thread count; the lanes keep the adds from serialising on one accumulator. The
 * forward statistics (bn_stats.h) take two passes (mean, then centred sum of squares) to
 * avoid the cancellation of the E[x^2] - E[x]^2 formula. */
#include <math.h>

#include "bn_stats.h"
#include "st_ops.h"

void st_batchnorm_forward(const st_batchnorm *bn, float *y, const float *x, const float *gamma,
                          const float *beta, float *running_mean, float *running_var,
                          float *save_mean, float *save_invstd, int training) {
    const int N = bn->N, C = bn->C;
    const size_t HW = (size_t)bn->HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double mean, invstd;
        st_bn_channel_stats(bn, x, c, running_mean, running_var, training, &mean, &invstd);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        /* Centre before scaling: folding mean into a shift would cancel badly when
         * |mean| >> std. */
        const float mf = (float)mean, scale = (float)(gamma[c] * invstd), shift = beta[c];
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) yp[i] = (xp[i] - mf) * scale + shift;
        }
    }
}

void st_batchnorm_backward(const st_batchnorm *bn, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *save_mean, const float *save_invstd, int training) {
    const int N = bn->N, C = bn->C;
    const size_t HW = (size_t)bn->HW, M = (size_t)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyxc = 0.0; /* sum dy, sum dy * (x - mean) */
        if (dgamma || dbeta || (dx && training)) {
            for (int n = 0; n < N; n++) {
                const float *xp = x + ((size_t)n * C + c) * HW;
                const float *dp = dy + ((size_t)n * C + c) * HW;
#pragma omp simd reduction(+ : sdy, sdyxc)
                for (size_t i = 0; i < HW; i++) {
                    sdy += dp[i];
                    sdyxc += dp[i] * (xp[i] - mean);
                }
            }
        }
        const double sdyxhat = sdyxc * invstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dx) continue;
        const double gi = gamma[c] * invstd;
        if (training) {
            /* dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), with the
             * per-channel factors hoisted: dx += a*dy + bc*(x - mean) + k. */
            const double mdy = sdy / (double)M, mdyxhat = sdyxhat / (double)M;
            const float mf = (float)mean, a = (float)gi;
            const float bc = (float)(-gi * mdyxhat * invstd);
            const float k = (float)(-gi * mdy);
            for (int n = 0; n < N; n++) {
                const float *xp = x + ((size_t)n * C + c) * HW;
                const float *dp = dy + ((size_t)n * C + c) * HW;
                float *gp = dx + ((size_t)n * C + c) * HW;
                for (size_t i = 0; i < HW; i++) gp[i] += a * dp[i] + bc * (xp[i] - mf) + k;
            }
        } else {
            const float a = (float)gi;
            for (int n = 0; n < N; n++) {
                const float *dp = dy + ((size_t)n * C + c) * HW;
                float *gp = dx + ((size_t)n * C + c) * HW;
                for (size_t i = 0; i < HW; i++) gp[i] += a * dp[i];
            }
        }
    }
}
