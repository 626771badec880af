/* PNG decoding with libpng, hardened for datasets that users bring.
 *
 * Files are read into memory first and decoded from the buffer, so the decoder's reads
 * are checked against the real length: running past the end is reliably "truncated",
 * not whatever libpng makes of a short fread. Before libpng sees the data, a pass over
 * the chunk list verifies every complete chunk's CRC: libpng checks an IDAT chunk's CRC
 * only after inflating it, so a flipped byte inside IDAT would otherwise surface as a
 * zlib error ("corrupt") instead of the more telling CRC failure.
 *
 * Decisions:
 * - 16-bit samples are reduced with png_set_strip_16 (keep the high byte: v >> 8), as
 *   OpenCV's imread does, so a dataset decodes to the same pixels here and in YOLOv5.
 * - A file that ends after its image data is complete (all rows decoded, the last IDAT
 *   chunk whole with a good CRC) but before IEND is accepted: the pixels are all there
 *   and checked. A file cut anywhere earlier is TRUNCATED.
 * - Gray from colour (want_c = 1) is ITU-R 601 luminance in OpenCV's fixed point
 *   (0.299 R + 0.587 G + 0.114 B, 14-bit weights, rounded), computed here rather than by
 *   libpng's rgb_to_gray so the result does not depend on gamma chunks.
 * - Gamma, sBIT and colour-profile chunks are ignored: pixels are used as stored. */
#include "st_image.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <zlib.h>

#define PNG_MAX_SIDE 16384
#define PNG_HINT "re-export or delete the file"

static const char *const problem_names[ST_IMG_PROBLEM_COUNT] = {
    [ST_IMG_OK] = "ok",
    [ST_IMG_EMPTY] = "empty file",
    [ST_IMG_TRUNCATED] = "truncated PNG",
    [ST_IMG_NOT_PNG] = "not a PNG",
    [ST_IMG_CRC] = "PNG CRC error",
    [ST_IMG_CORRUPT] = "corrupt PNG",
    [ST_IMG_UNREADABLE] = "unreadable file",
    [ST_IMG_UNSUPPORTED] = "unsupported format",
    [ST_IMG_TOO_LARGE] = "image too large",
};

const char *st_img_problem_name(st_img_problem p) {
    if ((int)p < 0 || p >= ST_IMG_PROBLEM_COUNT) return "unknown problem";
    return problem_names[p];
}

st_status st_image_alloc(st_image *im, int c, int h, int w) {
    im->c = im->h = im->w = 0;
    im->data = NULL;
    if ((c != 1 && c != 3) || h <= 0 || w <= 0 || h > 65536 || w > 65536) return ST_ERR_INTERNAL;
    im->data = st_alloc((size_t)c * (size_t)h * (size_t)w);
    if (!im->data) return ST_ERR_NOMEM;
    im->c = c;
    im->h = h;
    im->w = w;
    return ST_OK;
}

void st_image_free(st_image *im) {
    if (!im) return;
    st_free(im->data);
    im->data = NULL;
    im->c = im->h = im->w = 0;
}

/* Sets *problem and the message (path, what is wrong, the hint); returns ST_ERR_INPUT. */
static st_status img_fail(st_img_problem *problem, st_error *err, st_img_problem p,
                          const char *name, const char *detail) {
    if (problem) *problem = p;
    const char *extra = p == ST_IMG_UNREADABLE ? "check its permissions or link, "
                        : p == ST_IMG_TOO_LARGE ? "resize it, " : "";
    if (p == ST_IMG_UNSUPPORTED)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s; %s", name, detail, PNG_HINT);
    return st_errorf(err, ST_ERR_INPUT, "%s: %s (%s); %s%s", name, st_img_problem_name(p), detail,
                     extra, PNG_HINT);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int is_chunk_letter(uint8_t ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }

/* Walks the chunk list and checks the CRC of every complete chunk. Returns 1 and names
 * the chunk in bad[5] on a mismatch. Stops quietly at IEND, at a chunk that runs past
 * the end (libpng then reports the truncation) or at something that is not a chunk
 * header (libpng reports the corruption). */
static int find_bad_crc(const uint8_t *buf, size_t len, char bad[5]) {
    size_t off = 8;
    while (off + 12 <= len) {
        uint32_t n = be32(buf + off);
        const uint8_t *type = buf + off + 4;
        if (n > 0x7fffffffu) return 0;
        for (int i = 0; i < 4; i++)
            if (!is_chunk_letter(type[i])) return 0;
        if ((size_t)n > len - off - 12) return 0;
        uLong crc = crc32(0L, type, 4 + n);
        if (crc != be32(buf + off + 8 + n)) {
            memcpy(bad, type, 4);
            bad[4] = 0;
            return 1;
        }
        if (memcmp(type, "IEND", 4) == 0) return 0;
        off += 12 + (size_t)n;
    }
    return 0;
}

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    int truncated;  /* a read ran past the end of the buffer */
    int oom;        /* an allocation failed */
    char msg[200];  /* libpng's error message */
} png_src;

