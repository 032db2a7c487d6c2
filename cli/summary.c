/* summary.c: `cnnlab summary MODEL [--input CxHxW] [--max-params N]`: print the model
 * table and check a parameter budget. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_summary(int argc, char **argv) {
    const char *path = NULL;
    cl_shape input;
    bool has_input = false;
    long long max_params = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--input") && i + 1 < argc) {
            if (!cli_parse_shape(argv[++i], &input)) {
                cli_error("--input: expected CxHxW (e.g. 3x32x32), got '%s'", argv[i]);
                return EXIT_USAGE;
            }
            has_input = true;
        } else if (!strcmp(a, "--max-params") && i + 1 < argc) {
            if (!cli_parse_count(argv[++i], &max_params)) {
                cli_error("--max-params: expected a whole number, got '%s'", argv[i]);
                return EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            cli_error("summary: unknown or incomplete option '%s'", a);
            fprintf(stderr, "usage: cnnlab summary MODEL [--input CxHxW] [--max-params N]\n");
            return EXIT_USAGE;
        } else if (!path) {
            path = a;
        } else {
            cli_error("summary: one model file at a time (got '%s' and '%s')", path, a);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: cnnlab summary MODEL [--input CxHxW] [--max-params N]\n");
        return EXIT_USAGE;
    }
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
