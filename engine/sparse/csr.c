/* Packing dense weights into st_csr (format: st_sparse.h), value refresh, gradient
 * scatter, and the buffer geometry the operators use (chosen here because the
 * premultiplied addresses x_off / t_off depend on it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sparse_conv_internal.h"
#include "st_sparse.h"

/* Columns a band aims for (kernel tiles per band pass) and the per-thread band memory
 * cap (floats): input slice + dy slice + output staging, sized to stay in L2. */
#ifndef ST_SPARSE_BAND_COLS
#define ST_SPARSE_BAND_COLS 512
#endif
#ifndef ST_SPARSE_BAND_BUDGET
#define ST_SPARSE_BAND_BUDGET (192 * 1024)
#endif
#ifndef ST_SPARSE_WGRAD_COLS
#define ST_SPARSE_WGRAD_COLS 384
#endif
#define ST_SPARSE_BAND_CAP (768 * 1024)
/* Direct mode: nonzeros whose weight-gradient partial sums a thread keeps at once. */
#define ST_SPARSE_PART_NZ 4096
/* Direct (in-place) mode needs planes at least this big to fill the kernel tiles (per-sample
 * bands); smaller ones batch samples into banded copies. At batch 1 there is nothing to
 * batch and direct mode saves the copies: alone, one thread, ResNet-18's 7x7 layers went
 * from 0.087 to 0.073 ms (3x3, 256 channels) and 0.067 to 0.038 (1x1, 512), 4x4 256-channel
 * 3x3 from 0.048 to 0.029; 2x2 512-channel 3x3 the same (0.100). */
#define ST_SPARSE_DIRECT_MIN_HW 64

/* Row strides: a multiple of 16 floats (64 bytes) that is an odd number of cache lines,
 * so consecutive rows fall in different L1 sets (power-of-two strides alias). */
static size_t pad_stride(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (((n / 16) & 1) == 0) n += 16;
    return n;
}

static size_t band_ldb(const st_sparse_geom *g, int L) {
    return pad_stride((size_t)(L + g->dr_max) * g->Wv + 16);
}
static size_t band_ldyb(const st_sparse_geom *g, int L) {
    return pad_stride((size_t)g->gd + (size_t)(L + g->dr_max) * g->Wv + 16);
}

/* Per-thread band memory: forward / backward-input (input slice, dy slice, output
 * staging for L rows) or weight gradient (input and dy slices for Lw rows, and 2 ints
 * per output channel), whichever is bigger. */
static size_t band_thread_floats(const st_sparse_geom *g, int L, int Lw, int K, int vrows) {
    size_t fb = (size_t)vrows * band_ldb(g, L) + (size_t)K * band_ldyb(g, L) +
                (size_t)ST_MAX(K, vrows) * pad_stride((size_t)L * g->Wv);
    size_t wg = (size_t)vrows * band_ldb(g, Lw) + (size_t)K * band_ldyb(g, Lw) + 2 * (size_t)K;
    return ST_MAX(fb, wg);
}

/* Direct mode: stride 1 and "same" output size, so output (p, q) and input (p, q) share
 * one flat index and every tap is a constant shift of it (masked at the borders). */
static int direct_ok(const st_conv2d *c) {
    const size_t HW = (size_t)c->H * c->W;
    if (c->stride_h != 1 || c->stride_w != 1 || c->P != c->H || c->Q != c->W) return 0;
    if (c->R * c->S > 255 || st__kxk_fwd_rows(c) > 256) return 0; /* classes in a byte */
    size_t span = (size_t)(c->R * c->dil_h + 1) * c->W;
    return (size_t)ST_MAX(c->C, c->K) * HW + span < ((size_t)1 << 31);
}

static int direct_wanted(const st_conv2d *c, int batch) {
    const size_t HW = (size_t)c->H * c->W;
    return HW >= ST_SPARSE_DIRECT_MIN_HW || batch == 1;
}

/* batch: the largest batch the operators will run (the caller's conv N); layout may
 * carry ST_CSR_TAPS and ST_CSR_CBLK. */
