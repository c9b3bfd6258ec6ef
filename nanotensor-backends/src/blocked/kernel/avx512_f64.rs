//! AVX-512F f64 microkernel, `MR × NR = 12 × 16`.
//!
//! The f32 kernel's shape ([`super::avx512`]) with 8-lane `__m512d` vectors: 12 rows × 2 vectors
//! of 8 lanes = 24 accumulators, 2 registers for the current B row, A values broadcast from
//! memory. Per depth step: 2 vector loads, 12 broadcasts, 24 FMAs (192 multiply-adds), so the
//! FMA pipes, not the loads, set the pace, and 24 independent chains hide the FMA latency.
//!
//! As in the f32 kernel, edge tiles run natively (only the valid rows are multiplied, the valid
//! columns are read and written through masks) and the last depth block flags NaN/±∞ among the
//! finished values, so `matmul` skips its scan of the operands when nothing was flagged.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{GemmKernel, SkinnyKernel, TileAt};
use crate::cpu::CpuFeatures;

const MR: usize = 12;
const NR: usize = 16;

/// The AVX-512F f64 kernel. Only constructible when the CPU has AVX-512F.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512F64 {
    _checked: (),
}

impl Avx512F64 {
    /// The kernel, if `cpu` has AVX-512F (the one feature its code is compiled with).
    pub fn new(cpu: &CpuFeatures) -> Option<Self> {
        cpu.avx512f.then_some(Avx512F64 { _checked: () })
    }
}

impl GemmKernel for Avx512F64 {
    type A = f64;
    type B = f64;
    type C = f64;
    const MR: usize = MR;
    const NR: usize = NR;
    // f64 values are twice as wide: half the f32 depth keeps every packed block's bytes.
    const KC: usize = super::archparam::KC_F64;
    const NATIVE_TILES: bool = true;
    const FLAGS_NON_FINITE: bool = true;
    // Half the multiply-adds of an f32 product take about as long.
    const PAR_MIN_MACS: usize = 1 << 20;

    fn name(&self) -> &'static str {
        "avx512-f64-12x16"
    }

    fn microkernel(&self, kc: usize, a: &[f64], b: &[f64], c: &mut [f64], ldc: usize, acc: bool) {
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only if AVX-512F was detected (see `new`); the lengths of `a`,
        // `b` and `c` were checked against what `kernel_rows` reads and writes.
        unsafe {
            kernel_rows::<MR, false>(
                kc,
                a.as_ptr(),
                b.as_ptr(),
                c.as_mut_ptr(),
                ldc,
                acc,
                false,
                NR as u32,
            );
        }
    }

    unsafe fn tile(
        &self,
        kc: usize,
        a: &[f64],
        b: &[f64],
        at: &TileAt,
        c: *mut f64,
        ldc: usize,
    ) -> bool {
        let (rows, cols) = (at.rows, at.cols);
        assert!(
            (1..=MR).contains(&rows) && (1..=NR).contains(&cols) && ldc >= cols,
            "tile: bad geometry"
        );
        assert!(
            a.len() >= kc * MR && b.len() >= kc * NR,
            "microkernel: short panel"
        );
        let (a, b, acc, last) = (a.as_ptr(), b.as_ptr(), at.accumulate, at.last);
        if rows == MR && cols == NR {
            // SAFETY: AVX-512F was detected (the value's existence proves it); the panels were
            // length-checked above; the caller owns the full tile (NATIVE_TILES contract).
            return unsafe { kernel_rows::<MR, false>(kc, a, b, c, ldc, acc, last, NR as u32) };
        }
        let cols = cols as u32;
        // SAFETY: as above; the edge kernel touches rows < `rows` and, through the masks,
        // columns < `cols` only.
        unsafe {
            match rows {
                1 => kernel_rows::<1, true>(kc, a, b, c, ldc, acc, last, cols),
                2 => kernel_rows::<2, true>(kc, a, b, c, ldc, acc, last, cols),
                3 => kernel_rows::<3, true>(kc, a, b, c, ldc, acc, last, cols),
                4 => kernel_rows::<4, true>(kc, a, b, c, ldc, acc, last, cols),
                5 => kernel_rows::<5, true>(kc, a, b, c, ldc, acc, last, cols),
                6 => kernel_rows::<6, true>(kc, a, b, c, ldc, acc, last, cols),
                7 => kernel_rows::<7, true>(kc, a, b, c, ldc, acc, last, cols),
                8 => kernel_rows::<8, true>(kc, a, b, c, ldc, acc, last, cols),
                9 => kernel_rows::<9, true>(kc, a, b, c, ldc, acc, last, cols),
                10 => kernel_rows::<10, true>(kc, a, b, c, ldc, acc, last, cols),
                11 => kernel_rows::<11, true>(kc, a, b, c, ldc, acc, last, cols),
                _ => kernel_rows::<12, true>(kc, a, b, c, ldc, acc, last, cols),
            }
        }
    }
}

