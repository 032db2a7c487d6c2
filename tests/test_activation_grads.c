/* test_activation_grads.c: the gradients kept for inspection (compile option
 * keep_activation_grads, read with cl_model_activation_grad; Grad-CAM in
 * `cnnlab report` uses them) are the true gradients of the loss with respect to
 * each tensor.
 *
 * A model is cut in two at a tensor T that feeds two layers (a convolution and a
 * residual add, so its gradient is a sum): the head's kept gradient of T must equal
 * the input gradient of a second model made of the same layers after T, with the
 * same weights, fed the head's T. The input gradient itself is checked against
 * finite differences in test_gradcheck; this ties the kept gradients to it. Run in
 * training and evaluation mode, with 1 and 2 threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { N = 5, CLASSES = 4 };

/* conv(6) -> BN -> ReLU = T; the part after T: conv(6) -> BN -> ReLU, + T,
 * conv(8, stride 2) -> GAP -> conv 1x1 to the classes. */
static int build_tail(cl_model *m, int t) {
    cl_conv2d_args c3 = {.out_channels = 6, .kernel_h = 3, .pad_h = 1, .pad_w = 1};
    int x = cl_conv2d(m, t, c3);
    x = cl_norm(m, x, (cl_norm_args){.kind = CL_NORM_BATCH});
    x = cl_activation(m, x, CL_ACT_RELU, 0);
    x = cl_add(m, x, t);
    cl_conv2d_args down = {.out_channels = 8, .kernel_h = 3, .stride_h = 2, .pad_h = 1, .pad_w = 1};
    x = cl_conv2d(m, x, down);
    x = cl_global_avgpool(m, x);
    return cl_conv2d(m, x, (cl_conv2d_args){.out_channels = CLASSES, .kernel_h = 1});
}

