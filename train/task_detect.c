/* The detection task: YOLOv5's loss on the three head outputs, an EMA of the weights,
 * and COCO-style mAP on the validation split (conf 0.001, class-aware NMS at IoU 0.6,
 * at most 300 detections per image), evaluated with the EMA weights as YOLOv5 does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_detect_run.h"
#include "st_draw.h"
#include "st_report.h"
#include "trainer_internal.h"

enum { C_BOX, C_OBJ, C_CLS, C_P, C_R, C_MAP50, C_MAP, C_FITNESS, C_N };
static const char *const cols[C_N] = {"box_loss", "obj_loss", "cls_loss", "precision",
                                      "recall",   "mAP50",    "mAP50_95", "fitness"};
static const char *const summary_keys[2] = {"mAP50", "mAP50_95"};
static const int summary_cols[2] = {C_MAP50, C_MAP};

typedef struct {
    st_yolo_cfg cfg;
    st_yolo_ws *ws;
    st_detect_buf buf;
    st_map_result last; /* of the latest evaluation, for the final table */
    int have_last;
} detect_ctx;

/* A fresh detector (or a re-created head) starts with YOLOv5's Detect biases. */
static void init_biases(st_run *r, detect_ctx *c) {
    float *bias[ST_YOLO_SCALES];
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        char name[64];
        snprintf(name, sizeof name, "model.24.m.%d.bias", s);
        int p = st_graph_find_param(r->g, name);
        if (p < 0) return;
        bias[s] = st_param_data(r->g, p);
    }
    st_yolo_init_biases(&c->cfg, bias);
}

static st_status open_task(st_run *r, st_error *err) {
    detect_ctx *c = calloc(1, sizeof *c);
    if (!c) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    r->task_ctx = c;
    st_yolo_cfg_default(&c->cfg, r->data.n_classes, r->height, r->width);
    st_status rc = st_detect_check_head(r->g, &c->cfg, r->o->model, err);
    if (rc != ST_OK) return rc;
    if (r->fresh_head) init_biases(r, c);
    /* targets per batch: the loader's boxes (mosaic: up to 4 images' worth each) */
    if ((rc = st_yolo_ws_new(&c->cfg, r->o->batch, r->o->batch * 256, &c->ws, err)) != ST_OK) return rc;
    if ((rc = st_detect_buf_init(&c->buf, &c->cfg, err)) != ST_OK) return rc;
    if (!r->st.ema) {
        r->st.ema = st_alloc(r->g->param_floats * sizeof(float));
        if (!r->st.ema) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        memcpy(r->st.ema, r->g->param_data, r->g->param_floats * sizeof(float));
    }
    return ST_OK;
}

static st_status train_loss(st_run *r, const st_batch *b, float *loss, st_error *err) {
    detect_ctx *c = r->task_ctx;
    int B = r->o->batch;
    st_exec_forward(&r->ex, B, 1);
    const float *out[ST_YOLO_SCALES];
    float *dout[ST_YOLO_SCALES];
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        int v = r->g->outputs[s];
        out[s] = r->ex.act[v];
        dout[s] = r->ex.dact[v];
        memset(dout[s], 0, (size_t)B * st_shape_numel(r->g->values[v]) * sizeof(float));
    }
    st_yolo_loss l;
    st_status rc = st_yolo_loss_compute(&c->cfg, c->ws, B, out, b->boxes, b->n_boxes, dout, &l, err);
    if (rc != ST_OK) return rc;
    *loss = l.box + l.obj + l.cls;
    r->st.part[ST_P_TASK + 0] += (double)l.box * B;
    r->st.part[ST_P_TASK + 1] += (double)l.obj * B;
    r->st.part[ST_P_TASK + 2] += (double)l.cls * B;
    return ST_OK;
}

static st_status evaluate(st_run *r, float *row, st_error *err) {
    detect_ctx *c = r->task_ctx;
    if (c->have_last) st_map_result_free(&c->last);
    c->have_last = 0;
    st_run_swap_ema(r); /* YOLOv5 evaluates the EMA weights */
    st_status rc = st_detect_evaluate(&r->ex, r->val_loader, &c->cfg, &c->buf, &c->last, err);
    st_run_swap_ema(r);
    if (rc != ST_OK) return rc;
    c->have_last = 1;
    double n = r->st.part[ST_P_SEEN] > 0 ? r->st.part[ST_P_SEEN] : 1;
    row[C_BOX] = (float)(r->st.part[ST_P_TASK + 0] / n);
    row[C_OBJ] = (float)(r->st.part[ST_P_TASK + 1] / n);
    row[C_CLS] = (float)(r->st.part[ST_P_TASK + 2] / n);
    row[C_P] = (float)c->last.precision;
    row[C_R] = (float)c->last.recall;
    row[C_MAP50] = (float)c->last.map50;
    row[C_MAP] = (float)c->last.map50_95;
    /* YOLOv5's choice of the best checkpoint */
    row[C_FITNESS] = 0.1f * row[C_MAP50] + 0.9f * row[C_MAP];
    return ST_OK;
}

static void describe(const st_run *r, const float *row, char *buf, size_t cap) {
    snprintf(buf, cap, "box %.4f obj %.4f cls %.4f  P %.3f R %.3f  mAP50 %.4f  mAP50-95 %.4f",
             row[C_BOX], row[C_OBJ], row[C_CLS], row[C_P], row[C_R], row[C_MAP50], row[C_MAP]);
}

