/* Reading a recipe file: Markdown front matter, libyaml's document API, the top level
 * (modifier groups and variables), --recipe-args overrides, and the result's lifetime.
 *
 * Order of work, so that every message can name what is wrong and where:
 *   1. the YAML text (for .md the block between the first two '---' lines, with the lines
 *      before it blanked so that libyaml's line numbers are the file's);
 *   2. top-level keys: a key containing "modifiers" with a list is a modifier group, any
 *      other key is a variable;
 *   3. overrides replace variables' values (before anything is evaluated, so derived
 *      variables see them);
 *   4. every variable is resolved (an error in an unused variable is still an error, as
 *      in SparseML, which evaluates them all);
 *   5. every modifier is read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "recipe_internal.h"

/* Far above any real recipe (a few KB); keeps a mistaken path to a dataset archive from
 * being read whole. */
#define RCP_MAX_FILE (16u << 20)

const char *st_mod_kind_name(st_mod_kind k) {
    static const char *const names[ST_MOD_KIND_COUNT] = {
        "EpochRangeModifier", "GMPruningModifier", "MagnitudePruningModifier",
        "GlobalMagnitudePruningModifier", "ConstantPruningModifier", "SetLearningRateModifier",
        "LearningRateFunctionModifier", "LearningRateModifier", "SetWeightDecayModifier",
        "not run"};
    return (unsigned)k < ST_MOD_KIND_COUNT ? names[k] : "unknown";
}

