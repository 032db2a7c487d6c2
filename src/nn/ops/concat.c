/* concat.c: concatenation along channels (torch.cat(xs, dim=1)) of tensors with equal
 * height and width. In channels-last layout each pixel's channels are written one
 * input after another. */
#include <string.h>

#include "nn/model.h"

/* out[P][Ctot][offset + c] = inp[P][C][c] for one input */
static void concat_forward_one(cl_real *restrict out, const cl_real *restrict inp, size_t P, int C,
                               int Ctot, int offset) {
    for (size_t p = 0; p < P; p++)
        memcpy(out + p * Ctot + offset, inp + p * C, (size_t)C * sizeof(cl_real));
}

/* dinp[P][C][c] += dout[P][Ctot][offset + c] */
static void concat_backward_one(cl_real *restrict dinp, const cl_real *restrict dout, size_t P, int C,
                                int Ctot, int offset) {
    for (size_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) dinp[p * C + c] += dout[p * Ctot + offset + c];
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *a = cl_in_shape(m, n, 0);
    int64_t c = 0;
    for (int k = 0; k < n->nin; k++) {
        const cl_shape *b = cl_in_shape(m, n, k);
        if (b->h != a->h || b->w != a->w)
            return cl_fail(m, CL_ERR_SHAPE, "concat",
                           "concat needs equal height and width, got %dx%d ('%s') and %dx%d ('%s')",
                           a->h, a->w, m->tensors[n->in[0]].name, b->h, b->w,
                           m->tensors[n->in[k]].name);
        c += b->c;
    }
    if (c > (1 << 20)) return cl_fail(m, CL_ERR_SHAPE, "concat", "concat output has too many channels");
    *out = (cl_shape){(int)c, a->h, a->w};
    return CL_OK;
}

static void forward(const cl_exec *e, const cl_node *n) {
    const cl_shape *o = cl_out_shape(e->m, n);
    size_t P = (size_t)(e->n1 - e->n0) * o->h * o->w;
    int offset = 0;
    for (int k = 0; k < n->nin; k++) {
        int C = cl_in_shape(e->m, n, k)->c;
        concat_forward_one(cl_act(e, n->out), cl_act(e, n->in[k]), P, C, o->c, offset);
        offset += C;
    }
}

static void backward(const cl_exec *e, const cl_node *n) {
    const cl_shape *o = cl_out_shape(e->m, n);
    size_t P = (size_t)(e->n1 - e->n0) * o->h * o->w;
    int offset = 0;
    for (int k = 0; k < n->nin; k++) {
        int C = cl_in_shape(e->m, n, k)->c;
        cl_real *dinp = cl_dinp(e, n->in[k]);
        if (dinp) concat_backward_one(dinp, cl_dact(e, n->out), P, C, o->c, offset);
        offset += C;
    }
}

const cl_op cl_op_concat = {
    .name = "concat",
    .torch_name = "Concat",
    .rf = CL_RF_SAME,
    .infer_shape = infer_shape,
    .forward = forward,
    .backward = backward,
};
