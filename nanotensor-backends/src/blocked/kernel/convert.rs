//! Bulk conversions between f32 and the 16-bit floats (bf16, f16), for packing and for
//! writing results: the kernels accumulate in f32, and a bf16/f16 product converts its
//! operands to f32 (while packing) or its f32 result back (once, at the end).
//!
//! * **bf16** is the upper half of an f32, so widening is a 16-bit shift and narrowing a
//!   rounding add (round to nearest, ties to even, NaN kept quiet); both are plain loops that
//!   [`crate::multiversion`] compiles for AVX-512 as well, where they run 16 lanes wide.
//! * **f16** has its own exponent range; the hardware converts it: `vcvtph2ps`/`vcvtps2ph` on
//!   512-bit vectors with AVX-512F, on 256-bit vectors with F16C, else the `half` crate's
//!   conversion element by element. All three round to nearest, ties to even, so every path
//!   gives the same bits.
//!
//! Values are passed as their bit patterns (`u16`), which is what `half::bf16`/`half::f16`
//! hold (`bytemuck::cast_slice` views them).

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::cpu;
use crate::multiversion::{multiversion, Level};
use nanotensor_core::{DType, Element};

/// The f32 with the bf16 `b`'s bits in its upper half: exact.
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `x` rounded to the nearest bf16, ties to even; NaN stays NaN (quiet), ±∞ stays ±∞, and
/// finite values past the largest bf16 round to ±∞ as IEEE rounding does.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let nan = ((b >> 16) as u16) | 0x0040;
    if x.is_nan() {
        nan
    } else {
        rounded
    }
}

multiversion! {
    /// `dst[i] = bf16_to_f32(src[i])`.
    fn widen_bf16_loop(src: &[u16], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16_to_f32(s);
        }
    }
}

multiversion! {
    /// `dst[i] = f32_to_bf16(src[i])`.
    fn narrow_bf16_loop(src: &[f32], dst: &mut [u16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f32_to_bf16(s);
        }
    }
}

/// Widens bf16 bit patterns to f32 (`dst.len() == src.len()`).
pub fn widen_bf16(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "widen_bf16: lengths");
    widen_bf16_loop(Level::detect(), src, dst);
}

/// Rounds f32 values to bf16 bit patterns (`dst.len() == src.len()`).
pub fn narrow_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "narrow_bf16: lengths");
    narrow_bf16_loop(Level::detect(), src, dst);
}

/// Which f16 conversion instructions this CPU has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F16Isa {
    /// AVX-512F: 16 values per instruction.
    Avx512,
    /// F16C (+ AVX): 8 values per instruction.
    F16c,
    /// None: the `half` crate, one value at a time.
    Portable,
}

fn f16_isa() -> F16Isa {
    let f = cpu::features();
    if cfg!(any(target_arch = "x86", target_arch = "x86_64")) && f.avx512f {
        F16Isa::Avx512
    } else if cfg!(any(target_arch = "x86", target_arch = "x86_64")) && f.f16c && f.avx2 {
        F16Isa::F16c
    } else {
        F16Isa::Portable
    }
}

/// Widens f16 bit patterns to f32 (`dst.len() == src.len()`): exact.
pub fn widen_f16(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "widen_f16: lengths");
    match f16_isa() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: AVX-512F was detected (`f16_isa`); the lengths are equal (checked above).
        F16Isa::Avx512 => unsafe { widen_f16_avx512(src, dst) },
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: F16C and AVX2 were detected (`f16_isa`); the lengths are equal.
        F16Isa::F16c => unsafe { widen_f16_f16c(src, dst) },
        _ => widen_f16_portable(src, dst),
    }
}

