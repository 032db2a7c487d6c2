/* cnnlab.h: the public API of libcnnlab, a C library for designing, training and
 * studying small convolutional networks on the CPU.
 *
 * A model is built once, layer by layer, with the builder functions below (the
 * model-file parser calls exactly these). Each builder call takes the id of its
 * input tensor and returns the id of its output tensor, or -1 on error, with the
 * message in cl_model_error(). cl_model_compile() then plans every buffer and
 * allocates once; after that, forward and backward passes allocate nothing.
 *
 * Layout: activations are channels-last (NHWC, like torch.channels_last), float32
 * (cl_real).
 * Parameters are stored in the layout the kernels want; cl_model_get_param() and
 * cl_model_set_param() convert from and to PyTorch's layout and state_dict names.
 * Semantics follow torch.nn exactly (BatchNorm momentum 0.1 and unbiased running
 * variance, GroupNorm, LayerNorm, dropout scaling, cross entropy with label
 * smoothing), so numbers compare with PyTorch. */
#ifndef CNNLAB_H
#define CNNLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one place the version is set: the Makefile (shared-library file name and
 * soname, cnnlab.pc) and `cnnlab --version` read it from here; debian/changelog must
 * agree (tests/test_deb.sh checks). */
#define CNNLAB_VERSION "0.1.0"

/* CL_API marks the public functions. The library is compiled with
 * -fvisibility=hidden, so these are the only symbols libcnnlab.so exports
 * (tests/test_symbols.sh checks that the two lists are equal). */
#if defined(__GNUC__) || defined(__clang__)
#define CL_API __attribute__((visibility("default")))
#else
#define CL_API
#endif

/* The element type of every tensor: float (float32, as PyTorch's default). The
 * finite-difference gradient check builds the whole library with -DCL_REAL=double so
 * that the very same kernels run in double precision. */
#ifndef CL_REAL
#define CL_REAL float
#endif
typedef CL_REAL cl_real;

typedef enum {
    CL_OK = 0,
    CL_ERR_ARG,    /* a bad argument or option */
    CL_ERR_SHAPE,  /* shapes do not fit together */
    CL_ERR_PARSE,  /* a malformed model file */
    CL_ERR_IO,     /* a file could not be read or written */
    CL_ERR_FORMAT, /* a file has the wrong format or is corrupt */
    CL_ERR_NOMEM,  /* out of memory, or a model too large to plan */
    CL_ERR_STATE,  /* a call out of order (e.g. forward before compile) */
} cl_status;

/* Shape of one sample of a tensor: channels, height, width. Flat vectors are Cx1x1. */
typedef struct {
    int c, h, w;
} cl_shape;

typedef struct cl_model cl_model;

/* ---- building ------------------------------------------------------------ */

/* How a convolution's weight starts (conv only). CL_INIT_DIRAC: the default init,
 * then torch.nn.init.dirac_(w[:in_per_group]) of each group, as airbench's Conv does:
 * the first min(out, in) outputs of each group pass their input channel through
 * (a 1 at the kernel's centre tap, 0 elsewhere); further outputs keep the default. */
typedef enum { CL_INIT_DEFAULT = 0, CL_INIT_DIRAC } cl_conv_init;

/* Convolution and pooling geometry. Zero means the PyTorch default:
 * stride 1 (pooling: stride = kernel), dilation 1, groups 1. Kernel, stride,
 * padding and dilation have a height and a width. kernel_w, stride_w and
 * dilation_w of 0 take the _h value (a square kernel); padding is always given as
 * both pad_h and pad_w, since 0 is a valid padding. */
typedef struct {
    int out_channels; /* conv only */
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dilation_h, dilation_w;
    int groups;   /* conv only: in and out channels split into this many groups */
    bool no_bias; /* conv only: PyTorch's bias=False */
    cl_conv_init init; /* conv only: the weight's initialisation */
} cl_conv2d_args;

typedef enum { CL_NORM_NONE = 0, CL_NORM_BATCH, CL_NORM_GROUP, CL_NORM_LAYER } cl_norm_kind;

/* Normalisation parameters. Zero means the PyTorch default: eps 1e-5, momentum 0.1. */
typedef struct {
    cl_norm_kind kind;
    int groups;       /* GroupNorm: number of groups, must divide the channels */
    float eps;
    float momentum;   /* BatchNorm: running-statistics momentum */
    bool elementwise; /* LayerNorm: one affine weight per (C,H,W) element, as
                         nn.LayerNorm([C,H,W]); otherwise per channel, as
                         nn.GroupNorm(1, C) */
} cl_norm_args;

typedef enum {
    CL_ACT_NONE = 0,
    CL_ACT_RELU,
    CL_ACT_LEAKY_RELU,
    CL_ACT_GELU,
    CL_ACT_SILU,      /* nn.SiLU */
    CL_ACT_HARDSWISH, /* nn.Hardswish */
} cl_act_kind;

/* Create an empty model whose input samples have the given shape. NULL only when
 * out of memory. */
CL_API cl_model *cl_model_new(cl_shape input);
CL_API void cl_model_free(cl_model *m);

/* The last error's message ("" if none). Valid until the next call on m. */
CL_API const char *cl_model_error(const cl_model *m);
/* The option the last error is about ("groups", "k", ...), or "" if none. */
CL_API const char *cl_model_error_field(const cl_model *m);

