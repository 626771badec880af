/* Linear and BatchNorm (fast vs reference, hand-computed statistics), activations,
 * elementwise/shape ops and dropout, each against an independent hand-written check.
 * Pooling: test_ops_pool.c; the softmax cross-entropy: test_loss.c; finite-difference
 * checks: test_gradcheck.c. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_kernels.h"
#include "st_cpu.h"
#include "st_ops.h"
#include "st_ops_test_util.h"

/* ------------------------------------------------------------------ Linear */

START_TEST(test_linear_fast_matches_ref) {
    const int shapes[][3] = {{1, 1, 1}, {3, 7, 17}, {5, 33, 10}, {17, 64, 3}, {1, 17, 7}};
    for (int t = 0; t < 5; t++) {
        const int N = shapes[t][0], I = shapes[t][1], O = shapes[t][2];
        st_rng r;
        st_rng_seed(&r, 100 + t);
        float *x = ot_rand((size_t)N * I, -1, 1, &r), *w = ot_rand((size_t)O * I, -1, 1, &r);
        float *b = ot_rand(O, -1, 1, &r), *dy = ot_rand((size_t)N * O, -1, 1, &r);
        float *y = ot_alloc((size_t)N * O), *yr = ot_alloc((size_t)N * O);
        st_linear_forward(y, x, w, b, N, I, O);
        st_linear_forward_ref(yr, x, w, b, N, I, O);
        OT_ASSERT_NEAR(y, yr, (size_t)N * O, 1e-5, 1e-4, "linear forward");
        st_linear_forward(y, x, w, NULL, N, I, O);
        st_linear_forward_ref(yr, x, w, NULL, N, I, O);
        OT_ASSERT_NEAR(y, yr, (size_t)N * O, 1e-5, 1e-4, "linear forward, no bias");
        /* Gradients start non-zero: backward must add to them. */
        float *dx = ot_rand((size_t)N * I, -1, 1, &r), *dw = ot_rand((size_t)O * I, -1, 1, &r);
        float *db = ot_rand(O, -1, 1, &r);
        float *dxr = ot_copy(dx, (size_t)N * I), *dwr = ot_copy(dw, (size_t)O * I);
        float *dbr = ot_copy(db, O);
        st_linear_backward(dx, dw, db, dy, x, w, N, I, O);
        st_linear_backward_ref(dxr, dwr, dbr, dy, x, w, N, I, O);
        OT_ASSERT_NEAR(dx, dxr, (size_t)N * I, 1e-5, 1e-4, "linear dx");
        OT_ASSERT_NEAR(dw, dwr, (size_t)O * I, 1e-5, 1e-4, "linear dw");
        OT_ASSERT_NEAR(db, dbr, (size_t)O, 1e-5, 1e-4, "linear db");
        /* NULL gradients: nothing is touched and nothing crashes. */
        st_linear_backward(NULL, NULL, NULL, dy, x, w, N, I, O);
        st_linear_backward_ref(NULL, NULL, NULL, dy, x, w, N, I, O);
        free(x), free(w), free(b), free(dy), free(y), free(yr);
        free(dx), free(dw), free(db), free(dxr), free(dwr), free(dbr);
    }
}
END_TEST

/* The rows path by output ranges, as a team splits it (uneven, one empty): every output
 * written once (NaN-filled first), equal to the reference; batch 1, 3 and 4 (the rows
 * path's limit) and 5 (sgemm) agree too. */
START_TEST(test_linear_rows_by_ranges) {
    const int shapes[][3] = {{1, 100, 31}, {3, 17, 7}, {4, 512, 19}, {5, 9, 13}};
    for (int t = 0; t < 4; t++) {
        const int N = shapes[t][0], I = shapes[t][1], O = shapes[t][2];
        st_rng r;
        st_rng_seed(&r, 200 + t);
        float *x = ot_rand((size_t)N * I, -1, 1, &r), *w = ot_rand((size_t)O * I, -1, 1, &r);
        float *b = ot_rand(O, -1, 1, &r);
        float *y = ot_alloc((size_t)N * O), *yr = ot_alloc((size_t)N * O);
        for (size_t i = 0; i < (size_t)N * O; i++) y[i] = NAN;
        const int cut[5] = {0, O / 3, O / 3, O - 1, O};
        for (int k = 3; k >= 0; k--) st_linear_forward_rows(y, x, w, b, N, I, O, cut[k], cut[k + 1]);
        st_linear_forward_ref(yr, x, w, b, N, I, O);
        OT_ASSERT_NEAR(y, yr, (size_t)N * O, 1e-5, 1e-4, "linear rows by ranges");
        st_linear_forward(y, x, w, b, N, I, O);
        OT_ASSERT_NEAR(y, yr, (size_t)N * O, 1e-5, 1e-4, "linear forward");
        free(x), free(w), free(b), free(y), free(yr);
    }
}
END_TEST

