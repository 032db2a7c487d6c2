/* model.c: building a model (the builder API), planning and allocating its buffers
 * once, running forward and backward passes over a thread team, and moving named
 * parameter tensors in and out in PyTorch's layout. */
#include "nn/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Largest per-sample activation count of the whole model and largest buffer we plan:
 * beyond these a hostile model file is refused before anything is allocated. */
#define CL_MAX_TENSOR_SIZE ((size_t)1 << 28)
#define CL_MAX_PLAN_BYTES ((size_t)16 << 30)

cl_status cl_fail(cl_model *m, cl_status code, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
    snprintf(m->err_field, sizeof m->err_field, "%s", field ? field : "");
    return code;
}

cl_status cl_infer_same_shape(cl_model *m, cl_node *n, cl_shape *out) {
    *out = *cl_in_shape(m, n, 0);
    return CL_OK;
}

const char *cl_model_error(const cl_model *m) { return m->err; }
const char *cl_model_error_field(const cl_model *m) { return m->err_field; }

void cl_barrier(void) {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

const double *cl_team_sum(const cl_exec *e, size_t n) {
    cl_model *m = e->m;
    double *sums = m->team + (size_t)m->nthreads * m->team_size;
    cl_barrier();
    if (e->tid == 0) {
        memset(sums, 0, n * sizeof(double));
        for (int t = 0; t < e->nthreads; t++) {
            const double *slot = cl_team_slot(e, t);
            for (size_t i = 0; i < n; i++) sums[i] += slot[i];
        }
        if (m->args.reduce) m->args.reduce(sums, n, m->args.reduce_ctx);
    }
    cl_barrier();
    return sums;
}

int cl_conv_out_size(int in, int k, int stride, int pad, int dilation) {
    int64_t span = (int64_t)dilation * (k - 1) + 1;
    int64_t num = (int64_t)in + 2 * (int64_t)pad - span;
    if (num < 0) return 0;
    return (int)(num / stride + 1);
}

void cl_init_uniform(cl_model *m, cl_real *p, size_t n, cl_real bound) {
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * cl_rng_uniform(m->rng_state) - 1.0f) * bound;
}

/* ---- building ------------------------------------------------------------ */

static bool grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *q = realloc(*p, (size_t)ncap * elem);
    if (!q) return false;
    *p = q;
    *cap = ncap;
    return true;
}

cl_model *cl_model_new(cl_shape input) {
    cl_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (!grow((void **)&m->tensors, &m->cap_tensors, 1, sizeof(cl_tensor))) {
        free(m);
        return NULL;
    }
    cl_tensor *t = &m->tensors[0];
    memset(t, 0, sizeof *t);
    t->shape = input;
    t->size = (size_t)(input.c > 0 ? input.c : 0) * (size_t)(input.h > 0 ? input.h : 0) *
              (size_t)(input.w > 0 ? input.w : 0);
    t->producer = -1;
    t->rf_h = t->rf_w = t->jump_h = t->jump_w = 1;
    snprintf(t->name, sizeof t->name, "input");
    m->ntensors = 1;
    if (input.c < 1 || input.h < 1 || input.w < 1 || t->size > CL_MAX_TENSOR_SIZE)
        cl_fail(m, CL_ERR_SHAPE, "input", "input shape %dx%dx%d is not a valid CxHxW", input.c,
                input.h, input.w);
    return m;
}

void cl_model_free(cl_model *m) {
    if (!m) return;
    free(m->nodes);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->act);
    free(m->dact);
    free(m->saved);
    free(m->batch_saved);
    free(m->thread_grads);
    free(m->scratch);
    free(m->team);
    free(m);
}

int cl_input(const cl_model *m) {
    (void)m;
    return 0;
}

void cl_model_set_source_line(cl_model *m, int line) { m->line = line; }

static void update_receptive_field(cl_model *m, const cl_node *n, cl_tensor *out) {
    const cl_tensor *in = &m->tensors[n->in[0]];
    out->rf_h = in->rf_h;
    out->rf_w = in->rf_w;
    out->jump_h = in->jump_h;
    out->jump_w = in->jump_w;
    for (int k = 1; k < n->nin; k++) {
        const cl_tensor *o = &m->tensors[n->in[k]];
        if (o->rf_h > out->rf_h) out->rf_h = o->rf_h;
        if (o->rf_w > out->rf_w) out->rf_w = o->rf_w;
        if (o->jump_h > out->jump_h) out->jump_h = o->jump_h;
        if (o->jump_w > out->jump_w) out->jump_w = o->jump_w;
    }
    if (n->op->rf == CL_RF_WINDOW) {
        const cl_conv2d_args *a = &n->a.conv;
        out->rf_h += (int64_t)a->dilation_h * (a->kernel_h - 1) * in->jump_h;
        out->rf_w += (int64_t)a->dilation_w * (a->kernel_w - 1) * in->jump_w;
        out->jump_h *= a->stride_h;
        out->jump_w *= a->stride_w;
    } else if (n->op->rf == CL_RF_GLOBAL) {
        out->rf_h += (int64_t)(in->shape.h - 1) * in->jump_h;
        out->rf_w += (int64_t)(in->shape.w - 1) * in->jump_w;
        out->jump_h *= in->shape.h;
        out->jump_w *= in->shape.w;
    }
}

