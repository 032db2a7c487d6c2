/* test_e2e.c: a small residual conv/BN/ReLU network end to end against PyTorch
 * (tests/ref/e2e.bin, computed in float64): the loss and every parameter gradient at
 * step 0, then the losses of 10 SGD steps (momentum, weight decay) on one batch in
 * train mode and the BatchNorm running statistics after the 11 forwards. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

#define FIXTURE "tests/ref/e2e.bin" /* or argv[1] */
#define STEPS 10

/* Forward in train mode, cross entropy, and (when d is not NULL) dlogits into d. */
static bool loss_of(cl_model *m, const float *x, const int32_t *labels, int n, int k, float *d,
                    double *loss) {
    const float *y = cl_model_forward(m, x, n, true);
    if (!y) {
        t_fail("forward: %s", cl_model_error(m));
        return false;
    }
    *loss = cl_cross_entropy(y, labels, n, k, 0.0f, d);
    return true;
}

static void run_case(const fx_case *c) {
    double atol, rtol, latol, lrtol, aatol, artol;
    fx_tol(c, "tol", &atol, &rtol);
    fx_tol(c, "tol.losses", &latol, &lrtol);
    fx_tol(c, "tol.after", &aatol, &artol);
    const fx_tensor *x = fx_need(c, "x"), *labels = fx_need(c, "labels"),
                    *loss0 = fx_need(c, "loss0"), *sgd = fx_need(c, "sgd"),
                    *losses = fx_need(c, "losses");
    if (!x || !labels || !loss0 || !sgd || !losses) return;
    if (x->ndim != 4 || labels->numel != (size_t)x->dims[0] || sgd->numel != 3 ||
        losses->numel != STEPS + 1) {
        t_fail("fixture case %s is malformed", c->name);
        return;
    }
    int n = (int)x->dims[0];
    cl_model *m = fx_model(c, (cl_compile_args){.max_batch = n, .threads = 2, .seed = 1});
    if (!m) return;
    cl_shape os = cl_model_shape(m, cl_model_output(m));
    int k = os.c;
    float *xin = NULL, *d = NULL;
    int32_t *lab = fx_labels(labels);
    cl_optimizer *opt = NULL;
    cl_status st;
    if (os.h != 1 || os.w != 1) {
        t_fail("model output is %dx%dx%d, not Kx1x1", os.c, os.h, os.w);
        goto done;
    }
    fx_load_state(m, c);

    /* Step 0: loss and gradients. */
    xin = fx_to_nhwc(x);
    d = xmalloc((size_t)n * (size_t)k * sizeof *d);
    float got[STEPS + 1];
    double loss;
    cl_model_zero_grad(m);
    if (!loss_of(m, xin, lab, n, k, d, &loss)) goto done;
    got[0] = (float)loss;
    check_close("loss0", got, loss0->data, 1, atol, rtol);
    if ((st = cl_model_backward(m, d)) != CL_OK) {
        t_fail("backward: status %d: %s", (int)st, cl_model_error(m));
        goto done;
    }
    int ngrad = fx_check_tensors(m, c, "grad.", true, atol, rtol);
    if (ngrad == 0) t_fail("fixture has no gradients");

    /* SGD: step, then zero_grad, forward, loss, backward, for 10 steps. */
    t_begin("e2e/%s sgd losses", c->name);
    float lr = sgd->data[0];
    opt = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_SGD, .lr = lr,
                                              .momentum = sgd->data[1],
                                              .weight_decay = sgd->data[2]});
    if (!opt) {
        t_fail("cl_optimizer_new failed");
        goto done;
    }
    for (int s = 1; s <= STEPS; s++) {
        cl_optimizer_step(opt, lr);
        cl_model_zero_grad(m);
        if (!loss_of(m, xin, lab, n, k, d, &loss)) goto done;
        got[s] = (float)loss;
        if (s < STEPS && (st = cl_model_backward(m, d)) != CL_OK) {
            t_fail("backward at step %d: status %d: %s", s, (int)st, cl_model_error(m));
            goto done;
        }
    }
    if (!check_close("losses", got, losses->data, STEPS + 1, latol, lrtol)) {
        char line[512];
        int off = 0;
        for (int s = 0; s <= STEPS && off < (int)sizeof line - 40; s++)
            off += snprintf(line + off, sizeof line - (size_t)off, " %d:%.6f/%.6f", s, got[s],
                            losses->data[s]);
        t_fail("losses got/want:%s", line);
    }
    t_begin("e2e/%s running statistics after 11 forwards", c->name);
    if (fx_check_tensors(m, c, "after.", false, aatol, artol) == 0)
        t_fail("fixture has no running statistics");
done:
    if (opt) cl_optimizer_free(opt);
    free(xin);
    free(d);
    free(lab);
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
        t_begin("e2e/%s loss0 and gradients", f->cases[i].name);
        run_case(&f->cases[i]);
        t_end();
    }
    fx_free(f);
    return t_finish();
}
