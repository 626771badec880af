/* Image operations: resize, letterbox, flip, HSV jitter, affine warp, CHW conversion,
 * each against values worked out by hand or against an exact identity. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_image.h"
#include "st_rng.h"
#include "st_test_util.h"

static st_image make(int c, int h, int w, uint64_t seed) {
    st_image im;
    ck_assert_int_eq(st_image_alloc(&im, c, h, w), ST_OK);
    for (size_t i = 0; i < (size_t)c * h * w; i++) im.data[i] = (uint8_t)(st_hash64(seed * 1000003 + i) >> 9);
    return im;
}

static uint8_t px(const st_image *im, int y, int x, int ch) {
    return im->data[((size_t)y * im->w + x) * im->c + ch];
}

START_TEST(test_alloc) {
    st_image im;
    ck_assert_int_eq(st_image_alloc(&im, 2, 4, 4), ST_ERR_INTERNAL);
    ck_assert_ptr_null(im.data);
    ck_assert_int_eq(st_image_alloc(&im, 3, 0, 4), ST_ERR_INTERNAL);
    ck_assert_int_eq(st_image_alloc(&im, 3, 5, 4), ST_OK);
    ck_assert(im.c == 3 && im.h == 5 && im.w == 4 && im.data);
    st_image_free(&im);
    ck_assert_ptr_null(im.data);
    st_image_free(&im); /* twice is harmless */
    ck_assert_str_eq(st_img_problem_name(ST_IMG_TRUNCATED), "truncated PNG");
}
END_TEST

START_TEST(test_resize) {
    st_image a, b;
    /* a constant image stays constant, up and down, any aspect */
    int sizes[][2] = {{11, 64}, {64, 11}, {5, 3}, {100, 100}};
    for (int c = 1; c <= 3; c += 2) {
        ck_assert_int_eq(st_image_alloc(&a, c, 23, 37), ST_OK);
        memset(a.data, 77, (size_t)c * 23 * 37);
        for (int k = 0; k < 4; k++) {
            ck_assert_int_eq(st_image_alloc(&b, c, sizes[k][0], sizes[k][1]), ST_OK);
            st_image_resize_bilinear(&a, &b);
            for (size_t i = 0; i < (size_t)c * b.h * b.w; i++) ck_assert_int_eq(b.data[i], 77);
            st_image_free(&b);
        }
        st_image_free(&a);
    }
    /* 2x up along x: centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped) */
    ck_assert_int_eq(st_image_alloc(&a, 1, 1, 2), ST_OK);
    a.data[0] = 0, a.data[1] = 100;
    ck_assert_int_eq(st_image_alloc(&b, 1, 2, 4), ST_OK);
    st_image_resize_bilinear(&a, &b);
    static const uint8_t up[4] = {0, 25, 75, 100};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) ck_assert_int_eq(px(&b, y, x, 0), up[x]);
    st_image_free(&a);
    st_image_free(&b);
    /* 2x down: each output is the mean of a pair (centres at 0.5 and 2.5) */
    ck_assert_int_eq(st_image_alloc(&a, 3, 4, 4), ST_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int ch = 0; ch < 3; ch++) a.data[(y * 4 + x) * 3 + ch] = (uint8_t)(40 * x + 10 * ch + 20 * (y >= 2));
    ck_assert_int_eq(st_image_alloc(&b, 3, 2, 2), ST_OK);
    st_image_resize_bilinear(&a, &b);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int ch = 0; ch < 3; ch++) ck_assert_int_eq(px(&b, y, x, ch), 20 + 80 * x + 10 * ch + 20 * y);
    st_image_free(&a);
    st_image_free(&b);
    /* same size: identity */
    a = make(3, 9, 14, 1);
    ck_assert_int_eq(st_image_alloc(&b, 3, 9, 14), ST_OK);
    st_image_resize_bilinear(&a, &b);
    ck_assert_int_eq(memcmp(a.data, b.data, 3 * 9 * 14), 0);
    st_image_free(&a);
    st_image_free(&b);
    /* wider than one column chunk: the chunked tables join without a seam */
    ck_assert_int_eq(st_image_alloc(&a, 1, 2, 3), ST_OK);
    memset(a.data, 9, 6);
    ck_assert_int_eq(st_image_alloc(&b, 1, 3, 2500), ST_OK);
    st_image_resize_bilinear(&a, &b);
    for (int i = 0; i < 3 * 2500; i++) ck_assert_int_eq(b.data[i], 9);
    st_image_free(&a);
    st_image_free(&b);
}
END_TEST

