/* test_init.c: the initialisation options against PyTorch (tests/ref/init.bin, from
 * tests/ref/gen_init.py): init=dirac rows equal torch.nn.init.dirac_ and the other
 * rows keep the default init; patch-whitening filters equal airbench's
 * init_whitening_conv (up to each eigenvector's sign), whiten the patches of
 * synthetic images to (near) identity covariance, and cl_model_init_whiten sets the
 * first convolution of a model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FIXTURE "tests/ref/init.bin"

/* The model text without its init=dirac keys: the default init of the same model. */
static cl_model *model_without_dirac(const fx_case *c, cl_compile_args a) {
    char text[1024];
    size_t n = 0;
    for (const char *s = c->model_text; *s && n + 1 < sizeof text;) {
        if (!strncmp(s, " init=dirac", 11)) s += 11;
        else text[n++] = *s++;
    }
    text[n] = 0;
    char err[512];
    cl_model *m = cl_parse_model(text, n, c->name, NULL, err, sizeof err);
    if (!m || cl_model_compile(m, a) != CL_OK) {
        t_fail("default model: %s", m ? cl_model_error(m) : err);
        cl_model_free(m);
        return NULL;
    }
    return m;
}

static void check_dirac(const fx_case *c) {
    t_begin("init/%s: dirac rows are torch's dirac_, the others the default init", c->name);
    cl_compile_args a = {.max_batch = 1, .threads = 1, .seed = 7};
    cl_model *m = fx_model(c, a), *ref = model_without_dirac(c, a);
    int dirac_tensors = 0;
    for (int t = 0; m && ref && t < cl_model_tensor_count(m); t++) {
        cl_tensor_info ti = cl_model_tensor(m, t);
        float *got = xmalloc((size_t)ti.numel * sizeof *got);
        float *def = xmalloc((size_t)ti.numel * sizeof *def);
        cl_model_get_tensor(m, t, got);
        cl_model_get_tensor(ref, t, def);
        char name[160];
        snprintf(name, sizeof name, "dirac.%s", ti.name);
        const fx_tensor *want = fx_find(c, name);
        snprintf(name, sizeof name, "mask.%s", ti.name);
        const fx_tensor *mask = fx_find(c, name);
        if (!want || !mask) {
            check_close(ti.name, got, def, (size_t)ti.numel, 0, 0);
        } else if ((size_t)ti.numel != want->numel) {
            t_fail("%s: %lld values, torch %zu", ti.name, (long long)ti.numel, want->numel);
        } else {
            dirac_tensors++;
            size_t rows = mask->numel, per = want->numel / rows;
            int set = 0;
            for (size_t r = 0; r < rows; r++) {
                const float *expect = mask->data[r] ? want->data + r * per : def + r * per;
                snprintf(name, sizeof name, "%s row %zu (%s)", ti.name, r,
                         mask->data[r] ? "dirac" : "default");
                check_close(name, got + r * per, expect, per, 0, 0);
                set += mask->data[r] != 0;
            }
            if (set == 0) t_fail("%s: the fixture sets no row", ti.name);
        }
        free(got);
        free(def);
    }
    if (m && ref && dirac_tensors == 0) t_fail("no tensor was compared with torch");
    cl_model_free(m);
    cl_model_free(ref);
    t_end();
}

/* Row r of a against row r of b, or against its negative: eigenvectors have no sign. */
static void check_rows_up_to_sign(const char *what, const float *got, const float *want, int rows,
                                  int D, double atol, double rtol) {
    for (int r = 0; r < rows; r++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)got[r * D + d] * want[r * D + d];
        float *flipped = xmalloc((size_t)D * sizeof *flipped);
        for (int d = 0; d < D; d++) flipped[d] = dot < 0 ? -want[r * D + d] : want[r * D + d];
        char name[128];
        snprintf(name, sizeof name, "%s row %d", what, r);
        check_close(name, got + r * D, flipped, (size_t)D, atol, rtol);
        free(flipped);
    }
}

