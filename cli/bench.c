/* bench.c: `cnnlab bench MODEL [--batch B] [--threads T] [--steps N]`: training and
 * inference throughput on synthetic data after a warm-up, in images per second and
 * GFLOP/s, with the fraction of this machine's measured FMA peak and the peak RSS. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Independent FMA chains on every thread: the machine's arithmetic ceiling. */
typedef float vec16 __attribute__((vector_size(64)));

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
static double fma_peak_gflops(int threads) {
    const long iters = 20000000;
    double t0 = now_seconds();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        vec16 a[12], x = {0}, y = {0};
        for (int i = 0; i < 16; i++) {
            x[i] = 1.0f + 1e-7f * (float)i;
            y[i] = 1e-7f;
        }
        for (int k = 0; k < 12; k++) a[k] = y * (float)k;
        for (long i = 0; i < iters; i++)
            for (int k = 0; k < 12; k++) a[k] = a[k] * x + y;
        for (int k = 0; k < 12; k++) sink += a[k][0];
    }
    double t = now_seconds() - t0;
    if (sink == 12345.0f) printf(" ");
    return (double)iters * 12 * 16 * 2 * threads / t / 1e9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

typedef struct {
    long long batch, threads, steps, infer_batch;
} bench_options;

static const cli_option bench_options_table[] = {
    {"batch", OPT_INT, offsetof(bench_options, batch), "training batch size", .def = "128",
     .min = 1, .max = 65536},
    {"threads", OPT_INT, offsetof(bench_options, threads), "compute threads",
     .def = "0, all cores", .min = 0, .max = 1024},
    {"steps", OPT_INT, offsetof(bench_options, steps), "timed training steps (inference: a third)",
     .def = "30", .min = 1, .max = 1000000},
    {"infer-batch", OPT_INT, offsetof(bench_options, infer_batch), "inference batch size",
     .def = "1000", .min = 1, .max = 65536},
    {0},
};

static int cmd_bench(int argc, char **argv);

const cli_command bench_command = {
    .name = "bench",
    .operands = "MODEL",
    .summary = "training and inference throughput on synthetic data",
    .description =
        "Times training steps (forward, loss, backward, SGD) and inference on synthetic\n"
        "data after a warm-up, and prints images per second, GFLOP/s, the fraction of\n"
        "this machine's measured FMA peak and the peak RSS.",
    .options = bench_options_table,
    .run = cmd_bench,
};

static int cmd_bench(int argc, char **argv) {
    bench_options o = {.batch = 128, .threads = 0, .steps = 30, .infer_batch = 1000};
    const char *path = NULL;
    int n = cli_parse(&bench_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (!path) {
        cli_print_usage(&bench_command, stderr);
        return EXIT_USAGE;
    }
    int batch = (int)o.batch, threads = (int)o.threads, steps = (int)o.steps;
    int infer_batch = (int)o.infer_batch;
    char err[1024];
    cl_model *m = cl_load_model(path, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int max_batch = batch > infer_batch ? batch : infer_batch;
    if (cl_model_compile(m, (cl_compile_args){.max_batch = max_batch, .threads = threads, .seed = 1}) != CL_OK) {
        cli_error("%s", cl_model_error(m));
        cl_model_free(m);
        return 1;
    }
    cl_shape in = cl_model_shape(m, 0), out = cl_model_shape(m, cl_model_output(m));
    size_t isz = (size_t)in.c * in.h * in.w, osz = (size_t)out.c * out.h * out.w;
    cl_real *x = malloc((size_t)max_batch * isz * sizeof(cl_real));
    cl_real *dout = malloc((size_t)batch * osz * sizeof(cl_real));
    int32_t *labels = malloc((size_t)batch * sizeof(int32_t));
    cl_optimizer *opt = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_SGD, .momentum = 0.9f});
    if (!x || !dout || !labels || !opt) {
        cli_error("out of memory");
        return 1;
    }
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)max_batch * isz; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (cl_real)((double)(s >> 40) / (1 << 24) * 2 - 1);
    }
    for (int i = 0; i < batch; i++) labels[i] = i % (int)osz;
    int64_t macs = 0;
    for (int i = 0; i < cl_model_layer_count(m); i++) macs += cl_model_layer(m, i).macs;
    int nthreads = threads;
#ifdef _OPENMP
    if (nthreads <= 0) nthreads = omp_get_num_procs();
#else
    nthreads = 1;
#endif

    /* training: forward, loss, backward, SGD step */
    double t_train = 0;
    for (int it = 0; it < steps + 5; it++) {
        double t0 = now_seconds();
        const cl_real *logits = cl_model_forward(m, x, batch, true);
        cl_cross_entropy(logits, labels, batch, (int)osz, 0, dout);
        cl_model_zero_grad(m);
        cl_model_backward(m, dout);
        cl_optimizer_step(opt, 0.01f);
        if (it >= 5) t_train += now_seconds() - t0; /* after a 5-step warm-up */
    }
    double train_ips = steps * (double)batch / t_train;
    /* inference (eval mode) */
    int infer_steps = steps / 3 > 3 ? steps / 3 : 3;
    double t_inf = 0;
    for (int it = 0; it < infer_steps + 1; it++) {
        double t0 = now_seconds();
        cl_model_forward(m, x, infer_batch, false);
        if (it >= 1) t_inf += now_seconds() - t0;
    }
    double infer_ips = infer_steps * (double)infer_batch / t_inf;
    double peak = fma_peak_gflops(nthreads);
    /* FLOPs: a multiply-add is 2; training does the forward and two backward products */
    double train_gflops = train_ips * macs * 6 / 1e9, infer_gflops = infer_ips * macs * 2 / 1e9;
    printf("model: %s (%lld parameters, %.2f M MACs per image)\n", path,
           (long long)cl_model_param_count(m), macs / 1e6);
    printf("threads: %d, batch: %d, inference batch: %d\n", nthreads, batch, infer_batch);
    printf("train:     %9.0f img/s  %7.1f GFLOP/s  %5.1f%% of peak  (%.2f ms per step)\n", train_ips,
           train_gflops, 100 * train_gflops / peak, 1e3 * t_train / steps);
    printf("inference: %9.0f img/s  %7.1f GFLOP/s  %5.1f%% of peak\n", infer_ips, infer_gflops,
           100 * infer_gflops / peak);
    printf("peak: %.0f GFLOP/s measured (FMA chains on %d threads); peak RSS %.0f MB\n", peak,
           nthreads, peak_rss_mb());
    free(x);
    free(dout);
    free(labels);
    cl_optimizer_free(opt);
    cl_model_free(m);
    return 0;
}