/* Append a node of op with inputs in[0..nin), returning its output tensor id or -1. */
static int add_node(cl_model *m, const cl_op *op, const int *in, int nin, cl_node_args a) {
    if (m->compiled) {
        cl_fail(m, CL_ERR_STATE, NULL, "the model is already compiled; layers cannot be added");
        return -1;
    }
    if (m->tensors[0].size == 0 || m->tensors[0].size > CL_MAX_TENSOR_SIZE) {
        cl_fail(m, CL_ERR_SHAPE, "input", "the input shape is not valid");
        return -1;
    }
    if (nin < 1 || nin > CL_MAX_INPUTS) {
        cl_fail(m, CL_ERR_ARG, NULL, "%s takes 1 to %d inputs, got %d", op->name, CL_MAX_INPUTS,
                nin);
        return -1;
    }
    for (int k = 0; k < nin; k++) {
        if (in[k] < 0 || in[k] >= m->ntensors) {
            cl_fail(m, CL_ERR_ARG, NULL, "%s: input tensor id %d does not exist", op->name, in[k]);
            return -1;
        }
    }
    if (m->nnodes >= CL_MAX_NODES) {
        cl_fail(m, CL_ERR_NOMEM, NULL, "too many layers (at most %d)", CL_MAX_NODES);
        return -1;
    }
    if (!grow((void **)&m->nodes, &m->cap_nodes, m->nnodes + 1, sizeof(cl_node)) ||
        !grow((void **)&m->tensors, &m->cap_tensors, m->ntensors + 1, sizeof(cl_tensor))) {
        cl_fail(m, CL_ERR_NOMEM, NULL, "out of memory");
        return -1;
    }
    cl_node *n = &m->nodes[m->nnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    memcpy(n->in, in, (size_t)nin * sizeof *in);
    n->nin = nin;
    n->a = a;
    n->line = m->line;
    cl_shape out = {0, 0, 0};
    if (op->infer_shape(m, n, &out) != CL_OK) return -1;
    if (out.c < 1 || out.h < 1 || out.w < 1) {
        cl_fail(m, CL_ERR_SHAPE, NULL, "%s output would be %dx%dx%d: the shape shrinks below 1x1",
                op->name, out.c, out.h, out.w);
        return -1;
    }
    size_t size = (size_t)out.c * (size_t)out.h * (size_t)out.w;
    if (size > CL_MAX_TENSOR_SIZE) {
        cl_fail(m, CL_ERR_SHAPE, NULL, "%s output %dx%dx%d is too large", op->name, out.c, out.h,
                out.w);
        return -1;
    }
    int id = m->ntensors;
    cl_tensor *t = &m->tensors[id];
    memset(t, 0, sizeof *t);
    t->shape = out;
    t->size = size;
    t->producer = m->nnodes;
    n->out = id;
    update_receptive_field(m, n, t);
    if (op->sizes) op->sizes(m, n);
    m->ntensors++;
    m->nnodes++;
    m->err[0] = 0;
    m->err_field[0] = 0;
    return id;
}

static cl_status check_geometry(cl_model *m, cl_conv2d_args *a, bool pool) {
    if (a->kernel_w == 0) a->kernel_w = a->kernel_h;
    if (pool && a->stride_h == 0) {
        a->stride_h = a->kernel_h;
        if (a->stride_w == 0) a->stride_w = a->kernel_w;
    }
    if (a->stride_h == 0) a->stride_h = 1;
    if (a->stride_w == 0) a->stride_w = a->stride_h;
    if (a->dilation_h == 0) a->dilation_h = 1;
    if (a->dilation_w == 0) a->dilation_w = a->dilation_h;
    if (a->groups == 0) a->groups = 1;
    const int lim = 1 << 16;
    if (a->kernel_h < 1 || a->kernel_w < 1 || a->kernel_h > lim || a->kernel_w > lim)
        return cl_fail(m, CL_ERR_ARG, "k", "kernel size must be 1 to %d, got %dx%d", lim,
                       a->kernel_h, a->kernel_w);
    if (a->stride_h < 1 || a->stride_w < 1 || a->stride_h > lim || a->stride_w > lim)
        return cl_fail(m, CL_ERR_ARG, "stride", "stride must be 1 to %d", lim);
    if (a->pad_h < 0 || a->pad_w < 0 || a->pad_h > lim || a->pad_w > lim)
        return cl_fail(m, CL_ERR_ARG, "pad", "padding must be 0 to %d", lim);
    if (a->dilation_h < 1 || a->dilation_w < 1 || a->dilation_h > lim || a->dilation_w > lim)
        return cl_fail(m, CL_ERR_ARG, "dilation", "dilation must be 1 to %d", lim);
    return CL_OK;
}

int cl_conv2d(cl_model *m, int x, cl_conv2d_args a) {
    if (check_geometry(m, &a, false) != CL_OK) return -1;
    if (a.init != CL_INIT_DEFAULT && a.init != CL_INIT_DIRAC) {
        cl_fail(m, CL_ERR_ARG, "init", "unknown convolution initialisation %d", (int)a.init);
        return -1;
    }
    return add_node(m, &cl_op_conv2d, &x, 1, (cl_node_args){.conv = a});
}

int cl_maxpool2d(cl_model *m, int x, cl_conv2d_args a) {
    if (check_geometry(m, &a, true) != CL_OK) return -1;
    return add_node(m, &cl_op_maxpool2d, &x, 1, (cl_node_args){.conv = a});
}

int cl_avgpool2d(cl_model *m, int x, cl_conv2d_args a) {
    if (check_geometry(m, &a, true) != CL_OK) return -1;
    return add_node(m, &cl_op_avgpool2d, &x, 1, (cl_node_args){.conv = a});
}

int cl_global_avgpool(cl_model *m, int x) {
    return add_node(m, &cl_op_global_avgpool, &x, 1, (cl_node_args){.p = 0});
}

int cl_norm(cl_model *m, int x, cl_norm_args a) {
    if (a.eps == 0) a.eps = 1e-5f;
    if (a.momentum == 0) a.momentum = 0.1f;
    if (!(a.eps > 0 && a.eps < 1)) {
        cl_fail(m, CL_ERR_ARG, "eps", "eps must be in (0, 1), got %g", a.eps);
        return -1;
    }
    if (!(a.momentum > 0 && a.momentum <= 1)) {
        cl_fail(m, CL_ERR_ARG, "momentum", "momentum must be in (0, 1], got %g", a.momentum);
        return -1;
    }
    switch (a.kind) {
    case CL_NORM_BATCH: return add_node(m, &cl_op_batchnorm2d, &x, 1, (cl_node_args){.norm = a});
    case CL_NORM_GROUP: return add_node(m, &cl_op_groupnorm, &x, 1, (cl_node_args){.norm = a});
    case CL_NORM_LAYER: a.groups = 1; return add_node(m, &cl_op_layernorm, &x, 1, (cl_node_args){.norm = a});
    default: cl_fail(m, CL_ERR_ARG, "norm", "unknown normalisation kind %d", (int)a.kind); return -1;
    }
}

int cl_activation(cl_model *m, int x, cl_act_kind kind, float negative_slope) {
    const cl_op *op = cl_activation_op(kind);
    if (!op) {
        cl_fail(m, CL_ERR_ARG, "act", "unknown activation kind %d", (int)kind);
        return -1;
    }
    if (!isfinite(negative_slope)) {
        cl_fail(m, CL_ERR_ARG, "slope", "the negative slope must be finite");
        return -1;
    }
    cl_node_args a = {.act = {kind, negative_slope}};
    return add_node(m, op, &x, 1, a);
}

int cl_dropout(cl_model *m, int x, float p) {
    if (!(p >= 0 && p < 1)) {
        cl_fail(m, CL_ERR_ARG, "p", "dropout probability must be in [0, 1), got %g", p);
        return -1;
    }
    return add_node(m, &cl_op_dropout, &x, 1, (cl_node_args){.p = p});
}

int cl_add(cl_model *m, int a, int b) {
    int in[2] = {a, b};
    return add_node(m, &cl_op_add, in, 2, (cl_node_args){.p = 0});
}

int cl_concat(cl_model *m, const int *xs, int n) {
    if (n < 2) {
        cl_fail(m, CL_ERR_ARG, NULL, "concat needs at least 2 inputs, got %d", n);
        return -1;
    }
    return add_node(m, &cl_op_concat, xs, n, (cl_node_args){.p = 0});
}

int cl_flatten(cl_model *m, int x) {
    return add_node(m, &cl_op_flatten, &x, 1, (cl_node_args){.p = 0});
}

int cl_linear(cl_model *m, int x, int out_features, bool no_bias) {
    cl_node_args a = {.linear = {out_features, no_bias}};
    return add_node(m, &cl_op_linear, &x, 1, a);
}

cl_status cl_model_set_name(cl_model *m, int x, const char *name) {
    if (x < 0 || x >= m->ntensors) return cl_fail(m, CL_ERR_ARG, NULL, "no tensor %d", x);
    size_t len = strlen(name);
    if (len == 0 || len >= CL_NAME_MAX)
        return cl_fail(m, CL_ERR_ARG, "as", "a name must be 1 to %d characters", CL_NAME_MAX - 1);
    int other = cl_model_find(m, name);
    if (other >= 0 && other != x)
        return cl_fail(m, CL_ERR_ARG, "as", "the name '%s' is already used", name);
    memcpy(m->tensors[x].name, name, len + 1);
    return CL_OK;
}

int cl_model_find(const cl_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

cl_shape cl_model_shape(const cl_model *m, int x) {
    if (x < 0 || x >= m->ntensors) return (cl_shape){0, 0, 0};
    return m->tensors[x].shape;
}

int cl_model_output(const cl_model *m) { return m->ntensors - 1; }

/* ---- inspection ----------------------------------------------------------- */

int cl_model_layer_count(const cl_model *m) { return m->nnodes; }

cl_layer_info cl_model_layer(const cl_model *m, int i) {
    cl_layer_info info;
    memset(&info, 0, sizeof info);
    if (i < 0 || i >= m->nnodes) return info;
    const cl_node *n = &m->nodes[i];
    const cl_tensor *t = &m->tensors[n->out];
    info.op = n->op->name;
    info.name = t->name;
    info.output = n->out;
    info.ninputs = n->nin;
    memcpy(info.inputs, n->in, (size_t)n->nin * sizeof(int));
    info.out = t->shape;
    info.params = (int64_t)n->nparams;
    info.buffers = (int64_t)n->nbuffers;
    info.macs = n->macs;
    info.rf = t->rf_h;
    info.rf_w = t->rf_w;
    info.jump = t->jump_h;
    info.jump_w = t->jump_w;
    info.line = n->line;
    return info;
}

int64_t cl_model_param_count(const cl_model *m) {
    int64_t s = 0;
    for (int i = 0; i < m->nnodes; i++) s += (int64_t)m->nodes[i].nparams;
    return s;
}

int64_t cl_model_buffer_count(const cl_model *m) {
    int64_t s = 0;
    for (int i = 0; i < m->nnodes; i++) s += (int64_t)m->nodes[i].nbuffers;
    return s;
}

/* ---- compiling ------------------------------------------------------------ */

static void *alloc_reals(size_t n, bool *ok) {
    if (n == 0) return NULL;
    void *p = calloc(n, sizeof(cl_real));
    if (!p) *ok = false;
    return p;
}

/* How many nodes read tensor t (an input listed twice counts twice). */
static int readers(const cl_model *m, int t) {
    int count = 0;
    for (int i = 0; i < m->nnodes; i++)
        for (int k = 0; k < m->nodes[i].nin; k++) count += m->nodes[i].in[k] == t;
    return count;
}

/* ReLUs that run in place: a ReLU whose input only it reads, produced by a node
 * (not the model's input, not its output), writes its output over that input. No
 * op's backward reads its own output, and the ReLU's backward reads its input only
 * for its sign, which relu(x) keeps (x <= 0 exactly where relu(x) <= 0, NaN passing
 * alike), so the backward is unchanged; one activation per conv -> norm -> ReLU
 * block is saved. Such a ReLU right after a BatchNorm, GroupNorm or LayerNorm runs
 * inside the norm's passes (relu_out, in_prev): same values, bit for bit, two
 * passes fewer. Not with input_grad or keep_activation_grads (Grad-CAM reads
 * every activation) or the reference kernels (the tests compare against them). */
static void plan_in_place(cl_model *m) {
    const cl_compile_args *a = &m->args;
    for (int t = 0; t < m->ntensors; t++) {
        m->tensors[t].alias_of = -1;
        m->tensors[t].overwritten = false;
    }
    for (int i = 0; i < m->nnodes; i++) {
        m->nodes[i].relu_out = -1;
        m->nodes[i].in_prev = false;
    }
    if (a->input_grad || a->keep_activation_grads || a->reference_kernels) return;
    const cl_op *relu = cl_activation_op(CL_ACT_RELU);
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        int t = n->in[0];
        if (n->op != relu || t == 0 || m->tensors[t].producer < 0 || t == cl_model_output(m) ||
            readers(m, t) != 1 || m->tensors[t].size != m->tensors[n->out].size)
            continue;
        m->tensors[n->out].alias_of = t;
        m->tensors[t].overwritten = true;
        /* right after a norm: one pass over memory instead of two, each way */
        cl_node *prev = &m->nodes[i - 1];
        bool norm = prev->op == &cl_op_batchnorm2d || prev->op == &cl_op_groupnorm ||
                    prev->op == &cl_op_layernorm;
        if (m->tensors[t].producer == i - 1 && norm &&
            (readers(m, n->out) > 0 || n->out == cl_model_output(m))) {
            prev->relu_out = n->out;
            m->nodes[i].in_prev = true;
        }
    }
}

/* Place each tensor's gradient in dact. The input's gradient (when asked for), and
 * every gradient with keep_all, is a contiguous [max_batch][size] block that the
 * caller can read after backward. The others live in per-thread areas, one per
 * thread for its own samples (at most Bt = ceil(max_batch / threads)), so that
 * threads never touch each other's memory: in the backward pass (nodes in reverse)
 * the gradient of tensor t is live from its first writer (the last node consuming
 * it) to its producer, and gradients whose live ranges do not overlap share memory,
 * placed first-fit. Sets dact_stride; returns the size of dact in values, or
 * (size_t)-1 when out of memory. */
static size_t plan_gradients(cl_model *m, size_t B, size_t Bt, int threads, bool keep_all) {
    const int T = m->ntensors, last = m->nnodes - 1;
    int *start = malloc((size_t)T * sizeof *start), *end = malloc((size_t)T * sizeof *end);
    int *order = malloc((size_t)T * sizeof *order), *active = malloc((size_t)T * sizeof *active);
    if (!start || !end || !order || !active) {
        free(start), free(end), free(order), free(active);
        return (size_t)-1;
    }
    for (int t = 0; t < T; t++) m->tensors[t].zero_at = m->tensors[t].producer;
    for (int i = 0; i < m->nnodes; i++)
        for (int k = 0; k < m->nodes[i].nin; k++) {
            cl_tensor *t = &m->tensors[m->nodes[i].in[k]];
            if (i > t->zero_at) t->zero_at = i;
        }
    m->tensors[cl_model_output(m)].zero_at = -1;
    /* a ReLU inside its norm: the norm's output gradient is never formed (never
     * zeroed, no memory), and the ReLU's is read by the norm's backward */
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].relu_out >= 0) m->tensors[m->nodes[i].out].zero_at = CL_GRAD_UNUSED;
    /* contiguous blocks first */
    size_t contiguous = 0;
    int nshared = 0;
    for (int t = 0; t < T; t++) {
        cl_tensor *x = &m->tensors[t];
        x->dshared = !keep_all && !(t == 0 && m->args.input_grad);
        if (x->zero_at == CL_GRAD_UNUSED) {
            x->doff = 0;
        } else if (!x->dshared) {
            x->doff = contiguous;
            contiguous += x->size * B;
        } else {
            /* reverse time: node i's backward runs at step last - i; the output's
             * gradient is copied in at step -1 */
            start[t] = x->zero_at < 0 ? -1 : last - x->zero_at;
            int owner = x->producer >= 0 && m->nodes[x->producer].in_prev ? x->producer - 1 : x->producer;
            end[t] = owner < 0 ? last + 1 : last - owner;
            order[nshared++] = t;
        }
    }
    /* by start time (insertion sort: models are small) */
    for (int i = 1; i < nshared; i++)
        for (int j = i; j > 0 && start[order[j]] < start[order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    size_t area = 0;
    int nactive = 0;
    for (int k = 0; k < nshared; k++) {
        int t = order[k];
        size_t size = m->tensors[t].size * Bt;
        int w = 0; /* retire the blocks that ended before t starts */
        for (int j = 0; j < nactive; j++)
            if (end[active[j]] >= start[t]) active[w++] = active[j];
        nactive = w;
        size_t off = 0; /* the lowest offset where size fits between the active blocks */
        for (bool moved = true; moved;) {
            moved = false;
            for (int j = 0; j < nactive; j++) {
                const cl_tensor *o = &m->tensors[active[j]];
                size_t ob = o->doff, oe = o->doff + o->size * Bt;
                if (off < oe && ob < off + size) {
                    off = oe;
                    moved = true;
                }
            }
        }
        m->tensors[t].doff = off;
        if (off + size > area) area = off + size;
        active[nactive++] = t;
    }
    free(start), free(end), free(order), free(active);
    m->dact_stride = area;
    return contiguous + area * (size_t)threads;
}


/* Spans that an inference forward runs as one pass: a convolution the direct kernel
 * takes, then the BatchNorm that alone reads its output, then optionally the ReLU
 * that alone reads the BatchNorm's. The BatchNorm is folded into the convolution's
 * weights and the ReLU applied in its store, so the two element-wise passes over
 * memory go. The tensors inside a span are then not written (fused_away): a
 * backward after such a forward first reruns the forward unfused, and
 * cl_model_activation gives NULL for them. Models compiled with input_grad or
 * keep_activation_grads (Grad-CAM reads activations and runs a backward after an
 * eval forward) or with the reference kernels are never fused. */
static void plan_inference_fusion(cl_model *m) {
    const cl_compile_args *a = &m->args;
    bool allowed = !a->input_grad && !a->keep_activation_grads && !a->reference_kernels;
    const cl_op *relu = cl_activation_op(CL_ACT_RELU);
    for (int i = 0; i < m->nnodes; i++) {
        cl_node *n = &m->nodes[i];
        n->infer_span = 1;
        if (!allowed || i + 1 >= m->nnodes || !cl_conv2d_can_fold_bn(m, n)) continue;
        const cl_node *bn = &m->nodes[i + 1];
        if (bn->op != &cl_op_batchnorm2d || bn->in[0] != n->out || readers(m, n->out) != 1 ||
            n->out == cl_model_output(m))
            continue;
        n->infer_span = 2;
        if (i + 2 < m->nnodes && m->nodes[i + 2].op == relu && m->nodes[i + 2].in[0] == bn->out &&
            readers(m, bn->out) == 1 && bn->out != cl_model_output(m))
            n->infer_span = 3;
        for (int j = 0; j < n->infer_span - 1; j++) m->tensors[m->nodes[i + j].out].fused_away = true;
        i += n->infer_span - 1;
    }
}

cl_status cl_model_compile(cl_model *m, cl_compile_args a) {
    if (m->compiled) return cl_fail(m, CL_ERR_STATE, NULL, "the model is already compiled");
    if (m->nnodes == 0) return cl_fail(m, CL_ERR_STATE, NULL, "the model has no layers");
    if (a.max_batch < 1) return cl_fail(m, CL_ERR_ARG, NULL, "max_batch must be at least 1");
    int threads = a.threads;
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_num_procs();
#else
    threads = 1;
#endif
    if (threads < 1) threads = 1;
    if (threads > a.max_batch) threads = a.max_batch;
    m->nthreads = threads;
    m->args = a;

    /* Offsets: parameters and buffers node by node, activations tensor by tensor. */
    size_t np = 0, nb = 0, saved = 0, bsaved = 0, scratch = 0, team = 0, act = 0;
    size_t B = (size_t)a.max_batch;
    for (int i = 0; i < m->nnodes; i++) {
        cl_node *n = &m->nodes[i];
        n->param_off = np;
        np += n->nparams;
        n->buffer_off = nb;
        nb += n->nbuffers;
        n->saved_off = saved;
        saved += n->nsaved * B;
        n->batch_saved_off = bsaved;
        bsaved += n->nbatch_saved;
        if (n->nscratch > scratch) scratch = n->nscratch;
        if (n->nteam > team) team = n->nteam;
    }
    plan_in_place(m);
    for (int t = 0; t < m->ntensors; t++) {
        cl_tensor *x = &m->tensors[t];
        if (x->alias_of >= 0) {
            x->off = m->tensors[x->alias_of].off;
            continue;
        }
        x->off = act;
        act += x->size * B;
    }
    size_t Bt = (B + (size_t)threads - 1) / (size_t)threads;
    size_t dact = plan_gradients(m, B, Bt, threads, a.keep_activation_grads);
    if (dact == (size_t)-1) return cl_fail(m, CL_ERR_NOMEM, NULL, "out of memory planning the model");
    double bytes = (double)sizeof(cl_real) * ((double)np * (2 + threads) + (double)nb + (double)act + dact + saved + bsaved +
                          (double)scratch * threads) + 8.0 * team * (threads + 1);
    if (bytes > (double)CL_MAX_PLAN_BYTES)
        return cl_fail(m, CL_ERR_NOMEM, NULL,
                       "the model needs %.1f GiB of buffers at batch %d, more than the %zu GiB limit",
                       bytes / (1 << 30), a.max_batch, CL_MAX_PLAN_BYTES >> 30);
    bool ok = true;
    m->params = alloc_reals(np, &ok);
    m->grads = alloc_reals(np, &ok);
    m->buffers = alloc_reals(nb, &ok);
    m->act = alloc_reals(act, &ok);
    m->dact = alloc_reals(dact, &ok);
    if (m->dact) {
        size_t contiguous = dact - m->dact_stride * (size_t)threads;
        m->dact_shared = m->dact + contiguous;
    }
    m->saved = alloc_reals(saved, &ok);
    m->batch_saved = alloc_reals(bsaved, &ok);
    m->thread_grads = alloc_reals(np * (size_t)(threads - 1), &ok);
    m->scratch = alloc_reals(scratch * (size_t)threads, &ok);
    if (team) {
        m->team = calloc(team * (size_t)(threads + 1), sizeof(double));
        if (!m->team) ok = false;
    }
    if (!ok) return cl_fail(m, CL_ERR_NOMEM, NULL, "out of memory allocating the model's buffers");
    m->nparams = np;
    m->nbuffers = nb;
    m->act_size = act;
    m->saved_size = saved;
    m->batch_saved_size = bsaved;
    m->scratch_size = scratch;
    m->team_size = team;

    plan_inference_fusion(m);
    cl_rng_seed(m->rng_state, a.seed);
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        if (n->op->init) n->op->init(m, n, m->params + n->param_off, m->buffers + n->buffer_off);
    }
    m->compiled = true;
    return CL_OK;
}

