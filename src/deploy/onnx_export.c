/* onnx_export.c: a compiled cnnlab model as an ONNX file, in inference form.
 *
 * The graph is built as protobuf-c messages (types generated at build time from
 * Debian's onnx.proto into build/gen/) and packed once. Every cnnlab layer maps to
 * ONNX nodes through one table, op_exporters[], keyed by the op (see docs/deploy.md
 * for the mapping). Activations stay NCHW: cnnlab tensors are [N, C, H, W] in ONNX,
 * except after flatten and linear, which give [N, F] (rank 2, as PyTorch's); a
 * later layer that needs rank 4 gets a Reshape to [N, F, 1, 1] first.
 *
 * Opset 21 writes GroupNorm and LayerNorm as GroupNormalization (per-channel scale
 * and bias since opset 21) and GELU as Gelu; opset 17 writes what torch.onnx writes:
 * Reshape [N, G, -1] -> InstanceNormalization (unit scale) -> Reshape -> Mul -> Add,
 * and GELU as x * (1 + erf(x / sqrt 2)) * 0.5. All memory of one export lives in an
 * arena freed at the end. The int8 form (cl_onnx_export_int8, at the end) is written
 * from the inference graph and its quantization (src/deploy/quantize.h) instead of
 * the model: QuantizeLinear/DequantizeLinear pairs around the same ops. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy/quantize.h"
#include "nn/model.h"
#include "onnx.pb-c.h"

typedef Onnx__NodeProto node_proto;
typedef Onnx__TensorProto tensor_proto;

/* Where each cnnlab tensor lives in the graph. */
typedef struct {
    const char *name; /* ONNX value name */
    int rank;         /* 4: [N, C, H, W]; 2: [N, F] */
    const char *as4d, *as2d; /* the value reshaped to the other rank, made once */
} value_ref;

typedef struct {
    const cl_model *m;
    int opset;
    void **blocks; /* the arena: every allocation, freed together */
    size_t nblocks, cap_blocks;
    bool oom;
    node_proto **nodes;
    size_t nnodes, cap_nodes;
    tensor_proto **inits;
    size_t ninits, cap_inits;
    value_ref *vals; /* [m->ntensors] */
} exporter;

static void *ex_alloc(exporter *ex, size_t size) {
    if (ex->oom) return NULL;
    if (ex->nblocks == ex->cap_blocks) {
        size_t cap = ex->cap_blocks ? 2 * ex->cap_blocks : 256;
        void **b = realloc(ex->blocks, cap * sizeof *b);
        if (!b) {
            ex->oom = true;
            return NULL;
        }
        ex->blocks = b;
        ex->cap_blocks = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        ex->oom = true;
        return NULL;
    }
    ex->blocks[ex->nblocks++] = p;
    return p;
}

static char *ex_strdup(exporter *ex, const char *s) {
    char *d = ex_alloc(ex, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static char *ex_printf(exporter *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ex_printf(exporter *ex, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ex_strdup(ex, buf);
}

/* Append p to a growing array of pointers. */
static void push(exporter *ex, void ***arr, size_t *n, size_t *cap, void *p) {
    if (!p || ex->oom) return;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a) {
            ex->oom = true;
            return;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
}

/* ---- initializers ---------------------------------------------------------- */

static tensor_proto *add_init(exporter *ex, const char *name, const int64_t *dims, int ndim,
                              int32_t type, const void *data, size_t nbytes) {
    tensor_proto *t = ex_alloc(ex, sizeof *t);
    int64_t *d = ex_alloc(ex, (size_t)ndim * sizeof *d);
    uint8_t *raw = ex_alloc(ex, nbytes);
    if (!t || !d || !raw) return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d);
    memcpy(raw, data, nbytes); /* raw_data is little-endian, as this machine */
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = true;
    t->data_type = type;
    t->name = ex_strdup(ex, name);
    t->has_raw_data = true;
    t->raw_data = (ProtobufCBinaryData){nbytes, raw};
    push(ex, (void ***)&ex->inits, &ex->ninits, &ex->cap_inits, t);
    return t;
}

static const char *init_floats(exporter *ex, const char *name, const int64_t *dims, int ndim,
                               const float *v) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    add_init(ex, name, dims, ndim, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, v, n * sizeof *v);
    return name;
}

static const char *init_ints(exporter *ex, const char *name, const int64_t *v, int n) {
    int64_t d = n;
    add_init(ex, name, &d, 1, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, v, (size_t)n * sizeof *v);
    return name;
}

static const char *find_init(const exporter *ex, const char *name) {
    for (size_t i = 0; i < ex->ninits; i++)
        if (!strcmp(ex->inits[i]->name, name)) return ex->inits[i]->name;
    return NULL;
}

/* A scalar float constant (shared by name). */
static const char *init_scalar(exporter *ex, const char *name, float v) {
    if (find_init(ex, name)) return name;
    add_init(ex, name, NULL, 0, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &v, sizeof v);
    return name;
}

/* Layer `layer`'s tensor `attr` ("weight", "running_mean", ...) as float32 in
 * PyTorch's layout, added as initializer "layers.L.attr" with the given dims (NULL:
 * its own). Returns the name, or NULL when the layer has no such tensor. */
static const char *init_param(exporter *ex, int layer, const char *attr, const int64_t *dims,
                              int ndim) {
    char want[64];
    snprintf(want, sizeof want, "layers.%d.%s", layer, attr);
    int i = cl_model_find_tensor(ex->m, want);
    if (i < 0) return NULL;
    cl_tensor_info info = cl_model_tensor(ex->m, i);
    float *v = ex_alloc(ex, (size_t)info.numel * sizeof *v);
    cl_real *tmp = malloc((size_t)info.numel * sizeof *tmp);
    if (!v || !tmp) {
        free(tmp);
        ex->oom = true;
        return NULL;
    }
    cl_model_get_tensor(ex->m, i, tmp);
    for (int64_t k = 0; k < info.numel; k++) v[k] = (float)tmp[k];
    free(tmp);
    return init_floats(ex, ex_strdup(ex, want), dims ? dims : info.dims, dims ? ndim : info.ndim, v);
}

/* ---- nodes ------------------------------------------------------------------ */

static node_proto *add_node(exporter *ex, const char *op, const char *name, const char *const *in,
                            int nin, const char *out) {
    node_proto *n = ex_alloc(ex, sizeof *n);
    char **ins = ex_alloc(ex, (size_t)nin * sizeof *ins);
    char **outs = ex_alloc(ex, sizeof *outs);
    if (!n || !ins || !outs) return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < nin; i++) ins[i] = ex_strdup(ex, in[i] ? in[i] : "");
    outs[0] = ex_strdup(ex, out);
    n->n_input = (size_t)nin;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->op_type = ex_strdup(ex, op);
    n->name = ex_strdup(ex, name);
    push(ex, (void ***)&ex->nodes, &ex->nnodes, &ex->cap_nodes, n);
    return n;
}

