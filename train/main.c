/* sparsetrain: the command-line front end. Only this file prints usage and exits. */
#include <cblas.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_cli.h"
#include "st_cli_cmds.h"
#include "st_models.h"
#include "st_optim.h"
#include "st_train.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    if (interrupted) _exit(130); /* second Ctrl-C: leave now */
    interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: sparsetrain [train] --data DIR [options]\n"
            "       sparsetrain recipe-check RECIPE [--model NAME] [--steps-per-epoch N]\n"
            "       sparsetrain export --checkpoint CKPT --out MODEL.onnx [--keep-bn] [--decode]\n"
            "       sparsetrain eval (--checkpoint CKPT | --model M.onnx) --data DIR\n"
            "       sparsetrain predict (--checkpoint CKPT | --model M.onnx) IMG.png... --out DIR\n"
            "       sparsetrain oneshot --recipe RECIPE --model IN.onnx --out OUT.onnx\n"
            "\n"
            "Trains (and prunes, with a recipe) a model on a dataset folder, on the CPU.\n"
            "\n"
            "  --data DIR        dataset folder: IDX files (e.g. /usr/share/datasets/fashion-mnist)\n"
            "                    or an ImageFolder tree (DIR/train/CLASS/*.png, DIR/val/CLASS/*.png)\n"
            "  --model NAME      model to train (default cnn-small, or yolov5n for YOLO folders),\n"
            "                    or a pretrained start (transfer learning): one of our\n"
            "                    checkpoints (.ckpt) or an ONNX file (ours or another\n"
            "                    framework's). Its weights load by name; an output layer that\n"
            "                    does not fit the dataset's classes is re-created\n"
            "  --pretrained F    weights (.ckpt, or .onnx exported with --keep-bn) for a\n"
            "                    built-in --model, loaded by name; the names must match\n"
            "  --reset-head      re-create the output layers even when they fit the classes\n"
            "  --recipe FILE     SparseML recipe (.yaml or .md): pruning and LR schedule; its\n"
            "                    epochs override --epochs\n"
            "  --recipe-args J   JSON object overriding recipe variables, e.g. '{\"num_epochs\": 3}'\n"
            "  --epochs N        epochs (default 5)\n"
            "  --batch N         batch size (default 64; detectors 16)\n"
            "  --lr X            base learning rate (default 0.05 for SGD, 0.001 for AdamW;\n"
            "                    detectors 0.01)\n"
            "  --weight-decay X  weight decay on conv/linear weights (default 5e-4)\n"
            "  --momentum X      SGD momentum (default 0.9, detectors 0.937; Nesterov)\n"
            "  --optimizer NAME  sgd or adamw (default sgd)\n"
            "  --threads N       threads (default: the number of CPUs)\n"
            "  --seed N          random seed (default 1); same seed and threads, same result\n"
            "  --out DIR         output folder (default runs/<model>, never overwritten)\n"
            "  --overwrite       allow --out to name a folder that already holds a run\n"
            "  --resume CKPT     continue a run from its last.ckpt\n"
            "  --stop-after N    stop after N epochs (resume later with --resume)\n"
            "  --dense           dense kernels only, even for pruned layers (for comparisons)\n"
            "  --imgsz N         input size (default: the images' own size; detectors: a multiple\n"
            "                    of 32, letterboxed)\n"
            "  --channels N      1 (gray) or 3 (RGB) input channels (default: the images' own)\n"
            "  --workers N       data loading threads (default 1)\n"
            "  --cache           keep decoded images in RAM\n"
            "  --strict          any broken image or label file, or a recipe modifier that is\n"
            "                    not run (quantization), is an error (default: skip / warn)\n"
            "  --fliplr P        random horizontal flip probability (default 0; detectors 0.5)\n"
            "  --mosaic P        detectors: 4-image mosaic probability (default 1)\n"
            "  --train-limit N   use only the first N training images\n"
            "  --test-limit N    use only the first N test images\n"
            "  --progress / --no-progress   force the progress bar on or off\n"
            "  -h, --help        this text\n"
            "\n"
            "Models:\n");
    for (const st_model_info *m = st_models_list(); m->name; m++)
        fprintf(f, "  %-12s %s\n", m->name, m->description);
    fprintf(f,
            "\nOutput folder: last.ckpt, best.ckpt, metrics.csv, summary.json, and model.onnx\n"
            "(the final model, BatchNorm folded) when the run completes.\n"
            "Ctrl-C saves last.ckpt at the end of the current step; --resume continues it.\n"
            "Exit codes: 0 done, 2 bad input (arguments, data, checkpoint), 1 other errors,\n"
            "130 interrupted.\n");
}

static int bad_arg(const char *fmt, const char *a) {
    fprintf(stderr, "sparsetrain: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n(see sparsetrain --help)\n");
    return 2;
}

