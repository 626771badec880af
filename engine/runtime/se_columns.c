/* sparseengine: the tensor-column schedule (first version; design in
 * docs/tensor-columns.md).
 *
 * Sections: maximal runs (>= 2) of consecutive plan steps that are convolutions (dense
 * or sparse, any kernel / stride / padding / dilation, with their fused epilogue) or
 * pooling, where each step's only input is the previous step's output and that output
 * is read by nothing else (nor a graph output). Residual Adds fused into a step's
 * epilogue are allowed when the added map is in memory (computed before the section).
 * Everything else runs as layers.
 *
 * Columns: the section's last output is cut into bands of `band` full-width rows.
 * Walking backwards, every step computes a fixed number of output rows (col_rows: the
 * most any band needs, so each step has one band sub-problem shape; edge bands shift
 * their window inside the map and compute a few rows they do not need) from col_rin
 * padded input rows: [o0*s - p, (o0+rows-1)*s - p + d*(k-1) + 1); rows outside the map
 * are filled with the padding value (0, or -inf for max pooling) so the sub-problem has
 * pad_h 0 and the original width padding. Halo rows are recomputed by each band.
 * The kernels run the sub-problem as a batch of 1 (a sparse step has weights packed for
 * it), single-threaded; OpenMP threads take different (image, band) items. A sparse
 * stride-1 "same" conv reads its band in place in direct mode (st_csr_pack_band: the
 * halo rows sit above and below its own rows, so no tap is masked vertically); other
 * sparse steps copy the band into the banded layout. A step
 * reads its padded input band from a per-thread buffer (copied from the previous
 * step's band, or from the section input in memory), writes its output band into one
 * of two per-thread ping-pong buffers; the last step's rows go to the section output.
 * All per-thread buffers sit at the start of the context's arena (they share it with
 * the layer steps' scratch, which is not in use while a section runs).
 *
 * Band height: the largest whose modelled working set (sum over steps of input
 * channels x padded input rows x width, plus the output band and the largest dense
 * band's im2col buffer, x 4 bytes) fits in half of the per-core L2 (sysfs; 1 MB if
 * unknown), lowered so every thread gets an item, then evened out over the bands. A
 * section that would be one band per image runs as layers (nothing to gain), and so
 * does one of no more bands than threads at batch 1 with maps blocked by thread (the
 * blocked layers already keep each thread's rows in its cache), and so does one whose
 * inner maps (the outputs of its steps before the last, which columns never write out),
 * shared among the threads, take no more than the per-core L2 each (se_options.l2_bytes,
 * else sysfs): layers keep those in cache too. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_internal.h"

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t read_l2_bytes(void) {
    for (int i = 0; i < 8; i++) {
        char path[128], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int level = 0;
        if (fscanf(f, "%d", &level) != 1) level = 0;
        fclose(f);
        if (level != 2) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if ((f = fopen(path, "r"))) {
            int instr = fgets(buf, sizeof buf, f) && strncmp(buf, "Instruction", 11) == 0;
            fclose(f);
            if (instr) continue;
        }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!(f = fopen(path, "r"))) continue;
        size_t v = 0;
        char unit = 0;
        int got = fscanf(f, "%zu%c", &v, &unit);
        fclose(f);
        if (got < 1 || !v) continue;
        if (got == 2 && (unit == 'K' || unit == 'k')) v <<= 10;
        else if (got == 2 && (unit == 'M' || unit == 'm')) v <<= 20;
        return v;
    }
    return (size_t)1 << 20;
}

/* Row geometry of a step: kernel, stride, padding, dilation, input and output rows;
 * channels and widths of input and output. */
typedef struct {
    int k, s, p, d, H, P, C, W, K, Q;
} rowgeom;

static rowgeom geom_of(const se_step *st) {
    if (st->op == ST_OP_CONV2D) {
        const st_conv2d *c = &st->conv;
        return (rowgeom){c->R, c->stride_h, c->pad_h, c->dil_h, c->H, c->P, c->C, c->W, c->K, c->Q};
    }
    const st_pool *p = &st->pool;
    return (rowgeom){p->kh, p->stride_h, p->pad_h, 1, p->H, p->P, p->C, p->W, p->C, p->Q};
}