static Onnx__AttributeProto *add_attr(exporter *ex, node_proto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (!n) return NULL;
    Onnx__AttributeProto *a = ex_alloc(ex, sizeof *a);
    Onnx__AttributeProto **arr = ex_alloc(ex, (n->n_attribute + 1) * sizeof *arr);
    if (!a || !arr) return NULL;
    onnx__attribute_proto__init(a);
    a->name = ex_strdup(ex, name);
    a->has_type = true;
    a->type = type;
    if (n->n_attribute) memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

static void attr_int(exporter *ex, node_proto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = add_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = true, a->i = v;
}

static void attr_float(exporter *ex, node_proto *n, const char *name, float v) {
    Onnx__AttributeProto *a = add_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = true, a->f = v;
}

static void attr_ints(exporter *ex, node_proto *n, const char *name, const int64_t *v, int k) {
    Onnx__AttributeProto *a = add_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = ex_alloc(ex, (size_t)k * sizeof *d);
    if (!a || !d) return;
    memcpy(d, v, (size_t)k * sizeof *d);
    a->n_ints = (size_t)k;
    a->ints = d;
}

static void attr_string(exporter *ex, node_proto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = add_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *d = ex_strdup(ex, v);
    if (a && d) a->has_s = true, a->s = (ProtobufCBinaryData){strlen(d), (uint8_t *)d};
}

/* ---- values ------------------------------------------------------------------- */

/* The ONNX name of cnnlab tensor t at rank 4 or rank 2, reshaping once when needed. */
static const char *value4(exporter *ex, int t) {
    value_ref *v = &ex->vals[t];
    if (v->rank == 4) return v->name;
    if (!v->as4d) {
        static const int64_t shape[4] = {0, -1, 1, 1};
        const char *s = find_init(ex, "shape_n_f_1_1");
        if (!s) s = init_ints(ex, "shape_n_f_1_1", shape, 4);
        const char *in[2] = {v->name, s};
        v->as4d = ex_printf(ex, "%s_4d", v->name);
        add_node(ex, "Reshape", v->as4d, in, 2, v->as4d);
    }
    return v->as4d;
}

static const char *value2(exporter *ex, int t) {
    value_ref *v = &ex->vals[t];
    if (v->rank == 2) return v->name;
    if (!v->as2d) {
        v->as2d = ex_printf(ex, "%s_2d", v->name);
        node_proto *n = add_node(ex, "Flatten", v->as2d, &v->name, 1, v->as2d);
        attr_int(ex, n, "axis", 1);
    }
    return v->as2d;
}

/* The name of a node's output and its rank. */
static const char *set_out(exporter *ex, const cl_node *n, int rank) {
    value_ref *v = &ex->vals[n->out];
    v->name = ex_printf(ex, "t%d", n->out);
    v->rank = rank;
    return v->name;
}

/* ---- the layers ------------------------------------------------------------------ */

typedef cl_status (*export_fn)(exporter *ex, const cl_node *n, int layer);

static void pool_geometry(exporter *ex, node_proto *p, const cl_conv2d_args *a, bool dilations) {
    int64_t k[2] = {a->kernel_h, a->kernel_w}, s[2] = {a->stride_h, a->stride_w};
    int64_t pads[4] = {a->pad_h, a->pad_w, a->pad_h, a->pad_w};
    int64_t d[2] = {a->dilation_h, a->dilation_w};
    attr_ints(ex, p, "kernel_shape", k, 2);
    attr_ints(ex, p, "strides", s, 2);
    attr_ints(ex, p, "pads", pads, 4);
    if (dilations) attr_ints(ex, p, "dilations", d, 2);
}

static cl_status export_conv(exporter *ex, const cl_node *n, int layer) {
    const char *in[3] = {value4(ex, n->in[0]), init_param(ex, layer, "weight", NULL, 0),
                         init_param(ex, layer, "bias", NULL, 0)};
    node_proto *p = add_node(ex, "Conv", ex_printf(ex, "layers.%d.Conv", layer), in,
                             in[2] ? 3 : 2, set_out(ex, n, 4));
    pool_geometry(ex, p, &n->a.conv, true);
    attr_int(ex, p, "group", n->a.conv.groups);
    return CL_OK;
}

static cl_status export_maxpool(exporter *ex, const cl_node *n, int layer) {
    const char *in = value4(ex, n->in[0]);
    node_proto *p = add_node(ex, "MaxPool", ex_printf(ex, "layers.%d.MaxPool", layer), &in, 1,
                             set_out(ex, n, 4));
    pool_geometry(ex, p, &n->a.conv, n->a.conv.dilation_h != 1 || n->a.conv.dilation_w != 1);
    return CL_OK;
}

static cl_status export_avgpool(exporter *ex, const cl_node *n, int layer) {
    const char *in = value4(ex, n->in[0]);
    node_proto *p = add_node(ex, "AveragePool", ex_printf(ex, "layers.%d.AveragePool", layer),
                             &in, 1, set_out(ex, n, 4));
    pool_geometry(ex, p, &n->a.conv, false);
    attr_int(ex, p, "count_include_pad", 1);
    return CL_OK;
}

static cl_status export_gap(exporter *ex, const cl_node *n, int layer) {
    const char *in = value4(ex, n->in[0]);
    add_node(ex, "GlobalAveragePool", ex_printf(ex, "layers.%d.GlobalAveragePool", layer), &in, 1,
             set_out(ex, n, 4));
    return CL_OK;
}

static cl_status export_batchnorm(exporter *ex, const cl_node *n, int layer) {
    /* rank 2 is fine: BatchNormalization takes [N, C] as BatchNorm1d */
    const char *in[5] = {ex->vals[n->in[0]].name, init_param(ex, layer, "weight", NULL, 0),
                         init_param(ex, layer, "bias", NULL, 0),
                         init_param(ex, layer, "running_mean", NULL, 0),
                         init_param(ex, layer, "running_var", NULL, 0)};
    node_proto *p = add_node(ex, "BatchNormalization",
                             ex_printf(ex, "layers.%d.BatchNormalization", layer), in, 5,
                             set_out(ex, n, ex->vals[n->in[0]].rank));
    attr_float(ex, p, "epsilon", n->a.norm.eps);
    if (n->a.norm.momentum != 0.1f) /* ONNX's momentum weighs the running value */
        attr_float(ex, p, "momentum", 1.0f - n->a.norm.momentum);
    return CL_OK;
}

/* GroupNorm, and LayerNorm over channel groups (nn.GroupNorm(1, C)). */
static cl_status export_groupnorm(exporter *ex, const cl_node *n, int layer) {
    const cl_shape *s = cl_in_shape(ex->m, n, 0);
    const int G = n->a.norm.groups;
    const char *x = value4(ex, n->in[0]);
    if (ex->opset >= 21) {
        const char *in[3] = {x, init_param(ex, layer, "weight", NULL, 0),
                             init_param(ex, layer, "bias", NULL, 0)};
        node_proto *p = add_node(ex, "GroupNormalization",
                                 ex_printf(ex, "layers.%d.GroupNormalization", layer), in, 3,
                                 set_out(ex, n, 4));
        attr_float(ex, p, "epsilon", n->a.norm.eps);
        attr_int(ex, p, "num_groups", G);
        return CL_OK;
    }
    /* torch.onnx's decomposition: InstanceNormalization over [N, G, C/G*H*W] */
    const int64_t grouped[3] = {0, G, -1}, back[4] = {0, s->c, s->h, s->w};
    const int64_t gdim = G, cdims[3] = {s->c, 1, 1};
    float *ones = ex_alloc(ex, (size_t)G * sizeof *ones), *zeros = ex_alloc(ex, (size_t)G * sizeof *zeros);
    if (!ones || !zeros) return CL_ERR_NOMEM;
    for (int g = 0; g < G; g++) ones[g] = 1.0f;
    const char *base = ex_printf(ex, "layers.%d", layer);
    const char *r1in[2] = {x, init_ints(ex, ex_printf(ex, "%s.grouped_shape", base), grouped, 3)};
    const char *r1 = ex_printf(ex, "%s.grouped", base);
    add_node(ex, "Reshape", ex_printf(ex, "%s.Reshape", base), r1in, 2, r1);
    const char *inin[3] = {r1, init_floats(ex, ex_printf(ex, "%s.unit_scale", base), &gdim, 1, ones),
                           init_floats(ex, ex_printf(ex, "%s.zero_bias", base), &gdim, 1, zeros)};
    const char *in_out = ex_printf(ex, "%s.normalized", base);
    node_proto *p = add_node(ex, "InstanceNormalization",
                             ex_printf(ex, "%s.InstanceNormalization", base), inin, 3, in_out);
    attr_float(ex, p, "epsilon", n->a.norm.eps);
    const char *r2in[2] = {in_out, init_ints(ex, ex_printf(ex, "%s.shape", base), back, 4)};
    const char *r2 = ex_printf(ex, "%s.ungrouped", base);
    add_node(ex, "Reshape", ex_printf(ex, "%s.Reshape_1", base), r2in, 2, r2);
    const char *min[2] = {r2, init_param(ex, layer, "weight", cdims, 3)};
    const char *mo = ex_printf(ex, "%s.scaled", base);
    add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, mo);
    const char *ain[2] = {mo, init_param(ex, layer, "bias", cdims, 3)};
    add_node(ex, "Add", ex_printf(ex, "%s.Add", base), ain, 2, set_out(ex, n, 4));
    return CL_OK;
}

