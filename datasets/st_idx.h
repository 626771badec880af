/* IDX files (the MNIST / Fashion-MNIST format), plain or gzipped.
 *
 * An IDX file is a big-endian header (magic, then one u32 count per dimension) followed
 * by raw u8 data. Images use magic 0x00000803 (n, rows, cols), labels 0x00000801 (n).
 * Every loader returns ST_ERR_INPUT with a message naming the file on any defect
 * (missing, wrong magic, truncated, corrupt gzip, absurd header) and never allocates
 * more than about twice the data actually present, whatever the header claims. */
#ifndef ST_IDX_H
#define ST_IDX_H

#include <stdint.h>

#include "st_common.h"

typedef struct {
    int n, rows, cols;
    uint8_t *pixels; /* [n][rows][cols], row-major; free with st_idx_images_free */
} st_idx_images;

st_status st_idx_load_images(const char *path, st_idx_images *out, st_error *err);
/* *labels gets n bytes (free with free()); *n their count. */
st_status st_idx_load_labels(const char *path, uint8_t **labels, int *n, st_error *err);
void st_idx_images_free(st_idx_images *im);

typedef struct {
    int n_train, n_test, rows, cols;
    int n_classes;              /* max label over both splits + 1 (<= 256) */
    uint8_t *train_x, *train_y; /* [n_train][rows][cols], [n_train] */
    uint8_t *test_x, *test_y;   /* [n_test][rows][cols], [n_test] */
} st_mnist;

/* dir holds train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 * t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]; the plain name is tried
 * first. On failure *out is left zeroed. */
st_status st_mnist_load(const char *dir, st_mnist *out, st_error *err);
void st_mnist_free(st_mnist *m);

#endif
