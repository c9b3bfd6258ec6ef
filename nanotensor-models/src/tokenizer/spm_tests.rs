//! Unit tests of the SentencePiece-style tokenizer on small hand-built vocabularies.

use super::*;
use crate::tokenizer::Tokenizer;

/// Builds a tokenizer from `(piece, score, type)` triples.
fn build(entries: &[(&str, f32, i32)], options: SpmOptions) -> Tokenizer {
    let tokens = entries.iter().map(|e| e.0.to_string()).collect();
    let scores = entries.iter().map(|e| e.1).collect();
    let types = entries.iter().map(|e| e.2).collect();
    SpmTokenizer::new(tokens, scores, types, options)
        .unwrap()
        .into()
}

const N: i32 = token_type::NORMAL;
const C: i32 = token_type::CONTROL;
const U: i32 = token_type::USER_DEFINED;
const B: i32 = token_type::BYTE;

/// Ids: 0 `<bos>`, 1 `<eos>`, 2 `<start_of_turn>` (control), 3 `\n` (user-defined),
/// 4..260 the byte tokens `<0x00>`..`<0xFF>`, then normal pieces from 260 on.
fn toy_entries() -> Vec<(String, f32, i32)> {
    let mut e: Vec<(String, f32, i32)> = vec![
        ("<bos>".into(), 0.0, C),
        ("<eos>".into(), 0.0, C),
        ("<start_of_turn>".into(), 0.0, C),
        ("\n".into(), 0.0, U),
    ];
    e.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0, B)));
    for (piece, score) in [
        ("▁", -1.0),   // 260
        ("a", -2.0),   // 261
        ("b", -3.0),   // 262
        ("c", -4.0),   // 263
        ("h", -5.0),   // 264
        ("i", -6.0),   // 265
        ("ab", -10.0), // 266
        ("bc", -9.0),  // 267: scores higher than "ab"
        ("abc", -8.0), // 268
        ("▁h", -7.0),  // 269
        ("hi", -11.0), // 270
        ("▁hi", -6.5), // 271
        ("▁▁", -20.0), // 272
        ("é", -3.5),   // 273
        ("aa", -12.0), // 274
    ] {
        e.push((piece.into(), score, N));
    }
    e
}

fn toy(options: SpmOptions) -> Tokenizer {
    let e = toy_entries();
    let refs: Vec<(&str, f32, i32)> = e.iter().map(|(p, s, t)| (p.as_str(), *s, *t)).collect();
    build(&refs, options)
}

fn opts() -> SpmOptions {
    SpmOptions {
        bos: Some(0),
        eos: Some(1),
        unk: None,
        add_space_prefix: false,
        add_bos: true,
        add_eos: false,
    }
}

fn byte(b: u8) -> u32 {
    4 + u32::from(b)
}

#[test]
fn higher_scores_merge_first() {
    let tok = toy(opts());
    // "abc": "bc" (-9) beats "ab" (-10); then the pair (a, bc) makes "abc".
    assert_eq!(tok.encode("abc"), [268]);
    // "ab" alone: the only candidate.
    assert_eq!(tok.encode("ab"), [266]);
    // "abab": two "ab" candidates, nothing bigger.
    assert_eq!(tok.encode("abab"), [266, 266]);
    // " hi": "▁h" (-7) beats "hi" (-11); then "▁h"+"i" makes "▁hi".
    assert_eq!(tok.encode(" hi"), [271]);
    // "hi" without the space: "hi".
    assert_eq!(tok.encode("hi"), [270]);
}

#[test]
fn equal_scores_merge_leftmost_first() {
    let tok = toy(opts());
    // "aaa": (0,1) and (1,2) both make "aa"; the left pair wins, leaving "a".
    assert_eq!(tok.encode("aaa"), [274, 261]);
    assert_eq!(tok.encode("aaaa"), [274, 274]);
}

#[test]
fn spaces_become_the_visible_space_symbol() {
    let tok = toy(opts());
    // Two spaces: "▁h" (-7) merges first, then "▁hi"; the first "▁" is left alone.
    assert_eq!(tok.encode("  hi"), [260, 271]);
    // Three spaces then "hi": "▁▁" (-20) is weaker than "▁h" (-7), so "▁" "▁" merge only after.
    assert_eq!(tok.encode("   hi"), [272, 271]);
    // Trailing space.
    assert_eq!(tok.encode("a "), [261, 260]);
    for text in ["  hi", "   hi", "a ", " a  b ", "hi hi"] {
        assert_eq!(tok.decode(&tok.encode(text)).unwrap(), text, "{text:?}");
    }
}

