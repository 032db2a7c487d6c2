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
/* the integer vector a comparison of two vecs gives: all ones where true */
typedef __typeof__((vec){0} < (vec){0}) mask;

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
 * and with relu, negative sums stored as 0 (NaN stays NaN, as torch.relu).
 * in: padded input at the block's first pixel; w: [R][S][C][Kp] from channel k0. */
#define FORWARD_KERNEL(NAME, KV, WB)                                                            \
    INLINE void NAME(cl_real *out, int K, int nvalid, int kvalid, const cl_real *in, int C,     \
                     int R, int S, size_t row, size_t col, size_t pix, const cl_real *w, int Kp, \
                     const cl_real *bias, bool accumulate, bool relu) {                         \
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
        if (relu)                                                                               \
            _Pragma("GCC unroll 32") for (int j = 0; j < WB; j++)                               \
                _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++) acc[j][v] =                \
                    (vec)((mask)acc[j][v] & ~(acc[j][v] < 0));                                  \
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
FORWARD_KERNEL(forward_2x8, 2, 8)
FORWARD_KERNEL(forward_1x16, 1, 16)
FORWARD_KERNEL(forward_1x8, 1, 8)

/* How many pixel blocks of `big` pixels a row of OW pixels starts with before the rest
 * goes in blocks of `small`: the split that computes the fewest pixel slots (most big
 * blocks on a tie). A row of 16 in blocks of 12 computes 24 slots for 16 pixels, in
 * blocks of 8 exactly 16; the 8x8 and 16x16 stages of a CIFAR-10 network are most of
 * its work after the first two layers. */
static int big_blocks(int OW, int big, int small) {
    int best = 0, best_slots = -1;
    for (int nb = OW / big; nb >= 0; nb--) {
        int rest = OW - nb * big, slots = nb * big + (rest + small - 1) / small * small;
        if (best_slots < 0 || slots < best_slots) best = nb, best_slots = slots;
    }
    return best;
}

/* Correlate one padded image in[Hp][Wp][C] with w [R][S][C][Kp] into out[OH][OW][K]. */
INLINE void correlate_rows(cl_real *out, const cl_real *in, const cl_real *w, const cl_real *bias,
                      int Wp, int C, int OH, int OW, int K, int R, int S, int sh, int sw, int dh,
                      int dw, bool accumulate, bool relu) {
    const int Kp = round16(K);
    const size_t row = (size_t)dh * Wp * C, col = (size_t)dw * C, pix = (size_t)sw * C;
    const int nb2 = big_blocks(OW, 12, 8), nb1 = big_blocks(OW, 16, 8);
    for (int oh = 0; oh < OH; oh++) {
        const cl_real *irow = in + (size_t)oh * sh * Wp * C;
        cl_real *orow = out + (size_t)oh * OW * K;
        for (int k0 = 0; k0 < K; k0 += 2 * VL) {
            int kvalid = K - k0 < 2 * VL ? K - k0 : 2 * VL;
            const cl_real *b = bias ? bias + k0 : NULL;
#define BLOCK(KERNEL, WB)                                                                         \
    KERNEL(orow + (size_t)ow * K + k0, K, OW - ow < WB ? OW - ow : WB, kvalid,                   \
           irow + (size_t)ow * pix, C, R, S, row, col, pix, w + k0, Kp, b, accumulate, relu)
            int ow = 0;
            if (kvalid > VL) {
                for (int i = 0; i < nb2; i++, ow += 12) BLOCK(forward_2x12, 12);
                for (; ow < OW; ow += 8) BLOCK(forward_2x8, 8);
            } else {
                for (int i = 0; i < nb1; i++, ow += 16) BLOCK(forward_1x16, 16);
                for (; ow < OW; ow += 8) BLOCK(forward_1x8, 8);
            }
#undef BLOCK
        }
    }
}

/* The microkernels read their 12-16 pixels at offsets j * sw * C. Known only at run
 * time, each offset takes an index register, more than x86-64 has left, and GCC
 * reloads them from the stack inside the innermost loop and spills a weight vector
 * (perf annotate of the forward, 2026-12-01); known at compile time, they are
 * displacements of one address register. On CPUs with AVX-512 (x86-64-v4, where the
 * speed targets are set) correlate_v4 runs the common shapes (C of 8 to 32, stride 1)
 * through copies with C and the stride as constants (with the 8-pixel blocks above,
 * 1.70x faster inference on cifar10_bn, docs/performance.md). Only that ISA gets the copies: with AVX2 or SSE each 16-float vector is
 * several registers, and copies for them would make this file several megabytes. */
#define FIXED_CAT_(a, b) a##b
#define FIXED_CAT(a, b) FIXED_CAT_(a, b)
#define FIXED_REAL_float 1 /* not for the double build of the gradient checks */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(CL_NO_CLONES) && \
    FIXED_CAT(FIXED_REAL_, CL_REAL)
