/* Batches for training and evaluation, prepared ahead by worker threads.
 *
 * Workers decode and augment the next batches while the trainer computes. Results never
 * depend on the number of workers or their timing: batch b of an epoch holds the samples
 * at positions [b*B, (b+1)*B) of that epoch's order (a shuffle seeded by (seed, epoch)),
 * and every random choice made for a sample comes from an RNG seeded by (seed, epoch,
 * position). The trainer waits only when a batch is not ready; that time is measured. */
#ifndef ST_LOADER_H
#define ST_LOADER_H

#include "st_dataset.h"

typedef struct st_aug {
    float fliplr;    /* probability of a horizontal flip */
    float hsv_h, hsv_s, hsv_v; /* HSV gain ranges (YOLOv5: 0.015, 0.7, 0.4) */
    float translate; /* fraction of the image (YOLOv5: 0.1) */
    float scale;     /* scale range +- (YOLOv5: 0.5) */
    float mosaic;    /* probability of a 4-image mosaic (detection) */
} st_aug;

typedef struct st_loader_opts {
    int batch;
    int channels, height, width; /* model input */
    int detect;         /* letterbox + boxes (YOLO) instead of resize + labels */
    int shuffle;
    int drop_last;      /* drop a last partial batch (training) */
    int augment;        /* apply opts.aug */
    st_aug aug;
    float mean, std;    /* pixels become (x/255 - mean) / std */
    uint64_t seed;
    int workers;        /* threads preparing batches (>= 1) */
    int prefetch;       /* batches prepared ahead (>= 1) */
} st_loader_opts;

/* One box of a batch: image index within the batch, class, and cx, cy, w, h in [0, 1] of
 * the model input (after letterbox, mosaic and augmentation). */
typedef struct st_batch_box {
    int img, cls;
    float cx, cy, w, h;
} st_batch_box;

typedef struct st_batch {
    int index;          /* batch number within the epoch */
    int n;              /* images in this batch (last one may be smaller) */
    float *images;      /* [n][channels][height][width] */
    int32_t *labels;    /* [n] (classification) */
    int n_boxes;
    st_batch_box *boxes; /* [n_boxes] (detection) */
    int *sample_ids;    /* [n] index of each image in the split */
} st_batch;

typedef struct st_loader st_loader;

void st_loader_opts_default(st_loader_opts *o);
/* The dataset must outlive the loader. */
st_status st_loader_open(const st_dataset *d, const st_split *split, const st_loader_opts *o,
                         st_loader **out, st_error *err);
/* Batches per epoch with these options. */
int st_loader_num_batches(const st_loader *l);
/* Starts an epoch at batch `first` (0, or later when resuming mid-epoch). */
st_status st_loader_start_epoch(st_loader *l, int epoch, int first, st_error *err);
/* The next batch in order, or NULL at the end of the epoch. Valid until the next call.
 * *wait receives the seconds spent waiting for it. A decoding failure of a file that was
 * valid at open (e.g. deleted since) is an error (status in *rc). */
const st_batch *st_loader_next(st_loader *l, double *wait, st_status *rc, st_error *err);
void st_loader_free(st_loader *l);

/* Prepares one sample synchronously, exactly as a worker would (for tests and tools):
 * image into out_chw [channels][height][width]; boxes appended to *boxes (with img = 0),
 * *n_boxes updated, capacity grown as needed. */
st_status st_loader_prepare_sample(const st_loader *l, int epoch, int position, float *out_chw,
                                   int32_t *label, st_batch_box **boxes, int *n_boxes,
                                   int *cap_boxes, st_error *err);

#endif
