#!/usr/bin/env python3
"""Writes tests/fixtures/dequant/: raw GGUF blocks of each dequantizable type with the f32 values
gguf-py (the `gguf` package, pinned below) decodes them to.

Run it in a git-ignored venv:

    python3 -m venv target/venv-gguf
    target/venv-gguf/bin/pip install gguf==0.19.0 numpy
    target/venv-gguf/bin/python scripts/make-dequant-fixtures.py

Blocks are random bytes from a fixed seed, except the scale fields (`d`, `m`, `dmin`), which
are set to finite binary16 values: mostly realistic magnitudes (1e-4 .. 1e-1, either sign), plus
one block per file with edge scales (a subnormal, the largest finite binary16, a negative value).
Plain F32/F16/BF16 values are random finite bit patterns plus signed zeros, subnormals and the
largest finite value. File format and the list of files: tests/fixtures/dequant/README.md.
"""
import importlib.metadata
import os
import struct
import sys

import numpy as np

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

GGUF_VERSION = "0.19.0"
SEED = 20261030
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "dequant")

# Byte offsets of the binary16 scale fields in one block (ggml-common.h block structs).
SCALES = {
    T.Q4_0: [0], T.Q5_0: [0], T.Q8_0: [0],
    T.Q4_1: [0, 2], T.Q5_1: [0, 2],
    T.Q2_K: [80, 82],   # scales[16], qs[64], d, dmin
    T.Q3_K: [108],      # hmask[32], qs[64], scales[12], d
    T.Q4_K: [0, 2],     # d, dmin, scales[12], qs[128]
    T.Q5_K: [0, 2],     # d, dmin, scales[12], qh[32], qs[128]
    T.Q6_K: [208],      # ql[128], qh[64], scales[16], d
}
# Blocks per file: small files, yet several blocks so block boundaries are exercised.
N_BLOCKS = {T.F32: 256, T.F16: 256, T.BF16: 256, T.Q8_K: 6}
N_BLOCKS.update({t: 16 for t in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0)})
N_BLOCKS.update({t: 6 for t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K)})

EDGE_F16 = [0x0001, 0x03FF, 0x7BFF, 0xFBFF, 0x8001, 0x0400]  # subnormals, ±max, smallest normal


def realistic_f16(rng):
    mag = 10.0 ** rng.uniform(-4, -1)
    return np.float16(mag if rng.random() < 0.8 else -mag).view(np.uint16)


def finite_bits(rng, n, bits, exp_mask):
    """n random `bits`-wide patterns whose exponent field (exp_mask) is not all ones: those
    that are (infinities, NaNs) get the top exponent bit cleared."""
    dtype = {16: np.uint16, 32: np.uint32}[bits]
    x = rng.integers(0, 1 << bits, size=n, dtype=np.uint64).astype(dtype)
    top = 1 << (bits - 2)  # the highest exponent bit, below the sign
    x[(x & exp_mask) == exp_mask] &= dtype(~top & ((1 << bits) - 1))
    return x


def plain(qtype, rng, n):
    if qtype == T.F32:
        x = finite_bits(rng, n, 32, 0x7F800000)
        x[:6] = [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x3F800000]
    elif qtype == T.F16:
        x = finite_bits(rng, n, 16, 0x7C00)
        x[:6] = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0x3C00]
    else:  # BF16
        x = finite_bits(rng, n, 16, 0x7F80)
        x[:6] = [0x0000, 0x8000, 0x0001, 0x807F, 0x7F7F, 0x3F80]
    return x.astype("<u" + str(x.dtype.itemsize)).tobytes()


def quantized(qtype, rng, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype == T.Q8_K:
        # f32 d; gguf-py has no Q8_K decoder (see below), realistic magnitudes only.
        for b in blocks:
            b[0:4] = np.frombuffer(struct.pack("<f", 10.0 ** rng.uniform(-5, -1)), np.uint8)
        return blocks.tobytes()
    for i, b in enumerate(blocks):
        for k, at in enumerate(SCALES[qtype]):
            # The last block takes edge scales, the others realistic ones.
            h = EDGE_F16[(i + k) % len(EDGE_F16)] if i == n_blocks - 1 else realistic_f16(rng)
            b[at:at + 2] = np.frombuffer(struct.pack("<H", int(h)), np.uint8)
    return blocks.tobytes()


def q8_k_reference(raw):
    """gguf-py 0.19.0 has no Q8_K dequantizer; Q8_K is `x = d·q` with an f32 `d` followed by
    256 int8 quants and 16 int16 sums (unused), so it is computed here directly in float32."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, 292)
    d = blocks[:, 0:4].copy().view("<f4")
    q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * q).astype(np.float32).reshape(-1)


def main():
    found = importlib.metadata.version("gguf")
    if found != GGUF_VERSION:
        sys.exit(f"gguf {GGUF_VERSION} is required, found {found}")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]
    total = 0
    for qtype in types:
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        n_blocks = N_BLOCKS[qtype]
        n_values = n_blocks * block_size
        raw = plain(qtype, rng, n_values) if block_size == 1 else quantized(qtype, rng, n_blocks)
        assert len(raw) == n_blocks * type_size
        if qtype == T.Q8_K:
            values = q8_k_reference(raw)
        else:
            # Two rows, so gguf-py's row handling is exercised too.
            rows = np.frombuffer(raw, np.uint8).reshape(2, -1)
            values = dequantize(rows, qtype).astype(np.float32, copy=False).reshape(-1)
        assert values.shape == (n_values,) and np.isfinite(values).all(), qtype.name
        path = os.path.join(OUT, qtype.name + ".bin")
        with open(path, "wb") as f:
            f.write(b"NTDQ" + struct.pack("<III", int(qtype), n_values, len(raw)))
            f.write(raw)
            f.write(values.astype("<f4").tobytes())
        total += os.path.getsize(path)
        print(f"{qtype.name:5} {n_blocks:4} blocks, {n_values:5} values -> {os.path.relpath(path)}")
    # gguf-py's own block-size table, to check the reader's geometry against a second source.
    with open(os.path.join(OUT, "sizes.txt"), "w") as f:
        f.write("# name id block_size type_size, from gguf-py %s GGML_QUANT_SIZES\n" % GGUF_VERSION)
        for qtype, (bs, ts) in sorted(GGML_QUANT_SIZES.items(), key=lambda kv: int(kv[0])):
            f.write(f"{qtype.name} {int(qtype)} {bs} {ts}\n")
    print(f"{total} bytes of fixtures")


if __name__ == "__main__":
    sys.exit(main())