/// Rounds f32 values to f16 bit patterns, to nearest, ties to even (`dst.len() == src.len()`).
pub fn narrow_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "narrow_f16: lengths");
    match f16_isa() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: AVX-512F was detected (`f16_isa`); the lengths are equal (checked above).
        F16Isa::Avx512 => unsafe { narrow_f16_avx512(src, dst) },
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        // SAFETY: F16C and AVX2 were detected (`f16_isa`); the lengths are equal.
        F16Isa::F16c => unsafe { narrow_f16_f16c(src, dst) },
        _ => narrow_f16_portable(src, dst),
    }
}

fn widen_f16_portable(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(s).to_f32();
    }
}

fn narrow_f16_portable(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(s).to_bits();
    }
}

/// # Safety
/// AVX-512F must be available and `src.len() == dst.len()`.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f")]
unsafe fn widen_f16_avx512(src: &[u16], dst: &mut [f32]) {
    let n = src.len() / 16 * 16;
    for i in (0..n).step_by(16) {
        // SAFETY: `i + 16 ≤ n ≤ len` for both slices (equal lengths, caller contract).
        unsafe {
            let h = _mm256_loadu_si256(src.as_ptr().add(i) as *const __m256i);
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
        }
    }
    widen_f16_portable(&src[n..], &mut dst[n..]);
}

/// # Safety
/// AVX-512F must be available and `src.len() == dst.len()`.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f")]
unsafe fn narrow_f16_avx512(src: &[f32], dst: &mut [u16]) {
    let n = src.len() / 16 * 16;
    for i in (0..n).step_by(16) {
        // SAFETY: `i + 16 ≤ n ≤ len` for both slices (equal lengths, caller contract).
        unsafe {
            let x = _mm512_loadu_ps(src.as_ptr().add(i));
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, h);
        }
    }
    narrow_f16_portable(&src[n..], &mut dst[n..]);
}

/// # Safety
/// F16C and AVX2 must be available and `src.len() == dst.len()`.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "f16c,avx2")]
unsafe fn widen_f16_f16c(src: &[u16], dst: &mut [f32]) {
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 ≤ n ≤ len` for both slices (equal lengths, caller contract).
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
    }
    widen_f16_portable(&src[n..], &mut dst[n..]);
}

/// # Safety
/// F16C and AVX2 must be available and `src.len() == dst.len()`.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "f16c,avx2")]
unsafe fn narrow_f16_f16c(src: &[f32], dst: &mut [u16]) {
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 ≤ n ≤ len` for both slices (equal lengths, caller contract).
        unsafe {
            let x = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
        }
    }
    narrow_f16_portable(&src[n..], &mut dst[n..]);
}

/// `dst[i] = src[i]` rounded to `T` (to nearest, ties to even): bulk conversions for bf16 and
/// f16, element by element otherwise.
pub fn narrow_into<T: Element>(src: &[f32], dst: &mut [T]) {
    match T::DTYPE {
        DType::BF16 => narrow_bf16(src, bytemuck::cast_slice_mut(dst)),
        DType::F16 => narrow_f16(src, bytemuck::cast_slice_mut(dst)),
        _ => dst
            .iter_mut()
            .zip(src)
            .for_each(|(o, &v)| *o = T::from_f32(v)),
    }
}

/// `dst[i] = src[i]` as f32: exact for bf16 and f16 (bulk conversions).
pub fn widen_into<T: Element>(src: &[T], dst: &mut [f32]) {
    match T::DTYPE {
        DType::BF16 => widen_bf16(bytemuck::cast_slice(src), dst),
        DType::F16 => widen_f16(bytemuck::cast_slice(src), dst),
        _ => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v.as_f32()),
    }
}

/// A 16-bit float element type and its bulk conversions, as the packers and the backends use
/// them; implemented for `half::bf16` and `half::f16`.
pub trait Half16: bytemuck::Pod {
    /// Widens bit patterns to f32.
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Rounds f32 values to this type, to nearest, ties to even.
    fn narrow(src: &[f32], dst: &mut [Self]);
}

impl Half16 for half::bf16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        widen_bf16(bytemuck::cast_slice(src), dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        narrow_bf16(src, bytemuck::cast_slice_mut(dst));
    }
}