/* A few validation images with the final model's detections (EMA weights). */
static int report_images(st_run *r, detect_ctx *c, st_image *imgs, char (*captions)[96], int cap) {
    int n = 0;
    st_run_swap_ema(r);
    for (int i = 0; i < r->val.n && n < cap; i++) {
        st_image im;
        int borrowed = 0;
        st_error e = {0};
        if (st_dataset_load_image(&r->data, &r->val, i, 3, &im, &borrowed, &e) != ST_OK) continue;
        if (borrowed || im.c != 3) { /* draw on a private RGB copy */
            st_image cp;
            if (st_image_alloc(&cp, 3, im.h, im.w) != ST_OK) {
                if (!borrowed) st_image_free(&im);
                continue;
            }
            for (size_t k = 0; k < (size_t)im.h * im.w; k++)
                for (int ch = 0; ch < 3; ch++) cp.data[k * 3 + ch] = im.data[k * im.c + (im.c == 3 ? ch : 0)];
            if (!borrowed) st_image_free(&im);
            im = cp;
        }
        int nd = st_detect_image(&r->ex, &c->cfg, &im, 0.25f, 0.45f, ST_DET_MAX, &c->buf);
        st_draw_detections(&im, c->buf.cand, nd, (const char *const *)r->data.class_names, c->cfg.nc, 1, 0, 0);
        snprintf(captions[n], 96, "validation image %d: %d detections (conf 0.25)", i + 1, nd);
        imgs[n++] = im;
    }
    st_run_swap_ema(r);
    return n;
}

/* First and last epochs without and with pruning, for the closing summary. */
static void dense_vs_sparse(const st_run *r, int *dense_ep, int *sparse_ep) {
    *dense_ep = *sparse_ep = -1;
    for (int e = 0; e < r->st.history_rows; e++) {
        const float *row = r->st.history + (size_t)e * r->n_cols;
        if (row[ST_C_SPARSITY] < 0.01f) *dense_ep = e;
    }
    const float *last = r->st.history + (size_t)(r->st.history_rows - 1) * r->n_cols;
    if (r->st.history_rows && last[ST_C_SPARSITY] >= 0.01f) *sparse_ep = r->st.history_rows - 1;
}

/* The per-class table of the last evaluation, the summary and report.html. */
static st_status finish(st_run *r, st_error *err) {
    detect_ctx *c = r->task_ctx;
    if (!c->have_last) return ST_OK;
    FILE *f = r->o->log;
    fprintf(f, "%-20s %8s %10s %8s %10s\n", "class", "images", "instances", "AP50", "AP50-95");
    fprintf(f, "%-20s %8d %10s %8.4f %10.4f\n", "all", r->val.n, "", c->last.map50, c->last.map50_95);
    for (int k = 0; k < c->last.nc; k++) {
        if (c->last.ap50[k] < 0) {
            fprintf(f, "%-20.20s %8d %10d %8s %10s\n", r->data.class_names[k], 0, 0, "-", "-");
            continue;
        }
        fprintf(f, "%-20.20s %8d %10d %8.4f %10.4f\n", r->data.class_names[k], c->last.n_images[k],
                c->last.n_gt[k], c->last.ap50[k], c->last.ap50_95[k]);
    }
    int de, se;
    dense_vs_sparse(r, &de, &se);
    char dense[160] = "no dense epoch", sparse[160] = "no pruned epoch";
    if (de >= 0) {
        const float *row = r->st.history + (size_t)de * r->n_cols;
        snprintf(dense, sizeof dense, "mAP50 %.4f, mAP50-95 %.4f, %.1f s/epoch (epoch %d)",
                 row[ST_C_COMMON + C_MAP50], row[ST_C_COMMON + C_MAP], row[ST_C_EPOCH_S], de + 1);
    }
    if (se >= 0) {
        const float *row = r->st.history + (size_t)se * r->n_cols;
        snprintf(sparse, sizeof sparse, "mAP50 %.4f, mAP50-95 %.4f, %.1f s/epoch at %.2f%% sparsity (epoch %d)",
                 row[ST_C_COMMON + C_MAP50], row[ST_C_COMMON + C_MAP], row[ST_C_EPOCH_S],
                 100 * row[ST_C_SPARSITY], se + 1);
    }
    char speed[256];
    st_run_speed_line(r, speed, sizeof speed);
    fprintf(f, "dense:  %s\npruned: %s\nspeed:  %s\nONNX:   %s/model.onnx\n", dense, sparse, speed, r->dir);
    st_image imgs[4];
    char captions[4][96];
    int n = report_images(r, c, imgs, captions, 4);
    st_report_image ri[4];
    for (int i = 0; i < n; i++) ri[i] = (st_report_image){captions[i], &imgs[i]};
    st_report_kv extra[4] = {{"dense", dense}, {"pruned", sparse}, {"training speed", speed}, {"ONNX", "model.onnx"}};
    st_status rc = st_run_write_report(r, ri, n, extra, 4, err);
    for (int i = 0; i < n; i++) st_image_free(&imgs[i]);
    return rc;
}

static void free_task(st_run *r) {
    detect_ctx *c = r->task_ctx;
    if (!c) return;
    st_yolo_ws_free(c->ws);
    if (c->have_last) st_map_result_free(&c->last);
    st_detect_buf_free(&c->buf);
    free(c);
    r->task_ctx = NULL;
}

const st_task_ops st_task_detect = {
    .name = "detect", .n_cols = C_N, .cols = cols, .best_col = C_FITNESS,
    .n_summary = 2, .summary_keys = summary_keys, .summary_cols = summary_cols,
    .open = open_task, .train_loss = train_loss, .evaluate = evaluate, .describe = describe,
    .finish = finish, .free = free_task,
};
