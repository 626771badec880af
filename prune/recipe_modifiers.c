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

#include "recipe_fields.h"

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
    if (x->val[F_PGROUPS] && rcp_read_param_groups(x) != ST_OK) return ST_ERR_INPUT;
    if (x->val[F_CONST_LOG]) {
        int unused = 0;
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
            if (rcp_check_sparsity(x, F_INIT_SP, &v, &s) != ST_OK) return ST_ERR_INPUT;
            m->init_sparsity = (float)s;
        }
        if (rcp_read_sparsity_groups(x) != ST_OK) return ST_ERR_INPUT;
        static const char *const interp[] = {"linear", "cubic", "inverse_cubic", NULL};
        int k;
        if (x->val[F_INTER]) {
            if (get_choice(x, F_INTER, interp, &k) != ST_OK) return ST_ERR_INPUT;
            m->inter_func = (st_interp)k;
        }
        if (x->val[F_MASK] && rcp_read_mask(x) != ST_OK) return ST_ERR_INPUT;
        if (x->val[F_LEAVE] && get_bool(x, F_LEAVE, &m->leave_enabled) != ST_OK) return ST_ERR_INPUT;
        if (x->val[F_GLOBAL] && get_bool(x, F_GLOBAL, &m->global_sparsity) != ST_OK) return ST_ERR_INPUT;
        if (m->kind == ST_MOD_GLOBAL_MAGNITUDE && !m->global_sparsity) {
            rcp_where w = where_of(x, F_GLOBAL);
            return rcp_fail(x->c, &w, "GlobalMagnitudePruningModifier is always global; use "
                                      "MagnitudePruningModifier for layer-wise pruning");
        }
        if (x->val[F_PHASED]) {
            int phased = 0;
            if (get_bool(x, F_PHASED, &phased) != ST_OK) return ST_ERR_INPUT;
            if (phased) return range(x, F_PHASED, 0, "phased pruning is not supported (use false)", 1);
        }
    } else if (m->kind == ST_MOD_CONSTANT) {
        m->n_groups = 1;
        if (!(m->groups = calloc(1, sizeof *m->groups)))
            return st_errorf(x->c->err, ST_ERR_NOMEM, "out of memory reading %s", x->c->file);
        if (rcp_get_params(x, F_PARAMS, x->val[F_PARAMS], x->c->doc, &m->groups[0]) != ST_OK) return ST_ERR_INPUT;
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
            if (rcp_read_lr_kwargs(x) != ST_OK) return ST_ERR_INPUT;
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
        rcp_near near = {tag, NULL, 0};
        char hint[128];
        for (int i = 0; i < N_SPECS; i++) rcp_near_offer(&near, specs[i].tag);
        rcp_near_offer(&near, "QuantizationModifier");
        return rcp_fail(c, &w, "unknown modifier '!%s'%s (known: %sand QuantizationModifier / "
                               "distillation modifiers, which are recognised but not run)", shown,
                        rcp_near_hint(&near, hint, sizeof hint), known);
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
            if (!strcmp(name, rcp_field_names[j])) f = j;
        /* Modifiers that are not run take any field; only their epochs are read. */
        if (!spec && f != F_START && f != F_END) continue;
        char fs[64];
        rcp_shown(fs, sizeof fs, name, 40);
        if (f < 0 || (spec && !(spec->allowed & B(f)))) {
            char known[512] = "";
            for (int j = 0; j < F_COUNT; j++)
                if (spec->allowed & B(j))
                    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", rcp_field_names[j]);
            rcp_near near = {name, NULL, 0};
            char hint[128];
            for (int j = 0; j < F_COUNT; j++)
                if (spec->allowed & B(j)) rcp_near_offer(&near, rcp_field_names[j]);
            return rcp_fail(c, &kw, "unknown field '%s'%s (%s takes: %s)", fs,
                            rcp_near_hint(&near, hint, sizeof hint), m->tag, known);
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
                     n_missing++ ? ", " : "", rcp_field_names[j]);
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
