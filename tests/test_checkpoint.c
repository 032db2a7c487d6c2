/* test_checkpoint.c: safetensors files and model checkpoints (cl_safetensors_*,
 * cl_model_save, cl_model_load):
 *   - a PyTorch state_dict export (tests/ref/torch_export.safetensors, written by
 *     tests/ref/gen_safetensors.py) loads into the model parsed from the same text, and
 *     the eval output equals PyTorch's (tests/ref/interop.bin); saving it again gives
 *     the very bytes the official safetensors writer lays out;
 *   - save -> load round trips every tensor and the optimizer state (SGD momentum,
 *     Adam) bit for bit, and the metadata reads back;
 *   - the writer's files are valid safetensors: 8-byte length, JSON header padded to 8,
 *     offsets back to back covering the data, every tensor aligned to its element size;
 *   - hostile files are rejected with a message naming the file and a byte offset,
 *     never a crash (also truncations and 1500 mutations of a real file),
 *     and a failed cl_model_load leaves the model and the optimizer unchanged;
 *   - writes are atomic: no temporary file is left behind, a failed save keeps the
 *     old file, a save replaces an existing file completely.
 * `test_checkpoint --export FILE` also writes a trained checkpoint for
 * `gen_safetensors.py --check-cnnlab FILE` (PyTorch loading cnnlab's files). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnnlab.h"
#include "harness.h"
#include "nn/model.h" /* cl_optimizer_state: the optimizer's buffers, to compare them */

#define FIXTURE "tests/ref/interop.bin"
#define TORCH_EXPORT "tests/ref/torch_export.safetensors"
#define MUTATIONS 1500

static char tmpdir[256];

static void tmp_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static bool write_bytes(const char *path, const void *p, size_t n) {
    unlink(path); /* a new file: rewriting a truncated one makes ext4 flush it on close */
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *b = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) abort();
            b = nb;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        if (got == 0) break;
        len += got;
    }
    fclose(f);
    *n = len;
    return b;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* "byte " followed by a digit somewhere in the message. */
static bool has_byte_offset(const char *err) {
    for (const char *p = err; (p = strstr(p, "byte ")) != NULL; p += 5)
        if (isdigit((unsigned char)p[5])) return true;
    return false;
}

/* Whether the temporary folder holds a leftover temporary file (NAME.tmp.PID). */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* ---- model and optimizer snapshots ---------------------------------------------------- */

typedef struct {
    float *v;
    size_t n;
    float *b1, *b2;
    size_t np;
    int64_t step;
} snapshot;

static snapshot take(const cl_model *m, cl_optimizer *o) {
    snapshot s = {0};
    int nt = cl_model_tensor_count(m);
    for (int i = 0; i < nt; i++) s.n += (size_t)cl_model_tensor(m, i).numel;
    s.v = xmalloc(s.n * sizeof *s.v);
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        cl_model_get_tensor(m, i, s.v + off);
        off += (size_t)cl_model_tensor(m, i).numel;
    }
    if (o) {
        cl_real *b1, *b2;
        s.np = cl_optimizer_state(o, &b1, &b2, &s.step);
        s.b1 = xmalloc(s.np * sizeof *s.b1);
        memcpy(s.b1, b1, s.np * sizeof *s.b1);
        if (b2) {
            s.b2 = xmalloc(s.np * sizeof *s.b2);
            memcpy(s.b2, b2, s.np * sizeof *s.b2);
        }
    }
    return s;
}

static void drop(snapshot *s) {
    free(s->v);
    free(s->b1);
    free(s->b2);
    memset(s, 0, sizeof *s);
}

/* Bit-for-bit equality of two snapshots; names the first difference. */
static bool same(const snapshot *a, const snapshot *b, const char *what) {
    if (a->n != b->n || memcmp(a->v, b->v, a->n * sizeof *a->v) != 0) {
        size_t i = 0;
        while (i < a->n && i < b->n && memcmp(&a->v[i], &b->v[i], sizeof *a->v) == 0) i++;
        t_fail("%s: model tensors differ at value %zu of %zu (%.9g vs %.9g)", what, i, a->n,
               i < a->n ? a->v[i] : 0.0, i < b->n ? b->v[i] : 0.0);
        return false;
    }
    if (a->np != b->np || a->step != b->step || (!a->b1) != (!b->b1) || (!a->b2) != (!b->b2) ||
        (a->b1 && memcmp(a->b1, b->b1, a->np * sizeof *a->b1) != 0) ||
        (a->b2 && memcmp(a->b2, b->b2, a->np * sizeof *a->b2) != 0)) {
        t_fail("%s: optimizer state differs (step %lld vs %lld)", what, (long long)a->step,
               (long long)b->step);
        return false;
    }
    return true;
}

/* ---- the interop model ------------------------------------------------------------- */

typedef struct {
    const fx_case *c;
    const fx_tensor *x, *out;
    float *xin; /* NHWC */
    int n;
    int32_t labels[16];
} interop;

static cl_model *new_model(const interop *io, int threads, uint64_t seed) {
    char err[512];
    cl_model *m = cl_parse_model(io->c->model_text, io->c->model_len, io->c->name, NULL, err,
                                 sizeof err);
    if (!m) {
        t_fail("parse: %s", err);
        return NULL;
    }
    if (cl_model_compile(m, (cl_compile_args){.max_batch = io->n, .threads = threads,
                                              .seed = seed}) != CL_OK) {
        t_fail("compile: %s", cl_model_error(m));
        cl_model_free(m);
        return NULL;
    }
    return m;
}

/* Train steps in train mode with cross entropy; false on an error. */
static bool train(cl_model *m, cl_optimizer *o, const interop *io, int steps) {
    int k = cl_model_shape(m, cl_model_output(m)).c;
    float d[16 * 64];
    for (int s = 0; s < steps; s++) {
        cl_model_zero_grad(m);
        const float *y = cl_model_forward(m, io->xin, io->n, true);
        if (!y) {
            t_fail("forward: %s", cl_model_error(m));
            return false;
        }
        cl_cross_entropy(y, io->labels, io->n, k, 0.0f, d);
        if (cl_model_backward(m, d) != CL_OK) {
            t_fail("backward: %s", cl_model_error(m));
            return false;
        }
        cl_optimizer_step(o, 0.01f);
    }
    return true;
}

