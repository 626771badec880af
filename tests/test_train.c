/* The training loop end to end on a small synthetic IDX dataset: outputs, resume
 * equivalence (epoch boundary and mid-epoch), and the command line's errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_ckpt.h"
#include "st_optim.h"
#include "st_test_util.h"
#include "st_train.h"

static st_train_opts small_opts(const char *data, const char *out) {
    st_train_opts o;
    st_train_opts_default(&o);
    o.data = data;
    o.out_dir = out;
    o.overwrite = 1;
    o.epochs = 3;
    o.batch = 32;
    o.threads = 1;
    o.progress = 0;
    o.log = fopen("/dev/null", "w");
    return o;
}

START_TEST(test_train_outputs_and_learning) {
    char data[512], out[600];
    stt_make_idx_dataset(data, sizeof data);
    snprintf(out, sizeof out, "%s/run", data);
    st_train_opts o = small_opts(data, out);
    st_train_result res;
    st_error err = {0};
    ck_assert_int_eq(st_train_run(&o, &res, &err), ST_OK);
    ck_assert_int_eq(res.epochs_done, 3);
    ck_assert_msg(res.final_metric > 0.8f, "accuracy %f on an easy synthetic task", res.final_metric);
    const char *files[] = {"last.ckpt", "best.ckpt", "metrics.csv", "summary.json"};
    for (int i = 0; i < 4; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        FILE *f = fopen(p, "r");
        ck_assert_msg(f != NULL, "%s missing", p);
        if (i == 2) { /* header + one row per epoch */
            int lines = 0, ch;
            while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
            ck_assert_int_eq(lines, 4);
        }
        if (i == 3) {
            char buf[4096];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = 0;
            ck_assert_ptr_nonnull(strstr(buf, "\"task\": \"classify\""));
            ck_assert_ptr_nonnull(strstr(buf, "\"accuracy\""));
            ck_assert_ptr_nonnull(strstr(buf, "\"model.5.weight\""));
            ck_assert_ptr_nonnull(strstr(buf, "\"overall\""));
        }
        fclose(f);
    }
    fclose(o.log);
}
END_TEST

START_TEST(test_resume_matches_uninterrupted_run) {
    char data[512], a[600], b[600], pa[700], pb[700];
    stt_make_idx_dataset(data, sizeof data);
    snprintf(a, sizeof a, "%s/full", data);
    snprintf(b, sizeof b, "%s/split", data);
    st_train_result res;
    st_error err = {0};
    st_train_opts o = small_opts(data, a);
    ck_assert_int_eq(st_train_run(&o, &res, &err), ST_OK);
    float acc_full = res.final_metric;

    /* stopped after epoch 1, then resumed */
    st_train_opts o1 = small_opts(data, b);
    o1.stop_after = 1;
    ck_assert_int_eq(st_train_run(&o1, &res, &err), ST_OK);
    ck_assert_int_eq(res.epochs_done, 1);
    ck_assert(res.interrupted);
    snprintf(pb, sizeof pb, "%s/last.ckpt", b);
    st_train_opts o2 = small_opts(data, NULL);
    o2.resume = pb;
    o2.epochs = 99; /* the checkpoint's epoch count wins */
    ck_assert_int_eq(st_train_run(&o2, &res, &err), ST_OK);
    ck_assert_int_eq(res.epochs_done, 3);
    ck_assert_float_eq(res.final_metric, acc_full);
    snprintf(pa, sizeof pa, "%s/last.ckpt", a);
    stt_assert_same_ckpt(pa, pb);

    /* interrupted in the middle of the first epoch, then resumed */
    volatile sig_atomic_t stop = 1;
    st_train_opts o3 = small_opts(data, b);
    o3.interrupt = &stop;
    ck_assert_int_eq(st_train_run(&o3, &res, &err), ST_OK);
    ck_assert(res.interrupted);
    ck_assert_int_eq(res.epochs_done, 0);
    st_train_opts o4 = small_opts(data, NULL);
    o4.resume = pb;
    ck_assert_int_eq(st_train_run(&o4, &res, &err), ST_OK);
    ck_assert_float_eq(res.final_metric, acc_full);
    stt_assert_same_ckpt(pa, pb);
    fclose(o.log), fclose(o1.log), fclose(o2.log), fclose(o3.log), fclose(o4.log);
}
END_TEST


START_TEST(test_cli_bad_input_exit_2) {
    char msg[4096], args[2048], data[512];
    ck_assert_int_eq(stt_run_sparsetrain("--data /nonexistent/fmnist", msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "/nonexistent/fmnist"));
    ck_assert_int_eq(stt_run_sparsetrain("--epochs", msg, sizeof msg), 2);
    ck_assert_int_eq(stt_run_sparsetrain("--data x --batch zero", msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "--batch"));
    ck_assert_int_eq(stt_run_sparsetrain("--data x --frobnicate 1", msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "--frobnicate"));
    ck_assert_int_eq(stt_run_sparsetrain("--help", msg, sizeof msg), 0);

    /* truncated IDX file */
    stt_make_idx_dataset(data, sizeof data);
    char p[700];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", data);
    ck_assert_int_eq(truncate(p, 16 + 784 * 100 + 5), 0);
    snprintf(args, sizeof args, "--data %s --out %s/r", data, data);
    ck_assert_int_eq(stt_run_sparsetrain(args, msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "train-images-idx3-ubyte"));
}
END_TEST

START_TEST(test_cli_bad_checkpoints_exit_2) {
    char data[512], out[600], msg[4096], args[2048], ck[700];
    stt_make_idx_dataset(data, sizeof data);
    snprintf(out, sizeof out, "%s/run", data);
    st_train_opts o = small_opts(data, out);
    o.epochs = 1;
    st_train_result res;
    st_error err = {0};
    ck_assert_int_eq(st_train_run(&o, &res, &err), ST_OK);
    fclose(o.log);
    snprintf(ck, sizeof ck, "%s/last.ckpt", out);

    /* a flipped byte fails the checksum */
    FILE *f = fopen(ck, "r+b");
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    snprintf(args, sizeof args, "--data %s --resume %s", data, ck);
    ck_assert_int_eq(stt_run_sparsetrain(args, msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "checksum"));

    /* a checkpoint of another model */
    st_ckpt_writer *w = st_ckpt_writer_new();
    st_ckpt_put_string(w, "format", "sparsetrain-checkpoint-1", &err);
    st_ckpt_put_string(w, "model", "yolov5n", &err);
    st_ckpt_put_string(w, "task", "classify", &err);
    ck_assert_int_eq(st_ckpt_write(w, ck, &err), ST_OK);
    st_ckpt_writer_free(w);
    snprintf(args, sizeof args, "--data %s --model cnn-small --resume %s", data, ck);
    ck_assert_int_eq(stt_run_sparsetrain(args, msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, "yolov5n"));

    /* a file that is no checkpoint at all */
    f = fopen(ck, "wb");
    fputs("hello", f);
    fclose(f);
    ck_assert_int_eq(stt_run_sparsetrain(args, msg, sizeof msg), 2);
    ck_assert_ptr_nonnull(strstr(msg, ck));
}
END_TEST

Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_train_outputs_and_learning);
    tcase_add_test(tc, test_resume_matches_uninterrupted_run);
    tcase_add_test(tc, test_cli_bad_input_exit_2);
    tcase_add_test(tc, test_cli_bad_checkpoints_exit_2);
    suite_add_tcase(s, tc);
    return s;
}
