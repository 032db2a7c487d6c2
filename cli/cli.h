/* cli.h: shared pieces of the cnnlab command-line program: the commands and their
 * option tables, the option parser, and the helpers the commands share. Only the
 * CLI prints and exits. */
#ifndef CNNLAB_CLI_H
#define CNNLAB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "cnnlab.h"

/* Exit codes: 0 success, 1 failure (bad model, over budget, I/O), 2 bad usage. */
enum { EXIT_USAGE = 2 };

/* ---- commands and their options (args.c, commands.c, help.c) ----
 *
 * Every command is one table of options and one function. To add a command `foo`:
 *   1. write cli/foo.c with a struct of its options, a `static const cli_option
 *      foo_options[]` table (one row per option: name, kind, field offset, help,
 *      then designated extras: .arg, .def, .min/.max; give at least one of them,
 *      e.g. `.def = "off"` for a flag, or -Wextra warns of missing initializers),
 *      ending with an empty row {0}; the function `static int cmd_foo(int argc,
 *      char **argv)`, which starts with
 *          foo_opts o = {defaults};
 *          const char *operands[N];
 *          int n = cli_parse(&foo_command, &o, argc - 1, argv + 1, operands, N);
 *          if (n < 0) return cli_parse_status(n);   (0 after --help, else 2)
 *      and `const cli_command foo_command = {.name, .operands, .summary,
 *      .description, .options, .run = cmd_foo}`;
 *   2. declare `extern const cli_command foo_command;` below;
 *   3. add `&foo_command` to the list in cli/commands.c.
 * `cnnlab foo --help`, `cnnlab help --man`, `cnnlab help --bash-completion` and the
 * option checks of tests/test_options.sh then all include it; describe it in the
 * README's command reference under a heading "### `cnnlab foo ...`" (the test
 * checks that every option of the table is mentioned in that section).
 * To add an option, add a row to the command's table (and its field). */

typedef enum {
    OPT_STR,    /* char[CLI_STR_LEN], copied */
    OPT_TEXT,   /* const char *, pointing into argv */
    OPT_INT,    /* long long: a whole number; "_" and "," may separate thousands */
    OPT_FLOAT,  /* float */
    OPT_DOUBLE, /* double */
    OPT_FLAG,   /* bool; true when given ("--name=0" sets it false) */
    OPT_LIST,   /* int[max_items], count in the int at count_offset: "10,15" */
    OPT_SHAPE,  /* cl_shape: "CxHxW" (c == 0 while not given) */
} opt_kind;

#define CLI_STR_LEN 1024

/* One option of a command. Rows use positional name, kind, offset, help; the rest
 * by designated initializer. */
typedef struct {
    const char *name;  /* without the dashes */
    opt_kind kind;
    size_t offset;     /* of its field in the command's options struct */
    const char *help;  /* one line, without the default and the range */
    const char *arg;   /* the value's name in --help (default by kind: S, N, X, LIST, CxHxW) */
    const char *def;   /* the default as --help shows it, or NULL */
    /* OPT_INT, OPT_FLOAT, OPT_DOUBLE: the allowed range [min, max] ((min, max] when
     * min_open). Both 0: OPT_INT allows 0 .. 2,000,000,000, the others any finite
     * number. */
    double min, max;
    bool min_open;
    const char *choices; /* OPT_STR, OPT_TEXT: the only values allowed, "a|b|c", or NULL */
    char short_name;     /* also accepted as "-x VALUE", or 0 */
    size_t count_offset; /* OPT_LIST: of the int that receives the count */
    int max_items;       /* OPT_LIST: capacity */
} cli_option;

typedef struct {
    const char *name;        /* as typed: "augment-preview" */
    const char *operands;    /* after the name in the synopsis: "MODEL", "RUN..." */
    const char *summary;     /* one line for the command list */
    const char *description; /* paragraphs for --help and the man page ('\n' breaks) */
    const cli_option *options; /* ends with a row whose name is NULL */
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} cli_command;

/* The commands in the order `cnnlab help` lists them (commands.c). */
extern const cli_command *const cli_commands[];
extern const int cli_ncommands;

extern const cli_command summary_command, train_command, bench_command, eval_command,
    stats_command, augment_preview_command, predict_command, fetch_command, report_command,
    compare_command, export_command, import_command, lr_find_command;

/* What cli_parse returns instead of an operand count. */
enum { CLI_PARSE_ERROR = -1, CLI_PARSE_HELP = -2 };

/* Parse args (the words after the command's name) into opts: --name VALUE,
 * --name=VALUE, flags, and -h/--help (prints the help to stdout and returns
 * CLI_PARSE_HELP). Operands go, in order, into operands[0 .. max_operands).
 * Returns their count, or CLI_PARSE_ERROR after printing the error (naming the
 * option and, for a value out of range, the range) and the usage line. */