/* OpenCV-aligned source coordinate (clamped) for the reference resize. */
static void ref_coord(int i, double scale, int n, int *i0, int *i1, double *f) {
    double s = (i + 0.5) * scale - 0.5;
    int k = (int)floor(s);
    *f = s - k;
    if (k < 0) k = 0, *f = 0;
    if (k >= n - 1) k = n - 1, *f = 0;
    *i0 = k;
    *i1 = ST_MIN(k + 1, n - 1);
}

START_TEST(test_resize_random) {
    /* random sizes up and down against a direct per-pixel reference (row caching and
     * column chunks must not change a value by more than float rounding) */
    st_rng r;
    st_rng_seed(&r, 3);
    for (int it = 0; it < 60; it++) {
        int c = it % 2 ? 3 : 1;
        int sh = 1 + (int)st_rng_below(&r, 40), sw = 1 + (int)st_rng_below(&r, 40);
        int dh = 1 + (int)st_rng_below(&r, 70), dw = it == 7 ? 2100 : 1 + (int)st_rng_below(&r, 70);
        st_image a = make(c, sh, sw, (uint64_t)it), b;
        ck_assert_int_eq(st_image_alloc(&b, c, dh, dw), ST_OK);
        st_image_resize_bilinear(&a, &b);
        for (int y = 0; y < dh; y++) {
            int y0, y1, x0, x1;
            double fy, fx;
            ref_coord(y, (double)sh / dh, sh, &y0, &y1, &fy);
            for (int x = 0; x < dw; x++) {
                ref_coord(x, (double)sw / dw, sw, &x0, &x1, &fx);
                for (int ch = 0; ch < c; ch++) {
                    double t = px(&a, y0, x0, ch) + (px(&a, y0, x1, ch) - px(&a, y0, x0, ch)) * fx;
                    double u = px(&a, y1, x0, ch) + (px(&a, y1, x1, ch) - px(&a, y1, x0, ch)) * fx;
                    double want = t + (u - t) * fy;
                    ck_assert_msg(fabs(px(&b, y, x, ch) - want) <= 0.5 + 1e-3, "%dx%d->%dx%d (%d,%d): %d vs %.3f",
                                  sw, sh, dw, dh, x, y, px(&b, y, x, ch), want);
                }
            }
        }
        st_image_free(&a);
        st_image_free(&b);
    }
}
END_TEST

/* Rows/columns [lo, hi) of dst hold the image (constant 200), the rest the fill (114). */
static void check_letterbox(int sw, int sh, int dw, int dh, float scale, float padx, float pady,
                            int x0, int x1, int y0, int y1) {
    st_image a, b;
    ck_assert_int_eq(st_image_alloc(&a, 3, sh, sw), ST_OK);
    memset(a.data, 200, (size_t)3 * sh * sw);
    ck_assert_int_eq(st_image_alloc(&b, 3, dh, dw), ST_OK);
    float s = 0, pxx = -1, pyy = -1;
    st_image_letterbox(&a, &b, 114, &s, &pxx, &pyy);
    ck_assert_float_eq_tol(s, scale, 1e-6);
    ck_assert_float_eq_tol(pxx, padx, 1e-6);
    ck_assert_float_eq_tol(pyy, pady, 1e-6);
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            int inside = x >= x0 && x < x1 && y >= y0 && y < y1;
            for (int ch = 0; ch < 3; ch++)
                ck_assert_msg(px(&b, y, x, ch) == (inside ? 200 : 114), "%dx%d->%dx%d at (%d,%d): %d",
                              sw, sh, dw, dh, x, y, px(&b, y, x, ch));
        }
    st_image_free(&a);
    st_image_free(&b);
}

