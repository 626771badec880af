/* The dense convolution's packing and driver (st_dense.h): weights packed once, the
 * input unrolled into column panels, tiles of ST_DENSE_MR channels x NR positions
 * handed to the microkernels across OpenMP threads. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv2d_internal.h"
#include "st_dense.h"

#define MR ST_DENSE_MR
/* Unrolled input up to this size is packed whole and shared by the threads (it stays in
 * L2 while every weight panel streams past it once); larger inputs are unrolled one
 * panel per thread at a time, each weight panel then streaming once per column panel. */
#define ST_DENSE_SHARED_B_BYTES (512u << 10)
/* With a shared unrolled input, the reduction runs in chunks whose slice of it (all
 * column panels) fits in this much of L2, reused by every weight panel of a thread. */
#define ST_DENSE_KC_BYTES (256u << 10)

/* Weights past this many bytes are streamed from memory on every call (see make_plan). */
#define ST_DENSE_STREAM_W_BYTES (4u << 20)

typedef struct plan {
    int nv, nr, jpanels;
    size_t PQ;         /* positions computed: P*Q, or (P-1)*Wh + Q on the phase planes' grid
                          (direct, flat tiles) */
    int inplace;       /* 1x1, stride 1, no padding: the input is the unrolled matrix */
    int direct;        /* other convs of stride <= 2: computed on the grid of the zero-padded
                          input split into stride phases (see forward_direct) */
    int Hp, Wp;        /* padded input size */
    int Hh, Wh;        /* direct: size of one phase plane, Hp / stride rounded up */
    int shared;        /* pack every panel first, threads over weight panels */
    int kc;            /* reduction chunk (shared mode), a multiple of 8 or all of C*R*S */
    int jp_outer;      /* direct: threads over column panels, each tile's whole reduction */
    int rows, tpr;     /* direct: tiles within output rows (tpr per row), written in place */
    int compact;       /* direct, flat tiles with Wh > Q: computed on the grid, then copied out */
    int cvec;          /* direct, channel vectors (st_dense.h): tiles of 64 channels x CV_NP
                          positions, written in place */
} plan;

static int is_inplace(const st_conv2d *c) {
    return c->R == 1 && c->S == 1 && c->stride_h == 1 && c->stride_w == 1 && c->pad_h == 0 &&
           c->pad_w == 0;
}

/* Modelled cost per computed column of a 16*nv-wide tile (index nv-1): NV = 1 is less
 * efficient (9 loads per 8 FMAs), NV = 2 slightly. */
static const double tile_cost[3] = {1.3, 1.05, 1.0};

/* Tile width: the least modelled time, counting the padding computed in the last panel. */
static int pick_nv(size_t PQ, double *cost_out) {
    int best = 3;
    double bc = 0;
    for (int nv = 3; nv >= 1; nv--) {
        size_t nr = 16u * (size_t)nv, padded = (PQ + nr - 1) / nr * nr;
        double t = (double)padded * tile_cost[nv - 1];
        if (nv == 3 || t < bc) best = nv, bc = t;
    }
    if (cost_out) *cost_out = bc;
    return best;
}

/* cvec: -1 decides channel vectors by the rule below (packing, modes); 0 or 1 follows
 * how the weights were packed (d->wc), since a band sub-problem of the columns schedule
 * (fewer rows, other padding) runs on the whole layer's packing and may fall on the
 * other side of the rule. */
