//! Bit-exact dequantization of every decodable type against gguf-py.
//!
//! `tests/fixtures/dequant/<TYPE>.bin` holds random blocks of one type and the f32 values the
//! Python `gguf` package (0.19.0, `gguf.quants.dequantize`) decodes them to; Q8_K, which gguf-py
//! does not decode, holds values computed by the generating script from the block layout
//! (`scripts/make-dequant-fixtures.py`; format in the fixture README). Every value must match
//! bit for bit, both through [`dequant::dequantize`] and through a GGUF file holding the blocks.
//! `sizes.txt` is gguf-py's table of block geometry, a second source for the reader's own.

use std::path::PathBuf;

use nanotensor_models::gguf::types::ALL_TYPES;
use nanotensor_models::gguf::{dequant, GgmlType, GgufFile};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dequant")
}

/// One fixture: raw blocks and the expected values.
struct Fixture {
    raw: Vec<u8>,
    expected: Vec<f32>,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads `<name>.bin`: "NTDQ", u32 type id, u32 value count, u32 byte count, the bytes, the
/// values as little-endian f32.
fn load(ty: GgmlType) -> Fixture {
    let path = fixture_dir().join(format!("{}.bin", ty.name()));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..4], b"NTDQ", "{ty}");
    assert_eq!(read_u32(&b, 4), ty.id(), "{ty}");
    let n_values = read_u32(&b, 8) as usize;
    let n_bytes = read_u32(&b, 12) as usize;
    assert_eq!(b.len(), 16 + n_bytes + 4 * n_values, "{ty}: file length");
    let raw = b[16..16 + n_bytes].to_vec();
    let expected = b[16 + n_bytes..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Fixture { raw, expected }
}

/// Index and bit patterns of the first value that differs, if any.
fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, u32, u32)> {
    got.iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits())
        .map(|i| (i, got[i].to_bits(), want[i].to_bits()))
}

fn decodable() -> impl Iterator<Item = GgmlType> {
    ALL_TYPES.into_iter().filter(|t| t.can_dequantize())
}

#[test]
fn every_decodable_type_matches_gguf_py_bit_for_bit() {
    let mut checked = Vec::new();
    for ty in decodable() {
        let f = load(ty);
        assert_eq!(f.expected.len() % ty.block_size(), 0, "{ty}");
        assert!(
            f.expected.len() / ty.block_size() >= 6,
            "{ty}: too few blocks"
        );
        let mut got = vec![f32::NAN; f.expected.len()];
        dequant::dequantize("fixture", ty, &f.raw, &mut got).unwrap();
        if let Some((i, g, w)) = first_difference(&got, &f.expected) {
            panic!(
                "{ty}: value {i} (block {}) is {g:#010x}, gguf-py gives {w:#010x}",
                i / ty.block_size()
            );
        }
        checked.push(ty.name());
    }
    assert_eq!(
        checked,
        [
            "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
            "Q6_K", "Q8_K", "BF16"
        ]
    );
}

/// A GGUF v3 file with one tensor `w` of `rows` rows holding `raw`.
fn gguf_with(ty: GgmlType, raw: &[u8], n_values: usize, rows: usize) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(1u64.to_le_bytes()); // tensors
    f.extend(0u64.to_le_bytes()); // metadata
    f.extend(1u64.to_le_bytes()); // name length
    f.push(b'w');
    f.extend(2u32.to_le_bytes()); // dims, fastest first
    f.extend(((n_values / rows) as u64).to_le_bytes());
    f.extend((rows as u64).to_le_bytes());
    f.extend(ty.id().to_le_bytes());
    f.extend(0u64.to_le_bytes()); // offset
    f.resize(f.len().div_ceil(32) * 32, 0);
    f.extend(raw);
    f
}

#[test]
fn a_gguf_file_of_the_fixture_blocks_decodes_the_same_by_tensor_and_by_row() {
    for ty in decodable() {
        let f = load(ty);
        let n = f.expected.len();
        // Two rows (every fixture has an even number of blocks).
        let file = GgufFile::from_bytes(gguf_with(ty, &f.raw, n, 2)).unwrap();
        let info = file.tensor("w").unwrap();
        assert_eq!(
            (info.ggml_type, info.shape.as_slice()),
            (ty, &[2, n / 2][..])
        );
        let all = file.dequantize("w").unwrap();
        assert_eq!(first_difference(all.as_slice(), &f.expected), None, "{ty}");
        let mut row = vec![f32::NAN; n / 2];
        file.dequantize_rows("w", 1..2, &mut row).unwrap();
        assert_eq!(
            first_difference(&row, &f.expected[n / 2..]),
            None,
            "{ty} row 1"
        );
    }
}

#[test]
fn block_geometry_agrees_with_gguf_py_except_q8_1() {
    let text = std::fs::read_to_string(fixture_dir().join("sizes.txt")).unwrap();
    let mut seen = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (id, block, size): (u32, usize, usize) = (
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        let ty =
            GgmlType::from_id(id).unwrap_or_else(|| panic!("gguf-py's {} (id {id}) unknown", f[0]));
        assert_eq!(ty.name(), f[0]);
        if ty == GgmlType::Q8_1 {
            // gguf-py lists two f32 fields (40 bytes); ggml's block_q8_1 has two f16 (36).
            assert_eq!((block, size), (32, 40));
            assert_eq!((ty.block_size(), ty.type_size()), (32, 36));
        } else {
            assert_eq!((ty.block_size(), ty.type_size()), (block, size), "{ty}");
        }
        seen.push(ty);
    }
    // The reader knows exactly gguf-py's types.
    seen.sort();
    let mut all = ALL_TYPES.to_vec();
    all.sort();
    assert_eq!(seen, all);
}
