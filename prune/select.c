/* Parameter selection: binds the selectors of every pruning modifier to graph params.
 *
 * Selectors: "__ALL_PRUNABLE__" and "__ALL__" (for pruning both mean every prunable param:
 * the convolution and linear weights, as in SparseML), an exact name, or "re:PATTERN".
 *
 * Regular expressions follow Python's re.match: anchored at the start of the name, not at
 * the end. They run on POSIX extended regexes (regcomp REG_EXTENDED) as "^(PATTERN)" after
 * a translation of the Python-only syntax people write in recipes:
 *   \d \w \s (and \D \W \S outside [...]) become POSIX classes; an escaped punctuation
 *   character stays a literal; lazy quantifiers (*? +? ?? {m,n}?) become greedy, which
 *   cannot change whether an anchored pattern matches; {,n} becomes {0,n}; a '{' or '}'
 *   that is not a quantifier is a literal as in Python.
 *   (?:...) and (?P<name>...) become plain groups (captures are never used).
 * Rejected with a clear error: other (?...) forms (inline flags, lookaround,
 * backreferences by name), other backslash escapes (\b \A \Z \1 ...), and \D \W \S or
 * POSIX [: :] classes inside [...].
 * A pattern may match BN weights or biases too; only its prunable matches are pruned, and
 * a pattern matching no prunable param is an error.
 *
 * Every problem of the whole recipe (unmatched selectors with the closest names by
 * Levenshtein distance, non-prunable names, bad patterns, a param pruned by two
 * modifiers) is reported in one ST_ERR_INPUT message, so a user fixing a recipe for a
 * different model sees every bad name at once. */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rr_internal.h"

/* ---- Python re -> POSIX ERE ---- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *t) {
    size_t n = strlen(t);
    if (b->len + n + 1 > b->cap) return; /* cap is sized for the worst case */
    memcpy(b->s + b->len, t, n + 1);
    b->len += n;
}

