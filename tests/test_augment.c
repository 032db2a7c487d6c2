/* test_augment.c: the augmentation pipeline (src/data/augment.c): the spec parser and its
 * messages, cl_augment_add's checks, and for every transform the output bounds,
 * determinism under (seed, key), thread independence, known values computed here
 * (flip, crop windows with reflect and zero padding, identity warps, cutout and
 * erase rectangles, jitter tables) and the torchvision reference images of
 * tests/ref/augment.bin (written by tests/ref/gen_augment.py). Usage:
 *   test_augment [tests/ref/augment.bin] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

#define FIXTURE "tests/ref/augment.bin"
#define GUARD 64 /* bytes checked after the image and the scratch */

/* A deterministic test image [h][w][c]: a mixing hash of the position, values in
 * [lo, hi] (so a fill value outside that range marks the pixels a transform wrote). */
static void test_image(uint8_t *img, int h, int w, int c, int lo, int hi, uint32_t salt) {
    for (int i = 0; i < h * w * c; i++) {
        uint32_t x = (uint32_t)i * 2654435761u ^ salt;
        x ^= x >> 15;
        x *= 2246822519u;
        x ^= x >> 13;
        img[i] = (uint8_t)(lo + (int)(x % (uint32_t)(hi - lo + 1)));
    }
}

static cl_augment *parse_or_fail(const char *spec) {
    cl_augment *a = cl_augment_new();
    char err[256];
    if (!a) {
        t_fail("out of memory");
        return NULL;
    }
    if (cl_augment_parse(a, spec, err, sizeof err) != CL_OK) {
        t_fail("'%s' did not parse: %s", spec, err);
        cl_augment_free(a);
        return NULL;
    }
    return a;
}

/* Apply a to a copy of src into out, checking that neither the image nor the
 * scratch is written past h*w*c bytes. */
static void apply_checked(const cl_augment *a, const uint8_t *src, uint8_t *out, int h, int w,
                          int c, uint64_t seed, uint64_t key) {
    size_t n = (size_t)h * w * c;
    uint8_t *img = xmalloc(n + GUARD), *scratch = xmalloc(n + GUARD);
    memcpy(img, src, n);
    memset(img + n, 0xA5, GUARD);
    memset(scratch, 0x5A, n + GUARD);
    cl_augment_apply(a, img, h, w, c, seed, key, scratch);
    for (int i = 0; i < GUARD; i++)
        if (img[n + i] != 0xA5 || scratch[n + i] != 0x5A) {
            t_fail("wrote past the image or the scratch (byte %zu)", n + (size_t)i);
            break;
        }
    memcpy(out, img, n);
    free(img);
    free(scratch);
}

/* ---- parser ------------------------------------------------------------------------ */

