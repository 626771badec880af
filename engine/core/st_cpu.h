/* Runtime CPU dispatch. One binary runs on every x86-64: kernels come in scalar, AVX2
 * and AVX-512 variants (files *_avx2.c / *_avx512.c get their own compiler flags) and
 * st_kernels_init picks the best one the CPU supports. The environment variable
 * ST_ISA=scalar|avx2|avx512 can only lower the choice (for tests and comparisons). */
#ifndef ST_CPU_H
#define ST_CPU_H

#include <stddef.h>

typedef enum { ST_ISA_SCALAR = 0, ST_ISA_AVX2 = 1, ST_ISA_AVX512 = 2 } st_isa;

/* Best ISA this CPU supports (ignores ST_ISA). */
st_isa st_cpu_best_isa(void);
/* Best supported ISA, lowered by ST_ISA if set; unknown values are ignored. */
st_isa st_cpu_select_isa(void);
const char *st_isa_name(st_isa isa);
/* 1 where the CPU executes a 512-bit FMA as two 256-bit halves (AMD family 19h, Zen 4),
 * so that dense AVX-512 kernels run at half the rate per instruction of a core with
 * full-width units (Zen 5, most Xeons): the engine's cost model then finds sparse
 * kernels, which are bound by loads rather than FMAs, relatively faster. 0 where the
 * AVX-512 kernels are not selected (ST_ISA). The environment variable
 * ST_FMA512_SPLIT=0|1 overrides all of this (tests, comparisons). */
int st_cpu_fma512_split(void);

/* Elementwise kernels hot in the optimizer and the graph. */
/* max(a, v) as max pooling takes it: v when v > a or v is NaN, else a (a NaN a stays). */
static inline float st_max_nan(float a, float v) { return ((v > a) | (v != v)) ? v : a; }

typedef struct st_kernels {
    st_isa isa;
    /* y[i] += a * x[i] */
    void (*axpy)(float *y, float a, const float *x, size_t n);
    /* PyTorch SGD with momentum/Nesterov/decay; buf is the momentum buffer (may be NULL
     * when momentum == 0). first != 0 initialises buf = d like torch's first step. */
    void (*sgd)(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                float weight_decay, int nesterov, int first);
    /* AdamW (decoupled decay); bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, float bc1, float bc2);
    /* p[i] *= mask[i] (mask is 0/1 bytes) */
    void (*apply_mask)(float *p, const unsigned char *mask, size_t n);
    /* dst[i] = max over r < nr of rows[r][i], a NaN anywhere wins (max pooling). The
     * maximum stays in a register across the rows and is stored once: a pool built from
     * pairwise max calls read back each call's stores (masked ones cannot forward). */
    void (*max_rows)(float *dst, const float *const *rows, int nr, size_t n);
    /* d0[i] = src[2i], d1[i] = src[2i+1] for i < n (stride-2 rows) */
    void (*deint2)(float *d0, float *d1, const float *src, size_t n);
    /* Max pooling 3 wide, stride 2, in one pass: y[j] = max over r < nr and t < 3 of
     * rows[r][2j + off + t], columns outside [0, W) left out, a NaN anywhere wins. NULL
     * where no variant beats max_rows + deint2 (the pool then takes those). */
    void (*max3s2)(float *y, const float *const *rows, int nr, int W, int off, size_t Q);
    /* Max pooling stride 1 on one plane whose rows fit a vector (W, Q <= 16; kh, kw <=
     * 16): output rows [r0, r1) of y (rows Q apart) from x (H rows of W), window (o, j)
     * over rows o - ph .. o - ph + kh - 1 and columns j - pw .. j - pw + kw - 1 inside
     * the plane, a NaN anywhere wins, -inf where none is inside. NULL: the pool takes
     * its general paths. */
    void (*maxs1_narrow)(float *y, const float *x, int H, int W, int Q, int kh, int kw, int ph, int pw,
                         int r0, int r1);
} st_kernels;

/* Nanoseconds per round trip of a cache line between threads 0 and 1 of a two-thread
 * OpenMP region (the median of 9 batches of `rounds`); 0 when no second thread runs.
 * On a VM whose two vCPUs the host sometimes places on different core complexes, this
 * flips between ~60-80 ns and ~330-380 ns, and every multi-threaded latency with it
 * (yolov5n 95% on two threads: 1.19-1.23 ms near, 1.65-1.83 ms far; one thread: no
 * change), so a benchmark that reports it says which of the two it measured. */
double st_thread_roundtrip_ns(int rounds);

/* Fills k with the variants for isa (falls back to lower ISAs the CPU supports). */
void st_kernels_init(st_kernels *k, st_isa isa);

/* Per-ISA tables, defined in kernels_<isa>.c. */
void st_kernels_scalar(st_kernels *k);
void st_kernels_avx2(st_kernels *k);
void st_kernels_avx512(st_kernels *k);

#endif
