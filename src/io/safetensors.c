/* safetensors.c: reading and writing the safetensors format (an 8-byte little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte range, then
 * the raw little-endian data), so that PyTorch (safetensors.torch.load_file) and other
 * tools read cnnlab's checkpoints. Writes are atomic: a temporary file in the same
 * folder is written, flushed to disk and renamed over the target, so a crash or a full
 * disk never leaves a broken checkpoint. The reader checks every length and offset. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"

#define MAX_HEADER (64u << 20)

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
    if (!strcmp(d, "F64") || !strcmp(d, "I64")) return 8;
    return 0;
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void puts_(strbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(strbuf *b, const char *s) {
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(b, esc);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

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

/* Whether the writer's arguments make a file its reader accepts; else a message. */
static bool check_write_args(const char *path, const cl_st_tensor *t, int n,
                             const char *const *meta, int nmeta, char *err, size_t errlen) {
    if (n < 0 || nmeta < 0 || nmeta > CL_ST_MAX_META) {
        snprintf(err, errlen, "%s: %d tensors and %d metadata entries (at most %d)", path, n,
                 nmeta, CL_ST_MAX_META);
        return false;
    }
    for (int i = 0; i < 2 * nmeta; i++)
        if (!meta[i] || strlen(meta[i]) >= CL_ST_META_LEN) {
            snprintf(err, errlen, "%s: metadata %s %s is missing or longer than %d bytes", path,
                     i % 2 ? "value of" : "key", meta[i - i % 2] ? meta[i - i % 2] : "(null)",
                     CL_ST_META_LEN - 1);
            return false;
        }
    for (int i = 0; i < n; i++) {
        size_t es = dtype_size(t[i].dtype);
        uint64_t numel = 1;
        bool ok = es && t[i].ndim >= 0 && t[i].ndim <= CL_ST_MAX_DIMS &&
                  memchr(t[i].name, 0, sizeof t[i].name) && t[i].name[0] &&
                  strcmp(t[i].name, "__metadata__") != 0;
        for (int d = 0; ok && d < t[i].ndim; d++) {
            uint64_t v = (uint64_t)t[i].dims[d];
            ok = t[i].dims[d] >= 0 && (v == 0 || numel <= UINT64_MAX / es / v);
            numel *= v;
        }
        if (!ok || numel * es != t[i].nbytes || (t[i].nbytes && !t[i].data)) {
            snprintf(err, errlen, "%s: tensor %d (%.*s): %zu bytes do not match its dtype and "
                     "shape, or the name or dtype is invalid", path, i, CL_ST_NAME_LEN - 1,
                     t[i].name, t[i].nbytes);
            return false;
        }
    }
    return true;
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
    strbuf h = {0};
    char num[64];
    put(&h, "{", 1);
    bool first = true;
    if (nmeta > 0) {
        puts_(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) put(&h, ",", 1);
            put_json_string(&h, meta[2 * i]);
            put(&h, ":", 1);
            put_json_string(&h, meta[2 * i + 1]);
        }
        put(&h, "}", 1);
        first = false;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const cl_st_tensor *ti = ord[i];
        if (!first) put(&h, ",", 1);
        first = false;
        put_json_string(&h, ti->name);
        puts_(&h, ":{\"dtype\":\"");
        puts_(&h, ti->dtype);
        puts_(&h, "\",\"shape\":[");
        for (int d = 0; d < ti->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)ti->dims[d]);
            puts_(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + ti->nbytes));
        puts_(&h, num);
        off += ti->nbytes;
    }
    put(&h, "}", 1);
    /* Pad the header with spaces to a multiple of 8 so the data is aligned. */
    while (!h.oom && h.len % 8) put(&h, " ", 1);
    if (h.oom) {
        free(h.s);
        free(ord);
        snprintf(err, errlen, "%s: out of memory", path);
        return CL_ERR_NOMEM;
    }

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        free(h.s);
        free(ord);
        snprintf(err, errlen, "%s: path too long", path);
        return CL_ERR_IO;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h.s);
        free(ord);
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        return CL_ERR_IO;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++)
        ok = ord[i]->nbytes == 0 || fwrite(ord[i]->data, 1, ord[i]->nbytes, f) == ord[i]->nbytes;
    free(h.s);
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

/* ---- reading: a small JSON reader for the header ------------------------------ */

typedef struct {
    const char *s, *end;
    const char *err;
} json;

