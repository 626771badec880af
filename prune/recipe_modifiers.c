/* One modifier: its tag picks the kind, its fields are checked against that kind's list,
 * resolved (variables, aliases, eval()), type- and range-checked, and defaults filled in
 * (the defaults of SparseML's modifiers, ../shared/docs/recipes.md).
 *
 * Fields are first collected by name (rejecting unknown and repeated ones), then read in a
 * fixed order, so that checks which need two fields (params with a final_sparsity map,
 * end_epoch >= start_epoch) see both whatever order the recipe wrote them in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe_internal.h"

typedef enum {
    F_START, F_END, F_UPDATE, F_PARAMS, F_INIT_SP, F_FINAL_SP, F_INTER, F_MASK, F_LEAVE,
    F_GLOBAL, F_PHASED, F_LR, F_LR_FUNC, F_INIT_LR, F_FINAL_LR, F_CYCLE, F_LR_CLASS,
    F_LR_KWARGS, F_WD, F_PGROUPS, F_LOG_TYPES, F_CONST_LOG, F_COUNT
} field_id;

static const char *const field_names[F_COUNT] = {
    "start_epoch", "end_epoch", "update_frequency", "params", "init_sparsity", "final_sparsity",
    "inter_func", "mask_type", "leave_enabled", "global_sparsity", "phased", "learning_rate",
    "lr_func", "init_lr", "final_lr", "cycle_epochs", "lr_class", "lr_kwargs", "weight_decay",
    "param_groups", "log_types", "constant_logging"};

#define B(f) (1u << (f))
/* Fields that change nothing here but that SparseML's modifiers take and real recipes
 * carry (logging options); accepted so the files run unchanged. */
#define LOGGING (B(F_LOG_TYPES) | B(F_CONST_LOG))
#define GMP_FIELDS                                                                               \
    (B(F_PARAMS) | B(F_INIT_SP) | B(F_FINAL_SP) | B(F_START) | B(F_END) | B(F_UPDATE) |        \
     B(F_INTER) | B(F_MASK) | B(F_LEAVE) | B(F_PHASED) | B(F_LOG_TYPES))
#define GMP_REQUIRED (B(F_INIT_SP) | B(F_FINAL_SP) | B(F_START) | B(F_END) | B(F_UPDATE))

typedef struct {
    const char *tag;
    st_mod_kind kind;
    unsigned allowed, required;
} mod_spec;

static const mod_spec specs[] = {
    {"EpochRangeModifier", ST_MOD_EPOCH_RANGE, B(F_START) | B(F_END), B(F_END)},
    {"GMPruningModifier", ST_MOD_GMP, GMP_FIELDS | B(F_GLOBAL), GMP_REQUIRED},
    {"MagnitudePruningModifier", ST_MOD_MAGNITUDE, GMP_FIELDS, GMP_REQUIRED},
    {"GlobalMagnitudePruningModifier", ST_MOD_GLOBAL_MAGNITUDE, GMP_FIELDS | B(F_GLOBAL), GMP_REQUIRED},
    {"ConstantPruningModifier", ST_MOD_CONSTANT,
     B(F_PARAMS) | B(F_START) | B(F_END) | B(F_UPDATE) | B(F_LOG_TYPES), B(F_PARAMS)},
    {"SetLearningRateModifier", ST_MOD_SET_LR,
     B(F_LR) | B(F_START) | B(F_END) | B(F_PGROUPS) | LOGGING, B(F_LR)},
    {"LearningRateFunctionModifier", ST_MOD_LR_FUNCTION,
     B(F_LR_FUNC) | B(F_INIT_LR) | B(F_FINAL_LR) | B(F_START) | B(F_END) | B(F_CYCLE) |
         B(F_PGROUPS) | B(F_UPDATE) | LOGGING,
     B(F_LR_FUNC) | B(F_INIT_LR) | B(F_FINAL_LR) | B(F_START) | B(F_END)},
    {"LearningRateModifier", ST_MOD_LR,
     B(F_LR_CLASS) | B(F_LR_KWARGS) | B(F_INIT_LR) | B(F_START) | B(F_END) | B(F_UPDATE) | LOGGING,
     B(F_LR_CLASS) | B(F_LR_KWARGS) | B(F_INIT_LR) | B(F_START)},
    {"SetWeightDecayModifier", ST_MOD_SET_WD,
     B(F_WD) | B(F_START) | B(F_END) | B(F_PGROUPS) | LOGGING, B(F_WD)},
};
#define N_SPECS ((int)(sizeof specs / sizeof specs[0]))

