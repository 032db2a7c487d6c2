/* error.c: formatting an error message into a caller's buffer. */
#include <stdarg.h>
#include <stdio.h>

#include "util/util.h"

cl_status cl_errorf(char *err, size_t errlen, cl_status st, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}
