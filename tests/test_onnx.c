/* test_onnx.c: the ONNX import and export in the library.
 *   - PyTorch's exports (tests/ref/onnx/, written by gen_onnx.py with torch.onnx.export
 *     at opset 17) of the shipped models and of tests/all_layers.net import, and the
 *     imported models give PyTorch's logits on the fixture images (1e-4);
 *   - an op cnnlab lacks is an error naming the node and its op type;
 *   - cnnlab's own exports (opset 21 and 17, with and without the normalisation)
 *     import back to the same layers, the same logits bit for bit, and the same
 *     normalisation;
 *   - bad arguments and files fail with messages naming the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"
#include "harness.h"

#ifndef MUTANTS
#define MUTANTS 500
#endif

static float *read_floats(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = xmalloc((size_t)len);
    *n = fread(v, 1, (size_t)len, f) / sizeof *v;
    fclose(f);
    return v;
}

/* Logits [n][K] of m for NCHW images x. */
static float *run(cl_model *m, const float *x_nchw, int n, cl_shape s) {
    size_t size = (size_t)s.c * s.h * s.w;
    float *x = xmalloc((size_t)n * size * sizeof *x);
    cl_nchw_to_nhwc(x, x_nchw, n, s.c, s.h, s.w);
    const cl_real *y = cl_model_forward(m, x, n, false);
    int K = cl_model_shape(m, cl_model_output(m)).c;
    float *out = xmalloc((size_t)n * K * sizeof *out);
    memcpy(out, y, (size_t)n * K * sizeof *out);
    free(x);
    return out;
}

static void torch_fixture(const char *name) {
    t_begin("import torch.onnx.export of %s: PyTorch's logits", name);
    char path[256], bin[256], err[1024];
    snprintf(path, sizeof path, "tests/ref/onnx/%s.onnx", name);
    snprintf(bin, sizeof bin, "tests/ref/onnx/%s.bin", name);
    cl_onnx_import *imp = cl_onnx_import_read(path, err, sizeof err);
    if (!imp) {
        t_fail("%s", err);
        t_end();
        return;
    }
    cl_model *m = cl_onnx_import_model(imp, (cl_compile_args){.max_batch = 4, .threads = 1}, err, sizeof err);
    size_t nv = 0;
    float *fx = read_floats(bin, &nv);
    if (!m || !fx) {
        t_fail("%s", m ? "no fixture .bin" : err);
    } else {
        cl_shape s = imp->input;
        size_t size = (size_t)s.c * s.h * s.w;
        int K = imp->classes;
        if (nv != 4 * (size + (size_t)K)) {
            t_fail("%s holds %zu floats, expected %zu", bin, nv, 4 * (size + (size_t)K));
        } else {
            float *got = run(m, fx, 4, s);
            check_close("logits", got, fx + 4 * size, 4 * (size_t)K, 1e-4, 0);
            free(got);
        }
        /* no normalisation nodes in a PyTorch export: mean 0, std 1 */
        if (imp->has_normalization || imp->mean[0] != 0 || imp->std[0] != 1)
            t_fail("a normalisation was found where the graph has none");
    }
    free(fx);
    cl_model_free(m);
    cl_onnx_import_free(imp);
    t_end();
}

