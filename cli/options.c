/* options.c: the training options of `cnnlab train` (and what eval reuses): its
 * option table (parsed by args.c like every command's) and the same options written
 * as "key=value" lines, so a run folder records every option and --resume reads
 * them back. */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define F(field) offsetof(train_options, field)

/* Defaults live in train_options_defaults (NAN floats: resolved by the optimizer);
 * .def says them in --help. */
const cli_option train_option_table[] = {
    {"data", OPT_STR, F(data), "cifar10|cifar100|mnist|fashion-mnist|DIR", .arg = "NAME|DIR",
     .def = "cifar10"},
    {"data-dir", OPT_STR, F(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {"epochs", OPT_INT, F(epochs), "epochs", .def = "20", .min = 1, .max = 2000000000},
    {"batch", OPT_INT, F(batch), "batch size", .def = "128", .min = 1, .max = 65536},
    {"seed", OPT_INT, F(seed), "random seed for initialisation, shuffling, augmentation, dropout",
     .def = "1"},
    {"threads", OPT_INT, F(threads), "compute threads", .def = "0, all cores", .min = 0,
     .max = 1024},
    {"workers", OPT_INT, F(workers), "data-loading threads", .def = "1"},
    {"out", OPT_STR, F(out), "run folder", .arg = "DIR",
     .def = "runs/MODEL, numbered if it exists"},
    {"opt", OPT_STR, F(opt), "the optimizer", .arg = "NAME", .def = "sgd",
     .choices = "sgd|adam|adamw"},
    {"lr", OPT_FLOAT, F(lr), "learning rate; onecycle: the maximum", .def = "sgd 0.05, adam 0.001"},
    {"momentum", OPT_FLOAT, F(momentum), "SGD momentum", .def = "0.9"},
    {"nesterov", OPT_FLAG, F(nesterov), "Nesterov momentum", .def = "off"},
    {"weight-decay", OPT_FLOAT, F(weight_decay), "weight decay",
     .def = "5e-4 for sgd, 0 for adam, 0.01 for adamw"},
    {"label-smoothing", OPT_FLOAT, F(label_smoothing), "cross-entropy label smoothing, below 1",
     .def = "0", .min = 0, .max = 1},
    {"sched", OPT_STR, F(sched), "the learning-rate schedule", .arg = "NAME", .def = "onecycle",
     .choices = "none|step|multistep|onecycle|cosine|plateau"},
    {"step-size", OPT_INT, F(step_size), "step: epochs between decays", .def = "10"},
    {"gamma", OPT_FLOAT, F(gamma), "step, multistep: decay factor", .def = "0.1"},
    {"milestones", OPT_LIST, F(milestones), "multistep: epochs, e.g. 10,15",
     .count_offset = F(nmilestones), .max_items = CL_MAX_MILESTONES},
    {"pct-start", OPT_FLOAT, F(pct_start), "onecycle: fraction of steps rising", .def = "0.3"},
    {"div-factor", OPT_FLOAT, F(div_factor), "onecycle: initial lr = lr / div-factor", .def = "25"},
    {"final-div-factor", OPT_FLOAT, F(final_div_factor), "onecycle: final lr = initial / this",
     .def = "1e4"},
    {"no-cycle-momentum", OPT_FLAG, F(no_cycle_momentum), "onecycle: keep momentum fixed",
     .def = "off"},
    {"t-max", OPT_INT, F(t_max), "cosine: epochs of the half cosine", .def = "--epochs"},
    {"eta-min", OPT_FLOAT, F(eta_min), "cosine: final lr", .def = "0"},
    {"factor", OPT_FLOAT, F(factor), "plateau: decay factor", .def = "0.1"},
    {"patience", OPT_INT, F(patience), "plateau: epochs without improvement", .def = "10"},
    {"min-lr", OPT_FLOAT, F(min_lr), "plateau: lower bound", .def = "0"},
    {"aug", OPT_STR, F(aug), "augmentation pipeline, e.g. crop:4:reflect,hflip,cutout:8",
     .arg = "SPEC"},
    {"train-subset", OPT_INT, F(train_subset), "use the first N training images", .def = "all"},
    {"test-subset", OPT_INT, F(test_subset), "use the first N test images", .def = "all"},
    {"resize", OPT_STR, F(resize), "image folders: resize every image to HxW", .arg = "HxW"},
    {"val-split", OPT_INT, F(val_split),
     "hold the last N training images out as a validation set: evaluated every epoch, "
     "never trained on, they choose the best checkpoint; the test set is evaluated once, "
     "after the last epoch", .arg = "N", .def = "0, none", .min = 0, .max = 2000000000},
    {"ema", OPT_FLOAT, F(ema),
     "keep an exponential moving average of the weights and BatchNorm statistics with this "
     "decay (e.g. 0.999), as torch's AveragedModel(use_buffers=True); evaluation and the "
     "checkpoints use it", .arg = "DECAY", .def = "0, off", .min = 0, .max = 1},
    {"no-decay-norm-bias", OPT_FLAG, F(no_decay_norm_bias),
     "no weight decay on biases and on the weights of batchnorm, groupnorm and layernorm",
     .def = "off"},
    {"norm-lr-scale", OPT_FLOAT, F(norm_lr_scale),
     "learning rate multiplier for biases and norm weights (every schedule, onecycle too)",
     .arg = "X", .def = "1", .min = 0, .max = 1000, .min_open = true},
    {"resume", OPT_STR, F(resume), "continue the run in this folder from its last checkpoint",
     .arg = "DIR"},
    {"init", OPT_STR, F(init), "start from these weights (a .safetensors file)", .arg = "FILE"},
    {"init-whiten", OPT_INT, F(init_whiten),
     "set the first conv's weights by patch whitening of the first N training images "
     "(airbench; e.g. 5000)", .def = "0, off", .max = 1000000},
    /* evaluation (docs/analysis.md) */
    {"tta", OPT_STR, F(tta), "test-time augmentation of the per-epoch test: mean logits over "
     "views, flip and/or translate:N (flip is meant for CIFAR-like data, not digits); costs a "
     "forward per view", .arg = "SPEC", .def = "none"},
    {"target", OPT_DOUBLE, F(target), "the test accuracy whose first epoch the report names, "
     "e.g. 0.85", .arg = "ACC", .def = "none", .min = 0, .max = 1, .min_open = true},
    {0},
};

void train_options_defaults(train_options *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->data, sizeof o->data, "cifar10");
    o->epochs = 20;
    o->batch = 128;
    o->seed = 1;
    o->workers = 1;
    snprintf(o->opt, sizeof o->opt, "sgd");
    o->lr = NAN;
    o->momentum = 0.9f;
    o->weight_decay = NAN;
    snprintf(o->sched, sizeof o->sched, "onecycle");
    o->norm_lr_scale = 1;
    o->target = NAN;
}

bool train_option_set(train_options *o, const char *name, const char *value, bool *used_value) {
    return cli_option_set(train_option_table, "train", o, name, value, used_value);
}

/* "key=value\n" for every option that has a value, in table order. */
size_t train_options_write(const train_options *o, char *buf, size_t len) {
    size_t n = 0;
    for (const cli_option *s = train_option_table; s->name; s++) {
        const char *field = (const char *)o + s->offset;
        char val[TRAIN_STR_LEN + 32] = "";
        switch (s->kind) {
        case OPT_TEXT:
        case OPT_SHAPE: break; /* (train has none) */
        case OPT_DOUBLE: {
            double v = *(const double *)field;
            if (!isnan(v)) snprintf(val, sizeof val, "%.9g", v);
            break;
        }
        case OPT_STR: snprintf(val, sizeof val, "%s", field); break;
        case OPT_INT: snprintf(val, sizeof val, "%lld", *(const long long *)field); break;
        case OPT_FLOAT: {
            float v = *(const float *)field;
            if (!isnan(v)) snprintf(val, sizeof val, "%.9g", v);
            break;
        }
        case OPT_FLAG: snprintf(val, sizeof val, "%d", *(const bool *)field); break;
        case OPT_LIST:
            for (int k = 0; k < o->nmilestones; k++) {
                size_t l = strlen(val);
                snprintf(val + l, sizeof val - l, "%s%d", k ? "," : "", o->milestones[k]);
            }
            break;
        }
        if (!val[0] || !strcmp(s->name, "resume") || !strcmp(s->name, "init")) continue;
        int k = snprintf(buf + n, n < len ? len - n : 0, "%s=%s\n", s->name, val);
        if (k > 0) n += (size_t)k;
    }
    return n;
}

bool train_options_read(train_options *o, const char *text) {
    char line[TRAIN_STR_LEN + 64];
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        if (len >= sizeof line) return false;
        memcpy(line, text, len);
        line[len] = 0;
        text += len + (nl ? 1 : 0);
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        if (!train_option_set(o, line, eq + 1, NULL)) return false;
    }
    return true;
}

