/* lr_find.c: the pure parts of the learning-rate range test (`cnnlab lr-find`), as
 * torch-lr-finder's LRFinder.range_test (step_mode="exp") and its plot's suggestion
 * do them: the exponential schedule, the smoothed loss with the divergence stop, and
 * the steepest-descent suggestion. The CLI (cli/lr_find.c) runs the training steps. */
#include <math.h>

#include "cnnlab.h"

double cl_lr_find_lr(double start_lr, double end_lr, int steps, int i) {
    if (steps < 2) return start_lr;
    double r = (double)i / (steps - 1);
    return start_lr * pow(end_lr / start_lr, r);
}

bool cl_lr_find_step(cl_lr_find_state *s, double loss, double smooth_f, double diverge_th,
                     double *smoothed) {
    if (s->n == 0) {
        s->best = loss;
    } else {
        if (smooth_f > 0) loss = smooth_f * loss + (1 - smooth_f) * s->last;
        if (loss < s->best) s->best = loss;
    }
    s->last = loss;
    s->n++;
    if (smoothed) *smoothed = loss;
    return !isfinite(loss) || loss > diverge_th * s->best;
}

int cl_lr_find_suggest(const double *smoothed, int n, int skip_start, int skip_end) {
    if (skip_start < 0) skip_start = 0;
    if (skip_end < 0) skip_end = 0;
    int lo = skip_start, hi = n - skip_end; /* [lo, hi) */
    if (hi - lo < 2) return -1;
    /* np.gradient with unit spacing: one-sided at the ends, central inside; argmin
       takes the first of equal minima */
    int best = -1;
    double best_g = INFINITY;
    for (int i = lo; i < hi; i++) {
        double g = i == lo ? smoothed[lo + 1] - smoothed[lo]
                 : i == hi - 1 ? smoothed[hi - 1] - smoothed[hi - 2]
                               : (smoothed[i + 1] - smoothed[i - 1]) / 2;
        if (g < best_g) {
            best_g = g;
            best = i;
        }
    }
    return best;
}
