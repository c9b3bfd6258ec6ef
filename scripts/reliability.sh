#!/usr/bin/env bash
# Reliability checks of NanoTensor (issue 9), called by scripts/test:
#   1. fuzzing (cargo-fuzz / libFuzzer): GGUF and safetensors readers, tokenizer, quantizer, bounded time each;
#      every target also asserts that a GGUF file the reader accepts is self-consistent (element
#      counts, byte sizes and offsets recomputed with checked arithmetic), so a size that wraps
#      is a crash, not just a wrong number;
#   2. Miri: the core crate's unit tests, the GGUF reader's tests and the portable kernel paths
#      of the backends;
#   3. AddressSanitizer: the backends' tests (SIMD kernels, drivers, conformance, properties);
#   4. the bad-input suite's "backend not compiled in" case on each single-backend build.
# (The property tests, the CLI bad-input suite and the concurrency test are ordinary cargo tests
# that scripts/test runs with the rest.)
# Installs what it needs (nightly components, cargo-fuzz). Exits non-zero on any failure.
#
# Environment: FUZZ_SECONDS (default 120 per target, so 6 minutes for the three);
# RELIABILITY_SKIP="fuzz miri asan" to skip steps locally (never in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Each step's wall time goes into the summary (CI's time budget is checked against it).
times=()
step_name=""
step_start=$SECONDS
step() {
  if [[ -n $step_name ]]; then times+=("$((SECONDS - step_start)) s  $step_name"); fi
  step_name="$*"
  step_start=$SECONDS
  printf '\n== reliability: %s\n' "$*"
}
skipped() { [[ " ${RELIABILITY_SKIP:-} " == *" $1 "* ]]; }
start=$SECONDS
summary=()

# One dated nightly and one cargo-fuzz version, so that every machine fuzzes, runs Miri and builds
# with AddressSanitizer on the same compiler (a floating `nightly` changes under CI from one day
# to the next). NANOTENSOR_NIGHTLY overrides the toolchain locally.
NIGHTLY=${NANOTENSOR_NIGHTLY:-nightly-2026-10-30}
CARGO_FUZZ_VERSION=0.13.2
step "nightly toolchain ($NIGHTLY), miri, rust-src, cargo-fuzz $CARGO_FUZZ_VERSION"
rustup toolchain install "$NIGHTLY" --profile minimal --component miri,rust-src
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
cargo "+$NIGHTLY" fuzz --version

# ---------------------------------------------------------------------------------------------
if ! skipped fuzz; then
  step "fuzz: build the targets"
  (cd fuzz && cargo "+$NIGHTLY" fuzz build -O)
  # Corpus directories libFuzzer grows are scratch copies; the committed seeds stay as they are.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  for target in gguf safetensors tokenizer quantize; do
    secs=${FUZZ_SECONDS:-120}
    step "fuzz: $target for ${secs}s"
    mkdir -p "$work/$target"
    cp fuzz/corpus/"$target"/seed-* "$work/$target/"
    log="$work/$target.log"
    # -malloc_limit_mb: any single allocation above 16 MB is a crash. Inputs are at most 64 KB,
    # so that is 256 times the file: a reader that sizes a buffer by a header's claimed count
    # instead of by the bytes really present trips it. -rss_limit_mb bounds the whole process.
    if ! (cd fuzz && cargo "+$NIGHTLY" fuzz run -O "$target" "$work/$target" -- \
          -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=16 \
          -print_final_stats=1 -artifact_prefix="$ROOT/fuzz/artifacts/$target-" ) >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "FAIL: fuzz target $target crashed (reproducer under fuzz/artifacts/)" >&2
      exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(ls "$work/$target" | wc -l)
    echo "fuzz $target: ${execs:-?} executions in ${secs}s, no crash (corpus $corpus inputs)"
    summary+=("fuzz $target: ${execs:-?} executions, 0 crashes")
  done
fi

