/* YOLOv5's ComputeLoss (utils/loss.py: build_targets + __call__, CIoU from
 * utils/metrics.py), re-implemented with its exact gradient.
 *
 * What PyTorch autograd does and this file reproduces by hand:
 * - the objectness target is the CIoU detached and clamped at 0 (no gradient through it);
 * - CIoU's alpha is computed under no_grad (a constant in the backward pass);
 * - an (image, anchor, cell) assigned several times keeps the LAST IoU written to its
 *   objectness target (index_put order: offset, then anchor, then target), while the box
 *   and class terms count every assignment and their gradients add up.
 * The assignment runs in float like YOLOv5's float32 tensors, so the decisions at cell
 * borders and anchor-ratio limits are the ones PyTorch makes; the loss accumulates in
 * double. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "st_detect.h"

#define CIOU_EPS 1e-7

typedef struct {
    int b, a, gj, gi, cls;
    float tx, ty, tw, th; /* target box in grid units, relative to the cell (gxy - gij) */
    float aw, ah;         /* anchor in grid units */
} yolo_assign;

struct st_yolo_ws {
    int max_batch, max_boxes;
    int ny[ST_YOLO_SCALES], nx[ST_YOLO_SCALES];
    yolo_assign *as[ST_YOLO_SCALES]; /* [5 * 3 * max_boxes]: 5 cells x 3 anchors per box */
    float *tobj[ST_YOLO_SCALES];     /* [max_batch * 3 * ny * nx] */
    double *part;                    /* [max_batch] per-image objectness sums */
};

void st_yolo_cfg_default(st_yolo_cfg *c, int nc, int img_h, int img_w) {
    static const float anchors[ST_YOLO_SCALES][ST_YOLO_ANCHORS][2] = {
        {{10, 13}, {16, 30}, {33, 23}},
        {{30, 61}, {62, 45}, {59, 119}},
        {{116, 90}, {156, 198}, {373, 326}}};
    const double nl = ST_YOLO_SCALES, img = img_w;
    memset(c, 0, sizeof *c);
    c->nc = nc;
    c->img_h = img_h, c->img_w = img_w;
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        c->strides[s] = 8 << s;
        memcpy(c->anchors[s], anchors[s], sizeof anchors[s]);
    }
    c->anchor_t = 4.0f;
    /* train.py scales the hyperparameters by layers, classes and image size */
    c->box_gain = (float)(0.05 * 3 / nl);
    c->obj_gain = (float)(1.0 * (img / 640) * (img / 640) * 3 / nl);
    c->cls_gain = (float)(0.5 * nc / 80 * 3 / nl);
    c->balance[0] = 4.0f, c->balance[1] = 1.0f, c->balance[2] = 0.4f;
}

static st_status check_cfg(const st_yolo_cfg *c, st_error *err) {
    if (c->nc < 1) return st_errorf(err, ST_ERR_INPUT, "YOLO loss: %d classes", c->nc);
    for (int s = 0; s < ST_YOLO_SCALES; s++)
        if (c->strides[s] < 1 || c->img_h % c->strides[s] || c->img_w % c->strides[s] ||
            c->img_h < c->strides[s] || c->img_w < c->strides[s])
            return st_errorf(err, ST_ERR_INPUT, "YOLO loss: input %dx%d is not a multiple of stride %d",
                             c->img_h, c->img_w, c->strides[s]);
    return ST_OK;
}

st_status st_yolo_ws_new(const st_yolo_cfg *c, int max_batch, int max_boxes, st_yolo_ws **out,
                         st_error *err) {
    *out = NULL;
    st_status rc = check_cfg(c, err);
    if (rc != ST_OK) return rc;
    if (max_batch < 1 || max_boxes < 0)
        return st_errorf(err, ST_ERR_INPUT, "YOLO loss: batch %d, boxes %d", max_batch, max_boxes);
    st_yolo_ws *w = calloc(1, sizeof *w);
    if (!w) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    w->max_batch = max_batch, w->max_boxes = max_boxes;
    int ok = (w->part = malloc((size_t)max_batch * sizeof *w->part)) != NULL;
    for (int s = 0; s < ST_YOLO_SCALES && ok; s++) {
        w->ny[s] = c->img_h / c->strides[s], w->nx[s] = c->img_w / c->strides[s];
        size_t cells = (size_t)max_batch * ST_YOLO_ANCHORS * w->ny[s] * w->nx[s];
        w->as[s] = malloc(((size_t)5 * ST_YOLO_ANCHORS * max_boxes + 1) * sizeof *w->as[s]);
        w->tobj[s] = malloc(cells * sizeof *w->tobj[s]);
        ok = w->as[s] && w->tobj[s];
    }
    if (!ok) {
        st_yolo_ws_free(w);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    }
    *out = w;
    return ST_OK;
}

