/* deploy.h: a trained model in inference form, and its export as a C file.
 *
 * cl_deploy_build() lowers a compiled cl_model into a flat list of inference
 * steps over CHW tensors of one image: BatchNorm folded into the convolution
 * before it (or kept as a per-channel scale and shift when none precedes it),
 * ReLU fused into the convolution before it, dropout and flatten left out (in CHW
 * a flatten moves nothing), a linear layer as a 1x1 convolution. The steps run the
 * kernels of src/deploy/kernels.h, the very code the exported model.c contains.
 * Every tensor has an offset into one arena, planned so that tensors whose
 * lifetimes do not overlap share memory. */
#ifndef CNNLAB_DEPLOY_H
#define CNNLAB_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>

#include "cnnlab.h"
#include "deploy/kernels.h"

#define CL_DEPLOY_MAX_INPUTS 8
#define CL_DEPLOY_MAX_CHANNELS 8

typedef enum {
    CL_DEPLOY_CONV,    /* conv2d or linear, BatchNorm folded, ReLU maybe fused */
    CL_DEPLOY_MAXPOOL,
    CL_DEPLOY_AVGPOOL, /* avgpool2d and gap */
    CL_DEPLOY_AFFINE,  /* a BatchNorm that follows no convolution */
    CL_DEPLOY_NORM,    /* GroupNorm, LayerNorm */
    CL_DEPLOY_ACT,     /* relu, leakyrelu, gelu, silu, hardswish (DK_RELU, ...) */
    CL_DEPLOY_ADD,
    CL_DEPLOY_CONCAT,
} cl_deploy_kind;

typedef struct {
    cl_deploy_kind kind;
    int layer0, layer1; /* the cnnlab layers it computes (cl_model_layer indices) */
    char ops[96];   /* their op names: "conv2d+batchnorm2d+relu" */
    int in[CL_DEPLOY_MAX_INPUTS], nin, out; /* tensor ids */
    dk_conv conv;   /* CONV */
    dk_pool pool;   /* MAXPOOL, AVGPOOL */
    dk_norm norm;   /* NORM */
    int act;        /* ACT: DK_RELU, DK_LEAKY_RELU, DK_GELU, DK_SILU, DK_HARDSWISH */
    float slope;    /* ACT: LeakyReLU's negative slope */
    /* CONV: weight [K][C/groups][kh][kw] and bias [K] (NULL: none); AFFINE: scale
     * and shift [C]; NORM: gamma and beta ([C], or [C][H][W] when elementwise) */
    float *w, *b;
    size_t nw, nb;
    bool bn_folded;
} cl_deploy_node;

typedef struct {
    int c, h, w;
    size_t size;   /* c*h*w */
    int producer;  /* node index; -1: the normalised input */
    int last_use;  /* the last node that reads it; nnodes for the output */
    size_t off;    /* into the arena, in elements */
} cl_deploy_tensor;

typedef struct {
    cl_deploy_node *nodes;
    int nnodes;
    cl_deploy_tensor *tensors; /* tensor 0 is the normalised input */
    int ntensors;
    int output;                /* the logits' tensor */
    cl_shape input;
    int classes;
    float mean[CL_DEPLOY_MAX_CHANNELS], std[CL_DEPLOY_MAX_CHANNELS]; /* per input channel */
    size_t arena;      /* elements of the planned arena */
    size_t naive;      /* elements if every tensor had its own memory */
    size_t max_plane;  /* largest conv output plane (the int8 accumulators) */
    size_t max_norm;   /* largest GroupNorm/LayerNorm input (int8 float scratch) */
    int layers_folded; /* BatchNorms folded, ReLUs fused, dropouts and flattens dropped */
} cl_deploy_graph;

/* Lower a compiled model with its trained weights. mean and std (per input
 * channel, on the 0..1 scale) become the first step. NULL with a message in err
 * for a model the deploy path cannot take (more than 8 input channels). */
cl_deploy_graph *cl_deploy_build(const cl_model *m, const float *mean, const float *std,
                                 char *err, size_t errlen);
void cl_deploy_free(cl_deploy_graph *g);
/* Whether the export has a form for op (a cl_op name: "conv2d", "gelu", ...). */
bool cl_deploy_supports(const char *op);

/* Bytes of the float32 weights, biases and other per-layer constants. */
size_t cl_deploy_weight_bytes(const cl_deploy_graph *g);

/* Called after each step with the tensor it wrote (t = 0 for the input). */
typedef void (*cl_deploy_observer)(void *ctx, int t, const float *x, size_t n);

/* Run one image: pixels [C][H][W] on the 0..1 scale -> logits [classes]. arena
 * holds g->arena floats. observe may be NULL. */
void cl_deploy_forward(const cl_deploy_graph *g, const float *pixels, float *logits,
                       float *arena, cl_deploy_observer observe, void *ctx);

/* ---- C export (src/deploy/export_c.c) ---- */

typedef struct cl_quant cl_quant;

typedef struct {
    const char *source;        /* the checkpoint's path, for the header comment */
    const char *model_text;    /* the model file, quoted in a comment (or NULL) */
    const char *const *class_names; /* [classes] (or NULL) */
} cl_deploy_c_info;

/* Write dir/model.c and dir/model.h (the folder must exist): float32 when q is
 * NULL, else the int8 network q describes. */
cl_status cl_deploy_write_c(const cl_deploy_graph *g, const cl_quant *q, const char *dir,
                            const cl_deploy_c_info *info, char *err, size_t errlen);

#endif
