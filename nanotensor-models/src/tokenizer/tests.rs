//! Unit tests of the byte-level BPE tokenizer on a small hand-built vocabulary.

use super::bytes::ByteMap;
use super::*;
use nanotensor_core::Error;

const SPECIALS: [&str; 4] = ["<s>", "</s>", "<a>", "<a>b"];
const MERGES: [&str; 13] = [
    "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ Ġ", "' s", "1 2",
    "Ċ Ċ",
];

/// Ids 0..4: control tokens; 4..260: the 256 bytes (id = 4 + byte); then one token per merge.
/// Built once and shared by the tests (building it takes seconds under Miri).
fn toy() -> &'static Tokenizer {
    static TOY: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    TOY.get_or_init(|| toy_with(&MERGES))
}

fn toy_with(merges: &[&str]) -> Tokenizer {
    let map = ByteMap::new();
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend((0..=255u8).map(|b| map.char_of(b).to_string()));
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    let mut types = vec![token_type::CONTROL; SPECIALS.len()];
    types.resize(tokens.len(), token_type::NORMAL);
    Tokenizer::new(tokens, merges, types, Some(0), Some(1)).unwrap()
}

/// The toy vocabulary with another pre-tokenizer.
fn toy_pre(pre: PreTokenizer) -> Tokenizer {
    match toy().clone() {
        Tokenizer::Bpe(t) => t.with_pre_tokenizer(pre).into(),
        Tokenizer::Spm(_) | Tokenizer::WordPiece(_) => {
            unreachable!("the toy vocabulary is byte-level BPE")
        }
    }
}

fn byte_id(b: u8) -> u32 {
    4 + u32::from(b)
}

fn id(tok: &Tokenizer, piece: &str) -> u32 {
    tok.token_id(piece).unwrap()
}

#[test]
fn accessors_describe_the_vocabulary() {
    let tok = toy();
    assert_eq!(tok.vocab_size(), 4 + 256 + MERGES.len());
    assert_eq!(tok.merge_count(), MERGES.len());
    assert_eq!((tok.bos(), tok.eos()), (Some(0), Some(1)));
    assert!(tok.is_control(1));
    assert!(!tok.is_control(byte_id(b'a')));
    assert!(!tok.is_control(u32::MAX));
    assert_eq!(tok.token_piece(byte_id(b' ')).unwrap(), "Ġ");
    assert_eq!(tok.token_bytes(byte_id(b' ')).unwrap(), b" ");
    assert_eq!(tok.token_bytes(id(tok, "Ġworld")).unwrap(), b" world");
    assert_eq!(tok.token_bytes(0).unwrap(), b"<s>");
    // Longest special first ("</s>", "<a>b" have 4 bytes; "<s>", "<a>" 3), ties by id.
    assert_eq!(tok.special_ids(), [1, 3, 0, 2]);
}

#[test]
fn merges_apply_by_rank() {
    let tok = toy();
    assert_eq!(
        tok.encode("hello world"),
        [id(tok, "hello"), id(tok, "Ġworld")]
    );
    // "hel" stops at "he"+"l": "l l" needs two l's.
    assert_eq!(tok.encode("hel"), [id(tok, "he"), byte_id(b'l')]);
    // " wor" without "ld".
    assert_eq!(tok.encode(" wor"), [id(tok, "Ġwor")]);
}

#[test]
fn bytes_without_merges_fall_back_to_byte_tokens() {
    let tok = toy();
    // 'é' is C3 A9 in UTF-8; '🙂' is F0 9F 99 82.
    assert_eq!(tok.encode("é"), [byte_id(0xC3), byte_id(0xA9)]);
    assert_eq!(
        tok.encode("🙂"),
        [byte_id(0xF0), byte_id(0x9F), byte_id(0x99), byte_id(0x82)]
    );
    assert_eq!(tok.decode(&tok.encode("é🙂")).unwrap(), "é🙂");
}

