#include "st_run_files.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

st_status st_mkdirs(const char *path, st_error *err) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return st_errorf(err, ST_ERR_INPUT, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return st_errorf(err, ST_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return st_errorf(err, ST_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return st_errorf(err, ST_ERR_INPUT, "%s exists and is not a folder", buf);
    return ST_OK;
}

static int holds_run(const char *dir) {
    char p[1100];
    snprintf(p, sizeof p, "%s/last.ckpt", dir);
    return access(p, F_OK) == 0;
}

st_status st_run_dir_choose(char *out, size_t cap, const char *explicit_dir, const char *name,
                            int overwrite, int resuming, st_error *err) {
    if (explicit_dir) {
        if (holds_run(explicit_dir) && !overwrite && !resuming)
            return st_errorf(err, ST_ERR_INPUT,
                             "%s already holds a run (last.ckpt); continue it with --resume "
                             "%s/last.ckpt, pick another --out, or pass --overwrite",
                             explicit_dir, explicit_dir);
        snprintf(out, cap, "%s", explicit_dir);
    } else {
        snprintf(out, cap, "runs/%s", name);
        for (int i = 2; holds_run(out) && i < 10000; i++) snprintf(out, cap, "runs/%s-%d", name, i);
    }
    return st_mkdirs(out, err);
}

st_status st_write_text_atomic(const char *path, const char *text, size_t len, st_error *err) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return st_errorf(err, ST_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len;
    ok &= fflush(f) == 0;
    ok &= fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return st_errorf(err, ST_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return ST_OK;
}

/* A growable string for building small text files. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *q = realloc(b->s, nc);
        if (!q) { b->oom = 1; return; }
        b->s = q;
        b->cap = nc;
    }
}

st_status st_write_metrics_csv(const char *path, const char *const *header, const float *rows,
                               int n_rows, int n_cols, st_error *err) {
    sbuf b = {0};
    for (int c = 0; c < n_cols; c++) sb_printf(&b, "%s%s", c ? "," : "", header[c]);
    sb_printf(&b, "\n");
    for (int r = 0; r < n_rows; r++) {
        for (int c = 0; c < n_cols; c++) sb_printf(&b, "%s%.6g", c ? "," : "", rows[r * n_cols + c]);
        sb_printf(&b, "\n");
    }
    st_status rc = b.oom ? st_errorf(err, ST_ERR_NOMEM, "out of memory")
                         : st_write_text_atomic(path, b.s, b.len, err);
    free(b.s);
    return rc;
}

/* One JSON string (quoted, escaped). */
static void sb_json_str(sbuf *b, const char *v) {
    size_t cap = 6 * strlen(v) + 8;
    char *tmp = malloc(cap);
    if (!tmp) { b->oom = 1; return; }
    st_json_string_list(tmp, cap, &v, 1);
    tmp[strlen(tmp) - 1] = 0; /* drop the brackets */
    sb_printf(b, "%s", tmp + 1);
    free(tmp);
}

st_status st_write_summary_json(const char *path, const char *task, const char *model,
                                int n_metrics, const char *const *keys, const double *metrics,
                                const st_graph *g, int epochs, double seconds, st_error *err) {
    sbuf b = {0};
    sb_printf(&b, "{\n  \"task\": \"%s\",\n  \"model\": ", task);
    sb_json_str(&b, model);
    sb_printf(&b, ",\n  \"metrics\": {");
    for (int i = 0; i < n_metrics; i++) sb_printf(&b, "%s\"%s\": %.6f", i ? ", " : "", keys[i], metrics[i]);
    sb_printf(&b, "},\n  \"sparsity\": {\n    \"overall\": %.6f,\n    \"layers\": {",
              st_graph_prunable_sparsity(g));
    int first = 1;
    for (int i = 0; i < g->n_params; i++) {
        if (!g->params[i].prunable) continue;
        sb_printf(&b, "%s\n      ", first ? "" : ",");
        sb_json_str(&b, g->params[i].name);
        sb_printf(&b, ": %.6f", st_param_sparsity(g, i));
        first = 0;
    }
    sb_printf(&b, "\n    }\n  },\n  \"epochs\": %d,\n  \"seconds\": %.3f\n}\n", epochs, seconds);
    st_status rc = b.oom ? st_errorf(err, ST_ERR_NOMEM, "out of memory")
                         : st_write_text_atomic(path, b.s, b.len, err);
    free(b.s);
    return rc;
}

/* JSON array of strings, escaped; truncated (still valid JSON) if cap is too small. */
void st_json_string_list(char *buf, size_t cap, const char *const *items, int n) {
    size_t k = 0;
    if (cap < 3) {
        if (cap) buf[0] = 0;
        return;
    }
    buf[k++] = '[';
    for (int i = 0; i < n; i++) {
        char item[1024];
        size_t m = 0;
        item[m++] = '"';
        for (const unsigned char *p = (const unsigned char *)items[i]; *p && m + 8 < sizeof item; p++) {
            if (*p == '"' || *p == '\\') item[m++] = '\\', item[m++] = (char)*p;
            else if (*p < 0x20) m += (size_t)snprintf(item + m, sizeof item - m, "\\u%04x", *p);
            else item[m++] = (char)*p;
        }
        item[m++] = '"';
        if (k + m + (i ? 1 : 0) + 2 > cap) break;
        if (i) buf[k++] = ',';
        memcpy(buf + k, item, m);
        k += m;
    }
    buf[k++] = ']';
    buf[k] = 0;
}

/* Parses what st_json_string_list writes (and any JSON array of strings; \u escapes
 * above ASCII become '?'). */
st_status st_json_parse_string_list(const char *json, char ***out, int *n, st_error *err) {
    *out = NULL;
    *n = 0;
    const char *p = json;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p++ != '[') return st_errorf(err, ST_ERR_INPUT, "not a JSON list of strings");
    char **items = NULL;
    int cnt = 0;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (*p == ']') break;
        if (*p++ != '"') goto bad;
        char *s = malloc(strlen(p) + 1), **q = realloc(items, (size_t)(cnt + 1) * sizeof *items);
        if (!s || !q) {
            free(s);
            if (q) items = q;
            goto oom;
        }
        items = q;
        items[cnt++] = s;
        size_t k = 0;
        for (; *p && *p != '"'; p++) {
            if (*p != '\\') { s[k++] = *p; continue; }
            p++;
            switch (*p) {
            case 'n': s[k++] = '\n'; break;
            case 't': s[k++] = '\t'; break;
            case 'r': s[k++] = '\r'; break;
            case 'b': s[k++] = '\b'; break;
            case 'f': s[k++] = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int d = 1; d <= 4; d++)
                    if (!isxdigit((unsigned char)p[d])) goto bad;
                sscanf(p + 1, "%4x", &v);
                s[k++] = v < 128 ? (char)v : '?';
                p += 4;
                break;
            }
            case 0: goto bad;
            default: s[k++] = *p;
            }
        }
        if (*p++ != '"') goto bad;
        s[k] = 0;
    }
    *out = items;
    *n = cnt;
    return ST_OK;
bad:
    st_json_free_list(items, cnt);
    return st_errorf(err, ST_ERR_INPUT, "not a JSON list of strings");
oom:
    st_json_free_list(items, cnt);
    return st_errorf(err, ST_ERR_NOMEM, "out of memory");
}

void st_json_free_list(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}
