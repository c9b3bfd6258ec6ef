"""Element types side by side: nanotensor's blocked backend per dtype, numpy, PyTorch.

Run through scripts/bench-dtypes.sh, which prepares the environment. For each shape and thread
count, every column is measured once per round, in the same order each round (so all columns
see the same machine load), and the table gives the median GFLOP/s (2·m·n·k / median seconds)
over the rounds. Columns:

* nanotensor `matmul --backend blocked --dtype {f32, f64, bf16, f16}` (seeded random operands,
  preallocated output), each with the kernel the CLI reports; bf16 also with both of its
  paths forced through `NANOTENSOR_BF16` (`dot`: the AVX512-BF16 dot-product kernel, where the
  CPU has it; `convert`: widening into the f32 kernel);
* numpy `a @ b` in float64 and float32 (`np.matmul(a, b, out=c)`, the faster of the two);
* PyTorch `torch.mm(a, b, out=c)` in bfloat16 (and the plain call; the faster counts).

Decode shapes (`m = 1`, rows named `decode`) time `--prepared` on the nanotensor side (the
weight packed once, `linear` per call) and `x @ W.T` / `x @ B` for numpy and torch.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

SQUARES = {"256": 256, "512": 512, "1024": 1024, "2048": 2048}
DECODE = [("decode 1x576x1536", 1, 576, 1536), ("decode 1x2048x8192", 1, 2048, 8192)]

# A worker pool (OpenBLAS, OpenMP) that spins after a call takes a core from the next
# measurement on a 2-core machine; each measurement starts after this pause.
SETTLE_S = 0.3


def calls_for(flops):
    """Calls for about 0.3 s at ~100 GFLOP/s, between 3 and 300."""
    return int(max(3, min(300, 3e10 / max(flops, 1))))


def cpu_name():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, val = (s.strip() for s in line.split(":", 1))
                    fields.setdefault(key, val)
    except OSError:
        return platform.processor()
    return (f"{fields.get('model name', '?')} (vendor {fields.get('vendor_id', '?')}, "
            f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})")


def median_time(fns, calls):
    """The fastest variant's median time of `calls` calls (after one warm-up call each)."""
    best = None
    for f in fns:
        f()
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        best = med if best is None else min(best, med)
    return best


def time_numpy(dtype, m, k, n, calls):
    time.sleep(SETTLE_S)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.empty((m, n), dtype=dtype)
    fns = [lambda: np.matmul(a, b, out=c), lambda: a @ b]
    if m == 1:
        w = np.ascontiguousarray(b.T)
        fns.append(lambda: a @ w.T)
    return median_time(fns, calls)


def time_torch(m, k, n, calls):
    time.sleep(SETTLE_S)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(m, k, generator=g).to(torch.bfloat16)
    b = torch.randn(k, n, generator=g).to(torch.bfloat16)
    c = torch.empty(m, n, dtype=torch.bfloat16)
    fns = [lambda: torch.mm(a, b, out=c), lambda: torch.mm(a, b)]
    if m == 1:
        w = b.t().contiguous()
        fns.append(lambda: torch.mm(a, w.t()))
    with torch.inference_mode():
        return median_time(fns, calls)


def time_nanotensor(cli, dtype, m, k, n, threads, calls, bf16=None):
    time.sleep(SETTLE_S)
    cmd = [cli, "matmul", "--backend", "blocked", "--dtype", dtype, "--m", str(m), "--k", str(k),
           "--n", str(n), "--threads", str(threads), "--repeat", str(calls), "--json"]
    if m == 1:
        cmd.append("--prepared")
    env = dict(os.environ)
    env.pop("NANOTENSOR_BF16", None)
    if bf16:
        env["NANOTENSOR_BF16"] = bf16
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                    env=env).stdout)
    return float(out["seconds"]), out.get("kernel")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cli", required=True, help="path of the nanotensor binary")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default="256,512,1024,2048,decode")
    args = ap.parse_args()

    print(f"# CPU: {cpu_name()}; {os.cpu_count()} logical CPUs")
    print(f"# numpy {np.__version__}, torch {torch.__version__}; "
          f"{args.rounds} rounds, columns interleaved, median GFLOP/s")
    wanted = args.shapes.split(",")
    shapes = [(f"{s}^3", SQUARES[s], SQUARES[s], SQUARES[s]) for s in wanted if s in SQUARES]
    if "decode" in wanted:
        shapes += DECODE
    columns = [
        ("nt f32", lambda c, m, k, n, t: time_nanotensor(args.cli, "f32", m, k, n, t, c)),
        ("nt f64", lambda c, m, k, n, t: time_nanotensor(args.cli, "f64", m, k, n, t, c)),
        ("nt bf16", lambda c, m, k, n, t: time_nanotensor(args.cli, "bf16", m, k, n, t, c)),
        ("nt bf16 dot", lambda c, m, k, n, t:
            time_nanotensor(args.cli, "bf16", m, k, n, t, c, bf16="dot")),
        ("nt bf16 convert", lambda c, m, k, n, t:
            time_nanotensor(args.cli, "bf16", m, k, n, t, c, bf16="convert")),
        ("nt f16", lambda c, m, k, n, t: time_nanotensor(args.cli, "f16", m, k, n, t, c)),
        ("numpy f64", lambda c, m, k, n, t: (time_numpy(np.float64, m, k, n, c), None)),
        ("numpy f32", lambda c, m, k, n, t: (time_numpy(np.float32, m, k, n, c), None)),
        ("torch bf16", lambda c, m, k, n, t: (time_torch(m, k, n, c), None)),
    ]
    kernels = {}
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            for name, m, k, n in shapes:
                flops = 2.0 * m * n * k
                calls = calls_for(flops)
                times = {col: [] for col, _ in columns}
                for _ in range(args.rounds):
                    for col, run in columns:
                        s, kernel = run(calls, m, k, n, threads)
                        times[col].append(s)
                        if kernel:
                            kernels.setdefault(col, set()).add(kernel)
                g = {col: flops / statistics.median(ts) / 1e9 for col, ts in times.items()}
                rows.append((name, threads, g))
                print(f"  ... {name} t={threads}: " +
                      ", ".join(f"{c} {v:.1f}" for c, v in g.items()), file=sys.stderr,
                      flush=True)
    print()
    print("| shape | threads | " + " | ".join(col for col, _ in columns) +
          " | f64 / numpy f64 | bf16 / nt f32 |")
    print("|---|---|" + "---|" * (len(columns) + 2))
    for name, t, g in rows:
        cells = " | ".join(f"{g[col]:.1f}" for col, _ in columns)
        print(f"| {name} | {t} | {cells} | {g['nt f64'] / g['numpy f64']:.2f}x "
              f"| {g['nt bf16'] / g['nt f32']:.2f}x |")
    print()
    for col, names in kernels.items():
        print(f"# {col}: kernel {', '.join(sorted(names))}")


if __name__ == "__main__":
    main()
