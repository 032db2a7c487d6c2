/* test_tta.c: test-time augmentation (src/eval/tta.c). The spec parser and its
 * errors; the views against shifts and mirror images written out by hand (reflect
 * padding as torch.nn.functional.pad(mode="reflect")); and the TTA forward against
 * the mean of the logits of each view forwarded separately, exactly: with flip, the
 * image and its mirror image (made here by hand), with flip,translate:1 all six. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { N = 5, H = 8, W = 8, C = 3, K = 6 };

static cl_tta parse(const char *spec) {
    cl_tta t;
    char err[256];
    if (cl_tta_parse(spec, &t, err, sizeof err) != CL_OK) t_fail("'%s' refused: %s", spec, err);
    return t;
}

static void test_parse(void) {
    t_begin("tta: parsing specs, canonical form, view counts");
    static const struct {
        const char *spec, *canonical;
        int views;
    } good[] = {{"none", "none", 1},           {"", "none", 1},
                {"flip", "flip", 2},           {"translate:2", "translate:2", 3},
                {"flip,translate:2", "flip,translate:2", 6},
                {"translate:1,flip", "flip,translate:1", 6}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cl_tta t = parse(good[i].spec);
        char buf[64];
        if (t.nviews != good[i].views) t_fail("'%s': %d views, want %d", good[i].spec, t.nviews, good[i].views);
        if (strcmp(cl_tta_spec(&t, buf, sizeof buf), good[i].canonical))
            t_fail("'%s' written back as '%s', want '%s'", good[i].spec, buf, good[i].canonical);
    }
    static const struct {
        const char *spec, *message;
    } bad[] = {{"flop", "unknown view 'flop'"}, {"translate:0", "from 1 to 16"},
               {"translate:17", "from 1 to 16"}, {"translate:x", "expected translate:N"},
               {"translate:2:reflect", "expected translate:N"}, {"flip,flip", "flip given twice"},
               {"flip,", "ends with a comma"}, {",flip", "empty item"},
               {"translate:1,translate:2", "translate given twice"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cl_tta t;
        char err[256] = "";
        if (cl_tta_parse(bad[i].spec, &t, err, sizeof err) != CL_ERR_ARG)
            t_fail("'%s' accepted", bad[i].spec);
        else if (!strstr(err, bad[i].message) || !strstr(err, bad[i].spec))
            t_fail("'%s': message '%s' lacks '%s' or the spec", bad[i].spec, err, bad[i].message);
    }
    t_end();
}

/* A 4x4 one-channel image whose pixels are their indices 0..15, and its views. */
static void test_views_by_hand(void) {
    t_begin("tta: translate:1 and flip views of a 4x4 image, written out by hand");
    cl_real img[16], out[16];
    for (int i = 0; i < 16; i++) img[i] = (cl_real)i;
    cl_tta t = parse("flip,translate:1");
    /* view order: identity, mirror, (-1,-1), its mirror, (+1,+1), its mirror.
       (-1,-1): out(y,x) = in(y-1, x-1) with index -1 reflected to 1, i.e.
       F.pad(x, (1,1,1,1), "reflect")[..., 0:4, 0:4]; (+1,+1): [..., 2:6, 2:6]. */
    static const cl_real want[6][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12},
        {5, 4, 5, 6, 1, 0, 1, 2, 5, 4, 5, 6, 9, 8, 9, 10},
        {6, 5, 4, 5, 2, 1, 0, 1, 6, 5, 4, 5, 10, 9, 8, 9},
        {5, 6, 7, 6, 9, 10, 11, 10, 13, 14, 15, 14, 9, 10, 11, 10},
        {6, 7, 6, 5, 10, 11, 10, 9, 14, 15, 14, 13, 10, 11, 10, 9},
    };
    for (int v = 0; v < 6; v++) {
        cl_tta_view(&t, v, img, 1, 4, 4, 1, out);
        for (int i = 0; i < 16; i++)
            if (out[i] != want[v][i]) {
                t_fail("view %d, pixel (%d,%d): %g, want %g", v, i / 4, i % 4, (double)out[i],
                       (double)want[v][i]);
                break;
            }
    }
    /* translate alone: views identity, (-1,-1), (+1,+1) */
    cl_tta tr = parse("translate:1");
    cl_tta_view(&tr, 2, img, 1, 4, 4, 1, out);
    if (memcmp(out, want[4], sizeof out)) t_fail("translate:1 view 2 is not the (+1,+1) shift");
    /* channels move together: a 1x2 image of 3 channels mirrored */
    cl_real rgb[6] = {1, 2, 3, 4, 5, 6}, m[6];
    cl_tta f = parse("flip");
    cl_tta_view(&f, 1, rgb, 1, 1, 2, 3, m);
    static const cl_real want_rgb[6] = {4, 5, 6, 1, 2, 3};
    if (memcmp(m, want_rgb, sizeof m)) t_fail("the mirror image of an RGB pair is not the pixels swapped");
    t_end();
}

