/* Non-maximum suppression and COCO-style mAP.
 *
 * The mAP follows pycocotools' COCOeval for bbox with one area range (all), no crowd and
 * no per-image detection limit, operation for operation where it changes a result:
 *  - IoU in double, no +1 pixel convention (maskApi's bbIou); zero-area boxes give 0;
 *  - IoU thresholds 0.5 + i * (0.45 / 9), the last exactly 0.95 (np.linspace);
 *  - per image and class, detections in stable score order; each takes, among the ground
 *    truths not yet matched at that threshold, the one of highest IoU >= threshold (ties
 *    go to the later ground truth, as COCOeval's `if iou < best: continue`);
 *  - per class, the detections of all images in score order, ties by image then by rank
 *    within the image (COCOeval concatenates images in order, then mergesorts);
 *  - precision tp / (tp + fp + eps), eps = 2^-52 (np.spacing(1)); the envelope from the
 *    right; samples at recall i / 100 by searchsorted(left), 0 past the last recall.
 * Matching is done when an image is added, so the accumulator only keeps one small record
 * per detection (score, image, rank, one match bit per threshold). */
#include "st_detect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_THR 10
#define N_REC 101
#define N_CONF 1000 /* YOLOv5's confidence grid for the precision/recall summary */

/* ---------------------------------------------------------------- IoU and NMS */

static double iou_xyxy(double ax1, double ay1, double ax2, double ay2, double bx1, double by1,
                       double bx2, double by2) {
    double iw = fmin(ax2, bx2) - fmax(ax1, bx1);
    if (!(iw > 0)) return 0;
    double ih = fmin(ay2, by2) - fmax(ay1, by1);
    if (!(ih > 0)) return 0;
    double inter = iw * ih;
    /* same order of operations as maskApi: da + ga - i */
    double u = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
    return u > 0 ? inter / u : 0;
}

static double det_iou(const st_det *a, const st_det *b) {
    return iou_xyxy(a->x1, a->y1, a->x2, a->y2, b->x1, b->y1, b->x2, b->y2);
}

float st_box_iou(const st_det *a, const st_det *b) { return (float)det_iou(a, b); }

/* Score order: higher first; NaN scores after every number (and among themselves by
 * position), so a broken head cannot make the order depend on the sort algorithm. */
static int score_before(float a, float b) {
    if (isnan(b)) return !isnan(a);
    if (isnan(a)) return 0;
    return a > b;
}

/* Stable merge sort by score (ties keep their input order). The buffer is the only
 * allocation; without it, an insertion sort (quadratic but stable) keeps st_nms total. */
static void sort_dets_by_score(st_det *d, int n) {
    st_det *tmp = n > 1 ? malloc(sizeof *tmp * (size_t)n) : NULL;
    if (!tmp) {
        for (int i = 1; i < n; i++) {
            st_det x = d[i];
            int j = i;
            for (; j > 0 && score_before(x.score, d[j - 1].score); j--) d[j] = d[j - 1];
            d[j] = x;
        }
        return;
    }
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = ST_MIN(lo + w, n), hi = ST_MIN(lo + 2 * w, n), i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = score_before(d[j].score, d[i].score) ? d[j++] : d[i++];
            while (i < mid) tmp[k++] = d[i++];
            while (j < hi) tmp[k++] = d[j++];
        }
        memcpy(d, tmp, sizeof *d * (size_t)n);
    }
    free(tmp);
}

/* Greedy: each box, best first, survives unless it overlaps a survivor (of its class when
 * class-aware) by IoU > iou_thr, as torchvision's nms. Survivors are compacted to the
 * front as they are found, so the scan costs n * kept IoUs. max_det <= 0: no limit. */
