/* safetensors.c: reading and writing the safetensors format (an 8-byte little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte range, then
 * the raw little-endian data), so that PyTorch (safetensors.torch.load_file) and other
 * tools read cnnlab's checkpoints. The JSON header is read and written with jansson, a
 * JSON library fuzzed continuously by OSS-Fuzz; this file checks what the JSON says
 * (dtypes, shapes, offsets that cover the data exactly). Writes are atomic: a
 * temporary file in the same folder is written, flushed to disk and renamed over the
 * target, so a crash or a full disk never leaves a broken checkpoint. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnnlab.h"

#define MAX_HEADER (64u << 20)
/* The largest dimension the reader accepts (2^40). */
#define MAX_DIM ((json_int_t)1 << 40)

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
    if (!strcmp(d, "F64") || !strcmp(d, "I64")) return 8;
    return 0;
}

/* ---- writing ----------------------------------------------------------------- */

/* The official writer's order: by dtype, largest alignment first (its Dtype enum:
 * ... I32, U32, F32, F64, I64, U64), then by name. Every tensor then starts at a
 * multiple of its element size, since the data starts at a multiple of 8. */
static int dtype_rank(const char *d) {
    return !strcmp(d, "I64") ? 4 : !strcmp(d, "F64") ? 3 : !strcmp(d, "F32") ? 2 : 1;
}

static int official_order(const void *pa, const void *pb) {
    const cl_st_tensor *a = *(const cl_st_tensor *const *)pa, *b = *(const cl_st_tensor *const *)pb;
    int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
    return ra != rb ? rb - ra : strcmp(a->name, b->name);
}

/* Whether the writer's arguments make a file its reader accepts; else a message.
 * Strings must be valid UTF-8 (JSON text is); metadata has no length limit but the
 * header's 64 MiB. */
static bool check_write_args(const char *path, const cl_st_tensor *t, int n,
                             const char *const *meta, int nmeta, char *err, size_t errlen) {
    if (n < 0 || nmeta < 0) {
        snprintf(err, errlen, "%s: %d tensors and %d metadata entries", path, n, nmeta);
        return false;
    }
    for (int i = 0; i < 2 * nmeta; i++) {
        json_t *probe = meta[i] ? json_string(meta[i]) : NULL;
        if (!probe) {
            snprintf(err, errlen, "%s: metadata %s %.100s is missing or not valid UTF-8", path,
                     i % 2 ? "value of" : "key", meta[i - i % 2] ? meta[i - i % 2] : "(null)");
            return false;
        }
        json_decref(probe);
    }
    for (int i = 0; i < n; i++) {
        size_t es = dtype_size(t[i].dtype);
        uint64_t numel = 1;
        bool named = memchr(t[i].name, 0, sizeof t[i].name) && t[i].name[0] &&
                     strcmp(t[i].name, "__metadata__") != 0;
        json_t *probe = named ? json_string(t[i].name) : NULL;
        bool ok = es && probe && t[i].ndim >= 0 && t[i].ndim <= CL_ST_MAX_DIMS;
        json_decref(probe);
        for (int d = 0; ok && d < t[i].ndim; d++) {
            uint64_t v = (uint64_t)t[i].dims[d];
            ok = t[i].dims[d] >= 0 && t[i].dims[d] <= MAX_DIM &&
                 (v == 0 || numel <= UINT64_MAX / es / v);
            numel *= v;
        }
        if (!ok || numel * es != t[i].nbytes || (t[i].nbytes && !t[i].data)) {
            snprintf(err, errlen, "%s: tensor %d (%.*s): %zu bytes do not match its dtype and "
                     "shape, or the name or dtype is invalid", path, i, CL_ST_NAME_LEN - 1,
                     named ? t[i].name : "", t[i].nbytes);
            return false;
        }
    }
    return true;
}

