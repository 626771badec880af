/* Values in a recipe: YAML scalars read as PyYAML (SparseML's loader) reads them, aliases of
 * overridden variables, variables resolved lazily with cycle detection, and the message
 * helpers every part of the parser shares. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe_internal.h"

/* ------------------------------------------------------------------ helpers */

char *rcp_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

const char *rcp_shown(char *buf, size_t cap, const char *s, size_t max) {
    size_t j = 0, i = 0;
    if (cap == 0) return buf;
    for (; s[i] && j + 5 < cap && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F) j += (size_t)snprintf(buf + j, cap - j, "\\x%02X", ch);
        else buf[j++] = (char)ch;
    }
    if (s[i] && j + 4 <= cap) memcpy(buf + j, "...", 3), j += 3;
    buf[j] = 0;
    return buf;
}

const char *rcp_describe(char *buf, size_t cap, const rcp_val *v) {
    char tmp[128];
    switch (v->kind) {
    case RCP_NUM: snprintf(buf, cap, "%g", v->num); break;
    case RCP_BOOL: snprintf(buf, cap, "%s", v->num ? "true" : "false"); break;
    case RCP_STR: snprintf(buf, cap, "'%s'", rcp_shown(tmp, sizeof tmp, v->str, 80)); break;
    case RCP_LIST: snprintf(buf, cap, "a list"); break;
    case RCP_MAP: snprintf(buf, cap, "a mapping"); break;
    default: snprintf(buf, cap, "nothing (an empty value)"); break;
    }
    return buf;
}

int rcp_node_line(const yaml_node_t *n) { return n ? (int)n->start_mark.line + 1 : 0; }

int rcp_is_tagged(const yaml_node_t *n) {
    if (!n || !n->tag || strncmp((const char *)n->tag, "tag:yaml.org,2002:", 18) == 0) return 0;
    return n->type == YAML_MAPPING_NODE ||
           (n->type == YAML_SCALAR_NODE && n->data.scalar.value[0] == 0);
}

st_status rcp_fail(rcp_ctx *c, const rcp_where *w, const char *fmt, ...) {
    char msg[768], pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w && w->line > 0) snprintf(pre, sizeof pre, "%s:%d: ", w->file, w->line);
    else snprintf(pre, sizeof pre, "%s: ", w ? w->file : c->file);
    if (w && w->what && *w->what)
        snprintf(pre + strlen(pre), sizeof pre - strlen(pre), "%s: ", w->what);
    return st_errorf(c->err, ST_ERR_INPUT, "%s%s", pre, msg);
}

void rcp_list_vars(const rcp_ctx *c, char *buf, size_t cap) {
    size_t j = strlen(buf);
    if (c->n_vars == 0) {
        snprintf(buf + j, cap - j, "none");
        return;
    }
    for (int i = 0; i < c->n_vars; i++) {
        char nm[64];
        rcp_shown(nm, sizeof nm, c->vars[i].name, 40);
        if (j + strlen(nm) + 8 >= cap) {
            snprintf(buf + j, cap - j, "...");
            return;
        }
        j += (size_t)snprintf(buf + j, cap - j, "%s%s", i ? ", " : "", nm);
    }
}

void rcp_near_offer(rcp_near *n, const char *cand) {
    int d = st_edit_distance(n->want, cand);
    if (d > 0 && (!n->best || d < n->dist)) n->best = cand, n->dist = d;
}

const char *rcp_near_hint(const rcp_near *n, char *buf, size_t cap) {
    char sh[80];
    buf[0] = 0;
    if (n->best && n->dist <= 2 && 2 * n->dist < (int)strlen(n->want))
        snprintf(buf, cap, " (did you mean '%s'?)", rcp_shown(sh, sizeof sh, n->best, 60));
    return buf;
}

/* ------------------------------------------------------------------ scalars */

