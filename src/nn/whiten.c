/* whiten.c: data-dependent patch-whitening initialisation of the first convolution,
 * as the fast CIFAR-10 training scripts do it (hlb-CIFAR10, airbench94's
 * init_whitening_conv): the (uncentred) covariance of every k x k patch of some
 * normalised training images, its eigenvectors v_i with eigenvalues l_i in descending
 * order, and filters v_i / sqrt(l_i + eps) followed by their negatives. Applied to the
 * patches, the first half of those filters gives outputs with covariance
 * diag(l_i / (l_i + eps)), close to the identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

#define MAX_PATCH_DIM 1024
#define JACOBI_SWEEPS 100

static cl_status fail(char *err, size_t errlen, cl_status code, const char *msg, int a, int b) {
    if (errlen) snprintf(err, errlen, msg, a, b);
    return code;
}

/* Eigen-decomposition of the symmetric D x D matrix a (destroyed) by cyclic Jacobi
 * rotations: eigenvalues into val[D], eigenvectors into the columns of vec[D][D]. */
static void jacobi_eigen(double *a, int D, double *val, double *vec) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) vec[i * D + j] = i == j;
    for (int sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < D; i++) {
            diag += a[i * D + i] * a[i * D + i];
            for (int j = i + 1; j < D; j++) off += a[i * D + j] * a[i * D + j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (int p = 0; p < D; p++)
            for (int q = p + 1; q < D; q++) {
                double apq = a[p * D + q];
                if (apq == 0) continue;
                double theta = (a[q * D + q] - a[p * D + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < D; k++) { /* columns p, q */
                    double akp = a[k * D + p], akq = a[k * D + q];
                    a[k * D + p] = c * akp - s * akq;
                    a[k * D + q] = s * akp + c * akq;
                }
                for (int k = 0; k < D; k++) { /* rows p, q */
                    double apk = a[p * D + k], aqk = a[q * D + k];
                    a[p * D + k] = c * apk - s * aqk;
                    a[q * D + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < D; k++) {
                    double vkp = vec[k * D + p], vkq = vec[k * D + q];
                    vec[k * D + p] = c * vkp - s * vkq;
                    vec[k * D + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < D; i++) val[i] = a[i * D + i];
}

cl_status cl_whitening_filters(const cl_real *x, int n, cl_shape s, int kh, int kw, double eps,
                               int rows, cl_real *w, double *eigenvalues, char *err,
                               size_t errlen) {
    if (errlen) err[0] = 0;
    int C = s.c, D = C * kh * kw, oh = s.h - kh + 1, ow = s.w - kw + 1;
    if (n < 1 || kh < 1 || kw < 1 || oh < 1 || ow < 1)
        return fail(err, errlen, CL_ERR_ARG, "whitening needs images at least as large as the "
                    "%dx%d kernel", kh, kw);
    if (D > MAX_PATCH_DIM)
        return fail(err, errlen, CL_ERR_ARG, "whitening patches of %d values are too many (at "
                    "most %d): use a smaller first kernel", D, MAX_PATCH_DIM);
    if (!(eps > 0)) return fail(err, errlen, CL_ERR_ARG, "whitening eps must be above 0", 0, 0);
    double *cov = calloc((size_t)D * D, sizeof *cov), *vec = malloc((size_t)D * D * sizeof *vec);
    double *val = malloc((size_t)D * sizeof *val), *patch = malloc((size_t)D * sizeof *patch);
    int *order = malloc((size_t)D * sizeof *order);
    if (!cov || !vec || !val || !patch || !order) {
        free(cov), free(vec), free(val), free(patch), free(order);
        return fail(err, errlen, CL_ERR_NOMEM, "out of memory for the whitening", 0, 0);
    }
    /* Sum of p p^T (upper triangle) over every valid patch; p in [c][i][j] order, the
     * order of a PyTorch conv weight's row. Images are NHWC. */
    for (int b = 0; b < n; b++) {
        const cl_real *img = x + (size_t)b * s.h * s.w * C;
        for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++) {
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < kh; i++)
                        for (int j = 0; j < kw; j++)
                            patch[(c * kh + i) * kw + j] =
                                img[((size_t)(y + i) * s.w + (xx + j)) * C + c];
                for (int r = 0; r < D; r++) {
                    double pr = patch[r];
                    double *row = cov + (size_t)r * D;
                    for (int q = r; q < D; q++) row[q] += pr * patch[q];
                }
            }
    }
    double count = (double)n * oh * ow;
    for (int r = 0; r < D; r++)
        for (int q = r; q < D; q++) cov[(size_t)q * D + r] = cov[(size_t)r * D + q] /= count;
    jacobi_eigen(cov, D, val, vec);
    for (int i = 0; i < D; i++) order[i] = i;
    for (int i = 1; i < D; i++) /* descending eigenvalues (insertion sort: D is small) */
        for (int j = i; j > 0 && val[order[j]] > val[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int h = rows / 2 < D ? rows / 2 : D;
    for (int i = 0; i < h; i++) {
        int e = order[i];
        double l = val[e] > 0 ? val[e] : 0; /* rounding can leave tiny negatives */
        double scale = 1 / sqrt(l + eps);
        for (int d = 0; d < D; d++) {
            w[(size_t)i * D + d] = (cl_real)(vec[(size_t)d * D + e] * scale);
            w[(size_t)(h + i) * D + d] = -w[(size_t)i * D + d];
        }
    }
    if (eigenvalues)
        for (int i = 0; i < D; i++) eigenvalues[i] = val[order[i]];
    free(cov), free(vec), free(val), free(patch), free(order);
    return CL_OK;
}

int cl_model_init_whiten(cl_model *m, const cl_real *x, int n, double eps, char *err,
                         size_t errlen) {
    if (errlen) err[0] = 0;
    int layer = -1;
    for (int i = 0; i < cl_model_layer_count(m) && layer < 0; i++) {
        cl_layer_info li = cl_model_layer(m, i);
        if (!strcmp(li.op, cl_op_conv2d.name) && li.ninputs == 1 && li.inputs[0] == 0) layer = i;
    }
    if (layer < 0) {
        fail(err, errlen, CL_ERR_ARG, "whitening initialises a convolution that reads the input, "
             "and the model has none", 0, 0);
        return -1;
    }
    const cl_node *node = &m->nodes[layer];
    const cl_conv2d_args *a = &node->a.conv;
    if (a->groups != 1 || a->dilation_h != 1 || a->dilation_w != 1) {
        fail(err, errlen, CL_ERR_ARG, "whitening needs a first convolution with groups=1 and "
             "dilation=1, not groups=%d dilation=%d", a->groups, a->dilation_h);
        return -1;
    }
    int wi = -1;
    for (int t = 0; t < cl_model_tensor_count(m) && wi < 0; t++) {
        cl_tensor_info ti = cl_model_tensor(m, t);
        size_t len = strlen(ti.name);
        if (ti.layer == layer && len >= 7 && !strcmp(ti.name + len - 7, ".weight")) wi = t;
    }
    cl_shape s = cl_model_shape(m, 0);
    int D = s.c * a->kernel_h * a->kernel_w, rows = a->out_channels;
    cl_real *w = wi >= 0 ? malloc((size_t)rows * D * sizeof *w) : NULL;
    if (!w) {
        fail(err, errlen, CL_ERR_NOMEM, "out of memory for the whitening", 0, 0);
        return -1;
    }
    cl_status st = cl_model_get_tensor(m, wi, w);
    if (st == CL_OK)
        st = cl_whitening_filters(x, n, s, a->kernel_h, a->kernel_w, eps, rows, w, NULL, err,
                                  errlen);
    if (st == CL_OK) st = cl_model_set_tensor(m, wi, w);
    free(w);
    if (st != CL_OK) {
        if (errlen && !err[0]) snprintf(err, errlen, "%s", cl_model_error(m));
        return -1;
    }
    return layer;
}