void st_yolo_ws_free(st_yolo_ws *w) {
    if (!w) return;
    for (int s = 0; s < ST_YOLO_SCALES; s++) free(w->as[s]), free(w->tobj[s]);
    free(w->part);
    free(w);
}

/* build_targets for one scale: appends in YOLOv5's order (offset-major, then anchor, then
 * target: the order of t.repeat((5, 1, 1))[j] over t[j] of the (anchor, target) grid). */
static int assign_scale(const st_yolo_cfg *c, int s, int ny, int nx, const st_batch_box *boxes,
                        int n_boxes, yolo_assign *as) {
    static const float off[5][2] = {{0, 0}, {0.5f, 0}, {0, 0.5f}, {-0.5f, 0}, {0, -0.5f}};
    const float g = 0.5f;
    int n = 0;
    for (int o = 0; o < 5; o++)
        for (int a = 0; a < ST_YOLO_ANCHORS; a++) {
            float aw = c->anchors[s][a][0] / (float)c->strides[s];
            float ah = c->anchors[s][a][1] / (float)c->strides[s];
            for (int t = 0; t < n_boxes; t++) {
                const st_batch_box *bx = &boxes[t];
                float gx = bx->cx * (float)nx, gy = bx->cy * (float)ny;
                float gw = bx->w * (float)nx, gh = bx->h * (float)ny;
                float rw = gw / aw, rh = gh / ah;
                float m = fmaxf(fmaxf(rw, 1.0f / rw), fmaxf(rh, 1.0f / rh));
                if (!(m < c->anchor_t)) continue; /* NaN-safe: a zero-size box matches none */
                if (o > 0) {
                    /* j, k: left/top neighbour; l, m: right/bottom (YOLOv5's gxy / gxi tests) */
                    float gxi = (float)nx - gx, gyi = (float)ny - gy;
                    int take;
                    switch (o) {
                    case 1: take = gx - floorf(gx) < g && gx > 1.0f; break;
                    case 2: take = gy - floorf(gy) < g && gy > 1.0f; break;
                    case 3: take = gxi - floorf(gxi) < g && gxi > 1.0f; break;
                    default: take = gyi - floorf(gyi) < g && gyi > 1.0f; break;
                    }
                    if (!take) continue;
                }
                /* .long() truncates toward zero; the box is relative to the unclamped cell */
                int gi = (int)(gx - off[o][0]), gj = (int)(gy - off[o][1]);
                yolo_assign *r = &as[n++];
                r->b = bx->img, r->a = a, r->cls = bx->cls;
                r->tx = gx - (float)gi, r->ty = gy - (float)gj, r->tw = gw, r->th = gh;
                r->aw = aw, r->ah = ah;
                r->gi = gi < 0 ? 0 : gi >= nx ? nx - 1 : gi;
                r->gj = gj < 0 ? 0 : gj >= ny ? ny - 1 : gj;
            }
        }
    return n;
}

static inline double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|)) */
static inline double bce(double x, double t) {
    return fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
}

/* d min(a, b): PyTorch splits the gradient on a tie */
static inline double pick(double a, double b) { return a < b ? 1.0 : a == b ? 0.5 : 0.0; }

/* CIoU of p = (x, y, w, h) against t (bbox_iou(xywh=True, CIoU=True)); dp receives
 * d CIoU / d p with alpha held constant (YOLOv5 computes it under no_grad). */
