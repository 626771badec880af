/* sparseengine: loading a model, and what a compiled model tells about itself (shapes,
 * names, memory, the plan). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "se_internal.h"
#include "st_onnx.h"

int se__fail(char *err, size_t errcap, int code, const char *fmt, ...) {
    if (err && errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return code;
}

void se_options_default(se_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->threads = 0;
    o->schedule = SE_SCHEDULE_LAYERS; /* columns are not faster yet on most models */
    o->dense = 0;
    o->column_rows = 0;
    o->nchw_maps = 0;
    o->l2_bytes = 0;
}

/* The error of a library call, with the file named when the message does not. */
static int fail_st(char *err, size_t errcap, const char *path, const st_error *e) {
    int code = e->code ? (int)e->code : 1;
    if (strstr(e->msg, path)) return se__fail(err, errcap, code, "%s", e->msg);
    return se__fail(err, errcap, code, "%s: %s", path, e->msg);
}

int se_load(const char *path, se_model **out, char *err, size_t errcap) {
    if (out) *out = NULL;
    if (!path || !out) return se__fail(err, errcap, 2, "se_load: NULL path or output");
    st_error e = {0};
    st_onnx_model *om = NULL;
    st_status rc = st_onnx_read_file(path, &om, &e);
    if (rc != ST_OK) return fail_st(err, errcap, path, &e);
    st_graph *g = NULL;
    rc = st_onnx_import(om, NULL, &g, &e);
    if (rc != ST_OK) {
        st_onnx_model_free(om);
        return fail_st(err, errcap, path, &e);
    }
    se_model *m = calloc(1, sizeof *m);
    if (!m) {
        st_onnx_model_free(om);
        st_graph_free(g);
        return se__fail(err, errcap, 4, "%s: out of memory", path);
    }
    atomic_init(&m->refs, 1);
    m->g = g;
    snprintf(m->path, sizeof m->path, "%s", path);
    m->n_out = g->n_outputs;
    const Onnx__GraphProto *gp = om->graph;
    /* the graph input: the first declared input that is not an initializer */
    const char *in_name = NULL;
    for (size_t k = 0; k < gp->n_input && !in_name; k++) {
        const char *nm = st_onnx_str(gp->input[k]->name);
        int init = 0;
        for (size_t j = 0; j < gp->n_initializer && !init; j++)
            init = !strcmp(nm, st_onnx_str(gp->initializer[j]->name));
        if (!init && *nm) in_name = nm;
    }
    if (!in_name) in_name = "input";
    if (!(m->in_name = strdup(in_name))) {
        st_onnx_model_free(om);
        se_model_free(m);
        return se__fail(err, errcap, 4, "%s: out of memory", path);
    }
    for (int k = 0; k < m->n_out; k++) {
        const char *name = k < (int)gp->n_output ? st_onnx_str(gp->output[k]->name) : "";
        char fallback[32];
        if (!*name) snprintf(fallback, sizeof fallback, "output%d", k), name = fallback;
        m->out_names[k] = strdup(name);
        if (!m->out_names[k]) {
            st_onnx_model_free(om);
            se_model_free(m);
            return se__fail(err, errcap, 4, "%s: out of memory", path);
        }
        const Onnx__ValueInfoProto *vi = k < (int)gp->n_output ? gp->output[k] : NULL;
        if (vi && vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
            vi->type->tensor_type && vi->type->tensor_type->shape)
            m->out_rank[k] = (int)vi->type->tensor_type->shape->n_dim;
    }
    st_onnx_model_free(om);
    *out = m;
    return 0;
}

void se__model_retain(se_model *m) { atomic_fetch_add(&m->refs, 1); }

void se_model_free(se_model *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    st_graph_free(m->g);
    for (int k = 0; k < ST_MAX_OUTPUTS; k++) free(m->out_names[k]);
    free(m->in_name);
    free(m);
}

int se_num_outputs(const se_compiled *c) { return c ? c->n_out : 0; }
int se_num_steps(const se_compiled *c) { return c ? c->n_steps : 0; }

static int value_shape(const se_compiled *c, int v, int ndim, int64_t dims[4]) {
    st_shape s = c->g->values[v];
    dims[0] = c->batch;
    if (ndim == 2) {
        dims[1] = (int64_t)s.c * s.h * s.w;
        dims[2] = dims[3] = 0;
        return 2;
    }
    dims[1] = s.c, dims[2] = s.h, dims[3] = s.w;
    return 4;
}

int se_input_shape(const se_compiled *c, int64_t dims[4]) {
    if (!c || !dims) return 0;
    return value_shape(c, c->g->input, 4, dims);
}

int se_output_shape(const se_compiled *c, int k, int64_t dims[4]) {
    if (!c || !dims || k < 0 || k >= c->n_out) return 0;
    return value_shape(c, c->out_val[k], c->out_ndim[k], dims);
}

const char *se_input_name(const se_compiled *c) { return c ? c->m->in_name : NULL; }

const char *se_output_name(const se_compiled *c, int k) {
    if (!c || k < 0 || k >= c->n_out) return NULL;
    return c->m->out_names[k];
}

