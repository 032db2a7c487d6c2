/* fetch.c: `cnnlab fetch cifar10|cifar100|mnist|fashion-mnist [--data-dir DIR]`:
 * downloads the official dataset files with libcurl, checks each one's MD5 (nettle;
 * the SHA-256 is printed too) before renaming it from a temporary name into place,
 * and unpacks the CIFAR .tar.gz archives with libarchive (refusing entries with ".."
 * or absolute paths) into the folders cli/data.c searches: DIR/cifar-10-batches-bin/,
 * DIR/cifar-100-binary/, DIR/mnist/ and DIR/fashion-mnist/ (the IDX files stay
 * gzipped). Files already present with the right MD5 are not downloaded again, so an
 * archive copied into DIR by hand is verified and unpacked offline. When a file
 * cannot be had, the message says which file to put where, with its URL and MD5.
 * CNNLAB_FETCH_BASE_URL and CNNLAB_FETCH_CHECKSUMS replace the servers and the
 * checksums, for tests. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>

#include "cli.h"
#include "util/util.h"

#define FETCH_PATH 4096
#define FETCH_MAX_FILES 4

typedef struct {
    const char *name; /* file name on the server and on disk */
    const char *md5;  /* built-in checksum */
} fetch_file;

typedef struct {
    const char *name;     /* as on the command line */
    const char *base_url; /* the server folder, ending in '/' */
    const char *subdir;   /* under DIR: the unpacked folder, or the folder of the IDX files */
    bool archive;         /* one .tar.gz in DIR, unpacked into DIR/subdir */
    fetch_file files[FETCH_MAX_FILES];
    const char *required[8]; /* archives: what DIR/subdir must hold once unpacked */
} fetch_dataset;

