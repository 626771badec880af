/* Geometry on 8-bit HWC images: bilinear resize, letterbox, horizontal flip, and the
 * conversion to float CHW planes. These run on every training image, so the loops are
 * plain and specialised for 1 and 3 channels (a constant channel count lets the compiler
 * unroll the channel loop); nothing allocates. */
#include "st_image.h"

#include <math.h>
#include <string.h>

/* Source coordinate and weight for destination index i, aligned like OpenCV's
 * INTER_LINEAR: pixel centres map onto each other (src = (dst + 0.5) * scale - 0.5),
 * clamped at the borders (the outermost half pixel repeats the edge). */
static inline void src_coord(int i, double scale, int n, int *i0, int *i1, float *f) {
    double s = (i + 0.5) * scale - 0.5;
    int k = (int)floor(s);
    float w = (float)(s - k);
    if (k < 0) {
        k = 0;
        w = 0.0f;
    }
    if (k >= n - 1) {
        k = n - 1;
        w = 0.0f;
    }
    *i0 = k;
    *i1 = k + 1 < n ? k + 1 : k;
    *f = w;
}

/* Column tables and the two horizontally interpolated source rows live on the stack in
 * chunks of this many columns: no allocation, and one chunk covers every realistic
 * training size. */
#define RESIZE_CHUNK 1024

/* Separable: each source row is interpolated along x once (into one of two cached
 * rows), and the blend along y is a straight loop the compiler vectorises. */
static inline __attribute__((always_inline)) void
resize_rows(const st_image *src, uint8_t *dst, size_t dst_stride, int dh, int dw, const int c) {
    int xo0[RESIZE_CHUNK], xo1[RESIZE_CHUNK];
    float ax[RESIZE_CHUNK], hbuf[2][RESIZE_CHUNK * 3];
    double xs = (double)src->w / dw, ys = (double)src->h / dh;
    size_t src_stride = (size_t)src->w * c;
    for (int xb = 0; xb < dw; xb += RESIZE_CHUNK) {
        int n = ST_MIN(RESIZE_CHUNK, dw - xb);
        for (int i = 0; i < n; i++) {
            int a, b;
            src_coord(xb + i, xs, src->w, &a, &b, &ax[i]);
            xo0[i] = a * c;
            xo1[i] = b * c;
        }
        int cached[2] = {-1, -1}; /* source row held by each hbuf */
        for (int y = 0; y < dh; y++) {
            int y0, y1;
            float fy;
            src_coord(y, ys, src->h, &y0, &y1, &fy);
            int need[2] = {y0, y1}, slot[2];
            for (int k = 0; k < 2; k++) {
                slot[k] = cached[0] == need[k] ? 0 : cached[1] == need[k] ? 1 : -1;
                if (slot[k] >= 0) continue;
                /* reuse the buffer the other needed row is not in */
                slot[k] = k == 1 ? 1 - slot[0] : cached[0] == y1 ? 1 : 0;
                const uint8_t *r = src->data + (size_t)need[k] * src_stride;
                float *h = hbuf[slot[k]];
                for (int i = 0; i < n; i++)
                    for (int ch = 0; ch < c; ch++)
                        h[i * c + ch] = r[xo0[i] + ch] + (r[xo1[i] + ch] - r[xo0[i] + ch]) * ax[i];
                cached[slot[k]] = need[k];
            }
            const float *t = hbuf[slot[0]], *u = hbuf[slot[1]];
            uint8_t *o = dst + (size_t)y * dst_stride + (size_t)xb * c;
            for (int i = 0; i < n * c; i++) o[i] = (uint8_t)(t[i] + (u[i] - t[i]) * fy + 0.5f);
        }
    }
}

/* Resizes src into a dh x dw window of a larger buffer (row stride in bytes). */
static void resize_into(const st_image *src, uint8_t *dst, size_t dst_stride, int dh, int dw) {
    if (dh == src->h && dw == src->w) { /* identity: skip the arithmetic */
        for (int y = 0; y < dh; y++)
            memcpy(dst + (size_t)y * dst_stride, src->data + (size_t)y * dw * src->c,
                   (size_t)dw * src->c);
        return;
    }
    if (src->c == 3) resize_rows(src, dst, dst_stride, dh, dw, 3);
    else resize_rows(src, dst, dst_stride, dh, dw, 1);
}

void st_image_resize_bilinear(const st_image *src, st_image *dst) {
    if (src->c != dst->c || dst->h <= 0 || dst->w <= 0 || src->h <= 0 || src->w <= 0) return;
    resize_into(src, dst->data, (size_t)dst->w * dst->c, dst->h, dst->w);
}

void st_image_letterbox(const st_image *src, st_image *dst, uint8_t fill, float *scale,
                        float *pad_x, float *pad_y) {
    double r = fmin((double)dst->w / src->w, (double)dst->h / src->h);
    /* YOLOv5: new_unpad = int(round(w * r)); Python rounds halves to even, as rint does */
    int nw = (int)rint(src->w * r), nh = (int)rint(src->h * r);
    nw = ST_MAX(1, ST_MIN(nw, dst->w));
    nh = ST_MAX(1, ST_MIN(nh, dst->h));
    float px = (dst->w - nw) / 2.0f, py = (dst->h - nh) / 2.0f;
    /* YOLOv5 places the image at round(pad - 0.1): a half-pixel pad goes to the
     * bottom/right, and the float pad is what maps the boxes */
    int left = (int)rint(px - 0.1), top = (int)rint(py - 0.1);
    size_t stride = (size_t)dst->w * dst->c;
    memset(dst->data, fill, stride * dst->h);
    if (src->c == dst->c)
        resize_into(src, dst->data + (size_t)top * stride + (size_t)left * dst->c, stride, nh, nw);
    if (scale) *scale = (float)r;
    if (pad_x) *pad_x = px;
    if (pad_y) *pad_y = py;
}

void st_image_hflip(st_image *im) {
    int c = im->c, w = im->w;
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->data + (size_t)y * w * c;
        if (c == 3) {
            for (int a = 0, b = w - 1; a < b; a++, b--)
                for (int ch = 0; ch < 3; ch++) {
                    uint8_t t = row[3 * a + ch];
                    row[3 * a + ch] = row[3 * b + ch];
                    row[3 * b + ch] = t;
                }
        } else {
            for (int a = 0, b = w - 1; a < b; a++, b--) {
                uint8_t t = row[a];
                row[a] = row[b];
                row[b] = t;
            }
        }
    }
}

void st_image_to_chw(const st_image *im, int out_c, float *out) {
    const float k = 1.0f / 255.0f;
    size_t plane = (size_t)im->h * im->w;
    const uint8_t *p = im->data;
    if (im->c == 1) {
        for (size_t i = 0; i < plane; i++) out[i] = p[i] * k;
        for (int ch = 1; ch < out_c; ch++) memcpy(out + ch * plane, out, plane * sizeof(float));
    } else if (out_c == 3) {
        float *r = out, *g = out + plane, *b = out + 2 * plane;
        for (size_t i = 0; i < plane; i++) {
            r[i] = p[3 * i] * k;
            g[i] = p[3 * i + 1] * k;
            b[i] = p[3 * i + 2] * k;
        }
    } else {
        const float k3 = 1.0f / (3.0f * 255.0f);
        for (size_t i = 0; i < plane; i++) out[i] = (float)(p[3 * i] + p[3 * i + 1] + p[3 * i + 2]) * k3;
    }
}
