/* conv2d.c: 2-D convolution (torch.nn.Conv2d) with any kernel size, stride, padding,
 * dilation and groups, bias optional, over channels-last activations.
 *
 * Weights are stored [G][R][S][C/G][K/G] (group, kernel row, kernel column, input
 * channel, output channel) so that the innermost loop runs over contiguous output
 * channels of both the weights and the NHWC output: it vectorises. PyTorch's
 * [K][C/G][R][S] layout is converted only when tensors are read or written. */
#include <math.h>
#include <string.h>

#include "nn/model.h"

typedef struct {
    int N, H, W, C, OH, OW, K, R, S, G;
    int sh, sw, ph, pw, dh, dw;
} conv_dims;

static conv_dims dims_of(const cl_model *m, const cl_node *n, int N) {
    const cl_shape *in = cl_in_shape(m, n, 0), *out = cl_out_shape(m, n);
    const cl_conv2d_args *a = &n->a.conv;
    return (conv_dims){N, in->h, in->w, in->c, out->h, out->w, out->c, a->kernel_h, a->kernel_w,
                       a->groups, a->stride_h, a->stride_w, a->pad_h, a->pad_w, a->dilation_h,
                       a->dilation_w};
}

/* out[N][OH][OW][K] = bias[K] + sum over (r, s, c) of
 *     inp[N][oh*sh - ph + r*dh][ow*sw - pw + s*dw][g*Cg + c] * weight[g][r][s][c][k]
 * for output channel g*Kg + k. weight [G][R][S][Cg][Kg], bias [K] or NULL. */
static void conv2d_forward(cl_real *restrict out, const cl_real *restrict inp,
                           const cl_real *restrict weight, const cl_real *restrict bias,
                           const conv_dims *d) {
    const int Cg = d->C / d->G, Kg = d->K / d->G;
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                cl_real *o = out + (((size_t)n * d->OH + oh) * d->OW + ow) * d->K;
                for (int k = 0; k < d->K; k++) o[k] = bias ? bias[k] : 0.0f;
                for (int g = 0; g < d->G; g++) {
                    cl_real *og = o + g * Kg;
                    for (int r = 0; r < d->R; r++) {
                        int ih = oh * d->sh - d->ph + r * d->dh;
                        if (ih < 0 || ih >= d->H) continue;
                        for (int s = 0; s < d->S; s++) {
                            int iw = ow * d->sw - d->pw + s * d->dw;
                            if (iw < 0 || iw >= d->W) continue;
                            const cl_real *ip = inp + (((size_t)n * d->H + ih) * d->W + iw) * d->C + g * Cg;
                            const cl_real *wp = weight + (((size_t)g * d->R + r) * d->S + s) * Cg * Kg;
                            for (int c = 0; c < Cg; c++) {
                                const cl_real x = ip[c];
                                const cl_real *w = wp + (size_t)c * Kg;
                                for (int k = 0; k < Kg; k++) og[k] += x * w[k];
                            }
                        }
                    }
                }
            }
}

/* Accumulates dinp [N][H][W][C] (if not NULL) and dweight [G][R][S][Cg][Kg] from
 * dout [N][OH][OW][K] (the bias gradient: bias_grad). */
static void conv2d_backward(cl_real *restrict dinp, cl_real *restrict dweight,
                            const cl_real *restrict dout,
                            const cl_real *restrict inp, const cl_real *restrict weight,
                            const conv_dims *d) {
    const int Cg = d->C / d->G, Kg = d->K / d->G;
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                const cl_real *dout_p = dout + (((size_t)n * d->OH + oh) * d->OW + ow) * d->K;
                for (int g = 0; g < d->G; g++) {
                    const cl_real *dog = dout_p + g * Kg;
                    for (int r = 0; r < d->R; r++) {
                        int ih = oh * d->sh - d->ph + r * d->dh;
                        if (ih < 0 || ih >= d->H) continue;
                        for (int s = 0; s < d->S; s++) {
                            int iw = ow * d->sw - d->pw + s * d->dw;
                            if (iw < 0 || iw >= d->W) continue;
                            size_t ioff = (((size_t)n * d->H + ih) * d->W + iw) * d->C + g * Cg;
                            size_t woff = (((size_t)g * d->R + r) * d->S + s) * Cg * Kg;
                            const cl_real *ip = inp + ioff;
                            cl_real *dwp = dweight + woff;
                            for (int c = 0; c < Cg; c++) {
                                const cl_real x = ip[c];
                                cl_real *dw = dwp + (size_t)c * Kg;
                                for (int k = 0; k < Kg; k++) dw[k] += x * dog[k];
                            }
                            if (dinp) {
                                const cl_real *wp = weight + woff;
                                cl_real *dip = dinp + ioff;
                                for (int c = 0; c < Cg; c++) {
                                    const cl_real *w = wp + (size_t)c * Kg;
                                    cl_real acc = 0.0f;
                                    for (int k = 0; k < Kg; k++) acc += dog[k] * w[k];
                                    dip[c] += acc;
                                }
                            }
                        }
                    }
                }
            }
}