bool train_options_schedule(const train_options *o, int batches, cl_schedule *s) {
    cl_sched_args a = {.lr = o->lr, .gamma = o->gamma, .step_size = (int)o->step_size,
                       .pct_start = o->pct_start, .div_factor = o->div_factor,
                       .final_div_factor = o->final_div_factor,
                       .no_cycle_momentum = o->no_cycle_momentum, .t_max = (int)o->t_max,
                       .eta_min = o->eta_min, .factor = o->factor, .patience = (int)o->patience,
                       .min_lr = o->min_lr};
    static const char *const names[] = {"none", "step", "multistep", "onecycle", "cosine", "plateau"};
    int kind = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(o->sched, names[i])) kind = i;
    if (kind < 0) {
        cli_error("--sched: expected none, step, multistep, onecycle, cosine or plateau, got '%s'",
                  o->sched);
        return false;
    }
    a.kind = (cl_sched_kind)kind;
    if (a.kind == CL_SCHED_ONECYCLE) {
        /* PyTorch's OneCycleLR starts the momentum cycle at max_momentum */
        if (!o->no_cycle_momentum && strcmp(o->opt, "sgd") == 0 && o->momentum == 0) {
            cli_error("--sched onecycle cycles the momentum: use --momentum > 0 or --no-cycle-momentum");
            return false;
        }
        a.total_steps = (int)o->epochs * batches;
        if (a.total_steps < 2) {
            cli_error("--sched onecycle needs at least 2 steps in all, and %lld epoch%s of %d "
                      "batch%s make %d: train more epochs, use more images or a smaller --batch, "
                      "or choose another --sched", o->epochs, o->epochs == 1 ? "" : "s", batches,
                      batches == 1 ? "" : "es", a.total_steps);
            return false;
        }
    }
    if (a.kind == CL_SCHED_COSINE && a.t_max == 0) a.t_max = (int)o->epochs;
    if (a.kind == CL_SCHED_MULTISTEP) {
        memcpy(a.milestones, o->milestones, sizeof a.milestones);
        a.nmilestones = o->nmilestones;
    }
    if (a.kind == CL_SCHED_STEP && a.step_size == 0) a.step_size = 10;
    char err[256];
    if (cl_schedule_init(s, a, err, sizeof err) != CL_OK) {
        cli_error("--sched %s: %s", o->sched, err);
        return false;
    }
    return true;
}

