#!/usr/bin/env bash
# Side-by-side model benchmark: `nanotensor bench-model` against llama.cpp's `llama-bench` on the
# same weights, interleaved round by round, at each thread count; prints a markdown table of
# medians and ratios (nanotensor / llama.cpp, above 1 = nanotensor faster).
#
# Usage:
#   scripts/bench-vs-llamacpp.sh              build what is missing, then benchmark
#   scripts/bench-vs-llamacpp.sh --build-only build llama.cpp and the model files, then stop
# Env:
#   ROUNDS   rounds, each running every pair at every thread count once (default 5)
#   THREADS  thread counts, space-separated (default "1 2")
#   MODEL    smollm2 (default: SmolLM2-135M-Instruct, Q4_1) or gemma3-270m (Gemma 3 270M,
#            Q4_K_M): the source file both tools start from; fetched by scripts/fetch-model.sh
#            when missing.
#   PAIRS    space-separated `backend:TYPE` pairs (default "blocked:F32 int8:Q8_0"). TYPE is a
#            llama-quantize type name; the llama.cpp file of that type is made from the source
#            model with `llama-quantize --allow-requantize`, except the source's own type (Q4_1,
#            Q4_K_M), which is the source file itself: the same file for both tools. A later
#            pair is one more word, e.g. PAIRS="... quant:Q4_1". A backend may carry a weight
#            type for `bench-model --dtype` after an `@`: `blocked@bf16:BF16` runs the blocked
#            backend with bf16 weights against llama.cpp's BF16 file.
#            A backend this build of nanotensor does not have is skipped with a warning.
#   NANOTENSOR_MODEL / NANOTENSOR_MODELS_DIR   the SmolLM2 model, as for the CLI
#            ($NANOTENSOR_GEMMA3_MODEL for Gemma 3).
#   LLAMA_CPP_PYTHON_VERSION   the llama-cpp-python sdist whose vendored llama.cpp is built
#            (default 0.3.36)
#   OMP_WAIT_POLICY   passed on to llama-bench (its threads are OpenMP's) and shown with the
#            table. Unset, libgomp spins at each barrier for a while before sleeping: fastest on
#            an idle machine, but on a loaded one a descheduled thread stalls the others at each
#            of the hundreds of barriers of a decode step, and multi-threaded llama.cpp loses
#            most of its speed; `passive` sleeps at once. nanotensor's pool is less exposed (tasks
#            go to whichever thread claims them, so a descheduled worker just takes fewer). Set it
#            for runs on a shared machine and say so next to the figures.
#
# What is compared (both tools, per thread count T):
#   prefill, "pp128": nanotensor `bench-model --prompt-tokens 128` times one batched forward of a
#     128-token prompt from an empty KV cache, logits of the last token only, plus the greedy
#     pick of the first token; tok/s = 128 / that time. llama-bench `-p 128 -n 0` times one
#     128-token batch from an empty cache (random token ids, last-token logits); tok/s = 128 /
#     time.
#   decode, "tg64": nanotensor `--decode-tokens 64` times the 64 single-token steps that follow
#     the prompt (positions 128..191, KV cache on, logits + greedy pick each step); tok/s = 64 /
#     time. llama-bench `-p 0 -n 64 -d 128` fills the cache with 128 tokens untimed, then times
#     64 single-token steps at positions 128..191 (logits each step, random next ids). Plain
#     `-n 64` would decode at positions 0..63, a shorter context than nanotensor's.
#   Both tools do one untimed warm-up before timing (llama-bench by default, nanotensor with
#   `--warmup 1`) and run one repetition per round (`-r 1`, `--repeat 1`); the table shows the
#   median over rounds. Weights: nanotensor loads the Q4_1 file (the backend dequantizes or
#   requantizes it at load: blocked keeps f32, int8 quantizes to int8); llama.cpp runs the
#   requantized file of the paired type, so both start from the same Q4_1 values. Other
#   llama-bench settings keep their defaults (batch 2048 / micro-batch 512, so the prompt is one
#   batch; flash attention auto; the file memory-mapped).
#
# Output: the table on stdout (scripts/bench_vs_llamacpp.py): the CPU's model name, family and
#   model number, the date, and per thread count and pair the median pp128 and tg64 of both
#   tools, their ratios, and nanotensor's decode traffic in GB/s with its share of the read
#   bandwidth measured in the same bench-model run (`decode_gb_per_s`,
#   `decode_bandwidth_fraction`). Raw outputs stay in target/llamacpp/results/<date>/ (one file
#   per tool run, plus both tools' stderr logs) and are gathered as JSON lines, one record per
#   nanotensor run and per llama-bench test (round, threads, backend, file type, tool, and the
#   tool's own JSON), in target/llamacpp/results/<date>.jsonl.
#
# Cache (all under target/llamacpp/, git-ignored, each made only when missing): venv/ (cmake
#   installed with pip), the sdist and its vendored llama.cpp under src/, build/bin/llama-bench
#   and llama-quantize (Release, GGML_NATIVE=ON, only those two targets, no tests, examples,
#   server or HTTPS download support; static libraries so the binaries stand alone; AMX
#   kernels compiled out where a probe shows AMX faulting, see below), and the requantized model
#   files under models/. Delete a piece to rebuild it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root="$(pwd)"

