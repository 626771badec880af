/* Internals shared by the dataset indexers (dataset.c, folder.c, yolo.c, yaml_meta.c);
 * not part of the public API.
 *
 * Each indexer turns a split into an ordered list of items (one per candidate image, plus
 * problem-only items such as orphan label files), recording the problems it can see
 * without decoding (file names, label lines). ds_finish_split then decodes the remaining
 * images in parallel and, in item order, reports every problem once, counts it, and keeps
 * the good items. Doing the reporting after the parallel part keeps the log and the
 * counts identical whatever the thread count. */
#ifndef ST_DS_INTERNAL_H
#define ST_DS_INTERNAL_H

#include <stdarg.h>

#include "st_dataset.h"

/* More classes than this cannot come from real data; the cap keeps a stray class id of
 * 2e9 in a label file from allocating a name table of that size. */
#define DS_MAX_CLASSES 100000

/* A growable list of owned strings. */
typedef struct {
    char **v;
    int n, cap;
} ds_strv;
st_status ds_strv_push(ds_strv *s, const char *str, st_error *err); /* copies str */
void ds_strv_free(ds_strv *s);

char *ds_strdup(const char *s);
char *ds_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *ds_join(const char *dir, const char *name); /* "dir/name"; NULL when out of memory */
int ds_is_dir(const char *path);                   /* follows links */
int ds_is_file(const char *path);                  /* a regular file, following links */
int ds_utf8_valid(const char *s);
/* s made safe for a one-line report: control bytes and (if s is not valid UTF-8) bytes
 * >= 0x80 become \xNN. NULL when out of memory. */
char *ds_shown(const char *s);
/* The same for n raw bytes (label lines may hold anything), cut after max_chars with
 * "...". */
char *ds_shown_n(const char *s, size_t n, size_t max_chars);
int ds_has_ext(const char *name, const char *ext); /* ext with the dot; ASCII case-insensitive */
int ds_is_png_name(const char *name);
int ds_is_jpeg_name(const char *name);

/* Sorted (bytewise) names in dir, without "." and "..": only folders when dirs is set,
 * otherwise every entry (files, links, and folders too: a folder named x.png is reported
 * as an unreadable image rather than silently ignored). */
st_status ds_list(const char *dir, int dirs, ds_strv *out, st_error *err);

/* One problem: which counter it goes to and its report line without the "skip: ". */
typedef struct {
    int is_img; /* 1: img_problems[kind], 0: lbl_problems[kind] */
    int kind;
    char *text; /* "<path>[:line]: <what> (<hint>)" */
} ds_problem;

typedef struct {
    char *path;   /* image file; NULL for a problem-only item */
    int is_image; /* counts in images_seen (and images_skipped when it has problems) */
    int label;
    int n_boxes;
    st_box *boxes;
    int n_prob, cap_prob;
    ds_problem *prob;
} ds_item;

typedef struct {
    ds_item *v;
    int n, cap;
} ds_items;

/* Appends a zeroed item; NULL when out of memory. */
ds_item *ds_items_add(ds_items *it);
void ds_items_free(ds_items *it);
st_status ds_item_problem(ds_item *it, int is_img, int kind, st_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Decodes the items without problems (OpenMP, o->threads), then in item order: logs each
 * problem as "skip: <text>" to o->log (or, in strict mode, returns ST_ERR_INPUT with the
 * first one's text), counts it in rep, and moves the good items, with their pixels when
 * o->cache, into out. items is emptied either way. */
st_status ds_finish_split(ds_items *items, const st_ds_opts *o, st_split *out, st_ds_report *rep,
                          st_error *err);

/* Writes "note: ..." to o->log: facts worth knowing that are not problems (an empty
 * class, a split without label files). */
void ds_note(const st_ds_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What data.yaml says. nc is -1 when absent; train/val NULL when absent. */
typedef struct {
    int nc;
    int n_names;
    char **names;
    char *train, *val;
} ds_yaml_meta;
/* Reads a YOLO data.yaml: nc, names (a list or a mapping {0: name}), train and val
 * (folders relative to the dataset root); other keys are ignored. Malformed YAML or
 * inconsistent values: ST_ERR_INPUT naming the file, line and column. */
st_status ds_read_data_yaml(const char *path, ds_yaml_meta *m, st_error *err);
void ds_yaml_meta_free(ds_yaml_meta *m);

st_status ds_open_folder(const char *root, const st_ds_opts *o, st_dataset *d, st_error *err);
st_status ds_open_yolo(const char *root, const st_ds_opts *o, st_dataset *d, st_error *err);

#endif
