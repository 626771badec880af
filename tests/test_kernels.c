/* Every SIMD kernel variant the CPU supports agrees with the scalar one on odd lengths
 * (max_rows and deint2 against their definitions, NaNs included). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"
#include "st_cpu.h"
#include "st_test_util.h"

static const size_t lens[] = {0, 1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 191, 1027};
#define NLENS (sizeof lens / sizeof lens[0])

static void check_isa(st_isa isa) {
    st_kernels ref, k;
    st_kernels_scalar(&ref);
    st_kernels_init(&k, isa);
    ck_assert_int_eq(k.isa, isa);
    st_rng r;
    st_rng_seed(&r, 3);
    for (size_t li = 0; li < NLENS; li++) {
        size_t n = lens[li], cap = n + 1; /* +1: a guard element that must not change */
        float *a = malloc(cap * 4), *b = malloc(cap * 4), *x = malloc(cap * 4);
        float *m1 = malloc(cap * 4), *m2 = malloc(cap * 4), *v1 = malloc(cap * 4),
              *v2 = malloc(cap * 4);
        unsigned char *mask = malloc(cap);
        stt_fill_uniform(a, cap, -1, 1, &r);
        stt_fill_uniform(x, cap, -1, 1, &r);
        for (size_t i = 0; i < cap; i++) mask[i] = st_rng_uniform(&r) < 0.5f;

        memcpy(b, a, cap * 4);
        ref.axpy(a, 0.37f, x, n);
        k.axpy(b, 0.37f, x, n);
        STT_ASSERT_CLOSE(b, a, cap, 1e-6, 1e-6);

        for (int nesterov = 0; nesterov < 2; nesterov++)
            for (int first = 0; first < 2; first++) {
                stt_fill_uniform(m1, cap, -1, 1, &r);
                memcpy(m2, m1, cap * 4);
                memcpy(b, a, cap * 4);
                ref.sgd(a, x, m1, n, 0.1f, 0.9f, 1e-3f, nesterov, first);
                k.sgd(b, x, m2, n, 0.1f, 0.9f, 1e-3f, nesterov, first);
                ck_assert_mem_eq(a, b, cap * 4);
                ck_assert_mem_eq(m1, m2, cap * 4);
            }

        stt_fill_uniform(m1, cap, -1, 1, &r);
        stt_fill_uniform(v1, cap, 0, 1, &r);
        memcpy(m2, m1, cap * 4);
        memcpy(v2, v1, cap * 4);
        memcpy(b, a, cap * 4);
        ref.adamw(a, x, m1, v1, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.19f, 0.002f);
        k.adamw(b, x, m2, v2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.19f, 0.002f);
        STT_ASSERT_CLOSE(b, a, cap, 1e-7, 1e-6);
        STT_ASSERT_CLOSE(m2, m1, cap, 1e-7, 1e-6);
        STT_ASSERT_CLOSE(v2, v1, cap, 1e-7, 1e-6);

        memcpy(b, a, cap * 4);
        k.apply_mask(b, mask, n);
        for (size_t i = 0; i < cap; i++)
            ck_assert_float_eq(b[i], (i < n && !mask[i]) ? 0.0f : a[i]);

        /* max_rows over 1, 2 and 5 rows (a, x and three more): a NaN in any row wins,
         * the guard element stays */
        for (int nr = 1; nr <= 5; nr += nr == 1 ? 1 : 3) {
            float *more = malloc(3 * cap * 4);
            stt_fill_uniform(more, 3 * cap, -1, 1, &r);
            const float *rows[5] = {a, x, more, more + cap, more + 2 * cap};
            for (size_t i = 0; i < n; i += 5) more[(i % 3) * cap + i] = NAN;
            if (n > 2) a[1] = NAN, x[2] = NAN;
            stt_fill_uniform(b, cap, -1, 1, &r);
            memcpy(m1, b, cap * 4);
            k.max_rows(b, rows, nr, n);
            for (size_t i = 0; i < cap; i++) {
                float want = rows[0][i];
                for (int q = 1; q < nr && want == want; q++)
                    want = rows[q][i] != rows[q][i] ? NAN : fmaxf(want, rows[q][i]);
                if (i >= n) want = m1[i];
                ck_assert_msg((want != want && b[i] != b[i]) || want == b[i], "max_rows[%zu] of %zu, %d rows",
                              i, n, nr);
            }
            if (n > 2) a[1] = 0.5f, x[2] = 0.25f;
            free(more);
        }
        /* deint2: n pairs from 2n inputs, guards of both outputs untouched */
        float *src = malloc(2 * cap * 4);
        stt_fill_uniform(src, 2 * cap, -1, 1, &r);
        stt_fill_uniform(m1, cap, -1, 1, &r);
        stt_fill_uniform(m2, cap, -1, 1, &r);
        memcpy(v1, m1, cap * 4), memcpy(v2, m2, cap * 4);
        k.deint2(m1, m2, src, n);
        for (size_t i = 0; i < cap; i++) {
            ck_assert_float_eq(m1[i], i < n ? src[2 * i] : v1[i]);
            ck_assert_float_eq(m2[i], i < n ? src[2 * i + 1] : v2[i]);
        }
        free(src);
        free(a), free(b), free(x), free(m1), free(m2), free(v1), free(v2), free(mask);
    }
}

START_TEST(test_kernels_all_isas_match_scalar) {
    st_isa best = st_cpu_best_isa();
    for (int isa = ST_ISA_SCALAR; isa <= (int)best; isa++) check_isa((st_isa)isa);
}
END_TEST

