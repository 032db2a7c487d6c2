/* export.c: `cnnlab export CHECKPOINT --format FORMAT ...`: the trained network in a
 * form that runs outside cnnlab. This dispatches on --format; `c` (one
 * dependency-free C file, float32 or int8) is cli/export_c.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_export(int argc, char **argv) {
    const char *format = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[i + 1];
        else if (!strncmp(argv[i], "--format=", 9)) format = argv[i] + 9;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) format = format ? format : "c";
    }
    if (format && !strcmp(format, "c")) return cmd_export_c(argc, argv);
    if (!format) cli_error("export: give the format: --format c");
    else cli_error("export: unknown format '%s' (this build has: c)", format);
    fprintf(stderr, "usage: cnnlab export CHECKPOINT --format c -o DIR [--int8] [--calib N]\n");
    return EXIT_USAGE;
}
