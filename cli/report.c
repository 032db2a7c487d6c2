/* report.c: `cnnlab report RUN`, also written by every finished `cnnlab train`:
 * the pictures of a course write-up, made from a run folder.
 *
 *   curves.png         train/test loss and accuracy per epoch (the 2x2 panel)
 *   lr.png             the learning rate (and the cycled momentum) per step
 *   per_class.png      test accuracy per class (and per_class.csv)
 *   confusion.png      the confusion matrix as a heat map
 *   misclassified.png  the most confidently misclassified test images,
 *                      "true → predicted (p)"
 *   gradcam.png        the same images with Grad-CAM heat maps: where the network
 *                      looked for the class it predicted
 *   analysis.txt       the analysis (fit verdict, train/test gap, last epochs, target,
 *                      most confused pairs; cli/analysis.c), also printed
 *   report.html        all of the above with the model summary, the configuration
 *                      and the metrics table, in one self-contained file
 *
 * The test-set figures come from the best checkpoint (the last when there is no
 * best), evaluated again on the run's test split, with the run's test-time
 * augmentation (or report --tta). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "draw/grid.h"
#include "draw/plot.h"

enum { EVAL_BATCH = 100 };

typedef struct {
    const char *dir;
    char name[256];        /* the run folder's last component */
    const cli_report_args *a;
    cli_metrics metrics;
    cli_checkpoint ck;
    char ck_path[4200];
    int ck_epoch;
    cl_dataset test_own;
    const cl_dataset *test;
    cli_eval ev;
    int32_t *mis;
    int nmis, shown;
    bool has_gradcam;
    char gradcam_layer[160];
    cl_tta tta;     /* of the evaluation (nviews 1: none) */
    double target;  /* for the analysis; 0: none */
    char analysis[CLI_ANALYSIS_LINES][CLI_ANALYSIS_LEN];
    int nanalysis;
} report;

static void path_in(const report *r, char *buf, size_t len, const char *file) {
    snprintf(buf, len, "%s/%s", r->dir, file);
}

static bool write_figure(plot_figure *f, const report *r, const char *file) {
    char path[4400], err[512];
    path_in(r, path, sizeof path, file);
    bool ok = f && plot_figure_write_png(f, path, err, sizeof err);
    if (f && !ok) cli_error("%s", err);
    if (!f) cli_error("%s: cannot create the figure", path);
    plot_figure_free(f);
    return ok;
}

static bool draw_ok(bool ok, const char *err) {
    if (!ok) cli_error("drawing: %s", err);
    return ok;
}

/* curves.png: Training loss | Training accuracy / Test loss | Test accuracy. */
static bool figure_curves(const report *r) {
    const cli_metrics *m = &r->metrics;
    char title[320], err[256];
    snprintf(title, sizeof title, "%s: loss and accuracy per epoch", r->name);
    plot_figure *f = plot_figure_new(2, 2, 520, 340, title);
    if (!f) return write_figure(NULL, r, "curves.png");
    const double *ys[4] = {m->train_loss, m->train_acc, m->test_loss, m->test_acc};
    static const char *const titles[4] = {"Training loss", "Training accuracy", "Test loss",
                                          "Test accuracy"};
    bool ok = true;
    for (int p = 0; p < 4 && ok; p++) {
        plot_series s = {.x = m->epoch, .y = ys[p], .n = m->n, .label = NULL,
                         .color = p < 2 ? 0 : 1, .markers = m->n <= 30};
        plot_lines pl = {.title = titles[p], .xlabel = "epoch", .ylabel = p % 2 ? "accuracy" : "loss",
                         .series = &s, .nseries = 1, .y_percent = p % 2 == 1, .x_integer = true};
        ok = draw_ok(plot_draw_lines(f, p, &pl, err, sizeof err), err);
    }
    if (!ok) {
        plot_figure_free(f);
        return false;
    }
    return write_figure(f, r, "curves.png");
}

/* lr.png: the schedule replayed step by step from the run's options, the plateau
 * schedule fed the recorded test losses, as training did. A second panel shows
 * OneCycle's momentum (or Adam's beta1) when it cycles. */
