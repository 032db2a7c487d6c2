/* plot_lines.c: line charts (plot_draw_lines): segments clipped to the axes, gaps
 * at non-finite values, a 5% data margin, an optional dashed reference line, and
 * the legend in the corner that hides the fewest points. */
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* ---- line charts -------------------------------------------------------------- */

static bool check_lines(const plot_lines *l, int index, char *err, size_t errlen) {
    if (l->nseries < 0 || (l->nseries > 0 && !l->series)) {
        snprintf(err, errlen, "plot panel %d: %d series with %s", index, l->nseries,
                 l->series ? "a series list" : "no series list (NULL)");
        return false;
    }
    for (int i = 0; i < l->nseries; i++) {
        const plot_series *s = &l->series[i];
        if (s->n < 0 || (s->n > 0 && (!s->x || !s->y)) || s->color < 0) {
            snprintf(err, errlen,
                     "plot panel %d: series %d (%s): bad data (n %d, x %s, y %s, colour %d)", index,
                     i, s->label ? s->label : "unlabelled", s->n, s->x ? "set" : "NULL",
                     s->y ? "set" : "NULL", s->color);
            return false;
        }
    }
    if (l->legend < 0 || l->legend > LEGEND_BEST) {
        snprintf(err, errlen, "plot panel %d: legend position %d (0..%d)", index, l->legend,
                 LEGEND_BEST);
        return false;
    }
    if ((l->has_ymin && !isfinite(l->ymin)) || (l->has_ymax && !isfinite(l->ymax)) ||
        (l->has_ymin && l->has_ymax && l->ymin >= l->ymax) ||
        (l->y_log && ((l->has_ymin && l->ymin <= 0) || (l->has_ymax && l->ymax <= 0)))) {
        snprintf(err, errlen, "plot panel %d: bad y range (%s%g .. %s%g%s)", index,
                 l->has_ymin ? "" : "free ", l->has_ymin ? l->ymin : 0, l->has_ymax ? "" : "free ",
                 l->has_ymax ? l->ymax : 0, l->y_log ? ", log axis: limits must be > 0" : "");
        return false;
    }
    if (l->has_hline && !isfinite(l->hline)) {
        snprintf(err, errlen, "plot panel %d: the reference line is at %g", index, l->hline);
        return false;
    }
    return true;
}

/* Whether point i of s can be drawn: finite, and positive on a log y axis. */
/* A point drawn: finite, and above 0 on a log axis. */
static bool point_ok(const plot_series *s, int i, const plot_lines *l) {
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!l->y_log || s->y[i] > 0) &&
           (!l->x_log || s->x[i] > 0);
}

/* Clip the segment (x0,y0)-(x1,y1) to the rectangle [xmin,xmax] x [ymin,ymax]
 * (Liang-Barsky): false when nothing of it is inside. Points far outside (values
 * beyond a fixed y range) never reach cairo, whose coordinates are 24.8 fixed point. */
static bool clip_segment(double xmin, double ymin, double xmax, double ymax, double *x0, double *y0,
                         double *x1, double *y1) {
    double dx = *x1 - *x0, dy = *y1 - *y0;
    if (!isfinite(dx) || !isfinite(dy)) return false;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - xmin, xmax - *x0, *y0 - ymin, ymax - *y0};
    double t0 = 0, t1 = 1;
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0) {
            if (q[k] < 0) return false;
            continue;
        }
        double r = q[k] / p[k];
        if (p[k] < 0) {
            if (r > t1) return false;
            if (r > t0) t0 = r;
        } else {
            if (r < t0) return false;
            if (r < t1) t1 = r;
        }
    }
    double sx = *x0, sy = *y0;
    *x0 = sx + t0 * dx;
    *y0 = sy + t0 * dy;
    *x1 = sx + t1 * dx;
    *y1 = sy + t1 * dy;
    return true;
}

