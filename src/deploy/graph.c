/* graph.c: lowering a trained cl_model to its inference form (deploy.h), the
 * arena plan, and the float32 reference run of the exported network.
 *
 * Every layer kind maps through one table, `lowerings`, keyed by the op's name
 * (cl_op.name): a new layer kind needs one entry there, one kernel in kernels.h
 * and its int8 form in quantize.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#define DK_USE_FLOAT
#define DK_TARGET CL_CLONES
#include "deploy/deploy.h"

typedef struct {
    const cl_model *m;
    cl_deploy_graph *g;
    int *tmap;      /* cnnlab tensor -> deploy tensor */
    int *root;      /* cnnlab tensor -> the tensor it aliases (dropout, flatten) */
    int *consumers; /* per root tensor: the layers that read it, aliases not counted */
    int cap_nodes, cap_tensors;
    char *err;
    size_t errlen;
} lower_ctx;

static cl_status fail(lower_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cl_status fail(lower_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return CL_ERR_ARG;
}

/* A parameter tensor of layer `layer` ("weight", "running_mean", ...) in PyTorch's
 * layout as malloc'ed floats, or NULL if the layer has none. */
static float *layer_param(const cl_model *m, int layer, const char *attr, size_t *count) {
    char name[64];
    snprintf(name, sizeof name, "layers.%d.%s", layer, attr);
    int i = cl_model_find_tensor(m, name);
    if (i < 0) return NULL;
    cl_tensor_info info = cl_model_tensor(m, i);
    cl_real *tmp = malloc((size_t)info.numel * sizeof *tmp);
    float *out = malloc((size_t)info.numel * sizeof *out);
    if (!tmp || !out || cl_model_get_tensor(m, i, tmp) != CL_OK) {
        free(tmp);
        free(out);
        return NULL;
    }
    for (int64_t k = 0; k < info.numel; k++) out[k] = (float)tmp[k];
    free(tmp);
    if (count) *count = (size_t)info.numel;
    return out;
}

static int new_tensor(lower_ctx *c, cl_shape s) {
    cl_deploy_graph *g = c->g;
    if (g->ntensors == c->cap_tensors) {
        int cap = c->cap_tensors ? 2 * c->cap_tensors : 32;
        cl_deploy_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
        if (!t) return -1;
        g->tensors = t;
        c->cap_tensors = cap;
    }
    g->tensors[g->ntensors] = (cl_deploy_tensor){s.c, s.h, s.w, (size_t)s.c * s.h * s.w,
                                                 g->nnodes, -1, 0};
    return g->ntensors++;
}

/* Append a node reading the deploy tensors of cnnlab node `layer`'s inputs and
 * writing a new tensor for its output. NULL when out of memory. */
static cl_deploy_node *new_node(lower_ctx *c, int layer, cl_deploy_kind kind) {
    cl_deploy_graph *g = c->g;
    const cl_node *n = &c->m->nodes[layer];
    if (g->nnodes == c->cap_nodes) {
        int cap = c->cap_nodes ? 2 * c->cap_nodes : 32;
        cl_deploy_node *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        g->nodes = p;
        c->cap_nodes = cap;
    }
    cl_deploy_node *d = &g->nodes[g->nnodes];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->nin = n->nin;
    for (int i = 0; i < n->nin; i++) d->in[i] = c->tmap[n->in[i]];
    int t = new_tensor(c, c->m->tensors[n->out].shape);
    if (t < 0) return NULL;
    d->out = t;
    c->tmap[n->out] = t;
    d->layer0 = d->layer1 = layer;
    snprintf(d->ops, sizeof d->ops, "%s", n->op->name);
    g->nnodes++;
    return d;
}

/* The conv node that produced cnnlab tensor x, when x feeds only the layer being
 * lowered (so that layer can be merged into the conv), else NULL. */
static cl_deploy_node *sole_conv_producer(lower_ctx *c, int x) {
    int r = c->root[x];
    if (c->consumers[r] != 1 || r == c->root[cl_model_output(c->m)]) return NULL;
    int t = c->tmap[x];
    int p = c->g->tensors[t].producer;
    if (p < 0 || c->g->nodes[p].kind != CL_DEPLOY_CONV || c->g->nodes[p].out != t) return NULL;
    return &c->g->nodes[p];
}

/* Record that `layer` was merged into node d (its output is d's). */
static void merged(lower_ctx *c, cl_deploy_node *d, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    c->tmap[n->out] = d->out;
    d->layer1 = layer;
    size_t len = strlen(d->ops);
    snprintf(d->ops + len, sizeof d->ops - len, "+%s", n->op->name);
    c->g->layers_folded++;
}

static cl_status lower_conv(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    const cl_shape *in = cl_in_shape(c->m, n, 0), *out = cl_out_shape(c->m, n);
    const cl_conv2d_args *a = &n->a.conv;
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_CONV);
    if (!d) return fail(c, "out of memory");
    d->conv = (dk_conv){in->c, in->h, in->w, out->c, out->h, out->w, a->kernel_h, a->kernel_w,
                        a->stride_h, a->stride_w, a->pad_h, a->pad_w, a->dilation_h,
                        a->dilation_w, a->groups, 0};
    d->w = layer_param(c->m, layer, "weight", &d->nw);
    d->b = layer_param(c->m, layer, "bias", &d->nb);
    return d->w ? CL_OK : fail(c, "out of memory");
}

