/* The ONNX paths of the command-line tools: a training run exports model.onnx, `export`
 * rebuilds a checkpoint's model, `--model file.onnx` trains an imported model (and
 * resumes it from its checkpoint alone), `sparseengine info/run` read any of them, and
 * bad files exit 2 with the file named. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_image.h"
#include "st_npy.h"
#include "st_test_util.h"

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Copies the first `keep` bytes of src to dst. */
static void truncate_copy(const char *src, const char *dst, long keep) {
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = malloc(keep);
    ck_assert_int_eq(fread(buf, 1, keep, f), keep);
    fclose(f);
    write_file(dst, buf, keep);
    free(buf);
}

START_TEST(train_export_import_resume) {
    char data[512], args[4096], out[16384], path[1024], p2[1024];
    stt_make_idx_dataset(data, sizeof data);
    /* 1. a run exports its final model */
    snprintf(args, sizeof args, "--data %s --epochs 1 --batch 32 --threads 2 --out %s/a --no-progress", data, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/a/model.onnx", data);
    ck_assert_msg(exists(path) && strstr(out, "model.onnx"), "%s", out);
    snprintf(args, sizeof args, "info %s", path);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "Conv") && strstr(out, "Gemm") && strstr(out, "opset"), "%s", out);
    ck_assert_msg(!strstr(out, "BatchNormalization"), "BN should be folded: %s", out);

    /* 2. export with BatchNorm kept */
    snprintf(p2, sizeof p2, "%s/a/keep.onnx", data);
    snprintf(args, sizeof args, "export --checkpoint %s/a/last.ckpt --out %s --keep-bn", data, p2);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "info %s", p2);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "BatchNormalization"), "%s", out);

    /* 3. train the exported model as --model, stop after one epoch, resume from the
     * checkpoint alone, export the result */
    snprintf(args, sizeof args,
             "--data %s --model %s --epochs 2 --stop-after 1 --batch 32 --threads 2 --out %s/b --no-progress",
             data, path, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "onnx:model"), "%s", out);
    snprintf(args, sizeof args, "--resume %s/b/last.ckpt --threads 2 --no-progress", data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "epoch 2/2"), "%s", out);
    snprintf(args, sizeof args, "export --checkpoint %s/b/last.ckpt --out %s/b/e.onnx", data, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/b/model.onnx", data);
    ck_assert(exists(path));

    /* 3b. one-shot pruning of the exported model by a recipe's final sparsities */
    snprintf(args, sizeof args, "oneshot --recipe %s/recipes/classifier90.yaml --model %s/a/model.onnx --out %s/a/p90.onnx",
             ST_SOURCE_DIR, data, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "info %s/a/p90.onnx", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "model.2.conv.weight") && strstr(out, "90.00%") &&
                  strstr(out, "sparsetrain.recipe"), "%s", out);
    snprintf(args, sizeof args, "oneshot --recipe %s/recipes/classifier90.yaml --model %s/none.onnx --out %s/x.onnx",
             ST_SOURCE_DIR, data, data);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, sizeof out), 2);

    /* 3c. the engine's benchmark and image front end on the exported model */
    snprintf(args, sizeof args, "bench %s/a/p90.onnx -b 2 -t 0.3 -w 0 -ncores 2 -x %s/b.json", data, data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "Throughput (items/sec): ") && strstr(out, "Latency Median (ms/batch): ") &&
                  strstr(out, "Iterations: ") && strstr(out, "Batch Size: 2") &&
                  strstr(out, "Thread Round Trip (ns): "), "%s", out);
    snprintf(path, sizeof path, "%s/b.json", data);
    FILE *jf = fopen(path, "r");
    ck_assert_ptr_nonnull(jf);
    char js[2048] = "";
    ck_assert_uint_gt(fread(js, 1, sizeof js - 1, jf), 0);
    fclose(jf);
    ck_assert_msg(strstr(js, "\"latency_percentiles_ms\": {\"50\"") && strstr(js, "\"99\"") &&
                  strstr(js, "\"thread_roundtrip_ns\": {\"before\": "), "%s", js);
    snprintf(args, sizeof args, "bench %s/a/p90.onnx -b 0", data);
    ck_assert_int_eq(stt_run_tool("sparseengine", args, out, sizeof out), 2);
    /* run --image on a classifier export: top classes from the compiled engine */
    {
        st_image im;
        st_error ie = {0};
        ck_assert_int_eq(st_image_alloc(&im, 1, 28, 28), ST_OK);
        for (int i = 0; i < 28 * 28; i++) im.data[i] = (uint8_t)((i * 7) % 251);
        snprintf(path, sizeof path, "%s/img.png", data);
        ck_assert_int_eq(st_png_write(path, &im, &ie), ST_OK);
        st_image_free(&im);
        snprintf(args, sizeof args, "run %s/a/p90.onnx --image %s --threads 2", data, path);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0 &&
                      strstr(out, "top classes (softmax of the 10 outputs)"), "%s", out);
        snprintf(args, sizeof args, "run %s/a/p90.onnx --image %s/none.png", data, data);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 2 && strstr(out, "none.png"), "%s", out);
    }
    /* bench --profile: per-step times next to the plan lines */
    snprintf(args, sizeof args, "bench %s/a/p90.onnx -t 0.2 -w 0 -ncores 2 --profile", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "Profile (") && strstr(out, "total of the steps") &&
                  strstr(out, "%    2 Conv2d        model.2.conv") && strstr(out, "kernel sparse (90% zeros"), "%s", out);
    /* and each thread's waits at the team's barriers: the first to arrive always waits */
    const char *bw_key = "Barrier waits (mean ms per run, thread 0..1):", *bw = strstr(out, bw_key);
    double w0 = -1, w1 = -1;
    ck_assert_msg(bw && sscanf(bw + strlen(bw_key), "%lf %lf", &w0, &w1) == 2 &&
                      w0 >= 0 && w1 >= 0 && w0 + w1 > 0, "%s", out);
    snprintf(args, sizeof args, "bench %s/a/p90.onnx -t 0.1 -w 0 -ncores 1 --profile", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0 && strstr(out, "total of the steps") &&
                  !strstr(out, "Barrier waits"), "%s", out);
    /* info --plan: the compiled plan with the kernel choices and their reasons */
    snprintf(args, sizeof args, "info %s/a/p90.onnx --plan -b 2 -ncores 1", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "plan: ") && strstr(out, "batch 2, 1 thread") && strstr(out, "kernel sparse (90% zeros") &&
                  strstr(out, "epilogue[relu]") && strstr(out, "tile layer"), "%s", out);
    /* (NCHW maps: with blocked ones, a section of as many bands as threads runs as layers) */
    snprintf(args, sizeof args, "info %s/a/p90.onnx --plan --dense --schedule columns -ncores 2 --maps nchw --l2 16", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "schedule columns") && strstr(out, "tile columns[section 0") &&
                  strstr(out, "(dense requested)") && !strstr(out, "kernel sparse") && strstr(out, "L2 16 KiB"), "%s", out);
    /* --l2 takes a whole number of KiB, at least 1 */
    const char *bad_l2[] = {"0", "-5", "1k", ""};
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "info %s/a/p90.onnx --plan --schedule columns --l2 '%s'", data, bad_l2[i]);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 2 && strstr(out, "--l2"), "%s: %s", bad_l2[i], out);
    }
    snprintf(args, sizeof args, "info %s/a/p90.onnx --plan --schedule diagonal", data);
    ck_assert_int_eq(stt_run_tool("sparseengine", args, out, sizeof out), 2);
    /* --maps: nchw says no blocked maps; an unknown layout is bad input */
    snprintf(args, sizeof args, "info %s/a/p90.onnx --plan -ncores 2 --maps nchw", data);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0 && !strstr(out, "maps: blocked") &&
                  !strstr(out, "maps["), "%s", out);
    snprintf(args, sizeof args, "info %s/a/p90.onnx --plan --maps nhwc", data);
    ck_assert_int_eq(stt_run_tool("sparseengine", args, out, sizeof out), 2);

    /* 4. sparseengine run agrees with ONNX Runtime on both files */
    float x[3 * 28 * 28];
    for (int i = 0; i < 3 * 28 * 28; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    int64_t shape[4] = {3, 1, 28, 28};
    char xin[1024], y1[1024], y2[1024];
    snprintf(xin, sizeof xin, "%s/x.npy", data);
    st_error err = {0};
    ck_assert_int_eq(st_npy_write(xin, 4, shape, x, &err), ST_OK);
    const char *models[2] = {"b/e.onnx", "a/keep.onnx"};
    for (int m = 0; m < 2; m++) {
        snprintf(path, sizeof path, "%s/%s", data, models[m]);
        snprintf(y1, sizeof y1, "%s/y_ours.npy", data);
        snprintf(args, sizeof args, "run %s --input %s --output %s", path, xin, y1);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
        /* the column schedule, the input given by name: the same output within 1e-5 */
        snprintf(y2, sizeof y2, "%s/y_col.npy", data);
        snprintf(args, sizeof args, "run %s --input input=%s --output %s --schedule columns --threads 2", path, xin, y2);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
        {
            st_npy a, b;
            ck_assert_int_eq(st_npy_read(y1, &a, &err), ST_OK);
            ck_assert_int_eq(st_npy_read(y2, &b, &err), ST_OK);
            ck_assert_uint_eq(a.numel, b.numel);
            STT_ASSERT_CLOSE(a.data, b.data, a.numel, 1e-5, 1e-5);
            st_npy_free(&a), st_npy_free(&b);
        }
        snprintf(args, sizeof args, "run %s --input pixels=%s", path, xin);
        ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 2 &&
                      strstr(out, "no input named 'pixels'; its input is 'input'"), "%s", out);
        if (!stt_need_peers()) continue;
        snprintf(y2, sizeof y2, "%s/y_ort.npy", data);
        ck_assert_int_eq(stt_ort_run(path, xin, y2), 0);
        ck_assert_int_eq(stt_onnx_check(path), 0);
        st_npy a, b;
        ck_assert_int_eq(st_npy_read(y1, &a, &err), ST_OK);
        ck_assert_int_eq(st_npy_read(y2, &b, &err), ST_OK);
        ck_assert_int_eq(a.ndim, 2);
        ck_assert_int_eq(b.ndim, 2);
        ck_assert_uint_eq(a.numel, 30);
        ck_assert_uint_eq(b.numel, 30);
        STT_ASSERT_CLOSE(a.data, b.data, a.numel, 1e-5, 1e-4);
        st_npy_free(&a), st_npy_free(&b);
    }
}
END_TEST

