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
    /// bfloat16: the upper half of an f32.
    BF16,
}

/// Every known type, for lookups by id and for tests.
pub const ALL_TYPES: [GgmlType; 20] = [
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
    GgmlType::I8,
    GgmlType::I16,
    GgmlType::I32,
    GgmlType::I64,
    GgmlType::F64,
    GgmlType::BF16,
];

impl GgmlType {
    /// The type for a `ggml_type` id as stored in a tensor info, or `None` for ids this reader
    /// does not know (removed types 4 and 5, the IQ families, future additions).
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
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
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
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            BF16 => "BF16",
        }
    }

    /// Values per block (1 for plain types, 32 for the legacy quants, 256 for k-quants).
    pub fn block_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | F64 | I8 | I16 | I32 | I64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block (ggml's `type_size`).
    pub fn type_size(self) -> usize {
        use GgmlType::*;
        match self {
            I8 => 1,
            F16 | BF16 | I16 => 2,
            F32 | I32 => 4,
            F64 | I64 => 8,
            Q4_0 => 2 + 16,
            Q4_1 => 2 + 2 + 16,
            Q5_0 => 2 + 4 + 16,
            Q5_1 => 2 + 2 + 4 + 16,
            Q8_0 => 2 + 32,
            Q8_1 => 2 + 2 + 32,
            Q2_K => 16 + 64 + 2 + 2,
            Q3_K => 32 + 64 + 12 + 2,
            Q4_K => 2 + 2 + 12 + 128,
            Q5_K => 2 + 2 + 12 + 32 + 128,
            Q6_K => 128 + 64 + 16 + 2,
            Q8_K => 4 + 256 + 2 * 16,
        }
    }

    /// True for block-quantized types (block size above one).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// True when [`super::dequant::dequantize`] can turn this type into `f32`.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1)
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

    #[test]
    fn ids_round_trip_and_are_unique() {
        for t in ALL_TYPES {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        // Removed types and unknown ids are rejected.
        for id in [4, 5, 16, 29, 31, 1000] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn block_geometry_matches_the_spec() {
        // Sizes from ggml-common.h: block_q8_0 = 34, block_q4_0 = 18, block_q4_1 = 20 bytes.
        assert_eq!(
            (GgmlType::Q8_0.block_size(), GgmlType::Q8_0.type_size()),
            (32, 34)
        );
        assert_eq!(
            (GgmlType::Q4_0.block_size(), GgmlType::Q4_0.type_size()),
            (32, 18)
        );
        assert_eq!(
            (GgmlType::Q4_1.block_size(), GgmlType::Q4_1.type_size()),
            (32, 20)
        );
        assert_eq!(GgmlType::Q6_K.type_size(), 210);
        assert_eq!(GgmlType::Q4_K.type_size(), 144);
        assert_eq!(GgmlType::Q4_1.bits_per_value(), 5.0);
        assert_eq!(GgmlType::Q8_0.bits_per_value(), 8.5);
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