static const fetch_dataset datasets[] = {
    {"cifar10", "https://www.cs.toronto.edu/~kriz/", "cifar-10-batches-bin", true,
     {{"cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"}},
     {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
      "data_batch_5.bin", "test_batch.bin", "batches.meta.txt"}},
    {"cifar100", "https://www.cs.toronto.edu/~kriz/", "cifar-100-binary", true,
     {{"cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8"}},
     {"train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"}},
    {"mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", "mnist", false,
     {{"train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
      {"train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"},
      {"t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"},
      {"t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"}},
     {NULL}},
    {"fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
     "fashion-mnist", false,
     {{"train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
      {"train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"},
      {"t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"},
      {"t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"}},
     {NULL}},
};

#define NDATASETS (sizeof datasets / sizeof *datasets)

/* Everything one `cnnlab fetch` run needs, passed down instead of globals. */
typedef struct {
    char dir[FETCH_PATH];      /* the data root, without a trailing '/' */
    bool dir_given;            /* from --data-dir (repeated in the retry command) */
    const char *base_override; /* $CNNLAB_FETCH_BASE_URL or NULL */
    char *sums;                /* contents of $CNNLAB_FETCH_CHECKSUMS or NULL */
    const char *sums_path;
    CURL *curl;
    bool tty; /* stderr is a terminal: draw a progress line */
} fetch_ctx;

/* ---- small helpers ---- */

static bool path_join(char *buf, size_t len, const char *a, const char *b) {
    int n = snprintf(buf, len, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= len) {
        cli_error("path too long: %s/%s", a, b);
        return false;
    }
    return true;
}

static bool is_regular(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_directory(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p. Prints the error. */
static bool make_dirs(const char *path) {
    char p[FETCH_PATH];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        cli_error("path too long: %s", path);
        return false;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            cli_error("cannot create the folder %s: %s", p, strerror(errno));
            return false;
        }
        if (!is_directory(p)) {
            cli_error("%s is in the way: it should be a folder", p);
            return false;
        }
        if (!c) return true;
        *s = c;
    }
}

/* rm -rf of a folder this program made (no symlinks are followed). */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char child[FETCH_PATH];
                int n = snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                if (n > 0 && (size_t)n < sizeof child) remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void hex(char *out, const uint8_t *d, size_t n) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

typedef struct {
    struct md5_ctx md5;
    struct sha256_ctx sha256;
    uint64_t bytes;
} hasher;

static void hasher_init(hasher *h) {
    md5_init(&h->md5);
    sha256_init(&h->sha256);
    h->bytes = 0;
}

static void hasher_update(hasher *h, const void *data, size_t n) {
    md5_update(&h->md5, n, data);
    sha256_update(&h->sha256, n, data);
    h->bytes += n;
}

/* The hex digests into md5[33] and sha256[65]. */
static void hasher_final(hasher *h, char *md5, char *sha256) {
    uint8_t d[SHA256_DIGEST_SIZE];
    md5_digest(&h->md5, MD5_DIGEST_SIZE, d);
    hex(md5, d, MD5_DIGEST_SIZE);
    sha256_digest(&h->sha256, SHA256_DIGEST_SIZE, d);
    hex(sha256, d, SHA256_DIGEST_SIZE);
}

/* Hash a file on disk; false (errno set) when it cannot be read. */
static bool hash_file(const char *path, char *md5, char *sha256, uint64_t *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    hasher h;
    hasher_init(&h);
    static const size_t chunk = 1 << 16;
    unsigned char *buf = malloc(chunk);
    if (!buf) {
        fclose(f);
        errno = ENOMEM;
        return false;
    }
    size_t n;
    while ((n = fread(buf, 1, chunk, f)) > 0) hasher_update(&h, buf, n);
    bool ok = !ferror(f);
    int saved = errno;
    free(buf);
    fclose(f);
    if (!ok) {
        errno = saved ? saved : EIO;
        return false;
    }
    hasher_final(&h, md5, sha256);
    *bytes = h.bytes;
    return true;
}

/* ---- checksums ---- */

/* Read $CNNLAB_FETCH_CHECKSUMS and check its syntax: lines "MD5  filename" (as md5sum
 * writes them; "*filename" allowed), blank lines and # comments. */
static bool load_sums(fetch_ctx *c, const char *path) {
    char *text, err[4400];
    if (cl_read_file(path, "it", 1u << 24, &text, NULL, err, sizeof err) != CL_OK) {
        cli_error("CNNLAB_FETCH_CHECKSUMS=%s", err);
        return false;
    }
    int line = 1;
    for (const char *s = text; *s; line++) {
        const char *end = strchr(s, '\n');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
        if (i < n && s[i] != '#') {
            size_t h = 0;
            while (i + h < n && strchr("0123456789abcdefABCDEF", s[i + h])) h++;
            size_t j = i + h;
            while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
            if (h != 32 || j == i + h || j >= n) {
                cli_error("%s:%d: expected \"MD5  filename\" (32 hex digits, spaces, a file name)",
                          path, line);
                free(text);
                return false;
            }
        }
        s += n + (end != NULL);
    }
    c->sums = text;
    c->sums_path = path;
    return true;
}

/* The expected MD5 (lower case) of file into md5[33]. */
static bool expected_md5(const fetch_ctx *c, const fetch_file *file, char *md5) {
    if (!c->sums) {
        snprintf(md5, 33, "%s", file->md5);
        return true;
    }
    size_t want = strlen(file->name);
    for (const char *s = c->sums; *s;) {
        const char *end = strchr(s, '\n');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i + 32 < n && s[i] != '#') {
            size_t j = i + 32;
            while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
            if (j < n && s[j] == '*') j++;
            if (n - j == want && !memcmp(s + j, file->name, want)) {
                for (int k = 0; k < 32; k++) {
                    char ch = s[i + k];
                    md5[k] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
                }
                md5[32] = 0;
                return true;
            }
        }
        s += (end ? (size_t)(end - s) + 1 : strlen(s));
    }
    cli_error("CNNLAB_FETCH_CHECKSUMS=%s has no line for %s: add \"MD5  %s\" to it (md5sum "
              "writes that format), or unset CNNLAB_FETCH_CHECKSUMS to use the built-in checksums",
              c->sums_path, file->name, file->name);
    return false;
}

static void file_url(const fetch_ctx *c, const fetch_dataset *ds, const fetch_file *file, char *url,
                     size_t len) {
    const char *base = c->base_override ? c->base_override : ds->base_url;
    size_t b = strlen(base);
    snprintf(url, len, "%s%s%s", base, b && base[b - 1] == '/' ? "" : "/", file->name);
}

/* ---- downloading ---- */

typedef struct {
    FILE *f;
    CURL *curl;
    hasher h;
    long status;     /* a response other than 200, seen before any data was kept */
    int write_errno; /* writing the temporary file failed */
    bool tty;
    double last_draw;
    const char *label;
} download;

static size_t on_data(char *data, size_t size, size_t nmemb, void *user) {
    download *d = user;
    size_t n = size * nmemb;
    if (d->h.bytes == 0 && d->status == 0) {
        long code = 0;
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code != 200) {
            d->status = code;
            return 0;
        }
    }
    if (n && fwrite(data, 1, n, d->f) != n) {
        d->write_errno = errno ? errno : EIO;
        return 0;
    }
    hasher_update(&d->h, data, n);
    return n;
}

