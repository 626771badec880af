/* AVX-512 variants; compiled with -mavx512f (and friends) and only called when the CPU
 * has them. Tails use masked loads and stores, so there is no scalar remainder loop. */
#include <immintrin.h>
#include <math.h>

#include "st_common.h"
#include "st_cpu.h"

static inline __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static void axpy_avx512(float *y, float a, const float *x, size_t n) {
    __m512 va = _mm512_set1_ps(a);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vy = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i), vy));
    }
}

static void sgd_avx512(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                       float wd, int nesterov, int first) {
    __m512 vlr = _mm512_set1_ps(lr), vmom = _mm512_set1_ps(momentum), vwd = _mm512_set1_ps(wd);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vp = _mm512_maskz_loadu_ps(k, p + i);
        /* same operation order as the scalar kernel so results agree bit for bit */
        __m512 d = _mm512_add_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_mul_ps(vwd, vp));
        if (momentum != 0.0f) {
            __m512 b = first ? d
                             : _mm512_add_ps(_mm512_mul_ps(vmom, _mm512_maskz_loadu_ps(k, buf + i)), d);
            _mm512_mask_storeu_ps(buf + i, k, b);
            d = nesterov ? _mm512_add_ps(d, _mm512_mul_ps(vmom, b)) : b;
        }
        _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(vp, _mm512_mul_ps(vlr, d)));
    }
}

static void adamw_avx512(float *p, const float *g, float *m, float *v, size_t n, float lr,
                         float b1, float b2, float eps, float wd, float bc1, float bc2) {
    __m512 vdecay = _mm512_set1_ps(1.0f - lr * wd), vb1 = _mm512_set1_ps(b1),
           vb2 = _mm512_set1_ps(b2), v1b1 = _mm512_set1_ps(1.0f - b1),
           v1b2 = _mm512_set1_ps(1.0f - b2), veps = _mm512_set1_ps(eps),
           vstep = _mm512_set1_ps(lr / bc1), vsbc2 = _mm512_set1_ps(__builtin_sqrtf(bc2));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 vg = _mm512_maskz_loadu_ps(k, g + i);
        __m512 vp = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), vdecay);
        __m512 vm = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_maskz_loadu_ps(k, m + i)),
                                  _mm512_mul_ps(v1b1, vg));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_maskz_loadu_ps(k, v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(v1b2, vg), vg));
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), vsbc2), veps);
        vp = _mm512_sub_ps(vp, _mm512_div_ps(_mm512_mul_ps(vstep, vm), den));
        _mm512_mask_storeu_ps(m + i, k, vm);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, vp);
    }
}

static void apply_mask_avx512(float *p, const unsigned char *mask, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m128i m8 = _mm_maskz_loadu_epi8(k, mask + i);
        __mmask16 keep = _mm_test_epi8_mask(m8, m8) & k;
        /* zero where the mask byte is 0, keep elsewhere */
        _mm512_mask_storeu_ps(p + i, k, _mm512_maskz_loadu_ps(keep, p + i));
    }
}

/* v where v > a or v is NaN (as the scalar select), else a (a NaN a stays): MAXPS(v, a)
 * gives its second operand when either is NaN or they are equal, and lanes where v is
 * NaN keep v. Only the max waits on a; the compare-and-blend form chained three
 * dependent operations per row of a pool. */
static inline __m512 max_nan16(__m512 a, __m512 v) {
    return _mm512_mask_max_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v, a);
}

/* NV full vectors from column i: independent chains, one per vector. */
static inline __attribute__((always_inline)) void max_block16(float *dst, const float *const *rows, int nr,
                                                             size_t i, const int NV) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) a[v] = _mm512_loadu_ps(rows[0] + i + 16 * v);
    for (int r = 1; r < nr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) a[v] = max_nan16(a[v], _mm512_loadu_ps(rows[r] + i + 16 * v));
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(dst + i + 16 * v, a[v]);
}

/* Eight (then four) vectors at a time: each row's compare-and-blend waits on the last,
 * so one vector's chain alone left the core idle (ResNet-18's 3x3/2 pool: ~200 cycles
 * per output row). */
