//! Products of 16-bit floats (bf16, f16) on the blocked machinery, accumulating in f32.
//!
//! * **bf16 on a CPU whose AVX512-BF16 is fast**: the operands are packed as bf16 pairs along
//!   the depth and multiplied by `vdpbf16ps` ([`kernel::avx512_bf16`](super::kernel::avx512_bf16)):
//!   twice the multiply-adds per instruction of the f32 kernel, half the bytes per operand.
//!   That pays where `vdpbf16ps` issues at the rate of an FMA, as on AMD Zen 4 and Zen 5. The
//!   Intel cores with AVX512-BF16 (Cooper Lake, Sapphire and Emerald Rapids) issue it at half
//!   that rate, so there the dot-product kernel delivers about as many multiply-adds per cycle
//!   as one FMA pipe, half the f32 kernel's: widening (below) is the faster path, and is the
//!   default. The choice is by vendor ([`CpuFeatures::amd`]); the environment variable
//!   `NANOTENSOR_BF16` = `dot` or `convert` overrides it (benchmarks compare both).
//! * **everything else** (bf16 elsewhere, f16 everywhere): the operands are widened to f32
//!   *while packing* — each run the packer copies is converted in bulk (F16C or AVX-512
//!   `vcvtph2ps` for f16, a shift for bf16; see [`kernel::convert`](super::kernel::convert))
//!   — and the detected f32 kernel runs. The product costs what an f32 product costs, plus the
//!   conversion of values the packer reads anyway.
//!
//! Either way C is accumulated in an f32 staging buffer (a per-thread workspace, so repeated
//! products do not allocate) and rounded once to the output type at the end.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::gemm::PackedB;
use super::gemm::{self, BSource};
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::gemv;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::kernel::avx512_bf16::Avx512Bf16;
pub(super) use super::kernel::convert::{narrow_into, widen_into};
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::kernel::GemmKernel;
use super::kernel::{with_f32_kernel, F32Kernel};
use super::pack::{with_workspace, MatRef, Slot};
use crate::cpu::CpuFeatures;
use crate::threads::Pool;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use half::bf16;
use nanotensor_core::{DType, Element};

/// The kernel a 16-bit float product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfKernel {
    /// bf16 pairs through `vdpbf16ps`.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Bf16(Avx512Bf16),
    /// Widened to f32 while packing, then this f32 kernel.
    Widen(F32Kernel),
}

impl HalfKernel {
    /// The kernel for `dtype` (bf16 or f16) on `cpu`: for bf16, the dot-product kernel when
    /// the CPU has it and `prefer_dot` (see [`Bf16Preference`]), else widening into `f32k`.
    pub fn choose(
        dtype: DType,
        cpu: &CpuFeatures,
        f32k: F32Kernel,
        preference: Bf16Preference,
    ) -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if dtype == DType::BF16 && preference.prefers_dot(cpu) {
            if let Some(k) = Avx512Bf16::new(cpu) {
                return HalfKernel::Bf16(k);
            }
        }
        let _ = (dtype, cpu, preference);
        HalfKernel::Widen(f32k)
    }

    /// The kernel's name: `"avx512bf16-12x32"`, or `"convert+"` and the f32 kernel's name.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            HalfKernel::Bf16(k) => k.name(),
            HalfKernel::Widen(k) => k.convert_name(),
        }
    }
}

/// Which bf16 path to take where both run (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Preference {
    /// By vendor: the dot-product kernel on AMD, widening elsewhere.
    Auto,
    /// The dot-product kernel wherever the CPU has AVX512-BF16.
    Dot,
    /// Widening into the f32 kernel everywhere.
    Convert,
}

impl Bf16Preference {
    /// The preference the environment variable `NANOTENSOR_BF16` names (`dot`, `convert`;
    /// anything else, or unset, is `Auto`).
    pub fn from_env() -> Self {
        match std::env::var("NANOTENSOR_BF16").as_deref() {
            Ok("dot") => Bf16Preference::Dot,
            Ok("convert") => Bf16Preference::Convert,
            _ => Bf16Preference::Auto,
        }
    }

    /// Whether the dot-product kernel is wanted on `cpu` (if it has one).
    pub fn prefers_dot(self, cpu: &CpuFeatures) -> bool {
        match self {
            Bf16Preference::Auto => cpu.amd,
            Bf16Preference::Dot => true,
            Bf16Preference::Convert => false,
        }
    }
}

/// `s` viewed as `U` when `T` and `U` are the same element type (no copy), else `None`.
pub(super) fn view<T: Element, U: Element>(s: &[T]) -> Option<&[U]> {
    (T::DTYPE == U::DTYPE).then(|| bytemuck::cast_slice(s))
}

/// [`view`] for a mutable slice.
pub(super) fn view_mut<T: Element, U: Element>(s: &mut [T]) -> Option<&mut [U]> {
    (T::DTYPE == U::DTYPE).then(|| bytemuck::cast_slice_mut(s))
}

