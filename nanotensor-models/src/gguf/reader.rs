//! Parsing the GGUF header, metadata and tensor infos from a byte slice.
//!
//! Layout (little-endian, fields packed without padding; GGUF v2 and v3 share it):
//!
//! ```text
//! header       magic "GGUF" · version u32 · tensor_count u64 · metadata_kv_count u64
//! metadata     kv_count × ( key: string · value_type u32 · value )
//! tensor info  tensor_count × ( name: string · n_dims u32 · dims u64[n_dims]
//!                               · ggml_type u32 · offset u64 )
//! padding      zeros up to a multiple of `general.alignment` (default 32)
//! data         each tensor at data_start + offset (offset a multiple of the alignment)
//!
//! string       len u64 · UTF-8 bytes[len]
//! array        item_type u32 · count u64 · items (arrays may nest)
//! ```
//!
//! `dims` lists the fastest-varying dimension first, so the row-major shape is `dims` reversed.
//! (Version 1 used 32-bit counts and lengths and is rejected; a big-endian v3 file reads its
//! version as 0x0300_0000 and is rejected the same way.)
//!
//! Defence against hostile files: every read is bounds-checked ([`Error::Truncated`]), every
//! count is checked against the bytes left *before* anything is reserved (an element takes at
//! least [`ValueType::min_encoded_size`] bytes), array nesting is limited to [`MAX_NESTING`], and
//! all size arithmetic is checked.

use std::collections::HashMap;

use super::types::GgmlType;
use super::value::{Array, Value, ValueType};
use super::TensorInfo;
use nanotensor_core::error::{Error, Result};

const OP: &str = "gguf";
/// The four magic bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Most dimensions a tensor may declare (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Deepest array nesting accepted; real files use at most 1 level. Bounds recursion depth.
pub const MAX_NESTING: usize = 8;
/// Fewest bytes a tensor info can take: name length, n_dims, type and offset.
const MIN_TENSOR_INFO: usize = 8 + 4 + 4 + 8;
/// Fewest bytes a metadata pair can take: key length, value type, a one-byte value.
const MIN_KV: usize = 8 + 4 + 1;

/// Everything before the data section, parsed and validated.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub key_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub alignment: usize,
    pub data_offset: usize,
    /// Total elements over all tensors, checked.
    pub n_params: u64,
    /// Total stored bytes over all tensors, checked.
    pub tensor_bytes: u64,
}