typedef struct {
    rcp_ctx *c;
    st_modifier *m;
    yaml_node_t *key[F_COUNT], *val[F_COUNT];
    char what[F_COUNT][96];
} mod_ctx;

static rcp_where where_of(mod_ctx *x, field_id f) {
    snprintf(x->what[f], sizeof x->what[f], "%s.%s", x->m->tag, field_names[f]);
    rcp_where w = {x->c->file, rcp_node_line(x->key[f]), x->what[f]};
    return w;
}

static st_status get_val(mod_ctx *x, field_id f, rcp_val *v) {
    rcp_where w = where_of(x, f);
    return rcp_resolve(x->c, x->c->doc, x->val[f], &w, v);
}

static st_status wrong(mod_ctx *x, field_id f, const char *expected, const rcp_val *v) {
    char d[160];
    rcp_where w = where_of(x, f);
    return rcp_fail(x->c, &w, "expected %s, got %s", expected, rcp_describe(d, sizeof d, v));
}

/* A number that fits a float (epochs, rates, sparsities). */
static st_status as_num(mod_ctx *x, field_id f, const rcp_val *v, double *out) {
    if (v->kind != RCP_NUM || fabs(v->num) > 1e30) return wrong(x, f, "a number", v);
    *out = v->num;
    return ST_OK;
}

static st_status get_num(mod_ctx *x, field_id f, float *out) {
    rcp_val v;
    double d = 0;
    if (get_val(x, f, &v) != ST_OK || as_num(x, f, &v, &d) != ST_OK) return ST_ERR_INPUT;
    *out = (float)d;
    return ST_OK;
}

static st_status get_bool(mod_ctx *x, field_id f, int *out) {
    rcp_val v;
    if (get_val(x, f, &v) != ST_OK) return ST_ERR_INPUT;
    if (v.kind != RCP_BOOL && !(v.kind == RCP_NUM && (v.num == 0 || v.num == 1)))
        return wrong(x, f, "true or false", &v);
    *out = v.num != 0;
    return ST_OK;
}