static int is_alnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Returns a malloc'd "^(...)" POSIX pattern, or NULL with `why` filled. */
static char *py_to_posix(const char *py, char *why, size_t whycap) {
    size_t n = strlen(py);
    sbuf b = {malloc(16 * n + 16), 0, 16 * n + 16};
    if (!b.s) {
        snprintf(why, whycap, "out of memory");
        return NULL;
    }
    b.s[0] = 0;
    sb_put(&b, "^(");
    int quant = 0; /* the last token was a quantifier: a '?' after it means "lazy" */
    for (size_t i = 0; i < n; i++) {
        char c = py[i], ch[3] = {c, 0, 0};
        if (c == '\\') {
            char e = py[i + 1];
            i++;
            quant = 0;
            switch (e) {
            case 'd': sb_put(&b, "[0-9]"); continue;
            case 'D': sb_put(&b, "[^0-9]"); continue;
            case 'w': sb_put(&b, "[[:alnum:]_]"); continue;
            case 'W': sb_put(&b, "[^[:alnum:]_]"); continue;
            case 's': sb_put(&b, "[[:space:]]"); continue;
            case 'S': sb_put(&b, "[^[:space:]]"); continue;
            }
            if (e == 0) {
                snprintf(why, whycap, "trailing backslash");
                goto fail;
            }
            if (is_alnum(e)) {
                snprintf(why, whycap, "the escape \\%c is Python-only (supported: \\d \\w \\s "
                         "\\D \\W \\S and escaped punctuation)", e);
                goto fail;
            }
            ch[0] = '\\', ch[1] = e;
            sb_put(&b, ch);
            continue;
        }
        if (c == '[') {
            /* bracket expression: copied, with Python escapes turned into POSIX ones
             * (a backslash is a literal inside POSIX brackets) */
            sb_put(&b, "[");
            size_t j = i + 1;
            if (py[j] == '^') sb_put(&b, "^"), j++;
            if (py[j] == ']') sb_put(&b, "]"), j++;
            for (; j < n && py[j] != ']'; j++) {
                char d = py[j], dd[2] = {d, 0};
                if (d == '[' && (py[j + 1] == ':' || py[j + 1] == '.' || py[j + 1] == '=')) {
                    snprintf(why, whycap, "'[%c' inside [...] is not supported", py[j + 1]);
                    goto fail;
                }
                if (d != '\\') {
                    sb_put(&b, dd);
                    continue;
                }
                char e = py[++j];
                if (e == 'd') sb_put(&b, "[:digit:]");
                else if (e == 'w') sb_put(&b, "[:alnum:]_");
                else if (e == 's') sb_put(&b, "[:space:]");
                else if (e == 0 || is_alnum(e) || e == ']' || e == '^' || e == '-') {
                    snprintf(why, whycap, "the escape \\%c inside [...] is not supported", e ? e : ' ');
                    goto fail;
                } else {
                    dd[0] = e; /* \. \\ \* ... : the character itself */
                    sb_put(&b, dd);
                }
            }
            if (j >= n) {
                snprintf(why, whycap, "unterminated [");
                goto fail;
            }
            sb_put(&b, "]");
            i = j;
            quant = 0;
            continue;
        }
        if (c == '(' && py[i + 1] == '?') {
            /* captures are never used, so (?:...) and (?P<name>...) are plain groups */
            if (py[i + 2] == ':') {
                sb_put(&b, "(");
                i += 2;
                quant = 0;
                continue;
            }
            if (py[i + 2] == 'P' && py[i + 3] == '<') {
                const char *close = strchr(py + i + 4, '>');
                if (close) {
                    sb_put(&b, "(");
                    i = (size_t)(close - py);
                    quant = 0;
                    continue;
                }
            }
            snprintf(why, whycap, "(?%c...) is Python-only and not supported (only (?:...) and "
                     "(?P<name>...) are)", py[i + 2] ? py[i + 2] : ' ');
            goto fail;
        }
        if (c == '?' && quant) { /* lazy -> greedy */
            quant = 0;
            continue;
        }
        if (c == '*' || c == '+' || c == '?') {
            sb_put(&b, ch);
            quant = 1;
            continue;
        }
        if (c == '{') {
            /* a quantifier {m}, {m,}, {m,n}, {,n}; anything else is a literal in Python */
            size_t j = i + 1;
            int digits = 0, commas = 0;
            for (; j < n && py[j] != '}'; j++) {
                if (py[j] >= '0' && py[j] <= '9') digits++;
                else if (py[j] == ',') commas++;
                else break;
            }
            if (j < n && py[j] == '}' && digits > 0 && commas <= 1) {
                sb_put(&b, "{");
                if (py[i + 1] == ',') sb_put(&b, "0");
                for (size_t k = i + 1; k <= j; k++) {
                    char dd[2] = {py[k], 0};
                    sb_put(&b, dd);
                }
                i = j;
                quant = 1;
                continue;
            }
            sb_put(&b, "\\{");
            quant = 0;
            continue;
        }
        if (c == '}') {
            sb_put(&b, "\\}");
            quant = 0;
            continue;
        }
        sb_put(&b, ch);
        quant = 0;
    }
    sb_put(&b, ")");
    return b.s;
fail:
    free(b.s);
    return NULL;
}

/* ---- closest names ---- */

