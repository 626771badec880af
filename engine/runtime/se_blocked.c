/* Maps blocked by thread: batch 1, several threads, the team runs of either schedule (in
 * the columns schedule, the steps it runs as layers: a section's bands read and write
 * NCHW maps, so the rules below keep every map a section touches unblocked; before, the
 * columns schedule blocked nothing, and its layer steps ran 1.37x the layer schedule's
 * time on yolov5n 90% in [4, 1] blocks, 1.14x with them blocked).
 *
 * Why. A team splits each NCHW map by rows, so every plane holds a boundary between
 * the bytes two cores write, and on this kind of machine writing next to such a
 * boundary costs more than the split saves (tools/bench_ownership: a copy of a 64x20x20
 * map by rows ran at 0.67x one thread's speed, with each thread's rows contiguous at
 * 1.6x). A blocked map stores thread t's rows of every channel contiguously, in that
 * thread's own block arena, with SE_BLK_HALO rows above and below them: a core writes
 * only its own block, and reads another's only to fill its halo rows.
 *
 * Which maps. The steps that run on blocks, inside a team run, are sparse stride-1
 * "same" convolutions in direct mode (packed per block height by st_csr_pack_band, so
 * the halo rows take the place of vertical masks) and sparse 3x3 and 1x1 stride-2 ones
 * in banded mode (each block's output rows [p0, p1) from its window of input rows:
 * 2p0 - 1 .. 2p1 - 1 for 3x3, the first from the halo). A map is blocked when every
 * step that writes it (its concat's inputs, for an elided concat) and every step that
 * reads it is such a step, it is neither the graph's input nor an output, and a residual Add and the
 * output it is added into are both blocked or both not (the fused epilogue reads them
 * at the same offsets). A kxk stride-1 step needs its input blocked (its halo rows); a
 * 1x1 step reads either layout, a stride-2 one either where its windows fall inside the
 * blocks and their halos; all write either. Everything else keeps NCHW maps. */
#include <stdlib.h>
#include <string.h>

#include "se_internal.h"

/* Which maps, by size. Blocks under 48 floats (7x7 maps on two threads) fill the 16-lane
 * vectors poorly and run every nonzero's loop once per block. Up to 80x80: with 10x10 and
 * 80x80 maps blocked too (their stride-2 layers and upsamplings on blocks), yolov5n 95%
 * ran 0.948x the time of 20x20-40x40 only (alternated medians of 7), which itself ran
 * 0.85x NCHW maps; before the stride-2 layers ran on blocks, 80x80 and 10x10 maps lost
 * (a layer that read a blocked 80x80 map and wrote an NCHW one, 0.025-0.032 -> 0.045-
 * 0.049 ms). Past 80x80 (160x160 stems) untested. */
#define SE_BLK_MIN_FLOATS 48
#define SE_BLK_MAX_HW 6400

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

int se__root_of(const se_compiled *c, int v) {
    v = c->root[v];
    return c->view_root[v] >= 0 ? c->view_root[v] : v;
}
#define root_of se__root_of

/* Floats between a blocked map's channels: the tallest block and its halos. */
size_t se__blk_ldc(const se_compiled *c, int v) {
    const st_shape sh = c->g->values[v];
    const int T = c->blk_T, rows_max = (sh.h + T - 1) / T;
    return pad16((size_t)(rows_max + 2 * SE_BLK_HALO) * sh.w);
}

int se__blk_map(const se_compiled *c, int v) { return c->blk_T && c->blk[v]; }

size_t se__value_floats(const se_compiled *c, int v) {
    if (se__blk_map(c, v)) return pad16((size_t)c->g->values[v].c * se__blk_ldc(c, v));
    return pad16((size_t)c->batch * st_shape_numel(c->g->values[v]));
}

/* A sparse stride-2 convolution, 3x3 pad 1 or 1x1 pad 0, of an even map, run block by
 * block: output rows [p0, p1) read input rows s2_first .. s2_last. */
