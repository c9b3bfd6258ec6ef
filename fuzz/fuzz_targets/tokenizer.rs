//! Arbitrary UTF-8 → `Tokenizer::encode` → `decode` gives back exactly the input.
//!
//! The vocabulary is built here: the 256 single-byte tokens (GPT-2 byte-map spelling) so that
//! every string can be encoded, plus a handful of merges so the BPE merge loop runs too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nanotensor::tokenizer::bytes::ByteMap;
use nanotensor::tokenizer::Tokenizer;

/// Merges as (left, right) in rank order; each adds the token `left + right`.
const MERGES: &[(&str, &str)] = &[
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("e", "r"),
    ("Ġ", "a"),
    ("Ã", "©"),
    ("in", "g"),
];

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let map = ByteMap::new();
        let mut tokens: Vec<String> = (0..=255u8).map(|b| map.char_of(b).to_string()).collect();
        let mut merges = Vec::new();
        for (l, r) in MERGES {
            tokens.push(format!("{l}{r}"));
            merges.push(format!("{l} {r}"));
        }
        Tokenizer::new(tokens, &merges, vec![], None, None).expect("hand-built vocabulary")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tok = tokenizer();
    let ids = tok.encode(text);
    assert!(ids.len() <= text.len(), "more tokens than bytes");
    let back = tok.decode(&ids).expect("ids from encode decode");
    assert_eq!(back, text);
});
