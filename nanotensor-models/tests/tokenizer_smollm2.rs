//! The tokenizer on the real SmolLM2-135M-Instruct vocabulary, against independent references:
//!
//! - `tests/fixtures/smollm2/tokenize.json`: ids from llama.cpp's `llama-tokenize`;
//! - `tests/fixtures/smollm2/greedy.json`: the prompt ids llama.cpp used;
//! - `tests/fixtures/smollm2/ppl.json`: the token count of the GPL-3 text (7638-7639);
//! - `tests/fixtures/smollm2/hf_cases.json`: random strings tokenized by Hugging Face `tokenizers`
//!   (`scripts/gen-tokenizer-cases.py`).
//!
//! Each test skips, saying so, when the model is not found (`scripts/fetch-model.sh` fetches it),
//! unless `NANOTENSOR_REQUIRE_MODEL` is set (as `scripts/test`, hence CI, does): then it fails.

use std::sync::OnceLock;

use nanotensor_core::Error;
use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model_path::model_for_tests;
use nanotensor_models::tokenizer::{PreTokenizer, Tokenizer};
mod common;
use common::{check_cases, fixture, ids};

/// The tokenizer of the model, built once per test binary; `None` (after saying why, once) when
/// the model file is absent and not required.
fn tokenizer() -> Option<&'static Tokenizer> {
    static TOKENIZER: OnceLock<Option<Tokenizer>> = OnceLock::new();
    let found = TOKENIZER.get_or_init(|| {
        let path = model_for_tests("tokenizer_smollm2")?;
        let file = GgufFile::open(&path).expect("the model file should parse");
        Some(Tokenizer::from_gguf(&file).expect("the model's tokenizer should load"))
    });
    found.as_ref()
}

#[test]
fn vocabulary_matches_the_fixture_readme() {
    let Some(tok) = tokenizer() else { return };
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.merge_count(), 48900);
    assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::Smollm));
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert_eq!(tok.token_piece(1).unwrap(), "<|im_start|>");
    assert_eq!(tok.token_piece(2).unwrap(), "<|im_end|>");
    let control: Vec<u32> = (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_control(id))
        .collect();
    assert_eq!(control, (0..=16).collect::<Vec<u32>>());
    let mut specials = tok.special_ids().to_vec();
    specials.sort_unstable();
    assert_eq!(specials, control);
    // A normal token: its vocabulary spelling and its bytes.
    let world = tok.encode(" world");
    assert_eq!(world, [905]);
    assert_eq!(tok.token_piece(905).unwrap(), "Ġworld");
    assert_eq!(tok.token_bytes(905).unwrap(), b" world");
}

#[test]
fn fixture_cases_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    let fixture = fixture("smollm2", "tokenize.json");
    let n = check_cases(tok, &fixture["cases"], "llama.cpp");
    assert_eq!(n, 9);
}

#[test]
fn random_cases_match_hugging_face_tokenizers() {
    let Some(tok) = tokenizer() else { return };
    let data = fixture("smollm2", "hf_cases.json");
    let n = check_cases(tok, &data["cases"], "Hugging Face");
    assert_eq!(n, 200);
}

#[test]
fn greedy_prompts_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    let fixture = fixture("smollm2", "greedy.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(prompt),
            ids(&case["prompt_token_ids"]),
            "{prompt:?}"
        );
        // The reference continuation decodes to the reference text.
        if let Some(text) = case["f32_text"].as_str() {
            assert_eq!(tok.decode(&ids(&case["f32_token_ids"])).unwrap(), text);
        }
    }
}

#[test]
fn gpl3_text_has_the_perplexity_fixture_token_count() {
    let Some(tok) = tokenizer() else { return };
    let path = "/usr/share/common-licenses/GPL-3";
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("SKIPPED: {path} not found (Debian's base-files ships it)");
        return;
    };
    // ppl.json: 35149 bytes; one trailing newline stripped before tokenizing.
    assert_eq!(
        text.len(),
        35149,
        "{path} is not the Debian GPL-3 text of ppl.json"
    );
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let ids = tok.encode(text);
    assert!(
        (7638..=7639).contains(&ids.len()),
        "{} tokens, ppl.json says 7638-7639",
        ids.len()
    );
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn stream_decoding_reassembles_characters_split_across_tokens() {
    let Some(tok) = tokenizer() else { return };
    let text = "naïve café 日本語 🙂";
    let ids = tok.encode(text);
    let mut dec = tok.stream_decoder();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    assert_eq!(pieces.concat(), text);
    assert_eq!(dec.finish(), "");
    // "日" (E6 97 A5) is spread over three tokens in llama.cpp's ids: 17097 " \xE6", 241 "\x97",
    // 115 "\xA5". So some pushes must have produced nothing yet.
    assert!(pieces.iter().any(String::is_empty), "{pieces:?}");
    assert_eq!(tok.token_bytes(17097).unwrap(), b" \xE6");
    let mut dec = tok.stream_decoder();
    assert_eq!(dec.push(17097).unwrap(), " ");
    assert_eq!(dec.push(241).unwrap(), "");
    assert_eq!(dec.push(115).unwrap(), "日");
}

#[test]
fn unknown_ids_are_errors() {
    let Some(tok) = tokenizer() else { return };
    let err = tok.decode(&[905, 49152]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfRange {
                index: 49152,
                len: 49152,
                ..
            }
        ),
        "{err}"
    );
    assert!(tok.token_piece(u32::MAX).is_err());
    assert!(tok.stream_decoder().push(49152).is_err());
}
