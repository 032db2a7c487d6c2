/* model.h: libcnnlab's internal structures: tensors, nodes, the op table and the
 * per-thread execution context that every op's forward and backward receive.
 *
 * A model is a flat array of nodes in execution order. Each node is one op kind
 * (an entry of the op table, one source file per op under src/nn/ops/), its input and
 * output tensor ids, its hyper-parameters, and offsets into buffers planned once
 * by cl_model_compile(). Every thread runs every node on its own slice [n0, n1)
 * of the batch; ops that need the whole batch (BatchNorm) meet at a barrier. */
#ifndef CNNLAB_MODEL_H
#define CNNLAB_MODEL_H

#include <math.h>

#include "cnnlab.h"
#include "util/util.h"

/* Hot loops are compiled for AVX-512, AVX2 and plain x86-64, and the best runs on
 * the machine at hand (GCC's target_clones, resolved once at load time). The
 * portable build (-DCL_NO_CLONES) and other compilers get one plain version. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(CL_NO_CLONES)
#define CL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CL_CLONES
#endif

/* Math on cl_real, in float or double as the build chooses. */
#define cl_sqrt(x) _Generic((x), float: sqrtf, default: sqrt)(x)
#define cl_exp(x) _Generic((x), float: expf, default: exp)(x)
#define cl_erf(x) _Generic((x), float: erff, default: erf)(x)

#define CL_MAX_INPUTS 8
#define CL_MAX_NODES 20000
#define CL_NAME_MAX 48
#define CL_MAX_OP_TENSORS 5

typedef struct cl_op cl_op;

/* Hyper-parameters of one node; which member is used depends on its op. */
typedef union {
    cl_conv2d_args conv; /* conv2d, maxpool2d, avgpool2d */
    cl_norm_args norm;
    struct {
        cl_act_kind kind;
        float slope;
    } act;
    float p; /* dropout probability */
    struct {
        int out;
        bool no_bias;
    } linear;
} cl_node_args;

typedef struct {
    const cl_op *op;
    int in[CL_MAX_INPUTS];
    int nin;
    int out;
    cl_node_args a;
    int line;
    int64_t macs;           /* per sample */
    size_t param_off, nparams;   /* into params and grads (trainable) */
    size_t buffer_off, nbuffers; /* into buffers (running statistics) */
    size_t saved_off, nsaved;    /* per-sample saved state, [max_batch][nsaved] */
    size_t batch_saved_off, nbatch_saved; /* per-batch saved state */
    size_t nscratch;        /* floats of per-thread scratch this node needs */
    size_t nteam;           /* doubles of team scratch (per thread) for reductions */
    int relu_out;           /* >= 0 (a BatchNorm, GroupNorm or LayerNorm): the ReLU that
                               follows it runs inside its passes, in place: the forward
                               stores relu(y), the backward reads this tensor's gradient
                               masked by relu(y) > 0 (cl_relu_dy) */
    bool in_prev;           /* a ReLU that runs inside the norm before it (skipped) */
    int infer_span;         /* > 1: at inference this node runs the next infer_span - 1
                               nodes too, fused (conv -> BatchNorm [-> ReLU]) */
} cl_node;

/* zero_at of a gradient that no backward forms (a norm's output whose ReLU runs
 * inside the norm): no memory, never zeroed */
#define CL_GRAD_UNUSED (-2)

typedef struct {
    cl_shape shape;
    size_t size;    /* c*h*w */
    size_t off;     /* into act: [max_batch][size] */
    size_t doff;    /* its gradient: a contiguous [max_batch][size] at dact + doff, or,
                       when dshared, a [per-thread batch][size] at dact_shared +
                       tid * dact_stride + doff in each thread's own area, where
                       gradients whose lifetimes in the backward pass do not overlap
                       share memory */
    bool dshared;
    bool fused_away; /* not written by a fused inference forward (inside a span) */
    int alias_of;    /* >= 0: stored in place of that tensor (a ReLU's output over its
                        input, which only the ReLU reads); -1: its own memory */
    bool overwritten; /* its memory is taken over in place by the ReLU reading it */
    int zero_at;    /* the node before whose backward this gradient is zeroed: its
                       first writer in reverse order (-1: the output, copied in;
                       CL_GRAD_UNUSED: a norm's output under its ReLU, never formed) */
    int producer;   /* node index, -1 for the input */
    int64_t rf_h, rf_w, jump_h, jump_w, start; /* receptive field bookkeeping */
    char name[CL_NAME_MAX];
} cl_tensor;

