/* plot_axes.c: the frame every chart kind draws in: "nice" ticks (1, 2, 5 x 10^k,
 * decades on a log axis) and their labels, panels laid out from the measured size of
 * the text they hold (so labels are never cut at the panel's edge), titles, spines,
 * grids, framed legends with line samples, and category axes whose labels turn or
 * thin out when they crowd. */
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* ---- ticks ----------------------------------------------------------------- */

/* The 1, 2, 5 x 10^k number nearest raw (on a log scale): a step of 0.25 becomes
 * 0.2, not 0.5, so an axis gets about as many ticks as asked for. */
static double nice_step(double raw) {
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    return (f < 1.414 ? 1 : f < 3.162 ? 2 : f < 7.071 ? 5 : 10) * e;
}

/* The nice step after step: 1 -> 2 -> 5 -> 10. */
static double next_step(double step) {
    double e = pow(10, floor(log10(step) + 1e-9));
    double f = step / e;
    return (f < 1.5 ? 2 : f < 3.5 ? 5 : 10) * e;
}

/* The 1, 2, 5 x 10^k whole number at or above raw: label every 5th class, not every
 * 3rd. */
static int nice_count(double raw) {
    for (int base = 1; base <= 100000; base *= 10)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3)
            if (m * base >= raw) return m * base;
    return 1000000;
}

static void set_label_format(axis *a, double step) {
    double unit = a->percent ? 100 : 1, largest = fmax(fabs(a->lo), fabs(a->hi));
    double e = floor(log10(step * unit) + 1e-9);
    a->decimals = e < 0 ? (int)-e : 0;
    a->general = a->decimals > 6 || largest * unit >= 1e6;
    a->digits = (int)clampd(floor(log10(largest / step)) + 2, 2, 15);
}

/* About target ticks at multiples of a nice step inside [lo, hi] (whole numbers
 * only when integer). No ticks when the range is too narrow for doubles to count
 * steps in. */
static void linear_ticks(axis *a, int target, bool integer) {
    a->nticks = 0;
    double span = a->hi - a->lo;
    if (!(span > 0) || !isfinite(span)) return;
    double step = nice_step(span / (target < 1 ? 1 : target));
    if (integer && step < 1) step = 1;
    for (int tries = 0; tries < 40; tries++, step = next_step(step)) {
        double k0 = ceil(a->lo / step - 1e-9), k1 = floor(a->hi / step + 1e-9);
        if (!isfinite(k0) || !isfinite(k1) || fabs(k0) > 1e15 || fabs(k1) > 1e15) return;
        if (k1 - k0 + 1 > MAX_TICKS) continue;
        for (int i = 0; k0 + i <= k1; i++) {
            double v = (k0 + i) * step;
            a->ticks[a->nticks++] = fabs(v) < step * 1e-9 ? 0 : v; /* no "-0" */
        }
        set_label_format(a, step);
        return;
    }
}

/* Ticks of a log axis: decades (every stride-th when many, with unlabelled minor
 * ticks at 2..9 otherwise); when the range holds fewer than two decades, 1, 2 and 5
 * times powers of ten; on a range narrower still, linear nice ticks. */
static void log_ticks(axis *a, int target) {
    a->nticks = 0;
    a->nminor = 0;
    double l0 = log10(a->lo), l1 = log10(a->hi);
    int d0 = (int)ceil(l0 - 1e-9), d1 = (int)floor(l1 + 1e-9);
    a->general = true;
    a->digits = 3;
    if (d1 - d0 + 1 >= 2) {
        int stride = (d1 - d0 + 1 + target - 1) / (target < 1 ? 1 : target);
        if (stride < 1) stride = 1;
        for (int d = d0; d <= d1 && a->nticks < MAX_TICKS; d += stride)
            a->ticks[a->nticks++] = pow(10, d);
        if (stride == 1)
            for (int d = d0 - 1; d <= d1; d++)
                for (int m = 2; m <= 9 && a->nminor < MAX_MINOR_TICKS; m++) {
                    double v = m * pow(10, d);
                    if (v >= a->lo && v <= a->hi) a->minor[a->nminor++] = v;
                }
        return;
    }
    static const int mantissas[3] = {1, 2, 5};
    for (int d = (int)floor(l0); d <= (int)ceil(l1) && a->nticks < MAX_TICKS; d++)
        for (int k = 0; k < 3 && a->nticks < MAX_TICKS; k++) {
            double v = mantissas[k] * pow(10, d);
            if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) a->ticks[a->nticks++] = v;
        }
    if (a->nticks >= 2) return;
    a->general = false;
    linear_ticks(a, target, false);
}

