/* tta.c: test-time augmentation. A prediction is the mean of the model's logits over
 * views of the image: itself, two diagonal shifts with reflect padding (translate:N,
 * as the fast CIFAR-10 scripts' TTA), each also mirrored (flip). Views are made from
 * the normalised batch [n][h][w][c]; reflect padding commutes with the per-channel
 * normalisation, so this equals shifting the raw pixels. A plan holds the one view
 * buffer and the logit sums, so evaluating allocates nothing per batch. */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct cl_tta_plan {
    cl_model *m;
    cl_tta t;
    int max_batch, h, w, c, classes;
    cl_real *view; /* [max_batch][h][w][c] */
    cl_real *sum;  /* [max_batch][classes] */
};

cl_status cl_tta_parse(const char *spec, cl_tta *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->nviews = 1;
    if (!spec || !*spec || !strcmp(spec, "none")) return CL_OK;
    const char *s = spec;
    while (*s) {
        size_t len = strcspn(s, ",");
        char item[64];
        if (len == 0 || len >= sizeof item)
            return cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation '%s': %s", spec,
                             len ? "an item is too long" : "an empty item (two commas in a row?)");
        memcpy(item, s, len);
        item[len] = 0;
        if (!strcmp(item, "flip")) {
            if (t->flip)
                return cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation '%s': flip given twice", spec);
            t->flip = true;
        } else if (!strncmp(item, "translate:", 10)) {
            char *end;
            long n = strtol(item + 10, &end, 10);
            if (end == item + 10 || *end || n < 1 || n > CL_TTA_MAX_SHIFT)
                return cl_errorf(err, errlen, CL_ERR_ARG,
                                 "test-time augmentation '%s': '%s': expected translate:N with N "
                                 "from 1 to %d pixels", spec, item, CL_TTA_MAX_SHIFT);
            if (t->translate)
                return cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation '%s': translate given twice", spec);
            t->translate = (int)n;
        } else {
            return cl_errorf(err, errlen, CL_ERR_ARG,
                             "test-time augmentation '%s': unknown view '%s' (expected flip, "
                             "translate:N or none)", spec, item);
        }
        s += len;
        if (*s == ',') {
            s++;
            if (!*s)
                return cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation '%s': ends with a comma", spec);
        }
    }
    t->nviews = (t->translate ? 3 : 1) * (t->flip ? 2 : 1);
    return CL_OK;
}

const char *cl_tta_spec(const cl_tta *t, char *buf, size_t len) {
    if (t->nviews <= 1) snprintf(buf, len, "none");
    else if (t->flip && t->translate) snprintf(buf, len, "flip,translate:%d", t->translate);
    else if (t->flip) snprintf(buf, len, "flip");
    else snprintf(buf, len, "translate:%d", t->translate);
    return buf;
}

const char *cl_tta_describe(const cl_tta *t, char *buf, size_t len) {
    if (t->nviews <= 1) snprintf(buf, len, "none (1 view)");
    else if (!t->translate) snprintf(buf, len, "2 views: the image and its mirror image");
    else
        snprintf(buf, len, "%d views: the image and its shifts by (-%d,-%d) and (+%d,+%d) pixels "
                 "(reflect padding)%s", t->nviews, t->translate, t->translate, t->translate,
                 t->translate, t->flip ? ", each also mirrored" : "");
    return buf;
}

/* Views in the order: shift 0, then (-N,-N), then (+N,+N); with flip each shift is
 * followed by its mirror image. */
void cl_tta_view_geometry(const cl_tta *t, int v, int *dy, int *dx, bool *mirrored) {
    int per_shift = t->flip ? 2 : 1;
    int shift = v / per_shift;
    *mirrored = t->flip && v % 2 == 1;
    int d = shift == 0 ? 0 : shift == 1 ? -t->translate : t->translate;
    *dy = *dx = d;
}

/* Reflect (without repeating the edge, as PyTorch's "reflect") an index into [0, n);
 * |overshoot| < n holds (cl_tta_plan_new checks the shift). */
static int reflect(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

void cl_tta_view(const cl_tta *t, int v, const cl_real *x, int n, int h, int w, int c, cl_real *out) {
    int dy, dx;
    bool mirrored;
    cl_tta_view_geometry(t, v, &dy, &dx, &mirrored);
    const size_t row = (size_t)w * c, image = (size_t)h * row;
    for (int i = 0; i < n; i++) {
        const cl_real *src = x + (size_t)i * image;
        cl_real *dst = out + (size_t)i * image;
        for (int y = 0; y < h; y++) {
            const cl_real *in = src + (size_t)reflect(y + dy, h) * row;
            cl_real *o = dst + (size_t)y * row;
            for (int xx = 0; xx < w; xx++) {
                int sx = reflect((mirrored ? w - 1 - xx : xx) + dx, w);
                memcpy(o + (size_t)xx * c, in + (size_t)sx * c, (size_t)c * sizeof *o);
            }
        }
    }
}

cl_tta_plan *cl_tta_plan_new(cl_model *m, const cl_tta *t, int max_batch, char *err, size_t errlen) {
    cl_shape in = cl_model_shape(m, 0), out = cl_model_shape(m, cl_model_output(m));
    if (max_batch < 1 || t->nviews < 1 || t->nviews > CL_TTA_MAX_VIEWS) {
        cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation: a bad plan (batch %d, %d views)",
                  max_batch, t->nviews);
        return NULL;
    }
    if (t->translate && (t->translate >= in.h || t->translate >= in.w)) {
        cl_errorf(err, errlen, CL_ERR_ARG, "test-time augmentation translate:%d: reflect padding "
                  "needs a shift below the image size (%dx%d)", t->translate, in.h, in.w);
        return NULL;
    }
    cl_tta_plan *p = calloc(1, sizeof *p);
    if (!p) {
        cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->m = m;
    p->t = *t;
    p->max_batch = max_batch;
    p->h = in.h, p->w = in.w, p->c = in.c;
    p->classes = out.c * out.h * out.w;
    p->view = malloc((size_t)max_batch * in.h * in.w * in.c * sizeof *p->view);
    p->sum = malloc((size_t)max_batch * p->classes * sizeof *p->sum);
    if (!p->view || !p->sum) {
        cl_tta_plan_free(p);
        cl_errorf(err, errlen, CL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return p;
}

void cl_tta_plan_free(cl_tta_plan *p) {
    if (!p) return;
    free(p->view);
    free(p->sum);
    free(p);
}

const cl_real *cl_tta_forward(cl_tta_plan *p, const cl_real *x, int n) {
    if (n > p->max_batch) return NULL;
    const size_t nk = (size_t)n * p->classes;
    for (size_t k = 0; k < nk; k++) p->sum[k] = 0;
    for (int v = 0; v < p->t.nviews; v++) {
        const cl_real *in = x;
        if (v > 0) { /* view 0 is the image itself */
            cl_tta_view(&p->t, v, x, n, p->h, p->w, p->c, p->view);
            in = p->view;
        }
        const cl_real *logits = cl_model_forward(p->m, in, n, false);
        if (!logits) return NULL;
        for (size_t k = 0; k < nk; k++) p->sum[k] += logits[k];
    }
    for (size_t k = 0; k < nk; k++) p->sum[k] /= (cl_real)p->t.nviews;
    return p->sum;
}
