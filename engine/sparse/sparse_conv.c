/* Sparse conv2d operators over st_csr (design: st_sparse.h; linear layers on top of
 * them: sparse_linear.c).
 *
 * Banded mode. Virtual row v = n*Hv + i is row i of sample n's padded, phase-split plane
 * (Hv x Wv per virtual channel vc = c*PH + phase). A band covers output virtual rows
 * [v0, v0 + Lb); its buffers, per thread:
 *   Xb  [vc][(Lb + dr_max) * Wv]   input rows v0 .. v0 + Lb + dr_max - 1 (zero padded)
 *   dYb [k][gd + (dr_max + Lb) * Wv] dy rows v0 - dr_max .. v0 + Lb - 1, a zero front
 *                                  guard of gd >= ds_max floats, zeros where q >= Q,
 *                                  p >= P or outside the batch
 *   O   [row][Lb * Wv]             kernel output staging (y rows or dx planes)
 * Forward: O[k][t*Wv + q] = sum_e val[e] * Xb[x_off[e] + t*Wv + q] = y[n, k, p, q].
 * Backward-input: O[vc][t*Wv + jj] = sum_i t_val[i] * dYb[t_off[i] + t*Wv + jj] is the
 * gradient of the virtual input element (v0 + t, jj); added to dx where it is a real
 * (non-padding) pixel. Weight gradient: dval[e] += dot(dYb row k, Xb at x_offw[e]), on
 * taller bands of Lw rows in their own layout (strides ldbw, ldybw).
 * Direct mode (st_sparse.h) needs no band buffers: the kernels run on x, y, dy, dx in
 * place, per sample and band of rows; its weight gradient keeps 16-lane partial sums
 * per nonzero (scratch) across all bands and reduces them once. */
#include <omp.h>
#include <string.h>

#include "conv2d_internal.h"
#include "sparse_conv_internal.h"

static int same_shape(const st_conv2d *a, const st_conv2d *b) {
    return a->C == b->C && a->H == b->H && a->W == b->W && a->K == b->K && a->R == b->R &&
           a->S == b->S && a->stride_h == b->stride_h && a->stride_w == b->stride_w &&
           a->pad_h == b->pad_h && a->pad_w == b->pad_w && a->dil_h == b->dil_h &&
           a->dil_w == b->dil_w && a->groups == b->groups;
}

st_status st__sc_check(const st_conv2d *c, const st_csr *m, const char *who, st_error *err) {
    if (!c || !m || !m->row_ptr) return st_errorf(err, ST_ERR_INTERNAL, "%s: NULL argument", who);
    if (!same_shape(c, &m->conv) || c->N < 1 || c->P != m->conv.P || c->Q != m->conv.Q)
        return st_errorf(err, ST_ERR_INPUT, "%s: weights packed for another shape", who);
    return ST_OK;
}

size_t st_conv2d_sparse_scratch_floats(const st_csr *m) {
    return m->geom.thread_floats * (size_t)omp_get_max_threads();
}

/* Balanced on nonzeros plus 4 per row, for what a row costs besides its nonzeros. */
void st__sc_split_units(const int32_t *ptr, int n, int unit, int nb, int b, int *r0, int *r1) {
    const int64_t total = (int64_t)ptr[(size_t)n * unit] - ptr[0] + 4LL * n * unit;
    for (int side = 0; side < 2; side++) {
        const int64_t want = total * (b + side) / nb;
        int lo = 0, hi = n; /* smallest u with cost(u) >= want */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if ((int64_t)ptr[(size_t)mid * unit] - ptr[0] + 4LL * mid * unit >= want) hi = mid;
            else lo = mid + 1;
        }
        *(side ? r1 : r0) = lo * unit;
    }
}

/* Multiply-adds (nonzeros x columns) below which an operator runs on one thread. */
#ifndef ST_SPARSE_OMP_MIN_WORK
#define ST_SPARSE_OMP_MIN_WORK (1 << 20)
#endif

/* Threads an operator of its own parallel region uses over V rows: one for small work,
 * where waking threads costs more than it saves (and under load a descheduled worker
 * stalls the barrier for a scheduler tick). A caller's team has no fork to save. */
