/* harness.h: the C tests' shared harness: loading the PyTorch reference fixtures
 * written by tests/ref/fixture.py, comparing float arrays with a tolerance, and
 * the pass/fail bookkeeping every test binary prints ("ok - NAME" or
 * "FAIL - NAME: ..." per check group, then one "N passed, N failed" line). */
#ifndef CNNLAB_TEST_HARNESS_H
#define CNNLAB_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnnlab.h"

#define FX_FLAG_TRAIN 1u
#define FX_FLAG_INPUT_GRAD 2u
#define FX_MAX_DIMS 8

typedef struct {
    const char *name;
    int ndim;
    int64_t dims[FX_MAX_DIMS];
    size_t numel;
    const float *data;
} fx_tensor;

typedef struct {
    const char *name;
    const char *model_text;
    size_t model_len;
    uint32_t flags;
    int ntensors;
    fx_tensor *tensors;
} fx_case;

typedef struct {
    int ncases;
    fx_case *cases;
} fx_file;

/* Load a fixture file. On error returns NULL and writes a message into err. */
fx_file *fx_load(const char *path, char *err, size_t errlen);
void fx_free(fx_file *f);
/* The tensor with this name, or NULL. */
const fx_tensor *fx_find(const fx_case *c, const char *name);
/* The tensor with this name; records a failure in the current group if missing. */
const fx_tensor *fx_need(const fx_case *c, const char *name);
/* The case's "tol" (atol, rtol); records a failure and uses (0, 0) if missing. */
void fx_tol(const fx_case *c, const char *name, double *atol, double *rtol);
/* Whether a tensor is a state_dict entry ("layers.I.attr"). */
bool fx_is_state(const fx_tensor *t);

/* ---- fixture cases and models ---------------------------------------------------
 * Failures are recorded in the current check group (t_fail). These work in both
 * builds of the library (cl_real float, and double for the gradient check). */

/* Parse the case's model file and compile it with a; NULL after a failure. */
cl_model *fx_model(const fx_case *c, cl_compile_args a);
/* Set every state_dict tensor of the case ("layers.I.attr") in m. They must be
 * exactly m's tensors (names and sizes); returns false after failures. */
bool fx_load_state(cl_model *m, const fx_case *c);
/* Compare each tensor of the case named PREFIX.NAME (prefix "grad.", "after.",
 * "final.", ...) with m's tensor NAME: its gradient when grad is true, else its
 * value. Returns how many were compared. */
int fx_check_tensors(cl_model *m, const fx_case *c, const char *prefix, bool grad, double atol,
                     double rtol);
/* A labels tensor (class indices stored as floats) as malloc'ed int32. */
int32_t *fx_labels(const fx_tensor *t);

/* ---- bookkeeping ----------------------------------------------------------- */

/* Start a check group; every failure recorded until t_end() belongs to it. */
void t_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Record a failure (the first one becomes the FAIL line's reason). */
void t_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* End the group: prints "ok - NAME" or "FAIL - NAME: reason"; returns whether it passed. */
bool t_end(void);
/* Print "N passed, N failed" and return the exit code (1 if any failed). */
int t_finish(void);

/* Compare n floats: a mismatch is |got - want| > atol + rtol * |want| or a non-finite
 * got where want is finite. Reports the count, the max abs error and the first
 * mismatching index, records a failure, and returns false on any mismatch. The
 * environment variable CL_TEST_TOL_SCALE, for diagnostics, scales atol and rtol. */
bool check_close(const char *what, const float *got, const float *want, size_t n,
                 double atol, double rtol);

/* Layout helpers for fixture tensors: a malloc'ed NHWC copy of an NCHW tensor
 * (4-D [N,C,H,W]); aborts when out of memory. */
float *fx_to_nhwc(const fx_tensor *t);
void *xmalloc(size_t n);

#endif