/* nn.Linear on a Cx1x1 input is a 1x1 convolution with PyTorch's [out][in] weight. */
static cl_status lower_linear(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    const cl_shape *in = cl_in_shape(c->m, n, 0);
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_CONV);
    if (!d) return fail(c, "out of memory");
    d->conv = (dk_conv){in->c, 1, 1, n->a.linear.out, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0};
    d->w = layer_param(c->m, layer, "weight", &d->nw);
    d->b = layer_param(c->m, layer, "bias", &d->nb);
    return d->w ? CL_OK : fail(c, "out of memory");
}

/* BatchNorm in eval mode is y = x * scale + shift per channel with
 * scale = gamma / sqrt(var + eps), shift = beta - mean * scale. After a convolution
 * it folds into the weights (w * scale) and bias (b * scale + shift), computed in
 * double and rounded once; elsewhere it stays a per-channel affine step computed
 * as cnnlab's BatchNorm computes it. */
static cl_status lower_batchnorm(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    size_t C = (size_t)cl_in_shape(c->m, n, 0)->c;
    float *gamma = layer_param(c->m, layer, "weight", NULL);
    float *beta = layer_param(c->m, layer, "bias", NULL);
    float *mean = layer_param(c->m, layer, "running_mean", NULL);
    float *var = layer_param(c->m, layer, "running_var", NULL);
    cl_status st = CL_OK;
    if (!gamma || !beta || !mean || !var) {
        st = fail(c, "out of memory");
        goto done;
    }
    const float eps = n->a.norm.eps;
    cl_deploy_node *conv = sole_conv_producer(c, n->in[0]);
    if (conv && !conv->conv.relu) {
        if (!conv->b) {
            conv->b = calloc(C, sizeof *conv->b);
            conv->nb = C;
            if (!conv->b) {
                st = fail(c, "out of memory");
                goto done;
            }
        }
        size_t per_k = conv->nw / C;
        for (size_t k = 0; k < C; k++) {
            double scale = (double)gamma[k] / sqrt((double)var[k] + eps);
            for (size_t i = 0; i < per_k; i++)
                conv->w[k * per_k + i] = (float)(conv->w[k * per_k + i] * scale);
            conv->b[k] = (float)(((double)conv->b[k] - mean[k]) * scale + beta[k]);
        }
        conv->bn_folded = true;
        merged(c, conv, layer);
        goto done;
    }
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_AFFINE);
    if (!d) {
        st = fail(c, "out of memory");
        goto done;
    }
    d->nw = d->nb = C;
    d->w = gamma; /* becomes the scale */
    d->b = beta;  /* becomes the shift */
    for (size_t k = 0; k < C; k++) {
        float is = (float)(1.0 / sqrt(var[k] + eps));
        gamma[k] = gamma[k] * is;
        beta[k] = beta[k] - mean[k] * gamma[k];
    }
    gamma = beta = NULL;
done:
    free(gamma);
    free(beta);
    free(mean);
    free(var);
    return st;
}