START_TEST(test_letterbox) {
    /* wide into square: 64 x 32, 16 rows of padding above and below */
    check_letterbox(100, 50, 64, 64, 0.64f, 0.0f, 16.0f, 0, 64, 16, 48);
    /* 30 x 20 -> 64 x 43: pad 10.5 puts the image at round(10.4) = 10 (YOLOv5) */
    check_letterbox(30, 20, 64, 64, 64.0f / 30.0f, 0.0f, 10.5f, 0, 64, 10, 53);
    /* tall into a wide target: 15 x 30 centred in 50 x 30, pad 17.5 -> column 17 */
    check_letterbox(20, 40, 50, 30, 0.75f, 17.5f, 0.0f, 17, 32, 0, 30);
    /* same size: a copy, no padding */
    check_letterbox(16, 16, 16, 16, 1.0f, 0.0f, 0.0f, 0, 16, 0, 16);
    /* gray works too, and NULL outputs are allowed */
    st_image a = make(1, 10, 20, 3), b;
    ck_assert_int_eq(st_image_alloc(&b, 1, 20, 20), ST_OK);
    st_image_letterbox(&a, &b, 0, NULL, NULL, NULL);
    ck_assert_int_eq(memcmp(b.data + 5 * 20, a.data, 200), 0); /* scale 1: exact copy */
    ck_assert_int_eq(b.data[0], 0);
    st_image_free(&a);
    st_image_free(&b);
}
END_TEST

START_TEST(test_hflip) {
    for (int c = 1; c <= 3; c += 2)
        for (int w = 1; w <= 6; w++) {
            st_image a = make(c, 3, w, (uint64_t)w), b = make(c, 3, w, (uint64_t)w);
            st_image_hflip(&b);
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < w; x++)
                    for (int ch = 0; ch < c; ch++) ck_assert_int_eq(px(&b, y, x, ch), px(&a, y, w - 1 - x, ch));
            st_image_hflip(&b);
            ck_assert_int_eq(memcmp(a.data, b.data, (size_t)c * 3 * w), 0);
            st_image_free(&a);
            st_image_free(&b);
        }
}
END_TEST

START_TEST(test_hsv) {
    st_image a = make(3, 16, 16, 5), b = make(3, 16, 16, 5);
    st_image_hsv_gain(&b, 1.0f, 1.0f, 1.0f);
    ck_assert_int_eq(memcmp(a.data, b.data, 3 * 256), 0);
    /* value gain alone: colours scale with V, hue and saturation kept up to 8-bit HSV's
     * rounding (hue in steps of 2 degrees: up to V/60 off in the middle channel) */
    st_image_hsv_gain(&b, 1.0f, 1.0f, 0.5f);
    for (int i = 0; i < 3 * 256; i++)
        ck_assert_msg(abs(b.data[i] - a.data[i] / 2) <= 4, "%d: %d vs %d", i, b.data[i], a.data[i]);
    st_image_free(&a);
    st_image_free(&b);
    /* gray pixels (gray and RGB images): v' = floor(v * gv) exactly, clipped at 255 */
    for (int c = 1; c <= 3; c += 2) {
        st_image g;
        ck_assert_int_eq(st_image_alloc(&g, c, 1, 256), ST_OK);
        for (int i = 0; i < 256 * c; i++) g.data[i] = (uint8_t)(i / c);
        st_image_hsv_gain(&g, 1.3f, 0.7f, 1.5f);
        for (int i = 0; i < 256 * c; i++) ck_assert_int_eq(g.data[i], ST_MIN(255, (i / c) * 3 / 2));
        st_image_free(&g);
    }
    /* hue multiplies (YOLOv5): green (h = 60) with gh = 2 becomes blue (h = 120); red
     * (h = 0) stays red; saturation gain 0 makes gray at V */
    st_image p;
    ck_assert_int_eq(st_image_alloc(&p, 3, 1, 3), ST_OK);
    static const uint8_t in[9] = {0, 255, 0, 255, 0, 0, 200, 50, 100};
    memcpy(p.data, in, 9);
    st_image_hsv_gain(&p, 2.0f, 1.0f, 1.0f);
    static const uint8_t out[6] = {0, 0, 255, 255, 0, 0};
    ck_assert_int_eq(memcmp(p.data, out, 6), 0);
    memcpy(p.data, in, 9);
    st_image_hsv_gain(&p, 1.0f, 0.0f, 1.0f);
    for (int i = 0; i < 9; i++) ck_assert_int_eq(p.data[i], i < 6 ? 255 : 200);
    st_image_free(&p);
}
END_TEST

