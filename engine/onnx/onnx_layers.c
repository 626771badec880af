/* Layer operators of the ONNX importer: Conv, BatchNormalization, Gemm, MatMul,
 * MaxPool/AveragePool and Resize/Upsample, each checked against the input's shape and
 * built with the graph builders; weights keep their initializers' names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

/* Padding of one axis: explicit pads must be symmetric; auto_pad SAME_* is resolved
 * when the total is even. */
static st_status axis_pad(st_onnx_imp *c, const char *auto_pad, const int64_t *pads, int npads,
                          int axis, int in, int k_eff, int stride, int *pad) {
    const char *an = axis ? "width" : "height";
    if (strcmp(auto_pad, "VALID") == 0) {
        *pad = 0;
        return ST_OK;
    }
    if (strncmp(auto_pad, "SAME_", 5) == 0) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k_eff - in;
        if (total < 0) total = 0;
        if (total % 2)
            return st_onnx_node_err(c, "auto_pad %s needs asymmetric padding on the %s axis "
                                    "(total %d); re-export with explicit pads", auto_pad, an, total);
        *pad = total / 2;
        return ST_OK;
    }
    if (strcmp(auto_pad, "NOTSET") && *auto_pad)
        return st_onnx_node_err(c, "unknown auto_pad '%s'", auto_pad);
    if (npads < 0) {
        *pad = 0;
        return ST_OK;
    }
    if (npads != 4) return st_onnx_node_err(c, "pads must have 4 values for a 2-D op, got %d", npads);
    if (pads[axis] != pads[axis + 2])
        return st_onnx_node_err(c, "asymmetric padding on the %s axis (pads = [%lld, %lld, %lld, "
                                "%lld]) is not supported", an, (long long)pads[0], (long long)pads[1],
                                (long long)pads[2], (long long)pads[3]);
    if (pads[axis] < 0 || pads[axis] > 65536) return st_onnx_node_err(c, "bad padding");
    *pad = (int)pads[axis];
    return ST_OK;
}

/* Two values of a 2-D attribute (default when absent), each in [lo, 65536]. */
static st_status attr2(st_onnx_imp *c, const char *name, int def, int lo, int *v) {
    int64_t a[4];
    int n = st_onnx_attr_ints(c->node, name, a, 4);
    if (n < 0) {
        v[0] = v[1] = def;
        return ST_OK;
    }
    if (n != 2) return st_onnx_node_err(c, "%s must have 2 values, got %d", name, n);
    for (int i = 0; i < 2; i++) {
        if (a[i] < lo || a[i] > 65536) return st_onnx_node_err(c, "bad %s %lld", name, (long long)a[i]);
        v[i] = (int)a[i];
    }
    return ST_OK;
}

st_status st_onnx_imp_conv(st_onnx_imp *c) {
    st_onnx_ival *x = st_onnx_act_in(c, 0), *w = x ? st_onnx_weight_in(c, 1, "weight", -1) : NULL;
    if (!w) return c->err->code;
    if (x->rank != 4 || w->ndim != 4)
        return st_onnx_node_err(c, "only 2-D convolutions on [N, C, H, W] are supported");
    st_shape in = c->g->values[x->vid];
    int64_t group = st_onnx_attr_i(c->node, "group", 1);
    int64_t M = w->dims[0], kh = w->dims[2], kw = w->dims[3];
    if (group < 1 || group > in.c || M < 1 || M % group || M > 1 << 20 || kh < 1 || kw < 1 ||
        kh > 4096 || kw > 4096)
        return st_onnx_node_err(c, "bad weight shape or group %lld", (long long)group);
    if (w->dims[1] * group != in.c)
        return st_onnx_node_err(c, "weight '%s' expects %lld input channels (%lld per group x %lld "
                                "groups), the input has %d", c->node->input[1],
                                (long long)(w->dims[1] * group), (long long)w->dims[1],
                                (long long)group, in.c);
    int64_t ks[4];
    int nks = st_onnx_attr_ints(c->node, "kernel_shape", ks, 4);
    if (nks >= 0 && (nks != 2 || ks[0] != kh || ks[1] != kw))
        return st_onnx_node_err(c, "kernel_shape does not match the weight's shape");
    int st[2], dl[2], pad[2];
    if (attr2(c, "strides", 1, 1, st) || attr2(c, "dilations", 1, 1, dl)) return c->err->code;
    int64_t pads[4];
    int npads = st_onnx_attr_ints(c->node, "pads", pads, 4);
    char buf[32];
    const char *ap = st_onnx_attr_s(c->node, "auto_pad", "NOTSET", buf, sizeof buf);
    if (axis_pad(c, ap, pads, npads, 0, in.h, (int)(kh - 1) * dl[0] + 1, st[0], &pad[0]) ||
        axis_pad(c, ap, pads, npads, 1, in.w, (int)(kw - 1) * dl[1] + 1, st[1], &pad[1]))
        return c->err->code;
    st_onnx_ival *b = NULL;
    if (st_onnx_has_in(c, 2) && !(b = st_onnx_weight_in(c, 2, "bias", M))) return c->err->code;
    char tn[32];
    int y = st_g_conv2d_ex(c->g, st_onnx_tmp_name(c, tn, sizeof tn), x->vid, (int)M, (int)kh, (int)kw, st[0],
                           st[1], pad[0], pad[1], dl[0], dl[1], (int)group, b != NULL);
    if (y < 0) return ST_OK;
    st_onnx_bind(c, 0, w, NULL);
    if (b) st_onnx_bind(c, 1, b, NULL);
    return st_onnx_set_act(c, 0, y, 4);
}