static void make_geom(st_sparse_geom *g, const st_conv2d *c, int layout, int batch) {
    memset(g, 0, sizeof *g);
    /* taps only where whole output rows are the kernel's tiles: flattened bands of short
     * rows (Q < 40) keep their aligned taps of dr = 0 and lost to the tap planes' build
     * (yolov5n's 128x20x20 3x3 stride 2, one thread: 0.12 -> 0.15 ms) */
    const int taps = (layout & ST_CSR_TAPS) && c->stride_w > 1 && st__sc_rows_tile(c->Q);
    layout &= ~(ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS);
    if (direct_ok(c) && (layout == 2 || (layout == 0 && direct_wanted(c, batch)))) {
        g->direct = 1;
        g->sh = g->sw = g->PH = 1;
        g->Hv = c->H;
        g->Wv = c->W;
        /* bands start on 64-byte boundaries where the row length allows (L*W % 16 == 0):
         * unaligned loads cost about 1.6x in the kernels */
        int a = 16;
        for (int w = c->W; a > 1 && w % 2 == 0; w /= 2) a /= 2;
        int L = (ST_SPARSE_BAND_COLS + c->W - 1) / c->W;
        L = (L + a - 1) / a * a;
        /* as many bands, but as even as the alignment allows: threads take runs of whole
         * bands, and 28 rows in bands of 20 left one thread 20 rows, the other 8 */
        if (L < c->H) {
            const int nb = (c->H + L - 1) / L, even = ((c->H + nb - 1) / nb + a - 1) / a * a;
            if (even < L) L = even;
        }
        /* One image, few bands: 2, 4 or 8 of them, so that threads take whole bands
         * (rows) instead of splitting each band's channels. By rows a thread reads what
         * its own core wrote in the layer before; by channels it read half its input
         * from the other core (yolov5n's 20x20 1x1 layers, 2 threads: 0.020 -> 0.010 ms).
         * Not under 128 floats a band: both cores write the cache line at a band's edge
         * (10x10 maps lost, 0.008 -> 0.023 ms). Evenness wins over alignment here. */
        const int nb = (c->H + L - 1) / L;
        if (batch == 1 && nb < 8) {
            int p2 = 2;
            while (p2 < nb) p2 *= 2;
            while (p2 > nb && (size_t)(c->H / p2) * c->W < 128) p2 /= 2;
            if (p2 > nb) L = (c->H + p2 - 1) / p2;
        }
        g->L = g->Lw = ST_MAX(1, ST_MIN(c->H, L));
        return;
    }
    g->sh = c->stride_h;
    g->sw = c->stride_w;
    g->PH = g->sh * g->sw;
    g->Hv = (c->H + 2 * c->pad_h + g->sh - 1) / g->sh;
    g->Wv = (c->W + 2 * c->pad_w + g->sw - 1) / g->sw;
    g->dr_max = (c->R - 1) * c->dil_h / g->sh;
    g->ds_max = (c->S - 1) * c->dil_w / g->sw;
    if (taps) { /* planes per (row phase, tap column); no column shifts */
        g->taps = 1;
        g->PH = g->sh * c->S;
        g->ds_max = 0;
        g->Wv = (c->Q + 15) & ~15; /* rows of whole vectors */
    }
    g->gd = (g->ds_max + 15) & ~15;
    const int vrows = c->C * g->PH;
    int L = ST_MAX(1, (ST_SPARSE_BAND_COLS + g->Wv - 1) / g->Wv);
    /* An image stem's band rebuilds dr_max rows of tap planes (3x its input) that the
     * band before built: at least 8 dr_max rows keep that under 1/8 (yolov5n's 6x6 stem,
     * one thread: bands of 4 rows -> 16, 0.95-0.96x the time; ResNet-18's 7x7, bands of 5
     * -> 14 as the budget allows, the same time) */
    if (g->taps == 1 && c->C <= 4) L = ST_MAX(L, 8 * g->dr_max);
    while (L > 1 && band_thread_floats(g, L, L, c->K, vrows) > ST_SPARSE_BAND_BUDGET) L--;
    /* The weight gradient pays a horizontal sum per nonzero and band: give it at least
     * WGRAD_COLS columns when the memory cap allows (forward and backward-input keep the
     * L2-sized bands: they slowed down with taller ones). */
    int Lw = ST_MAX(L, (ST_SPARSE_WGRAD_COLS + g->Wv - 1) / g->Wv);
    while (Lw > L && band_thread_floats(g, L, Lw, c->K, vrows) > ST_SPARSE_BAND_CAP) Lw--;
    g->L = L;
    g->Lw = Lw;
    g->ldb = (int)band_ldb(g, L);
    g->ldyb = (int)band_ldyb(g, L);
    g->ldbw = (int)band_ldb(g, Lw);
    g->ldybw = (int)band_ldyb(g, Lw);
    g->ldo = (int)pad_stride((size_t)L * g->Wv);
    g->thread_floats = band_thread_floats(g, L, Lw, c->K, vrows);
}

