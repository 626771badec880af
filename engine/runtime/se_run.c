/* sparseengine: contexts and running a compiled plan, step by step. The compiled model
 * is only read here; everything a run writes lives in the context (arena) or the
 * caller's output arrays. OpenMP threads: the compiled thread count is set for the
 * calling thread for the duration of the run (kernels and OpenBLAS's OpenMP build read
 * it), then the caller's setting is restored. */
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "act_kernels.h"
#include "se_internal.h"

#define SE_EPI_BLOCK 4096      /* elements per epilogue block (16 KiB: stays in L1) */
#define SE_OMP_MIN 32768

int se_context_new(const se_compiled *c, se_context **out, char *err, size_t errcap) {
    if (out) *out = NULL;
    if (!c || !out) return se__fail(err, errcap, 2, "se_context_new: NULL argument");
    se_context *x = st_calloc(sizeof *x); /* aligned: the barrier's cache lines */
    if (!x) return se__fail(err, errcap, 4, "out of memory");
    x->c = c;
    x->ptr = calloc((size_t)c->g->n_values, sizeof *x->ptr);
    x->arena = st_calloc((c->arena_floats ? c->arena_floats : 16) * sizeof(float));
    if (c->blk_T) x->blk_arena = st_calloc((size_t)c->blk_T * c->blk_stride * sizeof(float));
    if (!x->ptr || !x->arena || (c->blk_T && !x->blk_arena)) {
        se_context_free(x);
        return se__fail(err, errcap, 4, "out of memory for a context of %zu bytes", se_context_bytes(c));
    }
    for (int v = 0; v < c->g->n_values; v++) {
        int r = c->root[v];
        x->ptr[v] = c->off[r] >= 0 ? x->arena + c->off[r] : NULL;
    }
    *out = x;
    return 0;
}

/* Doubles between two threads' barrier-wait sums: a cache line each. */
#define SE_WAIT_STRIDE 8

int se_context_profile(se_context *x, int on) {
    if (!x) return 2;
    free(x->step_s);
    free(x->wait_s);
    x->step_s = x->wait_s = NULL;
    x->profiled_runs = 0;
    if (on && (!(x->step_s = calloc((size_t)x->c->n_steps, sizeof *x->step_s)) ||
               !(x->wait_s = calloc((size_t)x->c->threads * SE_WAIT_STRIDE, sizeof *x->wait_s)))) {
        free(x->step_s);
        x->step_s = NULL;
        return 4;
    }
    return 0;
}

int se_context_wait_ms(const se_context *x, double *ms, int cap) {
    if (!x || !x->wait_s) return 0;
    const int n = x->c->threads < cap ? x->c->threads : cap;
    for (int t = 0; t < n; t++) ms[t] = x->profiled_runs ? 1e3 * x->wait_s[t * SE_WAIT_STRIDE] / (double)x->profiled_runs : 0.0;
    return n;
}

int se_context_step_ms(const se_context *x, double *ms, int cap) {
    if (!x || !x->step_s) return 0;
    const int n = x->c->n_steps < cap ? x->c->n_steps : cap;
    for (int i = 0; i < n; i++) ms[i] = x->profiled_runs ? 1e3 * x->step_s[i] / (double)x->profiled_runs : 0.0;
    return n;
}

void se_context_free(se_context *x) {
    if (!x) return;
    free(x->step_s);
    free(x->wait_s);
    st_free(x->arena);
    st_free(x->blk_arena);
    free(x->ptr);
    st_free(x);
}

/* The step's epilogue as row-kernel ops, residuals read at offset i0; returns 1 when
 * one of them is a residual Add. */
int se__epi_ops(const se_step *s, float *const *ptr, size_t i0, st_epi_op *ops) {
    int add = 0;
    for (int e = 0; e < s->n_epi; e++) {
        const se_epi *ep = &s->epi[e];
        add |= ep->kind == SE_EPI_ADD;
        ops[e] = (st_epi_op){ep->kind, ep->a, ep->b, ep->kind == SE_EPI_ADD ? ptr[ep->value] + i0 : NULL};
    }
    return add;
}

/* Applies the epilogue ops to m elements at yb (residuals at offset i0) in one pass. */
static inline void epi_block(const se_step *s, float *yb, size_t m, size_t i0, float bias,
                             float *const *ptr) {
    st_epi_op ops[SE_MAX_EPI];
    se__epi_ops(s, ptr, i0, ops);
    s->epi_rows(yb, 0, yb, 0, 1, m, bias, ops, s->n_epi);
}

