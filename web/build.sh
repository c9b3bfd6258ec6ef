#!/usr/bin/env bash
# Builds the browser demo into web/pkg and web/pkg-relaxed: the wasm module (release, simd128;
# and simd128 + relaxed SIMD) and its JS glue.
# Installs what it needs: the wasm32 target, and wasm-bindgen-cli at exactly the version the
# crate pins (the CLI refuses modules made by another version of the crate).
set -euo pipefail
cd "$(dirname "$0")"

version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"$/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build.sh: no exact wasm-bindgen pin in web/Cargo.toml" >&2; exit 1; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$version" ]; then
  echo "build.sh: installing wasm-bindgen-cli $version"
  cargo install wasm-bindgen-cli --version "$version" --locked
fi

# Run from web/ so cargo reads web/.cargo/config.toml (-C target-feature=+simd128).
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rm -rf pkg pkg-relaxed

# Two modules: SIMD128 for every engine, and SIMD128 + relaxed SIMD (fused multiply-add in the
# f32 microkernel) for engines that validate it; worker.js picks at run time. The second build
# has its own target directory so the two never invalidate each other.
cargo build --release --target wasm32-unknown-unknown -p nanotensor-web
wasm-bindgen --target web --no-typescript --out-dir pkg \
  "$target_dir/wasm32-unknown-unknown/release/nanotensor_web.wasm"

CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release --target wasm32-unknown-unknown -p nanotensor-web --target-dir "$target_dir/wasm-relaxed"
wasm-bindgen --target web --no-typescript --out-dir pkg-relaxed \
  "$target_dir/wasm-relaxed/wasm32-unknown-unknown/release/nanotensor_web.wasm"

echo "build.sh: built $(du -h pkg/nanotensor_web_bg.wasm | cut -f1) into web/pkg and web/pkg-relaxed; serve with: python3 -m http.server -d web 8000"