/* The input tensor's id (always 0). */
CL_API int cl_input(const cl_model *m);

/* Layers. Each returns the output tensor's id, or -1 on error. */
CL_API int cl_conv2d(cl_model *m, int x, cl_conv2d_args a);
CL_API int cl_maxpool2d(cl_model *m, int x, cl_conv2d_args a);
CL_API int cl_avgpool2d(cl_model *m, int x, cl_conv2d_args a); /* count_include_pad=True */
CL_API int cl_global_avgpool(cl_model *m, int x);              /* AdaptiveAvgPool2d(1) */
CL_API int cl_norm(cl_model *m, int x, cl_norm_args a);        /* BatchNorm2d, GroupNorm, LayerNorm */
CL_API int cl_activation(cl_model *m, int x, cl_act_kind kind, float negative_slope);
CL_API int cl_dropout(cl_model *m, int x, float p); /* inverted dropout; identity in eval mode */
CL_API int cl_add(cl_model *m, int a, int b);       /* residual add; shapes must match */
CL_API int cl_concat(cl_model *m, const int *xs, int n); /* along channels; H and W must match */
CL_API int cl_flatten(cl_model *m, int x);          /* CxHxW -> (C*H*W)x1x1 in PyTorch's C,H,W order */
CL_API int cl_linear(cl_model *m, int x, int out_features, bool no_bias); /* input must be Cx1x1 */

/* Give tensor x a name (for skip connections and the summary). Names are unique. */
CL_API cl_status cl_model_set_name(cl_model *m, int x, const char *name);
/* The id of the tensor with this name, or -1. */
CL_API int cl_model_find(const cl_model *m, const char *name);

/* The shape of tensor x, and the model's output (the last layer's tensor). */
CL_API cl_shape cl_model_shape(const cl_model *m, int x);
CL_API int cl_model_output(const cl_model *m);

/* Remember which model-file line made the next layers (shown in the summary). */
CL_API void cl_model_set_source_line(cl_model *m, int line);

/* ---- inspection ----------------------------------------------------------- */

typedef struct {
    const char *op;     /* "conv2d", "batchnorm2d", ... */
    const char *name;   /* tensor name given with cl_model_set_name, or "" */
    int output;         /* output tensor id */
    int inputs[8];      /* input tensor ids */
    int ninputs;
    cl_shape out;
    int64_t params;     /* trainable parameters */
    int64_t buffers;    /* non-trainable state (BatchNorm running statistics) */
    int64_t macs;       /* multiply-accumulates per sample */
    int64_t rf, jump;   /* receptive field (height) and jump (stride product) of the output */
    int64_t rf_w, jump_w;
    int line;           /* model-file line, or 0 */
} cl_layer_info;

CL_API int cl_model_layer_count(const cl_model *m);
CL_API cl_layer_info cl_model_layer(const cl_model *m, int i);
CL_API int64_t cl_model_param_count(const cl_model *m);  /* trainable */
CL_API int64_t cl_model_buffer_count(const cl_model *m); /* non-trainable */

/* Write the torchsummary-style table (layers, output shapes, parameters, receptive
 * fields, MACs, activation memory) to f. title names the model (or NULL). */
CL_API void cl_model_print_summary(const cl_model *m, const char *title, FILE *f);

/* ---- compiling and running ----------------------------------------------- */

typedef struct {
    int max_batch; /* largest batch passed to forward */
    int threads;   /* worker threads; 0 = all cores */
    uint64_t seed; /* parameter initialisation and dropout */
    bool input_grad; /* also compute the gradient of the input in backward */
    bool reference_kernels; /* use the plain reference loops instead of the fast kernels
                               (the tests compare the two) */
    bool keep_activation_grads; /* keep every tensor's gradient after backward (for
                                   cl_model_activation_grad, e.g. Grad-CAM); otherwise
                                   gradients share memory and only the input's stays */
    /* Data-parallel training over several processes (e.g. MPI ranks), each holding a
     * contiguous share of every global batch (see cl_model_set_shard). When reduce is
     * set, a training pass combines BatchNorm's batch statistics across processes:
     * after this process's threads have summed their partial sums in thread order,
     * reduce(sums, n, reduce_ctx) is called once, from the thread that called
     * cl_model_forward or cl_model_backward, and must replace sums[0..n) on every
     * process with the sum over all processes of their sums[0..n), added in process
     * order (so that results never depend on timing). The last element of sums is
     * the number of values summed, so the statistics are those of the global batch.
     * The library itself never communicates. NULL: a single process. */
    void (*reduce)(double *sums, size_t n, void *reduce_ctx);
    void *reduce_ctx;
} cl_compile_args;

/* Plan every buffer, allocate them once and initialise parameters as PyTorch does
 * (kaiming-uniform weights with a=sqrt(5), uniform biases, norm weight 1 bias 0). */
CL_API cl_status cl_model_compile(cl_model *m, cl_compile_args a);

/* Forward a batch of n samples, NHWC float32 [n, H, W, C]. train selects batch
 * statistics and active dropout. Returns the output activations [n, H, W, C]
 * (logits [n, classes] for a Cx1x1 output), owned by the model, or NULL on error.
 * With a reduce hook (cl_compile_args) n may be 0: a process whose share of a small
 * global batch is empty still takes part in the reductions. */