int st__sc_omp_threads(const st_conv2d *c, const st_csr *m, int V) {
    const double work = ((double)m->nnz + c->K) * V * m->geom.Wv;
    return work < ST_SPARSE_OMP_MIN_WORK ? 1 : omp_get_max_threads();
}

/* Bands of the output virtual rows [0, V) (forward, weight gradient: V ends at the last
 * valid row; backward-input: every row of every plane holds input pixels), for T
 * threads. */
sc_plan st__sc_make_plan(const st_conv2d *c, const st_csr *m, int V, int L, int T) {
    sc_plan p = {.c = c, .m = m, .g = &m->geom, .L = L, .T = T};
    if (p.g->direct) p.nbands = c->N * ((c->H + L - 1) / L);
    else p.nbands = (V + L - 1) / L;
    /* Few bands: split each one's rows among the threads (each rebuilds the band). */
    p.RB = p.nbands >= 4 * p.T ? 1 : p.T;
    return p;
}

/* The forward's split among T threads. Weights larger than the input (ResNet's layer4:
 * 0.5-1 MB of nonzeros against 0.1-0.2 MB of input) go by output channels, so each
 * thread streams only its block of the weights (and reads all of x). Otherwise by rows:
 * banded mode cuts few bands again into a multiple of T bands of even height (its
 * buffers hold any height up to L), so threads take whole bands, the same number of
 * rows each, and none rebuilds another's input rows; direct mode (band masks fix L)
 * takes whole bands when their count is a multiple of T (make_geom gives one image 2,
 * 4 or 8 bands where they hold 128 floats), else splits each band's channels, items
 * band-major, so a thread's items still cover mostly its own rows. */
static void forward_split(sc_plan *p, int V) {
    if (p->T < 2) return;
    const st_conv2d *c = p->c;
    const double wbytes = 8.0 * p->m->nnz, xbytes = 4.0 * c->N * c->C * c->H * c->W;
    if (wbytes > xbytes) {
        p->RB = p->T, p->cmaj = 1;
        return;
    }
    if (p->g->direct && p->nbands % p->T == 0) { /* whole bands each, the same number */
        p->RB = 1;
        return;
    }
    if (!p->g->direct && p->nbands < 4 * p->T) {
        const int nb = (p->nbands + p->T - 1) / p->T * p->T;
        p->L = (V + nb - 1) / nb;
        p->nbands = (V + p->L - 1) / p->L;
        p->RB = p->nbands % p->T == 0 ? 1 : p->T;
    }
}

/* Tap plane row d[j] = src[j*sw + off] for j in [j0, j1), zero outside the input row
 * [0, W). */
static void taps_direct(float *d, const float *src, int sw, int off, int W, int j0, int j1) {
    for (int j = j0; j < j1; j++) {
        const int w = j * sw + off;
        d[j] = w >= 0 && w < W ? src[w] : 0.0f;
    }
}

/* The tap-column layout (ST_CSR_TAPS) of st__sc_build_xb: plane (ch, a, s) at virtual
 * channel ch*PH + a*S + s, row t, columns j < Q from input column j*sw + s*dil - pad.
 * Stride 2: one deinterleaving pass fills the two seed planes (column offsets 2m and
 * 2m + 1); every other plane is a seed of its parity shifted by whole columns, copied
 * from the row just written (in L1), with the few columns the shift exposes read
 * directly. The band's dy slice (unused by the forward) takes a seed with no plane. */
