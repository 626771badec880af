/* Drawing: box edges in the class colour, label text inside its background, clipping
 * (out-of-range and non-finite boxes must not write outside the image: run under ASan),
 * the font table, and the letterbox undo against st_image_letterbox's own numbers. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "st_draw.h"
#include "st_test_util.h"

#define BG 114

static st_image canvas(int c, int h, int w) {
    st_image im;
    ck_assert_int_eq(st_image_alloc(&im, c, h, w), ST_OK);
    memset(im.data, BG, (size_t)c * h * w);
    return im;
}

static int is_rgb(const st_image *im, int x, int y, st_rgb c) {
    const uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

static int is_bg(const st_image *im, int x, int y) {
    const uint8_t *p = im->data + ((size_t)y * im->w + x) * im->c;
    for (int k = 0; k < im->c; k++)
        if (p[k] != BG) return 0;
    return 1;
}

START_TEST(test_palette_font) {
    /* distinct colours across the palette, cycling, negative classes valid */
    for (int a = 0; a < ST_DRAW_PALETTE; a++)
        for (int b = a + 1; b < ST_DRAW_PALETTE; b++) {
            st_rgb x = st_draw_class_color(a), y = st_draw_class_color(b);
            ck_assert(x.r != y.r || x.g != y.g || x.b != y.b);
        }
    st_rgb c3 = st_draw_class_color(3), c23 = st_draw_class_color(23), cm = st_draw_class_color(-17);
    ck_assert(c3.r == c23.r && c3.g == c23.g && c3.b == c23.b);
    ck_assert(c3.r == cm.r && c3.g == cm.g && c3.b == cm.b);
    ck_assert_int_eq(st_draw_text_width("", 1), 0);
    ck_assert_int_eq(st_draw_text_width("a", 1), 5);
    ck_assert_int_eq(st_draw_text_width("ab", 2), 22);

    /* 'I' of the font: a 3-wide top bar, a centre stem, a 3-wide bottom bar */
    st_image im = canvas(3, 9, 7);
    st_rgb w = {255, 255, 255};
    st_draw_text(&im, 1, 1, "I", 1, w);
    const char *want[7] = {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."};
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 5; k++)
            ck_assert_msg(is_rgb(&im, 1 + k, 1 + r, w) == (want[r][k] == '#'), "I at %d,%d", k, r);
    /* every printable glyph draws something except the space; unknown bytes become '?' */
    for (int ch = 33; ch < 127; ch++) {
        memset(im.data, BG, 3 * 9 * 7);
        char s[2] = {(char)ch, 0};
        st_draw_text(&im, 1, 1, s, 1, w);
        int on = 0;
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 7; x++) on += !is_bg(&im, x, y);
        ck_assert_msg(on > 0, "glyph %c is empty", ch);
        ck_assert_msg(is_bg(&im, 0, 0) && is_bg(&im, 6, 8), "glyph %c leaves its cell", ch);
    }
    uint8_t q[3 * 9 * 7];
    memset(im.data, BG, sizeof q);
    st_draw_text(&im, 1, 1, "?", 1, w);
    memcpy(q, im.data, sizeof q);
    memset(im.data, BG, sizeof q);
    st_draw_text(&im, 1, 1, "\x01", 1, w);
    ck_assert_int_eq(memcmp(q, im.data, sizeof q), 0);
    st_image_free(&im);
}
END_TEST