CL_API const cl_real *cl_model_forward(cl_model *m, const cl_real *x, int n, bool train);

/* Backward from dout, the gradient of the loss with respect to the last forward's
 * output, same layout. Parameter gradients are accumulated (+=) into the gradient
 * buffer, as PyTorch's .backward() does; call cl_model_zero_grad() between steps. */
CL_API cl_status cl_model_backward(cl_model *m, const cl_real *dout);
CL_API void cl_model_zero_grad(cl_model *m);

/* The number of training forwards so far. It keys the dropout masks, so a run
 * resumed from a checkpoint sets it back to draw the same masks. */
CL_API uint64_t cl_model_step(const cl_model *m);
CL_API void cl_model_set_step(cl_model *m, uint64_t step);

/* Data-parallel training: the samples of the following forward passes are samples
 * [first, first + n) of a global batch split across processes (0, the default, for
 * a whole batch). Dropout masks are keyed by the element's index in the global batch,
 * so a process draws exactly the masks one process would draw for those samples. */
CL_API void cl_model_set_shard(cl_model *m, int first);

/* The input gradient [n, H, W, C] of the last backward (needs input_grad). */
CL_API const cl_real *cl_model_input_grad(const cl_model *m);
/* The activations of any tensor after forward, and its gradient after backward (NULL
 * unless compiled with keep_activation_grads, or for the input with input_grad). */
/* After an eval-mode forward, a convolution's output that only a BatchNorm reads,
 * and that BatchNorm's output when only a ReLU reads it, are not stored (the three
 * run as one pass) and give NULL, unless the model was compiled with input_grad or
 * keep_activation_grads. Likewise, always, a tensor that only a ReLU reads: the ReLU
 * writes its output in place over it. */
CL_API const cl_real *cl_model_activation(const cl_model *m, int x);
CL_API const cl_real *cl_model_activation_grad(const cl_model *m, int x);

/* Flat parameter, gradient and buffer arrays (kernel layout), for optimizers. */
CL_API cl_real *cl_model_params(cl_model *m, size_t *count);
CL_API cl_real *cl_model_grads(cl_model *m, size_t *count);
CL_API cl_real *cl_model_buffers(cl_model *m, size_t *count);

/* ---- named parameter tensors (PyTorch state_dict) ---------------------------- */

typedef struct {
    char name[64];     /* "layers.3.weight": torch.nn.ModuleList index and attribute */
    int ndim;
    int64_t dims[4];   /* PyTorch shape */
    int64_t numel;
    bool trainable;    /* false for running_mean, running_var, num_batches_tracked */
    int layer;         /* index in cl_model_layer */
} cl_tensor_info;

CL_API int cl_model_tensor_count(const cl_model *m);
CL_API cl_tensor_info cl_model_tensor(const cl_model *m, int i);
CL_API int cl_model_find_tensor(const cl_model *m, const char *name);
/* Copy tensor i out of / into the model in PyTorch layout (numel values). */
CL_API cl_status cl_model_get_tensor(const cl_model *m, int i, cl_real *dst);
CL_API cl_status cl_model_set_tensor(cl_model *m, int i, const cl_real *src);
/* The gradient of tensor i in PyTorch layout. */
CL_API cl_status cl_model_get_tensor_grad(const cl_model *m, int i, cl_real *dst);

/* ---- patch-whitening initialisation (src/nn/whiten.c) -------------------------- */

/* The whitening filters of airbench's init_whitening_conv from n images x (NHWC
 * [n, H, W, C] of shape s, normalised as the model sees them): with l_i and v_i the
 * eigenvalues (descending) and eigenvectors of the uncentred covariance of every
 * valid kh x kw patch (stride 1, no padding; a patch read in [C][kh][kw] order),
 * h = min(rows / 2, C*kh*kw) and rows r < h: w[r] = v_r / sqrt(l_r + eps),
 * w[h + r] = -w[r]. w is [rows][C][kh][kw] (PyTorch's conv weight); its rows from 2h
 * on are left as they are. eigenvalues (NULL, or [C*kh*kw]) receives every l_i. */
CL_API cl_status cl_whitening_filters(const cl_real *x, int n, cl_shape s, int kh, int kw,
                                      double eps, int rows, cl_real *w, double *eigenvalues,
                                      char *err, size_t errlen);
/* Set the weight of the first convolution that reads the model's input (groups 1,
 * dilation 1) from cl_whitening_filters over n images x; bias and the rows from
 * 2*min(out/2, C*kh*kw) on keep their values. The model must be compiled. Returns the
 * layer's index, or -1 with the error in err. */
CL_API int cl_model_init_whiten(cl_model *m, const cl_real *x, int n, double eps, char *err,
                                size_t errlen);

/* ---- the learning-rate range test (src/nn/lr_find.c) -------------------------- */

/* torch-lr-finder's LRFinder.range_test with step_mode="exp": step i of steps
 * (0-based) trains at start * (end / start)^(i / (steps - 1)). */
CL_API double cl_lr_find_lr(double start_lr, double end_lr, int steps, int i);

/* The smoothed loss and its best so far; zero-initialise before the first step. */
typedef struct {
    int n;       /* steps fed */
    double last; /* the last smoothed loss */
    double best; /* the lowest smoothed loss */
} cl_lr_find_state;