static void build_xb_taps(const st_sparse_kernels *k, const st_conv2d *c, const st_csr *m,
                          const float *x, size_t ldx, int v0, int nrow, int ch0, int ch1,
                          size_t ldb, float *Xb) {
    const st_sparse_geom *g = &m->geom;
    const int Wv = g->Wv, S = c->S, sw = g->sw, Q = c->Q, W = c->W, pw = c->pad_w;
    const int fast = sw == 2 && c->dil_w == 1;
    const int se = pw % 2; /* seed column: offset se - pw is even */
    const int three = fast && k->taps3 && S == 3 && pw == 1 && Wv % 16 == 0;
    float *spare = Xb + (size_t)m->t_rows * ldb;
    int lo_e, hi_e, lo_o, hi_o; /* the seeds' columns inside the input row */
    st__valid_range(Q, 2, se - pw, W, &lo_e, &hi_e);
    st__valid_range(Q, 2, se + 1 - pw, W, &lo_o, &hi_o);
    const int a2 = ST_MAX(lo_e, lo_o), b2 = ST_MAX(a2, ST_MIN(hi_e, hi_o));
    /* channel by channel, so the rows read follow each other in memory (row by row across
     * all channels, every read opened another page: yolov5n's model.1 alone, one thread,
     * 0.148 -> 0.142 ms) */
    for (int ch = ch0; ch < ch1; ch++)
        for (int t = 0; t < nrow; t++) {
            const int u = v0 + t, n = u / g->Hv, i = u - n * g->Hv;
            for (int a = 0; a < g->sh; a++) {
                const int vc0 = ch * g->PH + a * S, h = i * g->sh + a - c->pad_h;
                int used = 0;
                for (int s = 0; s < S; s++) used |= m->vc_used[vc0 + s];
                if (!used) continue;
                float *row = Xb + (size_t)vc0 * ldb + (size_t)t * Wv; /* plane s at + s*ldb */
                if (n >= c->N || h < 0 || h >= c->H) {
                    for (int s = 0; s < S; s++)
                        if (m->vc_used[vc0 + s]) memset(row + (size_t)s * ldb, 0, sizeof(float) * Wv);
                    continue;
                }
                const float *src = x + (size_t)(n * c->C + ch) * ldx + (size_t)h * W;
                if (!fast) {
                    for (int s = 0; s < S; s++) {
                        if (!m->vc_used[vc0 + s]) continue;
                        float *d = row + (size_t)s * ldb;
                        taps_direct(d, src, sw, s * c->dil_w - pw, W, 0, Q);
                        memset(d + Q, 0, sizeof(float) * (Wv - Q));
                    }
                    continue;
                }
                if (three) { /* 3x3 pad 1 in one pass */
                    k->taps3(row, row + ldb, row + 2 * ldb, src, W, Q, Wv);
                    continue;
                }
                float *de = row + (size_t)se * ldb, *dod = se + 1 < S ? de + ldb : spare;
                taps_direct(de, src, 2, se - pw, W, 0, a2);
                taps_direct(dod, src, 2, se + 1 - pw, W, 0, a2);
                if (b2 > a2) k->deint2(de + a2, dod + a2, src + 2 * a2 + se - pw, (size_t)(b2 - a2));
                taps_direct(de, src, 2, se - pw, W, b2, Q);
                taps_direct(dod, src, 2, se + 1 - pw, W, b2, Q);
                for (int s = 0; s < S; s++) {
                    float *d = row + (size_t)s * ldb;
                    if (s != se && s != se + 1 && m->vc_used[vc0 + s]) {
                        const int seed = se + ((s - se) & 1);
                        const int sh = (s - seed) / 2; /* d[j] = seed plane [j + sh] */
                        const float *from = seed == se ? de : dod;
                        const int j0 = ST_MAX(0, -sh), j1 = ST_MIN(Q, Q - sh);
                        const int off = s - pw;
                        taps_direct(d, src, 2, off, W, 0, ST_MIN(j0, Q));
                        if (j1 > j0) memcpy(d + j0, from + j0 + sh, sizeof(float) * (j1 - j0));
                        taps_direct(d, src, 2, off, W, ST_MAX(j1, j0), Q);
                    }
                    if (m->vc_used[vc0 + s] || s == se || s == se + 1)
                        memset(d + Q, 0, sizeof(float) * (Wv - Q));
                }
            }
    }
}

/* Xb rows t in [0, nrow) = input virtual rows v0 + t, for the channels in use; the sw
 * phases of an input row are split in one pass. Input channels are ldx floats apart
 * (H*W in an NCHW map). */
