/* Unstructured-sparse convolution and linear layers: packed weights, kernels, operators.
 *
 * ---------------------------------------------------------------- Packed format (st_csr)
 * The weight of a convolution [K, C/g, R, S] is viewed as the matrix W[K, cols] with
 * cols = C/g*R*S (group g owns rows [g*K/g, (g+1)*K/g) and its own input channels); a
 * linear layer [O, I] is the 1x1 convolution K = O, C = I on 1x1 images (N = batch).
 *  - row_ptr[K+1], col_idx[nnz] (column within the group's block, ascending in a row;
 *    for the direct kxk layout sorted by (s, r, channel): tap column, tap row, channel),
 *    val[nnz]: CSR over output channels. A nonzero is a mask position that is on (with
 *    a mask), or a nonzero weight (without one): a masked-on weight that happens to be 0
 *    keeps its slot and its gradient.
 *  - The transposed index (t_ptr, t_row, t_src, t_val) is a CSR of W^T whose rows are
 *    "virtual input channels": input channel c and, for strides > 1, the phase
 *    (r*dil_h mod stride_h, s*dil_w mod stride_w) of the tap. For a linear layer or a
 *    stride-1 1x1 conv that is exactly W^T row by row; for a kxk conv one transposed row
 *    gathers the R*S columns of one input channel (every tap reading the same input
 *    plane), so backward-input writes each input plane from one row of the index.
 *    t_row[i] is the output channel, t_src[i] the position in val (t_val[i] =
 *    val[t_src[i]], refreshed each step without re-sorting).
 *  - x_off[nnz] / t_off[nnz]: addresses premultiplied for the operator's buffer layout
 *    (below), so a kernel reads X[off[e] + j] with no index arithmetic; x_cls / t_cls
 *    and the lane-mask tables for the direct layout's image borders.
 * Pack once per mask change (st_csr_pack*), refresh values after every optimizer step
 * (st_csr_refresh: O(nnz) gather from the dense weights; the pattern is fixed).
 * Depthwise convolutions should stay dense (st_sparse_should_use says no), though the
 * operators accept any group count.
 *
 * ---------------------------------------------------------------- How the conv runs
 * No im2col, two layouts (chosen at pack time from the shape):
 *  - Direct (stride 1, output as big as the input, planes >= 64 pixels: every 3x3 and
 *    1x1 conv of YOLO/ResNet blocks). Output (p, q) and input (p, q) share the flat
 *    index j = p*W + q, so tap (r, s) of a nonzero is the constant shift
 *    (r*dil - pad)*W + (s*dil - pad): the kernel reads x and dy and writes y and dx in
 *    place, per sample, in bands of rows. Taps that fall off the image (padding) are
 *    switched off per lane by precomputed masks (masked loads never touch them).
 *  - Banded (strided convs, small planes, everything else). The input is seen as
 *    "virtual planes": zero padded, split into stride phases (a stride-2 conv is a
 *    stride-1 conv over 4*C phase planes with a ceil(R/2) x ceil(S/2) kernel), each
 *    Hv x Wv with Wv = ceil((W + 2 pad) / stride). Output (p, q) of sample n sits at
 *    column (n*Hv + p)*Wv + q and reads the plane at that column plus dr*Wv + ds.
 *    Columns with q >= Q or p >= P are computed and thrown away (5% at 40x40, 40% at
 *    7x7). Bands of L virtual output rows (samples stacked, so small images batch up)
 *    copy their slice of the padded, phase-split input (halo included) into a
 *    per-thread buffer that stays in L2, run the kernel and write valid outputs to y.
 * For inference three more packings (ST_CSR_TAPS, ST_CSR_CBLK, ST_CSR_QUADS below):
 * strided layers with long output rows put each tap column in its own plane so that
 * every load is aligned, layers with a big input slice per kernel tile run their
 * nonzeros by blocks of input channels so that each block's slice stays in L1, and
 * layers pruned in blocks of 4 output channels run four rows per load of the input.
 * Backward-input runs the same kernel over the transposed index (reading dy, banded or
 * in place) and adds into dx (banded: undoing the phase split). The weight gradient is
 * one dot product per nonzero over the same data, threads owning output channels (or,
 * banded with x the bigger side, input channels: each row's channel-major sub-range).
 *
 * Integration (one layer): when its mask changes, st_csr_pack (and decide with
 * st_sparse_should_use); after every optimizer step, st_csr_refresh from the dense
 * weights; forward/backward with st_conv2d_sparse_*, the weight gradient coming out per
 * nonzero (dval, zero it like any gradient) and going back with st_csr_scatter_grad.
 * Activations should be 64-byte aligned: the kernels' vector loads then stay inside
 * cache lines where the plane sizes allow (split loads cost them ~1.6x).
 *
 * Threads: OpenMP over bands (forward, backward-input) and over output or input
 * channels (weight gradient); small layers run on one thread. Every output element and
 * every dval is produced by one thread in a fixed order: results are deterministic (for
 * a fixed thread count and ISA). Do not call the operators from inside a parallel region
 * (the scratch is split per thread). */