START_TEST(test_linear_hand_computed) {
    /* x = [1 2; 3 4], w = [1 0; 0 1; 1 -1], b = [0.5 0 -1] */
    const float x[4] = {1, 2, 3, 4}, w[6] = {1, 0, 0, 1, 1, -1}, b[3] = {0.5f, 0, -1};
    const float expect[6] = {1.5f, 2, -2, 3.5f, 4, -2};
    float y[6];
    st_linear_forward(y, x, w, b, 2, 2, 3);
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(y[i], expect[i], 1e-6);
}
END_TEST

/* ------------------------------------------------------------------ BatchNorm */

typedef struct {
    int N, C, HW;
} bn_shape;

START_TEST(test_batchnorm_fast_matches_ref) {
    const bn_shape shapes[] = {{3, 7, 17 * 17}, {1, 3, 7 * 7}, {4, 17, 1}, {2, 1, 3}, {1, 1, 1}};
    for (int t = 0; t < 5; t++) {
        for (int training = 0; training <= 1; training++) {
            st_batchnorm bn = {shapes[t].N, shapes[t].C, shapes[t].HW, 1e-5f, 0.1f};
            const int C = bn.C;
            const size_t n = (size_t)bn.N * C * bn.HW;
            st_rng r;
            st_rng_seed(&r, 200 + t);
            /* An offset mean checks the centring is done before scaling. */
            float *x = ot_rand(n, 2, 4, &r), *dy = ot_rand(n, -1, 1, &r);
            float *gamma = ot_rand(C, 0.5f, 1.5f, &r), *beta = ot_rand(C, -1, 1, &r);
            float *rm = ot_rand(C, -1, 1, &r), *rv = ot_rand(C, 0.5f, 2, &r);
            float *rmr = ot_copy(rm, C), *rvr = ot_copy(rv, C);
            float *y = ot_alloc(n), *yr = ot_alloc(n);
            float *sm = ot_alloc(C), *si = ot_alloc(C), *smr = ot_alloc(C), *sir = ot_alloc(C);
            st_batchnorm_forward(&bn, y, x, gamma, beta, rm, rv, sm, si, training);
            st_batchnorm_forward_ref(&bn, yr, x, gamma, beta, rmr, rvr, smr, sir, training);
            const char *what = training ? "bn train" : "bn eval";
            OT_ASSERT_NEAR(y, yr, n, 1e-5, 1e-4, what);
            OT_ASSERT_NEAR(rm, rmr, (size_t)C, 1e-6, 1e-6, what);
            OT_ASSERT_NEAR(rv, rvr, (size_t)C, 1e-6, 1e-6, what);
            OT_ASSERT_NEAR(sm, smr, (size_t)C, 1e-6, 1e-6, what);
            OT_ASSERT_NEAR(si, sir, (size_t)C, 1e-6, 1e-5, what);
            float *dx = ot_rand(n, -1, 1, &r), *dg = ot_rand(C, -1, 1, &r);
            float *dbt = ot_rand(C, -1, 1, &r);
            float *dxr = ot_copy(dx, n), *dgr = ot_copy(dg, C), *dbtr = ot_copy(dbt, C);
            st_batchnorm_backward(&bn, dx, dg, dbt, dy, x, gamma, sm, si, training);
            st_batchnorm_backward_ref(&bn, dxr, dgr, dbtr, dy, x, gamma, smr, sir, training);
            OT_ASSERT_NEAR(dx, dxr, n, 1e-5, 1e-4, what);
            OT_ASSERT_NEAR(dg, dgr, (size_t)C, 1e-5, 1e-4, what);
            OT_ASSERT_NEAR(dbt, dbtr, (size_t)C, 1e-5, 1e-4, what);
            st_batchnorm_backward(&bn, NULL, NULL, NULL, dy, x, gamma, sm, si, training);
            free(x), free(dy), free(gamma), free(beta), free(rm), free(rv), free(rmr), free(rvr);
            free(y), free(yr), free(sm), free(si), free(smr), free(sir);
            free(dx), free(dg), free(dbt), free(dxr), free(dgr), free(dbtr);
        }
    }
}
END_TEST

