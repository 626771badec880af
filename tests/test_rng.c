#include <check.h>
#include <stdlib.h>

#include "st_rng.h"

START_TEST(test_rng_deterministic) {
    st_rng a, b;
    st_rng_seed(&a, 42);
    st_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(st_rng_next(&a), st_rng_next(&b));
    st_rng_seed(&b, 43);
    ck_assert_uint_ne(st_rng_next(&a), st_rng_next(&b));
}
END_TEST

START_TEST(test_rng_uniform_range_and_mean) {
    st_rng r;
    st_rng_seed(&r, 1);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        float u = st_rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    ck_assert_double_eq_tol(sum / 100000, 0.5, 0.01);
    double s2 = 0, s1 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = st_rng_normal(&r);
        s1 += z;
        s2 += z * z;
    }
    ck_assert_double_eq_tol(s1 / 100000, 0.0, 0.02);
    ck_assert_double_eq_tol(s2 / 100000, 1.0, 0.03);
}
END_TEST

START_TEST(test_rng_shuffle_is_permutation) {
    st_rng r;
    st_rng_seed(&r, 7);
    int32_t idx[257];
    int seen[257] = {0};
    for (int i = 0; i < 257; i++) idx[i] = i;
    st_rng_shuffle(&r, idx, 257);
    int moved = 0;
    for (int i = 0; i < 257; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 257; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 200);
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rng_deterministic);
    tcase_add_test(tc, test_rng_uniform_range_and_mean);
    tcase_add_test(tc, test_rng_shuffle_is_permutation);
    suite_add_tcase(s, tc);
    return s;
}
