/* The tensor-column schedule (engine/runtime/se_columns.c): the same compiled model run
 * as columns and as layers gives the same outputs (1e-5) on hand-built chains with odd
 * sizes, stride 2, padding, dilation, 5x5 kernels, a depthwise convolution, max / average pooling, dense and
 * sparse convolutions, a fused residual Add, batch 1 and 3, band heights forced to 1, 2
 * and 3 rows (many bands, halos) and chosen automatically; and on the cnn-small /
 * yolov5n exports. The plan says which steps run as columns. */
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

static se_compiled *compile_l2(const char *path, int batch, int threads, int schedule, int band, size_t l2) {
    se_options o;
    se_options_default(&o);
    o.batch = batch, o.threads = threads, o.schedule = schedule, o.column_rows = band, o.l2_bytes = l2;
    return stt_engine_compile(path, &o);
}

/* The test models' maps are small: automatic bands plan for a 256 KiB L2, so that their
 * sections keep more than that out of memory. */
#define TEST_L2 (256u << 10)

static se_compiled *compile_sched(const char *path, int batch, int threads, int schedule, int band) {
    return compile_l2(path, batch, threads, schedule, band, TEST_L2);
}

/* Bytes of the maps a section's steps write before its last (kept out of memory). */
static size_t inner_map_bytes(const se_compiled *c, const se_section *sec) {
    size_t n = 0;
    for (int k = sec->first; k < sec->last; k++)
        n += (size_t)c->batch * st_shape_numel(c->g->values[c->steps[k].out]) * sizeof(float);
    return n;
}

