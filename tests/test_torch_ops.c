/* Every op in st_ops.h against PyTorch references: the .stfx files in tests/fixtures/torch,
 * written by tools/gen_torch_fixtures.py. Forward outputs and all gradients are compared with
 * rtol 1e-4 plus an atol of 1e-5 x max|reference| (float32 sums that cancel can be small
 * next to their terms). Ops with a *_ref twin run both versions. Gradient buffers are
 * zeroed before backward because backward accumulates. The cnn-small network fixture is
 * checked by the graph tests, not here. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_fixture.h"
#include "st_ops.h"
#include "st_test_util.h"

#define RTOL 1e-4
#define ATOL_SCALE 1e-5

static const char *const impl_name[2] = {"fast", "ref"};

static void load(st_fixture *fx, const char *file) {
    char rel[256], path[1024];
    st_error err = {0};
    snprintf(rel, sizeof rel, "tests/fixtures/torch/%s", file);
    st_status s = st_fixture_load(fx, stt_source_path(path, sizeof path, rel), &err);
    ck_assert_msg(s == ST_OK, "%s", err.msg);
}

/* The tensor "<prefix>.<what>", which must exist. */
static const st_fx_tensor *need(const st_fixture *fx, const char *prefix, const char *what) {
    const st_fx_tensor *t = st_fixture_findf(fx, "%s.%s", prefix, what);
    ck_assert_msg(t != NULL, "fixture tensor %s.%s missing", prefix, what);
    return t;
}

/* Zeroed float buffer; Check runs each test in a child process, so a failing test
 * leaking it is harmless. */
static float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert(p != NULL);
    return p;
}

static void check_close(const char *op, int impl, const char *prefix, const char *what,
                        const float *got, const st_fx_tensor *ref) {
    double amax = 0;
    for (size_t i = 0; i < ref->numel; i++) amax = fmax(amax, fabs((double)ref->data[i]));
    double atol = ATOL_SCALE * amax;
    size_t bad = stt_first_mismatch(got, ref->data, ref->numel, atol, RTOL);
    ck_assert_msg(bad == (size_t)-1,
                  "%s (%s) %s.%s: element %zu of %zu: got %.9g, torch %.9g (atol %.3g)", op,
                  impl_name[impl], prefix, what, bad, ref->numel,
                  bad == (size_t)-1 ? 0.0 : (double)got[bad],
                  bad == (size_t)-1 ? 0.0 : (double)ref->data[bad], atol);
}

/* Calls fn(fx, prefix) for every case in the file: a case is named by its "<prefix>.cfg". */
typedef void (*case_fn)(const st_fixture *fx, const char *prefix);
static int for_each_case(const st_fixture *fx, case_fn fn) {
    int n = 0;
    for (int i = 0; i < fx->count; i++) {
        const char *name = fx->t[i].name;
        size_t len = strlen(name);
        if (len <= 4 || strcmp(name + len - 4, ".cfg") != 0) continue;
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 4), name);
        fn(fx, prefix);
        n++;
    }
    return n;
}

static void run_suite_file(const char *file, case_fn fn, int min_cases) {
    st_fixture fx;
    load(&fx, file);
    int n = for_each_case(&fx, fn);
    ck_assert_msg(n >= min_cases, "%s: %d cases, expected at least %d", file, n, min_cases);
    st_fixture_free(&fx);
}

