/* fuzz_cifar.c: libFuzzer target for the CIFAR-10 and CIFAR-100 loaders (src/data/datasets.c).
 * The loaders read folders, so the input is written as files into a per-process
 * temporary folder (made once, removed at exit) and loaded from there.
 *
 * Input layout: byte 0 selects the loader (bit 0: CIFAR-100, else CIFAR-10; bit 1:
 * CIFAR-100 fine labels; bit 2: the train split, whose five CIFAR-10 batches are
 * links to the same file); byte 1 is the length L of the class-name file that
 * follows (255: no class-name file); the rest is the batch file.
 * Run with `make fuzz`; seeds in tests/fuzz/corpus/cifar. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"

/* The temporary folder, kept for the whole run (libFuzzer calls the entry point
 * millions of times) and removed by the atexit handler. */
static char fuzz_dir[64];
static const char *const fuzz_files[] = {
    "test_batch.bin",  "test.bin",          "batches.meta.txt",   "fine_label_names.txt",
    "coarse_label_names.txt", "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin", "train.bin"};

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", fuzz_dir, name);
}

static void cleanup(void) {
    char p[128];
    for (size_t i = 0; i < sizeof fuzz_files / sizeof *fuzz_files; i++) {
        path_of(p, sizeof p, fuzz_files[i]);
        unlink(p);
    }
    rmdir(fuzz_dir);
}

static void put(const char *name, const uint8_t *data, size_t len) {
    char p[128];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) abort();
}

static void drop(const char *name) {
    char p[128];
    path_of(p, sizeof p, name);
    unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_dir[0]) {
        /* tmpfs when there is one: millions of small file writes */
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cnnlab-fuzz-cifar.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir)) abort();
        atexit(cleanup);
        /* The train split reads five batches: all link to test_batch.bin (CIFAR-10)
         * and train.bin to test.bin (CIFAR-100). */
        char target[128], link_path[128];
        for (int i = 1; i <= 5; i++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", i);
            path_of(target, sizeof target, "test_batch.bin");
            path_of(link_path, sizeof link_path, name);
            if (symlink(target, link_path) != 0) abort();
        }
        path_of(target, sizeof target, "test.bin");
        path_of(link_path, sizeof link_path, "train.bin");
        if (symlink(target, link_path) != 0) abort();
    }
    if (size < 2) return 0;
    const int mode = data[0];
    size_t names_len = data[1];
    data += 2;
    size -= 2;
    const bool cifar100 = mode & 1, fine = mode & 2;
    const cl_split split = (mode & 4) ? CL_SPLIT_TRAIN : CL_SPLIT_TEST;
    const char *names_file = !cifar100 ? "batches.meta.txt"
                             : fine    ? "fine_label_names.txt"
                                       : "coarse_label_names.txt";
    drop("batches.meta.txt");
    drop("fine_label_names.txt");
    drop("coarse_label_names.txt");
    if (names_len != 255) {
        if (names_len > size) names_len = size;
        put(names_file, data, names_len);
        data += names_len;
        size -= names_len;
    }
    put(cifar100 ? "test.bin" : "test_batch.bin", data, size);

    char err[512];
    cl_dataset ds;
    cl_status st = cifar100 ? cl_load_cifar100(fuzz_dir, split, fine, &ds, err, sizeof err)
                            : cl_load_cifar10(fuzz_dir, split, &ds, err, sizeof err);
    if (st == CL_OK) {
        /* A loaded dataset must be consistent: touch every byte and label. */
        if (ds.n <= 0 || ds.c != 3 || ds.h != 32 || ds.w != 32 || !ds.class_names) abort();
        cl_channel_stats stats[3];
        int64_t counts[100];
        cl_dataset_stats(&ds, stats, counts);
        for (int i = 0; i < ds.classes; i++)
            if (!ds.class_names[i]) abort();
    } else if (!err[0]) {
        abort(); /* every error has a message */
    }
    cl_dataset_free(&ds);
    return 0;
}
