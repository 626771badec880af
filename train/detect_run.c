/* Running a detector: see st_detect_run.h. */
#include "st_detect_run.h"

#include "st_draw.h"

#include <stdlib.h>
#include <string.h>

st_status st_detect_buf_init(st_detect_buf *b, const st_yolo_cfg *c, st_error *err) {
    memset(b, 0, sizeof *b);
    long cells = 0;
    for (int s = 0; s < ST_YOLO_SCALES; s++)
        cells += (long)(c->img_h / c->strides[s]) * (c->img_w / c->strides[s]);
    /* every (anchor, cell, class) may pass conf 0.001 early in training */
    long cap = cells * ST_YOLO_ANCHORS * c->nc;
    b->cand_cap = (int)(cap < (2L << 20) ? cap : (2L << 20));
    b->gt_cap = 4096;
    b->cand = malloc((size_t)b->cand_cap * sizeof *b->cand);
    b->gt = malloc((size_t)b->gt_cap * sizeof *b->gt);
    if (!b->cand || !b->gt) {
        st_detect_buf_free(b);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    }
    return ST_OK;
}

void st_detect_buf_free(st_detect_buf *b) {
    free(b->cand);
    free(b->gt);
    memset(b, 0, sizeof *b);
}

st_status st_detect_check_head(const st_graph *g, const st_yolo_cfg *c, const char *model,
                               st_error *err) {
    if (g->n_outputs != ST_YOLO_SCALES)
        return st_errorf(err, ST_ERR_INPUT,
                         "model %s has %d outputs; a YOLO detector has 3 (strides 8, 16, 32)",
                         model, g->n_outputs);
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        st_shape o = g->values[g->outputs[s]];
        int st = c->strides[s], want = ST_YOLO_ANCHORS * (c->nc + 5);
        if (o.c != want || o.h != c->img_h / st || o.w != c->img_w / st)
            return st_errorf(err, ST_ERR_INPUT,
                             "model %s output %d is %dx%dx%d; %d classes at %dx%d need %dx%dx%d",
                             model, s, o.c, o.h, o.w, c->nc, c->img_h, c->img_w, want,
                             c->img_h / st, c->img_w / st);
    }
    return ST_OK;
}

static void outputs(const st_exec *ex, const float *out[ST_YOLO_SCALES]) {
    for (int s = 0; s < ST_YOLO_SCALES; s++) out[s] = ex->act[ex->g->outputs[s]];
}

/* Ground truth of image n of a batch, in input pixels. */
static int batch_gt(st_detect_buf *buf, const st_yolo_cfg *c, const st_batch *b, int n) {
    int k = 0;
    for (int i = 0; i < b->n_boxes && k < buf->gt_cap; i++) {
        const st_batch_box *x = &b->boxes[i];
        if (x->img != n) continue;
        buf->gt[k++] = (st_gt){(x->cx - x->w / 2) * c->img_w, (x->cy - x->h / 2) * c->img_h,
                               (x->cx + x->w / 2) * c->img_w, (x->cy + x->h / 2) * c->img_h, x->cls};
    }
    return k;
}

st_status st_detect_evaluate(st_exec *ex, st_loader *val, const st_yolo_cfg *c,
                             st_detect_buf *buf, st_map_result *res, st_error *err) {
    st_map_acc *acc = NULL;
    st_status rc = st_map_new(c->nc, &acc, err);
    if (rc != ST_OK) return rc;
    size_t img_floats = (size_t)ex->g->values[ex->g->input].c * c->img_h * c->img_w;
    double wait;
    rc = st_loader_start_epoch(val, 0, 0, err);
    const st_batch *b;
    while (rc == ST_OK && (b = st_loader_next(val, &wait, &rc, err))) {
        memcpy(st_exec_input(ex), b->images, (size_t)b->n * img_floats * sizeof(float));
        st_exec_forward(ex, b->n, 0);
        const float *out[ST_YOLO_SCALES];
        outputs(ex, out);
        for (int n = 0; n < b->n && rc == ST_OK; n++) {
            int nd = st_yolo_decode(c, out, b->n, n, ST_DET_CONF, buf->cand, buf->cand_cap);
            nd = st_nms(buf->cand, nd, ST_DET_NMS_IOU, ST_DET_MAX, 1);
            rc = st_map_add(acc, buf->cand, nd, buf->gt, batch_gt(buf, c, b, n), err);
        }
    }
    if (rc == ST_OK) rc = st_map_compute(acc, res, err);
    st_map_free(acc);
    return rc;
}

int st_detect_letterbox(const st_yolo_cfg *c, const st_image *img, int ch, float *x,
                        st_letterbox *lb) {
    st_image im;
    if (st_image_alloc(&im, img->c, c->img_h, c->img_w) != ST_OK) return -1;
    st_image_letterbox(img, &im, 114, &lb->scale, &lb->px, &lb->py);
    st_image_to_chw(&im, ch, x); /* x/255, as in training */
    st_image_free(&im);
    lb->img_w = img->w, lb->img_h = img->h;
    return 0;
}

int st_detect_finish(const st_yolo_cfg *c, const float *const *out, const st_letterbox *lb,
                     float conf_thr, float iou_thr, int max_det, st_detect_buf *buf) {
    int nd = st_yolo_decode(c, out, 1, 0, conf_thr, buf->cand, buf->cand_cap);
    nd = st_nms(buf->cand, nd, iou_thr, max_det, 1);
    for (int i = 0; i < nd; i++)
        st_det_unletterbox(&buf->cand[i], lb->scale, lb->px, lb->py, lb->img_w, lb->img_h);
    return nd;
}

int st_detect_image(st_exec *ex, const st_yolo_cfg *c, const st_image *img, float conf_thr,
                    float iou_thr, int max_det, st_detect_buf *buf) {
    st_letterbox lb;
    if (st_detect_letterbox(c, img, ex->g->values[ex->g->input].c, st_exec_input(ex), &lb))
        return 0;
    st_exec_forward(ex, 1, 0);
    const float *out[ST_YOLO_SCALES];
    outputs(ex, out);
    return st_detect_finish(c, out, &lb, conf_thr, iou_thr, max_det, buf);
}
