"""gen_safetensors.py: safetensors interoperability fixtures for tests/test_checkpoint.c,
with a small pure-Python safetensors writer and reader (json + struct; the
`safetensors` package is not needed).

    /usr/bin/python3 tests/ref/gen_safetensors.py
        writes tests/ref/torch_export.safetensors: the state_dict of the PyTorch model
        built from INTEROP_TEXT (BatchNorm with non-trivial running statistics and an
        int64 0-dim num_batches_tracked), laid out exactly as
        safetensors.torch.save_file(state_dict, metadata={"format": "pt"}) does;
        and tests/ref/interop.bin (CNLFIX, fixture.py): the model text, an input, the
        expected eval-mode output and the state_dict values.

    /usr/bin/python3 tests/ref/gen_safetensors.py --check-cnnlab FILE
        the other direction, run by hand (not in CI): reads FILE, a checkpoint written
        by cl_model_save (`build/tests/test_checkpoint --export FILE` writes one), with
        the strict reader below, loads it into the PyTorch model with
        load_state_dict(strict=True) after dropping the "optimizer." entries, and
        compares PyTorch's eval output with the one cnnlab stored in the metadata.

The layout of the official library (safetensors' Rust `serialize`): an 8-byte
little-endian header length N; N bytes of compact JSON, padded with spaces to a
multiple of 8, holding "__metadata__" (string to string) first and then one entry
per tensor {"dtype", "shape", "data_offsets": [begin, end]}; then the data, every
tensor's bytes back to back in the same order as the header entries. That order is
by dtype, largest alignment first (the official Dtype order: U64, I64, F64, F32, I32,
...), then by name; so every tensor starts at a multiple of its element size. (Very
old versions ordered purely by name; readers accept any order.) The reader checks what
the official one does: the header length, UTF-8 JSON, every dtype and shape, offsets
sorted by begin that cover the data exactly, back to back, with no gap or overlap.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture  # noqa: E402
import netfile  # noqa: E402

# The official Dtype enum, in increasing alignment order: files list tensors from
# the end of this list to its start, then by name.
DTYPE_ORDER = ("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "F64", "I64", "U64")
NUMPY = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
         "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8"}
TORCH = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
         torch.float16: "F16", torch.uint8: "U8", torch.bool: "BOOL"}
MAX_HEADER = 100_000_000

INTEROP_TEXT = """# safetensors interop: every kind of state_dict entry cnnlab has
input 3x8x8
conv 5 k=3 pad=1 bias=0
bn
relu
maxpool 2
block 6 k=3 pad=1 norm=bn as=b
conv 6 k=1
add b
gn 3
gap
flatten
linear 7
"""
BATCH = 4
TOL_OUT = (1e-5, 1e-4)


# ---- writer and reader -------------------------------------------------------------

def itemsize(dtype):
    return np.dtype(NUMPY[dtype]).itemsize if dtype in NUMPY else 1


def serialize(tensors, metadata=None):
    """tensors: {name: (dtype, shape, raw little-endian bytes)} -> the file's bytes."""
    items = sorted(tensors.items(), key=lambda kv: (-DTYPE_ORDER.index(kv[1][0]), kv[0]))
    header, data, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    for name, (dtype, shape, raw) in items:
        n = int(np.prod(shape, dtype=np.int64)) * itemsize(dtype)
        assert len(raw) == n, "%s: %d bytes for %s %s" % (name, len(raw), dtype, shape)
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + n]}
        data.append(raw)
        offset += n
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(data)


def from_torch(state_dict):
    """{name: torch tensor} -> serialize()'s input."""
    out = {}
    for k, v in state_dict.items():
        v = v.detach().contiguous().cpu()
        out[k] = (TORCH[v.dtype], list(v.shape), v.numpy().tobytes())
    return out


class FormatError(ValueError):
    pass


