//! Arbitrary f32 bit patterns → `QTensor::quantize_slice` → a typed error exactly when some value
//! is NaN or infinite; otherwise every code is in [-127, 127] and every element is reconstructed
//! within half its group's scale: |x − s·q| ≤ s/2 (plus one f32 rounding of x·(1/s) and of s·q).
//! A group flushed to scale 0 (its scale would be subnormal) holds only values below
//! 127 · `f32::MIN_POSITIVE` in magnitude.
//!
//! The same bytes are also read as a GGUF file, the quantizer's other source of tensors: one the
//! reader accepts must be self-consistent (`common::assert_gguf_consistent`), and each small
//! tensor that dequantizes to finite values quantizes to exactly its element count of codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanotensor::gguf::GgufFile;
use nanotensor::quant::{Granularity, QTensor};
use nanotensor::Error;

mod common;

/// Tensors with more elements than this are not quantized (bounds time, not correctness).
const MAX_QUANT_ELEMENTS: usize = 1 << 16;

/// The tensors of a GGUF file, when the bytes are one, through the quantizer.
fn from_gguf(data: &[u8]) {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    common::assert_gguf_consistent(data, &file);
    for info in file.tensors() {
        if info.n_elements() == 0 || info.n_elements() > MAX_QUANT_ELEMENTS {
            continue;
        }
        let Ok(t) = file.dequantize(&info.name) else {
            continue;
        };
        assert_eq!(t.shape(), &info.shape[..]);
        if t.as_slice().iter().any(|x| !x.is_finite()) {
            continue;
        }
        for g in [Granularity::PerTensor, Granularity::PerRow] {
            let q = QTensor::quantize(&t, g).expect("finite, non-empty tensor quantizes");
            assert_eq!(q.codes().len(), info.n_elements(), "`{}`", info.name);
            let groups = match g {
                Granularity::PerTensor => 1,
                Granularity::PerRow => info.n_elements() / info.row_len(),
            };
            assert_eq!(q.scales().len(), groups, "`{}`", info.name);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    from_gguf(data);
    // First byte: granularity (low bit) and row length (the rest, 1..=128).
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let granularity = if head & 1 == 0 {
        Granularity::PerTensor
    } else {
        Granularity::PerRow
    };
    let xs: Vec<f32> = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let cols = usize::from(head >> 1) + 1;
    let rows = xs.len() / cols;
    if rows == 0 {
        return;
    }
    let xs = &xs[..rows * cols];
    let result = QTensor::quantize_slice(xs, &[rows, cols], granularity);
    if let Some(bad) = xs.iter().position(|x| !x.is_finite()) {
        match result {
            Err(Error::NonFinite { index, .. }) => assert_eq!(index, bad),
            other => panic!("non-finite input at {bad} gave {other:?}"),
        }
        return;
    }
    let q = result.expect("finite input quantizes");
    let d = q.dequantize::<f32>().expect("dequantize");
    for (i, (&x, &y)) in xs.iter().zip(d.as_slice()).enumerate() {
        let code = q.codes()[i];
        assert!((-127..=127).contains(&code), "code {code} at {i}");
        let s = q.row_scale(i / cols);
        if s == 0.0 {
            assert!(x.abs() < 127.0 * f32::MIN_POSITIVE, "flushed {x} at {i}");
            assert_eq!(y, 0.0);
        } else {
            let tol = f64::from(s) / 2.0 * (1.0 + 1e-5) + f64::from(x.abs()) * 2e-7;
            let err = (f64::from(x) - f64::from(y)).abs();
            assert!(err <= tol, "{i}: {x} → {y}, scale {s}");
        }
    }
});
