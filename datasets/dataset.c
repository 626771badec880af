/* Dataset front door: layout detection, the IDX layout, the summary, and loading a
 * sample's pixels. ImageFolder and YOLO indexing live in folder.c and yolo.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_internal.h"

#define LOOKED_FOR                                                                             \
    "expected train-images-idx3-ubyte[.gz] (IDX), train/<class>/*.png (ImageFolder) or "      \
    "images/train + labels/train (YOLO)"

void st_ds_opts_default(st_ds_opts *o) {
    memset(o, 0, sizeof *o);
    o->channels = 3;
    o->log = stderr;
}

const char *st_ds_kind_name(st_ds_kind k) {
    switch (k) {
    case ST_DS_IDX: return "IDX";
    case ST_DS_FOLDER: return "ImageFolder";
    case ST_DS_YOLO: return "YOLO";
    }
    return "unknown";
}

const char *st_lbl_problem_name(st_lbl_problem p) {
    switch (p) {
    case ST_LBL_FIELDS: return "bad label line";
    case ST_LBL_NOT_NUMBER: return "non-numeric label field";
    case ST_LBL_CLASS_RANGE: return "class id out of range";
    case ST_LBL_COORD_RANGE: return "coordinate out of range";
    case ST_LBL_ZERO_SIZE: return "zero-size box";
    case ST_LBL_ORPHAN: return "label file without image";
    case ST_LBL_BAD_NAME: return "non-UTF-8 file name";
    case ST_LBL_PROBLEM_COUNT: break;
    }
    return "unknown label problem";
}

static void split_free(st_split *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->samples[i].path);
        free(s->samples[i].boxes);
        st_image_free(&s->samples[i].cached);
    }
    free(s->samples);
    memset(s, 0, sizeof *s);
}

void st_dataset_free(st_dataset *d) {
    if (!d) return;
    split_free(&d->train);
    split_free(&d->val);
    if (d->class_names)
        for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d->root);
    free(d->about);
    st_mnist_free(&d->idx);
    memset(d, 0, sizeof *d);
}

/* "dir/train-images-idx3-ubyte" or its .gz: the file that marks an IDX dataset (the
 * other three are then required, and st_mnist_load names whichever is missing). */