START_TEST(test_warp) {
    for (int c = 1; c <= 3; c += 2) {
        st_image a = make(c, 12, 17, 9), b;
        ck_assert_int_eq(st_image_alloc(&b, c, 12, 17), ST_OK);
        const float ident[6] = {1, 0, 0, 0, 1, 0};
        st_image_warp_affine(&a, &b, ident, 114);
        ck_assert_int_eq(memcmp(a.data, b.data, (size_t)c * 12 * 17), 0);
        /* integer translation (+3, -2): exact shift, fill where nothing maps */
        const float shift[6] = {1, 0, 3, 0, 1, -2};
        st_image_warp_affine(&a, &b, shift, 114);
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 17; x++)
                for (int ch = 0; ch < c; ch++) {
                    int sx = x - 3, sy = y + 2;
                    int want = sx >= 0 && sy < 12 ? px(&a, sy, sx, ch) : 114;
                    ck_assert_int_eq(px(&b, y, x, ch), want);
                }
        st_image_free(&b);
        /* 90 degree rotation onto a transposed canvas: (x, y) -> (h - 1 - y, x) */
        ck_assert_int_eq(st_image_alloc(&b, c, 17, 12), ST_OK);
        const float rot[6] = {0, -1, 11, 1, 0, 0};
        st_image_warp_affine(&a, &b, rot, 0);
        for (int y = 0; y < 17; y++)
            for (int x = 0; x < 12; x++)
                for (int ch = 0; ch < c; ch++) ck_assert_int_eq(px(&b, y, x, ch), px(&a, 11 - x, y, ch));
        /* a degenerate map shows only fill */
        const float flat[6] = {0, 0, 5, 0, 0, 5};
        st_image_warp_affine(&a, &b, flat, 7);
        for (int i = 0; i < c * 17 * 12; i++) ck_assert_int_eq(b.data[i], 7);
        st_image_free(&a);
        st_image_free(&b);
    }
    /* half-pixel shift of a ramp: bilinear midpoints */
    st_image r, o;
    ck_assert_int_eq(st_image_alloc(&r, 1, 1, 4), ST_OK);
    ck_assert_int_eq(st_image_alloc(&o, 1, 1, 4), ST_OK);
    for (int x = 0; x < 4; x++) r.data[x] = (uint8_t)(10 * x);
    const float half[6] = {1, 0, -0.5f, 0, 1, 0};
    st_image_warp_affine(&r, &o, half, 0);
    /* x = 3 samples 3.5: halfway between the last pixel and the border fill (0) */
    static const uint8_t want[4] = {5, 15, 25, 15};
    ck_assert_int_eq(memcmp(o.data, want, 4), 0);
    st_image_free(&r);
    st_image_free(&o);
}
END_TEST

