/* Checkpoint reader. The byte format is documented at the top of ckpt.c. Nothing in the
 * file is trusted: sizes are checked against the real file, the CRC is verified before
 * decompressing, and every length in the payload is checked against what remains. */
#include "st_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt_format.h"

struct st_ckpt {
    uint8_t *payload; /* names, keys, values and data point into it */
    st_ckpt_tensor *t;
    int nt;
    const st_ckpt_tensor **by_name; /* sorted, for st_ckpt_find */
    kv_pair *s;                     /* sorted by key */
    int ns;
};

void st_ckpt_free(st_ckpt *c) {
    if (!c) return;
    st_free(c->payload);
    free(c->t);
    free(c->by_name);
    free(c->s);
    free(c);
}

static uint64_t le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct {
    const uint8_t *p;
    uint64_t off, len;
} cursor;

/* Each returns 0 when the field would run past the end of the payload. */
static const uint8_t *take(cursor *c, uint64_t n) {
    if (n > c->len - c->off) return NULL;
    const uint8_t *q = c->p + c->off;
    c->off += n;
    return q;
}

static int get_uint(cursor *c, int bytes, uint64_t *v) {
    const uint8_t *q = take(c, (uint64_t)bytes);
    if (q) *v = le(q, bytes);
    return q != NULL;
}

/* A length-prefixed string whose stored NUL is its only one. */
static int get_cstr(cursor *c, const char **s) {
    uint64_t n;
    const uint8_t *q;
    if (!get_uint(c, 4, &n) || n == 0 || !(q = take(c, n))) return 0;
    if (q[n - 1] != 0 || memchr(q, 0, (size_t)n - 1)) return 0;
    *s = (const char *)q;
    return 1;
}

/* Parses one tensor record (kind byte already read); returns why it is bad, or NULL. */
static const char *parse_tensor(cursor *c, st_ckpt_tensor *t) {
    uint64_t dt, ndim, nbytes, count = 1;
    memset(t, 0, sizeof *t);
    if (!get_cstr(c, &t->name) || !*t->name) return "bad tensor name";
    if (!get_uint(c, 1, &dt) || !get_uint(c, 1, &ndim)) return "tensor record cut short";
    size_t es = st_dtype_size((st_dtype)dt);
    if (!es) return "unknown dtype";
    if (ndim > ST_CKPT_MAX_NDIM) return "too many dimensions";
    for (uint64_t d = 0; d < ndim; d++) {
        uint64_t v;
        if (!get_uint(c, 8, &v)) return "tensor record cut short";
        if (v > (uint64_t)INT64_MAX) return "negative dimension";
        if (v && count > CK_MAX_RAW / v) return "tensor too large";
        count *= v;
        t->shape[d] = (int64_t)v;
    }
    if (!get_uint(c, 8, &nbytes)) return "tensor record cut short";
    if (count > CK_MAX_RAW / es || nbytes != count * es)
        return "tensor size does not match its shape";
    if (!take(c, (CK_ALIGN - c->off % CK_ALIGN) % CK_ALIGN)) return "tensor record cut short";
    const uint8_t *data = take(c, nbytes);
    if (!data) return "tensor data runs past the end";
    t->dtype = (st_dtype)dt;
    t->ndim = (int)ndim;
    t->data = data;
    t->nbytes = (size_t)nbytes;
    return NULL;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const st_ckpt_tensor *const *)a)->name,
                  (*(const st_ckpt_tensor *const *)b)->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(((const kv_pair *)a)->key, ((const kv_pair *)b)->key);
}

#define MALFORMED "%s: malformed payload "
#define MALFORMED_END " (file corrupt); " CK_HINT

/* Fills c from c->payload (len bytes); on failure c is left for the caller to free. */
static st_status parse_payload(st_ckpt *c, uint64_t len, const char *path, st_error *err) {
    cursor cur = {c->payload, 0, len};
    int capt = 0, caps = 0;
    const char *why = NULL;
    while (cur.off < cur.len && !why) {
        uint64_t kind = 0, at = cur.off;
        get_uint(&cur, 1, &kind);
        if (kind == REC_STRING) {
            kv_pair s;
            if (!get_cstr(&cur, &s.key) || !*s.key || !get_cstr(&cur, &s.value))
                why = "bad string record";
            else if (!ckpt_grow((void **)&c->s, &caps, c->ns, sizeof *c->s))
                return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
            else
                c->s[c->ns++] = s;
        } else if (kind == REC_TENSOR) {
            if (!ckpt_grow((void **)&c->t, &capt, c->nt, sizeof *c->t))
                return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
            if (!(why = parse_tensor(&cur, &c->t[c->nt]))) c->nt++;
        } else {
            why = "unknown record kind";
        }
        if (why)
            return st_errorf(err, ST_ERR_INPUT, MALFORMED "at byte %llu: %s" MALFORMED_END, path,
                             (unsigned long long)at, why);
    }
    /* Sorting finds duplicates in n log n and makes lookups binary searches. */
    c->by_name = malloc(sizeof *c->by_name * (size_t)(c->nt ? c->nt : 1));
    if (!c->by_name) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < c->nt; i++)
        c->by_name[i] = &c->t[i];
    qsort(c->by_name, (size_t)c->nt, sizeof *c->by_name, cmp_tensor_ptr);
    for (int i = 1; i < c->nt; i++)
        if (strcmp(c->by_name[i - 1]->name, c->by_name[i]->name) == 0)
            return st_errorf(err, ST_ERR_INPUT,
                             MALFORMED "duplicate tensor name \"%s\"" MALFORMED_END, path,
                             c->by_name[i]->name);
    if (c->ns) qsort(c->s, (size_t)c->ns, sizeof *c->s, cmp_str);
    for (int i = 1; i < c->ns; i++)
        if (strcmp(c->s[i - 1].key, c->s[i].key) == 0)
            return st_errorf(err, ST_ERR_INPUT,
                             MALFORMED "duplicate string key \"%s\"" MALFORMED_END, path,
                             c->s[i].key);
    return ST_OK;
}

