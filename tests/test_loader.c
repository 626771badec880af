/* The prefetching loader on in-memory datasets: determinism across worker counts,
 * coverage, mid-epoch starts, and boxes that follow letterbox, mosaic, scale, translate
 * and flips (checked against painted rectangles). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_loader.h"
#include "st_test_util.h"

/* A dataset whose images live in the cache: image i is filled with value (i * 7) % 251
 * and labelled i % 10 (classification); or, for detection, holds one or two rectangles
 * painted in a colour unique to the image, with matching boxes. */
static st_dataset make_ds(int n, int c, int h, int w, int detect) {
    st_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = detect ? ST_DS_YOLO : ST_DS_FOLDER;
    d.root = strdup("memory");
    d.n_classes = 10;
    d.train.n = n;
    d.train.samples = calloc((size_t)n, sizeof(st_sample));
    for (int i = 0; i < n; i++) {
        st_sample *s = &d.train.samples[i];
        int iw = detect ? w + (i % 3) * 17 : w, ih = detect ? h - (i % 2) * 11 : h;
        ck_assert_int_eq(st_image_alloc(&s->cached, c, ih, iw), ST_OK);
        s->label = i % 10;
        if (!detect) {
            memset(s->cached.data, (i * 7) % 251, (size_t)c * ih * iw);
            continue;
        }
        memset(s->cached.data, 0, (size_t)c * ih * iw);
        s->n_boxes = 1 + i % 2;
        s->boxes = calloc(2, sizeof(st_box));
        for (int k = 0; k < s->n_boxes; k++) {
            /* two non-overlapping rectangles: left and right halves */
            int x0 = k ? iw / 2 + 2 : 2, x1 = k ? iw - 3 : iw / 2 - 3, y0 = 3 + k * 4, y1 = ih - 4;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    for (int ch = 0; ch < c; ch++)
                        s->cached.data[((size_t)y * iw + x) * c + ch] = (uint8_t)(40 + 200 * ch / 3 + k * 8 + (i % 5));
            s->boxes[k] = (st_box){(i + k) % 10, (x0 + x1) / 2.0f / iw, (y0 + y1) / 2.0f / ih,
                                   (float)(x1 - x0) / iw, (float)(y1 - y0) / ih};
        }
    }
    return d;
}

static void free_ds(st_dataset *d) {
    for (int i = 0; i < d->train.n; i++) {
        st_image_free(&d->train.samples[i].cached);
        free(d->train.samples[i].boxes);
    }
    free(d->train.samples);
    free(d->root);
}

/* All batches of one epoch, concatenated. */
static float *run_epoch(const st_dataset *d, st_loader_opts *o, int epoch, int first, int *n_out) {
    st_loader *l;
    st_error err = {0};
    ck_assert_int_eq(st_loader_open(d, &d->train, o, &l, &err), ST_OK);
    ck_assert_int_eq(st_loader_start_epoch(l, epoch, first, &err), ST_OK);
    size_t per = (size_t)o->channels * o->height * o->width;
    float *all = malloc(per * d->train.n * sizeof(float) + 4);
    int n = 0;
    const st_batch *b;
    st_status rc;
    double wait;
    int expect = first;
    while ((b = st_loader_next(l, &wait, &rc, &err))) {
        ck_assert_int_eq(b->index, expect++);
        ck_assert(wait >= 0);
        memcpy(all + per * n, b->images, per * b->n * sizeof(float));
        n += b->n;
    }
    ck_assert_int_eq(rc, ST_OK);
    st_loader_free(l);
    *n_out = n;
    return all;
}

START_TEST(test_loader_deterministic_over_workers_and_covers_epoch) {
    st_dataset d = make_ds(37, 1, 5, 6, 0);
    st_loader_opts o;
    st_loader_opts_default(&o);
    o.batch = 8, o.channels = 1, o.height = 5, o.width = 6, o.drop_last = 0;
    o.workers = 1, o.prefetch = 2;
    int n1, n3;
    float *a = run_epoch(&d, &o, 3, 0, &n1);
    o.workers = 3, o.prefetch = 5;
    float *b = run_epoch(&d, &o, 3, 0, &n3);
    ck_assert_int_eq(n1, 37);
    ck_assert_int_eq(n3, 37);
    ck_assert_mem_eq(a, b, 37 * 30 * sizeof(float));
    /* every image exactly once: its constant value identifies it */
    int seen[37] = {0};
    for (int i = 0; i < 37; i++) {
        int v = (int)lroundf(a[i * 30] * 255.0f);
        int found = -1;
        for (int k = 0; k < 37; k++)
            if ((k * 7) % 251 == v) found = k;
        ck_assert_int_ge(found, 0);
        seen[found]++;
        for (int p = 1; p < 30; p++) ck_assert_float_eq(a[i * 30 + p], a[i * 30]);
    }
    for (int k = 0; k < 37; k++) ck_assert_int_eq(seen[k], 1);
    /* another epoch, another order */
    int n4;
    float *c = run_epoch(&d, &o, 4, 0, &n4);
    ck_assert(memcmp(a, c, 37 * 30 * sizeof(float)) != 0);
    /* starting mid-epoch gives the tail of the same epoch */
    int n5;
    float *t = run_epoch(&d, &o, 3, 2, &n5);
    ck_assert_int_eq(n5, 37 - 16);
    ck_assert_mem_eq(t, a + 16 * 30, (size_t)n5 * 30 * sizeof(float));
    free(a), free(b), free(c), free(t);
    /* drop_last */
    o.drop_last = 1;
    st_loader *l;
    st_error err = {0};
    ck_assert_int_eq(st_loader_open(&d, &d.train, &o, &l, &err), ST_OK);
    ck_assert_int_eq(st_loader_num_batches(l), 4);
    st_loader_free(l);
    free_ds(&d);
}
END_TEST

