/* harness.c: fixture loading (every read bounds-checked, the format is described
 * in tests/ref/fixture.py), building a fixture case's model and moving its tensors
 * in and out, tolerance comparisons and the pass/fail bookkeeping shared by the C
 * test binaries. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* ---- fixture files ----------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *path;
    char *err;
    size_t errlen;
    int ncase; /* the case being read, for messages */
    bool bad;
} reader;

static bool rd_fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool rd_fail(reader *r, const char *fmt, ...) {
    if (r->bad) return false;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->ncase >= 0)
        snprintf(r->err, r->errlen, "%s: byte %zu (case %d): %s", r->path, r->pos, r->ncase, msg);
    else
        snprintf(r->err, r->errlen, "%s: byte %zu: %s", r->path, r->pos, msg);
    r->bad = true;
    return false;
}

static bool rd_u32(reader *r, uint32_t *v, const char *what) {
    if (r->bad) return false;
    if (r->len - r->pos < 4) return rd_fail(r, "file truncated reading %s", what);
    const unsigned char *b = r->p + r->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    r->pos += 4;
    return true;
}

/* A NUL-terminated malloc'ed copy of a length-prefixed string. */
static char *rd_str(reader *r, const char *what, size_t *len) {
    uint32_t n = 0;
    if (!rd_u32(r, &n, what)) return NULL;
    if (n > r->len - r->pos) {
        rd_fail(r, "file truncated reading %s (%u bytes, %zu left)", what, n, r->len - r->pos);
        return NULL;
    }
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, r->p + r->pos, n);
    s[n] = '\0';
    r->pos += n;
    if (len) *len = n;
    if (strlen(s) != n) {
        free(s);
        rd_fail(r, "%s contains a NUL byte", what);
        return NULL;
    }
    return s;
}

static bool rd_tensor(reader *r, fx_tensor *t) {
    char *name = rd_str(r, "tensor name", NULL);
    if (!name) return false;
    t->name = name;
    uint32_t ndim = 0;
    if (!rd_u32(r, &ndim, "tensor ndim")) return false;
    if (ndim > FX_MAX_DIMS) return rd_fail(r, "tensor %s has %u dims (max %d)", name, ndim, FX_MAX_DIMS);
    t->ndim = (int)ndim;
    size_t numel = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        uint32_t v = 0;
        if (!rd_u32(r, &v, "tensor dims")) return false;
        t->dims[d] = v;
        if (v != 0 && numel > (SIZE_MAX / 4) / v)
            return rd_fail(r, "tensor %s is too large", name);
        numel *= v;
    }
    t->numel = numel;
    if (numel > (r->len - r->pos) / 4)
        return rd_fail(r, "file truncated in tensor %s data (%zu floats, %zu bytes left)", name,
                       numel, r->len - r->pos);
    float *data = xmalloc(numel * sizeof *data);
    for (size_t i = 0; i < numel; i++) {
        const unsigned char *b = r->p + r->pos + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&data[i], &u, 4);
    }
    r->pos += numel * 4;
    t->data = data;
    return true;
}

fx_file *fx_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) abort();
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }

    reader r = {buf, len, 0, path, err, errlen, -1, false};
    fx_file *fx = xmalloc(sizeof *fx);
    fx->ncases = 0;
    fx->cases = NULL;
    uint32_t version = 0, ncases = 0;
    if (len < 8 || memcmp(buf, "CNLFIX\0\0", 8) != 0) {
        rd_fail(&r, "not a cnnlab fixture file (bad magic)");
    } else {
        r.pos = 8;
        if (rd_u32(&r, &version, "version") && version != 1)
            rd_fail(&r, "unsupported fixture version %u (want 1)", version);
        if (rd_u32(&r, &ncases, "case count") && ncases > (len - r.pos) / 12)
            rd_fail(&r, "case count %u does not fit in the file", ncases);
    }
    if (!r.bad) {
        fx->cases = calloc(ncases ? ncases : 1, sizeof *fx->cases);
        if (!fx->cases) abort();
    }
    for (uint32_t i = 0; !r.bad && i < ncases; i++) {
        fx_case *c = &fx->cases[i];
        fx->ncases = (int)i + 1;
        r.ncase = (int)i;
        uint32_t nt = 0;
        c->name = rd_str(&r, "case name", NULL);
        if (c->name) c->model_text = rd_str(&r, "model text", &c->model_len);
        if (!c->model_text || !rd_u32(&r, &c->flags, "flags") || !rd_u32(&r, &nt, "tensor count"))
            break;
        if (nt > (len - r.pos) / 8) {
            rd_fail(&r, "tensor count %u does not fit in the file", nt);
            break;
        }
        c->tensors = calloc(nt ? nt : 1, sizeof *c->tensors);
        if (!c->tensors) abort();
        for (uint32_t k = 0; k < nt; k++) {
            c->ntensors = (int)k + 1;
            if (!rd_tensor(&r, &c->tensors[k])) break;
        }
    }
    if (!r.bad && r.pos != len) {
        r.ncase = -1;
        rd_fail(&r, "%zu trailing bytes after the last case", len - r.pos);
    }
    free(buf);
    if (r.bad) {
        fx_free(fx);
        return NULL;
    }
    return fx;
}

