/* util.h: small helpers shared by every part of libcnnlab (the network code, the
 * datasets, the file formats): error messages without a model, paths, whole-file
 * reads, and the library's random numbers. Nothing here depends on the model. */
#ifndef CNNLAB_UTIL_H
#define CNNLAB_UTIL_H

#include <stdint.h>

#include "cnnlab.h"

/* Format a message into err (when not NULL) and return st: the library's way to
 * report a failure where there is no model to hold it (src/util/error.c). */
cl_status cl_errorf(char *err, size_t errlen, cl_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A malloc'ed "dir/name" (or just name when dir is empty); NULL when out of memory
 * (src/util/path.c). */
char *cl_path_join(const char *dir, const char *name);

/* Read the whole file at path (src/util/file.c) into *out (malloc'ed, with a NUL
 * after the *out_len bytes; out_len may be NULL). what names the file in the
 * messages ("the model file"): "PATH: cannot open WHAT: REASON" (errno kept, so
 * a caller can tell ENOENT), "PATH: cannot read WHAT: it is a directory",
 * "PATH: WHAT is larger than CAP" (more than max_bytes), read errors. */
cl_status cl_read_file(const char *path, const char *what, size_t max_bytes, char **out,
                       size_t *out_len, char *err, size_t errlen);

/* Random numbers (src/util/rng.c): xoshiro256**, state in the caller's struct. */
void cl_rng_seed(uint64_t s[4], uint64_t seed);
uint64_t cl_rng_next(uint64_t s[4]);
cl_real cl_rng_uniform(uint64_t s[4]); /* [0, 1) */
/* A keyed hash of a counter: dropout masks independent of the thread split. */
static inline uint32_t cl_hash32(uint32_t key, uint32_t counter) {
    uint32_t x = counter * 0x9E3779B1u ^ key;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

#endif
