/* cli.h: shared pieces of the cnnlab command-line program: the subcommand entry
 * points and small argument-parsing helpers. Only the CLI prints and exits. */
#ifndef CNNLAB_CLI_H
#define CNNLAB_CLI_H

#include <stdbool.h>

#include "cnnlab.h"

/* Exit codes: 0 success, 1 failure (bad model, over budget, I/O), 2 bad usage. */
enum { EXIT_USAGE = 2 };

int cmd_summary(int argc, char **argv);

/* Print "cnnlab: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "CxHxW". */
bool cli_parse_shape(const char *s, cl_shape *out);
/* Parse a non-negative integer, allowing "_" or "," as thousands separators. */
bool cli_parse_count(const char *s, long long *out);

#endif