/* dinp [N][H][W][C] += the input part of conv2d_backward, alone. */
static void conv2d_backward_input(cl_real *restrict dinp, const cl_real *restrict dout,
                                  const cl_real *restrict weight, const conv_dims *d) {
    const int Cg = d->C / d->G, Kg = d->K / d->G;
    for (int n = 0; n < d->N; n++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                const cl_real *dout_p = dout + (((size_t)n * d->OH + oh) * d->OW + ow) * d->K;
                for (int g = 0; g < d->G; g++)
                    for (int r = 0; r < d->R; r++) {
                        int ih = oh * d->sh - d->ph + r * d->dh;
                        if (ih < 0 || ih >= d->H) continue;
                        for (int s = 0; s < d->S; s++) {
                            int iw = ow * d->sw - d->pw + s * d->dw;
                            if (iw < 0 || iw >= d->W) continue;
                            const cl_real *wp = weight + (((size_t)g * d->R + r) * d->S + s) * Cg * Kg;
                            cl_real *dip = dinp + (((size_t)n * d->H + ih) * d->W + iw) * d->C + g * Cg;
                            for (int c = 0; c < Cg; c++) {
                                cl_real acc = 0;
                                for (int k = 0; k < Kg; k++) acc += dout_p[g * Kg + k] * wp[(size_t)c * Kg + k];
                                dip[c] += acc;
                            }
                        }
                    }
            }
}

static cl_status infer_shape(cl_model *m, cl_node *n, cl_shape *out) {
    const cl_shape *in = cl_in_shape(m, n, 0);
    const cl_conv2d_args *a = &n->a.conv;
    if (a->out_channels < 1 || a->out_channels > (1 << 16))
        return cl_fail(m, CL_ERR_ARG, "out", "conv needs 1 to 65536 output channels, got %d",
                       a->out_channels);
    if (in->c % a->groups)
        return cl_fail(m, CL_ERR_SHAPE, "groups", "groups=%d does not divide %d input channels",
                       a->groups, in->c);
    if (a->out_channels % a->groups)
        return cl_fail(m, CL_ERR_SHAPE, "groups", "groups=%d does not divide %d output channels",
                       a->groups, a->out_channels);
    out->c = a->out_channels;
    out->h = cl_conv_out_size(in->h, a->kernel_h, a->stride_h, a->pad_h, a->dilation_h);
    out->w = cl_conv_out_size(in->w, a->kernel_w, a->stride_w, a->pad_w, a->dilation_w);
    if (out->h < 1 || out->w < 1)
        return cl_fail(m, CL_ERR_SHAPE, "k",
                       "conv output would be %dx%dx%d from a %dx%dx%d input: the shape shrinks "
                       "below 1x1", out->c, out->h, out->w, in->c, in->h, in->w);
    return CL_OK;
}

static size_t weight_count(const cl_model *m, const cl_node *n) {
    const cl_conv2d_args *a = &n->a.conv;
    return (size_t)a->out_channels * (size_t)(cl_in_shape(m, n, 0)->c / a->groups) *
           (size_t)a->kernel_h * (size_t)a->kernel_w;
}

/* The fast kernels handle ungrouped convolutions (conv2d_direct.c) and depthwise
 * ones with one output channel per input channel (conv2d_depthwise.c); other
 * grouped convolutions use the reference loops. */
static bool use_direct(const cl_model *m, const cl_node *n) {
    return n->a.conv.groups == 1 && !m->args.reference_kernels;
}

static bool use_depthwise(const cl_model *m, const cl_node *n) {
    const cl_conv2d_args *a = &n->a.conv;
    return a->groups > 1 && a->groups == cl_in_shape(m, n, 0)->c && a->out_channels == a->groups &&
           !m->args.reference_kernels;
}

static cl_conv_shape shape_of(const cl_model *m, const cl_node *n, int N) {
    conv_dims d = dims_of(m, n, N);
    return (cl_conv_shape){N, d.H, d.W, d.C, d.OH, d.OW, d.K, d.R, d.S,
                           d.sh, d.sw, d.ph, d.pw, d.dh, d.dw};
}

