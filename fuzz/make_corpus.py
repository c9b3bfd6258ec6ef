#!/usr/bin/env python3
"""Writes the small seed corpus of the fuzz targets under fuzz/corpus/<target>/seed-*.

GGUF files are written by hand from the format's layout (little-endian): magic "GGUF", u32
version, u64 tensor count, u64 metadata count, the metadata pairs (string key, u32 value type,
value), the tensor infos (string name, u32 rank, u64 dims fastest-first, u32 ggml type, u64
offset relative to the data), zero padding to the alignment (32), then the tensor data.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def arr(tag, items):
    return struct.pack("<IQ", tag, len(items)) + b"".join(items)


def gguf(kvs, tensors, data, version=3, align=32):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, tag, value in kvs:
        out += s(key) + struct.pack("<I", tag) + value
    for name, dims, ty, off in tensors:
        out += s(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ty, off)
    out += b"\0" * (-len(out) % align)
    return out + data


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# (name, id, values per block, bytes per block, offsets of f16 scale fields)
TYPES = [
    ("F32", 0, 1, 4, []), ("F16", 1, 1, 2, []), ("Q4_0", 2, 32, 18, [0]),
    ("Q4_1", 3, 32, 20, [0, 2]), ("Q5_0", 6, 32, 22, [0]), ("Q5_1", 7, 32, 24, [0, 2]),
    ("Q8_0", 8, 32, 34, [0]), ("Q8_1", 9, 32, 36, []), ("Q2_K", 10, 256, 84, [80, 82]),
    ("Q3_K", 11, 256, 110, [108]), ("Q4_K", 12, 256, 144, [0, 2]),
    ("Q5_K", 13, 256, 176, [0, 2]), ("Q6_K", 14, 256, 210, [208]), ("Q8_K", 15, 256, 292, []),
    ("IQ2_XXS", 16, 256, 66, []), ("IQ2_XS", 17, 256, 74, []), ("IQ3_XXS", 18, 256, 98, []),
    ("IQ1_S", 19, 256, 50, []), ("IQ4_NL", 20, 32, 18, []), ("IQ3_S", 21, 256, 110, []),
    ("IQ2_S", 22, 256, 82, []), ("IQ4_XS", 23, 256, 136, []), ("I8", 24, 1, 1, []),
    ("I16", 25, 1, 2, []), ("I32", 26, 1, 4, []), ("I64", 27, 1, 8, []), ("F64", 28, 1, 8, []),
    ("IQ1_M", 29, 256, 56, []), ("BF16", 30, 1, 2, []), ("TQ1_0", 34, 256, 54, []),
    ("TQ2_0", 35, 256, 66, []), ("MXFP4", 39, 32, 17, []), ("NVFP4", 40, 64, 36, []),
    ("Q1_0", 41, 128, 18, []),
]


def pattern(n):
    return bytes((37 * j + 11) & 0xFF for j in range(n))


def all_types():
    tensors, data = [], b""
    for name, ty, block, size, scales in TYPES:
        blk = bytearray(pattern(size))
        for k, at in enumerate(scales):
            blk[at:at + 2] = struct.pack("<H", 0x3C00 if k == 0 else 0x3800)
        if name == "Q8_K":
            blk[0:4] = struct.pack("<f", 0.25)
        tensors.append(("t." + name, [block], ty, len(data)))
        data += bytes(blk).ljust(-(-size // 32) * 32, b"\0")
    return gguf([("general.architecture", STRING, s("llama"))], tensors, data)


def main():
    write("gguf", "empty", gguf([], [], b""))
    write("gguf", "v2", gguf([("general.architecture", STRING, s("llama"))], [], b"", version=2))
    kvs = [
        ("general.architecture", STRING, s("llama")),
        ("general.alignment", U32, struct.pack("<I", 32)),
        ("llama.block_count", U32, struct.pack("<I", 1)),
        ("llama.context_length", U64, struct.pack("<Q", 64)),
        ("llama.rope.freq_base", F32, struct.pack("<f", 10000.0)),
        ("t.f64", F64, struct.pack("<d", 0.5)),
        ("t.i8", I8, struct.pack("<b", -2)),
        ("t.u8", U8, struct.pack("<B", 7)),
        ("t.i16", I16, struct.pack("<h", -300)),
        ("t.u16", U16, struct.pack("<H", 300)),
        ("t.i32", I32, struct.pack("<i", -5)),
        ("t.i64", I64, struct.pack("<q", -(1 << 40))),
        ("t.bool", BOOL, b"\x01"),
        ("tokenizer.ggml.tokens", ARRAY, arr(STRING, [s("<s>"), s("a"), s("Ġb")])),
        ("tokenizer.ggml.token_type", ARRAY, arr(I32, [struct.pack("<i", t) for t in (3, 1, 1)])),
        ("tokenizer.ggml.scores", ARRAY, arr(F32, [struct.pack("<f", t) for t in (0, -1, -2)])),
        ("t.nested", ARRAY, arr(ARRAY, [arr(U16, [b"\1\0", b"\2\0"])])),
    ]
    write("gguf", "metadata", gguf(kvs, [], b""))
    # Tensors: F32 [3,2] at 0; Q8_0 [32,2] at 32; Q4_1 [32] at 128; F16 [4] at 160; Q4_0 [32] at 192.
    data = struct.pack("<6f", 1, 2, 3, -4, 5.5, 0.25).ljust(32, b"\0")
    for d, q0 in ((0x3800, 1), (0x4000, -3)):
        data += struct.pack("<H", d) + bytes((q0 + j) & 0xFF for j in range(32))
    data = data.ljust(128, b"\0")
    data += struct.pack("<HH", 0x3400, 0x3C00) + b"\x21" * 16
    data = data.ljust(160, b"\0")
    data += struct.pack("<4H", 0x3C00, 0xC000, 0x3800, 0)
    data = data.ljust(192, b"\0")
    data += struct.pack("<H", 0x3C00) + bytes(range(16))
    tensors = [
        ("a", [3, 2], 0, 0),
        ("b", [32, 2], 8, 32),
        ("c", [32], 3, 128),
        ("d", [4], 1, 160),
        ("e", [32], 2, 192),
    ]
    write("gguf", "tensors", gguf(kvs[:5], tensors, data))

    # One tensor of one block of every ggml type (ids and geometry as in ggml-common.h): the
    # k-quants with finite scales (d = 1.0, dmin = 0.5 at their offsets), the rest patterned bytes.
    write("gguf", "all-types", all_types())
    # Raw-block inputs: the first byte picks the type (index into the reader's type list).
    for pick, name in ((8, "q2_k"), (12, "q6_k"), (13, "q8_k")):
        write("gguf", "raw-" + name, bytes([pick]) + pattern(2 * 292))

    # The tokenizer and quantize targets also read their input as a GGUF file.
    write("quantize", "gguf-tensors", gguf(kvs[:5], tensors, data))
    vocab = [
        ("tokenizer.ggml.model", STRING, s("gpt2")),
        ("tokenizer.ggml.pre", STRING, s("smollm")),
        ("tokenizer.ggml.tokens", ARRAY, arr(STRING, [s(t) for t in ("<s>", "a", "b", "Ġ", "ab", "Ġab")])),
        ("tokenizer.ggml.merges", ARRAY, arr(STRING, [s("a b"), s("Ġ ab")])),
        ("tokenizer.ggml.token_type", ARRAY, arr(I32, [struct.pack("<i", t) for t in (3, 1, 1, 1, 1, 1)])),
        ("tokenizer.ggml.bos_token_id", U32, struct.pack("<I", 0)),
    ]
    write("tokenizer", "gguf-vocab", gguf(vocab, [], b""))
    # A SentencePiece-style vocabulary: control and user-defined tokens, pieces with `▁`, scores,
    # and the 256 byte tokens.
    spm_tokens = ["<bos>", "<eos>", "\n", "▁", "a", "b", "ab", "▁ab", "é"]
    spm_tokens += ["<0x%02X>" % b for b in range(256)]
    spm_types = [3, 3, 4, 1, 1, 1, 1, 1, 1] + [6] * 256
    spm_scores = [0, 0, 0, -1, -2, -3, -0.5, -0.25, -4] + [0] * 256
    spm = [
        ("tokenizer.ggml.model", STRING, s("llama")),
        ("tokenizer.ggml.tokens", ARRAY, arr(STRING, [s(t) for t in spm_tokens])),
        ("tokenizer.ggml.scores", ARRAY, arr(F32, [struct.pack("<f", x) for x in spm_scores])),
        ("tokenizer.ggml.token_type", ARRAY, arr(I32, [struct.pack("<i", t) for t in spm_types])),
        ("tokenizer.ggml.bos_token_id", U32, struct.pack("<I", 0)),
        ("tokenizer.ggml.add_space_prefix", BOOL, b"\0"),
    ]
    write("tokenizer", "gguf-spm-vocab", gguf(spm, [], b""))
    # The SentencePiece half of the target: pieces separated by U+0001, a NUL, then the text.
    pieces = "he\x01hello\x01\u2581wor\x01 world\x01\U0001f642x"
    write("tokenizer", "spm-pieces", (pieces + "\0<s>hello  world\n\nna\u00efve \U0001f642 caf\u00e9</s>").encode())

    write("tokenizer", "english", "Hello, the thing in the tower isn't here: 123 4567!\n".encode())
    write("tokenizer", "unicode", "café naïve 日本語 🦀 \t\r\n  spaces".encode())

    write("quantize", "rows", bytes([7]) + struct.pack("<8f", 1, -2, 3.5, 0, 127, -63.5, 0.5, 1e-3))
    write("quantize", "tensor", bytes([2]) + struct.pack("<4f", 1e30, -1e-30, 2.5e-39, 6))

    # safetensors: u64 header length, JSON header, data section tiled by the tensors.
    def safetensors(header, data):
        h = header.encode()
        return struct.pack("<Q", len(h)) + h + data
    write("safetensors", "two-tensors", safetensors(
        '{"__metadata__":{"format":"pt"},'
        '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
        '"pos":{"dtype":"I64","shape":[1,3],"data_offsets":[16,40]}}',
        struct.pack("<4f", 1, 2, 3, 4) + struct.pack("<3q", 0, 1, 2)))
    write("safetensors", "empty", safetensors("{}", b""))
    write("safetensors", "f16", safetensors(
        '{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}', b"\0\x3c\0\x40\0\xc0"))


if __name__ == "__main__":
    main()
