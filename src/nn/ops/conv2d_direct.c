/* conv2d_direct.c: the fast convolution kernels for ungrouped convolutions (the
 * reference loops in conv2d.c stay the definition they are tested against).
 *
 * Direct convolution over channels-last images, register-blocked: a microkernel
 * keeps WB output pixels x up to 32 output channels (two 16-float vectors) in
 * registers while it runs over the kernel window and the input channels, so each
 * weight vector loaded feeds WB fused multiply-adds. Each image is first copied into
 * a zero-padded buffer, so the inner loops have no bounds checks. The gradient of
 * the input is the same correlation over the padded output gradient with the kernel
 * flipped and its channel axes swapped (stride 1); the gradient of the weights is a
 * matrix product over the pixels, blocked 8 input channels x 32 output channels.
 *
 * The vectors are GCC vector extensions and the drivers are compiled for AVX-512,
 * AVX2 and plain x86-64 (target_clones), so one binary picks the best at run time. */
#include <string.h>

#include "nn/model.h"

#define VL 16 /* floats per vector */
typedef cl_real vec __attribute__((vector_size(VL * sizeof(cl_real))));
typedef cl_real vec_u __attribute__((vector_size(VL * sizeof(cl_real)), aligned(sizeof(cl_real))));

#define INLINE static inline __attribute__((always_inline))

/* Unaligned vector loads and stores. Macros and pointer arguments, not vector
 * arguments, so no ABI question arises between the per-CPU clones. */
#define LOAD(p) (*(const vec_u *)(p))
#define STORE(p, v) (*(vec_u *)(p) = (v))
/* Only the first n lanes (n < VL) of a vector at the end of a row. */
INLINE void load_part(vec *v, const cl_real *p, int n) {
    *v = (vec){0};
    for (int i = 0; i < n; i++) (*v)[i] = p[i];
}
INLINE void store_part(cl_real *p, const vec *v, int n) {
    for (int i = 0; i < n; i++) p[i] = (*v)[i];
}

static int round16(int k) { return (k + VL - 1) / VL * VL; }

size_t cl_conv2d_direct_scratch(const cl_conv_shape *d) {
    size_t Kp = (size_t)round16(d->K), Cp = (size_t)round16(d->C);
    size_t wide = (size_t)(d->C > d->K ? d->C : d->K), widep = Kp > Cp ? Kp : Cp;
    size_t in_pad = (size_t)(d->H + 2 * d->ph) * (d->W + 2 * d->pw) * d->C;
    int qh = d->R - 1 - d->ph, qw = d->S - 1 - d->pw; /* the output gradient's padding */
    size_t dout_pad = (size_t)(d->OH + 2 * (qh > 0 ? qh : 0)) * (d->OW + 2 * (qw > 0 ? qw : 0)) * d->K;
    size_t dout_kp = (size_t)d->OH * d->OW * Kp + 2 * VL;
    size_t big = in_pad > dout_pad ? in_pad : dout_pad;
    size_t weights = (size_t)d->R * d->S * wide * widep + Kp;
    /* a microkernel block reads up to 16 pixels (times the stride) past a row's end */
    size_t slack = ((size_t)16 * d->sw + (size_t)d->S * d->dw + 1) * wide + 2 * VL;
    return weights + (big > dout_kp ? big : dout_kp) + big + slack;
}

/* ---- microkernels ---------------------------------------------------------------- */

/* out[j][k0 + 0..KV*16) for WB pixels j (of which nvalid are stored; kvalid channels):
 *     (accumulate ? out : bias) + sum over r, s, c of in[r*row + s*col + j*pix + c] * w[r][s][c][..]
 * in: padded input at the block's first pixel; w: [R][S][C][Kp] from channel k0. */
