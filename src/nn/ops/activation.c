/* activation.c: element-wise activations: ReLU, LeakyReLU (torch.nn.LeakyReLU,
 * negative_slope), GELU (torch.nn.GELU, the exact erf form), SiLU (x * sigmoid(x))
 * and Hardswish (x * relu6(x + 3) / 6; at the kinks the derivative is -0.5 at -3
 * and 1 at 3, as PyTorch's vectorised kernel gives for every element but a
 * tensor's scalar tail, which takes 1.5 at 3). The op of each
 * kind shares one pair of kernels; the node's kind picks the function. */
#include <math.h>

#include "nn/model.h"

/* Selects below read both operands unconditionally, so the loops vectorise
 * instead of branching on the sign of each element. */

/* out[i] = f(inp[i]) for i < count; out may be inp (a ReLU planned in place) */
CL_CLONES static void activation_forward(cl_real *out, const cl_real *inp, size_t count,
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
    case CL_ACT_SILU:
        for (size_t i = 0; i < count; i++) out[i] = inp[i] / (1.0f + cl_exp(-inp[i]));
        break;
    case CL_ACT_HARDSWISH:
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i], t = x + 3;
            t = t > 0 ? t : 0;
            t = t < 6 ? t : 6;
            out[i] = x * t / 6;
        }
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
    case CL_ACT_SILU:
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i], sig = 1.0f / (1.0f + cl_exp(-x));
            dinp[i] += dout[i] * sig * (1.0f + x * (1.0f - sig));
        }
        break;
    case CL_ACT_HARDSWISH:
        for (size_t i = 0; i < count; i++) {
            cl_real x = inp[i], d = dout[i];
            cl_real mid = d * (x / 3 + 0.5f);
            dinp[i] += x < -3 ? 0 : x < 3 ? mid : d;
        }
        break;
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
ACTIVATION_OP(cl_op_silu, "silu", "SiLU");
ACTIVATION_OP(cl_op_hardswish, "hardswish", "Hardswish");

const cl_op *cl_activation_op(cl_act_kind kind) {
    static const cl_op *const ops[] = {
        [CL_ACT_RELU] = &cl_op_relu,
        [CL_ACT_LEAKY_RELU] = &cl_op_leaky_relu,
        [CL_ACT_GELU] = &cl_op_gelu,
        [CL_ACT_SILU] = &cl_op_silu,
        [CL_ACT_HARDSWISH] = &cl_op_hardswish,
    };
    if ((int)kind < 0 || (size_t)kind >= sizeof ops / sizeof *ops) return NULL;
    return ops[kind];
}
