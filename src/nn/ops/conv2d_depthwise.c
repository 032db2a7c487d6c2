/* conv2d_depthwise.c: the fast kernels for depthwise convolutions (groups = input
 * channels = output channels), forward, input gradient and weight gradient, for any
 * kernel size, stride, padding and dilation. The reference loops in conv2d.c stay
 * the definition they are tested against (tests/test_kernels.c).
 *
 * Over channels-last images every output channel reads only its own input channel,
 * so the channels are the vector lanes: each image is copied into a zero-padded
 * buffer whose pixels are padded to Cp (C rounded up to 16) channels, the weights
 * are repacked from [C][R][S] to [R][S][Cp], and every load is a full vector with no
 * bounds checks. The forward keeps 4 output pixels x 16 channels in registers over
 * the kernel window; the input gradient scatters dout x weight into a padded buffer
 * (any stride and dilation) and adds its interior to dinp; the weight gradient
 * accumulates, per kernel tap, input x output gradient over the pixels.
 *
 * Compiled for AVX-512, AVX2 and plain x86-64 like conv2d_direct.c (CL_CLONES). */
#include <string.h>

#include "nn/model.h"

#define VL 16 /* values per vector */
typedef cl_real vec __attribute__((vector_size(VL * sizeof(cl_real))));
typedef cl_real vec_u __attribute__((vector_size(VL * sizeof(cl_real)), aligned(sizeof(cl_real))));

#define INLINE static inline __attribute__((always_inline))
#define LOAD(p) (*(const vec_u *)(p))
#define STORE(p, v) (*(vec_u *)(p) = (v))
#define PIXELS 4 /* output pixels per forward block */

static size_t round16(int c) { return (size_t)(c + VL - 1) / VL * VL; }

size_t cl_conv2d_depthwise_scratch(const cl_conv_shape *d) {
    size_t Cp = round16(d->C);
    size_t pad = (size_t)(d->H + 2 * d->ph) * (d->W + 2 * d->pw) * Cp;
    size_t dk = (size_t)d->OH * d->OW * Cp;
    size_t taps = (size_t)d->R * d->S * Cp;
    /* weights and bias (or their gradient accumulators), two padded images, dout */
    return 2 * taps + 2 * Cp + 2 * pad + dk;
}

/* dst[H+2ph][W+2pw][Cp] = img[H][W][C] with zeros around and in the lanes C..Cp-1 */
static void pad_channels(cl_real *dst, const cl_real *img, int H, int W, int C, size_t Cp, int ph,
                         int pw) {
    const size_t Wp = (size_t)W + 2 * pw;
    memset(dst, 0, ((size_t)H + 2 * ph) * Wp * Cp * sizeof(cl_real));
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++)
            memcpy(dst + ((size_t)(h + ph) * Wp + (size_t)(w + pw)) * Cp,
                   img + ((size_t)h * W + w) * C, (size_t)C * sizeof(cl_real));
}

/* wk[r][s][Cp] from PyTorch-order weight [C][R][S] (the [G][R][S][1][1] layout) */
static void pack_weights(cl_real *wk, const cl_real *weight, const cl_conv_shape *d, size_t Cp) {
    const int taps = d->R * d->S;
    memset(wk, 0, (size_t)taps * Cp * sizeof(cl_real));
    for (int c = 0; c < d->C; c++)
        for (int t = 0; t < taps; t++) wk[(size_t)t * Cp + c] = weight[(size_t)c * taps + t];
}

/* Store the first `lanes` values of v at p (lanes <= VL). */
INLINE void store_lanes(cl_real *p, const vec *v, int lanes) {
    if (lanes >= VL)
        STORE(p, *v);
    else
        for (int i = 0; i < lanes; i++) p[i] = (*v)[i];
}

/* out pixels ow0..ow0+NP-1 of row oh, channels c0..c0+15:
 *     bias + sum over r, s of pad[oh*sh + r*dh][ow*sw + s*dw][c] * wk[r][s][c] */
