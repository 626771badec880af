/* Built-in model architectures, selected by name. */
#ifndef ST_MODELS_H
#define ST_MODELS_H

#include "st_graph.h"

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

#endif
