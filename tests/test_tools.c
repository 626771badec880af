/* The programs in tools/, run as built (ST_BINARY_DIR) on small settings: their output
 * files, label values, determinism, and refusal to overwrite. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_image.h"
#include "st_test_util.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static int have_fmnist(void) {
    struct stat sb;
    if (stat(FMNIST_DIR, &sb) == 0) return 1;
    stt_skip("tools: " FMNIST_DIR " is not installed");
    return 0;
}

/* Runs tools/NAME with args, output to DIR/NAME.log; returns the exit status. */
static int run_tool(const char *dir, const char *name, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/%s' %s >'%s/%s.log' 2>&1", ST_BINARY_DIR, name, args, dir, name);
    return stt_run(cmd);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static int count_files(const char *dir, const char *ext) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > strlen(ext) && strcmp(e->d_name + l - strlen(ext), ext) == 0;
    }
    closedir(d);
    return n;
}

/* Checks one split of a mosaic: n images of size x size RGB, each with a label file of
 * 1-6 lines "cls cx cy w h" (6 decimals), classes below nc, boxes inside the image. */
static void check_split(const char *root, const char *split, int n, int size, int nc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/images/%s", root, split);
    ck_assert_int_eq(count_files(path, ".png"), n);
    snprintf(path, sizeof path, "%s/labels/%s", root, split);
    ck_assert_int_eq(count_files(path, ".txt"), n);
    for (int i = 0; i < n; i++) {
        st_image im;
        st_error err = {0};
        snprintf(path, sizeof path, "%s/images/%s/%06d.png", root, split, i);
        ck_assert_msg(st_png_read(path, 0, &im, NULL, &err) == ST_OK, "%s", err.msg);
        ck_assert(im.c == 3 && im.h == size && im.w == size);
        st_image_free(&im);
        snprintf(path, sizeof path, "%s/labels/%s/%06d.txt", root, split, i);
        char *text = slurp(path, NULL), *save = NULL;
        ck_assert_ptr_nonnull(text);
        int lines = 0;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            int cls, used = 0;
            double cx, cy, w, h;
            ck_assert_msg(sscanf(line, "%d %lf %lf %lf %lf%n", &cls, &cx, &cy, &w, &h, &used) == 5 &&
                              line[used] == 0, "%s: bad line '%s'", path, line);
            ck_assert_msg(strchr(line, '.') && strlen(strrchr(line, '.') + 1) == 6, "%s: '%s'", path, line);
            ck_assert_msg(cls >= 0 && cls < nc, "%s: class %d", path, cls);
            ck_assert_msg(w > 0 && h > 0 && w <= 1 && h <= 1, "%s: '%s'", path, line);
            ck_assert_msg(cx - w / 2 >= -1e-6 && cx + w / 2 <= 1 + 1e-6 && cy - h / 2 >= -1e-6 &&
                              cy + h / 2 <= 1 + 1e-6, "%s: box outside the image: '%s'", path, line);
            /* items are 20-120 px before trimming to their visible pixels */
            ck_assert_msg(w * size <= 120.5 && h * size <= 120.5, "%s: '%s'", path, line);
            lines++;
        }
        ck_assert_msg(lines >= 1 && lines <= 6, "%s: %d boxes", path, lines);
        free(text);
    }
}

static void expect_same_files(const char *a, const char *b, const char *sub, int n, const char *ext) {
    char pa[1024], pb[1024];
    for (int i = 0; i < n; i++) {
        snprintf(pa, sizeof pa, "%s/%s/%06d%s", a, sub, i, ext);
        snprintf(pb, sizeof pb, "%s/%s/%06d%s", b, sub, i, ext);
        size_t la, lb;
        char *x = slurp(pa, &la), *y = slurp(pb, &lb);
        ck_assert_ptr_nonnull(x);
        ck_assert_ptr_nonnull(y);
        ck_assert_msg(la == lb && memcmp(x, y, la) == 0, "%s and %s differ", pa, pb);
        free(x);
        free(y);
    }
}