/* Plain bilinear reference with constant border, in double. */
static int ref_warp(const st_image *a, double sx, double sy, int ch, int fill) {
    int x0 = (int)floor(sx), y0 = (int)floor(sy);
    double fx = sx - x0, fy = sy - y0, v[2][2];
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int x = x0 + i, y = y0 + j;
            v[j][i] = x >= 0 && y >= 0 && x < a->w && y < a->h ? px(a, y, x, ch) : fill;
        }
    double t = v[0][0] + (v[0][1] - v[0][0]) * fx, u = v[1][0] + (v[1][1] - v[1][0]) * fx;
    return (int)floor(t + (u - t) * fy + 0.5);
}

START_TEST(test_warp_random) {
    /* random rotations, scales, shears and shifts against the reference: the fixed-point
     * interior and the float border path agree with it to one level */
    st_rng r;
    st_rng_seed(&r, 11);
    for (int it = 0; it < 40; it++) {
        int c = it % 2 ? 3 : 1;
        st_image a = make(c, 20 + it, 31, (uint64_t)it), b;
        ck_assert_int_eq(st_image_alloc(&b, c, 27, 24 + it), ST_OK);
        double ang = st_rng_uniform(&r) * 6.2831853, sc = 0.5 + 1.5 * st_rng_uniform(&r);
        double sh = st_rng_uniform(&r) - 0.5;
        float M[6] = {(float)(sc * cos(ang)), (float)(-sc * sin(ang) + sh), (float)(40 * st_rng_uniform(&r) - 10),
                      (float)(sc * sin(ang)), (float)(sc * cos(ang)), (float)(40 * st_rng_uniform(&r) - 10)};
        st_image_warp_affine(&a, &b, M, 114);
        double det = (double)M[0] * M[4] - (double)M[1] * M[3];
        for (int y = 0; y < b.h; y++)
            for (int x = 0; x < b.w; x++) {
                double dx = x - M[2], dy = y - M[5];
                double sx = (M[4] * dx - M[1] * dy) / det, sy = (-M[3] * dx + M[0] * dy) / det;
                for (int ch = 0; ch < c; ch++) {
                    int want = ref_warp(&a, sx, sy, ch, 114);
                    ck_assert_msg(abs(px(&b, y, x, ch) - want) <= 1, "it %d (%d,%d): %d vs %d", it, x, y,
                                  px(&b, y, x, ch), want);
                }
            }
        st_image_free(&a);
        st_image_free(&b);
    }
}
END_TEST

START_TEST(test_to_chw) {
    st_image g = make(1, 3, 5, 2), c = make(3, 3, 5, 4);
    float out[3 * 15];
    st_image_to_chw(&g, 3, out);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 15; i++) ck_assert_float_eq_tol(out[ch * 15 + i], g.data[i] / 255.0f, 1e-7);
    st_image_to_chw(&g, 1, out);
    for (int i = 0; i < 15; i++) ck_assert_float_eq_tol(out[i], g.data[i] / 255.0f, 1e-7);
    st_image_to_chw(&c, 3, out);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 15; i++) ck_assert_float_eq_tol(out[ch * 15 + i], c.data[3 * i + ch] / 255.0f, 1e-7);
    st_image_to_chw(&c, 1, out);
    for (int i = 0; i < 15; i++) {
        float m = (c.data[3 * i] + c.data[3 * i + 1] + c.data[3 * i + 2]) / 765.0f;
        ck_assert_float_eq_tol(out[i], m, 1e-6);
    }
    st_image_free(&g);
    st_image_free(&c);
}
END_TEST

Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_add_test(tc, test_alloc);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_resize_random);
    tcase_add_test(tc, test_letterbox);
    tcase_add_test(tc, test_hflip);
    tcase_add_test(tc, test_hsv);
    tcase_add_test(tc, test_warp);
    tcase_add_test(tc, test_warp_random);
    tcase_add_test(tc, test_to_chw);
    suite_add_tcase(s, tc);
    return s;
}