static size_t read_upto(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, ST_MIN(n - got, (size_t)1 << 30));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* Reads and checks header, size and CRC; returns the verified compressed bytes. */
static st_status read_verified(int fd, const char *path, uint64_t fsize, uint8_t **comp_out,
                               uint64_t *clen_out, uint64_t *raw_out, st_error *err) {
    uint8_t hdr[CK_HDR];
    size_t got = read_upto(fd, hdr, CK_HDR);
    if (got == 0)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: file is empty (0 bytes), not a complete checkpoint; " CK_HINT, path);
    if (memcmp(hdr, CK_MAGIC, ST_MIN(got, (size_t)8)) != 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: not a sparsetrain checkpoint (bad magic)", path);
    if (got < CK_HDR)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: truncated: %zu bytes, shorter than the %d-byte header; " CK_HINT,
                         path, got, CK_HDR);
    uint32_t version = (uint32_t)le(hdr + 8, 4);
    if (version != CK_VERSION)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: unsupported checkpoint format version %u (this build reads version "
                         "%u); use the sparsetrain build that wrote it",
                         path, version, CK_VERSION);
    uint64_t raw = le(hdr + 12, 8), clen = le(hdr + 20, 8), body = fsize - CK_HDR;
    uint32_t crc = (uint32_t)le(hdr + 28, 4);
    if (clen > body)
        return st_errorf(
            err, ST_ERR_INPUT,
            "%s: truncated: header promises %llu compressed bytes but %llu follow; " CK_HINT, path,
            (unsigned long long)clen, (unsigned long long)body);
    if (clen < body)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: %llu unexpected byte(s) after the payload (file corrupt); " CK_HINT,
                         path, (unsigned long long)(body - clen));
    if (raw > CK_MAX_RAW || raw > clen * CK_MAX_RATIO + 64)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: malformed header: payload size %llu is implausible for %llu "
                         "compressed bytes (file corrupt); " CK_HINT,
                         path, (unsigned long long)raw, (unsigned long long)clen);
    uint8_t *comp = malloc(clen ? (size_t)clen : 1);
    if (!comp) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory reading checkpoint", path);
    errno = 0;
    if (read_upto(fd, comp, (size_t)clen) != clen) {
        free(comp);
        return st_errorf(err, ST_ERR_INPUT, "%s: cannot read the whole checkpoint (%s); " CK_HINT,
                         path, errno ? strerror(errno) : "file shrank while reading");
    }
    if ((uint32_t)crc32_z(0, comp, (size_t)clen) != crc) {
        free(comp);
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: checksum mismatch (file corrupt or truncated); " CK_HINT, path);
    }
    *comp_out = comp;
    *clen_out = clen;
    *raw_out = raw;
    return ST_OK;
}

st_status st_ckpt_read(const char *path, st_ckpt **out, st_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: cannot open checkpoint: %s", path,
                         strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return st_errorf(err, ST_ERR_INPUT, "%s: not a regular file; expected a checkpoint", path);
    }
    uint8_t *comp = NULL;
    uint64_t clen = 0, raw = 0;
    st_status s = read_verified(fd, path, (uint64_t)sb.st_size, &comp, &clen, &raw, err);
    close(fd);
    if (s != ST_OK) return s;

    st_ckpt *c = calloc(1, sizeof *c);
    if (c) c->payload = st_alloc((size_t)raw);
    if (!c || !c->payload) {
        free(comp);
        st_ckpt_free(c);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory for a %llu-byte checkpoint", path,
                         (unsigned long long)raw);
    }
    uLongf dlen = (uLongf)raw;
    int zr = uncompress(c->payload, &dlen, comp, (uLong)clen);
    free(comp);
    if (zr != Z_OK || dlen != raw) {
        st_ckpt_free(c);
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: payload does not decompress to the %llu bytes the header states "
                         "(zlib: %s); file corrupt; " CK_HINT,
                         path, (unsigned long long)raw, zr == Z_OK ? "short output" : zError(zr));
    }
    if ((s = parse_payload(c, raw, path, err)) != ST_OK) {
        st_ckpt_free(c);
        return s;
    }
    *out = c;
    return ST_OK;
}

int st_ckpt_num_tensors(const st_ckpt *c) { return c ? c->nt : 0; }

const st_ckpt_tensor *st_ckpt_tensor_at(const st_ckpt *c, int i) {
    return c && i >= 0 && i < c->nt ? &c->t[i] : NULL;
}

const st_ckpt_tensor *st_ckpt_find(const st_ckpt *c, const char *name) {
    if (!c || !name || !c->nt) return NULL;
    st_ckpt_tensor key = {.name = name};
    const st_ckpt_tensor *kp = &key;
    const st_ckpt_tensor *const *hit =
        bsearch(&kp, c->by_name, (size_t)c->nt, sizeof *c->by_name, cmp_tensor_ptr);
    return hit ? *hit : NULL;
}

const char *st_ckpt_string(const st_ckpt *c, const char *key) {
    if (!c || !key || !c->ns) return NULL;
    kv_pair k = {key, NULL};
    const kv_pair *hit = bsearch(&k, c->s, (size_t)c->ns, sizeof *c->s, cmp_str);
    return hit ? hit->value : NULL;
}
