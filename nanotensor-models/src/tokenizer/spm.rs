//! SentencePiece-style tokenizer (`tokenizer.ggml.model = llama`), as llama.cpp's SPM tokenizer
//! runs it: merges are driven by the vocabulary's scores, not by a merge list.
//!
//! Encoding `text`:
//!
//! 1. **Special tokens** are split out exactly as for byte-level BPE (control, user-defined and
//!    unknown-type tokens matched whole, longest first). Gemma's user-defined tokens include
//!    `\n`, `\t` and runs of spaces, so these never reach the merge stage.
//! 2. Each stretch of ordinary text has every space (U+0020 only) replaced by `▁` (U+2581); when
//!    the model sets `add_space_prefix`, a `▁` is also put in front of a stretch that opens the
//!    text or follows a special token.
//! 3. **Merging.** The stretch starts as one symbol per Unicode character. Any two adjacent
//!    symbols whose concatenation is a vocabulary string are a candidate, ranked by that
//!    token's score (higher first; among equal scores the leftmost). The best candidate is
//!    merged, its two new neighbour pairs become candidates, and so on until none is left.
//!    Candidates live in a binary max-heap; one made stale by an earlier merge is recognised on
//!    pop because its two symbols no longer have the lengths it recorded (a symbol only grows,
//!    and only by absorbing its right neighbour). Cost O(n log n) for n characters.
//! 4. **Output.** Each final symbol is a vocabulary string (every merge result is one) or a
//!    single character the vocabulary lacks; the latter becomes one byte token `<0xHH>` per
//!    UTF-8 byte (falling back, as llama.cpp does, to a token spelled as that one byte), or the
//!    unknown token when the vocabulary has neither.
//!
//! llama.cpp also records, for every candidate, how to split its string again ("resegment") when
//! a final symbol is not a token; since a merge only ever produces vocabulary strings, that path
//! only applies to single characters, handled by the byte fallback above.
//!
//! Decoding: a normal token's `▁` become spaces; a byte token is its byte (so characters split
//! into byte tokens are reassembled into UTF-8); control, user-defined and unknown tokens are
//! their literal text. Unused and unrecognised token types decode like normal tokens (llama.cpp
//! prints nothing for them), which keeps `decode(encode(text)) == text` whenever the merges
//! produce one. With `add_space_prefix`, the space that encoding put in front is dropped from
//! the first token again.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

use super::token_type;
use super::vocab::{parse_byte_token, Fragment, Vocab, OP};
use nanotensor_core::{Error, Result};

/// SentencePiece's visible space, `▁` (U+2581).
pub const SPACE: char = '\u{2581}';
const NIL: usize = usize::MAX;

/// Settings of an [`SpmTokenizer`] beyond the vocabulary arrays, as a GGUF file states them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpmOptions {
    /// Beginning-of-sequence id (`tokenizer.ggml.bos_token_id`).
    pub bos: Option<u32>,
    /// End-of-sequence id (`tokenizer.ggml.eos_token_id`).
    pub eos: Option<u32>,
    /// Unknown-token id (`tokenizer.ggml.unknown_token_id`): the last resort for a byte that has
    /// no byte token.
    pub unk: Option<u32>,
    /// Put `▁` in front of text that opens the input or follows a special token
    /// (`tokenizer.ggml.add_space_prefix`).
    pub add_space_prefix: bool,
    /// [`super::Tokenizer::encode_prompt`] puts BOS first (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// [`super::Tokenizer::encode_prompt`] puts EOS last (`tokenizer.ggml.add_eos_token`).
    pub add_eos: bool,
}

/// A SentencePiece-style (score-driven) tokenizer. Immutable once built, so one instance can be
/// shared between threads.
#[derive(Clone)]
pub struct SpmTokenizer {
    pub(super) vocab: Vocab,
    /// Score of each token: a merge that produces a higher-scoring token goes first.
    scores: Vec<f32>,
    /// Token that stands for each byte in the byte fallback, if any (boxed, as in
    /// [`super::BpeTokenizer`], to keep [`super::Tokenizer`]'s variants small).
    byte_token: Box<[Option<u32>; 256]>,
    unk: Option<u32>,
    add_space_prefix: bool,
}

impl fmt::Debug for SpmTokenizer {
    /// A summary: printing 262,144 vocabulary strings helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpmTokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("specials", &self.vocab.specials.len())
            .field("byte_tokens", &self.byte_token.iter().flatten().count())
            .field("add_space_prefix", &self.add_space_prefix)
            .field("bos", &self.vocab.bos)
            .field("eos", &self.vocab.eos)
            .finish_non_exhaustive()
    }
}

/// A merge candidate: symbols `left` and `right` (adjacent when pushed) make a token of `score`
/// whose string is `size` bytes long.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Candidate {
    /// Higher score first, then the leftmost. `total_cmp` gives NaN scores (possible in a
    /// malformed file) a place in the order instead of breaking the heap.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}

/// One symbol of the text being merged: `text[start..start + len]`, in a linked list.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    /// Length in bytes; 0 once merged into its left neighbour.
    len: usize,
    prev: usize,
    next: usize,
}