static bool figure_lr(const report *r) {
    const train_options *o = &r->ck.options;
    char buf[64];
    long long ntrain = 0;
    if (!cli_run_config(r->dir, "train_images", buf, sizeof buf) || !cli_parse_count(buf, &ntrain) ||
        ntrain <= 0 || o->batch <= 0) {
        cli_error("%s/config.txt: no train_images (needed to replay the schedule)", r->dir);
        return false;
    }
    int batches = (int)((ntrain + o->batch - 1) / o->batch);
    cl_schedule s;
    if (!train_options_schedule(o, batches, &s)) return false;
    bool plateau = s.a.kind == CL_SCHED_PLATEAU;
    int epochs = plateau ? r->metrics.n : (int)o->epochs;
    long steps = (long)epochs * batches;
    /* at most ~4000 points: a line this long shows no more detail */
    long every = steps / 4000 + 1;
    long npts = steps / every + 1;
    double *x = malloc((size_t)npts * sizeof *x), *lr = malloc((size_t)npts * sizeof *lr),
           *mom = malloc((size_t)npts * sizeof *mom);
    if (!x || !lr || !mom) {
        free(x), free(lr), free(mom);
        cli_error("out of memory");
        return false;
    }
    long n = 0;
    bool cycles = false;
    for (int e = 0; e < epochs; e++) {
        for (int b = 0; b < batches; b++) {
            long step = (long)e * batches + b;
            if (step % every == 0 && n < npts) {
                x[n] = (double)step / batches;
                lr[n] = cl_schedule_lr(&s, e, step);
                mom[n] = cl_schedule_momentum(&s, step);
                cycles |= mom[n] >= 0;
                n++;
            }
        }
        if (plateau) cl_schedule_epoch_end(&s, r->metrics.test_loss[e]);
    }
    char title[320], subtitle[2300], err[256];
    snprintf(title, sizeof title, "%s: learning-rate schedule", r->name);
    snprintf(subtitle, sizeof subtitle, "%s %s, peak %.4g, %d steps per epoch", o->opt, o->sched,
             o->lr, batches);
    plot_figure *f = plot_figure_new(cycles ? 2 : 1, 1, 560, 340, title);
    bool ok = f != NULL;
    if (ok) {
        plot_series sl = {.x = x, .y = lr, .n = (int)n, .label = NULL, .color = 2};
        plot_lines pl = {.title = subtitle, .xlabel = "epoch", .ylabel = "learning rate",
                         .series = &sl, .nseries = 1, .has_ymin = true, .ymin = 0};
        ok = draw_ok(plot_draw_lines(f, 0, &pl, err, sizeof err), err);
    }
    if (ok && cycles) {
        plot_series sm = {.x = x, .y = mom, .n = (int)n, .label = NULL, .color = 4};
        plot_lines pm = {.title = strcmp(o->opt, "sgd") ? "beta1 (cycled with the learning rate)"
                                                        : "momentum (cycled against the learning rate)",
                         .xlabel = "epoch", .ylabel = strcmp(o->opt, "sgd") ? "beta1" : "momentum",
                         .series = &sm, .nseries = 1};
        ok = draw_ok(plot_draw_lines(f, 1, &pm, err, sizeof err), err);
    }
    free(x), free(lr), free(mom);
    if (!ok) {
        if (!f) return write_figure(NULL, r, "lr.png");
        plot_figure_free(f);
        return false;
    }
    return write_figure(f, r, "lr.png");
}

static double class_accuracy(const report *r, int t, long *correct, long *total) {
    const int K = r->ck.classes;
    long sum = 0;
    for (int k = 0; k < K; k++) sum += r->ev.confusion[t * K + k];
    *correct = r->ev.confusion[t * K + t];
    *total = sum;
    return sum ? (double)*correct / sum : 0;
}

/* per_class.png and per_class.csv. */
static bool figure_per_class(const report *r) {
    const int K = r->ck.classes;
    char path[4400];
    path_in(r, path, sizeof path, "per_class.csv");
    if (!cli_write_per_class_csv(path, &r->ck, &r->ev)) return false;
    double *acc = malloc((size_t)K * sizeof *acc);
    if (!acc) return false;
    for (int t = 0; t < K; t++) {
        long c, n;
        acc[t] = class_accuracy(r, t, &c, &n);
    }
    char title[320], sub[160], err[256];
    snprintf(title, sizeof title, "%s: test accuracy per class", r->name);
    snprintf(sub, sizeof sub, "epoch %d checkpoint, %.2f%% overall", r->ck_epoch,
             100.0 * r->ev.correct / r->ev.n);
    const double *vals[1] = {acc};
    plot_bars b = {.title = sub, .xlabel = "class", .ylabel = "accuracy",
                   .categories = (const char *const *)r->ck.class_names, .ncategories = K,
                   .values = vals, .nseries = 1, .y_percent = true, .has_ymax = true, .ymax = 1};
    plot_figure *f = plot_figure_new(1, 1, K > 20 ? 1400 : 760, 400, title);
    bool ok = !f || draw_ok(plot_draw_bars(f, 0, &b, err, sizeof err), err);
    free(acc);
    if (!ok) {
        plot_figure_free(f);
        return false;
    }
    return write_figure(f, r, "per_class.png");
}

