/* YOLO detection layout: ROOT/images/<split>/<stem>.png with ROOT/labels/<split>/<stem>.txt,
 * one box per line, "class cx cy w h" normalised to [0, 1]; optional ROOT/data.yaml
 * (nc, names, and train/val folders such as images/training for the ultralytics
 * variant). Policies follow YOLOv5 so a set that trains there trains here:
 *   - an image without a label file is a background image (no boxes);
 *   - one bad line makes the whole image unusable (skipping only the line would train
 *     on an image with an unlabelled object, teaching the model it is background);
 *   - a label file without its image is reported but costs nothing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_internal.h"

/* Label files are a few lines per object; anything this big is not a label file. */
#define LABEL_MAX_BYTES ((size_t)64 << 20)
/* Bad lines are quoted in reports up to this many characters. */
#define LINE_SHOWN 120

static st_status oom(st_error *err) { return st_errorf(err, ST_ERR_NOMEM, "out of memory indexing the dataset"); }

typedef struct {
    const char *name; /* label file name */
    size_t stem_len;
    int used;
} lbl_entry;

typedef struct {
    const char *img_rel, *lbl_rel; /* as shown in messages: "images/train" */
    char *img_dir, *lbl_dir;
    ds_strv imgs, lbls;
    lbl_entry *lbl;
    int n_lbl;
    ds_items items;
} split_idx;

static int cmp_stem(const void *a, const void *b) {
    const lbl_entry *x = a, *y = b;
    size_t n = ST_MIN(x->stem_len, y->stem_len);
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->stem_len < y->stem_len ? -1 : x->stem_len > y->stem_len;
}

static lbl_entry *find_label(split_idx *sp, const char *img_name) {
    const char *dot = strrchr(img_name, '.');
    lbl_entry key = {img_name, (size_t)(dot - img_name), 0};
    return sp->n_lbl ? bsearch(&key, sp->lbl, (size_t)sp->n_lbl, sizeof key, cmp_stem) : NULL;
}

/* Reads a whole label file; NULL with *why set when it cannot be used. */
static char *read_all(const char *path, size_t *len, const char **why) {
    struct stat sb;
    if (stat(path, &sb) != 0) return *why = strerror(errno), NULL;
    if (!S_ISREG(sb.st_mode)) return *why = "not a regular file", NULL;
    if ((size_t)sb.st_size > LABEL_MAX_BYTES) return *why = "over 64 MiB, not a label file", NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return *why = strerror(errno), NULL;
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return *why = "out of memory", NULL;
    }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { /* grew since stat: keep reading, within the cap */
            char *nb = n < LABEL_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return *why = "over 64 MiB, not a label file", NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return *why = "read error", NULL;
    }
    *len = n;
    return buf;
}

/* A finite decimal number filling the whole token ("nan" and "inf" are not data). */
static int parse_num(const char *tok, size_t n, double *v) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, tok, n);
    buf[n] = 0;
    char *end;
    *v = strtod(buf, &end);
    return end == buf + n && isfinite(*v);
}

/* Checks one non-empty line; on success appends its box to it. A bad line becomes one
 * problem on the item. nc < 0: no data.yaml, any id in [0, DS_MAX_CLASSES) goes. */
static st_status parse_line(ds_item *it, const char *shown_lbl, int lineno, const char *line,
                            size_t len, int nc, st_error *err) {
    static const char *const field[5] = {"class id", "cx", "cy", "w", "h"};
    const char *tok[5];
    size_t tlen[5];
    int nf = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && strchr(" \t\r\v\f", line[i]) && line[i]) i++;
        if (i >= len) break;
        size_t st = i;
        while (i < len && !(strchr(" \t\r\v\f", line[i]) && line[i])) i++;
        if (nf < 5) tok[nf] = line + st, tlen[nf] = i - st;
        nf++;
    }
    if (nf == 0) return ST_OK; /* blank line: ignored, as YOLOv5 does */
    char *shown_line = ds_shown_n(line, len, LINE_SHOWN);
    if (!shown_line) return oom(err);
    /* Every problem is "<file>:<line>: <what> (the line: '...')". */
