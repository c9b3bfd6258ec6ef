//! The ggml tensor element types a GGUF file can declare, with their block geometry.
//!
//! Quantized types store a tensor's innermost dimension in *blocks*: `block_size` consecutive
//! values packed into `type_size` bytes (scales first, then the packed quants). Plain types are
//! blocks of one value. A row of `n` values therefore takes `n / block_size * type_size` bytes,
//! and `n` must be a multiple of `block_size`.
//!
//! Ids and block layouts follow ggml's `ggml_type` enumeration and `ggml-common.h` block structs
//! (see the GGUF specification, `docs/gguf.md` in the ggml repository). The reader knows the
//! geometry of every type below so it can size and bounds-check any file; [`GgmlType::can_dequantize`]
//! says which ones [`super::dequant`] turns into `f32`.

use std::fmt;

use nanotensor_core::error::{Error, Result};

/// Element type of a tensor in a GGUF file (ggml's `ggml_type`).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16.
    F16,
    /// 32 values: f16 scale `d`, 16 bytes of 4-bit quants `q`; `x = d·(q − 8)`.
    Q4_0,
    /// 32 values: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit quants; `x = d·q + m`.
    Q4_1,
    /// 32 values: f16 `d`, 4 bytes of high bits, 16 bytes of low nibbles (5-bit quants).
    Q5_0,
    /// 32 values: f16 `d`, f16 `m`, 4 bytes of high bits, 16 bytes of low nibbles.
    Q5_1,
    /// 32 values: f16 scale `d`, 32 signed bytes `q`; `x = d·q`.
    Q8_0,
    /// 32 values: f16 `d`, f16 sum `s`, 32 signed bytes (an activation format).
    Q8_1,
    /// k-quant, 256-value super-blocks, 2-bit.
    Q2_K,
    /// k-quant, 256-value super-blocks, 3-bit.
    Q3_K,
    /// k-quant, 256-value super-blocks, 4-bit.
    Q4_K,
    /// k-quant, 256-value super-blocks, 5-bit.
    Q5_K,
    /// k-quant, 256-value super-blocks, 6-bit.
    Q6_K,
    /// k-quant, 256-value super-blocks, 8-bit (an activation format).
    Q8_K,
    /// i-quant, 256 values: f16 `d`, 2-bit grid indices (2.06 bits per value).
    IQ2_XXS,
    /// i-quant, 256 values: f16 `d`, grid indices and 4-bit scales (2.31 bits per value).
    IQ2_XS,
    /// i-quant, 256 values: f16 `d`, 3-bit grid indices (3.06 bits per value).
    IQ3_XXS,
    /// i-quant, 256 values: f16 `d`, 1-bit-class grid (1.56 bits per value).
    IQ1_S,
    /// 32 values: f16 `d`, 4-bit indices into a fixed non-linear table.
    IQ4_NL,
    /// i-quant, 256 values, 3.44 bits per value.
    IQ3_S,
    /// i-quant, 256 values, 2.56 bits per value.
    IQ2_S,
    /// 256 values: non-linear 4-bit indices with 6-bit sub-block scales.
    IQ4_XS,
    /// Signed 8-bit integers.
    I8,
    /// Signed 16-bit integers.
    I16,
    /// Signed 32-bit integers.
    I32,
    /// Signed 64-bit integers.
    I64,
    /// IEEE-754 binary64.
    F64,
    /// i-quant, 256 values without an f16 field of its own, 1.75 bits per value.
    IQ1_M,
    /// bfloat16: the upper half of an f32.
    BF16,
    /// Ternary, 256 values: base-3 packed trits and an f16 scale (1.69 bits per value).
    TQ1_0,
    /// Ternary, 256 values: 2-bit trits and an f16 scale.
    TQ2_0,
    /// OCP microscaling FP4: 32 E2M1 values sharing an E8M0 exponent.
    MXFP4,
    /// NVIDIA FP4: 64 E2M1 values in four sub-blocks, each with a UE4M3 scale.
    NVFP4,
    /// 1-bit, 128 values with an f16 scale.
    Q1_0,
}

/// Every known type, for lookups by id and for tests.
pub const ALL_TYPES: [GgmlType; 34] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ3_XXS,
    GgmlType::IQ1_S,
    GgmlType::IQ4_NL,
    GgmlType::IQ3_S,
    GgmlType::IQ2_S,
    GgmlType::IQ4_XS,
    GgmlType::I8,
    GgmlType::I16,
    GgmlType::I32,
    GgmlType::I64,
    GgmlType::F64,
    GgmlType::IQ1_M,
    GgmlType::BF16,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::MXFP4,
    GgmlType::NVFP4,
    GgmlType::Q1_0,
];

/// Bytes of an f16 field.
const H: usize = 2;
/// Values per k-quant (and i-quant) super-block.
const QK_K: usize = 256;

