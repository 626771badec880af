/* The structured fields of modifiers: parameter selectors, the final_sparsity map form,
 * mask_type, param_groups and LearningRateModifier's lr_kwargs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe_fields.h"

const char *const rcp_field_names[F_COUNT] = {
    "start_epoch", "end_epoch", "update_frequency", "params", "init_sparsity", "final_sparsity",
    "inter_func", "mask_type", "leave_enabled", "global_sparsity", "phased", "learning_rate",
    "lr_func", "init_lr", "final_lr", "cycle_epochs", "lr_class", "lr_kwargs", "weight_decay",
    "param_groups", "log_types", "constant_logging"};

/* params: one selector or a list of them ("__ALL_PRUNABLE__", "name", "re:..."). An empty
 * list is allowed here; the caller decides (the final_sparsity map form needs one). */
st_status rcp_get_params(mod_ctx *x, field_id f, yaml_node_t *node, yaml_document_t *doc,
                         st_sparsity_group *g) {
    rcp_where w = where_of(x, f);
    rcp_val v;
    if (rcp_resolve(x->c, doc, node, &w, &v) != ST_OK) return ST_ERR_INPUT;
    int n = v.kind == RCP_LIST ? seq_len(v.node) : 1;
    if (v.kind != RCP_LIST && v.kind != RCP_STR)
        return wrong(x, f, "a parameter name or a list of them", &v);
    g->params = calloc((size_t)(n ? n : 1), sizeof *g->params);
    if (!g->params) return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
    for (int i = 0; i < n; i++) {
        rcp_val it = v;
        if (v.kind == RCP_LIST && rcp_resolve(x->c, v.doc, item(v.doc, v.node, i), &w, &it) != ST_OK)
            return ST_ERR_INPUT;
        if (it.kind != RCP_STR || !it.str[0]) return wrong(x, f, "parameter names (strings)", &it);
        if (!(g->params[g->n_params++] = rcp_strdup(it.str)))
            return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
    }
    return ST_OK;
}

st_status rcp_check_sparsity(mod_ctx *x, field_id f, const rcp_val *v, double *out) {
    if (as_num(x, f, v, out) != ST_OK) return ST_ERR_INPUT;
    return range(x, f, *out >= 0 && *out < 1, "must be in [0, 1) (1.0 would remove every weight)", *out);
}

/* final_sparsity: a number with params, or {0.9: [names], 0.8: [names]} with params
 * empty or absent: one group per entry. */
st_status rcp_read_sparsity_groups(mod_ctx *x) {
    st_modifier *m = x->m;
    rcp_val fs;
    if (get_val(x, F_FINAL_SP, &fs) != ST_OK) return ST_ERR_INPUT;
    int n = fs.kind == RCP_MAP ? (int)(fs.node->data.mapping.pairs.top - fs.node->data.mapping.pairs.start) : 1;
    if (n == 0) return wrong(x, F_FINAL_SP, "a number or a mapping {sparsity: [params]}", &fs);
    m->groups = calloc((size_t)n, sizeof *m->groups);
    if (!m->groups) return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
    if (fs.kind != RCP_MAP) {
        double s;
        if (rcp_check_sparsity(x, F_FINAL_SP, &fs, &s) != ST_OK) return ST_ERR_INPUT;
        m->n_groups = 1;
        m->groups[0].final_sparsity = (float)s;
        if (!x->val[F_PARAMS]) {
            rcp_where w = {x->c->file, m->line, m->tag};
            return rcp_fail(x->c, &w, "missing field 'params' (the parameters to prune, e.g. __ALL_PRUNABLE__)");
        }
        if (rcp_get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &m->groups[0]) != ST_OK) return ST_ERR_INPUT;
        if (m->groups[0].n_params == 0) {
            rcp_where w = where_of(x, F_PARAMS);
            return rcp_fail(x->c, &w, "empty list: name the parameters to prune (e.g. __ALL_PRUNABLE__)");
        }
        return ST_OK;
    }
    if (x->val[F_PARAMS]) {
        st_sparsity_group tmp = {0};
        st_status st = rcp_get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &tmp);
        int extra = tmp.n_params;
        for (int i = 0; i < tmp.n_params; i++) free(tmp.params[i]);
        free(tmp.params);
        if (st != ST_OK) return st;
        if (extra) {
            rcp_where w = where_of(x, F_PARAMS);
            return rcp_fail(x->c, &w, "must be empty ([]) when final_sparsity maps sparsities to parameters");
        }
    }
    for (int i = 0; i < n; i++) {
        yaml_node_pair_t *p = &fs.node->data.mapping.pairs.start[i];
        rcp_val k;
        double s;
        rcp_where w = where_of(x, F_FINAL_SP);
        if (rcp_resolve(x->c, fs.doc, yaml_document_get_node(fs.doc, p->key), &w, &k) != ST_OK ||
            rcp_check_sparsity(x, F_FINAL_SP, &k, &s) != ST_OK)
            return ST_ERR_INPUT;
        m->groups[i].final_sparsity = (float)s;
        m->n_groups = i + 1;
        if (rcp_get_params(x, F_FINAL_SP, yaml_document_get_node(fs.doc, p->value), fs.doc, &m->groups[i]) != ST_OK)
            return ST_ERR_INPUT;
        if (m->groups[i].n_params == 0) return range(x, F_FINAL_SP, 0, "each sparsity needs parameters", s);
    }
    return ST_OK;
}