static void skip_ws(json *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')) j->s++;
}

static bool expect(json *j, char c) {
    skip_ws(j);
    if (j->s < j->end && *j->s == c) {
        j->s++;
        return true;
    }
    if (!j->err) j->err = "malformed JSON header";
    return false;
}

/* A string into out (at most outlen-1 bytes, \uXXXX below 0x80 only). */
static bool json_string(json *j, char *out, size_t outlen) {
    if (!expect(j, '"')) return false;
    size_t n = 0;
    while (j->s < j->end && *j->s != '"') {
        char c = *j->s++;
        if (c == '\\') {
            if (j->s >= j->end) break;
            char e = *j->s++;
            if (e == 'u') {
                if (j->end - j->s < 4) break;
                char hex[5] = {j->s[0], j->s[1], j->s[2], j->s[3], 0};
                char *endp;
                long v = strtol(hex, &endp, 16);
                j->s += 4;
                if (*endp || v >= 0x80) {
                    j->err = "unsupported escape in JSON header";
                    return false;
                }
                c = (char)v;
            } else {
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            }
        }
        if (n + 1 >= outlen) {
            j->err = "string too long in JSON header";
            return false;
        }
        out[n++] = c;
    }
    if (j->s >= j->end) {
        j->err = "unterminated string in JSON header";
        return false;
    }
    j->s++;
    out[n] = 0;
    return true;
}

static bool json_uint(json *j, uint64_t *v) {
    skip_ws(j);
    if (j->s >= j->end || !isdigit((unsigned char)*j->s)) {
        j->err = "expected a number in JSON header";
        return false;
    }
    uint64_t x = 0;
    while (j->s < j->end && isdigit((unsigned char)*j->s)) {
        if (x > (UINT64_MAX - 9) / 10) {
            j->err = "number too large in JSON header";
            return false;
        }
        x = x * 10 + (uint64_t)(*j->s++ - '0');
    }
    *v = x;
    return true;
}

static bool peek(json *j, char c) {
    skip_ws(j);
    return j->s < j->end && *j->s == c;
}

/* [n, n, ...] into v (at most max); returns the count or -1. */
static int json_uint_array(json *j, uint64_t *v, int max) {
    if (!expect(j, '[')) return -1;
    int n = 0;
    if (peek(j, ']')) {
        j->s++;
        return 0;
    }
    do {
        if (n == max) {
            j->err = "too many dimensions in JSON header";
            return -1;
        }
        if (!json_uint(j, &v[n++])) return -1;
    } while (peek(j, ',') && j->s++);
    return expect(j, ']') ? n : -1;
}

static bool grow_tensors(cl_safetensors *st) {
    if (st->n < st->cap) return true;
    int cap = st->cap ? st->cap * 2 : 32;
    cl_st_tensor *t = realloc(st->t, (size_t)cap * sizeof *t);
    if (!t) return false;
    st->t = t;
    st->cap = cap;
    return true;
}

static bool parse_metadata(json *j, cl_safetensors *st) {
    if (!expect(j, '{')) return false;
    if (peek(j, '}')) return j->s++, true;
    do {
        if (st->nmeta == CL_ST_MAX_META) {
            j->err = "too many metadata entries";
            return false;
        }
        char *k = st->meta[st->nmeta][0], *v = st->meta[st->nmeta][1];
        if (!json_string(j, k, CL_ST_META_LEN) || !expect(j, ':') ||
            !json_string(j, v, CL_ST_META_LEN))
            return false;
        st->nmeta++;
    } while (peek(j, ',') && j->s++);
    return expect(j, '}');
}

