/* Max and average pooling, PyTorch semantics (dilation 1). Work is split over
 * (sample, channel) planes: each plane of y, and in backward of dx, belongs to one thread,
 * so the scatter-adds of backward need no atomics and run in a fixed order. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "conv2d_internal.h"
#include "st_common.h"
#include "st_cpu.h"
#include "st_ops.h"

#define ST_POOL_OMP_MIN 32768

/* Floor division that is correct for negative numerators. */
static long floor_div(long a, long b) {
    long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* PyTorch's pooling_output_shape: in ceil mode the last window must start inside the
 * input or the left padding, never wholly in the right padding. */
static int pool_out(int in, int k, int pad, int stride, int ceil_mode) {
    long out = floor_div((long)in + 2L * pad - k + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= (long)in + pad) out--;
    return out < 1 ? -1 : (int)out;
}

int st_pool_init(st_pool *p) {
    if (!p) return -1;
    if (p->N < 1 || p->C < 1 || p->H < 1 || p->W < 1 || p->kh < 1 || p->kw < 1 ||
        p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 || p->pad_w < 0)
        return -1;
    /* PyTorch's rule; it also guarantees every window overlaps the input. */
    if (p->pad_h > p->kh / 2 || p->pad_w > p->kw / 2) return -1;
    int P = pool_out(p->H, p->kh, p->pad_h, p->stride_h, p->ceil_mode);
    int Q = pool_out(p->W, p->kw, p->pad_w, p->stride_w, p->ceil_mode);
    if (P < 1 || Q < 1) return -1;
    p->P = P;
    p->Q = Q;
    return 0;
}

/* One candidate of a max-pool window, with the generic loop's rule (strictly greater
 * wins, so the first of equal maxima stays; NaN wins) written as selects: a branch per
 * element mispredicts on real activations. */
#define ST_POOL_TAKE(v, j)                      \
    do {                                        \
        int take_ = (v) > m || (v) != (v);      \
        m = take_ ? (v) : m;                    \
        idx = take_ ? (j) : idx;                \
    } while (0)

/* 2x2 windows, stride 2, no padding: the pooling of most CNNs. */
static void maxpool_2x2(const st_pool *p, float *y, int32_t *argmax, const float *x) {
    const int H = p->H, W = p->W, P = p->P, Q = p->Q;
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
#pragma omp parallel for schedule(static) if ((size_t)planes * PQ * 4 > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * HW;
        float *yp = y + (size_t)pl * PQ;
        int32_t *ap = argmax + (size_t)pl * PQ;
        for (int oh = 0; oh < P; oh++) {
            const float *r0 = xp + (size_t)(2 * oh) * W, *r1 = r0 + W;
            for (int ow = 0; ow < Q; ow++) {
                int32_t i0 = 2 * oh * W + 2 * ow, idx = i0;
                float m = r0[2 * ow];
                ST_POOL_TAKE(r0[2 * ow + 1], i0 + 1);
                ST_POOL_TAKE(r1[2 * ow], i0 + W);
                ST_POOL_TAKE(r1[2 * ow + 1], i0 + W + 1);
                yp[(size_t)oh * Q + ow] = m;
                ap[(size_t)oh * Q + ow] = idx;
            }
        }
    }
}

