#!/usr/bin/env python3
"""Interleaved before/after comparison of two `nanotensor` binaries on the same machine.

Usage: scripts/bench_before_after.py BEFORE_BIN AFTER_BIN [ROUNDS]

Runs `bench-model` (blocked and int8, 1 and 2 threads, KV cache on) and `matmul` (1024^3 and the
prepared 1x576x49152 LM-head product on the blocked backend) with each binary, alternating which
goes first round by round, and prints the medians and after/before ratios as a Markdown table.
The model comes from $NANOTENSOR_MODELS_DIR or <repo>/models (scripts/fetch-model.sh).
"""
import json
import os
import statistics
import subprocess
import sys


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bins = {"before": sys.argv[1], "after": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    cases = []
    for backend in ["blocked", "int8"]:
        for t in ["1", "2"]:
            args = ["bench-model", "--backend", backend, "--threads", t, "--kv-cache", "on",
                    "--repeat", "1", "--json"]
            cases.append((f"bench-model {backend} t{t}", args, "model"))
    for t in ["1", "2"]:
        cases.append((f"matmul 1024^3 t{t}",
                      ["matmul", "--backend", "blocked", "--m", "1024", "--k", "1024", "--n", "1024",
                       "--threads", t, "--repeat", "20", "--json"], "gflops"))
        cases.append((f"matmul 1x576x49152 prepared t{t}",
                      ["matmul", "--backend", "blocked", "--m", "1", "--k", "576", "--n", "49152",
                       "--prepared", "--threads", t, "--repeat", "200", "--json"], "gflops"))
    results: dict = {}
    for r in range(rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for name, args, kind in cases:
            for who in order:
                out = subprocess.run([bins[who]] + args, capture_output=True, text=True,
                                     check=True).stdout
                report = json.loads(out.strip().splitlines()[-1])
                if kind == "model":
                    row = report["results"][0]
                    values = {"prefill tok/s": row["prefill_tokens_per_s"],
                              "decode tok/s": row["decode_tokens_per_s"]}
                else:
                    values = {"GFLOP/s": report["gflops"]}
                for metric, x in values.items():
                    results.setdefault((name, metric), {}).setdefault(who, []).append(x)
    print("| case | metric | before (median) | after (median) | after/before |")
    print("|---|---|---|---|---|")
    for (name, metric), d in results.items():
        b, a = statistics.median(d["before"]), statistics.median(d["after"])
        print(f"| {name} | {metric} | {b:.1f} | {a:.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
