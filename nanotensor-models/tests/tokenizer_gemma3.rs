//! The SentencePiece-style tokenizer on the real Gemma 3 270M vocabulary (262,144 tokens),
//! against independent references:
//!
//! - `tests/fixtures/gemma3/tokenize.json`: ids from llama.cpp's `llama-tokenize --no-bos`;
//! - `tests/fixtures/gemma3/greedy.json`: the prompt ids (BOS first) llama.cpp used;
//! - `tests/fixtures/gemma3/ppl.json`: the chunk count of the GPL-3 text at n_ctx 128;
//! - `tests/fixtures/gemma3/llamacpp_cases.json`: random strings tokenized by llama.cpp
//!   (`scripts/gen-gemma3-tokenizer-cases.py`);
//! - `tests/fixtures/gemma3/README.md`: the vocabulary's size and flags.
//!
//! Each test skips, saying so, when the model is not found (`scripts/fetch-model.sh gemma3-270m`
//! fetches it), unless `NANOTENSOR_REQUIRE_MODEL` is set (as `scripts/test`, hence CI, does):
//! then it fails.

use std::sync::OnceLock;

use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model_path::{known_model_for_tests, GEMMA3_270M};
use nanotensor_models::tokenizer::{token_type, Tokenizer};
mod common;
use common::{check_cases, fixture, ids};

/// The tokenizer of the model, built once per test binary from the file's metadata; `None`
/// (after saying why, once) when the model file is absent and not required.
fn tokenizer() -> Option<&'static Tokenizer> {
    static TOKENIZER: OnceLock<Option<Tokenizer>> = OnceLock::new();
    let found = TOKENIZER.get_or_init(|| {
        let path = known_model_for_tests(&GEMMA3_270M, "tokenizer_gemma3")?;
        let file = GgufFile::open(&path).expect("the model file should parse");
        Some(Tokenizer::from_gguf(&file).expect("the model's tokenizer should load"))
    });
    found.as_ref()
}

#[test]
fn vocabulary_matches_the_fixture_readme() {
    let Some(tok) = tokenizer() else { return };
    assert_eq!(tok.model_name(), "llama");
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.pre_tokenizer(), None);
    assert_eq!((tok.bos(), tok.eos()), (Some(2), Some(1)));
    assert!(tok.add_bos() && !tok.add_eos());
    let Tokenizer::Spm(spm) = tok else {
        panic!("Gemma 3's tokenizer is SentencePiece-style")
    };
    assert!(!spm.add_space_prefix());
    assert_eq!(tok.token_piece(2).unwrap(), "<bos>");
    assert_eq!(tok.token_piece(105).unwrap(), "<start_of_turn>");
    assert_eq!(tok.token_piece(106).unwrap(), "<end_of_turn>");
    assert!(tok.is_control(105) && tok.is_control(106));
    // 256 byte tokens `<0x00>`..`<0xFF>`, decoding to their byte.
    let bytes: Vec<u32> = (0..262_144u32)
        .filter(|&id| tok.token_type(id).unwrap() == token_type::BYTE)
        .collect();
    assert_eq!(bytes.len(), 256);
    assert_eq!(tok.token_piece(bytes[0x41]).unwrap(), "<0x41>");
    assert_eq!(tok.token_bytes(bytes[0x41]).unwrap(), b"A");
    // A normal token: `▁` in the vocabulary, a space in the text.
    assert_eq!(tok.encode(" world"), [1902]);
    assert_eq!(tok.token_piece(1902).unwrap(), "▁world");
    assert_eq!(tok.token_bytes(1902).unwrap(), b" world");
    // `\n` and runs of spaces are user-defined tokens, decoded as written.
    assert_eq!(tok.token_type(107).unwrap(), token_type::USER_DEFINED);
    assert_eq!(tok.token_bytes(107).unwrap(), b"\n");
    assert_eq!(tok.token_bytes(139).unwrap(), b"   ");
}

#[test]
fn fixture_cases_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    let fixture = fixture("gemma3", "tokenize.json");
    let n = check_cases(tok, &fixture["cases"], "llama.cpp");
    assert_eq!(n, 9);
}

#[test]
fn random_cases_match_llama_cpp() {
    let Some(tok) = tokenizer() else { return };
    let data = fixture("gemma3", "llamacpp_cases.json");
    let n = check_cases(tok, &data["cases"], "llama.cpp random");
    assert!(n >= 200, "{n} cases");
}

