/* train.c: `cnnlab train MODEL [options]`, the main job. It loads the data, builds
 * the model, and runs epochs of shuffled, augmented mini-batches with the chosen
 * optimizer and schedule, evaluating on the test set after each epoch. The run
 * folder receives the resolved configuration, metrics.csv, log.txt and the `last`
 * and `best` checkpoints (safetensors, written atomically). With --val-split the last N
 * training images are a validation set: evaluated after each epoch instead of the
 * test set, which is evaluated once, after the last epoch. With --ema the evaluations
 * and checkpoints use the moving average of the weights (the optimizer keeps it; the
 * `last` checkpoint also holds the raw weights, for --resume). The folder is locked while
 * the run uses it (runstate.c). Ctrl-C, SIGTERM and SIGHUP finish the current step and
 * save a checkpoint that --resume continues exactly; a second signal ends the run at
 * once. A NaN or Inf loss (training or test) stops the run and keeps the last good
 * checkpoint. A finished run writes its report (report.c). Under MPI (build/cnnlab-mpi,
 * dist.c) every rank runs this same loop on its share of each batch; rank 0 alone
 * writes the run folder. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"

/* Signals. The first SIGINT, SIGTERM or SIGHUP asks the run to stop at the next batch
 * boundary, where it saves a checkpoint; a second one, or one while nothing is left to
 * save (the report), ends the process at once, after printing stop_message (to the
 * console and log.txt): the checkpoints are renamed into place whole, so the last one
 * stays intact whenever the process ends. */
static volatile sig_atomic_t stop_signal; /* the first signal received, 0 if none */
static volatile sig_atomic_t stop_at_once;
static char stop_message[TRAIN_STR_LEN * 2 + 256];
static size_t stop_message_len;
static int stop_log_fd = -1;

static void on_stop_signal(int sig) {
    if (stop_signal || stop_at_once) {
        if (write(STDERR_FILENO, stop_message, stop_message_len) < 0) {
            /* nothing left to tell */
        }
        if (stop_log_fd >= 0 && write(stop_log_fd, stop_message, stop_message_len) < 0) {
            /* the console has it */
        }
        _exit(128 + sig);
    }
    stop_signal = sig;
    static const char first[] = "\ncnnlab: stopping at the end of this step (a second signal stops at once)\n";
    if (write(STDERR_FILENO, first, sizeof first - 1) < 0) {
        /* the stop message follows anyway */
    }
}

/* The signal that stops this rank: its own, or (under MPI, where dist_any told it that
 * another rank got one) SIGTERM, what mpirun forwards. */
static int stopping_signal(void) { return stop_signal ? stop_signal : SIGTERM; }

