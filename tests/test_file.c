/* test_file.c: the whole-file reader (src/util/file.c): contents and length, the
 * NUL after them, the size cap at and one byte past the limit, a file larger than
 * the first buffer, an empty file, and the messages for a missing file (errno
 * kept), a directory and a file over the cap, each naming the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util/util.h"

static char dir[64];

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) t_fail("cannot write %s", path);
}

static void want_message(cl_status st, cl_status want, const char *err, const char *a,
                         const char *b) {
    if (st != want) t_fail("status %d, expected %d: %s", st, want, err);
    if (!strstr(err, a)) t_fail("message lacks '%s': %s", a, err);
    if (b && !strstr(err, b)) t_fail("message lacks '%s': %s", b, err);
}

static void test_contents(void) {
    t_begin("read_file: contents, length, NUL, an empty file");
    char path[128], err[512], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/a.txt", dir);
    write_file(path, "ab\0cd\n", 6);
    if (cl_read_file(path, "the file", 100, &text, &len, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else {
        if (len != 6 || memcmp(text, "ab\0cd\n", 6) != 0 || text[6] != 0) t_fail("wrong bytes, len %zu", len);
        free(text);
    }
    snprintf(path, sizeof path, "%s/empty.txt", dir);
    write_file(path, "", 0);
    if (cl_read_file(path, "the file", 100, &text, NULL, err, sizeof err) != CL_OK) {
        t_fail("%s", err);
    } else {
        if (text[0] != 0) t_fail("an empty file is not \"\"");
        free(text);
    }
    t_end();
}

static void test_sizes(void) {
    t_begin("read_file: at the cap, one byte past it, larger than the first buffer");
    size_t big = 300000; /* beyond the 64 KiB first buffer of an unsized file */
    char *data = xmalloc(big), path[128], err[512], *text;
    for (size_t i = 0; i < big; i++) data[i] = (char)('a' + i % 26);
    snprintf(path, sizeof path, "%s/big.txt", dir);
    write_file(path, data, big);
    size_t len = 0;
    cl_status st = cl_read_file(path, "the file", big, &text, &len, err, sizeof err);
    if (st != CL_OK || len != big || memcmp(text, data, big) != 0) t_fail("at the cap: %s", err);
    if (st == CL_OK) free(text);
    st = cl_read_file(path, "the data", big - 1, &text, &len, err, sizeof err);
    want_message(st, CL_ERR_FORMAT, err, path, "the data is larger than 299999 bytes");
    if (st == CL_OK || text) t_fail("an oversized file gave text");
    st = cl_read_file(path, "the data", 1u << 10, &text, &len, err, sizeof err);
    want_message(st, CL_ERR_FORMAT, err, "larger than 1024 bytes", NULL);
    /* a pipe has no size: read by growing the buffer */
    FILE *p = popen("head -c 200000 /dev/zero", "r");
    if (p) {
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fileno(p));
        st = cl_read_file(fdpath, "the pipe", 1u << 20, &text, &len, err, sizeof err);
        if (st != CL_OK || len != 200000) t_fail("pipe: %s (len %zu)", err, len);
        if (st == CL_OK) free(text);
        pclose(p);
    }
    free(data);
    t_end();
}

static void test_errors(void) {
    t_begin("read_file: a missing file (ENOENT), a directory, each named");
    char path[128], err[512], *text = (char *)1;
    snprintf(path, sizeof path, "%s/nope.txt", dir);
    errno = 0;
    cl_status st = cl_read_file(path, "the model file", 100, &text, NULL, err, sizeof err);
    want_message(st, CL_ERR_IO, err, path, "cannot open the model file: No such file");
    if (errno != ENOENT) t_fail("errno %d, expected ENOENT", errno);
    if (text) t_fail("no text expected");
    st = cl_read_file(dir, "the model file", 100, &text, NULL, err, sizeof err);
    want_message(st, CL_ERR_IO, err, dir, "cannot read the model file: it is a directory");
    t_end();
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/cnnlab-file.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (strlen(dir) >= sizeof dir - 1 || !mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/cnnlab-file.XXXXXX");
        if (!mkdtemp(dir)) return 1;
    }
    test_contents();
    test_sizes();
    test_errors();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