static cl_status export_layernorm(exporter *ex, const cl_node *n, int layer) {
    if (!n->a.norm.elementwise) return export_groupnorm(ex, n, layer);
    /* nn.LayerNorm([C, H, W]): LayerNormalization over axes 1.. (opset 17) */
    const char *in[3] = {value4(ex, n->in[0]), init_param(ex, layer, "weight", NULL, 0),
                         init_param(ex, layer, "bias", NULL, 0)};
    node_proto *p = add_node(ex, "LayerNormalization",
                             ex_printf(ex, "layers.%d.LayerNormalization", layer), in, 3,
                             set_out(ex, n, 4));
    attr_int(ex, p, "axis", 1);
    attr_float(ex, p, "epsilon", n->a.norm.eps);
    return CL_OK;
}

static cl_status export_relu(exporter *ex, const cl_node *n, int layer) {
    const char *in = ex->vals[n->in[0]].name;
    add_node(ex, "Relu", ex_printf(ex, "layers.%d.Relu", layer), &in, 1,
             set_out(ex, n, ex->vals[n->in[0]].rank));
    return CL_OK;
}

static cl_status export_leaky_relu(exporter *ex, const cl_node *n, int layer) {
    const char *in = ex->vals[n->in[0]].name;
    node_proto *p = add_node(ex, "LeakyRelu", ex_printf(ex, "layers.%d.LeakyRelu", layer), &in, 1,
                             set_out(ex, n, ex->vals[n->in[0]].rank));
    attr_float(ex, p, "alpha", n->a.act.slope);
    return CL_OK;
}

static cl_status export_gelu(exporter *ex, const cl_node *n, int layer) {
    const char *x = ex->vals[n->in[0]].name;
    int rank = ex->vals[n->in[0]].rank;
    if (ex->opset >= 20) {
        node_proto *p = add_node(ex, "Gelu", ex_printf(ex, "layers.%d.Gelu", layer), &x, 1,
                                 set_out(ex, n, rank));
        attr_string(ex, p, "approximate", "none");
        return CL_OK;
    }
    /* x * (1 + erf(x / sqrt(2))) * 0.5, node for node as torch.onnx writes it */
    const char *base = ex_printf(ex, "layers.%d", layer);
    const char *din[2] = {x, init_scalar(ex, "sqrt2", 1.41421353816986083984375f)};
    const char *d = ex_printf(ex, "%s.div", base), *e = ex_printf(ex, "%s.erf", base);
    const char *a = ex_printf(ex, "%s.erf1", base), *mo = ex_printf(ex, "%s.xerf1", base);
    add_node(ex, "Div", ex_printf(ex, "%s.Div", base), din, 2, d);
    add_node(ex, "Erf", ex_printf(ex, "%s.Erf", base), &d, 1, e);
    const char *ain[2] = {e, init_scalar(ex, "one", 1.0f)};
    add_node(ex, "Add", ex_printf(ex, "%s.Add", base), ain, 2, a);
    const char *min[2] = {x, a};
    add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, mo);
    const char *hin[2] = {mo, init_scalar(ex, "half", 0.5f)};
    add_node(ex, "Mul", ex_printf(ex, "%s.Mul_1", base), hin, 2, set_out(ex, n, rank));
    return CL_OK;
}

/* SiLU: x * Sigmoid(x), as torch.onnx writes nn.SiLU (ONNX has no SiLU op). */
static cl_status export_silu(exporter *ex, const cl_node *n, int layer) {
    const char *x = ex->vals[n->in[0]].name;
    const char *sig = ex_printf(ex, "layers.%d.sigmoid", layer);
    add_node(ex, "Sigmoid", ex_printf(ex, "layers.%d.Sigmoid", layer), &x, 1, sig);
    const char *min[2] = {x, sig};
    add_node(ex, "Mul", ex_printf(ex, "layers.%d.Mul", layer), min, 2,
             set_out(ex, n, ex->vals[n->in[0]].rank));
    return CL_OK;
}

static cl_status export_hardswish(exporter *ex, const cl_node *n, int layer) {
    const char *x = ex->vals[n->in[0]].name;
    add_node(ex, "HardSwish", ex_printf(ex, "layers.%d.HardSwish", layer), &x, 1,
             set_out(ex, n, ex->vals[n->in[0]].rank));
    return CL_OK;
}

