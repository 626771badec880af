/* Maps blocked by thread (engine/runtime/se_blocked.c): a stride-2 layer, a C3-like
 * chain (1x1 layers, a 3x3 layer with a residual Add, an elided concat, an odd width)
 * and a stride-2 layer reading blocks, compiled for 2 and 3 threads at batch 1, store
 * their inner maps blocked and give the outputs of the same model on one thread and
 * with every map NCHW (1e-5), run twice in a context whose buffers start as garbage; the
 * plan says which steps read and write blocks. Batch 2, the columns schedule and
 * nchw_maps keep every map NCHW. A stride-2 layer on tap-column planes (ST_CSR_TAPS)
 * in every schedule gives the dense training executor's output (1e-4), and so does the
 * C3-like chain pruned in blocks of 4 output channels, on quads (ST_CSR_QUADS). A max
 * pool writes blocks, reading a blocked or an NCHW map. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_internal.h"
#include "sparseengine.h"
#include "st_engine_models.h"
#include "st_onnx_build.h"
#include "st_test_util.h"

static char err[1024];
static char desc[1 << 16];

/* Weights pruned at random, or with quads in blocks of 4 output channels ([4, 1]: rows
 * 4q + 1 .. 4q + 3 zero where row 4q is). */
static void conv_wq(stb *b, const char *name, int K, int C, int R, double prune, st_rng *r, int quads) {
    const size_t n = (size_t)K * C * R * R, per = n / (size_t)K;
    float *w = malloc(n * sizeof(float)), *bias = malloc((size_t)K * sizeof(float));
    const float sc = 1.0f / sqrtf((float)(C * R * R) * (1.0f - (float)prune));
    for (size_t i = 0; i < n; i++) {
        const size_t k = i / per;
        const int off = quads && k % 4 ? w[(k & ~(size_t)3) * per + i % per] == 0.0f : st_rng_uniform(r) < prune;
        w[i] = off ? 0.0f : (2 * st_rng_uniform(r) - 1) * sc;
    }
    stt_fill_uniform(bias, (size_t)K, -0.1f, 0.1f, r);
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    stb_init(b, wn, 4, (int64_t[]){K, C, R, R}, w);
    stb_init(b, bn, 1, (int64_t[]){K}, bias);
    free(w), free(bias);
}

static void conv_w(stb *b, const char *name, int K, int C, int R, double prune, st_rng *r) {
    conv_wq(b, name, K, C, R, prune, r, 0);
}

static Onnx__NodeProto *conv(stb *b, const char *name, const char *in, const char *out, int k) {
    char ins[200];
    snprintf(ins, sizeof ins, "%s,%s.weight,%s.bias", in, name, name);
    Onnx__NodeProto *n = stb_node(b, "Conv", name, ins, out);
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){k, k});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){k / 2, k / 2, k / 2, k / 2});
    return n;
}

/* Conv `name` (k x k, "same" padding, stride s) of in, with a ReLU after it when relu. */
static void layer(stb *b, const char *name, const char *in, const char *out, int k, int s, int relu) {
    char pre[64], rn[64];
    snprintf(pre, sizeof pre, "%s.pre", name);
    snprintf(rn, sizeof rn, "%s.relu", name);
    Onnx__NodeProto *n = conv(b, name, in, relu ? pre : out, k);
    if (s == 2) stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 2});
    if (relu) stb_node(b, "Relu", rn, pre, out);
}

/* x [8, 48, 38] -> s1 3x3/2 (relu) -> x2 [16, 24, 19]; cv1 1x1 (relu) -> a; m1 1x1
 * (relu) -> m; m2 3x3 (relu) + a -> s; cv2 1x1 of x2 (relu) -> d; concat(s, d) -> e;
 * cv3 1x1 (relu) -> f [64, 24, 19]; s2 3x3/2 of f + ds 1x1/2 of f -> y [64, 12, 10]. */
