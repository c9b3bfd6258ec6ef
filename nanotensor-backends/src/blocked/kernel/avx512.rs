//! AVX-512F f32 microkernel, `MR × NR = 12 × 32`, and the AVX-512 skinny (decode) kernel.
//!
//! Register budget (32 zmm): 12 rows × 2 vectors of 16 lanes = 24 accumulators, 2 registers
//! for the current B row, and the A values arrive as embedded broadcasts of the FMA's memory
//! operand. Per depth step: 2 vector loads, 12 broadcasts, 24 FMAs — a core issues one or two
//! 512-bit FMAs per cycle, so the loads (≤ 2 per cycle) never limit, and 24 independent
//! accumulators hide the 4-cycle FMA latency (4 or 8 chains needed) several times over.
//!
//! Edge tiles run natively ([`GemmKernel::NATIVE_TILES`]): one const-generic body serves the
//! full tile and every row count `R < 12` (only `R` accumulator pairs, so a 4-row edge panel does
//! a third of the FMAs), and columns past the edge are neither read nor written thanks to
//! AVX-512 store/load masks.
//!
//! In the last depth block the store also flags NaN/±∞ among the finished values
//! ([`GemmKernel::FLAGS_NON_FINITE`]), which lets `matmul` skip its scan of the operands.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{GemmKernel, SkinnyKernel, TileAt};
use crate::cpu::CpuFeatures;

const MR: usize = 12;
const NR: usize = 32;
const PREFETCH_A: bool = true;

/// The AVX-512F f32 kernel. Only constructible when the CPU has AVX-512F.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512F32 {
    _checked: (),
}

impl Avx512F32 {
    /// The kernel, if `cpu` has AVX-512F (the one feature its code is compiled with).
    pub fn new(cpu: &CpuFeatures) -> Option<Self> {
        cpu.avx512f.then_some(Avx512F32 { _checked: () })
    }
}

impl GemmKernel for Avx512F32 {
    type A = f32;
    type B = f32;
    type C = f32;
    const MR: usize = MR;
    const NR: usize = NR;

