/* report.html: structure (balanced svg/table/... tags, one chart per unit), escaping of
 * hostile names, the values present, the embedded PNG decoding back to the image, the
 * atomic write, base64 vectors, and (when Debian's chromium can be installed) a headless
 * render: --dump-dom must show the charts and tables, --screenshot must paint them. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_draw.h"
#include "st_report.h"
#include "st_test_util.h"

/* Tags checked for nesting; void elements (meta, img, line, rect, path, circle) and
 * self-closed ones are skipped. Returns NULL if balanced, else a description. */
static const char *check_balanced(const char *html, char *why, size_t cap) {
    static const char *const tracked[] = {"html", "head", "body", "title", "style", "h1", "h2",
                                          "table", "thead", "tbody", "tr", "td", "th", "svg", "g",
                                          "text", "figure", "figcaption", "details", "summary",
                                          "div", "span", "small"};
    const int nt = (int)(sizeof tracked / sizeof *tracked);
    const char *stack[256];
    int depth = 0;
    for (const char *p = strchr(html, '<'); p; p = strchr(p + 1, '<')) {
        int closing = p[1] == '/';
        const char *nm = p + 1 + closing;
        size_t n = strspn(nm, "abcdefghijklmnopqrstuvwxyz0123456789");
        const char *end = strchr(p, '>');
        if (!end) return snprintf(why, cap, "unterminated tag at %ld", (long)(p - html)), why;
        if (!n) continue; /* <!DOCTYPE> */
        int idx = -1;
        for (int i = 0; i < nt; i++)
            if (strlen(tracked[i]) == n && strncmp(tracked[i], nm, n) == 0) idx = i;
        if (idx < 0 || (!closing && end[-1] == '/')) continue;
        if (!closing) {
            if (depth == 256) return "too deep";
            stack[depth++] = tracked[idx];
        } else if (!depth || strcmp(stack[depth - 1], tracked[idx]) != 0) {
            snprintf(why, cap, "</%s> closes <%s> at %ld", tracked[idx], depth ? stack[depth - 1] : "(none)",
                     (long)(p - html));
            return why;
        } else {
            depth--;
        }
    }
    if (depth) return snprintf(why, cap, "<%s> never closed", stack[depth - 1]), why;
    return NULL;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static size_t b64_decode(const char *s, uint8_t *out) {
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '"'; s++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *q = strchr(tab, *s);
        if (*s == '=' || !q) continue;
        acc = acc << 6 | (uint32_t)(q - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

/* A report with every part, hostile names included. */
typedef struct {
    double ep[6], loss[6], m50[6], m5095[6], lr[6];
    st_report_series series[4];
    st_report_kv kv[3];
    st_report_layer layers[3];
    st_image im;
    st_report_image images[1];
    st_report r;
} fixture;

static void make_fixture(fixture *f) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 6; i++) {
        f->ep[i] = i + 1;
        f->loss[i] = 2.5 - 0.25 * i;
        f->m50[i] = 0.125 * i;
        f->m5095[i] = 0.0625 * i;
        f->lr[i] = 0.01 * (6 - i);
    }
    f->lr[3] = NAN; /* a missing value breaks the line */
    f->series[0] = (st_report_series){"train loss", "loss", f->loss};
    f->series[1] = (st_report_series){"mAP50", "mAP", f->m50};
    f->series[2] = (st_report_series){"lr", "lr", f->lr};
    f->series[3] = (st_report_series){"mAP50-95", "mAP", f->m5095};
    f->kv[0] = (st_report_kv){"model", "yolov5n <sparse> & co"};
    f->kv[1] = (st_report_kv){"classes", "a<b, \"quoted\", it's"};
    f->kv[2] = (st_report_kv){"epochs", "6"};
    f->layers[0] = (st_report_layer){"model.0.conv<1>&", "16x3x6x6", 0.5, 0, 0.25};
    f->layers[1] = (st_report_layer){"model.1.conv", "32x16x3x3", 0.9, 1, 0.125};
    f->layers[2] = (st_report_layer){"model.24.m.0", "255x64x1x1", 0.0, 0, -1};
    ck_assert_int_eq(st_image_alloc(&f->im, 3, 40, 64), ST_OK);
    memset(f->im.data, 114, 3 * 40 * 64);
    st_det d = {10, 20, 50, 38, 0.87f, 0};
    const char *names[] = {"a<b"};
    st_draw_detections(&f->im, &d, 1, names, 1, 1, 0, 0);
    f->images[0] = (st_report_image){"image 1: a<b 0.87", &f->im};
    f->r = (st_report){"Run <exp1> & \"friends\"", f->kv, 3, f->ep, 6, f->series, 4,
                       f->layers, 3, f->images, 1};
}

START_TEST(test_structure) {
    fixture f;
    make_fixture(&f);
    char *html;
    size_t len;
    st_error err = {0};
    ck_assert_int_eq(st_report_html(&f.r, &html, &len, &err), ST_OK);
    ck_assert_uint_eq(strlen(html), len);
    ck_assert(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    char why[256];
    const char *bad = check_balanced(html, why, sizeof why);
    ck_assert_msg(bad == NULL, "unbalanced: %s", bad);
    /* one chart per unit: loss, mAP, lr */
    ck_assert_int_eq(count(html, "<svg"), 3);
    ck_assert_int_eq(count(html, "</svg>"), 3);
    ck_assert_int_eq(count(html, "class=\"series\""), 4);
    ck_assert_int_eq(count(html, "class=\"legend\""), 4);
    ck_assert_int_eq(count(html, "<table"), 3); /* summary, values, layers */
    /* escaped: no raw '<' from the data anywhere */
    ck_assert_ptr_null(strstr(html, "a<b"));
    ck_assert_ptr_null(strstr(html, "<sparse>"));
    ck_assert_ptr_null(strstr(html, "<exp1>"));
    ck_assert_ptr_null(strstr(html, "conv<1>"));
    ck_assert_ptr_nonnull(strstr(html, "a&lt;b, &quot;quoted&quot;, it&#39;s"));
    ck_assert_ptr_nonnull(strstr(html, "model.0.conv&lt;1&gt;&amp;"));
    ck_assert_ptr_nonnull(strstr(html, "<title>Run &lt;exp1&gt; &amp; &quot;friends&quot;</title>"));
    /* the values */
    ck_assert_ptr_nonnull(strstr(html, "<tr><td>4</td><td>1.75</td><td>0.375</td><td>&#8211;</td><td>0.1875</td></tr>"));
    ck_assert_ptr_nonnull(strstr(html, "<td>2.5</td>"));
    ck_assert_ptr_nonnull(strstr(html, "50.0%"));
    ck_assert_ptr_nonnull(strstr(html, "90.0%"));
    ck_assert_ptr_nonnull(strstr(html, "12.5%"));
    ck_assert_ptr_nonnull(strstr(html, "n/a"));
    ck_assert_int_eq(count(html, ">sparse</td>"), 1);
    ck_assert_int_eq(count(html, ">dense</td>"), 2);
    /* the NaN splits the lr path in two pieces: two move-tos */
    const char *lr = strstr(html, "aria-label=\"lr per epoch\"");
    ck_assert_ptr_nonnull(lr);
    const char *d = strstr(lr, "class=\"series\"");
    d = strstr(d, " d=\"");
    const char *dend = strchr(d + 4, '"');
    int moves = 0;
    for (const char *p = d + 4; p < dend; p++) moves += *p == 'M';
    ck_assert_int_eq(moves, 2);
    /* self-contained: no scripts, no links to anything */
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "href="));
    ck_assert_ptr_null(strstr(html, "url("));
    ck_assert_ptr_null(strstr(html, "src=\"http"));
    ck_assert_int_eq(count(html, "http"), 3); /* the svg namespace, once per chart */

    /* the embedded image decodes back to the same pixels */
    const char *src = strstr(html, "src=\"data:image/png;base64,");
    ck_assert_ptr_nonnull(src);
    src += strlen("src=\"data:image/png;base64,");
    uint8_t *png = malloc(strlen(src));
    size_t n = b64_decode(src, png);
    st_image back;
    ck_assert_int_eq(st_png_read_mem(png, n, "embedded", 3, &back, NULL, &err), ST_OK);
    ck_assert(back.w == 64 && back.h == 40);
    ck_assert_int_eq(memcmp(back.data, f.im.data, 3 * 40 * 64), 0);
    st_image_free(&back);
    free(png);
    free(html);
    st_image_free(&f.im);
}
END_TEST

