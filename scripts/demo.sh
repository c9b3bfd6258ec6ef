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

echo
echo "== the model: SmolLM2-135M-Instruct (fetched once into models/, sha256-checked)"
./scripts/fetch-model.sh
echo "-- greedy continuation, streamed as it is generated (fastest backend compiled in)"
"$bin" generate --prompt "Once upon a time" --max-tokens 48

echo
echo "== speed per backend: prefill of a 128-token prompt, 64 decode steps, KV cache on and off"
for b in blocked int8; do
  "$bin" bench-model --backend "$b" || echo "(skipped $b: see the error above)"
  echo
done
echo "-- the naive scar, on a shorter run (16-token prompt, 8 decode steps): its KV-off decode at"
echo "   the full size would take over half an hour"
"$bin" bench-model --backend naive --prompt-tokens 16 --decode-tokens 8
