/* Operations on plain float arrays, llm.c style: each op is a *_forward / *_backward pair.
 * Layout is NCHW, contiguous. Backward functions ACCUMULATE (+=) into every gradient
 * buffer they are given (dx, dw, db); a NULL gradient pointer means "not needed".
 * Every fast op has a *_ref twin: plain loops, no BLAS, no SIMD, used by the tests.
 * Threading: fast ops may use OpenMP and OpenBLAS; results are deterministic for a
 * fixed thread count (no atomics, fixed reduction order). */
#ifndef ST_OPS_H
#define ST_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Conv2d */
typedef struct {
    int N, C, H, W;         /* input  [N, C, H, W] */
    int K, R, S;            /* weight [K, C/groups, R, S], bias [K] */
    int stride_h, stride_w;
    int pad_h, pad_w;       /* symmetric zero padding */
    int dil_h, dil_w;
    int groups;             /* C % groups == 0 and K % groups == 0; groups == C is depthwise */
    int P, Q;               /* output [N, K, P, Q], filled by st_conv2d_init */
} st_conv2d;

/* Fills P and Q; returns 0, or -1 when the shape is invalid (e.g. output size < 1). */
int st_conv2d_init(st_conv2d *c);
/* Floats of scratch the fast forward/backward need (same buffer serves both). When it
 * returns 0 (depthwise, or a 1x1 conv one image at a time) scratch may be NULL. */
size_t st_conv2d_scratch_floats(const st_conv2d *c);
/* Samples the fast path packs into one im2col buffer and one sgemm (1 <= chunk <= N).
 * Exposed so tests can build shapes that exercise several chunks and a short last one. */
int st_conv2d_batch_chunk(const st_conv2d *c);
void st_conv2d_forward(const st_conv2d *c, float *y, const float *x, const float *w,
                       const float *b /* may be NULL */, float *scratch);
void st_conv2d_backward(const st_conv2d *c, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, float *scratch);
void st_conv2d_forward_ref(const st_conv2d *c, float *y, const float *x, const float *w,
                           const float *b);
void st_conv2d_backward_ref(const st_conv2d *c, float *dx, float *dw, float *db,
                            const float *dy, const float *x, const float *w);

/* ---------------------------------------------------------------- Linear */
/* y[N, out_f] = x[N, in_f] * w[out_f, in_f]^T + b[out_f] (no single-letter names: complex.h, pulled in by cblas.h, defines I) */
void st_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int in_f,
                       int out_f);
/* Outputs [o0, o1) of every sample, one weight row at a time against all N inputs: for
 * small N, where sgemm would spend more on packing w than on multiplying. A team splits
 * a layer by output ranges. */
void st_linear_forward_rows(float *y, const float *x, const float *w, const float *b, int N, int in_f,
                            int out_f, int o0, int o1);
void st_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int N, int in_f, int out_f);
void st_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N,
                           int in_f, int out_f);
void st_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int N, int in_f, int out_f);

/* ---------------------------------------------------------------- BatchNorm2d */
/* PyTorch semantics. Training: normalise with the batch mean and biased variance,
 * update running_mean/var with running = (1 - momentum) * running + momentum * batch
 * (running_var uses the unbiased batch variance). Eval: use the running statistics.
 * save_mean[C] and save_invstd[C] are written by the forward pass (both modes) and read
 * by backward. In eval mode backward treats mean/invstd as constants. */
typedef struct {
    int N, C, HW;
    float eps, momentum;
} st_batchnorm;
void st_batchnorm_forward(const st_batchnorm *bn, float *y, const float *x, const float *gamma,
                          const float *beta, float *running_mean, float *running_var,
                          float *save_mean, float *save_invstd, int training);
void st_batchnorm_backward(const st_batchnorm *bn, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *save_mean, const float *save_invstd, int training);
void st_batchnorm_forward_ref(const st_batchnorm *bn, float *y, const float *x,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, float *save_mean, float *save_invstd,
                              int training);
