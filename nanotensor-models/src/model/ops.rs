//! The elementwise steps of the LLaMA block: RMSNorm, RoPE, SwiGLU's gate, the residual add,
//! and the log-softmax perplexity needs.
//!
//! These are O(n) per token (the matmuls are O(n²)), so they are plain loops over `f32` slices;
//! the backends own everything heavy. Every function works on one or more rows in place or into
//! a caller-provided buffer so the decode loop allocates nothing.

/// RMSNorm (Zhang & Sennrich, 2019) of each row of `x` into `out`:
///
/// `out[r, j] = x[r, j] / sqrt(mean_j(x[r, j]²) + eps) · weight[j]`
///
/// * `x` — `rows · dim` values, row-major (`dim = weight.len()`)
/// * `weight` — the learned gain `g`, `[dim]`
/// * `eps` — added to the mean square before the square root (`1e-5` for SmolLM2)
/// * `out` — same length as `x`; fully overwritten
///
/// The mean square is accumulated in `f64`, so the normalisation does not depend on the row's
/// length or summation order.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    debug_assert!(dim > 0 && x.len().is_multiple_of(dim) && out.len() == x.len());
    for (xr, yr) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let ms = xr.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / dim as f64;
        let inv = (1.0 / (ms + f64::from(eps)).sqrt()) as f32;
        for ((y, &v), &g) in yr.iter_mut().zip(xr).zip(weight) {
            *y = v * inv * g;
        }
    }
}

/// Rotary position embedding tables: `cos(p·θ_i)` and `sin(p·θ_i)` for every position
/// `p < positions` and pair `i < head_dim / 2`, with `θ_i = base^(−2i / head_dim)` (Su et al.,
/// RoFormer, 2021). Angles are computed in `f64` and rounded once.
#[derive(Clone, Debug)]
pub struct RopeTable {
    half: usize,
    /// `[positions, head_dim / 2]`
    cos: Vec<f32>,
    /// `[positions, head_dim / 2]`
    sin: Vec<f32>,
}

impl RopeTable {
    /// The table for `positions` positions of heads of `head_dim` (even) with frequency `base`.
    pub fn new(positions: usize, head_dim: usize, base: f64) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for i in 0..half {
                let theta = base.powf(-2.0 * i as f64 / head_dim as f64);
                let angle = p as f64 * theta;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Number of positions the table covers.
    pub fn positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates every head of the rows of `x` in place, row `r` at position `pos0 + r`.
    ///
    /// Adjacent pairs `(x[2i], x[2i+1])` of each head turn by the angle `p·θ_i`:
    ///
    /// `x'[2i] = x[2i]·cos − x[2i+1]·sin`, `x'[2i+1] = x[2i]·sin + x[2i+1]·cos`
    ///
    /// (the original LLaMA layout; llama.cpp's GGUF conversion permutes the Q and K rows so
    /// that this is the right pairing for Hugging Face checkpoints as well).
    ///
    /// * `x` — `rows · row_len` values; each row holds `row_len / head_dim` heads
    /// * `row_len` — values per row (heads · head_dim)
    /// * `pos0` — position of the first row; `pos0 + rows ≤ positions()` (checked by the caller)
    pub fn apply(&self, x: &mut [f32], row_len: usize, pos0: usize) {
        let half = self.half;
        debug_assert!(row_len.is_multiple_of(2 * half) && x.len().is_multiple_of(row_len));
        for (r, row) in x.chunks_exact_mut(row_len).enumerate() {
            let p = pos0 + r;
            let cos = &self.cos[p * half..(p + 1) * half];
            let sin = &self.sin[p * half..(p + 1) * half];
            for head in row.chunks_exact_mut(2 * half) {
                for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * c - b * s;
                    pair[1] = a * s + b * c;
                }
            }
        }
    }
}

/// SiLU, `silu(x) = x · σ(x) = x / (1 + e^(−x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU's gating (Shazeer, 2020) in place: `gate[j] ← silu(gate[j]) · up[j]`.
///
/// * `gate` — the gate projection `x·W_gateᵀ`, overwritten with the gated hidden state
/// * `up` — the up projection `x·W_upᵀ`, same length
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    debug_assert_eq!(gate.len(), up.len());
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// The residual connection in place: `x[j] ← x[j] + delta[j]`.
pub fn add_assign(x: &mut [f32], delta: &[f32]) {
    debug_assert_eq!(x.len(), delta.len());
    for (a, &b) in x.iter_mut().zip(delta) {
        *a += b;
    }
}

