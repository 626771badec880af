/* sparseengine run MODEL.onnx --image IMG.png: preprocessing from the model's metadata
 * (our exports record task, input size, normalisation and class names), a run of the
 * compiled engine, then the top classes of a classifier or the boxes of a detector. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"
#include "st_detect_run.h"
#include "st_image.h"
#include "st_onnx.h"
#include "st_run_files.h"

/* The engine side of one image: model compiled at batch 1, input and output buffers. */
typedef struct engine1 {
    se_model *m;
    se_compiled *c;
    se_context *x;
    float *in, *out[ST_MAX_OUTPUTS];
    int64_t in_dims[4];
} engine1;

static void engine1_free(engine1 *e) {
    for (int k = 0; k < ST_MAX_OUTPUTS; k++) free(e->out[k]);
    free(e->in);
    se_context_free(e->x);
    se_compiled_free(e->c);
    se_model_free(e->m);
}

static int engine1_open(engine1 *e, const char *path, const se_options *opt, char *err, size_t cap) {
    memset(e, 0, sizeof *e);
    se_options o = *opt;
    o.batch = 1;
    int rc = se_load(path, &e->m, err, cap);
    if (!rc) rc = se_compile(e->m, &o, &e->c, err, cap);
    if (!rc) rc = se_context_new(e->c, &e->x, err, cap);
    if (rc) return rc;
    se_input_shape(e->c, e->in_dims);
    if (!(e->in = calloc(se_cli_numel(e->c, -1), sizeof(float))) || se_cli_alloc_outputs(e->c, e->out))
        return snprintf(err, cap, "out of memory"), 4;
    return 0;
}

static int classify(const st_onnx_model *meta, const st_image *img, const engine1 *en) {
    char err[512] = "";
    st_error e = {0};
    char **names = NULL;
    int n_names = 0, rc = 0;
    float mean = 0.45f, std = 0.225f; /* ImageNet-like default when the file does not say */
    const char *norm = st_onnx_metadata(meta, "sparsetrain.normalize");
    if (norm) sscanf(norm, "%f %f", &mean, &std);
    const char *cls = st_onnx_metadata(meta, "sparsetrain.classes");
    if (cls && st_json_parse_string_list(cls, &names, &n_names, &e) != ST_OK) names = NULL, n_names = 0;
    const int C_in = (int)en->in_dims[1], H = (int)en->in_dims[2], W = (int)en->in_dims[3];
    st_image rs;
    if (st_image_alloc(&rs, img->c, H, W) != ST_OK) { rc = 4; snprintf(err, sizeof err, "out of memory"); goto done; }
    st_image_resize_bilinear(img, &rs);
    st_image_to_chw(&rs, C_in, en->in);
    st_image_free(&rs);
    for (size_t i = 0; i < (size_t)C_in * H * W; i++) en->in[i] = (en->in[i] - mean) / std;
    if ((rc = se_run(en->x, en->in, en->out, err, sizeof err))) goto done;
    int64_t od[4];
    int ond = se_output_shape(en->c, 0, od), C = 1;
    for (int j = 1; j < ond; j++) C *= (int)od[j];
    const float *z = en->out[0];
    float mx = z[0];
    for (int k = 1; k < C; k++) mx = z[k] > mx ? z[k] : mx;
    double s = 0;
    for (int k = 0; k < C; k++) s += exp(z[k] - mx);
    int used[5] = {-1, -1, -1, -1, -1};
    printf("top classes (softmax of the %d outputs):\n", C);
    for (int t = 0; t < 5 && t < C; t++) {
        int best = -1;
        for (int k = 0; k < C; k++) {
            int taken = 0;
            for (int u = 0; u < t; u++) taken |= used[u] == k;
            if (!taken && (best < 0 || z[k] > z[best])) best = k;
        }
        used[t] = best;
        printf("  %-20s %d  %.4f\n", best < n_names ? names[best] : "", best, exp(z[best] - mx) / s);
    }
done:
    if (rc) fprintf(stderr, "sparseengine run: error: %s\n", err);
    if (names) st_json_free_list(names, n_names);
    return se_cli_exit(rc);
}

static int detect(const char *model, const st_image *img, const engine1 *en) {
    char err[512] = "";
    st_error e = {0};
    st_detector d; /* the decode configuration and class names of the file */
    st_detect_buf buf = {0};
    int rc = 0;
    if (st_detector_open(NULL, model, &d, &e) != ST_OK) {
        fprintf(stderr, "sparseengine run: error: %s\n", e.msg);
        return st_exit_code(e.code);
    }
    if (st_detect_buf_init(&buf, &d.cfg, &e) != ST_OK) rc = 4, snprintf(err, sizeof err, "%.500s", e.msg);
    st_letterbox lb;
    if (!rc && st_detect_letterbox(&d.cfg, img, (int)en->in_dims[1], en->in, &lb))
        rc = 4, snprintf(err, sizeof err, "out of memory");
    if (!rc) rc = se_run(en->x, en->in, en->out, err, sizeof err);
    if (!rc) {
        const float *out[ST_YOLO_SCALES] = {en->out[0], en->out[1], en->out[2]};
        int n = st_detect_finish(&d.cfg, out, &lb, 0.25f, 0.45f, ST_DET_MAX, &buf);
        printf("%d detections (conf >= 0.25, NMS IoU 0.45), boxes in image pixels:\n", n);
        for (int i = 0; i < n; i++) {
            const st_det *x = &buf.cand[i];
            printf("  %-20s %d  %.3f  %.1f %.1f %.1f %.1f\n", d.names[x->cls], x->cls, x->score, x->x1,
                   x->y1, x->x2, x->y2);
        }
    }
    if (rc) fprintf(stderr, "sparseengine run: error: %s\n", err);
    st_detect_buf_free(&buf);
    st_detector_free(&d);
    return se_cli_exit(rc);
}

int se_cmd_run_image(const char *model, const char *image, const se_options *o) {
    st_error err = {0};
    st_status rc = ST_OK;
    st_image img;
    st_img_problem prob;
    if ((rc = st_png_read(image, 3, &img, &prob, &err)) != ST_OK) {
        fprintf(stderr, "sparseengine run: error: %s\n", err.msg);
        return st_exit_code(rc);
    }
    /* the file once for its metadata, the model compiled once; a file without our task
     * metadata is a detector when it has YOLOv5's three outputs */
    st_onnx_model *meta = NULL;
    engine1 en;
    memset(&en, 0, sizeof en);
    char msg[512] = "";
    int code = 0;
    if ((rc = st_onnx_read_file(model, &meta, &err)) != ST_OK) {
        fprintf(stderr, "sparseengine run: error: %s\n", err.msg);
        code = st_exit_code(rc);
    } else if ((code = engine1_open(&en, model, o, msg, sizeof msg))) {
        fprintf(stderr, "sparseengine run: error: %s\n", msg);
        code = se_cli_exit(code);
    } else {
        const char *task = st_onnx_metadata(meta, "sparsetrain.task");
        const int det = task ? !strcmp(task, "detect") : se_num_outputs(en.c) == 3;
        code = det ? detect(model, &img, &en) : classify(meta, &img, &en);
    }
    engine1_free(&en);
    st_onnx_model_free(meta);
    st_image_free(&img);
    return code;
}
