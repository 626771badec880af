/* make_fashion_mosaic: builds "fashion-mosaic", the default detection data set, in YOLO
 * layout: OUT/images/{train,val}/NNNNNN.png, OUT/labels/{train,val}/NNNNNN.txt and
 * OUT/data.yaml. Each image is a size x size RGB canvas (solid, gradient or noise
 * background) with 1-6 Fashion-MNIST items (train split items for train, t10k for val)
 * scaled to 20-120 px and tinted: out = bg * (1 - a) + tint * a with a = item pixel / 255.
 * Boxes are tight around the scaled item's pixels above ITEM_THRESHOLD. Items may overlap,
 * but a placement is retried (PLACE_TRIES times, then the item dropped) when its box has
 * IoU > 0.3 with an earlier box or covers more than half of one. Tints are picked to
 * differ clearly from the background under the item, so every labelled item is visible.
 *
 * Every image draws from its own generator seeded from (seed, split, index), so the output
 * is byte-identical for the same arguments whatever the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli.h"
#include "st_idx.h"
#include "st_image.h"
#include "st_rng.h"
#include "st_tool.h"

#define ITEM_MIN 20
#define ITEM_MAX 120
#define ITEM_THRESHOLD 20 /* scaled pixels above this count as the item (a > 8%) */
#define MAX_IOU 0.3f
#define MAX_COVER 0.5f
#define PLACE_TRIES 10

static const char *const fmnist_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                             "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};

typedef struct {
    const uint8_t *x, *y; /* items [n][28][28] and labels */
    int rows, cols;
    int32_t *pick;        /* indexes of items of the chosen classes */
    int npick;
} item_src;

typedef struct {
    int size;
    uint64_t seed;
    int remap[10]; /* original class -> written id, -1 when not chosen */
} mosaic_opts;

