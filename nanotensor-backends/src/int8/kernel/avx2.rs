//! AVX2 int8 microkernel: `MR = 4`, `NR = 16` (two ymm of 8 i32 columns per row).
//!
//! AVX2 has no `vpdpbusd`; `vpmaddubsw` multiplies u8 by s8 and adds adjacent pairs into
//! *saturating* i16. With offset-binary B (`u8` up to 255) and `|a| ≤ 127` a pair could reach
//! `2·255·127 = 64,770 > 32,767` and saturate, so this kernel undoes the offset instead
//! (`b ^ 0x80` is the signed code) and uses the sign trick: `|a| · sign(b, a) = a·b` with
//! `|a| ≤ 127` as the unsigned operand and `|b| ≤ 127`, so a pair is at most
//! `2·127·127 = 32,258` and never saturates. `vpmaddwd` with ones then widens pairs to i32.
//! The products are exact, so the offset correction `corr` is not needed here.

use super::TileOut;
use core::arch::x86_64::*;

const MR: usize = 4;
const NR: usize = 16;

/// See [`super`].
///
/// # Safety
/// The CPU must support avx2, the inputs must have the lengths [`super::Kernel::tile`] asserts,
/// and `out.c` must satisfy its tile contract.
#[target_feature(enable = "avx2")]
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
            _ => tile_r::<4>(kc4, a, corr, b, out),
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile_r<const R: usize>(kc4: usize, a: &[i8], _corr: &[i32], b: &[u8], out: &TileOut<'_>) {
    debug_assert!(R <= MR && a.len() >= kc4 * MR * 4 && b.len() >= kc4 * NR * 4);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let offset = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for g in 0..kc4 {
        // SAFETY: g < kc4 and b.len() ≥ kc4·NR·4 = kc4·64.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_si256(bp.add(g * NR * 4).cast()),
                _mm256_loadu_si256(bp.add(g * NR * 4 + 32).cast()),
            )
        };
        // Offset-binary → signed codes.
        let bs = [_mm256_xor_si256(b0, offset), _mm256_xor_si256(b1, offset)];
        for (i, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: (g·MR + i)·4 + 4 ≤ kc4·MR·4 ≤ a.len().
            let a4 = unsafe { ap.add((g * MR + i) * 4).cast::<i32>().read_unaligned() };
            let ai = _mm256_set1_epi32(a4);
            let a_abs = _mm256_abs_epi8(ai);
            for h in 0..2 {
                let pairs = _mm256_maddubs_epi16(a_abs, _mm256_sign_epi8(bs[h], ai));
                acc_i[h] = _mm256_add_epi32(acc_i[h], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    // SAFETY: cs.len() ≥ NR = 16 (asserted by Kernel::tile).
    let cs = unsafe {
        [
            _mm256_loadu_ps(out.cs.as_ptr()),
            _mm256_loadu_ps(out.cs.as_ptr().add(8)),
        ]
    };
    for (i, acc_i) in acc.iter().enumerate() {
        let row_scale = _mm256_set1_ps(out.rs[i]);
        let mut v = [0.0f32; NR];
        for h in 0..2 {
            let x = _mm256_mul_ps(
                _mm256_cvtepi32_ps(acc_i[h]),
                _mm256_mul_ps(row_scale, cs[h]),
            );
            // SAFETY: v has NR = 16 floats; h·8 + 8 ≤ 16.
            unsafe { _mm256_storeu_ps(v.as_mut_ptr().add(h * 8), x) };
        }
        // SAFETY: row i of the tile holds `cols` elements the caller lets us own for this call.
        let row = unsafe { std::slice::from_raw_parts_mut(out.c.add(i * out.ldc), out.cols) };
        if out.accumulate {
            row.iter_mut().zip(&v).for_each(|(c, x)| *c += x);
        } else {
            row.copy_from_slice(&v[..out.cols]);
        }
    }
}

/// Per-block activation scales (see [`super`]): the exact block sums of [`tile`]'s sign trick,
/// converted and multiply-added into f32 accumulators with each block's row scale.
///
/// # Safety
/// As [`tile`], plus `bs.len() ≥ ⌈kc4/blk4⌉·MR` (asserted by [`super::Kernel::tile_blocks`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile_blocks(
    rows: usize,
    kc4: usize,
    blk4: usize,
    a: &[i8],
    bs: &[f32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    // SAFETY: the caller's contract is forwarded unchanged (every arm); `rows` selects `R`.
    unsafe {
        match rows {
            1 => blocks_r::<1>(kc4, blk4, a, bs, b, out),
            2 => blocks_r::<2>(kc4, blk4, a, bs, b, out),
            3 => blocks_r::<3>(kc4, blk4, a, bs, b, out),
            _ => blocks_r::<4>(kc4, blk4, a, bs, b, out),
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn blocks_r<const R: usize>(
    kc4: usize,
    blk4: usize,
    a: &[i8],
    bs: &[f32],
    b: &[u8],
    out: &TileOut<'_>,
) {
    debug_assert!(R <= MR && a.len() >= kc4 * MR * 4 && b.len() >= kc4 * NR * 4);
    debug_assert!(bs.len() >= kc4.div_ceil(blk4) * MR);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let offset = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut facc = [[_mm256_setzero_ps(); 2]; R];
    let mut g0 = 0;
    let mut blk = 0;
    while g0 < kc4 {
        let g1 = (g0 + blk4).min(kc4);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for g in g0..g1 {
            // SAFETY: g < kc4 and b.len() ≥ kc4·NR·4 = kc4·64.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_si256(bp.add(g * NR * 4).cast()),
                    _mm256_loadu_si256(bp.add(g * NR * 4 + 32).cast()),
                )
            };
            let bsg = [_mm256_xor_si256(b0, offset), _mm256_xor_si256(b1, offset)];
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: (g·MR + i)·4 + 4 ≤ kc4·MR·4 ≤ a.len().
                let a4 = unsafe { ap.add((g * MR + i) * 4).cast::<i32>().read_unaligned() };
                let ai = _mm256_set1_epi32(a4);
                let a_abs = _mm256_abs_epi8(ai);
                for h in 0..2 {
                    let pairs = _mm256_maddubs_epi16(a_abs, _mm256_sign_epi8(bsg[h], ai));
                    acc_i[h] = _mm256_add_epi32(acc_i[h], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        for (i, (acc_i, facc_i)) in acc.iter().zip(facc.iter_mut()).enumerate() {
            let s = _mm256_set1_ps(bs[blk * MR + i]);
            for h in 0..2 {
                // Multiply, then add (the kernel is chosen on avx2 alone, which excludes FMA).
                facc_i[h] =
                    _mm256_add_ps(facc_i[h], _mm256_mul_ps(_mm256_cvtepi32_ps(acc_i[h]), s));
            }
        }
        g0 = g1;
        blk += 1;
    }
    // SAFETY: cs.len() ≥ NR = 16 (asserted by Kernel::tile_blocks).
    let cs = unsafe {
        [
            _mm256_loadu_ps(out.cs.as_ptr()),
            _mm256_loadu_ps(out.cs.as_ptr().add(8)),
        ]
    };
    for (i, facc_i) in facc.iter().enumerate() {
        let mut v = [0.0f32; NR];
        for h in 0..2 {
            let x = _mm256_mul_ps(facc_i[h], cs[h]);
            // SAFETY: v has NR = 16 floats; h·8 + 8 ≤ 16.
            unsafe { _mm256_storeu_ps(v.as_mut_ptr().add(h * 8), x) };
        }
        // SAFETY: row i of the tile holds `cols` elements the caller lets us own for this call.
        let row = unsafe { std::slice::from_raw_parts_mut(out.c.add(i * out.ldc), out.cols) };
        if out.accumulate {
            row.iter_mut().zip(&v).for_each(|(c, x)| *c += x);
        } else {
            row.copy_from_slice(&v[..out.cols]);
        }
    }
}