#ifndef ST_SPARSE_H
#define ST_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "act_kernels.h"
#include "st_common.h"
#include "st_cpu.h"
#include "st_ops.h"

/* Buffer geometry an st_csr was packed for (filled by st_csr_pack*). */
typedef struct st_sparse_geom {
    int direct;          /* 1: stride-1 conv with P == H, Q == W read in place */
    int taps;            /* 1: banded, forward only, one plane per tap column (ST_CSR_TAPS) */
    int sh, sw, PH;      /* stride and number of phases (sh * sw) */
    int Hv, Wv;          /* virtual (padded, phased) plane */
    int dr_max, ds_max;  /* largest tap shift in virtual rows / columns */
    int L;               /* band height in virtual output rows */
    int Lw;              /* banded weight gradient: taller bands (fewer per-band sums) */
    int ldb;             /* band input buffer: row stride per virtual channel */
    int ldyb, gd;        /* band dy buffer: row stride per output channel, front guard */
    int ldo;             /* band output staging: row stride */
    int ldbw, ldybw;     /* the same two strides for the weight gradient's taller bands */
    size_t thread_floats;/* scratch floats per thread */
    size_t part_floats;  /* direct: of which weight-gradient partial lanes */
} st_sparse_geom;

/* Columns of the AVX-512 spmm's widest tile over lane-masked (direct kxk) X: 7 vectors,
 * one mask register each (k1-k7). Planners that weigh passes over the nonzeros use it. */
#define ST_SPARSE_DIRECT_TILE_COLS 112

/* Image rows the AVX-512 row kernel (spmm_rows) takes per call when each row is nv
 * vectors: its 8 accumulators. Planners that size a call's input use it. */
#define ST_SPARSE_ROWS_PER_CALL(nv) (8 / (nv))

/* The signatures of spmm and spmm_rows (and of their quad forms, spmm4 and spmm4_rows). */
typedef void (*st_spmm_fn)(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                           const float *X, ptrdiff_t ldx, int n, float *Y, ptrdiff_t ldy,
                           const float *bias, int accumulate, const uint8_t *cls,
                           const uint16_t *xmask, const st_epi_op *ops, int n_ops);
typedef void (*st_spmm_rows_fn)(int r0, int r1, const int32_t *ptr, const int32_t *idx,
                                const float *val, const float *X, ptrdiff_t ldxr, int nrows, int n,
                                float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias,
                                int accumulate, const st_epi_op *ops, int n_ops);

