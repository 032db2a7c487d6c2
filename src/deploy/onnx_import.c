/* onnx_import.c: an ONNX graph read back as a cnnlab model: a model-file text of one
 * layer per line and the layers' tensors under cnnlab's (PyTorch's) names.
 *
 * Nodes are visited in the file's (topological) order. Each ONNX value is an
 * activation (a cnnlab tensor, rank 4 [N, C, H, W] or rank 2 [N, F]), a constant
 * (initializers, Constant nodes and what folds from them, Shape included: its batch
 * entry is a marker), or a pending pattern: a chain of ONNX nodes that together make
 * one cnnlab layer, as torch.onnx writes GroupNorm (Reshape -> InstanceNormalization
 * -> Reshape -> Mul -> Add), GELU at opset 17 (Div -> Erf -> Add -> Mul -> Mul),
 * padded average pooling (Pad -> AveragePool), nn.Linear as MatMul -> Add, SiLU as
 * x * Sigmoid(x), and the
 * input normalisation of a cnnlab export (Sub -> Div at the input). A pending value
 * used by anything but its pattern's next node becomes its layer then, or is an
 * error naming the node. Layers are built on a probe model as they are found, so
 * shapes are known at every step and a layer cnnlab rejects is reported at its node. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "onnx.pb-c.h"

typedef Onnx__NodeProto node_proto;

#define BATCH_MARK INT64_MIN /* Shape()'s batch entry: "whatever the batch is" */
#define MAX_LAYERS 4096

enum { V_NONE, V_ACT, V_CONST, V_PENDING };
enum {
    P_NORM_SUB,  /* input - mean */
    P_GROUPED,   /* x reshaped to [N, G, -1] */
    P_GN_NORMED, /* InstanceNormalization of that (unit scale, zero bias) */
    P_GN_SHAPED, /* reshaped back to x's shape: GroupNorm without affine */
    P_GN_SCALED, /* times gamma */
    P_PADDED,    /* x zero-padded spatially */
    P_GELU_DIV,  /* x / sqrt(2) */
    P_GELU_ERF,  /* erf(x / sqrt(2)) */
    P_GELU_ERF1, /* 1 + erf(x / sqrt(2)) */
    P_GELU_HALF, /* x * 0.5 */
    P_GELU_XERF, /* x * (1 + erf(x / sqrt(2))) */
    P_MATMUL,    /* x @ W: a linear layer without its bias yet */
    P_SIGMOID,   /* sigmoid(x): SiLU once multiplied by x */
};

typedef struct {
    const char *name;
    int kind;
    /* V_ACT */
    int tensor;  /* in the probe model */
    int rank;
    /* V_CONST: float or int64 values */
    bool is_int;
    int ndim;
    int64_t dims[8];
    int64_t numel;
    float *f;
    int64_t *i;
    /* V_PENDING */
    int pat;
    int src;          /* the activation value it derives from */
    int groups;
    float eps;
    float *gamma;     /* P_GN_SCALED [C]; P_MATMUL weight [out][in] */
    int out_features; /* P_MATMUL */
    int pad_h, pad_w; /* P_PADDED */
    const node_proto *node; /* the node that made it, for messages */
} value;

typedef struct {
    char text[256]; /* "conv 16 k=3x3 ..." without from=/as= */
    int in[CL_MAX_INPUTS], nin; /* probe tensor ids */
    int out;        /* probe tensor id */
} layer_line;

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    int opset;
    value *vals;
    int nvals, cap_vals;
    cl_model *probe;
    layer_line *lines;
    int nlines;
    cl_onnx_import *imp;
    int cap_tensors;
    int64_t batch; /* the input's fixed batch size, or 0 */
} importer;

/* ---- values ----------------------------------------------------------------------- */

static int find_value(const importer *im, const char *name) {
    for (int i = im->nvals - 1; i >= 0; i--)
        if (!strcmp(im->vals[i].name, name)) return i;
    return -1;
}

static value *new_value(importer *im, const char *name) {
    if (im->nvals == im->cap_vals) {
        int cap = im->cap_vals ? 2 * im->cap_vals : 256;
        value *v = realloc(im->vals, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        im->vals = v;
        im->cap_vals = cap;
    }
    value *v = &im->vals[im->nvals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

static cl_status fail(importer *im, const node_proto *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cl_status fail(importer *im, const node_proto *n, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        snprintf(im->err, im->errlen, "%s: node '%s' (%s): %s", im->path, n->name ? n->name : "",
                 n->op_type ? n->op_type : "no op type", msg);
    else
        snprintf(im->err, im->errlen, "%s: %s", im->path, msg);
    return CL_ERR_FORMAT;
}

/* A constant's values from a TensorProto (raw or typed fields). */
static cl_status read_tensor(importer *im, const node_proto *n, const Onnx__TensorProto *t, value *v) {
    v->kind = V_CONST;
    v->ndim = (int)t->n_dims;
    if (t->n_dims > 8) return fail(im, n, "tensor '%s' has %zu dimensions", t->name, t->n_dims);
    v->numel = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        v->dims[d] = t->dims[d];
        if (t->dims[d] < 0 || t->dims[d] > (1 << 28)) return fail(im, n, "tensor '%s': bad dimension", t->name);
        v->numel *= t->dims[d];
        if (v->numel > (1 << 28)) return fail(im, n, "tensor '%s' is too large", t->name);
    }
    if (t->n_external_data) return fail(im, n, "tensor '%s' keeps its data in an external file; "
                                        "save the model with its data inside", t->name);
    int type = t->data_type;
    size_t es = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ? 4
                : type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE || type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 0;
    if (!es) return fail(im, n, "tensor '%s' has data type %d; cnnlab reads float, double, int32 and int64",
                         t->name, type);
    v->is_int = type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 || type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    size_t count = (size_t)v->numel;
    v->f = v->is_int ? NULL : malloc((count ? count : 1) * sizeof *v->f);
    v->i = v->is_int ? malloc((count ? count : 1) * sizeof *v->i) : NULL;
    if (!v->f && !v->i) return fail(im, n, "out of memory");
    size_t have = t->has_raw_data ? t->raw_data.len / es
                  : type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data
                  : type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? t->n_double_data
                  : type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->n_int64_data : t->n_int32_data;
    if (have != count || (t->has_raw_data && t->raw_data.len != count * es))
        return fail(im, n, "tensor '%s' holds %zu values, its shape %zu", t->name, have, count);
    for (size_t k = 0; k < count; k++) {
        double d = 0;
        int64_t q = 0;
        if (t->has_raw_data) {
            const uint8_t *p = t->raw_data.data + k * es;
            if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) { float x; memcpy(&x, p, 4); d = x; }
            else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) memcpy(&d, p, 8);
            else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) memcpy(&q, p, 8);
            else { int32_t x; memcpy(&x, p, 4); q = x; }
        } else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) d = t->float_data[k];
        else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) d = t->double_data[k];
        else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) q = t->int64_data[k];
        else q = t->int32_data[k];
        if (v->is_int) v->i[k] = q;
        else v->f[k] = (float)d;
    }
    return CL_OK;
}

/* ---- attributes -------------------------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const node_proto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const node_proto *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const node_proto *n, const char *name, float def) {
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* An INTS attribute into v[max]; returns its length, or -1 when absent. */
static int attr_ints(const node_proto *n, const char *name, int64_t *v, int max) {
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a) return -1;
    int k = (int)(a->n_ints < (size_t)max ? a->n_ints : (size_t)max);
    for (int i = 0; i < k; i++) v[i] = a->ints[i];
    return (int)a->n_ints;
}

static bool attr_string_is(const node_proto *n, const char *name, const char *want, bool absent_ok) {
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->has_s) return absent_ok;
    return a->s.len == strlen(want) && !memcmp(a->s.data, want, a->s.len);
}

/* ---- inputs --------------------------------------------------------------------------------- */

/* Node input k's value index (-1 when absent: an empty name or past the end). */
static int in_value(importer *im, const node_proto *n, size_t k, cl_status *st) {
    if (k >= n->n_input || !n->input[k][0]) return -1;
    int v = find_value(im, n->input[k]);
    if (v < 0 && *st == CL_OK) *st = fail(im, n, "input '%s' is not produced by an earlier node", n->input[k]);
    return v;
}

static cl_status need_const(importer *im, const node_proto *n, int v, const char *what) {
    if (v < 0 || im->vals[v].kind != V_CONST)
        return fail(im, n, "the %s must be a constant (an initializer): cnnlab cannot compute it", what);
    return CL_OK;
}

static cl_status need_floats(importer *im, const node_proto *n, int v, int64_t count, const char *what) {
    cl_status st = need_const(im, n, v, what);
    if (st) return st;
    if (im->vals[v].is_int) return fail(im, n, "the %s must hold floats", what);
    if (count >= 0 && im->vals[v].numel != count)
        return fail(im, n, "the %s has %lld values, expected %lld", what, (long long)im->vals[v].numel,
                    (long long)count);
    return CL_OK;
}

/* ---- layers ----------------------------------------------------------------------------------- */