/* mask_type: "unstructured", "block4"/"block" (= [1, 4]), [1, M] (input channels), [M, 1]
 * (output channels), or "N:M". SparseML's list syntax only: no invented block strings. */
st_status rcp_read_mask(mod_ctx *x) {
    st_modifier *m = x->m;
    rcp_val v;
    if (get_val(x, F_MASK, &v) != ST_OK) return ST_ERR_INPUT;
    const char *expect = "unstructured, block4, [1, M], [M, 1] or N:M (e.g. 2:4)";
    if (v.kind == RCP_STR) {
        int n, mm, used = 0;
        if (!strcmp(v.str, "unstructured")) return ST_OK;
        if (!strcmp(v.str, "block4") || !strcmp(v.str, "block")) {
            m->mask_type = ST_MASK_BLOCK, m->mask_n = 1, m->mask_m = 4;
            return ST_OK;
        }
        if (sscanf(v.str, "%d:%d%n", &n, &mm, &used) == 2 && !v.str[used]) {
            if (!(n > 0 && n < mm && mm <= 1024)) return wrong(x, F_MASK, "N:M with 0 < N < M <= 1024", &v);
            m->mask_type = ST_MASK_NM, m->mask_n = n, m->mask_m = mm;
            return ST_OK;
        }
        return wrong(x, F_MASK, expect, &v);
    }
    if (v.kind != RCP_LIST || seq_len(v.node) != 2) return wrong(x, F_MASK, expect, &v);
    double d[2];
    for (int i = 0; i < 2; i++) {
        rcp_val it;
        rcp_where w = where_of(x, F_MASK);
        if (rcp_resolve(x->c, v.doc, item(v.doc, v.node, i), &w, &it) != ST_OK) return ST_ERR_INPUT;
        if (it.kind != RCP_NUM || it.num != trunc(it.num) || it.num < 1 || it.num > 1024)
            return wrong(x, F_MASK, "[1, M] or [M, 1] with M a whole number from 1 to 1024", &it);
        d[i] = it.num;
    }
    if (d[0] > 1 && d[1] > 1) {
        rcp_where w = where_of(x, F_MASK);
        return rcp_fail(x->c, &w, "only [1, M] (input channels) or [M, 1] (output channels) "
                        "blocks are supported, got [%g, %g]", d[0], d[1]);
    }
    /* [1, 1] stays unstructured */
    if (d[1] > 1) m->mask_type = ST_MASK_BLOCK, m->mask_n = 1, m->mask_m = (int)d[1];
    if (d[0] > 1) m->mask_type = ST_MASK_BLOCK, m->mask_n = (int)d[0], m->mask_m = 1;
    return ST_OK;
}