static void test_parse_valid(void) {
    t_begin("parse/valid specs");
    static const struct {
        const char *spec;
        int count;
    } ok[] = {
        {"", 0},
        {"none", 0},
        {"  ", 0},
        {"crop:4:reflect,hflip,cutout:8", 3},
        {"crop:4:reflect,hflip,cutout:8,jitter:0.2:0.2:0.2:0.05,rotate:15,ssr:0.1:0.1:15,erase:0.5", 7},
        {" crop : 4 : reflect , hflip ", 2},
        {"crop:pad=4:mode=zero", 1},
        {"crop:4:mode=constant:p=0.5", 1},
        {"hflip:0.25", 1},
        {"hflip:p=1", 1},
        {"rotate:degrees=15:p=0.3", 1},
        {"ssr", 1},
        {"ssr:0.1", 1},
        {"ssr:shift=0.1:scale=0.2:degrees=30:p=1", 1},
        {"jitter:0.2", 1},
        {"jitter:hue=0.5", 1},
        {"jitter:0:0:0:0.1", 1},
        {"cutout:8:2:128", 1},
        {"cutout:size=8:count=2:fill=255:p=0.5", 1},
        {"cutout:8:value=3", 1},
        {"erase", 1},
        {"erase:1:0.02-0.33:0.3-3.3:0", 1},
        {"erase:p=0.5:scale=1e-2-0.5:ratio=0.5-2:value=127", 1},
        {"erase:fill=9", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cl_augment *a = parse_or_fail(ok[i].spec);
        if (!a) continue;
        if (cl_augment_count(a) != ok[i].count)
            t_fail("'%s': %d transforms, expected %d", ok[i].spec, cl_augment_count(a), ok[i].count);
        cl_augment_free(a);
    }
    /* Parsing appends. */
    cl_augment *a = parse_or_fail("hflip");
    char err[256];
    if (a && (cl_augment_parse(a, "crop:2,cutout:4", err, sizeof err) != CL_OK ||
              cl_augment_count(a) != 3))
        t_fail("a second parse should append (count %d)", cl_augment_count(a));
    cl_augment_free(a);
    t_end();
}

static void test_parse_errors(void) {
    t_begin("parse/error messages");
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"crop:x", "augmentation 'crop:x': expected the padding in pixels, got 'x'"},
        {"crop", "augmentation 'crop': expected the padding in pixels (e.g. crop:4 or crop:4:reflect)"},
        {"crop:4.5", "augmentation 'crop:4.5': expected the padding in pixels, got '4.5'"},
        {"crop:-1", "augmentation 'crop:-1': the padding in pixels must be between 0 and 1048576, got '-1'"},
        {"crop:4:edge", "augmentation 'crop:4:edge': expected the padding mode 'reflect' or 'zero', got 'edge'"},
        {"crop:4:reflect:0.5:1", "augmentation 'crop:4:reflect:0.5:1': too many arguments (crop takes at most 3: crop:pad:mode:p)"},
        {"crop:pad=4:reflect", "augmentation 'crop:pad=4:reflect': positional argument 'reflect' after a key=value argument"},
        {"crop:4:pad=5", "augmentation 'crop:4:pad=5': pad is given twice"},
        {"crop:padding=4", "augmentation 'crop:padding=4': unknown key 'padding' (crop takes pad, mode and p)"},
        {"crop:", "augmentation 'crop:': expected the padding in pixels, got ''"},
        {"flip", "augmentation 'flip': unknown transform 'flip' (expected crop, hflip, rotate, ssr, jitter, cutout or erase)"},
        {"hflip:0", "augmentation 'hflip:0': the probability must be in (0, 1], got '0' (leave the transform out to never apply it)"},
        {"hflip:1.5", "augmentation 'hflip:1.5': the probability must be in (0, 1], got '1.5' (leave the transform out to never apply it)"},
        {"hflip:nan", "augmentation 'hflip:nan': expected the probability, got 'nan'"},
        {"rotate", "augmentation 'rotate': expected the maximum angle in degrees (e.g. rotate:15)"},
        {"rotate:400", "augmentation 'rotate:400': the maximum angle in degrees must be between 0 and 360, got '400'"},
        {"ssr:0.1:1", "augmentation 'ssr:0.1:1': the scale limit must be between 0 and 0.99, got '1'"},
        {"jitter", "augmentation 'jitter': expected at least one non-zero factor (e.g. jitter:0.4:0.4:0.4:0.1)"},
        {"jitter:0:0", "augmentation 'jitter:0:0': expected at least one non-zero factor (e.g. jitter:0.4:0.4:0.4:0.1)"},
        {"jitter:0.2:0.2:0.2:0.6", "augmentation 'jitter:0.2:0.2:0.2:0.6': the hue must be between 0 and 0.5, got '0.6'"},
        {"cutout:0", "augmentation 'cutout:0': the hole size in pixels must be between 1 and 1048576, got '0'"},
        {"cutout:8:1:256", "augmentation 'cutout:8:1:256': the fill value must be between 0 and 255, got '256'"},
        {"erase:1:0.5-0.1", "augmentation 'erase:1:0.5-0.1': the area range as MIN-MAX fractions of the image (e.g. 0.02-0.33) needs 0 < MIN <= MAX <= 1, got '0.5-0.1'"},
        {"erase:1:0.3", "augmentation 'erase:1:0.3': expected the area range as MIN-MAX fractions of the image (e.g. 0.02-0.33), got '0.3'"},
        {"hflip,,crop:4", "augmentation spec 'hflip,,crop:4': item 2 is empty (two commas in a row, or a comma at an end)"},
        {"hflip,", "augmentation spec 'hflip,': item 2 is empty (two commas in a row, or a comma at an end)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cl_augment *a = cl_augment_new();
        char err[512] = "";
        cl_status st = cl_augment_parse(a, bad[i].spec, err, sizeof err);
        if (st == CL_OK)
            t_fail("'%s' parsed", bad[i].spec);
        else if (strcmp(err, bad[i].msg))
            t_fail("'%s': message\n    got:  %s\n    want: %s", bad[i].spec, err, bad[i].msg);
        if (cl_augment_count(a) != 0) t_fail("'%s': a failed parse appended transforms", bad[i].spec);
        cl_augment_free(a);
    }
    /* A bad item after good ones appends nothing; a short err buffer is safe. */
    cl_augment *a = cl_augment_new();
    char small[8];
    if (cl_augment_parse(a, "hflip,crop:4,bogus", small, sizeof small) == CL_OK ||
        cl_augment_count(a) != 0 || strlen(small) != 7)
        t_fail("partial spec: count %d, message '%s'", cl_augment_count(a), small);
    if (cl_augment_parse(a, "crop:4", NULL, 0) != CL_OK || cl_augment_parse(a, "x", NULL, 0) == CL_OK)
        t_fail("NULL err buffer");
    cl_augment_free(a);
    t_end();
}

