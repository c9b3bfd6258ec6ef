#!/usr/bin/env python3
"""Generate random tokenizer test cases for Gemma 3 from llama.cpp's own tokenizer.

The reference is llama.cpp (vendored in the PyPI sdist `llama-cpp-python`, built from source by
pip), loading only the vocabulary of the GGUF file and tokenizing with special tokens parsed and
no BOS, as `llama-tokenize --no-bos` does. The output is a list of {"text", "ids"} used by
nanotensor-models/tests/tokenizer_gemma3.rs.

    python3 -m pip install llama-cpp-python==0.3.36
    python3 scripts/gen-gemma3-tokenizer-cases.py models/gemma-3-270m-q4_k_m.gguf \
        > tests/fixtures/gemma3/llamacpp_cases.json
"""
import json
import random
import sys

from llama_cpp import Llama


def main(path: str) -> None:
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    # Characters chosen to exercise the merge loop and its fallbacks: ASCII and non-ASCII
    # letters in several scripts, digits, punctuation, runs of spaces, tabs and newlines (which
    # Gemma has as user-defined tokens), CR (a byte token), NBSP and the ideographic space (not
    # escaped: only U+0020 becomes `▁`), emoji with a skin-tone modifier and a ZWJ sequence, a
    # combining mark, a zero-width space, private-use and unassigned-looking code points (byte
    # fallback), NUL and DEL, and whole control tokens and HTML-like user-defined tokens.
    pool = list(
        "abcXYZ éïñ日本語 한국어 Ωλ ١٢٣ ½ 0123456789 's 't \n\r\t   "
        " \u00a0\u3000 .,;:!?()[]{}\"'—–-_/\\<>| 🙂👍🏽🧑\u200d🚀 \u0301\u200b"
        "\ue000\U0010fffd\u0000\u007f"
    ) + [
        "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<table>", "</td>",
        "<start_of_image>", "<unused5>", "<start_of_turn", "user\n", "model\n",
    ]
    rng = random.Random(3)
    cases = []
    for _ in range(250):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        cases.append({"text": text, "ids": ids})
    json.dump(
        {
            "reference": "llama.cpp vendored in llama-cpp-python 0.3.36: "
            "Llama(vocab_only=True).tokenize(add_bos=False, special=True)",
            "cases": cases,
        },
        sys.stdout,
        ensure_ascii=False,
        indent=0,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