static void check_whiten(const fx_case *c) {
    t_begin("init/%s: whitening filters are airbench's (torch.linalg.eigh)", c->name);
    const fx_tensor *x = fx_need(c, "x"), *k = fx_need(c, "k"), *rows_t = fx_need(c, "rows");
    const fx_tensor *eps = fx_need(c, "eps"), *w = fx_need(c, "w"), *ev = fx_need(c, "eigenvalues");
    if (!x || !k || !rows_t || !eps || !w || !ev) {
        t_end();
        return;
    }
    int n = (int)x->dims[0], kh = (int)k->data[0], kw = (int)k->data[1], rows = (int)rows_t->data[0];
    cl_shape s = {(int)x->dims[1], (int)x->dims[2], (int)x->dims[3]};
    int D = s.c * kh * kw, h = rows / 2 < D ? rows / 2 : D;
    float *nhwc = fx_to_nhwc(x);
    float *got = xmalloc((size_t)rows * D * sizeof *got);
    for (int i = 0; i < rows * D; i++) got[i] = 12345.0f; /* rows past 2h stay untouched */
    double *vals = xmalloc((size_t)D * sizeof *vals);
    char err[256];
    if (cl_whitening_filters(nhwc, n, s, kh, kw, eps->data[0], rows, got, vals, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else {
        float *valsf = xmalloc((size_t)D * sizeof *valsf);
        for (int i = 0; i < D; i++) valsf[i] = (float)vals[i];
        check_close("eigenvalues", valsf, ev->data, (size_t)D, 1e-6, 1e-4);
        free(valsf);
        check_rows_up_to_sign("filter", got, w->data, h, D, 1e-4, 1e-3);
        for (int r = 0; r < h; r++)
            for (int d = 0; d < D; d++)
                if (got[(h + r) * D + d] != -got[r * D + d]) {
                    t_fail("row %d is not minus row %d", h + r, r);
                    r = h;
                    break;
                }
        for (int i = 2 * h * D; i < rows * D; i++)
            if (got[i] != 12345.0f) {
                t_fail("row %d past the %d whitening rows was changed", i / D, 2 * h);
                break;
            }
    }
    free(nhwc);
    free(got);
    free(vals);
    t_end();
}

/* Synthetic correlated 3x10x10 images: the first D filters applied to every patch
 * give outputs whose (uncentred) covariance is diag(l / (l + eps)), near identity. */
static void check_identity_covariance(void) {
    t_begin("init/whitened synthetic patches have identity covariance");
    const int n = 20, C = 3, H = 10, W = 10, k = 3, D = C * k * k;
    cl_shape s = {C, H, W};
    float *x = xmalloc((size_t)n * H * W * C * sizeof *x);
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < n * H * W * C; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        x[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5);
    }
    for (int i = n * H * W * C - 1; i >= C; i--) x[i] += 0.8f * x[i - C]; /* neighbour correlation */
    float *w = xmalloc((size_t)2 * D * D * sizeof *w);
    double *vals = xmalloc((size_t)D * sizeof *vals);
    const double eps = 1e-6;
    char err[256];
    if (cl_whitening_filters(x, n, s, k, k, eps, 2 * D, w, vals, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else {
        double *cov = calloc((size_t)D * D, sizeof *cov), *out = xmalloc((size_t)D * sizeof *out);
        long count = 0;
        for (int b = 0; b < n; b++)
            for (int y = 0; y + k <= H; y++)
                for (int xx = 0; xx + k <= W; xx++, count++) {
                    for (int r = 0; r < D; r++) {
                        double acc = 0;
                        for (int c = 0; c < C; c++)
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++)
                                    acc += (double)w[r * D + (c * k + i) * k + j] *
                                           x[(((size_t)b * H + y + i) * W + xx + j) * C + c];
                        out[r] = acc;
                    }
                    for (int r = 0; r < D; r++)
                        for (int q = 0; q < D; q++) cov[r * D + q] += out[r] * out[q];
                }
        double worst = 0;
        for (int r = 0; r < D; r++) {
            if (r && vals[r] > vals[r - 1]) t_fail("eigenvalues not descending at %d", r);
            for (int q = 0; q < D; q++) {
                double want = r == q ? vals[r] / (vals[r] + eps) : 0;
                double e = fabs(cov[r * D + q] / count - want);
                if (e > worst) worst = e;
            }
        }
        if (worst > 1e-3) t_fail("covariance of the whitened patches off identity by %g", worst);
        free(cov);
        free(out);
    }
    free(x);
    free(w);
    free(vals);
    t_end();
}

/* cl_model_init_whiten sets the weight of the conv reading the input, not the bias. */
static void check_model_whiten(const fx_case *c) {
    t_begin("init/%s: cl_model_init_whiten sets the first conv's weight, keeps its bias", c->name);
    const fx_tensor *x = fx_need(c, "x"), *w = fx_need(c, "w"), *rows_t = fx_need(c, "rows");
    cl_model *m = fx_model(c, (cl_compile_args){.max_batch = 1, .threads = 1, .seed = 3});
    if (m && x && w && rows_t) {
        int rows = (int)rows_t->data[0];
        int D = (int)(w->numel / (size_t)rows), h = rows / 2 < D ? rows / 2 : D;
        int wi = cl_model_find_tensor(m, "layers.0.weight"), bi = cl_model_find_tensor(m, "layers.0.bias");
        float *before = xmalloc((size_t)rows * D * sizeof *before), *after = xmalloc((size_t)rows * D * sizeof *after);
        float bias0[64], bias1[64];
        cl_model_get_tensor(m, wi, before);
        cl_model_get_tensor(m, bi, bias0);
        float *nhwc = fx_to_nhwc(x);
        char err[256];
        int layer = cl_model_init_whiten(m, nhwc, (int)x->dims[0], 5e-4, err, sizeof err);
        if (layer != 0) t_fail("layer %d: %s", layer, err);
        cl_model_get_tensor(m, wi, after);
        cl_model_get_tensor(m, bi, bias1);
        check_rows_up_to_sign("weight", after, w->data, h, D, 1e-4, 1e-3);
        check_close("rows past the whitening", after + 2 * h * D, before + 2 * h * D,
                    (size_t)(rows - 2 * h) * D, 0, 0);
        check_close("bias", bias1, bias0, (size_t)rows, 0, 0);
        free(nhwc);
        free(before);
        free(after);
    }
    cl_model_free(m);
    t_end();
}

static void check_whiten_errors(void) {
    t_begin("init/whitening refuses models it cannot whiten, with a message");
    const char *bad[] = {"input 3x8x8\ngap\nconv 4 k=1\n", "input 4x8x8\nconv 8 k=3 groups=2\n",
                         "input 3x8x8\nconv 8 k=3 dilation=2\n"};
    float x[3 * 8 * 8 * 4] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256];
        cl_model *m = cl_parse_model(bad[i], strlen(bad[i]), "bad", NULL, err, sizeof err);
        if (!m || cl_model_compile(m, (cl_compile_args){.max_batch = 1, .threads = 1}) != CL_OK) {
            t_fail("model %zu: %s", i, m ? cl_model_error(m) : err);
        } else if (cl_model_init_whiten(m, x, 1, 5e-4, err, sizeof err) != -1 || !err[0]) {
            t_fail("model %zu was whitened", i);
        }
        cl_model_free(m);
    }
    char err[256];
    float w[8];
    if (cl_whitening_filters(x, 1, (cl_shape){1, 2, 2}, 3, 3, 5e-4, 2, w, NULL, err, sizeof err) == CL_OK)
        t_fail("a 3x3 kernel on 2x2 images was accepted");
    t_end();
}

int main(void) {
    char err[512];
    fx_file *f = fx_load(FIXTURE, err, sizeof err);
    if (!f) {
        t_begin("init/fixture");
        t_fail("%s", err);
        t_end();
        return t_finish();
    }
    for (int i = 0; i < f->ncases; i++) {
        const fx_case *c = &f->cases[i];
        if (!strncmp(c->name, "dirac", 5)) check_dirac(c);
        else {
            check_whiten(c);
            check_model_whiten(c);
        }
    }
    check_identity_covariance();
    check_whiten_errors();
    fx_free(f);
    return t_finish();
}