static const char *signal_name(int sig) {
    return sig == SIGINT ? "Ctrl-C (SIGINT)" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* Everything a run needs, so the steps below read as the training loop. */
typedef struct {
    train_options o;
    char model_text[1 << 16];
    char model_path[TRAIN_STR_LEN + 16];
    cl_dataset train, test;
    cli_dataset_ref ref;
    float mean[8], std[8];
    cl_model *m;
    cl_optimizer *opt;
    cl_schedule sched;
    cl_augment *aug;
    cl_loader *train_loader, *test_loader, *val_loader;
    cl_tta tta;           /* --tta (nviews 1: none) */
    cl_tta_plan *tta_plan; /* its buffers, for the per-epoch test; NULL without TTA */
    int32_t *train_idx, *test_idx, *val_idx;
    int ntrain, ntest; /* images used (after --train-subset, --test-subset) */
    int nval, val_first; /* --val-split: training images [val_first, val_first + nval) */
    char val_images[64]; /* "FIRST-LAST" (0-based, inclusive) or "none": in checkpoints */
    cl_real *dlogits;
    cl_real *all_logits;  /* [batch][classes]: every rank's logits (MPI) */
    int32_t *all_labels;  /* [batch] */
    FILE *log, *metrics;
    char dir[TRAIN_STR_LEN];
    /* progress, saved in checkpoints */
    int epoch, batch_in_epoch;
    long step;
    double loss_sum, best_acc;
    long correct, seen;
    int best_epoch;
    uint64_t dropout_step; /* the model's dropout counter, copied at save and load */
    int lock_fd;           /* the run folder's lock, held until exit; -1 before */
    bool described;        /* model.net and config.txt written by this process */
} run;

/* Print to stdout and append to log.txt. */
__attribute__((format(printf, 2, 3))) static void say(run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (r->log) {
        va_start(ap, fmt);
        vfprintf(r->log, fmt, ap);
        va_end(ap);
        fflush(r->log);
    }
}

/* An error: "cnnlab: ..." on stderr, and in log.txt once the run has one. */
__attribute__((format(printf, 2, 3))) static void run_error(run *r, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("%s", msg);
    if (r->log) {
        fprintf(r->log, "cnnlab: %s\n", msg);
        fflush(r->log);
    }
}

/* The model file's text into buf (len bytes with the NUL). */
static bool read_file(const char *path, char *buf, size_t len) {
    char *text = cli_read_text(path, len - 1);
    if (text) snprintf(buf, len, "%s", text);
    free(text);
    return text != NULL;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void path_in(const run *r, char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%.*s/%s", (int)(len - strlen(name) - 2), r->dir, name);
}

/* ---- setup ---------------------------------------------------------------------- */

static bool resolve_defaults(train_options *o) {
    bool sgd = !strcmp(o->opt, "sgd"), adam = !strcmp(o->opt, "adam"), adamw = !strcmp(o->opt, "adamw");
    if (!sgd && !adam && !adamw) {
        cli_error("--opt: expected sgd, adam or adamw, got '%s'", o->opt);
        return false;
    }
    if (isnan(o->lr)) o->lr = sgd ? 0.05f : 0.001f;
    if (isnan(o->weight_decay)) o->weight_decay = sgd ? 5e-4f : adam ? 0.0f : 0.01f;
    if (o->epochs < 1) {
        cli_error("--epochs must be at least 1");
        return false;
    }
    if (o->batch < 1 || o->batch > 65536) {
        cli_error("--batch must be 1 to 65536");
        return false;
    }
    if (o->label_smoothing < 0 || o->label_smoothing >= 1) {
        cli_error("--label-smoothing must be in [0, 1)");
        return false;
    }
    if (!(o->ema >= 0 && o->ema < 1)) {
        cli_error("--ema must be at least 0 (off) and below 1, e.g. 0.999; got %g", (double)o->ema);
        return false;
    }
    return true;
}


static bool load_data(run *r) {
    const train_options *o = &r->o;
    if (!cli_resolve_dataset(o->data, o->data_dir[0] ? o->data_dir : NULL, &r->ref)) return false;
    cli_image_size rs = {0, 0};
    if (o->resize[0] && sscanf(o->resize, "%dx%d", &rs.h, &rs.w) != 2) {
        cli_error("--resize: expected HxW, got '%s'", o->resize);
        return false;
    }
    if (!cli_load_dataset(&r->ref, CL_SPLIT_TRAIN, &rs, &r->train) ||
        !cli_load_dataset(&r->ref, CL_SPLIT_TEST, &rs, &r->test))
        return false;
    if (r->train.c > 8) {
        cli_error("images with %d channels: cnnlab handles up to 8", r->train.c);
        return false;
    }
    /* Normalise with the training set's own statistics, as course notebooks do. */
    cl_channel_stats st[8];
    cl_dataset_stats(&r->train, st, NULL);
    for (int c = 0; c < r->train.c; c++) {
        r->mean[c] = (float)st[c].mean;
        r->std[c] = st[c].std > 1e-6 ? (float)st[c].std : 1.0f;
    }
    return true;
}

/* from, from + 1, ..., from + n - 1 */
static int32_t *index_range(int from, int n) {
    int32_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    for (int i = 0; idx && i < n; i++) idx[i] = from + i;
    return idx;
}

static bool make_loaders(run *r) {
    const train_options *o = &r->o;
    char err[512];
    r->aug = cl_augment_new();
    if (!r->aug || (o->aug[0] && cl_augment_parse(r->aug, o->aug, err, sizeof err) != CL_OK)) {
        cli_error("--aug: %s", r->aug ? err : "out of memory");
        return false;
    }
    /* --val-split N: the last N images of the training split, whatever the seed and
       --train-subset (which takes the first images of the rest) */
    if (o->val_split >= r->train.n) {
        cli_error("--val-split %lld: the training split of %s has %d images; hold out fewer",
                  o->val_split, o->data, r->train.n);
        return false;
    }
    int pool = r->train.n - (int)o->val_split;
    r->nval = (int)o->val_split;
    r->val_first = pool;
    if (r->nval)
        snprintf(r->val_images, sizeof r->val_images, "%d-%d", r->val_first, r->val_first + r->nval - 1);
    else
        snprintf(r->val_images, sizeof r->val_images, "none");
    int ntrain = o->train_subset && o->train_subset < pool ? (int)o->train_subset : pool;
    int ntest = o->test_subset && o->test_subset < r->test.n ? (int)o->test_subset : r->test.n;
    r->ntrain = ntrain;
    r->ntest = ntest;
    r->train_idx = index_range(0, ntrain);
    r->test_idx = index_range(0, ntest);
    r->val_idx = index_range(r->val_first, r->nval);
    if (!r->train_idx || !r->test_idx || !r->val_idx) {
        cli_error("out of memory");
        return false;
    }
    cl_loader_args ta = {.ds = &r->train, .batch = (int)o->batch, .shuffle = true,
                         .seed = (uint64_t)o->seed, .aug = r->aug, .mean = r->mean, .std = r->std,
                         .subset = r->train_idx, .nsubset = ntrain, .workers = (int)o->workers,
                         .shard = dist_rank(), .shards = dist_size()};
    cl_loader_args va = {.ds = &r->test, .batch = (int)o->batch, .mean = r->mean, .std = r->std,
                         .subset = r->test_idx, .nsubset = ntest, .workers = 1,
                         .shard = dist_rank(), .shards = dist_size()};
    r->train_loader = cl_loader_new(ta, err, sizeof err);
    if (!r->train_loader) {
        cli_error("training data: %s", err);
        return false;
    }
    r->test_loader = cl_loader_new(va, err, sizeof err);
    if (!r->test_loader) {
        cli_error("test data: %s", err);
        return false;
    }
    if (r->nval) { /* the training images, normalised alike, never augmented */
        va.ds = &r->train;
        va.subset = r->val_idx;
        va.nsubset = r->nval;
        r->val_loader = cl_loader_new(va, err, sizeof err);
        if (!r->val_loader) {
            cli_error("validation data: %s", err);
            return false;
        }
    }
    return true;
}

static bool build_model(run *r) {
    const train_options *o = &r->o;
    char err[1024];
    cl_shape in = {r->train.c, r->train.h, r->train.w};
    r->m = cl_parse_model(r->model_text, strlen(r->model_text), r->model_path, NULL, err, sizeof err);
    if (!r->m) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    cl_shape min = cl_model_shape(r->m, 0);
    if (min.c != in.c || min.h != in.h || min.w != in.w) {
        cli_error("%s takes %dx%dx%d inputs but %s images are %dx%dx%d: change its `input` line",
                  r->model_path, min.c, min.h, min.w, o->data, in.c, in.h, in.w);
        return false;
    }
    cl_shape out = cl_model_shape(r->m, cl_model_output(r->m));
    if (out.h != 1 || out.w != 1 || out.c != r->train.classes) {
        cli_error("%s outputs %dx%dx%d, but %s has %d classes: the last layer must give %dx1x1 "
                  "logits (e.g. `gap` then `conv %d k=1`)", r->model_path, out.c, out.h, out.w,
                  o->data, r->train.classes, r->train.classes, r->train.classes);
        return false;
    }
    cl_compile_args ca = {.max_batch = (int)o->batch, .threads = (int)o->threads,
                          .seed = (uint64_t)o->seed};
    if (!dist_prepare(r->m, &ca)) return false;
    if (cl_model_compile(r->m, ca) != CL_OK) {
        cli_error("%s", cl_model_error(r->m));
        return false;
    }
    if (o->init[0] && cl_model_load(r->m, NULL, o->init, err, sizeof err) != CL_OK) {
        cli_error("--init: %s", err);
        return false;
    }
    cl_optim_args oa = train_options_optim_args(o);
    if (oa.kind == CL_OPT_SGD && o->nesterov && o->momentum <= 0) {
        cli_error("--nesterov needs --momentum > 0");
        return false;
    }
    r->opt = cl_optimizer_new(r->m, oa);
    if (!cli_parse_tta("--tta", o->tta, &r->tta)) return false;
    if (r->tta.nviews > 1 && !(r->tta_plan = cl_tta_plan_new(r->m, &r->tta, (int)o->batch, err, sizeof err))) {
        cli_error("--tta: %s", err);
        return false;
    }
    r->dlogits = malloc((size_t)o->batch * r->train.classes * sizeof(cl_real));
    r->all_logits = malloc((size_t)o->batch * r->train.classes * sizeof(cl_real));
    r->all_labels = malloc((size_t)o->batch * sizeof(int32_t));
    if (!r->opt || !r->dlogits || !r->all_logits || !r->all_labels) {
        cli_error("out of memory");
        return false;
    }
    return true;
}

/* --init-whiten N: the first convolution's weights from the first N training images. */
static bool init_whiten(run *r) {
    if (r->o.init_whiten <= 0) return true;
    int n = r->o.init_whiten < r->ntrain ? (int)r->o.init_whiten : r->ntrain;
    return cli_init_whiten(r->m, &r->train, r->train_idx, n, r->mean, r->std, dist_rank() == 0);
}

/* ---- checkpoints ----------------------------------------------------------------- */

/* Every metadata key of a checkpoint written by `cnnlab train`: its type and where its
 * value lives in the run. save_checkpoint writes every row; --resume reads the
 * progress rows back with checked parsing (resume_state) and compares the identity
 * rows with the run folder (check_belongs); eval, predict and report read the identity
 * rows (checkpoint.c). */
typedef enum {
    META_CONST,   /* fixed text (row.text) */
    META_TEXT,    /* a NUL-terminated char array */
    META_OPTIONS, /* train_options, as key=value lines */
    META_CLASSES, /* cl_dataset: its class names, one a line */
    META_SHAPE,   /* cl_dataset: its image shape, CxHxW */
    META_FLOATS,  /* float[channels of the training set], comma-separated */
    META_INT,
    META_LONG,
    META_U64,
    META_DOUBLE,
    META_SCHED,   /* cl_schedule: plateau_lr best bad_epochs cooldown_left has_best */
} meta_type;

typedef struct {
    const char *key;
    meta_type type;
    size_t offset;    /* into run */
    bool progress;    /* where the run stands: read back by --resume */
    const char *text; /* META_CONST */
} meta_row;

#define AT(field) offsetof(run, field)
static const meta_row run_meta[] = {
    /* what safetensors.torch writes: tells loaders these are torch tensors */
    {"format", META_CONST, 0, false, "pt"},
    {"cnnlab.version", META_CONST, 0, false, CNNLAB_VERSION},
    /* what the run is */
    {"cnnlab.model_text", META_TEXT, AT(model_text), false, NULL},
    {"cnnlab.options", META_OPTIONS, AT(o), false, NULL},
    {"cnnlab.dataset", META_TEXT, AT(ref.kind), false, NULL},
    {"cnnlab.classes", META_CLASSES, AT(train), false, NULL},
    {"cnnlab.input", META_SHAPE, AT(train), false, NULL},
    {"cnnlab.mean", META_FLOATS, AT(mean), false, NULL},
    {"cnnlab.std", META_FLOATS, AT(std), false, NULL},
    /* the validation images (--val-split), compared by --resume */
    {"cnnlab.val_images", META_TEXT, AT(val_images), false, NULL},
    /* where it stands */
    {"cnnlab.epoch", META_INT, AT(epoch), true, NULL},
    {"cnnlab.batch", META_INT, AT(batch_in_epoch), true, NULL},
    {"cnnlab.step", META_LONG, AT(step), true, NULL},
    {"cnnlab.dropout_step", META_U64, AT(dropout_step), true, NULL},
    {"cnnlab.train_loss_sum", META_DOUBLE, AT(loss_sum), true, NULL},
    {"cnnlab.train_correct", META_LONG, AT(correct), true, NULL},
    {"cnnlab.train_seen", META_LONG, AT(seen), true, NULL},
    {"cnnlab.best_acc", META_DOUBLE, AT(best_acc), true, NULL},
    {"cnnlab.best_epoch", META_INT, AT(best_epoch), true, NULL},
    {"cnnlab.sched_state", META_SCHED, AT(sched), true, NULL},
};
#define NMETA ((int)(sizeof run_meta / sizeof *run_meta))

/* Row i's value as text: a pointer into r, or into buf (len bytes). */
static const char *meta_format(const run *r, const meta_row *row, char *buf, size_t len) {
    const void *at = (const char *)r + row->offset;
    buf[0] = 0;
    switch (row->type) {
    case META_CONST: return row->text;
    case META_TEXT: return at;
    case META_OPTIONS: train_options_write(at, buf, len); break;
    case META_CLASSES: {
        const cl_dataset *ds = at;
        size_t k = 0;
        for (int i = 0; i < ds->classes && k < len; i++)
            k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? "\n" : "", ds->class_names[i]);
        break;
    }
    case META_SHAPE: {
        const cl_dataset *ds = at;
        snprintf(buf, len, "%dx%dx%d", ds->c, ds->h, ds->w);
        break;
    }
    case META_FLOATS: {
        const float *v = at;
        size_t k = 0;
        for (int i = 0; i < r->train.c && k < len; i++)
            k += (size_t)snprintf(buf + k, len - k, "%s%.9g", i ? "," : "", v[i]);
        break;
    }
    case META_INT: snprintf(buf, len, "%d", *(const int *)at); break;
    case META_LONG: snprintf(buf, len, "%ld", *(const long *)at); break;
    case META_U64: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)at); break;
    case META_DOUBLE: snprintf(buf, len, "%.17g", *(const double *)at); break;
    case META_SCHED: {
        const cl_schedule *sc = at;
        snprintf(buf, len, "%.17g %.17g %d %d %d", sc->plateau_lr, sc->best, sc->bad_epochs,
                 sc->cooldown_left, sc->has_best);
        break;
    }
    }
    return buf;
}

