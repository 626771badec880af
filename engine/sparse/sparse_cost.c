/* When the sparse operators pay off: a cost model fitted to tools/bench_sparse.
 *
 * For every layer of YOLOv5n/s (320, batch 16) and ResNet-18 (224, batch 16) the
 * measured ratio sparse/dense time (fwd + bwd-input + bwd-weight, one thread, this
 * 2-core Zen 5 with OpenBLAS's Haswell kernels) is close to a line in the density d:
 *
 *     t_sparse / t_dense = A * d + B
 *
 * A is the cost of a nonzero relative to a dense multiply-add. It grows with the
 * inner dimension C/g*R*S, because OpenBLAS gets more efficient there while the sparse
 * kernel stays load-bound: about 0.5 at 16-64, 1 at 128-256, 2-2.5 at 1152-4608; tiny
 * planes (<= 100 pixels) cost the per-sample direct kernels a little more.
 * B is the part that does not shrink with d: moving x and y (and, for banded layouts,
 * the copies into the band buffers), proportional to m = (elements of x and y) /
 * (multiply-adds of the dense layer); it is what caps stride-2 and 1x1-stride-2 layers
 * (B up to 1.2) and makes few-column layers (linear on small batches) expensive.
 * Fitted on the 2 layouts separately (rms error of the ratio about 20-30%):
 *   direct: A = -0.62 + 0.237 log2(inner) + 0.136 [HW <= 100],   B = 0.008 + 1.5 m
 *   banded: A = -1.28 + 0.300 log2(inner) + 0.076 [PQ <= 100],   B = 0.05 + 20.8 m
 *   both:   A >= 0.3, B += 8 / (N*P*Q)
 * The sparse path is chosen when the predicted speedup 1 / (A d + B) exceeds 1.3: on
 * the benchmark data that picks no layer that measured slower than dense (one at 1.00
 * with 2 threads) and misses only layers gaining < 1.3x or close to it. At 50% it
 * picks dense for most layers; at >= 80% sparse for all but 1x1 stride-2 convs and
 * small-batch linear layers. Depthwise convs stay dense. */
#include <math.h>

#include "conv2d_internal.h"
#include "st_sparse.h"

/* Density (fraction of nonzeros) the models use: at least 0.5%, at most 1. */
static double density(double sparsity) {
    double d = 1.0 - sparsity;
    return d < 0.005 ? 0.005 : d > 1.0 ? 1.0 : d;
}

/* m: elements of x and y per multiply-add of the dense layer (one sample). */
static double traffic_per_mac(const st_conv2d *c) {
    const double inner = (double)(c->C / c->groups) * c->R * c->S, PQ = (double)c->P * c->Q;
    return ((double)c->C * c->H * c->W + (double)c->K * PQ) / ((double)c->K * inner * PQ);
}

static double expected_speedup(const st_conv2d *conv, double sparsity, int training) {
    st_conv2d c = *conv;
    if (st_conv2d_init(&c) != 0 || st__conv2d_is_depthwise(&c)) return 0.0;
    const double d = density(sparsity);
    const double inner = (double)(c.C / c.groups) * c.R * c.S;
    const double HW = (double)c.H * c.W, PQ = (double)c.P * c.Q;
    const double m = traffic_per_mac(&c);
    const int direct = c.stride_h == 1 && c.stride_w == 1 && c.P == c.H && c.Q == c.W &&
                       HW >= 64 && c.R * c.S <= 255;
    double A, B;
    if (direct) {
        A = -0.62 + 0.237 * log2(inner) + (HW <= 100 ? 0.136 : 0.0);
        B = 0.008 + 1.5 * m;
    } else {
        A = -1.28 + 0.300 * log2(inner) + (PQ <= 100 ? 0.076 : 0.0);
        B = 0.05 + 20.8 * m;
    }
    if (A < 0.3) A = 0.3;
    /* Few output columns (a linear layer on a training batch: N*P*Q = 64): the kernels
     * get 4 vectors of work per nonzero and the transposes around them dominate.
     * Measured in training (cnn-small, batch 64, 95%): the sparse 3136 -> 128 linear
     * took 3.9x the dense one's time, where the fit above predicts a gain. */
    if (training && (double)(c.N > 0 ? c.N : 1) * PQ < 256) return 0.5;
    B += 8.0 / ((double)(c.N > 0 ? c.N : 1) * PQ);
    return 1.0 / (A * d + B);
}

int st_sparse_should_use(const st_conv2d *c, double sparsity) {
    return st_sparse_expected_speedup(c, sparsity) > ST_SPARSE_MIN_SPEEDUP;
}