#define BAD(kind, ...)                                                                         \
    do {                                                                                       \
        char what_[256];                                                                       \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                            \
        st_status s_ = ds_item_problem(it, 0, kind, err, "%s:%d: %s (the line: '%s')",         \
                                       shown_lbl, lineno, what_, shown_line);                  \
        free(shown_line);                                                                      \
        return s_;                                                                             \
    } while (0)
    if (nf != 5)
        BAD(ST_LBL_FIELDS, "%d field%s, expected 5: class cx cy w h%s", nf, nf == 1 ? "" : "s",
            nf > 5 ? "; segment polygons and keypoints are not supported" : "");
    double v[5];
    for (int k = 0; k < 5; k++)
        if (!parse_num(tok[k], tlen[k], &v[k])) {
            char *t = ds_shown_n(tok[k], tlen[k], 40);
            if (!t) {
                free(shown_line);
                return oom(err);
            }
            char msg[128];
            snprintf(msg, sizeof msg, "%s '%s' is not a number", field[k], t);
            free(t);
            BAD(ST_LBL_NOT_NUMBER, "%s", msg);
        }
    if (v[0] != floor(v[0])) BAD(ST_LBL_NOT_NUMBER, "class id %g is not an integer", v[0]);
    if (nc >= 0 && (v[0] < 0 || v[0] >= nc))
        BAD(ST_LBL_CLASS_RANGE, "class id %g is out of range [0, %d) set by nc in data.yaml", v[0], nc);
    if (nc < 0 && v[0] < 0) BAD(ST_LBL_CLASS_RANGE, "class id %g is negative", v[0]);
    if (nc < 0 && v[0] >= DS_MAX_CLASSES)
        BAD(ST_LBL_CLASS_RANGE, "class id %g is over %d, the most accepted without data.yaml", v[0],
            DS_MAX_CLASSES);
    for (int k = 1; k < 5; k++)
        if (v[k] < 0 || v[k] > 1)
            BAD(ST_LBL_COORD_RANGE, "%s = %g is outside [0, 1]; coordinates are fractions of the image size",
                field[k], v[k]);
    if (v[3] == 0 || v[4] == 0) BAD(ST_LBL_ZERO_SIZE, "zero-size box (w = %g, h = %g)", v[3], v[4]);
#undef BAD
    free(shown_line);
    st_box *nb = realloc(it->boxes, (size_t)(it->n_boxes + 1) * sizeof *nb);
    if (!nb) return oom(err);
    it->boxes = nb;
    it->boxes[it->n_boxes++] = (st_box){(int)v[0], (float)v[1], (float)v[2], (float)v[3], (float)v[4]};
    return ST_OK;
}

static st_status parse_label_file(ds_item *it, const char *path, int nc, st_error *err) {
    char *shown = ds_shown(path);
    if (!shown) return oom(err);
    size_t len = 0;
    const char *why = NULL;
    char *buf = read_all(path, &len, &why);
    st_status s = ST_OK;
    if (!buf) {
        /* The image cannot be used without knowing its boxes; counted as unreadable. */
        s = ds_item_problem(it, 1, ST_IMG_UNREADABLE, err,
                            "%s: %s: cannot read the label file: %s (check that it is a readable file)",
                            shown, st_img_problem_name(ST_IMG_UNREADABLE), why);
    } else {
        int lineno = 0;
        for (size_t i = 0; s == ST_OK && i < len;) {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t e = nl ? (size_t)(nl - buf) : len;
            s = parse_line(it, shown, ++lineno, buf + i, e - i, nc, err);
            i = e + 1;
        }
    }
    free(buf);
    free(shown);
    return s;
}

/* "images/train" -> "labels/train", replacing the last path component named "images"
 * (as ultralytics does). NULL when there is none or out of memory (*none set then). */
static char *labels_for(const char *img_rel, int *none) {
    *none = 0;
    size_t n = strlen(img_rel);
    for (size_t i = n; i-- > 0;) {
        if (strncmp(img_rel + i, "images", 6) != 0) continue;
        int start = i == 0 || img_rel[i - 1] == '/';
        int end = img_rel[i + 6] == 0 || img_rel[i + 6] == '/';
        if (!start || !end) continue;
        char *o = ds_strdup(img_rel);
        if (o) memcpy(o + i, "labels", 6);
        return o;
    }
    *none = 1;
    return NULL;
}