void fx_free(fx_file *f) {
    if (!f) return;
    for (int i = 0; i < f->ncases; i++) {
        fx_case *c = &f->cases[i];
        free((void *)c->name);
        free((void *)c->model_text);
        for (int k = 0; k < c->ntensors; k++) {
            free((void *)c->tensors[k].name);
            free((void *)c->tensors[k].data);
        }
        free(c->tensors);
    }
    free(f->cases);
    free(f);
}

const fx_tensor *fx_find(const fx_case *c, const char *name) {
    for (int k = 0; k < c->ntensors; k++)
        if (strcmp(c->tensors[k].name, name) == 0) return &c->tensors[k];
    return NULL;
}

const fx_tensor *fx_need(const fx_case *c, const char *name) {
    const fx_tensor *t = fx_find(c, name);
    if (!t) t_fail("fixture case %s has no tensor '%s'", c->name, name);
    return t;
}

void fx_tol(const fx_case *c, const char *name, double *atol, double *rtol) {
    const fx_tensor *t = fx_need(c, name);
    *atol = *rtol = 0;
    if (t && t->numel == 2) {
        *atol = t->data[0];
        *rtol = t->data[1];
    } else if (t) {
        t_fail("fixture tensor %s of case %s should have 2 elements", name, c->name);
    }
}

bool fx_is_state(const fx_tensor *t) { return strncmp(t->name, "layers.", 7) == 0; }

float *fx_to_nhwc(const fx_tensor *t) {
    float *out = xmalloc(t->numel * sizeof *out);
    if (t->ndim != 4) {
        t_fail("tensor %s is %d-D, expected NCHW", t->name, t->ndim);
        memcpy(out, t->data, t->numel * sizeof *out);
        return out;
    }
    size_t n = (size_t)t->dims[0], c = (size_t)t->dims[1], hw = (size_t)(t->dims[2] * t->dims[3]);
    for (size_t i = 0; i < n; i++)
        for (size_t p = 0; p < hw; p++)
            for (size_t k = 0; k < c; k++) out[(i * hw + p) * c + k] = t->data[(i * c + k) * hw + p];
    return out;
}

/* ---- fixture cases and models ------------------------------------------------- */

cl_model *fx_model(const fx_case *c, cl_compile_args a) {
    char err[512];
    cl_model *m = cl_parse_model(c->model_text, c->model_len, c->name, NULL, err, sizeof err);
    if (!m) {
        t_fail("parse: %s", err);
        return NULL;
    }
    cl_status st = cl_model_compile(m, a);
    if (st != CL_OK) {
        t_fail("compile: status %d: %s", (int)st, cl_model_error(m));
        cl_model_free(m);
        return NULL;
    }
    return m;
}

/* The index of m's tensor name, checking it holds numel values; -1 after a failure. */
static int model_tensor(const cl_model *m, const char *name, size_t numel) {
    int i = cl_model_find_tensor(m, name);
    if (i < 0) {
        t_fail("fixture tensor %s does not exist in the model", name);
        return -1;
    }
    cl_tensor_info info = cl_model_tensor(m, i);
    if ((size_t)info.numel != numel) {
        t_fail("%s has %lld elements in the model, %zu in the fixture", name,
               (long long)info.numel, numel);
        return -1;
    }
    return i;
}

bool fx_load_state(cl_model *m, const fx_case *c) {
    int nstate = 0;
    bool ok = true;
    for (int k = 0; k < c->ntensors; k++) {
        const fx_tensor *t = &c->tensors[k];
        if (!fx_is_state(t)) continue;
        nstate++;
        int i = model_tensor(m, t->name, t->numel);
        if (i < 0) {
            ok = false;
            continue;
        }
        cl_real *v = xmalloc(t->numel * sizeof *v);
        for (size_t j = 0; j < t->numel; j++) v[j] = (cl_real)t->data[j];
        if (cl_model_set_tensor(m, i, v) != CL_OK) {
            t_fail("cl_model_set_tensor(%s) failed", t->name);
            ok = false;
        }
        free(v);
    }
    for (int i = 0; i < cl_model_tensor_count(m); i++) {
        cl_tensor_info info = cl_model_tensor(m, i);
        if (!fx_find(c, info.name)) {
            t_fail("model tensor %s is not in PyTorch's state_dict", info.name);
            ok = false;
        }
    }
    if (nstate != cl_model_tensor_count(m)) {
        t_fail("PyTorch has %d state_dict tensors, the model %d", nstate, cl_model_tensor_count(m));
        ok = false;
    }
    return ok;
}