/// `C = A·B` for row-major bf16/f16 `a` (`m × k`), `b` (`k × n`) into `c` (`m × n`).
///
/// # Returns
/// Whether the product proved both operands finite (see [`gemm::gemm`]): the widening and
/// the bf16 bit copy keep NaN/±∞ as they are, so the kernel's flag speaks of the caller's
/// operands.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul<T: Element>(
    hk: HalfKernel,
    pool: Option<&Pool>,
    a: &[T],
    b: &[T],
    c: &mut [T],
    m: usize,
    k: usize,
    n: usize,
) -> bool {
    with_workspace::<f32, _>(Slot::C, m * n, |c32| {
        let ok = match hk {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            HalfKernel::Bf16(kern) => {
                let (a, b) = (view::<T, bf16>(a), view::<T, bf16>(b));
                let (Some(a), Some(b)) = (a, b) else {
                    unreachable!("the bf16 kernel is only chosen for bf16 operands")
                };
                let (am, bm) = (MatRef::new(a, m, k, k, 1), MatRef::new(b, k, n, n, 1));
                let bits = |x: bf16| x.to_bits();
                gemm::gemm(kern, pool, am, bits, BSource::Strided(bm), bits, c32, n)
            }
            HalfKernel::Widen(f32k) => {
                let (am, bm) = (MatRef::new(a, m, k, k, 1), MatRef::new(b, k, n, n, 1));
                let wide = |x: T| x.as_f32();
                with_f32_kernel!(f32k, kern => {
                    gemm::gemm(kern, pool, am, wide, BSource::Strided(bm), wide, c32, n)
                })
            }
        };
        narrow_into(c32, c);
        ok
    })
}

/// A bf16 weight packed for the bf16 kernel: `Wᵀ` as bf16 pairs along the depth.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(super) fn pack_bf16<T: Element>(
    kern: Avx512Bf16,
    pool: Option<&Pool>,
    w: &[T],
    out_f: usize,
    in_f: usize,
) -> PackedB<u16> {
    let w = view::<T, bf16>(w).expect("the bf16 kernel is only chosen for bf16 weights");
    let wt = MatRef::new(w, out_f, in_f, in_f, 1).t();
    PackedB::new(kern, pool, wt, |x: bf16| x.to_bits())
}

/// `y = x·Wᵀ` for bf16 `x` (`rows × k`) and a weight packed by [`pack_bf16`], into `out`.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(super) fn linear_bf16<T: Element>(
    kern: Avx512Bf16,
    pool: Option<&Pool>,
    x: &[T],
    rows: usize,
    b: &PackedB<u16>,
    out: &mut [T],
) {
    let (k, n) = b.dims();
    let x = view::<T, bf16>(x).expect("a bf16 weight takes bf16 activations");
    if rows <= gemv::MAX_ROWS {
        // Decode: widen the few rows of x and stream the weight once through the skinny path
        // (split over the threads), rather than through the GEMM's packing and tiles.
        with_workspace::<f32, _>(Slot::A, rows * k, |x32| {
            widen_into(x, x32);
            with_workspace::<f32, _>(Slot::C, rows * n, |y32| {
                gemv::skinny(kern.widening_skinny(), pool, x32, rows, b, y32);
                narrow_into(y32, out);
            });
        });
        return;
    }
    with_workspace::<f32, _>(Slot::C, rows * n, |y32| {
        let xm = MatRef::new(x, rows, k, k, 1);
        let bits = |v: bf16| v.to_bits();
        gemm::gemm(kern, pool, xm, bits, BSource::Packed(b), |v| v, y32, n);
        narrow_into(y32, out);
    });
}

/// `y = x·Wᵀ` for f32 `x` (`rows × k`) and an f32 weight stored as bf16 by [`pack_bf16`]'s
/// layout (`WeightStorage::Bf16`), into f32 `y`. Up to [`gemv::MAX_ROWS`] rows the weight
/// streams through the widening skinny kernel and `x` stays f32; above, `x` is rounded to
/// bf16 (to nearest, ties to even) and the product runs on `vdpbf16ps`, twice the
/// multiply-adds per instruction of the f32 kernel.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(super) fn linear_f32_bf16_weights(
    kern: Avx512Bf16,
    pool: Option<&Pool>,
    x: &[f32],
    rows: usize,
    b: &PackedB<u16>,
    y: &mut [f32],
) {
    let (k, n) = b.dims();
    if rows <= gemv::MAX_ROWS {
        gemv::skinny(kern.widening_skinny(), pool, x, rows, b, y);
        return;
    }
    with_workspace::<bf16, _>(Slot::C, rows * k, |xb| {
        narrow_into(x, xb);
        let xm = MatRef::new(&*xb, rows, k, k, 1);
        let bits = |v: bf16| v.to_bits();
        gemm::gemm(kern, pool, xm, bits, BSource::Packed(b), |v| v, y, n);
    });
}