/* ---------------------------------------------------------------- conv2d */
static void conv_case(const st_fixture *fx, const char *pf) {
    const st_fx_tensor *x = need(fx, pf, "x"), *w = need(fx, pf, "w"), *cfg = need(fx, pf, "cfg");
    const st_fx_tensor *y = need(fx, pf, "y"), *g = need(fx, pf, "g");
    const float *c8 = cfg->data;
    int has_bias = c8[7] != 0;
    st_conv2d c = {.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3],
                   .K = w->dims[0], .R = w->dims[2], .S = w->dims[3],
                   .stride_h = (int)c8[0], .stride_w = (int)c8[1], .pad_h = (int)c8[2],
                   .pad_w = (int)c8[3], .dil_h = (int)c8[4], .dil_w = (int)c8[5],
                   .groups = (int)c8[6]};
    ck_assert_int_eq(st_conv2d_init(&c), 0);
    ck_assert_msg(c.P == y->dims[2] && c.Q == y->dims[3], "conv %s: P,Q %d,%d vs torch %d,%d",
                  pf, c.P, c.Q, y->dims[2], y->dims[3]);
    const float *b = has_bias ? need(fx, pf, "b")->data : NULL;
    for (int impl = 0; impl < 2; impl++) {
        float *out = zeros(y->numel), *dx = zeros(x->numel), *dw = zeros(w->numel);
        float *db = has_bias ? zeros(c.K) : NULL;
        float *scratch = impl == 0 ? zeros(st_conv2d_scratch_floats(&c)) : NULL;
        if (impl == 0) st_conv2d_forward(&c, out, x->data, w->data, b, scratch);
        else st_conv2d_forward_ref(&c, out, x->data, w->data, b);
        check_close("conv2d", impl, pf, "y", out, y);
        if (impl == 0) st_conv2d_backward(&c, dx, dw, db, g->data, x->data, w->data, scratch);
        else st_conv2d_backward_ref(&c, dx, dw, db, g->data, x->data, w->data);
        check_close("conv2d", impl, pf, "dx", dx, need(fx, pf, "dx"));
        check_close("conv2d", impl, pf, "dw", dw, need(fx, pf, "dw"));
        if (has_bias) check_close("conv2d", impl, pf, "db", db, need(fx, pf, "db"));
        free(out), free(dx), free(dw), free(db), free(scratch);
    }
}
START_TEST(test_conv2d) { run_suite_file("conv2d.stfx", conv_case, 11); }
END_TEST

/* ---------------------------------------------------------------- linear */
static void linear_case(const st_fixture *fx, const char *pf) {
    const float *cfg = need(fx, pf, "cfg")->data;
    int N = (int)cfg[0], I = (int)cfg[1], O = (int)cfg[2];
    const st_fx_tensor *x = need(fx, pf, "x"), *w = need(fx, pf, "w"), *b = need(fx, pf, "b");
    const st_fx_tensor *y = need(fx, pf, "y"), *g = need(fx, pf, "g");
    ck_assert(x->numel == (size_t)N * I && w->numel == (size_t)O * I && y->numel == (size_t)N * O);
    for (int impl = 0; impl < 2; impl++) {
        float *out = zeros(y->numel), *dx = zeros(x->numel), *dw = zeros(w->numel), *db = zeros(O);
        if (impl == 0) st_linear_forward(out, x->data, w->data, b->data, N, I, O);
        else st_linear_forward_ref(out, x->data, w->data, b->data, N, I, O);
        check_close("linear", impl, pf, "y", out, y);
        if (impl == 0) st_linear_backward(dx, dw, db, g->data, x->data, w->data, N, I, O);
        else st_linear_backward_ref(dx, dw, db, g->data, x->data, w->data, N, I, O);
        check_close("linear", impl, pf, "dx", dx, need(fx, pf, "dx"));
        check_close("linear", impl, pf, "dw", dw, need(fx, pf, "dw"));
        check_close("linear", impl, pf, "db", db, need(fx, pf, "db"));
        free(out), free(dx), free(dw), free(db);
    }
}
START_TEST(test_linear) { run_suite_file("linear.stfx", linear_case, 3); }
END_TEST

