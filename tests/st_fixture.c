#include "st_fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity limits: fixtures are small; anything beyond these is a corrupt file, and
 * checking first keeps a bad header from turning into a huge allocation. */
#define FX_MAX_COUNT 100000u
#define FX_MAX_NAME 4096u
#define FX_MAX_NUMEL (1u << 28)

typedef struct {
    const unsigned char *p;
    size_t len, off;
} cursor;

static int take(cursor *c, void *dst, size_t n) {
    if (c->len - c->off < n) return -1;
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return 0;
}

/* Byte-wise so the reader is right on any host byte order. */
static int take_u32(cursor *c, uint32_t *v) {
    unsigned char b[4];
    if (take(c, b, 4)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int take_f32s(cursor *c, float *dst, size_t n) {
    if ((c->len - c->off) / 4 < n) return -1;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = c->p + c->off + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24;
        memcpy(&dst[i], &u, 4);
    }
    c->off += 4 * n;
    return 0;
}

static st_status read_file(const char *path, unsigned char **buf, size_t *len, st_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, ST_ERR_INPUT, "fixture %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            return st_errorf(err, ST_ERR_NOMEM, "fixture %s: out of memory", path);
        }
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *nb = realloc(b, cap * 2);
        if (!nb) free(b);
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return st_errorf(err, ST_ERR_IO, "fixture %s: read error", path);
    }
    *buf = b;
    *len = n;
    return ST_OK;
}

static st_status parse(st_fixture *fx, cursor *c, const char *path, st_error *err) {
    char magic[4];
    uint32_t count;
    if (take(c, magic, 4) || memcmp(magic, "STFX", 4) != 0)
        return st_errorf(err, ST_ERR_INPUT, "fixture %s: not an STFX file (bad magic)", path);
    if (take_u32(c, &count) || count > FX_MAX_COUNT)
        return st_errorf(err, ST_ERR_INPUT, "fixture %s: bad tensor count", path);
    fx->t = calloc(count ? count : 1, sizeof *fx->t);
    if (!fx->t) return st_errorf(err, ST_ERR_NOMEM, "fixture %s: out of memory", path);
    for (uint32_t i = 0; i < count; i++) {
        st_fx_tensor *t = &fx->t[i];
        uint32_t nlen, ndim;
        if (take_u32(c, &nlen) || nlen == 0 || nlen > FX_MAX_NAME)
            return st_errorf(err, ST_ERR_INPUT, "fixture %s: tensor %u: bad name length", path,
                             i);
        if (!(t->name = malloc(nlen + 1)))
            return st_errorf(err, ST_ERR_NOMEM, "fixture %s: out of memory", path);
        fx->count = (int)i + 1; /* from here on st_fixture_free releases tensor i */
        if (take(c, t->name, nlen))
            return st_errorf(err, ST_ERR_INPUT, "fixture %s: truncated in tensor %u name", path,
                             i);
        t->name[nlen] = '\0';
        if (take_u32(c, &ndim) || ndim > ST_FX_MAX_DIMS)
            return st_errorf(err, ST_ERR_INPUT, "fixture %s: %s: bad ndim", path, t->name);
        t->ndim = (int)ndim;
        size_t numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            uint32_t v;
            if (take_u32(c, &v) || v > FX_MAX_NUMEL || (numel *= v) > FX_MAX_NUMEL)
                return st_errorf(err, ST_ERR_INPUT, "fixture %s: %s: bad dims", path, t->name);
            t->dims[d] = (int)v;
        }
        t->numel = numel;
        if (!(t->data = malloc((numel ? numel : 1) * sizeof(float))))
            return st_errorf(err, ST_ERR_NOMEM, "fixture %s: out of memory", path);
        if (take_f32s(c, t->data, numel))
            return st_errorf(err, ST_ERR_INPUT, "fixture %s: %s: truncated data (%zu floats)",
                             path, t->name, numel);
    }
    if (c->off != c->len)
        return st_errorf(err, ST_ERR_INPUT, "fixture %s: %zu trailing bytes", path,
                         c->len - c->off);
    return ST_OK;
}

st_status st_fixture_load(st_fixture *fx, const char *path, st_error *err) {
    memset(fx, 0, sizeof *fx);
    unsigned char *buf = NULL;
    size_t len = 0;
    st_status s = read_file(path, &buf, &len, err);
    if (s != ST_OK) return s;
    cursor c = {buf, len, 0};
    s = parse(fx, &c, path, err);
    free(buf);
    if (s != ST_OK) st_fixture_free(fx);
    return s;
}

void st_fixture_free(st_fixture *fx) {
    for (int i = 0; i < fx->count; i++) {
        free(fx->t[i].name);
        free(fx->t[i].data);
    }
    free(fx->t);
    memset(fx, 0, sizeof *fx);
}

const st_fx_tensor *st_fixture_find(const st_fixture *fx, const char *name) {
    for (int i = 0; i < fx->count; i++)
        if (strcmp(fx->t[i].name, name) == 0) return &fx->t[i];
    return NULL;
}

const st_fx_tensor *st_fixture_findf(const st_fixture *fx, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) return NULL;
    return st_fixture_find(fx, name);
}
