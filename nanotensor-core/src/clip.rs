//! Choosing the range one int8 scale covers: the largest magnitude, or the MSE-optimal clip.
//!
//! # The trade-off
//! A symmetric int8 group with range `c` has step `Δ = c/127`. Every value inside the range is
//! rounded (error ≤ Δ/2, on average `Δ²/12` squared); every value beyond it is clamped to `±c`
//! (squared error `(|x| − c)²`). [`Clip::AbsMax`] takes `c = max|x|`: nothing is clamped, but one
//! outlier makes `Δ` large for every other value of the group. [`Clip::Mse`] takes the `c` that
//! minimises the total squared error on the group's own values:
//!
//! ```text
//! E(c) = Σ_{|x| ≤ c} round_err(x; c/127)²  +  Σ_{|x| > c} (|x| − c)²,       c* = argmin E(c)
//! ```
//!
//! For weight tensors with a few large values this typically halves the NMSE of a per-tensor
//! scale. It needs nothing but the weights (no calibration data).
//!
//! # How `c*` is found
//! One pass builds a histogram of `|x|` over `[0, max|x|]` ([`HIST_BINS`] bins at most) holding,
//! per bin, the count, `Σ|x|` and `Σx²` in f64. `E(c)` is then evaluated for [`CANDIDATES`]
//! thresholds `c = r·max|x|`, `r` evenly spaced in `[R_MIN, 1]`, from the histogram alone:
//! * bins above `c`: the clamping error, exactly (`Σx² − 2cΣ|x| + n·c²`);
//! * bins entirely below `Δ/2` round to code 0: their error is exactly `Σx²`;
//! * other bins: `n·Δ²/12`, the rounding error of values spread evenly over a step.
//!
//! The best candidate is then measured exactly on the values, and so is `max|x|`; the smaller
//! exact error wins, so [`Clip::Mse`] never does worse than [`Clip::AbsMax`] on the group.

use crate::error::{Error, Result};
use crate::quant::{inverse_scale, quantize_value, scale_for_max_abs};

/// Most histogram bins per group (groups smaller than `2·HIST_BINS` get `n/2` bins, at least 16).
pub const HIST_BINS: usize = 4096;
/// Candidate thresholds evaluated on the histogram.
pub const CANDIDATES: usize = 64;
/// Smallest candidate threshold, as a fraction of `max|x|`.
pub const R_MIN: f64 = 0.2;

/// How the range of an int8 group (its scale times 127) is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Clip {
    /// `c = max|x|`: nothing is clamped (the default).
    #[default]
    AbsMax,
    /// The `c ≤ max|x|` that minimises the group's squared quantization error.
    Mse,
}

impl Clip {
    /// Name used by the CLI and JSON: `absmax`, `mse`.
    pub fn name(self) -> &'static str {
        match self {
            Clip::AbsMax => "absmax",
            Clip::Mse => "mse",
        }
    }

    /// Parses `absmax` or `mse`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "absmax" | "max" => Ok(Clip::AbsMax),
            "mse" => Ok(Clip::Mse),
            other => Err(Error::invalid_arg(
                "int8 clip",
                format!("unknown clip `{other}` (expected absmax or mse)"),
            )),
        }
    }

    /// The scale of a group of finite values under this rule (0 for an all-zero group).
    pub fn scale(self, values: &[f32]) -> f32 {
        let max = crate::quant::max_abs(values);
        match self {
            Clip::AbsMax => scale_for_max_abs(max),
            Clip::Mse => scale_for_max_abs(mse_threshold(values, max)),
        }
    }
}

impl std::fmt::Display for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `Σ (x − scale·q(x))²` in f64: the exact squared error of quantizing `values` with `scale`.
pub fn squared_error(values: &[f32], scale: f32) -> f64 {
    squared_error_from(0.0, values, scale)
}

/// [`squared_error`] continuing the running sum `acc`: over a group fed in pieces, in order,
/// it returns bit for bit the sum over the whole group (the terms are added one by one, in the
/// same order).
pub fn squared_error_from(acc: f64, values: &[f32], scale: f32) -> f64 {
    let inv = inverse_scale(scale);
    values.iter().fold(acc, |acc, &x| {
        let e = x as f64 - (scale * quantize_value(x, inv) as f32) as f64;
        acc + e * e
    })
}

/// The MSE-optimal clipping threshold of a group of finite values whose largest magnitude is
/// `max` (see the [module docs](self)); `max` itself when clipping does not help.
pub fn mse_threshold(values: &[f32], max: f32) -> f32 {
    let Some(mut search) = MseSearch::new(values.len(), max) else {
        return max;
    };
    search.add(values);
    let candidate = search.candidate();
    if squared_error(values, scale_for_max_abs(candidate))
        < squared_error(values, scale_for_max_abs(max))
    {
        candidate
    } else {
        max
    }
}

