/* The detector end to end through the real binaries, on a tiny fashion-mosaic set:
 * training writes every output (checkpoints, metrics with mAP columns, summary.json,
 * model.onnx, report.html), a run stopped and resumed ends bit-identical to an
 * uninterrupted one (mosaic augmentation and EMA included), `eval` repeats the last
 * epoch's mAP, `predict` writes annotated PNGs and a detection list, and the report
 * renders in headless Chromium. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_npy.h"
#include "st_test_util.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static const char *tiny_set(char *dir, size_t cap) {
    stt_tmpdir(dir, cap, "detect");
    char args[2048], out[4096];
    snprintf(args, sizeof args, "--out %s/imgs --size 96 --train 48 --val 16 --force", dir);
    ck_assert_msg(stt_run_tool("make_fashion_mosaic", args, out, sizeof out) == 0, "%s", out);
    return dir;
}

/* The last row's value of a metrics.csv column. */
static double csv_last(const char *path, const char *col) {
    char *s = slurp(path);
    ck_assert_ptr_nonnull(s);
    int idx = -1, k = 0;
    char *line = strtok(s, "\n"), *last = NULL;
    for (char *c = line, *tok; (tok = strsep(&c, ",")); k++)
        if (!strcmp(tok, col)) idx = k;
    ck_assert_int_ge(idx, 0);
    while ((line = strtok(NULL, "\n"))) last = line;
    ck_assert_ptr_nonnull(last);
    double v = 0;
    k = 0;
    for (char *c = last, *tok; (tok = strsep(&c, ",")); k++)
        if (k == idx) v = atof(tok);
    free(s);
    return v;
}

START_TEST(train_outputs_resume_eval_predict) {
    char dir[512], args[4096], out[65536], path[1024];
    tiny_set(dir, sizeof dir);
    const char *common = "--epochs 2 --batch 8 --threads 2 --no-progress --imgsz 96";
    snprintf(args, sizeof args, "--data %s/imgs %s --out %s/full", dir, common, dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "yolov5n (detect)") && strstr(out, "mAP50") && strstr(out, "AP50-95"), "%s", out);
    const char *files[] = {"last.ckpt", "best.ckpt", "metrics.csv", "summary.json", "model.onnx", "report.html"};
    for (int i = 0; i < 6; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/full/%s", dir, files[i]);
        ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "missing %s", path);
    }
    snprintf(path, sizeof path, "%s/full/summary.json", dir);
    char *js = slurp(path);
    ck_assert_msg(strstr(js, "\"task\": \"detect\"") && strstr(js, "\"mAP50\":") && strstr(js, "\"mAP50_95\":"), "%s", js);
    free(js);
    snprintf(path, sizeof path, "%s/full/metrics.csv", dir);
    double map50 = csv_last(path, "mAP50");
    ck_assert(map50 >= 0 && map50 <= 1);

    /* stopped after epoch 1 and resumed: the same weights, EMA and history */
    snprintf(args, sizeof args, "--data %s/imgs %s --out %s/part --stop-after 1", dir, common, dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "--resume %s/part/last.ckpt --threads 2 --no-progress", dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/full/last.ckpt", dir);
    snprintf(b, sizeof b, "%s/part/last.ckpt", dir);
    stt_assert_same_ckpt(a, b);

    /* eval alone gives the last epoch's mAP (same EMA weights, same val pipeline) */
    snprintf(args, sizeof args, "eval --checkpoint %s/full/last.ckpt --data %s/imgs --batch 8", dir, dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "%.4f", map50);
    ck_assert_msg(strstr(out, want), "eval should report mAP50 %s: %s", want, out);

    /* predict from the ONNX export: annotated PNGs and the list */
    snprintf(args, sizeof args, "predict --model %s/full/model.onnx %s/imgs/images/val/000000.png "
             "%s/imgs/images/val/000001.png --out %s/pred --conf 0.0001", dir, dir, dir, dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/pred/000001.png", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/pred/detections.txt", dir);
    char *det = slurp(path);
    ck_assert_ptr_nonnull(det);
    ck_assert_msg(strstr(det, "000000.png "), "%s", det); /* conf 1e-4: some boxes */
    free(det);
    /* the engine runs the export: one .npy per head (batch 2), and an image's detections */
    static float x[2 * 3 * 96 * 96];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)((i * 29) % 97) / 97.0f;
    int64_t xs[4] = {2, 3, 96, 96};
    st_error err = {0};
    snprintf(path, sizeof path, "%s/x.npy", dir);
    ck_assert_int_eq(st_npy_write(path, 4, xs, x, &err), ST_OK);
    snprintf(args, sizeof args, "run %s/full/model.onnx --input %s --output %s/y.npy", dir, path, dir);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0, "%s", out);
    int heads = 0;
    for (char *w = out; (w = strstr(w, "wrote ")); heads++) {
        char file[1024];
        ck_assert_int_eq(sscanf(w, "wrote %1023[^:]:", file), 1);
        /* y.<output name>.npy next to the given y.npy */
        const size_t fl = strlen(file);
        ck_assert_msg(fl > 6 && !strcmp(file + fl - 4, ".npy") && strncmp(file + fl - 5, "..", 2) &&
                      strstr(file, "/y.") && strcmp(strstr(file, "/y."), "/y.npy"), "%s", file);
        w += 6;
        st_npy y = {0};
        ck_assert_msg(st_npy_read(file, &y, &err) == ST_OK, "%s", err.msg);
        const int stride = 8 << heads; /* heads in the export's order: strides 8, 16, 32 */
        ck_assert_msg(y.ndim == 4 && y.shape[0] == 2 && y.shape[1] == 3 * (5 + 10) &&
                      y.shape[2] == 96 / stride && y.shape[3] == 96 / stride, "%s: %s", file, out);
        st_npy_free(&y);
    }
    ck_assert_msg(heads == 3, "%s", out);
    snprintf(args, sizeof args, "run %s/full/model.onnx --image %s/imgs/images/val/000000.png", dir, dir);
    ck_assert_msg(stt_run_tool("sparseengine", args, out, sizeof out) == 0 &&
                  strstr(out, "detections (conf >= 0.25"), "%s", out);

    /* bad input: a missing image is reported by name, exit 2 */
    snprintf(args, sizeof args, "predict --checkpoint %s/full/last.ckpt %s/none.png --out %s/pred", dir, dir, dir);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "none.png"));
}
END_TEST