static bool load_ok(cl_model *m, cl_optimizer *o, const char *path) {
    char err[1024];
    if (cl_model_load(m, o, path, err, sizeof err) != CL_OK) {
        t_fail("cl_model_load(%s): %s", path, err);
        return false;
    }
    return true;
}

static bool save_ok(cl_model *m, cl_optimizer *o, const char *path, const char *const *meta,
                    int nmeta) {
    char err[1024];
    if (cl_model_save(m, o, path, meta, nmeta, err, sizeof err) != CL_OK) {
        t_fail("cl_model_save(%s): %s", path, err);
        return false;
    }
    return true;
}

/* ---- PyTorch's export ---------------------------------------------------------------- */

static void torch_export_checks(const interop *io) {
    double atol, rtol;
    for (int threads = 1; threads <= 2; threads++) {
        t_begin("interop: PyTorch's state_dict export loads (threads=%d)", threads);
        fx_tol(io->c, "tol", &atol, &rtol);
        cl_model *m = new_model(io, threads, 99);
        if (!m) continue;
        if (!load_ok(m, NULL, TORCH_EXPORT)) {
            cl_model_free(m);
            continue;
        }
        int nstate = 0;
        for (int t = 0; t < io->c->ntensors; t++) {
            const fx_tensor *ft = &io->c->tensors[t];
            if (!fx_is_state(ft)) continue;
            nstate++;
            int i = cl_model_find_tensor(m, ft->name);
            if (i < 0 || (size_t)cl_model_tensor(m, i).numel != ft->numel) {
                t_fail("%s: not in the model or another size", ft->name);
                continue;
            }
            float *v = xmalloc(ft->numel * sizeof *v);
            cl_model_get_tensor(m, i, v);
            check_close(ft->name, v, ft->data, ft->numel, 0, 0); /* exactly */
            free(v);
        }
        if (nstate != cl_model_tensor_count(m))
            t_fail("PyTorch has %d tensors, the model %d", nstate, cl_model_tensor_count(m));

        t_begin("interop: eval output equals PyTorch's (threads=%d)", threads);
        const float *y = cl_model_forward(m, io->xin, io->n, false);
        if (!y)
            t_fail("forward: %s", cl_model_error(m));
        else
            check_close("eval output", y, io->out->data, io->out->numel, atol, rtol);
        cl_model_free(m);
    }

    t_begin("interop: the export's header (format pt, int64 0-dim num_batches_tracked)");
    char err[1024];
    cl_safetensors *st = cl_safetensors_read(TORCH_EXPORT, err, sizeof err);
    if (!st) {
        t_fail("%s", err);
        return;
    }
    const char *fmt = cl_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, "pt") != 0) t_fail("metadata format = %s, want pt", fmt ? fmt : "(none)");
    const cl_st_tensor *nbt = cl_safetensors_find(st, "layers.1.num_batches_tracked");
    int64_t count = -1;
    if (!nbt || strcmp(nbt->dtype, "I64") != 0 || nbt->ndim != 0 || nbt->nbytes != 8)
        t_fail("layers.1.num_batches_tracked is not an int64 scalar");
    else if (memcpy(&count, nbt->data, 8), count <= 0)
        t_fail("layers.1.num_batches_tracked = %lld", (long long)count);
    const cl_st_tensor *w = cl_safetensors_find(st, "layers.0.weight");
    if (!w || strcmp(w->dtype, "F32") != 0 || w->ndim != 4 || w->dims[0] != 5 || w->dims[1] != 3)
        t_fail("layers.0.weight is not F32 [5, 3, 3, 3]");
    cl_safetensors_free(st);
}

/* ---- the writer's layout ---------------------------------------------------------------- */

static int dtype_rank(const char *d) { /* the official writer's order: I64, F64, F32, I32 */
    return !strcmp(d, "I64") ? 4 : !strcmp(d, "F64") ? 3 : !strcmp(d, "F32") ? 2 : 1;
}

static size_t dtype_bytes(const char *d) { return !strcmp(d, "F32") || !strcmp(d, "I32") ? 4 : 8; }

