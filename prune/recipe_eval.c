/* Values in a recipe: YAML scalars read as PyYAML (SparseML's loader) reads them, variables
 * resolved lazily with cycle detection, and the eval() expression language.
 *
 * eval(EXPR) follows Python's semantics for the subset SparseML recipes use: numbers,
 * variable names, + - * / // % ** (right-associative, binding tighter than a unary minus
 * on its left: -2**2 == -4), unary + and -, parentheses, and the calls abs float int min
 * max round. Everything is a double; // and % floor like Python's float operators, round
 * is half-to-even. Division by zero, 0 ** -1, a negative base with a fractional exponent
 * and overflow are errors (Python raises; a silent inf would become an epoch count). */
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

/* ------------------------------------------------------------------ eval() */

typedef struct {
    rcp_ctx *c;
    const rcp_where *w;
    const char *expr, *p;
    int depth;
} ev;

static st_status ev_fail(ev *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static st_status ev_fail(ev *e, const char *fmt, ...) {
    char msg[512], ex[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rcp_fail(e->c, e->w, "eval(%s): %s", rcp_shown(ex, sizeof ex, e->expr, 120), msg);
}

static void skip_ws(ev *e) {
    while (*e->p == ' ' || *e->p == '\t' || *e->p == '\n' || *e->p == '\r') e->p++;
}

/* What stands at the cursor, for "unexpected ..." messages. */
static const char *here(ev *e, char *buf, size_t cap) {
    if (!*e->p) return "end of expression";
    char tok[40];
    size_t n = 0;
    if (isalnum((unsigned char)*e->p) || *e->p == '_' || *e->p == '.')
        while ((isalnum((unsigned char)e->p[n]) || e->p[n] == '_' || e->p[n] == '.') && n < 30) n++;
    else n = 1;
    memcpy(tok, e->p, n);
    tok[n] = 0;
    char sh[80];
    snprintf(buf, cap, "'%s' at character %d", rcp_shown(sh, sizeof sh, tok, 30), (int)(e->p - e->expr) + 1);
    return buf;
}

static st_status need_num(ev *e, const rcp_val *v, const char *op) {
    if (v->kind == RCP_NUM || v->kind == RCP_BOOL) return ST_OK;
    char d[160];
    return ev_fail(e, "%s needs a number, got %s", op, rcp_describe(d, sizeof d, v));
}

static st_status finite_or_fail(ev *e, double x, rcp_val *out) {
    if (!isfinite(x)) return ev_fail(e, "the result is too large (overflow)");
    out->kind = RCP_NUM;
    out->num = x;
    return ST_OK;
}

static st_status parse_sum(ev *e, rcp_val *out);
static st_status parse_unary(ev *e, rcp_val *out);

/* Python's float floor division and modulo (Objects/floatobject.c: float_divmod). */
static void py_divmod(double a, double b, double *div_out, double *mod_out) {
    double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    double fl;
    if (div != 0) {
        fl = floor(div);
        if (div - fl > 0.5) fl += 1.0;
    } else {
        fl = copysign(0.0, a / b);
    }
    *div_out = fl;
    *mod_out = mod;
}

static st_status call(ev *e, const char *fn, rcp_val *args, int n, rcp_val *out) {
    for (int i = 0; i < n; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s()", fn);
        if (need_num(e, &args[i], what) != ST_OK) return ST_ERR_INPUT;
    }
    double x = n ? args[0].num : 0;
    if (!strcmp(fn, "abs") || !strcmp(fn, "float") || !strcmp(fn, "int")) {
        if (n != 1) return ev_fail(e, "%s() takes exactly one argument (%d given)", fn, n);
        if (fn[0] == 'a') x = fabs(x);
        else if (fn[0] == 'i') x = trunc(x);
        return finite_or_fail(e, x, out);
    }
    if (!strcmp(fn, "round")) {
        if (n != 1 && n != 2) return ev_fail(e, "round() takes 1 or 2 arguments (%d given)", n);
        if (n == 1) return finite_or_fail(e, nearbyint(x), out); /* half to even */
        double nd = args[1].num;
        if (nd != trunc(nd) || fabs(nd) > 300) return ev_fail(e, "round(): ndigits must be a whole number");
        double y;
        if (nd >= 0) {
            /* Python rounds the exact binary value (2.675 is 2.67499.. -> 2.67, where
             * x * 100 would round up to 267.5 first); printf does the same, ties to even. */
            char buf[700];
            snprintf(buf, sizeof buf, "%.*f", (int)nd, x);
            y = strtod(buf, NULL);
        } else {
            double p = pow(10.0, -nd);
            y = nearbyint(x / p) * p;
        }
        return finite_or_fail(e, isfinite(y) ? y : x, out);
    }
    /* min / max */
    if (n < 2) return ev_fail(e, "%s() needs at least 2 arguments (%d given)", fn, n);
    for (int i = 1; i < n; i++)
        if (fn[1] == 'i' ? args[i].num < x : args[i].num > x) x = args[i].num;
    return finite_or_fail(e, x, out);
}

static st_status parse_primary(ev *e, rcp_val *out) {
    char b[120];
    skip_ws(e);
    const char *s = e->p;
    if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
        const char *p = s;
        while (isdigit((unsigned char)*p)) p++;
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) p++;
        }
        if (*p == 'e' || *p == 'E') {
            const char *q = p + 1;
            if (*q == '+' || *q == '-') q++;
            if (isdigit((unsigned char)*q)) {
                while (isdigit((unsigned char)*q)) q++;
                p = q;
            }
        }
        if (isalpha((unsigned char)*p) || *p == '_' || *p == '.')
            return ev_fail(e, "invalid number %s", here(e, b, sizeof b));
        char num[64];
        size_t n = (size_t)(p - s);
        if (n >= sizeof num) return ev_fail(e, "number too long at character %d", (int)(s - e->expr) + 1);
        memcpy(num, s, n);
        num[n] = 0;
        e->p = p;
        return finite_or_fail(e, strtod(num, NULL), out);
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        const char *p = s;
        while (isalnum((unsigned char)*p) || *p == '_') p++;
        char name[128];
        size_t n = (size_t)(p - s);
        if (n >= sizeof name) return ev_fail(e, "name too long at character %d", (int)(s - e->expr) + 1);
        memcpy(name, s, n);
        name[n] = 0;
        e->p = p;
        skip_ws(e);
        if (*e->p == '.')
            return ev_fail(e, "attribute access (%s.) is not allowed; only numbers, variables, "
                              "+ - * / // %% ** and abs float int min max round", name);
        if (*e->p == '(') {
            static const char *const fns[] = {"abs", "float", "int", "min", "max", "round", NULL};
            if (!is_one_of(name, fns))
                return ev_fail(e, "function '%s' is not allowed (allowed: abs float int min max round)", name);
            e->p++;
            rcp_val args[16];
            int na = 0;
            skip_ws(e);
            if (*e->p != ')')
                for (;;) {
                    if (na == 16) return ev_fail(e, "%s(): too many arguments", name);
                    if (parse_sum(e, &args[na++]) != ST_OK) return ST_ERR_INPUT;
                    skip_ws(e);
                    if (*e->p == ',') {
                        e->p++;
                        continue;
                    }
                    if (*e->p == ')') break;
                    return ev_fail(e, "expected ',' or ')' in %s(), got %s", name, here(e, b, sizeof b));
                }
            e->p++;
            return call(e, name, args, na, out);
        }
        int i = rcp_var_find(e->c, name);
        if (i < 0) {
            char known[512] = "";
            rcp_list_vars(e->c, known, sizeof known);
            return ev_fail(e, "unknown variable '%s' (variables: %s)", name, known);
        }
        /* A string or list variable comes back unchanged (eval(mask_type)); operators and
         * calls then reject it if it is used in arithmetic. */
        return rcp_var_get(e->c, i, out);
    }
    if (*s == '(') {
        e->p++;
        if (parse_sum(e, out) != ST_OK) return ST_ERR_INPUT;
        skip_ws(e);
        if (*e->p != ')') return ev_fail(e, "expected ')', got %s", here(e, b, sizeof b));
        e->p++;
        return ST_OK;
    }
    if (*s == '[' || *s == '\'' || *s == '"' || *s == '{')
        return ev_fail(e, "%s: only numbers, variables, + - * / // %% ** and abs float int min max "
                          "round are allowed", here(e, b, sizeof b));
    return ev_fail(e, "unexpected %s", here(e, b, sizeof b));
}