/* A model of all_layers.net with non-trivial weights and BatchNorm statistics. */
static cl_model *all_layers_model(int max_batch) {
    char err[1024];
    cl_model *m = cl_load_model("tests/all_layers.net", NULL, err, sizeof err);
    if (!m || cl_model_compile(m, (cl_compile_args){.max_batch = max_batch, .threads = 1, .seed = 7}) != CL_OK) {
        t_fail("%s", m ? cl_model_error(m) : err);
        cl_model_free(m);
        return NULL;
    }
    uint64_t r = 12345;
    for (int i = 0; i < cl_model_tensor_count(m); i++) {
        cl_tensor_info info = cl_model_tensor(m, i);
        if (strstr(info.name, "num_batches")) continue;
        bool var = strstr(info.name, "running_var") != NULL;
        bool norm_w = !var && strstr(info.name, "weight") && info.ndim != 2 && info.ndim != 4;
        cl_real *v = xmalloc((size_t)info.numel * sizeof *v);
        cl_model_get_tensor(m, i, v);
        for (int64_t k = 0; k < info.numel; k++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(r >> 11) / 9007199254740992.0;
            if (var) v[k] = (cl_real)(0.5 + 1.5 * u);
            else if (norm_w) v[k] = (cl_real)(0.5 + u);
            else if (strstr(info.name, "running_mean") || strstr(info.name, "bias")) v[k] = (cl_real)(u - 0.5);
        }
        cl_model_set_tensor(m, i, v);
        free(v);
    }
    return m;
}