static cl_model *build(void) {
    char err[256];
    const char *text = "input 3x8x8\nblock 6 k=3 pad=1 norm=bn\nconv 8 k=3 pad=1\nrelu\n"
                       "maxpool 2\nconv 6 k=3\ngap\n";
    cl_model *m = cl_parse_model(text, strlen(text), "tta", NULL, err, sizeof err);
    if (!m || cl_model_compile(m, (cl_compile_args){.max_batch = N, .threads = 2, .seed = 3}) != CL_OK) {
        t_fail("build: %s", m ? cl_model_error(m) : err);
        cl_model_free(m);
        return NULL;
    }
    return m;
}

/* Forward x through m and copy the logits out. */
static void logits_of(cl_model *m, const cl_real *x, cl_real *out) {
    const cl_real *l = cl_model_forward(m, x, N, false);
    memcpy(out, l, (size_t)N * K * sizeof *out);
}

static void test_forward(void) {
    t_begin("tta: flip equals the mean of the logits of each image and its mirror, exactly");
    cl_model *m = build();
    if (!m) {
        t_end();
        return;
    }
    const size_t size = (size_t)H * W * C;
    cl_real *x = xmalloc(N * size * sizeof *x), *mirror = xmalloc(N * size * sizeof *x);
    cl_real a[N * K], b[N * K], want[N * K];
    uint32_t s = 12345;
    for (size_t i = 0; i < N * size; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (cl_real)((s >> 8) / 16777216.0 * 2 - 1);
    }
    for (int n = 0; n < N; n++) /* the mirror image, pixel by pixel */
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                for (int c = 0; c < C; c++)
                    mirror[((size_t)n * H * W + y * W + xx) * C + c] =
                        x[((size_t)n * H * W + y * W + (W - 1 - xx)) * C + c];
    logits_of(m, x, a);
    logits_of(m, mirror, b);
    bool differ = false;
    for (int k = 0; k < N * K; k++) {
        want[k] = (a[k] + b[k]) / 2;
        differ |= a[k] != b[k];
    }
    if (!differ) t_fail("the model gives a mirror image the same logits: the test could not fail");
    cl_tta t = parse("flip");
    char err[256];
    cl_tta_plan *p = cl_tta_plan_new(m, &t, N, err, sizeof err);
    if (!p) t_fail("plan: %s", err);
    const cl_real *got = p ? cl_tta_forward(p, x, N) : NULL;
    if (p && !got) t_fail("cl_tta_forward: %s", cl_model_error(m));
    if (got) check_close("flip logits", got, want, N * K, 0, 0);
    /* the loss reported with TTA is the cross entropy of the averaged logits */
    int32_t labels[N] = {0, 1, 2, 3, 4};
    if (got && cl_cross_entropy(got, labels, N, K, 0, NULL) != cl_cross_entropy(want, labels, N, K, 0, NULL))
        t_fail("the cross entropy of the TTA logits differs");
    /* a smaller batch than planned: the first 2 samples */
    if (got && (got = cl_tta_forward(p, x, 2))) check_close("flip logits, batch of 2", got, want, 2 * K, 0, 0);
    cl_tta_plan_free(p);
    t_end();

    t_begin("tta: flip,translate:1 equals the mean of its six views' logits, in view order");
    t = parse("flip,translate:1");
    p = cl_tta_plan_new(m, &t, N, err, sizeof err);
    if (!p) t_fail("plan: %s", err);
    cl_real sum[N * K] = {0};
    for (int v = 0; v < 6; v++) {
        cl_tta_view(&t, v, x, N, H, W, C, mirror);
        logits_of(m, mirror, a);
        for (int k = 0; k < N * K; k++) sum[k] += a[k];
    }
    for (int k = 0; k < N * K; k++) want[k] = sum[k] / 6;
    got = p ? cl_tta_forward(p, x, N) : NULL;
    if (got) check_close("flip,translate:1 logits", got, want, N * K, 0, 0);
    else t_fail("no TTA logits");
    cl_tta_plan_free(p);
    t_end();

    t_begin("tta: a shift as large as the image is refused (reflect padding)");
    t = parse("translate:8");
    p = cl_tta_plan_new(m, &t, N, err, sizeof err);
    if (p) t_fail("translate:8 on 8x8 images was planned");
    else if (!strstr(err, "translate:8") || !strstr(err, "8x8")) t_fail("message: %s", err);
    cl_tta_plan_free(p);
    t = parse("translate:7");
    p = cl_tta_plan_new(m, &t, N, err, sizeof err);
    if (!p) t_fail("translate:7 on 8x8 images refused: %s", err);
    cl_tta_plan_free(p);
    t_end();
    free(x);
    free(mirror);
    cl_model_free(m);
}

int main(void) {
    test_parse();
    test_views_by_hand();
    test_forward();
    return t_finish();
}
