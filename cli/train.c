/* train.c: `cnnlab train MODEL [options]`, the main job. It loads the data, builds
 * the model, and runs epochs of shuffled, augmented mini-batches with the chosen
 * optimizer and schedule, evaluating on the test set after each epoch. The run
 * folder receives the resolved configuration, metrics.csv, log.txt and the `last`
 * and `best` checkpoints (safetensors, written atomically). Ctrl-C finishes the
 * current step and saves a checkpoint that --resume continues exactly; a NaN or Inf
 * loss stops the run and keeps the last good checkpoint. A finished run writes its
 * report (report.c). Under MPI (build/cnnlab-mpi, dist.c) every rank runs this same
 * loop on its share of each batch; rank 0 alone writes the run folder. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
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
    cl_loader *train_loader, *test_loader;
    int32_t *train_idx, *test_idx;
    int ntrain, ntest; /* images used (after --train-subset, --test-subset) */
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

static int32_t *first_n(int n) {
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    for (int i = 0; idx && i < n; i++) idx[i] = i;
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
    int ntrain = o->train_subset && o->train_subset < r->train.n ? (int)o->train_subset : r->train.n;
    int ntest = o->test_subset && o->test_subset < r->test.n ? (int)o->test_subset : r->test.n;
    r->ntrain = ntrain;
    r->ntest = ntest;
    r->train_idx = first_n(ntrain);
    r->test_idx = first_n(ntest);
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
    cl_optim_args oa = {.lr = o->lr, .momentum = o->momentum, .nesterov = o->nesterov,
                        .weight_decay = o->weight_decay};
    oa.kind = !strcmp(o->opt, "sgd") ? CL_OPT_SGD : !strcmp(o->opt, "adam") ? CL_OPT_ADAM : CL_OPT_ADAMW;
    if (oa.kind == CL_OPT_SGD && o->nesterov && o->momentum <= 0) {
        cli_error("--nesterov needs --momentum > 0");
        return false;
    }
    r->opt = cl_optimizer_new(r->m, oa);
    r->dlogits = malloc((size_t)o->batch * r->train.classes * sizeof(cl_real));
    r->all_logits = malloc((size_t)o->batch * r->train.classes * sizeof(cl_real));
    r->all_labels = malloc((size_t)o->batch * sizeof(int32_t));
    if (!r->opt || !r->dlogits || !r->all_logits || !r->all_labels) {
        cli_error("out of memory");
        return false;
    }
    return true;
}

/* ---- checkpoints ----------------------------------------------------------------- */

static void csv_floats(char *buf, size_t len, const float *v, int n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < len; i++) k += (size_t)snprintf(buf + k, len - k, "%s%.9g", i ? "," : "", v[i]);
}

