/* test_analysis.c: the learning-curve analysis (src/eval/analysis.c) on synthetic
 * metrics: an underfitting run, one that overfits from a known epoch (by accuracy, by
 * loss, by both), flat and rising and falling ends, the gap's trend, the first
 * epoch at a target, and every verdict's threshold tested just inside and just
 * outside; then the most confused class pairs of a confusion matrix. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { MAXN = 20 };

/* Curves of n epochs: train and test accuracy given, losses falling steadily unless
 * given. */
typedef struct {
    int n;
    double epoch[MAXN], train_loss[MAXN], train_acc[MAXN], test_loss[MAXN], test_acc[MAXN];
} curves;

static curves make(int n, const double *train_acc, const double *test_acc) {
    curves c = {.n = n};
    for (int i = 0; i < n; i++) {
        c.epoch[i] = i + 1;
        c.train_acc[i] = train_acc[i];
        c.test_acc[i] = test_acc[i];
        c.train_loss[i] = 2.0 - 0.05 * i;
        c.test_loss[i] = 2.0 - 0.05 * i;
    }
    return c;
}

static cl_curve_analysis analyse(const curves *c, double target) {
    cl_curves cc = {c->n, c->epoch, c->train_loss, c->train_acc, c->test_loss, c->test_acc};
    cl_curve_analysis a;
    if (cl_analyse_curves(&cc, target, &a) != CL_OK) t_fail("cl_analyse_curves refused %d epochs", c->n);
    return a;
}

static const char *verdict_name(cl_fit_verdict v) {
    return v == CL_FITS_WELL ? "fits well" : v == CL_UNDERFITS ? "underfits" : "overfits";
}

static void want_verdict(const char *what, const curves *c, cl_fit_verdict v, int epoch) {
    cl_curve_analysis a = analyse(c, 0);
    if (a.verdict != v) t_fail("%s: %s, want %s", what, verdict_name(a.verdict), verdict_name(v));
    else if (v == CL_OVERFITS && a.overfit_epoch != epoch)
        t_fail("%s: overfits from epoch %d, want %d", what, a.overfit_epoch, epoch);
}

static void test_underfit(void) {
    t_begin("analysis: underfits when final train accuracy is below test by more than %g",
            CL_UNDERFIT_MARGIN);
    double tr[5] = {0.40, 0.50, 0.58, 0.63, 0.66}, te[5] = {0.45, 0.55, 0.62, 0.68, 0.72};
    curves c = make(5, tr, te);
    want_verdict("train 66% test 72%", &c, CL_UNDERFITS, 0);
    cl_curve_analysis a = analyse(&c, 0);
    if (fabs(a.gap - (0.66 - 0.72)) > 1e-12) t_fail("gap %g, want -0.06", a.gap);
    /* the boundary: a gap of -0.0051 underfits, -0.0049 fits */
    c.train_acc[4] = c.test_acc[4] - (CL_UNDERFIT_MARGIN + 0.0001);
    want_verdict("gap just below -margin", &c, CL_UNDERFITS, 0);
    c.train_acc[4] = c.test_acc[4] - (CL_UNDERFIT_MARGIN - 0.0001);
    want_verdict("gap just above -margin", &c, CL_FITS_WELL, 0);
    c.train_acc[4] = c.test_acc[4] + 0.02;
    want_verdict("train above test", &c, CL_FITS_WELL, 0);
    t_end();
}

