/* Buffer planning and the forward/backward interpreter. Training keeps every activation
 * alive for backward, so the plan is simply one buffer per value; Flatten aliases its
 * input because it does not move data. */
#include "exec_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

st_conv2d st_exec_conv_desc(const st_graph *g, const st_node *nd, int batch) {
    st_shape in = g->values[nd->inputs[0]];
    st_conv2d c = {.N = batch, .C = in.c, .H = in.h, .W = in.w, .K = nd->a.conv.k,
                   .R = nd->a.conv.r, .S = nd->a.conv.s, .stride_h = nd->a.conv.stride_h,
                   .stride_w = nd->a.conv.stride_w, .pad_h = nd->a.conv.pad_h,
                   .pad_w = nd->a.conv.pad_w, .dil_h = nd->a.conv.dil_h,
                   .dil_w = nd->a.conv.dil_w, .groups = nd->a.conv.groups};
    st_conv2d_init(&c);
    return c;
}

static st_pool pool_desc(const st_graph *g, const st_node *nd, int batch) {
    st_shape in = g->values[nd->inputs[0]];
    st_pool p = {.N = batch, .C = in.c, .H = in.h, .W = in.w, .kh = nd->a.pool.kh,
                 .kw = nd->a.pool.kw, .stride_h = nd->a.pool.stride_h,
                 .stride_w = nd->a.pool.stride_w, .pad_h = nd->a.pool.pad_h,
                 .pad_w = nd->a.pool.pad_w, .ceil_mode = nd->a.pool.ceil_mode,
                 .count_include_pad = nd->a.pool.count_include_pad};
    st_pool_init(&p);
    return p;
}

static size_t node_state_floats(const st_graph *g, const st_node *nd, int batch) {
    size_t out = (size_t)batch * st_shape_numel(g->values[nd->output]);
    switch (nd->op) {
    /* save_mean, save_invstd, and the scale of the fused BN+activation */
    case ST_OP_BATCHNORM: return pad16(3 * (size_t)g->values[nd->output].c);
    case ST_OP_MAXPOOL:
    case ST_OP_DROPOUT: return pad16(out);
    default: return 0;
    }
}

/* Layout: [activations][state][scratch][gradients]; sizes in floats. */
static void plan_sizes(const st_graph *g, int batch, int with_grads, size_t *act, size_t *state,
                       size_t *scratch, size_t *grads) {
    *act = *state = *scratch = *grads = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        size_t n = pad16((size_t)batch * st_shape_numel(g->values[nd->output]));
        if (nd->op != ST_OP_FLATTEN) {
            *act += n;
            if (with_grads && nd->op != ST_OP_INPUT) *grads += n;
        }
        *state += node_state_floats(g, nd, batch);
        if (nd->op == ST_OP_CONV2D) {
            st_conv2d c = st_exec_conv_desc(g, nd, batch);
            size_t s = st_conv2d_scratch_floats(&c);
            if (s > *scratch) *scratch = s;
        }
    }
    *scratch = pad16(*scratch);
}

size_t st_exec_arena_floats(const st_graph *g, int max_batch, int with_grads) {
    size_t a, s, sc, gr;
    plan_sizes(g, max_batch, with_grads, &a, &s, &sc, &gr);
    return a + s + sc + gr;
}

st_status st_exec_plan(st_exec *e, const st_graph *g, int max_batch, int with_grads,
                       st_error *err) {
    memset(e, 0, sizeof *e);
    if (!g->finalized) return st_errorf(err, ST_ERR_INTERNAL, "plan of a graph not finalized");
    if (max_batch < 1) return st_errorf(err, ST_ERR_INPUT, "batch size must be >= 1");
    size_t a, s, sc, gr;
    plan_sizes(g, max_batch, with_grads, &a, &s, &sc, &gr);
    e->g = g;
    e->max_batch = e->batch = max_batch;
    e->with_grads = with_grads;
    e->arena_floats = a + s + sc + gr;
    e->grad_floats = gr;
    e->scratch_floats = sc;
    e->act = calloc((size_t)g->n_values, sizeof *e->act);
    e->dact = calloc((size_t)g->n_values, sizeof *e->dact);
    e->state = calloc((size_t)g->n_nodes, sizeof *e->state);
    e->arena = st_calloc(e->arena_floats * sizeof(float));
    if (!e->act || !e->dact || !e->state || !e->arena) {
        st_exec_free(e);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory planning %.1f MB of activations",
                         (a + s + sc + gr) * 4.0 / 1e6);
    }
    float *pa = e->arena, *ps = pa + a, *pg = ps + s + sc;
    e->scratch = ps + s;
    e->grad_begin = pg;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        size_t n = pad16((size_t)max_batch * st_shape_numel(g->values[nd->output]));
        if (nd->op == ST_OP_FLATTEN) {
            e->act[nd->output] = e->act[nd->inputs[0]];
            e->dact[nd->output] = e->dact[nd->inputs[0]];
        } else {
            e->act[nd->output] = pa;
            pa += n;
            if (with_grads && nd->op != ST_OP_INPUT) {
                e->dact[nd->output] = pg;
                pg += n;
            }
        }
        size_t st = node_state_floats(g, nd, max_batch);
        if (st) {
            e->state[i] = ps;
            ps += st;
        }
    }
    st_status rc = st_exec_set_fusion(e, getenv("ST_NO_FUSE") == NULL);
    if (rc != ST_OK) {
        st_exec_free(e);
        return st_errorf(err, rc, "out of memory planning the fusion table");
    }
    return ST_OK;
}

