/* The sparse conv2d training backward over st_csr: bias, weight (one dot product per
 * nonzero, sddmm) and input (the transposed index through spmm) gradients, in the
 * banded and direct modes of sparse_conv.c. */
#include <omp.h>
#include <string.h>

#include "sparse_conv_internal.h"

/* db[k] += sum of dy over n, p, q (in double, one thread per channel). */
static void bias_grad(const st_conv2d *c, float *db, const float *dy) {
    const size_t PQ = (size_t)c->P * c->Q;
#pragma omp parallel for schedule(static) if ((size_t)c->N * c->K * PQ > 32768)
    for (int k = 0; k < c->K; k++) {
        double acc = 0.0;
        for (int n = 0; n < c->N; n++) {
            const float *d = dy + ((size_t)n * c->K + k) * PQ;
            for (size_t i = 0; i < PQ; i++) acc += d[i];
        }
        db[k] += (float)acc;
    }
}

/* se[2k], se[2k+1]: the entries of row k whose input channel is in [ch0, ch1) (rows are
 * channel-major: banded and 1x1 layouts). */
static void channel_ranges(const st_csr *m, int ch0, int ch1, int32_t *se) {
    const int RS = m->conv.R * m->conv.S;
    for (int kk = 0; kk < m->conv.K; kk++) {
        const int lo = m->row_ptr[kk], hi = m->row_ptr[kk + 1];
        for (int side = 0; side < 2; side++) {
            const int want = (side ? ch1 : ch0) * RS;
            int a = lo, b = hi; /* first entry with col_idx >= want */
            while (a < b) {
                const int mid = (a + b) / 2;
                if (m->col_idx[mid] >= want) b = mid;
                else a = mid + 1;
            }
            se[2 * kk + side] = a;
        }
    }
}

/* dval: one dot product per nonzero, computed by one thread. Threads own output channels
 * or, when x is at least twice the size of y, input channels (each thread then reads
 * only its part of x instead of all of it). */