static void test_add_checks(void) {
    t_begin("add/argument checks");
    static const cl_aug good[] = {
        {.kind = CL_AUG_CROP, .pad = 4},
        {.kind = CL_AUG_HFLIP},
        {.kind = CL_AUG_ROTATE, .degrees = 10},
        {.kind = CL_AUG_SSR, .shift = 0.1f, .scale = 0.1f, .degrees = 10},
        {.kind = CL_AUG_JITTER, .brightness = 0.2f, .hue = 0.5f},
        {.kind = CL_AUG_CUTOUT, .size = 8},
        {.kind = CL_AUG_ERASE},
    };
    static const cl_aug bad[] = {
        {.kind = CL_AUG_CROP, .pad = -1},
        {.kind = CL_AUG_HFLIP, .p = 1.5f},
        {.kind = CL_AUG_ROTATE, .degrees = -1},
        {.kind = CL_AUG_ROTATE, .degrees = NAN},
        {.kind = CL_AUG_SSR, .scale = 1.0f},
        {.kind = CL_AUG_SSR, .shift = 2.0f},
        {.kind = CL_AUG_JITTER, .hue = 0.6f},
        {.kind = CL_AUG_JITTER, .contrast = -0.1f},
        {.kind = CL_AUG_CUTOUT, .size = 0},
        {.kind = CL_AUG_CUTOUT, .size = 4, .count = -1},
        {.kind = CL_AUG_ERASE, .area_min = 0.5f, .area_max = 0.1f},
        {.kind = CL_AUG_ERASE, .ratio_min = -1.0f, .ratio_max = 2.0f},
        {.kind = (cl_aug_kind)99},
    };
    cl_augment *a = cl_augment_new();
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (cl_augment_add(a, good[i]) != CL_OK) t_fail("good transform %zu refused", i);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cl_augment_add(a, bad[i]) != CL_ERR_ARG) t_fail("bad transform %zu accepted", i);
    if (cl_augment_count(a) != (int)(sizeof good / sizeof good[0]))
        t_fail("count %d after the adds", cl_augment_count(a));
    if (cl_augment_add(NULL, good[0]) != CL_ERR_ARG) t_fail("add to NULL");
    cl_augment_free(a);
    cl_augment_free(NULL);
    t_end();
}

/* A spec and the struct it should mean give the same images. */
static void test_parse_equals_add(void) {
    t_begin("parse/spec equals the struct");
    static const struct {
        const char *spec;
        cl_aug t;
    } eq[] = {
        {"crop:4:reflect", {.kind = CL_AUG_CROP, .pad = 4, .reflect = true}},
        {"crop:pad=3:mode=zero:p=0.5", {.kind = CL_AUG_CROP, .pad = 3, .p = 0.5f}},
        {"hflip", {.kind = CL_AUG_HFLIP}},
        {"hflip:0.5", {.kind = CL_AUG_HFLIP}},
        {"rotate:15", {.kind = CL_AUG_ROTATE, .degrees = 15}},
        {"ssr", {.kind = CL_AUG_SSR, .shift = 0.0625f, .scale = 0.1f, .degrees = 45, .p = 0.5f}},
        {"ssr:0.2:0.3:10:1", {.kind = CL_AUG_SSR, .shift = 0.2f, .scale = 0.3f, .degrees = 10, .p = 1}},
        {"jitter:0.1:0.2:0.3:0.04",
         {.kind = CL_AUG_JITTER, .brightness = 0.1f, .contrast = 0.2f, .saturation = 0.3f, .hue = 0.04f}},
        {"cutout:8", {.kind = CL_AUG_CUTOUT, .size = 8}},
        {"cutout:6:3:200:0.5", {.kind = CL_AUG_CUTOUT, .size = 6, .count = 3, .fill = 200, .p = 0.5f}},
        {"erase", {.kind = CL_AUG_ERASE, .p = 0.5f}},
        {"erase:1:0.1-0.2:1-2:5",
         {.kind = CL_AUG_ERASE, .p = 1, .area_min = 0.1f, .area_max = 0.2f, .ratio_min = 1, .ratio_max = 2, .fill = 5}},
    };
    enum { H = 17, W = 19, C = 3 };
    uint8_t src[H * W * C], a1[H * W * C], a2[H * W * C];
    test_image(src, H, W, C, 0, 255, 7);
    for (size_t i = 0; i < sizeof eq / sizeof eq[0]; i++) {
        cl_augment *p = parse_or_fail(eq[i].spec), *q = cl_augment_new();
        if (!p) {
            cl_augment_free(q);
            continue;
        }
        if (cl_augment_add(q, eq[i].t) != CL_OK) t_fail("%s: struct refused", eq[i].spec);
        for (uint64_t key = 0; key < 20; key++) {
            apply_checked(p, src, a1, H, W, C, 3, key);
            apply_checked(q, src, a2, H, W, C, 3, key);
            if (memcmp(a1, a2, sizeof a1)) {
                t_fail("'%s' differs from its struct (key %d)", eq[i].spec, (int)key);
                break;
            }
        }
        cl_augment_free(p);
        cl_augment_free(q);
    }
    t_end();
}