/* One series: a polyline broken at undrawable points, clipped to the axes area
 * (widened by the clip margin, the cairo clip cuts exactly), then dots on each
 * point when asked for and on every isolated point (a lone point draws no line). */
static void draw_series(panel *p, const axis *xa, const axis *ya, const plot_series *s,
                        const plot_lines *l) {
    cairo_t *cr = p->cr;
    double rgb[3], lw = 2 * p->s, margin = 4 * lw;
    plot_color(s->color, rgb);
    set_rgb(cr, rgb);
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, s->dashed ? CAIRO_LINE_CAP_BUTT : CAIRO_LINE_CAP_ROUND);
    double dashes[2] = {3.7 * lw, 1.6 * lw}; /* matplotlib's "--" */
    cairo_set_dash(cr, dashes, s->dashed ? 2 : 0, 0);
    double xmin = p->ax - margin, xmax = p->ax + p->aw + margin;
    double ymin = p->ay - margin, ymax = p->ay + p->ah + margin;
    bool pen = false;
    double last_x = 0, last_y = 0;
    for (int i = 1; i < s->n; i++) {
        if (!point_ok(s, i - 1, l) || !point_ok(s, i, l)) {
            pen = false;
            continue;
        }
        double x0 = pl_px_x(p, xa, s->x[i - 1]), y0 = pl_px_y(p, ya, s->y[i - 1]);
        double x1 = pl_px_x(p, xa, s->x[i]), y1 = pl_px_y(p, ya, s->y[i]);
        if (!clip_segment(xmin, ymin, xmax, ymax, &x0, &y0, &x1, &y1)) {
            pen = false;
            continue;
        }
        if (!pen || fabs(x0 - last_x) > 1e-6 || fabs(y0 - last_y) > 1e-6) cairo_move_to(cr, x0, y0);
        cairo_line_to(cr, x1, y1);
        pen = true;
        last_x = x1;
        last_y = y1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; i < s->n; i++) {
        if (!point_ok(s, i, l)) continue;
        bool isolated =
            (i == 0 || !point_ok(s, i - 1, l)) && (i == s->n - 1 || !point_ok(s, i + 1, l));
        if (!s->markers && !isolated) continue;
        double x = pl_px_x(p, xa, s->x[i]), y = pl_px_y(p, ya, s->y[i]);
        if (x < xmin || x > xmax || y < ymin || y > ymax) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, 3 * p->s, 0, 2 * PI);
    }
    cairo_fill(cr);
}

/* How much of the data a legend box at (x, y) would hide: points sampled along
 * every drawn segment, about every 3 pixels. */
static long data_under(const panel *p, const axis *xa, const axis *ya, const plot_lines *l,
                       double x, double y, double w, double h) {
    long hits = 0;
    for (int k = 0; k < l->nseries; k++) {
        const plot_series *s = &l->series[k];
        for (int i = 0; i < s->n; i++) {
            if (!point_ok(s, i, l)) continue;
            double x1 = pl_px_x(p, xa, s->x[i]), y1 = pl_px_y(p, ya, s->y[i]);
            double x0 = x1, y0 = y1;
            if (i > 0 && point_ok(s, i - 1, l)) {
                x0 = pl_px_x(p, xa, s->x[i - 1]);
                y0 = pl_px_y(p, ya, s->y[i - 1]);
            }
            double len = hypot(x1 - x0, y1 - y0);
            int steps = isfinite(len) ? (int)fmin(ceil(len / 3), 256) : 0;
            for (int j = 0; j <= steps; j++) {
                double t = steps ? (double)j / steps : 1;
                double sx = x0 + t * (x1 - x0), sy = y0 + t * (y1 - y0);
                hits += sx >= x && sx <= x + w && sy >= y && sy <= y + h;
            }
        }
    }
    return hits;
}

/* The view of a line chart: the data's range (and the reference line's), a unit
 * range when there is nothing to show, the fixed limits, and the data margin. */