def deserialize(buf, name="<bytes>"):
    """The file's bytes -> (metadata or None, {name: numpy array}, {name: (begin, end)})."""
    def fail(msg):
        raise FormatError("%s: %s" % (name, msg))
    if len(buf) < 8:
        fail("shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > MAX_HEADER or 8 + n > len(buf):
        fail("header length %d does not fit the %d-byte file" % (n, len(buf)))
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail("header is not UTF-8 JSON: %s" % e)
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        fail("__metadata__ is not a map of strings")
    data = buf[8 + n:]
    entries = []
    for k, info in header.items():
        if not isinstance(info, dict) or set(info) < {"dtype", "shape", "data_offsets"}:
            fail("tensor %s: not a {dtype, shape, data_offsets} entry" % k)
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in NUMPY:
            fail("tensor %s: dtype %r is not one this reader converts" % (k, dtype))
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            fail("tensor %s: bad shape %r" % (k, shape))
        if not (isinstance(offs, list) and len(offs) == 2
                and all(isinstance(o, int) and o >= 0 for o in offs)):
            fail("tensor %s: bad data_offsets %r" % (k, offs))
        entries.append((offs[0], offs[1], k, dtype, shape))
    entries.sort()
    tensors, spans, end = {}, {}, 0
    for b, e, k, dtype, shape in entries:
        if b != end or e < b:
            fail("tensor %s: data_offsets [%d, %d] leave a gap or overlap (previous end %d)"
                 % (k, b, e, end))
        if e > len(data):
            fail("tensor %s: data_offsets [%d, %d] run past the %d data bytes"
                 % (k, b, e, len(data)))
        if e - b != int(np.prod(shape, dtype=object)) * itemsize(dtype):
            fail("tensor %s: %d bytes for %s %s" % (k, e - b, dtype, shape))
        tensors[k] = np.frombuffer(data, NUMPY[dtype], (e - b) // itemsize(dtype), b).reshape(shape)
        spans[k] = (b, e)
        end = e
    if end != len(data):
        fail("the tensors cover %d of the %d data bytes" % (end, len(data)))
    return metadata, tensors, spans


def self_test():
    """The layouts the official library's own unit tests pin down, byte for byte."""
    f32 = np.arange(6, dtype="<f4").tobytes()
    got = serialize({"attn.0": ("F32", [1, 2, 3], f32)})
    want = (struct.pack("<Q", 64) + b'{"attn.0":{"dtype":"F32","shape":[1,2,3],'
            b'"data_offsets":[0,24]}}' + f32)
    assert got == want, "official layout of one F32 tensor"
    got = serialize({"attn0": ("F32", [1, 1, 2, 3], f32)})
    assert got[:8] == struct.pack("<Q", 72) and got[8 + 65:8 + 72] == b" " * 7, "space padding"
    assert serialize({}) == struct.pack("<Q", 8) + b"{}" + b" " * 6, "empty file"
    assert serialize({}, {"framework": "pt"}) == (struct.pack("<Q", 40)
                                                  + b'{"__metadata__":{"framework":"pt"}}'
                                                  + b" " * 5), "metadata only"
    # Mixed dtypes: int64 first (largest alignment), then by name.
    mixed = serialize({"b": ("F32", [1], b"\0" * 4), "a": ("F32", [1], b"\0" * 4),
                       "c": ("I64", [], b"\0" * 8)})
    _, _, spans = deserialize(mixed)
    assert spans == {"c": (0, 8), "a": (8, 12), "b": (12, 16)}, spans
    for bad in (mixed[:-1], mixed + b"\0", mixed[:7]):
        try:
            deserialize(bad)
        except FormatError:
            continue
        raise AssertionError("the reader accepted a damaged file")


# ---- fixtures ----------------------------------------------------------------------

def build_model():
    """The PyTorch model of INTEROP_TEXT with non-trivial parameters and statistics,
    the input and its eval-mode output (computed in float64 from the float32 state)."""
    torch.manual_seed(zlib.crc32(b"interop"))
    net, shape = netfile.build(INTEROP_TEXT)
    for i, m in enumerate(net.modules()):
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7 + i)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    x = torch.randn(BATCH, *shape)
    net64, _ = netfile.build(INTEROP_TEXT)
    net64 = net64.double()
    net64.load_state_dict({k: (v.double() if v.is_floating_point() else v)
                           for k, v in state.items()})
    with torch.no_grad():
        out = net64.eval()(x.double())
        out32 = net.eval()(x)
    worst = ((out32.double() - out).abs() / (TOL_OUT[0] + TOL_OUT[1] * out.abs())).max().item()
    assert worst <= 0.1, "float32 PyTorch uses %.3g of the tolerance" % worst
    return net, state, x, out


def main():
    torch.set_num_threads(1)  # reproducible reductions
    self_test()
    net, state, x, out = build_model()
    assert state["layers.1.num_batches_tracked"].dtype == torch.int64
    assert state["layers.1.num_batches_tracked"].dim() == 0
    blob = serialize(from_torch(state), {"format": "pt"})
    path = os.path.join(HERE, "torch_export.safetensors")
    with open(path, "wb") as f:
        f.write(blob)
    meta, back, _ = deserialize(blob, path)
    assert meta == {"format": "pt"} and set(back) == set(state)
    for k, v in state.items():
        assert np.array_equal(back[k], v.numpy()) and back[k].dtype == v.numpy().dtype, k
    print("torch_export.safetensors\n  %d tensors -> %d bytes" % (len(state), len(blob)))

    c = fixture.Case("torch_export", INTEROP_TEXT, 0)
    c.add("x", x).add("out", out)
    for k, v in state.items():
        c.add(k, v.double())
    c.add("tol", TOL_OUT)
    size = fixture.write(os.path.join(HERE, "interop.bin"), [c])
    print("interop.bin\n  -> %d bytes" % size)


def check_cnnlab(path):
    """Load a checkpoint written by cl_model_save into PyTorch; exit status 1 on failure."""
    with open(path, "rb") as f:
        blob = f.read()
    meta, tensors, spans = deserialize(blob, path)
    meta = meta or {}
    (n,) = struct.unpack_from("<Q", blob, 0)
    misaligned = [k for k, (b, _) in spans.items() if (8 + n + b) % tensors[k].dtype.itemsize]
    assert not misaligned, "%s: tensors not aligned to their element size: %s" % (path, misaligned)
    text = meta.get("cnnlab.model_text", INTEROP_TEXT)
    net, _ = netfile.build(text)
    sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()
          if not k.startswith("optimizer.")}
    result = net.load_state_dict(sd, strict=True)
    for k, v in net.state_dict().items():
        assert v.dtype == sd[k].dtype, "%s: %s in the file, %s in PyTorch" % (k, sd[k].dtype, v.dtype)
    skipped = sorted(k for k in tensors if k.startswith("optimizer."))
    print("%s: %d tensors (+ %s) loaded with load_state_dict(strict=True): %s"
          % (path, len(sd), ", ".join(skipped) or "no optimizer state", result))
    counts = {k: int(v) for k, v in sd.items() if k.endswith("num_batches_tracked")}
    print("  num_batches_tracked (int64): %s" % counts)
    if "test.eval_out" in meta:
        _, _, x, _ = build_model()
        want = torch.tensor([float(t) for t in meta["test.eval_out"].split()])
        with torch.no_grad():
            got = net.eval()(x).flatten()
        err = (got - want).abs().max().item()
        ok = torch.allclose(got, want, atol=TOL_OUT[0], rtol=TOL_OUT[1])
        print("  eval output vs cnnlab's: max abs err %.3g (%s)" % (err, "ok" if ok else "MISMATCH"))
        if not ok:
            sys.exit(1)
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-cnnlab":
        check_cnnlab(sys.argv[2])
    elif len(sys.argv) == 1:
        main()
    else:
        sys.exit("usage: gen_safetensors.py [--check-cnnlab FILE]")
