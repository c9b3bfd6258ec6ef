//! The BPE merge loop (Sennrich et al., 2016; byte-level as in GPT-2).
//!
//! A pre-token starts as one symbol per byte. The merge list ranks pairs of tokens: rank `r` is
//! the `r`-th line of `tokenizer.ggml.merges`, `"a b"` meaning token `a` followed by token `b`
//! becomes token `ab`. BPE repeatedly merges the adjacent pair of lowest rank (leftmost among
//! equal ranks) until no adjacent pair has a rank.
//!
//! Algorithm: the symbols form a doubly linked list over a vector; a binary min-heap holds
//! candidate pairs keyed by `(rank, position of the left symbol)`. Merging the pair at `l, r`
//! replaces `l`'s token by the merged token, unlinks `r` and pushes the two new pairs
//! `(prev(l), l)` and `(l, next(l))`. Heap entries made stale by earlier merges are recognised on
//! pop because the tokens they recorded no longer sit at those positions (a symbol's token only
//! ever grows, so it can never match an old entry again). Cost O(n log n) per pre-token of `n`
//! bytes, against O(n²) for rescanning all pairs after each merge.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Marks a position that holds no token: a removed symbol, or a byte the vocabulary lacks.
pub const NO_TOKEN: u32 = u32::MAX;
/// "No neighbour" in the linked list.
const NIL: usize = usize::MAX;

/// Rank and result of every mergeable pair.
#[derive(Clone, Debug, Default)]
pub struct MergeTable {
    /// `(left << 32 | right)` → `(rank, merged token)`.
    pairs: HashMap<u64, (u32, u32)>,
}