static void background(uint8_t *img, int size, st_rng *r) {
    uint8_t c0[3], c1[3];
    for (int ch = 0; ch < 3; ch++) c0[ch] = (uint8_t)st_rng_below(r, 256), c1[ch] = (uint8_t)st_rng_below(r, 256);
    int kind = (int)st_rng_below(r, 3);
    size_t n = (size_t)size * size;
    if (kind == 0) { /* solid */
        for (size_t i = 0; i < n; i++) memcpy(img + 3 * i, c0, 3);
    } else if (kind == 1) { /* linear gradient at a random angle */
        float ang = st_rng_uniform(r) * 6.2831853f, dx = cosf(ang), dy = sinf(ang);
        float lo = fminf(0, dx) + fminf(0, dy), span = fabsf(dx) + fabsf(dy);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float t = ((x * dx + y * dy) / (size - 1) - lo) / span;
                uint8_t *p = img + 3 * ((size_t)y * size + x);
                for (int ch = 0; ch < 3; ch++) p[ch] = (uint8_t)(c0[ch] + (c1[ch] - c0[ch]) * t + 0.5f);
            }
    } else { /* blotchy noise: a few random colours around a base, smoothly upsampled,
              * plus fine grain (white noise alone would make the PNGs 3x larger) */
        uint8_t cells[12 * 12 * 3];
        int k = 3 + (int)st_rng_below(r, 10);
        for (int i = 0; i < k * k * 3; i++) {
            int v = c0[i % 3] + (int)st_rng_below(r, 161) - 80;
            cells[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        st_image small = {3, k, k, cells}, big = {3, size, size, img};
        st_image_resize_bilinear(&small, &big);
        int amp = 1 + (int)st_rng_below(r, 3);
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = st_rng_next(r);
            for (int ch = 0; ch < 3; ch++) {
                int v = img[3 * i + ch] + (int)((bits >> (16 * ch)) % (2 * amp + 1)) - amp;
                img[3 * i + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

typedef struct {
    int cls, x0, y0, x1, y1; /* pixel edges, x1/y1 exclusive */
} box;

/* A new box may not overlap an earlier one by IoU > MAX_IOU, nor cover more than
 * MAX_COVER of it: items are painted in order, so a big late item could otherwise hide a
 * small early one whose label would remain. */
static int overlaps_too_much(const box *nw, const box *old) {
    int iw = ST_MIN(nw->x1, old->x1) - ST_MAX(nw->x0, old->x0);
    int ih = ST_MIN(nw->y1, old->y1) - ST_MAX(nw->y0, old->y0);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = (float)iw * ih;
    float an = (float)(nw->x1 - nw->x0) * (nw->y1 - nw->y0), ao = (float)(old->x1 - old->x0) * (old->y1 - old->y0);
    return inter / (an + ao - inter) > MAX_IOU || inter / ao > MAX_COVER;
}

/* A tint far enough from the background under the box to be seen. */
static void pick_tint(const uint8_t *img, int size, const box *b, st_rng *r, uint8_t tint[3]) {
    double sum[3] = {0, 0, 0};
    for (int y = b->y0; y < b->y1; y++)
        for (int x = b->x0; x < b->x1; x++)
            for (int ch = 0; ch < 3; ch++) sum[ch] += img[3 * ((size_t)y * size + x) + ch];
    double area = (double)(b->x1 - b->x0) * (b->y1 - b->y0);
    int mean[3];
    for (int ch = 0; ch < 3; ch++) mean[ch] = (int)(sum[ch] / area);
    for (int t = 0; t < 16; t++) {
        int d = 0;
        for (int ch = 0; ch < 3; ch++) {
            tint[ch] = (uint8_t)st_rng_below(r, 256);
            d += abs(tint[ch] - mean[ch]);
        }
        if (d >= 200) return;
    }
    for (int ch = 0; ch < 3; ch++) tint[ch] = (uint8_t)(mean[ch] < 128 ? 255 : 0);
}

/* Draws image `index` of a split into img and writes its label lines to lab (n boxes
 * returned). */
static int compose(const mosaic_opts *o, const item_src *src, st_rng *r, uint8_t *img,
                   uint8_t *scaled, char *lab, size_t labcap) {
    int size = o->size;
    background(img, size, r);
    box boxes[6];
    int nb = 0, want = 1 + (int)st_rng_below(r, 6);
    int smax = ST_MIN(ITEM_MAX, size);
    size_t used = 0;
    lab[0] = 0;
    for (int k = 0; k < want; k++) {
        int item = src->pick[st_rng_below(r, (uint32_t)src->npick)];
        int s = ITEM_MIN + (int)st_rng_below(r, (uint32_t)(smax - ITEM_MIN + 1));
        st_image from = {1, src->rows, src->cols, (uint8_t *)(src->x + (size_t)item * src->rows * src->cols)};
        st_image to = {1, s, s, scaled};
        st_image_resize_bilinear(&from, &to);
        int bx0 = s, by0 = s, bx1 = -1, by1 = -1;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                if (scaled[y * s + x] > ITEM_THRESHOLD) {
                    bx0 = ST_MIN(bx0, x), bx1 = ST_MAX(bx1, x);
                    by0 = ST_MIN(by0, y), by1 = ST_MAX(by1, y);
                }
        if (bx1 < 0) continue; /* nothing visible at this scale */
        box b;
        int ok = 0, px = 0, py = 0;
        for (int t = 0; t < PLACE_TRIES && !ok; t++) {
            px = (int)st_rng_below(r, (uint32_t)(size - s + 1));
            py = (int)st_rng_below(r, (uint32_t)(size - s + 1));
            b = (box){o->remap[src->y[item]], px + bx0, py + by0, px + bx1 + 1, py + by1 + 1};
            ok = 1;
            for (int j = 0; j < nb && ok; j++) ok = !overlaps_too_much(&b, &boxes[j]);
        }
        if (!ok) continue;
        uint8_t tint[3];
        pick_tint(img, size, &b, r, tint);
        for (int y = 0; y < s; y++) {
            uint8_t *row = img + 3 * ((size_t)(py + y) * size + px);
            const uint8_t *a = scaled + y * s;
            for (int x = 0; x < s; x++)
                for (int ch = 0; ch < 3; ch++) {
                    float al = a[x] * (1.0f / 255.0f);
                    row[3 * x + ch] = (uint8_t)(row[3 * x + ch] * (1.0f - al) + tint[ch] * al + 0.5f);
                }
        }
        boxes[nb++] = b;
        used += (size_t)snprintf(lab + used, labcap - used, "%d %.6f %.6f %.6f %.6f\n", b.cls,
                                 (b.x0 + b.x1) * 0.5 / size, (b.y0 + b.y1) * 0.5 / size,
                                 (double)(b.x1 - b.x0) / size, (double)(b.y1 - b.y0) / size);
    }
    return nb;
}

static st_status write_text(const char *path, const char *text, st_error *err) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return st_errorf(err, ST_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return st_errorf(err, ST_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return ST_OK;
}

/* Writes one split; *boxes gets the box count. */
static st_status make_split(const char *out, const char *split, int split_id, int n,
                            const mosaic_opts *o, const item_src *src, long *boxes, st_error *err) {
    st_status first = ST_OK;
    int stop = 0;
    long nbox = 0;
#pragma omp parallel reduction(+ : nbox)
    {
        uint8_t *img = malloc((size_t)3 * o->size * o->size), *scaled = malloc(ITEM_MAX * ITEM_MAX);
        char lab[1024], path[PATH_MAX];
        st_error e = {0};
        if (!img || !scaled) {
#pragma omp critical(mosaic_err)
            if (first == ST_OK) first = st_errorf(err, ST_ERR_NOMEM, "out of memory");
#pragma omp atomic write
            stop = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < n; i++) {
            int halt;
#pragma omp atomic read
            halt = stop;
            if (halt) continue;
            st_rng r;
            st_rng_seed(&r, st_hash64(st_hash64(o->seed) ^ ((uint64_t)split_id << 40 | (uint64_t)i)));
            nbox += compose(o, src, &r, img, scaled, lab, sizeof lab);
            st_image im = {3, o->size, o->size, img};
            snprintf(path, sizeof path, "%s/images/%s/%06d.png", out, split, i);
            st_status s = st_png_write_ex(path, &im, 0, &e);
            if (s == ST_OK) {
                snprintf(path, sizeof path, "%s/labels/%s/%06d.txt", out, split, i);
                s = write_text(path, lab, &e);
            }
            if (s != ST_OK) {
#pragma omp critical(mosaic_err)
                if (first == ST_OK) {
                    first = s;
                    *err = e;
                }
#pragma omp atomic write
                stop = 1;
            }
        }
        free(img);
        free(scaled);
    }
    *boxes = nbox;
    return first;
}

static st_status write_yaml(const char *out, const mosaic_opts *o, int argc, char **argv,
                            st_error *err) {
    char real[PATH_MAX], abs[2 * PATH_MAX], path[PATH_MAX + 16], text[3 * PATH_MAX + 1024];
    if (!realpath(out, real)) snprintf(real, sizeof real, "%s", out);
    size_t k = 0; /* single-quoted YAML: a quote is written twice */
    for (const char *c = real; *c && k + 2 < sizeof abs; c++) {
        if (*c == '\'') abs[k++] = '\'';
        abs[k++] = *c;
    }
    abs[k] = 0;
    int nc = 0;
    for (int c = 0; c < 10; c++) nc += o->remap[c] >= 0;
    char cmd[1024]; /* the command line as a one-line comment, cut if very long */
    size_t u = (size_t)snprintf(cmd, sizeof cmd, "make_fashion_mosaic");
    for (int a = 1; a < argc && u < sizeof cmd; a++)
        u += (size_t)snprintf(cmd + u, sizeof cmd - u, " %s", argv[a]);
    for (char *c = cmd; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    char names[256] = "";
    for (int c = 0; c < 10; c++)
        if (o->remap[c] >= 0)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'",
                     names[0] ? ", " : "", fmnist_names[c]);
    snprintf(text, sizeof text,
             "# fashion-mosaic, made by %s\npath: '%s'\ntrain: images/train\nval: images/val\n"
             "nc: %d\nnames: [%s]\n", cmd, abs, nc, names);
    snprintf(path, sizeof path, "%s/data.yaml", out);
    return write_text(path, text, err);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: make_fashion_mosaic [--out DIR] [--size 320] [--train 4000] [--val 500]\n"
            "                           [--seed 1] [--classes 0-9] [--data DIR] [--force]\n"
            "  --out DIR      output folder (default ./imgs)\n"
            "  --size N       canvas side in pixels (32..4096)\n"
            "  --train/--val  number of images per split\n"
            "  --classes L    item classes, e.g. 0-4 or 1,3,7; ids are renumbered 0..k-1\n"
            "  --data DIR     Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --force        write into a non-empty DIR (replaces an earlier set)\n");
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv);
    const char *out = "imgs", *data = "/usr/share/datasets/fashion-mnist", *classes = "0-9";
    long size = 320, ntrain = 4000, nval = 500, seed = 1;
    int force = 0;
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(k, "--force")) {
            force = 1;
            continue;
        }
        static const char *const valued[] = {"--out", "--data", "--classes", "--size",
                                             "--train", "--val", "--seed"};
        int known = 0;
        for (int j = 0; j < 7; j++) known |= !strcmp(k, valued[j]);
        if (!known || a + 1 >= argc) {
            fprintf(stderr, "make_fashion_mosaic: %s '%s'\n", known ? "no value after" : "unknown option", k);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++a];
        int bad = 0;
        if (!strcmp(k, "--out")) out = v;
        else if (!strcmp(k, "--data")) data = v;
        else if (!strcmp(k, "--classes")) classes = v;
        else if (!strcmp(k, "--size")) bad = st_tool_int(v, 32, 4096, &size);
        else if (!strcmp(k, "--train")) bad = st_tool_int(v, 0, 999999, &ntrain);
        else if (!strcmp(k, "--val")) bad = st_tool_int(v, 0, 999999, &nval);
        else bad = st_tool_int(v, 0, LONG_MAX, &seed);
        if (bad) {
            fprintf(stderr, "make_fashion_mosaic: bad value '%s' for %s (see --help)\n", v, k);
            return 2;
        }
    }
    mosaic_opts o = {(int)size, (uint64_t)seed, {0}};
    int nc = st_tool_parse_classes(classes, o.remap);
    if (nc <= 0) {
        fprintf(stderr, "make_fashion_mosaic: --classes wants ids 0-9 like 0-4 or 1,3,7; got '%s'\n", classes);
        return 2;
    }
    int occupied = st_tool_dir_nonempty(out);
    if (occupied < 0 || (occupied && !force)) {
        fprintf(stderr, "make_fashion_mosaic: %s %s; pick another --out%s\n", out,
                occupied < 0 ? "exists and is not a folder" : "is not empty",
                occupied < 0 ? "" : " or add --force");
        return 2;
    }
    double t0 = st_tool_now();
    st_error err = {0};
    st_mnist m;
    st_status s = st_mnist_load(data, &m, &err);
    if (s != ST_OK) {
        fprintf(stderr, "make_fashion_mosaic: %s\n", err.msg);
        return st_exit_code(s);
    }
    static const char *const split_names[2] = {"train", "val"};
    long counts[2] = {ntrain, nval}, boxes[2] = {0, 0};
    for (int sp = 0; sp < 2 && s == ST_OK; sp++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/images/%s", out, split_names[sp]);
        s = st_tool_mkdirs(dir, &err);
        if (s == ST_OK && force) s = st_tool_clear_files(dir, ".png", &err);
        snprintf(dir, sizeof dir, "%s/labels/%s", out, split_names[sp]);
        if (s == ST_OK) s = st_tool_mkdirs(dir, &err);
        if (s == ST_OK && force) s = st_tool_clear_files(dir, ".txt", &err);
    }
    for (int sp = 0; sp < 2 && s == ST_OK; sp++) {
        item_src src = {sp ? m.test_x : m.train_x, sp ? m.test_y : m.train_y, m.rows, m.cols, NULL, 0};
        int n = sp ? m.n_test : m.n_train;
        src.pick = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++)
            if (src.y[i] < 10 && o.remap[src.y[i]] >= 0) src.pick[src.npick++] = i;
        if (!src.pick || (src.npick == 0 && counts[sp] > 0)) {
            s = st_errorf(&err, ST_ERR_INPUT, "%s: no %s items of classes %s", data,
                          sp ? "t10k" : "train", classes);
        } else {
            fprintf(stderr, "make_fashion_mosaic: %s: %ld images of %ldx%ld...\n", split_names[sp],
                    counts[sp], size, size);
            s = make_split(out, split_names[sp], sp, (int)counts[sp], &o, &src, &boxes[sp], &err);
        }
        free(src.pick);
    }
    st_mnist_free(&m);
    if (s == ST_OK) s = write_yaml(out, &o, argc, argv, &err);
    if (s == ST_OK) s = st_tool_sync(out, &err);
    if (s != ST_OK) {
        fprintf(stderr, "make_fashion_mosaic: %s\n", err.msg);
        return st_exit_code(s);
    }
    printf("make_fashion_mosaic: wrote %ld train + %ld val images (%ld + %ld boxes, %d classes) "
           "to %s in %.1fs\n", ntrain, nval, boxes[0], boxes[1], nc, out, st_tool_now() - t0);
    return 0;
}