int cli_parse(const cli_command *c, void *opts, int nargs, char **args, const char **operands,
              int max_operands);
/* The exit status for a cli_parse result below 0: 0 after --help, else 2. */
int cli_parse_status(int result);
/* Set the option `name` (no dashes) of table into opts; value NULL for a flag.
 * Prints the error (command names the command in it). *used_value (if not NULL)
 * tells whether value was taken. */
bool cli_option_set(const cli_option *table, const char *command, void *opts, const char *name,
                    const char *value, bool *used_value);
const cli_option *cli_find_option(const cli_option *table, const char *name);
/* "usage: cnnlab NAME OPERANDS [options]" (and where to find more) to f. */
void cli_print_usage(const cli_command *c, FILE *f);
/* The whole help: usage, description, one line per option. */
void cli_print_help(const cli_command *c, FILE *f);
/* The option lines of --help alone. */
void cli_print_options(const cli_command *c, FILE *f);
/* The value placeholder of an option (.arg or by kind); "" for a flag. */
const char *cli_option_arg(const cli_option *o);
/* "(default D; R)" text of an option into buf ("" when it has neither). */
void cli_option_notes(const cli_option *o, char *buf, size_t len);

/* `cnnlab help [COMMAND | --man | --bash-completion | --options]` (help.c). */
int cli_help(int argc, char **argv);
/* The list of commands with their summaries (`cnnlab` alone, `cnnlab help`). */
void cli_print_commands(FILE *f);

/* ---- training options (options.c) ---- */

#define TRAIN_STR_LEN CLI_STR_LEN

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
    /* validation split, weight averaging, parameter groups */
    long long val_split;
    float ema, norm_lr_scale;
    bool no_decay_norm_bias;
    /* evaluation: test-time augmentation of the per-epoch test ("" or "none": off) and
       the test accuracy whose first epoch the report names (NAN: none) */
    char tta[TRAIN_STR_LEN];
    double target;
    long long init_whiten; /* patch-whitening images for the first conv; 0: off */
} train_options;

/* The option table of train (ends with an empty row); train_command uses it. */
extern const cli_option train_option_table[];

void train_options_defaults(train_options *o);
/* Set one option by name (without the dashes); value NULL for a flag. Prints errors. */
bool train_option_set(train_options *o, const char *name, const char *value, bool *used_value);
/* Write the options as "key=value" lines (resume and init left out); read them back. */
size_t train_options_write(const train_options *o, char *buf, size_t len);
bool train_options_read(train_options *o, const char *text);
/* Refuse values torch.optim refuses (negative --lr, --momentum, --weight-decay) and
 * a malformed --tta; prints the error (a usage error). */
bool train_options_check(const train_options *o);
/* The optimizer these (resolved) options describe. */
cl_optim_args train_options_optim_args(const train_options *o);
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

/* ---- run folders in use (runstate.c) ---- */

/* The lock file in a run folder; it holds the PID of the run that uses the folder. */
#define CLI_LOCK_FILE "train.lock"
/* Lock DIR for this process (flock on DIR/train.lock, released by the kernel on any
 * exit, kill -9 included). Returns the lock's descriptor, or -1 after printing the
 * error, which names the process holding the lock. */
int cli_lock_run_folder(const char *dir);
/* Remove NAME.tmp.PID files (left by a killed checkpoint writer) whose process is
 * gone, and NAME.tmp files (cli_atomic_open's, which name no process), from DIR.
 * Call it holding the lock. Returns the count. */
int cli_remove_stale_temporaries(const char *dir);
/* Checked parsing of checkpoint metadata values: the whole text must parse, in range
 * and finite; false otherwise (the caller names the key). */
bool cli_meta_long(const char *text, long min, long max, long *out);
bool cli_meta_u64(const char *text, uint64_t *out);
bool cli_meta_doubles(const char *text, char sep, double *v, int n);
bool cli_meta_floats(const char *text, float *v, int n); /* comma-separated, n <= 8 */

/* ---- evaluation (eval.c) ---- */

typedef struct {
    int n;            /* samples evaluated (the first n of the dataset) */
    long correct;
    double loss;      /* mean cross entropy (of the TTA-averaged logits with TTA) */
    cl_tta tta;       /* the test-time augmentation used (nviews 1: none) */
    int32_t *pred;    /* [n] predicted class */
    float *conf;      /* [n] its softmax probability */
    long *confusion;  /* [classes][classes]: true x predicted */
} cli_eval;

/* Evaluate the first `limit` samples (0: all) of ds in eval mode, with test-time
 * augmentation when tta is not NULL and has more than one view (batch must not exceed
 * the batch the checkpoint was compiled for). */
