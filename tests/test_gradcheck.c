/* test_gradcheck.c: finite-difference gradient checks of every layer, in double
 * precision. This file is built against the library compiled with -DCL_REAL=double,
 * so the very kernels that train in float run here in double. For each case the
 * objective is L = sum(w * out) for a fixed random w (or the cross-entropy loss);
 * the analytic gradient of the input and of every parameter from cl_model_backward is
 * compared with central differences (L(x+h) - L(x-h)) / 2h at sampled entries.
 * Every activation of the layer registry is also checked on its own and inside a
 * block (act=KIND), so a new activation is checked without a line here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"
#include "io/registry.h"

_Static_assert(sizeof(cl_real) == sizeof(double), "build this test with -DCL_REAL=double");

#define STEP 1e-6
#define ATOL 1e-7
#define RTOL 1e-5
#define SAMPLES 24

typedef struct {
    const char *name;
    const char *text; /* model file */
    int n;            /* batch */
    bool train;
    bool loss;        /* objective: cross entropy of the Kx1x1 output */
} gc_case;

static const gc_case cases[] = {
    {"conv k3 pad1", "input 3x7x9\nconv 4 k=3 pad=1", 3, true, false},
    {"conv stride2", "input 3x9x7\nconv 5 k=3 stride=2 pad=1", 2, true, false},
    {"conv dilation2", "input 2x9x9\nconv 3 k=3 dilation=2 pad=2", 2, true, false},
    {"conv groups2 nobias", "input 4x6x6\nconv 6 k=3 groups=2 bias=0", 2, true, false},
    {"conv depthwise", "input 4x6x5\nconv 8 k=3 groups=4 pad=1", 2, true, false},
    {"conv rect k3x1", "input 3x6x6\nconv 4 k=3x1 pad=1x0 stride=1x2", 2, true, false},
    {"conv 1x1", "input 5x4x4\nconv 3 k=1", 3, true, false},
    {"maxpool 2", "input 3x6x8\nmaxpool 2", 2, true, false},
    {"maxpool k3 s2 p1", "input 3x7x7\nmaxpool k=3 stride=2 pad=1", 2, true, false},
    {"avgpool 2", "input 3x6x8\navgpool 2", 2, true, false},
    {"avgpool k3 s2 p1", "input 3x7x7\navgpool k=3 stride=2 pad=1", 2, true, false},
    {"gap", "input 4x5x3\ngap", 3, true, false},
    {"batchnorm train", "input 4x5x5\nbn", 5, true, false},
    {"batchnorm eval", "input 4x5x5\nbn", 3, false, false},
    {"groupnorm 2", "input 6x4x5\ngn 2", 3, true, false},
    {"groupnorm per channel", "input 4x4x4\ngn 4", 2, true, false},
    {"layernorm", "input 4x5x3\nln", 3, true, false},
    {"layernorm elementwise", "input 3x4x4\nln elementwise=1", 2, true, false},
    {"relu", "input 3x5x5\nrelu", 2, true, false},
    {"leakyrelu", "input 3x5x5\nleakyrelu slope=0.2", 2, true, false},
    {"gelu", "input 3x5x5\ngelu", 2, true, false},
    {"dropout train", "input 3x5x5\ndropout 0.3", 4, true, false},
    {"add", "input 3x4x4\nconv 3 k=1 as=a\nconv 3 k=3 pad=1 from=input\nadd a", 2, true, false},
    {"concat", "input 2x4x4\nconv 3 k=1 as=a\nconv 2 k=1 from=input as=b\nconcat a b input", 2,
     true, false},
    {"flatten linear", "input 3x3x4\nflatten\nlinear 5", 3, true, false},
    {"linear nobias", "input 6x1x1\nlinear 4 bias=0", 3, true, false},
    {"cross entropy", "input 6x1x1\nlinear 10", 4, true, true},
    {"sepblock stride2 gn silu", "input 4x7x6\nsepblock 6 k=3 stride=2 pad=1 norm=gn act=silu", 2,
     true, false},
    {"small model with loss",
     "input 3x8x8\nblock 4 k=3 pad=1 norm=bn as=a\nblock 4 k=3 pad=1 norm=bn\nadd a\n"
     "maxpool 2\nblock 6 k=3 pad=1 norm=gn num_groups=2 act=gelu\ngap\nconv 10 k=1",
     4, true, true},
};

static uint64_t rng_state = 12345;

