/* Malformed recipes of every kind (YAML syntax, structure, unknown modifiers and fields,
 * types and ranges, variables and overrides, files) are one ST_ERR_INPUT line naming the
 * file and what is wrong, never a crash (this suite also runs under ASan and UBSan). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_recipe.h"
#include "st_recipe_parse_util.h"
#include "st_test_util.h"

#define BAD(text, args, ...) bad_text("bad.yaml", text, args, 0, (const char *const[]){__VA_ARGS__, NULL})
#define BAD_MD(text, ...) bad_text("card.md", text, NULL, 0, (const char *const[]){__VA_ARGS__, NULL})

static void bad_text(const char *name, const char *text, const char *args, int strict, const char *const *words) {
    st_recipe r;
    st_error err = {0};
    st_status s = st_recipe_parse(text, strlen(text), name, args, strict, NULL, &r, &err);
    check_err(s, &err, &r, text, words);
    ck_assert_msg(strstr(err.msg, name) || (args && strstr(err.msg, "--recipe-args")), "no file name in: %s",
                  err.msg);
}

static void bad_file(const char *path, const char *const *words) {
    st_recipe r;
    st_error err = {0};
    st_status s = st_recipe_load(path, NULL, 0, NULL, &r, &err);
    check_err(s, &err, &r, path, words);
}

/* ---------------------------------------------------------------- malformed */

#define GMP_REST "    init_sparsity: 0.0\n    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n"

START_TEST(test_bad_yaml_syntax) {
    BAD("a: [1, 2\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:", "YAML error");
    BAD("modifiers:\n  - !EpochRangeModifier\n    end_epoch: 3\n   start_epoch: 1\n", NULL, "bad.yaml:4:", "YAML error");
    BAD("modifiers:\n\t- !EpochRangeModifier\n", NULL, "bad.yaml:2:1: YAML error", NULL);
    BAD("a: 'unclosed\n", NULL, "YAML error", "bad.yaml:");
    BAD("a: *nowhere\n", NULL, "YAML error", "undefined alias");
    /* A syntax error inside a .md's front matter carries the file's line number. */
    BAD_MD("<!-- licence -->\n\n---\nmodifiers:\n  - !EpochRangeModifier {end_epoch: [1}\n---\nprose\n",
           "card.md:5:", "YAML error");
    BAD_MD("intro\n---\nmodifiers: []\n", "card.md:2:", "never closed");
    BAD_MD("# Title\n\nNo YAML here.\n", "card.md", "no YAML front matter");
    BAD_MD("<!--\n---\nmodifiers: []\n---\n", "card.md", "no YAML front matter"); /* unclosed comment */
}
END_TEST

START_TEST(test_bad_structure) {
    BAD("num_epochs: 3\n", NULL, "bad.yaml", "no modifiers");
    BAD("modifiers: []\ntraining_modifiers: []\n", NULL, "no modifiers", NULL);
    BAD("", NULL, "bad.yaml", "empty");
    BAD("# only a comment\n", NULL, "bad.yaml", "empty");
    BAD("- !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:1", "top level");
    BAD("just text\n", NULL, "bad.yaml:1", "top level");
    BAD("pruning:\n  - !GMPruningModifier\n    params: a\n", NULL, "bad.yaml:1:", "invalid modifier location",
        "'pruning'");
    BAD("modifiers: !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:1:", "list");
    BAD("modifiers:\n  - end_epoch: 1\n", NULL, "bad.yaml:2:", "tag");
    BAD("modifiers:\n  - 3\n", NULL, "bad.yaml:2:", "expected a modifier");
    BAD("modifiers:\n  - [1, 2]\n", NULL, "bad.yaml:2:", "expected a modifier");
    BAD("a: 1\na: 2\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:2:", "'a' appears twice");
    BAD("? [a, b]\n: 1\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:1:", "plain name");
}
END_TEST

