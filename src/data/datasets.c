/* data.c: the binary dataset loaders (CIFAR-10, CIFAR-100, IDX files such as MNIST
 * and Fashion-MNIST), cl_dataset_free and cl_dataset_stats (docs/data.md).
 *
 * Every loader validates what it reads: a missing file says which file is missing
 * from which folder and where to get it; a bad file names the file and the byte
 * offset or record of the problem (truncation, wrong magic number, wrong record
 * size, labels out of range, impossible dimensions, corrupt gzip data). On error
 * *out is left empty (all zero), so cl_dataset_free on it is always safe. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "util/util.h"

#define CIFAR_PIXELS 3072      /* 3 planes of 32x32 */
#define CIFAR_SIDE 32
#define CHUNK_RECORDS 1024     /* CIFAR records read per fread */
#define NAMES_MAX_BYTES (1u << 20)
#define NAME_MAX_LEN 255
#define IDX_MAX_SIDE 16384     /* larger IDX images are refused as absurd */
#define IDX_CHUNK (1u << 20)   /* IDX data is read (and its buffer grown) this much at a time */

/* ---- small helpers ------------------------------------------------------------ */


static bool is_file(const char *dir, const char *name) {
    char *p = cl_path_join(dir, name);
    struct stat st;
    bool ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* names[k] = "0", "1", ... (k < count). */
static char **number_names(int count) {
    char **names = calloc((size_t)count, sizeof *names);
    if (!names) return NULL;
    for (int i = 0; i < count; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        if (!(names[i] = dup_str(buf))) {
            free_names(names, i);
            return NULL;
        }
    }
    return names;
}

static char **copy_names(const char *const *src, int count) {
    char **names = calloc((size_t)count, sizeof *names);
    if (!names) return NULL;
    for (int i = 0; i < count; i++) {
        if (!(names[i] = dup_str(src[i]))) {
            free_names(names, i);
            return NULL;
        }
    }
    return names;
}

void cl_dataset_free(cl_dataset *ds) {
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    free_names(ds->class_names, ds->class_names ? ds->classes : 0);
    *ds = (cl_dataset){0};
}

/* ---- class-name files ----------------------------------------------------------- */

/* Read one class name per line from dir/name (batches.meta.txt, fine_label_names.txt,
 * ...). Trailing spaces, tabs and '\r' are dropped and blank lines skipped (the
 * official files end with blank lines). A missing file sets *found = false and is not
 * an error; a present file must hold exactly `expect` names of printable bytes. */
static cl_status read_names(const char *dir, const char *name, int expect, char ***out,
                            bool *found, char *err, size_t errlen) {
    *out = NULL;
    *found = false;
    char *path = cl_path_join(dir, name);
    if (!path) return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    char *text;
    size_t len;
    cl_status st = cl_read_file(path, "the class-name list", NAMES_MAX_BYTES, &text, &len, err,
                                errlen);
    if (st != CL_OK) {
        if (errno == ENOENT) st = CL_OK; /* no list: not an error */
        free(path);
        return st;
    }
    *found = true;
    char **names = calloc((size_t)expect, sizeof *names);
    if (!names) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        goto done;
    }
    int count = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n') pos++;
        size_t end = pos;
        pos++; /* past the '\n' (or the end) */
        line++;
        while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' ||
                               text[end - 1] == '\r'))
            end--;
        if (end == start) continue;
        for (size_t i = start; i < end; i++) {
            unsigned char ch = (unsigned char)text[i];
            if (ch < 0x20 || ch == 0x7f) {
                st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                          "%s: line %d (byte %zu): control byte 0x%02x in a class name", path,
                          line, i, ch);
                goto done;
            }
        }
        if (end - start > NAME_MAX_LEN) {
            st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                      "%s: line %d: class name longer than %d bytes", path, line, NAME_MAX_LEN);
            goto done;
        }
        if (count == expect) {
            st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                      "%s: line %d: more than the expected %d class names (one per line)", path,
                      line, expect);
            goto done;
        }
        if (!(names[count] = malloc(end - start + 1))) {
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(names[count], text + start, end - start);
        names[count][end - start] = '\0';
        count++;
    }
    if (count != expect) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s: %d class names, expected %d (one per line)", path, count, expect);
        goto done;
    }
