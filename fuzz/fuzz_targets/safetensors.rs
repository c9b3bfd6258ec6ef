//! Arbitrary bytes → `SafetensorsFile::from_bytes` → a file or a typed error, never a panic.
//!
//! A file the reader accepts must be self-consistent: every tensor's bytes lie inside the file,
//! their size is the element count times the element size, and the tensors do not overlap.
//! Then every F32 and I64 tensor is read, and reading one as the other type is a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanotensor::safetensors::{Dtype, SafetensorsFile};
use nanotensor::Error;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SafetensorsFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut end = 0usize;
    for info in file.tensors() {
        assert!(info.offset >= end, "tensor `{}` overlaps the previous one", info.name);
        end = info.offset.checked_add(info.n_bytes).expect("checked by the reader");
        assert!(end <= data.len(), "tensor `{}` runs past the file", info.name);
        assert_eq!(file.tensor_data(info).len(), info.n_bytes);
        match info.dtype {
            Dtype::F32 => {
                let t = file.read_f32(&info.name).expect("an F32 tensor reads");
                assert_eq!(t.as_slice().len().max(1), info.n_elements().max(1));
                assert!(matches!(file.read_i64(&info.name), Err(Error::UnsupportedTensorType { .. })));
            }
            Dtype::I64 => {
                let v = file.read_i64(&info.name).expect("an I64 tensor reads");
                assert_eq!(v.len(), info.n_elements());
            }
            _ => {
                assert!(matches!(file.read_f32(&info.name), Err(Error::UnsupportedTensorType { .. })));
            }
        }
    }
});