/* The fused BatchNorm+activation against the separate ops it replaces: forward output
 * (but SiLU's, whose exp may be a polynomial) and statistics bit-identical, gradients
 * equal up to the order of the reductions, on
 * odd shapes, both modes, with and without the aux / dz buffers, accumulating. */
START_TEST(test_bn_act_matches_separate_ops) {
    const int Ns[] = {1, 3}, Cs[] = {1, 7, 17}, HWs[] = {1, 5, 33};
    int count = 0;
    for (int act = 0; act < 3; act++)
    for (int ni = 0; ni < 2; ni++)
    for (int ci = 0; ci < 3; ci++)
    for (int hi = 0; hi < 3; hi++)
    for (int mode = 0; mode < 4; mode++) {
        const int training = mode & 1, bufs = mode >> 1;
        st_batchnorm bn = {Ns[ni], Cs[ci], HWs[hi], 1e-3f, 0.03f};
        const int C = bn.C;
        const size_t n = (size_t)bn.N * C * bn.HW;
        if (training && n == (size_t)C) continue; /* one value per channel: xhat = 0 */
        st_rng r;
        st_rng_seed(&r, 4000 + count++);
        float *x = ot_rand(n, -1, 3, &r), *dy = ot_rand(n, -1, 1, &r);
        float *gamma = ot_rand(C, 0.5f, 1.5f, &r), *beta = ot_rand(C, -1, 1, &r);
        float *rm = ot_rand(C, -1, 1, &r), *rv = ot_rand(C, 0.5f, 2, &r);
        float *rm2 = ot_copy(rm, C), *rv2 = ot_copy(rv, C);
        float *z = ot_alloc(n), *y = ot_alloc(n), *y2 = ot_alloc(n), *aux = ot_alloc(n);
        float *sm = ot_alloc(C), *si = ot_alloc(C), *sm2 = ot_alloc(C), *si2 = ot_alloc(C);
        float *zs = ot_alloc(C), *dzb = ot_alloc(n);
        st_batchnorm_forward(&bn, z, x, gamma, beta, rm, rv, sm, si, training);
        if (act == ST_ACT_RELU) st_relu_forward(y, z, n);
        else if (act == ST_ACT_LEAKYRELU) st_leakyrelu_forward(y, z, n, 0.1f);
        else st_silu_forward(y, z, n);
        st_bn_act_forward(&bn, (st_act_kind)act, 0.1f, y2, bufs ? aux : NULL, x, gamma, beta,
                          rm2, rv2, sm2, si2, zs, training);
        char what[96];
        snprintf(what, sizeof what, "bn_act act %d N %d C %d HW %d train %d bufs %d", act, bn.N,
                 C, bn.HW, training, bufs);
        if (act == ST_ACT_SILU) OT_ASSERT_NEAR(y2, y, n, 1e-6, 1e-6, what); /* polynomial exp */
        else ck_assert_msg(!memcmp(y, y2, n * sizeof(float)), "%s: forward not bit-identical", what);
        ck_assert_msg(!memcmp(rm, rm2, C * sizeof(float)) && !memcmp(rv, rv2, C * sizeof(float)) &&
                          !memcmp(sm, sm2, C * sizeof(float)) && !memcmp(si, si2, C * sizeof(float)),
                      "%s: statistics differ", what);
        /* separate backward: dz = act'(z) dy from zero, then BN */
        float *dz = ot_zeros(n);
        if (act == ST_ACT_RELU) st_relu_backward(dz, dy, z, n);
        else if (act == ST_ACT_LEAKYRELU) st_leakyrelu_backward(dz, dy, z, n, 0.1f);
        else st_silu_backward(dz, dy, z, n);
        float *dx = ot_rand(n, -1, 1, &r), *dg = ot_rand(C, -1, 1, &r), *db = ot_rand(C, -1, 1, &r);
        float *dx2 = ot_copy(dx, n), *dg2 = ot_copy(dg, C), *db2 = ot_copy(db, C);
        st_batchnorm_backward(&bn, dx, dg, db, dz, x, gamma, sm, si, training);
        st_bn_act_backward(&bn, (st_act_kind)act, 0.1f, dx2, dg2, db2, bufs ? dzb : NULL, dy,
                           bufs ? aux : NULL, x, gamma, beta, sm2, si2, zs, training);
        OT_ASSERT_NEAR(dx2, dx, n, 1e-5, 1e-4, what);
        OT_ASSERT_NEAR(dg2, dg, (size_t)C, 1e-5, 1e-4, what);
        OT_ASSERT_NEAR(db2, db, (size_t)C, 1e-5, 1e-4, what);
        if (bufs) OT_ASSERT_NEAR(dzb, dz, n, 1e-6, 1e-5, what);
        if (bufs && act != ST_ACT_SILU) ck_assert_msg(!memcmp(dz, dzb, n * sizeof(float)), "%s: dz differs", what);
        /* NULL gradients: nothing written, nothing read out of bounds */
        st_bn_act_backward(&bn, (st_act_kind)act, 0.1f, NULL, NULL, NULL, bufs ? dzb : NULL, dy,
                           bufs ? aux : NULL, x, gamma, beta, sm2, si2, zs, training);
        free(x), free(dy), free(gamma), free(beta), free(rm), free(rv), free(rm2), free(rv2);
        free(z), free(y), free(y2), free(aux), free(sm), free(si), free(sm2), free(si2);
        free(zs), free(dzb), free(dz), free(dx), free(dg), free(db), free(dx2), free(dg2), free(db2);
    }
}
END_TEST

