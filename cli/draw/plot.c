/* plot.c: the figures of plot.h, drawn with cairo. Every panel is laid out from the
 * measured size of the text it holds (title, tick labels, axis labels, category
 * labels), so labels are never cut at the panel's edge; axes get "nice" ticks (1, 2,
 * 5 x 10^k, decades on a log axis); line charts clip their segments to the axes and
 * leave gaps at non-finite values; bar charts put the series of a category side by
 * side; heat maps colour each cell by its share of the row. The look follows
 * matplotlib's defaults (tab10, a 5% data margin, a framed legend with line
 * samples). Figures are written as PNG atomically (path.tmp, then rename). */
#include "grid.h"
#include "plot.h"

#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* matplotlib's tab10 palette, in its order. */
static const unsigned char TAB10[10][3] = {
    {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

/* matplotlib's "Blues" (ColorBrewer), from near-white to dark blue, evenly spaced. */
static const unsigned char BLUES[9][3] = {
    {247, 251, 255}, {222, 235, 247}, {198, 219, 239}, {158, 202, 225}, {107, 174, 214},
    {66, 146, 198},  {33, 113, 181},  {8, 81, 156},    {8, 48, 107},
};

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

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool has_text(const char *s) { return s && s[0]; }

void plot_color(int i, double rgb[3]) {
    int k = ((i % 10) + 10) % 10;
    for (int c = 0; c < 3; c++) rgb[c] = TAB10[k][c] / 255.0;
}

/* The Blues colour of v in [0, 1] (NaN as 0). */
static void blues(double v, double rgb[3]) {
    double p = (v > 0 ? fmin(v, 1) : 0) * 8;
    int k = p >= 8 ? 7 : (int)p;
    double t = p - k;
    for (int c = 0; c < 3; c++) rgb[c] = ((1 - t) * BLUES[k][c] + t * BLUES[k + 1][c]) / 255.0;
}

static void set_grey(cairo_t *cr, double g) { cairo_set_source_rgb(cr, g, g, g); }

static void set_rgb(cairo_t *cr, const double rgb[3]) {
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
}

/* A 1-pixel line on the pixel centre nearest v: crisp instead of a 2-pixel blur. */
static double snap(double v) { return floor(v) + 0.5; }

/* ---- text ------------------------------------------------------------------ */

static void set_font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double line_height(cairo_t *cr) {
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

/* s made safe for cairo into buf (n bytes): cairo rejects invalid UTF-8 and then
 * refuses all further drawing on the figure, and labels come from dataset files.
 * Invalid bytes become '?', control characters spaces; cut at a character start. */
static const char *clean_text(const char *s, char *buf, size_t n) {
    size_t o = 0;
    if (!s) s = "";
    for (size_t i = 0; s[i] && o + 1 < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80                 ? 1
                  : c >= 0xC2 && c <= 0xDF ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
        bool ok = len > 0;
        for (int k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len > 2) { /* no overlong forms, surrogates or code points past U+10FFFF */
            unsigned char d = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d > 0x9F) && !(c == 0xF0 && d < 0x90) &&
                 !(c == 0xF4 && d > 0x8F);
        }
        if (!ok) {
            buf[o++] = '?';
            i++;
            continue;
        }
        if (o + (size_t)len >= n) break;
        if (len == 1 && (c < 0x20 || c == 0x7F))
            buf[o++] = ' ';
        else {
            memcpy(buf + o, s + i, (size_t)len);
            o += (size_t)len;
        }
        i += (size_t)len;
    }
    buf[o] = '\0';
    return buf;
}

/* The advance of s (cleaned first: text from a dataset may be any bytes). */
static double text_width(cairo_t *cr, const char *s) {
    char clean[TEXT_MAX];
    cairo_text_extents_t e;
    cairo_text_extents(cr, clean_text(s, clean, sizeof clean), &e);
    return e.x_advance;
}

/* s cleaned and, when wider than max_w in the current font, shortened with "…" (the
 * longest prefix that fits, found by bisection over character starts); into buf of
 * TEXT_MAX bytes. */
static const char *fit_text(cairo_t *cr, const char *s, double max_w, char *buf) {
    char clean[TEXT_MAX - 4]; /* room left for the ellipsis */
    clean_text(s, clean, sizeof clean);
    snprintf(buf, TEXT_MAX, "%s", clean);
    if (text_width(cr, clean) <= max_w) return buf;
    size_t starts[TEXT_MAX], n = 0;
    for (size_t i = 0; clean[i]; i++)
        if (((unsigned char)clean[i] & 0xC0) != 0x80) starts[n++] = i;
    /* The largest k whose first k characters plus "…" fit; 0 characters means none. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        snprintf(buf, TEXT_MAX, "%.*s\u2026", (int)(mid < n ? starts[mid] : strlen(clean)), clean);
        if (text_width(cr, buf) <= max_w)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == 0) {
        buf[0] = '\0';
        return buf;
    }
    snprintf(buf, TEXT_MAX, "%.*s\u2026", (int)(lo < n ? starts[lo] : strlen(clean)), clean);
    return buf;
}

/* Draw s shortened to max_w, anchored at (x, y) and turned by angle (radians,
 * clockwise as cairo turns): halign says which end of the text meets x, valign which
 * line of it meets y. */
static void draw_text(cairo_t *cr, const char *s, double x, double y, double angle, int halign,
                      int valign, double max_w) {
    if (!has_text(s) || max_w <= 0) return;
    char buf[TEXT_MAX];
    const char *t = fit_text(cr, s, max_w, buf);
    if (!t[0]) return;
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double w = text_width(cr, t);
    double dx = halign == ALIGN_LEFT ? 0 : halign == ALIGN_CENTRE ? -w / 2 : -w;
    double dy = valign == VALIGN_TOP      ? fe.ascent
                : valign == VALIGN_MIDDLE ? (fe.ascent - fe.descent) / 2
                : valign == VALIGN_BOTTOM ? -fe.descent
                                          : 0;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, angle);
    cairo_move_to(cr, dx, dy);
    cairo_show_text(cr, t);
    cairo_restore(cr);
}

/* The width label would take when shortened to max_w. */
static double fitted_width(cairo_t *cr, const char *s, double max_w) {
    char buf[TEXT_MAX];
    return text_width(cr, fit_text(cr, s, max_w, buf));
}

/* Label i of a category list: its own text, or its number when there is no list. */
static const char *category_label(const char *const *labels, int i, char *buf, size_t n) {
    if (labels) return labels[i] ? labels[i] : "";
    snprintf(buf, n, "%d", i);
    return buf;
}

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

static void make_ticks(axis *a, int target, bool integer) {
    a->nminor = 0;
    if (a->log)
        log_ticks(a, target);
    else
        linear_ticks(a, target, integer);
}

static void tick_text(const axis *a, double v, char *buf, size_t n) {
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

static double px_x(const panel *p, const axis *a, double v) {
    return p->ax + axis_frac(a, v) * p->aw;
}
static double px_y(const panel *p, const axis *a, double v) {
    return p->ay + p->ah - axis_frac(a, v) * p->ah;
}

static double widest_tick(cairo_t *cr, const axis *a) {
    double w = 0;
    char buf[64];
    for (int i = 0; i < a->nticks; i++) {
        tick_text(a, a->ticks[i], buf, sizeof buf);
        w = fmax(w, text_width(cr, buf));
    }
    return w;
}

/* x ticks as dense as their labels allow: fewer until each label clears the next. */
static void fit_x_ticks(panel *p, axis *a, bool integer) {
    set_font(p->cr, p->tick_font, false);
    for (int target = (int)clampd(p->aw / (80 * p->s), 2, 10); target >= 1; target--) {
        make_ticks(a, target, integer);
        double closest = INFINITY;
        for (int i = 1; i < a->nticks; i++)
            closest = fmin(closest, px_x(p, a, a->ticks[i]) - px_x(p, a, a->ticks[i - 1]));
        if (a->nticks <= 1 || closest >= widest_tick(p->cr, a) + 3 * p->gap) return;
    }
}

/* The view of data spanning [lo, hi]: matplotlib's 5% margin on each free side; a
 * flat range is first widened (by 10% of the value, by zero_pad around 0, by 0.2
 * decade on a log axis) so the axis never collapses. */
static void pad_view(double *lo, double *hi, bool log, double zero_pad, bool fixed_lo,
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

static bool check_panel(const plot_figure *f, int index, const void *spec, const char *kind,
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
static void begin_panel(plot_figure *f, int index, panel *p) {
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

static bool end_panel(panel *p, int index, char *err, size_t errlen) {
    cairo_restore(p->cr);
    cairo_status_t st = cairo_status(p->cr);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "plot panel %d: cairo: %s", index, cairo_status_to_string(st));
        return false;
    }
    return true;
}

/* Set the axes area, rounded to whole pixels, never smaller than a sliver. */
static void set_axes(panel *p, double left, double top, double right, double bottom) {
    p->ax = round(p->x + left);
    p->ay = round(p->y + top);
    p->aw = fmax(round(p->w - left - right), 10);
    p->ah = fmax(round(p->h - top - bottom), 10);
}

/* The height above the axes taken by the panel title. */
static double title_space(panel *p, const char *title) {
    if (!has_text(title)) return p->pad;
    set_font(p->cr, p->title_font, false);
    return p->pad + line_height(p->cr) + 1.5 * p->gap;
}

/* The width left of the axes taken by the rotated y label, with its gap. */
static double ylabel_space(panel *p, const char *ylabel) {
    if (!has_text(ylabel)) return 0;
    set_font(p->cr, p->label_font, false);
    return line_height(p->cr) + 1.5 * p->gap;
}

static double xlabel_space(panel *p, const char *xlabel) {
    if (!has_text(xlabel)) return 0;
    set_font(p->cr, p->label_font, false);
    return p->gap + line_height(p->cr);
}

/* The title centred over the axes (as matplotlib does), the x label centred under
 * them with its top at xlabel_top, the y label turned to read upwards at the panel's
 * left edge (plus left_offset when the block is centred in the panel). */
static void draw_titles(panel *p, const char *title, const char *xlabel, const char *ylabel,
                        double xlabel_top, double left_offset) {
    cairo_t *cr = p->cr;
    set_grey(cr, INK_GREY);
    if (has_text(title)) {
        set_font(cr, p->title_font, false);
        double cx = p->ax + p->aw / 2;
        double max_w = p->w - 2 * p->pad;
        /* Centred over the axes when that fits in the panel, else over the panel. */
        char buf[TEXT_MAX];
        double tw = text_width(cr, fit_text(cr, title, max_w, buf));
        if (cx - tw / 2 < p->x + p->pad || cx + tw / 2 > p->x + p->w - p->pad) cx = p->x + p->w / 2;
        draw_text(cr, title, cx, p->y + p->pad, 0, ALIGN_CENTRE, VALIGN_TOP, max_w);
    }
    set_font(cr, p->label_font, false);
    if (has_text(xlabel))
        draw_text(cr, xlabel, p->ax + p->aw / 2, xlabel_top, 0, ALIGN_CENTRE, VALIGN_TOP,
                  p->w - 2 * p->pad);
    if (has_text(ylabel))
        draw_text(cr, ylabel, p->x + p->pad + left_offset, p->ay + p->ah / 2, -PI / 2, ALIGN_CENTRE,
                  VALIGN_TOP, p->h - 2 * p->pad);
}

/* The frame around the axes, just outside the axes area. */
static void draw_spines(panel *p) {
    set_grey(p->cr, SPINE_GREY);
    cairo_set_line_width(p->cr, 1);
    cairo_set_dash(p->cr, NULL, 0, 0);
    cairo_rectangle(p->cr, p->ax - 0.5, p->ay - 0.5, p->aw + 1, p->ah + 1);
    cairo_stroke(p->cr);
}

static void draw_y_grid(panel *p, const axis *ya) {
    set_grey(p->cr, GRID_GREY);
    cairo_set_line_width(p->cr, 1);
    for (int i = 0; i < ya->nticks; i++) {
        double y = snap(px_y(p, ya, ya->ticks[i]));
        cairo_move_to(p->cr, p->ax, y);
        cairo_line_to(p->cr, p->ax + p->aw, y);
    }
    cairo_stroke(p->cr);
}

static void draw_x_grid(panel *p, const axis *xa) {
    set_grey(p->cr, GRID_GREY);
    cairo_set_line_width(p->cr, 1);
    for (int i = 0; i < xa->nticks; i++) {
        double x = snap(px_x(p, xa, xa->ticks[i]));
        cairo_move_to(p->cr, x, p->ay);
        cairo_line_to(p->cr, x, p->ay + p->ah);
    }
    cairo_stroke(p->cr);
}

/* Tick marks outside the left spine (minor ones shorter) and their labels. */
static void draw_y_ticks(panel *p, const axis *ya) {
    cairo_t *cr = p->cr;
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < ya->nticks + ya->nminor; i++) {
        bool minor = i >= ya->nticks;
        double y = snap(px_y(p, ya, minor ? ya->minor[i - ya->nticks] : ya->ticks[i]));
        cairo_move_to(cr, p->ax - 1, y);
        cairo_line_to(cr, p->ax - 1 - p->tick_len * (minor ? 0.6 : 1), y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    set_font(cr, p->tick_font, false);
    char buf[64];
    for (int i = 0; i < ya->nticks; i++) {
        tick_text(ya, ya->ticks[i], buf, sizeof buf);
        draw_text(cr, buf, p->ax - 1 - p->tick_len - p->gap, px_y(p, ya, ya->ticks[i]), 0,
                  ALIGN_RIGHT, VALIGN_MIDDLE, p->w);
    }
}

static void draw_x_ticks(panel *p, const axis *xa) {
    cairo_t *cr = p->cr;
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    double bottom = p->ay + p->ah;
    for (int i = 0; i < xa->nticks; i++) {
        double x = snap(px_x(p, xa, xa->ticks[i]));
        cairo_move_to(cr, x, bottom + 1);
        cairo_line_to(cr, x, bottom + 1 + p->tick_len);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    set_font(cr, p->tick_font, false);
    char buf[64];
    for (int i = 0; i < xa->nticks; i++) {
        tick_text(xa, xa->ticks[i], buf, sizeof buf);
        draw_text(cr, buf, px_x(p, xa, xa->ticks[i]), bottom + 1 + p->tick_len + p->gap, 0,
                  ALIGN_CENTRE, VALIGN_TOP, p->w);
    }
}

/* ---- legends ---------------------------------------------------------------- */

typedef struct {
    const char *label;
    double rgb[3];
    bool dashed, markers;
    bool swatch; /* a filled square (bars) instead of a line sample */
    double line_w;
} legend_entry;

typedef struct {
    double w, h; /* the box */
    double row, border, sample, text_gap, text_w;
    int rows; /* entries shown, plus one "+N more" row when they do not all fit */
    int shown;
} legend_box;

/* Size a legend of n entries that must fit in max_w x max_h: labels are shortened,
 * and the entries that do not fit become one "+N more" row. */
static legend_box measure_legend(panel *p, const legend_entry *e, int n, double max_w,
                                 double max_h) {
    legend_box b = {0};
    cairo_t *cr = p->cr;
    set_font(cr, p->legend_font, false);
    double font = p->legend_font;
    b.row = line_height(cr) + 0.35 * font;
    b.border = 0.5 * font;
    b.sample = 2.0 * font;
    b.text_gap = 0.7 * font;
    double max_text = fmax(max_w - 2 * b.border - b.sample - b.text_gap, 2 * font);
    int fit = (int)floor((max_h - 2 * b.border) / b.row);
    if (fit < 1 || n < 1) return (legend_box){0};
    b.shown = n <= fit ? n : fit - 1;
    b.rows = n <= fit ? n : fit;
    for (int i = 0; i < b.shown; i++)
        b.text_w = fmax(b.text_w, fitted_width(cr, e[i].label, max_text));
    if (b.shown < n) {
        char more[32];
        snprintf(more, sizeof more, "+%d more", n - b.shown);
        b.text_w = fmax(b.text_w, text_width(cr, more));
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
static void draw_legend(panel *p, const legend_entry *e, int n, const legend_box *b, double x,
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
    set_font(cr, p->legend_font, false);
    for (int i = 0; i < b->rows; i++) {
        double cy = y + b->border + (i + 0.5) * b->row;
        double tx = x + b->border + b->sample + b->text_gap;
        set_grey(cr, INK_GREY);
        if (i < b->shown) {
            draw_sample(cr, &e[i], x + b->border, cy, b->sample, p->legend_font, p->s);
            set_grey(cr, INK_GREY);
            draw_text(cr, e[i].label, tx, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, b->text_w + 1);
        } else {
            char more[32];
            snprintf(more, sizeof more, "+%d more", n - b->shown);
            draw_text(cr, more, tx, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, b->text_w + 1);
        }
    }
}

/* The top-left corner of a legend box in corner c of the axes (0 top right, 1
 * bottom right, 2 top left, 3 bottom left), inset half a font size. */
static void legend_corner(const panel *p, const legend_box *b, int c, double *x, double *y) {
    double inset = 0.5 * p->legend_font;
    bool right = c == 0 || c == 1, top = c == 0 || c == 2;
    *x = right ? p->ax + p->aw - inset - b->w : p->ax + inset;
    *y = top ? p->ay + inset : p->ay + p->ah - inset - b->h;
}

/* Height of a one-line-per-row legend of swatches laid out in rows across max_w
 * (bars: it sits above the axes, so it never hides a bar); rows_out gets the row
 * count. Labels are shortened to half of max_w. */
static double legend_row_height(panel *p, const legend_entry *e, int n, double max_w,
                                int *rows_out) {
    cairo_t *cr = p->cr;
    set_font(cr, p->legend_font, false);
    double font = p->legend_font, item_gap = 1.2 * font, sample = 1.0 * font, text_gap = 0.4 * font;
    int rows = n > 0 ? 1 : 0;
    double x = 0;
    for (int i = 0; i < n; i++) {
        double w = sample + text_gap + fitted_width(cr, e[i].label, max_w / 2);
        if (x > 0 && x + item_gap + w > max_w) {
            rows++;
            x = 0;
        }
        x += (x > 0 ? item_gap : 0) + w;
    }
    *rows_out = rows;
    return rows * (line_height(cr) + 0.35 * font);
}

/* Draw the legend rows measured by legend_row_height with the first row's top at y,
 * each row centred on cx. */
static void draw_legend_rows(panel *p, const legend_entry *e, int n, double max_w, double cx,
                             double y) {
    cairo_t *cr = p->cr;
    set_font(cr, p->legend_font, false);
    double font = p->legend_font, item_gap = 1.2 * font, sample = 1.0 * font, text_gap = 0.4 * font;
    double row_h = line_height(cr) + 0.35 * font;
    for (int first = 0; first < n;) {
        double width = 0;
        int last = first;
        for (; last < n; last++) {
            double w = sample + text_gap + fitted_width(cr, e[last].label, max_w / 2);
            if (last > first && width + item_gap + w > max_w) break;
            width += (last > first ? item_gap : 0) + w;
        }
        double x = cx - width / 2, cy = y + row_h / 2;
        for (int i = first; i < last; i++) {
            draw_sample(cr, &e[i], x, cy, sample, font, p->s);
            set_grey(cr, INK_GREY);
            x += sample + text_gap;
            draw_text(cr, e[i].label, x, cy, 0, ALIGN_LEFT, VALIGN_MIDDLE, max_w / 2);
            x += fitted_width(cr, e[i].label, max_w / 2) + item_gap;
        }
        first = last;
        y += row_h;
    }
}

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
static bool point_ok(const plot_series *s, int i, bool log) {
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!log || s->y[i] > 0);
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
static void draw_series(panel *p, const axis *xa, const axis *ya, const plot_series *s, bool log) {
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
        if (!point_ok(s, i - 1, log) || !point_ok(s, i, log)) {
            pen = false;
            continue;
        }
        double x0 = px_x(p, xa, s->x[i - 1]), y0 = px_y(p, ya, s->y[i - 1]);
        double x1 = px_x(p, xa, s->x[i]), y1 = px_y(p, ya, s->y[i]);
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
        if (!point_ok(s, i, log)) continue;
        bool isolated =
            (i == 0 || !point_ok(s, i - 1, log)) && (i == s->n - 1 || !point_ok(s, i + 1, log));
        if (!s->markers && !isolated) continue;
        double x = px_x(p, xa, s->x[i]), y = px_y(p, ya, s->y[i]);
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
            if (!point_ok(s, i, l->y_log)) continue;
            double x1 = px_x(p, xa, s->x[i]), y1 = px_y(p, ya, s->y[i]);
            double x0 = x1, y0 = y1;
            if (i > 0 && point_ok(s, i - 1, l->y_log)) {
                x0 = px_x(p, xa, s->x[i - 1]);
                y0 = px_y(p, ya, s->y[i - 1]);
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

bool plot_draw_lines(plot_figure *f, int index, const plot_lines *l, char *err, size_t errlen) {
    if (!check_panel(f, index, l, "line chart", err, errlen) || !check_lines(l, index, err, errlen))
        return false;
    bool log = l->y_log;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < l->nseries; k++)
        for (int i = 0; i < l->series[k].n; i++) {
            if (!point_ok(&l->series[k], i, log)) continue;
            double x = clampd(l->series[k].x[i], -1e300, 1e300);
            double y = clampd(l->series[k].y[i], log ? 1e-300 : -1e300, 1e300);
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
        }
    if (xlo > xhi) { /* nothing to draw: a unit range */
        xlo = 0;
        xhi = 1;
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
    pad_view(&xlo, &xhi, false, 1, false, false);
    if (!(l->has_ymin && l->has_ymax))
        pad_view(&ylo, &yhi, log, l->y_percent ? 0.1 : 1, l->has_ymin, l->has_ymax);

    panel p;
    begin_panel(f, index, &p);
    cairo_t *cr = p.cr;
    axis xa = {.lo = xlo, .hi = xhi},
         ya = {.lo = ylo, .hi = yhi, .log = log, .percent = l->y_percent};

    /* Layout: heights first (they set the y ticks), then the y tick labels' width
     * sets the left margin, then the x ticks fit the width left, and the axes give
     * back room for half of the last x label so it is not cut at the panel edge. */
    set_font(cr, p.tick_font, false);
    double tick_line = line_height(cr);
    double top = title_space(&p, l->title);
    double bottom = p.tick_len + p.gap + tick_line + xlabel_space(&p, l->xlabel) + p.pad;
    set_axes(&p, 0, top, 0, bottom);
    make_ticks(&ya, (int)clampd(p.ah / (35 * p.s), 2, 10), false);
    set_font(cr, p.tick_font, false);
    double left =
        p.pad + ylabel_space(&p, l->ylabel) + widest_tick(cr, &ya) + p.gap + p.tick_len + 1;
    double right = 2 * p.pad;
    set_axes(&p, left, top, right, bottom);
    fit_x_ticks(&p, &xa, l->x_integer);
    if (xa.nticks > 0) {
        char buf[64];
        tick_text(&xa, xa.ticks[xa.nticks - 1], buf, sizeof buf);
        set_font(cr, p.tick_font, false);
        double overhang =
            px_x(&p, &xa, xa.ticks[xa.nticks - 1]) + text_width(cr, buf) / 2 - (p.x + p.w - p.gap);
        if (overhang > 0) {
            set_axes(&p, left, top, right + overhang, bottom);
            fit_x_ticks(&p, &xa, l->x_integer);
        }
    }

    draw_x_grid(&p, &xa);
    draw_y_grid(&p, &ya);
    cairo_save(cr);
    cairo_rectangle(cr, p.ax, p.ay, p.aw, p.ah);
    cairo_clip(cr);
    if (l->has_hline && (!log || l->hline > 0)) {
        double y = px_y(&p, &ya, l->hline);
        if (y >= p.ay - 2 && y <= p.ay + p.ah + 2) {
            set_grey(cr, REFERENCE_GREY);
            double lw = 1.5 * p.s, dashes[2] = {3.7 * lw, 1.6 * lw};
            cairo_set_line_width(cr, lw);
            cairo_set_dash(cr, dashes, 2, 0);
            cairo_move_to(cr, p.ax, y);
            cairo_line_to(cr, p.ax + p.aw, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
    }
    for (int k = 0; k < l->nseries; k++) draw_series(&p, &xa, &ya, &l->series[k], log);
    cairo_restore(cr);
    draw_spines(&p);
    draw_y_ticks(&p, &ya);
    draw_x_ticks(&p, &xa);
    draw_titles(&p, l->title, l->xlabel, l->ylabel,
                p.ay + p.ah + 1 + p.tick_len + p.gap + tick_line + p.gap, 0);

    /* The legend: labelled series, then the reference line. */
    int nentries = 0;
    for (int k = 0; k < l->nseries; k++) nentries += has_text(l->series[k].label);
    nentries += l->has_hline && has_text(l->hline_label);
    legend_entry *entries = nentries ? calloc((size_t)nentries, sizeof *entries) : NULL;
    if (entries) {
        int n = 0;
        for (int k = 0; k < l->nseries; k++) {
            const plot_series *s = &l->series[k];
            if (!has_text(s->label)) continue;
            entries[n] = (legend_entry){
                .label = s->label, .dashed = s->dashed, .markers = s->markers, .line_w = 2 * p.s};
            plot_color(s->color, entries[n].rgb);
            n++;
        }
        if (l->has_hline && has_text(l->hline_label))
            entries[n++] = (legend_entry){.label = l->hline_label,
                                          .dashed = true,
                                          .line_w = 1.5 * p.s,
                                          .rgb = {REFERENCE_GREY, REFERENCE_GREY, REFERENCE_GREY}};
        double inset = 0.5 * p.legend_font;
        legend_box b = measure_legend(&p, entries, n, 0.6 * p.aw, p.ah - 2 * inset);
        if (b.rows > 0) {
            int corner = l->legend;
            if (corner == LEGEND_BEST) {
                long fewest = -1;
                for (int c = 0; c < 4; c++) {
                    double x, y;
                    legend_corner(&p, &b, c, &x, &y);
                    long hits = data_under(&p, &xa, &ya, l, x, y, b.w, b.h);
                    if (fewest < 0 || hits < fewest) {
                        fewest = hits;
                        corner = c;
                    }
                }
            }
            double x, y;
            legend_corner(&p, &b, corner, &x, &y);
            draw_legend(&p, entries, n, &b, x, y);
        }
        free(entries);
    } else if (nentries) {
        cairo_restore(cr);
        snprintf(err, errlen, "plot panel %d: out of memory", index);
        return false;
    }
    return end_panel(&p, index, err, errlen);
}

/* ---- category axes (bars, heat maps) ---------------------------------------------- */

typedef struct {
    double font; /* size of the labels */
    int step; /* every step-th label is drawn (100 classes in a few hundred pixels) */
    int angle; /* 0, 45 (reading up to the right, ending at the tick) or 90 degrees */
    double max_w; /* labels are shortened to this width */
    double depth; /* height the labels take below their anchor */
} category_layout;

/* The font and the label step (every step-th label drawn) for labels in rows slot
 * pixels apart: font itself, or a smaller one down to MIN_FONT + 1 when that puts a
 * label in every row; else a slightly smaller font in every 1st, 2nd, 5th, 10th...
 * row, so that dense labels stay readable. */
static int dense_labels(cairo_t *cr, double font, double slot, double *font_out) {
    set_font(cr, font, false);
    double line = line_height(cr) * 1.1;
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
static category_layout layout_categories(cairo_t *cr, const char *const *labels, int n, double slot,
                                         double first_room, double font, double max_len) {
    category_layout c = {.font = font, .step = 1, .angle = 0, .max_w = fmax(slot - 2, 1)};
    char buf[32];
    set_font(cr, font, false);
    double widest = 0;
    for (int i = 0; i < n; i++)
        widest = fmax(widest, text_width(cr, category_label(labels, i, buf, sizeof buf)));
    if (widest <= slot - 0.3 * font) {
        c.depth = line_height(cr);
        return c;
    }
    c.max_w = max_len;
    double f45 = fmin(font, slot * 0.707 / 1.3 * font / line_height(cr));
    if (f45 >= MIN_FONT + 1) {
        set_font(cr, f45, false);
        double line = line_height(cr);
        bool inside = true;
        double longest = 0;
        for (int i = 0; i < n; i++) {
            double w = fitted_width(cr, category_label(labels, i, buf, sizeof buf), max_len);
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
    c.step = dense_labels(cr, font, slot, &c.font);
    set_font(cr, c.font, false);
    double longest = 0;
    for (int i = 0; i < n; i += c.step)
        longest =
            fmax(longest, fitted_width(cr, category_label(labels, i, buf, sizeof buf), max_len));
    c.depth = longest;
    return c;
}

/* Category tick marks and labels under the axes at x = centre(i) = x0 + (i + 0.5) * slot. */
static void draw_categories(panel *p, const char *const *labels, int n, const category_layout *c,
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
    set_font(cr, c->font, false);
    double y = axis_bottom + 1 + p->tick_len + p->gap;
    char buf[32];
    for (int i = 0; i < n; i += c->step) {
        const char *s = category_label(labels, i, buf, sizeof buf);
        double x = x0 + (i + 0.5) * slot;
        if (c->angle == 0)
            draw_text(cr, s, x, y, 0, ALIGN_CENTRE, VALIGN_TOP, c->max_w);
        else if (c->angle == 45)
            draw_text(cr, s, x, y + line_height(cr) * 0.35, -PI / 4, ALIGN_RIGHT, VALIGN_MIDDLE,
                      c->max_w);
        else
            draw_text(cr, s, x, y, -PI / 2, ALIGN_RIGHT, VALIGN_MIDDLE, c->max_w);
    }
}

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
    if (!check_panel(f, index, b, "bar chart", err, errlen) || !check_bars(b, index, err, errlen))
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
    begin_panel(f, index, &p);
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
    double legend_h = legend_row_height(&p, entries, nentries, legend_w, &legend_rows);
    double top = title_space(&p, b->title) + (legend_rows ? legend_h + p.gap : 0);

    /* Layout: the category labels' depth depends on the slot width, which depends
     * on the y tick labels' width, which depends on the height: three rounds settle it. */
    set_font(cr, p.tick_font, false);
    double left = p.pad + ylabel_space(&p, b->ylabel) +
                  text_width(cr, b->y_percent ? "100%" : "0.0") + p.gap + p.tick_len + 1;
    double right = 2 * p.pad, bottom = 0;
    category_layout cat = {0};
    for (int round = 0; round < 3; round++) {
        set_axes(&p, left, top, right, p.h / 3);
        double slot = p.aw / (ncat > 0 ? ncat + 0.2 : 1);
        cat = layout_categories(cr, b->categories, ncat, slot, p.ax - p.x + 0.6 * slot, p.tick_font,
                                0.25 * p.h);
        bottom =
            p.tick_len + p.gap + (ncat > 0 ? cat.depth : 0) + xlabel_space(&p, b->xlabel) + p.pad;
        set_axes(&p, left, top, right, bottom);
        make_ticks(&ya, (int)clampd(p.ah / (35 * p.s), 2, 10), false);
        set_font(cr, p.tick_font, false);
        left = p.pad + ylabel_space(&p, b->ylabel) + widest_tick(cr, &ya) + p.gap + p.tick_len + 1;
    }
    set_axes(&p, left, top, right, bottom);
    double slot = p.aw / (ncat > 0 ? ncat + 0.2 : 1);
    double x0 = p.ax + 0.1 * slot; /* slot i spans x0 + [i, i + 1) * slot */
    double bar_w = nser > 0 ? 0.8 * slot / nser : 0;

    draw_y_grid(&p, &ya);
    cairo_save(cr);
    cairo_rectangle(cr, p.ax, p.ay, p.aw, p.ah);
    cairo_clip(cr);
    double zero = px_y(&p, &ya, 0);
    for (int s = 0; s < nser; s++) {
        double rgb[3];
        plot_color(s, rgb);
        set_rgb(cr, rgb);
        for (int c = 0; c < ncat; c++) {
            double v = b->values[s][c];
            if (!isfinite(v)) continue;
            double y = clampd(px_y(&p, &ya, v), p.ay - 10, p.ay + p.ah + 10);
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
                set_font(cr, ft, false);
                double widest = 0;
                for (int s = 0; s < nser; s++)
                    for (int c = 0; c < ncat; c++)
                        if (isfinite(b->values[s][c])) {
                            bar_text(b->values[s][c], d, buf, sizeof buf);
                            widest = fmax(widest, text_width(cr, buf));
                        }
                if (widest <= room) {
                    font = ft;
                    decimals = d;
                }
            }
        if (font > 0) {
            set_font(cr, font, false);
            double line = line_height(cr);
            for (int s = 0; s < nser; s++)
                for (int c = 0; c < ncat; c++) {
                    double v = b->values[s][c];
                    if (!isfinite(v)) continue;
                    bar_text(v, decimals, buf, sizeof buf);
                    double x = x0 + (c + 0.1) * slot + (s + 0.5) * bar_w, y = px_y(&p, &ya, v);
                    /* Above the bar (below a negative one); inside it in white when
                     * the axes end there; left out when neither has room. */
                    if (v >= 0 && y - 0.5 * p.gap - line >= p.ay) {
                        set_grey(cr, INK_GREY);
                        draw_text(cr, buf, x, y - 0.5 * p.gap, 0, ALIGN_CENTRE, VALIGN_BOTTOM,
                                  room + 1);
                    } else if (v < 0 && y + 0.5 * p.gap + line <= p.ay + p.ah) {
                        set_grey(cr, INK_GREY);
                        draw_text(cr, buf, x, y + 0.5 * p.gap, 0, ALIGN_CENTRE, VALIGN_TOP,
                                  room + 1);
                    } else if (fabs(zero - y) >= line + p.gap) {
                        cairo_set_source_rgb(cr, 1, 1, 1);
                        double inside = v >= 0 ? fmax(y, p.ay) + 0.5 * p.gap
                                               : fmin(y, p.ay + p.ah) - 0.5 * p.gap;
                        draw_text(cr, buf, x, inside, 0, ALIGN_CENTRE,
                                  v >= 0 ? VALIGN_TOP : VALIGN_BOTTOM, room + 1);
                    }
                }
        }
    }
    cairo_restore(cr);
    draw_spines(&p);
    draw_y_ticks(&p, &ya);
    draw_categories(&p, b->categories, ncat, &cat, x0, slot, p.ay + p.ah);
    draw_titles(&p, b->title, b->xlabel, b->ylabel,
                p.ay + p.ah + 1 + p.tick_len + p.gap + (ncat > 0 ? cat.depth : 0) + p.gap, 0);
    if (legend_rows) {
        double y = p.ay - p.gap - legend_h;
        draw_legend_rows(&p, entries, nentries, legend_w, p.x + p.w / 2, y);
    }
    free(entries);
    return end_panel(&p, index, err, errlen);
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

bool plot_draw_heatmap(plot_figure *f, int index, const plot_heatmap *h, char *err, size_t errlen) {
    if (!check_panel(f, index, h, "heat map", err, errlen) || !check_heatmap(h, index, err, errlen))
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
    begin_panel(f, index, &p);
    cairo_t *cr = p.cr;
    char buf[32];

    /* Layout: square cells, the matrix as large as the labels around it allow; the
     * label font and the category layout follow the cell size, hence three rounds. */
    set_font(cr, p.tick_font, false);
    double bar_w = 14 * p.s;
    double right = 3 * p.gap + bar_w + p.tick_len + p.gap + text_width(cr, "100%") + p.pad;
    double top = title_space(&p, h->title), ylab = ylabel_space(&p, h->ylabel);
    double max_label = 0.22 * p.w;
    double side = fmin(p.w - right - ylab - 80 * p.s, p.h - top - 60 * p.s);
    double left = 0, bottom = 0, label_font = p.tick_font, cell = 0;
    int ystep = 1;
    category_layout cat = {0};
    for (int round = 0; round < 3; round++) {
        side = fmax(side, 10);
        cell = n > 0 ? side / n : side;
        ystep = dense_labels(cr, p.tick_font, cell, &label_font);
        set_font(cr, label_font, false);
        double widest = 0;
        for (int i = 0; i < n; i += ystep)
            widest = fmax(
                widest, fitted_width(cr, category_label(h->labels, i, buf, sizeof buf), max_label));
        left = p.pad + ylab + widest + p.gap + p.tick_len + 1;
        cat = layout_categories(cr, h->labels, n, cell, left + 0.5 * cell, p.tick_font, 0.22 * p.h);
        bottom = p.tick_len + p.gap + (n > 0 ? cat.depth : 0) + xlabel_space(&p, h->xlabel) + p.pad;
        side = fmin(p.w - left - right, p.h - top - bottom);
    }
    side = fmax(side, 10);
    cell = n > 0 ? side / n : side;
    /* The block of title, labels, matrix and colour bar, centred in the panel. */
    double offset = fmax(0, floor((p.w - left - side - right) / 2));
    p.y += fmax(0, floor((p.h - top - side - bottom) / 2));
    p.ax = round(p.x + offset + left);
    p.ay = round(p.y + top);
    p.aw = p.ah = round(side);
    cell = n > 0 ? p.aw / n : p.aw;

    /* Cells between whole-pixel edges: neighbouring cells meet without seams. */
    for (int r = 0; r < n; r++) {
        double y0 = round(p.ay + r * cell), y1 = round(p.ay + (r + 1) * cell);
        for (int c = 0; c < n; c++) {
            double x0 = round(p.ax + c * cell), x1 = round(p.ax + (c + 1) * cell), rgb[3];
            blues(row_total[r] > 0 ? h->counts[(size_t)r * n + c] / row_total[r] : 0, rgb);
            set_rgb(cr, rgb);
            cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
            cairo_fill(cr);
        }
    }
    /* Counts in the cells when every one fits (at most 20 classes): white on the
     * dark half of the map. */
    if (n > 0 && n <= 20) {
        double font = 0;
        for (double ft = fmin(p.tick_font, 0.45 * cell); ft >= MIN_FONT && font == 0; ft *= 0.9) {
            set_font(cr, ft, false);
            double widest = 0;
            for (long i = 0; i < (long)n * n; i++) {
                snprintf(buf, sizeof buf, "%ld", h->counts[i]);
                widest = fmax(widest, text_width(cr, buf));
            }
            if (widest <= 0.9 * cell) font = ft;
        }
        if (font > 0) {
            set_font(cr, font, false);
            for (int r = 0; r < n; r++)
                for (int c = 0; c < n; c++) {
                    long count = h->counts[(size_t)r * n + c];
                    double v = row_total[r] > 0 ? count / row_total[r] : 0;
                    if (v > 0.5)
                        cairo_set_source_rgb(cr, 1, 1, 1);
                    else
                        set_grey(cr, INK_GREY);
                    snprintf(buf, sizeof buf, "%ld", count);
                    draw_text(cr, buf, p.ax + (c + 0.5) * cell, p.ay + (r + 0.5) * cell, 0,
                              ALIGN_CENTRE, VALIGN_MIDDLE, cell);
                }
        }
    }
    free(row_total);
    draw_spines(&p);

    /* Row labels left of the matrix, column labels under it. */
    set_grey(cr, SPINE_GREY);
    cairo_set_line_width(cr, 1);
    for (int r = 0; r < n; r += ystep) {
        double y = snap(p.ay + (r + 0.5) * cell);
        cairo_move_to(cr, p.ax - 1, y);
        cairo_line_to(cr, p.ax - 1 - p.tick_len, y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    set_font(cr, label_font, false);
    for (int r = 0; r < n; r += ystep)
        draw_text(cr, category_label(h->labels, r, buf, sizeof buf), p.ax - 1 - p.tick_len - p.gap,
                  p.ay + (r + 0.5) * cell, 0, ALIGN_RIGHT, VALIGN_MIDDLE, max_label);
    draw_categories(&p, h->labels, n, &cat, p.ax, cell, p.ay + p.ah);
    draw_titles(&p, h->title, h->xlabel, h->ylabel,
                p.ay + p.ah + 1 + p.tick_len + p.gap + (n > 0 ? cat.depth : 0) + p.gap, offset);

    /* The colour bar: the share of the row, 0% to 100%. */
    double bx = p.ax + p.aw + 3 * p.gap, by = p.ay, bh = p.ah;
    cairo_pattern_t *ramp = cairo_pattern_create_linear(0, by + bh, 0, by);
    for (int k = 0; k < 9; k++)
        cairo_pattern_add_color_stop_rgb(ramp, k / 8.0, BLUES[k][0] / 255.0, BLUES[k][1] / 255.0,
                                         BLUES[k][2] / 255.0);
    cairo_set_source(cr, ramp);
    cairo_rectangle(cr, round(bx), by, round(bar_w), bh);
    cairo_fill(cr);
    cairo_pattern_destroy(ramp);
    panel bar = p;
    bar.ax = round(bx);
    bar.aw = round(bar_w);
    draw_spines(&bar);
    axis scale = {.lo = 0, .hi = 1, .percent = true};
    make_ticks(&scale, (int)clampd(bh / (45 * p.s), 2, 6), false);
    set_grey(cr, SPINE_GREY);
    for (int i = 0; i < scale.nticks; i++) {
        double y = snap(px_y(&bar, &scale, scale.ticks[i]));
        cairo_move_to(cr, bar.ax + bar.aw, y);
        cairo_line_to(cr, bar.ax + bar.aw + p.tick_len, y);
    }
    cairo_stroke(cr);
    set_grey(cr, INK_GREY);
    set_font(cr, p.tick_font, false);
    for (int i = 0; i < scale.nticks; i++) {
        tick_text(&scale, scale.ticks[i], buf, sizeof buf);
        draw_text(cr, buf, bar.ax + bar.aw + p.tick_len + p.gap, px_y(&bar, &scale, scale.ticks[i]),
                  0, ALIGN_LEFT, VALIGN_MIDDLE, p.w);
    }
    return end_panel(&p, index, err, errlen);
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
        set_font(f->cr, FIGURE_TITLE_FONT, true);
        draw_text(f->cr, title, width / 2.0, f->title_h / 2.0 + 2, 0, ALIGN_CENTRE, VALIGN_MIDDLE,
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