static int add_tensor(importer *im, const char *attr_name, const int64_t *dims, int ndim) {
    cl_onnx_import *imp = im->imp;
    if (imp->ntensors == im->cap_tensors) {
        int cap = im->cap_tensors ? 2 * im->cap_tensors : 64;
        cl_onnx_tensor *t = realloc(imp->tensors, (size_t)cap * sizeof *t);
        if (!t) return -1;
        imp->tensors = t;
        im->cap_tensors = cap;
    }
    cl_onnx_tensor *t = &imp->tensors[imp->ntensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "layers.%d.%s", im->nlines - 1, attr_name);
    int64_t numel = 1;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) numel *= t->dims[d] = dims[d];
    t->data = calloc((size_t)numel, sizeof *t->data);
    if (!t->data) return -1;
    return imp->ntensors++;
}

/* Copy n floats into a new tensor of the last layer (from NULL: fill with fill). */
static cl_status put_tensor(importer *im, const node_proto *n, const char *attr_name,
                            const int64_t *dims, int ndim, const float *from, float fill) {
    int k = add_tensor(im, attr_name, dims, ndim);
    if (k < 0) return fail(im, n, "out of memory");
    cl_onnx_tensor *t = &im->imp->tensors[k];
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= dims[d];
    for (int64_t i = 0; i < numel; i++) t->data[i] = from ? from[i] : fill;
    return CL_OK;
}

/* The shortest decimal that reads back as the same float. */
static void float_text(char *buf, size_t len, float v) {
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtof(buf, NULL) == v) return;
    }
}

/* Record a layer the probe model just built (id: its output, -1 on error). */
static cl_status add_line(importer *im, const node_proto *n, int id, const int *in, int nin,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static cl_status add_line(importer *im, const node_proto *n, int id, const int *in, int nin,
                          const char *fmt, ...) {
    if (id < 0) return fail(im, n, "cnnlab cannot build this layer: %s", cl_model_error(im->probe));
    if (im->nlines == MAX_LAYERS) return fail(im, n, "more than %d layers", MAX_LAYERS);
    layer_line *l = &im->lines[im->nlines++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    memcpy(l->in, in, (size_t)nin * sizeof *in);
    l->nin = nin;
    l->out = id;
    return CL_OK;
}

/* Make output name out an activation: probe tensor id at a rank. */
static cl_status set_act(importer *im, const char *out, int tensor, int rank) {
    value *v = new_value(im, out);
    if (!v) return CL_ERR_NOMEM;
    v->kind = V_ACT;
    v->tensor = tensor;
    v->rank = rank;
    return CL_OK;
}

static cl_shape act_shape(const importer *im, int v) {
    return cl_model_shape(im->probe, im->vals[v].tensor);
}

static cl_status emit_norm(importer *im, const node_proto *n, int x, cl_norm_args a, const float *w,
                           const float *b, const float *mean, const float *var, int *out) {
    cl_shape s = cl_model_shape(im->probe, x);
    int id = cl_norm(im->probe, x, a);
    char eps[32];
    float_text(eps, sizeof eps, a.eps);
    cl_status st;
    if (a.kind == CL_NORM_BATCH) {
        /* momentum only matters for fine-tuning: 6 digits, so ONNX's 0.9 reads as 0.1 */
        st = add_line(im, n, id, &x, 1, "bn eps=%s momentum=%g", eps, a.momentum ? a.momentum : 0.1f);
    } else if (a.kind == CL_NORM_LAYER) {
        st = add_line(im, n, id, &x, 1, "ln eps=%s%s", eps, a.elementwise ? " elementwise=1" : "");
    } else {
        st = add_line(im, n, id, &x, 1, "gn %d eps=%s", a.groups, eps);
    }
    if (st) return st;
    int64_t c[1] = {s.c}, chw[3] = {s.c, s.h, s.w};
    const int64_t *d = a.elementwise ? chw : c;
    int nd = a.elementwise ? 3 : 1;
    if ((st = put_tensor(im, n, "weight", d, nd, w, 1.0f)) || (st = put_tensor(im, n, "bias", d, nd, b, 0.0f)))
        return st;
    if (a.kind == CL_NORM_BATCH &&
        ((st = put_tensor(im, n, "running_mean", c, 1, mean, 0.0f)) ||
         (st = put_tensor(im, n, "running_var", c, 1, var, 1.0f))))
        return st;
    *out = id;
    return CL_OK;
}

static cl_status emit_linear(importer *im, const node_proto *n, int x, int out_features,
                             const float *w, const float *b, int *out) {
    cl_shape s = cl_model_shape(im->probe, x);
    int id = cl_linear(im->probe, x, out_features, b == NULL);
    cl_status st = add_line(im, n, id, &x, 1, "linear %d bias=%d", out_features, b != NULL);
    int64_t wd[2] = {out_features, (int64_t)s.c * s.h * s.w}, bd[1] = {out_features};
    if (!st) st = put_tensor(im, n, "weight", wd, 2, w, 0.0f);
    if (!st && b) st = put_tensor(im, n, "bias", bd, 1, b, 0.0f);
    *out = id;
    return st;
}

/* A pending value used outside its pattern: its layer now, or an error. Sets *v to
 * the activation value. */
static cl_status materialize(importer *im, const node_proto *user, int *vi) {
    if (*vi < 0 || im->vals[*vi].kind != V_PENDING) return CL_OK;
    value p = im->vals[*vi];
    const value *src = &im->vals[p.src];
    int id = -1;
    cl_status st;
    switch (p.pat) {
    case P_NORM_SUB: /* input - mean without a division: std 1 */
        *vi = p.src;
        return CL_OK;
    case P_GN_SHAPED:
    case P_GN_SCALED: {
        cl_norm_args a = {.kind = p.groups == 1 ? CL_NORM_LAYER : CL_NORM_GROUP, .groups = p.groups, .eps = p.eps};
        if ((st = emit_norm(im, p.node, src->tensor, a, p.gamma, NULL, NULL, NULL, &id))) return st;
        break;
    }
    case P_MATMUL:
        if ((st = emit_linear(im, p.node, src->tensor, p.out_features, p.gamma, NULL, &id))) return st;
        break;
    case P_SIGMOID:
        return fail(im, p.node, "cnnlab has no layer for the ONNX op Sigmoid (it maps only "
                    "x * Sigmoid(x), SiLU; here node '%s' uses it)",
                    user && user->name ? user->name : "the graph's output");
    default:
        return fail(im, p.node, "no cnnlab layer on its own, and node '%s' uses it outside the "
                    "nodes of a pattern cnnlab maps (docs/deploy.md)",
                    user && user->name ? user->name : "the graph's output");
    }
    /* the pending value becomes this layer's activation under its own name */
    value *v = &im->vals[*vi];
    free(v->gamma);
    v->gamma = NULL;
    v->kind = V_ACT;
    v->tensor = id;
    v->rank = src->rank;
    return CL_OK;
}

/* Node input k as an activation (pending values become their layer). */
static cl_status act_in(importer *im, const node_proto *n, size_t k, int *vi) {
    cl_status st = CL_OK;
    *vi = in_value(im, n, k, &st);
    if (st) return st;
    if (*vi < 0) return fail(im, n, "input %zu is missing", k);
    if ((st = materialize(im, n, vi))) return st;
    if (im->vals[*vi].kind != V_ACT)
        return fail(im, n, "input '%s' is a constant where cnnlab expects an activation", n->input[k]);
    return CL_OK;
}

/* ---- geometry ------------------------------------------------------------------------------- */

typedef struct {
    int64_t k[2], s[2], p[2], d[2];
} geometry;

/* kernel_shape (or the weight's), strides, symmetric pads, dilations, auto_pad. */
static cl_status read_geometry(importer *im, const node_proto *n, const int64_t *kdefault, geometry *g) {
    int64_t k[2] = {0, 0}, s[2] = {1, 1}, p[4] = {0, 0, 0, 0}, d[2] = {1, 1};
    int nk = attr_ints(n, "kernel_shape", k, 2);
    if (nk < 0 && kdefault) memcpy(k, kdefault, sizeof k), nk = 2;
    if (nk != 2) return fail(im, n, "expected a 2-D kernel_shape");
    if (attr_ints(n, "strides", s, 2) > 2 || attr_ints(n, "dilations", d, 2) > 2 || attr_ints(n, "pads", p, 4) > 4)
        return fail(im, n, "expected 2-D strides, dilations and pads");
    if (!attr_string_is(n, "auto_pad", "NOTSET", true) && !attr_string_is(n, "auto_pad", "VALID", false))
        return fail(im, n, "auto_pad SAME_UPPER/SAME_LOWER: write explicit pads");
    if (p[0] != p[2] || p[1] != p[3])
        return fail(im, n, "asymmetric pads (%lld,%lld,%lld,%lld): cnnlab pads both sides equally",
                    (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3]);
    *g = (geometry){{k[0], k[1]}, {s[0], s[1]}, {p[0], p[1]}, {d[0], d[1]}};
    for (int i = 0; i < 2; i++)
        if (g->k[i] < 1 || g->s[i] < 1 || g->p[i] < 0 || g->d[i] < 1 || g->k[i] > 65536 ||
            g->s[i] > 65536 || g->p[i] > 65536 || g->d[i] > 65536)
            return fail(im, n, "kernel, strides, pads or dilations out of range");
    return CL_OK;
}

/* ceil_mode=1 is accepted where it gives the same size as floor. */
static cl_status check_ceil(importer *im, const node_proto *n, cl_shape in, const geometry *g) {
    if (!attr_int(n, "ceil_mode", 0)) return CL_OK;
    int64_t size[2] = {in.h, in.w};
    for (int i = 0; i < 2; i++) {
        int64_t span = size[i] + 2 * g->p[i] - g->d[i] * (g->k[i] - 1) - 1;
        if (span >= 0 && span % g->s[i] != 0)
            return fail(im, n, "ceil_mode=1 changes the output size here; cnnlab pools with floor");
    }
    return CL_OK;
}

static void pair_text(char *buf, size_t len, const int64_t *v) {
    if (v[0] == v[1]) snprintf(buf, len, "%lld", (long long)v[0]);
    else snprintf(buf, len, "%lldx%lld", (long long)v[0], (long long)v[1]);
}

/* ---- the ops ------------------------------------------------------------------------------------ */

static bool is_scalar(const value *v, double want) {
    return v->kind == V_CONST && !v->is_int && v->numel == 1 && fabs(v->f[0] - want) <= 1e-6 * fabs(want);
}

/* A per-channel constant of C values shaped [C], [C,1,1] or [1,C,1,1]. */
static bool is_per_channel(const value *v, int C) {
    if (v->kind != V_CONST || v->is_int || v->numel != C) return false;
    int big = 0;
    for (int d = 0; d < v->ndim; d++) big += v->dims[d] != 1;
    return v->ndim == 1 || (v->ndim >= 3 && v->dims[v->ndim - 3] == C && big <= 1);
}

static cl_status op_conv(importer *im, const node_proto *n) {
    int x, w, b;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    w = in_value(im, n, 1, &st);
    b = in_value(im, n, 2, &st);
    if (st || (st = need_floats(im, n, w, -1, "weight"))) return st;
    const value *W = &im->vals[w];
    if (W->ndim != 4) return fail(im, n, "a %d-D weight: cnnlab has 2-D convolutions only", W->ndim);
    int64_t kd[2] = {W->dims[2], W->dims[3]};
    geometry g;
    if ((st = read_geometry(im, n, kd, &g))) return st;
    if (g.k[0] != kd[0] || g.k[1] != kd[1]) return fail(im, n, "kernel_shape differs from the weight's");
    if (b >= 0 && (st = need_floats(im, n, b, W->dims[0], "bias"))) return st;
    int groups = (int)attr_int(n, "group", 1);
    int xt = im->vals[x].tensor;
    if (im->vals[x].rank == 2 && act_shape(im, x).h != 1) return fail(im, n, "a rank-2 input");
    cl_conv2d_args a = {.out_channels = (int)W->dims[0], .kernel_h = (int)g.k[0], .kernel_w = (int)g.k[1],
                        .stride_h = (int)g.s[0], .stride_w = (int)g.s[1], .pad_h = (int)g.p[0],
                        .pad_w = (int)g.p[1], .dilation_h = (int)g.d[0], .dilation_w = (int)g.d[1],
                        .groups = groups, .no_bias = b < 0};
    if (act_shape(im, x).c / (groups ? groups : 1) != W->dims[1])
        return fail(im, n, "the weight's %lld input channels per group do not fit the input's %d",
                    (long long)W->dims[1], act_shape(im, x).c);
    int id = cl_conv2d(im->probe, xt, a);
    char k[32], s[32], p[32], d[32];
    pair_text(k, sizeof k, g.k);
    pair_text(s, sizeof s, g.s);
    pair_text(p, sizeof p, g.p);
    pair_text(d, sizeof d, g.d);
    /* the geometry's defaults (stride 1, pad 0, dilation 1, groups 1) are left out */
    char extra[160] = "";
    size_t el = 0;
    if (g.s[0] != 1 || g.s[1] != 1) el += (size_t)snprintf(extra + el, sizeof extra - el, " stride=%s", s);
    if (g.p[0] || g.p[1]) el += (size_t)snprintf(extra + el, sizeof extra - el, " pad=%s", p);
    if (g.d[0] != 1 || g.d[1] != 1) el += (size_t)snprintf(extra + el, sizeof extra - el, " dilation=%s", d);
    if (groups != 1) el += (size_t)snprintf(extra + el, sizeof extra - el, " groups=%d", groups);
    if ((st = add_line(im, n, id, &xt, 1, "conv %d k=%s%s bias=%d", a.out_channels, k, extra, b >= 0)))
        return st;
    if ((st = put_tensor(im, n, "weight", W->dims, 4, W->f, 0.0f))) return st;
    if (b >= 0 && (st = put_tensor(im, n, "bias", &W->dims[0], 1, im->vals[b].f, 0.0f))) return st;
    return set_act(im, n->output[0], id, 4);
}

static cl_status op_pool(importer *im, const node_proto *n, bool is_max) {
    cl_status st = CL_OK;
    int x = in_value(im, n, 0, &st);
    if (st) return st;
    if (x < 0) return fail(im, n, "no input");
    int64_t extra[2] = {0, 0};
    if (!is_max && im->vals[x].kind == V_PENDING && im->vals[x].pat == P_PADDED) {
        /* torch.onnx: Pad (zeros) -> AveragePool = count_include_pad=True */
        extra[0] = im->vals[x].pad_h;
        extra[1] = im->vals[x].pad_w;
        x = im->vals[x].src;
    } else if ((st = act_in(im, n, 0, &x))) {
        return st;
    }
    geometry g;
    if ((st = read_geometry(im, n, NULL, &g))) return st;
    if (g.d[0] != 1 || g.d[1] != 1) return fail(im, n, "dilated pooling: cnnlab pools without dilation");
    if (n->n_output > 1 && n->output[1][0]) return fail(im, n, "the Indices output: cnnlab has none");
    if (!is_max && (g.p[0] || g.p[1]) && !attr_int(n, "count_include_pad", 0))
        return fail(im, n, "count_include_pad=0 with padding: cnnlab's avgpool counts the padding "
                    "(count_include_pad=True)");
    if (!is_max && (extra[0] || extra[1]) && (g.p[0] || g.p[1]))
        return fail(im, n, "padded twice (Pad and pads)");
    g.p[0] += extra[0];
    g.p[1] += extra[1];
    if ((st = check_ceil(im, n, act_shape(im, x), &g))) return st;
    cl_conv2d_args a = {.kernel_h = (int)g.k[0], .kernel_w = (int)g.k[1], .stride_h = (int)g.s[0],
                        .stride_w = (int)g.s[1], .pad_h = (int)g.p[0], .pad_w = (int)g.p[1]};
    int xt = im->vals[x].tensor;
    int id = is_max ? cl_maxpool2d(im->probe, xt, a) : cl_avgpool2d(im->probe, xt, a);
    char k[32], s[32], p[32];
    pair_text(k, sizeof k, g.k);
    pair_text(s, sizeof s, g.s);
    pair_text(p, sizeof p, g.p);
    if ((st = add_line(im, n, id, &xt, 1, "%s k=%s stride=%s pad=%s", is_max ? "maxpool" : "avgpool", k, s, p)))
        return st;
    return set_act(im, n->output[0], id, 4);
}

static cl_status op_gap(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    int xt = im->vals[x].tensor;
    int id = cl_global_avgpool(im->probe, xt);
    if ((st = add_line(im, n, id, &xt, 1, "gap"))) return st;
    return set_act(im, n->output[0], id, 4);
}

static cl_status op_batchnorm(importer *im, const node_proto *n) {
    int x, p[4];
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    int C = act_shape(im, x).c;
    static const char *what[4] = {"scale", "bias", "mean", "variance"};
    for (int k = 0; k < 4; k++) {
        p[k] = in_value(im, n, (size_t)k + 1, &st);
        if (st || (st = need_floats(im, n, p[k], C, what[k]))) return st;
    }
    if (attr_int(n, "training_mode", 0)) return fail(im, n, "training_mode=1: export the model in eval mode");
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k][0]) return fail(im, n, "running statistics outputs: export the model in eval mode");
    /* ONNX's momentum weighs the old statistics; PyTorch's the new batch */
    cl_norm_args a = {.kind = CL_NORM_BATCH, .eps = attr_float(n, "epsilon", 1e-5f),
                      .momentum = 1.0f - attr_float(n, "momentum", 0.9f)};
    int id;
    if ((st = emit_norm(im, n, im->vals[x].tensor, a, im->vals[p[0]].f, im->vals[p[1]].f,
                        im->vals[p[2]].f, im->vals[p[3]].f, &id)))
        return st;
    return set_act(im, n->output[0], id, im->vals[x].rank);
}