/* Check path is a valid safetensors file laid out as the official writer does. */
static void check_layout(const char *path) {
    size_t size;
    uint8_t *b = read_bytes(path, &size);
    if (!b || size < 8) {
        t_fail("%s: missing or shorter than 8 bytes", path);
        free(b);
        return;
    }
    uint64_t n = le64(b);
    if (n > size - 8) {
        t_fail("%s: header length %llu past the end of the %zu-byte file", path,
               (unsigned long long)n, size);
        free(b);
        return;
    }
    if ((8 + n) % 8) t_fail("%s: the data starts at byte %llu, not a multiple of 8", path,
                            (unsigned long long)(8 + n));
    size_t last = 8 + (size_t)n;
    while (last > 8 && b[last - 1] == ' ') last--;
    if (n < 2 || b[8] != '{' || b[last - 1] != '}')
        t_fail("%s: the header is not one JSON object padded with spaces", path);
    char err[1024];
    cl_safetensors *st = cl_safetensors_read(path, err, sizeof err);
    if (!st) {
        t_fail("the reader rejects the writer's file: %s", err);
        free(b);
        return;
    }
    if (8 + n + st->ndata != size) t_fail("%s: %zu data bytes after the header, file %zu", path,
                                          st->ndata, size);
    /* Header order = data order, back to back from 0 to the end, official sort order. */
    size_t end = 0;
    for (int i = 0; i < st->n; i++) {
        const cl_st_tensor *t = &st->t[i];
        size_t begin = (size_t)((const uint8_t *)t->data - st->data);
        if (begin != end) t_fail("%s: tensor %s starts at data byte %zu, the previous ends at %zu",
                                 path, t->name, begin, end);
        if ((8 + n + begin) % dtype_bytes(t->dtype))
            t_fail("%s: %s tensor %s at file byte %llu is not aligned to its element size", path,
                   t->dtype, t->name, (unsigned long long)(8 + n + begin));
        if (i > 0) {
            const cl_st_tensor *p = &st->t[i - 1];
            int rp = dtype_rank(p->dtype), rt = dtype_rank(t->dtype);
            if (rp < rt || (rp == rt && strcmp(p->name, t->name) >= 0))
                t_fail("%s: %s %s comes after %s %s (the official order is by dtype alignment, "
                       "then name)", path, t->dtype, t->name, p->dtype, p->name);
        }
        end = begin + t->nbytes;
    }
    if (end != st->ndata) t_fail("%s: the tensors cover %zu of %zu data bytes", path, end, st->ndata);
    cl_safetensors_free(st);
    free(b);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static const char NOTE[] = "quote \" backslash \\ newline \n tab \t control \x01 caf\xc3\xa9 {\"json\": [1]}";

static void round_trip(const interop *io, cl_optim_args oa, const char *what) {
    t_begin("round trip with %s state: save -> load restores everything bit for bit", what);
    char path[512], err[1024];
    tmp_path(path, sizeof path, "round.safetensors");
    cl_model *a = new_model(io, 1, 5), *b = new_model(io, 1, 6);
    cl_optimizer *oa_ = a ? cl_optimizer_new(a, oa) : NULL, *ob = b ? cl_optimizer_new(b, oa) : NULL;
    snapshot sa = {0}, sb = {0};
    if (!oa_ || !ob) {
        t_fail("setup failed");
        goto done;
    }
    /* Non-trivial state: PyTorch's weights and statistics, then 3 training steps. */
    if (!load_ok(a, NULL, TORCH_EXPORT) || !train(a, oa_, io, 3)) goto done;
    const char *meta[] = {"format", "pt", "note", NOTE, "empty", ""};
    if (!save_ok(a, oa_, path, meta, 3)) goto done;
    sa = take(a, oa_);
    sb = take(b, ob);
    if (sa.step != 3) t_fail("optimizer step %lld after 3 steps", (long long)sa.step);
    if (sa.n == sb.n && !memcmp(sa.v, sb.v, sa.n * sizeof *sa.v))
        t_fail("the two models start equal: the test would prove nothing");
    drop(&sb);
    if (!load_ok(b, ob, path)) goto done;
    sb = take(b, ob);
    same(&sa, &sb, "after load");
    /* The same next step on both gives the same parameters. */
    drop(&sa);
    drop(&sb);
    if (!train(a, oa_, io, 1) || !train(b, ob, io, 1)) goto done;
    sa = take(a, oa_);
    sb = take(b, ob);
    same(&sa, &sb, "one more step after load");
    check_layout(path);

    t_begin("round trip with %s state: metadata reads back", what);
    cl_safetensors *st = cl_safetensors_read(path, err, sizeof err);
    if (!st) {
        t_fail("%s", err);
        goto done;
    }
    const char *note = cl_safetensors_meta(st, "note"), *fmt = cl_safetensors_meta(st, "format"),
               *empty = cl_safetensors_meta(st, "empty");
    if (!note || strcmp(note, NOTE) != 0) t_fail("note reads back as \"%s\"", note ? note : "(none)");
    if (!fmt || strcmp(fmt, "pt") != 0) t_fail("format reads back as %s", fmt ? fmt : "(none)");
    if (!empty || *empty) t_fail("an empty value reads back as %s", empty ? empty : "(none)");
    if (cl_safetensors_meta(st, "missing")) t_fail("a missing key has a value");
    const cl_st_tensor *step = cl_safetensors_find(st, "optimizer.step");
    if (!step || strcmp(step->dtype, "I64") || !cl_safetensors_find(st, "optimizer.buf1") ||
        (oa.kind != CL_OPT_SGD) != (cl_safetensors_find(st, "optimizer.buf2") != NULL))
        t_fail("optimizer tensors missing or unexpected");
    cl_safetensors_free(st);
done:
    drop(&sa);
    drop(&sb);
    cl_optimizer_free(oa_);
    cl_optimizer_free(ob);
    cl_model_free(a);
    cl_model_free(b);
    unlink(path);
}

/* Saving PyTorch's weights with PyTorch's metadata reproduces its file byte for byte. */
static void same_bytes_as_torch(const interop *io) {
    t_begin("writer: a saved PyTorch state_dict is byte-identical to the official layout");
    char path[512];
    tmp_path(path, sizeof path, "resaved.safetensors");
    cl_model *m = new_model(io, 1, 3);
    const char *meta[] = {"format", "pt"};
    if (m && load_ok(m, NULL, TORCH_EXPORT) && save_ok(m, NULL, path, meta, 1)) {
        size_t na, nb;
        uint8_t *a = read_bytes(TORCH_EXPORT, &na), *b = read_bytes(path, &nb);
        if (!a || !b || na != nb || memcmp(a, b, na) != 0) {
            size_t i = 0;
            while (a && b && i < na && i < nb && a[i] == b[i]) i++;
            t_fail("%s (%zu bytes) and %s (%zu bytes) differ from byte %zu", TORCH_EXPORT, na,
                   path, nb, i);
        }
        free(a);
        free(b);
        check_layout(path);
    }
    cl_model_free(m);
    unlink(path);
}

/* ---- hostile files ------------------------------------------------------------------------ */

/* The 8-byte length, the header, then ndata zero bytes. */
static void write_st(const char *path, const char *header, size_t ndata) {
    size_t hl = strlen(header);
    uint8_t *b = xmalloc(8 + hl + ndata);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0, ndata);
    if (!write_bytes(path, b, 8 + hl + ndata)) t_fail("cannot write %s", path);
    free(b);
}

/* path must be rejected by the reader (file and byte offset in the message) and by
 * cl_model_load, which must leave m and o as they were. */
