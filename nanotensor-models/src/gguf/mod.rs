//! A reader for GGUF model files (versions 2 and 3), the format of llama.cpp and ggml.
//!
//! A GGUF file is a header, typed key-value metadata (hyperparameters, the tokenizer's
//! vocabulary), a table of tensor infos, and an aligned data section holding the tensors'
//! bytes, often block-quantized. [`reader`] documents the byte layout, [`types`] the element
//! types, [`dequant`] the block formats.
//!
//! [`GgufFile::open`] memory-maps the file (`memmap2`), so opening a 100 MB model reads only
//! its header; tensor bytes are paged in when touched. [`GgufFile::from_bytes`] reads from an
//! owned buffer instead (the browser build, tests).
//!
//! ```no_run
//! use nanotensor_models::gguf::GgufFile;
//!
//! let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let n_layers = file.get_u32("llama.block_count")?;
//! let embd = file.tensor("token_embd.weight")?; // shape [n_vocab, n_embd], row-major
//! let mut row = vec![0f32; embd.shape[1]];
//! file.dequantize_rows("token_embd.weight", 42..43, &mut row)?; // the embedding of token 42
//! # Ok::<(), nanotensor_core::Error>(())
//! ```

// Every size here is computed from the file's contents: overflow must be an error, never a
// wrap or a panic, so unchecked integer arithmetic is refused in the whole module.
#![deny(clippy::arithmetic_side_effects)]

pub mod dequant;
mod metadata;
pub mod reader;
mod summary;
pub mod types;
pub mod value;

// Tests build small files by hand; their arithmetic is on constants.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use reader::{DEFAULT_ALIGNMENT, MAGIC};
pub use summary::{thousands, ModelSummary, TensorSummary, TypeSummary};
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};

use nanotensor_core::error::{Error, Result};
use nanotensor_core::tensor::Tensor;

/// Where a tensor lives in the file and how to read it.
///
/// Only the reader builds these, after checking the whole tensor table: the element count, the
/// row count and the byte sizes are computed once with checked arithmetic and stored, so the
/// accessors below cannot overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Row-major shape, outermost dimension first: GGUF's dimension list reversed. A matrix
    /// `W` applied as `y = W·x` has shape `[out_features, in_features]`.
    pub shape: Vec<usize>,
    /// Element type of the stored data.
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the data in the file (data section start + relative offset).
    pub offset: usize,
    /// Bytes of stored data: `n_rows · row_bytes(row_len)`.
    pub n_bytes: usize,
    /// Product of the shape, checked by the reader.
    n_elements: usize,
    /// Product of every dimension but the last, checked by the reader.
    n_rows: usize,
    /// Bytes of one row, checked by the reader.
    row_bytes: usize,
}

impl TensorInfo {
    /// Number of values (product of the shape).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Length of a row: the innermost (last) dimension, the one blocks run along.
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension but the last.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
}

/// The bytes of an open file: mapped from disk, or owned. Shared with the safetensors reader.
pub(crate) enum Storage {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl Storage {
    /// Memory-maps the file at `path` (reads it into memory on wasm32, where there is no mmap).
    /// `op` names the reader in the I/O error.
    pub(crate) fn open(path: &Path, op: &'static str) -> Result<Storage> {
        let io = |source| Error::Io {
            op,
            path: path.display().to_string(),
            source,
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            let file = std::fs::File::open(path).map_err(io)?;
            if file.metadata().map_err(io)?.len() == 0 {
                Ok(Storage::Owned(Vec::new())) // nothing to map; parsing reports the truncation
            } else {
                // SAFETY: the map is read-only and private to this struct. Its contents could
                // still change if another process modified the file while it is mapped; like
                // every mmap-based model loader we document that model files must not be
                // rewritten in place while open. All reads go through bounds-checked slices.
                Ok(Storage::Mapped(
                    unsafe { memmap2::Mmap::map(&file) }.map_err(io)?,
                ))
            }
        }
        #[cfg(target_arch = "wasm32")]
        Ok(Storage::Owned(std::fs::read(path).map_err(io)?))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(m) => m,
        }
    }
}

