//! Symmetric linear int8 quantization: `QTensor` = `i8` codes + `f32` scale(s).
//!
//! # The maths
//! For a group of values `x` (the whole tensor, or one row):
//!
//! ```text
//! scale = max|x| / 127
//! q     = clamp(round(x · (1/scale)), -127, 127)      (an i8 code)
//! x̂     = scale · q                                    (the dequantized value)
//! ```
//!
//! so `|x − x̂| ≤ scale/2` for every element (up to one f32 rounding of the product). Codes use
//! the symmetric range `[-127, 127]`: `-128` is never produced, so `|q| ≤ 127` and negating a code
//! never overflows — the int8 kernels rely on both facts.
//!
//! *Rounding* is to nearest, ties to even (`f32::round_ties_even`), which is what the hardware
//! conversion instructions (`cvtps2dq` under the default MXCSR) do, so the SIMD quantizers of the
//! int8 backend produce bit-identical codes. The value is multiplied by the f32 reciprocal
//! `1/scale` rather than divided by `scale` — again what the vector code does; the clamp absorbs
//! the at most one-ulp overshoot at `x = ±max|x|`.
//!
//! # Special values
//! * **All-zero** groups get `scale = 0`, all codes 0, and dequantize to exact zeros.
//! * **Denormals**: a group whose `max|x| / 127` is below the smallest normal f32
//!   (`f32::MIN_POSITIVE` ≈ 1.18e-38, i.e. `max|x|` < ≈1.5e-36) is *flushed*: it is stored as an
//!   all-zero group with scale 0. Its absolute error is then at most `max|x|` (< 1.5e-36), far
//!   below anything float32 inference resolves; the flush keeps `1/scale` finite (a subnormal
//!   scale's reciprocal overflows to infinity). Subnormal elements inside a group with a normal
//!   scale are quantized normally (they round to code 0).
//! * **NaN / ±inf** input is rejected with [`Error::NonFinite`]. A finite `f64` whose magnitude
//!   does not fit in `f32` is rejected with [`Error::InvalidArgument`] (the scale is an f32).
//!
//! # Granularity
//! [`Granularity::PerTensor`] keeps one scale for the tensor (`n + 4` bytes). [`Granularity::PerRow`]
//! keeps one scale per row of the last axis (`n + 4·rows` bytes): for a weight `W[out, in]` that is
//! one scale per output channel, which protects the other rows from an outlier row.

use crate::clip::Clip;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Largest code magnitude: codes lie in `[-QMAX, QMAX]`.
pub const QMAX: i8 = 127;

/// How many values share one scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Granularity {
    /// One scale for the whole tensor (the default).
    #[default]
    PerTensor,
    /// One scale per row (per slice of the last axis), e.g. per output channel of a weight.
    PerRow,
}

impl Granularity {
    /// Lower-case name used by the CLI and JSON (`"per-tensor"`, `"per-row"`).
    pub fn name(self) -> &'static str {
        match self {
            Granularity::PerTensor => "per-tensor",
            Granularity::PerRow => "per-row",
        }
    }

    /// Parses `per-tensor` or `per-row`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "per-tensor" | "tensor" => Ok(Granularity::PerTensor),
            "per-row" | "row" => Ok(Granularity::PerRow),
            other => Err(Error::invalid_arg(
                "quantize",
                format!("unknown granularity `{other}` (expected per-tensor or per-row)"),
            )),
        }
    }
}

/// The scale for a group whose largest magnitude is `max_abs` (finite, ≥ 0): `max_abs / 127`,
/// or 0 for an all-zero group and for a group flushed because the scale would be subnormal.
/// Near `f32::MAX` the rounded quotient times 127 can exceed `f32::MAX`; the scale is then one
/// ulp smaller so that every `scale · q` stays finite.
#[inline]
pub fn scale_for_max_abs(max_abs: f32) -> f32 {
    let scale = max_abs / QMAX as f32;
    if scale < f32::MIN_POSITIVE {
        0.0
    } else if (scale * QMAX as f32).is_infinite() {
        f32::from_bits(scale.to_bits() - 1)
    } else {
        scale
    }
}