/* report.html of a real run renders in headless Chromium: charts, tables, images. */
START_TEST(report_renders) {
    if (stt_run("command -v chromium >/dev/null 2>&1 || " ST_SOURCE_DIR
                "/tools/install-deps.sh --peers >/dev/null 2>&1; command -v chromium >/dev/null 2>&1")) {
        stt_skip("chromium could not be installed; report rendering skipped");
        return;
    }
    char dir[512], args[4096], out[65536], dom[1024], cmd[8192];
    tiny_set(dir, sizeof dir);
    snprintf(args, sizeof args, "--data %s/imgs --epochs 1 --batch 8 --threads 2 --no-progress --imgsz 96 --out %s/r",
             dir, dir);
    ck_assert_msg(stt_run_sparsetrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(dom, sizeof dom, "%s/dom.html", dir);
    snprintf(cmd, sizeof cmd, "timeout 120 chromium --headless --no-sandbox --disable-gpu "
             "--disable-dev-shm-usage --no-first-run --user-data-dir='%s/profile' --dump-dom "
             "'file://%s/r/report.html' >'%s' 2>/dev/null", dir, dir, dom);
    ck_assert_int_eq(stt_run(cmd), 0);
    char *text = slurp(dom);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "<svg") && strstr(text, "model.24.m.2.weight") &&
                  strstr(text, "data:image/png;base64,") && strstr(text, "mAP50"), "%.2000s", text);
    free(text);
}
END_TEST

Suite *detect_cli_suite(void) {
    Suite *s = suite_create("detect_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, train_outputs_resume_eval_predict);
    tcase_add_test(tc, report_renders);
    suite_add_tcase(s, tc);
    return s;
}