size_t se_context_bytes(const se_compiled *c) {
    return c ? (c->arena_floats + (size_t)c->blk_T * c->blk_stride) * sizeof(float) : 0;
}

double se_sparse_fraction(const se_compiled *c) {
    if (!c || c->macs_total <= 0) return 0.0;
    return c->macs_sparse / c->macs_total;
}

/* Appends to buf like snprintf; *at keeps growing past cap so the caller learns the size. */
static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*at < cap ? buf + *at : NULL, *at < cap ? cap - *at : 0, fmt, ap);
    va_end(ap);
    if (n > 0) *at += (size_t)n;
}

static const char *epi_name(int kind) {
    switch (kind) {
    case SE_EPI_RELU: return "relu";
    case SE_EPI_LEAKYRELU: return "leakyrelu";
    case SE_EPI_SILU: return "silu";
    case SE_EPI_SIGMOID: return "sigmoid";
    case SE_EPI_CLIP: return "clip";
    case SE_EPI_ADD: return "add";
    default: return "?";
    }
}

int se_describe(const se_compiled *c, char *buf, size_t cap) {
    if (!c || (!buf && cap)) return 2;
    if (cap) buf[0] = 0;
    size_t at = 0;
    put(buf, cap, &at, "plan: %d steps, batch %d, %d thread%s, schedule %s", c->n_steps,
        c->batch, c->threads, c->threads == 1 ? "" : "s",
        c->schedule_req == SE_SCHEDULE_COLUMNS ? "columns" : "layers");
    if (c->schedule_req == SE_SCHEDULE_COLUMNS) {
        int cols = 0;
        for (int k = 0; k < c->n_secs; k++) cols += c->secs[k].last - c->secs[k].first + 1;
        put(buf, cap, &at, " (%d section%s, %d of %d steps as columns, the rest as layers; L2 %zu KiB)",
            c->n_secs, c->n_secs == 1 ? "" : "s", cols, c->n_steps, c->l2_bytes >> 10);
    }
    put(buf, cap, &at, "\n");
    put(buf, cap, &at,
        "memory: context %zu bytes (activations %zu bytes without reuse, scratch %zu bytes)\n",
        se_context_bytes(c), c->act_floats_no_reuse * sizeof(float),
        c->scratch_floats * sizeof(float));
    if (c->blk_T)
        put(buf, cap, &at, "maps: blocked by thread between sparse layers (%d blocks of %zu bytes)\n",
            c->blk_T, c->blk_stride * sizeof(float));
    put(buf, cap, &at, "sparse: %.1f%% of conv/linear multiply-adds on sparse kernels%s\n",
        100.0 * se_sparse_fraction(c), c->dense ? " (dense requested)" : "");
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        const st_node *nd = &c->g->nodes[s->node];
        st_shape o = c->g->values[s->out];
        put(buf, cap, &at, "%3d %-13s %-24s -> %dx%dx%d", i, st_op_name(s->op),
            nd->name[0] ? nd->name : "-", o.c, o.h, o.w);
        if (s->op == ST_OP_CONV2D)
            put(buf, cap, &at, " k%dx%d/s%d g%d", s->conv.R, s->conv.S, s->conv.stride_h,
                s->conv.groups);
        if (s->bn_node >= 0 || s->n_epi) {
            put(buf, cap, &at, " epilogue[");
            int n = 0;
            if (s->bn_node >= 0) put(buf, cap, &at, "%sbn-folded", n++ ? "," : "");
            for (int e = 0; e < s->n_epi; e++)
                put(buf, cap, &at, "%s%s", n++ ? "," : "", epi_name(s->epi[e].kind));
            put(buf, cap, &at, "]");
        }
        if (s->why[0]) put(buf, cap, &at, " kernel %s", s->why);
        if (s->elided) put(buf, cap, &at, " elided (its inputs are written into their channel ranges)");
        if (s->col_sec >= 0) {
            const se_section *sec = &c->secs[s->col_sec];
            put(buf, cap, &at, " tile columns[section %d steps %d-%d", s->col_sec, sec->first, sec->last);
            if (i == sec->first)
                put(buf, cap, &at, ": band %d rows x %d bands, working set %zu KiB, recompute %.0f%%",
                    sec->band, sec->nbands, sec->ws_bytes >> 10, 100.0 * sec->recompute);
            put(buf, cap, &at, "; this step %d rows from %d%s%s]\n", s->col_rows, s->col_rin,
                s->col_in_place ? ", read in the input map" : s->col_direct ? ", read in place" : "",
                i == sec->last && s->sparse ? ", written into the output map" : "");
        } else {
            put(buf, cap, &at, " tile layer");
            if (s->blk)
                put(buf, cap, &at, " maps[%s -> %s]", c->blk[se__root_of(c, s->in[0])] ? "blocked" : "nchw",
                    c->blk[se__root_of(c, s->out)] ? "blocked" : "nchw");
            put(buf, cap, &at, "\n");
        }
    }
    return at < cap ? 0 : 2;
}
