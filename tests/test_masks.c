/* Magnitude masks: exact counts, deterministic ties, no regrowth, blocks along input
 * channels ([1, M]) and output channels ([M, 1]), N:M, global thresholds, and the radix
 * selection against a sorting reference. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_recipe_run.h"
#include "st_test_util.h"

static size_t zeros(const unsigned char *m, size_t n) {
    size_t z = 0;
    for (size_t i = 0; i < n; i++) z += m[i] == 0;
    return z;
}

/* Python's round(x) for x = s * n with s a short decimal, done by hand per case below. */
START_TEST(test_num_pruned_rounds_like_python) {
    ck_assert_uint_eq(st_mask_num_pruned(0.5f, 1), 0);   /* 0.5 -> 0 */
    ck_assert_uint_eq(st_mask_num_pruned(0.5f, 3), 2);   /* 1.5 -> 2 */
    ck_assert_uint_eq(st_mask_num_pruned(0.5f, 5), 2);   /* 2.5 -> 2 */
    ck_assert_uint_eq(st_mask_num_pruned(0.5f, 7), 4);   /* 3.5 -> 4 */
    ck_assert_uint_eq(st_mask_num_pruned(0.35f, 10), 4); /* 3.5 -> 4 (0.35f * 10 < 3.5) */
    ck_assert_uint_eq(st_mask_num_pruned(0.45f, 10), 4); /* 4.5 -> 4 */
    ck_assert_uint_eq(st_mask_num_pruned(0.9f, 17), 15); /* 15.3 */
    ck_assert_uint_eq(st_mask_num_pruned(0.99f, 7), 7);  /* 6.93 */
    ck_assert_uint_eq(st_mask_num_pruned(0.0f, 7), 0);
    ck_assert_uint_eq(st_mask_num_pruned(1.0f, 7), 7);
    ck_assert_uint_eq(st_mask_num_pruned(-0.5f, 7), 0);
    ck_assert_uint_eq(st_mask_num_pruned(NAN, 7), 0);
}
END_TEST

START_TEST(test_unstructured_exact_sparsity) {
    const size_t sizes[] = {1, 3, 7, 17, 1000};
    const float targets[] = {0.0f, 0.5f, 0.9f, 0.99f};
    st_rng r;
    st_rng_seed(&r, 7);
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++) {
            size_t n = sizes[a];
            float s = targets[b];
            float *w = malloc(n * sizeof *w);
            unsigned char *m = malloc(n);
            stt_fill_uniform(w, n, -1, 1, &r);
            st_mask_unstructured(w, n, s, m);
            size_t z = zeros(m, n);
            ck_assert_uint_eq(z, st_mask_num_pruned(s, n));
            ck_assert_msg(fabs((double)z / n - s) <= 1.0 / n, "n %zu s %g: %zu zeros", n, s, z);
            /* the pruned are the smallest |w| */
            float max_pruned = -1, min_kept = INFINITY;
            for (size_t i = 0; i < n; i++) {
                if (!m[i] && fabsf(w[i]) > max_pruned) max_pruned = fabsf(w[i]);
                if (m[i] && fabsf(w[i]) < min_kept) min_kept = fabsf(w[i]);
            }
            ck_assert(max_pruned <= min_kept);
            free(w);
            free(m);
        }
}
END_TEST

START_TEST(test_unstructured_ties_are_deterministic) {
    float w[10];
    unsigned char m[10], m2[10];
    for (int i = 0; i < 10; i++) w[i] = 0.5f;
    st_mask_unstructured(w, 10, 0.5f, m);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(m[i], i >= 5); /* lower index pruned first */
    st_mask_unstructured(w, 10, 0.5f, m2);
    ck_assert(memcmp(m, m2, 10) == 0);
    /* -0 and +0 tie too */
    float z[4] = {0.0f, -0.0f, 1.0f, -0.0f};
    unsigned char mz[4];
    st_mask_unstructured(z, 4, 0.5f, mz);
    ck_assert_int_eq(mz[0], 0);
    ck_assert_int_eq(mz[1], 0);
    ck_assert_int_eq(mz[2], 1);
    ck_assert_int_eq(mz[3], 1);
}
END_TEST