done:
    free(text);
    free(path);
    if (st == CL_OK)
        *out = names;
    else
        free_names(names, expect);
    return st;
}

/* ---- CIFAR ------------------------------------------------------------------------- */

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",
                                              "deer",     "dog",        "frog",  "horse",
                                              "ship",     "truck"};

/* What distinguishes CIFAR-10 from CIFAR-100 for the shared reader. */
typedef struct {
    const char *what;        /* "CIFAR-10" */
    int label_bytes;         /* label bytes before the pixels: 1 or 2 */
    int limit[2];            /* classes of each label byte */
    const char *label_name[2]; /* "label", or "coarse label" and "fine label" */
    int use;                 /* which label byte becomes the dataset's label */
    int other_record;        /* the other CIFAR's record size, for a hint */
    const char *other_what;
} cifar_spec;

/* The "what to put there" part of a missing-file message. */
static void cifar_missing(const cifar_spec *s, const char *dir, const char *file, char *err,
                          size_t errlen) {
    bool ten = s->label_bytes == 1;
    const char *files = ten ? "data_batch_1.bin ... data_batch_5.bin, test_batch.bin"
                            : "train.bin, test.bin";
    const char *tarball = ten ? "cifar-10-binary.tar.gz" : "cifar-100-binary.tar.gz";
    const char *sub = ten ? "cifar-10-batches-bin" : "cifar-100-binary";
    const char *fetch = ten ? "cifar10" : "cifar100";
    char hint[512] = "";
    /* The common mistakes: the parent folder of the unpacked archive, the Python
     * (pickle) version of CIFAR-10, or the other CIFAR. */
    char *nested = cl_path_join(dir, sub);
    if (nested && is_dir(nested))
        snprintf(hint, sizeof hint, " (%s/ holds the unpacked archive: pass that folder)", sub);
    else if (ten && is_file(dir, "data_batch_1"))
        snprintf(hint, sizeof hint,
                 " (%s holds data_batch_1 without .bin: that is the Python version; the "
                 "loader reads the binary version)", dir);
    else if (ten && is_file(dir, "train.bin"))
        snprintf(hint, sizeof hint, " (%s holds train.bin: is it CIFAR-100?)", dir);
    else if (!ten && is_file(dir, "data_batch_1.bin"))
        snprintf(hint, sizeof hint, " (%s holds data_batch_1.bin: is it CIFAR-10?)", dir);
    free(nested);
    cl_errorf(err, errlen, CL_ERR_IO,
         "%s is missing from %s%s: expected the %s binary files (%s) there; download %s "
         "from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it, or run `cnnlab "
         "fetch %s`",
         file, dir, hint, s->what, files, tarball, fetch);
}

