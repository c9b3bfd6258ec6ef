//! Arbitrary UTF-8 → `Tokenizer::encode` → `decode` gives back exactly the input, for both
//! tokenizer families.
//!
//! - Byte-level BPE: the vocabulary is built here: the 256 single-byte tokens (GPT-2 byte-map
//!   spelling) so that every string can be encoded, plus a handful of merges so the BPE merge
//!   loop runs too.
//! - SentencePiece-style: the input itself supplies the vocabulary. Before its first NUL are
//!   pieces separated by U+0001 (each added with all its prefixes, so merge chains exist, with
//!   scores that often tie); after it, the text. Two control tokens, a user-defined `\n\n`, `▁`
//!   and the 256 byte tokens `<0xHH>` complete the vocabulary. An odd-length vocabulary part
//!   turns `add_space_prefix` on.
//!
//! The same bytes are also read as a GGUF file: one the reader accepts must be self-consistent
//! (`common::assert_gguf_consistent`), and a tokenizer built from its `tokenizer.ggml.*` metadata
//! must have exactly the vocabulary (and, for BPE, the merges) the file lists, and encode to ids
//! inside it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nanotensor::gguf::GgufFile;
use nanotensor::tokenizer::bytes::ByteMap;
use nanotensor::tokenizer::{keys, token_type, SpmOptions, SpmTokenizer, Tokenizer};

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
    assert_eq!(tok.vocab_size(), tokens.len());
    if let Tokenizer::Bpe(_) = tok {
        let merges = file.get_str_array(keys::MERGES).expect("the tokenizer read it");
        assert_eq!(tok.merge_count(), merges.len());
    }
    for text in tokens.iter().take(16) {
        let ids = tok.encode_prompt(text);
        for &id in &ids {
            assert!((id as usize) < tok.vocab_size(), "id {id} outside the vocabulary");
        }
        tok.decode(&ids).expect("ids from encode decode");
    }
}

/// A SentencePiece-style tokenizer over the pieces of `vocab` (see the module documentation).
fn spm_from(vocab: &str) -> Tokenizer {
    let mut tokens: Vec<String> = vec!["<s>".into(), "</s>".into(), "\n\n".into(), "▁".into()];
    let mut types = vec![
        token_type::CONTROL,
        token_type::CONTROL,
        token_type::USER_DEFINED,
        token_type::NORMAL,
    ];
    let mut scores = vec![0.0, 0.0, 0.0, -1.0];
    for piece in vocab.split('\u{1}').take(64) {
        let piece = piece.replace(' ', "▁");
        for (end, _) in piece.char_indices().skip(1).chain([(piece.len(), ' ')]).take(16) {
            let prefix = &piece[..end];
            // A piece spelled like a special or a byte token would make decoding ambiguous.
            if tokens.iter().any(|t| t == prefix) || prefix.starts_with("<0x") {
                continue;
            }
            scores.push(-((tokens.len() % 5) as f32));
            tokens.push(prefix.to_string());
            types.push(token_type::NORMAL);
        }
    }
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(token_type::BYTE);
        scores.push(0.0);
    }
    let options = SpmOptions {
        bos: Some(0),
        eos: Some(1),
        unk: None,
        add_space_prefix: vocab.len() % 2 == 1,
        add_bos: true,
        add_eos: false,
    };
    SpmTokenizer::new(tokens, scores, types, options)
        .expect("hand-built vocabulary")
        .into()
}

/// Encodes `text` with a SentencePiece vocabulary made from `vocab`; checks ids and the round
/// trip (exact unless a space prefix was added after a special token or the text holds `▁`,
/// which decodes as a space).
fn spm(vocab: &str, text: &str) {
    let tok = spm_from(vocab);
    let ids = tok.encode(text);
    for &id in &ids {
        assert!((id as usize) < tok.vocab_size(), "id {id} outside the vocabulary");
    }
    let back = tok.decode(&ids).expect("ids from encode decode");
    let has_special = ["<s>", "</s>", "\n\n"].iter().any(|s| text.contains(s));
    let prefix = matches!(&tok, Tokenizer::Spm(t) if t.add_space_prefix());
    if !text.contains('▁') && !(prefix && has_special) {
        assert_eq!(back, text);
    }
    let mut stream = tok.stream_decoder();
    let mut streamed = String::new();
    for &id in &ids {
        streamed.push_str(&stream.push(id).expect("ids from encode decode"));
    }
    streamed.push_str(&stream.finish());
    assert_eq!(streamed, back);
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
    let (vocab, text) = text.split_once('\0').unwrap_or(("", text));
    spm(vocab, text);
});
