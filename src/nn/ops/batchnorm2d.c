/* batchnorm2d.c: torch.nn.BatchNorm2d over channels-last activations.
 *
 * Training normalises with the statistics of the whole batch (biased variance) and
 * updates running_mean and running_var (unbiased) with momentum; evaluation uses the
 * running statistics. Threads hold slices of the batch, so per-channel sums are
 * made per thread, combined at a barrier in thread order (deterministic), and every
 * thread then applies the same scale and shift. A ReLU planned in place after it
 * (node relu_out) runs inside its forward and backward passes (model.c). */
#include <math.h>
#include <string.h>

#include "nn/model.h"

/* sums[0..C) += sum of x, sums[C..2C) += sum of x^2 over inp [M][C] */
CL_CLONES static void batchnorm_stats(double *restrict sums, const cl_real *restrict inp, size_t M, int C) {
    for (size_t p = 0; p < M; p++) {
        const cl_real *x = inp + p * C;
        for (int c = 0; c < C; c++) {
            sums[c] += x[c];
            sums[C + c] += (double)x[c] * x[c];
        }
    }
}

/* out[M][C] = inp * scale[c] + shift[c] */
CL_CLONES static void channel_affine(cl_real *restrict out, const cl_real *restrict inp,
                           const cl_real *restrict scale, const cl_real *restrict shift, size_t M,
                           int C) {
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++) out[p * C + c] = inp[p * C + c] * scale[c] + shift[c];
}

/* out[M][C] = relu(inp * scale[c] + shift[c]): the ReLU that follows, in the same pass */
CL_CLONES static void channel_affine_relu(cl_real *restrict out, const cl_real *restrict inp,
                                const cl_real *restrict scale, const cl_real *restrict shift,
                                size_t M, int C) {
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++) {
            cl_real y = inp[p * C + c] * scale[c] + shift[c];
            out[p * C + c] = y < 0 ? 0 : y; /* NaN and -0 pass, as in torch.relu */
        }
}

/* Backward sums over [M][C]: sums[c] += dy, sums[C + c] += dy * xhat with
 * xhat = (x - mean[c]) * invstd[c]. Inlined twice, masked or not, so that each loop
 * vectorizes without a test inside. */
static inline __attribute__((always_inline)) void
backward_sums(double *restrict sums, const cl_real *restrict dout, const cl_real *restrict relu_y,
              const cl_real *restrict inp, const cl_real *restrict mean,
              const cl_real *restrict invstd, size_t M, int C, bool masked) {
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++) {
            cl_real dy = cl_relu_dy(dout, relu_y, p * C + c, masked);
            sums[c] += dy;
            sums[C + c] += (double)dy * ((inp[p * C + c] - mean[c]) * invstd[c]);
        }
}

/* dinp[M][C] += gamma*invstd * (dy - k1[c] - xhat*k2[c]), with k1 = mean of dy and
 * k2 = mean of dy*xhat over the batch (both 0 in eval mode). */
static inline __attribute__((always_inline)) void
backward_input(cl_real *restrict dinp, const cl_real *restrict dout, const cl_real *restrict relu_y,
               const cl_real *restrict inp, const cl_real *restrict mean,
               const cl_real *restrict invstd, const cl_real *restrict gamma,
               const cl_real *restrict k1, const cl_real *restrict k2, size_t M, int C, bool masked) {
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++) {
            cl_real xhat = (inp[p * C + c] - mean[c]) * invstd[c];
            dinp[p * C + c] += gamma[c] * invstd[c] * (cl_relu_dy(dout, relu_y, p * C + c, masked) - k1[c] - xhat * k2[c]);
        }
}

/* relu_y: NULL, or the ReLU run inside (its output, for the mask) */
CL_CLONES static void batchnorm_backward_sums(double *restrict sums, const cl_real *restrict dout,
                                    const cl_real *restrict relu_y,
                                    const cl_real *restrict inp, const cl_real *restrict mean,
                                    const cl_real *restrict invstd, size_t M, int C) {
    if (relu_y) backward_sums(sums, dout, relu_y, inp, mean, invstd, M, C, true);
    else backward_sums(sums, dout, relu_y, inp, mean, invstd, M, C, false);
}

CL_CLONES static void batchnorm_backward_input(cl_real *restrict dinp, const cl_real *restrict dout,
                                     const cl_real *restrict relu_y,
                                     const cl_real *restrict inp, const cl_real *restrict mean,
                                     const cl_real *restrict invstd, const cl_real *restrict gamma,
                                     const cl_real *restrict k1, const cl_real *restrict k2, size_t M,
                                     int C) {
    if (relu_y) backward_input(dinp, dout, relu_y, inp, mean, invstd, gamma, k1, k2, M, C, true);
    else backward_input(dinp, dout, relu_y, inp, mean, invstd, gamma, k1, k2, M, C, false);
}

static void sizes(const cl_model *m, cl_node *n) {
    size_t C = (size_t)cl_in_shape(m, n, 0)->c;
    n->nparams = 2 * C;
    n->nbuffers = 2 * C + 1;
    n->nbatch_saved = 2 * C; /* mean, invstd of the last forward */
    n->nscratch = 4 * C;     /* scale, shift (forward); k1, k2 (backward) */
    n->nteam = 2 * C + 1;    /* per thread: partial sums and the count of values */
}

