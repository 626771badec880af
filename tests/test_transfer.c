/* Transfer learning through the real binaries: a sparse model pretrained on Fashion-MNIST
 * classes 0-4 (a checkpoint, our ONNX export, a one-shot pruned ONNX) fine-tuned on other
 * classes. The sparse transfer keeps exactly the pretrained zero pattern in every layer
 * but the head (checked on the exported ONNX files), heads that do not fit the classes are
 * re-created, and files that do not fit are refused with exit 2 and a message that says
 * why. A detector variant re-creates the three Detect convolutions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_image.h"
#include "st_onnx.h"
#include "st_test_util.h"

static st_graph *load_onnx(const char *path) {
    st_onnx_model *m = NULL;
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_msg(st_onnx_read_file(path, &m, &err) == ST_OK, "%s", err.msg);
    ck_assert_msg(st_onnx_import(m, NULL, &g, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    return g;
}

static int is_head(const char *name, const char *const *heads) {
    for (; *heads; heads++)
        if (!strncmp(name, *heads, strlen(*heads))) return 1;
    return 0;
}

/* Every prunable weight of `pre` but the head's has the same zeros in `post`, and the
 * values moved (training happened). Returns the pretrained sparsity of those weights. */
static double assert_same_zeros(const char *pre_path, const char *post_path,
                                const char *const *heads) {
    st_graph *a = load_onnx(pre_path), *b = load_onnx(post_path);
    size_t zeros = 0, total = 0, moved = 0;
    int layers = 0;
    for (int p = 0; p < a->n_params; p++) {
        const st_param *pa = &a->params[p];
        if (!pa->prunable || is_head(pa->name, heads)) continue;
        int q = st_graph_find_param(b, pa->name);
        ck_assert_msg(q >= 0, "%s missing in %s", pa->name, post_path);
        ck_assert_uint_eq(b->params[q].numel, pa->numel);
        const float *x = st_param_data(a, p), *y = st_param_data(b, q);
        for (size_t i = 0; i < pa->numel; i++) {
            ck_assert_msg((x[i] == 0.0f) == (y[i] == 0.0f), "%s[%zu]: pretrained %g, after transfer %g",
                          pa->name, i, x[i], y[i]);
            zeros += x[i] == 0.0f;
            moved += x[i] != y[i];
        }
        total += pa->numel;
        layers++;
    }
    ck_assert_int_gt(layers, 0);
    ck_assert_msg(moved > (total - zeros) / 2, "only %zu of %zu nonzero weights changed: no training?",
                  moved, total - zeros);
    st_graph_free(a);
    st_graph_free(b);
    return (double)zeros / (double)total;
}

static void fmnist_set(const char *dir, const char *name, const char *classes, int train, int val) {
    char args[1024], out[4096];
    snprintf(args, sizeof args, "--out %s/%s --classes %s --train %d --val %d --force", dir, name,
             classes, train, val);
    ck_assert_msg(stt_run_tool("fmnist_to_png", args, out, sizeof out) == 0, "%s", out);
}

static void run_ok(const char *args, char *out, size_t cap) {
    ck_assert_msg(stt_run_sparsetrain(args, out, cap) == 0, "sparsetrain %s\n%s", args, out);
}

static void run_bad(const char *args, const char *expect) {
    char out[16384];
    int rc = stt_run_sparsetrain(args, out, sizeof out);
    ck_assert_msg(rc == 2 && strstr(out, expect), "sparsetrain %s: exit %d, expected 2 and '%s':\n%s",
                  args, rc, expect, out);
}

static const char *const cnn_head[] = {"model.7.", NULL};
#define COMMON "--threads 2 --no-progress --batch 32"

