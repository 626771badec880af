/* Pieces the sparse conv2d forward (sparse_conv.c) shares with its training backward
 * (sparse_conv_backward.c): the split of a layer into bands and blocks of rows, and the
 * band buffers' builders. Banded and direct modes are described in sparse_conv.c. Not
 * part of the public op API. */
#ifndef ST_SPARSE_CONV_INTERNAL_H
#define ST_SPARSE_CONV_INTERNAL_H

#include "conv2d_internal.h"
#include "st_sparse.h"

typedef struct {
    const st_conv2d *c;
    const st_csr *m;
    const st_sparse_geom *g;
    int nbands, RB, T;
    int L;              /* band height (rows) */
    int cmaj;           /* forward: items channel block-major (thread t: block t of every band) */
} sc_plan;

st_status st__sc_check(const st_conv2d *c, const st_csr *m, const char *who, st_error *err);

/* Rows [*r0, *r1): block b of nb over rows [0, n * unit) in whole units of `unit` rows,
 * balanced on nonzeros + 4 per row. */
void st__sc_split_units(const int32_t *ptr, int n, int unit, int nb, int b, int *r0, int *r1);

static inline void st__sc_split_rows(const int32_t *ptr, int n, int nb, int b, int *r0, int *r1) {
    st__sc_split_units(ptr, n, 1, nb, b, r0, r1);
}

/* Direct kxk forward classes (st_sparse.h): rows of a band's forward mask table, the
 * class of tap (r, s), and the position of column col in a row's packing order (tap
 * column-major, then tap row, then channel: a column's taps share horizontal masks). */
static inline int st__kxk_rlog(const st_conv2d *c) { /* log2 of R rounded up to a power of 2 */
    int lg = 0;
    while ((1 << lg) < c->R) lg++;
    return lg;
}
static inline int st__kxk_rpow(const st_conv2d *c) { return 1 << st__kxk_rlog(c); }
static inline int st__kxk_fwd_rows(const st_conv2d *c) { return (c->S + 1) * st__kxk_rpow(c); }
static inline int st__kxk_fwd_cls(const st_conv2d *c, int r, int s) { return (s + 1) * st__kxk_rpow(c) + r; }
static inline int st__kxk_order(const st_conv2d *c, int col) {
    const int RS = c->R * c->S, t = col % RS;
    return ((t % c->S) * c->R + t / c->S) * (c->C / c->groups) + col / RS;
}
/* The column at position j of that order (st__kxk_order's inverse). */
static inline int st__kxk_col(const st_conv2d *c, int j) {
    const int Cg = c->C / c->groups, u = j / Cg;
    return (j % Cg) * c->R * c->S + (u % c->R) * c->S + u / c->R;
}

/* Direct kxk: the lane masks of band position bs in a sample (NULL for 1x1): forward
 * (fmask, classes st__kxk_fwd_cls) or backward (bmask, class r*S + s + 1). */
static inline const uint16_t *st__sc_band_mask(const st_csr *m, const uint16_t *tab, int bs) {
    if (!tab) return NULL;
    const int rows = tab == m->fmask ? st__kxk_fwd_rows(&m->conv) : m->conv.R * m->conv.S + 1;
    return tab + (size_t)bs * rows * m->mask_nvec;
}

/* Banded forward straight into y (spmm_rows): the column tile for output rows of Q
 * columns, or 0 to stage the band's rows and apply the epilogue on the copy to y. Rows
 * take whole vectors each, so short or ragged rows waste lanes that the staged band
 * (rows of Wv = Q + 1 floats, flattened) does not. yolov5n's stride-2 layers alone, one
 * thread, staged -> rows: Q = 80 0.148 -> 0.110 ms (0.59 -> 0.32 at 160x160 input with
 * 32 channels), Q = 40 0.105 -> 0.100; but Q = 20 0.093 -> 0.110, Q = 10 0.073 -> 0.124,
 * ResNet's Q = 7 0.20 -> 0.75, Q = 28 (1x1) 0.056 -> 0.067. Wider rows are cut into equal
 * tiles of whole vectors. */
static inline int st__sc_rows_tile(int Q) {
    const int nt = (Q + 127) / 128, qt = ((Q + nt - 1) / nt + 15) / 16 * 16;
    const int lanes = nt * qt; /* lanes loaded per row, of which Q are used */
    return Q >= 40 && 5 * Q >= 4 * lanes ? ST_MIN(qt, Q) : 0;
}

/* Threads an operator of its own parallel region uses over V rows. */
/* The inference copies (csr_inference.c), built last by st_csr_pack_layout: 0 (built or
 * not wanted), -1 out of memory. */
int st__csr_quads_build(st_csr *m);
int st__csr_cblk_build(st_csr *m);
int st__sc_omp_threads(const st_conv2d *c, const st_csr *m, int V);

/* Bands of the output virtual rows [0, V) for T threads. */
sc_plan st__sc_make_plan(const st_conv2d *c, const st_csr *m, int V, int L, int T);

/* Interior of a stride-2 row: the jj for which both phases b = 0, 1 read (or write)
 * the real pixel 2*jj + b - pad, so the vector (de)interleave needs no bounds checks. */
static inline void st__sc_s2_interior(int W, int pad, int Wv, int *lo, int *hi) {
    *lo = ST_MIN((pad + 1) / 2, Wv);
    *hi = ST_MAX(*lo, ST_MIN((W + pad) / 2, Wv));
}

/* Xb rows t in [0, nrow) = input virtual rows v0 + t, for channels [ch0, ch1). */
void st__sc_build_xb(const st_sparse_kernels *k, const st_conv2d *c, const st_csr *m,
                     const float *x, size_t ldx, int v0, int nrow, int ch0, int ch1, size_t ldb, float *Xb);

/* dYb rows k in [k0, k1) for dy virtual rows [u0, u1). */
void st__sc_build_dyb(const st_conv2d *c, const st_csr *m, const float *dy, int v0, int u0,
                      int u1, int k0, int k1, int guard, size_t ldyb, float *dYb);

#endif
