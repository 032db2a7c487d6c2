/* common.c: the small helpers every command uses: the error line, the parsers of
 * a shape and of a count, the arg-max of a row of logits. (main.c only
 * dispatches.) */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "dist.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (dist_size() > 1) /* under MPI: which rank says it */
        fprintf(stderr, "cnnlab (rank %d): ", dist_rank());
    else
        fputs("cnnlab: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool cli_parse_shape(const char *s, cl_shape *out) {
    char *end;
    long v[3];
    for (int i = 0; i < 3; i++) {
        errno = 0;
        v[i] = strtol(s, &end, 10);
        if (end == s || errno || v[i] < 1 || v[i] > 65536) return false;
        if (i < 2 && *end != 'x') return false;
        s = end + (i < 2);
    }
    if (*end) return false;
    *out = (cl_shape){(int)v[0], (int)v[1], (int)v[2]};
    return true;
}

bool cli_parse_count(const char *s, long long *out) {
    long long v = 0;
    int digits = 0;
    for (; *s; s++) {
        if (*s == '_' || *s == ',') continue;
        if (*s < '0' || *s > '9' || v > (1LL << 50)) return false;
        v = v * 10 + (*s - '0');
        digits++;
    }
    if (!digits) return false;
    *out = v;
    return true;
}

int cli_argmax(const cl_real *x, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (x[k] > x[best]) best = k;
    return best;
}
