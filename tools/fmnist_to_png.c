/* fmnist_to_png: turns the Fashion-MNIST IDX files into an ImageFolder tree,
 *   OUT/train/<class>/<index>.png   (train-*)
 *   OUT/val/<class>/<index>.png     (t10k-*)
 * Class folders are "0_tshirt_top" ... "9_ankle_boot": the digit prefix makes the sorted
 * folder order (the class order of an ImageFolder) equal the original label order, and
 * the names hold no slash. Indexes are zero-padded for the same reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli.h"
#include "st_idx.h"
#include "st_image.h"
#include "st_tool.h"

static const char *const class_dirs[10] = {"0_tshirt_top", "1_trouser", "2_pullover",
                                           "3_dress",      "4_coat",    "5_sandal",
                                           "6_shirt",      "7_sneaker", "8_bag",
                                           "9_ankle_boot"};

static void usage(FILE *f) {
    fprintf(f,
            "usage: fmnist_to_png [--data DIR] [--out DIR] [--limit N] [--force]\n"
            "  --data DIR   Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --out DIR    output ImageFolder tree (default ./fashion-mnist-png)\n"
            "  --limit N    at most N images per split (default: all)\n"
            "  --force      write into a non-empty --out folder (replaces earlier PNGs)\n");
}

/* Writes n images of one split; returns the first failure. */
static st_status write_split(const char *out, const char *split, const uint8_t *x,
                             const uint8_t *y, int n, int rows, int cols, int force,
                             st_error *err) {
    char dir[PATH_MAX];
    for (int c = 0; c < 10; c++) {
        snprintf(dir, sizeof dir, "%s/%s/%s", out, split, class_dirs[c]);
        st_status s = st_tool_mkdirs(dir, err);
        if (s == ST_OK && force) s = st_tool_clear_files(dir, ".png", err);
        if (s != ST_OK) return s;
    }
    for (int i = 0; i < n; i++)
        if (y[i] >= 10)
            return st_errorf(err, ST_ERR_INPUT, "%s label %d is %d: Fashion-MNIST has 10 classes",
                             split, i, y[i]);
    st_status first = ST_OK;
    int done = 0;
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < n; i++) {
        int failed;
#pragma omp atomic read
        failed = done;
        if (failed < 0) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s/%s/%05d.png", out, split, class_dirs[y[i]], i);
        /* const is cast away only to fit st_image; the writer does not modify pixels */
        st_image im = {1, rows, cols, (uint8_t *)(x + (size_t)i * rows * cols)};
        st_error e = {0};
        st_status s = st_png_write_ex(path, &im, 0, &e);
        if (s != ST_OK) {
#pragma omp critical(fmnist_err)
            if (first == ST_OK) {
                first = s;
                *err = e;
            }
#pragma omp atomic write
            done = -1;
        }
    }
    return first;
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv);
    const char *data = "/usr/share/datasets/fashion-mnist", *out = "fashion-mnist-png";
    long limit = -1;
    int force = 0;
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(k, "--force")) {
            force = 1;
        } else if ((!strcmp(k, "--data") || !strcmp(k, "--out") || !strcmp(k, "--limit")) &&
                   a + 1 < argc) {
            const char *v = argv[++a];
            if (!strcmp(k, "--data")) data = v;
            else if (!strcmp(k, "--out")) out = v;
            else if (st_tool_int(v, 0, 1000000000, &limit) != 0) {
                fprintf(stderr, "fmnist_to_png: --limit wants a whole number >= 0, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "fmnist_to_png: unknown or incomplete option '%s'\n", k);
            usage(stderr);
            return 2;
        }
    }
    int occupied = st_tool_dir_nonempty(out);
    if (occupied < 0) {
        fprintf(stderr, "fmnist_to_png: %s exists and is not a folder\n", out);
        return 2;
    }
    if (occupied && !force) {
        fprintf(stderr, "fmnist_to_png: %s is not empty; pick another --out or add --force\n", out);
        return 2;
    }
    double t0 = st_tool_now();
    st_mnist m;
    st_error err = {0};
    st_status s = st_mnist_load(data, &m, &err);
    if (s != ST_OK) {
        fprintf(stderr, "fmnist_to_png: %s\n", err.msg);
        return st_exit_code(s);
    }
    int ntr = limit >= 0 && limit < m.n_train ? (int)limit : m.n_train;
    int nva = limit >= 0 && limit < m.n_test ? (int)limit : m.n_test;
    fprintf(stderr, "fmnist_to_png: writing %d train images...\n", ntr);
    s = write_split(out, "train", m.train_x, m.train_y, ntr, m.rows, m.cols, force, &err);
    if (s == ST_OK) {
        fprintf(stderr, "fmnist_to_png: writing %d val images...\n", nva);
        s = write_split(out, "val", m.test_x, m.test_y, nva, m.rows, m.cols, force, &err);
    }
    if (s == ST_OK) s = st_tool_sync(out, &err);
    st_mnist_free(&m);
    if (s != ST_OK) {
        fprintf(stderr, "fmnist_to_png: %s\n", err.msg);
        return st_exit_code(s);
    }
    printf("fmnist_to_png: wrote %d train + %d val images (10 classes) to %s in %.1fs\n", ntr,
           nva, out, st_tool_now() - t0);
    return 0;
}
