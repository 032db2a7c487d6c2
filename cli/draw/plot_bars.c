/* plot_bars.c: bar charts (plot_draw_bars): the series of a category side by side,
 * the legend in rows under the title, and value labels above the bars when every
 * one fits. */
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* ---- bar charts --------------------------------------------------------------- */

static bool check_bars(const plot_bars *b, int index, char *err, size_t errlen) {
    if (b->ncategories < 0 || b->nseries < 0) {
        snprintf(err, errlen, "plot panel %d: %d categories and %d series", index, b->ncategories,
                 b->nseries);
        return false;
    }
    if (b->ncategories > 0 && b->nseries > 0) {
        if (!b->values) {
            snprintf(err, errlen, "plot panel %d: %d series of bars without values (NULL)", index,
                     b->nseries);
            return false;
        }
        for (int s = 0; s < b->nseries; s++)
            if (!b->values[s]) {
                snprintf(err, errlen, "plot panel %d: bar series %d has no values (NULL)", index,
                         s);
                return false;
            }
    }
    if (b->has_ymax && !isfinite(b->ymax)) {
        snprintf(err, errlen, "plot panel %d: ymax %g", index, b->ymax);
        return false;
    }
    return true;
}

/* The value label of a bar: a percentage with `decimals` decimals. */
static void bar_text(double v, int decimals, char *buf, size_t n) {
    snprintf(buf, n, "%.*f%%", decimals, v * 100);
}

/* The y range of the bars: 0 and every finite value, then ymax or headroom for
 * the value labels, and a margin under negative bars. False (err set) when ymax is
 * not above the lowest bar. */
static bool bars_range(const plot_bars *b, int nser, int index, axis *ya, bool *value_labels,
                       char *err, size_t errlen) {
    double lo = 0, hi = 0;
    bool any = false;
    for (int s = 0; s < nser; s++)
        for (int c = 0; c < b->ncategories; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            any = true;
            lo = fmin(lo, clampd(v, -1e300, 1e300));
            hi = fmax(hi, clampd(v, -1e300, 1e300));
        }
    *value_labels = b->y_percent && any;
    if (b->has_ymax) {
        if (b->ymax <= lo) {
            snprintf(err, errlen, "plot panel %d: ymax %g is not above the lowest bar (%g)", index,
                     b->ymax, lo);
            return false;
        }
        hi = b->ymax;
    } else {
        if (hi <= lo) hi = lo + 1; /* no data, or all zero: a unit range (0..100%) */
        hi += (hi - lo) * (*value_labels ? 0.1 : 0.05); /* headroom for the labels above the bars */
    }
    if (lo < 0) lo -= (hi - lo) * 0.05;
    *ya = (axis){.lo = lo, .hi = hi, .percent = b->y_percent};
    return true;
}

/* The legend entries of the labelled series (malloc'ed; *n of them). False when
 * out of memory. */
static bool bars_legend_entries(const plot_bars *b, int nser, legend_entry **out, int *n) {
    int nentries = 0;
    if (b->series_labels)
        for (int s = 0; s < nser; s++) nentries += has_text(b->series_labels[s]);
    legend_entry *entries = nentries ? calloc((size_t)nentries, sizeof *entries) : NULL;
    *out = entries;
    *n = nentries;
    if (nentries && !entries) return false;
    for (int s = 0, k = 0; s < nser && entries; s++)
        if (has_text(b->series_labels[s])) {
            entries[k] = (legend_entry){.label = b->series_labels[s], .swatch = true};
            plot_color(s, entries[k].rgb);
            k++;
        }
    return true;
}

/* Layout: the category labels' depth depends on the slot width, which depends on
 * the y tick labels' width, which depends on the height: three rounds settle it.
 * Sets the axes and the y ticks; returns the category layout. */
