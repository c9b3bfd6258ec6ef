//! Weights in a stored block format — GGUF's quantized blocks — handed to a backend as they are.
//!
//! A model file stores most matrices as runs of fixed-size blocks: each block encodes
//! [`QuantFormat::block_values`] consecutive values of one row as small integer codes and one or
//! two f16 scales. A backend that multiplies such blocks directly (without an `f32` copy) receives
//! a matrix as a [`BlockWeight`] through
//! [`Backend::prepare_blocks`](crate::backend::Backend::prepare_blocks).
//!
//! The core knows each format's geometry (values and bytes per block, where its f16 scales sit)
//! so that a [`BlockWeight`] is checked once, when it is built: its byte length matches its
//! shape, and every scale is finite — so its values, dequantized, are finite, which is what
//! [`Backend::prepare`](crate::backend::Backend::prepare) requires of an `f32` weight. How the
//! codes are packed inside a block is the backend's business (and the model crate's dequantizer,
//! which the backend's kernels are tested against).
//!
//! # Sharing the file's storage
//! A [`BlockWeight`] borrows its bytes. When they come from storage that can outlive the
//! borrow — a memory-mapped model file behind an `Arc` — the loader builds it with
//! [`BlockWeight::shared`], handing over a [`SharedBytes`] handle to that storage. A backend
//! that keeps the blocks as they are then keeps the handle instead of copying the bytes, so the
//! prepared weight *is* the file's bytes (for a mapped file, pages the OS reads on demand and
//! may drop), and the same bytes used by two weights (a tied output head and the token
//! embedding) exist once.

use std::sync::Arc;

use half::f16;

use crate::error::{Error, Result};

/// A quantized block format of GGUF (ggml's type of the same name).
///
/// | format | values / bytes | f16 scales at byte | value |
/// |--------|----------------|--------------------|-------|
/// | `Q4_0` | 32 / 18  | 0 (`d`) | `d·(q − 8)`, 4-bit `q` |
/// | `Q4_1` | 32 / 20  | 0 (`d`), 2 (`m`) | `d·q + m`, 4-bit `q` |
/// | `Q5_0` | 32 / 22  | 0 (`d`) | `d·(q − 16)`, 5-bit `q` |
/// | `Q5_1` | 32 / 24  | 0 (`d`), 2 (`m`) | `d·q + m`, 5-bit `q` |
/// | `Q8_0` | 32 / 34  | 0 (`d`) | `d·q`, signed 8-bit `q` |
/// | `Q4_K` | 256 / 144 | 0 (`d`), 2 (`dmin`) | `(d·s)·q − dmin·m` per sub-block of 32, 6-bit `s`, `m` |
/// | `Q5_K` | 256 / 176 | 0 (`d`), 2 (`dmin`) | as `Q4_K` with 5-bit `q` |
/// | `Q6_K` | 256 / 210 | 208 (`d`) | `(d·s)·(q − 32)` per sub-block of 16, signed 8-bit `s` |
#[allow(non_camel_case_types)]
/// Exhaustive on purpose: a backend's `match` over the formats must handle a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    /// 32 values: `d`, 4-bit codes, offset 8.
    Q4_0,
    /// 32 values: `d`, `m`, 4-bit codes.
    Q4_1,
    /// 32 values: `d`, 5-bit codes (fifth bits in a `u32`), offset 16.
    Q5_0,
    /// 32 values: `d`, `m`, 5-bit codes.
    Q5_1,
    /// 32 values: `d`, signed bytes.
    Q8_0,
    /// 256-value super-block: 8 sub-blocks of 32 with 6-bit scales and minimums, 4-bit codes.
    Q4_K,
    /// As `Q4_K` with a fifth bit per code.
    Q5_K,
    /// 256-value super-block: 16 sub-blocks of 16 with signed 8-bit scales, 6-bit codes.
    Q6_K,
}

impl QuantFormat {
    /// Every format, in the order of the table above.
    pub const ALL: [QuantFormat; 8] = [
        QuantFormat::Q4_0,
        QuantFormat::Q4_1,
        QuantFormat::Q5_0,
        QuantFormat::Q5_1,
        QuantFormat::Q8_0,
        QuantFormat::Q4_K,
        QuantFormat::Q5_K,
        QuantFormat::Q6_K,
    ];