static int eligible(const se_step *st) {
    switch (st->op) {
    /* The Winograd stem computes 8 output rows at a time from 20 input rows: on the few
     * rows of a band it computed up to 2.7x the rows needed (yolov5n's stem section at
     * 320, 13-row bands: 1.12x the layer time) and its 290 KiB of buffers at 640 cut the
     * bands to 1 row. It runs as a layer. */
    case ST_OP_CONV2D: return st->n_in == 1 && !st->dconv.wg;
    case ST_OP_MAXPOOL: return st->n_in == 1;
    case ST_OP_AVGPOOL: /* zero rows stand for padding only when padding is counted */
        return st->n_in == 1 && !st->pool.ceil_mode && (st->pool.count_include_pad || st->pool.pad_h == 0);
    default: return 0;
    }
}

/* The band walk for output rows [y0, y1) of the section's last step: o0[j] (first
 * output row step first+j computes, col_rows of them) and a[j] (its first padded input
 * row). Uses steps[j].col_rows for the steps from `from` to the last; returns the
 * clipped input rows [*lo, *hi) step `from` needs. */
static void walk(const se_step *steps, int first, int last, int from, int y0, int y1, int *o0,
                 int *a, int *lo_out, int *hi_out) {
    int lo = y0, hi = y1;
    for (int j = last; j >= from; j--) {
        const rowgeom g = geom_of(&steps[j]);
        const int L = steps[j].col_rows;
        const int o = ST_MIN(lo, g.P - L);
        const int ai = o * g.s - g.p, bi = (o + L - 1) * g.s - g.p + g.d * (g.k - 1) + 1;
        if (o0) o0[j - first] = o;
        if (a) a[j - first] = ai;
        lo = ST_MAX(ai, 0);
        hi = ST_MIN(bi, g.H);
    }
    *lo_out = lo, *hi_out = hi;
}

/* Sets col_rows / col_rin of the section's steps for band height B; returns the
 * modelled working set in bytes. */
static size_t size_bands(se_step *steps, const se_section *sec, int B) {
    const int first = sec->first, last = sec->last;
    const rowgeom gl = geom_of(&steps[last]);
    const int nb = (gl.P + B - 1) / B;
    steps[last].col_rows = B;
    for (int j = last - 1; j >= first; j--) {
        int L = 1;
        for (int b = 0; b < nb; b++) {
            int lo, hi;
            walk(steps, first, last, j + 1, b * B, ST_MIN(b * B + B, gl.P), NULL, NULL, &lo, &hi);
            L = ST_MAX(L, hi - lo);
        }
        steps[j].col_rows = ST_MIN(L, geom_of(&steps[j]).P);
    }
    size_t ws = (size_t)gl.K * B * gl.Q, im2col = 0;
    for (int j = first; j <= last; j++) {
        const rowgeom g = geom_of(&steps[j]);
        steps[j].col_rin = (steps[j].col_rows - 1) * g.s + g.d * (g.k - 1) + 1;
        ws += (size_t)g.C * steps[j].col_rin * g.W;
        if (steps[j].op == ST_OP_CONV2D && !steps[j].sparse) { /* the dense band's im2col */
            st_conv2d sub = steps[j].conv;
            sub.N = 1, sub.H = steps[j].col_rin, sub.pad_h = 0;
            if (st_conv2d_init(&sub) == 0)
                im2col = ST_MAX(im2col, steps[j].packed_dense ? st_dense_conv_scratch_floats(&sub, 1)
                                                              : st_conv2d_scratch_floats(&sub));
        }
    }
    return (ws + im2col) * sizeof(float);
}

/* Bytes of the maps steps first..last-1 write (a section keeps them out of memory). */
static size_t inner_bytes(const se_compiled *c, int first, int last) {
    size_t n = 0;
    for (int k = first; k < last; k++)
        n += (size_t)c->batch * st_shape_numel(c->g->values[c->steps[k].out]) * sizeof(float);
    return n;
}

