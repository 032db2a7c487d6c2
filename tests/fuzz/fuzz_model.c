/* fuzz_model.c: libFuzzer target for the model-file parser (src/io/parse.c) and the
 * shape inference and summary behind it. The input is a model file's text; when it
 * parses, the model's layers, shapes, parameter count and summary are all computed
 * (the summary goes to /dev/null), so every inferred shape is touched. The model is
 * not compiled: a valid file may ask for gigabytes of activations.
 * Run with `make fuzz`; seeds in tests/fuzz/corpus/model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink && !(sink = fopen("/dev/null", "w"))) abort();
    char err[1024] = "";
    cl_model *m = cl_parse_model((const char *)data, size, "fuzz.net", NULL, err, sizeof err);
    if (!m) {
        /* every error names the file and a line:col */
        if (strncmp(err, "fuzz.net:", 9) != 0) abort();
        return 0;
    }
    int layers = cl_model_layer_count(m);
    if (layers < 1) abort();
    for (int i = 0; i < layers; i++)
        if (!cl_model_layer(m, i).op) abort();
    cl_shape out = cl_model_shape(m, cl_model_output(m));
    if (out.c < 1 || out.h < 1 || out.w < 1) abort();
    if (cl_model_param_count(m) < 0) abort();
    cl_model_print_summary(m, "fuzz", sink);
    cl_model_free(m);
    return 0;
}
