#!/bin/bash
# On-CPU cost per token of the int8 model on one thread, robust to other jobs on a shared
# machine: differences of `bench-model` runs (128 vs 16 prompt tokens; 72 vs 8 decoded tokens),
# each measured with `perf stat -e task-clock`.
#
#   scripts/int8-model-oncpu.sh [BIN] [int8 flags...]
#   scripts/int8-model-oncpu.sh target/release/nanotensor --int8-weights per-row --int8-activations per-block-16
set -euo pipefail
bin=${1:-target/release/nanotensor}
shift || true
tc() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | grep task-clock | cut -d, -f1; }
run() { tc "$bin" bench-model --backend int8 --kv-cache on --threads 1 --repeat 3 "$@"; }
a=$(run --prompt-tokens 128 --decode-tokens 8 "$@")
b=$(run --prompt-tokens 16 --decode-tokens 8 "$@")
c=$(run --prompt-tokens 16 --decode-tokens 72 "$@")
python3 -c "
pre = ($a - $b) / 3 / 112
dec = ($c - $b) / 3 / 64
print('prefill %.3f ms/token (%.0f tok/s per core), decode %.3f ms/token (%.0f tok/s per core)'
      % (pre, 1000 / pre, dec, 1000 / dec))"