/* The SiLU row kernels (polynomial exp on AVX2 and AVX-512) against libm's expf:
 * relative error <= 1e-6 over a dense sweep and at the extremes (saturation, overflow of
 * exp(-z), zero, tiny values), and every row length 0-40 for the vector tails. */
START_TEST(test_bn_silu_row_kernels) {
    const size_t n = 200003; /* odd: exercises the scalar tail */
    float *x = ot_alloc(n), *y = ot_alloc(n), *s = ot_alloc(n), *y2 = ot_alloc(n), *s2 = ot_alloc(n);
    const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 87.0f, -87.0f, 88.5f, -88.5f, 100.0f,
                             -100.0f, 1e4f, -1e4f, 17.0f, -17.0f, 0.5f, -0.5f};
    for (size_t i = 0; i < n; i++) x[i] = -120.0f + 240.0f * (float)i / (float)(n - 1);
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) x[i * 7] = special[i];
    st_bn_silu_row_fn fns[] = {st_bn_silu_row_scalar, st_bn_silu_row(),
                               st_cpu_best_isa() >= ST_ISA_AVX2 ? st_bn_silu_row_avx2 : NULL,
                               st_cpu_best_isa() >= ST_ISA_AVX512 ? st_bn_silu_row_avx512 : NULL};
    for (int f = 1; f < 4; f++) {
        if (!fns[f]) continue;
        for (size_t len = 0; len <= 40; len++) { /* tails: nothing past len is written */
            for (size_t i = 0; i < 48; i++) y2[i] = s2[i] = 7.0f;
            fns[0](y, s, x + 1000, len, 0.1f, 2.0f, 0.3f);
            fns[f](y2, s2, x + 1000, len, 0.1f, 2.0f, 0.3f);
            OT_ASSERT_NEAR(y2, y, len, 0, 1e-6, "silu row tail");
            for (size_t i = len; i < 48; i++) ck_assert(y2[i] == 7.0f && s2[i] == 7.0f);
        }
    }
    for (int f = 1; f < 4; f++) {
        if (!fns[f]) continue;
        /* identity BN (mean 0, scale 1, shift 0), then a real one */
        for (int b = 0; b < 2; b++) {
            float mf = b ? 0.25f : 0.0f, sc = b ? 1.5f : 1.0f, sh = b ? -0.5f : 0.0f;
            fns[0](y, s, x, n, mf, sc, sh);
            fns[f](y2, s2, x, n, mf, sc, sh);
            for (size_t i = 0; i < n; i++) {
                ck_assert_msg(fabsf(y2[i] - y[i]) <= 1e-6f * fabsf(y[i]) + 1e-37f,
                              "kernel %d: silu(%g) %.9g vs %.9g", f, x[i], y2[i], y[i]);
                ck_assert_msg(fabsf(s2[i] - s[i]) <= 1e-6f * fabsf(s[i]) + 1e-37f,
                              "kernel %d: sigmoid(%g) %.9g vs %.9g", f, x[i], s2[i], s[i]);
            }
            fns[f](y2, NULL, x, n, mf, sc, sh); /* s may be NULL */
            OT_ASSERT_NEAR(y2, y, n, 0, 1e-6, "silu row without s");
        }
    }
    free(x), free(y), free(s), free(y2), free(s2);
}
END_TEST