/* Dropout is the identity in inference: its output is its input. */
static cl_status export_dropout(exporter *ex, const cl_node *n, int layer) {
    (void)layer;
    ex->vals[n->out] = ex->vals[n->in[0]];
    return CL_OK;
}

/* Add and concat: both inputs at rank 2 stay so, else all at rank 4. */
static cl_status export_combine(exporter *ex, const cl_node *n, int layer, const char *op) {
    bool all2 = true;
    for (int i = 0; i < n->nin; i++) all2 = all2 && ex->vals[n->in[i]].rank == 2;
    const char *in[CL_MAX_INPUTS];
    for (int i = 0; i < n->nin; i++) in[i] = all2 ? ex->vals[n->in[i]].name : value4(ex, n->in[i]);
    node_proto *p = add_node(ex, op, ex_printf(ex, "layers.%d.%s", layer, op), in, n->nin,
                             set_out(ex, n, all2 ? 2 : 4));
    if (!strcmp(op, "Concat")) attr_int(ex, p, "axis", 1);
    return CL_OK;
}

static cl_status export_add(exporter *ex, const cl_node *n, int layer) {
    return export_combine(ex, n, layer, "Add");
}

static cl_status export_concat(exporter *ex, const cl_node *n, int layer) {
    return export_combine(ex, n, layer, "Concat");
}

static cl_status export_flatten(exporter *ex, const cl_node *n, int layer) {
    (void)layer;
    const char *f = value2(ex, n->in[0]); /* Flatten(axis=1): C, H, W order as PyTorch */
    ex->vals[n->out] = (value_ref){f, 2, NULL, NULL};
    return CL_OK;
}

static cl_status export_linear(exporter *ex, const cl_node *n, int layer) {
    const char *in[3] = {value2(ex, n->in[0]), init_param(ex, layer, "weight", NULL, 0),
                         init_param(ex, layer, "bias", NULL, 0)};
    node_proto *p = add_node(ex, "Gemm", ex_printf(ex, "layers.%d.Gemm", layer), in,
                             in[2] ? 3 : 2, set_out(ex, n, 2));
    attr_int(ex, p, "transB", 1);
    return CL_OK;
}

/* The op mapping: one entry per cnnlab op (activations by kind: their ops are
 * cl_activation_op(kind)). */
static const struct {
    const cl_op *op;
    cl_act_kind act;
    export_fn fn;
} op_exporters[] = {
    {&cl_op_conv2d, CL_ACT_NONE, export_conv},
    {&cl_op_maxpool2d, CL_ACT_NONE, export_maxpool},
    {&cl_op_avgpool2d, CL_ACT_NONE, export_avgpool},
    {&cl_op_global_avgpool, CL_ACT_NONE, export_gap},
    {&cl_op_batchnorm2d, CL_ACT_NONE, export_batchnorm},
    {&cl_op_groupnorm, CL_ACT_NONE, export_groupnorm},
    {&cl_op_layernorm, CL_ACT_NONE, export_layernorm},
    {NULL, CL_ACT_RELU, export_relu},
    {NULL, CL_ACT_LEAKY_RELU, export_leaky_relu},
    {NULL, CL_ACT_GELU, export_gelu},
    {NULL, CL_ACT_SILU, export_silu},
    {NULL, CL_ACT_HARDSWISH, export_hardswish},
    {&cl_op_dropout, CL_ACT_NONE, export_dropout},
    {&cl_op_add, CL_ACT_NONE, export_add},
    {&cl_op_concat, CL_ACT_NONE, export_concat},
    {&cl_op_flatten, CL_ACT_NONE, export_flatten},
    {&cl_op_linear, CL_ACT_NONE, export_linear},
};

/* ---- the model ------------------------------------------------------------------ */

