/* test_dropout.c: dropout's masks, which no PyTorch fixture can match (the random
 * streams differ): in training about p of the elements are zeroed and the rest scaled
 * by 1/(1-p); the backward applies the same mask; each training step draws a new mask
 * and the same step the same one, whatever the thread count; evaluation is the
 * identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { N = 16, SIZE = 8 * 16 * 16 };

static cl_model *build(int threads) {
    char err[256];
    const char *text = "input 8x16x16\ndropout 0.3";
    cl_model *m = cl_parse_model(text, strlen(text), "dropout", NULL, err, sizeof err);
    if (!m || cl_model_compile(m, (cl_compile_args){.max_batch = N, .threads = threads, .seed = 9,
                                                    .input_grad = true}) != CL_OK) {
        t_fail("build: %s", m ? cl_model_error(m) : err);
        return NULL;
    }
    return m;
}

int main(void) {
    float *x = xmalloc((size_t)N * SIZE * sizeof(float)), *ones = xmalloc((size_t)N * SIZE * sizeof(float));
    float *first = xmalloc((size_t)N * SIZE * sizeof(float));
    for (int i = 0; i < N * SIZE; i++) {
        x[i] = 1.0f + (float)(i % 97) / 97.0f; /* never 0, so a zero is a dropped element */
        ones[i] = 1.0f;
    }

    t_begin("dropout: rate, scale, and the backward's mask");
    cl_model *m = build(2);
    if (m) {
        const float *out = cl_model_forward(m, x, N, true);
        long zeros = 0, bad = 0;
        for (int i = 0; i < N * SIZE; i++) {
            if (out[i] == 0) zeros++;
            else if (fabsf(out[i] - x[i] / 0.7f) > 1e-5f * x[i]) bad++;
        }
        double rate = (double)zeros / (N * SIZE);
        /* 32,768 draws: the standard deviation of the rate is 0.0025 */
        if (fabs(rate - 0.3) > 0.015) t_fail("dropped %.4f of the elements, expected 0.3", rate);
        if (bad) t_fail("%ld kept elements are not x / (1 - p)", bad);
        memcpy(first, out, (size_t)N * SIZE * sizeof(float));
        cl_model_backward(m, ones);
        const float *dx = cl_model_input_grad(m);
        for (int i = 0; i < N * SIZE; i++)
            if ((first[i] == 0) != (dx[i] == 0) || (dx[i] != 0 && fabsf(dx[i] - 1 / 0.7f) > 1e-6f)) {
                t_fail("the backward's mask differs from the forward's at %d", i);
                break;
            }
        /* the next step: another mask; the same step again: the same mask */
        const float *out2 = cl_model_forward(m, x, N, true);
        long same = 0;
        for (int i = 0; i < N * SIZE; i++) same += (out2[i] == 0) == (first[i] == 0);
        if (same == N * SIZE) t_fail("two training steps drew the same mask");
        cl_model_set_step(m, cl_model_step(m) - 2);
        const float *out3 = cl_model_forward(m, x, N, true);
        if (memcmp(out3, first, (size_t)N * SIZE * sizeof(float))) t_fail("the same step drew another mask");
        const float *ev = cl_model_forward(m, x, N, false);
        if (memcmp(ev, x, (size_t)N * SIZE * sizeof(float))) t_fail("evaluation is not the identity");
        cl_model_free(m);
    }
    t_end();

    t_begin("dropout: the mask does not depend on the thread count");
    cl_model *one = build(1);
    if (one) {
        const float *out = cl_model_forward(one, x, N, true);
        if (memcmp(out, first, (size_t)N * SIZE * sizeof(float))) t_fail("1 thread and 2 threads differ");
        cl_model_free(one);
    }
    t_end();

    free(x);
    free(ones);
    free(first);
    return t_finish();
}