/* GroupNormalization: opset 21 has per-channel scale and bias, 18 per group. */
static cl_status op_groupnorm(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    int C = act_shape(im, x).c, G = (int)attr_int(n, "num_groups", 0);
    if (G < 1 || C % G) return fail(im, n, "num_groups=%d does not divide %d channels", G, C);
    int per = im->opset >= 21 ? C : G;
    int s = in_value(im, n, 1, &st), b = in_value(im, n, 2, &st);
    if (st || (st = need_floats(im, n, s, per, "scale")) || (st = need_floats(im, n, b, per, "bias")))
        return st;
    float *w = malloc((size_t)C * sizeof *w), *bb = malloc((size_t)C * sizeof *bb);
    if (!w || !bb) {
        free(w);
        free(bb);
        return fail(im, n, "out of memory");
    }
    for (int c = 0; c < C; c++) {
        int k = per == C ? c : c / (C / G);
        w[c] = im->vals[s].f[k];
        bb[c] = im->vals[b].f[k];
    }
    cl_norm_args a = {.kind = G == 1 ? CL_NORM_LAYER : CL_NORM_GROUP, .groups = G,
                      .eps = attr_float(n, "epsilon", 1e-5f)};
    int id;
    st = emit_norm(im, n, im->vals[x].tensor, a, w, bb, NULL, NULL, &id);
    free(w);
    free(bb);
    return st ? st : set_act(im, n->output[0], id, 4);
}

