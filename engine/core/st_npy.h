/* NumPy .npy files (format versions 1-3), the exchange format of `sparseengine run`.
 * Reading accepts little-endian float32 and float64 (converted), C order; anything else
 * is ST_ERR_INPUT naming the file. Writing produces version 1.0 float32 C order. */
#ifndef ST_NPY_H
#define ST_NPY_H

#include <stdint.h>

#include "st_common.h"

#define ST_NPY_MAX_NDIM 8

typedef struct {
    int ndim;
    int64_t shape[ST_NPY_MAX_NDIM];
    size_t numel;
    float *data; /* st_alloc'ed, st_npy_free releases it */
} st_npy;

st_status st_npy_read(const char *path, st_npy *out, st_error *err);
st_status st_npy_write(const char *path, int ndim, const int64_t *shape, const float *data,
                       st_error *err);
void st_npy_free(st_npy *a);

#endif