START_TEST(test_edge_cases) {
    st_error err = {0};
    char *html, why[256];
    size_t len;
    /* nothing but a title */
    st_report empty = {0};
    ck_assert_int_eq(st_report_html(&empty, &html, &len, &err), ST_OK);
    ck_assert_ptr_null(check_balanced(html, why, sizeof why));
    ck_assert_int_eq(count(html, "<svg"), 0);
    free(html);
    /* one epoch, a constant series, an all-NaN one, no unit, no epochs array, big and
     * tiny magnitudes: still balanced, finite coordinates */
    double one[1] = {3}, nan1[1] = {NAN}, big[3] = {1e9, 2e9, 3e9}, tiny[3] = {1e-7, 1e-7, 1e-7};
    st_report_series s1[2] = {{"const", NULL, one}, {"void", "", nan1}};
    st_report r1 = {.title = "t", .n_epochs = 1, .series = s1, .n_series = 2};
    ck_assert_int_eq(st_report_html(&r1, &html, &len, &err), ST_OK);
    ck_assert_ptr_null(check_balanced(html, why, sizeof why));
    ck_assert_int_eq(count(html, "<svg"), 1);
    ck_assert_ptr_null(strstr(html, "nan"));
    ck_assert_ptr_null(strstr(html, "inf"));
    ck_assert_int_eq(count(html, "<circle"), 1);
    free(html);
    st_report_series s2[2] = {{"big", "B", big}, {"tiny", "T", tiny}};
    st_report r2 = {.n_epochs = 3, .series = s2, .n_series = 2};
    ck_assert_int_eq(st_report_html(&r2, &html, &len, &err), ST_OK);
    ck_assert_ptr_null(check_balanced(html, why, sizeof why));
    ck_assert_ptr_null(strstr(html, "nan"));
    ck_assert_ptr_nonnull(strstr(html, "<td>3e+09</td>"));
    free(html);
    /* a gray image is fine, a 2-channel one is refused */
    st_image g, bad;
    ck_assert_int_eq(st_image_alloc(&g, 1, 4, 4), ST_OK);
    memset(g.data, 7, 16);
    st_report_image gi = {"gray", &g};
    st_report r3 = {.images = &gi, .n_images = 1};
    ck_assert_int_eq(st_report_html(&r3, &html, &len, &err), ST_OK);
    free(html);
    bad = g;
    bad.c = 2;
    gi.image = &bad;
    ck_assert_int_ne(st_report_html(&r3, &html, &len, &err), ST_OK);
    st_image_free(&g);
}
END_TEST

