/* optim.c: SGD (momentum, dampening, Nesterov), Adam and AdamW with the exact update
 * rules of torch.optim, as flat loops over the model's parameter buffer, and the
 * optional exponential moving average of the weights that
 * torch.optim.swa_utils.AveragedModel keeps.
 *
 * Parameter groups: by default weight decay applies to every trainable parameter, as
 * PyTorch's default parameter group does. With no_decay_norm_bias or norm_lr_scale the
 * parameters split into two torch parameter groups: "norm/bias" (every bias, and the
 * weight and bias of batchnorm2d, groupnorm and layernorm) and the rest. The step
 * walks the parameter buffer as a short list of contiguous segments, each in one group,
 * built once when the optimizer is made. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

typedef struct {
    size_t off, n; /* into the flat parameter buffer */
    bool norm_bias;
} param_segment;

struct cl_optimizer {
    cl_model *m;
    cl_optim_args a;
    cl_real *buf1; /* SGD momentum buffer; Adam first moment */
    cl_real *buf2; /* Adam second moment */
    int64_t step;
    param_segment *segs;
    int nsegs;
    /* the moving average (ema_decay > 0): [nparams] then [nbuffers] */
    cl_real *avg;
    int64_t n_averaged;
    bool avg_in_model;   /* swapped: the model holds the average, avg the raw weights */
    size_t *counter_offs; /* buffer offsets of num_batches_tracked (integers in torch) */
    int ncounters;
};

static bool is_norm_or_bias(const cl_node *n, const cl_op_tensor *t) {
    static const char *const norms[] = {"batchnorm2d", "groupnorm", "layernorm"};
    if (!strcmp(t->attr, "bias")) return true;
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++)
        if (!strcmp(n->op->name, norms[i])) return true;
    return false;
}

static size_t tensor_numel(const cl_op_tensor *t) {
    size_t k = 1;
    for (int d = 0; d < t->ndim; d++) k *= (size_t)t->dims[d];
    return k;
}

/* The trainable tensors as segments, neighbours in one group merged; or, without
 * groups, one segment of everything. */
static bool make_segments(cl_optimizer *o) {
    cl_model *m = o->m;
    bool grouped = o->a.no_decay_norm_bias || o->a.norm_lr_scale != 1;
    int cap = 1;
    for (int i = 0; grouped && i < m->nnodes; i++) cap += CL_MAX_OP_TENSORS;
    o->segs = calloc((size_t)cap, sizeof *o->segs);
    if (!o->segs) return false;
    if (!grouped) {
        o->segs[0] = (param_segment){0, m->nparams, false};
        o->nsegs = 1;
        return true;
    }
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        cl_op_tensor ts[CL_MAX_OP_TENSORS];
        int nt = n->op->tensors ? n->op->tensors(m, n, ts) : 0;
        for (int k = 0; k < nt; k++) {
            if (!ts[k].trainable) continue;
            param_segment s = {n->param_off + ts[k].off, tensor_numel(&ts[k]),
                               is_norm_or_bias(n, &ts[k])};
            param_segment *last = o->nsegs ? &o->segs[o->nsegs - 1] : NULL;
            if (last && last->norm_bias == s.norm_bias && last->off + last->n == s.off)
                last->n += s.n;
            else
                o->segs[o->nsegs++] = s;
        }
    }
    return true;
}

static int compare_offsets(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The buffer offsets of the BatchNorm step counters, in increasing order. */
static bool find_counters(cl_optimizer *o) {
    cl_model *m = o->m;
    o->counter_offs = calloc((size_t)m->nnodes + 1, sizeof *o->counter_offs);
    if (!o->counter_offs) return false;
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        cl_op_tensor ts[CL_MAX_OP_TENSORS];
        int nt = n->op->tensors ? n->op->tensors(m, n, ts) : 0;
        for (int k = 0; k < nt; k++)
            if (!ts[k].trainable && !strcmp(ts[k].attr, "num_batches_tracked"))
                o->counter_offs[o->ncounters++] = n->buffer_off + ts[k].off;
    }
    qsort(o->counter_offs, (size_t)o->ncounters, sizeof *o->counter_offs, compare_offsets);
    return true;
}

