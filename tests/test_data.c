/* test_data.c: the dataset loaders (src/data/datasets.c, src/data/image_folder.c). The core checks
 * write small CIFAR-10/100, IDX (raw and gzip), PNG and JPEG files with known pixels
 * into a temporary folder and check the channels-last conversion, labels, class
 * names, statistics, resizing and every validation error (the message must name
 * the file and the byte offset or record). Then, when the shared data is present
 * (../shared/data, /usr/share/datasets/fashion-mnist), the full CIFAR-10 and MNIST
 * statistics and class counts against the published figures. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "cnnlab.h"
#include "harness.h"

#define SHARED "../shared/data"

/* snprintf into an array, aborting if it does not fit (paths in the temp folder). */
#define FMT(buf, ...)                                                              \
    do {                                                                           \
        if ((size_t)snprintf(buf, sizeof buf, __VA_ARGS__) >= sizeof buf) abort(); \
    } while (0)
#define FASHION "/usr/share/datasets/fashion-mnist"

/* ---- files --------------------------------------------------------------------- */

static void mkdir_p(const char *path) {
    char buf[1024];
    FMT(buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "test_data: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* Read a whole file (for cutting and corrupting copies). */
static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = xmalloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            FMT(sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ---- checks -------------------------------------------------------------------- */

/* The call failed with status want and its message holds each non-NULL piece. */
static void want_error(cl_status st, const char *err, cl_status want, const char *a,
                       const char *b, const char *c) {
    if (st == CL_OK) {
        t_fail("succeeded, expected an error containing '%s'", a ? a : "");
        return;
    }
    if (st != want) t_fail("status %d, expected %d: %s", st, want, err);
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (parts[i] && !strstr(err, parts[i]))
            t_fail("message lacks '%s': %s", parts[i], err);
}

static bool want_ok(cl_status st, const char *err) {
    if (st != CL_OK) t_fail("status %d: %s", st, err);
    return st == CL_OK;
}

static void want_shape(const cl_dataset *d, int n, int c, int h, int w, int classes) {
    if (d->n != n || d->c != c || d->h != h || d->w != w || d->classes != classes)
        t_fail("dataset is n=%d c=%d h=%d w=%d classes=%d, expected %d %d %d %d %d", d->n, d->c,
               d->h, d->w, d->classes, n, c, h, w, classes);
}

/* The dataset left empty after an error. */
static void want_empty(const cl_dataset *d) {
    if (d->n || d->images || d->labels || d->class_names)
        t_fail("the dataset is not left empty after an error");
}

/* ---- CIFAR ---------------------------------------------------------------------- */

/* The pixel value of channel ch at position p (y*32+x) of record r in file f. */
static uint8_t cifar_px(int f, int r, int ch, int p) {
    return (uint8_t)(f * 7 + r * 31 + ch * 85 + p * 3 + (p >> 5));
}

/* nrec records with labels[]: label_bytes label bytes then 3 planes. */
static void write_cifar(const char *path, int f, int nrec, int label_bytes, const int *labels) {
    size_t rec = (size_t)label_bytes + 3072;
    uint8_t *b = xmalloc(rec * (size_t)nrec);
    for (int r = 0; r < nrec; r++) {
        uint8_t *p = b + rec * (size_t)r;
        for (int k = 0; k < label_bytes; k++) p[k] = (uint8_t)labels[r * label_bytes + k];
        for (int ch = 0; ch < 3; ch++)
            for (int q = 0; q < 1024; q++) p[label_bytes + ch * 1024 + q] = cifar_px(f, r, ch, q);
    }
    write_file(path, b, rec * (size_t)nrec);
    free(b);
}

/* Image i of d is record r of file f (HWC). */
static bool check_cifar_image(const cl_dataset *d, int i, int f, int r) {
    const uint8_t *img = d->images + (size_t)i * 3072;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int ch = 0; ch < 3; ch++)
                if (img[(y * 32 + x) * 3 + ch] != cifar_px(f, r, ch, y * 32 + x)) {
                    t_fail("image %d [y=%d x=%d c=%d] = %d, expected %d", i, y, x, ch,
                           img[(y * 32 + x) * 3 + ch], cifar_px(f, r, ch, y * 32 + x));
                    return false;
                }
    return true;
}

static void make_cifar10(const char *dir) {
    mkdir_p(dir);
    char p[1024];
    for (int f = 1; f <= 5; f++) {
        int labels[2] = {(f + 0) % 10, (f + 1) % 10};
        FMT(p, "%s/data_batch_%d.bin", dir, f);
        write_cifar(p, f, 2, 1, labels);
    }
    int tl[3] = {9, 0, 5};
    FMT(p, "%s/test_batch.bin", dir);
    write_cifar(p, 0, 3, 1, tl);
}

static void test_cifar10(const char *tmp) {
    char dir[1024], p[1024], err[1024];
    cl_dataset d;
    FMT(dir, "%s/cifar10", tmp);
    make_cifar10(dir);
    FMT(p, "%s/batches.meta.txt", dir);
    write_text(p, "plane\r\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck  \n\n\n");

    t_begin("cifar10/train: planar to HWC, labels, names from batches.meta.txt");
    if (want_ok(cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err), err)) {
        want_shape(&d, 10, 3, 32, 32, 10);
        for (int f = 1; f <= 5 && d.n == 10; f++)
            for (int r = 0; r < 2; r++) {
                int i = (f - 1) * 2 + r;
                check_cifar_image(&d, i, f, r);
                if (d.labels[i] != (f + r) % 10)
                    t_fail("label %d = %d, expected %d", i, d.labels[i], (f + r) % 10);
            }
        if (strcmp(d.class_names[0], "plane") || strcmp(d.class_names[1], "car") ||
            strcmp(d.class_names[9], "truck"))
            t_fail("class names '%s' '%s' '%s'", d.class_names[0], d.class_names[1],
                   d.class_names[9]);
    }
    cl_dataset_free(&d);
    cl_dataset_free(&d); /* freeing twice is safe: the first zeroes it */
    t_end();

    t_begin("cifar10/test split; official names without batches.meta.txt");
    unlink(p);
    if (want_ok(cl_load_cifar10(dir, CL_SPLIT_TEST, &d, err, sizeof err), err)) {
        want_shape(&d, 3, 3, 32, 32, 10);
        for (int r = 0; r < 3 && d.n == 3; r++) check_cifar_image(&d, r, 0, r);
        if (d.n == 3 && (d.labels[0] != 9 || d.labels[1] != 0 || d.labels[2] != 5))
            t_fail("labels %d %d %d", d.labels[0], d.labels[1], d.labels[2]);
        if (strcmp(d.class_names[0], "airplane") || strcmp(d.class_names[9], "truck"))
            t_fail("default names '%s' .. '%s'", d.class_names[0], d.class_names[9]);
    }
    cl_dataset_free(&d);
    t_end();

    t_begin("cifar10/errors: missing file, folder, parent folder");
    FMT(p, "%s/data_batch_3.bin", dir);
    unlink(p);
    char want[1200];
    FMT(want, "data_batch_3.bin is missing from %s", dir);
    cl_status st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, want, "cifar-10-binary.tar.gz", "cnnlab fetch cifar10");
    want_empty(&d);
    st = cl_load_cifar10(tmp, CL_SPLIT_TEST, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, "test_batch.bin is missing", NULL, NULL);
    FMT(want, "%s/nowhere", tmp);
    st = cl_load_cifar10(want, CL_SPLIT_TEST, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, want, "no such folder", NULL);
    t_end();

    t_begin("cifar10/errors: truncated, wrong record size, trailing byte, empty, label out of range");
    /* 3 records cut 1000 bytes short: the last record is partial. */
    int l3[3] = {1, 2, 3};
    write_cifar(p, 3, 3, 1, l3);
    if (truncate(p, 3 * 3073 - 1000) != 0) abort();
    st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    FMT(want, "%s: truncated at byte 8219 (record 2 of 3): expected 9219 bytes",
             p);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    /* CIFAR-100 records (3074 bytes) in a CIFAR-10 batch. */
    int l100[6] = {1, 2, 3, 4, 5, 6};
    write_cifar(p, 3, 3, 2, l100);
    st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "3073-byte", "is it a CIFAR-100 file?");
    /* One byte appended to a whole batch: trailing data, not a truncation. */
    write_cifar(p, 3, 3, 1, l3);
    FILE *grow = fopen(p, "ab");
    if (!grow || fputc(7, grow) == EOF || fclose(grow) != 0) abort();
    st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    FMT(want, "%s: wrong size: unexpected trailing data: 1 byte after the 3 whole records, which "
              "end at byte 9219", p);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    if (strstr(err, "truncated")) t_fail("one extra byte is called truncated: %s", err);
    want_empty(&d);
    write_file(p, "", 0);
    st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "empty file", NULL);
    int bad[3] = {1, 12, 3};
    write_cifar(p, 3, 3, 1, bad);
    st = cl_load_cifar10(dir, CL_SPLIT_TRAIN, &d, err, sizeof err);
    FMT(want, "%s: record 1 (byte 3073): label 12 is out of range 0..9", p);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    t_end();

    t_begin("cifar10/errors: batches.meta.txt with 9 names, 11 names, control bytes");
    write_cifar(p, 3, 3, 1, l3);
    FMT(p, "%s/batches.meta.txt", dir);
    write_text(p, "a\nb\nc\nd\ne\nf\ng\nh\ni\n");
    st = cl_load_cifar10(dir, CL_SPLIT_TEST, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "9 class names, expected 10", NULL);
    write_text(p, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n");
    st = cl_load_cifar10(dir, CL_SPLIT_TEST, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "line 11", NULL);
    write_file(p, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\x01k\n", 22);
    st = cl_load_cifar10(dir, CL_SPLIT_TEST, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "line 10 (byte 19): control byte 0x01", NULL);
    want_empty(&d);
    unlink(p);
    t_end();
}

static void test_cifar100(const char *tmp) {
    char dir[1024], p[1024], err[1024], want[1200];
    cl_dataset d;
    FMT(dir, "%s/cifar100", tmp);
    mkdir_p(dir);
    int labels[8] = {19, 99, 0, 0, 7, 42, 3, 15}; /* coarse, fine per record */
    FMT(p, "%s/train.bin", dir);
    write_cifar(p, 1, 4, 2, labels);
    FMT(p, "%s/test.bin", dir);
    write_cifar(p, 2, 1, 2, labels);
    char names[2000] = "";
    for (int i = 0; i < 100; i++) {
        char line[32];
        FMT(line, "fine%02d\n", i);
        strcat(names, line);
    }
    FMT(p, "%s/fine_label_names.txt", dir);
    write_text(p, names);

    t_begin("cifar100/fine and coarse labels, names (numbers when the file is missing)");
    if (want_ok(cl_load_cifar100(dir, CL_SPLIT_TRAIN, true, &d, err, sizeof err), err)) {
        want_shape(&d, 4, 3, 32, 32, 100);
        for (int r = 0; r < 4 && d.n == 4; r++) {
            check_cifar_image(&d, r, 1, r);
            if (d.labels[r] != labels[2 * r + 1])
                t_fail("fine label %d = %d", r, d.labels[r]);
        }
        if (strcmp(d.class_names[42], "fine42")) t_fail("fine name 42 '%s'", d.class_names[42]);
    }
    cl_dataset_free(&d);
    if (want_ok(cl_load_cifar100(dir, CL_SPLIT_TRAIN, false, &d, err, sizeof err), err)) {
        want_shape(&d, 4, 3, 32, 32, 20);
        for (int r = 0; r < 4 && d.n == 4; r++)
            if (d.labels[r] != labels[2 * r]) t_fail("coarse label %d = %d", r, d.labels[r]);
        if (strcmp(d.class_names[19], "19")) t_fail("coarse name 19 '%s'", d.class_names[19]);
    }
    cl_dataset_free(&d);
    if (want_ok(cl_load_cifar100(dir, CL_SPLIT_TEST, true, &d, err, sizeof err), err)) {
        want_shape(&d, 1, 3, 32, 32, 100);
        if (d.n == 1) check_cifar_image(&d, 0, 2, 0);
    }
    cl_dataset_free(&d);
    t_end();

    t_begin("cifar100/errors: labels out of range, CIFAR-10 records, missing file");
    int badfine[4] = {1, 2, 3, 100};
    FMT(p, "%s/test.bin", dir);
    write_cifar(p, 2, 2, 2, badfine);
    cl_status st = cl_load_cifar100(dir, CL_SPLIT_TEST, true, &d, err, sizeof err);
    FMT(want, "%s: record 1 (byte 3075): fine label 100 is out of range 0..99",
             p);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    int badcoarse[4] = {20, 2, 3, 4};
    write_cifar(p, 2, 2, 2, badcoarse);
    st = cl_load_cifar100(dir, CL_SPLIT_TEST, false, &d, err, sizeof err);
    FMT(want, "%s: record 0 (byte 0): coarse label 20 is out of range 0..19",
             p);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    write_cifar(p, 2, 2, 1, badcoarse);
    st = cl_load_cifar100(dir, CL_SPLIT_TEST, false, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, "truncated at byte 6146 (record 1 of 2)",
               "is it a CIFAR-10 file?", NULL);
    unlink(p);
    st = cl_load_cifar100(dir, CL_SPLIT_TEST, false, &d, err, sizeof err);
    FMT(want, "test.bin is missing from %s", dir);
    want_error(st, err, CL_ERR_IO, want, "cifar-100-binary.tar.gz", NULL);
    FMT(p, "%s/coarse_label_names.txt", dir);
    write_text(p, "only\none\n");
    st = cl_load_cifar100(dir, CL_SPLIT_TRAIN, false, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "2 class names, expected 20", NULL);
    want_empty(&d);
    t_end();
}

/* ---- IDX -------------------------------------------------------------------------- */

#define IDX_N 5
#define IDX_H 3
#define IDX_W 4

static uint8_t idx_px(int i, int y, int x) { return (uint8_t)(i * 50 + y * 7 + x * 13); }

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The bytes of an IDX images file (n images of IDX_H x IDX_W) and labels file. */
static size_t idx_images(uint8_t *b, uint32_t magic, uint32_t n, uint32_t h, uint32_t w) {
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    size_t k = 16;
    for (int i = 0; i < IDX_N; i++)
        for (int y = 0; y < IDX_H; y++)
            for (int x = 0; x < IDX_W; x++) b[k++] = idx_px(i, y, x);
    return k;
}

static size_t idx_labels(uint8_t *b, uint32_t magic, uint32_t n, const uint8_t *labels) {
    put_be32(b, magic);
    put_be32(b + 4, n);
    memcpy(b + 8, labels, IDX_N);
    return 8 + IDX_N;
}

static void write_gz(const char *path, const uint8_t *data, size_t len) {
    gzFile g = gzopen(path, "wb9");
    if (!g || gzwrite(g, data, (unsigned)len) != (int)len || gzclose(g) != Z_OK) abort();
}

static void check_idx(const cl_dataset *d, const uint8_t *labels, int classes) {
    want_shape(d, IDX_N, 1, IDX_H, IDX_W, classes);
    if (d->n != IDX_N) return;
    for (int i = 0; i < IDX_N; i++) {
        if (d->labels[i] != labels[i]) t_fail("label %d = %d, expected %d", i, d->labels[i], labels[i]);
        for (int y = 0; y < IDX_H; y++)
            for (int x = 0; x < IDX_W; x++)
                if (d->images[(i * IDX_H + y) * IDX_W + x] != idx_px(i, y, x)) {
                    t_fail("image %d [%d,%d] = %d", i, y, x, d->images[(i * IDX_H + y) * IDX_W + x]);
                    return;
                }
    }
}

static void test_idx(const char *tmp) {
    char dir[1024], ip[1024], lp[1024], ipz[1024], lpz[1024], err[1024], want[1200];
    uint8_t ib[256], lb[64];
    const uint8_t labels[IDX_N] = {3, 0, 7, 7, 1};
    cl_dataset d;
    FMT(dir, "%s/idx", tmp);
    mkdir_p(dir);
    FMT(ip, "%s/train-images-idx3-ubyte", dir);
    FMT(lp, "%s/train-labels-idx1-ubyte", dir);
    FMT(ipz, "%s/z/train-images-idx3-ubyte.gz", dir);
    FMT(lpz, "%s/z/train-labels-idx1-ubyte.gz", dir);
    char zdir[1100];
    FMT(zdir, "%s/z", dir);
    mkdir_p(zdir);
    size_t ni = idx_images(ib, 2051, IDX_N, IDX_H, IDX_W), nl = idx_labels(lb, 2049, IDX_N, labels);
    write_file(ip, ib, ni);
    write_file(lp, lb, nl);
    write_gz(ipz, ib, ni);
    write_gz(lpz, lb, nl);

    t_begin("idx/raw and gzip files, classes = largest label + 1");
    if (want_ok(cl_load_idx(ip, lp, &d, err, sizeof err), err)) {
        check_idx(&d, labels, 8);
        if (d.classes == 8 && strcmp(d.class_names[7], "7")) t_fail("name 7 '%s'", d.class_names[7]);
    }
    cl_dataset_free(&d);
    if (want_ok(cl_load_idx(ipz, lpz, &d, err, sizeof err), err)) check_idx(&d, labels, 8);
    cl_dataset_free(&d);
    if (want_ok(cl_load_idx(ipz, lp, &d, err, sizeof err), err)) check_idx(&d, labels, 8);
    cl_dataset_free(&d);
    t_end();

    t_begin("idx/mnist dir: .gz and raw names, test split, class names");
    if (want_ok(cl_load_mnist_dir(zdir, CL_SPLIT_TRAIN, NULL, &d, err, sizeof err), err)) {
        check_idx(&d, labels, 10);
        if (d.classes == 10 && (strcmp(d.class_names[0], "0") || strcmp(d.class_names[9], "9")))
            t_fail("names '%s' .. '%s'", d.class_names[0], d.class_names[9]);
    }
    cl_dataset_free(&d);
    static const char *const fashion[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    if (want_ok(cl_load_mnist_dir(dir, CL_SPLIT_TRAIN, fashion, &d, err, sizeof err), err)) {
        check_idx(&d, labels, 10);
        if (d.classes == 10 && strcmp(d.class_names[9], "Ankle boot"))
            t_fail("name 9 '%s'", d.class_names[9]);
    }
    cl_dataset_free(&d);
    char tp[1100];
    FMT(tp, "%s/t10k-images-idx3-ubyte", dir);
    write_file(tp, ib, ni);
    FMT(tp, "%s/t10k-labels-idx1-ubyte", dir);
    write_file(tp, lb, nl);
    if (want_ok(cl_load_mnist_dir(dir, CL_SPLIT_TEST, NULL, &d, err, sizeof err), err))
        check_idx(&d, labels, 10);
    cl_dataset_free(&d);
    /* Labels beyond the given names. */
    static const char *const three[] = {"a", "b", "c", NULL};
    cl_status st = cl_load_mnist_dir(dir, CL_SPLIT_TEST, three, &d, err, sizeof err);
    FMT(want, "%s: record 0 (byte 8): label 3 is out of range 0..2", tp);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    FMT(want, "%s/empty", tmp);
    mkdir_p(want);
    st = cl_load_mnist_dir(want, CL_SPLIT_TRAIN, NULL, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, "train-images-idx3-ubyte.gz (or train-images-idx3-ubyte) is missing from",
               want, "cnnlab fetch mnist");
    t_end();

    t_begin("idx/errors: magic, swapped files, counts, zero and absurd dims");
    char bp[1100];
    FMT(bp, "%s/bad-images", dir);
    ni = idx_images(ib, 2049, IDX_N, IDX_H, IDX_W);
    write_file(bp, ib, ni);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    FMT(want, "%s: wrong magic number 0x00000801 (2049) at byte 0: expected 0x00000803 (2051)", bp);
    want_error(st, err, CL_ERR_FORMAT, want, "swapped", NULL);
    want_empty(&d);
    st = cl_load_idx(lp, ip, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, "wrong magic number 0x00000803 (2051)", "swapped", ip);
    ni = idx_images(ib, 0x0D03, IDX_N, IDX_H, IDX_W);
    write_file(bp, ib, ni);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, "wrong magic number 0x00000d03", "type 0x08", NULL);
    ni = idx_images(ib, 2051, IDX_N + 1, IDX_H, IDX_W);
    write_file(bp, ib, ni);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, "has 5 labels", "has 6 images", bp);
    ni = idx_images(ib, 2051, 0, IDX_H, IDX_W);
    write_file(bp, ib, 16);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "says 0 images", NULL);
    ni = idx_images(ib, 2051, IDX_N, 100000, IDX_W);
    write_file(bp, ib, ni);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "100000x4 (HxW)", NULL);
    ni = idx_images(ib, 2051, IDX_N, IDX_H, 0);
    write_file(bp, ib, ni);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "3x0 (HxW)", NULL);
    /* A header claiming 2^31-1 huge images: must fail at the end of the data, not
     * try to allocate what it claims. */
    ni = idx_images(ib, 2051, 0x7fffffff, 16384, 16384);
    write_file(bp, ib, ni);
    uint8_t lhuge[64];
    size_t nlh = idx_labels(lhuge, 2049, 0x7fffffff, labels);
    char lhp[1100];
    FMT(lhp, "%s/huge-labels", dir);
    write_file(lhp, lhuge, nlh);
    st = cl_load_idx(bp, lhp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, lhp, "truncated at byte 13 (label 5 of 2147483647)", NULL);
    want_empty(&d);
    t_end();

    t_begin("idx/errors: truncated, extra bytes, short header");
    ni = idx_images(ib, 2051, IDX_N, IDX_H, IDX_W);
    write_file(bp, ib, 16 + 2 * 12 + 5);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    FMT(want, "%s: truncated at byte 45 (image 2 of 5): expected 76 bytes", bp);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    write_file(bp, ib, 10);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    FMT(want, "%s: truncated at byte 10 (in the 16-byte header)", bp);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    ib[ni] = 0;
    write_file(bp, ib, ni + 1);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    FMT(want, "%s: 1 extra bytes after the last of the 5 images (at byte 76)", bp);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    FMT(want, "%s/missing-file", dir);
    st = cl_load_idx(want, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, want, "No such file", NULL);
    t_end();

    t_begin("idx/errors: gzip cut short, cut trailer, bad CRC, bad header");
    size_t zl;
    uint8_t *z = read_all(ipz, &zl);
    write_file(bp, z, zl / 2);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "truncated at uncompressed byte", "cut short");
    write_file(bp, z, zl - 4);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "cut short after uncompressed byte 76", NULL);
    z[zl - 8] ^= 0x55; /* the CRC-32 */
    write_file(bp, z, zl);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "corrupt gzip data", "incorrect data check");
    z[zl - 8] ^= 0x55;
    z[2] = 7; /* compression method */
    write_file(bp, z, zl);
    st = cl_load_idx(bp, lp, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, bp, "corrupt gzip data at uncompressed byte 0", NULL);
    want_empty(&d);
    free(z);
    t_end();
}

