/* Shared dataset helpers: strings, folder listings, UTF-8 checks, and the parallel
 * validation pass every image-file layout ends with (see ds_internal.h). */
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ds_internal.h"

st_status ds_strv_push(ds_strv *s, const char *str, st_error *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return st_errorf(err, ST_ERR_NOMEM, "out of memory listing files");
        s->v = v;
        s->cap = cap;
    }
    char *c = ds_strdup(str);
    if (!c) return st_errorf(err, ST_ERR_NOMEM, "out of memory listing files");
    s->v[s->n++] = c;
    return ST_OK;
}

void ds_strv_free(ds_strv *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

char *ds_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

char *ds_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *ds_join(const char *dir, const char *name) {
    size_t dl = strlen(dir);
    /* "/" as the root must not become "//x". */
    if (dl > 0 && dir[dl - 1] == '/') return ds_printf("%s%s", dir, name);
    return ds_printf("%s/%s", dir, name);
}

int ds_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int ds_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0: rejects overlong forms,
 * surrogates and code points past U+10FFFF, as the standard requires. */
static int utf8_seq(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

int ds_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_seq(p);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

char *ds_shown_n(const char *s, size_t n, size_t max_chars) {
    /* Valid UTF-8 is kept as is (names in any script read naturally); anything else is
     * escaped byte by byte so the report stays one line of valid text. */
    size_t cap = ST_MIN(n, max_chars) * 4 + 4;
    char *o = malloc(cap);
    if (!o) return NULL;
    size_t j = 0, i = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (i < n && i < max_chars) {
        int k = p[i] >= 0x80 ? utf8_seq(p + i) : 1;
        if (k > 1 && i + (size_t)k <= n) {
            memcpy(o + j, p + i, (size_t)k);
            j += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7F || p[i] >= 0x80) j += (size_t)snprintf(o + j, 5, "\\x%02X", p[i]);
        else o[j++] = (char)p[i];
        i++;
    }
    if (i < n) memcpy(o + j, "...", 3), j += 3;
    o[j] = 0;
    return o;
}

char *ds_shown(const char *s) {
    size_t n = strlen(s);
    return ds_shown_n(s, n, n);
}

int ds_has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    /* ".png" alone is a hidden file with no stem, not an image. */
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

int ds_is_png_name(const char *name) { return ds_has_ext(name, ".png"); }
int ds_is_jpeg_name(const char *name) { return ds_has_ext(name, ".jpg") || ds_has_ext(name, ".jpeg"); }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b); /* bytewise: unsigned */
}

