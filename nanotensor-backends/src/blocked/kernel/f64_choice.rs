//! The f64 kernel of this CPU: AVX-512F → AVX2+FMA → portable, the order of the f32 choice.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use super::{avx2_f64, avx512_f64};
use super::{scalar, GemmKernel};
use crate::cpu::{self, CpuFeatures};
use std::sync::OnceLock;

/// The f64 kernel chosen for this CPU. Only [`F64Kernel::available_on`] builds one, after
/// checking the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F64Kernel {
    /// AVX-512F, 12 × 16 tile.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx512(avx512_f64::Avx512F64),
    /// AVX2 + FMA, 6 × 8 tile.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx2(avx2_f64::Avx2F64),
    /// Portable, 4 × 4 tile.
    Scalar(scalar::ScalarF64),
}

impl F64Kernel {
    /// The kernel's name (e.g. `"avx512-f64-12x16"`).
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F64Kernel::Avx512(k) => k.name(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            F64Kernel::Avx2(k) => k.name(),
            F64Kernel::Scalar(k) => k.name(),
        }
    }

    /// Every f64 kernel `cpu` can run, best first; the portable one always.
    pub fn available_on(cpu: &CpuFeatures) -> Vec<F64Kernel> {
        let mut v = Vec::new();
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            if let Some(k) = avx512_f64::Avx512F64::new(cpu) {
                v.push(F64Kernel::Avx512(k));
            }
            if let Some(k) = avx2_f64::Avx2F64::new(cpu) {
                v.push(F64Kernel::Avx2(k));
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let _ = cpu;
        v.push(F64Kernel::Scalar(scalar::ScalarF64));
        v
    }

    /// Every f64 kernel this CPU can run ([`cpu::features`]), best first.
    pub fn available() -> Vec<F64Kernel> {
        Self::available_on(cpu::features())
    }

    /// The best f64 kernel for this CPU, chosen once and cached.
    pub fn detect() -> F64Kernel {
        static BEST: OnceLock<F64Kernel> = OnceLock::new();
        *BEST.get_or_init(|| F64Kernel::available()[0])
    }
}

/// Runs `$body` with `$k` bound to the concrete kernel inside an [`F64Kernel`].
#[macro_export]
macro_rules! with_f64_kernel {
    ($kernel:expr, $k:ident => $body:expr) => {
        match $kernel {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            $crate::blocked::kernel::f64_choice::F64Kernel::Avx512($k) => $body,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            $crate::blocked::kernel::f64_choice::F64Kernel::Avx2($k) => $body,
            $crate::blocked::kernel::f64_choice::F64Kernel::Scalar($k) => $body,
        }
    };
}
pub use crate::with_f64_kernel;