/* power := primary ['**' unary]: right-associative, and the exponent may carry a sign. */
static st_status parse_power(ev *e, rcp_val *out) {
    if (parse_primary(e, out) != ST_OK) return ST_ERR_INPUT;
    skip_ws(e);
    if (e->p[0] != '*' || e->p[1] != '*') return ST_OK;
    e->p += 2;
    rcp_val r;
    if (parse_unary(e, &r) != ST_OK) return ST_ERR_INPUT;
    if (need_num(e, out, "'**'") != ST_OK || need_num(e, &r, "'**'") != ST_OK) return ST_ERR_INPUT;
    double a = out->num, b = r.num;
    if (a == 0 && b < 0) return ev_fail(e, "0 cannot be raised to a negative power (division by zero)");
    if (a < 0 && b != trunc(b))
        return ev_fail(e, "a negative number to a fractional power is not a real number");
    return finite_or_fail(e, pow(a, b), out);
}

static st_status parse_unary(ev *e, rcp_val *out) {
    skip_ws(e);
    if (++e->depth > RCP_MAX_EXPR_DEPTH) return ev_fail(e, "nested more than %d deep", RCP_MAX_EXPR_DEPTH);
    st_status st;
    if (*e->p == '-' || *e->p == '+') {
        char sign = *e->p++;
        st = parse_unary(e, out);
        if (st == ST_OK) st = need_num(e, out, sign == '-' ? "unary '-'" : "unary '+'");
        if (st == ST_OK && sign == '-') out->num = -out->num;
        if (st == ST_OK) out->kind = RCP_NUM;
    } else {
        st = parse_power(e, out);
    }
    e->depth--;
    return st;
}

