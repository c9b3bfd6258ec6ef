//! The wasm32 simd128 dot kernel: one weight row in its stored block format against one
//! activation row of 8-bit blocks, the sums of [`super::portable::dot`] with 128-bit vectors.
//!
//! WebAssembly has no run-time feature detection (a module with simd128 instructions does not
//! load on an engine without them), so this kernel exists only in a build compiled with
//! `-C target-feature=+simd128`, as the browser demo is; elsewhere the portable kernel runs.
//!
//! simd128 has no byte dot product; `i32x4.dot_i16x8_s` is its `pmaddwd`. A block's 32 codes
//! (unsigned, at most 63, or Q8_0's signed ones) and its 32 activation codes are widened to
//! 16 bits and multiplied pairwise into 4 exact i32 lanes, then scaled into an f32 accumulator
//! as on x86. The codes are unpacked with vector shifts and masks; the fifth bits of Q5_0,
//! Q5_1 and Q5_K come from a byte shuffle of `qh` and a per-byte bit test.

use core::arch::wasm32::*;

use super::super::act::{ActRow, QK};
use super::super::layout::{scale_min_k4, F16};
use nanotensor_core::QuantFormat;

/// Sixteen bytes of `s` from `at` (bounds-checked).
#[inline(always)]
fn load16(s: &[u8], at: usize) -> v128 {
    let s = &s[at..at + 16];
    // SAFETY: `s` holds 16 bytes; wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// Activation codes `16·h..16·h + 16` of block `b`.
#[inline(always)]
fn act16(a: &ActRow<'_>, b: usize, h: usize) -> v128 {
    let s = &a.qs[b * QK + 16 * h..b * QK + 16 * h + 16];
    // SAFETY: `s` holds 16 bytes.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// `Σ w·a` over 16 unsigned codes `w` (≤ 255) and 16 signed activation codes, as 4 i32 lanes.
#[inline(always)]
fn dot16_u(w: v128, a: v128) -> v128 {
    i32x4_add(
        i32x4_dot_i16x8(u16x8_extend_low_u8x16(w), i16x8_extend_low_i8x16(a)),
        i32x4_dot_i16x8(u16x8_extend_high_u8x16(w), i16x8_extend_high_i8x16(a)),
    )
}

/// As [`dot16_u`] with signed codes `w`.
#[inline(always)]
fn dot16_s(w: v128, a: v128) -> v128 {
    i32x4_add(
        i32x4_dot_i16x8(i16x8_extend_low_i8x16(w), i16x8_extend_low_i8x16(a)),
        i32x4_dot_i16x8(i16x8_extend_high_i8x16(w), i16x8_extend_high_i8x16(a)),
    )
}

/// Byte `j` = 0x10 where bit `j` (of 16, from bit `from` of `bits`) is set, else 0.
#[inline(always)]
fn fifth_bits(bits: u32, from: u32) -> v128 {
    let b = bits >> from;
    // Byte j takes byte j/8 of the 16 bits, then keeps bit j%8 of it.
    let spread = u8x16_swizzle(
        u32x4_splat(b),
        u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
    );
    let mask = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    v128_and(
        u8x16_ne(v128_and(spread, mask), u8x16_splat(0)),
        u8x16_splat(0x10),
    )
}

/// The sum of the 4 lanes.
#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v)
        + f32x4_extract_lane::<1>(v)
        + f32x4_extract_lane::<2>(v)
        + f32x4_extract_lane::<3>(v)
}

/// `acc + d·p` with `p` an i32 vector.
#[inline(always)]
fn scale_add(acc: v128, d: f32, p: v128) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_splat(d), f32x4_convert_i32x4(p)))
}

/// The dot product of weight row `w` (blocks of `fmt`) with activation row `a`.
///
/// # Panics
/// If `w` does not hold as many values as `a` (whole blocks).
pub fn dot(fmt: QuantFormat, w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
    assert_eq!(w.len() / fmt.block_bytes() * fmt.block_values(), a.qs.len());
    match fmt {
        QuantFormat::Q4_0 => legacy::<false, false>(w, a, h, 18, 8),
        QuantFormat::Q4_1 => legacy::<false, true>(w, a, h, 20, 0),
        QuantFormat::Q5_0 => legacy::<true, false>(w, a, h, 22, 16),
        QuantFormat::Q5_1 => legacy::<true, true>(w, a, h, 24, 0),
        QuantFormat::Q8_0 => q8_0(w, a, h),
        QuantFormat::Q4_K => k45::<false>(w, a, h, 144),
        QuantFormat::Q5_K => k45::<true>(w, a, h, 176),
        QuantFormat::Q6_K => q6_k(w, a, h),
    }
}

