/* quantize.h: int8 post-training quantization of a deployed network
 * (src/deploy/deploy.h), and the library's reference run of the int8 network.
 *
 * Scheme (as TensorFlow Lite Micro and CMSIS-NN):
 * - activations: int8 per tensor, asymmetric: real = scale * (q - zero_point),
 *   the range [min, max] (widened to hold 0) seen over the calibration images
 *   mapped onto [-128, 127]; max pooling keeps its input's parameters;
 * - weights: int8 per output channel, symmetric (zero point 0, [-127, 127]),
 *   scale max|w| / 127, taken after BatchNorm is folded into the convolution;
 * - biases: int32 at scale input_scale * weight_scale[k];
 * - convolutions accumulate in int32 and requantize with a fixed-point multiplier
 *   and shift per output channel (mult * 2^-shift, one rounding); average pooling,
 *   residual adds and concatenations requantize the same way;
 * - element-wise layers that are not folded (LeakyReLU, GELU, a ReLU that follows
 *   no convolution, a BatchNorm that follows no convolution) are 256-entry tables;
 * - GroupNorm and LayerNorm compute their statistics in float on the dequantized
 *   values and quantize the result (see kernels.h);
 * - the last convolution's int32 accumulators become float logits directly
 *   (acc * input_scale * weight_scale[k]), so the logits are not rounded to 8 bits.
 *
 * The fields below are the quantization parameters an exporter needs (the C
 * writer uses them; an ONNX QuantizeLinear/DequantizeLinear writer can read the
 * same: per-tensor scale and zero point, per-channel weight scales, int8 weights,
 * int32 biases). */
#ifndef CNNLAB_QUANTIZE_H
#define CNNLAB_QUANTIZE_H

#include <stdint.h>

#include "deploy/deploy.h"

/* real = scale * (q - zero_point) */
typedef struct {
    float scale;
    int32_t zero_point;
} cl_qparams;

typedef struct {
    /* CONV */
    int8_t *w;        /* [K][C/groups][kh][kw], symmetric per output channel */
    float *w_scale;   /* [K] */
    int32_t *bias;    /* [K], at scale in.scale * w_scale[k] */
    int32_t *mult;    /* [K] requantization to the output: mult * 2^-shift */
    int8_t *shift;    /* [K] */
    float *out_scale; /* [K] when float_out: logits = acc * out_scale[k] */
    bool float_out;   /* the network's last layer: float logits from int32 */
    /* ACT, AFFINE: lut[256] (ACT) or lut[C][256] (AFFINE), out = lut[q + 128] */
    int8_t *lut;
    /* AVGPOOL (input 0), ADD (both inputs, one shared shift), CONCAT (each input) */
    int32_t in_mult[CL_DEPLOY_MAX_INPUTS];
    int in_shift[CL_DEPLOY_MAX_INPUTS];
} cl_qnode;

struct cl_quant {
    const cl_deploy_graph *g;
    cl_qparams *t;   /* [g->ntensors] */
    float *t_min, *t_max; /* [g->ntensors] the calibrated ranges */
    cl_qnode *n;     /* [g->nnodes] */
    int calib_images;
    size_t weight_bytes; /* int8 weights, int32 biases, multipliers, shifts, tables */
};

/* Calibrate on n images (pixels [n][C][H][W] on the 0..1 scale, run through the
 * float network) and quantize. NULL with a message in err (out of memory, n < 1). */
cl_quant *cl_quant_new(const cl_deploy_graph *g, const float *images, int n, char *err,
                       size_t errlen);
void cl_quant_free(cl_quant *q);

/* Bytes of workspace one cl_quant_forward needs (the int8 arena, the int32
 * accumulators of one output plane, the float scratch of a GroupNorm). */
size_t cl_quant_workspace(const cl_quant *q);
/* Run the int8 network on one image [C][H][W] (0..1 scale) -> float logits. work
 * holds cl_quant_workspace(q) bytes (one per thread). Returns the argmax. */
int cl_quant_forward(const cl_quant *q, const float *pixels, float *logits, void *work);

/* Write the int8 network q as an ONNX file of QuantizeLinear/DequantizeLinear pairs
 * (src/deploy/onnx_export.c; docs/deploy.md): opset a->opset (17 or 21), the input
 * normalisation and the metadata as cl_onnx_export writes them, plus
 * cnnlab.quantization. uint8: activations as uint8 with the zero point + 128 (the same
 * real values; ONNX Runtime's x86 kernels fuse uint8 activations throughout). */
cl_status cl_onnx_export_int8(const cl_quant *q, const cl_onnx_export_args *a, bool uint8,
                              const char *path, char *err, size_t errlen);

#endif