static void test_overfit(void) {
    t_begin("analysis: overfits from the epoch after the test optimum (accuracy criterion)");
    /* test accuracy best at epoch 5, then 2 points lower; train keeps rising */
    double tr[8] = {0.50, 0.60, 0.70, 0.78, 0.84, 0.88, 0.92, 0.95};
    double te[8] = {0.48, 0.57, 0.64, 0.68, 0.70, 0.695, 0.69, 0.68};
    curves c = make(8, tr, te);
    want_verdict("test falls 2 points after epoch 5", &c, CL_OVERFITS, 6);
    cl_curve_analysis a = analyse(&c, 0);
    if (!a.overfit_by_acc || a.overfit_by_loss) t_fail("criteria: acc %d loss %d, want 1 0", a.overfit_by_acc, a.overfit_by_loss);
    if (a.best_acc_row != 4) t_fail("best row %d, want 4", a.best_acc_row);
    /* the boundary of the drop */
    c.test_acc[7] = c.test_acc[4] - (CL_OVERFIT_ACC_DROP + 0.0001);
    c.test_acc[5] = c.test_acc[6] = c.test_acc[4] - 0.001;
    want_verdict("drop just over the threshold", &c, CL_OVERFITS, 6);
    c.test_acc[7] = c.test_acc[4] - (CL_OVERFIT_ACC_DROP - 0.0001);
    want_verdict("drop just under the threshold", &c, CL_FITS_WELL, 0);
    /* train no longer improving: not overfitting (both worsen: a bad end, not overfit) */
    c.test_acc[7] = c.test_acc[4] - 0.02;
    c.train_acc[7] = c.train_acc[4];
    want_verdict("train flat since the test optimum", &c, CL_FITS_WELL, 0);
    c.train_acc[7] = c.train_acc[4] + 0.0001;
    want_verdict("train just above its value at the optimum", &c, CL_OVERFITS, 6);
    /* the best epoch last: nothing after it */
    double te2[8] = {0.48, 0.57, 0.64, 0.68, 0.70, 0.71, 0.72, 0.73};
    c = make(8, tr, te2);
    want_verdict("test still best at the end", &c, CL_FITS_WELL, 0);
    t_end();

    t_begin("analysis: overfits by the test loss rising %g above its least while train loss falls",
            CL_OVERFIT_LOSS_RISE);
    double flat[8] = {0.5, 0.6, 0.7, 0.75, 0.78, 0.80, 0.81, 0.82};
    c = make(8, flat, flat);
    /* least test loss at epoch 3 (1.0), then rising to 1.1001 */
    double tl[8] = {1.6, 1.2, 1.0, 1.02, 1.05, 1.07, 1.09, 1.0 * (1 + CL_OVERFIT_LOSS_RISE) + 0.0001};
    memcpy(c.test_loss, tl, sizeof tl);
    want_verdict("test loss 10.01% above its least", &c, CL_OVERFITS, 4);
    a = analyse(&c, 0);
    if (a.overfit_by_acc || !a.overfit_by_loss) t_fail("criteria: acc %d loss %d, want 0 1", a.overfit_by_acc, a.overfit_by_loss);
    c.test_loss[7] = 1.0 * (1 + CL_OVERFIT_LOSS_RISE) - 0.0001;
    want_verdict("test loss 9.99% above its least", &c, CL_FITS_WELL, 0);
    c.test_loss[7] = 1.2;
    c.train_loss[7] = c.train_loss[2];
    want_verdict("train loss not below its value at the least test loss", &c, CL_FITS_WELL, 0);
    t_end();

    t_begin("analysis: both criteria: the earlier epoch; overfitting is judged before underfitting");
    c = make(8, tr, te);   /* accuracy optimum at row 4: from epoch 6 */
    c.test_loss[2] = 0.5; /* least loss at row 2 */
    c.test_loss[7] = 0.8;
    want_verdict("loss optimum earlier", &c, CL_OVERFITS, 4);
    double low[8] = {0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65};
    c = make(8, low, te);  /* train below test throughout, but test falls while train rises */
    want_verdict("train below test and test falling", &c, CL_OVERFITS, 6);
    t_end();
}

static void test_trends(void) {
    t_begin("analysis: the last %d epochs: rising, flat, falling (slope %g per epoch)",
            CL_TREND_EPOCHS, CL_RISING_SLOPE);
    double tr[6] = {0.5, 0.6, 0.7, 0.75, 0.8, 0.82}, te[6] = {0.5, 0.6, 0.65, 0.70, 0.72, 0.74};
    curves c = make(6, tr, te);
    cl_curve_analysis a = analyse(&c, 0);
    if (a.movement != CL_TREND_RISING || fabs(a.slope - 0.02) > 1e-12 || a.trend_rows != 3)
        t_fail("rising: movement %d slope %g rows %d", a.movement, a.slope, a.trend_rows);
    struct {
        double per_epoch;
        cl_trend want;
    } cases[] = {{CL_RISING_SLOPE + 0.0001, CL_TREND_RISING}, {CL_RISING_SLOPE - 0.0001, CL_TREND_FLAT},
                 {0, CL_TREND_FLAT}, {-(CL_RISING_SLOPE - 0.0001), CL_TREND_FLAT},
                 {-(CL_RISING_SLOPE + 0.0001), CL_TREND_FALLING}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (int i = 3; i < 6; i++) c.test_acc[i] = 0.7 + cases[k].per_epoch * (i - 3);
        a = analyse(&c, 0);
        if (a.movement != cases[k].want)
            t_fail("slope %g: movement %d, want %d", cases[k].per_epoch, a.movement, cases[k].want);
    }
    /* only the last epochs count: a jump before them does not make it rising */
    double te2[6] = {0.1, 0.2, 0.3, 0.70, 0.701, 0.70};
    c = make(6, tr, te2);
    if (analyse(&c, 0).movement != CL_TREND_FLAT) t_fail("a flat end after a rise is not flat");
    /* one epoch: no trend */
    c = make(1, tr, te);
    a = analyse(&c, 0);
    if (a.movement != CL_TREND_NONE || a.gap_trend != CL_TREND_NONE || a.trend_rows != 1)
        t_fail("one epoch: movement %d gap trend %d", a.movement, a.gap_trend);
    /* two epochs: the slope of two points */
    c = make(2, tr, te);
    a = analyse(&c, 0);
    if (a.trend_rows != 2 || fabs(a.slope - 0.1) > 1e-12) t_fail("two epochs: slope %g", a.slope);
    t_end();

    t_begin("analysis: the gap's trend: widening, steady, narrowing (change %g)", CL_GAP_TREND);
    double base[6] = {0.5, 0.6, 0.7, 0.7, 0.7, 0.7};
    struct {
        double change;
        cl_trend want;
    } gaps[] = {{CL_GAP_TREND + 0.0001, CL_TREND_RISING}, {CL_GAP_TREND - 0.0001, CL_TREND_FLAT},
                {-(CL_GAP_TREND - 0.0001), CL_TREND_FLAT}, {-(CL_GAP_TREND + 0.0001), CL_TREND_FALLING}};
    for (size_t k = 0; k < sizeof gaps / sizeof *gaps; k++) {
        c = make(6, base, base);
        c.train_acc[5] = 0.7 + gaps[k].change; /* gap 0 at row 3, change at row 5 */
        a = analyse(&c, 0);
        if (a.gap_trend != gaps[k].want || fabs(a.gap_change - gaps[k].change) > 1e-12)
            t_fail("gap change %g: trend %d (change %g), want %d", gaps[k].change, a.gap_trend,
                   a.gap_change, gaps[k].want);
    }
    t_end();
}