static void make_plan(const st_conv2d *c, int threads, plan *p, int cvec) {
    const size_t crs = (size_t)c->C * c->R * c->S;
    p->inplace = is_inplace(c);
    /* 1x1 with stride: the unrolled panels gather just the pixels read (a quarter of the
     * input at stride 2); the phase planes would copy all of it */
    const int strided_1x1 = c->R == 1 && c->S == 1 && (c->stride_h > 1 || c->stride_w > 1);
    p->direct = !p->inplace && c->stride_h <= 2 && c->stride_w <= 2 && !strided_1x1;
    p->Hp = c->H + 2 * c->pad_h, p->Wp = c->W + 2 * c->pad_w;
    p->Hh = (p->Hp + c->stride_h - 1) / c->stride_h, p->Wh = (p->Wp + c->stride_w - 1) / c->stride_w;
    p->PQ = p->direct ? (size_t)(c->P - 1) * p->Wh + c->Q : (size_t)c->P * c->Q;
    double cost_flat;
    p->nv = pick_nv(p->PQ, &cost_flat);
    p->nr = 16 * p->nv;
    p->jpanels = (int)((p->PQ + (size_t)p->nr - 1) / (size_t)p->nr);
    /* Direct: tiles along the flat grid compute the Wh - Q columns between rows and need
     * a compacting copy (8 bytes moved per output: costly next to a short reduction),
     * tiles within output rows pad each row to the tile width but write the output in
     * place. The cheaper by modelled work, the copy counted as 32 / CRS of the compute
     * (measured: the copies are memory-bound). */
    p->rows = 0, p->tpr = 0;
    if (p->direct) {
        /* row tiles: 48 columns, the row's last tile only as wide as it needs (16/32/48) */
        const int full = c->Q / 48, rem_nv = (c->Q % 48 + 15) / 16;
        const double cost_row = 48.0 * full + (rem_nv ? 16.0 * rem_nv * tile_cost[rem_nv - 1] : 0.0);
        if (p->Wh != c->Q) cost_flat *= 1.0 + 32.0 / (double)crs;
        if (cost_row * c->P < cost_flat) {
            p->rows = 1, p->nv = 3, p->nr = 48;
            p->tpr = (c->Q + 47) / 48;
            p->jpanels = c->P * p->tpr;
        }
    }
    /* Channel vectors where the phase planes fit in half of L2: each tile reads its
     * positions' inputs as broadcasts, tap after tap and channel after channel, which
     * the row tiles stream as vectors. Against the tiles above (3x3, hot, 2 threads, one
     * run): planes of 450 KiB and less (ResNet-18's 3x3 layers on 28x28 and below,
     * yolov5n's on 40x40 and below, stride 1 or 2) 1.04-1.25x faster (7x7 and 10x10
     * maps gain most: 16-lane rows of positions there compute up to a third padding);
     * planes of 861 KiB (64 channels at 56x56, 32 at 80x80 stride 2) the same speed or
     * 0.9x (64 -> 128 channels stride 2). Long reductions run in chunks (dense_cvec.c),
     * so a panel's weights pass once per part, not once per tile: in the engine (dense
     * ResNet-18, 2 threads, per-step medians) layer3's 3x3 layers 0.89-0.92 -> 0.82-0.83
     * ms, layer4's (weights from memory) 1.06-1.08 -> 1.01-1.03, its stride-2 0.82 ->
     * 0.72; unchunked, layer4 had been slower than the row tiles (1.06-1.10 vs 0.95). */
    const double planes_bytes = 4.0 * c->C * c->stride_h * c->stride_w * p->Hh * p->Wh;
    p->cvec = p->direct && c->K % 64 == 0 && st_cpu_select_isa() >= ST_ISA_AVX512 &&
              (cvec >= 0 ? cvec : planes_bytes <= ST_DENSE_SHARED_B_BYTES && !getenv("ST_DENSE_NO_CVEC"));
    p->compact = p->direct && !p->rows && !p->cvec && p->Wh != c->Q;
    size_t b_bytes = (size_t)p->jpanels * crs * (size_t)p->nr * sizeof(float);
    p->shared = p->direct || b_bytes <= ST_DENSE_SHARED_B_BYTES || p->jpanels < 4 * threads;
    /* bytes of the input one reduction row spans: a row of every panel, or (direct) a
     * padded channel per R*S taps */
    double row_bytes = p->direct ? (double)p->Hh * p->Wh * c->stride_h * c->stride_w * sizeof(float) /
                                       (double)(c->R * c->S)
                                 : (double)p->jpanels * p->nr * sizeof(float);
    size_t kc = (size_t)(ST_DENSE_KC_BYTES / row_bytes) / 8 * 8;
    p->kc = kc < 32 ? 32 : kc >= crs ? (int)crs : (int)kc;
    /* Direct: a tile's whole reduction reads only its receptive field (C*R rows of about
     * nr + S columns), so the reduction needs no chunking for locality. Column panels
     * outer streams the weights once per column panel (sequential reads, prefetched);
     * weight panels outer streams the input planes once per weight panel. Measured on
     * ResNet-18's 3x3 layers (2 threads): column panels outer was faster on all four
     * (layer2 217 -> 281 GFLOP/s) even where it moves 1.5x the bytes, hence the factor
     * 4; otherwise weight panels outer, chunked when the input does not fit in L2. */
    p->jp_outer = 0;
    if (p->direct) {
        const double w_bytes = (double)c->K * crs * sizeof(float);
        const double in_bytes = (double)c->C * c->stride_h * c->stride_w * p->Hh * p->Wh * sizeof(float);
        const int kpanels = (c->K + MR - 1) / MR;
        /* Weights far past L2 (ResNet-18's layer4, 4.7-9.4 MB) come from memory: column
         * panels outer streams them once per column panel and each of two threads
         * streamed all of them; weight panels outer streams each once. layer4's four
         * convolutions: 4.38-4.54 -> 4.11-4.12 ms (profile, two alternated runs); layer3
         * (2.4 MB) was slower that way (3.07 -> 3.27 ms). */
        const int w_streams = w_bytes > ST_DENSE_STREAM_W_BYTES && p->jpanels > 1;
        if (!w_streams && w_bytes * p->jpanels <= 4.0 * in_bytes * kpanels) p->jp_outer = 1, p->kc = (int)crs;
        else if (in_bytes <= ST_DENSE_SHARED_B_BYTES) p->kc = (int)crs;
    }
}

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

