/* summary.c: `cnnlab summary MODEL [--input CxHxW] [--max-params N]`: print the model
 * table and check a parameter budget. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    cl_shape input;       /* c == 0: the file's own */
    long long max_params; /* -1: no budget */
} summary_options;

static const cli_option summary_options_table[] = {
    {"input", OPT_SHAPE, offsetof(summary_options, input), "replace the model file's input shape",
     .arg = "CxHxW"},
    {"max-params", OPT_INT, offsetof(summary_options, max_params),
     "exit 1 if the model has more trainable parameters than N", .min = 0, .max = 1e12},
    {0},
};

static int cmd_summary(int argc, char **argv);

const cli_command summary_command = {
    .name = "summary",
    .operands = "MODEL",
    .summary = "layers, output shapes, parameters, receptive fields, MACs and memory",
    .description =
        "Prints the layer table of a model file (type, name, output shape, trainable\n"
        "parameters, receptive field and jump, multiply-accumulates, model-file line),\n"
        "the totals and the memory per image. With --max-params N, says whether the\n"
        "model is within that budget and exits 1 if it is not.",
    .options = summary_options_table,
    .run = cmd_summary,
};

static int cmd_summary(int argc, char **argv) {
    summary_options o = {.max_params = -1};
    const char *path = NULL;
    int n = cli_parse(&summary_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (!path) {
        cli_print_usage(&summary_command, stderr);
        return EXIT_USAGE;
    }
    bool has_input = o.input.c > 0;
    cl_shape input = o.input;
    long long max_params = o.max_params;
    char err[1024];
    cl_model *m = cl_load_model(path, has_input ? &input : NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cl_model_print_summary(m, path, stdout);
    int rc = 0;
    if (max_params >= 0) {
        long long n = cl_model_param_count(m);
        if (n > max_params) {
            printf("Over budget: %lld trainable parameters, %lld more than the limit of %lld\n", n,
                   n - max_params, max_params);
            rc = 1;
        } else {
            printf("Within budget: %lld trainable parameters <= %lld (%lld to spare)\n", n,
                   max_params, max_params - n);
        }
    }
    cl_model_free(m);
    return rc;
}
