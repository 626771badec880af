/* What two threads pay for sharing one NCHW map by rows, and what a per-thread blocked
 * layout would save: the measurement behind the engine's next layout change.
 *   bench_ownership [--reps N] [--sparsity 0.95]
 *
 * Part 1, memory passes (y = x with the vector kernels over a C x HW map, then x and y swap; a spinning
 * barrier after each pass, as the engine's team meets after each step):
 *   1 thread            the whole map;
 *   rows, NCHW          each thread half of every plane (the engine's row split: one
 *                       boundary between the threads' bytes per plane);
 *   blocked             each thread a contiguous half (as if the map were stored
 *                       [thread][C][rows][W]: one boundary per map).
 * Part 2, a chain of four real sparse 1x1 convolutions (st_conv2d_sparse_*, direct mode)
 * on yolov5n's map shapes: the engine's row split of NCHW maps against each thread
 * running the same convolution on its own block of rows in its own contiguous buffers.
 * Both do the same multiply-adds; only where the bytes live differs.
 * Figures are microseconds per pass or per chain (best of --reps repetitions) and the
 * speedup over one thread, measured side by side in one run. */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cpu.h"
#include "st_ops.h"
#include "st_rng.h"
#include "st_sparse.h"

typedef struct {
    _Alignas(64) atomic_int count;
    _Alignas(64) atomic_int gen;
} spin_barrier;

static void barrier_wait(spin_barrier *b, int nt) {
    if (nt == 1) return;
    const int g = atomic_load_explicit(&b->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == nt - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->gen, g + 1, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&b->gen, memory_order_acquire) == g) __builtin_ia32_pause();
}

enum { ONE_THREAD, ROWS_NCHW, BLOCKED, N_MODES };
static const char *mode_name[N_MODES] = {"1 thread", "rows, NCHW", "blocked"};

/* [lo, hi) floats of plane c that thread t of nt touches under mode; per-plane bytes for
 * ROWS_NCHW, a contiguous run of whole planes' worth for BLOCKED (same amount). */
static void span(int mode, int t, int nt, size_t HW, size_t *lo, size_t *hi) {
    if (mode != ROWS_NCHW) *lo = 0, *hi = HW;
    else *lo = HW * t / nt, *hi = HW * (t + 1) / nt;
}


static double memory_pass_us(const st_kernels *k, int mode, int C, size_t HW, int reps, float *A, float *B,
                             spin_barrier *bar) {
    const int nt = mode == ONE_THREAD ? 1 : 2, iters = 2000;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
            /* BLOCKED: thread t owns planes' worth [t*C/2, (t+1)*C/2) of floats, contiguous */
            const int c0 = mode == BLOCKED ? C * t / nt : 0, c1 = mode == BLOCKED ? C * (t + 1) / nt : C;
            barrier_wait(bar, nt);
            if (t == 0) t0 = omp_get_wtime();
            for (int it = 0; it < iters; it++) {
                const float *x = it & 1 ? A : B;
                float *y = it & 1 ? B : A;
                for (int c = c0; c < c1; c++) {
                    size_t lo, hi;
                    span(mode, t, nt, HW, &lo, &hi);
                    const float *row = x + c * HW + lo;
                    k->max_rows(y + c * HW + lo, &row, 1, hi - lo); /* a vector copy */
                }
                barrier_wait(bar, nt);
            }
            if (t == 0) t1 = omp_get_wtime();
        }
        const double us = (t1 - t0) / iters * 1e6;
        if (us < best) best = us;
    }
    return best;
}

typedef struct {
    int C, H, W;
} map_shape;

#define CHAIN 4

/* A chain of CHAIN sparse 1x1 convs C -> C on one map (ping-pong between two buffers). */
static double chain_us(int mode, map_shape s, const st_csr *full, const st_csr *half, const float *bias,
                       float *const *buf, float *const *blk, float *scratch, int reps, spin_barrier *bar) {
    const int nt = mode == ONE_THREAD ? 1 : 2, iters = 1000;
    st_conv2d cf = full->conv, ch = half->conv;
    double best = 1e30;
    int failed = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
        {
            const int t = omp_get_thread_num();
            barrier_wait(bar, nt);
            if (t == 0) t0 = omp_get_wtime();
            for (int it = 0; it < iters; it++) {
                for (int l = 0; l < CHAIN; l++) {
                    st_error e;
                    st_status st;
                    if (mode == ONE_THREAD)
                        st = st_conv2d_sparse_forward(&cf, full, buf[(l + 1) & 1], buf[l & 1], bias, scratch, &e);
                    else if (mode == ROWS_NCHW)
                        st = st_conv2d_sparse_forward_part(&cf, full, buf[(l + 1) & 1], buf[l & 1], bias, NULL, 0,
                                                           scratch, t, nt, &e);
                    else /* this thread's rows, in its own buffers; the same convolution */
                        st = st_conv2d_sparse_forward(&ch, half, blk[2 * t + ((l + 1) & 1)], blk[2 * t + (l & 1)],
                                                      bias, scratch, &e);
                    failed |= st != ST_OK;
                    barrier_wait(bar, nt);
                }
            }
            if (t == 0) t1 = omp_get_wtime();
        }
        const double us = (t1 - t0) / iters * 1e6;
        if (us < best) best = us;
    }
    (void)s;
    return failed ? -1.0 : best;
}

