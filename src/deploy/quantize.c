/* quantize.c: int8 post-training quantization of a deployed network (the scheme is
 * described in quantize.h) and the library's int8 reference run, which calls the
 * same kernels (kernels.h) as the exported model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#define DK_USE_INT8
#define DK_TARGET CL_CLONES
#include "deploy/quantize.h"

/* Asymmetric per-tensor parameters mapping [lo, hi] (widened to hold 0) onto
 * [-128, 127]. */
static cl_qparams choose_qparams(float lo, float hi) {
    if (!(lo < 0)) lo = 0;
    if (!(hi > 0)) hi = 0;
    double scale = ((double)hi - lo) / 255.0;
    if (!(scale > 0) || !isfinite(scale)) scale = 1.0 / 255.0;
    float s = (float)scale;
    long zp = lround(-128.0 - lo / (double)s);
    if (zp < -128) zp = -128;
    if (zp > 127) zp = 127;
    return (cl_qparams){s, (int32_t)zp};
}

/* M > 0 as mult * 2^-shift with mult in [2^30, 2^31) (fewer bits for tiny M) and
 * 1 <= shift <= 62. False when M is too large to represent (>= 2^30). */
static bool quantize_multiplier(double M, int32_t *mult, int *shift) {
    if (!(M > 0)) {
        *mult = 0;
        *shift = 1;
        return true;
    }
    int e;
    double f = frexp(M, &e); /* M = f * 2^e, f in [0.5, 1) */
    long long m = llround(ldexp(f, 31));
    if (m == (1LL << 31)) {
        m /= 2;
        e++;
    }
    int sh = 31 - e;
    if (sh > 62) {
        m = llround(ldexp(M, 62));
        sh = 62;
    }
    if (sh < 1) return false;
    *mult = (int32_t)m;
    *shift = sh;
    return true;
}

static int8_t quantize_value(double y, cl_qparams p) {
    double v = nearbyint(y / p.scale) + p.zero_point;
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

typedef struct {
    float *lo, *hi;
} calib_ctx;

static void observe(void *ctx, int t, const float *x, size_t n) {
    calib_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < c->lo[t]) c->lo[t] = x[i];
        if (x[i] > c->hi[t]) c->hi[t] = x[i];
    }
}

static double act_value(int kind, float slope, double x) {
    if (kind == DK_RELU) return x > 0 ? x : 0;
    if (kind == DK_LEAKY_RELU) return x > 0 ? x : x * slope;
    if (kind == DK_GELU) return 0.5 * x * (1.0 + erf(x * M_SQRT1_2));
    if (kind == DK_SILU) return x / (1.0 + exp(-x));
    return x * fmin(fmax(x + 3, 0), 6) / 6; /* DK_HARDSWISH */
}

