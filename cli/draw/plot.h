/* plot.h: the figures of `cnnlab report` and `cnnlab compare`, drawn with cairo:
 * line charts (training curves, the learning-rate schedule, overlaid runs), bar
 * charts (per-class accuracy) and heat maps (the confusion matrix). A figure is a
 * grid of panels (the course's 2x2 loss/accuracy panel is 2 columns x 2 rows);
 * each panel has a title, axes with "nice" ticks (1, 2, 5 x 10^k), tick labels,
 * axis labels, a light grid and a legend. Lines are anti-aliased; text uses the
 * toy "sans-serif" face (DejaVu Sans through fontconfig on Debian).
 *
 *   plot_figure *f = plot_figure_new(2, 2, 520, 360, "cifar10_bn");
 *   plot_draw_lines(f, 0, &(plot_lines){...});   panels numbered row by row
 *   plot_figure_write_png(f, "curves.png", err, sizeof err);
 *   plot_figure_free(f);
 */
#ifndef CNNLAB_PLOT_H
#define CNNLAB_PLOT_H

#include <stdbool.h>
#include <stddef.h>

/* One line: n points (x[i], y[i]); non-finite y values leave a gap. */
typedef struct {
    const double *x, *y;
    int n;
    const char *label; /* legend entry, or NULL (not in the legend) */
    int color;         /* index into the palette (tab10 order: blue, orange, green, red, ...) */
    bool dashed;       /* e.g. train dashed, test solid */
    bool markers;      /* a small dot on each point (useful for few points) */
} plot_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    const plot_series *series;
    int nseries;
    bool y_percent;   /* y values are fractions, tick labels show percent ("70%") */
    bool x_integer;   /* x ticks only at integers (epochs) */
    bool y_log;       /* logarithmic y axis (values <= 0 skipped) */
    bool x_log;       /* logarithmic x axis (values <= 0 skipped), e.g. learning rates */
    bool has_ymin, has_ymax; /* fix the y range instead of fitting the data */
    double ymin, ymax;
    bool has_hline;   /* a grey dashed horizontal reference line, e.g. the target accuracy */
    double hline;
    const char *hline_label;
    int legend;       /* 0: top right, 1: bottom right, 2: top left, 3: bottom left,
                         4: the corner hiding the least of the lines */
} plot_lines;

/* Vertical bars, one group per category; nseries bars per group side by side (one
 * series: per-class accuracy of a run; several: the same classes across runs). */
typedef struct {
    const char *title, *xlabel, *ylabel;
    const char *const *categories; /* [ncategories] labels under the groups (rotated if long) */
    int ncategories;
    const double *const *values;   /* [nseries][ncategories] */
    const char *const *series_labels; /* [nseries] legend entries, or NULL */
    int nseries;
    bool y_percent;  /* fractions shown as percent, with the value printed above each bar
                        when there is room */
    bool has_ymax;
    double ymax;
} plot_bars;

/* A matrix of counts (rows: true class, columns: predicted class) drawn as cells
 * coloured by the row-normalised value (a white-to-blue sequential map), with the
 * count printed in each cell when the cells are large enough (n <= 20), class
 * labels on both axes and a colour bar. */
typedef struct {
    const char *title, *xlabel, *ylabel;
    const char *const *labels; /* [n] */
    const long *counts;        /* [n][n] row-major */
    int n;
} plot_heatmap;

typedef struct plot_figure plot_figure;

/* Height of the band holding the figure title, above the panels. */
#define PLOT_TITLE_H 36

/* A figure of cols x rows panels of panel_w x panel_h pixels each, white, with an
 * optional title on top. NULL if the sizes are out of range (1..8 panels a side,
 * 100..4000 pixels, 100 million pixels in all) or cairo fails. The PNG is exactly
 * cols * panel_w pixels wide and rows * panel_h high, plus PLOT_TITLE_H when title
 * is neither NULL nor ""; panel i has its top-left corner at ((i % cols) * panel_w,
 * title band + (i / cols) * panel_h). */
plot_figure *plot_figure_new(int cols, int rows, int panel_w, int panel_h, const char *title);
/* The figure's size in pixels, as written to the PNG. */
void plot_figure_size(const plot_figure *f, int *width, int *height);
/* Draw into panel i (row-major). False with a message in err on bad input (no
 * series, n < 0, NULL arrays, panel out of range). Empty data draws empty axes.
 * Drawing a panel again replaces it. Labels may be any bytes (invalid UTF-8 shows
 * as '?'); labels too long for their room are cut short with an ellipsis. A NULL
 * category or heat map label list numbers the classes 0, 1, ...; heat map counts
 * must be >= 0 and n at most 1000. */
bool plot_draw_lines(plot_figure *f, int panel, const plot_lines *p, char *err, size_t errlen);
bool plot_draw_bars(plot_figure *f, int panel, const plot_bars *p, char *err, size_t errlen);
bool plot_draw_heatmap(plot_figure *f, int panel, const plot_heatmap *p, char *err, size_t errlen);
/* Write the figure as a PNG, atomically (path.tmp, then rename). */
bool plot_figure_write_png(plot_figure *f, const char *path, char *err, size_t errlen);
void plot_figure_free(plot_figure *f);

/* The palette colour i (any i >= 0, wrapping), components in [0, 1]. */
void plot_color(int i, double rgb[3]);

#endif