/* Read the given CIFAR files, in order, into out (images and labels only). */
static cl_status cifar_read(const cifar_spec *s, const char *dir, const char *const *files,
                            int nfiles, cl_dataset *out, char *err, size_t errlen) {
    const size_t rec = (size_t)s->label_bytes + CIFAR_PIXELS;
    if (!is_dir(dir)) {
        const char *files_txt = s->label_bytes == 1
                                    ? "data_batch_1.bin ... data_batch_5.bin, test_batch.bin"
                                    : "train.bin, test.bin";
        return cl_errorf(err, errlen, CL_ERR_IO,
                    "%s: no such folder: expected a folder holding the %s binary files (%s)",
                    dir, s->what, files_txt);
    }
    /* First every file's size, so that the images are allocated once. */
    int64_t counts[8], total = 0;
    for (int i = 0; i < nfiles; i++) {
        char *path = cl_path_join(dir, files[i]);
        if (!path) return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        struct stat st;
        if (stat(path, &st) != 0) {
            int e = errno;
            free(path);
            if (e == ENOENT) {
                cifar_missing(s, dir, files[i], err, errlen);
                return CL_ERR_IO;
            }
            return cl_errorf(err, errlen, CL_ERR_IO, "%s/%s: %s", dir, files[i], strerror(e));
        }
        cl_status bad = CL_OK;
        int64_t size = (int64_t)st.st_size;
        if (!S_ISREG(st.st_mode)) {
            bad = cl_errorf(err, errlen, CL_ERR_IO, "%s: not a regular file", path);
        } else if (size == 0) {
            bad = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: empty file: expected %zu-byte %s records",
                       path, rec, s->what);
        } else if (size % (int64_t)rec != 0) {
            int64_t full = size / (int64_t)rec;
            char hint[160] = "";
            if (size % s->other_record == 0)
                snprintf(hint, sizeof hint,
                         "; its size is a whole number of %d-byte records: is it a %s file?",
                         s->other_record, s->other_what);
            int64_t extra = size - full * (int64_t)rec;
            /* Less than half a record past the last whole one reads as bytes appended
               to a batch; more, as a batch cut short. */
            if (extra < (int64_t)rec / 2)
                bad = cl_errorf(err, errlen, CL_ERR_FORMAT,
                           "%s: wrong size: unexpected trailing data: %lld byte%s after the %lld "
                           "whole records, which end at byte %lld; a batch is a whole number of "
                           "%zu-byte %s records (%d label byte%s + %d pixel bytes)%s",
                           path, (long long)extra, extra > 1 ? "s" : "", (long long)full,
                           (long long)(full * (int64_t)rec), rec, s->what, s->label_bytes,
                           s->label_bytes > 1 ? "s" : "", CIFAR_PIXELS, hint);
            else
                bad = cl_errorf(err, errlen, CL_ERR_FORMAT,
                           "%s: truncated at byte %lld (record %lld of %lld): expected %lld bytes, "
                           "a whole number of %zu-byte %s records (%d label byte%s + %d pixel "
                           "bytes)%s",
                           path, (long long)size, (long long)full, (long long)full + 1,
                           (long long)((full + 1) * (int64_t)rec), rec, s->what, s->label_bytes,
                           s->label_bytes > 1 ? "s" : "", CIFAR_PIXELS, hint);
        }
        counts[i] = size / (int64_t)rec;
        total += counts[i];
        if (bad == CL_OK && total > INT_MAX)
            bad = cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: more than %d records in all", path,
                       INT_MAX);
        free(path);
        if (bad != CL_OK) return bad;
    }
    int64_t most = 0; /* records of the largest file, to size the read buffer */
    for (int i = 0; i < nfiles; i++) most = counts[i] > most ? counts[i] : most;
    out->images = malloc((size_t)total * CIFAR_PIXELS);
    out->labels = malloc((size_t)total * sizeof *out->labels);
    uint8_t *chunk = malloc((most < CHUNK_RECORDS ? (size_t)most : CHUNK_RECORDS) * rec);
    cl_status st = CL_OK;
    if (!out->images || !out->labels || !chunk) {
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory for %lld %s images",
                  (long long)total, s->what);
        goto done;
    }
    int64_t at = 0; /* the next image of out */
    for (int i = 0; i < nfiles && st == CL_OK; i++) {
        char *path = cl_path_join(dir, files[i]);
        FILE *f = path ? fopen(path, "rb") : NULL;
        if (!f) {
            st = path ? cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno))
                      : cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
            free(path);
            break;
        }
        for (int64_t r0 = 0; r0 < counts[i] && st == CL_OK; r0 += CHUNK_RECORDS) {
            size_t want = (size_t)(counts[i] - r0 < CHUNK_RECORDS ? counts[i] - r0 : CHUNK_RECORDS);
            size_t got = fread(chunk, 1, want * rec, f);
            if (got != want * rec) {
                /* The file shrank since stat, or a read error. */
                int64_t pos = r0 * (int64_t)rec + (int64_t)got;
                st = ferror(f) ? cl_errorf(err, errlen, CL_ERR_IO, "%s: read error at byte %lld", path,
                                      (long long)pos)
                               : cl_errorf(err, errlen, CL_ERR_FORMAT,
                                      "%s: truncated at byte %lld (record %lld of %lld): "
                                      "expected %lld bytes",
                                      path, (long long)pos, (long long)(pos / (int64_t)rec),
                                      (long long)counts[i],
                                      (long long)(counts[i] * (int64_t)rec));
                break;
            }
            for (size_t r = 0; r < want; r++) {
                const uint8_t *p = chunk + r * rec;
                int64_t record = r0 + (int64_t)r;
                for (int k = 0; k < s->label_bytes; k++) {
                    if (p[k] >= s->limit[k]) {
                        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                                  "%s: record %lld (byte %lld): %s %d is out of range 0..%d",
                                  path, (long long)record,
                                  (long long)(record * (int64_t)rec + k), s->label_name[k], p[k],
                                  s->limit[k] - 1);
                        break;
                    }
                }
                if (st != CL_OK) break;
                out->labels[at] = p[s->use];
                /* Planar [3][32][32] -> channels-last [32][32][3]. */
                const uint8_t *src = p + s->label_bytes;
                uint8_t *dst = out->images + (size_t)at * CIFAR_PIXELS;
                for (int px = 0; px < CIFAR_SIDE * CIFAR_SIDE; px++) {
                    dst[3 * px + 0] = src[px];
                    dst[3 * px + 1] = src[px + 1024];
                    dst[3 * px + 2] = src[px + 2048];
                }
                at++;
            }
        }
        fclose(f);
        free(path);
    }
    out->n = (int)total;
    out->c = 3;
    out->h = out->w = CIFAR_SIDE;