void se__epilogue(const se_step *s, float *y, float *const *ptr, size_t n, const float *bias,
                  int K, size_t plane) {
    if (bias) { /* per output channel: planes of `plane` elements, channel = plane % K */
        const size_t planes = n / plane, per = (plane + SE_EPI_BLOCK - 1) / SE_EPI_BLOCK;
#pragma omp parallel for schedule(static) if (n > SE_OMP_MIN)
        for (size_t t = 0; t < planes * per; t++) {
            const size_t pl = t / per, i0 = pl * plane + (t % per) * SE_EPI_BLOCK;
            const size_t m = ST_MIN(pl * plane + plane - i0, (size_t)SE_EPI_BLOCK);
            epi_block(s, y + i0, m, i0, bias[pl % (size_t)K], ptr);
        }
        return;
    }
    const size_t nb = (n + SE_EPI_BLOCK - 1) / SE_EPI_BLOCK;
#pragma omp parallel for schedule(static) if (n > SE_OMP_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t i0 = blk * SE_EPI_BLOCK, m = ST_MIN(n - i0, (size_t)SE_EPI_BLOCK);
        epi_block(s, y + i0, m, i0, 0.0f, ptr);
    }
}

void se__epilogue_band(const se_step *s, float *y, float *const *ptr, int n, int y0, int rows,
                       const float *bias) {
    const int K = s->conv.K;
    const size_t P = (size_t)s->conv.P, Q = (size_t)s->conv.Q, m = (size_t)rows * Q;
    for (int k = 0; k < K; k++)
        epi_block(s, y + (size_t)k * m, m, (((size_t)n * K + k) * P + (size_t)y0) * Q,
                  bias ? bias[k] : 0.0f, ptr);
}

static int run_step(const se_compiled *c, const se_step *s, float *const *ptr, float *scratch,
                    char *err, size_t errcap) {
    const st_graph *g = c->g;
    const st_node *nd = &g->nodes[s->node];
    const int N = c->batch;
    float *y = ptr[s->out];
    const float *x = s->n_in ? ptr[s->in[0]] : NULL;
    st_shape in = s->n_in ? g->values[s->in[0]] : g->values[s->out];
    const size_t n_in = (size_t)N * st_shape_numel(in);
    st_error e = {0};
    switch (s->op) {
    case ST_OP_CONV2D: {
        st_epi_op ops[SE_MAX_EPI]; /* sparse / packed dense: the epilogue in the kernel */
        se__epi_ops(s, ptr, 0, ops);
        if (s->sparse) {
            if (st_conv2d_sparse_forward_epi(&s->conv, &s->csr, y, x, s->b, ops, s->n_epi, scratch,
                                             &e) != ST_OK)
                return se__fail(err, errcap, 1, "%s: %s", nd->name, e.msg);
            return 0; /* epilogue done */
        } else if (s->packed_dense) {
            st_dense_conv_forward(&s->dconv, &s->conv, y, x, s->b, ops, s->n_epi, scratch);
            return 0; /* epilogue done */
        } else {
            /* the bias goes into the epilogue's pass (one pass over y fewer) */
            st_conv2d_forward(&s->conv, y, x, s->w, s->dense_bias_in_epi ? NULL : s->b, scratch);
        }
        break;
    }
    case ST_OP_LINEAR:
        if (s->sparse) {
            if (st_linear_sparse_forward(&s->csr, y, x, s->b, N, scratch, &e) != ST_OK)
                return se__fail(err, errcap, 1, "%s: %s", nd->name, e.msg);
        } else {
            st_linear_forward(y, x, s->w, s->b, N, s->in_f, s->out_f);
        }
        break;
    case ST_OP_BATCHNORM: {
        st_batchnorm bn = {.N = N, .C = in.c, .HW = in.h * in.w, .eps = nd->a.bn.eps,
                           .momentum = nd->a.bn.momentum};
        /* eval mode reads the running statistics and writes only save_mean/invstd */
        st_batchnorm_forward(&bn, y, x, st_param_data(g, nd->params[0]),
                             st_param_data(g, nd->params[1]), st_param_data(g, nd->params[2]),
                             st_param_data(g, nd->params[3]), scratch, scratch + in.c, 0);
        break;
    }
    case ST_OP_RELU: st_relu_forward(y, x, n_in); break;
    case ST_OP_LEAKYRELU: st_leakyrelu_forward(y, x, n_in, nd->a.slope); break;
    case ST_OP_SILU: st_silu_forward(y, x, n_in); break;
    case ST_OP_SIGMOID: st_sigmoid_forward(y, x, n_in); break;
    case ST_OP_CLIP: st_clip_forward(y, x, n_in, nd->a.clip.lo, nd->a.clip.hi); break;
    case ST_OP_SOFTMAX: st_softmax_forward(y, x, N, in.c, in.h * in.w); break;
    case ST_OP_MAXPOOL: st_maxpool_forward_infer(&s->pool, y, x); break;
    case ST_OP_AVGPOOL: st_avgpool_forward(&s->pool, y, x); break;
    case ST_OP_GLOBALAVGPOOL: st_global_avgpool_forward(y, x, N, in.c, in.h * in.w); break;
    case ST_OP_ADD: st_add_forward(y, x, ptr[s->in[1]], n_in); break;
    case ST_OP_MUL: st_mul_forward(y, x, ptr[s->in[1]], n_in); break;
    case ST_OP_CONCAT: {
        const float *xs[ST_MAX_INPUTS];
        int cs[ST_MAX_INPUTS];
        for (int k = 0; k < s->n_in; k++) {
            xs[k] = ptr[s->in[k]];
            cs[k] = g->values[s->in[k]].c;
        }
        st_concat_forward(y, xs, cs, s->n_in, N, in.h * in.w);
        break;
    }
    case ST_OP_UPSAMPLE: st_upsample_nearest_forward(y, x, N, in.c, in.h, in.w, nd->a.factor); break;
    default:
        return se__fail(err, errcap, 1, "internal: no kernel for %s (%s)", st_op_name(s->op), nd->name);
    }
    const int epi_bias = s->op == ST_OP_CONV2D && !s->sparse && s->dense_bias_in_epi;
    if (s->n_epi || epi_bias)
        se__epilogue(s, y, ptr, (size_t)N * st_shape_numel(g->values[s->out]),
                     epi_bias ? s->b : NULL, s->conv.K, (size_t)s->conv.P * s->conv.Q);
    return 0;
}