void st_recipe_free(st_recipe *r) {
    if (!r) return;
    for (int i = 0; i < r->n_mods; i++) rcp_modifier_free(&r->mods[i]);
    free(r->mods);
    free(r->path);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int is_markdown(const char *name) {
    size_t n = strlen(name);
    return (n >= 3 && !strcasecmp(name + n - 3, ".md")) ||
           (n >= 9 && !strcasecmp(name + n - 9, ".markdown"));
}

/* The line [p, e) without surrounding blanks equals "---". */
static int is_rule(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    return e - p == 3 && !memcmp(p, "---", 3);
}

/* The YAML of a .md recipe: the first block between two '---' lines, skipping HTML
 * comments (the licence header) before it. Returned as a copy of the file up to the
 * closing line with every byte before the YAML blanked (newlines kept), so that libyaml's
 * marks are the file's lines and columns. */
static st_status md_front_matter(const char *text, size_t len, const char *file, char **out,
                                 size_t *out_len, st_error *err) {
    const char *end = text + len, *p = text, *yaml = NULL;
    int in_comment = 0, line = 0, open_line = 0;
    /* A UTF-8 byte order mark (editors on Windows) would hide a '---' on the first line. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) p += 3;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        line++;
        if (!yaml) {
            const char *q = p;
            while (q < e && (*q == ' ' || *q == '\t')) q++;
            if (in_comment) {
                in_comment = !memmem(p, (size_t)(e - p), "-->", 3);
            } else if (e - q >= 4 && !memcmp(q, "<!--", 4)) {
                in_comment = !memmem(q + 4, (size_t)(e - q - 4), "-->", 3);
            } else if (is_rule(p, e)) {
                yaml = e < end ? e + 1 : e;
                open_line = line;
            }
        } else if (p[0] == '-' && is_rule(p, e)) {
            size_t n = (size_t)(p - text);
            char *buf = malloc(n + 1);
            if (!buf) return st_errorf(err, ST_ERR_NOMEM, "out of memory reading %s", file);
            for (size_t i = 0; i < n; i++)
                buf[i] = text + i < yaml && text[i] != '\n' ? ' ' : text[i];
            buf[n] = 0;
            *out = buf;
            *out_len = n;
            return ST_OK;
        }
        p = e + 1;
    }
    if (yaml)
        return st_errorf(err, ST_ERR_INPUT, "%s:%d: the YAML front matter opened by this '---' line is "
                                            "never closed by another '---' line", file, open_line);
    return st_errorf(err, ST_ERR_INPUT, "%s: no YAML front matter: a .md recipe needs its YAML "
                                        "between two '---' lines", file);
}

/* Loads the first YAML document of buf; *loaded says whether doc must be deleted. */
static st_status load_yaml(const char *buf, size_t len, const char *file, const char *kind,
                           yaml_document_t *doc, int *loaded, st_error *err) {
    yaml_parser_t parser;
    *loaded = 0;
    if (!yaml_parser_initialize(&parser))
        return st_errorf(err, ST_ERR_NOMEM, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    st_status s = ST_OK;
    if (yaml_parser_load(&parser, doc)) {
        *loaded = 1;
    } else if (parser.error == YAML_MEMORY_ERROR) {
        s = st_errorf(err, ST_ERR_NOMEM, "out of memory parsing %s", file);
    } else if (parser.error == YAML_READER_ERROR) {
        /* Bad UTF-8 or control bytes: libyaml gives a byte offset, not a line. */
        int line = 1;
        for (size_t i = 0; i < parser.problem_offset && i < len; i++) line += buf[i] == '\n';
        s = st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: %s (byte %lu); a recipe must be UTF-8 text", file,
                      line, kind, parser.problem ? parser.problem : "unreadable input",
                      (unsigned long)parser.problem_offset);
    } else {
        /* "context" is what libyaml was in the middle of (often where an unclosed bracket
         * opened), "problem" where it gave up. */
        char ctx[160] = "";
        if (parser.context)
            snprintf(ctx, sizeof ctx, " (%s at line %lu, column %lu)", parser.context,
                     (unsigned long)parser.context_mark.line + 1,
                     (unsigned long)parser.context_mark.column + 1);
        s = st_errorf(err, ST_ERR_INPUT, "%s:%lu:%lu: %s: %s%s", file,
                      (unsigned long)parser.problem_mark.line + 1,
                      (unsigned long)parser.problem_mark.column + 1, kind,
                      parser.problem ? parser.problem : "syntax error", ctx);
    }
    yaml_parser_delete(&parser);
    return s;
}

static const char *scalar_of(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int has_tagged_item(yaml_document_t *doc, const yaml_node_t *seq) {
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++)
        if (rcp_is_tagged(yaml_document_get_node(doc, *it))) return 1;
    return 0;
}

/* Step 2: top-level keys into variables (c->vars) and modifier groups (groups). */
static st_status read_top(rcp_ctx *c, yaml_node_t *root, yaml_node_t ***groups, int *n_groups) {
    rcp_where w = {c->file, rcp_node_line(root), NULL};
    if (root->type != YAML_MAPPING_NODE)
        return rcp_fail(c, &w, "expected a mapping at the top level (variables and lists of modifiers "
                               "under keys such as training_modifiers), got a %s",
                        root->type == YAML_SEQUENCE_NODE ? "list" : "plain value");
    int n = (int)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    c->vars = calloc((size_t)n + 1, sizeof *c->vars);
    *groups = calloc((size_t)n + 1, sizeof **groups);
    if (!c->vars || !*groups) return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->file);
    for (int i = 0; i < n; i++) {
        yaml_node_pair_t *p = &root->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *key = scalar_of(k);
        char ks[64];
        w.line = rcp_node_line(k);
        if (!key) return rcp_fail(c, &w, "a top-level key must be a plain name");
        rcp_shown(ks, sizeof ks, key, 40);
        for (int j = 0; j < i; j++)
            if (!strcmp(key, scalar_of(yaml_document_get_node(c->doc, root->data.mapping.pairs.start[j].key))))
                return rcp_fail(c, &w, "'%s' appears twice at the top level", ks);
        if (rcp_is_tagged(v))
            return rcp_fail(c, &w, "'%s' holds a single modifier: modifiers go in a list under a key "
                                   "containing 'modifiers' (e.g. 'modifiers:' then '  - !%s')", ks,
                            v->tag[0] == '!' ? (const char *)v->tag + 1 : "GMPruningModifier");
        if (strstr(key, "modifiers") && v->type == YAML_SEQUENCE_NODE) {
            (*groups)[(*n_groups)++] = v;
            continue;
        }
        if (v->type == YAML_SEQUENCE_NODE && has_tagged_item(c->doc, v))
            return rcp_fail(c, &w, "invalid modifier location: '%s' holds modifiers, but only keys whose "
                                   "name contains 'modifiers' may (e.g. %s_modifiers)", ks, ks);
        rcp_var *var = &c->vars[c->n_vars++];
        var->name = key;
        var->line = w.line;
        var->doc = c->doc;
        var->value = var->orig = v;
    }
    return ST_OK;
}

/* Step 3: --recipe-args, a JSON object (read as YAML flow syntax, which JSON is). */
static st_status apply_overrides(rcp_ctx *c, const char *json, yaml_document_t *args, int *loaded) {
    const char *file = "--recipe-args";
    if (load_yaml(json, strlen(json), file, "invalid JSON", args, loaded, c->err) != ST_OK)
        return ST_ERR_INPUT;
    yaml_node_t *root = yaml_document_get_root_node(args);
    if (!root) return ST_OK; /* empty: nothing to override */
    rcp_where w = {file, 0, NULL};
    if (root->type != YAML_MAPPING_NODE)
        return rcp_fail(c, &w, "expected a JSON object such as '{\"num_epochs\": 3}'");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(args, p->key);
        yaml_node_t *v = yaml_document_get_node(args, p->value);
        const char *key = scalar_of(k);
        char ks[64];
        if (!key) return rcp_fail(c, &w, "keys must be variable names");
        rcp_shown(ks, sizeof ks, key, 40);
        int i = rcp_var_find(c, key);
        if (i < 0) {
            char known[600] = "";
            rcp_list_vars(c, known, sizeof known);
            rcp_near near = {key, NULL, 0};
            char hint[128];
            for (int k = 0; k < c->n_vars; k++) rcp_near_offer(&near, c->vars[k].name);
            return rcp_fail(c, &w, "unknown variable '%s'%s (the recipe's variables: %s)", ks,
                            rcp_near_hint(&near, hint, sizeof hint), known);
        }
        if (c->vars[i].overridden) return rcp_fail(c, &w, "'%s' is given twice", ks);
        if (v->type == YAML_MAPPING_NODE)
            return rcp_fail(c, &w, "%s: expected a number, a string or a list", ks);
        c->vars[i].doc = args;
        c->vars[i].value = v;
        c->vars[i].overridden = 1;
    }
    return ST_OK;
}