static void expect_reject(const char *what, const char *path, cl_model *m, cl_optimizer *o) {
    char err[2048] = "";
    cl_safetensors *st = cl_safetensors_read(path, err, sizeof err);
    if (st) {
        t_fail("%s: the reader accepted it", what);
        cl_safetensors_free(st);
    } else if (!strstr(err, path) || !has_byte_offset(err)) {
        t_fail("%s: \"%s\" does not name the file and a byte offset", what, err);
    }
    snapshot before = take(m, o);
    err[0] = 0;
    if (cl_model_load(m, o, path, err, sizeof err) == CL_OK)
        t_fail("%s: cl_model_load accepted it", what);
    else if (!strstr(err, path))
        t_fail("%s: cl_model_load's \"%s\" does not name the file", what, err);
    snapshot after = take(m, o);
    same(&before, &after, what);
    drop(&before);
    drop(&after);
}

static const struct {
    const char *what, *header;
    size_t ndata;
} HOSTILE[] = {
    {"not JSON", "hello, world", 0},
    {"a JSON array", "[1, 2]      ", 0},
    {"an unterminated object", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4},
    {"an unterminated string", "{\"a", 0},
    {"a trailing comma", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4},
    {"bytes after the object", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}x", 4},
    {"a missing colon", "{\"a\" {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"a number for a tensor entry", "{\"a\":42}", 0},
    {"a tensor entry without data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4},
    {"an unknown key in a tensor entry",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4},
    {"a non-string metadata value", "{\"__metadata__\":{\"k\":1}}", 0},
    {"a negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4},
    {"a fractional dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4},
    {"9 dimensions",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4},
    {"a 20-digit dimension",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4},
    {"huge dims whose product wraps to 0",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0},
    {"huge dims whose product wraps",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296,1],"
     "\"data_offsets\":[0,0]}}", 0},
    {"a dimension of 2^41", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2199023255552],\"data_offsets\":[0,4]}}", 4},
    {"an unknown dtype", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"an unsupported dtype (F16)", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4},
    {"an overlong dtype", "{\"a\":{\"dtype\":\"FLOAT32XYZ\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"offsets past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4},
    {"offsets far past the data",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,18446744073709551615]}}", 4},
    {"begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4},
    {"offsets that do not match the shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8},
    {"three data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8},
    {"overlapping tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12},
    {"two tensors on the same bytes",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"a gap before the first tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},
    {"data bytes after the last tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12},
    {"a duplicate tensor name",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},
    {"a 200-byte tensor name",
     "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":"
     "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"invalid UTF-8 in a name", "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"a NUL escape in a name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
    {"two __metadata__ objects", "{\"__metadata__\":{},\"__metadata__\":{}}", 0},
    {"a __metadata__ array", "{\"__metadata__\":[]}", 0},
};

static void hostile_files(const interop *io) {
    t_begin("reader: hostile files are rejected, naming the file and a byte offset");
    cl_model *m = new_model(io, 1, 7);
    cl_optimizer *o = m ? cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM}) : NULL;
    if (!o || !load_ok(m, NULL, TORCH_EXPORT) || !train(m, o, io, 1)) {
        t_fail("setup failed");
        goto done;
    }
    char path[512];
    tmp_path(path, sizeof path, "hostile.safetensors");
    uint8_t raw[32] = {0};
    write_bytes(path, raw, 0);
    expect_reject("an empty file", path, m, o);
    write_bytes(path, "\x10\0\0\0\0", 5);
    expect_reject("a truncated header length", path, m, o);
    raw[0] = 100;
    write_bytes(path, raw, 8);
    expect_reject("a header length past the end of the file", path, m, o);
    memcpy(raw, "\xff\xff\xff\xff\xff\xff\xff\x7f{}      ", 16);
    write_bytes(path, raw, 16);
    expect_reject("a header length of 2^63", path, m, o);
    memcpy(raw, "\x00\x00\x00\x00\x00\x00\x00\x00{}      ", 16);
    write_bytes(path, raw, 16);
    expect_reject("a header length of 0", path, m, o);
    for (size_t i = 0; i < sizeof HOSTILE / sizeof *HOSTILE; i++) {
        write_st(path, HOSTILE[i].header, HOSTILE[i].ndata);
        expect_reject(HOSTILE[i].what, path, m, o);
    }
    /* A folder is not a file. */
    char dir[512], err[1024];
    tmp_path(dir, sizeof dir, "a-folder");
    mkdir(dir, 0700);
    cl_safetensors *st = cl_safetensors_read(dir, err, sizeof err);
    if (st) {
        t_fail("a folder reads as a safetensors file");
        cl_safetensors_free(st);
    } else if (!strstr(err, dir)) {
        t_fail("reading a folder: \"%s\" does not name it", err);
    }
    rmdir(dir);
    tmp_path(dir, sizeof dir, "does-not-exist.safetensors");
    if ((st = cl_safetensors_read(dir, err, sizeof err)) != NULL || !strstr(err, dir))
        t_fail("a missing file: \"%s\"", err);
    cl_safetensors_free(st);
    unlink(path);
done:
    cl_optimizer_free(o);
    cl_model_free(m);
}

/* Rewrite a checkpoint through cl_safetensors_write: drop tensor `drop`, give tensor
 * `reshape` the dims `dims` (ndim values, data truncated or kept). */
static bool rewrite(const char *src, const char *dst, const char *drop, const char *reshape,
                    const int64_t *dims, int ndim) {
    char err[1024];
    cl_safetensors *st = cl_safetensors_read(src, err, sizeof err);
    if (!st) {
        t_fail("%s", err);
        return false;
    }
    cl_st_tensor *ts = xmalloc((size_t)st->n * sizeof *ts);
    int n = 0;
    for (int i = 0; i < st->n; i++) {
        if (drop && !strcmp(st->t[i].name, drop)) continue;
        ts[n] = st->t[i];
        if (reshape && !strcmp(ts[n].name, reshape)) {
            size_t numel = 1;
            ts[n].ndim = ndim;
            for (int d = 0; d < ndim; d++) numel *= (size_t)(ts[n].dims[d] = dims[d]);
            if (numel * 4 <= ts[n].nbytes) ts[n].nbytes = numel * 4;
        }
        n++;
    }
    const char *meta[] = {"format", "pt"};
    bool ok = cl_safetensors_write(dst, ts, n, meta, 1, err, sizeof err) == CL_OK;
    if (!ok) t_fail("rewrite: %s", err);
    free(ts);
    cl_safetensors_free(st);
    return ok;
}

/* path must be refused by cl_model_load (message naming the file and `name`) with m
 * and o unchanged. */
static void expect_load_refused(const char *what, const char *path, const char *name, cl_model *m,
                                cl_optimizer *o) {
    char err[1024] = "";
    snapshot before = take(m, o);
    if (cl_model_load(m, o, path, err, sizeof err) == CL_OK)
        t_fail("%s: cl_model_load accepted it", what);
    else if (!strstr(err, path) || !strstr(err, name))
        t_fail("%s: \"%s\" does not name the file and %s", what, err, name);
    snapshot after = take(m, o);
    same(&before, &after, what);
    drop(&before);
    drop(&after);
}

static void model_mismatch(const interop *io) {
    t_begin("cl_model_load: a file for another model changes nothing");
    char good[512], bad[512];
    tmp_path(good, sizeof good, "good.safetensors");
    tmp_path(bad, sizeof bad, "bad.safetensors");
    cl_model *m = new_model(io, 1, 8), *src = new_model(io, 1, 9);
    cl_optimizer *o = m ? cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_SGD, .momentum = 0.9f})
                        : NULL;
    cl_optimizer *os = src ? cl_optimizer_new(src, (cl_optim_args){.kind = CL_OPT_SGD, .momentum = 0.9f})
                           : NULL;
    if (!o || !os || !train(m, o, io, 2) || !train(src, os, io, 3) || !save_ok(src, os, good, NULL, 0))
        goto done;
    const int64_t transposed[4] = {3, 5, 3, 3}, same_numel[4] = {5, 3, 9, 1},
                  smaller[4] = {5, 3, 3, 2}, flat[1] = {135};
    if (rewrite(good, bad, NULL, "layers.0.weight", transposed, 4))
        expect_load_refused("a transposed weight", bad, "layers.0.weight", m, o);
    if (rewrite(good, bad, NULL, "layers.0.weight", same_numel, 4))
        expect_load_refused("a weight of another shape, same size", bad, "layers.0.weight", m, o);
    if (rewrite(good, bad, NULL, "layers.0.weight", smaller, 4))
        expect_load_refused("a smaller weight", bad, "layers.0.weight", m, o);
    if (rewrite(good, bad, NULL, "layers.0.weight", flat, 1))
        expect_load_refused("a flattened weight", bad, "layers.0.weight", m, o);
    if (rewrite(good, bad, "layers.5.running_var", NULL, NULL, 0))
        expect_load_refused("a missing running_var", bad, "layers.5.running_var", m, o);
    if (rewrite(good, bad, "layers.12.bias", NULL, NULL, 0))
        expect_load_refused("a missing last tensor", bad, "layers.12.bias", m, o);
    /* Weights only (no optimizer state) into a model with an optimizer. */
    if (rewrite(good, bad, "optimizer.buf1", NULL, NULL, 0))
        expect_load_refused("no optimizer.buf1", bad, "optimizer", m, o);
    if (rewrite(good, bad, "optimizer.step", NULL, NULL, 0))
        expect_load_refused("no optimizer.step", bad, "optimizer", m, o);
    const int64_t short_buf[1] = {10};
    if (rewrite(good, bad, NULL, "optimizer.buf1", short_buf, 1))
        expect_load_refused("a short optimizer.buf1", bad, "optimizer", m, o);
    /* An Adam optimizer needs buf2, which an SGD checkpoint lacks. */
    cl_optimizer *adam = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM});
    if (adam) expect_load_refused("SGD state into Adam", good, "optimizer", m, adam);
    cl_optimizer_free(adam);
    /* The same file loads without the optimizer. */
    if (rewrite(good, bad, "optimizer.buf1", NULL, NULL, 0) && load_ok(m, NULL, bad)) {
        snapshot a = take(m, NULL), b = take(src, NULL);
        same(&a, &b, "weights-only load");
        drop(&a);
        drop(&b);
    }
done:
    cl_optimizer_free(o);
    cl_optimizer_free(os);
    cl_model_free(m);
    cl_model_free(src);
    unlink(good);
    unlink(bad);
}

/* Every truncation and thousands of byte mutations of a real checkpoint: no crash;
 * every rejection names the file; every accepted file is consistent. */
static void damaged_files(const interop *io) {
    t_begin("reader: truncations and %d mutations of a checkpoint, no crash", MUTATIONS);
    char good[512], bad[512], err[2048];
    tmp_path(good, sizeof good, "source.safetensors");
    tmp_path(bad, sizeof bad, "damaged.safetensors");
    cl_model *m = new_model(io, 1, 10);
    cl_optimizer *o = m ? cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAMW}) : NULL;
    size_t size = 0;
    uint8_t *b = NULL, *mut = NULL;
    if (!o || !train(m, o, io, 1) || !save_ok(m, o, good, NULL, 0) || !(b = read_bytes(good, &size)))
        goto done;
    /* Every length through the header and the first tensors, then every 61st. */
    int accepted = 0;
    uint64_t hlen = le64(b);
    for (size_t len = 0; len < size; len += len < 8 + hlen + 256 ? 1 : 61) {
        write_bytes(bad, b, len);
        cl_safetensors *st = cl_safetensors_read(bad, err, sizeof err);
        if (st) {
            accepted++;
            cl_safetensors_free(st);
        } else if (!strstr(err, bad) || !has_byte_offset(err)) {
            t_fail("truncated to %zu bytes: \"%s\"", len, err);
        }
    }
    if (accepted) t_fail("%d truncated files were accepted", accepted);
    snapshot ref = take(m, o);
    uint64_t rng = 12345;
    mut = xmalloc(size);
    int rejected = 0;
    for (int k = 0; k < MUTATIONS; k++) {
        memcpy(mut, b, size);
        int edits = 1 + k % 3;
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly the header, where the structure is */
            size_t pos = (rng >> 33) % (k % 4 ? 8 + hlen : size);
            static const char pick[] = "{}[]\",:0123456789e-. \\aFI";
            mut[pos] = (rng >> 20) & 1 ? (uint8_t)(rng >> 24) : (uint8_t)pick[(rng >> 40) % (sizeof pick - 1)];
        }
        write_bytes(bad, mut, size);
        cl_safetensors *st = cl_safetensors_read(bad, err, sizeof err);
        if (!st) {
            rejected++;
            if (!strstr(err, bad) || !has_byte_offset(err))
                t_fail("mutation %d: \"%s\" does not name the file and a byte offset", k, err);
        } else {
            size_t covered = 0;
            for (int i = 0; i < st->n; i++) {
                const cl_st_tensor *t = &st->t[i];
                size_t numel = 1;
                for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->dims[d];
                const uint8_t *p = t->data;
                if (p < st->data || p + t->nbytes > st->data + st->ndata ||
                    numel * dtype_bytes(t->dtype) != t->nbytes)
                    t_fail("mutation %d: accepted tensor %s is inconsistent", k, t->name);
                covered += t->nbytes;
            }
            if (covered != st->ndata) t_fail("mutation %d: tensors cover %zu of %zu bytes", k,
                                             covered, st->ndata);
            cl_safetensors_free(st);
        }
        /* cl_model_load either succeeds or changes nothing. */
        snapshot before = take(m, o);
        if (cl_model_load(m, o, bad, err, sizeof err) != CL_OK) {
            snapshot after = take(m, o);
            same(&before, &after, "a failed load of a mutated file");
            drop(&after);
        }
        drop(&before);
    }
    if (rejected < MUTATIONS / 3)
        t_fail("only %d of %d mutated files were rejected", rejected, MUTATIONS);
    drop(&ref);
