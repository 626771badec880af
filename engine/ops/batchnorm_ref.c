/* Reference BatchNorm2d: single-threaded, every quantity in double, the textbook formulas
 * written out directly (no folding into per-channel constants as the fast path does). */
#include <math.h>

#include "st_ops.h"

void st_batchnorm_forward_ref(const st_batchnorm *bn, float *y, const float *x,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, float *save_mean, float *save_invstd,
                              int training) {
    const int N = bn->N, C = bn->C, HW = bn->HW;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
            mean = s / M;
            double v = 0.0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) {
                    double d = x[((size_t)n * C + c) * HW + i] - mean;
                    v += d * d;
                }
            var = v / M;
            double unbiased = M > 1 ? v / (M - 1) : var;
            double mom = bn->momentum;
            if (running_mean)
                running_mean[c] = (float)((1.0 - mom) * running_mean[c] + mom * mean);
            if (running_var)
                running_var[c] = (float)((1.0 - mom) * running_var[c] + mom * unbiased);
        } else {
            mean = running_mean[c];
            var = running_var[c];
        }
        double invstd = 1.0 / sqrt(var + bn->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t j = ((size_t)n * C + c) * HW + i;
                y[j] = (float)((x[j] - mean) * invstd * gamma[c] + beta[c]);
            }
    }
}

void st_batchnorm_backward_ref(const st_batchnorm *bn, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *gamma,
                               const float *save_mean, const float *save_invstd, int training) {
    const int N = bn->N, C = bn->C, HW = bn->HW;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyxhat = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t j = ((size_t)n * C + c) * HW + i;
                sdy += dy[j];
                sdyxhat += dy[j] * (x[j] - mean) * invstd;
            }
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dx) continue;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t j = ((size_t)n * C + c) * HW + i;
                double g;
                if (training) {
                    double xhat = (x[j] - mean) * invstd;
                    g = gamma[c] * invstd * (dy[j] - sdy / M - xhat * sdyxhat / M);
                } else {
                    g = gamma[c] * invstd * dy[j];
                }
                dx[j] += (float)g;
            }
    }
}