/* N=2, C=2, HW=2. Channel 0 holds 1,2,3,4 (mean 2.5, biased var 1.25, unbiased 5/3);
 * channel 1 holds 10,20,30,40 (mean 25, biased var 125, unbiased 500/3). */
START_TEST(test_batchnorm_running_stats_by_hand) {
    st_batchnorm bn = {2, 2, 2, 1e-5f, 0.1f};
    const float x[8] = {1, 2, 10, 20, 3, 4, 30, 40};
    const float gamma[2] = {2, 0.5f}, beta[2] = {1, -1};
    for (int fast = 0; fast <= 1; fast++) {
        float rm[2] = {0.5f, -1}, rv[2] = {2, 3};
        float y[8], sm[2], si[2];
        if (fast) st_batchnorm_forward(&bn, y, x, gamma, beta, rm, rv, sm, si, 1);
        else st_batchnorm_forward_ref(&bn, y, x, gamma, beta, rm, rv, sm, si, 1);
        ck_assert_float_eq_tol(rm[0], 0.9 * 0.5 + 0.1 * 2.5, 1e-6);
        ck_assert_float_eq_tol(rm[1], 0.9 * -1 + 0.1 * 25, 1e-5);
        ck_assert_float_eq_tol(rv[0], 0.9 * 2 + 0.1 * (5.0 / 3.0), 1e-6);
        ck_assert_float_eq_tol(rv[1], 0.9 * 3 + 0.1 * (500.0 / 3.0), 1e-4);
        ck_assert_float_eq_tol(sm[0], 2.5, 1e-6);
        ck_assert_float_eq_tol(sm[1], 25, 1e-5);
        ck_assert_float_eq_tol(si[0], 1 / sqrt(1.25 + 1e-5), 1e-6);
        ck_assert_float_eq_tol(si[1], 1 / sqrt(125 + 1e-5), 1e-7);
        /* y for x = 1 (channel 0) and x = 40 (channel 1). */
        ck_assert_float_eq_tol(y[0], (1 - 2.5) / sqrt(1.25 + 1e-5) * 2 + 1, 1e-5);
        ck_assert_float_eq_tol(y[7], (40 - 25) / sqrt(125 + 1e-5) * 0.5 - 1, 1e-5);

        /* Eval: the running statistics are used and left alone. */
        float rm2[2] = {1, 20}, rv2[2] = {4, 100};
        if (fast) st_batchnorm_forward(&bn, y, x, gamma, beta, rm2, rv2, sm, si, 0);
        else st_batchnorm_forward_ref(&bn, y, x, gamma, beta, rm2, rv2, sm, si, 0);
        ck_assert_float_eq(rm2[0], 1);
        ck_assert_float_eq(rv2[1], 100);
        ck_assert_float_eq_tol(y[0], (1 - 1) / sqrt(4 + 1e-5) * 2 + 1, 1e-6);
        ck_assert_float_eq_tol(y[1], (2 - 1) / sqrt(4 + 1e-5) * 2 + 1, 1e-6);
        ck_assert_float_eq_tol(y[7], (40 - 20) / sqrt(100 + 1e-5) * 0.5 - 1, 1e-6);
    }
}
END_TEST

/* One thread per channel, fixed order: the same bits for 1 and 2 threads. */
START_TEST(test_batchnorm_thread_count_invariant) {
    st_batchnorm bn = {3, 9, 13 * 13, 1e-5f, 0.1f};
    const size_t n = (size_t)bn.N * bn.C * bn.HW;
    st_rng r;
    st_rng_seed(&r, 250);
    float *x = ot_rand(n, -2, 2, &r), *dy = ot_rand(n, -1, 1, &r);
    float *gamma = ot_rand(bn.C, 0.5f, 1.5f, &r), *beta = ot_rand(bn.C, -1, 1, &r);
    float *y[2], *dx[2], dg[2][9] = {{0}}, dbt[2][9] = {{0}}, rm[2][9] = {{0}}, rv[2][9];
    float sm[9], si[9];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        for (int c = 0; c < 9; c++) rv[t][c] = 1;
        y[t] = ot_alloc(n), dx[t] = ot_zeros(n);
        st_batchnorm_forward(&bn, y[t], x, gamma, beta, rm[t], rv[t], sm, si, 1);
        st_batchnorm_backward(&bn, dx[t], dg[t], dbt[t], dy, x, gamma, sm, si, 1);
    }
    ck_assert(memcmp(y[0], y[1], n * sizeof(float)) == 0);
    ck_assert(memcmp(dx[0], dx[1], n * sizeof(float)) == 0);
    ck_assert(memcmp(dg[0], dg[1], sizeof dg[0]) == 0);
    ck_assert(memcmp(dbt[0], dbt[1], sizeof dbt[0]) == 0);
    ck_assert(memcmp(rm[0], rm[1], sizeof rm[0]) == 0);
    ck_assert(memcmp(rv[0], rv[1], sizeof rv[0]) == 0);
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]);
    free(x), free(dy), free(gamma), free(beta);
}
END_TEST

