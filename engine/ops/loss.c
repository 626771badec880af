/* Softmax cross-entropy, mean over rows. Logits are shifted by their row max before exp,
 * so large logits cannot overflow; the loss uses log-sum-exp directly instead of
 * log(prob), which would give -inf once a probability underflows to 0. */
#include <math.h>

#include "st_ops.h"

float st_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int N,
                              int C) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * C;
        float *pr = probs + (size_t)n * C;
        float m = z[0];
        for (int c = 1; c < C; c++)
            if (z[c] > m) m = z[c];
        double s = 0.0;
        for (int c = 0; c < C; c++) {
            double e = exp((double)z[c] - m);
            pr[c] = (float)e;
            s += e;
        }
        const float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++) pr[c] *= inv;
        total += log(s) + m - z[labels[n]];
    }
    return (float)(total / N);
}

void st_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int N,
                              int C, float scale) {
    if (!dlogits) return;
    const float k = scale / (float)N;
    for (int n = 0; n < N; n++) {
        const float *pr = probs + (size_t)n * C;
        float *d = dlogits + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += pr[c] * k;
        d[labels[n]] -= k;
    }
}