static int on_progress(void *user, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
    (void)ut;
    (void)un;
    download *d = user;
    double t = now_seconds();
    if (!d->tty || t - d->last_draw < 0.2) return 0;
    d->last_draw = t;
    if (total > 0)
        fprintf(stderr, "\r  %s: %.1f of %.1f MB (%d%%)\033[K", d->label, now / 1e6, total / 1e6,
                (int)(now * 100 / total));
    else
        fprintf(stderr, "\r  %s: %.1f MB\033[K", d->label, now / 1e6);
    return 0;
}

/* Why a file could not be had; "unreachable" stops further downloads from the server. */
typedef struct {
    char reason[3 * FETCH_PATH];
    bool unreachable;
    char present_md5[33]; /* the MD5 of a wrong file already at the destination, or "" */
} failure;

/* Download url into a temporary file beside dest, check its MD5 and rename it to dest.
 * Never leaves the temporary file behind. */
static bool download_file(const fetch_ctx *c, const char *url, const char *dest, const char *label,
                          const char *md5_want, failure *fail) {
    char tmp[FETCH_PATH];
    if (snprintf(tmp, sizeof tmp, "%s.part-XXXXXX", dest) >= (int)sizeof tmp) {
        snprintf(fail->reason, sizeof fail->reason, "the path %s is too long", dest);
        return false;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(fail->reason, sizeof fail->reason, "cannot create a temporary file beside %s: %s",
                 dest, strerror(errno));
        return false;
    }
    fchmod(fd, 0644);
    download d = {.f = fdopen(fd, "wb"), .curl = c->curl, .tty = c->tty, .label = label};
    if (!d.f) {
        snprintf(fail->reason, sizeof fail->reason, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return false;
    }
    hasher_init(&d.h);
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails after 60 s */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cnnlab/" CNNLAB_VERSION);
    CURLcode rc = curl_easy_perform(h);
    if (c->tty) fprintf(stderr, "\r\033[K");
    long code = d.status;
    if (!code) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t length = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    bool closed = fclose(d.f) == 0;
    int close_errno = errno;
    bool ok = false;
    if (d.status || (rc == CURLE_OK && code != 200)) {
        snprintf(fail->reason, sizeof fail->reason, "the server answered HTTP %ld%s", code,
                 code == 404 ? " (Not Found)" : "");
    } else if (d.write_errno) {
        snprintf(fail->reason, sizeof fail->reason, "cannot write %s: %s", tmp,
                 strerror(d.write_errno));
    } else if (rc == CURLE_PARTIAL_FILE) {
        snprintf(fail->reason, sizeof fail->reason, "short download: %s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (rc != CURLE_OK) {
        snprintf(fail->reason, sizeof fail->reason, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
        fail->unreachable = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
                            rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT;
    } else if (!closed) {
        snprintf(fail->reason, sizeof fail->reason, "cannot write %s: %s", tmp,
                 strerror(close_errno));
    } else if (length >= 0 && (uint64_t)length != d.h.bytes) {
        snprintf(fail->reason, sizeof fail->reason, "short download: %llu of %lld bytes",
                 (unsigned long long)d.h.bytes, (long long)length);
    } else {
        char md5[33], sha[65];
        hasher_final(&d.h, md5, sha);
        if (strcmp(md5, md5_want)) {
            snprintf(fail->reason, sizeof fail->reason,
                     "checksum mismatch: the %llu bytes received have MD5 %s, expected %s "
                     "(a damaged or different file; it was not kept)",
                     (unsigned long long)d.h.bytes, md5, md5_want);
        } else if (rename(tmp, dest) != 0) {
            snprintf(fail->reason, sizeof fail->reason, "cannot rename %s to %s: %s", tmp, dest,
                     strerror(errno));
        } else {
            printf("  %s: %llu bytes, MD5 %s ok, SHA-256 %s\n", dest, (unsigned long long)d.h.bytes,
                   md5, sha);
            ok = true;
        }
    }
    if (!ok) unlink(tmp);
    return ok;
}

/* Make sure dest holds the file with the right MD5: keep it if it is already there,
 * else download it (unless the server was found unreachable). */
static bool obtain(const fetch_ctx *c, const fetch_dataset *ds, const fetch_file *file,
                   const char *dest, const char *md5_want, bool *unreachable, failure *fail) {
    char md5[33] = "", sha[65];
    uint64_t bytes;
    if (is_regular(dest)) {
        if (!hash_file(dest, md5, sha, &bytes))
            printf("  %s: present but unreadable (%s): fetching a fresh copy\n", dest,
                   strerror(errno));
        else if (!strcmp(md5, md5_want)) {
            printf("  %s: present, %llu bytes, MD5 %s ok, SHA-256 %s\n", dest,
                   (unsigned long long)bytes, md5, sha);
            return true;
        } else {
            printf("  %s: present but its MD5 is %s, expected %s: fetching a fresh copy\n", dest,
                   md5, md5_want);
            snprintf(fail->present_md5, sizeof fail->present_md5, "%s", md5);
        }
    }
    char url[FETCH_PATH];
    file_url(c, ds, file, url, sizeof url);
    if (*unreachable) {
        snprintf(fail->reason, sizeof fail->reason, "not tried, the server could not be reached");
        return false;
    }
    printf("  downloading %s\n", url);
    fflush(stdout);
    if (download_file(c, url, dest, file->name, md5_want, fail)) return true;
    cli_error("cannot download %s: %s.", url, fail->reason);
    if (fail->unreachable) *unreachable = true;
    return false;
}

/* ---- unpacking ---- */

/* Why an archive entry's path is refused, or NULL when it is a plain relative path. */
static const char *unsafe_path(const char *p) {
    if (!p || !*p) return "it has no name";
    if (p[0] == '/') return "it is an absolute path";
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return "it contains '..'";
        s += n + (e != NULL);
    }
    return NULL;
}

static bool copy_entry_data(struct archive *in, struct archive *out, char *err, size_t errlen) {
    const void *buf;
    size_t size;
    la_int64_t offset;
    for (;;) {
        int r = archive_read_data_block(in, &buf, &size, &offset);
        if (r == ARCHIVE_EOF) return true;
        if (r < ARCHIVE_WARN) {
            snprintf(err, errlen, "%s", archive_error_string(in));
            return false;
        }
        if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) {
            snprintf(err, errlen, "%s", archive_error_string(out));
            return false;
        }
    }
}

/* Extract every entry of archive into the folder stage. Prints the error. */
static bool extract_into(const char *archive, const char *stage, int *nfiles) {
    struct archive *in = archive_read_new(), *out = archive_write_disk_new();
    if (!in || !out) {
        cli_error("out of memory");
        archive_read_free(in);
        archive_write_free(out);
        return false;
    }
    archive_read_support_filter_gzip(in);
    archive_read_support_format_tar(in);
    /* Entry names are checked below and prefixed with stage (an absolute path without
     * "..", see unpack()); libarchive's own guards stay on as a second line. */
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_TIME);
    bool ok = true;
    *nfiles = 0;
    if (archive_read_open_filename(in, archive, 1 << 16) != ARCHIVE_OK) {
        cli_error("cannot open the archive %s: %s", archive, archive_error_string(in));
        ok = false;
    }
    struct archive_entry *e;
    while (ok) {
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            cli_error("%s: damaged archive: %s", archive, archive_error_string(in));
            ok = false;
            break;
        }
        char name[FETCH_PATH];
        const char *entry_name = archive_entry_pathname(e);
        const char *why = unsafe_path(entry_name);
        snprintf(name, sizeof name, "%s", entry_name ? entry_name : "");
        mode_t type = archive_entry_filetype(e);
        if (!why && archive_entry_hardlink(e)) why = "it is a hard link";
        if (!why && type != AE_IFREG && type != AE_IFDIR)
            why = "it is not a plain file or folder (a link or a device)";
        if (why) {
            cli_error("%s: refusing the archive entry '%s': %s. Nothing was unpacked; the archive "
                      "is not a genuine dataset archive, so delete it and fetch it again",
                      archive, name, why);
            ok = false;
            break;
        }
        char dest[FETCH_PATH];
        if (!path_join(dest, sizeof dest, stage, name)) {
            ok = false;
            break;
        }
        archive_entry_set_pathname(e, dest);
        char err[1024] = "";
        if (archive_write_header(out, e) < ARCHIVE_WARN ||
            (archive_entry_size(e) > 0 && !copy_entry_data(in, out, err, sizeof err)) ||
            archive_write_finish_entry(out) < ARCHIVE_WARN) {
            cli_error("%s: cannot unpack '%s': %s", archive, name,
                      err[0] ? err : archive_error_string(out));
            ok = false;
            break;
        }
        if (type == AE_IFREG) (*nfiles)++;
    }
    archive_read_free(in);
    archive_write_free(out);
    return ok;
}