/* Direct kxk lane masks, [band][class][nvec]: forward reads x at (p + r*dh - ph, q +
 * s*dw - pw) for output (p, q); backward-input reads dy at (h - r*dh + ph, w - s*dw + pw)
 * for input (h, w). A lane is on when that lies inside the image (and the column is in
 * the band). Forward row 0 of a band: per vector, log2 of st__kxk_rpow where no tap
 * leaves the image vertically in it, else 0 (st_sparse.h). */
static int make_masks(st_csr *m) {
    const st_conv2d *c = &m->conv;
    const int L = m->geom.L, W = c->W, H = c->H, RS = c->R * c->S, FR = st__kxk_fwd_rows(c);
    const int nbs = (H + L - 1) / L, nvec = (L * W + 15) / 16, band = m->band_ldc > 0;
    const int lg = st__kxk_rlog(c);
    m->mask_nvec = nvec;
    /* four words of padding: kernels may read a row's masks four vectors at a time */
    m->fmask = calloc((size_t)nbs * FR * nvec + 4, sizeof(uint16_t));
    m->bmask = calloc((size_t)nbs * (RS + 1) * nvec + 4, sizeof(uint16_t)); /* row 0: zeros */
    if (!m->fmask || !m->bmask) return -1;
    for (int bs = 0; bs < nbs; bs++) {
        /* a band's table starts at bs * rows * nvec; its rows are as long as the kernel
         * expects for its own width (the last band may be shorter) */
        const int p0 = bs * L, cols = ST_MIN(L, H - p0) * W, nv = (cols + 15) / 16;
        uint16_t *flat = m->fmask + (size_t)bs * FR * nvec; /* row 0 */
        for (int v = 0; v < nv; v++) flat[v] = (uint16_t)lg;
        for (int t = 0; t < RS; t++) {
            const int r = t / c->S, s = t % c->S;
            const int dr = r * c->dil_h - c->pad_h, ds = s * c->dil_w - c->pad_w;
            uint16_t *fm = m->fmask + (size_t)bs * FR * nvec + (size_t)st__kxk_fwd_cls(c, r, s) * nv;
            uint16_t *bm = m->bmask + (size_t)bs * (RS + 1) * nvec + (size_t)(t + 1) * nv;
            for (int j = 0; j < cols; j++) {
                const int p = p0 + j / W, q = j % W, vin = band || (p + dr >= 0 && p + dr < H);
                if (vin && q + ds >= 0 && q + ds < W) fm[j >> 4] |= (uint16_t)(1u << (j & 15));
                if (!vin) flat[j >> 4] = 0;
                if (p - dr >= 0 && p - dr < H && q - ds >= 0 && q - ds < W)
                    bm[j >> 4] |= (uint16_t)(1u << (j & 15));
            }
        }
    }
    return 0;
}

