/* kernels.h: the inference kernels of an exported network, float32 and int8, in
 * plain C99 over CHW arrays of one image.
 *
 * This one file is compiled twice: into libcnnlab (src/deploy/graph.c and
 * quantize.c run it as the library's reference of the exported network) and,
 * copied verbatim, into every model.c that `cnnlab export --format c` writes. So
 * the library's int8 logits and the exported program's are the same computation,
 * bit for bit. Rules that keep that true and keep model.c portable: C99, no
 * allocation, no library beyond libm, no static state, no floating-point
 * contraction assumptions (both sides compile as ISO C, where GCC and Clang keep
 * a*b+c as two roundings), arithmetic right shifts of negative integers (every
 * compiler cnnlab targets; C99 leaves it implementation-defined).
 *
 * Each kernel is guarded by a DK_USE_ macro: model.c defines those it calls, so
 * that -Wall -Werror sees no unused static function; the library defines
 * DK_USE_FLOAT (graph.c) or DK_USE_INT8 (quantize.c) for a whole family. Layouts: activations [C][H][W]; convolution weights
 * [K][C/groups][kh][kw] (PyTorch's); a linear layer is a 1x1 convolution over a
 * Cx1x1 input. */
#ifndef DK_KERNELS_H
#define DK_KERNELS_H

#include <math.h>
#include <stdint.h>

#ifdef DK_USE_FLOAT
#define DK_USE_NORMALIZE
#define DK_USE_CONV
#define DK_USE_MAXPOOL
#define DK_USE_AVGPOOL
#define DK_USE_AFFINE
#define DK_USE_GROUPNORM
#define DK_USE_ACT
#define DK_USE_ADD
#define DK_USE_COPY
#endif
#ifdef DK_USE_INT8
#define DK_USE_QUANTIZE
#define DK_USE_QCONV
#define DK_USE_QMAXPOOL
#define DK_USE_QAVGPOOL
#define DK_USE_QLUT
#define DK_USE_QGROUPNORM
#define DK_USE_QADD
#define DK_USE_QCOPY
#define DK_USE_DEQUANTIZE
#endif

/* The library compiles the convolutions once per CPU level (GCC's target_clones,
 * as its own kernels); in model.c this is empty. */
#ifndef DK_TARGET
#define DK_TARGET
#endif

/* Convolution geometry: input c x h x w, output k x oh x ow, kernel kh x kw,
 * stride, padding, dilation, groups; relu: clamp the output at 0. */
typedef struct {
    int c, h, w, k, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups, relu;
} dk_conv;

/* Pooling geometry over c channels (global average pooling: the whole image). */
typedef struct {
    int c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} dk_pool;

/* GroupNorm / LayerNorm over c channels of hw pixels in `groups` groups; the affine
 * weight and bias have one value per channel, or per element when elementwise. */
typedef struct {
    int c, hw, groups, elementwise;
    float eps;
} dk_norm;

enum { DK_RELU = 1, DK_LEAKY_RELU = 2, DK_GELU = 3, DK_SILU = 4, DK_HARDSWISH = 5 };

#if defined(DK_USE_CONV) || defined(DK_USE_QCONV)
/* The outputs ow of one kernel column whose input column ow*stride - pad + s*dil
 * lies in [0, w): [*lo, *hi). The same for rows. */
static void dk_valid_range(int out, int in, int stride, int pad, int offset, int *lo, int *hi) {
    int a = pad - offset; /* need ow*stride >= a */
    int b = in - 1 + pad - offset; /* and ow*stride <= b */
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    *hi = b < 0 ? 0 : b / stride + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}
#endif

/* ---- float32 ------------------------------------------------------------- */

#ifdef DK_USE_NORMALIZE
/* x[c][hw] = (pixels[c][hw] - mean[c]) / std[c] */
static void dk_normalize(float *x, const float *pixels, const float *mean, const float *std_,
                         int c, int hw) {
    int i, j;
    for (i = 0; i < c; i++)
        for (j = 0; j < hw; j++) x[i * hw + j] = (pixels[i * hw + j] - mean[i]) / std_[i];
}
#endif

#ifdef DK_USE_CONV
/* out[k][oh][ow] = bias[k] + sum over (c, r, s) of w[k][c][r][s] *
 * in[g*C/G + c][oh*sh - ph + r*dh][ow*sw - pw + s*dw]; bias may be NULL. */
