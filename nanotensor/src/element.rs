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

#[cfg(test)]
mod tests {
    use super::*;

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