static void write_c3_q(const char *path, int q) {
    st_rng r;
    st_rng_seed(&r, 11);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, 48, 38});
    conv_wq(b, "s1", 16, 8, 3, 0.9, &r, q);
    conv_wq(b, "cv1", 16, 16, 1, 0.9, &r, q);
    conv_wq(b, "m1", 16, 16, 1, 0.9, &r, q);
    conv_wq(b, "m2", 16, 16, 3, 0.9, &r, q);
    conv_wq(b, "cv2", 16, 16, 1, 0.9, &r, q);
    conv_wq(b, "cv3", 64, 32, 1, 0.9, &r, q);
    conv_wq(b, "s2", 64, 64, 3, 0.95, &r, q);
    conv_wq(b, "ds", 64, 64, 1, 0.95, &r, q);
    layer(b, "s1", "x", "x2", 3, 2, 1);
    layer(b, "cv1", "x2", "a", 1, 1, 1);
    layer(b, "m1", "a", "m", 1, 1, 1);
    layer(b, "m2", "m", "s1", 3, 1, 1);
    stb_node(b, "Add", "add", "s1,a", "s");
    layer(b, "cv2", "x2", "d", 1, 1, 1);
    stb_attr_i(b, stb_node(b, "Concat", "cat", "s,d", "e"), "axis", 1);
    layer(b, "cv3", "e", "f", 1, 1, 1);
    layer(b, "s2", "f", "y0", 3, 2, 0);
    layer(b, "ds", "f", "z", 1, 2, 0);
    stb_node(b, "Add", "add2", "y0,z", "y");
    stb_output(b, "y");
    ck_assert_int_eq(stb_save(b, path), 0);
}

static void write_c3(const char *path) { write_c3_q(path, 0); }
static void write_c3_quads(const char *path) { write_c3_q(path, 1); }

/* x [8, 32, 36] -> c0 1x1 (relu) -> a; s2 3x3/2 (relu) -> b [16, 16, 18]; c1 1x1 -> b2;
 * upsample 2x -> u [16, 32, 36]; concat(u, a) -> e; c2 1x1 -> y [8, 32, 36]. */
static void write_up(const char *path) {
    st_rng r;
    st_rng_seed(&r, 12);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, 32, 36});
    conv_w(b, "c0", 16, 8, 1, 0.9, &r);
    conv_w(b, "s2", 16, 16, 3, 0.9, &r);
    conv_w(b, "c1", 16, 16, 1, 0.9, &r);
    conv_w(b, "c2", 8, 32, 1, 0.9, &r);
    layer(b, "c0", "x", "a", 1, 1, 1);
    layer(b, "s2", "a", "b", 3, 2, 1);
    layer(b, "c1", "b", "b2", 1, 1, 0);
    float scales[4] = {1, 1, 2, 2};
    stb_init(b, "scales", 1, (int64_t[]){4}, scales);
    stb_attr_s(b, stb_node(b, "Resize", "up", "b2,,scales", "u"), "mode", "nearest");
    stb_attr_i(b, stb_node(b, "Concat", "cat", "u,a", "e"), "axis", 1);
    layer(b, "c2", "e", "y", 1, 1, 0);
    stb_output(b, "y");
    ck_assert_int_eq(stb_save(b, path), 0);
}

/* x [8, 28, 19] -> c0 1x1 (relu) -> a [64, 28, 19]; ds 1x1/2 -> y [64, 14, 10]. On three
 * threads block 1 of a holds rows 9..17 and its window starts at row 8 (the halo). */
static void write_ds(const char *path) {
    st_rng r;
    st_rng_seed(&r, 13);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, 28, 19});
    conv_w(b, "c0", 64, 8, 1, 0.9, &r);
    conv_w(b, "ds", 64, 64, 1, 0.95, &r);
    layer(b, "c0", "x", "a", 1, 1, 1);
    layer(b, "ds", "a", "y", 1, 2, 0);
    stb_output(b, "y");
    ck_assert_int_eq(stb_save(b, path), 0);
}