typedef struct st_sparse_kernels {
    st_isa isa;
    /* Y rows [0, r1 - r0) (ldy apart) over n columns; then the epilogue ops (n_ops may be
     * 0): an ADD op's src is the addend of Y[0], laid out like Y (ldy). */
    st_spmm_fn spmm;
    /* Image rows: output row j in [0, nrows) of channels [r0, r1) (Y + j*ldyr, channels
     * ldy apart) is spmm's over the n <= 128 columns at X + j*ldxr; the epilogue ops as
     * spmm's, an ADD src laid out like Y; accumulate adds Y's contents (a channel block
     * after the first, ST_CSR_CBLK). Lets a banded conv write y and apply its epilogue
     * in registers, without staging rows of stride Wv. NULL: the caller stages. */
    st_spmm_rows_fn spmm_rows;
    void (*sddmm)(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                  ptrdiff_t ldy, const float *X, ptrdiff_t ldx, int n, float *dval,
                  const uint8_t *cls, const uint16_t *xmask, float *part);
    /* Stride-2 layout helpers for i < n: deint2 splits src into d0[i] = src[2i],
     * d1[i] = src[2i+1] (st_kernels' own, set by st_sparse_kernels_init); int2_add adds
     * back: dst[2i] += s0[i], dst[2i+1] += s1[i]. */
    void (*deint2)(float *d0, float *d1, const float *src, size_t n);
    void (*int2_add)(float *dst, const float *s0, const float *s1, int n);
    /* The tap planes of a 3x3 stride-2 pad-1 row (ST_CSR_TAPS): for j < Q, d0[j] =
     * src[2j - 1], d1[j] = src[2j], d2[j] = src[2j + 1], each 0 where the index leaves
     * [0, W); zeros for j in [Q, Wv). Wv a multiple of 16 and the d rows 64-byte
     * aligned for speed. NULL: the caller builds them in general code. */
    void (*taps3)(float *d0, float *d1, float *d2, const float *src, int W, int Q, int Wv);
    /* spmm over the quads of ST_CSR_QUADS: rows [r0, r1) multiples of 4, ptr indexed by
     * quad (r / 4), four values per entry (val[4e + j]: row 4q + j). NULL: no quads. */
    st_spmm_fn spmm4;
    /* spmm_rows over the quads (rows [r0, r1) multiples of 4, as spmm4). */
    st_spmm_rows_fn spmm4_rows;
} st_sparse_kernels;

typedef struct st_csr {
    st_conv2d conv;      /* the shape packed for; conv.N is not used */
    int groups, rows, cols; /* per group: W block [rows, cols] */
    int nnz;
    int32_t *row_ptr;    /* [groups*rows + 1] */
    int32_t *col_idx;    /* [nnz] */
    float *val;          /* [nnz] */
    int32_t *x_off;      /* [nnz] forward/weight-gradient addresses (layout of geom) */
    int32_t *x_offw;     /* [nnz] banded: weight-gradient addresses (taller bands); else NULL */
    int t_rows;          /* virtual input channels: C * PH */
    int32_t *t_ptr;      /* [t_rows + 1] */
    int32_t *t_row;      /* [nnz] output channel of each transposed entry */
    int32_t *t_src;      /* [nnz] index into val */
    int32_t *t_off;      /* [nnz] backward-input addresses */
    float *t_val;        /* [nnz] = val[t_src[i]] */
    unsigned char *vc_used; /* [t_rows] 1 if some nonzero reads that virtual channel */
    /* Direct kxk mode: the mask class of every entry, and the lane masks of every band
     * position in a sample: fmask/bmask [band][class][mask_nvec] (forward and weight
     * gradient / backward-input). NULL otherwise. Backward class of tap (r, s): r*S + s
     * + 1. Forward class: (s + 1)*Rp + r, Rp = R rounded up to a power of two, so that
     * class >> log2(Rp) names the tap column. Row 0 of either table is no tap's: in the
     * forward table it holds, per vector, log2(Rp) where no tap reads outside the image
     * vertically (away from the top and bottom rows, or any row of a map with halo
     * rows), else 0; there every tap of a column has the same masks (only horizontal
     * ones), so kernels may run a row's entries of one column under one mask load
     * (runs are 3x longer). In the backward table row 0 is zero. */
    uint8_t *x_cls, *t_cls;
    uint16_t *fmask, *bmask;
    int mask_nvec;
    int64_t band_ldc;    /* > 0: packed by st_csr_pack_band (input channels this far apart) */
    /* ST_CSR_CBLK: the nonzeros again, grouped by cb_n blocks of input channels: block
     * b's row r at [cb_ptr[b*(K+1) + r], cb_ptr[b*(K+1) + r + 1]) of cb_off / cb_val /
     * cb_cls (cb_src: the position in val). cb_n 0: not grouped. */
    int cb_n;
    int32_t *cb_ptr, *cb_off, *cb_src;
    float *cb_val;
    uint8_t *cb_cls;
    /* ST_CSR_QUADS: rows 4q .. 4q + 3 as one row of the union of their patterns: quad q's
     * entries at [q_ptr[q], q_ptr[q + 1]) of q_off / q_cls, four values each in q_val
     * (q_src: their positions in val, -1 where a row lacks that column: value 0).
     * q_n: number of quads (K / 4), 0 when not built. */
    int q_n;
    int32_t *q_ptr, *q_off, *q_src;
    float *q_val;
    uint8_t *q_cls;
    st_sparse_geom geom;
    st_sparse_kernels k; /* kernels the operators use for this weight (set when packed) */
} st_csr;