START_TEST(test_base64_and_write) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    for (int i = 0; i < 7; i++) {
        size_t n = st_base64_encode((const uint8_t *)in[i], strlen(in[i]), out);
        ck_assert_str_eq(out, want[i]);
        ck_assert_uint_eq(n, strlen(want[i]));
    }
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    char enc[400];
    uint8_t dec[300];
    st_base64_encode(all, 256, enc);
    ck_assert_uint_eq(b64_decode(enc, dec), 256);
    ck_assert_int_eq(memcmp(all, dec, 256), 0);

    /* the file: same bytes as st_report_html, no temp file left behind */
    fixture f;
    make_fixture(&f);
    char dir[1024], path[1200];
    stt_tmpdir(dir, sizeof dir, "report");
    snprintf(path, sizeof path, "%s/report.html", dir);
    st_error err = {0};
    ck_assert_int_eq(st_report_write_html(path, &f.r, &err), ST_OK);
    char *html;
    size_t len;
    ck_assert_int_eq(st_report_html(&f.r, &html, &len, &err), ST_OK);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    char *file = malloc(len + 1);
    ck_assert_uint_eq(fread(file, 1, len + 1, fp), len);
    fclose(fp);
    ck_assert_int_eq(memcmp(file, html, len), 0);
    DIR *dp = opendir(dir);
    for (struct dirent *e; (e = readdir(dp));) ck_assert_ptr_null(strstr(e->d_name, ".tmp"));
    closedir(dp);
    /* an unwritable place is an I/O error with the path in the message */
    snprintf(path, sizeof path, "%s/missing/report.html", dir);
    ck_assert_int_eq(st_report_write_html(path, &f.r, &err), ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
    free(file);
    free(html);
    st_image_free(&f.im);
}
END_TEST

