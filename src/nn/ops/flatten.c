/* flatten.c: torch.nn.Flatten: CxHxW -> (C*H*W)x1x1. The output is in PyTorch's
 * (C, H, W) order, not the channels-last order of the input, so a linear layer after
 * it has exactly PyTorch's weight matrix. */
#include "nn/model.h"

/* out[N][C*HW] (index c*HW + p) = inp[N][HW][C] (index p*C + c) */
static void flatten_forward(cl_real *restrict out, const cl_real *restrict inp, int N, int HW, int C) {
    for (int n = 0; n < N; n++) {
        const cl_real *ip = inp + (size_t)n * HW * C;
        cl_real *op = out + (size_t)n * HW * C;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) op[(size_t)c * HW + p] = ip[(size_t)p * C + c];
    }
}

/* dinp[N][HW][C] += dout[N][C*HW] */
static void flatten_backward(cl_real *restrict dinp, const cl_real *restrict dout, int N, int HW,
                             int C) {
    for (int n = 0; n < N; n++) {
        cl_real *dip = dinp + (size_t)n * HW * C;
        const cl_real *dop = dout + (size_t)n * HW * C;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) dip[(size_t)p * C + c] += dop[(size_t)c * HW + p];
    }
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    *out = (cl_shape){in->c * in->h * in->w, 1, 1};
    return CL_OK;
}

static void forward(const cl_exec *e, const cl_node *n) {
    const cl_shape *in = cl_in_shape(e->m, n, 0);
    flatten_forward(cl_act(e, n->out), cl_act(e, n->in[0]), e->n1 - e->n0, in->h * in->w, in->c);
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    const cl_shape *in = cl_in_shape(e->m, n, 0);
    flatten_backward(dinp, cl_dact(e, n->out), e->n1 - e->n0, in->h * in->w, in->c);
}

const cl_op cl_op_flatten = {
    .name = "flatten",
    .torch_name = "Flatten",
    .rf = CL_RF_GLOBAL,
    .infer_shape = infer_shape,
    .forward = forward,
    .backward = backward,
};