/* ---- running -------------------------------------------------------------- */

static cl_exec make_exec(cl_model *m, int tid, int nthreads) {
    cl_exec e;
    e.m = m;
    e.nthreads = nthreads;
    e.tid = tid;
    e.n = m->cur_n;
    e.first = m->shard_first;
    e.n0 = (int)((int64_t)m->cur_n * tid / nthreads);
    e.n1 = (int)((int64_t)m->cur_n * (tid + 1) / nthreads);
    e.train = m->cur_train;
    e.grads = tid == 0 ? m->grads : m->thread_grads + (size_t)(tid - 1) * m->nparams;
    e.scratch = m->scratch ? m->scratch + (size_t)tid * m->scratch_size : NULL;
    e.store_dinp = false;
    return e;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Run every node over the batch already in the input tensor (m->cur_n samples,
 * m->cur_train). With fuse, the planned conv -> BatchNorm [-> ReLU] spans run as one
 * pass each (eval mode only). */
static void run_forward(cl_model *m, bool fuse) {
    int threads = m->nthreads < m->cur_n ? m->nthreads : m->cur_n > 0 ? m->cur_n : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        cl_exec e = make_exec(m, thread_id(), team_size());
        for (int i = 0; i < m->nnodes; i++) {
            const cl_node *node = &m->nodes[i];
            if (fuse && node->infer_span > 1) {
                const cl_node *last = &m->nodes[i + node->infer_span - 1];
                cl_conv2d_forward_bn(&e, node, &m->nodes[i + 1], node->infer_span == 3, last->out);
                i += node->infer_span - 1;
                continue;
            }
            if (!node->in_prev) node->op->forward(&e, node);
        }
    }
    (void)threads;
    m->cur_fused = false;
    for (int i = 0; i < m->nnodes && fuse; i++) m->cur_fused |= m->nodes[i].infer_span > 1;
}

