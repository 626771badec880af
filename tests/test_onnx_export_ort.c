/* ONNX export, interoperability: exported files pass onnx.checker and ONNX Runtime's
 * outputs equal our own eval-mode forward (where the peers are installed); the edge
 * graphs (an output behind a dropped Dropout, several outputs) also have their
 * structure checked without them. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_npy.h"
#include "st_onnx.h"
#include "st_onnx_export_test_util.h"
#include "st_test_util.h"

/* ---- interoperability: onnx.checker and ONNX Runtime vs our forward ----------------- */

/* Exports g, checks it, runs ORT at batches 1 and 3 and compares with st_exec (eval). */
static void check_against_ort(const st_graph *g, const st_onnx_export_opts *o, const char *tag) {
    char dir[512], model[700], in_npy[700], out_npy[700];
    stt_tmpdir(dir, sizeof dir, "onnx-ort");
    snprintf(model, sizeof model, "%s/%s.onnx", dir, tag);
    st_error err = {0};
    ck_assert_msg(st_onnx_export_file(g, o, model, &err) == ST_OK, "%s", err.msg);
    ck_assert_msg(stt_onnx_check(model) == 0, "onnx.checker rejected %s", model);
    st_shape is = g->values[g->input];
    size_t n_in = st_shape_numel(is);
    st_rng r;
    st_rng_seed(&r, 1234);
    for (int N = 1; N <= 3; N += 2) {
        float *x = malloc((size_t)N * n_in * sizeof(float));
        stt_fill_uniform(x, (size_t)N * n_in, -1.0f, 1.0f, &r);
        int64_t shape[4] = {N, is.c, is.h, is.w};
        snprintf(in_npy, sizeof in_npy, "%s/%s-in%d.npy", dir, tag, N);
        snprintf(out_npy, sizeof out_npy, "%s/%s-out%d.npy", dir, tag, N);
        ck_assert_int_eq(st_npy_write(in_npy, 4, shape, x, &err), ST_OK);
        ck_assert_msg(stt_ort_run(model, in_npy, out_npy) == 0, "ORT failed on %s", model);
        st_exec e;
        ck_assert_int_eq(st_exec_plan(&e, g, N, 0, &err), ST_OK);
        e.dense_only = 1;
        memcpy(st_exec_input(&e), x, (size_t)N * n_in * sizeof(float));
        st_exec_forward(&e, N, 0);
        for (int k = 0; k < g->n_outputs; k++) {
            char yk[760];
            if (k) snprintf(yk, sizeof yk, "%s/%s-out%d_%d.npy", dir, tag, N, k);
            else snprintf(yk, sizeof yk, "%s", out_npy);
            st_npy y;
            ck_assert_int_eq(st_npy_read(yk, &y, &err), ST_OK);
            ck_assert_int_eq(y.shape[0], N);
            ck_assert_uint_eq(y.numel, (size_t)N * st_shape_numel(g->values[g->outputs[k]]));
            const float *ours = e.act[g->outputs[k]];
            size_t bad = stt_first_mismatch(y.data, ours, y.numel, 1e-5, 1e-4);
            ck_assert_msg(bad == (size_t)-1, "%s batch %d output %d: ORT %.8g vs ours %.8g at %zu",
                          tag, N, k, bad == (size_t)-1 ? 0.0 : (double)y.data[bad],
                          bad == (size_t)-1 ? 0.0 : (double)ours[bad], bad);
            st_npy_free(&y);
        }
        st_exec_free(&e);
        free(x);
    }
}

START_TEST(test_ort_cnn_small) {
    if (!stt_need_peers()) return;
    for (int pruned = 0; pruned <= 1; pruned++) {
        st_graph *g = cnn_small(11 + pruned);
        if (pruned) {
            st_rng r;
            st_rng_seed(&r, 77);
            stt_prune_all(g, 0.9, &r);
        }
        for (int fold = 0; fold <= 1; fold++) {
            st_onnx_export_opts o;
            st_onnx_export_opts_default(&o);
            o.fold_bn = fold;
            char tag[64];
            snprintf(tag, sizeof tag, "cnn-%s-%s", pruned ? "pruned" : "dense",
                     fold ? "folded" : "bn");
            check_against_ort(g, &o, tag);
        }
        st_graph_free(g);
    }
}
END_TEST

/* The detector: yolov5n (3 classes, 64x64), dense and 95% pruned, BN folded; its three
 * raw head outputs against ONNX Runtime, and the import of its own export. */
