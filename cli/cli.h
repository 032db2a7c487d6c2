/* cli.h: shared pieces of the cnnlab command-line program: the subcommand entry
 * points and small argument-parsing helpers. Only the CLI prints and exits. */
#ifndef CNNLAB_CLI_H
#define CNNLAB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "cnnlab.h"

/* Exit codes: 0 success, 1 failure (bad model, over budget, I/O), 2 bad usage. */
enum { EXIT_USAGE = 2 };

int cmd_summary(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_augment_preview(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `cnnlab export --format c` (export_c.c); cmd_export dispatches to it. */
int cmd_export_c(int argc, char **argv);

/* ---- training options (options.c) ---- */

#define TRAIN_STR_LEN 1024

/* Every option of `cnnlab train`; written into each run folder and read back by
 * --resume. Floats left NAN take a default that depends on the optimizer. */
typedef struct {
    char data[TRAIN_STR_LEN], data_dir[TRAIN_STR_LEN], out[TRAIN_STR_LEN];
    char opt[TRAIN_STR_LEN], sched[TRAIN_STR_LEN], aug[TRAIN_STR_LEN], resize[TRAIN_STR_LEN];
    char resume[TRAIN_STR_LEN], init[TRAIN_STR_LEN];
    long long epochs, batch, seed, threads, workers, step_size, t_max, patience;
    long long train_subset, test_subset;
    float lr, momentum, weight_decay, label_smoothing, gamma, pct_start, div_factor;
    float final_div_factor, eta_min, factor, min_lr;
    bool nesterov, no_cycle_momentum;
    int milestones[CL_MAX_MILESTONES], nmilestones;
} train_options;

void train_options_defaults(train_options *o);
/* Set one option by name (without the dashes); value NULL for a flag. Prints errors. */
bool train_option_set(train_options *o, const char *name, const char *value, bool *used_value);
/* Parse --key value / --key=value / flags; positional arguments go to positional.
 * Returns the number of positional arguments, or -1 after printing an error. */
int train_options_parse(train_options *o, int argc, char **argv, const char **positional,
                        int max_positional);
void train_options_print_help(FILE *f);
/* Write the options as "key=value" lines (resume and init left out); read them back. */
size_t train_options_write(const train_options *o, char *buf, size_t len);
bool train_options_read(train_options *o, const char *text);
/* The learning-rate schedule these (resolved) options describe, for `batches` steps
 * per epoch. Prints the error on a bad combination. */
bool train_options_schedule(const train_options *o, int batches, cl_schedule *s);

/* ---- checkpoints (checkpoint.c) ---- */

/* A trained model opened from a checkpoint written by `cnnlab train`. */
typedef struct {
    cl_model *m;
    cl_shape input;
    int classes;
    char **class_names;
    float mean[8], std[8];
    char dataset[64];       /* the kind it was trained on */
    train_options options;  /* the options of its run */
} cli_checkpoint;

/* Rebuild the model from the checkpoint's metadata, compile it with ca (batch size,
 * threads, kept gradients; the seed does not matter) and load its weights. Prints
 * the error on failure. */
bool cli_open_checkpoint(const char *path, cl_compile_args ca, cli_checkpoint *ck);
void cli_close_checkpoint(cli_checkpoint *ck);
/* uint8 [npix][C] -> normalised model input, as training did. */
void cli_normalise(const cli_checkpoint *ck, const uint8_t *img, size_t npix, cl_real *out);

/* ---- evaluation (eval.c) ---- */

typedef struct {
    int n;            /* samples evaluated (the first n of the dataset) */
    long correct;
    double loss;      /* mean cross entropy */
    int32_t *pred;    /* [n] predicted class */
    float *conf;      /* [n] its softmax probability */
    long *confusion;  /* [classes][classes]: true x predicted */
} cli_eval;

/* Evaluate the first `limit` samples (0: all) of ds in eval mode. */
bool cli_evaluate(const cli_checkpoint *ck, const cl_dataset *ds, int batch, int limit,
                  cli_eval *ev);
void cli_eval_free(cli_eval *ev);
/* `cnnlab eval --int8` (export_c.c): the float32 and int8 accuracies of the exported
 * network on the first `limit` test images (0: all), the int8 one calibrated on
 * `calib` training images of data (NULL: the checkpoint's). Returns the exit code. */
int cli_eval_int8(const cli_checkpoint *ck, const cl_dataset *test, int limit, const char *data,
                  const char *data_dir, int calib, int threads);
/* The misclassified indices, most confident first (malloc'ed); returns the count. */
int cli_misclassified(const cli_eval *ev, const cl_dataset *ds, int32_t **out);

/* ---- run folders, reports and comparisons (runs.c, report.c, compare.c) ---- */

/* metrics.csv of a run: one entry per finished epoch. */
typedef struct {
    int n;
    double *epoch, *lr, *train_loss, *train_acc, *test_loss, *test_acc, *seconds;
} cli_metrics;

/* Read RUN/metrics.csv. Prints the error (file:line) on failure. */
bool cli_read_metrics(const char *run_dir, cli_metrics *m);
void cli_metrics_free(cli_metrics *m);
/* The value of "key=" in RUN/config.txt (into buf), or false if absent. */
bool cli_run_config(const char *run_dir, const char *key, char *buf, size_t len);
/* A text file written atomically: cli_atomic_open creates PATH.tmp (NULL after
 * printing the error); cli_atomic_close closes it and, when keep is true and every
 * write succeeded, renames it to PATH, else removes it. True when PATH was written. */
typedef struct {
    FILE *f;
    char path[4096], tmp[4104];
} cli_atomic_file;
FILE *cli_atomic_open(cli_atomic_file *a, const char *path);
bool cli_atomic_close(cli_atomic_file *a, bool keep);
/* The per-class accuracies of an evaluation as CSV (class,name,correct,total,
 * accuracy), written atomically; eval and report both write it. */
bool cli_write_per_class_csv(const char *path, const cli_checkpoint *ck, const cli_eval *ev);
/* mkdir -p; false with errno set on failure. */
bool cli_mkdirs(const char *path);
/* Read a whole small text file (malloc'ed, NUL-terminated); NULL after printing
 * the error. */
char *cli_read_text(const char *path, size_t max_bytes);

typedef struct {
    const char *data, *data_dir; /* override the run's dataset (NULL: the run's own) */
    int threads;                 /* 0: all cores */
    int show;                    /* misclassified images drawn (and explained by Grad-CAM) */
    const cl_dataset *test;      /* the test split already in memory, or NULL to load it */
    bool quiet;                  /* no "Wrote ..." lines */
} cli_report_args;

/* Write the figures (curves.png, lr.png, per_class.png, confusion.png,
 * misclassified.png, gradcam.png), per_class.csv and the self-contained
 * report.html into the run folder, from metrics.csv and the best checkpoint
 * (last.safetensors when no best exists). Prints the error on failure. */
bool cli_write_report(const char *run_dir, const cli_report_args *a);

/* HTML pieces (runs.c): a page with its style sheet, escaped text, a PNG embedded
 * as a data: URI (false after printing the error if it cannot be read). */
void html_begin(FILE *f, const char *title);
void html_end(FILE *f);
void html_text(FILE *f, const char *s);
bool html_png(FILE *f, const char *path, const char *alt);

/* ---- console (progress.c) ---- */

typedef struct {
    bool tty;
    double t0, last_draw;
    int total, next_log;
    char prefix[64];
} progress;

double now_seconds(void);
void progress_start(progress *p, const char *prefix, int total, bool tty);
void progress_update(progress *p, int done, double loss, double acc);
void progress_end(progress *p);

/* ---- datasets (data.c) ---- */

/* A dataset found on disk: its kind ("cifar10", "cifar100", "mnist",
 * "fashion-mnist" or "folder") and the folder that holds it. */
typedef struct {
    char kind[32];
    char dir[4096];
} cli_dataset_ref;

typedef struct {
    int h, w;
} cli_image_size;

/* Find a dataset by name (searching --data-dir DIR, $CNNLAB_DATA, ./data,
 * ../shared/data) or recognise a folder. Prints what to put where on failure. */
bool cli_resolve_dataset(const char *name, const char *data_dir, cli_dataset_ref *ref);
/* Load one split; image folders may be resized (resize NULL or 0x0: no resize).
 * Prints the error on failure. */
bool cli_load_dataset(const cli_dataset_ref *ref, cl_split split, const cli_image_size *resize,
                      cl_dataset *ds);
/* Both steps at once. */
bool cli_open_dataset(const char *name, const char *data_dir, cl_split split, cl_dataset *ds);

/* Print "cnnlab: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "CxHxW". */
bool cli_parse_shape(const char *s, cl_shape *out);
/* Parse a non-negative integer, allowing "_" or "," as thousands separators. */
bool cli_parse_count(const char *s, long long *out);

#endif