/* ------------------------------------------------------------------ Activations */

START_TEST(test_activations_against_formulas) {
    enum { n = 257 };
    float x[n], y[n], dx[n], dy[n];
    st_rng r;
    st_rng_seed(&r, 300);
    stt_fill_uniform(x, n, -8, 8, &r);
    stt_fill_uniform(dy, n, -1, 1, &r);
    x[0] = 0.0f; /* the kink */
    const float slope = 0.1f;

    st_relu_forward(y, x, n);
    for (int i = 0; i < n; i++) ck_assert_float_eq(y[i], x[i] > 0 ? x[i] : 0);
    for (int i = 0; i < n; i++) dx[i] = 1.0f;
    st_relu_backward(dx, dy, x, n);
    for (int i = 0; i < n; i++) ck_assert_float_eq_tol(dx[i], 1 + (x[i] > 0 ? dy[i] : 0), 1e-6);

    st_leakyrelu_forward(y, x, n, slope);
    for (int i = 0; i < n; i++) ck_assert_float_eq_tol(y[i], fmax(x[i], slope * x[i]), 1e-6);
    for (int i = 0; i < n; i++) dx[i] = 1.0f;
    st_leakyrelu_backward(dx, dy, x, n, slope);
    for (int i = 0; i < n; i++)
        ck_assert_float_eq_tol(dx[i], 1 + (x[i] > 0 ? dy[i] : slope * dy[i]), 1e-6);

    /* sigmoid(x) = (1 + tanh(x/2)) / 2 is an independent formula. */
    st_sigmoid_forward(y, x, n);
    for (int i = 0; i < n; i++) ck_assert_float_eq_tol(y[i], 0.5 * (1 + tanh(x[i] / 2.0)), 1e-6);
    for (int i = 0; i < n; i++) dx[i] = 1.0f;
    st_sigmoid_backward(dx, dy, y, n);
    for (int i = 0; i < n; i++) {
        double s = 0.5 * (1 + tanh(x[i] / 2.0));
        ck_assert_float_eq_tol(dx[i], 1 + dy[i] * s * (1 - s), 1e-6);
    }

    st_silu_forward(y, x, n);
    for (int i = 0; i < n; i++)
        ck_assert_float_eq_tol(y[i], x[i] * 0.5 * (1 + tanh(x[i] / 2.0)), 1e-5);
    for (int i = 0; i < n; i++) dx[i] = 1.0f;
    st_silu_backward(dx, dy, x, n);
    for (int i = 0; i < n; i++) {
        double s = 0.5 * (1 + tanh(x[i] / 2.0));
        ck_assert_float_eq_tol(dx[i], 1 + dy[i] * (s + x[i] * s * (1 - s)), 1e-5);
    }
}
END_TEST

START_TEST(test_activations_extreme_inputs) {
    const float x[6] = {-1000, -100, -88.8f, 88.8f, 100, 1000};
    const float dy[6] = {1, 1, 1, 1, 1, 1};
    float y[6], dx[6] = {0};
    st_sigmoid_forward(y, x, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert(isfinite(y[i]));
        ck_assert_float_eq_tol(y[i], x[i] > 0 ? 1.0f : 0.0f, 1e-30);
    }
    st_sigmoid_backward(dx, dy, y, 6);
    for (int i = 0; i < 6; i++) ck_assert(isfinite(dx[i]) && fabsf(dx[i]) < 1e-30f);
    st_silu_forward(y, x, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert(isfinite(y[i]));
        ck_assert_float_eq_tol(y[i], x[i] > 0 ? x[i] : 0.0f, 1e-30);
    }
    for (int i = 0; i < 6; i++) dx[i] = 0;
    st_silu_backward(dx, dy, x, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert(isfinite(dx[i]));
        ck_assert_float_eq_tol(dx[i], x[i] > 0 ? 1.0f : 0.0f, 1e-30);
    }
}
END_TEST

