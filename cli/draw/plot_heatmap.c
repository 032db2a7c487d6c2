/* plot_heatmap.c: heat maps (plot_draw_heatmap): a square matrix of cells coloured
 * by their share of the row (matplotlib's Blues), the counts in the cells when they
 * fit, labels on both axes and a colour bar. */
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* matplotlib's "Blues" (ColorBrewer), from near-white to dark blue, evenly spaced. */
static const unsigned char BLUES[9][3] = {
    {247, 251, 255}, {222, 235, 247}, {198, 219, 239}, {158, 202, 225}, {107, 174, 214},
    {66, 146, 198},  {33, 113, 181},  {8, 81, 156},    {8, 48, 107},
};

/* The Blues colour of v in [0, 1] (NaN as 0). */
static void blues(double v, double rgb[3]) {
    double p = (v > 0 ? fmin(v, 1) : 0) * 8;
    int k = p >= 8 ? 7 : (int)p;
    double t = p - k;
    for (int c = 0; c < 3; c++) rgb[c] = ((1 - t) * BLUES[k][c] + t * BLUES[k + 1][c]) / 255.0;
}

/* ---- heat maps ------------------------------------------------------------------ */

static bool check_heatmap(const plot_heatmap *h, int index, char *err, size_t errlen) {
    if (h->n < 0 || h->n > MAX_HEATMAP_N || (h->n > 0 && !h->counts)) {
        snprintf(err, errlen, "plot panel %d: heat map of %d x %d cells (0..%d a side) %s", index,
                 h->n, h->n, MAX_HEATMAP_N, h->counts ? "" : "without counts (NULL)");
        return false;
    }
    for (long i = 0; i < (long)h->n * h->n; i++)
        if (h->counts[i] < 0) {
            snprintf(err, errlen, "plot panel %d: heat map count [%ld][%ld] is negative (%ld)",
                     index, i / h->n, i % h->n, h->counts[i]);
            return false;
        }
    return true;
}

/* The layout of a heat map: square cells, the matrix as large as the labels around
 * it allow. */
typedef struct {
    double cell;       /* a cell's side */
    double offset;     /* of the centred block from the panel's left edge */
    double bar_w;      /* the colour bar's width */
    double label_font; /* of the row labels */
    double max_label;  /* their widest */
    int ystep;         /* every ystep-th row labelled */
    category_layout cat;
} heatmap_layout;

/* The label font and the category layout follow the cell size, hence three rounds;
 * then the block of title, labels, matrix and colour bar is centred in the panel
 * (the axes of p set to the matrix). */
static heatmap_layout layout_heatmap(panel *p, const plot_heatmap *h) {
    cairo_t *cr = p->cr;
    int n = h->n;
    char buf[32];
    heatmap_layout L = {.bar_w = 14 * p->s, .label_font = p->tick_font, .max_label = 0.22 * p->w,
                        .ystep = 1};
    pl_set_font(cr, p->tick_font, false);
    double right =
        3 * p->gap + L.bar_w + p->tick_len + p->gap + pl_text_width(cr, "100%") + p->pad;
    double top = pl_title_space(p, h->title), ylab = pl_ylabel_space(p, h->ylabel);
    double side = fmin(p->w - right - ylab - 80 * p->s, p->h - top - 60 * p->s);
    double left = 0, bottom = 0;
    for (int round = 0; round < 3; round++) {
        side = fmax(side, 10);
        L.cell = n > 0 ? side / n : side;
        L.ystep = pl_dense_labels(cr, p->tick_font, L.cell, &L.label_font);
        pl_set_font(cr, L.label_font, false);
        double widest = 0;
        for (int i = 0; i < n; i += L.ystep)
            widest = fmax(widest, pl_fitted_width(cr, pl_category_label(h->labels, i, buf, sizeof buf),
                                                  L.max_label));
        left = p->pad + ylab + widest + p->gap + p->tick_len + 1;
        L.cat = pl_layout_categories(cr, h->labels, n, L.cell, left + 0.5 * L.cell, p->tick_font,
                                     0.22 * p->h);
        bottom = p->tick_len + p->gap + (n > 0 ? L.cat.depth : 0) + pl_xlabel_space(p, h->xlabel) +
                 p->pad;
        side = fmin(p->w - left - right, p->h - top - bottom);
    }
    side = fmax(side, 10);
    L.offset = fmax(0, floor((p->w - left - side - right) / 2));
    p->y += fmax(0, floor((p->h - top - side - bottom) / 2));
    p->ax = round(p->x + L.offset + left);
    p->ay = round(p->y + top);
    p->aw = p->ah = round(side);
    L.cell = n > 0 ? p->aw / n : p->aw;
    return L;
}

/* Cells between whole-pixel edges: neighbouring cells meet without seams. */
static void draw_cells(panel *p, const plot_heatmap *h, const double *row_total, double cell) {
    int n = h->n;
    for (int r = 0; r < n; r++) {
        double y0 = round(p->ay + r * cell), y1 = round(p->ay + (r + 1) * cell);
        for (int c = 0; c < n; c++) {
            double x0 = round(p->ax + c * cell), x1 = round(p->ax + (c + 1) * cell), rgb[3];
            blues(row_total[r] > 0 ? h->counts[(size_t)r * n + c] / row_total[r] : 0, rgb);
            set_rgb(p->cr, rgb);
            cairo_rectangle(p->cr, x0, y0, x1 - x0, y1 - y0);
            cairo_fill(p->cr);
        }
    }
}