START_TEST(test_bad_modifiers_and_fields) {
    BAD("modifiers:\n  - !GMPPruningModifier\n    params: a\n", NULL, "bad.yaml:2:",
        "unknown modifier '!GMPPruningModifier' (did you mean 'GMPruningModifier'?)",
        "GMPruningModifier, MagnitudePruningModifier");
    BAD("modifiers:\n  - !LayerPruningModifier {}\n", NULL, "unknown modifier", "SetWeightDecayModifier");
    BAD("modifiers:\n  - !EpochRangeModifier\n    end_epochs: 3\n", NULL, "bad.yaml:3:",
        "unknown field 'end_epochs' (did you mean 'end_epoch'?)", "EpochRangeModifier takes: start_epoch, end_epoch");
    BAD("modifiers:\n  - !EpochRangeModifier\n    foo: 3\n", NULL, "unknown field 'foo' (EpochRangeModifier takes");
    BAD("modifiers:\n  - !MagnitudePruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST
        "    global_sparsity: true\n",
        NULL, "bad.yaml:9:", "unknown field 'global_sparsity'", "MagnitudePruningModifier");
    BAD("modifiers:\n  - !EpochRangeModifier\n    end_epoch: 3\n    end_epoch: 4\n", NULL, "bad.yaml:4:",
        "appears twice");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n" GMP_REST, NULL, "bad.yaml:2:",
        "GMPruningModifier: missing field 'final_sparsity'");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    init_sparsity: 0\n", NULL, "bad.yaml:2:",
        "missing fields 'start_epoch', 'end_epoch', 'update_frequency', 'final_sparsity'");
    BAD("modifiers:\n  - !GMPruningModifier\n    final_sparsity: 0.5\n" GMP_REST, NULL, "bad.yaml:2:",
        "missing field 'params'");
    BAD("modifiers:\n  - !SetLearningRateModifier {}\n", NULL, "missing field 'learning_rate'", NULL);
    BAD("modifiers:\n  - !GlobalMagnitudePruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST
        "    global_sparsity: false\n",
        NULL, "bad.yaml:9:", "always global");
}
END_TEST

