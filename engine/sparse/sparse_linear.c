/* Sparse linear layers: st_csr packed by st_csr_pack_linear run as 1x1 convolutions on
 * 1x1 maps of N samples (st_sparse.h); small batches forward as matrix-vector products. */
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

/* Samples below this run as matrix-vector products (spmv); more go through the conv
 * kernels, whose band buffers put the batch on the vector lanes. */
#define LINEAR_SPMV_MAX_N 16

/* y[n] = W x[n] + b for each sample, straight over the rows' column indices with four
 * partial sums per row. At batch 1 the conv path copied x into its band buffers one
 * input at a time and ran one lane per nonzero: ResNet-18's 95% classifier (512 -> 1000)
 * took 0.037 ms on one thread. */
static void spmv(const st_csr *m, float *y, const float *x, const float *b, int N) {
    const int K = m->conv.K, C = m->conv.C;
#pragma omp parallel for schedule(static) if ((long)m->nnz * N > (1L << 18))
    for (int k = 0; k < K; k++) {
        const int e0 = m->row_ptr[k], e1 = m->row_ptr[k + 1];
        for (int n = 0; n < N; n++) {
            const float *xn = x + (size_t)n * C;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            int e = e0;
            for (; e + 3 < e1; e += 4) {
                s0 += m->val[e] * xn[m->col_idx[e]];
                s1 += m->val[e + 1] * xn[m->col_idx[e + 1]];
                s2 += m->val[e + 2] * xn[m->col_idx[e + 2]];
                s3 += m->val[e + 3] * xn[m->col_idx[e + 3]];
            }
            for (; e < e1; e++) s0 += m->val[e] * xn[m->col_idx[e]];
            y[(size_t)n * K + k] = (b ? b[k] : 0.0f) + ((s0 + s1) + (s2 + s3));
        }
    }
}

st_status st_linear_sparse_forward(const st_csr *m, float *y, const float *x, const float *b,
                                   int N, float *scratch, st_error *err) {
    st_status s = linear_check(m, N, "st_linear_sparse_forward", err);
    if (s != ST_OK) return s;
    if (N < LINEAR_SPMV_MAX_N) {
        spmv(m, y, x, b, N);
        return ST_OK;
    }
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