static st_status parse_doc(rcp_ctx *c, yaml_document_t *recipe, const char *args_json,
                           st_recipe *out) {
    yaml_document_t args;
    int args_loaded = 0;
    yaml_node_t **groups = NULL;
    int n_groups = 0;
    st_status s = ST_OK;
    yaml_node_t *root = yaml_document_get_root_node(recipe);
    if (!root) {
        s = st_errorf(c->err, ST_ERR_INPUT, "%s: the recipe is empty: no modifiers", c->file);
        goto done;
    }
    if ((s = read_top(c, root, &groups, &n_groups)) != ST_OK) goto done;
    if (args_json && (s = apply_overrides(c, args_json, &args, &args_loaded)) != ST_OK) goto done;
    for (int i = 0; i < c->n_vars; i++) {
        rcp_val v;
        if ((s = rcp_var_get(c, i, &v)) != ST_OK) goto done;
    }
    int n = 0;
    for (int g = 0; g < n_groups; g++)
        n += (int)(groups[g]->data.sequence.items.top - groups[g]->data.sequence.items.start);
    if (n == 0) {
        rcp_where w = {c->file, 0, NULL};
        s = rcp_fail(c, &w, "no modifiers: a recipe lists them under a key such as "
                            "training_modifiers or pruning_modifiers");
        goto done;
    }
    if (!(out->mods = calloc((size_t)n, sizeof *out->mods))) {
        s = st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->file);
        goto done;
    }
    float end = 0;
    for (int g = 0; g < n_groups; g++) {
        yaml_node_t *seq = groups[g];
        for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
            st_modifier *m = &out->mods[out->n_mods++];
            if ((s = rcp_parse_modifier(c, yaml_document_get_node(recipe, *it), m)) != ST_OK) goto done;
            out->n_not_run += m->kind == ST_MOD_NOT_RUN;
            float e = m->end_epoch != -1 ? m->end_epoch : m->start_epoch;
            if (e > end) end = e;
        }
    }
    /* 0 when no modifier names an epoch (only -1s): the run's length is then --epochs. */
    out->end_epoch = end;