static cl_status op_layernorm(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    cl_shape s = act_shape(im, x);
    int64_t axis = attr_int(n, "axis", -1);
    if (im->vals[x].rank != 4 || (axis != 1 && axis != -3))
        return fail(im, n, "axis %lld: cnnlab's LayerNorm normalises over (C, H, W) of an NCHW "
                    "tensor (axis 1)", (long long)axis);
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k][0]) return fail(im, n, "the Mean/InvStdDev outputs: cnnlab has none");
    int64_t count = (int64_t)s.c * s.h * s.w;
    int w = in_value(im, n, 1, &st), b = in_value(im, n, 2, &st);
    if (st || (st = need_floats(im, n, w, count, "scale")) || (b >= 0 && (st = need_floats(im, n, b, count, "bias"))))
        return st;
    cl_norm_args a = {.kind = CL_NORM_LAYER, .eps = attr_float(n, "epsilon", 1e-5f), .elementwise = true};
    int id;
    if ((st = emit_norm(im, n, im->vals[x].tensor, a, im->vals[w].f, b >= 0 ? im->vals[b].f : NULL,
                        NULL, NULL, &id)))
        return st;
    return set_act(im, n->output[0], id, 4);
}

static cl_status op_activation(importer *im, const node_proto *n, cl_act_kind kind) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    float slope = kind == CL_ACT_LEAKY_RELU ? attr_float(n, "alpha", 0.01f) : 0.0f;
    if (kind == CL_ACT_GELU && !attr_string_is(n, "approximate", "none", true))
        return fail(im, n, "approximate=tanh: cnnlab's GELU is the exact erf form");
    int xt = im->vals[x].tensor;
    int id = cl_activation(im->probe, xt, kind, slope);
    char sl[32];
    float_text(sl, sizeof sl, slope);
    st = kind == CL_ACT_RELU        ? add_line(im, n, id, &xt, 1, "relu")
         : kind == CL_ACT_GELU      ? add_line(im, n, id, &xt, 1, "gelu")
         : kind == CL_ACT_HARDSWISH ? add_line(im, n, id, &xt, 1, "hardswish")
                                    : add_line(im, n, id, &xt, 1, "leakyrelu slope=%s", sl);
    return st ? st : set_act(im, n->output[0], id, im->vals[x].rank);
}

/* Make output name out the same value as value vi (Identity, Dropout, reshapes that
 * keep cnnlab's shape), with another rank for activations. */
static cl_status alias(importer *im, const char *out, int vi, int rank) {
    value *v = new_value(im, out);
    if (!v) return CL_ERR_NOMEM;
    const value *src = &im->vals[vi]; /* new_value may have moved the array: index again */
    *v = *src;
    v->name = out;
    if (v->kind == V_CONST) { /* own copies, so each value frees its own */
        size_t bytes = (size_t)(v->numel ? v->numel : 1) * (v->is_int ? sizeof *v->i : sizeof *v->f);
        void *c = malloc(bytes);
        if (!c) return CL_ERR_NOMEM;
        memcpy(c, v->is_int ? (void *)src->i : (void *)src->f, bytes);
        if (v->is_int) v->i = c;
        else v->f = c;
    }
    if (v->kind == V_PENDING && v->gamma) {
        int64_t cnt = v->pat == P_MATMUL ? (int64_t)v->out_features * act_shape(im, v->src).c
                                         : act_shape(im, v->src).c;
        float *c = malloc((size_t)cnt * sizeof *c);
        if (!c) return CL_ERR_NOMEM;
        memcpy(c, src->gamma, (size_t)cnt * sizeof *c);
        v->gamma = c;
    }
    if (v->kind == V_ACT && rank) v->rank = rank;
    return CL_OK;
}

static cl_status emit_flatten(importer *im, const node_proto *n, int x, int *id) {
    int xt = im->vals[x].tensor;
    *id = cl_flatten(im->probe, xt);
    return add_line(im, n, *id, &xt, 1, "flatten");
}

static cl_status op_flatten(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    if (attr_int(n, "axis", 1) != 1) return fail(im, n, "axis %lld: cnnlab flattens from axis 1",
                                                 (long long)attr_int(n, "axis", 1));
    cl_shape s = act_shape(im, x);
    if (s.h == 1 && s.w == 1) return alias(im, n->output[0], x, 2);
    int id;
    if ((st = emit_flatten(im, n, x, &id))) return st;
    return set_act(im, n->output[0], id, 2);
}

/* A batch entry of a shape: the Shape() marker, 0 (copy), -1, or the input's fixed batch. */
static bool batch_entry(const importer *im, int64_t v) {
    return v == BATCH_MARK || v == 0 || v == -1 || (im->batch > 0 && v == im->batch);
}

static cl_status op_reshape(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    int x = in_value(im, n, 0, &st), sv = in_value(im, n, 1, &st);
    if (st || (st = need_const(im, n, sv, "target shape"))) return st;
    if (x < 0) return fail(im, n, "no input");
    const value *S = &im->vals[sv];
    if (!S->is_int) return fail(im, n, "the target shape must hold integers");
    const int64_t *t = S->i;
    int nt = (int)S->numel;
    value *X = &im->vals[x];
    if (X->kind == V_CONST) { /* a constant reshaped: same values, new dims */
        int64_t numel = 1, known = 1;
        int neg = -1;
        if (nt > 8) return fail(im, n, "too many dimensions");
        if ((st = alias(im, n->output[0], x, 0))) return st;
        value *o = &im->vals[im->nvals - 1];
        o->ndim = nt;
        for (int d = 0; d < nt; d++) {
            o->dims[d] = t[d] == 0 && d < im->vals[x].ndim ? im->vals[x].dims[d] : t[d];
            if (o->dims[d] == -1) neg = d;
            else known *= o->dims[d];
        }
        numel = im->vals[x].numel;
        if (neg >= 0 && known) o->dims[neg] = numel / known;
        return CL_OK;
    }
    if (X->kind == V_PENDING && X->pat == P_GN_NORMED) {
        /* back to the shape of the GroupNorm's input */
        cl_shape s = act_shape(im, X->src);
        if (nt == 4 && batch_entry(im, t[0]) && t[1] == s.c && t[2] == s.h && t[3] == s.w) {
            if ((st = alias(im, n->output[0], x, 0))) return st;
            im->vals[im->nvals - 1].pat = P_GN_SHAPED;
            im->vals[im->nvals - 1].node = n;
            return CL_OK;
        }
        return fail(im, n, "expected the reshape back to [N, %d, %d, %d] after InstanceNormalization", s.c, s.h, s.w);
    }
    if ((st = act_in(im, n, 0, &x))) return st;
    cl_shape s = act_shape(im, x);
    int64_t F = (int64_t)s.c * s.h * s.w;
    if (nt >= 1 && !batch_entry(im, t[0])) return fail(im, n, "a reshape across the batch dimension");
    if (nt == 3 && im->vals[x].rank == 4 && t[1] > 0 && s.c % t[1] == 0 &&
        (t[2] == -1 || t[2] == (int64_t)(s.c / t[1]) * s.h * s.w)) {
        /* [N, G, -1]: the first step of torch.onnx's GroupNorm */
        value *v = new_value(im, n->output[0]);
        if (!v) return CL_ERR_NOMEM;
        v->kind = V_PENDING;
        v->pat = P_GROUPED;
        v->src = x;
        v->groups = (int)t[1];
        v->node = n;
        return CL_OK;
    }
    bool flat2 = nt == 2 && (t[1] == -1 || t[1] == F);
    bool flat4 = nt == 4 && (t[1] == -1 || t[1] == F) && t[2] == 1 && t[3] == 1;
    bool same4 = nt == 4 && t[1] == s.c && t[2] == s.h && t[3] == s.w;
    if (same4) return alias(im, n->output[0], x, 4);
    if (!flat2 && !flat4)
        return fail(im, n, "a reshape to a shape cnnlab has no layer for (it reshapes only to "
                    "[N, -1] and [N, -1, 1, 1])");
    if (s.h == 1 && s.w == 1) return alias(im, n->output[0], x, flat2 ? 2 : 4);
    int id;
    if ((st = emit_flatten(im, n, x, &id))) return st;
    return set_act(im, n->output[0], id, flat2 ? 2 : 4);
}

/* Squeeze/Unsqueeze of axes 2 and 3 move between ranks 4 and 2 of Cx1x1 tensors;
 * on constants they only change the dims. */
