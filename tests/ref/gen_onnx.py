"""gen_onnx.py: generates the PyTorch ONNX fixtures for `cnnlab import`
(tests/test_onnx.c): for models/*.net and tests/all_layers.net, the PyTorch
equivalent built by netfile.py (random weights, non-trivial norm parameters and
BatchNorm running statistics, eval mode) exported with torch.onnx.export at opset
17 with a dynamic batch, as tests/ref/onnx/NAME.onnx, plus NAME.bin: 4 fixed input
images (float32 NCHW on the 0..1 scale) followed by PyTorch's logits for them
(float32 [4][classes]). Also unsupported.onnx and sigmoid.onnx: Conv -> Tanh and
Conv -> Sigmoid models (cnnlab maps Sigmoid only within SiLU's x * sigmoid(x)), whose
imports must fail naming the node.

Run from anywhere: `make fixtures` or `/usr/bin/python3 tests/ref/gen_onnx.py`
(needs python3-torch and python3-onnx). Deterministic from fixed seeds.
"""
import glob
import os
import sys
import zlib

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "onnx")
sys.path.insert(0, HERE)
import netfile  # noqa: E402

torch.set_num_threads(1)
IMAGES = 4


def randomize(module):
    """Norm parameters and statistics away from PyTorch's 1 and 0, as after training."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)


def export(name, module, shape):
    torch.manual_seed(zlib.crc32(("input " + name).encode()))
    x = torch.rand(IMAGES, *shape)
    module.eval()
    with torch.no_grad():
        logits = module(x).flatten(1)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(module, x, path, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(x.numpy().astype("<f4").tobytes())
        f.write(logits.numpy().astype("<f4").tobytes())
    print("wrote %s (%d bytes), %s.bin: %d images, %d classes" %
          (path, os.path.getsize(path), name, IMAGES, logits.shape[1]))


class Logits(nn.Module):
    """The netfile network with the [N, K, 1, 1] output flattened, as a user's would be."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).flatten(1)


def main():
    os.makedirs(OUT, exist_ok=True)
    files = sorted(glob.glob(os.path.join(ROOT, "models", "*.net")))
    files.append(os.path.join(ROOT, "tests", "all_layers.net"))
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        torch.manual_seed(zlib.crc32(name.encode()))
        net, shape = netfile.build(path)
        randomize(net)
        export(name, Logits(net), shape)
    for name, act in (("unsupported", nn.Tanh()), ("sigmoid", nn.Sigmoid())):
        torch.manual_seed(1)
        export(name, nn.Sequential(nn.Conv2d(1, 2, 3), act, nn.AdaptiveAvgPool2d(1), nn.Flatten()),
               (1, 8, 8))


if __name__ == "__main__":
    main()