/* ---------------------------------------------------------------- Row-owning team
 * With several threads, runs of consecutive steps execute inside one OpenMP parallel
 * region: every thread walks the steps, computes its part of each (the same share of
 * output rows, or bands of rows, from layer to layer, so a thread mostly reads what its
 * own core just wrote), and meets the others at a spinning barrier before the next
 * step. A step the team cannot split but that is small (it would run on one thread
 * anyway) runs on thread 0 while the others wait. Anything else ends the run and goes
 * through run_step with its own parallel regions. */

static int team_kind(const se_compiled *c, const se_step *s) {
    if (s->elided) return TEAM_SERIAL; /* nothing to run, no barrier */
    if (s->col_sec >= 0) return TEAM_SECTION;
    const size_t n_out = (size_t)c->batch * st_shape_numel(c->g->values[s->out]);
    switch (s->op) {
    case ST_OP_CONV2D:
        if (s->sparse || s->dense_parts) return TEAM_SPLIT;
        return s->macs < (double)(1 << 21) ? TEAM_SERIAL : TEAM_NO;
    case ST_OP_CONCAT:
    case ST_OP_UPSAMPLE: return s->n_epi == 0 ? TEAM_SPLIT : TEAM_NO;
    case ST_OP_MAXPOOL: return s->n_epi == 0 ? TEAM_SPLIT : TEAM_NO;
    case ST_OP_BATCHNORM: return TEAM_NO; /* writes into scratch shared with the parts */
    case ST_OP_LINEAR: /* dense: by output ranges (a 2 MB fc streams its weights faster on all cores) */
        if (!s->sparse && s->n_epi == 0) return TEAM_SPLIT;
        break; /* a sparse one as any other step */
    default: break;
    }
    return n_out <= SE_OMP_MIN && s->n_epi == 0 ? TEAM_SERIAL : TEAM_NO;
}

typedef struct {
    se_barrier *bar;
    int nt;
} team_sync_ctx;

/* Per-thread scratch in a team: thread t's slice starts at t * team_stride in every
 * step, so a core reuses the lines it wrote itself in the steps before. With each
 * operator's own stride (its thread_floats, the Winograd stem's buffers), a thread's
 * slice in one step lay in the other core's slice of another: yolov5n's stem on two
 * threads ran its second half 0.33 ms against 0.28 for the first, and swapping the two
 * parts' slices swapped the times (the first touch of each line pulled it from the
 * other core). The blocked stride-2 layers use the same stride (blk_scratch). */
static size_t team_floats(const se_step *s) {
    if (s->team != TEAM_SPLIT || s->blk || s->col_sec >= 0 || s->op != ST_OP_CONV2D) return 0;
    if (s->sparse) return s->csr.geom.direct ? 0 : s->csr.geom.thread_floats;
    return s->packed_dense && s->dconv.wg ? st__wino_part_floats(&s->conv) : 0;
}

