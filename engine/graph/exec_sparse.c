/* The executor's sparse paths: which conv / linear nodes run on the sparse kernels, and
 * keeping their packed weights in step with the dense parameter arrays (the optimizer
 * and the checkpoints keep working on the dense arrays and masks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"

/* The conv descriptor the sparse kernels use for a node (linear: a 1x1 conv over N 1x1
 * images). */
static st_conv2d sparse_desc(const st_graph *g, const st_node *nd, int batch) {
    if (nd->op == ST_OP_CONV2D) return st_exec_conv_desc(g, nd, batch);
    st_conv2d c = {.N = batch, .C = g->values[nd->inputs[0]].c, .H = 1, .W = 1, .K = nd->a.features,
                   .R = 1, .S = 1, .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    st_conv2d_init(&c);
    return c;
}

static void release(st_exec_sparse *s) {
    st_csr_free(&s->csr);
    free(s->dval);
    memset(s, 0, sizeof *s);
}

int st_exec_sparse_count(const st_exec *e) {
    int n = 0;
    for (int i = 0; e->sparse && i < e->g->n_nodes; i++) n += e->sparse[i].active;
    return n;
}

st_status st_exec_sparse_repack(st_exec *e, st_error *err) {
    const st_graph *g = e->g;
    if (!e->sparse && !(e->sparse = calloc((size_t)g->n_nodes, sizeof *e->sparse)))
        return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    size_t need = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        st_exec_sparse *s = &e->sparse[i];
        release(s);
        if ((nd->op != ST_OP_CONV2D && nd->op != ST_OP_LINEAR) || e->dense_only) continue;
        int wp = nd->params[0];
        const st_param *p = &g->params[wp];
        if (!p->prunable || (nd->op == ST_OP_CONV2D && nd->a.conv.groups > 1)) continue;
        const unsigned char *mask = st_param_mask(g, wp);
        size_t off = 0;
        for (size_t j = 0; j < p->numel; j++) off += !mask[j];
        double sparsity = (double)off / (double)p->numel;
        st_conv2d c = sparse_desc(g, nd, e->max_batch);
        if (!st_sparse_should_use(&c, sparsity)) continue;
        st_status rc = nd->op == ST_OP_CONV2D
                           ? st_csr_pack(&s->csr, &c, st_param_data(g, wp), mask, err)
                           : st_csr_pack_linear(&s->csr, c.C, c.K, st_param_data(g, wp), mask, err);
        if (rc != ST_OK) return rc;
        s->dval = malloc(((size_t)s->csr.nnz + 1) * sizeof(float));
        if (!s->dval) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        s->active = 1;
        s->sparsity = sparsity;
        s->expected = st_sparse_expected_speedup(&c, sparsity);
        size_t sc = nd->op == ST_OP_CONV2D ? st_conv2d_sparse_scratch_floats(&s->csr)
                                           : st_linear_sparse_scratch_floats(&s->csr);
        if (sc > need) need = sc;
    }
    if (need > e->sparse_scratch_floats) {
        st_free(e->sparse_scratch);
        e->sparse_scratch = st_alloc(need * sizeof(float));
        e->sparse_scratch_floats = e->sparse_scratch ? need : 0;
        if (!e->sparse_scratch) return st_errorf(err, ST_ERR_NOMEM, "out of memory for sparse scratch");
    }
    return ST_OK;
}

void st_exec_sparse_describe(const st_exec *e, FILE *f) {
    int n = 0;
    fprintf(f, "  kernels:");
    for (int i = 0; e->sparse && i < e->g->n_nodes; i++) {
        const st_exec_sparse *s = &e->sparse[i];
        if (!s->active) continue;
        fprintf(f, "%s %s sparse %.0f%% (modelled x%.1f)", n++ ? "," : "",
                e->g->params[e->g->nodes[i].params[0]].name, 100 * s->sparsity, s->expected);
    }
    fprintf(f, "%s\n", n ? "; the other layers dense" : " all dense (no layer sparse enough to gain)");
}

void st_exec_sparse_refresh(st_exec *e) {
    for (int i = 0; e->sparse && i < e->g->n_nodes; i++)
        if (e->sparse[i].active)
            st_csr_refresh(&e->sparse[i].csr, st_param_data(e->g, e->g->nodes[i].params[0]));
}

int st_exec_sparse_forward(st_exec *e, const st_node *nd, int i, int N, float *y, const float *x) {
    if (!e->sparse || !e->sparse[i].active) return 0;
    const st_graph *g = e->g;
    st_error err;
    const float *b = nd->params[1] >= 0 ? st_param_data(g, nd->params[1]) : NULL;
    st_status rc;
    if (nd->op == ST_OP_CONV2D) {
        st_conv2d c = st_exec_conv_desc(g, nd, N);
        rc = st_conv2d_sparse_forward(&c, &e->sparse[i].csr, y, x, b, e->sparse_scratch, &err);
    } else {
        rc = st_linear_sparse_forward(&e->sparse[i].csr, y, x, b, N, e->sparse_scratch, &err);
    }
    return rc == ST_OK; /* a shape mismatch falls back to the dense path */
}

int st_exec_sparse_backward(st_exec *e, const st_node *nd, int i, int N, float *dx, float *dw,
                            float *db, const float *dy, const float *x) {
    if (!e->sparse || !e->sparse[i].active) return 0;
    st_exec_sparse *s = &e->sparse[i];
    st_error err;
    memset(s->dval, 0, (size_t)s->csr.nnz * sizeof(float));
    st_status rc;
    if (nd->op == ST_OP_CONV2D) {
        st_conv2d c = st_exec_conv_desc(e->g, nd, N);
        rc = st_conv2d_sparse_backward(&c, &s->csr, dx, dw ? s->dval : NULL, db, dy, x, e->sparse_scratch, &err);
    } else {
        rc = st_linear_sparse_backward(&s->csr, dx, dw ? s->dval : NULL, db, dy, x, N, e->sparse_scratch, &err);
    }
    if (rc != ST_OK) return 0;
    /* the optimizer works on dense gradients: only the nonzeros' entries are written */
    if (dw) st_csr_scatter_grad(&s->csr, s->dval, dw);
    return 1;
}

void st_exec_sparse_free(st_exec *e) {
    for (int i = 0; e->sparse && i < e->g->n_nodes; i++) release(&e->sparse[i]);
    free(e->sparse);
    st_free(e->sparse_scratch);
    e->sparse = NULL;
    e->sparse_scratch = NULL;
    e->sparse_scratch_floats = 0;
}
