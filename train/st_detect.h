/* Object detection pieces shared by the YOLO trainer, `eval` and `predict`: the YOLOv5
 * loss and decode (yolo_loss.c, yolo_decode.c), non-maximum suppression and COCO-style
 * mAP (detect_eval.c). Boxes are in pixels of the model input (letterboxed image)
 * unless said otherwise. */
#ifndef ST_DETECT_H
#define ST_DETECT_H

#include <stdint.h>

#include "st_common.h"
#include "st_loader.h" /* st_batch_box */

#define ST_YOLO_SCALES 3
#define ST_YOLO_ANCHORS 3

/* ---------------------------------------------------------------- YOLOv5 head */
typedef struct st_yolo_cfg {
    int nc;                       /* classes */
    int img_h, img_w;             /* model input size */
    int strides[ST_YOLO_SCALES];  /* 8, 16, 32 */
    float anchors[ST_YOLO_SCALES][ST_YOLO_ANCHORS][2]; /* pixels (w, h) */
    float anchor_t;               /* 4.0 */
    float box_gain, obj_gain, cls_gain; /* already scaled as YOLOv5 does (see defaults) */
    float balance[ST_YOLO_SCALES];      /* 4.0, 1.0, 0.4 */
} st_yolo_cfg;

/* YOLOv5 defaults for nc classes at an img_h x img_w input: anchors P3-P5, gains box
 * 0.05*3/nl, obj 1.0*(img/640)^2*3/nl, cls 0.5*nc/80*3/nl (nl = 3, img = img_w). */
void st_yolo_cfg_default(st_yolo_cfg *c, int nc, int img_h, int img_w);

typedef struct st_yolo_loss {
    float box, obj, cls; /* the three weighted terms (per image, before x batch) */
    float total;         /* (box + obj + cls) * batch, what YOLOv5 backpropagates */
    int n_targets;       /* assigned (anchor, cell) pairs over the three scales */
} st_yolo_loss;

typedef struct st_yolo_ws st_yolo_ws; /* scratch, sized once per batch size */
st_status st_yolo_ws_new(const st_yolo_cfg *c, int max_batch, int max_boxes, st_yolo_ws **out,
                         st_error *err);
void st_yolo_ws_free(st_yolo_ws *w);

/* out[s]: raw head output of scale s, [N, 3*(nc+5), img_h/stride, img_w/stride] (channel
 * a*(nc+5)+k: k = 0..3 box, 4 objectness, 5.. classes). boxes: the batch's targets, cx,
 * cy, w, h normalised to the input. dout[s] (same shape, may be NULL) ACCUMULATES
 * d total / d out. Deterministic for a fixed thread count. */
st_status st_yolo_loss_compute(const st_yolo_cfg *c, st_yolo_ws *w, int N,
                               const float *const out[ST_YOLO_SCALES],
                               const st_batch_box *boxes, int n_boxes,
                               float *const dout[ST_YOLO_SCALES], st_yolo_loss *res,
                               st_error *err);

/* Sets the Detect biases as YOLOv5 does: objectness += log(8 / (640/stride)^2), classes
 * += log(0.6 / (nc - 0.99)). bias[s] is the [3*(nc+5)] bias of head conv s. */
void st_yolo_init_biases(const st_yolo_cfg *c, float *const bias[ST_YOLO_SCALES]);

/* ---------------------------------------------------------------- detections */
typedef struct st_det {
    float x1, y1, x2, y2; /* pixels of the model input */
    float score;          /* objectness * class probability */
    int cls;
} st_det;

/* Decodes image n of a batch of raw head outputs into candidates with score >=
 * conf_thr (one per anchor and class above the threshold, as YOLOv5's multi-label
 * NMS input). Writes at most cap; returns how many were written. */
int st_yolo_decode(const st_yolo_cfg *c, const float *const out[ST_YOLO_SCALES], int N, int n,
                   float conf_thr, st_det *dets, int cap);

/* Class-aware (class_aware = 1) or class-agnostic NMS: sorts by score, keeps a box unless
 * it overlaps a kept box (of the same class) with IoU > iou_thr, at most max_det (<= 0:
 * no limit). Equal scores keep their input order. In place: the kept boxes come first,
 * best first; returns their number. */
int st_nms(st_det *dets, int n, float iou_thr, int max_det, int class_aware);

/* Intersection over union without the +1 pixel convention; 0 when either box has no
 * area. */
float st_box_iou(const st_det *a, const st_det *b);

/* ---------------------------------------------------------------- mAP (COCO style) */
typedef struct st_gt {
    float x1, y1, x2, y2;
    int cls;
} st_gt;

typedef struct st_map_acc st_map_acc;
st_status st_map_new(int nc, st_map_acc **out, st_error *err);
/* Adds one image's detections (any order) and ground truth; classes must be in 0..nc-1
 * (ST_ERR_INPUT otherwise, nothing added). Matching happens here, so the accumulator keeps
 * only a small record per detection. */
st_status st_map_add(st_map_acc *m, const st_det *dets, int n, const st_gt *gt, int n_gt,
                     st_error *err);

typedef struct st_map_result {
    int nc;
    double map50, map50_95;   /* means over classes that have ground truth (-1: none has) */
    double precision, recall; /* at the best mean F1 confidence, mean over classes */
    double *ap50, *ap50_95;   /* [nc]; -1 for a class with no ground truth */
    int *n_gt, *n_images;     /* [nc]: ground-truth boxes, images containing the class */
} st_map_result;

/* IoU thresholds 0.50:0.05:0.95; per image and class, detections matched greedily by
 * score to the unmatched ground truth of highest IoU; AP = mean of the precision
 * envelope at 101 recall points (COCO). */
st_status st_map_compute(const st_map_acc *m, st_map_result *res, st_error *err);
void st_map_result_free(st_map_result *r);
void st_map_free(st_map_acc *m);

#endif
