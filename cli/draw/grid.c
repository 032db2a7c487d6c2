/* grid.c: grid_write_png (see grid.h): lays out and draws a labelled grid of
 * images with cairo and writes it atomically as a PNG. */
#include "grid.h"

#include <cairo/cairo.h> /* the Makefile adds no pkg-config flags: the Debian path */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 12       /* around everything, pixels */
#define GAP 8           /* between cells */
#define FONT 12.0       /* labels and captions */
#define TITLE_FONT 16.0
#define AUTO_CELL 96    /* automatic scale: cells at least this many pixels */
#define MAX_LABEL_W 220 /* row labels wider than this are shortened */
#define CAIRO_MAX 32767 /* cairo's largest image side */

/* Text width in the current font. */
static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* s shortened with "..." to fit max_w pixels, into buf. Cuts only at UTF-8
 * character starts. */
static const char *fit_text(cairo_t *cr, const char *s, double max_w, char *buf, size_t n) {
    if (text_width(cr, s) <= max_w) return s;
    size_t len = strlen(s);
    if (len + 4 > n) len = n - 4;
    while (len > 0) {
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--; /* a continuation byte */
        snprintf(buf, n, "%.*s...", (int)len, s);
        if (text_width(cr, buf) <= max_w) return buf;
        len--;
    }
    return "";
}

/* Draw s (shortened to max_w) with its baseline at y: centred on x, or starting at x. */
static void draw_text(cairo_t *cr, const char *s, double x, double y, double max_w, bool centre) {
    if (!s || !*s) return;
    char buf[512];
    const char *t = fit_text(cr, s, max_w, buf, sizeof buf);
    double tw = text_width(cr, t);
    cairo_move_to(cr, centre ? x - tw / 2 : x, y);
    cairo_show_text(cr, t);
}