/* x [8, H, W] -> c0 1x1 (relu) -> a [C1, H, W]; c1 3x3/st, p1 of zeros (relu) -> b
 * [C2, ...]; c2 1x1 -> y [out, ...]. */
static void write_three(const char *path, int H, int W, int C1, int C2, int st, double p1, int out) {
    st_rng r;
    st_rng_seed(&r, 14);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, H, W});
    conv_w(b, "c0", C1, 8, 1, 0.9, &r);
    conv_w(b, "c1", C2, C1, 3, p1, &r);
    conv_w(b, "c2", out, C2, 1, 0.9, &r);
    layer(b, "c0", "x", "a", 1, 1, 1);
    layer(b, "c1", "a", "b", 3, st, 1);
    layer(b, "c2", "b", "y", 1, 1, 0);
    stb_output(b, "y");
    ck_assert_int_eq(stb_save(b, path), 0);
}

/* write_three at 20 x 84, 16 and 32 channels, stride 2, 90% zeros -> y [16, 10, 42].
 * Output rows of 42 are whole kernel tiles: the stride-2 layer gets the tap-column
 * planes (ST_CSR_TAPS). */
static void write_wide(const char *path) { write_three(path, 20, 84, 16, 32, 2, 0.9, 16); }

/* x [8, 32, 22] -> c0 1x1 (relu) -> a [16, 32, 22]; max pool 3x3/2 pad 1 -> p [16, 16,
 * 11]; m1 3x3 (relu) -> b; m2 3x3 + p -> s; c2 1x1 -> y [8, 16, 11] (ResNet's stem pool
 * and first block). */
static void write_pool(const char *path) {
    st_rng r;
    st_rng_seed(&r, 15);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, 32, 22});
    conv_w(b, "c0", 16, 8, 1, 0.9, &r);
    conv_w(b, "m1", 16, 16, 3, 0.9, &r);
    conv_w(b, "m2", 16, 16, 3, 0.9, &r);
    conv_w(b, "c2", 8, 16, 1, 0.9, &r);
    layer(b, "c0", "x", "a", 1, 1, 1);
    Onnx__NodeProto *n = stb_node(b, "MaxPool", "pool", "a", "p");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){3, 3});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 2});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    layer(b, "m1", "p", "b", 3, 1, 1);
    layer(b, "m2", "b", "s0", 3, 1, 0);
    stb_node(b, "Add", "add", "s0,p", "s");
    layer(b, "c2", "s", "y", 1, 1, 0);
    stb_output(b, "y");
    ck_assert_int_eq(stb_save(b, path), 0);
}

/* Compiled with these options; its plan in desc. */
static se_compiled *compile_rows(const char *path, int batch, int threads, int schedule, int nchw, int rows) {
    se_options o;
    se_options_default(&o);
    o.batch = batch, o.threads = threads, o.schedule = schedule, o.nchw_maps = nchw, o.column_rows = rows;
    o.l2_bytes = 8u << 10; /* the test maps are small: sections keep more than this out of memory */
    se_compiled *c = stt_engine_compile(path, &o);
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    return c;
}

static se_compiled *compile(const char *path, int batch, int threads, int schedule, int nchw) {
    return compile_rows(path, batch, threads, schedule, nchw, 0);
}

/* y = c(x), in a context whose arena and blocks start as garbage; a second run in the
 * same context must agree bit for bit. */