START_TEST(test_box_edges) {
    st_image im = canvas(3, 100, 120);
    st_det d = {20, 30, 60, 80, 0.87f, 3};
    const char *names[] = {"a", "b", "c", "dog"};
    st_draw_detections(&im, &d, 1, names, 4, 1, 0, 0);
    st_rgb c = st_draw_class_color(3);
    /* 2-pixel edges, drawn inwards of [20, 60) x [30, 80) */
    for (int t = 0; t < 2; t++) {
        ck_assert(is_rgb(&im, 40, 30 + t, c));
        ck_assert(is_rgb(&im, 40, 79 - t, c));
        ck_assert(is_rgb(&im, 20 + t, 55, c));
        ck_assert(is_rgb(&im, 59 - t, 55, c));
    }
    ck_assert(is_bg(&im, 40, 32));  /* interior untouched */
    ck_assert(is_bg(&im, 22, 55));
    ck_assert(is_bg(&im, 40, 80));  /* outside below */
    ck_assert(is_bg(&im, 60, 55));  /* outside right */
    ck_assert(is_bg(&im, 19, 55));

    /* the label "dog 0.87" sits right above the box: background [20, 20 + 8*6-1+2) x
     * [30 - 9, 30); the text is white or black only inside it */
    char label[32];
    st_draw_label(label, sizeof label, &d, names, 4);
    ck_assert_str_eq(label, "dog 0.87");
    int lw = st_draw_text_width(label, 1) + 2, lh = 9;
    ck_assert(is_rgb(&im, 20, 30 - lh, c));              /* background corner */
    ck_assert(is_rgb(&im, 20 + lw - 1, 29, c));
    ck_assert(is_bg(&im, 20 + lw, 25));                  /* just right of it */
    ck_assert(is_bg(&im, 25, 30 - lh - 1));              /* just above it */
    int ink = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            const uint8_t *p = im.data + ((size_t)y * im.w + x) * 3;
            int text = (p[0] == 0 && p[1] == 0 && p[2] == 0) || (p[0] == 255 && p[1] == 255 && p[2] == 255);
            if (!text) continue;
            ck_assert_msg(x >= 21 && x < 20 + lw - 1 && y >= 30 - lh + 1 && y < 29,
                          "text pixel at %d,%d outside the label", x, y);
            ink++;
        }
    ck_assert_int_gt(ink, 40);

    /* unknown class names fall back to the number */
    st_det e = {0, 0, 1, 1, 1.5f, 7};
    st_draw_label(label, sizeof label, &e, names, 4);
    ck_assert_str_eq(label, "7 1.00");
    st_draw_label(label, sizeof label, &e, NULL, 0);
    ck_assert_str_eq(label, "7 1.00");
    st_image_free(&im);
}
END_TEST

START_TEST(test_label_at_top_and_right) {
    /* a box touching the top: the label goes inside it, from its top edge */
    st_image im = canvas(3, 60, 80);
    st_det d = {10, 2, 50, 40, 0.5f, 0};
    int r[4];
    st_draw_detection(&im, &d, "x 0.50", r);
    ck_assert_int_eq(r[1], 2);
    ck_assert_int_eq(r[3], 2 + 9);
    ck_assert_int_eq(r[0], 10);
    /* a box at the right edge: the label shifts left to stay inside */
    st_det e = {70, 30, 80, 50, 0.5f, 1};
    st_draw_detection(&im, &e, "lab 0.50", r);
    ck_assert_int_eq(r[2], 80);
    ck_assert_int_eq(r[0], 80 - (st_draw_text_width("lab 0.50", 1) + 2));
    ck_assert(is_rgb(&im, 79, 25, st_draw_class_color(1)));
    st_image_free(&im);
}
END_TEST