/* A string from a fixed list; returns its index. */
static st_status get_choice(mod_ctx *x, field_id f, const char *const *names, int *out) {
    rcp_val v;
    if (get_val(x, f, &v) != ST_OK) return ST_ERR_INPUT;
    if (v.kind == RCP_STR)
        for (int i = 0; names[i]; i++)
            if (!strcmp(v.str, names[i])) return *out = i, ST_OK;
    char exp[256] = "one of ";
    for (int i = 0; names[i]; i++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%s", i ? ", " : "", names[i]);
    return wrong(x, f, exp, &v);
}

static yaml_node_t *item(yaml_document_t *doc, yaml_node_t *seq, int i) {
    return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

static int seq_len(const yaml_node_t *seq) {
    return (int)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* A range check on an already read value. */
static st_status range(mod_ctx *x, field_id f, int ok, const char *rule, double got) {
    if (ok) return ST_OK;
    rcp_where w = where_of(x, f);
    return rcp_fail(x->c, &w, "%s, got %g", rule, got);
}

/* params: one selector or a list of them ("__ALL_PRUNABLE__", "name", "re:..."). An empty
 * list is allowed here; the caller decides (the final_sparsity map form needs one). */
static st_status get_params(mod_ctx *x, field_id f, yaml_node_t *node, yaml_document_t *doc,
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

static st_status check_sparsity(mod_ctx *x, field_id f, const rcp_val *v, double *out) {
    if (as_num(x, f, v, out) != ST_OK) return ST_ERR_INPUT;
    return range(x, f, *out >= 0 && *out < 1, "must be in [0, 1) (1.0 would remove every weight)", *out);
}

/* final_sparsity: a number with params, or {0.9: [names], 0.8: [names]} with params
 * empty or absent: one group per entry. */
static st_status read_sparsity_groups(mod_ctx *x) {
    st_modifier *m = x->m;
    rcp_val fs;
    if (get_val(x, F_FINAL_SP, &fs) != ST_OK) return ST_ERR_INPUT;
    int n = fs.kind == RCP_MAP ? (int)(fs.node->data.mapping.pairs.top - fs.node->data.mapping.pairs.start) : 1;
    if (n == 0) return wrong(x, F_FINAL_SP, "a number or a mapping {sparsity: [params]}", &fs);
    m->groups = calloc((size_t)n, sizeof *m->groups);
    if (!m->groups) return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
    if (fs.kind != RCP_MAP) {
        double s;
        if (check_sparsity(x, F_FINAL_SP, &fs, &s) != ST_OK) return ST_ERR_INPUT;
        m->n_groups = 1;
        m->groups[0].final_sparsity = (float)s;
        if (!x->val[F_PARAMS]) {
            rcp_where w = {x->c->file, m->line, m->tag};
            return rcp_fail(x->c, &w, "missing field 'params' (the parameters to prune, e.g. __ALL_PRUNABLE__)");
        }
        if (get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &m->groups[0]) != ST_OK) return ST_ERR_INPUT;
        if (m->groups[0].n_params == 0) {
            rcp_where w = where_of(x, F_PARAMS);
            return rcp_fail(x->c, &w, "empty list: name the parameters to prune (e.g. __ALL_PRUNABLE__)");
        }
        return ST_OK;
    }
    if (x->val[F_PARAMS]) {
        st_sparsity_group tmp = {0};
        st_status st = get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &tmp);
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
            check_sparsity(x, F_FINAL_SP, &k, &s) != ST_OK)
            return ST_ERR_INPUT;
        m->groups[i].final_sparsity = (float)s;
        m->n_groups = i + 1;
        if (get_params(x, F_FINAL_SP, yaml_document_get_node(fs.doc, p->value), fs.doc, &m->groups[i]) != ST_OK)
            return ST_ERR_INPUT;
        if (m->groups[i].n_params == 0) return range(x, F_FINAL_SP, 0, "each sparsity needs parameters", s);
    }
    return ST_OK;
}

/* mask_type: "unstructured", "block4"/"block" (= [1, 4]), [1, M], or "N:M". */
static st_status read_mask(mod_ctx *x) {
    st_modifier *m = x->m;
    rcp_val v;
    if (get_val(x, F_MASK, &v) != ST_OK) return ST_ERR_INPUT;
    const char *expect = "unstructured, block4, [1, M] or N:M (e.g. 2:4)";
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
            return wrong(x, F_MASK, "[1, M] with M a whole number from 1 to 1024", &it);
        d[i] = it.num;
    }
    if (d[0] != 1) return range(x, F_MASK, 0, "only [1, M] blocks (along input channels) are supported; first entry", d[0]);
    if (d[1] > 1) m->mask_type = ST_MASK_BLOCK, m->mask_n = 1, m->mask_m = (int)d[1];
    return ST_OK;
}