void st__sc_build_xb(const st_sparse_kernels *k, const st_conv2d *c, const st_csr *m,
                     const float *x, size_t ldx, int v0, int nrow, int ch0, int ch1, size_t ldb, float *Xb) {
    const st_sparse_geom *g = &m->geom;
    if (g->taps) {
        build_xb_taps(k, c, m, x, ldx, v0, nrow, ch0, ch1, ldb, Xb);
        return;
    }
    const int Wv = g->Wv, Hv = g->Hv, H = c->H, W = c->W, sw = g->sw, pw = c->pad_w;
    int ilo, ihi;
    st__sc_s2_interior(W, pw, Wv, &ilo, &ihi);
    for (int ch = ch0; ch < ch1; ch++)
        for (int a = 0; a < g->sh; a++) {
            const int vc0 = ch * g->PH + a * sw;
            int used = 0;
            for (int b = 0; b < sw; b++) used |= m->vc_used[vc0 + b];
            if (!used) continue;
            for (int t = 0; t < nrow; t++) {
                const int u = v0 + t, n = u / Hv, i = u - n * Hv, h = i * g->sh + a - c->pad_h;
                float *d0 = Xb + (size_t)vc0 * ldb + (size_t)t * Wv;
                if (n >= c->N || h < 0 || h >= H) {
                    for (int b = 0; b < sw; b++) memset(d0 + (size_t)b * ldb, 0, sizeof(float) * Wv);
                    continue;
                }
                const float *src = x + (size_t)(n * c->C + ch) * ldx + (size_t)h * W;
                if (sw == 2) {
                    float *d1 = d0 + ldb;
                    for (int j = 0; j < Wv; j++) {
                        if (j == ilo) j = ihi;
                        if (j >= Wv) break;
                        const int w0 = 2 * j - pw, w1 = w0 + 1;
                        d0[j] = w0 >= 0 && w0 < W ? src[w0] : 0.0f;
                        d1[j] = w1 >= 0 && w1 < W ? src[w1] : 0.0f;
                    }
                    k->deint2(d0 + ilo, d1 + ilo, src + 2 * ilo - pw, ihi - ilo);
                    continue;
                }
                for (int b = 0; b < sw; b++) {
                    float *d = d0 + (size_t)b * ldb;
                    const int off = b - pw;
                    int lo, hi;
                    st__valid_range(Wv, sw, off, W, &lo, &hi);
                    for (int j = 0; j < lo; j++) d[j] = 0.0f;
                    if (sw == 1) memcpy(d + lo, src + lo + off, sizeof(float) * (hi - lo));
                    else
                        for (int j = lo; j < hi; j++) d[j] = src[j * sw + off];
                    for (int j = ST_MAX(lo, hi); j < Wv; j++) d[j] = 0.0f;
                }
            }
        }
}

/* dYb rows k in [k0, k1) (row k at (k - k0) * ldyb) for dy virtual rows [u0, u1), placed
 * at gd + (u - v0 + dr_max) * Wv; with guard != 0 the front guard is zeroed too. */
void st__sc_build_dyb(const st_conv2d *c, const st_csr *m, const float *dy, int v0, int u0,
                      int u1, int k0, int k1, int guard, size_t ldyb, float *dYb) {
    const st_sparse_geom *g = &m->geom;
    const int Wv = g->Wv, Hv = g->Hv, P = c->P, Q = c->Q;
    for (int k = k0; k < k1; k++) {
        if (m->row_ptr[k] == m->row_ptr[k + 1]) continue; /* never read */
        float *row = dYb + (size_t)(k - k0) * ldyb;
        if (guard) memset(row, 0, sizeof(float) * g->gd);
        for (int u = u0; u < u1; u++) {
            float *d = row + g->gd + (size_t)(u - v0 + g->dr_max) * Wv;
            const int n = u >= 0 ? u / Hv : -1, i = u - n * Hv;
            if (n < 0 || n >= c->N || i >= P) {
                memset(d, 0, sizeof(float) * Wv);
                continue;
            }
            memcpy(d, dy + ((size_t)(n * c->K + k) * P + i) * Q, sizeof(float) * Q);
            for (int j = Q; j < Wv; j++) d[j] = 0.0f;
        }
    }
}

st_status st_conv2d_sparse_forward(const st_conv2d *c, const st_csr *m, float *y, const float *x,
                                   const float *b, float *scratch, st_error *err) {
    return st_conv2d_sparse_forward_epi(c, m, y, x, b, NULL, 0, scratch, err);
}