/* param_groups: [0, 1, 2] subsets -> bit mask. */
st_status rcp_read_param_groups(mod_ctx *x) {
    rcp_val v;
    if (get_val(x, F_PGROUPS, &v) != ST_OK) return ST_ERR_INPUT;
    if (v.kind == RCP_NULL) return ST_OK;
    int n = v.kind == RCP_LIST ? seq_len(v.node) : 1;
    const char *expect = "a list of parameter groups 0 (weights), 1 (BN weights), 2 (biases)";
    if (v.kind != RCP_LIST && v.kind != RCP_NUM) return wrong(x, F_PGROUPS, expect, &v);
    if (n == 0) return wrong(x, F_PGROUPS, expect, &v);
    int mask = 0;
    for (int i = 0; i < n; i++) {
        rcp_val it = v;
        rcp_where w = where_of(x, F_PGROUPS);
        if (v.kind == RCP_LIST && rcp_resolve(x->c, v.doc, item(v.doc, v.node, i), &w, &it) != ST_OK)
            return ST_ERR_INPUT;
        if (it.kind != RCP_NUM || (it.num != 0 && it.num != 1 && it.num != 2))
            return wrong(x, F_PGROUPS, "group numbers 0, 1 or 2", &it);
        mask |= 1 << (int)it.num;
    }
    x->m->param_groups = mask;
    return ST_OK;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* lr_kwargs of LearningRateModifier: the torch scheduler's arguments, in epochs. */
st_status rcp_read_lr_kwargs(mod_ctx *x) {
    static const char *const names[] = {"step_size", "milestones", "gamma", "T_0", "T_mult", "eta_min", NULL};
    /* Which kwargs each class takes, and which it needs (bit i = names[i]). */
    static const unsigned takes[] = {1 | 4, 2 | 4, 4, 8 | 16 | 32};
    static const unsigned needs[] = {1, 2, 4, 8};
    static const char *const cls[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingWarmRestarts"};
    st_modifier *m = x->m;
    rcp_val v;
    rcp_where w = where_of(x, F_LR_KWARGS);
    if (get_val(x, F_LR_KWARGS, &v) != ST_OK) return ST_ERR_INPUT;
    if (v.kind != RCP_MAP) return wrong(x, F_LR_KWARGS, "a mapping such as {milestones: [30, 60], gamma: 0.1}", &v);
    m->gamma = 0.1f; /* torch's default for StepLR and MultiStepLR */
    m->t_mult = 1;
    unsigned seen = 0;
    for (yaml_node_pair_t *p = v.node->data.mapping.pairs.start; p < v.node->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(v.doc, p->key);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "?";
        int id = -1;
        for (int i = 0; names[i]; i++)
            if (!strcmp(k, names[i])) id = i;
        char sh[64];
        if (id < 0 || !(takes[m->lr_class] & (1u << id)))
            return rcp_fail(x->c, &w, "'%s' is not an argument of %s here (it takes: %s%s%s%s%s%s)",
                            rcp_shown(sh, sizeof sh, k, 40), cls[m->lr_class],
                            takes[m->lr_class] & 1 ? "step_size " : "", takes[m->lr_class] & 2 ? "milestones " : "",
                            takes[m->lr_class] & 4 ? "gamma " : "", takes[m->lr_class] & 8 ? "T_0 " : "",
                            takes[m->lr_class] & 16 ? "T_mult " : "", takes[m->lr_class] & 32 ? "eta_min" : "");
        if (seen & (1u << id)) return rcp_fail(x->c, &w, "'%s' appears twice", k);
        seen |= 1u << id;
        rcp_val a;
        if (rcp_resolve(x->c, v.doc, yaml_document_get_node(v.doc, p->value), &w, &a) != ST_OK) return ST_ERR_INPUT;
        if (id == 1) {
            int n = a.kind == RCP_LIST ? seq_len(a.node) : -1;
            if (n < 1 || n > ST_MAX_MILESTONES) return wrong(x, F_LR_KWARGS, "milestones: a list of 1 to 32 epochs", &a);
            for (int i = 0; i < n; i++) {
                rcp_val it;
                if (rcp_resolve(x->c, a.doc, item(a.doc, a.node, i), &w, &it) != ST_OK) return ST_ERR_INPUT;
                if (it.kind != RCP_NUM || it.num < 0 || it.num > 1e9)
                    return wrong(x, F_LR_KWARGS, "milestones: epochs >= 0", &it);
                m->milestones[i] = (float)it.num;
            }
            m->n_milestones = n;
            /* torch counts milestones as a multiset; sorted order is what a schedule needs. */
            qsort(m->milestones, (size_t)n, sizeof *m->milestones, cmp_float);
            continue;
        }
        char exp[64];
        snprintf(exp, sizeof exp, "%s: a number", names[id]);
        if (a.kind != RCP_NUM || fabs(a.num) > 1e30) return wrong(x, F_LR_KWARGS, exp, &a);
        double d = a.num;
        int ok = id == 2 ? d > 0 : id == 4 ? d >= 1 : id == 5 ? d >= 0 : d > 0;
        if (!ok)
            return rcp_fail(x->c, &w, "%s must be %s, got %g", names[id],
                            id == 4 ? ">= 1" : id == 5 ? ">= 0" : "> 0", d);
        float *dst[] = {&m->step_size, NULL, &m->gamma, &m->t_0, &m->t_mult, &m->eta_min};
        *dst[id] = (float)d;
    }
    unsigned missing = needs[m->lr_class] & ~seen;
    for (int i = 0; names[i]; i++)
        if (missing & (1u << i)) return rcp_fail(x->c, &w, "%s needs '%s'", cls[m->lr_class], names[i]);
    return ST_OK;
}

