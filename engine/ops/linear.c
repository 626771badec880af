/* Fully connected layer: y[N, O] = x[N, I] * w[O, I]^T + b. The fast path is three
 * sgemm calls; the reference is plain double loops. */
/* st_ops.h names a parameter I, which <complex.h> (pulled in by OpenBLAS's cblas.h)
 * defines as a macro: the header must come first and this file avoids the name. */
#include "st_ops.h"

#include <cblas.h>

/* Up to this many samples, st_linear_forward takes the rows path: ResNet-18's fc (512 ->
 * 1000) at batch 1 took 0.22 ms in sgemm, which packed the 2 MB weight matrix to read
 * it once. */
#define LINEAR_ROWS_MAX_N 4

void st_linear_forward_rows(float *y, const float *x, const float *w, const float *b, int N, int In,
                            int O, int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const float *wr = w + (size_t)o * In;
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * In;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < In; i++) acc += wr[i] * xr[i];
            y[(size_t)n * O + o] = acc + (b ? b[o] : 0.0f);
        }
    }
}

void st_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int In,
                       int O) {
    if (N <= LINEAR_ROWS_MAX_N) {
        st_linear_forward_rows(y, x, w, b, N, In, O, 0, O);
        return;
    }
    float beta = 0.0f;
    if (b) {
        /* Pre-load the bias so sgemm adds the product onto it in the same pass. */
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) y[(size_t)n * O + o] = b[o];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, In, 1.0f, x, In, w, In, beta, y, O);
}

void st_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int N, int In, int O) {
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, O, 1.0f, dy, O, w, In, 1.0f,
                    dx, In);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, In, N, 1.0f, dy, O, x, In, 1.0f,
                    dw, In);
    if (db) {
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * O + o];
            db[o] += (float)acc;
        }
    }
}

void st_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N,
                           int In, int O) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < In; i++) acc += (double)x[(size_t)n * In + i] * w[(size_t)o * In + i];
            y[(size_t)n * O + o] = (float)acc;
        }
}

void st_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int N, int In, int O) {
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < In; i++) {
                double acc = 0.0;
                for (int o = 0; o < O; o++)
                    acc += (double)dy[(size_t)n * O + o] * w[(size_t)o * In + i];
                dx[(size_t)n * In + i] += (float)acc;
            }
    if (dw)
        for (int o = 0; o < O; o++)
            for (int i = 0; i < In; i++) {
                double acc = 0.0;
                for (int n = 0; n < N; n++)
                    acc += (double)dy[(size_t)n * O + o] * x[(size_t)n * In + i];
                dw[(size_t)o * In + i] += (float)acc;
            }
    if (db)
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * O + o];
            db[o] += (float)acc;
        }
}
