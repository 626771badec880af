/* The inference-only copies of a packing's nonzeros (st_sparse.h): channel blocks
 * (ST_CSR_CBLK) and quads (ST_CSR_QUADS), built by st_csr_pack_layout after the plain
 * rows and their entries (st_sparse.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv2d_internal.h"
#include "sparse_conv_internal.h"
#include "st_cpu.h"
#include "st_sparse.h"

/* Bytes of input a block of channels may take per kernel tile, and the fewest nonzeros
 * per row and block (each block pass loads and stores the output tile again). Swept on
 * ResNet-18 and yolov5n shapes at 90%, one thread: 2-4 blocks where a tile's input is
 * 100-160 KiB gained 7-12% (3x3 layers of 128 channels on 28x28, 256 on 14x14, 512 on
 * 7x7); under 64 KiB, or with fewer nonzeros per block (1x1 layers of 256 channels on
 * 10x10), blocks cost up to 10%. */
#ifndef ST_SPARSE_CBLK_BYTES
#define ST_SPARSE_CBLK_BYTES (64 * 1024)
#endif
#define ST_SPARSE_CBLK_MIN_NNZ 16

/* How many channel blocks: the input one forward tile reads (up to 128 columns of every
 * channel's planes, with the taps' reach) over ST_SPARSE_CBLK_BYTES. */
static int cblk_count(const st_csr *m) {
    const st_conv2d *c = &m->conv;
    const st_sparse_geom *g = &m->geom;
    const int K = c->K;
    if (K < 1 || c->groups != 1 || m->nnz < 1) return 1;
    double per_ch; /* bytes one channel's input takes per tile */
    const int qt = !g->direct && m->k.spmm_rows ? st__sc_rows_tile(c->Q) : 0;
    if (qt) { /* written row by row (spmm_rows): a call's image rows of qt columns */
        const int nr = ST_SPARSE_ROWS_PER_CALL((qt + 15) / 16);
        per_ch = 4.0 * g->PH * ((nr + g->dr_max) * (qt + g->ds_max));
    } else if (g->direct) {
        const int cols = ST_MIN(128, g->L * c->W);
        per_ch = 4.0 * (cols + (c->R - 1) * c->dil_h * c->W + (c->S - 1) * c->dil_w);
    } else {
        const int cols = ST_MIN(128, g->L * g->Wv);
        per_ch = 4.0 * g->PH * (cols + g->dr_max * g->Wv + g->ds_max);
    }
    int nb = (int)(c->C * per_ch / ST_SPARSE_CBLK_BYTES + 0.999);
    nb = ST_MIN(nb, m->nnz / (K * ST_SPARSE_CBLK_MIN_NNZ));
    return ST_MAX(1, ST_MIN(nb, c->C));
}

/* The grouped copy of the nonzeros (ST_CSR_CBLK); 0, or -1 when out of memory. */
int st__csr_cblk_build(st_csr *m) {
    const int nb = cblk_count(m);
    if (nb < 2) return 0;
    const st_conv2d *c = &m->conv;
    const int K = c->K, RS = c->R * c->S, nz = m->nnz;
    m->cb_ptr = malloc(sizeof(int32_t) * ((size_t)nb * (K + 1)));
    m->cb_off = malloc(sizeof(int32_t) * nz);
    m->cb_src = malloc(sizeof(int32_t) * nz);
    m->cb_val = malloc(sizeof(float) * nz);
    m->cb_cls = m->x_cls ? malloc(nz) : NULL;
    if (!m->cb_ptr || !m->cb_off || !m->cb_src || !m->cb_val || (m->x_cls && !m->cb_cls)) return -1;
    int at = 0;
    for (int b = 0; b < nb; b++) {
        for (int r = 0; r < K; r++) {
            m->cb_ptr[(size_t)b * (K + 1) + r] = at;
            for (int e = m->row_ptr[r]; e < m->row_ptr[r + 1]; e++) {
                const int ch = m->col_idx[e] / RS;
                if ((int)((int64_t)ch * nb / c->C) != b) continue;
                m->cb_off[at] = m->x_off[e];
                m->cb_src[at] = e;
                m->cb_val[at] = m->val[e];
                if (m->cb_cls) m->cb_cls[at] = m->x_cls[e];
                at++;
            }
        }
        m->cb_ptr[(size_t)b * (K + 1) + K] = at;
    }
    m->cb_n = nb;
    return 0;
}

/* Padding the quads may add: entries x 4 at most this many eighths of nnz (1.25x). A
 * [4, 1]-pruned layer needs none (only exact zeros inside kept blocks); an unstructured
 * 90% layer needs about 3.4x its nonzeros and keeps its plain rows. */
#define ST_SPARSE_QUAD_PAD_8THS 10

