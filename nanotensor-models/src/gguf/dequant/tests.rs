//! Hand-worked blocks for each type (expected values computed by hand from the layout, all
//! exact in f32), the refusal of corrupt blocks and unsupported types, and properties over
//! random blocks. Bit-exactness against gguf-py is the fixture test
//! (`nanotensor-models/tests/dequant_fixtures.rs`).

// Tests: index arithmetic on constants.
#![allow(clippy::arithmetic_side_effects)]

use super::*;
use crate::gguf::types::ALL_TYPES;
use proptest::prelude::*;

// binary16 bit patterns, by hand: sign | 5-bit exponent (bias 15) | 10-bit mantissa.
const H_ONE: u16 = 0x3C00; // 1.0
const H_HALF: u16 = 0x3800; // 0.5
const H_TWO: u16 = 0x4000; // 2.0
const H_QUARTER: u16 = 0x3400; // 0.25
const H_MINUS_ONE: u16 = 0xBC00; // -1.0
const H_NAN: u16 = 0x7E00;
const H_INF: u16 = 0x7C00;
const H_NEG_INF: u16 = 0xFC00;

fn run(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    dequantize("t", ty, bytes, &mut out).unwrap();
    out
}

fn h(x: u16) -> [u8; 2] {
    x.to_le_bytes()
}

