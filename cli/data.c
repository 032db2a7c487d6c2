/* data.c: finding and opening datasets for the CLI. A dataset is named (cifar10,
 * cifar100, mnist, fashion-mnist) or given as a folder. Named datasets are looked
 * for in --data-dir DIR, then $CNNLAB_DATA, then ./data, then ../shared/data (and
 * Debian's /usr/share/datasets for Fashion-MNIST); a folder is recognised by what it
 * holds. When nothing is found the message says exactly what to put where. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};

typedef struct {
    const char *name;    /* as on the command line */
    const char *subdir;  /* under a data root */
    const char *marker;  /* a file that must be there */
    const char *marker2; /* or this one (NULL: none) */
    const char *what;    /* for messages */
} known_dataset;

static const known_dataset known[] = {
    {"cifar10", "cifar-10-batches-bin", "data_batch_1.bin", NULL,
     "the CIFAR-10 binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin, "
     "batches.meta.txt)"},
    {"cifar100", "cifar-100-binary", "train.bin", NULL,
     "the CIFAR-100 binary files (train.bin, test.bin, fine_label_names.txt, "
     "coarse_label_names.txt)"},
    {"mnist", "mnist", "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
     "the MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
     "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"},
    {"fashion-mnist", "fashion-mnist", "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
     "the Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...; Debian's "
     "dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist)"},
};

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/name into buf; false when it does not fit. */
static bool join(char *buf, size_t len, const char *dir, const char *name) {
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < len;
}

static bool is_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    return join(p, sizeof p, dir, name) && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool holds(const char *dir, const known_dataset *k) {
    return is_file(dir, k->marker) || (k->marker2 && is_file(dir, k->marker2));
}

static const known_dataset *find_known(const char *name) {
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(known[i].name, name)) return &known[i];
    return NULL;
}

/* The data roots in search order; returns how many. */
static int data_roots(const char *data_dir, const char *roots[4]) {
    int n = 0;
    if (data_dir) roots[n++] = data_dir;
    const char *env = getenv("CNNLAB_DATA");
    if (env && env[0]) roots[n++] = env;
    roots[n++] = "./data";
    roots[n++] = "../shared/data";
    return n;
}

static bool load_known(const known_dataset *k, const char *dir, cl_split split, cl_dataset *ds,
                       char *err, size_t errlen) {
    cl_status st;
    if (!strcmp(k->name, "cifar10"))
        st = cl_load_cifar10(dir, split, ds, err, errlen);
    else if (!strcmp(k->name, "cifar100"))
        st = cl_load_cifar100(dir, split, true, ds, err, errlen);
    else if (!strcmp(k->name, "mnist"))
        st = cl_load_mnist_dir(dir, split, NULL, ds, err, errlen);
    else
        st = cl_load_mnist_dir(dir, split, fashion_names, ds, err, errlen);
    return st == CL_OK;
}

