/* Where a model comes from: a built-in architecture by name, an ONNX file, or the
 * architecture stored in a training checkpoint (models imported from ONNX carry their
 * graph as an ONNX blob, so a checkpoint alone rebuilds them). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st_ckpt.h"
#include "st_models.h"
#include "st_onnx.h"

int st_model_is_onnx(const char *spec) {
    size_t n = spec ? strlen(spec) : 0;
    return n > 5 && strcasecmp(spec + n - 5, ".onnx") == 0;
}

void st_model_label(const char *spec, char *buf, size_t cap) {
    if (!st_model_is_onnx(spec)) {
        snprintf(buf, cap, "%s", spec);
        return;
    }
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    snprintf(buf, cap, "onnx:%.*s", (int)(strlen(base) - 5), base);
}

/* Imports a parsed model for training; the blob stored in checkpoints is our own export
 * of the imported graph (BatchNorm and Dropout kept), so it re-imports to the same
 * parameter names. */
st_status st_model_import(st_onnx_model *m, uint64_t seed, st_graph **out, uint8_t **arch,
                          size_t *arch_len, st_error *err) {
    st_onnx_import_opts io = {.strip_softmax = 1, .seed = seed};
    st_status rc = st_onnx_import(m, &io, out, err);
    if (rc != ST_OK || !arch) return rc;
    st_onnx_export_opts eo;
    st_onnx_export_opts_default(&eo);
    eo.fold_bn = 0;
    eo.keep_dropout = 1;
    rc = st_onnx_export_memory(*out, &eo, arch, arch_len, err);
    if (rc != ST_OK) {
        st_graph_free(*out);
        *out = NULL;
    }
    return rc;
}

st_status st_model_open(const char *spec, const uint8_t *arch_in, size_t arch_in_len, int in_c,
                        int in_h, int in_w, int n_classes, uint64_t seed, st_graph **out,
                        uint8_t **arch, size_t *arch_len, st_error *err) {
    *out = NULL;
    if (arch) *arch = NULL, *arch_len = 0;
    if (!arch_in && !st_model_is_onnx(spec))
        return st_model_build(spec, in_c, in_h, in_w, n_classes, out, err);
    st_onnx_model *m = NULL;
    st_status rc = arch_in ? st_onnx_read_memory(arch_in, arch_in_len, "checkpoint architecture",
                                                 NULL, &m, err)
                           : st_onnx_read_file(spec, &m, err);
    if (rc == ST_OK) rc = st_model_import(m, seed, out, arch, arch_len, err);
    st_onnx_model_free(m);
    return rc;
}

st_status st_model_from_checkpoint(const char *path, st_graph **out, st_meta *meta,
                                   char **recipe, st_error *err) {
    *out = NULL;
    if (recipe) *recipe = NULL;
    st_ckpt *c = NULL;
    st_status rc = st_ckpt_read(path, &c, err);
    if (rc != ST_OK) return rc;
    const char *model = st_ckpt_string(c, "model"), *input = st_ckpt_string(c, "input");
    const char *classes = st_ckpt_string(c, "num_classes");
    const st_ckpt_tensor *arch = st_ckpt_find(c, "arch/onnx");
    int ic = 0, ih = 0, iw = 0;
    if (!model || !input || sscanf(input, "%dx%dx%d", &ic, &ih, &iw) != 3 ||
        (!arch && !classes)) {
        rc = st_errorf(err, ST_ERR_INPUT,
                       "%s: not a sparsetrain training checkpoint (no model description)", path);
        goto done;
    }
    if (arch && arch->dtype != ST_DT_U8) {
        rc = st_errorf(err, ST_ERR_INPUT, "%s: architecture tensor has the wrong type", path);
        goto done;
    }
    rc = st_model_open(model, arch ? arch->data : NULL, arch ? arch->nbytes : 0, ic, ih, iw,
                       classes ? atoi(classes) : 0, 1, out, NULL, NULL, err);
    if (rc == ST_OK) rc = st_graph_finalize(*out, 1, err);
    if (rc == ST_OK) {
        /* A run that kept an EMA of the weights (detection) evaluates and exports the EMA:
         * it is the model. */
        st_train_state s;
        memset(&s, 0, sizeof s);
        rc = st_train_state_load(path, NULL, *out, NULL, &s, meta, err);
        if (rc == ST_OK && s.ema) memcpy((*out)->param_data, s.ema, (*out)->param_floats * sizeof(float));
        st_train_state_free(&s);
    }
    const char *rt = st_ckpt_string(c, "recipe");
    if (rc == ST_OK && recipe && rt && !(*recipe = strdup(rt)))
        rc = st_errorf(err, ST_ERR_NOMEM, "out of memory");
    if (rc != ST_OK) {
        st_graph_free(*out);
        *out = NULL;
    }
done:
    st_ckpt_free(c);
    return rc;
}
