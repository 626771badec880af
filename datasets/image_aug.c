/* Photometric and affine augmentation on 8-bit images: YOLOv5's HSV jitter and a
 * bilinear affine warp with a constant border. */
#include "st_image.h"

#include <math.h>
#include <string.h>

#define HSV_SHIFT 12

/* Fills lut with floor(clamp(x * gain, 0, 255)) as numpy's astype(uint8) does. */
static void gain_lut(uint8_t lut[256], float gain) {
    for (int x = 0; x < 256; x++) {
        float v = x * gain;
        lut[x] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
}

/* YOLOv5 augment_hsv: LUTs on OpenCV's 8-bit HSV (hue 0..180). The round trip through
 * 8-bit HSV is lossy (hue has 180 levels), so when all three LUTs are the identity the
 * image is left untouched instead of being quantised for nothing. */
void st_image_hsv_gain(st_image *im, float gh, float gs, float gv) {
    uint8_t lut_h[256], lut_s[256], lut_v[256];
    for (int x = 0; x < 256; x++) {
        float h = fmodf(x * gh, 180.0f);
        if (h < 0) h += 180.0f;
        lut_h[x] = (uint8_t)h;
    }
    gain_lut(lut_s, gs);
    gain_lut(lut_v, gv);
    size_t n = (size_t)im->h * im->w;
    uint8_t *p = im->data;
    int ident_v = 1, ident_hs = 1;
    for (int x = 0; x < 256; x++) {
        ident_v &= lut_v[x] == x;
        ident_hs &= lut_s[x] == x && (x >= 180 || lut_h[x] == x);
    }
    if (ident_v && (ident_hs || im->c == 1)) return;
    if (im->c == 1) { /* gray: S = 0, V = the value itself; only the value gain acts */
        for (size_t i = 0; i < n; i++) p[i] = lut_v[p[i]];
        return;
    }
    /* OpenCV's RGB2HSV_b: fixed-point reciprocals of V and of the range */
    int sdiv[256], hdiv[256];
    sdiv[0] = hdiv[0] = 0;
    for (int i = 1; i < 256; i++) {
        sdiv[i] = (int)lrint((255 << HSV_SHIFT) / (double)i);
        hdiv[i] = (int)lrint((180 << HSV_SHIFT) / (6.0 * i));
    }
    /* OpenCV's HSV2RGB: sector table picks (r, g, b) from {v, p, q, t} */
    static const int sector_rgb[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3},
                                         {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};
    const int half = 1 << (HSV_SHIFT - 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t *q = p + 3 * i;
        int r = q[0], g = q[1], b = q[2];
        int v = ST_MAX(r, ST_MAX(g, b)), vmin = ST_MIN(r, ST_MIN(g, b)), diff = v - vmin;
        int s = (diff * sdiv[v] + half) >> HSV_SHIFT;
        int h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff;
        h = (h * hdiv[diff] + half) >> HSV_SHIFT;
        if (h < 0) h += 180;
        float hh = lut_h[h], ss = lut_s[s] * (1.0f / 255.0f), vv = (float)lut_v[v];
        if (ss == 0.0f) {
            uint8_t o = (uint8_t)vv;
            q[0] = q[1] = q[2] = o;
            continue;
        }
        hh *= 6.0f / 180.0f;
        int sector = (int)hh;
        float f = hh - sector;
        if (sector >= 6) {
            sector = 0;
            f = 0.0f;
        }
        float tab[4] = {vv, vv * (1.0f - ss), vv * (1.0f - ss * f), vv * (1.0f - ss * (1.0f - f))};
        q[0] = (uint8_t)(tab[sector_rgb[sector][0]] + 0.5f);
        q[1] = (uint8_t)(tab[sector_rgb[sector][1]] + 0.5f);
        q[2] = (uint8_t)(tab[sector_rgb[sector][2]] + 0.5f);
    }
}

/* One destination pixel by the general path: float coordinates, taps outside src read
 * the fill value as OpenCV's BORDER_CONSTANT does. */
static inline __attribute__((always_inline)) void
warp_px(const st_image *src, float sx, float sy, uint8_t fill, uint8_t *o, const int c) {
    int sw = src->w, sh = src->h;
    size_t ss = (size_t)sw * c;
    float fx0 = floorf(sx), fy0 = floorf(sy);
    float fx = sx - fx0, fy = sy - fy0;
    /* compare in float first: a wild matrix may give coordinates beyond int */
    if (!(fx0 >= -1.0f && fy0 >= -1.0f && fx0 < sw && fy0 < sh)) {
        for (int ch = 0; ch < c; ch++) o[ch] = fill;
        return;
    }
    int x0 = (int)fx0, y0 = (int)fy0;
    int in_x0 = x0 >= 0, in_x1 = x0 + 1 < sw, in_y0 = y0 >= 0, in_y1 = y0 + 1 < sh;
    const uint8_t *p = src->data + (ptrdiff_t)y0 * (ptrdiff_t)ss + (ptrdiff_t)x0 * c;
    for (int ch = 0; ch < c; ch++) {
        float p00 = in_y0 && in_x0 ? p[ch] : fill;
        float p01 = in_y0 && in_x1 ? p[c + ch] : fill;
        float p10 = in_y1 && in_x0 ? p[ss + ch] : fill;
        float p11 = in_y1 && in_x1 ? p[ss + c + ch] : fill;
        float t = p00 + (p01 - p00) * fx, u = p10 + (p11 - p10) * fx;
        o[ch] = (uint8_t)(t + (u - t) * fy + 0.5f);
    }
}

/* Interior pixels (all four taps inside src) use 10-bit fixed-point weights and no
 * branches; only the pixels near and beyond the border take warp_px. */
#define WARP_BITS 10
#define WARP_ONE (1 << WARP_BITS)

/* Narrows [*lo, *hi) to the x with 0 <= a * x + b < lim (candidates; checked exactly
 * by the caller). */
static void clip_interval(double a, double b, double lim, double *lo, double *hi) {
    if (a == 0) {
        if (!(b >= 0 && b < lim)) *hi = *lo;
        return;
    }
    double x1 = -b / a, x2 = (lim - b) / a;
    *lo = fmax(*lo, fmin(x1, x2));
    *hi = fmin(*hi, fmax(x1, x2));
}

static inline __attribute__((always_inline)) void
warp_rows(const st_image *src, st_image *dst, const float inv[6], uint8_t fill, const int c) {
    int sw = src->w, sh = src->h, dw = dst->w;
    size_t ss = (size_t)sw * c;
    const float limx = (float)(sw - 1) * WARP_ONE, limy = (float)(sh - 1) * WARP_ONE;
    for (int y = 0; y < dst->h; y++) {
        float bx = inv[1] * y + inv[2], by = inv[4] * y + inv[5];
        uint8_t *orow = dst->data + (size_t)y * dw * c;
        /* the interior is an interval of x (the map is linear); find it from doubles,
         * then trim its ends with the exact test the fixed-point loop relies on */
        double lo = 0, hi = dw;
        clip_interval(inv[0], bx, sw - 1, &lo, &hi);
        clip_interval(inv[3], by, sh - 1, &lo, &hi);
        int xa = (int)fmin(fmax(ceil(lo), 0), dw), xb = (int)fmin(fmax(floor(hi) + 1, 0), dw);
#define WARP_INSIDE(x)                                                                          \
    ((inv[0] * (x) + bx) * WARP_ONE + 0.5f >= 0.0f && (inv[0] * (x) + bx) * WARP_ONE + 0.5f < limx && \
     (inv[3] * (x) + by) * WARP_ONE + 0.5f >= 0.0f && (inv[3] * (x) + by) * WARP_ONE + 0.5f < limy)
        while (xa < xb && !WARP_INSIDE(xa)) xa++;
        while (xb > xa && !WARP_INSIDE(xb - 1)) xb--;
#undef WARP_INSIDE
        for (int x = 0; x < xa; x++) warp_px(src, inv[0] * x + bx, inv[3] * x + by, fill, orow + x * c, c);
        for (int x = xa; x < xb; x++) {
            int X = (int)((inv[0] * x + bx) * WARP_ONE + 0.5f);
            int Y = (int)((inv[3] * x + by) * WARP_ONE + 0.5f);
            int fx = X & (WARP_ONE - 1), fy = Y & (WARP_ONE - 1);
            const uint8_t *p = src->data + (size_t)(Y >> WARP_BITS) * ss + (size_t)(X >> WARP_BITS) * c;
            uint8_t *o = orow + x * c;
            for (int ch = 0; ch < c; ch++) {
                int t = p[ch] * (WARP_ONE - fx) + p[c + ch] * fx;
                int u = p[ss + ch] * (WARP_ONE - fx) + p[ss + c + ch] * fx;
                o[ch] = (uint8_t)((t * (WARP_ONE - fy) + u * fy + (1 << (2 * WARP_BITS - 1))) >> (2 * WARP_BITS));
            }
        }
        for (int x = xb; x < dw; x++) warp_px(src, inv[0] * x + bx, inv[3] * x + by, fill, orow + x * c, c);
    }
}

void st_image_warp_affine(const st_image *src, st_image *dst, const float M[6], uint8_t fill) {
    if (src->c != dst->c) return;
    double a = M[0], b = M[1], tx = M[2], c = M[3], d = M[4], ty = M[5];
    double det = a * d - b * c;
    if (!(fabs(det) > 1e-12)) { /* degenerate (or NaN) map: nothing of src is visible */
        memset(dst->data, fill, (size_t)dst->h * dst->w * dst->c);
        return;
    }
    float inv[6] = {(float)(d / det), (float)(-b / det), 0, (float)(-c / det), (float)(a / det), 0};
    inv[2] = (float)(-(d * tx - b * ty) / det);
    inv[5] = (float)(-(-c * tx + a * ty) / det);
    if (src->c == 3) warp_rows(src, dst, inv, fill, 3);
    else warp_rows(src, dst, inv, fill, 1);
}
