/* loss.c: cross entropy over logits (log-softmax fused with negative log-likelihood),
 * with PyTorch's label smoothing: the target is (1 - s) on the true class plus s/K on
 * every class, and the loss is averaged over the batch, as F.cross_entropy. */
#include <math.h>

#include "cnnlab.h"

double cl_cross_entropy(const cl_real *logits, const int32_t *labels, int n, int classes,
                        float label_smoothing, cl_real *dlogits) {
    double total = 0;
    const double s = label_smoothing;
    for (int i = 0; i < n; i++) {
        const cl_real *z = logits + (size_t)i * classes;
        /* log-softmax with the maximum subtracted first, so exp never overflows */
        cl_real zmax = z[0];
        for (int k = 1; k < classes; k++)
            if (z[k] > zmax) zmax = z[k];
        double sum = 0, zsum = 0;
        for (int k = 0; k < classes; k++) {
            sum += exp((double)z[k] - zmax);
            zsum += (double)z[k] - zmax;
        }
        double lse = log(sum);
        int y = labels[i];
        double nll = lse - ((double)z[y] - zmax);          /* -log p[y] */
        double smooth = lse - zsum / classes;               /* mean over k of -log p[k] */
        total += (1 - s) * nll + s * smooth;
        if (dlogits) {
            cl_real *dz = dlogits + (size_t)i * classes;
            for (int k = 0; k < classes; k++) {
                double p = exp((double)z[k] - zmax - lse);
                double target = s / classes + (k == y ? 1 - s : 0);
                dz[k] = (cl_real)((p - target) / n);
            }
        }
    }
    return total / n;
}