/// Q4_0, Q4_1, Q5_0, Q5_1: `bb`-byte blocks, offset `off`, minimum when `MIN`.
#[inline(always)]
fn legacy<const FIVE: bool, const MIN: bool>(
    w: &[u8],
    a: ActRow<'_>,
    h: &F16,
    bb: usize,
    off: i32,
) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut corr = 0.0f32;
    let nib = u8x16_splat(0x0F);
    for (b, blk) in w.chunks_exact(bb).enumerate() {
        let d = h.get([blk[0], blk[1]]);
        let rest = if MIN { &blk[4..] } else { &blk[2..] };
        let (qh, qs) = if FIVE {
            (
                u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
                &rest[4..20],
            )
        } else {
            (0, &rest[..16])
        };
        let x = load16(qs, 0);
        let mut lo = v128_and(x, nib);
        let mut hi = u8x16_shr(x, 4);
        if FIVE {
            lo = v128_or(lo, fifth_bits(qh, 0));
            hi = v128_or(hi, fifth_bits(qh, 16));
        }
        let p = i32x4_add(dot16_u(lo, act16(&a, b, 0)), dot16_u(hi, act16(&a, b, 1)));
        acc = scale_add(acc, d * a.d[b], p);
        if off != 0 {
            corr -= d * off as f32 * a.ds[b];
        }
        if MIN {
            corr += h.get([blk[2], blk[3]]) * a.ds[b];
        }
    }
    hsum(acc) + corr
}

/// Q8_0: signed codes.
#[inline(always)]
fn q8_0(w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let p = i32x4_add(
            dot16_s(load16(blk, 2), act16(&a, b, 0)),
            dot16_s(load16(blk, 18), act16(&a, b, 1)),
        );
        acc = scale_add(acc, h.get([blk[0], blk[1]]) * a.d[b], p);
    }
    hsum(acc)
}

/// Q4_K and Q5_K (`bb`-byte super-blocks): sub-block `j` is activation block `8·sb + j`.
#[inline(always)]
fn k45<const FIVE: bool>(w: &[u8], a: ActRow<'_>, h: &F16, bb: usize) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut corr = 0.0f32;
    let nib = u8x16_splat(0x0F);
    for (sb, blk) in w.chunks_exact(bb).enumerate() {
        let (d, dmin) = (h.get([blk[0], blk[1]]), h.get([blk[2], blk[3]]));
        let qs = if FIVE { &blk[48..] } else { &blk[16..] };
        for j in 0..8 {
            let b = 8 * sb + j;
            let (sc, m) = scale_min_k4(j, &blk[4..16]);
            let mut p = i32x4_splat(0);
            for half in 0..2 {
                let x = load16(qs, 32 * (j / 2) + 16 * half);
                let mut q = v128_and(u8x16_shr(x, 4 * (j % 2) as u32), nib);
                if FIVE {
                    // Bit j of each of the 16 bytes of `qh` at this half, moved to bit 4.
                    let qh = load16(blk, 16 + 16 * half);
                    let bit = v128_and(u8x16_shr(qh, j as u32), u8x16_splat(1));
                    q = v128_or(q, u8x16_shl(bit, 4));
                }
                p = i32x4_add(p, dot16_u(q, act16(&a, b, half)));
            }
            acc = scale_add(acc, d * f32::from(sc) * a.d[b], p);
            corr -= dmin * f32::from(m) * a.ds[b];
        }
    }
    hsum(acc) + corr
}

/// Q6_K: group `g` of 32 is activation block `8·sb + g`; its two sub-blocks of 16 have their
/// own signed scales, applied to each half's integer sum.
#[inline(always)]
fn q6_k(w: &[u8], a: ActRow<'_>, h: &F16) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut corr = 0.0f32;
    let nib = u8x16_splat(0x0F);
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        let d = h.get([blk[208], blk[209]]);
        for g in 0..8 {
            let b = 8 * sb + g;
            let (half, k) = (g / 4, g % 4);
            let mut p = i32x4_splat(0);
            let mut off = 0i32;
            for s in 0..2 {
                let lo = load16(blk, 64 * half + 32 * (k % 2) + 16 * s);
                let hi = load16(blk, 128 + 32 * half + 16 * s);
                let q = v128_or(
                    v128_and(u8x16_shr(lo, 4 * (k / 2) as u32), nib),
                    u8x16_shl(v128_and(u8x16_shr(hi, 2 * k as u32), u8x16_splat(3)), 4),
                );
                let sc = i32::from(blk[192 + 2 * g + s] as i8);
                p = i32x4_add(p, i32x4_mul(dot16_u(q, act16(&a, b, s)), i32x4_splat(sc)));
                off += sc * i32::from(a.sums[2 * b + s]);
            }
            let db = d * a.d[b];
            acc = scale_add(acc, db, p);
            corr -= db * (32 * off) as f32;
        }
    }
    hsum(acc) + corr
}
