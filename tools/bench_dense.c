/* The batch-1 dense convolution kernels (engine/dense) against im2col + OpenBLAS sgemm
 * (st_conv2d_forward) on real layer shapes of ResNet-18 @224 and yolov5n @320: time per
 * call (median of --iters) and dense GFLOP/s, both measured in this one run; then the
 * sparse kernel (random 90% / 95% zeros) against the packed dense one on the same shape
 * next to what the engine's inference cost model predicts for that ratio. The sparse
 * side is packed as the engine packs it (tap planes, channel blocks, quads); --blocks
 * zeroes whole [4, 1] blocks (4 output channels at one input tap, as recipes with
 * mask_type [4, 1] prune), which the engine runs as quads.
 *   bench_dense [--threads 2] [--iters 30] [--only NAME-SUBSTRING] [--blocks]
 *               [--sparsity 50,90,95] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_dense.h"
#include "st_ops.h"
#include "st_rng.h"
#include "st_sparse.h"
#include "st_tool.h"

typedef struct { const char *name; int C, H, K, R, stride, pad; } layer;

static const layer layers[] = {
    {"resnet18 conv1 7x7/2", 3, 224, 64, 7, 2, 3},
    {"resnet18 layer1 3x3", 64, 56, 64, 3, 1, 1},
    {"resnet18 layer2.0 3x3/2", 64, 56, 128, 3, 2, 1},
    {"resnet18 layer2 3x3", 128, 28, 128, 3, 1, 1},
    {"resnet18 layer3 3x3", 256, 14, 256, 3, 1, 1},
    {"resnet18 layer4 3x3", 512, 7, 512, 3, 1, 1},
    {"resnet18 downsample 1x1/2", 128, 28, 256, 1, 2, 0},
    {"yolov5n stem 6x6/2", 3, 320, 16, 6, 2, 2},
    {"yolov5n model.1 3x3/2", 16, 160, 32, 3, 2, 1},
    {"yolov5n C3 1x1 @80", 32, 80, 16, 1, 1, 0},
    {"yolov5n C3 3x3 @80", 16, 80, 16, 3, 1, 1},
    {"yolov5n C3 1x1 @40", 64, 40, 32, 1, 1, 0},
    {"yolov5n C3 3x3 @20", 64, 20, 64, 3, 1, 1},
    {"yolov5n SPPF 1x1 @10", 512, 10, 256, 1, 1, 0},
};

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "50,90,95": up to cap whole percentages; their count, or -1 when malformed. */
static int parse_percents(const char *s, int *out, int cap) {
    int n = 0;
    for (const char *p = s;; n++) {
        const char *comma = strchr(p, ',');
        char item[16];
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        long v;
        if (n == cap || len >= sizeof item) return -1;
        memcpy(item, p, len), item[len] = 0;
        if (st_tool_int(item, 0, 100, &v)) return -1;
        out[n] = (int)v;
        if (!comma) return n + 1;
        p = comma + 1;
    }
}