/* Up to 5 prunable names nearest to `sel` (ties: graph order), ", "-separated. */
static void closest_names(const st_graph *g, const char *sel, char *out, size_t cap) {
    enum { K = 5 };
    int best[K], bd[K], nb = 0, any_prunable = 0;
    for (int p = 0; p < g->n_params; p++) any_prunable |= g->params[p].prunable;
    for (int p = 0; p < g->n_params; p++) {
        if (any_prunable && !g->params[p].prunable) continue;
        int d = st_edit_distance(sel, g->params[p].name);
        int pos = nb;
        while (pos > 0 && bd[pos - 1] > d) pos--;
        if (pos >= K) continue;
        int last = nb < K ? nb : K - 1;
        for (int q = last; q > pos; q--) best[q] = best[q - 1], bd[q] = bd[q - 1];
        best[pos] = p, bd[pos] = d;
        if (nb < K) nb++;
    }
    out[0] = 0;
    size_t len = 0;
    for (int i = 0; i < nb && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", g->params[best[i]].name);
}

/* ---- problems, reported together ---- */

typedef struct problem {
    int mod;
    char sel[ST_NAME_MAX + 8]; /* the selector, for the compact list */
    char text[640];
} problem;

typedef struct problems {
    problem *v;
    int n, cap;
} problems;

static void add_problem(problems *ps, int mod, const char *sel, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_problem(problems *ps, int mod, const char *sel, const char *fmt, ...) {
    if (ps->n == ps->cap) {
        int nc = ps->cap ? 2 * ps->cap : 16;
        problem *nv = realloc(ps->v, (size_t)nc * sizeof *nv);
        if (!nv) return; /* the first problems are still reported */
        ps->v = nv, ps->cap = nc;
    }
    problem *p = &ps->v[ps->n++];
    p->mod = mod;
    snprintf(p->sel, sizeof p->sel, "%s", sel);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->text, sizeof p->text, fmt, ap);
    va_end(ap);
}

/* One line: the first problems in full (with the closest names), then, if they do not
 * all fit in st_error's message, every further selector by name ("and N more" only when
 * even the names overflow). */
static st_status report(const st_recipe *r, const problems *ps, st_error *err) {
    const char *path = r->path ? r->path : "recipe";
    char out[sizeof err->msg];
    size_t len = 0;
    const size_t limit = sizeof out - 24, detail_limit = 560;
    int i = 0, last_mod = -1;
    for (; i < ps->n; i++) {
        const problem *p = &ps->v[i];
        const st_modifier *m = &r->mods[p->mod];
        char piece[900];
        if (p->mod != last_mod)
            snprintf(piece, sizeof piece, "%s%s:%d: %s: %s", len ? "; " : "", path, m->line,
                     m->tag[0] ? m->tag : rr_kind_name(m->kind), p->text);
        else
            snprintf(piece, sizeof piece, "; %s", p->text);
        size_t pl = strlen(piece);
        /* leave room for the names of the rest when there are more */
        if (len + pl > (i + 1 < ps->n ? detail_limit : limit)) break;
        memcpy(out + len, piece, pl + 1);
        len += pl;
        last_mod = p->mod;
    }
    if (i < ps->n) {
        len += (size_t)snprintf(out + len, sizeof out - len, "%salso:", len ? "; " : "");
        int shown = 0;
        for (; i < ps->n; i++) {
            char piece[ST_NAME_MAX + 48];
            const problem *p = &ps->v[i];
            if (p->mod != last_mod)
                snprintf(piece, sizeof piece, "%s (line %d) '%s'", shown ? "," : "",
                         r->mods[p->mod].line, p->sel);
            else
                snprintf(piece, sizeof piece, "%s '%s'", shown ? "," : "", p->sel);
            if (len + strlen(piece) > limit) break;
            len += (size_t)snprintf(out + len, sizeof out - len, "%s", piece);
            last_mod = p->mod;
            shown++;
        }
        if (i < ps->n) snprintf(out + len, sizeof out - len, " and %d more", ps->n - i);
    }
    return st_errorf(err, ST_ERR_INPUT, "%s", out);
}

/* ---- binding ---- */

typedef struct binder {
    const st_graph *g;
    st_recipe_run *run;
    int *owner_mod, *owner_group;
    int cap_targets;
    problems ps;
    int oom;
} binder;

static const char *what_param(const st_param *p) {
    switch (p->group) {
    case ST_PG_BIAS: return "a bias";
    case ST_PG_BN: return "a batch-norm weight";
    case ST_PG_BUFFER: return "a buffer (running statistics)";
    default: return "not a convolution or linear weight";
    }
}

static void take(binder *b, int mi, int gi, int p) {
    const st_recipe_run *run = b->run;
    if (b->owner_mod[p] == mi && b->owner_group[p] == gi) return; /* listed twice: once */
    if (b->owner_mod[p] >= 0) {
        const rr_mod *o = &run->mods[b->owner_mod[p]];
        if (b->owner_mod[p] == mi)
            add_problem(&b->ps, mi, b->g->params[p].name,
                        "'%s' is in two final_sparsity groups", b->g->params[p].name);
        else
            add_problem(&b->ps, mi, b->g->params[p].name,
                        "'%s' is already pruned by %s at line %d (a param can have one "
                        "pruning modifier)", b->g->params[p].name,
                        o->m.tag[0] ? o->m.tag : rr_kind_name(o->m.kind), o->m.line);
        return;
    }
    if (b->run->n_targets == b->cap_targets) {
        int nc = b->cap_targets ? 2 * b->cap_targets : 64;
        rr_target *nt = realloc(b->run->targets, (size_t)nc * sizeof *nt);
        if (!nt) {
            b->oom = 1;
            return;
        }
        b->run->targets = nt, b->cap_targets = nc;
    }
    b->owner_mod[p] = mi, b->owner_group[p] = gi;
    rr_target *t = &b->run->targets[b->run->n_targets++];
    memset(t, 0, sizeof *t);
    t->param = p, t->mod = mi, t->group = gi;
    t->init = run->mods[mi].m.init_from_param ? 0.0f : run->mods[mi].m.init_sparsity;
}

static void select_one(binder *b, int mi, int gi, const char *sel) {
    const st_graph *g = b->g;
    char near[640];
    if (!sel || !*sel) {
        add_problem(&b->ps, mi, "", "empty parameter name");
        return;
    }
    if (strcmp(sel, "__ALL_PRUNABLE__") == 0 || strcmp(sel, "__ALL__") == 0) {
        int n = 0;
        for (int p = 0; p < g->n_params; p++)
            if (g->params[p].prunable) take(b, mi, gi, p), n++;
        if (!n)
            add_problem(&b->ps, mi, sel, "no parameter matches '%s': the model has no "
                        "convolution or linear weights", sel);
        return;
    }
    if (strncmp(sel, "re:", 3) == 0) {
        char why[256];
        char *pat = py_to_posix(sel + 3, why, sizeof why);
        regex_t re;
        int rc = pat ? regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) : -1;
        free(pat);
        if (rc != 0) {
            if (rc > 0) regerror(rc, &re, why, sizeof why);
            add_problem(&b->ps, mi, sel, "invalid pattern '%s': %s", sel, why);
            return;
        }
        int all = 0, prunable = 0, example = -1;
        for (int p = 0; p < g->n_params; p++) {
            if (regexec(&re, g->params[p].name, 0, NULL, 0) != 0) continue;
            all++;
            if (g->params[p].prunable) take(b, mi, gi, p), prunable++;
            else if (example < 0) example = p;
        }
        regfree(&re);
        if (!all) {
            closest_names(g, sel + 3, near, sizeof near);
            add_problem(&b->ps, mi, sel, "no parameter matches '%s'; closest: %s", sel, near);
        } else if (!prunable) {
            add_problem(&b->ps, mi, sel, "'%s' matches only parameters that cannot be pruned "
                        "(e.g. %s, %s)", sel, g->params[example].name,
                        what_param(&g->params[example]));
        }
        return;
    }
    int p = st_graph_find_param(g, sel);
    if (p < 0) {
        closest_names(g, sel, near, sizeof near);
        add_problem(&b->ps, mi, sel, "no parameter matches '%s'; closest: %s", sel, near);
    } else if (!g->params[p].prunable) {
        add_problem(&b->ps, mi, sel, "'%s' cannot be pruned: it is %s (only convolution and "
                    "linear weights can)", sel, what_param(&g->params[p]));
    } else {
        take(b, mi, gi, p);
    }
}