static st_status parse_product(ev *e, rcp_val *out) {
    if (parse_unary(e, out) != ST_OK) return ST_ERR_INPUT;
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        int floordiv = 0;
        if (op == '*' && e->p[1] != '*') e->p++;
        else if (op == '/' && e->p[1] == '/') e->p += 2, floordiv = 1;
        else if (op == '/' || op == '%') e->p++;
        else return ST_OK;
        const char *name = floordiv ? "'//'" : op == '*' ? "'*'" : op == '/' ? "'/'" : "'%'";
        rcp_val r;
        if (parse_unary(e, &r) != ST_OK) return ST_ERR_INPUT;
        if (need_num(e, out, name) != ST_OK || need_num(e, &r, name) != ST_OK) return ST_ERR_INPUT;
        double a = out->num, b = r.num, x;
        if (op == '*') {
            x = a * b;
        } else {
            if (b == 0) return ev_fail(e, "division by zero");
            double d, m;
            py_divmod(a, b, &d, &m);
            x = floordiv ? d : op == '%' ? m : a / b;
        }
        if (finite_or_fail(e, x, out) != ST_OK) return ST_ERR_INPUT;
    }
}

static st_status parse_sum(ev *e, rcp_val *out) {
    if (parse_product(e, out) != ST_OK) return ST_ERR_INPUT;
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        if (op != '+' && op != '-') return ST_OK;
        e->p++;
        rcp_val r;
        if (parse_product(e, &r) != ST_OK) return ST_ERR_INPUT;
        const char *name = op == '+' ? "'+'" : "'-'";
        if (need_num(e, out, name) != ST_OK || need_num(e, &r, name) != ST_OK) return ST_ERR_INPUT;
        if (finite_or_fail(e, op == '+' ? out->num + r.num : out->num - r.num, out) != ST_OK)
            return ST_ERR_INPUT;
    }
}

st_status rcp_eval(rcp_ctx *c, const char *expr, const rcp_where *w, rcp_val *out) {
    ev e = {c, w, expr, expr, 0};
    char b[120];
    skip_ws(&e);
    if (!*e.p) return ev_fail(&e, "empty expression");
    if (parse_sum(&e, out) != ST_OK) return ST_ERR_INPUT;
    skip_ws(&e);
    if (*e.p) return ev_fail(&e, "unexpected %s", here(&e, b, sizeof b));
    return ST_OK;
}