static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double normal(void) {
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

typedef struct {
    cl_model *m;
    const gc_case *c;
    double *x, *w; /* input [n][sample], objective weights [n][out] */
    int32_t *labels;
    size_t xsize, osize;
    int classes;
    uint64_t step; /* dropout step held fixed across evaluations */
} gc_state;

static double objective(gc_state *s, double *dout) {
    cl_model_set_step(s->m, s->step);
    const double *out = cl_model_forward(s->m, s->x, s->c->n, s->c->train);
    if (!out) {
        t_fail("forward failed: %s", cl_model_error(s->m));
        return NAN;
    }
    if (s->c->loss)
        return cl_cross_entropy(out, s->labels, s->c->n, s->classes, 0.1f, dout);
    double l = 0;
    for (size_t i = 0; i < s->osize * (size_t)s->c->n; i++) {
        l += s->w[i] * out[i];
        if (dout) dout[i] = s->w[i];
    }
    return l;
}

static void compare(const char *what, size_t idx, double analytic, double fd) {
    if (!(fabs(analytic - fd) <= ATOL + RTOL * fabs(fd)))
        t_fail("%s[%zu]: analytic %.10g, finite difference %.10g", what, idx, analytic, fd);
}

/* Check sampled entries of an array v (the input or the parameters) whose analytic
 * gradient is g. */
static void check_entries(gc_state *s, const char *what, double *v, const double *g, size_t n) {
    size_t count = n < SAMPLES ? n : SAMPLES;
    for (size_t k = 0; k < count; k++) {
        size_t i = n <= SAMPLES ? k : (size_t)(uniform() * (double)n);
        double keep = v[i];
        v[i] = keep + STEP;
        double lp = objective(s, NULL);
        v[i] = keep - STEP;
        double lm = objective(s, NULL);
        v[i] = keep;
        compare(what, i, g[i], (lp - lm) / (2 * STEP));
    }
}

static void run_case(const gc_case *c) {
    t_begin("gradcheck/%s", c->name);
    char err[512];
    cl_model *m = cl_parse_model(c->text, strlen(c->text), c->name, NULL, err, sizeof err);
    if (!m) {
        t_fail("parse: %s", err);
        t_end();
        return;
    }
    cl_compile_args ca = {.max_batch = c->n, .threads = 2, .seed = 7, .input_grad = true};
    if (cl_model_compile(m, ca) != CL_OK) {
        t_fail("compile: %s", cl_model_error(m));
        cl_model_free(m);
        t_end();
        return;
    }
    gc_state s = {.m = m, .c = c, .step = 5};
    cl_shape in = cl_model_shape(m, 0), out = cl_model_shape(m, cl_model_output(m));
    s.xsize = (size_t)in.c * in.h * in.w;
    s.osize = (size_t)out.c * out.h * out.w;
    s.classes = out.c;
    s.x = xmalloc(s.xsize * c->n * sizeof(double));
    s.w = xmalloc(s.osize * c->n * sizeof(double));
    s.labels = xmalloc((size_t)c->n * sizeof(int32_t));
    for (size_t i = 0; i < s.xsize * c->n; i++) s.x[i] = normal();
    for (size_t i = 0; i < s.osize * c->n; i++) s.w[i] = normal();
    for (int i = 0; i < c->n; i++) s.labels[i] = (int32_t)(uniform() * s.classes);
    /* Random parameters and running statistics (variances kept positive), so that
     * BatchNorm's eval mode and the affine weights are exercised away from 1 and 0. */
    size_t np, nb;
    double *params = cl_model_params(m, &np);
    double *bufs = cl_model_buffers(m, &nb);
    for (size_t i = 0; i < np; i++) params[i] = 0.5 * normal();
    for (size_t i = 0; i < nb; i++) bufs[i] = 0.5 + uniform();

    double *dout = xmalloc(s.osize * c->n * sizeof(double));
    objective(&s, dout);
    cl_model_zero_grad(m);
    if (cl_model_backward(m, dout) != CL_OK) t_fail("backward: %s", cl_model_error(m));
    size_t in_count = s.xsize * c->n;
    double *gx = xmalloc(in_count * sizeof(double));
    memcpy(gx, cl_model_input_grad(m), in_count * sizeof(double));
    double *gp = xmalloc((np ? np : 1) * sizeof(double));
    if (np) memcpy(gp, cl_model_grads(m, NULL), np * sizeof(double));

    check_entries(&s, "input", s.x, gx, in_count);
    check_entries(&s, "params", params, gp, np);

    free(gx);
    free(gp);
    free(dout);
    free(s.x);
    free(s.w);
    free(s.labels);
    cl_model_free(m);
    t_end();
}

/* The registry's activations: alone on the whole real line, and after a conv and a
 * BatchNorm in a block with a loss. */
static void run_registry_activations(void) {
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        if (k->act == CL_ACT_NONE) continue;
        char name[2][64], text[2][256];
        snprintf(name[0], sizeof name[0], "registry %s", k->keyword);
        snprintf(text[0], sizeof text[0], "input 3x5x5\n%s", k->keyword);
        snprintf(name[1], sizeof name[1], "registry block act=%s", k->keyword);
        snprintf(text[1], sizeof text[1],
                 "input 3x6x6\nblock 4 k=3 pad=1 norm=bn act=%s\ngap\nconv 10 k=1", k->keyword);
        gc_case c[2] = {{name[0], text[0], 3, true, false}, {name[1], text[1], 4, true, true}};
        run_case(&c[0]);
        run_case(&c[1]);
    }
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    run_registry_activations();
    return t_finish();
}
