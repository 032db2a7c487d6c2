/* steps.c: a fixed amount of work for load-independent measurements: S training
 * steps (forward, cross-entropy, backward, SGD with momentum) at batch B and S eval
 * forwards, on synthetic data, all inside one function, run_steps, so that
 * `valgrind --tool=callgrind --toggle-collect=run_steps` counts the instructions of
 * exactly that work (repeatable to the instruction on a loaded machine) and
 * `perf stat` or the printed CPU time of one thread can be compared between builds.
 *
 *   bench/steps MODEL [--batch B] [--steps S] [--threads T] [--eval-only] [--train-only]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnlab.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((noinline)) static void run_steps(cl_model *m, cl_optimizer *opt, const float *x,
                                                const int32_t *labels, float *dout, int batch,
                                                int classes, int steps, bool train, bool eval) {
    for (int it = 0; it < steps; it++) {
        if (train) {
            const float *logits = cl_model_forward(m, x, batch, true);
            cl_cross_entropy(logits, labels, batch, classes, 0, dout);
            cl_model_zero_grad(m);
            cl_model_backward(m, dout);
            cl_optimizer_step(opt, 0.01f);
        }
        if (eval) cl_model_forward(m, x, batch, false);
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int batch = 16, steps = 3, threads = 1;
    bool train = true, eval = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--eval-only")) train = false;
        else if (!strcmp(argv[i], "--train-only")) eval = false;
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else {
            fprintf(stderr, "usage: steps MODEL [--batch B] [--steps S] [--threads T] "
                            "[--eval-only] [--train-only]\n");
            return 2;
        }
    }
    if (!path || batch < 1 || steps < 1) {
        fprintf(stderr, "usage: steps MODEL [--batch B] [--steps S] [--threads T] "
                        "[--eval-only] [--train-only]\n");
        return 2;
    }
    char err[1024];
    cl_model *m = cl_load_model(path, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (cl_model_compile(m, (cl_compile_args){.max_batch = batch, .threads = threads, .seed = 1}) != CL_OK) {
        fprintf(stderr, "%s\n", cl_model_error(m));
        return 1;
    }
    cl_shape in = cl_model_shape(m, 0), out = cl_model_shape(m, cl_model_output(m));
    size_t isz = (size_t)in.c * in.h * in.w;
    int classes = out.c * out.h * out.w;
    float *x = malloc((size_t)batch * isz * sizeof(float));
    float *dout = malloc((size_t)batch * classes * sizeof(float));
    int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
    cl_optimizer *opt = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_SGD, .momentum = 0.9f});
    if (!x || !dout || !labels || !opt) return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)batch * isz; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 40) / (1 << 24) * 2 - 1);
    }
    for (int i = 0; i < batch; i++) labels[i] = i % classes;
    run_steps(m, opt, x, labels, dout, batch, classes, 1, train, eval); /* warm-up */
    double t0 = cpu_seconds();
    run_steps(m, opt, x, labels, dout, batch, classes, steps, train, eval);
    printf("cpu %.4f s for %d steps of batch %d (%s%s)\n", cpu_seconds() - t0, steps, batch,
           train ? "train" : "", eval ? (train ? "+eval" : "eval") : "");
    free(x);
    free(dout);
    free(labels);
    cl_optimizer_free(opt);
    cl_model_free(m);
    return 0;
}