static int fusable_act(st_op_type op) {
    return op == ST_OP_RELU || op == ST_OP_LEAKYRELU || op == ST_OP_SILU;
}

st_status st_exec_set_fusion(st_exec *e, int on) {
    free(e->fuse);
    e->fuse = NULL;
    if (!on) return ST_OK;
    const st_graph *g = e->g;
    int *fuse = malloc((size_t)g->n_nodes * sizeof *fuse);
    int *readers = calloc((size_t)g->n_values, sizeof *readers);
    int *reader = malloc((size_t)g->n_values * sizeof *reader);
    if (!fuse || !readers || !reader) {
        free(fuse), free(readers), free(reader);
        return ST_ERR_NOMEM;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        fuse[i] = -1;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            readers[v]++;
            reader[v] = i;
        }
    }
    for (int k = 0; k < g->n_outputs; k++) readers[g->outputs[k]] += 2; /* never fuse */
    readers[g->output] += 2;
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        if (nd->op != ST_OP_BATCHNORM || readers[nd->output] != 1) continue;
        int j = reader[nd->output];
        if (j <= i || !fusable_act(g->nodes[j].op)) continue;
        fuse[i] = j;
        fuse[j] = i;
        n++;
    }
    free(readers), free(reader);
    if (n) e->fuse = fuse;
    else free(fuse);
    return ST_OK;
}

int st_exec_fused_count(const st_exec *e) {
    int n = 0;
    if (e->fuse)
        for (int i = 0; i < e->g->n_nodes; i++) n += e->g->nodes[i].op == ST_OP_BATCHNORM && e->fuse[i] >= 0;
    return n;
}

const char *st_exec_node_label(const st_exec *e, int i) {
    st_op_type op = e->g->nodes[i].op;
    if (!e->fuse || e->fuse[i] < 0) return st_op_name(op);
    if (op == ST_OP_BATCHNORM) {
        switch (e->g->nodes[e->fuse[i]].op) {
        case ST_OP_RELU: return "batchnorm+relu";
        case ST_OP_LEAKYRELU: return "batchnorm+leakyrelu";
        default: return "batchnorm+silu";
        }
    }
    switch (op) {
    case ST_OP_RELU: return "relu (fused)";
    case ST_OP_LEAKYRELU: return "leakyrelu (fused)";
    default: return "silu (fused)";
    }
}

static st_act_kind act_kind(st_op_type op) {
    return op == ST_OP_RELU ? ST_ACT_RELU : op == ST_OP_LEAKYRELU ? ST_ACT_LEAKYRELU : ST_ACT_SILU;
}

void st_exec_free(st_exec *e) {
    if (e->g) st_exec_sparse_free(e);
    free(e->node_seconds);
    free(e->fuse);
    free(e->act);
    free(e->dact);
    free(e->state);
    st_free(e->arena);
    memset(e, 0, sizeof *e);
}

st_tensor st_exec_value(const st_exec *e, int v) {
    st_shape s = e->g->values[v];
    int64_t shape[4] = {e->batch, s.c, s.h, s.w};
    return st_tensor_contiguous(e->act[v], 4, shape);
}

static const float *pdata(const st_exec *e, int p) {
    return p >= 0 ? st_param_data(e->g, p) : NULL;
}
static float *pgrad(const st_exec *e, int p) {
    return p >= 0 && e->g->params[p].group != ST_PG_BUFFER ? st_param_grad(e->g, p) : NULL;
}

