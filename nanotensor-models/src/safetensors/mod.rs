//! A reader for safetensors model files, the format of the Hugging Face ecosystem.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, a JSON header of `n` bytes
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}`, offsets
//! relative to the data section), then the data section, whose tensors must tile it exactly.
//!
//! Validation is the `safetensors` crate's (the ecosystem's reader): the header is parsed and
//! every tensor's shape, element type and offsets are checked against each other and the file
//! size before a byte is handed out. Before handing the bytes to it we check that every offset
//! lies inside the file, so that no sum the crate computes from the offsets can overflow. The
//! crate's errors become [`Error`] variants.
//!
//! [`SafetensorsFile::open`] memory-maps the file like [`crate::gguf::GgufFile::open`].

// Every size here is computed from the file's contents: overflow must be an error, never a
// wrap or a panic, so unchecked integer arithmetic is refused in the whole module.
#![deny(clippy::arithmetic_side_effects)]

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanotensor_core::error::{Error, Result};
use nanotensor_core::tensor::Tensor;
pub use safetensors::Dtype;

use crate::gguf::Storage;

const OP: &str = "safetensors";
/// Bytes of the header-length prefix.
const N_LEN: usize = 8;

/// Where a tensor lives in the file. Only the reader builds these, after validating the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeTensorInfo {
    /// Tensor name, e.g. `encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Row-major shape; a linear layer's weight is `[out_features, in_features]`.
    pub shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Bytes of data (element count · element size, checked by the reader).
    pub n_bytes: usize,
}

impl SafeTensorInfo {
    /// Number of values: the product of the shape (checked when the file was opened).
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An open, validated safetensors file.
pub struct SafetensorsFile {
    storage: Arc<Storage>,
    path: Option<PathBuf>,
    /// In file order (increasing offset).
    tensors: Vec<SafeTensorInfo>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("file_bytes", &self.storage.bytes().len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// The name of a dtype, for errors.
fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::BOOL => "BOOL",
        Dtype::U8 => "U8",
        Dtype::I8 => "I8",
        Dtype::I16 => "I16",
        Dtype::U16 => "U16",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::I32 => "I32",
        Dtype::U32 => "U32",
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
        Dtype::I64 => "I64",
        Dtype::U64 => "U64",
        _ => "another element type",
    }
}

impl SafetensorsFile {
    /// Opens and validates the safetensors file at `path`, memory-mapping it.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or mapped; otherwise as
    /// [`SafetensorsFile::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile> {
        let path = path.as_ref();
        let storage = Storage::open(path, "safetensors open")?;
        let mut file = Self::from_storage(storage)?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Parses and validates a safetensors file held in memory.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the file is shorter than its header length or its header;
    /// [`Error::TensorOutOfBounds`] for an offset past the end of the data section;
    /// [`Error::Overflow`] for a header length that does not fit; [`Error::Format`] for the
    /// rest (invalid UTF-8 or JSON, offsets that do not tile the data section, a size that does
    /// not match the shape and element type, a header over the crate's 100 MB limit).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SafetensorsFile> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<SafetensorsFile> {
        let tensors = parse(storage.bytes())?;
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(SafetensorsFile {
            storage: Arc::new(storage),
            path: None,
            tensors,
            index,
        })
    }