/// The code of one value given the reciprocal of its group's scale (`inv = 1/scale`, or 0 for a
/// zero scale): `clamp(round_ties_even(x·inv), -127, 127)`.
#[inline]
pub fn quantize_value(x: f32, inv: f32) -> i8 {
    (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// The reciprocal used by [`quantize_value`]: `1/scale`, or 0 when `scale == 0`.
#[inline]
pub fn inverse_scale(scale: f32) -> f32 {
    if scale == 0.0 {
        0.0
    } else {
        1.0 / scale
    }
}

/// Quantizes `src` with a given `scale` into `dst` (same length), element by element.
pub fn quantize_with_scale(src: &[f32], scale: f32, dst: &mut [i8]) {
    debug_assert_eq!(src.len(), dst.len());
    let inv = inverse_scale(scale);
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = quantize_value(x, inv);
    }
}

/// Largest `|x|` of a slice already checked to be finite.
pub fn max_abs(src: &[f32]) -> f32 {
    src.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// A quantized tensor: `i8` codes in row-major order, one `f32` scale per group, and the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensor {
    /// Codes in `[-127, 127]`, row-major, `numel` of them.
    codes: Vec<i8>,
    /// One scale (PerTensor) or one per row (PerRow).
    scales: Vec<f32>,
    /// Shape of the original tensor (rank ≥ 1).
    shape: Vec<usize>,
    granularity: Granularity,
}

impl QTensor {
    /// Quantizes a tensor (rank ≥ 1, non-empty) with the given granularity.
    ///
    /// # Errors
    /// Rank 0 or a zero dimension ([`Error::InvalidShape`]); NaN or infinity
    /// ([`Error::NonFinite`]); a finite value outside the f32 range ([`Error::InvalidArgument`]).
    pub fn quantize<T: Element>(x: &Tensor<T>, granularity: Granularity) -> Result<Self> {
        Self::quantize_slice(x.as_slice(), x.shape(), granularity)
    }

    /// [`QTensor::quantize`] with each group's range chosen by `clip` ([`Clip::AbsMax`] is
    /// [`QTensor::quantize`]; [`Clip::Mse`] clamps the values beyond its threshold).
    ///
    /// # Errors
    /// Those of [`QTensor::quantize`].
    pub fn quantize_clipped<T: Element>(
        x: &Tensor<T>,
        granularity: Granularity,
        clip: Clip,
    ) -> Result<Self> {
        Self::quantize_slice_clipped(x.as_slice(), x.shape(), granularity, clip)
    }

    /// [`QTensor::quantize`] for a row-major slice with a shape.
    // Sizes come from the caller's (possibly a file's) shape: no unchecked arithmetic.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn quantize_slice<T: Element>(
        data: &[T],
        shape: &[usize],
        granularity: Granularity,
    ) -> Result<Self> {
        Self::quantize_slice_clipped(data, shape, granularity, Clip::AbsMax)
    }

    /// [`QTensor::quantize_clipped`] for a row-major slice with a shape.
    ///
    /// # Errors
    /// Those of [`QTensor::quantize`].
    // Sizes come from the caller's (possibly a file's) shape: no unchecked arithmetic.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn quantize_slice_clipped<T: Element>(
        data: &[T],
        shape: &[usize],
        granularity: Granularity,
        clip: Clip,
    ) -> Result<Self> {
        const OP: &str = "quantize";
        let n = crate::shape::numel(OP, shape)?;
        if shape.is_empty() {
            return Err(Error::invalid_shape(OP, shape, "a scalar has no rows"));
        }
        crate::shape::check_non_empty(OP, shape)?;
        if data.len() != n {
            return Err(Error::LengthMismatch {
                op: OP,
                len: data.len(),
                shape: shape.into(),
                expected: n,
            });
        }
        if let Some(p) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                op: OP,
                operand: "data",
                index: p,
                value: data[p].as_f64(),
            });
        }
        // Convert once to f32 (zero-copy for f32 input).
        let owned;
        let xs: &[f32] = match T::slice_f32(data) {
            Some(s) => s,
            None => {
                owned = data.iter().map(|v| v.as_f32()).collect::<Vec<f32>>();
                &owned
            }
        };
        if let Some(p) = xs.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "value {} at index {p} does not fit the f32 scale range",
                    data[p]
                ),
            ));
        }
        let row_len = *shape.last().expect("rank >= 1");
        let group = match granularity {
            Granularity::PerTensor => n,
            Granularity::PerRow => row_len,
        };
        let mut codes = vec![0i8; n];
        // `group` is a nonzero dimension (or the nonzero element count): checked non-empty above.
        let mut scales = Vec::with_capacity(n.checked_div(group).unwrap_or(0));
        for (src, dst) in xs.chunks(group).zip(codes.chunks_mut(group)) {
            let scale = clip.scale(src);
            quantize_with_scale(src, scale, dst);
            scales.push(scale);
        }
        Ok(QTensor {
            codes,
            scales,
            shape: shape.to_vec(),
            granularity,
        })
    }

    /// Builds a `QTensor` from codes and scales produced elsewhere (e.g. a model file).
    ///
    /// # Errors
    /// Lengths that do not match the shape and granularity, a code of `-128`, or a negative or
    /// non-finite scale.
    // Sizes come from the caller's (possibly a file's) shape: no unchecked arithmetic.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn from_parts(
        codes: Vec<i8>,
        scales: Vec<f32>,
        shape: &[usize],
        granularity: Granularity,
    ) -> Result<Self> {
        const OP: &str = "QTensor::from_parts";
        let n = crate::shape::numel(OP, shape)?;
        if shape.is_empty() || n == 0 || codes.len() != n {
            return Err(Error::LengthMismatch {
                op: OP,
                len: codes.len(),
                shape: shape.into(),
                expected: n,
            });
        }
        let groups = match granularity {
            Granularity::PerTensor => 1,
            // `n > 0`, so the last dimension is nonzero; `shape` is non-empty.
            Granularity::PerRow => shape
                .last()
                .and_then(|&row_len| n.checked_div(row_len))
                .unwrap_or(0),
        };
        if scales.len() != groups {
            return Err(Error::invalid_arg(
                OP,
                format!("{} scales for {groups} groups", scales.len()),
            ));
        }
        if codes.contains(&i8::MIN) {
            return Err(Error::invalid_arg(OP, "code -128 is outside [-127, 127]"));
        }
        if let Some(s) = scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
            return Err(Error::invalid_arg(OP, format!("invalid scale {s}")));
        }
        Ok(QTensor {
            codes,
            scales,
            shape: shape.to_vec(),
            granularity,
        })
    }

    /// `x̂ = scale · q` for every element, as a tensor of `T` with the original shape.
    pub fn dequantize<T: Element>(&self) -> Result<Tensor<T>> {
        let mut out = Tensor::<T>::zeros(&self.shape)?;
        let group = self.group_len();
        for ((dst, src), &s) in out
            .as_mut_slice()
            .chunks_mut(group)
            .zip(self.codes.chunks(group))
            .zip(&self.scales)
        {
            for (d, &q) in dst.iter_mut().zip(src) {
                *d = T::from_f32(s * q as f32);
            }
        }
        Ok(out)
    }

    /// Elements sharing one scale: the whole tensor or one row.
    pub fn group_len(&self) -> usize {
        match self.granularity {
            Granularity::PerTensor => self.codes.len(),
            Granularity::PerRow => self.row_len(),
        }
    }

    /// The codes, row-major.
    pub fn codes(&self) -> &[i8] {
        &self.codes
    }

    /// The scales: one, or one per row.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The scale that applies to row `row` (of the last axis).
    pub fn row_scale(&self, row: usize) -> f32 {
        match self.granularity {
            Granularity::PerTensor => self.scales[0],
            Granularity::PerRow => self.scales[row],
        }
    }

    /// The original shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The granularity of the scales.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Length of the last axis.
    pub fn row_len(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    /// Number of rows (elements / last axis).
    pub fn rows(&self) -> usize {
        self.codes.len() / self.row_len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.codes.len()
    }

    /// Bytes of codes plus scales: `n + 4·(number of scales)`.
    pub fn size_bytes(&self) -> usize {
        self.codes.len() + 4 * self.scales.len()
    }
}