static cl_status op_squeeze(importer *im, const node_proto *n, bool squeeze) {
    cl_status st = CL_OK;
    int x = in_value(im, n, 0, &st);
    if (st) return st;
    if (x < 0) return fail(im, n, "no input");
    int64_t axes[8];
    int na = attr_ints(n, "axes", axes, 8);
    if (na > 8) return fail(im, n, "more than 8 axes");
    if (na < 0 && n->n_input > 1) {
        int av = in_value(im, n, 1, &st);
        if (st || (st = need_const(im, n, av, "axes"))) return st;
        na = (int)(im->vals[av].numel < 8 ? im->vals[av].numel : 8);
        for (int i = 0; i < na; i++) axes[i] = im->vals[av].is_int ? im->vals[av].i[i] : (int64_t)im->vals[av].f[i];
    }
    if (im->vals[x].kind == V_CONST) {
        if ((st = alias(im, n->output[0], x, 0))) return st;
        value *o = &im->vals[im->nvals - 1];
        if (squeeze) { /* drop the listed (or all) unit dims */
            int k = 0;
            for (int d = 0; d < o->ndim; d++) {
                bool drop = o->dims[d] == 1 && na <= 0;
                for (int i = 0; i < na; i++) drop = drop || axes[i] == d || axes[i] + o->ndim == d;
                if (!drop) o->dims[k++] = o->dims[d];
            }
            o->ndim = k;
        } else {
            int nd = o->ndim + (na > 0 ? na : 0);
            int64_t dims[8];
            int src = 0;
            if (nd > 8) return fail(im, n, "too many dimensions");
            for (int d = 0; d < nd; d++) {
                bool ins = false;
                for (int i = 0; i < na; i++) ins = ins || axes[i] == d || axes[i] + nd == d;
                dims[d] = ins ? 1 : o->dims[src++];
            }
            memcpy(o->dims, dims, sizeof dims);
            o->ndim = nd;
        }
        return CL_OK;
    }
    if ((st = act_in(im, n, 0, &x))) return st;
    cl_shape s = act_shape(im, x);
    bool spatial = na == 2 && ((axes[0] == 2 && axes[1] == 3) || (axes[0] == -2 && axes[1] == -1) ||
                               (axes[0] == 3 && axes[1] == 2));
    if (squeeze && im->vals[x].rank == 4 && s.h == 1 && s.w == 1 && (spatial || na <= 0))
        return alias(im, n->output[0], x, 2);
    if (!squeeze && im->vals[x].rank == 2 && spatial) return alias(im, n->output[0], x, 4);
    return fail(im, n, "cnnlab maps only the squeeze of [N, C, 1, 1] to [N, C] and back");
}

static cl_status op_gemm(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    cl_shape s = act_shape(im, x);
    int in_f = s.c * s.h * s.w;
    if (s.h != 1 || s.w != 1) return fail(im, n, "the input must be flat ([N, F])");
    if (attr_int(n, "transA", 0)) return fail(im, n, "transA=1: cnnlab's linear takes [N, F]");
    int w = in_value(im, n, 1, &st), b = in_value(im, n, 2, &st);
    if (st || (st = need_floats(im, n, w, -1, "weight"))) return st;
    const value *W = &im->vals[w];
    bool tb = attr_int(n, "transB", 0);
    if (W->ndim != 2 || W->dims[tb ? 1 : 0] != in_f)
        return fail(im, n, "the weight does not fit %d input features", in_f);
    int out_f = (int)W->dims[tb ? 0 : 1];
    if (b >= 0 && (st = need_floats(im, n, b, out_f, "bias"))) return st;
    float alpha = attr_float(n, "alpha", 1.0f), beta = attr_float(n, "beta", 1.0f);
    float *wt = malloc((size_t)out_f * in_f * sizeof *wt), *bt = b >= 0 ? malloc((size_t)out_f * sizeof *bt) : NULL;
    if (!wt || (b >= 0 && !bt)) {
        free(wt);
        free(bt);
        return fail(im, n, "out of memory");
    }
    for (int o = 0; o < out_f; o++) /* PyTorch's [out][in], with alpha folded in */
        for (int i = 0; i < in_f; i++)
            wt[(size_t)o * in_f + i] = alpha * W->f[tb ? (size_t)o * in_f + i : (size_t)i * out_f + o];
    for (int o = 0; bt && o < out_f; o++) bt[o] = beta * im->vals[b].f[o];
    int id;
    st = emit_linear(im, n, im->vals[x].tensor, out_f, wt, bt, &id);
    free(wt);
    free(bt);
    return st ? st : set_act(im, n->output[0], id, 2);
}

static cl_status op_matmul(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    cl_shape s = act_shape(im, x);
    int w = in_value(im, n, 1, &st);
    if (st || (st = need_floats(im, n, w, -1, "second operand"))) return st;
    const value *W = &im->vals[w];
    if (im->vals[x].rank != 2 || W->ndim != 2 || W->dims[0] != s.c)
        return fail(im, n, "cnnlab maps MatMul only as [N, F] x [F, K] (a linear layer)");
    int out_f = (int)W->dims[1];
    float *wt = malloc((size_t)out_f * s.c * sizeof *wt);
    if (!wt) return fail(im, n, "out of memory");
    for (int o = 0; o < out_f; o++)
        for (int i = 0; i < s.c; i++) wt[(size_t)o * s.c + i] = W->f[(size_t)i * out_f + o];
    value *v = new_value(im, n->output[0]);
    if (!v) {
        free(wt);
        return CL_ERR_NOMEM;
    }
    v->kind = V_PENDING;
    v->pat = P_MATMUL;
    v->src = x;
    v->gamma = wt;
    v->out_features = out_f;
    v->node = n;
    return CL_OK;
}

static cl_status op_instancenorm(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    int x = in_value(im, n, 0, &st), s = in_value(im, n, 1, &st), b = in_value(im, n, 2, &st);
    if (st) return st;
    if (x < 0) return fail(im, n, "no input");
    float eps = attr_float(n, "epsilon", 1e-5f);
    if (im->vals[x].kind == V_PENDING && im->vals[x].pat == P_GROUPED) {
        int G = im->vals[x].groups;
        if ((st = need_floats(im, n, s, G, "scale")) || (st = need_floats(im, n, b, G, "bias"))) return st;
        for (int g = 0; g < G; g++)
            if (im->vals[s].f[g] != 1.0f || im->vals[b].f[g] != 0.0f)
                return fail(im, n, "a GroupNorm decomposition with a per-group scale or bias: "
                            "cnnlab's GroupNorm has per-channel ones");
        if ((st = alias(im, n->output[0], x, 0))) return st;
        value *v = &im->vals[im->nvals - 1];
        v->pat = P_GN_NORMED;
        v->eps = eps;
        v->node = n;
        return CL_OK;
    }
    /* on a whole NCHW tensor: GroupNorm with one group per channel */
    if ((st = act_in(im, n, 0, &x))) return st;
    int C = act_shape(im, x).c;
    if ((st = need_floats(im, n, s, C, "scale")) || (st = need_floats(im, n, b, C, "bias"))) return st;
    cl_norm_args a = {.kind = C == 1 ? CL_NORM_LAYER : CL_NORM_GROUP, .groups = C, .eps = eps};
    int id;
    if ((st = emit_norm(im, n, im->vals[x].tensor, a, im->vals[s].f, im->vals[b].f, NULL, NULL, &id)))
        return st;
    return set_act(im, n->output[0], id, 4);
}

static cl_status op_pad(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    if (!attr_string_is(n, "mode", "constant", true)) return fail(im, n, "reflect/edge padding: cnnlab pads with zeros");
    int64_t p[8];
    int np = attr_ints(n, "pads", p, 8);
    if (np < 0) {
        int pv = in_value(im, n, 1, &st);
        if (st || (st = need_const(im, n, pv, "pads"))) return st;
        np = (int)im->vals[pv].numel;
        for (int i = 0; i < np && i < 8; i++) p[i] = im->vals[pv].is_int ? im->vals[pv].i[i] : 0;
    }
    int cv = in_value(im, n, 2, &st);
    if (st) return st;
    if (cv >= 0 && (im->vals[cv].kind != V_CONST || im->vals[cv].numel != 1 ||
                    (im->vals[cv].is_int ? im->vals[cv].i[0] != 0 : im->vals[cv].f[0] != 0)))
        return fail(im, n, "padding with a value other than 0");
    if (n->n_input > 3 && n->input[3][0]) return fail(im, n, "padding of chosen axes");
    if (np != 8 || p[0] || p[1] || p[4] || p[5] || p[2] != p[6] || p[3] != p[7] || p[2] < 0 || p[3] < 0)
        return fail(im, n, "cnnlab maps only equal zero padding of H and W (before an AveragePool)");
    value *v = new_value(im, n->output[0]);
    if (!v) return CL_ERR_NOMEM;
    v->kind = V_PENDING;
    v->pat = P_PADDED;
    v->src = x;
    v->pad_h = (int)p[2];
    v->pad_w = (int)p[3];
    v->node = n;
    return CL_OK;
}

/* A new pending value derived from activation src. */
static cl_status pending(importer *im, const node_proto *n, int pat, int src, const value *from) {
    value copy = from ? *from : (value){0}; /* new_value may move the array from points into */
    value *v = new_value(im, n->output[0]);
    if (!v) return CL_ERR_NOMEM;
    if (from) {
        *v = copy;
        v->name = n->output[0];
        v->gamma = NULL;
    }
    v->kind = V_PENDING;
    v->pat = pat;
    v->src = src;
    v->node = n;
    return CL_OK;
}