static void lines_view(const plot_lines *l, axis *xa, axis *ya) {
    bool log = l->y_log;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < l->nseries; k++)
        for (int i = 0; i < l->series[k].n; i++) {
            if (!point_ok(&l->series[k], i, l)) continue;
            double x = clampd(l->series[k].x[i], l->x_log ? 1e-300 : -1e300, 1e300);
            double y = clampd(l->series[k].y[i], log ? 1e-300 : -1e300, 1e300);
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
        }
    if (xlo > xhi) { /* nothing to draw: a unit range */
        xlo = l->x_log ? 1 : 0;
        xhi = l->x_log ? 10 : 1;
    }
    if (l->has_hline && (!log || l->hline > 0)) {
        double h = clampd(l->hline, log ? 1e-300 : -1e300, 1e300);
        ylo = fmin(ylo, h);
        yhi = fmax(yhi, h);
    }
    if (ylo > yhi) {
        ylo = log ? 1 : 0;
        yhi = log ? 10 : 1;
    }
    if (l->has_ymin) ylo = l->ymin;
    if (l->has_ymax) yhi = l->ymax;
    if (yhi < ylo) { /* the data lie beyond the one fixed limit: show next to it */
        if (l->has_ymin)
            yhi = ylo;
        else
            ylo = yhi;
    }
    pl_pad_view(&xlo, &xhi, l->x_log, 1, false, false);
    if (!(l->has_ymin && l->has_ymax))
        pl_pad_view(&ylo, &yhi, log, l->y_percent ? 0.1 : 1, l->has_ymin, l->has_ymax);
    *xa = (axis){.lo = xlo, .hi = xhi, .log = l->x_log};
    *ya = (axis){.lo = ylo, .hi = yhi, .log = log, .percent = l->y_percent};
}

/* Layout: heights first (they set the y ticks), then the y tick labels' width sets
 * the left margin, then the x ticks fit the width left, and the axes give back room
 * for half of the last x label so it is not cut at the panel edge. Returns the
 * height of a tick label's line. */
static double lines_layout(panel *p, const plot_lines *l, axis *xa, axis *ya) {
    cairo_t *cr = p->cr;
    pl_set_font(cr, p->tick_font, false);
    double tick_line = pl_line_height(cr);
    double top = pl_title_space(p, l->title);
    double bottom = p->tick_len + p->gap + tick_line + pl_xlabel_space(p, l->xlabel) + p->pad;
    pl_set_axes(p, 0, top, 0, bottom);
    pl_make_ticks(ya, (int)clampd(p->ah / (35 * p->s), 2, 10), false);
    pl_set_font(cr, p->tick_font, false);
    double left =
        p->pad + pl_ylabel_space(p, l->ylabel) + pl_widest_tick(cr, ya) + p->gap + p->tick_len + 1;
    double right = 2 * p->pad;
    pl_set_axes(p, left, top, right, bottom);
    pl_fit_x_ticks(p, xa, l->x_integer);
    if (xa->nticks > 0) {
        char buf[64];
        pl_tick_text(xa, xa->ticks[xa->nticks - 1], buf, sizeof buf);
        pl_set_font(cr, p->tick_font, false);
        double overhang = pl_px_x(p, xa, xa->ticks[xa->nticks - 1]) + pl_text_width(cr, buf) / 2 -
                          (p->x + p->w - p->gap);
        if (overhang > 0) {
            pl_set_axes(p, left, top, right + overhang, bottom);
            pl_fit_x_ticks(p, xa, l->x_integer);
        }
    }
    return tick_line;
}

