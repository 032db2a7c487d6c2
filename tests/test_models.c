/* test_models.c: the shipped model files (models/NAME.net) load, and their trainable parameter
 * and buffer counts (running_mean + running_var + num_batches_tracked) equal what
 * PyTorch counts for the same file (tests/ref/param_counts.txt, written by
 * tests/ref/gen_fixtures.py through tests/ref/netfile.py). */
#include <stdio.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

#define COUNTS "tests/ref/param_counts.txt"

int main(void) {
    FILE *f = fopen(COUNTS, "r");
    if (!f) {
        t_fail("%s: cannot open", COUNTS);
        return t_finish();
    }
    char line[1024];
    int lineno = 0, nmodels = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char path[512];
        long long params, buffers;
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        if (sscanf(line, "%511s %lld %lld", path, &params, &buffers) != 3) {
            t_fail("%s:%d: malformed line", COUNTS, lineno);
            continue;
        }
        nmodels++;
        t_begin("counts %s", path);
        char err[512];
        cl_model *m = cl_load_model(path, NULL, err, sizeof err);
        if (!m) {
            t_fail("load: %s", err);
        } else {
            long long p = (long long)cl_model_param_count(m), b = (long long)cl_model_buffer_count(m);
            if (p != params) t_fail("trainable parameters: cnnlab %lld, PyTorch %lld", p, params);
            if (b != buffers) t_fail("buffers: cnnlab %lld, PyTorch %lld", b, buffers);
            cl_model_free(m);
        }
        t_end();
    }
    fclose(f);
    if (nmodels == 0) printf("# %s lists no models (run make fixtures once models/*.net exist)\n", COUNTS);
    return t_finish();
}