static int is_s2(const se_step *s) {
    const st_conv2d *k = &s->conv;
    return !s->csr.geom.direct && k->stride_h == 2 && k->stride_w == 2 && k->R == k->S &&
           (k->R == 3 || k->R == 1) && k->pad_h == k->R / 2 && k->pad_w == k->R / 2 && k->dil_h == 1 &&
           k->dil_w == 1 && k->H == 2 * k->P;
}
static int s2_first(const se_step *s, int p0) { return 2 * p0 - s->conv.pad_h; }
static int s2_last(const se_step *s, int p1) { return 2 * (p1 - 1) + s->conv.R - 1 - s->conv.pad_h; }

/* Output rows [p0, p1) of a nearest upsampling by f read input rows p0 / f .. (p1-1) / f. */
static int up_factor(const se_compiled *c, const se_step *s) { return c->g->nodes[s->node].a.factor; }

/* A step that can run on blocks: in a team run, a sparse direct-mode "same" convolution,
 * a stride-2 one (is_s2) or a nearest upsampling, whose output blocks each hold at least
 * one row. */
static int step_ok(const se_compiled *c, const se_step *s, const unsigned char *in_team) {
    const st_conv2d *k = &s->conv;
    if (!in_team[s - c->steps] || s->team != TEAM_SPLIT) return 0;
    if (s->op == ST_OP_UPSAMPLE) return s->n_epi == 0 && up_factor(c, s) >= 1 && c->g->values[s->out].h >= c->blk_T;
    if (s->op == ST_OP_MAXPOOL) return s->n_epi == 0 && s->pool.P >= c->blk_T;
    if (s->op != ST_OP_CONV2D || !s->sparse || k->groups != 1 || k->P < c->blk_T) return 0;
    /* weights larger than the input (ResNet's layer3 and 4) go by output channels, each
     * thread streaming half of them (sparse_conv.c); blocks would stream all of them, and
     * run every nonzero's loop once per block: only where the channel split runs it as
     * many times in all, over more column tiles (ResNet's 14x14 layer3, two threads: 196
     * columns in two tiles against 98 in one, 0.991x the model's time, the blocked steps
     * 0.84-0.95x; yolov5n's 10x10 maps, one tile either way, blocked ran 1.47x) */
    if (8.0 * s->csr.nnz > 4.0 * k->C * k->H * k->W) {
        const int cols = k->P * k->Q, T = c->blk_T, tile = ST_SPARSE_DIRECT_TILE_COLS;
        if ((cols / T + tile - 1) / tile * T > (cols + tile - 1) / tile) return 0;
    }
    if (is_s2(s)) return 1;
    return s->csr.geom.direct && k->stride_h == 1 && k->stride_w == 1 && k->dil_h == 1 && k->P == k->H &&
           k->Q == k->W && k->pad_h <= SE_BLK_HALO && 2 * k->pad_h == k->R - 1;
}

/* Input rows of a max pool's output rows [p0, p1): pool_first .. pool_last (clipped to
 * the map: the rest is padding). */
static int pool_first(const se_step *s, int p0) {
    int hs, he;
    st_pool_window_rows(&s->pool, p0, &hs, &he);
    return hs;
}
static int pool_last(const se_step *s, int p1) {
    int hs, he;
    st_pool_window_rows(&s->pool, p1 - 1, &hs, &he);
    return he - 1;
}

/* A stride-2 step, an upsampling or a max pool reading a blocked map: block b's window
 * of input rows must lie in the block's rows and halos. */
static int window_ok(const se_compiled *c, const se_step *s) {
    const int T = c->blk_T, H = c->g->values[s->in[0]].h, P = c->g->values[s->out].h;
    const int up = s->op == ST_OP_UPSAMPLE, f = up ? up_factor(c, s) : 0, pool = s->op == ST_OP_MAXPOOL;
    for (int b = 0; b < T; b++) {
        const int r0 = H * b / T, r1 = H * (b + 1) / T, p0 = P * b / T, p1 = P * (b + 1) / T;
        const int first = up ? p0 / f : pool ? pool_first(s, p0) : s2_first(s, p0);
        const int last = up ? (p1 - 1) / f : pool ? pool_last(s, p1) : s2_last(s, p1);
        if ((b > 0 && first < r0 - SE_BLK_HALO) || (b + 1 < T && last > r1 - 1 + SE_BLK_HALO)) return 0;
    }
    return 1;
}

