/* Dense convolution for inference, one image at a time (the engine's batch-1 case):
 * weights packed once into panels of ST_DENSE_MR output channels, the input unrolled
 * panel by panel (im2col into the panel layout, or read in place for 1x1 stride-1
 * convolutions), and register-blocked microkernels (8 output channels x 16-48 output
 * positions) that keep the tile in registers over the whole reduction.
 *
 * Why not im2col + sgemm: at batch 1 the GEMMs are small and skinny (K = 16-512 rows,
 * P*Q = 49-25600 columns); OpenBLAS pays packing and threading per call and, with the
 * AVX2 kernels this environment selects, ran ResNet-18 at a third of ONNX Runtime's
 * speed. The microkernels live in dense_kernels_<isa>.c (AVX-512, AVX2); without AVX2
 * the engine keeps the im2col + OpenBLAS path (st_dense_conv_supported). */
#ifndef ST_DENSE_H
#define ST_DENSE_H

#include <stddef.h>
#include <stdint.h>

#include "st_common.h"
#include "st_cpu.h"
#include "act_kernels.h"
#include "st_ops.h"

#define ST_DENSE_MR 8 /* output channels per weight panel and microkernel tile */

typedef struct st_dense_conv {
    int K, CRS;    /* output channels; reduction length C*R*S */
    int kpanels;   /* ceil(K / ST_DENSE_MR) */
    float *wp;     /* [kpanels][CRS][MR], rows past K zero (st_alloc'ed); NULL with wc */
    float *wc;     /* channel vectors: [K / 64][CRS][64] (st_alloc'ed), else NULL */
    float *wg;     /* Winograd stem: [36][wg_K4][4C] transformed weights (st_alloc'ed), else NULL */
    int wg_K4;     /* K rounded up to a multiple of 4 */
} st_dense_conv;

/* Winograd stem: 6x6 stride-2 convolutions over 1-4 channels (yolov5's first layer; pads
 * up to 5, groups 1, no dilation) on AVX-512, as F(4x4, 3x3) over the space-to-depth
 * input (dense_wino.c says why). st_dense_conv_pack takes this form for them; the
 * environment variable ST_DENSE_NO_WINO turns it off, for comparisons. Internal: */
int st__wino_ok(const st_conv2d *c);
st_status st__wino_pack(st_dense_conv *d, const st_conv2d *c, const float *w, st_error *err);
/* Blocks of 8 tiles (32 output columns) across an output row of Q columns. */
static inline int st__wino_blocks(int Q) { return ((Q + 3) / 4 + 7) / 8; }
/* Floats of the kernel's row copies, and of one part's buffers in all (both multiples
 * of 16). */
size_t st__wino_rows_floats(int C, int Q);
size_t st__wino_part_floats(const st_conv2d *c);
/* st_dense_conv_forward of a Winograd-packed d: parts on OpenMP threads, or one part
 * inside a parallel region (column bands). */
void st__wino_forward(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x, const float *bias,
                      const st_epi_op *ops, int n_ops, float *scratch);
/* Part p of np of st_dense_conv_forward (scratch: st_dense_conv_scratch_floats for np
 * threads). */
void st__wino_part(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x, const float *bias,
                   const st_epi_op *ops, int n_ops, float *scratch, int p, int np);
/* One image: pairs of tile rows (8 output rows) [tp0, tp1); the epilogue's ADD sources
 * at y_index (this image's offset in the tensor). */
void st__wino_rows_avx512(const st_conv2d *c, const float *U, int K4, const float *x, float *y, const float *bias,
                          const st_epi_op *ops, int n_ops, size_t y_index, int tp0, int tp1, float *scratch);

/* Channel vectors: convolutions the direct mode runs (below) with K a multiple of 64
 * compute tiles of 64 output channels (in the vector lanes) x ST_DENSE_CV_NP output
 * positions, broadcasting one input value per position and reduction step. The
 * positions of a tile need not be neighbours, so a map's P*Q positions fill the tiles
 * without the padding a 16-lane row of positions has on 7x7-20x20 maps, and the input is
 * read in place (no panel copy). out [NP][64] = init (zero when NULL; init may be out)
 * + sum over k < crs of w [k][64] x x[koff[k] + pos[i]], for i < np (1 .. NP; out's
 * rows past np untouched). AVX-512 only, where the input
 * planes fit in half of L2 (dense_conv.c says why); the environment variable
 * ST_DENSE_NO_CVEC turns it off, for comparisons. */
#define ST_DENSE_CV_NP 6
void st_dense_cvec_avx512(int np, int crs, const float *w, const float *x, const int32_t *koff,
                          const int32_t *pos, const float *init, float *out);
