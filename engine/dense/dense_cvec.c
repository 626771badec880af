/* The dense convolution's channel-vector tiles (st_dense.h, ST_DENSE_CV_NP): the part of
 * one image's output a thread computes, on the direct mode's phase planes. */
#include <stddef.h>
#include <stdint.h>

#include "st_dense.h"

enum { NP = ST_DENSE_CV_NP };

/* Reduction rows per chunk where a panel's weights would not stay in L2 across its tiles
 * (64 x 512 floats: 128 KiB); panels up to twice that run whole. */
#define CV_KC 512

static long n_groups(const st_conv2d *c) { return (long)(((size_t)c->P * c->Q + NP - 1) / NP); }

/* Panels this long are chunked: every tile of the part's panel then passes over a chunk
 * while it is in L2, instead of streaming the whole panel once per tile (ResNet-18's
 * layer4: 4608 rows, 1.2 MB a panel, 9 tiles). */
static int chunked(const st_conv2d *c) { return c->C * c->R * c->S > 2 * CV_KC; }

size_t st__dense_cvec_part_floats(const st_conv2d *c) {
    return chunked(c) ? (size_t)n_groups(c) * NP * 64 : 0;
}

int st__dense_cvec_chunks(const st_conv2d *c) {
    const int crs = c->C * c->R * c->S;
    return chunked(c) ? (crs + CV_KC - 1) / CV_KC : 1;
}

/* Output tile of group g: the positions' grid offsets (a short last tile repeats its
 * first position) and how many are real. */
static int tile_pos(const st_conv2d *c, int Wh, long g, int32_t *pos) {
    const size_t PQ = (size_t)c->P * c->Q, f0 = (size_t)g * NP;
    const int n = PQ - f0 < NP ? (int)(PQ - f0) : NP;
    for (int i = 0; i < NP; i++) {
        const size_t f = f0 + (size_t)(i < n ? i : 0);
        pos[i] = (int32_t)(f / (size_t)c->Q * (size_t)Wh + f % (size_t)c->Q);
    }
    return n;
}

/* The finished tile out [NP][64] of panel kp, group g into y, with the bias and the
 * epilogue. */
static void store_tile(const st_conv2d *c, const float *out, int n, int kp, long g, float *y, const float *bias,
                       const st_epi_op *ops, int n_ops, size_t y_index, st_epi_rows_fn epi_rows) {
    const size_t PQ = (size_t)c->P * c->Q, f0 = (size_t)g * NP;
    float *y0 = y + (size_t)kp * 64 * PQ + f0;
    for (int m = 0; m < 64; m++) {
        const float bm = bias ? bias[kp * 64 + m] : 0.0f;
        for (int i = 0; i < n; i++) y0[(size_t)m * PQ + (size_t)i] = out[i * 64 + m] + bm;
    }
    if (n_ops) {
        st_epi_op eo[ST_EPI_MAX_OPS];
        st_epi_ops_at(eo, ops, n_ops, y_index + (size_t)kp * 64 * PQ + f0);
        epi_rows(y0, (ptrdiff_t)PQ, y0, (ptrdiff_t)PQ, 64, (size_t)n, 0.0f, eo, n_ops);
    }
}

void st__dense_cvec_part(const st_dense_conv *d, const st_conv2d *c, int Wh, double plane_floats,
                         float *y, const float *xp, const int32_t *koff, const float *bias,
                         const st_epi_op *ops, int n_ops, size_t y_index, st_epi_rows_fn epi_rows,
                         float *part_scratch, int p, int np) {
    const long ng = n_groups(c);
    const int kpn = c->K / 64, crs = d->CRS;
    _Alignas(64) float out[NP * 64];
    int32_t pos[NP];
    const long lo = ng * kpn * p / np, hi = ng * kpn * (p + 1) / np; /* the part's tiles */
    if (chunked(c)) { /* panel-major, chunk by chunk of each panel */
        float *acc = part_scratch; /* [groups of one panel][NP][64] */
        for (int kp = (int)(lo / ng); lo < hi && kp <= (int)((hi - 1) / ng); kp++) {
            const long g0 = lo > kp * ng ? lo - kp * ng : 0, g1 = hi < (kp + 1) * ng ? hi - kp * ng : ng;
            const float *wk = d->wc + (size_t)kp * crs * 64;
            for (int k0 = 0; k0 < crs; k0 += CV_KC) {
                const int kc = crs - k0 < CV_KC ? crs - k0 : CV_KC;
                for (long g = g0; g < g1; g++) {
                    const int n = tile_pos(c, Wh, g, pos);
                    float *a = acc + (size_t)(g - g0) * NP * 64;
                    st_dense_cvec_avx512(n, kc, wk + (size_t)k0 * 64, xp, koff + k0, pos, k0 ? a : NULL, a);
                }
            }
            for (long g = g0; g < g1; g++)
                store_tile(c, acc + (size_t)(g - g0) * NP * 64, tile_pos(c, Wh, g, pos), kp, g, y, bias, ops,
                           n_ops, y_index, epi_rows);
        }
        return;
    }
    /* Otherwise the part's range of tiles is ordered so that it reads the smaller
     * of the two operands whole and only its share of the larger: panel-major where the
     * weights outweigh the planes, else position-major (2 threads on 64 -> 128 channels,
     * 56x56 stride 2: panel-major 0.52 ms, each part reading all 861 KiB of planes). */
    const int pos_major = plane_floats > (double)c->K * crs;
    for (long it = lo; it < hi; it++) {
        const int kp = (int)(pos_major ? it % kpn : it / ng);
        const long g = pos_major ? it / kpn : it % ng;
        const int n = tile_pos(c, Wh, g, pos);
        st_dense_cvec_avx512(n, crs, d->wc + (size_t)kp * crs * 64, xp, koff, pos, NULL, out);
        store_tile(c, out, n, kp, g, y, bias, ops, n_ops, y_index, epi_rows);
    }
}