const cl_real *cl_model_forward(cl_model *m, const cl_real *x, int n, bool train) {
    if (!m->compiled) {
        cl_fail(m, CL_ERR_STATE, NULL, "compile the model before running it");
        return NULL;
    }
    if (n < (m->args.reduce ? 0 : 1) || n > m->args.max_batch) {
        cl_fail(m, CL_ERR_ARG, NULL, "batch of %d samples; the model was compiled for 1 to %d", n,
                m->args.max_batch);
        return NULL;
    }
    if (n > 0) memcpy(m->act + m->tensors[0].off, x, (size_t)n * m->tensors[0].size * sizeof(cl_real));
    m->cur_n = n;
    m->cur_train = train;
    m->forwarded = true;
    if (train) m->dropout_step++;
    run_forward(m, !train);
    const cl_tensor *out = &m->tensors[cl_model_output(m)];
    return m->act + out->off;
}

cl_status cl_model_backward(cl_model *m, const cl_real *dout) {
    if (!m->compiled || !m->forwarded)
        return cl_fail(m, CL_ERR_STATE, NULL, "backward needs a forward pass first");
    /* the fused inference forward did not write the tensors inside its spans:
     * recompute them, unfused, from the input still in place (eval mode has no
     * randomness, so this is the same forward) */
    if (m->cur_fused) run_forward(m, false);
    int threads = m->nthreads < m->cur_n ? m->nthreads : m->cur_n > 0 ? m->cur_n : 1;
    const cl_tensor *out = &m->tensors[cl_model_output(m)];
    size_t np = m->nparams;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        cl_exec e = make_exec(m, thread_id(), team_size());
        if (e.tid > 0 && np) memset(e.grads, 0, np * sizeof(cl_real));
        if (e.n1 > e.n0)
            memcpy(cl_dact(&e, cl_model_output(m)), dout + (size_t)e.n0 * out->size,
                   (size_t)(e.n1 - e.n0) * out->size * sizeof(cl_real));
        for (int i = m->nnodes - 1; i >= 0; i--) {
            const cl_node *n = &m->nodes[i];
            if (n->in_prev) continue; /* its norm's backward applies its mask */
            /* gradients first written by this node start from zero (each once), or
             * are stored by its backward where the op can (stores_dinp) */
            e.store_dinp = n->nin > 0 && m->tensors[n->in[0]].zero_at == i && n->op->stores_dinp &&
                           n->op->stores_dinp(m, n);
            for (int k = 0; k <= n->nin; k++) {
                int t = k < n->nin ? n->in[k] : n->out;
                bool repeat = false;
                for (int j = 0; j < k && k < n->nin; j++) repeat |= n->in[j] == t;
                if (m->tensors[t].zero_at == i && !repeat && !(k == 0 && e.store_dinp))
                    memset(cl_dact(&e, t), 0, (size_t)(e.n1 - e.n0) * m->tensors[t].size * sizeof(cl_real));
            }
            n->op->backward(&e, n);
        }
        cl_barrier();
        /* Sum the other threads' accumulators into the model's, in thread order so the
         * result does not depend on timing. */
        size_t lo = np * (size_t)e.tid / (size_t)e.nthreads;
        size_t hi = np * (size_t)(e.tid + 1) / (size_t)e.nthreads;
        for (int t = 1; t < e.nthreads; t++) {
            const cl_real *g = m->thread_grads + (size_t)(t - 1) * np;
            for (size_t i = lo; i < hi; i++) m->grads[i] += g[i];
        }
    }
    (void)threads;
    return CL_OK;
}

