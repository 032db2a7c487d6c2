/* groupnorm.c: torch.nn.GroupNorm and LayerNorm over channels-last activations.
 *
 * Each sample is normalised per group of C/G channels over (C/G, H, W) with the
 * biased variance, then an affine weight and bias are applied per channel. LayerNorm
 * is GroupNorm with one group (the usual choice in convnets, nn.GroupNorm(1, C)); with
 * elementwise=true its affine parameters have one value per (C, H, W) element, as
 * nn.LayerNorm([C, H, W]), stored [H][W][C] to match the activations. Statistics are
 * per sample, so threads need no barrier. A ReLU planned in place after it (node
 * relu_out) runs inside its forward and backward passes (model.c). */
#include <math.h>
#include <string.h>

#include "nn/model.h"

typedef struct {
    int HW, C, G;
    bool elementwise; /* gamma and beta are [HW][C] instead of [C] */
    cl_real eps;
} gn_dims;

/* The node's team slot (acc) holds 4*C + 2*G doubles of sums: per channel sums
 * [0, 2C), per group means [2C, 2C + 2G), per channel sums of the affine gradients
 * [2C + 2G, 4C + 2G); then 4*C reals of per-channel statistics, which start here. */
static cl_real *channel_stats(double *acc, const gn_dims *d) {
    return (cl_real *)(acc + 4 * (size_t)d->C + 2 * (size_t)d->G);
}

/* One sample: out[HW][C] = (inp - mean[g]) * rstd[g] * gamma + beta, or its relu
 * with the ReLU run inside (relu). stats receives mean[G] and rstd[G]. */
CL_CLONES static void groupnorm_forward(cl_real *restrict out, cl_real *restrict stats,
                              const cl_real *restrict inp, const cl_real *restrict gamma,
                              const cl_real *restrict beta, double *restrict acc,
                              const gn_dims *d, bool relu) {
    const int C = d->C, Cg = C / d->G;
    memset(acc, 0, 2 * (size_t)C * sizeof(double));
    for (int p = 0; p < d->HW; p++)
        for (int c = 0; c < C; c++) {
            double x = inp[(size_t)p * C + c];
            acc[c] += x;
            acc[C + c] += x * x;
        }
    const double count = (double)Cg * d->HW;
    cl_real *mean = stats, *rstd = stats + d->G;
    for (int g = 0; g < d->G; g++) {
        double s = 0, s2 = 0;
        for (int c = g * Cg; c < (g + 1) * Cg; c++) {
            s += acc[c];
            s2 += acc[C + c];
        }
        double mu = s / count, var = s2 / count - mu * mu;
        if (var < 0) var = 0;
        mean[g] = (cl_real)mu;
        rstd[g] = (cl_real)(1.0 / sqrt(var + d->eps));
    }
    /* the group's statistics spread to its channels, so the loop over channels has
       no division and vectorises */
    cl_real *cm = channel_stats(acc, d), *cr = cm + C;
    for (int c = 0; c < C; c++) {
        cm[c] = mean[c / Cg];
        cr[c] = rstd[c / Cg];
    }
    for (int p = 0; p < d->HW; p++) {
        const cl_real *gp = d->elementwise ? gamma + (size_t)p * C : gamma;
        const cl_real *bp = d->elementwise ? beta + (size_t)p * C : beta;
        const cl_real *x = inp + (size_t)p * C;
        cl_real *y = out + (size_t)p * C;
        if (relu)
            for (int c = 0; c < C; c++) {
                cl_real v = (x[c] - cm[c]) * cr[c] * gp[c] + bp[c];
                y[c] = v < 0 ? 0 : v; /* NaN and -0 pass, as in torch.relu */
            }
        else
            for (int c = 0; c < C; c++) y[c] = (x[c] - cm[c]) * cr[c] * gp[c] + bp[c];
    }
}

/* One sample: accumulates dinp[HW][C] (if not NULL), and dgamma and dbeta from dout
 * (per-element affine: into dgamma and dbeta; per channel: into the double sums in
 * acc, which backward() adds to them), with xhat = (x - mean) * rstd and
 * dxhat = dy * gamma:
 *     dinp = rstd * (dxhat - mean_g(dxhat) - xhat * mean_g(dxhat * xhat)),
 * where dy is dout, or with the ReLU run inside (masked), dout masked by relu_y > 0
 * (cl_relu_dy). Inlined twice, masked or not. */
