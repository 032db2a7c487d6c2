/* test_optim.c: the optimizers (cl_optimizer_*) and learning-rate schedules
 * (cl_schedule_*) against PyTorch runs (tests/ref/optim.bin, written by
 * tests/ref/gen_optim.py, which documents the cases and their encoding): every case
 * trains a tiny conv-BN network for 20-24 steps with 1 and 2 threads, and the
 * learning rate (and OneCycle's momentum or beta1) used at each step, the loss
 * before each step and the final parameters and running statistics must equal
 * torch.optim's; with parameter groups (no weight decay on biases and norm weights, their
 * lr scaled) and with the moving average of the weights (AveragedModel) too. Also checks cl_schedule_init's defaults and argument errors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"
#include "harness.h"

#define FIXTURE "tests/ref/optim.bin" /* or argv[1] */
#define MAX_STEPS 64

enum { O_KIND, O_LR, O_MOMENTUM, O_DAMPENING, O_NESTEROV, O_WD, O_BETA1, O_BETA2, O_EPS, O_N };
enum {
    S_KIND, S_STEP_SIZE, S_GAMMA, S_TOTAL_STEPS, S_PCT_START, S_DIV, S_FINAL_DIV, S_CYCLE_MOM,
    S_BASE_MOM, S_MAX_MOM, S_T_MAX, S_ETA_MIN, S_FACTOR, S_PATIENCE, S_THRESHOLD, S_COOLDOWN,
    S_MIN_LR, S_N
};

/* The fixture's "optim" and "sched" rows as cnnlab arguments (see gen_optim.py). */
static cl_optim_args optim_args(const float *o) {
    return (cl_optim_args){.kind = (cl_optim_kind)(int)o[O_KIND], .lr = o[O_LR],
                           .momentum = o[O_MOMENTUM], .dampening = o[O_DAMPENING],
                           .nesterov = o[O_NESTEROV] != 0, .weight_decay = o[O_WD],
                           .beta1 = o[O_BETA1], .beta2 = o[O_BETA2], .eps = o[O_EPS]};
}

static cl_sched_args sched_args(const float *s, float lr, const fx_tensor *milestones) {
    cl_sched_args a = {.kind = (cl_sched_kind)(int)s[S_KIND], .lr = lr,
                       .step_size = (int)s[S_STEP_SIZE], .gamma = s[S_GAMMA],
                       .total_steps = (int)s[S_TOTAL_STEPS], .pct_start = s[S_PCT_START],
                       .div_factor = s[S_DIV], .final_div_factor = s[S_FINAL_DIV],
                       .no_cycle_momentum = s[S_CYCLE_MOM] == 0,
                       .base_momentum = s[S_BASE_MOM], .max_momentum = s[S_MAX_MOM],
                       .t_max = (int)s[S_T_MAX], .eta_min = s[S_ETA_MIN], .factor = s[S_FACTOR],
                       .patience = s[S_PATIENCE] == 0 ? -1 : (int)s[S_PATIENCE],
                       .threshold = s[S_THRESHOLD], .cooldown = (int)s[S_COOLDOWN],
                       .min_lr = s[S_MIN_LR]};
    if (milestones) {
        a.nmilestones = (int)milestones->numel;
        for (int i = 0; i < a.nmilestones && i < CL_MAX_MILESTONES; i++)
            a.milestones[i] = (int)milestones->data[i];
    }
    return a;
}

/* One training step on (x, labels); false on failure. */
static bool one_step(cl_model *m, cl_optimizer *o, const float *x, const int32_t *lab, int n, int k,
                     float *d) {
    cl_model_zero_grad(m);
    const float *y = cl_model_forward(m, x, n, true);
    if (!y) return false;
    cl_cross_entropy(y, lab, n, k, 0.0f, d);
    if (cl_model_backward(m, d) != CL_OK) return false;
    cl_optimizer_step(o, 0.01f);
    return true;
}

/* The average in a checkpoint: m (raw weights in it, opt holding the average) saved
 * with the average swapped in, loaded into a fresh model and optimizer, gives the
 * same raw weights, average and count: one more step on each ends equal. */
