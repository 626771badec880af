/* The built-in YOLOv5 models: structure, parameter names and counts (against the
 * published figures), the forward and backward pass against PyTorch
 * (tests/fixtures/torch/yolo.stfx from tools/yolo_fixture.py) and Detect's bias prior. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "st_detect.h"
#include "st_exec.h"
#include "st_fixture.h"
#include "st_models.h"
#include "st_test_util.h"

/* ------------------------------------------------------------------ weights by name */
/* The fixture stores no weights: both sides derive every value from the parameter's
 * name (FNV-1a) and index (splitmix64), bit-identical in float32 (tools/yolo_fixture.py
 * det_uniform / det_values). */
static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static float det_uniform(uint64_t seed, size_t i) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * 0x1p-24f;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void det_fill(st_graph *g) {
    for (int p = 0; p < g->n_params; p++) {
        const st_param *pr = &g->params[p];
        float *d = st_param_data(g, p);
        uint64_t seed = fnv1a(pr->name);
        float conv_scale = pr->ndim == 4 ? 2.0f / sqrtf((float)(pr->numel / pr->shape[0])) : 0;
        for (size_t i = 0; i < pr->numel; i++) {
            float u = det_uniform(seed, i), s = 2.0f * u - 1.0f;
            if (ends_with(pr->name, "running_var")) d[i] = 1.0f + 0.5f * u;
            else if (ends_with(pr->name, "running_mean")) d[i] = 0.2f * s;
            else if (ends_with(pr->name, "bn.weight")) d[i] = 1.0f + 0.25f * s;
            else if (ends_with(pr->name, "bn.bias")) d[i] = 0.2f * s;
            else if (ends_with(pr->name, "bias")) d[i] = 0.5f * s;
            else d[i] = conv_scale * s;
        }
    }
}

/* ------------------------------------------------------------------ counts */
/* Parameters of YOLOv5 counted from the architecture alone (conv weights + BN weight and
 * bias; running statistics are buffers), independently of the graph builder. */
static long conv_n(long c1, long c2, long k) { return c1 * c2 * k * k + 2 * c2; }
static long c3_n(long c1, long c2, long n) {
    long c_ = c2 / 2;
    return 2 * conv_n(c1, c_, 1) + conv_n(2 * c_, c2, 1) + n * (conv_n(c_, c_, 1) + conv_n(c_, c_, 3));
}
static long yolo_count(double width, int nc) {
    long c[6]; /* 64 .. 1024 scaled */
    for (int i = 0; i < 5; i++) c[i] = (long)ceil((64 << i) * width / 8) * 8;
    long n1 = 1, n2 = 2, n3 = 3; /* round(3, 6, 9 x 0.33) */
    long t = conv_n(3, c[0], 6) + conv_n(c[0], c[1], 3) + c3_n(c[1], c[1], n1) +
             conv_n(c[1], c[2], 3) + c3_n(c[2], c[2], n2) + conv_n(c[2], c[3], 3) +
             c3_n(c[3], c[3], n3) + conv_n(c[3], c[4], 3) + c3_n(c[4], c[4], n1) +
             conv_n(c[4], c[4] / 2, 1) + conv_n(2 * c[4], c[4], 1) /* SPPF */ +
             conv_n(c[4], c[3], 1) + c3_n(2 * c[3], c[3], n1) + conv_n(c[3], c[2], 1) +
             c3_n(2 * c[2], c[2], n1) + conv_n(c[2], c[2], 3) + c3_n(2 * c[2], c[3], n1) +
             conv_n(c[3], c[3], 3) + c3_n(2 * c[3], c[4], n1);
    long no = 3 * (nc + 5);
    return t + (c[2] + c[3] + c[4]) * no + 3 * no; /* Detect: 1x1 convs with bias */
}

static void check_param(const st_graph *g, const char *name, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3) {
    int p = st_graph_find_param(g, name);
    ck_assert_msg(p >= 0, "no parameter %s", name);
    const int64_t want[4] = {d0, d1, d2, d3};
    for (int i = 0; i < g->params[p].ndim; i++)
        ck_assert_msg(g->params[p].shape[i] == want[i], "%s dim %d: %lld, want %lld", name, i,
                      (long long)g->params[p].shape[i], (long long)want[i]);
}

