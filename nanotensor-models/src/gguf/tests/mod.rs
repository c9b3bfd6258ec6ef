//! Tests of the reader on small hand-made files: a well-formed file exercising every value
//! type, then one test per way a file can be malformed. Expected values are written out by hand.

use super::*;

mod quant_types;

/// Value-type tags (GGUF spec).
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// A GGUF string: u64 length, bytes.
fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u64).to_le_bytes().to_vec();
    v.extend(x.as_bytes());
    v
}

/// An array payload: element tag, u64 count, the encoded elements.
fn arr(tag: u32, count: u64, items: &[u8]) -> Vec<u8> {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend(count.to_le_bytes());
    v.extend(items);
    v
}

/// Builds GGUF files piece by piece; counts can be overridden to lie.
struct Builder {
    magic: [u8; 4],
    version: u32,
    kvs: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    alignment: usize,
    data: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            magic: *b"GGUF",
            version: 3,
            kvs: vec![],
            n_kv: 0,
            infos: vec![],
            n_tensors: 0,
            alignment: 32,
            data: vec![],
        }
    }

    /// A metadata pair: key, value tag, encoded value.
    fn kv(mut self, key: &str, tag: u32, value: &[u8]) -> Self {
        self.kvs.extend(s(key));
        self.kvs.extend(tag.to_le_bytes());
        self.kvs.extend(value);
        self.n_kv += 1;
        self
    }

    /// A tensor info; `dims` in GGUF order (fastest first), `offset` relative to the data.
    fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        self.infos.extend(s(name));
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(type_id.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    fn data(mut self, bytes: &[u8]) -> Self {
        self.data.extend(bytes);
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut f = self.magic.to_vec();
        f.extend(self.version.to_le_bytes());
        f.extend(self.n_tensors.to_le_bytes());
        f.extend(self.n_kv.to_le_bytes());
        f.extend(&self.kvs);
        f.extend(&self.infos);
        f.resize(f.len().div_ceil(self.alignment) * self.alignment, 0);
        f.extend(&self.data);
        f
    }
}