/* ---- every transform: bounds, determinism, thread independence ---------------------- */

static const char *EACH[] = {
    "crop:4:reflect", "crop:4", "crop:40:reflect", "crop:40", "hflip", "rotate:45", "ssr:0.2:0.2:45:1",
    "jitter:0.4:0.4:0.4:0.1", "cutout:8", "cutout:20:4", "erase:1", "erase:1:0.5-1:0.1-10",
    "crop:4:reflect,hflip,cutout:8,jitter:0.2:0.2:0.2:0.05,rotate:15,ssr:0.1:0.1:15,erase:0.5",
};

static void test_determinism(const char *spec, int h, int w, int c) {
    t_begin("%s/%dx%dx%d: bounds, same key same image, keys differ, threads", spec, h, w, c);
    cl_augment *a = parse_or_fail(spec);
    if (!a) {
        t_end();
        return;
    }
    size_t n = (size_t)h * w * c;
    enum { K = 16 };
    uint8_t *src = xmalloc(n), *out = xmalloc(n * K), *again = xmalloc(n);
    test_image(src, h, w, c, 0, 255, 11);
    int distinct = 0;
    for (int k = 0; k < K; k++) {
        apply_checked(a, src, out + k * n, h, w, c, 42, (uint64_t)k * 1000003u);
        apply_checked(a, src, again, h, w, c, 42, (uint64_t)k * 1000003u);
        if (memcmp(out + k * n, again, n)) t_fail("key %d: two runs differ", k);
        bool seen = false;
        for (int j = 0; j < k && !seen; j++) seen = !memcmp(out + j * n, out + k * n, n);
        distinct += !seen;
    }
    /* A flip has two outcomes; the others many (a zero crop of 40 often gives black). */
    if (distinct < (strcmp(spec, "hflip") ? 4 : 2)) t_fail("only %d distinct images from %d keys", distinct, K);
    /* A different seed changes the images too. */
    apply_checked(a, src, again, h, w, c, 43, 0);
    bool same_seed43 = !memcmp(again, out, n);
    apply_checked(a, src, again, h, w, c, 44, 0);
    if (same_seed43 && !memcmp(again, out, n)) t_fail("seeds 42, 43, 44 give the same image for key 0");
    /* The same keys on several threads at once, in another order. */
    uint8_t *par = xmalloc(n * K), *scr = xmalloc(n * K);
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(4) reduction(+ : bad)
    for (int k = K - 1; k >= 0; k--) {
        memcpy(par + k * n, src, n);
        cl_augment_apply(a, par + k * n, h, w, c, 42, (uint64_t)k * 1000003u, scr + k * n);
        bad += memcmp(par + k * n, out + k * n, n) != 0;
    }
    if (bad) t_fail("%d of %d images differ when made on threads", bad, K);
    free(par);
    free(scr);
    free(src);
    free(out);
    free(again);
    cl_augment_free(a);
    t_end();
}

/* ---- known values -------------------------------------------------------------------- */

