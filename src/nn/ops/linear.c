/* linear.c: torch.nn.Linear over flat inputs (Cx1x1 tensors, after gap or flatten).
 * The weight is stored transposed, [I][O], so the inner loop runs over contiguous
 * outputs; PyTorch's [O][I] is converted when tensors are read or written. */
#include <math.h>

#include "nn/model.h"

/* out[N][O] = bias[O] + inp[N][I] . weight[I][O]; bias may be NULL */
static void linear_forward(cl_real *restrict out, const cl_real *restrict inp,
                           const cl_real *restrict weight, const cl_real *restrict bias, int N, int I,
                           int O) {
    for (int n = 0; n < N; n++) {
        cl_real *op = out + (size_t)n * O;
        for (int o = 0; o < O; o++) op[o] = bias ? bias[o] : 0.0f;
        for (int i = 0; i < I; i++) {
            const cl_real x = inp[(size_t)n * I + i];
            const cl_real *w = weight + (size_t)i * O;
            for (int o = 0; o < O; o++) op[o] += x * w[o];
        }
    }
}

/* Accumulates dinp[N][I] (if not NULL), dweight[I][O] and dbias[O] (if not NULL). */
static void linear_backward(cl_real *restrict dinp, cl_real *restrict dweight, cl_real *restrict dbias,
                            const cl_real *restrict dout, const cl_real *restrict inp,
                            const cl_real *restrict weight, int N, int I, int O) {
    for (int n = 0; n < N; n++) {
        const cl_real *dop = dout + (size_t)n * O;
        if (dbias)
            for (int o = 0; o < O; o++) dbias[o] += dop[o];
        for (int i = 0; i < I; i++) {
            const cl_real x = inp[(size_t)n * I + i];
            cl_real *dw = dweight + (size_t)i * O;
            for (int o = 0; o < O; o++) dw[o] += x * dop[o];
            if (dinp) {
                const cl_real *w = weight + (size_t)i * O;
                cl_real acc = 0.0f;
                for (int o = 0; o < O; o++) acc += w[o] * dop[o];
                dinp[(size_t)n * I + i] += acc;
            }
        }
    }
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    if (in->h != 1 || in->w != 1)
        return cl_fail(m, CL_ERR_SHAPE, "linear",
                       "linear needs a flat input (Cx1x1), got %dx%dx%d: add `flatten` or `gap` "
                       "before it", in->c, in->h, in->w);
    if (n->a.linear.out < 1 || n->a.linear.out > (1 << 20))
        return cl_fail(m, CL_ERR_ARG, "out", "linear needs 1 to %d outputs, got %d", 1 << 20,
                       n->a.linear.out);
    *out = (cl_shape){n->a.linear.out, 1, 1};
    return CL_OK;
}

static void sizes(const cl_model *m, cl_node *n) {
    int64_t I = cl_in_shape(m, n, 0)->c, O = n->a.linear.out;
    n->nparams = (size_t)(I * O + (n->a.linear.no_bias ? 0 : O));
    n->macs = I * O;
}

static int tensors(const cl_model *m, const cl_node *n, cl_op_tensor *t) {
    int64_t I = cl_in_shape(m, n, 0)->c, O = n->a.linear.out;
    t[0] = (cl_op_tensor){"weight", 2, {O, I}, true, 0, CL_LAYOUT_TRANSPOSED, 1};
    if (n->a.linear.no_bias) return 1;
    t[1] = (cl_op_tensor){"bias", 1, {O}, true, (size_t)(I * O), CL_LAYOUT_PLAIN, 1};
    return 2;
}

/* As nn.Linear.reset_parameters(): weight and bias uniform in +-1/sqrt(in_features). */
static void init(cl_model *m, const cl_node *n, cl_real *params, cl_real *buffers) {
    (void)buffers;
    int I = cl_in_shape(m, n, 0)->c, O = n->a.linear.out;
    cl_real bound = 1.0f / sqrtf((float)I);
    cl_init_uniform(m, params, (size_t)I * O, bound);
    if (!n->a.linear.no_bias) cl_init_uniform(m, params + (size_t)I * O, (size_t)O, bound);
}

static void forward(const cl_exec *e, const cl_node *n) {
    int I = cl_in_shape(e->m, n, 0)->c, O = n->a.linear.out;
    const cl_real *w = e->m->params + n->param_off;
    linear_forward(cl_act(e, n->out), cl_act(e, n->in[0]), w,
                   n->a.linear.no_bias ? NULL : w + (size_t)I * O, e->n1 - e->n0, I, O);
}

static void backward(const cl_exec *e, const cl_node *n) {
    int I = cl_in_shape(e->m, n, 0)->c, O = n->a.linear.out;
    cl_real *dw = e->grads + n->param_off;
    linear_backward(cl_dinp(e, n->in[0]), dw, n->a.linear.no_bias ? NULL : dw + (size_t)I * O,
                    cl_dact(e, n->out), cl_act(e, n->in[0]), e->m->params + n->param_off,
                    e->n1 - e->n0, I, O);
}

const cl_op cl_op_linear = {
    .name = "linear",
    .torch_name = "Linear",
    .rf = CL_RF_SAME,
    .infer_shape = infer_shape,
    .sizes = sizes,
    .tensors = tensors,
    .init = init,
    .forward = forward,
    .backward = backward,
};
