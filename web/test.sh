#!/usr/bin/env bash
# The browser test: builds the wasm demo, installs the pinned playwright-core and Debian's
# chromium if missing, and runs web/tests/e2e.mjs (which starts and stops its own server and
# browser). The lead's scripts/test calls this.
set -euo pipefail
cd "$(dirname "$0")"

# The browser-only code (bindings, wasm clock) is invisible to the native workspace clippy.
cargo clippy --release --target wasm32-unknown-unknown -p nanotensor-web --no-deps -- -D warnings
./build.sh

if [ ! -x /usr/bin/chromium ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
npm ci --no-audit --no-fund
node tests/e2e.mjs
