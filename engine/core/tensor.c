#include "st_tensor.h"

st_tensor st_tensor_contiguous(float *data, int ndim, const int64_t *shape) {
    st_tensor t = {.data = data, .ndim = ndim};
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

size_t st_tensor_numel(const st_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

int st_tensor_is_contiguous(const st_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

st_tensor st_tensor_select0(const st_tensor *t, int64_t i) {
    st_tensor r = {.data = t->data + i * t->stride[0], .ndim = t->ndim - 1};
    for (int d = 1; d < t->ndim; d++) {
        r.shape[d - 1] = t->shape[d];
        r.stride[d - 1] = t->stride[d];
    }
    return r;
}

size_t st_tensor_copy_to_contiguous(const st_tensor *t, float *dst) {
    size_t n = st_tensor_numel(t);
    int64_t idx[ST_TENSOR_MAX_DIMS] = {0};
    for (size_t k = 0; k < n; k++) {
        dst[k] = t->data[st_tensor_offset(t, idx)];
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    return n;
}