START_TEST(classifier_sparse_transfer) {
    char dir[512], args[4096], out[65536], pre[600], post[600];
    stt_tmpdir(dir, sizeof dir, "transfer");
    fmnist_set(dir, "fm04", "0-4", 600, 100);
    fmnist_set(dir, "fm59", "5-9", 300, 100);
    /* pretrained: GMP to 90% in two short epochs */
    char recipe[600];
    stt_source_path(recipe, sizeof recipe, "recipes/classifier90.yaml");
    snprintf(args, sizeof args, "--data %s/fm04 --recipe %s --recipe-args '{\"num_epochs\": 2, "
             "\"warmup_epochs\": 0.2, \"pruning_start\": 0.2, \"pruning_end\": 1.2}' %s --out %s/pre",
             dir, recipe, COMMON, dir);
    run_ok(args, out, sizeof out);

    /* sparse transfer from the checkpoint: 5 classes again, so the head fits and is kept */
    stt_source_path(recipe, sizeof recipe, "recipes/transfer.yaml");
    snprintf(args, sizeof args, "--data %s/fm59 --model %s/pre/last.ckpt --recipe %s --recipe-args "
             "'{\"num_epochs\": 2}' %s --out %s/sparse", dir, dir, recipe, COMMON, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "loaded 14 of 14 parameters by name") && strstr(out, "head fits"), "%s", out);
    snprintf(pre, sizeof pre, "%s/pre/model.onnx", dir);
    snprintf(post, sizeof post, "%s/sparse/model.onnx", dir);
    static const char *const none[] = {NULL};
    double sp = assert_same_zeros(pre, post, none); /* the kept head too */
    ck_assert_msg(sp > 0.85, "pretrained sparsity %.3f", sp);

    /* --reset-head: the Linear is re-created (fresh, dense), the rest keeps its zeros */
    snprintf(args, sizeof args, "--data %s/fm59 --model %s/pre/last.ckpt --recipe %s --recipe-args "
             "'{\"num_epochs\": 2}' --reset-head %s --out %s/reset", dir, dir, recipe, COMMON, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "re-created model.7.weight [5x128]: --reset-head"), "%s", out);
    snprintf(post, sizeof post, "%s/reset/model.onnx", dir);
    assert_same_zeros(pre, post, cnn_head);

    /* ten classes: the head no longer fits and is re-created; from the ONNX export too */
    char idx[512];
    stt_make_idx_dataset(idx, sizeof idx);
    snprintf(args, sizeof args, "--data %s --model %s/pre/last.ckpt --recipe %s --recipe-args "
             "'{\"num_epochs\": 2}' %s --out %s/ten", idx, dir, recipe, COMMON, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "re-created model.7.weight [10x128]: the pretrained one is [5x128]") &&
                  strstr(out, "re-created model.7.bias [10]") && strstr(out, "loaded 12 of 14"), "%s", out);
    snprintf(post, sizeof post, "%s/ten/model.onnx", dir);
    assert_same_zeros(pre, post, cnn_head);
    snprintf(args, sizeof args, "--data %s --model %s --recipe %s --recipe-args "
             "'{\"num_epochs\": 2}' %s --out %s/ten-onnx", idx, pre, recipe, COMMON, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "re-created model.7.weight (Gemm, 5 -> 10 outputs)"), "%s", out);
    snprintf(post, sizeof post, "%s/ten-onnx/model.onnx", dir);
    assert_same_zeros(pre, post, cnn_head);
    /* the imported model resumes from its checkpoint alone (architecture stored) */
    snprintf(args, sizeof args, "--data %s --model %s/ten-onnx/last.ckpt --epochs 1 %s --out %s/again",
             idx, dir, COMMON, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "head fits") && strstr(out, "note:") && strstr(out, "fills them in"), "%s", out);
}
END_TEST

START_TEST(bad_pretrained_inputs) {
    char dir[512], args[4096], out[65536];
    stt_tmpdir(dir, sizeof dir, "transfer-bad");
    fmnist_set(dir, "fm04", "0-4", 200, 50);
    fmnist_set(dir, "one", "3", 50, 20);
    snprintf(args, sizeof args, "--data %s/fm04 --epochs 1 %s --out %s/pre", dir, COMMON, dir);
    run_ok(args, out, sizeof out);
    /* an RGB classification set */
    for (int c = 0; c < 2; c++)
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < 4; i++) {
                char path[700];
                snprintf(path, sizeof path, "%s/rgb/%s/c%d", dir, s ? "val" : "train", c);
                snprintf(args, sizeof args, "mkdir -p %s", path);
                ck_assert_int_eq(stt_run(args), 0);
                snprintf(path + strlen(path), sizeof path - strlen(path), "/%d.png", i);
                uint8_t px[28 * 28 * 3];
                for (int k = 0; k < 28 * 28 * 3; k++) px[k] = (uint8_t)(k * (c + 1) + i);
                st_image im = {3, 28, 28, px};
                st_error err = {0};
                ck_assert_msg(st_png_write(path, &im, &err) == ST_OK, "%s", err.msg);
            }
    char tiny[512];
    stt_tmpdir(tiny, sizeof tiny, "transfer-det");
    snprintf(args, sizeof args, "--out %s/imgs --size 64 --train 8 --val 4 --force", tiny);
    ck_assert_msg(stt_run_tool("make_fashion_mosaic", args, out, sizeof out) == 0, "%s", out);

    snprintf(args, sizeof args, "--data %s/one --model %s/pre/last.ckpt %s --out %s/x1", dir, dir, COMMON, dir);
    run_bad(args, "the dataset has 1 class; a classifier needs at least 2");
    snprintf(args, sizeof args, "--data %s/rgb --model %s/pre/last.ckpt %s --out %s/x2", dir, dir, COMMON, dir);
    run_bad(args, "takes 1-channel images, the dataset's are 3-channel: add --channels 1");
    snprintf(args, sizeof args, "--data %s/fm04 --model %s/pre/model.onnx --channels 3 %s --out %s/x3", dir,
             dir, COMMON, dir);
    run_bad(args, "--channels 3, but");
    snprintf(args, sizeof args, "--data %s/imgs --model %s/pre/last.ckpt %s --out %s/x4", tiny, dir, COMMON, dir);
    run_bad(args, "is a classifier, the dataset is for detection");
    snprintf(args, sizeof args, "--data %s/imgs --model yolov5n --pretrained %s/pre/last.ckpt %s --out %s/x5",
             tiny, dir, COMMON, dir);
    run_bad(args, "is a classifier, the dataset is for detection");
    /* our export folds BatchNorm: its names do not cover the built-in model's */
    snprintf(args, sizeof args, "--data %s/fm04 --model cnn-small --pretrained %s/pre/model.onnx %s --out %s/x6",
             dir, dir, COMMON, dir);
    run_bad(args, "BatchNorm was folded away");
    snprintf(args, sizeof args, "--data %s/fm04 --model %s/nothere.ckpt %s --out %s/x7", dir, dir, COMMON, dir);
    run_bad(args, "nothere.ckpt");
    snprintf(args, sizeof args, "--data %s/fm04 --model %s/pre/metrics.csv %s --out %s/x8", dir, dir, COMMON, dir);
    run_bad(args, "metrics.csv");
    snprintf(args, sizeof args, "--data %s/fm04 --model %s/pre/model.onnx --pretrained %s/pre/last.ckpt %s "
             "--out %s/x9", dir, dir, dir, COMMON, dir);
    run_bad(args, "--pretrained needs a built-in --model");
}
END_TEST

