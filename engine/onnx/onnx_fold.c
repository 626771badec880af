/* Import-time evaluation of the shape arithmetic exporters emit around Reshape, e.g.
 * PyTorch's x.view(x.size(0), -1) with a dynamic batch:
 *   Shape(x) -> Gather(0) -> Unsqueeze(0) -> Concat(with [-1]) -> Reshape(x, .)
 * Values are small host arrays; the batch dimension stays symbolic (ST_ONNX_DIM_BATCH)
 * so a target that depends on the batch size in any other way is refused instead of
 * being frozen at the exported batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

/* A fresh constant with n elements (floats or ints). */
static st_status new_const(st_onnx_imp *c, int is_float, int ndim, const int64_t *dims,
                           st_onnx_ival *v) {
    memset(v, 0, sizeof *v);
    v->kind = ST_IV_CONST;
    v->ndim = ndim;
    v->n = 1;
    for (int d = 0; d < ndim; d++) {
        v->dims[d] = dims[d];
        v->n *= (size_t)dims[d];
    }
    void *p = st_onnx_own(c, (v->n ? v->n : 1) * (is_float ? sizeof(float) : sizeof(int64_t)));
    if (!p) return ST_ERR_NOMEM;
    if (is_float) v->f = p;
    else v->i = p;
    return ST_OK;
}

static st_onnx_ival *const_in(st_onnx_imp *c, int k, const char *what) {
    st_onnx_ival *v = st_onnx_in(c, k);
    if (!v) return NULL;
    if (v->kind != ST_IV_CONST || (!v->f && !v->i)) {
        st_onnx_node_err(c, "%s must be a constant (computed from initializers or shapes only)", what);
        return NULL;
    }
    return v;
}

/* Axes from the attribute (older opsets) or input 1 (opset 13); -1 count on error. */
static int get_axes(st_onnx_imp *c, int64_t *axes, int cap, int *present) {
    int n = st_onnx_attr_ints(c->node, "axes", axes, cap);
    *present = 1;
    if (n >= 0) {
        if (n > cap) return st_onnx_node_err(c, "too many axes"), -1;
        return n;
    }
    if (!st_onnx_has_in(c, 1)) {
        *present = 0;
        return 0;
    }
    st_onnx_ival *a = const_in(c, 1, "axes");
    if (!a) return -1;
    if (!a->i || a->n > (size_t)cap) return st_onnx_node_err(c, "axes must be a short int64 list"), -1;
    for (size_t k = 0; k < a->n; k++) axes[k] = a->i[k];
    return (int)a->n;
}

