#!/usr/bin/env bash
# Side-by-side sentence-embedding benchmark: `nanotensor embed` (blocked and int8 backends)
# against sentence-transformers + PyTorch on the CPU, on the same model directory
# (all-MiniLM-L6-v2) and the same corpus, interleaved round by round at each thread count;
# prints a markdown table of medians and ratios (nanotensor / PyTorch, above 1 = nanotensor
# faster) and the cosine between the two engines' embeddings of every sentence.
#
# Usage: scripts/bench-vs-pytorch.sh
# Env:
#   ROUNDS   rounds, each running every engine at every thread count once (default 3)
#   THREADS  thread counts, space-separated (default "1 2")
#   BACKENDS nanotensor backends (default "blocked int8")
#   NANOTENSOR_MINILM_MODEL / NANOTENSOR_MODELS_DIR   the model directory, as for the CLI;
#            fetched by scripts/fetch-model.sh minilm when missing.
#
# Corpus: 1,024 sentences of 6 to 48 words, each a run of consecutive words of
#   tests/fixtures/text/GPL-3 with start and length from a seeded RNG (scripts/bench_vs_pytorch.py
#   corpus), written to target/pytorch/corpus.txt.
#
# What is timed (per engine, thread count T, round):
#   PyTorch: one process sets OMP_NUM_THREADS, MKL_NUM_THREADS and torch.set_num_threads(T),
#     loads SentenceTransformer(model_dir, device='cpu'), runs encode(corpus, batch_size=32) once
#     untimed as warm-up, then times one more: tokenizing, batches of 32 padded to their longest
#     sentence (sentence-transformers sorts by length first), the encoder, mean pooling, L2.
#   nanotensor: `nanotensor embed --file corpus.txt --backend B --threads T --json`; its
#     `sentences_per_s` is sentences over the time from the loaded model to the last embedding:
#     tokenizing every sentence, the encoder over unpadded batches of up to 4,096 tokens, mean
#     pooling, L2 (model loading, reading the file and printing are outside). No warm-up run.
#   The order of the engines alternates between rounds so neither always follows the same one.
#
# Output: the table on stdout: the CPU's model name, family and model number, the date, torch
#   and sentence-transformers versions, per thread count the median sentences/s of each engine
#   and the ratios, the GFLOP/s each reaches on the encoder's weight products, and the min and
#   mean cosine over sentences (round 1, lowest thread count). Raw outputs (one JSON per run,
#   embeddings included) stay in target/pytorch/results/<date>/.
#
# Cache (under target/pytorch/, git-ignored, made only when missing): venv/ with torch and
#   sentence-transformers installed by pip. Delete it to reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root="$(pwd)"

ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
BACKENDS="${BACKENDS:-blocked int8}"
case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: ROUNDS must be a positive integer, got '$ROUNDS'" >&2
    exit 2
fi

cache="$repo_root/target/pytorch"
venv="$cache/venv"
helper="$repo_root/scripts/bench_vs_pytorch.py"
mkdir -p "$cache"

if ! "$venv/bin/python" -c 'import torch, sentence_transformers' 2>/dev/null; then
    echo "installing torch and sentence-transformers with pip into $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet torch sentence-transformers
fi

if [[ -n "${NANOTENSOR_MINILM_MODEL:-}" ]]; then
    model="$NANOTENSOR_MINILM_MODEL"
else
    model="${NANOTENSOR_MODELS_DIR:-$repo_root/models}/all-MiniLM-L6-v2"
    [[ -f "$model/model.safetensors" ]] || scripts/fetch-model.sh minilm >&2
fi
if [[ ! -f "$model/model.safetensors" ]]; then
    echo "error: model directory not found: $model" >&2
    exit 1
fi

cargo build --release --quiet -p nanotensor-cli
cli="$repo_root/target/release/nanotensor"

corpus="$cache/corpus.txt"
python3 "$helper" corpus --source tests/fixtures/text/GPL-3 --out "$corpus"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
runs="$cache/results/$stamp"
mkdir -p "$runs"
echo "raw outputs: $runs" >&2

run_pytorch() { # threads out
    OMP_NUM_THREADS="$1" MKL_NUM_THREADS="$1" TOKENIZERS_PARALLELISM=false \
        "$venv/bin/python" "$helper" pytorch --model "$model" --corpus "$corpus" \
        --threads "$1" --out "$2" 2>>"$runs/pytorch.log"
}
run_nanotensor() { # backend threads out
    "$cli" embed --model "$model" --file "$corpus" --backend "$1" --threads "$2" --json \
        >"$3" 2>>"$runs/nanotensor.log"
}

for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        echo "round $round/$ROUNDS, $t thread(s)" >&2
        if (( round % 2 )); then
            run_pytorch "$t" "$runs/r$round-t$t-pytorch.json"
        fi
        for backend in $BACKENDS; do
            run_nanotensor "$backend" "$t" "$runs/r$round-t$t-$backend.json"
        done
        if ! (( round % 2 )); then
            run_pytorch "$t" "$runs/r$round-t$t-pytorch.json"
        fi
    done
done

cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | sed 's/^[^:]*:[[:space:]]*//'; }
python3 "$helper" table --runs "$runs" --rounds "$ROUNDS" \
    --cpu "$(cpu_field 'model name') (family $(cpu_field 'cpu family'), model $(cpu_field 'model'))" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
