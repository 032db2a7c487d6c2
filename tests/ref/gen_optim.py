"""gen_optim.py: PyTorch reference runs of cnnlab's optimizers and learning-rate
schedules, written to tests/ref/optim.bin (the CNLFIX format of fixture.py) and read
by tests/test_optim.c.

Every case trains the same kind of tiny network (OPTIM_TEXT: conv -> BatchNorm ->
ReLU -> GAP -> 1x1 conv, 5 logits, built by netfile.build so the state_dict names are
cnnlab's) on one fixed batch of 8 images with cross entropy, in train mode, for
`nsteps` optimizer steps. Per step, in this order:

    lr (and momentum / beta1) read from the optimizer's param group  -> lrs[k], momenta[k]
    zero_grad, forward, loss                                           -> losses[k]
    backward, optimizer.step()
    per-batch schedule (OneCycleLR): scheduler.step()
    per-epoch schedule, after the last batch of an epoch (every
    `steps_per_epoch` = 2 steps): scheduler.step(), or for
    ReduceLROnPlateau scheduler.step(metrics[epoch])

An "epoch" is 2 optimizer steps, so 24 steps are 12 epochs: enough for StepLR(5) to
change twice and for CosineAnnealingLR(T_max=8) to pass its minimum and climb back.
OneCycleLR is per batch over total_steps = 20 steps. The C side asks for
cl_schedule_lr(s, epoch = k / steps_per_epoch, step = k).

Tensors of a case (all float32 in the file):
    x [8,3,6,6] (NCHW), labels [8]
    layers.I.attr          initial state_dict (num_batches_tracked as a float)
    run     [nsteps, steps_per_epoch]
    optim   [kind, lr, momentum, dampening, nesterov, weight_decay, beta1, beta2, eps]
            kind: 0 SGD, 1 Adam, 2 AdamW (cl_optim_kind); nesterov 0/1
    sched   [kind, step_size, gamma, total_steps, pct_start, div_factor,
             final_div_factor, cycle_momentum, base_momentum, max_momentum, t_max,
             eta_min, factor, patience, threshold, cooldown, min_lr]
            kind: cl_sched_kind (0 none, 1 step, 2 multistep, 3 onecycle, 4 cosine,
            5 plateau); every field is PyTorch's value (patience 0 means 0; the C
            side maps it to cnnlab's -1); unused fields are 0
    milestones [m...]      multistep only
    metrics [epochs]       plateau only: the metric fed at the end of each epoch
    lrs [nsteps]           the learning rate PyTorch used at each step
    momenta [nsteps]       OneCycleLR only: SGD momentum or Adam beta1 at each step
    groups [no_decay_norm_bias, norm_lr_scale]   parameter-group cases only: two torch
                           param groups, the "norm/bias" tensors (every bias and the
                           BatchNorm weight: layers.1.weight, layers.1.bias,
                           layers.4.bias) with weight_decay 0 when no_decay_norm_bias
                           and lr * norm_lr_scale (OneCycleLR: max_lr per group), then
                           the rest with the case's weight decay and lr
    ema [decay]            EMA cases only: an AveragedModel(net, use_buffers=True,
                           multi_avg_fn=get_ema_multi_avg_fn(decay)) updated after
                           every optimizer.step()
    losses [nsteps]        loss of the forward whose gradient step k applies
    final.layers.I.attr    state_dict after the last step (parameters and the
                           BatchNorm running statistics after nsteps forwards)
    ema_final.layers.I.attr  EMA cases: the averaged model's state_dict at the end
    tol.lr, tol.losses, tol.final   [atol, rtol]

Precision: hyper-parameters are rounded to float32 first (what the C side gets),
and the reference runs in float64 from float32-rounded inputs and parameters, then
is stored as float32. The C library trains in float32, so the tolerances are those
of float32 arithmetic over 20-24 steps; each case checks here that PyTorch's own
float32 run stays within a tenth of them. Learning rates are checked to 1e-6
relative: they depend only on the (float32) hyper-parameters and are computed in
double on both sides.

The first conv has no bias: before a BatchNorm its gradient is zero up to rounding,
and Adam (update ~ lr * g / |g|) would turn that rounding noise into lr-sized steps
of arbitrary sign, which no tolerance can compare.

Deterministic: each case seeds torch from its name; reruns are byte-identical.
"""
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402
import netfile  # noqa: E402

OPTIM_TEXT = """# optimizer fixtures: a tiny conv-BN network, 5 logits
input 3x6x6
conv 4 k=3 pad=1 bias=0
bn
relu
gap
conv 5 k=1
"""
BATCH, CLASSES = 8, 5
STEPS, STEPS_PER_EPOCH = 24, 2

