/* Preparing one sample: load, resize or letterbox, augment (mosaic, scale/translate,
 * HSV, flip) and convert to normalised float planes. Boxes follow every geometric step.
 * Follows YOLOv5's load_mosaic / random_perspective / augment_hsv semantics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loader_internal.h"

#define FILL 114

static st_status grow_pboxes(pbox **b, int *cap, int need, st_error *err) {
    if (need <= *cap) return ST_OK;
    int nc = *cap ? *cap * 2 : 32;
    while (nc < need) nc *= 2;
    pbox *q = realloc(*b, (size_t)nc * sizeof *q);
    if (!q) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    *b = q;
    *cap = nc;
    return ST_OK;
}

static st_status scratch_image(st_image *im, int c, int h, int w) {
    if (im->data && im->c == c && im->h == h && im->w == w) return ST_OK;
    if (im->data && (size_t)im->c * im->h * im->w >= (size_t)c * h * w) {
        im->c = c, im->h = h, im->w = w; /* reuse the bigger buffer */
        return ST_OK;
    }
    st_image_free(im);
    return st_image_alloc(im, c, h, w);
}

/* Loads sample i into *im (borrowed or owned by ws->owned). */
static st_status load(const st_loader *l, st_worker_scratch *ws, int i, st_image *im, st_error *err) {
    int borrowed = 0;
    st_image_free(&ws->owned);
    st_status rc = st_dataset_load_image(l->d, l->split, i, l->o.channels, im, &borrowed, err);
    if (rc == ST_OK && !borrowed) ws->owned = *im;
    return rc;
}

/* Copies the boxes of sample i, scaled by (sx, sy) and shifted by (dx, dy), in pixels. */
static st_status add_boxes(const st_loader *l, st_worker_scratch *ws, int i, float w, float h,
                           float sx, float sy, float dx, float dy, st_error *err) {
    const st_sample *s = &l->split->samples[i];
    st_status rc = grow_pboxes(&ws->boxes, &ws->cap_boxes, ws->n_boxes + s->n_boxes, err);
    if (rc != ST_OK) return rc;
    for (int k = 0; k < s->n_boxes; k++) {
        const st_box *b = &s->boxes[k];
        pbox *p = &ws->boxes[ws->n_boxes++];
        p->cls = b->cls;
        p->x1 = (b->cx - b->w / 2) * w * sx + dx;
        p->x2 = (b->cx + b->w / 2) * w * sx + dx;
        p->y1 = (b->cy - b->h / 2) * h * sy + dy;
        p->y2 = (b->cy + b->h / 2) * h * sy + dy;
    }
    return ST_OK;
}

/* 2s x 2s canvas with four images around a random centre (YOLOv5 load_mosaic). */
static st_status build_mosaic(const st_loader *l, st_worker_scratch *ws, int first, st_rng *r,
                              st_error *err) {
    int s = l->o.width > l->o.height ? l->o.width : l->o.height, C = l->o.channels;
    st_status rc = scratch_image(&ws->canvas, C, 2 * s, 2 * s);
    if (rc != ST_OK) return rc;
    memset(ws->canvas.data, FILL, (size_t)C * 4 * s * s);
    int xc = s / 2 + (int)st_rng_below(r, (uint32_t)s), yc = s / 2 + (int)st_rng_below(r, (uint32_t)s);
    for (int t = 0; t < 4; t++) {
        int i = t == 0 ? first : (int)st_rng_below(r, (uint32_t)l->split->n);
        st_image im;
        if ((rc = load(l, ws, i, &im, err)) != ST_OK) return rc;
        float ratio = (float)s / (float)(im.w > im.h ? im.w : im.h);
        int w = (int)lroundf(im.w * ratio), h = (int)lroundf(im.h * ratio);
        if (w < 1) w = 1;
        if (h < 1) h = 1;
        if ((rc = scratch_image(&ws->tile, C, h, w)) != ST_OK) return rc;
        st_image_resize_bilinear(&im, &ws->tile);
        /* top-left, top-right, bottom-left, bottom-right of the centre */
        int x0 = t % 2 == 0 ? xc - w : xc, y0 = t < 2 ? yc - h : yc;
        for (int y = 0; y < h; y++) {
            int cy = y0 + y;
            if (cy < 0 || cy >= 2 * s) continue;
            int xa = x0 < 0 ? -x0 : 0, xb = x0 + w > 2 * s ? 2 * s - x0 : w;
            if (xb > xa)
                memcpy(ws->canvas.data + ((size_t)cy * 2 * s + x0 + xa) * C,
                       ws->tile.data + ((size_t)y * w + xa) * C, (size_t)(xb - xa) * C);
        }
        if ((rc = add_boxes(l, ws, i, (float)im.w, (float)im.h, ratio, ratio, (float)x0, (float)y0, err)) != ST_OK)
            return rc;
    }
    return ST_OK;
}

