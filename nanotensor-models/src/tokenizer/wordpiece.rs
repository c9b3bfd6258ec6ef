//! WordPiece tokenizer (BERT), built from a Hugging Face `tokenizer.json`, as the `tokenizers`
//! library runs it with the BERT normalizer and pre-tokenizer.
//!
//! Encoding `text`:
//!
//! 1. **Special tokens** (the file's `added_tokens`: `[CLS]`, `[SEP]`, `[UNK]`, …) written in the
//!    text are split out whole, before normalization, as for the other families.
//! 2. **BertNormalizer**, per character and in this order: *clean text* drops NUL, U+FFFD and
//!    the other control and format characters (general category C*, tab, newline and carriage
//!    return excepted) and turns every whitespace character into a space; *Chinese characters*
//!    (the CJK ideograph blocks) get a space on each side; *strip accents* decomposes to NFD and
//!    drops the non-spacing marks (Mn), on when `strip_accents` is true or, when it is null,
//!    when `lowercase` is; *lowercase* maps each character to its lowercase form.
//! 3. **BertPreTokenizer** splits at whitespace (dropped) and around every punctuation
//!    character (ASCII punctuation or Unicode P*), each of which is a word of its own.
//! 4. **WordPiece** cuts each word greedily into the longest vocabulary prefix, then the longest
//!    `##`-prefixed continuation, and so on; a word with a position no piece matches, or longer
//!    than `max_input_chars_per_word` characters, becomes the unknown token as a whole.
//!
//! [`WordPieceTokenizer::encode_for_model`] adds `[CLS]` … `[SEP]` and truncates the words'
//! tokens so that the whole fits the model's maximum sequence length.
//!
//! Decoding: a `##` continuation joins the previous token, any other token is preceded by a
//! space (dropped at the start of the text); special tokens are their text.

use std::fmt;
use std::path::Path;

use serde_json::Value;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

use super::token_type;
use super::vocab::{Fragment, Vocab, OP};
use nanotensor_core::{Error, Result};

/// The settings of the BERT normalizer (`normalizer` in `tokenizer.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BertNormalizer {
    /// Drop control characters, map whitespace to spaces.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs.
    pub handle_chinese_chars: bool,
    /// Decompose and drop non-spacing marks.
    pub strip_accents: bool,
    /// Lowercase.
    pub lowercase: bool,
}

impl Default for BertNormalizer {
    /// The uncased BERT normalizer: everything on.
    fn default() -> Self {
        BertNormalizer {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
        }
    }
}

/// A WordPiece tokenizer; see the [module documentation](self).
#[derive(Clone)]
pub struct WordPieceTokenizer {
    pub(super) vocab: Vocab,
    normalizer: BertNormalizer,
    unk: u32,
    cls: u32,
    sep: u32,
    continuing_prefix: String,
    max_input_chars_per_word: usize,
}

impl fmt::Debug for WordPieceTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WordPieceTokenizer")
            .field("vocab", &self.vocab.len())
            .field("normalizer", &self.normalizer)
            .field("unk", &self.unk)
            .field("cls", &self.cls)
            .field("sep", &self.sep)
            .finish()
    }
}

fn format_err(reason: impl Into<String>) -> Error {
    Error::format(OP, reason)
}

/// Whitespace as BERT counts it.
fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control and format characters as BERT's clean-text step counts them (tab, newline and
/// carriage return are whitespace instead).
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r')
        && matches!(
            get_general_category(c),
            Gc::Control | Gc::Format | Gc::Surrogate | Gc::PrivateUse | Gc::Unassigned
        )
}

/// The CJK ideograph blocks BERT splits character by character.
fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Punctuation as BERT counts it: ASCII punctuation (which includes symbols such as `$` and
/// `+`) or a Unicode punctuation category.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            Gc::ConnectorPunctuation
                | Gc::DashPunctuation
                | Gc::OpenPunctuation
                | Gc::ClosePunctuation
                | Gc::InitialPunctuation
                | Gc::FinalPunctuation
                | Gc::OtherPunctuation
        )
}

impl BertNormalizer {
    /// Normalizes `text`.
    pub fn normalize(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    s.push(' ');
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        if self.strip_accents {
            s = s
                .nfd()
                .filter(|&c| get_general_category(c) != Gc::NonspacingMark)
                .collect();
        }
        if self.lowercase {
            // Per character: `str::to_lowercase` would write a word-final Σ as ς, which the
            // tokenizers library (and the vocabulary) spell σ.
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }
}

/// BertPreTokenizer: the words of normalized text.
fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_whitespace).flat_map(|chunk| {
        let mut words = Vec::new();
        let mut start = 0;
        for (at, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if at > start {
                    words.push(&chunk[start..at]);
                }
                let end = at + c.len_utf8();
                words.push(&chunk[at..end]);
                start = end;
            }
        }
        if start < chunk.len() {
            words.push(&chunk[start..]);
        }
        words
    })
}

