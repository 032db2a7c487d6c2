/* augment.c: per-sample data augmentation on uint8 channels-last images [h][w][c]:
 * random crop with padding, horizontal flip, rotation, shift-scale-rotate, colour
 * jitter, cutout and random erasing, plus the text spec parser
 * ("crop:4:reflect,hflip,cutout:8"; grammar in docs/augmentation.md).
 *
 * Randomness: transform i of a pipeline draws from its own counter-based stream
 * (splitmix64 over a counter) whose start is a hash of (seed, key, i). Nothing is
 * shared between calls, so the same (seed, key) gives the same image on any thread
 * and in any order, and adding a transform never changes the draws of the others.
 * tests/ref/gen_augment.py re-implements the streams and the draws in Python and
 * checks the pixel arithmetic against torchvision.
 *
 * Pixel arithmetic follows torchvision's tensor path (torchvision.transforms.
 * functional_tensor) for uint8 tensors, in float32 and in the same operation order,
 * so that outputs match it exactly (colour) or to within 1 on rare pixels (the
 * bilinear warps, whose grid PyTorch computes with a matrix product). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"

struct cl_augment {
    cl_aug *t; /* [n] transforms, in order, defaults filled in */
    int n, cap;
};

/* Bounds on the parameters: large enough for any image cnnlab handles, small
 * enough that 2 * pad + 1 and the hole arithmetic cannot overflow an int. */
#define AUG_MAX_PIXELS (1 << 20)
#define AUG_MAX_COUNT 1024
#define AUG_MAX_FACTOR 1000.0f

/* ---- random streams ---------------------------------------------------------- */

#define GOLDEN 0x9E3779B97F4A7C15ull

typedef struct {
    uint64_t s; /* counter; each draw adds GOLDEN and returns mix64 of it */
} aug_rng;

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The stream of transform `index` for sample `key` under `seed`. */
static aug_rng rng_for(uint64_t seed, uint64_t key, int index) {
    uint64_t h = mix64(seed + GOLDEN);
    h = mix64(h ^ key);
    h = mix64(h + GOLDEN * (uint64_t)(index + 1));
    return (aug_rng){h};
}

