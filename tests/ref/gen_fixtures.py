"""gen_fixtures.py: generates the PyTorch reference fixtures the C tests compare
against: tests/ref/ops.bin (one layer per case: output, input gradient, parameter
gradients, BatchNorm running statistics), tests/ref/loss.bin (cross entropy),
tests/ref/e2e.bin (a small residual network: gradients and 10 SGD steps) and
tests/ref/param_counts.txt (parameter/buffer counts of models/*.net); then runs
gen_optim.py (tests/ref/optim.bin) and gen_safetensors.py (tests/ref/interop.bin,
tests/ref/torch_export.safetensors).

Run from anywhere: `make fixtures` or `/usr/bin/python3 tests/ref/gen_fixtures.py`.
Deterministic: every case seeds torch from its own name, and reruns are
byte-identical. Expected values are computed in float64 from float32-rounded
inputs and parameters, then stored as float32.

Each case's tolerance is checked here against what PyTorch itself gets in float32:
PyTorch's float32 error must stay within a tenth of the tolerance, so a correct
float32 implementation has room for a different summation order.
"""
import glob
import os
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import fixture  # noqa: E402
import gen_optim  # noqa: E402
import gen_safetensors  # noqa: E402
import netfile  # noqa: E402

torch.set_num_threads(1)  # reproducible reductions

BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def tol_ratio(got, want, tol):
    """Largest |got - want| / (atol + rtol |want|): 1 is the edge of the tolerance."""
    atol, rtol = tol
    got, want = got.double(), want.double()
    if got.numel() == 0:
        return 0.0
    return ((got - want).abs() / (atol + rtol * want.abs())).max().item()


def randomize(module):
    """Non-trivial parameters and statistics for the norms (PyTorch's init gives 1 and 0)."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(3)


def run_op(module, state, x, dout, train):
    """Forward and backward in x's dtype -> (out, dx, {name: grad}, {name: buffer after})."""
    dtype = x.dtype
    module = module.to(dtype)
    module.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v)
                            for k, v in state.items()})
    module.train(train)
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out * dout.to(dtype)).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in module.named_parameters()}
    after = {n: b.detach().clone() for n, b in module.named_buffers()
             if n.endswith(BUFFER_NAMES)}
    return out.detach(), x.grad.detach(), grads, after


def op_case(name, text, n, train=True, tol=(1e-5, 1e-4), x_scale=1.0, x_first=()):
    """x is x_scale * randn, its first entries replaced by x_first (exact kinks)."""
    seed(name)
    module, shape = netfile.build(text)
    randomize(module)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}  # float32
    x = torch.randn(n, *shape) * x_scale
    x.view(-1)[:len(x_first)] = torch.tensor(x_first, dtype=x.dtype)
    with torch.no_grad():
        dout = torch.randn(module.eval()(x).shape)
    out, dx, grads, after = run_op(module, state, x.double(), dout.double(), train)
    # PyTorch in float32 must pass with a 10x margin.
    module32, _ = netfile.build(text)
    o32, dx32, g32, a32 = run_op(module32, state, x, dout, train)
    worst = max([tol_ratio(o32, out, tol), tol_ratio(dx32, dx, tol)]
                + [tol_ratio(g32[k], grads[k], tol) for k in grads]
                + [tol_ratio(a32[k].float(), after[k], tol) for k in after])
    assert worst <= 0.1, "%s: float32 PyTorch uses %.3g of the tolerance" % (name, worst)
    flags = (fixture.FLAG_TRAIN if train else 0) | fixture.FLAG_INPUT_GRAD
    c = fixture.Case(name, text, flags)
    c.add("x", x).add("out", out).add("dout", dout).add("dx", dx)
    for k, v in state.items():
        c.add(k, v.double())
    for k, v in grads.items():
        c.add("grad." + k, v)
    for k, v in after.items():
        c.add("after." + k, v.double())
    c.add("tol", torch.tensor(tol, dtype=torch.float64))
    return c, worst