impl SkinnyKernel for Avx512F64 {
    fn skinny(&self, m: usize, kc: usize, x: &[f64], ldx: usize, b: &[f64], acc: &mut [f64]) {
        assert!((1..=8).contains(&m), "skinny: 1..=8 rows");
        assert!(
            b.len() >= kc * NR && acc.len() >= m * NR,
            "skinny: short buffers"
        );
        assert!(x.len() >= (m - 1) * ldx + kc, "skinny: short x");
        let (x, b, acc) = (x.as_ptr(), b.as_ptr(), acc.as_mut_ptr());
        // SAFETY: AVX-512F was detected (the value's existence proves it); every pointer range
        // the skinny kernel touches was bounds-checked above.
        unsafe {
            match m {
                1 => skinny::<1>(kc, x, ldx, b, acc),
                2 => skinny::<2>(kc, x, ldx, b, acc),
                3 => skinny::<3>(kc, x, ldx, b, acc),
                4 => skinny::<4>(kc, x, ldx, b, acc),
                5 => skinny::<5>(kc, x, ldx, b, acc),
                6 => skinny::<6>(kc, x, ldx, b, acc),
                7 => skinny::<7>(kc, x, ldx, b, acc),
                _ => skinny::<8>(kc, x, ldx, b, acc),
            }
        }
    }
}