static inline uint64_t rng_next(aug_rng *r) { return mix64(r->s += GOLDEN); }

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_uniform(aug_rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

/* Uniform in [lo, hi). */
static inline double rng_range(aug_rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform(r);
}

/* Uniform integer in [0, n), n >= 1 (multiply-shift of the top 32 bits). */
static inline int rng_below(aug_rng *r, int n) {
    return (int)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- pipeline ------------------------------------------------------------------ */

cl_augment *cl_augment_new(void) { return calloc(1, sizeof(cl_augment)); }

void cl_augment_free(cl_augment *a) {
    if (!a) return;
    free(a->t);
    free(a);
}

int cl_augment_count(const cl_augment *a) { return a ? a->n : 0; }

static bool prob_ok(float p) { return p >= 0.0f && p <= 1.0f; }
static bool factor_ok(float f) { return f >= 0.0f && f <= AUG_MAX_FACTOR; } /* NaN fails */

/* Fill the zero defaults of t (hflip p 0.5, one cutout hole, the erase ranges). */
static cl_aug with_defaults(cl_aug t) {
    if (t.kind == CL_AUG_HFLIP && t.p == 0.0f) t.p = 0.5f;
    if (t.kind == CL_AUG_CUTOUT && t.count == 0) t.count = 1;
    if (t.kind == CL_AUG_ERASE) {
        if (t.area_min == 0.0f && t.area_max == 0.0f) {
            t.area_min = 0.02f;
            t.area_max = 0.33f;
        }
        if (t.ratio_min == 0.0f && t.ratio_max == 0.0f) {
            t.ratio_min = 0.3f;
            t.ratio_max = 3.3f;
        }
    }
    return t;
}

/* Whether t (defaults filled) is usable; if not, why, in msg. */
static bool check_aug(const cl_aug *t, char *msg, size_t n) {
    if (!prob_ok(t->p)) return snprintf(msg, n, "the probability p must be in [0, 1]"), false;
    switch (t->kind) {
    case CL_AUG_CROP:
        if (t->pad < 0 || t->pad > AUG_MAX_PIXELS)
            return snprintf(msg, n, "the padding must be in [0, %d] pixels", AUG_MAX_PIXELS), false;
        return true;
    case CL_AUG_HFLIP: return true;
    case CL_AUG_ROTATE:
    case CL_AUG_SSR:
        if (!(t->degrees >= 0.0f && t->degrees <= 360.0f))
            return snprintf(msg, n, "degrees must be in [0, 360]"), false;
        if (t->kind == CL_AUG_ROTATE) return true;
        if (!(t->shift >= 0.0f && t->shift <= 1.0f))
            return snprintf(msg, n, "the shift must be a fraction of the size in [0, 1]"), false;
        if (!(t->scale >= 0.0f && t->scale < 1.0f))
            return snprintf(msg, n, "the scale limit must be in [0, 1)"), false;
        return true;
    case CL_AUG_JITTER:
        if (!factor_ok(t->brightness) || !factor_ok(t->contrast) || !factor_ok(t->saturation))
            return snprintf(msg, n, "brightness, contrast and saturation must be in [0, %g]",
                            (double)AUG_MAX_FACTOR),
                   false;
        if (!(t->hue >= 0.0f && t->hue <= 0.5f))
            return snprintf(msg, n, "the hue must be in [0, 0.5]"), false;
        return true;
    case CL_AUG_CUTOUT:
        if (t->size < 1 || t->size > AUG_MAX_PIXELS)
            return snprintf(msg, n, "the hole size must be in [1, %d] pixels", AUG_MAX_PIXELS), false;
        if (t->count < 1 || t->count > AUG_MAX_COUNT)
            return snprintf(msg, n, "the number of holes must be in [1, %d]", AUG_MAX_COUNT), false;
        return true;
    case CL_AUG_ERASE:
        if (!(t->area_min > 0.0f && t->area_min <= t->area_max && t->area_max <= 1.0f))
            return snprintf(msg, n, "the area range must satisfy 0 < min <= max <= 1"), false;
        if (!(t->ratio_min > 0.0f && t->ratio_min <= t->ratio_max && t->ratio_max <= 1e6f))
            return snprintf(msg, n, "the aspect-ratio range must satisfy 0 < min <= max"), false;
        return true;
    }
    return snprintf(msg, n, "unknown transform kind %d", (int)t->kind), false;
}

cl_status cl_augment_add(cl_augment *a, cl_aug t) {
    if (!a) return CL_ERR_ARG;
    t = with_defaults(t);
    char msg[128];
    if (!check_aug(&t, msg, sizeof msg)) return CL_ERR_ARG;
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 8;
        cl_aug *nt = realloc(a->t, (size_t)cap * sizeof *nt);
        if (!nt) return CL_ERR_NOMEM;
        a->t = nt;
        a->cap = cap;
    }
    a->t[a->n++] = t;
    return CL_OK;
}

/* ---- crop ----------------------------------------------------------------------- */

/* torch's 'reflect' padding index (the edge pixel is not repeated: -1 -> 1),
 * repeated for paddings wider than the image. */
static inline int reflect_index(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

/* RandomCrop(size=(h, w), padding=pad): the output is the h x w window at a random
 * offset (top, left) in [0, 2 pad]^2 of the padded image, i.e. output (y, x) =
 * input (y + dy, x + dx) with dy = top - pad, dx = left - pad. Rows are copied with
 * one memcpy for the part inside the image; only border pixels are computed. */
static void aug_crop(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r,
                     uint8_t *scratch) {
    int pad = t->pad;
    if (pad == 0) return;
    int dy = rng_below(r, 2 * pad + 1) - pad; /* torchvision draws the top first */
    int dx = rng_below(r, 2 * pad + 1) - pad;
    if (dy == 0 && dx == 0) return;
    size_t row = (size_t)w * (size_t)c;
    memcpy(scratch, img, row * (size_t)h);
    /* Output columns [lo, hi) read input columns inside the image. */
    int lo = dx < 0 ? (-dx < w ? -dx : w) : 0;
    int hi = w - dx < lo ? lo : (w - dx > w ? w : w - dx);
    for (int y = 0; y < h; y++) {
        uint8_t *dst = img + (size_t)y * row;
        int sy = y + dy;
        if (sy < 0 || sy >= h) {
            if (!t->reflect) {
                memset(dst, 0, row);
                continue;
            }
            sy = reflect_index(sy, h);
        }
        const uint8_t *src = scratch + (size_t)sy * row;
        if (hi > lo) memcpy(dst + (size_t)lo * c, src + (size_t)(lo + dx) * c, (size_t)(hi - lo) * c);
        for (int x = 0; x < w; x++) {
            if (x == lo) x = hi; /* skip the part already copied */
            if (x >= w) break;
            if (t->reflect) {
                const uint8_t *s = src + (size_t)reflect_index(x + dx, w) * c;
                for (int k = 0; k < c; k++) dst[(size_t)x * c + k] = s[k];
            } else {
                memset(dst + (size_t)x * c, 0, (size_t)c);
            }
        }
    }
}

/* ---- flip ----------------------------------------------------------------------- */

static void aug_hflip(uint8_t *img, int h, int w, int c) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * w * c;
        if (c == 3) {
            for (int i = 0, j = w - 1; i < j; i++, j--) {
                uint8_t *a = row + 3 * i, *b = row + 3 * j;
                uint8_t t0 = a[0], t1 = a[1], t2 = a[2];
                a[0] = b[0], a[1] = b[1], a[2] = b[2];
                b[0] = t0, b[1] = t1, b[2] = t2;
            }
        } else if (c == 1) {
            for (int i = 0, j = w - 1; i < j; i++, j--) {
                uint8_t t0 = row[i];
                row[i] = row[j];
                row[j] = t0;
            }
        } else {
            for (int i = 0, j = w - 1; i < j; i++, j--)
                for (int k = 0; k < c; k++) {
                    uint8_t t0 = row[i * c + k];
                    row[i * c + k] = row[j * c + k];
                    row[j * c + k] = t0;
                }
        }
    }
}

/* ---- affine warps (rotate, shift-scale-rotate) ----------------------------------- */

/* floor(x) for |x| < 2^31 without a libm call (baseline x86-64 has no roundss). */
static inline int ifloor(float x) {
    int i = (int)x;
    return (float)i > x ? i - 1 : i;
}

/* Round half to even (torch.round, nearbyintf) for 0 <= v < 2^23: adding 2^23
 * leaves no fraction bits, so the addition itself rounds, to nearest even. */