def ops_cases():
    L = "input {}\n{}\n"
    CONV, NORM = (2e-5, 1e-4), (5e-5, 2e-4)
    spec = [
        # name, model text, batch, train, tol
        ("conv_k3_pad1_b1", L.format("3x7x9", "conv 4 k=3 pad=1"), 1, True, CONV),
        ("conv_k3_pad1_b7", L.format("2x5x6", "conv 3 k=3 pad=1"), 7, True, CONV),
        ("conv_k3_s2_pad1", L.format("3x7x9", "conv 4 k=3 stride=2 pad=1"), 2, True, CONV),
        ("conv_k3_pad0", L.format("3x7x9", "conv 4 k=3 pad=0"), 1, True, CONV),
        ("conv_default_k", L.format("2x5x6", "conv 3"), 7, True, CONV),
        ("conv_k1_b7", L.format("4x5x6", "conv 6 k=1"), 7, True, CONV),
        ("conv_dilation2", L.format("3x7x9", "conv 4 k=3 pad=2 dilation=2"), 1, True, CONV),
        ("conv_groups2", L.format("4x6x7", "conv 6 k=3 pad=1 groups=2"), 2, True, CONV),
        ("conv_depthwise", L.format("4x6x7", "conv 8 k=3 pad=1 groups=4"), 2, True, CONV),
        ("conv_nobias_b7", L.format("3x5x6", "conv 4 k=3 pad=1 bias=0"), 7, True, CONV),
        ("conv_rect_k3x1", L.format("3x7x9", "conv 4 k=3x1 pad=1x0"), 1, True, CONV),
        ("conv_s2_odd_b7", L.format("3x9x7", "conv 5 k=3 stride=2"), 7, True, CONV),
        ("conv_k2_s2_odd", L.format("3x7x9", "conv 4 k=2 stride=2"), 2, True, CONV),
        ("conv_k5_pad_same", L.format("3x7x9", "conv 4 k=5 pad=same"), 1, True, CONV),
        ("maxpool_2_b2", L.format("3x6x8", "maxpool 2"), 2, True, CONV),
        ("maxpool_2_odd", L.format("3x7x9", "maxpool 2"), 1, True, CONV),
        ("maxpool_k3_s2_pad1_b7", L.format("3x7x9", "maxpool k=3 stride=2 pad=1"), 7, True, CONV),
        ("avgpool_2_odd", L.format("3x7x9", "avgpool 2"), 2, True, CONV),
        ("avgpool_k3_s2_pad1_b7", L.format("3x7x9", "avgpool k=3 stride=2 pad=1"), 7, True, CONV),
        ("gap_b2", L.format("5x7x9", "gap"), 2, True, CONV),
        ("gap_b7", L.format("3x4x5", "gap"), 7, True, CONV),
        ("bn_train_b7", L.format("4x5x6", "bn"), 7, True, NORM),
        ("bn_train_b1", L.format("4x7x9", "bn"), 1, True, NORM),
        ("bn_train_eps_momentum", L.format("3x4x5", "bn eps=1e-3 momentum=0.3"), 7, True, NORM),
        ("bn_eval_b7", L.format("4x5x6", "bn"), 7, False, NORM),
        ("bn_eval_b1", L.format("4x7x9", "bn"), 1, False, NORM),
        ("gn2_b7", L.format("4x5x6", "gn 2"), 7, True, NORM),
        ("gn4_b1", L.format("8x7x9", "gn 4"), 1, True, NORM),
        ("gn_per_channel", L.format("6x5x5", "gn num_groups=6"), 2, True, NORM),
        ("ln_b7", L.format("4x5x6", "ln"), 7, True, NORM),
        ("ln_b1", L.format("4x7x9", "ln"), 1, True, NORM),
        ("ln_elementwise_b7", L.format("3x5x6", "ln elementwise=1"), 7, True, NORM),
        ("ln_elementwise_b1", L.format("3x7x9", "ln elementwise=1"), 1, True, NORM),
        ("relu_b7", L.format("4x5x6", "relu"), 7, True, CONV),
        ("leakyrelu_0.1", L.format("3x7x9", "leakyrelu slope=0.1"), 1, True, CONV),
        ("leakyrelu_default", L.format("3x5x6", "leakyrelu"), 7, True, CONV),
        ("gelu_b7", L.format("4x5x6", "gelu"), 7, True, CONV),
        ("silu_b7", L.format("4x5x6", "silu"), 7, True, CONV, dict(x_scale=4.0)),
        ("hardswish_b7", L.format("4x5x6", "hardswish"), 7, True, CONV, dict(x_scale=3.0)),
        # exactly on the kinks: PyTorch's vectorised backward (16 values: no scalar
        # tail) gives -0.5 at -3 and 1 at 3
        ("hardswish_kinks", L.format("1x2x4", "hardswish"), 2, True, CONV,
         dict(x_first=(-3.0, 3.0, 0.0, -2.9999, 2.9999, -3.0001, 3.0001, -100.0, 100.0))),
        ("dropout_eval", L.format("3x5x6", "dropout 0.3"), 7, False, CONV),
        ("add_input_input", L.format("3x5x6", "add input input"), 7, True, CONV),
        ("concat_input_input", L.format("3x7x9", "concat input input"), 1, True, CONV),
        ("add_residual", "input 3x5x6\nconv 3 k=1\nadd input\n", 2, True, CONV),
        ("concat_routed", "input 3x5x6\nconv 2 k=1 as=c\nrelu from=input\nconcat c input\n",
         2, True, CONV),
        ("flatten_linear_b7", "input 3x4x5\nflatten\nlinear 7\n", 7, True, CONV),
        ("flatten_linear_b1", "input 3x4x5\nflatten\nlinear 7\n", 1, True, CONV),
        ("linear_b7", L.format("12x1x1", "linear 5"), 7, True, CONV),
        ("linear_nobias_b1", L.format("12x1x1", "linear 5 bias=0"), 1, True, CONV),
        ("block_bn_gelu", L.format("3x6x7", "block 4 k=3 pad=1 norm=bn act=gelu"), 7, True, NORM),
        ("block_bn_silu", L.format("3x6x7", "block 4 k=3 pad=1 norm=bn act=silu"), 7, True, NORM),
        ("sepblock_bn_b7", L.format("4x6x7", "sepblock 6 k=3 pad=1 norm=bn"), 7, True, NORM),
        ("sepblock_s2_gn_silu_drop0",
         "input 4x7x9\ndefaults norm=gn num_groups=2 act=silu\nsepblock 6 k=3 stride=2 pad=same\n",
         2, True, NORM),
        ("sepblock_none_bias", L.format("3x5x6", "sepblock 5 k=3x1 pad=1x0 norm=none act=relu"),
         7, True, CONV),
        ("defaults_gn_hardswish", "input 3x6x7\ndefaults norm=gn act=hardswish\nblock 4 k=3 pad=1\n",
         7, True, NORM),
    ]
    cases = []
    for name, text, n, train, tol, *extra in spec:
        c, worst = op_case(name, text, n, train, tol, **(extra[0] if extra else {}))
        cases.append(c)
        print("  %-24s float32 torch at %.3f of tol" % (name, worst))
    return cases