/* Feed one step's loss, as range_test does: the first loss is kept as it is, later
 * ones become smooth_f * loss + (1 - smooth_f) * the previous smoothed loss (no bias
 * correction); *smoothed (if not NULL) receives it. True when the test stops: the
 * smoothed loss is above diverge_th times the best one (or not finite). */
CL_API bool cl_lr_find_step(cl_lr_find_state *s, double loss, double smooth_f, double diverge_th,
                            double *smoothed);

/* torch-lr-finder's suggested learning rate (LRFinder.plot(suggest_lr=True)): of the
 * smoothed losses [skip_start, n - skip_end), the index of the steepest descent, the
 * minimum of np.gradient (first on ties); -1 when fewer than 2 points remain. */
CL_API int cl_lr_find_suggest(const double *smoothed, int n, int skip_start, int skip_end);

/* ---- loss ------------------------------------------------------------------ */

/* Cross entropy over logits [n, classes] (log-softmax + NLL, fused and stable), mean
 * over the batch, with PyTorch's label_smoothing. Writes dlogits = d(loss)/d(logits)
 * [n, classes] when dlogits is not NULL. Returns the loss. */
CL_API double cl_cross_entropy(const cl_real *logits, const int32_t *labels, int n, int classes,
                        float label_smoothing, cl_real *dlogits);

/* ---- optimizers (torch.optim semantics) ------------------------------------ */

typedef enum { CL_OPT_SGD = 0, CL_OPT_ADAM, CL_OPT_ADAMW } cl_optim_kind;

typedef struct {
    cl_optim_kind kind;
    float lr;
    float momentum, dampening; /* SGD */
    bool nesterov;             /* SGD */
    float weight_decay;        /* SGD, Adam: added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps;   /* Adam, AdamW; zero means 0.9, 0.999, 1e-8 */
    /* Parameter groups. The "norm/bias" tensors are every bias (conv2d, linear, the
     * norms) and the weights of batchnorm2d, groupnorm and layernorm. */
    bool no_decay_norm_bias;   /* no weight decay on them */
    float norm_lr_scale;       /* their lr is this times the step's lr; 0 means 1 */
    /* > 0: after every step, update an exponential moving average of the weights and
     * buffers as torch.optim.swa_utils.AveragedModel(model, use_buffers=True,
     * multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) does (the first step copies). */
    float ema_decay;
} cl_optim_args;

typedef struct cl_optimizer cl_optimizer;

/* An optimizer over all of m's trainable parameters; its state (momentum buffers,
 * Adam moments) has the parameters' flat layout. NULL when out of memory. */
CL_API cl_optimizer *cl_optimizer_new(cl_model *m, cl_optim_args a);
CL_API void cl_optimizer_free(cl_optimizer *o);
/* One step with learning rate lr (schedules set it per step). */
CL_API void cl_optimizer_step(cl_optimizer *o, float lr);
/* Momentum-like hyper-parameter changes (OneCycle cycles momentum or beta1). */
CL_API void cl_optimizer_set_momentum(cl_optimizer *o, float momentum);
/* With ema_decay: exchange the model's weights and buffers with the moving average
 * (before any step, the average is the model as it is), so that forward, save and
 * export use the average; call again to exchange them back. A step always trains the
 * raw weights (it exchanges them back first). Returns whether the model now holds the
 * average; false without ema_decay. cl_model_save with the optimizer keeps both. */
CL_API bool cl_optimizer_swap_average(cl_optimizer *o);
CL_API bool cl_optimizer_average_in_model(const cl_optimizer *o);

/* ---- learning-rate schedules (torch.optim.lr_scheduler semantics) ------------ */

typedef enum {
    CL_SCHED_NONE = 0, /* constant */
    CL_SCHED_STEP,     /* StepLR(step_size, gamma), per epoch */
    CL_SCHED_MULTISTEP,/* MultiStepLR(milestones, gamma), per epoch */
    CL_SCHED_ONECYCLE, /* OneCycleLR (cosine, two phases, momentum cycling), per batch */
    CL_SCHED_COSINE,   /* CosineAnnealingLR(T_max, eta_min), per epoch */
    CL_SCHED_PLATEAU,  /* ReduceLROnPlateau on the test loss (mode min, rel threshold) */
} cl_sched_kind;

#define CL_MAX_MILESTONES 32

/* Zero means PyTorch's default wherever it has one. */
typedef struct {
    cl_sched_kind kind;
    float lr;              /* the base learning rate; OneCycle: max_lr */
    int step_size;         /* step */
    float gamma;           /* step, multistep (0.1) */
    int milestones[CL_MAX_MILESTONES], nmilestones;
    int total_steps;       /* onecycle: epochs * batches per epoch */
    float pct_start;       /* onecycle (0.3) */
    float div_factor;      /* onecycle (25) */
    float final_div_factor;/* onecycle (1e4) */
    bool no_cycle_momentum;/* onecycle: PyTorch's cycle_momentum=False */
    float base_momentum, max_momentum; /* onecycle (0.85, 0.95) */
    int t_max;             /* cosine, in epochs */
    float eta_min;         /* cosine (0) */
    float factor;          /* plateau (0.1) */
    int patience;          /* plateau (10; -1 for 0) */
    float threshold;       /* plateau (1e-4) */
    int cooldown;          /* plateau (0) */
    float min_lr;          /* plateau (0) */
} cl_sched_args;