void st_csr_free(st_csr *m) {
    if (!m) return;
    free(m->row_ptr);
    free(m->col_idx);
    free(m->val);
    free(m->x_off);
    free(m->x_offw);
    free(m->t_ptr);
    free(m->t_row);
    free(m->t_src);
    free(m->t_off);
    free(m->t_val);
    free(m->vc_used);
    free(m->x_cls);
    free(m->t_cls);
    free(m->fmask);
    free(m->bmask);
    free(m->cb_ptr);
    free(m->cb_off);
    free(m->cb_src);
    free(m->cb_val);
    free(m->cb_cls);
    free(m->q_ptr);
    free(m->q_off);
    free(m->q_src);
    free(m->q_val);
    free(m->q_cls);
    memset(m, 0, sizeof *m);
}

st_isa st_csr_set_isa(st_csr *m, st_isa isa) {
    st_sparse_kernels_init(&m->k, isa);
    return m->k.isa;
}

/* Direct mode: flat shift of tap (r, s) of column col: input index - output index. */
static int64_t direct_shift(const st_conv2d *c, int col) {
    const int r = (col / c->S) % c->R, s = col % c->S;
    return (int64_t)(r * c->dil_h - c->pad_h) * c->W + (s * c->dil_w - c->pad_w);
}

/* Virtual input channel and in-plane shift of column col (ci, r, s) of group grp. */
static void col_tap(const st_csr *m, int grp, int col, int *vc, int *dr, int *ds) {
    const st_conv2d *c = &m->conv;
    const st_sparse_geom *g = &m->geom;
    const int RS = c->R * c->S;
    const int ci = col / RS, r = (col / c->S) % c->R, s = col % c->S;
    const int ch = grp * (c->C / c->groups) + ci;
    const int vr = r * c->dil_h, vs = s * c->dil_w;
    *dr = vr / g->sh;
    if (g->taps) {
        *vc = ch * g->PH + (vr % g->sh) * c->S + s;
        *ds = 0;
        return;
    }
    *vc = ch * g->PH + (vr % g->sh) * g->sw + vs % g->sw;
    *ds = vs / g->sw;
}

/* Direct kxk: order each transposed row by tap class (stable, so by output channel
 * within a class), giving the kernels long runs of one border mask. */
static int sort_t_by_class(st_csr *m) {
    const int RS = m->conv.R * m->conv.S;
    int maxrow = 0;
    for (int v = 0; v < m->t_rows; v++) maxrow = ST_MAX(maxrow, m->t_ptr[v + 1] - m->t_ptr[v]);
    const size_t n = (size_t)(maxrow ? maxrow : 1);
    int32_t *tmp = malloc(sizeof(int32_t) * n * 3);
    float *tv = malloc(sizeof(float) * n);
    uint8_t *tc = malloc(n);
    int *start = malloc(sizeof(int) * (RS + 2));
    if (!tmp || !tv || !tc || !start) {
        free(tmp), free(tv), free(tc), free(start);
        return -1;
    }
    for (int v = 0; v < m->t_rows; v++) {
        const int a = m->t_ptr[v], cnt = m->t_ptr[v + 1] - a;
        memset(start, 0, sizeof(int) * (RS + 2));
        for (int i = 0; i < cnt; i++) start[m->t_cls[a + i] + 1]++;
        for (int q = 0; q <= RS; q++) start[q + 1] += start[q];
        for (int i = 0; i < cnt; i++) {
            const int to = start[m->t_cls[a + i]]++;
            tmp[to] = m->t_row[a + i];
            tmp[n + to] = m->t_src[a + i];
            tmp[2 * n + to] = m->t_off[a + i];
            tv[to] = m->t_val[a + i];
            tc[to] = m->t_cls[a + i];
        }
        memcpy(m->t_row + a, tmp, sizeof(int32_t) * cnt);
        memcpy(m->t_src + a, tmp + n, sizeof(int32_t) * cnt);
        memcpy(m->t_off + a, tmp + 2 * n, sizeof(int32_t) * cnt);
        memcpy(m->t_val + a, tv, sizeof(float) * cnt);
        memcpy(m->t_cls + a, tc, cnt);
    }
    free(tmp), free(tv), free(tc), free(start);
    return 0;
}

static st_status pack(st_csr *m, const st_conv2d *conv, const float *w, const unsigned char *mask,
                      int layout, int64_t ldc, st_error *err);