static inline float round_even(float v) { return (v + 0x1p23f) - 0x1p23f; }

/* The inverse affine matrix torchvision's _get_inverse_affine_matrix builds for
 * centre (0, 0), angle a (degrees, clockwise as F.affine counts it), translation
 * (tx, ty) pixels, scale s and no shear: input = M (output - t) in coordinates
 * centred on the image centre. m[6] is the 2x3 matrix, row-major. */
static void inverse_affine(double a, double tx, double ty, double s, double m[6]) {
    double rot = a * (M_PI / 180.0); /* math.radians */
    double cr = cos(rot), sr = sin(rot);
    m[0] = cr / s, m[1] = sr / s, m[2] = 0.0;
    m[3] = -sr / s, m[4] = cr / s, m[5] = 0.0;
    m[2] += m[0] * -tx + m[1] * -ty;
    m[5] += m[3] * -tx + m[4] * -ty;
}

/* Bilinear resampling through m, as torchvision's affine grid + grid_sample
 * (align_corners=False, zero padding), in float32 as PyTorch computes it:
 * output pixel (x, y) has centred coordinates (x - w/2 + 0.5, y - h/2 + 0.5), maps
 * to the normalised grid g = (M [xc, yc, 1]) / (w/2, h/2), and samples input pixel
 * coordinates ((g + 1) w/2 - 0.5). Neighbours outside the image count as 0.
 * coverage: multiply by the interpolated coverage of the image (torchvision's
 * fill path, which RandomRotation(fill=0) takes: edge pixels fade once more).
 * Then round half to even, as torchvision rounds before casting back to uint8. */
static void warp_bilinear(uint8_t *img, const uint8_t *src, int h, int w, int c,
                          const double m[6], bool coverage) {
    float hw = 0.5f * (float)w, hh = 0.5f * (float)h;
    float r00 = (float)m[0] / hw, r10 = (float)m[1] / hw, r20 = (float)m[2] / hw;
    float r01 = (float)m[3] / hh, r11 = (float)m[4] / hh, r21 = (float)m[5] / hh;
    for (int y = 0; y < h; y++) {
        float yc = (float)y - hh + 0.5f;
        for (int x = 0; x < w; x++) {
            float xc = (float)x - hw + 0.5f;
            float gx = xc * r00 + yc * r10 + r20;
            float gy = xc * r01 + yc * r11 + r21;
            float ix = (gx + 1.0f) * hw - 0.5f, iy = (gy + 1.0f) * hh - 0.5f;
            uint8_t *o = img + ((size_t)y * w + x) * c;
            if (!(ix > -1.0f && ix < (float)w && iy > -1.0f && iy < (float)h)) {
                memset(o, 0, (size_t)c); /* all four neighbours outside (or NaN) */
                continue;
            }
            int x0 = ifloor(ix), y0 = ifloor(iy);
            float fx = (float)x0, fy = (float)y0;
            float wx = ix - fx, ex = 1.0f - wx, ny = iy - fy, sy = 1.0f - ny;
            float wnw = sy * ex, wne = sy * wx, wsw = ny * ex, wse = ny * wx;
            size_t row = (size_t)w * c;
            if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
                /* Interior: all four neighbours, no branches. */
                const uint8_t *q = src + (size_t)y0 * row + (size_t)x0 * c;
                float cover = coverage ? ((wnw + wne) + wsw) + wse : 1.0f;
                for (int k = 0; k < c; k++) {
                    float v = (float)q[k] * wnw + (float)q[c + k] * wne + (float)q[row + k] * wsw +
                              (float)q[row + c + k] * wse;
                    if (coverage) v = v * cover;
                    o[k] = (uint8_t)round_even(v > 255.0f ? 255.0f : v);
                }
                continue;
            }
            bool in_x0 = x0 >= 0, in_x1 = x0 + 1 < w, in_y0 = y0 >= 0, in_y1 = y0 + 1 < h;
            if (!(in_y0 && in_x0)) wnw = 0.0f;
            if (!(in_y0 && in_x1)) wne = 0.0f;
            if (!(in_y1 && in_x0)) wsw = 0.0f;
            if (!(in_y1 && in_x1)) wse = 0.0f;
            float cover = 1.0f;
            if (coverage) cover = wnw + wne + wsw + wse;
            /* Corner offsets are formed only for corners inside the image. */
            for (int k = 0; k < c; k++) {
                float v = 0.0f;
                if (wnw != 0.0f) v += (float)src[(size_t)y0 * row + (size_t)x0 * c + k] * wnw;
                if (wne != 0.0f) v += (float)src[(size_t)y0 * row + (size_t)(x0 + 1) * c + k] * wne;
                if (wsw != 0.0f) v += (float)src[(size_t)(y0 + 1) * row + (size_t)x0 * c + k] * wsw;
                if (wse != 0.0f)
                    v += (float)src[(size_t)(y0 + 1) * row + (size_t)(x0 + 1) * c + k] * wse;
                if (coverage) v = v * cover;
                float rv = round_even(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
                o[k] = (uint8_t)rv;
            }
        }
    }
}

/* RandomRotation(degrees, BILINEAR, fill=0): angle uniform in [-d, d], positive
 * counter-clockwise, about the image centre. */