void st_batchnorm_backward_ref(const st_batchnorm *bn, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *gamma,
                               const float *save_mean, const float *save_invstd, int training);

/* ---------------------------------------------------------------- BatchNorm2d + activation */
/* y = act(batchnorm(x)) in one op, same results as st_batchnorm_forward then the
 * activation's forward (bit-identical forward; backward equal up to summation order).
 * zscale[C] receives the per-channel float scale gamma*invstd the forward used, so that
 * backward recomputes z = bn(x) exactly. aux [N*C*HW] (SiLU only, may be NULL) receives
 * sigmoid(z), which spares backward its expf; ReLU/LeakyReLU ignore it.
 * Backward accumulates dx, dgamma, dbeta (each may be NULL) from dy = dL/dy; dz_buf
 * [N*C*HW] (may be NULL: dz is then computed twice) is overwritten with dL/dz. */
typedef enum { ST_ACT_RELU, ST_ACT_LEAKYRELU, ST_ACT_SILU } st_act_kind;
void st_bn_act_forward(const st_batchnorm *bn, st_act_kind act, float slope, float *y,
                       float *aux, const float *x, const float *gamma, const float *beta,
                       float *running_mean, float *running_var, float *save_mean,
                       float *save_invstd, float *zscale, int training);
void st_bn_act_backward(const st_batchnorm *bn, st_act_kind act, float slope, float *dx,
                        float *dgamma, float *dbeta, float *dz_buf, const float *dy,
                        const float *aux, const float *x, const float *gamma,
                        const float *beta, const float *save_mean, const float *save_invstd,
                        const float *zscale, int training);

/* ---------------------------------------------------------------- Activations */
/* n elements; backward reads x (the forward input) and accumulates into dx. */
void st_relu_forward(float *y, const float *x, size_t n);
void st_relu_backward(float *dx, const float *dy, const float *x, size_t n);
void st_leakyrelu_forward(float *y, const float *x, size_t n, float slope);
void st_leakyrelu_backward(float *dx, const float *dy, const float *x, size_t n, float slope);
void st_silu_forward(float *y, const float *x, size_t n);
void st_silu_backward(float *dx, const float *dy, const float *x, size_t n);
void st_sigmoid_forward(float *y, const float *x, size_t n);
void st_sigmoid_backward(float *dx, const float *dy, const float *y /* forward OUTPUT */,
                         size_t n);
void st_clip_forward(float *y, const float *x, size_t n, float lo, float hi);
void st_clip_backward(float *dx, const float *dy, const float *x, size_t n, float lo, float hi);
/* Softmax over the C channels of each pixel: x, y [N, C, HW]; backward reads the output. */
void st_softmax_forward(float *y, const float *x, int N, int C, int HW);
void st_softmax_backward(float *dx, const float *dy, const float *y, int N, int C, int HW);

/* ---------------------------------------------------------------- Pooling */
typedef struct {
    int N, C, H, W;
    int kh, kw, stride_h, stride_w, pad_h, pad_w;
    int ceil_mode;          /* PyTorch ceil_mode */
    int count_include_pad;  /* AvgPool only (PyTorch default 1) */
    int P, Q;               /* filled by st_pool_init */
} st_pool;
int st_pool_init(st_pool *p);
/* Input rows [*hs, *he) of output row oh's window, clipped to the map (empty where the
 * window lies wholly in the padding). */