static int tensors(const cl_model *m, const cl_node *n, cl_op_tensor *t) {
    int64_t C = cl_in_shape(m, n, 0)->c;
    t[0] = (cl_op_tensor){"weight", 1, {C}, true, 0, CL_LAYOUT_PLAIN, 1};
    t[1] = (cl_op_tensor){"bias", 1, {C}, true, (size_t)C, CL_LAYOUT_PLAIN, 1};
    t[2] = (cl_op_tensor){"running_mean", 1, {C}, false, 0, CL_LAYOUT_PLAIN, 1};
    t[3] = (cl_op_tensor){"running_var", 1, {C}, false, (size_t)C, CL_LAYOUT_PLAIN, 1};
    t[4] = (cl_op_tensor){"num_batches_tracked", 0, {0}, false, 2 * (size_t)C, CL_LAYOUT_PLAIN, 1};
    return 5;
}

static void init(cl_model *m, const cl_node *n, cl_real *params, cl_real *buffers) {
    int C = cl_in_shape(m, n, 0)->c;
    for (int c = 0; c < C; c++) {
        params[c] = 1.0f;
        params[C + c] = 0.0f;
        buffers[c] = 0.0f;
        buffers[C + c] = 1.0f;
    }
    buffers[2 * C] = 0.0f;
}

static void forward(const cl_exec *e, const cl_node *n) {
    cl_model *m = e->m;
    const cl_shape *s = cl_in_shape(m, n, 0);
    const int C = s->c;
    const size_t HW = (size_t)s->h * s->w, M = (size_t)(e->n1 - e->n0) * HW;
    const cl_real *gamma = m->params + n->param_off, *beta = gamma + C;
    cl_real *running = m->buffers + n->buffer_off;
    cl_real *mean = m->batch_saved + n->batch_saved_off, *invstd = mean + C;
    cl_real *scale = e->scratch, *shift = scale + C;
    const cl_real *inp = cl_act(e, n->in[0]);
    if (e->train) {
        double *slot = cl_team_slot(e, e->tid);
        memset(slot, 0, 2 * (size_t)C * sizeof(double));
        batchnorm_stats(slot, inp, M, C);
        slot[2 * C] = (double)M;
        const double *sums = cl_team_sum(e, 2 * (size_t)C + 1);
        double total = sums[2 * C];
        for (int c = 0; c < C; c++) {
            double mu = sums[c] / total;
            double var = sums[C + c] / total - mu * mu;
            if (var < 0) var = 0;
            cl_real is = (cl_real)(1.0 / sqrt(var + n->a.norm.eps));
            scale[c] = gamma[c] * is;
            shift[c] = beta[c] - (cl_real)mu * scale[c];
            if (e->tid == 0) {
                cl_real mom = n->a.norm.momentum;
                double unbiased = total > 1 ? var * total / (total - 1) : var;
                mean[c] = (cl_real)mu;
                invstd[c] = is;
                running[c] = (1 - mom) * running[c] + mom * (cl_real)mu;
                running[C + c] = (1 - mom) * running[C + c] + mom * (cl_real)unbiased;
            }
        }
        if (e->tid == 0) running[2 * C] += 1.0f;
    } else {
        for (int c = 0; c < C; c++) {
            cl_real is = 1.0f / cl_sqrt(running[C + c] + n->a.norm.eps);
            scale[c] = gamma[c] * is;
            shift[c] = beta[c] - running[c] * scale[c];
            if (e->tid == 0) {
                mean[c] = running[c];
                invstd[c] = is;
            }
        }
    }
    if (n->relu_out >= 0) channel_affine_relu(cl_act(e, n->out), inp, scale, shift, M, C);
    else channel_affine(cl_act(e, n->out), inp, scale, shift, M, C);
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_model *m = e->m;
    const cl_shape *s = cl_in_shape(m, n, 0);
    const int C = s->c;
    const size_t HW = (size_t)s->h * s->w, M = (size_t)(e->n1 - e->n0) * HW;
    const cl_real *gamma = m->params + n->param_off;
    const cl_real *mean = m->batch_saved + n->batch_saved_off, *invstd = mean + C;
    /* with the ReLU inside: its output gradient, masked by the relu(y) stored in place */
    const cl_real *relu_y = n->relu_out >= 0 ? cl_act(e, n->out) : NULL;
    const cl_real *inp = cl_act(e, n->in[0]), *dout = cl_dact(e, relu_y ? n->relu_out : n->out);
    cl_real *dgamma = e->grads + n->param_off, *dbeta = dgamma + C;
    cl_real *k1 = e->scratch, *k2 = k1 + C;
    double *slot = cl_team_slot(e, e->tid);
    memset(slot, 0, 2 * (size_t)C * sizeof(double));
    batchnorm_backward_sums(slot, dout, relu_y, inp, mean, invstd, M, C);
    slot[2 * C] = (double)M;
    for (int c = 0; c < C; c++) {
        dbeta[c] += (cl_real)slot[c];
        dgamma[c] += (cl_real)slot[C + c];
    }
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (e->train) {
        const double *sums = cl_team_sum(e, 2 * (size_t)C + 1);
        double total = sums[2 * C];
        for (int c = 0; c < C; c++) {
            k1[c] = (cl_real)(sums[c] / total);
            k2[c] = (cl_real)(sums[C + c] / total);
        }
    } else {
        for (int c = 0; c < C; c++) k1[c] = k2[c] = 0.0f;
    }
    if (dinp) batchnorm_backward_input(dinp, dout, relu_y, inp, mean, invstd, gamma, k1, k2, M, C);
}

const cl_op cl_op_batchnorm2d = {
    .name = "batchnorm2d",
    .torch_name = "BatchNorm2d",
    .rf = CL_RF_SAME,
    .infer_shape = cl_infer_same_shape,
    .sizes = sizes,
    .tensors = tensors,
    .init = init,
    .forward = forward,
    .backward = backward,
};