/* Add, Sub, Mul, Div: the residual add, and the steps of the patterns. */
static cl_status op_arith(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    int a = in_value(im, n, 0, &st), b = in_value(im, n, 1, &st);
    if (st) return st;
    if (a < 0 || b < 0) return fail(im, n, "needs two inputs");
    const char *op = n->op_type;
    value *A = &im->vals[a], *B = &im->vals[b];
    bool add = !strcmp(op, "Add"), sub = !strcmp(op, "Sub"), mul = !strcmp(op, "Mul"), div = !strcmp(op, "Div");
    /* the input normalisation of a cnnlab export: Sub(input, mean) -> Div(., std) */
    if (sub && A->kind == V_ACT && A->tensor == 0 && im->nlines == 0 && is_per_channel(B, act_shape(im, a).c) &&
        !im->imp->has_normalization)
        return pending(im, n, P_NORM_SUB, a, NULL);
    if (div && ((A->kind == V_PENDING && A->pat == P_NORM_SUB) ||
                (A->kind == V_ACT && A->tensor == 0 && im->nlines == 0 && !im->imp->has_normalization)) &&
        is_per_channel(B, act_shape(im, A->kind == V_ACT ? a : A->src).c)) {
        int src = A->kind == V_ACT ? a : A->src;
        int C = act_shape(im, src).c;
        if (C > 8) return fail(im, n, "input normalisation of more than 8 channels");
        for (int c = 0; c < C; c++) {
            im->imp->mean[c] = A->kind == V_ACT ? 0.0f : im->vals[find_value(im, A->node->input[1])].f[c];
            im->imp->std[c] = B->f[c];
        }
        im->imp->has_normalization = true;
        return alias(im, n->output[0], src, 0);
    }
    /* GELU: x / sqrt2 -> erf -> + 1 -> * x -> * 0.5 (or x * 0.5 first) */
    if (div && A->kind == V_ACT && is_scalar(B, 1.4142135623730951)) return pending(im, n, P_GELU_DIV, a, NULL);
    if (add && ((A->kind == V_PENDING && A->pat == P_GELU_ERF && is_scalar(B, 1.0)) ||
                (B->kind == V_PENDING && B->pat == P_GELU_ERF && is_scalar(A, 1.0)))) {
        value *p = A->kind == V_PENDING ? A : B;
        return pending(im, n, P_GELU_ERF1, p->src, NULL);
    }
    if (mul) {
        for (int swap = 0; swap < 2; swap++) {
            value *P = swap ? B : A, *Q = swap ? A : B;
            int q = swap ? a : b;
            if (P->kind != V_PENDING) continue;
            if (P->pat == P_GELU_ERF1 && Q->kind == V_ACT && q == P->src)
                return pending(im, n, P_GELU_XERF, P->src, NULL);
            if (P->pat == P_SIGMOID && Q->kind == V_ACT && q == P->src) { /* x * sigmoid(x) */
                int xt = im->vals[P->src].tensor, rank = im->vals[P->src].rank;
                int id = cl_activation(im->probe, xt, CL_ACT_SILU, 0);
                if ((st = add_line(im, n, id, &xt, 1, "silu"))) return st;
                return set_act(im, n->output[0], id, rank);
            }
            if ((P->pat == P_GELU_XERF && is_scalar(Q, 0.5)) ||
                (P->pat == P_GELU_ERF1 && Q->kind == V_PENDING && Q->pat == P_GELU_HALF && Q->src == P->src)) {
                int xt = im->vals[P->src].tensor, rank = im->vals[P->src].rank;
                int id = cl_activation(im->probe, xt, CL_ACT_GELU, 0);
                if ((st = add_line(im, n, id, &xt, 1, "gelu"))) return st;
                return set_act(im, n->output[0], id, rank);
            }
            if ((P->pat == P_GN_SHAPED) && is_per_channel(Q, act_shape(im, P->src).c)) {
                if ((st = pending(im, n, P_GN_SCALED, P->src, P))) return st;
                value *v = &im->vals[im->nvals - 1];
                int C = act_shape(im, v->src).c;
                v->gamma = malloc((size_t)C * sizeof *v->gamma);
                if (!v->gamma) return CL_ERR_NOMEM;
                memcpy(v->gamma, im->vals[swap ? a : b].f, (size_t)C * sizeof *v->gamma);
                return CL_OK;
            }
        }
        for (int swap = 0; swap < 2; swap++) {
            value *P = swap ? B : A, *Q = swap ? A : B;
            if (P->kind == V_ACT && is_scalar(Q, 0.5)) return pending(im, n, P_GELU_HALF, swap ? b : a, NULL);
        }
    }
    if (add) {
        for (int swap = 0; swap < 2; swap++) {
            value *P = swap ? B : A, *Q = swap ? A : B;
            if (P->kind != V_PENDING) continue;
            if ((P->pat == P_GN_SCALED || P->pat == P_GN_SHAPED) && is_per_channel(Q, act_shape(im, P->src).c)) {
                int C = act_shape(im, P->src).c;
                cl_norm_args na = {.kind = P->groups == 1 ? CL_NORM_LAYER : CL_NORM_GROUP,
                                   .groups = P->groups, .eps = P->eps};
                int id, rank = im->vals[P->src].rank;
                float *gamma = P->gamma, *beta = malloc((size_t)C * sizeof *beta);
                if (!beta) return CL_ERR_NOMEM;
                memcpy(beta, Q->f, (size_t)C * sizeof *beta);
                st = emit_norm(im, n, im->vals[P->src].tensor, na, gamma, beta, NULL, NULL, &id);
                free(beta);
                return st ? st : set_act(im, n->output[0], id, rank);
            }
            if (P->pat == P_MATMUL && Q->kind == V_CONST && !Q->is_int && Q->numel == P->out_features) {
                int id, rank = 2;
                float *bias = malloc((size_t)P->out_features * sizeof *bias);
                if (!bias) return CL_ERR_NOMEM;
                memcpy(bias, Q->f, (size_t)P->out_features * sizeof *bias);
                st = emit_linear(im, n, im->vals[P->src].tensor, P->out_features, P->gamma, bias, &id);
                free(bias);
                return st ? st : set_act(im, n->output[0], id, rank);
            }
        }
        /* the residual add of two activations */
        if ((st = materialize(im, n, &a)) || (st = materialize(im, n, &b))) return st;
        A = &im->vals[a];
        B = &im->vals[b];
        if (A->kind == V_ACT && B->kind == V_ACT) {
            int in[2] = {A->tensor, B->tensor};
            int rank = A->rank == 2 && B->rank == 2 ? 2 : 4;
            int id = cl_add(im->probe, in[0], in[1]);
            if ((st = add_line(im, n, id, in, 2, "add"))) return st;
            return set_act(im, n->output[0], id, rank);
        }
    }
    return fail(im, n, "%s with a constant that is not part of a pattern cnnlab maps (GroupNorm's "
                "affine, GELU, the input normalisation): cnnlab has no such layer", op);
}

static cl_status op_concat(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    if (n->n_input < 1) return fail(im, n, "no inputs");
    int first = in_value(im, n, 0, &st);
    if (st) return st;
    if (first >= 0 && im->vals[first].kind == V_CONST) { /* shape arithmetic on constants */
        int64_t total = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            int v = in_value(im, n, k, &st);
            if (st || (st = need_const(im, n, v, "input")) ) return st;
            if (!im->vals[v].is_int || im->vals[v].ndim > 1) return fail(im, n, "cnnlab folds only 1-D integer concatenations");
            total += im->vals[v].numel;
        }
        if (total > 64) return fail(im, n, "too long a constant concatenation");
        value *o = new_value(im, n->output[0]);
        if (!o) return CL_ERR_NOMEM;
        o->kind = V_CONST;
        o->is_int = true;
        o->ndim = 1;
        o->dims[0] = o->numel = total;
        o->i = malloc((size_t)(total ? total : 1) * sizeof *o->i);
        if (!o->i) return CL_ERR_NOMEM;
        int64_t k2 = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            const value *v = &im->vals[find_value(im, n->input[k])];
            for (int64_t j = 0; j < v->numel; j++) im->vals[im->nvals - 1].i[k2++] = v->i[j];
        }
        return CL_OK;
    }
    if (n->n_input > CL_MAX_INPUTS) return fail(im, n, "more than %d inputs", CL_MAX_INPUTS);
    int in[CL_MAX_INPUTS], rank2 = 1;
    for (size_t k = 0; k < n->n_input; k++) {
        int v;
        if ((st = act_in(im, n, k, &v))) return st;
        in[k] = im->vals[v].tensor;
        rank2 = rank2 && im->vals[v].rank == 2;
    }
    int64_t axis = attr_int(n, "axis", 1);
    if (axis != 1 && !(rank2 && axis == -1) && !(!rank2 && axis == -3))
        return fail(im, n, "axis %lld: cnnlab concatenates channels (axis 1)", (long long)axis);
    int id = cl_concat(im->probe, in, (int)n->n_input);
    if ((st = add_line(im, n, id, in, (int)n->n_input, "concat"))) return st;
    return set_act(im, n->output[0], id, rank2 ? 2 : 4);
}

/* Shape, Gather, Cast and Constant: the shape arithmetic torch.onnx writes. */
static cl_status op_shape(importer *im, const node_proto *n) {
    int x;
    cl_status st = act_in(im, n, 0, &x);
    if (st) return st;
    if (attr(n, "start") || attr(n, "end")) return fail(im, n, "Shape with start/end");
    cl_shape s = act_shape(im, x);
    value *v = new_value(im, n->output[0]);
    if (!v) return CL_ERR_NOMEM;
    int rank = im->vals[x].rank;
    v->kind = V_CONST;
    v->is_int = true;
    v->ndim = 1;
    v->dims[0] = v->numel = rank;
    v->i = malloc(4 * sizeof *v->i);
    if (!v->i) return CL_ERR_NOMEM;
    v->i[0] = BATCH_MARK;
    v->i[1] = rank == 2 ? (int64_t)s.c * s.h * s.w : s.c;
    v->i[2] = s.h;
    v->i[3] = s.w;
    return CL_OK;
}