/* Band sub-problems (and packed weights) and per-thread buffers of a section. */
static int build_section(se_compiled *c, se_section *sec, char *err, size_t errcap) {
    size_t in_f = 0, out_f = 0, scr_f = 0;
    double work = 0, work_bands = 0;
    for (int j = sec->first; j <= sec->last; j++) {
        se_step *s = &c->steps[j];
        const rowgeom g = geom_of(s);
        if (s->op == ST_OP_CONV2D) {
            s->col_pad = 0.0f, s->col_direct = 0;
            s->col_conv = s->conv;
            s->col_conv.N = 1, s->col_conv.H = s->col_rin, s->col_conv.pad_h = 0;
            if (st_conv2d_init(&s->col_conv) != 0 || s->col_conv.P != s->col_rows ||
                s->col_conv.Q != s->conv.Q)
                return se__fail(err, errcap, 1, "internal: band of %s has a bad shape",
                                c->g->nodes[s->node].name);
            if (s->sparse) {
                st_error e = {0};
                /* a stride-1 "same" conv runs in direct mode on the band with its halo
                 * rows in place (no copy into the banded layout, no staged rows) */
                st_conv2d same = s->conv;
                same.N = 1, same.H = s->col_rows;
                s->col_direct = st_conv2d_init(&same) == 0 && /* pack_band checks the shape */
                                st_csr_pack_band(&s->col_csr, &same, s->w, (int64_t)s->col_rin * g.W,
                                                 &e) == ST_OK;
                /* a first step without halo (1x1) reads its band in the map itself */
                s->col_in_place = j == sec->first && s->col_direct && g.k == 1 &&
                                  st_csr_pack_band(&s->col_csr_in, &same, s->w, (int64_t)g.H * g.W, &e) == ST_OK;
                if (s->col_direct)
                    s->col_conv = same;
                else if (st_csr_pack_layout(&s->col_csr, &s->col_conv, s->w, NULL, ST_CSR_TAPS | ST_CSR_CBLK | ST_CSR_QUADS, &e) != ST_OK)
                    return se__fail(err, errcap, 1, "%s: packing its band: %s",
                                    c->g->nodes[s->node].name, e.msg);
                scr_f = ST_MAX(scr_f, s->col_csr.geom.thread_floats);
            } else {
                scr_f = ST_MAX(scr_f, s->packed_dense ? st_dense_conv_scratch_floats(&s->col_conv, 1)
                                                      : st_conv2d_scratch_floats(&s->col_conv));
            }
        } else {
            s->col_pad = s->op == ST_OP_MAXPOOL ? -INFINITY : 0.0f;
            s->col_pool = s->pool;
            s->col_pool.N = 1, s->col_pool.H = s->col_rin, s->col_pool.pad_h = 0;
            if (st_pool_init(&s->col_pool) != 0 || s->col_pool.P != s->col_rows ||
                s->col_pool.Q != s->pool.Q)
                return se__fail(err, errcap, 1, "internal: band of %s has a bad shape",
                                c->g->nodes[s->node].name);
        }
        in_f = ST_MAX(in_f, (size_t)g.C * s->col_rin * g.W);
        out_f = ST_MAX(out_f, (size_t)g.K * s->col_rows * g.Q);
    }
    /* recomputed fraction: rows computed over all bands vs the map's rows, per step */
    for (int j = sec->first; j <= sec->last; j++) {
        const se_step *s = &c->steps[j];
        const rowgeom g = geom_of(s);
        double row = s->op == ST_OP_CONV2D
                         ? (double)g.K * (g.C / s->conv.groups) * g.k * s->conv.S * g.Q
                         : (double)g.K * g.k * s->pool.kw * g.Q;
        work += row * g.P;
        work_bands += row * s->col_rows * sec->nbands;
    }
    sec->recompute = work > 0 ? work_bands / work - 1.0 : 0.0;
    sec->in_off = 0;
    sec->out_off = pad16(in_f);
    sec->out_floats = pad16(out_f);
    sec->scr_off = sec->out_off + 2 * sec->out_floats;
    sec->thread_floats = sec->scr_off + pad16(scr_f);
    return 0;
}

