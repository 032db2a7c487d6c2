/* optim.c: SGD (momentum, dampening, Nesterov), Adam and AdamW with the exact update
 * rules of torch.optim, as flat loops over the model's parameter buffer. Weight decay
 * applies to every trainable parameter, as PyTorch's default parameter group does. */
#include <math.h>
#include <stdlib.h>

#include "nn/model.h"

struct cl_optimizer {
    cl_model *m;
    cl_optim_args a;
    cl_real *buf1; /* SGD momentum buffer; Adam first moment */
    cl_real *buf2; /* Adam second moment */
    int64_t step;
};

cl_optimizer *cl_optimizer_new(cl_model *m, cl_optim_args a) {
    if (!m->compiled) return NULL;
    cl_optimizer *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (a.beta1 == 0) a.beta1 = 0.9f;
    if (a.beta2 == 0) a.beta2 = 0.999f;
    if (a.eps == 0) a.eps = 1e-8f;
    o->m = m;
    o->a = a;
    size_t n = m->nparams ? m->nparams : 1;
    o->buf1 = calloc(n, sizeof(cl_real));
    o->buf2 = a.kind == CL_OPT_SGD ? NULL : calloc(n, sizeof(cl_real));
    if (!o->buf1 || (a.kind != CL_OPT_SGD && !o->buf2)) {
        cl_optimizer_free(o);
        return NULL;
    }
    return o;
}

void cl_optimizer_free(cl_optimizer *o) {
    if (!o) return;
    free(o->buf1);
    free(o->buf2);
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

void cl_optimizer_step(cl_optimizer *o, float lr) {
    cl_model *m = o->m;
    const cl_optim_args *a = &o->a;
    o->step++;
    if (a->kind == CL_OPT_SGD)
        sgd_step(m->params, m->grads, o->buf1, m->nparams, lr, a->momentum, a->dampening,
                 a->weight_decay, a->nesterov, o->step == 1);
    else
        adam_step(m->params, m->grads, o->buf1, o->buf2, m->nparams, lr, a->beta1, a->beta2,
                  a->eps, a->weight_decay, a->kind == CL_OPT_ADAMW, o->step);
}

size_t cl_optimizer_state(cl_optimizer *o, cl_real **buf1, cl_real **buf2, int64_t *step) {
    *buf1 = o->buf1;
    *buf2 = o->buf2;
    *step = o->step;
    return o->m->nparams;
}

void cl_optimizer_set_state_step(cl_optimizer *o, int64_t step) { o->step = step; }