/* A schedule and its state (plateau tracking), plain data so it can be saved. */
typedef struct {
    cl_sched_args a;
    double plateau_lr, best;
    int bad_epochs, cooldown_left;
    bool has_best;
} cl_schedule;

/* Fill defaults and check the arguments; returns CL_ERR_ARG with a message. */
CL_API cl_status cl_schedule_init(cl_schedule *s, cl_sched_args a, char *err, size_t errlen);
/* The learning rate for batch `step` (counted from 0 over the whole run) of epoch
 * `epoch` (from 0). */
CL_API double cl_schedule_lr(const cl_schedule *s, int epoch, long step);
/* OneCycle's momentum (or Adam's beta1) for that batch; a negative value when the
 * schedule leaves momentum alone. */
CL_API double cl_schedule_momentum(const cl_schedule *s, long step);
/* End of an epoch with its test loss (ReduceLROnPlateau's step(metric)). */
CL_API void cl_schedule_epoch_end(cl_schedule *s, double metric);

/* ---- datasets ---------------------------------------------------------------- */

/* A labelled image dataset held once in memory as uint8, channels-last:
 * images[n][h][w][c]. Every loader validates what it reads and names the file and
 * the byte offset or record of any problem in err. */
typedef struct {
    int n;             /* images */
    int c, h, w;       /* of each image */
    int classes;
    uint8_t *images;   /* [n][h][w][c] */
    int32_t *labels;   /* [n], each in [0, classes) */
    char **class_names;/* [classes] */
} cl_dataset;

typedef enum { CL_SPLIT_TRAIN = 0, CL_SPLIT_TEST } cl_split;

/* CIFAR-10 binary batches in dir (data_batch_1..5.bin, test_batch.bin and
 * batches.meta.txt for the class names). */
CL_API cl_status cl_load_cifar10(const char *dir, cl_split split, cl_dataset *out, char *err,
                          size_t errlen);
/* CIFAR-100 binary (train.bin, test.bin, fine_label_names.txt and
 * coarse_label_names.txt); fine selects the 100 fine labels, else the 20 coarse. */
CL_API cl_status cl_load_cifar100(const char *dir, cl_split split, bool fine, cl_dataset *out,
                           char *err, size_t errlen);
/* A pair of IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw. */
CL_API cl_status cl_load_idx(const char *images_path, const char *labels_path, cl_dataset *out,
                      char *err, size_t errlen);
/* MNIST-style IDX files in dir: train-images-idx3-ubyte[.gz] and friends, or the
 * t10k- files for the test split. class_names: "0".."9" when NULL. */
CL_API cl_status cl_load_mnist_dir(const char *dir, cl_split split, const char *const *class_names,
                            cl_dataset *out, char *err, size_t errlen);
/* One subfolder per class (sorted by name), PNG and JPEG images. All images must
 * have the size of the first unless resize_h, resize_w > 0 (bilinear resize). */
CL_API cl_status cl_load_image_folder(const char *dir, int resize_h, int resize_w, cl_dataset *out,
                               char *err, size_t errlen);
CL_API void cl_dataset_free(cl_dataset *ds);
/* Decode one PNG or JPEG into a malloc'ed out[h][w][c]: c = 3 for RGB, 1 for grey
 * (ITU-R 601 luma), resized (bilinear, align_corners=False) when its size differs. */
CL_API cl_status cl_load_image(const char *path, int c, int h, int w, uint8_t **out, char *err,
                        size_t errlen);

/* Per-channel statistics on the 0..1 scale (population variance, as numpy). */
typedef struct {
    double min, max, mean, std, var;
} cl_channel_stats;
/* stats[c] for each channel; class_counts[classes] (either may be NULL). */
CL_API void cl_dataset_stats(const cl_dataset *ds, cl_channel_stats *stats, int64_t *class_counts);

/* ---- augmentation ------------------------------------------------------------ */

/* Per-sample, seeded transforms on uint8 images [h][w][c], applied in the order added.
 * Each draws its random numbers from (seed, key): the same key gives the same result
 * whatever thread runs it. */
typedef enum {
    CL_AUG_CROP,       /* random crop after padding: pad (pixels), reflect or zero */
    CL_AUG_HFLIP,      /* horizontal flip with probability p */
    CL_AUG_ROTATE,     /* random rotation in [-degrees, degrees], bilinear, zero fill */
    CL_AUG_SSR,        /* shift-scale-rotate: shift (fraction), scale, degrees; bilinear */
    CL_AUG_JITTER,     /* colour jitter: brightness, contrast, saturation, hue */
    CL_AUG_CUTOUT,     /* holes of size x size pixels set to fill (count holes) */
    CL_AUG_ERASE,      /* random erasing with probability p (torchvision RandomErasing) */
} cl_aug_kind;

typedef struct {
    cl_aug_kind kind;
    float p;                 /* probability of applying (0 means always, except hflip: 0.5) */
    int pad;                 /* crop */
    bool reflect;            /* crop: reflect padding instead of zeros */
    float degrees;           /* rotate, ssr */
    float shift, scale;      /* ssr: max shift as a fraction of the size; scale in [1-s, 1+s] */
    float brightness, contrast, saturation, hue; /* jitter, as torchvision ColorJitter */
    int size, count;         /* cutout: hole side and number of holes */
    uint8_t fill;            /* cutout, erase fill value */
    float area_min, area_max, ratio_min, ratio_max; /* erase (0: 0.02, 0.33, 0.3, 3.3) */
} cl_aug;