START_TEST(test_ort_yolov5n) {
    if (!stt_need_peers()) return;
    for (int pruned = 0; pruned <= 1; pruned++) {
        st_graph *g = NULL;
        st_error err = {0};
        ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 64, 3, &g, &err), ST_OK);
        ck_assert_int_eq(st_graph_finalize(g, 5, &err), ST_OK);
        st_rng r;
        st_rng_seed(&r, 6);
        stt_randomize_bn(g, &r);
        if (pruned) stt_prune_all(g, 0.95, &r);
        check_against_ort(g, NULL, pruned ? "yolov5n-pruned" : "yolov5n-dense");
        st_graph_free(g);
    }
}
END_TEST

/* The export with YOLOv5's decode: ONNX Runtime's "detections" [N, A, 5+nc] equal the
 * decode of our raw outputs computed here from the formulas (docs/yolov5.md). */
START_TEST(test_ort_yolov5n_decode) {
    if (!stt_need_peers()) return;
    const int nc = 3, S = 64, N = 2, K = nc + 5;
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("yolov5n", 3, S, S, nc, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 8, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 9);
    stt_randomize_bn(g, &r);
    st_onnx_yolo_decode d = {.nc = nc, .strides = {8, 16, 32},
                             .anchors = {{{10, 13}, {16, 30}, {33, 23}},
                                         {{30, 61}, {62, 45}, {59, 119}},
                                         {{116, 90}, {156, 198}, {373, 326}}}};
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.yolo_decode = &d;
    char dir[512], model[700], in_npy[700], out_npy[700];
    stt_tmpdir(dir, sizeof dir, "onnx-decode");
    snprintf(model, sizeof model, "%s/yolo-decode.onnx", dir);
    ck_assert_msg(st_onnx_export_file(g, &o, model, &err) == ST_OK, "%s", err.msg);
    ck_assert_msg(stt_onnx_check(model) == 0, "onnx.checker rejected %s", model);
    size_t n_in = (size_t)N * 3 * S * S;
    float *x = malloc(n_in * sizeof(float));
    stt_fill_uniform(x, n_in, 0.0f, 1.0f, &r);
    int64_t shape[4] = {N, 3, S, S};
    snprintf(in_npy, sizeof in_npy, "%s/in.npy", dir);
    snprintf(out_npy, sizeof out_npy, "%s/out.npy", dir);
    ck_assert_int_eq(st_npy_write(in_npy, 4, shape, x, &err), ST_OK);
    ck_assert_int_eq(stt_ort_run(model, in_npy, out_npy), 0);
    st_npy y;
    ck_assert_int_eq(st_npy_read(out_npy, &y, &err), ST_OK);
    int A = 3 * (8 * 8 + 4 * 4 + 2 * 2);
    ck_assert_int_eq(y.ndim, 3);
    ck_assert_int_eq(y.shape[1], A);
    ck_assert_int_eq(y.shape[2], K);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, N, 0, &err), ST_OK);
    memcpy(st_exec_input(&e), x, n_in * sizeof(float));
    st_exec_forward(&e, N, 0);
    float *want = malloc(y.numel * sizeof(float));
    for (int n = 0; n < N; n++) {
        int row = 0;
        for (int sc = 0; sc < 3; sc++) {
            st_shape os = g->values[g->outputs[sc]];
            const float *raw = e.act[g->outputs[sc]] + (size_t)n * st_shape_numel(os);
            int H = os.h, W = os.w, hw = H * W;
            for (int a = 0; a < 3; a++)
                for (int cy = 0; cy < H; cy++)
                    for (int cx = 0; cx < W; cx++, row++) {
                        float *o = want + ((size_t)n * A + row) * K;
                        for (int k = 0; k < K; k++) {
                            float v = 1.0f / (1.0f + expf(-raw[(size_t)(a * K + k) * hw + cy * W + cx]));
                            if (k == 0) v = (v * 2 - 0.5f + cx) * d.strides[sc];
                            else if (k == 1) v = (v * 2 - 0.5f + cy) * d.strides[sc];
                            else if (k < 4) v = (v * 2) * (v * 2) * d.anchors[sc][a][k - 2];
                            o[k] = v;
                        }
                    }
        }
    }
    STT_ASSERT_CLOSE(y.data, want, y.numel, 1e-4, 1e-4);
    /* the decode needs a detector */
    st_graph *c = cnn_small(3);
    ck_assert_int_eq(st_onnx_export_file(c, &o, model, &err), ST_ERR_INPUT);
    st_graph_free(c);
    free(want), free(x);
    st_npy_free(&y);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