static void sizes(const cl_model *m, cl_node *n) {
    const cl_shape *out = cl_out_shape(m, n);
    size_t wc = weight_count(m, n);
    n->nparams = wc + (n->a.conv.no_bias ? 0 : (size_t)n->a.conv.out_channels);
    n->macs = (int64_t)out->h * out->w * (int64_t)wc;
    if (n->a.conv.groups == 1) {
        cl_conv_shape d = shape_of(m, n, 1);
        /* and the folded BatchNorm's scale and shift (cl_conv2d_forward_bn) */
        n->nscratch = cl_conv2d_direct_scratch(&d) + 2 * (size_t)out->c;
    } else if (n->a.conv.groups == cl_in_shape(m, n, 0)->c && n->a.conv.out_channels == n->a.conv.groups) {
        cl_conv_shape d = shape_of(m, n, 1);
        n->nscratch = cl_conv2d_depthwise_scratch(&d);
    }
    if (!n->a.conv.no_bias) n->nteam = (size_t)n->a.conv.out_channels; /* bias_grad's sums */
}

static int tensors(const cl_model *m, const cl_node *n, cl_op_tensor *t) {
    const cl_conv2d_args *a = &n->a.conv;
    int Cg = cl_in_shape(m, n, 0)->c / a->groups;
    t[0] = (cl_op_tensor){"weight", 4, {a->out_channels, Cg, a->kernel_h, a->kernel_w}, true, 0,
                          CL_LAYOUT_CONV_WEIGHT, a->groups};
    if (a->no_bias) return 1;
    t[1] = (cl_op_tensor){"bias", 1, {a->out_channels}, true, weight_count(m, n), CL_LAYOUT_PLAIN, 1};
    return 2;
}

/* CL_INIT_DIRAC, after the default init: torch.nn.init.dirac_(w[:in_g]) within each
 * group (airbench's Conv), so the first min(out_g, in_g) outputs of group g copy its
 * input channels through the kernel's centre tap (index k//2, as dirac_ takes it) and
 * later outputs keep the default init. The RNG stream is the default one, so the other
 * weights equal those of the same model without init=dirac. */
static void conv_init_dirac(const cl_model *m, const cl_node *n, cl_real *w) {
    const cl_conv2d_args *a = &n->a.conv;
    int G = a->groups, Cg = cl_in_shape(m, n, 0)->c / G, Kg = a->out_channels / G;
    int kh = a->kernel_h, kw = a->kernel_w, d = Kg < Cg ? Kg : Cg;
    /* stored [g][kh][kw][C/g][K/g] (CL_LAYOUT_CONV_WEIGHT) */
    for (int g = 0; g < G; g++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++)
                for (int c = 0; c < Cg; c++) {
                    cl_real *taps = w + ((((size_t)g * kh + i) * kw + j) * Cg + c) * Kg;
                    for (int o = 0; o < d; o++)
                        taps[o] = i == kh / 2 && j == kw / 2 && c == o ? 1.0f : 0.0f;
                }
}

/* kaiming_uniform_(a=sqrt(5)) for the weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * the bias, as nn.Conv2d.reset_parameters() does: both bounds are 1/sqrt(fan_in). */
static void init(cl_model *m, const cl_node *n, cl_real *params, cl_real *buffers) {
    (void)buffers;
    const cl_conv2d_args *a = &n->a.conv;
    size_t wc = weight_count(m, n);
    cl_real bound = 1.0f / sqrtf((float)(wc / (size_t)a->out_channels));
    cl_init_uniform(m, params, wc, bound);
    if (!a->no_bias) cl_init_uniform(m, params + wc, (size_t)a->out_channels, bound);
    if (a->init == CL_INIT_DIRAC) conv_init_dirac(m, n, params);
}

static void forward(const cl_exec *e, const cl_node *n) {
    const cl_real *w = e->m->params + n->param_off;
    const cl_real *b = n->a.conv.no_bias ? NULL : w + weight_count(e->m, n);
    if (use_direct(e->m, n)) {
        cl_conv_shape d = shape_of(e->m, n, e->n1 - e->n0);
        cl_conv2d_direct_forward(cl_act(e, n->out), cl_act(e, n->in[0]), w, b, &d, e->scratch);
        return;
    }
    if (use_depthwise(e->m, n)) {
        cl_conv_shape d = shape_of(e->m, n, e->n1 - e->n0);
        cl_conv2d_depthwise_forward(cl_act(e, n->out), cl_act(e, n->in[0]), w, b, &d, e->scratch);
        return;
    }
    conv_dims d = dims_of(e->m, n, e->n1 - e->n0);
    conv2d_forward(cl_act(e, n->out), cl_act(e, n->in[0]), w, b, &d);
}

bool cl_conv2d_can_fold_bn(const cl_model *m, const cl_node *n) {
    return n->op == &cl_op_conv2d && use_direct(m, n);
}