static void max_rows_avx512(float *dst, const float *const *rows, int nr, size_t n) {
    size_t i = 0;
    for (; i + 128 <= n; i += 128) max_block16(dst, rows, nr, i, 8);
    for (; i + 64 <= n; i += 64) max_block16(dst, rows, nr, i, 4);
    for (; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(k, rows[0] + i);
        for (int r = 1; r < nr; r++) {
            a = max_nan16(a, _mm512_maskz_loadu_ps(k, rows[r] + i));
        }
        if (k == 0xFFFF)
            _mm512_storeu_ps(dst + i, a);
        else
            _mm512_mask_storeu_ps(dst + i, k, a);
    }
}

/* Full vectors unmasked; only the last, partial one takes masks. */
static void deint2_avx512(float *d0, float *d1, const float *src, size_t n) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 a = _mm512_loadu_ps(src + 2 * i), b = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(d0 + i, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(d1 + i, _mm512_permutex2var_ps(a, io, b));
    }
    if (i < n) {
        const size_t left = n - i;
        const __m512 a = _mm512_maskz_loadu_ps(tail_mask(2 * left), src + 2 * i);
        const __m512 b = _mm512_maskz_loadu_ps(tail_mask(left > 8 ? 2 * left - 16 : 0), src + 2 * i + 16);
        _mm512_mask_storeu_ps(d0 + i, tail_mask(left), _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(d1 + i, tail_mask(left), _mm512_permutex2var_ps(a, io, b));
    }
}

/* Max over the rows (NR of them, or nr when NR is 0) of input columns [c, c + 16), -inf
 * outside [0, W); EDGE: c may start left of the row or end past it (masked-off lanes are
 * not read), else all 16 lie inside. */
static inline __attribute__((always_inline)) __m512 max3s2_cols(const int NR, const int EDGE,
                                                                const float *const *rows, int nr,
                                                                int W, long c) {
    const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
    __mmask16 m = 0xFFFF;
    if (EDGE) {
        const long lo = c < 0 ? -c : 0, hi = W - c < 16 ? W - c : 16;
        if (hi <= lo) return ninf;
        m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    }
    const int n = NR ? NR : nr;
    __m512 a = EDGE ? _mm512_mask_loadu_ps(ninf, m, rows[0] + c) : _mm512_loadu_ps(rows[0] + c);
#pragma GCC unroll 4
    for (int r = 1; r < n; r++)
        a = max_nan16(a, EDGE ? _mm512_mask_loadu_ps(ninf, m, rows[r] + c) : _mm512_loadu_ps(rows[r] + c));
    return a;
}

/* 16 outputs from the rows' maxima v0 (input columns [c, c + 16)), v1 and v2 (the next
 * two sixteens): even and odd columns are each window's first and second, the odd
 * columns of the pair shifted by one lane its third. */
static inline __m512 max3s2_out(__m512 v0, __m512 v1, __m512 v2) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    const __m512 e = _mm512_permutex2var_ps(v0, ie, v1), o = _mm512_permutex2var_ps(v0, io, v1);
    const __m512 t1 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v1), _mm512_castps_si512(v0), 1));
    const __m512 t2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v2), _mm512_castps_si512(v1), 1));
    return max_nan16(max_nan16(e, o), _mm512_permutex2var_ps(t1, io, t2));
}

/* The block of 16 outputs from j (input columns c .. c + 32, c = 2j + off) into y + j,
 * masked past Q; v0 the rows' maximum over [c, c + 16). Returns the one over
 * [c + 32, c + 48), the next block's v0. */
static inline __attribute__((always_inline)) __m512 max3s2_block(const int NR, const int EDGE, float *y,
                                                                 const float *const *rows, int nr, int W,
                                                                 int off, size_t Q, size_t j, __m512 v0) {
    const long c = 2 * (long)j + off;
    const __m512 v1 = max3s2_cols(NR, EDGE, rows, nr, W, c + 16), v2 = max3s2_cols(NR, EDGE, rows, nr, W, c + 32);
    const __m512 r = max3s2_out(v0, v1, v2);
    if (j + 16 <= Q) _mm512_storeu_ps(y + j, r);
    else _mm512_mask_storeu_ps(y + j, tail_mask(Q - j), r);
    return v2;
}