int se__columns_plan(se_compiled *c, char *err, size_t errcap) {
    for (int i = 0; i < c->n_steps; i++) c->steps[i].col_sec = -1;
    const int nv = c->g->n_values;
    int *reads = calloc((size_t)nv, sizeof *reads);
    char *is_out = calloc((size_t)nv, 1);
    c->secs = calloc((size_t)c->n_steps + 1, sizeof *c->secs);
    if (!reads || !is_out || !c->secs) {
        free(reads), free(is_out);
        return se__fail(err, errcap, 4, "out of memory");
    }
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        for (int k = 0; k < s->n_in; k++) reads[s->in[k]]++;
        for (int e = 0; e < s->n_epi; e++)
            if (s->epi[e].kind == SE_EPI_ADD) reads[s->epi[e].value]++;
    }
    for (int k = 0; k < c->n_out; k++) is_out[c->out_val[k]] = 1;
    if (!c->l2_bytes) c->l2_bytes = read_l2_bytes();
    int rc = 0;
    for (int i = 0; i < c->n_steps && !rc;) {
        if (!eligible(&c->steps[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < c->n_steps && j + 1 - i + 1 <= SE_COL_MAX_STEPS) {
            const se_step *s = &c->steps[j], *t = &c->steps[j + 1];
            if (!eligible(t) || t->in[0] != s->out || reads[s->out] != 1 || is_out[s->out]) break;
            j++;
        }
        if (j == i) {
            i++;
            continue;
        }
        se_section *sec = &c->secs[c->n_secs];
        sec->first = i, sec->last = j;
        const rowgeom gl = geom_of(&c->steps[j]);
        int B;
        if (c->column_rows > 0) {
            B = ST_MIN(c->column_rows, gl.P);
        } else {
            /* What columns save is writing the section's inner maps out and reading them
             * back; where each thread's share of them fits its core's L2, the layers keep
             * them in cache anyway (a team splits every map by rows), and the bands only
             * add their recomputed halos and per-band work. yolov5n 95% at 640, 2
             * threads, per-section medians: sections over 1.6-6.5 MB of inner maps took
             * 0.83-0.97x their layer time, those of 0.4-0.8 MB 0.98-1.26x. Alternated
             * whole-model pairs: all sections 1.016-1.039x the layer time; only those
             * over the L2 0.964-0.986x; only those over the L2 per thread 0.935-0.988x
             * of that (yolov5n 90% at 640: 0.961-0.976x). */
            if (inner_bytes(c, i, j) / (size_t)c->threads <= c->l2_bytes) {
                i = j + 1;
                continue;
            }
            const size_t target = c->l2_bytes / 2;
            B = 1;
            for (int b = gl.P; b >= 1; b--)
                if (size_bands(c->steps, sec, b) <= target) {
                    B = b;
                    break;
                }
            /* every thread gets at least one (image, band) item */
            const int per_img = (c->threads + c->batch - 1) / c->batch;
            if (per_img > 1) B = ST_MIN(B, (gl.P + per_img - 1) / per_img);
            /* equal bands: a short last band would shift its fixed-height window up and
             * recompute most of the band before it; and as many (image, band) items as a
             * multiple of the threads, so each takes the same number (3 bands on two
             * threads left one idle a third of the section) */
            int nb = (gl.P + B - 1) / B;
            const int items = nb * c->batch, T = c->threads;
            if (T > 1 && items % T && nb > 1) {
                const int want = (items + T - 1) / T * T;
                if (want % c->batch == 0 && want / c->batch <= gl.P) nb = want / c->batch;
            }
            B = (gl.P + nb - 1) / nb;
            nb = (gl.P + B - 1) / B;
            if (nb == 1) { /* one band per image: nothing kept in cache that layers do not */
                i = j + 1;
                continue;
            }
            /* At batch 1, as many bands as threads is what the layer steps' maps blocked
             * by thread already do (each thread its own rows, halos read from the other
             * block), without the recomputed halo rows and with blocked maps around the
             * steps instead of NCHW ones: such a section runs as layers. yolov5n 90% in
             * [4, 1] blocks at 320, 2 threads: those sections (two bands each) took
             * 1.1-1.4x their layer time as columns. */
            if (c->batch == 1 && c->threads > 1 && c->blocked_maps && nb <= c->threads) {
                i = j + 1;
                continue;
            }
        }
        sec->band = B;
        sec->nbands = (gl.P + B - 1) / B;
        sec->ws_bytes = size_bands(c->steps, sec, B);
        if ((rc = build_section(c, sec, err, errcap))) break;
        for (int k = i; k <= j; k++) c->steps[k].col_sec = c->n_secs;
        c->n_secs++;
        i = j + 1;
    }
    free(reads), free(is_out);
    return rc;
}

size_t se__columns_scratch_floats(const se_compiled *c) {
    size_t m = 0;
    for (int k = 0; k < c->n_secs; k++) m = ST_MAX(m, c->secs[k].thread_floats);
    return m * (size_t)c->threads;
}

/* Copies map rows [a, a + rin) of C channels x W into dst ([C][rin][W]); rows outside
 * [0, H) get `pad`. The source holds rows [s0, s0 + srows) ([C][srows][W]). */
static void fill_band(float *dst, const float *src, int C, int W, int H, int a, int rin, int s0,
                      int srows, float pad) {
    for (int ch = 0; ch < C; ch++) {
        for (int r = 0; r < rin; r++) {
            float *d = dst + ((size_t)ch * rin + r) * W;
            const int row = a + r;
            if (row < 0 || row >= H) {
                for (int q = 0; q < W; q++) d[q] = pad;
            } else {
                memcpy(d, src + ((size_t)ch * srows + (row - s0)) * W, (size_t)W * sizeof(float));
            }
        }
    }
}

/* Items (image, band) [it0, it1) on thread tid's buffers; 0, else 1 with the failing
 * step's message in msg. */
static int run_items(const se_compiled *c, const se_section *sec, float *const *ptr, float *arena, int tid,
                     int it0, int it1, char *msg, size_t msgcap) {
    const int first = sec->first, last = sec->last;
    const rowgeom gl = geom_of(&c->steps[last]);
    float *base = arena + sec->thread_floats * (size_t)tid;
    float *inb = base + sec->in_off, *scr = base + sec->scr_off;
    float *ob[2] = {base + sec->out_off, base + sec->out_off + sec->out_floats};
    int o0[SE_COL_MAX_STEPS], a[SE_COL_MAX_STEPS];
    for (int it = it0; it < it1; it++) {
        const int n = it / sec->nbands, b = it % sec->nbands;
        const int y0 = b * sec->band, y1 = ST_MIN(y0 + sec->band, gl.P);
        int lo, hi;
        walk(c->steps, first, last, first, y0, y1, o0, a, &lo, &hi);
        const float *src = NULL;
        int src_o0 = 0, src_rows = 0, cur = 0, written = 0;
        for (int j = first; j <= last; j++) {
            const se_step *s = &c->steps[j];
            const rowgeom g = geom_of(s);
            const int aj = a[j - first];
            const float *xin;
            size_t ldx = (size_t)s->col_rin * g.W; /* input channel stride */
            if (j > first && aj == src_o0 && src_rows == s->col_rin) {
                xin = src; /* the previous band is exactly this step's input */
            } else if (s->col_in_place) { /* only a first step is */
                xin = ptr[s->in[0]] + (size_t)n * g.C * g.H * g.W + (size_t)aj * g.W;
            } else if (j == first && s->op == ST_OP_CONV2D && s->sparse && !s->col_direct && aj >= 0 &&
                       aj + s->col_rin <= g.H) {
                /* banded: its builder copies the rows anyway, from the map as well as from
                 * a band (yolov5n's stem copied 3 x 46 rows of 320 twice a band) */
                xin = ptr[s->in[0]] + (size_t)n * g.C * g.H * g.W + (size_t)aj * g.W;
                ldx = (size_t)g.H * g.W;
            } else if (j == first) {
                const float *x = ptr[s->in[0]] + (size_t)n * g.C * g.H * g.W;
                fill_band(inb, x, g.C, g.W, g.H, aj, s->col_rin, 0, g.H, s->col_pad);
                xin = inb;
            } else {
                fill_band(inb, src, g.C, g.W, g.H, aj, s->col_rin, src_o0, src_rows, s->col_pad);
                xin = inb;
            }
            float *yo = ob[cur];
            if (s->op == ST_OP_CONV2D) {
                /* activations go into the sparse / packed dense kernels; a residual
                 * Add (read from the whole map, not laid out like the band) and the
                 * im2col path keep a pass over the band */
                /* the last step's band straight into its rows of the map, the
                 * residual Add fused too (its source has the map's layout); not the
                 * last band when shifted up over rows the band before wrote */
                const int to_map = j == last && s->sparse && o0[j - first] == y0 && s->col_rows == y1 - y0;
                const size_t at = to_map ? (size_t)n * g.K * gl.P * gl.Q + (size_t)y0 * g.Q : 0;
                st_epi_op ops[SE_MAX_EPI];
                const int n_ops = to_map ? (se__epi_ops(s, ptr, at, ops), s->n_epi)
                                : (s->sparse || s->packed_dense) && !se__epi_ops(s, ptr, 0, ops) ? s->n_epi : 0;
                if (s->sparse) {
                    st_error e = {0};
                    /* a band in place starts pad_h rows in (an input-map band: pad_h 0) */
                    const float *xs = s->col_direct ? xin + (size_t)s->conv.pad_h * g.W : xin;
                    const st_csr *cm = s->col_in_place ? &s->col_csr_in : &s->col_csr;
                    /* channel strides: out the map's or the band's, in the band's unless
                     * read in the map (direct mode: packed into the weights) */
                    const size_t ldy = to_map ? (size_t)gl.P * gl.Q : (size_t)s->col_rows * g.Q;
                    float *ys = to_map ? ptr[s->out] + at : yo;
                    st_status rc;
                    if (!s->col_direct)
                        rc = st_conv2d_sparse_forward_ld(&s->col_conv, cm, ys, ldy, xs, ldx, s->b, ops, n_ops, scr, &e);
                    else if (to_map)
                        rc = st_conv2d_sparse_forward_ldy(&s->col_conv, cm, ys, ldy, xs, s->b, ops, n_ops, scr, &e);
                    else
                        rc = st_conv2d_sparse_forward_epi(&s->col_conv, cm, ys, xs, s->b, ops, n_ops, scr, &e);
                    written = to_map && rc == ST_OK;
                    if (rc != ST_OK) {
                        snprintf(msg, msgcap, "%s: %s", c->g->nodes[s->node].name, e.msg);
                        return 1;
                    }
                } else if (s->packed_dense) {
                    st_dense_conv_forward(&s->dconv, &s->col_conv, yo, xin, s->b, ops, n_ops, scr);
                } else {
                    st_conv2d_forward(&s->col_conv, yo, xin, s->w, s->b, scr);
                }
                if (s->n_epi && !n_ops) se__epilogue_band(s, yo, ptr, n, o0[j - first], s->col_rows, NULL);
            } else if (s->op == ST_OP_MAXPOOL) {
                st_maxpool_forward_infer(&s->col_pool, yo, xin);
            } else {
                st_avgpool_forward(&s->col_pool, yo, xin);
            }
            src = yo, src_o0 = o0[j - first], src_rows = s->col_rows;
            cur ^= 1;
        }
        if (written) continue; /* the band is in the map */
        float *y = ptr[c->steps[last].out] + (size_t)n * gl.K * gl.P * gl.Q;
        for (int ch = 0; ch < gl.K; ch++)
            memcpy(y + ((size_t)ch * gl.P + y0) * gl.Q,
                   src + ((size_t)ch * src_rows + (y0 - src_o0)) * gl.Q,
                   (size_t)(y1 - y0) * gl.Q * sizeof(float));
    }
    return 0;
}

/* Part `part` of np's items: contiguous runs of bands, as the layers around split their
 * maps by rows, so each core reads the rows it wrote (handed out one by one, bands
 * crossed between the cores: yolov5n 95% two threads 2.54 -> 2.41 ms, 7.13 -> 6.65 at
 * 640). */
static void item_range(const se_section *sec, int batch, int part, int np, int *it0, int *it1) {
    const int items = batch * sec->nbands, chunk = (items + np - 1) / np;
    *it0 = ST_MIN(items, part * chunk);
    *it1 = ST_MIN(items, *it0 + chunk);
}

int se__columns_run(const se_compiled *c, const se_section *sec, float *const *ptr, float *arena,
                    char *err, size_t errcap) {
    const int items = c->batch * sec->nbands;
    int fail = 0;
    char msg[1400] = "";
#pragma omp parallel num_threads(ST_MIN(c->threads, items))
    {
        omp_set_num_threads(1); /* kernels inside a band run on this thread alone */
        char m[1400];
        int it0, it1;
        item_range(sec, c->batch, omp_get_thread_num(), omp_get_num_threads(), &it0, &it1);
        if (run_items(c, sec, ptr, arena, omp_get_thread_num(), it0, it1, m, sizeof m)) {
#pragma omp critical(se_columns_fail)
            if (!fail) fail = 1, snprintf(msg, sizeof msg, "%s", m);
        }
    }
    omp_set_num_threads(c->threads);
    if (fail) return se__fail(err, errcap, 1, "%s", msg);
    return 0;
}

int se__columns_part(const se_compiled *c, const se_section *sec, float *const *ptr, float *arena, int part,
                     int np, st_error *e) {
    int it0, it1;
    item_range(sec, c->batch, part, np, &it0, &it1);
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1); /* kernels inside a band run on this thread alone */
    const int rc = run_items(c, sec, ptr, arena, part, it0, it1, e->msg, sizeof e->msg);
    omp_set_num_threads(prev);
    return rc;
}
