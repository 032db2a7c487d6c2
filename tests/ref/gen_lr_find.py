"""gen_lr_find.py: the fixture of the learning-rate range test (tests/test_lr_find.c),
tests/ref/lr_find.bin: torch-lr-finder's LRFinder.range_test loop (step_mode="exp",
its ExponentialLR on a torch optimizer, smooth_f, diverge_th) and LRFinder.plot's
suggestion (skip_start=10, skip_end=5, np.gradient(...).argmin()) run on fixed loss
sequences instead of training steps.

Each case: loss (the raw losses fed, one per step, possibly more than the test
uses), params [start_lr, end_lr, steps, smooth_f, diverge_th], and the expected
history: lr and smoothed (as long as the steps run before the stop) and suggest
[index, lr] (index -1: no suggestion).

Run: /usr/bin/python3 tests/ref/gen_lr_find.py (deterministic).
"""
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402


class ExponentialLR(torch.optim.lr_scheduler._LRScheduler):
    """torch_lr_finder.lr_finder.ExponentialLR."""

    def __init__(self, optimizer, end_lr, num_iter, last_epoch=-1):
        self.end_lr = end_lr
        if num_iter <= 1:
            raise ValueError("`num_iter` must be larger than 1")
        self.num_iter = num_iter
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        r = self.last_epoch / (self.num_iter - 1)
        return [base_lr * (self.end_lr / base_lr) ** r for base_lr in self.base_lrs]


def range_test(losses, start_lr, end_lr, num_iter, smooth_f, diverge_th):
    """LRFinder.range_test's loop, a loss sequence standing in for _train_batch."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=start_lr)
    lr_schedule = ExponentialLR(opt, end_lr, num_iter)
    history = {"lr": [], "loss": []}
    best_loss = None
    for iteration in range(num_iter):
        loss = losses[iteration]
        history["lr"].append(lr_schedule.get_lr()[0])
        opt.step()  # (no gradient: changes nothing; keeps the scheduler's order check quiet)
        lr_schedule.step()
        if iteration == 0:
            best_loss = loss
        else:
            if smooth_f > 0:
                loss = smooth_f * loss + (1 - smooth_f) * history["loss"][-1]
            if loss < best_loss:
                best_loss = loss
        history["loss"].append(loss)
        if loss > diverge_th * best_loss:
            break
    return history


def suggestion(history, skip_start=10, skip_end=5):
    """LRFinder.plot(suggest_lr=True)'s choice: the index and the lr."""
    lrs, losses = history["lr"], history["loss"]
    idx = list(range(len(lrs)))
    if skip_end == 0:
        lrs, losses, idx = lrs[skip_start:], losses[skip_start:], idx[skip_start:]
    else:
        lrs, losses = lrs[skip_start:-skip_end], losses[skip_start:-skip_end]
        idx = idx[skip_start:-skip_end]
    try:
        i = int(np.gradient(np.array(losses)).argmin())
    except ValueError:  # "Failed to compute the gradients, there might not be enough points."
        return -1, float("nan")
    return idx[i], lrs[i]


def case(name, losses, start_lr, end_lr, steps, smooth_f=0.05, diverge_th=5):
    h = range_test(losses, start_lr, end_lr, steps, smooth_f, diverge_th)
    i, lr = suggestion(h)
    c = fixture.Case(name, "")
    c.add("loss", np.array(losses, dtype=np.float64))
    c.add("params", np.array([start_lr, end_lr, steps, smooth_f, diverge_th], dtype=np.float64))
    c.add("lr", np.array(h["lr"], dtype=np.float64))
    c.add("smoothed", np.array(h["loss"], dtype=np.float64))
    c.add("suggest", np.array([i, lr], dtype=np.float64))
    print("  %-22s %3d of %3d steps, suggestion %d (lr %.4g)" % (name, len(h["lr"]), steps, i, lr))
    return c


def main():
    rng = np.random.RandomState(14)
    n = 120
    t = np.arange(n)
    # a typical curve: flat, falling, a valley, then blowing up
    typical = 2.3 - 1.2 / (1 + np.exp(-(t - 45) / 8)) + np.exp((t - 95) / 6) + 0.05 * rng.randn(n)
    noisy = 2.3 + 0.3 * rng.randn(n) - 0.01 * t
    flat = np.full(n, 1.5)
    flat[3] = 1.2  # a dip early, then the smoothed loss creeps back up: the last point
    # is the steepest descent (np.gradient one-sided at the end)
    cases = [
        case("typical_diverges", [float(v) for v in typical], 1e-5, 10.0, n),
        case("noisy_no_divergence", [float(v) for v in noisy], 1e-4, 1.0, 100),
        case("no_smoothing", [float(v) for v in typical], 1e-6, 3.0, 110, smooth_f=0.0,
             diverge_th=3),
        case("dip_then_recovery", [float(v) for v in flat], 0.01, 0.1, 40),
        case("too_short_to_suggest", [2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0,
                                      0.9, 0.8, 0.7, 0.6, 0.5], 1e-3, 1.0, 16),
        case("two_steps", [1.0, 100.0], 0.1, 1.0, 2),
    ]
    size = fixture.write(os.path.join(HERE, "lr_find.bin"), cases)
    print("lr_find.bin: %d cases, %d bytes" % (len(cases), size))


if __name__ == "__main__":
    main()
