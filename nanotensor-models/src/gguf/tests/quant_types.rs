//! Every ggml type through the reader: files with any known type open and list it by name;
//! the types without a dequantizer are refused by name; corrupt and truncated k-quant tensors
//! are typed errors naming the tensor.

use super::*;
use crate::gguf::types::ALL_TYPES;

/// A file with one tensor `t_<NAME>` of one block (one row) of each known type, every byte 0.
fn one_of_each() -> Builder {
    let mut b = Builder::new();
    let mut offset = 0usize;
    for ty in ALL_TYPES {
        let name = format!("t_{}", ty.name());
        b = b.tensor(&name, &[ty.block_size() as u64], ty.id(), offset as u64);
        offset += ty.type_size().div_ceil(32) * 32;
    }
    b.data(&vec![0u8; offset])
}

#[test]
fn every_known_type_opens_and_is_listed_by_name() {
    let f = parse(one_of_each().build()).unwrap();
    let summary = f.summary();
    let listed: Vec<&str> = summary.by_type.iter().map(|t| t.ggml_type.name()).collect();
    let mut expected: Vec<GgmlType> = ALL_TYPES.to_vec();
    expected.sort_by_key(|t| t.id());
    let expected: Vec<&str> = expected.iter().map(|t| t.name()).collect();
    assert_eq!(listed, expected);
    let text = summary.to_string();
    for ty in ALL_TYPES {
        assert!(text.contains(ty.name()), "{ty} missing from:\n{text}");
    }
}

#[test]
fn dequantize_decodes_or_refuses_each_type_by_name() {
    let f = parse(one_of_each().build()).unwrap();
    for ty in ALL_TYPES {
        let name = format!("t_{}", ty.name());
        let mut row = vec![f32::NAN; ty.block_size()];
        if ty.can_dequantize() {
            // Zero bytes: zero scales (or zero floats) decode to zeros.
            assert!(f
                .dequantize(&name)
                .unwrap()
                .as_slice()
                .iter()
                .all(|&x| x == 0.0));
            f.dequantize_rows(&name, 0..1, &mut row).unwrap();
            assert!(row.iter().all(|&x| x == 0.0), "{ty}");
            continue;
        }
        for e in [
            f.dequantize(&name).unwrap_err(),
            f.dequantize_rows(&name, 0..1, &mut row).unwrap_err(),
        ] {
            assert!(
                matches!(&e, Error::UnsupportedTensorType { tensor, type_name, .. }
                    if *tensor == name && *type_name == ty.name()),
                "{ty}: {e}"
            );
        }
    }
}

#[test]
fn a_nan_scale_in_a_k_quant_row_names_the_tensor_and_block() {
    // Q4_K [2, 512]: four super-blocks; block 3 (row 1, second block) has d = NaN.
    let mut data = vec![0u8; 4 * 144];
    data[3 * 144..3 * 144 + 2].copy_from_slice(&0x7E00u16.to_le_bytes());
    let b = Builder::new()
        .tensor("blk.3.attn_v.weight", &[512, 2], GgmlType::Q4_K.id(), 0)
        .data(&data);
    let f = parse(b.build()).unwrap();
    let is_block_3 = |e: &Error| matches!(e, Error::CorruptBlock { tensor, block: 3, .. } if tensor == "blk.3.attn_v.weight");
    let e = f.dequantize("blk.3.attn_v.weight").unwrap_err();
    assert!(is_block_3(&e), "{e}");
    let mut row = vec![0f32; 512];
    f.dequantize_rows("blk.3.attn_v.weight", 0..1, &mut row)
        .unwrap();
    let e = f
        .dequantize_rows("blk.3.attn_v.weight", 1..2, &mut row)
        .unwrap_err();
    assert!(is_block_3(&e), "{e}");
}

#[test]
fn truncated_super_blocks_are_typed_errors_naming_the_tensor() {
    // A row of 300 values is not a whole number of 256-value super-blocks.
    for ty in [GgmlType::Q2_K, GgmlType::Q6_K, GgmlType::IQ2_XXS] {
        let b = Builder::new()
            .tensor("w", &[300], ty.id(), 0)
            .data(&[0; 512]);
        let e = parse(b.build()).unwrap_err();
        assert!(
            matches!(&e, Error::Format { reason, .. } if reason.contains("`w`") && reason.contains(ty.name())),
            "{ty}: {e}"
        );
    }
    // A Q5_K super-block (176 bytes) with only 100 bytes of data section.
    let b = Builder::new()
        .tensor("w5", &[256], GgmlType::Q5_K.id(), 0)
        .data(&[0; 100]);
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(&e, Error::TensorOutOfBounds { tensor, n_bytes: 176, .. } if tensor == "w5"),
        "{e}"
    );
    // 2^20 rows of 2^50 Q4_K super-blocks: the byte size overflows and is refused, named.
    let b = Builder::new()
        .tensor("huge", &[256 << 50, 1 << 20], GgmlType::Q4_K.id(), 0)
        .data(&[0; 64]);
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(&e, Error::Overflow { what, .. } if what.contains("`huge`")),
        "{e}"
    );
}