/// What quantizing a tensor costs and saves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantReport {
    /// Granularity measured.
    pub granularity: Granularity,
    /// Number of elements `n`.
    pub numel: usize,
    /// Number of scales stored.
    pub scales: usize,
    /// Bytes of the same tensor in f32: `4n`.
    pub f32_bytes: usize,
    /// Bytes of the `QTensor`: `n + 4·scales`.
    pub qtensor_bytes: usize,
    /// `1 − qtensor_bytes / f32_bytes` (→ 0.75 for large tensors).
    pub saved_fraction: f64,
    /// `max |x − x̂|`.
    pub max_abs_error: f64,
    /// `Σ(x − x̂)² / Σx²` (0 when both sums are 0).
    pub nmse: f64,
    /// Signal-to-quantization-noise ratio `10·log10(Σx² / Σ(x − x̂)²)` in dB; `+inf` when the
    /// reconstruction is exact.
    pub sqnr_db: f64,
}

impl QuantReport {
    /// Measures `q` against the tensor it was quantized from (errors computed in f64).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    pub fn measure<T: Element>(original: &Tensor<T>, q: &QTensor) -> Result<Self> {
        Self::compare(original, &q.dequantize::<f64>()?, q)
    }

    /// Measures a reconstruction `restored` of `original` (e.g. `q` dequantized and mapped back
    /// from an equalised space) with `q`'s granularity and bytes (errors computed in f64).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    pub fn compare<T: Element, U: Element>(
        original: &Tensor<T>,
        restored: &Tensor<U>,
        q: &QTensor,
    ) -> Result<Self> {
        for other in [restored.shape(), q.shape()] {
            if original.shape() != other {
                return Err(Error::mismatch(
                    "quant report",
                    original.shape(),
                    other,
                    "the report compares a tensor with its own quantization",
                ));
            }
        }
        let (mut err2, mut sig2, mut max_abs_error) = (0.0f64, 0.0f64, 0.0f64);
        for (x, xh) in original.as_slice().iter().zip(restored.as_slice()) {
            let x = x.as_f64();
            let e = x - xh.as_f64();
            err2 += e * e;
            sig2 += x * x;
            max_abs_error = max_abs_error.max(e.abs());
        }
        let nmse = if sig2 == 0.0 { 0.0 } else { err2 / sig2 };
        let sqnr_db = if err2 == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (sig2 / err2).log10()
        };
        let n = q.numel();
        let f32_bytes = 4 * n;
        let qtensor_bytes = q.size_bytes();
        Ok(QuantReport {
            granularity: q.granularity(),
            numel: n,
            scales: q.scales().len(),
            f32_bytes,
            qtensor_bytes,
            saved_fraction: 1.0 - qtensor_bytes as f64 / f32_bytes as f64,
            max_abs_error,
            nmse,
            sqnr_db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_cases_give_exact_codes() {
        // max|x| = 127 → scale = 1 exactly, so x·(1/scale) = x and rounding is ties-to-even:
        // -63.5 → -64, 0.5 → 0, 1.5 → 2, 25.25 → 25.
        let x = [127.0f32, -63.5, 0.5, 1.5, -127.0, 25.25];
        let q = QTensor::quantize(
            &Tensor::from_slice(&x, &[6]).unwrap(),
            Granularity::PerTensor,
        )
        .unwrap();
        assert_eq!(q.scales(), &[1.0]);
        assert_eq!(q.codes(), &[127, -64, 0, 2, -127, 25]);
        // scale = 254/127 = 2 exactly: x/2 = [63.5, -0.75, 127, 1.25] → [64, -1, 127, 1].
        let y = [127.0f32, -1.5, 254.0, 2.5];
        let q = QTensor::quantize(
            &Tensor::from_slice(&y, &[4]).unwrap(),
            Granularity::PerTensor,
        )
        .unwrap();
        assert_eq!(q.scales(), &[2.0]);
        assert_eq!(q.codes(), &[64, -1, 127, 1]);
        let d = q.dequantize::<f32>().unwrap();
        assert_eq!(d.as_slice(), &[128.0, -2.0, 254.0, 2.0]);
        assert_eq!(q.size_bytes(), 4 + 4);
    }

    #[test]
    fn error_is_at_most_half_a_scale() {
        for (seed, g) in [(1u64, Granularity::PerTensor), (2, Granularity::PerRow)] {
            let x = Tensor::<f32>::randn(&[37, 53], 3.0, seed).unwrap();
            let q = QTensor::quantize(&x, g).unwrap();
            let d = q.dequantize::<f32>().unwrap();
            for (i, (a, b)) in x.as_slice().iter().zip(d.as_slice()).enumerate() {
                let s = q.row_scale(i / 53);
                // One f32 rounding of x·(1/s) and of s·q on top of the s/2 bound.
                let tol = s / 2.0 * (1.0 + 1e-5) + a.abs() * 2e-7;
                assert!((a - b).abs() <= tol, "{i}: {a} vs {b}, scale {s}");
                assert!(q.codes()[i] != i8::MIN);
            }
        }
    }

    #[test]
    fn zero_tensor_has_zero_scale_and_output() {
        let x = Tensor::<f32>::zeros(&[3, 4]).unwrap();
        for g in [Granularity::PerTensor, Granularity::PerRow] {
            let q = QTensor::quantize(&x, g).unwrap();
            assert!(q.scales().iter().all(|&s| s == 0.0));
            assert!(q.codes().iter().all(|&c| c == 0));
            assert!(q
                .dequantize::<f64>()
                .unwrap()
                .as_slice()
                .iter()
                .all(|&v| v == 0.0));
            let r = QuantReport::measure(&x, &q).unwrap();
            assert_eq!((r.nmse, r.max_abs_error), (0.0, 0.0));
            assert!(r.sqnr_db.is_infinite());
        }
    }

    #[test]
    fn denormal_groups_are_flushed_and_normal_groups_keep_denormals_at_zero() {
        let tiny = f32::MIN_POSITIVE / 4.0; // subnormal
        let x = Tensor::from_slice(&[tiny, -tiny, 1.0, tiny], &[2, 2]).unwrap();
        let q = QTensor::quantize(&x, Granularity::PerRow).unwrap();
        assert_eq!(q.scales()[0], 0.0);
        assert_eq!(&q.codes()[..2], &[0, 0]);
        assert_eq!(q.scales()[1], 1.0 / 127.0);
        assert_eq!(&q.codes()[2..], &[127, 0]);
        let d = q.dequantize::<f32>().unwrap();
        assert!(d.as_slice().iter().all(|v| v.is_finite()));
        assert_eq!(d.as_slice()[0], 0.0);
    }

    #[test]
    fn non_finite_input_is_a_typed_error() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let x = Tensor::from_slice(&[1.0f32, bad, 2.0], &[3]).unwrap();
            let e = QTensor::quantize(&x, Granularity::PerTensor).unwrap_err();
            assert!(matches!(e, Error::NonFinite { index: 1, .. }), "{e}");
        }
        let big = Tensor::from_slice(&[1e300f64], &[1]).unwrap();
        assert!(matches!(
            QTensor::quantize(&big, Granularity::PerTensor),
            Err(Error::InvalidArgument { .. })
        ));
        let empty = Tensor::<f32>::zeros(&[0, 3]).unwrap();
        assert!(QTensor::quantize(&empty, Granularity::PerRow).is_err());
    }

    #[test]
    fn per_row_beats_per_tensor_with_an_outlier_row() {
        let mut x = Tensor::<f32>::randn(&[16, 64], 1.0, 7).unwrap();
        for v in &mut x.as_mut_slice()[3 * 64..4 * 64] {
            *v *= 1000.0;
        }
        let qt = QTensor::quantize(&x, Granularity::PerTensor).unwrap();
        let qr = QTensor::quantize(&x, Granularity::PerRow).unwrap();
        // Error on the ordinary rows only: per-tensor crushes them to a few codes.
        let err = |q: &QTensor| {
            let d = q.dequantize::<f64>().unwrap();
            let (mut e, mut s) = (0.0, 0.0);
            for i in (0..16 * 64).filter(|i| i / 64 != 3) {
                let a = x.as_slice()[i] as f64;
                e += (a - d.as_slice()[i]).powi(2);
                s += a * a;
            }
            e / s
        };
        let (et, er) = (err(&qt), err(&qr));
        assert!(er < 1e-3, "per-row nmse {er}");
        assert!(et > 100.0 * er, "per-tensor {et} vs per-row {er}");
        let rt = QuantReport::measure(&x, &qt).unwrap();
        let rr = QuantReport::measure(&x, &qr).unwrap();
        assert_eq!(rt.qtensor_bytes, 1024 + 4);
        assert_eq!(rr.qtensor_bytes, 1024 + 16 * 4);
        assert!(rr.sqnr_db >= rt.sqnr_db);
    }

    #[test]
    #[cfg_attr(miri, ignore = "65,536 elements: minutes under Miri")]
    fn report_matches_definitions_on_gaussian_data() {
        let x = Tensor::<f32>::randn(&[256, 256], 1.0, 3).unwrap();
        let q = QTensor::quantize(&x, Granularity::PerTensor).unwrap();
        let r = QuantReport::measure(&x, &q).unwrap();
        assert_eq!(r.f32_bytes, 4 * 65536);
        assert_eq!(r.qtensor_bytes, 65536 + 4);
        assert!((r.saved_fraction - 0.75).abs() < 1e-4);
        // Uniform rounding noise: E[e²] = scale²/12, scale ≈ max|x|/127 ≈ 4.5/127 for 65536
        // normals → NMSE ≈ 1e-4; SQNR = -10·log10(NMSE).
        assert!(r.nmse > 2e-5 && r.nmse < 3e-4, "{}", r.nmse);
        assert!((r.sqnr_db + 10.0 * r.nmse.log10()).abs() < 1e-9);
        assert!(r.max_abs_error <= q.scales()[0] as f64 / 2.0 * 1.0001);
    }

    #[test]
    fn values_near_f32_max_dequantize_to_finite_values() {
        // Found by the `quantize` fuzz target: fl(MAX/127)·127 rounds to infinity.
        let x = [-f32::MAX, 1.0, f32::MAX];
        let q = QTensor::quantize_slice(&x, &[3], Granularity::PerTensor).unwrap();
        let d = q.dequantize::<f32>().unwrap();
        assert_eq!(q.codes(), &[-127, 0, 127]);
        for (a, b) in x.iter().zip(d.as_slice()) {
            assert!(
                b.is_finite() && (a - b).abs() <= q.scales()[0] / 2.0,
                "{a} -> {b}"
            );
        }
    }

    #[test]
    fn from_parts_validates() {
        assert!(QTensor::from_parts(vec![1, 2], vec![0.5], &[2], Granularity::PerTensor).is_ok());
        assert!(
            QTensor::from_parts(vec![-128, 2], vec![0.5], &[2], Granularity::PerTensor).is_err()
        );
        assert!(QTensor::from_parts(vec![1, 2], vec![0.5], &[2, 1], Granularity::PerRow).is_err());
        assert!(QTensor::from_parts(vec![1, 2], vec![-1.0], &[2], Granularity::PerTensor).is_err());
    }
}