void pl_make_ticks(axis *a, int target, bool integer) {
    a->nminor = 0;
    if (a->log)
        log_ticks(a, target);
    else
        linear_ticks(a, target, integer);
}

void pl_tick_text(const axis *a, double v, char *buf, size_t n) {
    double shown = a->percent ? v * 100 : v;
    const char *unit = a->percent ? "%" : "";
    if (a->general)
        snprintf(buf, n, "%.*g%s", a->digits, shown, unit);
    else
        snprintf(buf, n, "%.*f%s", a->decimals, shown, unit);
}

/* Where v falls on the axis, 0 at lo and 1 at hi (NaN for v <= 0 on a log axis). */
static double axis_frac(const axis *a, double v) {
    if (a->log) return v > 0 ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : NAN;
    return (v - a->lo) / (a->hi - a->lo);
}

double pl_px_x(const panel *p, const axis *a, double v) {
    return p->ax + axis_frac(a, v) * p->aw;
}
double pl_px_y(const panel *p, const axis *a, double v) {
    return p->ay + p->ah - axis_frac(a, v) * p->ah;
}

double pl_widest_tick(cairo_t *cr, const axis *a) {
    double w = 0;
    char buf[64];
    for (int i = 0; i < a->nticks; i++) {
        pl_tick_text(a, a->ticks[i], buf, sizeof buf);
        w = fmax(w, pl_text_width(cr, buf));
    }
    return w;
}

/* x ticks as dense as their labels allow: fewer until each label clears the next. */
void pl_fit_x_ticks(panel *p, axis *a, bool integer) {
    pl_set_font(p->cr, p->tick_font, false);
    for (int target = (int)clampd(p->aw / (80 * p->s), 2, 10); target >= 1; target--) {
        pl_make_ticks(a, target, integer);
        double closest = INFINITY;
        for (int i = 1; i < a->nticks; i++)
            closest = fmin(closest, pl_px_x(p, a, a->ticks[i]) - pl_px_x(p, a, a->ticks[i - 1]));
        if (a->nticks <= 1 || closest >= pl_widest_tick(p->cr, a) + 3 * p->gap) return;
    }
}

/* The view of data spanning [lo, hi]: matplotlib's 5% margin on each free side; a
 * flat range is first widened (by 10% of the value, by zero_pad around 0, by 0.2
 * decade on a log axis) so the axis never collapses. */
void pl_pad_view(double *lo, double *hi, bool log, double zero_pad, bool fixed_lo,
                     bool fixed_hi) {
    double a = log ? log10(*lo) : *lo, b = log ? log10(*hi) : *hi;
    if (!(b - a > 1e-9 * fmax(fabs(a), fabs(b)))) {
        double w = log ? 0.2 : a != 0 ? fabs(a) * 0.1 : zero_pad;
        if (fixed_lo)
            b = a + w;
        else if (fixed_hi)
            a = b - w;
        else {
            a -= w;
            b += w;
        }
    } else {
        double m = 0.05 * (b - a);
        if (!fixed_lo) a -= m;
        if (!fixed_hi) b += m;
    }
    *lo = log ? pow(10, clampd(a, -300, 300)) : clampd(a, -1e300, 1e300);
    *hi = log ? pow(10, clampd(b, -300, 300)) : clampd(b, -1e300, 1e300);
}

