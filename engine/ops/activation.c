/* Pointwise activations. Threads only pay off on large tensors, hence the if() clauses.
 * `simd` matters: without it GCC -O2 compiles the ReLU select to a compare-and-branch,
 * which mispredicts on every other element of real activations (measured 5x slower in
 * training than on a benchmark with a regular sign pattern).
 * Gradients at the kink follow PyTorch: relu'(0) = 0, leakyrelu'(0) = slope. */
#include <math.h>

#include "st_ops.h"

#define ST_ACT_OMP_MIN 32768

/* One expf per element, vectorised by libmvec under `omp simd`. For x -> -inf, expf(-x)
 * overflows to inf and 1/(1 + inf) = 0, the right limit (there is no inf/inf). */
static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void st_relu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void st_relu_backward(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = dy[i]; /* loaded unconditionally, so the select vectorises */
        dx[i] += x[i] > 0.0f ? g : 0.0f;
    }
}

void st_leakyrelu_forward(float *y, const float *x, size_t n, float slope) {
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void st_leakyrelu_backward(float *dx, const float *dy, const float *x, size_t n, float slope) {
    if (!dx) return;
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : g * slope;
    }
}

void st_silu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
}

void st_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        /* d/dx x*s(x) = s + x*s*(1-s); the form below stays finite at |x| = 100. */
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void st_sigmoid_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
}

void st_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n) {
    if (!dx) return;
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* Clip passes the gradient on [lo, hi], bounds included, as torch.clamp (ONNX Clip's
 * PyTorch source) does; nn.ReLU6 (hardtanh) would exclude them. */
void st_clip_forward(float *y, const float *x, size_t n, float lo, float hi) {
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

void st_clip_backward(float *dx, const float *dy, const float *x, size_t n, float lo, float hi) {
    if (!dx) return;
#pragma omp parallel for simd schedule(static) if (n > ST_ACT_OMP_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
}

/* Softmax over C channels of each of the HW pixels of each of N samples (NCHW). */
void st_softmax_forward(float *y, const float *x, int N, int C, int HW) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * HW > ST_ACT_OMP_MIN)
    for (int p = 0; p < N * HW; p++) {
        size_t base = (size_t)(p / HW) * C * HW + p % HW;
        float m = x[base];
        for (int c = 1; c < C; c++) m = fmaxf(m, x[base + (size_t)c * HW]);
        float s = 0.0f;
        for (int c = 0; c < C; c++) {
            float e = expf(x[base + (size_t)c * HW] - m);
            y[base + (size_t)c * HW] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int c = 0; c < C; c++) y[base + (size_t)c * HW] *= inv;
    }
}

/* dx += y * (dy - sum_c dy*y), from the forward output y. */
void st_softmax_backward(float *dx, const float *dy, const float *y, int N, int C, int HW) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if ((size_t)N * C * HW > ST_ACT_OMP_MIN)
    for (int p = 0; p < N * HW; p++) {
        size_t base = (size_t)(p / HW) * C * HW + p % HW;
        float dot = 0.0f;
        for (int c = 0; c < C; c++) dot += dy[base + (size_t)c * HW] * y[base + (size_t)c * HW];
        for (int c = 0; c < C; c++) {
            size_t k = base + (size_t)c * HW;
            dx[k] += y[k] * (dy[k] - dot);
        }
    }
}