static void ema_checkpoint_round_trip(const fx_case *c, cl_model *m, cl_optimizer *opt,
                                      cl_optim_args oa, const float *x, const int32_t *lab, int n,
                                      int k) {
    t_begin("optim/%s: the moving average through a checkpoint", c->name);
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/cnnlab-ema-%ld.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid());
    cl_model *m2 = fx_model(c, (cl_compile_args){.max_batch = n, .threads = 1, .seed = 1});
    cl_optimizer *o2 = m2 ? cl_optimizer_new(m2, oa) : NULL;
    float *d = xmalloc((size_t)n * (size_t)k * sizeof *d);
    cl_optimizer_swap_average(opt);
    /* momentum (or beta1) is the schedule's to set, not saved state */
    float mom = oa.kind == CL_OPT_SGD ? oa.momentum : oa.beta1;
    cl_optimizer_set_momentum(opt, mom);
    if (o2) cl_optimizer_set_momentum(o2, mom);
    if (!o2) {
        t_fail("second model or optimizer");
    } else if (cl_model_save(m, opt, path, NULL, 0, err, sizeof err) != CL_OK) {
        t_fail("save: %s", err);
    } else if (cl_model_load(m2, o2, path, err, sizeof err) != CL_OK) {
        t_fail("load: %s", err);
    } else if (!cl_optimizer_average_in_model(o2)) {
        t_fail("the loaded optimizer does not know the model holds the average");
    } else if (!one_step(m, opt, x, lab, n, k, d) || !one_step(m2, o2, x, lab, n, k, d)) {
        t_fail("a step after loading failed");
    } else {
        cl_optimizer_swap_average(opt);
        cl_optimizer_swap_average(o2);
        size_t np, nb, np2, nb2;
        const float *p = cl_model_params(m, &np), *b = cl_model_buffers(m, &nb);
        const float *p2 = cl_model_params(m2, &np2), *b2 = cl_model_buffers(m2, &nb2);
        if (np != np2 || nb != nb2 || memcmp(p, p2, np * sizeof *p) || memcmp(b, b2, nb * sizeof *b))
            t_fail("after a step, the averages of the saved and the loaded run differ");
        cl_optimizer_swap_average(opt);
        cl_optimizer_swap_average(o2);
        if (memcmp(p, p2, np * sizeof *p) || memcmp(b, b2, nb * sizeof *b))
            t_fail("after a step, the raw weights of the saved and the loaded run differ");
    }
    remove(path);
    free(d);
    cl_optimizer_free(o2);
    cl_model_free(m2);
}

