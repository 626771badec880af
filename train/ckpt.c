/* Checkpoint container file: format, dtype sizes and the writer (reader: ckpt_read.c).
 *
 * File layout (all integers little-endian):
 *   offset  0  8 bytes  magic "STCKPT01"
 *   offset  8  u32      format version (1)
 *   offset 12  u64      uncompressed payload size
 *   offset 20  u64      compressed payload size (the file is exactly 32 + this long)
 *   offset 28  u32      CRC-32 (zlib crc32) of the compressed bytes
 *   offset 32  ...      the payload, one zlib stream (compress2)
 *
 * Payload: records back to back until its end. Each starts with a u8 kind.
 *   kind 1, string:  u32 klen, key bytes + NUL (klen counts the NUL),
 *                    u32 vlen, value bytes + NUL
 *   kind 2, tensor:  u32 nlen, name bytes + NUL, u8 dtype (st_dtype), u8 ndim (0..8),
 *                    ndim x i64 dims, u64 nbytes (= product(dims) * dtype size),
 *                    zero padding up to the next multiple of 64 payload bytes,
 *                    nbytes of data in host (little-endian) order
 * Strings come first, then tensors in the order they were put. Names and keys are unique
 * and non-empty. Storing the NULs and padding tensor data to 64 bytes lets the reader
 * hand out names and data pointing straight into the decompressed buffer: no copies,
 * and data is aligned for SIMD loads.
 *
 * The reader trusts nothing: the file size must match the header, the CRC must match,
 * the uncompressed size is capped and must be reachable by deflate's maximum ratio, and
 * every length inside the payload is checked against what remains. */
#include "st_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt_format.h"

size_t st_dtype_size(st_dtype dt) {
    switch (dt) {
    case ST_DT_F32: return 4;
    case ST_DT_U8: return 1;
    case ST_DT_I32: return 4;
    case ST_DT_U64: return 8;
    }
    return 0;
}

/* ---- writer ---- */

struct st_ckpt_writer {
    st_ckpt_tensor *t; /* name and data are owned copies */
    int nt, capt;
    kv_pair *s; /* owned copies */
    int ns, caps;
};

st_ckpt_writer *st_ckpt_writer_new(void) { return calloc(1, sizeof(st_ckpt_writer)); }

void st_ckpt_writer_free(st_ckpt_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->nt; i++) {
        free((void *)w->t[i].name);
        free((void *)w->t[i].data);
    }
    for (int i = 0; i < w->ns; i++) {
        free((void *)w->s[i].key);
        free((void *)w->s[i].value);
    }
    free(w->t);
    free(w->s);
    free(w);
}

st_status st_ckpt_put_tensor(st_ckpt_writer *w, const char *name, st_dtype dt, int ndim,
                             const int64_t *shape, const void *data, st_error *err) {
    if (!w || !name || !*name)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor needs a writer and a name");
    size_t es = st_dtype_size(dt);
    if (!es)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor %s: unknown dtype %d", name,
                         (int)dt);
    if (ndim < 0 || ndim > ST_CKPT_MAX_NDIM || (ndim > 0 && !shape))
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor %s: ndim %d outside 0..%d", name,
                         ndim, ST_CKPT_MAX_NDIM);
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor %s: negative dimension %lld",
                             name, (long long)shape[d]);
        if (shape[d] && count > CK_MAX_RAW / (uint64_t)shape[d])
            count = CK_MAX_RAW + 1;
        else
            count *= (uint64_t)shape[d];
    }
    /* The reader refuses payloads over CK_MAX_RAW, so refuse now rather than at load. */
    if (count > CK_MAX_RAW / es)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor %s exceeds the 64 GiB limit", name);
    size_t nbytes = (size_t)(count * es);
    if (nbytes && !data)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: tensor %s: no data", name);
    /* Linear scan: models have hundreds of tensors, not millions. */
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return st_errorf(err, ST_ERR_INPUT, "checkpoint: duplicate tensor name \"%s\"", name);
    if (!ckpt_grow((void **)&w->t, &w->capt, w->nt, sizeof *w->t))
        return st_errorf(err, ST_ERR_NOMEM, "checkpoint: out of memory");
    st_ckpt_tensor t = {.dtype = dt, .ndim = ndim, .nbytes = nbytes};
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    char *nm = strdup(name);
    void *copy = nbytes ? malloc(nbytes) : NULL;
    if (!nm || (nbytes && !copy)) {
        free(nm);
        free(copy);
        return st_errorf(err, ST_ERR_NOMEM, "checkpoint: out of memory copying tensor %s", name);
    }
    if (nbytes) memcpy(copy, data, nbytes);
    t.name = nm;
    t.data = copy;
    w->t[w->nt++] = t;
    return ST_OK;
}

st_status st_ckpt_put_string(st_ckpt_writer *w, const char *key, const char *value, st_error *err) {
    if (!w || !key || !*key || !value)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: string needs a writer, a key and a value");
    for (int i = 0; i < w->ns; i++)
        if (strcmp(w->s[i].key, key) == 0)
            return st_errorf(err, ST_ERR_INPUT, "checkpoint: duplicate string key \"%s\"", key);
    if (!ckpt_grow((void **)&w->s, &w->caps, w->ns, sizeof *w->s))
        return st_errorf(err, ST_ERR_NOMEM, "checkpoint: out of memory");
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return st_errorf(err, ST_ERR_NOMEM, "checkpoint: out of memory");
    }
    w->s[w->ns].key = k;
    w->s[w->ns].value = v;
    w->ns++;
    return ST_OK;
}

