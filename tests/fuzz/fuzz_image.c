/* fuzz_image.c: libFuzzer target for the image-folder loader and its PNG and JPEG
 * decoding (src/data/image_folder.c). The input is the single image of a one-class
 * folder in a per-process temporary folder (made once, removed at exit): first
 * named .png and loaded at its own size, then named .jpg and loaded with a bilinear
 * resize to 5x7 (the decoder is chosen by the file's signature, so both passes
 * decode it; the second also runs the resize).
 * Run with `make fuzz`; seeds in tests/fuzz/corpus/image. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnnlab.h"

/* The temporary folder, kept for the whole run and removed by the atexit handler. */
static char fuzz_dir[64];

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", fuzz_dir, name);
}

static void cleanup(void) {
    char p[128];
    path_of(p, sizeof p, "class/image.png");
    unlink(p);
    path_of(p, sizeof p, "class/image.jpg");
    unlink(p);
    path_of(p, sizeof p, "class");
    rmdir(p);
    rmdir(fuzz_dir);
}

static void put(const char *path, const uint8_t *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) abort();
}

static void load(int rh, int rw) {
    char err[512];
    cl_dataset ds;
    cl_status st = cl_load_image_folder(fuzz_dir, rh, rw, &ds, err, sizeof err);
    if (st == CL_OK) {
        if (ds.n != 1 || (ds.c != 1 && ds.c != 3) || ds.classes != 1 || ds.labels[0] != 0)
            abort();
        if (rh && (ds.h != rh || ds.w != rw)) abort();
        cl_channel_stats stats[3];
        int64_t count;
        cl_dataset_stats(&ds, stats, &count);
        if (count != 1) abort();
    } else if (!err[0]) {
        abort();
    }
    cl_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char png[128], jpg[128];
    if (!fuzz_dir[0]) {
        /* tmpfs when there is one: millions of small file writes */
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cnnlab-fuzz-image.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir)) abort();
        path_of(png, sizeof png, "class");
        if (mkdir(png, 0700) != 0) abort();
        atexit(cleanup);
    }
    path_of(png, sizeof png, "class/image.png");
    path_of(jpg, sizeof jpg, "class/image.jpg");
    put(png, data, size);
    load(0, 0);
    if (rename(png, jpg) != 0) abort();
    load(5, 7);
    unlink(jpg);
    return 0;
}