st_status rr_select(const st_recipe *r, const st_graph *g, st_recipe_run *run, st_error *err) {
    binder b = {.g = g, .run = run};
    size_t np = g->n_params > 0 ? (size_t)g->n_params : 1;
    b.owner_mod = malloc(np * sizeof(int));
    b.owner_group = malloc(np * sizeof(int));
    if (!b.owner_mod || !b.owner_group) {
        free(b.owner_mod);
        free(b.owner_group);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory binding the recipe");
    }
    for (int p = 0; p < g->n_params; p++) b.owner_mod[p] = b.owner_group[p] = -1;
    for (int mi = 0; mi < run->n_mods; mi++) {
        rr_mod *md = &run->mods[mi];
        md->t0 = run->n_targets;
        if (!rr_is_pruning(md->m.kind)) continue;
        const st_modifier *m = &r->mods[mi];
        if (m->n_groups <= 0)
            add_problem(&b.ps, mi, "", "no params to prune (params is empty)");
        for (int gi = 0; gi < m->n_groups; gi++) {
            const st_sparsity_group *sg = &m->groups[gi];
            for (int s = 0; s < sg->n_params; s++) select_one(&b, mi, gi, sg->params[s]);
            if (sg->n_params == 0)
                add_problem(&b.ps, mi, "", "final_sparsity %g has no params", sg->final_sparsity);
        }
        md->nt = run->n_targets - md->t0;
    }
    st_status rc = ST_OK;
    if (b.oom) rc = st_errorf(err, ST_ERR_NOMEM, "out of memory binding the recipe");
    else if (b.ps.n) rc = report(r, &b.ps, err);
    free(b.ps.v);
    free(b.owner_mod);
    free(b.owner_group);
    return rc;
}