int st_nms(st_det *dets, int n, float iou_thr, int max_det, int class_aware) {
    if (!dets || n <= 0) return 0;
    sort_dets_by_score(dets, n);
    int limit = max_det > 0 ? max_det : n, kept = 0;
    for (int i = 0; i < n && kept < limit; i++) {
        int keep = 1;
        for (int j = 0; j < kept && keep; j++) {
            if (class_aware && dets[j].cls != dets[i].cls) continue;
            if (det_iou(&dets[j], &dets[i]) > (double)iou_thr) keep = 0;
        }
        if (keep) dets[kept++] = dets[i];
    }
    return kept;
}

/* ---------------------------------------------------------------- accumulator */

typedef struct {
    float score;
    int cls;
    int img;       /* order of st_map_add calls */
    int rank;      /* position within the image's detections of this class, score order */
    uint16_t tp;   /* bit t: matched at IoU threshold t */
} det_rec;

struct st_map_acc {
    int nc, n_img;
    det_rec *recs;
    size_t n_recs, cap;
    int *n_gt, *n_images;
};

static double iou_threshold(int t) {
    /* np.linspace(.5, .95, 10): start + i * step, the endpoint set exactly */
    return t == N_THR - 1 ? 0.95 : 0.5 + t * ((0.95 - 0.5) / 9);
}

st_status st_map_new(int nc, st_map_acc **out, st_error *err) {
    *out = NULL;
    if (nc <= 0) return st_errorf(err, ST_ERR_INTERNAL, "st_map_new: %d classes", nc);
    st_map_acc *m = calloc(1, sizeof *m);
    if (!m) return st_errorf(err, ST_ERR_NOMEM, "out of memory (mAP accumulator)");
    m->nc = nc;
    m->n_gt = calloc((size_t)nc, sizeof *m->n_gt);
    m->n_images = calloc((size_t)nc, sizeof *m->n_images);
    if (!m->n_gt || !m->n_images) {
        st_map_free(m);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory (mAP accumulator)");
    }
    *out = m;
    return ST_OK;
}

void st_map_free(st_map_acc *m) {
    if (!m) return;
    free(m->recs);
    free(m->n_gt);
    free(m->n_images);
    free(m);
}

/* Index sort helpers for one image: detections by (class, score desc, input index). */
typedef struct {
    const st_det *d;
    int i;
} det_ref;