const char *st_dense_conv_mode(const st_conv2d *c, int threads) {
    if (st__wino_ok(c)) return "Winograd F(4x4, 3x3) over the space-to-depth input";
    plan p;
    make_plan(c, threads, &p, -1);
    if (p.inplace) return p.shared ? "in-place, weight panels outer" : "in-place, column panels outer";
    if (!p.direct) return p.shared ? "unrolled, shared panels" : "unrolled, per-thread panels";
    if (p.cvec) return "direct, channel vectors";
    if (p.rows) return p.jp_outer ? "direct, row tiles, column panels outer" : "direct, row tiles";
    if (p.compact) return p.jp_outer ? "direct, grid + compaction, column panels outer" : "direct, grid + compaction";
    return "direct, grid in place";
}

int st_dense_conv_chunks(const st_conv2d *c, int threads) {
    if (st__wino_ok(c)) return 1;
    plan p;
    make_plan(c, threads, &p, -1);
    if (p.cvec) return st__dense_cvec_chunks(c);
    const int crs = c->C * c->R * c->S;
    return p.shared && !p.jp_outer ? (crs + p.kc - 1) / p.kc : 1;
}

int st_dense_conv_supported(const st_conv2d *c) {
    return c->groups == 1 && st_cpu_select_isa() >= ST_ISA_AVX2;
}

st_status st_dense_conv_pack(st_dense_conv *d, const st_conv2d *c, const float *w, st_error *err) {
    memset(d, 0, sizeof *d);
    if (!st_dense_conv_supported(c))
        return st_errorf(err, ST_ERR_INPUT, "dense conv kernel: needs groups 1 and AVX2");
    d->K = c->K;
    d->CRS = c->C * c->R * c->S;
    d->kpanels = (c->K + MR - 1) / MR;
    if (st__wino_ok(c)) return st__wino_pack(d, c, w, err);
    plan pl;
    make_plan(c, 1, &pl, -1); /* cvec does not depend on the thread count */
    if (pl.cvec) {
        d->wc = st_alloc((size_t)c->K * d->CRS * sizeof(float));
        if (!d->wc) return st_errorf(err, ST_ERR_NOMEM, "out of memory packing a %dx%d convolution", c->K, d->CRS);
        for (int kp = 0; kp < c->K / 64; kp++)
            for (int k = 0; k < d->CRS; k++)
                for (int m = 0; m < 64; m++)
                    d->wc[((size_t)kp * d->CRS + k) * 64 + m] = w[(size_t)(kp * 64 + m) * d->CRS + k];
        return ST_OK;
    }
    d->wp = st_alloc((size_t)d->kpanels * d->CRS * MR * sizeof(float));
    if (!d->wp) return st_errorf(err, ST_ERR_NOMEM, "out of memory packing a %dx%d convolution", c->K, d->CRS);
    for (int ip = 0; ip < d->kpanels; ip++)
        for (int k = 0; k < d->CRS; k++)
            for (int m = 0; m < MR; m++) {
                int row = ip * MR + m;
                d->wp[((size_t)ip * d->CRS + k) * MR + m] = row < c->K ? w[(size_t)row * d->CRS + k] : 0.0f;
            }
    return ST_OK;
}

void st_dense_conv_free(st_dense_conv *d) {
    if (!d) return;
    st_free(d->wp);
    st_free(d->wc);
    st_free(d->wg);
    memset(d, 0, sizeof *d);
}

/* Floats of one channel's phase planes: stride_h * stride_w planes of Hh x Wh. */
static size_t plane_floats(const st_conv2d *c, const plan *pl) {
    return (size_t)c->stride_h * c->stride_w * pl->Hh * pl->Wh;
}