typedef struct cl_augment cl_augment;

CL_API cl_augment *cl_augment_new(void);
CL_API void cl_augment_free(cl_augment *a);
CL_API cl_status cl_augment_add(cl_augment *a, cl_aug t);
/* Parse a comma-separated pipeline and append it, e.g.
 * "crop:4:reflect,hflip,cutout:8" (see docs/augmentation.md). */
CL_API cl_status cl_augment_parse(cl_augment *a, const char *spec, char *err, size_t errlen);
CL_API int cl_augment_count(const cl_augment *a);
/* Apply every transform to img [h][w][c] in place. scratch holds h*w*c bytes. */
CL_API void cl_augment_apply(const cl_augment *a, uint8_t *img, int h, int w, int c, uint64_t seed,
                      uint64_t key, uint8_t *scratch);

/* ---- batches ------------------------------------------------------------------ */

/* Feeds training: shuffles each epoch from the seed, augments and normalises on
 * worker threads ahead of the compute. The same seed gives the same batches, in
 * the same order, whatever the number of workers. */
typedef struct {
    const cl_dataset *ds;
    int batch;
    bool shuffle;
    bool drop_last;          /* drop a last partial batch */
    uint64_t seed;
    const cl_augment *aug;   /* or NULL */
    const float *mean, *std; /* per channel on the 0..1 scale, or NULL for 0 and 1 */
    const int32_t *subset;   /* use only these sample indices (or NULL for all) */
    int nsubset;
    int workers;             /* preparing threads; 0: 1 */
    int prefetch;            /* batches prepared ahead; 0: 4 */
    int shard, shards;       /* data-parallel training: prepare only share `shard` of
                                `shards` of every batch of n, its samples
                                [n*shard/shards, n*(shard+1)/shards) (the batches and
                                their order stay those of the whole run); 0, 0: all */
} cl_loader_args;

typedef struct cl_loader cl_loader;

CL_API cl_loader *cl_loader_new(cl_loader_args a, char *err, size_t errlen);
CL_API void cl_loader_free(cl_loader *l);
CL_API int cl_loader_batches(const cl_loader *l); /* batches per epoch */
/* Begin epoch (from 0); batches are drawn with cl_loader_next until it returns false. */
CL_API void cl_loader_start(cl_loader *l, int epoch);
/* The next batch: x [n][h][w][c] normalised, labels [n], indices [n] into the dataset.
 * The pointers stay valid until the following call. */
CL_API bool cl_loader_next(cl_loader *l, const cl_real **x, const int32_t **labels,
                    const int32_t **indices, int *n);
/* Where the batch cl_loader_next returned last lies in the whole batch: its first
 * sample's index there and the whole batch's size (0 and n without shards). */
CL_API void cl_loader_span(const cl_loader *l, int *first, int *total);

/* ---- safetensors files -------------------------------------------------------- */

#define CL_ST_NAME_LEN 128
#define CL_ST_MAX_DIMS 8

typedef struct {
    char name[CL_ST_NAME_LEN];
    char dtype[8];       /* "F32", "F64", "I32", "I64" */
    int ndim;
    int64_t dims[CL_ST_MAX_DIMS];
    const void *data;    /* little-endian; may be unaligned: copy it out with memcpy */
    size_t nbytes;
} cl_st_tensor;

typedef struct {
    cl_st_tensor *t;
    int n, cap;
    char **meta;         /* __metadata__: 2*nmeta strings, key then value; read them */
    int nmeta;           /* with cl_safetensors_meta (any length, as the header allows) */
    uint8_t *data;
    size_t ndata;
} cl_safetensors;

/* Write tensors and string metadata (meta holds nmeta key, value pairs of UTF-8 text,
 * keys distinct, values of any length) atomically: a temporary file, flushed to disk,
 * then renamed over path. */
CL_API cl_status cl_safetensors_write(const char *path, const cl_st_tensor *t, int n,
                               const char *const *meta, int nmeta, char *err, size_t errlen);
/* Read and validate a whole file; NULL with a message naming the file and the offset. */
CL_API cl_safetensors *cl_safetensors_read(const char *path, char *err, size_t errlen);
CL_API void cl_safetensors_free(cl_safetensors *st);
CL_API const cl_st_tensor *cl_safetensors_find(const cl_safetensors *st, const char *name);
/* The metadata value of key, or NULL. */
CL_API const char *cl_safetensors_meta(const cl_safetensors *st, const char *key);
/* The number of metadata entries and the key of entry i (0 <= i < count), in file order. */
CL_API int cl_safetensors_meta_count(const cl_safetensors *st);
CL_API const char *cl_safetensors_meta_key(const cl_safetensors *st, int i);

/* ---- checkpoints ---------------------------------------------------------------- */

/* Save m's tensors under PyTorch state_dict names and layouts (float32;
 * num_batches_tracked int64) and, when o is not NULL, the optimizer's state under
 * "optimizer.", with string metadata (nmeta key, value pairs). Atomic. A model or
 * optimizer state holding NaN or Inf is not saved (CL_ERR_STATE naming the tensor). */