/* ---- statistics -------------------------------------------------------------------- */

static void test_stats(void) {
    t_begin("stats/known tiny set: min, max, mean, population variance, class counts");
    /* 2 RGB images of 1x2: channel 0 holds 0, 255, 51, 102 (0, 1, 0.2, 0.4):
     * mean 0.4, var (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14. Channel 1 is constant 10.
     * Channel 2 holds 255, 255, 0, 0: mean 0.5, var 0.25. */
    uint8_t px[12] = {0, 10, 255, 255, 10, 255, 51, 10, 0, 102, 10, 0};
    int32_t labels[2] = {2, 2};
    cl_dataset d = {.n = 2, .c = 3, .h = 1, .w = 2, .classes = 3, .images = px, .labels = labels};
    cl_channel_stats s[3];
    int64_t counts[3] = {7, 7, 7};
    cl_dataset_stats(&d, s, counts);
    const double want[3][5] = {{0, 1, 0.4, sqrt(0.14), 0.14},
                               {10 / 255.0, 10 / 255.0, 10 / 255.0, 0, 0},
                               {0, 1, 0.5, 0.5, 0.25}};
    for (int c = 0; c < 3; c++) {
        const double got[5] = {s[c].min, s[c].max, s[c].mean, s[c].std, s[c].var};
        for (int k = 0; k < 5; k++)
            if (fabs(got[k] - want[c][k]) > 1e-12)
                t_fail("channel %d stat %d = %.15g, expected %.15g", c, k, got[k], want[c][k]);
    }
    if (counts[0] != 0 || counts[1] != 0 || counts[2] != 2)
        t_fail("class counts %lld %lld %lld", (long long)counts[0], (long long)counts[1],
               (long long)counts[2]);
    cl_dataset_stats(&d, NULL, counts); /* either output may be NULL */
    cl_dataset_stats(&d, s, NULL);
    t_end();
}