/* Blocks wholly inside the row load unmasked; those at the edges (left of column 0,
 * past W) take masks. ResNet-18's 3x3/2 pool (64 x 112 x 112, hot, one thread): 0.20 ms
 * by max_rows and deint2 per row, which spent more on calls and copies than on maxima. */
static inline __attribute__((always_inline)) void max3s2_rows(const int NR, float *y, const float *const *rows,
                                                              int nr, int W, int off, size_t Q) {
    __m512 v0 = max3s2_cols(NR, 1, rows, nr, W, off);
    size_t j = 0;
    for (; j < Q && off + 2 * (long)j < 0; j += 16) v0 = max3s2_block(NR, 1, y, rows, nr, W, off, Q, j, v0);
    for (; j + 16 <= Q && 2 * (long)j + off + 48 <= W; j += 16)
        v0 = max3s2_block(NR, 0, y, rows, nr, W, off, Q, j, v0);
    for (; j < Q; j += 16) v0 = max3s2_block(NR, 1, y, rows, nr, W, off, Q, j, v0);
}

static void max3s2_avx512(float *y, const float *const *rows, int nr, int W, int off, size_t Q) {
    if (nr == 3) max3s2_rows(3, y, rows, nr, W, off, Q);
    else if (nr == 2) max3s2_rows(2, y, rows, nr, W, off, Q);
    else max3s2_rows(0, y, rows, nr, W, off, Q);
}

/* Rows of at most 16 floats, one vector each: a row's maxima over the kw columns of
 * each window by masked lane permutes (-inf where a column leaves [0, W)), then over
 * the kh rows from registers. SPPF's 5x5 pools on 10x10 maps took ~520 cycles a plane
 * on the flat path (two max_rows calls over padded copies of 14-float rows). */
#define MAXS1_ROWS 32
static void maxs1_narrow_avx512(float *y, const float *x, int H, int W, int Q, int kh, int kw, int ph,
                                int pw, int r0, int r1) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i idx[16];
    __mmask16 km[16];
    for (int d = 0; d < kw; d++) { /* output column j reads input column j + d - pw */
        const int off = d - pw, lo = off < 0 ? ST_MIN(-off, 16) : 0, hi = ST_MAX(0, ST_MIN(16, W - off));
        idx[d] = _mm512_add_epi32(iota, _mm512_set1_epi32(off));
        km[d] = (__mmask16)(tail_mask((size_t)hi) & ~tail_mask((size_t)lo));
    }
    const __mmask16 kx = tail_mask((size_t)W), kq = tail_mask((size_t)Q);
    __m512 hm[MAXS1_ROWS + 16];
    for (int o0 = r0; o0 < r1; o0 += MAXS1_ROWS) {
        const int o1 = ST_MIN(o0 + MAXS1_ROWS, r1), h0 = o0 - ph, nh = o1 - o0 + kh - 1;
        for (int t = 0; t < nh; t++) {
            const int h = h0 + t;
            __m512 m = ninf;
            if (h >= 0 && h < H) {
                const __m512 v = _mm512_maskz_loadu_ps(kx, x + (size_t)h * W);
                m = _mm512_mask_permutexvar_ps(ninf, km[0], idx[0], v);
                for (int d = 1; d < kw; d++) m = max_nan16(m, _mm512_mask_permutexvar_ps(ninf, km[d], idx[d], v));
            }
            hm[t] = m;
        }
        for (int o = o0; o < o1; o++) {
            __m512 m = hm[o - o0];
            for (int d = 1; d < kh; d++) m = max_nan16(m, hm[o - o0 + d]);
            _mm512_mask_storeu_ps(y + (size_t)o * Q, kq, m);
        }
    }
}

void st_kernels_avx512(st_kernels *k) {
    k->isa = ST_ISA_AVX512;
    k->axpy = axpy_avx512;
    k->sgd = sgd_avx512;
    k->adamw = adamw_avx512;
    k->apply_mask = apply_mask_avx512;
    k->max_rows = max_rows_avx512;
    k->deint2 = deint2_avx512;
    k->max3s2 = max3s2_avx512;
    k->maxs1_narrow = maxs1_narrow_avx512;
}
