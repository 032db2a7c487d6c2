/* test_deploy.c: the C export (src/deploy/) end to end. For the four shipped models
 * (trained briefly on a subset, so that BatchNorm statistics and weights are not
 * their initial values) and two models that together use every layer kind:
 * - the library's inference form (BatchNorm folded, dropout left out) against
 *   cnnlab's forward on 100 test images;
 * - model.c written, compiled with cc -std=c99 -Wall -Wextra -Werror -pedantic -O2
 *   and linked with tests/deploy/main.c; its logits against cnnlab's (max abs
 *   difference 1e-5);
 * - the int8 export, calibrated on 100 training images: the compiled model.c's
 *   logits equal the library's int8 reference bit for bit;
 * and it prints each export's batch-1 latency and `size model.o`.
 * Real CIFAR-10 and MNIST images are used when the data is found (./data,
 * ../shared/data or $CNNLAB_DATA), random images otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cnnlab.h"
#include "deploy/quantize.h"
#include "harness.h"
#include "io/registry.h"

#define NTEST 100
#define NCALIB 100
#define WORK "build/tests/deploy_work"
#define STRICT "-std=c99 -Wall -Wextra -Werror -pedantic -O2"

/* Every layer kind: conv (groups, dilation, stride, no bias), BatchNorm folded and
 * standalone, GroupNorm, LayerNorm per channel and per element, ReLU fused and
 * standalone, LeakyReLU, GELU, SiLU, Hardswish, max and average pooling with padding, gap, dropout,
 * add, concat, flatten, linear (last: float logits from int32 in int8). */
static const char *every_kind =
    "# a comment that must not end model.c's: */ /* ?\?/ ?\?=\n"
    "input 3x16x16\n"
    "defaults norm=bn act=relu\n"
    "block 8 k=3 pad=1 as=a\n"
    "conv 8 k=3 pad=1 groups=2 bias=0\n"
    "leakyrelu slope=0.1\n"
    "maxpool 3 stride=2 pad=1\n"
    "bn\n"
    "gn 2 as=g\n"
    "block 8 k=3 pad=2 dilation=2 norm=ln act=gelu dropout=0.1\n"
    "add g\n"
    "ln elementwise=1 as=l\n"
    "conv 4 k=1 from=g as=c1\n"
    "concat l c1\n"
    "relu\n"
    "sepblock 12 k=3 pad=1 act=hardswish init=dirac\n"
    "avgpool 2 pad=1\n"
    "conv 16 k=3 stride=2 pad=1\n"
    "gap\n"
    "flatten\n"
    "linear 20\n"
    "silu\n"
    "linear 20\n"
    "hardswish\n"
    "gelu\n"
    "dropout 0.2\n"
    "linear 10\n";

/* Class names model.c must quote: quotes, backslashes, trigraphs, UTF-8. */
static const char *const hostile_names[10] = {"a\"b", "back\\slash", "?\?(", "?\?/", "caf\303\251",
                                              "*/", "tab\there", "%s%d", "", "nine"};

/* The output is not a convolution's (int8: dequantized int8 logits); a ReLU that
 * follows a convolution read twice is not fused. */
static const char *dequant_tail =
    "input 1x12x12\n"
    "conv 6 k=3 as=c\n"
    "relu\n"
    "add c\n"
    "conv 10 k=3 stride=2\n"
    "gap\n";

typedef struct {
    const char *name;
    const char *path; /* model file, or NULL for text */
    const char *text;
    const char *data; /* "cifar10", "mnist" or NULL (random images) */
} model_case;

/* Random uint8 images and labels, deterministic. */
static void random_dataset(cl_dataset *ds, int n, cl_shape s, int classes, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->c = s.c;
    ds->h = s.h;
    ds->w = s.w;
    ds->classes = classes;
    size_t bytes = (size_t)n * s.c * s.h * s.w;
    ds->images = malloc(bytes);
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    for (size_t i = 0; i < bytes; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        ds->images[i] = (uint8_t)(seed >> 56);
    }
    for (int i = 0; i < n; i++) ds->labels[i] = i % classes;
}

static bool load_split(const char *data, cl_split split, cl_dataset *ds) {
    const char *roots[] = {getenv("CNNLAB_DATA"), "data", "../shared/data"};
    char dir[1024], err[512];
    for (int r = 0; r < 3; r++) {
        if (!roots[r]) continue;
        if (!strcmp(data, "cifar10")) {
            snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", roots[r]);
            if (cl_load_cifar10(dir, split, ds, err, sizeof err) == CL_OK) return true;
        } else {
            snprintf(dir, sizeof dir, "%s/mnist", roots[r]);
            if (cl_load_mnist_dir(dir, split, NULL, ds, err, sizeof err) == CL_OK) return true;
        }
    }
    return false;
}

