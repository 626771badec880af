/* Sparse vs dense convolution benchmark on the layer shapes that carry the FLOPs of
 * YOLOv5n/s (v6 architecture) and ResNet-18, at several unstructured sparsities.
 *   bench_sparse [--threads N] [--model yolov5n|yolov5s|resnet18|all] [--imgsz 320]
 *                [--batch 16] [--sparsity 0,50,70,80,90,95,98] [--min-ms 150] [--quick]
 * Dense = the library's conv (im2col + OpenBLAS sgemm); sparse = st_conv2d_sparse_*.
 * Everything is measured in one run, side by side, with the environment as it is (the
 * OpenBLAS kernels in use are printed). Times are the best of several repetitions.
 * Per layer and sparsity: ms of forward, backward-input and weight gradient for both,
 * the speedup of fwd+bwd combined, dense-equivalent GFLOP/s of the sparse fwd+bwd, and
 * what st_sparse_should_use picks. Then a FLOP-weighted summary per model and sparsity
 * (layers counted as often as they occur): all-sparse and cost-model-picked speedups. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_cli.h"
#include "st_ops.h"
#include "st_rng.h"
#include "st_sparse.h"

#include <cblas.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    st_conv2d c;
    int count;
    char name[64];
} layer;

#define MAX_LAYERS 128
typedef struct {
    const char *model;
    layer l[MAX_LAYERS];
    int n;
} model;

static void add(model *m, const char *kind, int N, int C, int H, int K, int k, int s, int p) {
    st_conv2d c = {.N = N, .C = C, .H = H, .W = H, .K = K, .R = k, .S = k, .stride_h = s,
                   .stride_w = s, .pad_h = p, .pad_w = p, .dil_h = 1, .dil_w = 1, .groups = 1};
    if (st_conv2d_init(&c) != 0) return;
    for (int i = 0; i < m->n; i++)
        if (!memcmp(&m->l[i].c, &c, sizeof c)) {
            m->l[i].count++;
            return;
        }
    if (m->n == MAX_LAYERS) return;
    layer *l = &m->l[m->n++];
    l->c = c;
    l->count = 1;
    snprintf(l->name, sizeof l->name, "%s %dx%d s%d %d->%d @%d", kind, k, k, s, C, K, c.P);
}

/* YOLOv5 v6: channels scaled to multiples of 8, repeats by depth; a 1x1 Detect per scale. */
static int ch(int c, double w) { return (int)ceil(c * w / 8.0) * 8; }
static int rep(int n, double d) { return n > 1 ? (int)fmax(round(n * d), 1) : n; }

static void c3(model *m, int N, int c1, int c2, int n, int H) {
    int c_ = c2 / 2;
    add(m, "c3.cv1", N, c1, H, c_, 1, 1, 0);
    add(m, "c3.cv2", N, c1, H, c_, 1, 1, 0);
    for (int i = 0; i < n; i++) {
        add(m, "m.cv1", N, c_, H, c_, 1, 1, 0);
        add(m, "m.cv2", N, c_, H, c_, 3, 1, 1);
    }
    add(m, "c3.cv3", N, 2 * c_, H, c2, 1, 1, 0);
}