/* Debian's chromium, installed through tools/install-deps.sh --peers when missing. */
static int need_chromium(void) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "command -v chromium >/dev/null 2>&1 || %s/tools/install-deps.sh --peers >/dev/null 2>&1; "
             "command -v chromium >/dev/null 2>&1", ST_SOURCE_DIR);
    if (stt_run(cmd) == 0) return 1;
    stt_skip("chromium is not installed and tools/install-deps.sh --peers could not install it; "
             "headless rendering of report.html skipped");
    return 0;
}

START_TEST(test_chromium_render) {
    if (!need_chromium()) return;
    fixture f;
    make_fixture(&f);
    char dir[1024], path[1200], cmd[4096], dom[1200], shot[1200];
    stt_tmpdir(dir, sizeof dir, "report_chromium");
    snprintf(path, sizeof path, "%s/report.html", dir);
    snprintf(dom, sizeof dom, "%s/dom.html", dir);
    snprintf(shot, sizeof shot, "%s/shot.png", dir);
    st_error err = {0};
    ck_assert_int_eq(st_report_write_html(path, &f.r, &err), ST_OK);
    /* its own profile folder: no clash with a running browser or another test */
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                        "--no-first-run --hide-scrollbars";
    snprintf(cmd, sizeof cmd, "timeout 120 chromium %s --user-data-dir='%s/profile' --dump-dom "
             "'file://%s' >'%s' 2>/dev/null", flags, dir, path, dom);
    ck_assert_int_eq(stt_run(cmd), 0);
    FILE *fp = fopen(dom, "r");
    ck_assert_ptr_nonnull(fp);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = 0;
    fclose(fp);
    ck_assert_int_eq(count(text, "<svg"), 3);
    ck_assert_int_eq(count(text, "class=\"series\""), 4);
    ck_assert_int_eq(count(text, "<table"), 3);
    ck_assert_ptr_nonnull(strstr(text, "model.0.conv&lt;1&gt;&amp;")); /* text, not markup */
    ck_assert_ptr_null(strstr(text, "conv<1>"));

    snprintf(cmd, sizeof cmd, "timeout 120 chromium %s --user-data-dir='%s/profile' "
             "--window-size=1000,1200 --screenshot='%s' 'file://%s' >/dev/null 2>&1",
             flags, dir, shot, path);
    ck_assert_int_eq(stt_run(cmd), 0);
    st_image im;
    ck_assert_int_eq(st_png_read(shot, 3, &im, NULL, &err), ST_OK);
    /* the chart lines are painted: pixels of the first series colour (#1f77b4) */
    int blue = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h; i++)
        blue += abs(im.data[3 * i] - 0x1f) < 12 && abs(im.data[3 * i + 1] - 0x77) < 12 &&
                abs(im.data[3 * i + 2] - 0xb4) < 12;
    ck_assert_int_gt(blue, 200);
    st_image_free(&im);
    st_image_free(&f.im);
}
END_TEST

Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_structure);
    tcase_add_test(tc, test_edge_cases);
    tcase_add_test(tc, test_base64_and_write);
    tcase_add_test(tc, test_chromium_render);
    suite_add_tcase(s, tc);
    return s;
}
