/* stats.c: `cnnlab stats DATASET [--data-dir DIR] [--grid OUT.png] [--per-class N]`:
 * the first look at a dataset that a course notebook starts with: images per split
 * and per class, per-channel min, max, mean, std and variance on the 0..1 scale (the
 * figures transforms.Normalize wants), and a PNG grid of samples of every class. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "draw/grid.h"

static const char *channel_name(int c, int C) {
    static const char *const rgb[3] = {"R", "G", "B"};
    return C == 3 ? rgb[c] : C == 1 ? "grey" : "ch";
}

static void print_channel_stats(const char *split, const cl_dataset *ds) {
    cl_channel_stats st[8];
    cl_dataset_stats(ds, st, NULL);
    printf("\nPer-channel statistics of %s on the 0..1 scale:\n", split);
    printf("  %-7s %8s %8s %8s %8s %8s\n", "channel", "min", "max", "mean", "std", "var");
    for (int c = 0; c < ds->c; c++)
        printf("  %-7s %8.4f %8.4f %8.4f %8.4f %8.4f\n", channel_name(c, ds->c), st[c].min,
               st[c].max, st[c].mean, st[c].std, st[c].var);
    printf("  transforms.Normalize((");
    for (int c = 0; c < ds->c; c++) printf("%s%.4f", c ? ", " : "", st[c].mean);
    printf("%s), (", ds->c == 1 ? "," : "");
    for (int c = 0; c < ds->c; c++) printf("%s%.4f", c ? ", " : "", st[c].std);
    printf("%s))\n", ds->c == 1 ? "," : "");
}

static bool write_grid(const char *path, const cl_dataset *ds, int per_class) {
    int K = ds->classes, count = K * per_class;
    const uint8_t **images = calloc((size_t)count, sizeof *images);
    int *filled = calloc((size_t)K, sizeof *filled);
    if (!images || !filled) {
        free(images);
        free(filled);
        cli_error("out of memory");
        return false;
    }
    size_t size = (size_t)ds->h * ds->w * ds->c;
    for (int i = 0; i < ds->n; i++) {
        int y = ds->labels[i];
        if (filled[y] < per_class) images[y * per_class + filled[y]++] = ds->images + (size_t)i * size;
    }
    char title[128];
    snprintf(title, sizeof title, "%d training images per class", per_class);
    grid_spec g = {.images = images, .count = count, .h = ds->h, .w = ds->w, .c = ds->c,
                   .columns = per_class, .title = title,
                   .row_labels = (const char *const *)ds->class_names};
    char err[512];
    bool ok = grid_write_png(path, &g, err, sizeof err);
    if (!ok) cli_error("%s", err);
    free(images);
    free(filled);
    return ok;
}

typedef struct {
    const char *data, *data_dir, *grid;
    long long per_class;
} stats_options;

static const cli_option stats_options_table[] = {
    {"data", OPT_TEXT, offsetof(stats_options, data), "the dataset, instead of the DATASET operand",
     .arg = "NAME|DIR"},
    {"data-dir", OPT_TEXT, offsetof(stats_options, data_dir), "where to look for named datasets first",
     .arg = "DIR"},
    {"grid", OPT_TEXT, offsetof(stats_options, grid), "write a PNG grid of --per-class training images of every class",
     .arg = "OUT.png"},
    {"per-class", OPT_INT, offsetof(stats_options, per_class), "images per class in the grid",
     .def = "8", .min = 1, .max = 100},
    {0},
};

static int cmd_stats(int argc, char **argv);

const cli_command stats_command = {
    .name = "stats",
    .operands = "DATASET",
    .summary = "images per split and class, per-channel statistics, a sample grid",
    .description =
        "DATASET is cifar10, cifar100, mnist, fashion-mnist or an image folder. Prints\n"
        "the images per split and per class, and per channel the min, max, mean, std\n"
        "and variance on the 0..1 scale with the transforms.Normalize(...) line they\n"
        "give; --grid draws training images of every class.",
    .options = stats_options_table,
    .run = cmd_stats,
};

static int cmd_stats(int argc, char **argv) {
    stats_options o = {.per_class = 8};
    const char *name = NULL;
    int n = cli_parse(&stats_command, &o, argc - 1, argv + 1, &name, 1);
    if (n < 0) return cli_parse_status(n);
    if (name && o.data) {
        cli_error("stats: one dataset at a time (got '%s' and --data '%s')", name, o.data);
        return EXIT_USAGE;
    }
    if (!name) name = o.data;
    if (!name) {
        cli_print_usage(&stats_command, stderr);
        return EXIT_USAGE;
    }
    const char *data_dir = o.data_dir, *grid = o.grid;
    long long per_class = o.per_class;
    cli_dataset_ref ref;
    if (!cli_resolve_dataset(name, data_dir, &ref)) return 1;
    cl_dataset train = {0}, test = {0};
    if (!cli_load_dataset(&ref, CL_SPLIT_TRAIN, NULL, &train)) return 1;
    /* an image folder may have no test split (DIR/<class>/ alone) */
    char test_dir[4200];
    snprintf(test_dir, sizeof test_dir, "%s/test", ref.dir);
    bool has_test = strcmp(ref.kind, "folder") != 0 || access(test_dir, F_OK) == 0;
    if (has_test && !cli_load_dataset(&ref, CL_SPLIT_TEST, NULL, &test)) {
        cl_dataset_free(&train);
        return 1;
    }
    printf("Dataset: %s (%s)\n", name, ref.dir);
    printf("  %-6s %8s %8s  %s\n", "split", "images", "classes", "shape (CxHxW)");
    printf("  %-6s %8d %8d  %dx%dx%d\n", "train", train.n, train.classes, train.c, train.h, train.w);
    if (has_test)
        printf("  %-6s %8d %8d  %dx%dx%d\n", "test", test.n, test.classes, test.c, test.h, test.w);
    int64_t *ctrain = calloc((size_t)train.classes, sizeof *ctrain);
    int64_t *ctest = calloc((size_t)train.classes + (size_t)test.classes, sizeof *ctest);
    if (!ctrain || !ctest) {
        cli_error("out of memory");
        return 1;
    }
    cl_dataset_stats(&train, NULL, ctrain);
    if (has_test) cl_dataset_stats(&test, NULL, ctest);
    printf("\nImages per class:\n  %-16s %8s %8s\n", "class", "train", has_test ? "test" : "");
    for (int k = 0; k < train.classes; k++) {
        printf("  %-16s %8lld", train.class_names[k], (long long)ctrain[k]);
        if (has_test && k < test.classes) printf(" %8lld", (long long)ctest[k]);
        printf("\n");
    }
    print_channel_stats("train", &train);
    if (has_test) print_channel_stats("test", &test);
    int rc = 0;
    if (grid) {
        if (write_grid(grid, &train, (int)per_class))
            printf("\nWrote %s: %lld training images of each class\n", grid, per_class);
        else
            rc = 1;
    }
    free(ctrain);
    free(ctest);
    cl_dataset_free(&train);
    cl_dataset_free(&test);
    return rc;
}
