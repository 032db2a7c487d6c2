/* plot_text.c: the text of the figures: fonts, line heights, widths, labels made
 * safe (invalid UTF-8 as '?') and shortened with an ellipsis to fit their room, and
 * text drawn at any angle and alignment. */
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* ---- text ------------------------------------------------------------------ */

void pl_set_font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double pl_line_height(cairo_t *cr) {
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
double pl_text_width(cairo_t *cr, const char *s) {
    char clean[TEXT_MAX];
    cairo_text_extents_t e;
    cairo_text_extents(cr, clean_text(s, clean, sizeof clean), &e);
    return e.x_advance;
}

/* s cleaned and, when wider than max_w in the current font, shortened with "…" (the
 * longest prefix that fits, found by bisection over character starts); into buf of
 * TEXT_MAX bytes. */
const char *pl_fit_text(cairo_t *cr, const char *s, double max_w, char *buf) {
    char clean[TEXT_MAX - 4]; /* room left for the ellipsis */
    clean_text(s, clean, sizeof clean);
    snprintf(buf, TEXT_MAX, "%s", clean);
    if (pl_text_width(cr, clean) <= max_w) return buf;
    size_t starts[TEXT_MAX], n = 0;
    for (size_t i = 0; clean[i]; i++)
        if (((unsigned char)clean[i] & 0xC0) != 0x80) starts[n++] = i;
    /* The largest k whose first k characters plus "…" fit; 0 characters means none. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        snprintf(buf, TEXT_MAX, "%.*s\u2026", (int)(mid < n ? starts[mid] : strlen(clean)), clean);
        if (pl_text_width(cr, buf) <= max_w)
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
void pl_draw_text(cairo_t *cr, const char *s, double x, double y, double angle, int halign,
                      int valign, double max_w) {
    if (!has_text(s) || max_w <= 0) return;
    char buf[TEXT_MAX];
    const char *t = pl_fit_text(cr, s, max_w, buf);
    if (!t[0]) return;
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double w = pl_text_width(cr, t);
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
double pl_fitted_width(cairo_t *cr, const char *s, double max_w) {
    char buf[TEXT_MAX];
    return pl_text_width(cr, pl_fit_text(cr, s, max_w, buf));
}

/* Label i of a category list: its own text, or its number when there is no list. */
const char *pl_category_label(const char *const *labels, int i, char *buf, size_t n) {
    if (labels) return labels[i] ? labels[i] : "";
    snprintf(buf, n, "%d", i);
    return buf;
}