    /// The ggml name (`"Q4_K"`).
    pub const fn name(self) -> &'static str {
        match self {
            QuantFormat::Q4_0 => "Q4_0",
            QuantFormat::Q4_1 => "Q4_1",
            QuantFormat::Q5_0 => "Q5_0",
            QuantFormat::Q5_1 => "Q5_1",
            QuantFormat::Q8_0 => "Q8_0",
            QuantFormat::Q4_K => "Q4_K",
            QuantFormat::Q5_K => "Q5_K",
            QuantFormat::Q6_K => "Q6_K",
        }
    }

    /// The format named `name`, case-insensitively (`"q4_k"` or `"Q4_K"`).
    pub fn from_name(name: &str) -> Option<QuantFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Values one block encodes: 32 for the legacy formats, 256 for the k-quants.
    pub const fn block_values(self) -> usize {
        match self {
            QuantFormat::Q4_K | QuantFormat::Q5_K | QuantFormat::Q6_K => 256,
            _ => 32,
        }
    }

    /// Bytes of one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantFormat::Q4_0 => 18,
            QuantFormat::Q4_1 => 20,
            QuantFormat::Q5_0 => 22,
            QuantFormat::Q5_1 => 24,
            QuantFormat::Q8_0 => 34,
            QuantFormat::Q4_K => 144,
            QuantFormat::Q5_K => 176,
            QuantFormat::Q6_K => 210,
        }
    }

    /// Byte offsets of the block's f16 scale fields (`d`, and `m` or `dmin` where present).
    pub const fn scale_offsets(self) -> &'static [usize] {
        match self {
            QuantFormat::Q4_1 | QuantFormat::Q5_1 | QuantFormat::Q4_K | QuantFormat::Q5_K => {
                &[0, 2]
            }
            QuantFormat::Q6_K => &[208],
            _ => &[0],
        }
    }

    /// Bytes of a row of `cols` values.
    ///
    /// # Errors
    /// [`Error::InvalidShape`] when `cols` is zero or not a whole number of blocks;
    /// [`Error::Overflow`] when the byte count does not fit `usize`.
    pub fn row_bytes(self, cols: usize) -> Result<usize> {
        if cols == 0 || !cols.is_multiple_of(self.block_values()) {
            return Err(Error::invalid_shape(
                OP,
                &[cols],
                format!(
                    "a {} row holds whole blocks of {} values",
                    self.name(),
                    self.block_values()
                ),
            ));
        }
        (cols / self.block_values())
            .checked_mul(self.block_bytes())
            .ok_or_else(|| Error::overflow(OP, self.name(), "row bytes"))
    }
}

impl std::fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const OP: &str = "prepare_blocks";

/// A shared, immutable owner of a matrix's stored bytes ([`BlockWeight::shared`]): its
/// `as_ref()` is the whole matrix, row after row.
///
/// The owner must return the same bytes on every call (a memory map or a buffer that nothing
/// mutates while a handle lives); a backend keeping the handle still checks the length it gets
/// back before each use, so an owner breaking this gives an error, not a bad read.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A checked matrix `W: [rows, cols]` in a [`QuantFormat`], borrowed from its stored bytes:
/// row `r` is `bytes[r·row_bytes..(r+1)·row_bytes]`, `cols / block_values` blocks.
///
/// Built only through [`BlockWeight::new`] or [`BlockWeight::shared`], so every value is
/// valid: the length matches the shape and every f16 scale is finite (the dequantized values
/// are then finite too: a block's largest magnitude is a small integer times finite f16
/// scales).
#[derive(Clone, Copy)]
pub struct BlockWeight<'a> {
    name: &'a str,
    format: QuantFormat,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
    /// The owner whose whole slice `bytes` is, when the caller can share it.
    owner: Option<&'a SharedBytes>,
}

impl std::fmt::Debug for BlockWeight<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWeight")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("shape", &[self.rows, self.cols])
            .field("bytes", &self.bytes.len())
            .field("shared", &self.owner.is_some())
            .finish()
    }
}