/* Serialises into buf, or only measures when buf is NULL; one routine for both keeps
 * the size computation and the layout from drifting apart. */
typedef struct {
    uint8_t *buf;
    uint64_t off;
} emitter;

static void emit(emitter *e, const void *p, size_t n) {
    if (e->buf && n) memcpy(e->buf + e->off, p, n);
    e->off += n;
}

static void emit_uint(emitter *e, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    emit(e, b, (size_t)bytes);
}

static void emit_cstr(emitter *e, const char *s) {
    size_t n = strlen(s) + 1;
    emit_uint(e, n, 4);
    emit(e, s, n);
}

static void emit_payload(const st_ckpt_writer *w, emitter *e) {
    for (int i = 0; i < w->ns; i++) {
        emit_uint(e, REC_STRING, 1);
        emit_cstr(e, w->s[i].key);
        emit_cstr(e, w->s[i].value);
    }
    for (int i = 0; i < w->nt; i++) {
        const st_ckpt_tensor *t = &w->t[i];
        emit_uint(e, REC_TENSOR, 1);
        emit_cstr(e, t->name);
        emit_uint(e, (uint64_t)t->dtype, 1);
        emit_uint(e, (uint64_t)t->ndim, 1);
        for (int d = 0; d < t->ndim; d++)
            emit_uint(e, (uint64_t)t->shape[d], 8);
        emit_uint(e, t->nbytes, 8);
        size_t pad = (size_t)((CK_ALIGN - e->off % CK_ALIGN) % CK_ALIGN);
        if (e->buf) memset(e->buf + e->off, 0, pad);
        e->off += pad;
        emit(e, t->data, t->nbytes);
    }
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t r = write(fd, p, ST_MIN(n, (size_t)1 << 30));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* After the rename, so the new directory entry itself survives a crash. */
static st_status sync_dir(const char *path, st_error *err) {
    char *dir = strdup(path);
    if (!dir) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    const char *d = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
    st_status s = ST_OK;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* EINVAL: the filesystem cannot sync directories; nothing more can be done. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        s = st_errorf(err, ST_ERR_IO,
                      "%s: checkpoint written but syncing directory %s failed: %s; it may not "
                      "survive a power loss",
                      path, d, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return s;
}

static st_status write_atomic(const char *path, const uint8_t *hdr, const uint8_t *body,
                              size_t blen, st_error *err) {
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, cap, "%s.tmp-%ld", path, (long)getpid());
    /* O_NOFOLLOW: a planted symlink must not redirect the write. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        st_status s = st_errorf(err, ST_ERR_IO, "%s: cannot create temporary file %s: %s", path,
                                tmp, strerror(errno));
        free(tmp);
        return s;
    }
    const char *step = NULL;
    if (write_all(fd, hdr, CK_HDR) != 0 || write_all(fd, body, blen) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    int e = errno;
    if (close(fd) != 0 && !step) { /* NFS and friends report write errors at close */
        step = "close";
        e = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        free(tmp);
        return st_errorf(err, ST_ERR_IO, "%s: cannot write checkpoint (%s failed: %s)", path, step,
                         strerror(e));
    }
    free(tmp);
    return sync_dir(path, err);
}

st_status st_ckpt_write(const st_ckpt_writer *w, const char *path, st_error *err) {
    if (!w || !path || !*path)
        return st_errorf(err, ST_ERR_INPUT, "checkpoint: write needs a writer and a path");
    emitter m = {NULL, 0};
    emit_payload(w, &m);
    if (m.off > CK_MAX_RAW)
        return st_errorf(err, ST_ERR_INPUT, "%s: checkpoint payload of %llu bytes exceeds 64 GiB",
                         path, (unsigned long long)m.off);
    uint8_t *raw = malloc(m.off ? (size_t)m.off : 1);
    uLong bound = compressBound((uLong)m.off);
    uint8_t *comp = malloc(bound);
    if (!raw || !comp) {
        free(raw);
        free(comp);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory serialising checkpoint", path);
    }
    emitter e = {raw, 0};
    emit_payload(w, &e);
    uLongf clen = bound;
    /* Fastest level: float weights barely compress, and saves happen every epoch. */
    int zr = compress2(comp, &clen, raw, (uLong)e.off, Z_BEST_SPEED);
    free(raw);
    if (zr != Z_OK) {
        free(comp);
        return st_errorf(err, zr == Z_MEM_ERROR ? ST_ERR_NOMEM : ST_ERR_INTERNAL,
                         "%s: compressing checkpoint failed (zlib: %s)", path, zError(zr));
    }
    uint8_t hdr[CK_HDR];
    emitter h = {hdr, 0};
    emit(&h, CK_MAGIC, 8);
    emit_uint(&h, CK_VERSION, 4);
    emit_uint(&h, e.off, 8);
    emit_uint(&h, clen, 8);
    emit_uint(&h, crc32_z(0, comp, clen), 4);
    st_status s = write_atomic(path, hdr, comp, clen, err);
    free(comp);
    return s;
}
