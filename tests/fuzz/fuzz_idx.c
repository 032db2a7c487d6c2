/* fuzz_idx.c: libFuzzer target for the IDX loaders (cl_load_idx, cl_load_mnist_dir in
 * src/data/datasets.c), gzip or raw. The loaders read files, so the input is written as two
 * files into a per-process temporary folder (made once, removed at exit).
 *
 * Input layout: byte 0 selects the entry point (bit 0: cl_load_mnist_dir with the
 * default ten classes, else cl_load_idx); bytes 1-2 (big-endian) are the length L
 * of the labels file that follows; the rest is the images file. Either may be gzip.
 * Run with `make fuzz`; seeds in tests/fuzz/corpus/idx. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"

/* The temporary folder, kept for the whole run and removed by the atexit handler. */
static char fuzz_dir[64];

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", fuzz_dir, name);
}

static void cleanup(void) {
    char p[128];
    path_of(p, sizeof p, "train-images-idx3-ubyte");
    unlink(p);
    path_of(p, sizeof p, "train-labels-idx1-ubyte");
    unlink(p);
    rmdir(fuzz_dir);
}

static void put(const char *path, const uint8_t *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_dir[0]) {
        /* tmpfs when there is one: millions of small file writes */
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cnnlab-fuzz-idx.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir)) abort();
        atexit(cleanup);
    }
    if (size < 3) return 0;
    const bool mnist_dir = data[0] & 1;
    size_t labels_len = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (labels_len > size) labels_len = size;
    char ip[128], lp[128];
    path_of(ip, sizeof ip, "train-images-idx3-ubyte");
    path_of(lp, sizeof lp, "train-labels-idx1-ubyte");
    put(lp, data, labels_len);
    put(ip, data + labels_len, size - labels_len);

    char err[512];
    cl_dataset ds;
    cl_status st = mnist_dir ? cl_load_mnist_dir(fuzz_dir, CL_SPLIT_TRAIN, NULL, &ds, err, sizeof err)
                             : cl_load_idx(ip, lp, &ds, err, sizeof err);
    if (st == CL_OK) {
        if (ds.n <= 0 || ds.c != 1 || ds.h <= 0 || ds.w <= 0 || ds.classes <= 0) abort();
        for (int i = 0; i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) abort();
        cl_channel_stats stats;
        int64_t *counts = malloc((size_t)ds.classes * sizeof *counts);
        if (!counts) abort();
        cl_dataset_stats(&ds, &stats, counts);
        free(counts);
        for (int i = 0; i < ds.classes; i++)
            if (!ds.class_names[i]) abort();
    } else if (!err[0]) {
        abort();
    }
    cl_dataset_free(&ds);
    return 0;
}
