/* compare.c: `cnnlab compare RUN...`: runs side by side, the course's "BN against
 * GN against LN" or "SGD against Adam" in one command. Prints a table (parameters,
 * normalization, optimizer, best and final test accuracy, the first epoch at a
 * target accuracy, time per epoch), an analysis line per run (fit verdict, train/test
 * gap and its trend, the last epochs, the target; cli/analysis.c) and writes into
 * the output folder:
 *
 *   compare.png            the four training curves of every run overlaid
 *   compare_per_class.png  per-class test accuracy of every run (when each run
 *                          folder has the per_class.csv its report writes)
 *   compare.csv            the table
 *   compare.html           all of it in one self-contained page */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "draw/plot.h"

enum { MAX_RUNS = 10 };

typedef struct {
    const char *dir;
    char name[256], model[512], norm[96], opt[160], aug[256], dataset[64];
    long long params;
    cli_metrics m;
    int best;          /* row of the best test accuracy */
    int first_target;  /* first epoch at the target, or 0 */
    double seconds;    /* total */
    char analysis[320]; /* cli_analysis_summary */
    double *class_acc; /* [nclasses] from per_class.csv, or NULL */
    char **class_names;
    int nclasses;
} run_info;

static void base_name(const char *path, char *out, size_t len) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *b = path + n;
    while (b > path && b[-1] != '/') b--;
    snprintf(out, len, "%.*s", (int)(path + n - b), b);
}

/* The normalization layers the model uses, from its file: "BatchNorm", "GroupNorm",
 * "LayerNorm", several joined with "+", or "none". */
static void model_norms(const char *dir, char *out, size_t len) {
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/model.net", dir);
    snprintf(out, len, "?");
    cl_model *m = cl_load_model(path, NULL, err, sizeof err);
    if (!m) return;
    static const char *const ops[3] = {"batchnorm2d", "groupnorm", "layernorm"};
    static const char *const names[3] = {"BatchNorm", "GroupNorm", "LayerNorm"};
    bool used[3] = {false, false, false};
    for (int i = 0; i < cl_model_layer_count(m); i++) {
        cl_layer_info li = cl_model_layer(m, i);
        for (int k = 0; k < 3; k++) used[k] |= strcmp(li.op, ops[k]) == 0;
    }
    out[0] = 0;
    for (int k = 0; k < 3; k++)
        if (used[k]) snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "+" : "", names[k]);
    if (!out[0]) snprintf(out, len, "none");
    cl_model_free(m);
}

/* per_class.csv (class,name,correct,total,accuracy), written by the run's report. */
static void read_per_class(run_info *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/per_class.csv", r->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    int cap = 0;
    bool ok = fgets(line, sizeof line, f) != NULL;
    while (ok && fgets(line, sizeof line, f)) {
        /* the name may be quoted; the last field is the accuracy */
        char *comma = strchr(line, ','), *last = strrchr(line, ',');
        if (!comma || last == comma) break;
        char *name = comma + 1, *name_end = name;
        int commas = 0;
        for (char *p = last; p > name && commas < 2; p--)
            if (p[-1] == ',' && ++commas == 2) name_end = p - 1;
        if (commas < 2) break;
        if (r->nclasses == cap) {
            cap = cap ? 2 * cap : 16;
            double *a = realloc(r->class_acc, (size_t)cap * sizeof *a);
            char **n = a ? realloc(r->class_names, (size_t)cap * sizeof *n) : NULL;
            if (a) r->class_acc = a;
            if (n) r->class_names = n;
            if (!a || !n) break;
        }
        if (*name == '"' && name_end > name + 1 && name_end[-1] == '"') name++, name_end--;
        r->class_names[r->nclasses] = strndup(name, (size_t)(name_end - name));
        r->class_acc[r->nclasses++] = strtod(last + 1, NULL);
    }
    fclose(f);
}

