/* PNG encoding: 8-bit gray or RGB, written to path.tmp-<pid>, flushed to disk and renamed
 * over path, so a reader (or a crash) never sees half a file. st_png_write_ex can skip
 * the fsync for bulk writers that sync once at the end.
 *
 * The "sub" filter with zlib's run-length strategy: dataset images are written by the
 * thousand (make_fashion_mosaic), and on its 320x320 canvases this measured 2.0 ms an
 * image against 11 ms for libpng's default (level 6, adaptive filters), for files 14%
 * larger (plain level-3 deflate: 5 ms, 8% larger). */
#include "st_image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>
#include <zlib.h>

typedef struct {
    char msg[200];
} png_sink;

static void sink_error(png_structp png, png_const_charp msg) {
    png_sink *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void sink_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* A growing memory buffer for st_png_write_memory. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
} png_membuf;

static void membuf_write(png_structp png, png_bytep d, png_size_t n) {
    png_membuf *m = png_get_io_ptr(png);
    if (n > m->cap - m->len) {
        size_t cap = ST_MAX(m->cap * 2, m->len + n + 4096);
        uint8_t *b = realloc(m->buf, cap);
        if (!b) png_error(png, "out of memory");
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, d, n);
    m->len += n;
}

static void membuf_flush(png_structp png) { (void)png; }

/* Encodes im into the open file f, or into mem when f is NULL. Returns 0, or -1 with
 * sink->msg set. */
static int encode(FILE *f, png_membuf *mem, const st_image *im, png_sink *sink) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, sink_error, sink_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        snprintf(sink->msg, sizeof sink->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return -1;
    }
    if (f) png_init_io(png, f);
    else png_set_write_fn(png, mem, membuf_write, membuf_flush);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8,
                 im->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 3);
    png_set_compression_strategy(png, Z_RLE);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    rows = malloc(sizeof(png_bytep) * (size_t)im->h);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < im->h; y++) rows[y] = im->data + (size_t)y * im->w * im->c;
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return 0;
}

st_status st_png_write(const char *path, const st_image *im, st_error *err) {
    return st_png_write_ex(path, im, 1, err);
}

st_status st_png_write_ex(const char *path, const st_image *im, int durable, st_error *err) {
    if (!im || !im->data || (im->c != 1 && im->c != 3) || im->h <= 0 || im->w <= 0)
        return st_errorf(err, ST_ERR_INTERNAL, "%s: st_png_write needs an 8-bit image with 1 or 3 channels",
                         path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp)
        return st_errorf(err, ST_ERR_INPUT, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return st_errorf(err, ST_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    png_sink sink = {{0}};
    int bad = encode(f, NULL, im, &sink);
    int e = 0;
    if (!bad && (fflush(f) != 0 || (durable && fsync(fileno(f)) != 0))) {
        e = errno;
        bad = 1;
    }
    if (fclose(f) != 0 && !bad) {
        e = errno;
        bad = 1;
    }
    if (!bad && rename(tmp, path) != 0) {
        e = errno;
        bad = 1;
    }
    if (bad) {
        remove(tmp);
        if (e) return st_errorf(err, ST_ERR_IO, "%s: write failed: %s", path, strerror(e));
        /* libpng reports write errors (disk full) through its error handler */
        return st_errorf(err, ST_ERR_IO, "%s: write failed: %s", path, sink.msg);
    }
    return ST_OK;
}

st_status st_png_write_memory(const st_image *im, uint8_t **out, size_t *len, st_error *err) {
    *out = NULL;
    *len = 0;
    if (!im || !im->data || (im->c != 1 && im->c != 3) || im->h <= 0 || im->w <= 0)
        return st_errorf(err, ST_ERR_INTERNAL, "st_png_write_memory needs an 8-bit image with 1 or 3 channels");
    png_sink sink = {{0}};
    png_membuf mem = {0};
    if (encode(NULL, &mem, im, &sink) != 0) {
        free(mem.buf);
        return st_errorf(err, strstr(sink.msg, "memory") ? ST_ERR_NOMEM : ST_ERR_INTERNAL,
                         "PNG encoding failed: %s", sink.msg);
    }
    *out = mem.buf;
    *len = mem.len;
    return ST_OK;
}