uint64_t cl_model_step(const cl_model *m) { return m->dropout_step; }

void cl_model_set_step(cl_model *m, uint64_t step) { m->dropout_step = step; }

void cl_model_set_shard(cl_model *m, int first) { m->shard_first = first > 0 ? first : 0; }

void cl_model_zero_grad(cl_model *m) {
    if (m->grads) memset(m->grads, 0, m->nparams * sizeof(cl_real));
}

const cl_real *cl_model_input_grad(const cl_model *m) {
    if (!m->compiled || !m->args.input_grad) return NULL;
    return m->dact + m->tensors[0].doff;
}

const cl_real *cl_model_activation(const cl_model *m, int x) {
    if (!m->compiled || x < 0 || x >= m->ntensors) return NULL;
    if (m->cur_fused && m->tensors[x].fused_away) return NULL; /* not written */
    if (m->tensors[x].overwritten) return NULL; /* a ReLU's output took its place */
    return m->act + m->tensors[x].off;
}

const cl_real *cl_model_activation_grad(const cl_model *m, int x) {
    if (!m->compiled || x < 0 || x >= m->ntensors) return NULL;
    if (!m->args.keep_activation_grads && !(x == 0 && m->args.input_grad)) return NULL;
    return m->dact + m->tensors[x].doff;
}