static cl_status lower_norm(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    const cl_shape *s = cl_in_shape(c->m, n, 0);
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_NORM);
    if (!d) return fail(c, "out of memory");
    d->norm = (dk_norm){s->c, s->h * s->w, n->a.norm.groups ? n->a.norm.groups : 1,
                        n->a.norm.elementwise, n->a.norm.eps};
    d->w = layer_param(c->m, layer, "weight", &d->nw);
    d->b = layer_param(c->m, layer, "bias", &d->nb);
    return d->w && d->b ? CL_OK : fail(c, "out of memory");
}

static cl_status lower_act(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    int kind;
    switch (n->a.act.kind) {
    case CL_ACT_RELU: kind = DK_RELU; break;
    case CL_ACT_LEAKY_RELU: kind = DK_LEAKY_RELU; break;
    case CL_ACT_GELU: kind = DK_GELU; break;
    case CL_ACT_SILU: kind = DK_SILU; break;
    case CL_ACT_HARDSWISH: kind = DK_HARDSWISH; break;
    default: return fail(c, "layer %d (%s): the export has no form for this activation", layer, n->op->name);
    }
    cl_deploy_node *conv = sole_conv_producer(c, n->in[0]);
    if (kind == DK_RELU && conv && !conv->conv.relu) {
        conv->conv.relu = 1;
        merged(c, conv, layer);
        return CL_OK;
    }
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_ACT);
    if (!d) return fail(c, "out of memory");
    d->act = kind;
    d->slope = n->a.act.slope;
    return CL_OK;
}

static cl_status lower_pool(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    const cl_shape *in = cl_in_shape(c->m, n, 0), *out = cl_out_shape(c->m, n);
    const cl_conv2d_args *a = &n->a.conv;
    bool max = !strcmp(n->op->name, "maxpool2d");
    cl_deploy_node *d = new_node(c, layer, max ? CL_DEPLOY_MAXPOOL : CL_DEPLOY_AVGPOOL);
    if (!d) return fail(c, "out of memory");
    d->pool = (dk_pool){in->c, in->h, in->w, out->h, out->w, a->kernel_h, a->kernel_w,
                        a->stride_h, a->stride_w, a->pad_h, a->pad_w,
                        max ? a->dilation_h : 1, max ? a->dilation_w : 1};
    return CL_OK;
}

static cl_status lower_gap(lower_ctx *c, int layer) {
    const cl_shape *in = cl_in_shape(c->m, &c->m->nodes[layer], 0);
    cl_deploy_node *d = new_node(c, layer, CL_DEPLOY_AVGPOOL);
    if (!d) return fail(c, "out of memory");
    d->pool = (dk_pool){in->c, in->h, in->w, 1, 1, in->h, in->w, 1, 1, 0, 0, 1, 1};
    return CL_OK;
}

static cl_status lower_add(lower_ctx *c, int layer) {
    return new_node(c, layer, CL_DEPLOY_ADD) ? CL_OK : fail(c, "out of memory");
}

static cl_status lower_concat(lower_ctx *c, int layer) {
    return new_node(c, layer, CL_DEPLOY_CONCAT) ? CL_OK : fail(c, "out of memory");
}

/* dropout is the identity at inference; flatten of a CHW tensor moves nothing */
static cl_status lower_identity(lower_ctx *c, int layer) {
    const cl_node *n = &c->m->nodes[layer];
    c->tmap[n->out] = c->tmap[n->in[0]];
    c->g->layers_folded++;
    return CL_OK;
}

static const struct {
    const char *op;
    cl_status (*lower)(lower_ctx *c, int layer);
    bool alias; /* the output is the input */
} lowerings[] = {
    {"conv2d", lower_conv, false},      {"linear", lower_linear, false},
    {"batchnorm2d", lower_batchnorm, false}, {"groupnorm", lower_norm, false},
    {"layernorm", lower_norm, false},   {"relu", lower_act, false},
    {"leakyrelu", lower_act, false},    {"gelu", lower_act, false},
    {"silu", lower_act, false},         {"hardswish", lower_act, false},
    {"maxpool2d", lower_pool, false},   {"avgpool2d", lower_pool, false},
    {"gap", lower_gap, false},          {"add", lower_add, false},
    {"concat", lower_concat, false},    {"dropout", lower_identity, true},
    {"flatten", lower_identity, true},
};