static void yolov5(model *m, int N, int img, double w, double d) {
    int c64 = ch(64, w), c128 = ch(128, w), c256 = ch(256, w), c512 = ch(512, w),
        c1024 = ch(1024, w);
    int s2 = img / 2, s4 = img / 4, s8 = img / 8, s16 = img / 16, s32 = img / 32;
    add(m, "stem", N, 3, img, c64, 6, 2, 2);
    add(m, "down", N, c64, s2, c128, 3, 2, 1);
    c3(m, N, c128, c128, rep(3, d), s4);
    add(m, "down", N, c128, s4, c256, 3, 2, 1);
    c3(m, N, c256, c256, rep(6, d), s8);
    add(m, "down", N, c256, s8, c512, 3, 2, 1);
    c3(m, N, c512, c512, rep(9, d), s16);
    add(m, "down", N, c512, s16, c1024, 3, 2, 1);
    c3(m, N, c1024, c1024, rep(3, d), s32);
    add(m, "sppf.cv1", N, c1024, s32, c512, 1, 1, 0);
    add(m, "sppf.cv2", N, 4 * c512, s32, c1024, 1, 1, 0);
    add(m, "head", N, c1024, s32, c512, 1, 1, 0);
    c3(m, N, 2 * c512, c512, rep(3, d), s16);
    add(m, "head", N, c512, s16, c256, 1, 1, 0);
    c3(m, N, 2 * c256, c256, rep(3, d), s8);
    add(m, "down", N, c256, s8, c256, 3, 2, 1);
    c3(m, N, 2 * c256, c512, rep(3, d), s16);
    add(m, "down", N, c512, s16, c512, 3, 2, 1);
    c3(m, N, 2 * c512, c1024, rep(3, d), s32);
    add(m, "detect", N, c256, s8, 45, 1, 1, 0);
    add(m, "detect", N, c512, s16, 45, 1, 1, 0);
    add(m, "detect", N, c1024, s32, 45, 1, 1, 0);
}

static void resnet18(model *m, int N) {
    add(m, "conv1", N, 3, 224, 64, 7, 2, 3);
    int c = 64, H = 56;
    for (int stage = 0; stage < 4; stage++) {
        int co = 64 << stage;
        for (int b = 0; b < 2; b++) {
            int s = (stage > 0 && b == 0) ? 2 : 1;
            add(m, "block", N, c, H, co, 3, s, 1);
            int Ho = (H + 2 - 3) / s + 1;
            add(m, "block", N, co, Ho, co, 3, 1, 1);
            if (s == 2) add(m, "downsample", N, c, H, co, 1, 2, 0);
            c = co;
            H = Ho;
        }
    }
    add(m, "fc", N, 512, 1, 1000, 1, 1, 0);
}

/* ---------------------------------------------------------------- timing */
typedef struct {
    const st_conv2d *c;
    const st_csr *m;
    float *x, *w, *y, *dy, *dx, *dw, *dval, *scratch;
    int what; /* 0 fwd, 1 dx, 2 dw */
    int sparse;
} job;

static void run(job *j) {
    st_error err;
    if (!j->sparse) {
        if (j->what == 0) st_conv2d_forward(j->c, j->y, j->x, j->w, NULL, j->scratch);
        else if (j->what == 1) st_conv2d_backward(j->c, j->dx, NULL, NULL, j->dy, j->x, j->w, j->scratch);
        else st_conv2d_backward(j->c, NULL, j->dw, NULL, j->dy, j->x, j->w, j->scratch);
    } else {
        if (j->what == 0) st_conv2d_sparse_forward(j->c, j->m, j->y, j->x, NULL, j->scratch, &err);
        else if (j->what == 1)
            st_conv2d_sparse_backward(j->c, j->m, j->dx, NULL, NULL, j->dy, j->x, j->scratch, &err);
        else st_conv2d_sparse_backward(j->c, j->m, NULL, j->dval, NULL, j->dy, j->x, j->scratch, &err);
    }
}

static double min_ms = 150.0;

/* Best time in ms: one warm-up, then repetitions for about min_ms (at least 3, at most 50). */
static double time_job(job *j) {
    double t0 = now();
    run(j);
    double first = now() - t0, best = first, spent = 0;
    for (int r = 0; r < 50 && (r < 3 || spent * 1e3 < min_ms); r++) {
        t0 = now();
        run(j);
        double t = now() - t0;
        spent += t;
        if (t < best) best = t;
    }
    return best * 1e3;
}

static void fill(float *p, size_t n, st_rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * st_rng_uniform(r) - 1.0f;
}

#define MAX_SP 16
typedef struct {
    double dense[3], sparse[MAX_SP][3];
    int pick[MAX_SP];
} result;

