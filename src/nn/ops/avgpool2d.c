/* avgpool2d.c: average pooling (torch.nn.AvgPool2d with count_include_pad=True, the
 * default: the divisor is always the kernel area) and global average pooling
 * (torch.nn.AdaptiveAvgPool2d(1)), over channels-last activations. */
#include "nn/model.h"

typedef struct {
    int N, H, W, C, OH, OW, R, S, sh, sw, ph, pw;
} pool_dims;

static pool_dims dims_of(const cl_model *m, const cl_node *n, int N) {
    const cl_shape *in = cl_in_shape(m, n, 0), *out = cl_out_shape(m, n);
    const cl_conv2d_args *a = &n->a.conv;
    return (pool_dims){N, in->h, in->w, in->c, out->h, out->w, a->kernel_h, a->kernel_w,
                       a->stride_h, a->stride_w, a->pad_h, a->pad_w};
}

/* out[N][OH][OW][C] = sum over the window of inp[N][H][W][C] / (R*S) */
CL_CLONES static void avgpool2d_forward(cl_real *restrict out, const cl_real *restrict inp, const pool_dims *d) {
    const cl_real scale = 1.0f / (cl_real)(d->R * d->S);
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                cl_real *op = out + (((size_t)n * d->OH + oh) * d->OW + ow) * d->C;
                for (int c = 0; c < d->C; c++) op[c] = 0.0f;
                for (int r = 0; r < d->R; r++) {
                    int ih = oh * d->sh - d->ph + r;
                    if (ih < 0 || ih >= d->H) continue;
                    for (int s = 0; s < d->S; s++) {
                        int iw = ow * d->sw - d->pw + s;
                        if (iw < 0 || iw >= d->W) continue;
                        const cl_real *ip = inp + (((size_t)n * d->H + ih) * d->W + iw) * d->C;
                        for (int c = 0; c < d->C; c++) op[c] += ip[c];
                    }
                }
                for (int c = 0; c < d->C; c++) op[c] *= scale;
            }
}

/* dinp[N][H][W][C] += dout / (R*S) over each window */
CL_CLONES static void avgpool2d_backward(cl_real *restrict dinp, const cl_real *restrict dout,
                               const pool_dims *d) {
    const cl_real scale = 1.0f / (cl_real)(d->R * d->S);
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                const cl_real *dop = dout + (((size_t)n * d->OH + oh) * d->OW + ow) * d->C;
                for (int r = 0; r < d->R; r++) {
                    int ih = oh * d->sh - d->ph + r;
                    if (ih < 0 || ih >= d->H) continue;
                    for (int s = 0; s < d->S; s++) {
                        int iw = ow * d->sw - d->pw + s;
                        if (iw < 0 || iw >= d->W) continue;
                        cl_real *dip = dinp + (((size_t)n * d->H + ih) * d->W + iw) * d->C;
                        for (int c = 0; c < d->C; c++) dip[c] += dop[c] * scale;
                    }
                }
            }
}

/* out[N][C] = mean over (H, W) of inp[N][H][W][C] */
CL_CLONES static void global_avgpool_forward(cl_real *restrict out, const cl_real *restrict inp, int N, int HW,
                                   int C) {
    const cl_real scale = 1.0f / (cl_real)HW;
    for (int n = 0; n < N; n++) {
        cl_real *op = out + (size_t)n * C;
        for (int c = 0; c < C; c++) op[c] = 0.0f;
        for (int p = 0; p < HW; p++) {
            const cl_real *ip = inp + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) op[c] += ip[c];
        }
        for (int c = 0; c < C; c++) op[c] *= scale;
    }
}

/* dinp[N][H][W][C] += dout[N][C] / (H*W) */
CL_CLONES static void global_avgpool_backward(cl_real *restrict dinp, const cl_real *restrict dout, int N,
                                    int HW, int C) {
    const cl_real scale = 1.0f / (cl_real)HW;
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            cl_real *dip = dinp + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) dip[c] += dout[(size_t)n * C + c] * scale;
        }
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    const cl_conv2d_args *a = &n->a.conv;
    if (a->dilation_h != 1 || a->dilation_w != 1)
        return cl_fail(m, CL_ERR_ARG, "dilation", "avgpool has no dilation");
    if (a->pad_h * 2 > a->kernel_h || a->pad_w * 2 > a->kernel_w)
        return cl_fail(m, CL_ERR_ARG, "pad", "pad=%dx%d must be at most half the kernel %dx%d",
                       a->pad_h, a->pad_w, a->kernel_h, a->kernel_w);
    out->c = in->c;
    out->h = cl_conv_out_size(in->h, a->kernel_h, a->stride_h, a->pad_h, 1);
    out->w = cl_conv_out_size(in->w, a->kernel_w, a->stride_w, a->pad_w, 1);
    if (out->h < 1 || out->w < 1)
        return cl_fail(m, CL_ERR_SHAPE, "k",
                       "avgpool output would be %dx%dx%d from a %dx%dx%d input: the shape shrinks "
                       "below 1x1", out->c, out->h, out->w, in->c, in->h, in->w);
    return CL_OK;
}

static void forward(const cl_exec *e, const cl_node *n) {
    pool_dims d = dims_of(e->m, n, e->n1 - e->n0);
    avgpool2d_forward(cl_act(e, n->out), cl_act(e, n->in[0]), &d);
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    pool_dims d = dims_of(e->m, n, e->n1 - e->n0);
    avgpool2d_backward(dinp, cl_dact(e, n->out), &d);
}

const cl_op cl_op_avgpool2d = {
    .name = "avgpool2d",
    .torch_name = "AvgPool2d",
    .rf = CL_RF_WINDOW,
    .infer_shape = infer_shape,
    .forward = forward,
    .backward = backward,
};

static cl_status gap_infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    *out = (cl_shape){cl_in_shape(m, n, 0)->c, 1, 1};
    return CL_OK;
}

static void gap_forward(const cl_exec *e, const cl_node *n) {
    const cl_shape *in = cl_in_shape(e->m, n, 0);
    global_avgpool_forward(cl_act(e, n->out), cl_act(e, n->in[0]), e->n1 - e->n0, in->h * in->w,
                           in->c);
}

static void gap_backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    const cl_shape *in = cl_in_shape(e->m, n, 0);
    global_avgpool_backward(dinp, cl_dact(e, n->out), e->n1 - e->n0, in->h * in->w, in->c);
}

const cl_op cl_op_global_avgpool = {
    .name = "gap",
    .torch_name = "AdaptiveAvgPool2d",
    .rf = CL_RF_GLOBAL,
    .infer_shape = gap_infer_shape,
    .forward = gap_forward,
    .backward = gap_backward,
};
