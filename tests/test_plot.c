/* test_plot.c: the figures of cli/draw/plot*.c, drawn to PNGs in a temporary folder and
 * read back with libpng: exact pixel sizes (cols * panel_w by rows * panel_h, plus
 * PLOT_TITLE_H with a title), real content (many colours from anti-aliasing, a
 * sensible share of ink), the palette colour of a series present exactly when that
 * series is drawn, robustness on awkward data (NaN, Inf, no points, one point, flat
 * values, huge values, long and invalid UTF-8 labels, 100 classes, tiny panels), the
 * messages for bad input and the atomic write. Usage:
 *   test_plot           (figures in a temporary folder, removed at the end)
 *   CNNLAB_PLOT_DIR=/tmp/plot_examples test_plot   (figures kept there, to look at) */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "plot.h"

#define EPOCHS 20
#define BLUE 0 /* tab10 indices */
#define ORANGE 1
#define GREEN 2

typedef struct {
    char dir[512];
    bool keep; /* a folder the user named: leave the figures there */
} test_dir;

/* A figure read back: RGB, 3 bytes a pixel. */
typedef struct {
    int w, h;
    unsigned char *rgb;
} picture;

static void path_in(const test_dir *d, const char *name, char *path, size_t n) {
    snprintf(path, n, "%s/%s", d->dir, name);
}

/* Read a PNG as RGB (alpha composited over white); false with a failure recorded. */
static bool read_png(const char *path, picture *pic) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    *pic = (picture){0};
    if (!png_image_begin_read_from_file(&image, path)) {
        t_fail("%s: %s", path, image.message);
        return false;
    }
    image.format = PNG_FORMAT_RGB;
    pic->rgb = xmalloc(PNG_IMAGE_SIZE(image));
    png_color white = {255, 255, 255};
    if (!png_image_finish_read(&image, &white, pic->rgb, 0, NULL)) {
        t_fail("%s: %s", path, image.message);
        free(pic->rgb);
        pic->rgb = NULL;
        return false;
    }
    pic->w = (int)image.width;
    pic->h = (int)image.height;
    return true;
}

static size_t distinct_colours(const picture *pic) {
    unsigned char *seen = calloc((size_t)1 << 21, 1);
    if (!seen) return 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)pic->w * pic->h; i++) {
        const unsigned char *p = pic->rgb + 3 * i;
        unsigned c = (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
        if (!(seen[c >> 3] & (1u << (c & 7)))) {
            seen[c >> 3] |= (unsigned char)(1u << (c & 7));
            n++;
        }
    }
    free(seen);
    return n;
}

/* Share of pixels with a channel below 250 (pngstat's "non-white"). */
static double ink(const picture *pic) {
    size_t n = (size_t)pic->w * pic->h, dark = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = pic->rgb + 3 * i;
        dark += p[0] < 250 || p[1] < 250 || p[2] < 250;
    }
    return n ? (double)dark / (double)n : 0;
}

/* Pixels within tol (per channel) of palette colour i. */
static size_t colour_count(const picture *pic, int palette_index, int tol) {
    double c[3];
    plot_color(palette_index, c);
    int want[3] = {(int)lround(c[0] * 255), (int)lround(c[1] * 255), (int)lround(c[2] * 255)};
    size_t n = 0;
    for (size_t i = 0; i < (size_t)pic->w * pic->h; i++) {
        const unsigned char *p = pic->rgb + 3 * i;
        n += abs(p[0] - want[0]) <= tol && abs(p[1] - want[1]) <= tol && abs(p[2] - want[2]) <= tol;
    }
    return n;
}

static size_t rgb_count(const picture *pic, int r, int g, int b) {
    size_t n = 0;
    for (size_t i = 0; i < (size_t)pic->w * pic->h; i++) {
        const unsigned char *p = pic->rgb + 3 * i;
        n += p[0] == r && p[1] == g && p[2] == b;
    }
    return n;
}

/* Write f as name in the test folder and read it back; checks the size against
 * want_w x want_h, that no .tmp file is left, and that the figure has at least
 * min_colours colours and an ink share in [min_ink, max_ink]. */