ROUNDS="${ROUNDS:-5}"
THREADS="${THREADS:-1 2}"
PAIRS="${PAIRS:-blocked:F32 int8:Q8_0}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
PROMPT_TOKENS=128
DECODE_TOKENS=64
MODEL="${MODEL:-smollm2}"
# The model file nanotensor reads and its type; a pair of this type uses the file unchanged.
case "$MODEL" in
    smollm2)
        SOURCE_TYPE=Q4_1
        model_stem="SmolLM2-135M-Instruct"
        model_name="$model_stem.$SOURCE_TYPE.gguf"
        model_env="${NANOTENSOR_MODEL:-}"
        ;;
    gemma3-270m)
        SOURCE_TYPE=Q4_K_M
        model_stem="gemma-3-270m"
        model_name="gemma-3-270m-q4_k_m.gguf"
        model_env="${NANOTENSOR_GEMMA3_MODEL:-}"
        ;;
    *)
        echo "error: MODEL must be smollm2 or gemma3-270m, not '$MODEL'" >&2
        exit 2
        ;;
esac

build_only=0
case "${1:-}" in
    "") ;;
    --build-only) build_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: ROUNDS must be a positive integer, got '$ROUNDS'" >&2
    exit 2
fi

cache="$repo_root/target/llamacpp"
venv="$cache/venv"
src="$cache/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
mkdir -p "$cache"

# GGML_NATIVE=ON compiles llama.cpp's AMX matmul kernels when the CPU lists AMX. Some virtual
# machines list AMX but fault on its tile instructions (the kernel grants the tile state, yet
# `tilezero` raises SIGILL), and llama-bench then dies in its first quantized product. A
# ten-line C probe runs those instructions; when they fault, the AMX kernels are compiled out
# (-mno-amx-*, the rest of -march=native stays) and the build directory says so.
amx_flags=""
amx_tag=""
amx_note="AMX kernels as -march=native gives them"
if grep -qw amx_tile /proc/cpuinfo; then
    probe_dir="$cache/amx-probe"
    mkdir -p "$probe_dir"
    cat >"$probe_dir/probe.c" <<'CEOF'
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Requests the AMX tile state (as llama.cpp does), configures one tile and zeroes it. */
int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 1;
    struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; }
        __attribute__((packed, aligned(64))) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1; cfg.colsb[0] = 64; cfg.rows[0] = 16;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_release();
    return 0;
}
CEOF
    amx_rc=$( (cc -O1 -mamx-tile "$probe_dir/probe.c" -o "$probe_dir/probe" &&
        "$probe_dir/probe"; echo $?) 2>/dev/null | tail -n 1 )
    if [[ "$amx_rc" != 0 ]]; then
        amx_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
        amx_tag="-noamx"
        amx_note="AMX kernels compiled out: AMX faults on this machine"
        echo "note: this CPU lists AMX but its tile instructions fail here (probe status" \
            "$amx_rc); llama.cpp is built without its AMX kernels" >&2
    fi
fi
build="$cache/build-$LLAMA_CPP_PYTHON_VERSION$amx_tag"
bench_bin="$build/bin/llama-bench"
quantize_bin="$build/bin/llama-quantize"

# ---- llama.cpp -----------------------------------------------------------------------------

if [[ ! -x "$venv/bin/cmake" ]]; then
    echo "installing cmake with pip into $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet cmake
fi

if [[ ! -f "$src/CMakeLists.txt" ]]; then
    echo "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist ..." >&2
    # Only this package is taken as source; pip prepares its metadata with wheels of its build
    # tools (building cmake itself from source would take longer than llama.cpp).
    "$venv/bin/python" -m pip download --quiet --no-deps \
        --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" \
        -d "$cache/sdist"
    tarball="$cache/sdist/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    mkdir -p "$cache/src"
    tar -xzf "$tarball" -C "$cache/src" --wildcards \
        "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/*"
fi

