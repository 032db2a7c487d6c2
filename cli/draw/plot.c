/* plot.c: the figures of plot.h, drawn with cairo. Every panel is laid out from the
 * measured size of the text it holds (title, tick labels, axis labels, category
 * labels), so labels are never cut at the panel's edge; axes get "nice" ticks (1, 2,
 * 5 x 10^k, decades on a log axis); line charts clip their segments to the axes and
 * leave gaps at non-finite values; bar charts put the series of a category side by
 * side; heat maps colour each cell by its share of the row. The look follows
 * matplotlib's defaults (tab10, a 5% data margin, a framed legend with line
 * samples). Figures are written as PNG atomically (path.tmp, then rename). */
#include "grid.h"
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* matplotlib's tab10 palette, in its order. */
static const unsigned char TAB10[10][3] = {
    {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

void plot_color(int i, double rgb[3]) {
    int k = ((i % 10) + 10) % 10;
    for (int c = 0; c < 3; c++) rgb[c] = TAB10[k][c] / 255.0;
}

/* ---- figures ---------------------------------------------------------------------- */

plot_figure *plot_figure_new(int cols, int rows, int panel_w, int panel_h, const char *title) {
    if (cols < 1 || cols > MAX_PANELS_A_SIDE || rows < 1 || rows > MAX_PANELS_A_SIDE ||
        panel_w < MIN_PANEL_PX || panel_w > MAX_PANEL_PX || panel_h < MIN_PANEL_PX ||
        panel_h > MAX_PANEL_PX ||
        (long)cols * panel_w * ((long)rows * panel_h + PLOT_TITLE_H) > MAX_FIGURE_PIXELS)
        return NULL;
    plot_figure *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    *f = (plot_figure){.cols = cols,
                       .rows = rows,
                       .panel_w = panel_w,
                       .panel_h = panel_h,
                       .title_h = has_text(title) ? PLOT_TITLE_H : 0};
    int width = cols * panel_w, height = rows * panel_h + f->title_h;
    f->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    f->cr = cairo_create(f->surface);
    if (cairo_status(f->cr) != CAIRO_STATUS_SUCCESS) {
        plot_figure_free(f);
        return NULL;
    }
    /* Grey anti-aliasing (sub-pixel colour fringes look wrong in a PNG viewed
     * anywhere) and unhinted metrics (even letter spacing, also in turned text). */
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_SLIGHT);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(f->cr, fo);
    cairo_font_options_destroy(fo);
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    if (f->title_h) {
        set_grey(f->cr, INK_GREY);
        pl_set_font(f->cr, FIGURE_TITLE_FONT, true);
        pl_draw_text(f->cr, title, width / 2.0, f->title_h / 2.0 + 2, 0, ALIGN_CENTRE, VALIGN_MIDDLE,
                  width - 24);
    }
    if (cairo_status(f->cr) != CAIRO_STATUS_SUCCESS) {
        plot_figure_free(f);
        return NULL;
    }
    return f;
}

void plot_figure_size(const plot_figure *f, int *width, int *height) {
    *width = f ? f->cols * f->panel_w : 0;
    *height = f ? f->rows * f->panel_h + f->title_h : 0;
}

bool plot_figure_write_png(plot_figure *f, const char *path, char *err, size_t errlen) {
    if (!f || !has_text(path)) {
        snprintf(err, errlen, "plot: %s",
                 f ? "no path to write the figure to" : "no figure to write");
        return false;
    }
    cairo_status_t st = cairo_status(f->cr);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: cairo: %s", path, cairo_status_to_string(st));
        return false;
    }
    cairo_surface_flush(f->surface);
    return cli_png_write_atomic(f->surface, path, err, errlen);
}

void plot_figure_free(plot_figure *f) {
    if (!f) return;
    if (f->cr) cairo_destroy(f->cr);
    if (f->surface) cairo_surface_destroy(f->surface);
    free(f);
}
