//! The legacy 32-value blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//!
//! Each block holds its f16 scale `d` (and, for the `_1` types, an f16 offset `m`) before the
//! packed quants. The 4-bit types put value `j` in the low nibble of byte `j` and value `j + 16`
//! in its high nibble; the 5-bit types add a fifth bit from the little-endian `u32` `qh`, bit
//! `j` for value `j`. The arithmetic matches ggml's reference `dequantize_row_*`: the integer
//! quant (offset applied as an integer, so it is exact) times `d`, then `+ m`, each in f32.

use super::{f16_scale, BadBlock};

/// Values per block.
const QK: usize = 32;

/// Q4_0 (18 bytes: `d`, `qs[16]`): `x = d·(q − 8)`.
pub(super) fn q4_0(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<18>();
    let (ys, _) = out.as_chunks_mut::<QK>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b[2..]) {
            // `nibble − 8` is exact in f32, as the integer ggml computes.
            *lo = d * (f32::from(q & 0x0F) - 8.0);
            *hi = d * (f32::from(q >> 4) - 8.0);
        }
    }
    Ok(())
}

/// Q4_1 (20 bytes: `d`, `m`, `qs[16]`): `x = d·q + m`.
pub(super) fn q4_1(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<20>();
    let (ys, _) = out.as_chunks_mut::<QK>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        let m = f16_scale(i, "m", [b[2], b[3]])?;
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b[4..]) {
            *lo = d * f32::from(q & 0x0F) + m;
            *hi = d * f32::from(q >> 4) + m;
        }
    }
    Ok(())
}

/// Calls `each(x_j, x_{j+16}, q_j, q_{j+16})` with the 5-bit quants of a Q5 block: low nibbles
/// from `qs`, fifth bits from `qh`.
#[inline]
fn five_bit(y: &mut [f32; QK], qh: [u8; 4], qs: &[u8], each: impl Fn(&mut f32, &mut f32, u8, u8)) {
    let qh = u32::from_le_bytes(qh);
    let bit = |k: usize| u8::from((qh >> k) & 1 == 1) << 4;
    let (lo, hi) = y.split_at_mut(QK / 2);
    for (j, ((lo, hi), &q)) in lo.iter_mut().zip(hi).zip(qs).enumerate() {
        each(lo, hi, (q & 0x0F) | bit(j), (q >> 4) | bit(j | 16));
    }
}

/// Q5_0 (22 bytes: `d`, `qh[4]`, `qs[16]`): `x = d·(q − 16)`.
pub(super) fn q5_0(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<22>();
    let (ys, _) = out.as_chunks_mut::<QK>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        five_bit(y, [b[2], b[3], b[4], b[5]], &b[6..], |lo, hi, q0, q1| {
            *lo = d * (f32::from(q0) - 16.0);
            *hi = d * (f32::from(q1) - 16.0);
        });
    }
    Ok(())
}

/// Q5_1 (24 bytes: `d`, `m`, `qh[4]`, `qs[16]`): `x = d·q + m`.
pub(super) fn q5_1(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<24>();
    let (ys, _) = out.as_chunks_mut::<QK>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        let m = f16_scale(i, "m", [b[2], b[3]])?;
        five_bit(y, [b[4], b[5], b[6], b[7]], &b[8..], |lo, hi, q0, q1| {
            *lo = d * f32::from(q0) + m;
            *hi = d * f32::from(q1) + m;
        });
    }
    Ok(())
}

/// Q8_0 (34 bytes: `d`, `qs: [i8; 32]`): `x = d·q`.
pub(super) fn q8_0(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    let (blocks, _) = bytes.as_chunks::<34>();
    let (ys, _) = out.as_chunks_mut::<QK>();
    for (i, (b, y)) in blocks.iter().zip(ys).enumerate() {
        let d = f16_scale(i, "d", [b[0], b[1]])?;
        for (x, &q) in y.iter_mut().zip(&b[2..]) {
            *x = d * f32::from(i8::from_ne_bytes([q]));
        }
    }
    Ok(())
}