static cl_status op_gather(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    int d = in_value(im, n, 0, &st), ix = in_value(im, n, 1, &st);
    if (st || (st = need_const(im, n, d, "data")) || (st = need_const(im, n, ix, "indices"))) return st;
    const value *D = &im->vals[d], *I = &im->vals[ix];
    if (D->ndim != 1 || !I->is_int || attr_int(n, "axis", 0) != 0 || I->numel > 8)
        return fail(im, n, "cnnlab folds only Gather from 1-D constants");
    value *o = new_value(im, n->output[0]);
    if (!o) return CL_ERR_NOMEM;
    D = &im->vals[d];
    I = &im->vals[ix];
    o->kind = V_CONST;
    o->is_int = D->is_int;
    o->ndim = I->ndim;
    memcpy(o->dims, I->dims, sizeof o->dims);
    o->numel = I->numel;
    o->i = D->is_int ? malloc(8 * sizeof *o->i) : NULL;
    o->f = D->is_int ? NULL : malloc(8 * sizeof *o->f);
    if (!o->i && !o->f) return CL_ERR_NOMEM;
    for (int64_t k = 0; k < I->numel; k++) {
        int64_t j = I->i[k] < 0 ? I->i[k] + D->numel : I->i[k];
        if (j < 0 || j >= D->numel) return fail(im, n, "index out of range");
        if (D->is_int) o->i[k] = D->i[j];
        else o->f[k] = D->f[j];
    }
    return CL_OK;
}

static cl_status op_cast(importer *im, const node_proto *n) {
    cl_status st = CL_OK;
    int x = in_value(im, n, 0, &st);
    if (st || (st = need_const(im, n, x, "input"))) return st;
    int64_t to = attr_int(n, "to", 0);
    bool to_int = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    if (!to_int && to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && to != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return fail(im, n, "a cast to type %lld", (long long)to);
    if ((st = alias(im, n->output[0], x, 0))) return st;
    value *o = &im->vals[im->nvals - 1];
    if (o->is_int == to_int) return CL_OK;
    size_t cnt = (size_t)(o->numel ? o->numel : 1);
    if (to_int) {
        o->i = malloc(cnt * sizeof *o->i);
        if (!o->i) return CL_ERR_NOMEM;
        for (size_t k = 0; k < (size_t)o->numel; k++) o->i[k] = (int64_t)o->f[k];
        free(o->f);
        o->f = NULL;
    } else {
        o->f = malloc(cnt * sizeof *o->f);
        if (!o->f) return CL_ERR_NOMEM;
        for (size_t k = 0; k < (size_t)o->numel; k++) o->f[k] = (float)o->i[k];
        free(o->i);
        o->i = NULL;
    }
    o->is_int = to_int;
    return CL_OK;
}

static cl_status op_constant(importer *im, const node_proto *n) {
    value *v = new_value(im, n->output[0]);
    if (!v) return CL_ERR_NOMEM;
    const Onnx__AttributeProto *a;
    if ((a = attr(n, "value")) && a->t) return read_tensor(im, n, a->t, v);
    v->kind = V_CONST;
    v->ndim = 0;
    v->numel = 1;
    if ((a = attr(n, "value_float")) && a->has_f) {
        v->f = malloc(sizeof *v->f);
        if (!v->f) return CL_ERR_NOMEM;
        v->f[0] = a->f;
        return CL_OK;
    }
    if ((a = attr(n, "value_int")) && a->has_i) {
        v->is_int = true;
        v->i = malloc(sizeof *v->i);
        if (!v->i) return CL_ERR_NOMEM;
        v->i[0] = a->i;
        return CL_OK;
    }
    if ((a = attr(n, "value_ints"))) {
        v->is_int = true;
        v->ndim = 1;
        v->dims[0] = v->numel = (int64_t)a->n_ints;
        v->i = malloc((a->n_ints ? a->n_ints : 1) * sizeof *v->i);
        if (!v->i) return CL_ERR_NOMEM;
        memcpy(v->i, a->ints, a->n_ints * sizeof *v->i);
        return CL_OK;
    }
    if ((a = attr(n, "value_floats"))) {
        v->ndim = 1;
        v->dims[0] = v->numel = (int64_t)a->n_floats;
        v->f = malloc((a->n_floats ? a->n_floats : 1) * sizeof *v->f);
        if (!v->f) return CL_ERR_NOMEM;
        memcpy(v->f, a->floats, a->n_floats * sizeof *v->f);
        return CL_OK;
    }
    v->kind = V_NONE;
    return fail(im, n, "a constant of a kind cnnlab does not read");
}

static cl_status op_node(importer *im, const node_proto *n) {
    const char *t = n->op_type;
    if (!t) return fail(im, n, "a node without an op type");
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return fail(im, n, "operator domain '%s': cnnlab reads the standard ONNX operators only", n->domain);
    if (n->n_output < 1) return fail(im, n, "no output");
    cl_status st = CL_OK;
    if (!strcmp(t, "Conv")) return op_conv(im, n);
    if (!strcmp(t, "MaxPool")) return op_pool(im, n, true);
    if (!strcmp(t, "AveragePool")) return op_pool(im, n, false);
    if (!strcmp(t, "GlobalAveragePool")) return op_gap(im, n);
    if (!strcmp(t, "BatchNormalization")) return op_batchnorm(im, n);
    if (!strcmp(t, "GroupNormalization")) return op_groupnorm(im, n);
    if (!strcmp(t, "LayerNormalization")) return op_layernorm(im, n);
    if (!strcmp(t, "InstanceNormalization")) return op_instancenorm(im, n);
    if (!strcmp(t, "Relu")) return op_activation(im, n, CL_ACT_RELU);
    if (!strcmp(t, "LeakyRelu")) return op_activation(im, n, CL_ACT_LEAKY_RELU);
    if (!strcmp(t, "Gelu")) return op_activation(im, n, CL_ACT_GELU);
    if (!strcmp(t, "HardSwish")) return op_activation(im, n, CL_ACT_HARDSWISH);
    if (!strcmp(t, "Sigmoid")) {
        int x;
        if ((st = act_in(im, n, 0, &x))) return st;
        return pending(im, n, P_SIGMOID, x, NULL);
    }
    if (!strcmp(t, "Add") || !strcmp(t, "Sub") || !strcmp(t, "Mul") || !strcmp(t, "Div")) return op_arith(im, n);
    if (!strcmp(t, "Concat")) return op_concat(im, n);
    if (!strcmp(t, "Flatten")) return op_flatten(im, n);
    if (!strcmp(t, "Reshape")) return op_reshape(im, n);
    if (!strcmp(t, "Squeeze")) return op_squeeze(im, n, true);
    if (!strcmp(t, "Unsqueeze")) return op_squeeze(im, n, false);
    if (!strcmp(t, "Gemm")) return op_gemm(im, n);
    if (!strcmp(t, "MatMul")) return op_matmul(im, n);
    if (!strcmp(t, "Pad")) return op_pad(im, n);
    if (!strcmp(t, "Shape")) return op_shape(im, n);
    if (!strcmp(t, "Gather")) return op_gather(im, n);
    if (!strcmp(t, "Cast")) return op_cast(im, n);
    if (!strcmp(t, "Constant")) return op_constant(im, n);
    if (!strcmp(t, "Erf")) {
        int x = in_value(im, n, 0, &st);
        if (st) return st;
        if (x >= 0 && im->vals[x].kind == V_PENDING && im->vals[x].pat == P_GELU_DIV)
            return pending(im, n, P_GELU_ERF, im->vals[x].src, NULL);
        return fail(im, n, "Erf outside GELU's x * (1 + erf(x / sqrt 2)) / 2: cnnlab has no such layer");
    }
    if (!strcmp(t, "Identity") || !strcmp(t, "Dropout")) { /* inference: the identity */
        int x = in_value(im, n, 0, &st);
        if (st) return st;
        if (x < 0) return fail(im, n, "no input");
        if (n->n_output > 1 && n->output[1][0]) return fail(im, n, "the dropout mask output");
        return alias(im, n->output[0], x, 0);
    }
    return fail(im, n, "cnnlab has no layer for the ONNX op %s", t);
}

/* ---- text ----------------------------------------------------------------------------- */

/* The model file: one line per layer; a layer whose input is not the line before
 * reads it by name (from=, add, concat), and those producers get as=lI. */
static char *model_text(importer *im) {
    int nl = im->nlines;
    bool *named = calloc((size_t)nl + 1, sizeof *named); /* by probe tensor id; 0: the input */
    /* a line: its text (< 256), names of up to CL_MAX_INPUTS inputs, from= and as= */
    size_t cap = 512 + strlen(im->path) + (size_t)nl * 512, len = 0;
    char *text = malloc(cap);
    if (!named || !text) {
        free(named);
        free(text);
        return NULL;
    }
    for (int i = 0; i < nl; i++) {
        const layer_line *l = &im->lines[i];
        bool multi = !strcmp(l->text, "add") || !strcmp(l->text, "concat");
        for (int k = 0; k < l->nin; k++)
            if (multi || l->in[k] != (i == 0 ? 0 : im->lines[i - 1].out)) named[l->in[k]] = true;
    }
    cl_shape in = im->imp->input;
    len += (size_t)snprintf(text + len, cap - len, "# imported from ");
    for (const char *c = im->path; *c; c++) text[len++] = *c == '\n' || *c == '\r' ? ' ' : *c;
    len += (size_t)snprintf(text + len, cap - len, " by cnnlab import\ninput %dx%dx%d\n", in.c, in.h, in.w);
    for (int i = 0; i < nl; i++) {
        const layer_line *l = &im->lines[i];
        bool multi = !strcmp(l->text, "add") || !strcmp(l->text, "concat");
        len += (size_t)snprintf(text + len, cap - len, "%s", l->text);
        for (int k = 0; multi && k < l->nin; k++)
            len += l->in[k] == 0 ? (size_t)snprintf(text + len, cap - len, " input")
                                 : (size_t)snprintf(text + len, cap - len, " l%d", l->in[k]);
        if (!multi && l->in[0] != (i == 0 ? 0 : im->lines[i - 1].out))
            len += l->in[0] == 0 ? (size_t)snprintf(text + len, cap - len, " from=input")
                                 : (size_t)snprintf(text + len, cap - len, " from=l%d", l->in[0]);
        if (named[l->out]) len += (size_t)snprintf(text + len, cap - len, " as=l%d", l->out);
        len += (size_t)snprintf(text + len, cap - len, "\n");
    }
    free(named);
    return text;
}

/* ---- the file ---------------------------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= ((size_t)1 << 31)) {
            free(buf);
            buf = NULL;
            cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: larger than 2 GB", path);
            fclose(f);
            return NULL;
        }
        unsigned char *b = realloc(buf, cap *= 2);
        if (!b) free(buf);
        buf = b;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot read%s", path, buf ? "" : ": out of memory");
        return NULL;
    }
    *len = n;
    return buf;
}

void cl_onnx_import_free(cl_onnx_import *imp) {
    if (!imp) return;
    for (int i = 0; i < imp->ntensors; i++) free(imp->tensors[i].data);
    free(imp->tensors);
    for (int k = 0; imp->class_names && k < imp->classes; k++) free(imp->class_names[k]);
    free(imp->class_names);
    free(imp->model_text);
    free(imp);
}

static void read_metadata(cl_onnx_import *imp, const Onnx__ModelProto *mp) {
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const char *k = mp->metadata_props[i]->key, *v = mp->metadata_props[i]->value;
        if (!k || !v) continue;
        if (!strcmp(k, "cnnlab.dataset")) snprintf(imp->dataset, sizeof imp->dataset, "%s", v);
        if (!strcmp(k, "cnnlab.classes")) {
            int lines = 1;
            for (const char *s = v; *s; s++) lines += *s == '\n';
            if (lines != imp->classes) continue; /* not this model's */
            imp->class_names = calloc((size_t)lines, sizeof *imp->class_names);
            for (int c = 0; imp->class_names && c < lines; c++) {
                size_t len = strcspn(v, "\n");
                imp->class_names[c] = strndup(v, len);
                v += len + (v[len] == '\n');
            }
        }
    }
}