void se__plan_team_scratch(se_compiled *c, size_t *scratch) {
    c->team_stride = 0;
    if (c->threads < 2) return;
    size_t st = c->blk_T ? c->blk_scratch : 0;
    for (int i = 0; i < c->n_steps; i++) st = ST_MAX(st, team_floats(&c->steps[i]));
    if (!st) return;
    c->team_stride = (st + 15) & ~(size_t)15;
    if (c->blk_T) c->blk_scratch = c->team_stride;
    const size_t need = c->team_stride * (size_t)c->threads + 16; /* + the Winograd stem's alignment */
    if (need > *scratch) *scratch = need;
}

/* The scratch pointer to give part `part` of step s so that its slice lands at part *
 * team_stride (the operators offset by their own stride). */
static float *team_scratch(const se_compiled *c, const se_step *s, float *scratch, int part) {
    const size_t own = team_floats(s);
    if (!c->team_stride || !own) return scratch;
    return scratch + (size_t)part * (c->team_stride - own);
}

void se__plan_teams(se_compiled *c) {
    for (int i = 0; i < c->n_steps; i++) c->steps[i].team = team_kind(c, &c->steps[i]);
    for (int i = 0; c->threads > 1 && i < c->n_steps; i++) {
        if (c->steps[i].elided) continue; /* se_run passes over it: a run starts after */
        int j = i, split = 0;
        while (j < c->n_steps && c->steps[j].team) {
            split |= c->steps[j].team == TEAM_SPLIT || c->steps[j].team == TEAM_SECTION;
            j++;
        }
        if (split && j - i >= 2) c->steps[i].team_end = j, i = j - 1;
    }
}

static void team_barrier(se_barrier *b, int nt);
static void team_sync(void *ctx) {
    const team_sync_ctx *t = ctx;
    team_barrier(t->bar, t->nt);
}

static void team_barrier(se_barrier *b, int nt) {
    const int g = atomic_load_explicit(&b->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == nt - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->gen, g + 1, memory_order_release);
        return;
    }
    /* Spin (the other cores are normally ours), but give the core away when a waiter
     * is kept long, as when contexts on several threads oversubscribe the cores. */
    for (long spins = 0; atomic_load_explicit(&b->gen, memory_order_acquire) == g; spins++) {
        if (spins < 20000) __builtin_ia32_pause();
        else sched_yield();
    }
}

/* Part `part` of nt of a TEAM_SPLIT step: rows [part * R / nt, (part + 1) * R / nt) of
 * its output (of its input for upsampling), or the sparse kernel's share of bands. */
static int step_part(const se_compiled *c, const se_step *s, float *const *ptr, float *blk_arena,
                     float *scratch, int part, int nt, se_barrier *bar, st_error *e) {
    if (s->col_sec >= 0) return se__columns_part(c, &c->secs[s->col_sec], ptr, scratch, part, nt, e);
    if (s->blk) return se__blk_part(c, s, ptr, blk_arena, scratch, part, nt, e);
    const st_graph *g = c->g;
    float *y = ptr[s->out];
    const float *x = ptr[s->in[0]];
    const st_shape in = g->values[s->in[0]];
    switch (s->op) {
    case ST_OP_CONV2D: {
        st_epi_op ops[SE_MAX_EPI];
        se__epi_ops(s, ptr, 0, ops);
        if (!s->sparse) { /* packed dense: its phases meet at the team's barrier */
            team_sync_ctx ts = {bar, nt};
            st_dense_conv_forward_part(&s->dconv, &s->conv, y, x, s->b, ops, s->n_epi,
                                       team_scratch(c, s, scratch, part), part, nt, team_sync, &ts);
            return 0;
        }
        return st_conv2d_sparse_forward_part(&s->conv, &s->csr, y, x, s->b, ops, s->n_epi,
                                             team_scratch(c, s, scratch, part), part, nt, e) != ST_OK;
    }
    case ST_OP_MAXPOOL: st_maxpool_forward_infer_part(&s->pool, y, x, part, nt); return 0;
    case ST_OP_LINEAR:
        st_linear_forward_rows(y, x, s->w, s->b, c->batch, s->in_f, s->out_f, s->out_f * part / nt,
                               s->out_f * (part + 1) / nt);
        return 0;
    case ST_OP_UPSAMPLE:
        st_upsample_nearest_rows(y, x, c->batch, in.c, in.h, in.w, g->nodes[s->node].a.factor,
                                 in.h * part / nt, in.h * (part + 1) / nt);
        return 0;
    case ST_OP_CONCAT: {
        const float *xs[ST_MAX_INPUTS];
        int cs[ST_MAX_INPUTS];
        for (int k = 0; k < s->n_in; k++) xs[k] = ptr[s->in[k]], cs[k] = g->values[s->in[k]].c;
        st_concat_rows(y, xs, cs, s->n_in, c->batch, in.h, in.w, in.h * part / nt, in.h * (part + 1) / nt);
        return 0;
    }
    default: return 1;
    }
}