/// A forward-only reader over the file's bytes that reports where it ran out.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        // Cannot wrap: `pos` only advances in `take`, by at most what remains.
        #[allow(clippy::arithmetic_side_effects)]
        let n = self.bytes.len() - self.pos;
        n
    }

    fn truncated(&self, what: &str, needed: u64) -> Error {
        Error::Truncated {
            op: OP,
            what: what.to_string(),
            offset: self.pos as u64,
            needed,
            file_len: self.bytes.len() as u64,
        }
    }

    /// The next `n` bytes, or [`Error::Truncated`] naming `what` was being read.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated(what, n as u64));
        }
        // Cannot overflow: `n <= remaining()`, so `pos + n <= bytes.len()`.
        #[allow(clippy::arithmetic_side_effects)]
        let end = self.pos + n;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what remains and
    /// returns the count as `usize`; only then may the caller reserve space for them.
    fn bounded_count(&self, count: u64, min_size: usize, what: &str) -> Result<usize> {
        // A u64 times a usize always fits in u128; `None` would only mean "too many".
        let needed = u128::from(count).checked_mul(min_size as u128);
        let fits = needed.is_some_and(|n| n <= self.remaining() as u128);
        let count_usize = usize::try_from(count).ok().filter(|_| fits);
        match count_usize {
            Some(n) => Ok(n),
            None => {
                let needed = needed
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(u64::MAX);
                Err(self.truncated(&format!("{what} ({count} declared)"), needed))
            }
        }
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let len = self.bounded_count(len, 1, what)?;
        let start = self.pos;
        let raw = self.take(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::format(
                OP,
                format!("{what} at byte {start} is not valid UTF-8 ({e})"),
            )),
        }
    }

    fn value_type(&mut self, what: &str) -> Result<ValueType> {
        let at = self.pos;
        let tag = self.u32(what)?;
        ValueType::from_tag(tag).ok_or_else(|| {
            Error::format(OP, format!("{what}: unknown value type {tag} at byte {at}"))
        })
    }

    /// One value of type `ty`; `depth` counts enclosing arrays.
    fn value(&mut self, ty: ValueType, what: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => Value::Bool(self.bool(what)?),
            ValueType::String => Value::String(self.string(what)?),
            // Saturating: a saturated depth is past MAX_NESTING and rejected all the same.
            ValueType::Array => Value::Array(self.array_value(what, depth.saturating_add(1))?),
        })
    }

    fn bool(&mut self, what: &str) -> Result<bool> {
        let at = self.pos;
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Error::format(
                OP,
                format!("{what}: bool byte {b} at byte {at} is neither 0 nor 1"),
            )),
        }
    }

    /// `n` fixed-size items decoded by `f`, after the count was bounded.
    fn items<T>(&mut self, n: usize, f: impl Fn(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }

    /// An array: element type, count, elements. `depth` is this array's nesting level (1 for
    /// an array that is a metadata value itself).
    fn array_value(&mut self, what: &str, depth: usize) -> Result<Array> {
        if depth > MAX_NESTING {
            return Err(Error::format(
                OP,
                format!("{what}: arrays nested deeper than {MAX_NESTING} levels"),
            ));
        }
        let ty = self.value_type(what)?;
        let count = self.u64(what)?;
        let n = self.bounded_count(count, ty.min_encoded_size(), what)?;
        Ok(match ty {
            ValueType::U8 => Array::U8(self.take(n, what)?.to_vec()),
            ValueType::I8 => Array::I8(self.take(n, what)?.iter().map(|&b| b as i8).collect()),
            ValueType::U16 => {
                Array::U16(self.items(n, |c| Ok(u16::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::I16 => {
                Array::I16(self.items(n, |c| Ok(i16::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::U32 => Array::U32(self.items(n, |c| c.u32(what))?),
            ValueType::I32 => {
                Array::I32(self.items(n, |c| Ok(i32::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::U64 => Array::U64(self.items(n, |c| c.u64(what))?),
            ValueType::I64 => {
                Array::I64(self.items(n, |c| Ok(i64::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::F32 => {
                Array::F32(self.items(n, |c| Ok(f32::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::F64 => {
                Array::F64(self.items(n, |c| Ok(f64::from_le_bytes(c.array(what)?)))?)
            }
            ValueType::Bool => Array::Bool(self.items(n, |c| c.bool(what))?),
            ValueType::String => Array::String(self.items(n, |c| c.string(what))?),
            ValueType::Array => {
                Array::Array(self.items(n, |c| c.array_value(what, depth.saturating_add(1)))?)
            }
        })
    }
}

/// Parses and validates everything up to the data section of the GGUF file `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let mut c = Cursor { bytes, pos: 0 };

    // ---- header ----
    let magic: [u8; 4] = c.array("magic")?;
    if magic != MAGIC {
        return Err(Error::BadMagic {
            op: OP,
            found: magic,
        });
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::UnsupportedVersion {
            op: OP,
            version,
            supported: "2 and 3 (little-endian)",
        });
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;

    // ---- metadata ----
    let n_kv = c.bounded_count(n_kv, MIN_KV, "metadata pairs")?;
    let mut metadata = Vec::with_capacity(n_kv);
    let mut key_index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&format!("key of metadata pair {i}"))?;
        let what = format!("value of metadata key `{key}`");
        let ty = c.value_type(&what)?;
        let value = c.value(ty, &what, 0)?;
        if key_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(Error::format(
                OP,
                format!("metadata key `{key}` appears twice"),
            ));
        }
        metadata.push((key, value));
    }
    let alignment = match key_index.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => {
            let a: u32 = super::metadata::integer(OP, "general.alignment", &metadata[i].1, "u32")?;
            if a == 0 || !a.is_power_of_two() {
                return Err(Error::format(
                    OP,
                    format!("general.alignment = {a} is not a power of two"),
                ));
            }
            a as usize
        }
    };

    // ---- tensor infos ----
    let n_tensors = c.bounded_count(n_tensors, MIN_TENSOR_INFO, "tensor infos")?;
    let mut raw = Vec::with_capacity(n_tensors);
    let mut tensor_index = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let info = tensor_info(&mut c, i, alignment)?;
        if tensor_index
            .insert(info.0.name.clone(), raw.len())
            .is_some()
        {
            return Err(Error::format(
                OP,
                format!("tensor `{}` appears twice", info.0.name),
            ));
        }
        raw.push(info);
    }

    // ---- data section: starts at the next multiple of the alignment ----
    // (On overflow, which only a >2 GiB file on a 32-bit target could cause, every tensor is
    // out of bounds.)
    let data_offset = c
        .pos
        .checked_next_multiple_of(alignment)
        .unwrap_or(usize::MAX);
    let data_len = bytes.len().saturating_sub(data_offset) as u64;
    // A tensor of zero bytes must still start inside the file: the aligned data section of a
    // truncated file may begin past its end.
    let data_past_eof = data_offset > bytes.len();
    let mut tensors = Vec::with_capacity(raw.len());
    let (mut n_params, mut tensor_bytes) = (0u64, 0u64);
    for (mut info, rel) in raw {
        let end = rel.checked_add(info.n_bytes as u64);
        if data_past_eof || end.is_none_or(|end| end > data_len) {
            return Err(Error::TensorOutOfBounds {
                op: OP,
                tensor: info.name,
                offset: rel,
                n_bytes: info.n_bytes as u64,
                data_len,
            });
        }
        // `rel` lies inside the data section, which lies inside the file, so the sum fits;
        // checked all the same so that no path from file contents to an index is unchecked.
        info.offset = usize::try_from(rel)
            .ok()
            .and_then(|rel| data_offset.checked_add(rel))
            .ok_or_else(|| Error::overflow(OP, tensor_what(&info.name), "absolute data offset"))?;
        // Tensors may share bytes, so the totals are not bounded by the file size.
        n_params = n_params
            .checked_add(info.n_elements() as u64)
            .ok_or_else(|| Error::overflow(OP, tensor_what(&info.name), "total parameter count"))?;
        tensor_bytes = tensor_bytes
            .checked_add(info.n_bytes as u64)
            .ok_or_else(|| Error::overflow(OP, tensor_what(&info.name), "total tensor bytes"))?;
        tensors.push(info);
    }
    Ok(Parsed {
        version,
        metadata,
        key_index,
        tensors,
        tensor_index,
        alignment,
        data_offset,
        n_params,
        tensor_bytes,
    })
}

/// How messages name tensor `name`.
fn tensor_what(name: &str) -> String {
    format!("tensor `{name}`")
}

/// Product of `dims`, or `None` when it does not fit in `usize`. Zero dimensions are skipped
/// while multiplying (the result is still 0 when there is one): otherwise a zero would hide an
/// overflowing product of the others, which any consumer multiplying the shape in another order
/// (or all dimensions but the last, as a row count) would hit.
fn checked_product(dims: &[usize]) -> Option<usize> {
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    Some(if dims.contains(&0) { 0 } else { nonzero })
}

/// One tensor info; returns it with `offset` still unset and the offset relative to the data
/// section beside it.
fn tensor_info(c: &mut Cursor<'_>, i: usize, alignment: usize) -> Result<(TensorInfo, u64)> {
    let name = c.string(&format!("name of tensor {i}"))?;
    let what = format!("info of tensor `{name}`");
    let n_dims = c.u32(&what)? as usize;
    if !(1..=MAX_DIMS).contains(&n_dims) {
        return Err(Error::format(
            OP,
            format!("tensor `{name}` declares {n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
        ));
    }
    let mut dims = [0u64; MAX_DIMS];
    for d in dims.iter_mut().take(n_dims) {
        *d = c.u64(&what)?;
    }
    let type_id = c.u32(&what)?;
    let rel_offset = c.u64(&what)?;

    // Row-major shape: GGUF lists the fastest dimension first.
    let dims_text = || {
        let mut d = dims[..n_dims].to_vec();
        d.reverse();
        format!("{d:?}")
    };
    let overflow = |quantity: &str| {
        Error::overflow(
            OP,
            tensor_what(&name),
            format!("{quantity} of shape {}", dims_text()),
        )
    };
    let shape: Vec<usize> = dims[..n_dims]
        .iter()
        .rev()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| overflow("a dimension"))?;
    let n_elements = checked_product(&shape).ok_or_else(|| overflow("the element count"))?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
        op: OP,
        tensor: name.clone(),
        type_id,
    })?;
    // `n_dims` is at least 1, so the shape has a last dimension.
    let (&row_len, outer) = shape
        .split_last()
        .ok_or_else(|| Error::format(OP, format!("tensor `{name}` has no dimensions")))?;
    let n_rows = checked_product(outer).ok_or_else(|| overflow("the row count"))?;
    let row_bytes = ggml_type.row_bytes(row_len).map_err(|e| match e {
        Error::Format { reason, .. } => Error::format(OP, format!("tensor `{name}`: {reason}")),
        _ => overflow(&format!("the {ggml_type} byte size of a row")),
    })?;
    let n_bytes = n_rows
        .checked_mul(row_bytes)
        .ok_or_else(|| overflow(&format!("the {ggml_type} byte size")))?;
    // `alignment` is a nonzero power of two (checked with the metadata).
    if !rel_offset.is_multiple_of(alignment as u64) {
        return Err(Error::Misaligned {
            op: OP,
            tensor: name,
            offset: rel_offset,
            alignment: alignment as u64,
        });
    }
    Ok((
        TensorInfo {
            name,
            shape,
            ggml_type,
            offset: 0,
            n_bytes,
            n_elements,
            n_rows,
            row_bytes,
        },
        rel_offset,
    ))
}
