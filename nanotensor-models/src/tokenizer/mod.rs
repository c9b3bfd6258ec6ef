//! Byte-level BPE tokenizer (GPT-2 style), built from a GGUF vocabulary.
//!
//! Encoding `text` into token ids goes through three stages:
//!
//! 1. **Special tokens.** Control, user-defined and unknown-type tokens (`<|im_start|>`, …) are
//!    found as whole strings in the text and become their ids directly; the text between them
//!    goes on. As in llama.cpp, the longest special token is split out first, then the next
//!    longest in the remaining text, and so on.
//! 2. **Pre-tokenization** ([`PreTokenizer`]): each stretch of ordinary text is cut into pieces
//!    (words with one leading space, single digits, punctuation runs, whitespace runs) that
//!    merges never cross.
//! 3. **BPE** ([`bpe`]): each piece starts as one symbol per UTF-8 byte — the vocabulary spells
//!    byte `b` as the character [`bytes::ByteMap::char_of`]`(b)` — and adjacent symbols are merged
//!    by rank until no ranked pair is left.
//!
//! Decoding maps each id back to its exact bytes (normal tokens through the byte map, special
//! tokens as their literal text), so `decode(encode(text)) == text` for any text whose bytes
//! all have a token.
//!
//! ```
//! use nanotensor_models::tokenizer::Tokenizer;
//!
//! // A toy vocabulary: the bytes "a", "b", "Ġ" (space) and the merges "a b", "Ġ ab".
//! let tokens = ["<s>", "a", "b", "Ġ", "ab", "Ġab"].map(String::from).to_vec();
//! let tok = Tokenizer::new(tokens, &["a b", "Ġ ab"], vec![3, 1, 1, 1, 1, 1], Some(0), None)?;
//! assert_eq!(tok.encode("ab ab<s>"), [4, 5, 0]);
//! assert_eq!(tok.decode(&[4, 5, 0])?, "ab ab<s>");
//! # Ok::<(), nanotensor_core::Error>(())
//! ```

pub mod bpe;
pub mod bytes;
mod gguf;
pub mod pretokenize;
mod stream;

use std::collections::HashMap;
use std::fmt;

use bpe::{MergeTable, NO_TOKEN};
use bytes::ByteMap;
pub use gguf::keys;
use nanotensor_core::{Error, Result};
pub use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    /// An ordinary vocabulary entry, spelled through the byte map.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control token (`<|im_start|>`): matched whole in input, decoded as its text.
    pub const CONTROL: i32 = 3;
    /// A user-defined token: matched whole in input, decoded as its text.
    pub const USER_DEFINED: i32 = 4;
    /// An unused slot.
    pub const UNUSED: i32 = 5;
    /// A raw byte written `<0xHH>` (SentencePiece vocabularies).
    pub const BYTE: i32 = 6;
}