/* The header as the official writer makes it: {"__metadata__":{...}, then each tensor
 * {"dtype":..,"shape":[..],"data_offsets":[b,e]}} in ord's order, compact, padded with
 * spaces to a multiple of 8 so the data is aligned. NULL when out of memory (the
 * arguments were checked). *len receives its length. */
static char *make_header(const cl_st_tensor *const *ord, int n, const char *const *meta, int nmeta,
                         size_t *len) {
    json_t *root = json_object();
    bool ok = root != NULL;
    if (ok && nmeta > 0) {
        json_t *md = json_object();
        ok = md && json_object_set_new(root, "__metadata__", md) == 0;
        for (int i = 0; ok && i < nmeta; i++)
            ok = json_object_set_new(md, meta[2 * i], json_string(meta[2 * i + 1])) == 0;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        const cl_st_tensor *t = ord[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            if (json_array_append_new(shape, json_integer((json_int_t)t->dims[d])) != 0) {
                json_decref(shape);
                shape = NULL;
            }
        json_t *entry = shape ? json_pack("{s:s,s:o,s:[I,I]}", "dtype", t->dtype, "shape", shape,
                                          "data_offsets", (json_int_t)off,
                                          (json_int_t)(off + t->nbytes))
                              : NULL;
        ok = entry && json_object_set_new(root, t->name, entry) == 0;
        off += t->nbytes;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return NULL;
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    char *h = realloc(text, padded + 1);
    if (!h) {
        free(text);
        return NULL;
    }
    memset(h + tl, ' ', padded - tl);
    h[padded] = 0;
    *len = padded;
    return h;
}

cl_status cl_safetensors_write(const char *path, const cl_st_tensor *t, int n,
                               const char *const *meta, int nmeta, char *err, size_t errlen) {
    if (!check_write_args(path, t, n, meta, nmeta, err, errlen)) return CL_ERR_ARG;
    const cl_st_tensor **ord = malloc((n > 0 ? (size_t)n : 1) * sizeof *ord);
    if (!ord) {
        snprintf(err, errlen, "%s: out of memory", path);
        return CL_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) ord[i] = &t[i];
    qsort(ord, (size_t)n, sizeof *ord, official_order);
    for (int i = 1; i < n; i++)
        if (!strcmp(ord[i]->name, ord[i - 1]->name)) {
            snprintf(err, errlen, "%s: two tensors are named %s", path, ord[i]->name);
            free(ord);
            return CL_ERR_ARG;
        }
    for (int i = 0; i < nmeta; i++)
        for (int k = 0; k < i; k++)
            if (!strcmp(meta[2 * i], meta[2 * k])) {
                snprintf(err, errlen, "%s: metadata key %.100s is given twice", path, meta[2 * i]);
                free(ord);
                return CL_ERR_ARG;
            }
    size_t hlen = 0;
    char *h = make_header(ord, n, meta, nmeta, &hlen);
    if (!h || hlen > MAX_HEADER) {
        snprintf(err, errlen, h ? "%s: the header would have %zu bytes, more than the readers' "
                                  "limit of 64 MiB" : "%s: out of memory", path, hlen);
        free(h);
        free(ord);
        return h ? CL_ERR_ARG : CL_ERR_NOMEM;
    }

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        free(h);
        free(ord);
        snprintf(err, errlen, "%s: path too long", path);
        return CL_ERR_IO;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h);
        free(ord);
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        return CL_ERR_IO;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen;
    for (int i = 0; ok && i < n; i++)
        ok = ord[i]->nbytes == 0 || fwrite(ord[i]->data, 1, ord[i]->nbytes, f) == ord[i]->nbytes;
    free(h);
    free(ord);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) saved = errno;
        unlink(tmp);
        snprintf(err, errlen, "%s: writing the checkpoint failed (%s); the previous file, if any, "
                 "is untouched", path, strerror(saved));
        return CL_ERR_IO;
    }
    return CL_OK;
}

/* ---- reading ------------------------------------------------------------------ */

/* jansson keeps no positions, so messages about a tensor entry find it in the text,
 * which jansson has already accepted as JSON: these skip a string, blanks and any
 * value, and return the index after it. */
