/* augment_preview.c: `cnnlab augment-preview [DATASET] [--data DIR] --aug SPEC
 * [--grid OUT.png] [--n N] [--k K] [--seed S] [--scale F]`: picks N training images
 * (at random, from the seed) and draws a grid with one row per image: the original,
 * then K augmented versions. Version j is exactly what `cnnlab train --seed S
 * --aug SPEC` feeds in epoch j: the batch loader keys each image's augmentation by
 * (epoch << 32 | index), and so does this command. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "draw/grid.h"

#define MAX_N 1000
#define MAX_K 50

/* splitmix64: the image choice (the CLI's own stream; no global state). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    const char *data_dir, *aug, *grid;
    long long n, k, seed, scale;
} preview_options;

#define P(field) offsetof(preview_options, field)

static const cli_option preview_options_table[] = {
    {"aug", OPT_TEXT, P(aug),
     "the augmentation, e.g. crop:4:reflect,hflip,cutout:8 (docs/augmentation.md); required",
     .arg = "SPEC"},
    {"data-dir", OPT_TEXT, P(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {"data", OPT_TEXT, P(data_dir), "the same as --data-dir", .arg = "DIR"},
    {"grid", OPT_TEXT, P(grid), "the PNG to write", .arg = "OUT.png", .def = "augment-preview.png"},
    {"out", OPT_TEXT, P(grid), "the same as --grid (also -o)", .arg = "OUT.png", .short_name = 'o'},
    {"n", OPT_INT, P(n), "training images, one per row", .def = "8", .min = 1, .max = MAX_N},
    {"k", OPT_INT, P(k),
     "augmented versions of each, epochs 1..K", .arg = "K", .def = "5", .min = 1,
     .max = MAX_K},
    {"seed", OPT_INT, P(seed), "picks the images and seeds the augmentation as train --seed",
     .arg = "S", .def = "1", .min = 0, .max = 1125899906842624.0},
    {"scale", OPT_INT, P(scale), "enlarge the images F times", .arg = "F",
     .def = "cells of about 96 pixels", .min = 1, .max = 64},
    {0},
};

static int cmd_augment_preview(int argc, char **argv);

const cli_command augment_preview_command = {
    .name = "augment-preview",
    .operands = "[DATASET]",
    .summary = "training images beside augmented versions of them",
    .description =
        "DATASET is cifar10 (the default), cifar100, mnist, fashion-mnist or an image\n"
        "folder. Picks N training images (at random, from the seed) and draws a grid\n"
        "with one row per image: the original, then K augmented versions; version j is\n"
        "exactly what `cnnlab train --seed S --aug SPEC` feeds in epoch j.",
    .options = preview_options_table,
    .run = cmd_augment_preview,
};

/* n distinct indices into a dataset of `count` images, drawn from the seed
 * (rejection: n is at most 1000 and at most the dataset). */
static void pick_images(int32_t *pick, int n, int count, long long seed) {
    uint64_t state = (uint64_t)seed ^ 0x5EEDF00Dull;
    for (int r = 0; r < n; r++) {
        int32_t idx;
        bool dup;
        do {
            idx = (int32_t)(next_u64(&state) % (uint64_t)count);
            dup = false;
            for (int q = 0; q < r && !dup; q++) dup = pick[q] == idx;
        } while (dup);
        pick[r] = idx;
    }
}

/* The grid's cells and labels: rows x cols images ([rows][cols], pixels of each),
 * row labels "#index class", column labels "original", "epoch j". */
typedef struct {
    int rows, cols;
    int32_t *pick;
    uint8_t *pixels;
    const uint8_t **images;
    char (*labels)[96];
    char (*colnames)[24];
    const char **row_labels, **col_labels;
} preview_cells;

static bool cells_alloc(preview_cells *p, int rows, int cols, size_t size) {
    p->rows = rows;
    p->cols = cols;
    p->pick = malloc((size_t)rows * sizeof *p->pick);
    p->pixels = malloc(size * (size_t)rows * cols + size); /* + the scratch */
    p->images = malloc((size_t)rows * cols * sizeof *p->images);
    p->labels = malloc((size_t)rows * sizeof *p->labels);
    p->colnames = malloc((size_t)cols * sizeof *p->colnames);
    p->row_labels = malloc((size_t)rows * sizeof *p->row_labels);
    p->col_labels = malloc((size_t)cols * sizeof *p->col_labels);
    return p->pick && p->pixels && p->images && p->labels && p->colnames && p->row_labels &&
           p->col_labels;
}

static void cells_free(preview_cells *p) {
    free(p->pick);
    free(p->pixels);
    free(p->images);
    free(p->labels);
    free(p->colnames);
    free(p->row_labels);
    free(p->col_labels);
}