DK_TARGET static void dk_conv_f32(float *out, const float *in, const float *w, const float *bias,
                        const dk_conv *g) {
    const int cg = g->c / g->groups, kg = g->k / g->groups, plane = g->oh * g->ow;
    int k, c, r, s, oh, i;
    for (k = 0; k < g->k; k++) {
        float *o = out + k * plane;
        const int c0 = (k / kg) * cg;
        for (i = 0; i < plane; i++) o[i] = bias ? bias[k] : 0.0f;
        for (c = 0; c < cg; c++)
            for (r = 0; r < g->kh; r++) {
                int oh0, oh1;
                dk_valid_range(g->oh, g->h, g->sh, g->ph, r * g->dh, &oh0, &oh1);
                for (s = 0; s < g->kw; s++) {
                    const float wv = w[((k * cg + c) * g->kh + r) * g->kw + s];
                    int ow0, ow1;
                    dk_valid_range(g->ow, g->w, g->sw, g->pw, s * g->dw, &ow0, &ow1);
                    if (ow0 == ow1) continue; /* the column lies in the padding */
                    for (oh = oh0; oh < oh1; oh++) {
                        const float *restrict ip = in + ((c0 + c) * g->h + oh * g->sh - g->ph + r * g->dh) * g->w
                                          + ow0 * g->sw - g->pw + s * g->dw;
                        float *restrict op = o + oh * g->ow + ow0;
                        const int n = ow1 - ow0;
                        int j;
                        if (g->sw == 1) /* contiguous: the loop vectorises */
                            for (j = 0; j < n; j++) op[j] += wv * ip[j];
                        else
                            for (j = 0; j < n; j++) op[j] += wv * ip[j * g->sw];
                    }
                }
            }
        if (g->relu)
            for (i = 0; i < plane; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
    }
}
#endif

#ifdef DK_USE_MAXPOOL
/* out[c][oh][ow] = max over the window (padding never wins) */
static void dk_maxpool_f32(float *out, const float *in, const dk_pool *p) {
    int c, oh, ow, r, s;
    for (c = 0; c < p->c; c++)
        for (oh = 0; oh < p->oh; oh++)
            for (ow = 0; ow < p->ow; ow++) {
                float m = -INFINITY;
                for (r = 0; r < p->kh; r++) {
                    int ih = oh * p->sh - p->ph + r * p->dh;
                    if (ih < 0 || ih >= p->h) continue;
                    for (s = 0; s < p->kw; s++) {
                        int iw = ow * p->sw - p->pw + s * p->dw;
                        float v;
                        if (iw < 0 || iw >= p->w) continue;
                        v = in[(c * p->h + ih) * p->w + iw];
                        if (v > m || v != v) m = v;
                    }
                }
                out[(c * p->oh + oh) * p->ow + ow] = m;
            }
}
#endif

#ifdef DK_USE_AVGPOOL
/* out[c][oh][ow] = sum over the window / (kh*kw): padding counts as zeros
 * (count_include_pad=True); global average pooling is the whole-image window. */
static void dk_avgpool_f32(float *out, const float *in, const dk_pool *p) {
    const float scale = 1.0f / (float)(p->kh * p->kw);
    int c, oh, ow, r, s;
    for (c = 0; c < p->c; c++)
        for (oh = 0; oh < p->oh; oh++)
            for (ow = 0; ow < p->ow; ow++) {
                float sum = 0.0f;
                for (r = 0; r < p->kh; r++) {
                    int ih = oh * p->sh - p->ph + r;
                    if (ih < 0 || ih >= p->h) continue;
                    for (s = 0; s < p->kw; s++) {
                        int iw = ow * p->sw - p->pw + s;
                        if (iw < 0 || iw >= p->w) continue;
                        sum += in[(c * p->h + ih) * p->w + iw];
                    }
                }
                out[(c * p->oh + oh) * p->ow + ow] = sum * scale;
            }
}
#endif

#ifdef DK_USE_AFFINE
/* out[c][hw] = in[c][hw] * scale[c] + shift[c]: a BatchNorm that follows no
 * convolution (may run in place) */
static void dk_affine_f32(float *out, const float *in, const float *scale, const float *shift,
                          int c, int hw) {
    int i, j;
    for (i = 0; i < c; i++)
        for (j = 0; j < hw; j++) out[i * hw + j] = in[i * hw + j] * scale[i] + shift[i];
}
#endif

#if defined(DK_USE_GROUPNORM) || defined(DK_USE_QGROUPNORM)
/* The mean and 1/sqrt(var + eps) of group g of x[c][hw] (biased variance, sums in
 * double, as cnnlab's GroupNorm). */
static void dk_group_stats(const float *x, const dk_norm *n, int g, float *mean, float *rstd) {
    const int cg = n->c / n->groups;
    const double count = (double)cg * n->hw;
    double s = 0, s2 = 0, mu, var;
    int i;
    for (i = g * cg * n->hw; i < (g + 1) * cg * n->hw; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    mu = s / count;
    var = s2 / count - mu * mu;
    if (var < 0) var = 0;
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(var + n->eps));
}
#endif

#ifdef DK_USE_GROUPNORM
/* GroupNorm / LayerNorm: out = (in - mean[g]) * rstd[g] * gamma + beta (may run in
 * place) */
static void dk_groupnorm_f32(float *out, const float *in, const float *gamma, const float *beta,
                             const dk_norm *n) {
    const int cg = n->c / n->groups;
    int g, c, j;
    for (g = 0; g < n->groups; g++) {
        float mean, rstd;
        dk_group_stats(in, n, g, &mean, &rstd);
        for (c = g * cg; c < (g + 1) * cg; c++)
            for (j = 0; j < n->hw; j++) {
                int i = c * n->hw + j, a = n->elementwise ? i : c;
                out[i] = (in[i] - mean) * rstd * gamma[a] + beta[a];
            }
    }
}
#endif

#ifdef DK_USE_ACT
/* out[i] = f(in[i]): ReLU, LeakyReLU(slope), GELU (erf form), SiLU, Hardswish;
 * may run in place */
static void dk_act_f32(float *out, const float *in, int count, int kind, float slope) {
    int i;
    for (i = 0; i < count; i++) {
        float x = in[i], t;
        switch (kind) {
        case DK_RELU: out[i] = x > 0 ? x : 0; break;
        case DK_LEAKY_RELU: out[i] = x > 0 ? x : x * slope; break;
        case DK_GELU: out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); break;
        case DK_SILU: out[i] = x / (1.0f + expf(-x)); break;
        default: /* DK_HARDSWISH: x * relu6(x + 3) / 6 */
            t = x + 3;
            t = t > 0 ? t : 0;
            t = t < 6 ? t : 6;
            out[i] = x * t / 6;
        }
    }
}
#endif