static void aug_rotate(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r,
                       uint8_t *scratch) {
    double d = t->degrees;
    double angle = rng_range(r, -d, d);
    if (angle == 0.0) return; /* the identity, exactly */
    double m[6];
    inverse_affine(-angle, 0.0, 0.0, 1.0, m); /* F.rotate passes -angle */
    memcpy(scratch, img, (size_t)h * w * c);
    warp_bilinear(img, scratch, h, w, c, m, true);
}

/* albumentations ShiftScaleRotate(shift, scale, degrees, border zero): angle in
 * [-d, d] (counter-clockwise), scale in [1 - s, 1 + s], shifts dx, dy in
 * [-shift, shift] as fractions of the width and height, about the image centre;
 * computed as torchvision's F.affine(img, -angle, (dx w, dy h), scale, 0) with no
 * fill (plain zero padding, like cv2.warpAffine's BORDER_CONSTANT). */
static void aug_ssr(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r,
                    uint8_t *scratch) {
    double d = t->degrees, s = t->scale, sh = t->shift;
    double angle = rng_range(r, -d, d);
    double scale = rng_range(r, 1.0 - s, 1.0 + s);
    double dx = rng_range(r, -sh, sh);
    double dy = rng_range(r, -sh, sh);
    if (angle == 0.0 && scale == 1.0 && dx == 0.0 && dy == 0.0) return;
    double m[6];
    inverse_affine(-angle, dx * w, dy * h, scale, m);
    memcpy(scratch, img, (size_t)h * w * c);
    warp_bilinear(img, scratch, h, w, c, m, false);
}

/* ---- colour jitter ------------------------------------------------------------- */

/* torchvision's _blend for uint8: (ratio * a + (1 - ratio) * b) in float32,
 * clamped to [0, 255] and truncated (not rounded) back to uint8. */
static inline uint8_t blend(float ratio, float rest, float a, float b) {
    float v = ratio * a + rest * b;
    v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
    return (uint8_t)v;
}

/* rgb_to_grayscale for uint8: the weighted sum in float32, truncated. */
static inline uint8_t grey_u8(const uint8_t *p) {
    return (uint8_t)(0.2989f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2]);
}

/* Brightness (blend with black) and contrast (blend with the mean grey level) map
 * each value on its own: through a 256-entry table. */
static void apply_lut(uint8_t *img, size_t n, float ratio, float rest, float other) {
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend(ratio, rest, (float)v, other);
    for (size_t i = 0; i < n; i++) img[i] = lut[img[i]];
}

static void adjust_brightness(uint8_t *img, int h, int w, int c, double f) {
    apply_lut(img, (size_t)h * w * c, (float)f, (float)(1.0 - f), 0.0f);
}

static void adjust_contrast(uint8_t *img, int h, int w, int c, double f) {
    size_t np = (size_t)h * w;
    uint64_t sum = 0;
    if (c == 3)
        for (size_t i = 0; i < np; i++) sum += grey_u8(img + 3 * i);
    else
        for (size_t i = 0; i < np * c; i++) sum += img[i];
    float mean = (float)sum / (float)(c == 3 ? np : np * c); /* exact sum below 2^24 */
    apply_lut(img, np * c, (float)f, (float)(1.0 - f), mean);
}

static void adjust_saturation(uint8_t *img, int h, int w, double f) {
    float ratio = (float)f, rest = (float)(1.0 - f);
    size_t np = (size_t)h * w;
    for (size_t i = 0; i < np; i++) {
        uint8_t *p = img + 3 * i;
        float g = (float)grey_u8(p);
        p[0] = blend(ratio, rest, p[0], g);
        p[1] = blend(ratio, rest, p[1], g);
        p[2] = blend(ratio, rest, p[2], g);
    }
}