/* A cairo RGB24 surface holding image [h][w][c] (grey replicated to R, G and B). */
static cairo_surface_t *image_surface(const uint8_t *img, int h, int w, int c) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        for (int x = 0; x < w; x++) {
            const uint8_t *p = img + ((size_t)y * w + x) * c;
            uint32_t r = p[0], g = c == 3 ? p[1] : p[0], b = c == 3 ? p[2] : p[0];
            row[x] = r << 16 | g << 8 | b; /* RGB24: native-endian 0x00RRGGBB */
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* The measured layout of a grid: cells of cw x ch pixels (images enlarged scale
 * times), the margins the labels need, and the whole size. */
typedef struct {
    int cols, rows, scale, cw, ch;
    double line, ascent, descent; /* of the label font */
    double label_w, title_h, title_w, cell_h, grid_w, width, height;
    bool has_captions, has_columns;
} grid_layout;

/* Measure the labels on a scratch surface to size the margins. False (err set) when
 * cairo fails. */
static bool measure_labels(const char *path, const grid_spec *g, grid_layout *L, char *err,
                           size_t errlen) {
    cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *pc = cairo_create(probe);
    cairo_select_font_face(pc, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(pc, FONT);
    cairo_font_extents_t fe;
    cairo_font_extents(pc, &fe);
    L->ascent = fe.ascent;
    L->descent = fe.descent;
    L->line = ceil(fe.ascent + fe.descent) + 2;
    L->label_w = 0;
    if (g->row_labels)
        for (int r = 0; r < L->rows; r++)
            if (g->row_labels[r]) L->label_w = fmax(L->label_w, text_width(pc, g->row_labels[r]));
    L->label_w = L->label_w > 0 ? fmin(ceil(L->label_w), MAX_LABEL_W) + GAP : 0;
    L->has_captions = false;
    if (g->captions)
        for (int i = 0; i < g->count; i++) L->has_captions |= g->captions[i] && g->captions[i][0];
    L->has_columns = false;
    if (g->column_labels)
        for (int j = 0; j < L->cols; j++)
            L->has_columns |= g->column_labels[j] && g->column_labels[j][0];
    L->title_h = L->title_w = 0;
    if (g->title && g->title[0]) {
        cairo_select_font_face(pc, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(pc, TITLE_FONT);
        L->title_h = ceil(TITLE_FONT * 1.6);
        L->title_w = text_width(pc, g->title);
    }
    cairo_status_t pst = cairo_status(pc);
    cairo_destroy(pc);
    cairo_surface_destroy(probe);
    if (pst != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: cairo: %s", path, cairo_status_to_string(pst));
        return false;
    }
    return true;
}

/* The grid's layout; false (err set) when it would exceed cairo's limits. */
static bool layout_grid(const char *path, const grid_spec *g, grid_layout *L, char *err,
                        size_t errlen) {
    L->cols = g->count < g->columns ? g->count : g->columns;
    L->rows = (g->count + g->columns - 1) / g->columns;
    int big = g->h > g->w ? g->h : g->w;
    L->scale = g->scale ? g->scale : (AUTO_CELL + big - 1) / big;
    if (L->scale < 1) L->scale = 1;
    if ((double)g->w * L->scale > CAIRO_MAX || (double)g->h * L->scale > CAIRO_MAX) {
        snprintf(err, errlen, "%s: images of %dx%d enlarged %d times exceed cairo's %d pixels",
                 path, g->h, g->w, L->scale, CAIRO_MAX);
        return false;
    }
    L->cw = g->w * L->scale;
    L->ch = g->h * L->scale;
    if (!measure_labels(path, g, L, err, errlen)) return false;
    L->cell_h = L->ch + (L->has_captions ? L->line : 0);
    L->grid_w = L->cols * (double)L->cw + (L->cols - 1) * (double)GAP;
    L->width = 2 * MARGIN + L->label_w + L->grid_w;
    if (L->title_w + 2 * MARGIN > L->width)
        L->width = fmin(L->title_w + 2 * MARGIN, L->width * 2 + 200);
    L->height = 2 * MARGIN + L->title_h + (L->has_columns ? L->line : 0) + L->rows * L->cell_h +
                (L->rows - 1) * GAP;
    if (L->width > CAIRO_MAX || L->height > CAIRO_MAX) {
        snprintf(err, errlen, "%s: the grid would be %.0fx%.0f pixels, over cairo's %d a side "
                 "(fewer images or a smaller scale)", path, L->width, L->height, CAIRO_MAX);
        return false;
    }
    return true;
}

/* Image i of the grid at (left, top), enlarged, in a light frame just outside it:
 * dark images on white stay visible. */
static void draw_image(cairo_t *cr, const grid_spec *g, const grid_layout *L, int i, double left,
                       double top) {
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left - 0.5, top - 0.5, L->cw + 1, L->ch + 1);
    cairo_stroke(cr);
    cairo_surface_t *img = image_surface(g->images[i], g->h, g->w, g->c);
    cairo_translate(cr, left, top);
    cairo_scale(cr, L->scale, L->scale);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, g->w, g->h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
}

/* The title, the column labels, then each row: its label, images and captions. */
static void draw_grid(cairo_t *cr, const grid_spec *g, const grid_layout *L) {
    int cw = L->cw, ch = L->ch;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    double y = MARGIN;
    if (L->title_h > 0) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(cr, TITLE_FONT);
        draw_text(cr, g->title, L->width / 2, y + TITLE_FONT, L->width - 2 * MARGIN, true);
        y += L->title_h;
    }
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, FONT);
    /* The row labels and the grid form one block, centred under a wider title. */
    double block_x = floor((L->width - L->label_w - L->grid_w) / 2);
    double x0 = block_x + L->label_w;
    if (L->has_columns) {
        for (int j = 0; j < L->cols; j++)
            if (g->column_labels[j])
                draw_text(cr, g->column_labels[j], x0 + j * (double)(cw + GAP) + cw / 2.0,
                          y + L->ascent, cw + GAP - 2, true);
        y += L->line;
    }
    for (int r = 0; r < L->rows; r++) {
        double top = floor(y + r * (L->cell_h + GAP));
        if (g->row_labels && g->row_labels[r])
            draw_text(cr, g->row_labels[r], block_x,
                      top + ch / 2.0 + (L->ascent - L->descent) / 2, L->label_w - GAP, false);
        for (int j = 0; j < L->cols; j++) {
            int i = r * g->columns + j;
            if (i >= g->count) break;
            double left = x0 + j * (double)(cw + GAP);
            if (g->captions && g->captions[i])
                draw_text(cr, g->captions[i], left + cw / 2.0, top + ch + L->ascent + 1,
                          cw + GAP - 2, true);
            if (g->images[i]) draw_image(cr, g, L, i, left, top);
        }
    }
}

bool grid_write_png(const char *path, const grid_spec *g, char *err, size_t errlen) {
    if (!path || !g || !g->images || g->count < 1 || g->h < 1 || g->w < 1 ||
        (g->c != 1 && g->c != 3) || g->columns < 1 || g->scale < 0 || g->scale > 64) {
        snprintf(err, errlen, "%s: bad grid (count %d, image %dx%dx%d, %d columns, scale %d)",
                 path ? path : "(no path)", g ? g->count : 0, g ? g->h : 0, g ? g->w : 0,
                 g ? g->c : 0, g ? g->columns : 0, g ? g->scale : 0);
        return false;
    }
    grid_layout L;
    if (!layout_grid(path, g, &L, err, errlen)) return false;
    cairo_surface_t *surf =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)L.width, (int)L.height);
    cairo_t *cr = cairo_create(surf);
    draw_grid(cr, g, &L);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        snprintf(err, errlen, "%s: cairo: %s", path, cairo_status_to_string(st));
        return false;
    }
    bool ok = cli_png_write_atomic(surf, path, err, errlen);
    cairo_surface_destroy(surf);
    return ok;
}

bool cli_png_write_atomic(cairo_surface_t *surf, const char *path, char *err, size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return false;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    errno = 0;
    cairo_status_t st = cairo_surface_write_to_png(surf, tmp);
    int werr = errno;
    bool ok = st == CAIRO_STATUS_SUCCESS;
    if (!ok) {
        /* cairo reports a failed open as a write error; errno says why. */
        snprintf(err, errlen, "%s: cannot write %s: %s", path, tmp,
                 werr ? strerror(werr) : cairo_status_to_string(st));
        remove(tmp);
    } else if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        remove(tmp);
        ok = false;
    }
    free(tmp);
    return ok;
}