/// `acc[i·16 + j] += Σ_p x[i·ldx + p] · b[p·16 + j]` for `M` rows: the decode path, bound by
/// how fast B streams in. The depth loop is unrolled by two with separate accumulators (the
/// chain of dependent FMAs never waits), and B is prefetched 16 depth steps (2 KiB) ahead.
///
/// # Safety
/// AVX-512F available; `x` readable for `(M−1)·ldx + kc`, `b` for `kc·16`, `acc` read/write
/// for `M·16` values.
#[allow(clippy::needless_range_loop)] // the row index drives two accumulator arrays and x
#[target_feature(enable = "avx512f")]
unsafe fn skinny<const M: usize>(
    kc: usize,
    x: *const f64,
    ldx: usize,
    b: *const f64,
    acc: *mut f64,
) {
    let mut s0 = [[_mm512_setzero_pd(); 2]; M];
    let mut s1 = [[_mm512_setzero_pd(); 2]; M];
    let mut p = 0;
    while p + 2 <= kc {
        // SAFETY: depth steps `p` and `p + 1` are below `kc`, inside the caller's ranges; a
        // prefetch past the end never faults.
        unsafe {
            let bp = b.add(p * NR);
            let ahead = bp.wrapping_add(16 * NR) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(192));
            let (b0, b1) = (_mm512_loadu_pd(bp), _mm512_loadu_pd(bp.add(8)));
            let (b2, b3) = (_mm512_loadu_pd(bp.add(16)), _mm512_loadu_pd(bp.add(24)));
            for i in 0..M {
                let x0 = _mm512_set1_pd(*x.add(i * ldx + p));
                let x1 = _mm512_set1_pd(*x.add(i * ldx + p + 1));
                s0[i][0] = _mm512_fmadd_pd(x0, b0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_pd(x0, b1, s0[i][1]);
                s1[i][0] = _mm512_fmadd_pd(x1, b2, s1[i][0]);
                s1[i][1] = _mm512_fmadd_pd(x1, b3, s1[i][1]);
            }
        }
        p += 2;
    }
    if p < kc {
        // SAFETY: the last depth step `p < kc`.
        unsafe {
            let bp = b.add(p * NR);
            let (b0, b1) = (_mm512_loadu_pd(bp), _mm512_loadu_pd(bp.add(8)));
            for i in 0..M {
                let x0 = _mm512_set1_pd(*x.add(i * ldx + p));
                s0[i][0] = _mm512_fmadd_pd(x0, b0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_pd(x0, b1, s0[i][1]);
            }
        }
    }
    for i in 0..M {
        // SAFETY: `acc` holds `M·16` values (caller contract).
        unsafe {
            let o = acc.add(i * NR);
            let r0 = _mm512_add_pd(_mm512_add_pd(s0[i][0], s1[i][0]), _mm512_loadu_pd(o));
            let r1 = _mm512_add_pd(_mm512_add_pd(s0[i][1], s1[i][1]), _mm512_loadu_pd(o.add(8)));
            _mm512_storeu_pd(o, r0);
            _mm512_storeu_pd(o.add(8), r1);
        }
    }
}

/// `C[0..R, 0..cols] (+)= Σ_p A[p·12 + i] · B[p·16 + j]` for the first `R` rows of a 12-row A
/// panel; a `MASKED` tile reads and writes its first `cols` columns only. Returns, when `check`
/// is set, whether a value written is NaN or ±∞.
///
/// # Safety
/// AVX-512F must be available; `a` readable for `kc·12`, `b` for `kc·16` values; `c` readable
/// and writable for rows `i < R` at `c + i·ldc`, 16 values each, or `cols` when `MASKED`.
#[allow(clippy::too_many_arguments)] // the flat operand list of a BLAS microkernel
#[target_feature(enable = "avx512f")]
unsafe fn kernel_rows<const R: usize, const MASKED: bool>(
    kc: usize,
    a: *const f64,
    b: *const f64,
    c: *mut f64,
    ldc: usize,
    accumulate: bool,
    check: bool,
    cols: u32,
) -> bool {
    for i in 0..R {
        let row = c.wrapping_add(i * ldc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(64));
    }
    let mut acc = [[_mm512_setzero_pd(); 2]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees `kc` steps of 16 B values and 12 A values.
        let (b0, b1) = unsafe { (_mm512_loadu_pd(b), _mm512_loadu_pd(b.add(8))) };
        // A streams from L2: ask for the line 4 depth steps (384 bytes) ahead.
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(4 * MR) as *const i8);
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `i < R ≤ 12` values of this depth step of A are readable.
            let ai = _mm512_set1_pd(unsafe { *a.add(i) });
            row[0] = _mm512_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm512_fmadd_pd(ai, b1, row[1]);
        }
        // SAFETY: advancing within (or one past) the panels the caller provided.
        unsafe {
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    let (m0, m1): (__mmask8, __mmask8) = if MASKED {
        let lo = cols.min(8);
        let hi = cols.saturating_sub(8).min(8);
        (
            ((1u32 << lo) - 1) as __mmask8,
            ((1u32 << hi) - 1) as __mmask8,
        )
    } else {
        (!0, !0)
    };
    // NaN and ±∞ are exactly the values whose exponent bits are all ones.
    let exp = _mm512_set1_epi64(0x7ff0_0000_0000_0000);
    let mut bad: __mmask8 = 0;
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < R` of the C tile is accessible for 16 values, or for the columns
        // the masks select (caller contract); masked-off lanes are neither read nor written.
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if MASKED {
                if accumulate {
                    r0 = _mm512_add_pd(r0, _mm512_maskz_loadu_pd(m0, ci));
                    r1 = _mm512_add_pd(r1, _mm512_maskz_loadu_pd(m1, ci.add(8)));
                }
                _mm512_mask_storeu_pd(ci, m0, r0);
                _mm512_mask_storeu_pd(ci.add(8), m1, r1);
            } else {
                if accumulate {
                    r0 = _mm512_add_pd(r0, _mm512_loadu_pd(ci));
                    r1 = _mm512_add_pd(r1, _mm512_loadu_pd(ci.add(8)));
                }
                _mm512_storeu_pd(ci, r0);
                _mm512_storeu_pd(ci.add(8), r1);
            }
            if check {
                let e0 = _mm512_and_si512(_mm512_castpd_si512(r0), exp);
                let e1 = _mm512_and_si512(_mm512_castpd_si512(r1), exp);
                bad |= _mm512_mask_cmpeq_epi64_mask(m0, e0, exp);
                bad |= _mm512_mask_cmpeq_epi64_mask(m1, e1, exp);
            }
        }
    }
    bad != 0
}