/* Packs the weights of conv c (w [K, C/g, R, S]; mask the same size, 0/1 bytes, or NULL
 * to take the nonzero weights). c->N is the largest batch it will run: at batch 1 every
 * stride-1 "same" conv runs in place (direct mode), at larger batches only planes of 64
 * pixels and more. Frees what m held before (m must be zeroed or packed). On error m is
 * left empty (all NULL) and err says why. */
st_status st_csr_pack(st_csr *m, const st_conv2d *c, const float *w, const unsigned char *mask,
                      st_error *err);
/* Same for a linear layer w [out_f, in_f]. */
st_status st_csr_pack_linear(st_csr *m, int in_f, int out_f, const float *w,
                             const unsigned char *mask, st_error *err);
/* The same with a layout choice (for tests and benchmarks): 0 automatic, 1 banded,
 * 2 direct wherever the shape allows it; or'ed with ST_CSR_TAPS, a strided conv that
 * runs banded gets the forward-only tap-column planes (below). */
st_status st_csr_pack_layout(st_csr *m, const st_conv2d *c, const float *w,
                             const unsigned char *mask, int layout, st_error *err);
/* Banded strided convs, for inference: the band buffer holds, per input channel, row
 * phase a and tap column s, the plane x[i*sh + a - pad_h][j*sw + s*dil_w - pad_w] for
 * output columns j (rows of Wv floats: Q, or Q rounded up to 16 where whole output rows
 * are the kernel's tiles). Every tap then reads its plane at a whole-row shift, so the
 * kernels' loads start on 64-byte boundaries (each unaligned load crosses a cache line:
 * yolov5n's 3x3 stride-2 kernel loops ran 1.7x faster aligned). The buffer holds S/sw
 * times the input's floats (1.5x for 3x3 stride 2). The backward refuses such packings. */
#define ST_CSR_TAPS 4
/* The forward runs the nonzeros block of input channels after block, adding into its
 * output, so that each block's slice of the input stays in L1 across all rows (where
 * the whole slice would not fit and rows have enough nonzeros per block). */
#define ST_CSR_CBLK 16
/* Four output channels at a time where rows come in fours that share their nonzero
 * columns (pruned with mask_type [4, 1]): the forward loads each X vector once for four
 * FMAs. Built only where the padding to the union of each four rows' patterns adds at
 * most 1/4 of the nonzeros and the CPU has the quad kernel (AVX-512); then it replaces
 * the channel blocks, whose aim (fewer L1 misses per FMA) it serves better. Forward
 * only uses it; the backward keeps the plain rows. */
#define ST_CSR_QUADS 32
/* The fraction of w [K, C, R, S] the quad copy would hold (nonzeros plus padding), or
 * -1 where packing with ST_CSR_QUADS would build none (shape, padding, or no quad kernel
 * on this CPU): the planner's cost model asks before packing. */
double st_csr_quads_density(const st_conv2d *c, const float *w);
/* Direct mode on a band of rows held with its halo (the tensor-column schedule and the
 * engine's blocked maps), with ST_CSR_CBLK's channel blocks where they pay: c is
 * the band as a "same" stride-1 conv of H rows (P == H), whose input sits in a buffer
 * of ldc floats per channel with the pad_h rows above and below its H rows present
 * (real rows or the map's zero padding), so no tap is masked vertically; x points at
 * the first of the H rows. Forward only (st_conv2d_sparse_forward*); ST_ERR_INPUT
 * when the shape has no direct mode. */
st_status st_csr_pack_band(st_csr *m, const st_conv2d *c, const float *w, int64_t ldc,
                           st_error *err);
/* Forces the kernels used with m (tests, benchmarks); returns the ISA now in use, clamped
 * to what the CPU has. Packing picks st_cpu_select_isa() (ST_ISA can lower it). */
st_isa st_csr_set_isa(st_csr *m, st_isa isa);
void st_csr_free(st_csr *m);
/* val[e] = w[position of e]; then t_val. The dense array must have the packed shape. */
void st_csr_refresh(st_csr *m, const float *w);
/* t_val[i] = val[t_src[i]] (after writing val directly). */
void st_csr_sync_transposed(st_csr *m);
/* Dense index (into w [K, C/g, R, S]) of nonzero e, for all e: pos[nnz]. */
void st_csr_positions(const st_csr *m, int64_t *pos);
/* dw[position of e] += dval[e]: the sparse weight gradient into the optimizer's dense array. */
void st_csr_scatter_grad(const st_csr *m, const float *dval, float *dw);
/* w = the packed weights as a dense array (zeros off the pattern). */
void st_csr_unpack(const st_csr *m, float *w);

