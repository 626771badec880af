/* Training runs: classifiers (Fashion-MNIST and friends) and YOLO detectors; the task
 * follows the model and the dataset. */
#ifndef ST_TRAIN_H
#define ST_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "st_common.h"

typedef struct st_train_opts {
    const char *data;      /* dataset folder */
    const char *model;     /* built-in name, .onnx or checkpoint (a pretrained start);
                              NULL: from the data / the resumed checkpoint */
    const char *out_dir;   /* NULL: runs/<model>, runs/<model>-2, ... (never overwrites) */
    int overwrite;         /* allow an explicit out_dir that already holds a run */
    const char *resume;    /* checkpoint to continue from, or NULL */
    const char *pretrained; /* weights for a built-in model (.ckpt / .onnx), or NULL */
    int reset_head;        /* re-create the output layers even when they fit the classes */
    const char *recipe;    /* recipe file (.yaml / .md), or NULL */
    const char *recipe_args; /* JSON object of recipe variable overrides, or NULL */
    int epochs;            /* 0: default (5), or the recipe's */
    int batch, threads;
    uint64_t seed;
    float lr, weight_decay, momentum;
    int optimizer;         /* st_opt_kind */
    int train_limit, test_limit; /* use only the first N images (0: all) */
    int stop_after;        /* stop (as if interrupted) after this many epochs; 0: no */
    int imgsz;             /* model input size for image folders (0: the images' size) */
    int channels;          /* model input channels, 1 or 3 (0: the images' own) */
    int workers;           /* data loader threads */
    int cache;             /* keep decoded images in RAM */
    int strict;            /* any broken file in the dataset is an error */
    float fliplr;          /* horizontal-flip probability (-1: task default, 0 / 0.5) */
    float mosaic;          /* detection: 4-image mosaic probability (-1: default 1.0) */
    int dense;             /* never use the sparse kernels (for speed comparisons) */
    int progress;          /* -1 auto, 0 off, 1 on */
    FILE *log;             /* per-epoch lines (stdout) */
    const volatile sig_atomic_t *interrupt; /* set by a signal handler: save and stop */
} st_train_opts;

void st_train_opts_default(st_train_opts *o);

typedef struct st_train_result {
    char out_dir[512];
    int epochs_done;
    int interrupted;
    char task[16];         /* "classify" | "detect" */
    char metric_name[16];  /* the metric that picks best.ckpt: test_acc, fitness */
    float final_metric, best_metric;
    double seconds;
} st_train_result;

st_status st_train_run(const st_train_opts *o, st_train_result *res, st_error *err);

#endif