static bool write_and_read(const test_dir *d, plot_figure *f, const char *name, int want_w,
                           int want_h, size_t min_colours, double min_ink, double max_ink,
                           picture *pic) {
    char path[700], tmp[710], err[512] = "";
    path_in(d, name, path, sizeof path);
    *pic = (picture){0};
    if (!f) {
        t_fail("%s: plot_figure_new returned NULL", name);
        return false;
    }
    if (!plot_figure_write_png(f, path, err, sizeof err)) {
        t_fail("%s: write failed: %s", name, err);
        return false;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (access(tmp, F_OK) == 0) t_fail("%s: %s left behind", name, tmp);
    if (!read_png(path, pic)) return false;
    int fw, fh;
    plot_figure_size(f, &fw, &fh);
    if (pic->w != want_w || pic->h != want_h || fw != want_w || fh != want_h)
        t_fail("%s: %dx%d pixels (plot_figure_size %dx%d), expected %dx%d", name, pic->w, pic->h,
               fw, fh, want_w, want_h);
    size_t colours = distinct_colours(pic);
    double share = ink(pic);
    if (colours < min_colours)
        t_fail("%s: only %zu colours (want >= %zu)", name, colours, min_colours);
    if (share < min_ink || share > max_ink)
        t_fail("%s: non-white share %.4f outside [%.3f, %.3f]", name, share, min_ink, max_ink);
    return true;
}

static void expect_ok(bool ok, const char *what, const char *err) {
    if (!ok) t_fail("%s failed: %s", what, err);
}

/* ---- data -------------------------------------------------------------------- */

typedef struct {
    double epoch[EPOCHS], train_loss[EPOCHS], test_loss[EPOCHS], train_acc[EPOCHS],
        test_acc[EPOCHS];
    double lr[EPOCHS];
} curves;

static void make_curves(curves *c) {
    for (int i = 0; i < EPOCHS; i++) {
        double e = i + 1, wobble = 0.03 * sin(3.1 * e);
        c->epoch[i] = e;
        c->train_loss[i] = 1.9 * exp(-0.18 * e) + 0.35 + wobble;
        c->test_loss[i] = 1.6 * exp(-0.2 * e) + 0.55 - 0.5 * wobble;
        c->train_acc[i] = 0.92 - 0.6 * exp(-0.2 * e) + 0.5 * wobble;
        c->test_acc[i] = 0.86 - 0.5 * exp(-0.25 * e) - 0.3 * wobble;
        c->lr[i] = 0.1 * 0.5 * (1 + cos(3.14159265 * i / EPOCHS)) + 1e-4;
    }
}

/* ---- tests -------------------------------------------------------------------- */

static void test_figure_sizes(void) {
    t_begin("figure/size limits and the size rule");
    int bad[][4] = {{0, 1, 200, 200}, {9, 1, 200, 200}, {1, 0, 200, 200},  {1, 9, 200, 200},
                    {1, 1, 99, 200},  {1, 1, 200, 99},  {1, 1, 4001, 200}, {8, 8, 4000, 4000}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        plot_figure *f = plot_figure_new(bad[i][0], bad[i][1], bad[i][2], bad[i][3], "t");
        if (f) t_fail("%dx%d panels of %dx%d accepted", bad[i][0], bad[i][1], bad[i][2], bad[i][3]);
        plot_figure_free(f);
    }
    int w, h;
    plot_figure *f = plot_figure_new(2, 2, 520, 360, "run");
    plot_figure_size(f, &w, &h);
    if (w != 1040 || h != 720 + PLOT_TITLE_H) t_fail("2x2 of 520x360 with a title: %dx%d", w, h);
    plot_figure_free(f);
    f = plot_figure_new(3, 1, 100, 100, NULL);
    plot_figure_size(f, &w, &h);
    if (w != 300 || h != 100) t_fail("3x1 of 100x100 without a title: %dx%d", w, h);
    plot_figure_free(f);
    f = plot_figure_new(1, 1, 100, 100, ""); /* an empty title takes no band */
    plot_figure_size(f, &w, &h);
    if (w != 100 || h != 100) t_fail("an empty title: %dx%d", w, h);
    plot_figure_free(f);
    plot_figure_free(NULL);
    t_end();
}

/* The course's 2x2 panel: losses, accuracies with a target line, the learning rate
 * on a log axis, and the test accuracy of three runs. */
static void test_curves_2x2(const test_dir *d) {
    t_begin("lines/2x2 training curves");
    curves c;
    make_curves(&c);
    char err[512] = "";
    plot_figure *f =
        plot_figure_new(2, 2, 520, 360, "cifar10_bn: 20 epochs, OneCycle, 43,594 parameters");
    plot_series loss[2] = {
        {.x = c.epoch,
         .y = c.train_loss,
         .n = EPOCHS,
         .label = "train",
         .color = BLUE,
         .dashed = true},
        {.x = c.epoch, .y = c.test_loss, .n = EPOCHS, .label = "test", .color = ORANGE}};
    expect_ok(plot_draw_lines(f, 0,
                              &(plot_lines){.title = "Loss",
                                            .xlabel = "epoch",
                                            .ylabel = "cross entropy",
                                            .series = loss,
                                            .nseries = 2,
                                            .x_integer = true},
                              err, sizeof err),
              "loss", err);
    plot_series acc[2] = {{.x = c.epoch,
                           .y = c.train_acc,
                           .n = EPOCHS,
                           .label = "train",
                           .color = BLUE,
                           .dashed = true},
                          {.x = c.epoch,
                           .y = c.test_acc,
                           .n = EPOCHS,
                           .label = "test",
                           .color = ORANGE,
                           .markers = true}};
    expect_ok(plot_draw_lines(f, 1,
                              &(plot_lines){.title = "Accuracy",
                                            .xlabel = "epoch",
                                            .ylabel = "accuracy",
                                            .series = acc,
                                            .nseries = 2,
                                            .y_percent = true,
                                            .x_integer = true,
                                            .has_hline = true,
                                            .hline = 0.85,
                                            .hline_label = "target 85%",
                                            .legend = 1},
                              err, sizeof err),
              "accuracy", err);
    plot_series lr = {.x = c.epoch, .y = c.lr, .n = EPOCHS, .label = "lr", .color = GREEN};
    expect_ok(plot_draw_lines(f, 2,
                              &(plot_lines){.title = "Learning rate",
                                            .xlabel = "epoch",
                                            .ylabel = "learning rate",
                                            .series = &lr,
                                            .nseries = 1,
                                            .y_log = true,
                                            .x_integer = true},
                              err, sizeof err),
              "learning rate", err);
    double other[3][EPOCHS];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < EPOCHS; i++) other[r][i] = c.test_acc[i] - 0.04 * r + 0.01 * sin(i + r);
    plot_series runs[3] = {
        {.x = c.epoch, .y = other[0], .n = EPOCHS, .label = "cifar10_bn", .color = 0},
        {.x = c.epoch, .y = other[1], .n = EPOCHS, .label = "cifar10_gn", .color = 1},
        {.x = c.epoch,
         .y = other[2],
         .n = EPOCHS,
         .label = "cifar10_ln (layer norm, a much longer name)",
         .color = 2}};
    expect_ok(plot_draw_lines(f, 3,
                              &(plot_lines){.title = "Test accuracy of three runs",
                                            .xlabel = "epoch",
                                            .ylabel = "test accuracy",
                                            .series = runs,
                                            .nseries = 3,
                                            .y_percent = true,
                                            .x_integer = true,
                                            .legend = 4},
                              err, sizeof err),
              "runs", err);
    picture pic;
    if (write_and_read(d, f, "curves_2x2.png", 1040, 720 + PLOT_TITLE_H, 300, 0.03, 0.4, &pic)) {
        for (int k = 0; k < 3; k++)
            if (colour_count(&pic, k, 0) < 50)
                t_fail("palette colour %d: %zu exact pixels", k, colour_count(&pic, k, 0));
        if (colour_count(&pic, 3, 20) > 0) t_fail("tab10 red drawn though no series is red");
    }
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

/* One series in orange: no blue anywhere; then the same panel redrawn in blue. */
static void test_series_colour(const test_dir *d) {
    t_begin("lines/the series colour appears exactly when drawn");
    curves c;
    make_curves(&c);
    char err[512] = "";
    plot_figure *f = plot_figure_new(1, 1, 480, 320, NULL);
    plot_series s = {.x = c.epoch, .y = c.test_loss, .n = EPOCHS, .label = "test", .color = ORANGE};
    plot_lines l = {
        .title = "Loss", .xlabel = "epoch", .ylabel = "loss", .series = &s, .nseries = 1};
    expect_ok(plot_draw_lines(f, 0, &l, err, sizeof err), "orange", err);
    picture pic;
    if (write_and_read(d, f, "orange.png", 480, 320, 50, 0.01, 0.3, &pic)) {
        if (colour_count(&pic, ORANGE, 0) < 30)
            t_fail("orange: %zu exact pixels", colour_count(&pic, ORANGE, 0));
        if (colour_count(&pic, BLUE, 40) > 0) t_fail("blue-ish pixels without a blue series");
    }
    free(pic.rgb);
    s.color = BLUE;
    expect_ok(plot_draw_lines(f, 0, &l, err, sizeof err), "blue", err);
    if (write_and_read(d, f, "blue.png", 480, 320, 50, 0.01, 0.3, &pic)) {
        if (colour_count(&pic, BLUE, 0) < 30)
            t_fail("blue: %zu exact pixels", colour_count(&pic, BLUE, 0));
        if (colour_count(&pic, ORANGE, 40) > 0) t_fail("the redrawn panel still holds orange");
    }
    free(pic.rgb);
    s.color = 12; /* wraps to green */
    expect_ok(plot_draw_lines(f, 0, &l, err, sizeof err), "colour 12", err);
    if (write_and_read(d, f, "wrapped.png", 480, 320, 50, 0.01, 0.3, &pic) &&
        colour_count(&pic, GREEN, 0) < 30)
        t_fail("colour 12 is not tab10 green");
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

/* Awkward data, one panel each: gaps, nothing, one point, flat, huge, tiny ranges. */
static void test_awkward_lines(const test_dir *d) {
    t_begin("lines/NaN, Inf, empty, single point, flat, extreme values");
    char err[512] = "";
    double x[12], y[12];
    for (int i = 0; i < 12; i++) {
        x[i] = i;
        y[i] = 0.5 + 0.3 * sin(i);
    }
    y[3] = NAN;
    y[7] = INFINITY;
    x[9] = NAN;
    double one_x = 4, one_y = 0.3, flat[12], huge[4] = {1e308, -1e308, 1e300, -DBL_MAX};
    double narrow[4] = {1, 1 + 1e-15, 1 - 1e-15, 1}, all_nan[4] = {NAN, NAN, NAN, NAN};
    double negative[4] = {-1, 0, -3, 0.5};
    for (int i = 0; i < 12; i++) flat[i] = 0.7;
    double offset[4] = {1e6, 1e6 + 3, 1e6 + 1, 1e6 + 2}, tiny[4] = {1e-9, 3e-9, 2e-9, 2.5e-9};
    double many_y[30][2];
    plot_series many[30];
    char many_labels[30][16];
    for (int k = 0; k < 30; k++) {
        many_y[k][0] = k;
        many_y[k][1] = k + 1;
        snprintf(many_labels[k], sizeof many_labels[k], "run %d", k);
        many[k] =
            (plot_series){.x = x, .y = many_y[k], .n = 2, .label = many_labels[k], .color = k};
    }
    plot_figure *f = plot_figure_new(4, 4, 300, 220, "awkward data");
    plot_series gaps = {.x = x, .y = y, .n = 12, .label = "gaps", .color = BLUE, .markers = true};
    plot_series empty = {.x = NULL, .y = NULL, .n = 0, .label = "empty", .color = ORANGE};
    plot_series single = {.x = &one_x, .y = &one_y, .n = 1, .label = "one point", .color = BLUE};
    plot_series level = {.x = x, .y = flat, .n = 12, .label = "flat", .color = BLUE};
    plot_series extreme = {.x = x, .y = huge, .n = 4, .label = "huge", .color = BLUE};
    plot_series tight = {.x = x, .y = narrow, .n = 4, .color = BLUE};
    plot_series nans = {.x = x, .y = all_nan, .n = 4, .label = "all NaN", .color = BLUE};
    plot_series nonpositive = {
        .x = x, .y = negative, .n = 4, .label = "<= 0 on a log axis", .color = BLUE};
    plot_series offset_series = {.x = x, .y = offset, .n = 4, .color = BLUE};
    plot_series tiny_series = {.x = x, .y = tiny, .n = 4, .color = BLUE};
    plot_series nan_x = {.x = all_nan, .y = y, .n = 4, .label = "x all NaN", .color = BLUE};
    struct {
        const char *what;
        plot_lines l;
    } cases[] = {
        {"gaps",
         {.title = "NaN and Inf leave gaps",
          .series = &gaps,
          .nseries = 1,
          .xlabel = "x",
          .ylabel = "y"}},
        {"empty series", {.title = "an empty series", .series = &empty, .nseries = 1}},
        {"no series", {.title = "no series", .nseries = 0, .xlabel = "epoch", .ylabel = "loss"}},
        {"single point",
         {.title = "one point", .series = &single, .nseries = 1, .x_integer = true}},
        {"flat", {.title = "all equal", .series = &level, .nseries = 1, .y_percent = true}},
        {"huge", {.title = "huge values", .series = &extreme, .nseries = 1}},
        {"narrow", {.title = "a range of 1e-15", .series = &tight, .nseries = 1}},
        {"all NaN", {.title = "all NaN", .series = &nans, .nseries = 1, .y_log = true}},
        {"log of <= 0", {.title = "log axis", .series = &nonpositive, .nseries = 1, .y_log = true}},
        {"fixed range beside the data",
         {.title = "ymin above the data",
          .series = &gaps,
          .nseries = 1,
          .has_ymin = true,
          .ymin = 5}},
        {"fixed range clips",
         {.title = "fixed 0.4..0.6",
          .series = &gaps,
          .nseries = 1,
          .has_ymin = true,
          .ymin = 0.4,
          .has_ymax = true,
          .ymax = 0.6,
          .has_hline = true,
          .hline = 2,
          .hline_label = "off the axes"}},
        {"one flat point, log",
         {.title = "one point, log, with a target line",
          .series = &single,
          .nseries = 1,
          .y_log = true,
          .has_hline = true,
          .hline = 0.3,
          .hline_label = "target"}},
        {"offset", {.title = "1e6 + 0..3", .series = &offset_series, .nseries = 1}},
        {"tiny", {.title = "1e-9 .. 3e-9", .series = &tiny_series, .nseries = 1}},
        {"x all NaN", {.title = "x all NaN", .series = &nan_x, .nseries = 1}},
        {"30 series", {.title = "30 legend entries", .series = many, .nseries = 30, .legend = 2}},
    };
    for (int i = 0; i < 16; i++)
        expect_ok(plot_draw_lines(f, i, &cases[i].l, err, sizeof err), cases[i].what, err);
    picture pic;
    if (write_and_read(d, f, "awkward_lines.png", 1200, 880 + PLOT_TITLE_H, 100, 0.02, 0.4, &pic)) {
        /* The single point is drawn as a dot in panel 3 (x 900..1200, y 0..220 + band). */
        size_t dot = 0;
        for (int yy = PLOT_TITLE_H; yy < PLOT_TITLE_H + 220; yy++)
            for (int xx = 900; xx < 1200; xx++) {
                const unsigned char *p = pic.rgb + 3 * ((size_t)yy * pic.w + xx);
                dot += p[0] == 31 && p[1] == 119 && p[2] == 180;
            }
        if (dot < 4) t_fail("the single point left %zu blue pixels", dot);
    }
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

static void test_bars(const test_dir *d) {
    t_begin("bars/10 classes, three runs, 100 classes");
    static const char *const cifar10[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};
    double acc[3][10];
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 10; c++) acc[s][c] = 0.62 + 0.3 * fabs(sin(c * 1.3 + s)) - 0.02 * s;
    acc[2][4] = NAN; /* a missing value: no bar */
    const double *one[1] = {acc[0]}, *three[3] = {acc[0], acc[1], acc[2]};
    static const char *const runs[3] = {"cifar10_bn", "cifar10_gn", "cifar10_ln"};
    char err[512] = "";
    plot_figure *f = plot_figure_new(1, 1, 560, 360, NULL);
    expect_ok(plot_draw_bars(f, 0,
                             &(plot_bars){.title = "Per-class test accuracy",
                                          .ylabel = "accuracy",
                                          .categories = cifar10,
                                          .ncategories = 10,
                                          .values = one,
                                          .nseries = 1,
                                          .y_percent = true,
                                          .has_ymax = true,
                                          .ymax = 1},
                             err, sizeof err),
              "10 classes", err);
    picture pic;
    if (write_and_read(d, f, "bars_10.png", 560, 360, 60, 0.08, 0.6, &pic)) {
        if (colour_count(&pic, BLUE, 0) < 2000)
            t_fail("10 bars: %zu blue pixels", colour_count(&pic, BLUE, 0));
        if (colour_count(&pic, ORANGE, 30) > 0) t_fail("orange in a one-series chart");
    }
    free(pic.rgb);
    plot_figure_free(f);

    f = plot_figure_new(1, 1, 720, 380, NULL);
    expect_ok(plot_draw_bars(f, 0,
                             &(plot_bars){.title = "Per-class test accuracy of three runs",
                                          .xlabel = "class",
                                          .ylabel = "accuracy",
                                          .categories = cifar10,
                                          .ncategories = 10,
                                          .values = three,
                                          .series_labels = runs,
                                          .nseries = 3,
                                          .y_percent = true},
                             err, sizeof err),
              "three runs", err);
    if (write_and_read(d, f, "bars_3runs.png", 720, 380, 60, 0.08, 0.6, &pic))
        for (int k = 0; k < 3; k++)
            if (colour_count(&pic, k, 0) < 500)
                t_fail("run %d: %zu pixels of its colour", k, colour_count(&pic, k, 0));
    free(pic.rgb);
    plot_figure_free(f);

    /* CIFAR-100: 100 classes with long names, one non-UTF-8. */
    char names[100][64];
    const char *labels[100];
    double fine[100];
    for (int c = 0; c < 100; c++) {
        snprintf(names[c], sizeof names[c], "class_%02d_%s", c,
                 c % 7 ? "x" : "with_a_rather_long_name");
        labels[c] = names[c];
        fine[c] = 0.3 + 0.6 * fabs(sin(c * 0.7));
    }
    names[5][0] = (char)0xC3; /* a lone lead byte */
    const double *fine_one[1] = {fine};
    f = plot_figure_new(1, 1, 900, 360, NULL);
    expect_ok(plot_draw_bars(f, 0,
                             &(plot_bars){.title = "CIFAR-100 per-class accuracy",
                                          .ylabel = "accuracy",
                                          .categories = labels,
                                          .ncategories = 100,
                                          .values = fine_one,
                                          .nseries = 1,
                                          .y_percent = true},
                             err, sizeof err),
              "100 classes", err);
    if (write_and_read(d, f, "bars_100.png", 900, 360, 40, 0.1, 0.7, &pic) &&
        colour_count(&pic, BLUE, 0) < 3000)
        t_fail("100 bars: %zu blue pixels", colour_count(&pic, BLUE, 0));
    free(pic.rgb);

    /* Edge cases in one figure: no categories, numbers for names, negatives, all zero. */
    plot_figure_free(f);
    f = plot_figure_new(2, 2, 320, 240, NULL);
    double mixed[4] = {0.5, -0.25, 0, 1.5}, zeros[4] = {0, 0, 0, 0};
    const double *mixed_one[1] = {mixed}, *zeros_one[1] = {zeros};
    expect_ok(plot_draw_bars(f, 0,
                             &(plot_bars){.title = "no categories", .ncategories = 0, .nseries = 0},
                             err, sizeof err),
              "no categories", err);
    expect_ok(
        plot_draw_bars(
            f, 1,
            &(plot_bars){.title = "numbered", .ncategories = 4, .values = mixed_one, .nseries = 1},
            err, sizeof err),
        "numbered, negative", err);
    expect_ok(plot_draw_bars(f, 2,
                             &(plot_bars){.title = "all zero",
                                          .ncategories = 4,
                                          .values = zeros_one,
                                          .nseries = 1,
                                          .y_percent = true},
                             err, sizeof err),
              "all zero", err);
    expect_ok(plot_draw_bars(f, 3,
                             &(plot_bars){.title = "negative, percent",
                                          .ncategories = 4,
                                          .values = mixed_one,
                                          .nseries = 1,
                                          .y_percent = true,
                                          .has_ymax = true,
                                          .ymax = 1},
                             err, sizeof err),
              "negative percent", err);
    write_and_read(d, f, "bars_edge.png", 640, 480, 40, 0.02, 0.6, &pic);
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

static void test_heatmaps(const test_dir *d) {
    t_begin("heatmap/10 and 100 classes");
    static const char *const cifar10[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};
    long counts[10 * 10];
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            counts[r * 10 + c] = r == c ? 700 + 25 * r : (r * 7 + c * 3) % 23;
    counts[3 * 10 + 5] = 160; /* cats taken for dogs */
    char err[512] = "";
    plot_figure *f = plot_figure_new(1, 1, 640, 600, NULL);
    expect_ok(plot_draw_heatmap(f, 0,
                                &(plot_heatmap){.title = "Confusion matrix (test set)",
                                                .xlabel = "predicted",
                                                .ylabel = "true",
                                                .labels = cifar10,
                                                .counts = counts,
                                                .n = 10},
                                err, sizeof err),
              "10 classes", err);
    picture pic;
    if (write_and_read(d, f, "heatmap_10.png", 640, 600, 200, 0.3, 0.95, &pic)) {
        /* The diagonal (most of each row) is dark blue, the empty cells near-white. */
        size_t dark = 0;
        for (size_t i = 0; i < (size_t)pic.w * pic.h; i++)
            dark += pic.rgb[3 * i] < 40 && pic.rgb[3 * i + 1] < 110 && pic.rgb[3 * i + 2] > 90;
        if (dark < 10 * 400) t_fail("too few dark blue cell pixels (%zu)", dark);
        if (rgb_count(&pic, 247, 251, 255) < 10 * 400)
            t_fail("too few near-white (empty) cell pixels");
    }
    free(pic.rgb);

    long *big = xmalloc(sizeof *big * 100 * 100);
    for (int r = 0; r < 100; r++)
        for (int c = 0; c < 100; c++) big[r * 100 + c] = r == c ? 60 : (r * 31 + c * 17) % 5 == 0;
    for (int c = 0; c < 100; c++) big[7 * 100 + c] = 0; /* a class never seen: an empty row */
    plot_figure_free(f);
    f = plot_figure_new(1, 1, 700, 640, NULL);
    expect_ok(plot_draw_heatmap(f, 0,
                                &(plot_heatmap){.title = "CIFAR-100 confusion",
                                                .xlabel = "predicted",
                                                .ylabel = "true",
                                                .labels = NULL,
                                                .counts = big,
                                                .n = 100},
                                err, sizeof err),
              "100 classes", err);
    write_and_read(d, f, "heatmap_100.png", 700, 640, 30, 0.2, 0.95, &pic);
    free(pic.rgb);
    free(big);

    /* Small cases side by side: none, one class, two classes, all zero. */
    long two[4] = {5, 0, 3, 12}, zero[4] = {0, 0, 0, 0}, single = 1234567;
    static const char *const yes_no[2] = {
        "yes, a label far too long to fit beside the matrix at all", "no"};
    plot_figure_free(f);
    f = plot_figure_new(4, 1, 260, 240, "heat map edge cases");
    expect_ok(plot_draw_heatmap(f, 0, &(plot_heatmap){.title = "n = 0", .n = 0}, err, sizeof err),
              "n = 0", err);
    expect_ok(plot_draw_heatmap(f, 1,
                                &(plot_heatmap){.title = "one class", .counts = &single, .n = 1},
                                err, sizeof err),
              "one class", err);
    expect_ok(plot_draw_heatmap(f, 2,
                                &(plot_heatmap){.title = "two",
                                                .labels = yes_no,
                                                .counts = two,
                                                .n = 2,
                                                .xlabel = "predicted",
                                                .ylabel = "true"},
                                err, sizeof err),
              "two classes", err);
    expect_ok(plot_draw_heatmap(f, 3, &(plot_heatmap){.title = "all zero", .counts = zero, .n = 2},
                                err, sizeof err),
              "all zero", err);
    write_and_read(d, f, "heatmap_edge.png", 1040, 240 + PLOT_TITLE_H, 50, 0.05, 0.9, &pic);
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

/* Tiny panels, long and broken labels: everything still draws. */
static void test_tiny_and_labels(const test_dir *d) {
    t_begin("robustness/8x8 tiny panels, long and invalid labels");
    curves c;
    make_curves(&c);
    char err[512] = "", long_label[2000];
    memset(long_label, 'W', sizeof long_label - 1);
    long_label[sizeof long_label - 1] = '\0';
    const char broken[] = {'c', 'a', 't', (char)0xE2, (char)0x82, ' ', (char)0xFF, '\n', 'x', '\0'};
    plot_figure *f = plot_figure_new(8, 8, 100, 100, long_label);
    plot_series s[2] = {
        {.x = c.epoch, .y = c.train_loss, .n = EPOCHS, .label = long_label, .color = BLUE},
        {.x = c.epoch, .y = c.test_loss, .n = EPOCHS, .label = broken, .color = ORANGE}};
    long counts[9] = {3, 1, 0, 0, 4, 1, 2, 0, 9};
    const char *labels3[3] = {long_label, broken, NULL};
    const double *vals[1] = {c.test_acc};
    for (int i = 0; i < 64; i++) {
        bool ok;
        if (i % 3 == 0)
            ok = plot_draw_lines(f, i,
                                 &(plot_lines){.title = long_label,
                                               .xlabel = broken,
                                               .ylabel = long_label,
                                               .series = s,
                                               .nseries = 2,
                                               .legend = i % 5},
                                 err, sizeof err);
        else if (i % 3 == 1)
            ok = plot_draw_bars(f, i,
                                &(plot_bars){.title = broken,
                                             .categories = labels3,
                                             .ncategories = 3,
                                             .values = vals,
                                             .series_labels = labels3,
                                             .nseries = 1,
                                             .y_percent = true,
                                             .xlabel = long_label},
                                err, sizeof err);
        else
            ok = plot_draw_heatmap(f, i,
                                   &(plot_heatmap){.title = long_label,
                                                   .labels = labels3,
                                                   .counts = counts,
                                                   .n = 3,
                                                   .ylabel = broken},
                                   err, sizeof err);
        if (!ok) t_fail("panel %d: %s", i, err);
    }
    picture pic;
    write_and_read(d, f, "tiny_panels.png", 800, 800 + PLOT_TITLE_H, 100, 0.05, 0.8, &pic);
    free(pic.rgb);
    plot_figure_free(f);
    t_end();
}

static void expect_refused(bool ok, const char *what, const char *err, const char *want) {
    if (ok)
        t_fail("%s: accepted", what);
    else if (!err[0])
        t_fail("%s: refused without a message", what);
    else if (want && !strstr(err, want))
        t_fail("%s: message '%s' does not mention '%s'", what, err, want);
}

static void test_bad_input(void) {
    t_begin("errors/bad input is refused with a message");
    plot_figure *f = plot_figure_new(2, 2, 200, 150, NULL);
    double x[2] = {0, 1}, y[2] = {1, 2};
    plot_series ok_series = {.x = x, .y = y, .n = 2, .color = 0};
    plot_lines lines = {.series = &ok_series, .nseries = 1};
    char err[512];
#define REFUSED(call, want)                                                                        \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        expect_refused(call, #call, err, want);                                                    \
    } while (0)
    REFUSED(plot_draw_lines(f, 4, &lines, err, sizeof err), "panel 4");
    REFUSED(plot_draw_lines(f, -1, &lines, err, sizeof err), "panel -1");
    REFUSED(plot_draw_lines(NULL, 0, &lines, err, sizeof err), "no figure");
    REFUSED(plot_draw_lines(f, 0, NULL, err, sizeof err), "no line chart");
    REFUSED(plot_draw_lines(f, 0, &(plot_lines){.series = NULL, .nseries = 1}, err, sizeof err),
            "NULL");
    REFUSED(
        plot_draw_lines(f, 0, &(plot_lines){.series = &ok_series, .nseries = -1}, err, sizeof err),
        "-1");
    plot_series bad = ok_series;
    bad.n = -3;
    REFUSED(plot_draw_lines(f, 0, &(plot_lines){.series = &bad, .nseries = 1}, err, sizeof err),
            "n -3");
    bad = ok_series;
    bad.y = NULL;
    REFUSED(plot_draw_lines(f, 0, &(plot_lines){.series = &bad, .nseries = 1}, err, sizeof err),
            "y NULL");
    bad = ok_series;
    bad.color = -1;
    REFUSED(plot_draw_lines(f, 0, &(plot_lines){.series = &bad, .nseries = 1}, err, sizeof err),
            "colour -1");
    REFUSED(plot_draw_lines(f, 0, &(plot_lines){.series = &ok_series, .nseries = 1, .legend = 5},
                            err, sizeof err),
            "legend");
    REFUSED(plot_draw_lines(f, 0,
                            &(plot_lines){.series = &ok_series,
                                          .nseries = 1,
                                          .has_ymin = true,
                                          .ymin = 2,
                                          .has_ymax = true,
                                          .ymax = 1},
                            err, sizeof err),
            "y range");
    REFUSED(plot_draw_lines(
                f, 0,
                &(plot_lines){
                    .series = &ok_series, .nseries = 1, .y_log = true, .has_ymin = true, .ymin = 0},
                err, sizeof err),
            "log");
    REFUSED(plot_draw_lines(
                f, 0,
                &(plot_lines){.series = &ok_series, .nseries = 1, .has_ymax = true, .ymax = NAN},
                err, sizeof err),
            "y range");
    REFUSED(
        plot_draw_lines(
            f, 0,
            &(plot_lines){.series = &ok_series, .nseries = 1, .has_hline = true, .hline = INFINITY},
            err, sizeof err),
        "reference");

    const double *none[1] = {NULL}, *vals[1] = {y};
    REFUSED(plot_draw_bars(f, 9, &(plot_bars){.ncategories = 2, .values = vals, .nseries = 1}, err,
                           sizeof err),
            "panel 9");
    REFUSED(plot_draw_bars(f, 0, &(plot_bars){.ncategories = -2, .values = vals, .nseries = 1}, err,
                           sizeof err),
            "-2");
    REFUSED(plot_draw_bars(f, 0, &(plot_bars){.ncategories = 2, .values = NULL, .nseries = 1}, err,
                           sizeof err),
            "NULL");
    REFUSED(plot_draw_bars(f, 0, &(plot_bars){.ncategories = 2, .values = none, .nseries = 1}, err,
                           sizeof err),
            "series 0");
    REFUSED(plot_draw_bars(
                f, 0,
                &(plot_bars){
                    .ncategories = 2, .values = vals, .nseries = 1, .has_ymax = true, .ymax = -1},
                err, sizeof err),
            "ymax");
    REFUSED(plot_draw_bars(f, 0, NULL, err, sizeof err), "no bar chart");

    long counts[4] = {1, 2, -3, 4};
    REFUSED(plot_draw_heatmap(f, 0, &(plot_heatmap){.counts = counts, .n = -1}, err, sizeof err),
            "-1");
    REFUSED(plot_draw_heatmap(f, 0, &(plot_heatmap){.counts = NULL, .n = 2}, err, sizeof err),
            "NULL");
    REFUSED(plot_draw_heatmap(f, 0, &(plot_heatmap){.counts = counts, .n = 2}, err, sizeof err),
            "negative");
    REFUSED(plot_draw_heatmap(f, 0, &(plot_heatmap){.counts = counts, .n = 1001}, err, sizeof err),
            "1001");
    REFUSED(plot_draw_heatmap(f, 7, &(plot_heatmap){.counts = counts, .n = 1}, err, sizeof err),
            "panel 7");
    REFUSED(plot_figure_write_png(NULL, "x.png", err, sizeof err), "no figure");
    REFUSED(plot_figure_write_png(f, NULL, err, sizeof err), "no path");
#undef REFUSED
    /* After all that, the figure still draws and the refused calls left no trace. */
    if (!plot_draw_lines(f, 0, &lines, err, sizeof err))
        t_fail("a good chart after bad ones: %s", err);
    plot_figure_free(f);
    t_end();
}

static void test_atomic_write(const test_dir *d) {
    t_begin("write/atomic, replaces, fails with a message into a missing folder");
    char path[700], tmp[710], err[512] = "";
    plot_figure *f = plot_figure_new(1, 1, 200, 150, "x");
    path_in(d, "atomic.png", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *old = fopen(path, "w");
    if (old) {
        fputs("not a png", old);
        fclose(old);
    }
    if (!plot_figure_write_png(f, path, err, sizeof err)) t_fail("write: %s", err);
    if (access(tmp, F_OK) == 0) t_fail("%s left behind", tmp);
    picture pic;
    if (read_png(path, &pic) && (pic.w != 200 || pic.h != 150 + PLOT_TITLE_H))
        t_fail("replaced file is %dx%d", pic.w, pic.h);
    free(pic.rgb);
    char missing[800];
    snprintf(missing, sizeof missing, "%s/no/such/folder/fig.png", d->dir);
    err[0] = '\0';
    if (plot_figure_write_png(f, missing, err, sizeof err))
        t_fail("wrote into a missing folder");
    else if (!strstr(err, "No such file"))
        t_fail("missing folder message: '%s'", err);
    plot_figure_free(f);
    t_end();
}

/* Remove the figures written into the temporary folder, then the folder. */
static void remove_test_dir(const test_dir *d) {
    DIR *dir = opendir(d->dir);
    if (!dir) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", d->dir, e->d_name);
        remove(path);
    }
    closedir(dir);
    rmdir(d->dir);
}

int main(void) {
    test_dir d = {0};
    const char *keep = getenv("CNNLAB_PLOT_DIR");
    if (keep && keep[0]) {
        snprintf(d.dir, sizeof d.dir, "%s", keep);
        mkdir(d.dir, 0777);
        d.keep = true;
    } else {
        const char *tmpdir = getenv("TMPDIR");
        snprintf(d.dir, sizeof d.dir, "%s/cnnlab-plot.XXXXXX",
                 tmpdir && tmpdir[0] ? tmpdir : "/tmp");
        if (!mkdtemp(d.dir)) {
            t_fail("cannot make a temporary folder %s", d.dir);
            return t_finish();
        }
    }
    test_figure_sizes();
    test_curves_2x2(&d);
    test_series_colour(&d);
    test_awkward_lines(&d);
    test_bars(&d);
    test_heatmaps(&d);
    test_tiny_and_labels(&d);
    test_bad_input();
    test_atomic_write(&d);
    if (!d.keep) remove_test_dir(&d);
    return t_finish();
}