static void forward_node(st_exec *e, int i, int N, int training) {
    const st_graph *g = e->g;
    const st_node *nd = &g->nodes[i];
    float *y = e->act[nd->output];
    const float *x = nd->n_inputs ? e->act[nd->inputs[0]] : NULL;
    st_shape in = nd->n_inputs ? g->values[nd->inputs[0]] : g->values[nd->output];
    size_t n_in = (size_t)N * st_shape_numel(in);
    if (e->fuse && e->fuse[i] >= 0) {
        if (nd->op != ST_OP_BATCHNORM) return; /* done by its BN node */
        const st_node *an = &g->nodes[e->fuse[i]];
        st_batchnorm bn = {.N = N, .C = in.c, .HW = in.h * in.w, .eps = nd->a.bn.eps,
                           .momentum = nd->a.bn.momentum};
        float *st = e->state[i];
        st_bn_act_forward(&bn, act_kind(an->op), an->a.slope, e->act[an->output], y, x,
                          pdata(e, nd->params[0]), pdata(e, nd->params[1]),
                          st_param_data(g, nd->params[2]), st_param_data(g, nd->params[3]),
                          st, st + in.c, st + 2 * in.c, training);
        return;
    }
    switch (nd->op) {
    case ST_OP_INPUT:
    case ST_OP_FLATTEN: break;
    case ST_OP_CONV2D: {
        if (st_exec_sparse_forward(e, nd, i, N, y, x)) break;
        st_conv2d c = st_exec_conv_desc(g, nd, N);
        st_conv2d_forward(&c, y, x, pdata(e, nd->params[0]), pdata(e, nd->params[1]), e->scratch);
        break;
    }
    case ST_OP_BATCHNORM: {
        st_batchnorm bn = {.N = N, .C = in.c, .HW = in.h * in.w, .eps = nd->a.bn.eps,
                           .momentum = nd->a.bn.momentum};
        float *st = e->state[i];
        st_batchnorm_forward(&bn, y, x, pdata(e, nd->params[0]), pdata(e, nd->params[1]),
                             st_param_data(g, nd->params[2]), st_param_data(g, nd->params[3]),
                             st, st + in.c, training);
        break;
    }
    case ST_OP_RELU: st_relu_forward(y, x, n_in); break;
    case ST_OP_LEAKYRELU: st_leakyrelu_forward(y, x, n_in, nd->a.slope); break;
    case ST_OP_SILU: st_silu_forward(y, x, n_in); break;
    case ST_OP_SIGMOID: st_sigmoid_forward(y, x, n_in); break;
    case ST_OP_CLIP: st_clip_forward(y, x, n_in, nd->a.clip.lo, nd->a.clip.hi); break;
    case ST_OP_SOFTMAX: st_softmax_forward(y, x, N, in.c, in.h * in.w); break;
    case ST_OP_MAXPOOL: {
        st_pool p = pool_desc(g, nd, N);
        st_maxpool_forward(&p, y, (int32_t *)e->state[i], x);
        break;
    }
    case ST_OP_AVGPOOL: {
        st_pool p = pool_desc(g, nd, N);
        st_avgpool_forward(&p, y, x);
        break;
    }
    case ST_OP_GLOBALAVGPOOL: st_global_avgpool_forward(y, x, N, in.c, in.h * in.w); break;
    case ST_OP_LINEAR:
        if (st_exec_sparse_forward(e, nd, i, N, y, x)) break;
        st_linear_forward(y, x, pdata(e, nd->params[0]), pdata(e, nd->params[1]), N, in.c,
                          nd->a.features);
        break;
    case ST_OP_ADD: st_add_forward(y, x, e->act[nd->inputs[1]], n_in); break;
    case ST_OP_MUL: st_mul_forward(y, x, e->act[nd->inputs[1]], n_in); break;
    case ST_OP_CONCAT: {
        const float *xs[ST_MAX_INPUTS];
        int cs[ST_MAX_INPUTS];
        for (int k = 0; k < nd->n_inputs; k++) {
            xs[k] = e->act[nd->inputs[k]];
            cs[k] = g->values[nd->inputs[k]].c;
        }
        st_concat_forward(y, xs, cs, nd->n_inputs, N, in.h * in.w);
        break;
    }
    case ST_OP_UPSAMPLE:
        st_upsample_nearest_forward(y, x, N, in.c, in.h, in.w, nd->a.factor);
        break;
    case ST_OP_DROPOUT:
        if (training && nd->a.p > 0.0f)
            st_dropout_forward(y, e->state[i], x, n_in, nd->a.p,
                               e->dropout_seed ^ ((uint64_t)i << 48));
        else
            memcpy(y, x, n_in * sizeof(float));
        break;
    default: break;
    }
}

