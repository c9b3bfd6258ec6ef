//! The elementwise steps of a transformer block: RMSNorm, RoPE (both pairings), the FFN gates
//! (SwiGLU, GeGLU), the residual add, the logit soft cap, and the log-softmax perplexity needs.
//!
//! These are O(n) per token (the matmuls are O(n²)), so they are plain loops over `f32` slices;
//! the backends own everything heavy. Every function works on one or more rows in place or into
//! a caller-provided buffer so the decode loop allocates nothing.

pub use crate::model::config::{Activation, RopeStyle};

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

/// [`rmsnorm`] in place: each `weight.len()`-long row of `x` is replaced by its normalised,
/// scaled self (Gemma's per-head Q and K norms run on every head of a projection this way).
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    debug_assert!(dim > 0 && x.len().is_multiple_of(dim));
    for xr in x.chunks_exact_mut(dim) {
        let ms = xr.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / dim as f64;
        let inv = (1.0 / (ms + f64::from(eps)).sqrt()) as f32;
        for (v, &g) in xr.iter_mut().zip(weight) {
            *v = *v * inv * g;
        }
    }
}

/// Rotary position embedding tables: `cos(p·s·θ_i)` and `sin(p·s·θ_i)` for every position
/// `p < positions` and frequency `i < head_dim / 2`, with `θ_i = base^(−2i / head_dim)` (Su et
/// al., RoFormer, 2021) and `s` the linear position scale (1 without RoPE scaling). Angles are
/// computed in `f64` and rounded once.
#[derive(Clone, Debug)]
pub struct RopeTable {
    half: usize,
    style: RopeStyle,
    /// `[positions, head_dim / 2]`
    cos: Vec<f32>,
    /// `[positions, head_dim / 2]`
    sin: Vec<f32>,
}

impl RopeTable {
    /// The adjacent-pair table for `positions` positions of heads of `head_dim` (even) with
    /// frequency `base` (LLaMA's RoPE).
    pub fn new(positions: usize, head_dim: usize, base: f64) -> Self {
        Self::with_style(positions, head_dim, base, 1.0, RopeStyle::Adjacent)
    }

    /// The table for `positions` positions of heads of `head_dim` (even), frequency `base`,
    /// positions multiplied by `scale`, pairing the values as `style` says.
    pub fn with_style(
        positions: usize,
        head_dim: usize,
        base: f64,
        scale: f64,
        style: RopeStyle,
    ) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for i in 0..half {
                let theta = base.powf(-2.0 * i as f64 / head_dim as f64);
                let angle = p as f64 * scale * theta;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable {
            half,
            style,
            cos,
            sin,
        }
    }

    /// Number of positions the table covers.
    pub fn positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates every head of the rows of `x` in place, row `r` at position `pos0 + r`.
    ///
    /// Pair `i` of a head, `(a, b)`, turns by the angle `p·θ_i`:
    ///
    /// `a' = a·cos − b·sin`, `b' = a·sin + b·cos`
    ///
    /// where the pair is `(x[2i], x[2i+1])` in the [`RopeStyle::Adjacent`] layout (the original
    /// LLaMA one; llama.cpp's GGUF conversion permutes LLaMA's Q and K rows so that it is right
    /// for Hugging Face checkpoints too) and `(x[i], x[i + head_dim/2])` in the
    /// [`RopeStyle::Neox`] one (Hugging Face's `rotate_half`, which Gemma's GGUF keeps).
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
                match self.style {
                    RopeStyle::Adjacent => {
                        for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                            let (a, b) = (pair[0], pair[1]);
                            pair[0] = a * c - b * s;
                            pair[1] = a * s + b * c;
                        }
                    }
                    RopeStyle::Neox => {
                        let (lo, hi) = head.split_at_mut(half);
                        for (((a, b), &c), &s) in lo.iter_mut().zip(hi).zip(cos).zip(sin) {
                            let (x0, x1) = (*a, *b);
                            *a = x0 * c - x1 * s;
                            *b = x0 * s + x1 * c;
                        }
                    }
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

/// GELU in its tanh approximation (Hendrycks & Gimpel, 2016), as Gemma uses it:
///
/// `gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`
///
/// Computed in `f32` (it runs on every FFN hidden value of every token) as the equal
/// `x / (1 + e^(−2u))`, `u = √(2/π)·(x + 0.044715·x³)` (since `1 + tanh u = 2σ(2u)`): the sum
/// `1 + tanh u` cancels for negative `x`, where the exponential form keeps its relative
/// precision.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + (-2.0 * u).exp())
}

/// GeGLU's gating (Shazeer, 2020) in place: `gate[j] ← gelu_tanh(gate[j]) · up[j]`.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    debug_assert_eq!(gate.len(), up.len());
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu_tanh(*g) * u;
    }
}

