/* sparseengine: compiling an imported graph into an inference plan for one batch size
 * (see se_internal.h for the plan's shape).
 *
 *  1. Simplification: a BatchNorm whose input is a convolution's output read by nothing
 *     else is folded into that convolution (w' = w * s, b' = (b - mean) * s + beta with
 *     s = gamma / sqrt(var + eps), in double); the chain of single-reader activations
 *     and residual Adds that follows a convolution or linear layer becomes its epilogue
 *     (an Add only when its other operand is computed before the layer, as in
 *     ResNet / C3 bottlenecks). Flatten, Dropout and Identity alias their input.
 *  2. Kernels: per convolution / linear layer, the sparse kernels (packed st_csr, forward
 *     only) when the inference cost model (st_sparse.h) says > 1.3x against the dense
 *     kernel the step would otherwise run, else that dense kernel: the packed one of
 *     engine/dense (AVX2 / AVX-512, groups 1) or im2col + OpenBLAS; depthwise and
 *     grouped convolutions stay dense.
 *  3. Memory: best-fit offsets in one arena by liveness, plus a shared scratch. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_internal.h"

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static int epi_kind(st_op_type op) {
    switch (op) {
    case ST_OP_RELU: return SE_EPI_RELU;
    case ST_OP_LEAKYRELU: return SE_EPI_LEAKYRELU;
    case ST_OP_SILU: return SE_EPI_SILU;
    case ST_OP_SIGMOID: return SE_EPI_SIGMOID;
    case ST_OP_CLIP: return SE_EPI_CLIP;
    case ST_OP_ADD: return SE_EPI_ADD;
    default: return 0;
    }
}

/* Per-value facts the simplification needs. */
typedef struct {
    int *uses;     /* [n_values] readers (a node reading it twice counts twice) */
    int *reader;   /* [n_values] the last node reading it */
    int *producer; /* [n_values] node writing it */
    char *is_out;  /* [n_values] graph output */
} vinfo;

static int sole_reader(const st_graph *g, const vinfo *vi, int v) {
    if (vi->uses[v] != 1 || vi->is_out[v]) return -1;
    return vi->reader[v];
}

void se_compiled_free(se_compiled *c) {
    if (!c) return;
    for (int i = 0; c->steps && i < c->n_steps; i++) {
        se_step *s = &c->steps[i];
        free(s->w_own);
        free(s->b_own);
        st_csr_free(&s->csr);
        st_csr_free(&s->col_csr);
        st_csr_free(&s->col_csr_in);
        se__free_blocks(s);
        st_dense_conv_free(&s->dconv);
    }
    free(c->steps);
    free(c->secs);
    free(c->root);
    free(c->off);
    free(c->view_root);
    free(c->view_at);
    free(c->blk);
    free(c->blk_off);
    se_model_free(c->m);
    free(c);
}

/* Folds BatchNorm node bn into the step's weights (owned copies). */
static int fold_bn(const st_graph *g, se_step *s, const st_node *conv, const st_node *bn) {
    const st_param *wp = &g->params[conv->params[0]];
    const int K = conv->a.conv.k;
    const size_t per = wp->numel / (size_t)K;
    s->w_own = malloc(wp->numel * sizeof(float));
    s->b_own = malloc((size_t)K * sizeof(float));
    if (!s->w_own || !s->b_own) return 4;
    const float *w = st_param_data(g, conv->params[0]);
    const float *b = conv->params[1] >= 0 ? st_param_data(g, conv->params[1]) : NULL;
    const float *gam = st_param_data(g, bn->params[0]), *bet = st_param_data(g, bn->params[1]);
    const float *mean = st_param_data(g, bn->params[2]), *var = st_param_data(g, bn->params[3]);
    for (int k = 0; k < K; k++) {
        double sc = (double)gam[k] / sqrt((double)var[k] + (double)bn->a.bn.eps);
        for (size_t j = 0; j < per; j++)
            s->w_own[(size_t)k * per + j] = (float)((double)w[(size_t)k * per + j] * sc);
        s->b_own[k] = (float)(((b ? (double)b[k] : 0.0) - (double)mean[k]) * sc + (double)bet[k]);
    }
    s->w = s->w_own;
    s->b = s->b_own;
    return 0;
}