st_status st_onnx_imp_bn(st_onnx_imp *c) {
    st_onnx_ival *x = st_onnx_act_in(c, 0);
    if (!x) return c->err->code;
    int C = c->g->values[x->vid].c;
    if (x->rank == 4 || c->g->values[x->vid].h == 1) {
        st_onnx_ival *p[4];
        static const char *const what[4] = {"scale", "B", "mean", "var"};
        for (int k = 0; k < 4; k++)
            if (!(p[k] = st_onnx_weight_in(c, k + 1, what[k], C))) return c->err->code;
        for (size_t o = 1; o < c->node->n_output; o++) {
            st_onnx_ival *v = st_onnx_val(c, st_onnx_str(c->node->output[o]));
            if (v && v->uses)
                return st_onnx_node_err(c, "training outputs (running statistics) are used; only Y may be");
        }
        float eps = st_onnx_attr_f(c->node, "epsilon", 1e-5f);
        float mom = st_onnx_attr_f(c->node, "momentum", 0.9f);
        char tn[32];
        /* ONNX: running = m * running + (1 - m) * batch; ours (PyTorch): the other way. */
        int y = st_g_batchnorm(c->g, st_onnx_tmp_name(c, tn, sizeof tn), x->vid, eps, 1.0f - mom);
        if (y < 0) return ST_OK;
        for (int k = 0; k < 4; k++) st_onnx_bind(c, k, p[k], NULL);
        return st_onnx_set_act(c, 0, y, x->rank);
    }
    return st_onnx_node_err(c, "BatchNormalization needs [N, C, H, W] or [N, C]");
}

/* Gemm: Y = alpha * A * B' + beta * C, folded into one linear layer. */
st_status st_onnx_imp_gemm(st_onnx_imp *c) {
    st_onnx_ival *x = st_onnx_act_in(c, 0), *b = x ? st_onnx_weight_in(c, 1, "B", -1) : NULL;
    if (!b) return c->err->code;
    st_shape in = c->g->values[x->vid];
    if (in.h != 1 || in.w != 1) return st_onnx_node_err(c, "input must be flattened to [N, F]");
    if (st_onnx_attr_i(c->node, "transA", 0)) return st_onnx_node_err(c, "transA = 1 is not supported");
    int transB = st_onnx_attr_i(c->node, "transB", 0) != 0;
    float alpha = st_onnx_attr_f(c->node, "alpha", 1.0f), beta = st_onnx_attr_f(c->node, "beta", 1.0f);
    if (b->ndim != 2) return st_onnx_node_err(c, "B must be 2-D");
    int64_t K = transB ? b->dims[1] : b->dims[0], M = transB ? b->dims[0] : b->dims[1];
    if (K != in.c)
        return st_onnx_node_err(c, "B '%s' expects %lld input features, the input has %d",
                                c->node->input[1], (long long)K, in.c);
    if (M < 1) return st_onnx_node_err(c, "B has no output features");
    st_onnx_ival *bias = NULL;
    if (st_onnx_has_in(c, 2) && beta != 0.0f) {
        if (!(bias = st_onnx_weight_in(c, 2, "C", -1))) return c->err->code;
        if (bias->n != (size_t)M && bias->n != 1)
            return st_onnx_node_err(c, "C has %zu values; only a bias of %lld (or 1) is supported", bias->n, (long long)M);
    }
    const float *wd = b->f;
    if (!transB || alpha != 1.0f) {
        float *t = st_onnx_own(c, (size_t)(M * K) * sizeof(float));
        if (!t) return c->err->code;
        for (int64_t o = 0; o < M; o++)
            for (int64_t i = 0; i < K; i++)
                t[o * K + i] = alpha * (transB ? b->f[o * K + i] : b->f[i * M + o]);
        wd = t;
    }
    const float *bd = NULL;
    if (bias && (beta != 1.0f || bias->n != (size_t)M)) {
        float *t = st_onnx_own(c, (size_t)M * sizeof(float));
        if (!t) return c->err->code;
        for (int64_t o = 0; o < M; o++) t[o] = beta * bias->f[bias->n == 1 ? 0 : o];
        bd = t;
    }
    char tn[32];
    int y = st_g_linear(c->g, st_onnx_tmp_name(c, tn, sizeof tn), x->vid, (int)M, bias != NULL);
    if (y < 0) return ST_OK;
    st_onnx_bind(c, 0, b, wd);
    if (bias) st_onnx_bind(c, 1, bias, bd);
    return st_onnx_set_act(c, 0, y, 2);
}