START_TEST(test_bad_types_and_ranges) {
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: abc\n" GMP_REST, NULL,
        "bad.yaml:4: GMPruningModifier.final_sparsity: expected a number, got 'abc'");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: '0.5'\n" GMP_REST, NULL,
        "bad.yaml:4:", "expected a number, got '0.5'");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 1.0\n" GMP_REST, NULL,
        "bad.yaml:4: GMPruningModifier.final_sparsity", "[0, 1)", "got 1");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: -0.1\n" GMP_REST, NULL,
        "GMPruningModifier.final_sparsity", "[0, 1)", "got -0.1");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: []\n    final_sparsity: {0.9: [a], 1.5: [b]}\n" GMP_REST,
        NULL, "final_sparsity", "[0, 1)", "got 1.5");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: [x]\n    final_sparsity: {0.9: [a]}\n" GMP_REST, NULL,
        "GMPruningModifier.params", "must be empty");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: []\n    final_sparsity: 0.5\n" GMP_REST, NULL,
        "GMPruningModifier.params", "empty");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: 3\n    final_sparsity: 0.5\n" GMP_REST, NULL,
        "GMPruningModifier.params", "got 3");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n    init_sparsity: 1\n"
        "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n",
        NULL, "init_sparsity", "[0, 1)");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n    init_sparsity: FROM_PARAM\n"
        "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n",
        NULL, "init_sparsity", "__FROM_PARAM__");
    BAD("modifiers:\n  - !EpochRangeModifier\n    start_epoch: 5\n    end_epoch: 3\n", NULL, "bad.yaml:4:",
        "end_epoch 3 is before start_epoch 5");
    BAD("modifiers:\n  - !EpochRangeModifier\n    start_epoch: -2\n    end_epoch: 3\n", NULL, "start_epoch", ">= 0");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n    init_sparsity: 0\n"
        "    start_epoch: 0\n    end_epoch: -1\n    update_frequency: 1\n",
        NULL, "needs an end epoch");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n    init_sparsity: 0\n"
        "    start_epoch: 0\n    end_epoch: 3\n    update_frequency: 0\n",
        NULL, "update_frequency", "> 0");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: 3:2\n",
        NULL, "mask_type", "0 < N < M");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: [2, 4]\n",
        NULL, "mask_type", "[1, M]");
    /* both entries > 1: neither [1, M] nor [M, 1]; the message names the line */
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: [4, 4]\n",
        NULL, "bad.yaml:9: GMPruningModifier.mask_type: only [1, M] (input channels) or [M, 1] "
        "(output channels) blocks are supported, got [4, 4]");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: [2000, 1]\n",
        NULL, "bad.yaml:9:", "[M, 1] with M a whole number from 1 to 1024", "got 2000");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: [0, 1]\n",
        NULL, "bad.yaml:9:", "mask_type", "got 0");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: [4, 1, 1]\n",
        NULL, "bad.yaml:9:", "mask_type", "[M, 1]");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    mask_type: filter\n",
        NULL, "mask_type", "got 'filter'");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    inter_func: quadratic\n",
        NULL, "inter_func", "linear, cubic, inverse_cubic");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    leave_enabled: maybe\n",
        NULL, "leave_enabled", "true or false");
    BAD("modifiers:\n  - !GMPruningModifier\n    params: a\n    final_sparsity: 0.5\n" GMP_REST "    phased: true\n",
        NULL, "phased", "not supported");
    BAD("modifiers:\n  - !LearningRateFunctionModifier\n    lr_func: step\n    init_lr: 0.1\n    final_lr: 0\n"
        "    start_epoch: 0\n    end_epoch: 1\n",
        NULL, "lr_func", "linear, cosine, cyclic_linear");
    BAD("modifiers:\n  - !LearningRateFunctionModifier\n    lr_func: cosine\n    init_lr: 0.1\n    final_lr: 0\n"
        "    start_epoch: 2\n    end_epoch: 2\n",
        NULL, "end_epoch", "after start_epoch");
    BAD("modifiers:\n  - !LearningRateModifier\n    lr_class: LambdaLR\n    lr_kwargs: {}\n    init_lr: 0.1\n"
        "    start_epoch: 0\n",
        NULL, "lr_class", "StepLR, MultiStepLR, ExponentialLR, CosineAnnealingWarmRestarts");
    BAD("modifiers:\n  - !LearningRateModifier\n    lr_class: MultiStepLR\n    lr_kwargs: {gamma: 0.1}\n"
        "    init_lr: 0.1\n    start_epoch: 0\n",
        NULL, "MultiStepLR needs 'milestones'");
    BAD("modifiers:\n  - !LearningRateModifier\n    lr_class: StepLR\n    lr_kwargs: {milestones: [1]}\n"
        "    init_lr: 0.1\n    start_epoch: 0\n",
        NULL, "'milestones' is not an argument of StepLR");
    BAD("modifiers:\n  - !LearningRateModifier\n    lr_class: ExponentialLR\n    lr_kwargs: {gamma: -1}\n"
        "    init_lr: 0.1\n    start_epoch: 0\n",
        NULL, "gamma must be > 0");
    BAD("modifiers:\n  - !LearningRateModifier\n    lr_class: ExponentialLR\n    lr_kwargs: 0.9\n"
        "    init_lr: 0.1\n    start_epoch: 0\n",
        NULL, "lr_kwargs", "a mapping");
    BAD("modifiers:\n  - !SetLearningRateModifier {learning_rate: 0.1, param_groups: [3]}\n", NULL, "param_groups",
        "0, 1 or 2");
    BAD("modifiers:\n  - !SetLearningRateModifier {learning_rate: 0.1, param_groups: []}\n", NULL, "param_groups");
    BAD("modifiers:\n  - !SetWeightDecayModifier {weight_decay: -0.1}\n", NULL, "weight_decay", ">= 0");
    BAD("modifiers:\n  - !SetLearningRateModifier {learning_rate: 0.1, constant_logging: 3}\n", NULL,
        "constant_logging", "true or false");
    /* A list variable used as a number, through eval(). */
    BAD("l: [1, 2]\nmodifiers:\n  - !EpochRangeModifier {end_epoch: eval(l)}\n", NULL, "bad.yaml:3:",
        "EpochRangeModifier.end_epoch", "a list");
    /* A self-referencing alias is a list that holds itself: rejected, never walked. */
    BAD("x: &a [*a]\nmodifiers:\n  - !ConstantPruningModifier {params: *a}\n", NULL, "params", "a list");
    /* Deep nesting where parameter names are expected. */
    const char *pre = "modifiers:\n  - !ConstantPruningModifier {params: ";
    const size_t depth = 5000, j = strlen(pre);
    char *deep = stt_nested_lists(pre, depth, "}\n");
    BAD(deep, NULL, "ConstantPruningModifier.params", "a list");
    deep[j + depth] = 0; /* unclosed */
    BAD(deep, NULL, "bad.yaml:", "YAML error");
    free(deep);
}
END_TEST