impl GgmlType {
    /// The type for a `ggml_type` id as stored in a tensor info, or `None` for ids this reader
    /// does not know: the removed types 4 and 5, the retired interleaved layouts 31–33 and
    /// 36–38 (never valid in files), and future additions.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        ALL_TYPES.into_iter().find(|t| t.id() == id)
    }

    /// The `ggml_type` id stored in the file.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            NVFP4 => 40,
            Q1_0 => 41,
        }
    }

    /// ggml's upper-case name (`"Q4_1"`), as tools such as llama.cpp print it.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
            NVFP4 => "NVFP4",
            Q1_0 => "Q1_0",
        }
    }

    /// Values per block: 1 for plain types, 32 for the legacy quants (and IQ4_NL, MXFP4), 64
    /// for NVFP4, 128 for Q1_0, 256 for the k-quants, the other i-quants and the ternary types.
    pub fn block_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | F64 | I8 | I16 | I32 | I64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            NVFP4 => 64,
            Q1_0 => 128,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => QK_K,
        }
    }

    /// Bytes per block (ggml's `type_size`, the `sizeof` of its `block_*` struct), written as
    /// the sum of the struct's fields.
    pub fn type_size(self) -> usize {
        use GgmlType::*;
        match self {
            I8 => 1,
            F16 | BF16 | I16 => 2,
            F32 | I32 => 4,
            F64 | I64 => 8,
            Q4_0 => H + 16,
            Q4_1 => H + H + 16,
            Q5_0 => H + 4 + 16,
            Q5_1 => H + H + 4 + 16,
            Q8_0 => H + 32,
            // ggml's block_q8_1 holds two f16 (`d`, `s`); gguf-py's size table lists two f32
            // (40 bytes), a layout ggml no longer uses.
            Q8_1 => H + H + 32,
            // scales[16], qs[64], d, dmin
            Q2_K => QK_K / 16 + QK_K / 4 + H + H,
            // hmask[32], qs[64], scales[12], d
            Q3_K => QK_K / 8 + QK_K / 4 + 12 + H,
            // d, dmin, scales[12], qs[128]
            Q4_K => H + H + 12 + QK_K / 2,
            // d, dmin, scales[12], qh[32], qs[128]
            Q5_K => H + H + 12 + QK_K / 8 + QK_K / 2,
            // ql[128], qh[64], scales[16], d
            Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + H,
            // f32 d, qs[256], i16 bsums[16]
            Q8_K => 4 + QK_K + 2 * (QK_K / 16),
            // d, u16 qs[32]
            IQ2_XXS => H + QK_K / 4,
            // d, u16 qs[32], scales[8]
            IQ2_XS => H + QK_K / 4 + QK_K / 32,
            // d, qs[96]
            IQ3_XXS => H + 3 * QK_K / 8,
            // d, qs[32], u16 qh[8]
            IQ1_S => H + QK_K / 8 + QK_K / 16,
            // d, qs[16]
            IQ4_NL => H + 16,
            // d, qs[64], qh[8], signs[32], scales[4]
            IQ3_S => H + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64,
            // d, qs[64], qh[8], scales[8]
            IQ2_S => H + QK_K / 4 + QK_K / 32 + QK_K / 32,
            // d, u16 scales_h, scales_l[4], qs[128]
            IQ4_XS => H + 2 + QK_K / 64 + QK_K / 2,
            // qs[32], qh[16], scales[8]
            IQ1_M => QK_K / 8 + QK_K / 16 + QK_K / 32,
            // qs[48], qh[4], d
            TQ1_0 => (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + H,
            // qs[64], d
            TQ2_0 => QK_K / 4 + H,
            // e8m0 exponent, qs[16]
            MXFP4 => 1 + 16,
            // four ue4m3 scales, qs[32]
            NVFP4 => 4 + 32,
            // d, qs[16]
            Q1_0 => H + 128 / 8,
        }
    }

    /// True for block-quantized types (block size above one).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// True when [`super::dequant::dequantize`] can turn this type into `f32` (exactly, as
    /// ggml does): the float types, the legacy quants and the k-quants. The i-quants, the
    /// ternary and FP4 types, Q8_1 and the integer and f64 types are refused by name.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16
                | BF16
                | Q4_0
                | Q4_1
                | Q5_0
                | Q5_1
                | Q8_0
                | Q2_K
                | Q3_K
                | Q4_K
                | Q5_K
                | Q6_K
                | Q8_K
        )
    }

    /// The core's [`QuantFormat`](nanotensor_core::QuantFormat) of this type — the block
    /// formats a backend may multiply as stored
    /// ([`Backend::prepare_blocks`](nanotensor_core::Backend::prepare_blocks)) — or `None`.
    pub fn quant_format(self) -> Option<nanotensor_core::QuantFormat> {
        use nanotensor_core::QuantFormat as Q;
        Some(match self {
            GgmlType::Q4_0 => Q::Q4_0,
            GgmlType::Q4_1 => Q::Q4_1,
            GgmlType::Q5_0 => Q::Q5_0,
            GgmlType::Q5_1 => Q::Q5_1,
            GgmlType::Q8_0 => Q::Q8_0,
            GgmlType::Q4_K => Q::Q4_K,
            GgmlType::Q5_K => Q::Q5_K,
            GgmlType::Q6_K => Q::Q6_K,
            _ => return None,
        })
    }

    /// Bytes taken by a row of `n` values: `n / block_size · type_size`.
    ///
    /// # Errors
    /// [`Error::Format`] when `n` is not a multiple of the block size; [`Error::SizeOverflow`]
    /// when the byte count does not fit in `usize`.
    pub fn row_bytes(self, n: usize) -> Result<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return Err(Error::format(
                "gguf",
                format!(
                    "a row of {n} values is not a whole number of {} blocks of {}",
                    self.name(),
                    self.block_size()
                ),
            ));
        }
        n.checked_div(self.block_size())
            .and_then(|blocks| blocks.checked_mul(self.type_size()))
            .ok_or(Error::SizeOverflow {
                op: "gguf",
                shape: (&[n][..]).into(),
            })
    }

    /// Average storage cost in bits per value (`8 · type_size / block_size`), e.g. 5.0 for Q4_1.
    pub fn bits_per_value(self) -> f64 {
        8.0 * self.type_size() as f64 / self.block_size() as f64
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::*;

    /// The core's block formats are these types: same name, same block geometry, and every
    /// format has its type.
    #[test]
    fn quant_formats_agree_with_the_types() {
        let mut seen = Vec::new();
        for t in ALL_TYPES {
            if let Some(f) = t.quant_format() {
                assert_eq!(f.name(), t.name());
                assert_eq!(
                    (f.block_values(), f.block_bytes()),
                    (t.block_size(), t.type_size())
                );
                seen.push(f);
            }
        }
        assert_eq!(seen.len(), nanotensor_core::QuantFormat::ALL.len());
    }

    #[test]
    fn ids_round_trip_and_are_unique() {
        for t in ALL_TYPES {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        let mut ids: Vec<u32> = ALL_TYPES.iter().map(|t| t.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL_TYPES.len());
        // Removed types, the retired interleaved layouts and unknown ids are rejected.
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 42, 1000] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn block_geometry_matches_the_spec() {
        // (name, id, values per block, bytes per block) from the static_asserts on ggml's
        // block structs (ggml-common.h), worked out by hand: e.g. block_q2_K = 16 + 64 + 2 + 2.
        let table: [(&str, u32, usize, usize); 34] = [
            ("F32", 0, 1, 4),
            ("F16", 1, 1, 2),
            ("Q4_0", 2, 32, 18),
            ("Q4_1", 3, 32, 20),
            ("Q5_0", 6, 32, 22),
            ("Q5_1", 7, 32, 24),
            ("Q8_0", 8, 32, 34),
            ("Q8_1", 9, 32, 36),
            ("Q2_K", 10, 256, 84),
            ("Q3_K", 11, 256, 110),
            ("Q4_K", 12, 256, 144),
            ("Q5_K", 13, 256, 176),
            ("Q6_K", 14, 256, 210),
            ("Q8_K", 15, 256, 292),
            ("IQ2_XXS", 16, 256, 66),
            ("IQ2_XS", 17, 256, 74),
            ("IQ3_XXS", 18, 256, 98),
            ("IQ1_S", 19, 256, 50),
            ("IQ4_NL", 20, 32, 18),
            ("IQ3_S", 21, 256, 110),
            ("IQ2_S", 22, 256, 82),
            ("IQ4_XS", 23, 256, 136),
            ("I8", 24, 1, 1),
            ("I16", 25, 1, 2),
            ("I32", 26, 1, 4),
            ("I64", 27, 1, 8),
            ("F64", 28, 1, 8),
            ("IQ1_M", 29, 256, 56),
            ("BF16", 30, 1, 2),
            ("TQ1_0", 34, 256, 54),
            ("TQ2_0", 35, 256, 66),
            ("MXFP4", 39, 32, 17),
            ("NVFP4", 40, 64, 36),
            ("Q1_0", 41, 128, 18),
        ];
        for (t, (name, id, block, size)) in ALL_TYPES.into_iter().zip(table) {
            assert_eq!(
                (t.name(), t.id(), t.block_size(), t.type_size()),
                (name, id, block, size),
                "{t}"
            );
        }
        assert_eq!(GgmlType::Q4_1.bits_per_value(), 5.0);
        assert_eq!(GgmlType::Q8_0.bits_per_value(), 8.5);
        assert_eq!(GgmlType::Q4_K.bits_per_value(), 4.5);
        assert_eq!(GgmlType::Q6_K.bits_per_value(), 6.5625);
    }

    #[test]
    fn row_bytes_checks_whole_blocks() {
        assert_eq!(GgmlType::Q8_0.row_bytes(576).unwrap(), 18 * 34);
        assert_eq!(GgmlType::F32.row_bytes(3).unwrap(), 12);
        assert!(matches!(
            GgmlType::Q4_1.row_bytes(33),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            GgmlType::F64.row_bytes(usize::MAX),
            Err(Error::SizeOverflow { .. })
        ));
    }
}
