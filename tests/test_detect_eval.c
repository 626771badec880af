/* NMS and COCO mAP on hand-made cases whose answers are worked out in the comments, and
 * a randomized comparison with COCOeval (tools/coco_map_ref.py: pycocotools itself when
 * installed, else its numpy port of evaluateImg/accumulate).
 *
 * The 101 recall points are r_i = i / 100. A sample takes the enveloped precision at
 * the first detection (in score order) whose cumulative recall reaches r_i, and 0 when
 * none does; AP is their mean. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_detect.h"
#include "st_rng.h"
#include "st_test_util.h"

static st_det D(float x1, float y1, float x2, float y2, float score, int cls) {
    return (st_det){x1, y1, x2, y2, score, cls};
}

static st_gt G(float x1, float y1, float x2, float y2, int cls) {
    return (st_gt){x1, y1, x2, y2, cls};
}

/* Runs one evaluation over images given as (dets, n, gts, n_gt) spans. */
typedef struct {
    const st_det *d;
    int n;
    const st_gt *g;
    int ng;
} img_case;

static st_map_result eval_images(int nc, const img_case *im, int n_img) {
    st_map_acc *m = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_map_new(nc, &m, &err), ST_OK);
    for (int i = 0; i < n_img; i++)
        ck_assert_int_eq(st_map_add(m, im[i].d, im[i].n, im[i].g, im[i].ng, &err), ST_OK);
    st_map_result r;
    ck_assert_int_eq(st_map_compute(m, &r, &err), ST_OK);
    st_map_free(m);
    return r;
}

static st_map_result eval1(int nc, const st_det *d, int n, const st_gt *g, int ng) {
    img_case c = {d, n, g, ng};
    return eval_images(nc, &c, 1);
}

#define EPS 1e-12

START_TEST(test_iou) {
    st_det a = D(0, 0, 10, 10, 1, 0), b = D(2, 2, 7, 7, 1, 0);
    ck_assert_float_eq_tol(st_box_iou(&a, &b), 0.25f, 1e-7f); /* nested: 25 / 100 */
    ck_assert_float_eq_tol(st_box_iou(&a, &a), 1.0f, 1e-7f);
    st_det c = D(20, 20, 30, 30, 1, 0), e = D(10, 0, 20, 10, 1, 0);
    ck_assert_float_eq(st_box_iou(&a, &c), 0.0f); /* disjoint */
    ck_assert_float_eq(st_box_iou(&a, &e), 0.0f); /* touching edge: no +1 pixel */
    st_det h = D(5, 0, 15, 10, 1, 0);
    ck_assert_float_eq_tol(st_box_iou(&a, &h), 50.0f / 150.0f, 1e-7f);
    st_det z = D(3, 3, 3, 8, 1, 0); /* zero width */
    ck_assert_float_eq(st_box_iou(&a, &z), 0.0f);
    ck_assert_float_eq(st_box_iou(&z, &z), 0.0f);
    st_det inv = D(10, 10, 0, 0, 1, 0); /* inverted corners: no area */
    ck_assert_float_eq(st_box_iou(&a, &inv), 0.0f);
}
END_TEST

