/* augment_preview.c: `cnnlab augment-preview [DATASET] [--data DIR] --aug SPEC
 * [--grid OUT.png] [--n N] [--k K] [--seed S] [--scale F]`: picks N training images
 * (at random, from the seed) and draws a grid with one row per image: the original,
 * then K augmented versions. Version j is exactly what `cnnlab train --seed S
 * --aug SPEC` feeds in epoch j: the batch loader keys each image's augmentation by
 * (epoch << 32 | index), and so does this command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "draw/grid.h"

#define MAX_N 1000
#define MAX_K 50

static void usage(FILE *f) {
    fprintf(f,
            "usage: cnnlab augment-preview [DATASET] [--data DIR] --aug SPEC [--grid OUT.png]\n"
            "                              [--n N] [--k K] [--seed S] [--scale F]\n"
            "  DATASET      cifar10 (default), cifar100, mnist, fashion-mnist or an image folder\n"
            "  --aug SPEC   the augmentation, e.g. crop:4:reflect,hflip,cutout:8\n"
            "               (docs/augmentation.md)\n"
            "  --grid PATH  the PNG to write (default augment-preview.png)\n"
            "  --n N        training images, one per row (default 8)\n"
            "  --k K        augmented versions of each, epochs 1..K (default 5)\n"
            "  --seed S     picks the images and seeds the augmentation as train --seed (default 1)\n"
            "  --scale F    enlarge the images F times (default: cells of about 96 pixels)\n");
}

/* splitmix64: the image choice (the CLI's own stream; no global state). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A whole number in [lo, hi] for option name, or a usage error. */
static bool count_arg(const char *name, const char *v, long long lo, long long hi, long long *out) {
    if (!cli_parse_count(v, out) || *out < lo || *out > hi) {
        cli_error("augment-preview: %s expects a whole number from %lld to %lld, got '%s'", name, lo,
                  hi, v);
        return false;
    }
    return true;
}