def loss_cases():
    cases = []
    K = 10
    spec = [("ce_b1", 1, 0.0, 1.0), ("ce_b7", 7, 0.0, 2.0), ("ce_b7_smooth", 7, 0.1, 2.0),
            ("ce_b1_smooth", 1, 0.1, 1.0), ("ce_b7_large", 7, 0.0, 80.0),
            ("ce_b7_large_smooth", 7, 0.1, 80.0)]
    tol = (1e-6, 1e-5)  # dlogits are at most 1/N
    for name, n, s, scale in spec:
        seed(name)
        logits = torch.randn(n, K) * scale
        if scale >= 80:  # saturated: +-80 entries, some on the label, some not
            logits = torch.where(torch.rand(n, K) < 0.5, torch.tensor(80.0), torch.tensor(-80.0))
            logits += torch.randn(n, K)
        labels = torch.randint(0, K, (n,))
        l64 = logits.double().requires_grad_(True)
        loss = F.cross_entropy(l64, labels, label_smoothing=s)
        loss.backward()
        l32 = logits.clone().requires_grad_(True)
        loss32 = F.cross_entropy(l32, labels, label_smoothing=s)
        loss32.backward()
        worst = max(tol_ratio(loss32.detach(), loss.detach(), tol), tol_ratio(l32.grad, l64.grad, tol))
        assert worst <= 0.1, name
        print("  %-24s loss %.6g, float32 torch at %.3f of tol" % (name, loss.item(), worst))
        c = fixture.Case(name, "", 0)
        c.add("logits", logits).add("labels", labels.double()).add("smoothing", [s])
        c.add("loss", [loss.item()]).add("dlogits", l64.grad).add("tol", tol)
        cases.append(c)
    return cases


E2E_TEXT = """# e2e: conv-BN-ReLU residual network, 10 logits
input 3x12x12
conv 8 k=3 pad=1 bias=0
bn
relu as=a
conv 8 k=3 pad=1 bias=0
bn
relu
add a
maxpool 2
conv 16 k=3 pad=1
relu
gap
conv 10 k=1
"""