/* Maps the boxes through M, clips them to the output and keeps the plausible ones
 * (YOLOv5 box_candidates: > 2 px, > 10% of their scaled area, aspect < 20). */
static void warp_boxes(st_worker_scratch *ws, const float M[6], float gain, int W, int H) {
    int kept = 0;
    for (int k = 0; k < ws->n_boxes; k++) {
        pbox b = ws->boxes[k];
        float xs[4] = {b.x1, b.x2, b.x1, b.x2}, ys[4] = {b.y1, b.y1, b.y2, b.y2};
        float x1 = 1e30f, y1 = 1e30f, x2 = -1e30f, y2 = -1e30f;
        for (int c = 0; c < 4; c++) {
            float x = M[0] * xs[c] + M[1] * ys[c] + M[2], y = M[3] * xs[c] + M[4] * ys[c] + M[5];
            x1 = fminf(x1, x), x2 = fmaxf(x2, x), y1 = fminf(y1, y), y2 = fmaxf(y2, y);
        }
        x1 = fminf(fmaxf(x1, 0), (float)W), x2 = fminf(fmaxf(x2, 0), (float)W);
        y1 = fminf(fmaxf(y1, 0), (float)H), y2 = fminf(fmaxf(y2, 0), (float)H);
        float w0 = (b.x2 - b.x1) * gain, h0 = (b.y2 - b.y1) * gain, w = x2 - x1, h = y2 - y1;
        float ar = fmaxf(w / (h + 1e-16f), h / (w + 1e-16f));
        if (w > 2 && h > 2 && w * h / (w0 * h0 + 1e-16f) > 0.1f && ar < 20)
            ws->boxes[kept++] = (pbox){b.cls, x1, y1, x2, y2};
    }
    ws->n_boxes = kept;
}

static float uniform(st_rng *r, float lo, float hi) { return lo + (hi - lo) * st_rng_uniform(r); }

static st_status prepare_detect(const st_loader *l, st_worker_scratch *ws, int idx, st_rng *r,
                                st_error *err) {
    const st_loader_opts *o = &l->o;
    int W = o->width, H = o->height, C = o->channels;
    st_status rc;
    ws->n_boxes = 0;
    if ((rc = scratch_image(&ws->out, C, H, W)) != ST_OK) return rc;
    const st_image *src;
    float cx_src, cy_src;
    int use_mosaic = o->augment && o->aug.mosaic > 0 && st_rng_uniform(r) < o->aug.mosaic;
    if (use_mosaic) {
        if ((rc = build_mosaic(l, ws, idx, r, err)) != ST_OK) return rc;
        src = &ws->canvas;
        cx_src = ws->canvas.w / 2.0f, cy_src = ws->canvas.h / 2.0f;
    } else {
        st_image im;
        float scale, px, py;
        if ((rc = load(l, ws, idx, &im, err)) != ST_OK) return rc;
        if ((rc = scratch_image(&ws->canvas, C, H, W)) != ST_OK) return rc;
        st_image_letterbox(&im, &ws->canvas, FILL, &scale, &px, &py);
        if ((rc = add_boxes(l, ws, idx, (float)im.w, (float)im.h, scale, scale, px, py, err)) != ST_OK)
            return rc;
        src = &ws->canvas;
        cx_src = W / 2.0f, cy_src = H / 2.0f;
    }
    float gain = 1.0f, tx = 0, ty = 0;
    if (o->augment) {
        gain = uniform(r, 1 - o->aug.scale, 1 + o->aug.scale);
        tx = uniform(r, -o->aug.translate, o->aug.translate) * W;
        ty = uniform(r, -o->aug.translate, o->aug.translate) * H;
    }
    /* centre of the source -> centre of the output, scaled, then translated */
    float M[6] = {gain, 0, W / 2.0f + tx - gain * cx_src, 0, gain, H / 2.0f + ty - gain * cy_src};
    if (!use_mosaic && gain == 1.0f && tx == 0 && ty == 0 && src->w == W && src->h == H)
        memcpy(ws->out.data, src->data, (size_t)C * W * H);
    else
        st_image_warp_affine(src, &ws->out, M, FILL);
    warp_boxes(ws, M, gain, W, H);
    if (o->augment) {
        float gh = uniform(r, -1, 1) * o->aug.hsv_h + 1, gs = uniform(r, -1, 1) * o->aug.hsv_s + 1,
              gv = uniform(r, -1, 1) * o->aug.hsv_v + 1;
        st_image_hsv_gain(&ws->out, gh, gs, gv);
        if (st_rng_uniform(r) < o->aug.fliplr) {
            st_image_hflip(&ws->out);
            for (int k = 0; k < ws->n_boxes; k++) {
                float x1 = ws->boxes[k].x1;
                ws->boxes[k].x1 = W - ws->boxes[k].x2;
                ws->boxes[k].x2 = W - x1;
            }
        }
    }
    return ST_OK;
}