/* ---- panels ---------------------------------------------------------------- */

bool pl_check_panel(const plot_figure *f, int index, const void *spec, const char *kind,
                        char *err, size_t errlen) {
    if (!f) {
        snprintf(err, errlen, "plot: no figure to draw the %s into", kind);
        return false;
    }
    if (index < 0 || index >= f->cols * f->rows) {
        snprintf(err, errlen, "plot: panel %d out of range (the figure has %d panels, 0..%d)",
                 index, f->cols * f->rows, f->cols * f->rows - 1);
        return false;
    }
    if (!spec) {
        snprintf(err, errlen, "plot panel %d: no %s to draw", index, kind);
        return false;
    }
    return true;
}

/* Set up panel index of f for drawing: sizes scaled with the panel (text stays
 * readable on small panels and in proportion on large ones), the panel cleared to
 * white (a panel may be drawn again) and clipped so nothing spills into the next. */
void pl_begin_panel(plot_figure *f, int index, panel *p) {
    *p = (panel){.cr = f->cr};
    p->x = (index % f->cols) * (double)f->panel_w;
    p->y = f->title_h + (index / f->cols) * (double)f->panel_h;
    p->w = f->panel_w;
    p->h = f->panel_h;
    p->s = clampd(sqrt(p->w * p->h / (500.0 * 350.0)), 0.75, 1.5);
    p->tick_font = 11 * p->s;
    p->label_font = 12 * p->s;
    p->title_font = 14 * p->s;
    p->legend_font = 11 * p->s;
    p->pad = 8 * p->s;
    p->gap = 4 * p->s;
    p->tick_len = 4 * p->s;
    cairo_save(f->cr);
    cairo_rectangle(f->cr, p->x, p->y, p->w, p->h);
    cairo_clip(f->cr);
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
}

bool pl_end_panel(panel *p, int index, char *err, size_t errlen) {
    cairo_restore(p->cr);
    cairo_status_t st = cairo_status(p->cr);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "plot panel %d: cairo: %s", index, cairo_status_to_string(st));
        return false;
    }
    return true;
}

/* Set the axes area, rounded to whole pixels, never smaller than a sliver. */
void pl_set_axes(panel *p, double left, double top, double right, double bottom) {
    p->ax = round(p->x + left);
    p->ay = round(p->y + top);
    p->aw = fmax(round(p->w - left - right), 10);
    p->ah = fmax(round(p->h - top - bottom), 10);
}

/* The height above the axes taken by the panel title. */
double pl_title_space(panel *p, const char *title) {
    if (!has_text(title)) return p->pad;
    pl_set_font(p->cr, p->title_font, false);
    return p->pad + pl_line_height(p->cr) + 1.5 * p->gap;
}

/* The width left of the axes taken by the rotated y label, with its gap. */
double pl_ylabel_space(panel *p, const char *ylabel) {
    if (!has_text(ylabel)) return 0;
    pl_set_font(p->cr, p->label_font, false);
    return pl_line_height(p->cr) + 1.5 * p->gap;
}

double pl_xlabel_space(panel *p, const char *xlabel) {
    if (!has_text(xlabel)) return 0;
    pl_set_font(p->cr, p->label_font, false);
    return p->gap + pl_line_height(p->cr);
}

/* The title centred over the axes (as matplotlib does), the x label centred under
 * them with its top at xlabel_top, the y label turned to read upwards at the panel's
 * left edge (plus left_offset when the block is centred in the panel). */