done:
    free(chunk);
    return st;
}

cl_status cl_load_cifar10(const char *dir, cl_split split, cl_dataset *out, char *err,
                          size_t errlen) {
    if (!out) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_cifar10: out is NULL");
    *out = (cl_dataset){0};
    if (!dir) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_cifar10: dir is NULL");
    static const char *const train[] = {"data_batch_1.bin", "data_batch_2.bin",
                                        "data_batch_3.bin", "data_batch_4.bin",
                                        "data_batch_5.bin"};
    static const char *const test[] = {"test_batch.bin"};
    const cifar_spec spec = {.what = "CIFAR-10",
                             .label_bytes = 1,
                             .limit = {10, 0},
                             .label_name = {"label", ""},
                             .use = 0,
                             .other_record = 2 + CIFAR_PIXELS,
                             .other_what = "CIFAR-100"};
    cl_status st = split == CL_SPLIT_TRAIN ? cifar_read(&spec, dir, train, 5, out, err, errlen)
                                           : cifar_read(&spec, dir, test, 1, out, err, errlen);
    bool found = false;
    if (st == CL_OK)
        st = read_names(dir, "batches.meta.txt", 10, &out->class_names, &found, err, errlen);
    /* Without batches.meta.txt: the official names, which never change. */
    if (st == CL_OK && !found && !(out->class_names = copy_names(cifar10_names, 10)))
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    if (st != CL_OK) {
        cl_dataset_free(out);
        return st;
    }
    out->classes = 10;
    return CL_OK;
}

cl_status cl_load_cifar100(const char *dir, cl_split split, bool fine, cl_dataset *out,
                           char *err, size_t errlen) {
    if (!out) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_cifar100: out is NULL");
    *out = (cl_dataset){0};
    if (!dir) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_cifar100: dir is NULL");
    const char *file = split == CL_SPLIT_TRAIN ? "train.bin" : "test.bin";
    const cifar_spec spec = {.what = "CIFAR-100",
                             .label_bytes = 2,
                             .limit = {20, 100},
                             .label_name = {"coarse label", "fine label"},
                             .use = fine ? 1 : 0,
                             .other_record = 1 + CIFAR_PIXELS,
                             .other_what = "CIFAR-10"};
    const int classes = fine ? 100 : 20;
    cl_status st = cifar_read(&spec, dir, &file, 1, out, err, errlen);
    bool found = false;
    if (st == CL_OK)
        st = read_names(dir, fine ? "fine_label_names.txt" : "coarse_label_names.txt", classes,
                        &out->class_names, &found, err, errlen);
    if (st == CL_OK && !found && !(out->class_names = number_names(classes)))
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    if (st != CL_OK) {
        cl_dataset_free(out);
        return st;
    }
    out->classes = classes;
    return CL_OK;
}

/* ---- IDX --------------------------------------------------------------------------- */

/* An IDX file read through zlib, which reads gzip and raw files alike. pos counts
 * the uncompressed bytes consumed; once the header is read, header/rec/count/what
 * describe the records that follow, so that a truncation names its record. */
typedef struct {
    gzFile gz;
    const char *path;
    int64_t pos;
    int64_t header; /* header bytes (8 or 16); 0 while reading the header */
    size_t rec;     /* bytes per record */
    int64_t count;  /* records */
    const char *what; /* "label", "image" */
} idx_file;