static int parse_int(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < lo || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (*s == 0 || *end || !(v == v)) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv);
    st_train_opts o;
    st_train_opts_default(&o);
    o.model = NULL; /* NULL: default, or the checkpoint's when resuming */
    o.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int i = 1;
    if (i < argc && strcmp(argv[i], "recipe-check") == 0)
        return st_cmd_recipe_check(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "export") == 0) return st_cmd_export(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "predict") == 0) return st_cmd_predict(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "eval") == 0) return st_cmd_eval(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "oneshot") == 0) return st_cmd_oneshot(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "train") == 0) i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--overwrite")) {
            o.overwrite = 1, takes = 0;
        } else if (!strcmp(a, "--cache")) {
            o.cache = 1, takes = 0;
        } else if (!strcmp(a, "--dense")) {
            o.dense = 1, takes = 0;
        } else if (!strcmp(a, "--reset-head")) {
            o.reset_head = 1, takes = 0;
        } else if (!strcmp(a, "--strict")) {
            o.strict = 1, takes = 0;
        } else if (!strcmp(a, "--progress")) {
            o.progress = 1, takes = 0;
        } else if (!strcmp(a, "--no-progress")) {
            o.progress = 0, takes = 0;
        } else if (a[0] != '-' || a[1] != '-') {
            return bad_arg("unexpected argument '%s'", a);
        } else if (!v) {
            return bad_arg("%s needs a value", a);
        } else if (!strcmp(a, "--data")) o.data = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--out")) o.out_dir = v;
        else if (!strcmp(a, "--resume")) o.resume = v;
        else if (!strcmp(a, "--pretrained")) o.pretrained = v;
        else if (!strcmp(a, "--recipe")) o.recipe = v;
        else if (!strcmp(a, "--recipe-args")) o.recipe_args = v;
        else if (!strcmp(a, "--epochs")) bad = parse_int(v, 1, &o.epochs);
        else if (!strcmp(a, "--batch")) bad = parse_int(v, 1, &o.batch);
        else if (!strcmp(a, "--threads")) bad = parse_int(v, 1, &o.threads);
        else if (!strcmp(a, "--stop-after")) bad = parse_int(v, 1, &o.stop_after);
        else if (!strcmp(a, "--imgsz")) bad = parse_int(v, 8, &o.imgsz);
        else if (!strcmp(a, "--workers")) bad = parse_int(v, 1, &o.workers);
        else if (!strcmp(a, "--channels")) bad = parse_int(v, 1, &o.channels) || (o.channels != 1 && o.channels != 3);
        else if (!strcmp(a, "--fliplr")) bad = parse_float(v, &o.fliplr) || o.fliplr < 0 || o.fliplr > 1;
        else if (!strcmp(a, "--mosaic")) bad = parse_float(v, &o.mosaic) || o.mosaic < 0 || o.mosaic > 1;
        else if (!strcmp(a, "--train-limit")) bad = parse_int(v, 1, &o.train_limit);
        else if (!strcmp(a, "--test-limit")) bad = parse_int(v, 1, &o.test_limit);
        else if (!strcmp(a, "--seed")) {
            int s;
            bad = parse_int(v, 0, &s);
            o.seed = (uint64_t)s;
        } else if (!strcmp(a, "--lr")) bad = parse_float(v, &o.lr) || o.lr <= 0;
        else if (!strcmp(a, "--weight-decay")) bad = parse_float(v, &o.weight_decay) || o.weight_decay < 0;
        else if (!strcmp(a, "--momentum")) bad = parse_float(v, &o.momentum) || o.momentum < 0 || o.momentum >= 1;
        else if (!strcmp(a, "--optimizer")) {
            o.optimizer = st_opt_parse(v);
            bad = o.optimizer < 0;
        } else {
            return bad_arg("unknown option '%s'", a);
        }
        if (bad) {
            fprintf(stderr, "sparsetrain: invalid value '%s' for %s\n", v, a);
            return 2;
        }
        i += takes;
    }
    if (!o.data && !o.resume) return bad_arg("%s", "--data DIR is required");

    /* One owner of the threads: OpenMP and OpenBLAS both sized to --threads. */
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.interrupt = &interrupted;

    st_error err = {0};
    st_train_result res;
    st_status rc = st_train_run(&o, &res, &err);
    if (rc != ST_OK) {
        fprintf(stderr, "sparsetrain: error: %s\n", err.msg);
        return st_exit_code(rc);
    }
    if (res.interrupted) return interrupted ? 130 : 0;
    if (!strcmp(res.task, "classify"))
        printf("done: %d epochs, test accuracy %.2f%% (best %.2f%%), %.1fs; results in %s\n",
               res.epochs_done, 100 * res.final_metric, 100 * res.best_metric, res.seconds, res.out_dir);
    else
        printf("done: %d epochs, %s %.4f (best %.4f), %.1fs; results in %s\n", res.epochs_done,
               res.metric_name, res.final_metric, res.best_metric, res.seconds, res.out_dir);
    return 0;
}