cl_optimizer *cl_optimizer_new(cl_model *m, cl_optim_args a) {
    if (!m->compiled) return NULL;
    cl_optimizer *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (a.beta1 == 0) a.beta1 = 0.9f;
    if (a.beta2 == 0) a.beta2 = 0.999f;
    if (a.eps == 0) a.eps = 1e-8f;
    if (a.norm_lr_scale == 0) a.norm_lr_scale = 1;
    o->m = m;
    o->a = a;
    size_t n = m->nparams ? m->nparams : 1;
    o->buf1 = calloc(n, sizeof(cl_real));
    o->buf2 = a.kind == CL_OPT_SGD ? NULL : calloc(n, sizeof(cl_real));
    bool ok = o->buf1 && (a.kind == CL_OPT_SGD || o->buf2) && make_segments(o);
    if (ok && a.ema_decay > 0) {
        o->avg = calloc(m->nparams + m->nbuffers + 1, sizeof(cl_real));
        ok = o->avg && find_counters(o);
    }
    if (!ok) {
        cl_optimizer_free(o);
        return NULL;
    }
    return o;
}

void cl_optimizer_free(cl_optimizer *o) {
    if (!o) return;
    free(o->buf1);
    free(o->buf2);
    free(o->segs);
    free(o->avg);
    free(o->counter_offs);
    free(o);
}

void cl_optimizer_set_momentum(cl_optimizer *o, float momentum) {
    if (o->a.kind == CL_OPT_SGD)
        o->a.momentum = momentum;
    else
        o->a.beta1 = momentum;
}

/* torch.optim.SGD: g += wd*p; b = g (first step) or mu*b + (1-dampening)*g;
 * g = nesterov ? g + mu*b : b; p -= lr*g */
static void sgd_step(cl_real *restrict p, const cl_real *restrict grad, cl_real *restrict buf, size_t n,
                     cl_real lr, cl_real mu, cl_real dampening, cl_real wd, bool nesterov, bool first) {
    for (size_t i = 0; i < n; i++) {
        cl_real g = grad[i] + wd * p[i];
        if (mu != 0) {
            buf[i] = first ? g : mu * buf[i] + (1 - dampening) * g;
            g = nesterov ? g + mu * buf[i] : buf[i];
        }
        p[i] -= lr * g;
    }
}

/* torch.optim.Adam / AdamW (amsgrad off): m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps), with weight decay added to g
 * (Adam) or applied as p *= 1 - lr*wd first (AdamW). */