st_status st_csr_pack(st_csr *m, const st_conv2d *conv, const float *w, const unsigned char *mask,
                      st_error *err) {
    return st_csr_pack_layout(m, conv, w, mask, 0, err);
}

st_status st_csr_pack_layout(st_csr *m, const st_conv2d *conv, const float *w,
                             const unsigned char *mask, int layout, st_error *err) {
    return pack(m, conv, w, mask, layout, 0, err);
}

st_status st_csr_pack_band(st_csr *m, const st_conv2d *conv, const float *w, int64_t ldc,
                           st_error *err) {
    st_conv2d c = conv ? *conv : (st_conv2d){0};
    c.N = 1;
    if (!m || !conv || !w) return st_errorf(err, ST_ERR_INTERNAL, "st_csr_pack_band: NULL argument");
    st_csr_free(m); /* left empty on every error, as by st_csr_pack */
    if (st_conv2d_init(&c) != 0 || !direct_ok(&c) || c.groups != 1 ||
        c.dil_h * (c.R - 1) != 2 * c.pad_h || ldc < (int64_t)(c.H + 2 * c.pad_h) * c.W ||
        (int64_t)c.C * ldc >= INT32_MAX) /* x_off holds channel * ldc in 32 bits */
        return st_errorf(err, ST_ERR_INPUT, "st_csr_pack_band: no direct mode for this band");
    return pack(m, &c, w, NULL, 2 | ST_CSR_CBLK | ST_CSR_QUADS, ldc, err);
}

