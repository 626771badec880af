/* YOLO data.yaml (the ultralytics format), read with libyaml's document API:
 *
 *   nc: 3
 *   names: [cat, dog, bird]        # or a mapping {0: cat, 1: dog, 2: bird}
 *   train: images/train            # optional, relative to the dataset root
 *   val: images/val
 *
 * Only these keys matter here; download scripts, `path:`, `test:` and the rest are
 * ignored. Every error names the file and the line and column of the offending node,
 * since data.yaml is edited by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ds_internal.h"

typedef struct {
    const char *path; /* for messages (already escaped) */
    yaml_document_t *doc;
    st_error *err;
} yctx;

static st_status yerr(const yctx *c, const yaml_node_t *node, const char *fmt, const char *a,
                      const char *b) {
    char what[512];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    return st_errorf(c->err, ST_ERR_INPUT, "%s:%lu:%lu: %s", c->path,
                     (unsigned long)node->start_mark.line + 1,
                     (unsigned long)node->start_mark.column + 1, what);
}

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* YAML's null: an empty value, "~" or "null" (plain, not quoted). */
static int is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* A non-negative integer in [0, max]: decimal digits only (no signs, no 1e3). */
static int parse_uint(const char *s, long max, long *out) {
    if (!s || !*s) return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
        if (v > max) return 0;
    }
    *out = v;
    return 1;
}

static st_status read_names(const yctx *c, yaml_node_t *node, ds_yaml_meta *m) {
    yaml_document_t *doc = c->doc;
    if (node->type == YAML_SEQUENCE_NODE) {
        int n = (int)(node->data.sequence.items.top - node->data.sequence.items.start);
        if (n > DS_MAX_CLASSES) return yerr(c, node, "names: more than 100000 classes", 0, 0);
        m->names = calloc((size_t)ST_MAX(n, 1), sizeof *m->names);
        if (!m->names) return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->path);
        m->n_names = n;
        for (int i = 0; i < n; i++) {
            yaml_node_t *it = yaml_document_get_node(doc, node->data.sequence.items.start[i]);
            const char *v = scalar(it);
            if (!v) return yerr(c, it, "names: entry is not a plain name (a list or mapping?)", 0, 0);
            if (!(m->names[i] = ds_strdup(v)))
                return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->path);
        }
        return ST_OK;
    }
    if (node->type == YAML_MAPPING_NODE) {
        /* {0: cat, 1: dog}: keys must be exactly 0..n-1, in any order. */
        int n = (int)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
        if (n > DS_MAX_CLASSES) return yerr(c, node, "names: more than 100000 classes", 0, 0);
        m->names = calloc((size_t)ST_MAX(n, 1), sizeof *m->names);
        if (!m->names) return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->path);
        m->n_names = n;
        for (int i = 0; i < n; i++) {
            yaml_node_pair_t *pr = &node->data.mapping.pairs.start[i];
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(doc, pr->value);
            long id;
            if (!parse_uint(scalar(k), n - 1, &id)) {
                char last[32];
                snprintf(last, sizeof last, "%d", n - 1);
                return yerr(c, k, "names: key '%s' is not a class id; a mapping needs the keys 0..%s",
                            scalar(k) ? scalar(k) : "?", last);
            }
            if (m->names[id]) return yerr(c, k, "names: class id %s appears twice", scalar(k), 0);
            if (!scalar(v)) return yerr(c, v, "names: value for %s is not a plain name", scalar(k), 0);
            if (!(m->names[id] = ds_strdup(scalar(v))))
                return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->path);
        }
        return ST_OK;
    }
    return yerr(c, node, "names: expected a list [a, b] or a mapping {0: a, 1: b}", 0, 0);
}

/* A folder key (train, val): one string; lists of folders are an ultralytics extension
 * this reader does not follow. */
static st_status read_folder(const yctx *c, const char *key, yaml_node_t *v, char **out) {
    if (is_null(v)) return ST_OK;
    if (!scalar(v))
        return yerr(c, v, "%s: expected one folder (e.g. images/%s); lists are not supported", key,
                    key);
    free(*out);
    if (!(*out = ds_strdup(scalar(v))))
        return st_errorf(c->err, ST_ERR_NOMEM, "out of memory reading %s", c->path);
    return ST_OK;
}