/* ---------------------------------------------------------------- batchnorm2d */
static void bn_case(const st_fixture *fx, const char *pf) {
    const float *cfg = need(fx, pf, "cfg")->data;
    const st_fx_tensor *x = need(fx, pf, "x"), *y = need(fx, pf, "y"), *g = need(fx, pf, "g");
    const float *gamma = need(fx, pf, "gamma")->data, *beta = need(fx, pf, "beta")->data;
    int training = cfg[2] != 0;
    st_batchnorm bn = {.N = x->dims[0], .C = x->dims[1], .HW = x->dims[2] * x->dims[3],
                       .eps = cfg[0], .momentum = cfg[1]};
    size_t C = (size_t)bn.C;
    for (int impl = 0; impl < 2; impl++) {
        float *rm = zeros(C), *rv = zeros(C), *smean = zeros(C), *sinv = zeros(C);
        memcpy(rm, need(fx, pf, "running_mean")->data, C * sizeof(float));
        memcpy(rv, need(fx, pf, "running_var")->data, C * sizeof(float));
        float *out = zeros(y->numel), *dx = zeros(x->numel), *dg = zeros(C), *dbt = zeros(C);
        if (impl == 0)
            st_batchnorm_forward(&bn, out, x->data, gamma, beta, rm, rv, smean, sinv, training);
        else
            st_batchnorm_forward_ref(&bn, out, x->data, gamma, beta, rm, rv, smean, sinv,
                                     training);
        check_close("batchnorm", impl, pf, "y", out, y);
        check_close("batchnorm", impl, pf, "running_mean_after", rm,
                    need(fx, pf, "running_mean_after"));
        check_close("batchnorm", impl, pf, "running_var_after", rv,
                    need(fx, pf, "running_var_after"));
        if (impl == 0)
            st_batchnorm_backward(&bn, dx, dg, dbt, g->data, x->data, gamma, smean, sinv,
                                  training);
        else
            st_batchnorm_backward_ref(&bn, dx, dg, dbt, g->data, x->data, gamma, smean, sinv,
                                      training);
        check_close("batchnorm", impl, pf, "dx", dx, need(fx, pf, "dx"));
        check_close("batchnorm", impl, pf, "dgamma", dg, need(fx, pf, "dgamma"));
        check_close("batchnorm", impl, pf, "dbeta", dbt, need(fx, pf, "dbeta"));
        free(rm), free(rv), free(smean), free(sinv), free(out), free(dx), free(dg), free(dbt);
    }
}
START_TEST(test_batchnorm) { run_suite_file("batchnorm2d.stfx", bn_case, 3); }
END_TEST

/* ---------------------------------------------------------------- activations */
static void act_case(const st_fixture *fx, const char *pf) {
    const st_fx_tensor *x = need(fx, pf, "x"), *y = need(fx, pf, "y"), *g = need(fx, pf, "g");
    float slope = need(fx, pf, "cfg")->data[0];
    size_t n = x->numel;
    float *out = zeros(n), *dx = zeros(n);
    if (strcmp(pf, "relu") == 0) {
        st_relu_forward(out, x->data, n);
        st_relu_backward(dx, g->data, x->data, n);
    } else if (strcmp(pf, "leaky_relu") == 0) {
        st_leakyrelu_forward(out, x->data, n, slope);
        st_leakyrelu_backward(dx, g->data, x->data, n, slope);
    } else if (strcmp(pf, "silu") == 0) {
        st_silu_forward(out, x->data, n);
        st_silu_backward(dx, g->data, x->data, n);
    } else if (strcmp(pf, "sigmoid") == 0) {
        st_sigmoid_forward(out, x->data, n);
        st_sigmoid_backward(dx, g->data, out, n); /* takes the forward output */
    } else if (strcmp(pf, "relu6") == 0 || strcmp(pf, "clip") == 0) {
        float lo = need(fx, pf, "cfg")->data[0], hi = need(fx, pf, "cfg")->data[1];
        st_clip_forward(out, x->data, n, lo, hi);
        st_clip_backward(dx, g->data, x->data, n, lo, hi);
    } else if (strcmp(pf, "softmax") == 0) {
        int N = x->dims[0], C = x->dims[1], HW = x->dims[2] * x->dims[3];
        st_softmax_forward(out, x->data, N, C, HW);
        st_softmax_backward(dx, g->data, out, N, C, HW);
    } else {
        ck_abort_msg("unknown activation case %s", pf);
    }
    check_close(pf, 0, pf, "y", out, y);
    check_close(pf, 0, pf, "dx", dx, need(fx, pf, "dx"));
    free(out), free(dx);
}
START_TEST(test_activations) { run_suite_file("activations.stfx", act_case, 7); }
END_TEST