#ifdef DK_USE_ADD
static void dk_add_f32(float *out, const float *a, const float *b, int count) {
    int i;
    for (i = 0; i < count; i++) out[i] = a[i] + b[i];
}
#endif

#ifdef DK_USE_COPY
/* one input of a channel concatenation: a contiguous block in CHW */
static void dk_copy_f32(float *out, const float *in, int count) {
    int i;
    for (i = 0; i < count; i++) out[i] = in[i];
}
#endif

/* ---- int8 -----------------------------------------------------------------
 * A tensor holds q in [-128, 127] for the real value scale * (q - zero_point).
 * Requantization multiplies an integer accumulator by a real factor M given as
 * mult * 2^-shift (mult < 2^31, 1 <= shift <= 62) with one rounding (half up),
 * the single-rounding form of CMSIS-NN's arm_nn_requantize. */

#if defined(DK_USE_QCONV) || defined(DK_USE_QAVGPOOL) || defined(DK_USE_QADD) || defined(DK_USE_QCOPY)
static int32_t dk_requantize(int64_t acc, int32_t mult, int shift) {
    return (int32_t)((acc * mult + ((int64_t)1 << (shift - 1))) >> shift);
}
#endif

#if defined(DK_USE_QUANTIZE) || defined(DK_USE_QCONV) || defined(DK_USE_QAVGPOOL) || \
    defined(DK_USE_QGROUPNORM) || defined(DK_USE_QADD) || defined(DK_USE_QCOPY)
/* v clamped to [lo, 127] */
static int8_t dk_saturate(int32_t v, int32_t lo) {
    return (int8_t)(v < lo ? lo : v > 127 ? 127 : v);
}
#endif