static bool load_run(run_info *r, const char *dir, double target) {
    memset(r, 0, sizeof *r);
    r->dir = dir;
    base_name(dir, r->name, sizeof r->name);
    if (!cli_read_metrics(dir, &r->m)) return false;
    if (r->m.n == 0) {
        cli_error("%s: no finished epoch yet", dir);
        return false;
    }
    char buf[1024], opt[64] = "?", lr[64] = "", sched[64] = "", wd[64] = "";
    if (cli_run_config(dir, "model", buf, sizeof buf)) base_name(buf, r->model, sizeof r->model);
    if (cli_run_config(dir, "params", buf, sizeof buf)) r->params = atoll(buf);
    cli_run_config(dir, "dataset", r->dataset, sizeof r->dataset);
    cli_run_config(dir, "aug", r->aug, sizeof r->aug);
    if (!r->aug[0]) snprintf(r->aug, sizeof r->aug, "none");
    /* a run tested with TTA says so beside its augmentation: its test figures differ */
    char tta[128] = "";
    if (cli_run_config(dir, "tta", tta, sizeof tta) && tta[0] && strcmp(tta, "none"))
        snprintf(r->aug + strlen(r->aug), sizeof r->aug - strlen(r->aug), "; test TTA %s", tta);
    cli_run_config(dir, "opt", opt, sizeof opt);
    cli_run_config(dir, "lr", lr, sizeof lr);
    cli_run_config(dir, "sched", sched, sizeof sched);
    cli_run_config(dir, "weight-decay", wd, sizeof wd);
    snprintf(r->opt, sizeof r->opt, "%s lr %.3g %s wd %.3g", opt, atof(lr), sched, atof(wd));
    model_norms(dir, r->norm, sizeof r->norm);
    for (int i = 0; i < r->m.n; i++) {
        if (r->m.test_acc[i] > r->m.test_acc[r->best]) r->best = i;
        if (!r->first_target && r->m.test_acc[i] >= target) r->first_target = (int)r->m.epoch[i];
        r->seconds += r->m.seconds[i];
    }
    cli_analysis_summary(&r->m, target, r->analysis, sizeof r->analysis);
    read_per_class(r);
    return true;
}

static void free_run(run_info *r) {
    cli_metrics_free(&r->m);
    for (int k = 0; k < r->nclasses; k++) free(r->class_names[k]);
    free(r->class_names);
    free(r->class_acc);
}

static void print_table(FILE *f, const run_info *runs, int n, double target) {
    char first[32];
    snprintf(first, sizeof first, "first %.4g%%", 100 * target);
    fprintf(f, "%-18s %-16s %8s %-14s %-32s %13s %8s %11s %6s %8s\n", "run", "model", "params",
            "normalization", "optimizer", "best (epoch)", "final", first, "epochs", "s/epoch");
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        char best[32], at[16];
        snprintf(best, sizeof best, "%.2f%% (%.0f)", 100 * r->m.test_acc[r->best], r->m.epoch[r->best]);
        if (r->first_target) snprintf(at, sizeof at, "epoch %d", r->first_target);
        else snprintf(at, sizeof at, "never");
        fprintf(f, "%-18.18s %-16.16s %8lld %-14.14s %-32.32s %13s %7.2f%% %11s %6d %8.1f\n", r->name,
                r->model, r->params, r->norm, r->opt, best, 100 * r->m.test_acc[r->m.n - 1], at, r->m.n,
                r->seconds / r->m.n);
    }
    fprintf(f, "\nAnalysis (thresholds: docs/analysis.md):\n");
    for (int i = 0; i < n; i++) fprintf(f, "  %s: %s\n", runs[i].name, runs[i].analysis);
}

