/* Finite-difference gradient checking for the op tests (header-only; static functions).
 *
 * An op under test exposes its differentiable inputs and two callbacks: fwd computes y
 * from the current inputs (and stores whatever backward needs), bwd accumulates the
 * gradients of loss = sum(y * rw) into the buffers it is given (NULL = skip).
 *
 * gc_check verifies, for every input:
 *  - the analytic gradient against central differences (loss summed in double);
 *  - that each gradient alone (others NULL) equals its part of the full call, and that an
 *    all-NULL call is accepted;
 *  - that a second backward call accumulates (gradient doubles). */
#ifndef ST_GRADCHECK_H
#define ST_GRADCHECK_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ops_test_util.h"

#define GC_MAX_IN 4

typedef struct gc_op gc_op;
struct gc_op {
    const char *name;
    int n_in;
    float *in[GC_MAX_IN];
    size_t in_n[GC_MAX_IN];
    const char *in_name[GC_MAX_IN];
    size_t out_n;
    void (*fwd)(gc_op *op, float *y);
    void (*bwd)(gc_op *op, float *const *g, const float *dy);
    void *ctx;
    float eps;    /* finite-difference step; 1e-2 unless set */
    double rtol;  /* relative tolerance; 1e-2 unless set */
};

static double gc_loss(gc_op *op, float *y, const float *rw) {
    op->fwd(op, y);
    double l = 0.0;
    for (size_t i = 0; i < op->out_n; i++) l += (double)y[i] * rw[i];
    return l;
}

static void gc_check(gc_op *op, uint64_t seed) {
    st_rng r;
    st_rng_seed(&r, seed);
    const float eps = op->eps > 0 ? op->eps : 1e-2f;
    const double rtol = op->rtol > 0 ? op->rtol : 1e-2;
    float *rw = ot_rand(op->out_n, -1, 1, &r), *y = ot_alloc(op->out_n);
    float *g[GC_MAX_IN] = {0}, *one[GC_MAX_IN] = {0};
    for (int i = 0; i < op->n_in; i++) g[i] = ot_zeros(op->in_n[i]);

    op->fwd(op, y);
    op->bwd(op, g, rw);

    /* Central differences; every gradient must match to rtol relative, with an absolute
     * floor of 1e-3 of the tensor's largest gradient (rounding of a float forward). A
     * flipped sign or a dropped term is off by far more. */
    for (int i = 0; i < op->n_in; i++) {
        float *num = ot_alloc(op->in_n[i]);
        for (size_t j = 0; j < op->in_n[i]; j++) {
            float v = op->in[i][j];
            op->in[i][j] = v + eps;
            double lp = gc_loss(op, y, rw);
            op->in[i][j] = v - eps;
            double lm = gc_loss(op, y, rw);
            op->in[i][j] = v;
            num[j] = (float)((lp - lm) / (2.0 * eps));
        }
        double gmax = ot_maxabs(num, op->in_n[i]);
        ck_assert_msg(gmax > 0 || ot_maxabs(g[i], op->in_n[i]) == 0,
                      "%s: d/d%s numerically zero but analytic not", op->name, op->in_name[i]);
        for (size_t j = 0; j < op->in_n[i]; j++) {
            double a = g[i][j], n = num[j];
            double tol = rtol * fabs(n) + 1e-3 * gmax + 1e-7;
            ck_assert_msg(fabs(a - n) <= tol, "%s: d/d%s[%zu] analytic %.7g numeric %.7g", op->name,
                          op->in_name[i], j, a, n);
        }
        free(num);
    }

    /* NULL gradients: all NULL, then one at a time. */
    op->fwd(op, y);
    op->bwd(op, one, rw);
    for (int i = 0; i < op->n_in; i++) {
        float *only[GC_MAX_IN] = {0};
        only[i] = ot_zeros(op->in_n[i]);
        op->bwd(op, only, rw);
        OT_ASSERT_NEAR(only[i], g[i], op->in_n[i], 1e-6, 1e-6, op->name);
        free(only[i]);
    }

    /* Accumulation: backward onto the gradients it already produced doubles them. */
    for (int i = 0; i < op->n_in; i++) one[i] = ot_copy(g[i], op->in_n[i]);
    op->bwd(op, one, rw);
    for (int i = 0; i < op->n_in; i++) {
        for (size_t j = 0; j < op->in_n[i]; j++) g[i][j] *= 2.0f;
        OT_ASSERT_NEAR(one[i], g[i], op->in_n[i], 1e-6, 1e-5, op->name);
        free(one[i]);
        free(g[i]);
    }
    free(rw);
    free(y);
}

#endif