/* ---------------------------------------------------------------- Kernels
 * Rows r in [r0, r1) of a CSR (ptr, idx, val); row r of Y / dY is at (r - r0) * ldy.
 *  spmm:  Y[r][j] = (accumulate ? Y[r][j] : 0) + (bias ? bias[r] : 0)
 *                   + sum_{e in row r} val[e] * X[idx[e] * ldx + j],     j in [0, n)
 *  sddmm: dval[e] += sum_{j < n} dY[r][j] * X[idx[e] * ldx + j],         e in row r
 * With idx = column and ldx = the X row stride these are the matrix products
 * Y = W X, dX += W^T dY (with the transposed index) and dW = dY X^T at the nonzeros;
 * the operators pass premultiplied offsets and ldx = 1. sddmm with part != NULL adds
 * into part[(e - ptr[r0]) * 16 + lane] instead of dval (the 16 lanes sum to the dot
 * product), so many short calls pay one horizontal sum at the end (st_sparse_reduce16).
 * Lane masks (cls and xmask both NULL, or both given): X element j of nonzero e is read
 * only if bit j % 16 of xmask[cls[e] * ceil(n/16) + j / 16] is set, else taken as 0 (and
 * never touched: its address may lie outside any buffer). Direct convolutions use this
 * for the taps of a padded kernel that fall outside the image. The table must be
 * readable four words past its last row (kernels load up to four vectors' masks at
 * once), and its row 0 is the run row described at st_csr's x_cls (all zeros: none). */

/* The shift under which a kernel tile over row-0 words xm[0 .. nv) may run a tap
 * column's classes under one mask load: cls >> shift equal (0: classes one by one). */
static inline int st_sparse_run_shift(const uint16_t *xm, int nv) {
    unsigned f = 0xFFFF;
    for (int v = 0; v < nv; v++) f &= xm[v];
    return (int)f;
}


/* dval[e] += sum of part[e * 16 .. e * 16 + 15] for e < n (fixed order). */
void st_sparse_reduce16(float *dval, const float *part, int n);

/* Fills k for isa (lowered to what the CPU supports). */
void st_sparse_kernels_init(st_sparse_kernels *k, st_isa isa);
void st_sparse_kernels_scalar(st_sparse_kernels *k);
void st_sparse_kernels_avx2(st_sparse_kernels *k);
void st_sparse_kernels_avx512(st_sparse_kernels *k);
void st_sparse_quads_avx512(st_sparse_kernels *k);

/* ---------------------------------------------------------------- Operators
 * Same descriptor and NCHW layouts as st_conv2d_forward/backward; m must have been
 * packed for this shape (any N). dval[nnz] is the gradient of m->val (use
 * st_csr_scatter_grad for a dense dw). Backward accumulates (+=) into dx, dval, db;
 * NULL ones are skipped. Scratch: st_conv2d_sparse_scratch_floats(m) floats (may be 0),
 * sized for omp_get_max_threads() at the time of the call. Returns ST_OK, or
 * ST_ERR_INPUT when m was packed for another shape (then nothing is written). */
size_t st_conv2d_sparse_scratch_floats(const st_csr *m);
st_status st_conv2d_sparse_forward(const st_conv2d *c, const st_csr *m, float *y, const float *x,
                                   const float *b, float *scratch, st_error *err);
/* The same with an epilogue (act_kernels.h; up to ST_EPI_MAX_OPS ops) applied to the
 * outputs as they are computed, the way inference fuses activations and residual adds:
 * in registers on AVX-512, on each finished row (in cache) otherwise. An ADD op's src
 * is an array shaped like y (the addend of y[i] is src[i]). */
st_status st_conv2d_sparse_forward_epi(const st_conv2d *c, const st_csr *m, float *y,
                                       const float *x, const float *b, const st_epi_op *ops,
                                       int n_ops, float *scratch, st_error *err);
/* The same writing output channel k at y + k*ldy (ldy >= P*Q), one image: a band of
 * rows goes straight into its rows of a whole map (ADD sources laid out the same way).
 * Else ST_ERR_INPUT and nothing written. */
