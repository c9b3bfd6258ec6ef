//! Handmade files: a valid one, and every way of breaking it.

use super::*;

/// A file from a JSON header and a data section.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Two tensors: `w` F32 [2, 2] = 1, 2, 3, 4 and `pos` I64 [1, 3] = 0, 1, 2.
fn valid() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"pos":{"dtype":"I64","shape":[1,3],"data_offsets":[16,40]}}"#;
    let mut data = Vec::new();
    for v in [1f32, 2., 3., 4.] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0i64, 1, 2] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    file(header, &data)
}

#[test]
fn reads_f32_and_i64() {
    let f = SafetensorsFile::from_bytes(valid()).unwrap();
    assert_eq!(f.tensors().len(), 2);
    let w = f.read_f32("w").unwrap();
    assert_eq!(w.shape(), &[2, 2]);
    assert_eq!(w.as_slice(), &[1., 2., 3., 4.]);
    assert_eq!(f.read_i64("pos").unwrap(), vec![0, 1, 2]);
    assert_eq!(f.tensor("pos").unwrap().n_elements(), 3);
}

#[test]
fn wrong_dtype_and_missing_tensor_are_typed() {
    let f = SafetensorsFile::from_bytes(valid()).unwrap();
    assert!(matches!(
        f.read_f32("pos"),
        Err(Error::UnsupportedTensorType {
            type_name: "I64",
            ..
        })
    ));
    assert!(matches!(
        f.read_i64("w"),
        Err(Error::UnsupportedTensorType { .. })
    ));
    assert!(matches!(
        f.read_f32("nope"),
        Err(Error::MissingTensor { .. })
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = valid();
    for len in 0..bytes.len() {
        let err = SafetensorsFile::from_bytes(bytes[..len].to_vec()).unwrap_err();
        if len < 8 {
            assert!(matches!(err, Error::Truncated { .. }), "{len}: {err}");
        } else {
            assert!(
                matches!(
                    err,
                    Error::Truncated { .. }
                        | Error::Format { .. }
                        | Error::TensorOutOfBounds { .. }
                ),
                "{len}: {err}"
            );
        }
    }
    // One byte too many is refused too: the tensors must tile the data section.
    let mut long = valid();
    long.push(0);
    assert!(matches!(
        SafetensorsFile::from_bytes(long),
        Err(Error::Format { .. })
    ));
}

#[test]
fn absurd_header_length_is_an_error() {
    let mut bytes = valid();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = SafetensorsFile::from_bytes(bytes).unwrap_err();
    assert!(
        matches!(err, Error::Overflow { .. } | Error::Truncated { .. }),
        "{err}"
    );
}

#[test]
fn huge_offsets_are_out_of_bounds_not_overflow_panics() {
    let max = u64::MAX;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[2],"data_offsets":[0,{max}]}}}}"#);
    let err = SafetensorsFile::from_bytes(file(&header, &[0; 8])).unwrap_err();
    assert!(matches!(err, Error::TensorOutOfBounds { .. }), "{err}");
    let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}}"#;
    let err = SafetensorsFile::from_bytes(file(header, &[0; 8])).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

#[test]
fn corrupt_headers_are_format_errors() {
    let cases = [
        // not JSON
        ("{\"w\":", 8),
        // not an object
        ("[1,2]", 0),
        // no offsets
        (r#"{"w":{"dtype":"F32","shape":[2]}}"#, 8),
        // size does not match the shape
        (
            r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
        ),
        // shape product overflows
        (
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
            8,
        ),
        // a gap before the first tensor
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        ),
        // unknown dtype
        (
            r#"{"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        ),
        // offsets reversed
        (
            r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
            8,
        ),
    ];
    for (header, data_len) in cases {
        let err = SafetensorsFile::from_bytes(file(header, &vec![0; data_len])).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{header}: {err}");
    }
    let mut bad_utf8 = file(r#"{"w":1}"#, &[]);
    bad_utf8[10] = 0xff;
    assert!(SafetensorsFile::from_bytes(bad_utf8).is_err());
}