CL_API cl_status cl_model_save(const cl_model *m, cl_optimizer *o, const char *path,
                        const char *const *meta, int nmeta, char *err, size_t errlen);
/* Load every tensor of m by name (shapes must match; nothing changes on error) and,
 * when o is not NULL, the optimizer state. Files exported from PyTorch with
 * safetensors.torch.save_file(model.state_dict()) load too. A NaN or Inf in any tensor
 * is an error naming the tensor. */
CL_API cl_status cl_model_load(cl_model *m, cl_optimizer *o, const char *path, char *err, size_t errlen);

/* ---- model files ---------------------------------------------------------- */

/* Parse a model file's text and build the model. path names the file in messages.
 * input_override, when not NULL, replaces the file's input shape. On error returns
 * NULL and writes "path:line:col: message" into err. */
CL_API cl_model *cl_parse_model(const char *text, size_t len, const char *path,
                         const cl_shape *input_override, char *err, size_t errlen);
/* Read and parse a model file. */
CL_API cl_model *cl_load_model(const char *path, const cl_shape *input_override, char *err,
                        size_t errlen);

/* ---- ONNX (src/deploy/) ------------------------------------------------------ */

/* Exporting a compiled model to an ONNX file in inference form (dropout left out,
 * BatchNorm with its running statistics). Input "input" is NCHW float32 [N, C, H, W];
 * output "logits" is [N, K] for a Kx1x1 model output (else "output", NCHW).
 * docs/deploy.md has the op mapping. */
typedef struct {
    int opset;                      /* 21 (the default, when 0) or 17 */
    const float *mean, *std;        /* per input channel on the 0..1 scale, or NULL */
    bool normalize;                 /* with mean and std: (input - mean) / std as the
                                       graph's first nodes, so it takes 0..1 pixels */
    const char *const *class_names; /* [classes] for the metadata, or NULL */
    const char *model_text;         /* the model file, for the metadata, or NULL */
    const char *dataset;            /* for the metadata, or NULL */
} cl_onnx_export_args;

/* Write m (compiled, weights loaded) to path atomically. Errors name the file and,
 * for a layer ONNX export cannot express, the layer. */
CL_API cl_status cl_onnx_export(const cl_model *m, const cl_onnx_export_args *a, const char *path,
                         char *err, size_t errlen);

/* One parameter tensor of an imported model, under cnnlab's (PyTorch's) name. */
typedef struct {
    char name[64]; /* "layers.3.weight" */
    int ndim;
    int64_t dims[4];
    float *data;   /* PyTorch layout */
} cl_onnx_tensor;

/* An ONNX graph read back as a cnnlab model: a model-file text of one layer per
 * line (so layer i is line i's layer) and its tensors. */
typedef struct {
    char *model_text;
    cl_onnx_tensor *tensors;
    int ntensors;
    cl_shape input;
    bool has_normalization;   /* leading Sub/Div nodes were found and taken out */
    float mean[8], std[8];    /* their values; else mean 0 and std 1 */
    int classes;              /* outputs of the model */
    char **class_names;       /* from the metadata of a cnnlab export, or NULL */
    char dataset[64];         /* likewise, or "" */
} cl_onnx_import;

/* Read an ONNX file made of ops cnnlab has. NULL with a message naming the file
 * and, for an op cnnlab lacks, the node and its op type. */
CL_API cl_onnx_import *cl_onnx_import_read(const char *path, char *err, size_t errlen);
CL_API void cl_onnx_import_free(cl_onnx_import *imp);
/* Build the imported model, compile it with ca and set its tensors. NULL with a
 * message on failure. */
CL_API cl_model *cl_onnx_import_model(const cl_onnx_import *imp, cl_compile_args ca, char *err,
                               size_t errlen);

/* ---- evaluation: test-time augmentation and learning-curve analysis ------------ */

/* Test-time augmentation (src/eval/tta.c): a model's prediction for an image is the
 * mean of its logits over several views of it (the logits, as the fast CIFAR-10
 * training scripts average, not the probabilities). The views are the image itself,
 * with `translate` N the two diagonal shifts by (-N, -N) and (+N, +N) pixels (reflect
 * padding, as torch.nn.functional.pad(mode="reflect")), and with `flip` each of those
 * mirrored left-right too: 1, 2, 3 or 6 views. */
#define CL_TTA_MAX_VIEWS 6
#define CL_TTA_MAX_SHIFT 16

typedef struct {
    bool flip;     /* every view also mirrored left-right */
    int translate; /* shift in pixels of the two diagonal views; 0: no translated views */
    int nviews;    /* 1 (no TTA) .. CL_TTA_MAX_VIEWS */
} cl_tta;

/* Parse a comma list of "flip" and "translate:N" (1 <= N <= CL_TTA_MAX_SHIFT), or
 * "none" (or "") for no TTA, into t. Errors name the item. */
CL_API cl_status cl_tta_parse(const char *spec, cl_tta *t, char *err, size_t errlen);
/* The spec again in canonical form ("flip,translate:2", or "none") and a description
 * of the views ("6 views: identity, shifts (-2,-2) and (+2,+2) with reflect padding,
 * each also flipped"). Both return buf. */