START_TEST(test_bad_variables_and_overrides) {
    BAD("a: eval(b)\nb: eval(a)\nmodifiers:\n  - !EpochRangeModifier {end_epoch: eval(a)}\n", NULL, "bad.yaml:1:",
        "eval cycle: a -> b -> a");
    BAD("n: 3\nmodifiers:\n  - !EpochRangeModifier {end_epoch: eval(nope * 2)}\n", NULL, "bad.yaml:3:",
        "EpochRangeModifier.end_epoch", "unknown variable 'nope'", "(variables: n)");
    /* An unused variable is still evaluated, as SparseML does. */
    BAD("n: eval(m + 1)\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "bad.yaml:1: variable n",
        "unknown variable 'm'");
    BAD("n: eval(1 / 0)\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "division by zero");
    BAD("n: eval(os.system(1))\nmodifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", NULL, "not allowed");
    BAD("mask: '2:4'\nmodifiers:\n  - !EpochRangeModifier {end_epoch: eval(mask)}\n", NULL,
        "EpochRangeModifier.end_epoch: expected a number, got '2:4'");
    const char *rec = "num_epochs: 3\nlr: 0.1\nmodifiers:\n  - !EpochRangeModifier {end_epoch: eval(num_epochs)}\n";
    BAD(rec, "{\"num_epoch\": 4}", "--recipe-args", "unknown variable 'num_epoch' (did you mean 'num_epochs'?)",
        "num_epochs, lr");
    BAD(rec, "{\"num_epochs\": 4", "--recipe-args:", "invalid JSON");
    BAD(rec, "{\"num_epochs\": 4,, }", "--recipe-args:1:", "invalid JSON");
    BAD(rec, "[1, 2]", "--recipe-args", "JSON object");
    BAD(rec, "{\"num_epochs\": {\"a\": 1}}", "--recipe-args", "expected a number, a string or a list");
    BAD(rec, "{\"num_epochs\": 4, \"num_epochs\": 5}", "--recipe-args", "given twice");
    BAD(rec, "{\"num_epochs\": \"four\"}", "EpochRangeModifier.end_epoch", "got 'four'");
    BAD(rec, "{\"num_epochs\": \"eval(lr / 0)\"}", "--recipe-args", "variable num_epochs", "division by zero");
    BAD("modifiers:\n  - !EpochRangeModifier {end_epoch: 1}\n", "{\"x\": 1}", "--recipe-args", "variables: none");
}
END_TEST

START_TEST(test_bad_files) {
    bad_file(FIX("no_front_matter.md"), (const char *const[]){"no_front_matter.md", "no YAML front matter", NULL});
    bad_file(FIX("empty.yaml"), (const char *const[]){"empty.yaml", "empty", NULL});
    bad_file(FIX("does_not_exist.yaml"), (const char *const[]){"does_not_exist.yaml", "cannot open", NULL});
    bad_file(FIX(""), (const char *const[]){"cannot read", NULL}); /* a folder */
    /* Binary garbage, with NUL bytes and without (then it is bad UTF-8 / control bytes). */
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "recipe-garbage");
    unsigned x = 12345;
    for (int variant = 0; variant < 4; variant++) {
        snprintf(path, sizeof path, "%s/garbage%d.%s", dir, variant, variant & 1 ? "md" : "yaml");
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        int n = 4096;
        if (variant >= 2) fputs("---\n", f);
        for (int i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            unsigned char b = (unsigned char)(x >> 16);
            if (variant >= 2 && b == 0) b = 0xC3; /* no NULs */
            fputc(b, f);
        }
        if (variant >= 2) fputs("\n---\n", f);
        fclose(f);
        st_recipe r;
        st_error err = {0};
        st_status s = st_recipe_load(path, NULL, 0, NULL, &r, &err);
        check_err(s, &err, &r, path, (const char *const[]){dir, NULL});
        if (variant < 2) ck_assert_msg(strstr(err.msg, "NUL"), "%s", err.msg);
    }
    /* Control bytes in a .yaml: libyaml's reader error, with a line. */
    BAD("a: 1\nb: \x01\n", NULL, "bad.yaml:2:", "YAML error");
    BAD("a: \xff\xfe\n", NULL, "bad.yaml:1:", "UTF-8");
    /* A file name with control bytes is escaped in messages. */
    st_recipe r;
    st_error err = {0};
    st_status s = st_recipe_parse("x: 1\n", 5, "bad\n.yaml", NULL, 0, NULL, &r, &err);
    check_err(s, &err, &r, "control bytes in the name", (const char *const[]){"bad\\x0A.yaml", "no modifiers", NULL});
}
END_TEST

Suite *recipe_errors_suite(void) {
    Suite *s = suite_create("recipe_errors");
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_bad_yaml_syntax);
    tcase_add_test(bad, test_bad_structure);
    tcase_add_test(bad, test_bad_modifiers_and_fields);
    tcase_add_test(bad, test_bad_types_and_ranges);
    tcase_add_test(bad, test_bad_variables_and_overrides);
    tcase_add_test(bad, test_bad_files);
    suite_add_tcase(s, bad);
    return s;
}
