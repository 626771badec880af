/* Loader benchmark: images per second for decoding alone and for the full pipeline
 * (decode, letterbox or resize, augmentation, float conversion) through the threaded
 * loader, on any dataset folder.
 *   bench_loader --data DIR [--imgsz 320] [--batch 16] [--workers 1] [--batches 50]
 *                [--no-augment] [--cache] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_loader.h"
#include "st_progress.h"

static int usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: bench_loader --data DIR [--imgsz N] [--batch N] [--workers N] [--batches N]\n"
            "                    [--no-augment] [--cache]\n");
    return code;
}

int main(int argc, char **argv) {
    const char *data = NULL;
    int imgsz = 320, batch = 16, workers = 1, batches = 50, augment = 1, cache = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(0);
        if (!strcmp(a, "--no-augment")) { augment = 0; continue; }
        if (!strcmp(a, "--cache")) { cache = 1; continue; }
        if (!v) return usage(2);
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--imgsz")) imgsz = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--workers")) workers = atoi(v);
        else if (!strcmp(a, "--batches")) batches = atoi(v);
        else return usage(2);
        i++;
    }
    if (!data || imgsz < 8 || batch < 1 || workers < 1 || batches < 1) return usage(2);
    st_error err = {0};
    st_ds_opts dso;
    st_ds_opts_default(&dso);
    dso.cache = cache;
    dso.log = NULL;
    st_dataset d;
    double t0 = st_now();
    st_status rc = st_dataset_open(data, &dso, &d, &err);
    if (rc != ST_OK) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return st_exit_code(rc);
    }
    double t_open = st_now() - t0;
    st_dataset_print_summary(&d, stdout);
    int detect = d.kind == ST_DS_YOLO, channels = d.kind == ST_DS_IDX ? 1 : 3;
    printf("open + validate (decodes every image once): %.2f s, %.0f images/s\n", t_open,
           (d.train.n + d.val.n) / t_open);

    /* decode only: one thread, files (or cache) to 8-bit images */
    int n_dec = d.train.n < batches * batch ? d.train.n : batches * batch;
    t0 = st_now();
    for (int i = 0; i < n_dec; i++) {
        st_image im;
        int borrowed = 0;
        if ((rc = st_dataset_load_image(&d, &d.train, i, channels, &im, &borrowed, &err)) != ST_OK) {
            fprintf(stderr, "bench_loader: %s\n", err.msg);
            return st_exit_code(rc);
        }
        if (!borrowed) st_image_free(&im);
    }
    double t_dec = st_now() - t0;
    if (cache)
        printf("decode only: skipped, images come from the RAM cache\n");
    else
        printf("decode only (1 thread): %d images, %.0f images/s\n", n_dec, n_dec / t_dec);

    st_loader_opts lo;
    st_loader_opts_default(&lo);
    lo.batch = batch, lo.channels = channels, lo.height = lo.width = imgsz;
    lo.detect = detect, lo.augment = augment, lo.workers = workers, lo.drop_last = 0;
    st_loader *l;
    if ((rc = st_loader_open(&d, &d.train, &lo, &l, &err)) != ST_OK ||
        (rc = st_loader_start_epoch(l, 0, 0, &err)) != ST_OK) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return st_exit_code(rc);
    }
    int n_img = 0, n_b = 0;
    double wait;
    const st_batch *b;
    t0 = st_now();
    while (n_b < batches && (b = st_loader_next(l, &wait, &rc, &err))) n_img += b->n, n_b++;
    double t_full = st_now() - t0;
    if (rc != ST_OK) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return st_exit_code(rc);
    }
    printf("full pipeline (%s, %dx%d, %s, %d worker%s): %d images, %.0f images/s\n",
           detect ? "letterbox" : "resize", imgsz, imgsz,
           augment ? (detect ? "mosaic + scale/translate + HSV + flip" : "flip") : "no augmentation",
           workers, workers > 1 ? "s" : "", n_img, n_img / t_full);
    st_loader_free(l);
    st_dataset_free(&d);
    return 0;
}
