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


if __name__ == "__main__":
    main()