SGD, ADAM, ADAMW = 0, 1, 2
S_NONE, S_STEP, S_MULTISTEP, S_ONECYCLE, S_COSINE, S_PLATEAU = range(6)
SCHED_FIELDS = ("step_size", "gamma", "total_steps", "pct_start", "div_factor",
                "final_div_factor", "cycle_momentum", "base_momentum", "max_momentum",
                "t_max", "eta_min", "factor", "patience", "threshold", "cooldown", "min_lr")

TOL_LR = (0.0, 1e-6)
TOL_LOSSES = (1e-6, 1e-4)
TOL_FINAL = (1e-5, 1e-4)


def f32(v):
    """The float32 value the C side gets, as a Python float."""
    return float(np.float32(v))


def optim_cfg(kind, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
              beta1=0.9, beta2=0.999, eps=1e-8):
    return [kind, f32(lr), f32(momentum), f32(dampening), 1.0 if nesterov else 0.0,
            f32(weight_decay), f32(beta1), f32(beta2), f32(eps)]


def sched_cfg(kind, **kw):
    unknown = set(kw) - set(SCHED_FIELDS)
    assert not unknown, unknown
    return [kind] + [f32(kw.get(k, 0.0)) for k in SCHED_FIELDS]


def param_groups(net, groups, o):
    """The parameters as torch param groups: all in one, or (groups) the norm/bias
    tensors first with their own weight decay and lr, then the rest."""
    if groups is None:
        return list(net.parameters())
    no_decay, scale = groups
    norm = [p for n, p in net.named_parameters() if n.endswith(".bias") or n.startswith("layers.1.")]
    rest = [p for n, p in net.named_parameters() if not any(p is q for q in norm)]
    return [{"params": norm, "weight_decay": 0.0 if no_decay else o[5], "lr": f32(o[1] * scale)},
            {"params": rest}]


def averaged_model(net, decay):
    """AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True).
    PyTorch before 2.1 has no get_ema_multi_avg_fn; there the same update is the avg_fn
    below, which is what get_ema_multi_avg_fn computes per tensor: lerp for floating
    tensors, and for num_batches_tracked (int64) avg*decay + p*(1-decay) in float32,
    truncated by the copy back into the int64 tensor."""
    swa = torch.optim.swa_utils
    if hasattr(swa, "get_ema_multi_avg_fn"):
        return swa.AveragedModel(net, multi_avg_fn=swa.get_ema_multi_avg_fn(decay),
                                 use_buffers=True)

    def ema_avg(avg, p, _n):
        if avg.is_floating_point():
            return torch.lerp(avg, p, 1 - decay)
        return avg * decay + p * (1 - decay)
    return swa.AveragedModel(net, avg_fn=ema_avg, use_buffers=True)


def make_optimizer(params, o):
    kind, lr, momentum, dampening, nesterov, wd, b1, b2, eps = o
    if kind == SGD:
        return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                               nesterov=bool(nesterov), weight_decay=wd)
    cls = torch.optim.Adam if kind == ADAM else torch.optim.AdamW
    return cls(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)


def make_scheduler(opt, s, milestones):
    kind, p = int(s[0]), dict(zip(SCHED_FIELDS, s[1:]))
    S = torch.optim.lr_scheduler
    if kind == S_NONE:
        return None
    if kind == S_STEP:
        return S.StepLR(opt, step_size=int(p["step_size"]), gamma=p["gamma"])
    if kind == S_MULTISTEP:
        return S.MultiStepLR(opt, milestones=[int(m) for m in milestones], gamma=p["gamma"])
    if kind == S_COSINE:
        return S.CosineAnnealingLR(opt, T_max=int(p["t_max"]), eta_min=p["eta_min"])
    if kind == S_ONECYCLE:
        return S.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                            total_steps=int(p["total_steps"]), pct_start=p["pct_start"],
                            anneal_strategy="cos", cycle_momentum=bool(p["cycle_momentum"]),
                            base_momentum=p["base_momentum"], max_momentum=p["max_momentum"],
                            div_factor=p["div_factor"], final_div_factor=p["final_div_factor"],
                            three_phase=False)
    if kind == S_PLATEAU:
        return S.ReduceLROnPlateau(opt, mode="min", factor=p["factor"],
                                   patience=int(p["patience"]), threshold=p["threshold"],
                                   threshold_mode="rel", cooldown=int(p["cooldown"]),
                                   min_lr=p["min_lr"])
    raise ValueError(kind)


