/* When the sparse operators pay off: a cost model (see st_sparse_should_use). */
#include "conv2d_internal.h"
#include "st_sparse.h"

double st_sparse_expected_speedup(const st_conv2d *c, double sparsity) {
    if (st__conv2d_is_depthwise(c)) return 0.0;
    double density = 1.0 - sparsity;
    if (density < 0.005) density = 0.005;
    return 0.5 / density;
}

int st_sparse_should_use(const st_conv2d *c, double sparsity) {
    return st_sparse_expected_speedup(c, sparsity) > 1.15;
}
