/* test_kernels.c: every fast kernel against the reference loops it replaces, on odd
 * shapes: a model is compiled twice, once with reference_kernels, and the outputs,
 * the input gradient and every parameter gradient must agree. Shapes cover channel
 * counts that are not multiples of the vector width (tails), 1x1 and 3x3 kernels,
 * padding 0 to 2, stride 2, dilation 2, rectangular kernels, odd image sizes and
 * batches of 1 and 5, with 1 and 2 threads; depthwise convolutions likewise, with
 * channel counts under, at and over one vector, strides 1 and 2, dilation 2, no
 * padding, 3x1 and 5x5 kernels, and inside a depthwise-separable network. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

static const char *const models[] = {
    "input 3x11x13\nconv 16 k=3 pad=1",
    "input 5x9x7\nconv 10 k=3 pad=1",
    "input 16x8x8\nconv 24 k=3 pad=1",
    "input 24x7x9\nconv 40 k=3 pad=1 bias=0",
    "input 17x6x6\nconv 33 k=3",
    "input 32x5x5\nconv 48 k=1",
    "input 7x12x10\nconv 20 k=3 stride=2 pad=1",
    "input 6x13x13\nconv 12 k=3 dilation=2 pad=2",
    "input 4x9x9\nconv 9 k=5 pad=2",
    "input 3x9x11\nconv 8 k=3x1 pad=1x0",
    "input 8x10x10\nconv 8 k=1 pad=1",
    /* rows of 20 and 16 pixels: blocks of 12 then 8, and of 8 only; C = 12, 24, 32 */
    "input 12x9x20\nconv 20 k=3 pad=1",
    "input 24x6x16\nconv 32 k=3 pad=1",
    "input 32x5x7\nconv 12 k=3 pad=1 bias=0",
    "input 3x32x32\nconv 16 k=3 pad=1\nconv 32 k=3 pad=1\nconv 16 k=1\nmaxpool 2\nconv 24 k=3 pad=1\ngap\nconv 10 k=1",
    /* first layers, 3x3 over 1 or 3 channels: the weight gradient's all-taps kernel */
    "input 1x10x9\nconv 8 k=3",
    "input 3x12x11\nconv 20 k=3 stride=2 pad=1",
    "input 3x13x13\nconv 33 k=3 dilation=2 pad=2 bias=0",
    /* depthwise (groups = in = out channels): conv2d_depthwise.c */
    "input 5x9x7\nconv 5 k=3 pad=1 groups=5",
    "input 19x8x9\nconv 19 k=3 pad=1 groups=19 bias=0",
    "input 32x7x7\nconv 32 k=3 stride=2 pad=1 groups=32",
    "input 17x11x10\nconv 17 k=3 dilation=2 pad=2 groups=17",
    "input 16x6x6\nconv 16 k=3 groups=16",
    "input 6x9x9\nconv 6 k=3x1 pad=1x0 groups=6",
    "input 7x9x8\nconv 7 k=5 stride=2 pad=1 groups=7",
    "input 3x12x12\nconv 24 k=3 pad=1\nconv 24 k=3 pad=1 groups=24\nconv 16 k=1\nconv 16 k=3 stride=2 pad=1 groups=16\ngap\nconv 10 k=1",
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 40) / (1 << 24) * 2 - 1);
}

typedef struct {
    cl_model *m;
    const float *out, *dx;
    float *grads;
    size_t nout, np;
} result;

static bool run(const char *text, bool reference, int threads, int n, const float *x,
                const float *dout, result *r) {
    char err[512];
    r->m = cl_parse_model(text, strlen(text), "kernels", NULL, err, sizeof err);
    if (!r->m) {
        t_fail("parse: %s", err);
        return false;
    }
    cl_compile_args a = {.max_batch = n, .threads = threads, .seed = 3, .input_grad = true,
                         .reference_kernels = reference};
    if (cl_model_compile(r->m, a) != CL_OK) {
        t_fail("compile: %s", cl_model_error(r->m));
        return false;
    }
    r->out = cl_model_forward(r->m, x, n, true);
    cl_model_backward(r->m, dout);
    r->dx = cl_model_input_grad(r->m);
    r->grads = cl_model_grads(r->m, &r->np);
    cl_shape o = cl_model_shape(r->m, cl_model_output(r->m));
    r->nout = (size_t)n * o.c * o.h * o.w;
    return true;
}

