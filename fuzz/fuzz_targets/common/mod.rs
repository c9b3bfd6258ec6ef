//! Checks shared by the fuzz targets: a GGUF file the reader accepted must be self-consistent.
//!
//! Everything is recomputed here in `u128` from the shape and the element type's block geometry,
//! independently of the reader's own arithmetic, so a reader that wraps, truncates or skips a
//! check disagrees with it (instead of merely not panicking).

use nanotensor::gguf::GgufFile;

/// Product of `dims` in `u128`, or `None` when even that overflows.
fn product(dims: &[usize]) -> Option<u128> {
    dims.iter().try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
}

/// Asserts that `file`, parsed from `data`, describes only tensors that are addressable and lie
/// inside the file, with element counts, row counts and byte sizes that match the shape and the
/// element type, and totals that match the per-tensor values.
pub fn assert_gguf_consistent(data: &[u8], file: &GgufFile) {
    let file_len = data.len() as u128;
    assert_eq!(file.file_size(), data.len(), "file size");
    let alignment = file.alignment();
    assert!(alignment.is_power_of_two(), "alignment {alignment}");
    let (mut n_params, mut tensor_bytes) = (0u128, 0u128);
    for info in file.tensors() {
        let name = &info.name;
        let shape = &info.shape;
        assert!(!shape.is_empty(), "`{name}`: empty shape");
        // Every order of multiplying the shape fits in usize: the nonzero dimensions' product does.
        let nonzero: Vec<usize> = shape.iter().copied().filter(|&d| d != 0).collect();
        let nonzero_product = product(&nonzero);
        assert!(
            nonzero_product.is_some_and(|p| p <= usize::MAX as u128),
            "`{name}`: shape {shape:?} is accepted but its product overflows usize"
        );
        let n_elements = product(shape).expect("bounded by the nonzero product");
        assert_eq!(info.n_elements() as u128, n_elements, "`{name}`: n_elements of {shape:?}");
        let (&row_len, outer) = shape.split_last().expect("non-empty");
        assert_eq!(info.row_len(), row_len, "`{name}`: row_len");
        let n_rows = product(outer).expect("bounded by the nonzero product");
        assert_eq!(info.n_rows() as u128, n_rows, "`{name}`: n_rows of {shape:?}");
        // Block arithmetic: whole blocks per row, type_size bytes per block.
        let ty = info.ggml_type;
        assert_eq!(row_len % ty.block_size(), 0, "`{name}`: a row of {row_len} {ty} values");
        let row_bytes = (row_len / ty.block_size()) as u128 * ty.type_size() as u128;
        assert_eq!(info.row_bytes() as u128, row_bytes, "`{name}`: row_bytes of {ty}");
        let n_bytes = n_rows
            .checked_mul(row_bytes)
            .unwrap_or_else(|| panic!("`{name}`: accepted, but {n_rows} rows of {row_bytes} bytes overflow u128"));
        assert_eq!(info.n_bytes as u128, n_bytes, "`{name}`: n_bytes of {shape:?} {ty}");
        // The bytes lie inside the file, in the data section, at an aligned offset.
        let offset = info.offset as u128;
        assert!(
            offset + n_bytes <= file_len,
            "`{name}`: bytes {offset}..{} past the file's {file_len}",
            offset + n_bytes
        );
        assert!(info.offset >= file.data_offset(), "`{name}`: offset before the data section");
        assert_eq!(
            (info.offset - file.data_offset()) % alignment,
            0,
            "`{name}`: misaligned offset"
        );
        assert_eq!(file.tensor_data(info).len() as u128, n_bytes, "`{name}`: tensor_data");
        n_params += n_elements;
        tensor_bytes += n_bytes;
    }
    assert_eq!(file.n_params() as u128, n_params, "n_params");
    assert_eq!(file.tensor_bytes() as u128, tensor_bytes, "tensor_bytes");
    let summary = file.summary();
    assert_eq!(summary.n_params as u128, n_params, "summary n_params");
    assert_eq!(summary.tensor_bytes as u128, tensor_bytes, "summary tensor_bytes");
    for (s, info) in summary.tensors.iter().zip(file.tensors()) {
        assert_eq!(s.n_elements, info.n_elements() as u64, "summary of `{}`", info.name);
        assert_eq!(s.n_bytes, info.n_bytes as u64, "summary of `{}`", info.name);
    }
}