static cl_status idx_open(idx_file *r, const char *path, char *err, size_t errlen) {
    *r = (idx_file){.path = path};
    struct stat st;
    if (stat(path, &st) != 0)
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: not a regular file", path);
    errno = 0;
    r->gz = gzopen(path, "rb");
    if (!r->gz)
        return cl_errorf(err, errlen, errno ? CL_ERR_IO : CL_ERR_NOMEM, "%s: cannot open: %s", path,
                    errno ? strerror(errno) : "out of memory");
    if (st.st_size > (1 << 20)) gzbuffer(r->gz, 1u << 17); /* faster on big files */
    return CL_OK;
}

static void idx_close(idx_file *r) {
    if (r->gz) gzclose_r(r->gz);
    r->gz = NULL;
}

/* "byte" or, for a gzip file, "uncompressed byte": offsets count decompressed data. */
static const char *idx_unit(const idx_file *r) {
    return gzdirect(r->gz) ? "byte" : "uncompressed byte";
}

/* zlib's message without the "path: " it puts in front. */
static const char *zmessage(const idx_file *r, const char *msg) {
    size_t n = strlen(r->path);
    if (!strncmp(msg, r->path, n) && !strncmp(msg + n, ": ", 2)) return msg + n + 2;
    return msg;
}

/* The error for a short read (end of data or zlib error) at r->pos + done. */
static cl_status idx_short(idx_file *r, size_t done, int64_t hdr_len, char *err, size_t errlen) {
    int zerr = Z_OK;
    const char *zmsg = zmessage(r, gzerror(r->gz, &zerr));
    int64_t pos = r->pos + (int64_t)done;
    const char *unit = idx_unit(r);
    char where[128];
    int64_t expect;
    if (r->rec == 0) {
        snprintf(where, sizeof where, "in the %lld-byte header", (long long)hdr_len);
        expect = hdr_len;
    } else {
        snprintf(where, sizeof where, "%s %lld of %lld", r->what,
                 (long long)((pos - r->header) / (int64_t)r->rec), (long long)r->count);
        expect = r->header + r->count * (int64_t)r->rec;
    }
    if (zerr == Z_ERRNO)
        return cl_errorf(err, errlen, CL_ERR_IO, "%s: read error at %s %lld: %s", r->path, unit,
                    (long long)pos, strerror(errno));
    if (zerr == Z_MEM_ERROR) return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: corrupt gzip data at %s %lld (%s): %s",
                    r->path, unit, (long long)pos, where, zmsg);
    /* Z_BUF_ERROR is zlib's "unexpected end of file": a gzip stream cut short. */
    return cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: truncated at %s %lld (%s): expected %lld%s bytes%s",
                r->path, unit, (long long)pos, where, (long long)expect,
                gzdirect(r->gz) ? "" : " uncompressed",
                zerr == Z_BUF_ERROR ? " (the gzip stream is cut short)" : "");
}

/* Read exactly len bytes (hdr_len: the header's size while reading the header). */
static cl_status idx_read(idx_file *r, void *buf, size_t len, int64_t hdr_len, char *err,
                          size_t errlen) {
    size_t done = 0;
    while (done < len) {
        unsigned want = (unsigned)(len - done < IDX_CHUNK ? len - done : IDX_CHUNK);
        int got = gzread(r->gz, (uint8_t *)buf + done, want);
        if (got > 0) done += (size_t)got;
        if (got != (int)want) return idx_short(r, done, hdr_len, err, errlen);
    }
    r->pos += (int64_t)len;
    return CL_OK;
}

/* After the last record: the file must end here (more bytes mean the header's
 * counts are wrong); for gzip, reading to the end also checks the stream's CRC. */
