//! AVX2 + FMA f32 microkernel, `MR × NR = 6 × 16`.
//!
//! Register budget (16 ymm): 6 rows × 2 vectors of 8 lanes = 12 accumulators, 2 registers for
//! the current B row, 1 for the broadcast A value. Per depth step: 2 loads, 6 broadcasts,
//! 12 FMAs — the classic Haswell-to-Zen 3 shape.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{GemmKernel, SkinnyKernel};
use crate::cpu::CpuFeatures;

const MR: usize = 6;
const NR: usize = 16;

/// The AVX2+FMA f32 kernel. Only constructible when the CPU has AVX2 and FMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2F32 {
    _checked: (),
}

impl Avx2F32 {
    /// The kernel, if `cpu` has AVX2 and FMA (every feature its code is compiled with).
    pub fn new(cpu: &CpuFeatures) -> Option<Self> {
        (cpu.avx2 && cpu.fma).then_some(Avx2F32 { _checked: () })
    }
}

impl GemmKernel for Avx2F32 {
    type A = f32;
    type B = f32;
    type C = f32;
    const MR: usize = MR;
    const NR: usize = NR;

    fn name(&self) -> &'static str {
        "avx2-f32-6x16"
    }

    fn microkernel(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, acc: bool) {
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only if AVX2 and FMA were detected (see `new`), and the lengths
        // of `a`, `b` and `c` were checked by `check_tile_lengths` against what `kernel_6x16`
        // reads and writes.
        unsafe { kernel_6x16(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, acc) }
    }
}

impl SkinnyKernel for Avx2F32 {
    fn skinny(&self, m: usize, kc: usize, x: &[f32], ldx: usize, b: &[f32], acc: &mut [f32]) {
        // SAFETY: AVX2 and FMA were detected (the value's existence proves it); the wrapper
        // only calls the safe portable routine, compiled for these features.
        unsafe { skinny_avx2(m, kc, x, ldx, b, acc) }
    }
}

/// The portable skinny routine compiled with AVX2+FMA enabled (it inlines into this function).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn skinny_avx2(m: usize, kc: usize, x: &[f32], ldx: usize, b: &[f32], acc: &mut [f32]) {
    super::scalar::skinny_portable(NR, m, kc, x, ldx, b, acc);
}

/// `C[0..6, 0..16] (+)= Σ_p A[p·6 + i] · B[p·16 + j]`.
///
/// # Safety
/// AVX2 and FMA must be available; `a` readable for `kc·6`, `b` for `kc·16` floats; `c`
/// writable for rows `i < 6` at `c + i·ldc`, 16 floats each.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees `kc` steps of 16 B values and 6 A values.
        let (b0, b1) = unsafe { (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `i < 6` values of this depth step of A are readable.
            let ai = _mm256_set1_ps(unsafe { *a.add(i) });
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
        // SAFETY: advancing within (or one past) the panels the caller provided.
        unsafe {
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < 6` of the C tile is writable for 16 floats (caller contract).
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if accumulate {
                r0 = _mm256_add_ps(r0, _mm256_loadu_ps(ci));
                r1 = _mm256_add_ps(r1, _mm256_loadu_ps(ci.add(8)));
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci.add(8), r1);
        }
    }
}

impl Avx2F32 {
    /// Row softmax (see [`super::scalar::softmax_rows_portable`]) compiled for this ISA.
    pub fn softmax_rows(&self, x: &mut [f32], n: usize) {
        // SAFETY: the value exists only when AVX2 and FMA were detected; the callee is safe code.
        unsafe { softmax_rows_isa(x, n) }
    }
}

/// The portable row softmax, inlined into a function compiled with this ISA enabled.
///
/// # Safety
/// The ISA's features must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_isa(x: &mut [f32], n: usize) {
    super::scalar::softmax_rows_portable(x, n);
}
