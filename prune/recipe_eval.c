/* The eval() expression language of recipes.
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

static int is_one_of(const char *s, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
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
            rcp_near near = {name, NULL, 0};
            char hint[128];
            for (int k = 0; k < e->c->n_vars; k++) rcp_near_offer(&near, e->c->vars[k].name);
            return ev_fail(e, "unknown variable '%s'%s (variables: %s)", name,
                           rcp_near_hint(&near, hint, sizeof hint), known);
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