static cl_status idx_expect_end(idx_file *r, char *err, size_t errlen) {
    uint8_t buf[4096];
    int64_t extra = 0;
    for (;;) {
        int got = gzread(r->gz, buf, sizeof buf);
        if (got > 0) extra += got;
        if (got == (int)sizeof buf) continue;
        int zerr = Z_OK;
        const char *zmsg = zmessage(r, gzerror(r->gz, &zerr));
        if (zerr == Z_ERRNO)
            return cl_errorf(err, errlen, CL_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
        if (zerr == Z_MEM_ERROR) return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        if (zerr == Z_BUF_ERROR && extra == 0)
            return cl_errorf(err, errlen, CL_ERR_FORMAT,
                        "%s: the gzip stream is cut short after %s %lld (its end and checksum "
                        "are missing)",
                        r->path, idx_unit(r), (long long)r->pos);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            return cl_errorf(err, errlen, CL_ERR_FORMAT, "%s: corrupt gzip data after %s %lld: %s",
                        r->path, idx_unit(r), (long long)(r->pos + extra), zmsg);
        break;
    }
    if (extra > 0)
        return cl_errorf(err, errlen, CL_ERR_FORMAT,
                    "%s: %lld extra bytes after the last of the %lld %ss (at %s %lld): the "
                    "header's counts do not match the data",
                    r->path, (long long)extra, (long long)r->count, r->what, idx_unit(r),
                    (long long)r->pos);
    return CL_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Check an IDX magic number: two zero bytes, type 0x08 (unsigned byte), ndim. */
static cl_status idx_magic(const char *path, const uint8_t *h, int ndim, const char *kind,
                           char *err, size_t errlen) {
    uint32_t magic = be32(h), want = 0x0800u | (uint32_t)ndim;
    if (magic == want) return CL_OK;
    const char *hint = "";
    if (h[0] == 0x1f && h[1] == 0x8b)
        hint = ": it starts like gzip but did not decompress (a gzip inside gzip?)";
    else if (magic == (0x0800u | 3) && ndim == 1)
        hint = ": that is an IDX images file (are the images and labels swapped?)";
    else if (magic == (0x0800u | 1) && ndim == 3)
        hint = ": that is an IDX labels file (are the images and labels swapped?)";
    else if (h[0] == 0 && h[1] == 0 && h[2] != 0x08)
        hint = ": only unsigned-byte data (type 0x08) is supported";
    return cl_errorf(err, errlen, CL_ERR_FORMAT,
                "%s: wrong magic number 0x%08x (%u) at byte 0: expected 0x%08x (%u), an IDX %s "
                "file of unsigned bytes%s",
                path, magic, magic, want, want, kind, hint);
}

/* Read the r->count records of r->rec bytes into a malloc'ed buffer. It grows as
 * the data arrives, so a header that claims absurd counts fails at the end of the
 * data instead of allocating what it claims. */
static cl_status idx_read_records(idx_file *r, uint8_t **out, char *err, size_t errlen) {
    *out = NULL;
    const size_t total = (size_t)r->count * r->rec;
    size_t cap = 0, have = 0;
    uint8_t *buf = NULL;
    while (have < total) {
        if (have == cap) {
            size_t ncap = cap ? cap * 2 : IDX_CHUNK;
            if (ncap > total) ncap = total;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory for %lld %ss of %s",
                            (long long)r->count, r->what, r->path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = cap - have < IDX_CHUNK ? cap - have : IDX_CHUNK;
        cl_status st = idx_read(r, buf + have, n, 0, err, errlen);
        if (st != CL_OK) {
            free(buf);
            return st;
        }
        have += n;
    }
    *out = buf;
    return CL_OK;
}

/* Reads the pair into out with classes = largest label + 1 and names "0".."k-1"
 * left unset (the callers set them). */
static cl_status idx_load(const char *images_path, const char *labels_path, cl_dataset *out,
                          char *err, size_t errlen) {
    idx_file li = {0}, ii = {0};
    uint8_t lh[8], ih[16];
    cl_status st = idx_open(&li, labels_path, err, errlen);
    if (st == CL_OK) st = idx_read(&li, lh, sizeof lh, sizeof lh, err, errlen);
    if (st == CL_OK) st = idx_magic(labels_path, lh, 1, "labels", err, errlen);
    if (st == CL_OK) st = idx_open(&ii, images_path, err, errlen);
    if (st == CL_OK) st = idx_read(&ii, ih, sizeof ih, sizeof ih, err, errlen);
    if (st == CL_OK) st = idx_magic(images_path, ih, 3, "images", err, errlen);
    if (st != CL_OK) goto done;
    uint32_t nl = be32(lh + 4), n = be32(ih + 4), h = be32(ih + 8), w = be32(ih + 12);
    if (n == 0 || n > INT_MAX) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s: the header (byte 4) says %u images: expected 1..%d", images_path, n,
                  INT_MAX);
        goto done;
    }
    if (h == 0 || w == 0 || h > IDX_MAX_SIDE || w > IDX_MAX_SIDE) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s: the header (bytes 8..15) says images of %ux%u (HxW): expected sides "
                  "of 1..%d",
                  images_path, h, w, IDX_MAX_SIDE);
        goto done;
    }
    if (nl != n) {
        st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                  "%s has %u labels (header, byte 4) but %s has %u images: the counts must "
                  "match",
                  labels_path, nl, images_path, n);
        goto done;
    }
    li.header = sizeof lh;
    li.rec = 1;
    li.count = n;
    li.what = "label";
    ii.header = sizeof ih;
    ii.rec = (size_t)h * w;
    ii.count = n;
    ii.what = "image";
    uint8_t *lab = NULL;
    st = idx_read_records(&li, &lab, err, errlen);
    if (st == CL_OK) st = idx_expect_end(&li, err, errlen);
    if (st != CL_OK) {
        free(lab);
        goto done;
    }
    out->labels = malloc((size_t)n * sizeof *out->labels);
    if (!out->labels) {
        free(lab);
        st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        goto done;
    }
    int maxl = 0;
    for (uint32_t i = 0; i < n; i++) {
        out->labels[i] = lab[i];
        if (lab[i] > maxl) maxl = lab[i];
    }
    free(lab);
    st = idx_read_records(&ii, &out->images, err, errlen);
    if (st == CL_OK) st = idx_expect_end(&ii, err, errlen);
    if (st != CL_OK) goto done;
    out->n = (int)n;
    out->h = (int)h;
    out->w = (int)w;
    out->c = 1;
    out->classes = maxl + 1;