/* Steps [i0, i1) by the team; returns the step index + 1 of a failure, else 0 (err set
 * by thread 0 for serial steps, from the part's error otherwise). */
static int run_team(se_context *x, int i0, int i1, float *scratch, char *err, size_t errcap) {
    const se_compiled *c = x->c;
    atomic_int failed = 0;
    st_error pe = {0}; /* the failing part's message (first failure wins) */
    atomic_store(&x->bar.count, 0);
#pragma omp parallel num_threads(c->threads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int i = i0; i < i1; i++) {
            const se_step *s = &c->steps[i];
            if (s->elided) continue;
            if (s->col_sec >= 0 && c->secs[s->col_sec].first != i) continue; /* its section ran it */
            const double t0 = tid == 0 && x->step_s ? omp_get_wtime() : 0.0;
            if (!atomic_load_explicit(&failed, memory_order_relaxed)) {
                if (s->team == TEAM_SERIAL) {
                    if (tid == 0 && run_step(c, s, x->ptr, scratch, err, errcap)) atomic_store(&failed, i + 1);
                } else {
                    st_error e = {0};
                    if (step_part(c, s, x->ptr, x->blk_arena, scratch, tid, nt, &x->bar, &e)) {
                        int none = 0;
                        if (atomic_compare_exchange_strong(&failed, &none, i + 1)) pe = e;
                    }
                }
            }
            const double tb = x->wait_s ? omp_get_wtime() : 0.0;
            team_barrier(&x->bar, nt);
            if (x->wait_s) x->wait_s[tid * SE_WAIT_STRIDE] += omp_get_wtime() - tb;
            if (tid == 0 && x->step_s) x->step_s[i] += omp_get_wtime() - t0;
        }
    }
    const int f = atomic_load(&failed);
    /* a section's message already names its failing step (as se__columns_run's does) */
    if (f && c->steps[f - 1].col_sec >= 0 && pe.msg[0]) se__fail(err, errcap, 1, "%s", pe.msg);
    else if (f && c->steps[f - 1].team != TEAM_SERIAL)
        se__fail(err, errcap, 1, "%s: %s", c->g->nodes[c->steps[f - 1].node].name,
                 pe.msg[0] ? pe.msg : "failed");
    return f;
}

int se_run(se_context *x, const float *input, float *const *outputs, char *err, size_t errcap) {
    if (!x || !input || !outputs) return se__fail(err, errcap, 2, "se_run: NULL argument");
    const se_compiled *c = x->c;
    const st_graph *g = c->g;
    for (int k = 0; k < c->n_out; k++)
        if (!outputs[k]) return se__fail(err, errcap, 2, "se_run: output %d is NULL", k);
    /* The input is read in place (only ever read): bind it and its aliases. */
    for (int v = 0; v < g->n_values; v++)
        if (c->root[v] == g->input) x->ptr[v] = (float *)input;
    const int prev = omp_get_max_threads();
    omp_set_num_threads(c->threads);
    float *scratch = x->arena;
    int rc = 0;
    for (int i = 0; i < c->n_steps && !rc; i++) {
        const se_step *s = &c->steps[i];
        if (s->elided) continue;
        const double t0 = x->step_s ? omp_get_wtime() : 0.0;
        const int at = i;
        if (s->team_end) { /* the team profiles its own steps */
            rc = run_team(x, i, s->team_end, scratch, err, errcap) ? 1 : 0;
            i = s->team_end - 1;
            continue;
        }
        if (s->col_sec >= 0) { /* a section: column by column, then past its last step */
            const se_section *sec = &c->secs[s->col_sec];
            rc = se__columns_run(c, sec, x->ptr, scratch, err, errcap);
            i = sec->last;
        } else {
            rc = run_step(c, s, x->ptr, scratch, err, errcap);
        }
        if (x->step_s) x->step_s[at] += omp_get_wtime() - t0; /* a section: on its first step */
    }
    if (x->step_s) x->profiled_runs++;
    omp_set_num_threads(prev);
    if (rc) return rc;
    for (int k = 0; k < c->n_out; k++) {
        size_t n = (size_t)c->batch * st_shape_numel(g->values[c->out_val[k]]);
        memcpy(outputs[k], x->ptr[c->out_val[k]], n * sizeof(float));
    }
    return 0;
}