static void weight_grad(const st_conv2d *c, const st_csr *m, float *dval, const float *dy,
                        const float *x, float *scratch) {
    const st_sparse_kernels *k = &m->k;
    const st_sparse_geom *g = &m->geom;
    const int K = c->K, Vf = (c->N - 1) * g->Hv + c->P;
    const sc_plan p = st__sc_make_plan(c, m, Vf, g->Lw, st__sc_omp_threads(c, m, Vf));
    const size_t HW = (size_t)c->H * c->W, PQ = (size_t)c->P * c->Q;
    const int nbs = g->direct ? (c->H + g->L - 1) / g->L : 0;
    const int T = ST_MAX(1, ST_MIN(p.T, m->nnz / 64));
#pragma omp parallel num_threads(T)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        int k0, k1;
        st__sc_split_rows(m->row_ptr, K, nt, tid, &k0, &k1);
        float *Xb = g->direct ? NULL : scratch + g->thread_floats * tid;
        float *dYb = g->direct ? NULL : Xb + (size_t)m->t_rows * g->ldbw;
        /* Direct: bands are short (one sample's rows), so each nonzero keeps 16 partial
         * lanes across all of them (blocks of rows bounded by the partial buffer) and
         * pays one horizontal sum at the end. */
        float *part = g->direct ? scratch + g->thread_floats * tid : NULL;
        int32_t *dse = NULL; /* direct 1x1 split by input channel: per-row sub-ranges */
        if (g->direct && nt > 1 && c->R * c->S == 1 && (size_t)c->C * HW >= 2 * (size_t)K * PQ) {
            int ch0, ch1;
            st__sc_split_units(m->t_ptr, c->C, 1, nt, tid, &ch0, &ch1);
            dse = (int32_t *)(part + g->part_floats);
            channel_ranges(m, ch0, ch1, dse);
            k0 = 0, k1 = ch0 < ch1 ? K : 0;
        }
        for (int kb0 = k0; g->direct && kb0 < k1;) {
            int kb1 = kb0 + 1;
            while (kb1 < k1 && (size_t)(m->row_ptr[kb1 + 1] - m->row_ptr[kb0]) * 16 <= g->part_floats)
                kb1++;
            const int base = m->row_ptr[kb0], cnt = m->row_ptr[kb1] - base;
            memset(part, 0, sizeof(float) * 16 * (size_t)cnt);
            for (int band = 0; band < p.nbands; band++) {
                const int n = band / nbs, i0 = (band % nbs) * g->L, Lb = ST_MIN(g->L, c->H - i0);
                const float *xb = x + (size_t)n * c->C * HW + (size_t)i0 * c->W;
                const float *db = dy + (size_t)n * K * PQ + (size_t)i0 * c->W;
                if (!dse) {
                    k->sddmm(kb0, kb1, m->row_ptr, m->x_off, db + (size_t)kb0 * PQ, (ptrdiff_t)PQ,
                             xb, 1, Lb * c->W, dval, m->x_cls, st__sc_band_mask(m, m->fmask, band % nbs),
                             part);
                    continue;
                }
                for (int kk = kb0; kk < kb1; kk++) /* row kk's sub-range dse[2kk], dse[2kk+1] */
                    if (dse[2 * kk] < dse[2 * kk + 1])
                        k->sddmm(kk, kk + 1, dse + kk, m->x_off, db + (size_t)kk * PQ,
                                 (ptrdiff_t)PQ, xb, 1, Lb * c->W, dval, NULL, NULL,
                                 part + (size_t)(dse[2 * kk] - base) * 16);
            }
            if (!dse) st_sparse_reduce16(dval + base, part, cnt);
            else
                for (int kk = kb0; kk < kb1; kk++)
                    st_sparse_reduce16(dval + dse[2 * kk], part + (size_t)(dse[2 * kk] - base) * 16,
                                       dse[2 * kk + 1] - dse[2 * kk]);
            kb0 = kb1;
        }
        /* Banded with several threads: when x is at least twice y, split the nonzeros by
         * input channel instead of by row (a row's columns are channel-major, so each
         * thread owns one sub-range of every row): every thread then copies only its
         * channels of x into its band buffer and x is read once, not once per thread. */
        int ch0 = 0, ch1 = c->C;
        int32_t *se = NULL; /* per row: [start, end) of this thread's nonzeros */
        if (!g->direct && nt > 1 && (size_t)c->C * HW >= 2 * (size_t)K * PQ) {
            int v0, v1;
            st__sc_split_units(m->t_ptr, c->C, g->PH, nt, tid, &v0, &v1);
            ch0 = v0 / g->PH, ch1 = v1 / g->PH;
            k0 = 0, k1 = ch0 < ch1 ? K : 0;
            se = (int32_t *)(dYb + (size_t)K * g->ldybw);
            channel_ranges(m, ch0, ch1, se);
        }
        for (int band = 0; !g->direct && band < p.nbands && k0 < k1; band++) {
            const int v0 = band * g->Lw, Lb = ST_MIN(g->Lw, Vf - v0);
            const int ncols = (Lb - 1) * g->Wv + c->Q;
            st__sc_build_xb(k, c, m, x, (size_t)c->H * c->W, v0, Lb + g->dr_max, ch0, ch1, g->ldbw, Xb);
            st__sc_build_dyb(c, m, dy, v0, v0, v0 + Lb, k0, k1, 0, g->ldybw, dYb);
            const float *d0 = dYb + g->gd + (size_t)g->dr_max * g->Wv;
            if (!se) {
                k->sddmm(k0, k1, m->row_ptr, m->x_offw, d0, g->ldybw, Xb, 1, ncols, dval, NULL,
                         NULL, NULL);
                continue;
            }
            for (int kk = 0; kk < K; kk++) /* row kk alone: its range is se[2kk], se[2kk+1] */
                if (se[2 * kk] < se[2 * kk + 1])
                    k->sddmm(kk, kk + 1, se + kk, m->x_offw, d0 + (size_t)kk * g->ldybw,
                             g->ldybw, Xb, 1, ncols, dval, NULL, NULL, NULL);
        }
    }
}