static int looks_idx(const char *root) {
    static const char *const names[] = {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"};
    for (int i = 0; i < 2; i++) {
        char *p = ds_join(root, names[i]);
        int ok = p && ds_is_file(p);
        free(p);
        if (ok) return 1;
    }
    return 0;
}

static int has_dir(const char *root, const char *rel) {
    char *p = ds_join(root, rel);
    int ok = p && ds_is_dir(p);
    free(p);
    return ok;
}

static st_status fill_idx_split(st_split *s, int n, const uint8_t *labels, st_error *err) {
    s->samples = calloc((size_t)ST_MAX(n, 1), sizeof *s->samples);
    if (!s->samples) return st_errorf(err, ST_ERR_NOMEM, "out of memory indexing %d images", n);
    s->n = n;
    for (int i = 0; i < n; i++) s->samples[i].label = labels[i];
    return ST_OK;
}

static st_status open_idx(const char *root, st_dataset *d, st_error *err) {
    d->kind = ST_DS_IDX;
    st_status s = st_mnist_load(root, &d->idx, err);
    if (s != ST_OK) return s;
    const st_mnist *m = &d->idx;
    if ((s = fill_idx_split(&d->train, m->n_train, m->train_y, err)) != ST_OK) return s;
    if ((s = fill_idx_split(&d->val, m->n_test, m->test_y, err)) != ST_OK) return s;
    d->report.images_seen = m->n_train + m->n_test;
    /* IDX files carry no class names; MNIST and Fashion-MNIST cannot be told apart. */
    d->class_names = calloc((size_t)ST_MAX(m->n_classes, 1), sizeof *d->class_names);
    if (!d->class_names) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    for (int c = 0; c < m->n_classes; c++) {
        if (!(d->class_names[c] = ds_printf("%d", c))) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        d->n_classes = c + 1;
    }
    d->about = ds_strdup("from the IDX labels; val = the t10k files");
    if (!d->about) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

static int dir_is_empty(const char *root) {
    ds_strv v;
    st_error e;
    if (ds_list(root, 0, &v, &e) != ST_OK) return 0;
    int empty = v.n == 0;
    ds_strv_free(&v);
    return empty;
}

st_status st_dataset_open(const char *root, const st_ds_opts *o, st_dataset *out, st_error *err) {
    memset(out, 0, sizeof *out);
    st_ds_opts defaults;
    if (!o) {
        st_ds_opts_default(&defaults);
        o = &defaults;
    }
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return st_errorf(err, ST_ERR_INPUT, "dataset: channels must be 1 or 3, not %d", o->channels);
    if (!root || !*root) return st_errorf(err, ST_ERR_INPUT, "dataset: no folder given; " LOOKED_FOR);
    struct stat sb;
    if (stat(root, &sb) != 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: cannot open the dataset folder: %s", root, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return st_errorf(err, ST_ERR_INPUT,
                         "%s: not a folder; pass the folder that holds the dataset (" LOOKED_FOR ")", root);
    /* "imgs/" and "imgs" name the same set; keep messages free of "imgs//train". */
    out->root = ds_strdup(root);
    if (!out->root) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    for (size_t n = strlen(out->root); n > 1 && out->root[n - 1] == '/'; n--) out->root[n - 1] = 0;
    const char *r = out->root;

    st_status s;
    /* YOLO before ImageFolder: images/ + labels/ is the stronger sign, and a YOLO set may
     * also have a train/ folder lying around, while no ImageFolder set has labels/. */
    if (looks_idx(r)) s = open_idx(r, out, err);
    else if (has_dir(r, "images") && has_dir(r, "labels")) s = ds_open_yolo(r, o, out, err);
    else if (has_dir(r, "train")) s = ds_open_folder(r, o, out, err);
    else
        s = st_errorf(err, ST_ERR_INPUT, "%s: no dataset found%s; " LOOKED_FOR, r,
                      dir_is_empty(r) ? " (the folder is empty)" : "");
    if (s != ST_OK) st_dataset_free(out);
    return s;
}

typedef struct {
    int count;
    const char *name;
} kind_count;

static int cmp_count(const void *a, const void *b) {
    const kind_count *x = a, *y = b;
    return y->count - x->count; /* most frequent first; qsort ties broken below */
}

void st_dataset_print_summary(const st_dataset *d, FILE *f) {
    static const char *const what[] = {"IDX (MNIST format) classification set",
                                       "ImageFolder classification set", "YOLO detection set"};
    fprintf(f, "data: %s: %s, %d train / %d val images, %d classes (%s)\n", d->root,
            what[d->kind], d->train.n, d->val.n, d->n_classes, d->about ? d->about : "");
    const st_ds_report *r = &d->report;
    kind_count k[ST_IMG_PROBLEM_COUNT + ST_LBL_PROBLEM_COUNT];
    int n = 0;
    for (int i = 1; i < ST_IMG_PROBLEM_COUNT; i++)
        if (r->img_problems[i] > 0) k[n++] = (kind_count){r->img_problems[i], st_img_problem_name(i)};
    for (int i = 0; i < ST_LBL_PROBLEM_COUNT; i++)
        if (r->lbl_problems[i] > 0) k[n++] = (kind_count){r->lbl_problems[i], st_lbl_problem_name(i)};
    if (n == 0) return;
    /* Insertion sort: stable, so equal counts keep image problems first, in enum order. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cmp_count(&k[j - 1], &k[j]) > 0; j--) {
            kind_count t = k[j];
            k[j] = k[j - 1];
            k[j - 1] = t;
        }
    fprintf(f, "skipped %d of %d images: ", r->images_skipped, r->images_seen);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d %s", i ? ", " : "", k[i].count, k[i].name);
    fputc('\n', f);
}

/* Gray <-> RGB for pixels that are already decoded (IDX arrays, cached images). Gray
 * from RGB is the decoder's formula (OpenCV's 14-bit fixed-point BT.601, png.c), so a
 * cached RGB image converted here equals the same file decoded straight to gray. */
static st_status convert(const uint8_t *src, int sc, int h, int w, int dc, st_image *out, st_error *err) {
    if (st_image_alloc(out, dc, h, w) != ST_OK)
        return st_errorf(err, ST_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    size_t np = (size_t)h * w;
    uint8_t *d = out->data;
    if (sc == dc) memcpy(d, src, np * (size_t)sc);
    else if (sc == 1)
        for (size_t i = 0; i < np; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = src[i];
    else
        for (size_t i = 0; i < np; i++)
            d[i] = (uint8_t)((src[3 * i] * 4899u + src[3 * i + 1] * 9617u + src[3 * i + 2] * 1868u + 8192u) >> 14);
    return ST_OK;
}

st_status st_dataset_load_image(const st_dataset *d, const st_split *s, int i, int channels,
                                st_image *out, int *borrowed, st_error *err) {
    memset(out, 0, sizeof *out);
    *borrowed = 0;
    /* a split may be a trimmed copy (--train-limit): recognise it by its samples */
    int is_train = s->samples == d->train.samples && s->n <= d->train.n;
    int is_val = s->samples == d->val.samples && s->n <= d->val.n;
    if (!is_train && !is_val)
        return st_errorf(err, ST_ERR_INTERNAL, "dataset: split is not one of this dataset's");
    if (i < 0 || i >= s->n)
        return st_errorf(err, ST_ERR_INTERNAL, "dataset: sample %d out of range [0, %d)", i, s->n);
    if (channels != 0 && channels != 1 && channels != 3)
        return st_errorf(err, ST_ERR_INTERNAL, "dataset: channels must be 1 or 3, not %d", channels);
    const st_sample *smp = &s->samples[i];
    if (smp->cached.data) {
        if (channels == 0 || channels == smp->cached.c) { /* lend: no copy per epoch */
            *out = smp->cached;
            *borrowed = 1;
            return ST_OK;
        }
        return convert(smp->cached.data, smp->cached.c, smp->cached.h, smp->cached.w, channels, out, err);
    }
    if (d->kind == ST_DS_IDX) {
        const st_mnist *m = &d->idx;
        size_t np = (size_t)m->rows * m->cols;
        const uint8_t *px = (is_train ? m->train_x : m->test_x) + (size_t)i * np;
        return convert(px, 1, m->rows, m->cols, channels ? channels : 1, out, err);
    }
    st_img_problem p;
    return st_png_read(smp->path, channels, out, &p, err);
}