class E2ENet(nn.Module):
    """E2E_TEXT by hand; indices match the expanded layers (Identity holds the add)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Identity(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 10, 1)])

    def forward(self, x):
        L = self.layers
        a = L[2](L[1](L[0](x)))
        h = L[5](L[4](L[3](a)))
        h = L[6](h + a)
        h = L[11](L[10](L[9](L[8](L[7](h)))))
        return h.flatten(1)


def e2e_train(state, x, labels, sgd, dtype):
    """Loss and gradients at step 0, then the losses of 10 SGD steps (train mode)."""
    net = E2ENet().to(dtype)
    net.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()})
    net.train()
    x = x.to(dtype)
    lr, momentum, wd = sgd
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    losses, grads0 = [], None
    for step in range(11):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), labels)
        losses.append(loss.item())
        if step == 10:
            break
        loss.backward()
        if step == 0:
            grads0 = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
        opt.step()
    after = {n: b.detach().clone() for n, b in net.named_buffers() if n.endswith(BUFFER_NAMES)}
    return torch.tensor(losses, dtype=torch.float64), grads0, after


def e2e_cases():
    # Reference computed in float64 (from float32-rounded inputs and parameters);
    # the C side runs in float32, so the tolerances cover float32 rounding, checked
    # below against PyTorch's own float32 run.
    name = "e2e_resnet_sgd"
    seed(name)
    net = E2ENet()
    randomize(net)
    for m in net.modules():  # start from fresh statistics, as a new model does
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # The hand-built network and netfile's reading of the text must agree.
    ref, _ = netfile.build(E2E_TEXT)
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == \
        [(k, v.shape) for k, v in state.items()], "netfile disagrees with E2ENet"
    x = torch.randn(8, 3, 12, 12)
    labels = torch.randint(0, 10, (8,))
    ref.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(ref.eval()(x).flatten(1), net.eval()(x))
    sgd = (0.05, 0.9, 5e-4)
    sgd32 = tuple(float(torch.tensor(v, dtype=torch.float32)) for v in sgd)  # what C gets
    losses, grads, after = e2e_train(state, x.double(), labels, sgd32, torch.float64)
    l32, g32, a32 = e2e_train(state, x, labels, sgd32, torch.float32)
    tol, tol_losses, tol_after = (1e-5, 1e-4), (1e-6, 1e-4), (1e-5, 1e-4)
    worst = max([tol_ratio(l32[:1], losses[:1], tol), tol_ratio(l32, losses, tol_losses)]
                + [tol_ratio(g32[k], grads[k], tol) for k in grads]
                + [tol_ratio(a32[k].float(), after[k], tol_after) for k in after])
    print("  %-24s losses %s\n  %-24s float32 torch at %.3f of tol"
          % (name, " ".join("%.4f" % v for v in losses.tolist()), "", worst))
    assert worst <= 0.1, name
    c = fixture.Case(name, E2E_TEXT, fixture.FLAG_TRAIN)
    c.add("x", x).add("labels", labels.double())
    for k, v in state.items():
        c.add(k, v.double())
    c.add("loss0", losses[:1])
    for k, v in grads.items():
        c.add("grad." + k, v)
    c.add("sgd", torch.tensor(sgd, dtype=torch.float64)).add("losses", losses)
    for k, v in after.items():
        c.add("after." + k, v.double())
    c.add("tol", tol).add("tol.losses", tol_losses).add("tol.after", tol_after)
    return [c]


def param_counts():
    lines = []
    for path in sorted(glob.glob(os.path.join(ROOT, "models", "*.net"))):
        rel = os.path.relpath(path, ROOT)
        module, _ = netfile.build(path)
        p, b = netfile.counts(module)
        lines.append("%s %d %d\n" % (rel, p, b))
    with open(os.path.join(HERE, "param_counts.txt"), "w") as f:
        f.writelines(lines)
    print("  param_counts.txt: %d models" % len(lines))


def main():
    for fname, make in (("ops.bin", ops_cases), ("loss.bin", loss_cases), ("e2e.bin", e2e_cases)):
        print(fname)
        size = fixture.write(os.path.join(HERE, fname), make())
        print("  -> %d bytes" % size)
    param_counts()
    gen_optim.main()
    gen_safetensors.main()


if __name__ == "__main__":
    main()