/* Dense or sparse for a conv / linear step; packs the weights for the chosen kernel. */
static int choose_kernel(se_compiled *c, se_step *s, size_t *scratch, char *err, size_t errcap) {
    const st_graph *g = c->g;
    const st_param *wp = &g->params[g->nodes[s->node].params[0]];
    size_t zeros = 0;
    for (size_t j = 0; j < wp->numel; j++) zeros += s->w[j] == 0.0f;
    s->sparsity = wp->numel ? (double)zeros / (double)wp->numel : 0.0;
    st_conv2d d;
    if (s->op == ST_OP_CONV2D) {
        d = s->conv;
    } else {
        d = (st_conv2d){.N = c->batch, .C = s->in_f, .H = 1, .W = 1, .K = s->out_f, .R = 1,
                        .S = 1, .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1,
                        .groups = 1};
        st_conv2d_init(&d);
    }
    s->macs = (double)d.N * d.K * (d.C / d.groups) * d.R * d.S * d.P * d.Q;
    c->macs_total += s->macs;
    if (s->op == ST_OP_CONV2D && d.groups > 1) {
        snprintf(s->why, sizeof s->why, "dense (grouped/depthwise, %.0f%% zeros)", 100 * s->sparsity);
        return 0;
    }
    /* against the dense kernel this step would run: packed (AVX2 / AVX-512) or im2col + BLAS */
    const int packed = s->op == ST_OP_CONV2D && st_dense_conv_supported(&d);
    s->speedup = s->op == ST_OP_LINEAR ? st_sparse_expected_speedup_infer_linear(c->batch, s->in_f, s->out_f, s->sparsity)
               : packed             ? st_sparse_expected_speedup_infer_w(&d, s->w, s->sparsity)
                                    : st_sparse_expected_speedup_infer(&d, s->sparsity);
    /* where the packed form is a faster algorithm (the Winograd stem), against that */
    if (packed && s->op == ST_OP_CONV2D) s->speedup /= st_dense_conv_gain(&d);
    const char *dk = !packed ? "dense" : st__wino_ok(&d) ? "dense Winograd" : "dense packed";
    const double min_speedup = packed ? st_sparse_infer_min_speedup(&d) : ST_SPARSE_MIN_SPEEDUP;
    int use_dense = 1;
    if (c->dense)
        snprintf(s->why, sizeof s->why, "%s (dense requested; %.0f%% zeros, modelled x%.2f)", dk,
                 100 * s->sparsity, s->speedup);
    else if (s->speedup <= min_speedup)
        snprintf(s->why, sizeof s->why, "%s (%.0f%% zeros, sparse modelled x%.2f <= %.1f)", dk,
                 100 * s->sparsity, s->speedup, min_speedup);
    else
        use_dense = 0;
    if (use_dense && packed) {
        st_error e = {0};
        if (st_dense_conv_pack(&s->dconv, &d, s->w, &e) != ST_OK)
            return se__fail(err, errcap, (int)e.code, "%s: packing %s: %s", c->m->path,
                            g->nodes[s->node].name, e.msg);
        s->packed_dense = 1;
    }
    if (use_dense) return 0;
    st_error e = {0};
    st_status rc = s->op == ST_OP_CONV2D
                       ? st_csr_pack_layout(&s->csr, &d, s->w, NULL, ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS, &e) /* forward only */
                       : st_csr_pack_linear(&s->csr, s->in_f, s->out_f, s->w, NULL, &e);
    if (rc != ST_OK)
        return se__fail(err, errcap, (int)rc, "%s: packing %s: %s", c->m->path,
                        g->nodes[s->node].name, e.msg);
    s->sparse = 1;
    c->macs_sparse += s->macs;
    /* sized for omp_get_max_threads(), which se_compile set to the run's thread count */
    size_t sc = s->op == ST_OP_CONV2D ? st_conv2d_sparse_scratch_floats(&s->csr)
                                      : st_linear_sparse_scratch_floats(&s->csr);
    if (sc > *scratch) *scratch = sc;
    char lay[64] = "", blocks[32] = ""; /* the inference layouts (st_sparse.h) in use */
    if (s->csr.cb_n > 1) snprintf(blocks, sizeof blocks, " %d channel blocks", s->csr.cb_n);
    if (s->csr.q_n) snprintf(blocks, sizeof blocks, " quads");
    if (s->csr.geom.taps || s->csr.cb_n > 1 || s->csr.q_n)
        snprintf(lay, sizeof lay, ";%s%s", s->csr.geom.taps ? " tap planes" : "", blocks);
    snprintf(s->why, sizeof s->why, "sparse (%.0f%% zeros, modelled x%.2f%s%s)", 100 * s->sparsity,
             s->speedup, s->speedup <= ST_SPARSE_MIN_SPEEDUP ? " > 1.0 as an image stem on split 512-bit FMAs" : "", lay);
    return 0;
}