/* param_groups: [0, 1, 2] subsets -> bit mask. */
static st_status read_param_groups(mod_ctx *x) {
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
static st_status read_lr_kwargs(mod_ctx *x) {
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

/* start/end/update_frequency, shared by every kind. */
static st_status read_schedule(mod_ctx *x) {
    st_modifier *m = x->m;
    if (x->val[F_START] && get_num(x, F_START, &m->start_epoch) != ST_OK) return ST_ERR_INPUT;
    if (x->val[F_END] && get_num(x, F_END, &m->end_epoch) != ST_OK) return ST_ERR_INPUT;
    if (x->val[F_UPDATE] && get_num(x, F_UPDATE, &m->update_frequency) != ST_OK) return ST_ERR_INPUT;
    float s = m->start_epoch, e = m->end_epoch;
    if (range(x, F_START, s >= 0 || s == -1, "must be >= 0 (or -1: from the start)", s) != ST_OK ||
        range(x, F_END, e >= 0 || e == -1, "must be >= 0 (or -1: until the end)", e) != ST_OK)
        return ST_ERR_INPUT;
    if (e != -1 && s != -1 && e < s) {
        rcp_where w = where_of(x, F_END);
        return rcp_fail(x->c, &w, "end_epoch %g is before start_epoch %g", e, s);
    }
    float u = m->update_frequency;
    return range(x, F_UPDATE, u > 0 || u == -1, "must be > 0 (or -1: every step)", u);
}

static st_status read_fields(mod_ctx *x) {
    st_modifier *m = x->m;
    int pruning = m->kind == ST_MOD_GMP || m->kind == ST_MOD_MAGNITUDE || m->kind == ST_MOD_GLOBAL_MAGNITUDE;
    if (read_schedule(x) != ST_OK) return ST_ERR_INPUT;
    if (x->val[F_PGROUPS] && read_param_groups(x) != ST_OK) return ST_ERR_INPUT;
    if (x->val[F_CONST_LOG]) {
        int unused;
        if (get_bool(x, F_CONST_LOG, &unused) != ST_OK) return ST_ERR_INPUT;
    }
    if (pruning || m->kind == ST_MOD_LR_FUNCTION || m->kind == ST_MOD_EPOCH_RANGE) {
        /* The interpolation (and the run's length) needs an end; -1 as a start means 0. */
        if (m->end_epoch == -1) {
            rcp_where w = where_of(x, F_END);
            return rcp_fail(x->c, &w, "%s needs an end epoch (-1 is not allowed here)", m->tag);
        }
        if (m->start_epoch == -1) m->start_epoch = 0;
    }
    if (pruning) {
        rcp_val v;
        if (get_val(x, F_INIT_SP, &v) != ST_OK) return ST_ERR_INPUT;
        if (v.kind == RCP_STR && !strcmp(v.str, "__FROM_PARAM__")) {
            m->init_from_param = 1;
        } else {
            double s;
            if (v.kind != RCP_NUM) return wrong(x, F_INIT_SP, "a number or __FROM_PARAM__", &v);
            if (check_sparsity(x, F_INIT_SP, &v, &s) != ST_OK) return ST_ERR_INPUT;
            m->init_sparsity = (float)s;
        }
        if (read_sparsity_groups(x) != ST_OK) return ST_ERR_INPUT;
        static const char *const interp[] = {"linear", "cubic", "inverse_cubic", NULL};
        int k;
        if (x->val[F_INTER]) {
            if (get_choice(x, F_INTER, interp, &k) != ST_OK) return ST_ERR_INPUT;
            m->inter_func = (st_interp)k;
        }
        if (x->val[F_MASK] && read_mask(x) != ST_OK) return ST_ERR_INPUT;
        if (x->val[F_LEAVE] && get_bool(x, F_LEAVE, &m->leave_enabled) != ST_OK) return ST_ERR_INPUT;
        if (x->val[F_GLOBAL] && get_bool(x, F_GLOBAL, &m->global_sparsity) != ST_OK) return ST_ERR_INPUT;
        if (m->kind == ST_MOD_GLOBAL_MAGNITUDE && !m->global_sparsity) {
            rcp_where w = where_of(x, F_GLOBAL);
            return rcp_fail(x->c, &w, "GlobalMagnitudePruningModifier is always global; use "
                                      "MagnitudePruningModifier for layer-wise pruning");
        }
        if (x->val[F_PHASED]) {
            int phased;
            if (get_bool(x, F_PHASED, &phased) != ST_OK) return ST_ERR_INPUT;
            if (phased) return range(x, F_PHASED, 0, "phased pruning is not supported (use false)", 1);
        }
    } else if (m->kind == ST_MOD_CONSTANT) {
        m->n_groups = 1;
        if (!(m->groups = calloc(1, sizeof *m->groups)))
            return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
        if (get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &m->groups[0]) != ST_OK) return ST_ERR_INPUT;
        if (m->groups[0].n_params == 0)
            return range(x, F_PARAMS, 0, "empty list: name the parameters to hold (e.g. __ALL_PRUNABLE__)", 0);
    } else if (m->kind == ST_MOD_SET_LR) {
        if (get_num(x, F_LR, &m->learning_rate) != ST_OK ||
            range(x, F_LR, m->learning_rate >= 0, "must be >= 0", m->learning_rate) != ST_OK)
            return ST_ERR_INPUT;
    } else if (m->kind == ST_MOD_SET_WD) {
        if (get_num(x, F_WD, &m->weight_decay) != ST_OK ||
            range(x, F_WD, m->weight_decay >= 0, "must be >= 0", m->weight_decay) != ST_OK)
            return ST_ERR_INPUT;
    } else if (m->kind == ST_MOD_LR_FUNCTION || m->kind == ST_MOD_LR) {
        if (get_num(x, F_INIT_LR, &m->init_lr) != ST_OK ||
            range(x, F_INIT_LR, m->init_lr >= 0, "must be >= 0", m->init_lr) != ST_OK)
            return ST_ERR_INPUT;
        int k;
        if (m->kind == ST_MOD_LR_FUNCTION) {
            static const char *const fns[] = {"linear", "cosine", "cyclic_linear", NULL};
            if (get_choice(x, F_LR_FUNC, fns, &k) != ST_OK) return ST_ERR_INPUT;
            m->lr_func = (st_lr_func)k;
            if (get_num(x, F_FINAL_LR, &m->final_lr) != ST_OK ||
                range(x, F_FINAL_LR, m->final_lr >= 0, "must be >= 0", m->final_lr) != ST_OK)
                return ST_ERR_INPUT;
            if (x->val[F_CYCLE] && (get_num(x, F_CYCLE, &m->cycle_epochs) != ST_OK ||
                                    range(x, F_CYCLE, m->cycle_epochs > 0, "must be > 0", m->cycle_epochs) != ST_OK))
                return ST_ERR_INPUT;
            if (m->end_epoch <= m->start_epoch)
                return range(x, F_END, 0, "must be after start_epoch (the LR function spans the range)", m->end_epoch);
        } else {
            static const char *const cls[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingWarmRestarts", NULL};
            if (get_choice(x, F_LR_CLASS, cls, &k) != ST_OK) return ST_ERR_INPUT;
            m->lr_class = (st_lr_class)k;
            if (read_lr_kwargs(x) != ST_OK) return ST_ERR_INPUT;
            if (m->start_epoch == -1) m->start_epoch = 0;
        }
    }
    return ST_OK;
}

static void set_defaults(st_modifier *m) {
    m->start_epoch = -1;
    m->end_epoch = -1;
    m->update_frequency = -1;
    m->inter_func = ST_INTERP_CUBIC;
    m->mask_type = ST_MASK_UNSTRUCTURED;
    m->mask_n = m->mask_m = 1;
    m->leave_enabled = 1;
    m->global_sparsity = m->kind == ST_MOD_GLOBAL_MAGNITUDE;
    m->cycle_epochs = 1.0f;
    m->param_groups = 7;
    if (m->kind == ST_MOD_EPOCH_RANGE) m->start_epoch = 0;
}

/* QuantizationModifier, KnowledgeDistillationModifier and the like. */
static const char *not_run_what(const char *tag) {
    if (strstr(tag, "Quantization")) return "quantization";
    if (strstr(tag, "Distillation")) return "distillation";
    return NULL;
}

st_status rcp_parse_modifier(rcp_ctx *c, yaml_node_t *node, st_modifier *m) {
    rcp_where w = {c->file, rcp_node_line(node), NULL};
    m->line = w.line;
    if (!rcp_is_tagged(node)) {
        if (node->type == YAML_MAPPING_NODE)
            return rcp_fail(c, &w, "a modifier needs its type as a tag, e.g. '- !GMPruningModifier'");
        return rcp_fail(c, &w, "expected a modifier ('- !GMPruningModifier' followed by its fields), "
                               "got a %s", node->type == YAML_SEQUENCE_NODE ? "list" : "plain value");
    }
    char shown[96];
    const char *tag = (const char *)node->tag;
    if (tag[0] == '!') tag++;
    rcp_shown(shown, sizeof shown, tag, 60);
    if (strlen(tag) >= sizeof m->tag || !*tag) return rcp_fail(c, &w, "unknown modifier '!%s'", shown);
    strcpy(m->tag, tag);
    const mod_spec *spec = NULL;
    for (int i = 0; i < N_SPECS; i++)
        if (!strcmp(tag, specs[i].tag)) spec = &specs[i];
    const char *nr = not_run_what(tag);
    if (!spec && !nr) {
        char known[700] = "";
        for (int i = 0; i < N_SPECS; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ", specs[i].tag);
        return rcp_fail(c, &w, "unknown modifier '!%s' (known: %sand QuantizationModifier / "
                               "distillation modifiers, which are recognised but not run)", shown, known);
    }
    m->kind = spec ? spec->kind : ST_MOD_NOT_RUN;
    set_defaults(m);
    mod_ctx x = {.c = c, .m = m};
    int n_pairs = node->type == YAML_MAPPING_NODE
                      ? (int)(node->data.mapping.pairs.top - node->data.mapping.pairs.start) : 0;
    for (int i = 0; i < n_pairs; i++) {
        yaml_node_pair_t *p = &node->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        rcp_where kw = {c->file, rcp_node_line(k), m->tag};
        if (k->type != YAML_SCALAR_NODE) return rcp_fail(c, &kw, "a field name must be plain text");
        const char *name = (const char *)k->data.scalar.value;
        int f = -1;
        for (int j = 0; j < F_COUNT; j++)
            if (!strcmp(name, field_names[j])) f = j;
        /* Modifiers that are not run take any field; only their epochs are read. */
        if (!spec && f != F_START && f != F_END) continue;
        char fs[64];
        rcp_shown(fs, sizeof fs, name, 40);
        if (f < 0 || (spec && !(spec->allowed & B(f)))) {
            char known[512] = "";
            for (int j = 0; j < F_COUNT; j++)
                if (spec->allowed & B(j))
                    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", field_names[j]);
            return rcp_fail(c, &kw, "unknown field '%s' (%s takes: %s)", fs, m->tag, known);
        }
        if (x.key[f]) return rcp_fail(c, &kw, "field '%s' appears twice", fs);
        x.key[f] = k;
        x.val[f] = yaml_document_get_node(c->doc, p->value);
    }
    if (!spec) {
        if (read_schedule(&x) != ST_OK) return ST_ERR_INPUT;
        char msg[300];
        snprintf(msg, sizeof msg, "%s:%d: %s is recognised but not run (%s is not supported yet)",
                 c->file, m->line, m->tag, nr);
        if (c->strict) return st_errorf(c->err, ST_ERR_INPUT, "%s; --strict makes this an error", msg);
        if (c->log) fprintf(c->log, "%s\n", msg);
        return ST_OK;
    }
    char missing[400] = "";
    int n_missing = 0;
    for (int j = 0; j < F_COUNT; j++)
        if ((spec->required & B(j)) && !x.key[j])
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s'%s'",
                     n_missing++ ? ", " : "", field_names[j]);
    if (n_missing) return rcp_fail(c, &w, "%s: missing field%s %s", m->tag, n_missing > 1 ? "s" : "", missing);
    return read_fields(&x);
}

void rcp_modifier_free(st_modifier *m) {
    for (int g = 0; g < m->n_groups; g++) {
        for (int i = 0; i < m->groups[g].n_params; i++) free(m->groups[g].params[i]);
        free(m->groups[g].params);
    }
    free(m->groups);
    m->groups = NULL;
    m->n_groups = 0;
}
