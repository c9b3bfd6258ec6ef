//! The k-quants: 256-value super-blocks split into sub-blocks of 16 or 32 values, each with a
//! small integer scale (and for Q2_K, Q4_K, Q5_K an integer minimum) that multiplies the
//! super-block's f16 `d` (and `dmin`).
//!
//! The layouts and formulas are in the parent module's table.

// Every index below is bounded by the constant block geometry (values 0..256, bytes 0..292):
// none can overflow, and the slices it indexes have fixed lengths.
#![allow(clippy::arithmetic_side_effects)]

use super::{f16_scale, BadBlock};

/// Values per super-block.
const QK_K: usize = 256;

/// Q2_K: 16 sub-blocks of 16 with 4-bit scales and minimums, 2-bit quants.
pub(super) fn q2_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<84>();
    let (ys, _) = out.as_chunks_mut::<QK_K>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let (scales, rest) = b.split_at(16);
        let (qs, dm) = rest.split_at(64);
        let d = f16_scale(i, "d", [dm[0], dm[1]])?;
        let dmin = f16_scale(i, "dmin", [dm[2], dm[3]])?;
        // Group g of 32 values: bits 2·(g%4) of the 32 bytes qs[32·(g/4)..].
        for (g, yg) in y.chunks_exact_mut(32).enumerate() {
            let q = &qs[32 * (g / 4)..][..32];
            let shift = 2 * (g % 4);
            for (h, (ys, q)) in yg.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
                let sc = scales[2 * g + h];
                let dl = d * f32::from(sc & 0x0F);
                let ml = dmin * f32::from(sc >> 4);
                for (x, &q) in ys.iter_mut().zip(q) {
                    *x = dl * f32::from((q >> shift) & 3) - ml;
                }
            }
        }
    }
    Ok(())
}

/// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales, 3-bit quants.
pub(super) fn q3_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<110>();
    let (ys, _) = out.as_chunks_mut::<QK_K>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let (hmask, rest) = b.split_at(32);
        let (qs, rest) = rest.split_at(64);
        let (sb, d) = rest.split_at(12);
        let d = f16_scale(i, "d", [d[0], d[1]])?;
        let mut dl = [0f32; 16];
        for (j, dl) in dl.iter_mut().enumerate() {
            let lo = if j < 8 { sb[j] & 0x0F } else { sb[j - 8] >> 4 };
            let hi = (sb[8 + j % 4] >> (2 * (j / 4))) & 3;
            *dl = d * f32::from(i16::from(lo | (hi << 4)) - 32);
        }
        // Group g of 32 values: low bits as Q2_K, high bit g of the 32 hmask bytes.
        for (g, yg) in y.chunks_exact_mut(32).enumerate() {
            let q = &qs[32 * (g / 4)..][..32];
            let shift = 2 * (g % 4);
            let parts = yg.chunks_exact_mut(16).zip(q.chunks_exact(16));
            for (h, ((ys, q), m)) in parts.zip(hmask.chunks_exact(16)).enumerate() {
                let dl = dl[2 * g + h];
                for ((x, &q), &m) in ys.iter_mut().zip(q).zip(m) {
                    let low = i16::from((q >> shift) & 3);
                    let high_set = (m >> g) & 1 == 1;
                    *x = dl * f32::from(low - if high_set { 0 } else { 4 });
                }
            }
        }
    }
    Ok(())
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a Q4_K or Q5_K block.
#[inline]
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and minimums; Q5_K's `qh` adds the
/// fifth bit.
fn q45_k<const N: usize>(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<N>();
    let (ys, _) = out.as_chunks_mut::<QK_K>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        let dmin = f16_scale(i, "dmin", [b[2], b[3]])?;
        let (scales, rest) = b[4..].split_at(12);
        // Q5_K has 32 bytes of fifth bits before the nibbles; Q4_K has none.
        let (qh, qs) = rest.split_at(N - 16 - QK_K / 2);
        // Sub-block j: nibble j%2 of the 32 bytes qs[32·(j/2)..], fifth bit j of qh.
        for (j, sub) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(j, scales);
            let dl = d * f32::from(sc);
            let ml = dmin * f32::from(m);
            let q = &qs[32 * (j / 2)..][..32];
            let shift = 4 * (j % 2);
            if qh.is_empty() {
                for (x, &q) in sub.iter_mut().zip(q) {
                    *x = dl * f32::from((q >> shift) & 0x0F) - ml;
                }
            } else {
                for ((x, &q), &h) in sub.iter_mut().zip(q).zip(qh) {
                    let q = ((q >> shift) & 0x0F) | (((h >> j) & 1) << 4);
                    *x = dl * f32::from(q) - ml;
                }
            }
        }
    }
    Ok(())
}

/// Q4_K: 144-byte blocks.
pub(super) fn q4_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    q45_k::<144>(bytes, out)
}

/// Q5_K: 176-byte blocks.
pub(super) fn q5_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    q45_k::<176>(bytes, out)
}

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales, 6-bit quants.
pub(super) fn q6_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<210>();
    let (ys, _) = out.as_chunks_mut::<QK_K>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let (ql, rest) = b.split_at(128);
        let (qh, rest) = rest.split_at(64);
        let (scales, d) = rest.split_at(16);
        let d = f16_scale(i, "d", [d[0], d[1]])?;
        // Group g of 32 values, in half g/4 at position k = g%4 of it: nibble k/2 of the 32
        // bytes ql[64·(g/4) + 32·(k%2)..], bits 2k..2k+2 of the 32 bytes qh[32·(g/4)..].
        for (g, yg) in y.chunks_exact_mut(32).enumerate() {
            let (half, k) = (g / 4, g % 4);
            let lo = &ql[64 * half + 32 * (k % 2)..][..32];
            let hi = &qh[32 * half..][..32];
            let (lo_shift, hi_shift) = (4 * (k / 2), 2 * k);
            let parts = yg.chunks_exact_mut(16).zip(lo.chunks_exact(16));
            for (h, ((ys, lo), hi)) in parts.zip(hi.chunks_exact(16)).enumerate() {
                let s = i8::from_ne_bytes([scales[2 * g + h]]);
                let ds = d * f32::from(s);
                for ((x, &lo), &hi) in ys.iter_mut().zip(lo).zip(hi) {
                    let q = ((lo >> lo_shift) & 0x0F) | (((hi >> hi_shift) & 3) << 4);
                    *x = ds * f32::from(i16::from(q) - 32);
                }
            }
        }
    }
    Ok(())
}

/// Q8_K: an f32 scale and 256 signed bytes. The scale is an f32, so a finite one can still make
/// `d·q` overflow: that block is refused too, so every accepted block decodes to finite values.
pub(super) fn q8_k(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<292>();
    let (ys, _) = out.as_chunks_mut::<QK_K>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if !d.is_finite() {
            return Err(BadBlock::non_finite(i, "d", d));
        }
        for (x, &q) in y.iter_mut().zip(&b[4..4 + QK_K]) {
            *x = d * f32::from(i8::from_ne_bytes([q]));
        }
        if y.iter().any(|x| x.is_infinite()) {
            return Err(BadBlock {
                block: i,
                reason: format!("scale `d` = {d:e} makes d·q overflow f32"),
            });
        }
    }
    Ok(())
}
