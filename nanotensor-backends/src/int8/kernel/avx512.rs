//! AVX-512 VNNI int8 microkernel: `MR = 8`, `NR = 32` (two zmm of 16 i32 columns per row).
//!
//! Per group of four `k`, two 64-byte loads of B (32 columns × 4 offset-binary codes) and, per
//! row, one 32-bit broadcast of A's four signed codes; `vpdpbusd` adds the four
//! `u8 × s8` products of each lane into its i32 accumulator. 16 independent accumulators cover
//! the instruction's latency. The epilogue subtracts the offset correction `corr[i]` (wrapping,
//! see [`super`]), converts to f32, scales and stores with column masks for the right edge.

use super::TileOut;

/// Per-block activation scales (see [`super`]): like [`tile`], but each block of `blk4` groups
/// gets fresh i32 accumulators whose sums are converted and multiply-added into f32 accumulators
/// with the block's row scale; the epilogue subtracts the scaled correction `fcorr[i]`.
///
/// # Safety
/// As [`tile`], plus `bs.len() ≥ ⌈kc4/blk4⌉·MR` and `fcorr.len() ≥ rows` (asserted by
/// [`super::Kernel::tile_blocks`]).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile_blocks(
    rows: usize,
    kc4: usize,
    blk4: usize,
    a: &[i8],
    bs: &[f32],
    fcorr: &[f32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    // SAFETY: the caller's contract is forwarded unchanged (every arm); `rows` selects `R`.
    unsafe {
        match rows {
            1 => blocks_r::<1>(kc4, blk4, a, bs, fcorr, b, out),
            2 => blocks_r::<2>(kc4, blk4, a, bs, fcorr, b, out),
            3 => blocks_r::<3>(kc4, blk4, a, bs, fcorr, b, out),
            4 => blocks_r::<4>(kc4, blk4, a, bs, fcorr, b, out),
            5 => blocks_r::<5>(kc4, blk4, a, bs, fcorr, b, out),
            6 => blocks_r::<6>(kc4, blk4, a, bs, fcorr, b, out),
            7 => blocks_r::<7>(kc4, blk4, a, bs, fcorr, b, out),
            _ => blocks_r::<8>(kc4, blk4, a, bs, fcorr, b, out),
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn blocks_r<const R: usize>(
    kc4: usize,
    blk4: usize,
    a: &[i8],
    bs: &[f32],
    fcorr: &[f32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    debug_assert!(R <= MR && a.len() >= kc4 * MR * 4 && b.len() >= kc4 * NR * 4);
    debug_assert!(bs.len() >= kc4.div_ceil(blk4) * MR && fcorr.len() >= R);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut facc = [[_mm512_setzero_ps(); 2]; R];
    let mut g0 = 0;
    let mut blk = 0;
    while g0 < kc4 {
        let g1 = (g0 + blk4).min(kc4);
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        for g in g0..g1 {
            // SAFETY: g < kc4 and b.len() ≥ kc4·NR·4, so bytes g·128 .. g·128+128 exist.
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
        for (i, (acc_i, facc_i)) in acc.iter().zip(facc.iter_mut()).enumerate() {
            // SAFETY: blk < ⌈kc4/blk4⌉ and i < R ≤ MR, so blk·MR + i < bs.len() (asserted by
            // the caller); unchecked so that the block epilogue carries no bounds checks.
            let s = _mm512_set1_ps(unsafe { *bs.as_ptr().add(blk * MR + i) });
            for h in 0..2 {
                facc_i[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc_i[h]), s, facc_i[h]);
            }
        }
        g0 = g1;
        blk += 1;
    }
    let masks = [lane_mask(out.cols, 0), lane_mask(out.cols, 16)];
    // SAFETY: cs.len() ≥ NR = 32 (asserted by Kernel::tile_blocks).
    let cs = unsafe {
        [
            _mm512_loadu_ps(out.cs.as_ptr()),
            _mm512_loadu_ps(out.cs.as_ptr().add(16)),
        ]
    };
    let cp = out.c;
    for (i, facc_i) in facc.iter().enumerate() {
        let correction = _mm512_set1_ps(fcorr[i]);
        for h in 0..2 {
            let mut v = _mm512_mul_ps(_mm512_sub_ps(facc_i[h], correction), cs[h]);
            // SAFETY: as in `tile_r`: row i < R, lanes masked to the tile's `cols`.
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
    out: &TileOut<'_>,
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
unsafe fn tile_r<const R: usize>(kc4: usize, a: &[i8], corr: &[i32], b: &[u8], out: &TileOut<'_>) {
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