/* ---------------------------------------------------------------- pooling */
static void pool_case(const st_fixture *fx, const char *pf) {
    const st_fx_tensor *x = need(fx, pf, "x"), *y = need(fx, pf, "y"), *g = need(fx, pf, "g");
    const float *c = need(fx, pf, "cfg")->data;
    float *out = zeros(y->numel), *dx = zeros(x->numel);
    if (strcmp(pf, "global_avg") == 0) {
        int N = x->dims[0], C = x->dims[1], HW = x->dims[2] * x->dims[3];
        st_global_avgpool_forward(out, x->data, N, C, HW);
        check_close("global_avgpool", 0, pf, "y", out, y);
        st_global_avgpool_backward(dx, g->data, N, C, HW);
        check_close("global_avgpool", 0, pf, "dx", dx, need(fx, pf, "dx"));
        free(out), free(dx);
        return;
    }
    st_pool p = {.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3],
                 .kh = (int)c[0], .kw = (int)c[1], .stride_h = (int)c[2], .stride_w = (int)c[3],
                 .pad_h = (int)c[4], .pad_w = (int)c[5], .ceil_mode = (int)c[6],
                 .count_include_pad = (int)c[7]};
    ck_assert_int_eq(st_pool_init(&p), 0);
    ck_assert_msg(p.P == y->dims[2] && p.Q == y->dims[3], "pool %s: P,Q %d,%d vs torch %d,%d",
                  pf, p.P, p.Q, y->dims[2], y->dims[3]);
    if (strncmp(pf, "max_", 4) == 0) {
        int32_t *arg = calloc(y->numel, sizeof *arg);
        ck_assert(arg != NULL);
        st_maxpool_forward(&p, out, arg, x->data);
        check_close("maxpool", 0, pf, "y", out, y);
        st_maxpool_backward(&p, dx, g->data, arg);
        check_close("maxpool", 0, pf, "dx", dx, need(fx, pf, "dx"));
        /* the inference variant (no argmax, branch-free) gives the same y, NaNs included */
        float *yi = zeros(y->numel), *xn = zeros(x->numel);
        st_maxpool_forward_infer(&p, yi, x->data);
        check_close("maxpool_infer", 0, pf, "y", yi, y);
        memcpy(xn, x->data, x->numel * sizeof(float));
        for (size_t i = 0; i < x->numel; i += 7) xn[i] = NAN;
        st_maxpool_forward(&p, out, arg, xn);
        st_maxpool_forward_infer(&p, yi, xn);
        for (size_t i = 0; i < y->numel; i++)
            ck_assert_msg((out[i] != out[i] && yi[i] != yi[i]) || out[i] == yi[i],
                          "maxpool_infer %s with NaNs: y[%zu] %g vs %g", pf, i, yi[i], out[i]);
        free(yi), free(xn);
        free(arg);
    } else {
        st_avgpool_forward(&p, out, x->data);
        check_close("avgpool", 0, pf, "y", out, y);
        st_avgpool_backward(&p, dx, g->data);
        check_close("avgpool", 0, pf, "dx", dx, need(fx, pf, "dx"));
    }
    free(out), free(dx);
}
START_TEST(test_pool) { run_suite_file("pool.stfx", pool_case, 10); }
END_TEST