/* Runs c on x; outs[k] malloc'ed. */
static int run_all(const se_compiled *c, const float *x, float **outs, size_t *ns) {
    int n = se_num_outputs(c);
    for (int k = 0; k < n; k++) {
        int64_t d[4];
        int nd = se_output_shape(c, k, d);
        ns[k] = 1;
        for (int i = 0; i < nd; i++) ns[k] *= (size_t)d[i];
        outs[k] = malloc(ns[k] * sizeof(float));
        /* garbage, so a row the columns never write shows */
        for (size_t i = 0; i < ns[k]; i++) outs[k][i] = NAN;
    }
    se_context *xc = NULL;
    ck_assert_msg(se_context_new(c, &xc, err, sizeof err) == 0, "%s", err);
    /* the arena starts dirty too: buffers must not rely on zeros */
    for (size_t i = 0; i < c->arena_floats; i++) xc->arena[i] = 1e30f;
    ck_assert_msg(se_run(xc, x, outs, err, sizeof err) == 0, "%s", err);
    /* a second run in the same context gives the same result */
    float *again[ST_MAX_OUTPUTS];
    for (int k = 0; k < n; k++) again[k] = malloc(ns[k] * sizeof(float));
    ck_assert_msg(se_run(xc, x, again, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < n; k++) {
        ck_assert_msg(memcmp(again[k], outs[k], ns[k] * sizeof(float)) == 0, "rerun differs");
        free(again[k]);
    }
    se_context_free(xc);
    return n;
}

/* Columns (band rows forced to each of bands[], 0 = automatic) == layers within 1e-5;
 * returns the number of steps the last forced plan (3 rows) ran as columns. */
static int check_same(const char *path, const char *tag, int batch, int threads) {
    se_compiled *lay = compile_sched(path, batch, threads, SE_SCHEDULE_LAYERS, 0);
    int64_t d[4];
    int nd = se_input_shape(lay, d);
    size_t n_in = 1;
    for (int i = 0; i < nd; i++) n_in *= (size_t)d[i];
    float *x = malloc(n_in * sizeof(float));
    st_rng r;
    st_rng_seed(&r, 7 + batch);
    stt_fill_uniform(x, n_in, -1.0f, 1.0f, &r);
    float *ref[ST_MAX_OUTPUTS];
    size_t nr[ST_MAX_OUTPUTS];
    int n = run_all(lay, x, ref, nr);
    ck_assert_int_eq(lay->n_secs, 0);
    static const int bands[] = {1, 2, 3, 0};
    int cols = 0;
    for (int bi = 0; bi < 4; bi++) {
        se_compiled *col = compile_sched(path, batch, threads, SE_SCHEDULE_COLUMNS, bands[bi]);
        ck_assert_int_eq(se_describe(col, desc, sizeof desc), 0);
        if (bands[bi]) { /* forced: every section, however small */
            ck_assert_msg(col->n_secs > 0, "%s: no section:\n%s", tag, desc);
            ck_assert_msg(strstr(desc, "tile columns[section 0"), "%s", desc);
            ck_assert_int_eq(col->secs[0].band, bands[bi]);
        }
        for (int k = 0; k < col->n_secs; k++) ck_assert_int_ge(col->secs[k].nbands, bands[bi] ? 1 : 2);
        /* with threads, sections run inside the team's region (no region of their own
         * to start and end around each) */
        for (int k = 0; threads > 1 && k < col->n_secs; k++) {
            int in_run = 0;
            for (int i = 0; i < col->n_steps; i++)
                in_run |= col->steps[i].team_end > col->secs[k].last && i <= col->secs[k].first;
            ck_assert_msg(in_run, "%s: section %d outside a team run\n%s", tag, k, desc);
        }
        if (bands[bi] == 3) {
            cols = 0;
            for (int i = 0; i < col->n_steps; i++) cols += col->steps[i].col_sec >= 0;
        }
        float *out[ST_MAX_OUTPUTS];
        size_t no[ST_MAX_OUTPUTS];
        ck_assert_int_eq(run_all(col, x, out, no), n);
        for (int k = 0; k < n; k++) {
            ck_assert_uint_eq(no[k], nr[k]);
            size_t bad = stt_first_mismatch(out[k], ref[k], nr[k], 1e-5, 1e-5);
            ck_assert_msg(bad == (size_t)-1,
                          "%s batch %d threads %d band %d output %d: columns %.8g vs layers %.8g at %zu\n%s",
                          tag, batch, threads, bands[bi], k, bad == (size_t)-1 ? 0.0 : out[k][bad],
                          bad == (size_t)-1 ? 0.0 : ref[k][bad], bad, desc);
            free(out[k]);
        }
        se_compiled_free(col);
    }
    for (int k = 0; k < n; k++) free(ref[k]);
    free(x);
    se_compiled_free(lay);
    return cols;
}

/* A random initializer [K, C, R, S] (scaled by 1/sqrt(fan-in)), `prune` of it zero. */
static void conv_init(stb *b, const char *name, int K, int C, int R, int S, double prune, st_rng *r) {
    size_t n = (size_t)K * C * R * S;
    float *w = malloc(n * sizeof(float));
    stt_fill_uniform(w, n, -1.0f, 1.0f, r);
    float sc = 1.0f / sqrtf((float)(C * R * S) * (1.0f - (float)prune));
    for (size_t i = 0; i < n; i++) w[i] = st_rng_uniform(r) < prune ? 0.0f : w[i] * sc;
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    stb_init(b, wn, 4, (int64_t[]){K, C, R, S}, w);
    float *bias = malloc((size_t)K * sizeof(float));
    stt_fill_uniform(bias, (size_t)K, -0.1f, 0.1f, r);
    stb_init(b, bn, 1, (int64_t[]){K}, bias);
    free(w), free(bias);
}

static Onnx__NodeProto *conv(stb *b, const char *name, const char *in, const char *out, int k,
                             int stride, int pad, int dil) {
    char ins[200];
    snprintf(ins, sizeof ins, "%s,%s.weight,%s.bias", in, name, name);
    Onnx__NodeProto *n = stb_node(b, "Conv", name, ins, out);
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){k, k});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){stride, stride});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){pad, pad, pad, pad});
    stb_attr_ints(b, n, "dilations", 2, (int64_t[]){dil, dil});
    return n;
}

static void write_stb(stb *b, const char *path) { ck_assert_int_eq(stb_save(b, path), 0); }

