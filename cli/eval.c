/* eval.c: `cnnlab eval CHECKPOINT [--data NAME|DIR] ...` reports the test loss and
 * accuracy, the accuracy of every class, the confusion matrix (as text and CSV) and
 * the misclassified samples with their index, true and predicted labels and
 * confidence; and `cnnlab predict CHECKPOINT IMAGE...` gives each image's top classes
 * with their probabilities. cli_evaluate() is shared with the reports. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Softmax probabilities of one row of logits into p[K]. */
static void softmax(const cl_real *z, int K, double *p) {
    double mx = z[0], sum = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > mx) mx = z[k];
    for (int k = 0; k < K; k++) sum += p[k] = exp(z[k] - mx);
    for (int k = 0; k < K; k++) p[k] /= sum;
}

bool cli_evaluate(const cli_checkpoint *ck, const cl_dataset *ds, int batch, int limit,
                  const cl_tta *tta, cli_eval *ev) {
    memset(ev, 0, sizeof *ev);
    ev->tta.nviews = 1;
    const int K = ck->classes;
    if (ds->c != ck->input.c || ds->h != ck->input.h || ds->w != ck->input.w) {
        cli_error("the model takes %dx%dx%d images, the dataset has %dx%dx%d", ck->input.c,
                  ck->input.h, ck->input.w, ds->c, ds->h, ds->w);
        return false;
    }
    if (ds->classes != K) {
        cli_error("the model has %d classes, the dataset %d", K, ds->classes);
        return false;
    }
    int n = limit > 0 && limit < ds->n ? limit : ds->n;
    int32_t *subset = malloc((size_t)n * sizeof *subset);
    ev->pred = malloc((size_t)n * sizeof *ev->pred);
    ev->conf = malloc((size_t)n * sizeof *ev->conf);
    ev->confusion = calloc((size_t)K * K, sizeof *ev->confusion);
    double *p = malloc((size_t)K * sizeof *p);
    if (!subset || !ev->pred || !ev->conf || !ev->confusion || !p) {
        free(subset);
        free(p);
        cli_error("out of memory");
        return false;
    }
    for (int i = 0; i < n; i++) subset[i] = i;
    char err[512];
    /* test-time augmentation: its buffers planned once, for the whole evaluation */
    cl_tta_plan *plan = NULL;
    if (tta && tta->nviews > 1) {
        ev->tta = *tta;
        if (!(plan = cl_tta_plan_new(ck->m, tta, batch, err, sizeof err))) {
            free(subset);
            free(p);
            cli_error("%s", err);
            return false;
        }
    }
    cl_loader_args la = {.ds = ds, .batch = batch, .mean = ck->mean, .std = ck->std,
                         .subset = subset, .nsubset = n, .workers = 1};
    cl_loader *l = cl_loader_new(la, err, sizeof err);
    if (!l) {
        free(subset);
        free(p);
        cl_tta_plan_free(plan);
        cli_error("%s", err);
        return false;
    }
    cl_loader_start(l, 0);
    const cl_real *x;
    const int32_t *labels, *idx;
    int bn;
    double loss_sum = 0;
    while (cl_loader_next(l, &x, &labels, &idx, &bn)) {
        const cl_real *logits = plan ? cl_tta_forward(plan, x, bn) : cl_model_forward(ck->m, x, bn, false);
        if (!logits) {
            cli_error("evaluation: %s", cl_model_error(ck->m));
            cl_loader_free(l);
            free(subset);
            free(p);
            cl_tta_plan_free(plan);
            return false;
        }
        loss_sum += cl_cross_entropy(logits, labels, bn, K, 0, NULL) * bn;
        for (int i = 0; i < bn; i++) {
            softmax(logits + (size_t)i * K, K, p);
            int best = cli_argmax(logits + (size_t)i * K, K);
            ev->pred[idx[i]] = best;
            ev->conf[idx[i]] = (float)p[best];
            ev->confusion[labels[i] * K + best]++;
            ev->correct += best == labels[i];
        }
    }
    cl_loader_free(l);
    free(subset);
    free(p);
    cl_tta_plan_free(plan);
    ev->n = n;
    ev->loss = loss_sum / n;
    return true;
}

void cli_eval_free(cli_eval *ev) {
    free(ev->pred);
    free(ev->conf);
    free(ev->confusion);
    memset(ev, 0, sizeof *ev);
}