st_status ds_list(const char *dir, int dirs, ds_strv *out, st_error *err) {
    memset(out, 0, sizeof *out);
    DIR *dp = opendir(dir);
    if (!dp) {
        char *shown = ds_shown(dir);
        st_errorf(err, ST_ERR_INPUT, "%s: cannot list the folder: %s", shown ? shown : dir,
                  strerror(errno));
        free(shown);
        return ST_ERR_INPUT;
    }
    st_status s = ST_OK;
    struct dirent *e;
    while (s == ST_OK && (e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (dirs) {
            int is_dir = e->d_type == DT_DIR;
            if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) { /* links to class folders count */
                char *p = ds_join(dir, e->d_name);
                if (!p) {
                    s = st_errorf(err, ST_ERR_NOMEM, "out of memory listing %s", dir);
                    break;
                }
                is_dir = ds_is_dir(p);
                free(p);
            }
            if (!is_dir) continue;
        }
        s = ds_strv_push(out, e->d_name, err);
    }
    closedir(dp);
    if (s != ST_OK) {
        ds_strv_free(out);
        return s;
    }
    if (out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return ST_OK;
}

ds_item *ds_items_add(ds_items *it) {
    if (it->n == it->cap) {
        int cap = it->cap ? it->cap * 2 : 64;
        ds_item *v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        it->v = v;
        it->cap = cap;
    }
    ds_item *x = &it->v[it->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void item_free(ds_item *x) {
    free(x->path);
    free(x->boxes);
    for (int i = 0; i < x->n_prob; i++) free(x->prob[i].text);
    free(x->prob);
    memset(x, 0, sizeof *x);
}

void ds_items_free(ds_items *it) {
    for (int i = 0; i < it->n; i++) item_free(&it->v[i]);
    free(it->v);
    memset(it, 0, sizeof *it);
}

st_status ds_item_problem(ds_item *it, int is_img, int kind, st_error *err, const char *fmt, ...) {
    if (it->n_prob == it->cap_prob) {
        int cap = it->cap_prob ? it->cap_prob * 2 : 2;
        ds_problem *v = realloc(it->prob, (size_t)cap * sizeof *v);
        if (!v) return st_errorf(err, ST_ERR_NOMEM, "out of memory recording a problem");
        it->prob = v;
        it->cap_prob = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *t = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!t) return st_errorf(err, ST_ERR_NOMEM, "out of memory recording a problem");
    va_start(ap, fmt);
    vsnprintf(t, (size_t)n + 1, fmt, ap);
    va_end(ap);
    it->prob[it->n_prob++] = (ds_problem){is_img, kind, t};
    return ST_OK;
}

void ds_note(const st_ds_opts *o, const char *fmt, ...) {
    if (!o->log) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("note: ", o->log);
    vfprintf(o->log, fmt, ap);
    fputc('\n', o->log);
    va_end(ap);
}

/* The default detail and the hint for each decoding problem. The report line is
 * "<path>: <problem name>: <detail> (<hint>)"; the detail comes from the decoder's message
 * when it has one (see decoder_detail), these are the fallbacks. */
static void img_default(st_img_problem p, const char **detail, const char **hint) {
    switch (p) {
    case ST_IMG_EMPTY: *detail = "0 bytes"; *hint = "re-export the image or delete it"; break;
    case ST_IMG_TRUNCATED:
        *detail = "the file ends before the image data does";
        *hint = "the copy or download was cut short; copy it again";
        break;
    case ST_IMG_NOT_PNG: *detail = "no PNG signature"; *hint = "convert it to PNG or delete it"; break;
    case ST_IMG_CRC: *detail = "a chunk fails its CRC check"; *hint = "the file is damaged; copy it again"; break;
    case ST_IMG_UNREADABLE:
        *detail = "cannot open or read it";
        *hint = "check that it is a readable regular file, not a folder or a dangling link";
        break;
    case ST_IMG_UNSUPPORTED: *detail = "not a PNG inside"; *hint = "convert it to PNG"; break;
    case ST_IMG_TOO_LARGE: *detail = "over 16384 pixels a side"; *hint = "downscale it"; break;
    default: *detail = "bad image data"; *hint = "re-export the image"; break;
    }
}

/* The decoder words its messages "<path>: <problem name> (<detail>); <hint>" (png.c's
 * img_fail). Its detail is worth keeping (which chunk failed, why a file cannot be
 * opened); the rest is replaced by this module's format. Returns the detail in buf, or
 * NULL when the message does not have that shape (then the default detail is used). */
static const char *decoder_detail(const char *msg, const char *path, st_img_problem p, char *buf,
                                  size_t cap) {
    size_t pl = strlen(path);
    if (!msg || strncmp(msg, path, pl) != 0 || strncmp(msg + pl, ": ", 2) != 0) return NULL;
    const char *rest = msg + pl + 2, *name = st_img_problem_name(p);
    size_t nl = strlen(name);
    if (strncmp(rest, name, nl) != 0 || strncmp(rest + nl, " (", 2) != 0) return NULL;
    rest += nl + 2;
    const char *end = NULL;
    for (const char *q = strstr(rest, "); "); q; q = strstr(q + 1, "); ")) end = q;
    if (!end) return NULL;
    snprintf(buf, cap, "%.*s", (int)ST_MIN((size_t)(end - rest), cap - 1), rest);
    return buf;
}

typedef struct {
    st_img_problem problem; /* ST_IMG_OK: decoded fine */
    st_status status;       /* a failure that is not the file's fault (out of memory) */
    st_image im;
    char *msg;              /* the decoder's message on failure (owned) */
} decode_result;

st_status ds_finish_split(ds_items *items, const st_ds_opts *o, st_split *out, st_ds_report *rep,
                          st_error *err) {
    memset(out, 0, sizeof *out);
    int n = items->n;
    st_status s = ST_OK;
    decode_result *res = calloc((size_t)ST_MAX(n, 1), sizeof *res);
    out->samples = calloc((size_t)ST_MAX(n, 1), sizeof *out->samples);
    if (!res || !out->samples) {
        s = st_errorf(err, ST_ERR_NOMEM, "out of memory indexing %d images", n);
        goto done;
    }
    int nt = o->threads > 0 ? o->threads : omp_get_max_threads();
    int want_c = o->channels;
    int cache = o->cache;
    /* Dynamic schedule: file sizes vary a lot within a dataset. Each iteration writes only
     * its own slot, so no locking is needed and the merge below sees a fixed order. */
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
    for (int i = 0; i < n; i++) {
        const ds_item *it = &items->v[i];
        if (!it->path || it->n_prob) continue;
        st_error e = {0};
        st_img_problem p = ST_IMG_OK;
        st_image im = {0};
        st_status r = st_png_read(it->path, want_c, &im, &p, &e);
        if (r != ST_OK) {
            res[i].msg = ds_strdup(e.msg); /* NULL when out of memory: the default is used */
            if (r == ST_ERR_INPUT) res[i].problem = p != ST_IMG_OK ? p : ST_IMG_CORRUPT;
            else res[i].status = r;
        } else if (cache) {
            res[i].im = im;
        } else {
            st_image_free(&im);
        }
    }
    for (int i = 0; i < n; i++)
        if (res[i].status != ST_OK) {
            s = st_errorf(err, res[i].status, "%s", res[i].msg ? res[i].msg : "out of memory");
            goto done;
        }

    for (int i = 0; i < n; i++) {
        ds_item *it = &items->v[i];
        if (it->is_image) rep->images_seen++;
        int bad = it->n_prob > 0 || res[i].problem != ST_IMG_OK;
        for (int k = 0; k < it->n_prob; k++) {
            const ds_problem *pr = &it->prob[k];
            if (o->strict) {
                s = st_errorf(err, ST_ERR_INPUT, "%s", pr->text);
                goto done;
            }
            if (o->log) fprintf(o->log, "skip: %s\n", pr->text);
            if (pr->is_img) rep->img_problems[pr->kind]++;
            else rep->lbl_problems[pr->kind]++;
        }
        if (res[i].problem != ST_IMG_OK) {
            const char *detail, *hint, *name = st_img_problem_name(res[i].problem);
            char dbuf[512];
            img_default(res[i].problem, &detail, &hint);
            const char *dd = decoder_detail(res[i].msg, it->path, res[i].problem, dbuf, sizeof dbuf);
            char *shown = ds_shown(it->path);
            char *shown_detail = ds_shown(dd ? dd : detail); /* it may quote the path */
            if (!shown || !shown_detail) {
                free(shown);
                free(shown_detail);
                s = st_errorf(err, ST_ERR_NOMEM, "out of memory");
                goto done;
            }
            if (o->strict) s = st_errorf(err, ST_ERR_INPUT, "%s: %s: %s (%s)", shown, name, shown_detail, hint);
            else if (o->log) fprintf(o->log, "skip: %s: %s: %s (%s)\n", shown, name, shown_detail, hint);
            free(shown_detail);
            free(shown);
            if (o->strict) goto done;
            rep->img_problems[res[i].problem]++;
        }
        if (bad) {
            if (it->is_image) rep->images_skipped++;
            continue;
        }
        if (!it->path) continue;
        st_sample *smp = &out->samples[out->n++];
        smp->path = it->path;
        smp->label = it->label;
        smp->n_boxes = it->n_boxes;
        smp->boxes = it->boxes;
        smp->cached = res[i].im;
        res[i].im = (st_image){0};
        it->path = NULL;
        it->boxes = NULL;
    }
done:
    if (res)
        for (int i = 0; i < n; i++) {
            st_image_free(&res[i].im);
            free(res[i].msg);
        }
    free(res);
    ds_items_free(items);
    if (s != ST_OK) {
        for (int i = 0; i < out->n; i++) {
            free(out->samples[i].path);
            free(out->samples[i].boxes);
            st_image_free(&out->samples[i].cached);
        }
        free(out->samples);
        memset(out, 0, sizeof *out);
    }
    return s;
}