/* x [3, 41, 57] -> conv 5x5 p2 (relu) -> conv 3x3 s2 p1 (leaky) -> maxpool 3x3 s1 p1 ->
 * depthwise 3x3 p1 (leaky) -> conv 3x3 dil 2 p2, 95% zeros (relu) -> avgpool 2x2 s2 -> conv 1x1 (t: two readers, ends
 * the section) -> conv 1x1 -> conv 3x3 p1 + t (residual Add from before the section) ->
 * maxpool 2x2 s2 ceil -> y. */
static void write_chain(const char *path, double prune) {
    st_rng r;
    st_rng_seed(&r, 5);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 41, 57});
    conv_init(b, "c1", 16, 3, 5, 5, 0.0, &r);
    conv_init(b, "c2", 64, 16, 3, 3, prune, &r);
    conv_init(b, "dw", 64, 1, 3, 3, 0.0, &r);
    conv_init(b, "c3", 128, 64, 3, 3, prune, &r);
    conv_init(b, "c4", 128, 128, 1, 1, prune, &r);
    conv_init(b, "c5", 128, 128, 1, 1, prune, &r);
    conv_init(b, "c6", 128, 128, 3, 3, prune, &r);
    conv(b, "c1", "x", "a1", 5, 1, 2, 1);
    stb_node(b, "Relu", "r1", "a1", "a1r");
    conv(b, "c2", "a1r", "a2", 3, 2, 1, 1);
    stb_attr_f(b, stb_node(b, "LeakyRelu", "l2", "a2", "a2r"), "alpha", 0.1f);
    Onnx__NodeProto *n = stb_node(b, "MaxPool", "mp1", "a2r", "m1");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){3, 3});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){1, 1});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_attr_i(b, conv(b, "dw", "m1", "d1", 3, 1, 1, 1), "group", 64);
    stb_attr_f(b, stb_node(b, "LeakyRelu", "ld", "d1", "d1r"), "alpha", 0.1f);
    conv(b, "c3", "d1r", "a3", 3, 1, 2, 2);
    stb_node(b, "Relu", "r3", "a3", "a3r");
    n = stb_node(b, "AveragePool", "ap", "a3r", "p3");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){2, 2});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 2});
    conv(b, "c4", "p3", "t", 1, 1, 0, 1);
    conv(b, "c5", "t", "a5", 1, 1, 0, 1);
    stb_node(b, "Relu", "r5", "a5", "a5r");
    conv(b, "c6", "a5r", "a6", 3, 1, 1, 1);
    stb_node(b, "Add", "add", "a6,t", "s6");
    n = stb_node(b, "MaxPool", "mp2", "s6", "y");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){2, 2});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 2});
    stb_attr_i(b, n, "ceil_mode", 1);
    stb_output(b, "y");
    write_stb(b, path);
}

/* x [8, 37, 45] -> conv 3x3 s2 p1, 90% zeros (relu) -> conv 3x3 p1, 90% zeros -> y: a
 * section that starts with a banded sparse step, whose inner bands read the map in
 * place (with its channel stride) and whose edge bands read a padded copy. */
static void write_strided_head(const char *path) {
    st_rng r;
    st_rng_seed(&r, 9);
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 8, 37, 45});
    conv_init(b, "h1", 32, 8, 3, 3, 0.9, &r);
    conv_init(b, "h2", 32, 32, 3, 3, 0.9, &r);
    conv(b, "h1", "x", "a1", 3, 2, 1, 1);
    stb_node(b, "Relu", "r1", "a1", "a1r");
    conv(b, "h2", "a1r", "y", 3, 1, 1, 1);
    stb_output(b, "y");
    write_stb(b, path);
}