done:
    idx_close(&li);
    idx_close(&ii);
    if (st != CL_OK) cl_dataset_free(out);
    return st;
}

cl_status cl_load_idx(const char *images_path, const char *labels_path, cl_dataset *out,
                      char *err, size_t errlen) {
    if (!out) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_idx: out is NULL");
    *out = (cl_dataset){0};
    if (!images_path || !labels_path)
        return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_idx: a path is NULL");
    cl_status st = idx_load(images_path, labels_path, out, err, errlen);
    if (st != CL_OK) return st;
    if (!(out->class_names = number_names(out->classes))) {
        cl_dataset_free(out);
        return cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    }
    return CL_OK;
}

/* dir/base.gz, else dir/base, else the variant with a dot (train-images.idx3-ubyte,
 * as some mirrors name it); NULL when none exists. */
static char *find_idx(const char *dir, const char *base) {
    char name[64], dotted[64];
    snprintf(dotted, sizeof dotted, "%s", base);
    char *dash = strstr(dotted, "-idx");
    if (dash) *dash = '.';
    const char *cands[4] = {name, base, dotted, NULL};
    snprintf(name, sizeof name, "%s.gz", base);
    char dotted_gz[80];
    snprintf(dotted_gz, sizeof dotted_gz, "%s.gz", dotted);
    cands[3] = dotted_gz;
    for (int i = 0; i < 4; i++)
        if (is_file(dir, cands[i])) return cl_path_join(dir, cands[i]);
    return NULL;
}