static inline __attribute__((always_inline)) void
backward_one(cl_real *restrict dinp, cl_real *restrict dgamma, cl_real *restrict dbeta,
             const cl_real *restrict dout, const cl_real *restrict relu_y,
             const cl_real *restrict inp, const cl_real *restrict stats,
             const cl_real *restrict gamma, double *restrict acc, const gn_dims *d, bool masked) {
    const int C = d->C, Cg = C / d->G;
    const cl_real *mean = stats, *rstd = stats + d->G;
    /* per-channel copies of the group statistics (see the forward) */
    cl_real *cm = channel_stats(acc, d), *cr = cm + C, *cg1 = cr + C, *cg2 = cg1 + C;
    for (int c = 0; c < C; c++) {
        cm[c] = mean[c / Cg];
        cr[c] = rstd[c / Cg];
    }
    memset(acc, 0, 2 * (size_t)C * sizeof(double));
    if (d->elementwise) {
        /* one gamma and beta per element: each gradient sums over the batch only */
        for (int p = 0; p < d->HW; p++) {
            const cl_real *gp = gamma + (size_t)p * C;
            cl_real *dgp = dgamma + (size_t)p * C, *dbp = dbeta + (size_t)p * C;
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)p * C + c;
                cl_real xhat = (inp[i] - cm[c]) * cr[c];
                cl_real dy = cl_relu_dy(dout, relu_y, i, masked);
                dgp[c] += dy * xhat;
                dbp[c] += dy;
                acc[c] += (double)dy * gp[c];
                acc[C + c] += (double)dy * gp[c] * xhat;
            }
        }
    } else {
        /* per channel: dgamma and dbeta sum HW values of every sample; in float these
           sums lost up to 10x PyTorch's precision at 32x32 (issue 12), so they are
           summed in double across the thread's samples (see backward()) */
        double *sg = acc + 2 * C + 2 * d->G, *sb = sg + C;
        for (int p = 0; p < d->HW; p++)
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)p * C + c;
                cl_real xhat = (inp[i] - cm[c]) * cr[c];
                double dy = cl_relu_dy(dout, relu_y, i, masked);
                sg[c] += dy * xhat;
                sb[c] += dy;
                acc[c] += dy * gamma[c];
                acc[C + c] += dy * gamma[c] * xhat;
            }
    }
    if (!dinp) return;
    const double count = (double)Cg * d->HW;
    /* Per-group means into acc[2C..2C+G) and acc[2C+G..2C+2G). */
    double *gm = acc + 2 * C, *gm2 = gm + d->G;
    for (int g = 0; g < d->G; g++) {
        double s = 0, s2 = 0;
        for (int c = g * Cg; c < (g + 1) * Cg; c++) {
            s += acc[c];
            s2 += acc[C + c];
        }
        gm[g] = s / count;
        gm2[g] = s2 / count;
    }
    for (int c = 0; c < C; c++) {
        cg1[c] = (cl_real)gm[c / Cg];
        cg2[c] = (cl_real)gm2[c / Cg];
    }
    for (int p = 0; p < d->HW; p++) {
        const cl_real *gp = d->elementwise ? gamma + (size_t)p * C : gamma;
        const cl_real *x = inp + (size_t)p * C;
        cl_real *dx = dinp + (size_t)p * C;
        for (int c = 0; c < C; c++) {
            cl_real xhat = (x[c] - cm[c]) * cr[c];
            cl_real dy = cl_relu_dy(dout, relu_y, (size_t)p * C + c, masked);
            dx[c] += cr[c] * (dy * gp[c] - cg1[c] - xhat * cg2[c]);
        }
    }
}

CL_CLONES static void groupnorm_backward(cl_real *restrict dinp, cl_real *restrict dgamma,
                               cl_real *restrict dbeta, const cl_real *restrict dout,
                               const cl_real *restrict relu_y,
                               const cl_real *restrict inp, const cl_real *restrict stats,
                               const cl_real *restrict gamma, double *restrict acc,
                               const gn_dims *d) {
    if (relu_y) backward_one(dinp, dgamma, dbeta, dout, relu_y, inp, stats, gamma, acc, d, true);
    else backward_one(dinp, dgamma, dbeta, dout, relu_y, inp, stats, gamma, acc, d, false);
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    int G = n->a.norm.groups;
    if (G < 1 || G > in->c || in->c % G)
        return cl_fail(m, CL_ERR_SHAPE, "num_groups",
                       "num_groups=%d does not divide %d channels", G, in->c);
    *out = *in;
    return CL_OK;
}

static size_t affine_count(const cl_model *m, const cl_node *n) {
    const cl_shape *s = cl_in_shape(m, n, 0);
    return n->a.norm.elementwise ? (size_t)s->c * s->h * s->w : (size_t)s->c;
}