/* Unpack DIR/<archive> into DIR/<subdir>/ through a staging folder in DIR, so that a
 * refused or damaged archive leaves nothing behind. */
static bool unpack(const fetch_ctx *c, const fetch_dataset *ds, const char *archive) {
    char stage[FETCH_PATH], real[PATH_MAX], staged[FETCH_PATH], target[FETCH_PATH];
    if (!path_join(stage, sizeof stage, c->dir, ".cnnlab-unpack-XXXXXX") ||
        !path_join(target, sizeof target, c->dir, ds->subdir))
        return false;
    if (!mkdtemp(stage)) {
        cli_error("cannot create a folder in %s to unpack into: %s", c->dir, strerror(errno));
        return false;
    }
    /* Entries go under the staging folder's real path: absolute, no "..", no links. */
    bool ok = realpath(stage, real) != NULL;
    if (!ok) cli_error("cannot resolve the path %s: %s", stage, strerror(errno));
    int nfiles = 0;
    ok = ok && extract_into(archive, real, &nfiles) &&
         path_join(staged, sizeof staged, stage, ds->subdir);
    for (int i = 0; ok && i < 8 && ds->required[i]; i++) {
        char p[FETCH_PATH];
        if (!path_join(p, sizeof p, staged, ds->required[i])) ok = false;
        else if (!is_regular(p)) {
            cli_error("%s does not hold %s/%s: it is not the %s archive. Delete it and run "
                      "`cnnlab fetch %s` again",
                      archive, ds->subdir, ds->required[i], ds->name, ds->name);
            ok = false;
        }
    }
    if (ok && !is_directory(target)) {
        if (rename(staged, target) != 0) {
            cli_error("cannot move %s to %s: %s", staged, target, strerror(errno));
            ok = false;
        }
    } else if (ok) { /* the folder exists but is incomplete: move the files into it */
        DIR *d = opendir(staged);
        struct dirent *e;
        while (ok && d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char from[FETCH_PATH], to[FETCH_PATH];
            ok = path_join(from, sizeof from, staged, e->d_name) &&
                 path_join(to, sizeof to, target, e->d_name);
            if (ok && rename(from, to) != 0) {
                cli_error("cannot move %s to %s: %s (move it out of the way and run `cnnlab fetch "
                          "%s` again)", from, to, strerror(errno), ds->name);
                ok = false;
            }
        }
        if (d) closedir(d);
    }
    remove_tree(stage);
    if (ok) printf("  unpacked %d files into %s/\n", nfiles, target);
    return ok;
}