/* MatMul by a [K, M] initializer; `add` is the fused bias Add node (or NULL). */
st_status st_onnx_imp_matmul(st_onnx_imp *c, const Onnx__NodeProto *add) {
    st_onnx_ival *x = st_onnx_act_in(c, 0), *b = x ? st_onnx_weight_in(c, 1, "B", -1) : NULL;
    if (!b) return c->err->code;
    st_shape in = c->g->values[x->vid];
    if (x->rank != 2 || b->ndim != 2)
        return st_onnx_node_err(c, "only [N, K] x [K, M] (a 2-D activation by a 2-D initializer) is supported");
    int64_t K = b->dims[0], M = b->dims[1];
    if (K != in.c)
        return st_onnx_node_err(c, "B '%s' expects %lld input features, the input has %d",
                                c->node->input[1], (long long)K, in.c);
    if (M < 1) return st_onnx_node_err(c, "B has no output features");
    st_onnx_ival *bias = NULL;
    if (add) {
        const char *a0 = st_onnx_str(add->input[0]), *a1 = st_onnx_str(add->input[1]);
        bias = st_onnx_val(c, strcmp(a0, c->node->output[0]) == 0 ? a1 : a0);
    }
    float *t = st_onnx_own(c, (size_t)(M * K) * sizeof(float));
    if (!t) return c->err->code;
    for (int64_t o = 0; o < M; o++)
        for (int64_t i = 0; i < K; i++) t[o * K + i] = b->f[i * M + o];
    char tn[32];
    int y = st_g_linear(c->g, st_onnx_tmp_name(c, tn, sizeof tn), x->vid, (int)M, bias != NULL);
    if (y < 0) return ST_OK;
    st_onnx_bind(c, 0, b, t);
    if (bias) st_onnx_bind(c, 1, bias, NULL);
    st_status s = st_onnx_set_act(c, 0, y, 2);
    if (!s && add) {
        st_onnx_ival v = {.kind = ST_IV_ACT, .vid = y, .rank = 2};
        st_onnx_ival *o = st_onnx_val(c, st_onnx_str(add->output[0]));
        if (o) o->kind = v.kind, o->vid = v.vid, o->rank = v.rank;
    }
    return s;
}

st_status st_onnx_imp_pool(st_onnx_imp *c, int is_max) {
    st_onnx_ival *x = st_onnx_act_in(c, 0);
    if (!x) return c->err->code;
    if (x->rank != 4) return st_onnx_node_err(c, "pooling needs [N, C, H, W]");
    st_shape in = c->g->values[x->vid];
    int64_t ks[4];
    if (st_onnx_attr_ints(c->node, "kernel_shape", ks, 4) != 2)
        return st_onnx_node_err(c, "kernel_shape must have 2 values");
    if (ks[0] < 1 || ks[1] < 1 || ks[0] > 65536 || ks[1] > 65536) return st_onnx_node_err(c, "bad kernel_shape");
    int st[2], dl[2], pad[2];
    if (attr2(c, "strides", 1, 1, st) || attr2(c, "dilations", 1, 1, dl)) return c->err->code;
    if (dl[0] != 1 || dl[1] != 1) return st_onnx_node_err(c, "dilated pooling is not supported");
    if (st_onnx_attr_i(c->node, "storage_order", 0)) return st_onnx_node_err(c, "storage_order 1 is not supported");
    if (c->node->n_output > 1) {
        st_onnx_ival *v = st_onnx_val(c, st_onnx_str(c->node->output[1]));
        if (v && v->uses) return st_onnx_node_err(c, "the Indices output is not supported");
    }
    int64_t pads[4];
    int npads = st_onnx_attr_ints(c->node, "pads", pads, 4);
    char buf[32];
    const char *ap = st_onnx_attr_s(c->node, "auto_pad", "NOTSET", buf, sizeof buf);
    if (axis_pad(c, ap, pads, npads, 0, in.h, (int)ks[0], st[0], &pad[0]) ||
        axis_pad(c, ap, pads, npads, 1, in.w, (int)ks[1], st[1], &pad[1]))
        return c->err->code;
    int ceil_mode = st_onnx_attr_i(c->node, "ceil_mode", 0) != 0;
    int cip = !is_max && st_onnx_attr_i(c->node, "count_include_pad", 0) != 0;
    int y = st_g_pool_ex(c->g, is_max ? ST_OP_MAXPOOL : ST_OP_AVGPOOL, x->vid, (int)ks[0], (int)ks[1],
                         st[0], st[1], pad[0], pad[1], ceil_mode, cip);
    return st_onnx_set_act(c, 0, y, 4);
}