/* Parse a progress row's text into r; false when it is missing or does not parse. */
static bool meta_parse(run *r, const meta_row *row, const char *text) {
    void *at = (char *)r + row->offset;
    long v;
    double d[5];
    switch (row->type) {
    case META_INT:
        if (!cli_meta_long(text, 0, 2000000000, &v)) return false;
        *(int *)at = (int)v;
        return true;
    case META_LONG: return cli_meta_long(text, 0, __LONG_MAX__, (long *)at);
    case META_U64: return cli_meta_u64(text, (uint64_t *)at);
    case META_DOUBLE: return cli_meta_doubles(text, 0, (double *)at, 1);
    case META_SCHED: {
        cl_schedule *sc = at;
        if (!cli_meta_doubles(text, ' ', d, 5)) return false;
        for (int i = 2; i < 5; i++) /* counts, then a 0/1 flag */
            if (d[i] < 0 || d[i] > 2e9 || d[i] != (int)d[i] || (i == 4 && d[i] > 1)) return false;
        sc->plateau_lr = d[0];
        sc->best = d[1];
        sc->bad_epochs = (int)d[2];
        sc->cooldown_left = (int)d[3];
        sc->has_best = d[4] != 0;
        return true;
    }
    default: return false; /* identity rows are compared, not read back */
    }
}

static bool save_model(run *r, const char *name, bool with_state);

/* With --ema: put the moving average of the weights into the model (on), or the raw
 * weights that training updates (off). */
static void use_average(run *r, bool on) {
    if (r->opt && r->o.ema > 0 && cl_optimizer_average_in_model(r->opt) != on)
        cl_optimizer_swap_average(r->opt);
}

/* Save the model with the run state; last (with optimizer state) or best (weights
 * only). With --ema the model's tensors in both are the moving average (what eval,
 * export and report then use); last also keeps the raw weights in its optimizer
 * state. A failure (a full disk, weights that diverged) is reported to the console
 * and log.txt. */
static bool save_checkpoint(run *r, const char *name, bool with_state) {
    if (dist_rank() != 0) return true; /* one writer */
    bool averaged = r->opt && cl_optimizer_average_in_model(r->opt);
    use_average(r, true);
    bool ok = save_model(r, name, with_state);
    use_average(r, averaged);
    return ok;
}

static bool save_model(run *r, const char *name, bool with_state) {
    char path[TRAIN_STR_LEN + 32], err[1024];
    path_in(r, path, sizeof path, name);
    static char options[1 << 15], classes[1 << 14], small[NMETA][256];
    const char *meta[2 * NMETA];
    r->dropout_step = cl_model_step(r->m);
    for (int i = 0; i < NMETA; i++) {
        const meta_row *row = &run_meta[i];
        char *buf = row->type == META_OPTIONS ? options : row->type == META_CLASSES ? classes : small[i];
        size_t len = row->type == META_OPTIONS ? sizeof options
                     : row->type == META_CLASSES ? sizeof classes : sizeof small[i];
        meta[2 * i] = row->key;
        meta[2 * i + 1] = meta_format(r, row, buf, len);
    }
    if (cl_model_save(r->m, with_state ? r->opt : NULL, path, meta, NMETA, err, sizeof err) != CL_OK) {
        run_error(r, "%s", err);
        return false;
    }
    return true;
}

