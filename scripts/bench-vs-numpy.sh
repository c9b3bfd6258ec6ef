#!/usr/bin/env bash
# Side-by-side matmul benchmark: numpy (OpenBLAS) vs `nanotensor matmul --json`, per shape and
# thread count, with the ratio. Usage:
#   scripts/bench-vs-numpy.sh [--threads 1,2] [--rounds 3] [--shapes square1024,decode_ffn] [--naive]
# Installs numpy and threadpoolctl into bench-out/venv (git-ignored) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=bench-out/venv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p bench-out
    # Reuse a system numpy when there is one; pip fills in whatever is missing.
    python3 -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import numpy, threadpoolctl" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet numpy threadpoolctl
fi

cargo build --release --quiet -p nanotensor-cli
CLI=target/release/nanotensor

# Some machines here set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (older OpenBLAS builds misbehave
# on their CPU); both slow a current numpy, so they are unset for this command only. The script
# prints the kernel OpenBLAS then reports through threadpoolctl.
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$VENV/bin/python" scripts/bench_vs_numpy.py --cli "$CLI" "$@"