static Onnx__ValueInfoProto *value_info(exporter *ex, const char *name, const int64_t *dims,
                                        int ndim) {
    Onnx__ValueInfoProto *v = ex_alloc(ex, sizeof *v);
    Onnx__TypeProto *t = ex_alloc(ex, sizeof *t);
    Onnx__TypeProto__Tensor *tt = ex_alloc(ex, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_alloc(ex, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **d = ex_alloc(ex, (size_t)ndim * sizeof *d);
    if (!v || !t || !tt || !sh || !d) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        d[i] = ex_alloc(ex, sizeof *d[i]);
        if (!d[i]) return NULL;
        onnx__tensor_shape_proto__dimension__init(d[i]);
        if (dims[i] < 0) { /* the batch */
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d[i]->dim_param = ex_strdup(ex, "N");
        } else {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[i]->dim_value = dims[i];
        }
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = d;
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = ex_strdup(ex, name);
    v->type = t;
    return v;
}

static Onnx__StringStringEntryProto *meta(exporter *ex, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = ex_alloc(ex, sizeof *e);
    if (!e) return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = ex_strdup(ex, key);
    e->value = ex_strdup(ex, value ? value : "");
    return e;
}

/* "v0,v1,..." with enough digits to read back the same floats. */
static char *float_list(exporter *ex, const float *v, int n) {
    char buf[512] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof buf - 32; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.9g", i ? "," : "", v[i]);
    return ex_strdup(ex, buf);
}

static cl_status write_atomic(const char *path, const uint8_t *buf, size_t len, char *err,
                              size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        cl_status st = cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    bool ok = fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        remove(tmp);
        free(tmp);
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return CL_OK;
}

static void ex_free(exporter *ex) {
    for (size_t i = 0; i < ex->nblocks; i++) free(ex->blocks[i]);
    free(ex->blocks);
    free(ex->nodes);
    free(ex->inits);
    free(ex->vals);
}

/* (input - mean) / std per channel, as the training loader normalised, as the
 * graph's first nodes when a->normalize; returns the normalised value's name. */
static const char *normalize_input(exporter *ex, const cl_onnx_export_args *a, int c) {
    if (!a->normalize) return "input";
    float *mean = ex_alloc(ex, (size_t)c * sizeof *mean), *sd = ex_alloc(ex, (size_t)c * sizeof *sd);
    if (!mean || !sd) return "input";
    memcpy(mean, a->mean, (size_t)c * sizeof *mean);
    memcpy(sd, a->std, (size_t)c * sizeof *sd);
    const int64_t cd[4] = {1, c, 1, 1};
    const char *sin[2] = {"input", init_floats(ex, "norm.mean", cd, 4, mean)};
    add_node(ex, "Sub", "norm.Sub", sin, 2, "norm.centered");
    const char *din[2] = {"norm.centered", init_floats(ex, "norm.std", cd, 4, sd)};
    add_node(ex, "Div", "norm.Div", din, 2, "norm.normalized");
    return "norm.normalized";
}

/* Add the output (src as "logits" [N, K] for a Kx1x1 output, else "output" NCHW),
 * the graph's input and output types, the opset and the metadata (quantization: a
 * note for cnnlab.quantization, or NULL), and write the file when st is CL_OK. */
static cl_status finish_model(exporter *ex, const cl_onnx_export_args *a, cl_status st,
                              cl_shape in, cl_shape os, const char *src, const char *quantization,
                              const char *path, char *err, size_t errlen) {
    const int opset = ex->opset;
    bool flat = os.h == 1 && os.w == 1;
    const char *out_name = flat ? "logits" : "output";
    add_node(ex, "Identity", "output.Identity", &src, 1, out_name);
    int64_t idims[4] = {-1, in.c, in.h, in.w}, odims[4] = {-1, os.c, os.h, os.w};

    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    Onnx__ValueInfoProto *gin = value_info(ex, "input", idims, 4);
    Onnx__ValueInfoProto *gout = value_info(ex, out_name, odims, flat ? 2 : 4);
    g.name = "cnnlab";
    g.n_node = ex->nnodes;
    g.node = ex->nodes;
    g.n_initializer = ex->ninits;
    g.initializer = ex->inits;
    g.n_input = 1;
    g.input = &gin;
    g.n_output = 1;
    g.output = &gout;

    Onnx__OperatorSetIdProto ops = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsp = &ops;
    ops.domain = "";
    ops.has_version = true;
    ops.version = opset;

    /* metadata: what a deployment needs to feed the model and read its output */
    Onnx__StringStringEntryProto *props[8];
    int np = 0;
    int K = os.c;
    size_t clen = 1;
    for (int k = 0; a->class_names && k < K; k++) clen += strlen(a->class_names[k]) + 1;
    char *classes = ex_alloc(ex, clen);
    if (classes)
        for (int k = 0; a->class_names && k < K; k++) {
            strcat(classes, a->class_names[k]);
            if (k + 1 < K) strcat(classes, "\n");
        }
    if (a->class_names) props[np++] = meta(ex, "cnnlab.classes", classes);
    if (a->mean && a->std) {
        props[np++] = meta(ex, "cnnlab.mean", float_list(ex, a->mean, in.c));
        props[np++] = meta(ex, "cnnlab.std", float_list(ex, a->std, in.c));
    }
    props[np++] = meta(ex, "cnnlab.input",
                       a->normalize ? "NCHW float pixels on the 0..1 scale; the graph normalises "
                                      "them with cnnlab.mean and cnnlab.std"
                                    : "NCHW float, already normalised: (pixel/255 - mean) / std");
    if (a->model_text) props[np++] = meta(ex, "cnnlab.model_text", a->model_text);
    if (a->dataset) props[np++] = meta(ex, "cnnlab.dataset", a->dataset);
    if (quantization) props[np++] = meta(ex, "cnnlab.quantization", quantization);

    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = true;
    mp.ir_version = opset >= 21 ? 10 : 8; /* the IR versions these opsets came with */
    mp.n_opset_import = 1;
    mp.opset_import = &opsp;
    mp.producer_name = "cnnlab";
    mp.producer_version = CNNLAB_VERSION;
    mp.graph = &g;
    mp.n_metadata_props = (size_t)np;
    mp.metadata_props = props;
    for (int i = 0; i < np; i++)
        if (!props[i]) ex->oom = true;
    if (st == CL_OK && (ex->oom || !gin || !gout))
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    if (st == CL_OK) {
        size_t len = onnx__model_proto__get_packed_size(&mp);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
        } else {
            onnx__model_proto__pack(&mp, buf);
            st = write_atomic(path, buf, len, err, errlen);
            free(buf);
        }
    }
    return st;
}

cl_status cl_onnx_export(const cl_model *m, const cl_onnx_export_args *a, const char *path,
                         char *err, size_t errlen) {
    if (!m->compiled)
        return cl_errorf(err, errlen, CL_ERR_STATE, "%s: compile the model before exporting it", path);
    int opset = a->opset ? a->opset : 21;
    if (opset != 17 && opset != 21)
        return cl_errorf(err, errlen, CL_ERR_ARG, "%s: opset %d: cnnlab writes opset 17 or 21",
                         path, opset);
    const cl_shape in = m->tensors[0].shape;
    if (a->normalize && (!a->mean || !a->std))
        return cl_errorf(err, errlen, CL_ERR_ARG, "%s: normalisation asked for without mean and std", path);
    exporter ex = {.m = m, .opset = opset};
    ex.vals = calloc((size_t)m->ntensors, sizeof *ex.vals);
    if (!ex.vals) return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    ex.vals[0] = (value_ref){"input", 4, NULL, NULL};
    ex.vals[0].name = normalize_input(&ex, a, in.c);
    cl_status st = CL_OK;
    for (int i = 0; i < m->nnodes && st == CL_OK && !ex.oom; i++) {
        const cl_node *n = &m->nodes[i];
        export_fn fn = NULL;
        for (size_t k = 0; k < sizeof op_exporters / sizeof *op_exporters; k++)
            if ((op_exporters[k].op ? op_exporters[k].op : cl_activation_op(op_exporters[k].act)) == n->op)
                fn = op_exporters[k].fn;
        if (!fn) {
            st = cl_errorf(err, errlen, CL_ERR_ARG, "%s: layer %d (%s, line %d) has no ONNX mapping",
                           path, i, n->op->name, n->line);
            break;
        }
        st = fn(&ex, n, i);
    }
    /* the output: logits [N, K] for a Kx1x1 model, else NCHW */
    int out = cl_model_output(m);
    cl_shape os = m->tensors[out].shape;
    bool flat = os.h == 1 && os.w == 1;
    const char *src = flat ? value2(&ex, out) : value4(&ex, out);
    st = finish_model(&ex, a, st, in, os, src, NULL, path, err, errlen);
    ex_free(&ex);
    return st;
}

/* ---- int8: QuantizeLinear / DequantizeLinear pairs ----------------------------
 * The int8 network of src/deploy/quantize.c (cl_quant over the inference graph,
 * BatchNorm folded, ReLU fused) in the QDQ form of onnxruntime's quantize_static:
 * every activation tensor is QuantizeLinear -> DequantizeLinear with cnnlab's
 * per-tensor scale and zero point (int8; or uint8 with the zero point + 128, the
 * same values, which ONNX Runtime's x86 kernels fuse throughout); weights are int8
 * initializers behind a
 * DequantizeLinear per output channel (axis 0, zero point 0), biases int32 at
 * scale input_scale * weight_scale[k]. The float ops between the pairs (Conv,
 * Gemm, pooling, Add, Concat, activations, norms) are the ones a runtime fuses into
 * its integer kernels. A ReLU fused into a convolution is the output's clamp at its
 * zero point (-128 for a range that starts at 0), so it gets no node, as
 * quantize_static leaves it out; the last convolution (float logits from int32
 * accumulators in cnnlab) has no QuantizeLinear after it. Deploy tensors are
 * [N, C, H, W], except the outputs of linear layers (Gemm) and what reads them at
 * rank 2; a tensor needed at the other rank is reshaped between its DQ and a
 * new pair with the same parameters (exact: a reshape moves no value). */

typedef struct {
    exporter ex;
    const cl_quant *q;
    bool uint8;    /* activations as uint8, zero point + 128 (the same values) */
    value_ref *dq; /* [g->ntensors]: the dequantized value of each tensor */
} qdq_writer;

/* Tensor t's per-tensor scale (float) and zero point (int8, or uint8 + 128) as
 * scalar initializers, made once. */
static void tensor_qparams(qdq_writer *w, int t, const char **scale, const char **zp) {
    const cl_qparams p = w->q->t[t];
    exporter *ex = &w->ex;
    *scale = ex_printf(ex, "t%d.scale", t);
    *zp = ex_printf(ex, "t%d.zero_point", t);
    if (find_init(ex, *scale)) return;
    const int8_t z = (int8_t)p.zero_point;
    const uint8_t zu = (uint8_t)(p.zero_point + 128);
    add_init(ex, *scale, NULL, 0, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &p.scale, sizeof p.scale);
    if (w->uint8) add_init(ex, *zp, NULL, 0, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, &zu, 1);
    else add_init(ex, *zp, NULL, 0, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, &z, 1);
}

/* QuantizeLinear -> DequantizeLinear of the float value src with tensor t's
 * parameters; returns the dequantized value's name (suffix tells reshaped copies). */
static const char *qdq_pair(qdq_writer *w, int t, const char *src, const char *suffix) {
    exporter *ex = &w->ex;
    const char *scale, *zp;
    tensor_qparams(w, t, &scale, &zp);
    const char *qname = ex_printf(ex, "t%d%s_quantized", t, suffix);
    const char *dname = ex_printf(ex, "t%d%s_dequantized", t, suffix);
    const char *qin[3] = {src, scale, zp}, *din[3] = {qname, scale, zp};
    add_node(ex, "QuantizeLinear", ex_printf(ex, "t%d%s.QuantizeLinear", t, suffix), qin, 3, qname);
    add_node(ex, "DequantizeLinear", ex_printf(ex, "t%d%s.DequantizeLinear", t, suffix), din, 3, dname);
    return dname;
}

/* Tensor t (written at rank `rank` as the float value src) quantized. */
static void qdq_set(qdq_writer *w, int t, const char *src, int rank) {
    w->dq[t] = (value_ref){qdq_pair(w, t, src, ""), rank, NULL, NULL};
}

/* The dequantized tensor t at rank 4 or 2: Reshape [N, F, 1, 1] or Flatten, then a
 * pair with the same parameters, made once. */
static const char *qdq_value(qdq_writer *w, int t, int rank) {
    value_ref *v = &w->dq[t];
    exporter *ex = &w->ex;
    if (v->rank == rank) return v->name;
    const char **made = rank == 4 ? &v->as4d : &v->as2d;
    if (*made) return *made;
    const char *f = ex_printf(ex, "t%d_%dd", t, rank);
    if (rank == 4) {
        static const int64_t shape[4] = {0, -1, 1, 1};
        const char *s = find_init(ex, "shape_n_f_1_1");
        if (!s) s = init_ints(ex, "shape_n_f_1_1", shape, 4);
        const char *in[2] = {v->name, s};
        add_node(ex, "Reshape", ex_printf(ex, "%s.Reshape", f), in, 2, f);
    } else {
        node_proto *n = add_node(ex, "Flatten", ex_printf(ex, "%s.Flatten", f), &v->name, 1, f);
        attr_int(ex, n, "axis", 1);
    }
    *made = qdq_pair(w, t, f, rank == 4 ? "_4d" : "_2d");
    return *made;
}

/* A constant int8 or int32 tensor and its per-axis DequantizeLinear (axis 0, zero
 * point 0): returns the float value's name `name`. */
static const char *dq_constant(qdq_writer *w, const char *name, const int64_t *dims, int ndim,
                               bool int32, const void *data, const float *scales) {
    exporter *ex = &w->ex;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    const int64_t K = dims[0];
    const size_t elem = int32 ? 4 : 1;
    const int32_t type = int32 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT32 : ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    void *zeros = ex_alloc(ex, (size_t)K * elem);
    const char *qn = ex_printf(ex, "%s_quantized", name), *sn = ex_printf(ex, "%s_scale", name);
    const char *zn = ex_printf(ex, "%s_zero_point", name);
    if (!zeros) return name;
    add_init(ex, qn, dims, ndim, type, data, n * elem);
    add_init(ex, sn, &K, 1, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, scales, (size_t)K * sizeof(float));
    add_init(ex, zn, &K, 1, type, zeros, (size_t)K * elem);
    const char *in[3] = {qn, sn, zn};
    node_proto *p = add_node(ex, "DequantizeLinear", ex_printf(ex, "%s.DequantizeLinear", name), in, 3, name);
    attr_int(ex, p, "axis", 0);
    return name;
}

/* Conv (or Gemm for a linear layer) on dequantized int8 weights and int32 bias.
 * Returns the float output's name; *rank its rank. */
static const char *qdq_conv(qdq_writer *w, const cl_deploy_node *d, const cl_qnode *n, int layer,
                            int *rank) {
    exporter *ex = &w->ex;
    const dk_conv *c = &d->conv;
    const bool linear = !strncmp(d->ops, "linear", 6);
    const int64_t wd[4] = {c->k, linear ? c->c : c->c / c->groups, c->kh, c->kw}, K = c->k;
    const char *in[3] = {qdq_value(w, d->in[0], linear ? 2 : 4),
                         dq_constant(w, ex_printf(ex, "layers.%d.weight", layer), wd, linear ? 2 : 4,
                                     false, n->w, n->w_scale),
                         NULL};
    /* a bias that cnnlab has (or BatchNorm folded in) as int32 at in_scale * w_scale[k];
     * n->out_scale[k] is that product rounded to float */
    if (d->b) in[2] = dq_constant(w, ex_printf(ex, "layers.%d.bias", layer), &K, 1, true, n->bias, n->out_scale);
    const char *out = ex_printf(ex, "t%d_float", d->out);
    node_proto *p = add_node(ex, linear ? "Gemm" : "Conv",
                             ex_printf(ex, "layers.%d.%s", layer, linear ? "Gemm" : "Conv"), in,
                             in[2] ? 3 : 2, out);
    if (linear) {
        attr_int(ex, p, "transB", 1);
    } else {
        int64_t k[2] = {c->kh, c->kw}, s[2] = {c->sh, c->sw}, pads[4] = {c->ph, c->pw, c->ph, c->pw};
        int64_t dil[2] = {c->dh, c->dw};
        attr_ints(ex, p, "kernel_shape", k, 2);
        attr_ints(ex, p, "strides", s, 2);
        attr_ints(ex, p, "pads", pads, 4);
        attr_ints(ex, p, "dilations", dil, 2);
        attr_int(ex, p, "group", c->groups);
    }
    *rank = linear ? 2 : 4;
    /* the fused ReLU: the quantized output's clamp at its zero point, a node only
     * when that is not the int8 minimum (or the output stays float) */
    if (c->relu && (n->float_out || w->q->t[d->out].zero_point != -128)) {
        const char *r = ex_printf(ex, "t%d_relu", d->out);
        add_node(ex, "Relu", ex_printf(ex, "layers.%d.Relu", d->layer1), &out, 1, r);
        out = r;
    }
    return out;
}

static const char *qdq_pool(qdq_writer *w, const cl_deploy_node *d, int layer) {
    exporter *ex = &w->ex;
    const dk_pool *p = &d->pool;
    const char *x = qdq_value(w, d->in[0], 4), *out = ex_printf(ex, "t%d_float", d->out);
    if (!strcmp(d->ops, "gap")) {
        add_node(ex, "GlobalAveragePool", ex_printf(ex, "layers.%d.GlobalAveragePool", layer), &x, 1, out);
        return out;
    }
    const bool max = d->kind == CL_DEPLOY_MAXPOOL;
    node_proto *n = add_node(ex, max ? "MaxPool" : "AveragePool",
                             ex_printf(ex, "layers.%d.%s", layer, max ? "MaxPool" : "AveragePool"),
                             &x, 1, out);
    int64_t k[2] = {p->kh, p->kw}, s[2] = {p->sh, p->sw}, pads[4] = {p->ph, p->pw, p->ph, p->pw};
    int64_t dil[2] = {p->dh, p->dw};
    attr_ints(ex, n, "kernel_shape", k, 2);
    attr_ints(ex, n, "strides", s, 2);
    attr_ints(ex, n, "pads", pads, 4);
    if (max && (p->dh != 1 || p->dw != 1)) attr_ints(ex, n, "dilations", dil, 2);
    if (!max) attr_int(ex, n, "count_include_pad", 1);
    return out;
}

/* A BatchNorm after no convolution: x * scale + shift per channel (cnnlab's table
 * holds the same function of each of the 256 inputs). */
static const char *qdq_affine(qdq_writer *w, const cl_deploy_node *d, int layer, int rank) {
    exporter *ex = &w->ex;
    const int64_t C = (int64_t)d->nw, dims[3] = {C, 1, 1};
    const int nd = rank == 4 ? 3 : 1;
    const char *base = ex_printf(ex, "layers.%d", layer);
    const char *x = qdq_value(w, d->in[0], rank);
    const char *min[2] = {x, init_floats(ex, ex_printf(ex, "%s.scale", base), dims, nd, d->w)};
    const char *mo = ex_printf(ex, "%s.scaled", base), *out = ex_printf(ex, "t%d_float", d->out);
    add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, mo);
    const char *ain[2] = {mo, init_floats(ex, ex_printf(ex, "%s.shift", base), dims, nd, d->b)};
    add_node(ex, "Add", ex_printf(ex, "%s.Add", base), ain, 2, out);
    return out;
}

