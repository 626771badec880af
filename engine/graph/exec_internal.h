/* Executor internals shared by exec.c and exec_sparse.c. */
#ifndef ST_EXEC_INTERNAL_H
#define ST_EXEC_INTERNAL_H

#include "st_exec.h"

st_conv2d st_exec_conv_desc(const st_graph *g, const st_node *nd, int batch);
/* Run node i on the sparse kernels if it has them; 0 means "use the dense path". */
int st_exec_sparse_forward(st_exec *e, const st_node *nd, int i, int N, float *y, const float *x);
int st_exec_sparse_backward(st_exec *e, const st_node *nd, int i, int N, float *dx, float *dw,
                            float *db, const float *dy, const float *x);
void st_exec_sparse_free(st_exec *e);

#endif
