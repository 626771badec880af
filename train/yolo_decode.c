/* YOLOv5 head decoding (Detect.forward in inference mode followed by the candidate
 * selection of non_max_suppression with multi_label) and Detect's bias initialisation. */
#include <math.h>

#include "st_detect.h"

static inline float sigmf(float x) { return 1.0f / (1.0f + expf(-x)); }

int st_yolo_decode(const st_yolo_cfg *c, const float *const out[ST_YOLO_SCALES], int N, int n,
                   float conf_thr, st_det *dets, int cap) {
    if (n < 0 || n >= N || cap <= 0) return 0;
    const int no = c->nc + 5;
    int k = 0;
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        const int stride = c->strides[s], ny = c->img_h / stride, nx = c->img_w / stride;
        const size_t hw = (size_t)ny * nx;
        for (int a = 0; a < ST_YOLO_ANCHORS; a++) {
            const float *o = out[s] + ((size_t)n * ST_YOLO_ANCHORS + a) * no * hw;
            for (int gy = 0; gy < ny; gy++)
                for (int gx = 0; gx < nx; gx++) {
                    size_t i = (size_t)gy * nx + gx;
                    float obj = sigmf(o[4 * hw + i]);
                    /* score = obj * cls <= obj: a cell below the threshold has no candidate */
                    if (obj < conf_thr) continue;
                    float sx = sigmf(o[i]), sy = sigmf(o[hw + i]);
                    float sw = sigmf(o[2 * hw + i]), sh = sigmf(o[3 * hw + i]);
                    float x = (sx * 2 - 0.5f + gx) * stride, y = (sy * 2 - 0.5f + gy) * stride;
                    float w = 4 * sw * sw * c->anchors[s][a][0], h = 4 * sh * sh * c->anchors[s][a][1];
                    for (int j = 0; j < c->nc; j++) {
                        float score = obj * sigmf(o[(size_t)(5 + j) * hw + i]);
                        if (score < conf_thr) continue;
                        dets[k] = (st_det){x - w / 2, y - h / 2, x + w / 2, y + h / 2, score, j};
                        if (++k == cap) return k;
                    }
                }
        }
    }
    return k;
}

void st_yolo_init_biases(const st_yolo_cfg *c, float *const bias[ST_YOLO_SCALES]) {
    const int no = c->nc + 5;
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        /* YOLOv5's prior: 8 objects per 640x640 image, classes near-uniform at 0.6 */
        double cells = 640.0 / c->strides[s];
        float obj = (float)log(8.0 / (cells * cells));
        float cls = (float)log(0.6 / (c->nc - 0.99));
        for (int a = 0; a < ST_YOLO_ANCHORS; a++) {
            float *b = bias[s] + a * no;
            b[4] += obj;
            for (int j = 0; j < c->nc; j++) b[5 + j] += cls;
        }
    }
}
