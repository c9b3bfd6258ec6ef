//! Loops written once in plain Rust and compiled twice: for the baseline target and, through a
//! `#[target_feature]` wrapper, for AVX-512, where LLVM turns them into 16-lane code. [`Level`]
//! picks the copy at run time, so the crate still runs on any x86-64 and on wasm32 (which only
//! ever takes the baseline copy).
//!
//! This suits simple streaming loops (reductions, conversions, quantization) whose plain-Rust
//! form auto-vectorises; register-blocked kernels are written with intrinsics in the backends'
//! kernel modules instead.

use crate::cpu::{self, CpuFeatures};
use nanotensor_core::{Element, Error, Result};

/// Which compiled copy of the loops to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Run the AVX-512 copy (only ever `true` when [`Level::best`] saw every feature it is
    /// compiled with).
    pub(crate) avx512: bool,
}

impl Level {
    /// The best copy `cpu` supports: the wide one needs every feature it is compiled with,
    /// AVX-512 F/BW/VL plus AVX2 and FMA (all AVX-512 CPUs have the latter two, so this picks
    /// the same copy as checking the AVX-512 ones alone).
    pub fn best(cpu: &CpuFeatures) -> Self {
        Level {
            avx512: cfg!(target_arch = "x86_64")
                && cpu.avx512f
                && cpu.avx512bw
                && cpu.avx512vl
                && cpu.avx2
                && cpu.fma,
        }
    }

    /// The best copy this CPU supports ([`Level::best`] of [`cpu::features`]).
    pub fn detect() -> Self {
        Self::best(cpu::features())
    }

    /// The baseline copy (any target).
    pub fn portable() -> Self {
        Level { avx512: false }
    }
}

/// Defines `pub fn $name(level, args..)` that runs `$body` compiled for AVX-512 when `level`
/// allows it, else for the baseline target.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name(level: Level, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            fn wide($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            if level.avx512 {
                // SAFETY: `Level { avx512: true }` is only built by `Level::best` from the
                // detected features after checking every feature `wide` is compiled with
                // (avx512f, avx512bw, avx512vl, avx2, fma).
                return unsafe { wide($($arg),*) };
            }
            let _ = level;
            body($($arg),*)
        }
    };
}
// The int8 quantizer and the bf16 conversions define their loops with it.
pub(crate) use multiversion;

multiversion! {
    /// Whether every value is finite (no early exit, so it vectorises; callers look for the
    /// offending index only when this says no).
    fn all_finite(x: &[f32]) -> bool {
        // A value is NaN or ±inf exactly when its exponent bits are all ones.
        const EXP: u32 = 0x7f80_0000;
        x.iter().fold(0u32, |m, v| m.max(v.to_bits() & EXP)) != EXP
    }
}

/// Whether every value of `x` is finite, vectorised for `f32` (the test of
/// [`nanotensor_core::element::first_non_finite`], but 16 lanes wide on AVX-512 instead of the
/// baseline's 4); other element types go through the core's scan.
///
/// # Errors
/// [`Error::NonFinite`] with `operand` (the name of `x` in `op`) and the first offending index
/// and value.
pub fn check_finite<T: Element>(
    op: &'static str,
    operand: &'static str,
    level: Level,
    x: &[T],
) -> Result<()> {
    if let Some(f) = T::slice_f32(x) {
        if all_finite(level, f) {
            return Ok(());
        }
    }
    match nanotensor_core::element::first_non_finite(x) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            op,
            operand,
            index,
            value: x[index].as_f64(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both copies agree with `f32::is_finite` for every special value at every position (the
    /// 16-lane blocks and the tail).
    #[test]
    fn all_finite_agrees_with_is_finite() {
        let specials = [
            1.0f32,
            -0.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-45,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7f80_0001),
        ];
        for level in [Level::portable(), Level::detect()] {
            for len in [1usize, 15, 16, 17, 40] {
                for pos in 0..len {
                    for &v in &specials {
                        let mut x = vec![0.5f32; len];
                        x[pos] = v;
                        assert_eq!(all_finite(level, &x), v.is_finite(), "{len} {pos} {v}");
                        let r = check_finite("t", "x", level, &x);
                        match r {
                            Ok(()) => assert!(v.is_finite()),
                            Err(Error::NonFinite { index, .. }) => assert_eq!(index, pos),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }
        }
        assert!(check_finite("t", "x", Level::detect(), &[1.0f64, f64::NAN]).is_err());
    }

    #[test]
    fn level_follows_the_cpu_features() {
        assert_eq!(Level::detect(), Level::best(cpu::features()));
        assert_eq!(Level::best(&CpuFeatures::NONE), Level::portable());
    }
}