START_TEST(test_nms) {
    /* identical boxes: one survives, the best */
    st_det d[4] = {D(0, 0, 10, 10, .5f, 0), D(0, 0, 10, 10, .9f, 0), D(0, 0, 10, 10, .7f, 0),
                   D(50, 50, 60, 60, .1f, 0)};
    int k = st_nms(d, 4, 0.45f, 300, 1);
    ck_assert_int_eq(k, 2);
    ck_assert_float_eq(d[0].score, .9f);
    ck_assert_float_eq(d[1].score, .1f);

    /* class-aware keeps one per class; agnostic keeps one */
    st_det e[3] = {D(0, 0, 10, 10, .5f, 0), D(0, 0, 10, 10, .9f, 1), D(0, 0, 10, 10, .7f, 0)};
    st_det f[3];
    memcpy(f, e, sizeof e);
    ck_assert_int_eq(st_nms(e, 3, 0.45f, 300, 1), 2);
    ck_assert(e[0].cls == 1 && e[0].score == .9f && e[1].cls == 0 && e[1].score == .7f);
    ck_assert_int_eq(st_nms(f, 3, 0.45f, 300, 0), 1);
    ck_assert_int_eq(f[0].cls, 1);

    /* threshold is strict: IoU exactly 1/3 survives iou_thr 1/3 only as "not >" */
    st_det g[2] = {D(0, 0, 10, 10, .9f, 0), D(5, 0, 15, 10, .8f, 0)}; /* IoU 50/150 */
    st_det g2[2];
    memcpy(g2, g, sizeof g);
    ck_assert_int_eq(st_nms(g, 2, 0.34f, 300, 1), 2);
    ck_assert_int_eq(st_nms(g2, 2, 0.33f, 300, 1), 1);

    /* ties: equal scores keep their input order */
    st_det t[3] = {D(0, 0, 1, 1, .5f, 7), D(10, 10, 11, 11, .5f, 8), D(20, 20, 21, 21, .5f, 9)};
    ck_assert_int_eq(st_nms(t, 3, 0.5f, 300, 1), 3);
    ck_assert(t[0].cls == 7 && t[1].cls == 8 && t[2].cls == 9);

    /* max_det caps the kept count; 0 means no cap; n = 0 is fine */
    st_det u[5];
    for (int i = 0; i < 5; i++) u[i] = D(i * 20.f, 0, i * 20.f + 10, 10, (float)i / 10, 0);
    ck_assert_int_eq(st_nms(u, 5, 0.5f, 2, 1), 2);
    ck_assert(u[0].score == .4f && u[1].score == .3f);
    for (int i = 0; i < 5; i++) u[i] = D(i * 20.f, 0, i * 20.f + 10, 10, (float)i / 10, 0);
    ck_assert_int_eq(st_nms(u, 5, 0.5f, 0, 1), 5);
    ck_assert_int_eq(st_nms(u, 0, 0.5f, 10, 1), 0);

    /* a chain a-b-c where b overlaps both: a suppresses b, c then survives (greedy) */
    st_det ch[3] = {D(0, 0, 10, 10, .9f, 0), D(4, 0, 14, 10, .8f, 0), D(8, 0, 18, 10, .7f, 0)};
    ck_assert_int_eq(st_nms(ch, 3, 0.3f, 300, 1), 2);
    ck_assert(ch[0].score == .9f && ch[1].score == .7f);
}
END_TEST

/* Random boxes against torchvision's formulation (keep the best unsuppressed box, then
 * suppress every later box overlapping it by IoU > thr), written independently. */
START_TEST(test_nms_random) {
    enum { N = 1500 };
    static st_det d[N], ref[N];
    static unsigned char gone[N];
    st_rng rng;
    for (int trial = 0; trial < 6; trial++) {
        st_rng_seed(&rng, 77 + trial);
        int aware = trial & 1, max_det = trial < 4 ? 0 : 50;
        for (int i = 0; i < N; i++) {
            float x = st_rng_uniform(&rng) * 300, y = st_rng_uniform(&rng) * 300;
            float w = 5 + st_rng_uniform(&rng) * 50, h = 5 + st_rng_uniform(&rng) * 50;
            /* scores on a grid: many ties, which must keep input order */
            d[i] = D(x, y, x + w, y + h, (float)st_rng_below(&rng, 50) / 50, (int)st_rng_below(&rng, 3));
        }
        /* reference order: stable by score, via an insertion sort */
        memcpy(ref, d, sizeof d);
        for (int i = 1; i < N; i++) {
            st_det x = ref[i];
            int j = i;
            for (; j > 0 && ref[j - 1].score < x.score; j--) ref[j] = ref[j - 1];
            ref[j] = x;
        }
        memset(gone, 0, sizeof gone);
        int nref = 0;
        for (int i = 0; i < N; i++) {
            if (gone[i]) continue;
            if (max_det && nref == max_det) break;
            ref[nref++] = ref[i];
            for (int j = i + 1; j < N; j++)
                if ((!aware || ref[j].cls == ref[i].cls) && st_box_iou(&ref[i], &ref[j]) > 0.45f)
                    gone[j] = 1;
        }
        int k = st_nms(d, N, 0.45f, max_det, aware);
        ck_assert_int_eq(k, nref);
        ck_assert_int_eq(memcmp(d, ref, sizeof *d * (size_t)k), 0);
    }
}
END_TEST