static bool write_csv(const char *path, const run_info *runs, int n, double target) {
    cli_atomic_file out;
    FILE *f = cli_atomic_open(&out, path);
    if (!f) return false;
    fprintf(f, "run,model,params,normalization,optimizer,augmentation,epochs,best_test_acc,"
               "best_epoch,final_test_acc,first_epoch_at_%g,seconds_per_epoch,analysis\n", target);
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        fprintf(f, "\"%s\",\"%s\",%lld,%s,\"%s\",\"%s\",%d,%.6f,%.0f,%.6f,%d,%.2f,\"%s\"\n", r->name,
                r->model, r->params, r->norm, r->opt, r->aug, r->m.n, r->m.test_acc[r->best],
                r->m.epoch[r->best], r->m.test_acc[r->m.n - 1], r->first_target, r->seconds / r->m.n,
                r->analysis);
    }
    return cli_atomic_close(&out, true);
}

static bool figure_curves(const char *path, const run_info *runs, int n, double target) {
    plot_figure *f = plot_figure_new(2, 2, 560, 360, "Runs compared: loss and accuracy per epoch");
    if (!f) {
        cli_error("%s: cannot create the figure", path);
        return false;
    }
    plot_series s[MAX_RUNS];
    static const char *const titles[4] = {"Training loss", "Training accuracy", "Test loss",
                                          "Test accuracy"};
    char err[512];
    bool ok = true;
    for (int p = 0; p < 4 && ok; p++) {
        for (int i = 0; i < n; i++) {
            const cli_metrics *m = &runs[i].m;
            const double *y = p == 0 ? m->train_loss : p == 1 ? m->train_acc : p == 2 ? m->test_loss
                                                                                      : m->test_acc;
            s[i] = (plot_series){.x = m->epoch, .y = y, .n = m->n, .label = runs[i].name, .color = i,
                                 .markers = m->n <= 30};
        }
        plot_lines pl = {.title = titles[p], .xlabel = "epoch", .ylabel = p % 2 ? "accuracy" : "loss",
                         .series = s, .nseries = n, .y_percent = p % 2 == 1, .x_integer = true,
                         .legend = p % 2 ? 1 : 0, .has_hline = p == 3, .hline = target,
                         .hline_label = "target"};
        ok = plot_draw_lines(f, p, &pl, err, sizeof err);
    }
    ok = ok && plot_figure_write_png(f, path, err, sizeof err);
    if (!ok) cli_error("%s: %s", path, err);
    plot_figure_free(f);
    return ok;
}

/* Only when every run has per-class accuracies for the same classes. */
static bool same_classes(const run_info *runs, int n) {
    for (int i = 0; i < n; i++) {
        if (!runs[i].nclasses || runs[i].nclasses != runs[0].nclasses) return false;
        for (int k = 0; k < runs[0].nclasses; k++)
            if (strcmp(runs[i].class_names[k], runs[0].class_names[k])) return false;
    }
    return true;
}

static bool figure_per_class(const char *path, const run_info *runs, int n) {
    const int K = runs[0].nclasses;
    plot_figure *f = plot_figure_new(1, 1, K > 20 ? 1600 : 1000, 420, "Runs compared: test accuracy per class");
    if (!f) {
        cli_error("%s: cannot create the figure", path);
        return false;
    }
    const double *vals[MAX_RUNS];
    const char *labels[MAX_RUNS];
    for (int i = 0; i < n; i++) {
        vals[i] = runs[i].class_acc;
        labels[i] = runs[i].name;
    }
    plot_bars b = {.title = "best checkpoint of each run", .xlabel = "class", .ylabel = "accuracy",
                   .categories = (const char *const *)runs[0].class_names, .ncategories = K,
                   .values = vals, .series_labels = labels, .nseries = n, .y_percent = true,
                   .has_ymax = true, .ymax = 1};
    char err[512];
    bool ok = plot_draw_bars(f, 0, &b, err, sizeof err) && plot_figure_write_png(f, path, err, sizeof err);
    if (!ok) cli_error("%s: %s", path, err);
    plot_figure_free(f);
    return ok;
}

