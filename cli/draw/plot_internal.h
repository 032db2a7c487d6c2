/* plot_internal.h: what the files of the figure code share (plot.h is the public
 * side): the sizes and greys of the look, the figure, a panel being drawn and its
 * axes, and the text (plot_text.c) and axis, panel, legend and category-axis
 * (plot_axes.c) helpers that each chart kind (plot_lines.c, plot_bars.c,
 * plot_heatmap.c) draws with. */
#ifndef CNNLAB_PLOT_INTERNAL_H
#define CNNLAB_PLOT_INTERNAL_H

#include <cairo/cairo.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "plot.h"

#define MAX_PANELS_A_SIDE 8
#define MIN_PANEL_PX 100
#define MAX_PANEL_PX 4000
#define MAX_FIGURE_PIXELS (100L * 1000 * 1000) /* 400 MB of surface */
#define MAX_HEATMAP_N 1000 /* a million cells: more would be unreadable and slow */
#define MAX_TICKS 16
#define MAX_MINOR_TICKS 64
#define TEXT_MAX 256 /* bytes kept of one label; longer ones are shortened anyway */
#define FIGURE_TITLE_FONT 16.0
#define MIN_FONT 7.0 /* smallest text drawn (category labels of 100 classes) */
#define LEGEND_BEST 4
#define PI 3.14159265358979323846

/* Greys of the matplotlib look: near-black text, dark spines, a light grid. */
#define INK_GREY 0.15
#define SPINE_GREY 0.25
#define GRID_GREY 0.87
#define REFERENCE_GREY 0.45
#define LEGEND_EDGE_GREY 0.8

struct plot_figure {
    int cols, rows, panel_w, panel_h;
    int title_h; /* PLOT_TITLE_H with a title, else 0 */
    cairo_surface_t *surface;
    cairo_t *cr;
};

/* One panel being drawn: where it is, where its axes are, and its text sizes. */
typedef struct {
    cairo_t *cr;
    double x, y, w, h; /* the panel, in figure pixels */
    double ax, ay, aw, ah; /* the axes area inside it (whole pixels, so 1-pixel lines are crisp) */
    double s; /* scale of text and strokes, from the panel's size */
    double tick_font, label_font, title_font, legend_font;
    double pad, gap, tick_len;
} panel;

/* A numeric axis: the range shown and its ticks. */
typedef struct {
    double lo, hi;
    bool log, percent;
    int nticks, nminor;
    double ticks[MAX_TICKS], minor[MAX_MINOR_TICKS];
    int decimals; /* of the tick labels */
    bool general; /* labels in %g form (log decades, huge or tiny values)... */
    int digits; /* ...with enough significant digits to tell neighbours apart */
} axis;

enum { ALIGN_LEFT, ALIGN_CENTRE, ALIGN_RIGHT };
enum { VALIGN_TOP, VALIGN_MIDDLE, VALIGN_BASELINE, VALIGN_BOTTOM };

static inline double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline bool has_text(const char *s) { return s && s[0]; }

static inline void set_grey(cairo_t *cr, double g) { cairo_set_source_rgb(cr, g, g, g); }

static inline void set_rgb(cairo_t *cr, const double rgb[3]) {
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
}

/* A 1-pixel line on the pixel centre nearest v: crisp instead of a 2-pixel blur. */
static inline double snap(double v) { return floor(v) + 0.5; }

/* One legend entry: a line sample (or a swatch) and its label. */
typedef struct {
    const char *label;
    double rgb[3];
    bool dashed, markers;
    bool swatch; /* a filled square (bars) instead of a line sample */
    double line_w;
} legend_entry;

/* A measured legend: its box and rows. */
typedef struct {
    double w, h; /* the box */
    double row, border, sample, text_gap, text_w;
    int rows; /* entries shown, plus one "+N more" row when they do not all fit */
    int shown;
} legend_box;

/* How the labels of a category axis are drawn. */
typedef struct {
    double font; /* size of the labels */
    int step; /* every step-th label is drawn (100 classes in a few hundred pixels) */
    int angle; /* 0, 45 (reading up to the right, ending at the tick) or 90 degrees */
    double max_w; /* labels are shortened to this width */
    double depth; /* height the labels take below their anchor */
} category_layout;

/* ---- text (plot_text.c): fonts, measuring, shortening and drawing labels ---- */

void pl_set_font(cairo_t *cr, double size, bool bold);
double pl_line_height(cairo_t *cr);
double pl_text_width(cairo_t *cr, const char *s);
const char *pl_fit_text(cairo_t *cr, const char *s, double max_w, char *buf);
void pl_draw_text(cairo_t *cr, const char *s, double x, double y, double angle, int halign,
                  int valign, double max_w);
double pl_fitted_width(cairo_t *cr, const char *s, double max_w);
const char *pl_category_label(const char *const *labels, int i, char *buf, size_t n);

/* ---- axes (plot_axes.c): ticks, panels, titles, grids, legends, category axes ---- */

void pl_make_ticks(axis *a, int target, bool integer);
void pl_tick_text(const axis *a, double v, char *buf, size_t n);
double pl_px_x(const panel *p, const axis *a, double v);
double pl_px_y(const panel *p, const axis *a, double v);
double pl_widest_tick(cairo_t *cr, const axis *a);
void pl_fit_x_ticks(panel *p, axis *a, bool integer);
void pl_pad_view(double *lo, double *hi, bool log, double zero_pad, bool fixed_lo, bool fixed_hi);
bool pl_check_panel(const plot_figure *f, int index, const void *spec, const char *kind,
                    char *err, size_t errlen);
void pl_begin_panel(plot_figure *f, int index, panel *p);
bool pl_end_panel(panel *p, int index, char *err, size_t errlen);
void pl_set_axes(panel *p, double left, double top, double right, double bottom);
double pl_title_space(panel *p, const char *title);
double pl_ylabel_space(panel *p, const char *ylabel);
double pl_xlabel_space(panel *p, const char *xlabel);
void pl_draw_titles(panel *p, const char *title, const char *xlabel, const char *ylabel,
                    double xlabel_top, double left_offset);
void pl_draw_spines(panel *p);
void pl_draw_y_grid(panel *p, const axis *ya);
void pl_draw_x_grid(panel *p, const axis *xa);
void pl_draw_y_ticks(panel *p, const axis *ya);
void pl_draw_x_ticks(panel *p, const axis *xa);
legend_box pl_measure_legend(panel *p, const legend_entry *e, int n, double max_w, double max_h);
void pl_draw_legend(panel *p, const legend_entry *e, int n, const legend_box *b, double x, double y);
void pl_legend_corner(const panel *p, const legend_box *b, int c, double *x, double *y);
double pl_legend_row_height(panel *p, const legend_entry *e, int n, double max_w, int *rows_out);
void pl_draw_legend_rows(panel *p, const legend_entry *e, int n, double max_w, double cx, double y);
int pl_dense_labels(cairo_t *cr, double font, double slot, double *font_out);
category_layout pl_layout_categories(cairo_t *cr, const char *const *labels, int n, double slot, double first_room, double font, double max_len);
void pl_draw_categories(panel *p, const char *const *labels, int n, const category_layout *c, double x0, double slot, double axis_bottom);

#endif