/* ---- image folders ------------------------------------------------------------------- */

/* Write a PNG: rows of w * channels samples of `depth` bits (16-bit big-endian as
 * libpng wants), or palette indices with the palette. */
static void write_png(const char *path, int w, int h, int color, int depth, const uint8_t *data,
                      const png_color *palette, int npalette, bool interlace) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npalette);
    png_write_info(png, info);
    int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4
           : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    png_bytep *rows = xmalloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

static void write_jpeg(const char *path, int w, int h, int comps, const uint8_t *data) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* Image i of d at (y, x), channel k. */
static int px_at(const cl_dataset *d, int i, int y, int x, int k) {
    return d->images[(((size_t)i * d->h + y) * d->w + x) * d->c + k];
}

/* Image i of d equals want [h][w][c] (within tol). */
static void check_image(const cl_dataset *d, int i, const uint8_t *want, int tol, const char *what) {
    for (int y = 0; y < d->h; y++)
        for (int x = 0; x < d->w; x++)
            for (int k = 0; k < d->c; k++) {
                int g = px_at(d, i, y, x, k), w = want[(y * d->w + x) * d->c + k];
                if (abs(g - w) > tol) {
                    t_fail("%s (image %d) [y=%d x=%d c=%d] = %d, expected %d", what, i, y, x, k,
                           g, w);
                    return;
                }
            }
}