static inline void st_pool_window_rows(const st_pool *p, int oh, int *hs, int *he) {
    const int h0 = oh * p->stride_h - p->pad_h;
    *he = h0 + p->kh < p->H ? h0 + p->kh : p->H;
    *hs = h0 < 0 ? 0 : h0;
}
/* argmax[N*C*P*Q] receives the flat index (within the H*W plane) of each max. */
void st_maxpool_forward(const st_pool *p, float *y, int32_t *argmax, const float *x);
void st_maxpool_backward(const st_pool *p, float *dx, const float *dy, const int32_t *argmax);
/* The forward alone (inference): no argmax, branch-free, the same y (NaN wins). */
void st_maxpool_forward_infer(const st_pool *p, float *y, const float *x);
/* Part `part` of nparts of the same, on the calling thread (a caller's team): each part
 * the same share of every plane's output rows, as the convolutions around it split
 * their maps; on planes of fewer than ST_POOL_PART_PLANE outputs whole planes instead
 * (a share of rows is a few cache lines, the one at its edge written by both cores,
 * and the sparse convolutions split such maps by channels). */
#define ST_POOL_PART_PLANE 256
void st_maxpool_forward_infer_part(const st_pool *p, float *y, const float *x, int part, int nparts);
/* Output rows [r0, r1) of every channel of one image (p->N is not used): row h of input
 * channel ch at x + ch*ldx + (h - xrow0)*W (the rows the windows take must be there,
 * above xrow0 too), output row o at y + ch*ldy + (o - r0)*Q. For maps stored blocked by
 * thread (the engine's). */
void st_maxpool_forward_infer_rows(const st_pool *p, float *y, size_t ldy, const float *x, size_t ldx,
                                   int xrow0, int r0, int r1);
void st_avgpool_forward(const st_pool *p, float *y, const float *x);
void st_avgpool_backward(const st_pool *p, float *dx, const float *dy);
/* y[N, C] = mean over H*W */
void st_global_avgpool_forward(float *y, const float *x, int N, int C, int HW);
void st_global_avgpool_backward(float *dx, const float *dy, int N, int C, int HW);

/* ---------------------------------------------------------------- Elementwise and shape */
void st_add_forward(float *y, const float *a, const float *b, size_t n);
void st_add_backward(float *da, float *db, const float *dy, size_t n);
void st_mul_forward(float *y, const float *a, const float *b, size_t n);
void st_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                     size_t n);
/* Concat along channels: inputs[i] is [N, cs[i], HW]; y is [N, sum(cs), HW]. */
void st_concat_forward(float *y, const float *const *inputs, const int *cs, int n_inputs, int N,
                       int HW);
/* The same for rows [h0, h1) of every plane (inputs and y seen as [N, c, H, W]). */
void st_concat_rows(float *y, const float *const *inputs, const int *cs, int n_inputs, int N,
                    int H, int W, int h0, int h1);
void st_concat_backward(float *const *dinputs /* entries may be NULL */, const float *dy,
                        const int *cs, int n_inputs, int N, int HW);
/* Nearest upsampling by an integer factor: x [N, C, H, W] -> y [N, C, H*f, W*f]. */
void st_upsample_nearest_forward(float *y, const float *x, int N, int C, int H, int W, int f);
/* The same for input rows [h0, h1) of every plane (output rows [h0*f, h1*f)). */
void st_upsample_nearest_rows(float *y, const float *x, int N, int C, int H, int W, int f, int h0,
                              int h1);
void st_upsample_nearest_backward(float *dx, const float *dy, int N, int C, int H, int W, int f);
/* Inverted dropout: y = x * keep / (1 - p), keep drawn from a counter-based RNG on
 * (seed, index) so the result depends on nothing but its arguments. mask[n] stores the
 * 0 / (1/(1-p)) factors for backward. */
void st_dropout_forward(float *y, float *mask, const float *x, size_t n, float p, uint64_t seed);
void st_dropout_backward(float *dx, const float *dy, const float *mask, size_t n);

/* ---------------------------------------------------------------- Loss */
/* Mean softmax cross-entropy over N rows of C logits. probs[N*C] receives the softmax.
 * Returns the loss. Labels out of [0, C) are a caller bug (asserted by the graph). */
float st_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int N,
                              int C);
/* dlogits += (probs - onehot) / N * scale */
void st_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int N,
                              int C, float scale);

#endif
