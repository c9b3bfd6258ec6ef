//! Incremental decoding for generation: ids arrive one at a time, text leaves as soon as it is
//! complete UTF-8.

use super::Tokenizer;
use nanotensor_core::Result;

/// Turns a stream of token ids into text, holding back the bytes of a character that is split
/// across tokens until its last byte arrives.
///
/// A byte-level BPE token may end in the middle of a multi-byte UTF-8 character (`🙂` is four
/// bytes and can be spread over two or three tokens), and a SentencePiece byte-fallback token is
/// a single byte of one. [`StreamDecoder::push`] returns only the
/// text that is complete so far; bytes that can still become a valid character wait for the next
/// token. Bytes that can never become valid UTF-8 are replaced by U+FFFD, as
/// [`String::from_utf8_lossy`] would.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    /// Bytes received but not yet returned: at most the first 3 bytes of one character.
    pending: Vec<u8>,
    /// No token pushed yet: the next one opens the text (see [`Tokenizer::decode_bytes`]).
    first: bool,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder with nothing pending.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        StreamDecoder {
            tokenizer,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Adds token `id` and returns the text completed by it (possibly empty).
    ///
    /// Errors with [`nanotensor_core::Error::OutOfRange`] for an id outside the vocabulary; the pending
    /// state is then unchanged.
    pub fn push(&mut self, id: u32) -> Result<String> {
        let bytes = self.tokenizer.piece(id, self.first)?;
        self.first = false;
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return Ok(out);
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The first `valid_up_to` bytes are checked UTF-8, so this never falls back.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Invalid bytes: replace them and go on with the rest.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// True when bytes of an unfinished character are waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: an unfinished character left over becomes U+FFFD.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