/* Inference with BatchNorm folded into the convolution and ReLU in its store
 * (model.c's fused spans) against the reference loops run layer by layer: the same
 * random parameters and running statistics (from two training forwards of the
 * reference model), an eval forward of both, then a backward from eval mode (which
 * reruns the forward unfused). skipped is a tensor inside a span that the fused
 * forward must not store (NULL from cl_model_activation), so the test fails if the
 * fusion silently stops happening. */
static const struct {
    const char *text;
    int skipped; /* a tensor inside a fused span */
} fused_models[] = {
    {"input 5x9x7\nconv 19 k=3 pad=1\nbn\nrelu", 1},
    {"input 3x11x12\nconv 33 k=3 stride=2 pad=1 bias=0\nbn\nrelu\nconv 10 k=1", 1},
    {"input 16x8x8\nconv 16 k=3 pad=1\nbn\nconv 8 k=1\nbn\nrelu", 1},
    {"input 3x10x10\ndefaults norm=bn act=relu\nblock 24 k=3 pad=1 as=b1\nblock 24 k=3 pad=1\nadd b1\nmaxpool 2\nblock 12 k=1", 1},
    {"input 8x7x7\nconv 8 k=1 as=c\nconv 8 k=3 pad=1\nbn\nrelu\nadd c", 2},
    /* the BatchNorm's output is read twice: conv and bn fuse, the ReLU runs alone */
    {"input 8x7x7\nconv 8 k=3 pad=1\nbn as=b\nrelu\nadd b", 1},
};

/* The model in text twice, compiled for batch n on threads: *fast with the fast
 * kernels, *ref with the reference loops. On failure reports it, frees both and
 * returns false. */
static bool compile_pair(const char *text, const char *name, int n, int threads, uint64_t seed,
                         cl_model **fast, cl_model **ref) {
    char err[512];
    *fast = cl_parse_model(text, strlen(text), name, NULL, err, sizeof err);
    *ref = cl_parse_model(text, strlen(text), name, NULL, err, sizeof err);
    cl_compile_args a = {.max_batch = n, .threads = threads, .seed = seed};
    if (!*fast || !*ref || cl_model_compile(*fast, a) != CL_OK ||
        cl_model_compile(*ref, (a.reference_kernels = true, a)) != CL_OK) {
        t_fail("parse or compile: %s", *fast && *ref ? cl_model_error(*fast) : err);
        cl_model_free(*fast);
        cl_model_free(*ref);
        return false;
    }
    return true;
}

/* Backward from dout on both after zeroing their gradients; the parameter gradients
 * compared as `what`. False when a backward failed (reported). */
static bool backward_pair(cl_model *fast, cl_model *ref, const float *dout, const char *what) {
    cl_model_zero_grad(fast);
    cl_model_zero_grad(ref);
    if (cl_model_backward(fast, dout) != CL_OK || cl_model_backward(ref, dout) != CL_OK) {
        t_fail("backward: %s %s", cl_model_error(fast), cl_model_error(ref));
        return false;
    }
    size_t ng;
    const cl_real *gf = cl_model_grads(fast, &ng), *gr = cl_model_grads(ref, &ng);
    check_close(what, gf, gr, ng, 1e-4, 1e-4);
    return true;
}

