//! The element-wise steps of a BERT encoder layer around its products: the feed-forward's GELU
//! (bias added first) and LayerNorm. Each is a plain loop compiled by [`crate::multiversion`]
//! for the baseline target and for AVX-512, and written so that LLVM vectorises it: `exp` is a
//! polynomial here rather than the C library's scalar `expf`, called once per value, and every
//! sum keeps eight running lanes instead of one serial chain. Both copies perform the same
//! operations in the same order (no FMA contraction in Rust), so they agree bit for bit.

use crate::multiversion::{multiversion, Level};

/// Lanes of the partial sums in [`layer_norm`].
const LANES: usize = 8;

multiversion! {
    /// `x[r, j] ← GELU(x[r, j] + bias[j])` for every row of `bias.len()` values, GELU in its
    /// exact form [`gelu_erf`] (BERT's `gelu`).
    fn bias_gelu_erf(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v = gelu_erf(*v + b);
            }
        }
    }
}

multiversion! {
    /// LayerNorm (Ba et al., 2016) of each `gain.len()`-long row of `x`, in place, after adding
    /// `delta + bias` when `delta` is given (the post-LayerNorm residual step):
    ///
    /// `x[r, j] ← (x[r, j] − μ_r) / √(σ²_r + eps) · gain[j] + beta[j]`
    ///
    /// with the row's mean `μ_r` and (biased) variance `σ²_r`, both accumulated in `f64` around
    /// the mean (two passes), so that a large mean does not cancel the variance.
    fn layer_norm(
        x: &mut [f32],
        residual: Option<(&[f32], &[f32])>,
        gain: &[f32],
        beta: &[f32],
        eps: f32
    ) {
        let h = gain.len();
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            if let Some((delta, bias)) = residual {
                for ((v, &d), &b) in row.iter_mut().zip(&delta[r * h..(r + 1) * h]).zip(bias) {
                    *v += d + b;
                }
            }
            let mean = lane_sum(row, f64::from) / h as f64;
            let var = lane_sum(row, |v| {
                let c = f64::from(v) - mean;
                c * c
            }) / h as f64;
            let inv = 1.0 / (var + f64::from(eps)).sqrt();
            for ((v, &g), &b) in row.iter_mut().zip(gain).zip(beta) {
                *v = ((f64::from(*v) - mean) * inv) as f32 * g + b;
            }
        }
    }
}

/// `Σ f(v)` over `row` in [`LANES`] running sums (value `i` into sum `i mod LANES`), added up
/// at the end: a sum LLVM can vectorise, in an order fixed by the source.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; LANES];
    let (whole, tail) = row.as_chunks::<LANES>();
    for c in whole {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += f(v);
    }
    acc.iter().sum()
}

/// GELU in its exact form, `½·x·(1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function, Abramowitz & Stegun 7.1.26: the formula's absolute error is below
/// 1.5·10⁻⁷; [`exp_nonpositive`] and `f32` rounding add a few more ulps of GELU's `1 + erf`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let s = x.abs();
    let t = 1.0 / (1.0 + P * s);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp_nonpositive(-s * s);
    y.copysign(x)
}

