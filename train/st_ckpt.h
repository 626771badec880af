/* Checkpoint container: named tensors plus string metadata in one zlib-compressed,
 * checksummed file, replaced atomically on write. It knows nothing about models or
 * optimisers; callers decide the names ("layer0.w", "adam.m.layer0.w", "epoch", ...).
 * The byte format is documented at the top of ckpt.c. */
#ifndef ST_CKPT_H
#define ST_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "st_common.h"

typedef enum { ST_DT_F32 = 0, ST_DT_U8 = 1, ST_DT_I32 = 2, ST_DT_U64 = 3 } st_dtype;

#define ST_CKPT_MAX_NDIM 8

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;                        /* 0..8; 0 is a scalar (one element) */
    int64_t shape[ST_CKPT_MAX_NDIM]; /* entries past ndim are 0 */
    const void *data;                /* 64-byte aligned in a read checkpoint */
    size_t nbytes;                   /* elements * dtype size, always consistent */
} st_ckpt_tensor;

/* Size in bytes of one element, or 0 for an unknown dtype. */
size_t st_dtype_size(st_dtype dt);

typedef struct st_ckpt_writer st_ckpt_writer;
/* NULL only when out of memory. */
st_ckpt_writer *st_ckpt_writer_new(void);
/* Copies name, shape and data. Rejects (ST_ERR_INPUT) a duplicate or empty name, an
 * unknown dtype, ndim outside 0..8, a negative dimension, or data NULL with nbytes > 0. */
st_status st_ckpt_put_tensor(st_ckpt_writer *w, const char *name, st_dtype dt, int ndim,
                             const int64_t *shape, const void *data, st_error *err);
/* Copies key and value. A duplicate or empty key is rejected (ST_ERR_INPUT). */
st_status st_ckpt_put_string(st_ckpt_writer *w, const char *key, const char *value, st_error *err);
/* Writes path.tmp-<pid>, fsyncs it, renames it over path, fsyncs the directory. On any
 * failure the temporary file is removed and an existing `path` is untouched. System
 * failures are ST_ERR_IO with strerror text. The temporary name is per process, so two
 * threads of one process must not write the same path at once. */
st_status st_ckpt_write(const st_ckpt_writer *w, const char *path, st_error *err);
void st_ckpt_writer_free(st_ckpt_writer *w);

typedef struct st_ckpt st_ckpt;
/* Any defect in the file (missing, not a checkpoint, other version, truncated, checksum
 * mismatch, malformed contents) is ST_ERR_INPUT with a message naming the file. */
st_status st_ckpt_read(const char *path, st_ckpt **out, st_error *err);
int st_ckpt_num_tensors(const st_ckpt *c);
/* Tensors in the order they were put; pointers live until st_ckpt_free. */
const st_ckpt_tensor *st_ckpt_tensor_at(const st_ckpt *c, int i);
const st_ckpt_tensor *st_ckpt_find(const st_ckpt *c, const char *name); /* NULL if absent */
const char *st_ckpt_string(const st_ckpt *c, const char *key);          /* NULL if absent */
void st_ckpt_free(st_ckpt *c);

#endif