/* Rows wider than the inference max pool's row buffer are done in column chunks. */
START_TEST(test_maxpool_infer_wide) {
    st_pool p = {.N = 1, .C = 2, .H = 3, .W = 4501, .kh = 3, .kw = 5, .stride_h = 1,
                 .stride_w = 2, .pad_h = 1, .pad_w = 2};
    ck_assert_int_eq(st_pool_init(&p), 0);
    ck_assert_int_gt(p.Q, 2048);
    size_t nx = (size_t)2 * 3 * 4501, ny = (size_t)2 * p.P * p.Q;
    float *x = zeros(nx), *y = zeros(ny), *yi = zeros(ny);
    int32_t *arg = calloc(ny, sizeof *arg);
    st_rng r;
    st_rng_seed(&r, 5);
    stt_fill_uniform(x, nx, -1, 1, &r);
    st_maxpool_forward(&p, y, arg, x);
    st_maxpool_forward_infer(&p, yi, x);
    ck_assert_int_eq(memcmp(y, yi, ny * sizeof(float)), 0);
    free(x), free(y), free(yi), free(arg);
}
END_TEST

/* Threads take bands of output rows across planes: uneven bands (29 rows on 3 threads)
 * and more threads than rows (P = 1) give the argmax pool's output exactly. */
START_TEST(test_maxpool_infer_row_bands) {
    const int shapes[2][7] = {{2, 5, 57, 57, 3, 2, 1}, {1, 40, 2, 600, 2, 2, 0}}; /* N C H W k s pad */
    const int prev = omp_get_max_threads();
    omp_set_num_threads(3);
    for (int t = 0; t < 2; t++) {
        const int *v = shapes[t];
        st_pool p = {.N = v[0], .C = v[1], .H = v[2], .W = v[3], .kh = v[4], .kw = v[4],
                     .stride_h = v[5], .stride_w = v[5], .pad_h = v[6], .pad_w = v[6]};
        ck_assert_int_eq(st_pool_init(&p), 0);
        size_t nx = (size_t)p.N * p.C * p.H * p.W, ny = (size_t)p.N * p.C * p.P * p.Q;
        ck_assert_int_gt(ny * (size_t)p.kh * p.kw, 32768); /* big enough to be threaded */
        float *x = zeros(nx), *y = zeros(ny), *yi = zeros(ny);
        int32_t *arg = calloc(ny, sizeof *arg);
        st_rng r;
        st_rng_seed(&r, 11 + (uint64_t)t);
        stt_fill_uniform(x, nx, -1, 1, &r);
        st_maxpool_forward(&p, y, arg, x);
        st_maxpool_forward_infer(&p, yi, x);
        ck_assert_msg(memcmp(y, yi, ny * sizeof(float)) == 0, "shape %d: banded pool differs", t);
        free(x), free(y), free(yi), free(arg);
    }
    omp_set_num_threads(prev);
}
END_TEST

/* Threaded nearest upsampling against its definition, y[h][w] = x[h / f][w / f],
 * bit-exact: planes split unevenly (20 and 600 on 3 threads), factor 2 (its own loop) and
 * 3, odd widths. */
START_TEST(test_upsample_row_bands) {
    const int shapes[3][5] = {{1, 20, 29, 33, 2}, {2, 300, 2, 9, 2}, {1, 30, 11, 13, 3}}; /* N C H W f */
    const int prev = omp_get_max_threads();
    omp_set_num_threads(3);
    for (int t = 0; t < 3; t++) {
        const int *v = shapes[t], N = v[0], C = v[1], H = v[2], W = v[3], f = v[4];
        const size_t nx = (size_t)N * C * H * W, ny = nx * f * f;
        ck_assert_int_gt(ny, 32768); /* big enough to be threaded */
        float *x = zeros(nx), *y = zeros(ny);
        st_rng r;
        st_rng_seed(&r, 21 + (uint64_t)t);
        stt_fill_uniform(x, nx, -1, 1, &r);
        st_upsample_nearest_forward(y, x, N, C, H, W, f);
        for (size_t pl = 0; pl < (size_t)N * C; pl++)
            for (int h = 0; h < H * f; h++)
                for (int w = 0; w < W * f; w++)
                    ck_assert_msg(y[(pl * H * f + h) * W * f + w] == x[(pl * H + h / f) * W + w / f],
                                  "shape %d plane %zu (%d, %d)", t, pl, h, w);
        free(x), free(y);
    }
    omp_set_num_threads(prev);
}
END_TEST