static bool figure_confusion(const report *r) {
    const int K = r->ck.classes;
    char title[320], err[256];
    snprintf(title, sizeof title, "%s: confusion matrix (epoch %d checkpoint)", r->name, r->ck_epoch);
    int side = K > 20 ? 1100 : 640;
    plot_figure *f = plot_figure_new(1, 1, side + 120, side, title);
    plot_heatmap h = {.title = "rows: true class; colour: fraction of the row",
                      .xlabel = "predicted", .ylabel = "true",
                      .labels = (const char *const *)r->ck.class_names, .counts = r->ev.confusion, .n = K};
    if (f && !draw_ok(plot_draw_heatmap(f, 0, &h, err, sizeof err), err)) {
        plot_figure_free(f);
        return false;
    }
    return write_figure(f, r, "confusion.png");
}

/* The enlargement that leaves room for a caption like "automobile → airplane (0.97)"
 * under each image: cells of 160 pixels or more. */
static int caption_scale(int w) {
    int s = (160 + w - 1) / w;
    return s < 1 ? 1 : s > 64 ? 64 : s;
}

/* "cat → dog (0.97)" under each misclassified image. */
static char **mistake_captions(const report *r) {
    char **cap = calloc((size_t)r->shown, sizeof *cap);
    for (int k = 0; cap && k < r->shown; k++) {
        int i = r->mis[k];
        char buf[256];
        snprintf(buf, sizeof buf, "%s \u2192 %s (%.2f)", r->ck.class_names[r->test->labels[i]],
                 r->ck.class_names[r->ev.pred[i]], r->ev.conf[i]);
        cap[k] = strdup(buf);
    }
    return cap;
}