static bool write_html(const char *out, const run_info *runs, int n, double target, bool per_class) {
    char path[4300];
    snprintf(path, sizeof path, "%s/compare.html", out);
    cli_atomic_file html;
    FILE *f = cli_atomic_open(&html, path);
    if (!f) return false;
    html_begin(f, "cnnlab: runs compared");
    fputs("<h1>Runs compared</h1>\n<table>\n<tr><th class=\"l\">run</th><th class=\"l\">model</th>"
          "<th>parameters</th><th class=\"l\">normalization</th><th class=\"l\">optimizer</th>"
          "<th class=\"l\">augmentation</th><th>epochs</th><th>best test acc. (epoch)</th>"
          "<th>final test acc.</th>", f);
    fprintf(f, "<th>first epoch at %.4g%%</th><th>s per epoch</th></tr>\n", 100 * target);
    int top = 0;
    for (int i = 1; i < n; i++)
        if (runs[i].m.test_acc[runs[i].best] > runs[top].m.test_acc[runs[top].best]) top = i;
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        fprintf(f, "<tr%s><td class=\"l\">", i == top && n > 1 ? " class=\"best\"" : "");
        html_text(f, r->name);
        fputs("</td><td class=\"l\">", f);
        html_text(f, r->model);
        fprintf(f, "</td><td>%lld</td><td class=\"l\">", r->params);
        html_text(f, r->norm);
        fputs("</td><td class=\"l\">", f);
        html_text(f, r->opt);
        fputs("</td><td class=\"l\">", f);
        html_text(f, r->aug);
        fprintf(f, "</td><td>%d</td><td>%.2f%% (%.0f)</td><td>%.2f%%</td><td>", r->m.n,
                100 * r->m.test_acc[r->best], r->m.epoch[r->best], 100 * r->m.test_acc[r->m.n - 1]);
        if (r->first_target) fprintf(f, "%d", r->first_target);
        else fputs("never", f);
        fprintf(f, "</td><td>%.1f</td></tr>\n", r->seconds / r->m.n);
    }
    fputs("</table>\n<h2>Analysis</h2>\n<ul class=\"analysis\">\n", f);
    for (int i = 0; i < n; i++) {
        fputs("<li><b>", f);
        html_text(f, runs[i].name);
        fputs("</b>: ", f);
        html_text(f, runs[i].analysis);
        fputs("</li>\n", f);
    }
    fputs("</ul>\n<p>Fit verdict, train/test gap at the last epoch (training accuracy minus test, "
          "in points) and its trend, the test accuracy over the last epochs, the first epoch at the "
          "target; thresholds in docs/analysis.md.</p>\n", f);
    bool ok = true;
    fputs("<h2>Curves</h2>\n<figure>\n", f);
    snprintf(path, sizeof path, "%s/compare.png", out);
    ok &= html_png(f, path, "Loss and accuracy per epoch of every run");
    fputs("<figcaption>Loss and accuracy per epoch of every run; the dashed line is the target."
          "</figcaption>\n</figure>\n", f);
    if (per_class) {
        fputs("<h2>Per-class test accuracy</h2>\n<figure>\n", f);
        snprintf(path, sizeof path, "%s/compare_per_class.png", out);
        ok &= html_png(f, path, "Per-class test accuracy of every run");
        fputs("<figcaption>Per-class test accuracy of each run's best checkpoint.</figcaption>\n"
              "</figure>\n", f);
    }
    fputs("<h2>Run reports</h2>\n<ul>\n", f);
    for (int i = 0; i < n; i++) {
        char rp[4300];
        snprintf(rp, sizeof rp, "%s/report.html", runs[i].dir);
        fputs("<li>", f);
        html_text(f, runs[i].name);
        fputs(": ", f);
        if (access(rp, R_OK) == 0) {
            char *abs = realpath(rp, NULL);
            fputs("<a href=\"file://", f);
            html_text(f, abs ? abs : rp);
            fputs("\">report.html</a>", f);
            free(abs);
        } else {
            fputs("no report yet (<code>cnnlab report ", f);
            html_text(f, runs[i].dir);
            fputs("</code>)", f);
        }
        fputs("</li>\n", f);
    }
    fputs("</ul>\n", f);
    html_end(f);
    return cli_atomic_close(&html, ok);
}