static void run_case(const fx_case *c, int threads) {
    t_begin("optim/%s threads=%d: setup", c->name, threads);
    double lr_atol, lr_rtol, l_atol, l_rtol, f_atol, f_rtol;
    fx_tol(c, "tol.lr", &lr_atol, &lr_rtol);
    fx_tol(c, "tol.losses", &l_atol, &l_rtol);
    fx_tol(c, "tol.final", &f_atol, &f_rtol);
    const fx_tensor *x = fx_need(c, "x"), *labels = fx_need(c, "labels"), *run = fx_need(c, "run"),
                    *optim = fx_need(c, "optim"), *sched = fx_need(c, "sched"),
                    *lrs = fx_need(c, "lrs"), *losses = fx_need(c, "losses");
    const fx_tensor *momenta = fx_find(c, "momenta"), *milestones = fx_find(c, "milestones"),
                    *metrics = fx_find(c, "metrics"), *groups = fx_find(c, "groups"),
                    *ema = fx_find(c, "ema");
    if (!x || !labels || !run || !optim || !sched || !lrs || !losses) return;
    int nsteps = run->numel == 2 ? (int)run->data[0] : -1;
    int spe = run->numel == 2 ? (int)run->data[1] : -1;
    if (x->ndim != 4 || labels->numel != (size_t)x->dims[0] || optim->numel != O_N ||
        sched->numel != S_N || nsteps < 1 || nsteps > MAX_STEPS || spe < 1 ||
        lrs->numel != (size_t)nsteps || losses->numel != (size_t)nsteps ||
        (momenta && momenta->numel != (size_t)nsteps) ||
        (milestones && milestones->numel > CL_MAX_MILESTONES) ||
        (metrics && metrics->numel < (size_t)(nsteps / spe)) || (groups && groups->numel != 2) ||
        (ema && ema->numel != 1)) {
        t_fail("fixture case %s is malformed", c->name);
        return;
    }
    int n = (int)x->dims[0];
    char err[512];
    cl_model *m = fx_model(c, (cl_compile_args){.max_batch = n, .threads = threads, .seed = 1});
    if (!m) return;
    cl_shape os = cl_model_shape(m, cl_model_output(m));
    int k = os.c;
    int32_t *lab = fx_labels(labels);
    float *xin = fx_to_nhwc(x), *d = xmalloc((size_t)n * (size_t)k * sizeof *d);
    float got_lr[MAX_STEPS], got_mom[MAX_STEPS], got_loss[MAX_STEPS];
    cl_optimizer *opt = NULL;
    cl_status st;
    if (!fx_load_state(m, c)) goto done;
    cl_optim_args oa = optim_args(optim->data);
    if (groups) {
        oa.no_decay_norm_bias = groups->data[0] != 0;
        oa.norm_lr_scale = groups->data[1];
    }
    if (ema) oa.ema_decay = ema->data[0];
    cl_schedule s;
    if (cl_schedule_init(&s, sched_args(sched->data, oa.lr, milestones), err, sizeof err) != CL_OK) {
        t_fail("cl_schedule_init: %s", err);
        goto done;
    }
    if (!(opt = cl_optimizer_new(m, oa))) {
        t_fail("cl_optimizer_new failed");
        goto done;
    }
    /* The momentum-like value in use when the schedule leaves it alone. */
    float mom_now = oa.kind == CL_OPT_SGD ? oa.momentum : optim->data[O_BETA1];
    bool mom_ok = true;
    for (int step = 0; step < nsteps; step++) {
        int epoch = step / spe;
        double lr = cl_schedule_lr(&s, epoch, step), mom = cl_schedule_momentum(&s, step);
        if (mom >= 0) {
            if (!momenta && mom_ok) {
                t_fail("cl_schedule_momentum(step %d) = %g for a schedule that leaves momentum "
                       "alone", step, mom);
                mom_ok = false;
            }
            mom_now = (float)mom;
            cl_optimizer_set_momentum(opt, mom_now);
        }
        got_lr[step] = (float)lr;
        got_mom[step] = mom_now;
        cl_model_zero_grad(m);
        const float *y = cl_model_forward(m, xin, n, true);
        if (!y) {
            t_fail("forward at step %d: %s", step, cl_model_error(m));
            goto done;
        }
        got_loss[step] = (float)cl_cross_entropy(y, lab, n, k, 0.0f, d);
        if ((st = cl_model_backward(m, d)) != CL_OK) {
            t_fail("backward at step %d: status %d: %s", step, (int)st, cl_model_error(m));
            goto done;
        }
        cl_optimizer_step(opt, (float)lr);
        /* End of an epoch: the plateau schedule takes its metric; the others ignore it. */
        if ((step + 1) % spe == 0) cl_schedule_epoch_end(&s, metrics ? metrics->data[epoch] : 1.0);
    }
    t_end();

    t_begin("optim/%s threads=%d: learning rate%s per step", c->name, threads,
            momenta ? " and momentum" : "");
    if (!check_close("lr", got_lr, lrs->data, (size_t)nsteps, lr_atol, lr_rtol)) {
        char line[400];
        int off = 0;
        for (int i = 0; i < nsteps && off < (int)sizeof line - 40; i++)
            off += snprintf(line + off, sizeof line - (size_t)off, " %d:%.6g/%.6g", i, got_lr[i],
                            lrs->data[i]);
        t_fail("lr got/want:%s", line);
    }
    if (momenta) check_close("momentum", got_mom, momenta->data, (size_t)nsteps, lr_atol, lr_rtol);

    t_begin("optim/%s threads=%d: losses of %d steps", c->name, threads, nsteps);
    check_close("losses", got_loss, losses->data, (size_t)nsteps, l_atol, l_rtol);

    t_begin("optim/%s threads=%d: final parameters and running statistics", c->name, threads);
    int nfinal = fx_check_tensors(m, c, "final.", false, f_atol, f_rtol);
    if (nfinal != cl_model_tensor_count(m))
        t_fail("the fixture has %d final tensors, the model %d", nfinal, cl_model_tensor_count(m));
    if (ema) {
        t_begin("optim/%s threads=%d: the moving average (AveragedModel, use_buffers)", c->name,
                threads);
        if (!cl_optimizer_swap_average(opt)) t_fail("cl_optimizer_swap_average: not swapped in");
        int navg = fx_check_tensors(m, c, "ema_final.", false, f_atol, f_rtol);
        if (navg != cl_model_tensor_count(m))
            t_fail("the fixture has %d averaged tensors, the model %d", navg, cl_model_tensor_count(m));
        if (cl_optimizer_swap_average(opt)) t_fail("cl_optimizer_swap_average: not swapped back");
        if (fx_check_tensors(m, c, "final.", false, f_atol, f_rtol) != nfinal)
            t_fail("swapping twice did not restore the raw weights");
        if (threads == 1) ema_checkpoint_round_trip(c, m, opt, oa, xin, lab, n, k);
    }
done:
    t_end();
    cl_optimizer_free(opt);
    free(xin);
    free(d);
    free(lab);
    cl_model_free(m);
}