#define FORWARD_KERNEL(NAME, KV, WB)                                                            \
    INLINE void NAME(cl_real *out, int K, int nvalid, int kvalid, const cl_real *in, int C,     \
                     int R, int S, size_t row, size_t col, size_t pix, const cl_real *w, int Kp, \
                     const cl_real *bias, bool accumulate) {                                    \
        vec acc[WB][KV];                                                                        \
        _Pragma("GCC unroll 32") for (int j = 0; j < WB; j++)                                   \
            _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++) {                              \
            int lanes = kvalid - v * VL;                                                        \
            if (accumulate && j < nvalid && lanes >= VL)                                        \
                acc[j][v] = LOAD(out + (size_t)j * K + v * VL);                                 \
            else if (accumulate && j < nvalid)                                                  \
                load_part(&acc[j][v], out + (size_t)j * K + v * VL, lanes);                     \
            else                                                                                \
                acc[j][v] = bias ? LOAD(bias + v * VL) : (vec){0};                              \
        }                                                                                       \
        for (int r = 0; r < R; r++)                                                             \
            for (int s = 0; s < S; s++) {                                                       \
                const cl_real *ip = in + r * row + s * col;                                     \
                const cl_real *wp = w + (size_t)(r * S + s) * C * Kp;                           \
                for (int c = 0; c < C; c++) {                                                   \
                    vec wv[KV];                                                                 \
                    _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++) wv[v] =                \
                        LOAD(wp + (size_t)c * Kp + v * VL);                                     \
                    _Pragma("GCC unroll 32") for (int j = 0; j < WB; j++) {                     \
                        cl_real x = ip[j * pix + c];                                            \
                        _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++) acc[j][v] +=       \
                            x * wv[v];                                                          \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        for (int j = 0; j < nvalid; j++)                                                        \
            _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++) {                              \
            int lanes = kvalid - v * VL;                                                        \
            if (lanes >= VL)                                                                    \
                STORE(out + (size_t)j * K + v * VL, acc[j][v]);                                 \
            else if (lanes > 0)                                                                 \
                store_part(out + (size_t)j * K + v * VL, &acc[j][v], lanes);                    \
        }                                                                                       \
    }

FORWARD_KERNEL(forward_2x12, 2, 12)
FORWARD_KERNEL(forward_1x16, 1, 16)

/* Correlate one padded image in[Hp][Wp][C] with w [R][S][C][Kp] into out[OH][OW][K]. */
INLINE void correlate(cl_real *out, const cl_real *in, const cl_real *w, const cl_real *bias,
                      int Wp, int C, int OH, int OW, int K, int R, int S, int sh, int sw, int dh,
                      int dw, bool accumulate) {
    const int Kp = round16(K);
    const size_t row = (size_t)dh * Wp * C, col = (size_t)dw * C, pix = (size_t)sw * C;
    for (int oh = 0; oh < OH; oh++) {
        const cl_real *irow = in + (size_t)oh * sh * Wp * C;
        cl_real *orow = out + (size_t)oh * OW * K;
        for (int k0 = 0; k0 < K; k0 += 2 * VL) {
            int kvalid = K - k0 < 2 * VL ? K - k0 : 2 * VL;
            const cl_real *b = bias ? bias + k0 : NULL;
            if (kvalid > VL) {
                for (int ow = 0; ow < OW; ow += 12)
                    forward_2x12(orow + (size_t)ow * K + k0, K, OW - ow < 12 ? OW - ow : 12, kvalid,
                                 irow + (size_t)ow * pix, C, R, S, row, col, pix, w + k0, Kp, b,
                                 accumulate);
            } else {
                for (int ow = 0; ow < OW; ow += 16)
                    forward_1x16(orow + (size_t)ow * K + k0, K, OW - ow < 16 ? OW - ow : 16, kvalid,
                                 irow + (size_t)ow * pix, C, R, S, row, col, pix, w + k0, Kp, b,
                                 accumulate);
            }
        }
    }
}

/* Copy img[H][W][C] into dst[H+2ph][W+2pw][C] with a zero border. Only the border
 * is cleared and each row is one copy: this runs for every image, forward and
 * backward, and clearing the whole buffer first cost as much again as the copy. */