/* One forward call's fixed arguments. */
typedef struct {
    const st_conv2d *c;
    const st_csr *m;
    float *y;
    const float *x, *b;
    const st_epi_op *ops;
    int n_ops, Vf, nbs;
    st_epi_rows_fn epi_rows;
    size_t ldy; /* output channel stride: P*Q, or a whole map's (one image) */
    size_t ldx; /* banded mode's input channel stride: H*W, or a whole map's (one image) */
} fwd_args;

static st_status fwd_setup(const st_conv2d *c, const st_csr *m, float *y, const float *x,
                           const float *b, const st_epi_op *ops, int n_ops, fwd_args *a,
                           st_error *err) {
    st_status s = st__sc_check(c, m, "st_conv2d_sparse_forward", err);
    if (s == ST_OK && (n_ops < 0 || n_ops > ST_EPI_MAX_OPS || (n_ops && !ops)))
        s = st_errorf(err, ST_ERR_INTERNAL, "st_conv2d_sparse_forward: %d epilogue ops", n_ops);
    if (s != ST_OK) return s;
    const st_sparse_geom *g = &m->geom;
    *a = (fwd_args){c, m, y, x, b, ops, n_ops, (c->N - 1) * g->Hv + c->P,
                    g->direct ? (c->H + g->L - 1) / g->L : 0, st_epi_rows_for(m->k.isa),
                    (size_t)c->P * c->Q, (size_t)c->H * c->W};
    return ST_OK;
}

/* spmm over rows [r0, r1) of m: in one call, or block of input channels after block
 * (ST_CSR_CBLK), adding into Y, with the bias in the first and the epilogue in the last.
 * xmask: direct kxk's border masks (with the entries' tap classes), else NULL. */
static void spmm_blocks(const st_csr *m, int r0, int r1, const float *X, int n, float *Y,
                        ptrdiff_t ldy, const float *bias, const uint16_t *xmask, const st_epi_op *o,
                        int n_ops) {
    const st_sparse_kernels *k = &m->k;
    if (m->q_n && k->spmm4) {
        k->spmm4(r0, r1, m->q_ptr, m->q_off, m->q_val, X, 1, n, Y, ldy, bias, 0, xmask ? m->q_cls : NULL,
                 xmask, o, n_ops);
        return;
    }
    if (m->cb_n < 2) {
        k->spmm(r0, r1, m->row_ptr, m->x_off, m->val, X, 1, n, Y, ldy, bias, 0, xmask ? m->x_cls : NULL,
                xmask, o, n_ops);
        return;
    }
    const int K = m->conv.K;
    for (int b = 0; b < m->cb_n; b++) {
        const int last = b == m->cb_n - 1;
        k->spmm(r0, r1, m->cb_ptr + (size_t)b * (K + 1), m->cb_off, m->cb_val, X, 1, n, Y, ldy,
                b ? NULL : bias, b > 0, xmask ? m->cb_cls : NULL, xmask, last ? o : NULL, last ? n_ops : 0);
    }
}

/* spmm_rows over rows [r0, r1) of m as spmm_blocks runs spmm: quads, the plain rows, or
 * block of input channels after block with the bias in the first and the epilogue in
 * the last. The arguments between X and the epilogue are spmm_rows'. */
static void spmm_rows_blocks(const st_csr *m, int r0, int r1, const float *X, ptrdiff_t ldxr, int nrows,
                             int n, float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias,
                             const st_epi_op *o, int n_ops) {
    const st_sparse_kernels *k = &m->k;
    if (m->q_n && k->spmm4_rows) {
        k->spmm4_rows(r0, r1, m->q_ptr, m->q_off, m->q_val, X, ldxr, nrows, n, Y, ldy, ldyr, bias, 0, o, n_ops);
        return;
    }
    if (m->cb_n < 2) {
        k->spmm_rows(r0, r1, m->row_ptr, m->x_off, m->val, X, ldxr, nrows, n, Y, ldy, ldyr, bias, 0, o, n_ops);
        return;
    }
    const int K = m->conv.K;
    for (int b = 0; b < m->cb_n; b++) {
        const int last = b == m->cb_n - 1;
        k->spmm_rows(r0, r1, m->cb_ptr + (size_t)b * (K + 1), m->cb_off, m->cb_val, X, ldxr, nrows, n, Y,
                     ldy, ldyr, b ? NULL : bias, b > 0, last ? o : NULL, last ? n_ops : 0);
    }
}

