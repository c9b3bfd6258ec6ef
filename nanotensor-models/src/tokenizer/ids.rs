//! The vocabulary's string → id table, compact: a Gemma 3 vocabulary has 262,144 strings, and a
//! `HashMap<String, u32>` would hold each in its own allocation next to a table of 32-byte
//! entries — about 25 MB, a tenth of the model file, for a table built from strings the file
//! already spells. Here every string lives once in one buffer, and an open-addressing table of
//! `u32` ids (at most half full, linear probing) finds them: about 5 MB for the same vocabulary.

use std::hash::BuildHasher;

use nanotensor_core::{Error, Result};

use super::vocab::OP;

/// An empty slot (no id is `u32::MAX`: [`super::vocab::Vocab::new`] bounds the ids below it).
const EMPTY: u32 = u32::MAX;

/// Vocabulary string → id; for a duplicated string the last id wins, as in llama.cpp.
#[derive(Clone)]
pub(super) struct TokenIds {
    /// Every token's string, in id order.
    text: String,
    /// `text[ends[id − 1]..ends[id]]` is token `id`'s string (`ends[−1]` = 0).
    ends: Vec<usize>,
    /// Ids by hash of their string, [`EMPTY`] where none; a power-of-two length.
    slots: Vec<u32>,
    /// Seeded per process, so that a file cannot choose strings that all collide.
    hasher: std::collections::hash_map::RandomState,
}

impl TokenIds {
    /// The table of `tokens` (id = position). `tokens.len()` must be below `u32::MAX`.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] / [`Error::Overflow`] for a vocabulary whose table or text does
    /// not fit.
    // The vocabulary usually comes from a file: no unchecked arithmetic on its sizes.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn new(tokens: &[String]) -> Result<TokenIds> {
        let n = tokens.len();
        let len = n
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or_else(|| Error::overflow(OP, "tokenizer.ggml.tokens", "id table"))?
            .max(2);
        let text_len = tokens
            .iter()
            .try_fold(0usize, |acc, t| acc.checked_add(t.len()))
            .ok_or_else(|| Error::overflow(OP, "tokenizer.ggml.tokens", "bytes"))?;
        let oom = |bytes: usize| Error::OutOfMemory {
            op: OP,
            bytes: bytes as u64,
        };
        let mut text = String::new();
        text.try_reserve_exact(text_len)
            .map_err(|_| oom(text_len))?;
        let mut ends = Vec::new();
        ends.try_reserve_exact(n).map_err(|_| oom(n))?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| oom(len))?;
        slots.resize(len, EMPTY);
        let mut ids = TokenIds {
            text,
            ends,
            slots,
            hasher: Default::default(),
        };
        for (id, t) in (0u32..).zip(tokens) {
            ids.text.push_str(t);
            ids.ends.push(ids.text.len());
            let slot = ids.find(t);
            ids.slots[slot] = id;
        }
        Ok(ids)
    }

    /// Token `id`'s string.
    fn token(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// The slot holding `s`'s id, or the empty slot where it would go. The table is at most
    /// half full, so the probe ends.
    fn find(&self, s: &str) -> usize {
        let mask = self.slots.len() - 1;
        // Truncating the 64-bit hash keeps its low bits, which the mask takes anyway.
        let mut i = self.hasher.hash_one(s) as usize & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY || self.token(id) == s {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of string `s`, if it is in the vocabulary.
    pub fn get(&self, s: &str) -> Option<&u32> {
        let id = &self.slots[self.find(s)];
        (*id != EMPTY).then_some(id)
    }

    /// Bytes the table holds (strings, ends, slots), for the tests of its size.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
            + self.slots.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_string_and_the_last_of_duplicates() {
        let tokens: Vec<String> = ["a", "", "ab", "▁the", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..1000).map(|i| format!("t{i}")))
            .collect();
        let ids = TokenIds::new(&tokens).unwrap();
        for (id, t) in tokens.iter().enumerate() {
            let want = tokens.iter().rposition(|u| u == t).unwrap() as u32;
            assert_eq!(ids.get(t), Some(&want), "{t:?} (id {id})");
        }
        assert_eq!(ids.get("a"), Some(&4));
        for absent in ["c", "t1000", "ab ", "▁th"] {
            assert_eq!(ids.get(absent), None, "{absent}");
        }
        // One buffer of text, one `usize` per token and two `u32` slots per token at most.
        let text: usize = tokens.iter().map(String::len).sum();
        assert!(ids.heap_bytes() <= text + tokens.len() * (8 + 2 * 2 * 4));
        let none = TokenIds::new(&[]).unwrap();
        assert_eq!(none.get(""), None);
    }
}
