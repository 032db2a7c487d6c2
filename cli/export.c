/* export.c: `cnnlab export CHECKPOINT --format FORMAT ...`: the trained network in a
 * form that runs outside cnnlab. This holds the command's options and dispatches on
 * --format; `c` (one dependency-free C file, float32 or int8) is cli/export_c.c. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define X(field) offsetof(export_options, field)

static const cli_option export_options_table[] = {
    {"format", OPT_TEXT, X(format), "what to write: c (model.c and model.h)", .arg = "c"},
    {"out", OPT_TEXT, X(out), "the folder to write into", .arg = "DIR", .short_name = 'o'},
    {"int8", OPT_FLAG, X(int8), "quantize to int8 (weights per output channel, activations "
     "per tensor)", .def = "off"},
    {"calib", OPT_INT, X(calib), "--int8: calibrate on N training images", .def = "1000",
     .min = 1, .max = 1000000},
    {"data", OPT_TEXT, X(data), "--int8: the dataset whose training split calibrates",
     .arg = "NAME|DIR", .def = "the checkpoint's"},
    {"data-dir", OPT_TEXT, X(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {0},
};

static int cmd_export(int argc, char **argv);

const cli_command export_command = {
    .name = "export",
    .operands = "CHECKPOINT",
    .summary = "the trained network as one dependency-free C file, float32 or int8",
    .description =
        "Writes a checkpoint written by train in inference form (BatchNorm folded,\n"
        "dropout left out). --format c writes DIR/model.c and DIR/model.h: C99 with no\n"
        "allocation and nothing but libm, int model_predict(const float *pixels, float\n"
        "*logits), pixels CHW on the 0..1 scale. --int8 quantizes it, calibrated on\n"
        "--calib training images. See docs/deploy.md.",
    .options = export_options_table,
    .run = cmd_export,
};

static int cmd_export(int argc, char **argv) {
    export_options o = {.calib = 1000};
    const char *path = NULL;
    int n = cli_parse(&export_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (!path || !o.format || !o.out) {
        if (path && !o.format) cli_error("export: give the format: --format c");
        else if (path) cli_error("export: give the output folder with -o DIR");
        cli_print_usage(&export_command, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(o.format, "c")) return cli_export_c(path, &o);
    cli_error("export: unknown format '%s' (this build has: c)", o.format);
    return EXIT_USAGE;
}