/* Image i as NHWC normalised floats (as `cnnlab eval` feeds the model) and as CHW
 * pixels on the 0..1 scale (as the export takes them). */
static void image_nhwc(const cl_dataset *ds, int i, const float *mean, const float *std, float *x) {
    size_t n = (size_t)ds->h * ds->w * ds->c;
    const uint8_t *img = ds->images + (size_t)i * n;
    for (size_t k = 0; k < n; k++)
        x[k] = (float)((img[k] / 255.0 - mean[k % ds->c]) / std[k % ds->c]);
}
static void image_chw(const cl_dataset *ds, int i, float *x) {
    size_t hw = (size_t)ds->h * ds->w;
    const uint8_t *img = ds->images + (size_t)i * hw * ds->c;
    for (int c = 0; c < ds->c; c++)
        for (size_t p = 0; p < hw; p++) x[c * hw + p] = img[p * ds->c + c] / 255.0f;
}

/* A few SGD steps on the first images of ds, so the weights and BatchNorm
 * statistics are trained values. */
static bool short_train(cl_model *m, const cl_dataset *ds, const float *mean, const float *std) {
    const int batch = 32, steps = 6, K = cl_model_shape(m, cl_model_output(m)).c;
    size_t image = (size_t)ds->c * ds->h * ds->w;
    float *x = malloc(batch * image * sizeof *x), *d = malloc((size_t)batch * K * sizeof *d);
    int32_t labels[32];
    cl_optimizer *o = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_SGD, .lr = 0.05f,
                                                           .momentum = 0.9f});
    bool ok = x && d && o;
    for (int s = 0; ok && s < steps; s++) {
        for (int b = 0; b < batch; b++) {
            int i = (s * batch + b) % ds->n;
            image_nhwc(ds, i, mean, std, x + b * image);
            labels[b] = ds->labels[i] % K;
        }
        const float *y = cl_model_forward(m, x, batch, true);
        ok = y != NULL;
        if (!ok) break;
        cl_cross_entropy(y, labels, batch, K, 0, d);
        cl_model_zero_grad(m);
        ok = cl_model_backward(m, d) == CL_OK;
        cl_optimizer_step(o, 0.05f);
    }
    cl_optimizer_free(o);
    free(x);
    free(d);
    return ok;
}

static bool run(const char *cmd) {
    int rc = system(cmd);
    if (rc != 0) t_fail("`%s` failed (status %d)", cmd, rc);
    return rc == 0;
}

