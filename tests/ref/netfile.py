"""netfile.py: an independent Python reading of the cnnlab model-file format
(docs/model-format.md) that builds the same network as a torch nn.Module.

It is a reference, not a validator: it accepts valid files and may accept some
invalid ones. The network is an nn.ModuleList `layers` with exactly one module per
expanded layer, in execution order, so its state_dict names ("layers.3.weight")
are the names cnnlab uses. Every module returns an NCHW tensor; flatten and linear
return [N, K, 1, 1], as cnnlab's Kx1x1 shapes.

    module, (c, h, w) = build("models/cifar10_bn.net")   # or the text itself
    logits = module(x).flatten(1)
"""
import os
import re

import torch
import torch.nn as nn


class Add(nn.Module):
    def forward(self, a, b):
        return a + b


class Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, dim=1)


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1, 1, 1)


class Linear(nn.Linear):
    """nn.Linear on a [N, C, 1, 1] input, giving [N, K, 1, 1]."""

    def forward(self, x):
        return super().forward(x.reshape(x.shape[0], -1)).reshape(x.shape[0], -1, 1, 1)


class Net(nn.Module):
    """The layers and, for each, the names of the tensors it reads ("" = previous)."""

    def __init__(self, layers, sources, names):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sources = sources  # per layer: list of tensor names, "" for the previous output
        self.names = names      # per layer: the as= name of its output, or None

    def forward(self, x):
        env = {"input": x}
        prev = x
        for layer, srcs, name in zip(self.layers, self.sources, self.names):
            prev = layer(*[prev if s == "" else env[s] for s in srcs])
            if name:
                env[name] = prev
        return prev


# The activation keywords (src/io/registry.c) and their torch.nn modules, given the
# line's slope.
ACTIVATIONS = {
    "relu": lambda slope: nn.ReLU(),
    "leakyrelu": lambda slope: nn.LeakyReLU(slope),
    "gelu": lambda slope: nn.GELU(),
    "silu": lambda slope: nn.SiLU(),
    "hardswish": lambda slope: nn.Hardswish(),
}


def _pair(v):
    a = [int(t) for t in v.split("x")]
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _bool(v):
    return v in ("1", "true")