static st_status index_split(const char *root, split_idx *sp, int nc, const st_ds_opts *o, st_error *err) {
    st_status s = ds_list(sp->img_dir, 0, &sp->imgs, err);
    if (s != ST_OK) return s;
    if (ds_is_dir(sp->lbl_dir)) {
        ds_strv all;
        if ((s = ds_list(sp->lbl_dir, 0, &all, err)) != ST_OK) return s;
        for (int i = 0; s == ST_OK && i < all.n; i++)
            if (ds_has_ext(all.v[i], ".txt")) s = ds_strv_push(&sp->lbls, all.v[i], err);
        ds_strv_free(&all);
        if (s != ST_OK) return s;
        sp->lbl = calloc((size_t)ST_MAX(sp->lbls.n, 1), sizeof *sp->lbl);
        if (!sp->lbl) return oom(err);
        for (int i = 0; i < sp->lbls.n; i++)
            sp->lbl[i] = (lbl_entry){sp->lbls.v[i], strlen(sp->lbls.v[i]) - 4, 0};
        sp->n_lbl = sp->lbls.n;
        /* Sorted by stem, not name: "a b.txt" < "a.txt" but "a" < "a b". */
        qsort(sp->lbl, (size_t)sp->n_lbl, sizeof *sp->lbl, cmp_stem);
    }
    int n_img = 0;
    for (int i = 0; i < sp->imgs.n; i++) {
        const char *name = sp->imgs.v[i];
        int png = ds_is_png_name(name), jpeg = ds_is_jpeg_name(name);
        if (!png && !jpeg) continue;
        n_img++;
        lbl_entry *le = find_label(sp, name);
        if (le) le->used = 1; /* also for skipped images: their label is not an orphan */
        ds_item *it = ds_items_add(&sp->items);
        char *path = ds_join(sp->img_dir, name);
        char *shown = path ? ds_shown(path) : NULL;
        if (!it || !shown) {
            free(path);
            free(shown);
            return oom(err);
        }
        it->is_image = 1;
        if (!ds_utf8_valid(name))
            s = ds_item_problem(it, 0, ST_LBL_BAD_NAME, err,
                                "%s: file name is not valid UTF-8 (rename it and its label file)", shown);
        else if (jpeg)
            s = ds_item_problem(it, 1, ST_IMG_UNSUPPORTED, err, "%s: JPEG is not supported (convert to PNG)",
                                shown);
        else if (le) {
            char *lp = ds_join(sp->lbl_dir, le->name);
            s = lp ? parse_label_file(it, lp, nc, err) : oom(err);
            free(lp);
        }
        free(shown);
        if (s == ST_OK && png && !it->n_prob) it->path = path;
        else free(path);
        if (s != ST_OK) return s;
    }
    /* Label files left over, in name order (sp->lbls is sorted by name). */
    for (int i = 0; i < sp->lbls.n; i++) {
        lbl_entry key = {sp->lbls.v[i], strlen(sp->lbls.v[i]) - 4, 0};
        lbl_entry *le = bsearch(&key, sp->lbl, (size_t)sp->n_lbl, sizeof key, cmp_stem);
        while (le > sp->lbl && cmp_stem(le - 1, &key) == 0) le--; /* a.txt and a.TXT */
        while (le->name != key.name) le++;
        if (le->used) continue;
        ds_item *it = ds_items_add(&sp->items);
        char *path = ds_join(sp->lbl_dir, le->name);
        char *shown = path ? ds_shown(path) : NULL;
        if (!it || !shown) s = oom(err);
        else if (!ds_utf8_valid(le->name))
            s = ds_item_problem(it, 0, ST_LBL_BAD_NAME, err, "%s: file name is not valid UTF-8 (rename it)",
                                shown);
        else
            s = ds_item_problem(it, 0, ST_LBL_ORPHAN, err,
                                "%s: label file without image (no %s/%.*s.png; add the image or delete the file)",
                                shown, sp->img_rel, (int)le->stem_len, le->name);
        free(path);
        free(shown);
        if (s != ST_OK) return s;
    }
    if (n_img > 0 && sp->lbls.n == 0)
        ds_note(o, "%s/%s: no label files; every image in %s is background (no boxes)", root, sp->lbl_rel,
                sp->img_rel);
    return ST_OK;
}

static void split_free(split_idx *sp) {
    free(sp->img_dir);
    free(sp->lbl_dir);
    free((char *)sp->lbl_rel);
    ds_strv_free(&sp->imgs);
    ds_strv_free(&sp->lbls);
    free(sp->lbl);
    ds_items_free(&sp->items);
}

