/* Reading the fields of one modifier (recipe_modifiers.c picks the kind and the fields,
 * recipe_fields.c holds the readers of the structured ones); internal to the parser.
 * Every reader reports "FILE:LINE: Tag.field: ..." with the line of the field's key: the
 * value node of an alias is shared and carries the line of its anchor instead. */
#ifndef ST_RECIPE_FIELDS_H
#define ST_RECIPE_FIELDS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "recipe_internal.h"

typedef enum {
    F_START, F_END, F_UPDATE, F_PARAMS, F_INIT_SP, F_FINAL_SP, F_INTER, F_MASK, F_LEAVE,
    F_GLOBAL, F_PHASED, F_LR, F_LR_FUNC, F_INIT_LR, F_FINAL_LR, F_CYCLE, F_LR_CLASS,
    F_LR_KWARGS, F_WD, F_PGROUPS, F_LOG_TYPES, F_CONST_LOG, F_COUNT
} field_id;

extern const char *const rcp_field_names[F_COUNT];

/* One modifier being read: its fields' key and value nodes, collected by name. */
typedef struct {
    rcp_ctx *c;
    st_modifier *m;
    yaml_node_t *key[F_COUNT], *val[F_COUNT];
    char what[F_COUNT][96];
} mod_ctx;

static inline rcp_where where_of(mod_ctx *x, field_id f) {
    snprintf(x->what[f], sizeof x->what[f], "%s.%s", x->m->tag, rcp_field_names[f]);
    rcp_where w = {x->c->file, rcp_node_line(x->key[f]), x->what[f]};
    return w;
}

static inline st_status get_val(mod_ctx *x, field_id f, rcp_val *v) {
    rcp_where w = where_of(x, f);
    return rcp_resolve(x->c, x->c->doc, x->val[f], &w, v);
}

static inline st_status wrong(mod_ctx *x, field_id f, const char *expected, const rcp_val *v) {
    char d[160];
    rcp_where w = where_of(x, f);
    return rcp_fail(x->c, &w, "expected %s, got %s", expected, rcp_describe(d, sizeof d, v));
}

/* A number that fits a float (epochs, rates, sparsities). */
static inline st_status as_num(mod_ctx *x, field_id f, const rcp_val *v, double *out) {
    if (v->kind != RCP_NUM || fabs(v->num) > 1e30) return wrong(x, f, "a number", v);
    *out = v->num;
    return ST_OK;
}

static inline st_status get_num(mod_ctx *x, field_id f, float *out) {
    rcp_val v;
    double d = 0;
    if (get_val(x, f, &v) != ST_OK || as_num(x, f, &v, &d) != ST_OK) return ST_ERR_INPUT;
    *out = (float)d;
    return ST_OK;
}

static inline st_status get_bool(mod_ctx *x, field_id f, int *out) {
    rcp_val v;
    if (get_val(x, f, &v) != ST_OK) return ST_ERR_INPUT;
    if (v.kind != RCP_BOOL && !(v.kind == RCP_NUM && (v.num == 0 || v.num == 1)))
        return wrong(x, f, "true or false", &v);
    *out = v.num != 0;
    return ST_OK;
}

/* A string from a fixed list; returns its index. */
static inline st_status get_choice(mod_ctx *x, field_id f, const char *const *names, int *out) {
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

static inline yaml_node_t *item(yaml_document_t *doc, yaml_node_t *seq, int i) {
    return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

static inline int seq_len(const yaml_node_t *seq) {
    return (int)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* A range check on an already read value. */
static inline st_status range(mod_ctx *x, field_id f, int ok, const char *rule, double got) {
    if (ok) return ST_OK;
    rcp_where w = where_of(x, f);
    return rcp_fail(x->c, &w, "%s, got %g", rule, got);
}

/* params (one selector or a list) into g; an empty list is left to the caller. */
st_status rcp_get_params(mod_ctx *x, field_id f, yaml_node_t *node, yaml_document_t *doc,
                         st_sparsity_group *g);
/* A sparsity in [0, 1). */
st_status rcp_check_sparsity(mod_ctx *x, field_id f, const rcp_val *v, double *out);
st_status rcp_read_sparsity_groups(mod_ctx *x); /* final_sparsity (+ params) -> groups */
st_status rcp_read_mask(mod_ctx *x);
st_status rcp_read_param_groups(mod_ctx *x);
st_status rcp_read_lr_kwargs(mod_ctx *x);

#endif