static double ciou(const double p[4], const double t[4], double dp[4]) {
    const double px1 = p[0] - p[2] / 2, px2 = p[0] + p[2] / 2;
    const double py1 = p[1] - p[3] / 2, py2 = p[1] + p[3] / 2;
    const double tx1 = t[0] - t[2] / 2, tx2 = t[0] + t[2] / 2;
    const double ty1 = t[1] - t[3] / 2, ty2 = t[1] + t[3] / 2;
    const double iw_raw = fmin(px2, tx2) - fmax(px1, tx1), ih_raw = fmin(py2, ty2) - fmax(py1, ty1);
    const double iw = fmax(iw_raw, 0.0), ih = fmax(ih_raw, 0.0);
    const double inter = iw * ih;
    const double uni = p[2] * p[3] + t[2] * t[3] - inter + CIOU_EPS;
    const double iou = inter / uni;
    const double cw = fmax(px2, tx2) - fmin(px1, tx1), chh = fmax(py2, ty2) - fmin(py1, ty1);
    const double c2 = cw * cw + chh * chh + CIOU_EPS;
    const double dx = tx1 + tx2 - px1 - px2, dy = ty1 + ty2 - py1 - py2;
    const double rho2 = (dx * dx + dy * dy) / 4;
    const double k = 4 / (M_PI * M_PI);
    const double da = atan(t[2] / t[3]) - atan(p[2] / p[3]);
    const double v = k * da * da;
    const double alpha = v / (v - iou + (1 + CIOU_EPS));
    const double res = iou - (rho2 / c2 + v * alpha);

    /* reverse mode over the same expressions, seeded with d res = 1 */
    const double d_iou = 1, d_rho2 = -1 / c2, d_c2 = rho2 / (c2 * c2), d_v = -alpha;
    double d_inter = d_iou / uni, d_uni = -d_iou * inter / (uni * uni);
    double d_pw = d_uni * p[3], d_ph = d_uni * p[2];
    d_inter -= d_uni;
    const double d_iw = iw_raw >= 0 ? d_inter * ih : 0, d_ih = ih_raw >= 0 ? d_inter * iw : 0;
    double d_px1 = 0, d_px2 = 0, d_py1 = 0, d_py2 = 0;
    /* intersection: min of the right edges minus max of the left edges */
    d_px2 += d_iw * pick(px2, tx2), d_px1 -= d_iw * pick(tx1, px1);
    d_py2 += d_ih * pick(py2, ty2), d_py1 -= d_ih * pick(ty1, py1);
    /* enclosing box: max of the right edges minus min of the left edges */
    const double d_cw = 2 * cw * d_c2, d_ch = 2 * chh * d_c2;
    d_px2 += d_cw * pick(tx2, px2), d_px1 -= d_cw * pick(px1, tx1);
    d_py2 += d_ch * pick(ty2, py2), d_py1 -= d_ch * pick(py1, ty1);
    /* centre distance */
    d_px1 -= d_rho2 * dx / 2, d_px2 -= d_rho2 * dx / 2;
    d_py1 -= d_rho2 * dy / 2, d_py2 -= d_rho2 * dy / 2;
    /* aspect term: d atan(w / h) = (h dw - w dh) / (w^2 + h^2) */
    const double d_atan = -2 * k * da * d_v, r2 = p[2] * p[2] + p[3] * p[3];
    d_pw += d_atan * p[3] / r2, d_ph -= d_atan * p[2] / r2;
    dp[0] = d_px1 + d_px2, dp[1] = d_py1 + d_py2;
    dp[2] = d_pw + (d_px2 - d_px1) / 2, dp[3] = d_ph + (d_py2 - d_py1) / 2;
    return res;
}

/* Box and class terms of one scale over its assignments; fills tobj (last write wins).
 * Returns the sums of (1 - CIoU) and of the per-pair class BCE (means taken by caller). */
static void assigned_terms(const st_yolo_cfg *c, const yolo_assign *as, int n, int ny, int nx,
                           const float *out, float *dout, float *tobj, double g_box,
                           double g_cls, double *box_sum, double *cls_sum) {
    const int no = c->nc + 5;
    const size_t hw = (size_t)ny * nx;
    double lbox = 0, lcls = 0;
    for (int q = 0; q < n; q++) {
        const yolo_assign *r = &as[q];
        size_t base = ((size_t)r->b * ST_YOLO_ANCHORS + r->a) * no * hw + (size_t)r->gj * nx + r->gi;
        const float *o = out + base;
        double sx = sigm(o[0]), sy = sigm(o[hw]), sw = sigm(o[2 * hw]), sh = sigm(o[3 * hw]);
        double p[4] = {sx * 2 - 0.5, sy * 2 - 0.5, 4 * sw * sw * r->aw, 4 * sh * sh * r->ah};
        double t[4] = {r->tx, r->ty, r->tw, r->th}, dp[4];
        double iou = ciou(p, t, dp);
        lbox += 1 - iou;
        /* the objectness target: detached CIoU clamped at 0; later writes replace it */
        tobj[((size_t)r->b * ST_YOLO_ANCHORS + r->a) * hw + (size_t)r->gj * nx + r->gi] =
            (float)fmax(iou, 0.0);
        if (dout) {
            float *d = dout + base;
            double gi = -g_box; /* d (1 - iou) */
            d[0] += (float)(gi * dp[0] * 2 * sx * (1 - sx));
            d[hw] += (float)(gi * dp[1] * 2 * sy * (1 - sy));
            d[2 * hw] += (float)(gi * dp[2] * 8 * sw * sw * (1 - sw) * r->aw);
            d[3 * hw] += (float)(gi * dp[3] * 8 * sh * sh * (1 - sh) * r->ah);
        }
        if (c->nc > 1) /* YOLOv5 has no class loss for a single class */
            for (int k = 0; k < c->nc; k++) {
                double x = o[(size_t)(5 + k) * hw], tk = k == r->cls ? 1.0 : 0.0;
                lcls += bce(x, tk);
                if (dout) dout[base + (size_t)(5 + k) * hw] += (float)(g_cls * (sigm(x) - tk));
            }
    }
    *box_sum = lbox, *cls_sum = lcls;
}