START_TEST(test_mosaic) {
    if (!have_fmnist()) return;
    char dir[512], args[1400], path[1024];
    stt_tmpdir(dir, sizeof dir, "tools-mosaic");
    const char *common = "--size 160 --train 20 --val 5 --seed 3";
    snprintf(args, sizeof args, "--out '%s/m1' %s", dir, common);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 0);
    snprintf(path, sizeof path, "%s/m1", dir);
    check_split(path, "train", 20, 160, 10);
    check_split(path, "val", 5, 160, 10);
    snprintf(path, sizeof path, "%s/m1/data.yaml", dir);
    char *yaml = slurp(path, NULL);
    ck_assert_ptr_nonnull(yaml);
    ck_assert_msg(strstr(yaml, "\ntrain: images/train\n") && strstr(yaml, "\nval: images/val\n") &&
                      strstr(yaml, "\nnc: 10\n") && strstr(yaml, "'T-shirt/top'") &&
                      strstr(yaml, "'Ankle boot']") && strstr(yaml, "\npath: '"), "%s", yaml);
    free(yaml);

    /* same arguments, other thread count: identical bytes */
    snprintf(args, sizeof args, "--out '%s/m2' %s", dir, common);
    setenv("OMP_NUM_THREADS", "1", 1);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 0);
    unsetenv("OMP_NUM_THREADS");
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/m1", dir);
    snprintf(b, sizeof b, "%s/m2", dir);
    expect_same_files(a, b, "labels/train", 20, ".txt");
    expect_same_files(a, b, "labels/val", 5, ".txt");
    expect_same_files(a, b, "images/train", 20, ".png");

    /* a non-empty output folder is refused without --force, replaced with it */
    snprintf(args, sizeof args, "--out '%s/m1' --size 64 --train 3 --val 1", dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 2);
    snprintf(path, sizeof path, "%s/make_fashion_mosaic.log", dir);
    char *log = slurp(path, NULL);
    ck_assert_msg(strstr(log, "--force"), "%s", log);
    free(log);
    snprintf(args, sizeof args, "--out '%s/m1' --size 64 --train 3 --val 1 --force", dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 0);
    check_split(a, "train", 3, 64, 10); /* the 17 older images are gone */

    /* a class subset is its own data set: ids 0..k-1, nc k */
    snprintf(args, sizeof args, "--out '%s/m3' --size 96 --train 6 --val 2 --classes 7,0-1", dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 0);
    snprintf(path, sizeof path, "%s/m3", dir);
    check_split(path, "train", 6, 96, 3);
    snprintf(path, sizeof path, "%s/m3/data.yaml", dir);
    yaml = slurp(path, NULL);
    ck_assert_msg(strstr(yaml, "\nnc: 3\nnames: ['T-shirt/top', 'Trouser', 'Sneaker']\n"), "%s", yaml);
    free(yaml);

    /* bad arguments: exit 2 */
    snprintf(args, sizeof args, "--out '%s/m4' --classes 3-12", dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 2);
    snprintf(args, sizeof args, "--out '%s/m4' --size 0", dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 2);
    snprintf(args, sizeof args, "--out '%s/m4' --data '%s/nowhere'", dir, dir);
    ck_assert_int_eq(run_tool(dir, "make_fashion_mosaic", args), 2);
}
END_TEST

START_TEST(test_fmnist_to_png) {
    if (!have_fmnist()) return;
    static const char *const classes[10] = {"0_tshirt_top", "1_trouser", "2_pullover", "3_dress",
                                            "4_coat", "5_sandal", "6_shirt", "7_sneaker",
                                            "8_bag", "9_ankle_boot"};
    char dir[512], args[1400], path[1024];
    stt_tmpdir(dir, sizeof dir, "tools-fmnist");
    snprintf(args, sizeof args, "--out '%s/f' --limit 30", dir);
    ck_assert_int_eq(run_tool(dir, "fmnist_to_png", args), 0);
    const char *splits[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        int total = 0;
        for (int c = 0; c < 10; c++) {
            snprintf(path, sizeof path, "%s/f/%s/%s", dir, splits[s], classes[c]);
            int n = count_files(path, ".png");
            ck_assert_msg(n >= 0, "missing class folder %s", path);
            total += n;
            DIR *d = opendir(path);
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.') continue;
                char file[1400];
                snprintf(file, sizeof file, "%s/%s", path, e->d_name);
                st_image im;
                st_error err = {0};
                ck_assert_msg(st_png_read(file, 0, &im, NULL, &err) == ST_OK, "%s", err.msg);
                ck_assert(im.c == 1 && im.h == 28 && im.w == 28);
                st_image_free(&im);
            }
            closedir(d);
        }
        ck_assert_int_eq(total, 30);
    }
    ck_assert_int_eq(run_tool(dir, "fmnist_to_png", args), 2); /* not empty now */
    snprintf(args, sizeof args, "--out '%s/g' --limit -1", dir);
    ck_assert_int_eq(run_tool(dir, "fmnist_to_png", args), 2);
    snprintf(args, sizeof args, "--out '%s/g' --data '%s/nowhere'", dir, dir);
    ck_assert_int_eq(run_tool(dir, "fmnist_to_png", args), 2);
}
END_TEST

Suite *tools_suite(void) {
    Suite *s = suite_create("tools");
    TCase *tc = tcase_create("tools");
    tcase_set_timeout(tc, 120); /* the tools run under the sanitizers too */
    tcase_add_test(tc, test_mosaic);
    tcase_add_test(tc, test_fmnist_to_png);
    suite_add_tcase(s, tc);
    return s;
}
