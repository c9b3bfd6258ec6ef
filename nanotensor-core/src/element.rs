//! The element types NanoTensor is generic over.

use std::fmt::{Debug, Display};

/// Runtime tag of an [`Element`] type, used in messages, JSON output and fast-path dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary64.
    F64,
    /// bfloat16 (8-bit exponent, 7-bit mantissa), through the `half` crate.
    BF16,
    /// IEEE-754 binary16, through the `half` crate.
    F16,
}

impl DType {
    /// The short lower-case name used on the command line and in JSON (`"f32"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::BF16 | DType::F16 => 2,
        }
    }
}

impl Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A floating-point element type: the arithmetic comes from [`num_traits::Float`], the
/// plain-old-data guarantees (zero-copy byte views, aligned casts) from [`bytemuck::Pod`].
///
/// Implemented for `f32`, `f64`, [`half::bf16`] and [`half::f16`]. Backends may give `f32` a
/// fast path: [`Element::slice_f32`] and [`Element::slice_f32_mut`] reinterpret a slice without copying
/// when (and only when) the element type *is* `f32`.
pub trait Element:
    num_traits::Float + bytemuck::Pod + Send + Sync + Debug + Display + Default + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly (every supported type is a subset of `f64`).
    fn as_f64(self) -> f64;
    /// Converts from `f32`, rounding to nearest.
    fn from_f32(x: f32) -> Self;
    /// Converts to `f32`, rounding to nearest for `f64`.
    fn as_f32(self) -> f32;

    /// The slice as `&[f32]` when `Self` is `f32`, else `None`. Zero-copy.
    fn slice_f32(s: &[Self]) -> Option<&[f32]> {
        if Self::DTYPE == DType::F32 {
            bytemuck::try_cast_slice(s).ok()
        } else {
            None
        }
    }

    /// The slice as `&mut [f32]` when `Self` is `f32`, else `None`. Zero-copy.
    fn slice_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        if Self::DTYPE == DType::F32 {
            bytemuck::try_cast_slice_mut(s).ok()
        } else {
            None
        }
    }
}

/// `x` as f32 values: borrowed when `T` is `f32`, converted otherwise (the form the integer
/// backends quantize from).
pub fn f32_values<T: Element>(x: &[T]) -> std::borrow::Cow<'_, [f32]> {
    match T::slice_f32(x) {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().map(|v| v.as_f32()).collect()),
    }
}

/// Runs `f` on an f32 view of `out`: in place when `T` is `f32`, through a temporary
/// converted back into `out` otherwise.
pub fn with_f32_out<T: Element, R>(out: &mut [T], f: impl FnOnce(&mut [f32]) -> R) -> R {
    if let Some(o) = T::slice_f32_mut(out) {
        f(o)
    } else {
        let mut tmp = vec![0.0f32; out.len()];
        let r = f(&mut tmp);
        for (o, t) in out.iter_mut().zip(tmp) {
            *o = T::from_f32(t);
        }
        r
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn from_f32(x: f32) -> Self {
        x
    }
    fn as_f32(self) -> f32 {
        self
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x as f64
    }
    fn as_f32(self) -> f32 {
        self as f32
    }
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn from_f64(x: f64) -> Self {
        half::bf16::from_f64(x)
    }
    fn as_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
    fn from_f32(x: f32) -> Self {
        half::bf16::from_f32(x)
    }
    fn as_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    fn from_f64(x: f64) -> Self {
        half::f16::from_f64(x)
    }
    fn as_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    fn from_f32(x: f32) -> Self {
        half::f16::from_f32(x)
    }
    fn as_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Index of the first NaN or ±∞ in `x`, if any: the finiteness check of every operation's
/// inputs (matmul operands, linear activations, attention rows, a whole KV cache in decode).
///
/// The scan runs branch-free over chunks of 256 values and searches for the position only in a
/// chunk that failed, so it runs at memory speed: an early-exit scan takes one branch per value,
/// a visible share of a 256³ matmul or of a decode step. f32 data is tested on its bits
/// (`all_finite_f32`).
pub fn first_non_finite<T: Element>(x: &[T]) -> Option<usize> {
    const CHUNK: usize = 256;
    for (c, chunk) in x.chunks(CHUNK).enumerate() {
        let finite = match T::slice_f32(chunk) {
            Some(f) => all_finite_f32(f),
            None => chunk.iter().fold(true, |ok, v| ok & v.is_finite()),
        };
        if !finite {
            return chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|p| c * CHUNK + p);
        }
    }
    None
}

/// True when no value of `x` is NaN or ±∞, tested on the bits so it vectorises with the
/// baseline instruction set (a float `is_finite` fold does not, and costs a visible share of a
/// mid-sized matmul).
///
/// A value is non-finite exactly when its 8 exponent bits are all ones; adding one unit of the
/// exponent field (`1 << 23`) to the masked exponent then carries into bit 31, and only then.
/// Sixteen independent OR-accumulators keep the loop free of a serial dependency.
fn all_finite_f32(x: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    const ONE: u32 = 0x0080_0000;
    const LANES: usize = 16;
    let mut acc = [0u32; LANES];
    let mut blocks = x.chunks_exact(LANES);
    for block in blocks.by_ref() {
        for (a, v) in acc.iter_mut().zip(block) {
            *a |= (v.to_bits() & EXP) + ONE;
        }
    }
    let tail = blocks
        .remainder()
        .iter()
        .fold(0u32, |a, v| a | ((v.to_bits() & EXP) + ONE));
    (acc.iter().fold(tail, |a, &b| a | b) & 0x8000_0000) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit test agrees with `f32::is_finite` on every class of value, at every position of
    /// the 16-lane blocks and in the tail.
    #[test]
    fn bit_finite_test_agrees_with_is_finite() {
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xff7f_ffff),
        ];
        for len in [1usize, 15, 16, 17, 40] {
            for pos in 0..len {
                for &s in &specials {
                    let mut x = vec![0.5f32; len];
                    x[pos] = s;
                    assert_eq!(
                        all_finite_f32(&x),
                        s.is_finite(),
                        "len {len} pos {pos} {s:?}"
                    );
                }
            }
        }
        assert!(all_finite_f32(&[]));
    }

    #[test]
    fn first_non_finite_finds_the_first_position_in_any_chunk() {
        let mut x = vec![1.0f32; 1000];
        assert_eq!(first_non_finite(&x), None);
        x[700] = f32::INFINITY;
        x[900] = f32::NAN;
        assert_eq!(first_non_finite(&x), Some(700));
        let y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert_eq!(first_non_finite(&y), Some(700));
    }

    #[test]
    fn f32_fast_path_only_for_f32() {
        let a = [1.0f32, 2.0];
        assert_eq!(f32::slice_f32(&a), Some(&a[..]));
        let b = [1.0f64, 2.0];
        assert!(f64::slice_f32(&b).is_none());
    }

    #[test]
    fn conversions_round_trip() {
        assert_eq!(half::bf16::from_f64(1.5).as_f64(), 1.5);
        assert_eq!(<f32 as Element>::from_f64(0.1).as_f64(), 0.1f32 as f64);
        assert_eq!(half::f16::DTYPE.size(), 2);
    }
}