START_TEST(test_yolov5_names_and_counts) {
    st_error err = {0};
    st_graph *g = NULL;
    ck_assert_str_eq(st_model_find("yolov5n")->task, "detect");
    ck_assert_str_eq(st_model_find("yolov5s")->task, "detect");
    ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 96, 10, &g, &err), ST_OK);
    /* 1.78M in docs/yolov5.md; 1777447 = ultralytics' 1872157 at nc = 80 minus the
     * smaller Detect convs (448 * 3 * 70 weights + 3 * 210 biases) */
    size_t n = st_graph_num_trainable(g);
    ck_assert_uint_eq(n, (size_t)yolo_count(0.25, 10));
    ck_assert_uint_eq(n, 1777447);
    ck_assert(fabs(n / 1.78e6 - 1) < 0.005);
    check_param(g, "model.0.conv.weight", 16, 3, 6, 6);
    check_param(g, "model.0.bn.weight", 16, 0, 0, 0);
    check_param(g, "model.2.cv1.conv.weight", 16, 32, 1, 1);
    check_param(g, "model.2.m.0.cv2.conv.weight", 16, 16, 3, 3);
    check_param(g, "model.4.m.1.cv1.bn.running_var", 32, 0, 0, 0);
    check_param(g, "model.6.m.2.cv2.conv.weight", 64, 64, 3, 3);
    check_param(g, "model.9.cv2.conv.weight", 256, 512, 1, 1);
    check_param(g, "model.13.cv3.conv.weight", 128, 128, 1, 1);
    check_param(g, "model.24.m.1.weight", 45, 128, 1, 1);
    check_param(g, "model.24.m.1.bias", 45, 0, 0, 0);
    ck_assert_int_lt(st_graph_find_param(g, "model.4.m.2.cv1.conv.weight"), 0);
    ck_assert_int_lt(st_graph_find_param(g, "model.24.m.0.conv.weight"), 0);
    /* shortcuts only in the backbone's 1 + 2 + 3 + 1 bottlenecks */
    int adds = 0;
    for (int i = 0; i < g->n_nodes; i++) adds += g->nodes[i].op == ST_OP_ADD;
    ck_assert_int_eq(adds, 7);
    ck_assert_int_eq(g->n_outputs, 3);
    for (int s = 0; s < 3; s++) {
        st_shape o = g->values[g->outputs[s]];
        ck_assert_int_eq(o.c, 45);
        ck_assert_int_eq(o.h, 64 >> (3 + s));
        ck_assert_int_eq(o.w, 96 >> (3 + s));
    }
    st_graph_free(g);

    ck_assert_int_eq(st_model_build("yolov5s", 3, 64, 64, 10, &g, &err), ST_OK);
    n = st_graph_num_trainable(g);
    ck_assert_uint_eq(n, (size_t)yolo_count(0.5, 10));
    ck_assert_uint_eq(n, 7046599); /* 7235389 at nc = 80 */
    ck_assert(fabs(n / 7.05e6 - 1) < 0.005);
    check_param(g, "model.0.conv.weight", 32, 3, 6, 6);
    check_param(g, "model.9.cv2.conv.weight", 512, 1024, 1, 1);
    check_param(g, "model.24.m.2.weight", 45, 512, 1, 1);
    st_graph_free(g);
}
END_TEST

START_TEST(test_yolov5_rejects_bad_input_size) {
    st_error err = {0};
    st_graph *g = NULL;
    ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 80, 10, &g, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err.msg, "multiples of 32"));
    ck_assert_int_eq(st_model_build("yolov5s", 3, 16, 16, 10, &g, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 64, 0, &g, &err), ST_ERR_INPUT);
    /* one class is fine for a detector */
    ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 64, 1, &g, &err), ST_OK);
    st_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ against PyTorch */
#define FX_N 2
#define FX_HW 64
#define FX_NC 3