START_TEST(hand_built_chains) {
    char dir[512], path[700], tag[64];
    stt_tmpdir(dir, sizeof dir, "engine-columns");
    for (int pruned = 0; pruned <= 1; pruned++) {
        snprintf(path, sizeof path, "%s/chain-%d.onnx", dir, pruned);
        write_chain(path, pruned ? 0.95 : 0.0);
        snprintf(tag, sizeof tag, "chain-%s", pruned ? "p95" : "dense");
        if (pruned) { /* the sparse kernels are in the columns */
            se_compiled *c = compile_sched(path, 1, 2, SE_SCHEDULE_COLUMNS, 2);
            int sparse_cols = 0;
            for (int i = 0; i < c->n_steps; i++)
                sparse_cols += c->steps[i].col_sec >= 0 && c->steps[i].sparse;
            ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
            ck_assert_msg(sparse_cols >= 2, "no sparse steps in columns:\n%s", desc);
            /* two sections: c1..c4 (t has two readers), c5..mp2 */
            ck_assert_msg(c->n_steps == 10, "%s", desc);
            ck_assert_msg(c->n_secs == 2, "%s", desc);
            ck_assert_int_eq(c->secs[0].first, 0);
            se_compiled_free(c);
        }
        for (int batch = 1; batch <= 3; batch += 2)
            for (int threads = 1; threads <= 2; threads++) {
                int cols = check_same(path, tag, batch, threads);
                ck_assert_int_eq(cols, 10); /* every step */
            }
    }
    snprintf(path, sizeof path, "%s/strided-head.onnx", dir);
    write_strided_head(path);
    se_compiled *c = compile_sched(path, 1, 1, SE_SCHEDULE_COLUMNS, 2);
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    ck_assert_msg(c->n_secs == 1 && c->steps[0].col_sec == 0 && c->steps[0].sparse && !c->steps[0].col_direct,
                  "the first step is no banded sparse step of a section:\n%s", desc);
    se_compiled_free(c);
    for (int batch = 1; batch <= 3; batch += 2)
        for (int threads = 1; threads <= 2; threads++)
            ck_assert_int_eq(check_same(path, "strided-head", batch, threads), 2);
}
END_TEST

/* cnn-small and yolov5n exports: columns == layers, dense and 95% pruned (and yolov5n
 * at 320, as benchmarked). */
START_TEST(exported_models) {
    static const char *const models[] = {"cnn-small", "yolov5n"};
    const char *name = models[_i];
    char dir[512], path[700], tag[96];
    stt_tmpdir(dir, sizeof dir, "engine-columns-models");
    for (int pruned = 0; pruned <= 1; pruned++) {
        snprintf(tag, sizeof tag, "%s-%s", name, pruned ? "p95" : "dense");
        snprintf(path, sizeof path, "%s/%s.onnx", dir, tag);
        int size = _i ? 96 : 28;
        stt_engine_write_model(path, name, size, pruned ? 0.95 : 0.0, _i, 60 + pruned);
        for (int batch = 1; batch <= 3; batch += 2) check_same(path, tag, batch, 2);
        if (_i && !pruned) { /* a Winograd stem (AVX-512) runs as a layer, even in 4-row bands */
            se_compiled *c = compile_sched(path, 1, 1, SE_SCHEDULE_COLUMNS, 4);
            ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
            ck_assert_msg(c->steps[0].op == ST_OP_CONV2D && (c->steps[0].dconv.wg ? c->steps[0].col_sec < 0 : c->n_secs > 0),
                          "%s", desc);
            se_compiled_free(c);
            /* on two threads its parts work where the other team steps' threads do */
            c = compile_sched(path, 1, 2, SE_SCHEDULE_LAYERS, 0);
            if (c->steps[0].dconv.wg)
                ck_assert_msg(c->team_stride >= st__wino_part_floats(&c->steps[0].conv) &&
                                  (!c->blk_T || c->blk_scratch == c->team_stride),
                              "stride %zu\n%s", c->team_stride, desc);
            se_compiled_free(c);
        }
    }
    if (_i) { /* the benchmark's shape: yolov5n @320, 95% pruned, batch 1 */
        snprintf(path, sizeof path, "%s/%s-320.onnx", dir, name);
        stt_engine_write_model(path, name, 320, 0.95, 1, 62);
        check_same(path, "yolov5n-320-p95", 1, 2);
    }
}
END_TEST