done:
    free(b);
    free(mut);
    cl_optimizer_free(o);
    cl_model_free(m);
    unlink(good);
    unlink(bad);
}

/* ---- atomic writes ------------------------------------------------------------------------- */

static void atomic_writes(const interop *io) {
    t_begin("writer: atomic saves");
    char path[512], other[512], err[1024];
    cl_model *m = new_model(io, 1, 11);
    if (!m) return;
    /* A folder that does not exist. */
    tmp_path(path, sizeof path, "no/such/folder/model.safetensors");
    err[0] = 0;
    if (cl_model_save(m, NULL, path, NULL, 0, err, sizeof err) == CL_OK)
        t_fail("saving into a missing folder succeeded");
    else if (!strstr(err, path))
        t_fail("saving into a missing folder: \"%s\" does not name the file", err);
    if (count_tmp_files(tmpdir)) t_fail("a temporary file was left in %s", tmpdir);

    /* The target is a folder: the rename fails after the temporary file was written. */
    tmp_path(path, sizeof path, "a-folder.safetensors");
    mkdir(path, 0700);
    err[0] = 0;
    if (cl_model_save(m, NULL, path, NULL, 0, err, sizeof err) == CL_OK)
        t_fail("saving over a folder succeeded");
    else if (!strstr(err, path))
        t_fail("saving over a folder: \"%s\" does not name the file", err);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) t_fail("the folder is gone");
    if (count_tmp_files(tmpdir)) t_fail("a failed rename left a temporary file in %s", tmpdir);
    rmdir(path);

    /* Over a larger existing file: replaced completely; no temporary file after success. */
    tmp_path(path, sizeof path, "existing.safetensors");
    tmp_path(other, sizeof other, "fresh.safetensors");
    size_t big = 1 << 20;
    uint8_t *junk = xmalloc(big);
    memset(junk, 0xAB, big);
    write_bytes(path, junk, big);
    free(junk);
    if (save_ok(m, NULL, path, NULL, 0) && save_ok(m, NULL, other, NULL, 0)) {
        size_t na, nb;
        uint8_t *a = read_bytes(path, &na), *b = read_bytes(other, &nb);
        if (!a || !b || na != nb || memcmp(a, b, na) != 0)
            t_fail("saving over a %zu-byte file left %zu bytes, not the %zu of a fresh save", big,
                   na, nb);
        free(a);
        free(b);
        check_layout(path);
    }
    if (count_tmp_files(tmpdir)) t_fail("a temporary file was left after saving");
    /* Over a file that is open for reading: its reader keeps the old contents. */
    size_t nold = 0;
    uint8_t *old = read_bytes(path, &nold);
    FILE *f = fopen(path, "rb");
    cl_optimizer *o = cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM});
    if (old && f && o && save_ok(m, o, path, NULL, 0)) {
        uint8_t *seen = xmalloc(nold + 1);
        size_t got = fread(seen, 1, nold + 1, f);
        if (got != nold || memcmp(seen, old, nold) != 0)
            t_fail("a reader of the old file saw it change (%zu of %zu bytes)", got, nold);
        free(seen);
        size_t nnew = 0;
        uint8_t *now = read_bytes(path, &nnew);
        if (!now || nnew <= nold) t_fail("the new file is not the checkpoint with optimizer state");
        free(now);
    }
    if (f) fclose(f);
    free(old);
    cl_optimizer_free(o);
    unlink(path);
    unlink(other);

    t_begin("cl_model_save and cl_model_load need a compiled model");
    char text[] = "input 3x4x4\nconv 2 k=1\n";
    cl_model *raw = cl_parse_model(text, strlen(text), "raw", NULL, err, sizeof err);
    tmp_path(path, sizeof path, "raw.safetensors");
    if (!raw) {
        t_fail("parse: %s", err);
    } else {
        if (cl_model_save(raw, NULL, path, NULL, 0, err, sizeof err) != CL_ERR_STATE)
            t_fail("saving an uncompiled model did not fail with CL_ERR_STATE");
        if (cl_model_load(raw, NULL, TORCH_EXPORT, err, sizeof err) != CL_ERR_STATE)
            t_fail("loading into an uncompiled model did not fail with CL_ERR_STATE");
        if (access(path, F_OK) == 0) t_fail("a file was written for an uncompiled model");
        cl_model_free(raw);
    }

    t_begin("cl_model_save: a model or optimizer state holding NaN or Inf is not saved");
    tmp_path(path, sizeof path, "nan.safetensors");
    int wi = cl_model_find_tensor(m, "layers.0.weight");
    cl_tensor_info wt = cl_model_tensor(m, wi >= 0 ? wi : 0);
    cl_real *wv = xmalloc((size_t)wt.numel * sizeof *wv);
    cl_model_get_tensor(m, wi >= 0 ? wi : 0, wv);
    cl_real saved = wv[1];
    for (int k = 0; k < 2; k++) {
        wv[1] = k ? (cl_real)INFINITY : (cl_real)NAN;
        cl_model_set_tensor(m, wi >= 0 ? wi : 0, wv);
        err[0] = 0;
        if (cl_model_save(m, NULL, path, NULL, 0, err, sizeof err) != CL_ERR_STATE)
            t_fail("a model holding %s was saved", k ? "Inf" : "NaN");
        else if (!strstr(err, wt.name) || !strstr(err, k ? "Inf" : "NaN"))
            t_fail("the message does not name the tensor and the value: %s", err);
    }
    wv[1] = saved;
    cl_model_set_tensor(m, wi >= 0 ? wi : 0, wv);
    free(wv);
    if (access(path, F_OK) == 0) t_fail("a refused save left a file");
    if (count_tmp_files(tmpdir)) t_fail("a refused save left a temporary file");
    if (!save_ok(m, NULL, path, NULL, 0)) t_fail("the finite model again: not saved");
    unlink(path);

    t_begin("cl_safetensors_write: arguments the reader could not read back are refused");
    float v = 1;
    cl_st_tensor t = {.name = "a", .dtype = "F32", .ndim = 1, .dims = {1}, .data = &v, .nbytes = 4};
    tmp_path(path, sizeof path, "args.safetensors");
    const char *bad_utf8[] = {"k", "caf\xe9"};
    if (cl_safetensors_write(path, &t, 1, bad_utf8, 1, err, sizeof err) == CL_OK)
        t_fail("a metadata value that is not UTF-8 was written");
    const char *twice[] = {"k", "1", "k", "2"};
    if (cl_safetensors_write(path, &t, 1, twice, 2, err, sizeof err) == CL_OK)
        t_fail("a metadata key given twice was written");
    cl_st_tensor two[2] = {t, t};
    if (cl_safetensors_write(path, two, 2, NULL, 0, err, sizeof err) == CL_OK)
        t_fail("two tensors with the same name were written");
    cl_st_tensor wrong = t;
    wrong.nbytes = 3;
    if (cl_safetensors_write(path, &wrong, 1, NULL, 0, err, sizeof err) == CL_OK)
        t_fail("3 bytes for an F32 [1] tensor were written");
    if (access(path, F_OK) == 0) t_fail("a refused write left a file");
    if (count_tmp_files(tmpdir)) t_fail("a refused write left a temporary file");
    unlink(path);
    cl_model_free(m);
}

