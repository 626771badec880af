/* Small helpers shared by the op test suites (header-only so the build needs no change). */
#ifndef ST_OPS_TEST_UTIL_H
#define ST_OPS_TEST_UTIL_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_rng.h"
#include "st_test_util.h"

static inline float *ot_alloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static inline float *ot_zeros(size_t n) {
    float *p = ot_alloc(n);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static inline float *ot_rand(size_t n, float lo, float hi, st_rng *r) {
    float *p = ot_alloc(n);
    stt_fill_uniform(p, n, lo, hi, r);
    return p;
}

static inline float *ot_copy(const float *src, size_t n) {
    float *p = ot_alloc(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static inline double ot_maxabs(const float *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

/* First i with |a - ref| > atol_rel * max|ref| + rtol * |ref|, or (size_t)-1. Scaling the
 * absolute part by the tensor's magnitude keeps the check equally tight for any shape. */
static inline size_t ot_first_bad(const float *a, const float *ref, size_t n, double atol_rel,
                                  double rtol) {
    double atol = atol_rel * ot_maxabs(ref, n);
    if (atol == 0.0) atol = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) return i;
    }
    return (size_t)-1;
}

#define OT_ASSERT_NEAR(a, ref, n, atol_rel, rtol, what)                                        \
    do {                                                                                       \
        size_t ot_bad_ = ot_first_bad((a), (ref), (n), (atol_rel), (rtol));                    \
        ck_assert_msg(ot_bad_ == (size_t)-1, "%s: %s vs %s differ at %zu of %zu: %.9g vs %.9g", \
                      (what), #a, #ref, ot_bad_, (size_t)(n),                                  \
                      ot_bad_ == (size_t)-1 ? 0.0 : (double)(a)[ot_bad_],                      \
                      ot_bad_ == (size_t)-1 ? 0.0 : (double)(ref)[ot_bad_]);                   \
    } while (0)

#endif
