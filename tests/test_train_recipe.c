/* Training with recipes end to end: the recipe's epochs win over --epochs, pruned layers
 * end at their target sparsity with exact zeros, a run stopped in the middle of pruning
 * and resumed ends with identical masks and weights, and recipe-check's command line. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ckpt.h"
#include "st_test_util.h"
#include "st_train.h"

/* 3 epochs; GMP on the conv and the first linear layer, 0 -> 0.8 over epochs 0.5-2.5,
 * every 0.25 epochs; cosine LR. */
static const char *const recipe_text =
    "num_epochs: 3\n"
    "training_modifiers:\n"
    "  - !EpochRangeModifier\n"
    "    start_epoch: 0\n"
    "    end_epoch: eval(num_epochs)\n"
    "  - !LearningRateFunctionModifier\n"
    "    start_epoch: 0\n"
    "    end_epoch: eval(num_epochs)\n"
    "    lr_func: cosine\n"
    "    init_lr: 0.05\n"
    "    final_lr: 0.001\n"
    "pruning_modifiers:\n"
    "  - !GMPruningModifier\n"
    "    params: [model.2.conv.weight, re:model\\.5\\.w]\n"
    "    init_sparsity: 0.0\n"
    "    final_sparsity: 0.8\n"
    "    start_epoch: 0.5\n"
    "    end_epoch: 2.5\n"
    "    update_frequency: 0.25\n";

static const char *write_recipe(char *buf, size_t cap, const char *text) {
    char dir[512];
    stt_tmpdir(dir, sizeof dir, "recipe");
    snprintf(buf, cap, "%s/r.yaml", dir);
    FILE *f = fopen(buf, "w");
    fputs(text, f);
    fclose(f);
    return buf;
}

static st_train_opts opts(const char *data, const char *out, const char *recipe) {
    st_train_opts o;
    st_train_opts_default(&o);
    o.data = data, o.out_dir = out, o.overwrite = 1, o.recipe = recipe;
    o.epochs = 7; /* the recipe's 3 must win */
    o.batch = 32, o.threads = 1, o.progress = 0;
    o.log = fopen("/dev/null", "w");
    return o;
}

static double zero_fraction(const st_ckpt *c, const char *name) {
    const st_ckpt_tensor *t = st_ckpt_find(c, name);
    ck_assert_msg(t != NULL, "%s missing", name);
    size_t n = t->nbytes / 4, z = 0;
    const float *d = t->data;
    for (size_t i = 0; i < n; i++) z += d[i] == 0.0f;
    return (double)z / (double)n;
}