INLINE void forward_block(cl_real *out, const cl_real *pad, const cl_real *wk, const cl_real *b, int NP,
                          int oh, int ow0, int c0, int lanes, const cl_conv_shape *d, size_t Wp,
                          size_t Cp) {
    vec acc[PIXELS];
    _Pragma("GCC unroll 4") for (int j = 0; j < NP; j++) acc[j] = LOAD(b + c0);
    for (int r = 0; r < d->R; r++) {
        const cl_real *row = pad + (size_t)(oh * d->sh + r * d->dh) * Wp * Cp + c0;
        for (int s = 0; s < d->S; s++) {
            vec wv = LOAD(wk + (size_t)(r * d->S + s) * Cp + c0);
            const cl_real *ip = row + (size_t)(ow0 * d->sw + s * d->dw) * Cp;
            _Pragma("GCC unroll 4") for (int j = 0; j < NP; j++) acc[j] +=
                LOAD(ip + (size_t)j * d->sw * Cp) * wv;
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < NP; j++)
        store_lanes(out + ((size_t)oh * d->OW + ow0 + j) * d->K + c0, &acc[j], lanes);
}

/* out[N][OH][OW][C] = depthwise conv(inp[N][H][W][C], weight [C][R][S]) + bias[C] */
CL_CLONES void cl_conv2d_depthwise_forward(cl_real *out, const cl_real *inp, const cl_real *weight,
                                           const cl_real *bias, const cl_conv_shape *d,
                                           cl_real *scratch) {
    const size_t Cp = round16(d->C), Wp = (size_t)d->W + 2 * d->pw;
    cl_real *wk = scratch, *bk = wk + (size_t)d->R * d->S * Cp, *pad = bk + Cp;
    pack_weights(wk, weight, d, Cp);
    memset(bk, 0, Cp * sizeof(cl_real));
    if (bias) memcpy(bk, bias, (size_t)d->C * sizeof(cl_real));
    for (int n = 0; n < d->N; n++) {
        pad_channels(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, Cp, d->ph, d->pw);
        cl_real *on = out + (size_t)n * d->OH * d->OW * d->K;
        for (int oh = 0; oh < d->OH; oh++)
            for (int c0 = 0; c0 < d->C; c0 += VL) {
                int lanes = d->C - c0;
                int ow = 0;
                for (; ow + PIXELS <= d->OW; ow += PIXELS)
                    forward_block(on, pad, wk, bk, PIXELS, oh, ow, c0, lanes, d, Wp, Cp);
                for (; ow < d->OW; ow++) forward_block(on, pad, wk, bk, 1, oh, ow, c0, lanes, d, Wp, Cp);
            }
    }
}

/* dk[P][Cp] = dout[P][C] with zero lanes C..Cp-1 */
static void pad_lanes(cl_real *dk, const cl_real *dout, size_t P, int C, size_t Cp) {
    memset(dk, 0, P * Cp * sizeof(cl_real));
    for (size_t p = 0; p < P; p++) memcpy(dk + p * Cp, dout + p * C, (size_t)C * sizeof(cl_real));
}

/* dinp[N][H][W][C] += the input gradient: each output pixel's gradient times the
 * kernel, scattered over the window it read, in a padded buffer. */
CL_CLONES void cl_conv2d_depthwise_input_grad(cl_real *dinp, const cl_real *dout,
                                              const cl_real *weight, const cl_conv_shape *d,
                                              cl_real *scratch) {
    const size_t Cp = round16(d->C), Wp = (size_t)d->W + 2 * d->pw, P = (size_t)d->OH * d->OW;
    cl_real *wk = scratch, *dpad = wk + (size_t)d->R * d->S * Cp;
    cl_real *dk = dpad + ((size_t)d->H + 2 * d->ph) * Wp * Cp;
    pack_weights(wk, weight, d, Cp);
    for (int n = 0; n < d->N; n++) {
        pad_lanes(dk, dout + (size_t)n * P * d->K, P, d->C, Cp);
        memset(dpad, 0, ((size_t)d->H + 2 * d->ph) * Wp * Cp * sizeof(cl_real));
        for (int oh = 0; oh < d->OH; oh++)
            for (int r = 0; r < d->R; r++) {
                cl_real *drow = dpad + (size_t)(oh * d->sh + r * d->dh) * Wp * Cp;
                for (int s = 0; s < d->S; s++)
                    for (size_t c0 = 0; c0 < Cp; c0 += VL) {
                        vec wv = LOAD(wk + (size_t)(r * d->S + s) * Cp + c0);
                        cl_real *dp = drow + (size_t)s * d->dw * Cp + c0;
                        const cl_real *gp = dk + (size_t)oh * d->OW * Cp + c0;
                        for (int ow = 0; ow < d->OW; ow++) {
                            cl_real *q = dp + (size_t)ow * d->sw * Cp;
                            STORE(q, LOAD(q) + LOAD(gp + (size_t)ow * Cp) * wv);
                        }
                    }
            }
        cl_real *dn = dinp + (size_t)n * d->H * d->W * d->C;
        for (int h = 0; h < d->H; h++)
            for (int w = 0; w < d->W; w++) {
                const cl_real *q = dpad + ((size_t)(h + d->ph) * Wp + (size_t)(w + d->pw)) * Cp;
                cl_real *o = dn + ((size_t)h * d->W + w) * d->C;
                for (int c = 0; c < d->C; c++) o[c] += q[c];
            }
    }
}

/* dweight [C][R][S] += sum over images and output pixels of
 * pad(inp)[oh*sh + r*dh][ow*sw + s*dw][c] * dout[oh][ow][c] (the bias gradient is
 * conv2d.c's bias_grad, summed in double). */
CL_CLONES void cl_conv2d_depthwise_weight_grad(cl_real *dweight, const cl_real *dout,
                                               const cl_real *inp, const cl_conv_shape *d,
                                               cl_real *scratch) {
    const size_t Cp = round16(d->C), Wp = (size_t)d->W + 2 * d->pw, P = (size_t)d->OH * d->OW;
    const int taps = d->R * d->S;
    cl_real *gw = scratch, *pad = gw + (size_t)taps * Cp;
    cl_real *dk = pad + ((size_t)d->H + 2 * d->ph) * Wp * Cp;
    memset(gw, 0, (size_t)taps * Cp * sizeof(cl_real));
    for (int n = 0; n < d->N; n++) {
        pad_channels(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, Cp, d->ph, d->pw);
        pad_lanes(dk, dout + (size_t)n * P * d->K, P, d->C, Cp);
        for (size_t c0 = 0; c0 < Cp; c0 += VL)
            for (int r = 0; r < d->R; r++)
                for (int s = 0; s < d->S; s++) {
                    /* two accumulators (even and odd columns) hide the FMA latency */
                    vec a0 = {0}, a1 = {0};
                    for (int oh = 0; oh < d->OH; oh++) {
                        const cl_real *ip = pad + ((size_t)(oh * d->sh + r * d->dh) * Wp +
                                                   (size_t)s * d->dw) * Cp + c0;
                        const cl_real *gp = dk + (size_t)oh * d->OW * Cp + c0;
                        int ow = 0;
                        for (; ow + 2 <= d->OW; ow += 2) {
                            a0 += LOAD(ip + (size_t)ow * d->sw * Cp) * LOAD(gp + (size_t)ow * Cp);
                            a1 += LOAD(ip + (size_t)(ow + 1) * d->sw * Cp) *
                                  LOAD(gp + (size_t)(ow + 1) * Cp);
                        }
                        if (ow < d->OW)
                            a0 += LOAD(ip + (size_t)ow * d->sw * Cp) * LOAD(gp + (size_t)ow * Cp);
                    }
                    cl_real *g = gw + (size_t)(r * d->S + s) * Cp + c0;
                    STORE(g, LOAD(g) + a0 + a1);
                }
    }
    for (int c = 0; c < d->C; c++)
        for (int t = 0; t < taps; t++) dweight[(size_t)c * taps + t] += gw[(size_t)t * Cp + c];
}