/* Objectness BCE of one scale over every cell: per-image partial sums added in order, so
 * the result does not depend on the thread count. */
static double obj_term(const st_yolo_cfg *c, st_yolo_ws *w, int N, size_t hw, const float *out,
                       float *dout, const float *tobj, double g_obj) {
    const int no = c->nc + 5;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < N; b++) {
        double sum = 0;
        for (int a = 0; a < ST_YOLO_ANCHORS; a++) {
            size_t base = ((size_t)b * ST_YOLO_ANCHORS + a) * no * hw + 4 * hw;
            const float *x = out + base, *t = tobj + ((size_t)b * ST_YOLO_ANCHORS + a) * hw;
            for (size_t i = 0; i < hw; i++) {
                sum += bce(x[i], t[i]);
                if (dout) dout[base + i] += (float)(g_obj * (sigm(x[i]) - t[i]));
            }
        }
        w->part[b] = sum;
    }
    double s = 0;
    for (int b = 0; b < N; b++) s += w->part[b];
    return s;
}

st_status st_yolo_loss_compute(const st_yolo_cfg *c, st_yolo_ws *w, int N,
                               const float *const out[ST_YOLO_SCALES],
                               const st_batch_box *boxes, int n_boxes,
                               float *const dout[ST_YOLO_SCALES], st_yolo_loss *res,
                               st_error *err) {
    memset(res, 0, sizeof *res);
    st_status rc = check_cfg(c, err);
    if (rc != ST_OK) return rc;
    if (N < 1 || N > w->max_batch)
        return st_errorf(err, ST_ERR_INPUT, "YOLO loss: batch %d (workspace for %d)", N, w->max_batch);
    if (n_boxes < 0 || n_boxes > w->max_boxes)
        return st_errorf(err, ST_ERR_INPUT, "YOLO loss: %d boxes (workspace for %d)", n_boxes,
                         w->max_boxes);
    for (int s = 0; s < ST_YOLO_SCALES; s++)
        if (w->ny[s] != c->img_h / c->strides[s] || w->nx[s] != c->img_w / c->strides[s])
            return st_errorf(err, ST_ERR_INPUT, "YOLO loss: workspace made for another input size");
    for (int t = 0; t < n_boxes; t++)
        if (boxes[t].img < 0 || boxes[t].img >= N || boxes[t].cls < 0 || boxes[t].cls >= c->nc)
            return st_errorf(err, ST_ERR_INPUT, "YOLO loss: box %d has image %d, class %d (batch %d, %d classes)",
                             t, boxes[t].img, boxes[t].cls, N, c->nc);
    double lbox = 0, lobj = 0, lcls = 0;
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        const int ny = w->ny[s], nx = w->nx[s];
        const size_t hw = (size_t)ny * nx;
        int n = assign_scale(c, s, ny, nx, boxes, n_boxes, w->as[s]);
        res->n_targets += n;
        memset(w->tobj[s], 0, (size_t)N * ST_YOLO_ANCHORS * hw * sizeof(float));
        if (n) {
            /* d total = gain * N * d mean */
            double g_box = (double)c->box_gain * N / n, g_cls = (double)c->cls_gain * N / ((double)n * c->nc);
            double box_sum, cls_sum;
            assigned_terms(c, w->as[s], n, ny, nx, out[s], dout ? dout[s] : NULL, w->tobj[s],
                           g_box, g_cls, &box_sum, &cls_sum);
            lbox += box_sum / n;
            lcls += cls_sum / ((double)n * c->nc);
        }
        double cells = (double)N * ST_YOLO_ANCHORS * hw;
        double g_obj = (double)c->obj_gain * c->balance[s] * N / cells;
        lobj += c->balance[s] * obj_term(c, w, N, hw, out[s], dout ? dout[s] : NULL, w->tobj[s], g_obj) / cells;
    }
    res->box = (float)(lbox * c->box_gain);
    res->obj = (float)(lobj * c->obj_gain);
    res->cls = (float)(lcls * c->cls_gain);
    double total = (lbox * c->box_gain + lobj * c->obj_gain + lcls * c->cls_gain) * N;
    res->total = (float)total;
    if (!isfinite(total))
        return st_errorf(err, ST_ERR_NUMERIC, "YOLO loss is not finite (box %g, obj %g, cls %g)",
                         lbox, lobj, lcls);
    return ST_OK;
}