START_TEST(test_activations_large_tensor_threads) {
    /* Above the threading threshold: same answers as element by element. */
    const size_t n = 100003;
    st_rng r;
    st_rng_seed(&r, 301);
    float *x = ot_rand(n, -5, 5, &r), *y = ot_alloc(n), *dx = ot_zeros(n);
    float *dy = ot_rand(n, -1, 1, &r);
    st_silu_forward(y, x, n);
    st_silu_backward(dx, dy, x, n);
    for (size_t i = 0; i < n; i += 997) {
        double s = 1 / (1 + exp(-(double)x[i]));
        ck_assert_float_eq_tol(y[i], x[i] * s, 1e-5);
        ck_assert_float_eq_tol(dx[i], dy[i] * (s + x[i] * s * (1 - s)), 1e-5);
    }
    free(x), free(y), free(dx), free(dy);
}
END_TEST

/* ------------------------------------------------------------------ Elementwise */

START_TEST(test_add_mul) {
    const float a[4] = {1, -2, 3, 0.5f}, b[4] = {4, 5, -6, 2}, dy[4] = {1, 2, 3, 4};
    float y[4], da[4] = {1, 1, 1, 1}, db[4] = {0};
    st_add_forward(y, a, b, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(y[i], a[i] + b[i]);
    st_add_backward(da, db, dy, 4);
    st_add_backward(NULL, db, dy, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(da[i], 1 + dy[i]);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(db[i], 2 * dy[i]);
    st_mul_forward(y, a, b, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(y[i], a[i] * b[i]);
    for (int i = 0; i < 4; i++) da[i] = 1, db[i] = 0;
    st_mul_backward(da, db, dy, a, b, 4);
    st_mul_backward(da, NULL, dy, a, b, 4);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(da[i], 1 + 2 * dy[i] * b[i]);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(db[i], dy[i] * a[i]);
}
END_TEST

START_TEST(test_concat) {
    /* N=2, HW=2; inputs with 1, 2 and 1 channels. */
    const float a[4] = {1, 2, 3, 4}, b[8] = {10, 11, 12, 13, 14, 15, 16, 17}, c[4] = {-1, -2, -3, -4};
    const float *in[3] = {a, b, c};
    const int cs[3] = {1, 2, 1};
    float y[16];
    st_concat_forward(y, in, cs, 3, 2, 2);
    const float e[16] = {1, 2, 10, 11, 12, 13, -1, -2, 3, 4, 14, 15, 16, 17, -3, -4};
    for (int i = 0; i < 16; i++) ck_assert_float_eq(y[i], e[i]);
    float dy[16], da[4] = {0}, dc[4] = {100, 100, 100, 100};
    for (int i = 0; i < 16; i++) dy[i] = (float)i;
    float *din[3] = {da, NULL, dc};
    st_concat_backward(din, dy, cs, 3, 2, 2);
    const float eda[4] = {0, 1, 8, 9}, edc[4] = {106, 107, 114, 115};
    for (int i = 0; i < 4; i++) ck_assert_float_eq(da[i], eda[i]);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(dc[i], edc[i]);
}
END_TEST

START_TEST(test_upsample_nearest) {
    /* N=1, C=2, 2x3, factor 2. */
    const float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    float y[48];
    st_upsample_nearest_forward(y, x, 1, 2, 2, 3, 2);
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 4; h++)
            for (int w = 0; w < 6; w++)
                ck_assert_float_eq(y[(c * 4 + h) * 6 + w], x[(c * 2 + h / 2) * 3 + w / 2]);
    float dy[48], dx[12];
    for (int i = 0; i < 48; i++) dy[i] = (float)i;
    for (int i = 0; i < 12; i++) dx[i] = 1;
    st_upsample_nearest_backward(dx, dy, 1, 2, 2, 3, 2);
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 3; w++) {
                float s = 1;
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++) s += dy[(c * 4 + 2 * h + a) * 6 + 2 * w + b];
                ck_assert_float_eq(dx[(c * 2 + h) * 3 + w], s);
            }
    /* Factor 1 is the identity. */
    st_upsample_nearest_forward(y, x, 1, 2, 2, 3, 1);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(y[i], x[i]);
}
END_TEST

/* ------------------------------------------------------------------ Dropout */