/* Whether the lines of two texts agree; else the first line that differs (1-based). */
static int first_different_line(const char *a, const char *b) {
    for (int line = 1;; line++) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || memcmp(a, b, la) != 0) return line;
        if (!a[la] && !b[lb]) return 0;
        if (!a[la] || !b[lb]) return line + 1;
        a += la + 1;
        b += lb + 1;
    }
}

/* Whether --name (or --name=...) was given on the command line. */
static bool given(int argc, char **argv, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--", 2) && !strncmp(argv[i] + 2, name, len) &&
            (argv[i][2 + len] == 0 || argv[i][2 + len] == '='))
            return true;
    return false;
}

/* The value of key in "key=value" lines (into buf), or false. */
static bool line_value(const char *text, const char *key, char *buf, size_t len) {
    size_t klen = strlen(key);
    for (const char *s = text; *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] == '\n')) {
        if (!strncmp(s, key, klen) && s[klen] == '=') {
            size_t vlen = strcspn(s + klen + 1, "\n");
            snprintf(buf, len, "%.*s", (int)vlen, s + klen + 1);
            return true;
        }
    }
    return false;
}

/* --resume: whether the checkpoint belongs to the run recorded in its folder (model.net,
 * the dataset and options in config.txt); else print what differs. Options given again
 * on the command line are not compared: they are meant to change; nor are --out and
 * --data-dir, which move with the folders. A folder without
 * model.net or config.txt has nothing to compare. */
static bool check_belongs(const char *dir, const char *path, const char *text, const char *dataset,
                          const char *opts, int argc, char **argv) {
    char file[TRAIN_STR_LEN + 32], what[1024] = "";
    size_t k = 0;
    snprintf(file, sizeof file, "%s/model.net", dir);
    FILE *f = fopen(file, "rb");
    if (f) {
        fclose(f);
        char *net = cli_read_text(file, 1 << 16);
        int line = net ? first_different_line(net, text) : 0;
        if (line)
            k += (size_t)snprintf(what + k, sizeof what - k, "\n  its model differs from %s at line %d",
                                  file, line);
        free(net);
    }
    snprintf(file, sizeof file, "%s/config.txt", dir);
    char *config = NULL;
    if ((f = fopen(file, "rb"))) {
        fclose(f);
        config = cli_read_text(file, 1 << 16);
    }
    char value[TRAIN_STR_LEN];
    if (config && line_value(config, "dataset", value, sizeof value) && strcmp(value, dataset) != 0 &&
        !given(argc, argv, "data"))
        k += (size_t)snprintf(what + k, k < sizeof what ? sizeof what - k : 0,
                              "\n  it was trained on %s, config.txt says %s", dataset, value);
    /* The options: config.txt lists them after params=, as the checkpoint does. */
    const char *listed = config ? strstr(config, "\nparams=") : NULL;
    if (listed) {
        listed += strcspn(listed + 1, "\n") + 1;
        train_options a, b;
        train_options_defaults(&a);
        train_options_defaults(&b);
        static char ta[1 << 15], tb[1 << 15];
        if (train_options_read(&a, opts) && train_options_read(&b, listed)) {
            /* both in one canonical form, then every key of either */
            train_options_write(&a, ta, sizeof ta);
            train_options_write(&b, tb, sizeof tb);
            const char *texts[2] = {ta, tb};
            int shown = 0;
            for (int t = 0; t < 2; t++)
                for (const char *l = texts[t]; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
                    char key[64], va[TRAIN_STR_LEN] = "(unset)", vb[TRAIN_STR_LEN] = "(unset)";
                    snprintf(key, sizeof key, "%.*s", (int)strcspn(l, "="), l);
                    bool in_a = line_value(ta, key, va, sizeof va);
                    if (t == 1 && in_a) continue; /* compared already */
                    line_value(tb, key, vb, sizeof vb);
                    /* where the run and the data lie may move with their folders */
                    bool place = !strcmp(key, "out") || !strcmp(key, "data-dir");
                    if (strcmp(va, vb) != 0 && !place && !given(argc, argv, key) && shown++ < 4 &&
                        k < sizeof what)
                        k += (size_t)snprintf(what + k, sizeof what - k,
                                              "\n  option %s is %s in it, %s in config.txt", key, va, vb);
                }
        }
    }
    free(config);
    if (!what[0]) return true;
    cli_error("--resume: %s does not belong to the run in %s:%s\nNothing was changed. Resume the "
              "run that wrote it in its own folder, or start a new run with --out.", path, dir, what);
    return false;
}

/* --resume DIR: the options and model of the run, then (after setup) its state. */
static bool resume_options(run *r, const train_options *cmdline, int argc, char **argv) {
    char path[TRAIN_STR_LEN + 32], err[1024];
    snprintf(r->dir, sizeof r->dir, "%s", cmdline->resume);
    path_in(r, path, sizeof path, "last.safetensors");
    cl_safetensors *sf = cl_safetensors_read(path, err, sizeof err);
    if (!sf) {
        cli_error("--resume: %s", err);
        return false;
    }
    const char *opts = cl_safetensors_meta(sf, "cnnlab.options");
    const char *text = cl_safetensors_meta(sf, "cnnlab.model_text");
    const char *dataset = cl_safetensors_meta(sf, "cnnlab.dataset");
    bool ok = opts && text && dataset;
    train_options_defaults(&r->o);
    if (ok) ok = train_options_read(&r->o, opts);
    train_options stored = r->o;
    if (!ok) cli_error("--resume: %s was not written by cnnlab train", path);
    else ok = check_belongs(r->dir, path, text, dataset, opts, argc, argv);
    if (ok) {
        snprintf(r->model_text, sizeof r->model_text, "%s", text);
        /* Options given again on the command line win (e.g. --epochs to train longer). */
        const char *pos[1];
        ok = cli_parse(&train_command, &r->o, argc, argv, pos, 1) >= 0;
        /* the validation images and the averaging are part of what the run is */
        if (ok && r->o.val_split != stored.val_split) {
            cli_error("--val-split %lld: the run in %s holds out %lld validation image%s, on which "
                      "its best checkpoint was chosen; resume with the same --val-split, or start "
                      "a new run with --out", r->o.val_split, r->dir, stored.val_split,
                      stored.val_split == 1 ? "" : "s");
            ok = false;
        }
        if (ok && (r->o.ema > 0) != (stored.ema > 0)) {
            if (stored.ema > 0)
                cli_error("--ema %g: the run in %s averages the weights (--ema %g) and its "
                          "checkpoints hold the average; keep --ema on (another decay is allowed)",
                          (double)r->o.ema, r->dir, (double)stored.ema);
            else
                cli_error("--ema %g: the run in %s was trained without --ema and has no average "
                          "to continue; start a new run with --out", (double)r->o.ema, r->dir);
            ok = false;
        }
        snprintf(r->o.resume, sizeof r->o.resume, "%s", cmdline->resume);
        snprintf(r->model_path, sizeof r->model_path, "%s/model.net", r->dir);
    }
    cl_safetensors_free(sf);
    return ok;
}