/* Windows past the separable path's limits against the argmax pool: taller than one
 * batch of row pointers (33, 40 rows), wider than the pointer arrays (70 columns or
 * rows: the per-column path), non-square, stride 2 and 3 with such windows, and rows
 * wider than the row buffer (2100 columns with a 2040-wide window). */
START_TEST(test_maxpool_infer_wide_kernel) {
    static const int shapes[][7] = { /* H, W, kh, kw, sh, sw, pad (h and w) */
        {3, 2100, 2, 2040, 1, 1, 0}, {75, 90, 33, 40, 1, 1, 16}, {75, 90, 70, 3, 2, 2, 1},
        {40, 90, 3, 70, 1, 3, 1},    {75, 90, 40, 33, 3, 2, 0}};
    for (int si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++) {
        const int *h = shapes[si];
        st_pool p = {.N = 1, .C = 2, .H = h[0], .W = h[1], .kh = h[2], .kw = h[3], .stride_h = h[4],
                     .stride_w = h[5], .pad_h = h[6], .pad_w = si == 0 ? 3 : h[6]};
        ck_assert_int_eq(st_pool_init(&p), 0);
        size_t nx = (size_t)2 * p.H * p.W, ny = (size_t)2 * p.P * p.Q;
        float *x = zeros(nx), *y = zeros(ny), *yi = zeros(ny);
        int32_t *arg = calloc(ny, sizeof *arg);
        st_rng r;
        st_rng_seed(&r, 9 + si);
        stt_fill_uniform(x, nx, -1, 1, &r);
        x[nx / 3] = NAN;
        st_maxpool_forward(&p, y, arg, x);
        st_maxpool_forward_infer(&p, yi, x);
        for (size_t i = 0; i < ny; i++)
            ck_assert_msg((y[i] != y[i] && yi[i] != yi[i]) || y[i] == yi[i], "shape %d: y[%zu] %g vs %g", si, i,
                          yi[i], y[i]);
        free(x), free(y), free(yi), free(arg);
    }
}
END_TEST

/* The inference pool against the argmax one over kernels 1-5, strides 1-3, padding up to
 * half the kernel, ceil mode, odd sizes (1, 3, 7, 16, 17, 40, 150 columns: up to 16, one
 * vector a row on AVX-512; 9 rows, 130 for 7 columns and the two widest, so stride-1
 * pools span several of the narrow kernel's 32-row chunks and of the flat path's row
 * bands), NaNs at some inputs. */
START_TEST(test_maxpool_infer_sweep) {
    static const int sizes[] = {1, 3, 7, 16, 17, 40, 150};
    st_rng r;
    st_rng_seed(&r, 11);
    int cases = 0;
    for (int k = 1; k <= 5; k++)
        for (int s = 1; s <= 3; s++)
            for (int pad = 0; pad <= k / 2; pad++)
                for (int ceil = 0; ceil <= 1; ceil++)
                    for (int wi = 0; wi < 7; wi++) {
                        const int H = wi >= 5 || wi == 2 ? 130 : 9;
                        st_pool p = {.N = 1, .C = 2, .H = H, .W = sizes[wi], .kh = k, .kw = k, .stride_h = s,
                                     .stride_w = s, .pad_h = pad, .pad_w = pad, .ceil_mode = ceil};
                        if (st_pool_init(&p) != 0) continue;
                        size_t nx = (size_t)2 * H * p.W, ny = (size_t)2 * p.P * p.Q;
                        float *x = zeros(nx), *y = zeros(ny), *yi = zeros(ny);
                        int32_t *arg = calloc(ny, sizeof *arg);
                        stt_fill_uniform(x, nx, -1, 1, &r);
                        if (wi % 2) x[nx / 3] = NAN;
                        st_maxpool_forward(&p, y, arg, x);
                        st_maxpool_forward_infer(&p, yi, x);
                        size_t i = 0; /* the first difference (one assertion per case) */
                        while (i < ny && ((y[i] != y[i] && yi[i] != yi[i]) || y[i] == yi[i])) i++;
                        if (i < ny)
                            ck_abort_msg("k%d s%d p%d ceil%d W%d H%d: y[%zu] %g vs %g", k, s, pad, ceil, p.W,
                                         H, i, yi[i], y[i]);
                        /* a team's parts (by planes on small maps, else by rows) cover y
                         * exactly once: NaN-filled first, the same bits after */
                        for (int np = 2; np <= 3; np++) {
                            for (size_t j = 0; j < ny; j++) y[j] = -NAN;
                            for (int part = np - 1; part >= 0; part--) st_maxpool_forward_infer_part(&p, y, x, part, np);
                            if (memcmp(y, yi, ny * sizeof(float)) != 0)
                                ck_abort_msg("k%d s%d p%d ceil%d W%d H%d: %d parts differ", k, s, pad, ceil, p.W, H, np);
                        }
                        free(x), free(y), free(yi), free(arg);
                        cases++;
                    }
    ck_assert_int_gt(cases, 200);
}
END_TEST