static size_t skip_blank(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
    return i;
}

static size_t skip_string(const char *s, size_t i, size_t n) {
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    return i + 1;
}

static size_t skip_value(const char *s, size_t i, size_t n) {
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, i, n);
            if (depth == 0) return i;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return i;
            if (--depth == 0) return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r')) {
            return i;
        }
        i++;
    }
    return i;
}

/* The header offset of each top-level member's key, in the order of the text (which
 * is jansson's iteration order), into at[0..count). */
static void member_offsets(const char *s, size_t n, long *at, size_t count) {
    size_t i = skip_blank(s, 0, n) + 1; /* past '{' */
    for (size_t k = 0; k < count; k++) {
        i = skip_blank(s, i, n);
        if (i < n && s[i] == ',') i = skip_blank(s, i + 1, n);
        at[k] = (long)i;
        i = skip_blank(s, skip_string(s, i, n), n) + 1; /* past ':' */
        i = skip_value(s, skip_blank(s, i, n), n);
    }
}

/* Where a tensor's bytes lie, and where its header entry starts (a file offset). */
typedef struct {
    uint64_t begin, end;
    long at;
    int i;
} span;

static int by_begin(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->i - b->i;
}

static int by_name(const void *pa, const void *pb) {
    return strcmp((*(const cl_st_tensor *const *)pa)->name, (*(const cl_st_tensor *const *)pb)->name);
}

/* As the official reader: sorted by begin, the tensors' bytes lie back to back and
 * cover the data exactly (no gap, no overlap, nothing after); names are unique. */
static bool check_coverage(const char *path, cl_safetensors *st, span *sp, long data_at,
                           char *err, size_t errlen) {
    qsort(sp, (size_t)st->n, sizeof *sp, by_begin);
    uint64_t end = 0;
    for (int k = 0; k < st->n; k++) {
        if (sp[k].begin != end) {
            snprintf(err, errlen, "%s: tensor %s at byte %ld: data_offsets [%llu, %llu] %s "
                     "(the tensors before it end at %llu): the data must be covered back to back",
                     path, st->t[sp[k].i].name, sp[k].at, (unsigned long long)sp[k].begin,
                     (unsigned long long)sp[k].end, sp[k].begin > end ? "leave a gap" : "overlap",
                     (unsigned long long)end);
            return false;
        }
        end = sp[k].end;
    }
    if (end != st->ndata) {
        snprintf(err, errlen, "%s: %llu data bytes at byte %llu belong to no tensor", path,
                 (unsigned long long)(st->ndata - end), (unsigned long long)data_at + end);
        return false;
    }
    const cl_st_tensor **names = malloc((st->n > 0 ? (size_t)st->n : 1) * sizeof *names);
    if (!names) {
        snprintf(err, errlen, "%s: out of memory", path);
        return false;
    }
    for (int i = 0; i < st->n; i++) names[i] = &st->t[i];
    qsort(names, (size_t)st->n, sizeof *names, by_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(names[i]->name, names[i - 1]->name)) {
            long at = 0;
            for (int k = 0; k < st->n; k++)
                if (&st->t[sp[k].i] == names[i] || &st->t[sp[k].i] == names[i - 1])
                    at = at > sp[k].at ? at : sp[k].at;
            snprintf(err, errlen, "%s: tensor %s at byte %ld: a second tensor of that name", path,
                     names[i]->name, at);
            free(names);
            return false;
        }
    free(names);
    return true;
}