/// `key` of a JSON object as a string, or a format error naming it.
fn json_str<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| {
        format_err(format!(
            "tokenizer.json: `{key}` is missing or not a string"
        ))
    })
}

/// A boolean setting of the normalizer; `default` when absent or null.
fn json_bool(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format_err(format!(
            "tokenizer.json: normalizer `{key}` is {other}, expected a boolean"
        ))),
    }
}

impl WordPieceTokenizer {
    /// Reads a `tokenizer.json` file: [`WordPieceTokenizer::from_json`].
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; otherwise as [`WordPieceTokenizer::from_json`].
    pub fn open(path: impl AsRef<Path>) -> Result<WordPieceTokenizer> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "tokenizer.json open",
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Builds the tokenizer from the text of a Hugging Face `tokenizer.json` whose model is
    /// `WordPiece` and whose normalizer, if any, is `BertNormalizer`.
    ///
    /// # Errors
    /// [`Error::Format`] for invalid JSON, another model type or normalizer, a vocabulary whose
    /// ids are not exactly `0..n`, or a missing `[CLS]`, `[SEP]` or unknown token.
    pub fn from_json(text: &str) -> Result<WordPieceTokenizer> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| format_err(format!("tokenizer.json: {e}")))?;
        let model = json
            .get("model")
            .ok_or_else(|| format_err("tokenizer.json: no `model`"))?;
        let kind = json_str(model, "type")?;
        if kind != "WordPiece" {
            return Err(format_err(format!(
                "tokenizer.json: model type `{kind}`, expected `WordPiece`"
            )));
        }
        let normalizer = match json.get("normalizer") {
            None | Some(Value::Null) => BertNormalizer {
                clean_text: false,
                handle_chinese_chars: false,
                strip_accents: false,
                lowercase: false,
            },
            Some(n) => {
                let kind = json_str(n, "type")?;
                if kind != "BertNormalizer" {
                    return Err(format_err(format!(
                        "tokenizer.json: normalizer `{kind}`, expected `BertNormalizer`"
                    )));
                }
                let lowercase = json_bool(n, "lowercase", true)?;
                BertNormalizer {
                    clean_text: json_bool(n, "clean_text", true)?,
                    handle_chinese_chars: json_bool(n, "handle_chinese_chars", true)?,
                    // A null `strip_accents` follows `lowercase`, as in the tokenizers library.
                    strip_accents: json_bool(n, "strip_accents", lowercase)?,
                    lowercase,
                }
            }
        };
        let vocab_map = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| format_err("tokenizer.json: `model.vocab` is not an object"))?;
        let n = vocab_map.len();
        let mut tokens: Vec<Option<String>> = vec![None; n];
        for (piece, id) in vocab_map {
            let slot = id
                .as_u64()
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| tokens.get_mut(id))
                .ok_or_else(|| {
                    format_err(format!(
                        "tokenizer.json: token `{piece}` has id {id}, outside 0..{n}"
                    ))
                })?;
            if slot.replace(piece.clone()).is_some() {
                return Err(format_err(format!("tokenizer.json: id {id} appears twice")));
            }
        }
        // Every slot is filled: n distinct ids in 0..n.
        let tokens: Vec<String> = tokens.into_iter().flatten().collect();
        let mut types = vec![token_type::NORMAL; n];
        if let Some(added) = json.get("added_tokens").and_then(Value::as_array) {
            for t in added {
                let content = json_str(t, "content")?;
                let id = t.get("id").and_then(Value::as_u64);
                let slot = id
                    .and_then(|id| usize::try_from(id).ok())
                    .filter(|&id| tokens.get(id).map(String::as_str) == Some(content))
                    .ok_or_else(|| {
                        format_err(format!(
                            "tokenizer.json: added token `{content}` does not match the vocabulary"
                        ))
                    })?;
                let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
                types[slot] = if special {
                    token_type::CONTROL
                } else {
                    token_type::USER_DEFINED
                };
            }
        }
        let id_of = |piece: &str| -> Result<u32> {
            let id = tokens
                .iter()
                .position(|t| t == piece)
                .ok_or_else(|| format_err(format!("tokenizer.json: no token `{piece}`")))?;
            u32::try_from(id).map_err(|_| format_err("tokenizer.json: vocabulary too large"))
        };
        let unk = id_of(json_str(model, "unk_token")?)?;
        let cls = id_of("[CLS]")?;
        let sep = id_of("[SEP]")?;
        let continuing_prefix = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
            .unwrap_or("##")
            .to_string();
        let max_input_chars_per_word = model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
            .map_or(100, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let prefix = continuing_prefix.clone();
        let mut vocab = Vocab::new(tokens, types, Some(cls), Some(sep), |_, text, ty| {
            Ok(if ty != token_type::NORMAL {
                text.as_bytes().to_vec()
            } else if let Some(rest) = text.strip_prefix(prefix.as_str()) {
                rest.as_bytes().to_vec()
            } else {
                format!(" {text}").into_bytes()
            })
        })?;
        vocab.add_bos = true;
        vocab.add_eos = true;
        vocab.strip_first_space = true;
        Ok(WordPieceTokenizer {
            vocab,
            normalizer,
            unk,
            cls,
            sep,
            continuing_prefix,
            max_input_chars_per_word,
        })
    }

    /// The normalizer's settings.
    pub fn normalizer(&self) -> BertNormalizer {
        self.normalizer
    }

    /// The unknown token's id.
    pub fn unk(&self) -> u32 {
        self.unk
    }

    /// Encodes `text` without `[CLS]`/`[SEP]`; special tokens written in the text are
    /// recognised.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for fragment in self.vocab.split_specials(text) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(t) => {
                    let normalized = self.normalizer.normalize(t);
                    for word in pre_tokenize(&normalized) {
                        self.encode_word(word, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The model input for `text`: `[CLS]`, the tokens of [`WordPieceTokenizer::encode`] cut to
    /// `max_len − 2`, `[SEP]` (the truncation of sentence-transformers at `max_seq_length`).
    /// A `max_len` below 2 is taken as 2.
    pub fn encode_for_model(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut body = self.encode(text);
        body.truncate(max_len.saturating_sub(2));
        let mut out = Vec::with_capacity(body.len().saturating_add(2));
        out.push(self.cls);
        out.extend(body);
        out.push(self.sep);
        out
    }

    /// Greedy longest-match of one word.
    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_input_chars_per_word {
            out.push(self.unk);
            return;
        }
        let start_len = out.len();
        let mut piece = String::with_capacity(word.len() + self.continuing_prefix.len());
        let mut start = 0;
        while start < word.len() {
            let rest = &word[start..];
            // Candidate ends, longest first, on character boundaries.
            let found = rest
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .rev()
                .find_map(|end| {
                    piece.clear();
                    if start > 0 {
                        piece.push_str(&self.continuing_prefix);
                    }
                    piece.push_str(&rest[..end]);
                    self.vocab.ids.get(piece.as_str()).map(|&id| (id, end))
                });
            match found {
                Some((id, end)) => {
                    out.push(id);
                    start += end;
                }
                None => {
                    out.truncate(start_len);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> WordPieceTokenizer {
        let json = r###"{
          "added_tokens": [
            {"id": 0, "content": "[PAD]", "special": true},
            {"id": 1, "content": "[UNK]", "special": true},
            {"id": 2, "content": "[CLS]", "special": true},
            {"id": 3, "content": "[SEP]", "special": true}
          ],
          "normalizer": {"type": "BertNormalizer", "clean_text": true,
                         "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
          "pre_tokenizer": {"type": "BertPreTokenizer"},
          "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                    "max_input_chars_per_word": 10,
                    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4,
                              "##aff": 5, "##able": 6, "cafe": 7, ",": 8, "中": 9, "a": 10,
                              "##a": 11, "$": 12}}
        }"###;
        WordPieceTokenizer::from_json(json).unwrap()
    }

    #[test]
    fn normalizer_cleans_splits_cjk_strips_accents_and_lowercases() {
        let n = BertNormalizer::default();
        assert_eq!(n.normalize("Café\u{0}\u{200b}\tX中"), "cafe x 中 ");
        assert_eq!(n.normalize("ÅNGSTRÖM"), "angstrom");
        assert_eq!(n.normalize("ΟΔΟΣ"), "οδοσ");
    }

    #[test]
    fn pre_tokenizer_splits_whitespace_and_punctuation() {
        let words: Vec<&str> = pre_tokenize("it's  $5,00 ok").collect();
        assert_eq!(words, ["it", "'", "s", "$", "5", ",", "00", "ok"]);
    }

    #[test]
    fn greedy_longest_match_and_unknowns() {
        let t = toy();
        assert_eq!(t.encode("Unaffable, CAFÉ"), [4, 5, 6, 8, 7]);
        // A word with an unmatched position is one [UNK]; so is an over-long word.
        assert_eq!(t.encode("unx aaaaaaaaaaa aaa"), [1, 1, 10, 11, 11]);
        assert_eq!(t.encode("中$"), [9, 12]);
        // Specials in the text are matched before normalization.
        assert_eq!(t.encode("[SEP]un[cls]"), [3, 4, 1, 1, 1]);
    }

    #[test]
    fn model_input_truncates_between_cls_and_sep() {
        let t = toy();
        assert_eq!(t.encode_for_model("a a a a", 4), [2, 10, 10, 3]);
        assert_eq!(t.encode_for_model("", 256), [2, 3]);
        assert_eq!(
            t.vocab.decode_bytes(&[2, 4, 5, 6, 8, 3]).unwrap(),
            b"[CLS] unaffable ,[SEP]"
        );
    }

    #[test]
    fn bad_files_are_format_errors() {
        for json in [
            "{",
            r#"{"model": {"type": "BPE", "vocab": {}}}"#,
            r#"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 5}}}"#,
            r#"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}"#,
        ] {
            assert!(matches!(
                WordPieceTokenizer::from_json(json),
                Err(Error::Format { .. })
            ));
        }
    }
}