#ifdef DK_USE_QUANTIZE
/* q[c][hw] = round(((pixels - mean[c]) / std[c]) / scale) + zero_point, saturated */
static void dk_quantize_input(int8_t *q, const float *pixels, const float *mean, const float *std_,
                              int c, int hw, float inv_scale, int32_t zero_point) {
    int i, j;
    for (i = 0; i < c; i++)
        for (j = 0; j < hw; j++) {
            float x = (pixels[i * hw + j] - mean[i]) / std_[i];
            q[i * hw + j] = dk_saturate((int32_t)lrintf(x * inv_scale) + zero_point, -128);
        }
}
#endif

#ifdef DK_USE_QCONV
/* Integer convolution: acc[k] = bias[k] + sum (in - zp_in) * w (int32; padding is
 * the real value 0, so it adds nothing). With out8, the output is
 * zp_out + requantize(acc, mult[k], shift[k]), saturated (at zp_out when relu);
 * with outf instead (the network's last layer), the float acc * fscale[k] (at
 * least 0 when relu).
 * acc holds oh*ow int32 values. */
DK_TARGET static void dk_conv_q8(int8_t *out8, float *outf, const int8_t *in, const int8_t *w,
                       const int32_t *bias, const int32_t *mult, const int8_t *shift,
                       const float *fscale, int32_t zp_in, int32_t zp_out, const dk_conv *g,
                       int32_t *acc) {
    const int cg = g->c / g->groups, kg = g->k / g->groups, plane = g->oh * g->ow;
    int k, c, r, s, oh, i;
    for (k = 0; k < g->k; k++) {
        const int c0 = (k / kg) * cg;
        for (i = 0; i < plane; i++) acc[i] = bias[k];
        for (c = 0; c < cg; c++)
            for (r = 0; r < g->kh; r++) {
                int oh0, oh1;
                dk_valid_range(g->oh, g->h, g->sh, g->ph, r * g->dh, &oh0, &oh1);
                for (s = 0; s < g->kw; s++) {
                    const int32_t wv = w[((k * cg + c) * g->kh + r) * g->kw + s];
                    int ow0, ow1;
                    dk_valid_range(g->ow, g->w, g->sw, g->pw, s * g->dw, &ow0, &ow1);
                    if (ow0 == ow1) continue; /* the column lies in the padding */
                    for (oh = oh0; oh < oh1; oh++) {
                        const int8_t *restrict ip = in + ((c0 + c) * g->h + oh * g->sh - g->ph + r * g->dh) * g->w
                                           + ow0 * g->sw - g->pw + s * g->dw;
                        int32_t *restrict ap = acc + oh * g->ow + ow0;
                        const int n = ow1 - ow0;
                        int j;
                        if (g->sw == 1)
                            for (j = 0; j < n; j++) ap[j] += wv * (ip[j] - zp_in);
                        else
                            for (j = 0; j < n; j++) ap[j] += wv * (ip[j * g->sw] - zp_in);
                    }
                }
            }
        if (outf)
            for (i = 0; i < plane; i++) {
                float v = (float)acc[i] * fscale[k];
                outf[k * plane + i] = g->relu && v < 0.0f ? 0.0f : v;
            }
        else
            for (i = 0; i < plane; i++)
                out8[k * plane + i] = dk_saturate(zp_out + dk_requantize(acc[i], mult[k], shift[k]),
                                                  g->relu ? zp_out : -128);
    }
}
#endif

#ifdef DK_USE_QMAXPOOL
/* max over the window on the integers (same scale and zero point in and out) */
static void dk_maxpool_q8(int8_t *out, const int8_t *in, const dk_pool *p) {
    int c, oh, ow, r, s;
    for (c = 0; c < p->c; c++)
        for (oh = 0; oh < p->oh; oh++)
            for (ow = 0; ow < p->ow; ow++) {
                int m = -129;
                for (r = 0; r < p->kh; r++) {
                    int ih = oh * p->sh - p->ph + r * p->dh;
                    if (ih < 0 || ih >= p->h) continue;
                    for (s = 0; s < p->kw; s++) {
                        int iw = ow * p->sw - p->pw + s * p->dw;
                        if (iw < 0 || iw >= p->w) continue;
                        if (in[(c * p->h + ih) * p->w + iw] > m) m = in[(c * p->h + ih) * p->w + iw];
                    }
                }
                out[(c * p->oh + oh) * p->ow + ow] = (int8_t)(m < -128 ? -128 : m);
            }
}
#endif

#ifdef DK_USE_QAVGPOOL
/* zp_out + requantize(sum over the window of (in - zp_in)); mult and shift hold
 * scale_in / (scale_out * kh*kw) */
