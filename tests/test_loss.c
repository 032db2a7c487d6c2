/* test_loss.c: cl_cross_entropy against PyTorch's F.cross_entropy (mean reduction,
 * label smoothing 0 and 0.1, saturated logits) from tests/ref/loss.bin: the loss
 * and d(loss)/d(logits). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnnlab.h"
#include "harness.h"

#define FIXTURE "tests/ref/loss.bin" /* or argv[1] */

static void run_case(const fx_case *c) {
    double atol, rtol;
    fx_tol(c, "tol", &atol, &rtol);
    const fx_tensor *logits = fx_need(c, "logits"), *labels = fx_need(c, "labels"),
                    *smoothing = fx_need(c, "smoothing"), *loss = fx_need(c, "loss"),
                    *dlogits = fx_need(c, "dlogits");
    if (!logits || !labels || !smoothing || !loss || !dlogits) return;
    if (logits->ndim != 2 || labels->numel != (size_t)logits->dims[0] ||
        dlogits->numel != logits->numel || loss->numel != 1 || smoothing->numel != 1) {
        t_fail("fixture case %s is malformed", c->name);
        return;
    }
    int n = (int)logits->dims[0], k = (int)logits->dims[1];
    int32_t *lab = fx_labels(labels);
    float *d = xmalloc(logits->numel * sizeof *d);
    float got = (float)cl_cross_entropy(logits->data, lab, n, k, smoothing->data[0], d);
    check_close("loss", &got, loss->data, 1, atol, rtol);
    check_close("dlogits", d, dlogits->data, logits->numel, atol, rtol);
    float got2 = (float)cl_cross_entropy(logits->data, lab, n, k, smoothing->data[0], NULL);
    check_close("loss without dlogits", &got2, loss->data, 1, atol, rtol);
    free(d);
    free(lab);
}

int main(int argc, char **argv) {
    char err[512];
    fx_file *f = fx_load(argc > 1 ? argv[1] : FIXTURE, err, sizeof err);
    if (!f) {
        t_fail("%s", err);
        return t_finish();
    }
    for (int i = 0; i < f->ncases; i++) {
        t_begin("loss/%s", f->cases[i].name);
        run_case(&f->cases[i]);
        t_end();
    }
    fx_free(f);
    return t_finish();
}
