/* Executing a graph for a batch size: buffers planned once (st_exec_plan), then forward
 * and backward any number of times with no allocation. Prepare-then-run: the caller can
 * ask st_exec_arena_floats for the memory a plan needs before making it. */
#ifndef ST_EXEC_H
#define ST_EXEC_H

#include <stdio.h>

#include "st_graph.h"
#include "st_sparse.h"
#include "st_tensor.h"

/* A conv or linear node running on the sparse kernels: its packed weights (rebuilt when
 * the masks change, values refreshed after every optimizer step) and the gradient of
 * the packed values. */
typedef struct st_exec_sparse {
    int active;
    double sparsity;     /* fraction of masked-off weights when packed */
    double expected;     /* modelled speedup over dense */
    st_csr csr;
    float *dval;         /* [csr.nnz] */
} st_exec_sparse;

typedef struct st_exec {
    const st_graph *g;
    int max_batch;      /* planned batch size */
    int batch;          /* batch of the last forward (<= max_batch) */
    int with_grads;     /* buffers for backward were planned */
    float **act;        /* [n_values] -> [max_batch * numel] */
    float **dact;       /* [n_values] -> same, or NULL (no gradient needed) */
    float **state;      /* [n_nodes]: BN mean/invstd, maxpool argmax, dropout mask */
    float *scratch;     /* conv im2col and staging */
    float *arena;       /* everything above lives here */
    size_t arena_floats, grad_floats, scratch_floats;
    float *grad_begin;  /* the gradient part of the arena, zeroed before backward */
    uint64_t dropout_seed; /* set by the caller for each step */
    double *node_seconds;  /* [2 * n_nodes] forward, backward time per node, or NULL */
    st_exec_sparse *sparse; /* [n_nodes], NULL until st_exec_sparse_update */
    float *sparse_scratch;
    size_t sparse_scratch_floats;
    int dense_only;        /* never use the sparse kernels (for comparisons) */
    /* BatchNorm -> ReLU/LeakyReLU/SiLU pairs run as one fused op: fuse[bn] is the
     * activation node, fuse[act] the BN node, -1 elsewhere (NULL: no fusion). The BN node
     * writes the activation's output; for SiLU its own output buffer holds sigmoid(z)
     * rather than z (nothing else reads it). The activation node does nothing; its
     * profile time is 0 and the pair's time is the BN node's. */
    int *fuse;
} st_exec;

/* Chooses, per prunable conv / linear node, between the dense and the sparse kernels
 * from its shape and the sparsity of its mask, and packs the chosen ones. Call when the
 * masks change (and once at the start). */
st_status st_exec_sparse_repack(st_exec *e, st_error *err);
/* One line: which layers run sparse, at what sparsity and modelled speedup. */
void st_exec_sparse_describe(const st_exec *e, FILE *f);
/* After an optimizer step with unchanged masks: copy the new weight values into the
 * packed weights (O(nonzeros)). */
void st_exec_sparse_refresh(st_exec *e);
/* Number of nodes on the sparse path. */
int st_exec_sparse_count(const st_exec *e);

/* Starts (or with on == 0 stops and frees) per-node timing. */
st_status st_exec_profile(st_exec *e, int on);
/* Prints a table of the slowest nodes (forward and backward seconds, share). */
void st_exec_profile_print(const st_exec *e, FILE *f, int top);

/* Turns the BN+activation fusion on (the default, unless the environment sets
 * ST_NO_FUSE) or off; call between steps, not between a forward and its backward. */
st_status st_exec_set_fusion(st_exec *e, int on);
/* Number of fused BN+activation pairs. */
int st_exec_fused_count(const st_exec *e);
/* "batchnorm+silu" for a fused BN node, "silu (fused)" for its activation, else the
 * op's name. */
const char *st_exec_node_label(const st_exec *e, int i);

/* Floats of arena a plan for this graph and batch needs. */
size_t st_exec_arena_floats(const st_graph *g, int max_batch, int with_grads);
st_status st_exec_plan(st_exec *e, const st_graph *g, int max_batch, int with_grads,
                       st_error *err);
void st_exec_free(st_exec *e);

static inline float *st_exec_input(const st_exec *e) { return e->act[e->g->input]; }
static inline float *st_exec_output(const st_exec *e) { return e->act[e->g->output]; }
/* Gradient buffer of the output; fill it, then call st_exec_backward. */
static inline float *st_exec_doutput(const st_exec *e) { return e->dact[e->g->output]; }

/* View of value v's activation buffer as [batch, C, H, W] for the current batch. */
st_tensor st_exec_value(const st_exec *e, int v);

/* Runs the graph on the first `batch` samples of the input buffer. training selects
 * batch statistics for BN and active dropout. */
void st_exec_forward(st_exec *e, int batch, int training);
/* Zeroes the activation gradients except the output's, then backpropagates; parameter
 * gradients ACCUMULATE into the graph's grad arena (zero them with st_graph_zero_grad). */
void st_exec_backward(st_exec *e);

#endif
