/* maxpool2d.c: max pooling (torch.nn.MaxPool2d: kernel, stride, padding, dilation;
 * padding counts as -inf; NaN propagates; ties go to the first element in scan
 * order) over channels-last activations. The forward saves, per output element,
 * which window position won, so the backward routes the gradient there. */
#include <math.h>

#include "nn/model.h"

typedef struct {
    int N, H, W, C, OH, OW, R, S, sh, sw, ph, pw, dh, dw;
} pool_dims;

static pool_dims dims_of(const cl_model *m, const cl_node *n, int N) {
    const cl_shape *in = cl_in_shape(m, n, 0), *out = cl_out_shape(m, n);
    const cl_conv2d_args *a = &n->a.conv;
    return (pool_dims){N, in->h, in->w, in->c, out->h, out->w, a->kernel_h, a->kernel_w,
                       a->stride_h, a->stride_w, a->pad_h, a->pad_w, a->dilation_h, a->dilation_w};
}

/* out[N][OH][OW][C] = max over the window of inp[N][H][W][C]; argmax[N][OH][OW][C]
 * receives the winning window position r*S + s (as a cl_real: it is small). */
CL_CLONES static void maxpool2d_forward(cl_real *restrict out, cl_real *restrict argmax,
                              const cl_real *restrict inp, const pool_dims *d) {
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                size_t o = (((size_t)n * d->OH + oh) * d->OW + ow) * d->C;
                cl_real *op = out + o, *ap = argmax + o;
                /* Like PyTorch, the index starts at the first in-bounds position, so an
                 * all -inf window still routes its gradient somewhere valid. */
                int r0 = 0, s0 = 0;
                while (oh * d->sh - d->ph + r0 * d->dh < 0) r0++;
                while (ow * d->sw - d->pw + s0 * d->dw < 0) s0++;
                for (int c = 0; c < d->C; c++) {
                    op[c] = -INFINITY;
                    ap[c] = (cl_real)(r0 * d->S + s0);
                }
                for (int r = r0; r < d->R; r++) {
                    int ih = oh * d->sh - d->ph + r * d->dh;
                    if (ih >= d->H) break;
                    for (int s = s0; s < d->S; s++) {
                        int iw = ow * d->sw - d->pw + s * d->dw;
                        if (iw >= d->W) break;
                        const cl_real *ip = inp + (((size_t)n * d->H + ih) * d->W + iw) * d->C;
                        const cl_real pos = (cl_real)(r * d->S + s);
                        for (int c = 0; c < d->C; c++) {
                            /* selects, not a branch: the loop vectorises */
                            cl_real v = ip[c], best = op[c], at = ap[c];
                            bool take = v > best || v != v;
                            op[c] = take ? v : best;
                            ap[c] = take ? pos : at;
                        }
                    }
                }
            }
}

/* dinp[N][H][W][C] += dout at the positions argmax recorded. */
CL_CLONES static void maxpool2d_backward(cl_real *restrict dinp, const cl_real *restrict dout,
                               const cl_real *restrict argmax, const pool_dims *d) {
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                size_t o = (((size_t)n * d->OH + oh) * d->OW + ow) * d->C;
                for (int c = 0; c < d->C; c++) {
                    int pos = (int)argmax[o + c];
                    int ih = oh * d->sh - d->ph + (pos / d->S) * d->dh;
                    int iw = ow * d->sw - d->pw + (pos % d->S) * d->dw;
                    dinp[(((size_t)n * d->H + ih) * d->W + iw) * d->C + c] += dout[o + c];
                }
            }
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    const cl_conv2d_args *a = &n->a.conv;
    if (a->pad_h * 2 > a->kernel_h || a->pad_w * 2 > a->kernel_w)
        return cl_fail(m, CL_ERR_ARG, "pad", "pad=%dx%d must be at most half the kernel %dx%d",
                       a->pad_h, a->pad_w, a->kernel_h, a->kernel_w);
    out->c = in->c;
    out->h = cl_conv_out_size(in->h, a->kernel_h, a->stride_h, a->pad_h, a->dilation_h);
    out->w = cl_conv_out_size(in->w, a->kernel_w, a->stride_w, a->pad_w, a->dilation_w);
    if (out->h < 1 || out->w < 1)
        return cl_fail(m, CL_ERR_SHAPE, "k",
                       "maxpool output would be %dx%dx%d from a %dx%dx%d input: the shape shrinks "
                       "below 1x1", out->c, out->h, out->w, in->c, in->h, in->w);
    return CL_OK;
}

static void sizes(const cl_model *m, cl_node *n) {
    const cl_shape *o = cl_out_shape(m, n);
    n->nsaved = (size_t)o->c * o->h * o->w;
}

static void forward(const cl_exec *e, const cl_node *n) {
    pool_dims d = dims_of(e->m, n, e->n1 - e->n0);
    maxpool2d_forward(cl_act(e, n->out), cl_node_saved(e, n), cl_act(e, n->in[0]), &d);
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    pool_dims d = dims_of(e->m, n, e->n1 - e->n0);
    maxpool2d_backward(dinp, cl_dact(e, n->out), cl_node_saved(e, n), &d);
}

const cl_op cl_op_maxpool2d = {
    .name = "maxpool2d",
    .torch_name = "MaxPool2d",
    .rf = CL_RF_WINDOW,
    .infer_shape = infer_shape,
    .sizes = sizes,
    .forward = forward,
    .backward = backward,
};