/* For each box of a prepared sample, the pixel at its centre must carry a rectangle's
 * colour: channel 0 of every rectangle is in [40, 52], the background is 0 and the
 * letterbox / mosaic fill 114, so a box that does not follow the geometry fails. */
static void check_boxes_follow_pixels(int augment) {
    const int S = 64, C = 3;
    st_dataset d = make_ds(12, C, 40, 50, 1);
    st_loader_opts o;
    st_loader_opts_default(&o);
    o.batch = 4, o.channels = C, o.height = o.width = S, o.detect = 1, o.augment = augment;
    o.aug.hsv_h = o.aug.hsv_s = o.aug.hsv_v = 0; /* keep colours exact */
    o.mean = 0, o.std = 1;
    st_loader *l;
    st_error err = {0};
    ck_assert_int_eq(st_loader_open(&d, &d.train, &o, &l, &err), ST_OK);
    ck_assert_int_eq(st_loader_start_epoch(l, 0, 0, &err), ST_OK);
    float *img = malloc((size_t)C * S * S * sizeof(float));
    st_batch_box *boxes = NULL;
    int cap = 0, checked = 0;
    for (int epoch = 0; epoch < 3; epoch++)
        for (int pos = 0; pos < 12; pos++) {
            int n = 0;
            ck_assert_int_eq(st_loader_prepare_sample(l, epoch, pos, img, NULL, &boxes, &n, &cap, &err), ST_OK);
            if (!augment) ck_assert_int_ge(n, 1);
            for (int k = 0; k < n; k++) {
                st_batch_box *b = &boxes[k];
                ck_assert(b->w > 0 && b->h > 0 && b->cx >= 0 && b->cx <= 1 && b->cy >= 0 && b->cy <= 1);
                int x = (int)(b->cx * S), y = (int)(b->cy * S);
                float v = img[(size_t)y * S + x] * 255; /* channel 0 */
                ck_assert_msg(v > 39.5f && v < 52.5f, "box centre (%d,%d) is not a rectangle (%.1f)", x, y, v);
                checked++;
            }
        }
    ck_assert_int_gt(checked, augment ? 10 : 12);
    free(img);
    free(boxes);
    st_loader_free(l);
    free_ds(&d);
}

START_TEST(test_loader_boxes_letterbox) { check_boxes_follow_pixels(0); }
END_TEST

START_TEST(test_loader_boxes_mosaic_and_affine) { check_boxes_follow_pixels(1); }
END_TEST

START_TEST(test_loader_letterbox_box_values) {
    /* one 100x50 image, box covering its middle: letterboxed to 64x64 the image is scaled
     * by 0.64 and padded 16 px top and bottom */
    st_dataset d;
    memset(&d, 0, sizeof d);
    d.root = strdup("memory");
    d.n_classes = 2;
    d.train.n = 1;
    d.train.samples = calloc(1, sizeof(st_sample));
    st_sample *s = &d.train.samples[0];
    st_image_alloc(&s->cached, 3, 50, 100);
    memset(s->cached.data, 200, 3 * 50 * 100);
    s->n_boxes = 1;
    s->boxes = calloc(1, sizeof(st_box));
    s->boxes[0] = (st_box){1, 0.5f, 0.5f, 0.5f, 0.4f};
    st_loader_opts o;
    st_loader_opts_default(&o);
    o.batch = 1, o.channels = 3, o.height = o.width = 64, o.detect = 1, o.augment = 0;
    st_loader *l;
    st_error err = {0};
    ck_assert_int_eq(st_loader_open(&d, &d.train, &o, &l, &err), ST_OK);
    float img[3 * 64 * 64];
    st_batch_box *boxes = NULL;
    int n = 0, cap = 0;
    ck_assert_int_eq(st_loader_prepare_sample(l, 0, 0, img, NULL, &boxes, &n, &cap, &err), ST_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(boxes[0].cls, 1);
    ck_assert_float_eq_tol(boxes[0].cx, 0.5f, 1e-4);
    ck_assert_float_eq_tol(boxes[0].cy, 0.5f, 1e-4);
    ck_assert_float_eq_tol(boxes[0].w, 0.5f, 1e-4);
    ck_assert_float_eq_tol(boxes[0].h, 0.4f * 32 / 64, 1e-4);
    /* padding rows hold the fill value 114, the image rows 200 */
    ck_assert_float_eq_tol(img[0], 114.0f / 255, 1e-6);
    ck_assert_float_eq_tol(img[32 * 64 + 32], 200.0f / 255, 1e-6);
    free(boxes);
    st_loader_free(l);
    st_image_free(&s->cached);
    free(s->boxes);
    free(d.train.samples);
    free(d.root);
}
END_TEST

Suite *loader_suite(void) {
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_loader_deterministic_over_workers_and_covers_epoch);
    tcase_add_test(tc, test_loader_boxes_letterbox);
    tcase_add_test(tc, test_loader_boxes_mosaic_and_affine);
    tcase_add_test(tc, test_loader_letterbox_box_values);
    suite_add_tcase(s, tc);
    return s;
}