/* ---- one dataset ---- */

static void retry_command(const fetch_ctx *c, const fetch_dataset *ds, char *buf, size_t len) {
    if (c->dir_given)
        snprintf(buf, len, "cnnlab fetch %s --data-dir %s", ds->name, c->dir);
    else
        snprintf(buf, len, "cnnlab fetch %s", ds->name);
}

static bool fetch_archive(const fetch_ctx *c, const fetch_dataset *ds) {
    char target[FETCH_PATH], archive[FETCH_PATH], md5[33], url[FETCH_PATH], retry[FETCH_PATH + 64];
    const fetch_file *file = &ds->files[0];
    if (!path_join(target, sizeof target, c->dir, ds->subdir) ||
        !path_join(archive, sizeof archive, c->dir, file->name))
        return false;
    bool complete = true;
    for (int i = 0; i < 8 && ds->required[i]; i++) {
        char p[FETCH_PATH];
        complete = complete && path_join(p, sizeof p, target, ds->required[i]) && is_regular(p);
    }
    if (complete) {
        printf("%s: already present in %s/ (%s ...); nothing to do\n", ds->name, target,
               ds->required[0]);
        return true;
    }
    if (!expected_md5(c, file, md5) || !make_dirs(c->dir)) return false;
    printf("%s: into %s/\n", ds->name, target);
    bool unreachable = false;
    failure fail = {.reason = ""};
    if (obtain(c, ds, file, archive, md5, &unreachable, &fail)) return unpack(c, ds, archive);
    file_url(c, ds, file, url, sizeof url);
    retry_command(c, ds, retry, sizeof retry);
    char note[128] = "";
    if (fail.present_md5[0])
        snprintf(note, sizeof note, "; the file there now has MD5 %s: replace it", fail.present_md5);
    fprintf(stderr,
            "Download %s on a machine with internet and put it at %s (MD5 %s%s), then run `%s` "
            "again, or unpack it so that %s/%s exists.\n",
            url, archive, md5, note, retry, target, ds->required[0]);
    return false;
}