/* The layer schedule's plan has no sections; the columns plan's arena holds no
 * section-inner map and describes the band. */
START_TEST(plan_describes_columns) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-columns-plan");
    snprintf(path, sizeof path, "%s/chain.onnx", dir);
    write_chain(path, 0.95);
    se_compiled *lay = compile_sched(path, 1, 2, SE_SCHEDULE_LAYERS, 0);
    se_compiled *col = compile_sched(path, 1, 1, SE_SCHEDULE_COLUMNS, 0); /* one thread */
    ck_assert_int_eq(se_describe(lay, desc, sizeof desc), 0);
    ck_assert_msg(!strstr(desc, "tile columns"), "%s", desc);
    ck_assert_int_eq(se_describe(col, desc, sizeof desc), 0);
    /* automatic bands: the first section is split (a section that would be one band per
     * image runs as layers) */
    ck_assert_msg(col->n_secs >= 1 && col->secs[0].first == 0 && col->secs[0].last == 6, "%s", desc);
    ck_assert_msg(strstr(desc, "schedule columns ("), "%s", desc);
    ck_assert_msg(strstr(desc, "tile columns[section 0 steps 0-6: band "), "%s", desc);
    /* the 95% 3x3 dilated conv reads its band in place (st_csr_pack_band) */
    ck_assert_msg(strstr(desc, "k3x3/s1 g1 epilogue[relu] kernel sparse") &&
                      strstr(desc, ", read in place]"), "%s", desc);
    for (int k = 0; k < col->n_secs; k++) ck_assert_int_ge(col->secs[k].nbands, 2);
    for (int i = 0; i < col->n_steps; i++) {
        const se_step *s = &col->steps[i];
        if (s->col_sec >= 0 && col->secs[s->col_sec].last != i)
            ck_assert_int_lt(col->off[s->out], 0); /* not in the arena */
    }
    /* automatic band: the working set fits half the L2 unless one row is already bigger */
    for (int k = 0; k < col->n_secs; k++)
        ck_assert_msg(col->secs[k].ws_bytes <= col->l2_bytes / 2 || col->secs[k].band == 1, "%s", desc);
    /* a section runs as columns only where its inner maps (on one thread: all of them)
     * exceed the L2: planned for an L2 just as big, the same steps run as layers; just
     * smaller, they stay a section */
    ck_assert_int_eq(col->l2_bytes, TEST_L2);
    const size_t inner = inner_map_bytes(col, &col->secs[0]);
    ck_assert_msg(inner > TEST_L2, "%zu\n%s", inner, desc);
    for (int less = 0; less <= 1; less++) {
        se_compiled *at = compile_l2(path, 1, 1, SE_SCHEDULE_COLUMNS, 0, inner - (less ? 4096 : 0));
        ck_assert_int_eq(se_describe(at, desc, sizeof desc), 0);
        const int sec0 = at->n_secs >= 1 && at->secs[0].first == 0;
        ck_assert_msg(sec0 == less, "L2 %zu, inner maps %zu:\n%s", at->l2_bytes, inner, desc);
        se_compiled_free(at);
    }
    /* on two threads each holds half of them: an L2 that one thread's inner maps
     * exceed but half of them do not makes the same steps layers */
    se_compiled *two = compile_l2(path, 1, 2, SE_SCHEDULE_COLUMNS, 0, inner - 4096);
    ck_assert_int_eq(se_describe(two, desc, sizeof desc), 0);
    ck_assert_msg(!(two->n_secs >= 1 && two->secs[0].first == 0), "%s", desc);
    se_compiled_free(two);
    se_compiled_free(lay);
    se_compiled_free(col);
}
END_TEST

Suite *engine_columns_suite(void) {
    Suite *s = suite_create("engine_columns");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, hand_built_chains);
    tcase_add_loop_test(tc, exported_models, 0, 2);
    tcase_add_test(tc, plan_describes_columns);
    suite_add_tcase(s, tc);
    return s;
}