START_TEST(test_no_regrowth_across_updates) {
    /* several exact zeros that were never pruned must not take the place of pruned ones */
    float w[16];
    unsigned char m[16];
    for (int i = 0; i < 16; i++) w[i] = 1.0f + i;
    memset(m, 1, sizeof m);
    m[10] = m[12] = 0;
    w[10] = w[12] = 0.0f;
    w[5] = w[7] = 0.0f; /* zero, but kept by the previous mask */
    st_mask_tensor t = {w, m, 1, 16, 1};
    st_mask_update(&t, 1, 1, 2.0f / 16);
    for (int i = 0; i < 16; i++) ck_assert_int_eq(m[i], !(i == 10 || i == 12));
    st_mask_update(&t, 1, 1, 3.0f / 16); /* one more: the lowest-index unpruned zero */
    for (int i = 0; i < 16; i++) ck_assert_int_eq(m[i], !(i == 10 || i == 12 || i == 5));

    /* a simulated run: noise on the kept weights between updates, masks re-applied */
    enum { N = 1000 };
    float *x = malloc(N * sizeof *x);
    unsigned char *mk = malloc(N), *was = malloc(N);
    st_rng r;
    st_rng_seed(&r, 3);
    stt_fill_uniform(x, N, -1, 1, &r);
    memset(mk, 1, N);
    st_mask_tensor tt = {x, mk, 1, N, 1};
    for (int u = 0; u <= 8; u++) {
        float s = 0.1f * (float)u;
        memcpy(was, mk, N);
        st_mask_update(&tt, 1, 1, s);
        ck_assert_uint_eq(zeros(mk, N), st_mask_num_pruned(s, N));
        for (int i = 0; i < N; i++) {
            if (!was[i]) ck_assert_msg(!mk[i], "update %d regrew weight %d", u, i);
            if (!mk[i]) x[i] = 0.0f;
            else x[i] += 0.3f * (st_rng_uniform(&r) - 0.5f); /* training moves kept weights */
        }
    }
    free(x);
    free(mk);
    free(was);
}
END_TEST

START_TEST(test_block4_along_input_channels) {
    /* conv [K=4, C=8, R=3, S=3]: blocks are c = 4j .. 4j+3 for fixed k, r, s */
    enum { K = 4, C = 8, R = 3, S = 3, N = K * C * R * S };
    int64_t shape[4] = {K, C, R, S};
    float w[N];
    unsigned char m[N];
    st_rng r;
    st_rng_seed(&r, 11);
    stt_fill_uniform(w, N, -1, 1, &r);
    st_mask_block(w, shape, 4, 4, 0.5f, m);
    int n_blocks = K * (C / 4) * R * S, pruned = 0;
    double max_pruned = -1, min_kept = 1e9;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < C / 4; j++)
            for (int rs = 0; rs < R * S; rs++) {
                int first = (k * C + 4 * j) * R * S + rs;
                double mean = 0;
                for (int c = 0; c < 4; c++) {
                    int idx = first + c * R * S;
                    ck_assert_int_eq(m[idx], m[first]); /* pruned as a whole */
                    mean += fabsf(w[idx]) / 4;
                }
                if (!m[first]) pruned++, max_pruned = fmax(max_pruned, mean);
                else min_kept = fmin(min_kept, mean);
            }
    ck_assert_int_eq(pruned, (int)st_mask_num_pruned(0.5f, n_blocks));
    ck_assert(max_pruned <= min_kept + 1e-7);

    /* linear [6, 10]: blocks along I with a partial last block of 2 */
    int64_t ls[2] = {6, 10};
    float lw[60];
    unsigned char lm[60];
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 10; i++) lw[o * 10 + i] = (float)(o + 1) * (i < 8 ? 1.0f : 0.01f);
    st_mask_block(lw, ls, 2, 4, 6.0f / 18, lm); /* 18 blocks, prune 6: the 6 small tails */
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 10; i++) ck_assert_int_eq(lm[o * 10 + i], i < 8);
}
END_TEST