cl_real *cl_model_params(cl_model *m, size_t *count) {
    if (count) *count = m->nparams;
    return m->params;
}

cl_real *cl_model_grads(cl_model *m, size_t *count) {
    if (count) *count = m->nparams;
    return m->grads;
}

cl_real *cl_model_buffers(cl_model *m, size_t *count) {
    if (count) *count = m->nbuffers;
    return m->buffers;
}

/* ---- named tensors -------------------------------------------------------- */

typedef struct {
    const cl_node *node;
    int layer;
    cl_op_tensor t;
} tensor_ref;

/* Find the i-th named tensor across all nodes. */
static bool tensor_at(const cl_model *m, int i, tensor_ref *r) {
    if (i < 0) return false;
    for (int k = 0; k < m->nnodes; k++) {
        const cl_node *n = &m->nodes[k];
        if (!n->op->tensors) continue;
        cl_op_tensor ts[CL_MAX_OP_TENSORS];
        int cnt = n->op->tensors(m, n, ts);
        if (i < cnt) {
            r->node = n;
            r->layer = k;
            r->t = ts[i];
            return true;
        }
        i -= cnt;
    }
    return false;
}

int cl_model_tensor_count(const cl_model *m) {
    int c = 0;
    for (int k = 0; k < m->nnodes; k++) {
        cl_op_tensor ts[CL_MAX_OP_TENSORS];
        if (m->nodes[k].op->tensors) c += m->nodes[k].op->tensors(m, &m->nodes[k], ts);
    }
    return c;
}

