//! Arbitrary UTF-8 → `Tokenizer::encode` → `decode` gives back exactly the input.
//!
//! The vocabulary is built here: the 256 single-byte tokens (GPT-2 byte-map spelling) so that
//! every string can be encoded, plus a handful of merges so the BPE merge loop runs too.
//!
//! The same bytes are also read as a GGUF file: one the reader accepts must be self-consistent
//! (`common::assert_gguf_consistent`), and a tokenizer built from its `tokenizer.ggml.*` metadata
//! must have exactly the vocabulary and merges the file lists, and encode to ids inside it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nanotensor::gguf::GgufFile;
use nanotensor::tokenizer::bytes::ByteMap;
use nanotensor::tokenizer::{keys, Tokenizer};

mod common;

/// The vocabulary read from a GGUF file, when the bytes are one.
fn from_gguf(data: &[u8]) {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    common::assert_gguf_consistent(data, &file);
    let Ok(tok) = Tokenizer::from_gguf(&file) else {
        return;
    };
    let tokens = file.get_str_array(keys::TOKENS).expect("the tokenizer read it");
    let merges = file.get_str_array(keys::MERGES).expect("the tokenizer read it");
    assert_eq!(tok.vocab_size(), tokens.len());
    assert_eq!(tok.merge_count(), merges.len());
    for text in tokens.iter().take(16) {
        for id in tok.encode(text) {
            assert!((id as usize) < tok.vocab_size(), "id {id} outside the vocabulary");
        }
    }
}

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
    from_gguf(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tok = tokenizer();
    let ids = tok.encode(text);
    assert!(ids.len() <= text.len(), "more tokens than bytes");
    let back = tok.decode(&ids).expect("ids from encode decode");
    assert_eq!(back, text);
});