done:
    if (args_loaded) yaml_document_delete(&args);
    free(groups);
    return s;
}

st_status st_recipe_parse(const char *text, size_t len, const char *name, const char *args_json,
                          int strict, FILE *log, st_recipe *out, st_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "(recipe)";
    char file[512];
    rcp_shown(file, sizeof file, name, 400);
    if (memchr(text, 0, len))
        return st_errorf(err, ST_ERR_INPUT, "%s: contains NUL bytes: not a text file", file);
    out->path = rcp_strdup(name);
    out->text = malloc(len + 1);
    if (!out->path || !out->text) {
        st_recipe_free(out);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory reading %s", file);
    }
    memcpy(out->text, text, len);
    out->text[len] = 0;

    char *md = NULL;
    size_t ylen = len;
    st_status s = ST_OK;
    if (is_markdown(name) && (s = md_front_matter(text, len, file, &md, &ylen, err)) != ST_OK) {
        st_recipe_free(out);
        return s;
    }
    yaml_document_t doc;
    int loaded = 0;
    s = load_yaml(md ? md : out->text, ylen, file, "YAML error", &doc, &loaded, err);
    if (s == ST_OK) {
        rcp_ctx c = {.file = file, .doc = &doc, .strict = strict, .log = log, .err = err};
        s = parse_doc(&c, &doc, args_json, out);
        free(c.vars);
    }
    if (loaded) yaml_document_delete(&doc);
    free(md);
    if (s != ST_OK) st_recipe_free(out);
    return s;
}

st_status st_recipe_load(const char *path, const char *args_json, int strict, FILE *log,
                         st_recipe *out, st_error *err) {
    memset(out, 0, sizeof *out);
    char file[512];
    rcp_shown(file, sizeof file, path, 400);
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, ST_ERR_INPUT, "%s: cannot open the recipe: %s", file, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    st_status s = ST_OK;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = cap <= RCP_MAX_FILE + 1 ? realloc(buf, cap) : NULL;
            if (!nb) {
                s = cap > RCP_MAX_FILE + 1
                        ? st_errorf(err, ST_ERR_INPUT, "%s: larger than 16 MiB: not a recipe", file)
                        : st_errorf(err, ST_ERR_NOMEM, "out of memory reading %s", file);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) s = st_errorf(err, ST_ERR_INPUT, "%s: cannot read: %s", file, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (s == ST_OK) s = st_recipe_parse(buf ? buf : "", len, path, args_json, strict, log, out, err);
    free(buf);
    return s;
}

st_status st_recipe_eval(const char *expr, const char *vars_json, double *out, st_error *err) {
    yaml_document_t doc;
    int loaded = 0;
    const char *json = vars_json ? vars_json : "{}";
    rcp_ctx c = {.file = "variables", .err = err};
    st_status s = load_yaml(json, strlen(json), c.file, "invalid JSON", &doc, &loaded, err);
    yaml_node_t *root = s == ST_OK ? yaml_document_get_root_node(&doc) : NULL;
    if (s == ST_OK && root) {
        c.doc = &doc;
        yaml_node_t **groups = NULL;
        int n_groups = 0;
        s = read_top(&c, root, &groups, &n_groups);
        free(groups);
    }
    if (s == ST_OK) {
        rcp_where w = {"eval", 0, NULL};
        rcp_val v;
        s = rcp_eval(&c, expr, &w, &v);
        if (s == ST_OK && v.kind != RCP_NUM && v.kind != RCP_BOOL) {
            char d[160];
            s = rcp_fail(&c, &w, "eval(%s) is %s, not a number", expr, rcp_describe(d, sizeof d, &v));
        }
        if (s == ST_OK) *out = v.num;
    }
    free(c.vars);
    if (loaded) yaml_document_delete(&doc);
    return s;
}
