/* 8-bit images (interleaved HWC, 1 or 3 channels) and the operations the data pipeline
 * applies to them: PNG decoding and encoding (libpng), resizing, letterboxing, flips,
 * HSV jitter and affine warps. Images stay 8-bit until the batch is assembled, which
 * keeps the RAM cache and the augmentation cheap. */
#ifndef ST_IMAGE_H
#define ST_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "st_common.h"

typedef struct st_image {
    int c, h, w;     /* c is 1 (gray) or 3 (RGB) */
    uint8_t *data;   /* [h][w][c] */
} st_image;

/* Why an image could not be used; counted per kind in the dataset summary. */
typedef enum {
    ST_IMG_OK = 0,
    ST_IMG_EMPTY,        /* zero-byte file */
    ST_IMG_TRUNCATED,    /* ends before the image data does */
    ST_IMG_NOT_PNG,      /* no PNG signature (e.g. a text file named .png) */
    ST_IMG_CRC,          /* a chunk fails its CRC */
    ST_IMG_CORRUPT,      /* other decoding errors (bad zlib data, bad header values) */
    ST_IMG_UNREADABLE,   /* cannot be opened or read (permissions, a folder, dangling link) */
    ST_IMG_UNSUPPORTED,  /* JPEG and other formats: "not supported, convert to PNG" */
    ST_IMG_TOO_LARGE,    /* over 16384 pixels a side */
    ST_IMG_PROBLEM_COUNT
} st_img_problem;

/* Short plural-free noun for summaries: "corrupt PNG", "truncated PNG", ... */
const char *st_img_problem_name(st_img_problem p);

st_status st_image_alloc(st_image *im, int c, int h, int w);
void st_image_free(st_image *im);

/* Decodes any PNG (gray, gray+alpha, RGB, RGBA, palette, 1/2/4/8/16-bit, interlaced) into
 * want_c channels (1: luminance, 3: RGB; gray is replicated, alpha dropped; 0: 1 for gray
 * inputs and 3 for colour ones). Luminance is OpenCV's 0.299 R + 0.587 G + 0.114 B (14-bit
 * fixed point, rounded); 16-bit samples keep their high byte (v >> 8, as OpenCV). A file
 * cut after complete image data, before IEND, is accepted. On failure: ST_ERR_INPUT, *problem says why (may be
 * NULL), err->msg names the file and what to do. Never crashes on any input. */
st_status st_png_read(const char *path, int want_c, st_image *out, st_img_problem *problem,
                      st_error *err);
/* The same from memory; name is used in messages. */
st_status st_png_read_mem(const uint8_t *buf, size_t len, const char *name, int want_c,
                          st_image *out, st_img_problem *problem, st_error *err);
/* Writes an 8-bit gray or RGB PNG (atomically: temp file + rename). */
st_status st_png_write(const char *path, const st_image *im, st_error *err);
/* The same; durable = 0 skips the fsync before the rename (readers still never see half a
 * file) for bulk writers, which then sync the file system once (syncfs) at the end: a
 * per-file fsync costs more than encoding a small image. */
st_status st_png_write_ex(const char *path, const st_image *im, int durable, st_error *err);

/* The same PNG encoding into memory: *out is malloc'd (free with free()), *len its size.
 * For embedding images (the HTML report's data: URIs). */
st_status st_png_write_memory(const st_image *im, uint8_t **out, size_t *len, st_error *err);

/* dst must be allocated with the target size and src's channel count. */
void st_image_resize_bilinear(const st_image *src, st_image *dst);
/* Scales src to fit dst (square or not) keeping the aspect ratio, centred, the rest
 * filled with `fill` (114 in YOLOv5). Reports the scale and the padding so boxes can be
 * mapped: x_dst = x_src * scale + pad_x. */
void st_image_letterbox(const st_image *src, st_image *dst, uint8_t fill, float *scale,
                        float *pad_x, float *pad_y);
void st_image_hflip(st_image *im);
/* YOLOv5's augment_hsv with gains (gh, gs, gv) = its r (1 + uniform(-1, 1) * hsv_h, ...):
 * RGB -> 8-bit HSV (OpenCV's rounding, hue 0..180), then per-channel lookup tables
 * h' = (h * gh) mod 180, s' = clip(s * gs, 0, 255), v' = clip(v * gv, 0, 255), each
 * truncated to uint8 as numpy's astype does, then back to RGB. Note the hue gain
 * multiplies (as in YOLOv5), it is not a shift. Gray images: only v' applies. When all
 * three tables are the identity the image is left as is (the 8-bit HSV round trip would
 * otherwise change it slightly). */
void st_image_hsv_gain(st_image *im, float gh, float gs, float gv);
/* dst(x, y) = src(M^-1 (x, y)) with bilinear sampling; M is the 2x3 forward affine map
 * [a b tx; c d ty] from src to dst coordinates; outside src: fill. */
void st_image_warp_affine(const st_image *src, st_image *dst, const float M[6], uint8_t fill);
/* Converts to float planes [c][h][w] in [0, 1], replicating gray to out_c = 3 or
 * averaging RGB to out_c = 1. */
void st_image_to_chw(const st_image *im, int out_c, float *out);

#endif