void pl_draw_titles(panel *p, const char *title, const char *xlabel, const char *ylabel,
                        double xlabel_top, double left_offset) {
    cairo_t *cr = p->cr;
    set_grey(cr, INK_GREY);
    if (has_text(title)) {
        pl_set_font(cr, p->title_font, false);
        double cx = p->ax + p->aw / 2;
        double max_w = p->w - 2 * p->pad;
        /* Centred over the axes when that fits in the panel, else over the panel. */
        char buf[TEXT_MAX];
        double tw = pl_text_width(cr, pl_fit_text(cr, title, max_w, buf));
        if (cx - tw / 2 < p->x + p->pad || cx + tw / 2 > p->x + p->w - p->pad) cx = p->x + p->w / 2;
        pl_draw_text(cr, title, cx, p->y + p->pad, 0, ALIGN_CENTRE, VALIGN_TOP, max_w);
    }
    pl_set_font(cr, p->label_font, false);
    if (has_text(xlabel))
        pl_draw_text(cr, xlabel, p->ax + p->aw / 2, xlabel_top, 0, ALIGN_CENTRE, VALIGN_TOP,
                  p->w - 2 * p->pad);
    if (has_text(ylabel))
        pl_draw_text(cr, ylabel, p->x + p->pad + left_offset, p->ay + p->ah / 2, -PI / 2, ALIGN_CENTRE,
                  VALIGN_TOP, p->h - 2 * p->pad);
}

/* The frame around the axes, just outside the axes area. */
void pl_draw_spines(panel *p) {
    set_grey(p->cr, SPINE_GREY);
    cairo_set_line_width(p->cr, 1);
    cairo_set_dash(p->cr, NULL, 0, 0);
    cairo_rectangle(p->cr, p->ax - 0.5, p->ay - 0.5, p->aw + 1, p->ah + 1);
    cairo_stroke(p->cr);
}

void pl_draw_y_grid(panel *p, const axis *ya) {
    set_grey(p->cr, GRID_GREY);
    cairo_set_line_width(p->cr, 1);
    for (int i = 0; i < ya->nticks; i++) {
        double y = snap(pl_px_y(p, ya, ya->ticks[i]));
        cairo_move_to(p->cr, p->ax, y);
        cairo_line_to(p->cr, p->ax + p->aw, y);
    }
    cairo_stroke(p->cr);
}

void pl_draw_x_grid(panel *p, const axis *xa) {
    set_grey(p->cr, GRID_GREY);
    cairo_set_line_width(p->cr, 1);
    for (int i = 0; i < xa->nticks; i++) {
        double x = snap(pl_px_x(p, xa, xa->ticks[i]));
        cairo_move_to(p->cr, x, p->ay);
        cairo_line_to(p->cr, x, p->ay + p->ah);
    }
    cairo_stroke(p->cr);
}