void st_maxpool_forward(const st_pool *p, float *y, int32_t *argmax, const float *x) {
    const int H = p->H, W = p->W, P = p->P, Q = p->Q;
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
    if (p->kh == 2 && p->kw == 2 && p->stride_h == 2 && p->stride_w == 2 && p->pad_h == 0 &&
        p->pad_w == 0 && 2 * P <= H && 2 * Q <= W) {
        maxpool_2x2(p, y, argmax, x);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)planes * PQ * p->kh * p->kw > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * HW;
        float *yp = y + (size_t)pl * PQ;
        int32_t *ap = argmax + (size_t)pl * PQ;
        for (int oh = 0; oh < P; oh++) {
            int hs = oh * p->stride_h - p->pad_h;
            int he = ST_MIN(hs + p->kh, H);
            if (hs < 0) hs = 0;
            for (int ow = 0; ow < Q; ow++) {
                int ws = ow * p->stride_w - p->pad_w;
                int we = ST_MIN(ws + p->kw, W);
                if (ws < 0) ws = 0;
                float m = -INFINITY;
                int32_t idx = hs * W + ws;
                for (int h = hs; h < he; h++)
                    for (int w = ws; w < we; w++) {
                        float v = xp[h * W + w];
                        /* Strict > keeps the first of equal maxima; NaN wins like PyTorch. */
                        if (v > m || isnan(v)) {
                            m = v;
                            idx = h * W + w;
                        }
                    }
                yp[(size_t)oh * Q + ow] = m;
                ap[(size_t)oh * Q + ow] = idx;
            }
        }
    }
}

/* Without argmax the forward is a max over the window, computed one output row at a time
 * across all its columns (vectorised over ow; window columns clipped by index range, not
 * by tests). The per-output loop of st_maxpool_forward is a chain of dependent compares
 * (kh*kw of them per output): SPPF's three 5x5 pools took 13% of yolov5n's inference. */
#define POOL_ROW_MAX 2048

/* Columns [c0, c1) (at most POOL_ROW_MAX) of output rows [r0, r1) of one plane. */
static void maxpool_plane_cols(const st_pool *p, float *yp, const float *xp, int r0, int r1, int c0,
                               int c1) {
    const int W = p->W, Q = p->Q, sw = p->stride_w;
    float row[POOL_ROW_MAX];
    for (int oh = r0; oh < r1; oh++) {
        float *yr = yp + (size_t)oh * Q;
        for (int ow = c0; ow < c1; ow++) yr[ow] = -INFINITY;
        int hs, he;
        st_pool_window_rows(p, oh, &hs, &he);
        for (int h = hs; h < he; h++) {
            const float *xr = xp + (size_t)h * W;
            for (int ow = c0; ow < c1; ow++) row[ow - c0] = -INFINITY;
            for (int dw = 0; dw < p->kw; dw++) {
                const int off = dw - p->pad_w; /* w = ow * sw + off must lie in [0, W) */
                int lo, hi;
                st__valid_range(Q, sw, off, W, &lo, &hi);
                lo = ST_MAX(lo, c0), hi = ST_MIN(hi, c1);
#pragma omp simd
                for (int ow = lo; ow < hi; ow++) row[ow - c0] = st_max_nan(row[ow - c0], xr[ow * sw + off]);
            }
#pragma omp simd
            for (int ow = c0; ow < c1; ow++) yr[ow] = st_max_nan(yr[ow], row[ow - c0]);
        }
    }
}

/* dst[i] = max over the nr rows, in batches so the pointer arrays stay small (a batch
 * after the first folds in dst's partial maximum as one more row). */
#define POOL_ROWS_BATCH 32
#define POOL_SEP_KMAX 64 /* larger windows take maxpool_plane_cols */
static void max_rows_any(const st_kernels *k, float *dst, const float *const *rows, int nr, size_t n) {
    k->max_rows(dst, rows, ST_MIN(nr, POOL_ROWS_BATCH), n);
    const float *batch[POOL_ROWS_BATCH];
    for (int r0 = POOL_ROWS_BATCH; r0 < nr; r0 += POOL_ROWS_BATCH - 1) {
        const int m = ST_MIN(nr - r0, POOL_ROWS_BATCH - 1);
        batch[0] = dst;
        for (int r = 0; r < m; r++) batch[1 + r] = rows[r0 + r];
        k->max_rows(dst, batch, m + 1, n);
    }
}