/* Brute-force [m, 1] reference on w viewed as [K, rest]: block (j, p) is rows
 * k = j*m .. min(K, j*m + m) - 1 at column p. Scores every block by mean |w|, sorts by
 * (score, position j * rest + p) and prunes the first round(s * blocks); returns the
 * expected mask in want. Also checks, for the library's mask got, that every block is all
 * kept or all pruned. */
typedef struct { double score; int pos; } ref_block;
static int cmp_block(const void *x, const void *y) {
    const ref_block *a = x, *b = y;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static void check_out_blocks(const float *w, int K, int rest, int m, float s,
                             const unsigned char *got) {
    int nbk = (K + m - 1) / m, nb = nbk * rest, n = K * rest;
    ref_block *rb = malloc((size_t)nb * sizeof *rb);
    unsigned char *want = malloc((size_t)n);
    for (int j = 0; j < nbk; j++)
        for (int p = 0; p < rest; p++) {
            int k1 = j * m + m < K ? j * m + m : K;
            double sum = 0;
            for (int k = j * m; k < k1; k++) {
                sum += fabsf(w[k * rest + p]);
                ck_assert_msg(got[k * rest + p] == got[j * m * rest + p],
                              "block (%d, %d) is split at row %d", j, p, k);
            }
            /* the library sums in double and compares the mean as a float */
            rb[j * rest + p] = (ref_block){(float)(sum / (k1 - j * m)), j * rest + p};
        }
    qsort(rb, (size_t)nb, sizeof *rb, cmp_block);
    size_t k = st_mask_num_pruned(s, (size_t)nb);
    memset(want, 1, (size_t)n);
    for (size_t i = 0; i < k; i++) {
        int j = rb[i].pos / rest, p = rb[i].pos % rest;
        for (int r = j * m; r < j * m + m && r < K; r++) want[r * rest + p] = 0;
    }
    size_t pruned_blocks = 0;
    for (int b = 0; b < nb; b++) pruned_blocks += !got[(b / rest) * m * rest + b % rest];
    ck_assert_uint_eq(pruned_blocks, k);
    ck_assert_msg(memcmp(want, got, (size_t)n) == 0, "K %d m %d s %g: not the lowest blocks", K, m, s);
    free(rb);
    free(want);
}

START_TEST(test_block_out_channels) {
    /* conv [K, C=3, R=3, S=3] with distinct magnitudes, [4, 1] at 50% and 90%; K = 8, and
     * K = 6 (a last partial block of 2 rows) */
    const int ks[] = {8, 6};
    const float sp[] = {0.5f, 0.9f};
    st_rng r;
    st_rng_seed(&r, 31);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            enum { C = 3, R = 3, S = 3 };
            int K = ks[a], n = K * C * R * S;
            int64_t shape[4] = {K, C, R, S};
            float *w = malloc((size_t)n * sizeof *w);
            unsigned char *m = malloc((size_t)n);
            /* distinct magnitudes: a shuffled ramp with random signs */
            for (int i = 0; i < n; i++) w[i] = 0.01f * (float)(i + 1);
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(st_rng_uniform(&r) * (float)(i + 1)) % (i + 1);
                float t = w[i];
                w[i] = w[j], w[j] = t;
            }
            for (int i = 0; i < n; i++) if (st_rng_uniform(&r) < 0.5f) w[i] = -w[i];
            st_mask_block_out(w, shape, 4, 4, sp[b], m);
            check_out_blocks(w, K, C * R * S, 4, sp[b], m);
            /* it is not the [1, 4] mask: those blocks run along C */
            unsigned char *mi = malloc((size_t)n);
            st_mask_block(w, shape, 4, 4, sp[b], mi);
            ck_assert(memcmp(m, mi, (size_t)n) != 0);
            free(mi);
            free(w);
            free(m);
        }

    /* linear [O=6, I=5], [4, 1]: rows 0-3 are large in columns 0-2 and tiny in 3-4; rows
     * 4-5 (the partial block) are mid-sized. 10 blocks, prune 4: the two tiny blocks of
     * rows 0-3 and the two smallest partial blocks (columns 0 and 1 of rows 4-5). */
    int64_t ls[2] = {6, 5};
    float lw[30];
    unsigned char lm[30];
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 5; i++)
            lw[o * 5 + i] = o < 4 ? (i < 3 ? 1.0f + 0.1f * (float)(o + i) : 0.001f * (float)(o + i + 1))
                                  : 0.1f * (float)(i + 1) * (o == 4 ? 1.0f : -1.0f);
    st_mask_block_out(lw, ls, 2, 4, 0.4f, lm);
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 5; i++) {
            int want = o < 4 ? i < 3 : i >= 2;
            ck_assert_msg(lm[o * 5 + i] == want, "linear [%d][%d]: %d", o, i, lm[o * 5 + i]);
        }
    check_out_blocks(lw, 6, 5, 4, 0.4f, lm);

    /* global: one threshold over the blocks of two tensors viewed as [M, 1] */
    enum { N = 8 * 27 };
    float wa[N], wb[N];
    unsigned char ma[N], mb[N];
    int64_t sa[4] = {8, 3, 3, 3};
    for (int i = 0; i < N; i++) wa[i] = 0.001f * (float)(i + 1), wb[i] = 1.0f + 0.001f * (float)i;
    memset(ma, 1, N);
    memset(mb, 1, N);
    st_mask_tensor ts[2] = {{.w = wa, .mask = ma}, {.w = wb, .mask = mb}};
    st_mask_view(sa, 4, N, 4, &ts[0]);
    st_mask_view(sa, 4, N, 4, &ts[1]);
    ck_assert(ts[0].outer == 1 && ts[0].c == 8 && ts[0].inner == 27);
    st_mask_update(ts, 2, 4, 0.25f); /* 108 blocks, 27 pruned: all in the small tensor */
    ck_assert_uint_eq(zeros(mb, N), 0);
    ck_assert_uint_eq(zeros(ma, N), 27 * 4);
    check_out_blocks(wa, 8, 27, 4, 0.5f, ma); /* half of a's own 54 blocks */
}
END_TEST