START_TEST(bad_onnx_files_exit_2) {
    char data[512], args[4096], out[16384], bad[1024], good[1024];
    stt_make_idx_dataset(data, sizeof data);
    snprintf(args, sizeof args, "--data %s --epochs 1 --train-limit 64 --batch 32 --threads 2 --out %s/a --no-progress", data, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(good, sizeof good, "%s/a/model.onnx", data);
    snprintf(bad, sizeof bad, "%s/trunc.onnx", data);
    truncate_copy(good, bad, 3000);
    const char *cmds[] = {"sparseengine info %s", "sparseengine run %s --input x.npy",
                          "sparsetrain --data DATA --model %s --epochs 1"};
    for (int c = 0; c < 3; c++) {
        char fmt[256];
        snprintf(fmt, sizeof fmt, "%s", strchr(cmds[c], ' ') + 1);
        char *d = strstr(fmt, "DATA");
        char a2[2048];
        if (d) {
            *d = 0;
            snprintf(a2, sizeof a2, "%s%s%s", fmt, data, d + 4);
        } else {
            snprintf(a2, sizeof a2, "%s", fmt);
        }
        snprintf(args, sizeof args, a2, bad);
        int rc = stt_run_tool(strncmp(cmds[c], "sparseengine", 12) ? "sparsetrain" : "sparseengine",
                              args, out, sizeof out);
        ck_assert_msg(rc == 2 && strstr(out, "trunc.onnx"), "%s -> %d: %s", args, rc, out);
    }
    /* random bytes */
    unsigned char junk[4096];
    for (int i = 0; i < (int)sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
    write_file(bad, junk, sizeof junk);
    snprintf(args, sizeof args, "info %s", bad);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 2, "%s", out);
    /* a missing file, and an array of the wrong shape */
    snprintf(args, sizeof args, "info %s/none.onnx", data);
    ck_assert_int_eq(stt_run_tool("sparseengine", args, out, sizeof out), 2);
    float x[2 * 3 * 8 * 8] = {0};
    int64_t shape[4] = {2, 3, 8, 8};
    char xin[1024];
    snprintf(xin, sizeof xin, "%s/wrong.npy", data);
    st_error err = {0};
    ck_assert_int_eq(st_npy_write(xin, 4, shape, x, &err), ST_OK);
    snprintf(args, sizeof args, "run %s --input %s", good, xin);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 2 && strstr(out, "wrong.npy"), "%s", out);
    /* export of something that is not a checkpoint */
    snprintf(args, sizeof args, "export --checkpoint %s --out %s/o.onnx", good, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 2, "%s", out);
    snprintf(args, sizeof args, "export --checkpoint %s/a/last.ckpt", data);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "export --checkpoint %s/a/last.ckpt --out %s/d.onnx --decode", data, data);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 2 && strstr(out, "not a detector"), "%s", out);
}
END_TEST

Suite *onnx_cli_suite(void) {
    Suite *s = suite_create("onnx_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_export_import_resume);
    tcase_add_test(tc, bad_onnx_files_exit_2);
    suite_add_tcase(s, tc);
    return s;
}
