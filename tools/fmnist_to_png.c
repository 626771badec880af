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
            "usage: fmnist_to_png [--data DIR] [--out DIR] [--limit N] [--train N] [--val N]\n"
            "                     [--classes L] [--force]\n"
            "  --data DIR   Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --out DIR    output ImageFolder tree (default ./fashion-mnist-png)\n"
            "  --limit N    at most N images per split (default: all)\n"
            "  --train N / --val N   at most N images in that split (the first ones of the\n"
            "               chosen classes in file order)\n"
            "  --classes L  only these classes, e.g. 0-4 or 5-9 (folders keep their names, so\n"
            "               the dataset's class ids are 0..k-1 in this order)\n"
            "  --force      write into a non-empty --out folder (replaces earlier PNGs)\n");
}

/* Writes the images of one split whose class is chosen, at most `limit` (-1: all);
 * returns the first failure. *written: how many. */
static st_status write_split(const char *out, const char *split, const uint8_t *x,
                             const uint8_t *y, int n, int rows, int cols, const int remap[10],
                             long limit, int force, int *written, st_error *err) {
    char dir[PATH_MAX];
    for (int c = 0; c < 10; c++) {
        if (remap[c] < 0) continue;
        snprintf(dir, sizeof dir, "%s/%s/%s", out, split, class_dirs[c]);
        st_status s = st_tool_mkdirs(dir, err);
        if (s == ST_OK && force) s = st_tool_clear_files(dir, ".png", err);
        if (s != ST_OK) return s;
    }
    int *pick = malloc((size_t)(n > 0 ? n : 1) * sizeof *pick), k = 0;
    if (!pick) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (y[i] >= 10) {
            free(pick);
            return st_errorf(err, ST_ERR_INPUT, "%s label %d is %d: Fashion-MNIST has 10 classes",
                             split, i, y[i]);
        }
        if (remap[y[i]] >= 0 && (limit < 0 || k < limit)) pick[k++] = i;
    }
    st_status first = ST_OK;
    int done = 0;
#pragma omp parallel for schedule(dynamic, 64)
    for (int j = 0; j < k; j++) {
        int failed, i = pick[j];
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
    free(pick);
    *written = k;
    return first;
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv);
    const char *data = "/usr/share/datasets/fashion-mnist", *out = "fashion-mnist-png";
    long limit = -1, ntrain = -1, nval = -1;
    const char *classes = "0-9";
    int force = 0;
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(k, "--force")) {
            force = 1;
        } else if ((!strcmp(k, "--data") || !strcmp(k, "--out") || !strcmp(k, "--limit") ||
                    !strcmp(k, "--train") || !strcmp(k, "--val") || !strcmp(k, "--classes")) &&
                   a + 1 < argc) {
            const char *v = argv[++a];
            if (!strcmp(k, "--data")) data = v;
            else if (!strcmp(k, "--out")) out = v;
            else if (!strcmp(k, "--classes")) classes = v;
            else if (st_tool_int(v, 0, 1000000000, !strcmp(k, "--limit") ? &limit
                                                  : !strcmp(k, "--train") ? &ntrain : &nval) != 0) {
                fprintf(stderr, "fmnist_to_png: %s wants a whole number >= 0, got '%s'\n", k, v);
                return 2;
            }
        } else {
            fprintf(stderr, "fmnist_to_png: unknown or incomplete option '%s'\n", k);
            usage(stderr);
            return 2;
        }
    }
    int remap[10], nc = st_tool_parse_classes(classes, remap);
    if (nc < 1) {
        fprintf(stderr, "fmnist_to_png: --classes wants ids 0-9 like 0-4 or 1,3,7; got '%s'\n", classes);
        return 2;
    }
    if (ntrain < 0) ntrain = limit;
    if (nval < 0) nval = limit;
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
    int ntr = 0, nva = 0;
    fprintf(stderr, "fmnist_to_png: writing train images...\n");
    s = write_split(out, "train", m.train_x, m.train_y, m.n_train, m.rows, m.cols, remap, ntrain,
                    force, &ntr, &err);
    if (s == ST_OK) {
        fprintf(stderr, "fmnist_to_png: writing val images...\n");
        s = write_split(out, "val", m.test_x, m.test_y, m.n_test, m.rows, m.cols, remap, nval, force,
                        &nva, &err);
    }
    if (s == ST_OK) s = st_tool_sync(out, &err);
    st_mnist_free(&m);
    if (s != ST_OK) {
        fprintf(stderr, "fmnist_to_png: %s\n", err.msg);
        return st_exit_code(s);
    }
    printf("fmnist_to_png: wrote %d train + %d val images (%d classes) to %s in %.1fs\n", ntr,
           nva, nc, out, st_tool_now() - t0);
    return 0;
}