#define IW 3
#define IH 4

static void test_image_folder(const char *tmp) {
    char root[1024], p[1100], err[1024], want[1200];
    cl_dataset d;
    cl_status st;
    /* Reference RGB pixels [IH][IW][3]. */
    uint8_t rgb[IH * IW * 3], rgba[IH * IW * 4], grey[IH * IW], pal_idx[IH * IW], pal_rgb[IH * IW * 3];
    uint8_t grey16[IH * IW * 2], grey_exp[IH * IW * 3], grey16_exp[IH * IW * 3];
    png_color palette[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {17, 34, 51}};
    for (int i = 0; i < IH * IW; i++) {
        for (int k = 0; k < 3; k++) rgb[i * 3 + k] = (uint8_t)(i * 20 + k * 70 + 5);
        for (int k = 0; k < 3; k++) rgba[i * 4 + k] = (uint8_t)(255 - i * 9 - k * 30);
        rgba[i * 4 + 3] = (uint8_t)(i * 21); /* alpha: dropped */
        grey[i] = (uint8_t)(i * 23 + 1);
        pal_idx[i] = (uint8_t)(i % 4);
        pal_rgb[i * 3 + 0] = palette[i % 4].red;
        pal_rgb[i * 3 + 1] = palette[i % 4].green;
        pal_rgb[i * 3 + 2] = palette[i % 4].blue;
        /* 16-bit 257k + 100 scales to k (the high byte alone would be k + 0 or 1). */
        int k16 = 257 * (i * 21) + 100;
        grey16[2 * i] = (uint8_t)(k16 >> 8);
        grey16[2 * i + 1] = (uint8_t)k16;
        for (int k = 0; k < 3; k++) {
            grey_exp[i * 3 + k] = grey[i];
            grey16_exp[i * 3 + k] = (uint8_t)(i * 21);
        }
    }
    uint8_t rgba_exp[IH * IW * 3];
    for (int i = 0; i < IH * IW; i++)
        for (int k = 0; k < 3; k++) rgba_exp[i * 3 + k] = rgba[i * 4 + k];
    uint8_t solid[IH * IW * 3];
    for (int i = 0; i < IH * IW; i++) {
        solid[i * 3] = 200;
        solid[i * 3 + 1] = 60;
        solid[i * 3 + 2] = 90;
    }

    FMT(root, "%s/folder", tmp);
    FMT(p, "%s/b_cls", root);
    mkdir_p(p);
    FMT(p, "%s/a_cls", root);
    mkdir_p(p);
    FMT(p, "%s/.hidden_cls", root);
    mkdir_p(p);
    FMT(p, "%s/README.txt", root);
    write_text(p, "not a class");
    FMT(p, "%s/a_cls/2.png", root);
    write_png(p, IW, IH, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, false);
    FMT(p, "%s/a_cls/1.png", root);
    write_png(p, IW, IH, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0, false);
    FMT(p, "%s/a_cls/10.png", root);
    write_png(p, IW, IH, PNG_COLOR_TYPE_PALETTE, 8, pal_idx, palette, 4, false);
    FMT(p, "%s/a_cls/notes.txt", root);
    write_text(p, "skipped");
    FMT(p, "%s/a_cls/.DS_Store", root);
    write_text(p, "hidden");
    FMT(p, "%s/b_cls/x.jpg", root);
    write_jpeg(p, IW, IH, 3, solid);
    FMT(p, "%s/b_cls/y.PNG", root);
    write_png(p, IW, IH, PNG_COLOR_TYPE_GRAY, 8, grey, NULL, 0, true); /* interlaced */
    FMT(p, "%s/b_cls/z.png", root);
    write_png(p, IW, IH, PNG_COLOR_TYPE_GRAY, 16, grey16, NULL, 0, false);
    FMT(p, "%s/b_cls/zz.jpeg", root); /* a PNG named .jpeg */
    write_png(p, IW, IH, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, false);

    t_begin("folder/RGB: classes and files sorted, hidden and unknown skipped, PNG RGB RGBA "
            "palette grey 16-bit interlaced, JPEG");
    if (want_ok(cl_load_image_folder(root, 0, 0, &d, err, sizeof err), err)) {
        want_shape(&d, 7, 3, IH, IW, 2);
        if (d.n == 7 && d.c == 3) {
            check_image(&d, 0, rgba_exp, 0, "a_cls/1.png RGBA");
            check_image(&d, 1, pal_rgb, 0, "a_cls/10.png palette");
            check_image(&d, 2, rgb, 0, "a_cls/2.png RGB");
            check_image(&d, 3, solid, 2, "b_cls/x.jpg");
            check_image(&d, 4, grey_exp, 0, "b_cls/y.PNG grey interlaced");
            check_image(&d, 5, grey16_exp, 0, "b_cls/z.png grey 16-bit");
            check_image(&d, 6, rgb, 0, "b_cls/zz.jpeg (a PNG)");
            const int wl[7] = {0, 0, 0, 1, 1, 1, 1};
            for (int i = 0; i < 7; i++)
                if (d.labels[i] != wl[i]) t_fail("label %d = %d", i, d.labels[i]);
            if (strcmp(d.class_names[0], "a_cls") || strcmp(d.class_names[1], "b_cls"))
                t_fail("class names '%s' '%s'", d.class_names[0], d.class_names[1]);
        }
    }
    cl_dataset_free(&d);
    t_end();

    /* All grey: 8-bit, 1-bit, grey+alpha PNG and a greyscale JPEG -> c = 1. */
    char groot[1100];
    FMT(groot, "%s/greyset", tmp);
    FMT(p, "%s/only", groot);
    mkdir_p(p);
    FMT(p, "%s/only/a.png", groot);
    write_png(p, IW, IH, PNG_COLOR_TYPE_GRAY, 8, grey, NULL, 0, false);
    uint8_t bits[IH] = {0xa0, 0x40, 0xe0, 0x00}; /* 1-bit rows of 3 pixels: 101 010 111 000 */
    uint8_t bits_exp[IH * IW] = {255, 0, 255, 0, 255, 0, 255, 255, 255, 0, 0, 0};
    FMT(p, "%s/only/b.png", groot);
    write_png(p, IW, IH, PNG_COLOR_TYPE_GRAY, 1, bits, NULL, 0, false);
    uint8_t ga[IH * IW * 2];
    for (int i = 0; i < IH * IW; i++) {
        ga[2 * i] = grey[i];
        ga[2 * i + 1] = 7;
    }
    FMT(p, "%s/only/c.png", groot);
    write_png(p, IW, IH, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, NULL, 0, false);
    uint8_t gsolid[IH * IW];
    memset(gsolid, 77, sizeof gsolid);
    FMT(p, "%s/only/d.jpg", groot);
    write_jpeg(p, IW, IH, 1, gsolid);

    t_begin("folder/grey: every image greyscale gives c=1 (1-bit, grey+alpha, grey JPEG)");
    if (want_ok(cl_load_image_folder(groot, 0, 0, &d, err, sizeof err), err)) {
        want_shape(&d, 4, 1, IH, IW, 1);
        if (d.n == 4 && d.c == 1) {
            check_image(&d, 0, grey, 0, "a.png grey");
            check_image(&d, 1, bits_exp, 0, "b.png 1-bit");
            check_image(&d, 2, grey, 0, "c.png grey+alpha");
            check_image(&d, 3, gsolid, 1, "d.jpg grey");
        }
    }
    cl_dataset_free(&d);
    t_end();

    /* Resizing: a 2x2 grey image up to 4x4 and a 4x4 RGB image down to 2x2. */
    char rroot[1100];
    FMT(rroot, "%s/resize", tmp);
    FMT(p, "%s/c", rroot);
    mkdir_p(p);
    uint8_t g22[4] = {0, 100, 200, 255};
    FMT(p, "%s/c/a.png", rroot);
    write_png(p, 2, 2, PNG_COLOR_TYPE_GRAY, 8, g22, NULL, 0, false);
    uint8_t c44[4 * 4 * 3];
    for (int i = 0; i < 48; i++) c44[i] = (uint8_t)((i * 37) % 251);
    FMT(p, "%s/c/b.png", rroot);
    write_png(p, 4, 4, PNG_COLOR_TYPE_RGB, 8, c44, NULL, 0, false);

    t_begin("folder/resize: bilinear, align_corners=False (PyTorch's values)");
    if (want_ok(cl_load_image_folder(rroot, 4, 4, &d, err, sizeof err), err)) {
        want_shape(&d, 2, 3, 4, 4, 1);
        /* torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear",
         * align_corners=False) of [[0, 100], [200, 255]]:
         * [[0, 25, 75, 100], [50, 72.1875, 116.5625, 138.75],
         *  [150, 166.5625, 199.6875, 216.25], [200, 213.75, 241.25, 255]], rounded. */
        const uint8_t up[16] = {0,   25,  75,  100, 50,  72,  117, 139,
                                150, 167, 200, 216, 200, 214, 241, 255};
        uint8_t up3[48];
        for (int i = 0; i < 16; i++) up3[3 * i] = up3[3 * i + 1] = up3[3 * i + 2] = up[i];
        if (d.n == 2 && d.h == 4) {
            check_image(&d, 0, up3, 0, "2x2 -> 4x4");
            check_image(&d, 1, c44, 0, "4x4 unchanged");
        }
    }
    cl_dataset_free(&d);
    if (want_ok(cl_load_image_folder(rroot, 2, 2, &d, err, sizeof err), err)) {
        want_shape(&d, 2, 3, 2, 2, 1);
        /* Halving samples at the centre of each 2x2 block: its rounded mean. */
        uint8_t down[12];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++)
                for (int k = 0; k < 3; k++) {
                    int s = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) s += c44[((2 * y + dy) * 4 + 2 * x + dx) * 3 + k];
                    down[(y * 2 + x) * 3 + k] = (uint8_t)((s + 2) / 4);
                }
        uint8_t same[12];
        for (int i = 0; i < 4; i++) same[3 * i] = same[3 * i + 1] = same[3 * i + 2] = g22[i];
        if (d.n == 2 && d.h == 2) {
            check_image(&d, 0, same, 0, "2x2 unchanged");
            check_image(&d, 1, down, 0, "4x4 -> 2x2");
        }
    }
    cl_dataset_free(&d);
    t_end();

    t_begin("folder/errors: size mismatch, empty class, no classes, bad resize, missing folder");
    st = cl_load_image_folder(rroot, 0, 0, &d, err, sizeof err);
    FMT(want, "%s/c/b.png: image 1 is 4x4 (HxW) but the first image, %s/c/a.png, is 2x2",
             rroot, rroot);
    want_error(st, err, CL_ERR_FORMAT, want, NULL, NULL);
    want_empty(&d);
    FMT(p, "%s/z_empty", rroot);
    mkdir_p(p);
    FMT(p, "%s/z_empty/list.csv", rroot);
    write_text(p, "x");
    st = cl_load_image_folder(rroot, 4, 4, &d, err, sizeof err);
    FMT(want, "%s/z_empty: empty class folder", rroot);
    want_error(st, err, CL_ERR_FORMAT, want, "list.csv", NULL);
    want_empty(&d);
    FMT(p, "%s/z_empty", rroot);
    rm_rf(p);
    FMT(p, "%s/c", groot);
    st = cl_load_image_folder(p, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_IO, p, "cannot open the folder", NULL);
    FMT(p, "%s/only", groot);
    st = cl_load_image_folder(p, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "has no class subfolders", NULL);
    st = cl_load_image_folder(rroot, 4, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_ARG, "resize 4x0", NULL, NULL);
    want_empty(&d);
    t_end();

    t_begin("folder/errors: truncated PNG and JPEG, garbage, empty file");
    char broot[1100];
    FMT(broot, "%s/broken", tmp);
    FMT(p, "%s/k", broot);
    mkdir_p(p);
    FMT(p, "%s/k/a.png", broot);
    uint8_t big[64 * 64 * 3];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7919 >> 3);
    write_png(p, 64, 64, PNG_COLOR_TYPE_RGB, 8, big, NULL, 0, false);
    size_t len;
    uint8_t *bytes = read_all(p, &len);
    write_file(p, bytes, len / 2);
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "corrupt PNG", NULL);
    want_empty(&d);
    bytes[40] ^= 0xff; /* inside IHDR: its CRC fails */
    write_file(p, bytes, len);
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "corrupt PNG", NULL);
    free(bytes);
    unlink(p);
    FMT(p, "%s/k/b.jpg", broot);
    write_jpeg(p, 64, 64, 3, big);
    bytes = read_all(p, &len);
    write_file(p, bytes, len * 2 / 3);
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "corrupt JPEG", "Premature end");
    write_file(p, bytes, 100); /* inside the headers */
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "corrupt JPEG", NULL);
    free(bytes);
    write_text(p, "GIF89a....");
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "not a PNG or JPEG image (byte 0 starts with 47 49 46", NULL);
    write_file(p, "", 0);
    st = cl_load_image_folder(broot, 0, 0, &d, err, sizeof err);
    want_error(st, err, CL_ERR_FORMAT, p, "empty file", NULL);
    want_empty(&d);
    t_end();

    t_begin("image/errors: a PNG declaring 100000x100000 or 16384x16384, a folder as an image");
    FMT(p, "%s/k/huge.png", broot);
    write_png(p, 8, 8, PNG_COLOR_TYPE_RGB, 8, big, NULL, 0, false);
    bytes = read_all(p, &len);
    static const uint32_t sides[2] = {100000, 16384};
    for (int k = 0; k < 2; k++) {
        /* IHDR's width and height at bytes 16..23, its CRC (over type and data) at 29 */
        for (int b = 0; b < 4; b++) bytes[16 + b] = bytes[20 + b] = (uint8_t)(sides[k] >> (24 - 8 * b));
        uint32_t crc = (uint32_t)crc32(0, bytes + 12, 17);
        for (int b = 0; b < 4; b++) bytes[29 + b] = (uint8_t)(crc >> (24 - 8 * b));
        write_file(p, bytes, len);
        uint8_t *img = NULL;
        st = cl_load_image(p, 3, 8, 8, &img, err, sizeof err);
        char size[64];
        FMT(size, "image of %ux%u (HxW): sides must be 1..16384", sides[k], sides[k]);
        want_error(st, err, CL_ERR_FORMAT, p, size, NULL);
        free(img);
    }
    free(bytes);
    unlink(p);
    FMT(p, "%s/k/folder.png", broot);
    mkdir_p(p);
    uint8_t *none = NULL;
    st = cl_load_image(p, 3, 8, 8, &none, err, sizeof err);
    want_error(st, err, CL_ERR_IO, p, "is a directory", NULL);
    rmdir(p);
    t_end();
}

