/* Drawing detections into 8-bit images for `sparsetrain predict` and the HTML report:
 * box outlines in a fixed per-class palette, and a "name 0.87" label on a filled
 * background drawn with a built-in 5x7 bitmap font (ASCII 32..126). Everything is
 * clipped to the image: any coordinates, even far outside or non-finite, are safe. */
#ifndef ST_DRAW_H
#define ST_DRAW_H

#include <stdint.h>

#include "st_detect.h"
#include "st_image.h"

typedef struct st_rgb {
    uint8_t r, g, b;
} st_rgb;

#define ST_FONT_W 5       /* glyph cell, pixels at scale 1 */
#define ST_FONT_H 7
#define ST_FONT_ADVANCE 6 /* glyph plus one column of spacing */
#define ST_DRAW_PALETTE 20

/* Colour of class cls (cycling through a 20-colour palette; negative classes too). */
st_rgb st_draw_class_color(int cls);

/* Writes one pixel if (x, y) is inside; gray images get the colour's luminance. */
void st_draw_pixel(st_image *im, int x, int y, st_rgb c);
/* Filled rectangle covering pixels x1..x2-1, y1..y2-1 (half-open), clipped. */
void st_draw_fill(st_image *im, int x1, int y1, int x2, int y2, st_rgb c);
/* Outline of the box [x1, x2) x [y1, y2), `thickness` pixels drawn inwards, clipped. */
void st_draw_rect(st_image *im, int x1, int y1, int x2, int y2, int thickness, st_rgb c);

/* Width in pixels of text at this scale (no trailing spacing); 0 for "". */
int st_draw_text_width(const char *text, int scale);
/* Draws text with its top-left corner at (x, y), each font pixel a scale x scale block;
 * characters outside 32..126 show as '?'. Returns the width drawn (as st_draw_text_width). */
int st_draw_text(st_image *im, int x, int y, const char *text, int scale, st_rgb c);

/* Maps a box from model-input pixels back to the original image (undoes
 * st_image_letterbox: x_orig = (x - pad_x) / gain) and clips it to [0, w] x [0, h]. */
void st_det_unletterbox(st_det *d, float gain, float pad_x, float pad_y, int w, int h);

/* The label drawn for a detection: "name 0.87" (class_names[cls] when cls < nc and the
 * name is not NULL, else the class number). Returns snprintf's count. */
int st_draw_label(char *buf, int cap, const st_det *d, const char *const *class_names, int nc);

/* Draws one detection whose box is already in image pixels: a 2-pixel outline in the
 * class colour, and `label` (may be NULL: no label) on a filled background of that colour
 * above the box, or inside it when there is no room above; shifted left to stay inside
 * the image. The text is white or black, whichever contrasts more with the colour, at
 * scale 1 (2 for images of 800 pixels a side or more). label_rect (may be NULL) receives
 * the background's x1, y1, x2, y2 (half-open), or zeros without a label. */
void st_draw_detection(st_image *im, const st_det *d, const char *label, int label_rect[4]);
/* Draws every detection: boxes in model-input pixels are mapped with st_det_unletterbox
 * (gain 1, pads 0 when they are already in image pixels), labelled by st_draw_label. */
void st_draw_detections(st_image *im, const st_det *dets, int n, const char *const *class_names,
                        int nc, float gain, float pad_x, float pad_y);

#endif