st_status st_conv2d_sparse_forward_ldy(const st_conv2d *c, const st_csr *m, float *y, size_t ldy,
                                       const float *x, const float *b, const st_epi_op *ops,
                                       int n_ops, float *scratch, st_error *err);
/* The same reading input channel c at x + c*ldx (ldx >= H*W: a window of rows of a
 * larger map); in direct mode ldx must be H*W (its offsets are packed with the stride:
 * st_csr_pack_band for others). */
st_status st_conv2d_sparse_forward_ld(const st_conv2d *c, const st_csr *m, float *y, size_t ldy,
                                      const float *x, size_t ldx, const float *b, const st_epi_op *ops,
                                      int n_ops, float *scratch, st_error *err);
/* One part of st_conv2d_sparse_forward_epi, for callers that keep their own team of
 * nparts threads across several operators (the engine's row-owning layer schedule):
 * part p computes its static share of the bands (whole bands of output rows when there
 * are enough, else blocks of output channels), using the scratch of thread p. The
 * parts together write exactly what one st_conv2d_sparse_forward_epi call writes; the
 * caller synchronises before y is read. Small work goes to part 0 alone. */
st_status st_conv2d_sparse_forward_part(const st_conv2d *c, const st_csr *m, float *y,
                                        const float *x, const float *b, const st_epi_op *ops,
                                        int n_ops, float *scratch, int part, int nparts,
                                        st_error *err);
st_status st_conv2d_sparse_backward(const st_conv2d *c, const st_csr *m, float *dx, float *dval,
                                    float *db, const float *dy, const float *x, float *scratch,
                                    st_error *err);

/* Linear y[N, out_f] = x[N, in_f] W^T + b, with m from st_csr_pack_linear. It runs as the
 * 1x1 conv over N 1x1 images: bands transpose x into [in_f, samples] so the kernel
 * vectorises over the batch. */
size_t st_linear_sparse_scratch_floats(const st_csr *m);
st_status st_linear_sparse_forward(const st_csr *m, float *y, const float *x, const float *b,
                                   int N, float *scratch, st_error *err);
st_status st_linear_sparse_backward(const st_csr *m, float *dx, float *dval, float *db,
                                    const float *dy, const float *x, int N, float *scratch,
                                    st_error *err);

/* ---------------------------------------------------------------- When to use it
 * 1 if the sparse operators are expected to beat the dense ones (forward + backward of
 * a training step) for conv c (c->N = the batch) at this sparsity (fraction of zeros,
 * 0..1); a linear layer is the 1x1 conv N = batch, C = in_f, K = out_f, H = W = 1.
 * A formula fitted to tools/bench_sparse on the target machine; see sparse_cost.c. */
int st_sparse_should_use(const st_conv2d *c, double sparsity);
/* The modelled speedup the sparse kernels must exceed: the cost lines' error. */
#define ST_SPARSE_MIN_SPEEDUP 1.3
/* The expected speedup (dense time / sparse time) behind that decision. */
double st_sparse_expected_speedup(const st_conv2d *c, double sparsity);
/* The same for inference (forward only, as the engine runs it). */
double st_sparse_expected_speedup_infer(const st_conv2d *c, double sparsity);
/* For inference against the packed dense kernels of engine/dense (st_dense.h), which
 * the engine runs where the CPU has AVX-512. */
double st_sparse_expected_speedup_infer_packed(const st_conv2d *c, double sparsity);
/* The modelled speedup above which the engine takes the sparse kernels for c: 1.3 (the
 * lines' error), 1.0 for an image stem on a CPU that splits 512-bit FMAs, whose line is
 * fitted on its own shapes (sparse_cost.c). */
double st_sparse_infer_min_speedup(const st_conv2d *c);
/* The same where the weights pack into quads, qdensity from st_csr_quads_density. */
double st_sparse_expected_speedup_infer_quads(const st_conv2d *c, double qdensity);
/* What the engine plans with for packed-dense-capable conv c and weights w: the quads
 * line where st_csr_quads_density says quads form, otherwise the packed one. */
double st_sparse_expected_speedup_infer_w(const st_conv2d *c, const float *w, double sparsity);
/* For an inference linear layer (in_f -> out_f) at batch N. */
double st_sparse_expected_speedup_infer_linear(int N, int in_f, int out_f, double sparsity);

#endif