bool cli_resolve_dataset(const char *name, const char *data_dir, cli_dataset_ref *ref) {
    memset(ref, 0, sizeof *ref);
    const known_dataset *k = find_known(name);
    if (k) {
        const char *roots[4];
        int n = data_roots(data_dir, roots);
        for (int i = 0; i < n; i++) {
            char dir[4096];
            if (join(dir, sizeof dir, roots[i], k->subdir) && is_dir(dir) && holds(dir, k)) {
                snprintf(ref->dir, sizeof ref->dir, "%s", dir);
                snprintf(ref->kind, sizeof ref->kind, "%s", k->name);
                return true;
            }
            if (holds(roots[i], k)) { /* --data-dir pointing at the files themselves */
                snprintf(ref->dir, sizeof ref->dir, "%s", roots[i]);
                snprintf(ref->kind, sizeof ref->kind, "%s", k->name);
                return true;
            }
        }
        if (!strcmp(k->name, "fashion-mnist") && holds("/usr/share/datasets/fashion-mnist", k)) {
            snprintf(ref->dir, sizeof ref->dir, "/usr/share/datasets/fashion-mnist");
            snprintf(ref->kind, sizeof ref->kind, "%s", k->name);
            return true;
        }
        cli_error("%s: dataset not found. Put %s in one of:", name, k->what);
        for (int i = 0; i < n; i++) fprintf(stderr, "    %s/%s/\n", roots[i], k->subdir);
        fprintf(stderr, "(searched in this order: --data-dir, $CNNLAB_DATA, ./data, ../shared/data), "
                        "or run `cnnlab fetch %s` on a machine with internet.\n", name);
        return false;
    }
    if (!is_dir(name)) {
        cli_error("%s: not a dataset name (cifar10, cifar100, mnist, fashion-mnist) nor a folder",
                  name);
        return false;
    }
    /* A folder: recognised by its files, else an image folder. */
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        if (holds(name, &known[i])) {
            snprintf(ref->dir, sizeof ref->dir, "%s", name);
            bool fashion = !strcmp(known[i].name, "mnist") && strstr(name, "fashion");
            snprintf(ref->kind, sizeof ref->kind, "%s", fashion ? "fashion-mnist" : known[i].name);
            return true;
        }
        char sub[4096];
        if (join(sub, sizeof sub, name, known[i].subdir) && is_dir(sub)) {
            cli_error("%s holds datasets in subfolders; name one, e.g. `--data %s --data-dir %s`",
                      name, known[i].name, name);
            return false;
        }
    }
    snprintf(ref->dir, sizeof ref->dir, "%s", name);
    snprintf(ref->kind, sizeof ref->kind, "folder");
    return true;
}

bool cli_load_dataset(const cli_dataset_ref *ref, cl_split split, const cli_image_size *resize,
                      cl_dataset *ds) {
    char err[2048];
    memset(ds, 0, sizeof *ds);
    if (strcmp(ref->kind, "folder")) {
        if (load_known(find_known(ref->kind), ref->dir, split, ds, err, sizeof err)) return true;
        cli_error("%s", err);
        return false;
    }
    /* Image folders: DIR/train/<class>/ and DIR/test/<class>/, or DIR/<class>/ alone for
     * training only. */
    char dir[4096 + 8];
    const char *part = split == CL_SPLIT_TRAIN ? "train" : "test";
    if (!join(dir, sizeof dir, ref->dir, part) || !is_dir(dir)) {
        if (split == CL_SPLIT_TEST) {
            cli_error("%s has no test split: expected %s/test/<class>/ beside %s/train/<class>/",
                      ref->dir, ref->dir, ref->dir);
            return false;
        }
        snprintf(dir, sizeof dir, "%s", ref->dir);
    }
    int rh = resize ? resize->h : 0, rw = resize ? resize->w : 0;
    if (cl_load_image_folder(dir, rh, rw, ds, err, sizeof err) == CL_OK) return true;
    cli_error("%s", err);
    return false;
}

bool cli_open_dataset(const char *name, const char *data_dir, cl_split split, cl_dataset *ds) {
    cli_dataset_ref ref;
    return cli_resolve_dataset(name, data_dir, &ref) && cli_load_dataset(&ref, split, NULL, ds);
}

bool cli_init_whiten(cl_model *m, const cl_dataset *d, const int32_t *idx, int n,
                     const float *mean, const float *std, bool say) {
    size_t per = (size_t)d->h * d->w * d->c;
    cl_real *x = malloc((size_t)n * per * sizeof *x);
    if (!x) {
        cli_error("--init-whiten: out of memory for %d images", n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *img = d->images + (size_t)idx[i] * per;
        for (size_t p = 0; p < per; p++) {
            int c = (int)(p % (size_t)d->c);
            x[(size_t)i * per + p] = (cl_real)((img[p] / 255.0 - mean[c]) / std[c]);
        }
    }
    char err[512];
    double t0 = now_seconds();
    int layer = cl_model_init_whiten(m, x, n, CLI_WHITEN_EPS, err, sizeof err);
    free(x);
    if (layer < 0) {
        cli_error("--init-whiten: %s", err);
        return false;
    }
    if (say)
        printf("Whitening: layer %d's weights from the patches of %d training images (%.1f s)\n",
               layer, n, now_seconds() - t0);
    return true;
}