/* ldc > 0: st_csr_pack_band's layout (input channels ldc apart, no vertical masks). */
static st_status pack(st_csr *m, const st_conv2d *conv, const float *w, const unsigned char *mask,
                      int layout, int64_t ldc, st_error *err) {
    if (!m) return st_errorf(err, ST_ERR_INTERNAL, "st_csr_pack: NULL matrix");
    st_csr_free(m);
    m->band_ldc = ldc;
    /* each packed weight carries its kernel table: no process-wide state */
    st_sparse_kernels_init(&m->k, st_cpu_select_isa());
    if (!conv || !w) return st_errorf(err, ST_ERR_INTERNAL, "st_csr_pack: NULL conv or weights");
    st_conv2d c = *conv;
    c.N = 1;
    if (st_conv2d_init(&c) != 0)
        return st_errorf(err, ST_ERR_INPUT, "st_csr_pack: invalid convolution shape");
    const int K = c.K, cols = c.C / c.groups * c.R * c.S;
    if ((double)K * cols >= 2147483647.0)
        return st_errorf(err, ST_ERR_INPUT, "st_csr_pack: weight too large (%d x %d)", K, cols);
    m->conv = c;
    m->groups = c.groups;
    m->rows = K / c.groups;
    m->cols = cols;
    /* Tap planes hold S / stride_w copies of the input: 3-3.5x for the 6x6 and 7x7
     * stride-2 stems over 3 channels, where so few nonzeros read each input that the
     * copy costs more than the aligned loads save, once quads load each input for four
     * FMAs (2 threads, 50% in [4, 1] blocks: yolov5n's stem 0.26 -> 0.20 ms without
     * them, ResNet-18's 0.42 -> 0.39; 3x3 stride-2 layers keep them: yolov5n's model.1
     * 0.068 with, 0.085 without). */
    if ((layout & ST_CSR_TAPS) && (layout & ST_CSR_QUADS) && !mask && c.S > 2 * c.stride_w &&
        st_csr_quads_density(&c, w) >= 0.0)
        layout &= ~ST_CSR_TAPS;
    make_geom(&m->geom, &c, layout, conv->N > 0 ? conv->N : 1);
    const st_sparse_geom *g = &m->geom;
    m->t_rows = c.C * g->PH;
    if (g->thread_floats >= ((size_t)1 << 31))
        return st_errorf(err, ST_ERR_INPUT, "st_csr_pack: band buffers too large");

    int nnz = 0;
    for (size_t i = 0; i < (size_t)K * cols; i++) nnz += mask ? mask[i] != 0 : w[i] != 0.0f;
    m->nnz = nnz;
    const size_t nz = (size_t)(nnz ? nnz : 1);
    m->row_ptr = malloc(sizeof(int32_t) * (K + 1));
    m->col_idx = malloc(sizeof(int32_t) * nz);
    m->val = malloc(sizeof(float) * nz);
    m->x_off = malloc(sizeof(int32_t) * nz);
    m->t_ptr = calloc((size_t)m->t_rows + 1, sizeof(int32_t));
    m->t_row = malloc(sizeof(int32_t) * nz);
    m->t_src = malloc(sizeof(int32_t) * nz);
    m->t_off = malloc(sizeof(int32_t) * nz);
    m->t_val = malloc(sizeof(float) * nz);
    m->vc_used = calloc((size_t)m->t_rows, 1);
    const int kxk = g->direct && c.R * c.S > 1;
    if (!g->direct) m->x_offw = malloc(sizeof(int32_t) * nz);
    if (kxk) {
        m->x_cls = malloc(nz);
        m->t_cls = malloc(nz);
    }
    if (!m->row_ptr || !m->col_idx || !m->val || !m->x_off || !m->t_ptr || !m->t_row ||
        !m->t_src || !m->t_off || !m->t_val || !m->vc_used || (!g->direct && !m->x_offw) ||
        (kxk && (!m->x_cls || !m->t_cls || make_masks(m) != 0))) {
        st_csr_free(m);
        return st_errorf(err, ST_ERR_NOMEM, "st_csr_pack: out of memory (%d nonzeros)", nnz);
    }

    const size_t HW = (size_t)c.H * c.W, PQ = (size_t)c.P * c.Q;
    const int RS = c.R * c.S;
    int e = 0;
    for (int k = 0; k < K; k++) {
        m->row_ptr[k] = e;
        const int grp = k / m->rows;
        for (int j = 0; j < cols; j++) {
            /* direct kxk: st__kxk_order (tap column, tap row, channel), so the kernels
             * load each tap's border masks once per run of nonzeros instead of once per
             * nonzero, and away from the top and bottom rows once per tap column */
            const int col = kxk ? st__kxk_col(&c, j) : j;
            size_t i = (size_t)k * cols + col;
            if (!(mask ? mask[i] != 0 : w[i] != 0.0f)) continue;
            m->col_idx[e] = col;
            m->val[e] = w[i];
            int vc, dr, ds;
            col_tap(m, grp, col, &vc, &dr, &ds);
            const int64_t ldv = ldc ? ldc : (int64_t)HW; /* direct: input channel stride */
            m->x_off[e] = g->direct ? (int32_t)((int64_t)vc * ldv + direct_shift(&c, col))
                                    : (int32_t)((size_t)vc * g->ldb + (size_t)dr * g->Wv + ds);
            if (kxk) m->x_cls[e] = (uint8_t)st__kxk_fwd_cls(&c, (col % RS) / c.S, col % c.S);
            if (!g->direct) m->x_offw[e] = (int32_t)((size_t)vc * g->ldbw + (size_t)dr * g->Wv + ds);
            m->vc_used[vc] = 1;
            m->t_ptr[vc + 1]++;
            e++;
        }
    }
    m->row_ptr[K] = e;
    if (g->direct) { /* weight-gradient partial lanes: up to 4096 nonzeros, or the longest row */
        int longest = 0;
        for (int k = 0; k < K; k++) longest = ST_MAX(longest, m->row_ptr[k + 1] - m->row_ptr[k]);
        m->geom.part_floats = (size_t)16 * ST_MAX(ST_MIN(nnz, ST_SPARSE_PART_NZ), longest);
        m->geom.thread_floats = m->geom.part_floats + (((size_t)2 * K + 15) & ~(size_t)15);
    }
    for (int v = 0; v < m->t_rows; v++) m->t_ptr[v + 1] += m->t_ptr[v];
    /* Transposed entries in row-major order of W: within a virtual channel they come
     * sorted by output channel, then column. */
    int32_t *fill = malloc(sizeof(int32_t) * (m->t_rows + 1));
    if (!fill) {
        st_csr_free(m);
        return st_errorf(err, ST_ERR_NOMEM, "st_csr_pack: out of memory");
    }
    memcpy(fill, m->t_ptr, sizeof(int32_t) * (m->t_rows + 1));
    for (int k = 0; k < K; k++) {
        const int grp = k / m->rows;
        for (int q = m->row_ptr[k]; q < m->row_ptr[k + 1]; q++) {
            int vc, dr, ds;
            col_tap(m, grp, m->col_idx[q], &vc, &dr, &ds);
            const int t = fill[vc]++;
            m->t_row[t] = k;
            m->t_src[t] = q;
            m->t_val[t] = m->val[q];
            const int col = m->col_idx[q];
            m->t_off[t] = g->direct ? (int32_t)((int64_t)k * PQ - direct_shift(&c, col))
                                    : (int32_t)((size_t)k * g->ldyb + g->gd +
                                                (size_t)(g->dr_max - dr) * g->Wv - ds);
            if (kxk) m->t_cls[t] = (uint8_t)(col % (c.R * c.S) + 1);
        }
    }
    free(fill);
    if ((kxk && sort_t_by_class(m) != 0) || ((layout & ST_CSR_QUADS) && st__csr_quads_build(m) != 0) ||
        ((layout & ST_CSR_CBLK) && !m->q_n && st__csr_cblk_build(m) != 0)) {
        st_csr_free(m);
        return st_errorf(err, ST_ERR_NOMEM, "st_csr_pack: out of memory");
    }
    return ST_OK;
}

