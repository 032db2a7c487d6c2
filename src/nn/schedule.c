/* schedule.c: learning-rate schedules with the formulas of torch.optim.lr_scheduler:
 * StepLR, MultiStepLR, OneCycleLR (two phases, cosine annealing, momentum cycled
 * inversely), CosineAnnealingLR and ReduceLROnPlateau. All but the plateau schedule
 * are closed-form functions of the epoch or the batch, so resuming needs no state;
 * the plateau state is plain data in cl_schedule. */
#include <math.h>
#include <stdio.h>

#include "cnnlab.h"

cl_status cl_schedule_init(cl_schedule *s, cl_sched_args a, char *err, size_t errlen) {
    if (a.gamma == 0) a.gamma = 0.1f;
    if (a.pct_start == 0) a.pct_start = 0.3f;
    if (a.div_factor == 0) a.div_factor = 25;
    if (a.final_div_factor == 0) a.final_div_factor = 1e4f;
    if (a.base_momentum == 0) a.base_momentum = 0.85f;
    if (a.max_momentum == 0) a.max_momentum = 0.95f;
    if (a.factor == 0) a.factor = 0.1f;
    if (a.patience == 0) a.patience = 10;
    if (a.patience < 0) a.patience = 0;
    if (a.threshold == 0) a.threshold = 1e-4f;
    if (!(a.lr > 0 && isfinite(a.lr))) {
        snprintf(err, errlen, "the learning rate must be positive, got %g", a.lr);
        return CL_ERR_ARG;
    }
    switch (a.kind) {
    case CL_SCHED_STEP:
        if (a.step_size < 1) {
            snprintf(err, errlen, "step schedule: step_size must be at least 1 epoch");
            return CL_ERR_ARG;
        }
        break;
    case CL_SCHED_MULTISTEP:
        if (a.nmilestones < 1 || a.nmilestones > CL_MAX_MILESTONES) {
            snprintf(err, errlen, "multistep schedule: give 1 to %d milestones (epochs)",
                     CL_MAX_MILESTONES);
            return CL_ERR_ARG;
        }
        for (int i = 1; i < a.nmilestones; i++)
            if (a.milestones[i] <= a.milestones[i - 1]) {
                snprintf(err, errlen, "multistep schedule: milestones must increase");
                return CL_ERR_ARG;
            }
        break;
    case CL_SCHED_ONECYCLE:
        if (a.total_steps < 2) {
            snprintf(err, errlen, "onecycle schedule: total_steps must be at least 2");
            return CL_ERR_ARG;
        }
        if (!(a.pct_start > 0 && a.pct_start < 1)) {
            snprintf(err, errlen, "onecycle schedule: pct_start must be in (0, 1)");
            return CL_ERR_ARG;
        }
        /* The warm-up ends at step pct_start * total_steps - 1; at 0 the first step
         * would divide 0 by 0 (a NaN learning rate; PyTorch raises ZeroDivisionError). */
        if ((double)a.pct_start * a.total_steps == 1) {
            snprintf(err, errlen, "onecycle schedule: pct_start * total_steps must not be 1 "
                     "(the warm-up would have no steps)");
            return CL_ERR_ARG;
        }
        break;
    case CL_SCHED_COSINE:
        if (a.t_max < 1) {
            snprintf(err, errlen, "cosine schedule: T_max must be at least 1 epoch");
            return CL_ERR_ARG;
        }
        break;
    case CL_SCHED_PLATEAU:
        if (!(a.factor > 0 && a.factor < 1)) {
            snprintf(err, errlen, "plateau schedule: factor must be in (0, 1)");
            return CL_ERR_ARG;
        }
        break;
    case CL_SCHED_NONE: break;
    default: snprintf(err, errlen, "unknown schedule kind %d", (int)a.kind); return CL_ERR_ARG;
    }
    *s = (cl_schedule){.a = a, .plateau_lr = a.lr};
    return CL_OK;
}

static double cos_anneal(double start, double end, double pct) {
    return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1);
}

/* OneCycleLR's two phases: (start step, end step, start value, end value). */
static double onecycle_value(const cl_sched_args *a, long step, double v_start, double v_peak,
                             double v_end) {
    double end1 = (double)a->pct_start * a->total_steps - 1, end2 = a->total_steps - 1;
    if (step <= end1) return cos_anneal(v_start, v_peak, step / end1);
    return cos_anneal(v_peak, v_end, (step - end1) / (end2 - end1));
}

double cl_schedule_lr(const cl_schedule *s, int epoch, long step) {
    const cl_sched_args *a = &s->a;
    switch (a->kind) {
    case CL_SCHED_STEP: return a->lr * pow(a->gamma, epoch / a->step_size);
    case CL_SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < a->nmilestones; i++) passed += epoch >= a->milestones[i];
        return a->lr * pow(a->gamma, passed);
    }
    case CL_SCHED_ONECYCLE: {
        double initial = (double)a->lr / a->div_factor, min_lr = initial / a->final_div_factor;
        return onecycle_value(a, step, initial, a->lr, min_lr);
    }
    case CL_SCHED_COSINE:
        return a->eta_min + ((double)a->lr - a->eta_min) * (1 + cos(M_PI * epoch / a->t_max)) / 2;
    case CL_SCHED_PLATEAU: return s->plateau_lr;
    default: return a->lr;
    }
}

double cl_schedule_momentum(const cl_schedule *s, long step) {
    const cl_sched_args *a = &s->a;
    if (a->kind != CL_SCHED_ONECYCLE || a->no_cycle_momentum) return -1;
    return onecycle_value(a, step, a->max_momentum, a->base_momentum, a->max_momentum);
}

void cl_schedule_epoch_end(cl_schedule *s, double metric) {
    const cl_sched_args *a = &s->a;
    if (a->kind != CL_SCHED_PLATEAU) return;
    /* mode 'min', threshold_mode 'rel': better when metric < best * (1 - threshold),
     * where PyTorch's best starts at inf (so a NaN metric is never better) */
    if (s->has_best ? metric < s->best * (1 - (double)a->threshold) : metric < INFINITY) {
        s->best = metric;
        s->has_best = true;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->bad_epochs = 0;
    }
    if (s->bad_epochs > a->patience) {
        double lr = s->plateau_lr * a->factor;
        if (lr < a->min_lr) lr = a->min_lr;
        if (s->plateau_lr - lr > 1e-8) s->plateau_lr = lr;
        s->cooldown_left = a->cooldown;
        s->bad_epochs = 0;
    }
}
