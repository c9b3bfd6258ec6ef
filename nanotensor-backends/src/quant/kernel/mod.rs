//! The dot kernels of the quant backend and the one door to them: [`Kernel::best`].
//!
//! A kernel computes `y = Σ_j W[o, j]·x[r, j]` for one weight row `o` in its stored block format
//! and one activation row `r` quantized to 8-bit blocks ([`super::act`]), per block an exact
//! integer sum scaled in f32. [`portable`] is the reference.

pub mod portable;

use super::act::ActRow;
use super::layout::F16;
use crate::cpu::CpuFeatures;
use nanotensor_core::QuantFormat;

/// The instruction sets a quant kernel can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Plain Rust, any target (including wasm32).
    Portable,
}

impl KernelKind {
    /// The kernel's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Portable => "portable-q8-dot",
        }
    }

    /// Whether `cpu` runs it.
    pub fn runs_on(self, cpu: &CpuFeatures) -> bool {
        let _ = cpu;
        match self {
            KernelKind::Portable => true,
        }
    }
}

/// A kernel this CPU runs (constructed only through [`Kernel::best`] or [`Kernel::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(KernelKind);

impl Kernel {
    /// The fastest kernel `cpu` runs.
    pub fn best(cpu: &CpuFeatures) -> Kernel {
        let _ = cpu;
        Kernel(KernelKind::Portable)
    }

    /// `kind` if this CPU runs it.
    pub fn new(kind: KernelKind) -> Option<Kernel> {
        kind.runs_on(crate::cpu::features()).then_some(Kernel(kind))
    }

    /// Which kernel.
    pub fn kind(self) -> KernelKind {
        self.0
    }

    /// The dot product of weight row `w` (blocks of `fmt`) with activation row `a`.
    #[inline]
    pub fn dot(self, fmt: QuantFormat, w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
        match self.0 {
            KernelKind::Portable => portable::dot(fmt, w, a, h),
        }
    }
}