static void pad_image(cl_real *dst, const cl_real *img, int H, int W, int C, int ph, int pw) {
    const size_t row = (size_t)(W + 2 * pw) * C, side = (size_t)pw * C, inner = (size_t)W * C;
    memset(dst, 0, (size_t)ph * row * sizeof(cl_real));
    for (int h = 0; h < H; h++) {
        cl_real *d = dst + (size_t)(h + ph) * row;
        memset(d, 0, side * sizeof(cl_real));
        memcpy(d + side, img + (size_t)h * inner, inner * sizeof(cl_real));
        memset(d + side + inner, 0, side * sizeof(cl_real));
    }
    memset(dst + (size_t)(H + ph) * row, 0, (size_t)ph * row * sizeof(cl_real));
}

/* ---- drivers ------------------------------------------------------------------------ */

/* out[N][OH][OW][K] = conv(inp[N][H][W][C], weight [R][S][C][K]) + bias[K] */
CL_CLONES void cl_conv2d_direct_forward(cl_real *out, const cl_real *inp, const cl_real *weight,
                                        const cl_real *bias, const cl_conv_shape *d,
                                        cl_real *scratch) {
    const int Kp = round16(d->K), Wp = d->W + 2 * d->pw;
    cl_real *wpk = scratch, *bpk = wpk + (size_t)d->R * d->S * d->C * Kp;
    cl_real *pad = bpk + Kp;
    /* weights with each output-channel row padded to Kp, so vectors never run off it */
    memset(wpk, 0, ((size_t)d->R * d->S * d->C + 1) * Kp * sizeof(cl_real));
    for (size_t i = 0; i < (size_t)d->R * d->S * d->C; i++)
        memcpy(wpk + i * Kp, weight + i * d->K, (size_t)d->K * sizeof(cl_real));
    if (bias) memcpy(bpk, bias, (size_t)d->K * sizeof(cl_real));
    for (int n = 0; n < d->N; n++) {
        pad_image(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, d->ph, d->pw);
        correlate(out + (size_t)n * d->OH * d->OW * d->K, pad, wpk, bias ? bpk : NULL, Wp, d->C,
                  d->OH, d->OW, d->K, d->R, d->S, d->sh, d->sw, d->dh, d->dw, false);
    }
}

bool cl_conv2d_direct_input_grad_ok(const cl_conv_shape *d) {
    return d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1 && d->ph <= d->R - 1 &&
           d->pw <= d->S - 1;
}

/* dinp[N][H][W][C] += correlation of dout (padded by R-1-ph, S-1-pw) with the flipped,
 * transposed kernel wT[r'][s'][k][c] = weight[R-1-r'][S-1-s'][c][k]. Stride 1 only. */
CL_CLONES void cl_conv2d_direct_input_grad(cl_real *dinp, const cl_real *dout,
                                           const cl_real *weight, const cl_conv_shape *d,
                                           cl_real *scratch) {
    const int Cp = round16(d->C), qh = d->R - 1 - d->ph, qw = d->S - 1 - d->pw;
    const int Wq = d->OW + 2 * qw;
    cl_real *wt = scratch, *pad = wt + (size_t)d->R * d->S * d->K * Cp;
    memset(wt, 0, (size_t)d->R * d->S * d->K * Cp * sizeof(cl_real));
    for (int r = 0; r < d->R; r++)
        for (int s = 0; s < d->S; s++)
            for (int c = 0; c < d->C; c++)
                for (int k = 0; k < d->K; k++)
                    wt[(((size_t)(d->R - 1 - r) * d->S + (d->S - 1 - s)) * d->K + k) * Cp + c] =
                        weight[(((size_t)r * d->S + s) * d->C + c) * d->K + k];
    for (int n = 0; n < d->N; n++) {
        pad_image(pad, dout + (size_t)n * d->OH * d->OW * d->K, d->OH, d->OW, d->K, qh, qw);
        correlate(dinp + (size_t)n * d->H * d->W * d->C, pad, wt, NULL, Wq, d->K, d->H, d->W, d->C,
                  d->R, d->S, 1, 1, 1, 1, true);
    }
}

/* acc[CB][2] over the pixels of one image:
 *     dweight[r][s][c0 + c][k0..k0+32) += sum_p in[p + offset][c0 + c] * dout[p][k0..] */
