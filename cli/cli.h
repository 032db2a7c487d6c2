/* cli.h: shared pieces of the cnnlab command-line program: the subcommand entry
 * points and small argument-parsing helpers. Only the CLI prints and exits. */
#ifndef CNNLAB_CLI_H
#define CNNLAB_CLI_H

#include <stdbool.h>

#include "cnnlab.h"

/* Exit codes: 0 success, 1 failure (bad model, over budget, I/O), 2 bad usage. */
enum { EXIT_USAGE = 2 };

int cmd_summary(int argc, char **argv);

/* ---- datasets (data.c) ---- */

/* A dataset found on disk: its kind ("cifar10", "cifar100", "mnist",
 * "fashion-mnist" or "folder") and the folder that holds it. */
typedef struct {
    char kind[32];
    char dir[4096];
} cli_dataset_ref;

typedef struct {
    int h, w;
} cli_image_size;

/* Find a dataset by name (searching --data-dir DIR, $CNNLAB_DATA, ./data,
 * ../shared/data) or recognise a folder. Prints what to put where on failure. */
bool cli_resolve_dataset(const char *name, const char *data_dir, cli_dataset_ref *ref);
/* Load one split; image folders may be resized (resize NULL or 0x0: no resize).
 * Prints the error on failure. */
bool cli_load_dataset(const cli_dataset_ref *ref, cl_split split, const cli_image_size *resize,
                      cl_dataset *ds);
/* Both steps at once. */
bool cli_open_dataset(const char *name, const char *data_dir, cl_split split, cl_dataset *ds);

/* Print "cnnlab: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "CxHxW". */
bool cli_parse_shape(const char *s, cl_shape *out);
/* Parse a non-negative integer, allowing "_" or "," as thousands separators. */
bool cli_parse_count(const char *s, long long *out);

#endif