static void bench_model(model *m, const double *sp, int nsp) {
    printf("\n== %s: %d distinct conv shapes, batch %d\n", m->model, m->n, m->l[0].c.N);
    printf("%-34s %3s %7s | %7s %7s %7s | %4s %7s %7s %7s %7s %7s %5s\n", "layer", "cnt",
           "GFLOP", "d.fwd", "d.bwdI", "d.bwdW", "sp%", "s.fwd", "s.bwdI", "s.bwdW", "x f+b",
           "eqGF/s", "model");
    result *res = calloc(m->n, sizeof *res);
    st_rng r;
    st_rng_seed(&r, 1234);
    for (int li = 0; li < m->n; li++) {
        const st_conv2d *c = &m->l[li].c;
        const size_t nx = (size_t)c->N * c->C * c->H * c->W, ny = (size_t)c->N * c->K * c->P * c->Q;
        const size_t nw = (size_t)c->K * c->C / c->groups * c->R * c->S;
        const double gflop = 2.0 * nw * c->N * c->P * c->Q * 1e-9;
        /* 64-byte aligned like the executor's arena (unaligned rows cost the sparse
         * kernels about 1.6x: every vector load splits across two cache lines) */
        float *x = st_alloc(nx * 4), *y = st_alloc(ny * 4), *dy = st_alloc(ny * 4);
        float *dx = st_calloc(nx * 4), *w = st_alloc(nw * 4), *dw = st_calloc(nw * 4);
        float *ws = st_alloc(nw * 4);
        unsigned char *mask = malloc(nw);
        fill(x, nx, &r), fill(dy, ny, &r), fill(w, nw, &r);
        size_t nsd = st_conv2d_scratch_floats(c);
        float *sd = st_alloc((nsd ? nsd : 1) * 4);
        job j = {.c = c, .x = x, .w = w, .y = y, .dy = dy, .dx = dx, .dw = dw, .scratch = sd};
        for (int k = 0; k < 3; k++) {
            j.what = k;
            res[li].dense[k] = time_job(&j);
        }
        double dtot = res[li].dense[0] + res[li].dense[1] + res[li].dense[2];
        for (int s = 0; s < nsp; s++) {
            for (size_t i = 0; i < nw; i++) {
                mask[i] = st_rng_uniform(&r) >= sp[s];
                ws[i] = mask[i] ? w[i] : 0.0f;
            }
            st_csr csr = {0};
            st_error err;
            if (st_csr_pack(&csr, c, ws, mask, &err) != ST_OK) {
                fprintf(stderr, "bench_sparse: %s\n", err.msg);
                exit(1);
            }
            size_t ns = st_conv2d_sparse_scratch_floats(&csr);
            float *ss = st_alloc((ns ? ns : 1) * 4), *dval = st_calloc((csr.nnz + 1) * 4);
            job js = {.c = c, .m = &csr, .x = x, .y = y, .dy = dy, .dx = dx, .dval = dval,
                      .scratch = ss, .sparse = 1};
            for (int k = 0; k < 3; k++) {
                js.what = k;
                res[li].sparse[s][k] = time_job(&js);
            }
            res[li].pick[s] = st_sparse_should_use(c, sp[s]);
            double stot = res[li].sparse[s][0] + res[li].sparse[s][1] + res[li].sparse[s][2];
            printf("%-34s %3d %7.3f | %7.2f %7.2f %7.2f | %4.0f %7.2f %7.2f %7.2f %6.2fx %7.0f %5s\n",
                   s == 0 ? m->l[li].name : "", m->l[li].count, gflop, res[li].dense[0],
                   res[li].dense[1], res[li].dense[2], sp[s] * 100, res[li].sparse[s][0],
                   res[li].sparse[s][1], res[li].sparse[s][2], dtot / stot,
                   3 * gflop / stot * 1e3, res[li].pick[s] ? "sparse" : "dense");
            fflush(stdout);
            st_free(ss), st_free(dval);
            st_csr_free(&csr);
        }
        st_free(x), st_free(y), st_free(dy), st_free(dx), st_free(w), st_free(dw), st_free(ws);
        st_free(sd), free(mask);
    }
    printf("-- %s summary (FLOP-weighted: every layer times its count; fwd+bwdI+bwdW)\n", m->model);
    printf("%5s %10s %10s %8s %10s %8s %8s %8s\n", "sp%", "dense ms", "sparse ms", "x all",
           "picked ms", "x picked", "x fwd", "x bwd");
    for (int s = 0; s < nsp; s++) {
        double d = 0, sa = 0, pk = 0, df = 0, sf = 0, db = 0, sb = 0;
        for (int li = 0; li < m->n; li++) {
            const result *q = &res[li];
            double dt = q->dense[0] + q->dense[1] + q->dense[2];
            double st = q->sparse[s][0] + q->sparse[s][1] + q->sparse[s][2];
            int cnt = m->l[li].count;
            d += cnt * dt;
            sa += cnt * st;
            pk += cnt * (q->pick[s] ? st : dt);
            df += cnt * q->dense[0];
            sf += cnt * q->sparse[s][0];
            db += cnt * (q->dense[1] + q->dense[2]);
            sb += cnt * (q->sparse[s][1] + q->sparse[s][2]);
        }
        printf("%5.0f %10.1f %10.1f %7.2fx %10.1f %7.2fx %7.2fx %7.2fx\n", sp[s] * 100, d, sa,
               d / sa, pk, d / pk, df / sf, db / sb);
    }
    free(res);
}