/* Scratch floats a step needs besides the sparse kernels'. */
static size_t step_scratch(const se_compiled *c, const se_step *s) {
    const st_graph *g = c->g;
    switch (s->op) {
    case ST_OP_CONV2D:
        if (s->sparse) return 0;
        return s->packed_dense ? st_dense_conv_scratch_floats(&s->conv, c->threads)
                               : st_conv2d_scratch_floats(&s->conv);
    case ST_OP_BATCHNORM: return 2 * (size_t)g->values[s->in[0]].c;
    default: return 0;
    }
}

/* Builds the steps (simplification and fusion). */
static int build_steps(se_compiled *c, const vinfo *vi, char *err, size_t errcap) {
    const st_graph *g = c->g;
    char *done = calloc((size_t)g->n_nodes, 1);
    c->steps = calloc((size_t)g->n_nodes + 1, sizeof *c->steps);
    if (!done || !c->steps) return free(done), se__fail(err, errcap, 4, "out of memory");
    int rc = 0;
    for (int i = 0; i < g->n_nodes && !rc; i++) {
        const st_node *nd = &g->nodes[i];
        if (done[i] || nd->op == ST_OP_INPUT || nd->op == ST_OP_FLATTEN || nd->op == ST_OP_DROPOUT)
            continue;
        se_step *s = &c->steps[c->n_steps++];
        s->op = nd->op;
        s->node = i;
        s->bn_node = -1;
        s->col_sec = -1;
        s->n_in = nd->n_inputs;
        for (int k = 0; k < nd->n_inputs; k++) s->in[k] = c->root[nd->inputs[k]];
        int cur = nd->output;
        st_shape in = nd->n_inputs ? g->values[nd->inputs[0]] : g->values[nd->output];
        if (nd->op == ST_OP_CONV2D || nd->op == ST_OP_LINEAR) {
            s->w = st_param_data(g, nd->params[0]);
            s->b = nd->params[1] >= 0 ? st_param_data(g, nd->params[1]) : NULL;
            if (nd->op == ST_OP_CONV2D) {
                s->conv = (st_conv2d){.N = c->batch, .C = in.c, .H = in.h, .W = in.w,
                                      .K = nd->a.conv.k, .R = nd->a.conv.r, .S = nd->a.conv.s,
                                      .stride_h = nd->a.conv.stride_h,
                                      .stride_w = nd->a.conv.stride_w, .pad_h = nd->a.conv.pad_h,
                                      .pad_w = nd->a.conv.pad_w, .dil_h = nd->a.conv.dil_h,
                                      .dil_w = nd->a.conv.dil_w, .groups = nd->a.conv.groups};
                if (st_conv2d_init(&s->conv) != 0) {
                    rc = se__fail(err, errcap, 2, "%s: convolution %s has an invalid shape",
                                  c->m->path, nd->name);
                    break;
                }
                int r = sole_reader(g, vi, cur);
                if (r >= 0 && g->nodes[r].op == ST_OP_BATCHNORM) {
                    if ((rc = fold_bn(g, s, nd, &g->nodes[r]))) {
                        rc = se__fail(err, errcap, 4, "out of memory");
                        break;
                    }
                    s->bn_node = r;
                    done[r] = 1;
                    cur = g->nodes[r].output;
                }
            } else {
                s->in_f = (int)st_shape_numel(in);
                s->out_f = nd->a.features;
            }
            /* epilogue: single-reader elementwise successors */
            while (s->n_epi < SE_MAX_EPI) {
                int r = sole_reader(g, vi, cur);
                if (r < 0) break;
                const st_node *u = &g->nodes[r];
                int kind = epi_kind(u->op);
                if (!kind) break;
                se_epi *ep = &s->epi[s->n_epi];
                if (kind == SE_EPI_ADD) {
                    int other = u->inputs[0] == cur ? u->inputs[1] : u->inputs[0];
                    if (other == cur || vi->producer[other] > i) break;
                    ep->value = c->root[other];
                } else if (kind == SE_EPI_LEAKYRELU) {
                    ep->a = u->a.slope;
                } else if (kind == SE_EPI_CLIP) {
                    ep->a = u->a.clip.lo, ep->b = u->a.clip.hi;
                }
                ep->kind = kind;
                s->n_epi++;
                done[r] = 1;
                cur = u->output;
            }
        } else if (nd->op == ST_OP_MAXPOOL || nd->op == ST_OP_AVGPOOL) {
            s->pool = (st_pool){.N = c->batch, .C = in.c, .H = in.h, .W = in.w,
                                .kh = nd->a.pool.kh, .kw = nd->a.pool.kw,
                                .stride_h = nd->a.pool.stride_h, .stride_w = nd->a.pool.stride_w,
                                .pad_h = nd->a.pool.pad_h, .pad_w = nd->a.pool.pad_w,
                                .ceil_mode = nd->a.pool.ceil_mode,
                                .count_include_pad = nd->a.pool.count_include_pad};
            st_pool_init(&s->pool);
        }
        s->out = c->root[cur];
    }
    free(done);
    return rc;
}