#[test]
fn special_tokens_are_matched_whole() {
    let tok = toy();
    let hello = id(tok, "hello");
    assert_eq!(tok.encode("<s>hello</s>"), [0, hello, 1]);
    // The longer special wins where both match.
    assert_eq!(tok.encode("<a>bc"), [3, byte_id(b'c')]);
    assert_eq!(tok.encode("<a>c"), [2, byte_id(b'c')]);
    // An incomplete special is ordinary text.
    assert_eq!(tok.encode("<s"), [byte_id(b'<'), byte_id(b's')]);
    // Text on both sides is pre-tokenized on its own: the space before "<s>" stays a space.
    assert_eq!(
        tok.encode("hello <s> world"),
        [hello, byte_id(b' '), 0, id(tok, "Ġworld")]
    );
    assert_eq!(tok.decode(&[0, hello, 1]).unwrap(), "<s>hello</s>");
}

#[test]
fn digits_are_split_one_per_token() {
    let tok = toy();
    // The merge "1 2" exists but never applies across the digit split.
    assert_eq!(tok.encode("12"), [byte_id(b'1'), byte_id(b'2')]);
    // With plain GPT-2 pre-tokenization it does.
    let gpt2 = toy_pre(PreTokenizer::Gpt2);
    assert_eq!(gpt2.encode("12"), [id(&gpt2, "12")]);
}

#[test]
fn contractions_are_their_own_pieces() {
    let tok = toy();
    assert_eq!(tok.encode("he's"), [id(tok, "he"), id(tok, "'s")]);
    // Uppercase is not a contraction: "'" and "S" stay apart.
    assert_eq!(
        tok.encode("he'S"),
        [id(tok, "he"), byte_id(b'\''), byte_id(b'S')]
    );
}

#[test]
fn whitespace_runs_give_their_last_space_to_the_next_word() {
    let tok = toy();
    let sp2 = id(tok, "ĠĠ");
    let world = id(tok, "Ġworld");
    // "   world" → "  " + " world".
    assert_eq!(tok.encode("   world"), [sp2, world]);
    // Trailing run stays whole: "   " → "ĠĠ" + "Ġ".
    assert_eq!(
        tok.encode("hello   "),
        [id(tok, "hello"), sp2, byte_id(b' ')]
    );
    // Newlines: "\n\n" before a word gives "\n" + "\n" (no space to glue), at the end "ĊĊ".
    assert_eq!(
        tok.encode("\n\nhello"),
        [byte_id(b'\n'), byte_id(b'\n'), id(tok, "hello")]
    );
    assert_eq!(tok.encode("\n\n"), [id(tok, "ĊĊ")]);
}

#[test]
fn encode_decode_round_trips_random_text() {
    let tok = toy();
    let pool: Vec<char> = "ab hello world 12 's\n\t\r ïé日本🙂—<s></s><a>b "
        .chars()
        .collect();
    let mut rng = nanotensor_core::rng::Rng::new(11);
    // 200 texts natively, 40 under Miri (about half a second each there).
    for _ in 0..if cfg!(miri) { 40 } else { 200 } {
        let len = (rng.next_u64() % 40) as usize;
        let text: String = (0..len)
            .map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize])
            .collect();
        let ids = tok.encode(&text);
        assert_eq!(tok.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
    assert!(tok.encode("").is_empty());
    assert_eq!(tok.decode(&[]).unwrap(), "");
}

#[test]
fn stream_decoder_reassembles_split_characters() {
    let tok = toy();
    let ids = tok.encode("a日🙂b");
    // a, E6 97 A5, F0 9F 99 82, b: one token per byte.
    assert_eq!(ids.len(), 9);
    let mut dec = tok.stream_decoder();
    let outputs: Vec<String> = ids.iter().map(|&i| dec.push(i).unwrap()).collect();
    assert_eq!(outputs, ["a", "", "", "日", "", "", "", "🙂", "b"]);
    assert!(!dec.has_pending());
    assert_eq!(dec.finish(), "");
}

#[test]
fn stream_decoder_replaces_invalid_bytes_and_flushes() {
    let tok = toy();
    let mut dec = tok.stream_decoder();
    // A stray continuation byte can never become valid: replaced at once.
    assert_eq!(dec.push(byte_id(0x99)).unwrap(), "\u{FFFD}");
    // A UTF-8 start byte followed by a plain letter: the start byte is invalid, the letter comes out.
    assert_eq!(dec.push(byte_id(0xE6)).unwrap(), "");
    assert!(dec.has_pending());
    assert_eq!(dec.push(byte_id(b'x')).unwrap(), "\u{FFFD}x");
    // An unfinished character at the end of the stream.
    assert_eq!(dec.push(byte_id(0xF0)).unwrap(), "");
    assert_eq!(dec.finish(), "\u{FFFD}");
}

