#!/usr/bin/env python3
"""Generate WordPiece tokenizer test cases for all-MiniLM-L6-v2 from Hugging Face `tokenizers`.

The reference is the `tokenizers` library loading the model's own `tokenizer.json`, with its
declared truncation and padding turned off (sentence-transformers truncates at max_seq_length 256
instead, which the test applies itself). The ids include [CLS] and [SEP]. The output is
{"tool", "cases": [{"text", "ids"}]}, used by nanotensor-models/tests/minilm.rs.

    python3 -m venv target/venv-tok && target/venv-tok/bin/pip install tokenizers
    target/venv-tok/bin/python scripts/gen-minilm-tokenizer-cases.py \
        models/all-MiniLM-L6-v2/tokenizer.json > tests/fixtures/minilm/tokenizer_cases.json
"""
import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer

FIXED = [
    "A man is playing a guitar on the street corner.",
    "Comment ça va aujourd'hui ? Très bien, merci.",
    "",
    "   ",
    "Hello, WORLD!!! It's 3:45pm; cost: $12.50 (approx.) -- e-mail me@example.com",
    "naïve café résumé Ångström ÉCOLE Straße İstanbul",
    "日本語のテキストと中文字符混合 text 한국어",
    "Tabs\tand\nnewlines\r\nand\u00a0nbsp\u200bzero-width\u0000nul\ufffdrepl",
    "emoji 🦀🚀 and symbols ±×÷ ← → ™ © ® € £ ¥ § ¶ • … ‘quotes’ “double”",
    "[CLS] already [SEP] special [MASK] tokens [UNK] [cls]",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 101 + " " + "b" * 100,
    "Ελληνικά русский текст עברית العربية हिन्दी ไทย",
    "x\u0301\u0301\u0301 ǅ ﬁ ﬀ Ⅻ ½ ² ㎏ ｆｕｌｌｗｉｄｔｈ",
    " ".join(["word"] * 300),
    "The quick brown fox jumps over the lazy dog. " * 40,
]

# Random strings over characters that exercise each normalizer and pre-tokenizer rule: cased
# ASCII and accented letters, CJK ideographs and kana, Hangul, Greek and Cyrillic, digits, ASCII
# punctuation and symbols, Unicode punctuation and symbols, whitespace of several kinds, control
# and format characters, combining marks, emoji, and whole special tokens.
POOL = list(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "éèêëÉÀçñøåÅßÜöÖıİ 日本語中文テキスト한국어 ΩλαβΣ жЖщ 0123456789"
    ".,;:!?()[]{}\"'-_/\\<>|@#$%^&*+=~` —–…«»¡¿·•€£¥©®™±×÷½²"
    "\t\n\r\u00a0\u3000\u2003\u0000\u0007\u200b\u200d\ufeff\u00ad\ufffd\u0301\u0308\u0327"
    "🙂👍🏽🦀"
) + [" "] * 12 + ["[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]", "##", "un", "able", "ing"]


def main(path: str) -> None:
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    rng = random.Random(22)
    texts = FIXED + ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    cases = [{"text": t, "ids": tok.encode(t).ids} for t in texts]
    json.dump({"tool": f"tokenizers {tokenizers.__version__}", "cases": cases}, sys.stdout,
              ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