/* Forward item `it` of plan p: a band of rows and one of its p.RB blocks of output
 * channels. Xb: the calling thread's band buffers (banded mode). */
static void fwd_item(const fwd_args *a, const sc_plan *p, int it, float *Xb) {
    const st_conv2d *c = a->c;
    const st_csr *m = a->m;
    const st_sparse_kernels *k = &m->k;
    const st_sparse_geom *g = &m->geom;
    const int band = p->cmaj ? it % p->nbands : it / p->RB, rb = p->cmaj ? it / p->nbands : it % p->RB;
    const int K = c->K, n_ops = a->n_ops;
    const size_t HW = (size_t)c->H * c->W;
    st_epi_op o[ST_EPI_MAX_OPS];
    int r0, r1;
    if (m->q_n && k->spmm4) st__sc_split_units(m->row_ptr, K / 4, 4, p->RB, rb, &r0, &r1); /* whole quads */
    else st__sc_split_rows(m->row_ptr, K, p->RB, rb, &r0, &r1);
    if (r0 >= r1) return;
    if (g->direct) {
        const int nbs = a->nbs, n = band / nbs, i0 = (band % nbs) * g->L, Lb = ST_MIN(g->L, c->H - i0);
        const size_t at = ((size_t)n * K + r0) * a->ldy + (size_t)i0 * c->W;
        st_epi_ops_at(o, a->ops, n_ops, at);
        spmm_blocks(m, r0, r1, a->x + (size_t)n * c->C * HW + (size_t)i0 * c->W, Lb * c->W, a->y + at,
                    (ptrdiff_t)a->ldy, a->b, st__sc_band_mask(m, m->fmask, band % nbs), o, n_ops);
        return;
    }
    float *O = Xb + (size_t)m->t_rows * g->ldb + (size_t)K * g->ldyb;
    const int v0 = band * p->L, Lb = ST_MIN(p->L, a->Vf - v0);
    st__sc_build_xb(k, c, m, a->x, a->ldx, v0, Lb + g->dr_max, 0, c->C, g->ldb, Xb);
    const int qt = k->spmm_rows ? st__sc_rows_tile(c->Q) : 0;
    if (!qt) /* the band's rows, flattened, into the staging rows */
        spmm_blocks(m, r0, r1, Xb, (Lb - 1) * g->Wv + c->Q, O, g->ldo, a->b, NULL, NULL, 0);
    for (int t = 0; t < Lb;) { /* runs of consecutive rows of one sample */
        const int v = v0 + t, n = v / g->Hv, i = v - n * g->Hv;
        if (i >= c->P) {
            t++;
            continue;
        }
        const int cnt = ST_MIN(c->P - i, Lb - t);
        const size_t at = ((size_t)n * K + r0) * a->ldy + (size_t)i * c->Q;
        if (qt) { /* straight into y, the epilogue in registers */
            for (int q0 = 0; q0 < c->Q; q0 += qt) {
                st_epi_ops_at(o, a->ops, n_ops, at + q0);
                spmm_rows_blocks(m, r0, r1, Xb + (size_t)t * g->Wv + q0, g->Wv, cnt, ST_MIN(qt, c->Q - q0),
                                 a->y + at + q0, (ptrdiff_t)a->ldy, c->Q, a->b, o, n_ops);
            }
        } else { /* the epilogue on the way from the staging rows to y; with no ops a vector
                  * copy (memcpy per row of 7-20 floats cost more than the SiLU pass) */
            for (int kk = r0; kk < r1; kk++) {
                const size_t atk = at + (size_t)(kk - r0) * a->ldy;
                st_epi_ops_at(o, a->ops, n_ops, atk);
                a->epi_rows(a->y + atk, c->Q, O + (size_t)(kk - r0) * g->ldo + (size_t)t * g->Wv,
                            g->Wv, cnt, (size_t)c->Q, 0.0f, o, n_ops);
            }
        }
        t += cnt;
    }
}

