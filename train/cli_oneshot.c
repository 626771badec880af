/* sparsetrain oneshot --recipe R --model in.onnx --out out.onnx [--recipe-args J]
 * Applies a recipe's pruning without training, as SparseML's one-shot recipes do: every
 * pruning modifier's schedule is stepped through on the unchanged weights, so each
 * selected weight ends at its final sparsity by magnitude. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli_cmds.h"
#include "st_onnx.h"
#include "st_recipe_run.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparsetrain oneshot --recipe RECIPE --model IN.onnx --out OUT.onnx\n"
            "                          [--recipe-args JSON] [--keep-bn]\n"
            "\n"
            "Prunes an ONNX model by magnitude to the final sparsities of RECIPE's pruning\n"
            "modifiers (GMP, magnitude, constant), without training, and writes it as ONNX\n"
            "(our export: opset 13, exact zeros, the recipe and sparsities in metadata).\n"
            "LR and other training modifiers are ignored.\n");
    return code;
}

int st_cmd_oneshot(int argc, char **argv) {
    const char *recipe = NULL, *model = NULL, *out = NULL, *args = NULL;
    int keep_bn = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--keep-bn")) { keep_bn = 1; continue; }
        if (!v) { fprintf(stderr, "sparsetrain oneshot: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--recipe")) recipe = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--recipe-args")) args = v;
        else {
            fprintf(stderr, "sparsetrain oneshot: unknown option '%s'\n(see sparsetrain oneshot --help)\n", a);
            return 2;
        }
        i++;
    }
    if (!recipe || !model || !out) {
        fprintf(stderr, "sparsetrain oneshot: needs --recipe, --model and --out\n(see sparsetrain oneshot --help)\n");
        return 2;
    }
    st_error err = {0};
    st_onnx_model *m = NULL;
    st_graph *g = NULL;
    st_recipe r;
    int have_recipe = 0;
    st_recipe_run *run = NULL;
    st_status rc = st_onnx_read_file(model, &m, &err);
    if (rc == ST_OK) rc = st_onnx_import(m, NULL, &g, &err);
    if (rc == ST_OK && (rc = st_recipe_load(recipe, args, 0, stderr, &r, &err)) == ST_OK) have_recipe = 1;
    if (rc == ST_OK) rc = st_recipe_bind(&r, g, 1, &run, &err);
    if (rc == ST_OK) {
        float lr[3] = {0}, wd[3] = {0};
        int64_t total = st_recipe_run_total_steps(run);
        for (int64_t s = 0; s < total; s++) st_recipe_run_step(run, g, s, lr, wd);
        st_recipe_run_finish(run, g);
        for (int i = 0; i < st_recipe_run_num_targets(run); i++) {
            st_prune_target_info t = st_recipe_run_target(run, i);
            printf("  %-40s target %.3f achieved %.4f\n", g->params[t.param].name, t.target,
                   st_param_sparsity(g, t.param));
        }
        st_onnx_export_opts eo;
        st_onnx_export_opts_default(&eo);
        eo.fold_bn = !keep_bn;
        eo.recipe = r.text;
        rc = st_onnx_export_file(g, &eo, out, &err);
    }
    if (rc == ST_OK)
        printf("wrote %s: %.2f%% of prunable weights zero\n", out, 100 * st_graph_prunable_sparsity(g));
    else
        fprintf(stderr, "sparsetrain oneshot: error: %s\n", err.msg);
    st_recipe_run_free(run);
    if (have_recipe) st_recipe_free(&r);
    st_graph_free(g);
    st_onnx_model_free(m);
    return st_exit_code(rc);
}
