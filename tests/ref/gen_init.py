"""gen_init.py: the PyTorch fixtures of the initialisation options (tests/test_init.c),
written to tests/ref/init.bin.

dirac cases (model text with init=dirac): for each initialised convolution layer I,
  dirac.layers.I.weight  torch.nn.init.dirac_(w, groups) of the conv's weight shape
  mask.layers.I.weight   [out]: 1 for the rows dirac_ sets (the first min(out, in)
                         outputs of each group), which cnnlab overwrites; the other rows
                         keep the default init.

whiten cases (airbench94's get_patches / get_whitening_parameters /
init_whitening_conv, verbatim in float64):
  x        images NCHW
  k        [kh, kw]; rows: the conv's output channels; eps
  w        [rows, C, kh, kw] expected filters (rows past 2*min(rows/2, C*kh*kw): zero,
           not compared); eigenvalues [C*kh*kw] descending.

Run: /usr/bin/python3 tests/ref/gen_init.py (deterministic).
"""
import os
import sys
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402

torch.set_num_threads(1)


def dirac_case(name, text, layers):
    """layers: (layer index, out, in per group, kh, kw, groups) of each init=dirac conv."""
    c = fixture.Case(name, text)
    for i, out, in_g, kh, kw, groups in layers:
        w = torch.empty(out, in_g, kh, kw, dtype=torch.float64)
        torch.nn.init.dirac_(w, groups=groups)
        out_g = out // groups
        mask = torch.zeros(out, dtype=torch.float64)
        for g in range(groups):
            mask[g * out_g:g * out_g + min(out_g, in_g)] = 1
        c.add("dirac.layers.%d.weight" % i, w)
        c.add("mask.layers.%d.weight" % i, mask)
    return c


def get_patches(x, patch_shape):
    c, (h, w) = x.shape[1], patch_shape
    return x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w)


def get_whitening_parameters(patches):
    n, c, h, w = patches.shape
    patches_flat = patches.reshape(n, -1)
    est_patch_covariance = (patches_flat.T @ patches_flat) / n
    eigenvalues, eigenvectors = torch.linalg.eigh(est_patch_covariance, UPLO="U")
    return eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)


def whiten_case(name, n, c, hw, k, rows, eps=5e-4):
    torch.manual_seed(zlib.crc32(name.encode()))
    # correlated channels and neighbouring pixels, like images
    base = torch.randn(n, c, hw + 2, hw + 2, dtype=torch.float64)
    x = (base[:, :, 1:-1, 1:-1] + 0.5 * base[:, :, 2:, 1:-1] + 0.3 * base[:, :, 1:-1, 2:])
    x = x + 0.4 * x.mean(1, keepdim=True) + 0.2
    x = x.float().double()  # what the C side reads
    eigenvalues, eigenvectors = get_whitening_parameters(get_patches(x, (k, k)))
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    d = c * k * k
    h = min(rows // 2, d)
    w = torch.zeros(rows, c, k, k, dtype=torch.float64)
    w[:h] = scaled[:h]
    w[h:2 * h] = -scaled[:h]
    case = fixture.Case(name, "input %dx%dx%d\nconv %d k=%d\n" % (c, hw, hw, rows, k))
    case.add("x", x)
    case.add("k", torch.tensor([k, k], dtype=torch.float64))
    case.add("rows", torch.tensor([rows], dtype=torch.float64))
    case.add("eps", torch.tensor([eps], dtype=torch.float64))
    case.add("w", w)
    case.add("eigenvalues", eigenvalues.flatten())
    return case


def main():
    cases = [
        dirac_case("dirac_out6_in4_k3", "input 4x5x5\nconv 6 k=3 pad=1 init=dirac\n",
                   [(0, 6, 4, 3, 3, 1)]),
        dirac_case("dirac_out2_in4_k5", "input 4x7x7\nconv 2 k=5 init=dirac\n",
                   [(0, 2, 4, 5, 5, 1)]),
        dirac_case("dirac_groups2_k3x1", "input 4x5x5\nconv 6 k=3x1 groups=2 init=dirac\n",
                   [(0, 6, 2, 3, 1, 2)]),
        dirac_case("dirac_defaults_sepblock",
                   "input 4x6x6\ndefaults norm=bn init=dirac\nsepblock 8 k=3 pad=1\nconv 3 k=1\n",
                   [(0, 4, 1, 3, 3, 4), (3, 8, 4, 1, 1, 1)]),
        whiten_case("whiten_k2_full", 5, 3, 8, 2, 24),
        whiten_case("whiten_k3_rows11", 4, 3, 9, 3, 11),
        whiten_case("whiten_k2_rows40", 3, 2, 6, 2, 40),
    ]
    size = fixture.write(os.path.join(HERE, "init.bin"), cases)
    print("init.bin: %d cases, %d bytes" % (len(cases), size))


if __name__ == "__main__":
    main()
