//! The one error type of NanoTensor.
//!
//! Policy (after candle's `error.rs`): every public operation validates its inputs and returns
//! [`Result`]; kernels behind the checks assume valid input and only `debug_assert!`. Every variant
//! names the operation that failed so that a message read out of context still says where it came
//! from. [`Error::is_user_error`] separates mistakes in the caller's input (the CLI exits with 2)
//! from internal failures (exit 1).

use std::fmt;

/// Shorthand for `std::result::Result<T, nanotensor::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A list of dimensions, printed as `[2, 3, 4]` in messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Dims(pub Vec<usize>);

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Dims {
    fn from(d: &[usize]) -> Self {
        Dims(d.to_vec())
    }
}

/// Every way a NanoTensor operation can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- shapes ------------------------------------------------------------------------------
    /// A single tensor's shape is not acceptable to the operation.
    #[error("{op}: invalid shape {shape}: {reason}")]
    InvalidShape {
        op: &'static str,
        shape: Dims,
        reason: String,
    },
    /// Two tensors' shapes do not fit together.
    #[error("{op}: shape mismatch between {lhs} and {rhs}: {reason}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Dims,
        rhs: Dims,
        reason: String,
    },
    /// A buffer's length does not match the element count of the requested shape.
    #[error("{op}: {len} elements do not fill shape {shape} ({expected} elements)")]
    LengthMismatch {
        op: &'static str,
        len: usize,
        shape: Dims,
        expected: usize,
    },
    /// The element count or byte size of a shape does not fit in `usize`.
    #[error("{op}: shape {shape} is too large to address")]
    SizeOverflow { op: &'static str, shape: Dims },
    /// An index or range lies outside a tensor.
    #[error("{op}: index {index} out of range for length {len}")]
    OutOfRange {
        op: &'static str,
        index: usize,
        len: usize,
    },

    // ---- values ------------------------------------------------------------------------------
    /// A NaN or infinity where the operation needs finite input.
    #[error("{op}: non-finite value {value} in {operand} at flat index {index}")]
    NonFinite {
        op: &'static str,
        /// Which input holds it (`"A"`, `"B"`, `"Q"`, `"K"`, `"V"`, `"x"`, `"weight"`, …).
        operand: &'static str,
        index: usize,
        value: f64,
    },
    /// An argument outside its allowed range (a zero thread count, a negative temperature, …).
    #[error("{op}: invalid argument: {reason}")]
    InvalidArgument { op: &'static str, reason: String },

    // ---- resources ---------------------------------------------------------------------------
    /// The operation would need more memory than its budget allows; nothing was allocated.
    #[error(
        "{op}: needs {} ({needed} bytes){detail}, over the memory budget of {} ({budget} bytes)",
        human_bytes(*needed),
        human_bytes(*budget)
    )]
    MemoryBudget {
        op: &'static str,
        needed: u64,
        budget: u64,
        /// Extra context beginning with a separator, e.g. `" for the 100000×100000 score matrix"`.
        detail: String,
    },
    /// The allocator refused a request.
    #[error("{op}: could not allocate {} ({bytes} bytes)", human_bytes(*bytes))]
    OutOfMemory { op: &'static str, bytes: u64 },
    /// A sequence longer than the model's context (or the KV cache's capacity) was requested.
    #[error("{op}: {needed} tokens exceed the context of {capacity} tokens{detail}")]
    ContextOverflow {
        op: &'static str,
        needed: usize,
        capacity: usize,
        /// Extra context beginning with a separator, e.g. `" (prompt 12 + max new tokens 9000)"`.
        detail: String,
    },

    // ---- backends ----------------------------------------------------------------------------
    /// The backend does not implement this operation or algorithm.
    #[error("{op}: not supported by the {backend} backend: {reason}")]
    Unsupported {
        op: &'static str,
        backend: &'static str,
        reason: String,
    },
    /// A backend that was not compiled into this build.
    #[error("backend `{name}` is not compiled in; enable the cargo feature `{feature}` (compiled in: {available})")]
    BackendNotCompiled {
        name: String,
        feature: String,
        available: String,
    },

    // ---- files and models ---------------------------------------------------------------------
    /// Reading a file failed.
    #[error("{op}: {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed or uses something this build does not support.
    #[error("{op}: {reason}")]
    Format { op: &'static str, reason: String },
    /// The file does not start with the format's magic bytes (e.g. `GGUF`).
    #[error("{op}: not a GGUF file: magic bytes {found:02x?}, expected \"GGUF\"")]
    BadMagic { op: &'static str, found: [u8; 4] },
    /// A file format version this reader does not implement.
    #[error("{op}: unsupported format version {version} (supported: {supported})")]
    UnsupportedVersion {
        op: &'static str,
        version: u32,
        supported: &'static str,
    },
    /// A field, or a declared count or length, runs past the end of the file. Absurd counts
    /// (2⁶³ strings in a 1 kB file) land here too: they are rejected before any allocation.
    #[error("{op}: file truncated: {what} at byte {offset} needs {needed} bytes, but the file has {file_len}")]
    Truncated {
        op: &'static str,
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    /// A tensor's element type id is not one this reader knows.
    #[error("{op}: tensor `{tensor}` has unknown element type id {type_id}")]
    UnknownTensorType {
        op: &'static str,
        tensor: String,
        type_id: u32,
    },
    /// A tensor's element type is known (its geometry is read and listed), but this build
    /// cannot decode it to `f32`; `supported` lists the types it can.
    #[error("{op}: tensor `{tensor}` has element type {type_name}, which cannot be dequantized (supported: {supported})")]
    UnsupportedTensorType {
        op: &'static str,
        tensor: String,
        type_name: &'static str,
        supported: &'static str,
    },
    /// A block of a quantized tensor cannot be decoded: a NaN or infinite scale, or one that
    /// makes the block's values overflow `f32`. `block` counts from the tensor's first block.
    #[error("{op}: tensor `{tensor}`: block {block}: {reason}")]
    CorruptBlock {
        op: &'static str,
        tensor: String,
        block: usize,
        reason: String,
    },
    /// A tensor's data (offset + size) lies outside the file's data section.
    #[error("{op}: tensor `{tensor}` spans bytes {offset}..{offset}+{n_bytes}, past the end of the data section ({data_len} bytes)")]
    TensorOutOfBounds {
        op: &'static str,
        tensor: String,
        offset: u64,
        n_bytes: u64,
        data_len: u64,
    },
    /// A size computed from a file's contents (a tensor's element count or byte size, a data
    /// offset, a total over the tensors, a model dimension product) does not fit its integer
    /// type. `what` names the tensor or key, `quantity` what was being computed.
    #[error("{op}: {what}: {quantity} overflows")]
    Overflow {
        op: &'static str,
        what: String,
        quantity: String,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error(
        "{op}: tensor `{tensor}` offset {offset} is not a multiple of the alignment {alignment}"
    )]
    Misaligned {
        op: &'static str,
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    /// A required metadata key is absent.
    #[error("{op}: metadata key `{key}` is missing")]
    MissingKey { op: &'static str, key: String },
    /// A metadata key holds a value of the wrong type (or one that does not fit the requested type).
    #[error("{op}: metadata key `{key}`: expected {expected}, found {found}")]
    KeyType {
        op: &'static str,
        key: String,
        expected: &'static str,
        found: String,
    },
    /// The model file's architecture (`general.architecture`) is not one this build runs;
    /// `supported` lists those it does.
    #[error("{op}: architecture `{architecture}` is not supported (supported: {supported})")]
    UnsupportedArchitecture {
        op: &'static str,
        architecture: String,
        supported: &'static str,
    },
    /// A tensor the caller asked for is not in the file.
    #[error("{op}: tensor `{name}` not found in the model file")]
    MissingTensor { op: &'static str, name: String },
    /// No model file was found; `searched` lists where we looked, `fetch` how to get it.
    #[error("model file not found (looked at: {searched}); fetch it with `{fetch}`")]
    ModelNotFound {
        searched: String,
        fetch: &'static str,
    },
}

impl Error {
    /// True when the error comes from the caller's input (shapes, values, files, budgets), so
    /// a command-line tool should exit with status 2; false for internal failures (exit 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::OutOfMemory { .. })
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid_arg(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::InvalidShape`].
    pub fn invalid_shape(op: &'static str, shape: &[usize], reason: impl Into<String>) -> Self {
        Error::InvalidShape {
            op,
            shape: shape.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::ShapeMismatch`].
    pub fn mismatch(
        op: &'static str,
        lhs: &[usize],
        rhs: &[usize],
        reason: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.into(),
            rhs: rhs.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Overflow`].
    pub fn overflow(
        op: &'static str,
        what: impl Into<String>,
        quantity: impl Into<String>,
    ) -> Self {
        Error::Overflow {
            op,
            what: what.into(),
            quantity: quantity.into(),
        }
    }

    /// Builds an [`Error::Format`].
    pub fn format(op: &'static str, reason: impl Into<String>) -> Self {
        Error::Format {
            op,
            reason: reason.into(),
        }
    }
}

/// Formats a byte count with a decimal unit (`40.0 GB`), as storage is usually quoted.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(40_000_000_000), "40.0 GB");
        assert_eq!(human_bytes(1_500), "1.5 kB");
    }

    #[test]
    fn budget_message_names_op_and_sizes() {
        let e = Error::MemoryBudget {
            op: "attention",
            needed: 40_000_000_000,
            budget: 12_000_000_000,
            detail: " for the score matrix".into(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("attention: needs 40.0 GB"), "{msg}");
        assert!(msg.contains("budget of 12.0 GB"), "{msg}");
        assert!(e.is_user_error());
    }
}