/* ReLUs planned in place (a ReLU writes its output over an input only it reads), in
 * a training step without input_grad, against the reference kernels (which never
 * run in place): the same output, parameter gradients and running statistics, and
 * exactly the overwritten tensors give NULL. Tensors: 0 input, 1 conv, 2 bn (under
 * relu 3), 4 conv c, 5 bn (under relu 6), 7 add, 8 relu (over 7); then a BatchNorm
 * read twice (9 conv, 10 bn b, 11 relu, 12 add b), whose ReLU gets its own memory.
 * ReLUs 3 and 6 also run inside their norm's passes (relu(y) stored by its forward,
 * the mask applied by its backward); 8 runs alone, in place. The norm is bn, gn or
 * ln (per-element affine too). */
static void in_place_relu_test(const char *norm, int n, int threads) {
    char text[512];
    snprintf(text, sizeof text, "input 6x9x7\nconv 16 k=3 pad=1\n%s\nrelu\nconv 16 k=3 pad=1 as=c\n%s\n"
             "relu\nadd c\nrelu\nconv 8 k=1\n%s as=b\nrelu\nadd b\ngap\nconv 5 k=1", norm, norm, norm);
    const bool overwritten[] = {[2] = true, [5] = true, [7] = true};
    cl_model *fast, *ref;
    if (!compile_pair(text, "in-place", n, threads, 3, &fast, &ref)) return;
    size_t np, nb;
    cl_real *p = cl_model_params(ref, &np), *b = cl_model_buffers(ref, &nb);
    for (size_t i = 0; i < np; i++) p[i] = uniform();
    memcpy(cl_model_params(fast, NULL), p, np * sizeof(cl_real));
    if (nb) memcpy(cl_model_buffers(fast, NULL), b, nb * sizeof(cl_real)); /* none with gn, ln */
    cl_shape in = cl_model_shape(ref, 0), out = cl_model_shape(ref, cl_model_output(ref));
    size_t nx = (size_t)n * in.c * in.h * in.w, no = (size_t)n * out.c;
    float *x = xmalloc(nx * sizeof(float)), *dout = xmalloc(no * sizeof(float));
    for (size_t k = 0; k < nx; k++) x[k] = uniform();
    for (size_t k = 0; k < no; k++) dout[k] = uniform();
    const float *yf = cl_model_forward(fast, x, n, true), *yr = cl_model_forward(ref, x, n, true);
    check_close("training output", yf, yr, no, 1e-5, 1e-4);
    for (int t = 0; t < 13; t++) {
        bool gone = cl_model_activation(fast, t) == NULL;
        if (t < (int)(sizeof overwritten / sizeof *overwritten) && overwritten[t] ? !gone : gone)
            t_fail("tensor %d: %s", t, gone ? "missing, though no ReLU runs over it" : "still given, though a ReLU ran over it");
    }
    if (backward_pair(fast, ref, dout, "parameter gradients") && nb)
        check_close("running statistics", cl_model_buffers(fast, NULL), b, nb, 1e-5, 1e-5);
    free(x);
    free(dout);
    cl_model_free(fast);
    cl_model_free(ref);
}