static bool resume_state(run *r) {
    char path[TRAIN_STR_LEN + 32], err[1024];
    path_in(r, path, sizeof path, "last.safetensors");
    if (cl_model_load(r->m, r->opt, path, err, sizeof err) != CL_OK) {
        cli_error("--resume: %s", err);
        return false;
    }
    cl_safetensors *sf = cl_safetensors_read(path, err, sizeof err);
    if (!sf) {
        cli_error("--resume: %s", err);
        return false;
    }
    bool ok = true;
    for (int i = 0; i < NMETA && ok; i++) {
        if (!run_meta[i].progress) continue;
        const char *v = cl_safetensors_meta(sf, run_meta[i].key);
        ok = meta_parse(r, &run_meta[i], v);
        if (!ok)
            cli_error("--resume: %s: metadata %s is %s%s%s", path, run_meta[i].key,
                      v ? "not a valid value: '" : "missing", v ? v : "", v ? "'" : "");
    }
    const char *val = cl_safetensors_meta(sf, "cnnlab.val_images");
    if (ok && strcmp(val ? val : "none", r->val_images) != 0) {
        cli_error("--resume: %s held out the training images %s for validation, this run %s "
                  "(--val-split or the dataset changed)", path, val ? val : "none", r->val_images);
        ok = false;
    }
    use_average(r, false); /* training goes on from the raw weights */
    const char *dataset = cl_safetensors_meta(sf, "cnnlab.dataset");
    if (ok && dataset && strcmp(dataset, r->ref.kind) != 0) {
        cli_error("--resume: %s was trained on %s, this run loads %s", path, dataset, r->ref.kind);
        ok = false;
    }
    if (ok && r->batch_in_epoch > cl_loader_batches(r->train_loader)) {
        cli_error("--resume: %s: batch %d of an epoch of %d batches", path, r->batch_in_epoch,
                  cl_loader_batches(r->train_loader));
        ok = false;
    }
    cl_model_set_step(r->m, r->dropout_step);
    cl_safetensors_free(sf);
    return ok;
}

/* ---- the run folder ---------------------------------------------------------------- */

/* Lock the run folder r->dir (once) and remove the temporary files a killed writer
 * left there: from here on no other run writes in it. */
static bool lock_run_folder(run *r) {
    if (r->lock_fd >= 0) return true;
    r->lock_fd = cli_lock_run_folder(r->dir);
    if (r->lock_fd < 0) return false;
    int removed = cli_remove_stale_temporaries(r->dir);
    if (removed) printf("Removed %d temporary file%s left in %s by a killed run\n", removed,
                        removed > 1 ? "s" : "", r->dir);
    return true;
}

/* A new run: the folder (--out, or runs/MODEL numbered), created and locked; one that
 * already holds a run is refused. */
static bool make_run_folder(run *r) {
    if (r->o.out[0]) {
        snprintf(r->dir, sizeof r->dir, "%s", r->o.out);
    } else {
        /* runs/MODEL, then runs/MODEL-2, ... */
        const char *base = strrchr(r->model_path, '/');
        base = base ? base + 1 : r->model_path;
        int len = (int)strcspn(base, ".");
        snprintf(r->dir, sizeof r->dir, "runs/%.*s", len, base);
        for (int k = 2; exists(r->dir); k++) snprintf(r->dir, sizeof r->dir, "runs/%.*s-%d", len, base, k);
    }
    if (!cli_mkdirs(r->dir)) {
        cli_error("cannot create the run folder %s: %s", r->dir, strerror(errno));
        return false;
    }
    if (!lock_run_folder(r)) return false;
    char last[TRAIN_STR_LEN + 32];
    path_in(r, last, sizeof last, "last.safetensors");
    if (exists(last)) {
        cli_error("%s already holds a run: continue it with --resume %s, or choose another --out",
                  r->dir, r->dir);
        return false;
    }
    return true;
}

/* model.net and config.txt: the model text and every resolved option, written
 * atomically. A new run writes them at its start; a resumed one with its first
 * checkpoint, so that they always describe the checkpoint (--resume compares them). */
static bool describe_run(run *r) {
    char path[TRAIN_STR_LEN + 32];
    cli_atomic_file a;
    path_in(r, path, sizeof path, "model.net");
    FILE *f = cli_atomic_open(&a, path);
    if (!f) return false;
    fputs(r->model_text, f);
    if (!cli_atomic_close(&a, true)) return false;
    path_in(r, path, sizeof path, "config.txt");
    if (!(f = cli_atomic_open(&a, path))) return false;
    static char options[1 << 15];
    train_options_write(&r->o, options, sizeof options);
    fprintf(f, "# cnnlab %s: the resolved options of this run (model in model.net)\n", CNNLAB_VERSION);
    fprintf(f, "model=%s\ndataset=%s\ndataset_dir=%s\nclasses=%d\ninput=%dx%dx%d\n", r->model_path,
            r->ref.kind, r->ref.dir, r->train.classes, r->train.c, r->train.h, r->train.w);
    fprintf(f, "train_images=%d\ntest_images=%d\n", r->ntrain, r->ntest);
    /* which training images each set holds (0-based, inclusive) */
    if (r->nval) {
        fprintf(f, "train_range=0-%d\nval_images=%d\nval_range=%s\nval_class_counts=", r->ntrain - 1,
                r->nval, r->val_images);
        /* images per class among the validation images: how balanced the held-out set is */
        for (int k = 0; k < r->train.classes; k++) {
            int count = 0;
            for (int i = 0; i < r->nval; i++) count += r->train.labels[r->val_idx[i]] == k;
            fprintf(f, "%s%d", k ? "," : "", count);
        }
        fputc('\n', f);
    }
    for (int c = 0; c < r->train.c; c++) fprintf(f, "mean[%d]=%.6f\nstd[%d]=%.6f\n", c, r->mean[c], c, r->std[c]);
    fprintf(f, "params=%lld\n%s", (long long)cl_model_param_count(r->m), options);
    if (!cli_atomic_close(&a, true)) return false;
    r->described = true;
    return true;
}

/* log.txt (appended to on resume) and metrics.csv (on resume: the rows of finished
 * epochs, rewritten atomically), then model.net and config.txt for a new run. */
static bool open_run_folder(run *r, bool resuming) {
    char path[TRAIN_STR_LEN + 32];
    path_in(r, path, sizeof path, "log.txt");
    r->log = fopen(path, resuming ? "a" : "w");
    if (!r->log) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    path_in(r, path, sizeof path, "metrics.csv");
    cli_atomic_file a;
    FILE *out = cli_atomic_open(&a, path);
    if (!out) return false;
    FILE *f = resuming ? fopen(path, "r") : NULL;
    char line[512];
    int rows = -1;
    while (f && rows < r->epoch && fgets(line, sizeof line, f)) {
        fputs(line, out);
        rows++;
    }
    if (f) fclose(f);
    /* --val-split adds two columns; without it the file is as it always was */
    if (rows < 0)
        fprintf(out, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds%s\n",
                r->nval ? ",val_loss,val_acc" : "");
    if (!cli_atomic_close(&a, true) || !(r->metrics = fopen(path, "a"))) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    return resuming || describe_run(r);
}