static st_status read_doc(const yctx *c, ds_yaml_meta *m) {
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root)
        return st_errorf(c->err, ST_ERR_INPUT,
                         "%s: no keys in the file (empty or only comments); expected nc and names "
                         "(or delete it to number the classes from the labels)",
                         c->path);
    if (root->type != YAML_MAPPING_NODE)
        return yerr(c, root, "expected a mapping of keys (nc: 3, names: [...])", 0, 0);
    yaml_node_t *names = NULL;
    int seen_nc = 0, seen_names = 0, seen_train = 0, seen_val = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *key = scalar(k);
        if (!key) continue;
        int *seen = !strcmp(key, "nc") ? &seen_nc
                    : !strcmp(key, "names") ? &seen_names
                    : !strcmp(key, "train") ? &seen_train
                    : !strcmp(key, "val") ? &seen_val
                    : NULL;
        if (!seen) continue;
        /* YAML leaves duplicate keys undefined; silently taking one would hide an edit. */
        if (*seen) return yerr(c, k, "key '%s' appears twice", key, 0);
        *seen = 1;
        st_status s = ST_OK;
        if (seen == &seen_nc) {
            long nc;
            if (!parse_uint(scalar(v), DS_MAX_CLASSES, &nc) || nc < 1)
                return yerr(c, v, "nc: '%s' is not a class count (an integer from 1 to 100000)",
                            scalar(v) ? scalar(v) : "(not a scalar)", 0);
            m->nc = (int)nc;
        } else if (seen == &seen_names) {
            names = v;
        } else if (seen == &seen_train) {
            s = read_folder(c, "train", v, &m->train);
        } else {
            s = read_folder(c, "val", v, &m->val);
        }
        if (s != ST_OK) return s;
    }
    if (names && !is_null(names)) {
        st_status s = read_names(c, names, m);
        if (s != ST_OK) return s;
        if (m->nc >= 0 && m->nc != m->n_names) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%d", m->nc);
            snprintf(b, sizeof b, "%d", m->n_names);
            return yerr(c, names, "nc is %s but names lists %s classes; make them agree", a, b);
        }
        if (m->n_names == 0) return yerr(c, names, "names is empty", 0, 0);
        m->nc = m->n_names;
    }
    return ST_OK;
}

st_status ds_read_data_yaml(const char *path, ds_yaml_meta *m, st_error *err) {
    memset(m, 0, sizeof *m);
    m->nc = -1;
    char *shown = ds_shown(path);
    if (!shown) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "rb");
    if (!f) {
        st_errorf(err, ST_ERR_INPUT, "%s: cannot open: %s", shown, strerror(errno));
        free(shown);
        return ST_ERR_INPUT;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    st_status s = ST_OK;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        free(shown);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory starting the YAML parser");
    }
    yaml_parser_set_input_file(&parser, f);
    /* Only the first document counts; ultralytics files have one. */
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            s = st_errorf(err, ST_ERR_NOMEM, "out of memory parsing %s", shown);
        } else if (parser.error == YAML_READER_ERROR) {
            s = st_errorf(err, ST_ERR_INPUT, "%s: byte %lu: %s; data.yaml must be UTF-8 text", shown,
                          (unsigned long)parser.problem_offset,
                          parser.problem ? parser.problem : "cannot read");
        } else {
            /* libyaml's "context" says what it was in the middle of (often the more useful
             * place for an unclosed bracket), "problem" where it gave up. */
            char ctx[256] = "";
            if (parser.context)
                snprintf(ctx, sizeof ctx, " (%s at line %lu, column %lu)", parser.context,
                         (unsigned long)parser.context_mark.line + 1,
                         (unsigned long)parser.context_mark.column + 1);
            s = st_errorf(err, ST_ERR_INPUT, "%s:%lu:%lu: malformed YAML: %s%s; check the indentation and brackets",
                          shown, (unsigned long)parser.problem_mark.line + 1,
                          (unsigned long)parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "syntax error", ctx);
        }
    } else {
        yctx c = {shown, &doc, err};
        s = read_doc(&c, m);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    free(shown);
    if (s != ST_OK) ds_yaml_meta_free(m);
    return s;
}

void ds_yaml_meta_free(ds_yaml_meta *m) {
    if (m->names)
        for (int i = 0; i < m->n_names; i++) free(m->names[i]);
    free(m->names);
    free(m->train);
    free(m->val);
    memset(m, 0, sizeof *m);
    m->nc = -1;
}