static float *alloc_floats(size_t n) {
    float *p = aligned_alloc(4096, (n * sizeof(float) + 4095) / 4096 * 4096);
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

static int run_chain(map_shape s, double sparsity, int reps, spin_barrier *bar) {
    st_conv2d c = {.N = 1, .C = s.C, .H = s.H, .W = s.W, .K = s.C, .R = 1, .S = 1, .stride_h = 1,
                   .stride_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    st_conv2d_init(&c);
    st_conv2d hc = c;
    hc.H = s.H / 2;
    st_conv2d_init(&hc);
    const size_t nw = (size_t)s.C * s.C, HW = (size_t)s.H * s.W, hHW = (size_t)hc.H * s.W;
    float *w = alloc_floats(nw), *bias = alloc_floats((size_t)s.C);
    st_rng rng;
    st_rng_seed(&rng, 7);
    for (size_t i = 0; i < nw; i++) w[i] = st_rng_uniform(&rng) < sparsity ? 0.0f : st_rng_uniform(&rng) - 0.5f;
    st_csr full = {0}, half = {0};
    st_error e;
    if (st_csr_pack(&full, &c, w, NULL, &e) != ST_OK || st_csr_pack(&half, &hc, w, NULL, &e) != ST_OK) {
        fprintf(stderr, "bench_ownership: packing %dx%dx%d: %s\n", s.C, s.H, s.W, e.msg);
        return 1;
    }
    float *buf[2], *blk[4], *scratch = alloc_floats(st_conv2d_sparse_scratch_floats(&full) + 16);
    int oom = !scratch;
    for (int i = 0; i < 2; i++) oom |= !(buf[i] = alloc_floats((size_t)s.C * HW));
    for (int i = 0; i < 4; i++) oom |= !(blk[i] = alloc_floats((size_t)s.C * hHW));
    if (oom) {
        fprintf(stderr, "bench_ownership: out of memory\n");
        return 4;
    }
    for (size_t i = 0; i < (size_t)s.C * HW; i++) buf[0][i] = st_rng_uniform(&rng);
    for (int t = 0; t < 2; t++) /* the same rows, blocked */
        for (int ch = 0; ch < s.C; ch++)
            memcpy(blk[2 * t] + ch * hHW, buf[0] + ch * HW + t * hHW, hHW * sizeof(float));
    double us[N_MODES];
    for (int m = 0; m < N_MODES; m++) us[m] = chain_us(m, s, &full, &half, bias, buf, blk, scratch, reps, bar);
    printf("  %3d x %3d x %3d  nnz %6d  %8.2f %8.2f (x%.2f) %8.2f (x%.2f)\n", s.C, s.H, s.W, full.nnz, us[0],
           us[1], us[0] / us[1], us[2], us[0] / us[2]);
    st_csr_free(&full), st_csr_free(&half);
    for (int i = 0; i < 2; i++) free(buf[i]);
    for (int i = 0; i < 4; i++) free(blk[i]);
    free(scratch), free(w), free(bias);
    return us[0] < 0 || us[1] < 0 || us[2] < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    int reps = 7;
    double sparsity = 0.95;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sparsity") && i + 1 < argc) sparsity = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_ownership [--reps N] [--sparsity 0.95]\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    if (reps < 1 || !(sparsity >= 0 && sparsity < 1)) {
        fprintf(stderr, "bench_ownership: --reps must be >= 1 and --sparsity in [0, 1)\n");
        return 2;
    }
    if (omp_get_num_procs() < 2) printf("(one core: the two-thread figures share it)\n");
    static const map_shape shapes[] = {{16, 80, 80}, {32, 40, 40}, {64, 20, 20}, {128, 10, 10}};
    spin_barrier bar = {0};
    st_kernels vk;
    st_kernels_init(&vk, st_cpu_select_isa());
    printf("Memory passes (%s), us per pass (speedup over 1 thread): y = x over the map\n", st_isa_name(vk.isa));
    printf("  %-14s %8s %18s %18s\n", "C x H x W", mode_name[0], mode_name[1], mode_name[2]);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const map_shape s = shapes[k];
        const size_t HW = (size_t)s.H * s.W, n = (size_t)s.C * HW;
        float *A = alloc_floats(n), *B = alloc_floats(n);
        if (!A || !B) return fprintf(stderr, "bench_ownership: out of memory\n"), 4;
        double us[N_MODES];
        for (int m = 0; m < N_MODES; m++) us[m] = memory_pass_us(&vk, m, s.C, HW, reps, A, B, &bar);
        printf("  %3d x %3d x %3d  %8.2f %8.2f (x%.2f) %8.2f (x%.2f)\n", s.C, s.H, s.W, us[0], us[1],
               us[0] / us[1], us[2], us[0] / us[2]);
        free(A), free(B);
    }
    printf("Chains of %d sparse 1x1 convs C -> C at %.0f%% zeros, us per chain (speedup over 1 thread)\n", CHAIN,
           100 * sparsity);
    printf("  %-14s %-6s %11s %18s %18s\n", "C x H x W", "", mode_name[0], mode_name[1], mode_name[2]);
    int rc = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) rc |= run_chain(shapes[k], sparsity, reps, &bar);
    return rc;
}