double st_sparse_expected_speedup(const st_conv2d *c, double sparsity) {
    return expected_speedup(c, sparsity, 1);
}

/* Inference runs the forward kernel only, which has no transposes around it: the
 * few-column penalty above does not apply. Measured with the engine at batch 1 (2
 * threads; yolov5n 95% at 320, torchvision resnet18 90% / 95% at 224): running the layers
 * with fewer than 256 output pixels sparse too (P5 of yolov5n, ResNet's layer3 and
 * layer4) took the median latency from 10.7 / 22.1 / 20.6 ms to 8.8 / 9.0 / 6.6 ms. */
double st_sparse_expected_speedup_infer(const st_conv2d *c, double sparsity) {
    return expected_speedup(c, sparsity, 0);
}

/* A network's first convolution: a large kernel over the few channels of an image
 * (ResNet's 7x7 and YOLOv5's 6x6, both stride 2, over RGB), on a CPU that splits its
 * 512-bit FMAs in halves (st_cpu_fma512_split: Zen 4). Pruned to at most 50% (the usual
 * recipes spare it), it is a quarter to a third of a 90-95% model's time. Its sparse
 * form runs on the tap planes, every load aligned, with rows of 50-75 nonzeros and
 * (ResNet's, whose tile input is 77 KiB) channel blocks. On a Zen 4 host (the packed
 * dense kernels at 105-110 GFLOP/s a core) t_sparse / t_packed at 50% zeros measured
 * (tools/bench_dense, 1 and 2 threads; the engine's step times, 1 thread) 0.79-0.90 on
 * yolov5n's and 0.80-0.89 on ResNet-18's (0.93 before its channel blocks); at 90%
 * 0.21-0.34, at 95% 0.14-0.28. The line below (slope 1.6) is at or above each of those,
 * so at 50% it predicts 1.02-1.09x, and the threshold for these layers is 1
 * (st_sparse_infer_min_speedup): the line is fitted on the shapes it decides. On Zen 5
 * (full-width FMAs, the dense stem at 170-190 GFLOP/s) the sparse stem measured slower,
 * 0.78 against 0.66 ms on yolov5n's: there the general line (dense) stands. */
static int is_image_stem(const st_conv2d *c) {
    return c->groups == 1 && c->C <= 4 && c->R * c->S >= 25 && c->stride_h == 2 && c->stride_w == 2 &&
           st_cpu_fma512_split();
}

/* Against the packed dense kernels (engine/dense), forward only. tools/bench_dense
 * measures both on the ResNet-18 and yolov5n layer shapes at 90% and 95% random zeros
 * (2 threads, batch 1): per layer t_sparse / t_packed = A d + B has A between 0.6 and
 * 3.5 (most 3x3 layers 2.8-3.5; stride-2 and few-channel layers, where the packed
 * kernel is least efficient, near 1) and B between 0.01 and 0.38, growing with the
 * data moved per multiply-add m (defined above). The conservative line A = 3.5,
 * B = 0.05 + 5 m predicts every measured ratio at or below what was measured, so no
 * layer is sent to the sparse kernel that ran slower there; it gives up some gain on
 * stride-2 layers and keeps 50%-sparse layers dense (not measured). 1x1 stride-1 convs
 * have their own line (measured later, note below). */
double st_sparse_expected_speedup_infer_packed(const st_conv2d *conv, double sparsity) {
    st_conv2d c = *conv;
    if (st_conv2d_init(&c) != 0 || st__conv2d_is_depthwise(&c)) return 0.0;
    if (c.R == 1 && c.S == 1 && c.stride_h == 1 && c.stride_w == 1 && c.groups == 1)
        return 1.0 / (2.2 * density(sparsity) + 0.3);
    if (is_image_stem(&c)) return 1.0 / (1.6 * density(sparsity) + 0.05 + 8.0 * traffic_per_mac(&c));
    return 1.0 / (3.5 * density(sparsity) + 0.05 + 5.0 * traffic_per_mac(&c));
}

double st_sparse_infer_min_speedup(const st_conv2d *conv) {
    st_conv2d c = *conv;
    return st_conv2d_init(&c) == 0 && is_image_stem(&c) ? 1.0 : ST_SPARSE_MIN_SPEEDUP;
}

/* (Above, 1x1 stride-1 convs: since the sparse kernels apply the epilogue in registers
 * and write y in place, they beat the packed kernel on every yolov5n 1x1 shape (16-512
 * input and 16-256 output channels, 10x10 to 80x80, SiLU epilogue, one thread) from 80%
 * zeros: t_sparse / t_packed 0.57-0.78 at 80%, 0.32-0.63 at 90%, 0.18-0.58 at 95%,
 * 0.76-1.04 at 70%, 0.93-1.79 at 50%. The line 2.2 d + 0.3 picks sparse from about 79%
 * zeros; the general line above kept the 16-channel and 30-output (detection head)
 * 1x1 convs dense at 80-95%, where sparse measured 1.4-1.7x faster.) */