cl_optim_args train_options_optim_args(const train_options *o) {
    cl_optim_args a = {.lr = o->lr, .momentum = o->momentum, .nesterov = o->nesterov,
                       .weight_decay = o->weight_decay,
                       .no_decay_norm_bias = o->no_decay_norm_bias,
                       .norm_lr_scale = o->norm_lr_scale, .ema_decay = o->ema};
    a.kind = !strcmp(o->opt, "sgd") ? CL_OPT_SGD : !strcmp(o->opt, "adam") ? CL_OPT_ADAM : CL_OPT_ADAMW;
    return a;
}

/* What PyTorch's optimizers refuse: a negative learning rate, momentum or weight decay. */
bool train_options_check(const train_options *o) {
    const struct {
        const char *name;
        float v;
    } nonneg[] = {{"lr", o->lr}, {"momentum", o->momentum}, {"weight-decay", o->weight_decay}};
    for (size_t i = 0; i < sizeof nonneg / sizeof *nonneg; i++)
        if (nonneg[i].v < 0) { /* NaN: not given, a default follows */
            cli_error("--%s must be 0 or more (as in torch.optim), got %g", nonneg[i].name,
                      (double)nonneg[i].v);
            return false;
        }
    if (o->init[0] && o->init_whiten > 0) {
        cli_error("--init-whiten sets the first convolution that --init %s would load: give one "
                  "of them", o->init);
        return false;
    }
    cl_tta tta;
    return cli_parse_tta("train --tta", o->tta, &tta);
}
