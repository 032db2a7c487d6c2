/* file.c: the one whole-file reader of libcnnlab and the CLI: a small file (model
 * file, class names, metrics.csv, ...) read into memory with a size cap, and a
 * message naming the file for each way that fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

/* "16 MiB" or "1000 bytes": the cap as the message says it. */
static void size_text(size_t bytes, char *buf, size_t len) {
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, len, "%zu bytes", bytes);
}

cl_status cl_read_file(const char *path, const char *what, size_t max_bytes, char **out,
                       size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int saved = errno;
        cl_status st = cl_errorf(err, errlen, saved == ENOMEM ? CL_ERR_NOMEM : CL_ERR_IO,
                                 "%s: cannot open %s: %s", path, what, strerror(saved));
        errno = saved;
        return st;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        errno = EISDIR;
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot read %s: it is a directory", path,
                         what);
    }
    /* Sized by the file when it says (a pipe does not): one byte more than the cap
     * tells an oversized file; the last byte holds the NUL. */
    size_t cap = S_ISREG(sb.st_mode) && sb.st_size >= 0 && (uintmax_t)sb.st_size < max_bytes
                     ? (size_t)sb.st_size + 2
                     : 1 << 16;
    size_t len = 0;
    char *buf = malloc(cap);
    cl_status st = CL_OK;
    while (buf) {
        if (len + 1 == cap) {
            if (cap > max_bytes + 1) break;
            size_t grown = cap * 2 > max_bytes + 2 ? max_bytes + 2 : cap * 2;
            char *more = realloc(buf, grown);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap = grown;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    char limit[32];
    size_text(max_bytes, limit, sizeof limit);
    if (!buf)
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "%s: out of memory reading %s", path, what);
    else if (ferror(f))
        st = cl_errorf(err, errlen, CL_ERR_IO, "%s: read error in %s", path, what);
    else if (len > max_bytes)
        st = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: %s is larger than %s", path, what, limit);
    fclose(f);
    if (st != CL_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return CL_OK;
}