/* ---- cl_schedule_init ------------------------------------------------------------ */

static void expect_arg_error(const char *what, cl_sched_args a, const char *needle) {
    cl_schedule s;
    char err[256] = "";
    cl_status st = cl_schedule_init(&s, a, err, sizeof err);
    if (st != CL_ERR_ARG)
        t_fail("%s: status %d, want CL_ERR_ARG", what, (int)st);
    else if (!strstr(err, needle))
        t_fail("%s: message \"%s\" does not mention \"%s\"", what, err, needle);
}

static void schedule_init_checks(void) {
    t_begin("cl_schedule_init: argument errors");
    cl_sched_args a;
    expect_arg_error("lr 0", (cl_sched_args){.kind = CL_SCHED_NONE}, "learning rate");
    expect_arg_error("lr < 0", (cl_sched_args){.kind = CL_SCHED_STEP, .lr = -1, .step_size = 1},
                     "learning rate");
    expect_arg_error("lr NaN", (cl_sched_args){.kind = CL_SCHED_COSINE, .lr = NAN, .t_max = 1},
                     "learning rate");
    expect_arg_error("lr inf", (cl_sched_args){.kind = CL_SCHED_NONE, .lr = INFINITY},
                     "learning rate");
    expect_arg_error("step_size 0", (cl_sched_args){.kind = CL_SCHED_STEP, .lr = 0.1f}, "step_size");
    expect_arg_error("step_size < 0",
                     (cl_sched_args){.kind = CL_SCHED_STEP, .lr = 0.1f, .step_size = -2},
                     "step_size");
    expect_arg_error("no milestones", (cl_sched_args){.kind = CL_SCHED_MULTISTEP, .lr = 0.1f},
                     "milestones");
    a = (cl_sched_args){.kind = CL_SCHED_MULTISTEP, .lr = 0.1f, .nmilestones = CL_MAX_MILESTONES + 1};
    expect_arg_error("too many milestones", a, "milestones");
    a = (cl_sched_args){.kind = CL_SCHED_MULTISTEP, .lr = 0.1f, .milestones = {3, 3}, .nmilestones = 2};
    expect_arg_error("repeated milestone", a, "increase");
    a = (cl_sched_args){.kind = CL_SCHED_MULTISTEP, .lr = 0.1f, .milestones = {5, 2}, .nmilestones = 2};
    expect_arg_error("decreasing milestones", a, "increase");
    expect_arg_error("onecycle total_steps 0", (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f},
                     "total_steps");
    expect_arg_error("onecycle total_steps 1",
                     (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f, .total_steps = 1},
                     "total_steps");
    expect_arg_error("onecycle pct_start 1",
                     (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f, .total_steps = 10,
                                     .pct_start = 1},
                     "pct_start");
    expect_arg_error("onecycle pct_start < 0",
                     (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f, .total_steps = 10,
                                     .pct_start = -0.3f},
                     "pct_start");
    /* PyTorch's OneCycleLR divides by zero when the warm-up phase ends at step 0. */
    expect_arg_error("onecycle pct_start * total_steps = 1",
                     (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f, .total_steps = 4,
                                     .pct_start = 0.25f},
                     "pct_start");
    expect_arg_error("cosine t_max 0", (cl_sched_args){.kind = CL_SCHED_COSINE, .lr = 0.1f}, "T_max");
    expect_arg_error("plateau factor 1",
                     (cl_sched_args){.kind = CL_SCHED_PLATEAU, .lr = 0.1f, .factor = 1}, "factor");
    expect_arg_error("plateau factor < 0",
                     (cl_sched_args){.kind = CL_SCHED_PLATEAU, .lr = 0.1f, .factor = -0.5f}, "factor");
    expect_arg_error("unknown kind", (cl_sched_args){.kind = (cl_sched_kind)42, .lr = 0.1f},
                     "unknown schedule");

    t_begin("cl_schedule_init: PyTorch defaults for zero fields");
    cl_schedule s;
    char err[256];
    if (cl_schedule_init(&s, (cl_sched_args){.kind = CL_SCHED_ONECYCLE, .lr = 0.1f, .total_steps = 10},
                         err, sizeof err) != CL_OK) {
        t_fail("onecycle with defaults: %s", err);
    } else {
        if (s.a.pct_start != 0.3f || s.a.div_factor != 25 || s.a.final_div_factor != 1e4f ||
            s.a.base_momentum != 0.85f || s.a.max_momentum != 0.95f)
            t_fail("onecycle defaults: pct_start %g div %g final_div %g momentum %g..%g",
                   s.a.pct_start, s.a.div_factor, s.a.final_div_factor, s.a.base_momentum,
                   s.a.max_momentum);
        /* max_lr / 25 at step 0, max_lr at the end of the warm-up (step 2 of 10), and
         * max_lr / 25 / 1e4 at the last step */
        double l0 = cl_schedule_lr(&s, 0, 0), l2 = cl_schedule_lr(&s, 0, 2), l9 = cl_schedule_lr(&s, 0, 9);
        if (fabs(l0 - 0.1f / 25.0) > 1e-12 || fabs(l2 - 0.1f) > 1e-12 || fabs(l9 - 0.1f / 25e4) > 1e-15)
            t_fail("onecycle lr at steps 0, 2, 9: %.9g %.9g %.9g", l0, l2, l9);
        if (cl_schedule_momentum(&s, 0) != 0.95f || fabs(cl_schedule_momentum(&s, 2) - 0.85f) > 1e-7)
            t_fail("onecycle momentum at steps 0, 2: %.9g %.9g", cl_schedule_momentum(&s, 0),
                   cl_schedule_momentum(&s, 2));
    }
    if (cl_schedule_init(&s, (cl_sched_args){.kind = CL_SCHED_PLATEAU, .lr = 0.1f}, err, sizeof err) != CL_OK)
        t_fail("plateau with defaults: %s", err);
    else if (s.a.factor != 0.1f || s.a.patience != 10 || s.a.threshold != 1e-4f || s.a.cooldown != 0 ||
             s.plateau_lr != 0.1f || cl_schedule_momentum(&s, 0) >= 0)
        t_fail("plateau defaults: factor %g patience %d threshold %g cooldown %d lr %g",
               s.a.factor, s.a.patience, s.a.threshold, s.a.cooldown, s.plateau_lr);
    if (cl_schedule_init(&s, (cl_sched_args){.kind = CL_SCHED_PLATEAU, .lr = 0.1f, .patience = -1},
                         err, sizeof err) != CL_OK || s.a.patience != 0)
        t_fail("plateau patience -1 should mean 0, got %d", s.a.patience);
    if (cl_schedule_init(&s, (cl_sched_args){.kind = CL_SCHED_MULTISTEP, .lr = 0.1f,
                                             .milestones = {1}, .nmilestones = 1},
                         err, sizeof err) != CL_OK)
        t_fail("multistep with defaults: %s", err);
    else if (s.a.gamma != 0.1f || fabs(cl_schedule_lr(&s, 1, 0) - (double)0.1f * 0.1f) > 1e-12)
        t_fail("multistep default gamma %g, lr at epoch 1 %.9g", s.a.gamma, cl_schedule_lr(&s, 1, 0));
    if (cl_schedule_init(&s, (cl_sched_args){.kind = CL_SCHED_NONE, .lr = 0.25f}, err, sizeof err) != CL_OK ||
        cl_schedule_lr(&s, 7, 100) != 0.25 || cl_schedule_momentum(&s, 3) >= 0)
        t_fail("constant schedule: lr %g", cl_schedule_lr(&s, 7, 100));
    t_end();
}

int main(int argc, char **argv) {
    schedule_init_checks();
    char err[512];
    fx_file *f = fx_load(argc > 1 ? argv[1] : FIXTURE, err, sizeof err);
    if (!f) {
        t_fail("%s", err);
        return t_finish();
    }
    if (f->ncases < 1) t_fail("%s has no cases", argc > 1 ? argv[1] : FIXTURE);
    for (int i = 0; i < f->ncases; i++) {
        run_case(&f->cases[i], 1);
        run_case(&f->cases[i], 2);
    }
    fx_free(f);
    return t_finish();
}
