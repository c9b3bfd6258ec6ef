//! Dequantization of GGUF tensor data to `f32`.
//!
//! Block layouts (ggml `ggml-common.h`; all multi-byte fields little-endian, `d` and `m` are
//! IEEE binary16). A block covers `QK = 32` consecutive values `x[0..32]` of one row:
//!
//! | type | bytes | layout | value |
//! |------|-------|--------|-------|
//! | Q8_0 | 34 | `d`, `qs: [i8; 32]` | `x[j] = d · qs[j]` |
//! | Q4_0 | 18 | `d`, `qs: [u8; 16]` | `x[j] = d · (lo(qs[j]) − 8)`, `x[j+16] = d · (hi(qs[j]) − 8)` |
//! | Q4_1 | 20 | `d`, `m`, `qs: [u8; 16]` | `x[j] = d · lo(qs[j]) + m`, `x[j+16] = d · hi(qs[j]) + m` |
//!
//! where `lo(b) = b & 0x0F` and `hi(b) = b >> 4`, for `j` in `0..16`: the low nibbles hold the
//! first half of the block, the high nibbles the second half (not interleaved pairs).
//! Plain types: F32 (4 bytes), F16 (binary16), BF16 (the upper 16 bits of an f32).

use half::f16;

use super::types::GgmlType;
use nanotensor_core::error::{Error, Result};

const OP: &str = "dequantize";
/// Values per block of the legacy quantized types (Q4_0, Q4_1, Q8_0).
pub const QK: usize = 32;

/// Dequantizes `bytes` of element type `ty` into `out`, which holds exactly the values those
/// bytes encode (`out.len() / block_size · type_size == bytes.len()`).
///
/// # Errors
/// [`Error::Format`] when `ty` is not one of F32, F16, BF16, Q8_0, Q4_0, Q4_1 (see
/// [`GgmlType::can_dequantize`]), or when the lengths do not correspond.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    if !ty.can_dequantize() {
        return Err(Error::format(
            OP,
            format!(
                "element type {ty} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
            ),
        ));
    }
    let expected = ty.row_bytes(out.len())?;
    if bytes.len() != expected {
        return Err(Error::format(
            OP,
            format!(
                "{} values of {ty} take {expected} bytes, got {}",
                out.len(),
                bytes.len()
            ),
        ));
    }
    match ty {
        GgmlType::F32 => dequant_f32(bytes, out),
        GgmlType::F16 => dequant_f16(bytes, out),
        GgmlType::BF16 => dequant_bf16(bytes, out),
        GgmlType::Q8_0 => dequant_q8_0(bytes, out),
        GgmlType::Q4_0 => dequant_q4_0(bytes, out),
        GgmlType::Q4_1 => dequant_q4_1(bytes, out),
        _ => unreachable!("checked by can_dequantize"),
    }
    Ok(())
}

/// Reads the binary16 at `b[0..2]` as f32.
#[inline]
fn f16_at(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// F32: `out[i]` = the little-endian f32 at `bytes[4i..4i+4]`.
fn dequant_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// F16: `out[i]` = the binary16 at `bytes[2i..2i+2]`, widened exactly.
fn dequant_f16(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f16_at(b);
    }
}