/* (Internal, dense_cvec.c.) Part p of np of one image's channel-vector tiles: y [K][P*Q]
 * written in place with the bias and the epilogue (ops at y_index), each tile while it
 * is in L1. xp, koff: the direct mode's phase planes (plane_floats of them in all) and
 * tap offsets; output position (p, q) sits at p*Wh + q on their grid. part_scratch:
 * st__dense_cvec_part_floats(c) floats of this part's own. */
void st__dense_cvec_part(const st_dense_conv *d, const st_conv2d *c, int Wh, double plane_floats,
                         float *y, const float *xp, const int32_t *koff, const float *bias,
                         const st_epi_op *ops, int n_ops, size_t y_index, st_epi_rows_fn epi_rows,
                         float *part_scratch, int p, int np);
size_t st__dense_cvec_part_floats(const st_conv2d *c);
/* Chunks of the reduction the channel-vector tiles run c's in (1: whole). */
int st__dense_cvec_chunks(const st_conv2d *c);

/* C[m][j] = epi((accumulate ? C[m][j] : bias[m], 0 without) + sum_k a[k*MR + m] * B_k[j])
 * for m < mr, j < nr, where row B_k = b + k*ldb (koff NULL) or b + koff[k]; columns
 * j >= nr are neither read nor written. epi is the n_ops ops of act_kernels.h (ADD
 * sources: the addend of C[0][0], rows ldc apart), applied before the store on AVX-512
 * (the tile is written once), on the stored tile on AVX2. */
typedef void (*st_dense_ukr)(int kc, const float *a, const float *b, size_t ldb,
                             const int32_t *koff, float *c, size_t ldc, int mr, int nr,
                             const float *bias, int accumulate, const st_epi_op *ops, int n_ops);

/* The AVX-512 microkernels for 16, 32 and 48 columns (index nv-1), with rows ldb apart
 * (ukr) and at per-row offsets (ukr_off). */
void st_dense_ukr_avx512(st_dense_ukr ukr[3], st_dense_ukr ukr_off[3]);
/* The same tiles in 4 x 16 blocks for AVX2 + FMA. */
void st_dense_ukr_avx2(st_dense_ukr ukr[3], st_dense_ukr ukr_off[3]);

/* 1 when st_dense_conv_forward runs this convolution on this CPU (groups == 1 and
 * AVX2 or AVX-512 selected; ST_ISA can lower it). */
int st_dense_conv_supported(const st_conv2d *c);
/* How much faster the packed form runs c than the plain packed kernels: > 1 where it is
 * another algorithm (the Winograd stem), else 1. Cost models compare against it. */
double st_dense_conv_gain(const st_conv2d *c);
/* Packs w [K, C, R, S]; ST_ERR_NOMEM, or ST_ERR_INPUT when not supported. */
st_status st_dense_conv_pack(st_dense_conv *d, const st_conv2d *c, const float *w, st_error *err);
void st_dense_conv_free(st_dense_conv *d);

/* How st_dense_conv_forward runs c with this many threads (tests, benchmarks), and in
 * how many chunks of the reduction (1: each tile's whole reduction at once). */
const char *st_dense_conv_mode(const st_conv2d *c, int threads);
int st_dense_conv_chunks(const st_conv2d *c, int threads);

/* Scratch floats st_dense_conv_forward needs with up to `threads` OpenMP threads. */
size_t st_dense_conv_scratch_floats(const st_conv2d *c, int threads);
/* y [N, K, P, Q] = epi(conv(x) + bias) (bias may be NULL; the epilogue is n_ops ops of
 * act_kernels.h, ADD sources shaped like y), every image in turn, OpenMP threads across
 * the output tiles; the epilogue runs on each tile as it is finished (in L1), or on the
 * way from the padded grid to y when that is compacted. Deterministic: each output is
 * one thread's sum in a fixed order. */
void st_dense_conv_forward(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x,
                           const float *bias, const st_epi_op *ops, int n_ops, float *scratch);
/* The same as nparts parts, for callers that keep their own team of threads across
 * operators: part p (0 <= p < nparts) computes its share, and every part calls
 * sync(sync_ctx) at the same points (a barrier of the team) between phases. Available
 * where st_dense_conv_parts_ok says so (direct and in-place 1x1 convolutions; not the
 * unrolled mode, whose panels are per thread). Scratch as for nparts threads. */
int st_dense_conv_parts_ok(const st_conv2d *c, int nparts);
void st_dense_conv_forward_part(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x,
                                const float *bias, const st_epi_op *ops, int n_ops, float *scratch,
                                int part, int nparts, void (*sync)(void *ctx), void *sync_ctx);

#endif