/// The histogram half of [`mse_threshold`] for a group fed in pieces (a weight read a chunk of
/// rows at a time): [`MseSearch::add`] every piece, then [`MseSearch::candidate`] is the best
/// threshold on the histogram. [`mse_threshold`] then keeps it if its exact error
/// ([`squared_error_from`], summed over the pieces in order) is below that of `max`; doing the
/// same gives bit for bit [`mse_threshold`]'s answer on the whole group.
#[derive(Clone, Debug)]
pub struct MseSearch {
    /// Per bin: count, `Σ|x|`, `Σx²`.
    hist: Vec<(f64, f64, f64)>,
    width: f64,
    max: f64,
}

impl MseSearch {
    /// The search over a group of `len` finite values whose largest magnitude is `max`; `None`
    /// when there is nothing to search (`max` is 0 or fewer than 2 values): the threshold is
    /// `max`.
    pub fn new(len: usize, max: f32) -> Option<Self> {
        if max == 0.0 || len < 2 {
            return None;
        }
        let bins = (len / 2).clamp(16, HIST_BINS);
        let max = max as f64;
        Some(MseSearch {
            hist: vec![(0.0, 0.0, 0.0); bins],
            width: max / bins as f64,
            max,
        })
    }

    /// Adds some of the group's values to the histogram.
    pub fn add(&mut self, values: &[f32]) {
        let bins = self.hist.len();
        for &x in values {
            let a = x.abs() as f64;
            let b = ((a / self.width) as usize).min(bins - 1);
            let h = &mut self.hist[b];
            h.0 += 1.0;
            h.1 += a;
            h.2 += a * a;
        }
    }

    /// The candidate threshold with the smallest error estimated on the histogram.
    pub fn candidate(&self) -> f32 {
        let (hist, width) = (&self.hist, self.width);
        let estimate = |c: f64| -> f64 {
            let step = c / 127.0;
            let mut e = 0.0;
            for (i, &(n, s1, s2)) in hist.iter().enumerate() {
                if n == 0.0 {
                    continue;
                }
                let (lo, hi) = (i as f64 * width, (i + 1) as f64 * width);
                if lo >= c {
                    e += s2 - 2.0 * c * s1 + n * c * c;
                } else if hi <= step / 2.0 {
                    e += s2;
                } else {
                    e += n * step * step / 12.0;
                }
            }
            e
        };
        let mut best = (f64::INFINITY, self.max);
        for i in 0..CANDIDATES {
            let r = R_MIN + (1.0 - R_MIN) * i as f64 / (CANDIDATES - 1) as f64;
            let c = r * self.max;
            let e = estimate(c);
            if e < best.0 {
                best = (e, c);
            }
        }
        best.1 as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::max_abs;
    use crate::rng::Rng;

    /// Student-t with 3 degrees of freedom: a heavy tail, like a weight matrix's.
    fn heavy_tailed(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let chi2: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
                (rng.normal() / (chi2 / 3.0).sqrt()) as f32
            })
            .collect()
    }

    #[test]
    fn mse_threshold_is_near_the_best_of_an_exact_search() {
        // Miri runs the logic on a small group only (its interpreter is ~1000× slower).
        let cases: &[(usize, u64)] = if cfg!(miri) {
            &[(576, 1)]
        } else {
            &[(576, 1), (5000, 2), (100_000, 3)]
        };
        let grid = if cfg!(miri) { 40 } else { 400 };
        for &(n, seed) in cases {
            let x = heavy_tailed(n, seed);
            let max = max_abs(&x);
            // Exact brute force over a fine grid.
            let brute = (1..=grid)
                .map(|i| squared_error(&x, scale_for_max_abs(max * i as f32 / grid as f32)))
                .fold(f64::INFINITY, f64::min);
            let chosen = squared_error(&x, Clip::Mse.scale(&x));
            let absmax = squared_error(&x, Clip::AbsMax.scale(&x));
            assert!(
                chosen <= brute * 1.05,
                "n {n}: mse clip error {chosen} vs exact best {brute}"
            );
            // In a small group the few tail values cost more clamped than the rounding saves;
            // in a large one the tail is a small fraction and every other value gains.
            assert!(
                n < 100_000 || chosen < 0.8 * absmax,
                "n {n}: clipping must pay off on a heavy tail ({chosen} vs {absmax})"
            );
        }
    }

    #[test]
    fn clipping_never_loses_to_absmax() {
        // Uniform values: the absmax range is already right; the exact check keeps it.
        let mut rng = Rng::new(9);
        let n = if cfg!(miri) { 256 } else { 4096 };
        let x: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let e_mse = squared_error(&x, Clip::Mse.scale(&x));
        let e_max = squared_error(&x, Clip::AbsMax.scale(&x));
        assert!(e_mse <= e_max);
        for tiny in [vec![0.0f32; 8], vec![3.0f32], vec![]] {
            assert_eq!(Clip::Mse.scale(&tiny), Clip::AbsMax.scale(&tiny));
        }
    }

    #[test]
    fn names_round_trip() {
        for c in [Clip::AbsMax, Clip::Mse] {
            assert_eq!(Clip::parse(c.name()).unwrap(), c);
        }
        assert!(matches!(
            Clip::parse("p99"),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