/* Demotes to NCHW whatever breaks the rules above; returns the number of changes. */
static int settle(const se_compiled *c, unsigned char *ok, unsigned char *blk) {
    int changed = 0;
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        if (s->elided) continue;
        const int out = root_of(c, s->out);
        const int in = root_of(c, s->in[0]), windowed = s->op == ST_OP_UPSAMPLE || s->op == ST_OP_MAXPOOL || is_s2(s);
        if (ok[i] && !windowed && s->conv.pad_h > 0 && !blk[in]) ok[i] = 0, changed++;
        if (ok[i] && windowed && blk[in] && !window_ok(c, s)) blk[in] = 0, changed++;
        for (int e = 0; e < s->n_epi; e++) {
            if (s->epi[e].kind != SE_EPI_ADD) continue;
            const int u = root_of(c, s->epi[e].value);
            if (blk[u] != blk[out]) blk[u] = blk[out] = 0, changed++;
        }
        /* a step that cannot run on blocks neither writes nor reads a blocked map */
        if (!ok[i]) {
            if (blk[out]) blk[out] = 0, changed++;
            for (int k = 0; k < s->n_in; k++)
                if (blk[root_of(c, s->in[k])]) blk[root_of(c, s->in[k])] = 0, changed++;
        }
    }
    return changed;
}

/* Block b's problem: a stride-1 layer on the block's rows; a stride-2 one on its window
 * of input rows (block 0 from row 0 with the map's top padding, which its last row
 * never reaches at the bottom; the others from s2_first without padding). */
static st_conv2d block_conv(const se_compiled *c, const se_step *s, int b) {
    const int T = c->blk_T;
    st_conv2d k = s->conv;
    k.N = 1;
    if (is_s2(s)) {
        const int p0 = s->conv.P * b / T, p1 = s->conv.P * (b + 1) / T;
        const int first = b == 0 ? 0 : s2_first(s, p0);
        k.H = s2_last(s, p1) - first + 1;
        k.pad_h = b == 0 ? s->conv.pad_h : 0;
    } else {
        k.H = s->conv.H * (b + 1) / T - s->conv.H * b / T;
    }
    return k;
}

void se__free_blocks(se_step *s) {
    for (int j = 0; j < s->n_blk_csr; j++) st_csr_free(&s->blk_csr[j]);
    free(s->blk_csr), free(s->blk_conv), free(s->blk_pick);
    s->blk_csr = NULL, s->blk_conv = NULL, s->blk_pick = NULL, s->n_blk_csr = 0;
}

/* Packs the step's weights for its blocks (one packing per distinct block problem). */
static int pack_blocks(se_compiled *c, se_step *s, char *err, size_t errcap) {
    const int T = c->blk_T, in = root_of(c, s->in[0]);
    const int64_t ldc = c->blk[in] ? (int64_t)se__blk_ldc(c, in) : (int64_t)s->conv.H * s->conv.W;
    s->blk_csr = calloc((size_t)T, sizeof *s->blk_csr);
    s->blk_conv = calloc((size_t)T, sizeof *s->blk_conv);
    s->blk_pick = calloc((size_t)T, sizeof *s->blk_pick);
    if (!s->blk_csr || !s->blk_conv || !s->blk_pick) return se__fail(err, errcap, 4, "out of memory");
    for (int b = 0; b < T; b++) {
        st_conv2d k = block_conv(c, s, b);
        if (st_conv2d_init(&k) != 0 || k.P != s->conv.P * (b + 1) / T - s->conv.P * b / T)
            return se__fail(err, errcap, 1, "internal: block %d of %s has a bad shape", b, c->g->nodes[s->node].name);
        int j = 0;
        while (j < s->n_blk_csr && !(s->blk_conv[j].H == k.H && s->blk_conv[j].pad_h == k.pad_h)) j++;
        s->blk_pick[b] = j;
        if (j < s->n_blk_csr) continue;
        st_error e = {0};
        const st_status st = is_s2(s) ? st_csr_pack_layout(&s->blk_csr[j], &k, s->w, NULL, 1 | ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS, &e)
                                      : st_csr_pack_band(&s->blk_csr[j], &k, s->w, ldc, &e);
        if (st != ST_OK)
            return se__fail(err, errcap, 1, "%s: packing its blocks: %s", c->g->nodes[s->node].name, e.msg);
        s->blk_conv[s->n_blk_csr++] = k;
        if (is_s2(s)) c->blk_scratch = ST_MAX(c->blk_scratch, s->blk_csr[j].geom.thread_floats);
    }
    return 0;
}