/* ---- metadata of any length, any UTF-8 name ---------------------------------------------- */

static void long_metadata(const interop *io) {
    t_begin("metadata: a 100 KB model text and 70 entries read back exactly, in order");
    char path[512], err[1024];
    tmp_path(path, sizeof path, "long-meta.safetensors");
    cl_model *m = new_model(io, 1, 13);
    size_t big = 100 * 1024;
    char *text = xmalloc(big + 1);
    for (size_t i = 0; i < big; i++) text[i] = "conv 16 k=3 # caf\xc3\xa9 \"q\" \\ \t\n"[i % 29];
    text[big] = 0;
    enum { NMETA = 70 };
    const char *meta[2 * NMETA];
    char keys[NMETA][16];
    for (int i = 0; i < NMETA; i++) {
        snprintf(keys[i], sizeof keys[i], "key%02d", i);
        meta[2 * i] = keys[i];
        meta[2 * i + 1] = i == 7 ? text : "short";
    }
    if (m && save_ok(m, NULL, path, meta, NMETA)) {
        cl_safetensors *st = cl_safetensors_read(path, err, sizeof err);
        if (!st) {
            t_fail("%s", err);
        } else {
            const char *back = cl_safetensors_meta(st, "key07");
            if (!back || strcmp(back, text) != 0)
                t_fail("the %zu-byte value reads back as %zu bytes", big, back ? strlen(back) : 0);
            if (cl_safetensors_meta_count(st) != NMETA)
                t_fail("%d metadata entries read back, not %d", cl_safetensors_meta_count(st), NMETA);
            for (int i = 0; i < cl_safetensors_meta_count(st) && i < NMETA; i++)
                if (strcmp(cl_safetensors_meta_key(st, i), keys[i]) != 0)
                    t_fail("entry %d is %s, not %s", i, cl_safetensors_meta_key(st, i), keys[i]);
            if (cl_safetensors_meta_key(st, NMETA) || cl_safetensors_meta_key(st, -1))
                t_fail("a key past the entries");
            cl_safetensors_free(st);
        }
    }
    free(text);
    cl_model_free(m);
    unlink(path);

    t_begin("reader: a \\u escape outside ASCII names a tensor in UTF-8; a folder says so");
    write_st(path, "{\"caf\\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    cl_safetensors *st = cl_safetensors_read(path, err, sizeof err);
    if (!st) t_fail("%s", err);
    else if (st->n != 1 || strcmp(st->t[0].name, "caf\xc3\xa9") != 0)
        t_fail("the name reads back as %s", st->n ? st->t[0].name : "(none)");
    cl_safetensors_free(st);
    unlink(path);
    char dir[512];
    tmp_path(dir, sizeof dir, "folder.safetensors");
    mkdir(dir, 0700);
    st = cl_safetensors_read(dir, err, sizeof err);
    if (st) t_fail("a folder was read");
    else if (!strstr(err, dir) || !strstr(err, "directory"))
        t_fail("reading a folder: \"%s\" does not say it is a directory", err);
    cl_safetensors_free(st);
    rmdir(dir);
}

/* ---- non-finite weights ----------------------------------------------------------------------- */

/* A checkpoint with one NaN or Inf is refused by cl_model_load, naming the tensor;
 * the model keeps its values. */
static void non_finite_weights(const interop *io) {
    static const struct {
        const char *tensor;
        float value;
        bool optimizer;
    } CASES[] = {
        {"layers.0.weight", NAN, false},       {"layers.12.bias", INFINITY, false},
        {"layers.5.running_var", -INFINITY, false}, {"optimizer.buf1", NAN, true},
    };
    t_begin("cl_model_load: a NaN or Inf in a tensor is an error naming the tensor");
    char good[512], bad[512], err[1024];
    tmp_path(good, sizeof good, "finite.safetensors");
    tmp_path(bad, sizeof bad, "non-finite.safetensors");
    cl_model *m = new_model(io, 1, 14), *src = new_model(io, 1, 15);
    cl_optimizer *o = m ? cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM}) : NULL;
    cl_optimizer *os = src ? cl_optimizer_new(src, (cl_optim_args){.kind = CL_OPT_ADAM}) : NULL;
    if (!o || !os || !train(src, os, io, 2) || !save_ok(src, os, good, NULL, 0)) goto done;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        cl_safetensors *st = cl_safetensors_read(good, err, sizeof err);
        if (!st) {
            t_fail("%s", err);
            break;
        }
        const cl_st_tensor *t = cl_safetensors_find(st, CASES[c].tensor);
        if (!t || strcmp(t->dtype, "F32") || t->nbytes < 8) {
            t_fail("no F32 tensor %s", CASES[c].tensor);
            cl_safetensors_free(st);
            break;
        }
        /* the second value, so that a check of the first alone fails */
        memcpy((uint8_t *)t->data + 4, &CASES[c].value, 4);
        const char *meta[] = {"format", "pt"};
        bool written = cl_safetensors_write(bad, st->t, st->n, meta, 1, err, sizeof err) == CL_OK;
        cl_safetensors_free(st);
        if (!written) {
            t_fail("%s", err);
            break;
        }
        char what[160];
        snprintf(what, sizeof what, "%g in %s", CASES[c].value, CASES[c].tensor);
        expect_load_refused(what, bad, CASES[c].tensor, m, CASES[c].optimizer ? o : NULL);
        if (!CASES[c].optimizer && cl_model_load(m, NULL, bad, err, sizeof err) == CL_OK)
            t_fail("%s: loaded without an optimizer", what);
        if (!strstr(err, "NaN") && !strstr(err, "finite"))
            t_fail("%s: \"%s\" does not say the value is not finite", what, err);
    }
    if (!load_ok(m, o, good)) t_fail("the finite checkpoint does not load");