#define FIXED_SHAPES 1
/* The channel counts with their own copy: one list for the test and the switch. */
#define FIXED_CHANNELS(X) X(8) X(12) X(16) X(24) X(32)
static bool fixed_shape(int C, int sw) {
#define IS_C(CC) C == CC ||
    return sw == 1 && (FIXED_CHANNELS(IS_C) false);
#undef IS_C
}

__attribute__((target("arch=x86-64-v4"), noinline, noclone)) static void
correlate_v4(cl_real *out, const cl_real *in, const cl_real *w, const cl_real *bias, int Wp,
             int C, int OH, int OW, int K, int R, int S, int sh, int dh, int dw, bool accumulate,
             bool relu) {
    switch (C) {
#define CORRELATE_C(CC)                                                                           \
    case CC:                                                                                      \
        correlate_rows(out, in, w, bias, Wp, CC, OH, OW, K, R, S, sh, 1, dh, dw, accumulate, relu); \
        return;
        FIXED_CHANNELS(CORRELATE_C)
#undef CORRELATE_C
    }
}
#endif

INLINE void correlate(cl_real *out, const cl_real *in, const cl_real *w, const cl_real *bias,
                      int Wp, int C, int OH, int OW, int K, int R, int S, int sh, int sw, int dh,
                      int dw, bool accumulate, bool relu) {
#ifdef FIXED_SHAPES
    if (fixed_shape(C, sw) && __builtin_cpu_supports("x86-64-v4")) {
        correlate_v4(out, in, w, bias, Wp, C, OH, OW, K, R, S, sh, dh, dw, accumulate, relu);
        return;
    }
#endif
    correlate_rows(out, in, w, bias, Wp, C, OH, OW, K, R, S, sh, sw, dh, dw, accumulate, relu);
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

/* out[N][OH][OW][K] = conv(inp[N][H][W][C], weight [R][S][C][K]) + bias[K], and with
 * scale (not NULL) the per-channel affine epilogue folded in:
 *     out = (conv + bias) * scale[K] + shift[K],   then max(., 0) with relu,
 * computed as conv with weight * scale and bias * scale + shift: BatchNorm in eval
 * mode (scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale)
 * and the ReLU after it cost no pass over memory of their own. */
INLINE void forward_impl(cl_real *out, const cl_real *inp, const cl_real *weight,
                         const cl_real *bias, const cl_real *scale, const cl_real *shift,
                         bool relu, const cl_conv_shape *d, cl_real *scratch) {
    const int Kp = round16(d->K), Wp = d->W + 2 * d->pw;
    cl_real *wpk = scratch, *bpk = wpk + (size_t)d->R * d->S * d->C * Kp;
    cl_real *pad = bpk + Kp;
    /* weights with each output-channel row padded to Kp, so vectors never run off it */
    memset(wpk, 0, ((size_t)d->R * d->S * d->C + 1) * Kp * sizeof(cl_real));
    for (size_t i = 0; i < (size_t)d->R * d->S * d->C; i++) {
        if (scale)
            for (int k = 0; k < d->K; k++) wpk[i * Kp + k] = weight[i * d->K + k] * scale[k];
        else
            memcpy(wpk + i * Kp, weight + i * d->K, (size_t)d->K * sizeof(cl_real));
    }
    if (scale)
        for (int k = 0; k < d->K; k++) bpk[k] = (bias ? bias[k] * scale[k] : 0) + shift[k];
    else if (bias)
        memcpy(bpk, bias, (size_t)d->K * sizeof(cl_real));
    bool has_bias = bias || scale;
    for (int n = 0; n < d->N; n++) {
        pad_image(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, d->ph, d->pw);
        correlate(out + (size_t)n * d->OH * d->OW * d->K, pad, wpk, has_bias ? bpk : NULL, Wp, d->C,
                  d->OH, d->OW, d->K, d->R, d->S, d->sh, d->sw, d->dh, d->dw, false, relu);
    }
}

CL_CLONES void cl_conv2d_direct_forward(cl_real *out, const cl_real *inp, const cl_real *weight,
                                        const cl_real *bias, const cl_conv_shape *d,
                                        cl_real *scratch) {
    forward_impl(out, inp, weight, bias, NULL, NULL, false, d, scratch);
}

CL_CLONES void cl_conv2d_direct_forward_affine(cl_real *out, const cl_real *inp,
                                               const cl_real *weight, const cl_real *bias,
                                               const cl_real *scale, const cl_real *shift,
                                               bool relu, const cl_conv_shape *d, cl_real *scratch) {
    forward_impl(out, inp, weight, bias, scale, shift, relu, d, scratch);
}

bool cl_conv2d_direct_input_grad_ok(const cl_conv_shape *d) {
    return d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1 && d->ph <= d->R - 1 &&
           d->pw <= d->S - 1;
}

/* dinp[N][H][W][C] += (with store: =) correlation of dout (padded by R-1-ph, S-1-pw)
 * with the flipped, transposed kernel wT[r'][s'][k][c] = weight[R-1-r'][S-1-s'][c][k].
 * Stride 1 only. */
CL_CLONES void cl_conv2d_direct_input_grad(cl_real *dinp, const cl_real *dout,
                                           const cl_real *weight, const cl_conv_shape *d,
                                           bool store, cl_real *scratch) {
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
                  d->R, d->S, 1, 1, 1, 1, !store, false);
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

/* First layers (3x3 kernel, 1 or 3 input channels): the blocking over 8 input
 * channels above runs a single-channel kernel per channel there, whose two
 * accumulators form one dependent chain per pixel and whose second vector is wasted
 * for 16 output channels. Here all 9*C kernel taps of one 16-channel block are
 * accumulated at once over the pixels, 9*C independent chains held in registers:
 *     dw[r][s][c][k0..k0+16) += sum_p in[p + r*row + s*col][c] * dout[p][k0..] */
#define WEIGHT_TAPS_KERNEL(NAME, CC)                                                              \
    INLINE void NAME(cl_real *dw, int K, int kvalid, const cl_real *in, const cl_real *dout, int Kp, \
                     int OH, int OW, size_t in_row, size_t pix, size_t row, size_t col) {         \
        vec acc[9 * CC];                                                                          \
        _Pragma("GCC unroll 27") for (int t = 0; t < 9 * CC; t++) acc[t] = (vec){0};             \
        for (int oh = 0; oh < OH; oh++) {                                                         \
            const cl_real *ip = in + oh * in_row;                                                 \
            const cl_real *dp = dout + (size_t)oh * OW * Kp;                                      \
            for (int ow = 0; ow < OW; ow++) {                                                     \
                vec g = LOAD(dp + (size_t)ow * Kp);                                               \
                const cl_real *x = ip + ow * pix;                                                 \
                _Pragma("GCC unroll 3") for (int r = 0; r < 3; r++)                               \
                    _Pragma("GCC unroll 3") for (int s = 0; s < 3; s++)                           \
                        _Pragma("GCC unroll 3") for (int c = 0; c < CC; c++)                      \
                            acc[(r * 3 + s) * CC + c] += x[r * row + s * col + c] * g;            \
            }                                                                                     \
        }                                                                                         \
        for (int t = 0; t < 9 * CC; t++) {                                                        \
            cl_real *p = dw + (size_t)t * K;                                                      \
            if (kvalid >= VL)                                                                     \
                STORE(p, LOAD(p) + acc[t]);                                                       \
            else                                                                                  \
                for (int i = 0; i < kvalid; i++) p[i] += acc[t][i];                               \
        }                                                                                         \
    }

WEIGHT_TAPS_KERNEL(weight_taps_3, 3)
WEIGHT_TAPS_KERNEL(weight_taps_1, 1)

/* dweight[R][S][C][K] += sum over images and pixels of inp (padded) x dout */
CL_CLONES void cl_conv2d_direct_weight_grad(cl_real *dweight, const cl_real *dout,
                                            const cl_real *inp, const cl_conv_shape *d,
                                            cl_real *scratch) {
    const int Kp = round16(d->K), Wp = d->W + 2 * d->pw;
    const size_t P = (size_t)d->OH * d->OW;
    cl_real *copy = scratch, *pad = scratch + P * Kp + 2 * VL;
    const size_t in_row = (size_t)d->sh * Wp * d->C, pix = (size_t)d->sw * d->C;
    const bool first = d->R == 3 && d->S == 3 && (d->C == 3 || d->C == 1);
    /* The kernels load whole vectors of the output gradient: one per pixel for the
     * first layers, two for the others. Where K is a multiple of that, they read dout
     * in place; otherwise from a copy with rows padded to Kp. */
    const bool in_place = d->K % (first ? VL : 2 * VL) == 0;
    for (int n = 0; n < d->N; n++) {
        const cl_real *dn = dout + (size_t)n * P * d->K;
        const cl_real *dk = in_place ? dn : copy;
        if (!in_place) {
            memset(copy, 0, (P * Kp + 2 * VL) * sizeof(cl_real));
            for (size_t p = 0; p < P; p++)
                memcpy(copy + p * Kp, dn + p * d->K, (size_t)d->K * sizeof(cl_real));
        }
        pad_image(pad, inp + (size_t)n * d->H * d->W * d->C, d->H, d->W, d->C, d->ph, d->pw);
        if (first) {
            const size_t row = (size_t)d->dh * Wp * d->C, col = (size_t)d->dw * d->C;
            for (int k0 = 0; k0 < d->K; k0 += VL) {
                int kvalid = d->K - k0 < VL ? d->K - k0 : VL;
                if (d->C == 3)
                    weight_taps_3(dweight + k0, d->K, kvalid, pad, dk + k0, Kp, d->OH, d->OW, in_row,
                                  pix, row, col);
                else
                    weight_taps_1(dweight + k0, d->K, kvalid, pad, dk + k0, Kp, d->OH, d->OW, in_row,
                                  pix, row, col);
            }
            continue;
        }
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