static category_layout bars_layout(panel *p, const plot_bars *b, axis *ya, double top) {
    cairo_t *cr = p->cr;
    int ncat = b->ncategories;
    pl_set_font(cr, p->tick_font, false);
    double left = p->pad + pl_ylabel_space(p, b->ylabel) +
                  pl_text_width(cr, b->y_percent ? "100%" : "0.0") + p->gap + p->tick_len + 1;
    double right = 2 * p->pad, bottom = 0;
    category_layout cat = {0};
    for (int round = 0; round < 3; round++) {
        pl_set_axes(p, left, top, right, p->h / 3);
        double slot = p->aw / (ncat > 0 ? ncat + 0.2 : 1);
        cat = pl_layout_categories(cr, b->categories, ncat, slot, p->ax - p->x + 0.6 * slot,
                                   p->tick_font, 0.25 * p->h);
        bottom = p->tick_len + p->gap + (ncat > 0 ? cat.depth : 0) + pl_xlabel_space(p, b->xlabel) +
                 p->pad;
        pl_set_axes(p, left, top, right, bottom);
        pl_make_ticks(ya, (int)clampd(p->ah / (35 * p->s), 2, 10), false);
        pl_set_font(cr, p->tick_font, false);
        left = p->pad + pl_ylabel_space(p, b->ylabel) + pl_widest_tick(cr, ya) + p->gap +
               p->tick_len + 1;
    }
    pl_set_axes(p, left, top, right, bottom);
    return cat;
}

/* Where the bars go: slot i spans x0 + [i, i + 1) * slot; bars bar_w wide. */
typedef struct {
    double x0, slot, bar_w, zero;
    int nser, ncat;
} bar_geometry;

static void draw_bar_rects(panel *p, const axis *ya, const plot_bars *b, const bar_geometry *g) {
    cairo_t *cr = p->cr;
    for (int s = 0; s < g->nser; s++) {
        double rgb[3];
        plot_color(s, rgb);
        set_rgb(cr, rgb);
        for (int c = 0; c < g->ncat; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            double y = clampd(pl_px_y(p, ya, v), p->ay - 10, p->ay + p->ah + 10);
            cairo_rectangle(cr, g->x0 + (c + 0.1) * g->slot + s * g->bar_w, fmin(y, g->zero),
                            g->bar_w, fabs(g->zero - y));
        }
        cairo_fill(cr);
    }
}

/* The largest font and most decimals with which the widest value label fits room;
 * font 0 when none does. */
static double value_label_font(cairo_t *cr, const plot_bars *b, const bar_geometry *g,
                               double start, double room, int *decimals) {
    char buf[32];
    for (double ft = start; ft >= MIN_FONT; ft *= 0.9)
        for (int d = 1; d >= 0; d--) {
            pl_set_font(cr, ft, false);
            double widest = 0;
            for (int s = 0; s < g->nser; s++)
                for (int c = 0; c < g->ncat; c++)
                    if (isfinite(b->values[s][c])) {
                        bar_text(b->values[s][c], d, buf, sizeof buf);
                        widest = fmax(widest, pl_text_width(cr, buf));
                    }
            if (widest <= room) {
                *decimals = d;
                return ft;
            }
        }
    return 0;
}

/* Value labels: the largest font and most decimals with which the widest label
 * clears its neighbours; all bars or none, for an even look. Each goes above its
 * bar (below a negative one); inside it in white when the axes end there; left
 * out when neither has room. */