void st_exec_forward(st_exec *e, int batch, int training) {
    if (batch > e->max_batch) batch = e->max_batch;
    e->batch = batch;
    for (int i = 0; i < e->g->n_nodes; i++) {
        double t0 = e->node_seconds ? omp_get_wtime() : 0;
        forward_node(e, i, batch, training);
        if (e->node_seconds) e->node_seconds[2 * i] += omp_get_wtime() - t0;
    }
}

static void backward_node(st_exec *e, int i, int N) {
    const st_graph *g = e->g;
    const st_node *nd = &g->nodes[i];
    const float *dy = e->dact[nd->output];
    if (!dy || nd->op == ST_OP_INPUT || nd->op == ST_OP_FLATTEN) return;
    const float *x = e->act[nd->inputs[0]];
    float *dx = e->dact[nd->inputs[0]];
    st_shape in = g->values[nd->inputs[0]];
    size_t n_in = (size_t)N * st_shape_numel(in);
    if (e->fuse && e->fuse[i] >= 0) {
        if (nd->op != ST_OP_BATCHNORM) return; /* done by its BN node */
        const st_node *an = &g->nodes[e->fuse[i]];
        st_batchnorm bn = {.N = N, .C = in.c, .HW = in.h * in.w, .eps = nd->a.bn.eps,
                           .momentum = nd->a.bn.momentum};
        const float *st = e->state[i];
        /* dy of the pair is the activation output's gradient; the BN output's gradient
         * buffer (read by nobody else) holds dz between the two passes */
        st_bn_act_backward(&bn, act_kind(an->op), an->a.slope, dx, pgrad(e, nd->params[0]),
                           pgrad(e, nd->params[1]), e->dact[nd->output], e->dact[an->output],
                           e->act[nd->output], x, pdata(e, nd->params[0]),
                           pdata(e, nd->params[1]), st, st + in.c, st + 2 * in.c, 1);
        return;
    }
    switch (nd->op) {
    case ST_OP_CONV2D: {
        if (st_exec_sparse_backward(e, nd, i, N, dx, pgrad(e, nd->params[0]), pgrad(e, nd->params[1]), dy, x))
            break;
        st_conv2d c = st_exec_conv_desc(g, nd, N);
        st_conv2d_backward(&c, dx, pgrad(e, nd->params[0]), pgrad(e, nd->params[1]), dy, x,
                           pdata(e, nd->params[0]), e->scratch);
        break;
    }
    case ST_OP_BATCHNORM: {
        st_batchnorm bn = {.N = N, .C = in.c, .HW = in.h * in.w, .eps = nd->a.bn.eps,
                           .momentum = nd->a.bn.momentum};
        const float *st = e->state[i];
        st_batchnorm_backward(&bn, dx, pgrad(e, nd->params[0]), pgrad(e, nd->params[1]), dy, x,
                              pdata(e, nd->params[0]), st, st + in.c, 1);
        break;
    }
    case ST_OP_RELU: if (dx) st_relu_backward(dx, dy, x, n_in); break;
    case ST_OP_LEAKYRELU: if (dx) st_leakyrelu_backward(dx, dy, x, n_in, nd->a.slope); break;
    case ST_OP_SILU: if (dx) st_silu_backward(dx, dy, x, n_in); break;
    case ST_OP_SIGMOID: if (dx) st_sigmoid_backward(dx, dy, e->act[nd->output], n_in); break;
    case ST_OP_CLIP: if (dx) st_clip_backward(dx, dy, x, n_in, nd->a.clip.lo, nd->a.clip.hi); break;
    case ST_OP_SOFTMAX:
        if (dx) st_softmax_backward(dx, dy, e->act[nd->output], N, in.c, in.h * in.w);
        break;
    case ST_OP_MAXPOOL: {
        st_pool p = pool_desc(g, nd, N);
        if (dx) st_maxpool_backward(&p, dx, dy, (const int32_t *)e->state[i]);
        break;
    }
    case ST_OP_AVGPOOL: {
        st_pool p = pool_desc(g, nd, N);
        if (dx) st_avgpool_backward(&p, dx, dy);
        break;
    }
    case ST_OP_GLOBALAVGPOOL: if (dx) st_global_avgpool_backward(dx, dy, N, in.c, in.h * in.w); break;
    case ST_OP_LINEAR:
        if (st_exec_sparse_backward(e, nd, i, N, dx, pgrad(e, nd->params[0]), pgrad(e, nd->params[1]), dy, x))
            break;
        st_linear_backward(dx, pgrad(e, nd->params[0]), pgrad(e, nd->params[1]), dy, x,
                           pdata(e, nd->params[0]), N, in.c, nd->a.features);
        break;
    case ST_OP_ADD: st_add_backward(dx, e->dact[nd->inputs[1]], dy, n_in); break;
    case ST_OP_MUL:
        st_mul_backward(dx, e->dact[nd->inputs[1]], dy, x, e->act[nd->inputs[1]], n_in);
        break;
    case ST_OP_CONCAT: {
        float *dxs[ST_MAX_INPUTS];
        int cs[ST_MAX_INPUTS];
        for (int k = 0; k < nd->n_inputs; k++) {
            dxs[k] = e->dact[nd->inputs[k]];
            cs[k] = g->values[nd->inputs[k]].c;
        }
        st_concat_backward(dxs, dy, cs, nd->n_inputs, N, in.h * in.w);
        break;
    }
    case ST_OP_UPSAMPLE:
        if (dx) st_upsample_nearest_backward(dx, dy, N, in.c, in.h, in.w, nd->a.factor);
        break;
    case ST_OP_DROPOUT:
        if (!dx) break;
        if (nd->a.p > 0.0f) st_dropout_backward(dx, dy, e->state[i], n_in);
        else
            for (size_t k = 0; k < n_in; k++) dx[k] += dy[k];
        break;
    default: break;
    }
}