static bool fetch_idx(const fetch_ctx *c, const fetch_dataset *ds) {
    char folder[FETCH_PATH], md5[FETCH_MAX_FILES][33];
    if (!path_join(folder, sizeof folder, c->dir, ds->subdir)) return false;
    for (int i = 0; i < FETCH_MAX_FILES; i++)
        if (!expected_md5(c, &ds->files[i], md5[i])) return false;
    if (!make_dirs(folder)) return false;
    printf("%s: into %s/\n", ds->name, folder);
    bool unreachable = false, missing[FETCH_MAX_FILES] = {false};
    char wrong[FETCH_MAX_FILES][33] = {""};
    int nmissing = 0;
    for (int i = 0; i < FETCH_MAX_FILES; i++) {
        char dest[FETCH_PATH], raw[FETCH_PATH];
        if (!path_join(dest, sizeof dest, folder, ds->files[i].name)) return false;
        snprintf(raw, sizeof raw, "%s", dest);
        raw[strlen(raw) - 3] = 0; /* without ".gz" */
        if (!is_regular(dest) && is_regular(raw)) {
            printf("  %s: present uncompressed (not checked: the MD5 is that of the .gz file)\n",
                   raw);
            continue;
        }
        failure fail = {.reason = ""};
        if (!obtain(c, ds, &ds->files[i], dest, md5[i], &unreachable, &fail)) {
            missing[i] = true;
            memcpy(wrong[i], fail.present_md5, sizeof wrong[i]);
            nmissing++;
        }
    }
    if (!nmissing) {
        printf("%s: ready in %s/\n", ds->name, folder);
        return true;
    }
    char retry[FETCH_PATH + 64];
    retry_command(c, ds, retry, sizeof retry);
    fprintf(stderr,
            "Download %s on a machine with internet and put %s in %s/ (keep the files gzipped), "
            "then run `%s` again:\n",
            nmissing == 1 ? "this file" : "these files", nmissing == 1 ? "it" : "them", folder,
            retry);
    for (int i = 0; i < FETCH_MAX_FILES; i++) {
        if (!missing[i]) continue;
        char url[FETCH_PATH];
        file_url(c, ds, &ds->files[i], url, sizeof url);
        fprintf(stderr, "    %s -> %s/%s (MD5 %s%s%s)\n", url, folder, ds->files[i].name, md5[i],
                wrong[i][0] ? "; the file there now has MD5 " : "", wrong[i]);
    }
    return false;
}

/* ---- the command ---- */

typedef struct {
    const char *data_dir;
} fetch_options;

static const cli_option fetch_options_table[] = {
    {"data-dir", OPT_TEXT, offsetof(fetch_options, data_dir), "the data folder", .arg = "DIR",
     .def = "$CNNLAB_DATA, else ./data"},
    {0},
};

static int cmd_fetch(int argc, char **argv);