/* ---------------------------------------------------------------- upsample, concat */
static void shape_case(const st_fixture *fx, const char *pf) {
    const st_fx_tensor *y = need(fx, pf, "y"), *g = need(fx, pf, "g"), *cfg = need(fx, pf, "cfg");
    float *out = zeros(y->numel);
    if (strncmp(pf, "upsample", 8) == 0) {
        const st_fx_tensor *x = need(fx, pf, "x");
        int f = (int)cfg->data[0], N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
        float *dx = zeros(x->numel);
        st_upsample_nearest_forward(out, x->data, N, C, H, W, f);
        check_close("upsample", 0, pf, "y", out, y);
        st_upsample_nearest_backward(dx, g->data, N, C, H, W, f);
        check_close("upsample", 0, pf, "dx", dx, need(fx, pf, "dx"));
        free(dx);
    } else {
        enum { MAXIN = 8 };
        int n = (int)cfg->numel, cs[MAXIN];
        const float *in[MAXIN];
        float *din[MAXIN];
        ck_assert(n <= MAXIN);
        const st_fx_tensor *x0 = need(fx, pf, "x0");
        int N = x0->dims[0], HW = x0->dims[2] * x0->dims[3];
        for (int i = 0; i < n; i++) {
            char nm[16];
            snprintf(nm, sizeof nm, "x%d", i);
            cs[i] = (int)cfg->data[i];
            in[i] = need(fx, pf, nm)->data;
            din[i] = zeros(need(fx, pf, nm)->numel);
        }
        st_concat_forward(out, in, cs, n, N, HW);
        check_close("concat", 0, pf, "y", out, y);
        st_concat_backward(din, g->data, cs, n, N, HW);
        for (int i = 0; i < n; i++) {
            char nm[16];
            snprintf(nm, sizeof nm, "dx%d", i);
            check_close("concat", 0, pf, nm, din[i], need(fx, pf, nm));
            free(din[i]);
        }
    }
    free(out);
}
START_TEST(test_shape) { run_suite_file("shape.stfx", shape_case, 3); }
END_TEST

/* ---------------------------------------------------------------- softmax cross-entropy */
static void xent_case(const st_fixture *fx, const char *pf) {
    const float *cfg = need(fx, pf, "cfg")->data;
    int N = (int)cfg[0], C = (int)cfg[1];
    const st_fx_tensor *logits = need(fx, pf, "logits"), *lab = need(fx, pf, "labels");
    int32_t *labels = calloc(N, sizeof *labels);
    ck_assert(labels != NULL && lab->numel == (size_t)N);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)lab->data[i];
    float *probs = zeros((size_t)N * C), *dl = zeros((size_t)N * C);
    float loss = st_softmax_xent_forward(probs, logits->data, labels, N, C);
    check_close("softmax_xent", 0, pf, "loss", &loss, need(fx, pf, "loss"));
    check_close("softmax_xent", 0, pf, "probs", probs, need(fx, pf, "probs"));
    st_softmax_xent_backward(dl, probs, labels, N, C, need(fx, pf, "g")->data[0]);
    check_close("softmax_xent", 0, pf, "dlogits", dl, need(fx, pf, "dlogits"));
    free(labels), free(probs), free(dl);
}
START_TEST(test_xent) { run_suite_file("xent.stfx", xent_case, 3); }
END_TEST