static void free_strings(char **s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

static bool figure_misclassified(const report *r) {
    const cl_dataset *ds = r->test;
    size_t isz = (size_t)ds->h * ds->w * ds->c;
    const uint8_t **imgs = malloc((size_t)r->shown * sizeof *imgs);
    char **cap = mistake_captions(r);
    if (!imgs || !cap) {
        free(imgs);
        free_strings(cap, r->shown);
        cli_error("out of memory");
        return false;
    }
    for (int k = 0; k < r->shown; k++) imgs[k] = ds->images + (size_t)r->mis[k] * isz;
    char title[320], path[4400], err[512];
    snprintf(title, sizeof title, "The %d most confident mistakes of %d: true \u2192 predicted (p)",
             r->shown, r->nmis);
    grid_spec g = {.images = imgs, .count = r->shown, .h = ds->h, .w = ds->w, .c = ds->c,
                   .columns = r->shown < 5 ? r->shown : 5, .scale = caption_scale(ds->w), .title = title,
                   .captions = (const char *const *)cap};
    path_in(r, path, sizeof path, "misclassified.png");
    bool ok = grid_write_png(path, &g, err, sizeof err);
    if (!ok) cli_error("%s", err);
    free(imgs);
    free_strings(cap, r->shown);
    return ok;
}

/* The last layer whose output still has a spatial extent: Grad-CAM's feature maps. */
static int gradcam_target(const cl_model *m, cl_layer_info *info) {
    int target = -1;
    for (int i = 0; i < cl_model_layer_count(m); i++) {
        cl_layer_info li = cl_model_layer(m, i);
        if (li.out.h * li.out.w > 1) {
            target = li.output;
            *info = li;
        }
    }
    return target;
}

/* The "jet" colour map, v in [0, 1]. */
static void jet(double v, double rgb[3]) {
    for (int c = 0; c < 3; c++) {
        double t = 1.5 - fabs(4 * v - (3 - c));
        rgb[c] = t < 0 ? 0 : t > 1 ? 1 : t;
    }
}

/* Bilinear sample of map [H][W] at output pixel (y, x) of an OHxOW image, with
 * half-pixel centres (align_corners=False, as F.interpolate and OpenCV). */
static double sample_bilinear(const double *map, int H, int W, int OH, int OW, int y, int x) {
    double fy = (y + 0.5) * H / OH - 0.5, fx = (x + 0.5) * W / OW - 0.5;
    if (fy < 0) fy = 0;
    if (fx < 0) fx = 0;
    int y0 = (int)fy, x0 = (int)fx;
    int y1 = y0 + 1 < H ? y0 + 1 : y0, x1 = x0 + 1 < W ? x0 + 1 : x0;
    double dy = fy - y0, dx = fx - x0;
    return (1 - dy) * ((1 - dx) * map[y0 * W + x0] + dx * map[y0 * W + x1]) +
           dy * ((1 - dx) * map[y1 * W + x0] + dx * map[y1 * W + x1]);
}

/* gradcam.png: each mistake above its Grad-CAM (Selvaraju et al. 2017) for the
 * predicted class: the feature maps A_k of the target layer weighted by
 * alpha_k = mean over (h, w) of d logit / d A_k, summed, ReLU, scaled to [0, 1],
 * resized to the image and blended over it. */
static bool figure_gradcam(report *r) {
    const cl_dataset *ds = r->test;
    const int n = r->shown, K = r->ck.classes;
    cli_checkpoint g;
    cl_compile_args ca = {.max_batch = n, .threads = r->a->threads, .keep_activation_grads = true};
    if (!cli_open_checkpoint(r->ck_path, ca, &g)) return false;
    cl_layer_info info;
    int target = gradcam_target(g.m, &info);
    if (target < 0) {
        cli_close_checkpoint(&g);
        return true; /* no spatial layer (e.g. a flatten-first model): nothing to show */
    }
    cl_shape ts = cl_model_shape(g.m, target);
    snprintf(r->gradcam_layer, sizeof r->gradcam_layer, "layer %d (%s%s%s, %dx%dx%d)", info.line,
             info.op, info.name[0] ? " " : "", info.name, ts.c, ts.h, ts.w);
    const size_t npix = (size_t)ds->h * ds->w, isz = npix * ds->c;
    const size_t hw = (size_t)ts.h * ts.w;
    /* columns of 5: a row of images, then the row of their heat maps */
    const int cols = n < 5 ? n : 5, rows = (n + cols - 1) / cols, ncells = 2 * rows * cols;
    cl_real *x = malloc((size_t)n * isz * sizeof *x), *dout = calloc((size_t)n * K, sizeof *dout);
    double *cam = malloc(hw * sizeof *cam);
    uint8_t *rgb = malloc((size_t)2 * n * npix * 3);
    const uint8_t **cells = calloc((size_t)ncells, sizeof *cells); /* blank past the last image */
    char **cap = calloc((size_t)ncells, sizeof *cap);
    char **mcap = mistake_captions(r);
    bool ok = x && dout && cam && rgb && cells && cap && mcap;
    if (!ok) cli_error("out of memory");
    for (int k = 0; ok && k < n; k++) {
        cli_normalise(&g, ds->images + (size_t)r->mis[k] * isz, npix, x + (size_t)k * isz);
        dout[(size_t)k * K + r->ev.pred[r->mis[k]]] = 1;
    }
    if (ok && (!cl_model_forward(g.m, x, n, false) || cl_model_backward(g.m, dout) != CL_OK)) {
        cli_error("Grad-CAM: %s", cl_model_error(g.m));
        ok = false;
    }
    const cl_real *A = ok ? cl_model_activation(g.m, target) : NULL;
    const cl_real *dA = ok ? cl_model_activation_grad(g.m, target) : NULL;
    if (ok && (!A || !dA)) {
        cli_error("Grad-CAM: the activations of the target layer were not kept");
        ok = false;
    }
    for (int k = 0; ok && k < n; k++) {
        const cl_real *a = A + (size_t)k * hw * ts.c, *da = dA + (size_t)k * hw * ts.c;
        double peak = 0;
        for (size_t p = 0; p < hw; p++) cam[p] = 0;
        for (int c = 0; c < ts.c; c++) {
            double alpha = 0;
            for (size_t p = 0; p < hw; p++) alpha += da[p * ts.c + c];
            alpha /= (double)hw;
            for (size_t p = 0; p < hw; p++) cam[p] += alpha * a[p * ts.c + c];
        }
        for (size_t p = 0; p < hw; p++) {
            if (cam[p] < 0) cam[p] = 0;
            if (cam[p] > peak) peak = cam[p];
        }
        const uint8_t *img = ds->images + (size_t)r->mis[k] * isz;
        int row = k / cols, col = k % cols;
        int top = (2 * row) * cols + col, bottom = (2 * row + 1) * cols + col;
        uint8_t *orig = rgb + (size_t)(2 * k) * npix * 3, *over = orig + npix * 3;
        for (int y = 0; y < ds->h; y++)
            for (int xx = 0; xx < ds->w; xx++) {
                size_t p = (size_t)y * ds->w + xx;
                double v = peak > 0 ? sample_bilinear(cam, ts.h, ts.w, ds->h, ds->w, y, xx) / peak : 0;
                double heat[3];
                jet(v, heat);
                for (int c = 0; c < 3; c++) {
                    uint8_t px = img[p * ds->c + (ds->c == 3 ? c : 0)];
                    orig[p * 3 + c] = px;
                    over[p * 3 + c] = (uint8_t)lrint(0.5 * px + 0.5 * 255 * heat[c]);
                }
            }
        cells[top] = orig;
        cells[bottom] = over;
        cap[top] = mcap[k];
        mcap[k] = NULL;
        char buf[160];
        snprintf(buf, sizeof buf, "looked for: %s", g.class_names[r->ev.pred[r->mis[k]]]);
        cap[bottom] = strdup(buf);
    }
    if (ok) {
        char title[400], path[4400], err[512];
        snprintf(title, sizeof title, "Grad-CAM on %s for the predicted class", r->gradcam_layer);
        grid_spec gs = {.images = cells, .count = ncells, .h = ds->h, .w = ds->w, .c = 3,
                        .columns = cols, .scale = caption_scale(ds->w), .title = title, .captions = (const char *const *)cap};
        path_in(r, path, sizeof path, "gradcam.png");
        ok = grid_write_png(path, &gs, err, sizeof err);
        if (!ok) cli_error("%s", err);
        r->has_gradcam = ok;
    }
    free(x), free(dout), free(cam), free(rgb), free(cells);
    free_strings(cap, ncells);
    free_strings(mcap, n);
    cli_close_checkpoint(&g);
    return ok;
}

/* ---- report.html ------------------------------------------------------------------ */

static void html_figure(FILE *f, const report *r, const char *file, const char *caption, bool *ok) {
    char path[4400];
    path_in(r, path, sizeof path, file);
    fputs("<figure>\n", f);
    *ok &= html_png(f, path, caption);
    fputs("<figcaption>", f);
    html_text(f, caption);
    fputs("</figcaption>\n</figure>\n", f);
}

static void html_pre_file(FILE *f, const report *r, const char *file) {
    char path[4400];
    path_in(r, path, sizeof path, file);
    char *text = cli_read_text(path, 1u << 20);
    fputs("<pre>", f);
    html_text(f, text ? text : "(missing)");
    fputs("</pre>\n", f);
    free(text);
}

/* The index of the epoch with the best test accuracy (the first on a tie; -1 when
 * there is none) and the seconds of all epochs. */
static int best_epoch(const cli_metrics *m, double *total_s) {
    int best = -1;
    *total_s = 0;
    for (int i = 0; i < m->n; i++) {
        if (best < 0 || m->test_acc[i] > m->test_acc[best]) best = i;
        *total_s += m->seconds[i];
    }
    return best;
}

/* The paragraph under the title: model, dataset, recipe, best and final accuracy. */
static void html_facts(FILE *f, const report *r, const char *model, int best, double total_s) {
    const cli_metrics *m = &r->metrics;
    const train_options *o = &r->ck.options;
    char dataset[256] = "";
    cli_run_config(r->dir, "dataset", dataset, sizeof dataset);
    fputs("<p class=\"facts\">", f);
    fprintf(f, "Model <b>");
    html_text(f, model);
    fprintf(f, "</b> (%lld parameters) on <b>", (long long)cl_model_param_count(r->ck.m));
    html_text(f, dataset);
    fprintf(f, "</b>; %d of %lld epochs, batch %lld, ", m->n, o->epochs, o->batch);
    html_text(f, o->opt);
    fprintf(f, " lr %.4g, schedule ", o->lr);
    html_text(f, o->sched);
    fputs(", augmentation ", f);
    html_text(f, o->aug[0] ? o->aug : "none");
    char spec[64];
    fputs(", test-time augmentation ", f);
    html_text(f, cl_tta_spec(&r->tta, spec, sizeof spec));
    fputs(".<br>", f);
    if (best >= 0)
        fprintf(f, "Best test accuracy <b>%.2f%%</b> at epoch %.0f; final %.2f%%; %.0f s in all "
                   "(%.1f s per epoch).",
                100 * m->test_acc[best], m->epoch[best], 100 * m->test_acc[m->n - 1], total_s,
                total_s / m->n);
    fputs("</p>\n", f);
}

/* Per class: correct, total, accuracy and the class it is most often taken for. */
static void html_class_table(FILE *f, const report *r) {
    fputs("<table>\n<tr><th class=\"l\">class</th><th>correct</th><th>total</th><th>accuracy</th>"
          "<th class=\"l\">most often taken for</th></tr>\n", f);
    const int K = r->ck.classes;
    for (int t = 0; t < K; t++) {
        long c, n;
        double acc = class_accuracy(r, t, &c, &n);
        int worst = -1;
        for (int k = 0; k < K; k++)
            if (k != t && r->ev.confusion[t * K + k] > 0 &&
                (worst < 0 || r->ev.confusion[t * K + k] > r->ev.confusion[t * K + worst]))
                worst = k;
        fputs("<tr><td class=\"l\">", f);
        html_text(f, r->ck.class_names[t]);
        fprintf(f, "</td><td>%ld</td><td>%ld</td><td>%.2f%%</td><td class=\"l\">", c, n, 100 * acc);
        if (worst >= 0) {
            html_text(f, r->ck.class_names[worst]);
            fprintf(f, " (%ld)", r->ev.confusion[t * K + worst]);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* The misclassified images: their count, figures and table. */
static void html_mistakes(FILE *f, const report *r, bool *ok) {
    fprintf(f, "<h2>Misclassified images</h2>\n<p>%d of %d test images are misclassified.</p>\n",
            r->nmis, r->ev.n);
    if (r->shown <= 0) return;
    html_figure(f, r, "misclassified.png", "The most confident mistakes: true class \u2192 "
                "predicted class (its softmax probability).", ok);
    if (r->has_gradcam) {
        char cap[512];
        snprintf(cap, sizeof cap, "Grad-CAM: where the network looked when it predicted the "
                 "wrong class. Red is where evidence for the prediction was found (gradients "
                 "of the predicted logit over %s).", r->gradcam_layer);
        html_figure(f, r, "gradcam.png", cap, ok);
    }
    fputs("<table>\n<tr><th>#</th><th>test index</th><th class=\"l\">true</th>"
          "<th class=\"l\">predicted</th><th>probability</th></tr>\n", f);
    for (int k = 0; k < r->shown; k++) {
        int i = r->mis[k];
        fprintf(f, "<tr><td>%d</td><td>%d</td><td class=\"l\">", k + 1, i);
        html_text(f, r->ck.class_names[r->test->labels[i]]);
        fputs("</td><td class=\"l\">", f);
        html_text(f, r->ck.class_names[r->ev.pred[i]]);
        fprintf(f, "</td><td>%.3f</td></tr>\n", r->ev.conf[i]);
    }
    fputs("</table>\n", f);
}

/* The analysis, a course write-up's last section, as a list. */
static void html_analysis(FILE *f, const report *r) {
    fputs("<h2>Analysis</h2>\n<ul class=\"analysis\">\n", f);
    for (int i = 0; i < r->nanalysis; i++) {
        fputs("<li>", f);
        html_text(f, r->analysis[i]);
        fputs("</li>\n", f);
    }
    fputs("</ul>\n<p>Thresholds: docs/analysis.md. The training figures are measured with "
          "augmentation and dropout, averaged over each epoch.</p>\n", f);
}

/* The metrics table (the best epoch marked), then the model's summary and file. */
static void html_metrics_and_model(FILE *f, const report *r, const char *model, int best) {
    const cli_metrics *m = &r->metrics;
    fputs("<h2>Metrics per epoch</h2>\n<table>\n<tr><th>epoch</th><th>lr</th><th>train loss</th>"
          "<th>train acc.</th><th>test loss</th><th>test acc.</th><th>seconds</th></tr>\n", f);
    for (int i = 0; i < m->n; i++)
        fprintf(f, "<tr%s><td>%.0f</td><td>%.4g</td><td>%.4f</td><td>%.2f%%</td><td>%.4f</td>"
                   "<td>%.2f%%</td><td>%.1f</td></tr>\n",
                i == best ? " class=\"best\"" : "", m->epoch[i], m->lr[i], m->train_loss[i],
                100 * m->train_acc[i], m->test_loss[i], 100 * m->test_acc[i], m->seconds[i]);
    fputs("</table>\n", f);

    fputs("<h2>Model</h2>\n<pre>", f);
    char *summary = NULL;
    size_t slen = 0;
    FILE *mem = open_memstream(&summary, &slen);
    if (mem) {
        cl_model_print_summary(r->ck.m, model, mem);
        fclose(mem);
        html_text(f, summary);
    }
    free(summary);
    fputs("</pre>\n<p>The model file:</p>\n", f);
    html_pre_file(f, r, "model.net");
}

static bool write_html(const report *r) {
    char path[4400];
    path_in(r, path, sizeof path, "report.html");
    cli_atomic_file out;
    FILE *f = cli_atomic_open(&out, path);
    if (!f) return false;
    char title[400], model[1024] = "";
    snprintf(title, sizeof title, "cnnlab run %s", r->name);
    html_begin(f, title);
    fputs("<h1>", f);
    html_text(f, title);
    fputs("</h1>\n", f);
    cli_run_config(r->dir, "model", model, sizeof model);
    double total_s;
    int best = best_epoch(&r->metrics, &total_s);
    html_facts(f, r, model, best, total_s);

    bool ok = true;
    fputs("<h2>Training curves</h2>\n", f);
    html_figure(f, r, "curves.png", "Loss and accuracy per epoch, on the training set (with "
                "augmentation and dropout, averaged over the epoch) and on the test set.", &ok);
    html_figure(f, r, "lr.png", "The learning-rate schedule, step by step.", &ok);

    fprintf(f, "<h2>Test set, epoch %d checkpoint</h2>\n<p>Average loss %.4f, accuracy %ld/%d "
               "(%.2f%%), from <code>",
            r->ck_epoch, r->ev.loss, r->ev.correct, r->ev.n, 100.0 * r->ev.correct / r->ev.n);
    html_text(f, strrchr(r->ck_path, '/') ? strrchr(r->ck_path, '/') + 1 : r->ck_path);
    fputs("</code>.</p>\n", f);
    if (r->tta.nviews > 1) {
        char note[512];
        fputs("<p class=\"tta\">", f);
        html_text(f, cli_tta_note(&r->tta, note, sizeof note));
        fputs(".</p>\n", f);
    }
    html_figure(f, r, "per_class.png", "Test accuracy per class.", &ok);
    html_figure(f, r, "confusion.png", "Confusion matrix: rows are the true classes, columns the "
                "predictions; colour is the fraction of the row.", &ok);
    html_class_table(f, r);
    html_analysis(f, r);
    html_mistakes(f, r, &ok);
    html_metrics_and_model(f, r, model, best);
    fputs("<h2>Configuration</h2>\n", f);
    html_pre_file(f, r, "config.txt");
    html_end(f);
    return cli_atomic_close(&out, ok);
}

/* ---- the whole report ------------------------------------------------------------ */

static bool open_run(report *r) {
    const cli_report_args *a = r->a;
    if (!cli_read_metrics(r->dir, &r->metrics)) return false;
    if (r->metrics.n == 0) {
        cli_error("%s/metrics.csv: no finished epoch yet, nothing to report", r->dir);
        return false;
    }
    snprintf(r->ck_path, sizeof r->ck_path, "%s/best.safetensors", r->dir);
    if (access(r->ck_path, R_OK) != 0)
        snprintf(r->ck_path, sizeof r->ck_path, "%s/last.safetensors", r->dir);
    /* batches of 100: the activations of a larger batch would dominate the memory */
    cl_compile_args ca = {.max_batch = EVAL_BATCH, .threads = a->threads};
    if (!cli_open_checkpoint(r->ck_path, ca, &r->ck)) return false;
    /* the checkpoint's epoch: the best accuracy's row for best, else the last row */
    r->ck_epoch = (int)r->metrics.epoch[r->metrics.n - 1];
    if (strstr(r->ck_path, "best.safetensors")) {
        int b = 0;
        for (int i = 1; i < r->metrics.n; i++)
            if (r->metrics.test_acc[i] > r->metrics.test_acc[b]) b = i;
        r->ck_epoch = (int)r->metrics.epoch[b];
    }
    if (a->test) {
        r->test = a->test;
    } else {
        const char *data = a->data ? a->data : r->ck.options.data;
        const char *data_dir = a->data_dir ? a->data_dir
                               : r->ck.options.data_dir[0] ? r->ck.options.data_dir : NULL;
        cli_dataset_ref ref;
        cli_image_size rs = {r->ck.input.h, r->ck.input.w};
        if (!cli_resolve_dataset(data, data_dir, &ref) ||
            !cli_load_dataset(&ref, CL_SPLIT_TEST, &rs, &r->test_own))
            return false;
        r->test = &r->test_own;
    }
    /* the run's test-time augmentation unless --tta says otherwise */
    const char *tta = a->tta ? a->tta : r->ck.options.tta;
    if (!cli_parse_tta(a->tta ? "report --tta" : "the run's tta option", tta, &r->tta)) return false;
    r->target = a->target > 0 ? a->target : !isnan(r->ck.options.target) ? r->ck.options.target : 0;
    int limit = r->ck.options.test_subset > 0 ? (int)r->ck.options.test_subset : 0;
    if (!cli_evaluate(&r->ck, r->test, EVAL_BATCH, limit, &r->tta, &r->ev)) return false;
    r->nmis = cli_misclassified(&r->ev, r->test, &r->mis);
    r->shown = r->nmis < a->show ? r->nmis : a->show;
    r->nanalysis = cli_analysis_lines(&r->metrics, r->target, r->ev.confusion, r->ck.classes,
                                      r->ck.class_names, r->analysis);
    return true;
}

/* analysis.txt: the TTA note (if any) and the analysis, a line each. */
static bool write_analysis(const report *r) {
    char path[4400], note[512];
    path_in(r, path, sizeof path, "analysis.txt");
    cli_atomic_file a;
    FILE *f = cli_atomic_open(&a, path);
    if (!f) return false;
    fprintf(f, "Analysis of %s (epoch %d checkpoint, %d test images)\n", r->name, r->ck_epoch, r->ev.n);
    if (r->tta.nviews > 1) fprintf(f, "%s.\n", cli_tta_note(&r->tta, note, sizeof note));
    for (int i = 0; i < r->nanalysis; i++) fprintf(f, "%s\n", r->analysis[i]);
    return cli_atomic_close(&a, true);
}

bool cli_write_report(const char *run_dir, const cli_report_args *a) {
    static report r;
    memset(&r, 0, sizeof r);
    r.dir = run_dir;
    r.a = a;
    size_t len = strlen(run_dir);
    while (len > 1 && run_dir[len - 1] == '/') len--;
    const char *base = run_dir + len;
    while (base > run_dir && base[-1] != '/') base--;
    snprintf(r.name, sizeof r.name, "%.*s", (int)(run_dir + len - base), base);
    bool ok = open_run(&r) && figure_curves(&r) && figure_lr(&r) && figure_per_class(&r) &&
              figure_confusion(&r) && (r.shown == 0 || figure_misclassified(&r)) &&
              (r.shown == 0 || figure_gradcam(&r)) && write_analysis(&r) && write_html(&r);
    if (ok && !a->quiet) {
        printf("Report: %s/report.html (figures: curves.png, lr.png, per_class.png, confusion.png%s%s)\n",
               run_dir, r.shown ? ", misclassified.png" : "", r.has_gradcam ? ", gradcam.png" : "");
        char note[512];
        if (r.tta.nviews > 1)
            printf("%s: test accuracy %.2f%%, loss %.4f (epoch %d checkpoint)\n",
                   cli_tta_note(&r.tta, note, sizeof note), 100.0 * r.ev.correct / r.ev.n, r.ev.loss,
                   r.ck_epoch);
        printf("Analysis (also in analysis.txt):\n");
        for (int i = 0; i < r.nanalysis; i++) printf("  %s\n", r.analysis[i]);
    }
    free(r.mis);
    cli_eval_free(&r.ev);
    cl_dataset_free(&r.test_own);
    cli_close_checkpoint(&r.ck);
    cli_metrics_free(&r.metrics);
    return ok;
}

typedef struct {
    const char *data, *data_dir, *tta;
    long long show, threads;
    double target;
} report_options;

static const cli_option report_options_table[] = {
    {"data", OPT_TEXT, offsetof(report_options, data), "evaluate on this dataset's test split",
     .arg = "NAME|DIR", .def = "the run's"},
    {"data-dir", OPT_TEXT, offsetof(report_options, data_dir), "where to look for named datasets first",
     .arg = "DIR"},
    {"show", OPT_INT, offsetof(report_options, show), "the most confident mistakes drawn (with Grad-CAM)",
     .def = "20", .min = 0, .max = 100},
    {"threads", OPT_INT, offsetof(report_options, threads), "compute threads",
     .def = "0, all cores", .min = 0, .max = 1024},
    {"tta", OPT_TEXT, offsetof(report_options, tta), "test-time augmentation of the evaluation: "
     "flip and/or translate:N (flip is meant for CIFAR-like data, not digits), or none",
     .arg = "SPEC", .def = "the run's --tta"},
    {"target", OPT_DOUBLE, offsetof(report_options, target), "the test accuracy whose first epoch "
     "the analysis names", .arg = "ACC", .def = "the run's --target, else none", .min = 0, .max = 1,
     .min_open = true},
    {0},
};

static int cmd_report(int argc, char **argv);

const cli_command report_command = {
    .name = "report",
    .operands = "RUN",
    .summary = "figures and a self-contained report.html for a run folder",
    .description =
        "Writes the figures and report.html of a run folder again (train writes them\n"
        "too): the loss and accuracy curves, the learning rate, per-class accuracy,\n"
        "the confusion matrix, the N most confident mistakes and their Grad-CAM heat\n"
        "maps, from metrics.csv and the best checkpoint evaluated again (with the run's\n"
        "test-time augmentation, or --tta), and the analysis (analysis.txt, also\n"
        "printed): underfits, overfits from epoch N or fits well, the train/test gap and\n"
        "its trend, whether the last epochs still rise, the first epoch at --target and\n"
        "the most confused class pairs (thresholds: docs/analysis.md).",
    .options = report_options_table,
    .run = cmd_report,
};

static int cmd_report(int argc, char **argv) {
    report_options o = {.show = 20};
    const char *dir = NULL;
    int n = cli_parse(&report_command, &o, argc - 1, argv + 1, &dir, 1);
    if (n < 0) return cli_parse_status(n);
    if (!dir) {
        cli_print_usage(&report_command, stderr);
        return EXIT_USAGE;
    }
    cl_tta tta;
    if (o.tta && !cli_parse_tta("report --tta", o.tta, &tta)) return EXIT_USAGE;
    cli_report_args a = {.data = o.data, .data_dir = o.data_dir, .show = (int)o.show,
                         .threads = (int)o.threads, .tta = o.tta, .target = o.target};
    return cli_write_report(dir, &a) ? 0 : 1;
}
