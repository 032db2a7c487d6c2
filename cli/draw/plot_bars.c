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

bool plot_draw_bars(plot_figure *f, int index, const plot_bars *b, char *err, size_t errlen) {
    if (!pl_check_panel(f, index, b, "bar chart", err, errlen) || !check_bars(b, index, err, errlen))
        return false;
    int ncat = b->ncategories, nser = b->ncategories > 0 ? b->nseries : 0;
    double lo = 0, hi = 0;
    bool any = false;
    for (int s = 0; s < nser; s++)
        for (int c = 0; c < ncat; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            any = true;
            lo = fmin(lo, clampd(v, -1e300, 1e300));
            hi = fmax(hi, clampd(v, -1e300, 1e300));
        }
    bool value_labels = b->y_percent && any;
    if (b->has_ymax) {
        if (b->ymax <= lo) {
            snprintf(err, errlen, "plot panel %d: ymax %g is not above the lowest bar (%g)", index,
                     b->ymax, lo);
            return false;
        }
        hi = b->ymax;
    } else {
        if (hi <= lo) hi = lo + 1; /* no data, or all zero: a unit range (0..100%) */
        hi += (hi - lo) * (value_labels ? 0.1 : 0.05); /* headroom for the labels above the bars */
    }
    if (lo < 0) lo -= (hi - lo) * 0.05;

    panel p;
    pl_begin_panel(f, index, &p);
    cairo_t *cr = p.cr;
    axis ya = {.lo = lo, .hi = hi, .percent = b->y_percent};

    /* The legend sits in rows between the title and the axes. */
    int nentries = 0;
    if (b->series_labels)
        for (int s = 0; s < nser; s++) nentries += has_text(b->series_labels[s]);
    legend_entry *entries = nentries ? calloc((size_t)nentries, sizeof *entries) : NULL;
    if (nentries && !entries) {
        cairo_restore(cr);
        snprintf(err, errlen, "plot panel %d: out of memory", index);
        return false;
    }
    for (int s = 0, n = 0; s < nser && entries; s++)
        if (has_text(b->series_labels[s])) {
            entries[n] = (legend_entry){.label = b->series_labels[s], .swatch = true};
            plot_color(s, entries[n].rgb);
            n++;
        }
    double legend_w = p.w - 2 * p.pad;
    int legend_rows = 0;
    double legend_h = pl_legend_row_height(&p, entries, nentries, legend_w, &legend_rows);
    double top = pl_title_space(&p, b->title) + (legend_rows ? legend_h + p.gap : 0);

    /* Layout: the category labels' depth depends on the slot width, which depends
     * on the y tick labels' width, which depends on the height: three rounds settle it. */
    pl_set_font(cr, p.tick_font, false);
    double left = p.pad + pl_ylabel_space(&p, b->ylabel) +
                  pl_text_width(cr, b->y_percent ? "100%" : "0.0") + p.gap + p.tick_len + 1;
    double right = 2 * p.pad, bottom = 0;
    category_layout cat = {0};
    for (int round = 0; round < 3; round++) {
        pl_set_axes(&p, left, top, right, p.h / 3);
        double slot = p.aw / (ncat > 0 ? ncat + 0.2 : 1);
        cat = pl_layout_categories(cr, b->categories, ncat, slot, p.ax - p.x + 0.6 * slot, p.tick_font,
                                0.25 * p.h);
        bottom =
            p.tick_len + p.gap + (ncat > 0 ? cat.depth : 0) + pl_xlabel_space(&p, b->xlabel) + p.pad;
        pl_set_axes(&p, left, top, right, bottom);
        pl_make_ticks(&ya, (int)clampd(p.ah / (35 * p.s), 2, 10), false);
        pl_set_font(cr, p.tick_font, false);
        left = p.pad + pl_ylabel_space(&p, b->ylabel) + pl_widest_tick(cr, &ya) + p.gap + p.tick_len + 1;
    }
    pl_set_axes(&p, left, top, right, bottom);
    double slot = p.aw / (ncat > 0 ? ncat + 0.2 : 1);
    double x0 = p.ax + 0.1 * slot; /* slot i spans x0 + [i, i + 1) * slot */
    double bar_w = nser > 0 ? 0.8 * slot / nser : 0;

    pl_draw_y_grid(&p, &ya);
    cairo_save(cr);
    cairo_rectangle(cr, p.ax, p.ay, p.aw, p.ah);
    cairo_clip(cr);
    double zero = pl_px_y(&p, &ya, 0);
    for (int s = 0; s < nser; s++) {
        double rgb[3];
        plot_color(s, rgb);
        set_rgb(cr, rgb);
        for (int c = 0; c < ncat; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            double y = clampd(pl_px_y(&p, &ya, v), p.ay - 10, p.ay + p.ah + 10);
            cairo_rectangle(cr, x0 + (c + 0.1) * slot + s * bar_w, fmin(y, zero), bar_w,
                            fabs(zero - y));
        }
        cairo_fill(cr);
    }
    if (lo < 0) {
        set_grey(cr, SPINE_GREY);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, p.ax, snap(zero));
        cairo_line_to(cr, p.ax + p.aw, snap(zero));
        cairo_stroke(cr);
    }

    /* Value labels: the largest font and most decimals with which the widest label
     * clears its neighbours; all bars or none, for an even look. */
    if (value_labels && nser > 0) {
        double room = (nser == 1 ? slot : bar_w) - 2 * p.s, font = 0;
        int decimals = 1;
        char buf[32];
        for (double ft = 0.9 * p.tick_font; ft >= MIN_FONT && font == 0; ft *= 0.9)
            for (int d = 1; d >= 0 && font == 0; d--) {
                pl_set_font(cr, ft, false);
                double widest = 0;
                for (int s = 0; s < nser; s++)
                    for (int c = 0; c < ncat; c++)
                        if (isfinite(b->values[s][c])) {
                            bar_text(b->values[s][c], d, buf, sizeof buf);
                            widest = fmax(widest, pl_text_width(cr, buf));
                        }
                if (widest <= room) {
                    font = ft;
                    decimals = d;
                }
            }
        if (font > 0) {
            pl_set_font(cr, font, false);
            double line = pl_line_height(cr);
            for (int s = 0; s < nser; s++)
                for (int c = 0; c < ncat; c++) {
                    double v = b->values[s][c];
                    if (!isfinite(v)) continue;
                    bar_text(v, decimals, buf, sizeof buf);
                    double x = x0 + (c + 0.1) * slot + (s + 0.5) * bar_w, y = pl_px_y(&p, &ya, v);
                    /* Above the bar (below a negative one); inside it in white when
                     * the axes end there; left out when neither has room. */
                    if (v >= 0 && y - 0.5 * p.gap - line >= p.ay) {
                        set_grey(cr, INK_GREY);
                        pl_draw_text(cr, buf, x, y - 0.5 * p.gap, 0, ALIGN_CENTRE, VALIGN_BOTTOM,
                                  room + 1);
                    } else if (v < 0 && y + 0.5 * p.gap + line <= p.ay + p.ah) {
                        set_grey(cr, INK_GREY);
                        pl_draw_text(cr, buf, x, y + 0.5 * p.gap, 0, ALIGN_CENTRE, VALIGN_TOP,
                                  room + 1);
                    } else if (fabs(zero - y) >= line + p.gap) {
                        cairo_set_source_rgb(cr, 1, 1, 1);
                        double inside = v >= 0 ? fmax(y, p.ay) + 0.5 * p.gap
                                               : fmin(y, p.ay + p.ah) - 0.5 * p.gap;
                        pl_draw_text(cr, buf, x, inside, 0, ALIGN_CENTRE,
                                  v >= 0 ? VALIGN_TOP : VALIGN_BOTTOM, room + 1);
                    }
                }
        }
    }
    cairo_restore(cr);
    pl_draw_spines(&p);
    pl_draw_y_ticks(&p, &ya);
    pl_draw_categories(&p, b->categories, ncat, &cat, x0, slot, p.ay + p.ah);
    pl_draw_titles(&p, b->title, b->xlabel, b->ylabel,
                p.ay + p.ah + 1 + p.tick_len + p.gap + (ncat > 0 ? cat.depth : 0) + p.gap, 0);
    if (legend_rows) {
        double y = p.ay - p.gap - legend_h;
        pl_draw_legend_rows(&p, entries, nentries, legend_w, p.x + p.w / 2, y);
    }
    free(entries);
    return pl_end_panel(&p, index, err, errlen);
}