static st_status prepare_classify(const st_loader *l, st_worker_scratch *ws, int idx, st_rng *r,
                                  st_error *err) {
    const st_loader_opts *o = &l->o;
    st_image im;
    st_status rc = load(l, ws, idx, &im, err);
    if (rc != ST_OK) return rc;
    if (im.w == o->width && im.h == o->height && im.c == o->channels) {
        if ((rc = scratch_image(&ws->out, im.c, im.h, im.w)) != ST_OK) return rc;
        memcpy(ws->out.data, im.data, (size_t)im.c * im.h * im.w);
    } else {
        if ((rc = scratch_image(&ws->out, im.c, o->height, o->width)) != ST_OK) return rc;
        st_image_resize_bilinear(&im, &ws->out);
    }
    if (o->augment && st_rng_uniform(r) < o->aug.fliplr) st_image_hflip(&ws->out);
    return ST_OK;
}

st_status st_loader_fill_sample(const st_loader *l, st_worker_scratch *ws, int epoch, int position,
                                float *out_chw, int32_t *label, st_error *err) {
    int idx = l->order[position];
    st_rng r;
    st_rng_seed(&r, st_hash64(l->o.seed ^ st_hash64(((uint64_t)epoch << 32) | (uint32_t)position)));
    st_status rc = l->o.detect ? prepare_detect(l, ws, idx, &r, err) : prepare_classify(l, ws, idx, &r, err);
    if (rc != ST_OK) return rc;
    if (label) *label = l->split->samples[idx].label;
    size_t plane = (size_t)l->o.height * l->o.width, n = plane * l->o.channels;
    st_image_to_chw(&ws->out, l->o.channels, out_chw);
    float scale = 1.0f / l->o.std, shift = l->o.mean / l->o.std;
    for (size_t k = 0; k < n; k++) out_chw[k] = out_chw[k] * scale - shift;
    return ST_OK;
}

/* Boxes of the last prepared sample, normalised to the output size. */
int st_loader_sample_boxes(const st_loader *l, const st_worker_scratch *ws, st_batch_box *out, int img) {
    float W = (float)l->o.width, H = (float)l->o.height;
    for (int k = 0; k < ws->n_boxes; k++) {
        const pbox *b = &ws->boxes[k];
        out[k] = (st_batch_box){img, b->cls, (b->x1 + b->x2) / 2 / W, (b->y1 + b->y2) / 2 / H,
                                (b->x2 - b->x1) / W, (b->y2 - b->y1) / H};
    }
    return ws->n_boxes;
}

void st_worker_scratch_free(st_worker_scratch *ws) {
    st_image_free(&ws->owned);
    st_image_free(&ws->canvas);
    st_image_free(&ws->tile);
    st_image_free(&ws->out);
    free(ws->boxes);
    memset(ws, 0, sizeof *ws);
}
