/* A float32 tensor view: data pointer, shape and strides (in elements). The graph's
 * buffers are contiguous NCHW; views describe them (and slices of them) to callers that
 * should not know the executor's layout. Views never own their data. */
#ifndef ST_TENSOR_H
#define ST_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define ST_TENSOR_MAX_DIMS 4

typedef struct st_tensor {
    float *data;
    int ndim;
    int64_t shape[ST_TENSOR_MAX_DIMS];
    int64_t stride[ST_TENSOR_MAX_DIMS];
} st_tensor;

/* A contiguous (row-major) view of data with the given shape. */
st_tensor st_tensor_contiguous(float *data, int ndim, const int64_t *shape);
size_t st_tensor_numel(const st_tensor *t);
int st_tensor_is_contiguous(const st_tensor *t);
/* Offset in elements of the element at idx[0..ndim). */
static inline int64_t st_tensor_offset(const st_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->stride[i];
    return off;
}
/* The view of index i along dimension 0 (one sample of a batch): ndim - 1 dims. */
st_tensor st_tensor_select0(const st_tensor *t, int64_t i);
/* Copies a (possibly strided) tensor into dst laid out contiguously; returns elements. */
size_t st_tensor_copy_to_contiguous(const st_tensor *t, float *dst);

#endif