#[test]
fn f32_f16_bf16_decode_bit_patterns() {
    let bytes: Vec<u8> = [1.5f32, -0.0, 1e-30]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(run(GgmlType::F32, &bytes, 3), [1.5, -0.0, 1e-30]);

    // 1.0, -2.0, 65504 (largest finite), 2^-24 (smallest subnormal).
    let hs: Vec<u8> = [H_ONE, 0xC000, 0x7BFF, 0x0001]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(
        run(GgmlType::F16, &hs, 4),
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
fn plain_types_pass_non_finite_data_through() {
    // Data, not a scale: the loader's `prepare` refuses non-finite weights instead.
    let hs: Vec<u8> = [H_NAN, H_INF]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let out = run(GgmlType::F16, &hs, 2);
    assert!(out[0].is_nan() && out[1] == f32::INFINITY);
}

#[test]
fn q8_0_scales_signed_bytes() {
    // Two blocks: d = 0.5 with q = j − 16, then d = 2.0 with q = −128 and 127 alternating.
    let mut bytes = h(H_HALF).to_vec();
    bytes.extend((0..32).map(|j| (j as i8 - 16) as u8));
    bytes.extend(h(H_TWO));
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
    let mut bytes = h(H_TWO).to_vec();
    bytes.extend((0..16u8).map(|j| (j << 4) | (15 - j)));
    let out = run(GgmlType::Q4_0, &bytes, 32);
    for j in 0..16 {
        assert_eq!(out[j], 2.0 * (7.0 - j as f32), "lo nibble {j}"); // 2·((15−j) − 8)
        assert_eq!(out[16 + j], 2.0 * (j as f32 - 8.0), "hi nibble {j}");
    }
}

#[test]
fn q4_1_adds_the_minimum() {
    // d = 0.25, m = −1.0; byte 0 = 0xA3 (lo 3, hi 10), the rest 0xF0 (lo 0, hi 15).
    let mut bytes = h(H_QUARTER).to_vec();
    bytes.extend(h(H_MINUS_ONE));
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
fn q5_0_takes_bit_j_of_qh_as_the_fifth_bit_of_value_j() {
    // d = 1; qh has bits 0, 16 and 31 set; qs[0] = 0xF3 (lo 3, hi 15), the rest 0.
    let mut bytes = h(H_ONE).to_vec();
    bytes.extend((1u32 | 1 << 16 | 1 << 31).to_le_bytes());
    bytes.push(0xF3);
    bytes.extend([0u8; 15]);
    let out = run(GgmlType::Q5_0, &bytes, 32);
    assert_eq!(out[0], 3.0); // (3 | 16) − 16
    assert_eq!(out[16], 15.0); // (15 | 16) − 16
    assert_eq!(out[31], 0.0); // (0 | 16) − 16
    for j in (1..16).chain(17..31) {
        assert_eq!(out[j], -16.0, "value {j}"); // 0 − 16
    }
}

#[test]
fn q5_1_adds_the_minimum_to_five_bit_quants() {
    // d = 0.5, m = −1; every quant 31 except value 0 (qh bit 0 clear, low nibble 0xF → 15).
    let mut bytes = h(H_HALF).to_vec();
    bytes.extend(h(H_MINUS_ONE));
    bytes.extend(0xFFFF_FFFEu32.to_le_bytes());
    bytes.extend([0xFFu8; 16]);
    let out = run(GgmlType::Q5_1, &bytes, 32);
    assert_eq!(out[0], 6.5); // 0.5·15 − 1
    for (j, &x) in out.iter().enumerate().skip(1) {
        assert_eq!(x, 14.5, "value {j}"); // 0.5·31 − 1
    }
}

#[test]
fn q2_k_sub_block_scales_and_minimums() {
    // d = 1, dmin = 2; scales[k] = s k | m (15 − k) << 4; every qs byte 0b11_10_01_00, so
    // value n has q = (n % 128) / 32.
    let mut b: Vec<u8> = (0..16u8).map(|k| k | ((15 - k) << 4)).collect();
    b.extend([0xE4u8; 64]);
    b.extend(h(H_ONE));
    b.extend(h(H_TWO));
    let out = run(GgmlType::Q2_K, &b, 256);
    for (n, &x) in out.iter().enumerate() {
        let (k, q) = ((n / 16) as f32, ((n % 128) / 32) as f32);
        assert_eq!(x, k * q - 2.0 * (15.0 - k), "value {n}");
    }
}

/// Packs sixteen 6-bit Q3_K scales into twelve bytes, following the layout in the docs.
fn pack_q3_k_scales(raw: [u8; 16]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for k in 0..8 {
        b[k] = (raw[k] & 0x0F) | ((raw[k + 8] & 0x0F) << 4);
    }
    for j in 0..16 {
        b[8 + j % 4] |= ((raw[j] >> 4) & 3) << (2 * (j / 4));
    }
    b
}

#[test]
fn q3_k_signed_scales_and_the_inverted_high_bit() {
    // d = 2; scale j = (j + 20) − 32 = j − 12 (raw values above 15 use the high bits); every
    // 2-bit quant 2; hmask bits 0..4 set: values 0..128 have q = 2, values 128.. q = 2 − 4.
    let raw: [u8; 16] = std::array::from_fn(|j| j as u8 + 20);
    let mut b = vec![0x0Fu8; 32];
    b.extend([0xAAu8; 64]);
    b.extend(pack_q3_k_scales(raw));
    b.extend(h(H_TWO));
    let out = run(GgmlType::Q3_K, &b, 256);
    for (n, &x) in out.iter().enumerate() {
        let s = (n / 16) as f32 - 12.0;
        let q = if n < 128 { 2.0 } else { -2.0 };
        assert_eq!(x, 2.0 * s * q, "value {n}");
    }
}

/// Packs eight 6-bit scales and minimums of Q4_K/Q5_K into twelve bytes, as the docs lay out.
fn pack_k4_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for j in 0..4 {
        b[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        b[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        b[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    b
}

#[test]
fn q4_k_and_q5_k_six_bit_scales_and_minimums() {
    // d = 1, dmin = 0.5; the upper four pairs need the packed high bits.
    let sc = [1, 2, 3, 4, 5, 6, 47, 63];
    let m = [0, 1, 2, 3, 60, 61, 62, 17];
    let mut q4 = h(H_ONE).to_vec();
    q4.extend(h(H_HALF));
    q4.extend(pack_k4_scales(sc, m));
    // Nibbles: value n gets (n % 64) / 32 + 1 (low nibble 1, high nibble 2).
    q4.extend([0x21u8; 128]);
    let out = run(GgmlType::Q4_K, &q4, 256);
    for (n, &x) in out.iter().enumerate() {
        let j = n / 32;
        let q = ((n % 64) / 32 + 1) as f32;
        assert_eq!(x, f32::from(sc[j]) * q - 0.5 * f32::from(m[j]), "Q4_K {n}");
    }
    // Q5_K: the same with qh[l] = 0b1010_1010: sub-blocks 1, 3, 5, 7 get bit 4.
    let mut q5 = q4[..16].to_vec();
    q5.extend([0xAAu8; 32]);
    q5.extend([0x21u8; 128]);
    let out = run(GgmlType::Q5_K, &q5, 256);
    for (n, &x) in out.iter().enumerate() {
        let j = n / 32;
        let q = ((n % 64) / 32 + 1 + if j % 2 == 1 { 16 } else { 0 }) as f32;
        assert_eq!(x, f32::from(sc[j]) * q - 0.5 * f32::from(m[j]), "Q5_K {n}");
    }
}

#[test]
fn q6_k_signed_scales_and_two_high_bits() {
    // d = 0.25; scales[k] = k − 8; every ql byte 0x21 (lo 1, hi 2); every qh byte
    // 0b11_10_01_00, so within each half p = n % 128 has high bits p / 32.
    let mut b = vec![0x21u8; 128];
    b.extend([0xE4u8; 64]);
    b.extend((0..16i8).map(|k| (k - 8) as u8));
    b.extend(h(H_QUARTER));
    let out = run(GgmlType::Q6_K, &b, 256);
    for (n, &x) in out.iter().enumerate() {
        let p = n % 128;
        let lo = if p < 64 { 1 } else { 2 };
        let q = (lo | ((p / 32) << 4)) as f32 - 32.0;
        let s = (n / 16) as f32 - 8.0;
        assert_eq!(x, 0.25 * s * q, "value {n}");
    }
}

#[test]
fn q8_k_f32_scale_and_unused_sums() {
    let mut b = 0.5f32.to_le_bytes().to_vec();
    b.extend((0..256i32).map(|n| (n - 128) as i8 as u8));
    b.extend([0xABu8; 32]); // bsums: ignored
    let out = run(GgmlType::Q8_K, &b, 256);
    for (n, &x) in out.iter().enumerate() {
        assert_eq!(x, 0.5 * (n as f32 - 128.0), "value {n}");
    }
    // A finite scale whose products overflow f32 is refused like a non-finite one.
    b[..4].copy_from_slice(&1e37f32.to_le_bytes());
    let e = dequantize("big", GgmlType::Q8_K, &b, &mut [0f32; 256]).unwrap_err();
    assert!(
        matches!(&e, Error::CorruptBlock { tensor, block: 0, .. } if tensor == "big"),
        "{e}"
    );
}

/// Byte offsets of the f16 scale fields of each block type with scales.
fn scale_fields(ty: GgmlType) -> &'static [(&'static str, usize)] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[("d", 0)],
        Q4_1 | Q5_1 => &[("d", 0), ("m", 2)],
        Q2_K => &[("d", 80), ("dmin", 82)],
        Q3_K => &[("d", 108)],
        Q4_K | Q5_K => &[("d", 0), ("dmin", 2)],
        Q6_K => &[("d", 208)],
        _ => &[],
    }
}

/// The quantized types with f16 scales that `dequantize` decodes.
fn f16_scaled() -> impl Iterator<Item = GgmlType> {
    ALL_TYPES
        .into_iter()
        .filter(|t| t.can_dequantize() && !scale_fields(*t).is_empty())
}

/// `n_blocks` blocks of `ty` of random bytes whose f16 scales are finite (random exponent
/// below the all-ones pattern).
fn random_blocks(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut bytes: Vec<u8> = (0..n_blocks * ty.type_size())
        .map(|_| next() as u8)
        .collect();
    for block in bytes.chunks_exact_mut(ty.type_size()) {
        for &(_, at) in scale_fields(ty) {
            let bits = (next() as u16) & 0xBFFF; // exponent ≤ 0b10111: finite
            block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        }
        if ty == GgmlType::Q8_K {
            block[..4].copy_from_slice(&(next() as u16 as f32 / 65536.0).to_le_bytes());
        }
    }
    bytes
}

#[test]
fn non_finite_scales_are_refused_naming_the_tensor_and_block() {
    let mut checked = 0;
    for ty in f16_scaled() {
        for &(field, at) in scale_fields(ty) {
            for bad in [H_NAN, H_INF, H_NEG_INF] {
                let mut bytes = random_blocks(ty, 3, 7);
                let start = ty.type_size() + at; // block 1
                bytes[start..start + 2].copy_from_slice(&h(bad));
                let mut out = vec![0f32; 3 * ty.block_size()];
                let e =
                    dequantize_from("blk.0.ffn_up.weight", ty, &bytes, 40, &mut out).unwrap_err();
                match &e {
                    Error::CorruptBlock {
                        tensor,
                        block,
                        reason,
                        ..
                    } => {
                        assert_eq!(tensor, "blk.0.ffn_up.weight");
                        assert_eq!(*block, 41, "{ty} {field}");
                        assert!(reason.contains(&format!("`{field}`")), "{reason}");
                    }
                    other => panic!("{ty} {field} {bad:#x}: {other:?}"),
                }
                let msg = e.to_string();
                assert!(msg.contains("blk.0.ffn_up.weight") && msg.contains("block 41"));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 15); // 10 types, 15 scale fields
                                 // Q8_K's f32 scale.
    let mut bytes = random_blocks(GgmlType::Q8_K, 2, 3);
    bytes[292..296].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = dequantize("e", GgmlType::Q8_K, &bytes, &mut [0f32; 512]).unwrap_err();
    assert!(matches!(e, Error::CorruptBlock { block: 1, .. }), "{e}");
}

#[test]
fn unsupported_types_are_refused_by_name() {
    let mut refused = Vec::new();
    for ty in ALL_TYPES.into_iter().filter(|t| !t.can_dequantize()) {
        let bytes = vec![0u8; ty.type_size()];
        let mut out = vec![0f32; ty.block_size()];
        let e = dequantize("tok", ty, &bytes, &mut out).unwrap_err();
        match &e {
            Error::UnsupportedTensorType {
                tensor, type_name, ..
            } => assert_eq!((tensor.as_str(), *type_name), ("tok", ty.name())),
            other => panic!("{ty}: {other:?}"),
        }
        assert!(e.to_string().contains(ty.name()), "{e}");
        refused.push(ty.name());
    }
    assert_eq!(
        refused,
        [
            "Q8_1", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
            "I8", "I16", "I32", "I64", "F64", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0"
        ]
    );
    // The message's list is the list of types that decode.
    let supported: Vec<&str> = ALL_TYPES
        .into_iter()
        .filter(|t| t.can_dequantize())
        .map(|t| t.name())
        .collect();
    let mut listed: Vec<&str> = SUPPORTED.split(", ").collect();
    listed.sort_unstable();
    let mut supported_sorted = supported.clone();
    supported_sorted.sort_unstable();
    assert_eq!(listed, supported_sorted);
}

#[test]
fn rejects_mismatched_lengths_naming_the_tensor() {
    let mut out = [0f32; 32];
    let e = dequantize("w", GgmlType::Q8_0, &[0u8; 33], &mut out).unwrap_err();
    assert!(
        matches!(&e, Error::Format { reason, .. } if reason.contains("`w`")),
        "{e}"
    );
    let mut odd = [0f32; 255];
    let e = dequantize("k", GgmlType::Q4_K, &[0u8; 144], &mut odd).unwrap_err();
    assert!(
        matches!(&e, Error::Format { reason, .. } if reason.contains("`k`")),
        "{e}"
    );
    // One super-block's values with a byte short of its bytes (a truncated super-block).
    let e = dequantize("k", GgmlType::Q6_K, &[0u8; 209], &mut [0f32; 256]).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 64 }))]

    /// Any bytes with finite scales decode to finite values, and blocks decode independently:
    /// decoding a suffix of the blocks gives the suffix of the values.
    #[test]
    fn finite_scales_decode_to_finite_values_block_by_block(
        seed in any::<u64>(),
        n_blocks in 1usize..5,
        split in 0usize..5,
    ) {
        for ty in f16_scaled().chain([GgmlType::Q8_K]) {
            let bytes = random_blocks(ty, n_blocks, seed);
            let mut all = vec![f32::NAN; n_blocks * ty.block_size()];
            dequantize("p", ty, &bytes, &mut all).unwrap();
            prop_assert!(all.iter().all(|x| x.is_finite()), "{}", ty);
            let k = split.min(n_blocks);
            let mut tail = vec![f32::NAN; (n_blocks - k) * ty.block_size()];
            dequantize_from("p", ty, &bytes[k * ty.type_size()..], k, &mut tail).unwrap();
            let same = tail
                .iter()
                .zip(&all[k * ty.block_size()..])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same, "{}", ty);
        }
    }
}