/* ---- ranks ------------------------------------------------------------------------- */

/* Under MPI, refuse to start unless every rank runs the same model and options on the
 * same data from the same weights (--data-dir, --threads, --workers and --out may
 * differ between machines). */
static bool ranks_agree(run *r) {
    if (dist_size() == 1) return true;
    static char text[sizeof r->model_text + (1 << 15)];
    train_options o = r->o;
    o.data[0] = o.data_dir[0] = o.out[0] = o.resume[0] = o.init[0] = 0;
    o.threads = o.workers = 0;
    size_t k = (size_t)snprintf(text, sizeof text, "%s\n--\n", r->model_text);
    if (k < sizeof text) train_options_write(&o, text + k, sizeof text - k);
    struct {
        int ntrain, ntest, classes, c, h, w;
        float mean[8], std[8];
    } data = {r->ntrain, r->ntest, r->train.classes, r->train.c, r->train.h, r->train.w, {0}, {0}};
    memcpy(data.mean, r->mean, sizeof data.mean);
    memcpy(data.std, r->std, sizeof data.std);
    size_t np, nb;
    const cl_real *params = cl_model_params(r->m, &np), *buffers = cl_model_buffers(r->m, &nb);
    bool same = dist_same("model file and options", text, strlen(text));
    same &= dist_same("dataset (sizes and channel statistics)", &data, sizeof data);
    same &= dist_same("training labels", r->train.labels, (size_t)r->train.n * sizeof(int32_t));
    same &= dist_same("starting weights (--init or --resume checkpoint)", params, np * sizeof *params);
    same &= dist_same("starting BatchNorm statistics", buffers, nb * sizeof *buffers);
    return same;
}

/* Forward this rank's share of the batch that loader l returned last (x, n samples)
 * and return the logits of the whole batch, [*total][classes], with its labels in
 * *labels; *first is this rank's first sample in it. One process: the batch itself. */
static const cl_real *forward_batch(run *r, cl_loader *l, const cl_real *x, int n, bool train,
                                    const int32_t **labels, int *first, int *total) {
    cl_loader_span(l, first, total);
    cl_model_set_shard(r->m, *first);
    /* the test with --tta: the mean logits over the views (in eval mode) */
    const cl_real *logits = !train && r->tta_plan ? cl_tta_forward(r->tta_plan, x, n)
                                                  : cl_model_forward(r->m, x, n, train);
    if (dist_size() == 1) return logits;
    dist_gather_rows(logits, *total, r->train.classes, r->all_logits);
    dist_gather_labels(*labels, *total, r->all_labels);
    *labels = r->all_labels;
    return r->all_logits;
}

/* ---- the loop ------------------------------------------------------------------------ */

/* The loss and accuracy on the images of l (test or validation); false when a signal
 * stopped it part-way. */
static bool evaluate(run *r, cl_loader *l, double *loss, double *acc, long *correct_out,
                     long *total_out) {
    const cl_real *x;
    const int32_t *labels;
    int n;
    double loss_sum = 0;
    long correct = 0, total = 0;
    int K = r->train.classes;
    cl_loader_start(l, 0);
    while (cl_loader_next(l, &x, &labels, NULL, &n)) {
        int first;
        const cl_real *logits = forward_batch(r, l, x, n, false, &labels, &first, &n);
        loss_sum += cl_cross_entropy(logits, labels, n, K, 0, NULL) * n;
        for (int i = 0; i < n; i++) correct += cli_argmax(logits + (size_t)i * K, K) == labels[i];
        total += n;
        if (dist_any(stop_signal != 0)) return false;
    }
    *loss = total ? loss_sum / total : 0;
    *acc = total ? (double)correct / total : 0;
    *correct_out = correct;
    *total_out = total;
    return true;
}

/* One epoch; returns 0, 1 on a NaN/Inf loss, 2 when a signal asked to stop. */
static int train_epoch(run *r, double *lr_used) {
    const train_options *o = &r->o;
    const int K = r->train.classes, batches = cl_loader_batches(r->train_loader);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "Epoch %d/%lld", r->epoch + 1, o->epochs);
    progress p;
    progress_start(&p, prefix, batches, isatty(STDOUT_FILENO));
    cl_loader_start(r->train_loader, r->epoch);
    const cl_real *x;
    const int32_t *labels;
    int n;
    for (int b = 0; b < r->batch_in_epoch; b++) cl_loader_next(r->train_loader, &x, &labels, NULL, &n);
    while (cl_loader_next(r->train_loader, &x, &labels, NULL, &n)) {
        double lr = cl_schedule_lr(&r->sched, r->epoch, r->step);
        double mom = cl_schedule_momentum(&r->sched, r->step);
        if (mom >= 0) cl_optimizer_set_momentum(r->opt, (float)mom);
        int first;
        const cl_real *logits = forward_batch(r, r->train_loader, x, n, true, &labels, &first, &n);
        double loss = cl_cross_entropy(logits, labels, n, K, o->label_smoothing, r->dlogits);
        if (!isfinite(loss)) {
            progress_end(&p);
            say(r, "Loss became %s at epoch %d, batch %d/%d (step %ld): the run diverged and "
                   "stops here. Try a lower --lr.\n", isnan(loss) ? "NaN" : "Inf", r->epoch + 1,
                r->batch_in_epoch + 1, batches, r->step + 1);
            return 1;
        }
        for (int i = 0; i < n; i++) r->correct += cli_argmax(logits + (size_t)i * K, K) == labels[i];
        r->loss_sum += loss * n;
        r->seen += n;
        cl_model_zero_grad(r->m);
        cl_model_backward(r->m, r->dlogits + (size_t)first * K);
        size_t np;
        cl_real *grads = cl_model_grads(r->m, &np);
        dist_sum_grads(grads, np);
        cl_optimizer_step(r->opt, (float)lr);
        *lr_used = lr;
        r->step++;
        r->batch_in_epoch++;
        progress_update(&p, r->batch_in_epoch, r->loss_sum / r->seen, (double)r->correct / r->seen);
        if (dist_any(stop_signal != 0)) { /* every rank stops at the same step */
            progress_end(&p);
            return 2;
        }
    }
    progress_end(&p);
    return 0;
}

static void free_run(run *r) {
    cl_tta_plan_free(r->tta_plan);
    cl_loader_free(r->train_loader);
    cl_loader_free(r->test_loader);
    cl_loader_free(r->val_loader);
    cl_augment_free(r->aug);
    cl_optimizer_free(r->opt);
    cl_model_free(r->m);
    cl_dataset_free(&r->train);
    cl_dataset_free(&r->test);
    free(r->train_idx);
    free(r->test_idx);
    free(r->val_idx);
    free(r->dlogits);
    free(r->all_logits);
    free(r->all_labels);
    if (r->log) fclose(r->log);
    if (r->metrics) fclose(r->metrics);
    if (r->lock_fd >= 0) close(r->lock_fd);
}

static int cmd_train(int argc, char **argv);
static int train_run(int argc, char **argv);