/* max, min and clamp of non-NaN floats, without libm's NaN handling (calls). */
static inline float max_f(float a, float b) { return a > b ? a : b; }
static inline float min_f(float a, float b) { return a < b ? a : b; }
static inline float clamp01(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

/* torch.remainder(x, 1.0) for x in [-1, 2): fmod(x, 1) (exact: x - 1 or x), then
 * + 1 when negative, as torch does. */
static inline float rem1(float x) {
    if (x >= 1.0f) return x - 1.0f;
    return x < 0.0f ? x + 1.0f : x;
}

/* adjust_hue: RGB -> HSV (torchvision's _rgb2hsv), rotate the hue, HSV -> RGB
 * (_hsv2rgb), all in float32, then * 255 truncated. */
static void adjust_hue(uint8_t *img, int h, int w, double f) {
    float hf = (float)f;
    float unit[256]; /* v / 255 in float32, as torch divides */
    for (int v = 0; v < 256; v++) unit[v] = (float)v / 255.0f;
    size_t np = (size_t)h * w;
    for (size_t i = 0; i < np; i++) {
        uint8_t *px = img + 3 * i;
        float r = unit[px[0]], g = unit[px[1]], b = unit[px[2]];
        float maxc = max_f(r, max_f(g, b)), minc = min_f(r, min_f(g, b));
        bool eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float div = eqc ? 1.0f : cr;
        float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
        /* torch multiplies by the masks; so do we (branch-free; a sign of zero
         * cannot change the result). */
        float hr = (float)(maxc == r) * (bc - gc);
        float hg = (float)(maxc == g && maxc != r) * (2.0f + rc - bc);
        float hb = (float)(maxc != g && maxc != r) * (4.0f + gc - rc);
        float hue = hr + hg + hb;
        hue = rem1(hue / 6.0f + 1.0f); /* torch.fmod(h / 6 + 1, 1): the argument is in (0, 2) */
        hue = rem1(hue + hf);
        float v = maxc;
        float h6 = hue * 6.0f; /* in [0, 6]: truncation is floor */
        int sector = (int)h6;
        float fr = h6 - (float)sector;
        sector %= 6;
        float p = clamp01(v * (1.0f - s));
        float q = clamp01(v * (1.0f - s * fr));
        float t = clamp01(v * (1.0f - s * (1.0f - fr)));
        /* _hsv2rgb's tables, indexed by the sector instead of a switch (random
         * sectors would mispredict). */
        const float a1[6] = {v, q, p, p, t, v}, a2[6] = {t, v, v, q, p, p}, a3[6] = {p, p, t, v, v, q};
        px[0] = (uint8_t)(a1[sector] * 255.0f);
        px[1] = (uint8_t)(a2[sector] * 255.0f);
        px[2] = (uint8_t)(a3[sector] * 255.0f);
    }
}

/* ColorJitter(brightness, contrast, saturation, hue), order-randomised as
 * torchvision does: a random permutation of the four adjustments (Fisher-Yates),
 * then the factors drawn in the fixed order brightness, contrast, saturation, hue
 * (each only when enabled: brightness etc. in [max(0, 1 - b), 1 + b], hue in
 * [-h, h]), then the enabled adjustments applied in the permuted order.
 * Grey images get brightness and contrast only (torchvision leaves a 1-channel
 * image unchanged under saturation and hue). */
static void aug_jitter(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r) {
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = rng_below(r, i + 1);
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    const float lim[4] = {t->brightness, t->contrast, t->saturation, t->hue};
    double f[4] = {1.0, 1.0, 1.0, 0.0};
    for (int k = 0; k < 4; k++) {
        if (lim[k] <= 0.0f) continue;
        double l = lim[k];
        f[k] = k == 3 ? rng_range(r, -l, l) : rng_range(r, fmax(0.0, 1.0 - l), 1.0 + l);
    }
    for (int i = 0; i < 4; i++) {
        int k = order[i];
        if (lim[k] <= 0.0f) continue;
        switch (k) {
        case 0: adjust_brightness(img, h, w, c, f[0]); break;
        case 1: adjust_contrast(img, h, w, c, f[1]); break;
        case 2:
            if (c == 3) adjust_saturation(img, h, w, f[2]);
            break;
        default:
            if (c == 3) adjust_hue(img, h, w, f[3]);
            break;
        }
    }
}

/* ---- cutout and erasing -------------------------------------------------------- */

/* Fill rows [y0, y1) x columns [x0, x1) (already clipped) with v in every channel. */
static void fill_rect(uint8_t *img, int w, int c, int y0, int y1, int x0, int x1, uint8_t v) {
    if (x1 <= x0) return;
    for (int y = y0; y < y1; y++)
        memset(img + ((size_t)y * w + x0) * c, v, (size_t)(x1 - x0) * c);
}

/* Cutout (DeVries & Taylor 2017): for each hole, a centre (cy, cx) uniform over the
 * pixels, then rows [cy - size/2, cy - size/2 + size) and the same for columns,
 * clipped at the borders, set to fill. */
static void aug_cutout(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r) {
    for (int i = 0; i < t->count; i++) {
        int cy = rng_below(r, h), cx = rng_below(r, w);
        int y0 = cy - t->size / 2, x0 = cx - t->size / 2;
        int y1 = y0 + t->size, x1 = x0 + t->size;
        y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0;
        y1 = y1 > h ? h : y1, x1 = x1 > w ? w : x1;
        fill_rect(img, w, c, y0, y1, x0, x1, t->fill);
    }
}

/* RandomErasing(p, scale, ratio, value=fill) (its p is handled by the caller): up to
 * 10 tries of an area fraction in [area_min, area_max] and a log-uniform aspect
 * ratio in [ratio_min, ratio_max]; eh = round(sqrt(area * ratio)),
 * ew = round(sqrt(area / ratio)) (half to even, as Python's round); the first try
 * with eh < h and ew < w places the box uniformly. No fitting try: unchanged. */
static void aug_erase(const cl_aug *t, uint8_t *img, int h, int w, int c, aug_rng *r) {
    double area = (double)h * (double)w;
    double lr0 = log((double)t->ratio_min), lr1 = log((double)t->ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double erase_area = area * rng_range(r, t->area_min, t->area_max);
        double ratio = exp(rng_range(r, lr0, lr1));
        double fh = nearbyint(sqrt(erase_area * ratio)), fw = nearbyint(sqrt(erase_area / ratio));
        if (!(fh < h && fw < w)) continue;
        int eh = (int)fh, ew = (int)fw;
        int y0 = rng_below(r, h - eh + 1), x0 = rng_below(r, w - ew + 1);
        fill_rect(img, w, c, y0, y0 + eh, x0, x0 + ew, t->fill);
        return;
    }
}

/* ---- apply ----------------------------------------------------------------------- */

void cl_augment_apply(const cl_augment *a, uint8_t *img, int h, int w, int c, uint64_t seed,
                      uint64_t key, uint8_t *scratch) {
    if (!a || !img || h < 1 || w < 1 || c < 1) return;
    for (int i = 0; i < a->n; i++) {
        const cl_aug *t = &a->t[i];
        aug_rng r = rng_for(seed, key, i);
        /* Every transform's first draw decides whether it applies (hflip's p is
         * never 0 here; for the others p = 0 means always and draws nothing). */
        if (t->p > 0.0f && !(rng_uniform(&r) < (double)t->p)) continue;
        switch (t->kind) {
        case CL_AUG_CROP:
            if (scratch) aug_crop(t, img, h, w, c, &r, scratch);
            break;
        case CL_AUG_HFLIP: aug_hflip(img, h, w, c); break;
        case CL_AUG_ROTATE:
            if (scratch) aug_rotate(t, img, h, w, c, &r, scratch);
            break;
        case CL_AUG_SSR:
            if (scratch) aug_ssr(t, img, h, w, c, &r, scratch);
            break;
        case CL_AUG_JITTER: aug_jitter(t, img, h, w, c, &r); break;
        case CL_AUG_CUTOUT: aug_cutout(t, img, h, w, c, &r); break;
        case CL_AUG_ERASE: aug_erase(t, img, h, w, c, &r); break;
        }
    }
}

/* ---- spec parser ------------------------------------------------------------------ */

/* Grammar (docs/augmentation.md):
 *   spec  = "" | "none" | item { "," item }
 *   item  = name { ":" arg }
 *   arg   = value | key "=" value      (positional values first, in the order below)
 * Spaces around items and arguments are ignored. */

typedef enum { A_INT, A_FLOAT, A_PROB, A_MODE, A_RANGE } arg_type;

typedef struct {
    const char *key;
    const char *alias; /* a second accepted key, or NULL */
    arg_type type;
    size_t off, off2;  /* cl_aug field(s): off2 is a range's upper bound */
    double lo, hi;     /* accepted values (A_INT, A_FLOAT, A_RANGE) */
    const char *what;  /* "the padding in pixels", for messages */
} arg_desc;

#define MAX_ARGS 4
typedef struct {
    const char *name;
    cl_aug_kind kind;
    int nargs;
    arg_desc args[MAX_ARGS]; /* in positional order */
    int required;            /* how many leading arguments must be given */
    cl_aug defaults;         /* before the arguments; p as the reference library's */
} tf_desc;

#define F(field) offsetof(cl_aug, field)
#define PROB {"p", NULL, A_PROB, F(p), 0, 0, 1, "the probability"}

static const tf_desc TRANSFORMS[] = {
    {"crop", CL_AUG_CROP, 3,
     {{"pad", NULL, A_INT, F(pad), 0, 0, AUG_MAX_PIXELS, "the padding in pixels"},
      {"mode", NULL, A_MODE, F(reflect), 0, 0, 0, "the padding mode 'reflect' or 'zero'"},
      PROB},
     1, {.kind = CL_AUG_CROP}},
    {"hflip", CL_AUG_HFLIP, 1, {PROB}, 0, {.kind = CL_AUG_HFLIP, .p = 0.5f}},
    {"rotate", CL_AUG_ROTATE, 2,
     {{"degrees", NULL, A_FLOAT, F(degrees), 0, 0, 360, "the maximum angle in degrees"}, PROB},
     1, {.kind = CL_AUG_ROTATE}},
    {"ssr", CL_AUG_SSR, 4,
     {{"shift", NULL, A_FLOAT, F(shift), 0, 0, 1, "the maximum shift as a fraction of the size"},
      {"scale", NULL, A_FLOAT, F(scale), 0, 0, 0.99, "the scale limit"},
      {"degrees", NULL, A_FLOAT, F(degrees), 0, 0, 360, "the maximum angle in degrees"},
      PROB},
     0, {.kind = CL_AUG_SSR, .shift = 0.0625f, .scale = 0.1f, .degrees = 45.0f, .p = 0.5f}},
    {"jitter", CL_AUG_JITTER, 4,
     {{"brightness", NULL, A_FLOAT, F(brightness), 0, 0, AUG_MAX_FACTOR, "the brightness"},
      {"contrast", NULL, A_FLOAT, F(contrast), 0, 0, AUG_MAX_FACTOR, "the contrast"},
      {"saturation", NULL, A_FLOAT, F(saturation), 0, 0, AUG_MAX_FACTOR, "the saturation"},
      {"hue", NULL, A_FLOAT, F(hue), 0, 0, 0.5, "the hue"}},
     0, {.kind = CL_AUG_JITTER}},
    {"cutout", CL_AUG_CUTOUT, 4,
     {{"size", NULL, A_INT, F(size), 0, 1, AUG_MAX_PIXELS, "the hole size in pixels"},
      {"count", NULL, A_INT, F(count), 0, 1, AUG_MAX_COUNT, "the number of holes"},
      {"fill", "value", A_INT, F(fill), 0, 0, 255, "the fill value"},
      PROB},
     1, {.kind = CL_AUG_CUTOUT, .count = 1}},
    {"erase", CL_AUG_ERASE, 4,
     {PROB,
      {"scale", NULL, A_RANGE, F(area_min), F(area_max), 0, 1,
       "the area range as MIN-MAX fractions of the image (e.g. 0.02-0.33)"},
      {"ratio", NULL, A_RANGE, F(ratio_min), F(ratio_max), 0, 1e6,
       "the aspect-ratio range as MIN-MAX (e.g. 0.3-3.3)"},
      {"value", "fill", A_INT, F(fill), 0, 0, 255, "the fill value"}},
     0,
     {.kind = CL_AUG_ERASE, .p = 0.5f, .area_min = 0.02f, .area_max = 0.33f, .ratio_min = 0.3f,
      .ratio_max = 3.3f}},
};
#define NTRANSFORMS (int)(sizeof TRANSFORMS / sizeof TRANSFORMS[0])

/* A token: a slice [s, s + n) of the spec. */
typedef struct {
    const char *s;
    size_t n;
} tok;

static tok trim(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    return (tok){s, n};
}

static bool tok_is(tok t, const char *word) { return strlen(word) == t.n && !memcmp(t.s, word, t.n); }

/* "augmentation 'ITEM': " + message into err; returns CL_ERR_PARSE. */
static cl_status item_error(char *err, size_t errlen, tok item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cl_status item_error(char *err, size_t errlen, tok item, const char *fmt, ...) {
    if (!err || !errlen) return CL_ERR_PARSE;
    int k = snprintf(err, errlen, "augmentation '%.*s': ", (int)(item.n > 80 ? 80 : item.n),
                     item.s);
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return CL_ERR_PARSE;
}

/* Parse a whole token as a finite number (no trailing characters). */
static bool parse_double(tok t, double *v) {
    char buf[64];
    if (t.n == 0 || t.n >= sizeof buf) return false;
    memcpy(buf, t.s, t.n);
    buf[t.n] = '\0';
    char *end;
    *v = strtod(buf, &end);
    return *end == '\0' && isfinite(*v) && !(buf[0] == ' ' || buf[0] == '\t');
}

static bool parse_int(tok t, long *v) {
    if (t.n == 0 || t.n > 12) return false;
    long x = 0;
    size_t i = 0;
    bool neg = t.s[0] == '-';
    if (neg || t.s[0] == '+') i++;
    if (i == t.n) return false;
    for (; i < t.n; i++) {
        if (t.s[i] < '0' || t.s[i] > '9') return false;
        x = 10 * x + (t.s[i] - '0');
    }
    *v = neg ? -x : x;
    return true;
}

static void put_float(cl_aug *t, size_t off, double v) {
    float f = (float)v;
    memcpy((char *)t + off, &f, sizeof f);
}

/* Set argument d of transform t from the value token v. */
static cl_status set_arg(cl_aug *t, const arg_desc *d, tok v, tok item, char *err, size_t errlen) {
    double x;
    long n;
    switch (d->type) {
    case A_INT:
        if (!parse_int(v, &n))
            return item_error(err, errlen, item, "expected %s, got '%.*s'", d->what, (int)v.n, v.s);
        if (n < (long)d->lo || n > (long)d->hi)
            return item_error(err, errlen, item, "%s must be between %ld and %ld, got '%.*s'",
                              d->what, (long)d->lo, (long)d->hi, (int)v.n, v.s);
        if (d->off == F(fill)) {
            t->fill = (uint8_t)n;
        } else {
            int i = (int)n;
            memcpy((char *)t + d->off, &i, sizeof i);
        }
        return CL_OK;
    case A_FLOAT:
        if (!parse_double(v, &x))
            return item_error(err, errlen, item, "expected %s, got '%.*s'", d->what, (int)v.n, v.s);
        if (x < d->lo || x > d->hi)
            return item_error(err, errlen, item, "%s must be between %g and %g, got '%.*s'",
                              d->what, d->lo, d->hi, (int)v.n, v.s);
        put_float(t, d->off, x);
        return CL_OK;
    case A_PROB:
        if (!parse_double(v, &x))
            return item_error(err, errlen, item, "expected %s, got '%.*s'", d->what, (int)v.n, v.s);
        if (!(x > 0.0 && x <= 1.0))
            return item_error(err, errlen, item,
                              "the probability must be in (0, 1], got '%.*s' (leave the "
                              "transform out to never apply it)",
                              (int)v.n, v.s);
        t->p = (float)x;
        return CL_OK;
    case A_MODE:
        if (tok_is(v, "reflect")) {
            t->reflect = true;
        } else if (tok_is(v, "zero") || tok_is(v, "zeros") || tok_is(v, "constant")) {
            t->reflect = false;
        } else {
            return item_error(err, errlen, item, "expected %s, got '%.*s'", d->what, (int)v.n, v.s);
        }
        return CL_OK;
    case A_RANGE: {
        /* The separating '-': not the first character, not an exponent's sign. */
        const char *dash = NULL;
        for (size_t i = 1; i < v.n && !dash; i++)
            if (v.s[i] == '-' && v.s[i - 1] != 'e' && v.s[i - 1] != 'E') dash = v.s + i;
        double a, b;
        if (!dash || !parse_double(trim(v.s, (size_t)(dash - v.s)), &a) ||
            !parse_double(trim(dash + 1, v.n - (size_t)(dash + 1 - v.s)), &b))
            return item_error(err, errlen, item, "expected %s, got '%.*s'", d->what, (int)v.n, v.s);
        if (!(a > d->lo && a <= b && b <= d->hi))
            return item_error(err, errlen, item, "%s needs 0 < MIN <= MAX <= %g, got '%.*s'",
                              d->what, d->hi, (int)v.n, v.s);
        put_float(t, d->off, a);
        put_float(t, d->off2, b);
        return CL_OK;
    }
    }
    return CL_ERR_PARSE;
}

/* Parse one item into *out. */
static cl_status parse_item(tok item, cl_aug *out, char *err, size_t errlen) {
    /* Split at ':' into the name and the argument tokens. */
    const char *end = item.s + item.n;
    const char *colon = memchr(item.s, ':', item.n);
    tok name = trim(item.s, (size_t)((colon ? colon : end) - item.s));
    const tf_desc *td = NULL;
    for (int i = 0; i < NTRANSFORMS; i++)
        if (tok_is(name, TRANSFORMS[i].name)) td = &TRANSFORMS[i];
    if (!td)
        return item_error(err, errlen, item,
                          "unknown transform '%.*s' (expected crop, hflip, rotate, ssr, jitter, "
                          "cutout or erase)",
                          (int)name.n, name.s);
    cl_aug t = td->defaults;
    bool given[MAX_ARGS] = {false};
    int npos = 0;
    bool keyed = false;
    for (const char *p = colon; p && p < end;) {
        const char *s = p + 1;
        const char *next = memchr(s, ':', (size_t)(end - s));
        tok arg = trim(s, (size_t)((next ? next : end) - s));
        p = next;
        const char *eq = memchr(arg.s, '=', arg.n);
        int which = -1;
        tok value = arg;
        if (eq) {
            tok key = trim(arg.s, (size_t)(eq - arg.s));
            value = trim(eq + 1, (size_t)(arg.s + arg.n - (eq + 1)));
            for (int i = 0; i < td->nargs; i++)
                if (tok_is(key, td->args[i].key) ||
                    (td->args[i].alias && tok_is(key, td->args[i].alias)))
                    which = i;
            if (which < 0) {
                char keys[128] = "";
                for (int i = 0; i < td->nargs; i++)
                    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s",
                             i ? (i + 1 == td->nargs ? " and " : ", ") : "", td->args[i].key);
                return item_error(err, errlen, item, "unknown key '%.*s' (%s takes %s)", (int)key.n,
                                  key.s, td->name, keys);
            }
            keyed = true;
        } else {
            if (keyed)
                return item_error(err, errlen, item,
                                  "positional argument '%.*s' after a key=value argument",
                                  (int)arg.n, arg.s);
            if (npos >= td->nargs) {
                char keys[128] = "";
                for (int i = 0; i < td->nargs; i++)
                    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", i ? ":" : "",
                             td->args[i].key);
                return item_error(err, errlen, item, "too many arguments (%s takes at most %d: %s:%s)",
                                  td->name, td->nargs, td->name, keys);
            }
            which = npos++;
        }
        if (given[which])
            return item_error(err, errlen, item, "%s is given twice", td->args[which].key);
        given[which] = true;
        cl_status st = set_arg(&t, &td->args[which], value, item, err, errlen);
        if (st != CL_OK) return st;
    }
    for (int i = 0; i < td->required; i++)
        if (!given[i])
            return item_error(err, errlen, item, "expected %s (e.g. %s)", td->args[i].what,
                              t.kind == CL_AUG_CROP     ? "crop:4 or crop:4:reflect"
                              : t.kind == CL_AUG_ROTATE ? "rotate:15"
                                                        : "cutout:8 or cutout:8:2");
    if (t.kind == CL_AUG_JITTER && t.brightness == 0.0f && t.contrast == 0.0f &&
        t.saturation == 0.0f && t.hue == 0.0f)
        return item_error(err, errlen, item,
                          "expected at least one non-zero factor (e.g. jitter:0.4:0.4:0.4:0.1)");
    char msg[128];
    t = with_defaults(t);
    if (!check_aug(&t, msg, sizeof msg)) return item_error(err, errlen, item, "%s", msg);
    *out = t;
    return CL_OK;
}