static void dk_avgpool_q8(int8_t *out, const int8_t *in, const dk_pool *p, int32_t zp_in,
                          int32_t zp_out, int32_t mult, int shift) {
    int c, oh, ow, r, s;
    for (c = 0; c < p->c; c++)
        for (oh = 0; oh < p->oh; oh++)
            for (ow = 0; ow < p->ow; ow++) {
                int32_t sum = 0;
                for (r = 0; r < p->kh; r++) {
                    int ih = oh * p->sh - p->ph + r;
                    if (ih < 0 || ih >= p->h) continue;
                    for (s = 0; s < p->kw; s++) {
                        int iw = ow * p->sw - p->pw + s;
                        if (iw < 0 || iw >= p->w) continue;
                        sum += in[(c * p->h + ih) * p->w + iw] - zp_in;
                    }
                }
                out[(c * p->oh + oh) * p->ow + ow] =
                    dk_saturate(zp_out + dk_requantize(sum, mult, shift), -128);
            }
}
#endif

#ifdef DK_USE_QLUT
/* An element-wise layer as a table of its 256 outputs: out = lut[in + 128], one
 * table per channel when per_channel (a BatchNorm after no convolution), else one
 * (activations). May run in place. */
static void dk_lut_q8(int8_t *out, const int8_t *in, const int8_t *lut, int c, int hw,
                      int per_channel) {
    int i, j;
    for (i = 0; i < c; i++) {
        const int8_t *t = lut + (per_channel ? i * 256 : 0);
        for (j = 0; j < hw; j++) out[i * hw + j] = t[in[i * hw + j] + 128];
    }
}
#endif

#ifdef DK_USE_QGROUPNORM
/* GroupNorm / LayerNorm on int8 tensors: the statistics and the normalisation are
 * computed in float on the dequantized values (they need a square root and a
 * division per sample), the result quantized again. tmp holds c*hw floats. */
static void dk_groupnorm_q8(int8_t *out, const int8_t *in, const float *gamma, const float *beta,
                            const dk_norm *n, float scale_in, int32_t zp_in, float inv_scale_out,
                            int32_t zp_out, float *tmp) {
    const int cg = n->c / n->groups;
    int g, c, j, i;
    for (i = 0; i < n->c * n->hw; i++) tmp[i] = scale_in * (float)(in[i] - zp_in);
    for (g = 0; g < n->groups; g++) {
        float mean, rstd;
        dk_group_stats(tmp, n, g, &mean, &rstd);
        for (c = g * cg; c < (g + 1) * cg; c++)
            for (j = 0; j < n->hw; j++) {
                int a;
                float y;
                i = c * n->hw + j;
                a = n->elementwise ? i : c;
                y = (tmp[i] - mean) * rstd * gamma[a] + beta[a];
                out[i] = dk_saturate((int32_t)lrintf(y * inv_scale_out) + zp_out, -128);
            }
    }
}
#endif

#ifdef DK_USE_QADD
/* out = zp_out + ((a - zp_a) * mult_a + (b - zp_b) * mult_b) * 2^-shift, saturated */
static void dk_add_q8(int8_t *out, const int8_t *a, const int8_t *b, int count, int32_t zp_a,
                      int32_t zp_b, int32_t zp_out, int32_t mult_a, int32_t mult_b, int shift) {
    int i;
    for (i = 0; i < count; i++) {
        int64_t acc = (int64_t)(a[i] - zp_a) * mult_a + (int64_t)(b[i] - zp_b) * mult_b;
        out[i] = dk_saturate(zp_out + (int32_t)((acc + ((int64_t)1 << (shift - 1))) >> shift), -128);
    }
}
#endif

#ifdef DK_USE_QCOPY
/* one input of a concatenation, rescaled to the output's scale and zero point */
static void dk_copy_q8(int8_t *out, const int8_t *in, int count, int32_t zp_in, int32_t zp_out,
                       int32_t mult, int shift) {
    int i;
    for (i = 0; i < count; i++)
        out[i] = dk_saturate(zp_out + dk_requantize(in[i] - zp_in, mult, shift), -128);
}
#endif

#ifdef DK_USE_DEQUANTIZE
static void dk_dequantize(float *out, const int8_t *in, int count, float scale, int32_t zp) {
    int i;
    for (i = 0; i < count; i++) out[i] = scale * (float)(in[i] - zp);
}
#endif

#endif