/* Nearest-neighbour upsampling by one integer factor on both spatial axes. */
st_status st_onnx_imp_resize(st_onnx_imp *c, int is_resize) {
    st_onnx_ival *x = st_onnx_act_in(c, 0);
    if (!x) return c->err->code;
    if (x->rank != 4) return st_onnx_node_err(c, "needs [N, C, H, W]");
    st_shape in = c->g->values[x->vid];
    char buf[64], buf2[64];
    const char *mode = st_onnx_attr_s(c->node, "mode", "nearest", buf, sizeof buf);
    if (strcmp(mode, "nearest")) return st_onnx_node_err(c, "mode '%s' is not supported (only nearest)", mode);
    double fh = 0, fw = 0;
    int scales_in = !is_resize ? 1 : c->m->opset >= 11 ? 2 : 1;
    const Onnx__AttributeProto *sa = st_onnx_attr(c->node, "scales");
    if (!is_resize && c->m->opset < 9 && sa) {
        if (sa->n_floats != 4) return st_onnx_node_err(c, "scales must have 4 values");
        if (sa->floats[0] != 1.0f || sa->floats[1] != 1.0f) return st_onnx_node_err(c, "only spatial scaling is supported");
        fh = sa->floats[2], fw = sa->floats[3];
    } else if (st_onnx_has_in(c, scales_in) && st_onnx_val(c, c->node->input[scales_in]) &&
               st_onnx_val(c, c->node->input[scales_in])->n > 0) {
        st_onnx_ival *s = st_onnx_weight_in(c, scales_in, "scales", 4);
        if (!s) return c->err->code;
        if (s->f[0] != 1.0f || s->f[1] != 1.0f) return st_onnx_node_err(c, "only spatial scaling is supported");
        fh = s->f[2], fw = s->f[3];
    } else if (is_resize && st_onnx_has_in(c, 3)) {
        st_onnx_ival *s = st_onnx_in(c, 3);
        if (!s) return c->err->code;
        if (s->kind != ST_IV_CONST || !s->i || s->n != 4) return st_onnx_node_err(c, "sizes must be 4 constant ints");
        if (s->i[1] != in.c) return st_onnx_node_err(c, "sizes may not change the channels");
        fh = (double)s->i[2] / in.h, fw = (double)s->i[3] / in.w;
    } else {
        return st_onnx_node_err(c, "needs scales or sizes");
    }
    if (fh != fw || fh < 1 || fh > 64 || fh != floor(fh))
        return st_onnx_node_err(c, "scales %g x %g: only equal integer factors are supported", fh, fw);
    int f = (int)fh;
    if (is_resize && c->m->opset >= 11 && f > 1) {
        /* With an integer factor, nearest under these conventions picks floor(i / f). */
        const char *ct = st_onnx_attr_s(c->node, "coordinate_transformation_mode", "half_pixel", buf, sizeof buf);
        const char *nm = st_onnx_attr_s(c->node, "nearest_mode", "round_prefer_floor", buf2, sizeof buf2);
        int half = !strcmp(ct, "half_pixel") || !strcmp(ct, "pytorch_half_pixel");
        int rounding = !strncmp(nm, "round_prefer_", 13);
        int ok = (half && rounding) ||
                 (!strcmp(ct, "asymmetric") && (!strcmp(nm, "floor") || (f == 2 && !strcmp(nm, "round_prefer_floor"))));
        if (!ok) return st_onnx_node_err(c, "coordinate_transformation_mode '%s' with nearest_mode '%s' is not supported", ct, nm);
    }
    if ((int64_t)st_shape_numel(in) * f * f > ST_ONNX_MAX_VALUE) return st_onnx_node_err(c, "output too large");
    if (f == 1) return st_onnx_set_out(c, 0, x);
    return st_onnx_set_act(c, 0, st_g_upsample(c->g, x->vid, f), 4);
}

/* Reads an optional float scalar input k; returns 1 if present. */