START_TEST(test_map_basic) {
    st_gt gt[2] = {G(0, 0, 10, 10, 0), G(20, 20, 40, 40, 0)};
    /* no predictions: recall never reaches any r_i > 0, and r_0 = 0 has no detection
     * either: AP 0 */
    st_map_result r = eval1(1, NULL, 0, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], 0, EPS);
    ck_assert_double_eq_tol(r.map50_95, 0, EPS);
    ck_assert_int_eq(r.n_gt[0], 2);
    ck_assert_int_eq(r.n_images[0], 1);
    ck_assert_double_eq(r.precision, 0);
    ck_assert_double_eq(r.recall, 0);
    st_map_result_free(&r);

    /* perfect detections: every sample is tp / (tp + eps) = 1 - 2^-52 */
    st_det d[2] = {D(0, 0, 10, 10, .8f, 0), D(20, 20, 40, 40, .7f, 0)};
    r = eval1(1, d, 2, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], 1, EPS);
    ck_assert_double_eq_tol(r.ap50_95[0], 1, EPS);
    ck_assert_double_eq_tol(r.map50, 1, EPS);
    ck_assert_double_eq_tol(r.precision, 1, 1e-9);
    ck_assert_double_eq_tol(r.recall, 1, 1e-9);
    st_map_result_free(&r);
}
END_TEST

START_TEST(test_map_no_gt) {
    /* class 1 has no ground truth anywhere: -1 and out of the mean, which is class 0's
     * perfect 1. Class 1's detection does not hurt class 0. */
    st_gt gt[1] = {G(0, 0, 10, 10, 0)};
    st_det d[2] = {D(0, 0, 10, 10, .9f, 0), D(0, 0, 10, 10, .95f, 1)};
    st_map_result r = eval1(2, d, 2, gt, 1);
    ck_assert_double_eq(r.ap50[1], -1);
    ck_assert_double_eq(r.ap50_95[1], -1);
    ck_assert_int_eq(r.n_gt[1], 0);
    ck_assert_int_eq(r.n_images[1], 0);
    ck_assert_double_eq_tol(r.map50, 1, EPS);
    ck_assert_double_eq_tol(r.map50_95, 1, EPS);
    st_map_result_free(&r);

    /* an image without ground truth only adds false positives. Its detection (0.95)
     * ranks before the true positive (0.9): cumulative recall [0, 1], precision
     * [0, 1/2], enveloped [1/2, 1/2]; every r_i is first reached at or before the TP:
     * AP = 1/2. Ranked after the TP (0.5), it cannot lower the envelope: AP = 1. */
    st_det d1[1] = {D(0, 0, 10, 10, .9f, 0)};
    st_det fp_hi[1] = {D(0, 0, 10, 10, .95f, 0)}, fp_lo[1] = {D(0, 0, 10, 10, .5f, 0)};
    img_case hi[2] = {{d1, 1, gt, 1}, {fp_hi, 1, NULL, 0}};
    r = eval_images(1, hi, 2);
    ck_assert_double_eq_tol(r.ap50[0], 0.5, EPS);
    ck_assert_int_eq(r.n_images[0], 1);
    st_map_result_free(&r);
    img_case lo[2] = {{d1, 1, gt, 1}, {fp_lo, 1, NULL, 0}};
    r = eval_images(1, lo, 2);
    ck_assert_double_eq_tol(r.ap50[0], 1, EPS);
    st_map_result_free(&r);

    /* nothing anywhere: no class to average, COCO's -1 */
    r = eval1(3, NULL, 0, NULL, 0);
    ck_assert_double_eq(r.map50, -1);
    ck_assert_double_eq(r.map50_95, -1);
    st_map_result_free(&r);
}
END_TEST

