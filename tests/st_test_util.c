#include "st_test_util.h"

#include "st_graph.h"

#include "st_ckpt.h"

#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void stt_fill_uniform(float *x, size_t n, float lo, float hi, st_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * st_rng_uniform(r);
}

double stt_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= m)) m = e; /* NaN propagates as "bad" */
    }
    return m;
}

size_t stt_first_mismatch(const float *a, const float *b, size_t n, double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) return i;
    }
    return (size_t)-1;
}

const char *stt_source_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", ST_SOURCE_DIR, rel);
    return buf;
}

const char *stt_tmpdir(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "%s/test-tmp", ST_BINARY_DIR);
    mkdir(buf, 0755);
    snprintf(buf, cap, "%s/test-tmp/%s-%d", ST_BINARY_DIR, tag, (int)getpid());
    mkdir(buf, 0755);
    return buf;
}

void stt_skip(const char *why) { fprintf(stderr, "SKIP: %s\n", why); }

int stt_run(const char *cmd) {
    int s = system(cmd);
    if (s == -1) return -1;
    if (WIFEXITED(s)) return WEXITSTATUS(s);
    return 128 + (WIFSIGNALED(s) ? WTERMSIG(s) : 0);
}

/* Compares every tensor of two checkpoints bit for bit (the history, which holds
 * timings, only by size). */
void stt_assert_same_ckpt(const char *a, const char *b) {
    st_ckpt *ca = NULL, *cb = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_ckpt_read(a, &ca, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_read(b, &cb, &err), ST_OK);
    int n = st_ckpt_num_tensors(ca), compared = 0;
    ck_assert_int_eq(n, st_ckpt_num_tensors(cb));
    for (int i = 0; i < n; i++) {
        const st_ckpt_tensor *ta = st_ckpt_tensor_at(ca, i);
        const st_ckpt_tensor *tb = st_ckpt_find(cb, ta->name);
        ck_assert_msg(tb != NULL, "missing %s", ta->name);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        if (strcmp(ta->name, "state/history") == 0) continue;
        ck_assert_msg(memcmp(ta->data, tb->data, ta->nbytes) == 0, "%s differs", ta->name);
        compared++;
    }
    ck_assert_int_gt(compared, 20);
    st_ckpt_free(ca);
    st_ckpt_free(cb);
}

static void put_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

/* Images whose class decides a bright horizontal band, plus noise: learnable quickly. */
static void write_idx_split(const char *dir, const char *prefix, int n, uint64_t seed) {
    char p[600];
    st_rng r;
    st_rng_seed(&r, seed);
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(p, "wb");
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(p, "wb");
    ck_assert(fi && fl);
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)n), put_be32(fi, 28), put_be32(fi, 28);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        unsigned char lab = (unsigned char)st_rng_below(&r, 10), img[784];
        for (int k = 0; k < 784; k++) {
            int row = k / 28;
            int on = row / 3 == lab;
            img[k] = (unsigned char)(on ? 160 + st_rng_below(&r, 90) : st_rng_below(&r, 90));
        }
        fwrite(img, 1, 784, fi);
        fwrite(&lab, 1, 1, fl);
    }
    fclose(fi);
    fclose(fl);
}

const char *stt_make_idx_dataset(char *buf, size_t cap) {
    stt_tmpdir(buf, cap, "idxdata");
    write_idx_split(buf, "train", 320, 1);
    write_idx_split(buf, "t10k", 96, 2);
    return buf;
}


int stt_run_sparsetrain(const char *args, char *out, size_t cap) {
    return stt_run_tool("sparsetrain", args, out, cap);
}

int stt_run_tool(const char *tool, const char *args, char *out, size_t cap) {
    char cmd[4096], tmp[512], f[600];
    stt_tmpdir(tmp, sizeof tmp, "cli");
    snprintf(f, sizeof f, "%s/out.txt", tmp);
    snprintf(cmd, sizeof cmd, "%s/%s %s >%s 2>&1", ST_BINARY_DIR, tool, args, f);
    int rc = stt_run(cmd);
    FILE *fp = fopen(f, "r");
    size_t n = fp ? fread(out, 1, cap - 1, fp) : 0;
    out[n] = 0;
    if (fp) fclose(fp);
    return rc;
}

/* The reference tools (PyTorch, onnx checker, onnxruntime-node) are installed through
 * the dependency script the first time a test needs them; if that fails the caller
 * skips with the reason. Checked once per process. */
int stt_need_peers(void) {
    static int state = -1; /* test-process cache, not library state */
    if (state >= 0) {
        if (!state) stt_skip("ONNX/PyTorch reference tools unavailable (see above)");
        return state;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/tools/install-deps.sh --peers >/dev/null 2>&1 && "
             "/usr/bin/python3 -c 'import onnx, torch, torchvision, numpy' 2>/dev/null && "
             "test -f \"${ST_PEERS_DIR:-%s/.peers}/node_modules/onnxruntime-node/package.json\"",
             ST_SOURCE_DIR, ST_SOURCE_DIR);
    state = stt_run(cmd) == 0;
    if (!state)
        stt_skip("could not install the ONNX/PyTorch reference tools (tools/install-deps.sh "
                 "--peers failed: no network or no root?); interoperability checks skipped");
    return state;
}

int stt_ort_run(const char *model, const char *in_npy, const char *out_npy) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "node %s/tools/ort_run.js '%s' '%s' '%s' --threads 1", ST_SOURCE_DIR,
             model, in_npy, out_npy);
    return stt_run(cmd);
}

int stt_onnx_check(const char *model) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), "
             "full_check=True)\" '%s'", model);
    return stt_run(cmd);
}

/* ---- graphs with non-default values (export, engine and ONNX tests) ---- */

/* Non-default BN statistics and affine parameters, so folding is really exercised. */
void stt_randomize_bn(st_graph *g, st_rng *r) {
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        if (nd->op != ST_OP_BATCHNORM) continue;
        size_t c = g->params[nd->params[0]].numel;
        stt_fill_uniform(st_param_data(g, nd->params[0]), c, 0.5f, 1.5f, r);
        stt_fill_uniform(st_param_data(g, nd->params[1]), c, -0.5f, 0.5f, r);
        stt_fill_uniform(st_param_data(g, nd->params[2]), c, -0.3f, 0.3f, r);
        stt_fill_uniform(st_param_data(g, nd->params[3]), c, 0.5f, 2.0f, r);
    }
}

/* Zeroes exactly floor(frac * numel) random entries (mask and weight) of parameter p. */
void stt_prune_param(st_graph *g, int p, double frac, st_rng *r) {
    size_t n = g->params[p].numel, k = (size_t)(frac * (double)n);
    size_t *idx = malloc(n * sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = 0; i < k; i++) { /* partial Fisher-Yates */
        size_t j = i + (size_t)(st_rng_uniform(r) * (double)(n - i));
        if (j >= n) j = n - 1;
        size_t t = idx[i];
        idx[i] = idx[j], idx[j] = t;
        st_param_mask(g, p)[idx[i]] = 0;
        st_param_data(g, p)[idx[i]] = 0.0f;
    }
    free(idx);
}

void stt_prune_all(st_graph *g, double frac, st_rng *r) {
    for (int p = 0; p < g->n_params; p++)
        if (g->params[p].prunable) stt_prune_param(g, p, frac, r);
}