static int cmp_det_ref(const void *pa, const void *pb) {
    const det_ref *a = pa, *b = pb;
    if (a->d->cls != b->d->cls) return a->d->cls < b->d->cls ? -1 : 1;
    if (score_before(a->d->score, b->d->score)) return -1;
    if (score_before(b->d->score, a->d->score)) return 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Matches one class of one image: dets (score order, nd) against gts (input order, ng).
 * iou is scratch of nd * ng, gtm of ng. Sets the tp bits of recs. */
static void match_class(const det_ref *dets, int nd, const st_gt *const *gts, int ng, double *iou,
                        unsigned char *gtm, det_rec *recs) {
    for (int d = 0; d < nd; d++)
        for (int g = 0; g < ng; g++)
            iou[(size_t)d * ng + g] = iou_xyxy(dets[d].d->x1, dets[d].d->y1, dets[d].d->x2,
                                               dets[d].d->y2, gts[g]->x1, gts[g]->y1, gts[g]->x2,
                                               gts[g]->y2);
    for (int t = 0; t < N_THR; t++) {
        memset(gtm, 0, (size_t)ng);
        for (int d = 0; d < nd; d++) {
            double best = fmin(iou_threshold(t), 1 - 1e-10);
            int m = -1;
            for (int g = 0; g < ng; g++) {
                if (gtm[g]) continue;
                double v = iou[(size_t)d * ng + g];
                if (v < best) continue;
                best = v;
                m = g;
            }
            if (m >= 0) {
                gtm[m] = 1;
                recs[d].tp |= (uint16_t)(1u << t);
            }
        }
    }
}

st_status st_map_add(st_map_acc *m, const st_det *dets, int n, const st_gt *gt, int n_gt,
                     st_error *err) {
    if (n < 0 || n_gt < 0 || (n && !dets) || (n_gt && !gt))
        return st_errorf(err, ST_ERR_INTERNAL, "st_map_add: bad arguments");
    for (int i = 0; i < n; i++)
        if (dets[i].cls < 0 || dets[i].cls >= m->nc)
            return st_errorf(err, ST_ERR_INPUT, "detection %d has class %d, outside 0..%d", i,
                             dets[i].cls, m->nc - 1);
    for (int i = 0; i < n_gt; i++)
        if (gt[i].cls < 0 || gt[i].cls >= m->nc)
            return st_errorf(err, ST_ERR_INPUT, "ground-truth box %d has class %d, outside 0..%d",
                             i, gt[i].cls, m->nc - 1);
    if (m->n_recs + (size_t)n > m->cap) {
        size_t nc = ST_MAX(m->cap * 2, m->n_recs + (size_t)n + 64);
        det_rec *r = realloc(m->recs, nc * sizeof *r);
        if (!r) return st_errorf(err, ST_ERR_NOMEM, "out of memory (mAP accumulator)");
        m->recs = r;
        m->cap = nc;
    }
    det_ref *refs = malloc(sizeof *refs * (size_t)ST_MAX(n, 1));
    const st_gt **gts = malloc(sizeof *gts * (size_t)ST_MAX(n_gt, 1));
    unsigned char *gtm = malloc((size_t)ST_MAX(n_gt, 1));
    double *iou = NULL;
    if (!refs || !gts || !gtm) goto oom;
    for (int i = 0; i < n; i++) refs[i] = (det_ref){&dets[i], i};
    qsort(refs, (size_t)n, sizeof *refs, cmp_det_ref);
    /* IoU scratch for the largest class, allocated before anything is recorded so that a
     * failure leaves the accumulator as it was */
    size_t most = 1;
    for (int d0 = 0, d1; d0 < n; d0 = d1) {
        int c = refs[d0].d->cls, ng = 0;
        for (d1 = d0; d1 < n && refs[d1].d->cls == c; d1++) {}
        for (int i = 0; i < n_gt; i++) ng += gt[i].cls == c;
        most = ST_MAX(most, (size_t)(d1 - d0) * (size_t)ng);
    }
    iou = malloc(sizeof *iou * most);
    if (!iou) goto oom;

    int img = m->n_img, d0 = 0;
    for (int c = 0; c < m->nc; c++) {
        int ng = 0;
        for (int i = 0; i < n_gt; i++)
            if (gt[i].cls == c) gts[ng++] = &gt[i];
        int d1 = d0;
        while (d1 < n && refs[d1].d->cls == c) d1++;
        int nd = d1 - d0;
        if (ng) {
            m->n_gt[c] += ng;
            m->n_images[c]++;
        }
        det_rec *recs = m->recs + m->n_recs;
        for (int k = 0; k < nd; k++) recs[k] = (det_rec){refs[d0 + k].d->score, c, img, k, 0};
        if (nd && ng) match_class(refs + d0, nd, gts, ng, iou, gtm, recs);
        m->n_recs += (size_t)nd;
        d0 = d1;
    }
    m->n_img++;
    free(refs);
    free(gts);
    free(iou);
    free(gtm);
    return ST_OK;
oom:
    free(refs);
    free(gts);
    free(iou);
    free(gtm);
    return st_errorf(err, ST_ERR_NOMEM, "out of memory (mAP accumulator)");
}

/* ---------------------------------------------------------------- compute */

static int cmp_rec(const void *pa, const void *pb) {
    const det_rec *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    if (score_before(a->score, b->score)) return -1;
    if (score_before(b->score, a->score)) return 1;
    if (a->img != b->img) return a->img < b->img ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

/* Sum of the 101 recall-point samples of one class at threshold bit t (COCOeval's
 * accumulate). rc, pr: scratch of nd. */
static double ap_samples_sum(const det_rec *r, int nd, int npig, int t, double *rc, double *pr) {
    const double eps = 2.220446049250313e-16; /* np.spacing(1) */
    double tp = 0, fp = 0;
    for (int i = 0; i < nd; i++) {
        if (r[i].tp >> t & 1) tp += 1;
        else fp += 1;
        rc[i] = tp / npig;
        pr[i] = tp / (fp + tp + eps);
    }
    for (int i = nd - 1; i > 0; i--)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    double sum = 0;
    int k = 0;
    for (int ri = 0; ri < N_REC; ri++) {
        double thr = ri == N_REC - 1 ? 1.0 : ri * 0.01; /* np.linspace(0, 1, 101) */
        while (k < nd && rc[k] < thr) k++;
        if (k >= nd) break; /* past the last recall: samples stay 0 */
        sum += pr[k];
    }
    return sum;
}

/* np.interp(x, xp, fp, left=left) for increasing xp (ties allowed). */
static double interp(double x, const double *xp, const double *fp, int n, double left) {
    if (n == 0 || x < xp[0]) return left;
    if (x >= xp[n - 1]) return fp[n - 1];
    int lo = 0, hi = n - 1; /* xp[lo] <= x < xp[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (xp[mid] <= x) lo = mid;
        else hi = mid;
    }
    if (x == xp[lo]) return fp[lo];
    return fp[lo] + (fp[hi] - fp[lo]) * (x - xp[lo]) / (xp[hi] - xp[lo]);
}

/* Precision and recall of one class at IoU 0.5 on YOLOv5's confidence grid point px:
 * xp = -confidence (increasing), rec/prec the cumulative curves. */
static void pr_at(double px, const double *xp, const double *rec, const double *prec, int nd,
                  double *p, double *r) {
    *r = interp(-px, xp, rec, nd, 0);
    *p = interp(-px, xp, prec, nd, 1);
}

/* YOLOv5's summary: per class (with ground truth) precision and recall against confidence
 * at IoU 0.5, F1 averaged over classes, box-smoothed (fraction 0.1: 101 points), and the
 * precision and recall means at its first maximum. A class with ground truth but no
 * detection counts as p = r = 0 everywhere, as there. */
static st_status best_f1_pr(const st_map_acc *m, const det_rec *all, const size_t *start,
                            st_map_result *res) {
    size_t most = 1;
    for (int c = 0; c < m->nc; c++) most = ST_MAX(most, start[c + 1] - start[c]);
    double *xp = malloc(sizeof *xp * most * 3);
    double *f1 = calloc(N_CONF + 100, sizeof *f1);
    if (!xp || !f1) {
        free(xp);
        free(f1);
        return ST_ERR_NOMEM;
    }
    double *rec = xp + most, *prec = xp + 2 * most;
    int classes = 0;
    double psum = 0, rsum = 0;
    for (int pass = 0; pass < 2; pass++) {
        int best = 0;
        if (pass == 1) {
            if (!classes) break;
            /* smooth: 50 copies of each end value, then a 101-point moving mean */
            double *y = f1 + 50, sm[N_CONF];
            for (int j = 0; j < N_CONF; j++) y[j] /= classes;
            for (int j = 0; j < 50; j++) f1[j] = y[0], y[N_CONF + j] = y[N_CONF - 1];
            for (int j = 0; j < N_CONF; j++) {
                double s = 0;
                for (int k = 0; k < 101; k++) s += f1[j + k];
                sm[j] = s / 101;
            }
            for (int j = 1; j < N_CONF; j++)
                if (sm[j] > sm[best]) best = j;
        }
        for (int c = 0; c < m->nc; c++) {
            if (!m->n_gt[c]) continue;
            if (pass == 0) classes++;
            const det_rec *r = all + start[c];
            int nd = (int)(start[c + 1] - start[c]);
            double tp = 0, fp = 0;
            for (int i = 0; i < nd; i++) {
                tp += r[i].tp & 1;
                fp += !(r[i].tp & 1);
                xp[i] = -(double)r[i].score;
                rec[i] = tp / (m->n_gt[c] + 1e-16);
                prec[i] = tp / (tp + fp);
            }
            if (nd == 0) continue; /* p = r = 0 */
            if (pass == 1) {
                double p, rr;
                pr_at(best == N_CONF - 1 ? 1.0 : best * (1.0 / 999), xp, rec, prec, nd, &p, &rr);
                psum += p;
                rsum += rr;
                continue;
            }
            for (int j = 0; j < N_CONF; j++) {
                double p, rr;
                pr_at(j == N_CONF - 1 ? 1.0 : j * (1.0 / 999), xp, rec, prec, nd, &p, &rr);
                f1[50 + j] += 2 * p * rr / (p + rr + 1e-16);
            }
        }
    }
    res->precision = classes ? psum / classes : 0;
    res->recall = classes ? rsum / classes : 0;
    free(xp);
    free(f1);
    return ST_OK;
}

st_status st_map_compute(const st_map_acc *m, st_map_result *res, st_error *err) {
    memset(res, 0, sizeof *res);
    int nc = m->nc;
    res->nc = nc;
    res->ap50 = malloc(sizeof *res->ap50 * (size_t)nc);
    res->ap50_95 = malloc(sizeof *res->ap50_95 * (size_t)nc);
    res->n_gt = malloc(sizeof *res->n_gt * (size_t)nc);
    res->n_images = malloc(sizeof *res->n_images * (size_t)nc);
    det_rec *all = malloc(sizeof *all * ST_MAX(m->n_recs, 1));
    size_t *start = calloc((size_t)nc + 1, sizeof *start);
    double *scratch = NULL;
    if (!res->ap50 || !res->ap50_95 || !res->n_gt || !res->n_images || !all || !start) goto oom;
    memcpy(res->n_gt, m->n_gt, sizeof *res->n_gt * (size_t)nc);
    memcpy(res->n_images, m->n_images, sizeof *res->n_images * (size_t)nc);
    if (m->n_recs) memcpy(all, m->recs, sizeof *all * m->n_recs);
    qsort(all, m->n_recs, sizeof *all, cmp_rec);
    for (size_t i = 0; i < m->n_recs; i++) start[all[i].cls + 1]++;
    for (int c = 0; c < nc; c++) start[c + 1] += start[c];
    size_t most = 1;
    for (int c = 0; c < nc; c++) most = ST_MAX(most, start[c + 1] - start[c]);
    scratch = malloc(sizeof *scratch * most * 2);
    if (!scratch) goto oom;

    double s50 = 0, s5095 = 0;
    int classes = 0;
    for (int c = 0; c < nc; c++) {
        if (!m->n_gt[c]) {
            res->ap50[c] = res->ap50_95[c] = -1;
            continue;
        }
        int nd = (int)(start[c + 1] - start[c]);
        double sum_all = 0;
        for (int t = 0; t < N_THR; t++) {
            double s = ap_samples_sum(all + start[c], nd, m->n_gt[c], t, scratch, scratch + most);
            if (t == 0) res->ap50[c] = s / N_REC;
            sum_all += s;
        }
        res->ap50_95[c] = sum_all / (N_REC * N_THR);
        s50 += res->ap50[c];
        s5095 += res->ap50_95[c];
        classes++;
    }
    /* COCO's convention for "nothing to evaluate" */
    res->map50 = classes ? s50 / classes : -1;
    res->map50_95 = classes ? s5095 / classes : -1;
    if (best_f1_pr(m, all, start, res) != ST_OK) goto oom;
    free(all);
    free(start);
    free(scratch);
    return ST_OK;
oom:
    free(all);
    free(start);
    free(scratch);
    st_map_result_free(res);
    return st_errorf(err, ST_ERR_NOMEM, "out of memory (mAP)");
}

void st_map_result_free(st_map_result *r) {
    if (!r) return;
    free(r->ap50);
    free(r->ap50_95);
    free(r->n_gt);
    free(r->n_images);
    r->ap50 = r->ap50_95 = NULL;
    r->n_gt = r->n_images = NULL;
}
