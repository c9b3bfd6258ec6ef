//! Dequantization of GGUF tensor data to `f32`, bit for bit as ggml's reference
//! `dequantize_row_*` functions (and gguf-py's numpy dequantizers) compute it.
//!
//! All multi-byte fields are little-endian; `d`, `m` and `dmin` are IEEE binary16 (Q8_K's `d`
//! is binary32). A block covers `block_size` consecutive values of one row.
//!
//! | type | values / bytes | layout | value |
//! |------|----------------|--------|-------|
//! | F32, F16, BF16 | 1 / 4, 2, 2 | one value | widened exactly (BF16: the upper 16 bits of an f32) |
//! | Q4_0 | 32 / 18 | `d`, `qs[16]` | `x[j] = d·(lo(qs[j]) − 8)`, `x[j+16] = d·(hi(qs[j]) − 8)` |
//! | Q4_1 | 32 / 20 | `d`, `m`, `qs[16]` | `x[j] = d·lo(qs[j]) + m`, `x[j+16] = d·hi(qs[j]) + m` |
//! | Q5_0 | 32 / 22 | `d`, `qh: u32`, `qs[16]` | as Q4_0 with bit `j` of `qh` as the fifth bit of value `j`, offset 16 |
//! | Q5_1 | 32 / 24 | `d`, `m`, `qh: u32`, `qs[16]` | as Q4_1 with the fifth bit |
//! | Q8_0 | 32 / 34 | `d`, `qs: [i8; 32]` | `x[j] = d·qs[j]` |
//!
//! where `lo(b) = b & 0x0F` and `hi(b) = b >> 4`: the low nibbles hold the first half of the
//! block, the high nibbles the second half (not interleaved pairs).
//!
//! **K-quants** (256-value super-blocks of sub-blocks of 16 or 32 values, each with a small
//! integer scale `s`, and for Q2_K, Q4_K, Q5_K a minimum `m`, multiplying the f16 `d`, `dmin`).
//! Value `n` (0..256) of a super-block is found as follows. Packed bit fields run across the
//! block in groups of 32 values: a byte array of 32 (or 64) bytes holds, in bit field `k`,
//! the values of group `k`, value `n` at byte `n mod 32` (or `n mod 64`).
//!
//! | type | bytes | value `n` | sub-block scale `s`, minimum `m` |
//! |------|-------|-----------|-------------------------------|
//! | Q2_K | 84: `scales[16]`, `qs[64]`, `d`, `dmin` | `q = qs[32·(n/128) + n%32] >> 2·((n%128)/32) & 3` | `scales[n/16]`: `s` low nibble, `m` high nibble; `x = (d·s)·q − dmin·m` |
//! | Q3_K | 110: `hmask[32]`, `qs[64]`, `scales[12]`, `d` | 2 low bits as Q2_K, minus 4 unless bit `n/32` of `hmask[n%32]` is set | 16 six-bit scales (below) minus 32; `x = (d·s)·q` |
//! | Q4_K | 144: `d`, `dmin`, `scales[12]`, `qs[128]` | `q = qs[32·(n/64) + n%32] >> 4·((n%64)/32) & 15` | 8 six-bit pairs (below) for `n/32`; `x = (d·s)·q − dmin·m` |
//! | Q5_K | 176: `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]` | Q4_K's nibble, plus bit `n/32` of `qh[n%32]` as bit 4 | as Q4_K |
//! | Q6_K | 210: `ql[128]`, `qh[64]`, `scales: [i8; 16]`, `d` | low nibble of `ql[64·(n/128) + n%64]` (high nibble when `n%128 ≥ 64`), plus bits `2·((n%128)/32)..+2` of `qh[32·(n/128) + n%32]` as bits 4–5, minus 32 | `s = scales[n/16]`; `x = (d·s)·q` |
//! | Q8_K | 292: f32 `d`, `qs: [i8; 256]`, `bsums: [i16; 16]` | `q = qs[n]` | `x = d·q` (`bsums` is only for dot products) |
//!
//! Q3_K's twelve scale bytes hold sixteen 6-bit values: the low four bits of scale `j` are the
//! low nibble of byte `j` (`j < 8`) or the high nibble of byte `j − 8`, the high two bits are
//! bits `2·(j/4)..+2` of byte `8 + j%4`. Q4_K and Q5_K's twelve bytes hold eight 6-bit scales
//! and eight 6-bit minimums: for `j < 4`, `s = b[j] & 63`, `m = b[j+4] & 63`; for `j ≥ 4`, the
//! low four bits come from byte `j + 4` (low nibble for `s`, high nibble for `m`) and the high
//! two from the top bits of `b[j−4]` (`s`) and `b[j]` (`m`).
//!
//! Products are rounded to f32 in the order ggml's reference `dequantize_row_*_K` uses (the
//! sub-block scale `d·s` first), which is what makes the result bit-exact.
//!
//! **Types refused by name.** The i-quants (IQ1_S … IQ4_XS), the ternary TQ1_0/TQ2_0, MXFP4,
//! NVFP4, Q1_0, the activation format Q8_1 and the integer and F64 types are read and listed
//! (their block geometry is known) but not decoded: [`Error::UnsupportedTensorType`] names the
//! tensor and the type.
//!
//! **Corrupt blocks.** A NaN or infinite scale (`d`, `m`, `dmin`) in a quantized block is
//! refused with [`Error::CorruptBlock`] naming the tensor and the block, rather than spreading
//! NaN through every value of the block; so are Q8_K blocks whose f32 scale overflows `d·q`.
//! With finite f16 scales no product of these formats can overflow, so every accepted block
//! decodes to finite values. The plain float types are data, not scales: their NaN and
//! infinities pass through, and [`Backend::prepare`](nanotensor_core::backend::Backend::prepare)
//! refuses non-finite weights at model load.

