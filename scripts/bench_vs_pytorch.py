"""Sentence embeddings side by side: sentence-transformers + PyTorch vs `nanotensor embed`.

Run through scripts/bench-vs-pytorch.sh, which prepares the environment and interleaves the
runs. Three sub-commands:

  corpus   writes the deterministic corpus: N sentences of MIN..MAX words, each a run of
           consecutive words of a text file, start and length drawn from a seeded RNG.
  pytorch  loads the sentence-transformers directory on the CPU with T threads, encodes the
           corpus once untimed (warm-up), then times one `encode(corpus, batch_size=32)` and
           writes the speed and the vectors as JSON.
  table    gathers the raw JSON of every run and prints the markdown table: medians over
           rounds, nanotensor / PyTorch ratios, the GFLOP/s each engine reaches, and the cosine
           between PyTorch's and each nanotensor backend's embeddings of every sentence.

The GFLOP/s figure counts the encoder's weight products only: per token and layer
2·(384·1152 + 384·384 + 2·384·1536) operations (QKV, attention output, the two FFN matrices),
six layers, about 21.2 MFLOP per token, over the corpus's real tokens (PyTorch also computes on
the padding of each batch, which is not counted).
"""

import argparse
import glob
import json
import math
import os
import random
import statistics
import sys
import time

FLOP_PER_TOKEN = 6 * 2 * (384 * 1152 + 384 * 384 + 2 * 384 * 1536)


def cmd_corpus(a):
    with open(a.source, encoding="utf-8") as f:
        words = f.read().split()
    rng = random.Random(a.seed)
    lines = []
    for _ in range(a.n):
        length = rng.randint(a.min_words, a.max_words)
        start = rng.randrange(len(words) - length)
        lines.append(" ".join(words[start : start + length]))
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line.strip()]


def cmd_pytorch(a):
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    corpus = read_corpus(a.corpus)
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(corpus, batch_size=32)  # warm-up, untimed
    t0 = time.perf_counter()
    emb = model.encode(corpus, batch_size=32)
    seconds = time.perf_counter() - t0
    out = {
        "tool": "pytorch",
        "threads": a.threads,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "sentences": len(corpus),
        "seconds": seconds,
        "sentences_per_s": len(corpus) / seconds,
    }
    out["embeddings"] = emb.tolist()
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


def cosine(x, y):
    ab = sum(p * q for p, q in zip(x, y))
    aa = sum(p * p for p in x)
    bb = sum(q * q for q in y)
    return ab / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 0.0


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def round_of(path):
    return int(os.path.basename(path).split("-")[0][1:])


def cmd_table(a):
    runs = {}  # (threads, engine) -> [records]
    for path in sorted(glob.glob(os.path.join(a.runs, "r*-t*-*.json")), key=round_of):
        name = os.path.basename(path)[: -len(".json")]
        _, t, engine = name.split("-", 2)
        runs.setdefault((int(t[1:]), engine), []).append(load(path))
    # Accuracy from round 1 at the lowest thread count (every run writes its embeddings).
    t0 = min(t for t, _ in runs)
    ref = runs[(t0, "pytorch")][0]
    versions = f"torch {ref['torch']}, sentence-transformers {ref['sentence_transformers']}"
    tokens = None
    cos = {}
    for engine in ("blocked", "int8"):
        if (t0, engine) not in runs:
            continue
        nt = runs[(t0, engine)][0]
        tokens = nt["tokens"]
        cs = [cosine(x, y) for x, y in zip(ref["embeddings"], nt["embeddings"])]
        if len(cs) != len(ref["embeddings"]):
            sys.exit(f"error: {engine} gave {len(cs)} embeddings, PyTorch {len(ref['embeddings'])}")
        cos[engine] = (min(cs), statistics.fmean(cs))

    def med(t, engine):
        recs = runs.get((t, engine), [])
        return statistics.median(r["sentences_per_s"] for r in recs) if recs else None

    def gflops(sps):
        return sps * tokens / ref["sentences"] * FLOP_PER_TOKEN / 1e9

    print(f"CPU: {a.cpu}; {a.date}; commit {a.commit}; {versions}")
    print(
        f"Corpus: {ref['sentences']} sentences, {tokens} tokens; medians of {a.rounds} "
        f"interleaved rounds; sentences/s (GFLOP/s of the weight products, "
        f"{FLOP_PER_TOKEN / 1e6:.1f} MFLOP per token)."
    )
    print()
    print("| threads | PyTorch | blocked | blocked / PyTorch | int8 | int8 / PyTorch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t in sorted({t for t, _ in runs}):
        p = med(t, "pytorch")
        cells = [str(t), f"{p:.1f} ({gflops(p):.1f})"]
        for engine in ("blocked", "int8"):
            v = med(t, engine)
            if v is None:
                cells += ["–", "–"]
            else:
                cells += [f"{v:.1f} ({gflops(v):.1f})", f"{v / p:.2f}×"]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Cosine between PyTorch's and nanotensor's embedding of each sentence:")
    print()
    print("| backend | min cosine | mean cosine |")
    print("|---|---:|---:|")
    for engine, (lo, mean) in cos.items():
        print(f"| {engine} | {lo:.6f} | {mean:.6f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("--source", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=int, default=1024)
    c.add_argument("--min-words", type=int, default=6)
    c.add_argument("--max-words", type=int, default=48)
    c.add_argument("--seed", type=int, default=22)
    t = sub.add_parser("pytorch")
    t.add_argument("--model", required=True)
    t.add_argument("--corpus", required=True)
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--out", required=True)
    b = sub.add_parser("table")
    for name in ("runs", "cpu", "date", "commit", "rounds"):
        b.add_argument("--" + name, required=True)
    a = p.parse_args()
    {"corpus": cmd_corpus, "pytorch": cmd_pytorch, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()
