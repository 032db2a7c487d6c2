/* lr_find.c: `cnnlab lr-find MODEL`: the learning-rate range test of torch-lr-finder
 * (LRFinder.range_test, step_mode="exp"). A fresh model trains one batch per step at
 * learning rates rising exponentially from --start-lr to --end-lr; the smoothed loss
 * stops the test once it passes --diverge times its best; the loss-against-lr curve
 * goes to a PNG (log x axis) and a CSV, and the steepest descent of the smoothed loss
 * is the suggested --lr. The pure parts are in src/nn/lr_find.c. Nothing is saved as
 * a run. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "draw/plot.h"

/* torch-lr-finder's plot skips this many points at each end for its suggestion. */
#define SKIP_START 10
#define SKIP_END 5

typedef struct {
    char data[CLI_STR_LEN], data_dir[CLI_STR_LEN], opt[CLI_STR_LEN], aug[CLI_STR_LEN];
    char out[CLI_STR_LEN], csv[CLI_STR_LEN];
    long long batch, seed, threads, workers, train_subset, val_split, steps, init_whiten;
    float momentum, weight_decay, label_smoothing;
    double start_lr, end_lr, smooth, diverge;
    bool nesterov;
} lr_find_options;

#define F(field) offsetof(lr_find_options, field)
static const cli_option lr_find_options_table[] = {
    {"data", OPT_STR, F(data), "cifar10|cifar100|mnist|fashion-mnist|DIR", .arg = "NAME|DIR",
     .def = "cifar10"},
    {"data-dir", OPT_STR, F(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {"batch", OPT_INT, F(batch), "batch size", .def = "128", .min = 1, .max = 65536},
    {"opt", OPT_STR, F(opt), "the optimizer", .arg = "NAME", .def = "sgd",
     .choices = "sgd|adam|adamw"},
    {"momentum", OPT_FLOAT, F(momentum), "SGD momentum", .def = "0.9", .min = 0, .max = 1},
    {"nesterov", OPT_FLAG, F(nesterov), "Nesterov momentum", .def = "off"},
    {"weight-decay", OPT_FLOAT, F(weight_decay), "weight decay",
     .def = "5e-4 for sgd, 0 for adam, 0.01 for adamw", .min = 0, .max = 1e6},
    {"label-smoothing", OPT_FLOAT, F(label_smoothing), "cross-entropy label smoothing, below 1",
     .def = "0", .min = 0, .max = 1},
    {"aug", OPT_STR, F(aug), "augmentation pipeline, e.g. crop:4:reflect,hflip", .arg = "SPEC"},
    {"train-subset", OPT_INT, F(train_subset), "use the first N training images", .def = "all"},
    {"val-split", OPT_INT, F(val_split), "leave out the last N training images, as train "
     "--val-split N holds them out, so that the sweep never sees the validation set",
     .def = "0, none"},
    {"init-whiten", OPT_INT, F(init_whiten),
     "patch-whiten the first conv from the first N training images, as train does",
     .def = "0, off", .max = 1000000},
    {"seed", OPT_INT, F(seed), "random seed for initialisation, shuffling, augmentation, dropout",
     .def = "1"},
    {"threads", OPT_INT, F(threads), "compute threads", .def = "0, all cores", .min = 0,
     .max = 1024},
    {"workers", OPT_INT, F(workers), "data-loading threads", .def = "1", .min = 1, .max = 64},
    {"start-lr", OPT_DOUBLE, F(start_lr), "the first step's learning rate", .def = "1e-5",
     .min = 0, .max = 1e6, .min_open = true},
    {"end-lr", OPT_DOUBLE, F(end_lr), "the last step's learning rate (above --start-lr)",
     .def = "10", .min = 0, .max = 1e6, .min_open = true},
    {"steps", OPT_INT, F(steps), "training steps (batches) of the sweep", .def = "200", .min = 2,
     .max = 1000000},
    {"smooth", OPT_DOUBLE, F(smooth), "loss smoothing factor (torch-lr-finder's smooth_f)",
     .def = "0.05", .min = 0, .max = 1},
    {"diverge", OPT_DOUBLE, F(diverge),
     "stop when the smoothed loss passes this many times its best (diverge_th)", .def = "5",
     .min = 1, .max = 1e6},
    {"out", OPT_STR, F(out), "the loss-against-lr plot", .arg = "PNG", .def = "lr_find.png",
     .short_name = 'o'},
    {"csv", OPT_STR, F(csv), "the curve as CSV: step,lr,loss,smoothed", .arg = "FILE",
     .def = "the PNG's name with .csv"},
    {0},
};

static int cmd_lr_find(int argc, char **argv);

const cli_command lr_find_command = {
    .name = "lr-find",
    .operands = "MODEL",
    .summary = "learning-rate range test: loss against lr, and a suggested --lr",
    .description =
        "The learning-rate range test of torch-lr-finder (range_test with step_mode=exp).\n"
        "A fresh model (the model file's initialisation, --seed) trains one batch per\n"
        "step with the learning rate of step i = start * (end / start)^(i / (steps - 1)).\n"
        "The loss is smoothed (s = smooth * loss + (1 - smooth) * previous s, the first\n"
        "loss as it is) and the test stops once s passes --diverge times its lowest\n"
        "value (or is not finite). It writes the loss against the learning rate (log\n"
        "axis) to a PNG and a CSV, and prints the suggested --lr: torch-lr-finder's,\n"
        "the steepest descent of the smoothed loss, leaving out the first 10 and last 5\n"
        "steps. For --sched onecycle the maximum --lr is usually taken a few times (3 to\n"
        "10) below the learning rate where the loss diverged. Nothing is saved as a run.",
    .options = lr_find_options_table,
    .run = cmd_lr_find,
};

/* The CSV and the PNG of the n steps that ran. */
static bool write_outputs(const lr_find_options *o, const char *csv_path, const char *model,
                          const double *lr, const double *loss, const double *sm, int n,
                          int suggest) {
    cli_atomic_file a;
    FILE *f = cli_atomic_open(&a, csv_path);
    if (!f) return false;
    fprintf(f, "step,lr,loss,smoothed\n");
    for (int i = 0; i < n; i++) fprintf(f, "%d,%.9g,%.9g,%.9g\n", i, lr[i], loss[i], sm[i]);
    if (!cli_atomic_close(&a, true)) {
        cli_error("%s: could not write it", csv_path);
        return false;
    }
    /* The smoothed loss sets the y range (the raw loss at the end can be huge), up to
       1.5 times the first loss: the divergence runs off the top, the valley shows. */
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(sm[i])) {
            lo = fmin(lo, fmin(sm[i], isfinite(loss[i]) ? loss[i] : sm[i]));
            hi = fmax(hi, sm[i]);
        }
    if (n > 0 && isfinite(sm[0]) && 1.5 * sm[0] > lo) hi = fmin(hi, 1.5 * sm[0]);
    char title[CLI_STR_LEN + 64], sub[160];
    const char *base = strrchr(model, '/');
    snprintf(title, sizeof title, "lr-find: %s", base ? base + 1 : model);
    if (suggest >= 0)
        snprintf(sub, sizeof sub, "%.16s, batch %lld: suggested lr %.3g", o->opt, o->batch, lr[suggest]);
    else
        snprintf(sub, sizeof sub, "%.16s, batch %lld: no suggestion (too few steps)", o->opt, o->batch);
    double sx = suggest >= 0 ? lr[suggest] : 0, sy = suggest >= 0 ? sm[suggest] : 0;
    plot_series series[3] = {
        {.x = lr, .y = loss, .n = n, .label = "loss", .color = 7},
        {.x = lr, .y = sm, .n = n, .label = "smoothed", .color = 0},
        {.x = &sx, .y = &sy, .n = suggest >= 0, .label = "suggested lr", .color = 3, .markers = true},
    };
    plot_lines pl = {.title = sub, .xlabel = "learning rate", .ylabel = "training loss",
                     .series = series, .nseries = suggest >= 0 ? 3 : 2, .x_log = true,
                     .legend = 4};
    if (lo < hi) {
        double pad = 0.05 * (hi - lo);
        pl.has_ymin = pl.has_ymax = true;
        pl.ymin = lo - pad;
        pl.ymax = hi + pad;
    }
    char err[512];
    plot_figure *fig = plot_figure_new(1, 1, 720, 440, title);
    bool ok = fig && plot_draw_lines(fig, 0, &pl, err, sizeof err) &&
              plot_figure_write_png(fig, o->out, err, sizeof err);
    if (!ok) cli_error("%s: %s", o->out, fig ? err : "could not draw the figure");
    plot_figure_free(fig);
    return ok;
}

static int cmd_lr_find(int argc, char **argv) {
    lr_find_options o = {.batch = 128, .seed = 1, .workers = 1, .steps = 200, .momentum = 0.9f,
                         .weight_decay = NAN, .start_lr = 1e-5, .end_lr = 10, .smooth = 0.05,
                         .diverge = 5};
    snprintf(o.data, sizeof o.data, "cifar10");
    snprintf(o.opt, sizeof o.opt, "sgd");
    snprintf(o.out, sizeof o.out, "lr_find.png");
    const char *model_path = NULL;
    int np = cli_parse(&lr_find_command, &o, argc - 1, argv + 1, &model_path, 1);
    if (np < 0) return cli_parse_status(np);
    if (!model_path) {
        cli_print_usage(&lr_find_command, stderr);
        return EXIT_USAGE;
    }
    if (!(o.end_lr > o.start_lr)) {
        cli_error("--end-lr (%g) must be above --start-lr (%g)", o.end_lr, o.start_lr);
        return EXIT_USAGE;
    }
    if (o.smooth >= 1) {
        cli_error("--smooth must be below 1 (torch-lr-finder's smooth_f is in [0, 1))");
        return EXIT_USAGE;
    }
    bool sgd = !strcmp(o.opt, "sgd"), adam = !strcmp(o.opt, "adam");
    if (isnan(o.weight_decay)) o.weight_decay = sgd ? 5e-4f : adam ? 0.0f : 0.01f;
    if (sgd && o.nesterov && o.momentum <= 0) {
        cli_error("--nesterov needs --momentum > 0");
        return EXIT_USAGE;
    }
    char csv[CLI_STR_LEN + 8];
    if (o.csv[0]) {
        snprintf(csv, sizeof csv, "%s", o.csv);
    } else {
        size_t len = strlen(o.out);
        int keep = len > 4 && !strcmp(o.out + len - 4, ".png") ? (int)len - 4 : (int)len;
        snprintf(csv, sizeof csv, "%.*s.csv", keep, o.out);
    }

    char err[1024];
    cl_model *m = cl_load_model(model_path, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 1;
    cl_dataset train = {0};
    cl_augment *aug = NULL;
    cl_loader *loader = NULL;
    cl_optimizer *opt = NULL;
    int32_t *idx = NULL;
    cl_real *dlogits = NULL;
    double *lr = NULL, *loss = NULL, *sm = NULL;
    if (!cli_open_dataset(o.data, o.data_dir[0] ? o.data_dir : NULL, CL_SPLIT_TRAIN, &train))
        goto out;
    cl_shape in = cl_model_shape(m, 0), out = cl_model_shape(m, cl_model_output(m));
    if (in.c != train.c || in.h != train.h || in.w != train.w) {
        cli_error("%s takes %dx%dx%d inputs but %s images are %dx%dx%d: change its `input` line",
                  model_path, in.c, in.h, in.w, o.data, train.c, train.h, train.w);
        goto out;
    }
    if (out.c != train.classes || out.h != 1 || out.w != 1) {
        cli_error("%s outputs %dx%dx%d, but %s has %d classes: the last layer must give %dx1x1 "
                  "logits", model_path, out.c, out.h, out.w, o.data, train.classes, train.classes);
        goto out;
    }
    if (train.c > 8) {
        cli_error("images with %d channels: cnnlab handles up to 8", train.c);
        goto out;
    }
    /* normalised as train does: the training set's own statistics */
    float mean[8], std[8];
    cl_channel_stats st[8];
    cl_dataset_stats(&train, st, NULL);
    for (int c = 0; c < train.c; c++) {
        mean[c] = (float)st[c].mean;
        std[c] = st[c].std > 1e-6 ? (float)st[c].std : 1.0f;
    }
    if (o.val_split >= train.n) {
        cli_error("--val-split %lld: the training split of %s has %d images; hold out fewer",
                  o.val_split, o.data, train.n);
        rc = EXIT_USAGE;
        goto out;
    }
    int pool = train.n - (int)o.val_split;
    int ntrain = o.train_subset && o.train_subset < pool ? (int)o.train_subset : pool;
    idx = malloc((size_t)ntrain * sizeof *idx);
    aug = cl_augment_new();
    if (!idx || !aug) {
        cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < ntrain; i++) idx[i] = i;
    if (o.aug[0] && cl_augment_parse(aug, o.aug, err, sizeof err) != CL_OK) {
        cli_error("--aug: %s", err);
        rc = EXIT_USAGE;
        goto out;
    }
    cl_loader_args la = {.ds = &train, .batch = (int)o.batch, .shuffle = true,
                         .seed = (uint64_t)o.seed, .aug = aug, .mean = mean, .std = std,
                         .subset = idx, .nsubset = ntrain, .workers = (int)o.workers};
    loader = cl_loader_new(la, err, sizeof err);
    if (!loader) {
        cli_error("training data: %s", err);
        goto out;
    }
    cl_compile_args ca = {.max_batch = (int)o.batch, .threads = (int)o.threads,
                          .seed = (uint64_t)o.seed};
    if (cl_model_compile(m, ca) != CL_OK) {
        cli_error("%s", cl_model_error(m));
        goto out;
    }
    if (o.init_whiten > 0 &&
        !cli_init_whiten(m, &train, idx, o.init_whiten < ntrain ? (int)o.init_whiten : ntrain,
                         mean, std, true))
        goto out;
    cl_optim_args oa = {.lr = (float)o.start_lr, .momentum = o.momentum, .nesterov = o.nesterov,
                        .weight_decay = o.weight_decay};
    oa.kind = sgd ? CL_OPT_SGD : adam ? CL_OPT_ADAM : CL_OPT_ADAMW;
    opt = cl_optimizer_new(m, oa);
    int steps = (int)o.steps, K = train.classes;
    dlogits = malloc((size_t)o.batch * K * sizeof *dlogits);
    lr = malloc((size_t)steps * sizeof *lr);
    loss = malloc((size_t)steps * sizeof *loss);
    sm = malloc((size_t)steps * sizeof *sm);
    if (!opt || !dlogits || !lr || !loss || !sm) {
        cli_error("out of memory");
        goto out;
    }

    printf("lr-find %s: %lld parameters, %s (%d training images), %s, batch %lld; %d steps "
           "from lr %g to %g\n", model_path, (long long)cl_model_param_count(m), o.data, ntrain,
           o.opt, o.batch, steps, o.start_lr, o.end_lr);
    progress p;
    progress_start(&p, "lr-find", steps, isatty(STDOUT_FILENO));
    cl_lr_find_state state = {0};
    int n = 0, epoch = 0;
    long correct = 0, seen = 0;
    bool diverged = false;
    cl_loader_start(loader, epoch);
    while (n < steps) {
        const cl_real *x;
        const int32_t *labels;
        int bn;
        if (!cl_loader_next(loader, &x, &labels, NULL, &bn)) { /* a new pass over the data */
            cl_loader_start(loader, ++epoch);
            continue;
        }
        lr[n] = cl_lr_find_lr(o.start_lr, o.end_lr, steps, n);
        const cl_real *logits = cl_model_forward(m, x, bn, true);
        loss[n] = cl_cross_entropy(logits, labels, bn, K, o.label_smoothing, dlogits);
        for (int i = 0; i < bn; i++) correct += cli_argmax(logits + (size_t)i * K, K) == labels[i];
        seen += bn;
        if (isfinite(loss[n])) {
            cl_model_zero_grad(m);
            cl_model_backward(m, dlogits);
            cl_optimizer_step(opt, (float)lr[n]);
        }
        diverged = cl_lr_find_step(&state, loss[n], o.smooth, o.diverge, &sm[n]);
        n++;
        progress_update(&p, n, sm[n - 1], (double)correct / seen);
        if (diverged) break;
    }
    progress_end(&p);
    int suggest = cl_lr_find_suggest(sm, n, SKIP_START, SKIP_END);
    int best = 0;
    for (int i = 1; i < n; i++)
        if (sm[i] < sm[best]) best = i;
    if (diverged)
        printf("Stopped at step %d of %d: the smoothed loss %.4g passed %g x its best %.4g (at lr "
               "%.3g); the loss diverged at lr %.3g\n", n, steps, sm[n - 1], o.diverge,
               state.best, lr[best], lr[n - 1]);
    else
        printf("Ran all %d steps: the loss did not diverge up to lr %.3g (lowest smoothed loss "
               "%.4g at lr %.3g)\n", n, lr[n - 1], sm[best], lr[best]);
    if (!write_outputs(&o, csv, model_path, lr, loss, sm, n, suggest)) goto out;
    printf("Wrote %s and %s\n", o.out, csv);
    if (suggest >= 0) {
        printf("Suggested --lr %.3g (steepest descent of the smoothed loss, at step %d)\n",
               lr[suggest], suggest);
        if (diverged)
            printf("For --sched onecycle, a maximum --lr a few times below the divergence "
                   "point (%.3g to %.3g) is usual.\n", lr[n - 1] / 10, lr[n - 1] / 3);
    } else {
        printf("No suggestion: only %d steps ran, and the suggestion leaves out the first %d and "
               "last %d; raise --steps or lower --end-lr\n", n, SKIP_START, SKIP_END);
    }
    rc = 0;
out:
    cl_optimizer_free(opt);
    cl_loader_free(loader);
    cl_augment_free(aug);
    cl_model_free(m);
    cl_dataset_free(&train);
    free(idx);
    free(dlogits);
    free(lr);
    free(loss);
    free(sm);
    return rc;
}
