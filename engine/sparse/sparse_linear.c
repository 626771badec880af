/* Sparse linear layers: st_csr packed by st_csr_pack_linear run as 1x1 convolutions on
 * 1x1 maps of N samples (st_sparse.h). */
#include "st_sparse.h"

static st_conv2d linear_conv(const st_csr *m, int N) {
    st_conv2d c = m->conv;
    c.N = N;
    return c;
}

size_t st_linear_sparse_scratch_floats(const st_csr *m) {
    return st_conv2d_sparse_scratch_floats(m);
}

static st_status linear_check(const st_csr *m, int N, const char *who, st_error *err) {
    if (!m || !m->row_ptr) return st_errorf(err, ST_ERR_INTERNAL, "%s: NULL weights", who);
    if (m->conv.H != 1 || m->conv.W != 1 || m->conv.R != 1 || m->conv.S != 1 || N < 1)
        return st_errorf(err, ST_ERR_INPUT, "%s: not a linear layer's weights (or N < 1)", who);
    return ST_OK;
}

st_status st_linear_sparse_forward(const st_csr *m, float *y, const float *x, const float *b,
                                   int N, float *scratch, st_error *err) {
    st_status s = linear_check(m, N, "st_linear_sparse_forward", err);
    if (s != ST_OK) return s;
    st_conv2d c = linear_conv(m, N);
    return st_conv2d_sparse_forward(&c, m, y, x, b, scratch, err);
}

st_status st_linear_sparse_backward(const st_csr *m, float *dx, float *dval, float *db,
                                    const float *dy, const float *x, int N, float *scratch,
                                    st_error *err) {
    st_status s = linear_check(m, N, "st_linear_sparse_backward", err);
    if (s != ST_OK) return s;
    st_conv2d c = linear_conv(m, N);
    return st_conv2d_sparse_backward(&c, m, dx, dval, db, dy, x, scratch, err);
}