START_TEST(test_clipping) {
    /* boxes and labels partly or wholly outside, huge and non-finite: only in-bounds
     * writes (ASan checks), and the image edge pixels of a clipped box are coloured */
    st_image im = canvas(3, 32, 48);
    st_det bad[] = {
        {-20, -20, 10, 10, .9f, 0},   {40, 20, 100, 100, .9f, 1},  {-1e30f, -1e30f, 1e30f, 1e30f, .5f, 2},
        {NAN, 3, 8, NAN, .5f, 3},     {INFINITY, -INFINITY, 5, 5, NAN, 4},
        {100, 100, 200, 200, .5f, 5}, {-50, -50, -10, -10, .5f, 6}, {47, 31, 48, 32, .5f, 7},
        {10, 10, 5, 5, .5f, 8}, /* inverted */
    };
    int n = (int)(sizeof bad / sizeof bad[0]);
    const char *names[] = {"a<b", NULL, "a very long class name that is wider than the image"};
    for (int i = 0; i < n; i++) {
        st_draw_detections(&im, &bad[i], 1, names, 3, 1, 0, 0);
        st_draw_detections(&im, &bad[i], 1, names, 3, 0.25f, -100, 100);
        st_draw_detection(&im, &bad[i], "label", NULL);
    }
    st_draw_text(&im, -1000000, -5, "clipped", 3, (st_rgb){1, 2, 3});
    st_draw_text(&im, 40, 28, "clipped", 3, (st_rgb){1, 2, 3});
    st_draw_text(&im, 2147483000, 0, "far", 1, (st_rgb){1, 2, 3});
    st_draw_fill(&im, -5, -5, 1000, 1000, (st_rgb){9, 9, 9});
    ck_assert(is_rgb(&im, 47, 31, (st_rgb){9, 9, 9}));
    st_image_free(&im);

    /* gray images take the luminance */
    st_image g = canvas(1, 10, 10);
    st_draw_pixel(&g, 3, 3, (st_rgb){255, 255, 255});
    st_draw_pixel(&g, 4, 3, (st_rgb){255, 0, 0});
    st_draw_pixel(&g, 10, 3, (st_rgb){255, 0, 0});
    ck_assert_int_eq(g.data[3 * 10 + 3], 255);
    ck_assert_int_eq(g.data[3 * 10 + 4], 76);
    st_det d = {-3, -3, 20, 20, .5f, 0};
    st_draw_detections(&g, &d, 1, NULL, 0, 1, 0, 0);
    st_image_free(&g);
}
END_TEST

START_TEST(test_unletterbox) {
    /* a 200x100 image letterboxed to 64x64: gain 0.32, pad (0, 16). A box [50,25,150,75]
     * becomes [16, 24, 48, 40]; the undo brings it back. */
    st_image src = canvas(3, 100, 200), dst = canvas(3, 64, 64);
    float gain, px, py;
    st_image_letterbox(&src, &dst, 114, &gain, &px, &py);
    ck_assert_float_eq_tol(gain, 0.32f, 1e-6f);
    ck_assert_float_eq(px, 0);
    ck_assert_float_eq(py, 16);
    st_det d = {50 * gain + px, 25 * gain + py, 150 * gain + px, 75 * gain + py, .9f, 0};
    ck_assert_float_eq_tol(d.y1, 24, 1e-5f);
    st_det_unletterbox(&d, gain, px, py, 200, 100);
    ck_assert_float_eq_tol(d.x1, 50, 1e-4f);
    ck_assert_float_eq_tol(d.y1, 25, 1e-4f);
    ck_assert_float_eq_tol(d.x2, 150, 1e-4f);
    ck_assert_float_eq_tol(d.y2, 75, 1e-4f);
    /* a box reaching into the padding is clipped to the image */
    st_det e = {-8, 4, 70, 60, .9f, 0};
    st_det_unletterbox(&e, gain, px, py, 200, 100);
    ck_assert_float_eq(e.x1, 0);
    ck_assert_float_eq(e.y1, 0);
    ck_assert_float_eq(e.x2, 200);
    ck_assert_float_eq(e.y2, 100);
    /* drawn through st_draw_detections with the letterbox numbers: edges at the original
     * coordinates */
    st_det f = {50 * gain + px, 25 * gain + py, 150 * gain + px, 75 * gain + py, .9f, 2};
    st_draw_detections(&src, &f, 1, NULL, 0, gain, px, py);
    ck_assert(is_rgb(&src, 100, 25, st_draw_class_color(2)));
    ck_assert(is_rgb(&src, 50, 50, st_draw_class_color(2)));
    ck_assert(is_rgb(&src, 149, 50, st_draw_class_color(2)));
    ck_assert(is_bg(&src, 100, 50));
    st_image_free(&src);
    st_image_free(&dst);
}
END_TEST

Suite *draw_suite(void) {
    Suite *s = suite_create("draw");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_palette_font);
    tcase_add_test(tc, test_box_edges);
    tcase_add_test(tc, test_label_at_top_and_right);
    tcase_add_test(tc, test_clipping);
    tcase_add_test(tc, test_unletterbox);
    suite_add_tcase(s, tc);
    return s;
}
