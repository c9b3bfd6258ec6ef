//! Arbitrary bytes → `GgufFile::from_bytes` → a file or a typed error, never a panic.
//!
//! A file the reader accepts must be self-consistent (`common::assert_gguf_consistent`: every
//! tensor's element count is the checked product of its shape, its byte size follows its type's
//! block arithmetic, its bytes lie inside the file). Then every accessor runs: the summary, the tensor table, the typed metadata
//! getters, and the dequantization of each tensor small enough to decode quickly. Allocation
//! beyond the input's size is caught by libFuzzer's `-malloc_limit_mb` (set by
//! `scripts/reliability.sh`).
//!
//! Most mutated inputs are not valid files, so every input is also decoded directly as raw
//! blocks: its first byte picks one of the known element types (every ggml id is reachable), the
//! rest is cut to whole blocks and dequantized. Either way a dequantization must end in one of
//! the outcomes `check_dequant` allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanotensor::gguf::types::ALL_TYPES;
use nanotensor::gguf::{dequant, GgmlType, GgufFile};
use nanotensor::Error;

mod common;

/// Tensors with more elements than this are not dequantized (a valid header may describe a tensor
/// far larger than the fuzz input only if its data is really there, so this only bounds time).
const MAX_DEQUANT_ELEMENTS: usize = 1 << 16;

/// A dequantization of `ty` ends in: decoded values (finite for a quantized type, whose
/// scales were checked), [`Error::UnsupportedTensorType`] exactly for the types without a
/// decoder, or [`Error::CorruptBlock`] for a quantized type. Anything else is a bug.
fn check_dequant(ty: GgmlType, result: Result<&[f32], Error>) {
    match result {
        Ok(values) => {
            assert!(ty.can_dequantize(), "{ty} decoded");
            if ty.is_quantized() {
                assert!(values.iter().all(|x| x.is_finite()), "{ty}: non-finite value");
            }
        }
        Err(Error::UnsupportedTensorType { type_name, .. }) => {
            assert!(!ty.can_dequantize() && type_name == ty.name(), "{ty} refused")
        }
        Err(Error::CorruptBlock { .. }) => assert!(ty.is_quantized(), "{ty} corrupt"),
        Err(e) => panic!("{ty}: unexpected error {e}"),
    }
}

/// Raw blocks: `data[0]` picks the type, the rest (cut to whole blocks) is its data.
fn raw_blocks(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let ty = ALL_TYPES[usize::from(pick) % ALL_TYPES.len()];
    let n_blocks = rest.len() / ty.type_size();
    let bytes = &rest[..n_blocks * ty.type_size()];
    let mut out = vec![0f32; n_blocks * ty.block_size()];
    // A first block index near the top exercises the saturating block label.
    let first = if pick >= 128 { usize::MAX - 1 } else { 0 };
    let result = dequant::dequantize_from("raw", ty, bytes, first, &mut out);
    check_dequant(ty, result.map(|()| &out[..]));
}

fuzz_target!(|data: &[u8]| {
    raw_blocks(data);
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    common::assert_gguf_consistent(data, &file);
    let _ = file.version();
    let _ = file.alignment();
    let summary = file.summary();
    let _ = format!("{summary:?}");
    let _ = file.n_params();
    let _ = file.architecture();
    for (key, value) in file.metadata() {
        let _ = value.type_description();
        let _ = value.as_integer();
        let _ = value.as_str();
        if let Some(a) = value.as_array() {
            let _ = a.len();
            let _ = a.integers();
        }
        let _ = file.get_u32(key);
        let _ = file.get_u64(key);
        let _ = file.get_i64(key);
        let _ = file.get_usize(key);
        let _ = file.get_f32(key);
        let _ = file.get_bool(key);
        let _ = file.get_str(key);
        let _ = file.get_str_array(key);
        let _ = file.get_i32_array(key);
        let _ = file.get_f32_array(key);
    }
    for info in file.tensors() {
        // The tensor's bytes lie inside the file: the reader checked it.
        let bytes = file.tensor_data(info);
        assert!(bytes.len() <= file.file_size());
        let _ = file.tensor(&info.name);
        if info.n_elements() <= MAX_DEQUANT_ELEMENTS {
            match file.dequantize(&info.name) {
                Ok(t) => {
                    assert_eq!(t.as_slice().len(), info.n_elements());
                    check_dequant(info.ggml_type, Ok(t.as_slice()));
                }
                Err(e) => check_dequant(info.ggml_type, Err(e)),
            }
            if info.n_rows() > 0 {
                let mut row = vec![0f32; info.row_len()];
                let r = file.dequantize_rows(&info.name, 0..1, &mut row);
                check_dequant(info.ggml_type, r.map(|()| &row[..]));
            }
        }
    }
});
