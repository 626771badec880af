/* sparsetrain recipe-check RECIPE [--model M] [--data DIR] [--steps-per-epoch N]
 *                                 [--recipe-args JSON] [--strict]
 * Parses and validates a recipe and prints the resolved plan. With a model, also the
 * parameters each modifier selects and the LR / sparsity table over the run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli_cmds.h"
#include "st_dataset.h"
#include "st_models.h"
#include "st_recipe_run.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparsetrain recipe-check RECIPE [--model NAME] [--data DIR]\n"
            "                                [--steps-per-epoch N] [--recipe-args JSON] [--strict]\n"
            "\n"
            "Parses and validates RECIPE (.yaml or .md) and prints every modifier with its resolved\n"
            "fields. With --model, also the parameters each modifier selects (an error lists the\n"
            "names that match nothing and the closest ones) and a table of epoch -> LR per group and\n"
            "target sparsity at each update. --data gives the classes and input size (default:\n"
            "10 classes, 1x28x28); --steps-per-epoch the optimizer steps per epoch (default 100).\n");
    return code;
}

int st_cmd_recipe_check(int argc, char **argv) {
    const char *path = NULL, *model = NULL, *data = NULL, *args = NULL;
    int steps = 100, strict = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--strict")) { strict = 1; continue; }
        if (a[0] != '-') {
            if (path) return usage(stderr, 2);
            path = a;
            continue;
        }
        if (!v) return usage(stderr, 2);
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--recipe-args")) args = v;
        else if (!strcmp(a, "--steps-per-epoch")) {
            steps = atoi(v);
            if (steps < 1) {
                fprintf(stderr, "sparsetrain: --steps-per-epoch must be >= 1\n");
                return 2;
            }
        } else {
            fprintf(stderr, "sparsetrain recipe-check: unknown option '%s'\n", a);
            return 2;
        }
        i++;
    }
    if (!path) return usage(stderr, 2);
    st_error err = {0};
    st_recipe r;
    st_status rc = st_recipe_load(path, args, strict, stderr, &r, &err);
    if (rc != ST_OK) {
        fprintf(stderr, "sparsetrain: error: %s\n", err.msg);
        return st_exit_code(rc);
    }
    st_recipe_print(&r, stdout);
    st_graph *g = NULL;
    st_recipe_run *run = NULL;
    int code = 0;
    if (model) {
        int c = 1, h = 28, w = 28, classes = 10;
        if (data) {
            st_ds_opts dso;
            st_ds_opts_default(&dso);
            st_dataset d;
            if ((rc = st_dataset_open(data, &dso, &d, &err)) != ST_OK) goto fail;
            classes = d.n_classes;
            st_image im;
            int borrowed = 0;
            if ((rc = st_dataset_load_image(&d, &d.train, 0, 0, &im, &borrowed, &err)) == ST_OK) {
                c = im.c, h = im.h, w = im.w;
                if (!borrowed) st_image_free(&im);
            }
            st_dataset_free(&d);
            if (rc != ST_OK) goto fail;
        }
        if ((rc = st_model_open(model, NULL, 0, c, h, w, classes, 1, &g, NULL, NULL, &err)) != ST_OK ||
            (rc = st_graph_finalize(g, 1, &err)) != ST_OK ||
            (rc = st_recipe_bind(&r, g, steps, &run, &err)) != ST_OK)
            goto fail;
    }
    st_recipe_print_plan(&r, run, g, steps, stdout);
    goto done;
fail:
    fprintf(stderr, "sparsetrain: error: %s\n", err.msg);
    code = st_exit_code(rc);
done:
    st_recipe_run_free(run);
    st_graph_free(g);
    st_recipe_free(&r);
    return code;
}