static void src_read(png_structp png, png_bytep out, png_size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        s->truncated = 1;
        png_error(png, "file ends early");
    }
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

static void src_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

/* libpng's default handler prints; library code stays silent. */
static void src_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Converts decoded 8-bit rows of `nc` channels (1..4; alpha, if any, last) into
 * out (want_c = 1 or 3). */
static void convert_rows(const uint8_t *in, int nc, st_image *out) {
    size_t n = (size_t)out->h * (size_t)out->w;
    uint8_t *o = out->data;
    int colour = nc >= 3;
    if (out->c == 3 && colour) {
        for (size_t i = 0; i < n; i++) {
            o[3 * i] = in[nc * i];
            o[3 * i + 1] = in[nc * i + 1];
            o[3 * i + 2] = in[nc * i + 2];
        }
    } else if (out->c == 3) {
        for (size_t i = 0; i < n; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[nc * i];
    } else if (colour) {
        for (size_t i = 0; i < n; i++) {
            uint32_t r = in[nc * i], g = in[nc * i + 1], b = in[nc * i + 2];
            o[i] = (uint8_t)((r * 4899u + g * 9617u + b * 1868u + 8192u) >> 14);
        }
    } else {
        for (size_t i = 0; i < n; i++) o[i] = in[nc * i];
    }
}

typedef struct {
    uint32_t w, h; /* from IHDR when present, for the too-large check */
    int want_c;
    st_image *out;
} png_job;

/* The libpng part. Everything allocated after setjmp lives in volatile locals so the
 * error path (reached by longjmp from the error handler) can free it. Returns the
 * problem kind (ST_IMG_OK on success); src->oom tells a failed allocation apart. */
static st_img_problem png_decode(png_src *src, png_job *job) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, src_error, src_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile data = NULL; /* the output pixels */
    uint8_t *volatile pix = NULL;  /* decoded rows when they need converting */
    png_bytep *volatile rows = NULL;
    volatile int rows_done = 0, out_c = 0;
    volatile uint32_t out_w = 0, out_h = 0;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        src->oom = 1;
        return ST_IMG_CORRUPT;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        st_free(pix);
        if (rows_done && src->truncated) { /* only IEND (or later chunks) missing */
            *job->out = (st_image){out_c, (int)out_h, (int)out_w, data};
            return ST_IMG_OK;
        }
        st_free(data);
        if (src->truncated) return ST_IMG_TRUNCATED;
        if (strstr(src->msg, "CRC error")) return ST_IMG_CRC;
        if (job->w > PNG_MAX_SIDE || job->h > PNG_MAX_SIDE) return ST_IMG_TOO_LARGE;
        return ST_IMG_CORRUPT;
    }
    png_set_read_fn(png, src, src_read);
    png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);

    int ctype = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int nc = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (nc < 1 || nc > 4 || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * nc)
        png_error(png, "unexpected pixel layout after conversion");
    int want = job->want_c ? job->want_c : (nc >= 3 ? 3 : 1);
    out_c = want;
    out_w = w;
    out_h = h;
    data = st_alloc((size_t)want * w * h);
    if (!data) {
        src->oom = 1;
        png_error(png, "out of memory");
    }
    uint8_t *dst = data;
    if (nc != want) {
        pix = malloc(rowbytes * h);
        if (!pix) {
            src->oom = 1;
            png_error(png, "out of memory");
        }
        dst = pix;
    }
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) {
        src->oom = 1;
        png_error(png, "out of memory");
    }
    for (uint32_t y = 0; y < h; y++) rows[y] = dst + (size_t)y * rowbytes;
    png_read_image(png, rows);
    st_image img = {want, (int)h, (int)w, data};
    if (pix) convert_rows(pix, nc, &img);
    rows_done = 1;
    png_read_end(png, NULL);

    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    st_free(pix);
    *job->out = img;
    return ST_IMG_OK;
}

