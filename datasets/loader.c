/* The prefetching loader: a ring of `prefetch` batch slots filled by worker threads in
 * batch order; batch b always lives in slot b % prefetch. A worker takes the next batch
 * whose slot is free, fills it outside the lock, and marks it ready; the consumer takes
 * batches strictly in order and frees the previous one on its next call. */
#include <stdlib.h>
#include <string.h>

#include "loader_internal.h"
#include "st_progress.h"

enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2 };

void st_loader_opts_default(st_loader_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->channels = 1;
    o->height = o->width = 28;
    o->shuffle = 1;
    o->drop_last = 1;
    o->mean = 0.0f;
    o->std = 1.0f;
    o->seed = 1;
    o->workers = 1;
    o->prefetch = 4;
    o->aug = (st_aug){.fliplr = 0.5f, .hsv_h = 0.015f, .hsv_s = 0.7f, .hsv_v = 0.4f,
                      .translate = 0.1f, .scale = 0.5f, .mosaic = 1.0f};
}

int st_loader_num_batches(const st_loader *l) { return l->n_batches; }

static int batch_size(const st_loader *l, int b) {
    int left = l->split->n - b * l->o.batch;
    return left < l->o.batch ? left : l->o.batch;
}

/* Makes room for `need` boxes (doubling), keeping the ones already there. */
static st_status grow_boxes(st_batch_box **boxes, int *cap, int need, st_error *err) {
    if (need <= *cap) return ST_OK;
    int nc = need * 2;
    st_batch_box *q = realloc(*boxes, (size_t)nc * sizeof *q);
    if (!q) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    *boxes = q;
    *cap = nc;
    return ST_OK;
}

/* Fills slot with batch b using the worker's scratch; no lock held. */
static st_status fill_batch(st_loader *l, st_worker_scratch *ws, st_slot *s, int b, int epoch) {
    const st_loader_opts *o = &l->o;
    size_t per = (size_t)o->channels * o->height * o->width;
    s->b.index = b;
    s->b.n = batch_size(l, b);
    s->b.n_boxes = 0;
    for (int i = 0; i < s->b.n; i++) {
        int pos = b * o->batch + i;
        st_status rc = st_loader_fill_sample(l, ws, epoch, pos, s->b.images + per * i,
                                             s->b.labels + i, &s->err);
        if (rc != ST_OK) return rc;
        s->b.sample_ids[i] = l->order[pos];
        if (!o->detect) continue;
        rc = grow_boxes(&s->b.boxes, &s->cap_boxes, s->b.n_boxes + ws->n_boxes, &s->err);
        if (rc != ST_OK) return rc;
        s->b.n_boxes += st_loader_sample_boxes(l, ws, s->b.boxes + s->b.n_boxes, i);
    }
    return ST_OK;
}

static void *worker_main(void *arg) {
    st_worker *w = arg;
    st_loader *l = w->l;
    st_worker_scratch *ws = &w->ws;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !(l->active && l->next_fill < l->n_batches &&
                             l->slots[l->next_fill % l->o.prefetch].state == SLOT_FREE))
            pthread_cond_wait(&l->cv_work, &l->mu);
        if (l->stop) break;
        int b = l->next_fill++;
        st_slot *s = &l->slots[b % l->o.prefetch];
        unsigned gen = l->generation;
        int epoch = l->epoch;
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&l->mu);
        st_status rc = fill_batch(l, ws, s, b, epoch);
        pthread_mutex_lock(&l->mu);
        s->rc = rc;
        s->generation = gen;
        s->state = gen == l->generation ? SLOT_READY : SLOT_FREE;
        pthread_cond_broadcast(&l->cv_ready);
        pthread_cond_broadcast(&l->cv_work);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

st_status st_loader_open(const st_dataset *d, const st_split *split, const st_loader_opts *o,
                         st_loader **out, st_error *err) {
    *out = NULL;
    if (o->batch < 1 || o->workers < 1 || o->prefetch < 1 || o->channels < 1 || o->height < 1 ||
        o->width < 1 || !(o->std > 0))
        return st_errorf(err, ST_ERR_INPUT, "invalid loader options");
    if (split->n < 1) return st_errorf(err, ST_ERR_INPUT, "%s: split has no images", d->root);
    st_loader *l = calloc(1, sizeof *l);
    if (!l) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    l->d = d;
    l->split = split;
    l->o = *o;
    l->n_batches = o->drop_last ? split->n / o->batch : (split->n + o->batch - 1) / o->batch;
    if (l->n_batches < 1) {
        free(l);
        return st_errorf(err, ST_ERR_INPUT, "%d images are fewer than one batch of %d", split->n, o->batch);
    }
    size_t per = (size_t)o->channels * o->height * o->width;
    l->order = malloc((size_t)split->n * sizeof *l->order);
    l->slots = calloc((size_t)o->prefetch, sizeof *l->slots);
    l->workers = calloc((size_t)o->workers + 1, sizeof *l->workers);
    l->threads = calloc((size_t)o->workers, sizeof *l->threads);
    int ok = l->order && l->slots && l->workers && l->threads;
    for (int i = 0; ok && i < o->prefetch; i++) {
        st_slot *s = &l->slots[i];
        s->b.images = st_alloc(per * o->batch * sizeof(float));
        s->b.labels = malloc((size_t)o->batch * sizeof(int32_t));
        s->b.sample_ids = malloc((size_t)o->batch * sizeof(int));
        ok = s->b.images && s->b.labels && s->b.sample_ids;
    }
    if (!ok) {
        st_loader_free(l);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory for %d prefetched batches", o->prefetch);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_work, NULL);
    pthread_cond_init(&l->cv_ready, NULL);
    l->sync_ready = 1;
    for (int i = 0; i < split->n; i++) l->order[i] = i;
    for (int i = 0; i <= o->workers; i++) l->workers[i].l = l;
    for (int i = 0; i < o->workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker_main, &l->workers[i]) != 0) {
            st_loader_free(l);
            return st_errorf(err, ST_ERR_INTERNAL, "cannot start loader threads");
        }
        l->n_threads++;
    }
    *out = l;
    return ST_OK;
}

