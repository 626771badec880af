/* Datasets as users bring them, found by looking at the folder:
 *   IDX        MNIST / Fashion-MNIST files (train-images-idx3-ubyte[.gz], ...)
 *   ImageFolder DATA/train/<class>/<image>.png and DATA/val/<class>/<image>.png (classes sorted)
 *   YOLO       DATA/images/{train,val}/<stem>.png + DATA/labels/{train,val}/<stem>.txt, each line
 *              "class cx cy w h" normalised to [0, 1]; optional DATA/data.yaml (nc, names)
 * Opening a dataset indexes it and validates every file once (images are decoded; the
 * decoded pixels may be kept as a RAM cache). Broken files are reported once each with
 * their path (and line), skipped, and counted; with strict, any of them is an error. */
#ifndef ST_DATASET_H
#define ST_DATASET_H

#include <stdio.h>

#include "st_idx.h"
#include "st_image.h"

typedef enum { ST_DS_IDX = 0, ST_DS_FOLDER = 1, ST_DS_YOLO = 2 } st_ds_kind;

typedef struct st_box {
    int cls;
    float cx, cy, w, h; /* normalised to [0, 1] of the original image */
} st_box;

typedef struct st_sample {
    char *path;       /* image file (NULL for IDX) */
    int label;        /* class (classification) */
    int n_boxes;      /* detection */
    st_box *boxes;
    st_image cached;  /* decoded pixels when the cache is on (data == NULL otherwise) */
} st_sample;

typedef struct st_split {
    int n;
    st_sample *samples;
} st_split;

/* Label-file problems, counted next to st_img_problem in the summary. */
typedef enum {
    ST_LBL_FIELDS = 0,     /* a line without exactly 5 fields */
    ST_LBL_NOT_NUMBER,     /* a field that is not a number */
    ST_LBL_CLASS_RANGE,    /* class id < 0 or >= nc */
    ST_LBL_COORD_RANGE,    /* a coordinate < 0 or > 1 */
    ST_LBL_ZERO_SIZE,      /* w or h == 0 */
    ST_LBL_ORPHAN,         /* a label file whose image is missing */
    ST_LBL_BAD_NAME,       /* a file name that is not valid UTF-8 */
    ST_LBL_PROBLEM_COUNT
} st_lbl_problem;
const char *st_lbl_problem_name(st_lbl_problem p);

typedef struct st_ds_report {
    int images_seen;                       /* candidates found, before skipping */
    int images_skipped;
    int img_problems[ST_IMG_PROBLEM_COUNT];
    int lbl_problems[ST_LBL_PROBLEM_COUNT];
} st_ds_report;

typedef struct st_ds_opts {
    int strict;        /* any broken file is an error (ST_ERR_INPUT) */
    int cache;         /* keep decoded images in RAM (uint8) */
    int channels;      /* channels the model wants (1 or 3); decoded images are converted
                        * (0: each image keeps its own: 1 for gray files, 3 for colour) */
    int threads;       /* for validation/decoding at open (0: OpenMP default) */
    FILE *log;         /* one line per broken file; NULL: silent */
} st_ds_opts;

typedef struct st_dataset {
    st_ds_kind kind;
    char *root;
    int n_classes;
    char **class_names;  /* [n_classes] */
    st_split train, val;
    st_mnist idx;        /* IDX data in memory (kind == ST_DS_IDX) */
    st_ds_report report;
    char *about;         /* where classes and splits came from, for the summary (owned) */
} st_dataset;

/* Not strict, no cache, 3 channels, OpenMP's thread count, log to stderr. */
void st_ds_opts_default(st_ds_opts *o);
/* Detects the layout of root and opens it. A missing or unrecognisable folder, or one
 * with no usable image, is ST_ERR_INPUT with a message saying what was looked for. o may
 * be NULL (defaults). On failure *out is left zeroed (st_dataset_free is still safe).
 * Problems are logged in file order (train, then val) whatever the thread count. */
st_status st_dataset_open(const char *root, const st_ds_opts *o, st_dataset *out, st_error *err);
void st_dataset_free(st_dataset *d);
const char *st_ds_kind_name(st_ds_kind k); /* "IDX", "ImageFolder", "YOLO" */
/* One or two lines: what was found (layout, images per split, classes) and, if any were
 * skipped, "skipped 7 of 4500 images: 3 corrupt PNG, 2 bad label lines, ...". */
void st_dataset_print_summary(const st_dataset *d, FILE *f);
/* Loads sample i of a split as an 8-bit image with the dataset's channel count: from the
 * cache, from the IDX arrays, or by decoding the file. out must be freed by the caller
 * unless *borrowed is set (cached pixels are lent, not copied). */
st_status st_dataset_load_image(const st_dataset *d, const st_split *s, int i, int channels,
                                st_image *out, int *borrowed, st_error *err);

#endif