static void test_hflip_known(void) {
    t_begin("hflip/p=1 reverses every row (c = 1, 3, 4)");
    cl_augment *a = parse_or_fail("hflip:1");
    for (int c = 1; c <= 4; c++) {
        enum { H = 5, W = 7 };
        uint8_t src[H * W * 4], out[H * W * 4];
        test_image(src, H, W, c, 0, 255, (uint32_t)c);
        for (uint64_t key = 0; key < 4; key++) {
            apply_checked(a, src, out, H, W, c, 1, key);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int k = 0; k < c; k++)
                        if (out[(y * W + x) * c + k] != src[(y * W + (W - 1 - x)) * c + k]) {
                            t_fail("c=%d: pixel (%d,%d) not mirrored", c, y, x);
                            goto next;
                        }
        }
    next:;
    }
    cl_augment_free(a);
    /* p = 0.5 flips about half of the keys. */
    a = parse_or_fail("hflip");
    enum { H = 2, W = 3 };
    uint8_t src[H * W], out[H * W];
    test_image(src, H, W, 1, 0, 200, 1);
    int flips = 0;
    for (uint64_t key = 0; key < 2000; key++) {
        apply_checked(a, src, out, H, W, 1, 9, key);
        flips += memcmp(out, src, sizeof src) != 0;
    }
    if (flips < 900 || flips > 1100) t_fail("p=0.5 flipped %d of 2000", flips);
    cl_augment_free(a);
    t_end();
}

/* The padded image's pixel (y, x) for y, x in padded coordinates minus pad, i.e. the
 * input index (y, x) possibly outside: torch's reflect (no edge repeat) or zero. */
static int padded_at(const uint8_t *src, int h, int w, int c, int y, int x, int k, bool reflect) {
    if (y < 0 || y >= h || x < 0 || x >= w) {
        if (!reflect) return 0;
        if (y < 0) y = -y;
        if (y >= h) y = 2 * (h - 1) - y;
        if (x < 0) x = -x;
        if (x >= w) x = 2 * (w - 1) - x;
    }
    return src[(y * w + x) * c + k];
}

static void test_crop_known(bool reflect) {
    t_begin("crop/pad=4 %s: the output is a window of the padded image, every offset drawn",
            reflect ? "reflect" : "zero");
    cl_augment *a = parse_or_fail(reflect ? "crop:4:reflect" : "crop:4");
    enum { H = 9, W = 11, C = 3, PAD = 4 };
    uint8_t src[H * W * C], out[H * W * C];
    test_image(src, H, W, C, 1, 255, 5); /* no zeros: a zero-padded border is recognisable */
    int seen[2 * PAD + 1][2 * PAD + 1] = {{0}};
    for (uint64_t key = 0; key < 2000; key++) {
        apply_checked(a, src, out, H, W, C, 77, key);
        int found = 0;
        for (int dy = -PAD; dy <= PAD; dy++)
            for (int dx = -PAD; dx <= PAD; dx++) {
                bool match = true;
                for (int y = 0; y < H && match; y++)
                    for (int x = 0; x < W && match; x++)
                        for (int k = 0; k < C && match; k++)
                            match = out[(y * W + x) * C + k] ==
                                    padded_at(src, H, W, C, y + dy, x + dx, k, reflect);
                if (match) {
                    found++;
                    seen[dy + PAD][dx + PAD]++;
                }
            }
        if (found != 1) {
            t_fail("key %d: the output matches %d windows, expected 1", (int)key, found);
            break;
        }
    }
    /* 2000 draws over 81 offsets: about 25 each. */
    for (int i = 0; i <= 2 * PAD; i++)
        for (int j = 0; j <= 2 * PAD; j++)
            if (seen[i][j] < 5) t_fail("offset (%d,%d) drawn %d times", i - PAD, j - PAD, seen[i][j]);
    cl_augment_free(a);
    t_end();
}

/* Explicit windows: the first rows and columns of a reflect-padded 4x5 grey image,
 * written out by hand, appear among the crops. */
static void test_crop_table(void) {
    t_begin("crop/reflect padding of a 4x5 image by hand");
    const uint8_t src[4 * 5] = {
        1,  2,  3,  4,  5,   /* */
        6,  7,  8,  9,  10,  /* */
        11, 12, 13, 14, 15,  /* */
        16, 17, 18, 19, 20,
    };
    /* torch.nn.functional.pad(x, (2, 2, 2, 2), mode='reflect') of the above, top-left
     * 4x5 window (offset -2, -2) and bottom-right (offset +2, +2). */
    const uint8_t top_left[4 * 5] = {
        13, 12, 11, 12, 13,  /* */
        8,  7,  6,  7,  8,   /* */
        3,  2,  1,  2,  3,   /* */
        8,  7,  6,  7,  8,
    };
    const uint8_t bottom_right[4 * 5] = {
        13, 14, 15, 14, 13,  /* */
        18, 19, 20, 19, 18,  /* */
        13, 14, 15, 14, 13,  /* */
        8,  9,  10, 9,  8,
    };
    cl_augment *a = parse_or_fail("crop:2:reflect");
    uint8_t out[20];
    bool tl = false, br = false;
    for (uint64_t key = 0; key < 500 && !(tl && br); key++) {
        apply_checked(a, src, out, 4, 5, 1, 1, key);
        tl |= !memcmp(out, top_left, 20);
        br |= !memcmp(out, bottom_right, 20);
    }
    if (!tl || !br) t_fail("corner windows seen: top-left %d, bottom-right %d", tl, br);
    cl_augment_free(a);
    t_end();
}