int se__plan_blocks(se_compiled *c, size_t *scratch, char *err, size_t errcap) {
    const st_graph *g = c->g;
    const int nv = g->n_values, ns = c->n_steps;
    c->blk_T = 0;
    if (c->batch != 1 || c->threads < 2 || !c->blocked_maps) return 0;
    c->blk_T = c->threads;
    c->blk = calloc((size_t)nv, 1);
    c->blk_off = malloc((size_t)nv * sizeof *c->blk_off);
    unsigned char *in_team = calloc((size_t)ns + 1, 1), *ok = calloc((size_t)ns + 1, 1);
    int *writer = malloc((size_t)nv * sizeof *writer);
    if (!c->blk || !c->blk_off || !in_team || !ok || !writer) {
        free(in_team), free(ok), free(writer);
        return se__fail(err, errcap, 4, "out of memory");
    }
    for (int i = 0; i < ns; i++)
        for (int j = i; c->steps[i].team_end && j < c->steps[i].team_end; j++) in_team[j] = 1;
    for (int i = 0; i < ns; i++) ok[i] = step_ok(c, &c->steps[i], in_team);
    /* candidates: maps written by steps (or elided concats) inside team runs */
    for (int v = 0; v < nv; v++) writer[v] = -1, c->blk_off[v] = -1;
    for (int i = 0; i < ns; i++) writer[c->steps[i].out] = i;
    for (int v = 0; v < nv; v++) {
        if (c->root[v] != v || c->view_root[v] >= 0 || v == g->input || writer[v] < 0) continue;
        const se_step *w = &c->steps[writer[v]];
        const st_shape sh = g->values[v];
        int good = (long)sh.h / c->blk_T * sh.w >= SE_BLK_MIN_FLOATS && (long)sh.h * sh.w <= SE_BLK_MAX_HW;
        if (w->elided)
            for (int k = 0; k < w->n_in && good; k++) good = writer[w->in[k]] >= 0 && ok[writer[w->in[k]]];
        else good = good && ok[writer[v]];
        c->blk[v] = (unsigned char)good;
    }
    for (int k = 0; k < c->n_out; k++) c->blk[root_of(c, c->out_val[k])] = 0;
    while (settle(c, ok, c->blk)) {}
    int rc = 0, any = 0;
    for (int i = 0; i < ns && !rc; i++) {
        se_step *s = &c->steps[i];
        if (!ok[i] || s->elided) continue;
        int touches = c->blk[root_of(c, s->in[0])] || c->blk[root_of(c, s->out)];
        for (int e = 0; e < s->n_epi; e++)
            touches |= s->epi[e].kind == SE_EPI_ADD && c->blk[root_of(c, s->epi[e].value)];
        if (!touches) continue;
        s->blk = 1, any = 1;
        if (s->op == ST_OP_CONV2D) rc = pack_blocks(c, s, err, errcap);
    }
    free(in_team), free(ok), free(writer);
    if (!any && !rc) c->blk_T = 0, memset(c->blk, 0, (size_t)nv); /* the plan stays as it was */
    c->blk_scratch = pad16(c->blk_scratch);
    if (c->blk_T && c->blk_scratch * c->blk_T > *scratch) *scratch = c->blk_scratch * c->blk_T;
    return rc;
}