/* Eval mode: out = BatchNorm(conv(x)) with the running statistics, and ReLU if relu,
 * in one pass: scale = gamma / sqrt(running_var + eps) and shift = beta -
 * running_mean * scale, exactly as batchnorm2d.c's eval forward computes them, are
 * folded into the weights and bias of the direct kernel. bn's parameters are
 * weight, bias [C] and its buffers running_mean, running_var [C]. */
void cl_conv2d_forward_bn(const cl_exec *e, const cl_node *conv, const cl_node *bn, bool relu,
                          int out) {
    const cl_model *m = e->m;
    const int K = conv->a.conv.out_channels;
    const cl_real *w = m->params + conv->param_off;
    const cl_real *b = conv->a.conv.no_bias ? NULL : w + weight_count(m, conv);
    const cl_real *gamma = m->params + bn->param_off, *beta = gamma + K;
    const cl_real *running = m->buffers + bn->buffer_off;
    cl_conv_shape d = shape_of(m, conv, e->n1 - e->n0);
    cl_real *scale = e->scratch + cl_conv2d_direct_scratch(&d), *shift = scale + K;
    for (int k = 0; k < K; k++) {
        cl_real is = 1.0f / cl_sqrt(running[K + k] + bn->a.norm.eps);
        scale[k] = gamma[k] * is;
        shift[k] = beta[k] - running[k] * scale[k];
    }
    cl_conv2d_direct_forward_affine(cl_act(e, out), cl_act(e, conv->in[0]), w, b, scale, shift,
                                    relu, &d, e->scratch);
}

/* dbias [K] += the sum of dout [pixels][K] over its pixels (images x OH x OW), summed in
 * double in acc [K]: summed in float over the 1024 pixels of every 32x32 image, the
 * bias gradient lost precision against PyTorch's float32 (issue 12). */
static void bias_grad(cl_real *restrict dbias, const cl_real *restrict dout, size_t pixels, int K,
                      double *restrict acc) {
    memset(acc, 0, (size_t)K * sizeof *acc);
    for (size_t p = 0; p < pixels; p++)
        for (int k = 0; k < K; k++) acc[k] += dout[p * K + k];
    for (int k = 0; k < K; k++) dbias[k] += (cl_real)acc[k];
}

static void backward(const cl_exec *e, const cl_node *n) {
    size_t wc = weight_count(e->m, n);
    const cl_real *w = e->m->params + n->param_off;
    cl_real *dw = e->grads + n->param_off, *db = n->a.conv.no_bias ? NULL : dw + wc;
    cl_real *dinp = cl_dinp(e, n->in[0]);
    const cl_real *dout = cl_dact(e, n->out), *inp = cl_act(e, n->in[0]);
    if (db) {
        const cl_shape *out = cl_out_shape(e->m, n);
        bias_grad(db, dout, (size_t)(e->n1 - e->n0) * out->h * out->w, out->c,
                  cl_team_slot(e, e->tid));
    }
    if (use_direct(e->m, n)) {
        cl_conv_shape d = shape_of(e->m, n, e->n1 - e->n0);
        cl_conv2d_direct_weight_grad(dw, dout, inp, &d, e->scratch);
        if (!dinp) return;
        if (cl_conv2d_direct_input_grad_ok(&d)) {
            cl_conv2d_direct_input_grad(dinp, dout, w, &d, e->store_dinp, e->scratch);
            return;
        }
        /* strided or dilated: the reference loops give the input gradient */
        conv_dims r = dims_of(e->m, n, e->n1 - e->n0);
        conv2d_backward_input(dinp, dout, w, &r);
        return;
    }
    if (use_depthwise(e->m, n)) {
        cl_conv_shape d = shape_of(e->m, n, e->n1 - e->n0);
        cl_conv2d_depthwise_weight_grad(dw, dout, inp, &d, e->scratch);
        if (dinp) cl_conv2d_depthwise_input_grad(dinp, dout, w, &d, e->scratch);
        return;
    }
    conv_dims d = dims_of(e->m, n, e->n1 - e->n0);
    conv2d_backward(dinp, dw, dout, inp, w, &d);
}

/* The direct kernel's input gradient writes every value of dinp (stride 1): the
 * first convolution to form a gradient stores it, and the zeroing pass goes. */
static bool stores_dinp(const cl_model *m, const cl_node *n) {
    if (!use_direct(m, n)) return false;
    cl_conv_shape d = shape_of(m, n, 1);
    return cl_conv2d_direct_input_grad_ok(&d);
}

const cl_op cl_op_conv2d = {
    .name = "conv2d",
    .torch_name = "Conv2d",
    .rf = CL_RF_WINDOW,
    .infer_shape = infer_shape,
    .sizes = sizes,
    .tensors = tensors,
    .init = init,
    .forward = forward,
    .backward = backward,
    .stores_dinp = stores_dinp,
};