fn f32s(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A well-formed file: every value type, a nested array, and three tensors
/// (F32 [2, 3], Q8_0 [2, 32], Q4_1 [32]) with hand-chosen contents.
fn sample() -> Builder {
    let tokens: Vec<u8> = ["<s>", "a", "é"].iter().flat_map(|t| s(t)).collect();
    let ids: Vec<u8> = [-1i32, 0, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
    let inner1 = arr(T_U16, 2, &[1, 0, 2, 0]);
    let inner2 = arr(T_STRING, 1, &s("x"));
    let nested = arr(T_ARRAY, 2, &[inner1, inner2].concat());

    // Tensor data: "a" at 0 (24 bytes, padded to 32), "b" at 32 (68 bytes), "c" at 128 (20).
    let mut data = f32s(&[1.0, 2.0, 3.0, -4.0, 5.5, 0.25]);
    data.resize(32, 0);
    for (d, q0) in [(0x3800u16, 1i8), (0x4000, -3)] {
        // Q8_0 block: d = 0.5 then 2.0; q[j] = q0 + j.
        data.extend(d.to_le_bytes());
        data.extend((0..32).map(|j| (q0 + j as i8) as u8));
    }
    data.resize(128, 0);
    data.extend(0x3400u16.to_le_bytes()); // Q4_1 d = 0.25
    data.extend(0x3C00u16.to_le_bytes()); // m = 1.0
    data.extend([0x21u8; 16]); // lo 1, hi 2

    Builder::new()
        .kv("general.architecture", T_STRING, &s("llama"))
        .kv("llama.block_count", T_U32, &2u32.to_le_bytes())
        .kv("llama.context_length", T_U64, &8192u64.to_le_bytes())
        .kv("llama.rope.freq_base", T_F32, &100000f32.to_le_bytes())
        .kv("test.f64", T_F64, &0.125f64.to_le_bytes())
        .kv("test.i32", T_I32, &(-5i32).to_le_bytes())
        .kv("test.i64", T_I64, &(1i64 << 40).to_le_bytes())
        .kv("test.u8", T_U8, &[200])
        .kv("test.i8", T_I8, &[0xFF])
        .kv("test.u16", T_U16, &513u16.to_le_bytes())
        .kv("test.i16", T_I16, &(-300i16).to_le_bytes())
        .kv("test.bool", T_BOOL, &[1])
        .kv("tokenizer.ggml.tokens", T_ARRAY, &arr(T_STRING, 3, &tokens))
        .kv("tokenizer.ggml.token_type", T_ARRAY, &arr(T_I32, 3, &ids))
        .kv("test.nested", T_ARRAY, &nested)
        .tensor("a", &[3, 2], 0, 0)
        .tensor("b", &[32, 2], 8, 32)
        .tensor("c", &[32], 3, 128)
        .data(&data)
}

/// Under Miri (slow), the exhaustive loops below visit every `MIRI_STRIDE`-th position only.
const MIRI_STRIDE: usize = if cfg!(miri) { 9 } else { 1 };

fn parse(bytes: Vec<u8>) -> Result<GgufFile> {
    GgufFile::from_bytes(bytes)
}

#[test]
fn reads_every_value_type() {
    let f = parse(sample().build()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata().len(), 15);
    assert_eq!(f.metadata()[0].0, "general.architecture");
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(f.get_u64("llama.context_length").unwrap(), 8192);
    assert_eq!(f.get_u32("llama.context_length").unwrap(), 8192); // u64 that fits
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(f.get_f32("test.f64").unwrap(), 0.125);
    assert_eq!(f.get_i64("test.i32").unwrap(), -5);
    assert_eq!(f.get_u64("test.i64").unwrap(), 1 << 40);
    assert_eq!(f.get("test.u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("test.i8"), Some(&Value::I8(-1)));
    assert_eq!(f.get("test.u16"), Some(&Value::U16(513)));
    assert_eq!(f.get("test.i16"), Some(&Value::I16(-300)));
    assert!(f.get_bool("test.bool").unwrap());
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap(),
        ["<s>", "a", "é"]
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type").unwrap(),
        [-1, 0, 7]
    );
    let nested = Array::Array(vec![
        Array::U16(vec![1, 2]),
        Array::String(vec!["x".into()]),
    ]);
    assert_eq!(f.get("test.nested"), Some(&Value::Array(nested)));
}

#[test]
fn getter_errors_name_the_key() {
    let f = parse(sample().build()).unwrap();
    let e = f.get_u32("llama.missing").unwrap_err();
    assert!(
        matches!(&e, Error::MissingKey { key, .. } if key == "llama.missing"),
        "{e}"
    );
    assert!(e.to_string().contains("llama.missing"));
    for e in [
        f.get_u32("general.architecture").unwrap_err(), // a string
        f.get_u32("test.i32").unwrap_err(),             // negative
        f.get_u32("test.i64").unwrap_err(),             // 2^40 does not fit
        f.get_str("llama.block_count").unwrap_err(),
        f.get_f32("llama.block_count").unwrap_err(),
        f.get_bool("test.u8").unwrap_err(),
        f.get_str_array("tokenizer.ggml.token_type").unwrap_err(),
        f.get_i32_array("tokenizer.ggml.tokens").unwrap_err(),
    ] {
        assert!(matches!(e, Error::KeyType { .. }), "{e}");
    }
    let e = f.get_u32("general.architecture").unwrap_err();
    assert!(
        e.to_string().contains("`general.architecture`") && e.to_string().contains("string"),
        "{e}"
    );
}

#[test]
fn tensors_have_row_major_shapes_and_dequantize() {
    let f = parse(sample().build()).unwrap();
    let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let a = f.tensor("a").unwrap();
    assert_eq!(
        (a.shape.as_slice(), a.ggml_type, a.n_bytes),
        (&[2, 3][..], GgmlType::F32, 24)
    );
    assert_eq!(a.offset, f.data_offset());
    assert_eq!(f.data_offset() % 32, 0);
    let b = f.tensor("b").unwrap();
    assert_eq!(
        (b.shape.as_slice(), b.ggml_type, b.n_bytes),
        (&[2, 32][..], GgmlType::Q8_0, 68)
    );
    assert_eq!(b.offset, f.data_offset() + 32);
    assert_eq!(f.tensor_data(b).len(), 68);
    assert_eq!(f.n_params(), 6 + 64 + 32);
    assert!(matches!(f.tensor("zz"), Err(Error::MissingTensor { .. })));

    let ta = f.dequantize("a").unwrap();
    assert_eq!(ta.shape(), [2, 3]);
    assert_eq!(ta.as_slice(), [1.0, 2.0, 3.0, -4.0, 5.5, 0.25]);
    let tb = f.dequantize("b").unwrap();
    for j in 0..32 {
        assert_eq!(tb.as_slice()[j], 0.5 * (1.0 + j as f32));
        assert_eq!(tb.as_slice()[32 + j], 2.0 * (-3.0 + j as f32));
    }
    let tc = f.dequantize("c").unwrap();
    assert_eq!(&tc.as_slice()[..16], [1.25; 16]); // 0.25·1 + 1
    assert_eq!(&tc.as_slice()[16..], [1.5; 16]); // 0.25·2 + 1

    let mut row = vec![0f32; 32];
    f.dequantize_rows("b", 1..2, &mut row).unwrap();
    assert_eq!(row, tb.as_slice()[32..]);
    let mut rows = vec![0f32; 6];
    f.dequantize_rows("a", 0..2, &mut rows).unwrap();
    assert_eq!(rows, ta.as_slice());
    assert!(matches!(
        f.dequantize_rows("b", 1..3, &mut [0f32; 64]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        f.dequantize_rows("b", 0..1, &mut [0f32; 31]),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn summary_totals_by_type() {
    let sum = parse(sample().build()).unwrap().summary();
    assert_eq!(sum.architecture.as_deref(), Some("llama"));
    assert_eq!(sum.n_params, 102);
    assert_eq!(sum.tensor_bytes, 24 + 68 + 20);
    let hyper: Vec<&str> = sum
        .hyperparameters
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        hyper,
        [
            "llama.block_count",
            "llama.context_length",
            "llama.rope.freq_base"
        ]
    );
    let types: Vec<(GgmlType, usize)> = sum
        .by_type
        .iter()
        .map(|t| (t.ggml_type, t.n_tensors))
        .collect();
    assert_eq!(
        types,
        [(GgmlType::F32, 1), (GgmlType::Q4_1, 1), (GgmlType::Q8_0, 1)]
    );
    let text = sum.to_string();
    assert!(text.contains("parameters:    102 in 3 tensors"), "{text}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot mmap a file")]
fn open_maps_a_file_from_disk() {
    let path = std::env::temp_dir().join(format!("nanotensor-gguf-{}.gguf", std::process::id()));
    std::fs::write(&path, sample().build()).unwrap();
    let opened = GgufFile::open(&path);
    let _ = std::fs::remove_file(&path);
    let f = opened.unwrap();
    assert_eq!(f.path(), Some(path.as_path()));
    assert_eq!(
        f.dequantize("a").unwrap().as_slice(),
        [1.0, 2.0, 3.0, -4.0, 5.5, 0.25]
    );
    let missing = GgufFile::open(path.with_extension("absent")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn version_2_reads_and_alignment_key_is_honoured() {
    let mut b = sample();
    b.version = 2;
    assert_eq!(parse(b.build()).unwrap().version(), 2);
    // With alignment 64 the data section starts on a multiple of 64 and offset 32 is misaligned.
    let mut b = Builder::new()
        .kv("general.alignment", T_U32, &64u32.to_le_bytes())
        .tensor("x", &[8], 0, 0)
        .data(&f32s(&[1.0; 8]));
    b.alignment = 64;
    let f = parse(b.build()).unwrap();
    assert_eq!((f.alignment(), f.data_offset() % 64), (64, 0));
    assert_eq!(f.dequantize("x").unwrap().as_slice(), [1.0; 8]);
}

// ---- malformed files: one typed error each, never a panic -------------------------------------

#[test]
fn every_truncation_is_an_error() {
    let full = sample().build();
    let data_start = parse(full.clone()).unwrap().data_offset();
    // Cut the file at every length: inside the header/metadata/infos it is `Truncated`; inside
    // the padding or data the last tensor no longer fits (`TensorOutOfBounds`).
    // Each parse takes about a second under Miri: there, a prime stride of 41 still cuts inside
    // the header, the metadata, the tensor infos and the data, at varying offsets in each field.
    let stride = if cfg!(miri) { 41 } else { 1 };
    for len in (0..full.len()).step_by(stride) {
        match parse(full[..len].to_vec()) {
            Err(Error::Truncated { file_len, .. }) => assert_eq!(file_len, len as u64),
            Err(Error::TensorOutOfBounds { .. }) => assert!(len >= data_start - 31, "len {len}"),
            other => panic!("cut at {len}: {other:?}"),
        }
    }
}

#[test]
fn wrong_magic() {
    let mut b = sample();
    b.magic = *b"GGML";
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(e, Error::BadMagic { found, .. } if &found == b"GGML"),
        "{e}"
    );
}

#[test]
fn unknown_versions() {
    for v in [0, 1, 4, 0x0300_0000 /* big-endian v3 */] {
        let mut b = sample();
        b.version = v;
        let e = parse(b.build()).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedVersion { version, .. } if version == v),
            "{e}"
        );
    }
}

#[test]
fn tensor_past_the_end() {
    let b = Builder::new()
        .tensor("x", &[8], 0, 32)
        .data(&f32s(&[0.0; 8]));
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(&e, Error::TensorOutOfBounds { tensor, offset: 32, n_bytes: 32, data_len: 32, .. } if tensor == "x"),
        "{e}"
    );
    // An offset near 2^64 must not overflow the bounds check.
    let b = Builder::new()
        .tensor("x", &[8], 0, u64::MAX - 31)
        .data(&f32s(&[0.0; 8]));
    assert!(matches!(
        parse(b.build()),
        Err(Error::TensorOutOfBounds { .. })
    ));
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let huge = 1u64 << 63;
    // Tensor count and metadata count of 2^63.
    let mut b = sample();
    b.n_tensors = huge;
    assert!(matches!(
        parse(b.build()),
        Err(Error::Truncated {
            needed: u64::MAX,
            ..
        })
    ));
    let mut b = sample();
    b.n_kv = huge;
    assert!(matches!(parse(b.build()), Err(Error::Truncated { .. })));
    // A key string claiming 2^63 bytes.
    let mut kv = huge.to_le_bytes().to_vec();
    kv.extend(b"key");
    let mut b = Builder::new();
    b.kvs = kv;
    b.n_kv = 1;
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { needed, .. } if needed == huge),
        "{e}"
    );
    // Arrays of 2^63 bytes, 2^62 strings (2^65 bytes at least) and 2^63 nested arrays.
    for (tag, n) in [
        (T_U8, huge),
        (T_STRING, 1 << 62),
        (T_ARRAY, huge),
        (T_U64, u64::MAX),
    ] {
        let b = Builder::new().kv("big", T_ARRAY, &arr(tag, n, &[0; 64]));
        let e = parse(b.build()).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "tag {tag}: {e}");
    }
    // A value string of 2^63 bytes inside an array element.
    let b = Builder::new().kv("v", T_ARRAY, &arr(T_STRING, 1, &huge.to_le_bytes()));
    assert!(matches!(parse(b.build()), Err(Error::Truncated { .. })));
}

#[test]
fn unknown_tensor_type() {
    // Removed types, a retired interleaved layout, the id after the last known one.
    for id in [4u32, 5, 31, 36, 42, 999] {
        let b = Builder::new().tensor("w", &[32], id, 0).data(&[0; 64]);
        let e = parse(b.build()).unwrap_err();
        assert!(
            matches!(&e, Error::UnknownTensorType { tensor, type_id, .. } if tensor == "w" && *type_id == id),
            "{e}"
        );
    }
}

#[test]
fn misaligned_offset() {
    let b = Builder::new()
        .tensor("a", &[4], 0, 0)
        .tensor("b", &[4], 0, 16)
        .data(&[0; 64]);
    let e = parse(b.build()).unwrap_err();
    assert!(
        matches!(&e, Error::Misaligned { tensor, offset: 16, alignment: 32, .. } if tensor == "b"),
        "{e}"
    );
    // The same offset is fine when the file declares alignment 16.
    let b = Builder::new()
        .kv("general.alignment", T_U32, &16u32.to_le_bytes())
        .tensor("a", &[4], 0, 0)
        .tensor("b", &[4], 0, 16)
        .data(&[0; 64]);
    assert_eq!(parse(b.build()).unwrap().tensor("b").unwrap().n_bytes, 16);
}

/// Asserts that `e` is [`Error::Overflow`] naming tensor `name` and mentioning `quantity`.
fn assert_overflow(e: &Error, name: &str, quantity: &str) {
    match e {
        Error::Overflow {
            what, quantity: q, ..
        } => {
            assert_eq!(what, &format!("tensor `{name}`"), "{e}");
            assert!(q.contains(quantity), "`{quantity}` not in: {e}");
        }
        _ => panic!("expected an overflow of tensor `{name}`, got: {e}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(name) && msg.ends_with("overflows"), "{msg}");
}

#[test]
fn dimensions_whose_product_overflows() {
    // 2^40 · 2^40 elements; 2^61 F64 elements = 2^64 bytes; a dimension of 2^64 − 1; 2^64 bytes.
    for (dims, ty, quantity) in [
        (
            &[1u64 << 40, 1 << 40][..],
            0u32,
            "element count of shape [1099511627776, 1099511627776]",
        ),
        (&[1 << 61][..], 28, "F64 byte size of a row"),
        (&[32, u64::MAX][..], 8, "element count"),
        // 2^62 elements fit, but 2^31 rows of 2^33 bytes do not.
        (&[1 << 31, 1 << 31][..], 0, "the F32 byte size of shape"),
    ] {
        let b = Builder::new().tensor("big", dims, ty, 0).data(&[0; 64]);
        let e = parse(b.build()).unwrap_err();
        assert_overflow(&e, "big", quantity);
    }
}

#[test]
fn a_zero_dimension_does_not_hide_an_overflowing_product() {
    // Shape [2^40, 2^40, 0] holds no values, but multiplying its dimensions in row-major order
    // overflows before reaching the zero (what the fuzzer found, through the summary); so does
    // its row count [2^40, 2^40] with a zero-length row.
    for dims in [&[0, 1u64 << 40, 1 << 40][..], &[1 << 40, 1 << 40, 0][..]] {
        let b = Builder::new()
            .tensor("ok", &[4], 0, 0)
            .tensor("empty", dims, 0, 0)
            .data(&[0; 64]);
        let e = parse(b.build()).unwrap_err();
        assert_overflow(&e, "empty", "element count");
    }
    // A zero dimension beside dimensions whose product fits is a valid empty tensor.
    let b = Builder::new()
        .tensor("empty", &[0, 1 << 20, 1 << 20], 0, 0)
        .data(&[0; 64]);
    let f = parse(b.build()).unwrap();
    let t = f.tensor("empty").unwrap();
    assert_eq!((t.n_elements(), t.n_rows(), t.n_bytes), (0, 1 << 40, 0));
    assert_eq!(f.n_params(), 0);
}

#[test]
fn totals_over_tensors_sharing_bytes_are_checked() {
    // Tensors may share bytes, so the totals are sums the reader checks itself (overflowing
    // them takes more bytes than a test can hold); here two I8 tensors share one block.
    let b = Builder::new()
        .tensor("a", &[8], 24, 0)
        .tensor("b", &[8], 24, 0)
        .data(&[0; 32]);
    let f = parse(b.build()).unwrap();
    assert_eq!((f.n_params(), f.tensor_bytes()), (16, 16));
    assert_eq!(f.summary().n_params, 16);
}

#[test]
fn the_fuzzer_regressions_are_overflow_errors() {
    // Two inputs found by the gguf fuzz target: tensor `e` has shape
    // [81604420608, 824633720834, 0] (then [864691128455135231, 824633720834, 0]).
    for bytes in [
        &include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/fuzz-regressions/crash-0e273eef5be1ae6d0e7b761431407d0c3f14e779"
        ))[..],
        &include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/fuzz-regressions/crash-d96a2decf165850d46ef5962ff5e1c8815535611"
        ))[..],
    ] {
        let e = GgufFile::from_bytes(bytes.to_vec()).unwrap_err();
        assert_overflow(&e, "e", "element count");
    }
}