cl_tensor_info cl_model_tensor(const cl_model *m, int i) {
    cl_tensor_info info;
    memset(&info, 0, sizeof info);
    tensor_ref r;
    if (!tensor_at(m, i, &r)) return info;
    snprintf(info.name, sizeof info.name, "layers.%d.%s", r.layer, r.t.attr);
    info.ndim = r.t.ndim;
    info.numel = 1;
    for (int d = 0; d < r.t.ndim; d++) {
        info.dims[d] = r.t.dims[d];
        info.numel *= r.t.dims[d];
    }
    info.trainable = r.t.trainable;
    info.layer = r.layer;
    return info;
}

int cl_model_find_tensor(const cl_model *m, const char *name) {
    int c = cl_model_tensor_count(m);
    for (int i = 0; i < c; i++)
        if (strcmp(cl_model_tensor(m, i).name, name) == 0) return i;
    return -1;
}

/* Index in kernel layout of PyTorch-layout element j of tensor t. */
static size_t stored_index(const cl_op_tensor *t, size_t j) {
    switch (t->layout) {
    case CL_LAYOUT_CONV_WEIGHT: {
        /* PyTorch [K][Cg][kh][kw] -> stored [g][kh][kw][Cg][Kg] */
        size_t K = (size_t)t->dims[0], Cg = (size_t)t->dims[1], R = (size_t)t->dims[2],
               S = (size_t)t->dims[3];
        size_t Kg = K / (size_t)t->groups;
        size_t s = j % S, r = (j / S) % R, c = (j / (S * R)) % Cg, k = j / (S * R * Cg);
        size_t g = k / Kg, kk = k % Kg;
        return (((g * R + r) * S + s) * Cg + c) * Kg + kk;
    }
    case CL_LAYOUT_TRANSPOSED: {
        /* PyTorch [O][rest...] -> stored [rest...][O] */
        size_t O = (size_t)t->dims[0], I = 1;
        for (int d = 1; d < t->ndim; d++) I *= (size_t)t->dims[d];
        return (j % I) * O + j / I;
    }
    default: return j;
    }
}