/* A decimal number as YAML/Python write it: [+-]digits[.digits][e[+-]digits], or .5 */
static int parse_number(const char *s, double *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    int digits = 0;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, digits++;
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p) return 0;
    double v = strtod(s, NULL);
    if (!isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int is_one_of(const char *s, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

/* YAML 1.1 (PyYAML) plain scalars: null, booleans including yes/no/on/off, numbers. */
static void classify_plain(const char *s, rcp_val *out) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (is_one_of(s, nulls)) out->kind = RCP_NULL;
    else if (is_one_of(s, trues)) out->kind = RCP_BOOL, out->num = 1;
    else if (is_one_of(s, falses)) out->kind = RCP_BOOL, out->num = 0;
    else if (parse_number(s, &out->num)) out->kind = RCP_NUM;
    else out->kind = RCP_STR, out->str = s;
}

st_status rcp_resolve(rcp_ctx *c, yaml_document_t *doc, yaml_node_t *node, const rcp_where *w,
                      rcp_val *out) {
    memset(out, 0, sizeof *out);
    /* `end_epoch: *num_epochs` shares the variable's node: an override of num_epochs must
     * reach it too, or --recipe-args would silently miss every alias. */
    if (doc == c->doc)
        for (int i = 0; i < c->n_vars; i++)
            if (c->vars[i].overridden && c->vars[i].orig == node) return rcp_var_get(c, i, out);
    if (!node) {
        out->kind = RCP_NULL;
        return ST_OK;
    }
    if (node->type == YAML_SEQUENCE_NODE || node->type == YAML_MAPPING_NODE) {
        out->kind = node->type == YAML_SEQUENCE_NODE ? RCP_LIST : RCP_MAP;
        out->doc = doc;
        out->node = node;
        return ST_OK;
    }
    const char *s = (const char *)node->data.scalar.value;
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) classify_plain(s, out);
    else out->kind = RCP_STR, out->str = s;
    if (out->kind != RCP_STR) return ST_OK;
    /* eval(...), quoted or not, with blanks around it allowed. */
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n < 6 || strncmp(s, "eval(", 5) != 0 || s[n - 1] != ')') return ST_OK;
    char *expr = malloc(n - 5);
    if (!expr) return st_errorf(c->err, ST_ERR_NOMEM, "out of memory evaluating %s", c->file);
    memcpy(expr, s + 5, n - 6);
    expr[n - 6] = 0;
    st_status st = rcp_eval(c, expr, w, out);
    free(expr);
    return st;
}

/* ------------------------------------------------------------------ variables */

int rcp_var_find(const rcp_ctx *c, const char *name) {
    for (int i = 0; i < c->n_vars; i++)
        if (!strcmp(c->vars[i].name, name)) return i;
    return -1;
}

st_status rcp_var_get(rcp_ctx *c, int i, rcp_val *out) {
    rcp_var *v = &c->vars[i];
    if (v->state == 2) {
        *out = v->val;
        return ST_OK;
    }
    if (v->state == 1) {
        /* The chain from where v was first entered, back to v: "a -> b -> a". */
        char chain[600] = "", nm[64];
        int from = c->depth - 1;
        while (from > 0 && c->stack[from] != i) from--;
        for (int k = from; k < c->depth; k++) {
            size_t j = strlen(chain);
            snprintf(chain + j, sizeof chain - j, "%s -> ",
                     rcp_shown(nm, sizeof nm, c->vars[c->stack[k]].name, 40));
        }
        size_t j = strlen(chain);
        snprintf(chain + j, sizeof chain - j, "%s", rcp_shown(nm, sizeof nm, v->name, 40));
        rcp_where w = {c->file, c->vars[c->stack[from]].line, NULL};
        return rcp_fail(c, &w, "eval cycle: %s", chain);
    }
    char what[128], nm[64];
    snprintf(what, sizeof what, "variable %s", rcp_shown(nm, sizeof nm, v->name, 40));
    rcp_where w = {v->overridden ? "--recipe-args" : c->file, v->overridden ? 0 : v->line, what};
    if (c->depth >= RCP_MAX_VAR_DEPTH)
        return rcp_fail(c, &w, "variables refer to each other more than %d deep", RCP_MAX_VAR_DEPTH);
    v->state = 1;
    c->stack[c->depth++] = i;
    st_status st = rcp_resolve(c, v->doc, v->value, &w, &v->val);
    c->depth--;
    v->state = st == ST_OK ? 2 : 0;
    if (st == ST_OK) *out = v->val;
    return st;
}
