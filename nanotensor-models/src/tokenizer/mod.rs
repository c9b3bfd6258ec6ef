//! Tokenizers built from a GGUF vocabulary, behind one [`Tokenizer`] type.
//!
//! Three families exist; the first two are chosen by a GGUF file's `tokenizer.ggml.model`:
//!
//! - `gpt2`: byte-level BPE ([`BpeTokenizer`], module [`byte_level`]): pre-tokenization by a
//!   regular expression, then ranked merges from `tokenizer.ggml.merges` over bytes spelled with
//!   the GPT-2 byte map (SmolLM2);
//! - `llama`: SentencePiece-style ([`SpmTokenizer`], module [`spm`]): no pre-tokenization,
//!   spaces written `▁`, merges of characters driven by `tokenizer.ggml.scores`, byte fallback
//!   to `<0xHH>` tokens (Gemma 3);
//! - `bert`: WordPiece ([`WordPieceTokenizer`], module [`wordpiece`]) from a Hugging Face
//!   `tokenizer.json`: BERT normalization and pre-tokenization, greedy longest-match pieces
//!   with `##` continuations (all-MiniLM-L6-v2).
//!
//! All share the vocabulary tables, special-token matching (control, user-defined and
//! unknown-type tokens written in the text become their ids, longest first), decoding to exact
//! bytes and [`StreamDecoder`].
//!
//! [`Tokenizer`] is an enum over the two rather than a trait object: the set of families is
//! closed (it is what the file format names), callers keep a plain value that is `Clone`,
//! `Debug`, `Send` and `Sync` (a field of the CLI's model, a `OnceLock` in tests, the web
//! session) and that [`StreamDecoder`] can borrow, dispatch is a `match` with no allocation,
//! and a new family makes every `match` that must handle it fail to compile until it does.
//!
//! ```
//! use nanotensor_models::tokenizer::Tokenizer;
//!
//! // A toy byte-level BPE vocabulary: the bytes "a", "b", "Ġ" (space) and the merges "a b",
//! // "Ġ ab".
//! let tokens = ["<s>", "a", "b", "Ġ", "ab", "Ġab"].map(String::from).to_vec();
//! let tok = Tokenizer::new(tokens, &["a b", "Ġ ab"], vec![3, 1, 1, 1, 1, 1], Some(0), None)?;
//! assert_eq!(tok.encode("ab ab<s>"), [4, 5, 0]);
//! assert_eq!(tok.decode(&[4, 5, 0])?, "ab ab<s>");
//! # Ok::<(), nanotensor_core::Error>(())
//! ```

pub mod bpe;
pub mod byte_level;
pub mod bytes;
mod gguf;
mod ids;
pub mod pretokenize;
pub mod spm;
mod stream;
mod vocab;
pub mod wordpiece;

pub use byte_level::BpeTokenizer;
pub use gguf::keys;
use nanotensor_core::Result;
pub use pretokenize::PreTokenizer;
pub use spm::{SpmOptions, SpmTokenizer};
pub use stream::StreamDecoder;
use vocab::Vocab;
pub use wordpiece::{BertNormalizer, WordPieceTokenizer};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    /// An ordinary vocabulary entry, spelled through the byte map (BPE) or with `▁` for a space
    /// (SentencePiece).
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

/// A tokenizer of either family; see the [module documentation](self). Immutable once built,
/// so one instance can be shared between threads.
#[derive(Clone, Debug)]
pub enum Tokenizer {
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
    Bpe(BpeTokenizer),
    /// SentencePiece-style, score-driven (`tokenizer.ggml.model = llama`).
    Spm(SpmTokenizer),
    /// WordPiece (BERT), from a `tokenizer.json`.
    WordPiece(WordPieceTokenizer),
}

impl From<WordPieceTokenizer> for Tokenizer {
    fn from(t: WordPieceTokenizer) -> Self {
        Tokenizer::WordPiece(t)
    }
}

impl From<BpeTokenizer> for Tokenizer {
    fn from(t: BpeTokenizer) -> Self {
        Tokenizer::Bpe(t)
    }
}

impl From<SpmTokenizer> for Tokenizer {
    fn from(t: SpmTokenizer) -> Self {
        Tokenizer::Spm(t)
    }
}

impl Tokenizer {
    /// A byte-level BPE tokenizer: [`BpeTokenizer::new`] (pre-tokenizer
    /// [`PreTokenizer::Smollm`]).
    ///
    /// # Errors
    /// As [`BpeTokenizer::new`].
    pub fn new<S: AsRef<str>>(
        tokens: Vec<String>,
        merges: &[S],
        token_types: Vec<i32>,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<Tokenizer> {
        BpeTokenizer::new(tokens, merges, token_types, bos, eos).map(Tokenizer::Bpe)
    }

    fn vocab(&self) -> &Vocab {
        match self {
            Tokenizer::Bpe(t) => &t.vocab,
            Tokenizer::Spm(t) => &t.vocab,
            Tokenizer::WordPiece(t) => &t.vocab,
        }
    }

    /// The family as GGUF names it in `tokenizer.ggml.model`: `"gpt2"`, `"llama"` or `"bert"`.
    pub fn model_name(&self) -> &'static str {
        match self {
            Tokenizer::Bpe(_) => "gpt2",
            Tokenizer::Spm(_) => "llama",
            Tokenizer::WordPiece(_) => "bert",
        }
    }

