/* IDX reader. zlib's gz* functions read gzipped and plain files alike, so one code path
 * serves both. Headers are never trusted for allocation: data is read into a buffer
 * that grows (doubling) only as bytes actually arrive, so a header claiming 2^63 bytes
 * costs at most one small buffer before the truncation is reported. */
#include "st_idx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAX_DIM 65535
/* Reads go in chunks no bigger than this: gzread takes an unsigned int length, and on a
 * stream error it reports 0 for the whole call, so small chunks keep "got M" accurate. */
#define IDX_CHUNK (256u * 1024u)
#define IDX_FIRST_ALLOC ((size_t)4 << 20)
#define IDX_HINT "re-download it (e.g. apt-get install --reinstall dataset-fashion-mnist)"

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static st_status idx_open(const char *path, gzFile *out, st_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return st_errorf(err, ST_ERR_INPUT, "%s: not a regular file; expected an IDX file", path);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return st_errorf(err, ST_ERR_INPUT, "%s: cannot open: %s", path,
                         errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 128u * 1024u);
    *out = f;
    return ST_OK;
}

/* Reads up to want bytes; *got says how many arrived (short means end of file). Only a
 * read error or a corrupt gzip stream is an error here; the caller judges shortness. */
static st_status gz_fill(gzFile f, const char *path, uint8_t *buf, size_t want, size_t *got,
                         st_error *err) {
    *got = 0;
    while (*got < want) {
        size_t chunk = ST_MIN(want - *got, (size_t)IDX_CHUNK);
        int n = gzread(f, buf + *got, (unsigned)chunk);
        if (n < 0) {
            int code = Z_OK;
            const char *zmsg = gzerror(f, &code);
            if (code == Z_ERRNO)
                return st_errorf(err, ST_ERR_INPUT, "%s: read failed: %s", path, strerror(errno));
            /* zlib prefixes its message with the path, which ours already names. */
            size_t pl = strlen(path);
            if (zmsg && strncmp(zmsg, path, pl) == 0 && zmsg[pl] == ':') zmsg += pl + 2;
            return st_errorf(err, ST_ERR_INPUT, "%s: corrupt gzip data (%s); " IDX_HINT, path,
                             zmsg ? zmsg : "unknown error");
        }
        if (n == 0) break;
        *got += (size_t)n;
    }
    return ST_OK;
}

/* Whether zlib saw a cut-off gzip stream, as opposed to an intact file whose header
 * overstates its contents. */
static int gz_was_cut(gzFile f) {
    int code = Z_OK;
    gzerror(f, &code);
    return code == Z_BUF_ERROR;
}

/* Header of hsize bytes with the given magic; a missing or wrong header gets a message
 * saying what the file looks like instead. */
static st_status read_header(gzFile f, const char *path, uint32_t magic, uint8_t *hdr, size_t hsize,
                             st_error *err) {
    size_t got = 0;
    st_status s = gz_fill(f, path, hdr, hsize, &got, err);
    if (s != ST_OK) return s;
    const char *kind = magic == IDX_MAGIC_IMAGES ? "image" : "label";
    if (got == 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: file is empty; expected an IDX %s file; " IDX_HINT,
                         path, kind);
    if (got >= 4 && be32(hdr) != magic) {
        uint32_t m = be32(hdr);
        const char *looks = m == IDX_MAGIC_IMAGES   ? " (that is an IDX image file)"
                            : m == IDX_MAGIC_LABELS ? " (that is an IDX label file)"
                                                    : "";
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: not an IDX %s file: magic 0x%08x%s, expected 0x%08x; check the "
                         "file name",
                         path, kind, m, looks, magic);
    }
    if (got < hsize)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: truncated IDX header: expected %zu bytes, got %zu%s; " IDX_HINT, path,
                         hsize, got, gz_was_cut(f) ? " (gzip stream ends early)" : "");
    return ST_OK;
}

/* Reads exactly total bytes of `what`, then checks nothing follows (which also makes
 * zlib verify the gzip trailer's CRC). *out is malloc'd. */