typedef struct {
    const char *out;
    double target;
} compare_options;

static const cli_option compare_options_table[] = {
    {"out", OPT_TEXT, offsetof(compare_options, out), "the folder to write into", .arg = "DIR",
     .def = "compare beside the first run"},
    {"target", OPT_DOUBLE, offsetof(compare_options, target), "the test accuracy whose first epoch is reported (e.g. 0.994 for MNIST)",
     .arg = "ACC", .def = "0.7", .min = 0, .max = 1, .min_open = true},
    {0},
};

static int cmd_compare(int argc, char **argv);

const cli_command compare_command = {
    .name = "compare",
    .operands = "RUN...",
    .summary = "runs side by side: a table, overlaid curves, compare.png and compare.html",
    .description =
        "Compares 1 to 10 run folders: prints a table (model, parameters,\n"
        "normalization, optimizer, best and final test accuracy, the first epoch at\n"
        "--target, seconds per epoch) and an analysis line per run (underfits, overfits\n"
        "from epoch N or fits well; the train/test gap and its trend; whether the last\n"
        "epochs still rise; the target's epoch), and writes compare.csv, compare.png,\n"
        "compare_per_class.png and compare.html into --out.",
    .options = compare_options_table,
    .run = cmd_compare,
};

static int cmd_compare(int argc, char **argv) {
    compare_options o = {.target = 0.7};
    const char *dirs[MAX_RUNS];
    int n = cli_parse(&compare_command, &o, argc - 1, argv + 1, dirs, MAX_RUNS);
    if (n < 0) return cli_parse_status(n);
    if (n == 0) {
        cli_print_usage(&compare_command, stderr);
        return EXIT_USAGE;
    }
    const char *out = o.out;
    double target = o.target;
    static run_info runs[MAX_RUNS];
    int loaded = 0, rc = 1;
    for (; loaded < n; loaded++)
        if (!load_run(&runs[loaded], dirs[loaded], target)) {
            free_run(&runs[loaded]);
            goto done;
        }
    /* default: "compare" beside the first run (runs/a -> runs/compare) */
    char outdir[4096];
    if (out) {
        snprintf(outdir, sizeof outdir, "%s", out);
    } else {
        size_t len = strlen(dirs[0]);
        while (len > 1 && dirs[0][len - 1] == '/') len--;
        while (len > 0 && dirs[0][len - 1] != '/') len--;
        snprintf(outdir, sizeof outdir, "%.*scompare", (int)len, dirs[0]);
    }
    if (!cli_mkdirs(outdir)) {
        cli_error("%s: %s", outdir, strerror(errno));
        goto done;
    }
    print_table(stdout, runs, n, target);
    char path[4300];
    bool per_class = same_classes(runs, n);
    snprintf(path, sizeof path, "%s/compare.csv", outdir);
    if (!write_csv(path, runs, n, target)) goto done;
    snprintf(path, sizeof path, "%s/compare.png", outdir);
    if (!figure_curves(path, runs, n, target)) goto done;
    snprintf(path, sizeof path, "%s/compare_per_class.png", outdir);
    if (per_class && !figure_per_class(path, runs, n)) goto done;
    if (!write_html(outdir, runs, n, target, per_class)) goto done;
    printf("\nWrote %s/compare.html, compare.png%s and compare.csv\n", outdir,
           per_class ? ", compare_per_class.png" : "");
    rc = 0;
done:
    for (int i = 0; i < loaded; i++) free_run(&runs[i]);
    return rc;
}