#[test]
fn unknown_ids_are_typed_errors() {
    let tok = toy();
    let n = tok.vocab_size() as u32;
    for result in [
        tok.decode(&[byte_id(b'a'), n]).map(|_| ()),
        tok.decode_bytes(&[n + 5]).map(|_| ()),
        tok.token_piece(n).map(|_| ()),
        tok.token_type(u32::MAX).map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::OutOfRange { index, len, .. }) if index >= len),
            "{result:?}"
        );
    }
    let mut dec = tok.stream_decoder();
    assert!(dec.push(n).is_err());
    assert!(!dec.has_pending());
}

#[test]
fn malformed_vocabularies_are_rejected() {
    let map = ByteMap::new();
    let bytes: Vec<String> = (0..=255u8).map(|b| map.char_of(b).to_string()).collect();
    let new = |tokens: Vec<String>, merges: &[&str], types: Vec<i32>, bos| {
        Tokenizer::new(tokens, merges, types, bos, None)
    };
    let is_format = |r: Result<Tokenizer>| matches!(r, Err(Error::Format { .. }));
    // Empty vocabulary.
    assert!(is_format(new(Vec::new(), &[], Vec::new(), None)));
    // Merge line without a separator, and with an empty side.
    assert!(is_format(new(bytes.clone(), &["ab"], Vec::new(), None)));
    assert!(is_format(new(bytes.clone(), &["a "], Vec::new(), None)));
    // Merge whose result is missing from the vocabulary.
    assert!(is_format(new(bytes.clone(), &["a b"], Vec::new(), None)));
    // Token types of the wrong length.
    assert!(is_format(new(bytes.clone(), &[], vec![1; 3], None)));
    // BOS outside the vocabulary.
    assert!(is_format(new(bytes.clone(), &[], Vec::new(), Some(256))));
    // A normal token spelled with a character outside the byte map (a raw space).
    let mut bad = bytes.clone();
    bad.push("a b".into());
    assert!(is_format(new(bad, &[], Vec::new(), None)));
    // Empty types mean "all normal"; merges may be `String`s.
    let mut ok = bytes;
    ok.push("ab".into());
    let merges = vec!["a b".to_string()];
    let tok = Tokenizer::new(ok, &merges, Vec::new(), None, None).unwrap();
    assert_eq!(tok.encode("ab"), [256]);
}

#[test]
fn byte_tokens_in_sentencepiece_spelling_decode_to_their_byte() {
    let tokens = vec!["<0x41>".to_string(), "<0xZZ>".to_string(), "Ġ".to_string()];
    let types = vec![token_type::BYTE, token_type::BYTE, token_type::NORMAL];
    let tok = Tokenizer::new(tokens, &[] as &[&str], types, None, None).unwrap();
    assert_eq!(tok.decode_bytes(&[0, 2]).unwrap(), b"A ");
    // Not a valid byte spelling: kept literal.
    assert_eq!(tok.decode_bytes(&[1]).unwrap(), b"<0xZZ>");
}

#[test]
fn bytes_without_a_token_are_dropped() {
    // A vocabulary of the 256 bytes except 0x04, plus "ab".
    let map = ByteMap::new();
    let mut tokens: Vec<String> = (0..=255u8)
        .filter(|&b| b != 0x04)
        .map(|b| map.char_of(b).to_string())
        .collect();
    tokens.push("ab".into());
    let tok = Tokenizer::new(tokens, &["a b"], Vec::new(), None, None).unwrap();
    let (a, b) = (id(&tok, "a"), id(&tok, "b"));
    assert_eq!(tok.encode("ab"), [255]);
    // The missing byte (a piece of its own, class Other) is dropped; the rest is kept.
    assert_eq!(tok.encode("a\u{4}b"), [a, b]);
    assert_eq!(tok.decode(&tok.encode("a\u{4}b")).unwrap(), "ab");
}

#[test]
fn debug_output_is_a_summary() {
    let text = format!("{:?}", toy());
    assert!(
        text.starts_with("Bpe(BpeTokenizer { vocab_size: 273, merges: 13"),
        "{text}"
    );
    assert!(text.len() < 200, "{text}");
}