static st_status read_body(gzFile f, const char *path, uint64_t total, const char *what,
                           uint8_t **out, st_error *err) {
    *out = NULL;
    if (total > (uint64_t)SIZE_MAX / 2)
        return st_errorf(err, ST_ERR_INPUT, "%s: header claims %llu bytes of %s; not plausible",
                         path, (unsigned long long)total, what);
    size_t cap = ST_MIN((size_t)total, IDX_FIRST_ALLOC), done = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
    st_status s = ST_OK;
    while (done < total) {
        if (done == cap) {
            size_t ncap = ST_MIN((size_t)total, cap * 2);
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = st_errorf(err, ST_ERR_NOMEM, "%s: out of memory reading %s", path, what);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = 0;
        if ((s = gz_fill(f, path, buf + done, cap - done, &got, err)) != ST_OK) goto fail;
        done += got;
        if (done < cap) break; /* end of file before the buffer filled */
    }
    if (done < total) {
        /* On a cut gzip stream zlib drops the last partial read, so the count is a floor. */
        s = st_errorf(err, ST_ERR_INPUT,
                      "%s: truncated: expected %llu bytes of %s, got %s%zu%s; " IDX_HINT, path,
                      (unsigned long long)total, what, gz_was_cut(f) ? "at least " : "", done,
                      gz_was_cut(f) ? " before the gzip stream ends early" : "");
        goto fail;
    }
    uint8_t extra;
    size_t got = 0;
    if ((s = gz_fill(f, path, &extra, 1, &got, err)) != ST_OK) goto fail;
    if (got != 0) {
        s = st_errorf(err, ST_ERR_INPUT,
                      "%s: unexpected bytes after %llu bytes of %s; the header's counts do not "
                      "match the file; " IDX_HINT,
                      path, (unsigned long long)total, what);
        goto fail;
    }
    if (gz_was_cut(f)) { /* data complete but the gzip trailer is missing */
        s = st_errorf(err, ST_ERR_INPUT, "%s: truncated gzip stream (trailer missing); " IDX_HINT,
                      path);
        goto fail;
    }
    *out = buf;
    return ST_OK;
fail:
    free(buf);
    return s;
}

static st_status check_count(const char *path, uint32_t n, const char *what, st_error *err) {
    if (n == 0) return st_errorf(err, ST_ERR_INPUT, "%s: file holds no %s", path, what);
    if (n > INT_MAX)
        return st_errorf(err, ST_ERR_INPUT, "%s: header claims %u %s; not plausible", path, n,
                         what);
    return ST_OK;
}

st_status st_idx_load_images(const char *path, st_idx_images *out, st_error *err) {
    memset(out, 0, sizeof *out);
    gzFile f;
    st_status s = idx_open(path, &f, err);
    if (s != ST_OK) return s;
    uint8_t hdr[16];
    if ((s = read_header(f, path, IDX_MAGIC_IMAGES, hdr, sizeof hdr, err)) != ST_OK) goto done;
    uint32_t n = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if ((s = check_count(path, n, "images", err)) != ST_OK) goto done;
    if (rows == 0 || cols == 0 || rows > IDX_MAX_DIM || cols > IDX_MAX_DIM) {
        s = st_errorf(err, ST_ERR_INPUT,
                      "%s: implausible image size %ux%u (each side must be 1..%d); the header "
                      "is corrupt",
                      path, rows, cols, IDX_MAX_DIM);
        goto done;
    }
    uint8_t *px;
    s = read_body(f, path, (uint64_t)n * rows * cols, "pixel data", &px, err);
    if (s != ST_OK) goto done;
    out->n = (int)n;
    out->rows = (int)rows;
    out->cols = (int)cols;
    out->pixels = px;
done:
    gzclose(f);
    return s;
}

st_status st_idx_load_labels(const char *path, uint8_t **labels, int *n_out, st_error *err) {
    *labels = NULL;
    *n_out = 0;
    gzFile f;
    st_status s = idx_open(path, &f, err);
    if (s != ST_OK) return s;
    uint8_t hdr[8];
    if ((s = read_header(f, path, IDX_MAGIC_LABELS, hdr, sizeof hdr, err)) != ST_OK) goto done;
    uint32_t n = be32(hdr + 4);
    if ((s = check_count(path, n, "labels", err)) != ST_OK) goto done;
    if ((s = read_body(f, path, n, "label data", labels, err)) != ST_OK) goto done;
    *n_out = (int)n;
done:
    gzclose(f);
    return s;
}

void st_idx_images_free(st_idx_images *im) {
    if (!im) return;
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

/* ---- MNIST-style directory ---- */

#define MNIST_HINT                                                                                 \
    "install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (it lands in "             \
    "/usr/share/datasets/fashion-mnist) or point to a directory holding the four IDX files"

/* Finds dir/base or dir/base.gz (plain preferred) into buf. */
static st_status find_file(const char *dir, const char *base, char *buf, size_t cap,
                           st_error *err) {
    struct stat sb;
    int len = snprintf(buf, cap, "%s/%s", dir, base);
    if (len < 0 || (size_t)len + 4 >= cap)
        return st_errorf(err, ST_ERR_INPUT, "%s: directory path too long", dir);
    if (stat(buf, &sb) == 0) return ST_OK;
    strcat(buf, ".gz");
    if (stat(buf, &sb) == 0) return ST_OK;
    return st_errorf(err, ST_ERR_INPUT,
                     "%s: missing %s (looked for %s/%s and %s/%s.gz); " MNIST_HINT, dir, base, dir,
                     base, dir, base);
}

/* Loads one split's images and labels and checks they belong together. */
static st_status load_split(const char *dir, const char *img_base, const char *lab_base,
                            st_idx_images *im, uint8_t **lab, st_error *err) {
    char ipath[4096], lpath[4096];
    int nl = 0;
    st_status s;
    if ((s = find_file(dir, img_base, ipath, sizeof ipath, err)) != ST_OK) return s;
    if ((s = find_file(dir, lab_base, lpath, sizeof lpath, err)) != ST_OK) return s;
    if ((s = st_idx_load_images(ipath, im, err)) != ST_OK) return s;
    if ((s = st_idx_load_labels(lpath, lab, &nl, err)) != ST_OK) return s;
    if (nl != im->n)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s has %d images but %s has %d labels; the files do not belong "
                         "together; " MNIST_HINT,
                         ipath, im->n, lpath, nl);
    return ST_OK;
}

st_status st_mnist_load(const char *dir, st_mnist *out, st_error *err) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: dataset directory not found (%s); " MNIST_HINT,
                         dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return st_errorf(err, ST_ERR_INPUT, "%s: not a directory; " MNIST_HINT, dir);

    st_idx_images tr = {0}, te = {0};
    uint8_t *tr_y = NULL, *te_y = NULL;
    st_status s =
        load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", &tr, &tr_y, err);
    if (s == ST_OK)
        s = load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", &te, &te_y, err);
    if (s == ST_OK && (tr.rows != te.rows || tr.cols != te.cols))
        s = st_errorf(err, ST_ERR_INPUT,
                      "%s: training images are %dx%d but test images are %dx%d; the files come "
                      "from different datasets",
                      dir, tr.rows, tr.cols, te.rows, te.cols);
    if (s != ST_OK) {
        st_idx_images_free(&tr);
        st_idx_images_free(&te);
        free(tr_y);
        free(te_y);
        return s;
    }
    /* Labels are u8, so max + 1 <= 256 holds by construction. */
    int maxl = 0;
    for (int i = 0; i < tr.n; i++)
        maxl = ST_MAX(maxl, tr_y[i]);
    for (int i = 0; i < te.n; i++)
        maxl = ST_MAX(maxl, te_y[i]);
    out->n_train = tr.n;
    out->n_test = te.n;
    out->rows = tr.rows;
    out->cols = tr.cols;
    out->n_classes = maxl + 1;
    out->train_x = tr.pixels;
    out->train_y = tr_y;
    out->test_x = te.pixels;
    out->test_y = te_y;
    return ST_OK;
}

void st_mnist_free(st_mnist *m) {
    if (!m) return;
    free(m->train_x);
    free(m->train_y);
    free(m->test_x);
    free(m->test_y);
    memset(m, 0, sizeof *m);
}