START_TEST(test_nm_2_of_4) {
    enum { K = 8, C = 8, R = 3, S = 3, N = K * C * R * S };
    int64_t shape[4] = {K, C, R, S};
    float w[N];
    unsigned char m[N];
    st_rng r;
    st_rng_seed(&r, 12);
    stt_fill_uniform(w, N, -1, 1, &r);
    st_mask_nm(w, shape, 4, 2, 4, m);
    ck_assert_uint_eq(zeros(m, N), N / 2);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < C / 4; j++)
            for (int rs = 0; rs < R * S; rs++) {
                int first = (k * C + 4 * j) * R * S + rs, kept = 0;
                float min_kept = INFINITY, max_cut = -1;
                for (int c = 0; c < 4; c++) {
                    int idx = first + c * R * S;
                    kept += m[idx];
                    if (m[idx]) min_kept = fminf(min_kept, fabsf(w[idx]));
                    else max_cut = fmaxf(max_cut, fabsf(w[idx]));
                }
                ck_assert_int_eq(kept, 2);
                ck_assert(max_cut <= min_kept);
            }
    /* linear [2, 6]: a group of 4 keeps 2, the partial group of 2 keeps both */
    int64_t ls[2] = {2, 6};
    float lw[12] = {1, 4, 2, 3, 5, 6, 9, 8, 7, 6, 1, 2};
    unsigned char lm[12];
    st_mask_nm(lw, ls, 2, 2, 4, lm);
    const unsigned char want[12] = {0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1};
    ck_assert(memcmp(lm, want, 12) == 0);
}
END_TEST