START_TEST(test_map_tp_fp) {
    /* two ground truths, a TP (0.9) then an FP (0.8), the second object missed:
     * recall [1/2, 1/2], precision [1, 1/2] -> envelope [1, 1/2]. r_0..r_50 (51 points,
     * 50 * 0.01 == 0.5 in doubles) are reached at the TP: 1; r_51..r_100 never: 0.
     * AP = 51/101 at every threshold (the FP is disjoint, the TP exact). */
    st_gt gt[2] = {G(0, 0, 10, 10, 0), G(50, 50, 60, 60, 0)};
    st_det d[2] = {D(0, 0, 10, 10, .9f, 0), D(100, 100, 110, 110, .8f, 0)};
    st_map_result r = eval1(1, d, 2, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], 51.0 / 101, EPS);
    ck_assert_double_eq_tol(r.ap50_95[0], 51.0 / 101, EPS);
    st_map_result_free(&r);

    /* reversed order (FP 0.9, TP 0.8): recall [0, 1/2], precision [0, 1/2] -> envelope
     * [1/2, 1/2]; r_0 is reached by the FP (recall 0 >= 0) with enveloped 1/2, r_1..r_50
     * at the TP: 1/2. AP = 51 * 0.5 / 101. */
    d[0].score = .8f;
    d[1].score = .9f;
    r = eval1(1, d, 2, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], 25.5 / 101, EPS);
    st_map_result_free(&r);
}
END_TEST

START_TEST(test_map_duplicates) {
    /* ground truths A, B; detections: A (0.9), A again (0.8), B (0.7). The duplicate is a
     * false positive: TP FP TP, recall [1/2, 1/2, 1], precision [1, 1/2, 2/3] ->
     * envelope [1, 2/3, 2/3]. r_0..r_50 at the first: 1 (51 points); r_51..r_100 at the
     * third: 2/3 (50 points). AP = (51 + 50 * 2/3) / 101. */
    st_gt gt[2] = {G(0, 0, 10, 10, 0), G(50, 50, 60, 60, 0)};
    st_det d[3] = {D(0, 0, 10, 10, .9f, 0), D(0, 0, 10, 10, .8f, 0), D(50, 50, 60, 60, .7f, 0)};
    st_map_result r = eval1(1, d, 3, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], (51 + 50 * 2.0 / 3) / 101, EPS);
    st_map_result_free(&r);
}
END_TEST

START_TEST(test_map_best_unmatched) {
    /* COCO's rule: a detection takes the unmatched ground truth of highest IoU, not the
     * first one above the threshold. Det 1 [3,0,13,10] overlaps A [0,0,10,10] by 70/130
     * and B [4,0,14,10] by 90/110: it takes B. Det 2, exactly A, then takes A: AP50 = 1.
     * (Taking A first would leave det 2 with B at 60/140 < 0.5: AP50 = 51/101.) */
    st_gt gt[2] = {G(0, 0, 10, 10, 0), G(4, 0, 14, 10, 0)};
    st_det d[2] = {D(3, 0, 13, 10, .9f, 0), D(0, 0, 10, 10, .8f, 0)};
    st_map_result r = eval1(1, d, 2, gt, 2);
    ck_assert_double_eq_tol(r.ap50[0], 1, EPS);
    st_map_result_free(&r);
}
END_TEST

START_TEST(test_map_thresholds) {
    /* one ground truth [0,0,100,100] and one detection [0,0,100,h] of IoU h/100: it is a
     * TP (AP 1) at every threshold <= IoU and a miss (AP 0) above, so AP50:95 is the
     * share of the ten thresholds reached. 0.74: 0.50..0.70 = 5/10; 0.76 adds 0.75:
     * 6/10; exactly 0.75 counts (IoU >= threshold): 6/10; 0.49 misses 0.50: AP50 0. */
    const float hs[] = {74, 76, 75, 49, 50, 95, 100};
    const double want[] = {0.5, 0.6, 0.6, 0.0, 0.1, 1.0, 1.0};
    st_gt gt[1] = {G(0, 0, 100, 100, 0)};
    for (int i = 0; i < 7; i++) {
        st_det d[1] = {D(0, 0, 100, hs[i], .9f, 0)};
        st_map_result r = eval1(1, d, 1, gt, 1);
        ck_assert_msg(fabs(r.ap50_95[0] - want[i]) < EPS, "IoU %.2f: AP50:95 %.15g, want %g",
                      hs[i] / 100, r.ap50_95[0], want[i]);
        ck_assert_double_eq_tol(r.ap50[0], hs[i] >= 50 ? 1 : 0, EPS);
        st_map_result_free(&r);
    }
    /* two classes, 0.74 and 0.76: the mean moves by (0.6 - 0.5) / 2 */
    st_gt g2[2] = {G(0, 0, 100, 100, 0), G(0, 0, 100, 100, 1)};
    st_det d2[2] = {D(0, 0, 100, 74, .9f, 0), D(0, 0, 100, 74, .9f, 1)};
    st_map_result a = eval1(2, d2, 2, g2, 2);
    d2[1].y2 = 76;
    st_map_result b = eval1(2, d2, 2, g2, 2);
    ck_assert_double_eq_tol(b.map50_95 - a.map50_95, 0.05, EPS);
    ck_assert_double_eq_tol(b.map50 - a.map50, 0, EPS);
    st_map_result_free(&a);
    st_map_result_free(&b);
}
END_TEST