static bool parse_tensor(json *j, cl_st_tensor *t, uint64_t *begin, uint64_t *end) {
    if (!expect(j, '{')) return false;
    bool have_dtype = false, have_shape = false, have_off = false;
    do {
        char key[32];
        if (!json_string(j, key, sizeof key) || !expect(j, ':')) return false;
        if (!strcmp(key, "dtype")) {
            if (!json_string(j, t->dtype, sizeof t->dtype)) return false;
            have_dtype = true;
        } else if (!strcmp(key, "shape")) {
            uint64_t d[CL_ST_MAX_DIMS];
            int nd = json_uint_array(j, d, CL_ST_MAX_DIMS);
            if (nd < 0) return false;
            t->ndim = nd;
            for (int i = 0; i < nd; i++) {
                if (d[i] > ((uint64_t)1 << 40)) {
                    j->err = "absurd dimension in JSON header";
                    return false;
                }
                t->dims[i] = (int64_t)d[i];
            }
            have_shape = true;
        } else if (!strcmp(key, "data_offsets")) {
            uint64_t o[2];
            if (json_uint_array(j, o, 2) != 2) {
                if (!j->err) j->err = "data_offsets needs 2 numbers";
                return false;
            }
            *begin = o[0];
            *end = o[1];
            have_off = true;
        } else {
            j->err = "unknown key in a tensor entry";
            return false;
        }
    } while (peek(j, ',') && j->s++);
    if (!expect(j, '}')) return false;
    if (!have_dtype || !have_shape || !have_off) {
        j->err = "a tensor entry lacks dtype, shape or data_offsets";
        return false;
    }
    return true;
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

cl_safetensors *cl_safetensors_read(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    cl_safetensors *st = calloc(1, sizeof *st);
    char *header = NULL;
    span *sp = NULL;
    int spcap = 0;
    uint8_t len8[8];
    long fsize = -1;
    if (fseek(f, 0, SEEK_END) == 0) fsize = ftell(f);
    rewind(f);
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
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    json j = {header, header + hlen, NULL};
    bool ok = expect(&j, '{');
    if (ok && !peek(&j, '}')) {
        do {
            char name[CL_ST_NAME_LEN];
            if (!json_string(&j, name, sizeof name) || !expect(&j, ':')) {
                ok = false;
                break;
            }
            if (!strcmp(name, "__metadata__")) {
                if (!(ok = parse_metadata(&j, st))) break;
                continue;
            }
            if (!grow_tensors(st)) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            if (st->n == spcap) {
                span *more = realloc(sp, (size_t)st->cap * sizeof *sp);
                if (!more) {
                    snprintf(err, errlen, "%s: out of memory", path);
                    goto fail;
                }
                sp = more;
                spcap = st->cap;
            }
            skip_ws(&j);
            long at = (long)(j.s - header) + 8; /* the entry's file offset, for messages */
            cl_st_tensor *t = &st->t[st->n];
            memset(t, 0, sizeof *t);
            snprintf(t->name, sizeof t->name, "%s", name);
            uint64_t b = 0, e = 0;
            if (!(ok = parse_tensor(&j, t, &b, &e))) break;
            size_t es = dtype_size(t->dtype);
            if (!es) {
                snprintf(err, errlen, "%s: tensor %s at byte %ld has dtype %s; cnnlab reads F32, "
                         "F64, I32, I64", path, name, at, t->dtype);
                goto fail;
            }
            uint64_t numel = 1;
            bool fits = true;
            for (int d = 0; d < t->ndim && fits; d++) {
                uint64_t v = (uint64_t)t->dims[d];
                fits = v == 0 || numel <= UINT64_MAX / es / v;
                numel *= v;
            }
            if (!fits || b > e || e > dlen || e - b != numel * es) {
                snprintf(err, errlen, "%s: tensor %s at byte %ld: data_offsets [%llu, %llu] do "
                         "not fit its %s shape or the %zu data bytes", path, name, at,
                         (unsigned long long)b, (unsigned long long)e, t->dtype, dlen);
                goto fail;
            }
            t->data = st->data + b;
            t->nbytes = (size_t)(e - b);
            sp[st->n] = (span){b, e, at, st->n};
            st->n++;
        } while (peek(&j, ',') && j.s++);
        if (ok) ok = expect(&j, '}');
    } else if (ok) {
        j.s++;
    }
    if (ok) {
        skip_ws(&j);
        if (j.s != j.end) {
            j.err = "trailing bytes after the JSON header";
            ok = false;
        }
    }
    if (!ok) {
        snprintf(err, errlen, "%s: %s at byte %ld", path, j.err ? j.err : "malformed header",
                 (long)(j.s - header) + 8);
        goto fail;
    }
    if (!check_coverage(path, st, sp, (long)(8 + hlen), err, errlen)) goto fail;
    free(sp);
    free(header);
    fclose(f);
    return st;
fail:
    free(sp);
    free(header);
    fclose(f);
    cl_safetensors_free(st);
    return NULL;
}

void cl_safetensors_free(cl_safetensors *st) {
    if (!st) return;
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
        if (!strcmp(st->meta[i][0], key)) return st->meta[i][1];
    return NULL;
}
