/* sparsetrain predict (--checkpoint C | --model M.onnx) IMG.png... --out DIR
 *                    [--conf 0.25] [--iou 0.45] [--max-det 300] [--threads N]
 * Runs a detector on images; writes DIR/<image>.png with the boxes drawn and
 * DIR/detections.txt (one line per detection). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli_cmds.h"
#include "st_detect_run.h"
#include "st_draw.h"
#include "st_run_files.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparsetrain predict (--checkpoint CKPT | --model MODEL.onnx) IMG.png...\n"
            "                          --out DIR [--conf 0.25] [--iou 0.45] [--max-det 300]\n"
            "\n"
            "Detects objects in PNG images with a trained YOLO model (a checkpoint of ours, or an\n"
            "ONNX file: ours, or any with YOLOv5's three raw outputs). Writes DIR/<name>.png with\n"
            "boxes, class names and scores, and DIR/detections.txt with one line per detection:\n"
            "  image class_name class score x1 y1 x2 y2   (pixels of the original image)\n");
    return code;
}

static int parse_f(const char *v, float lo, float hi, float *out) {
    char *end;
    float x = strtof(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) return -1;
    *out = x;
    return 0;
}

int st_cmd_predict(int argc, char **argv) {
    const char *ckpt = NULL, *model = NULL, *out = NULL;
    float conf = 0.25f, iou = 0.45f, maxd = 300, threads = 0;
    const char **imgs = calloc((size_t)argc + 1, sizeof *imgs);
    int n_imgs = 0;
    if (!imgs) return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { free(imgs); return usage(stdout, 0); }
        if (a[0] != '-') { imgs[n_imgs++] = a; continue; }
        int bad = !v;
        if (bad) {}
        else if (!strcmp(a, "--checkpoint")) ckpt = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--conf")) bad = parse_f(v, 0, 1, &conf);
        else if (!strcmp(a, "--iou")) bad = parse_f(v, 0, 1, &iou);
        else if (!strcmp(a, "--max-det")) bad = parse_f(v, 1, 100000, &maxd);
        else if (!strcmp(a, "--threads")) bad = parse_f(v, 1, 1024, &threads);
        else bad = 1;
        if (bad) {
            fprintf(stderr, "sparsetrain predict: bad option '%s'%s%s\n(see sparsetrain predict --help)\n",
                    a, v ? " " : "", v ? v : "");
            free(imgs);
            return 2;
        }
        i++;
    }
    if (!(ckpt == NULL) == !(model == NULL) || !out || !n_imgs) {
        fprintf(stderr, "sparsetrain predict: needs one of --checkpoint / --model, --out DIR and "
                        "at least one image\n(see sparsetrain predict --help)\n");
        free(imgs);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    st_error err = {0};
    st_detector d;
    st_detect_buf buf = {0};
    st_exec ex;
    memset(&ex, 0, sizeof ex);
    FILE *txt = NULL;
    int code = 0, done = 0, total = 0;
    st_status rc = st_detector_open(ckpt, model, &d, &err);
    if (rc == ST_OK) rc = st_detect_buf_init(&buf, &d.cfg, &err);
    if (rc == ST_OK) rc = st_exec_plan(&ex, d.g, 1, 0, &err);
    if (rc == ST_OK) rc = st_exec_sparse_repack(&ex, &err);
    if (rc == ST_OK) rc = st_mkdirs(out, &err);
    char path[1200];
    snprintf(path, sizeof path, "%s/detections.txt", out);
    if (rc == ST_OK && !(txt = fopen(path, "w")))
        rc = st_errorf(&err, ST_ERR_IO, "cannot write %s", path);
    if (rc != ST_OK) goto end;
    for (int i = 0; i < n_imgs; i++) {
        st_image im;
        st_img_problem prob;
        st_error ierr = {0};
        if (st_png_read(imgs[i], 3, &im, &prob, &ierr) != ST_OK) {
            fprintf(stderr, "sparsetrain predict: skipped %s\n", ierr.msg);
            code = 2; /* reported, the other images still run */
            continue;
        }
        int n = st_detect_image(&ex, &d.cfg, &im, conf, iou, (int)maxd, &buf);
        const char *base = strrchr(imgs[i], '/');
        base = base ? base + 1 : imgs[i];
        for (int k = 0; k < n; k++) {
            const st_det *x = &buf.cand[k];
            fprintf(txt, "%s %s %d %.4f %.1f %.1f %.1f %.1f\n", base, d.names[x->cls], x->cls,
                    x->score, x->x1, x->y1, x->x2, x->y2);
        }
        st_draw_detections(&im, buf.cand, n, (const char *const *)d.names, d.cfg.nc, 1, 0, 0);
        snprintf(path, sizeof path, "%s/%s", out, base);
        rc = st_png_write(path, &im, &err);
        st_image_free(&im);
        if (rc != ST_OK) goto end;
        printf("%s: %d detections -> %s\n", imgs[i], n, path);
        done++, total += n;
    }
    printf("%d of %d images, %d detections; list in %s/detections.txt\n", done, n_imgs, total, out);
end:
    if (txt && fclose(txt) != 0 && rc == ST_OK) rc = st_errorf(&err, ST_ERR_IO, "writing %s/detections.txt failed", out);
    if (rc != ST_OK) {
        fprintf(stderr, "sparsetrain predict: error: %s\n", err.msg);
        code = st_exit_code(rc);
    }
    st_exec_free(&ex);
    st_detect_buf_free(&buf);
    if (d.g) st_detector_free(&d);
    free(imgs);
    return code;
}
