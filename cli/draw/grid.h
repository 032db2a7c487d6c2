/* grid.h: a grid of small uint8 images with labels, drawn into a PNG with cairo
 * (anti-aliased text in the toy "sans-serif" face). Images are enlarged by an
 * integer factor with nearest-neighbour sampling, so a 32x32 image shows its
 * pixels; grey images are drawn grey. Used by `cnnlab stats --grid` (N samples per
 * class, the class name left of each row) and `cnnlab augment-preview` (each
 * original beside K augmented versions, a label above each column).
 *
 * Layout, top to bottom: the title, the column labels, then rows of cells; the row
 * labels sit left of the rows; each caption sits under its image:
 *
 *                     title
 *             col 0    col 1    col 2
 *   row 0    [img 0]  [img 1]  [img 2]
 *            caption  caption  caption
 *   row 1    [img 3]  [img 4]  ...
 */
#ifndef CNNLAB_GRID_H
#define CNNLAB_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairo.h>

typedef struct {
    const uint8_t *const *images; /* [count] images [h][w][c]; a NULL entry leaves its cell blank */
    int count;
    int h, w, c;                  /* every image's size; c = 1 (grey) or 3 (RGB) */
    int columns;                  /* cells per row; rows = ceil(count / columns) */
    int scale;                    /* nearest-neighbour enlargement, 1..64; 0: automatic
                                     (the smallest factor giving cells of 96 pixels or more) */
    const char *title;                /* above everything, or NULL */
    const char *const *row_labels;    /* [rows], left of each row, or NULL (entries may be NULL) */
    const char *const *column_labels; /* [columns], above each column, or NULL (entries may be NULL) */
    const char *const *captions;      /* [count], under each image, or NULL (entries may be NULL) */
} grid_spec;

/* Draw g and write it to path as a PNG, atomically (path.tmp, then rename). Labels
 * too wide for their space are shortened with "...". Returns false with a message
 * in err on a bad spec, an image too large for cairo (32767 pixels a side) or a
 * write error. */
bool grid_write_png(const char *path, const grid_spec *g, char *err, size_t errlen);

/* Write a cairo image surface as a PNG, atomically (path.tmp, then rename): a
 * crash or a full disk never leaves a half-written figure. Used by the grids and
 * the plots. */
bool cli_png_write_atomic(cairo_surface_t *surf, const char *path, char *err, size_t errlen);

#endif