#[test]
fn characters_outside_the_vocabulary_fall_back_to_byte_tokens() {
    let tok = toy(opts());
    // 'é' is a token; 'ü' (C3 BC) and '🙂' (F0 9F 99 82) are not.
    assert_eq!(tok.encode("é"), [273]);
    assert_eq!(tok.encode("ü"), [byte(0xC3), byte(0xBC)]);
    assert_eq!(
        tok.encode("a🙂b"),
        [261, byte(0xF0), byte(0x9F), byte(0x99), byte(0x82), 262]
    );
    // Decoding reassembles the bytes into the characters.
    assert_eq!(tok.decode(&tok.encode("aü🙂 é")).unwrap(), "aü🙂 é");
    // So does the stream decoder, holding back the partial character.
    let mut dec = tok.stream_decoder();
    let out: Vec<String> = tok
        .encode("a🙂")
        .iter()
        .map(|&id| dec.push(id).unwrap())
        .collect();
    assert_eq!(out, ["a", "", "", "", "🙂"]);
    assert_eq!(dec.finish(), "");
}

#[test]
fn special_tokens_are_parsed_whole() {
    let tok = toy(opts());
    assert_eq!(tok.encode("<start_of_turn>hi\n<bos>"), [2, 270, 3, 0]);
    // An incomplete special is ordinary text ("b" is a piece, the rest falls back to bytes).
    assert_eq!(
        tok.encode("<bos"),
        [byte(b'<'), 262, byte(b'o'), byte(b's')]
    );
    assert_eq!(
        tok.decode(&tok.encode("<start_of_turn>hi\n<bos>")).unwrap(),
        "<start_of_turn>hi\n<bos>"
    );
}

#[test]
fn space_prefix_goes_at_the_start_and_after_specials() {
    let tok = toy(SpmOptions {
        add_space_prefix: true,
        ..opts()
    });
    assert_eq!(tok.encode("hi"), [271]);
    assert_eq!(tok.encode("hi<start_of_turn>hi"), [271, 2, 271]);
    // Decoding drops the first token's leading space again (once).
    assert_eq!(tok.decode(&tok.encode("hi")).unwrap(), "hi");
    assert_eq!(tok.decode(&tok.encode(" hi")).unwrap(), " hi");
    let mut dec = tok.stream_decoder();
    assert_eq!(dec.push(271).unwrap(), "hi");
    assert_eq!(dec.push(271).unwrap(), " hi");
    // Without the prefix, nothing is added or dropped.
    let tok = toy(opts());
    assert_eq!(tok.encode("hi"), [270]);
    assert_eq!(tok.decode(&[271]).unwrap(), " hi");
}

#[test]
fn prompt_encoding_follows_add_bos_and_add_eos() {
    let tok = toy(opts());
    assert_eq!(tok.encode_prompt("hi"), [0, 270]);
    assert_eq!(tok.encode_prompt(""), [0]);
    let tok = toy(SpmOptions {
        add_bos: false,
        add_eos: true,
        ..opts()
    });
    assert_eq!(tok.encode_prompt("hi"), [270, 1]);
    // No BOS id: nothing to add even when asked.
    let tok = toy(SpmOptions {
        bos: None,
        ..opts()
    });
    assert!(!tok.add_bos());
    assert_eq!(tok.encode_prompt("hi"), [270]);
}

#[test]
fn missing_byte_tokens_fall_back_to_the_character_then_unknown() {
    // No `<0xHH>` tokens: ASCII bytes use the one-character token, others the unknown token.
    let entries = [
        ("<unk>", 0.0, token_type::UNKNOWN),
        ("x", -1.0, N),
        ("y", -1.0, N),
    ];
    let tok = build(
        &entries,
        SpmOptions {
            unk: Some(0),
            ..SpmOptions::default()
        },
    );
    assert_eq!(tok.encode("xé"), [1, 0, 0]);
    // Without an unknown token such bytes are dropped.
    let tok = build(&entries, SpmOptions::default());
    assert_eq!(tok.encode("xéy"), [1, 2]);
}

#[test]
fn malformed_vocabularies_are_rejected() {
    let tokens = || vec!["a".to_string(), "b".to_string()];
    let err = SpmTokenizer::new(tokens(), vec![0.0], Vec::new(), SpmOptions::default());
    assert!(matches!(err, Err(Error::Format { .. })));
    let unk = SpmOptions {
        unk: Some(2),
        ..SpmOptions::default()
    };
    assert!(SpmTokenizer::new(tokens(), Vec::new(), Vec::new(), unk).is_err());
    let bos = SpmOptions {
        bos: Some(7),
        ..SpmOptions::default()
    };
    assert!(SpmTokenizer::new(tokens(), Vec::new(), Vec::new(), bos).is_err());
    assert!(SpmTokenizer::new(Vec::new(), Vec::new(), Vec::new(), SpmOptions::default()).is_err());
    // NaN scores are ordered, not a panic.
    let tok: Tokenizer = SpmTokenizer::new(
        vec!["a".into(), "aa".into()],
        vec![0.0, f32::NAN],
        Vec::new(),
        SpmOptions::default(),
    )
    .unwrap()
    .into();
    assert_eq!(tok.encode("aaa"), [1, 0]);
}