/// A tensor's stored bytes, sharing the file's storage ([`GgufFile::shared_tensor_data`]):
/// a mapped file stays mapped, an owned buffer stays allocated, while any handle lives.
#[derive(Clone)]
pub struct TensorBytes {
    storage: Arc<Storage>,
    range: Range<usize>,
}

impl TensorBytes {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // The range was checked against the storage when the handle was made.
        self.storage.bytes().get(self.range.clone()).unwrap_or(&[])
    }

    /// Whether the bytes are a memory map of the file (pages the OS can drop and re-read from
    /// disk) rather than an owned buffer.
    pub fn is_mapped(&self) -> bool {
        match *self.storage {
            Storage::Owned(_) => false,
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(_) => true,
        }
    }
}

/// The bytes, as [`TensorBytes::bytes`]: what lets a handle be a
/// [`SharedBytes`](nanotensor_core::SharedBytes) owner of a matrix's blocks
/// ([`nanotensor_core::BlockWeight::shared`]). Always the same slice: the storage is immutable.
impl AsRef<[u8]> for TensorBytes {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for TensorBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorBytes")
            .field("range", &self.range)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// An open, validated GGUF file.
///
/// Opening checks the whole structure: every tensor's type is known, its shape's size fits,
/// its offset is aligned and its bytes lie inside the file. After that, tensor access cannot
/// fail on the file's account.
pub struct GgufFile {
    /// Shared so that a tensor's bytes can outlive this struct without a copy
    /// ([`GgufFile::shared_tensor_data`]).
    storage: Arc<Storage>,
    path: Option<PathBuf>,
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
    /// Total elements over all tensors, checked by the reader.
    n_params: u64,
    /// Total stored bytes over all tensors, checked by the reader.
    tensor_bytes: u64,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("file_bytes", &self.storage.bytes().len())
            .field("metadata_pairs", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates the GGUF file at `path`, memory-mapping it (reading it into memory
    /// on wasm32, where there is no mmap).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or mapped; otherwise as [`GgufFile::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let storage = Storage::open(path, "gguf open")?;
        let mut file = Self::from_storage(storage)?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Parses and validates a GGUF file held in memory.
    ///
    /// # Errors
    /// A typed error for each way a file can be malformed: [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::Truncated`] (also for absurd counts and lengths),
    /// [`Error::UnknownTensorType`], [`Error::Misaligned`], [`Error::TensorOutOfBounds`],
    /// [`Error::Overflow`] (a tensor whose element count, row count, byte size or offset, or
    /// the totals over all tensors, do not fit; naming the tensor), and [`Error::Format`] for
    /// the rest (invalid UTF-8, a bool byte other than 0/1, an unknown value type, duplicate
    /// keys or tensor names, a bad `general.alignment`, a row not made of whole blocks).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<GgufFile> {
        let p = reader::parse(storage.bytes())?;
        Ok(GgufFile {
            storage: Arc::new(storage),
            path: None,
            version: p.version,
            metadata: p.metadata,
            key_index: p.key_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
            alignment: p.alignment,
            data_offset: p.data_offset,
            n_params: p.n_params,
            tensor_bytes: p.tensor_bytes,
        })
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The path this file was opened from (`None` for [`GgufFile::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Alignment of the data section and tensor offsets (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset where the data section starts.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, or [`Error::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::MissingTensor {
                op: "gguf tensor",
                name: name.to_string(),
            })
    }

    /// Total number of values over all tensors (the model's parameter count).
    pub fn n_params(&self) -> u64 {
        self.n_params
    }

    /// Total stored bytes over all tensors (tensors sharing bytes count each time).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensor_bytes
    }

    /// The stored bytes of a tensor. `info` should come from this file; a foreign info whose
    /// range lies outside this file yields an empty slice rather than a panic.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let end = info.offset.saturating_add(info.n_bytes);
        self.storage.bytes().get(info.offset..end).unwrap_or(&[])
    }

