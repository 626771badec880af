/* The trainer's command line on folders with broken files: each is reported, skipped and
 * counted in the summary; --strict and "no usable image" are errors with exit code 2. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_image.h"
#include "st_test_util.h"

/* DIR/{train,val}/{a,b}/N.png: 40 + 10 small gray images, plus the repo's broken files
 * copied into train/a. */
static void make_folder(char *dir, size_t cap, int with_good) {
    stt_tmpdir(dir, cap, "folder");
    const char *sub[] = {"train", "val"};
    char p[800];
    st_rng r;
    st_rng_seed(&r, 3);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++) {
            snprintf(p, sizeof p, "%s/%s", dir, sub[s]);
            mkdir(p, 0755);
            snprintf(p, sizeof p, "%s/%s/%c", dir, sub[s], 'a' + c);
            mkdir(p, 0755);
            for (int i = 0; with_good && i < (s ? 5 : 20); i++) {
                st_image im;
                st_image_alloc(&im, 1, 12, 12);
                for (int k = 0; k < 144; k++)
                    im.data[k] = (uint8_t)((c ? k % 12 < 6 : k / 12 < 6) ? 200 : st_rng_below(&r, 60));
                snprintf(p, sizeof p, "%s/%s/%c/%03d.png", dir, sub[s], 'a' + c, i);
                st_error err = {0};
                ck_assert_int_eq(st_png_write(p, &im, &err), ST_OK);
                st_image_free(&im);
            }
        }
    char cmd[4096], src[600];
    stt_source_path(src, sizeof src, "tests/fixtures/bad_images");
    snprintf(cmd, sizeof cmd, "cp -P %s/empty.png %s/truncated.png %s/text.png %s/badcrc.png "
             "%s/photo.jpg %s/dangling.png %s/train/a/", src, src, src, src, src, src, dir);
    ck_assert_int_eq(stt_run(cmd), 0);
}


START_TEST(test_broken_files_skipped_and_counted) {
    char dir[512], args[2048], *out = malloc(1 << 16);
    make_folder(dir, sizeof dir, 1);
    snprintf(args, sizeof args, "--data %s --epochs 1 --batch 8 --threads 1 --out %s/run --overwrite",
             dir, dir);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 16), 0);
    ck_assert_ptr_nonnull(strstr(out, "ImageFolder"));
    ck_assert_msg(strstr(out, "skipped 6 of 56 images") != NULL, "output:\n%s", out);
    const char *names[] = {"empty.png", "truncated.png", "text.png", "badcrc.png", "photo.jpg",
                           "dangling.png"};
    for (int i = 0; i < 6; i++) {
        int times = 0;
        for (const char *at = out; (at = strstr(at, names[i])); at++) times++;
        ck_assert_msg(times == 1, "%s reported %d times", names[i], times);
    }
    ck_assert_ptr_nonnull(strstr(out, "convert"));  /* the JPEG hint */
    ck_assert_ptr_nonnull(strstr(out, "epoch 1/1"));

    snprintf(args, sizeof args, "--data %s --epochs 1 --batch 8 --threads 1 --strict --out %s/run2",
             dir, dir);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 16), 2);
    ck_assert_ptr_nonnull(strstr(out, dir));
    free(out);
}
END_TEST

START_TEST(test_no_usable_image_exit_2) {
    char dir[512], args[2048], *out = malloc(1 << 16);
    make_folder(dir, sizeof dir, 0);
    snprintf(args, sizeof args, "--data %s --epochs 1 --out %s/run", dir, dir);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 16), 2);
    ck_assert_msg(strstr(out, "no usable image") != NULL, "output:\n%s", out);
    /* a YOLO set given to the classifier */
    char src[600];
    snprintf(args, sizeof args, "--data %s --epochs 1 --out %s/run",
             stt_source_path(src, sizeof src, "tests/fixtures/bad_yolo"), dir);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 16), 2);
    free(out);
}
END_TEST

Suite *data_cli_suite(void) {
    Suite *s = suite_create("data_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_broken_files_skipped_and_counted);
    tcase_add_test(tc, test_no_usable_image_exit_2);
    suite_add_tcase(s, tc);
    return s;
}
