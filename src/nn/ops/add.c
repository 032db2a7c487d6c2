/* add.c: element-wise sum of two tensors of the same shape (a residual connection,
 * `a + b` in PyTorch). The backward adds the gradient into both inputs, so adding a
 * tensor to itself gives twice the gradient. */
#include "nn/model.h"

/* out[i] = a[i] + b[i] */
CL_CLONES static void add_forward(cl_real *restrict out, const cl_real *a, const cl_real *b, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = a[i] + b[i];
}

/* dinp[i] += dout[i] */
CL_CLONES static void add_backward(cl_real *dinp, const cl_real *restrict dout, size_t count) {
    for (size_t i = 0; i < count; i++) dinp[i] += dout[i];
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *a = cl_in_shape(m, n, 0), *b = cl_in_shape(m, n, 1);
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return cl_fail(m, CL_ERR_SHAPE, "add",
                       "add needs equal shapes, got %dx%dx%d ('%s') and %dx%dx%d ('%s')", a->c,
                       a->h, a->w, m->tensors[n->in[0]].name, b->c, b->h, b->w,
                       m->tensors[n->in[1]].name);
    *out = *a;
    return CL_OK;
}

static void forward(const cl_exec *e, const cl_node *n) {
    size_t count = (size_t)(e->n1 - e->n0) * e->m->tensors[n->out].size;
    add_forward(cl_act(e, n->out), cl_act(e, n->in[0]), cl_act(e, n->in[1]), count);
}

static void backward(const cl_exec *e, const cl_node *n) {
    size_t count = (size_t)(e->n1 - e->n0) * e->m->tensors[n->out].size;
    for (int k = 0; k < 2; k++) {
        cl_real *dinp = cl_dinp(e, n->in[k]);
        if (dinp) add_backward(dinp, cl_dact(e, n->out), count);
    }
}

const cl_op cl_op_add = {
    .name = "add",
    .torch_name = "Add",
    .rf = CL_RF_SAME,
    .infer_shape = infer_shape,
    .forward = forward,
    .backward = backward,
};