static void test_identity_warps(void) {
    t_begin("rotate:0 and ssr:0:0:0:1 are the identity; rotate/ssr keep a constant interior");
    enum { H = 12, W = 10, C = 3 };
    uint8_t src[H * W * C], out[H * W * C];
    test_image(src, H, W, C, 0, 255, 3);
    const char *ident[] = {"rotate:0", "ssr:0:0:0:1"};
    for (int i = 0; i < 2; i++) {
        cl_augment *a = parse_or_fail(ident[i]);
        for (uint64_t key = 0; a && key < 10; key++) {
            apply_checked(a, src, out, H, W, C, 5, key);
            if (memcmp(out, src, sizeof src)) t_fail("%s changed the image (key %d)", ident[i], (int)key);
        }
        cl_augment_free(a);
    }
    /* A constant image stays that constant near the centre under a small rotation,
     * and the corners (outside the rotated image) go to 0. */
    memset(src, 200, sizeof src);
    cl_augment *a = parse_or_fail("rotate:30");
    for (uint64_t key = 0; a && key < 20; key++) {
        apply_checked(a, src, out, H, W, C, 5, key);
        for (int y = H / 2 - 2; y < H / 2 + 2; y++)
            for (int x = W / 2 - 2; x < W / 2 + 2; x++)
                if (out[(y * W + x) * C] != 200) t_fail("centre pixel (%d,%d) = %d", y, x, out[(y * W + x) * C]);
    }
    cl_augment_free(a);
    t_end();
}

/* The pixels equal to fill (absent from the input) form one rectangle. */
static bool filled_rect(const uint8_t *out, int h, int w, int c, uint8_t fill, int *y0, int *x0,
                        int *rh, int *rw) {
    int ymin = h, ymax = -1, xmin = w, xmax = -1, count = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            bool f = out[(y * w + x) * c] == fill;
            for (int k = 1; k < c; k++)
                if ((out[(y * w + x) * c + k] == fill) != f) return false; /* all channels or none */
            if (!f) continue;
            count++;
            ymin = y < ymin ? y : ymin, ymax = y > ymax ? y : ymax;
            xmin = x < xmin ? x : xmin, xmax = x > xmax ? x : xmax;
        }
    if (!count) {
        *rh = *rw = 0;
        return true;
    }
    *y0 = ymin, *x0 = xmin, *rh = ymax - ymin + 1, *rw = xmax - xmin + 1;
    return count == *rh * *rw;
}

static void test_cutout_known(void) {
    t_begin("cutout/one 6x6 hole of the fill, clipped at the borders; others untouched");
    enum { H = 20, W = 24, C = 3, S = 6 };
    uint8_t src[H * W * C], out[H * W * C];
    test_image(src, H, W, C, 10, 250, 9);
    cl_augment *a = parse_or_fail("cutout:6:fill=0");
    int full = 0, clipped = 0;
    for (uint64_t key = 0; a && key < 500; key++) {
        apply_checked(a, src, out, H, W, C, 8, key);
        int y0 = 0, x0 = 0, rh, rw;
        if (!filled_rect(out, H, W, C, 0, &y0, &x0, &rh, &rw) || rh == 0) {
            t_fail("key %d: the zeroed pixels are not one rectangle", (int)key);
            break;
        }
        /* The hole is rows [cy - 3, cy + 3) clipped, with cy in [0, H). */
        bool ok_h = rh == S || (y0 == 0 && rh >= S / 2 && rh < S) || (y0 + rh == H && rh > S / 2 && rh < S);
        bool ok_w = rw == S || (x0 == 0 && rw >= S / 2 && rw < S) || (x0 + rw == W && rw > S / 2 && rw < S);
        if (!ok_h || !ok_w) t_fail("key %d: hole %dx%d at (%d,%d)", (int)key, rh, rw, y0, x0);
        full += rh == S && rw == S;
        clipped += rh < S || rw < S;
        for (int i = 0; i < H * W * C; i++)
            if (out[i] != 0 && out[i] != src[i]) {
                t_fail("key %d: pixel value %d changed outside the hole", (int)key, i);
                break;
            }
    }
    if (full < 100 || clipped < 50) t_fail("%d full and %d clipped holes of 500", full, clipped);
    cl_augment_free(a);
    t_end();
}

