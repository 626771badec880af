/* Running a YOLO detector: validation mAP over a loader (training runs and `sparsetrain
 * eval`) and detection on one image file (`sparsetrain predict`). */
#ifndef ST_DETECT_RUN_H
#define ST_DETECT_RUN_H

#include "st_detect.h"
#include "st_exec.h"
#include "st_image.h"
#include "st_loader.h"

#define ST_DET_CONF 0.001f /* evaluation thresholds, as YOLOv5's val.py */
#define ST_DET_NMS_IOU 0.6f
#define ST_DET_MAX 300

/* Scratch for decoding one image; sized for the model once. */
typedef struct st_detect_buf {
    st_det *cand;
    int cand_cap;
    st_gt *gt;
    int gt_cap;
} st_detect_buf;

st_status st_detect_buf_init(st_detect_buf *b, const st_yolo_cfg *c, st_error *err);
void st_detect_buf_free(st_detect_buf *b);

/* Checks that the graph's three outputs fit cfg (classes, strides, input size). */
st_status st_detect_check_head(const st_graph *g, const st_yolo_cfg *c, const char *model,
                               st_error *err);

/* Forward (eval mode) over every batch of `val`, decode, class-aware NMS and COCO mAP.
 * The executor must be planned for the loader's batch size. */
st_status st_detect_evaluate(st_exec *ex, st_loader *val, const st_yolo_cfg *c,
                             st_detect_buf *buf, st_map_result *res, st_error *err);

/* Detections for one 8-bit image (any size, RGB or gray): letterboxed to the model
 * input, scaled to [0, 1], decoded with conf_thr, NMS at iou_thr, boxes mapped back
 * to the image's pixels. The executor must be planned (batch >= 1). Returns the number
 * of detections in buf->cand (best first). */
int st_detect_image(st_exec *ex, const st_yolo_cfg *c, const st_image *img, float conf_thr,
                    float iou_thr, int max_det, st_detect_buf *buf);

/* The two halves of st_detect_image for callers that run the model themselves (the
 * engine): the letterboxed input (ch x img_h x img_w floats into x; -1 out of memory),
 * then decode + NMS of one image's three raw heads, boxes in the image's pixels. */
typedef struct st_letterbox {
    float scale, px, py;
    int img_w, img_h;
} st_letterbox;
int st_detect_letterbox(const st_yolo_cfg *c, const st_image *img, int ch, float *x,
                        st_letterbox *lb);
int st_detect_finish(const st_yolo_cfg *c, const float *const *out, const st_letterbox *lb,
                     float conf_thr, float iou_thr, int max_det, st_detect_buf *buf);

#endif

/* A detector loaded for eval / predict: from a training checkpoint (EMA weights when
 * present) or from an ONNX file (ours, with class names in its metadata, or any model
 * whose three outputs have YOLOv5's layout). */
typedef struct st_detector {
    st_graph *g;
    st_yolo_cfg cfg;
    char **names; /* [cfg.nc] class names ("0", "1", ... when unknown) */
    char label[128];
} st_detector;

st_status st_detector_open(const char *checkpoint, const char *onnx, st_detector *d,
                           st_error *err);
void st_detector_free(st_detector *d);
