//! What every tokenizer family shares: the id ↔ string tables, the bytes each id decodes to, the
//! special tokens matched whole in input text, and the BOS/EOS settings.

use super::ids::TokenIds;
use super::token_type;
use nanotensor_core::{Error, Result};

pub(super) const OP: &str = "tokenizer";

/// The vocabulary of a tokenizer, independent of how text is cut into tokens.
#[derive(Clone)]
pub(super) struct Vocab {
    /// Vocabulary strings as stored in the model.
    pub tokens: Vec<String>,
    /// `token_type::*` of each token.
    pub types: Vec<i32>,
    /// The exact bytes each token decodes to.
    pub bytes: Vec<Box<[u8]>>,
    /// Vocabulary string → id (the last id wins for a duplicated string, as in llama.cpp).
    pub ids: TokenIds,
    /// Special tokens matched whole in input text, longest first.
    pub specials: Vec<u32>,
    /// Which specials occur in a text (Gemma has 6,414: searching for each in turn would cost
    /// 6,414 passes over every input).
    matcher: SpecialTrie,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether [`super::Tokenizer::encode_prompt`] puts BOS first / EOS last.
    pub add_bos: bool,
    pub add_eos: bool,
    /// Whether decoding drops one leading space of the first token (SentencePiece models that
    /// prefix the text with a space when encoding).
    pub strip_first_space: bool,
}

/// A stretch of input after special-token matching.
pub(super) enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