static void sizes(const cl_model *m, cl_node *n) {
    n->nparams = 2 * affine_count(m, n);
    n->nsaved = 2 * (size_t)n->a.norm.groups;
    /* 4C + 2G doubles of sums, then 4C reals of per-channel statistics (4C doubles
       in the double-precision build) */
    n->nteam = 8 * (size_t)cl_in_shape(m, n, 0)->c + 2 * (size_t)n->a.norm.groups;
}

static int tensors(const cl_model *m, const cl_node *n, cl_op_tensor *t) {
    const cl_shape *s = cl_in_shape(m, n, 0);
    size_t A = affine_count(m, n);
    if (n->a.norm.elementwise) {
        t[0] = (cl_op_tensor){"weight", 3, {s->c, s->h, s->w}, true, 0, CL_LAYOUT_TRANSPOSED, 1};
        t[1] = (cl_op_tensor){"bias", 3, {s->c, s->h, s->w}, true, A, CL_LAYOUT_TRANSPOSED, 1};
    } else {
        t[0] = (cl_op_tensor){"weight", 1, {s->c}, true, 0, CL_LAYOUT_PLAIN, 1};
        t[1] = (cl_op_tensor){"bias", 1, {s->c}, true, A, CL_LAYOUT_PLAIN, 1};
    }
    return 2;
}

static void init(cl_model *m, const cl_node *n, cl_real *params, cl_real *buffers) {
    (void)buffers;
    size_t A = affine_count(m, n);
    for (size_t i = 0; i < A; i++) {
        params[i] = 1.0f;
        params[A + i] = 0.0f;
    }
}

static gn_dims dims_of(const cl_model *m, const cl_node *n) {
    const cl_shape *s = cl_in_shape(m, n, 0);
    return (gn_dims){s->h * s->w, s->c, n->a.norm.groups, n->a.norm.elementwise, n->a.norm.eps};
}

static void forward(const cl_exec *e, const cl_node *n) {
    gn_dims d = dims_of(e->m, n);
    size_t size = (size_t)d.HW * d.C, A = affine_count(e->m, n);
    const cl_real *gamma = e->m->params + n->param_off;
    const cl_real *inp = cl_act(e, n->in[0]);
    cl_real *out = cl_act(e, n->out), *stats = cl_node_saved(e, n);
    double *acc = cl_team_slot(e, e->tid);
    for (int i = 0; i < e->n1 - e->n0; i++)
        groupnorm_forward(out + i * size, stats + i * n->nsaved, inp + i * size, gamma, gamma + A,
                          acc, &d, n->relu_out >= 0);
}

static void backward(const cl_exec *e, const cl_node *n) {
    gn_dims d = dims_of(e->m, n);
    size_t size = (size_t)d.HW * d.C, A = affine_count(e->m, n);
    const cl_real *gamma = e->m->params + n->param_off;
    cl_real *dgamma = e->grads + n->param_off;
    /* with the ReLU inside: its output gradient, masked by the relu(y) stored in place */
    const cl_real *relu_y = n->relu_out >= 0 ? cl_act(e, n->out) : NULL;
    const cl_real *inp = cl_act(e, n->in[0]), *dout = cl_dact(e, relu_y ? n->relu_out : n->out);
    const cl_real *stats = cl_node_saved(e, n);
    cl_real *dinp = cl_dinp(e, n->in[0]);
    double *acc = cl_team_slot(e, e->tid);
    double *sg = acc + 2 * d.C + 2 * d.G, *sb = sg + d.C; /* per-channel affine gradients */
    memset(sg, 0, 2 * (size_t)d.C * sizeof(double));
    for (int i = 0; i < e->n1 - e->n0; i++)
        groupnorm_backward(dinp ? dinp + i * size : NULL, dgamma, dgamma + A, dout + i * size,
                           relu_y ? relu_y + i * size : NULL, inp + i * size, stats + i * n->nsaved, gamma, acc, &d);
    if (!d.elementwise)
        for (int c = 0; c < d.C; c++) {
            dgamma[c] += (cl_real)sg[c];
            dgamma[A + c] += (cl_real)sb[c];
        }
}

const cl_op cl_op_groupnorm = {
    .name = "groupnorm",
    .torch_name = "GroupNorm",
    .rf = CL_RF_SAME,
    .infer_shape = infer_shape,
    .sizes = sizes,
    .tensors = tensors,
    .init = init,
    .forward = forward,
    .backward = backward,
};

const cl_op cl_op_layernorm = {
    .name = "layernorm",
    .torch_name = "LayerNorm",
    .rf = CL_RF_SAME,
    .infer_shape = infer_shape,
    .sizes = sizes,
    .tensors = tensors,
    .init = init,
    .forward = forward,
    .backward = backward,
};