size_t st_dense_conv_scratch_floats(const st_conv2d *c, int threads) {
    if (st__wino_ok(c)) return (size_t)(threads > 0 ? threads : 1) * st__wino_part_floats(c) + 16;
    plan p; /* without channel vectors: the same planes, plus the grid where compacting, so
               enough for either way a packing runs this shape */
    make_plan(c, threads, &p, 0);
    if (p.inplace) return 0;
    const size_t crs = (size_t)c->C * c->R * c->S;
    if (p.direct) { /* tap offsets, phase planes, then the output on the planes' grid when
                       compacting, or each part's channel-vector sums */
        const int may_cv = c->K % 64 == 0; /* channel vectors possible (packing decides) */
        const size_t cv = may_cv ? (size_t)(threads > 0 ? threads : 1) * pad16(st__dense_cvec_part_floats(c)) : 0;
        const size_t grid = p.compact ? pad16((size_t)c->K * p.PQ) : 0;
        const size_t planes = pad16(plane_floats(c, &p) * (size_t)c->C);
        /* channel vectors with threads: every part past the first its own planes too */
        const size_t own = may_cv && threads > 1 ? (size_t)(threads - 1) * planes : 0;
        return pad16(crs) + planes + (cv > grid ? cv : grid) + own;
    }
    size_t panel = crs * (size_t)p.nr;
    size_t own = (size_t)(threads > 0 ? threads : 1) * panel, all = (size_t)p.jpanels * panel;
    return own > all ? own : all;
}

/* Row i of the planes of row phase a of one channel of x, zero-padded: plane (a, b)
 * holds the padded input at rows i*sh + a, columns j*sw + b (zero past the padded map).
 * A unit of work of its own so that threads split the copy by rows (3-channel stems). */