/* Best-fit offsets by liveness. Free blocks are kept sorted by offset and coalesced. */
typedef struct {
    size_t *off, *len;
    int n;
    size_t top; /* end of the arena so far */
} freelist;

static size_t fl_alloc(freelist *f, size_t n) {
    int best = -1;
    for (int i = 0; i < f->n; i++)
        if (f->len[i] >= n && (best < 0 || f->len[i] < f->len[best])) best = i;
    if (best >= 0) {
        size_t o = f->off[best];
        f->off[best] += n, f->len[best] -= n;
        if (!f->len[best]) {
            memmove(f->off + best, f->off + best + 1, (size_t)(f->n - best - 1) * sizeof(size_t));
            memmove(f->len + best, f->len + best + 1, (size_t)(f->n - best - 1) * sizeof(size_t));
            f->n--;
        }
        return o;
    }
    /* grow: a free block at the end of the arena is extended */
    if (f->n && f->off[f->n - 1] + f->len[f->n - 1] == f->top) {
        size_t o = f->off[--f->n];
        f->top = o + n;
        return o;
    }
    size_t o = f->top;
    f->top += n;
    return o;
}

static void fl_free(freelist *f, size_t o, size_t n) {
    int i = 0;
    while (i < f->n && f->off[i] < o) i++;
    memmove(f->off + i + 1, f->off + i, (size_t)(f->n - i) * sizeof(size_t));
    memmove(f->len + i + 1, f->len + i, (size_t)(f->n - i) * sizeof(size_t));
    f->off[i] = o, f->len[i] = n;
    f->n++;
    if (i + 1 < f->n && f->off[i] + f->len[i] == f->off[i + 1]) { /* merge with the next */
        f->len[i] += f->len[i + 1];
        memmove(f->off + i + 1, f->off + i + 2, (size_t)(f->n - i - 2) * sizeof(size_t));
        memmove(f->len + i + 1, f->len + i + 2, (size_t)(f->n - i - 2) * sizeof(size_t));
        f->n--;
    }
    if (i > 0 && f->off[i - 1] + f->len[i - 1] == f->off[i]) { /* and the previous */
        f->len[i - 1] += f->len[i];
        memmove(f->off + i, f->off + i + 1, (size_t)(f->n - i - 1) * sizeof(size_t));
        memmove(f->len + i, f->len + i + 1, (size_t)(f->n - i - 1) * sizeof(size_t));
        f->n--;
    }
}