void st_exec_backward(st_exec *e) {
    if (!e->with_grads) return;
    /* The output gradients are the caller's; every other one is accumulated from zero:
     * zero the gaps between the output buffers (sorted by address). */
    const st_graph *g = e->g;
    float *lo[ST_MAX_OUTPUTS], *hi[ST_MAX_OUTPUTS];
    int n = 0;
    for (int k = 0; k < g->n_outputs; k++) {
        float *d = e->dact[g->outputs[k]];
        if (!d) continue;
        float *h = d + (size_t)e->max_batch * st_shape_numel(g->values[g->outputs[k]]);
        int j = n++;
        for (; j > 0 && lo[j - 1] > d; j--) lo[j] = lo[j - 1], hi[j] = hi[j - 1];
        lo[j] = d, hi[j] = h;
    }
    float *at = e->grad_begin, *end = e->grad_begin + e->grad_floats;
    for (int k = 0; k <= n; k++) {
        float *stop = k < n ? lo[k] : end;
        if (stop > at) memset(at, 0, (size_t)(stop - at) * sizeof(float));
        if (k < n && hi[k] > at) at = hi[k];
    }
    for (int i = e->g->n_nodes - 1; i >= 0; i--) {
        double t0 = e->node_seconds ? omp_get_wtime() : 0;
        backward_node(e, i, e->batch);
        if (e->node_seconds) e->node_seconds[2 * i + 1] += omp_get_wtime() - t0;
    }
}

st_status st_exec_profile(st_exec *e, int on) {
    free(e->node_seconds);
    e->node_seconds = on ? calloc(2 * (size_t)e->g->n_nodes, sizeof(double)) : NULL;
    return on && !e->node_seconds ? ST_ERR_NOMEM : ST_OK;
}

void st_exec_profile_print(const st_exec *e, FILE *f, int top) {
    if (!e->node_seconds) return;
    const st_graph *g = e->g;
    double total = 0;
    for (int i = 0; i < 2 * g->n_nodes; i++) total += e->node_seconds[i];
    fprintf(f, "%-4s %-14s %-20s %10s %10s %6s\n", "node", "op", "name", "fwd s", "bwd s", "share");
    char *done = calloc((size_t)g->n_nodes, 1);
    for (int k = 0; k < top && k < g->n_nodes && done; k++) {
        int best = -1;
        for (int i = 0; i < g->n_nodes; i++)
            if (!done[i] && (best < 0 || e->node_seconds[2 * i] + e->node_seconds[2 * i + 1] >
                                             e->node_seconds[2 * best] + e->node_seconds[2 * best + 1]))
                best = i;
        done[best] = 1;
        double s = e->node_seconds[2 * best] + e->node_seconds[2 * best + 1];
        fprintf(f, "%-4d %-14s %-20s %10.3f %10.3f %5.1f%%\n", best, st_exec_node_label(e, best),
                g->nodes[best].name, e->node_seconds[2 * best], e->node_seconds[2 * best + 1],
                total > 0 ? 100 * s / total : 0);
    }
    free(done);
    fprintf(f, "total %.3f s in graph nodes\n", total);
}