/* How a stored parameter tensor maps to PyTorch's layout. */
typedef enum {
    CL_LAYOUT_PLAIN,       /* identical */
    CL_LAYOUT_CONV_WEIGHT, /* stored [g][kh][kw][C/g][K/g], PyTorch [K][C/g][kh][kw] */
    CL_LAYOUT_TRANSPOSED,  /* stored [rest][out], PyTorch [out][rest] (rest: the other dims) */
} cl_layout;

typedef struct {
    const char *attr; /* "weight", "bias", "running_mean", ... */
    int ndim;
    int64_t dims[4];
    bool trainable;   /* in params (true) or buffers (false) */
    size_t off;       /* from the node's param_off or buffer_off */
    cl_layout layout;
    int groups;       /* CL_LAYOUT_CONV_WEIGHT */
} cl_op_tensor;

/* What one thread sees while it runs a pass. */
typedef struct {
    cl_model *m;
    int tid, nthreads;
    int n0, n1; /* this thread's samples */
    int n;      /* samples in this process's batch */
    int first;  /* index of this process's first sample in the global batch */
    bool train;
    cl_real *grads;   /* this thread's parameter-gradient accumulator */
    cl_real *scratch; /* this thread's scratch */
    /* In a backward: in[0]'s gradient is first formed here and was not zeroed (the
     * op's stores_dinp said yes), so the backward stores it instead of adding. */
    bool store_dinp;
} cl_exec;

struct cl_op {
    const char *name;       /* model-file and summary name: "conv2d" */
    const char *torch_name; /* "Conv2d" */
    enum { CL_RF_SAME, CL_RF_WINDOW, CL_RF_GLOBAL } rf;
    /* Check the node's arguments against its input shapes and set *out. On error
     * calls cl_fail() and returns its status. */
    cl_status (*infer_shape)(cl_model *m, cl_node *n, cl_shape *out);
    /* Fill nparams, nbuffers, nsaved, nbatch_saved, nscratch, nteam and macs.
     * NULL: the layer needs none of them. */
    void (*sizes)(const cl_model *m, cl_node *n);
    /* Describe the node's PyTorch tensors; returns how many. NULL: none. */
    int (*tensors)(const cl_model *m, const cl_node *n, cl_op_tensor *t);
    /* Initialise parameters and buffers as torch.nn does. NULL: none. */
    void (*init)(cl_model *m, const cl_node *n, cl_real *params, cl_real *buffers);
    void (*forward)(const cl_exec *e, const cl_node *n);
    void (*backward)(const cl_exec *e, const cl_node *n);
    /* Whether backward, given store_dinp, writes every value of in[0]'s gradient, so
     * that it need not be zeroed first (saves a pass over memory and the reads of
     * the accumulation). NULL: no; the gradient is zeroed and accumulated into. */
    bool (*stores_dinp)(const cl_model *m, const cl_node *n);
};

struct cl_model {
    cl_node *nodes;
    int nnodes, cap_nodes;
    cl_tensor *tensors;
    int ntensors, cap_tensors;
    char err[512];
    char err_field[32];
    int line;

    bool compiled;
    cl_compile_args args;
    int nthreads;
    uint64_t rng_state[4];
    size_t nparams, nbuffers, act_size, saved_size, batch_saved_size, scratch_size, team_size;
    cl_real *params, *grads, *buffers;
    cl_real *act, *dact;        /* every tensor's activations and their gradients */
    cl_real *dact_shared;       /* the threads' areas of shared gradients, within dact */
    size_t dact_stride;         /* values per thread area */
    cl_real *saved, *batch_saved;
    cl_real *thread_grads;      /* (nthreads-1) extra gradient accumulators */
    cl_real *scratch;           /* nthreads * scratch_size */
    double *team;             /* (nthreads + 1) * team_size, for cross-thread reductions:
                                 one slot per thread, then the combined sums */
    int cur_n;
    bool cur_train;
    bool cur_fused;           /* the last forward ran fused spans (see plan_inference_fusion) */
    bool forwarded;           /* a forward has run (backward may follow) */
    uint64_t dropout_step;    /* counts training forwards; keys the dropout masks */
    int shard_first;          /* cl_model_set_shard */
};

