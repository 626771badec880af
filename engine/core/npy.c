/* .npy reader and writer (see st_npy.h). The header is a Python dict literal; we read
 * only the three keys NumPy writes and reject anything we would misread. */
#include "st_npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *find_key(const char *h, const char *key) {
    const char *p = strstr(h, key);
    if (!p) return NULL;
    p += strlen(key);
    while (*p == ' ' || *p == ':') p++;
    return p;
}

static st_status parse_header(const char *path, const char *h, int *is_f64, st_npy *a,
                              st_error *err) {
    const char *d = find_key(h, "'descr'");
    if (!d) return st_errorf(err, ST_ERR_INPUT, "%s: .npy header has no 'descr'", path);
    if (strncmp(d, "'<f4'", 5) == 0) *is_f64 = 0;
    else if (strncmp(d, "'<f8'", 5) == 0) *is_f64 = 1;
    else {
        char t[16] = "";
        sscanf(d, "'%15[^']", t);
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: element type '%s' is not supported; save float32 (<f4) or "
                         "float64 (<f8), e.g. x.astype(numpy.float32)", path, t);
    }
    const char *f = find_key(h, "'fortran_order'");
    if (!f || strncmp(f, "False", 5) != 0)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: array is not in C order; save numpy.ascontiguousarray(x)", path);
    const char *s = find_key(h, "'shape'");
    if (!s || *s != '(') return st_errorf(err, ST_ERR_INPUT, "%s: .npy header has no shape", path);
    s++;
    a->ndim = 0;
    a->numel = 1;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        if (!isdigit((unsigned char)*s) || a->ndim == ST_NPY_MAX_NDIM)
            return st_errorf(err, ST_ERR_INPUT, "%s: bad or too many dimensions in the shape", path);
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0 || v > ((int64_t)1 << 40))
            return st_errorf(err, ST_ERR_INPUT, "%s: dimension out of range", path);
        a->shape[a->ndim++] = v;
        a->numel *= (size_t)v;
        if (a->numel > ((size_t)1 << 34)) return st_errorf(err, ST_ERR_INPUT, "%s: array too large", path);
        s = end;
    }
    return ST_OK;
}

st_status st_npy_read(const char *path, st_npy *a, st_error *err) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, ST_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    st_status s = ST_OK;
    char *h = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        s = st_errorf(err, ST_ERR_INPUT, "%s: not a NumPy .npy file", path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) goto trunc;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        s = st_errorf(err, ST_ERR_INPUT, "%s: .npy format version %d is not supported", path, pre[6]);
        goto out;
    }
    if (hlen > (1u << 20)) {
        s = st_errorf(err, ST_ERR_INPUT, "%s: .npy header too large", path);
        goto out;
    }
    h = malloc(hlen + 1);
    if (!h) {
        s = st_errorf(err, ST_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (fread(h, 1, hlen, f) != hlen) goto trunc;
    h[hlen] = 0;
    int f64 = 0;
    if ((s = parse_header(path, h, &f64, a, err)) != ST_OK) goto out;
    size_t esz = f64 ? 8 : 4;
    a->data = st_alloc(a->numel * esz + 1);
    if (!a->data) {
        s = st_errorf(err, ST_ERR_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    if (fread(a->data, esz, a->numel, f) != a->numel) goto trunc;
    if (f64) { /* convert in place, front to back is safe: float slot i < double slot i */
        const double *dd = (const double *)(void *)a->data;
        for (size_t i = 0; i < a->numel; i++) {
            double v;
            memcpy(&v, (const char *)dd + 8 * i, 8);
            a->data[i] = (float)v;
        }
    }
    goto out;
trunc:
    s = st_errorf(err, ST_ERR_INPUT, "%s: file is truncated", path);
out:
    free(h);
    fclose(f);
    if (s != ST_OK) st_npy_free(a);
    return s;
}

st_status st_npy_write(const char *path, int ndim, const int64_t *shape, const float *data,
                       st_error *err) {
    if (ndim < 0 || ndim > ST_NPY_MAX_NDIM) return st_errorf(err, ST_ERR_INTERNAL, "npy: bad ndim %d", ndim);
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(h + n, sizeof h - n, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        numel *= (size_t)shape[i];
    }
    n += snprintf(h + n, sizeof h - n, "), }");
    int total = 10 + n + 1, padn = (64 - total % 64) % 64;
    memset(h + n, ' ', padn);
    n += padn;
    h[n++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255),
                             (unsigned char)(n >> 8)};
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return st_errorf(err, ST_ERR_INPUT, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return st_errorf(err, ST_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, n, f) == (size_t)n &&
             fwrite(data, sizeof(float), numel, f) == numel;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return st_errorf(err, ST_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return ST_OK;
}

void st_npy_free(st_npy *a) {
    if (a->data) st_free(a->data);
    a->data = NULL;
}