#define WEIGHT_KERNEL(NAME, CB)                                                                   \
    INLINE void NAME(cl_real *dw, int K, int kvalid, const cl_real *in, const cl_real *dout, int Kp, \
                     int OH, int OW, size_t in_row, size_t pix) {                                 \
        vec acc[CB][2];                                                                           \
        _Pragma("GCC unroll 8") for (int c = 0; c < CB; c++) acc[c][0] = acc[c][1] = (vec){0};   \
        for (int oh = 0; oh < OH; oh++) {                                                         \
            const cl_real *ip = in + oh * in_row;                                                 \
            const cl_real *dp = dout + (size_t)oh * OW * Kp;                                      \
            for (int ow = 0; ow < OW; ow++) {                                                     \
                vec d0 = LOAD(dp + (size_t)ow * Kp), d1 = LOAD(dp + (size_t)ow * Kp + VL);        \
                const cl_real *x = ip + ow * pix;                                                 \
                _Pragma("GCC unroll 8") for (int c = 0; c < CB; c++) {                            \
                    acc[c][0] += x[c] * d0;                                                       \
                    acc[c][1] += x[c] * d1;                                                       \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (int c = 0; c < CB; c++)                                                              \
            for (int v = 0; v < 2; v++) {                                                         \
                int lanes = kvalid - v * VL;                                                      \
                cl_real *p = dw + (size_t)c * K + v * VL;                                         \
                if (lanes >= VL)                                                                  \
                    STORE(p, LOAD(p) + acc[c][v]);                                                \
                else                                                                              \
                    for (int i = 0; i < lanes; i++) p[i] += acc[c][v][i];                         \
            }                                                                                     \
    }

WEIGHT_KERNEL(weight_8, 8)
WEIGHT_KERNEL(weight_4, 4)
WEIGHT_KERNEL(weight_1, 1)

/* dweight[R][S][C][K] += sum over images and pixels of inp (padded) x dout */
CL_CLONES void cl_conv2d_direct_weight_grad(cl_real *dweight, const cl_real *dout,
                                            const cl_real *inp, const cl_conv_shape *d,
                                            cl_real *scratch) {
    const int Kp = round16(d->K), Wp = d->W + 2 * d->pw;
    const size_t P = (size_t)d->OH * d->OW;
    cl_real *dk = scratch, *pad = dk + P * Kp + 2 * VL;
    const size_t in_row = (size_t)d->sh * Wp * d->C, pix = (size_t)d->sw * d->C;
    for (int n = 0; n < d->N; n++) {
        const cl_real *dn = dout + (size_t)n * P * d->K;
        /* the output gradient with rows padded to Kp: full-vector loads */
        memset(dk, 0, (P * Kp + 2 * VL) * sizeof(cl_real));
        for (size_t p = 0; p < P; p++)
            memcpy(dk + p * Kp, dn + p * d->K, (size_t)d->K * sizeof(cl_real));
        pad_image(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, d->ph, d->pw);
        for (int r = 0; r < d->R; r++)
            for (int s = 0; s < d->S; s++) {
                const cl_real *in_rs = pad + ((size_t)r * d->dh * Wp + (size_t)s * d->dw) * d->C;
                cl_real *dw_rs = dweight + (size_t)(r * d->S + s) * d->C * d->K;
                for (int k0 = 0; k0 < d->K; k0 += 2 * VL) {
                    int kvalid = d->K - k0 < 2 * VL ? d->K - k0 : 2 * VL;
                    int c = 0;
                    for (; c + 8 <= d->C; c += 8)
                        weight_8(dw_rs + (size_t)c * d->K + k0, d->K, kvalid, in_rs + c, dk + k0, Kp,
                                 d->OH, d->OW, in_row, pix);
                    for (; c + 4 <= d->C; c += 4)
                        weight_4(dw_rs + (size_t)c * d->K + k0, d->K, kvalid, in_rs + c, dk + k0, Kp,
                                 d->OH, d->OW, in_row, pix);
                    for (; c < d->C; c++)
                        weight_1(dw_rs + (size_t)c * d->K + k0, d->K, kvalid, in_rs + c, dk + k0, Kp,
                                 d->OH, d->OW, in_row, pix);
                }
            }
    }
}
