//! The WordPiece tokenizer on the real all-MiniLM-L6-v2 `tokenizer.json`, against independent
//! references:
//!
//! - `tests/fixtures/minilm/reference.json`: the ids sentence-transformers fed the model
//!   ([CLS] … [SEP], truncation at max_seq_length 256);
//! - `tests/fixtures/minilm/tokenizer_cases.json`: fixed and random strings tokenized by the
//!   Hugging Face `tokenizers` library (`scripts/gen-minilm-tokenizer-cases.py`).
//!
//! Each test skips, saying so, when the model is not found (`scripts/fetch-model.sh minilm`
//! fetches it), unless `NANOTENSOR_REQUIRE_MODEL` is set: then it fails.

use std::sync::OnceLock;

use nanotensor_models::model_path::{known_model_for_tests, MINILM};
use nanotensor_models::tokenizer::{Tokenizer, WordPieceTokenizer};
mod common;
use common::{fixture, ids};

/// sentence-transformers' `max_seq_length` for this model (sentence_bert_config.json).
const MAX_LEN: usize = 256;

fn tokenizer() -> Option<&'static WordPieceTokenizer> {
    static TOKENIZER: OnceLock<Option<WordPieceTokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let path = known_model_for_tests(&MINILM, "minilm_tokenizer")?;
            let json = path.with_file_name("tokenizer.json");
            Some(WordPieceTokenizer::open(json).expect("the model's tokenizer should load"))
        })
        .as_ref()
}

#[test]
fn reference_ids_are_reproduced_exactly() {
    let Some(tok) = tokenizer() else { return };
    let reference = fixture("minilm", "reference.json");
    let items = reference["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for item in items {
        let text = item["text"].as_str().expect("text");
        assert_eq!(
            tok.encode_for_model(text, MAX_LEN),
            ids(&item["input_ids"]),
            "{text:?}"
        );
    }
}

#[test]
fn tokenizers_library_cases_are_reproduced_exactly() {
    let Some(tok) = tokenizer() else { return };
    let cases = fixture("minilm", "tokenizer_cases.json");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() > 300);
    let mut mismatches = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let want = ids(&case["ids"]);
        // The library's ids are untruncated: both the plain encoding and the model input must
        // agree with them.
        let plain = tok.encode(text);
        let mut input = want.clone();
        if input.len() > MAX_LEN {
            input.truncate(MAX_LEN - 1);
            input.push(*want.last().expect("[SEP]"));
        }
        if plain[..] != want[1..want.len() - 1] || tok.encode_for_model(text, MAX_LEN) != input {
            mismatches.push(format!("{text:?}\n  got  {plain:?}\n  want {want:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn behind_the_tokenizer_enum() {
    let Some(wp) = tokenizer() else { return };
    let tok = Tokenizer::from(wp.clone());
    assert_eq!(tok.model_name(), "bert");
    assert_eq!(tok.vocab_size(), 30_522);
    assert_eq!((tok.bos(), tok.eos()), (Some(101), Some(102)));
    let ids = tok.encode_prompt("A man is playing a guitar.");
    assert_eq!(ids.first(), Some(&101));
    assert_eq!(ids.last(), Some(&102));
    assert_eq!(
        tok.decode(&ids[1..ids.len() - 1]).unwrap(),
        "a man is playing a guitar ."
    );
}