impl Half16 for half::f16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        widen_f16(bytemuck::cast_slice(src), dst);
    }
    fn narrow(src: &[f32], dst: &mut [Self]) {
        narrow_f16(src, bytemuck::cast_slice_mut(dst));
    }
}

/// Widens `src` (bf16 or f16, by type) into `dst` when `S` is one of them: `false` (nothing
/// written) for any other type. The packers' door to the bulk conversions.
pub fn widen_any<S: bytemuck::Pod>(src: &[S], dst: &mut [f32]) -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<S>();
    if t == TypeId::of::<half::bf16>() {
        widen_bf16(bytemuck::cast_slice(src), dst);
    } else if t == TypeId::of::<half::f16>() {
        widen_f16(bytemuck::cast_slice(src), dst);
    } else {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bf16 and f16 bit pattern widens exactly as `half` does, and narrowing agrees with
    /// `half` on the widened values, on halfway cases (ties to even), on overflow and on NaN.
    #[test]
    fn conversions_agree_with_half_on_every_pattern() {
        // Every pattern natively; a sample under Miri (slow), which runs the portable copies.
        let step = if cfg!(miri) { 97 } else { 1 };
        let all: Vec<u16> = (0..=u16::MAX).step_by(step).collect();
        let mut w = vec![0.0f32; all.len()];
        widen_bf16(&all, &mut w);
        for (&b, &x) in all.iter().zip(&w) {
            let want = half::bf16::from_bits(b).to_f32();
            assert!(x.to_bits() == want.to_bits() || (x.is_nan() && want.is_nan()));
        }
        widen_f16(&all, &mut w);
        widen_f16_portable(&all, &mut w.clone());
        for (&b, &x) in all.iter().zip(&w) {
            let want = half::f16::from_bits(b).to_f32();
            assert!(x.to_bits() == want.to_bits() || (x.is_nan() && want.is_nan()));
        }
        // Narrowing: exact values, halfway points between neighbours, beyond the range.
        let mut xs: Vec<f32> = Vec::new();
        for b in (0..=u16::MAX).step_by(7 * step) {
            let v = half::bf16::from_bits(b).to_f32();
            xs.extend([
                v,
                f32::from_bits(v.to_bits() + 0x8000),
                f32::from_bits(v.to_bits() + 0x7fff),
            ]);
            let h = half::f16::from_bits(b).to_f32();
            xs.extend([h, h * (1.0 + 1.0 / 2048.0), h * (1.0 + 3.0 / 4096.0)]);
        }
        xs.extend([
            f32::MAX,
            -f32::MAX,
            1e6,
            -7e4,
            65520.0,
            f32::INFINITY,
            f32::NAN,
            1e-9,
        ]);
        let mut nb = vec![0u16; xs.len()];
        narrow_bf16(&xs, &mut nb);
        let mut nh = vec![0u16; xs.len()];
        narrow_f16(&xs, &mut nh);
        for (i, &x) in xs.iter().enumerate() {
            let (wb, wh) = (half::bf16::from_f32(x), half::f16::from_f32(x));
            if x.is_nan() {
                assert!(
                    half::bf16::from_bits(nb[i]).is_nan() && half::f16::from_bits(nh[i]).is_nan()
                );
            } else {
                assert_eq!(nb[i], wb.to_bits(), "bf16 of {x:e}");
                assert_eq!(nh[i], wh.to_bits(), "f16 of {x:e}");
            }
        }
        // The portable copies agree with the detected ones.
        let mut pb = vec![0u16; xs.len()];
        narrow_bf16_loop(Level::portable(), &xs, &mut pb);
        assert_eq!(pb, nb);
        let mut ph = vec![0u16; xs.len()];
        narrow_f16_portable(&xs, &mut ph);
        for (i, x) in xs.iter().enumerate() {
            assert!(ph[i] == nh[i] || x.is_nan());
        }
    }
}