START_TEST(test_map_errors) {
    st_map_acc *m = NULL;
    st_error err = {0};
    ck_assert_int_ne(st_map_new(0, &m, &err), ST_OK);
    ck_assert_int_eq(st_map_new(2, &m, &err), ST_OK);
    st_det d[1] = {D(0, 0, 1, 1, .5f, 2)};
    ck_assert_int_eq(st_map_add(m, d, 1, NULL, 0, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 2"));
    st_gt g[1] = {G(0, 0, 1, 1, -1)};
    ck_assert_int_eq(st_map_add(m, NULL, 0, g, 1, &err), ST_ERR_INPUT);
    st_map_free(m);
    st_map_free(NULL);
    st_map_result_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------- randomized vs COCO */

/* Scenes of a few objects per class; detections are jittered copies (IoU spread over the
 * thresholds), duplicates, misses, strays, and scores on a coarse grid so that ties
 * across and within images exercise the ordering rules. */
static int make_scene(st_rng *rng, int nc, st_det *d, int *nd, st_gt *g, int *ng) {
    *nd = *ng = 0;
    int n_obj = (int)(st_rng_next(rng) % 6);
    for (int o = 0; o < n_obj; o++) {
        float x = st_rng_uniform(rng) * 200, y = st_rng_uniform(rng) * 200;
        float w = 5 + st_rng_uniform(rng) * 60, h = 5 + st_rng_uniform(rng) * 60;
        int c = (int)(st_rng_next(rng) % (uint64_t)nc);
        g[(*ng)++] = G(x, y, x + w, y + h, c);
        int copies = (int)(st_rng_next(rng) % 3); /* 0: missed, 2: a duplicate */
        for (int k = 0; k < copies; k++) {
            float j = 0.3f * st_rng_uniform(rng);
            float dx = (st_rng_uniform(rng) - .5f) * j * w, dy = (st_rng_uniform(rng) - .5f) * j * h;
            d[(*nd)++] = D(x + dx, y + dy, x + w + dx * 0.5f, y + h - dy, 
                           (float)(st_rng_next(rng) % 10) / 10 + 0.05f, c);
        }
    }
    int strays = (int)(st_rng_next(rng) % 3);
    for (int k = 0; k < strays; k++) {
        float x = st_rng_uniform(rng) * 250, y = st_rng_uniform(rng) * 250;
        d[(*nd)++] = D(x, y, x + 20, y + 30, (float)(st_rng_next(rng) % 10) / 10 + 0.05f,
                       (int)(st_rng_next(rng) % (uint64_t)nc));
    }
    return 0;
}

static int read_doubles(const char *s, const char *key, double *out, int n) {
    const char *p = strstr(s, key);
    if (!p || !(p = strchr(p, '['))) return 0;
    p++;
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p) return 0;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return 1;
}

START_TEST(test_map_vs_coco) {
    if (stt_run("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        stt_skip("python3-numpy missing (tools/install-deps.sh --peers): COCO comparison skipped");
        return;
    }
    char dir[1024], in[1200], out[1200], cmd[4096], text[65536];
    stt_tmpdir(dir, sizeof dir, "coco_ref");
    const int nc = 4, n_img = 40, trials = 6;
    const char *reference = NULL;
    for (int trial = 0; trial < trials; trial++) {
        st_rng rng;
        st_rng_seed(&rng, 1000 + trial);
        st_map_acc *m = NULL;
        st_error err = {0};
        ck_assert_int_eq(st_map_new(nc, &m, &err), ST_OK);
        snprintf(in, sizeof in, "%s/in%d.json", dir, trial);
        snprintf(out, sizeof out, "%s/out%d.json", dir, trial);
        FILE *f = fopen(in, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"nc\": %d, \"images\": [", nc);
        int total_dets = 0;
        for (int i = 0; i < n_img; i++) {
            st_det d[64];
            st_gt g[16];
            int nd, ng;
            make_scene(&rng, nc, d, &nd, g, &ng);
            if (i == 0 && nd == 0) d[nd++] = D(1, 1, 5, 5, .5f, 0); /* loadRes needs one */
            total_dets += nd;
            ck_assert_int_eq(st_map_add(m, d, nd, g, ng, &err), ST_OK);
            fprintf(f, "%s{\"dets\": [", i ? ", " : "");
            /* %.9g round-trips a float exactly through Python's double */
            for (int k = 0; k < nd; k++)
                fprintf(f, "%s[%.9g, %.9g, %.9g, %.9g, %.9g, %d]", k ? ", " : "", d[k].x1,
                        d[k].y1, d[k].x2, d[k].y2, d[k].score, d[k].cls);
            fprintf(f, "], \"gt\": [");
            for (int k = 0; k < ng; k++)
                fprintf(f, "%s[%.9g, %.9g, %.9g, %.9g, %d]", k ? ", " : "", g[k].x1, g[k].y1,
                        g[k].x2, g[k].y2, g[k].cls);
            fprintf(f, "]}");
        }
        fprintf(f, "]}\n");
        fclose(f);
        ck_assert_int_gt(total_dets, 0);
        st_map_result r;
        ck_assert_int_eq(st_map_compute(m, &r, &err), ST_OK);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/coco_map_ref.py '%s' '%s'",
                 ST_SOURCE_DIR, in, out);
        ck_assert_int_eq(stt_run(cmd), 0);
        f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        size_t len = fread(text, 1, sizeof text - 1, f);
        text[len] = 0;
        fclose(f);
        reference = strstr(text, "pycocotools") ? "pycocotools" : "numpy port of COCOeval";
        double ap50[8], ap[8];
        ck_assert(read_doubles(text, "\"ap50\"", ap50, nc));
        ck_assert(read_doubles(text, "\"ap50_95\"", ap, nc));
        for (int c = 0; c < nc; c++) {
            ck_assert_msg(fabs(r.ap50[c] - ap50[c]) < 1e-9, "trial %d class %d: AP50 %.12f vs %.12f",
                          trial, c, r.ap50[c], ap50[c]);
            ck_assert_msg(fabs(r.ap50_95[c] - ap[c]) < 1e-9,
                          "trial %d class %d: AP50:95 %.12f vs %.12f", trial, c, r.ap50_95[c], ap[c]);
        }
        double pr[2];
        const char *ps = strstr(text, "\"precision\": "), *rs = strstr(text, "\"recall\": ");
        ck_assert(ps && sscanf(ps, "\"precision\": %lf", &pr[0]) == 1);
        ck_assert(rs && sscanf(rs, "\"recall\": %lf", &pr[1]) == 1);
        ck_assert_msg(fabs(r.precision - pr[0]) < 1e-9 && fabs(r.recall - pr[1]) < 1e-9,
                      "trial %d: P %.12f R %.12f vs %.12f %.12f", trial, r.precision, r.recall,
                      pr[0], pr[1]);
        st_map_result_free(&r);
        st_map_free(m);
    }
    printf("detect_eval: mAP matches the %s on %d random sets\n", reference, trials);
}
END_TEST

Suite *detect_eval_suite(void) {
    Suite *s = suite_create("detect_eval");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_iou);
    tcase_add_test(tc, test_nms);
    tcase_add_test(tc, test_nms_random);
    tcase_add_test(tc, test_map_basic);
    tcase_add_test(tc, test_map_no_gt);
    tcase_add_test(tc, test_map_tp_fp);
    tcase_add_test(tc, test_map_duplicates);
    tcase_add_test(tc, test_map_best_unmatched);
    tcase_add_test(tc, test_map_thresholds);
    tcase_add_test(tc, test_map_errors);
    tcase_add_test(tc, test_map_vs_coco);
    suite_add_tcase(s, tc);
    return s;
}