mod kquants;
mod legacy;
#[cfg(test)]
mod tests;

use half::f16;

use super::types::GgmlType;
use nanotensor_core::error::{Error, Result};

const OP: &str = "dequantize";

/// The types [`dequantize`] decodes, as error messages list them.
pub const SUPPORTED: &str =
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";

/// Dequantizes the bytes of tensor `tensor` (its name, for errors), of element type `ty`, into
/// `out`, which holds exactly the values those bytes encode
/// (`out.len() / block_size · type_size == bytes.len()`).
///
/// # Errors
/// [`Error::UnsupportedTensorType`] when `ty` has no dequantizer (see
/// [`GgmlType::can_dequantize`]); [`Error::Format`] naming the tensor when the lengths do not
/// correspond; [`Error::CorruptBlock`] for a block with a non-finite scale (the contents of
/// `out` are then unspecified).
pub fn dequantize(tensor: &str, ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    dequantize_from(tensor, ty, bytes, 0, out)
}

/// [`dequantize`] of a slice that starts at block `first_block` of the tensor (e.g. one row),
/// so that a [`Error::CorruptBlock`] counts blocks from the tensor's start.
///
/// # Errors
/// As [`dequantize`].
pub fn dequantize_from(
    tensor: &str,
    ty: GgmlType,
    bytes: &[u8],
    first_block: usize,
    out: &mut [f32],
) -> Result<()> {
    check_supported(tensor, ty)?;
    let expected = ty.row_bytes(out.len()).map_err(|e| match e {
        Error::Format { reason, .. } => Error::format(OP, format!("tensor `{tensor}`: {reason}")),
        _ => Error::overflow(OP, format!("tensor `{tensor}`"), "byte size"),
    })?;
    if bytes.len() != expected {
        return Err(Error::format(
            OP,
            format!(
                "tensor `{tensor}`: {} values of {ty} take {expected} bytes, got {}",
                out.len(),
                bytes.len()
            ),
        ));
    }
    let decoded = match ty {
        GgmlType::F32 => plain_f32(bytes, out),
        GgmlType::F16 => plain_f16(bytes, out),
        GgmlType::BF16 => plain_bf16(bytes, out),
        GgmlType::Q4_0 => legacy::q4_0(bytes, out),
        GgmlType::Q4_1 => legacy::q4_1(bytes, out),
        GgmlType::Q5_0 => legacy::q5_0(bytes, out),
        GgmlType::Q5_1 => legacy::q5_1(bytes, out),
        GgmlType::Q8_0 => legacy::q8_0(bytes, out),
        GgmlType::Q2_K => kquants::q2_k(bytes, out),
        GgmlType::Q3_K => kquants::q3_k(bytes, out),
        GgmlType::Q4_K => kquants::q4_k(bytes, out),
        GgmlType::Q5_K => kquants::q5_k(bytes, out),
        GgmlType::Q6_K => kquants::q6_k(bytes, out),
        GgmlType::Q8_K => kquants::q8_k(bytes, out),
        _ => return Err(unsupported(tensor, ty)),
    };
    decoded.map_err(|bad| Error::CorruptBlock {
        op: OP,
        tensor: tensor.to_string(),
        // Saturating: a caller's `first_block` is only a label, never an index.
        block: first_block.saturating_add(bad.block),
        reason: bad.reason,
    })
}

/// `Ok` when [`dequantize`] can decode `ty`; else [`Error::UnsupportedTensorType`] naming
/// `tensor` and the type. A loader calls it before keeping a tensor's bytes for later decoding.
///
/// # Errors
/// As described.
pub fn check_supported(tensor: &str, ty: GgmlType) -> Result<()> {
    if ty.can_dequantize() {
        Ok(())
    } else {
        Err(unsupported(tensor, ty))
    }
}

fn unsupported(tensor: &str, ty: GgmlType) -> Error {
    Error::UnsupportedTensorType {
        op: OP,
        tensor: tensor.to_string(),
        type_name: ty.name(),
        supported: SUPPORTED,
    }
}

/// A block that cannot be decoded: its index within the slice and what is wrong with it.
#[derive(Debug)]
struct BadBlock {
    block: usize,
    reason: String,
}

impl BadBlock {
    fn non_finite(block: usize, field: &str, value: f32) -> BadBlock {
        BadBlock {
            block,
            reason: format!("scale `{field}` is {value}, not a finite number"),
        }
    }
}

/// The f16 scale field `field` of block `block`, widened to f32; an error when NaN or ±∞.
#[inline]
fn f16_scale(block: usize, field: &str, bytes: [u8; 2]) -> Result<f32, BadBlock> {
    let x = f16::from_bits(u16::from_le_bytes(bytes)).to_f32();
    if x.is_finite() {
        Ok(x)
    } else {
        Err(BadBlock::non_finite(block, field, x))
    }
}

/// F32: `out[i]` = the little-endian f32 at `bytes[4i..4i+4]`.
fn plain_f32(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
        *o = f32::from_le_bytes(*b);
    }
    Ok(())
}

/// F16: `out[i]` = the binary16 at `bytes[2i..2i+2]`, widened exactly.
fn plain_f16(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *o = f16::from_bits(u16::from_le_bytes(*b)).to_f32();
    }
    Ok(())
}

/// BF16: `out[i]` = f32 whose upper 16 bits are the bf16 at `bytes[2i..2i+2]` (exact).
fn plain_bf16(bytes: &[u8], out: &mut [f32]) -> Result<(), BadBlock> {
    for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16);
    }
    Ok(())
}