    /// The stored bytes of a tensor as a handle that keeps the file's storage (its memory map,
    /// or the owned buffer) alive without copying it: what a model keeps of a tensor it reads
    /// in its stored encoding (the token embedding). The same bytes as
    /// [`GgufFile::tensor_data`], and the same treatment of a foreign `info`.
    pub fn shared_tensor_data(&self, info: &TensorInfo) -> TensorBytes {
        let start = info.offset.min(self.storage.bytes().len());
        let end = info.offset.saturating_add(info.n_bytes);
        let range = if end <= self.storage.bytes().len() {
            start..end
        } else {
            start..start
        };
        TensorBytes {
            storage: Arc::clone(&self.storage),
            range,
        }
    }

    /// Dequantizes the whole tensor `name` into an `f32` tensor of its row-major shape.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::UnsupportedTensorType`] for an element type without a
    /// dequantizer (see [`GgmlType::can_dequantize`]); [`Error::CorruptBlock`] for a block with
    /// a NaN or infinite scale; [`Error::OutOfMemory`] when the result cannot be allocated.
    pub fn dequantize(&self, name: &str) -> Result<Tensor<f32>> {
        let info = self.tensor(name)?;
        // Refused before the output is allocated.
        dequant::check_supported(name, info.ggml_type)?;
        let mut out = Tensor::<f32>::zeros(&info.shape)?;
        dequant::dequantize(
            name,
            info.ggml_type,
            self.tensor_data(info),
            out.as_mut_slice(),
        )?;
        Ok(out)
    }

    /// Dequantizes rows `rows` of tensor `name`, seen as a matrix `[n_rows, row_len]`, into
    /// `out` (`rows.len() · row_len` values). This is the embedding lookup: token `t`'s vector
    /// is row `t` of `token_embd.weight`, read without dequantizing the whole table.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::OutOfRange`] when `rows` is reversed or ends past
    /// `n_rows`; [`Error::LengthMismatch`] when `out` has the wrong length;
    /// [`Error::UnsupportedTensorType`] for an element type without a dequantizer;
    /// [`Error::CorruptBlock`] for a block of these rows with a NaN or infinite scale.
    pub fn dequantize_rows(&self, name: &str, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let op = "gguf dequantize_rows";
        let info = self.tensor(name)?;
        let n_rows = info.n_rows();
        if rows.start > rows.end || rows.end > n_rows {
            return Err(Error::OutOfRange {
                op,
                index: rows.end.max(rows.start),
                len: n_rows,
            });
        }
        // `rows.end <= n_rows`, so these products are at most the element count and the byte
        // size the reader checked; checked again so that a mistake here cannot wrap.
        let overflow = || Error::overflow(op, format!("tensor `{name}`"), "row range");
        let expected = rows
            .len()
            .checked_mul(info.row_len())
            .ok_or_else(overflow)?;
        if out.len() != expected {
            return Err(Error::LengthMismatch {
                op,
                len: out.len(),
                shape: (&[rows.len(), info.row_len()][..]).into(),
                expected,
            });
        }
        let rb = info.row_bytes();
        let start = rows.start.checked_mul(rb).ok_or_else(overflow)?;
        let end = rows.end.checked_mul(rb).ok_or_else(overflow)?;
        let bytes = self
            .tensor_data(info)
            .get(start..end)
            .ok_or_else(overflow)?;
        // The first block of row `rows.start`, so that errors count from the tensor's start.
        let first_block = info
            .row_len()
            .checked_div(info.ggml_type.block_size())
            .and_then(|blocks_per_row| rows.start.checked_mul(blocks_per_row))
            .ok_or_else(overflow)?;
        dequant::dequantize_from(name, info.ggml_type, bytes, first_block, out)
    }
}