/* ---- stopping ------------------------------------------------------------------------ */

static void say_last_good(run *r) {
    char last[TRAIN_STR_LEN + 32];
    path_in(r, last, sizeof last, "last.safetensors");
    if (exists(last))
        say(r, "The last good checkpoint is %s (after epoch %d).\n", last, r->epoch);
    else
        say(r, "No checkpoint was written: no epoch finished with finite losses.\n");
}

/* What a second signal prints before the process ends at once (during is "" or the
 * phase, e.g. " during the report"). */
static void set_stop_message(run *r, bool report) {
    char last[TRAIN_STR_LEN + 32];
    path_in(r, last, sizeof last, "last.safetensors");
    if (report)
        snprintf(stop_message, sizeof stop_message, "\ncnnlab: stopped during the report: the run is "
                 "complete and its checkpoints are intact; write the report with `cnnlab report %s`\n",
                 r->dir);
    else if (exists(last))
        snprintf(stop_message, sizeof stop_message, "\ncnnlab: stopped at once by a second signal: "
                 "%s is intact; continue with `cnnlab train --resume %s`\n", last, r->dir);
    else
        snprintf(stop_message, sizeof stop_message, "\ncnnlab: stopped at once by a second signal, "
                 "before the first checkpoint\n");
    stop_message_len = strlen(stop_message);
}

