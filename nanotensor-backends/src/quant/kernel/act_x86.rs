//! The x86-64 activation quantizers: [`super::super::act::quantize_block`] with AVX2, and the
//! same rule straight into the tile layout ([`TileActs`]) for the prefill path, with no
//! intermediate [`super::super::act::QActs`]. Both give the portable rule's codes, scales and
//! sums bit for bit: the same division for the scale, product, rounding and integer sums.

use core::arch::x86_64::*;

use super::super::act::{BELOW_HALF, QK};
use super::super::tile::{TileActs, STEPS};

/// The sum of the 8 lanes.
#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: AVX2 (the caller's).
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// `round_half_away(v·id)` per lane, as i32.
#[inline(always)]
unsafe fn codes_of(v: __m256, id: __m256) -> __m256i {
    // SAFETY: AVX (the caller's).
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let t = _mm256_mul_ps(v, id);
        let r = _mm256_add_ps(
            t,
            _mm256_or_ps(_mm256_and_ps(t, sign), _mm256_set1_ps(BELOW_HALF)),
        );
        _mm256_cvttps_epi32(r)
    }
}

/// One block's codes (32 bytes, value `j` in byte `j`), scale and half sums. A non-finite
/// value leaves a code of −128, which finite values never give (`|v·id| ≤ 127` up to an ulp):
/// a NaN or an infinity times anything finite or zero is NaN, converted to `i32::MIN` and
/// saturated to −128 by the packs.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn block(x: &[f32; QK]) -> (__m256i, f32, i32, i32) {
    // SAFETY: AVX2 (the caller's); loads of 4 × 8 values of `x`.
    unsafe {
        let p = x.as_ptr();
        let (v0, v1, v2, v3) = (
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        );
        let sign = _mm256_set1_ps(-0.0);
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
            _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)),
        );
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let (i0, i1, i2, i3) = (
            codes_of(v0, id),
            codes_of(v1, id),
            codes_of(v2, id),
            codes_of(v3, id),
        );
        let s0 = hsum_epi32(_mm256_add_epi32(i0, i1));
        let s1 = hsum_epi32(_mm256_add_epi32(i2, i3));
        let b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        // The packs interleave the 128-bit halves: dword order 0, 4, 1, 5, … restores 0..32.
        let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        (b, d, s0, s1)
    }
}

/// [`super::super::act::quantize_block`] with AVX2, bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_block_avx2(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i16, i16) {
    // SAFETY: AVX2 (this function's); one store of 32 bytes into `q`.
    unsafe {
        let (b, d, s0, s1) = block(x);
        _mm256_storeu_si256(q.as_mut_ptr().cast(), b);
        (d, s0 as i16, s1 as i16)
    }
}

/// `rows` rows of `k` values of `x` quantized straight into `ta`'s layout: what
/// `QActs::quantize` then `TileActs::build` give, bit for bit. Returns `false` (and `ta` in
/// an unspecified state) if `x` holds a NaN or an infinity.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_tile_avx2(
    x: &[f32],
    rows: usize,
    k: usize,
    ta: &mut TileActs,
) -> bool {
    assert!(x.len() >= rows * k);
    let nb = k.div_ceil(QK);
    let pairs = ta.size(rows, nb);
    let nb2 = 2 * pairs;
    let mut buf = [0.0f32; QK];
    // SAFETY: AVX2 (this function's); pair `p` of row `r` is the 64 bytes at
    // `(r·pairs + p)·64` of `ta.qs`, sized by `size`.
    unsafe {
        let bad = _mm256_set1_epi8(-128);
        let mut poisoned = _mm256_setzero_si256();
        for r in 0..rows {
            let xr = &x[r * k..(r + 1) * k];
            for p in 0..pairs {
                let mut c = [_mm256_setzero_si256(); 2];
                for (e, c) in c.iter_mut().enumerate() {
                    let b = 2 * p + e;
                    if b >= nb {
                        continue;
                    }
                    let xb = &xr[b * QK..k.min((b + 1) * QK)];
                    let xb: &[f32; QK] = match xb.try_into() {
                        Ok(whole) => whole,
                        Err(_) => {
                            buf[..xb.len()].copy_from_slice(xb);
                            buf[xb.len()..].fill(0.0);
                            &buf
                        }
                    };
                    let (codes, d, s0, s1) = block(xb);
                    poisoned = _mm256_or_si256(poisoned, _mm256_cmpeq_epi8(codes, bad));
                    *c = codes;
                    let at = r * nb2 + b;
                    // Wrapping: a block with a NaN or infinity has meaningless sums (the call
                    // then reports `false` and the portable path names the value).
                    let s = s0.wrapping_add(s1);
                    ta.d[at] = d;
                    ta.sd[at] = d * s as f32;
                    ta.sum[at] = s;
                    ta.sumh[2 * r * nb2 + b] = s0;
                    ta.sumh[(2 * r + 1) * nb2 + b] = s1;
                }
                // Steps 0, 1 | 4, 5 and 2, 3 | 6, 7: reordered into 0..4 | 4..8.
                let lo = _mm256_unpacklo_epi32(c[0], c[1]);
                let hi = _mm256_unpackhi_epi32(c[0], c[1]);
                let dst = ta.qs[(r * pairs + p) * STEPS * 8..][..STEPS * 8].as_mut_ptr();
                _mm256_storeu_si256(dst.cast(), _mm256_permute2x128_si256::<0x20>(lo, hi));
                _mm256_storeu_si256(
                    dst.add(32).cast(),
                    _mm256_permute2x128_si256::<0x31>(lo, hi),
                );
            }
        }
        _mm256_testz_si256(poisoned, poisoned) == 1
    }
}
