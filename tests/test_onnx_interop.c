/* ONNX import against PyTorch exports and ONNX Runtime: torchvision resnet18,
 * mobilenet_v2, squeezenet1_1, our cnn-small and a net using the folded/fused patterns,
 * each exported in eval mode (BN folded) and in training mode (BN kept), imported,
 * run in eval mode and compared with ONNX Runtime on the same input. The models come
 * from tools/gen_onnx_models.py (run once; skipped while its outputs are newer than
 * the script). Skips cleanly when the reference tools cannot be installed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_exec.h"
#include "st_npy.h"
#include "st_onnx.h"
#include "st_test_util.h"

static const char *const names[] = {"cnn_small", "viewnet", "squeezenet1_1", "mobilenet_v2", "resnet18"};
#define N_MODELS (int)(sizeof names / sizeof names[0])

static double mtime(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (double)sb.st_mtim.tv_sec + 1e-9 * (double)sb.st_mtim.tv_nsec : -1.0;
}

/* The models folder, generated when missing or older than the script; NULL to skip. */
static const char *models_dir(char *buf, size_t cap) {
    char script[600], done[700], cmd[2048];
    snprintf(buf, cap, "%s/onnx_models", ST_BINARY_DIR);
    snprintf(script, sizeof script, "%s/tools/gen_onnx_models.py", ST_SOURCE_DIR);
    snprintf(done, sizeof done, "%s/DONE", buf);
    if (mtime(done) > mtime(script)) return buf;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s >%s/gen_onnx_models.log 2>&1", script, buf, ST_BINARY_DIR);
    int rc = stt_run(cmd);
    ck_assert_msg(rc == 0, "%s failed (%d); see build/gen_onnx_models.log", script, rc);
    return buf;
}

/* Our eval-mode forward of `model` on `x`; returns the output (caller frees). */
static float *our_forward(const char *model, const st_npy *x, size_t *n) {
    st_onnx_model *m = NULL;
    st_error err = {0};
    ck_assert_msg(st_onnx_read_file(model, &m, &err) == ST_OK, "%s", err.msg);
    st_graph *g = NULL;
    ck_assert_msg(st_onnx_import(m, NULL, &g, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    st_shape in = g->values[g->input];
    int N = (int)x->shape[0];
    ck_assert_uint_eq(x->numel, (size_t)N * st_shape_numel(in));
    st_exec e;
    ck_assert_msg(st_exec_plan(&e, g, N, 0, &err) == ST_OK, "%s", err.msg);
    memcpy(st_exec_input(&e), x->data, x->numel * sizeof(float));
    st_exec_forward(&e, N, 0);
    *n = (size_t)N * st_shape_numel(g->values[g->output]);
    float *y = malloc(*n * sizeof(float));
    memcpy(y, st_exec_output(&e), *n * sizeof(float));
    st_exec_free(&e);
    st_graph_free(g);
    return y;
}

START_TEST(pytorch_vs_ort) {
    if (!stt_need_peers()) return;
    char dir[512], tmp[512], in[700], model[700], ref[700], out[800];
    models_dir(dir, sizeof dir);
    stt_tmpdir(tmp, sizeof tmp, "onnxinterop");
    const char *name = names[_i];
    snprintf(in, sizeof in, "%s/%s_in.npy", dir, name);
    st_npy x, y;
    st_error err = {0};
    ck_assert_msg(st_npy_read(in, &x, &err) == ST_OK, "%s", err.msg);
    for (int train = 0; train < 2; train++) {
        snprintf(model, sizeof model, "%s/%s_%s.onnx", dir, name, train ? "train" : "eval");
        /* ORT runs the training export made deterministic (BN inference, no dropout) */
        snprintf(ref, sizeof ref, "%s/%s_%s.onnx", dir, name, train ? "train_ref" : "eval");
        snprintf(out, sizeof out, "%s/%s_%d_ort.npy", tmp, name, train);
        ck_assert_msg(stt_ort_run(ref, in, out) == 0, "ONNX Runtime failed on %s", ref);
        ck_assert_msg(st_npy_read(out, &y, &err) == ST_OK, "%s", err.msg);
        size_t n;
        float *ours = our_forward(model, &x, &n);
        ck_assert_uint_eq(n, y.numel);
        double e = stt_max_rel_err(ours, y.data, n, 1e-5, 1e-4);
        fprintf(stderr, "onnx interop %-14s %-5s max error %.3g of tolerance (1e-5 abs + 1e-4 rel)\n",
                name, train ? "train" : "eval", e);
        ck_assert_msg(e <= 1.0, "%s: %.3g x tolerance", model, e);
        free(ours);
        st_npy_free(&y);
    }
    st_npy_free(&x);
}
END_TEST

Suite *onnx_interop_suite(void) {
    Suite *s = suite_create("onnx_interop");
    TCase *tc = tcase_create("interop");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, pytorch_vs_ort, 0, N_MODELS);
    suite_add_tcase(s, tc);
    return s;
}