/* Save the model with metadata; last (with optimizer state) or best (weights only). */
static bool save_checkpoint(run *r, const char *name, bool with_state) {
    if (dist_rank() != 0) return true; /* one writer */
    char path[TRAIN_STR_LEN + 32], err[1024];
    path_in(r, path, sizeof path, name);
    static char options[1 << 15], classes[1 << 14];
    train_options_write(&r->o, options, sizeof options);
    size_t k = 0;
    for (int i = 0; i < r->train.classes && k < sizeof classes; i++)
        k += (size_t)snprintf(classes + k, sizeof classes - k, "%s%s", i ? "\n" : "",
                              r->train.class_names[i]);
    char epoch[32], batch[32], step[32], dstep[32], loss[40], correct[32], seen[32], best[40],
        best_epoch[32], sched[160], mean[160], std[160], input[48];
    snprintf(epoch, sizeof epoch, "%d", r->epoch);
    snprintf(batch, sizeof batch, "%d", r->batch_in_epoch);
    snprintf(step, sizeof step, "%ld", r->step);
    snprintf(dstep, sizeof dstep, "%llu", (unsigned long long)cl_model_step(r->m));
    snprintf(loss, sizeof loss, "%.17g", r->loss_sum);
    snprintf(correct, sizeof correct, "%ld", r->correct);
    snprintf(seen, sizeof seen, "%ld", r->seen);
    snprintf(best, sizeof best, "%.17g", r->best_acc);
    snprintf(best_epoch, sizeof best_epoch, "%d", r->best_epoch);
    snprintf(sched, sizeof sched, "%.17g %.17g %d %d %d", r->sched.plateau_lr, r->sched.best,
             r->sched.bad_epochs, r->sched.cooldown_left, r->sched.has_best);
    csv_floats(mean, sizeof mean, r->mean, r->train.c);
    csv_floats(std, sizeof std, r->std, r->train.c);
    snprintf(input, sizeof input, "%dx%dx%d", r->train.c, r->train.h, r->train.w);
    const char *meta[] = {
        "format", "pt",  /* what safetensors.torch writes: tells loaders these are torch tensors */
        "cnnlab.version", CNNLAB_VERSION,
        "cnnlab.model_text", r->model_text,
        "cnnlab.options", options,
        "cnnlab.dataset", r->ref.kind,
        "cnnlab.classes", classes,
        "cnnlab.input", input,
        "cnnlab.mean", mean,
        "cnnlab.std", std,
        "cnnlab.epoch", epoch,
        "cnnlab.batch", batch,
        "cnnlab.step", step,
        "cnnlab.dropout_step", dstep,
        "cnnlab.train_loss_sum", loss,
        "cnnlab.train_correct", correct,
        "cnnlab.train_seen", seen,
        "cnnlab.best_acc", best,
        "cnnlab.best_epoch", best_epoch,
        "cnnlab.sched_state", sched,
    };
    if (cl_model_save(r->m, with_state ? r->opt : NULL, path, meta, (int)(sizeof meta / sizeof *meta / 2),
                      err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        return false;
    }
    return true;
}

static long meta_long(const cl_safetensors *sf, const char *key) {
    const char *v = cl_safetensors_meta(sf, key);
    return v ? strtol(v, NULL, 10) : 0;
}

static double meta_double(const cl_safetensors *sf, const char *key) {
    const char *v = cl_safetensors_meta(sf, key);
    return v ? strtod(v, NULL) : 0;
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
    bool ok = opts && text;
    train_options_defaults(&r->o);
    if (ok) ok = train_options_read(&r->o, opts);
    if (!ok) cli_error("--resume: %s was not written by cnnlab train", path);
    else {
        snprintf(r->model_text, sizeof r->model_text, "%s", text);
        /* Options given again on the command line win (e.g. --epochs to train longer). */
        const char *pos[1];
        ok = cli_parse(&train_command, &r->o, argc, argv, pos, 1) >= 0;
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
    r->epoch = (int)meta_long(sf, "cnnlab.epoch");
    r->batch_in_epoch = (int)meta_long(sf, "cnnlab.batch");
    r->step = meta_long(sf, "cnnlab.step");
    const char *dstep = cl_safetensors_meta(sf, "cnnlab.dropout_step");
    cl_model_set_step(r->m, dstep ? (uint64_t)strtoull(dstep, NULL, 10) : 0);
    r->loss_sum = meta_double(sf, "cnnlab.train_loss_sum");
    r->correct = meta_long(sf, "cnnlab.train_correct");
    r->seen = meta_long(sf, "cnnlab.train_seen");
    r->best_acc = meta_double(sf, "cnnlab.best_acc");
    r->best_epoch = (int)meta_long(sf, "cnnlab.best_epoch");
    const char *s = cl_safetensors_meta(sf, "cnnlab.sched_state");
    int has_best = 0;
    if (s) sscanf(s, "%lf %lf %d %d %d", &r->sched.plateau_lr, &r->sched.best, &r->sched.bad_epochs,
                  &r->sched.cooldown_left, &has_best);
    r->sched.has_best = has_best;
    cl_safetensors_free(sf);
    return true;
}

/* ---- the run folder ---------------------------------------------------------------- */

static bool open_run_folder(run *r, bool resuming) {
    if (!resuming) {
        if (r->o.out[0]) {
            snprintf(r->dir, sizeof r->dir, "%s", r->o.out);
            char last[TRAIN_STR_LEN + 32];
            path_in(r, last, sizeof last, "last.safetensors");
            if (exists(last)) {
                cli_error("%s already holds a run: continue it with --resume %s, or choose another --out",
                          r->dir, r->dir);
                return false;
            }
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
    }
    char path[TRAIN_STR_LEN + 32];
    path_in(r, path, sizeof path, "log.txt");
    r->log = fopen(path, resuming ? "a" : "w");
    /* metrics.csv: on resume keep the rows of finished epochs only */
    path_in(r, path, sizeof path, "metrics.csv");
    static char keep[1 << 16];
    size_t kept = 0;
    if (resuming) {
        FILE *f = fopen(path, "r");
        char line[512];
        int rows = -1;
        while (f && fgets(line, sizeof line, f) && rows < r->epoch) {
            size_t l = strlen(line);
            if (kept + l < sizeof keep) memcpy(keep + kept, line, l), kept += l;
            rows++;
        }
        if (f) fclose(f);
    }
    r->metrics = fopen(path, "w");
    if (!r->log || !r->metrics) {
        cli_error("cannot write in %s: %s", r->dir, strerror(errno));
        return false;
    }
    if (kept)
        fwrite(keep, 1, kept, r->metrics);
    else
        fprintf(r->metrics, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds\n");
    fflush(r->metrics);
    /* The resolved configuration: the model text and every option. */
    path_in(r, path, sizeof path, "model.net");
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(r->model_text, f);
        fclose(f);
    }
    path_in(r, path, sizeof path, "config.txt");
    f = fopen(path, "w");
    if (f) {
        static char options[1 << 15];
        train_options_write(&r->o, options, sizeof options);
        fprintf(f, "# cnnlab %s: the resolved options of this run (model in model.net)\n", CNNLAB_VERSION);
        fprintf(f, "model=%s\ndataset=%s\ndataset_dir=%s\nclasses=%d\ninput=%dx%dx%d\n", r->model_path,
                r->ref.kind, r->ref.dir, r->train.classes, r->train.c, r->train.h, r->train.w);
        fprintf(f, "train_images=%d\ntest_images=%d\n", r->ntrain, r->ntest);
        for (int c = 0; c < r->train.c; c++) fprintf(f, "mean[%d]=%.6f\nstd[%d]=%.6f\n", c, r->mean[c], c, r->std[c]);
        fprintf(f, "params=%lld\n%s", (long long)cl_model_param_count(r->m), options);
        fclose(f);
    }
    return true;
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
    const cl_real *logits = cl_model_forward(r->m, x, n, train);
    if (dist_size() == 1) return logits;
    dist_gather_rows(logits, *total, r->train.classes, r->all_logits);
    dist_gather_labels(*labels, *total, r->all_labels);
    *labels = r->all_labels;
    return r->all_logits;
}

/* ---- the loop ------------------------------------------------------------------------ */

static void evaluate(run *r, double *loss, double *acc, long *correct_out, long *total_out) {
    const cl_real *x;
    const int32_t *labels;
    int n;
    double loss_sum = 0;
    long correct = 0, total = 0;
    int K = r->train.classes;
    cl_loader_start(r->test_loader, 0);
    while (cl_loader_next(r->test_loader, &x, &labels, NULL, &n)) {
        int first;
        const cl_real *logits = forward_batch(r, r->test_loader, x, n, false, &labels, &first, &n);
        loss_sum += cl_cross_entropy(logits, labels, n, K, 0, NULL) * n;
        for (int i = 0; i < n; i++) correct += cli_argmax(logits + (size_t)i * K, K) == labels[i];
        total += n;
    }
    *loss = total ? loss_sum / total : 0;
    *acc = total ? (double)correct / total : 0;
    *correct_out = correct;
    *total_out = total;
}

/* One epoch; returns 0, 1 on a NaN/Inf loss, 2 when interrupted. */
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
        if (dist_any(interrupted)) {
            progress_end(&p);
            return 2;
        }
    }
    progress_end(&p);
    return 0;
}

static void free_run(run *r) {
    cl_loader_free(r->train_loader);
    cl_loader_free(r->test_loader);
    cl_augment_free(r->aug);
    cl_optimizer_free(r->opt);
    cl_model_free(r->m);
    cl_dataset_free(&r->train);
    cl_dataset_free(&r->test);
    free(r->train_idx);
    free(r->test_idx);
    free(r->dlogits);
    free(r->all_logits);
    free(r->all_labels);
    if (r->log) fclose(r->log);
    if (r->metrics) fclose(r->metrics);
}

static int cmd_train(int argc, char **argv);

static int train_run(int argc, char **argv);

const cli_command train_command = {
    .name = "train",
    .operands = "MODEL",
    .summary = "train a model; writes a run folder with metrics, log, checkpoints and report",
    .description =
        "Trains on a dataset's training split and evaluates on its test split after\n"
        "every epoch. `cnnlab train --resume RUN_DIR [options]` continues a run (options\n"
        "given again win). Writes a run folder: config.txt, model.net, metrics.csv,\n"
        "log.txt, last and best checkpoints, and at the end the report (figures and\n"
        "report.html).",
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
    train_options cmd;
    train_options_defaults(&cmd);
    const char *pos[1] = {NULL};
    int npos = cli_parse(&train_command, &cmd, argc - 1, argv + 1, pos, 1);
    if (npos < 0) return EXIT_USAGE;
    bool resuming = cmd.resume[0] != 0;
    if (resuming) {
        if (!resume_options(&r, &cmd, argc - 1, argv + 1)) return 1;
    } else {
        if (!pos[0]) {
            usage(stderr);
            return EXIT_USAGE;
        }
        r.o = cmd;
        snprintf(r.model_path, sizeof r.model_path, "%s", pos[0]);
        if (!read_file(pos[0], r.model_text, sizeof r.model_text)) return 1;
    }
    int rc = 1;
    bool ready = resolve_defaults(&r.o) && load_data(&r) && make_loaders(&r) && build_model(&r) &&
                 train_options_schedule(&r.o, cl_loader_batches(r.train_loader), &r.sched) &&
                 (!resuming || resume_state(&r));
    /* every rank ready and alike, then the run folder (rank 0) */
    if (!dist_all_ok(ready) || !ranks_agree(&r) ||
        !dist_all_ok(dist_rank() != 0 || open_run_folder(&r, resuming)))
        goto out;

    say(&r, "%s %s: %lld parameters, %s (%d train / %d test images of %dx%dx%d, %d classes)\n",
        resuming ? "Resuming" : "Training", r.model_path, (long long)cl_model_param_count(r.m),
        r.ref.kind, r.ntrain, r.ntest, r.train.c, r.train.h, r.train.w, r.train.classes);
    say(&r, "Run folder: %s (epoch %d of %lld done)\n", r.dir, r.epoch, r.o.epochs);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint); /* what mpirun sends every rank on Ctrl-C */
    double t_start = now_seconds();
    rc = 0;
    while (r.epoch < r.o.epochs) {
        /* the rate the epoch's last step used: a run resumed after its last batch
           runs no step, and its metrics row must show the same lr */
        double t0 = now_seconds(),
               lr = cl_schedule_lr(&r.sched, r.epoch, r.batch_in_epoch > 0 ? r.step - 1 : r.step);
        int status = train_epoch(&r, &lr);
        if (status == 1) {
            char last[TRAIN_STR_LEN + 32];
            path_in(&r, last, sizeof last, "last.safetensors");
            if (exists(last))
                say(&r, "The last good checkpoint is %s (after epoch %d).\n", last, r.epoch);
            else
                say(&r, "No checkpoint was written: no epoch finished.\n");
            rc = 1;
            break;
        }
        if (status == 2) {
            /* the other ranks wait here until rank 0 has saved */
            dist_all_ok(save_checkpoint(&r, "last.safetensors", true));
            say(&r, "Interrupted: saved %s/last.safetensors at epoch %d, batch %d. Continue with "
                    "`cnnlab train --resume %s`.\n", r.dir, r.epoch + 1, r.batch_in_epoch, r.dir);
            rc = 130;
            break;
        }
        double test_loss, test_acc;
        long correct, total;
        evaluate(&r, &test_loss, &test_acc, &correct, &total);
        double secs = now_seconds() - t0;
        double train_loss = r.seen ? r.loss_sum / r.seen : 0, train_acc = r.seen ? (double)r.correct / r.seen : 0;
        say(&r, "Epoch %d/%lld: train loss %.4f, accuracy %.2f%%, lr %.4g, %.1f s\n", r.epoch + 1,
            r.o.epochs, train_loss, 100 * train_acc, lr, secs);
        say(&r, "Test set: Average loss: %.4f, Accuracy: %ld/%ld (%.2f%%)\n", test_loss, correct,
            total, 100 * test_acc);
        if (r.metrics) { /* rank 0's */
            fprintf(r.metrics, "%d,%.8g,%.6f,%.6f,%.6f,%.6f,%.2f\n", r.epoch + 1, lr, train_loss,
                    train_acc, test_loss, test_acc, secs);
            fflush(r.metrics);
        }
        cl_schedule_epoch_end(&r.sched, test_loss);
        r.epoch++;
        r.batch_in_epoch = 0;
        r.loss_sum = 0;
        r.correct = r.seen = 0;
        bool best = test_acc > r.best_acc;
        if (best) {
            r.best_acc = test_acc;
            r.best_epoch = r.epoch;
        }
        bool saved = save_checkpoint(&r, "last.safetensors", true) &&
                     (!best || save_checkpoint(&r, "best.safetensors", false));
        if (!dist_all_ok(saved)) {
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        say(&r, "Done: best test accuracy %.2f%% at epoch %d; %.1f s. Run folder: %s\n",
            100 * r.best_acc, r.best_epoch, now_seconds() - t_start, r.dir);
        long reductions;
        double wait_s, reduce_s = dist_reduce_seconds(&reductions, &wait_s);
        if (dist_size() > 1 && reductions > 0)
            say(&r, "MPI: %d ranks; per step, %.3f ms summing the gradients and %.3f ms waiting "
                    "for the slowest rank (%ld steps)\n", dist_size(), 1e3 * reduce_s / reductions,
                1e3 * wait_s / reductions, reductions);
        /* the checkpoints are safe; a report that fails can be made again. The
           training state goes first: the report needs memory of its own. */
        fflush(stdout);
        cl_loader_free(r.train_loader);
        cl_loader_free(r.test_loader);
        cl_optimizer_free(r.opt);
        cl_model_free(r.m);
        cl_dataset_free(&r.train);
        r.train_loader = r.test_loader = NULL;
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