/// BF16: `out[i]` = f32 whose upper 16 bits are the bf16 at `bytes[2i..2i+2]` (exact).
fn dequant_bf16(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

/// Q8_0: per 34-byte block, `x[j] = d · qs[j]`.
fn dequant_q8_0(bytes: &[u8], out: &mut [f32]) {
    for (x, block) in out.chunks_exact_mut(QK).zip(bytes.chunks_exact(34)) {
        let d = f16_at(&block[0..2]);
        for (xj, &q) in x.iter_mut().zip(&block[2..34]) {
            *xj = d * f32::from(q as i8);
        }
    }
}

/// Q4_0: per 18-byte block, `x[j] = d·(lo − 8)`, `x[j+16] = d·(hi − 8)`.
fn dequant_q4_0(bytes: &[u8], out: &mut [f32]) {
    for (x, block) in out.chunks_exact_mut(QK).zip(bytes.chunks_exact(18)) {
        let d = f16_at(&block[0..2]);
        let (first, second) = x.split_at_mut(QK / 2);
        for ((lo, hi), &q) in first.iter_mut().zip(second.iter_mut()).zip(&block[2..18]) {
            // The offset is applied in f32, where nibble − 8 is exact and cannot overflow.
            *lo = d * (f32::from(q & 0x0F) - 8.0);
            *hi = d * (f32::from(q >> 4) - 8.0);
        }
    }
}

/// Q4_1: per 20-byte block, `x[j] = d·lo + m`, `x[j+16] = d·hi + m`.
fn dequant_q4_1(bytes: &[u8], out: &mut [f32]) {
    for (x, block) in out.chunks_exact_mut(QK).zip(bytes.chunks_exact(20)) {
        let d = f16_at(&block[0..2]);
        let m = f16_at(&block[2..4]);
        let (first, second) = x.split_at_mut(QK / 2);
        for ((lo, hi), &q) in first.iter_mut().zip(second.iter_mut()).zip(&block[4..20]) {
            *lo = d * f32::from(q & 0x0F) + m;
            *hi = d * f32::from(q >> 4) + m;
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::*;

    // binary16 bit patterns, by hand: sign | 5-bit exponent (bias 15) | 10-bit mantissa.
    const H_ONE: u16 = 0x3C00; // 1.0
    const H_HALF: u16 = 0x3800; // 0.5
    const H_TWO: u16 = 0x4000; // 2.0
    const H_QUARTER: u16 = 0x3400; // 0.25
    const H_MINUS_ONE: u16 = 0xBC00; // -1.0

    fn run(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; n];
        dequantize(ty, bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn f32_f16_bf16_decode_bit_patterns() {
        let bytes: Vec<u8> = [1.5f32, -0.0, 1e-30]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(run(GgmlType::F32, &bytes, 3), [1.5, -0.0, 1e-30]);

        // 1.0, -2.0, 65504 (largest finite), 2^-24 (smallest subnormal).
        let h: Vec<u8> = [H_ONE, 0xC000, 0x7BFF, 0x0001]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            run(GgmlType::F16, &h, 4),
            [1.0, -2.0, 65504.0, 2f32.powi(-24)]
        );

        // bf16: 0x3F80 = 1.0, 0xC040 = -3.0, 0x4049 = 0x40490000 as f32 = 3.140625.
        let b: Vec<u8> = [0x3F80u16, 0xC040, 0x4049]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(run(GgmlType::BF16, &b, 3), [1.0, -3.0, 3.140625]);
    }

    #[test]
    fn q8_0_scales_signed_bytes() {
        // Two blocks: d = 0.5 with q = j − 16, then d = 2.0 with q = −128 and 127 alternating.
        let mut bytes = H_HALF.to_le_bytes().to_vec();
        bytes.extend((0..32).map(|j| (j as i8 - 16) as u8));
        bytes.extend(H_TWO.to_le_bytes());
        bytes.extend((0..32).map(|j| if j % 2 == 0 { 0x80u8 } else { 0x7F }));
        let out = run(GgmlType::Q8_0, &bytes, 64);
        for j in 0..32 {
            assert_eq!(out[j], 0.5 * (j as f32 - 16.0), "block 0, j = {j}");
            let expected = if j % 2 == 0 { -256.0 } else { 254.0 };
            assert_eq!(out[32 + j], expected, "block 1, j = {j}");
        }
    }

    #[test]
    fn q4_0_low_nibbles_first_half_high_nibbles_second() {
        // d = 2.0; byte j = (hi = j) << 4 | (lo = 15 − j).
        let mut bytes = H_TWO.to_le_bytes().to_vec();
        bytes.extend((0..16u8).map(|j| (j << 4) | (15 - j)));
        let out = run(GgmlType::Q4_0, &bytes, 32);
        for j in 0..16 {
            assert_eq!(out[j], 2.0 * (7.0 - j as f32), "lo nibble {j}"); // 2·((15−j) − 8)
            assert_eq!(out[16 + j], 2.0 * (j as f32 - 8.0), "hi nibble {j}");
        }
        // Spot values: byte 0 = 0x0F → x[0] = 2·7 = 14, x[16] = 2·(0−8) = −16.
        assert_eq!((out[0], out[16]), (14.0, -16.0));
    }

    #[test]
    fn q4_1_adds_the_minimum() {
        // d = 0.25, m = −1.0; byte 0 = 0xA3 (lo 3, hi 10), the rest 0xF0 (lo 0, hi 15).
        let mut bytes = H_QUARTER.to_le_bytes().to_vec();
        bytes.extend(H_MINUS_ONE.to_le_bytes());
        bytes.push(0xA3);
        bytes.extend([0xF0u8; 15]);
        let out = run(GgmlType::Q4_1, &bytes, 32);
        assert_eq!(out[0], -0.25); // 0.25·3 − 1
        assert_eq!(out[16], 1.5); // 0.25·10 − 1
        for j in 1..16 {
            assert_eq!(out[j], -1.0, "lo {j}"); // 0.25·0 − 1
            assert_eq!(out[16 + j], 2.75, "hi {j}"); // 0.25·15 − 1
        }
    }

    #[test]
    fn rejects_mismatched_lengths_and_unsupported_types() {
        let mut out = [0f32; 32];
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0u8; 33], &mut out),
            Err(Error::Format { .. })
        ));
        let mut odd = [0f32; 31];
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 20], &mut odd).is_err());
        assert!(matches!(
            dequantize(GgmlType::Q6_K, &[0u8; 210], &mut [0f32; 256]),
            Err(Error::Format { .. })
        ));
    }
}
