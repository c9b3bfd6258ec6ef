//! AVX-512 VNNI int8 microkernel: `MR = 8`, `NR = 32` (two zmm of 16 i32 columns per row).
//!
//! Per group of four `k`, two 64-byte loads of B (32 columns × 4 offset-binary codes) and, per
//! row, one 32-bit broadcast of A's four signed codes; `vpdpbusd` adds the four
//! `u8 × s8` products of each lane into its i32 accumulator. 16 independent accumulators cover
//! the instruction's latency. The epilogue subtracts the offset correction `corr[i]` (wrapping,
//! see [`super`]), converts to f32, scales and stores with column masks for the right edge.

use super::TileOut;
use core::arch::x86_64::*;

const MR: usize = 8;
const NR: usize = 32;

/// See [`super`]; dispatches on the number of rows so each variant keeps its accumulators in
/// registers.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni, the inputs must have the lengths
/// [`super::Kernel::tile`] asserts, and `out.c` must satisfy its tile contract.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile(
    rows: usize,
    kc4: usize,
    a: &[i8],
    corr: &[i32],
    b: &[u8],
    out: TileOut<'_>,
) {
    // SAFETY: the caller's contract is forwarded unchanged (every arm); `rows` selects `R`.
    unsafe {
        match rows {
            1 => tile_r::<1>(kc4, a, corr, b, out),
            2 => tile_r::<2>(kc4, a, corr, b, out),
            3 => tile_r::<3>(kc4, a, corr, b, out),
            4 => tile_r::<4>(kc4, a, corr, b, out),
            5 => tile_r::<5>(kc4, a, corr, b, out),
            6 => tile_r::<6>(kc4, a, corr, b, out),
            7 => tile_r::<7>(kc4, a, corr, b, out),
            _ => tile_r::<8>(kc4, a, corr, b, out),
        }
    }
}

/// Column mask of `cols` lanes starting at lane `from` of a 16-lane vector.
#[inline(always)]
fn lane_mask(cols: usize, from: usize) -> __mmask16 {
    let n = cols.saturating_sub(from).min(16);
    ((1u32 << n) - 1) as __mmask16
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile_r<const R: usize>(kc4: usize, a: &[i8], corr: &[i32], b: &[u8], out: TileOut<'_>) {
    debug_assert!(R <= MR && a.len() >= kc4 * MR * 4 && b.len() >= kc4 * NR * 4);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for g in 0..kc4 {
        // SAFETY: g < kc4 and b.len() ≥ kc4·NR·4 = kc4·128, so bytes g·128 .. g·128+128 exist.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_si512(bp.add(g * NR * 4).cast()),
                _mm512_loadu_si512(bp.add(g * NR * 4 + 64).cast()),
            )
        };
        for (i, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: (g·MR + i)·4 + 4 ≤ kc4·MR·4 ≤ a.len(); the read is unaligned-safe.
            let a4 = unsafe { ap.add((g * MR + i) * 4).cast::<i32>().read_unaligned() };
            let ai = _mm512_set1_epi32(a4);
            acc_i[0] = _mm512_dpbusd_epi32(acc_i[0], b0, ai);
            acc_i[1] = _mm512_dpbusd_epi32(acc_i[1], b1, ai);
        }
    }
    let masks = [lane_mask(out.cols, 0), lane_mask(out.cols, 16)];
    // SAFETY: cs.len() ≥ NR = 32 (asserted by Kernel::tile).
    let cs = unsafe {
        [
            _mm512_loadu_ps(out.cs.as_ptr()),
            _mm512_loadu_ps(out.cs.as_ptr().add(16)),
        ]
    };
    let cp = out.c;
    for (i, acc_i) in acc.iter().enumerate() {
        let correction = _mm512_set1_epi32(corr[i]);
        let row_scale = _mm512_set1_ps(out.rs[i]);
        for h in 0..2 {
            let exact = _mm512_sub_epi32(acc_i[h], correction);
            let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(row_scale, cs[h]));
            // SAFETY: row i < R of the tile starts at i·ldc; lanes h·16 + l < cols are tile
            // elements the caller lets us own, and the masks disable every other lane (masked
            // loads and stores never touch disabled lanes).
            unsafe {
                let p = cp.add(i * out.ldc + h * 16);
                if out.accumulate {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[h], p));
                }
                _mm512_mask_storeu_ps(p, masks[h], v);
            }
        }
    }
}