    /// The pre-tokenizer of a byte-level BPE tokenizer; `None` for SentencePiece, which has
    /// none, and for WordPiece, whose BERT pre-tokenizer is fixed.
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match self {
            Tokenizer::Bpe(t) => Some(t.pre_tokenizer()),
            Tokenizer::Spm(_) | Tokenizer::WordPiece(_) => None,
        }
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab().len()
    }

    /// Number of merge rules of a byte-level BPE tokenizer; 0 for SentencePiece, whose merges
    /// follow from the scores, and for WordPiece, which has none.
    pub fn merge_count(&self) -> usize {
        match self {
            Tokenizer::Bpe(t) => t.merge_count(),
            Tokenizer::Spm(_) | Tokenizer::WordPiece(_) => 0,
        }
    }

    /// The beginning-of-sequence id, if any.
    pub fn bos(&self) -> Option<u32> {
        self.vocab().bos
    }

    /// The end-of-sequence id, if any.
    pub fn eos(&self) -> Option<u32> {
        self.vocab().eos
    }

    /// Whether [`Tokenizer::encode_prompt`] puts BOS first (the model's `add_bos_token`; only
    /// when it has a BOS id).
    pub fn add_bos(&self) -> bool {
        self.vocab().add_bos
    }

    /// Whether [`Tokenizer::encode_prompt`] puts EOS last (the model's `add_eos_token`).
    pub fn add_eos(&self) -> bool {
        self.vocab().add_eos
    }

    /// The ids matched whole in input text (control, user-defined and unknown tokens), longest
    /// first.
    pub fn special_ids(&self) -> &[u32] {
        &self.vocab().specials
    }

    /// The vocabulary string of `id` as stored in the model (`"Ġworld"` in byte-level BPE,
    /// `"▁world"` in SentencePiece).
    pub fn token_piece(&self, id: u32) -> Result<&str> {
        let v = self.vocab();
        Ok(&v.tokens[v.check(id)?])
    }

    /// The exact bytes `id` stands for (`b" world"`), as it decodes anywhere but at the start
    /// of a text (see [`Tokenizer::decode_bytes`]).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        self.vocab().piece(id, false)
    }

    /// The [`token_type`] of `id`.
    pub fn token_type(&self, id: u32) -> Result<i32> {
        let v = self.vocab();
        Ok(v.types[v.check(id)?])
    }

    /// True when `id` is a control token (`<|im_end|>`, `<end_of_turn>`, …); false for other or
    /// unknown ids.
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab().types.get(id as usize) == Some(&token_type::CONTROL)
    }

    /// The id whose vocabulary string is exactly `piece` (as stored: byte-mapped or with `▁`).
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.vocab().ids.get(piece).copied()
    }

    /// Encodes `text` into token ids. No BOS is added; special tokens written in the text are
    /// recognised (what llama.cpp's `llama-tokenize --no-bos` prints).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Bpe(t) => t.encode(text),
            Tokenizer::Spm(t) => t.encode(text),
            Tokenizer::WordPiece(t) => t.encode(text),
        }
    }

    /// Encodes `text` as a model input: [`Tokenizer::encode`] with BOS in front when the model
    /// asks for it ([`Tokenizer::add_bos`]) and EOS at the end when it asks for that
    /// ([`Tokenizer::add_eos`]), as llama.cpp tokenizes with `add_special`.
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        let v = self.vocab();
        let body = self.encode(text);
        let mut out = Vec::with_capacity(body.len().saturating_add(2));
        out.extend(v.bos.filter(|_| v.add_bos));
        out.extend(body);
        out.extend(v.eos.filter(|_| v.add_eos));
        out
    }

    /// The bytes of the decoded ids: each token's bytes (special tokens as their text),
    /// concatenated. A SentencePiece model that prefixes text with a space when encoding
    /// (`add_space_prefix`) has that space dropped from the first token, as llama.cpp does.
    ///
    /// Errors with [`nanotensor_core::Error::OutOfRange`] for an id outside the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.vocab().decode_bytes(ids)
    }

    /// Decodes the ids to text (special tokens as their text), as [`Tokenizer::decode_bytes`].
    /// Lossless when the bytes are valid UTF-8 (always the case for the output of
    /// [`Tokenizer::encode`]); invalid sequences become U+FFFD. Errors with
    /// [`nanotensor_core::Error::OutOfRange`] for an id outside the vocabulary.
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

    /// The bytes `id` adds to decoded text; `first` when it opens the text.
    pub(crate) fn piece(&self, id: u32, first: bool) -> Result<&[u8]> {
        self.vocab().piece(id, first)
    }
}

#[cfg(test)]
mod tests;