/// The FFN's gating with `activation`: [`swiglu`] or [`geglu`].
pub fn gated(activation: Activation, gate: &mut [f32], up: &[f32]) {
    match activation {
        Activation::Silu => swiglu(gate, up),
        Activation::GeluTanh => geglu(gate, up),
    }
}

/// Soft cap in place: `z ← cap · tanh(z / cap)` (bounded in `(−cap, cap)`, order kept).
pub fn softcap(z: &mut [f32], cap: f32) {
    for v in z {
        *v = cap * (*v / cap).tanh();
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

    #[test]
    fn gelu_tanh_matches_the_formula_in_f64() {
        let exact = |x: f64| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        };
        let mut worst = 0.0f64;
        for i in -2000..=2000 {
            let x = i as f32 * 0.005; // [-10, 10]
            let want = exact(f64::from(x));
            // Relative error, absolute below 1e-6 (where the f64 tanh form itself cancels).
            let err = (f64::from(gelu_tanh(x)) - want).abs() / want.abs().max(1e-6);
            worst = worst.max(err);
        }
        assert!(worst < 1e-5, "worst relative error {worst}");
        // Far tails: identity on the right, zero on the left, no NaN.
        assert_eq!(gelu_tanh(50.0), 50.0);
        assert_eq!(gelu_tanh(-50.0), 0.0);
        assert_eq!(gelu_tanh(0.0), 0.0);
        // GeGLU multiplies by `up`; `gated` dispatches on the activation.
        let (mut g, mut s) = ([1.0f32, -0.5], [1.0f32, -0.5]);
        geglu(&mut g, &[2.0, 3.0]);
        assert!(close(g[0], 2.0 * exact(1.0), 1e-6) && close(g[1], 3.0 * exact(-0.5), 1e-6));
        gated(Activation::Silu, &mut s, &[2.0, 3.0]);
        assert!(close(s[0], 2.0 * 0.731_058_578_630_004_9, 1e-6));
    }

    #[test]
    fn neox_rope_rotates_pairs_half_a_head_apart() {
        // head_dim 4, base 100: θ_0 = 1, θ_1 = 0.1; NEOX pairs are (0, 2) and (1, 3).
        let t = RopeTable::with_style(3, 4, 100.0, 1.0, RopeStyle::Neox);
        // Position 2 of the head [1, 2, 3, 4]: (1, 3) turns by 2 rad, (2, 4) by 0.2 rad.
        let mut x = [1.0, 2.0, 3.0, 4.0];
        t.apply(&mut x, 4, 2);
        let rot = |a: f64, b: f64, t: f64| (a * t.cos() - b * t.sin(), a * t.sin() + b * t.cos());
        let (a0, b0) = rot(1.0, 3.0, 2.0);
        let (a1, b1) = rot(2.0, 4.0, 0.2);
        for (got, want) in x.iter().zip([a0, a1, b0, b1]) {
            assert!(close(*got, want, 1e-6), "{x:?}");
        }
        // It is the adjacent-pair rotation of the head with its halves interleaved.
        let adj = RopeTable::new(3, 4, 100.0);
        let mut y = [1.0, 3.0, 2.0, 4.0];
        adj.apply(&mut y, 4, 2);
        assert_eq!([y[0], y[2], y[1], y[3]], x);
        // A position scale of ½ at position 2 is position 1 unscaled.
        let half = RopeTable::with_style(3, 4, 100.0, 0.5, RopeStyle::Neox);
        let (mut u, mut v) = ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]);
        half.apply(&mut u, 4, 2);
        t.apply(&mut v, 4, 1);
        for (a, b) in u.iter().zip(v) {
            assert!((a - b).abs() < 1e-6, "{u:?} vs {v:?}");
        }
    }

    #[test]
    fn rmsnorm_in_place_normalises_each_head() {
        // Two heads of 2: [3, 4] and [1, −1], one gain [1, 2] for both.
        let x = [3.0, 4.0, 1.0, -1.0];
        let mut want = [0.0; 4];
        rmsnorm(&x, &[1.0, 2.0], 1e-6, &mut want);
        let mut y = x;
        rmsnorm_in_place(&mut y, &[1.0, 2.0], 1e-6);
        assert_eq!(y, want);
    }

    #[test]
    fn softcap_bounds_and_keeps_order() {
        let mut z = [0.0, 1.0, 30.0, 1000.0, -1000.0];
        softcap(&mut z, 30.0);
        assert_eq!(z[0], 0.0);
        assert!(close(z[1], 30.0 * (1.0f64 / 30.0).tanh(), 1e-6));
        assert!(close(z[2], 30.0 * 1f64.tanh(), 1e-5));
        assert!(z[3] <= 30.0 && z[3] > z[2] && z[4] >= -30.0);
    }
}
