/* Elementwise and shape ops: add, mul, channel concat, nearest upsampling, dropout. */
#include <omp.h>
#include <string.h>

#include "st_common.h"
#include "st_ops.h"
#include "st_rng.h"

#define ST_EW_OMP_MIN 32768

void st_add_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void st_add_backward(float *da, float *db, const float *dy, size_t n) {
    if (da) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
        for (size_t i = 0; i < n; i++) da[i] += dy[i];
    }
    if (db) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
        for (size_t i = 0; i < n; i++) db[i] += dy[i];
    }
}

void st_mul_forward(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void st_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                     size_t n) {
    if (da) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
        for (size_t i = 0; i < n; i++) da[i] += dy[i] * b[i];
    }
    if (db) {
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
        for (size_t i = 0; i < n; i++) db[i] += dy[i] * a[i];
    }
}

void st_concat_forward(float *y, const float *const *inputs, const int *cs, int n_inputs, int N,
                       int HW) {
    int ctot = 0;
    for (int i = 0; i < n_inputs; i++) ctot += cs[i];
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * ctot * HW;
        for (int i = 0; i < n_inputs; i++) {
            size_t len = (size_t)cs[i] * HW;
            memcpy(y + off, inputs[i] + (size_t)n * len, sizeof(float) * len);
            off += len;
        }
    }
}

void st_concat_rows(float *y, const float *const *inputs, const int *cs, int n_inputs, int N,
                    int H, int W, int h0, int h1) {
    h0 = ST_MAX(h0, 0), h1 = ST_MIN(h1, H);
    if (h0 >= h1) return;
    const size_t HW = (size_t)H * W, len = (size_t)(h1 - h0) * W;
    int ctot = 0;
    for (int i = 0; i < n_inputs; i++) ctot += cs[i];
    if (W < 64) { /* short rows: copy the same share of each sample's bytes instead */
        const size_t per = (size_t)ctot * HW, a = per * h0 / H, b = per * h1 / H;
        for (int n = 0; n < N; n++) {
            size_t at = 0; /* start of input i's block in the sample */
            for (int i = 0; i < n_inputs; i++) {
                const size_t li = (size_t)cs[i] * HW, lo = ST_MAX(a, at), hi = ST_MIN(b, at + li);
                if (lo < hi)
                    memcpy(y + (size_t)n * per + lo, inputs[i] + (size_t)n * li + (lo - at), sizeof(float) * (hi - lo));
                at += li;
            }
        }
        return;
    }
    for (int n = 0; n < N; n++) {
        float *yc = y + (size_t)n * ctot * HW + (size_t)h0 * W;
        for (int i = 0; i < n_inputs; i++) {
            const float *xc = inputs[i] + (size_t)n * cs[i] * HW + (size_t)h0 * W;
            for (int ch = 0; ch < cs[i]; ch++, yc += HW, xc += HW) memcpy(yc, xc, sizeof(float) * len);
        }
    }
}

void st_concat_backward(float *const *dinputs, const float *dy, const int *cs, int n_inputs,
                        int N, int HW) {
    int ctot = 0;
    for (int i = 0; i < n_inputs; i++) ctot += cs[i];
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * ctot * HW;
        for (int i = 0; i < n_inputs; i++) {
            size_t len = (size_t)cs[i] * HW;
            if (dinputs[i]) {
                float *d = dinputs[i] + (size_t)n * len;
                const float *s = dy + off;
                for (size_t j = 0; j < len; j++) d[j] += s[j];
            }
            off += len;
        }
    }
}

/* Input rows [h0, h1) of plane pl. */
static void upsample_plane_rows(float *y, const float *x, long pl, int H, int W, int f, int h0, int h1) {
    const int Wo = W * f;
    const size_t HW = (size_t)H * W, HWo = HW * f * f;
    const float *xp = x + (size_t)pl * HW;
    float *yp = y + (size_t)pl * HWo;
    for (int h = h0; h < h1; h++) {
        float *row = yp + (size_t)h * f * Wo;
        const float *xr = xp + (size_t)h * W;
        if (f == 2) { /* the common case (YOLO's necks), in a form the compiler vectorises */
            for (int w = 0; w < W; w++) row[2 * w] = xr[w], row[2 * w + 1] = xr[w];
        } else {
            for (int w = 0; w < W; w++)
                for (int k = 0; k < f; k++) row[w * f + k] = xr[w];
        }
        /* The other f-1 output rows of this input row are identical copies. */
        for (int a = 1; a < f; a++) memcpy(row + (size_t)a * Wo, row, sizeof(float) * Wo);
    }
}

void st_upsample_nearest_forward(float *y, const float *x, int N, int C, int H, int W, int f) {
    const long planes = (long)N * C;
#pragma omp parallel for schedule(static) if ((size_t)H * W * f * f * planes > ST_EW_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) upsample_plane_rows(y, x, pl, H, W, f, 0, H);
}

void st_upsample_nearest_rows(float *y, const float *x, int N, int C, int H, int W, int f, int h0,
                              int h1) {
    h0 = ST_MAX(h0, 0), h1 = ST_MIN(h1, H);
    for (long pl = 0; h0 < h1 && pl < (long)N * C; pl++) upsample_plane_rows(y, x, pl, H, W, f, h0, h1);
}

void st_upsample_nearest_backward(float *dx, const float *dy, int N, int C, int H, int W,
                                  int f) {
    if (!dx) return;
    const long planes = (long)N * C;
    const int Wo = W * f;
    const size_t HW = (size_t)H * W, HWo = HW * f * f;
#pragma omp parallel for schedule(static) if (HWo * planes > ST_EW_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *gp = dx + (size_t)pl * HW;
        const float *dp = dy + (size_t)pl * HWo;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                float s = 0.0f;
                for (int a = 0; a < f; a++)
                    for (int b = 0; b < f; b++) s += dp[(size_t)(h * f + a) * Wo + w * f + b];
                gp[(size_t)h * W + w] += s;
            }
    }
}

void st_dropout_forward(float *y, float *mask, const float *x, size_t n, float p, uint64_t seed) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) mask[i] = 1.0f;
        memcpy(y, x, sizeof(float) * n);
        return;
    }
    /* p >= 1 drops everything; 1/(1-p) would be inf and 0*inf NaN. */
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float m = st_hash_uniform(seed, (uint64_t)i) >= p ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

void st_dropout_backward(float *dx, const float *dy, const float *mask, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ST_EW_OMP_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}