/* GroupNorm / LayerNorm in float between the pairs, as the float export writes them:
 * GroupNormalization (opset 21) or torch.onnx's InstanceNormalization
 * decomposition (17); LayerNormalization for a per-element LayerNorm. */
static const char *qdq_norm(qdq_writer *w, const cl_deploy_node *d, int layer) {
    exporter *ex = &w->ex;
    const dk_norm *nm = &d->norm;
    const cl_deploy_tensor *s = &w->q->g->tensors[d->out];
    const char *x = qdq_value(w, d->in[0], 4), *out = ex_printf(ex, "t%d_float", d->out);
    const char *base = ex_printf(ex, "layers.%d", layer);
    const int64_t C = s->c, chw[3] = {s->c, s->h, s->w}, c11[3] = {s->c, 1, 1};
    if (nm->elementwise || ex->opset >= 21) {
        const char *in[3] = {x, init_floats(ex, ex_printf(ex, "%s.weight", base), nm->elementwise ? chw : &C,
                                            nm->elementwise ? 3 : 1, d->w),
                             init_floats(ex, ex_printf(ex, "%s.bias", base), nm->elementwise ? chw : &C,
                                         nm->elementwise ? 3 : 1, d->b)};
        const char *op = nm->elementwise ? "LayerNormalization" : "GroupNormalization";
        node_proto *p = add_node(ex, op, ex_printf(ex, "%s.%s", base, op), in, 3, out);
        if (nm->elementwise) attr_int(ex, p, "axis", 1);
        else attr_int(ex, p, "num_groups", nm->groups);
        attr_float(ex, p, "epsilon", nm->eps);
        return out;
    }
    const int G = nm->groups;
    const int64_t grouped[3] = {0, G, -1}, back[4] = {0, s->c, s->h, s->w}, gdim = G;
    float *ones = ex_alloc(ex, (size_t)G * sizeof *ones), *zeros = ex_alloc(ex, (size_t)G * sizeof *zeros);
    if (!ones || !zeros) return out;
    for (int g = 0; g < G; g++) ones[g] = 1.0f;
    const char *r1in[2] = {x, init_ints(ex, ex_printf(ex, "%s.grouped_shape", base), grouped, 3)};
    const char *r1 = ex_printf(ex, "%s.grouped", base);
    add_node(ex, "Reshape", ex_printf(ex, "%s.Reshape", base), r1in, 2, r1);
    const char *inin[3] = {r1, init_floats(ex, ex_printf(ex, "%s.unit_scale", base), &gdim, 1, ones),
                           init_floats(ex, ex_printf(ex, "%s.zero_bias", base), &gdim, 1, zeros)};
    const char *in_out = ex_printf(ex, "%s.normalized", base);
    node_proto *p = add_node(ex, "InstanceNormalization",
                             ex_printf(ex, "%s.InstanceNormalization", base), inin, 3, in_out);
    attr_float(ex, p, "epsilon", nm->eps);
    const char *r2in[2] = {in_out, init_ints(ex, ex_printf(ex, "%s.shape", base), back, 4)};
    const char *r2 = ex_printf(ex, "%s.ungrouped", base);
    add_node(ex, "Reshape", ex_printf(ex, "%s.Reshape_1", base), r2in, 2, r2);
    const char *min[2] = {r2, init_floats(ex, ex_printf(ex, "%s.weight", base), c11, 3, d->w)};
    const char *mo = ex_printf(ex, "%s.scaled", base);
    add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, mo);
    const char *ain[2] = {mo, init_floats(ex, ex_printf(ex, "%s.bias", base), c11, 3, d->b)};
    add_node(ex, "Add", ex_printf(ex, "%s.Add", base), ain, 2, out);
    return out;
}

