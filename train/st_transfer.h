/* Starting a training run from a pretrained model (transfer learning).
 *
 * The pretrained model is one of our checkpoints or an ONNX file (ours or another
 * framework's). Its weights load by name; the layers that produce the model's outputs
 * (classifier Linear, YOLO Detect convolutions) are re-created, initialised as a fresh
 * model's, when their shape no longer fits the dataset's classes. Any other missing or
 * mis-shaped weight is an error naming it: the file is a different architecture. */
#ifndef ST_TRANSFER_H
#define ST_TRANSFER_H

#include <stdint.h>
#include <stdio.h>

#include "st_common.h"
#include "st_graph.h"

typedef struct st_transfer_req {
    const char *model;      /* built-in name, .onnx file or checkpoint */
    const char *pretrained; /* weights for a built-in model (.ckpt or .onnx), or NULL */
    int detect;             /* the dataset's task: detector (1) or classifier (0) */
    int n_classes;
    int data_channels;      /* the images' own channels */
    int channels;           /* --channels, 0 if not given */
    int height, width;      /* the run's input size (detectors: from --imgsz or the images) */
    int imgsz;              /* --imgsz, 0 if not given */
    int reset_head;         /* re-create the head even when its shape fits */
    uint64_t seed;
    FILE *log;              /* what was loaded and re-created, and why */
} st_transfer_req;

typedef struct st_transfer_res {
    st_graph *g;            /* finalized, pretrained weights loaded */
    uint8_t *arch;          /* imported models: ONNX architecture for checkpoints (malloc'ed) */
    size_t arch_len;
    char label[64];         /* the name runs and checkpoints use (built-in or onnx:<stem>) */
    int channels, height, width; /* the model's input */
    int fresh_head;         /* the output layers start freshly initialised */
    double sparsity;        /* fraction of zeros in the pretrained prunable weights */
} st_transfer_res;

/* Builds the model for the run and loads the pretrained weights. ST_ERR_INPUT (exit 2)
 * for a file that does not fit: another architecture, names that do not match, other
 * input channels than the images', a head that cannot be re-created. */
st_status st_transfer_open(const st_transfer_req *q, st_transfer_res *res, st_error *err);

#endif
