/* augment.c (bench): augmentation throughput on one thread, in images per second:
 * 50,000 synthetic 32x32x3 images (CIFAR-10's training set size and shape), each
 * copied out of the in-memory dataset into a batch slot and augmented there, as
 * the batch loader does. Runs the standard CIFAR pipeline crop(4, reflect) + hflip +
 * cutout(8), the full pipeline, and each transform alone; each figure is the best
 * of several epochs (keys change every epoch, as in training).
 *   bench/augment [--n N] [--epochs E] [--hw H W C] [SPEC ...]
 * Build and run: see bench/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnlab.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best images/s over the epochs; *checksum keeps the work observable. */
static double run(const cl_augment *a, const uint8_t *data, int n, int h, int w, int c, int epochs,
                  uint64_t *checksum) {
    size_t sz = (size_t)h * w * c;
    enum { BATCH = 128 };
    uint8_t *batch = malloc(sz * BATCH), *scratch = malloc(sz);
    if (!batch || !scratch) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    double best = 0.0;
    for (int e = 0; e < epochs; e++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            uint8_t *img = batch + (size_t)(i % BATCH) * sz;
            memcpy(img, data + (size_t)i * sz, sz);
            cl_augment_apply(a, img, h, w, c, 12345, (uint64_t)e * (uint64_t)n + (uint64_t)i,
                             scratch);
            if (i % BATCH == BATCH - 1) *checksum += batch[(size_t)(i * 7919) % (sz * BATCH)];
        }
        double rate = n / (now() - t0);
        if (rate > best) best = rate;
    }
    free(batch);
    free(scratch);
    return best;
}

int main(int argc, char **argv) {
    int n = 50000, epochs = 5, h = 32, w = 32, c = 3;
    const char *specs[64];
    int nspecs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
            epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--hw") && i + 3 < argc) {
            h = atoi(argv[++i]), w = atoi(argv[++i]), c = atoi(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--n N] [--epochs E] [--hw H W C] [SPEC ...]\n", argv[0]);
            return 2;
        } else if (nspecs < 64) {
            specs[nspecs++] = argv[i];
        }
    }
    if (n < 1 || epochs < 1 || h < 1 || w < 1 || c < 1) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    if (!nspecs) {
        static const char *def[] = {
            "crop:4:reflect,hflip,cutout:8",
            "crop:4:reflect,hflip,cutout:8,jitter:0.2:0.2:0.2:0.05,rotate:15,ssr:0.1:0.1:15,erase:0.5",
            "crop:4:reflect", "crop:4", "hflip", "cutout:8", "erase:1", "rotate:15",
            "ssr:0.1:0.1:15:1", "jitter:0.2:0.2", "jitter:0.2:0.2:0.2", "jitter:0.2:0.2:0.2:0.05",
        };
        nspecs = (int)(sizeof def / sizeof def[0]);
        memcpy(specs, def, sizeof def);
    }
    size_t sz = (size_t)h * w * c;
    uint8_t *data = malloc(sz * (size_t)n);
    if (!data) {
        fprintf(stderr, "out of memory for %d images\n", n);
        return 1;
    }
    uint64_t x = 88172645463325252ull; /* xorshift64: synthetic pixels */
    for (size_t i = 0; i < sz * (size_t)n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)(x >> 56);
    }
    printf("augmentation on one thread: %d images of %dx%dx%d, best of %d epochs\n", n, h, w, c,
           epochs);
    printf("%14s  %10s  %s\n", "images/s", "us/image", "pipeline");
    uint64_t checksum = 0;
    for (int s = 0; s < nspecs; s++) {
        cl_augment *a = cl_augment_new();
        char err[256];
        if (!a || cl_augment_parse(a, specs[s], err, sizeof err) != CL_OK) {
            fprintf(stderr, "%s\n", a ? err : "out of memory");
            return 1;
        }
        double rate = run(a, data, n, h, w, c, epochs, &checksum);
        printf("%14.0f  %10.3f  %s\n", rate, 1e6 / rate, specs[s]);
        fflush(stdout);
        cl_augment_free(a);
    }
    printf("(checksum %llu)\n", (unsigned long long)checksum);
    free(data);
    return 0;
}