impl SpmTokenizer {
    /// Builds a tokenizer from the vocabulary arrays of a model file.
    ///
    /// - `tokens`: the vocabulary strings, `▁` standing for a space in normal tokens, `<0xHH>`
    ///   spelling byte tokens;
    /// - `scores`: one score per token (empty means all 0, as llama.cpp reads a file without
    ///   them);
    /// - `token_types`: one [`token_type`] value per token (empty means "all normal").
    ///
    /// Errors ([`Error::Format`]) when the arrays disagree in length or an id in `options` is not
    /// in the vocabulary.
    pub fn new(
        tokens: Vec<String>,
        scores: Vec<f32>,
        token_types: Vec<i32>,
        options: SpmOptions,
    ) -> Result<SpmTokenizer> {
        let n = tokens.len();
        let scores = if scores.is_empty() {
            vec![0.0; n]
        } else if scores.len() == n {
            scores
        } else {
            return Err(Error::format(
                OP,
                format!("{} scores for {n} tokens", scores.len()),
            ));
        };
        if let Some(unk) = options.unk.filter(|&id| id as usize >= n) {
            return Err(Error::format(
                OP,
                format!("unknown-token id {unk} is outside the vocabulary of {n} tokens"),
            ));
        }
        let mut vocab = Vocab::new(tokens, token_types, options.bos, options.eos, |_, t, ty| {
            Ok(token_bytes_of(t, ty))
        })?;
        vocab.add_bos = options.add_bos && options.bos.is_some();
        vocab.add_eos = options.add_eos && options.eos.is_some();
        vocab.strip_first_space = options.add_space_prefix;

        // llama.cpp's byte_to_token: `<0xHH>` (upper-case hex) first, then the byte itself as a
        // one-byte string.
        let mut byte_token = Box::new([None; 256]);
        let mut buf = [0u8; 4];
        for (b, slot) in (0..=255u8).zip(byte_token.iter_mut()) {
            *slot = vocab.ids.get(format!("<0x{b:02X}>").as_str()).copied();
            if slot.is_none() && b.is_ascii() {
                let one: &str = char::from(b).encode_utf8(&mut buf);
                *slot = vocab.ids.get(one).copied();
            }
        }
        Ok(SpmTokenizer {
            vocab,
            scores,
            byte_token,
            unk: options.unk,
            add_space_prefix: options.add_space_prefix,
        })
    }

    /// Whether a `▁` is put in front of text that opens the input or follows a special token.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The score of `id`.
    ///
    /// Errors with [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn score(&self, id: u32) -> Result<f32> {
        Ok(self.scores[self.vocab.check(id)?])
    }

    /// Encodes `text` into token ids. No BOS is added; special tokens written in the text are
    /// recognised. See the [module documentation](self) for the stages.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut escaped = String::new();
        let mut after_special = true;
        for fragment in self.vocab.split_specials(text) {
            match fragment {
                Fragment::Special(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    escaped.clear();
                    if self.add_space_prefix && after_special {
                        escaped.push(SPACE);
                    }
                    escaped.extend(t.chars().map(|c| if c == ' ' { SPACE } else { c }));
                    self.encode_escaped(&escaped, &mut out);
                    after_special = false;
                }
            }
        }
        out
    }

    /// Merges one stretch of escaped text (stage 3) and appends its tokens (stage 4).
    fn encode_escaped(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                len: c.len_utf8(),
                prev: NIL,
                next: NIL,
            })
            .collect();
        let n = symbols.len();
        if n == 0 {
            return;
        }
        for (i, s) in symbols.iter_mut().enumerate() {
            s.prev = if i == 0 { NIL } else { i - 1 };
            s.next = if i + 1 == n { NIL } else { i + 1 };
        }
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 1..n {
            self.push_candidate(text, &symbols, i - 1, i, &mut heap);
        }
        while let Some(c) = heap.pop() {
            let (l, r) = (symbols[c.left], symbols[c.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != c.size {
                continue; // stale: one side was merged away or has grown since
            }
            symbols[c.left].len = c.size;
            symbols[c.left].next = r.next;
            symbols[c.right].len = 0;
            if r.next != NIL {
                symbols[r.next].prev = c.left;
            }
            self.push_candidate(text, &symbols, l.prev, c.left, &mut heap);
            self.push_candidate(text, &symbols, c.left, r.next, &mut heap);
        }
        // Symbol 0 is never merged away (only right-hand symbols are), so the list starts there.
        let mut i = 0;
        while i != NIL {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.piece_id(piece) {
                Some(id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_token[usize::from(b)].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    /// The id of vocabulary piece `s`, byte tokens excluded: a `<0xHH>` token stands for a byte
    /// the pieces cannot spell, reached only through the byte fallback, as in SentencePiece. Text
    /// that spells `<0xB4>` (and a vocabulary whose merges reach that string) must encode to
    /// pieces that decode to those six characters, not to the byte 0xB4.
    fn piece_id(&self, s: &str) -> Option<u32> {
        let id = *self.vocab.ids.get(s)?;
        (self.vocab.types.get(id as usize) != Some(&token_type::BYTE)).then_some(id)
    }

    /// Queues the pair `left`, `right` if their concatenation is a vocabulary string.
    fn push_candidate(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        heap: &mut BinaryHeap<Candidate>,
    ) {
        if left == NIL || right == NIL {
            return;
        }
        let (l, r) = (symbols[left], symbols[right]);
        let size = l.len + r.len;
        if let Some(id) = self.piece_id(&text[l.start..l.start + size]) {
            heap.push(Candidate {
                score: self.scores[id as usize],
                left,
                right,
                size,
            });
        }
    }
}

/// The bytes a token (string `text`, type `ty`) decodes to.
fn token_bytes_of(text: &str, ty: i32) -> Vec<u8> {
    match ty {
        token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN => {
            text.as_bytes().to_vec()
        }
        token_type::BYTE => match parse_byte_token(text) {
            Some(b) => vec![b],
            None => text.as_bytes().to_vec(),
        },
        _ => text.replace(SPACE, " ").into_bytes(),
    }
}

#[cfg(test)]
#[path = "spm_tests.rs"]
mod tests;