static bool quantize_conv(const cl_quant *q, const cl_deploy_node *d, cl_qnode *n) {
    const int K = d->conv.k;
    const size_t per_k = d->nw / (size_t)K;
    const cl_qparams in = q->t[d->in[0]], out = q->t[d->out];
    n->w = malloc(d->nw);
    n->w_scale = malloc((size_t)K * sizeof *n->w_scale);
    n->bias = malloc((size_t)K * sizeof *n->bias);
    n->mult = malloc((size_t)K * sizeof *n->mult);
    n->shift = malloc((size_t)K);
    n->out_scale = malloc((size_t)K * sizeof *n->out_scale);
    if (!n->w || !n->w_scale || !n->bias || !n->mult || !n->shift || !n->out_scale) return false;
    for (int k = 0; k < K; k++) {
        const float *w = d->w + (size_t)k * per_k;
        double amax = 0;
        for (size_t i = 0; i < per_k; i++) amax = fmax(amax, fabs(w[i]));
        float ws = amax > 0 ? (float)(amax / 127.0) : 1.0f;
        n->w_scale[k] = ws;
        for (size_t i = 0; i < per_k; i++) {
            double v = nearbyint(w[i] / (double)ws);
            n->w[(size_t)k * per_k + i] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
        double acc_scale = (double)in.scale * ws;
        double b = d->b ? nearbyint(d->b[k] / acc_scale) : 0;
        n->bias[k] = (int32_t)(b < -2147483647.0 ? -2147483647.0 : b > 2147483647.0 ? 2147483647.0 : b);
        n->out_scale[k] = (float)acc_scale;
        int sh;
        if (!quantize_multiplier(acc_scale / out.scale, &n->mult[k], &sh)) return false;
        n->shift[k] = (int8_t)sh;
    }
    n->float_out = d->out == q->g->output;
    return true;
}

cl_quant *cl_quant_new(const cl_deploy_graph *g, const float *images, int nimages, char *err,
                       size_t errlen) {
    if (nimages < 1) {
        snprintf(err, errlen, "calibration needs at least one image");
        return NULL;
    }
    cl_quant *q = calloc(1, sizeof *q);
    float *arena = malloc(g->arena * sizeof *arena);
    float *logits = malloc((size_t)g->classes * sizeof *logits);
    if (!q || !arena || !logits) goto oom;
    q->g = g;
    q->calib_images = nimages;
    q->t = calloc((size_t)g->ntensors, sizeof *q->t);
    q->t_min = malloc((size_t)g->ntensors * sizeof *q->t_min);
    q->t_max = malloc((size_t)g->ntensors * sizeof *q->t_max);
    q->n = calloc((size_t)g->nnodes, sizeof *q->n);
    if (!q->t || !q->t_min || !q->t_max || !q->n) goto oom;
    for (int t = 0; t < g->ntensors; t++) {
        q->t_min[t] = INFINITY;
        q->t_max[t] = -INFINITY;
    }
    calib_ctx cc = {q->t_min, q->t_max};
    const size_t image = (size_t)g->input.c * g->input.h * g->input.w;
    for (int i = 0; i < nimages; i++)
        cl_deploy_forward(g, images + (size_t)i * image, logits, arena, observe, &cc);

    q->t[0] = choose_qparams(q->t_min[0], q->t_max[0]);
    for (int i = 0; i < g->nnodes; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        q->t[d->out] = d->kind == CL_DEPLOY_MAXPOOL
                           ? q->t[d->in[0]]
                           : choose_qparams(q->t_min[d->out], q->t_max[d->out]);
    }
    size_t bytes = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        cl_qnode *n = &q->n[i];
        const cl_qparams in = q->t[d->in[0]], out = q->t[d->out];
        const cl_deploy_tensor *o = &g->tensors[d->out];
        switch (d->kind) {
        case CL_DEPLOY_CONV:
            if (!quantize_conv(q, d, n)) goto range;
            bytes += d->nw + (size_t)d->conv.k * (n->float_out ? 8 : 9);
            break;
        case CL_DEPLOY_MAXPOOL: break;
        case CL_DEPLOY_AVGPOOL:
            if (!quantize_multiplier((double)in.scale / out.scale / (d->pool.kh * d->pool.kw),
                                     &n->in_mult[0], &n->in_shift[0]))
                goto range;
            break;
        case CL_DEPLOY_ACT:
        case CL_DEPLOY_AFFINE: {
            int tables = d->kind == CL_DEPLOY_AFFINE ? o->c : 1;
            n->lut = malloc((size_t)tables * 256);
            if (!n->lut) goto oom;
            for (int c = 0; c < tables; c++)
                for (int v = -128; v < 128; v++) {
                    double x = (double)in.scale * (v - in.zero_point);
                    double y = d->kind == CL_DEPLOY_ACT ? act_value(d->act, d->slope, x)
                                                        : x * d->w[c] + d->b[c];
                    n->lut[c * 256 + v + 128] = quantize_value(y, out);
                }
            bytes += (size_t)tables * 256;
            break;
        }
        case CL_DEPLOY_NORM: bytes += (d->nw + d->nb) * sizeof(float); break;
        case CL_DEPLOY_ADD: {
            const cl_qparams b = q->t[d->in[1]];
            double ma = (double)in.scale / out.scale, mb = (double)b.scale / out.scale;
            int32_t m;
            int sh;
            if (!quantize_multiplier(fmax(ma, mb), &m, &sh)) goto range;
            n->in_mult[0] = (int32_t)llround(ldexp(ma, sh));
            n->in_mult[1] = (int32_t)llround(ldexp(mb, sh));
            n->in_shift[0] = n->in_shift[1] = sh;
            break;
        }
        case CL_DEPLOY_CONCAT:
            for (int k = 0; k < d->nin; k++)
                if (!quantize_multiplier((double)q->t[d->in[k]].scale / out.scale, &n->in_mult[k],
                                         &n->in_shift[k]))
                    goto range;
            break;
        }
    }
    q->weight_bytes = bytes;
    free(arena);
    free(logits);
    return q;
range:
    snprintf(err, errlen, "a requantization factor is out of range (a calibrated tensor of "
                          "scale above 2^30 times the next): the calibration images are "
                          "degenerate");
    goto fail;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(arena);
    free(logits);
    cl_quant_free(q);
    return NULL;
}

