//! The online softmax: softmax over a row that arrives in blocks, in one pass and O(1) state.
//!
//! After blocks `S₁ … S_t` the state holds `m = max` of every score seen and
//! `l = Σ exp(s − m)`; an output accumulator `acc = Σ exp(s − m)·v_s` is kept by the caller.
//! A new block `S` updates it as
//!
//! ```text
//! m' = max(m, max S)          α = exp(m − m')          P = exp(S − m')
//! l' = α·l + Σ P              acc' = α·acc + P·V
//! ```
//!
//! and the softmax-weighted sum is `acc / l` at the end (zero when no score was finite: a row that
//! sees no key). This is the step FlashAttention is built on (Dao et al., 2022, Alg. 1; Milakov &
//! Gimelshein, 2018). The f32 SIMD kernels run the same step lane-wise in base 2
//! (`kernel::softmax_step`); this scalar f64 form serves the generic element types and is the
//! reference the kernel is tested against.

/// Running statistics of one softmax row: the maximum `m` and the sum `l` relative to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnlineSoftmax {
    /// Largest score seen (`-inf` before any finite score).
    pub m: f64,
    /// `Σ exp(s − m)` over the scores seen.
    pub l: f64,
}

impl Default for OnlineSoftmax {
    fn default() -> Self {
        OnlineSoftmax {
            m: f64::NEG_INFINITY,
            l: 0.0,
        }
    }
}

impl OnlineSoftmax {
    /// Folds in a block of scores: overwrites `scores` with `P = exp(s − m')` and returns
    /// `α = exp(m − m')`, by which the caller must scale its accumulator before adding `P·V`.
    /// `-inf` scores (masked keys) get `P = 0`.
    pub fn update(&mut self, scores: &mut [f64]) -> f64 {
        let block_max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let m_new = self.m.max(block_max);
        if m_new == f64::NEG_INFINITY {
            // Nothing visible yet: probabilities are zero and the (zero) state is unchanged.
            scores.iter_mut().for_each(|s| *s = 0.0);
            return 1.0;
        }
        let alpha = (self.m - m_new).exp();
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - m_new).exp();
            sum += *s;
        }
        self.l = self.l * alpha + sum;
        self.m = m_new;
        alpha
    }

    /// The final normaliser `1/l`, or 0 for a row that saw no key (its output is zeros).
    pub fn inv_l(&self) -> f64 {
        if self.l > 0.0 {
            1.0 / self.l
        } else {
            0.0
        }
    }

    /// Merges two partial states of the same row computed over disjoint key ranges, returning
    /// the merged state and the factors `(a, b)` by which to scale the two accumulators before
    /// adding them: `acc = a·acc₁ + b·acc₂` (the flash-decoding combine).
    pub fn merge(self, other: OnlineSoftmax) -> (OnlineSoftmax, f64, f64) {
        let m = self.m.max(other.m);
        if m == f64::NEG_INFINITY {
            return (OnlineSoftmax::default(), 0.0, 0.0);
        }
        let (a, b) = ((self.m - m).exp(), (other.m - m).exp());
        (
            OnlineSoftmax {
                m,
                l: self.l * a + other.l * b,
            },
            a,
            b,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotensor_core::reference::softmax_rows_f64;

    /// Softmax-weighted sum of `vals` computed block by block must equal the one-shot softmax.
    fn blocked_weighted_sum(scores: &[f64], vals: &[f64], block: usize) -> f64 {
        let mut st = OnlineSoftmax::default();
        let mut acc = 0.0;
        for (sb, vb) in scores.chunks(block).zip(vals.chunks(block)) {
            let mut p = sb.to_vec();
            let alpha = st.update(&mut p);
            acc = acc * alpha + p.iter().zip(vb).map(|(p, v)| p * v).sum::<f64>();
        }
        acc * st.inv_l()
    }

    #[test]
    fn blockwise_update_equals_one_shot_softmax() {
        let scores: Vec<f64> = (0..37)
            .map(|i| ((i * 7919) % 23) as f64 * 0.7 - 5.0)
            .collect();
        let vals: Vec<f64> = (0..37).map(|i| (i as f64).sin()).collect();
        let p = softmax_rows_f64(&scores, scores.len());
        let want: f64 = p.iter().zip(&vals).map(|(p, v)| p * v).sum();
        for block in [1, 2, 5, 16, 37, 64] {
            let got = blocked_weighted_sum(&scores, &vals, block);
            assert!((got - want).abs() < 1e-13, "block {block}: {got} vs {want}");
        }
    }

    #[test]
    fn large_logits_do_not_overflow() {
        // exp(1e4) overflows f64; the running max keeps every exponent ≤ 0.
        let scores = [1e4, 1e4 - 1.0, -1e4, 1e4];
        let vals = [1.0, 2.0, 3.0, 4.0];
        let e1 = (-1.0f64).exp();
        let want = (1.0 + 2.0 * e1 + 4.0) / (2.0 + e1);
        let got = blocked_weighted_sum(&scores, &vals, 1);
        assert!((got - want).abs() < 1e-14, "{got} vs {want}");
    }

    #[test]
    fn fully_masked_row_gives_zero_and_masked_prefix_is_ignored() {
        let ninf = f64::NEG_INFINITY;
        assert_eq!(
            blocked_weighted_sum(&[ninf, ninf, ninf], &[1.0, 2.0, 3.0], 2),
            0.0
        );
        // A first block that is fully masked must not poison later blocks.
        let got = blocked_weighted_sum(&[ninf, ninf, 0.0, 0.0], &[9.0, 9.0, 1.0, 3.0], 2);
        assert!((got - 2.0).abs() < 1e-15);
    }

    #[test]
    fn merge_of_partials_equals_whole() {
        let s = [0.3, -1.2, 2.5, 0.0, 1.1];
        let mut whole = OnlineSoftmax::default();
        whole.update(&mut s.to_vec());
        let (mut a, mut b) = (OnlineSoftmax::default(), OnlineSoftmax::default());
        a.update(&mut s[..2].to_vec());
        b.update(&mut s[2..].to_vec());
        let (m, fa, fb) = a.merge(b);
        assert!((m.m - whole.m).abs() == 0.0 && (m.l - whole.l).abs() < 1e-14);
        assert!((fa - (a.m - m.m).exp()).abs() < 1e-15 && fb == 1.0);
        let empty = OnlineSoftmax::default();
        assert_eq!(empty.merge(empty).0, OnlineSoftmax::default());
    }
}