static st_status fold_shape(st_onnx_imp *c) {
    st_onnx_ival *x = st_onnx_in(c, 0);
    if (!x) return c->err->code;
    int64_t dims[ST_ONNX_MAX_NDIM];
    int r;
    if (x->kind == ST_IV_ACT) {
        st_shape s = c->g->values[x->vid];
        r = x->rank;
        dims[0] = ST_ONNX_DIM_BATCH;
        if (r == 4) dims[1] = s.c, dims[2] = s.h, dims[3] = s.w;
        else dims[1] = s.c;
    } else {
        r = x->ndim;
        memcpy(dims, x->dims, sizeof dims);
    }
    /* opset 15: start and end slice the shape */
    int64_t start = st_onnx_attr_i(c->node, "start", 0), end = st_onnx_attr_i(c->node, "end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < start ? start : end > r ? r : end;
    st_onnx_ival v;
    int64_t n = end - start;
    if (new_const(c, 0, 1, &n, &v)) return c->err->code;
    for (int64_t k = 0; k < n; k++) ((int64_t *)v.i)[k] = dims[start + k];
    return st_onnx_set_out(c, 0, &v);
}

static st_status fold_gather(st_onnx_imp *c) {
    st_onnx_ival *d = const_in(c, 0, "Gather data"), *ix = d ? const_in(c, 1, "Gather indices") : NULL;
    if (!ix) return c->err->code;
    if (d->ndim != 1 || st_onnx_attr_i(c->node, "axis", 0) != 0 || !ix->i || ix->ndim > 1)
        return st_onnx_node_err(c, "Gather of constants supports 1-D data, axis 0 and int indices");
    st_onnx_ival v;
    if (new_const(c, d->f != NULL, ix->ndim, ix->dims, &v)) return c->err->code;
    for (size_t k = 0; k < ix->n; k++) {
        int64_t j = ix->i[k];
        if (j < 0) j += (int64_t)d->n;
        if (j < 0 || j >= (int64_t)d->n)
            return st_onnx_node_err(c, "index %lld out of range [0, %zu)", (long long)ix->i[k], d->n);
        if (d->f) ((float *)v.f)[k] = d->f[j];
        else ((int64_t *)v.i)[k] = d->i[j];
    }
    return st_onnx_set_out(c, 0, &v);
}

static st_status fold_unsqueeze(st_onnx_imp *c, int squeeze) {
    st_onnx_ival *x = const_in(c, 0, squeeze ? "Squeeze input" : "Unsqueeze input");
    if (!x) return c->err->code;
    int64_t axes[ST_ONNX_MAX_NDIM];
    int present, na = get_axes(c, axes, ST_ONNX_MAX_NDIM, &present);
    if (na < 0) return c->err->code;
    int out_r = squeeze ? x->ndim : x->ndim + na;
    if (!squeeze && !present) return st_onnx_node_err(c, "Unsqueeze needs axes");
    if (out_r > ST_ONNX_MAX_NDIM) return st_onnx_node_err(c, "too many dimensions");
    int flag[ST_ONNX_MAX_NDIM] = {0};
    for (int k = 0; k < na; k++) {
        int64_t a = axes[k] < 0 ? axes[k] + out_r : axes[k];
        if (a < 0 || a >= out_r || flag[a]) return st_onnx_node_err(c, "bad axis %lld", (long long)axes[k]);
        if (squeeze && x->dims[a] != 1)
            return st_onnx_node_err(c, "cannot squeeze axis %lld of size %lld", (long long)a,
                                    (long long)x->dims[a]);
        flag[a] = 1;
    }
    int64_t dims[ST_ONNX_MAX_NDIM];
    int nd = 0;
    for (int d = 0, src = 0; d < out_r; d++) {
        if (squeeze) {
            int drop = present ? flag[d] : x->dims[d] == 1;
            if (!drop) dims[nd++] = x->dims[d];
        } else {
            dims[nd++] = flag[d] ? 1 : x->dims[src++];
        }
    }
    st_onnx_ival v = *x; /* same values, new dims */
    v.ndim = nd;
    memcpy(v.dims, dims, sizeof dims);
    v.pname = NULL;
    v.uses = 0;
    return st_onnx_set_out(c, 0, &v);
}

static st_status fold_cast(st_onnx_imp *c) {
    st_onnx_ival *x = st_onnx_in(c, 0);
    if (!x) return c->err->code;
    int64_t to = st_onnx_attr_i(c->node, "to", 0);
    int to_float = to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    int to_int = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    if (x->kind == ST_IV_ACT) {
        if (to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return st_onnx_node_err(c, "Cast of an activation to %s", st_onnx_dtype_name((int)to));
        return st_onnx_set_out(c, 0, x);
    }
    if (!to_float && !to_int)
        return st_onnx_node_err(c, "Cast to %s is not supported", st_onnx_dtype_name((int)to));
    if (x->kind != ST_IV_CONST || (!x->f && !x->i))
        return st_onnx_node_err(c, "Cast input is not a usable constant");
    st_onnx_ival v;
    if (new_const(c, to_float, x->ndim, x->dims, &v)) return c->err->code;
    for (size_t k = 0; k < x->n; k++) {
        if (x->i && x->i[k] == ST_ONNX_DIM_BATCH && to_float)
            return st_onnx_node_err(c, "the batch size cannot be converted to a float");
        if (to_float) ((float *)v.f)[k] = x->f ? x->f[k] : (float)x->i[k];
        else if (x->i) ((int64_t *)v.i)[k] = x->i[k];
        else if (!(fabsf(x->f[k]) < 9.2e18f)) return st_onnx_node_err(c, "value out of int64 range");
        else ((int64_t *)v.i)[k] = (int64_t)x->f[k];
    }
    return st_onnx_set_out(c, 0, &v);
}

/* Concat of constants (1-D pieces along axis 0: shape vectors). */
static st_status fold_concat(st_onnx_imp *c) {
    size_t total = 0;
    int is_float = -1;
    for (int k = 0; k < (int)c->node->n_input; k++) {
        st_onnx_ival *x = const_in(c, k, "Concat input");
        if (!x) return c->err->code;
        if (x->ndim != 1) return st_onnx_node_err(c, "Concat of constants supports 1-D pieces only");
        if (is_float >= 0 && is_float != (x->f != NULL))
            return st_onnx_node_err(c, "Concat of constants of different types");
        is_float = x->f != NULL;
        total += x->n;
    }
    if (is_float < 0) return st_onnx_node_err(c, "Concat without inputs");
    int64_t n = (int64_t)total;
    st_onnx_ival v;
    if (new_const(c, is_float, 1, &n, &v)) return c->err->code;
    size_t at = 0;
    for (int k = 0; k < (int)c->node->n_input; k++) {
        st_onnx_ival *x = st_onnx_in(c, k);
        if (is_float) memcpy((float *)v.f + at, x->f, x->n * sizeof(float));
        else memcpy((int64_t *)v.i + at, x->i, x->n * sizeof(int64_t));
        at += x->n;
    }
    return st_onnx_set_out(c, 0, &v);
}

st_status st_onnx_fold(st_onnx_imp *c, const char *op) {
    if (strcmp(op, "Constant") == 0) {
        /* Decoded at read time under the output's name; nothing there means a kind of
         * value we do not read. */
        const char *out = c->node->n_output ? st_onnx_str(c->node->output[0]) : "";
        if (!st_onnx_find_tensor(c->m, out))
            return st_onnx_node_err(c, "only tensor, float(s) and int(s) Constant values are supported");
        return ST_OK;
    }
    if (strcmp(op, "Shape") == 0) return fold_shape(c);
    if (strcmp(op, "Gather") == 0) return fold_gather(c);
    if (strcmp(op, "Unsqueeze") == 0) return fold_unsqueeze(c, 0);
    if (strcmp(op, "Squeeze") == 0) return fold_unsqueeze(c, 1);
    if (strcmp(op, "Cast") == 0) return fold_cast(c);
    if (strcmp(op, "Concat") == 0) return fold_concat(c);
    return st_onnx_node_err(c, "internal: %s is not a folding op", op);
}

st_status st_onnx_reshape_kind(st_onnx_imp *c, const st_onnx_ival *x, int *flatten) {
    st_onnx_ival *t = const_in(c, 1, "Reshape target shape");
    if (!t) return c->err->code;
    if (!t->i || t->ndim != 1) return st_onnx_node_err(c, "Reshape target must be a 1-D int64 tensor");
    st_shape s = c->g->values[x->vid];
    int64_t cur[4] = {ST_ONNX_DIM_BATCH, s.c, s.h, s.w};
    if (x->rank == 2) cur[1] = s.c;
    int64_t feat = (int64_t)s.c * s.h * s.w;
    int allowzero = (int)st_onnx_attr_i(c->node, "allowzero", 0);
    int64_t d[ST_ONNX_MAX_NDIM];
    int r = (int)t->n;
    if (r > ST_ONNX_MAX_NDIM) r = ST_ONNX_MAX_NDIM + 1;
    for (int k = 0; k < r && k < ST_ONNX_MAX_NDIM; k++)
        d[k] = (!allowzero && t->i[k] == 0 && k < x->rank) ? cur[k] : t->i[k];
    /* The first entry is the batch whatever it says (symbolic, -1, or the exported size). */
    int first_ok = r >= 1 && (d[0] == ST_ONNX_DIM_BATCH || d[0] == -1 || d[0] > 0);
    if (r == 2 && first_ok && (d[1] == feat || (d[1] == -1 && d[0] != -1))) {
        *flatten = 1;
        return ST_OK;
    }
    if (r == 4 && x->rank == 4 && first_ok && d[1] == s.c && d[2] == s.h && d[3] == s.w) {
        *flatten = 0;
        return ST_OK;
    }
    char buf[200] = "";
    for (int k = 0; k < (int)t->n && k < 6; k++) {
        size_t l = strlen(buf);
        if (t->i[k] == ST_ONNX_DIM_BATCH) snprintf(buf + l, sizeof buf - l, "%sN", k ? ", " : "");
        else snprintf(buf + l, sizeof buf - l, "%s%lld", k ? ", " : "", (long long)t->i[k]);
    }
    return st_onnx_node_err(c, "Reshape to [%s%s] is not supported: only flattening to [N, %lld] "
                            "(or keeping the shape) is", buf, t->n > 6 ? ", ..." : "", (long long)feat);
}