/// The merge rule written the slow way: rescan every adjacent pair after each merge.
fn naive(tok: &SpmTokenizer, text: &str) -> Vec<u32> {
    let escaped: String = text
        .chars()
        .map(|c| if c == ' ' { SPACE } else { c })
        .collect();
    let mut syms: Vec<String> = escaped.chars().map(String::from).collect();
    loop {
        let mut best: Option<(f32, usize)> = None;
        for i in 0..syms.len().saturating_sub(1) {
            let joined = format!("{}{}", syms[i], syms[i + 1]);
            if let Some(&id) = tok.vocab.ids.get(&joined) {
                let score = tok.scores[id as usize];
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, i));
                }
            }
        }
        let Some((_, i)) = best else { break };
        let right = syms.remove(i + 1);
        syms[i].push_str(&right);
    }
    let mut out = Vec::new();
    for s in syms {
        match tok.vocab.ids.get(&s) {
            Some(&id) => out.push(id),
            None => out.extend(s.bytes().filter_map(|b| tok.byte_token[usize::from(b)])),
        }
    }
    out
}

#[test]
fn matches_the_naive_merge_loop_on_random_vocabularies_and_texts() {
    let mut rng = nanotensor_core::rng::Rng::new(5);
    let alphabet: Vec<char> = "ab ü🙂".chars().collect();
    for round in 0..if cfg!(miri) { 3 } else { 20 } {
        // Random pieces over the alphabet (with random, often tied, scores), plus byte tokens.
        let mut entries: Vec<(String, f32, i32)> = (0..=255u8)
            .map(|b| (format!("<0x{b:02X}>"), 0.0, B))
            .collect();
        for &c in &alphabet[..3] {
            entries.push((c.to_string().replace(' ', "▁"), -1.0, N));
        }
        while entries.len() < 256 + 40 {
            let len = 2 + (rng.next_u64() % 4) as usize;
            let piece: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect::<String>()
                .replace(' ', "▁");
            if entries.iter().all(|e| e.0 != piece) {
                let score = -((rng.next_u64() % 6) as f32);
                entries.push((piece, score, N));
            }
        }
        let tokens = entries.iter().map(|e| e.0.clone()).collect();
        let scores = entries.iter().map(|e| e.1).collect();
        let types = entries.iter().map(|e| e.2).collect();
        let spm = SpmTokenizer::new(tokens, scores, types, SpmOptions::default()).unwrap();
        for _ in 0..if cfg!(miri) { 5 } else { 50 } {
            let len = (rng.next_u64() % 30) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                spm.encode(&text),
                naive(&spm, &text),
                "round {round}: {text:?}"
            );
            let tok = Tokenizer::Spm(spm.clone());
            assert_eq!(tok.decode(&tok.encode(&text)).unwrap(), text);
        }
    }
}

#[test]
fn long_runs_merge_in_order() {
    // 100,000 "a": "aa" pairs from the left, every time; the heap keeps this O(n log n).
    let tok = toy(opts());
    let text = "a".repeat(100_001);
    let ids = tok.encode(&text);
    assert_eq!(ids.len(), 50_001);
    assert!(ids[..50_000].iter().all(|&id| id == 274));
    assert_eq!(ids[50_000], 261);
}

#[test]
fn literal_visible_space_decodes_as_a_space() {
    // "▁" in the input is indistinguishable from an escaped space: it decodes as " ".
    let tok = toy(opts());
    assert_eq!(tok.encode("▁hi"), tok.encode(" hi"));
    assert_eq!(tok.decode(&tok.encode("▁hi")).unwrap(), " hi");
}

#[test]
fn debug_output_is_a_summary() {
    let text = format!("{:?}", toy(opts()));
    assert!(
        text.starts_with("Spm(SpmTokenizer { vocab_size: 275"),
        "{text}"
    );
    assert!(text.len() < 200, "{text}");
}

/// Text that spells a byte token (`<0xB4>`) stays those six characters even when the pieces'
/// merges could build the string: byte tokens come only from the byte fallback (the fuzzer's
/// case: pieces `0`, `0x`, `0xB`, `0xB4`, `0xB4>` and `<` falling back to its byte).
#[test]
fn text_spelling_a_byte_token_round_trips() {
    let mut e = toy_entries();
    for piece in ["0", "0x", "0xB", "0xB4", "0xB4>"] {
        e.push((piece.into(), -1.0, N));
    }
    let refs: Vec<(&str, f32, i32)> = e.iter().map(|(p, s, t)| (p.as_str(), *s, *t)).collect();
    let tok = build(&refs, opts());
    let text = "<0xB4>";
    let ids = tok.encode(text);
    assert!(!ids.contains(&byte(0xB4)), "{ids:?}");
    assert_eq!(ids.first(), Some(&byte(b'<')));
    assert_eq!(tok.decode(&ids).unwrap(), text);
}