static void phase_row(const st_conv2d *c, const plan *pl, float *dst, const float *x, int a, int i,
                      const st_kernels *k) {
    const int sh = c->stride_h, sw = c->stride_w, Hh = pl->Hh, Wh = pl->Wh, pw = c->pad_w;
    const int ih = i * sh + a - c->pad_h;
    const int inside = ih >= 0 && ih < c->H;
    const float *xr = x + (size_t)(inside ? ih : 0) * c->W;
    if (sw == 2 && inside) { /* both column phases in one deinterleaving pass */
        float *r0 = dst + ((size_t)(a * 2) * Hh + i) * Wh, *r1 = r0 + (size_t)Hh * Wh;
        /* input column 2m lands in phase pw % 2 at (2m + pw) / 2; the columns before and
         * after the written run are padding */
        float *re = pw % 2 ? r1 : r0, *ro = pw % 2 ? r0 : r1;
        float *ev = re + pw / 2, *od = ro + (pw + 1) / 2;
        const int np = c->W / 2, ne = np + c->W % 2;
        for (float *z = re; z < ev; z++) *z = 0.0f;
        for (float *z = ro; z < od; z++) *z = 0.0f;
        k->deint2(ev, od, xr, (size_t)np);
        if (c->W % 2) ev[np] = xr[c->W - 1];
        for (float *z = ev + ne; z < re + Wh; z++) *z = 0.0f;
        for (float *z = od + np; z < ro + Wh; z++) *z = 0.0f;
        return;
    }
    for (int b = 0; b < sw; b++) {
        float *row = dst + ((size_t)(a * sw + b) * Hh + i) * Wh;
        if (!inside) {
            memset(row, 0, (size_t)Wh * sizeof(float));
            continue;
        }
        int lo, hi; /* plane columns that land inside the input */
        st__valid_range(Wh, sw, b - pw, c->W, &lo, &hi);
        const float *src = xr + (b - pw);
        for (int j = 0; j < lo; j++) row[j] = 0.0f;
        if (sw == 1) memcpy(row + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
        else
            for (int j = lo; j < hi; j++) row[j] = src[(size_t)j * sw];
        for (int j = hi; j < Wh; j++) row[j] = 0.0f;
    }
}

/* Column panel jp of the unrolled image x: bp[k][j] for k = (c, r, s), j < nr: the
 * input under filter tap (r, s) of channel c at output position j0 + j (0 in the
 * padding and past the last position). */
static void pack_panel(const st_conv2d *c, const float *x, float *bp, size_t j0, int nr, size_t PQ) {
    const int Q = c->Q, H = c->H, W = c->W, sh = c->stride_h, sw = c->stride_w;
    const int nvalid = (int)(PQ - j0 < (size_t)nr ? PQ - j0 : (size_t)nr);
    const int p0 = (int)(j0 / (size_t)Q), q0 = (int)(j0 % (size_t)Q);
    float *dst = bp;
    for (int ch = 0; ch < c->C; ch++) {
        const float *xc = x + (size_t)ch * H * W;
        for (int r = 0; r < c->R; r++) {
            const int ih_off = r * c->dil_h - c->pad_h;
            for (int s = 0; s < c->S; s++, dst += nr) {
                const int iw_off = s * c->dil_w - c->pad_w;
                int lo, hi; /* output columns whose tap lands inside the row */
                st__valid_range(Q, sw, iw_off, W, &lo, &hi);
                int j = 0, p = p0, q = q0;
                while (j < nvalid) {
                    const int run = Q - q < nvalid - j ? Q - q : nvalid - j;
                    const int ih = p * sh + ih_off;
                    float *o = dst + j - q; /* o[qq] for qq in [q, q + run) */
                    if (ih < 0 || ih >= H) {
                        memset(dst + j, 0, (size_t)run * sizeof(float));
                    } else {
                        const float *row = xc + (size_t)ih * W + iw_off;
                        const int a = q > lo ? q : lo, b = q + run < hi ? q + run : hi;
                        for (int qq = q; qq < a && qq < q + run; qq++) o[qq] = 0.0f;
                        if (sw == 1) {
                            for (int qq = a; qq < b; qq++) o[qq] = row[qq];
                        } else {
                            for (int qq = a; qq < b; qq++) o[qq] = row[(size_t)qq * sw];
                        }
                        for (int qq = b > q ? b : q; qq < q + run; qq++) o[qq] = 0.0f;
                    }
                    j += run, q = 0, p++;
                }
                for (int jj = nvalid; jj < nr; jj++) dst[jj] = 0.0f;
            }
        }
    }
}

/* What every tile of one image's call shares. */
typedef struct run {
    const st_dense_conv *d;
    const plan *pl;
    st_dense_ukr f;
    const st_dense_ukr *fs; /* by width (16, 32, 48): a row's narrower last tile */
    const int32_t *koff;  /* direct: per-tap offsets, else NULL (rows ldb apart) */
    float *y;             /* this image's output (or the padded grid, direct + compact) */
    const float *bias;
    const st_epi_op *ops; /* the epilogue (ADD src: arrays like the caller's output) */
    int n_ops;            /* 0: none, or done later (compaction) */
    size_t y_index;       /* index of y[0] in the caller's output (epilogue offsets) */
    int P, Q;             /* output map (row tiles) */
} run;

/* Output tile (weight panel ip, column panel jp), reduction rows [k0, k0 + kc); b points
 * at row k0 of the column panel (or, with koff, at the panel's first position). The
 * microkernel applies the epilogue with the tile's last chunk. */
static inline void tile(const run *t, int ip, int jp, int k0, int kc, const float *b, size_t ldb) {
    const st_dense_conv *d = t->d;
    const plan *pl = t->pl;
    const int m0 = ip * MR, mr = d->K - m0 < MR ? d->K - m0 : MR;
    size_t j0 = (size_t)jp * pl->nr, ldc = pl->PQ;
    int nr = pl->PQ - j0 < (size_t)pl->nr ? (int)(pl->PQ - j0) : pl->nr;
    st_dense_ukr f = t->f;
    if (pl->rows) { /* output row p, columns q0.. (b points at the row's first position) */
        const int p = jp / pl->tpr, q0 = jp % pl->tpr * pl->nr, Q = t->Q;
        b += (size_t)q0;
        nr = Q - q0 < pl->nr ? Q - q0 : pl->nr;
        j0 = (size_t)p * Q + (size_t)q0, ldc = (size_t)t->P * Q;
        f = t->fs[(nr + 15) / 16 - 1];
    }
    float *c = t->y + (size_t)m0 * ldc + j0;
    st_epi_op o[ST_EPI_MAX_OPS];
    const int n_ops = k0 + kc == d->CRS ? t->n_ops : 0; /* with the tile's last chunk */
    if (n_ops) st_epi_ops_at(o, t->ops, n_ops, t->y_index + (size_t)m0 * ldc + j0);
    f(kc, d->wp + ((size_t)ip * d->CRS + (size_t)k0) * MR, b, ldb, t->koff ? t->koff + k0 : NULL, c,
      ldc, mr, nr, t->bias ? t->bias + m0 : NULL, k0 > 0, o, n_ops);
}

/* Direct: the grid position where column panel jp starts (row tiles: its row's start;
 * tile() adds the column). */
static inline size_t grid_pos(const plan *pl, int jp) {
    return pl->rows ? (size_t)(jp / pl->tpr) * pl->Wh : (size_t)jp * pl->nr;
}

/* Stride <= 2, not 1x1-in-place. Split the zero-padded input into its stride phases
 * (one plane for stride 1, four for stride 2). Filter tap (ch, r, s) of output position
 * (p, q) reads phase ((r*dh) % sh, (s*dw) % sw) of channel ch at row p + (r*dh)/sh,
 * column q + (s*dw)/sw: on the planes' grid (width Wh) every reduction row is a
 * contiguous run starting at position p*Wh + q plus a per-tap offset, so nothing is
 * unrolled. The Wh - Q columns between output rows are computed and dropped. */
typedef void (*sync_fn)(void *ctx);

static void omp_sync(void *ctx) {
    (void)ctx;
#pragma omp barrier
}

static void no_sync(void *ctx) { (void)ctx; }

/* Items [lo, hi) of n for part p of np: contiguous, as OpenMP's static schedule. */
static inline void prange(long n, int p, int np, long *lo, long *hi) {
    *lo = n * p / np, *hi = n * (p + 1) / np;
}

/* Part p of np of a direct convolution, the parts meeting at sync between phases: the
 * body of an OpenMP region (sync: its barrier) or one thread of a caller's team. */
static void direct_part(const st_dense_conv *d, const st_conv2d *c, const plan *pl, const st_dense_ukr *fs,
                        float *y, const float *x, const float *bias, const st_epi_op *ops, int n_ops,
                        float *scratch, int p, int np, sync_fn sync, void *sctx) {
    const size_t HWh = (size_t)pl->Hh * pl->Wh, chf = plane_floats(c, pl), PQ = (size_t)c->P * c->Q;
    int32_t *koff = (int32_t *)scratch;
    float *xp = scratch + pad16((size_t)d->CRS);
    float *yt = xp + pad16((size_t)c->C * chf); /* used when pl->compact */
    const int RS = c->R * c->S, kp = d->kpanels, jpn = pl->jpanels, sh = c->stride_h, sw = c->stride_w;
    const int compact = pl->compact; /* else tiles write the output itself */
    const st_epi_rows_fn epi_rows = st_epi_rows_for(st_cpu_select_isa()); /* compaction's */
    const st_dense_ukr f = fs[pl->nv - 1];
    st_kernels ek; /* the stride-2 deinterleave */
    st_kernels_init(&ek, st_cpu_select_isa());
    long lo, hi;
    prange(d->CRS, p, np, &lo, &hi); /* read by the tiles, after the first sync */
    for (long k = lo; k < hi; k++) {
        const int ch = (int)k / RS, r = ((int)k % RS) / c->S * c->dil_h, s = (int)k % c->S * c->dil_w;
        const size_t phase = (size_t)((r % sh) * sw + s % sw);
        koff[k] = (int32_t)((size_t)ch * chf + phase * HWh + (size_t)(r / sh) * pl->Wh + (size_t)(s / sw));
    }
    for (int n = 0; n < c->N; n++) {
        const float *xn = x + (size_t)n * c->C * c->H * c->W;
        float *yn = y + (size_t)n * c->K * PQ;
        /* compacting: the epilogue runs on the copied rows instead of the tiles */
        const run t = {d, pl, f, fs, koff, compact ? yt : yn, bias, ops, compact ? 0 : n_ops,
                       (size_t)n * c->K * PQ, c->P, c->Q};
        if (n) sync(sctx); /* the planes (and grid) of the previous image are read no more */
        if (pl->cvec) {
            /* Every part reads all of the planes, so each builds its own copy: split, a
             * part's tiles read half the lines from the other core, and the next layer's
             * build rewrote lines both cores held (ResNet-18's layer4 stride-2, two
             * threads: the build took as long as one thread's whole copy, the tiles 1.5x
             * one thread's half). */
            const size_t planes = pad16((size_t)c->C * chf), sums = pad16(st__dense_cvec_part_floats(c));
            float *part = xp + planes + (size_t)p * sums;
            float *mine = p == 0 ? xp : xp + planes + (size_t)np * sums + (size_t)(p - 1) * planes;
            for (int ch = 0; ch < c->C; ch++)
                for (int a = 0; a < sh; a++)
                    for (int i = 0; i < pl->Hh; i++)
                        phase_row(c, pl, mine + (size_t)ch * chf, xn + (size_t)ch * c->H * c->W, a, i, &ek);
            if (!n) sync(sctx); /* the tap offsets */
            st__dense_cvec_part(d, c, pl->Wh, (double)c->C * chf, yn, mine, koff, bias, ops, n_ops,
                                (size_t)n * c->K * PQ, epi_rows, part, p, np);
            continue;
        }
        /* rows outermost: each part splits the rows its tiles (also in row order) will
         * read, so the planes stay in its core's cache. Split by channels, every tile
         * read half its planes from the other core: 2 threads ran yolov5n's 16 -> 32
         * stride-2 layer slower than one (0.49-0.67 vs 0.42 ms). */
        prange((long)pl->Hh * c->C * sh, p, np, &lo, &hi);
        for (long it = lo; it < hi; it++) {
            const int a = (int)(it % sh), ch = (int)(it / sh % c->C), i = (int)(it / sh / c->C);
            phase_row(c, pl, xp + (size_t)ch * chf, xn + (size_t)ch * c->H * c->W, a, i, &ek);
        }
        sync(sctx);
        if (pl->jp_outer) {
            prange((long)jpn * kp, p, np, &lo, &hi);
            for (long it = lo; it < hi; it++) {
                const int jp = (int)(it / kp), ip = (int)(it % kp);
                tile(&t, ip, jp, 0, d->CRS, xp + grid_pos(pl, jp), 0);
            }
        } else {
            prange(kp, p, np, &lo, &hi); /* the same weight panels in every chunk */
            for (int k0 = 0; k0 < d->CRS; k0 += pl->kc) {
                const int kc = d->CRS - k0 < pl->kc ? d->CRS - k0 : pl->kc;
                for (long ip = lo; ip < hi; ip++)
                    for (int jp = 0; jp < jpn; jp++) tile(&t, (int)ip, jp, k0, kc, xp + grid_pos(pl, jp), 0);
            }
        }
        if (compact) { /* the epilogue, if any, on the way from the grid to y */
            sync(sctx);
            /* tiles by column panels wrote the grid by rows: each part copies its rows of
             * every channel, which are also the rows the next layer's part reads (by
             * channels, the next layer's plane build read half its rows from the other
             * core: ResNet-18's 56x56 layers chained, 2 threads, 0.87 ms against 0.74
             * on an input in place) */
            long q0 = 0, q1 = c->P;
            if (pl->jp_outer) prange(c->P, p, np, &q0, &q1), lo = 0, hi = c->K;
            else prange(c->K, p, np, &lo, &hi);
            for (long k = lo; k < hi && q0 < q1; k++) {
                const size_t o = (size_t)k * PQ + (size_t)q0 * c->Q;
                const float *src = yt + (size_t)k * pl->PQ + (size_t)q0 * pl->Wh;
                if (n_ops) {
                    st_epi_op eo[ST_EPI_MAX_OPS];
                    st_epi_ops_at(eo, ops, n_ops, t.y_index + o);
                    epi_rows(yn + o, c->Q, src, pl->Wh, (int)(q1 - q0), (size_t)c->Q, 0.0f, eo, n_ops);
                    continue;
                }
                for (long q = 0; q < q1 - q0; q++)
                    memcpy(yn + o + (size_t)q * c->Q, src + (size_t)q * pl->Wh, (size_t)c->Q * sizeof(float));
            }
        }
    }
}

/* Part p of np of an in-place 1x1 convolution (tiles read x and write y only: no sync). */
static void inplace_part(const st_dense_conv *d, const st_conv2d *c, const plan *pl, st_dense_ukr f,
                         const st_dense_ukr *fs, float *y, const float *x, const float *bias,
                         const st_epi_op *ops, int n_ops, int p, int np) {
    const int kp = d->kpanels, jpn = pl->jpanels;
    long lo, hi;
    for (int n = 0; n < c->N; n++) {
        const float *xn = x + (size_t)n * c->C * c->H * c->W;
        const run t = {d, pl, f, fs, NULL, y + (size_t)n * c->K * pl->PQ, bias, ops, n_ops,
                       (size_t)n * c->K * pl->PQ, c->P, c->Q};
        if (!pl->shared) {
            prange((long)jpn * kp, p, np, &lo, &hi);
            for (long it = lo; it < hi; it++)
                tile(&t, (int)(it % kp), (int)(it / kp), 0, d->CRS, xn + (size_t)(it / kp) * pl->nr, pl->PQ);
            continue;
        }
        /* chunk by chunk of the reduction; the same weight panels in every chunk, so a
         * part only adds to its own tiles */
        prange(kp, p, np, &lo, &hi);
        for (int k0 = 0; k0 < d->CRS; k0 += pl->kc) {
            const int kc = d->CRS - k0 < pl->kc ? d->CRS - k0 : pl->kc;
            for (long ip = lo; ip < hi; ip++)
                for (int jp = 0; jp < jpn; jp++)
                    tile(&t, (int)ip, jp, k0, kc, xn + (size_t)k0 * pl->PQ + (size_t)jp * pl->nr, pl->PQ);
        }
    }
}

static void pick_ukr(st_dense_ukr ukr[3], st_dense_ukr ukr_off[3]) {
    if (st_cpu_select_isa() >= ST_ISA_AVX512) st_dense_ukr_avx512(ukr, ukr_off);
    else st_dense_ukr_avx2(ukr, ukr_off);
}

int st_dense_conv_parts_ok(const st_conv2d *c, int nparts) {
    if (st__wino_ok(c)) return 1;
    plan pl;
    make_plan(c, nparts, &pl, -1);
    return pl.direct || pl.inplace;
}

/* Part p of np of a direct or in-place 1x1 convolution under plan pl. */
static void run_part(const st_dense_conv *d, const st_conv2d *c, const plan *pl, const st_dense_ukr ukr[3],
                     const st_dense_ukr ukr_off[3], float *y, const float *x, const float *bias,
                     const st_epi_op *ops, int n_ops, float *scratch, int p, int np, sync_fn sync, void *sctx) {
    if (pl->direct) direct_part(d, c, pl, ukr_off, y, x, bias, ops, n_ops, scratch, p, np, sync, sctx);
    else if (pl->inplace) inplace_part(d, c, pl, ukr[pl->nv - 1], ukr, y, x, bias, ops, n_ops, p, np);
}

void st_dense_conv_forward_part(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x,
                                const float *bias, const st_epi_op *ops, int n_ops, float *scratch,
                                int part, int nparts, void (*sync)(void *ctx), void *sync_ctx) {
    if (d->wg) {
        st__wino_part(d, c, y, x, bias, ops, n_ops, scratch, part, nparts);
        return;
    }
    plan pl;
    make_plan(c, nparts, &pl, d->wc != NULL);
    st_dense_ukr ukr[3], ukr_off[3];
    pick_ukr(ukr, ukr_off);
    run_part(d, c, &pl, ukr, ukr_off, y, x, bias, ops, n_ops, scratch, part, nparts, sync, sync_ctx);
}

void st_dense_conv_forward(const st_dense_conv *d, const st_conv2d *c, float *y, const float *x,
                           const float *bias, const st_epi_op *ops, int n_ops, float *scratch) {
    if (d->wg) {
        st__wino_forward(d, c, y, x, bias, ops, n_ops, scratch);
        return;
    }
    plan pl; /* inside a parallel region (column bands) the nested regions run one thread */
    make_plan(c, omp_in_parallel() ? 1 : omp_get_max_threads(), &pl, d->wc != NULL);
    st_dense_ukr ukr[3], ukr_off[3];
    pick_ukr(ukr, ukr_off);
    if ((pl.direct || pl.inplace) && omp_in_parallel()) { /* one part, no nested region */
        run_part(d, c, &pl, ukr, ukr_off, y, x, bias, ops, n_ops, scratch, 0, 1, no_sync, NULL);
        return;
    }
    if (pl.direct || pl.inplace) {
#pragma omp parallel
        run_part(d, c, &pl, ukr, ukr_off, y, x, bias, ops, n_ops, scratch, omp_get_thread_num(),
                 omp_get_num_threads(), omp_sync, NULL);
        return;
    }
    /* unrolled: the input packed into column panels first */
    const st_dense_ukr f = ukr[pl.nv - 1];
    const size_t panel = (size_t)d->CRS * pl.nr, in_img = (size_t)c->C * c->H * c->W;
    const int kp = d->kpanels, jpn = pl.jpanels;
    for (int n = 0; n < c->N; n++) {
        const float *xn = x + (size_t)n * in_img;
        float *yn = y + (size_t)n * c->K * pl.PQ;
        const run t = {d, &pl, f, ukr, NULL, yn, bias, ops, n_ops, (size_t)n * c->K * pl.PQ,
                       c->P, c->Q};
        if (pl.shared) {
            /* chunk by chunk of the reduction; the same static split of the weight panels
             * in every chunk (same trip count), so a thread only adds to its own tiles */
#pragma omp parallel
            {
#pragma omp for schedule(static)
                for (int jp = 0; jp < jpn; jp++)
                    pack_panel(c, xn, scratch + (size_t)jp * panel, (size_t)jp * pl.nr, pl.nr, pl.PQ);
                for (int k0 = 0; k0 < d->CRS; k0 += pl.kc) {
                    const int kc = d->CRS - k0 < pl.kc ? d->CRS - k0 : pl.kc;
#pragma omp for schedule(static) nowait
                    for (int ip = 0; ip < kp; ip++)
                        for (int jp = 0; jp < jpn; jp++)
                            tile(&t, ip, jp, k0, kc, scratch + (size_t)jp * panel + (size_t)k0 * pl.nr,
                                 (size_t)pl.nr);
                }
            }
        } else {
#pragma omp parallel
            {
                float *bp = scratch + (size_t)omp_get_thread_num() * panel;
#pragma omp for schedule(static)
                for (int jp = 0; jp < jpn; jp++) {
                    pack_panel(c, xn, bp, (size_t)jp * pl.nr, pl.nr, pl.PQ);
                    for (int ip = 0; ip < kp; ip++)
                        tile(&t, ip, jp, 0, d->CRS, bp, (size_t)pl.nr);
                }
            }
        }
    }
}