static int has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    return n >= e && strcasecmp(name + n - e, ext) == 0;
}

st_status st_png_read_mem(const uint8_t *buf, size_t len, const char *name, int want_c,
                          st_image *out, st_img_problem *problem, st_error *err) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    out->c = out->h = out->w = 0;
    out->data = NULL;
    if (problem) *problem = ST_IMG_OK;
    if (!name) name = "(memory)";
    if (want_c != 0 && want_c != 1 && want_c != 3)
        return st_errorf(err, ST_ERR_INTERNAL, "%s: want_c must be 0, 1 or 3 (got %d)", name, want_c);
    if (len == 0) return img_fail(problem, err, ST_IMG_EMPTY, name, "0 bytes");
    if (len < 8 || memcmp(buf, sig, 8) != 0) {
        int jpeg = len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF;
        if (jpeg || has_ext(name, ".jpg") || has_ext(name, ".jpeg"))
            return img_fail(problem, err, ST_IMG_UNSUPPORTED, name,
                            "JPEG is not supported: convert it to PNG (e.g. `convert x.jpg x.png`)");
        if (len < 8 && memcmp(buf, sig, len) == 0)
            return img_fail(problem, err, ST_IMG_TRUNCATED, name, "ends inside the PNG signature");
        return img_fail(problem, err, ST_IMG_NOT_PNG, name, "no PNG signature");
    }
    char bad[5];
    if (find_bad_crc(buf, len, bad)) {
        char detail[64];
        snprintf(detail, sizeof detail, "chunk %s fails its CRC", bad);
        return img_fail(problem, err, ST_IMG_CRC, name, detail);
    }
    png_job job = {0, 0, want_c, out};
    if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
        job.w = be32(buf + 16);
        job.h = be32(buf + 20);
    }
    png_src src = {buf, len, 0, 0, 0, {0}};
    st_img_problem p = png_decode(&src, &job);
    if (p == ST_IMG_OK) return ST_OK;
    if (src.oom)
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory decoding a %ux%u PNG", name,
                         job.w, job.h);
    char detail[300];
    if (p == ST_IMG_TOO_LARGE)
        snprintf(detail, sizeof detail, "%u x %u pixels, the limit is %d a side", job.w, job.h,
                 PNG_MAX_SIDE);
    else if (p == ST_IMG_TRUNCATED)
        snprintf(detail, sizeof detail, "the file ends after %zu bytes, before the image data does", len);
    else
        snprintf(detail, sizeof detail, "libpng: %s", src.msg);
    return img_fail(problem, err, p, name, detail);
}

/* Reads the whole file. Opened non-blocking so a FIFO named x.png cannot hang the
 * loader, and checked on the open descriptor so nothing can swap the file in between. */
static st_status read_file(const char *path, uint8_t **out, size_t *len, st_img_problem *problem,
                           st_error *err) {
    char detail[300];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(detail, sizeof detail, "cannot open: %s", strerror(errno));
        return img_fail(problem, err, ST_IMG_UNREADABLE, path, detail);
    }
    struct stat sb;
    int failed = fstat(fd, &sb) != 0;
    if (failed || !S_ISREG(sb.st_mode)) {
        snprintf(detail, sizeof detail, "%s", failed ? strerror(errno)
                                              : S_ISDIR(sb.st_mode) ? "is a folder, not a file"
                                                                    : "not a regular file");
        close(fd);
        return img_fail(problem, err, ST_IMG_UNREADABLE, path, detail);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            snprintf(detail, sizeof detail, "read failed: %s", strerror(e));
            return img_fail(problem, err, ST_IMG_UNREADABLE, path, detail);
        }
        if (r == 0) break; /* the file shrank while being read: decodes as truncated */
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = got;
    return ST_OK;
}

st_status st_png_read(const char *path, int want_c, st_image *out, st_img_problem *problem,
                      st_error *err) {
    out->c = out->h = out->w = 0;
    out->data = NULL;
    if (problem) *problem = ST_IMG_OK;
    uint8_t *buf = NULL;
    size_t len = 0;
    st_status s = read_file(path, &buf, &len, problem, err);
    if (s != ST_OK) return s;
    s = st_png_read_mem(buf, len, path, want_c, out, problem, err);
    free(buf);
    return s;
}
