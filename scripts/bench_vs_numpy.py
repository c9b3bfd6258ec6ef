"""Side-by-side matmul throughput: numpy (OpenBLAS) vs `nanotensor matmul --json`.

Run through scripts/bench-vs-numpy.sh, which prepares the environment. For every shape and
thread count it times numpy's matmul and the nanotensor CLI back to back (so both see the same
machine load), repeats that for several rounds, and prints the median GFLOP/s of each and their
ratio. GFLOP/s = 2·m·n·k / median seconds.

Decode shapes (m = 1) use prepared weights on the nanotensor side (`--prepared`: the weight is
packed once by `prepare`, then `linear` runs per repetition); numpy gets the faster of
`x @ B` (B row-major k×n) and `x @ W.T` (W row-major n×k), so the comparison is conservative.

`--int8` adds the int8 backend next to blocked f32 (issue #4): for each thread count, 1024³ with
both operands quantized per call (`matmul`), 1024³ and the decode LM head with the weight
quantized once (`--prepared`: activations are still quantized per call), each int8 run
interleaved with the blocked run of the same mode. GOP/s counts 2·m·n·k integer operations.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

SHAPES = [
    # name, m, k, n, prepared
    ("square256", 256, 256, 256, False),
    ("square512", 512, 512, 512, False),
    ("square1024", 1024, 1024, 1024, False),
    ("square2048", 2048, 2048, 2048, False),
    ("decode_ffn", 1, 576, 1536, True),
    ("decode_lmhead", 1, 576, 49152, True),
    ("prefill", 128, 576, 1536, True),
    # B not prepared, as a library user calls matmul: skinny products stream B where it lies.
    ("lmhead_unprepared", 1, 576, 49152, False),
    ("ffn8_unprepared", 8, 576, 1536, False),
    ("ffn16_unprepared", 16, 576, 1536, False),
    ("prefill_unprepared", 128, 576, 1536, False),
]

# The int8 comparison (`--int8`): name, m, k, n, prepared.
INT8_SHAPES = [
    ("square1024 per-call", 1024, 1024, 1024, False),
    ("square1024 prepared", 1024, 1024, 1024, True),
    ("decode_lmhead prepared", 1, 576, 49152, True),
]


def repeats_for(m, k, n):
    """Enough repetitions for ~0.3 s per measurement at ~200 GFLOP/s, between 5 and 300."""
    flops = 2.0 * m * n * k
    return int(max(5, min(300, 6e10 / max(flops, 1))))


# OpenBLAS's worker threads busy-wait for a while after each call before they sleep. On a
# 2-core machine a spinning numpy worker takes a core from the nanotensor run that follows it
# (measured here: nanotensor at 2 threads fell from ~427 to ~190 GFLOP/s at 1024^3), so every
# measurement starts after a pause that lets the other side's threads park.
SETTLE_S = 0.3


def time_numpy(m, k, n, prepared, repeat):
    time.sleep(SETTLE_S)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    # The CLI writes into one preallocated output, as an SGEMM benchmark does; numpy gets the
    # same (`out=`) and also the plain `a @ b`, and its faster variant counts.
    c = np.empty((m, n), dtype=np.float32)
    variants = [lambda: np.matmul(a, b, out=c), lambda: a @ b]
    if prepared:
        w = np.ascontiguousarray(b.T)  # [n, k], as a weight is stored
        variants += [lambda: np.matmul(a, w.T, out=c), lambda: a @ w.T]
    best = None
    for f in variants:
        f()
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        best = med if best is None else min(best, med)
    return best


def time_nanotensor(cli, backend, m, k, n, prepared, threads, repeat):
    time.sleep(SETTLE_S)
    cmd = [cli, "matmul", "--backend", backend, "--m", str(m), "--k", str(k), "--n", str(n),
           "--threads", str(threads), "--repeat", str(repeat), "--json"]
    if prepared:
        cmd.append("--prepared")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cli", required=True, help="path of the nanotensor binary")
    ap.add_argument("--backend", default="blocked")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default=",".join(s[0] for s in SHAPES))
    ap.add_argument("--int8", action="store_true",
                    help="also time int8 against blocked f32 (1024^3 per call and prepared, LM head)")
    ap.add_argument("--naive", action="store_true",
                    help="also time the naive backend at 1024^3 once (takes ~4 s)")
    args = ap.parse_args()

    info = threadpool_info()
    for lib in info:
        print(f"# numpy {np.__version__}: {lib.get('internal_api')} {lib.get('version')} "
              f"architecture={lib.get('architecture')} threading={lib.get('threading_layer')} "
              f"max_threads={lib.get('num_threads')}")
    wanted = set(args.shapes.split(","))
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        with threadpool_limits(limits=threads):
            for name, m, k, n, prepared in SHAPES:
                if name not in wanted:
                    continue
                rep = repeats_for(m, k, n)
                np_s, nt_s = [], []
                for _ in range(args.rounds):
                    np_s.append(time_numpy(m, k, n, prepared, rep))
                    nt_s.append(time_nanotensor(args.cli, args.backend, m, k, n, prepared,
                                                threads, rep))
                flops = 2.0 * m * n * k
                g_np = flops / statistics.median(np_s) / 1e9
                g_nt = flops / statistics.median(nt_s) / 1e9
                rows.append((f"{name} {m}x{k}x{n}", threads, g_np, g_nt, g_nt / g_np))
                r = rows[-1]
                print(f"  ... {r[0]} t={threads}: numpy {g_np:.1f}, nanotensor {g_nt:.1f}",
                      file=sys.stderr, flush=True)
    print()
    print(f"| shape | threads | numpy GFLOP/s | nanotensor {args.backend} GFLOP/s | ratio |")
    print("|---|---|---|---|---|")
    for shape, t, g_np, g_nt, ratio in rows:
        print(f"| {shape} | {t} | {g_np:.1f} | {g_nt:.1f} | {ratio:.2f}x |")
    if args.int8:
        int8_rows = []
        for threads in [int(t) for t in args.threads.split(",")]:
            for name, m, k, n, prepared in INT8_SHAPES:
                rep = repeats_for(m, k, n)
                f_s, q_s = [], []
                for _ in range(args.rounds):
                    f_s.append(time_nanotensor(args.cli, "blocked", m, k, n, prepared, threads, rep))
                    q_s.append(time_nanotensor(args.cli, "int8", m, k, n, prepared, threads, rep))
                ops = 2.0 * m * n * k
                g_f = ops / statistics.median(f_s) / 1e9
                g_q = ops / statistics.median(q_s) / 1e9
                int8_rows.append((f"{name} {m}x{k}x{n}", threads, g_f, g_q, g_q / g_f))
                print(f"  ... int8 {name} t={threads}: blocked {g_f:.1f}, int8 {g_q:.1f}",
                      file=sys.stderr, flush=True)
        print()
        print("| shape | threads | blocked f32 GFLOP/s | int8 GOP/s | int8 / blocked |")
        print("|---|---|---|---|---|")
        for shape, t, g_f, g_q, ratio in int8_rows:
            print(f"| {shape} | {t} | {g_f:.1f} | {g_q:.1f} | {ratio:.2f}x |")
    if args.naive:
        s_naive = time_nanotensor(args.cli, "naive", 1024, 1024, 1024, False, 1, 1)
        s_blk = time_nanotensor(args.cli, args.backend, 1024, 1024, 1024, False, 1, 10)
        g = 2.0 * 1024 ** 3 / 1e9
        print(f"\nnaive 1024^3: {g / s_naive:.2f} GFLOP/s; {args.backend} (1 thread): "
              f"{g / s_blk:.1f} GFLOP/s; speed-up {s_naive / s_blk:.0f}x")


if __name__ == "__main__":
    main()
