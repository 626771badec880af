/* The dense convolution's channel-vector tiles (st_dense.h, ST_DENSE_CV_NP): the part of
 * one image's output a thread computes, on the direct mode's phase planes. */
#include <stddef.h>
#include <stdint.h>

#include "st_dense.h"

void st__dense_cvec_part(const st_dense_conv *d, const st_conv2d *c, int Wh, double plane_floats,
                         float *y, const float *xp, const int32_t *koff, const float *bias,
                         const st_epi_op *ops, int n_ops, size_t y_index, st_epi_rows_fn epi_rows,
                         int p, int np) {
    enum { NP = ST_DENSE_CV_NP };
    const size_t PQ = (size_t)c->P * c->Q;
    const long ng = (long)((PQ + NP - 1) / NP);
    _Alignas(64) float out[NP * 64];
    /* Each part takes a contiguous range of tiles, ordered so that it reads the smaller
     * of the two operands whole and only its share of the larger: panel-major where the
     * weights outweigh the planes (ResNet-18's layer3-4), else position-major (2 threads
     * on 64 -> 128 channels, 56x56 stride 2: panel-major 0.52 ms, each part reading all
     * 861 KiB of planes). */
    const int kpn = c->K / 64;
    const int pos_major = plane_floats > (double)c->K * d->CRS;
    const long lo = ng * kpn * p / np, hi = ng * kpn * (p + 1) / np;
    for (long it = lo; it < hi; it++) {
        const int kp = (int)(pos_major ? it % kpn : it / ng);
        const size_t f0 = (size_t)(pos_major ? it / kpn : it % ng) * NP;
        const int n = PQ - f0 < NP ? (int)(PQ - f0) : NP;
        int32_t pos[NP]; /* a short last tile repeats its first position */
        for (int i = 0; i < NP; i++) {
            const size_t f = f0 + (size_t)(i < n ? i : 0);
            pos[i] = (int32_t)(f / (size_t)c->Q * (size_t)Wh + f % (size_t)c->Q);
        }
        st_dense_cvec_avx512(d->CRS, d->wc + (size_t)kp * d->CRS * 64, xp, koff, pos, out);
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
}