static void fused_inference_test(int f, int n, int threads) {
    cl_model *fast, *ref;
    if (!compile_pair(fused_models[f].text, "fused", n, threads, 5, &fast, &ref)) return;
    size_t np, nb, np2, nb2;
    cl_real *p = cl_model_params(ref, &np), *b = cl_model_buffers(ref, &nb);
    for (size_t i = 0; i < np; i++) p[i] = uniform();
    cl_shape in = cl_model_shape(ref, 0), out = cl_model_shape(ref, cl_model_output(ref));
    size_t nx = (size_t)n * in.c * in.h * in.w, no = (size_t)n * out.c * out.h * out.w;
    float *x = xmalloc(nx * sizeof(float)), *dout = xmalloc(no * sizeof(float));
    for (size_t k = 0; k < nx; k++) x[k] = uniform() + 0.5f;
    for (size_t k = 0; k < no; k++) dout[k] = uniform();
    cl_model_forward(ref, x, n, true); /* running statistics away from 0 and 1 */
    cl_model_forward(ref, x, n, true);
    memcpy(cl_model_params(fast, &np2), p, np * sizeof(cl_real));
    memcpy(cl_model_buffers(fast, &nb2), b, nb * sizeof(cl_real));
    for (size_t k = 0; k < nx; k++) x[k] = uniform();
    const float *yf = cl_model_forward(fast, x, n, false), *yr = cl_model_forward(ref, x, n, false);
    if (np2 != np || nb2 != nb || !yf || !yr) {
        t_fail("the two models differ or forward failed");
    } else {
        check_close("eval output", yf, yr, no, 1e-5, 1e-4);
        int t = fused_models[f].skipped;
        if (cl_model_activation(fast, t) != NULL)
            t_fail("tensor %d was stored: the conv -> bn span did not run fused", t);
        if (cl_model_activation(ref, t) == NULL) t_fail("the reference model did not store tensor %d", t);
        /* backward from eval mode: the fused model reruns its forward unfused */
        if (backward_pair(fast, ref, dout, "parameter gradients after an eval forward") &&
            cl_model_activation(fast, t) == NULL)
            t_fail("tensor %d still missing after the backward's unfused forward", t);
    }
    free(x);
    free(dout);
    cl_model_free(fast);
    cl_model_free(ref);
}

int main(void) {
    const char *norms[] = {"bn", "gn 4", "ln", "ln elementwise=1"};
    for (size_t k = 0; k < sizeof norms / sizeof *norms; k++)
        for (int n = 1; n <= 5; n += 4)
            for (int threads = 1; threads <= 2; threads++) {
                t_begin("ReLU in place vs reference, %s, batch %d, %d threads", norms[k], n, threads);
                in_place_relu_test(norms[k], n, threads);
                t_end();
            }
    for (int f = 0; f < (int)(sizeof fused_models / sizeof *fused_models); f++)
        for (int n = 1; n <= 5; n += 4)
            for (int threads = 1; threads <= 2; threads++) {
                const char *second = strchr(fused_models[f].text, '\n') + 1;
                t_begin("fused conv-bn-relu inference vs reference: %.*s..., batch %d, %d threads",
                        (int)strcspn(second, "\n"), second, n, threads);
                fused_inference_test(f, n, threads);
                t_end();
            }
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        for (int n = 1; n <= 5; n += 4)
            for (int threads = 1; threads <= 2; threads++) {
                const char *text = models[i];
                const char *first_line_end = strchr(text, '\n');
                const char *second = first_line_end + 1;
                t_begin("fast vs reference: %.*s, batch %d, %d threads",
                        (int)strcspn(second, "\n"), second, n, threads);
                char err[512];
                cl_model *probe = cl_parse_model(text, strlen(text), "kernels", NULL, err, sizeof err);
                if (!probe) {
                    t_fail("parse: %s", err);
                    t_end();
                    continue;
                }
                cl_shape in = cl_model_shape(probe, 0), out = cl_model_shape(probe, cl_model_output(probe));
                size_t nx = (size_t)n * in.c * in.h * in.w, no = (size_t)n * out.c * out.h * out.w;
                cl_model_free(probe);
                float *x = xmalloc(nx * sizeof(float)), *dout = xmalloc(no * sizeof(float));
                for (size_t k = 0; k < nx; k++) x[k] = uniform();
                for (size_t k = 0; k < no; k++) dout[k] = uniform();
                result fast = {0}, ref = {0};
                if (run(text, false, threads, n, x, dout, &fast) && run(text, true, threads, n, x, dout, &ref)) {
                    check_close("output", fast.out, ref.out, no, 1e-5, 1e-4);
                    check_close("input gradient", fast.dx, ref.dx, nx, 1e-5, 1e-4);
                    check_close("parameter gradients", fast.grads, ref.grads, ref.np, 1e-4, 1e-4);
                }
                cl_model_free(fast.m);
                cl_model_free(ref.m);
                free(x);
                free(dout);
                t_end();
            }
    return t_finish();
}