/* Each picked image, then its augmented versions, and the labels. */
static void cells_fill(preview_cells *p, const cl_dataset *ds, const cl_augment *aug,
                       long long seed) {
    size_t size = (size_t)ds->h * ds->w * ds->c;
    uint8_t *scratch = p->pixels + size * (size_t)p->rows * p->cols;
    for (int r = 0; r < p->rows; r++) {
        const uint8_t *src = ds->images + (size_t)p->pick[r] * size;
        for (int j = 0; j < p->cols; j++) {
            uint8_t *dst = p->pixels + size * ((size_t)r * p->cols + j);
            memcpy(dst, src, size);
            if (j > 0) {
                /* Epoch j - 1 of the loader's numbering, shown as epoch j. */
                uint64_t key = ((uint64_t)(uint32_t)(j - 1) << 32) | (uint32_t)p->pick[r];
                cl_augment_apply(aug, dst, ds->h, ds->w, ds->c, (uint64_t)seed, key, scratch);
            }
            p->images[r * p->cols + j] = dst;
        }
        int label = ds->labels[p->pick[r]];
        const char *cname =
            ds->class_names && label >= 0 && label < ds->classes ? ds->class_names[label] : NULL;
        if (cname)
            snprintf(p->labels[r], sizeof p->labels[r], "#%d %s", (int)p->pick[r], cname);
        else
            snprintf(p->labels[r], sizeof p->labels[r], "#%d class %d", (int)p->pick[r], label);
        p->row_labels[r] = p->labels[r];
    }
    for (int j = 0; j < p->cols; j++) {
        if (j == 0)
            snprintf(p->colnames[j], sizeof p->colnames[j], "original");
        else
            snprintf(p->colnames[j], sizeof p->colnames[j], "epoch %d", j);
        p->col_labels[j] = p->colnames[j];
    }
}

/* Draw the preview of o for dataset ds into o->grid. Prints the error. */
static bool write_preview(const preview_options *o, const char *dataset, const cl_dataset *ds,
                          const cl_augment *aug) {
    int rows = (int)(o->n < ds->n ? o->n : ds->n), cols = (int)o->k + 1;
    preview_cells p = {0};
    bool ok = false;
    if (!cells_alloc(&p, rows, cols, (size_t)ds->h * ds->w * ds->c)) {
        cli_error("out of memory");
        goto done;
    }
    pick_images(p.pick, rows, ds->n, o->seed);
    cells_fill(&p, ds, aug, o->seed);
    char title[512], err[512];
    snprintf(title, sizeof title, "%s train, --aug %s, --seed %lld", dataset, o->aug, o->seed);
    grid_spec g = {
        .images = p.images,
        .count = rows * cols,
        .h = ds->h,
        .w = ds->w,
        .c = ds->c,
        .columns = cols,
        .scale = (int)o->scale,
        .title = title,
        .row_labels = p.row_labels,
        .column_labels = p.col_labels,
    };
    if (!grid_write_png(o->grid, &g, err, sizeof err)) {
        cli_error("%s", err);
        goto done;
    }
    printf("Wrote %s: %d training images of %s, each with %d augmented versions (--aug %s, --seed %lld)\n",
           o->grid, rows, dataset, (int)o->k, o->aug, o->seed);
    ok = true;
done:
    cells_free(&p);
    return ok;
}

static int cmd_augment_preview(int argc, char **argv) {
    preview_options o = {.grid = "augment-preview.png", .n = 8, .k = 5, .seed = 1};
    const char *dataset = NULL;
    int npos = cli_parse(&augment_preview_command, &o, argc - 1, argv + 1, &dataset, 1);
    if (npos < 0) return cli_parse_status(npos);
    if (!o.aug) {
        cli_error("augment-preview: --aug SPEC is required (e.g. --aug crop:4:reflect,hflip,cutout:8)");
        cli_print_usage(&augment_preview_command, stderr);
        return EXIT_USAGE;
    }
    if (!dataset) dataset = "cifar10";

    char err[512];
    cl_augment *aug = cl_augment_new();
    if (!aug) {
        cli_error("out of memory");
        return 1;
    }
    if (cl_augment_parse(aug, o.aug, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        cl_augment_free(aug);
        return EXIT_USAGE;
    }
    cl_dataset ds;
    memset(&ds, 0, sizeof ds);
    int rc = 1;
    if (cli_open_dataset(dataset, o.data_dir, CL_SPLIT_TRAIN, &ds) &&
        write_preview(&o, dataset, &ds, aug))
        rc = 0;
    cl_dataset_free(&ds);
    cl_augment_free(aug);
    return rc;
}
