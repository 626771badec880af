/* Built-in model architectures, selected by name. */
#ifndef ST_MODELS_H
#define ST_MODELS_H

#include <stdint.h>

#include "st_graph.h"
#include "st_train_state.h"

typedef struct st_model_info {
    const char *name;
    const char *task; /* "classify" or "detect" */
    const char *description;
} st_model_info;

/* NULL-terminated list of the built-in models. */
const st_model_info *st_models_list(void);
const st_model_info *st_model_find(const char *name);

/* Builds (not finalized) the named model for inputs [in_c, in_h, in_w] and n_classes
 * outputs. ST_ERR_INPUT for an unknown name (the message lists the known ones). */
st_status st_model_build(const char *name, int in_c, int in_h, int in_w, int n_classes,
                         st_graph **out, st_error *err);

/* A model spec is a built-in name or the path of an ONNX file (ends in .onnx). */
int st_model_is_onnx(const char *spec);
/* The name runs and checkpoints use: the built-in name, or "onnx:<file stem>". */
void st_model_label(const char *spec, char *buf, size_t cap);

/* Builds a model from a spec or, when arch_in is not NULL, from the architecture blob of
 * a checkpoint. Built-in models come back not finalized. ONNX models come back
 * finalized with the file's weights (a trailing Softmax is dropped: the trainer applies
 * its own loss to the logits), and *arch / *arch_len (if arch is not NULL) receive a
 * malloc'ed blob to store in checkpoints. in_c/in_h/in_w/n_classes apply to built-in
 * models only; callers check an imported model's input and output shapes. */
st_status st_model_open(const char *spec, const uint8_t *arch_in, size_t arch_in_len, int in_c,
                        int in_h, int in_w, int n_classes, uint64_t seed, st_graph **out,
                        uint8_t **arch, size_t *arch_len, st_error *err);

/* Imports a parsed ONNX model for training (finalized, weights loaded, a trailing
 * Softmax dropped); *arch (if arch is not NULL) receives the blob checkpoints store: our
 * own export of the imported graph with BatchNorm and Dropout kept. */
struct st_onnx_model;
st_status st_model_import(struct st_onnx_model *m, uint64_t seed, st_graph **out, uint8_t **arch,
                          size_t *arch_len, st_error *err);

/* Rebuilds the model a training checkpoint was saved from, with its weights (the EMA
 * weights when the run kept them) and masks.
 * meta (may be NULL) receives the run's settings, *recipe (may be NULL) a malloc'ed copy
 * of the recipe text or NULL. */
st_status st_model_from_checkpoint(const char *path, st_graph **out, st_meta *meta,
                                   char **recipe, st_error *err);

#endif