if [[ ! -x "$bench_bin" || ! -x "$quantize_bin" ]]; then
    echo "building llama-bench and llama-quantize (2 jobs) ..." >&2
    t0=$(date +%s)
    log="$cache/cmake-build.log"
    # LLAMA_OPENSSL=OFF: the model downloader's HTTPS support (which replaced the CURL option,
    # now deprecated and ignored) is not needed to read local files. The compiler's output
    # (thousands of warning lines from the intrinsics headers) goes to the log, whose tail is
    # shown if the build fails.
    if ! { "$venv/bin/cmake" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
            -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
            -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON \
            -DCMAKE_C_FLAGS="$amx_flags" -DCMAKE_CXX_FLAGS="$amx_flags" &&
        "$venv/bin/cmake" --build "$build" --config Release -j2 \
            --target llama-bench llama-quantize; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "error: the llama.cpp build failed; full log: $log" >&2
        exit 1
    fi
    echo "llama.cpp build took $(( $(date +%s) - t0 )) s (log: $log)" >&2
fi

# ---- model files ---------------------------------------------------------------------------

if [[ -n "$model_env" ]]; then
    source_model="$model_env"
else
    source_model="${NANOTENSOR_MODELS_DIR:-$repo_root/models}/$model_name"
    [[ -f "$source_model" ]] || scripts/fetch-model.sh "$MODEL" >&2
fi
if [[ ! -f "$source_model" ]]; then
    echo "error: model not found: $source_model" >&2
    exit 1
fi

# Prints the llama.cpp file of a pair's TYPE: the source itself, or its requantization, made
# once into the cache.
llama_file() {
    local type="$1"
    if [[ "$type" == "$SOURCE_TYPE" ]]; then
        echo "$source_model"
        return
    fi
    local out="$cache/models/$model_stem.$type.gguf"
    if [[ ! -f "$out" ]]; then
        mkdir -p "$cache/models"
        echo "making $out with llama-quantize ..." >&2
        if ! "$quantize_bin" --allow-requantize "$source_model" "$out.partial" "$type" \
            >"$cache/quantize-$type.log" 2>&1; then
            tail -n 20 "$cache/quantize-$type.log" >&2
            echo "error: llama-quantize to $type failed" >&2
            rm -f "$out.partial"
            exit 1
        fi
        mv -f "$out.partial" "$out"
    fi
    echo "$out"
}

# ---- the pairs -----------------------------------------------------------------------------

cargo build --release --quiet -p nanotensor-cli
cli="$repo_root/target/release/nanotensor"
# The backends of this build, from the CLI's help ("... (compiled in: a, b, c)").
compiled=" $("$cli" matmul --help | sed -n 's/.*compiled in: \([^)]*\)).*/\1/p' | tr -d ',') "

pairs=()
for pair in $PAIRS; do
    backend="${pair%%:*}"
    backend="${backend%%@*}"
    type="${pair#*:}"
    if [[ "$pair" != *:* || -z "$backend" || -z "$type" ]]; then
        echo "error: PAIRS entry '$pair' is not backend:TYPE" >&2
        exit 2
    fi
    if [[ "$compiled" != *" $backend "* ]]; then
        echo "warning: skipping $pair: no backend '$backend' in this build (compiled in:$compiled)" >&2
        continue
    fi
    llama_file "$type" >/dev/null
    pairs+=("$pair")
done
if [[ ${#pairs[@]} -eq 0 ]]; then
    echo "error: no pair to run" >&2
    exit 2
fi
if [[ $build_only == 1 ]]; then
    exit 0
fi

# ---- the runs ------------------------------------------------------------------------------

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
runs="$cache/results/$stamp"
mkdir -p "$runs"
echo "raw outputs: $runs" >&2

run_nanotensor() { # backend[@dtype] threads out
    local dtype=f32
    if [[ "$1" == *@* ]]; then dtype="${1#*@}"; fi
    "$cli" bench-model --model "$source_model" --backend "${1%%@*}" --dtype "$dtype" --threads "$2" \
        --prompt-tokens "$PROMPT_TOKENS" --decode-tokens "$DECODE_TOKENS" --kv-cache on \
        --repeat 1 --warmup 1 --json >"$3" 2>>"$runs/nanotensor.log"
}
run_llamacpp() { # file threads out
    # Two processes: llama-bench applies its depth to every test of a run, and only the decode
    # test should start after a prompt-length context.
    {
        "$bench_bin" -m "$1" -t "$2" -r 1 -o jsonl -p "$PROMPT_TOKENS" -n 0
        "$bench_bin" -m "$1" -t "$2" -r 1 -o jsonl -p 0 -n "$DECODE_TOKENS" -d "$PROMPT_TOKENS"
    } >"$3" 2>>"$runs/llama-bench.log"
}

for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        for pair in "${pairs[@]}"; do
            backend="${pair%%:*}"
            type="${pair#*:}"
            file="$(llama_file "$type")"
            base="$runs/r$round-t$t-$backend-$type"
            echo "round $round/$ROUNDS, $t thread(s): nanotensor $backend vs llama.cpp $type" >&2
            # Alternate which tool goes first, so neither always follows the same one.
            if (( round % 2 )); then
                run_nanotensor "$backend" "$t" "$base.nanotensor.json"
                run_llamacpp "$file" "$t" "$base.llamacpp.jsonl"
            else
                run_llamacpp "$file" "$t" "$base.llamacpp.jsonl"
                run_nanotensor "$backend" "$t" "$base.nanotensor.json"
            fi
        done
    done
done

# ---- the table -----------------------------------------------------------------------------

cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | sed 's/^[^:]*:[[:space:]]*//'; }
python3 scripts/bench_vs_llamacpp.py --runs "$runs" --out "$cache/results/$stamp.jsonl" \
    --cpu "$(cpu_field 'model name') (family $(cpu_field 'cpu family'), model $(cpu_field 'model'))" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --llama-cpp-python "$LLAMA_CPP_PYTHON_VERSION" --rounds "$ROUNDS" --threads "$THREADS" \
    --llama-env "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}, $amx_note" \
    --pairs "${pairs[*]}" --model "$model_name"
