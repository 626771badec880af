/* Internals shared by the recipe parser; not part of the public API:
 *   recipe_yaml.c       files, front matter, top level, overrides, lifetime
 *   recipe_values.c     scalars, variables, message helpers
 *   recipe_eval.c       the eval() expression language
 *   recipe_modifiers.c  modifier kinds, their fields and defaults (+ recipe_fields.[ch])
 *   recipe_print.c      st_recipe_print
 *
 * The parser keeps libyaml's documents alive while it works: values are looked at in place
 * (rcp_val points into the nodes) and only the resolved modifiers are copied into the
 * st_recipe. libyaml resolves aliases into shared nodes, and `&a [*a]` even makes a node
 * that contains itself, so nothing here walks a node tree recursively: values are
 * scalars, lists of scalars, or (for two fields) one mapping level. */
#ifndef ST_RECIPE_INTERNAL_H
#define ST_RECIPE_INTERNAL_H

#include <yaml.h>

#include "st_recipe.h"

/* Bounds that turn hostile input into errors instead of deep recursion: variables that
 * refer to variables, and parentheses / unary signs inside one eval(). */
#define RCP_MAX_VAR_DEPTH 64
#define RCP_MAX_EXPR_DEPTH 100

typedef enum { RCP_NULL, RCP_BOOL, RCP_NUM, RCP_STR, RCP_LIST, RCP_MAP } rcp_kind;

/* A resolved value. Strings, lists and mappings point into a YAML document that outlives
 * the parse (the recipe's, or the --recipe-args one). */
typedef struct {
    rcp_kind kind;
    double num;              /* RCP_NUM; RCP_BOOL as 0 / 1 */
    const char *str;         /* RCP_STR */
    yaml_document_t *doc;    /* RCP_LIST, RCP_MAP: the node's document */
    yaml_node_t *node;
} rcp_val;

/* Where a value sits, for messages: "FILE:LINE: WHAT: ...". line <= 0: no line. */
typedef struct {
    const char *file;
    int line;
    const char *what; /* "GMPruningModifier.final_sparsity", "variable num_epochs" */
} rcp_where;

typedef struct {
    const char *name;        /* points into the recipe document */
    int line;
    yaml_document_t *doc;    /* where value lives: the recipe, or the overrides */
    yaml_node_t *value;
    yaml_node_t *orig;       /* the recipe's own node: aliases of it see an override */
    int overridden;
    int state;               /* 0 not resolved, 1 being resolved (cycle check), 2 done */
    rcp_val val;
} rcp_var;

typedef struct {
    const char *file;        /* the name shown in messages (control bytes escaped) */
    yaml_document_t *doc;    /* the recipe */
    rcp_var *vars;
    int n_vars;
    int stack[RCP_MAX_VAR_DEPTH]; /* variables being resolved, innermost last */
    int depth;
    int strict;
    FILE *log;
    st_error *err;
} rcp_ctx;

/* recipe_values.c */
/* Classifies a node (YAML 1.1 plain scalars as PyYAML reads them: null, bool, number),
 * follows an alias of an overridden variable to its override, and evaluates eval(...)
 * strings. Errors are ST_ERR_INPUT with the message already in c->err. */
st_status rcp_resolve(rcp_ctx *c, yaml_document_t *doc, yaml_node_t *node, const rcp_where *w,
                      rcp_val *out);
/* The value of variable i, resolved once (lazily, with cycle detection). */
st_status rcp_var_get(rcp_ctx *c, int i, rcp_val *out);
int rcp_var_find(const rcp_ctx *c, const char *name);
/* Appends "a, b, c" (the variable names, cut short with "..." to fit) to buf. */
void rcp_list_vars(const rcp_ctx *c, char *buf, size_t cap);

/* recipe_eval.c: evaluates the inside of eval(...). */
st_status rcp_eval(rcp_ctx *c, const char *expr, const rcp_where *w, rcp_val *out);

/* recipe_modifiers.c */
/* Parses one list item of a modifier group into *m (zeroed by the caller). */
st_status rcp_parse_modifier(rcp_ctx *c, yaml_node_t *item, st_modifier *m);
void rcp_modifier_free(st_modifier *m);

/* Helpers (recipe_values.c). */
/* Formats "FILE:LINE: WHAT: " + the message into c->err; returns ST_ERR_INPUT. */
st_status rcp_fail(rcp_ctx *c, const rcp_where *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s made safe for a one-line message: control bytes as \xNN, cut at max bytes with "...". */
const char *rcp_shown(char *buf, size_t cap, const char *s, size_t max);
/* How a value reads in a message: 0.5, 'abc', true, a list, a mapping, nothing. */
const char *rcp_describe(char *buf, size_t cap, const rcp_val *v);
int rcp_node_line(const yaml_node_t *n);
/* A mapping with a tag of its own (!GMPruningModifier): YAML's default tags start with
 * "tag:yaml.org,2002:". Tagged empty scalars count too (`- !Modifier` with no fields). */
int rcp_is_tagged(const yaml_node_t *n);
char *rcp_strdup(const char *s);
/* "Did you mean": offer each candidate, then rcp_near_hint gives " (did you mean 'x'?)" for
 * the closest one within 2 edits (and under half the name), or "". */
typedef struct {
    const char *want, *best;
    int dist;
} rcp_near;
void rcp_near_offer(rcp_near *n, const char *cand);
const char *rcp_near_hint(const rcp_near *n, char *buf, size_t cap);

#endif