#[inline]
fn key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl MergeTable {
    /// An empty table (no merges).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `left right → merged` has rank `rank`. A pair listed twice keeps its first
    /// (lowest) rank.
    pub fn insert(&mut self, left: u32, right: u32, rank: u32, merged: u32) {
        self.pairs.entry(key(left, right)).or_insert((rank, merged));
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no merges.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `(rank, merged)` of the pair, if it is mergeable.
    #[inline]
    pub fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        if left == NO_TOKEN || right == NO_TOKEN {
            return None;
        }
        self.pairs.get(&key(left, right)).copied()
    }

    /// Applies the merges to the initial symbols `symbols` (one token per byte; [`NO_TOKEN`] for
    /// a byte without a token, which never merges and is dropped) and appends the final tokens
    /// to `out`.
    pub fn apply(&self, symbols: &[u32], out: &mut Vec<u32>) {
        match symbols.len() {
            0 => return,
            1 => {
                if symbols[0] != NO_TOKEN {
                    out.push(symbols[0]);
                }
                return;
            }
            _ => {}
        }
        let n = symbols.len();
        let mut ids: Vec<u32> = symbols.to_vec();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        prev[0] = NIL;
        let mut next: Vec<usize> = (1..=n).collect();
        next[n - 1] = NIL;

        // Heap entries: Reverse((rank, left position, left token, right token)).
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some((rank, _)) = self.get(ids[i], ids[i + 1]) {
                heap.push(Reverse((rank, i, ids[i], ids[i + 1])));
            }
        }
        while let Some(Reverse((_, l, left_id, right_id))) = heap.pop() {
            let r = next[l];
            if ids[l] != left_id || r == NIL || ids[r] != right_id {
                continue; // stale
            }
            let Some((_, merged)) = self.get(left_id, right_id) else {
                continue;
            };
            ids[l] = merged;
            ids[r] = NO_TOKEN;
            let rr = next[r];
            next[l] = rr;
            if rr != NIL {
                prev[rr] = l;
            }
            let p = prev[l];
            if p != NIL {
                if let Some((rank, _)) = self.get(ids[p], merged) {
                    heap.push(Reverse((rank, p, ids[p], merged)));
                }
            }
            if rr != NIL {
                if let Some((rank, _)) = self.get(merged, ids[rr]) {
                    heap.push(Reverse((rank, l, merged, ids[rr])));
                }
            }
        }
        let mut i = 0;
        while i != NIL {
            if ids[i] != NO_TOKEN {
                out.push(ids[i]);
            }
            i = next[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens 0..=3 are the bytes a, b, c, d; merges build larger tokens.
    fn table(merges: &[(u32, u32, u32)]) -> MergeTable {
        let mut t = MergeTable::new();
        for (rank, &(l, r, m)) in merges.iter().enumerate() {
            t.insert(l, r, rank as u32, m);
        }
        t
    }

    fn run(t: &MergeTable, symbols: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        t.apply(symbols, &mut out);
        out
    }

    #[test]
    fn lowest_rank_merges_first() {
        // rank 0: b c → 4 ("bc"); rank 1: a b → 5 ("ab"); rank 2: a 4 → 6 ("abc").
        let t = table(&[(1, 2, 4), (0, 1, 5), (0, 4, 6)]);
        // "abc": (b,c) has the lower rank, so "a"+"bc", then "abc".
        assert_eq!(run(&t, &[0, 1, 2]), [6]);
        // "abd": only (a,b) applies.
        assert_eq!(run(&t, &[0, 1, 3]), [5, 3]);
    }

    #[test]
    fn rank_order_beats_position_order() {
        // rank 0: c d → 4; rank 1: a b → 5; rank 2: b c → 6.
        // "abcd": (c,d) first, then (a,b); (b,c) never gets a chance.
        let t = table(&[(2, 3, 4), (0, 1, 5), (1, 2, 6)]);
        assert_eq!(run(&t, &[0, 1, 2, 3]), [5, 4]);
        // If (b,c) ranked first, it would win instead: a, bc, d.
        let t = table(&[(1, 2, 6), (2, 3, 4), (0, 1, 5)]);
        assert_eq!(run(&t, &[0, 1, 2, 3]), [0, 6, 3]);
    }

    #[test]
    fn equal_ranks_merge_leftmost_first() {
        // a a → 4. "aaa" gives "aa" + "a", not "a" + "aa".
        let t = table(&[(0, 0, 4), (4, 4, 5)]);
        assert_eq!(run(&t, &[0, 0, 0]), [4, 0]);
        // "aaaa" → aa aa → aaaa.
        assert_eq!(run(&t, &[0, 0, 0, 0]), [5]);
        assert_eq!(run(&t, &[0, 0, 0, 0, 0]), [5, 0]);
    }

    #[test]
    fn missing_bytes_block_merges_and_are_dropped() {
        let t = table(&[(0, 1, 4)]);
        assert_eq!(run(&t, &[0, NO_TOKEN, 1]), [0, 1]);
        assert_eq!(run(&t, &[NO_TOKEN]), Vec::<u32>::new());
        assert_eq!(run(&t, &[]), Vec::<u32>::new());
        assert_eq!(run(&t, &[2]), [2]);
    }

    #[test]
    fn matches_naive_bpe_on_random_inputs() {
        // Naive reference: rescan all adjacent pairs, merge the lowest-rank leftmost one.
        fn naive(t: &MergeTable, symbols: &[u32]) -> Vec<u32> {
            let mut s = symbols.to_vec();
            loop {
                let best = (0..s.len().saturating_sub(1))
                    .filter_map(|i| t.get(s[i], s[i + 1]).map(|(rank, m)| (rank, i, m)))
                    .min();
                match best {
                    Some((_, i, m)) => {
                        s[i] = m;
                        s.remove(i + 1);
                    }
                    None => return s,
                }
            }
        }
        // Tokens 0..4 are bytes; merges build 4.. from random pairs of existing tokens.
        let mut rng = nanotensor_core::rng::Rng::new(7);
        let mut merges = Vec::new();
        let mut n_tokens = 4u32;
        while merges.len() < 40 {
            let l = (rng.next_u64() % u64::from(n_tokens)) as u32;
            let r = (rng.next_u64() % u64::from(n_tokens)) as u32;
            if merges.iter().any(|&(a, b, _)| (a, b) == (l, r)) {
                continue;
            }
            merges.push((l, r, n_tokens));
            n_tokens += 1;
        }
        let t = table(&merges);
        // 300 inputs natively; 30 under Miri, where each costs about half a second.
        for _ in 0..if cfg!(miri) { 30 } else { 300 } {
            let len = 1 + (rng.next_u64() % 24) as usize;
            let input: Vec<u32> = (0..len).map(|_| (rng.next_u64() % 4) as u32).collect();
            assert_eq!(run(&t, &input), naive(&t, &input), "input {input:?}");
        }
    }
}
