"""gen_gn_precision.py: tests/ref/gn_precision.bin, the float32 precision of the
gradients of LayerNorm / GroupNorm(1, C) networks on 32x32 inputs (issue 12, defect 11):
two small networks and models/cifar10_ln.net.

For each case: the input, labels and parameters (float32 values), the float64
gradients of the mean cross entropy (the reference; train mode), and for every
parameter PyTorch's own float32 error `torch_err.NAME`: max |g32 - g64| / max |g64|.
test_gn_precision.c asserts that cnnlab's float32 error is within a small factor of
PyTorch's, so the bound follows what float32 allows rather than a guessed tolerance.

Run from anywhere: `/usr/bin/python3 tests/ref/gen_gn_precision.py` (part of `make
fixtures`). Deterministic: each case seeds torch from its name.
"""
import os
import sys
import zlib

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402
import netfile  # noqa: E402

torch.set_num_threads(1)  # reproducible reductions

# The first stage of cifar10_ln (two 32x32 blocks under GroupNorm(1, C)), a pooled
# block and the logits; the GN case uses 4 groups, the LN case one.
TEXT = """# gn_precision: {title}
input 3x32x32
defaults norm={norm} num_groups=4 act=relu dropout=0
block 16 k=3 pad=1
block 32 k=3 pad=1
conv 16 k=1
maxpool 2
block 24 k=3 pad=1
gap
conv 10 k=1
"""

# name, model text, batch: the small networks, then models/cifar10_ln.net itself (a
# network the issue measured).
with open(os.path.join(HERE, "..", "..", "models", "cifar10_ln.net")) as f:
    CIFAR10_LN = f.read()
CASES = (
    ("ln_32x32", TEXT.format(title="LayerNorm over (C,H,W) = GroupNorm(1, C)", norm="ln"), 8),
    ("gn4_32x32", TEXT.format(title="GroupNorm(4, C)", norm="gn"), 8),
    ("cifar10_ln", CIFAR10_LN, 16),
)


def grads(net, state, x, labels, dtype):
    net = net.to(dtype)
    net.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    net.train()
    net.zero_grad()
    loss = F.cross_entropy(net(x.to(dtype)).flatten(1), labels)
    loss.backward()
    return {n: p.grad.detach().double().clone() for n, p in net.named_parameters()}


def rel_err(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def make_case(name, text, batch):
    torch.manual_seed(zlib.crc32(name.encode()))
    net, _ = netfile.build(text)
    # Trained-looking affine parameters, not PyTorch's 1 and 0.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
    state = {k: v.detach().float().clone() for k, v in net.state_dict().items()}
    # Normalised CIFAR-like inputs: per-pixel values with a common offset per image.
    x = (torch.randn(batch, 3, 32, 32) + 0.5 * torch.randn(batch, 1, 1, 1)).float()
    labels = torch.randint(0, 10, (batch,))
    g64 = grads(net, state, x, labels, torch.float64)
    # The reference as the C test sees it (stored as float32).
    g64r = {k: v.float().double() for k, v in g64.items()}
    g32 = grads(net, state, x, labels, torch.float32)
    c = fixture.Case(name, text, fixture.FLAG_TRAIN)
    c.add("x", x).add("labels", labels.double())
    for k, v in state.items():
        c.add(k, v.double())
    worst = 0
    for k in g64:
        err = rel_err(g32[k], g64r[k])
        worst = max(worst, err)
        c.add("grad." + k, g64[k]).add("torch_err." + k, torch.tensor([err]))
    print("  %-12s PyTorch float32 gradient error up to %.2e (relative to each tensor's max)"
          % (name, worst))
    return c


def main():
    path = os.path.join(HERE, "gn_precision.bin")
    n = fixture.write(path, [make_case(*case) for case in CASES])
    print("wrote %s (%d bytes)" % (path, n))


if __name__ == "__main__":
    main()