void cl_quant_free(cl_quant *q) {
    if (!q) return;
    for (int i = 0; q->n && i < q->g->nnodes; i++) {
        cl_qnode *n = &q->n[i];
        free(n->w);
        free(n->w_scale);
        free(n->bias);
        free(n->mult);
        free(n->shift);
        free(n->out_scale);
        free(n->lut);
    }
    free(q->n);
    free(q->t);
    free(q->t_min);
    free(q->t_max);
    free(q);
}

size_t cl_quant_workspace(const cl_quant *q) {
    return q->g->max_plane * sizeof(int32_t) + q->g->max_norm * sizeof(float) + q->g->arena;
}

int cl_quant_forward(const cl_quant *q, const float *pixels, float *logits, void *work) {
    const cl_deploy_graph *g = q->g;
    const cl_deploy_tensor *t = g->tensors;
    int32_t *acc = work;
    float *tmp = (float *)(acc + g->max_plane);
    int8_t *arena = (int8_t *)(tmp + g->max_norm);
    dk_quantize_input(arena + t[0].off, pixels, g->mean, g->std, g->input.c,
                      g->input.h * g->input.w, 1.0f / q->t[0].scale, q->t[0].zero_point);
    bool float_logits = false;
    for (int i = 0; i < g->nnodes; i++) {
        const cl_deploy_node *d = &g->nodes[i];
        const cl_qnode *n = &q->n[i];
        const cl_deploy_tensor *o = &t[d->out];
        int8_t *out = arena + o->off;
        const int8_t *in = arena + t[d->in[0]].off;
        const cl_qparams qi = q->t[d->in[0]], qo = q->t[d->out];
        switch (d->kind) {
        case CL_DEPLOY_CONV:
            if (n->float_out)
                dk_conv_q8(NULL, logits, in, n->w, n->bias, NULL, NULL, n->out_scale, qi.zero_point,
                           0, &d->conv, acc);
            else
                dk_conv_q8(out, NULL, in, n->w, n->bias, n->mult, n->shift, NULL, qi.zero_point,
                           qo.zero_point, &d->conv, acc);
            float_logits = n->float_out;
            break;
        case CL_DEPLOY_MAXPOOL: dk_maxpool_q8(out, in, &d->pool); break;
        case CL_DEPLOY_AVGPOOL:
            dk_avgpool_q8(out, in, &d->pool, qi.zero_point, qo.zero_point, n->in_mult[0],
                          n->in_shift[0]);
            break;
        case CL_DEPLOY_AFFINE: dk_lut_q8(out, in, n->lut, o->c, o->h * o->w, 1); break;
        case CL_DEPLOY_ACT: dk_lut_q8(out, in, n->lut, 1, (int)o->size, 0); break;
        case CL_DEPLOY_NORM:
            dk_groupnorm_q8(out, in, d->w, d->b, &d->norm, qi.scale, qi.zero_point,
                            1.0f / qo.scale, qo.zero_point, tmp);
            break;
        case CL_DEPLOY_ADD: {
            const cl_qparams qb = q->t[d->in[1]];
            dk_add_q8(out, in, arena + t[d->in[1]].off, (int)o->size, qi.zero_point,
                      qb.zero_point, qo.zero_point, n->in_mult[0], n->in_mult[1], n->in_shift[0]);
            break;
        }
        case CL_DEPLOY_CONCAT: {
            size_t at = 0;
            for (int k = 0; k < d->nin; k++) {
                const cl_deploy_tensor *x = &t[d->in[k]];
                dk_copy_q8(out + at, arena + x->off, (int)x->size, q->t[d->in[k]].zero_point,
                           qo.zero_point, n->in_mult[k], n->in_shift[k]);
                at += x->size;
            }
            break;
        }
        }
    }
    if (!float_logits)
        dk_dequantize(logits, arena + t[g->output].off, g->classes, q->t[g->output].scale,
                      q->t[g->output].zero_point);
    int best = 0;
    for (int k = 1; k < g->classes; k++)
        if (logits[k] > logits[best]) best = k;
    return best;
}