/* An activation (cnnlab's 256-entry table of it) in float between the pairs. */
static const char *qdq_act(qdq_writer *w, const cl_deploy_node *d, int layer, int rank) {
    exporter *ex = &w->ex;
    const char *x = qdq_value(w, d->in[0], rank), *out = ex_printf(ex, "t%d_float", d->out);
    const char *base = ex_printf(ex, "layers.%d", layer);
    node_proto *p;
    switch (d->act) {
    case DK_RELU: add_node(ex, "Relu", ex_printf(ex, "%s.Relu", base), &x, 1, out); break;
    case DK_LEAKY_RELU:
        p = add_node(ex, "LeakyRelu", ex_printf(ex, "%s.LeakyRelu", base), &x, 1, out);
        attr_float(ex, p, "alpha", d->slope);
        break;
    case DK_GELU:
        if (ex->opset >= 20) {
            p = add_node(ex, "Gelu", ex_printf(ex, "%s.Gelu", base), &x, 1, out);
            attr_string(ex, p, "approximate", "none");
        } else {
            const char *din[2] = {x, init_scalar(ex, "sqrt2", 1.41421353816986083984375f)};
            const char *dv = ex_printf(ex, "%s.div", base), *e = ex_printf(ex, "%s.erf", base);
            const char *a = ex_printf(ex, "%s.erf1", base), *mo = ex_printf(ex, "%s.xerf1", base);
            add_node(ex, "Div", ex_printf(ex, "%s.Div", base), din, 2, dv);
            add_node(ex, "Erf", ex_printf(ex, "%s.Erf", base), &dv, 1, e);
            const char *ain[2] = {e, init_scalar(ex, "one", 1.0f)};
            add_node(ex, "Add", ex_printf(ex, "%s.Add", base), ain, 2, a);
            const char *min[2] = {x, a};
            add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, mo);
            const char *hin[2] = {mo, init_scalar(ex, "half", 0.5f)};
            add_node(ex, "Mul", ex_printf(ex, "%s.Mul_1", base), hin, 2, out);
        }
        break;
    case DK_SILU: {
        const char *sig = ex_printf(ex, "%s.sigmoid", base), *min[2] = {x, sig};
        add_node(ex, "Sigmoid", ex_printf(ex, "%s.Sigmoid", base), &x, 1, sig);
        add_node(ex, "Mul", ex_printf(ex, "%s.Mul", base), min, 2, out);
        break;
    }
    default: add_node(ex, "HardSwish", ex_printf(ex, "%s.HardSwish", base), &x, 1, out);
    }
    return out;
}

