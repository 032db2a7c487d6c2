/* test_lr_find.c: the learning-rate range test's pure parts (src/nn/lr_find.c)
 * against tests/ref/lr_find.bin, which tests/ref/gen_lr_find.py makes by running
 * torch-lr-finder's range_test loop (its ExponentialLR on a torch optimizer) and
 * its plot's suggestion on fixed loss sequences: the learning rates, the smoothed
 * losses, the step where the test stops, and the suggested index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FIXTURE "tests/ref/lr_find.bin"

static void check_case(const fx_case *c) {
    t_begin("lr_find/%s: lrs, smoothed losses, stop and suggestion are torch-lr-finder's", c->name);
    const fx_tensor *loss = fx_need(c, "loss"), *params = fx_need(c, "params");
    const fx_tensor *lr = fx_need(c, "lr"), *smoothed = fx_need(c, "smoothed");
    const fx_tensor *suggest = fx_need(c, "suggest");
    if (!loss || !params || !lr || !smoothed || !suggest) {
        t_end();
        return;
    }
    double start = params->data[0], end = params->data[1], smooth_f = params->data[3];
    double diverge = params->data[4];
    int steps = (int)params->data[2];
    float *got_lr = xmalloc((size_t)steps * sizeof *got_lr);
    float *got_sm = xmalloc((size_t)steps * sizeof *got_sm);
    double *sm = xmalloc((size_t)steps * sizeof *sm);
    cl_lr_find_state st = {0};
    int ran = 0;
    for (int i = 0; i < steps; i++) {
        got_lr[i] = (float)cl_lr_find_lr(start, end, steps, i);
        /* the schedule is the formula itself */
        double formula = start * pow(end / start, (double)i / (steps - 1));
        if (fabs(got_lr[i] - formula) > 1e-6 * formula) t_fail("lr %d: %g, formula %g", i, got_lr[i], formula);
        /* fed as the float32 the fixture stores, as torch-lr-finder got them */
        bool stop = cl_lr_find_step(&st, loss->data[i], smooth_f, diverge, &sm[i]);
        got_sm[i] = (float)sm[i];
        ran = i + 1;
        if (stop) break;
    }
    if ((size_t)ran != lr->numel) {
        t_fail("stopped after %d steps, torch-lr-finder after %zu", ran, lr->numel);
    } else {
        check_close("lr", got_lr, lr->data, (size_t)ran, 0, 1e-6);
        check_close("smoothed", got_sm, smoothed->data, (size_t)ran, 0, 1e-6);
        int s = cl_lr_find_suggest(sm, ran, 10, 5);
        if (s != (int)suggest->data[0]) t_fail("suggestion at %d, torch-lr-finder at %d", s, (int)suggest->data[0]);
        else if (s >= 0 && fabs(got_lr[s] - suggest->data[1]) > 1e-6 * suggest->data[1])
            t_fail("suggested lr %g, torch-lr-finder %g", got_lr[s], suggest->data[1]);
    }
    free(got_lr);
    free(got_sm);
    free(sm);
    t_end();
}

static void check_non_finite(void) {
    t_begin("lr_find/a NaN or Inf loss stops the test");
    cl_lr_find_state st = {0};
    double sm;
    if (cl_lr_find_step(&st, 2.0, 0.05, 5, &sm) || cl_lr_find_step(&st, 1.9, 0.05, 5, &sm))
        t_fail("stopped on finite losses");
    if (!cl_lr_find_step(&st, NAN, 0.05, 5, &sm)) t_fail("a NaN loss did not stop the test");
    cl_lr_find_state st2 = {0};
    cl_lr_find_step(&st2, 2.0, 0.05, 5, &sm);
    if (!cl_lr_find_step(&st2, INFINITY, 0.05, 5, &sm)) t_fail("an infinite loss did not stop the test");
    t_end();
}

int main(void) {
    char err[512];
    fx_file *f = fx_load(FIXTURE, err, sizeof err);
    if (!f) {
        t_begin("lr_find/fixture");
        t_fail("%s", err);
        t_end();
        return t_finish();
    }
    for (int i = 0; i < f->ncases; i++) check_case(&f->cases[i]);
    fx_free(f);
    check_non_finite();
    return t_finish();
}
