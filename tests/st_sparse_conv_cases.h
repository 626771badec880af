/* The sparse conv tests' shapes and weights, shared by test_sparse_conv.c (results
 * against the dense paths) and test_sparse_conv_api.c (gradients, refresh, shape checks,
 * band packing, strided outputs). */
#ifndef ST_SPARSE_CONV_CASES_H
#define ST_SPARSE_CONV_CASES_H

#include <check.h>
#include <string.h>

#include "st_ops.h"
#include "st_ops_test_util.h"
#include "st_sparse.h"

typedef struct {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g;
    const char *what;
} sc_case;

static const sc_case cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 on 1x1, one channel"},
    {3, 7, 7, 7, 17, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise N=3"},
    {1, 17, 3, 3, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 3x3 image"},
    {3, 3, 7, 7, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, "1x1 stride 2"},
    {3, 4, 7, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, "pointwise groups 2"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 s1 p1"},
    {1, 7, 17, 17, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2 p1, odd size"},
    {3, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, "3x3 s2 p1 groups 2"},
    {3, 3, 7, 7, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1, "3x3 no pad"},
    {1, 3, 9, 9, 5, 3, 3, 1, 1, 2, 2, 1, 1, 1, "3x3 pad 2"},
    {3, 7, 7, 7, 17, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 pad 2"},
    {1, 3, 17, 17, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO stem 6x6 s2 p2 N=1"},
    {3, 3, 16, 16, 7, 6, 6, 2, 2, 2, 2, 1, 1, 1, "YOLO stem 6x6 s2 p2 N=3"},
    {3, 17, 3, 3, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1, "output 1x1"},
    {3, 7, 3, 3, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1, "padding wider than the image, dilation 2"},
    {3, 4, 7, 7, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, "groups 2 dilation 2"},
    {1, 3, 7, 17, 7, 3, 5, 1, 2, 1, 2, 1, 1, 1, "non-square kernel, stride, pad"},
    {3, 7, 17, 7, 7, 5, 3, 2, 1, 0, 1, 2, 1, 1, "non-square dilation and stride"},
    {3, 6, 7, 7, 9, 3, 3, 3, 3, 1, 1, 1, 1, 3, "stride 3, groups 3"},
    {3, 5, 33, 33, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, "many bands crossing samples"},
    {2, 3, 24, 24, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 24x24"},
    {2, 3, 32, 32, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "pointwise 32x32"},
    {2, 3, 9, 9, 5, 5, 5, 1, 1, 2, 2, 1, 1, 1, "5x5 same, 9x9 (direct with masks)"},
    {3, 4, 10, 10, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, "3x3 dilation 2 pad 2, groups 2 (same size)"},
    {1, 3, 8, 8, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 same on 8x8, K=7"},
    {3, 8, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, "depthwise"},
    /* stride-2 rows of >= 40 columns go straight into y (spmm_rows), wider ones in tiles */
    {2, 3, 9, 81, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, 41-wide output rows"},
    {1, 2, 5, 300, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, "3x3 s2, 150-wide rows in two tiles"},
    /* one image in place: 2 or 4 bands, which two parts take whole (rows) */
    {1, 5, 20, 20, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, "3x3 same 20x20, one image: two bands"},
    {1, 4, 40, 40, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 40x40, one image: four bands"},
    {2, 4, 7, 160, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1, "1x1 s2, 80-wide rows"},
    /* big enough (at low sparsity) for the operators to use several threads */
    {2, 32, 24, 24, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "threaded 3x3 same"},
    {2, 32, 26, 26, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "threaded 3x3 stride 2"},
    {3, 96, 20, 20, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, "threaded pointwise"},
    /* inputs too big for L1 per kernel tile: ST_CSR_CBLK splits them (at 90%, 2+ blocks) */
    {1, 256, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "channel blocks: 3x3 same, 256 channels"},
    {1, 64, 40, 40, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "channel blocks: 3x3 stride 2, 64 channels"},
    {1, 512, 7, 7, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1, "channel blocks: pointwise, 512 channels"},
    {2, 12, 9, 224, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, "channel blocks: 7x7 s2 over 12 channels, rows"},
    /* for the quads (ST_CSR_QUADS: output channels in fours of one pattern) */
    {1, 5, 9, 11, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, "quads: 3x3 same on 9x11, K=8"},
    {2, 7, 13, 13, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1, "quads: pointwise N=2, K=12"},
    {1, 6, 17, 17, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 stride 2, K=16"},
    {1, 9, 7, 7, 20, 5, 5, 1, 1, 2, 2, 1, 1, 1, "quads: 5x5 same on 7x7, K=20"},
    {1, 32, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, "quads: 3x3 same 20x20, 32 channels"},
    {2, 5, 9, 85, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 s2, 43-wide rows (row kernel)"},
    {1, 3, 5, 250, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, "quads: 3x3 s2, 125-wide rows (two passes)"},
    {1, 3, 23, 23, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, "quads: ResNet stem 7x7 s2 p3 over RGB"},
    {1, 3, 18, 18, 8, 6, 6, 2, 2, 2, 2, 1, 1, 1, "quads: YOLO stem 6x6 s2 p2 over RGB"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
#define N_SP 5

static inline st_conv2d make_conv(const sc_case *cc) {
    st_conv2d c = {.N = cc->N, .C = cc->C, .H = cc->H, .W = cc->W, .K = cc->K, .R = cc->R,
                   .S = cc->S, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph,
                   .pad_w = cc->pw, .dil_h = cc->dh, .dil_w = cc->dw, .groups = cc->g};
    ck_assert_msg(st_conv2d_init(&c) == 0, "%s: bad shape", cc->what);
    return c;
}

static inline size_t n_weights(const st_conv2d *c) {
    return (size_t)c->K * (c->C / c->groups) * c->R * c->S;
}

/* Fraction `sparsity` of zeros; a few masked-on weights exactly 0; row 0 all zero.
 * quads: rows 4q + 1 .. 4q + 3 take row 4q's pattern (mask_type [4, 1]), row 0 still
 * all zero (so the first quad has padding). */
static inline void sparse_weights_q(const st_conv2d *c, float *w, unsigned char *mask, double sparsity,
                             st_rng *r, int quads) {
    const size_t nw = n_weights(c), per = nw / c->K;
    for (size_t i = 0; i < nw; i++) {
        const size_t k = i / per, row4 = (k & ~(size_t)3) * per + i % per;
        if (quads) { /* row 4q's draw for the whole quad; row 0 cleared below */
            mask[i] = k % 4 ? mask[row4] : (unsigned char)(st_rng_uniform(r) >= sparsity);
            w[i] = mask[i] ? (i % 11 == 5 ? 0.0f : 2.0f * st_rng_uniform(r) - 1.0f) : 0.0f;
            continue;
        }
        int on = st_rng_uniform(r) >= sparsity && !(c->K > 2 && i < per);
        mask[i] = (unsigned char)on;
        w[i] = on ? 2.0f * st_rng_uniform(r) - 1.0f : 0.0f;
        if (on && i % 11 == 5) w[i] = 0.0f;
    }
    if (quads && c->K > 2) memset(mask, 0, per), memset(w, 0, per * sizeof(float));
}

static inline void sparse_weights(const st_conv2d *c, float *w, unsigned char *mask, double sparsity, st_rng *r) {
    sparse_weights_q(c, w, mask, sparsity, r, 0);
}

static st_isa isas[3];
static inline int n_isas(void) {
    int n = 0;
    for (int i = ST_ISA_SCALAR; i <= (int)st_cpu_best_isa(); i++) isas[n++] = (st_isa)i;
    return n;
}

#endif