/* Batch 1, where a concat's inputs are contiguous channel ranges of its output: each
 * input is written straight into its range, and the concat copies nothing, when every
 * input is produced by an earlier step, read by no other concat (nor twice by this
 * one), and neither the graph input, an output, nor an elided concat's own output.
 * (yolov5n: 11 concats, 0.07 ms of 2.7 on one thread, and a team step each.) */
static int elide_concats(se_compiled *c) {
    const st_graph *g = c->g;
    const int nv = g->n_values;
    int *producer = malloc((size_t)nv * sizeof *producer), *uses = calloc((size_t)nv, sizeof *uses);
    if (!producer || !uses) return free(producer), free(uses), 4;
    for (int v = 0; v < nv; v++) producer[v] = -1;
    for (int i = 0; i < c->n_steps; i++) {
        producer[c->steps[i].out] = i;
        if (c->steps[i].op == ST_OP_CONCAT)
            for (int k = 0; k < c->steps[i].n_in; k++) uses[c->steps[i].in[k]]++;
    }
    for (int k = 0; k < c->n_out; k++) uses[c->out_val[k]] += 2; /* outputs: never views */
    uses[g->input] += 2;
    for (int i = 0; c->batch == 1 && i < c->n_steps; i++) {
        se_step *s = &c->steps[i];
        if (s->op != ST_OP_CONCAT || s->col_sec >= 0) continue;
        int ok = 1;
        for (int k = 0; k < s->n_in && ok; k++) {
            const int v = s->in[k], p = producer[v];
            ok = uses[v] == 1 && p >= 0 && p < i && !c->steps[p].elided;
        }
        if (!ok) continue;
        s->elided = 1;
        size_t at = 0;
        for (int k = 0; k < s->n_in; k++) {
            c->view_root[s->in[k]] = s->out, c->view_at[s->in[k]] = at;
            at += st_shape_numel(g->values[s->in[k]]);
        }
    }
    free(producer), free(uses);
    return 0;
}

static int allocated(const se_compiled *c, int v) {
    return c->off[v] >= 0 || (se__blk_map(c, v) && c->blk_off[v] >= 0);
}