static void test_erase_known(void) {
    t_begin("erase/p=1: one rectangle of the value, area and aspect in range");
    enum { H = 32, W = 32, C = 3 };
    uint8_t src[H * W * C], out[H * W * C];
    test_image(src, H, W, C, 0, 200, 4);
    cl_augment *a = parse_or_fail("erase:1:value=255");
    int erased = 0;
    for (uint64_t key = 0; a && key < 500; key++) {
        apply_checked(a, src, out, H, W, C, 8, key);
        int y0 = 0, x0 = 0, rh, rw;
        if (!filled_rect(out, H, W, C, 255, &y0, &x0, &rh, &rw)) {
            t_fail("key %d: the erased pixels are not one rectangle", (int)key);
            break;
        }
        if (rh == 0) continue; /* no fitting try in 10: unchanged, as torchvision */
        erased++;
        /* rh = round(sqrt(A r)), rw = round(sqrt(A / r)): rh * rw is within rounding of A. */
        double area = (double)rh * rw / (H * W);
        if (area < 0.02 * 0.6 || area > 0.33 * 1.4) t_fail("key %d: area fraction %.3f", (int)key, area);
        double ratio = (double)rh / rw;
        if (ratio < 0.3 / 1.6 || ratio > 3.3 * 1.6) t_fail("key %d: aspect %.3f", (int)key, ratio);
        if (y0 + rh > H || x0 + rw > W || rh >= H || rw >= W) t_fail("key %d: box out of the image", (int)key);
    }
    if (erased < 450) t_fail("only %d of 500 images erased with p=1", erased);
    cl_augment_free(a);
    /* p=0.5 erases about half. */
    a = parse_or_fail("erase:0.5:value=255");
    erased = 0;
    for (uint64_t key = 0; a && key < 1000; key++) {
        apply_checked(a, src, out, H, W, C, 8, key);
        erased += memcmp(out, src, sizeof out) != 0;
    }
    if (erased < 420 || erased > 580) t_fail("p=0.5 erased %d of 1000", erased);
    cl_augment_free(a);
    t_end();
}

static void test_jitter_known(void) {
    t_begin("jitter/brightness is one table trunc(f x), f in [0.5, 1.5]; grey ignores s and h");
    enum { H = 16, W = 16, C = 3 };
    uint8_t src[H * W * C], out[H * W * C];
    for (int i = 0; i < H * W * C; i++) src[i] = (uint8_t)(i % 256); /* every value */
    cl_augment *a = parse_or_fail("jitter:0.5");
    for (uint64_t key = 0; a && key < 50; key++) {
        apply_checked(a, src, out, H, W, C, 2, key);
        /* f from the brightest unclipped value, then every value must follow it. */
        int table[256];
        for (int v = 0; v < 256; v++) table[v] = -1;
        bool ok = true;
        for (int i = 0; i < H * W * C && ok; i++) {
            if (table[src[i]] >= 0 && table[src[i]] != out[i]) ok = false;
            table[src[i]] = out[i];
        }
        if (!ok || table[0] != 0) {
            t_fail("key %d: not one table with 0 -> 0", (int)key);
            break;
        }
        /* out(v) = floor(f v) clamped: f lies in [out/v, (out + 1)/v) for each v. */
        double lo = 0.0, hi = 1e9;
        for (int v = 1; v < 256; v++)
            if (table[v] < 255) {
                lo = fmax(lo, (double)table[v] / v);
                hi = fmin(hi, (double)(table[v] + 1) / v);
            }
        if (!(lo < hi + 1e-6) || lo > 1.5 + 1e-6 || hi < 0.5 - 1e-6)
            t_fail("key %d: no brightness factor in [0.5, 1.5] fits (%.4f, %.4f)", (int)key, lo, hi);
    }
    cl_augment_free(a);
    a = parse_or_fail("jitter:saturation=0.9:hue=0.5");
    uint8_t g[H * W], gout[H * W];
    test_image(g, H, W, 1, 0, 255, 1);
    for (uint64_t key = 0; a && key < 10; key++) {
        apply_checked(a, g, gout, H, W, 1, 2, key);
        if (memcmp(g, gout, sizeof g)) t_fail("saturation/hue changed a grey image");
    }
    cl_augment_free(a);
    t_end();
}