    fn name(&self) -> &'static str {
        "avx512-f32-12x32"
    }

    fn microkernel(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, acc: bool) {
        super::check_tile_lengths(kc, (MR, NR), a.len(), b.len(), c.len(), ldc);
        // SAFETY: `self` exists only if AVX-512F was detected (see `new`), and the lengths of
        // `a`, `b` and `c` were checked by `check_tile_lengths` against what `kernel_rows`
        // reads and writes.
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

    /// Edge tiles are computed in place: only the valid rows are multiplied (a 256-row C ends
    /// in a 4-row panel, which a full tile would compute three times over), and the valid
    /// columns are read and written through AVX-512 masks — no scratch tile, no copy.
    const NATIVE_TILES: bool = true;

    /// The final store of the last depth block also tests the values for NaN/±∞ (exponent
    /// bits all ones): two logic operations and a compare per 16 lanes, next to the 24 FMAs
    /// per depth step of the tile, instead of a separate pass over A and B before the product.
    const FLAGS_NON_FINITE: bool = true;

    unsafe fn tile(
        &self,
        kc: usize,
        a: &[f32],
        b: &[f32],
        at: &TileAt,
        c: *mut f32,
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
            // length-checked above; the caller owns the full tile (`tile`'s contract with
            // NATIVE_TILES: `rows × cols` elements at stride `ldc`).
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

impl SkinnyKernel for Avx512F32 {
    fn skinny(&self, m: usize, kc: usize, x: &[f32], ldx: usize, b: &[f32], acc: &mut [f32]) {
        assert!((1..=8).contains(&m), "skinny: 1..=8 rows");
        assert!(
            b.len() >= kc * NR && acc.len() >= m * NR,
            "skinny: short buffers"
        );
        assert!(x.len() >= (m - 1) * ldx + kc, "skinny: short x");
        // SAFETY: AVX-512F was detected (the value's existence proves it); every pointer range
        // the skinny kernel touches was bounds-checked above.
        unsafe {
            match m {
                1 => skinny::<1>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                2 => skinny::<2>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                3 => skinny::<3>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                4 => skinny::<4>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                5 => skinny::<5>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                6 => skinny::<6>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                7 => skinny::<7>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
                _ => skinny::<8>(kc, x.as_ptr(), ldx, b.as_ptr(), acc.as_mut_ptr()),
            }
        }
    }
}

/// The microkernel: `C[0..R, 0..cols] (+)= Σ_p A[p·12 + i] · B[p·32 + j]` for the first `R`
/// rows of a 12-row A panel (`R` accumulator pairs). The full tile is `R = 12` unmasked (C read
/// and written in whole 32-wide rows); an edge tile is `MASKED`, its first `cols` columns only.
/// Returns, when `check` is set, whether a value written is NaN or ±∞ (else `false`).
///
/// # Safety
/// AVX-512F must be available; `a` readable for `kc·12`, `b` for `kc·32` floats; `c` readable
/// and writable for rows `i < R` at `c + i·ldc`, 32 floats each, or `cols` when `MASKED`.
#[allow(clippy::too_many_arguments)] // the flat operand list of a BLAS microkernel
#[target_feature(enable = "avx512f")]
unsafe fn kernel_rows<const R: usize, const MASKED: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    check: bool,
    cols: u32,
) -> bool {
    // Start fetching the C tile now so its rows are in cache when the sums are written.
    for i in 0..R {
        let row = c.wrapping_add(i * ldc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(64));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees `kc` steps of 32 B values and 12 A values.
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16))) };
        if PREFETCH_A {
            // A streams from L2: ask for the line 8 depth steps (384 bytes) ahead.
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(8 * MR) as *const i8);
        }
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `i < R ≤ 12` values of this depth step of A are readable.
            let ai = _mm512_set1_ps(unsafe { *a.add(i) });
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
        // SAFETY: advancing within (or one past) the panels the caller provided.
        unsafe {
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    // Column masks of the two 16-lane halves (all ones when not MASKED).
    let (m0, m1): (__mmask16, __mmask16) = if MASKED {
        let lo = cols.min(16);
        let hi = cols.saturating_sub(16).min(16);
        (
            ((1u32 << lo) - 1) as __mmask16,
            ((1u32 << hi) - 1) as __mmask16,
        )
    } else {
        (!0, !0)
    };
    // NaN and ±∞ are exactly the values whose exponent bits are all ones.
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let mut bad: __mmask16 = 0;
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row `i < R` of the C tile is accessible for 32 floats, or for the columns
        // the masks select (caller contract); masked-off lanes are neither read nor written.
        unsafe {
            let ci = c.add(i * ldc);
            let (mut r0, mut r1) = (row[0], row[1]);
            if MASKED {
                if accumulate {
                    r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
                    r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
                }
                _mm512_mask_storeu_ps(ci, m0, r0);
                _mm512_mask_storeu_ps(ci.add(16), m1, r1);
            } else {
                if accumulate {
                    r0 = _mm512_add_ps(r0, _mm512_loadu_ps(ci));
                    r1 = _mm512_add_ps(r1, _mm512_loadu_ps(ci.add(16)));
                }
                _mm512_storeu_ps(ci, r0);
                _mm512_storeu_ps(ci.add(16), r1);
            }
            if check {
                let e0 = _mm512_and_si512(_mm512_castps_si512(r0), exp);
                let e1 = _mm512_and_si512(_mm512_castps_si512(r1), exp);
                bad |= _mm512_mask_cmpeq_epi32_mask(m0, e0, exp);
                bad |= _mm512_mask_cmpeq_epi32_mask(m1, e1, exp);
            }
        }
    }
    bad != 0
}