static int usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: bench_sparse [--threads N] [--model yolov5n|yolov5s|resnet18|all]\n"
            "                    [--imgsz 320] [--batch 16] [--sparsity 0,50,70,80,90,95,98]\n"
            "                    [--min-ms 150] [--quick]\n");
    return code;
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv); /* like the front ends (see st_cli.h) */
    int threads = 0, imgsz = 320, batch = 16;
    const char *which = "all", *sps = "0,50,70,80,90,95,98";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(0);
        if (!strcmp(a, "--quick")) {
            min_ms = 30;
            continue;
        }
        if (!v) return usage(2);
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--model")) which = v;
        else if (!strcmp(a, "--imgsz")) imgsz = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--sparsity")) sps = v;
        else if (!strcmp(a, "--min-ms")) min_ms = atof(v);
        else return usage(2);
        i++;
    }
    if (imgsz < 32 || imgsz % 32 || batch < 1) return usage(2);
    double sp[MAX_SP];
    int nsp = 0;
    for (const char *p = sps; *p && nsp < MAX_SP;) {
        sp[nsp++] = atof(p) / 100.0;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("bench_sparse: threads %d, OpenBLAS core %s (OPENBLAS_CORETYPE=%s), "
           "OMP_WAIT_POLICY=%s, sparse ISA %s, batch %d, yolo imgsz %d\n",
           omp_get_max_threads(), openblas_get_corename(), ct ? ct : "(unset)",
           wp ? wp : "(unset)", st_isa_name(st_cpu_select_isa()), batch, imgsz);
    int all = !strcmp(which, "all");
    static model m;
    if (all || !strcmp(which, "yolov5n")) {
        memset(&m, 0, sizeof m);
        m.model = "yolov5n";
        yolov5(&m, batch, imgsz, 0.25, 0.33);
        bench_model(&m, sp, nsp);
    }
    if (all || !strcmp(which, "yolov5s")) {
        memset(&m, 0, sizeof m);
        m.model = "yolov5s";
        yolov5(&m, batch, imgsz, 0.50, 0.33);
        bench_model(&m, sp, nsp);
    }
    if (all || !strcmp(which, "resnet18")) {
        memset(&m, 0, sizeof m);
        m.model = "resnet18";
        resnet18(&m, batch);
        bench_model(&m, sp, nsp);
    }
    return 0;
}