static int lowering_of(const char *op) {
    for (size_t i = 0; i < sizeof lowerings / sizeof lowerings[0]; i++)
        if (!strcmp(lowerings[i].op, op)) return (int)i;
    return -1;
}

bool cl_deploy_supports(const char *op) {
    return lowering_of(op) >= 0;
}

typedef struct {
    int start, end; /* lifetime: first writer, last reader */
    size_t size, off;
} arena_buffer;

static int by_size(const void *a, const void *b) {
    const arena_buffer *x = *(const arena_buffer *const *)a, *y = *(const arena_buffer *const *)b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

/* Lifetimes, then offsets. An element-wise step whose input dies at it writes in
 * place, so the two tensors are one buffer. Buffers are placed largest first, each
 * at the lowest offset clear of every placed buffer alive at the same time (the
 * greedy-by-size plan of TensorFlow Lite Micro). False when out of memory. */
static bool plan_arena(cl_deploy_graph *g) {
    for (int t = 0; t < g->ntensors; t++) g->tensors[t].last_use = g->tensors[t].producer;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) g->tensors[g->nodes[i].in[k]].last_use = i;
    g->tensors[g->output].last_use = g->nnodes;
    arena_buffer *bufs = calloc((size_t)g->ntensors, sizeof *bufs);
    arena_buffer **order = malloc((size_t)g->ntensors * sizeof *order);
    int *buf_of = malloc((size_t)g->ntensors * sizeof *buf_of);
    if (!bufs || !order || !buf_of) {
        free(bufs);
        free(order);
        free(buf_of);
        return false;
    }
    int nbufs = 0;
    g->arena = g->naive = 0;
    for (int t = 0; t < g->ntensors; t++) {
        const cl_deploy_tensor *x = &g->tensors[t];
        g->naive += x->size;
        int p = x->producer;
        if (p >= 0) {
            const cl_deploy_node *d = &g->nodes[p];
            bool elementwise = d->kind == CL_DEPLOY_ACT || d->kind == CL_DEPLOY_AFFINE ||
                               d->kind == CL_DEPLOY_NORM;
            if (elementwise && g->tensors[d->in[0]].last_use == p) {
                buf_of[t] = buf_of[d->in[0]];
                bufs[buf_of[t]].end = x->last_use;
                continue;
            }
        }
        bufs[nbufs] = (arena_buffer){x->producer, x->last_use, x->size, 0};
        order[nbufs] = &bufs[nbufs];
        buf_of[t] = nbufs++;
    }
    qsort(order, (size_t)nbufs, sizeof *order, by_size);
    for (int i = 0; i < nbufs; i++) {
        arena_buffer *x = order[i];
        for (bool moved = true; moved;) {
            moved = false;
            for (int k = 0; k < i; k++) {
                const arena_buffer *y = order[k];
                if (x->start <= y->end && y->start <= x->end && x->off < y->off + y->size &&
                    y->off < x->off + x->size) {
                    x->off = y->off + y->size;
                    moved = true;
                }
            }
        }
        if (x->off + x->size > g->arena) g->arena = x->off + x->size;
    }
    for (int t = 0; t < g->ntensors; t++) g->tensors[t].off = bufs[buf_of[t]].off;
    free(bufs);
    free(order);
    free(buf_of);
    for (int i = 0; i < g->nnodes; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        const cl_deploy_tensor *o = &g->tensors[d->out];
        if (d->kind == CL_DEPLOY_CONV && (size_t)o->h * o->w > g->max_plane)
            g->max_plane = (size_t)o->h * o->w;
        if (d->kind == CL_DEPLOY_NORM && o->size > g->max_norm) g->max_norm = o->size;
    }
    return true;
}