cl_status cl_augment_parse(cl_augment *a, const char *spec, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!a || !spec) {
        if (err && errlen) snprintf(err, errlen, "augmentation: no pipeline or no spec");
        return CL_ERR_ARG;
    }
    tok all = trim(spec, strlen(spec));
    if (all.n == 0 || tok_is(all, "none")) return CL_OK;
    /* Parse every item first, so that a bad spec appends nothing. */
    int nitems = 1;
    for (size_t i = 0; i < all.n; i++) nitems += all.s[i] == ',';
    cl_aug *items = malloc((size_t)nitems * sizeof *items);
    if (!items) return CL_ERR_NOMEM;
    cl_status st = CL_OK;
    const char *p = all.s, *end = all.s + all.n;
    for (int i = 0; i < nitems && st == CL_OK; i++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        tok item = trim(p, (size_t)((comma ? comma : end) - p));
        if (item.n == 0) {
            if (err && errlen)
                snprintf(err, errlen, "augmentation spec '%.*s': item %d is empty (two commas in a "
                         "row, or a comma at an end)",
                         (int)(all.n > 80 ? 80 : all.n), all.s, i + 1);
            st = CL_ERR_PARSE;
            break;
        }
        st = parse_item(item, &items[i], err, errlen);
        p = comma ? comma + 1 : end;
    }
    int before = a->n;
    for (int i = 0; i < nitems && st == CL_OK; i++) st = cl_augment_add(a, items[i]);
    if (st != CL_OK) a->n = before; /* all or nothing, out of memory included */
    free(items);
    return st;
}