static void adam_step(cl_real *restrict p, const cl_real *restrict grad, cl_real *restrict m1,
                      cl_real *restrict m2, size_t n, cl_real lr, cl_real b1, cl_real b2, cl_real eps,
                      cl_real wd, bool decoupled, int64_t t) {
    /* PyTorch computes the bias corrections in double precision */
    const cl_real bc1 = (cl_real)(1.0 - pow(b1, (double)t));
    const cl_real bc2_sqrt = (cl_real)sqrt(1.0 - pow(b2, (double)t));
    const cl_real step_size = lr / bc1;
    for (size_t i = 0; i < n; i++) {
        cl_real g = grad[i];
        if (decoupled)
            p[i] *= 1 - lr * wd;
        else
            g += wd * p[i];
        m1[i] = b1 * m1[i] + (1 - b1) * g;
        m2[i] = b2 * m2[i] + (1 - b2) * g * g;
        cl_real denom = cl_sqrt(m2[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m1[i] / denom;
    }
}

/* torch.lerp_(avg, x, w) as the CPU kernel computes it: avg + w*(x - avg) (fused)
 * for |w| < 0.5, else x - (x - avg)*(1 - w). */
static void lerp(cl_real *restrict avg, const cl_real *restrict x, size_t n, cl_real w) {
    if (fabs((double)w) < 0.5) {
        for (size_t i = 0; i < n; i++) avg[i] = _Generic(w, float: fmaf, default: fma)(w, x[i] - avg[i], avg[i]);
    } else {
        for (size_t i = 0; i < n; i++) avg[i] = x[i] - (x[i] - avg[i]) * (1 - w);
    }
}

/* AveragedModel.update_parameters with get_ema_multi_avg_fn(decay) and
 * use_buffers=True: the first call copies the weights and buffers; later ones lerp
 * them towards the model's by 1 - decay. num_batches_tracked, an int64 in torch, gets
 * trunc(avg*decay + x*(1 - decay)) computed in float32 instead. */
static void update_average(cl_optimizer *o) {
    cl_model *m = o->m;
    cl_real *ap = o->avg, *ab = o->avg + m->nparams;
    if (o->n_averaged == 0) {
        memcpy(ap, m->params, m->nparams * sizeof(cl_real));
        memcpy(ab, m->buffers, m->nbuffers * sizeof(cl_real));
    } else {
        const float decay = o->a.ema_decay, w = (float)(1.0 - (double)decay);
        lerp(ap, m->params, m->nparams, (cl_real)w);
        /* the buffers between the counters (in increasing order), then each counter */
        size_t from = 0;
        for (int k = 0; k <= o->ncounters; k++) {
            size_t at = k < o->ncounters ? o->counter_offs[k] : m->nbuffers;
            lerp(ab + from, m->buffers + from, at - from, (cl_real)w);
            if (k == o->ncounters) break;
            float a = (float)ab[at] * decay, b = (float)m->buffers[at] * w;
            ab[at] = (cl_real)truncf(a + b);
            from = at + 1;
        }
    }
    o->n_averaged++;
}

void cl_optimizer_step(cl_optimizer *o, float lr) {
    cl_model *m = o->m;
    const cl_optim_args *a = &o->a;
    if (o->avg_in_model) cl_optimizer_swap_average(o); /* train the raw weights */
    o->step++;
    for (int s = 0; s < o->nsegs; s++) {
        const param_segment *g = &o->segs[s];
        float glr = g->norm_bias ? lr * a->norm_lr_scale : lr;
        float wd = g->norm_bias && a->no_decay_norm_bias ? 0.0f : a->weight_decay;
        if (a->kind == CL_OPT_SGD)
            sgd_step(m->params + g->off, m->grads + g->off, o->buf1 + g->off, g->n, glr, a->momentum,
                     a->dampening, wd, a->nesterov, o->step == 1);
        else
            adam_step(m->params + g->off, m->grads + g->off, o->buf1 + g->off, o->buf2 + g->off, g->n,
                      glr, a->beta1, a->beta2, a->eps, wd, a->kind == CL_OPT_ADAMW, o->step);
    }
    if (o->avg) update_average(o);
}

static void swap_values(cl_real *restrict a, cl_real *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cl_real t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

bool cl_optimizer_swap_average(cl_optimizer *o) {
    if (!o->avg) return false;
    cl_model *m = o->m;
    if (o->n_averaged == 0) { /* AveragedModel starts as a copy of the model */
        memcpy(o->avg, m->params, m->nparams * sizeof(cl_real));
        memcpy(o->avg + m->nparams, m->buffers, m->nbuffers * sizeof(cl_real));
    }
    swap_values(m->params, o->avg, m->nparams);
    swap_values(m->buffers, o->avg + m->nparams, m->nbuffers);
    o->avg_in_model = !o->avg_in_model;
    return o->avg_in_model;
}

bool cl_optimizer_average_in_model(const cl_optimizer *o) { return o->avg_in_model; }

size_t cl_optimizer_state(cl_optimizer *o, cl_real **buf1, cl_real **buf2, int64_t *step) {
    *buf1 = o->buf1;
    *buf2 = o->buf2;
    *step = o->step;
    return o->m->nparams;
}

void cl_optimizer_set_state_step(cl_optimizer *o, int64_t step) { o->step = step; }

cl_real *cl_optimizer_average_state(cl_optimizer *o, size_t *count, int64_t *n_averaged, bool *in_model) {
    *count = o->m->nparams + o->m->nbuffers;
    *n_averaged = o->n_averaged;
    *in_model = o->avg_in_model;
    return o->avg;
}

void cl_optimizer_set_average_state(cl_optimizer *o, int64_t n_averaged, bool in_model) {
    o->n_averaged = n_averaged;
    o->avg_in_model = in_model;
}