const cli_command fetch_command = {
    .name = "fetch",
    .operands = "DATASET...",
    .summary = "download a dataset, check its MD5 and unpack it where train looks for it",
    .description =
        "Downloads a dataset's official files, checks each one's MD5 (and prints its\n"
        "SHA-256), and puts them where `cnnlab train --data NAME` looks for them:\n"
        "  cifar10        cifar-10-binary.tar.gz from www.cs.toronto.edu,\n"
        "                 unpacked into DIR/cifar-10-batches-bin/\n"
        "  cifar100       cifar-100-binary.tar.gz from www.cs.toronto.edu,\n"
        "                 unpacked into DIR/cifar-100-binary/\n"
        "  mnist          the four IDX .gz files from the PyTorch mirror\n"
        "                 (ossci-datasets.s3.amazonaws.com), kept gzipped in DIR/mnist/\n"
        "  fashion-mnist  the four IDX .gz files from Zalando's server, kept gzipped\n"
        "                 in DIR/fashion-mnist/\n"
        "\n"
        "DIR is --data-dir DIR, else $CNNLAB_DATA, else ./data. Files already there\n"
        "with the right MD5 are not downloaded again: to install on a machine without\n"
        "internet, copy the archive (or the .gz files) into DIR and run the same\n"
        "command; it checks and unpacks them. A download is kept only once its MD5\n"
        "matches. Exit status: 0 when the dataset is ready, 1 when a file could not\n"
        "be had (the message says which file to put where), 2 for bad usage.\n"
        "\n"
        "Testing aids (environment variables, not for normal use):\n"
        "  CNNLAB_FETCH_BASE_URL=URL    fetch every file from URL followed by its\n"
        "                               file name (e.g. http://127.0.0.1:8000/)\n"
        "                               instead of the official servers\n"
        "  CNNLAB_FETCH_CHECKSUMS=FILE  take the expected MD5s from FILE, lines\n"
        "                               \"MD5  filename\" as md5sum writes them,\n"
        "                               instead of the built-in list",
    .options = fetch_options_table,
    .run = cmd_fetch,
};

static const fetch_dataset *find_dataset(const char *name) {
    for (size_t i = 0; i < NDATASETS; i++)
        if (!strcmp(datasets[i].name, name)) return &datasets[i];
    return NULL;
}

static int cmd_fetch(int argc, char **argv) {
    const fetch_dataset *want[NDATASETS];
    size_t nwant = 0;
    fetch_options o = {0};
    const char **names = calloc((size_t)argc, sizeof *names);
    if (!names) {
        cli_error("out of memory");
        return 1;
    }
    int n = cli_parse(&fetch_command, &o, argc - 1, argv + 1, names, argc);
    for (int i = 0; i < n; i++) {
        const fetch_dataset *ds = find_dataset(names[i]);
        if (!ds) {
            cli_error("unknown dataset '%s': expected cifar10, cifar100, mnist or fashion-mnist",
                      names[i]);
            free(names);
            return EXIT_USAGE;
        }
        bool dup = false;
        for (size_t k = 0; k < nwant; k++) dup = dup || want[k] == ds;
        if (!dup) want[nwant++] = ds;
    }
    free(names);
    if (n < 0) return cli_parse_status(n);
    if (!nwant) {
        cli_print_usage(&fetch_command, stderr);
        return EXIT_USAGE;
    }
    const char *data_dir = o.data_dir;
    if (data_dir && !*data_dir) {
        cli_error("--data-dir needs a folder");
        return EXIT_USAGE;
    }

    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines and errors in their order */
    fetch_ctx c = {.tty = isatty(STDERR_FILENO)};
    const char *env = getenv("CNNLAB_DATA");
    const char *dir = data_dir ? data_dir : env && *env ? env : "data";
    c.dir_given = data_dir != NULL;
    if (snprintf(c.dir, sizeof c.dir, "%s", dir) >= (int)sizeof c.dir - 256) {
        cli_error("the data folder's path is too long: %s", dir);
        return 1;
    }
    for (size_t n = strlen(c.dir); n > 1 && c.dir[n - 1] == '/'; n--) c.dir[n - 1] = 0;

    const char *base = getenv("CNNLAB_FETCH_BASE_URL");
    if (base && *base) {
        c.base_override = base;
        printf("(testing aid) CNNLAB_FETCH_BASE_URL: fetching from %s\n", base);
    }
    const char *sums = getenv("CNNLAB_FETCH_CHECKSUMS");
    if (sums && *sums) {
        if (!load_sums(&c, sums)) return 1;
        printf("(testing aid) CNNLAB_FETCH_CHECKSUMS: checksums from %s\n", sums);
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c.curl = curl_easy_init())) {
        cli_error("cannot initialise libcurl");
        free(c.sums);
        return 1;
    }
    bool ok = true;
    for (size_t i = 0; i < nwant; i++) {
        bool one = want[i]->archive ? fetch_archive(&c, want[i]) : fetch_idx(&c, want[i]);
        fflush(stdout);
        ok = ok && one;
    }
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    free(c.sums);
    return ok ? 0 : 1;
}