static int plan_memory(se_compiled *c, size_t scratch, char *err, size_t errcap) {
    const st_graph *g = c->g;
    const int nv = g->n_values;
    int *last = malloc((size_t)nv * sizeof *last);
    freelist f = {malloc(((size_t)nv + 2) * sizeof(size_t)), malloc(((size_t)nv + 2) * sizeof(size_t)), 0, 0};
    /* blocked maps (se_blocked.c): offsets in every thread's block arena */
    freelist fb = {malloc(((size_t)nv + 2) * sizeof(size_t)), malloc(((size_t)nv + 2) * sizeof(size_t)), 0, 0};
    if (!last || !f.off || !f.len || !fb.off || !fb.len) {
        free(last), free(f.off), free(f.len), free(fb.off), free(fb.len);
        return se__fail(err, errcap, 4, "out of memory");
    }
    for (int v = 0; v < nv; v++) last[v] = -1, c->off[v] = -1;
    /* A section (columns) reads its inputs and residuals until its last step writes
     * its output band by band: they live to its end. */
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        const int end = s->col_sec >= 0 ? c->secs[s->col_sec].last : i;
        for (int k = 0; k < s->n_in; k++) last[s->in[k]] = ST_MAX(last[s->in[k]], end);
        for (int e = 0; e < s->n_epi; e++)
            if (s->epi[e].kind == SE_EPI_ADD) last[s->epi[e].value] = ST_MAX(last[s->epi[e].value], end);
    }
    for (int k = 0; k < c->n_out; k++) last[c->out_val[k]] = c->n_steps; /* to the end */
    for (int v = 0; v < nv; v++) /* a view's readers keep the whole output alive */
        if (c->view_root[v] >= 0) last[c->view_root[v]] = ST_MAX(last[c->view_root[v]], last[v]);
    c->act_floats_no_reuse = 0;
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        size_t n = pad16((size_t)c->batch * st_shape_numel(g->values[s->out]));
        c->act_floats_no_reuse += n;
        /* a section's intermediate maps live only in the columns' band buffers */
        const int inner = s->col_sec >= 0 && c->secs[s->col_sec].last != i;
        /* a view: its concat's whole output, allocated by the first of its inputs */
        const int ro = c->view_root[s->out] >= 0 ? c->view_root[s->out] : s->out;
        n = se__value_floats(c, ro);
        if (!inner && !allocated(c, ro)) { /* before freeing: never aliases an input */
            if (se__blk_map(c, ro)) c->blk_off[ro] = (int64_t)fl_alloc(&fb, n);
            else c->off[ro] = (int64_t)fl_alloc(&f, n);
        }
        if (last[ro] < i) last[ro] = i;     /* never read: free right away */
        int freed[ST_MAX_INPUTS + SE_MAX_EPI + 1], nf = 0;
        for (int k = 0; k < s->n_in + s->n_epi + 1; k++) {
            int v = k < s->n_in ? s->in[k] : k < s->n_in + s->n_epi ? s->epi[k - s->n_in].value : s->out;
            if (k >= s->n_in && k < s->n_in + s->n_epi && s->epi[k - s->n_in].kind != SE_EPI_ADD) continue;
            if (c->view_root[v] >= 0) v = c->view_root[v];
            if (v == g->input || last[v] != i || !allocated(c, v)) continue;
            int dup = 0;
            for (int j = 0; j < nf; j++) dup |= freed[j] == v;
            if (dup) continue;
            freed[nf++] = v;
            if (se__blk_map(c, v)) fl_free(&fb, (size_t)c->blk_off[v], se__value_floats(c, v));
            else fl_free(&f, (size_t)c->off[v], se__value_floats(c, v));
        }
    }
    c->scratch_floats = pad16(scratch);
    for (int v = 0; v < nv; v++)
        if (c->off[v] >= 0) c->off[v] += (int64_t)c->scratch_floats;
    for (int v = 0; v < nv; v++)
        if (c->view_root[v] >= 0 && c->off[c->view_root[v]] >= 0)
            c->off[v] = c->off[c->view_root[v]] + (int64_t)c->view_at[v];
    c->arena_floats = c->scratch_floats + f.top;
    /* whole pages per thread and a page between threads: no cache line (nor the
     * prefetchers' next lines) shared by two threads' blocks */
    c->blk_stride = c->blk_T ? (fb.top + 1023) / 1024 * 1024 + 1024 : 0;
    free(last), free(f.off), free(f.len), free(fb.off), free(fb.len);
    return 0;
}