/* Shapes and CPUs that can have quads at all. */
static int quads_possible(const st_sparse_kernels *k, const st_conv2d *c) {
    return k->spmm4 && c->groups == 1 && c->K % 4 == 0;
}

/* Whether quads of `entries` entries pay for nnz nonzeros (the padding limit above). */
static int quads_pay(int64_t entries, int64_t nnz) {
    return nnz > 0 && entries * 4 * 8 <= nnz * ST_SPARSE_QUAD_PAD_8THS;
}

/* The quad copy (ST_CSR_QUADS) where the rows come in fours of one pattern; 0 (built
 * or not wanted), -1 when out of memory. Entries follow the rows' own order (by tap column
 * in direct kxk mode), merged over the four rows by their order key. */
int st__csr_quads_build(st_csr *m) {
    const st_conv2d *c = &m->conv;
    const int K = c->K, cols = m->cols;
    if (!quads_possible(&m->k, c) || m->nnz < 1) return 0;
    const int kxk = m->x_cls != NULL;
    /* order key of column col: its position in the packing order of a row */
    #define QKEY(col) (kxk ? st__kxk_order(c, col) : (col))
    /* first the union sizes (at[key] = q + 1: key seen in quad q), then [key][row in
     * quad]: entry or -1 */
    int32_t *at = calloc((size_t)cols * 4, sizeof(int32_t));
    if (!at) return -1;
    int64_t total = 0;
    for (int q = 0; q < K / 4; q++)
        for (int e = m->row_ptr[4 * q]; e < m->row_ptr[4 * q + 4]; e++) {
            const int key = QKEY(m->col_idx[e]);
            total += at[key] != q + 1, at[key] = q + 1;
        }
    if (!quads_pay(total, m->nnz)) {
        free(at);
        return 0;
    }
    const size_t nq = (size_t)total;
    m->q_ptr = malloc(sizeof(int32_t) * ((size_t)K / 4 + 1));
    m->q_off = malloc(sizeof(int32_t) * nq);
    m->q_src = malloc(sizeof(int32_t) * nq * 4);
    m->q_val = malloc(sizeof(float) * nq * 4);
    m->q_cls = kxk ? malloc(nq) : NULL;
    if (!m->q_ptr || !m->q_off || !m->q_src || !m->q_val || (kxk && !m->q_cls)) {
        free(at);
        return -1;
    }
    for (size_t i = 0; i < (size_t)cols * 4; i++) at[i] = -1;
    int n = 0;
    for (int q = 0; q < K / 4; q++) {
        m->q_ptr[q] = n;
        int first = cols, last = -1; /* key range of the quad */
        for (int j = 0; j < 4; j++)
            for (int e = m->row_ptr[4 * q + j]; e < m->row_ptr[4 * q + j + 1]; e++) {
                const int key = QKEY(m->col_idx[e]);
                at[(size_t)key * 4 + j] = e;
                first = ST_MIN(first, key), last = ST_MAX(last, key);
            }
        for (int key = first; key <= last; key++) {
            int32_t *a = at + (size_t)key * 4;
            if (a[0] < 0 && a[1] < 0 && a[2] < 0 && a[3] < 0) continue;
            const int e = a[0] >= 0 ? a[0] : a[1] >= 0 ? a[1] : a[2] >= 0 ? a[2] : a[3];
            m->q_off[n] = m->x_off[e];
            if (kxk) m->q_cls[n] = m->x_cls[e];
            for (int j = 0; j < 4; j++) {
                m->q_src[(size_t)n * 4 + j] = a[j];
                m->q_val[(size_t)n * 4 + j] = a[j] >= 0 ? m->val[a[j]] : 0.0f;
                a[j] = -1;
            }
            n++;
        }
    }
    #undef QKEY
    m->q_ptr[K / 4] = n;
    m->q_n = K / 4;
    free(at);
    return 0;
}


double st_csr_quads_density(const st_conv2d *conv, const float *w) {
    st_conv2d c = *conv;
    st_sparse_kernels k;
    st_sparse_kernels_init(&k, st_cpu_select_isa());
    if (st_conv2d_init(&c) != 0 || !quads_possible(&k, &c)) return -1.0;
    const size_t per = (size_t)c.C * c.R * c.S;
    int64_t nnz = 0, total = 0;
    for (int q = 0; q < c.K / 4; q++) {
        const float *r = w + (size_t)4 * q * per;
        for (size_t j = 0; j < per; j++) {
            const int n = (r[j] != 0.0f) + (r[per + j] != 0.0f) + (r[2 * per + j] != 0.0f) +
                          (r[3 * per + j] != 0.0f);
            nnz += n, total += n > 0;
        }
    }
    if (!quads_pay(total, nnz)) return -1.0;
    return 4.0 * (double)total / ((double)per * c.K);
}
