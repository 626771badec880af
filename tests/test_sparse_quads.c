/* The planner's view of quads: st_csr_quads_density says beforehand what packing with
 * ST_CSR_QUADS then builds (whether, and how many entries with their padding), and the
 * inference cost model's lines for a 50%-sparse stem, in [4, 1] blocks or unstructured. (The quad kernels'
 * results are checked in test_sparse_conv.c and test_engine_blocked.c.) */
#include <check.h>
#include <stdlib.h>

#include "st_ops.h"
#include "st_rng.h"
#include "st_sparse.h"

typedef struct {
    int C, H, K, R, stride, groups;
} qshape;

static const qshape shapes[] = {
    {3, 17, 8, 7, 2, 1},   /* stem-like 7x7 stride 2 */
    {5, 9, 12, 3, 1, 1},   /* direct 3x3 */
    {7, 6, 16, 1, 1, 1},   /* pointwise */
    {6, 13, 20, 3, 2, 1},  /* banded stride 2 */
    {4, 7, 7, 3, 1, 1},    /* K % 4 != 0: never quads */
    {4, 7, 8, 3, 1, 2},    /* groups: never quads */
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

/* kinds of zero pattern: blocks (rows 4q..4q+3 share row 4q's pattern) at 0/50/90/99%;
 * unstructured 50/90%; blocks at 50% plus stray nonzeros in `strays` percent of the
 * pruned block positions (kept values are positive, strays -1) */
typedef struct {
    double sparsity;
    int blocks, strays;
} qpattern;

static const qpattern patterns[] = {
    {0.0, 1, 0}, {0.5, 1, 0}, {0.9, 1, 0}, {0.99, 1, 0}, {0.5, 0, 0}, {0.9, 0, 0},
    {0.5, 1, 2}, {0.5, 1, 5}, {0.5, 1, 10}, {0.5, 1, 20},
};
#define N_PATTERNS ((int)(sizeof patterns / sizeof patterns[0]))

static st_conv2d conv_of(const qshape *s) {
    st_conv2d c = {.N = 1, .C = s->C, .H = s->H, .W = s->H, .K = s->K, .R = s->R, .S = s->R,
                   .stride_h = s->stride, .stride_w = s->stride, .pad_h = s->R / 2,
                   .pad_w = s->R / 2, .dil_h = 1, .dil_w = 1, .groups = s->groups};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    return c;
}

static void fill(const st_conv2d *c, const qpattern *p, float *w, st_rng *r) {
    const size_t per = (size_t)(c->C / c->groups) * c->R * c->S, nw = per * c->K;
    for (size_t i = 0; i < nw; i++) {
        const size_t k = i / per, first = (k & ~(size_t)3) * per + i % per;
        const int keep = p->blocks && k % 4 ? w[first] > 0.0f : st_rng_uniform(r) >= p->sparsity;
        w[i] = keep ? 0.5f + st_rng_uniform(r) : 0.0f;
        if (!keep && p->strays && st_rng_uniform(r) * 100 < p->strays) w[i] = -1.0f;
    }
}

/* Density said before packing == what the packing holds; -1 == no quads built. */
START_TEST(test_quads_density_matches_pack) {
    const qshape *s = &shapes[_i / N_PATTERNS];
    const qpattern *p = &patterns[_i % N_PATTERNS];
    st_conv2d c = conv_of(s);
    const size_t nw = (size_t)(c.C / c.groups) * c.R * c.S * c.K;
    float *w = malloc(nw * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 7 + (uint64_t)_i);
    fill(&c, p, w, &r);
    const double qd = st_csr_quads_density(&c, w);
    st_csr m = {0};
    st_error err = {0};
    ck_assert_int_eq(st_csr_pack_layout(&m, &c, w, NULL, ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS, &err),
                     ST_OK);
    if (m.q_n) {
        ck_assert_msg(qd >= 0.0, "shape %d pattern %d: quads built, density said none", _i / N_PATTERNS,
                      _i % N_PATTERNS);
        ck_assert_double_eq_tol(qd, 4.0 * m.q_ptr[m.q_n] / (double)nw, 1e-12);
        ck_assert(qd * (double)nw >= m.nnz); /* padding only adds */
    } else {
        ck_assert_msg(qd < 0.0, "shape %d pattern %d: density %g said quads, none built", _i / N_PATTERNS,
                      _i % N_PATTERNS, qd);
    }
    /* with the quad kernel present, clean blocks always form quads (on shapes that can) */
    if (st_cpu_select_isa() >= ST_ISA_AVX512 && p->blocks && !p->strays && p->sparsity < 1.0 &&
        c.K % 4 == 0 && c.groups == 1 && m.nnz > 0)
        ck_assert_int_eq(m.q_n, c.K / 4);
    st_csr_free(&m);
    free(w);
}
END_TEST

/* Strays push the padding past the limit (1.25x): at 5% of the pruned positions
 * (expected padding 1.13x) quads form, at 30% (1.35x) they do not. */
START_TEST(test_quads_density_limit) {
    if (st_cpu_select_isa() < ST_ISA_AVX512) return; /* no quad kernel: always -1 (above) */
    st_conv2d c = conv_of(&shapes[1]);
    const size_t nw = (size_t)c.C * c.R * c.S * c.K;
    float *w = malloc(nw * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 3);
    fill(&c, &(qpattern){0.5, 1, 5}, w, &r); /* about 1.13x padding */
    ck_assert_double_ge(st_csr_quads_density(&c, w), 0.4);
    fill(&c, &(qpattern){0.5, 1, 30}, w, &r); /* about 1.35x */
    ck_assert_double_lt(st_csr_quads_density(&c, w), 0.0);
    free(w);
}
END_TEST

/* ResNet-18's stem (7x7 stride 2, 3 -> 64 on 224x224) at 50%: the planner's line says
 * sparse (> 1.3) for [4, 1] blocks; unstructured, dense where 512-bit FMAs run at full
 * width, and where they are split the image stem's own line is between its threshold
 * (1) and the general one (1.3): sparse at 50%, dense at 30%. A 3x3 layer keeps the
 * general threshold. */
START_TEST(test_quads_cost_model_stem) {
    setenv("ST_FMA512_SPLIT", _i ? "1" : "0", 1);
    ck_assert_int_eq(st_cpu_fma512_split(), _i);
    st_conv2d c = {.N = 1, .C = 3, .H = 224, .W = 224, .K = 64, .R = 7, .S = 7, .stride_h = 2,
                   .stride_w = 2, .pad_h = 3, .pad_w = 3, .dil_h = 1, .dil_w = 1, .groups = 1};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    st_conv2d c3 = c;
    c3.C = 64, c3.R = c3.S = 3, c3.pad_h = c3.pad_w = 1;
    ck_assert_int_eq(st_conv2d_init(&c3), 0);
    ck_assert_double_eq(st_sparse_infer_min_speedup(&c), _i ? 1.0 : 1.3);
    ck_assert_double_eq(st_sparse_infer_min_speedup(&c3), 1.3);
    const size_t nw = (size_t)3 * 49 * 64;
    float *w = malloc(nw * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 5);
    fill(&c, &(qpattern){0.5, 0, 0}, w, &r);
    const double u = st_sparse_expected_speedup_infer_w(&c, w, 0.5);
    ck_assert_double_le(u, 1.3);
    if (_i) ck_assert_double_gt(u, st_sparse_infer_min_speedup(&c)); /* else dense */
    fill(&c, &(qpattern){0.3, 0, 0}, w, &r);
    ck_assert_double_le(st_sparse_expected_speedup_infer_w(&c, w, 0.3), st_sparse_infer_min_speedup(&c));
    fill(&c, &(qpattern){0.5, 1, 0}, w, &r);
    const double q = st_sparse_expected_speedup_infer_w(&c, w, 0.5);
    if (st_cpu_select_isa() >= ST_ISA_AVX512) ck_assert_double_gt(q, 1.3);
    else ck_assert_double_le(q, 1.3); /* no quad kernel: the unstructured line */
    free(w);
    unsetenv("ST_FMA512_SPLIT");
}
END_TEST

/* Tap planes (ST_CSR_TAPS) are dropped for wide-kernel stride-2 convs that form quads
 * (the copy outweighs the aligned loads there), kept for 3x3 stride 2 with quads and for
 * the same stem unstructured. Rows of 80 outputs: wide enough for tap planes at all. */
START_TEST(test_quads_drop_tap_planes_on_stems) {
    if (st_cpu_select_isa() < ST_ISA_AVX512) return; /* no quads: tap planes as before */
    static const qshape stem = {3, 160, 8, 7, 2, 1}, s2 = {8, 160, 8, 3, 2, 1};
    const int layout = ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS;
    for (int k = 0; k < 3; k++) {
        st_conv2d c = conv_of(k == 1 ? &s2 : &stem);
        const size_t nw = (size_t)c.C * c.R * c.S * c.K;
        float *w = malloc(nw * sizeof(float));
        st_rng r;
        st_rng_seed(&r, 11 + (uint64_t)k);
        fill(&c, &(qpattern){0.5, k < 2, 0}, w, &r);
        st_csr m = {0};
        st_error err = {0};
        ck_assert_int_eq(st_csr_pack_layout(&m, &c, w, NULL, layout, &err), ST_OK);
        ck_assert_int_eq(m.q_n > 0, k < 2);
        ck_assert_msg(m.geom.taps == (k > 0), "case %d: taps %d", k, m.geom.taps);
        st_csr_free(&m);
        free(w);
    }
}
END_TEST

Suite *sparse_quads_suite(void) {
    Suite *s = suite_create("sparse_quads");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_quads_density_matches_pack, 0, N_SHAPES * N_PATTERNS);
    tcase_add_test(tc, test_quads_density_limit);
    tcase_add_loop_test(tc, test_quads_cost_model_stem, 0, 2); /* full-width, split FMAs */
    tcase_add_test(tc, test_quads_drop_tap_planes_on_stems);
    suite_add_tcase(s, tc);
    return s;
}
