#!/usr/bin/env bash
# Prints the backend cargo features of nanotensor-backends, one line, space-separated: the
# registry's list as Cargo sees it (a unit test keeps the registry and the features equal).
# Scripts loop over this instead of naming backends.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "nanotensor-backends")
print(" ".join(sorted(f for f in pkg["features"] if f != "default")))
'