cl_status cl_onnx_export_int8(const cl_quant *q, const cl_onnx_export_args *a, bool uint8,
                              const char *path, char *err, size_t errlen) {
    const cl_deploy_graph *g = q->g;
    int opset = a->opset ? a->opset : 21;
    if (opset != 17 && opset != 21)
        return cl_errorf(err, errlen, CL_ERR_ARG, "%s: opset %d: cnnlab writes opset 17 or 21",
                         path, opset);
    if (a->normalize && (!a->mean || !a->std))
        return cl_errorf(err, errlen, CL_ERR_ARG, "%s: normalisation asked for without mean and std", path);
    qdq_writer w = {.ex = {.opset = opset}, .q = q, .uint8 = uint8};
    exporter *ex = &w.ex;
    w.dq = calloc((size_t)g->ntensors, sizeof *w.dq);
    if (!w.dq) return cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory", path);
    qdq_set(&w, 0, normalize_input(ex, a, g->input.c), 4);
    const char *logits = NULL;
    for (int i = 0; i < g->nnodes && !ex->oom; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        const cl_qnode *n = &q->n[i];
        const int layer = d->layer0;
        /* element-wise steps keep their input's rank; add and concat stay at rank 2
         * when all inputs are, as the float export */
        int rank = 4;
        if (d->kind == CL_DEPLOY_ACT || d->kind == CL_DEPLOY_AFFINE) rank = w.dq[d->in[0]].rank;
        if (d->kind == CL_DEPLOY_ADD || d->kind == CL_DEPLOY_CONCAT) {
            rank = 2;
            for (int k = 0; k < d->nin; k++)
                if (w.dq[d->in[k]].rank != 2) rank = 4;
        }
        const char *out = NULL;
        switch (d->kind) {
        case CL_DEPLOY_CONV: out = qdq_conv(&w, d, n, layer, &rank); break;
        case CL_DEPLOY_MAXPOOL:
        case CL_DEPLOY_AVGPOOL: out = qdq_pool(&w, d, layer); break;
        case CL_DEPLOY_AFFINE: out = qdq_affine(&w, d, layer, rank); break;
        case CL_DEPLOY_NORM: out = qdq_norm(&w, d, layer); break;
        case CL_DEPLOY_ACT: out = qdq_act(&w, d, layer, rank); break;
        case CL_DEPLOY_ADD:
        case CL_DEPLOY_CONCAT: {
            const bool add = d->kind == CL_DEPLOY_ADD;
            const char *in[CL_DEPLOY_MAX_INPUTS];
            for (int k = 0; k < d->nin; k++) in[k] = qdq_value(&w, d->in[k], rank);
            out = ex_printf(ex, "t%d_float", d->out);
            node_proto *p = add_node(ex, add ? "Add" : "Concat",
                                     ex_printf(ex, "layers.%d.%s", layer, add ? "Add" : "Concat"),
                                     in, d->nin, out);
            if (!add) attr_int(ex, p, "axis", 1);
            break;
        }
        }
        if (d->kind == CL_DEPLOY_CONV && n->float_out) {
            logits = out; /* float logits from the int32 accumulators */
            w.dq[d->out] = (value_ref){out, rank, NULL, NULL};
        } else {
            qdq_set(&w, d->out, out, rank);
        }
    }
    const cl_deploy_tensor *o = &g->tensors[g->output];
    const cl_shape os = {o->c, o->h, o->w};
    const bool flat = o->h == 1 && o->w == 1;
    const char *src = w.dq[g->output].name;
    if (ex->oom) src = "";
    else if (flat && w.dq[g->output].rank == 4) {
        const char *f = logits ? "logits_2d" : qdq_value(&w, g->output, 2);
        if (logits) {
            node_proto *p = add_node(ex, "Flatten", "logits.Flatten", &src, 1, f);
            attr_int(ex, p, "axis", 1);
        }
        src = f;
    }
    char note[512];
    snprintf(note, sizeof note,
             "int8, QuantizeLinear/DequantizeLinear pairs: BatchNorm folded into the "
             "convolutions; weights int8 symmetric per output channel (zero point 0), biases "
             "int32 at input_scale * weight_scale; activations int8 per tensor (asymmetric), "
             "ranges calibrated on %d training images%s; %s",
             q->calib_images, uint8 ? " (written as uint8 with the zero point + 128)" : "",
             logits ? "the last layer's output is float (not quantized), as cnnlab's int8 "
                      "logits come from its int32 accumulators"
                    : "the output is dequantized int8");
    cl_status st = finish_model(ex, a, CL_OK, g->input, os, src, note, path, err, errlen);
    free(w.dq);
    ex->vals = NULL;
    ex_free(ex);
    return st;
}
