/* Private to engine/runtime: the loaded model, the compiled plan and the contexts behind
 * sparseengine.h.
 *
 * A plan is a list of steps in execution order. A step is one graph node, or a
 * convolution / linear layer with what was folded or fused into it: a BatchNorm folded
 * into its weights and bias, then an epilogue of up to SE_MAX_EPI elementwise ops
 * (activations and residual Adds, in graph order) applied to the layer's output right
 * after the kernel, block by block, in place. Flatten, Dropout (eval) and Identity make
 * no step: their output is the same buffer as their input (values are mapped to a
 * "root" value that owns the buffer).
 *
 * Memory: every root value a step writes gets an offset in one arena, assigned by a
 * best-fit planner over the steps in order (a buffer is returned after its last
 * reader; graph outputs live to the end); a scratch region (im2col, the sparse
 * kernels' per-thread bands, max-pool indices, BN statistics) sized for the largest
 * step sits at the start. The graph input is read from the caller's array in place.
 *
 * Ownership: a compiled model holds a reference on its se_model (whose graph it reads),
 * its folded weights and packed sparse weights; after se_compile it is never written.
 * A context holds the arena and the value pointer table. */
#ifndef SE_INTERNAL_H
#define SE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sparseengine.h"
#include "st_dense.h"
#include "act_kernels.h"
#include "st_graph.h"
#include "st_ops.h"
#include "st_sparse.h"

#define SE_MAX_EPI 4

/* Epilogue op kinds: those of the fused row kernel (act_kernels.h). */
enum { SE_EPI_RELU = ST_EPI_OP_RELU, SE_EPI_LEAKYRELU = ST_EPI_OP_LEAKYRELU,
       SE_EPI_SILU = ST_EPI_OP_SILU, SE_EPI_SIGMOID = ST_EPI_OP_SIGMOID,
       SE_EPI_CLIP = ST_EPI_OP_CLIP, SE_EPI_ADD = ST_EPI_OP_ADD };

typedef struct se_epi {
    int kind;
    float a, b;  /* leaky slope; clip lo, hi */
    int value;   /* SE_EPI_ADD: the root value added */
} se_epi;

typedef struct se_step {
    st_op_type op;      /* of the main node */
    int node;           /* main node index in the graph (names, attributes) */
    int n_in;
    int in[ST_MAX_INPUTS]; /* root values read (the main node's inputs) */
    int out;            /* root value written (the last fused node's output) */
    int bn_node;        /* folded BatchNorm node, or -1 */
    int n_epi;
    se_epi epi[SE_MAX_EPI];
    st_epi_rows_fn epi_rows; /* the epilogue's kernel for the compiled ISA */
    /* conv / linear */
    st_conv2d conv;     /* N = the compiled batch */
    int in_f, out_f;    /* linear */
    const float *w, *b; /* weights in use: folded copies (owned below) or the graph's */
    float *w_own, *b_own;
    int sparse;         /* 1: packed weights and the sparse kernels */
    int dense_bias_in_epi; /* dense conv, one sample per gemm: bias added by the epilogue */
    int packed_dense;   /* 1: dense on the packed microkernels (dconv), else im2col + BLAS */
    int dense_parts;    /* packed dense with a part entry (the row-owning team can split it) */
    st_dense_conv dconv;
    st_csr csr;
    double sparsity;    /* fraction of exact zeros of w */
    double speedup;     /* modelled dense/sparse time */
    double macs;        /* dense multiply-adds of this layer at the compiled batch */
    char why[160];      /* the kernel choice and its reason */
    st_pool pool;       /* pools */
    int elided;         /* concat (batch 1) whose inputs were written in place into its
                           output's channel ranges: nothing to run */
    int team;           /* its role in a row-owning team (se_run.c), set by se__plan_teams */
    int team_end;       /* first step of a team run: the run's end (exclusive), else 0 */
    /* tensor columns (se_columns.c): the step's band sub-problem, batch 1, fixed shape:
     * col_rows output rows from col_rin padded input rows (pad_h 0: rows outside the map
     * are filled with col_pad) */
    int col_sec;        /* section index, or -1: runs as a layer */
    int col_rows, col_rin;
    float col_pad;      /* 0 (conv, avg pool) or -inf (max pool) */
    st_conv2d col_conv;
    st_csr col_csr;     /* sparse: packed for col_conv */
    int col_direct;     /* col_csr by st_csr_pack_band: col_conv is the band as a "same"
                           conv of col_rows rows, read pad_h rows into the input band; the
                           last step of a section writes its band into the map itself */
    st_csr col_csr_in;  /* a section's first step, 1x1 in direct mode: packed to read its
                           band in place from the input map (channels H*W apart) */
    int col_in_place;   /* col_csr_in is packed */
    st_pool col_pool;
    /* maps blocked by thread (se_blocked.c): this step reads or writes a blocked map;
     * block b runs blk_conv[blk_pick[b]] on blk_csr[blk_pick[b]]: a stride-1 layer packed
     * by st_csr_pack_band for the block's rows (input channels a blocked map's or the
     * NCHW map's stride apart), a stride-2 one in banded mode on the block's window of
     * input rows */
    int blk;
    int n_blk_csr;
    st_conv2d *blk_conv;
    st_csr *blk_csr;
    int *blk_pick;
} se_step;