/* Counts in the cells when every one fits (at most 20 classes): white on the dark
 * half of the map. */
static void draw_counts(panel *p, const plot_heatmap *h, const double *row_total, double cell) {
    int n = h->n;
    if (n <= 0 || n > 20) return;
    cairo_t *cr = p->cr;
    char buf[32];
    double font = 0;
    for (double ft = fmin(p->tick_font, 0.45 * cell); ft >= MIN_FONT && font == 0; ft *= 0.9) {
        pl_set_font(cr, ft, false);
        double widest = 0;
        for (long i = 0; i < (long)n * n; i++) {
            snprintf(buf, sizeof buf, "%ld", h->counts[i]);
            widest = fmax(widest, pl_text_width(cr, buf));
        }
        if (widest <= 0.9 * cell) font = ft;
    }
    if (font <= 0) return;
    pl_set_font(cr, font, false);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            long count = h->counts[(size_t)r * n + c];
            double v = row_total[r] > 0 ? count / row_total[r] : 0;
            if (v > 0.5)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                set_grey(cr, INK_GREY);
            snprintf(buf, sizeof buf, "%ld", count);
            pl_draw_text(cr, buf, p->ax + (c + 0.5) * cell, p->ay + (r + 0.5) * cell, 0,
                         ALIGN_CENTRE, VALIGN_MIDDLE, cell);
        }
}

/* Row labels (with ticks) left of the matrix. */
static void draw_row_labels(panel *p, const plot_heatmap *h, const heatmap_layout *L) {
    cairo_t *cr = p->cr;
    char buf[32];
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    for (int r = 0; r < h->n; r += L->ystep) {
        double y = snap(p->ay + (r + 0.5) * L->cell);
        cairo_move_to(cr, p->ax - 1, y);
        cairo_line_to(cr, p->ax - 1 - p->tick_len, y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    pl_set_font(cr, L->label_font, false);
    for (int r = 0; r < h->n; r += L->ystep)
        pl_draw_text(cr, pl_category_label(h->labels, r, buf, sizeof buf),
                     p->ax - 1 - p->tick_len - p->gap, p->ay + (r + 0.5) * L->cell, 0, ALIGN_RIGHT,
                     VALIGN_MIDDLE, L->max_label);
}

/* The colour bar right of the matrix: the share of the row, 0% to 100%. */
static void draw_colour_bar(panel *p, double bar_w) {
    cairo_t *cr = p->cr;
    char buf[32];
    double bx = p->ax + p->aw + 3 * p->gap, by = p->ay, bh = p->ah;
    cairo_pattern_t *ramp = cairo_pattern_create_linear(0, by + bh, 0, by);
    for (int k = 0; k < 9; k++)
        cairo_pattern_add_color_stop_rgb(ramp, k / 8.0, BLUES[k][0] / 255.0, BLUES[k][1] / 255.0,
                                         BLUES[k][2] / 255.0);
    cairo_set_source(cr, ramp);
    cairo_rectangle(cr, round(bx), by, round(bar_w), bh);
    cairo_fill(cr);
    cairo_pattern_destroy(ramp);
    panel bar = *p;
    bar.ax = round(bx);
    bar.aw = round(bar_w);
    pl_draw_spines(&bar);
    axis scale = {.lo = 0, .hi = 1, .percent = true};
    pl_make_ticks(&scale, (int)clampd(bh / (45 * p->s), 2, 6), false);
    set_grey(cr, SPINE_GREY);
    for (int i = 0; i < scale.nticks; i++) {
        double y = snap(pl_px_y(&bar, &scale, scale.ticks[i]));
        cairo_move_to(cr, bar.ax + bar.aw, y);
        cairo_line_to(cr, bar.ax + bar.aw + p->tick_len, y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    pl_set_font(cr, p->tick_font, false);
    for (int i = 0; i < scale.nticks; i++) {
        pl_tick_text(&scale, scale.ticks[i], buf, sizeof buf);
        pl_draw_text(cr, buf, bar.ax + bar.aw + p->tick_len + p->gap,
                     pl_px_y(&bar, &scale, scale.ticks[i]), 0, ALIGN_LEFT, VALIGN_MIDDLE, p->w);
    }
}

bool plot_draw_heatmap(plot_figure *f, int index, const plot_heatmap *h, char *err, size_t errlen) {
    if (!pl_check_panel(f, index, h, "heat map", err, errlen) || !check_heatmap(h, index, err, errlen))
        return false;
    int n = h->n;
    double *row_total = calloc((size_t)(n > 0 ? n : 1), sizeof *row_total);
    if (!row_total) {
        snprintf(err, errlen, "plot panel %d: out of memory", index);
        return false;
    }
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) row_total[r] += (double)h->counts[(size_t)r * n + c];

    panel p;
    pl_begin_panel(f, index, &p);
    heatmap_layout L = layout_heatmap(&p, h);
    draw_cells(&p, h, row_total, L.cell);
    draw_counts(&p, h, row_total, L.cell);
    free(row_total);
    pl_draw_spines(&p);
    draw_row_labels(&p, h, &L);
    pl_draw_categories(&p, h->labels, n, &L.cat, p.ax, L.cell, p.ay + p.ah);
    pl_draw_titles(&p, h->title, h->xlabel, h->ylabel,
                   p.ay + p.ah + 1 + p.tick_len + p.gap + (n > 0 ? L.cat.depth : 0) + p.gap,
                   L.offset);
    draw_colour_bar(&p, L.bar_w);
    return pl_end_panel(&p, index, err, errlen);
}
