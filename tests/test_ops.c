/* test_ops.c: every layer against PyTorch (tests/ref/ops.bin). Each case builds its
 * model through the real parser, loads the fixture's state_dict, and compares the
 * forward output, the input gradient, every parameter gradient and the buffers
 * after the forward (BatchNorm running statistics). Every case runs with 2 threads
 * and with 1, and the two runs must also agree with each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

#define FIXTURE "tests/ref/ops.bin" /* or argv[1] */

typedef struct {
    float *out, *dx; /* NCHW, for comparing the thread splits */
    size_t nout, ndx;
} results;

static void run_case(const fx_case *c, int threads, results *res) {
    double atol, rtol;
    fx_tol(c, "tol", &atol, &rtol);
    const fx_tensor *x = fx_need(c, "x"), *want_out = fx_need(c, "out"),
                    *dout = fx_need(c, "dout"), *want_dx = fx_need(c, "dx");
    if (!x || !want_out || !dout || !want_dx) return;
    if (x->ndim != 4 || want_out->ndim != 4 || dout->numel != want_out->numel ||
        want_dx->numel != x->numel) {
        t_fail("fixture case %s has malformed x/out/dout/dx", c->name);
        return;
    }
    bool train = c->flags & FX_FLAG_TRAIN, input_grad = c->flags & FX_FLAG_INPUT_GRAD;
    int n = (int)x->dims[0];

    cl_model *m = fx_model(c, (cl_compile_args){.max_batch = n, .threads = threads, .seed = 1,
                                                .input_grad = input_grad});
    if (!m) return;
    cl_shape in = cl_model_shape(m, cl_input(m));
    if (in.c != x->dims[1] || in.h != x->dims[2] || in.w != x->dims[3]) {
        t_fail("model input %dx%dx%d, fixture x is %lldx%lldx%lld", in.c, in.h, in.w,
               (long long)x->dims[1], (long long)x->dims[2], (long long)x->dims[3]);
        goto done;
    }
    cl_shape os = cl_model_shape(m, cl_model_output(m));
    if (os.c != want_out->dims[1] || os.h != want_out->dims[2] || os.w != want_out->dims[3]) {
        t_fail("model output %dx%dx%d, PyTorch %lldx%lldx%lld", os.c, os.h, os.w,
               (long long)want_out->dims[1], (long long)want_out->dims[2],
               (long long)want_out->dims[3]);
        goto done;
    }
    fx_load_state(m, c); /* it must cover exactly the model's tensors */

    /* Forward. */
    size_t nout = want_out->numel;
    float *xin = fx_to_nhwc(x);
    float *got = xmalloc(nout * sizeof *got);
    const float *y = cl_model_forward(m, xin, n, train);
    if (!y) {
        t_fail("forward: %s", cl_model_error(m));
        free(xin);
        free(got);
        goto done;
    }
    cl_nhwc_to_nchw(got, y, n, os.c, os.h, os.w);
    check_close("out", got, want_out->data, nout, atol, rtol);
    res->out = got;
    res->nout = nout;
    free(xin);

    /* Backward from dout. */
    cl_model_zero_grad(m);
    float *d = fx_to_nhwc(dout);
    cl_status st = cl_model_backward(m, d);
    free(d);
    if (st != CL_OK) {
        t_fail("backward: status %d: %s", (int)st, cl_model_error(m));
        goto done;
    }
    if (input_grad) {
        const float *dx = cl_model_input_grad(m);
        if (!dx) {
            t_fail("cl_model_input_grad returned NULL");
        } else {
            float *g = xmalloc(x->numel * sizeof *g);
            cl_nhwc_to_nchw(g, dx, n, in.c, in.h, in.w);
            check_close("dx", g, want_dx->data, x->numel, atol, rtol);
            res->dx = g;
            res->ndx = x->numel;
        }
    }
    int ntrain = 0;
    for (int i = 0; i < cl_model_tensor_count(m); i++) ntrain += cl_model_tensor(m, i).trainable;
    int ngrad = fx_check_tensors(m, c, "grad.", true, atol, rtol);
    if (ngrad != ntrain) t_fail("PyTorch has %d parameter gradients, the model %d", ngrad, ntrain);
    fx_check_tensors(m, c, "after.", false, atol, rtol);
done:
    cl_model_free(m);
}

int main(int argc, char **argv) {
    char err[512];
    fx_file *f = fx_load(argc > 1 ? argv[1] : FIXTURE, err, sizeof err);
    if (!f) {
        t_fail("%s", err);
        return t_finish();
    }
    for (int i = 0; i < f->ncases; i++) {
        const fx_case *c = &f->cases[i];
        results r2 = {0}, r1 = {0};
        t_begin("ops/%s threads=2", c->name);
        run_case(c, 2, &r2);
        t_end();
        t_begin("ops/%s threads=1", c->name);
        run_case(c, 1, &r1);
        double atol, rtol;
        fx_tol(c, "tol", &atol, &rtol);
        if (r1.out && r2.out) check_close("out threads=1 vs 2", r1.out, r2.out, r1.nout, atol, rtol);
        if (r1.dx && r2.dx) check_close("dx threads=1 vs 2", r1.dx, r2.dx, r1.ndx, atol, rtol);
        t_end();
        free(r1.out);
        free(r1.dx);
        free(r2.out);
        free(r2.dx);
    }
    fx_free(f);
    return t_finish();
}
