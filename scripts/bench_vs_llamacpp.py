#!/usr/bin/env python3
"""Table of scripts/bench-vs-llamacpp.sh: reads the raw outputs of one run directory, writes them
as JSON lines (one record per tool run and llama-bench test) and prints a markdown table of the
medians over rounds and the ratios nanotensor / llama.cpp. Standard library only.

Raw files, per round R, thread count T, nanotensor backend B and llama.cpp file type Q:
  rR-tT-B-Q.nanotensor.json   `nanotensor bench-model --json` (one object)
  rR-tT-B-Q.llamacpp.jsonl    `llama-bench -o jsonl` lines: the pp test (n_prompt > 0, n_gen 0)
                              and the tg test (n_gen > 0, n_prompt 0, n_depth = prompt length)
"""

import argparse
import glob
import json
import math
import os
import statistics


def load(runs):
    records = []
    for path in sorted(glob.glob(os.path.join(runs, "r*-t*-*"))):
        tag, _, kind = os.path.basename(path).partition(".")
        rnd, thr, backend, ftype = tag.split("-", 3)
        base = {
            "round": int(rnd[1:]),
            "threads": int(thr[1:]),
            "backend": backend,
            "file_type": ftype,
        }
        with open(path) as f:
            if kind == "nanotensor.json":
                records.append({**base, "tool": "nanotensor", "output": json.load(f)})
            elif kind == "llamacpp.jsonl":
                for line in f:
                    if line.strip():
                        records.append({**base, "tool": "llama.cpp", "output": json.loads(line)})
    return records


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else math.nan


def medians(records, threads, backend, ftype):
    key = (threads, backend, ftype)
    mine = [r for r in records if (r["threads"], r["backend"], r["file_type"]) == key]
    nt = [r["output"]["results"][0] for r in mine if r["tool"] == "nanotensor"]
    lc = [r["output"] for r in mine if r["tool"] == "llama.cpp"]
    return {
        "nt_pp": median([x["prefill_tokens_per_s"] for x in nt]),
        "nt_tg": median([x["decode_tokens_per_s"] for x in nt]),
        "nt_gbs": median([x.get("decode_gb_per_s") for x in nt]),
        "nt_frac": median([x.get("decode_bandwidth_fraction") for x in nt]),
        "lc_pp": median([x["avg_ts"] for x in lc if x["n_prompt"] > 0 and x["n_gen"] == 0]),
        "lc_tg": median([x["avg_ts"] for x in lc if x["n_gen"] > 0 and x["n_prompt"] == 0]),
    }


def num(x, digits=1):
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def ratio(a, b):
    return "—" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("runs", "out", "cpu", "date", "commit", "llama-cpp-python", "llama-env",
                 "threads", "pairs", "model"):
        p.add_argument(f"--{flag}", required=True)
    p.add_argument("--rounds", type=int, required=True)
    a = p.parse_args()

    records = load(a.runs)
    with open(a.out, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")

    print(f"Model: {a.model}. CPU: {a.cpu}. Date: {a.date}. nanotensor {a.commit}; llama.cpp vendored in "
          f"llama-cpp-python {a.llama_cpp_python} ({a.llama_env}).")
    print(f"Medians of {a.rounds} rounds, tokens/s. pp128: prefill of a 128-token prompt; tg64: "
          "64 decode steps after it. Ratio = nanotensor / llama.cpp (above 1: nanotensor faster).")
    print()
    print("| threads | nanotensor backend | llama.cpp file | pp128 nanotensor | pp128 llama.cpp "
          "| pp ratio | tg64 nanotensor | tg64 llama.cpp | tg ratio "
          "| nanotensor decode GB/s (share of read bandwidth) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in (int(x) for x in a.threads.split()):
        for pair in a.pairs.split():
            backend, ftype = pair.split(":", 1)
            m = medians(records, t, backend, ftype)
            share = "" if math.isnan(m["nt_frac"]) else f" ({100 * m['nt_frac']:.0f}%)"
            print(f"| {t} | {backend} | {ftype} | {num(m['nt_pp'])} | {num(m['lc_pp'])} "
                  f"| {ratio(m['nt_pp'], m['lc_pp'])} | {num(m['nt_tg'])} | {num(m['lc_tg'])} "
                  f"| {ratio(m['nt_tg'], m['lc_tg'])} | {num(m['nt_gbs'], 2)}{share} |")
    print()
    print(f"Raw measurements (JSON lines): {a.out}")


if __name__ == "__main__":
    main()