#[test]
fn an_empty_tensor_past_the_end_of_a_truncated_file_is_out_of_bounds() {
    // Found by the gguf fuzz target: the header ends 3 bytes before the next multiple of the
    // alignment, so the data section starts past the end of the file, and tensor `a` has zero
    // bytes at relative offset 0 — an empty range that still lies outside the file.
    let bytes = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/fuzz-regressions/crash-06b7e07ef7e3fe027f11e4d683b966aba5c530bf"
    ));
    match GgufFile::from_bytes(bytes.to_vec()) {
        Err(Error::TensorOutOfBounds { tensor, .. }) => assert_eq!(tensor, "a"),
        other => panic!("expected TensorOutOfBounds for `a`, got {other:?}"),
    }
}

#[test]
fn other_malformations_are_format_errors() {
    let cases: Vec<(&str, Builder)> = vec![
        ("bool byte 2", Builder::new().kv("b", T_BOOL, &[2])),
        (
            "invalid UTF-8",
            Builder::new().kv("s", T_STRING, &[2, 0, 0, 0, 0, 0, 0, 0, 0xC3, 0x28]),
        ),
        ("unknown value type", Builder::new().kv("k", 13, &[0; 8])),
        (
            "duplicate key",
            Builder::new().kv("k", T_U8, &[1]).kv("k", T_U8, &[2]),
        ),
        (
            "alignment 0",
            Builder::new().kv("general.alignment", T_U32, &0u32.to_le_bytes()),
        ),
        (
            "alignment 24",
            Builder::new().kv("general.alignment", T_U32, &24u32.to_le_bytes()),
        ),
        (
            "5 dimensions",
            Builder::new()
                .tensor("t", &[1, 1, 1, 1, 1], 0, 0)
                .data(&[0; 32]),
        ),
        (
            "0 dimensions",
            Builder::new().tensor("t", &[], 0, 0).data(&[0; 32]),
        ),
        (
            "partial block",
            Builder::new().tensor("t", &[31], 8, 0).data(&[0; 64]),
        ),
        (
            "duplicate tensor",
            Builder::new()
                .tensor("t", &[1], 0, 0)
                .tensor("t", &[1], 0, 0)
                .data(&[0; 32]),
        ),
    ];
    for (what, b) in cases {
        match parse(b.build()) {
            Err(Error::Format { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // A mistyped alignment is a key-type error naming the key.
    let b = Builder::new().kv("general.alignment", T_STRING, &s("32"));
    assert!(
        matches!(parse(b.build()), Err(Error::KeyType { key, .. }) if key == "general.alignment")
    );
}

#[test]
fn deep_nesting_is_refused_without_recursing_forever() {
    // 10,000 nested array headers (200 under Miri), each declaring one array element.
    let mut payload = Vec::new();
    for _ in 0..if cfg!(miri) { 200 } else { 10_000 } {
        payload.extend(T_ARRAY.to_le_bytes());
        payload.extend(1u64.to_le_bytes());
    }
    let b = Builder::new().kv("deep", T_ARRAY, &payload);
    assert!(matches!(parse(b.build()), Err(Error::Format { .. })));
}

#[test]
#[cfg_attr(miri, ignore = "minutes under Miri; the gguf fuzz target covers it")]
fn no_single_byte_corruption_panics() {
    // Set every byte of the sample file to a few values; each variant must parse or fail with
    // an error, and a variant that parses must survive every accessor.
    let full = sample().build();
    let mut parsed = 0;
    for i in (0..full.len()).step_by(MIRI_STRIDE) {
        for v in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
            if full[i] == v {
                continue;
            }
            let mut bytes = full.clone();
            bytes[i] = v;
            let Ok(f) = parse(bytes) else { continue };
            parsed += 1;
            let _ = f.summary().to_string();
            for key in ["llama.block_count", "tokenizer.ggml.tokens", "test.nested"] {
                let _ = (f.get_u32(key), f.get_str_array(key), f.get_i32_array(key));
            }
            for t in f.tensors() {
                assert_eq!(f.tensor_data(t).len(), t.n_bytes);
                let _ = f.dequantize(&t.name);
                let mut row = vec![0f32; t.row_len()];
                let _ = f.dequantize_rows(
                    &t.name,
                    0..t.n_rows().min(1),
                    &mut row[..t.n_rows().min(1) * t.row_len()],
                );
            }
        }
    }
    // Corrupting tensor data or padding leaves the file valid, so many variants still parse.
    assert!(parsed > 100 / MIRI_STRIDE, "only {parsed} variants parsed");
}

#[test]
fn an_open_file_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GgufFile>();
}