/* Separable: the max over the window's rows into vp, the chunk's input columns with -inf
 * where the window hangs over the edge (so no column range clipping), then over the
 * window's columns read from vp split by stride phase, so that every step reads
 * contiguous floats. (Reading vp[ow * sw + dw] directly is a strided gather: the 3x3/2
 * pool of ResNet-18 took 0.6 ms of its 5 ms at 95% sparsity.) Each output is one
 * max_rows over kw shifted phase rows, kept in a register until stored: the earlier
 * pairwise max_into calls stored and reloaded every output kw times, and SPPF's 10x10
 * pools were all call overhead. Max is order-free, and st_max_nan lets a NaN anywhere in
 * the window through in any order. */
static void maxpool_plane_sep(const st_pool *p, float *yp, const float *xp, int r0, int r1, int c0,
                              int c1, const st_kernels *k) {
    const int W = p->W, Q = p->Q, sw = p->stride_w, kw = p->kw, n_out = c1 - c0;
    float vp[POOL_ROW_MAX], ph[POOL_ROW_MAX + 64];
    const float *rows[POOL_SEP_KMAX], *hrows[POOL_SEP_KMAX];
    const long base = (long)c0 * sw - p->pad_w;  /* input column of vp[0] */
    const int nv = (n_out - 1) * sw + kw;         /* vp covers the chunk's windows */
    const int ja = (int)ST_MAX(0, -base), jb = (int)ST_MIN((long)nv, W - base);
    const int L = (nv + sw - 1) / sw;             /* phase b: ph[b*L + j] = vp[j*sw + b] */
    for (int j = 0; j < ja; j++) vp[j] = -INFINITY;
    for (int j = jb; j < nv; j++) vp[j] = -INFINITY;
    const float *hsrc = sw == 1 ? vp : ph;
    for (int dw = 0; dw < kw; dw++)
        hrows[dw] = hsrc + (size_t)(dw % sw) * L + dw / sw;
    for (int oh = r0; oh < r1; oh++) {
        float *yr = yp + (size_t)oh * Q + c0;
        int hs, he;
        st_pool_window_rows(p, oh, &hs, &he);
        if (he <= hs || jb <= ja) {
            for (int t = 0; t < n_out; t++) yr[t] = -INFINITY;
            continue;
        }
        for (int h = hs; h < he; h++) rows[h - hs] = xp + (size_t)h * W + base + ja;
        max_rows_any(k, vp + ja, rows, he - hs, (size_t)(jb - ja));
        if (sw == 2) {
            k->deint2(ph, ph + L, vp, (size_t)(nv / 2));
            if (nv % 2) ph[nv / 2] = vp[nv - 1];
        } else if (sw > 2) {
            for (int b = 0; b < sw; b++)
                for (int j = 0; j * sw + b < nv; j++) ph[(size_t)b * L + j] = vp[j * sw + b];
        }
        max_rows_any(k, yr, hrows, kw, (size_t)n_out);
    }
}

/* Stride 1: bands of output rows computed on the -inf padded rows as flat arrays: one
 * max_rows call takes the window's rows for every position of the band, one more its
 * columns; the Q valid columns of each row are then copied out. Row by row, the
 * separable path made two calls per output row (SPPF's 10-float rows): SPPF's pools
 * 0.045 -> 0.035 ms, a 5x5 pool on 64 x 80 x 80 0.35 -> 0.25-0.27 ms. (Stride 2 this way,
 * computing the unused rows between outputs and deinterleaving, was slower on
 * ResNet-18's 3x3/2 pool: 0.25 -> 0.29 ms.) */
#define POOL_FLAT_BAND 4096 /* floats per band buffer */
static int flat_ok(const st_pool *p) {
    const int Wp = p->W + 2 * p->pad_w, Hp = p->H + 2 * p->pad_h;
    if (p->stride_h != 1 || p->stride_w != 1 || p->kh > POOL_SEP_KMAX || p->kw > POOL_SEP_KMAX) return 0;
    if ((size_t)(p->kh + 1) * Wp > POOL_FLAT_BAND) return 0; /* two output rows per band */
    return p->P == Hp - p->kh + 1 && p->Q == Wp - p->kw + 1;
}

