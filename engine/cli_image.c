/* sparseengine run MODEL.onnx --image IMG.png: preprocessing from the model's metadata
 * (our exports record task, input size, normalisation and class names), then the top
 * classes of a classifier or the boxes of a detector. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"
#include "st_detect_run.h"
#include "st_exec.h"
#include "st_image.h"
#include "st_onnx.h"
#include "st_run_files.h"

static int classify(const char *model, const st_image *img, st_error *err, st_status *rc) {
    st_onnx_model *m = NULL;
    st_graph *g = NULL;
    st_exec e;
    memset(&e, 0, sizeof e);
    char **names = NULL;
    int n_names = 0;
    if ((*rc = st_onnx_read_file(model, &m, err)) != ST_OK) return 0;
    if ((*rc = st_onnx_import(m, NULL, &g, err)) != ST_OK) goto done;
    st_shape in = g->values[g->input], out = g->values[g->output];
    float mean = 0.45f, std = 0.225f; /* ImageNet-like default when the file does not say */
    const char *norm = st_onnx_metadata(m, "sparsetrain.normalize");
    if (norm) sscanf(norm, "%f %f", &mean, &std);
    const char *cls = st_onnx_metadata(m, "sparsetrain.classes");
    if (cls) st_json_parse_string_list(cls, &names, &n_names, err);
    st_image rs;
    if ((*rc = st_image_alloc(&rs, img->c, in.h, in.w)) != ST_OK) goto done;
    st_image_resize_bilinear(img, &rs);
    if ((*rc = st_exec_plan(&e, g, 1, 0, err)) != ST_OK) { st_image_free(&rs); goto done; }
    float *x = st_exec_input(&e);
    st_image_to_chw(&rs, in.c, x);
    st_image_free(&rs);
    for (size_t i = 0; i < st_shape_numel(in); i++) x[i] = (x[i] - mean) / std;
    st_exec_forward(&e, 1, 0);
    int C = (int)st_shape_numel(out);
    const float *z = st_exec_output(&e);
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
    if (names) st_json_free_list(names, n_names);
    st_exec_free(&e);
    st_graph_free(g);
    st_onnx_model_free(m);
    return *rc == ST_OK;
}

static int detect(const char *model, const st_image *img, st_error *err, st_status *rc) {
    st_detector d;
    st_detect_buf buf = {0};
    st_exec e;
    memset(&e, 0, sizeof e);
    if ((*rc = st_detector_open(NULL, model, &d, err)) != ST_OK) return 0;
    if ((*rc = st_detect_buf_init(&buf, &d.cfg, err)) == ST_OK && (*rc = st_exec_plan(&e, d.g, 1, 0, err)) == ST_OK) {
        int n = st_detect_image(&e, &d.cfg, img, 0.25f, 0.45f, ST_DET_MAX, &buf);
        printf("%d detections (conf >= 0.25, NMS IoU 0.45), boxes in image pixels:\n", n);
        for (int i = 0; i < n; i++) {
            const st_det *x = &buf.cand[i];
            printf("  %-20s %d  %.3f  %.1f %.1f %.1f %.1f\n", d.names[x->cls], x->cls, x->score, x->x1,
                   x->y1, x->x2, x->y2);
        }
    }
    st_exec_free(&e);
    st_detect_buf_free(&buf);
    st_detector_free(&d);
    return *rc == ST_OK;
}

int se_cmd_run_image(const char *model, const char *image) {
    st_error err = {0};
    st_status rc = ST_OK;
    st_image img;
    st_img_problem prob;
    if ((rc = st_png_read(image, 3, &img, &prob, &err)) != ST_OK) {
        fprintf(stderr, "sparseengine run: error: %s\n", err.msg);
        return st_exit_code(rc);
    }
    st_onnx_model *m = NULL;
    const char *task = NULL;
    int outputs = 1;
    if ((rc = st_onnx_read_file(model, &m, &err)) == ST_OK) {
        task = st_onnx_metadata(m, "sparsetrain.task");
        st_graph *g = NULL;
        if (!task && (rc = st_onnx_import(m, NULL, &g, &err)) == ST_OK) outputs = g->n_outputs;
        st_graph_free(g);
    }
    int det = task ? !strcmp(task, "detect") : outputs == 3;
    st_onnx_model_free(m);
    if (rc == ST_OK) (det ? detect : classify)(model, &img, &err, &rc);
    st_image_free(&img);
    if (rc != ST_OK) fprintf(stderr, "sparseengine run: error: %s\n", err.msg);
    return st_exit_code(rc);
}