/* A section: steps [first, last] run column by column (bands of `band` rows of the last
 * step's output, full width), each thread with its own buffers of thread_floats floats
 * at the start of the arena. */
#define SE_COL_MAX_STEPS 32
typedef struct se_section {
    int first, last;
    int band, nbands;   /* output rows per band of the last step, bands per image */
    size_t thread_floats, ws_bytes; /* buffers per thread; modelled working set per band */
    size_t in_off, out_off, scr_off; /* per-thread buffer offsets (floats): input band,
                                        two output bands (ping-pong), kernel scratch */
    size_t out_floats;
    double recompute;   /* (work with halos - work without) / work without */
} se_section;

struct se_model {
    atomic_int refs;    /* the caller's, plus one per compiled model */
    st_graph *g;
    char path[512];
    int n_out;
    char *in_name;
    char *out_names[ST_MAX_OUTPUTS];
    int out_rank[ST_MAX_OUTPUTS]; /* rank the file declares (0 unknown) */
};

struct se_compiled {
    se_model *m;
    const st_graph *g;
    int batch, threads;  /* threads: resolved (>= 1) */
    int schedule_req;    /* as asked (columns: the sections below, the rest as layers) */
    int dense;
    int column_rows;     /* > 0: every section's band height (se_options.column_rows) */
    se_step *steps;
    int n_steps;
    int *root;           /* [n_values] */
    int64_t *off;        /* [n_values] arena offset (floats) of a root's buffer, -1 none */
    int *view_root;      /* [n_values] elided concat's output holding this value, or -1 */
    size_t *view_at;     /* [n_values] its offset (floats) in that output */
    size_t arena_floats, scratch_floats, act_floats_no_reuse;
    int n_out;
    int out_val[ST_MAX_OUTPUTS], out_ndim[ST_MAX_OUTPUTS];
    double macs_total, macs_sparse;
    /* Maps blocked by thread (se_blocked.c; batch 1, several threads, layer schedule):
     * such a map has no NCHW buffer; block t (rows [H*t/T, H*(t+1)/T) of every channel,
     * with SE_BLK_HALO rows above and below, channels se__blk_ldc floats apart) sits at
     * blk_off[v] in thread t's block arena, blk_stride floats after thread t-1's. */
    int blocked_maps;    /* asked for (se_options.nchw_maps == 0) */
    int blk_T;           /* blocks per map (the thread count), 0: no blocked maps */
    unsigned char *blk;  /* [n_values] root value stored blocked (views: their concat's) */
    int64_t *blk_off;    /* [n_values] offset (floats) in each block arena, -1 none */
    size_t blk_stride;   /* floats per thread's block arena (whole pages, plus a gap) */
    size_t blk_scratch;  /* floats of scratch per thread for the blocked stride-2 layers */
    size_t team_stride;  /* > 0: a team's thread t works in the scratch at t * team_stride,
                          * in every step (se__plan_team_scratch) */
    se_section *secs;    /* columns schedule: sections (none with the layer schedule) */
    int n_secs;
    size_t l2_bytes;     /* per-core L2 the sections were chosen and their bands sized for */
};