/* Installed first thing: a signal during setup stops the run where the loop starts. */
static void catch_stop_signals(void) {
    snprintf(stop_message, sizeof stop_message, "\ncnnlab: stopped at once by a second signal\n");
    stop_message_len = strlen(stop_message);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* A signal asked the run to stop: save the state reached (--resume continues from it
 * exactly) and say so. Returns the exit status, 128 + the signal. */
static int stop_run(run *r) {
    int sig = stopping_signal(), batches = cl_loader_batches(r->train_loader);
    /* the other ranks wait here until rank 0 has saved */
    if (dist_all_ok(save_checkpoint(r, "last.safetensors", true))) {
        if (!r->described && dist_rank() == 0) describe_run(r);
        say(r, "Interrupted by %s: saved %s/last.safetensors at epoch %d, batch %d/%d%s. Continue "
               "with `cnnlab train --resume %s`.\n", signal_name(sig), r->dir, r->epoch + 1,
            r->batch_in_epoch, batches, r->batch_in_epoch == batches ? " (not yet evaluated)" : "",
            r->dir);
    } else {
        say(r, "Interrupted by %s; the state reached was not saved.\n", signal_name(sig));
        say_last_good(r);
    }
    return 128 + sig;
}

/* Whether the resumed run's --out (if any) is its own folder. */
static bool same_folder(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* One epoch's training, evaluation, metrics row and checkpoints. Returns -1 to go on,
 * else the exit status. */
static int run_epoch(run *r) {
    /* the lr of the step last taken, for an epoch resumed after all its batches */
    double t0 = now_seconds(), lr = cl_schedule_lr(&r->sched, r->epoch, r->step - (r->batch_in_epoch > 0));
    int status = train_epoch(r, &lr);
    if (status == 1) {
        say_last_good(r);
        return 1;
    }
    /* every evaluation and checkpoint of this epoch sees the average (--ema) */
    use_average(r, true);
    /* --val-split: the validation set each epoch and the test set after the last one;
       else the test set each epoch */
    double test_loss = NAN, test_acc = NAN, val_loss = NAN, val_acc = NAN;
    long correct, total, vcorrect = 0, vtotal = 0;
    bool with_val = r->val_loader != NULL, with_test = !with_val || r->epoch + 1 == r->o.epochs;
    if (status == 2 || (with_val && !evaluate(r, r->val_loader, &val_loss, &val_acc, &vcorrect, &vtotal)) ||
        (with_test && !evaluate(r, r->test_loader, &test_loss, &test_acc, &correct, &total)))
        return stop_run(r);
    double secs = now_seconds() - t0;
    double train_loss = r->seen ? r->loss_sum / r->seen : 0, train_acc = r->seen ? (double)r->correct / r->seen : 0;
    say(r, "Epoch %d/%lld: train loss %.4f, accuracy %.2f%%, lr %.4g, %.1f s\n", r->epoch + 1,
        r->o.epochs, train_loss, 100 * train_acc, lr, secs);
    double watched = with_val ? val_loss : test_loss;
    if (!isfinite(watched) || (with_test && !isfinite(test_loss))) {
        bool val_bad = with_val && !isfinite(val_loss);
        double bad = val_bad ? val_loss : test_loss;
        say(r, "%s loss became %s after epoch %d: the run diverged and stops here. Try a lower "
               "--lr.\n", val_bad ? "Validation" : "Test", isnan(bad) ? "NaN" : "Inf", r->epoch + 1);
        say_last_good(r);
        return 1;
    }
    const char *weights = r->o.ema > 0 ? " (averaged weights)" : "";
    if (with_val)
        say(r, "Validation set%s: Average loss: %.4f, Accuracy: %ld/%ld (%.2f%%)\n", weights, val_loss,
            vcorrect, vtotal, 100 * val_acc);
    if (with_test)
        say(r, "Test set%s%s: Average loss: %.4f, Accuracy: %ld/%ld (%.2f%%)\n", weights,
            with_val ? ", after the last epoch" : "", test_loss, correct, total, 100 * test_acc);
    bool written = true;
    if (r->metrics) { /* rank 0's */
        fprintf(r->metrics, "%d,%.8g,%.6f,%.6f,%.6f,%.6f,%.2f", r->epoch + 1, lr, train_loss,
                train_acc, test_loss, test_acc, secs);
        if (with_val) fprintf(r->metrics, ",%.6f,%.6f", val_loss, val_acc);
        fputc('\n', r->metrics);
        written = fflush(r->metrics) == 0;
        if (!written) run_error(r, "%s/metrics.csv: write error: %s", r->dir, strerror(errno));
    }
    if (!dist_all_ok(written)) return 1;
    cl_schedule_epoch_end(&r->sched, watched);
    r->epoch++;
    r->batch_in_epoch = 0;
    r->loss_sum = 0;
    r->correct = r->seen = 0;
    double chosen_on = with_val ? val_acc : test_acc;
    bool best = chosen_on > r->best_acc;
    if (best) {
        r->best_acc = chosen_on;
        r->best_epoch = r->epoch;
    }
    /* best first: a kill between the two leaves last at the previous epoch, whose
       resume redoes this epoch and saves best again */
    bool saved = (!best || save_checkpoint(r, "best.safetensors", false)) &&
                 save_checkpoint(r, "last.safetensors", true);
    use_average(r, false);
    if (!dist_all_ok(saved)) {
        say_last_good(r);
        return 1;
    }
    if (!dist_all_ok(dist_rank() != 0 || r->described || describe_run(r))) return 1;
    set_stop_message(r, false);
    return -1;
}

const cli_command train_command = {
    .name = "train",
    .operands = "MODEL",
    .summary = "train a model; writes a run folder with metrics, log, checkpoints and report",
    .description =
        "Trains on a dataset's training split and evaluates on its test split after\n"
        "every epoch (with --val-split, on held-out training images instead, and on the\n"
        "test split once, after the last epoch). `cnnlab train --resume RUN_DIR\n"
        "[options]` continues a run (options given again win). Writes a run folder:\n"
        "config.txt, model.net, metrics.csv, log.txt, last and best checkpoints, and\n"
        "at the end the report (figures and report.html).",
    .options = train_option_table,
    .run = cmd_train,
};

static void usage(FILE *f) { cli_print_help(&train_command, f); }

static int cmd_train(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    if (!dist_start()) return dist_end(1);
    return dist_end(train_run(argc, argv));
}

static int train_run(int argc, char **argv) {
    static run r;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    catch_stop_signals();
    train_options cmd;
    train_options_defaults(&cmd);
    const char *pos[1] = {NULL};
    int npos = cli_parse(&train_command, &cmd, argc - 1, argv + 1, pos, 1);
    if (npos < 0) return EXIT_USAGE;
    bool resuming = cmd.resume[0] != 0;
    int rc = 1;
    if (resuming) {
        if (cmd.out[0] && !same_folder(cmd.out, cmd.resume)) {
            cli_error("--out %s: a resumed run continues in its own folder, %s; leave --out out, "
                      "or copy the folder first to branch off", cmd.out, cmd.resume);
            return EXIT_USAGE;
        }
        struct stat st;
        if (stat(cmd.resume, &st) != 0 || !S_ISDIR(st.st_mode)) {
            cli_error("--resume %s: no such run folder", cmd.resume);
            return 1;
        }
        snprintf(r.dir, sizeof r.dir, "%s", cmd.resume);
        /* rank 0 alone locks (and cleans) the folder: on a shared file system the
           other ranks would find it locked */
        if (!dist_all_ok(dist_rank() != 0 || lock_run_folder(&r)) ||
            !resume_options(&r, &cmd, argc - 1, argv + 1))
            goto out;
    } else {
        if (!pos[0]) {
            usage(stderr);
            return EXIT_USAGE;
        }
        r.o = cmd;
        snprintf(r.model_path, sizeof r.model_path, "%s", pos[0]);
        if (!read_file(pos[0], r.model_text, sizeof r.model_text)) return 1;
    }
    if (!train_options_check(&r.o)) {
        rc = EXIT_USAGE;
        goto out;
    }
    /* An existing --out folder is locked before the data loads: a second run into it
       stops at once, having touched nothing. */
    if (!resuming && r.o.out[0] &&
        !dist_all_ok(dist_rank() != 0 || !exists(r.o.out) || make_run_folder(&r)))
        goto out;
    bool ready = resolve_defaults(&r.o) && load_data(&r) && make_loaders(&r) && build_model(&r) &&
                 (resuming || init_whiten(&r)) &&
                 train_options_schedule(&r.o, cl_loader_batches(r.train_loader), &r.sched) &&
                 (!resuming || resume_state(&r));
    /* every rank ready and alike, then the run folder (rank 0) */
    if (!dist_all_ok(ready) || !ranks_agree(&r) ||
        !dist_all_ok(dist_rank() != 0 || resuming || make_run_folder(&r)) ||
        !dist_all_ok(dist_rank() != 0 || open_run_folder(&r, resuming)))
        goto out;

    say(&r, "%s %s: %lld parameters, %s (%d train / %d test images of %dx%dx%d, %d classes)\n",
        resuming ? "Resuming" : "Training", r.model_path, (long long)cl_model_param_count(r.m),
        r.ref.kind, r.ntrain, r.ntest, r.train.c, r.train.h, r.train.w, r.train.classes);
    say(&r, "Run folder: %s (epoch %d of %lld done)\n", r.dir, r.epoch, r.o.epochs);
    if (r.tta.nviews > 1) {
        char note[512];
        say(&r, "%s (the per-epoch test)\n", cli_tta_note(&r.tta, note, sizeof note));
    }
    set_stop_message(&r, false);
    if (r.log) stop_log_fd = fileno(r.log);
    double t_start = now_seconds();
    rc = -1;
    while (rc < 0 && r.epoch < r.o.epochs) rc = dist_any(stop_signal != 0) ? stop_run(&r) : run_epoch(&r);
    if (rc < 0 && dist_any(stop_signal != 0)) {
        say(&r, "Interrupted by %s after the last epoch: the run is complete; write its report with "
                "`cnnlab report %s`.\n", signal_name(stopping_signal()), r.dir);
        rc = 128 + stopping_signal();
    }
    if (rc < 0) {
        rc = 0;
        /* nothing is left to save: a signal now ends the process at once (set before
           "Done:" is printed, which is what a watcher waits for) */
        set_stop_message(&r, true);
        stop_at_once = 1;
        if (r.nval)
            say(&r, "Done: best validation accuracy %.2f%% at epoch %d (%d held-out training "
                    "images); the test set, evaluated once after the last epoch, is in the last "
                    "row of metrics.csv; %.1f s. Run folder: %s\n", 100 * r.best_acc, r.best_epoch,
                r.nval, now_seconds() - t_start, r.dir);
        else
            say(&r, "Done: best test accuracy %.2f%% at epoch %d; %.1f s. Run folder: %s\n",
                100 * r.best_acc, r.best_epoch, now_seconds() - t_start, r.dir);
        cli_metrics m; /* every epoch of the run, those before a --resume included */
        if (!isnan(r.o.target) && dist_rank() == 0 && cli_read_metrics(r.dir, &m)) {
            cl_curves c = cli_curves(&m);
            cl_curve_analysis a;
            if (cl_analyse_curves(&c, r.o.target, &a) == CL_OK && a.target_epoch > 0)
                say(&r, "Target %.4g%%: first reached at epoch %d.\n", 100 * r.o.target, a.target_epoch);
            else
                say(&r, "Target %.4g%%: not reached.\n", 100 * r.o.target);
            cli_metrics_free(&m);
        }
        long reductions;
        double wait_s, reduce_s = dist_reduce_seconds(&reductions, &wait_s);
        if (dist_size() > 1 && reductions > 0)
            say(&r, "MPI: %d ranks; per step, %.3f ms summing the gradients and %.3f ms waiting "
                    "for the slowest rank (%ld steps)\n", dist_size(), 1e3 * reduce_s / reductions,
                1e3 * wait_s / reductions, reductions);
        /* the checkpoints are safe; a report that fails can be made again. The
           training state goes first: the report needs memory of its own. */
        fflush(stdout);
        cl_tta_plan_free(r.tta_plan);
        r.tta_plan = NULL;
        cl_loader_free(r.train_loader);
        cl_loader_free(r.test_loader);
        cl_loader_free(r.val_loader);
        cl_optimizer_free(r.opt);
        cl_model_free(r.m);
        cl_dataset_free(&r.train);
        r.train_loader = r.test_loader = r.val_loader = NULL;
        r.opt = NULL;
        r.m = NULL;
        cli_report_args ra = {.threads = (int)r.o.threads, .show = 20, .test = &r.test};
        if (dist_rank() == 0 && !cli_write_report(r.dir, &ra)) {
            cli_error("the report was not written; the run itself is complete. Try again with "
                      "`cnnlab report %s`", r.dir);
            rc = 1;
        }
    }
out:
    free_run(&r);
    return rc;
}