CL_API const char *cl_tta_spec(const cl_tta *t, char *buf, size_t len);
CL_API const char *cl_tta_describe(const cl_tta *t, char *buf, size_t len);
/* The shift (dy, dx) and mirroring of view v (0 <= v < t->nviews): view v's pixel
 * (y, x) is the image's pixel (y + dy, x + dx), reflected at the borders, read from
 * column w-1-x instead of x when mirrored. View 0 is the image itself. */
CL_API void cl_tta_view_geometry(const cl_tta *t, int v, int *dy, int *dx, bool *mirrored);
/* View v of a batch x [n][h][w][c] into out (same shape; out must not alias x). */
CL_API void cl_tta_view(const cl_tta *t, int v, const cl_real *x, int n, int h, int w, int c,
                        cl_real *out);

/* A plan for one model: the view buffer and the logit sums, allocated once, so a
 * TTA forward allocates nothing. */
typedef struct cl_tta_plan cl_tta_plan;
/* For batches of up to max_batch samples of model m (compiled, logits output
 * [classes]); NULL with a message when the shift does not fit the image (reflect
 * padding needs N < H and N < W) or out of memory. */
CL_API cl_tta_plan *cl_tta_plan_new(cl_model *m, const cl_tta *t, int max_batch, char *err,
                                    size_t errlen);
CL_API void cl_tta_plan_free(cl_tta_plan *p);
/* The averaged logits [n][classes] of the batch x [n][h][w][c] (n <= max_batch): every
 * view forwarded through the model in eval mode (cl_model_forward, batched), the
 * logits summed in view order and divided by the number of views. Owned by the plan,
 * valid until the next call; NULL on error (cl_model_error). */
CL_API const cl_real *cl_tta_forward(cl_tta_plan *p, const cl_real *x, int n);

/* Learning-curve analysis (src/eval/analysis.c), the "Analysis" a course write-up
 * ends with, from the columns of metrics.csv. Accuracies are fractions (0..1). The
 * thresholds (docs/analysis.md): */
#define CL_UNDERFIT_MARGIN 0.005  /* underfits: final train accuracy below test by more */
#define CL_OVERFIT_ACC_DROP 0.01  /* overfits: final test accuracy this far below its best */
#define CL_OVERFIT_LOSS_RISE 0.10 /* overfits: final test loss this fraction above its least */
#define CL_TREND_EPOCHS 3         /* epochs (points) the trends are measured over */
#define CL_RISING_SLOPE 0.002     /* rising / falling: test accuracy per epoch, at least */
#define CL_GAP_TREND 0.005        /* widening / narrowing: change of the gap, more than */

typedef enum { CL_FITS_WELL, CL_UNDERFITS, CL_OVERFITS } cl_fit_verdict;
typedef enum { CL_TREND_NONE, CL_TREND_RISING, CL_TREND_FLAT, CL_TREND_FALLING } cl_trend;

typedef struct {
    int n; /* epochs (rows) */
    const double *epoch, *train_loss, *train_acc, *test_loss, *test_acc;
} cl_curves;

typedef struct {
    cl_fit_verdict verdict;
    int overfit_epoch;       /* CL_OVERFITS: the first epoch after the test optimum */
    bool overfit_by_acc;     /* test accuracy fell CL_OVERFIT_ACC_DROP below its best
                                while train accuracy rose above its value then */
    bool overfit_by_loss;    /* test loss rose CL_OVERFIT_LOSS_RISE above its least
                                while train loss fell below its value then */
    int best_acc_row, least_loss_row; /* rows of the best test accuracy and least test loss */
    double gap;              /* train_acc - test_acc at the last epoch */
    double gap_change;       /* gap at the last epoch minus the gap CL_TREND_EPOCHS-1 before */
    cl_trend gap_trend;      /* RISING: widening, FALLING: narrowing, FLAT: steady */
    double slope;            /* least-squares test accuracy per epoch over the last rows */
    int trend_rows;          /* rows in slope and gap_change (min(n, CL_TREND_EPOCHS)) */
    cl_trend movement;       /* of the test accuracy; NONE with one epoch */
    int target_epoch;        /* first epoch with test_acc >= target; 0 never; -1 no target */
} cl_curve_analysis;

/* Analyse c (n >= 1); target <= 0 means none. CL_ERR_ARG when n < 1 or a column is
 * missing. */
CL_API cl_status cl_analyse_curves(const cl_curves *c, double target, cl_curve_analysis *a);

typedef struct {
    int a, b;            /* classes, a < b */
    long count;          /* a taken for b plus b taken for a */
    long a_as_b, b_as_a;
} cl_confused_pair;

/* The (at most max) most confused unordered class pairs of a confusion matrix
 * [classes][classes] (rows true, columns predicted), most mistakes first (ties: the
 * lower a, then b); pairs without a mistake are left out. Returns their count. */
CL_API int cl_confused_pairs(const long *confusion, int classes, cl_confused_pair *out, int max);

/* ---- layouts ---------------------------------------------------------------- */

/* [n, C, H, W] <-> [n, H, W, C] */
CL_API void cl_nchw_to_nhwc(cl_real *dst, const cl_real *src, int n, int c, int h, int w);
CL_API void cl_nhwc_to_nchw(cl_real *dst, const cl_real *src, int n, int c, int h, int w);

#ifdef __cplusplus
}
#endif
#endif
