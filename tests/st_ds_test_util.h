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
#include <zlib.h>

#include "st_dataset.h"

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

/* ---- shared by the dataset suites (dataset, dataset_errors) */

/* Opens root with the given options, the log captured; returns the status. */
static inline st_status open_logged(const char *root, st_ds_opts *o, st_dataset *d, st_error *err, dst_log *log) {
    dst_log_start(log);
    o->log = log->f;
    st_status s = st_dataset_open(root, o, d, err);
    dst_log_finish(log);
    o->log = NULL;
    return s;
}

static inline void summary(const st_dataset *d, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    ck_assert(f != NULL);
    st_dataset_print_summary(d, f);
    fclose(f);
}

/* images/{train,val} + labels/{train,val} with: t0 (2 boxes), t1 (background, no label
 * file), t2 (an empty label file: also background), v0 (1 box). */
static inline void make_yolo(const char *root, const char *yaml) {
    char p[700];
    dst_mkdirs(dst_path(p, sizeof p, root, "images/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "images/val"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/val"));
    for (int i = 0; i < 3; i++) {
        char n[64];
        snprintf(n, sizeof n, "images/train/t%d.png", i);
        dst_write_png(dst_path(p, sizeof p, root, n), 6, 4, 3, i);
    }
    dst_write_png(dst_path(p, sizeof p, root, "images/val/v0.png"), 6, 4, 3, 9);
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/t0.txt"), "2 0.5 0.5 0.2 0.4\n0\t0.1 0.9 1 0.05\n");
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/t2.txt"), "");
    dst_write_file(dst_path(p, sizeof p, root, "labels/val/v0.txt"), "1 0.25 0.75 0.5 0.5");
    dst_write_file(dst_path(p, sizeof p, root, "labels/classes.txt"), "not a split\n"); /* ignored */
    if (yaml) dst_write_file(dst_path(p, sizeof p, root, "data.yaml"), yaml);
}

static inline void put_be32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

static inline void write_idx(const char *path, int images, int n) {
    uint8_t buf[256] = {0};
    size_t len = images ? 16 + (size_t)n * 6 : 8 + (size_t)n;
    put_be32(buf, images ? 0x803 : 0x801);
    put_be32(buf + 4, (uint32_t)n);
    if (images) put_be32(buf + 8, 2), put_be32(buf + 12, 3);
    for (size_t i = images ? 16 : 8; i < len; i++) buf[i] = (uint8_t)(images ? i * 9 : (i - 8) % 4);
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, buf, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

#endif