/// `eˣ` for `x ≤ 0`, within 2 ulps: `x = n·ln 2 + r` with `|r| ≤ ½ ln 2`
/// (Cody–Waite: `ln 2` split in two so that `n·ln2_hi` is exact), `eʳ` by its Taylor
/// polynomial of degree 7 (remainder below `r⁸/8! ≈ 5·10⁻⁹`), times `2ⁿ` built in the exponent
/// bits. Below −87 the result is `e⁻⁸⁷ ≈ 1.6·10⁻³⁸` rather than a subnormal: GELU's use
/// multiplies it by at most 1.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // 1.5·2²³: adding it rounds to an integer, held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // `n` as an integer from the bits of `t` (exact for |n| < 2²²): no float-to-int
    // conversion, which would need a saturating fix-up in every lane.
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n ≥ −126 here, so 2ⁿ is a normal number.
    p * f32::from_bits(((ni + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in float64 by its Taylor series (converges fast for |x| ≤ 3).
    fn erf_f64(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_nonpositive_is_within_2_ulps_of_f64() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let got = f64::from(exp_nonpositive(x));
            let want = f64::from(x).exp();
            let ulp = f64::from(f32::EPSILON) * want;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulps");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1e-37);
        // A NaN is clamped here, but GELU multiplies by its input: NaN stays NaN.
        assert!(gelu_erf(f32::NAN).is_nan());
    }

    #[test]
    fn erf_matches_the_series() {
        for i in -300..=300 {
            let x = f64::from(i) / 100.0;
            let got = f64::from(erf(x as f32));
            assert!((got - erf_f64(x)).abs() < 5e-7, "erf({x}) = {got}");
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn bias_gelu_matches_f64() {
        // |x + bias| ≤ 4, where the reference's series is accurate in f64.
        let bias: Vec<f32> = (0..40).map(|j| (j as f32 - 20.0) / 10.0).collect();
        let x: Vec<f32> = (0..400)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let mut y = x.clone();
        bias_gelu_erf(Level::detect(), &mut y, &bias);
        for (i, (&xv, &yv)) in x.iter().zip(&y).enumerate() {
            let z = f64::from(xv) + f64::from(bias[i % 40]);
            let want = 0.5 * z * (1.0 + erf_f64(z / std::f64::consts::SQRT_2));
            assert!(
                (f64::from(yv) - want).abs() <= 1e-6 * (1.0 + z.abs()),
                "{yv} vs {want}"
            );
        }
    }

    #[test]
    fn both_copies_agree_bit_for_bit() {
        let bias: Vec<f32> = (0..40).map(|j| (j as f32 - 20.0) / 7.0).collect();
        let x: Vec<f32> = (0..400)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect();
        let (mut a, mut b) = (x.clone(), x.clone());
        bias_gelu_erf(Level::portable(), &mut a, &bias);
        bias_gelu_erf(Level::detect(), &mut b, &bias);
        assert_eq!(a, b);
        let delta: Vec<f32> = x.iter().map(|v| v * 0.5 + 1.0).collect();
        let gain: Vec<f32> = (0..40).map(|j| 1.0 + j as f32 / 40.0).collect();
        let res = Some((&delta[..], &bias[..]));
        let (mut a, mut b) = (x.clone(), x.clone());
        layer_norm(Level::portable(), &mut a, res, &gain, &bias, 1e-12);
        layer_norm(Level::detect(), &mut b, res, &gain, &bias, 1e-12);
        assert_eq!(a, b);
    }

    #[test]
    fn layer_norm_matches_a_hand_computation() {
        let mut x = vec![1.0f32, 2.0, 3.0, 6.0, 1e4, 1e4 + 1.0, 1e4 + 2.0, 1e4 + 5.0];
        let (gain, beta) = ([1.0, 2.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.0]);
        layer_norm(Level::detect(), &mut x, None, &gain, &beta, 0.0);
        // Row 1: mean 3, variance (4 + 1 + 0 + 9)/4 = 3.5.
        let s = 3.5f64.sqrt();
        // (x − 3)/s · gain + beta with gains 1, 2, 1, 1 and betas 0, 0, 0.5, 0.
        let want = [-2.0 / s, -2.0 / s, 0.5, 3.0 / s];
        for (g, w) in x[..4].iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6);
        }
        // Row 2 is row 1 shifted by 9,999: the same output.
        for (a, b) in x[..4].iter().zip(&x[4..]) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn layer_norm_matches_the_formula_in_f64() {
        let h = 13;
        let x: Vec<f32> = (0..3 * h)
            .map(|i| 1000.0 + (i * 7 % 11) as f32 / 3.0)
            .collect();
        let gain: Vec<f32> = (0..h).map(|j| 0.5 + j as f32 / 10.0).collect();
        let beta: Vec<f32> = (0..h).map(|j| j as f32 / 100.0).collect();
        let mut y = x.clone();
        layer_norm(Level::detect(), &mut y, None, &gain, &beta, 1e-5);
        for (xr, yr) in x.chunks(h).zip(y.chunks(h)) {
            let mean = xr.iter().map(|&v| f64::from(v)).sum::<f64>() / h as f64;
            let var = xr
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / h as f64;
            for j in 0..h {
                let want = (f64::from(xr[j]) - mean) / (var + 1e-5).sqrt() * f64::from(gain[j])
                    + f64::from(beta[j]);
                assert!(
                    (f64::from(yr[j]) - want).abs() < 1e-5,
                    "{} vs {want}",
                    yr[j]
                );
            }
        }
    }
}