/* ---------------------------------------------------------------- the reader itself */
static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static void expect_error(const char *path, const char *needle) {
    st_fixture fx;
    st_error err = {0};
    ck_assert_int_eq(st_fixture_load(&fx, path, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "error '%s' lacks '%s'", err.msg, needle);
    ck_assert_msg(strstr(err.msg, path) != NULL, "error '%s' does not name the file", err.msg);
    ck_assert(fx.count == 0 && fx.t == NULL);
}

START_TEST(test_reader) {
    /* a hand-written file: one tensor "ab" of dims [2, 1] holding 1.5, -2 */
    static const unsigned char good[] = {
        'S', 'T', 'F', 'X', 1, 0, 0, 0, 2, 0, 0, 0, 'a', 'b', 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
        0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    char dir[1024], path[1100];
    stt_tmpdir(dir, sizeof dir, "fixture");
    snprintf(path, sizeof path, "%s/good.stfx", dir);
    write_bytes(path, good, sizeof good);
    st_fixture fx;
    st_error err = {0};
    ck_assert_msg(st_fixture_load(&fx, path, &err) == ST_OK, "%s", err.msg);
    const st_fx_tensor *t = st_fixture_find(&fx, "ab");
    ck_assert(t != NULL && st_fixture_find(&fx, "a") == NULL);
    ck_assert(t->ndim == 2 && t->dims[0] == 2 && t->dims[1] == 1 && t->numel == 2);
    ck_assert(t->data[0] == 1.5f && t->data[1] == -2.0f);
    st_fixture_free(&fx);

    snprintf(path, sizeof path, "%s/truncated.stfx", dir);
    write_bytes(path, good, sizeof good - 3);
    expect_error(path, "truncated");
    unsigned char bad[sizeof good + 1];
    memcpy(bad, good, sizeof good);
    bad[sizeof good] = 0;
    snprintf(path, sizeof path, "%s/trailing.stfx", dir);
    write_bytes(path, bad, sizeof good + 1);
    expect_error(path, "trailing");
    bad[0] = 'X';
    snprintf(path, sizeof path, "%s/magic.stfx", dir);
    write_bytes(path, bad, sizeof good);
    expect_error(path, "magic");
    memcpy(bad, good, sizeof good);
    bad[14] = 9; /* ndim 9 > ST_FX_MAX_DIMS */
    snprintf(path, sizeof path, "%s/ndim.stfx", dir);
    write_bytes(path, bad, sizeof good);
    expect_error(path, "ndim");
    snprintf(path, sizeof path, "%s/missing.stfx", dir);
    expect_error(path, "No such file");
}
END_TEST

Suite *torch_ops_suite(void) {
    Suite *s = suite_create("torch_ops");
    TCase *tc = tcase_create("vs_pytorch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reader);
    tcase_add_test(tc, test_conv2d);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_batchnorm);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_pool);
    tcase_add_test(tc, test_maxpool_infer_wide);
    tcase_add_test(tc, test_maxpool_infer_sweep);
    tcase_add_test(tc, test_maxpool_infer_wide_kernel);
    tcase_add_test(tc, test_maxpool_infer_row_bands);
    tcase_add_test(tc, test_upsample_row_bands);
    tcase_add_test(tc, test_shape);
    tcase_add_test(tc, test_xent);
    suite_add_tcase(s, tc);
    return s;
}
