/* main.c: the small program tests/test_deploy.c links with an exported model.c:
 *   ./prog IMAGES LOGITS N [REPEAT]
 * reads N images [C][H][W] (float32, 0..1) from IMAGES, writes N x MODEL_CLASSES
 * float32 logits to LOGITS, and with REPEAT > 0 times REPEAT passes over the images
 * and prints "latency_us X" (mean microseconds per model_predict call). C99, as
 * model.c. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

#define IMAGE (MODEL_INPUT_C * MODEL_INPUT_H * MODEL_INPUT_W)

int main(int argc, char **argv) {
    FILE *in, *out;
    float *images, logits[MODEL_CLASSES];
    long n, repeat, i, r;
    volatile int sink = 0;
    if (argc < 4) {
        fprintf(stderr, "usage: %s IMAGES LOGITS N [REPEAT]\n", argv[0]);
        return 2;
    }
    n = atol(argv[3]);
    repeat = argc > 4 ? atol(argv[4]) : 0;
    images = malloc((size_t)n * IMAGE * sizeof *images);
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!images || !in || !out || fread(images, sizeof *images, (size_t)n * IMAGE, in) != (size_t)n * IMAGE) {
        fprintf(stderr, "%s: cannot read %ld images from %s or open %s\n", argv[0], n, argv[1], argv[2]);
        return 1;
    }
    for (i = 0; i < n; i++) {
        model_predict(images + i * IMAGE, logits);
        if (fwrite(logits, sizeof *logits, MODEL_CLASSES, out) != MODEL_CLASSES) return 1;
    }
    if (fclose(out) != 0) return 1;
    fclose(in);
    if (repeat > 0) {
        clock_t t0 = clock();
        for (r = 0; r < repeat; r++)
            for (i = 0; i < n; i++) sink += model_predict(images + i * IMAGE, logits);
        printf("latency_us %.1f\n", 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / (double)(repeat * n));
    }
    free(images);
    return 0;
}
