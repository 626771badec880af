/* Loader internals shared by loader.c (threads, slots) and augment.c (one sample). */
#ifndef ST_LOADER_INTERNAL_H
#define ST_LOADER_INTERNAL_H

#include <pthread.h>

#include "st_loader.h"
#include "st_rng.h"

typedef struct {
    int cls;
    float x1, y1, x2, y2; /* pixels of the image being built */
} pbox;

/* Per-worker buffers, grown as needed and reused for every sample. */
typedef struct st_worker_scratch {
    st_image owned;  /* a decoded image the worker owns (not from the cache) */
    st_image canvas; /* letterboxed image or the 2s x 2s mosaic */
    st_image tile;   /* one resized mosaic tile */
    st_image out;    /* the final 8-bit sample */
    pbox *boxes;
    int n_boxes, cap_boxes;
} st_worker_scratch;

struct st_loader;
/* A worker thread's argument: its loader and its own scratch. */
typedef struct st_worker {
    struct st_loader *l;
    st_worker_scratch ws;
} st_worker;

typedef struct {
    st_batch b;
    int cap_boxes;
    int state; /* SLOT_FREE, SLOT_FILLING, SLOT_READY */
    unsigned generation;
    st_status rc;
    st_error err;
} st_slot;

struct st_loader {
    const st_dataset *d;
    const st_split *split;
    st_loader_opts o;
    int n_batches;
    int32_t *order; /* [split->n]: this epoch's sample order */
    int epoch;
    unsigned generation; /* bumped by every start_epoch; stale work is discarded */
    int active;          /* an epoch is running */
    int next_fill, next_consume;
    int holding;         /* the consumer holds slot (next_consume - 1) */
    st_slot *slots;      /* [prefetch] */
    pthread_t *threads;
    st_worker *workers; /* [workers + 1]: the last one is for synchronous use */
    int n_threads;
    int sync_ready;     /* mutex and condition variables initialised */
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
};

st_status st_loader_fill_sample(const st_loader *l, st_worker_scratch *ws, int epoch, int position,
                                float *out_chw, int32_t *label, st_error *err);
int st_loader_sample_boxes(const st_loader *l, const st_worker_scratch *ws, st_batch_box *out, int img);
void st_worker_scratch_free(st_worker_scratch *ws);

#endif