/// `acc[i·32 + j] += Σ_p x[i·ldx + p] · b[p·32 + j]` for `M` rows: the decode path. For `M ≤ 2`
/// the depth loop is unrolled by two with separate accumulators, so the chain of dependent FMAs
/// never limits the rate at which B streams in.
///
/// # Safety
/// AVX-512F available; `x` readable for `(M−1)·ldx + kc`, `b` for `kc·32`, `acc` read/write
/// for `M·32` floats.
// The row index drives two accumulator arrays and the x offsets in lockstep.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
unsafe fn skinny<const M: usize>(
    kc: usize,
    x: *const f32,
    ldx: usize,
    b: *const f32,
    acc: *mut f32,
) {
    let mut s0 = [[_mm512_setzero_ps(); 2]; M];
    let mut s1 = [[_mm512_setzero_ps(); 2]; M];
    let mut p = 0;
    while p + 2 <= kc {
        // SAFETY: depth steps `p` and `p + 1` are below `kc`, inside the caller's ranges.
        unsafe {
            let bp = b.add(p * NR);
            // Prefetch 16 depth steps (2 KiB) ahead; a prefetch past the end never faults.
            let ahead = bp.wrapping_add(16 * NR) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(192));
            let (b0, b1) = (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16)));
            let (b2, b3) = (_mm512_loadu_ps(bp.add(32)), _mm512_loadu_ps(bp.add(48)));
            for i in 0..M {
                let x0 = _mm512_set1_ps(*x.add(i * ldx + p));
                let x1 = _mm512_set1_ps(*x.add(i * ldx + p + 1));
                s0[i][0] = _mm512_fmadd_ps(x0, b0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_ps(x0, b1, s0[i][1]);
                s1[i][0] = _mm512_fmadd_ps(x1, b2, s1[i][0]);
                s1[i][1] = _mm512_fmadd_ps(x1, b3, s1[i][1]);
            }
        }
        p += 2;
    }
    if p < kc {
        // SAFETY: the last depth step `p < kc`.
        unsafe {
            let bp = b.add(p * NR);
            let (b0, b1) = (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16)));
            #[allow(clippy::needless_range_loop)] // i indexes s0, s1 and the rows of x
            for i in 0..M {
                let x0 = _mm512_set1_ps(*x.add(i * ldx + p));
                s0[i][0] = _mm512_fmadd_ps(x0, b0, s0[i][0]);
                s0[i][1] = _mm512_fmadd_ps(x0, b1, s0[i][1]);
            }
        }
    }
    // SAFETY: `acc` holds `M·32` floats (caller contract).
    unsafe { add_skinny_sums(&s0, &s1, acc) };
}

/// `acc[i·32 ..][..32] += s0[i] + s1[i]` for `i < M`: the end of a skinny kernel that keeps two
/// sets of sums (even and odd depths) per row of 32 outputs.
///
/// # Safety
/// AVX-512F available; `acc` read/write for `M·32` floats.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn add_skinny_sums<const M: usize>(
    s0: &[[__m512; 2]; M],
    s1: &[[__m512; 2]; M],
    acc: *mut f32,
) {
    for (i, (a, b)) in s0.iter().zip(s1).enumerate() {
        // SAFETY: row `i < M` of `acc` holds 32 floats (caller contract).
        unsafe {
            let o = acc.add(i * NR);
            let r0 = _mm512_add_ps(_mm512_add_ps(a[0], b[0]), _mm512_loadu_ps(o));
            let r1 = _mm512_add_ps(_mm512_add_ps(a[1], b[1]), _mm512_loadu_ps(o.add(16)));
            _mm512_storeu_ps(o, r0);
            _mm512_storeu_ps(o.add(16), r1);
        }
    }
}

impl Avx512F32 {
    /// Row softmax (see [`super::scalar::softmax_rows_portable`]) compiled for this ISA.
    pub fn softmax_rows(&self, x: &mut [f32], n: usize) {
        // SAFETY: the value exists only when AVX-512F was detected; the callee is safe code.
        unsafe { softmax_rows_isa(x, n) }
    }
}

/// The portable row softmax, inlined into a function compiled with this ISA enabled.
///
/// # Safety
/// The ISA's features must be available.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_rows_isa(x: &mut [f32], n: usize) {
    super::scalar::softmax_rows_portable(x, n);
}