def train(state, x, labels, o, s, milestones, metrics, nsteps, dtype, groups=None, ema=None):
    """nsteps steps in dtype -> (lrs, momenta, losses, final state_dict, averaged
    state_dict or None)."""
    net, _ = netfile.build(OPTIM_TEXT)
    net = net.to(dtype)
    net.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v)
                         for k, v in state.items()})
    net.train()
    x = x.to(dtype)
    opt = make_optimizer(param_groups(net, groups, o), o)
    sched = make_scheduler(opt, s, milestones)
    avg = None
    if ema is not None:
        avg = averaged_model(net, ema)
    kind = int(s[0])
    lrs, momenta, losses = [], [], []
    for k in range(nsteps):
        g = opt.param_groups[-1]  # the default group (the rest, with groups)
        lrs.append(g["lr"])
        momenta.append(g["momentum"] if "momentum" in g else g["betas"][0])
        opt.zero_grad()
        loss = F.cross_entropy(net(x).flatten(1), labels)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        if avg is not None:
            avg.update_parameters(net)
        if kind == S_ONECYCLE:
            sched.step()
        elif sched is not None and (k + 1) % STEPS_PER_EPOCH == 0:
            epoch = (k + 1) // STEPS_PER_EPOCH - 1
            if kind == S_PLATEAU:
                sched.step(metrics[epoch])
            else:
                sched.step()
    final = {k: v.detach().clone() for k, v in net.state_dict().items()}
    averaged = None
    if avg is not None:
        averaged = {k: v.detach().clone() for k, v in avg.module.state_dict().items()}
    f64 = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return f64(lrs), f64(momenta), f64(losses), final, averaged


def tol_ratio(got, want, tol):
    """Largest |got - want| / (atol + rtol |want|): 1 is the edge of the tolerance."""
    atol, rtol = tol
    got, want = got.double(), want.double()
    return ((got - want).abs() / (atol + rtol * want.abs())).max().item()


def case(name, o, s, milestones=(), metrics=(), nsteps=STEPS, groups=None, ema=None):
    torch.manual_seed(zlib.crc32(name.encode()))
    net, _ = netfile.build(OPTIM_TEXT)
    with torch.no_grad():  # non-trivial BatchNorm parameters and statistics
        bn = net.layers[1]
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0, 0.3)
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(3)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}  # float32
    x = torch.randn(BATCH, 3, 6, 6)
    labels = torch.randint(0, CLASSES, (BATCH,))
    if int(s[0]) == S_PLATEAU:
        assert len(metrics) == nsteps // STEPS_PER_EPOCH
    metrics32 = [f32(m) for m in metrics]
    if ema is not None:
        ema = f32(ema)
    if groups is not None:
        groups = (groups[0], f32(groups[1]))
    lrs, moms, losses, final, avg = train(state, x.double(), labels, o, s, milestones, metrics32,
                                          nsteps, torch.float64, groups, ema)
    l32, m32, loss32, fin32, avg32 = train(state, x, labels, o, s, milestones, metrics32, nsteps,
                                           torch.float32, groups, ema)
    assert torch.equal(lrs, l32) and torch.equal(moms, m32), name
    worst = max([tol_ratio(loss32, losses, TOL_LOSSES)]
                + [tol_ratio(fin32[k].double(), final[k].double(), TOL_FINAL) for k in final]
                + [tol_ratio(avg32[k].double(), avg[k].double(), TOL_FINAL) for k in (avg or {})])
    assert worst <= 0.1, "%s: float32 PyTorch uses %.3g of the tolerance" % (name, worst)
    c = fixture.Case(name, OPTIM_TEXT, fixture.FLAG_TRAIN)
    c.add("x", x).add("labels", labels.double())
    for k, v in state.items():
        c.add(k, v.double())
    c.add("run", [nsteps, STEPS_PER_EPOCH]).add("optim", o).add("sched", s)
    if int(s[0]) == S_MULTISTEP:
        c.add("milestones", list(milestones))
    if int(s[0]) == S_PLATEAU:
        c.add("metrics", metrics32)
    if groups is not None:
        c.add("groups", [1.0 if groups[0] else 0.0, groups[1]])
    if ema is not None:
        c.add("ema", [ema])
    c.add("lrs", lrs)
    if int(s[0]) == S_ONECYCLE:
        c.add("momenta", moms)
    c.add("losses", losses)
    for k, v in final.items():
        c.add("final." + k, v.double())
    for k, v in (avg or {}).items():
        c.add("ema_final." + k, v.double())
    c.add("tol.lr", TOL_LR).add("tol.losses", TOL_LOSSES).add("tol.final", TOL_FINAL)
    lr_changes = int((lrs[1:] != lrs[:-1]).sum())
    print("  %-26s loss %.4f -> %.4f, %2d lr changes, float32 torch at %.3f of tol"
          % (name, losses[0], losses[-1], lr_changes, worst))
    return c


