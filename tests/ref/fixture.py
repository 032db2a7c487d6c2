"""fixture.py: writer for the test-fixture binary format read by tests/harness.c.

Little-endian throughout:
    header   b"CNLFIX\\0\\0", u32 version (1), u32 ncases
    case     str name, str model_text, u32 flags, u32 ntensors, ntensors x tensor
    tensor   str name, u32 ndim, u32 dims[ndim], float32 data[prod(dims)]
    str      u32 length, then the bytes (no NUL)
flags: bit0 (FLAG_TRAIN) run the forward in train mode; bit1 (FLAG_INPUT_GRAD) the
case checks the input gradient.

Tensor names inside a case:
    x                   input, NCHW
    out, dout, dx       expected output (always 4-D NCHW; K outputs are [N,K,1,1]),
                        upstream gradient, expected input gradient
    layers.I.attr       state_dict entry to load before the forward (buffers too;
                        num_batches_tracked as a float)
    grad.layers.I.attr  expected gradient of a trainable parameter
    after.layers.I.attr expected buffer value after the forward(s)
    tol                 [atol, rtol] for the case's comparisons
Files may add their own names (loss.bin: logits, labels, smoothing, loss, dlogits;
e2e.bin: labels, loss0, sgd, losses, tol.losses, tol.after).
"""
import struct

import numpy as np

MAGIC = b"CNLFIX\0\0"
VERSION = 1
FLAG_TRAIN = 1
FLAG_INPUT_GRAD = 2


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _tensor(name, value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    a = np.ascontiguousarray(np.asarray(value, dtype="<f4"))
    if a.ndim == 0:
        a = a.reshape(1)
    return (_str(name) + struct.pack("<I", a.ndim) + struct.pack("<%dI" % a.ndim, *a.shape)
            + a.tobytes())


class Case:
    def __init__(self, name, model_text, flags=0):
        self.name, self.model_text, self.flags = name, model_text, flags
        self.tensors = []  # (name, value) in insertion order

    def add(self, name, value):
        if any(n == name for n, _ in self.tensors):
            raise ValueError("%s: duplicate tensor %s" % (self.name, name))
        self.tensors.append((name, value))
        return self

    def encode(self):
        out = [_str(self.name), _str(self.model_text),
               struct.pack("<II", self.flags, len(self.tensors))]
        out += [_tensor(n, v) for n, v in self.tensors]
        return b"".join(out)


def write(path, cases):
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("duplicate case names in %s" % path)
    data = MAGIC + struct.pack("<II", VERSION, len(cases)) + b"".join(c.encode() for c in cases)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)
