#!/usr/bin/env bash
# The main job of NanoTensor, end to end on this machine: build the release CLI and show why naive
# code is slow and how the fast paths fix it, on synthetic tensors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p nanotensor-cli
bin=target/release/nanotensor

echo "== matmul 256³: the naive scar against the float64 reference"
"$bin" matmul --backend naive --m 256 --k 256 --n 256 --repeat 3 --check

echo
echo "== attention, 4 heads of 64, N=1024, causal (naive materialises the 4×1024×1024 scores)"
"$bin" attention --backend naive --seq-len 1024 --head-dim 64 --heads 4 --causal --repeat 1 --check

echo
echo "== attention at N=100,000: the naive path refuses before allocating"
if "$bin" attention --backend naive --seq-len 100000 --head-dim 64 --heads 1; then
  echo "unexpected: the naive path accepted N=100,000" >&2
  exit 1
fi
echo "(refused as it should: exit status 2)"
