/* Reader for the PyTorch reference fixtures written by tools/gen_torch_fixtures.py.
 *
 * File format (.stfx), all little-endian:
 *   "STFX", u32 count, then count tensors, each:
 *   u32 name_len, name bytes (utf-8, no NUL), u32 ndim, ndim x u32 dims,
 *   prod(dims) x float32 data (integer labels are stored as float32 too).
 * Cases inside one file share a name prefix ("k3s1p1.x", "k3s1p1.y", ...). */
#ifndef ST_FIXTURE_H
#define ST_FIXTURE_H

#include <stddef.h>

#include "st_common.h"

#define ST_FX_MAX_DIMS 8

typedef struct {
    char *name;                  /* NUL-terminated copy */
    int ndim;
    int dims[ST_FX_MAX_DIMS];
    size_t numel;
    float *data;                 /* numel floats, host byte order */
} st_fx_tensor;

typedef struct {
    int count;
    st_fx_tensor *t;
} st_fixture;

/* Loads path into fx (zeroed first). On failure fx is left empty and err says which file
 * and what is wrong (missing, bad magic, truncated, absurd sizes, trailing bytes). */
st_status st_fixture_load(st_fixture *fx, const char *path, st_error *err);
void st_fixture_free(st_fixture *fx);
/* The tensor called name, or NULL. */
const st_fx_tensor *st_fixture_find(const st_fixture *fx, const char *name);
/* Same, with the name built printf-style, e.g. st_fixture_findf(fx, "%s.x", prefix). */
const st_fx_tensor *st_fixture_findf(const st_fixture *fx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
