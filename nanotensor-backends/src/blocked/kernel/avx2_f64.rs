//! AVX2 + FMA f64 microkernel, `MR × NR = 6 × 8`.
//!
//! The f32 kernel's shape ([`super::avx2`]) with 4-lane `__m256d` vectors: 6 rows × 2 vectors =
//! 12 accumulators, 2 registers for the B row, 1 broadcast — 15 of the 16 ymm registers.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{GemmKernel, SkinnyKernel};
use crate::cpu::CpuFeatures;

const MR: usize = 6;
const NR: usize = 8;

/// The AVX2+FMA f64 kernel. Only constructible when the CPU has AVX2 and FMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2F64 {
    _checked: (),
}

impl Avx2F64 {
    /// The kernel, if `cpu` has AVX2 and FMA (every feature its code is compiled with).
    pub fn new(cpu: &CpuFeatures) -> Option<Self> {
        (cpu.avx2 && cpu.fma).then_some(Avx2F64 { _checked: () })
    }
}

impl GemmKernel for Avx2F64 {
    type A = f64;
    type B = f64;
    type C = f64;
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = super::archparam::KC_F64;
    const PAR_MIN_MACS: usize = 1 << 20;

    fn name(&self) -> &'static str {
        "avx2-f64-6x8"
    }

    fn microkernel(&self, kc: usize, a: &[f64], b: &[f64], c: &mut [f64], ldc: usize, acc: bool) {
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only if AVX2 and FMA were detected (see `new`); the lengths of
        // `a`, `b` and `c` were checked against what `kernel_6x8` reads and writes.
        unsafe { kernel_6x8(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, acc) }
    }
}

impl SkinnyKernel for Avx2F64 {
    fn skinny(&self, m: usize, kc: usize, x: &[f64], ldx: usize, b: &[f64], acc: &mut [f64]) {
        // SAFETY: AVX2 and FMA were detected (the value's existence proves it); the callee is
        // the safe portable routine compiled for them.
        unsafe { skinny_isa(m, kc, x, ldx, b, acc) }
    }
}

/// The portable skinny routine compiled with AVX2+FMA enabled.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn skinny_isa(m: usize, kc: usize, x: &[f64], ldx: usize, b: &[f64], acc: &mut [f64]) {
    super::scalar::skinny_portable(NR, m, kc, x, ldx, b, acc);
}

/// `C[0..6, 0..8] (+)= Σ_p A[p·6 + i] · B[p·8 + j]`.
///
/// # Safety
/// AVX2 and FMA must be available; `a` readable for `kc·6`, `b` for `kc·8` values; `c`
/// writable for rows `i < 6` at `c + i·ldc`, 8 values each.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x8(
    kc: usize,
    a: *const f64,
    b: *const f64,
    c: *mut f64,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm256_setzero_pd(); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees `kc` steps of 8 B values and 6 A values.
        let (b0, b1) = unsafe { (_mm256_loadu_pd(b), _mm256_loadu_pd(b.add(4))) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `i < 6` values of this depth step of A are readable.
            let ai = _mm256_set1_pd(unsafe { *a.add(i) });
            row[0] = _mm256_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm256_fmadd_pd(ai, b1, row[1]);
        }
        // SAFETY: advancing within (or one past) the panels the caller provided.
        unsafe {
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < 6` of the C tile is writable for 8 values (caller contract).
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if accumulate {
                r0 = _mm256_add_pd(r0, _mm256_loadu_pd(ci));
                r1 = _mm256_add_pd(r1, _mm256_loadu_pd(ci.add(4)));
            }
            _mm256_storeu_pd(ci, r0);
            _mm256_storeu_pd(ci.add(4), r1);
        }
    }
}