static float *run(const se_compiled *c, const float *x, size_t n_out) {
    se_context *xc = NULL;
    ck_assert_msg(se_context_new(c, &xc, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < c->arena_floats; i++) xc->arena[i] = 1e30f;
    for (size_t i = 0; xc->blk_arena && i < (size_t)c->blk_T * c->blk_stride; i++) xc->blk_arena[i] = 1e30f; /* max pooling would not see -1e30 */
    float *y = malloc(n_out * sizeof(float)), *y2 = malloc(n_out * sizeof(float));
    float *outs[1] = {y}, *outs2[1] = {y2};
    ck_assert_msg(se_run(xc, x, outs, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(se_run(xc, x, outs2, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(memcmp(y, y2, n_out * sizeof(float)) == 0, "a second run differs");
    free(y2);
    se_context_free(xc);
    return y;
}

/* A graph written by `write` into the test's directory, an input of n_in floats from
 * `seed`, and the output of the same model on one thread (outputs of n_out floats). */
typedef struct {
    char path[700];
    size_t n_in, n_out;
    float *x, *ref;
} fixture;

static void setup(fixture *f, const char *name, void (*write)(const char *), size_t n_in, size_t n_out,
                  uint64_t seed) {
    char dir[512];
    stt_tmpdir(dir, sizeof dir, name);
    snprintf(f->path, sizeof f->path, "%s/%s.onnx", dir, name);
    write(f->path);
    f->n_in = n_in, f->n_out = n_out;
    f->x = malloc(n_in * sizeof(float));
    st_rng r;
    st_rng_seed(&r, seed);
    stt_fill_uniform(f->x, n_in, -1.0f, 1.0f, &r);
    se_compiled *one = compile(f->path, 1, 1, SE_SCHEDULE_LAYERS, 0);
    ck_assert_int_eq(one->blk_T, 0); /* one thread: nothing to block */
    f->ref = run(one, f->x, n_out);
    se_compiled_free(one);
}

/* c's output (returned) equals the one-thread output within 1e-5. */
static float *check_output(const fixture *f, const se_compiled *c, const char *what) {
    float *y = run(c, f->x, f->n_out);
    size_t bad = stt_first_mismatch(y, f->ref, f->n_out, 1e-5, 1e-5);
    ck_assert_msg(bad == (size_t)-1, "%s: %.8g vs one thread %.8g at %zu\n%s", what,
                  bad == (size_t)-1 ? 0.0 : y[bad], bad == (size_t)-1 ? 0.0 : f->ref[bad], bad, desc);
    return y;
}

static void teardown(fixture *f) { free(f->x), free(f->ref); }

/* write_three at H x H, 96 channels, stride 1, 80% zeros (c1's nonzeros take more bytes
 * than a) -> y [8, H, H]. */
static void write_heavy14(const char *path) { write_three(path, 14, 14, 96, 96, 1, 0.8, 8); }
static void write_heavy10(const char *path) { write_three(path, 10, 10, 96, 96, 1, 0.8, 8); }

START_TEST(blocked_matches_nchw) {
    fixture f;
    setup(&f, "engine-blocked-c3", write_c3, 8 * 48 * 38, 64 * 12 * 10, 3);
    for (int threads = 2; threads <= 3; threads++) {
        se_compiled *c = compile(f.path, 1, threads, SE_SCHEDULE_LAYERS, 0);
        ck_assert_msg(c->blk_T == threads, "threads %d: no blocked maps\n%s", threads, desc);
        /* x2, a, m, e (and s, d in it), f blocked; x (the input) and y (the output) not */
        ck_assert_msg(strstr(desc, "k3x3/s2 g1 epilogue[relu] kernel sparse") &&
                      strstr(desc, "tile layer maps[nchw -> blocked]"), "%s", desc);
        ck_assert_msg(strstr(desc, "maps[blocked -> blocked]"), "%s", desc);
        int blk_steps = 0;
        for (int i = 0; i < c->n_steps; i++) blk_steps += c->steps[i].blk;
        ck_assert_msg(blk_steps == 8, "threads %d: %d steps on blocks\n%s", threads, blk_steps, desc);
        /* one per-thread scratch stride for the team's steps, the blocked ones included */
        ck_assert_msg(c->team_stride > 0 && c->blk_scratch == c->team_stride, "stride %zu, blocked %zu",
                      c->team_stride, c->blk_scratch);
        ck_assert_msg(strstr(desc, "k1x1/s2 g1 epilogue[add] kernel sparse (95% zeros") &&
                      strstr(desc, "maps[blocked -> nchw]\n"), "%s", desc);
        float *y = check_output(&f, c, threads == 2 ? "2 threads" : "3 threads");
        se_compiled_free(c);
        se_compiled *nc = compile(f.path, 1, threads, SE_SCHEDULE_LAYERS, 1);
        ck_assert_int_eq(nc->blk_T, 0);
        ck_assert_ptr_null(strstr(desc, "maps["));
        free(check_output(&f, nc, "nchw maps"));
        free(y);
        se_compiled_free(nc);
    }
    /* batch 2 keeps NCHW maps */
    se_compiled *c = compile(f.path, 2, 2, SE_SCHEDULE_LAYERS, 0);
    ck_assert_int_eq(c->blk_T, 0);
    se_compiled_free(c);
    /* the columns schedule blocks the maps of the steps it runs as layers, never one a
     * section's step reads or writes (its bands copy rows of NCHW maps); bands of 4 rows
     * (automatic ones would give the section as many bands as threads, which runs as
     * layers) */
    c = compile_rows(f.path, 1, 2, SE_SCHEDULE_COLUMNS, 0, 4);
    ck_assert_msg(c->n_secs >= 1 && c->blk_T == 2, "%s", desc);
    int in_sec = 0, on_blocks = 0;
    for (int i = 0; i < c->n_steps; i++) {
        const se_step *s = &c->steps[i];
        if (s->col_sec < 0) {
            on_blocks += s->blk;
            continue;
        }
        in_sec++;
        ck_assert_msg(!s->blk && !c->blk[se__root_of(c, s->in[0])] && !c->blk[se__root_of(c, s->out)],
                      "section step %d on blocks\n%s", i, desc);
    }
    ck_assert_msg(in_sec >= 2 && on_blocks >= 2, "%d steps in sections, %d on blocks\n%s", in_sec, on_blocks, desc);
    free(check_output(&f, c, "columns, 2 threads"));
    se_compiled_free(c);
    /* automatic bands: a section of no more bands than threads runs as layers on blocked
     * maps; with NCHW maps it stays a section */
    for (int nchw = 0; nchw <= 1; nchw++) {
        c = compile(f.path, 1, 2, SE_SCHEDULE_COLUMNS, nchw);
        for (int k = 0; k < c->n_secs; k++)
            ck_assert_msg(nchw || c->secs[k].nbands > 2, "section %d: %d bands\n%s", k, c->secs[k].nbands, desc);
        ck_assert_msg(nchw ? c->n_secs >= 1 : c->blk_T == 2, "%s", desc);
        free(check_output(&f, c, nchw ? "columns, nchw maps" : "columns, automatic bands"));
        se_compiled_free(c);
    }
    teardown(&f);
}
END_TEST

/* An upsampling between blocked maps (its input rows from the block and its halo), the
 * concat of its output and an earlier blocked map, on 2 threads; at 3 threads the
 * stride-2 layer's window leaves the third block (nothing is blocked), the same output. */
START_TEST(blocked_upsample) {
    fixture f;
    setup(&f, "engine-blocked-up", write_up, 8 * 32 * 36, 8 * 32 * 36, 4);
    for (int threads = 2; threads <= 3; threads++) {
        se_compiled *c = compile(f.path, 1, threads, SE_SCHEDULE_LAYERS, 0);
        if (threads == 2)
            ck_assert_msg(strstr(desc, "Upsample      -                        -> 16x32x36 tile layer "
                                       "maps[blocked -> blocked]"), "%s", desc);
        free(check_output(&f, c, threads == 2 ? "2 threads" : "3 threads"));
        se_compiled_free(c);
    }
    teardown(&f);
}
END_TEST

/* A max pool on blocks: on 2 threads it reads its blocked input (block 1's first window
 * row from the halo) and writes blocks for the 3x3 layers and the residual Add after
 * it; on 3 threads block 2's window leaves its halo, so it reads the NCHW map and still
 * writes blocks. The one-thread output either way. */
START_TEST(blocked_maxpool) {
    fixture f;
    setup(&f, "engine-blocked-pool", write_pool, 8 * 32 * 22, 8 * 16 * 11, 8);
    for (int threads = 2; threads <= 3; threads++) {
        se_compiled *c = compile(f.path, 1, threads, SE_SCHEDULE_LAYERS, 0);
        const char *want = threads == 2 ? "MaxPool2d     -                        -> 16x16x11 tile layer maps[blocked -> blocked]"
                                        : "MaxPool2d     -                        -> 16x16x11 tile layer maps[nchw -> blocked]";
        ck_assert_msg(strstr(desc, want), "threads %d\n%s", threads, desc);
        int blk_steps = 0;
        for (int i = 0; i < c->n_steps; i++) blk_steps += c->steps[i].blk;
        ck_assert_msg(blk_steps == (threads == 2 ? 5 : 4), "threads %d: %d steps on blocks\n%s", threads, blk_steps, desc);
        free(check_output(&f, c, threads == 2 ? "2 threads" : "3 threads"));
        se_compiled_free(c);
    }
    teardown(&f);
}
END_TEST

/* A layer whose weights outweigh its input runs on blocks (its maps blocked) only where
 * the split by output channels would run its nonzeros over as many column tiles in all:
 * 14x14 (two tiles whole, one a block on 2 threads) yes, 10x10 (one tile either way) no;
 * the same outputs either way. */
START_TEST(blocked_heavy_weights) {
    for (int small = 0; small <= 1; small++) {
        fixture f;
        const int H = small ? 10 : 14;
        setup(&f, small ? "engine-blocked-heavy10" : "engine-blocked-heavy14", small ? write_heavy10 : write_heavy14,
              (size_t)8 * H * H, (size_t)8 * H * H, 6);
        se_compiled *c = compile(f.path, 1, 2, SE_SCHEDULE_LAYERS, 0);
        const se_step *s = &c->steps[1];
        ck_assert_msg(s->sparse && 8.0 * s->csr.nnz > 4.0 * 96 * H * H, "%s", desc);
        ck_assert_msg(s->blk == !small, "%dx%d: step 1 %s blocks\n%s", H, H, s->blk ? "on" : "not on", desc);
        free(check_output(&f, c, small ? "10x10, 2 threads" : "14x14, 2 threads"));
        se_compiled_free(c);
        teardown(&f);
    }
}
END_TEST

/* A 1x1 stride-2 layer whose window starts in the halo (its input rows are not split at
 * even rows on three threads). */
START_TEST(blocked_s2_window_in_halo) {
    fixture f;
    setup(&f, "engine-blocked-ds", write_ds, 8 * 28 * 19, 64 * 14 * 10, 5);
    se_compiled *c = compile(f.path, 1, 3, SE_SCHEDULE_LAYERS, 0);
    ck_assert_msg(strstr(desc, "k1x1/s2 g1 kernel sparse") && strstr(desc, "maps[blocked -> nchw]"), "%s", desc);
    free(check_output(&f, c, "3 threads"));
    se_compiled_free(c);
    teardown(&f);
}
END_TEST

/* f's model in every schedule (1, 2 with blocked maps, 3 threads; columns on 2) against
 * the dense training executor (not the engine itself: every schedule packs the same
 * way), each compiled plan first checked by layout_ok (the packing under test). */
static void match_reference(fixture *f, int (*layout_ok)(const se_compiled *c), const char *layout) {
    float *ref[1];
    size_t nref[1];
    ck_assert_int_eq(stt_engine_ref_forward(f->path, f->x, 1, ref, nref), 1);
    ck_assert_uint_eq(nref[0], f->n_out);
    memcpy(f->ref, ref[0], f->n_out * sizeof(float));
    free(ref[0]);
    static const struct { int threads, schedule; const char *what; } runs[] = {
        {1, SE_SCHEDULE_LAYERS, "1 thread"}, {2, SE_SCHEDULE_LAYERS, "2 threads, blocks"},
        {3, SE_SCHEDULE_LAYERS, "3 threads"}, {2, SE_SCHEDULE_COLUMNS, "2 threads, columns"}};
    for (int i = 0; i < 4; i++) {
        se_compiled *c = compile(f->path, 1, runs[i].threads, runs[i].schedule, 0);
        ck_assert_msg(layout_ok(c), "%s: not %s\n%s", runs[i].what, layout, desc);
        if (runs[i].threads == 2 && runs[i].schedule == SE_SCHEDULE_LAYERS)
            ck_assert_msg(c->blk_T == 2 && strstr(desc, "maps[blocked -> blocked]"), "%s", desc);
        float *y = run(c, f->x, f->n_out);
        const size_t bad = stt_first_mismatch(y, f->ref, f->n_out, 1e-4, 1e-4);
        ck_assert_msg(bad == (size_t)-1, "%s: %.8g vs reference %.8g at %zu", runs[i].what,
                      bad == (size_t)-1 ? 0.0 : y[bad], bad == (size_t)-1 ? 0.0 : f->ref[bad], bad);
        free(y);
        se_compiled_free(c);
    }
    teardown(f);
}

/* Every packing of the stride-2 layer is on tap planes. */
static int all_taps(const se_compiled *c) {
    int taps = 0;
    for (int k = 0; k < c->n_steps; k++) {
        const se_step *s = &c->steps[k];
        if (!s->sparse || s->conv.stride_h != 2) continue;
        taps = s->csr.geom.taps;
        for (int j = 0; j < s->n_blk_csr; j++) taps &= s->blk_csr[j].geom.taps;
    }
    return taps;
}

START_TEST(taps_match_reference) {
    fixture f;
    setup(&f, "engine-taps", write_wide, 8 * 20 * 84, 16 * 10 * 42, 6);
    match_reference(&f, all_taps, "on tap planes");
}
END_TEST

/* Every sparse conv runs its whole-map packing on quads, and so do its blocks' and
 * columns' packings where they exist (with AVX-512: the quad kernel's ISA). */
static int all_quads(const se_compiled *c) {
    if (st_cpu_select_isa() < ST_ISA_AVX512) return 1;
    int n = 0;
    for (int k = 0; k < c->n_steps; k++) {
        const se_step *s = &c->steps[k];
        if (!s->sparse || s->op != ST_OP_CONV2D) continue;
        if (!s->csr.q_n || (s->col_csr.nnz && !s->col_csr.q_n)) return 0;
        for (int j = 0; j < s->n_blk_csr; j++)
            if (!s->blk_csr[j].q_n) return 0;
        n++;
    }
    return n == 8;
}

/* The C3-like chain pruned in blocks of 4 output channels. */
START_TEST(quads_match_reference) {
    fixture f;
    setup(&f, "engine-quads", write_c3_quads, 8 * 48 * 38, 64 * 12 * 10, 7);
    match_reference(&f, all_quads, "on quads");
}
END_TEST

Suite *engine_blocked_suite(void) {
    Suite *s = suite_create("engine_blocked");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, blocked_matches_nchw);
    tcase_add_test(tc, blocked_upsample);
    tcase_add_test(tc, blocked_maxpool);
    tcase_add_test(tc, blocked_s2_window_in_halo);
    tcase_add_test(tc, blocked_heavy_weights);
    tcase_add_test(tc, taps_match_reference);
    tcase_add_test(tc, quads_match_reference);
    suite_add_tcase(s, tc);
    return s;
}