/* Resolves a split's folders. *present is 0 for an absent default val folder. */
static st_status split_dirs(const char *root, const char *yaml_path, const char *key, const char *rel,
                            int from_yaml, split_idx *sp, int *present, st_error *err) {
    *present = 0;
    sp->img_rel = rel;
    sp->img_dir = rel[0] == '/' ? ds_strdup(rel) : ds_join(root, rel);
    if (!sp->img_dir) return oom(err);
    if (!ds_is_dir(sp->img_dir)) {
        if (from_yaml)
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: '%s' is not a folder (looked for %s)", yaml_path, key,
                             rel, sp->img_dir);
        if (strcmp(key, "train") == 0)
            return st_errorf(err, ST_ERR_INPUT,
                             "%s: no such folder; YOLO expects images/train/*.png with "
                             "labels/train/*.txt (and images/val, labels/val)",
                             sp->img_dir);
        return ST_OK;
    }
    int none;
    sp->lbl_rel = labels_for(rel, &none);
    if (none)
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: %s: '%s' has no folder named 'images' in it; the labels are looked "
                         "for in the matching 'labels' folder (images/x -> labels/x)",
                         yaml_path, key, rel);
    if (!sp->lbl_rel) return oom(err);
    sp->lbl_dir = sp->lbl_rel[0] == '/' ? ds_strdup(sp->lbl_rel) : ds_join(root, sp->lbl_rel);
    if (!sp->lbl_dir) return oom(err);
    *present = 1;
    return ST_OK;
}

st_status ds_open_yolo(const char *root, const st_ds_opts *o, st_dataset *d, st_error *err) {
    d->kind = ST_DS_YOLO;
    ds_yaml_meta meta = {.nc = -1};
    split_idx tr = {0}, va = {0};
    int has_val = 0, has_train = 0;
    st_status s = ST_OK;
    char *yaml_path = ds_join(root, "data.yaml");
    if (!yaml_path) return oom(err);
    struct stat sb;
    int has_yaml = stat(yaml_path, &sb) == 0 || lstat(yaml_path, &sb) == 0;
    if (has_yaml && (s = ds_read_data_yaml(yaml_path, &meta, err)) != ST_OK) goto done;
    if ((s = split_dirs(root, yaml_path, "train", meta.train ? meta.train : "images/train", meta.train != NULL,
                        &tr, &has_train, err)) != ST_OK)
        goto done;
    if ((s = split_dirs(root, yaml_path, "val", meta.val ? meta.val : "images/val", meta.val != NULL, &va,
                        &has_val, err)) != ST_OK)
        goto done;
    if ((s = index_split(root, &tr, meta.nc, o, err)) != ST_OK) goto done;
    if (has_val && (s = index_split(root, &va, meta.nc, o, err)) != ST_OK) goto done;

    int nc = meta.nc;
    if (nc < 0) { /* no data.yaml: as many classes as the largest id in a usable line */
        nc = 0;
        for (int k = 0; k < 2; k++) {
            const ds_items *its = k ? &va.items : &tr.items;
            for (int i = 0; i < its->n; i++)
                for (int b = 0; b < its->v[i].n_boxes; b++) nc = ST_MAX(nc, its->v[i].boxes[b].cls + 1);
        }
    }
    d->class_names = calloc((size_t)ST_MAX(nc, 1), sizeof *d->class_names);
    if (!d->class_names) {
        s = oom(err);
        goto done;
    }
    for (int c = 0; c < nc; c++) {
        d->class_names[c] = meta.names ? ds_strdup(meta.names[c]) : ds_printf("%d", c);
        if (!d->class_names[c]) {
            s = oom(err);
            goto done;
        }
        d->n_classes = c + 1;
    }
    d->n_classes = nc;

    if ((s = ds_finish_split(&tr.items, o, &d->train, &d->report, err)) != ST_OK) goto done;
    int train_skipped = d->report.images_skipped;
    if (has_val && (s = ds_finish_split(&va.items, o, &d->val, &d->report, err)) != ST_OK) goto done;
    if (d->train.n == 0) {
        s = st_errorf(err, ST_ERR_INPUT, "no usable image in %s: %d skipped%s", tr.img_dir, train_skipped,
                      train_skipped ? ", see above" : "; expected *.png files");
        goto done;
    }
    /* The summary prints it as "N classes (<about>)". */
    const char *names_from = meta.names   ? "from data.yaml"
                             : meta.nc >= 0 ? "nc from data.yaml, names are the ids"
                             : has_yaml     ? "data.yaml without nc: nc = largest class id + 1, names are the ids"
                                            : "no data.yaml: nc = largest class id + 1, names are the ids";
    d->about = ds_printf("%s%s", names_from, has_val ? "" : "; no val split (images/val absent)");
    if (!d->about) s = oom(err);
done:
    split_free(&tr);
    split_free(&va);
    ds_yaml_meta_free(&meta);
    free(yaml_path);
    return s;
}
