/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (src/io/safetensors.c,
 * its JSON header read with jansson) and checkpoint loading (src/io/checkpoint.c).
 * The input is written as a file into a per-process temporary folder (made once,
 * removed at exit) and read with cl_safetensors_read; an accepted file must be
 * consistent (every tensor inside the data, its size its dtype times its shape, the
 * tensors covering the data exactly, the metadata readable). Then cl_model_load loads
 * it into a small model holding every kind of tensor cnnlab saves (conv, BatchNorm
 * with num_batches_tracked, GroupNorm, linear) with an Adam optimizer: it either
 * succeeds or leaves the parameters untouched.
 * Run with `make fuzz`; seeds in tests/fuzz/corpus/safetensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"

/* The model of tests/ref/interop.bin (the seeds were saved from it). */
static const char MODEL[] = "input 3x8x8\n"
                            "conv 5 k=3 pad=1 bias=0\nbn\nrelu\nmaxpool 2\n"
                            "block 6 k=3 pad=1 norm=bn as=b\nconv 6 k=1\nadd b\ngn 3\n"
                            "gap\nflatten\nlinear 7\n";

static char fuzz_dir[64], fuzz_file[96];

static void cleanup(void) {
    unlink(fuzz_file);
    rmdir(fuzz_dir);
}

static size_t dtype_bytes(const char *d) {
    return !strcmp(d, "F32") || !strcmp(d, "I32") ? 4 : !strcmp(d, "F64") || !strcmp(d, "I64") ? 8 : 0;
}

static void check_consistent(const cl_safetensors *st) {
    size_t covered = 0;
    for (int i = 0; i < st->n; i++) {
        const cl_st_tensor *t = &st->t[i];
        size_t numel = 1, es = dtype_bytes(t->dtype);
        if (!es || t->ndim < 0 || t->ndim > CL_ST_MAX_DIMS || !t->name[0]) abort();
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->dims[d];
        const uint8_t *p = t->data;
        if (numel * es != t->nbytes || p < st->data || p + t->nbytes > st->data + st->ndata)
            abort();
        if (cl_safetensors_find(st, t->name) != t) abort(); /* names are unique */
        covered += t->nbytes;
    }
    if (covered != st->ndata) abort();
    for (int i = 0; i < cl_safetensors_meta_count(st); i++) {
        const char *k = cl_safetensors_meta_key(st, i);
        if (!k || !cl_safetensors_meta(st, k)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cl_model *m;
    static cl_optimizer *o;
    if (!fuzz_dir[0]) {
        /* tmpfs when there is one: millions of small file writes */
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cnnlab-fuzz-st.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir)) abort();
        snprintf(fuzz_file, sizeof fuzz_file, "%s/fuzz.safetensors", fuzz_dir);
        atexit(cleanup);
        char err[512];
        m = cl_parse_model(MODEL, strlen(MODEL), "fuzz", NULL, err, sizeof err);
        if (!m || cl_model_compile(m, (cl_compile_args){.max_batch = 1, .threads = 1}) != CL_OK)
            abort();
        o = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM});
        if (!o) abort();
    }
    FILE *f = fopen(fuzz_file, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();

    char err[2048] = "";
    cl_safetensors *st = cl_safetensors_read(fuzz_file, err, sizeof err);
    if (st) check_consistent(st);
    else if (!strstr(err, fuzz_file)) abort(); /* every error names the file */
    cl_safetensors_free(st);

    size_t np;
    cl_real *params = cl_model_params(m, &np);
    params[0] = 0.5f;
    err[0] = 0;
    if (cl_model_load(m, o, fuzz_file, err, sizeof err) != CL_OK) {
        if (params[0] != 0.5f || !err[0]) abort(); /* nothing changes; a message */
    } else if (!st) {
        abort(); /* loaded a file the reader refused */
    } else {
        for (size_t i = 0; i < np; i++)
            if (params[i] != params[i] || params[i] - params[i] != 0) abort(); /* finite */
    }
    return 0;
}
