#!/usr/bin/env bash
# The browser test: builds the wasm demo (build.sh installs the wasm32 target and wasm-bindgen-cli
# if missing), lints the browser-only code for wasm32, installs Node.js, the pinned playwright-core
# and Debian's chromium if missing, and runs web/tests/e2e.mjs (which starts and stops its own
# server and browser). scripts/test calls this; so does `npm test` in web/.
set -euo pipefail
cd "$(dirname "$0")"

# First the build: it installs the wasm32 target that the lint below needs.
./build.sh
# The browser-only code (bindings, wasm clock) is invisible to the native workspace clippy.
cargo clippy --release --target wasm32-unknown-unknown -p nanotensor-web --no-deps -- -D warnings

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
[ -x /usr/bin/chromium ] || apt_install chromium
npm ci --no-audit --no-fund
node tests/e2e.mjs