/* The grey dashed reference line, when it is inside the axes. */
static void draw_hline(panel *p, const axis *ya, const plot_lines *l) {
    if (!l->has_hline || (l->y_log && l->hline <= 0)) return;
    cairo_t *cr = p->cr;
    double y = pl_px_y(p, ya, l->hline);
    if (y < p->ay - 2 || y > p->ay + p->ah + 2) return;
    set_grey(cr, REFERENCE_GREY);
    double lw = 1.5 * p->s, dashes[2] = {3.7 * lw, 1.6 * lw};
    cairo_set_line_width(cr, lw);
    cairo_set_dash(cr, dashes, 2, 0);
    cairo_move_to(cr, p->ax, y);
    cairo_line_to(cr, p->ax + p->aw, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
}

/* The legend: labelled series, then the reference line, in the chosen corner (or
 * the one hiding the least of the lines). False when out of memory. */
static bool lines_legend(panel *p, const axis *xa, const axis *ya, const plot_lines *l) {
    int nentries = 0;
    for (int k = 0; k < l->nseries; k++) nentries += has_text(l->series[k].label);
    nentries += l->has_hline && has_text(l->hline_label);
    if (!nentries) return true;
    legend_entry *entries = calloc((size_t)nentries, sizeof *entries);
    if (!entries) return false;
    int n = 0;
    for (int k = 0; k < l->nseries; k++) {
        const plot_series *s = &l->series[k];
        if (!has_text(s->label)) continue;
        entries[n] = (legend_entry){
            .label = s->label, .dashed = s->dashed, .markers = s->markers, .line_w = 2 * p->s};
        plot_color(s->color, entries[n].rgb);
        n++;
    }
    if (l->has_hline && has_text(l->hline_label))
        entries[n++] = (legend_entry){.label = l->hline_label,
                                      .dashed = true,
                                      .line_w = 1.5 * p->s,
                                      .rgb = {REFERENCE_GREY, REFERENCE_GREY, REFERENCE_GREY}};
    double inset = 0.5 * p->legend_font;
    legend_box b = pl_measure_legend(p, entries, n, 0.6 * p->aw, p->ah - 2 * inset);
    if (b.rows > 0) {
        int corner = l->legend;
        if (corner == LEGEND_BEST) {
            long fewest = -1;
            for (int c = 0; c < 4; c++) {
                double x, y;
                pl_legend_corner(p, &b, c, &x, &y);
                long hits = data_under(p, xa, ya, l, x, y, b.w, b.h);
                if (fewest < 0 || hits < fewest) {
                    fewest = hits;
                    corner = c;
                }
            }
        }
        double x, y;
        pl_legend_corner(p, &b, corner, &x, &y);
        pl_draw_legend(p, entries, n, &b, x, y);
    }
    free(entries);
    return true;
}

bool plot_draw_lines(plot_figure *f, int index, const plot_lines *l, char *err, size_t errlen) {
    if (!pl_check_panel(f, index, l, "line chart", err, errlen) || !check_lines(l, index, err, errlen))
        return false;
    axis xa, ya;
    lines_view(l, &xa, &ya);
    panel p;
    pl_begin_panel(f, index, &p);
    cairo_t *cr = p.cr;
    double tick_line = lines_layout(&p, l, &xa, &ya);

    pl_draw_x_grid(&p, &xa);
    pl_draw_y_grid(&p, &ya);
    cairo_save(cr);
    cairo_rectangle(cr, p.ax, p.ay, p.aw, p.ah);
    cairo_clip(cr);
    draw_hline(&p, &ya, l);
    for (int k = 0; k < l->nseries; k++) draw_series(&p, &xa, &ya, &l->series[k], l);
    cairo_restore(cr);
    pl_draw_spines(&p);
    pl_draw_y_ticks(&p, &ya);
    pl_draw_x_ticks(&p, &xa);
    pl_draw_titles(&p, l->title, l->xlabel, l->ylabel,
                   p.ay + p.ah + 1 + p.tick_len + p.gap + tick_line + p.gap, 0);
    if (!lines_legend(&p, &xa, &ya, l)) {
        cairo_restore(cr);
        snprintf(err, errlen, "plot panel %d: out of memory", index);
        return false;
    }
    return pl_end_panel(&p, index, err, errlen);
}