static void maxpool_plane_flat(const st_pool *p, float *yp, const float *xp, int r0, int r1,
                               const st_kernels *k) {
    const int W = p->W, pw = p->pad_w, Wp = W + 2 * pw, Q = p->Q, kh = p->kh, kw = p->kw;
    float bp[POOL_FLAT_BAND], vb[POOL_FLAT_BAND];
    const float *rows[POOL_SEP_KMAX];
    const int nb = POOL_FLAT_BAND / Wp - kh + 1; /* output rows per band */
    for (int o0 = r0; o0 < r1; o0 += nb) {
        const int o1 = ST_MIN(o0 + nb, r1), nr = o1 - o0 + kh - 1; /* padded rows o0 .. */
        for (int t = 0; t < nr; t++) {
            float *b = bp + (size_t)t * Wp;
            const int h = o0 + t - p->pad_h;
            if (h < 0 || h >= p->H) {
                for (int j = 0; j < Wp; j++) b[j] = -INFINITY;
                continue;
            }
            for (int j = 0; j < pw; j++) b[j] = b[pw + W + j] = -INFINITY;
            memcpy(b + pw, xp + (size_t)h * W, sizeof(float) * W);
        }
        for (int dh = 0; dh < kh; dh++) rows[dh] = bp + (size_t)dh * Wp;
        max_rows_any(k, vb, rows, kh, (size_t)(o1 - o0) * Wp);
        for (int dw = 0; dw < kw; dw++) rows[dw] = vb + dw;
        max_rows_any(k, bp, rows, kw, (size_t)(o1 - o0 - 1) * Wp + Q); /* output row j at j*Wp */
        for (int j = 0; j < o1 - o0; j++)
            memcpy(yp + (size_t)(o0 + j) * Q, bp + (size_t)j * Wp, sizeof(float) * Q);
    }
}

/* 3 wide, stride 2 (ResNet's stem pool): one kernel call per output row. */
static void maxpool_plane_3s2(const st_pool *p, float *yp, const float *xp, int r0, int r1,
                              const st_kernels *k) {
    const float *rows[POOL_SEP_KMAX];
    for (int oh = r0; oh < r1; oh++) {
        int hs, he;
        st_pool_window_rows(p, oh, &hs, &he);
        float *yr = yp + (size_t)oh * p->Q;
        if (he <= hs) {
            for (int t = 0; t < p->Q; t++) yr[t] = -INFINITY;
            continue;
        }
        for (int h = hs; h < he; h++) rows[h - hs] = xp + (size_t)h * p->W;
        k->max3s2(yr, rows, he - hs, p->W, -p->pad_w, (size_t)p->Q);
    }
}

/* Output rows [r0, r1) of the plane whose input starts at xp (row h at xp + h*W) and
 * output at yp (row o at yp + o*Q). */
static void maxpool_plane_rows(const st_pool *p, float *yp, const float *xp, int r0, int r1,
                               const st_kernels *k) {
    /* columns per chunk so the chunk's input columns (and their phases) fit the buffers */
    const int sep_cols = (POOL_ROW_MAX - p->kw - 2 * p->stride_w) / p->stride_w;
    const int sep = sep_cols >= 16 && p->kh <= POOL_SEP_KMAX && p->kw <= POOL_SEP_KMAX;
    const int chunk = sep ? sep_cols : POOL_ROW_MAX;
    if (r0 >= r1) return;
    if (k->maxs1_narrow && p->stride_h == 1 && p->stride_w == 1 && p->W <= 16 && p->Q <= 16 && p->kh <= 16 &&
        p->kw <= 16) {
        k->maxs1_narrow(yp, xp, p->H, p->W, p->Q, p->kh, p->kw, p->pad_h,
                        p->pad_w, r0, r1);
        return;
    }
    if (flat_ok(p)) {
        maxpool_plane_flat(p, yp, xp, r0, r1, k);
        return;
    }
    if (k->max3s2 && p->kw == 3 && p->stride_w == 2 && p->kh <= POOL_SEP_KMAX) {
        maxpool_plane_3s2(p, yp, xp, r0, r1, k);
        return;
    }
    for (int c0 = 0; c0 < p->Q; c0 += chunk) {
        const int c1 = ST_MIN(c0 + chunk, p->Q);
        if (sep)
            maxpool_plane_sep(p, yp, xp, r0, r1, c0, c1, k);
        else /* windows too large for the row pointer arrays or the buffer */
            maxpool_plane_cols(p, yp, xp, r0, r1, c0, c1);
    }
}