static void run(bool train, int threads) {
    t_begin("kept activation gradients = the input gradient of the rest of the model (%s, %d thread%s)",
            train ? "train" : "eval", threads, threads > 1 ? "s" : "");
    cl_model *full = cl_model_new((cl_shape){3, 9, 9});
    int x = cl_conv2d(full, cl_input(full), (cl_conv2d_args){.out_channels = 6, .kernel_h = 3,
                                                             .pad_h = 1, .pad_w = 1});
    x = cl_norm(full, x, (cl_norm_args){.kind = CL_NORM_BATCH});
    int t = cl_activation(full, x, CL_ACT_RELU, 0);
    build_tail(full, t);
    cl_model *tail = cl_model_new((cl_shape){6, 9, 9});
    build_tail(tail, cl_input(tail));
    cl_compile_args fa = {.max_batch = N, .threads = threads, .seed = 3, .input_grad = true,
                          .keep_activation_grads = true};
    cl_compile_args ta = {.max_batch = N, .threads = threads, .seed = 4, .input_grad = true};
    if (cl_model_compile(full, fa) != CL_OK || cl_model_compile(tail, ta) != CL_OK) {
        t_fail("compile: %s %s", cl_model_error(full), cl_model_error(tail));
        goto out;
    }
    /* the tail's parameters are the last ones of the full model's (one layout, in
       layer order); BN buffers likewise */
    size_t nf, nt, bf, bt;
    cl_real *pf = cl_model_params(full, &nf), *pt = cl_model_params(tail, &nt);
    cl_real *uf = cl_model_buffers(full, &bf), *ut = cl_model_buffers(tail, &bt);
    if (nt >= nf || bt >= bf) {
        t_fail("unexpected parameter counts %zu/%zu, buffers %zu/%zu", nt, nf, bt, bf);
        goto out;
    }
    /* non-trivial weights and running statistics */
    for (size_t i = 0; i < nf; i++) pf[i] = (cl_real)(0.3 * sin(1.7 * (double)i + 0.4));
    for (size_t i = 0; i < bf; i++) uf[i] = (cl_real)(0.5 + 0.25 * cos((double)i));
    memcpy(pt, pf + (nf - nt), nt * sizeof *pt);
    memcpy(ut, uf + (bf - bt), bt * sizeof *ut);

    cl_real in[N * 9 * 9 * 3], dout[N * CLASSES];
    for (int i = 0; i < N * 9 * 9 * 3; i++) in[i] = (cl_real)sin(0.37 * i);
    for (int i = 0; i < N * CLASSES; i++) dout[i] = (cl_real)cos(0.9 * i);
    const cl_real *yf = cl_model_forward(full, in, N, train);
    const cl_real *tv = cl_model_activation(full, t);
    const cl_real *yt = yf && tv ? cl_model_forward(tail, tv, N, train) : NULL;
    if (!yf || !yt) {
        t_fail("forward: %s %s", cl_model_error(full), cl_model_error(tail));
        goto out;
    }
    for (int i = 0; i < N * CLASSES; i++)
        if (fabs((double)yf[i] - (double)yt[i]) > 1e-5) {
            t_fail("the two halves disagree on logit %d: %g vs %g", i, (double)yf[i], (double)yt[i]);
            goto out;
        }
    if (cl_model_backward(full, dout) != CL_OK || cl_model_backward(tail, dout) != CL_OK) {
        t_fail("backward: %s %s", cl_model_error(full), cl_model_error(tail));
        goto out;
    }
    const cl_real *kept = cl_model_activation_grad(full, t), *want = cl_model_input_grad(tail);
    if (!kept || !want) {
        t_fail("no gradient: kept %p, tail input %p", (const void *)kept, (const void *)want);
        goto out;
    }
    double maxabs = 0, maxerr = 0;
    for (int i = 0; i < N * 9 * 9 * 6; i++) {
        double e = fabs((double)kept[i] - (double)want[i]);
        if (e > maxerr) maxerr = e;
        if (fabs((double)want[i]) > maxabs) maxabs = fabs((double)want[i]);
    }
    if (maxabs < 1e-4) t_fail("the gradient of T is ~0 (max %g): the test would prove nothing", maxabs);
    if (maxerr > 1e-5 + 1e-4 * maxabs) t_fail("kept gradient of T differs by %g (max |grad| %g)", maxerr, maxabs);
    /* every tensor keeps one, and the input's equals cl_model_input_grad */
    for (int i = 0; i < cl_model_layer_count(full); i++)
        if (!cl_model_activation_grad(full, cl_model_layer(full, i).output))
            t_fail("layer %d (%s) kept no gradient", i, cl_model_layer(full, i).op);
    const cl_real *gin = cl_model_activation_grad(full, cl_input(full)), *gin2 = cl_model_input_grad(full);
    if (!gin || !gin2 || memcmp(gin, gin2, sizeof(cl_real) * N * 9 * 9 * 3) != 0)
        t_fail("the input's kept gradient is not cl_model_input_grad");
out:
    cl_model_free(full);
    cl_model_free(tail);
    t_end();
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        run(true, threads);
        run(false, threads);
    }
    /* without keep_activation_grads, intermediate gradients are not promised */
    t_begin("without keep_activation_grads no intermediate gradient is returned");
    cl_model *m = cl_model_new((cl_shape){3, 9, 9});
    int x = cl_conv2d(m, cl_input(m), (cl_conv2d_args){.out_channels = 4, .kernel_h = 3, .pad_h = 1, .pad_w = 1});
    int y = cl_activation(m, x, CL_ACT_RELU, 0);
    cl_global_avgpool(m, y);
    if (cl_model_compile(m, (cl_compile_args){.max_batch = 2, .threads = 1}) != CL_OK)
        t_fail("compile: %s", cl_model_error(m));
    else if (cl_model_activation_grad(m, x) != NULL)
        t_fail("an intermediate gradient was returned without keep_activation_grads");
    cl_model_free(m);
    t_end();
    return t_finish();
}