static bool json_count(const json_t *v, json_int_t max, json_int_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* One tensor entry {"dtype":..,"shape":[..],"data_offsets":[b,e]} into t, begin, end;
 * else the reason. */
static const char *parse_tensor(const json_t *v, cl_st_tensor *t, uint64_t *begin, uint64_t *end) {
    if (!json_is_object(v)) return "a tensor entry is not an object";
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return "unknown key in a tensor entry";
    }
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *offs = json_object_get(v, "data_offsets");
    if (!dtype || !shape || !offs) return "a tensor entry lacks dtype, shape or data_offsets";
    if (!json_is_string(dtype)) return "the dtype is not a string";
    snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dtype));
    if (!dtype_size(t->dtype)) return NULL; /* named with the tensor by the caller */
    if (!json_is_array(shape)) return "the shape is not an array";
    if (json_array_size(shape) > CL_ST_MAX_DIMS) return "too many dimensions (at most 8)";
    t->ndim = (int)json_array_size(shape);
    for (int d = 0; d < t->ndim; d++) {
        json_int_t dim;
        if (!json_count(json_array_get(shape, (size_t)d), MAX_DIM, &dim))
            return "a dimension is not a whole number from 0 to 2^40";
        t->dims[d] = (int64_t)dim;
    }
    json_int_t b, e;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_count(json_array_get(offs, 0), INT64_MAX, &b) ||
        !json_count(json_array_get(offs, 1), INT64_MAX, &e))
        return "data_offsets needs 2 whole numbers";
    *begin = (uint64_t)b;
    *end = (uint64_t)e;
    return NULL;
}

/* __metadata__: string keys and values, copied into st->meta. */
static const char *parse_metadata(const json_t *v, cl_safetensors *st) {
    if (!json_is_object(v)) return "__metadata__ is not an object";
    st->meta = calloc(2 * json_object_size(v) + 1, sizeof *st->meta);
    if (!st->meta) return "out of memory";
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        if (!json_is_string(x)) return "a metadata value is not a string";
        char **kv = &st->meta[2 * st->nmeta];
        if (!(kv[0] = strdup(key)) || !(kv[1] = strdup(json_string_value(x)))) {
            st->nmeta++; /* frees whichever was copied */
            return "out of memory";
        }
        st->nmeta++;
    }
    return NULL;
}

/* Every tensor of the parsed header into st, with its span and entry offset. */
static bool read_entries(const char *path, const json_t *root, const char *header, size_t hlen,
                         cl_safetensors *st, span **spans, char *err, size_t errlen) {
    size_t count = json_object_size(root);
    long *at = malloc((count ? count : 1) * sizeof *at);
    st->t = calloc(count ? count : 1, sizeof *st->t);
    span *sp = *spans = malloc((count ? count : 1) * sizeof *sp);
    if (!at || !st->t || !sp) {
        free(at);
        snprintf(err, errlen, "%s: out of memory", path);
        return false;
    }
    st->cap = (int)count;
    member_offsets(header, hlen, at, count);
    size_t k = 0;
    const char *name;
    json_t *v;
    bool ok = true;
    json_object_foreach((json_t *)root, name, v) {
        long pos = at[k++] + 8; /* the entry's file offset */
        const char *why = NULL;
        if (!strcmp(name, "__metadata__")) {
            if ((why = parse_metadata(v, st)) != NULL) {
                snprintf(err, errlen, "%s: %s at byte %ld", path, why, pos);
                ok = false;
                break;
            }
            continue;
        }
        if (strlen(name) >= CL_ST_NAME_LEN) {
            snprintf(err, errlen, "%s: a tensor name of %zu bytes at byte %ld (at most %d)", path,
                     strlen(name), pos, CL_ST_NAME_LEN - 1);
            ok = false;
            break;
        }
        cl_st_tensor *t = &st->t[st->n];
        snprintf(t->name, sizeof t->name, "%s", name);
        uint64_t b = 0, e = 0;
        if ((why = parse_tensor(v, t, &b, &e)) != NULL) {
            snprintf(err, errlen, "%s: tensor %s at byte %ld: %s", path, name, pos, why);
            ok = false;
            break;
        }
        size_t es = dtype_size(t->dtype);
        if (!es) {
            snprintf(err, errlen, "%s: tensor %s at byte %ld has dtype %s; cnnlab reads F32, "
                     "F64, I32, I64", path, name, pos, json_string_value(json_object_get(v, "dtype")));
            ok = false;
            break;
        }
        uint64_t numel = 1;
        bool fits = true;
        for (int d = 0; d < t->ndim && fits; d++) {
            uint64_t dim = (uint64_t)t->dims[d];
            fits = dim == 0 || numel <= UINT64_MAX / es / dim;
            numel *= dim;
        }
        if (!fits || b > e || e > st->ndata || e - b != numel * es) {
            snprintf(err, errlen, "%s: tensor %s at byte %ld: data_offsets [%llu, %llu] do "
                     "not fit its %s shape or the %zu data bytes", path, name, pos,
                     (unsigned long long)b, (unsigned long long)e, t->dtype, st->ndata);
            ok = false;
            break;
        }
        t->data = st->data + b;
        t->nbytes = (size_t)(e - b);
        sp[st->n] = (span){b, e, pos, st->n};
        st->n++;
    }
    free(at);
    return ok;
}