st_status st_csr_pack_linear(st_csr *m, int in_f, int out_f, const float *w,
                             const unsigned char *mask, st_error *err) {
    st_conv2d c = {.N = 1, .C = in_f, .H = 1, .W = 1, .K = out_f, .R = 1, .S = 1, .stride_h = 1,
                   .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 1};
    /* banded: the batch is the linear layer's only columns, batched into one band */
    return st_csr_pack_layout(m, &c, w, mask, 1, err);
}

void st_csr_sync_transposed(st_csr *m) {
    for (int i = 0; i < m->nnz; i++) m->t_val[i] = m->val[m->t_src[i]];
    for (int i = 0; m->cb_n && i < m->nnz; i++) m->cb_val[i] = m->val[m->cb_src[i]];
    const size_t nq = m->q_n ? (size_t)m->q_ptr[m->q_n] * 4 : 0;
    for (size_t i = 0; i < nq; i++) m->q_val[i] = m->q_src[i] >= 0 ? m->val[m->q_src[i]] : 0.0f;
}

void st_csr_refresh(st_csr *m, const float *w) {
    const int K = m->groups * m->rows;
    for (int k = 0; k < K; k++) {
        const float *wr = w + (size_t)k * m->cols;
        for (int e = m->row_ptr[k]; e < m->row_ptr[k + 1]; e++) m->val[e] = wr[m->col_idx[e]];
    }
    st_csr_sync_transposed(m);
}

void st_csr_positions(const st_csr *m, int64_t *pos) {
    const int K = m->groups * m->rows;
    for (int k = 0; k < K; k++)
        for (int e = m->row_ptr[k]; e < m->row_ptr[k + 1]; e++)
            pos[e] = (int64_t)k * m->cols + m->col_idx[e];
}

void st_csr_scatter_grad(const st_csr *m, const float *dval, float *dw) {
    const int K = m->groups * m->rows;
    for (int k = 0; k < K; k++) {
        float *wr = dw + (size_t)k * m->cols;
        for (int e = m->row_ptr[k]; e < m->row_ptr[k + 1]; e++) wr[m->col_idx[e]] += dval[e];
    }
}

void st_csr_unpack(const st_csr *m, float *w) {
    memset(w, 0, sizeof(float) * (size_t)m->groups * m->rows * m->cols);
    const int K = m->groups * m->rows;
    for (int k = 0; k < K; k++)
        for (int e = m->row_ptr[k]; e < m->row_ptr[k + 1]; e++)
            w[(size_t)k * m->cols + m->col_idx[e]] = m->val[e];
}
