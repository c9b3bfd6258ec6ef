#!/usr/bin/env python3
"""Generate random tokenizer test cases for SmolLM2 from an independent implementation.

The vocabulary and merges are read from the GGUF file with the `gguf` package; the reference
tokenizer is Hugging Face `tokenizers` configured as SmolLM2's own tokenizer.json is
(pre-tokenizer: Digits(individual_digits) then ByteLevel with the GPT-2 regex; control tokens
0-16 as added special tokens). The output is a list of {"text", "ids"} used by
nanotensor-models/tests/tokenizer_smollm2.rs.

    python3 -m pip install gguf==0.19.0 tokenizers==0.23.3
    python3 scripts/gen-tokenizer-cases.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
        > tests/fixtures/smollm2/hf_cases.json
"""
import json
import random
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers


def main(path: str) -> None:
    fields = GGUFReader(path).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ")) for m in fields["tokenizer.ggml.merges"].contents()]
    types = fields["tokenizer.ggml.token_type"].contents()
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    )
    # Characters chosen to exercise every branch of the pre-tokenizer: ASCII and non-ASCII
    # letters (Ll, Lu, Lo), numbers (Nd in two scripts, No, Nl), contractions and a lone quote,
    # White_Space beyond ASCII (NBSP, ideographic space), punctuation, emoji with a skin-tone
    # modifier, a combining mark, a zero-width space, and whole control tokens.
    pool = list(
        "abcXYZ éïñ日本語 한국어 Ωλ ١٢٣ ½ Ⅻ 0123456789 's 't 're 'S \n\r\t"
        " \u00a0\u3000 .,;:!?()[]{}\"'—–-_/\\ 🙂👍🏽 \u0301\u200b"
    ) + ["<|im_start|>", "<|im_end|>", "<reponame>", "<repo_name>"]
    rng = random.Random(5)
    cases = []
    for _ in range(200):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 48)))
        cases.append({"text": text, "ids": tok.encode(text, add_special_tokens=False).ids})
    json.dump(
        {
            "reference": "tokenizers (Hugging Face) 0.23.3, BPE from the GGUF vocabulary, "
            "Digits(individual) + ByteLevel(GPT-2 regex), control tokens as special",
            "cases": cases,
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