static void round_trip(int opset, bool normalize) {
    t_begin("export all_layers.net at opset %d%s, import: same layers, tensors and logits", opset,
            normalize ? " with normalisation" : "");
    cl_model *m = all_layers_model(8);
    if (!m) {
        t_end();
        return;
    }
    const float mean[3] = {0.49f, 0.48f, 0.45f}, sd[3] = {0.25f, 0.24f, 0.26f};
    const char *names[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    char path[64], err[1024];
    snprintf(path, sizeof path, "/tmp/cnnlab-test-onnx-%d.onnx", (int)getpid());
    cl_onnx_export_args a = {.opset = opset, .mean = mean, .std = sd, .normalize = normalize,
                             .class_names = names, .model_text = "input 3x32x32\n", .dataset = "cifar10"};
    cl_onnx_import *imp = NULL;
    cl_model *back = NULL;
    if (cl_onnx_export(m, &a, path, err, sizeof err) != CL_OK) t_fail("export: %s", err);
    else if (!(imp = cl_onnx_import_read(path, err, sizeof err))) t_fail("import: %s", err);
    else if (!(back = cl_onnx_import_model(imp, (cl_compile_args){.max_batch = 8, .threads = 1}, err, sizeof err)))
        t_fail("build: %s", err);
    if (back) {
        /* every layer but the dropouts, in order */
        int k = 0;
        for (int i = 0; i < cl_model_layer_count(m); i++) {
            const char *op = cl_model_layer(m, i).op;
            if (!strcmp(op, "dropout")) continue;
            if (k >= cl_model_layer_count(back) || strcmp(cl_model_layer(back, k).op, op))
                t_fail("layer %d (%s) came back as %s", i, op,
                       k < cl_model_layer_count(back) ? cl_model_layer(back, k).op : "nothing");
            k++;
        }
        if (k != cl_model_layer_count(back)) t_fail("%d layers came back, expected %d", cl_model_layer_count(back), k);
        if (cl_model_param_count(back) != cl_model_param_count(m)) t_fail("parameter counts differ");
        if (imp->has_normalization != normalize) t_fail("normalisation %sfound", normalize ? "not " : "");
        for (int c = 0; normalize && c < 3; c++)
            if (imp->mean[c] != mean[c] || imp->std[c] != sd[c]) t_fail("mean/std of channel %d differ", c);
        if (!imp->class_names || strcmp(imp->class_names[9], "j") || strcmp(imp->dataset, "cifar10"))
            t_fail("class names or dataset not read back from the metadata");
        /* the same logits, bit for bit: the same layers on the same weights */
        float *x = xmalloc(8 * 3 * 32 * 32 * sizeof *x);
        for (int i = 0; i < 8 * 3 * 32 * 32; i++) x[i] = (float)((i * 7919) % 1000) / 999.0f;
        float *want = run(m, x, 8, (cl_shape){3, 32, 32});
        float *got = run(back, x, 8, (cl_shape){3, 32, 32});
        check_close("logits", got, want, 80, 0, 0);
        free(x);
        free(want);
        free(got);
    }
    unlink(path);
    cl_model_free(back);
    cl_onnx_import_free(imp);
    cl_model_free(m);
    t_end();
}

int main(void) {
    const char *fixtures[] = {"cifar10_bn", "cifar10_gn", "cifar10_ln", "mnist", "all_layers"};
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) torch_fixture(fixtures[i]);

    t_begin("an op cnnlab lacks (Tanh; Sigmoid outside SiLU): the error names the node and its op type");
    char err[1024] = "";
    cl_onnx_import *imp = cl_onnx_import_read("tests/ref/onnx/unsupported.onnx", err, sizeof err);
    if (imp) t_fail("the Tanh model imported");
    else if (!strstr(err, "tests/ref/onnx/unsupported.onnx: node '/1/Tanh' (Tanh): cnnlab has no layer for the ONNX op Tanh"))
        t_fail("message: %s", err);
    cl_onnx_import_free(imp);
    imp = cl_onnx_import_read("tests/ref/onnx/sigmoid.onnx", err, sizeof err);
    if (imp) t_fail("the Sigmoid model imported");
    else if (!strstr(err, "tests/ref/onnx/sigmoid.onnx: node '/1/Sigmoid' (Sigmoid): cnnlab has no layer for the ONNX op Sigmoid"))
        t_fail("message: %s", err);
    cl_onnx_import_free(imp);
    t_end();

    /* hostile files: truncated and byte-mutated exports fail cleanly (or import) */
    t_begin("%d truncated or mutated ONNX files: an error naming the file, or a model", MUTANTS);
    size_t len = 0;
    FILE *f = fopen("tests/ref/onnx/all_layers.onnx", "rb");
    unsigned char *orig = NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        orig = xmalloc(len);
        if (fread(orig, 1, len, f) != len) len = 0;
        fclose(f);
    }
    if (!len) t_fail("cannot read all_layers.onnx");
    char mpath[64];
    snprintf(mpath, sizeof mpath, "/tmp/cnnlab-test-mutant-%d.onnx", (int)getpid());
    uint64_t r = 99;
    for (int k = 0; len && k < MUTANTS; k++) {
        unsigned char *b = xmalloc(len);
        memcpy(b, orig, len);
        size_t n = len;
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        if (k % 5 == 0) n = (size_t)(r >> 33) % len; /* truncated */
        else
            for (int j = 0; j < 1 + k % 4; j++) {
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                b[(r >> 33) % len] = (unsigned char)(r >> 20);
            }
        FILE *o = fopen(mpath, "wb");
        if (o) {
            fwrite(b, 1, n, o);
            fclose(o);
        }
        free(b);
        err[0] = 0;
        cl_onnx_import *mi = cl_onnx_import_read(mpath, err, sizeof err);
        if (!mi && !strstr(err, mpath)) t_fail("mutant %d: the message does not name the file: %s", k, err);
        if (mi) {
            cl_model *mm = cl_onnx_import_model(mi, (cl_compile_args){.max_batch = 1, .threads = 1}, err, sizeof err);
            cl_model_free(mm);
        }
        cl_onnx_import_free(mi);
    }
    unlink(mpath);
    free(orig);
    t_end();

    round_trip(21, true);
    round_trip(17, true);
    round_trip(21, false);
    round_trip(17, false);

    t_begin("bad input: not ONNX, missing file, bad opset");
    if (cl_onnx_import_read("tests/all_layers.net", err, sizeof err) ||
        !strstr(err, "tests/all_layers.net: not an ONNX model"))
        t_fail("a text file: %s", err);
    if (cl_onnx_import_read("tests/nope.onnx", err, sizeof err) || !strstr(err, "tests/nope.onnx: cannot open"))
        t_fail("a missing file: %s", err);
    cl_model *m = all_layers_model(1);
    if (m && (cl_onnx_export(m, &(cl_onnx_export_args){.opset = 13}, "/tmp/x.onnx", err, sizeof err) != CL_ERR_ARG ||
              !strstr(err, "opset 13")))
        t_fail("opset 13: %s", err);
    cl_model_free(m);
    t_end();
    return t_finish();
}