int fx_check_tensors(cl_model *m, const fx_case *c, const char *prefix, bool grad, double atol,
                     double rtol) {
    size_t plen = strlen(prefix);
    int count = 0;
    for (int k = 0; k < c->ntensors; k++) {
        const fx_tensor *t = &c->tensors[k];
        if (strncmp(t->name, prefix, plen) != 0) continue;
        count++;
        int i = model_tensor(m, t->name + plen, t->numel);
        if (i < 0) continue;
        cl_real *v = xmalloc(t->numel * sizeof *v);
        float *f = xmalloc(t->numel * sizeof *f);
        cl_status st = grad ? cl_model_get_tensor_grad(m, i, v) : cl_model_get_tensor(m, i, v);
        if (st != CL_OK) {
            t_fail("reading %s: status %d", t->name, (int)st);
        } else {
            for (size_t j = 0; j < t->numel; j++) f[j] = (float)v[j];
            check_close(t->name, f, t->data, t->numel, atol, rtol);
        }
        free(v);
        free(f);
    }
    return count;
}

int32_t *fx_labels(const fx_tensor *t) {
    int32_t *lab = xmalloc(t->numel * sizeof *lab);
    for (size_t i = 0; i < t->numel; i++) lab[i] = (int32_t)t->data[i];
    return lab;
}

/* ---- bookkeeping --------------------------------------------------------------- */

#define T_MAX_EXTRA 8

static int t_passed, t_failed;
static bool t_open;
static char t_name[256];
static int t_nfail;
static char t_reason[512];
static char t_extra[T_MAX_EXTRA][512];

void t_begin(const char *fmt, ...) {
    if (t_open) t_end();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_name, sizeof t_name, fmt, ap);
    va_end(ap);
    t_open = true;
    t_nfail = 0;
    t_reason[0] = '\0';
}

void t_fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!t_open) { /* a failure outside any group is a group of its own */
        printf("FAIL - %s\n", msg);
        fflush(stdout);
        t_failed++;
        return;
    }
    if (t_nfail == 0)
        snprintf(t_reason, sizeof t_reason, "%s", msg);
    else if (t_nfail - 1 < T_MAX_EXTRA)
        snprintf(t_extra[t_nfail - 1], sizeof t_extra[0], "%s", msg);
    t_nfail++;
}

bool t_end(void) {
    if (!t_open) return true;
    t_open = false;
    if (t_nfail == 0) {
        printf("ok - %s\n", t_name);
        t_passed++;
    } else {
        printf("FAIL - %s: %s\n", t_name, t_reason);
        for (int i = 0; i < t_nfail - 1 && i < T_MAX_EXTRA; i++) printf("    %s\n", t_extra[i]);
        if (t_nfail - 1 > T_MAX_EXTRA) printf("    (%d more failures)\n", t_nfail - 1 - T_MAX_EXTRA);
        t_failed++;
    }
    fflush(stdout);
    return t_nfail == 0;
}

int t_finish(void) {
    if (t_open) t_end();
    printf("%d passed, %d failed\n", t_passed, t_failed);
    fflush(stdout);
    return t_failed ? 1 : 0;
}

bool check_close(const char *what, const float *got, const float *want, size_t n, double atol,
                 double rtol) {
    /* CL_TEST_TOL_SCALE (diagnostics only): scale every tolerance, e.g. 0.1 to see how
     * much margin the results have. */
    const char *scale = getenv("CL_TEST_TOL_SCALE");
    if (scale && atof(scale) > 0) {
        atol *= atof(scale);
        rtol *= atof(scale);
    }
    size_t bad = 0, first = 0;
    double maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double e = fabs(g - w);
        bool mismatch;
        if (!isfinite(w))
            mismatch = !(g == w || (isnan(g) && isnan(w)));
        else
            mismatch = !isfinite(g) || e > atol + rtol * fabs(w);
        if (isfinite(w) && (!isfinite(g) || e > maxerr)) maxerr = isfinite(g) ? e : INFINITY;
        if (mismatch && bad++ == 0) first = i;
    }
    if (!bad) return true;
    t_fail("%s: %zu of %zu mismatched (atol %g, rtol %g), max abs err %.6g; first at [%zu]: "
           "got %.9g want %.9g",
           what, bad, n, atol, rtol, maxerr, first, (double)got[first], (double)want[first]);
    return false;
}