/* Tick marks outside the left spine (minor ones shorter) and their labels. */
void pl_draw_y_ticks(panel *p, const axis *ya) {
    cairo_t *cr = p->cr;
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < ya->nticks + ya->nminor; i++) {
        bool minor = i >= ya->nticks;
        double y = snap(pl_px_y(p, ya, minor ? ya->minor[i - ya->nticks] : ya->ticks[i]));
        cairo_move_to(cr, p->ax - 1, y);
        cairo_line_to(cr, p->ax - 1 - p->tick_len * (minor ? 0.6 : 1), y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    pl_set_font(cr, p->tick_font, false);
    char buf[64];
    for (int i = 0; i < ya->nticks; i++) {
        pl_tick_text(ya, ya->ticks[i], buf, sizeof buf);
        pl_draw_text(cr, buf, p->ax - 1 - p->tick_len - p->gap, pl_px_y(p, ya, ya->ticks[i]), 0,
                  ALIGN_RIGHT, VALIGN_MIDDLE, p->w);
    }
}

void pl_draw_x_ticks(panel *p, const axis *xa) {
    cairo_t *cr = p->cr;
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    double bottom = p->ay + p->ah;
    for (int i = 0; i < xa->nticks; i++) {
        double x = snap(pl_px_x(p, xa, xa->ticks[i]));
        cairo_move_to(cr, x, bottom + 1);
        cairo_line_to(cr, x, bottom + 1 + p->tick_len);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    pl_set_font(cr, p->tick_font, false);
    char buf[64];
    for (int i = 0; i < xa->nticks; i++) {
        pl_tick_text(xa, xa->ticks[i], buf, sizeof buf);
        pl_draw_text(cr, buf, pl_px_x(p, xa, xa->ticks[i]), bottom + 1 + p->tick_len + p->gap, 0,
                  ALIGN_CENTRE, VALIGN_TOP, p->w);
    }
}

/* ---- legends ---------------------------------------------------------------- */

/* Size a legend of n entries that must fit in max_w x max_h: labels are shortened,
 * and the entries that do not fit become one "+N more" row. */
legend_box pl_measure_legend(panel *p, const legend_entry *e, int n, double max_w,
                                 double max_h) {
    legend_box b = {0};
    cairo_t *cr = p->cr;
    pl_set_font(cr, p->legend_font, false);
    double font = p->legend_font;
    b.row = pl_line_height(cr) + 0.35 * font;
    b.border = 0.5 * font;
    b.sample = 2.0 * font;
    b.text_gap = 0.7 * font;
    double max_text = fmax(max_w - 2 * b.border - b.sample - b.text_gap, 2 * font);
    int fit = (int)floor((max_h - 2 * b.border) / b.row);
    if (fit < 1 || n < 1) return (legend_box){0};
    b.shown = n <= fit ? n : fit - 1;
    b.rows = n <= fit ? n : fit;
    for (int i = 0; i < b.shown; i++)
        b.text_w = fmax(b.text_w, pl_fitted_width(cr, e[i].label, max_text));
    if (b.shown < n) {
        char more[32];
        snprintf(more, sizeof more, "+%d more", n - b.shown);
        b.text_w = fmax(b.text_w, pl_text_width(cr, more));
    }
    b.w = 2 * b.border + b.sample + b.text_gap + ceil(b.text_w);
    b.h = 2 * b.border + b.rows * b.row;
    if (b.w > max_w) return (legend_box){0};
    return b;
}

/* The sample of entry e: a short line (dashed, with a dot when the series has
 * markers) or a colour square, centred vertically on cy from x over width w. */
static void draw_sample(cairo_t *cr, const legend_entry *e, double x, double cy, double w,
                        double font, double s) {
    set_rgb(cr, e->rgb);
    if (e->swatch) {
        double side = 0.75 * font;
        cairo_rectangle(cr, x + (w - side) / 2, cy - side / 2, side, side);
        cairo_fill(cr);
        return;
    }
    cairo_set_line_width(cr, e->line_w);
    double dashes[2] = {3.7 * e->line_w, 1.6 * e->line_w};
    cairo_set_dash(cr, dashes, e->dashed ? 2 : 0, 0);
    cairo_move_to(cr, x, cy);
    cairo_line_to(cr, x + w, cy);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    if (e->markers) {
        cairo_arc(cr, x + w / 2, cy, 3 * s, 0, 2 * PI);
        cairo_fill(cr);
    }
}

/* The legend box b with its top-left corner at (x, y): white at 80% over the data,
 * a light rounded frame, a sample and a label per row (as matplotlib's). */
void pl_draw_legend(panel *p, const legend_entry *e, int n, const legend_box *b, double x,
                        double y) {
    cairo_t *cr = p->cr;
    double r = 0.2 * p->legend_font;
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + b->w - r, y + r, r, -PI / 2, 0);
    cairo_arc(cr, x + b->w - r, y + b->h - r, r, 0, PI / 2);
    cairo_arc(cr, x + r, y + b->h - r, r, PI / 2, PI);
    cairo_arc(cr, x + r, y + r, r, PI, 3 * PI / 2);
    cairo_close_path(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
    cairo_fill_preserve(cr);
    set_grey(cr, LEGEND_EDGE_GREY);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    pl_set_font(cr, p->legend_font, false);
    for (int i = 0; i < b->rows; i++) {
        double cy = y + b->border + (i + 0.5) * b->row;
        double tx = x + b->border + b->sample + b->text_gap;
        set_grey(cr, INK_GREY);
        if (i < b->shown) {
            draw_sample(cr, &e[i], x + b->border, cy, b->sample, p->legend_font, p->s);
            set_grey(cr, INK_GREY);
            pl_draw_text(cr, e[i].label, tx, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, b->text_w + 1);
        } else {
            char more[32];
            snprintf(more, sizeof more, "+%d more", n - b->shown);
            pl_draw_text(cr, more, tx, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, b->text_w + 1);
        }
    }
}

/* The top-left corner of a legend box in corner c of the axes (0 top right, 1
 * bottom right, 2 top left, 3 bottom left), inset half a font size. */
void pl_legend_corner(const panel *p, const legend_box *b, int c, double *x, double *y) {
    double inset = 0.5 * p->legend_font;
    bool right = c == 0 || c == 1, top = c == 0 || c == 2;
    *x = right ? p->ax + p->aw - inset - b->w : p->ax + inset;
    *y = top ? p->ay + inset : p->ay + p->ah - inset - b->h;
}

/* Height of a one-line-per-row legend of swatches laid out in rows across max_w
 * (bars: it sits above the axes, so it never hides a bar); rows_out gets the row
 * count. Labels are shortened to half of max_w. */
double pl_legend_row_height(panel *p, const legend_entry *e, int n, double max_w,
                                int *rows_out) {
    cairo_t *cr = p->cr;
    pl_set_font(cr, p->legend_font, false);
    double font = p->legend_font, item_gap = 1.2 * font, sample = 1.0 * font, text_gap = 0.4 * font;
    int rows = n > 0 ? 1 : 0;
    double x = 0;
    for (int i = 0; i < n; i++) {
        double w = sample + text_gap + pl_fitted_width(cr, e[i].label, max_w / 2);
        if (x > 0 && x + item_gap + w > max_w) {
            rows++;
            x = 0;
        }
        x += (x > 0 ? item_gap : 0) + w;
    }
    *rows_out = rows;
    return rows * (pl_line_height(cr) + 0.35 * font);
}

/* Draw the legend rows measured by legend_row_height with the first row's top at y,
 * each row centred on cx. */
void pl_draw_legend_rows(panel *p, const legend_entry *e, int n, double max_w, double cx,
                             double y) {
    cairo_t *cr = p->cr;
    pl_set_font(cr, p->legend_font, false);
    double font = p->legend_font, item_gap = 1.2 * font, sample = 1.0 * font, text_gap = 0.4 * font;
    double row_h = pl_line_height(cr) + 0.35 * font;
    for (int first = 0; first < n;) {
        double width = 0;
        int last = first;
        for (; last < n; last++) {
            double w = sample + text_gap + pl_fitted_width(cr, e[last].label, max_w / 2);
            if (last > first && width + item_gap + w > max_w) break;
            width += (last > first ? item_gap : 0) + w;
        }
        double x = cx - width / 2, cy = y + row_h / 2;
        for (int i = first; i < last; i++) {
            draw_sample(cr, &e[i], x, cy, sample, font, p->s);
            set_grey(cr, INK_GREY);
            x += sample + text_gap;
            pl_draw_text(cr, e[i].label, x, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, max_w / 2);
            x += pl_fitted_width(cr, e[i].label, max_w / 2) + item_gap;
        }
        first = last;
        y += row_h;
    }
}

/* ---- category axes (bars, heat maps) ---------------------------------------------- */

/* The font and the label step (every step-th label drawn) for labels in rows slot
 * pixels apart: font itself, or a smaller one down to MIN_FONT + 1 when that puts a
 * label in every row; else a slightly smaller font in every 1st, 2nd, 5th, 10th...
 * row, so that dense labels stay readable. */
int pl_dense_labels(cairo_t *cr, double font, double slot, double *font_out) {
    pl_set_font(cr, font, false);
    double line = pl_line_height(cr) * 1.1;
    *font_out = fmin(font, font * slot / line);
    if (*font_out >= MIN_FONT + 1) return 1;
    *font_out = 0.85 * font;
    return nice_count(0.85 * line / slot);
}

/* How n labels fit slots of slot pixels, the first centred first_room pixels from
 * the panel's left edge: level if they fit, else turned 45 degrees (smaller if
 * need be) when the rows of turned text keep apart and the first label stays in the
 * panel, else upright at 90 degrees, skipping labels so that they do not overlap.
 * Turned labels are shortened to max_len. */
category_layout pl_layout_categories(cairo_t *cr, const char *const *labels, int n, double slot,
                                         double first_room, double font, double max_len) {
    category_layout c = {.font = font, .step = 1, .angle = 0, .max_w = fmax(slot - 2, 1)};
    char buf[32];
    pl_set_font(cr, font, false);
    double widest = 0;
    for (int i = 0; i < n; i++)
        widest = fmax(widest, pl_text_width(cr, pl_category_label(labels, i, buf, sizeof buf)));
    if (widest <= slot - 0.3 * font) {
        c.depth = pl_line_height(cr);
        return c;
    }
    c.max_w = max_len;
    double f45 = fmin(font, slot * 0.707 / 1.3 * font / pl_line_height(cr));
    if (f45 >= MIN_FONT + 1) {
        pl_set_font(cr, f45, false);
        double line = pl_line_height(cr);
        bool inside = true;
        double longest = 0;
        for (int i = 0; i < n; i++) {
            double w = pl_fitted_width(cr, pl_category_label(labels, i, buf, sizeof buf), max_len);
            inside &= w * 0.707 + line * 0.35 <= first_room + i * slot;
            longest = fmax(longest, w);
        }
        if (inside) {
            c.font = f45;
            c.angle = 45;
            c.depth = (longest + line * 0.5) * 0.707 + line * 0.35;
            return c;
        }
    }
    c.angle = 90;
    c.step = pl_dense_labels(cr, font, slot, &c.font);
    pl_set_font(cr, c.font, false);
    double longest = 0;
    for (int i = 0; i < n; i += c.step)
        longest =
            fmax(longest, pl_fitted_width(cr, pl_category_label(labels, i, buf, sizeof buf), max_len));
    c.depth = longest;
    return c;
}

/* Category tick marks and labels under the axes at x = centre(i) = x0 + (i + 0.5) * slot. */
void pl_draw_categories(panel *p, const char *const *labels, int n, const category_layout *c,
                            double x0, double slot, double axis_bottom) {
    cairo_t *cr = p->cr;
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < n; i += c->step) {
        double x = snap(x0 + (i + 0.5) * slot);
        cairo_move_to(cr, x, axis_bottom + 1);
        cairo_line_to(cr, x, axis_bottom + 1 + p->tick_len);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    pl_set_font(cr, c->font, false);
    double y = axis_bottom + 1 + p->tick_len + p->gap;
    char buf[32];
    for (int i = 0; i < n; i += c->step) {
        const char *s = pl_category_label(labels, i, buf, sizeof buf);
        double x = x0 + (i + 0.5) * slot;
        if (c->angle == 0)
            pl_draw_text(cr, s, x, y, 0, ALIGN_CENTRE, VALIGN_TOP, c->max_w);
        else if (c->angle == 45)
            pl_draw_text(cr, s, x, y + pl_line_height(cr) * 0.35, -PI / 4, ALIGN_RIGHT, VALIGN_MIDDLE,
                      c->max_w);
        else
            pl_draw_text(cr, s, x, y, -PI / 2, ALIGN_RIGHT, VALIGN_MIDDLE, c->max_w);
    }
}