int se_compile(const se_model *mc, const se_options *o, se_compiled **out, char *err,
               size_t errcap) {
    if (out) *out = NULL;
    if (!mc || !o || !out) return se__fail(err, errcap, 2, "se_compile: NULL argument");
    if (o->batch < 1) return se__fail(err, errcap, 2, "batch must be >= 1 (got %d)", o->batch);
    if (o->threads < 0) return se__fail(err, errcap, 2, "threads must be >= 0 (got %d)", o->threads);
    if (o->schedule != SE_SCHEDULE_LAYERS && o->schedule != SE_SCHEDULE_COLUMNS)
        return se__fail(err, errcap, 2, "unknown schedule %d", o->schedule);
    se_model *m = (se_model *)mc; /* the reference count is the only thing written */
    const st_graph *g = m->g;
    se_compiled *c = calloc(1, sizeof *c);
    if (!c) return se__fail(err, errcap, 4, "out of memory");
    se__model_retain(m);
    c->m = m;
    c->g = g;
    c->batch = o->batch;
    c->threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    c->schedule_req = o->schedule;
    c->dense = o->dense != 0;
    c->column_rows = o->column_rows > 0 ? o->column_rows : 0;
    c->blocked_maps = !o->nchw_maps;
    c->l2_bytes = o->l2_bytes;
    c->n_out = g->n_outputs;
    const int nv = g->n_values;
    vinfo vi = {calloc((size_t)nv, sizeof(int)), calloc((size_t)nv, sizeof(int)),
                calloc((size_t)nv, sizeof(int)), calloc((size_t)nv, 1)};
    c->root = malloc((size_t)nv * sizeof *c->root);
    c->off = malloc((size_t)nv * sizeof *c->off);
    c->view_root = malloc((size_t)nv * sizeof *c->view_root);
    c->view_at = calloc((size_t)nv, sizeof *c->view_at);
    int rc = 0;
    if (!vi.uses || !vi.reader || !vi.producer || !vi.is_out || !c->root || !c->off || !c->view_root ||
        !c->view_at) {
        rc = se__fail(err, errcap, 4, "out of memory");
        goto done;
    }
    for (int v = 0; v < nv; v++) c->root[v] = v, vi.producer[v] = -1, c->view_root[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        vi.producer[nd->output] = i;
        for (int k = 0; k < nd->n_inputs; k++) vi.uses[nd->inputs[k]]++, vi.reader[nd->inputs[k]] = i;
        if (nd->op == ST_OP_FLATTEN || nd->op == ST_OP_DROPOUT) c->root[nd->output] = c->root[nd->inputs[0]];
    }
    for (int k = 0; k < g->n_outputs; k++) {
        vi.is_out[g->outputs[k]] = 1;
        c->out_val[k] = c->root[g->outputs[k]];
        int rank = m->out_rank[k];
        if (rank != 2 && rank != 4) { /* not declared: flat after Linear/Flatten/GAP */
            int p = vi.producer[g->outputs[k]];
            st_op_type op = p >= 0 ? g->nodes[p].op : ST_OP_INPUT;
            rank = op == ST_OP_LINEAR || op == ST_OP_FLATTEN ? 2 : 4;
        }
        c->out_ndim[k] = rank;
    }
    if ((rc = build_steps(c, &vi, err, errcap))) goto done;
    /* Kernel choice; the sparse scratch is sized for the run's thread count. */
    int prev_threads = omp_get_max_threads();
    omp_set_num_threads(c->threads);
    size_t scratch = 0;
    for (int i = 0; i < c->n_steps && !rc; i++) {
        se_step *s = &c->steps[i];
        s->epi_rows = st_epi_rows_for(st_cpu_select_isa());
        if (s->op == ST_OP_CONV2D || s->op == ST_OP_LINEAR) rc = choose_kernel(c, s, &scratch, err, errcap);
        s->dense_parts = s->op == ST_OP_CONV2D && s->packed_dense && st_dense_conv_parts_ok(&s->conv, c->threads);
        /* The dense conv adds its bias in a pass of its own when it runs one sample per
         * gemm; the epilogue's pass takes it over. */
        if (s->op == ST_OP_CONV2D && !s->sparse && !s->packed_dense && s->b && s->conv.groups == 1 &&
            st_conv2d_batch_chunk(&s->conv) == 1)
            s->dense_bias_in_epi = 1;
        size_t sc = step_scratch(c, s);
        if (sc > scratch) scratch = sc;
    }
    omp_set_num_threads(prev_threads);
    if (rc) goto done;
    if (c->schedule_req == SE_SCHEDULE_COLUMNS) {
        if ((rc = se__columns_plan(c, err, errcap))) goto done;
        size_t sc = se__columns_scratch_floats(c);
        if (sc > scratch) scratch = sc;
    }
    if (elide_concats(c)) {
        rc = se__fail(err, errcap, 4, "out of memory");
        goto done;
    }
    se__plan_teams(c);
    if ((rc = se__plan_blocks(c, &scratch, err, errcap))) goto done;
    se__plan_team_scratch(c, &scratch);
    rc = plan_memory(c, scratch, err, errcap);
done:
    free(vi.uses), free(vi.reader), free(vi.producer), free(vi.is_out);
    if (rc) {
        se_compiled_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