void st_maxpool_forward_infer(const st_pool *p, float *y, const float *x) {
    const long planes = (long)p->N * p->C;
    const size_t PQ = (size_t)p->P * p->Q;
    st_kernels k;
    st_kernels_init(&k, st_cpu_select_isa());
    /* Threads take bands of output rows across all planes rather than planes: the
     * producing convolution split its output the same way (by rows), so each thread
     * mostly reads what its own core wrote. */
    const int par = (size_t)planes * PQ * p->kh * p->kw > ST_POOL_OMP_MIN;
    const int nb = par ? ST_MIN(omp_get_max_threads(), p->P) : 1;
#pragma omp parallel for schedule(static) if (par)
    for (long it = 0; it < nb * planes; it++) {
        const int b = (int)(it / planes);
        const long pl = it % planes;
        maxpool_plane_rows(p, y + (size_t)pl * PQ, x + (size_t)pl * p->H * p->W, (int)((long)p->P * b / nb),
                           (int)((long)p->P * (b + 1) / nb), &k);
    }
}

void st_maxpool_forward_infer_part(const st_pool *p, float *y, const float *x, int part, int nparts) {
    st_kernels k;
    st_kernels_init(&k, st_cpu_select_isa());
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)p->H * p->W, PQ = (size_t)p->P * p->Q;
    if ((size_t)p->P * p->Q < ST_POOL_PART_PLANE && planes >= nparts) {
        for (long pl = planes * part / nparts; pl < planes * (part + 1) / nparts; pl++)
            maxpool_plane_rows(p, y + (size_t)pl * PQ, x + (size_t)pl * HW, 0, p->P, &k);
        return;
    }
    const int r0 = (int)((long)p->P * part / nparts), r1 = (int)((long)p->P * (part + 1) / nparts);
    for (long pl = 0; r0 < r1 && pl < planes; pl++)
        maxpool_plane_rows(p, y + (size_t)pl * PQ, x + (size_t)pl * HW, r0, r1, &k);
}

void st_maxpool_forward_infer_rows(const st_pool *p, float *y, size_t ldy, const float *x, size_t ldx,
                                   int xrow0, int r0, int r1) {
    if (r0 >= r1) return;
    st_kernels k;
    st_kernels_init(&k, st_cpu_select_isa());
    /* the rows as a pool of their own: input rows first .. last of the map, the padding
     * above them what the map's padding leaves of the first window (0 inside the map) */
    int first, end, unused;
    st_pool_window_rows(p, r0, &first, &unused);
    st_pool_window_rows(p, r1 - 1, &unused, &end);
    st_pool q = *p;
    q.N = 1, q.H = end - first, q.P = r1 - r0, q.pad_h = first - (r0 * p->stride_h - p->pad_h);
    const float *xs = x + (ptrdiff_t)(first - xrow0) * p->W;
    for (int ch = 0; ch < p->C; ch++) maxpool_plane_rows(&q, y + ch * ldy, xs + ch * ldx, 0, q.P, &k);
}

void st_maxpool_backward(const st_pool *p, float *dx, const float *dy, const int32_t *argmax) {
    if (!dx) return;
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)p->H * p->W, PQ = (size_t)p->P * p->Q;
#pragma omp parallel for schedule(static) if ((size_t)planes * PQ > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *gp = dx + (size_t)pl * HW;
        const float *dp = dy + (size_t)pl * PQ;
        const int32_t *ap = argmax + (size_t)pl * PQ;
        for (size_t i = 0; i < PQ; i++) gp[ap[i]] += dp[i];
    }
}