/// A byte-level BPE tokenizer. Immutable once built, so one instance can be shared between
/// threads.
#[derive(Clone)]
pub struct Tokenizer {
    /// Vocabulary strings as stored in the model (byte-mapped for normal tokens).
    tokens: Vec<String>,
    /// `token_type::*` of each token.
    types: Vec<i32>,
    /// The exact bytes each token decodes to.
    bytes: Vec<Box<[u8]>>,
    /// Vocabulary string → id (the last id wins for a duplicated string, as in llama.cpp).
    ids: HashMap<String, u32>,
    /// Token of each single byte, or [`NO_TOKEN`].
    byte_token: [u32; 256],
    merges: MergeTable,
    /// Special tokens matched whole in input text, longest first.
    specials: Vec<u32>,
    pre: PreTokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl fmt::Debug for Tokenizer {
    /// A summary: printing 49,152 vocabulary strings helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.tokens.len())
            .field("merges", &self.merges.len())
            .field("specials", &self.specials.len())
            .field("pre", &self.pre)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

/// A stretch of input after special-token matching.
enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

const OP: &str = "tokenizer";

impl Tokenizer {
    /// Builds a tokenizer from the vocabulary arrays of a model file.
    ///
    /// - `tokens`: the vocabulary strings; id `i` is `tokens[i]`. Normal tokens are spelled with
    ///   the GPT-2 byte map (`Ġ` for a space, …).
    /// - `merges`: the merge list, one `"left right"` string per line; rank = index.
    /// - `token_types`: one [`token_type`] value per token (empty means "all normal").
    /// - `bos`, `eos`: the beginning- and end-of-sequence ids, if the model has them.
    ///
    /// The pre-tokenizer is [`PreTokenizer::Smollm`]; change it with
    /// [`Tokenizer::with_pre_tokenizer`].
    ///
    /// Errors ([`Error::Format`]) when the arrays disagree in length, a merge line is not two
    /// tokens joined by a space, a merge names a token the vocabulary lacks, a normal token uses a
    /// character outside the byte map, or `bos`/`eos` is not a valid id.
    // The vocabulary and merges usually come from a file: no unchecked arithmetic on their sizes.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn new<S: AsRef<str>>(
        tokens: Vec<String>,
        merges: &[S],
        token_types: Vec<i32>,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<Tokenizer> {
        let n = tokens.len();
        // Ids are u32 and NO_TOKEN is reserved, so `n_ids` bounds every id below.
        let n_ids = u32::try_from(n)
            .ok()
            .filter(|&n| n != 0 && n < NO_TOKEN)
            .ok_or_else(|| Error::format(OP, format!("vocabulary of {n} tokens")))?;
        let types = if token_types.is_empty() {
            vec![token_type::NORMAL; n]
        } else if token_types.len() == n {
            token_types
        } else {
            return Err(Error::format(
                OP,
                format!("{} token types for {n} tokens", token_types.len()),
            ));
        };
        for (name, id) in [("bos", bos), ("eos", eos)] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(Error::format(
                    OP,
                    format!("{name} id {id} is outside the vocabulary of {n} tokens"),
                ));
            }
        }

        let map = ByteMap::new();
        let mut bytes = Vec::with_capacity(n);
        for (id, (text, &ty)) in tokens.iter().zip(&types).enumerate() {
            bytes.push(token_bytes_of(&map, id, text, ty)?.into_boxed_slice());
        }
        let mut ids = HashMap::with_capacity(n);
        for (id, text) in (0..n_ids).zip(&tokens) {
            ids.insert(text.clone(), id);
        }
        let mut byte_token = [NO_TOKEN; 256];
        let mut buf = [0u8; 4];
        for b in 0..=255u8 {
            let spelled: &str = map.char_of(b).encode_utf8(&mut buf);
            if let Some(&id) = ids.get(spelled) {
                byte_token[usize::from(b)] = id;
            }
        }

        let mut table = MergeTable::new();
        let lookup = |s: &str, line: usize| {
            ids.get(s).copied().ok_or_else(|| {
                Error::format(
                    OP,
                    format!("merge {line} names `{s}`, not in the vocabulary"),
                )
            })
        };
        let mut joined = String::new();
        for (rank, line) in merges.iter().enumerate() {
            let line_str = line.as_ref();
            let (l, r) = line_str
                .split_once(' ')
                .filter(|(l, r)| !l.is_empty() && !r.is_empty())
                .ok_or_else(|| {
                    Error::format(OP, format!("merge {rank} `{line_str}` is not `left right`"))
                })?;
            joined.clear();
            joined.push_str(l);
            joined.push_str(r);
            let (li, ri, mi) = (lookup(l, rank)?, lookup(r, rank)?, lookup(&joined, rank)?);
            let rank = u32::try_from(rank)
                .map_err(|_| Error::format(OP, "more than 2^32 merges".to_string()))?;
            table.insert(li, ri, rank, mi);
        }

        let mut specials: Vec<u32> = (0..n_ids)
            .filter(|&id| {
                matches!(
                    types[id as usize],
                    token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
                ) && !tokens[id as usize].is_empty()
            })
            .collect();
        // Longest first; ties by id so the order is deterministic.
        specials.sort_by_key(|&id| (std::cmp::Reverse(tokens[id as usize].len()), id));

        Ok(Tokenizer {
            tokens,
            types,
            bytes,
            ids,
            byte_token,
            merges: table,
            specials,
            pre: PreTokenizer::Smollm,
            bos,
            eos,
        })
    }

