/* analysis.c: the "Analysis" of a training run from its learning curves (the columns
 * of metrics.csv) and its confusion matrix: whether it underfits, overfits (and from
 * which epoch) or fits well, the train/test gap and its trend, whether the test
 * accuracy is still rising, the first epoch at a target, and the most confused class
 * pairs. Pure functions over arrays; the thresholds are the CL_* constants of
 * cnnlab.h, explained in docs/analysis.md. */
#include <string.h>

#include "cnnlab.h"

/* Least-squares slope of y over x, rows [from, to). */
static double slope(const double *x, const double *y, int from, int to) {
    int k = to - from;
    if (k < 2) return 0;
    double mx = 0, my = 0;
    for (int i = from; i < to; i++) mx += x[i], my += y[i];
    mx /= k, my /= k;
    double sxy = 0, sxx = 0;
    for (int i = from; i < to; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    return sxx > 0 ? sxy / sxx : 0;
}

cl_status cl_analyse_curves(const cl_curves *c, double target, cl_curve_analysis *a) {
    memset(a, 0, sizeof *a);
    if (!c || c->n < 1 || !c->epoch || !c->train_loss || !c->train_acc || !c->test_loss ||
        !c->test_acc)
        return CL_ERR_ARG;
    const int n = c->n, last = n - 1;
    int best = 0, least = 0;
    for (int i = 1; i < n; i++) {
        if (c->test_acc[i] > c->test_acc[best]) best = i;
        if (c->test_loss[i] < c->test_loss[least]) least = i;
    }
    a->best_acc_row = best;
    a->least_loss_row = least;

    /* Overfitting: the test figure worsened past its optimum while the training figure
       kept improving past its value at that optimum. */
    a->overfit_by_acc = best < last && c->test_acc[best] - c->test_acc[last] >= CL_OVERFIT_ACC_DROP &&
                        c->train_acc[last] > c->train_acc[best];
    a->overfit_by_loss = least < last && c->test_loss[least] > 0 &&
                         c->test_loss[last] >= (1 + CL_OVERFIT_LOSS_RISE) * c->test_loss[least] &&
                         c->train_loss[last] < c->train_loss[least];
    a->gap = c->train_acc[last] - c->test_acc[last];
    if (a->overfit_by_acc || a->overfit_by_loss) {
        int from = a->overfit_by_acc && a->overfit_by_loss ? (best < least ? best : least)
                   : a->overfit_by_acc ? best : least;
        a->verdict = CL_OVERFITS;
        a->overfit_epoch = (int)c->epoch[from + 1];
    } else if (a->gap < -CL_UNDERFIT_MARGIN) {
        a->verdict = CL_UNDERFITS;
    } else {
        a->verdict = CL_FITS_WELL;
    }

    /* The trends over the last rows. */
    a->trend_rows = n < CL_TREND_EPOCHS ? n : CL_TREND_EPOCHS;
    const int first = n - a->trend_rows;
    if (a->trend_rows < 2) {
        a->movement = a->gap_trend = CL_TREND_NONE;
    } else {
        a->slope = slope(c->epoch, c->test_acc, first, n);
        a->movement = a->slope >= CL_RISING_SLOPE ? CL_TREND_RISING
                      : a->slope <= -CL_RISING_SLOPE ? CL_TREND_FALLING : CL_TREND_FLAT;
        a->gap_change = a->gap - (c->train_acc[first] - c->test_acc[first]);
        a->gap_trend = a->gap_change > CL_GAP_TREND ? CL_TREND_RISING
                       : a->gap_change < -CL_GAP_TREND ? CL_TREND_FALLING : CL_TREND_FLAT;
    }

    a->target_epoch = target > 0 ? 0 : -1;
    for (int i = 0; target > 0 && i < n && !a->target_epoch; i++)
        if (c->test_acc[i] >= target) a->target_epoch = (int)c->epoch[i];
    return CL_OK;
}

int cl_confused_pairs(const long *confusion, int classes, cl_confused_pair *out, int max) {
    int count = 0;
    for (int a = 0; a < classes; a++)
        for (int b = a + 1; b < classes; b++) {
            cl_confused_pair p = {a, b, 0, confusion[(size_t)a * classes + b],
                                  confusion[(size_t)b * classes + a]};
            p.count = p.a_as_b + p.b_as_a;
            if (p.count <= 0 || max <= 0) continue;
            /* insertion into the sorted top list: more first; ties keep (a, b) order */
            int at = count < max ? count : max;
            while (at > 0 && out[at - 1].count < p.count) at--;
            if (at >= max) continue;
            int end = count < max ? count : max - 1;
            memmove(out + at + 1, out + at, (size_t)(end - at) * sizeof *out);
            out[at] = p;
            if (count < max) count++;
        }
    return count;
}