/* Against the packed dense kernels where the weights come in [4, 1] blocks (rows in
 * fours of one pattern) and the engine runs them as quads (ST_CSR_QUADS), forward only.
 * d is the quads' density (st_csr_quads_density: nonzeros plus padding). tools/bench_dense
 * --blocks on the same layer shapes at 50, 70, 90 and 95% zeros (2 threads): t_quads /
 * t_packed has a slope of 0.6-1.15 in d and an intercept of 0.03 (3x3 layers on 14x14
 * to 56x56) to 0.35 (yolov5n's 6x6 stem over 3 channels), growing with m like the lines
 * above; quads beat the packed kernel on every shape already at 50% (1.34-1.6x on 1x1
 * layers, 1.34x on the 1x1 stride-2 downsample, 1.38x on yolov5n's stem, 1.75x on
 * ResNet-18's, 1.6-2.9x on 3x3 layers), where the unstructured kernels lose 2x. The
 * lines below predict 1.2-1.6x at 50% for those layers: below what was measured except
 * on the 1x1 at 80x80 (1.43 predicted, 1.34 measured). */
double st_sparse_expected_speedup_infer_quads(const st_conv2d *conv, double qdensity) {
    st_conv2d c = *conv;
    if (st_conv2d_init(&c) != 0 || st__conv2d_is_depthwise(&c)) return 0.0;
    const double d = density(1.0 - qdensity);
    if (c.R == 1 && c.S == 1 && c.stride_h == 1 && c.stride_w == 1 && c.groups == 1)
        return 1.0 / (1.1 * d + 0.15);
    /* In the engine (input from memory, SiLU epilogue) yolov5n's stem in blocks at 50%
     * ran 0.54 ms on quads against 1.05 packed on one thread, 0.29-0.31 against 0.525 on
     * two: 1.8-1.9x, where the line below says 1.35 (its intercept is from
     * tools/bench_dense, hot caches). The stems now weigh quads against the Winograd form
     * (1.5x the packed speed, st_dense_conv_gain), which ran 0.54 and 0.34 ms there. */
    if (is_image_stem(&c)) return 1.0 / (1.0 * d + 0.03);
    return 1.0 / (1.1 * d + 0.03 + 10.0 * traffic_per_mac(&c));
}

/* The line the engine plans with for a dense-capable conv with weights w: where quads
 * would be built, the better of the two lines (quads measured at least as fast as the
 * plain rows on every layer probed; the quads line is the more cautious one where much
 * data moves per multiply-add, as on 1x1 stride-2 layers), otherwise the unstructured. */
double st_sparse_expected_speedup_infer_w(const st_conv2d *c, const float *w, double sparsity) {
    const double qd = st_csr_quads_density(c, w), u = st_sparse_expected_speedup_infer_packed(c, sparsity);
    if (qd < 0.0) return u;
    const double q = st_sparse_expected_speedup_infer_quads(c, qd);
    return q > u ? q : u;
}

/* Linear layers at small inference batches (a matrix-vector product per sample): the
 * dense side is bound by reading the weights, the sparse one by its nonzeros plus a
 * fixed few microseconds. Measured (2 threads, batch 1, this machine, 80-95% random
 * zeros): 512x1000 and 1280x1000 gain 1.1/2.0/3.2-3.5x at 80/90/95%, 3136x128 (few
 * outputs) 1.0/1.2-1.4/1.5-1.8x, 128x10 loses 6x (all overhead). The line below
 * tracks those within about 15%; batches of 16 and more use the conv model. Those
 * sparse times were the conv path's; batches under 16 now run sparse_linear.c's
 * matrix-vector product (ResNet-18's 95% classifier 1.6-1.7x faster), so the line errs
 * towards dense. */
double st_sparse_expected_speedup_infer_linear(int N, int in_f, int out_f, double sparsity) {
    if (N >= 16) {
        st_conv2d c = {.N = N, .C = in_f, .H = 1, .W = 1, .K = out_f, .R = 1, .S = 1, .stride_h = 1,
                       .stride_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
        return expected_speedup(&c, sparsity, 0);
    }
    if ((double)in_f * out_f < 65536.0) return 0.5;
    return 1.0 / (4.2 * density(sparsity) + (out_f < 256 ? 0.45 : 0.1));
}
