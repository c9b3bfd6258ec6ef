#!/usr/bin/env bash
# Element types side by side: GFLOP/s of `nanotensor matmul --backend blocked --dtype X` for
# f32, f64, bf16 (the default kernel and both bf16 paths forced), f16, next to numpy float64 and
# float32 and PyTorch bf16 `torch.mm`, per shape and thread count, round by round (interleaved),
# medians. Usage:
#   scripts/bench-dtypes.sh [--threads 1,2] [--rounds 3] [--shapes 256,512,1024,2048,decode]
# Installs torch and numpy (and threadpoolctl, to limit numpy's threads) into the git-ignored
# venv target/venv-torch when they are missing (the default torch wheel is large).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/venv-torch
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p target
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, numpy, threadpoolctl" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet torch numpy threadpoolctl
fi

cargo build --release --quiet -p nanotensor-cli
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow a current numpy on some machines here (see
# scripts/bench-vs-numpy.sh); they are unset for this command only.
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$VENV/bin/python" scripts/bench_dtypes.py --cli target/release/nanotensor "$@"