/// Negative log-likelihood of `target` under `softmax(logits)`, in `f64`:
///
/// `−log p(target) = log Σ_j exp(z_j − max z) + max z − z_target`
///
/// * `logits` — one row of raw scores `z`
/// * `target` — index into `logits` (checked by the caller)
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
    let sum: f64 = logits.iter().map(|&z| (f64::from(z) - max).exp()).sum();
    sum.ln() + max - f64::from(logits[target])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64, tol: f64) -> bool {
        (f64::from(a) - b).abs() <= tol
    }

    #[test]
    fn rmsnorm_matches_hand_computation() {
        // Row [3, 4]: mean square 12.5, eps 0 → scale 1/√12.5; weights [1, 2].
        // Row [1, −1]: mean square 1, eps 1 → scale 1/√2.
        let x = [3.0, 4.0, 1.0, -1.0];
        let mut y = [0.0; 4];
        rmsnorm(&x[..2], &[1.0, 2.0], 0.0, &mut y[..2]);
        rmsnorm(&x[2..], &[1.0, 2.0], 1.0, &mut y[2..]);
        let s = 1.0 / 12.5f64.sqrt();
        assert!(
            close(y[0], 3.0 * s, 1e-6) && close(y[1], 8.0 * s, 1e-6),
            "{y:?}"
        );
        let s = 1.0 / 2f64.sqrt();
        assert!(close(y[2], s, 1e-6) && close(y[3], -2.0 * s, 1e-6), "{y:?}");
        // Two rows in one call equal two calls.
        let mut both = [0.0; 4];
        rmsnorm(&x, &[1.0, 2.0], 0.0, &mut both);
        assert_eq!(both[..2], y[..2]);
    }

    #[test]
    fn rope_rotates_adjacent_pairs_by_position_times_frequency() {
        // head_dim 4, base 100: θ_0 = 1, θ_1 = 100^(−1/2) = 0.1.
        let t = RopeTable::new(3, 4, 100.0);
        assert_eq!(t.positions(), 3);
        // Two rows (positions 1 and 2) of one head [1, 0, 0, 1].
        let mut x = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        t.apply(&mut x, 4, 1);
        // Position 1: pair 0 turns by 1 rad, pair 1 by 0.1 rad.
        let expect = [
            1f64.cos(),
            1f64.sin(),
            -(0.1f64.sin()),
            0.1f64.cos(),
            2f64.cos(),
            2f64.sin(),
            -(0.2f64.sin()),
            0.2f64.cos(),
        ];
        for (a, b) in x.iter().zip(expect) {
            assert!(close(*a, b, 1e-6), "{x:?}");
        }
        // Position 0 is the identity; a rotation keeps each pair's length.
        let mut y = [0.3, -0.4, 2.0, 5.0];
        t.apply(&mut y, 4, 0);
        assert_eq!(y, [0.3, -0.4, 2.0, 5.0]);
        t.apply(&mut y, 4, 2);
        assert!(close(y[0].hypot(y[1]), 0.5, 1e-6));
    }

    #[test]
    fn rope_applies_to_every_head_of_a_row() {
        let t = RopeTable::new(2, 2, 10_000.0);
        // Two heads of dim 2 at position 1 (θ_0 = 1).
        let mut x = [1.0, 0.0, 0.0, 2.0];
        t.apply(&mut x, 4, 1);
        let (c, s) = (1f64.cos(), 1f64.sin());
        let expect = [c, s, -2.0 * s, 2.0 * c];
        for (a, b) in x.iter().zip(expect) {
            assert!(close(*a, b, 1e-6), "{x:?}");
        }
    }

    #[test]
    fn swiglu_and_silu_match_hand_values() {
        assert_eq!(silu(0.0), 0.0);
        // silu(1) = 1 / (1 + e^-1) = 0.7310585786…
        assert!(close(silu(1.0), 0.731_058_578_630_004_9, 1e-7));
        // silu(−2) = −2 / (1 + e^2) = −0.2384058440…
        assert!(close(silu(-2.0), -0.238_405_844_044_234, 1e-7));
        let mut g = [1.0, -2.0, 0.0];
        swiglu(&mut g, &[2.0, 3.0, 7.0]);
        assert!(close(g[0], 2.0 * 0.731_058_578_630_004_9, 1e-6));
        assert!(close(g[1], 3.0 * -0.238_405_844_044_234, 1e-6));
        assert_eq!(g[2], 0.0);
    }

    #[test]
    fn residual_add_is_elementwise() {
        let mut x = [1.0, 2.0, -3.0];
        add_assign(&mut x, &[0.5, -2.0, 3.0]);
        assert_eq!(x, [1.5, 0.0, 0.0]);
    }

    #[test]
    fn nll_of_uniform_and_peaked_logits() {
        // Four equal logits: p = 1/4, −log p = ln 4.
        assert!((nll(&[2.0; 4], 1) - 4f64.ln()).abs() < 1e-12);
        // Logits [0, ln 3]: p(1) = 3/4.
        let z = [0.0, 3f32.ln()];
        assert!((nll(&z, 1) - (4.0f64 / 3.0).ln()).abs() < 1e-7);
        // Large logits do not overflow.
        assert!((nll(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-12);
    }
}
