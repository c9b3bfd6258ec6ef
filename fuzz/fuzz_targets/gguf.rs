//! Arbitrary bytes → `GgufFile::from_bytes` → a file or a typed error, never a panic.
//!
//! A file the reader accepts must be self-consistent (`common::assert_gguf_consistent`: every
//! tensor's element count is the checked product of its shape, its byte size follows its type's
//! block arithmetic, its bytes lie inside the file). Then every accessor runs: the summary, the tensor table, the typed metadata
//! getters, and the dequantization of each tensor small enough to decode quickly. Allocation
//! beyond the input's size is caught by libFuzzer's `-malloc_limit_mb` (set by
//! `scripts/reliability.sh`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanotensor::gguf::GgufFile;

mod common;

/// Tensors with more elements than this are not dequantized (a valid header may describe a tensor
/// far larger than the fuzz input only if its data is really there, so this only bounds time).
const MAX_DEQUANT_ELEMENTS: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
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
            if let Ok(t) = file.dequantize(&info.name) {
                assert_eq!(t.as_slice().len(), info.n_elements());
            }
            if info.n_rows() > 0 {
                let mut row = vec![0f32; info.row_len()];
                let _ = file.dequantize_rows(&info.name, 0..1, &mut row);
            }
        }
    }
});