/* yolov5n pruned on classes 0-4, transferred to three other classes: the Detect convs are
 * re-created for 3 x (5 + 3) channels, every other layer keeps its zeros; a yolov5s
 * refuses the yolov5n checkpoint. */
START_TEST(detector_sparse_transfer) {
    char dir[512], args[4096], out[65536], recipe[600], pre[700], post[700];
    stt_tmpdir(dir, sizeof dir, "transfer-yolo");
    snprintf(args, sizeof args, "--out %s/d04 --classes 0-4 --size 64 --train 16 --val 8 --force", dir);
    ck_assert_msg(stt_run_tool("make_fashion_mosaic", args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "--out %s/d579 --classes 5,7,9 --size 64 --train 16 --val 8 --force --seed 3", dir);
    ck_assert_msg(stt_run_tool("make_fashion_mosaic", args, out, sizeof out) == 0, "%s", out);
    stt_source_path(recipe, sizeof recipe, "recipes/yolo95-quick.yaml");
    snprintf(args, sizeof args, "--data %s/d04 --recipe %s --imgsz 64 --batch 8 --threads 2 --no-progress "
             "--out %s/pre", dir, recipe, dir);
    run_ok(args, out, sizeof out);
    stt_source_path(recipe, sizeof recipe, "recipes/yolo-transfer.yaml");
    snprintf(args, sizeof args, "--data %s/d579 --model %s/pre/last.ckpt --recipe %s --recipe-args "
             "'{\"num_epochs\": 2}' --imgsz 64 --batch 8 --threads 2 --no-progress --out %s/sparse",
             dir, dir, recipe, dir);
    run_ok(args, out, sizeof out);
    ck_assert_msg(strstr(out, "re-created model.24.m.0.weight [24x64x1x1]: the pretrained one is [30x64x1x1]") &&
                  strstr(out, "re-created model.24.m.2.bias [24]"), "%s", out);
    snprintf(pre, sizeof pre, "%s/pre/model.onnx", dir);
    snprintf(post, sizeof post, "%s/sparse/model.onnx", dir);
    static const char *const heads[] = {"model.24.", NULL};
    double sp = assert_same_zeros(pre, post, heads);
    ck_assert_msg(sp > 0.9, "pretrained body sparsity %.3f", sp);
    snprintf(args, sizeof args, "--data %s/d579 --model yolov5s --pretrained %s/pre/last.ckpt --imgsz 64 "
             "--threads 2 --no-progress --out %s/x", dir, dir, dir);
    run_bad(args, "holds a yolov5n, not a yolov5s");
}
END_TEST

Suite *transfer_suite(void) {
    Suite *s = suite_create("transfer");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, classifier_sparse_transfer);
    tcase_add_test(tc, bad_pretrained_inputs);
    tcase_add_test(tc, detector_sparse_transfer);
    suite_add_tcase(s, tc);
    return s;
}
