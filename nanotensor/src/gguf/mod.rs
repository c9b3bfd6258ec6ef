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
//! use nanotensor::gguf::GgufFile;
//!
//! let file = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let n_layers = file.get_u32("llama.block_count")?;
//! let embd = file.tensor("token_embd.weight")?; // shape [n_vocab, n_embd], row-major
//! let mut row = vec![0f32; embd.shape[1]];
//! file.dequantize_rows("token_embd.weight", 42..43, &mut row)?; // the embedding of token 42
//! # Ok::<(), nanotensor::Error>(())
//! ```

pub mod dequant;
mod metadata;
pub mod reader;
mod summary;
pub mod types;
pub mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use reader::{DEFAULT_ALIGNMENT, MAGIC};
pub use summary::{thousands, ModelSummary, TensorSummary, TypeSummary};
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Where a tensor lives in the file and how to read it.
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
}

impl TensorInfo {
    /// Number of values (product of the shape).
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of a row: the innermost (last) dimension, the one blocks run along.
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension but the last.
    pub fn n_rows(&self) -> usize {
        self.shape[..self.shape.len().saturating_sub(1)]
            .iter()
            .product()
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        // Validated when the file was parsed.
        (self.row_len() / self.ggml_type.block_size()) * self.ggml_type.type_size()
    }
}

/// The bytes of an open file: mapped from disk, or owned.
enum Storage {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(m) => m,
        }
    }
}

/// An open, validated GGUF file.
///
/// Opening checks the whole structure: every tensor's type is known, its shape's size fits,
/// its offset is aligned and its bytes lie inside the file. After that, tensor access cannot
/// fail on the file's account.
pub struct GgufFile {
    storage: Storage,
    path: Option<PathBuf>,
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
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
        let io = |source| Error::Io {
            op: "gguf open",
            path: path.display().to_string(),
            source,
        };
        #[cfg(not(target_arch = "wasm32"))]
        let storage = {
            let file = std::fs::File::open(path).map_err(io)?;
            if file.metadata().map_err(io)?.len() == 0 {
                Storage::Owned(Vec::new()) // nothing to map; parsing reports the truncation
            } else {
                // SAFETY: the map is read-only and private to this struct. Its contents could
                // still change if another process modified the file while it is mapped; like
                // every mmap-based model loader we document that model files must not be
                // rewritten in place while open. All reads go through bounds-checked slices.
                Storage::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
            }
        };
        #[cfg(target_arch = "wasm32")]
        let storage = Storage::Owned(std::fs::read(path).map_err(io)?);
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
    /// [`Error::SizeOverflow`] (dimensions whose product overflows), and [`Error::Format`] for
    /// the rest (invalid UTF-8, a bool byte other than 0/1, an unknown value type, duplicate
    /// keys or tensor names, a bad `general.alignment`, a row not made of whole blocks).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<GgufFile> {
        let p = reader::parse(storage.bytes())?;
        Ok(GgufFile {
            storage,
            path: None,
            version: p.version,
            metadata: p.metadata,
            key_index: p.key_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
            alignment: p.alignment,
            data_offset: p.data_offset,
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
        self.tensors.iter().map(|t| t.n_elements() as u64).sum()
    }

    /// The stored bytes of a tensor. `info` should come from this file; a foreign info whose
    /// range lies outside this file yields an empty slice rather than a panic.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let end = info.offset.saturating_add(info.n_bytes);
        self.storage.bytes().get(info.offset..end).unwrap_or(&[])
    }

    /// Dequantizes the whole tensor `name` into an `f32` tensor of its row-major shape.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::Format`] for an element type without a dequantizer
    /// (see [`GgmlType::can_dequantize`]); [`Error::OutOfMemory`] when the result cannot be
    /// allocated.
    pub fn dequantize(&self, name: &str) -> Result<Tensor<f32>> {
        let info = self.tensor(name)?;
        let mut out = Tensor::<f32>::zeros(&info.shape)?;
        dequant::dequantize(info.ggml_type, self.tensor_data(info), out.as_mut_slice())?;
        Ok(out)
    }

    /// Dequantizes rows `rows` of tensor `name`, seen as a matrix `[n_rows, row_len]`, into
    /// `out` (`rows.len() · row_len` values). This is the embedding lookup: token `t`'s vector
    /// is row `t` of `token_embd.weight`, read without dequantizing the whole table.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::OutOfRange`] when `rows` is reversed or ends past
    /// `n_rows`; [`Error::LengthMismatch`] when `out` has the wrong length; [`Error::Format`]
    /// for an element type without a dequantizer.
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
        let expected = rows.len() * info.row_len();
        if out.len() != expected {
            return Err(Error::LengthMismatch {
                op,
                len: out.len(),
                shape: (&[rows.len(), info.row_len()][..]).into(),
                expected,
            });
        }
        let rb = info.row_bytes();
        let bytes = &self.tensor_data(info)[rows.start * rb..rows.end * rb];
        dequant::dequantize(info.ggml_type, bytes, out)
    }
}