/* Degenerate sizes: 1x1 images, pads and holes far larger than the image. */
static void test_tiny_images(void) {
    t_begin("tiny images: 1x1, 1xW, Hx1 with every transform");
    cl_augment *a = parse_or_fail(
        "crop:9:reflect,crop:9,hflip:1,rotate:90,ssr:0.5:0.5:90:1,jitter:0.5:0.5:0.5:0.5,"
        "cutout:40:3,erase:1");
    const int sizes[][2] = {{1, 1}, {1, 7}, {6, 1}, {2, 2}};
    for (int s = 0; a && s < 4; s++)
        for (int c = 1; c <= 3; c += 2) {
            int h = sizes[s][0], w = sizes[s][1];
            uint8_t src[64], out[64];
            test_image(src, h, w, c, 0, 255, 2);
            for (uint64_t key = 0; key < 20; key++) apply_checked(a, src, out, h, w, c, 1, key);
        }
    /* Nothing happens on bad sizes or NULLs. */
    uint8_t px[3] = {1, 2, 3}, scratch[3];
    cl_augment_apply(a, px, 0, 1, 3, 1, 1, scratch);
    cl_augment_apply(a, px, 1, -1, 3, 1, 1, scratch);
    cl_augment_apply(NULL, px, 1, 1, 3, 1, 1, scratch);
    if (px[0] != 1 || px[1] != 2 || px[2] != 3) t_fail("a bad size changed the image");
    cl_augment_free(a);
    t_end();
}

/* ---- torchvision reference ------------------------------------------------------------- */

static void run_fixture_case(const fx_case *fc) {
    const fx_tensor *x = fx_need(fc, "x"), *want = fx_need(fc, "out");
    const fx_tensor *seed = fx_need(fc, "seed"), *key = fx_need(fc, "key"), *tol = fx_need(fc, "tol");
    if (!x || !want || !seed || !key || !tol) return;
    if (x->ndim != 3 || want->numel != x->numel || tol->numel != 2) {
        t_fail("malformed case");
        return;
    }
    int h = (int)x->dims[0], w = (int)x->dims[1], c = (int)x->dims[2];
    size_t n = x->numel;
    cl_augment *a = parse_or_fail(fc->model_text);
    if (!a) return;
    uint8_t *img = xmalloc(n), *out = xmalloc(n);
    for (size_t i = 0; i < n; i++) img[i] = (uint8_t)x->data[i];
    apply_checked(a, img, out, h, w, c, (uint64_t)seed->data[0], (uint64_t)key->data[0]);
    double atol = tol->data[0], max_frac = tol->data[1];
    size_t differ = 0, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - want->data[i]);
        if (d > 0) differ++;
        if (d > worst) worst = d, worst_i = i;
    }
    if (getenv("AUG_TEST_VERBOSE"))
        printf("    %s: %zu of %zu differ, max %g\n", fc->name, differ, n, worst);
    if (worst > atol || (double)differ > max_frac * (double)n)
        t_fail("%zu of %zu values differ, max %g at %zu (got %d, torchvision %g); allowed %g, %.0f%%",
               differ, n, worst, worst_i, out[worst_i], want->data[worst_i], atol, 100 * max_frac);
    free(img);
    free(out);
    cl_augment_free(a);
}

int main(int argc, char **argv) {
    test_parse_valid();
    test_parse_errors();
    test_add_checks();
    test_parse_equals_add();
    for (size_t i = 0; i < sizeof EACH / sizeof EACH[0]; i++) {
        test_determinism(EACH[i], 32, 32, 3);
        test_determinism(EACH[i], 28, 23, 1);
    }
    test_hflip_known();
    test_crop_known(true);
    test_crop_known(false);
    test_crop_table();
    test_identity_warps();
    test_cutout_known();
    test_erase_known();
    test_jitter_known();
    test_tiny_images();

    char err[512];
    fx_file *f = fx_load(argc > 1 ? argv[1] : FIXTURE, err, sizeof err);
    if (!f) {
        t_begin("torchvision reference");
        t_fail("%s", err);
        t_end();
        return t_finish();
    }
    for (int i = 0; i < f->ncases; i++) {
        t_begin("torchvision/%s", f->cases[i].name);
        run_fixture_case(&f->cases[i]);
        t_end();
    }
    fx_free(f);
    return t_finish();
}
