/* Helpers for the dataset tests: tiny PNG files written with libpng directly (so these
 * tests do not depend on the image module's own writer), files, folders, and a log
 * captured in memory. Header-only (static) to stay out of the runner's source list. */
#ifndef ST_DS_TEST_UTIL_H
#define ST_DS_TEST_UTIL_H

#include <check.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The pixel every test image has at (x, y, channel): easy to recompute when checking
 * decoded or cached pixels; the same formula as tests/fixtures/make_bad_yolo.py. */
static inline uint8_t dst_px(int seed, int x, int y, int ch) {
    return (uint8_t)((seed * 37 + y * 11 + x * 5 + ch * 71) & 255);
}

/* An 8-bit gray (c = 1) or RGB (c = 3) PNG of w x h. */
static inline void dst_write_png(const char *path, int w, int h, int c, int seed) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    ck_assert(p && info);
    uint8_t *row = malloc((size_t)w * c);
    if (setjmp(png_jmpbuf(p))) ck_abort_msg("libpng failed writing %s", path);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) row[x * c + k] = dst_px(seed, x, y, k);
        png_write_row(p, row);
    }
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    free(row);
    ck_assert_int_eq(fclose(f), 0);
}

static inline void dst_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    if (n) ck_assert_uint_eq(fwrite(text, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* mkdir -p */
static inline void dst_mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    ck_assert_msg(mkdir(buf, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", buf, strerror(errno));
}

/* "a/b" into buf (tests keep paths short). */
static inline const char *dst_path(char *buf, size_t cap, const char *dir, const char *rel) {
    int n = snprintf(buf, cap, "%s/%s", dir, rel);
    ck_assert(n > 0 && (size_t)n < cap);
    return buf;
}

/* A log sink in memory: start, hand .f to the dataset, then finish to read .text. */
typedef struct {
    FILE *f;
    char *text;
    size_t len;
} dst_log;

static inline void dst_log_start(dst_log *l) {
    memset(l, 0, sizeof *l);
    l->f = open_memstream(&l->text, &l->len);
    ck_assert(l->f != NULL);
}
static inline const char *dst_log_finish(dst_log *l) {
    fclose(l->f);
    l->f = NULL;
    return l->text ? l->text : "";
}
static inline int dst_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

#endif