START_TEST(test_recipe_prunes_to_target_and_overrides_epochs) {
    char data[512], out[600], rp[600], ck[700];
    stt_make_idx_dataset(data, sizeof data);
    snprintf(out, sizeof out, "%s/run", data);
    st_train_opts o = opts(data, out, write_recipe(rp, sizeof rp, recipe_text));
    st_train_result res;
    st_error err = {0};
    ck_assert_msg(st_train_run(&o, &res, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(res.epochs_done, 3);
    snprintf(ck, sizeof ck, "%s/last.ckpt", out);
    st_ckpt *c = NULL;
    ck_assert_int_eq(st_ckpt_read(ck, &c, &err), ST_OK);
    /* exactly round(0.8 * N) zeros in each pruned tensor; the others stay dense */
    double s2 = zero_fraction(c, "param/model.2.conv.weight"), s5 = zero_fraction(c, "param/model.5.weight");
    ck_assert_msg(s2 > 0.8 - 1.0 / 18432 && s2 < 0.8 + 1.0 / 18432, "conv sparsity %f", s2);
    ck_assert_msg(s5 > 0.8 - 1.0 / 401408 && s5 < 0.8 + 1.0 / 401408, "fc sparsity %f", s5);
    ck_assert(zero_fraction(c, "param/model.0.conv.weight") < 0.01);
    ck_assert(zero_fraction(c, "param/model.7.weight") < 0.01);
    /* the recipe travels with the checkpoint */
    ck_assert_ptr_nonnull(st_ckpt_string(c, "recipe"));
    ck_assert_ptr_nonnull(strstr(st_ckpt_string(c, "recipe"), "GMPruningModifier"));
    st_ckpt_free(c);
    ck_assert_msg(res.final_metric > 0.7f, "accuracy %f", res.final_metric);
    fclose(o.log);
}
END_TEST

START_TEST(test_gmp_ending_with_the_run_reaches_its_target) {
    /* end_epoch = the run's end: the forced final update falls after the last step */
    char data[512], out[600], rp[600], ck[700], text[2048];
    snprintf(text, sizeof text, "%s", recipe_text);
    char *end = strstr(text, "end_epoch: 2.5");
    memcpy(end, "end_epoch: 3.0", 14);
    stt_make_idx_dataset(data, sizeof data);
    snprintf(out, sizeof out, "%s/run-end", data);
    st_train_opts o = opts(data, out, write_recipe(rp, sizeof rp, text));
    st_train_result res;
    st_error err = {0};
    ck_assert_msg(st_train_run(&o, &res, &err) == ST_OK, "%s", err.msg);
    snprintf(ck, sizeof ck, "%s/last.ckpt", out);
    st_ckpt *c = NULL;
    ck_assert_int_eq(st_ckpt_read(ck, &c, &err), ST_OK);
    double s5 = zero_fraction(c, "param/model.5.weight");
    ck_assert_msg(s5 > 0.8 - 1.0 / 401408 && s5 < 0.8 + 1.0 / 401408, "fc sparsity %f", s5);
    st_ckpt_free(c);
    fclose(o.log);
}
END_TEST

START_TEST(test_resume_in_the_middle_of_pruning) {
    char data[512], a[600], b[600], rp[600], pa[700], pb[700];
    stt_make_idx_dataset(data, sizeof data);
    write_recipe(rp, sizeof rp, recipe_text);
    snprintf(a, sizeof a, "%s/full", data);
    snprintf(b, sizeof b, "%s/split", data);
    st_train_result res;
    st_error err = {0};
    st_train_opts o = opts(data, a, rp);
    ck_assert_msg(st_train_run(&o, &res, &err) == ST_OK, "%s", err.msg);
    float acc = res.final_metric;
    /* stop after epoch 1 (pruning is under way), resume from the checkpoint alone:
     * the recipe comes back from it too */
    st_train_opts o1 = opts(data, b, rp);
    o1.stop_after = 1;
    ck_assert_int_eq(st_train_run(&o1, &res, &err), ST_OK);
    snprintf(pb, sizeof pb, "%s/last.ckpt", b);
    st_train_opts o2 = opts(data, NULL, NULL);
    o2.resume = pb;
    ck_assert_msg(st_train_run(&o2, &res, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(res.epochs_done, 3);
    ck_assert_float_eq(res.final_metric, acc);
    snprintf(pa, sizeof pa, "%s/last.ckpt", a);
    stt_assert_same_ckpt(pa, pb);
    fclose(o.log), fclose(o1.log), fclose(o2.log);
}
END_TEST


START_TEST(test_recipe_check_cli) {
    char *out = malloc(1 << 17), args[2048], src[600], rp[600];
    /* the shipped recipes, with the model they are written for */
    const char *shipped[] = {"recipes/classifier90.yaml", "recipes/classifier95.yaml", "recipes/classifier90-b4.yaml"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "recipe-check %s --model cnn-small --steps-per-epoch 937",
                 stt_source_path(src, sizeof src, shipped[i]));
        ck_assert_msg(stt_run_sparsetrain(args, out, 1 << 17) == 0, "%s:\n%s", shipped[i], out);
        ck_assert_ptr_nonnull(strstr(out, "model.5.weight"));
        ck_assert_ptr_nonnull(strstr(out, "GMPruningModifier"));
        if (i == 2) ck_assert_msg(strstr(out, "mask block [4, 1] (output channels)"), "%s", out);
    }
    /* names that match nothing: exit 2, the unmatched names listed */
    write_recipe(rp, sizeof rp,
                 "modifiers:\n  - !GMPruningModifier\n    params: [model.9.conv.weight, model.2.cv1.weight]\n"
                 "    init_sparsity: 0.0\n    final_sparsity: 0.5\n    start_epoch: 0\n    end_epoch: 1\n"
                 "    update_frequency: 0.5\n");
    snprintf(args, sizeof args, "recipe-check %s --model cnn-small", rp);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 17), 2);
    ck_assert_msg(strstr(out, "model.9.conv.weight") && strstr(out, "model.2.cv1.weight"), "%s", out);
    ck_assert_msg(strstr(out, "model.2.conv.weight") != NULL, "closest names missing:\n%s", out);
    /* malformed: a YAML error names the line */
    write_recipe(rp, sizeof rp, "modifiers:\n  - !GMPruningModifier\n    params: [a, b\n");
    snprintf(args, sizeof args, "recipe-check %s", rp);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 17), 2);
    ck_assert_ptr_nonnull(strstr(out, "r.yaml"));
    /* the trainer refuses it the same way */
    snprintf(args, sizeof args, "--recipe %s --data /nonexistent", rp);
    ck_assert_int_eq(stt_run_sparsetrain(args, out, 1 << 17), 2);
    free(out);
}
END_TEST

START_TEST(test_sparseml_compat_recipes_check) {
    char dir[600], args[2048], *out = malloc(1 << 17);
    stt_source_path(dir, sizeof dir, "../shared/compat/sparseml-recipes");
    DIR *d = opendir(dir);
    if (!d) {
        stt_skip("../shared/compat/sparseml-recipes is absent (clone without shared/)");
        free(out);
        return;
    }
    int checked = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strcmp(e->d_name, "README.md") == 0 || n < 4) continue;
        if (strcmp(e->d_name + n - 3, ".md") && strcmp(e->d_name + n - 5, ".yaml")) continue;
        snprintf(args, sizeof args, "recipe-check %s/%s", dir, e->d_name);
        ck_assert_msg(stt_run_sparsetrain(args, out, 1 << 17) == 0, "%s:\n%s", e->d_name, out);
        /* with our classifier, whose names differ: a clear error listing them */
        snprintf(args, sizeof args, "recipe-check %s/%s --model cnn-small", dir, e->d_name);
        int rc = stt_run_sparsetrain(args, out, 1 << 17);
        ck_assert_msg(rc == 0 || (rc == 2 && strstr(out, "no parameter matches")), "%s:\n%s", e->d_name, out);
        checked++;
    }
    closedir(d);
    ck_assert_int_ge(checked, 7);
    free(out);
}
END_TEST

Suite *train_recipe_suite(void) {
    Suite *s = suite_create("train_recipe");
    TCase *tc = tcase_create("recipe");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_recipe_prunes_to_target_and_overrides_epochs);
    tcase_add_test(tc, test_gmp_ending_with_the_run_reaches_its_target);
    tcase_add_test(tc, test_resume_in_the_middle_of_pruning);
    tcase_add_test(tc, test_recipe_check_cli);
    tcase_add_test(tc, test_sparseml_compat_recipes_check);
    suite_add_tcase(s, tc);
    return s;
}