int main(int argc, char **argv) {
    long threads = 2, iters = 30;
    const char *only = NULL;
    int blocks = 0, sps[8] = {50, 90, 95}, nsp = 3;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--blocks")) {
            blocks = 1, i--;
            continue;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--only")) {
            only = argv[i + 1];
            continue;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--sparsity") && (nsp = parse_percents(argv[i + 1], sps, 8)) > 0)
            continue;
        long *dst = i + 1 >= argc ? NULL : !strcmp(argv[i], "--threads") ? &threads
                  : !strcmp(argv[i], "--iters") ? &iters : NULL;
        if (!dst || st_tool_int(argv[i + 1], 1, 100000, dst)) {
            fprintf(stderr, "usage: bench_dense [--threads N] [--iters N] [--only NAME-SUBSTRING] "
                            "[--blocks] [--sparsity P,P,...]\n");
            return 2;
        }
    }
    omp_set_num_threads((int)threads);
    st_conv2d probe = {.N = 1, .C = 1, .H = 1, .W = 1, .K = 1, .R = 1, .S = 1, .stride_h = 1,
                       .stride_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    if (!st_dense_conv_supported(&probe)) {
        fprintf(stderr, "bench_dense: the dense conv kernels need AVX2 (ST_ISA or the CPU says no)\n");
        return 1;
    }
    printf("%ld threads, batch 1, median of %ld calls, %s kernels, sparse weights %s\n", threads,
           iters, st_isa_name(st_cpu_select_isa()), blocks ? "in [4, 1] blocks" : "unstructured");
    printf("%-28s %9s %9s %9s %9s %7s", "layer", "blas ms", "GFLOP/s", "ours ms", "GFLOP/s", "ratio");
    for (int i = 0; i < nsp; i++) printf("   sp%-3d ms %7s %7s", sps[i], "x dense", "model");
    printf("\n");
    st_rng r;
    st_rng_seed(&r, 1);
    double *t = malloc((size_t)iters * sizeof *t);
    double sum_b = 0, sum_o = 0;
    for (size_t l = 0; l < sizeof layers / sizeof *layers; l++) {
        const layer *L = &layers[l];
        if (only && !strstr(L->name, only)) continue;
        st_conv2d c = {.N = 1, .C = L->C, .H = L->H, .W = L->H, .K = L->K, .R = L->R, .S = L->R,
                       .stride_h = L->stride, .stride_w = L->stride, .pad_h = L->pad, .pad_w = L->pad,
                       .dil_h = 1, .dil_w = 1, .groups = 1};
        st_conv2d_init(&c);
        size_t nx = (size_t)c.C * c.H * c.W, nw = (size_t)c.K * c.C * c.R * c.S, ny = (size_t)c.K * c.P * c.Q;
        size_t ns = st_conv2d_scratch_floats(&c), nd = st_dense_conv_scratch_floats(&c, (int)threads);
        float *x = st_alloc(nx * 4), *w = st_alloc(nw * 4), *b = st_alloc((size_t)c.K * 4), *y = st_alloc(ny * 4);
        float *s = st_alloc((ns > nd ? ns : nd) * 4 + 64);
        for (size_t i = 0; i < nx; i++) x[i] = st_rng_uniform(&r);
        for (size_t i = 0; i < nw; i++) w[i] = st_rng_uniform(&r) - 0.5f;
        for (int k = 0; k < c.K; k++) b[k] = 0.1f;
        st_dense_conv d;
        st_error err = {0};
        if (st_dense_conv_pack(&d, &c, w, &err) != ST_OK) return fprintf(stderr, "%s\n", err.msg), 1;
        double flop = 2.0 * (double)ny * c.C * c.R * c.S, med[2];
        for (int which = 0; which < 2; which++) {
            for (int it = -3; it < iters; it++) {
                double a = omp_get_wtime();
                if (which == 0) st_conv2d_forward(&c, y, x, w, b, s);
                else st_dense_conv_forward(&d, &c, y, x, b, NULL, 0, s);
                if (it >= 0) t[it] = omp_get_wtime() - a;
            }
            qsort(t, (size_t)iters, sizeof *t, cmpd);
            med[which] = t[iters / 2];
        }
        sum_b += med[0], sum_o += med[1];
        printf("%-28s %9.3f %9.1f %9.3f %9.1f %6.2fx", L->name, 1e3 * med[0], flop / med[0] * 1e-9,
               1e3 * med[1], flop / med[1] * 1e-9, med[0] / med[1]);
        for (int i = 0; i < nsp; i++) {
            const int sp = sps[i];
            float *ws = st_alloc(nw * 4);
            const size_t per = nw / (size_t)c.K;
            for (size_t j = 0; j < nw; j++) {
                const size_t k = j / per, at = blocks ? (k & ~(size_t)3) * per + j % per : j;
                if (at == j) ws[j] = st_rng_uniform(&r) < sp / 100.0 ? 0.0f : w[j];
                else ws[j] = ws[at] == 0.0f ? 0.0f : w[j]; /* the block's first row decided */
            }
            st_csr m;
            memset(&m, 0, sizeof m);
            if (st_csr_pack_layout(&m, &c, ws, NULL, ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS, &err) != ST_OK)
                return fprintf(stderr, "%s\n", err.msg), 1;
            float *ss = st_alloc((st_conv2d_sparse_scratch_floats(&m) + 16) * 4);
            for (int it = -3; it < iters; it++) {
                double a = omp_get_wtime();
                st_conv2d_sparse_forward(&c, &m, y, x, b, ss, &err);
                if (it >= 0) t[it] = omp_get_wtime() - a;
            }
            qsort(t, (size_t)iters, sizeof *t, cmpd);
            printf(" %9.3f %6.2fx %6.2fx", 1e3 * t[iters / 2], med[1] / t[iters / 2],
                   st_sparse_expected_speedup_infer_w(&c, ws, sp / 100.0));
            st_free(ss), st_free(ws);
            st_csr_free(&m);
        }
        printf("\n");
        st_dense_conv_free(&d);
        st_free(x), st_free(w), st_free(b), st_free(y), st_free(s);
    }
    printf("%-28s %9.3f %9s %9.3f %9s %6.2fx\n", "sum", 1e3 * sum_b, "", 1e3 * sum_o, "", sum_b / sum_o);
    free(t);
    return 0;
}