impl Vocab {
    /// Checks the arrays against each other and builds the lookup tables. `bytes_of(id, text,
    /// type)` gives the bytes a token decodes to (the families spell tokens differently).
    ///
    /// `n_ids` bounds every id: it is below `u32::MAX`, which the merge loops reserve.
    // The vocabulary usually comes from a file: no unchecked arithmetic on its sizes.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn new(
        tokens: Vec<String>,
        token_types: Vec<i32>,
        bos: Option<u32>,
        eos: Option<u32>,
        bytes_of: impl Fn(usize, &str, i32) -> Result<Vec<u8>>,
    ) -> Result<Vocab> {
        let n = tokens.len();
        let n_ids = u32::try_from(n)
            .ok()
            .filter(|&n| n != 0 && n < u32::MAX)
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
        let mut bytes = Vec::with_capacity(n);
        for (id, (text, &ty)) in tokens.iter().zip(&types).enumerate() {
            bytes.push(bytes_of(id, text, ty)?.into_boxed_slice());
        }
        let ids = TokenIds::new(&tokens)?;
        let mut specials: Vec<u32> = (0..n_ids)
            .filter(|&id| {
                matches!(
                    types[id as usize],
                    token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
                ) && !tokens[id as usize].is_empty()
            })
            .collect();
        // Longest first (in bytes, as llama.cpp sorts them); ties by id so the order is
        // deterministic.
        specials.sort_by_key(|&id| (std::cmp::Reverse(tokens[id as usize].len()), id));
        let matcher = SpecialTrie::new(specials.iter().map(|&id| tokens[id as usize].as_bytes()));
        Ok(Vocab {
            tokens,
            types,
            bytes,
            ids,
            specials,
            matcher,
            bos,
            eos,
            add_bos: false,
            add_eos: false,
            strip_first_space: false,
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// `id` as an index, or [`Error::OutOfRange`].
    pub fn check(&self, id: u32) -> Result<usize> {
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

    /// Splits `text` at whole occurrences of special tokens, longest special first: each special
    /// in turn cuts the text fragments left by the longer ones at its leftmost non-overlapping
    /// occurrences (llama.cpp's `tokenizer_st_partition` with special parsing on). Only the
    /// specials that occur in `text` at all take a turn.
    pub fn split_specials<'a>(&self, text: &'a str) -> Vec<Fragment<'a>> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(text)];
        for rank in self.matcher.present(text.as_bytes()) {
            let id = self.specials[rank];
            let special = self.tokens[id as usize].as_str();
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

    /// The bytes of `ids` as decoded text: each token's bytes, concatenated, with one leading
    /// space of the first token dropped when [`Vocab::strip_first_space`] says so.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len().saturating_mul(4));
        for (i, &id) in ids.iter().enumerate() {
            out.extend_from_slice(self.piece(id, i == 0)?);
        }
        Ok(out)
    }

    /// The bytes token `id` adds to decoded text; `first` says whether it opens the text.
    pub fn piece(&self, id: u32, first: bool) -> Result<&[u8]> {
        let bytes = &self.bytes[self.check(id)?];
        Ok(match bytes.split_first() {
            Some((b' ', rest)) if first && self.strip_first_space => rest,
            _ => bytes,
        })
    }
}

/// Parses a SentencePiece byte token `<0xHH>`.
pub(super) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A byte trie over the special tokens' strings, to find which of them occur in a text in one
/// pass (each position walks the trie as far as the text matches a special's prefix).
#[derive(Clone, Debug, Default)]
struct SpecialTrie {
    /// Node 0 is the root. Children are sorted by byte for binary search.
    nodes: Vec<TrieNode>,
    /// Number of strings inserted (ranks are below it).
    len: usize,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    children: Vec<(u8, usize)>,
    /// Rank (index into [`Vocab::specials`]) of the special spelled by the path here; the
    /// first-ranked when several specials share a string.
    rank: Option<usize>,
}

impl SpecialTrie {
    /// The trie of `strings`, whose index is their rank.
    fn new<'a>(strings: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut nodes = vec![TrieNode::default()];
        let mut len = 0;
        for (rank, s) in strings.enumerate() {
            len = rank + 1;
            let mut at = 0usize;
            for &b in s {
                let next = match nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => nodes[at].children[i].1,
                    Err(i) => {
                        let new = nodes.len();
                        nodes[at].children.insert(i, (b, new));
                        nodes.push(TrieNode::default());
                        new
                    }
                };
                at = next;
            }
            if at != 0 && nodes[at].rank.is_none() {
                nodes[at].rank = Some(rank);
            }
        }
        SpecialTrie { nodes, len }
    }

    /// The ranks of the specials occurring in `text`, ascending, each once.
    fn present(&self, text: &[u8]) -> Vec<usize> {
        if self.len == 0 {
            return Vec::new();
        }
        let mut seen = vec![false; self.len];
        for start in 0..text.len() {
            let mut at = 0usize;
            for &b in &text[start..] {
                let node = &self.nodes[at];
                match node.children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => at = node.children[i].1,
                    Err(_) => break,
                }
                if let Some(rank) = self.nodes[at].rank {
                    seen[rank] = true;
                }
            }
        }
        (0..self.len).filter(|&r| seen[r]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's partition written directly: every special in priority order, each cutting
    /// the remaining text fragments at its leftmost non-overlapping occurrences.
    fn naive(v: &Vocab, text: &str) -> Vec<Result<String, u32>> {
        let mut frags: Vec<Result<String, u32>> = vec![Ok(text.to_string())];
        for &id in &v.specials {
            let special = &v.tokens[id as usize];
            let mut next = Vec::new();
            for f in frags {
                match f {
                    Ok(t) => {
                        let mut rest = t.as_str();
                        while let Some(at) = rest.find(special.as_str()) {
                            next.push(Ok(rest[..at].to_string()));
                            next.push(Err(id));
                            rest = &rest[at + special.len()..];
                        }
                        next.push(Ok(rest.to_string()));
                    }
                    Err(id) => next.push(Err(id)),
                }
            }
            frags = next;
        }
        frags.retain(|f| !matches!(f, Ok(t) if t.is_empty()));
        frags
    }

    #[test]
    fn special_splitting_matches_the_direct_partition() {
        // Overlapping, nested and repeated specials, a duplicated string (ids 5 and 6), and
        // specials sharing prefixes.
        let specials = [
            "ab", "abc", "bca", "a", "cc", "<x>", "<x>", "  ", "   ", "\n",
        ];
        let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
        tokens.push("z".into());
        let mut types = vec![token_type::CONTROL; specials.len()];
        types[7] = token_type::USER_DEFINED;
        types.push(token_type::NORMAL);
        let v = Vocab::new(tokens, types, None, None, |_, t, _| {
            Ok(t.as_bytes().to_vec())
        })
        .unwrap();
        let pool = ["a", "b", "c", " ", "\n", "<", "x", ">", "z", "é"];
        let mut rng = nanotensor_core::rng::Rng::new(9);
        for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
            let len = (rng.next_u64() % 24) as usize;
            let text: String = (0..len)
                .map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize])
                .collect();
            let got: Vec<Result<String, u32>> = v
                .split_specials(&text)
                .into_iter()
                .map(|f| match f {
                    Fragment::Text(t) => Ok(t.to_string()),
                    Fragment::Special(id) => Err(id),
                })
                .collect();
            assert_eq!(got, naive(&v, &text), "{text:?}");
        }
    }
}
