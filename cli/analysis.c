/* analysis.c: the "Analysis" block of report and compare in words, from the library's
 * cl_analyse_curves and cl_confused_pairs (src/eval/analysis.c; the thresholds are
 * explained in docs/analysis.md). Also the --tta helpers eval, report and train share. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

bool cli_parse_tta(const char *option, const char *spec, cl_tta *t) {
    char err[512];
    if (cl_tta_parse(spec, t, err, sizeof err) != CL_OK) {
        cli_error("%s: %s", option, err);
        return false;
    }
    return true;
}

const char *cli_tta_note(const cl_tta *t, char *buf, size_t len) {
    char spec[64], views[256];
    snprintf(buf, len, "Test-time augmentation: %s (%s); the prediction is the mean of the "
             "logits over the views, the loss the cross entropy of that mean",
             cl_tta_spec(t, spec, sizeof spec), cl_tta_describe(t, views, sizeof views));
    return buf;
}

cl_curves cli_curves(const cli_metrics *m) {
    return (cl_curves){m->n, m->epoch, m->train_loss, m->train_acc, m->test_loss, m->test_acc};
}

static const char *trend_word(cl_trend t, const char *up, const char *flat, const char *down) {
    return t == CL_TREND_RISING ? up : t == CL_TREND_FALLING ? down : flat;
}

/* The verdict in words: "fits well", "underfits: ...", "overfits from epoch N: ...". */
static void verdict_text(const cli_metrics *m, const cl_curve_analysis *a, char *buf, size_t len) {
    const int last = m->n - 1;
    if (a->verdict == CL_UNDERFITS) {
        snprintf(buf, len, "underfits: training accuracy below test; more capacity or less "
                 "regularisation");
    } else if (a->verdict == CL_OVERFITS) {
        int k = snprintf(buf, len, "overfits from epoch %d:", a->overfit_epoch);
        if (a->overfit_by_acc && k > 0 && (size_t)k < len)
            k += snprintf(buf + k, len - (size_t)k, " test accuracy fell from %.2f%% (epoch %.0f) to "
                          "%.2f%% while training accuracy rose from %.2f%% to %.2f%%%s",
                          100 * m->test_acc[a->best_acc_row], m->epoch[a->best_acc_row],
                          100 * m->test_acc[last], 100 * m->train_acc[a->best_acc_row],
                          100 * m->train_acc[last], a->overfit_by_loss ? ";" : "");
        if (a->overfit_by_loss && k > 0 && (size_t)k < len)
            snprintf(buf + k, len - (size_t)k, " test loss rose from %.4f (epoch %.0f) to %.4f while "
                     "training loss fell from %.4f to %.4f", m->test_loss[a->least_loss_row],
                     m->epoch[a->least_loss_row], m->test_loss[last],
                     m->train_loss[a->least_loss_row], m->train_loss[last]);
    } else {
        snprintf(buf, len, "fits well");
    }
}

int cli_analysis_lines(const cli_metrics *m, double target, const long *confusion, int classes,
                       char *const *class_names, char lines[][CLI_ANALYSIS_LEN]) {
    cl_curves c = cli_curves(m);
    cl_curve_analysis a;
    if (cl_analyse_curves(&c, target, &a) != CL_OK) return 0;
    const int last = m->n - 1;
    int n = 0;
    char verdict[CLI_ANALYSIS_LEN - 32];
    verdict_text(m, &a, verdict, sizeof verdict);
    snprintf(lines[n++], CLI_ANALYSIS_LEN, "Fit: %s.", verdict);
    if (a.trend_rows >= 2)
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Gap: training accuracy %.2f%%, test %.2f%% at the "
                 "last epoch, a gap of %+.2f points, %s over the last %d epochs (%+.2f points).",
                 100 * m->train_acc[last], 100 * m->test_acc[last], 100 * a.gap,
                 trend_word(a.gap_trend, "widening", "steady", "narrowing"), a.trend_rows,
                 100 * a.gap_change);
    else
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Gap: training accuracy %.2f%%, test %.2f%% after "
                 "one epoch, a gap of %+.2f points.", 100 * m->train_acc[last],
                 100 * m->test_acc[last], 100 * a.gap);
    if (a.movement == CL_TREND_NONE)
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Last epochs: one epoch, no trend yet.");
    else
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Last epochs: test accuracy %s, %+.2f points per "
                 "epoch over the last %d epochs%s.",
                 trend_word(a.movement, "still rising", "flat", "falling"), 100 * a.slope,
                 a.trend_rows, a.movement == CL_TREND_RISING ? ": more epochs may help" : "");
    if (a.target_epoch < 0)
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Target: no target given (--target ACC).");
    else if (a.target_epoch == 0)
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Target %.4g%%: not reached (best %.2f%% at epoch "
                 "%.0f).", 100 * target, 100 * m->test_acc[a.best_acc_row], m->epoch[a.best_acc_row]);
    else
        snprintf(lines[n++], CLI_ANALYSIS_LEN, "Target %.4g%%: first reached at epoch %d.",
                 100 * target, a.target_epoch);
    if (confusion) {
        cl_confused_pair p[3];
        int np = cl_confused_pairs(confusion, classes, p, 3);
        int k = snprintf(lines[n], CLI_ANALYSIS_LEN, "Most confused pairs:");
        for (int i = 0; i < np && k > 0 && k < CLI_ANALYSIS_LEN; i++)
            k += snprintf(lines[n] + k, CLI_ANALYSIS_LEN - (size_t)k,
                          "%s %s \u2194 %s %ld (%s \u2192 %s %ld, %s \u2192 %s %ld)", i ? ";" : "",
                          class_names[p[i].a], class_names[p[i].b], p[i].count, class_names[p[i].a],
                          class_names[p[i].b], p[i].a_as_b, class_names[p[i].b], class_names[p[i].a],
                          p[i].b_as_a);
        if (np == 0) snprintf(lines[n], CLI_ANALYSIS_LEN, "Most confused pairs: none, no mistakes.");
        else if (k > 0 && k < CLI_ANALYSIS_LEN - 1) strcat(lines[n], ".");
        n++;
    }
    return n;
}

void cli_analysis_summary(const cli_metrics *m, double target, char *buf, size_t len) {
    cl_curves c = cli_curves(m);
    cl_curve_analysis a;
    if (cl_analyse_curves(&c, target, &a) != CL_OK) {
        snprintf(buf, len, "no epochs");
        return;
    }
    char verdict[64];
    if (a.verdict == CL_OVERFITS) snprintf(verdict, sizeof verdict, "overfits from epoch %d", a.overfit_epoch);
    else snprintf(verdict, sizeof verdict, "%s", a.verdict == CL_UNDERFITS ? "underfits" : "fits well");
    char at[64];
    if (a.target_epoch < 0) snprintf(at, sizeof at, "no target");
    else if (a.target_epoch == 0) snprintf(at, sizeof at, "%.4g%% never reached", 100 * target);
    else snprintf(at, sizeof at, "%.4g%% at epoch %d", 100 * target, a.target_epoch);
    snprintf(buf, len, "%s; gap %+.2f points (%s); %s; %s", verdict, 100 * a.gap,
             a.gap_trend == CL_TREND_NONE ? "one epoch"
                                          : trend_word(a.gap_trend, "widening", "steady", "narrowing"),
             a.movement == CL_TREND_NONE ? "one epoch"
                                         : trend_word(a.movement, "still rising", "flat", "falling"),
             at);
}