/* One window of average pooling: the clipped input range and the divisor. */
typedef struct {
    int hs, he, ws, we;
    float inv;
} avg_win;

static avg_win avg_window(const st_pool *p, int oh, int ow) {
    avg_win a;
    int hs = oh * p->stride_h - p->pad_h, ws = ow * p->stride_w - p->pad_w;
    /* The padded extent (used by count_include_pad) stops at the right padding edge. */
    int he = ST_MIN(hs + p->kh, p->H + p->pad_h), we = ST_MIN(ws + p->kw, p->W + p->pad_w);
    int padded = (he - hs) * (we - ws);
    a.hs = hs < 0 ? 0 : hs;
    a.ws = ws < 0 ? 0 : ws;
    a.he = ST_MIN(he, p->H);
    a.we = ST_MIN(we, p->W);
    int count = p->count_include_pad ? padded : (a.he - a.hs) * (a.we - a.ws);
    a.inv = 1.0f / (float)count;
    return a;
}

void st_avgpool_forward(const st_pool *p, float *y, const float *x) {
    const int W = p->W, P = p->P, Q = p->Q;
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)p->H * W, PQ = (size_t)P * Q;
#pragma omp parallel for schedule(static) if ((size_t)planes * PQ * p->kh * p->kw > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * HW;
        float *yp = y + (size_t)pl * PQ;
        for (int oh = 0; oh < P; oh++)
            for (int ow = 0; ow < Q; ow++) {
                avg_win a = avg_window(p, oh, ow);
                float s = 0.0f;
                for (int h = a.hs; h < a.he; h++)
                    for (int w = a.ws; w < a.we; w++) s += xp[h * W + w];
                yp[(size_t)oh * Q + ow] = s * a.inv;
            }
    }
}

void st_avgpool_backward(const st_pool *p, float *dx, const float *dy) {
    if (!dx) return;
    const int W = p->W, P = p->P, Q = p->Q;
    const long planes = (long)p->N * p->C;
    const size_t HW = (size_t)p->H * W, PQ = (size_t)P * Q;
#pragma omp parallel for schedule(static) if ((size_t)planes * PQ * p->kh * p->kw > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *gp = dx + (size_t)pl * HW;
        const float *dp = dy + (size_t)pl * PQ;
        for (int oh = 0; oh < P; oh++)
            for (int ow = 0; ow < Q; ow++) {
                avg_win a = avg_window(p, oh, ow);
                float g = dp[(size_t)oh * Q + ow] * a.inv;
                for (int h = a.hs; h < a.he; h++)
                    for (int w = a.ws; w < a.we; w++) gp[h * W + w] += g;
            }
    }
}

void st_global_avgpool_forward(float *y, const float *x, int N, int C, int HW) {
    const long planes = (long)N * C;
#pragma omp parallel for schedule(static) if ((size_t)planes * HW > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        /* four chains of double adds: one chain waited on each add's latency (ResNet-18's
         * 512 planes of 7x7 took 0.02-0.03 ms) */
        const float *xp = x + (size_t)pl * HW;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        int i = 0;
        for (; i + 3 < HW; i += 4) s0 += xp[i], s1 += xp[i + 1], s2 += xp[i + 2], s3 += xp[i + 3];
        for (; i < HW; i++) s0 += xp[i];
        y[pl] = (float)(((s0 + s1) + (s2 + s3)) / HW);
    }
}

void st_global_avgpool_backward(float *dx, const float *dy, int N, int C, int HW) {
    if (!dx) return;
    const long planes = (long)N * C;
#pragma omp parallel for schedule(static) if ((size_t)planes * HW > ST_POOL_OMP_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *gp = dx + (size_t)pl * HW;
        const float g = dy[pl] / (float)HW;
        for (int i = 0; i < HW; i++) gp[i] += g;
    }
}