    /// The path this file was opened from (`None` for [`SafetensorsFile::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> usize {
        self.storage.bytes().len()
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[SafeTensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, or [`Error::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&SafeTensorInfo> {
        self.index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::MissingTensor {
                op: OP,
                name: name.to_string(),
            })
    }

    /// The stored bytes of a tensor of this file (an empty slice for a foreign `info` whose
    /// range lies outside it).
    pub fn tensor_data(&self, info: &SafeTensorInfo) -> &[u8] {
        let end = info.offset.saturating_add(info.n_bytes);
        self.storage.bytes().get(info.offset..end).unwrap_or(&[])
    }

    /// The bytes of tensor `name`, checked to be of `dtype`.
    fn typed_data(&self, name: &str, dtype: Dtype) -> Result<(&SafeTensorInfo, &[u8])> {
        let info = self.tensor(name)?;
        if info.dtype != dtype {
            return Err(Error::UnsupportedTensorType {
                op: OP,
                tensor: name.to_string(),
                type_name: dtype_name(info.dtype),
                supported: dtype_name(dtype),
            });
        }
        Ok((info, self.tensor_data(info)))
    }

    /// Reads the F32 tensor `name` into a tensor of its shape (a scalar becomes shape `[1]`).
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::UnsupportedTensorType`] when it is not F32.
    pub fn read_f32(&self, name: &str) -> Result<Tensor<f32>> {
        let (info, bytes) = self.typed_data(name, Dtype::F32)?;
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let shape = if info.shape.is_empty() {
            vec![1]
        } else {
            info.shape.clone()
        };
        Tensor::from_vec(data, &shape)
    }

    /// Reads the I64 tensor `name` (an index buffer such as BERT's `position_ids`), flattened.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::UnsupportedTensorType`] when it is not I64.
    pub fn read_i64(&self, name: &str) -> Result<Vec<i64>> {
        let (_, bytes) = self.typed_data(name, Dtype::I64)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

fn format_err(reason: impl Into<String>) -> Error {
    Error::Format {
        op: OP,
        reason: reason.into(),
    }
}

/// Validates `bytes` as a safetensors file and returns its tensors in file order.
fn parse(bytes: &[u8]) -> Result<Vec<SafeTensorInfo>> {
    let file_len = bytes.len();
    let truncated = |what: &str, offset: usize, needed: u64| Error::Truncated {
        op: OP,
        what: what.to_string(),
        offset: offset as u64,
        needed,
        file_len: file_len as u64,
    };
    let prefix: [u8; N_LEN] = bytes
        .get(..N_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| truncated("header length", 0, N_LEN as u64))?;
    let n = u64::from_le_bytes(prefix);
    let header_end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(N_LEN))
        .ok_or_else(|| Error::Overflow {
            op: OP,
            what: "header".into(),
            quantity: format!("header length {n}"),
        })?;
    let header = bytes
        .get(N_LEN..header_end)
        .ok_or_else(|| truncated("JSON header", N_LEN, n))?;
    // `header_end <= file_len` from here on.
    let data_len = file_len.saturating_sub(header_end);
    check_offsets(header, data_len)?;

    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format_err(e.to_string()))?;
    let mut tensors: Vec<SafeTensorInfo> = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (begin, end) = info.data_offsets;
            let overflow = || Error::Overflow {
                op: OP,
                what: format!("tensor `{name}`"),
                quantity: "data offset".into(),
            };
            Ok(SafeTensorInfo {
                offset: header_end.checked_add(begin).ok_or_else(overflow)?,
                n_bytes: end.checked_sub(begin).ok_or_else(overflow)?,
                dtype: info.dtype,
                shape: info.shape.clone(),
                name,
            })
        })
        .collect::<Result<_>>()?;
    tensors.sort_by_key(|t| t.offset);
    Ok(tensors)
}

/// Checks that every tensor's `data_offsets` lie inside the data section of `data_len` bytes,
/// so that the crate's own sums of offsets cannot overflow.
fn check_offsets(header: &[u8], data_len: usize) -> Result<()> {
    let json: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| format_err(format!("invalid JSON header: {e}")))?;
    let object = json
        .as_object()
        .ok_or_else(|| format_err("the header is not a JSON object"))?;
    for (name, entry) in object {
        if name == "__metadata__" {
            continue;
        }
        let offsets = entry
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .ok_or_else(|| format_err(format!("tensor `{name}` has no `data_offsets` array")))?;
        for offset in offsets {
            let value = offset.as_u64().ok_or_else(|| {
                format_err(format!(
                    "tensor `{name}`: data offset {offset} is not an unsigned integer"
                ))
            })?;
            if usize::try_from(value).map_or(true, |v| v > data_len) {
                return Err(Error::TensorOutOfBounds {
                    op: OP,
                    tensor: name.clone(),
                    offset: value,
                    n_bytes: 0,
                    data_len: data_len as u64,
                });
            }
        }
    }
    Ok(())
}