START_TEST(test_ort_every_op) {
    if (!stt_need_peers()) return;
    st_graph *g = every_op(21);
    st_rng r;
    st_rng_seed(&r, 5);
    stt_prune_all(g, 0.5, &r);
    for (int v = 0; v < 3; v++) {
        st_onnx_export_opts o;
        st_onnx_export_opts_default(&o);
        o.fold_bn = v != 1;
        o.keep_dropout = v == 2;
        const char *tags[3] = {"every-folded", "every-bn", "every-dropout"};
        check_against_ort(g, &o, tags[v]);
    }
    st_graph_free(g);
}
END_TEST

/* Output reached through a dropped Dropout (an Identity names it "output"), and a BN on
 * a 2-D value (after a linear: kept, nothing to fold into). */
static st_graph *edge_graph(void) {
    st_graph *g = st_graph_new();
    int x = st_g_flatten(g, st_g_input(g, 2, 4, 4));
    x = st_g_batchnorm(g, "fc.bn", st_g_linear(g, "fc", x, 7, 1), 1e-5f, 0.1f);
    st_g_output(g, st_g_dropout(g, x, 0.2f));
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, 3, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, 4);
    stt_randomize_bn(g, &r);
    return g;
}

START_TEST(test_export_edge_graph) {
    st_graph *g = edge_graph();
    Onnx__ModelProto *m = export_unpack(g, NULL);
    check_common(m);
    ck_assert_int_eq(count_op(m, "Identity"), 1);
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 1);
    ck_assert_int_eq(count_op(m, "Dropout"), 0);
    ck_assert_uint_eq(m->graph->output[0]->type->tensor_type->shape->n_dim, 2);
    onnx__model_proto__free_unpacked(m, NULL);
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.keep_dropout = 1;
    m = export_unpack(g, &o);
    ck_assert_int_eq(count_op(m, "Identity"), 0);
    ck_assert_int_eq(count_op(m, "Dropout"), 1);
    onnx__model_proto__free_unpacked(m, NULL);
    if (stt_need_peers()) {
        check_against_ort(g, NULL, "edge");
        check_against_ort(g, &o, "edge-dropout");
    }
    st_graph_free(g);
}
END_TEST

/* Several outputs (a detector's scales): "output0", "output1", each with its shape. */
START_TEST(test_export_two_outputs) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 8, 8);
    int a = st_g_silu(g, st_g_batchnorm(g, "m.0.bn", st_g_conv2d(g, "m.0.conv", x, 4, 3, 3, 1, 1, 1, 1, 0), 1e-3f, 0.03f));
    int b = st_g_conv2d(g, "m.1", a, 6, 3, 3, 2, 1, 1, 1, 1);
    st_g_output(g, st_g_conv2d(g, "m.2", a, 5, 1, 1, 1, 0, 1, 1, 1));
    st_g_output(g, b);
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, 3, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, 4);
    stt_randomize_bn(g, &r);
    Onnx__ModelProto *m = export_unpack(g, NULL);
    ck_assert_uint_eq(m->graph->n_output, 2);
    ck_assert_str_eq(m->graph->output[0]->name, "output0");
    ck_assert_str_eq(m->graph->output[1]->name, "output1");
    ck_assert_int_eq(m->graph->output[1]->type->tensor_type->shape->dim[1]->dim_value, 6);
    ck_assert_int_eq(m->graph->output[1]->type->tensor_type->shape->dim[2]->dim_value, 4);
    onnx__model_proto__free_unpacked(m, NULL);
    if (stt_need_peers()) check_against_ort(g, NULL, "two-outputs");
    st_graph_free(g);
}
END_TEST

Suite *onnx_export_ort_suite(void) {
    Suite *s = suite_create("onnx_export_ort");
    TCase *peers = tcase_create("peers");
    tcase_add_test(peers, test_ort_cnn_small);
    tcase_add_test(peers, test_ort_every_op);
    tcase_add_test(peers, test_export_edge_graph);
    tcase_add_test(peers, test_export_two_outputs);
    tcase_add_test(peers, test_ort_yolov5n);
    tcase_add_test(peers, test_ort_yolov5n_decode);
    tcase_set_timeout(peers, 300);
    suite_add_tcase(s, peers);
    return s;
}