#[test]
fn greedy_prompt_starts_with_bos_as_llama_cpp_tokenized_it() {
    let Some(tok) = tokenizer() else { return };
    let fixture = fixture("gemma3", "greedy.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let want = ids(&case["prompt_token_ids"]);
        assert_eq!(want[0], 2, "the fixture's prompt starts with BOS");
        assert_eq!(tok.encode_prompt(prompt), want, "{prompt:?}");
        assert_eq!(tok.encode(prompt), want[1..], "{prompt:?}");
    }
}

#[test]
fn gpl3_text_gives_the_perplexity_fixture_chunk_count() {
    let Some(tok) = tokenizer() else { return };
    let path = "/usr/share/common-licenses/GPL-3";
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("SKIPPED: {path} not found (Debian's base-files ships it)");
        return;
    };
    assert_eq!(
        text.len(),
        35149,
        "{path} is not the Debian GPL-3 text of ppl.json"
    );
    let fixture = fixture("gemma3", "ppl.json");
    let result = &fixture["results"][0];
    let (n_ctx, chunks) = (
        result["n_ctx"].as_u64().unwrap() as usize,
        result["chunks"].as_u64().unwrap() as usize,
    );
    // ppl.json: one trailing newline stripped, tokenized with BOS, floor(n / n_ctx) chunks.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let ids = tok.encode_prompt(text);
    assert_eq!(
        ids.len() / n_ctx,
        chunks,
        "{} tokens give {} chunks of {n_ctx}; ppl.json says {chunks}",
        ids.len(),
        ids.len() / n_ctx
    );
    assert_eq!(tok.decode(&ids[1..]).unwrap(), text);
}

#[test]
fn special_tokens_in_text_are_single_tokens() {
    let Some(tok) = tokenizer() else { return };
    let text = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n";
    let ids = tok.encode(text);
    assert_eq!(ids[0], 105);
    assert_eq!(ids.iter().filter(|&&id| id == 105).count(), 2);
    assert_eq!(ids.iter().filter(|&&id| id == 106).count(), 1);
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert_eq!(tok.encode("<bos>"), [2]);
}

#[test]
fn text_outside_the_vocabulary_round_trips_through_byte_tokens() {
    let Some(tok) = tokenizer() else { return };
    // U+F0000 (plane-15 private use) is not in the vocabulary: one byte token per UTF-8 byte.
    let ids = tok.encode("\u{F0000}");
    assert_eq!(ids.len(), 4);
    for (&id, b) in ids.iter().zip("\u{F0000}".bytes()) {
        assert_eq!(tok.token_type(id).unwrap(), token_type::BYTE);
        assert_eq!(tok.token_bytes(id).unwrap(), [b]);
    }
    for text in [
        "\u{E000}x\u{10FFFD} \u{0}\u{7f}",
        "emoji 🙂👍🏽🧑‍🚀 and 日本語 and Ωλ",
        "  two  spaces   three\t\ttabs\r\n",
        " leading",
        "trailing ",
        "",
    ] {
        assert_eq!(tok.decode(&tok.encode(text)).unwrap(), text, "{text:?}");
    }
}

#[test]
fn stream_decoding_reassembles_byte_fallback_characters() {
    let Some(tok) = tokenizer() else { return };
    let text = "a\u{F0000}b 🙂 naïve";
    let ids = tok.encode(text);
    let mut dec = tok.stream_decoder();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    assert_eq!(pieces.concat(), text);
    assert_eq!(dec.finish(), "");
    // The private-use character arrives as four byte tokens: the first three print nothing.
    let at = pieces.iter().position(|p| p.contains('\u{F0000}')).unwrap();
    assert_eq!(pieces[at - 3..at], ["", "", ""]);
}

#[test]
fn long_text_encodes_in_linear_log_time() {
    let Some(tok) = tokenizer() else { return };
    // 200,000 characters in one stretch (no special splits it): the heap-driven merge loop
    // handles it at once; a rescan after every merge would take minutes.
    let text = "abc déf ghi ".repeat(16_667);
    let ids = tok.encode(&text);
    assert!(ids.len() > 16_667, "{}", ids.len());
    assert_eq!(tok.decode(&ids).unwrap(), text);
}