START_TEST(test_global_threshold_across_tensors) {
    enum { N = 1000 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    unsigned char *ma = malloc(N), *mb = malloc(N);
    st_rng r;
    st_rng_seed(&r, 13);
    stt_fill_uniform(a, N, -0.1f, 0.1f, &r); /* small magnitudes */
    stt_fill_uniform(b, N, -1.0f, 1.0f, &r);
    memset(ma, 1, N);
    memset(mb, 1, N);
    st_mask_tensor ts[2] = {{a, ma, 1, N, 1}, {b, mb, 1, N, 1}};
    st_mask_update(ts, 2, 1, 0.5f);
    size_t za = zeros(ma, N), zb = zeros(mb, N);
    ck_assert_uint_eq(za + zb, 1000);
    ck_assert_msg(za > 850 && zb < 150, "small tensor %zu, large %zu", za, zb);
    float thr_a = -1, thr_b = -1, kept = INFINITY;
    for (int i = 0; i < N; i++) {
        if (!ma[i]) thr_a = fmaxf(thr_a, fabsf(a[i]));
        else kept = fminf(kept, fabsf(a[i]));
        if (!mb[i]) thr_b = fmaxf(thr_b, fabsf(b[i]));
        else kept = fminf(kept, fabsf(b[i]));
    }
    ck_assert(fmaxf(thr_a, thr_b) <= kept); /* one threshold for both */

    /* all equal: ties by (tensor order, index) */
    for (int i = 0; i < N; i++) a[i] = b[i] = 1.0f;
    memset(ma, 1, N);
    memset(mb, 1, N);
    st_mask_update(ts, 2, 1, 0.75f);
    ck_assert_uint_eq(zeros(ma, N), N);
    for (int i = 0; i < N; i++) ck_assert_int_eq(mb[i], i >= N / 2);
    free(a);
    free(b);
    free(ma);
    free(mb);
}
END_TEST

typedef struct { uint32_t key; uint32_t idx; } ref_item;
static int cmp_ref(const void *x, const void *y) {
    const ref_item *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

START_TEST(test_radix_select_matches_sorting) {
    /* many duplicates (few levels), some previously pruned: compare with a full sort of
     * (pruned-first, |w|, index) */
    enum { N = 5000 };
    float *w = malloc(N * sizeof *w);
    unsigned char *m = malloc(N), *prev = malloc(N);
    ref_item *it = malloc(N * sizeof *it);
    st_rng r;
    st_rng_seed(&r, 21);
    for (int trial = 0; trial < 6; trial++) {
        for (int i = 0; i < N; i++) {
            w[i] = (float)((int)(st_rng_uniform(&r) * 17) - 8) * (trial % 2 ? 0.125f : 1e-3f);
            prev[i] = st_rng_uniform(&r) < 0.2f ? 0 : 1;
            if (!prev[i]) w[i] = 0.0f;
        }
        float s = 0.1f + 0.15f * (float)trial;
        memcpy(m, prev, N);
        st_mask_tensor t = {w, m, 1, N, 1};
        st_mask_update(&t, 1, 1, s);
        for (int i = 0; i < N; i++) {
            float a = fabsf(w[i]);
            uint32_t bits;
            memcpy(&bits, &a, 4);
            it[i].key = prev[i] ? bits + 1 : 0;
            it[i].idx = (uint32_t)i;
        }
        qsort(it, N, sizeof *it, cmp_ref);
        size_t k = st_mask_num_pruned(s, N);
        memset(prev, 1, N);
        for (size_t i = 0; i < k; i++) prev[it[i].idx] = 0;
        ck_assert_msg(memcmp(prev, m, N) == 0, "trial %d differs from the sorted reference", trial);
    }
    free(w);
    free(m);
    free(prev);
    free(it);
}
END_TEST

Suite *masks_suite(void) {
    Suite *s = suite_create("masks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_num_pruned_rounds_like_python);
    tcase_add_test(tc, test_unstructured_exact_sparsity);
    tcase_add_test(tc, test_unstructured_ties_are_deterministic);
    tcase_add_test(tc, test_no_regrowth_across_updates);
    tcase_add_test(tc, test_block4_along_input_channels);
    tcase_add_test(tc, test_block_out_channels);
    tcase_add_test(tc, test_nm_2_of_4);
    tcase_add_test(tc, test_global_threshold_across_tensors);
    tcase_add_test(tc, test_radix_select_matches_sorting);
    suite_add_tcase(s, tc);
    return s;
}