typedef struct {
    float conf;
    int32_t index;
} ranked;

/* Most confident first; ties by index, so the order is deterministic. */
static int by_confidence(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->conf != y->conf) return x->conf > y->conf ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int cli_misclassified(const cli_eval *ev, const cl_dataset *ds, int32_t **out) {
    ranked *r = malloc((size_t)(ev->n - ev->correct + 1) * sizeof *r);
    int32_t *idx = malloc((size_t)(ev->n - ev->correct + 1) * sizeof *idx);
    int m = 0;
    if (!r || !idx) {
        free(r);
        free(idx);
        *out = NULL;
        return 0;
    }
    for (int i = 0; i < ev->n; i++)
        if (ev->pred[i] != ds->labels[i]) r[m++] = (ranked){ev->conf[i], i};
    qsort(r, (size_t)m, sizeof *r, by_confidence);
    for (int k = 0; k < m; k++) idx[k] = r[k].index;
    free(r);
    *out = idx;
    return m;
}

/* CSV-safe class name: commas and quotes would break a column. */
static void csv_name(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

bool cli_write_per_class_csv(const char *path, const cli_checkpoint *ck, const cli_eval *ev) {
    const int K = ck->classes;
    cli_atomic_file a;
    FILE *f = cli_atomic_open(&a, path);
    if (!f) return false;
    fprintf(f, "class,name,correct,total,accuracy\n");
    for (int t = 0; t < K; t++) {
        long total = 0;
        for (int k = 0; k < K; k++) total += ev->confusion[t * K + k];
        fprintf(f, "%d,", t);
        csv_name(f, ck->class_names[t]);
        fprintf(f, ",%ld,%ld,%.6f\n", ev->confusion[t * K + t], total,
                total ? (double)ev->confusion[t * K + t] / total : 0.0);
    }
    return cli_atomic_close(&a, true);
}

/* base: the split index of ds's first image (the validation images sit at the end of
 * the training split) */
static bool write_eval_csvs(const char *dir, const cli_checkpoint *ck, const cl_dataset *ds,
                            int base, const cli_eval *ev, const int32_t *mis, int nmis) {
    const int K = ck->classes;
    char path[4200];
    cli_atomic_file a;
    snprintf(path, sizeof path, "%s/eval_confusion.csv", dir);
    FILE *f = cli_atomic_open(&a, path);
    if (!f) return false;
    fprintf(f, "true\\predicted");
    for (int k = 0; k < K; k++) fputc(',', f), csv_name(f, ck->class_names[k]);
    fputc('\n', f);
    for (int t = 0; t < K; t++) {
        csv_name(f, ck->class_names[t]);
        for (int k = 0; k < K; k++) fprintf(f, ",%ld", ev->confusion[t * K + k]);
        fputc('\n', f);
    }
    if (!cli_atomic_close(&a, true)) return false;
    snprintf(path, sizeof path, "%s/eval_per_class.csv", dir);
    if (!cli_write_per_class_csv(path, ck, ev)) return false;
    snprintf(path, sizeof path, "%s/eval_misclassified.csv", dir);
    if (!(f = cli_atomic_open(&a, path))) return false;
    fprintf(f, "index,true,true_name,predicted,predicted_name,confidence\n");
    for (int k = 0; k < nmis; k++) {
        int i = mis[k];
        fprintf(f, "%d,%d,", base + i, ds->labels[i]);
        csv_name(f, ck->class_names[ds->labels[i]]);
        fprintf(f, ",%d,", ev->pred[i]);
        csv_name(f, ck->class_names[ev->pred[i]]);
        fprintf(f, ",%.6f\n", ev->conf[i]);
    }
    return cli_atomic_close(&a, true);
}

/* The first n images of ds as float32 NCHW pixels on the 0..1 scale, and the model's
 * logits for them (either path may be NULL). */
static bool dump_pixels_logits(const cli_checkpoint *ck, const cl_dataset *ds, int n, int batch,
                               const char *pixels_path, const char *logits_path) {
    const int C = ds->c, K = ck->classes;
    const size_t npix = (size_t)ds->h * ds->w, size = npix * C;
    cl_real *x = malloc((size_t)batch * size * sizeof *x);
    float *px = malloc(size * sizeof *px), *lg = malloc((size_t)K * sizeof *lg);
    FILE *fp = pixels_path ? fopen(pixels_path, "wb") : NULL;
    FILE *fl = logits_path ? fopen(logits_path, "wb") : NULL;
    bool ok = x && px && lg && (!pixels_path || fp) && (!logits_path || fl);
    if (pixels_path && !fp) cli_error("%s: cannot write: %s", pixels_path, strerror(errno));
    else if (logits_path && !fl) cli_error("%s: cannot write: %s", logits_path, strerror(errno));
    else if (!ok) cli_error("out of memory");
    bool opened = ok;
    for (int i0 = 0; ok && i0 < n; i0 += batch) {
        int bn = n - i0 < batch ? n - i0 : batch;
        for (int i = 0; i < bn; i++) {
            const uint8_t *img = ds->images + (size_t)(i0 + i) * size;
            cli_normalise(ck, img, npix, x + (size_t)i * size);
            for (int c = 0; c < C; c++)
                for (size_t p = 0; p < npix; p++) px[c * npix + p] = img[p * C + c] / 255.0f;
            if (fp && fwrite(px, sizeof *px, size, fp) != size) ok = false;
        }
        const cl_real *logits = cl_model_forward(ck->m, x, bn, false);
        for (int i = 0; fl && ok && i < bn; i++) {
            for (int k = 0; k < K; k++) lg[k] = (float)logits[(size_t)i * K + k];
            if (fwrite(lg, sizeof *lg, (size_t)K, fl) != (size_t)K) ok = false;
        }
    }
    if (fp && fclose(fp) != 0) ok = false;
    if (fl && fclose(fl) != 0) ok = false;
    if (opened && !ok) cli_error("writing %s failed", pixels_path ? pixels_path : logits_path);
    free(x);
    free(px);
    free(lg);
    return ok;
}

/* --weights raw: load the checkpoint again with an optimizer like its run's, whose
 * state keeps the trained weights under the moving average, and put them in the model. */
static bool use_raw_weights(const char *path, cli_checkpoint *ck) {
    char err[1024];
    if (!(ck->options.ema > 0)) {
        cli_error("eval --weights raw: %s comes from a run without --ema, so its weights are the "
                  "raw weights; leave --weights out", path);
        return false;
    }
    cl_safetensors *sf = cl_safetensors_read(path, err, sizeof err);
    bool kept = sf && cl_safetensors_find(sf, "optimizer.ema_other");
    cl_safetensors_free(sf);
    if (!kept) {
        cli_error("eval --weights raw: %s holds the moving average only; the `last` checkpoint of "
                  "the run keeps the raw weights too", path);
        return false;
    }
    cl_optimizer *opt = cl_optimizer_new(ck->m, train_options_optim_args(&ck->options));
    if (!opt) {
        cli_error("out of memory");
        return false;
    }
    bool ok = cl_model_load(ck->m, opt, path, err, sizeof err) == CL_OK;
    if (!ok) cli_error("eval --weights raw: %s", err);
    else if (cl_optimizer_average_in_model(opt)) cl_optimizer_swap_average(opt);
    cl_optimizer_free(opt);
    return ok;
}

typedef struct {
    const char *data, *data_dir, *out, *pixels, *logits, *tta, *split, *weights;
    long long batch, threads, show, test_subset, calib;
    bool int8;
} eval_options;

#define E(field) offsetof(eval_options, field)

static const cli_option eval_options_table[] = {
    {"data", OPT_TEXT, E(data), "the dataset whose test split to use", .arg = "NAME|DIR",
     .def = "the checkpoint's"},
    {"data-dir", OPT_TEXT, E(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {"batch", OPT_INT, E(batch), "batch size", .def = "100", .min = 1, .max = 65536},
    {"threads", OPT_INT, E(threads), "compute threads", .def = "0, all cores", .min = 0,
     .max = 1024},
    {"show", OPT_INT, E(show), "print the N most confident mistakes", .def = "10", .min = 0,
     .max = 1000000},
    {"out", OPT_TEXT, E(out), "folder for the CSV files", .arg = "DIR",
     .def = "the checkpoint's folder"},
    {"test-subset", OPT_INT, E(test_subset), "evaluate on the first N test images", .def = "0, all",
     .min = 0, .max = 2000000000},
    {"pixels", OPT_TEXT, E(pixels),
     "write the evaluated images as raw float32 NCHW, 0..1 scale (an export's input)",
     .arg = "FILE"},
    {"logits", OPT_TEXT, E(logits), "write the model's raw float32 logits [N][classes] for them",
     .arg = "FILE"},
    {"int8", OPT_FLAG, E(int8), "compare the exported float32 network with its int8 "
     "quantization instead (docs/deploy.md)", .def = "off"},
    {"calib", OPT_INT, E(calib), "--int8: calibrate on N training images", .def = "1000",
     .min = 1, .max = 1000000},
    {"tta", OPT_TEXT, E(tta), "test-time augmentation: mean logits over views, flip and/or "
     "translate:N (flip is meant for CIFAR-like data, not digits), or none", .arg = "SPEC",
     .def = "the run's --tta"},
    {"split", OPT_TEXT, E(split), "test: the test split; val: the run's --val-split images "
     "(the last N of the training split), to choose a recipe without the test set",
     .def = "test", .choices = "test|val"},
    {"weights", OPT_TEXT, E(weights), "average: the weights the checkpoint holds (with --ema, "
     "the moving average); raw: the trained weights under the average (a `last` checkpoint "
     "of an --ema run)", .def = "average", .choices = "average|raw"},
    {0},
};

static int cmd_eval(int argc, char **argv);

const cli_command eval_command = {
    .name = "eval",
    .operands = "CHECKPOINT",
    .summary = "test loss and accuracy, per-class accuracy, confusion matrix, mistakes",
    .description =
        "Evaluates a checkpoint written by train on a test split (default: the dataset\n"
        "it was trained on): the loss and accuracy, the accuracy of every class, the\n"
        "confusion matrix and the most confidently misclassified images. Writes\n"
        "eval_confusion.csv, eval_per_class.csv and eval_misclassified.csv into --out.\n"
        "--pixels and --logits write the evaluated images and the model's logits as raw\n"
        "float32, to compare a deployment (an ONNX export) with cnnlab.\n"
        "With --int8 it instead measures the exported network (cnnlab export --format c)\n"
        "in float32 and in int8, calibrated on --calib training images, on the test split.\n"
        "--tta flip,translate:2 predicts from the mean of the logits over the image, its\n"
        "shifts by (-2,-2) and (+2,+2) pixels (reflect padding) and their mirror images\n"
        "(docs/analysis.md); --pixels and --logits stay the network's own, without TTA.\n"
        "--split val and --weights raw measure a run's choices on its validation images:\n"
        "with TTA or without, with the moving average (--ema) or without (docs/accuracy.md).",
    .options = eval_options_table,
    .run = cmd_eval,
};

static int cmd_eval(int argc, char **argv) {
    eval_options o = {.batch = 100, .threads = 0, .show = 10, .calib = 1000};
    const char *path = NULL;
    int n = cli_parse(&eval_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (!path) {
        cli_print_usage(&eval_command, stderr);
        return EXIT_USAGE;
    }
    const char *data = o.data, *data_dir = o.data_dir, *out = o.out;
    long long batch = o.batch, threads = o.threads, show = o.show;
    /* The output folder must exist before the evaluation, not only when it is written. */
    struct stat sb;
    if (out && (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(out, W_OK) != 0)) {
        cli_error("eval --out %s: %s", out,
                  stat(out, &sb) != 0 ? "no such folder (create it first)"
                  : !S_ISDIR(sb.st_mode) ? "not a folder" : "the folder is not writable");
        return 1;
    }
    cl_tta tta = {.nviews = 1};
    if (o.tta && !cli_parse_tta("eval --tta", o.tta, &tta)) return EXIT_USAGE;
    if (o.tta && o.int8 && tta.nviews > 1) {
        cli_error("eval --int8 measures the exported network without test-time augmentation: "
                  "leave --tta out (or give --tta none)");
        return EXIT_USAGE;
    }
    const bool val = o.split && !strcmp(o.split, "val"), raw = o.weights && !strcmp(o.weights, "raw");
    if ((val || raw) && o.int8) {
        cli_error("eval --int8 measures the checkpoint's weights on the test split: leave out "
                  "--split and --weights");
        return EXIT_USAGE;
    }
    if (val && data) {
        cli_error("eval --split val: the validation images are the run's own (the end of its "
                  "training split); leave out --data");
        return EXIT_USAGE;
    }
    cli_checkpoint ck;
    if (!cli_open_checkpoint(path, (cl_compile_args){.max_batch = (int)batch, .threads = (int)threads}, &ck)) return 1;
    if (raw && !use_raw_weights(path, &ck)) {
        cli_close_checkpoint(&ck);
        return 1;
    }
    if (val && ck.options.val_split <= 0) {
        cli_error("eval --split val: the run of %s held out no validation images (train "
                  "--val-split N)", path);
        cli_close_checkpoint(&ck);
        return 1;
    }
    /* by default the TTA the run was trained (and tested) with */
    if (!o.tta && ck.options.tta[0] && !o.int8 &&
        !cli_parse_tta("the checkpoint's tta option", ck.options.tta, &tta)) {
        cli_close_checkpoint(&ck);
        return 1;
    }
    cl_dataset full = {0}, ds;
    cli_dataset_ref ref;
    if (!data) data = ck.options.data;
    if (!data_dir && ck.options.data_dir[0]) data_dir = ck.options.data_dir;
    cli_image_size rs = {ck.input.h, ck.input.w};
    cli_eval ev = {0};
    int32_t *mis = NULL;
    int rc = 1;
    if (!cli_resolve_dataset(data, data_dir, &ref) ||
        !cli_load_dataset(&ref, val ? CL_SPLIT_TRAIN : CL_SPLIT_TEST, &rs, &full))
        goto done;
    /* --split val: a view of the last val_split training images, as train held them out */
    ds = full;
    int base = 0;
    if (val) {
        if (ck.options.val_split >= full.n) {
            cli_error("eval --split val: the run held out %lld images, but the training split of %s "
                      "has %d", ck.options.val_split, data, full.n);
            goto done;
        }
        base = full.n - (int)ck.options.val_split;
        ds.n = (int)ck.options.val_split;
        ds.images += (size_t)base * ds.c * ds.h * ds.w;
        ds.labels += base;
    }
    if (o.int8) {
        rc = cli_eval_int8(&ck, &ds, (int)o.test_subset, o.data, o.data_dir, (int)o.calib,
                           (int)threads);
        goto done;
    }
    if (!cli_evaluate(&ck, &ds, (int)batch, (int)o.test_subset, &tta, &ev)) goto done;
    if ((o.pixels || o.logits) && !dump_pixels_logits(&ck, &ds, ev.n, (int)batch, o.pixels, o.logits))
        goto done;
    const int K = ck.classes;
    printf("Checkpoint: %s (%lld parameters%s); ", path, (long long)cl_model_param_count(ck.m),
           raw ? ", the raw weights under the moving average"
           : ck.options.ema > 0 ? ", the moving average of the weights" : "");
    if (val)
        printf("validation images %d-%d of the training split of %s: %d images\n", base,
               base + ev.n - 1, data, ev.n);
    else
        printf("test split of %s: %d images\n", data, ev.n);
    if (tta.nviews > 1) {
        char note[512];
        printf("%s\n", cli_tta_note(&tta, note, sizeof note));
    }
    printf("%s set: Average loss: %.4f, Accuracy: %ld/%d (%.2f%%)\n\n", val ? "Validation" : "Test",
           ev.loss, ev.correct, ev.n,
           100.0 * ev.correct / ev.n);
    printf("Per-class accuracy:\n");
    for (int t = 0; t < K; t++) {
        long total = 0;
        for (int k = 0; k < K; k++) total += ev.confusion[t * K + k];
        printf("  %-14s %6.2f%%  (%ld/%ld)\n", ck.class_names[t],
               total ? 100.0 * ev.confusion[t * K + t] / total : 0.0, ev.confusion[t * K + t], total);
    }
    if (K <= 20) {
        printf("\nConfusion matrix (rows: true class, columns: predicted):\n%14s", "");
        for (int k = 0; k < K; k++) printf(" %6.6s", ck.class_names[k]);
        printf("\n");
        for (int t = 0; t < K; t++) {
            printf("  %-12.12s", ck.class_names[t]);
            for (int k = 0; k < K; k++) printf(" %6ld", ev.confusion[t * K + k]);
            printf("\n");
        }
    }
    int nmis = cli_misclassified(&ev, &ds, &mis);
    printf("\nMisclassified: %d images", nmis);
    if (show > 0 && nmis > 0) {
        printf("; the %d most confident:\n  %7s  %-14s %-14s %s\n", nmis < show ? nmis : (int)show,
               "index", "true", "predicted", "confidence");
        for (int k = 0; k < nmis && k < show; k++) {
            int i = mis[k];
            printf("  %7d  %-14s %-14s %.3f\n", base + i, ck.class_names[ds.labels[i]],
                   ck.class_names[ev.pred[i]], ev.conf[i]);
        }
    } else {
        printf("\n");
    }
    char dir[4096];
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    if (!write_eval_csvs(dir, &ck, &ds, base, &ev, mis, nmis)) goto done;
    printf("\nWrote %s/eval_confusion.csv, eval_per_class.csv and eval_misclassified.csv\n", dir);
    rc = 0;
done:
    free(mis);
    cli_eval_free(&ev);
    cl_dataset_free(&full);
    cli_close_checkpoint(&ck);
    return rc;
}

typedef struct {
    long long top;
} predict_options;

static const cli_option predict_options_table[] = {
    {"top", OPT_INT, offsetof(predict_options, top), "classes shown per image", .arg = "K",
     .def = "3", .min = 1, .max = 100000},
    {0},
};

static int cmd_predict(int argc, char **argv);

const cli_command predict_command = {
    .name = "predict",
    .operands = "CHECKPOINT IMAGE...",
    .summary = "the top classes of PNG or JPEG images with their probabilities",
    .description =
        "Prints the top K classes of each PNG or JPEG image with their probabilities;\n"
        "images are resized (bilinear) to the model's input and normalised as in\n"
        "training.",
    .options = predict_options_table,
    .run = cmd_predict,
};

static int cmd_predict(int argc, char **argv) {
    predict_options o = {.top = 3};
    const char **operands = calloc((size_t)argc, sizeof *operands);
    if (!operands) {
        cli_error("out of memory");
        return 1;
    }
    int n = cli_parse(&predict_command, &o, argc - 1, argv + 1, operands, argc);
    if (n < 0) {
        free(operands);
        return cli_parse_status(n);
    }
    if (n < 2) {
        cli_print_usage(&predict_command, stderr);
        free(operands);
        return EXIT_USAGE;
    }
    const char *path = operands[0], **images = operands + 1;
    int nimages = n - 1;
    long long top = o.top;
    cli_checkpoint ck;
    if (!cli_open_checkpoint(path, (cl_compile_args){.max_batch = 1, .threads = 1}, &ck)) {
        free(operands);
        return 1;
    }
    const int K = ck.classes;
    size_t npix = (size_t)ck.input.h * ck.input.w;
    cl_real *x = malloc(npix * ck.input.c * sizeof *x);
    double *p = malloc((size_t)K * sizeof *p);
    int *order = malloc((size_t)K * sizeof *order);
    int rc = x && p && order ? 0 : 1, failed = 0;
    if (rc) cli_error("out of memory");
    for (int i = 0; rc == 0 && i < nimages; i++) {
        uint8_t *img;
        char err[1024];
        /* A bad image is reported and skipped; the others are still predicted. */
        if (cl_load_image(images[i], ck.input.c, ck.input.h, ck.input.w, &img, err, sizeof err) != CL_OK) {
            cli_error("%s", err);
            failed++;
            continue;
        }
        cli_normalise(&ck, img, npix, x);
        free(img);
        const cl_real *logits = cl_model_forward(ck.m, x, 1, false);
        softmax(logits, K, p);
        for (int k = 0; k < K; k++) order[k] = k;
        for (int a = 0; a < K; a++) /* partial selection: the top entries first */
            for (int b = a + 1; b < K && a < top; b++)
                if (p[order[b]] > p[order[a]]) {
                    int t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
        printf("%s:", images[i]);
        for (int k = 0; k < top && k < K; k++)
            printf("%s %s %.4f", k ? "," : "", ck.class_names[order[k]], p[order[k]]);
        printf("\n");
    }
    if (failed) {
        cli_error("predict: %d of %d images could not be read (see above)", failed, nimages);
        rc = 1;
    }
    free(x);
    free(p);
    free(order);
    free(operands);
    cli_close_checkpoint(&ck);
    return rc;
}