    /// The same tokenizer with another pre-tokenizer.
    pub fn with_pre_tokenizer(mut self, pre: PreTokenizer) -> Self {
        self.pre = pre;
        self
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Number of merge rules.
    pub fn merge_count(&self) -> usize {
        self.merges.len()
    }

    /// The beginning-of-sequence id, if any.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence id, if any.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The ids matched whole in input text (control, user-defined and unknown tokens), longest
    /// first.
    pub fn special_ids(&self) -> &[u32] {
        &self.specials
    }

    fn check(&self, id: u32) -> Result<usize> {
        let i = id as usize;
        if i < self.tokens.len() {
            Ok(i)
        } else {
            Err(Error::OutOfRange {
                op: "tokenizer: token id",
                index: i,
                len: self.tokens.len(),
            })
        }
    }

    /// The vocabulary string of `id` as stored in the model (byte-mapped: `"Ġworld"`).
    pub fn token_piece(&self, id: u32) -> Result<&str> {
        Ok(&self.tokens[self.check(id)?])
    }

    /// The exact bytes `id` decodes to (`b" world"`).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        Ok(&self.bytes[self.check(id)?])
    }

    /// The [`token_type`] of `id`.
    pub fn token_type(&self, id: u32) -> Result<i32> {
        Ok(self.types[self.check(id)?])
    }

    /// True when `id` is a control token (`<|im_end|>`, …); false for other or unknown ids.
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&token_type::CONTROL)
    }

    /// The id whose vocabulary string is exactly `piece` (byte-mapped spelling).
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// Encodes `text` into token ids. No BOS is added; special tokens written in the text are
    /// recognised.
    ///
    /// A byte whose one-byte token is missing from the vocabulary (SmolLM2 lacks 21 of the 256,
    /// e.g. 0x04 and 0xF5..=0xFF) cannot take part in any merge — every merge's parts must be
    /// tokens — and is dropped, as llama.cpp drops it; text containing one does not round-trip.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut symbols = Vec::new();
        for fragment in self.split_specials(text) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(t) => {
                    for piece in self.pre.split(t) {
                        symbols.clear();
                        symbols.extend(piece.bytes().map(|b| self.byte_token[usize::from(b)]));
                        self.merges.apply(&symbols, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Splits `text` at whole occurrences of special tokens, longest special first.
    fn split_specials<'a>(&self, text: &'a str) -> Vec<Fragment<'a>> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(text)];
        for &id in &self.specials {
            let special = self.tokens[id as usize].as_str();
            if !text.contains(special) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(t) => {
                        let mut rest = t;
                        while let Some(at) = rest.find(special) {
                            if at > 0 {
                                next.push(Fragment::Text(&rest[..at]));
                            }
                            next.push(Fragment::Special(id));
                            rest = &rest[at + special.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    special @ Fragment::Special(_) => next.push(special),
                }
            }
            fragments = next;
        }
        fragments
    }

    /// The exact bytes of the ids, concatenated (special tokens as their text).
    ///
    /// Errors with [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// Decodes the ids to text (special tokens as their text). Lossless when the bytes are valid
    /// UTF-8 (always the case for the output of [`Tokenizer::encode`]); invalid sequences become
    /// U+FFFD. Errors with [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// A streaming decoder over this vocabulary.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }
}

/// The bytes token `id` (string `text`, type `ty`) stands for.
fn token_bytes_of(map: &ByteMap, id: usize, text: &str, ty: i32) -> Result<Vec<u8>> {
    match ty {
        token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN => {
            Ok(text.as_bytes().to_vec())
        }
        token_type::BYTE => {
            if let Some(b) = parse_byte_token(text) {
                return Ok(vec![b]);
            }
            Ok(map
                .decode_str(text)
                .unwrap_or_else(|| text.as_bytes().to_vec()))
        }
        token_type::NORMAL => map.decode_str(text).ok_or_else(|| {
            Error::format(
                OP,
                format!("normal token {id} `{text}` has a character outside the GPT-2 byte map"),
            )
        }),
        // Unused or unrecognised types: byte-mapped when possible, else literal.
        _ => Ok(map
            .decode_str(text)
            .unwrap_or_else(|| text.as_bytes().to_vec())),
    }
}

/// Parses a SentencePiece byte token `<0xHH>`.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