bool cli_evaluate(const cli_checkpoint *ck, const cl_dataset *ds, int batch, int limit,
                  const cl_tta *tta, cli_eval *ev);
/* Parse a --tta SPEC for `option` (e.g. "eval --tta"); prints the error. */
bool cli_parse_tta(const char *option, const char *spec, cl_tta *t);
/* "Test-time augmentation: flip (2 views: ...); ..." for the consoles and reports
 * (buf returned). */
const char *cli_tta_note(const cl_tta *t, char *buf, size_t len);
void cli_eval_free(cli_eval *ev);
/* `cnnlab eval --int8` (export_c.c): the float32 and int8 accuracies of the exported
 * network on the first `limit` test images (0: all), the int8 one calibrated on
 * `calib` training images of data (NULL: the checkpoint's). Returns the exit code. */
int cli_eval_int8(const cli_checkpoint *ck, const cl_dataset *test, int limit, const char *data,
                  const char *data_dir, int calib, int threads);

/* ---- export (export.c, export_c.c) ---- */

/* The options of `cnnlab export`. */
typedef struct {
    const char *format, *out, *data, *data_dir;
    const char *opset; /* onnx: "17" or "21" (the table's choices) */
    bool no_normalize; /* onnx: leave the input normalisation out of the graph */
    bool int8;         /* quantize (c: model.c; onnx: QDQ pairs) */
    bool uint8_activations; /* onnx --int8: activations as uint8 (zero point + 128) */
    long long calib;
} export_options;
/* `cnnlab export --format c` (export_c.c), after export.c parsed the options.
 * Returns the exit code. */
int cli_export_c(const char *checkpoint, const export_options *o);
/* `cnnlab export --int8` in ONNX (export_c.c): the int8 network as QDQ pairs, to out. */
int cli_export_onnx_int8(const char *checkpoint, const export_options *o, const char *out);

/* The misclassified indices, most confident first (malloc'ed); returns the count. */
int cli_misclassified(const cli_eval *ev, const cl_dataset *ds, int32_t **out);

/* ---- run folders, reports and comparisons (runs.c, report.c, compare.c) ---- */

/* metrics.csv of a run: one entry per finished epoch. A run with --val-split has two
 * more columns (has_val): val_loss, val_acc each epoch, and the test columns NaN
 * except after the last epoch; without them val_loss and val_acc are NaN. */
typedef struct {
    int n;
    double *epoch, *lr, *train_loss, *train_acc, *test_loss, *test_acc, *seconds;
    double *val_loss, *val_acc;
    bool has_val;
} cli_metrics;

/* The accuracy the run chose its best epoch on: validation with --val-split, else test. */
static inline const double *cli_metrics_chosen_acc(const cli_metrics *m) {
    return m->has_val ? m->val_acc : m->test_acc;
}

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
    const char *tta;             /* test-time augmentation (NULL: the run's --tta) */
    double target;               /* test accuracy for the analysis (0: the run's --target,
                                    if any) */
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

/* ---- the analysis of a run (analysis.c) ---- */

enum { CLI_ANALYSIS_LINES = 5, CLI_ANALYSIS_LEN = 1024 };
/* The analysis of a run as sentences (without HTML): the fit verdict, the train/test
 * gap and its trend, how the last epochs moved, the epoch at the target (target <= 0:
 * "no target given"), and, when confusion is not NULL, the most confused class pairs.
 * Returns the number of lines. */
int cli_analysis_lines(const cli_metrics *m, double target, const long *confusion, int classes,
                       char *const *class_names, char lines[][CLI_ANALYSIS_LEN]);
/* One line for compare: "fits well; gap +0.6 points (steady); 70% at epoch 5". */
void cli_analysis_summary(const cli_metrics *m, double target, char *buf, size_t len);
/* metrics.csv's columns as the library's cl_curves. */
cl_curves cli_curves(const cli_metrics *m);

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

/* --init-whiten (train, lr-find): set the first convolution of the compiled model m
 * by patch whitening (cl_model_init_whiten, airbench's eps) of images idx[0..n) of d,
 * normalised as the loader does (uint8 / 255, then mean and std per channel). Prints
 * what it did when say is true, and the error on failure. */
#define CLI_WHITEN_EPS 5e-4
bool cli_init_whiten(cl_model *m, const cl_dataset *d, const int32_t *idx, int n,
                     const float *mean, const float *std, bool say);

/* Print "cnnlab: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "CxHxW". */
bool cli_parse_shape(const char *s, cl_shape *out);
/* Parse a non-negative integer, allowing "_" or "," as thousands separators. */
bool cli_parse_count(const char *s, long long *out);
/* The index of the largest of x[0..n) (the first on a tie): a row of logits' class. */
int cli_argmax(const cl_real *x, int n);

#endif