static void draw_value_labels(panel *p, const axis *ya, const plot_bars *b, const bar_geometry *g) {
    cairo_t *cr = p->cr;
    double room = (g->nser == 1 ? g->slot : g->bar_w) - 2 * p->s;
    int decimals = 1;
    double font = value_label_font(cr, b, g, 0.9 * p->tick_font, room, &decimals);
    if (font <= 0) return;
    char buf[32];
    pl_set_font(cr, font, false);
    double line = pl_line_height(cr);
    for (int s = 0; s < g->nser; s++)
        for (int c = 0; c < g->ncat; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            bar_text(v, decimals, buf, sizeof buf);
            double x = g->x0 + (c + 0.1) * g->slot + (s + 0.5) * g->bar_w, y = pl_px_y(p, ya, v);
            if (v >= 0 && y - 0.5 * p->gap - line >= p->ay) {
                set_grey(cr, INK_GREY);
                pl_draw_text(cr, buf, x, y - 0.5 * p->gap, 0, ALIGN_CENTRE, VALIGN_BOTTOM, room + 1);
            } else if (v < 0 && y + 0.5 * p->gap + line <= p->ay + p->ah) {
                set_grey(cr, INK_GREY);
                pl_draw_text(cr, buf, x, y + 0.5 * p->gap, 0, ALIGN_CENTRE, VALIGN_TOP, room + 1);
            } else if (fabs(g->zero - y) >= line + p->gap) {
                cairo_set_source_rgb(cr, 1, 1, 1);
                double inside = v >= 0 ? fmax(y, p->ay) + 0.5 * p->gap
                                       : fmin(y, p->ay + p->ah) - 0.5 * p->gap;
                pl_draw_text(cr, buf, x, inside, 0, ALIGN_CENTRE,
                             v >= 0 ? VALIGN_TOP : VALIGN_BOTTOM, room + 1);
            }
        }
}

bool plot_draw_bars(plot_figure *f, int index, const plot_bars *b, char *err, size_t errlen) {
    if (!pl_check_panel(f, index, b, "bar chart", err, errlen) || !check_bars(b, index, err, errlen))
        return false;
    int ncat = b->ncategories, nser = b->ncategories > 0 ? b->nseries : 0;
    axis ya;
    bool value_labels;
    if (!bars_range(b, nser, index, &ya, &value_labels, err, errlen)) return false;

    panel p;
    pl_begin_panel(f, index, &p);
    cairo_t *cr = p.cr;
    /* The legend sits in rows between the title and the axes. */
    legend_entry *entries;
    int nentries;
    if (!bars_legend_entries(b, nser, &entries, &nentries)) {
        cairo_restore(cr);
        snprintf(err, errlen, "plot panel %d: out of memory", index);
        return false;
    }
    double legend_w = p.w - 2 * p.pad;
    int legend_rows = 0;
    double legend_h = pl_legend_row_height(&p, entries, nentries, legend_w, &legend_rows);
    double top = pl_title_space(&p, b->title) + (legend_rows ? legend_h + p.gap : 0);
    category_layout cat = bars_layout(&p, b, &ya, top);
    double slot = p.aw / (ncat > 0 ? ncat + 0.2 : 1);
    bar_geometry g = {.x0 = p.ax + 0.1 * slot, .slot = slot,
                      .bar_w = nser > 0 ? 0.8 * slot / nser : 0, .zero = pl_px_y(&p, &ya, 0),
                      .nser = nser, .ncat = ncat};

    pl_draw_y_grid(&p, &ya);
    cairo_save(cr);
    cairo_rectangle(cr, p.ax, p.ay, p.aw, p.ah);
    cairo_clip(cr);
    draw_bar_rects(&p, &ya, b, &g);
    if (ya.lo < 0) {
        set_grey(cr, SPINE_GREY);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, p.ax, snap(g.zero));
        cairo_line_to(cr, p.ax + p.aw, snap(g.zero));
        cairo_stroke(cr);
    }
    if (value_labels && nser > 0) draw_value_labels(&p, &ya, b, &g);
    cairo_restore(cr);
    pl_draw_spines(&p);
    pl_draw_y_ticks(&p, &ya);
    pl_draw_categories(&p, b->categories, ncat, &cat, g.x0, slot, p.ay + p.ah);
    pl_draw_titles(&p, b->title, b->xlabel, b->ylabel,
                   p.ay + p.ah + 1 + p.tick_len + p.gap + (ncat > 0 ? cat.depth : 0) + p.gap, 0);
    if (legend_rows)
        pl_draw_legend_rows(&p, entries, nentries, legend_w, p.x + p.w / 2, p.ay - p.gap - legend_h);
    free(entries);
    return pl_end_panel(&p, index, err, errlen);
}