/* A spinning barrier for a team of OpenMP threads that stays together across many
 * steps (se_run.c): on this machine's cores a libgomp fork/join costs ~3.6 us and its
 * barrier ~1.6 us; one cache-line round trip (~0.5 us) is what this one needs. */
typedef struct se_barrier {
    _Alignas(64) atomic_int count;
    _Alignas(64) atomic_int gen;
} se_barrier;

struct se_context {
    const se_compiled *c;
    se_barrier bar;
    float *arena;
    float *blk_arena;    /* blk_T block arenas of blk_stride floats, or NULL */
    float **ptr;         /* [n_values] */
    double *step_s;      /* [n_steps] seconds per step summed over profiled runs, or NULL */
    double *wait_s;      /* seconds each thread spent at team barriers in profiled runs, a
                          * cache line apart (se_run.c) */
    long profiled_runs;
};

/* A step's role in a team run (se_run.c): not in one, split among the threads, run by
 * thread 0 while the others wait, or a step of a tensor-column section (its first runs
 * the section's bands split among the threads, the others are passed over). */
enum { TEAM_NO = 0, TEAM_SPLIT = 1, TEAM_SERIAL = 2, TEAM_SECTION = 3 };

/* se_run.c: each step's team role and the team runs (with threads > 1), once per
 * compiled model, after its steps and sections are final. */
void se__plan_teams(se_compiled *c);

/* err helpers: printf into err (if err and errcap) and return code. */
int se__fail(char *err, size_t errcap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void se__model_retain(se_model *m);

/* se_run.c: the fused epilogue over n elements of y (batch included); with bias, first
 * y += bias[channel] for planes of `plane` elements, channel = plane index % K. */
void se__epilogue(const se_step *s, float *y, float *const *ptr, size_t n, const float *bias,
                  int K, size_t plane);

/* se_run.c: the step's epilogue as kernel ops (residuals read at offset i0 of their
 * values); returns 1 when one of them is a residual Add. */
int se__epi_ops(const se_step *s, float *const *ptr, size_t i0, st_epi_op *ops);
/* se_run.c: the epilogue of a band of `rows` rows x Q (K channels, rows*Q apart) of a
 * step's output whose first row is map row y0 of image n; bias per channel when given. */
void se__epilogue_band(const se_step *s, float *y, float *const *ptr, int n, int y0, int rows,
                       const float *bias);
/* se_blocked.c: which maps are stored blocked by thread and the steps on them (after
 * se__plan_teams, before the memory plan); the floats of value v's buffer (its NCHW size,
 * or one block's); a blocked step's part `part` of nt (blocks part, part + nt, ...). */
#define SE_BLK_HALO 1
int se__plan_blocks(se_compiled *c, size_t *scratch, char *err, size_t errcap);
void se__plan_team_scratch(se_compiled *c, size_t *scratch);
void se__free_blocks(se_step *s);
size_t se__value_floats(const se_compiled *c, int v);
int se__blk_map(const se_compiled *c, int v); /* root value v is stored blocked */
int se__root_of(const se_compiled *c, int v); /* the value owning v's buffer */
size_t se__blk_ldc(const se_compiled *c, int v);
int se__blk_part(const se_compiled *c, const se_step *s, float *const *ptr, float *blk_arena,
                 float *scratch, int part, int nt, st_error *e);
/* se_columns.c */
int se__columns_plan(se_compiled *c, char *err, size_t errcap); /* after kernel choice */
size_t se__columns_scratch_floats(const se_compiled *c);
int se__columns_run(const se_compiled *c, const se_section *sec, float *const *ptr, float *arena,
                    char *err, size_t errcap);
/* Part `part` of np of a section, inside a team run (np threads, each with its own
 * buffers in arena): 0, else 1 with e's message set. */
int se__columns_part(const se_compiled *c, const se_section *sec, float *const *ptr, float *arena, int part,
                     int np, st_error *e);

#endif