/* Record an error message (and the option it is about, or NULL) and return code. */
cl_status cl_fail(cl_model *m, cl_status code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An element-wise layer's output has its input's shape. */
cl_status cl_infer_same_shape(cl_model *m, cl_node *n, cl_shape *out);

/* The gradient reaching a norm's output at i when the ReLU after it runs inside its
 * passes (masked; relu_y: the relu(y) stored in place): dout where relu(y) > 0, as
 * the ReLU's backward gives it (0 + dout: +0.0 or dout, bit for bit, NaN passing);
 * dout itself when not masked. A bitwise AND with an all-ones or all-zeros mask,
 * because GCC does not vectorize a select whose result is then widened to double,
 * as the norms' sums are. Call it with a constant masked, in a loop inlined twice. */
static inline __attribute__((always_inline)) cl_real cl_relu_dy(const cl_real *dout, const cl_real *relu_y,
                                                                size_t i, bool masked) {
    if (!masked) return dout[i];
    union {
        cl_real r;
        uint32_t w[sizeof(cl_real) / 4];
    } v = {.r = dout[i]};
    uint32_t keep = -(uint32_t)!(relu_y[i] <= 0);
    for (size_t k = 0; k < sizeof v.w / sizeof *v.w; k++) v.w[k] &= keep;
    return v.r;
}

/* Pointers to this thread's slice of a tensor's activations and gradients. */
static inline cl_real *cl_act(const cl_exec *e, int t) {
    const cl_tensor *x = &e->m->tensors[t];
    return e->m->act + x->off + (size_t)e->n0 * x->size;
}
static inline cl_real *cl_dact(const cl_exec *e, int t) {
    const cl_tensor *x = &e->m->tensors[t];
    if (x->dshared) return e->m->dact_shared + (size_t)e->tid * e->m->dact_stride + x->doff;
    return e->m->dact + x->doff + (size_t)e->n0 * x->size;
}
/* The gradient to accumulate into input t, or NULL when nobody needs it (the
 * model's input when input_grad is off). */
static inline cl_real *cl_dinp(const cl_exec *e, int t) {
    if (t == 0 && !e->m->args.input_grad) return NULL;
    return cl_dact(e, t);
}
static inline const cl_shape *cl_in_shape(const cl_model *m, const cl_node *n, int k) {
    return &m->tensors[n->in[k]].shape;
}
static inline const cl_shape *cl_out_shape(const cl_model *m, const cl_node *n) {
    return &m->tensors[n->out].shape;
}
static inline cl_real *cl_node_saved(const cl_exec *e, const cl_node *n) {
    return e->m->saved + n->saved_off + (size_t)e->n0 * n->nsaved;
}

/* Team helpers: a barrier over the threads of the current pass, and this thread's
 * slot of the team reduction scratch. */
void cl_barrier(void);
static inline double *cl_team_slot(const cl_exec *e, int tid) {
    return e->m->team + (size_t)tid * e->m->team_size;
}
/* Every thread calls this with its partial sums in the first n values of its own
 * slot: it returns their sum over the threads, added in thread order, and then over
 * the processes by the reduce hook when there is one. The result is shared and stays
 * valid until the next cl_team_sum; the slots are free again when it returns. */
const double *cl_team_sum(const cl_exec *e, size_t n);

/* Optimizer state for checkpoints (src/nn/optim.c): its buffers (buf2 NULL for SGD),
 * the step count, and the parameter count they hold. */
size_t cl_optimizer_state(cl_optimizer *o, cl_real **buf1, cl_real **buf2, int64_t *step);
void cl_optimizer_set_state_step(cl_optimizer *o, int64_t step);
/* The moving average's state (NULL without ema_decay): the values not in the model,
 * [nparams] then [nbuffers] (*count in all), how many updates it has had, and
 * whether the model holds the average (then these are the raw weights). */
cl_real *cl_optimizer_average_state(cl_optimizer *o, size_t *count, int64_t *n_averaged, bool *in_model);
void cl_optimizer_set_average_state(cl_optimizer *o, int64_t n_averaged, bool in_model);

/* The geometry of one ungrouped or depthwise convolution over N images. */
typedef struct {
    int N, H, W, C, OH, OW, K, R, S, sh, sw, ph, pw, dh, dw;
} cl_conv_shape;

/* The fast direct-convolution kernels (src/nn/ops/conv2d_direct.c). weight is
 * [R][S][C][K]; all accumulate into their gradients; scratch holds
 * cl_conv2d_direct_scratch(d) values. */
size_t cl_conv2d_direct_scratch(const cl_conv_shape *d);
void cl_conv2d_direct_forward(cl_real *out, const cl_real *inp, const cl_real *weight,
                              const cl_real *bias, const cl_conv_shape *d, cl_real *scratch);
/* The same with an affine epilogue and optional ReLU in the store:
 * out = (conv + bias) * scale[K] + shift[K] (BatchNorm folded in at inference). */
void cl_conv2d_direct_forward_affine(cl_real *out, const cl_real *inp, const cl_real *weight,
                                     const cl_real *bias, const cl_real *scale,
                                     const cl_real *shift, bool relu, const cl_conv_shape *d,
                                     cl_real *scratch);
bool cl_conv2d_direct_input_grad_ok(const cl_conv_shape *d);
/* With store, dinp is written, not accumulated into (it may hold anything before). */
void cl_conv2d_direct_input_grad(cl_real *dinp, const cl_real *dout, const cl_real *weight,
                                 const cl_conv_shape *d, bool store, cl_real *scratch);
void cl_conv2d_direct_weight_grad(cl_real *dweight, const cl_real *dout, const cl_real *inp,
                                  const cl_conv_shape *d, cl_real *scratch);

/* The depthwise kernels (src/nn/ops/conv2d_depthwise.c): groups = C = K, weight
 * [C][R][S], any kernel size, stride, padding and dilation; the gradients accumulate
 * (the bias gradient is conv2d.c's bias_grad, as for the direct kernels). */
size_t cl_conv2d_depthwise_scratch(const cl_conv_shape *d);
void cl_conv2d_depthwise_forward(cl_real *out, const cl_real *inp, const cl_real *weight,
                                 const cl_real *bias, const cl_conv_shape *d, cl_real *scratch);
void cl_conv2d_depthwise_input_grad(cl_real *dinp, const cl_real *dout, const cl_real *weight,
                                    const cl_conv_shape *d, cl_real *scratch);
void cl_conv2d_depthwise_weight_grad(cl_real *dweight, const cl_real *dout, const cl_real *inp,
                                     const cl_conv_shape *d, cl_real *scratch);

/* Conv -> BatchNorm (eval) [-> ReLU] as one pass (src/nn/ops/conv2d.c): whether conv
 * node n can take the fold, and the fused forward writing bn's (or relu's) output
 * tensor out. */
bool cl_conv2d_can_fold_bn(const cl_model *m, const cl_node *n);
void cl_conv2d_forward_bn(const cl_exec *e, const cl_node *conv, const cl_node *bn, bool relu,
                          int out);

/* Shared helpers for the ops. */
int cl_conv_out_size(int in, int k, int stride, int pad, int dilation);
void cl_init_uniform(cl_model *m, cl_real *p, size_t n, cl_real bound);

/* The ops the public builders add (src/nn/ops/, one file each). The model-file
 * keywords that make them are in the layer registry (src/io/registry.c). */
extern const cl_op cl_op_conv2d, cl_op_maxpool2d, cl_op_avgpool2d, cl_op_global_avgpool,
    cl_op_batchnorm2d, cl_op_groupnorm, cl_op_layernorm, cl_op_dropout,
    cl_op_add, cl_op_concat, cl_op_flatten, cl_op_linear;
/* The op of an activation kind (src/nn/ops/activation.c), or NULL for none or an
 * unknown kind. */
const cl_op *cl_activation_op(cl_act_kind kind);

#endif