int cmd_augment_preview(int argc, char **argv) {
    const char *dataset = NULL, *data_dir = NULL, *spec = NULL, *out = "augment-preview.png";
    long long n = 8, k = 5, seed = 1, scale = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            /* --name VALUE or --name=VALUE */
            char name[32];
            const char *eq = strchr(a, '=');
            const char *val = NULL;
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len >= sizeof name) len = sizeof name - 1;
            memcpy(name, a, len);
            name[len] = '\0';
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            }
            bool ok = true;
            if (!val) {
                cli_error("augment-preview: %s needs a value", name);
                ok = false;
            } else if (!strcmp(name, "--data") || !strcmp(name, "--data-dir")) {
                data_dir = val;
            } else if (!strcmp(name, "--aug")) {
                spec = val;
            } else if (!strcmp(name, "--grid") || !strcmp(name, "--out") || !strcmp(name, "-o")) {
                out = val;
            } else if (!strcmp(name, "--n")) {
                ok = count_arg("--n", val, 1, MAX_N, &n);
            } else if (!strcmp(name, "--k")) {
                ok = count_arg("--k", val, 1, MAX_K, &k);
            } else if (!strcmp(name, "--seed")) {
                ok = count_arg("--seed", val, 0, 1LL << 50, &seed);
            } else if (!strcmp(name, "--scale")) {
                ok = count_arg("--scale", val, 1, 64, &scale);
            } else {
                cli_error("augment-preview: unknown option '%s'", name);
                ok = false;
            }
            if (!ok) {
                usage(stderr);
                return EXIT_USAGE;
            }
        } else if (!dataset) {
            dataset = a;
        } else {
            cli_error("augment-preview: one dataset at a time (got '%s' and '%s')", dataset, a);
            return EXIT_USAGE;
        }
    }
    if (!spec) {
        cli_error("augment-preview: --aug SPEC is required (e.g. --aug crop:4:reflect,hflip,cutout:8)");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!dataset) dataset = "cifar10";

    char err[512];
    cl_augment *aug = cl_augment_new();
    if (!aug) {
        cli_error("out of memory");
        return 1;
    }
    if (cl_augment_parse(aug, spec, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        cl_augment_free(aug);
        return EXIT_USAGE;
    }
    cl_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (!cli_open_dataset(dataset, data_dir, CL_SPLIT_TRAIN, &ds)) {
        cl_augment_free(aug);
        return 1;
    }
    if (n > ds.n) n = ds.n;
    int rows = (int)n, cols = (int)k + 1;
    size_t size = (size_t)ds.h * ds.w * ds.c;
    int32_t *pick = malloc((size_t)rows * sizeof *pick);
    uint8_t *pixels = malloc(size * (size_t)rows * cols + size); /* + the scratch */
    const uint8_t **images = malloc((size_t)rows * cols * sizeof *images);
    char (*labels)[96] = malloc((size_t)rows * sizeof *labels);
    char (*colnames)[24] = malloc((size_t)cols * sizeof *colnames);
    const char **row_labels = malloc((size_t)rows * sizeof *row_labels);
    const char **col_labels = malloc((size_t)cols * sizeof *col_labels);
    int rc = 1;
    if (!pick || !pixels || !images || !labels || !colnames || !row_labels || !col_labels) {
        cli_error("out of memory");
        goto done;
    }
    /* n distinct images (rejection: n is at most 1000 and at most the dataset). */
    uint64_t state = (uint64_t)seed ^ 0x5EEDF00Dull;
    for (int r = 0; r < rows; r++) {
        int32_t idx;
        bool dup;
        do {
            idx = (int32_t)(next_u64(&state) % (uint64_t)ds.n);
            dup = false;
            for (int q = 0; q < r && !dup; q++) dup = pick[q] == idx;
        } while (dup);
        pick[r] = idx;
    }
    uint8_t *scratch = pixels + size * (size_t)rows * cols;
    for (int r = 0; r < rows; r++) {
        const uint8_t *src = ds.images + (size_t)pick[r] * size;
        for (int j = 0; j < cols; j++) {
            uint8_t *dst = pixels + size * ((size_t)r * cols + j);
            memcpy(dst, src, size);
            if (j > 0) {
                /* Epoch j - 1 of the loader's numbering, shown as epoch j. */
                uint64_t key = ((uint64_t)(uint32_t)(j - 1) << 32) | (uint32_t)pick[r];
                cl_augment_apply(aug, dst, ds.h, ds.w, ds.c, (uint64_t)seed, key, scratch);
            }
            images[r * cols + j] = dst;
        }
        int label = ds.labels[pick[r]];
        const char *cname = ds.class_names && label >= 0 && label < ds.classes ? ds.class_names[label] : NULL;
        if (cname)
            snprintf(labels[r], sizeof labels[r], "#%d %s", (int)pick[r], cname);
        else
            snprintf(labels[r], sizeof labels[r], "#%d class %d", (int)pick[r], label);
        row_labels[r] = labels[r];
    }
    for (int j = 0; j < cols; j++) {
        if (j == 0)
            snprintf(colnames[j], sizeof colnames[j], "original");
        else
            snprintf(colnames[j], sizeof colnames[j], "epoch %d", j);
        col_labels[j] = colnames[j];
    }
    char title[512];
    snprintf(title, sizeof title, "%s train, --aug %s, --seed %lld", dataset, spec, seed);
    grid_spec g = {
        .images = images,
        .count = rows * cols,
        .h = ds.h,
        .w = ds.w,
        .c = ds.c,
        .columns = cols,
        .scale = (int)scale,
        .title = title,
        .row_labels = row_labels,
        .column_labels = col_labels,
    };
    if (!grid_write_png(out, &g, err, sizeof err)) {
        cli_error("%s", err);
        goto done;
    }
    printf("Wrote %s: %d training images of %s, each with %d augmented versions (--aug %s, --seed %lld)\n",
           out, rows, dataset, (int)k, spec, seed);
    rc = 0;
done:
    free(pick);
    free(pixels);
    free(images);
    free(labels);
    free(colnames);
    free(row_labels);
    free(col_labels);
    cl_dataset_free(&ds);
    cl_augment_free(aug);
    return rc;
}