START_TEST(test_dropout_statistics_and_determinism) {
    const size_t n = 200000;
    const float p = 0.3f;
    st_rng r;
    st_rng_seed(&r, 500);
    float *x = ot_rand(n, 0.5f, 1.5f, &r), *y = ot_alloc(n), *mask = ot_alloc(n);
    float *y2 = ot_alloc(n), *m2 = ot_alloc(n);
    st_dropout_forward(y, mask, x, n, p, 1234);
    size_t kept = 0, wrong = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask[i] != 0.0f) {
            kept++;
            wrong += fabsf(mask[i] - 1 / 0.7f) > 1e-6f || fabsf(y[i] - x[i] / 0.7f) > 1e-5f;
        } else {
            wrong += y[i] != 0.0f;
        }
    }
    ck_assert_uint_eq(wrong, 0);
    /* Binomial sd = sqrt(n p (1-p)) / n ~ 0.001; 5 sd. */
    ck_assert_double_eq_tol((double)kept / n, 0.7, 0.005);
    /* The mean is preserved in expectation. */
    double sx = 0, sy = 0;
    for (size_t i = 0; i < n; i++) sx += x[i], sy += y[i];
    ck_assert_double_eq_tol(sy / sx, 1.0, 0.01);
    /* Same seed: identical; other seed: a different mask. */
    st_dropout_forward(y2, m2, x, n, p, 1234);
    ck_assert(memcmp(y, y2, n * sizeof(float)) == 0);
    ck_assert(memcmp(mask, m2, n * sizeof(float)) == 0);
    st_dropout_forward(y2, m2, x, n, p, 1235);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += (mask[i] != 0) != (m2[i] != 0);
    /* Independent masks disagree with probability 2 p (1-p) = 0.42. */
    ck_assert_double_eq_tol((double)differ / n, 0.42, 0.01);
    /* Backward applies the stored mask and accumulates. */
    float *dx = ot_alloc(n), *dy = ot_rand(n, -1, 1, &r);
    for (size_t i = 0; i < n; i++) dx[i] = 1;
    st_dropout_backward(dx, dy, mask, n);
    for (size_t i = 0; i < n; i += 101) ck_assert_float_eq_tol(dx[i], 1 + dy[i] * mask[i], 1e-6);
    free(x), free(y), free(mask), free(y2), free(m2), free(dx), free(dy);
}
END_TEST

START_TEST(test_dropout_edge_probabilities) {
    const float x[5] = {1, -2, 3, 4, 5};
    float y[5], mask[5];
    st_dropout_forward(y, mask, x, 5, 0.0f, 9);
    for (int i = 0; i < 5; i++) {
        ck_assert_float_eq(y[i], x[i]);
        ck_assert_float_eq(mask[i], 1);
    }
    st_dropout_forward(y, mask, x, 5, 1.0f, 9);
    for (int i = 0; i < 5; i++) {
        ck_assert_float_eq(y[i], 0);
        ck_assert_float_eq(mask[i], 0);
    }
    /* The mask depends on (seed, index) only: a prefix is the prefix of a longer call. */
    float yl[64], ml[64], xl[64];
    for (int i = 0; i < 64; i++) xl[i] = 1;
    st_dropout_forward(yl, ml, xl, 64, 0.5f, 77);
    st_dropout_forward(y, mask, xl, 5, 0.5f, 77);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(mask[i], ml[i]);
}
END_TEST

Suite *ops_basic_suite(void) {
    Suite *s = suite_create("ops_basic");
    TCase *tl = tcase_create("linear_bn");
    tcase_set_timeout(tl, 60);
    tcase_add_test(tl, test_linear_fast_matches_ref);
    tcase_add_test(tl, test_linear_hand_computed);
    tcase_add_test(tl, test_linear_rows_by_ranges);
    tcase_add_test(tl, test_batchnorm_fast_matches_ref);
    tcase_add_test(tl, test_batchnorm_running_stats_by_hand);
    tcase_add_test(tl, test_batchnorm_thread_count_invariant);
    tcase_add_test(tl, test_bn_act_matches_separate_ops);
    tcase_add_test(tl, test_bn_silu_row_kernels);
    suite_add_tcase(s, tl);
    TCase *ta = tcase_create("activations");
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, test_activations_against_formulas);
    tcase_add_test(ta, test_activations_extreme_inputs);
    tcase_add_test(ta, test_activations_large_tensor_threads);
    suite_add_tcase(s, ta);
    TCase *te = tcase_create("elementwise");
    tcase_set_timeout(te, 60);
    tcase_add_test(te, test_add_mul);
    tcase_add_test(te, test_concat);
    tcase_add_test(te, test_upsample_nearest);
    tcase_add_test(te, test_dropout_statistics_and_determinism);
    tcase_add_test(te, test_dropout_edge_probabilities);
    suite_add_tcase(s, te);
    return s;
}
