//! Where each format keeps its codes and scales inside a block: the unpacking the portable
//! kernels use (the SIMD kernels do the same with shuffles and masks), tested value for value
//! against the model crate's dequantizers (`quant::tests`). The byte layouts are tabled in
//! [`nanotensor_core::blocks::QuantFormat`] and in `nanotensor-models`' `gguf::dequant`.

use std::sync::OnceLock;

use half::f16;
use nanotensor_core::QuantFormat;

use super::act::QK;

/// Every f16 value widened to f32, indexed by its bits: a scale is one load, as in ggml's
/// `ggml_table_f32_f16`, where a portable conversion would be a dozen integer operations.
#[derive(Debug)]
pub struct F16(Box<[f32]>);

impl F16 {
    /// The process's table (256 KiB, built on first use).
    pub fn table() -> &'static F16 {
        static TABLE: OnceLock<F16> = OnceLock::new();
        TABLE.get_or_init(|| F16((0..=u16::MAX).map(|b| f16::from_bits(b).to_f32()).collect()))
    }

    /// The little-endian f16 `bytes` as f32.
    #[inline]
    pub fn get(&self, bytes: [u8; 2]) -> f32 {
        self.0[usize::from(u16::from_le_bytes(bytes))]
    }
}

/// A legacy block's `d`, its `m` (the `_1` formats) and its 32 unsigned codes (before the
/// offset of `Q4_0`/`Q5_0`): value `j` is the low nibble of `qs[j]` (`j < 16`) or the high
/// nibble of `qs[j − 16]`, plus bit `j` of `qh` as bit 4 for the 5-bit formats.
#[inline]
pub fn legacy_codes(
    fmt: QuantFormat,
    blk: &[u8],
    five: bool,
    h: &F16,
) -> (f32, Option<f32>, [u8; QK]) {
    let d = h.get([blk[0], blk[1]]);
    let (m, rest) = match fmt {
        QuantFormat::Q4_1 | QuantFormat::Q5_1 => (Some(h.get([blk[2], blk[3]])), &blk[4..]),
        _ => (None, &blk[2..]),
    };
    let (qh, qs) = if five {
        (
            u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
            &rest[4..],
        )
    } else {
        (0, rest)
    };
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        let bit = |k: usize| (((qh >> k) & 1) as u8) << 4;
        q[j] = (qs[j] & 0x0F) | bit(j);
        q[j + 16] = (qs[j] >> 4) | bit(j + 16);
    }
    (d, m, q)
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) from Q4_K/Q5_K's twelve scale bytes.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Sub-block `j` (0..8) of a Q4_K/Q5_K super-block: its scale, minimum and 32 codes — nibble
/// `j % 2` of `qs[32·(j/2)..][..32]`, plus bit `j` of `qh[..32]` as bit 4 for Q5_K.
#[inline]
pub fn k45_codes(fmt: QuantFormat, blk: &[u8], j: usize) -> (u8, u8, [u8; QK]) {
    let (sc, m) = scale_min_k4(j, &blk[4..16]);
    let (qh, qs) = match fmt {
        QuantFormat::Q5_K => (Some(&blk[16..48]), &blk[48..]),
        _ => (None, &blk[16..]),
    };
    let shift = 4 * (j % 2);
    let src = &qs[32 * (j / 2)..][..32];
    let mut q = [0u8; QK];
    for (i, q) in q.iter_mut().enumerate() {
        *q = (src[i] >> shift) & 0x0F;
        if let Some(qh) = qh {
            *q |= ((qh[i] >> j) & 1) << 4;
        }
    }
    (sc, m, q)
}

/// Group `g` (0..8, 32 values) of a Q6_K super-block: its 6-bit codes (before the offset 32).
/// Half `g/4`, position `k = g%4` in it: nibble `k/2` of `ql[64·(g/4) + 32·(k%2)..][..32]`,
/// bits `2k..2k+2` of `qh[32·(g/4)..][..32]` as bits 4–5. Its two sub-blocks of 16 have the
/// signed scales `blk[192 + 2g]`, `blk[193 + 2g]`.
#[inline]
pub fn q6k_codes(blk: &[u8], g: usize) -> [u8; QK] {
    let (half, k) = (g / 4, g % 4);
    let lo = &blk[64 * half + 32 * (k % 2)..][..32];
    let hi = &blk[128 + 32 * half..][..32];
    let (ls, hs) = (4 * (k / 2), 2 * k);
    let mut q = [0u8; QK];
    for (i, q) in q.iter_mut().enumerate() {
        *q = ((lo[i] >> ls) & 0x0F) | (((hi[i] >> hs) & 3) << 4);
    }
    q
}

/// Quantizes `x` (a whole number of 32-value blocks, finite) to Q8_0 blocks appended to `out`:
/// `d = max|x|/127` rounded to f16, codes `round(x/d)` — the rule of ggml's
/// `quantize_row_q8_0_ref`. Returns `false` (nothing appended for the failing block) when a
/// block's `d` overflows f16 (`max|x|` above about 8.3·10⁶).
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) -> bool {
    for xb in x.chunks_exact(QK) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let dh = f16::from_f32(d);
        if !dh.is_finite() {
            return false;
        }
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&dh.to_bits().to_le_bytes());
        out.extend(xb.iter().map(|&v| ((v * id).round() as i8) as u8));
    }
    true
}