/* dx += the virtual-input gradient of rows [r0, r1) (whole channels) of a band. */
static void add_dx(const st_sparse_kernels *k, const st_conv2d *c, const st_csr *m, float *dx,
                   const float *O, int r0, int r1, int v0, int Lb) {
    const st_sparse_geom *g = &m->geom;
    const int Wv = g->Wv, sw = g->sw, pw = c->pad_w, W = c->W;
    int ilo, ihi;
    st__sc_s2_interior(W, pw, Wv, &ilo, &ihi);
    for (int vc0 = r0; vc0 < r1; vc0 += sw) {
        if (m->t_ptr[vc0] == m->t_ptr[vc0 + sw]) continue; /* all zero */
        const int ch = vc0 / g->PH, a = (vc0 % g->PH) / sw;
        const float *src = O + (size_t)(vc0 - r0) * g->ldo;
        for (int t = 0; t < Lb; t++) {
            const int v = v0 + t, n = v / g->Hv, i = v - n * g->Hv;
            const int h = i * g->sh + a - c->pad_h;
            if (h < 0 || h >= c->H) continue;
            float *d = dx + ((size_t)(n * c->C + ch) * c->H + h) * W;
            const float *s0 = src + (size_t)t * Wv;
            if (sw == 2) {
                const float *s1 = s0 + g->ldo;
                for (int j = 0; j < Wv; j++) {
                    if (j == ilo) j = ihi;
                    if (j >= Wv) break;
                    const int w0 = 2 * j - pw, w1 = w0 + 1;
                    if (w0 >= 0 && w0 < W) d[w0] += s0[j];
                    if (w1 >= 0 && w1 < W) d[w1] += s1[j];
                }
                k->int2_add(d + 2 * ilo - pw, s0 + ilo, s1 + ilo, ihi - ilo);
                continue;
            }
            for (int b = 0; b < sw; b++) {
                const float *sb = s0 + (size_t)b * g->ldo;
                const int off = b - pw;
                int lo, hi;
                st__valid_range(Wv, sw, off, W, &lo, &hi);
                if (sw == 1)
                    for (int j = lo; j < hi; j++) d[j + off] += sb[j];
                else
                    for (int j = lo; j < hi; j++) d[j * sw + off] += sb[j];
            }
        }
    }
}

/* dx += W^T dy through the transposed index. */
static void input_grad(const st_conv2d *c, const st_csr *m, float *dx, const float *dy,
                       float *scratch) {
    const st_sparse_kernels *k = &m->k;
    const st_sparse_geom *g = &m->geom;
    const int K = c->K, C = c->C, Wv = g->Wv;
    const sc_plan p = st__sc_make_plan(c, m, c->N * g->Hv, g->L, st__sc_omp_threads(c, m, c->N * g->Hv));
    const int items = p.nbands * p.RB;
    const size_t HW = (size_t)c->H * c->W, PQ = (size_t)c->P * c->Q;
    const int nbs = g->direct ? (c->H + g->L - 1) / g->L : 0;
#pragma omp parallel num_threads(ST_MIN(p.T, items))
    {
        float *Xb = g->direct ? NULL : scratch + g->thread_floats * omp_get_thread_num();
        float *dYb = g->direct ? NULL : Xb + (size_t)m->t_rows * g->ldb;
        float *O = g->direct ? NULL : dYb + (size_t)K * g->ldyb;
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) {
            const int band = it / p.RB;
            int r0, r1;
            /* whole channels (all phases), so stride-2 phases are merged in one pass */
            st__sc_split_units(m->t_ptr, C, g->PH, p.RB, it % p.RB, &r0, &r1);
            if (r0 >= r1) continue;
            if (g->direct) {
                const int n = band / nbs, i0 = (band % nbs) * g->L, Lb = ST_MIN(g->L, c->H - i0);
                k->spmm(r0, r1, m->t_ptr, m->t_off, m->t_val,
                        dy + (size_t)n * K * PQ + (size_t)i0 * c->W, 1, Lb * c->W,
                        dx + ((size_t)n * C + r0) * HW + (size_t)i0 * c->W, (ptrdiff_t)HW, NULL,
                        1, m->t_cls, st__sc_band_mask(m, m->bmask, band % nbs), NULL, 0);
                continue;
            }
            const int v0 = band * g->L, Lb = ST_MIN(g->L, c->N * g->Hv - v0);
            st__sc_build_dyb(c, m, dy, v0, v0 - g->dr_max, v0 + Lb, 0, K, 1, g->ldyb, dYb);
            k->spmm(r0, r1, m->t_ptr, m->t_off, m->t_val, dYb, 1, Lb * Wv, O, g->ldo, NULL, 0,
                    NULL, NULL, NULL, 0);
            add_dx(k, c, m, dx, O, r0, r1, v0, Lb);
        }
    }
}

st_status st_conv2d_sparse_backward(const st_conv2d *c, const st_csr *m, float *dx, float *dval,
                                    float *db, const float *dy, const float *x, float *scratch,
                                    st_error *err) {
    st_status s = st__sc_check(c, m, "st_conv2d_sparse_backward", err);
    if (s != ST_OK) return s;
    if (m->geom.taps)
        return st_errorf(err, ST_ERR_INPUT, "st_conv2d_sparse_backward: weights packed for the forward only (ST_CSR_TAPS)");
    if (db) bias_grad(c, db, dy);
    if (dval && m->nnz > 0) weight_grad(c, m, dval, dy, x, scratch);
    if (dx && m->nnz > 0) input_grad(c, m, dx, dy, scratch);
    return ST_OK;
}
