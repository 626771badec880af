/* sparsetrain eval (--checkpoint C | --model M.onnx) --data DIR [--batch 16] [--threads N]
 * Validation mAP of a detector on a dataset's val split, with the per-class table. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli_cmds.h"
#include "st_dataset.h"
#include "st_detect_run.h"
#include "st_progress.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparsetrain eval (--checkpoint CKPT | --model MODEL.onnx) --data DIR\n"
            "                       [--batch N] [--threads N]\n"
            "\n"
            "Evaluates a YOLO detector on the val split of a YOLO dataset folder as training\n"
            "does after each epoch: conf 0.001, class-aware NMS at IoU 0.6, at most 300\n"
            "detections per image, COCO mAP@0.5 and mAP@0.5:0.95 (101-point), per class.\n");
    return code;
}

static void print_table(const st_map_result *m, char **names, int n_images, FILE *f) {
    fprintf(f, "%-20s %8s %10s %8s %8s %10s\n", "class", "images", "instances", "P/R", "AP50", "AP50-95");
    fprintf(f, "%-20s %8d %10s %4.3f/%4.3f %6.4f %10.4f\n", "all", n_images, "", m->precision,
            m->recall, m->map50, m->map50_95);
    for (int k = 0; k < m->nc; k++) {
        if (m->ap50[k] < 0) fprintf(f, "%-20.20s %8d %10d %8s %8s %10s\n", names[k], 0, 0, "", "-", "-");
        else
            fprintf(f, "%-20.20s %8d %10d %8s %8.4f %10.4f\n", names[k], m->n_images[k], m->n_gt[k], "",
                    m->ap50[k], m->ap50_95[k]);
    }
}

int st_cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *model = NULL, *data = NULL;
    int batch = 16, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        int bad = !v;
        if (bad) {}
        else if (!strcmp(a, "--checkpoint")) ckpt = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--batch")) bad = (batch = atoi(v)) < 1;
        else if (!strcmp(a, "--threads")) bad = (threads = atoi(v)) < 1;
        else bad = 1;
        if (bad) {
            fprintf(stderr, "sparsetrain eval: bad option '%s'\n(see sparsetrain eval --help)\n", a);
            return 2;
        }
        i++;
    }
    if (!(ckpt == NULL) == !(model == NULL) || !data) {
        fprintf(stderr, "sparsetrain eval: needs --data DIR and one of --checkpoint / --model\n"
                        "(see sparsetrain eval --help)\n");
        return 2;
    }
    if (threads) omp_set_num_threads(threads);
    st_error err = {0};
    st_detector d;
    st_dataset ds;
    memset(&ds, 0, sizeof ds);
    int ds_open = 0;
    st_loader *val = NULL;
    st_exec ex;
    memset(&ex, 0, sizeof ex);
    st_detect_buf buf = {0};
    st_map_result res;
    memset(&res, 0, sizeof res);
    st_status rc = st_detector_open(ckpt, model, &d, &err);
    if (rc != ST_OK) goto end;
    st_ds_opts dso;
    st_ds_opts_default(&dso);
    dso.log = stderr;
    if ((rc = st_dataset_open(data, &dso, &ds, &err)) != ST_OK) goto end;
    ds_open = 1;
    if (ds.kind != ST_DS_YOLO) {
        rc = st_errorf(&err, ST_ERR_INPUT, "%s is not a YOLO detection dataset", data);
        goto end;
    }
    if (ds.n_classes != d.cfg.nc) {
        rc = st_errorf(&err, ST_ERR_INPUT, "%s has %d classes, the model %s detects %d", data,
                       ds.n_classes, d.label, d.cfg.nc);
        goto end;
    }
    st_loader_opts lo;
    st_loader_opts_default(&lo);
    lo.batch = batch;
    lo.channels = d.g->values[d.g->input].c, lo.height = d.cfg.img_h, lo.width = d.cfg.img_w;
    lo.mean = 0, lo.std = 1, lo.detect = 1;
    lo.shuffle = lo.drop_last = lo.augment = 0;
    if ((rc = st_loader_open(&ds, &ds.val, &lo, &val, &err)) != ST_OK) goto end;
    if ((rc = st_exec_plan(&ex, d.g, batch, 0, &err)) != ST_OK) goto end;
    if ((rc = st_exec_sparse_repack(&ex, &err)) != ST_OK) goto end;
    if ((rc = st_detect_buf_init(&buf, &d.cfg, &err)) != ST_OK) goto end;
    double t0 = st_now();
    if ((rc = st_detect_evaluate(&ex, val, &d.cfg, &buf, &res, &err)) != ST_OK) goto end;
    printf("%s on %s: %d val images in %.1fs\n", d.label, data, ds.val.n, st_now() - t0);
    print_table(&res, d.names, ds.val.n, stdout);
end:
    if (rc != ST_OK) fprintf(stderr, "sparsetrain eval: error: %s\n", err.msg);
    if (res.ap50) st_map_result_free(&res);
    st_detect_buf_free(&buf);
    st_exec_free(&ex);
    st_loader_free(val);
    if (ds_open) st_dataset_free(&ds);
    if (d.g) st_detector_free(&d);
    return st_exit_code(rc);
}