st_status st_loader_start_epoch(st_loader *l, int epoch, int first, st_error *err) {
    if (first < 0 || first > l->n_batches)
        return st_errorf(err, ST_ERR_INPUT, "batch %d is outside the epoch (%d batches)", first, l->n_batches);
    pthread_mutex_lock(&l->mu);
    l->generation++;
    l->active = 0;
    /* wait for stale fills to finish: they read the order we are about to change */
    for (;;) {
        int busy = 0;
        for (int i = 0; i < l->o.prefetch; i++) busy |= l->slots[i].state == SLOT_FILLING;
        if (!busy) break;
        pthread_cond_wait(&l->cv_ready, &l->mu);
    }
    for (int i = 0; i < l->o.prefetch; i++) l->slots[i].state = SLOT_FREE;
    for (int i = 0; i < l->split->n; i++) l->order[i] = i;
    if (l->o.shuffle) {
        st_rng r;
        st_rng_seed(&r, l->o.seed * 1000003ULL + (uint64_t)epoch);
        st_rng_shuffle(&r, l->order, l->split->n);
    }
    l->epoch = epoch;
    l->next_fill = l->next_consume = first;
    l->holding = 0;
    l->active = 1;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    return ST_OK;
}

const st_batch *st_loader_next(st_loader *l, double *wait, st_status *rc, st_error *err) {
    *rc = ST_OK;
    if (wait) *wait = 0;
    pthread_mutex_lock(&l->mu);
    if (l->holding) {
        l->slots[(l->next_consume - 1) % l->o.prefetch].state = SLOT_FREE;
        l->holding = 0;
        pthread_cond_broadcast(&l->cv_work);
    }
    if (!l->active || l->next_consume >= l->n_batches) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int b = l->next_consume;
    st_slot *s = &l->slots[b % l->o.prefetch];
    double t0 = st_now();
    while (!(s->state == SLOT_READY && s->b.index == b && s->generation == l->generation))
        pthread_cond_wait(&l->cv_ready, &l->mu);
    if (wait) *wait = st_now() - t0;
    l->next_consume++;
    l->holding = 1;
    pthread_mutex_unlock(&l->mu);
    if (s->rc != ST_OK) {
        *rc = st_errorf(err, s->rc, "%s", s->err.msg);
        return NULL;
    }
    return &s->b;
}

st_status st_loader_prepare_sample(const st_loader *l, int epoch, int position, float *out_chw,
                                   int32_t *label, st_batch_box **boxes, int *n_boxes,
                                   int *cap_boxes, st_error *err) {
    /* synchronous use: the spare worker's scratch (one caller at a time per loader) */
    st_worker_scratch *ws = &l->workers[l->o.workers].ws;
    st_status rc = st_loader_fill_sample(l, ws, epoch, position, out_chw, label, err);
    if (rc != ST_OK || !boxes) return rc;
    if ((rc = grow_boxes(boxes, cap_boxes, *n_boxes + ws->n_boxes, err)) != ST_OK) return rc;
    *n_boxes += st_loader_sample_boxes(l, ws, *boxes + *n_boxes, 0);
    return ST_OK;
}

void st_loader_free(st_loader *l) {
    if (!l) return;
    if (l->n_threads) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    }
    if (l->slots)
        for (int i = 0; i < l->o.prefetch; i++) {
            st_free(l->slots[i].b.images);
            free(l->slots[i].b.labels);
            free(l->slots[i].b.sample_ids);
            free(l->slots[i].b.boxes);
        }
    if (l->workers)
        for (int i = 0; i <= l->o.workers; i++) st_worker_scratch_free(&l->workers[i].ws);
    if (l->sync_ready) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_work);
        pthread_cond_destroy(&l->cv_ready);
    }
    free(l->workers);
    free(l->threads);
    free(l->slots);
    free(l->order);
    free(l);
}