static cl_status copy_tensor(const cl_model *m, int i, cl_real *torch, const cl_real *src_base,
                             cl_real *dst_base, bool grad) {
    tensor_ref r;
    if (!m->compiled) return CL_ERR_STATE;
    if (!tensor_at(m, i, &r)) return CL_ERR_ARG;
    if (grad && !r.t.trainable) return CL_ERR_ARG;
    size_t numel = 1;
    for (int d = 0; d < r.t.ndim; d++) numel *= (size_t)r.t.dims[d];
    size_t base = (r.t.trainable ? r.node->param_off : r.node->buffer_off) + r.t.off;
    for (size_t j = 0; j < numel; j++) {
        size_t s = base + stored_index(&r.t, j);
        if (dst_base)
            dst_base[s] = torch[j];
        else
            torch[j] = src_base[s];
    }
    return CL_OK;
}

cl_status cl_model_get_tensor(const cl_model *m, int i, cl_real *dst) {
    tensor_ref r;
    if (!tensor_at(m, i, &r)) return CL_ERR_ARG;
    return copy_tensor(m, i, dst, r.t.trainable ? m->params : m->buffers, NULL, false);
}

cl_status cl_model_set_tensor(cl_model *m, int i, const cl_real *src) {
    tensor_ref r;
    if (!tensor_at(m, i, &r)) return CL_ERR_ARG;
    return copy_tensor(m, i, (cl_real *)src, NULL, r.t.trainable ? m->params : m->buffers, false);
}

cl_status cl_model_get_tensor_grad(const cl_model *m, int i, cl_real *dst) {
    return copy_tensor(m, i, dst, m->grads, NULL, true);
}

/* ---- layouts --------------------------------------------------------------- */

void cl_nchw_to_nhwc(cl_real *dst, const cl_real *src, int n, int c, int h, int w) {
    size_t hw = (size_t)h * w;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                dst[((size_t)i * hw + p) * c + k] = src[((size_t)i * c + k) * hw + p];
}

void cl_nhwc_to_nchw(cl_real *dst, const cl_real *src, int n, int c, int h, int w) {
    size_t hw = (size_t)h * w;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                dst[((size_t)i * c + k) * hw + p] = src[((size_t)i * hw + p) * c + k];
}