static bool write_floats(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(v, sizeof *v, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

static bool read_floats(const char *path, float *v, size_t n) {
    FILE *f = fopen(path, "rb");
    bool ok = f && fread(v, sizeof *v, n, f) == n;
    if (f) fclose(f);
    return ok;
}

/* Compile dir/model.c with the strict flags and tests/deploy/main.c, run it on the
 * images in pixels.bin, read NTEST x K logits; print latency and size. */
static bool compile_and_run(const char *dir, const char *label, float *logits, int K,
                            bool timed) {
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s " STRICT " -c %s/model.c -o %s/model.o", cc, dir, dir);
    if (!run(cmd)) return false;
    snprintf(cmd, sizeof cmd, "%s " STRICT " -I%s tests/deploy/main.c %s/model.o -o %s/prog -lm",
             cc, dir, dir, dir);
    if (!run(cmd)) return false;
    snprintf(cmd, sizeof cmd, "%s/prog " WORK "/pixels.bin %s/logits.bin %d %d > %s/latency.txt",
             dir, dir, NTEST, timed ? 1 : 0, dir);
    if (!run(cmd)) return false;
    snprintf(cmd, sizeof cmd, "%s/logits.bin", dir);
    if (!read_floats(cmd, logits, (size_t)NTEST * K)) {
        t_fail("cannot read %s", cmd);
        return false;
    }
    if (timed) {
        char path[1100], line[256] = "", size_line[256] = "";
        snprintf(path, sizeof path, "%s/latency.txt", dir);
        FILE *f = fopen(path, "r");
        if (f && fgets(line, sizeof line, f)) line[strcspn(line, "\n")] = 0;
        if (f) fclose(f);
        snprintf(cmd, sizeof cmd, "size %s/model.o | tail -n 1", dir);
        FILE *p = popen(cmd, "r");
        if (p && fgets(size_line, sizeof size_line, p)) size_line[strcspn(size_line, "\n")] = 0;
        if (p) pclose(p);
        unsigned long text = 0, data = 0, bss = 0;
        sscanf(size_line, "%lu %lu %lu", &text, &data, &bss);
        printf("# %s: batch-1 %s (model_predict, -O2), model.o text %lu data %lu bss %lu bytes\n",
               label, line, text, data, bss);
    }
    return true;
}

static void test_model(const model_case *mc) {
    char err[1024], dir[512];
    cl_model *m = mc->path ? cl_load_model(mc->path, NULL, err, sizeof err)
                           : cl_parse_model(mc->text, strlen(mc->text), mc->name, NULL, err, sizeof err);
    t_begin("deploy %s: builds", mc->name);
    if (!m) {
        t_fail("%s", err);
        t_end();
        return;
    }
    cl_shape in = cl_model_shape(m, 0);
    const int K = cl_model_shape(m, cl_model_output(m)).c;
    cl_dataset train = {0}, test = {0};
    bool real = mc->data && load_split(mc->data, CL_SPLIT_TRAIN, &train) &&
                load_split(mc->data, CL_SPLIT_TEST, &test);
    if (!real) {
        cl_dataset_free(&train);
        cl_dataset_free(&test);
        random_dataset(&train, 400, in, K, 1);
        random_dataset(&test, NTEST, in, K, 2);
    }
    float mean[8], std[8];
    cl_channel_stats st[8];
    cl_dataset_stats(&train, st, NULL);
    for (int c = 0; c < in.c; c++) {
        mean[c] = (float)st[c].mean;
        std[c] = (float)st[c].std;
    }
    size_t image = (size_t)in.c * in.h * in.w;
    float *x = malloc(NTEST * image * sizeof *x), *pixels = malloc(NTEST * image * sizeof *pixels);
    float *calib = malloc(NCALIB * image * sizeof *calib);
    float *ref = malloc((size_t)NTEST * K * sizeof *ref), *lib = malloc((size_t)NTEST * K * sizeof *lib);
    float *got = malloc((size_t)NTEST * K * sizeof *got);
    cl_deploy_graph *g = NULL;
    cl_quant *q = NULL;
    float *arena = NULL;
    void *work = NULL;
    if (cl_model_compile(m, (cl_compile_args){.max_batch = NTEST, .threads = 1, .seed = 7}) != CL_OK) {
        t_fail("compile: %s", cl_model_error(m));
        goto done;
    }
    if (!short_train(m, &train, mean, std)) {
        t_fail("training: %s", cl_model_error(m));
        goto done;
    }
    for (int i = 0; i < NTEST; i++) {
        image_nhwc(&test, i, mean, std, x + i * image);
        image_chw(&test, i, pixels + i * image);
    }
    for (int i = 0; i < NCALIB; i++) image_chw(&train, (i * 37) % train.n, calib + i * image);
    const float *y = cl_model_forward(m, x, NTEST, false);
    if (!y) {
        t_fail("forward: %s", cl_model_error(m));
        goto done;
    }
    memcpy(ref, y, (size_t)NTEST * K * sizeof *ref);
    g = cl_deploy_build(m, mean, std, err, sizeof err);
    if (!g) {
        t_fail("cl_deploy_build: %s", err);
        goto done;
    }
    printf("# %s (%s images): %d layers -> %d steps (%d folded away), arena %zu floats "
           "(%zu without reuse)\n", mc->name, real ? mc->data : "random", cl_model_layer_count(m),
           g->nnodes, g->layers_folded, g->arena, g->naive);
    if (g->arena > g->naive) t_fail("arena %zu larger than no reuse %zu", g->arena, g->naive);
    t_end();

    /* the library's float inference form */
    t_begin("deploy %s: float32 inference form == cnnlab (1e-5)", mc->name);
    arena = malloc(g->arena * sizeof *arena);
    double worst = 0;
    for (int i = 0; i < NTEST; i++) {
        cl_deploy_forward(g, pixels + i * image, lib + i * K, arena, NULL, NULL);
        for (int k = 0; k < K; k++) worst = fmax(worst, fabs(lib[i * K + k] - ref[i * K + k]));
    }
    printf("# %s: library float32 max |diff| %.3g\n", mc->name, worst);
    if (!(worst <= 1e-5)) t_fail("max abs difference %.3g", worst);
    t_end();

    /* the exported float model.c */
    t_begin("deploy %s: model.c compiles strictly and matches cnnlab (1e-5)", mc->name);
    snprintf(dir, sizeof dir, WORK "/%s_f32", mc->name);
    mkdir(WORK, 0777);
    mkdir(dir, 0777);
    cl_deploy_c_info info = {mc->name, mc->path ? NULL : mc->text,
                             mc->text == every_kind ? hostile_names : NULL};
    if (!write_floats(WORK "/pixels.bin", pixels, NTEST * image)) {
        t_fail("cannot write " WORK "/pixels.bin");
    } else if (cl_deploy_write_c(g, NULL, dir, &info, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else if (compile_and_run(dir, mc->name, got, K, mc->path != NULL)) {
        worst = 0;
        for (int i = 0; i < NTEST * K; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
        printf("# %s: model.c float32 max |diff| %.3g\n", mc->name, worst);
        if (!(worst <= 1e-5)) t_fail("max abs difference %.3g", worst);
    }
    t_end();

    /* int8: the compiled model.c against the library's reference, bit for bit */
    t_begin("deploy %s: int8 model.c == library int8, bit for bit", mc->name);
    q = cl_quant_new(g, calib, NCALIB, err, sizeof err);
    if (!q) {
        t_fail("cl_quant_new: %s", err);
        t_end();
        goto done;
    }
    work = malloc(cl_quant_workspace(q));
    int agree = 0;
    for (int i = 0; i < NTEST; i++) {
        int best = cl_quant_forward(q, pixels + i * image, lib + i * K, work), fbest = 0;
        for (int k = 1; k < K; k++)
            if (ref[i * K + k] > ref[i * K + fbest]) fbest = k;
        agree += best == fbest;
    }
    snprintf(dir, sizeof dir, WORK "/%s_int8", mc->name);
    mkdir(dir, 0777);
    char label[128];
    snprintf(label, sizeof label, "%s int8", mc->name);
    if (cl_deploy_write_c(g, q, dir, &info, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else if (compile_and_run(dir, label, got, K, mc->path != NULL)) {
        int same = 0;
        for (int i = 0; i < NTEST * K; i++) same += memcmp(&got[i], &lib[i], sizeof got[i]) == 0;
        printf("# %s: int8 weights %zu bytes (float32 %zu); int8 and float32 argmax agree on "
               "%d/%d images; %d/%d logits identical to the library's\n",
               mc->name, q->weight_bytes, cl_deploy_weight_bytes(g), agree, NTEST, same, NTEST * K);
        if (same != NTEST * K) t_fail("%d of %d logits differ", NTEST * K - same, NTEST * K);
    }
    t_end();
done:
    cl_quant_free(q);
    cl_deploy_free(g);
    cl_model_free(m);
    cl_dataset_free(&train);
    cl_dataset_free(&test);
    free(x);
    free(pixels);
    free(calib);
    free(ref);
    free(lib);
    free(got);
    free(arena);
    free(work);
}

/* A layer kind added to the registry without an export form fails here (and
 * `cnnlab export` would refuse models that use it). */
static void test_every_kind_exports(void) {
    t_begin("deploy: every layer kind of the registry has an export form");
    int n = 0;
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        if (!k->op) continue;
        n++;
        if (!cl_deploy_supports(k->op->name))
            t_fail("'%s' (op %s) has no entry in src/deploy/graph.c's lowerings", k->keyword,
                   k->op->name);
    }
    if (n < 15) t_fail("only %d layer kinds with an op in the registry", n);
    t_end();
}

int main(void) {
    mkdir("build", 0777);
    mkdir("build/tests", 0777);
    test_every_kind_exports();
    static const model_case cases[] = {
        {"cifar10_bn", "models/cifar10_bn.net", NULL, "cifar10"},
        {"cifar10_gn", "models/cifar10_gn.net", NULL, "cifar10"},
        {"cifar10_ln", "models/cifar10_ln.net", NULL, "cifar10"},
        {"mnist", "models/mnist.net", NULL, "mnist"},
        {"every_kind", NULL, NULL, NULL},
        {"dequant_tail", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_case mc = cases[i];
        if (!strcmp(mc.name, "every_kind")) mc.text = every_kind;
        if (!strcmp(mc.name, "dequant_tail")) mc.text = dequant_tail;
        test_model(&mc);
    }
    return t_finish();
}