cl_safetensors *cl_safetensors_read(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, S_ISDIR(sb.st_mode) ? "is a directory, not a "
                 "safetensors file" : strerror(errno));
        fclose(f);
        return NULL;
    }
    cl_safetensors *st = calloc(1, sizeof *st);
    char *header = NULL;
    span *sp = NULL;
    json_t *root = NULL;
    uint8_t len8[8];
    long fsize = S_ISREG(sb.st_mode) ? (long)sb.st_size : -1;
    if (!st || fsize < 8 || fread(len8, 1, 8, f) != 8) {
        snprintf(err, errlen, "%s: not a safetensors file: no 8-byte header length at byte 0 "
                 "(the file has %ld bytes)", path, fsize);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (hlen < 2 || hlen > MAX_HEADER || hlen > (uint64_t)fsize - 8) {
        snprintf(err, errlen, "%s: header length %llu at byte 0 does not fit the %ld-byte file",
                 path, (unsigned long long)hlen, fsize);
        goto fail;
    }
    size_t dlen = (size_t)((uint64_t)fsize - 8 - hlen);
    if (dlen > ((size_t)1 << 40)) {
        snprintf(err, errlen, "%s: %zu data bytes: too large for a checkpoint", path, dlen);
        goto fail;
    }
    header = malloc(hlen);
    st->data = malloc(dlen ? dlen : 1);
    st->ndata = dlen;
    if (!header || !st->data) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (fread(header, 1, hlen, f) != hlen || fread(st->data, 1, dlen, f) != dlen) {
        snprintf(err, errlen, "%s: read error at byte %ld: %s", path, ftell(f),
                 ferror(f) ? strerror(errno) : "the file shrank while it was read");
        goto fail;
    }
    /* Duplicate keys are an error (the official reader refuses them too); NUL
     * characters in strings are refused by default, as is invalid UTF-8. */
    json_error_t je;
    root = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s: malformed JSON header at byte %ld: %s", path,
                 (long)je.position + 8, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the JSON header at byte 8 is not an object", path);
        goto fail;
    }
    if (!read_entries(path, root, header, hlen, st, &sp, err, errlen)) goto fail;
    if (!check_coverage(path, st, sp, (long)(8 + hlen), err, errlen)) goto fail;
    json_decref(root);
    free(sp);
    free(header);
    fclose(f);
    return st;
fail:
    json_decref(root);
    free(sp);
    free(header);
    fclose(f);
    cl_safetensors_free(st);
    return NULL;
}

void cl_safetensors_free(cl_safetensors *st) {
    if (!st) return;
    for (int i = 0; st->meta && i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->t);
    free(st->data);
    free(st);
}

const cl_st_tensor *cl_safetensors_find(const cl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *cl_safetensors_meta(const cl_safetensors *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

int cl_safetensors_meta_count(const cl_safetensors *st) { return st->nmeta; }

const char *cl_safetensors_meta_key(const cl_safetensors *st, int i) {
    return i >= 0 && i < st->nmeta ? st->meta[2 * i] : NULL;
}