/* Block b of value v (a view: its range of its concat's block), first own row. */
static float *block_at(const se_compiled *c, float *blk_arena, int v, int b) {
    const int r = root_of(c, v);
    v = c->root[v];
    size_t at = (size_t)c->blk_off[r];
    if (r != v) /* channels before v in the concat, each ldc apart */
        at += c->view_at[v] / ((size_t)c->g->values[v].h * c->g->values[v].w) * se__blk_ldc(c, v);
    return blk_arena + (size_t)b * c->blk_stride + at + (size_t)SE_BLK_HALO * c->g->values[v].w;
}

/* The halo rows above (top) and below (bottom) block b of blocked map v: the
 * neighbouring blocks' edge rows, zeros at the map's top and bottom. The neighbours'
 * rows were final at the last barrier. */
static void fill_halo(const se_compiled *c, float *blk_arena, int v, int b, int top_on, int bottom_on) {
    const st_shape sh = c->g->values[v];
    const int T = c->blk_T, W = sh.w;
    const size_t ldc = se__blk_ldc(c, v);
    const int rows = sh.h * (b + 1) / T - sh.h * b / T;
    float *own = block_at(c, blk_arena, v, b);
    const float *up = b > 0 ? block_at(c, blk_arena, v, b - 1) : NULL;
    const float *down = b + 1 < T ? block_at(c, blk_arena, v, b + 1) : NULL;
    const int up_rows = b > 0 ? sh.h * b / T - sh.h * (b - 1) / T : 0;
    for (int ch = 0; ch < sh.c; ch++) {
        float *o = own + ch * ldc;
        for (int h = 1; h <= SE_BLK_HALO; h++) {
            float *top = o - (size_t)h * W, *bot = o + (size_t)(rows + h - 1) * W;
            if (top_on) {
                if (up) memcpy(top, up + ch * ldc + (size_t)(up_rows - h) * W, (size_t)W * sizeof(float));
                else memset(top, 0, (size_t)W * sizeof(float));
            }
            if (bottom_on) {
                if (down) memcpy(bot, down + ch * ldc + (size_t)(h - 1) * W, (size_t)W * sizeof(float));
                else memset(bot, 0, (size_t)W * sizeof(float));
            }
        }
    }
}

/* Where block b's rows of value v are: its block, or rows [r0, ...) of its NCHW map,
 * and the channel stride there. */
static float *rows_at(const se_compiled *c, float *const *ptr, float *blk_arena, int v, int b, int r0,
                      size_t *ld) {
    const st_shape sh = c->g->values[v];
    if (c->blk[root_of(c, v)]) {
        *ld = se__blk_ldc(c, v);
        return block_at(c, blk_arena, v, b);
    }
    *ld = (size_t)sh.h * sh.w;
    return ptr[v] + (size_t)r0 * sh.w;
}

/* Block b of a nearest upsampling by f: output rows [p0, p1) from input rows p0 / f ... */
static void upsample_block(const se_compiled *c, const se_step *s, float *const *ptr, float *blk_arena, int b) {
    const int T = c->blk_T, in = s->in[0], f = up_factor(c, s);
    const st_shape si = c->g->values[in], so = c->g->values[s->out];
    const int p0 = so.h * b / T, p1 = so.h * (b + 1) / T, r0 = si.h * b / T, r1 = si.h * (b + 1) / T;
    if (c->blk[root_of(c, in)]) fill_halo(c, blk_arena, in, b, p0 / f < r0, (p1 - 1) / f >= r1);
    size_t ldx, ldy;
    const float *x = rows_at(c, ptr, blk_arena, in, b, r0, &ldx);
    float *y = rows_at(c, ptr, blk_arena, s->out, b, p0, &ldy);
    for (int ch = 0; ch < so.c; ch++)
        for (int p = p0; p < p1; p++) {
            const float *src = x + ch * ldx + (ptrdiff_t)(p / f - r0) * si.w;
            float *dst = y + ch * ldy + (size_t)(p - p0) * so.w;
            if (p > p0 && p % f) { /* the same input row as the row above */
                memcpy(dst, dst - so.w, (size_t)so.w * sizeof(float));
                continue;
            }
            if (f == 2) /* YOLO's necks, in a form the compiler vectorises */
                for (int w = 0; w < si.w; w++) dst[2 * w] = src[w], dst[2 * w + 1] = src[w];
            else
                for (int w = 0; w < si.w; w++)
                    for (int k = 0; k < f; k++) dst[w * f + k] = src[w];
        }
}

