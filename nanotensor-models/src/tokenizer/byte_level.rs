//! Byte-level BPE (GPT-2 style, `tokenizer.ggml.model = gpt2`).
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
//! 3. **BPE** ([`super::bpe`]): each piece starts as one symbol per UTF-8 byte — the vocabulary
//!    spells byte `b` as the character [`ByteMap::char_of`]`(b)` — and adjacent symbols are
//!    merged by rank until no ranked pair is left.
//!
//! Decoding maps each id back to its exact bytes (normal tokens through the byte map, special
//! tokens as their literal text), so `decode(encode(text)) == text` for any text whose bytes
//! all have a token.

use std::fmt;

use super::bpe::{MergeTable, NO_TOKEN};
use super::bytes::ByteMap;
use super::vocab::{parse_byte_token, Fragment, Vocab, OP};
use super::{token_type, PreTokenizer};
use nanotensor_core::{Error, Result};

/// A byte-level BPE tokenizer. Immutable once built, so one instance can be shared between
/// threads.
#[derive(Clone)]
pub struct BpeTokenizer {
    pub(super) vocab: Vocab,
    /// Token of each single byte, or [`NO_TOKEN`] (boxed to keep [`super::Tokenizer`]'s
    /// variants small).
    byte_token: Box<[u32; 256]>,
    merges: MergeTable,
    pre: PreTokenizer,
}

impl fmt::Debug for BpeTokenizer {
    /// A summary: printing 49,152 vocabulary strings helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BpeTokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("merges", &self.merges.len())
            .field("specials", &self.vocab.specials.len())
            .field("pre", &self.pre)
            .field("bos", &self.vocab.bos)
            .field("eos", &self.vocab.eos)
            .finish_non_exhaustive()
    }
}

impl BpeTokenizer {
    /// Builds a tokenizer from the vocabulary arrays of a model file.
    ///
    /// - `tokens`: the vocabulary strings; id `i` is `tokens[i]`. Normal tokens are spelled with
    ///   the GPT-2 byte map (`Ġ` for a space, …).
    /// - `merges`: the merge list, one `"left right"` string per line; rank = index.
    /// - `token_types`: one [`token_type`] value per token (empty means "all normal").
    /// - `bos`, `eos`: the beginning- and end-of-sequence ids, if the model has them.
    ///
    /// The pre-tokenizer is [`PreTokenizer::Smollm`]; change it with
    /// [`BpeTokenizer::with_pre_tokenizer`]. BOS is not added by
    /// [`super::Tokenizer::encode_prompt`] unless [`BpeTokenizer::with_add_bos`] says so.
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
    ) -> Result<BpeTokenizer> {
        let map = ByteMap::new();
        let vocab = Vocab::new(tokens, token_types, bos, eos, |id, text, ty| {
            token_bytes_of(&map, id, text, ty)
        })?;
        let ids = &vocab.ids;
        let mut byte_token = Box::new([NO_TOKEN; 256]);
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

        Ok(BpeTokenizer {
            vocab,
            byte_token,
            merges: table,
            pre: PreTokenizer::Smollm,
        })
    }

    /// The same tokenizer with another pre-tokenizer.
    pub fn with_pre_tokenizer(mut self, pre: PreTokenizer) -> Self {
        self.pre = pre;
        self
    }

    /// The same tokenizer, adding BOS (when it has one) and EOS in
    /// [`super::Tokenizer::encode_prompt`] as the flags say (a model's `add_bos_token` and
    /// `add_eos_token`).
    pub fn with_add_bos(mut self, add_bos: bool, add_eos: bool) -> Self {
        self.vocab.add_bos = add_bos && self.vocab.bos.is_some();
        self.vocab.add_eos = add_eos && self.vocab.eos.is_some();
        self
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// Number of merge rules.
    pub fn merge_count(&self) -> usize {
        self.merges.len()
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
        for fragment in self.vocab.split_specials(text) {
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