# ---------------------------------------------------------------------------------------------
if ! skipped miri; then
  step "miri: core unit tests (nanotensor-core --lib)"
  # Deterministic floats: Miri otherwise perturbs transcendental results and NaN payloads on purpose,
  # which exact-value tests (hand-computed logs, NaN bit patterns) rightly reject.
  export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation -Zmiri-deterministic-floats"
  log=$(mktemp)
  cargo "+$NIGHTLY" miri test -p nanotensor-core --lib 2>&1 | tee "$log"
  n=$(grep -o '^test result: ok. [0-9]* passed' "$log" | grep -o '[0-9]* passed' | awk '{s+=$1} END {print s+0}')
  summary+=("miri nanotensor-core --lib: $n tests passed")

  step "miri: the GGUF and safetensors readers and dequantizers (nanotensor-models --lib, gguf:: safetensors:: tests)"
  # The models crate's one unsafe block maps the file (Miri cannot run mmap; the tests read from
  # memory). What Miri adds there is the reader's slicing and size arithmetic on hostile headers
  # and the block decoders. The rest of the crate is safe code whose arithmetic goes through the
  # backends, whose unsafe kernels the next step checks directly: running the whole model suite
  # in the interpreter took over an hour for no extra coverage of unsafe code.
  cargo "+$NIGHTLY" miri test -p nanotensor-models --lib -- gguf:: safetensors:: 2>&1 | tee "$log"
  n=$(grep -o '^test result: ok. [0-9]* passed' "$log" | grep -o '[0-9]* passed' | awk '{s+=$1} END {print s+0}')
  summary+=("miri nanotensor-models --lib gguf::: $n tests passed")

  step "miri: portable kernel paths (nanotensor-backends --lib, kernel tests)"
  # Under cfg(miri) every kernel `detect()` picks the portable kernel (Miri cannot run SIMD
  # intrinsics); the `kernel::` filter selects the microkernel, softmax and exp tests of the
  # blocked, int8 and flash backends (`blocked::kernel::tests`, ...). Tests that go through the
  # worker pool's threads are left out here; the ASan step runs them.
  # `int8::gemm::tests` adds a small product through the shared GEMM loop nest (its raw view of
  # C, edge tiles, several depth blocks) on one thread.
  cargo "+$NIGHTLY" miri test -p nanotensor-backends --lib --all-features -- kernel:: int8::gemm::tests 2>&1 | tee "$log"
  n=$(grep -o '^test result: ok. [0-9]* passed' "$log" | grep -o '[0-9]* passed' | awk '{s+=$1} END {print s+0}')
  summary+=("miri nanotensor-backends kernels: $n tests passed")
  rm -f "$log"
fi

# ---------------------------------------------------------------------------------------------
if ! skipped asan; then
  step "asan: backend tests (SIMD kernels, drivers, conformance, properties) under AddressSanitizer"
  log=$(mktemp)
  # The kernel unit tests run every SIMD kernel the CPU has (AVX-512, AVX2, portable) on odd
  # shapes; the drivers' unit tests, the conformance suite and the property tests then reach the
  # same kernels through packing, edge tiles, strided attention views and the thread pool, which
  # is where an out-of-bounds pointer would come from. An explicit --target keeps the sanitizer
  # flags off build scripts and proc macros; std itself is not rebuilt (no -Zbuild-std): our code
  # is instrumented, which is what the check is for, and it saves rebuilding std in CI.
  RUSTFLAGS="-Zsanitizer=address" \
    cargo "+$NIGHTLY" test --target x86_64-unknown-linux-gnu --target-dir target/asan \
    -p nanotensor-backends --all-features --lib --test conformance --test properties 2>&1 | tee "$log"
  n=$(grep -o '^test result: ok. [0-9]* passed' "$log" | grep -o '[0-9]* passed' | awk '{s+=$1} END {print s+0}')
  summary+=("asan nanotensor-backends (lib, conformance, properties): $n tests passed")
  rm -f "$log"
fi

# ---------------------------------------------------------------------------------------------
step "bad input: a backend left out of the build is refused by name (single-backend builds)"
# The bad-input suite's not-compiled-in case, on the builds scripts/test's "each backend feature
# alone" step made (so the binaries are not rebuilt): each must refuse all the others, naming the
# feature that would enable them.
backends=$(./scripts/backends.sh)
n_backends=$(wc -w <<<"$backends")
for f in $backends; do
  log=$(mktemp)
  cargo test --quiet -p nanotensor-cli --no-default-features --features "$f" --test bad_input \
    -- --exact a_backend_not_compiled_in_is_named_with_its_feature --nocapture 2>&1 | tee "$log"
  n=$(grep -c 'backend not compiled in' "$log" || true)
  # The quant feature brings blocked with it (quant's f32 path and thread pool are blocked's).
  want=$((n_backends - 1))
  [[ $f == quant ]] && want=$((n_backends - 2))
  if [[ $n -ne $want ]]; then
    echo "FAIL: the $f-only build refused $n other backends, expected $want" >&2
    exit 1
  fi
  summary+=("$f-only build: $(grep 'backend not compiled in' "$log" | sed 's/^ *//' | paste -sd ';' -)")
  rm -f "$log"
done

step "summary ($((SECONDS - start)) s in all)"
for line in "${times[@]}"; do echo "  $line"; done
for line in "${summary[@]}"; do echo "  $line"; done
