#!/usr/bin/env python3
"""Make the dequantisation fixtures in tests/reference/dequant/<TYPE>.json.

The reference is llama.cpp's gguf-py (`pip install gguf`):
`gguf.quants.dequantize(bytes, qtype)`. For each type the fixture holds a few
cases, each with the raw block bytes and gguf-py's f32 output, both as
lowercase hex (the f32 values as little-endian bytes, so they compare
bitwise with no decimal round trip):

    {"type": "Q4_K", "id": 12, "gguf_py": "0.x", "cases": [
        {"name": "...", "n": 512, "bytes": "<hex>", "expected_f32le": "<hex>"}, ...]}

Cases:
  random     random block bytes, with every f16 scale field overwritten by a
             random finite f16 bit pattern (normal, subnormal, zero, either
             sign), so no NaN/inf appears; the last block has every quant
             byte 0xff.
  quantized  gguf-py's own quantize() of random normal floats (types where
             gguf-py can quantize).
  <model>    the first blocks of the first tensor of that type in a real
             model file, if the file exists (see MODELS below).

Q8_K has no gguf-py dequantizer; its expected values are computed here with
numpy as ggml's dequantize_row_q8_K does (y = d * q, in f32).

Run from anywhere; deterministic (fixed seed). Re-running without the model
files drops the model cases.
"""

import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant")
MODELS = {
    "smollm2-135m-instruct": "~/.cache/entmin/models/smollm2-135m-instruct/model.gguf",
    "qwen2.5-coder-0.5b-instruct": "~/.cache/entmin/models/qwen2.5-coder-0.5b-instruct/model.gguf",
}

# type -> (offsets of f16 scale fields inside a block, random blocks)
K = 256
TYPES = {
    T.F32: ([], 0),
    T.F16: ([], 0),
    T.BF16: ([], 0),
    T.Q4_0: ([0], 6),
    T.Q4_1: ([0, 2], 6),
    T.Q5_0: ([0], 6),
    T.Q5_1: ([0, 2], 6),
    T.Q8_0: ([0], 6),
    T.IQ4_NL: ([0], 6),
    T.Q2_K: ([80, 82], 2),
    T.Q3_K: ([108], 2),
    T.Q4_K: ([0, 2], 2),
    T.Q5_K: ([0, 2], 2),
    T.Q6_K: ([208], 2),
    T.Q8_K: ([], 2),  # f32 d at 0, handled below
    T.IQ4_XS: ([0], 2),
}
QUANTIZABLE = {T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
SCALAR_ELEMENTS = 64  # elements in the F32/F16/BF16 random case
MODEL_ELEMENTS = {1: 64, 32: 128, 256: 256}  # elements per model case, by block size


def finite_f16_bits(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    # exponent 0x1f is inf/NaN: clear its top exponent bit instead
    bad = (bits & 0x7C00) == 0x7C00
    bits[bad] &= np.uint16(0xBFFF)
    return bits


def sizes(qtype):
    if qtype == T.Q8_K:  # gguf-py agrees with ggml here
        return K, 4 + K + K // 8
    return gguf.GGML_QUANT_SIZES[qtype]


def reference(qtype, raw):
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if qtype == T.Q8_K:
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:4 + K].copy().view(np.int8).astype(np.float32)
        return (d * q).astype(np.float32).reshape(-1)
    if qtype == T.BF16:
        raw = raw.reshape(1, -1)
    return np.asarray(dequantize(raw, qtype), dtype=np.float32).reshape(-1)


def case(name, qtype, raw):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    y = reference(qtype, raw)
    be, bb = sizes(qtype)
    assert len(raw) % bb == 0 and y.size == len(raw) // bb * be, (qtype.name, name)
    assert np.all(np.isfinite(y)) or qtype in (T.F32, T.F16, T.BF16), (qtype.name, name)
    return {
        "name": name,
        "n": int(y.size),
        "bytes": raw.tobytes().hex(),
        "expected_f32le": y.astype("<f4").tobytes().hex(),
    }


def random_case(rng, qtype):
    if qtype == T.F32:
        bits = rng.integers(0, 1 << 32, size=SCALAR_ELEMENTS, dtype=np.uint64).astype(np.uint32)
        bits[(bits & 0x7F800000) == 0x7F800000] &= np.uint32(0xBFFFFFFF)  # no inf/NaN
        bits[:4] = [0, 0x80000000, 0x00000001, 0x3F800000]
        return case("random", qtype, bits.astype("<u4").view(np.uint8))
    if qtype == T.F16:
        bits = finite_f16_bits(rng, SCALAR_ELEMENTS)
        bits[:4] = [0, 0x8000, 0x0001, 0x7BFF]  # +0, -0, smallest subnormal, max
        return case("random", qtype, bits.astype("<u2").view(np.uint8))
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, size=SCALAR_ELEMENTS, dtype=np.uint32).astype(np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] &= np.uint16(0xBFFF)
        bits[:4] = [0, 0x8000, 0x0001, 0x3F80]
        return case("random", qtype, bits.astype("<u2").view(np.uint8))
    offsets, n_blocks = TYPES[qtype]
    _, bb = sizes(qtype)
    blocks = rng.integers(0, 256, size=(n_blocks + 1, bb), dtype=np.uint16).astype(np.uint8)
    blocks[-1, :] = 0xFF
    if qtype == T.Q8_K:
        d = (rng.standard_normal(n_blocks + 1) * 1e-2).astype("<f4")
        blocks[:, 0:4] = d.view(np.uint8).reshape(-1, 4)
    for off in offsets:
        bits = finite_f16_bits(rng, n_blocks + 1).astype("<u2")
        blocks[:, off:off + 2] = bits.view(np.uint8).reshape(-1, 2)
    return case("random", qtype, blocks)


def quantized_case(rng, qtype):
    x = rng.standard_normal(4 * 32).astype(np.float32).reshape(4, 32)
    x[1] *= 1e-3
    x[2] += 2.0  # asymmetric: exercises the min of Q4_1 / Q5_1
    q = quantize(x, qtype)
    return case("quantized", qtype, np.asarray(q).view(np.uint8))


def model_cases():
    out = {}
    for model, path in MODELS.items():
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            print(f"skipping {model}: {path} not found", file=sys.stderr)
            continue
        reader = gguf.GGUFReader(path)
        seen = set()
        for t in reader.tensors:
            qtype = T(t.tensor_type)
            if qtype in seen or qtype not in TYPES:
                continue
            seen.add(qtype)
            be, bb = sizes(qtype)
            nbytes = MODEL_ELEMENTS[be] // be * bb
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)[:nbytes]
            name = f"{model}:{t.name}[..{MODEL_ELEMENTS[be]}]"
            out.setdefault(qtype, []).append(case(name, qtype, raw))
    return out


def main():
    rng = np.random.default_rng(20240611)
    os.makedirs(OUT_DIR, exist_ok=True)
    from_models = model_cases()
    total = 0
    for qtype in TYPES:
        cases = [random_case(rng, qtype)]
        if qtype in QUANTIZABLE:
            cases.append(quantized_case(rng, qtype))
        cases += from_models.get(qtype, [])
        doc = {
            "type": qtype.name,
            "id": int(qtype),
            "gguf_py": getattr(gguf, "__version__", None) or _dist_version(),
            "cases": cases,
        }
        path = os.path.join(OUT_DIR, f"{qtype.name}.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{qtype.name:7} {len(cases)} cases {size:6} bytes")
    print(f"total {total} bytes")


def _dist_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    main()