START_TEST(test_sgd_matches_hand_computation) {
    /* torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True), two steps */
    st_kernels k;
    st_kernels_init(&k, st_cpu_select_isa());
    float p[1] = {1.0f}, g[1] = {0.5f}, buf[1] = {0};
    k.sgd(p, g, buf, 1, 0.1f, 0.9f, 0.01f, 1, 1);
    /* d = 0.5 + 0.01 = 0.51; buf = 0.51; d = 0.51 + 0.9*0.51 = 0.969; p = 1 - 0.0969 */
    ck_assert_float_eq_tol(p[0], 0.9031f, 1e-6);
    k.sgd(p, g, buf, 1, 0.1f, 0.9f, 0.01f, 1, 0);
    float d = 0.5f + 0.01f * 0.9031f, b = 0.9f * 0.51f + d;
    ck_assert_float_eq_tol(p[0], 0.9031f - 0.1f * (d + 0.9f * b), 1e-6);
}
END_TEST

/* max3s2 (where an ISA has it) against its definition: widths around the vector edges,
 * window offsets -2 .. 1 (left padding, none, a skipped first column), 1-4 rows (2 and 3
 * are specialised), every output count up to past the row's end, NaNs in some rows; the
 * element after the Q outputs stays. */
START_TEST(test_max3s2_matches_definition) {
    static const int widths[] = {1, 2, 3, 7, 16, 17, 31, 33, 47, 48, 49, 64, 100, 112, 113};
    st_rng r;
    st_rng_seed(&r, 5);
    int cases = 0;
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_best_isa(); isa++) {
        st_kernels k;
        st_kernels_init(&k, (st_isa)isa);
        if (!k.max3s2) continue;
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int W = widths[wi];
            float *x = malloc(4 * (size_t)W * sizeof(float)), *y = malloc((size_t)(W / 2 + 4) * sizeof(float)),
                  *want = malloc((size_t)(W / 2 + 4) * sizeof(float));
            stt_fill_uniform(x, 4 * (size_t)W, -1, 1, &r);
            const float *rows[4] = {x, x + W, x + 2 * W, x + 3 * W};
            for (int off = -2; off <= 1; off++)
                for (int nr = 1; nr <= 4; nr++)
                    for (int Q = 0; Q <= W / 2 + 2; Q += W > 49 ? 7 : 1) {
                        if (nr == 2 && Q % 2) x[W + (Q * 3) % W] = NAN;
                        stt_fill_uniform(y, (size_t)Q + 1, -1, 1, &r);
                        const float guard = y[Q];
                        st_max3s2_scalar(want, rows, nr, W, off, (size_t)Q);
                        k.max3s2(y, rows, nr, W, off, (size_t)Q);
                        for (int j = 0; j < Q; j++)
                            ck_assert_msg((want[j] != want[j] && y[j] != y[j]) || want[j] == y[j],
                                          "%s W%d off%d nr%d Q%d: y[%d] %g vs %g", st_isa_name(k.isa), W, off,
                                          nr, Q, j, y[j], want[j]);
                        ck_assert_msg(y[Q] == guard, "W%d off%d nr%d Q%d: wrote past Q", W, off, nr, Q);
                        if (nr == 2 && Q % 2) x[W + (Q * 3) % W] = 0.5f;
                        cases++;
                    }
            free(x), free(y), free(want);
        }
    }
    if (st_cpu_best_isa() == ST_ISA_AVX512) ck_assert_int_gt(cases, 1000);
}
END_TEST

/* The definition itself, on one row by hand: windows [2j - 1, 2j + 2) with the left one
 * clipped, a NaN winning its two windows. */
START_TEST(test_max3s2_scalar_by_hand) {
    const float x[6] = {1, 5, 2, NAN, 3, 4};
    const float *rows[1] = {x};
    float y[3];
    st_max3s2_scalar(y, rows, 1, 6, -1, 3);
    ck_assert_float_eq(y[0], 5.0f); /* columns 0, 1 */
    ck_assert(y[1] != y[1]);        /* columns 1, 2, 3 */
    ck_assert(y[2] != y[2]);        /* columns 3, 4, 5 */
    st_max3s2_scalar(y, rows, 1, 6, 0, 2);
    ck_assert_float_eq(y[0], 5.0f); /* columns 0, 1, 2 */
}
END_TEST

START_TEST(test_isa_env_only_lowers) {
    setenv("ST_ISA", "scalar", 1);
    ck_assert_int_eq(st_cpu_select_isa(), ST_ISA_SCALAR);
    setenv("ST_ISA", "avx512", 1);
    ck_assert_int_le(st_cpu_select_isa(), st_cpu_best_isa());
    unsetenv("ST_ISA");
    ck_assert_int_eq(st_cpu_select_isa(), st_cpu_best_isa());
}
END_TEST

/* The probe measures real passes between two threads: a round trip through another
 * core's cache takes tens of ns at least, one thread reading its own line ~1 ns. */
START_TEST(test_thread_roundtrip_is_measured) {
    ck_assert(st_thread_roundtrip_ns(0) == 0.0);
    const double rt = st_thread_roundtrip_ns(500);
    ck_assert_msg(rt > 10.0 && rt < 1e6, "round trip %g ns", rt);
}
END_TEST

Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("dispatch");
    tcase_add_test(tc, test_kernels_all_isas_match_scalar);
    tcase_add_test(tc, test_sgd_matches_hand_computation);
    tcase_add_test(tc, test_isa_env_only_lowers);
    tcase_add_test(tc, test_max3s2_matches_definition);
    tcase_add_test(tc, test_max3s2_scalar_by_hand);
    tcase_add_test(tc, test_thread_roundtrip_is_measured);
    suite_add_tcase(s, tc);
    return s;
}