static void fwd_run(const fwd_args *a, float *scratch) {
    const st_conv2d *c = a->c;
    const st_csr *m = a->m;
    const st_sparse_geom *g = &m->geom;
    /* inside a caller's parallel region the items run on this thread: split for one
     * (a split for several rebuilt each band's input once per channel block) */
    sc_plan p = st__sc_make_plan(c, m, a->Vf, g->L, omp_in_parallel() ? 1 : st__sc_omp_threads(c, m, a->Vf));
    forward_split(&p, a->Vf);
    const int items = p.nbands * p.RB;
    if (p.T == 1 || items == 1) {
        /* no region to open (nested, it would run one thread anyway: opening it per call
         * cost the column schedule, hundreds of band calls, ~1 ms per inference) */
        for (int it = 0; it < items; it++) fwd_item(a, &p, it, g->direct ? NULL : scratch);
        return;
    }
#pragma omp parallel num_threads(ST_MIN(p.T, items))
    {
        float *Xb = g->direct ? NULL : scratch + g->thread_floats * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) fwd_item(a, &p, it, Xb);
    }
}

st_status st_conv2d_sparse_forward_epi(const st_conv2d *c, const st_csr *m, float *y,
                                       const float *x, const float *b, const st_epi_op *ops,
                                       int n_ops, float *scratch, st_error *err) {
    fwd_args a;
    st_status s = fwd_setup(c, m, y, x, b, ops, n_ops, &a, err);
    if (s == ST_OK) fwd_run(&a, scratch);
    return s;
}

st_status st_conv2d_sparse_forward_ldy(const st_conv2d *c, const st_csr *m, float *y, size_t ldy,
                                       const float *x, const float *b, const st_epi_op *ops,
                                       int n_ops, float *scratch, st_error *err) {
    return st_conv2d_sparse_forward_ld(c, m, y, ldy, x, c ? (size_t)c->H * c->W : 0, b, ops, n_ops, scratch, err);
}

st_status st_conv2d_sparse_forward_ld(const st_conv2d *c, const st_csr *m, float *y, size_t ldy,
                                      const float *x, size_t ldx, const float *b, const st_epi_op *ops,
                                      int n_ops, float *scratch, st_error *err) {
    fwd_args a;
    st_status s = fwd_setup(c, m, y, x, b, ops, n_ops, &a, err);
    if (s != ST_OK) return s;
    if (c->N != 1 || ldy < a.ldy || ldx < a.ldx || (m->geom.direct && ldx != a.ldx))
        return st_errorf(err, ST_ERR_INPUT,
                         "st_conv2d_sparse_forward_ld: needs one image, channel strides of at least "
                         "%zu out and %zu in, and in direct mode the packed one in (got N=%d, %zu, %zu)",
                         a.ldy, a.ldx, c->N, ldy, ldx);
    a.ldy = ldy, a.ldx = ldx;
    fwd_run(&a, scratch);
    return ST_OK;
}

st_status st_conv2d_sparse_forward_part(const st_conv2d *c, const st_csr *m, float *y,
                                        const float *x, const float *b, const st_epi_op *ops,
                                        int n_ops, float *scratch, int part, int nparts,
                                        st_error *err) {
    fwd_args a;
    st_status s = fwd_setup(c, m, y, x, b, ops, n_ops, &a, err);
    if (s != ST_OK) return s;
    if (nparts < 1 || part < 0 || part >= nparts)
        return st_errorf(err, ST_ERR_INTERNAL, "st_conv2d_sparse_forward_part: part %d of %d", part, nparts);
    const st_sparse_geom *g = &m->geom;
    sc_plan p = st__sc_make_plan(c, m, a.Vf, g->L, nparts);
    forward_split(&p, a.Vf);
    const int items = p.nbands * p.RB;
    const int it0 = (int)((long)items * part / nparts), it1 = (int)((long)items * (part + 1) / nparts);
    float *Xb = g->direct ? NULL : scratch + g->thread_floats * part;
    for (int it = it0; it < it1; it++) fwd_item(&a, &p, it, Xb);
    return ST_OK;
}