def build(path_or_text):
    """Parse a model file (a path, or the text itself) -> (nn.Module, (C, H, W))."""
    text = path_or_text
    if "\n" not in path_or_text and os.path.exists(path_or_text):
        with open(path_or_text) as f:
            text = f.read()
    d = dict(norm="none", num_groups=2, eps=1e-5, momentum=0.1, act="relu", slope=0.01,
             dropout=None)
    layers, sources, names = [], [], []
    input_shape = None
    shape = None  # (C, H, W) of the previous output
    shapes = {}   # named tensor -> shape

    def emit(module, srcs, in_shapes):
        nonlocal shape
        module.eval()  # a shape probe must not touch BatchNorm statistics
        with torch.no_grad():
            y = module(*[torch.zeros(1, *s) for s in in_shapes])
        module.train()
        layers.append(module)
        sources.append(srcs)
        names.append(None)
        shape = tuple(y.shape[1:])

    for line in text.splitlines():
        toks = line.split("#", 1)[0].split()
        if not toks:
            continue
        op, args = toks[0], toks[1:]
        pos = [a for a in args if "=" not in a]
        kv = dict(a.split("=", 1) for a in args if "=" in a)
        if op == "input":
            input_shape = tuple(int(t) for t in pos[0].split("x"))
            shape = input_shape
            shapes["input"] = input_shape
            continue
        if op == "defaults":
            for k, v in kv.items():
                d[k] = v if k in ("norm", "act", "init") else (int(v) if k == "num_groups" else float(v))
            continue
        src = kv.get("from", "")
        in_shape = shapes[src] if src else shape
        first = len(layers)

        def norm(kind, c, kv):
            eps = float(kv.get("eps", d["eps"]))
            if kind == "bn":
                return nn.BatchNorm2d(c, eps=eps, momentum=float(kv.get("momentum", d["momentum"])))
            if kind == "gn":
                g = int(pos[0]) if op == "gn" and pos else int(kv.get("num_groups", d["num_groups"]))
                return nn.GroupNorm(g, c, eps=eps)
            if kind == "ln":
                if _bool(kv.get("elementwise", "0")):
                    return nn.LayerNorm(list(shape), eps=eps)
                return nn.GroupNorm(1, c, eps=eps)
            raise ValueError("no normalisation kind %r" % kind)

        def act(kind, kv):
            if kind not in ACTIVATIONS:
                raise ValueError("no activation kind %r" % kind)
            return ACTIVATIONS[kind](float(kv.get("slope", d["slope"])))

        if op in ("conv", "block"):
            kind_norm = kv.get("norm", d["norm"]) if op == "block" else "none"
            k = _pair(kv.get("k", "3"))
            dil = _pair(kv.get("dilation", "1"))
            pad = kv.get("pad", "0")
            pad = tuple(dil[i] * (k[i] - 1) // 2 for i in range(2)) if pad == "same" else _pair(pad)
            bias = _bool(kv["bias"]) if "bias" in kv else (op == "conv" or kind_norm == "none")
            emit(nn.Conv2d(in_shape[0], int(pos[0]), k, stride=_pair(kv.get("stride", "1")),
                           padding=pad, dilation=dil, groups=int(kv.get("groups", "1")), bias=bias),
                 [src], [in_shape])
            if op == "block":
                if kind_norm != "none":
                    emit(norm(kind_norm, shape[0], kv), [""], [shape])
                kind_act = kv.get("act", d["act"])
                if kind_act != "none":
                    emit(act(kind_act, kv), [""], [shape])
                p = float(kv.get("dropout", d["dropout"] or 0))
                if p > 0:
                    emit(nn.Dropout(p), [""], [shape])
        elif op == "sepblock":
            # depthwise k x k (groups = C_in) -> norm -> act -> 1x1 to C -> norm -> act -> dropout
            kind_norm = kv.get("norm", d["norm"])
            k = _pair(kv.get("k", "3"))
            dil = _pair(kv.get("dilation", "1"))
            pad = kv.get("pad", "0")
            pad = tuple(dil[i] * (k[i] - 1) // 2 for i in range(2)) if pad == "same" else _pair(pad)
            bias = _bool(kv["bias"]) if "bias" in kv else kind_norm == "none"
            kind_act = kv.get("act", d["act"])
            c_in = in_shape[0]
            emit(nn.Conv2d(c_in, c_in, k, stride=_pair(kv.get("stride", "1")), padding=pad,
                           dilation=dil, groups=c_in, bias=bias), [src], [in_shape])
            for conv in (None, nn.Conv2d(c_in, int(pos[0]), 1, bias=bias)):
                if conv is not None:
                    emit(conv, [""], [shape])
                if kind_norm != "none":
                    emit(norm(kind_norm, shape[0], kv), [""], [shape])
                if kind_act != "none":
                    emit(act(kind_act, kv), [""], [shape])
            p = float(kv.get("dropout", d["dropout"] or 0))
            if p > 0:
                emit(nn.Dropout(p), [""], [shape])
        elif op in ("maxpool", "avgpool"):
            k = _pair(kv.get("k", pos[0] if pos else None))
            stride = _pair(kv["stride"]) if "stride" in kv else k
            pad = _pair(kv.get("pad", "0"))
            if op == "maxpool":
                emit(nn.MaxPool2d(k, stride, pad), [src], [in_shape])
            else:
                emit(nn.AvgPool2d(k, stride, pad, count_include_pad=True), [src], [in_shape])
        elif op == "gap":
            emit(nn.AdaptiveAvgPool2d(1), [src], [in_shape])
        elif op in ("bn", "gn", "ln", "norm"):
            shape = in_shape  # LayerNorm's elementwise shape
            emit(norm(d["norm"] if op == "norm" else op, in_shape[0], kv), [src], [in_shape])
        elif op in ACTIVATIONS or op == "act":
            emit(act(d["act"] if op == "act" else op, kv), [src], [in_shape])
        elif op == "dropout":
            p = float(pos[0]) if pos else float(kv.get("p", d["dropout"] if d["dropout"] is not None else 0.5))
            emit(nn.Dropout(p), [src], [in_shape])
        elif op in ("add", "concat"):
            srcs = pos if len(pos) >= 2 else [src] + pos
            emit(Add() if op == "add" else Concat(), srcs,
                 [shapes[s] if s else in_shape for s in srcs])
        elif op == "flatten":
            emit(Flatten(), [src], [in_shape])
        elif op == "linear":
            emit(Linear(in_shape[0] * in_shape[1] * in_shape[2], int(pos[0]),
                        bias=_bool(kv.get("bias", "1"))), [src], [in_shape])
        else:
            raise ValueError("unknown keyword %r" % op)
        if len(layers) == first:
            raise ValueError("line made no layer: %r" % line)
        if "as" in kv:
            names[-1] = kv["as"]
            shapes[kv["as"]] = shape
    return Net(layers, sources, names), input_shape


def counts(module):
    """(trainable parameters, buffer elements: running stats + num_batches_tracked)."""
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    bufs = sum(b.numel() for n, b in module.named_buffers()
               if re.search(r"(running_mean|running_var|num_batches_tracked)$", n))
    return params, bufs