done:
    cl_optimizer_free(o);
    cl_optimizer_free(os);
    cl_model_free(m);
    cl_model_free(src);
    unlink(good);
    unlink(bad);
}

/* ---- --export: a checkpoint for gen_safetensors.py --check-cnnlab ------------------------------ */

static int export_checkpoint(const interop *io, const char *path) {
    cl_model *m = new_model(io, 1, 12);
    cl_optimizer *o = m ? cl_optimizer_new(m, (cl_optim_args){.kind = CL_OPT_ADAM}) : NULL;
    if (!o || !load_ok(m, NULL, TORCH_EXPORT) || !train(m, o, io, 3)) return t_finish();
    const float *y = cl_model_forward(m, io->xin, io->n, false);
    size_t k = (size_t)cl_model_shape(m, cl_model_output(m)).c * (size_t)io->n;
    char *out = xmalloc(k * 20 + 1), *p = out;
    for (size_t i = 0; i < k; i++) p += sprintf(p, "%s%.9g", i ? " " : "", y[i]);
    const char *meta[] = {"format", "pt", "cnnlab.model_text", io->c->model_text,
                          "test.eval_out", out};
    if (save_ok(m, o, path, meta, 3)) printf("wrote %s\n", path);
    free(out);
    cl_optimizer_free(o);
    cl_model_free(m);
    return t_finish();
}