cl_deploy_graph *cl_deploy_build(const cl_model *m, const float *mean, const float *std,
                                 char *err, size_t errlen) {
    cl_deploy_graph *g = calloc(1, sizeof *g);
    lower_ctx c = {m, g, NULL, NULL, NULL, 0, 0, err, errlen};
    if (!g) goto oom;
    g->input = cl_model_shape(m, 0);
    if (g->input.c > CL_DEPLOY_MAX_CHANNELS) {
        snprintf(err, errlen, "the model has %d input channels; the export takes at most %d",
                 g->input.c, CL_DEPLOY_MAX_CHANNELS);
        cl_deploy_free(g);
        return NULL;
    }
    for (int k = 0; k < g->input.c; k++) {
        g->mean[k] = mean[k];
        g->std[k] = std[k];
    }
    g->classes = cl_model_shape(m, cl_model_output(m)).c;
    c.tmap = malloc((size_t)m->ntensors * sizeof *c.tmap);
    c.root = malloc((size_t)m->ntensors * sizeof *c.root);
    c.consumers = calloc((size_t)m->ntensors, sizeof *c.consumers);
    if (!c.tmap || !c.root || !c.consumers) goto oom;
    for (int t = 0; t < m->ntensors; t++) c.root[t] = t;
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        int l = lowering_of(n->op->name);
        if (l < 0) {
            snprintf(err, errlen, "layer %d (%s): the export has no form for this layer kind", i,
                     n->op->name);
            goto fail;
        }
        if (lowerings[l].alias) c.root[n->out] = c.root[n->in[0]];
        else
            for (int k = 0; k < n->nin; k++) c.consumers[c.root[n->in[k]]]++;
    }
    if (new_tensor(&c, g->input) < 0) goto oom;
    g->tensors[0].producer = -1;
    c.tmap[0] = 0;
    for (int i = 0; i < m->nnodes; i++)
        if (lowerings[lowering_of(m->nodes[i].op->name)].lower(&c, i) != CL_OK) goto fail;
    g->output = c.tmap[cl_model_output(m)];
    if (!plan_arena(g)) goto oom;
    free(c.tmap);
    free(c.root);
    free(c.consumers);
    return g;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(c.tmap);
    free(c.root);
    free(c.consumers);
    cl_deploy_free(g);
    return NULL;
}

void cl_deploy_free(cl_deploy_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->nnodes; i++) {
        free(g->nodes[i].w);
        free(g->nodes[i].b);
    }
    free(g->nodes);
    free(g->tensors);
    free(g);
}

size_t cl_deploy_weight_bytes(const cl_deploy_graph *g) {
    size_t n = 0;
    for (int i = 0; i < g->nnodes; i++) n += (g->nodes[i].nw + g->nodes[i].nb) * sizeof(float);
    return n;
}

void cl_deploy_forward(const cl_deploy_graph *g, const float *pixels, float *logits,
                       float *arena, cl_deploy_observer observe, void *ctx) {
    const cl_deploy_tensor *t = g->tensors;
    dk_normalize(arena + t[0].off, pixels, g->mean, g->std, g->input.c, g->input.h * g->input.w);
    if (observe) observe(ctx, 0, arena + t[0].off, t[0].size);
    for (int i = 0; i < g->nnodes; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        float *out = arena + t[d->out].off;
        const float *in = arena + t[d->in[0]].off;
        const cl_deploy_tensor *o = &t[d->out];
        switch (d->kind) {
        case CL_DEPLOY_CONV: dk_conv_f32(out, in, d->w, d->b, &d->conv); break;
        case CL_DEPLOY_MAXPOOL: dk_maxpool_f32(out, in, &d->pool); break;
        case CL_DEPLOY_AVGPOOL: dk_avgpool_f32(out, in, &d->pool); break;
        case CL_DEPLOY_AFFINE: dk_affine_f32(out, in, d->w, d->b, o->c, o->h * o->w); break;
        case CL_DEPLOY_NORM: dk_groupnorm_f32(out, in, d->w, d->b, &d->norm); break;
        case CL_DEPLOY_ACT: dk_act_f32(out, in, (int)o->size, d->act, d->slope); break;
        case CL_DEPLOY_ADD:
            dk_add_f32(out, in, arena + t[d->in[1]].off, (int)o->size);
            break;
        case CL_DEPLOY_CONCAT: {
            size_t at = 0;
            for (int k = 0; k < d->nin; k++) {
                const cl_deploy_tensor *x = &t[d->in[k]];
                dk_copy_f32(out + at, arena + x->off, (int)x->size);
                at += x->size;
            }
            break;
        }
        }
        if (observe) observe(ctx, d->out, out, o->size);
    }
    for (int k = 0; k < g->classes; k++) logits[k] = arena[t[g->output].off + k];
}
