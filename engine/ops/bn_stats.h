/* Per-channel BatchNorm statistics shared by the plain and the fused (BN + activation)
 * forward passes: in training, the batch mean and centred variance in double (two passes,
 * `omp simd` lanes in an order fixed by the binary), with the running statistics updated
 * (PyTorch's convention, unbiased variance); in eval, the running statistics. Inline so
 * each caller keeps its own vectorisation. */
#ifndef ST_BN_STATS_H
#define ST_BN_STATS_H

#include <math.h>

#include "st_ops.h"

static inline void st_bn_channel_stats(const st_batchnorm *bn, const float *x, int c,
                                       float *running_mean, float *running_var, int training,
                                       double *mean_out, double *invstd_out) {
    const int N = bn->N, C = bn->C;
    const size_t HW = (size_t)bn->HW, M = (size_t)N * HW;
    const double mom = bn->momentum;
    if (!training) {
        *mean_out = running_mean[c];
        *invstd_out = 1.0 / sqrt((double)running_var[c] + bn->eps);
        return;
    }
    double s = 0.0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < HW; i++) s += xp[i];
    }
    const double mean = s / (double)M;
    double v = 0.0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
#pragma omp simd reduction(+ : v)
        for (size_t i = 0; i < HW; i++) {
            double d = xp[i] - mean;
            v += d * d;
        }
    }
    const double var = v / (double)M;
    /* One value per channel has no unbiased variance; keep the biased one rather than
     * divide by zero. */
    const double unbiased = M > 1 ? v / (double)(M - 1) : var;
    if (running_mean) running_mean[c] = (float)((1.0 - mom) * running_mean[c] + mom * mean);
    if (running_var) running_var[c] = (float)((1.0 - mom) * running_var[c] + mom * unbiased);
    *mean_out = mean;
    *invstd_out = 1.0 / sqrt(var + bn->eps);
}

#endif