/* Block b of a max pool: output rows [p0, p1) from input rows pool_first .. pool_last. */
static void maxpool_block(const se_compiled *c, const se_step *s, float *const *ptr, float *blk_arena, int b) {
    const int T = c->blk_T, in = s->in[0], H = s->pool.H, P = s->pool.P;
    const int p0 = P * b / T, p1 = P * (b + 1) / T, r0 = H * b / T, r1 = H * (b + 1) / T;
    if (c->blk[root_of(c, in)]) fill_halo(c, blk_arena, in, b, pool_first(s, p0) < r0, pool_last(s, p1) >= r1);
    size_t ldx, ldy;
    const float *x = rows_at(c, ptr, blk_arena, in, b, r0, &ldx);
    float *y = rows_at(c, ptr, blk_arena, s->out, b, p0, &ldy);
    st_maxpool_forward_infer_rows(&s->pool, y, ldy, x, ldx, r0, p0, p1);
}

int se__blk_part(const se_compiled *c, const se_step *s, float *const *ptr, float *blk_arena,
                 float *scratch, int part, int nt, st_error *e) {
    if (s->op == ST_OP_UPSAMPLE) {
        for (int b = part; b < c->blk_T; b += nt) upsample_block(c, s, ptr, blk_arena, b);
        return 0;
    }
    if (s->op == ST_OP_MAXPOOL) {
        for (int b = part; b < c->blk_T; b += nt) maxpool_block(c, s, ptr, blk_arena, b);
        return 0;
    }
    const int T = c->blk_T, in = s->in[0], s2 = is_s2(s);
    const int H = s->conv.H, P = s->conv.P, W = s->conv.W;
    float *scr = scratch + c->blk_scratch * (size_t)part; /* this thread's band buffers */
    for (int b = part; b < T; b += nt) {
        const int p0 = P * b / T, r0 = H * b / T, j = s->blk_pick[b];
        /* stride 1: both halos (the vertical padding); stride 2: the rows its window takes
         * from them (a 1x1 window starts in the top halo when rows split at an odd row;
         * H = 2P keeps the last row inside the block) */
        if (c->blk[root_of(c, in)] && s2)
            fill_halo(c, blk_arena, in, b, s2_first(s, p0) < r0, s2_last(s, P * (b + 1) / T) > H * (b + 1) / T - 1);
        else if (c->blk[root_of(c, in)] && s->conv.pad_h > 0)
            fill_halo(c, blk_arena, in, b, 1, 1);
        size_t ldx, ldy, lda;
        /* the first input row the block's problem reads: its own first row (stride 1) or
         * its window's (stride 2) */
        const int xr = !s2 ? r0 : b == 0 ? 0 : s2_first(s, p0);
        const float *x = rows_at(c, ptr, blk_arena, in, b, r0, &ldx);
        x += (ptrdiff_t)(xr - r0) * W;
        float *y = rows_at(c, ptr, blk_arena, s->out, b, p0, &ldy);
        st_epi_op ops[SE_MAX_EPI];
        for (int k = 0; k < s->n_epi; k++) {
            const se_epi *ep = &s->epi[k];
            ops[k] = (st_epi_op){ep->kind, ep->a, ep->b,
                                 ep->kind == SE_EPI_ADD ? rows_at(c, ptr, blk_arena, ep->value, b, p0, &lda) : NULL};
        }
        const st_status st = s2 ? st_conv2d_sparse_forward_ld(&s->blk_conv[j], &s->blk_csr[j], y, ldy, x, ldx, s->b,
                                                              ops, s->n_epi, scr, e)
                                : st_conv2d_sparse_forward_ldy(&s->blk_conv[j], &s->blk_csr[j], y, ldy, x, s->b,
                                                               ops, s->n_epi, scr, e);
        if (st != ST_OK) return 1;
    }
    return 0;
}
