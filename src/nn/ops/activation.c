/* activation.c: element-wise activations: ReLU, LeakyReLU (torch.nn.LeakyReLU,
 * negative_slope) and GELU (torch.nn.GELU, the exact erf form). Three op-table
 * entries share one pair of kernels; the node's kind picks the function. */
#include <math.h>

#include "nn/model.h"

/* Selects below read both operands unconditionally, so the loops vectorise
 * instead of branching on the sign of each element. */

/* out[i] = f(inp[i]) for i < count */
CL_CLONES static void activation_forward(cl_real *restrict out, const cl_real *restrict inp, size_t count,
                               cl_act_kind kind, cl_real slope) {
    switch (kind) {
    case CL_ACT_RELU:
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i];
            out[i] = x < 0 ? 0 : x; /* NaN and -0 pass, as in torch.relu */
        }
        break;
    case CL_ACT_LEAKY_RELU:
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i];
            out[i] = x > 0 ? x : x * slope;
        }
        break;
    case CL_ACT_GELU:
        for (size_t i = 0; i < count; i++)
            out[i] = 0.5f * inp[i] * (1.0f + cl_erf(inp[i] * (cl_real)M_SQRT1_2));
        break;
    default: break;
    }
}

/* dinp[i] += dout[i] * f'(inp[i]) */
CL_CLONES static void activation_backward(cl_real *restrict dinp, const cl_real *restrict dout,
                                const cl_real *restrict inp, size_t count, cl_act_kind kind,
                                cl_real slope) {
    switch (kind) {
    case CL_ACT_RELU:
        for (size_t i = 0; i < count; i++) {
            cl_real d = dout[i];
            dinp[i] += inp[i] <= 0 ? 0 : d; /* passes at NaN, as torch's threshold_backward */
        }
        break;
    case CL_ACT_LEAKY_RELU:
        for (size_t i = 0; i < count; i++) {
            cl_real d = dout[i];
            dinp[i] += inp[i] > 0 ? d : d * slope;
        }
        break;
    case CL_ACT_GELU: {
        const cl_real inv_sqrt_2pi = (cl_real)0.3989422804014327;
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i];
            cl_real cdf = 0.5f * (1.0f + cl_erf(x * (cl_real)M_SQRT1_2));
            cl_real pdf = inv_sqrt_2pi * cl_exp(-0.5f * x * x);
            dinp[i] += dout[i] * (cdf + x * pdf);
        }
        break;
    }
    default: break;
    }
}

static void forward(const cl_exec *e, const cl_node *n) {
    size_t count = (size_t)(e->n1 - e->n0) * e->m->tensors[n->out].size;
    activation_forward(cl_act(e, n->out), cl_act(e, n->in[0]), count, n->a.act.kind,
                       n->a.act.slope);
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    size_t count = (size_t)(e->n1 - e->n0) * e->m->tensors[n->out].size;
    activation_backward(dinp, cl_dact(e, n->out), cl_act(e, n->in[0]), count, n->a.act.kind,
                        n->a.act.slope);
}

#define ACTIVATION_OP(var, op_name, torch)                                                      \
    const cl_op var = {                                                                         \
        .name = op_name,                                                                        \
        .torch_name = torch,                                                                    \
        .rf = CL_RF_SAME,                                                                       \
        .infer_shape = cl_infer_same_shape,                                                     \
        .forward = forward,                                                                     \
        .backward = backward,                                                                   \
    }

ACTIVATION_OP(cl_op_relu, "relu", "ReLU");
ACTIVATION_OP(cl_op_leaky_relu, "leakyrelu", "LeakyReLU");
ACTIVATION_OP(cl_op_gelu, "gelu", "GELU");