/* ---- the shared data sets ------------------------------------------------------------- */

static bool dir_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* stats printed with %.6f must read exactly as the published figures. */
static void want_6(const char *what, double got, const char *published) {
    char buf[32];
    FMT(buf, "%.6f", got);
    if (strcmp(buf, published)) t_fail("%s = %s (%.9f), published %s", what, buf, got, published);
}

static void test_shared(void) {
    char err[1024];
    cl_dataset d;
    cl_channel_stats s[3];
    int64_t counts[10];

    if (!dir_exists(SHARED "/cifar-10-batches-bin")) {
        t_begin("shared/cifar10 train statistics (skipped: no shared data)");
        t_end();
    } else {
        t_begin("shared/cifar10 train: mean 0.491400 0.482158 0.446531, std 0.247032 0.243485 "
                "0.261588, 5000 per class");
        if (want_ok(cl_load_cifar10(SHARED "/cifar-10-batches-bin", CL_SPLIT_TRAIN, &d, err,
                                    sizeof err), err)) {
            want_shape(&d, 50000, 3, 32, 32, 10);
            cl_dataset_stats(&d, s, counts);
            const char *mean[3] = {"0.491400", "0.482158", "0.446531"};
            const char *std[3] = {"0.247032", "0.243485", "0.261588"};
            for (int c = 0; c < 3; c++) {
                want_6("mean", s[c].mean, mean[c]);
                want_6("std", s[c].std, std[c]);
                if (s[c].min != 0 || s[c].max != 1) t_fail("channel %d min/max %g %g", c, s[c].min, s[c].max);
            }
            for (int k = 0; k < 10; k++)
                if (counts[k] != 5000) t_fail("class %d: %lld images", k, (long long)counts[k]);
            if (strcmp(d.class_names[0], "airplane") || strcmp(d.class_names[9], "truck"))
                t_fail("names '%s' .. '%s'", d.class_names[0], d.class_names[9]);
        }
        cl_dataset_free(&d);
        t_end();
    }

    if (!dir_exists(SHARED "/mnist")) {
        t_begin("shared/mnist train statistics (skipped: no shared data)");
        t_end();
    } else {
        t_begin("shared/mnist train: class counts, mean 0.130660 std 0.308108");
        if (want_ok(cl_load_mnist_dir(SHARED "/mnist", CL_SPLIT_TRAIN, NULL, &d, err, sizeof err), err)) {
            want_shape(&d, 60000, 1, 28, 28, 10);
            cl_dataset_stats(&d, s, counts);
            const int64_t want[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
            for (int k = 0; k < 10; k++)
                if (counts[k] != want[k])
                    t_fail("class %d: %lld images, expected %lld", k, (long long)counts[k],
                           (long long)want[k]);
            want_6("mean", s[0].mean, "0.130660");
            want_6("std", s[0].std, "0.308108");
        }
        cl_dataset_free(&d);
        t_end();
    }

    if (!dir_exists(FASHION)) {
        t_begin("shared/fashion-mnist train counts (skipped: no shared data)");
        t_end();
    } else {
        t_begin("shared/fashion-mnist train: 60000 images, 6000 per class");
        if (want_ok(cl_load_mnist_dir(FASHION, CL_SPLIT_TRAIN, NULL, &d, err, sizeof err), err)) {
            want_shape(&d, 60000, 1, 28, 28, 10);
            cl_dataset_stats(&d, NULL, counts);
            for (int k = 0; k < 10; k++)
                if (counts[k] != 6000) t_fail("class %d: %lld images", k, (long long)counts[k]);
        }
        cl_dataset_free(&d);
        t_end();
    }
}

int main(void) {
    char tmp[] = "/tmp/cnnlab-test-data.XXXXXX";
    if (!mkdtemp(tmp)) {
        t_fail("mkdtemp: %s", strerror(errno));
        return t_finish();
    }
    test_cifar10(tmp);
    test_cifar100(tmp);
    test_idx(tmp);
    test_stats();
    test_image_folder(tmp);
    rm_rf(tmp);
    test_shared();
    return t_finish();
}