def cases():
    none = sched_cfg(S_NONE)
    sgd_m = optim_cfg(SGD, 0.05, momentum=0.9)
    onecycle = dict(total_steps=20, pct_start=0.3, div_factor=25, final_div_factor=1e4,
                    cycle_momentum=1, base_momentum=0.85, max_momentum=0.95)
    # ReduceLROnPlateau(factor 0.5, patience 1, threshold 1%, cooldown 1, min_lr 0.02):
    # the lr halves after epochs 3 and 6 (the cooldown absorbs the bad epoch 4; without
    # it the cut would come after epoch 5) and after epoch 9, where min_lr stops it at
    # 0.02; 0.849 is not 1% better than 0.85, so epoch 8 is a bad epoch.
    plateau = sched_cfg(S_PLATEAU, factor=0.5, patience=1, threshold=0.01, cooldown=1,
                        min_lr=0.02)
    plateau_metrics = [1.0, 0.9, 0.95, 0.92, 0.93, 0.94, 0.91, 0.85, 0.849, 0.86, 0.80, 0.81]
    # A NaN first metric is not an improvement on PyTorch's initial best (inf).
    plateau_nan = sched_cfg(S_PLATEAU, factor=0.5, patience=2)
    plateau_nan_metrics = [float("nan"), 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    return [
        case("sgd", optim_cfg(SGD, 0.05), none),
        case("sgd_momentum", sgd_m, none),
        case("sgd_nesterov", optim_cfg(SGD, 0.05, momentum=0.9, nesterov=True), none),
        case("sgd_dampening", optim_cfg(SGD, 0.05, momentum=0.9, dampening=0.1), none),
        case("sgd_weight_decay", optim_cfg(SGD, 0.1, weight_decay=5e-4), none),
        case("adam", optim_cfg(ADAM, 0.01), none),
        case("adam_weight_decay", optim_cfg(ADAM, 0.01, weight_decay=0.05), none),
        case("adamw_weight_decay", optim_cfg(ADAMW, 0.01, weight_decay=0.01), none),
        case("adam_betas_eps", optim_cfg(ADAM, 0.01, beta1=0.8, beta2=0.99, eps=1e-6), none),
        case("steplr_sgd_momentum", sgd_m, sched_cfg(S_STEP, step_size=5, gamma=0.5)),
        case("multisteplr_sgd_momentum", sgd_m, sched_cfg(S_MULTISTEP, gamma=0.3),
             milestones=(2, 5, 9)),
        case("cosinelr_adam", optim_cfg(ADAM, 0.01),
             sched_cfg(S_COSINE, t_max=8, eta_min=0.001)),
        case("cosinelr_sgd_momentum", sgd_m, sched_cfg(S_COSINE, t_max=8)),
        case("onecycle_sgd_momentum", optim_cfg(SGD, 0.1, momentum=0.9),
             sched_cfg(S_ONECYCLE, **onecycle), nsteps=20),
        case("onecycle_adam_beta1", optim_cfg(ADAM, 0.01), sched_cfg(S_ONECYCLE, **onecycle),
             nsteps=20),
        case("onecycle_sgd_no_cycle", optim_cfg(SGD, 0.1, momentum=0.9, nesterov=True),
             sched_cfg(S_ONECYCLE, total_steps=20, pct_start=0.25, div_factor=10,
                       final_div_factor=100, cycle_momentum=0, base_momentum=0.85,
                       max_momentum=0.95), nsteps=20),
        case("plateau_sgd_momentum", optim_cfg(SGD, 0.1, momentum=0.9), plateau,
             metrics=plateau_metrics),
        # parameter groups: no decay on the norm/bias tensors, their lr scaled
        case("groups_sgd_no_decay_lr_scale", optim_cfg(SGD, 0.05, momentum=0.9, weight_decay=0.05),
             none, groups=(True, 3.0)),
        case("groups_adamw_no_decay", optim_cfg(ADAMW, 0.01, weight_decay=0.1), none,
             groups=(True, 1.0)),
        case("groups_adam_lr_scale", optim_cfg(ADAM, 0.01, weight_decay=0.01), none,
             groups=(False, 0.5)),
        case("groups_onecycle_sgd", optim_cfg(SGD, 0.1, momentum=0.9, weight_decay=0.01),
             sched_cfg(S_ONECYCLE, **onecycle), nsteps=20, groups=(True, 2.0)),
        # weight averaging (EMA) with BatchNorm buffers; decay 0.8 so the average moves
        case("ema_sgd_momentum", sgd_m, none, ema=0.8),
        case("ema_adamw_groups_onecycle", optim_cfg(ADAMW, 0.01, weight_decay=0.05),
             sched_cfg(S_ONECYCLE, **onecycle), nsteps=20, groups=(True, 2.0), ema=0.9),
        case("plateau_nan_first_adamw", optim_cfg(ADAMW, 0.01, weight_decay=0.01), plateau_nan,
             metrics=plateau_nan_metrics),
    ]


def main():
    torch.set_num_threads(1)  # reproducible reductions
    print("optim.bin")
    size = fixture.write(os.path.join(HERE, "optim.bin"), cases())
    print("  -> %d bytes" % size)


if __name__ == "__main__":
    main()
