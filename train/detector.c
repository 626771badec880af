/* Loading a detector for eval / predict (see st_detect_run.h). */
#include <stdlib.h>
#include <string.h>

#include "st_detect_run.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_run_files.h"

/* Class names from a JSON list, or "0", "1", ... when absent or of the wrong length. */
static st_status set_names(st_detector *d, const char *json, st_error *err) {
    char **names = NULL;
    int n = 0;
    if (json && st_json_parse_string_list(json, &names, &n, err) == ST_OK && n == d->cfg.nc) {
        d->names = names;
        return ST_OK;
    }
    st_json_free_list(names, n);
    d->names = calloc((size_t)d->cfg.nc, sizeof *d->names);
    if (!d->names) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    for (int k = 0; k < d->cfg.nc; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", k);
        if (!(d->names[k] = strdup(buf))) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    }
    return ST_OK;
}

st_status st_detector_open(const char *checkpoint, const char *onnx, st_detector *d,
                           st_error *err) {
    memset(d, 0, sizeof *d);
    st_status rc;
    const char *names = NULL;
    st_meta meta;
    st_onnx_model *m = NULL;
    if (checkpoint) {
        snprintf(d->label, sizeof d->label, "%s", checkpoint);
        if ((rc = st_model_from_checkpoint(checkpoint, &d->g, &meta, NULL, err)) != ST_OK) return rc;
        const char *task = st_meta_get(&meta, "task");
        if (!task || strcmp(task, "detect") != 0) {
            rc = st_errorf(err, ST_ERR_INPUT, "%s is a %s checkpoint, not a detector's", checkpoint,
                           task ? task : "?");
            goto fail;
        }
        names = st_meta_get(&meta, "classes");
    } else {
        snprintf(d->label, sizeof d->label, "%s", onnx);
        if ((rc = st_onnx_read_file(onnx, &m, err)) != ST_OK) return rc;
        if ((rc = st_onnx_import(m, NULL, &d->g, err)) != ST_OK) goto fail;
        names = st_onnx_metadata(m, "sparsetrain.classes");
    }
    st_shape in = d->g->values[d->g->input];
    st_shape o0 = d->g->values[d->g->output];
    int nc = o0.c / ST_YOLO_ANCHORS - 5;
    if (d->g->n_outputs != ST_YOLO_SCALES || nc < 1 || o0.c % ST_YOLO_ANCHORS) {
        rc = st_errorf(err, ST_ERR_INPUT,
                       "%s is not a YOLO detector: it needs 3 outputs of 3x(classes+5) channels",
                       d->label);
        goto fail;
    }
    st_yolo_cfg_default(&d->cfg, nc, in.h, in.w);
    if ((rc = st_detect_check_head(d->g, &d->cfg, d->label, err)) != ST_OK) goto fail;
    if ((rc = set_names(d, names, err)) != ST_OK) goto fail;
    st_onnx_model_free(m);
    return ST_OK;
fail:
    st_onnx_model_free(m);
    st_detector_free(d);
    return rc;
}

void st_detector_free(st_detector *d) {
    if (d->names) st_json_free_list(d->names, d->cfg.nc);
    st_graph_free(d->g);
    memset(d, 0, sizeof *d);
}