cl_onnx_import *cl_onnx_import_read(const char *path, char *err, size_t errlen) {
    size_t len;
    unsigned char *buf = read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!mp || !mp->graph) {
        if (mp) onnx__model_proto__free_unpacked(mp, NULL);
        cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: not an ONNX model (the protobuf does not parse)", path);
        return NULL;
    }
    importer im = {.path = path, .err = err, .errlen = errlen};
    im.imp = calloc(1, sizeof *im.imp);
    im.lines = calloc(MAX_LAYERS, sizeof *im.lines);
    cl_status st = im.imp && im.lines ? CL_OK : CL_ERR_NOMEM;
    if (st) cl_errorf(err, errlen, st, "%s: out of memory", path);
    for (size_t i = 0; !st && i < mp->n_opset_import; i++)
        if (!mp->opset_import[i]->domain || !mp->opset_import[i]->domain[0] ||
            !strcmp(mp->opset_import[i]->domain, "ai.onnx"))
            im.opset = (int)mp->opset_import[i]->version;
    const Onnx__GraphProto *g = mp->graph;
    for (int c = 0; c < 8 && im.imp; c++) im.imp->std[c] = 1.0f;
    /* initializers first: constants */
    for (size_t i = 0; !st && i < g->n_initializer; i++) {
        if (!g->initializer[i]->name) {
            st = fail(&im, NULL, "initializer %zu has no name", i);
            break;
        }
        value *v = new_value(&im, g->initializer[i]->name);
        st = v ? read_tensor(&im, NULL, g->initializer[i], v) : fail(&im, NULL, "out of memory");
    }
    /* the one graph input that is not an initializer: [N, C, H, W] float */
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t i = 0; !st && i < g->n_input; i++)
        if (!g->input[i]->name) st = fail(&im, NULL, "input %zu has no name", i);
        else if (find_value(&im, g->input[i]->name) < 0) {
            if (input) st = fail(&im, NULL, "more than one input ('%s', '%s'); cnnlab models have one",
                                 input->name, g->input[i]->name);
            input = g->input[i];
        }
    if (!st && !input) st = fail(&im, NULL, "the graph has no input");
    if (!st) {
        const Onnx__TypeProto *t = input->type;
        const Onnx__TensorShapeProto *sh = t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                               ? t->tensor_type->shape : NULL;
        bool ok = sh && sh->n_dim == 4 && t->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        int64_t d[4] = {0, 0, 0, 0};
        for (int k = 0; ok && k < 4; k++) {
            if (sh->dim[k]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) d[k] = sh->dim[k]->dim_value;
            if (k > 0 && (d[k] < 1 || d[k] > 65536)) ok = false;
        }
        if (!ok) st = fail(&im, NULL, "input '%s' must be float [N, C, H, W] with C, H and W fixed", input->name);
        else {
            im.batch = d[0];
            im.imp->input = (cl_shape){(int)d[1], (int)d[2], (int)d[3]};
            im.probe = cl_model_new(im.imp->input);
            if (!im.probe || st) st = fail(&im, NULL, "out of memory");
            else st = set_act(&im, input->name, 0, 4);
        }
    }
    for (size_t i = 0; !st && i < g->n_node; i++) st = op_node(&im, g->node[i]);
    if (!st && g->n_output != 1) st = fail(&im, NULL, "%zu outputs; cnnlab models have one", g->n_output);
    if (!st && !g->output[0]->name) st = fail(&im, NULL, "the output has no name");
    if (!st) {
        int o = find_value(&im, g->output[0]->name);
        if (o < 0) st = fail(&im, NULL, "no node makes the output '%s'", g->output[0]->name);
        else if (!(st = materialize(&im, NULL, &o))) {
            if (im.vals[o].kind != V_ACT || im.nlines == 0)
                st = fail(&im, NULL, "the output '%s' is not made by a layer", g->output[0]->name);
            else if (im.vals[o].tensor != im.lines[im.nlines - 1].out)
                st = fail(&im, NULL, "the output '%s' is not the last layer's (a graph with unused "
                          "branches)", g->output[0]->name);
        }
    }
    if (!st) {
        cl_shape os = cl_model_shape(im.probe, cl_model_output(im.probe));
        im.imp->classes = os.c;
        read_metadata(im.imp, mp);
        im.imp->model_text = model_text(&im);
        if (!im.imp->model_text) st = fail(&im, NULL, "out of memory");
    }
    for (int i = 0; i < im.nvals; i++) {
        free(im.vals[i].f);
        free(im.vals[i].i);
        free(im.vals[i].gamma);
    }
    free(im.vals);
    free(im.lines);
    cl_model_free(im.probe);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st) {
        cl_onnx_import_free(im.imp);
        return NULL;
    }
    return im.imp;
}

cl_model *cl_onnx_import_model(const cl_onnx_import *imp, cl_compile_args ca, char *err, size_t errlen) {
    cl_model *m = cl_parse_model(imp->model_text, strlen(imp->model_text), "imported model", NULL, err, errlen);
    if (!m) return NULL;
    if (cl_model_compile(m, ca) != CL_OK) {
        cl_errorf(err, errlen, CL_ERR_NOMEM, "imported model: %s", cl_model_error(m));
        cl_model_free(m);
        return NULL;
    }
    size_t maxn = 1;
    for (int i = 0; i < imp->ntensors; i++) {
        size_t n = 1;
        for (int d = 0; d < imp->tensors[i].ndim; d++) n *= (size_t)imp->tensors[i].dims[d];
        if (n > maxn) maxn = n;
    }
    cl_real *buf = malloc(maxn * sizeof *buf);
    if (!buf) {
        cl_errorf(err, errlen, CL_ERR_NOMEM, "imported model: out of memory");
        cl_model_free(m);
        return NULL;
    }
    for (int i = 0; i < imp->ntensors; i++) {
        const cl_onnx_tensor *t = &imp->tensors[i];
        int k = cl_model_find_tensor(m, t->name);
        cl_tensor_info info = k >= 0 ? cl_model_tensor(m, k) : (cl_tensor_info){0};
        bool same = k >= 0 && info.ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = info.dims[d] == t->dims[d];
        if (!same) {
            cl_errorf(err, errlen, CL_ERR_FORMAT, "imported model: tensor %s does not fit the model "
                      "built from its text", t->name);
            free(buf);
            cl_model_free(m);
            return NULL;
        }
        for (int64_t j = 0; j < info.numel; j++) buf[j] = (cl_real)t->data[j];
        cl_model_set_tensor(m, k, buf);
    }
    free(buf);
    return m;
}