static const st_fx_tensor *need(const st_fixture *fx, const char *fmt, const char *name) {
    const st_fx_tensor *t = st_fixture_findf(fx, fmt, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    return t;
}

/* rtol 1e-4 and atol 1e-4 of the tensor's largest magnitude: 60 float32 layers with
 * batch statistics over as few as 8 values (P5 at 64x64) against a float64 reference */
static void assert_close_fx(const float *got, const st_fx_tensor *want, const char *what) {
    double scale = 0;
    for (size_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(want->data[i]));
    size_t bad = stt_first_mismatch(got, want->data, want->numel, 1e-4 * scale + 1e-7, 1e-4);
    ck_assert_msg(bad == (size_t)-1, "%s[%zu]: ours %.8g torch %.8g", what, bad,
                  bad == (size_t)-1 ? 0.0 : got[bad], bad == (size_t)-1 ? 0.0 : want->data[bad]);
}

START_TEST(test_yolov5n_matches_torch) {
    char path[600];
    st_error err = {0};
    st_fixture fx;
    ck_assert_int_eq(st_fixture_load(&fx, stt_source_path(path, sizeof path, "tests/fixtures/torch/yolo.stfx"),
                                     &err), ST_OK);
    st_graph *g = NULL;
    ck_assert_int_eq(st_model_build("yolov5n", 3, FX_HW, FX_HW, FX_NC, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    det_fill(g);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, FX_N, 1, &err), ST_OK);
    const st_fx_tensor *x = need(&fx, "%s", "x");
    ck_assert_uint_eq(x->numel, (size_t)FX_N * 3 * FX_HW * FX_HW);

    memcpy(st_exec_input(&e), x->data, x->numel * sizeof(float));
    st_exec_forward(&e, FX_N, 0);
    char what[64];
    for (int s = 0; s < 3; s++) {
        snprintf(what, sizeof what, "eval.p%d", s);
        const st_fx_tensor *want = need(&fx, "%s", what);
        ck_assert_uint_eq(want->numel, FX_N * st_shape_numel(g->values[g->outputs[s]]));
        assert_close_fx(e.act[g->outputs[s]], want, what);
    }

    memcpy(st_exec_input(&e), x->data, x->numel * sizeof(float));
    st_exec_forward(&e, FX_N, 1);
    for (int s = 0; s < 3; s++) {
        snprintf(what, sizeof what, "train.p%d", s);
        assert_close_fx(e.act[g->outputs[s]], need(&fx, "%s", what), what);
        snprintf(what, sizeof what, "train.g%d", s);
        const st_fx_tensor *gr = need(&fx, "%s", what);
        memcpy(e.dact[g->outputs[s]], gr->data, gr->numel * sizeof(float));
    }
    st_graph_zero_grad(g);
    st_exec_backward(&e);
    int compared = 0;
    for (int i = 0; i < fx.count; i++) {
        const char *n = fx.t[i].name;
        int grad = strncmp(n, "grad.", 5) == 0, after = strncmp(n, "after.", 6) == 0;
        if (!grad && !after) continue;
        int p = st_graph_find_param(g, n + (grad ? 5 : 6));
        ck_assert_msg(p >= 0, "no parameter %s", n);
        ck_assert_uint_eq(g->params[p].numel, fx.t[i].numel);
        assert_close_fx(grad ? st_param_grad(g, p) : st_param_data(g, p), &fx.t[i], n);
        compared++;
    }
    ck_assert_int_ge(compared, 14);
    st_exec_free(&e);
    st_graph_free(g);
    st_fixture_free(&fx);
}
END_TEST

/* yolov5s runs forward and backward too (no reference: same code paths, wider) */
START_TEST(test_yolov5s_forward_backward_runs) {
    st_error err = {0};
    st_graph *g = NULL;
    ck_assert_int_eq(st_model_build("yolov5s", 3, 64, 64, 2, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 7, &err), ST_OK);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, 2, 1, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 3);
    stt_fill_uniform(st_exec_input(&e), 2 * 3 * 64 * 64, 0, 1, &r);
    st_exec_forward(&e, 2, 1);
    for (int s = 0; s < 3; s++) {
        size_t n = 2 * st_shape_numel(g->values[g->outputs[s]]);
        for (size_t i = 0; i < n; i++) {
            ck_assert(isfinite(e.act[g->outputs[s]][i]));
            e.dact[g->outputs[s]][i] = 1e-2f;
        }
    }
    st_graph_zero_grad(g);
    st_exec_backward(&e);
    int p = st_graph_find_param(g, "model.0.conv.weight");
    double norm = 0;
    for (size_t i = 0; i < g->params[p].numel; i++) norm += fabs(st_param_grad(g, p)[i]);
    ck_assert(isfinite(norm) && norm > 0);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

START_TEST(test_yolo_init_biases) {
    st_error err = {0};
    st_graph *g = NULL;
    const int nc = 10, no = nc + 5;
    ck_assert_int_eq(st_model_build("yolov5n", 3, 320, 320, nc, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    st_yolo_cfg c;
    st_yolo_cfg_default(&c, nc, 320, 320);
    float *bias[3], before[3][45];
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "model.24.m.%d.bias", s);
        int p = st_graph_find_param(g, name);
        ck_assert_int_ge(p, 0);
        bias[s] = st_param_data(g, p);
        memcpy(before[s], bias[s], sizeof before[s]);
    }
    st_yolo_init_biases(&c, bias);
    /* YOLOv5: obj += log(8 / (640 / stride)^2) -> -6.6846, -5.2983, -3.9120 for 8, 16, 32
     * (the 640 is fixed, whatever the input size); cls += log(0.6 / (nc - 0.99)) */
    const double obj[3] = {log(8.0 / 6400), log(8.0 / 1600), log(8.0 / 400)};
    for (int s = 0; s < 3; s++)
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < no; k++) {
                double add = k == 4 ? obj[s] : k >= 5 ? log(0.6 / (nc - 0.99)) : 0;
                ck_assert_float_eq_tol(bias[s][a * no + k], before[s][a * no + k] + add, 1e-5);
            }
    ck_assert_float_eq_tol(obj[0], -6.684612, 1e-5);
    st_graph_free(g);
}
END_TEST

Suite *yolo_model_suite(void) {
    Suite *s = suite_create("yolo_model");
    TCase *tc = tcase_create("yolo_model");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_yolov5_names_and_counts);
    tcase_add_test(tc, test_yolov5_rejects_bad_input_size);
    tcase_add_test(tc, test_yolov5n_matches_torch);
    tcase_add_test(tc, test_yolov5s_forward_backward_runs);
    tcase_add_test(tc, test_yolo_init_biases);
    suite_add_tcase(s, tc);
    return s;
}