int main(int argc, char **argv) {
    const char *export_path = argc == 3 && !strcmp(argv[1], "--export") ? argv[2] : NULL;
    char err[512];
    fx_file *f = fx_load(FIXTURE, err, sizeof err);
    if (!f || f->ncases < 1) {
        t_fail("%s", f ? FIXTURE ": no cases" : err);
        fx_free(f);
        return t_finish();
    }
    interop io = {.c = &f->cases[0]};
    io.x = fx_need(io.c, "x");
    io.out = fx_need(io.c, "out");
    if (!io.x || !io.out || io.x->ndim != 4 || io.x->dims[0] > 16) {
        t_fail("%s is malformed", FIXTURE);
        fx_free(f);
        return t_finish();
    }
    io.n = (int)io.x->dims[0];
    io.xin = fx_to_nhwc(io.x);
    for (int i = 0; i < io.n; i++) io.labels[i] = (int32_t)(i * 3 % 7);
    if (export_path) {
        int rc = export_checkpoint(&io, export_path);
        free(io.xin);
        fx_free(f);
        return rc;
    }
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnlab-checkpoint-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        t_fail("mkdtemp(%s): %s", tmpdir, strerror(errno));
        return t_finish();
    }

    torch_export_checks(&io);
    same_bytes_as_torch(&io);
    round_trip(&io, (cl_optim_args){.kind = CL_OPT_SGD, .momentum = 0.9f, .weight_decay = 5e-4f},
               "SGD momentum");
    round_trip(&io, (cl_optim_args){.kind = CL_OPT_ADAM, .weight_decay = 1e-3f}, "Adam");
    hostile_files(&io);
    model_mismatch(&io);
    damaged_files(&io);
    atomic_writes(&io);
    long_metadata(&io);
    non_finite_weights(&io);
    t_end();

    if (rmdir(tmpdir) != 0) t_fail("%s is not empty after the tests: %s", tmpdir, strerror(errno));
    free(io.xin);
    fx_free(f);
    return t_finish();
}