impl<'a> BlockWeight<'a> {
    /// Checks and wraps the blocks of matrix `name` (used in errors).
    ///
    /// # Errors
    /// [`Error::InvalidShape`] for a zero dimension or `cols` not a whole number of blocks;
    /// [`Error::Overflow`] for a byte size beyond `usize`; [`Error::Format`] when `bytes` is not
    /// exactly `rows` rows; [`Error::CorruptBlock`] naming the first block whose scale is NaN
    /// or infinite.
    pub fn new(
        name: &'a str,
        format: QuantFormat,
        rows: usize,
        cols: usize,
        bytes: &'a [u8],
    ) -> Result<Self> {
        if rows == 0 {
            return Err(Error::invalid_shape(OP, &[rows, cols], "no rows"));
        }
        let expected = format
            .row_bytes(cols)?
            .checked_mul(rows)
            .ok_or_else(|| Error::overflow(OP, name, "byte size"))?;
        if bytes.len() != expected {
            return Err(Error::format(
                OP,
                format!(
                    "`{name}`: a [{rows}, {cols}] {format} matrix takes {expected} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        for (i, block) in bytes.chunks_exact(format.block_bytes()).enumerate() {
            for &at in format.scale_offsets() {
                let s = f16::from_bits(u16::from_le_bytes([block[at], block[at + 1]]));
                if !s.is_finite() {
                    return Err(Error::CorruptBlock {
                        op: OP,
                        tensor: name.to_string(),
                        block: i,
                        reason: format!("a scale is {s}, not a finite number"),
                    });
                }
            }
        }
        Ok(BlockWeight {
            name,
            format,
            rows,
            cols,
            bytes,
            owner: None,
        })
    }

    /// [`BlockWeight::new`] over the whole of `owner`'s bytes, keeping the handle: a backend
    /// that keeps the blocks as stored may keep a clone of it ([`BlockWeight::owner`]) rather
    /// than copy the bytes.
    ///
    /// # Errors
    /// Those of [`BlockWeight::new`].
    pub fn shared(
        name: &'a str,
        format: QuantFormat,
        rows: usize,
        cols: usize,
        owner: &'a SharedBytes,
    ) -> Result<Self> {
        let bytes: &'a [u8] = (**owner).as_ref();
        let mut w = Self::new(name, format, rows, cols, bytes)?;
        w.owner = Some(owner);
        Ok(w)
    }

    /// The matrix's name, for errors.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The block format.
    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// `[rows, cols]` = `[out_features, in_features]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.bytes.len() / self.rows
    }

    /// All rows' blocks, row after row.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The shared owner of [`Self::bytes`] (whose `as_ref()` is exactly those bytes), when the
    /// weight was built with [`BlockWeight::shared`]; `None` when the bytes are only borrowed
    /// and a backend keeping them must copy them.
    pub fn owner(&self) -> Option<&'a SharedBytes> {
        self.owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn geometry_and_names() {
        for f in QuantFormat::ALL {
            assert_eq!(QuantFormat::from_name(&f.name().to_lowercase()), Some(f));
            // Every scale field lies inside the block.
            assert!(f.scale_offsets().iter().all(|&o| o + 2 <= f.block_bytes()));
        }
        assert_eq!(QuantFormat::from_name("Q2_K"), None);
        assert_eq!(QuantFormat::Q4_K.row_bytes(512).unwrap(), 288);
        assert!(matches!(
            QuantFormat::Q4_K.row_bytes(640),
            Err(Error::InvalidShape { .. })
        ));
        assert!(matches!(
            QuantFormat::Q8_0.row_bytes(usize::MAX / 32 * 32),
            Err(Error::Overflow { .. })
        ));
    }

    #[test]
    fn new_checks_length_and_scales() {
        let mut bytes = vec![0u8; 2 * 18];
        bytes[..2].copy_from_slice(&f16_bytes(0.5));
        bytes[18..20].copy_from_slice(&f16_bytes(-2.0));
        let w = BlockWeight::new("w", QuantFormat::Q4_0, 2, 32, &bytes).unwrap();
        assert_eq!((w.shape(), w.row_bytes()), ([2, 32], 18));
        assert!(matches!(
            BlockWeight::new("w", QuantFormat::Q4_0, 1, 32, &bytes),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            BlockWeight::new("w", QuantFormat::Q4_0, 0, 32, &[]),
            Err(Error::InvalidShape { .. })
        ));
        bytes[18..20].copy_from_slice(&f16_bytes(f32::INFINITY));
        match BlockWeight::new("w", QuantFormat::Q4_0, 2, 32, &bytes) {
            Err(Error::CorruptBlock { block, tensor, .. }) => {
                assert_eq!((block, &*tensor), (1, "w"))
            }
            other => panic!("{other:?}"),
        }
        // Q6_K's scale is at the end of its block.
        let mut k6 = vec![0u8; 210];
        k6[208..].copy_from_slice(&f16_bytes(f32::NAN));
        assert!(BlockWeight::new("w", QuantFormat::Q6_K, 1, 256, &k6).is_err());
        k6[208..].copy_from_slice(&f16_bytes(1.0));
        assert!(BlockWeight::new("w", QuantFormat::Q6_K, 1, 256, &k6).is_ok());
    }

    #[test]
    fn shared_keeps_the_owner_and_checks_as_new_does() {
        let mut bytes = vec![0u8; 3 * 34];
        bytes[34..36].copy_from_slice(&f16_bytes(0.25));
        let owner: SharedBytes = Arc::new(bytes.clone());
        let w = BlockWeight::shared("w", QuantFormat::Q8_0, 3, 32, &owner).unwrap();
        assert_eq!(w.bytes(), &bytes[..]);
        let kept = w.owner().expect("a shared weight has its owner");
        // The handle is the owner itself (no copy): the same allocation.
        assert!(Arc::ptr_eq(kept, &owner));
        assert_eq!((**kept).as_ref().as_ptr(), w.bytes().as_ptr());
        assert!(BlockWeight::new("w", QuantFormat::Q8_0, 3, 32, &bytes)
            .unwrap()
            .owner()
            .is_none());
        // The same checks: a wrong length, a NaN scale.
        assert!(matches!(
            BlockWeight::shared("w", QuantFormat::Q8_0, 2, 32, &owner),
            Err(Error::Format { .. })
        ));
        bytes[68..70].copy_from_slice(&f16_bytes(f32::NAN));
        let bad: SharedBytes = Arc::new(bytes);
        assert!(matches!(
            BlockWeight::shared("w", QuantFormat::Q8_0, 3, 32, &bad),
            Err(Error::CorruptBlock { block: 2, .. })
        ));
    }
}