static void test_target(void) {
    t_begin("analysis: the first epoch at the target; never; no target");
    double tr[5] = {0.5, 0.6, 0.7, 0.8, 0.9}, te[5] = {0.5, 0.69, 0.7, 0.65, 0.75};
    curves c = make(5, tr, te);
    if (analyse(&c, 0.7).target_epoch != 3) t_fail("0.7: epoch %d, want 3", analyse(&c, 0.7).target_epoch);
    if (analyse(&c, 0.6).target_epoch != 2) t_fail("0.6: epoch %d, want 2", analyse(&c, 0.6).target_epoch);
    if (analyse(&c, 0.76).target_epoch != 0) t_fail("0.76: epoch %d, want 0 (never)", analyse(&c, 0.76).target_epoch);
    if (analyse(&c, 0).target_epoch != -1) t_fail("no target: %d, want -1", analyse(&c, 0).target_epoch);
    /* epochs are read from the epoch column, not counted */
    for (int i = 0; i < 5; i++) c.epoch[i] = 11 + i;
    if (analyse(&c, 0.7).target_epoch != 13) t_fail("resumed numbering: %d, want 13", analyse(&c, 0.7).target_epoch);
    cl_curves empty = {0};
    cl_curve_analysis a;
    if (cl_analyse_curves(&empty, 0, &a) != CL_ERR_ARG) t_fail("no epochs accepted");
    t_end();
}

static void test_pairs(void) {
    t_begin("analysis: the most confused class pairs");
    /* 4 classes; off-diagonal: 0<->1: 5+2, 0<->2: 0+0, 0<->3: 1+0, 1<->2: 4+3, 1<->3: 0+0,
       2<->3: 9+1 */
    static const long conf[16] = {50, 5, 0, 1,
                                  2, 40, 4, 0,
                                  0, 3, 60, 9,
                                  0, 0, 1, 70};
    cl_confused_pair p[6];
    int n = cl_confused_pairs(conf, 4, p, 3);
    if (n != 3) t_fail("%d pairs, want 3", n);
    else if (p[0].a != 2 || p[0].b != 3 || p[0].count != 10 || p[0].a_as_b != 9 || p[0].b_as_a != 1)
        t_fail("first: %d<->%d %ld (%ld+%ld), want 2<->3 10 (9+1)", p[0].a, p[0].b, p[0].count, p[0].a_as_b, p[0].b_as_a);
    else if (p[1].a != 0 || p[1].b != 1 || p[1].count != 7 || p[2].a != 1 || p[2].b != 2 || p[2].count != 7)
        t_fail("ties: %d<->%d %ld, %d<->%d %ld, want 0<->1 7 then 1<->2 7", p[1].a, p[1].b, p[1].count,
               p[2].a, p[2].b, p[2].count);
    n = cl_confused_pairs(conf, 4, p, 6);
    if (n != 4 || p[3].a != 0 || p[3].b != 3 || p[3].count != 1)
        t_fail("all pairs with a mistake: %d, want 4 ending with 0<->3 1", n);
    static const long perfect[4] = {10, 0, 0, 10};
    if (cl_confused_pairs(perfect, 2, p, 3) != 0) t_fail("a perfect matrix has confused pairs");
    t_end();
}

int main(void) {
    test_underfit();
    test_overfit();
    test_trends();
    test_target();
    test_pairs();
    return t_finish();
}