cl_status cl_load_mnist_dir(const char *dir, cl_split split, const char *const *class_names,
                            cl_dataset *out, char *err, size_t errlen) {
    if (!out) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_mnist_dir: out is NULL");
    *out = (cl_dataset){0};
    if (!dir) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_mnist_dir: dir is NULL");
    /* class_names holds 10 names, or fewer ended by NULL. */
    static const char *const digits[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    int classes = 0;
    if (!class_names) class_names = digits;
    while (classes < 10 && class_names[classes]) classes++;
    if (classes == 0) return cl_errorf(err, errlen, CL_ERR_ARG, "cl_load_mnist_dir: no class names");
    const char *prefix = split == CL_SPLIT_TRAIN ? "train" : "t10k";
    char ibase[48], lbase[48];
    snprintf(ibase, sizeof ibase, "%s-images-idx3-ubyte", prefix);
    snprintf(lbase, sizeof lbase, "%s-labels-idx1-ubyte", prefix);
    const char *missing = NULL;
    char *ipath = find_idx(dir, ibase), *lpath = find_idx(dir, lbase);
    if (!ipath) missing = ibase;
    else if (!lpath) missing = lbase;
    if (missing) {
        free(ipath);
        free(lpath);
        /* A parent folder of the files (the torchvision layout puts them in
         * MNIST/raw/ and FashionMNIST/raw/). */
        static const char *const subs[] = {"mnist", "fashion-mnist", "MNIST/raw",
                                           "FashionMNIST/raw"};
        char hint[128] = "";
        if (!is_dir(dir)) snprintf(hint, sizeof hint, " (no such folder)");
        for (int i = 0; i < 4 && !hint[0]; i++) {
            char *sub = cl_path_join(dir, subs[i]);
            char *found = sub ? find_idx(sub, ibase) : NULL;
            if (found)
                snprintf(hint, sizeof hint, " (%s/ holds them: pass that folder)", subs[i]);
            free(found);
            free(sub);
        }
        return cl_errorf(err, errlen, CL_ERR_IO,
                    "%s.gz (or %s) is missing from %s%s: expected the IDX files "
                    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz there (gzip or "
                    "raw); download them from http://yann.lecun.com/exdb/mnist/ (MNIST) or "
                    "https://github.com/zalandoresearch/fashion-mnist (Fashion-MNIST), or run "
                    "`cnnlab fetch mnist`",
                    missing, missing, dir, hint);
    }
    cl_status st = idx_load(ipath, lpath, out, err, errlen);
    if (st == CL_OK && out->classes > classes) {
        /* Name the first label out of range (classes = largest label + 1). */
        for (int i = 0; i < out->n; i++)
            if (out->labels[i] >= classes) {
                st = cl_errorf(err, errlen, CL_ERR_FORMAT,
                          "%s: record %d (byte %d): label %d is out of range 0..%d", lpath, i,
                          8 + i, out->labels[i], classes - 1);
                break;
            }
    }
    if (st == CL_OK) {
        out->classes = classes;
        if (!(out->class_names = copy_names(class_names, classes)))
            st = cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
    }
    free(ipath);
    free(lpath);
    if (st != CL_OK) cl_dataset_free(out);
    return st;
}

/* ---- statistics ---------------------------------------------------------------------- */

void cl_dataset_stats(const cl_dataset *ds, cl_channel_stats *stats, int64_t *class_counts) {
    if (!ds) return;
    if (class_counts && ds->classes > 0) {
        memset(class_counts, 0, (size_t)ds->classes * sizeof *class_counts);
        for (int i = 0; i < ds->n; i++)
            if (ds->labels[i] >= 0 && ds->labels[i] < ds->classes) class_counts[ds->labels[i]]++;
    }
    if (!stats) return;
    const size_t pixels = (size_t)ds->n * (size_t)ds->h * (size_t)ds->w;
    for (int c = 0; c < ds->c; c++) {
        /* A histogram of the 256 values is exact (integer counts); the mean and the
         * variance then come from it in two passes over 256 bins, in double. */
        uint64_t hist[256] = {0};
        const uint8_t *p = ds->images + c;
        for (size_t i = 0; i < pixels; i++) hist[p[i * (size_t)ds->c]]++;
        cl_channel_stats s = {0};
        if (pixels == 0) {
            stats[c] = s;
            continue;
        }
        int lo = 0, hi = 255;
        while (hist[lo] == 0) lo++;
        while (hist[hi] == 0) hi--;
        uint64_t sum = 0;
        for (int v = 0; v < 256; v++) sum += hist[v] * (uint64_t)v;
        double mean = (double)sum / (double)pixels; /* on 0..255 */
        double ss = 0;
        for (int v = 0; v < 256; v++) ss += (double)hist[v] * (v - mean) * (v - mean);
        double var = ss / (double)pixels;
        s.min = lo / 255.0;
        s.max = hi / 255.0;
        s.mean = mean / 255.0;
        s.var = var / (255.0 * 255.0);
        s.std = sqrt(s.var);
        stats[c] = s;
    }
}
