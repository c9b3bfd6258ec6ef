//! The kernels against the model crate's bit-exact dequantizers, on activations that quantize
//! exactly; the Q8_0 quantizer of `prepare`; the backend's `linear` on block weights.

use super::act::{QActs, QK};
use super::kernel::{Kernel, KernelKind};
use super::layout::{self, F16};
use super::random::random_blocks;
use super::QuantBackend;
use nanotensor_core::rng::Rng;
use nanotensor_core::{Backend, BlockWeight, PreparedWeight, QuantFormat, Tensor};
use nanotensor_models::gguf::dequant::dequantize;
use nanotensor_models::gguf::types::ALL_TYPES;

/// `bytes` (a `[rows, cols]` matrix of `fmt`) dequantized by the model crate.
pub(super) fn dequantized(fmt: QuantFormat, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let ty = ALL_TYPES
        .into_iter()
        .find(|t| t.quant_format() == Some(fmt))
        .expect("every format is a GGUF type");
    let mut w = vec![0.0f32; rows * cols];
    dequantize("w", ty, bytes, &mut w).unwrap();
    w
}

/// Activations whose every 32-block holds integers in [-127, 127] and reaches ±127: the scale
/// is exactly 1 and the codes are the values, so the kernel sees `x` itself.
pub(super) fn exact_activations(rows: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut x: Vec<f32> = (0..rows * k)
        .map(|_| (rng.next_u64() % 255) as f32 - 127.0)
        .collect();
    for b in x.chunks_mut(QK) {
        b[0] = if rng.next_u64() & 1 == 0 {
            127.0
        } else {
            -127.0
        };
    }
    x
}

fn cols_for(fmt: QuantFormat) -> usize {
    3 * fmt.block_values()
}

/// With exact activations only f32 rounding separates a kernel from `Σ_j W[o, j]·x[j]` in f64
/// over the dequantized `W`: one rounding per block product and per running sum (relative
/// 2⁻²⁴ each, over at most `k/16` steps) and the dequantizer's own f32 rounding of each value,
/// so `|y − ref| ≤ 1e-5 · Σ_j |W[o, j]·x[j]|`. A wrong nibble, bit or scale misses by O(1).
fn check_kernel(kernel: Kernel) {
    let h = F16::table();
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        let (rows, cols) = (5, cols_for(fmt));
        let bytes = random_blocks(fmt, rows, cols, 10 + s as u64).unwrap();
        let w = dequantized(fmt, &bytes, rows, cols);
        let x = exact_activations(2, cols, 20 + s as u64);
        let mut a = QActs::default();
        a.quantize(&x, 2, cols).unwrap();
        assert!(a.d.iter().all(|&d| d == 1.0));
        let row_bytes = fmt.row_bytes(cols).unwrap();
        for o in 0..rows {
            for r in 0..2 {
                let y = kernel.dot(fmt, &bytes[o * row_bytes..(o + 1) * row_bytes], a.row(r), h);
                let (mut want, mut mag) = (0.0f64, 0.0f64);
                for j in 0..cols {
                    let t = f64::from(w[o * cols + j]) * f64::from(x[r * cols + j]);
                    want += t;
                    mag += t.abs();
                }
                assert!(
                    (f64::from(y) - want).abs() <= 1e-5 * mag,
                    "{fmt} {:?} row {o}: {y} vs {want} (Σ|t| = {mag})",
                    kernel.kind()
                );
            }
        }
    }
}

/// The kernels this CPU runs (the portable one everywhere).
pub(super) fn kernels() -> Vec<Kernel> {
    [
        KernelKind::Avx512Vnni,
        KernelKind::Avx2,
        KernelKind::Portable,
    ]
    .into_iter()
    .filter_map(Kernel::new)
    .collect()
}

#[test]
fn every_kernel_matches_the_dequantizers() {
    for k in kernels() {
        check_kernel(k);
    }
}

/// With power-of-two scales and small activation codes every f32 operation of every kernel is
/// exact (each partial sum is an integer multiple of 2⁻¹² below 2²⁴ such units), so each
/// kernel must return the portable kernel's result bit for bit: this compares their integer
/// sums exactly, whatever order they add the blocks in.
#[test]
fn simd_integer_sums_equal_the_portable_ones() {
    let h = F16::table();
    let portable = Kernel::new(KernelKind::Portable).unwrap();
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        let (rows, cols) = (4, 2 * fmt.block_values());
        let mut bytes = random_blocks(fmt, rows, cols, 50 + s as u64).unwrap();
        let mut rng = Rng::new(60 + s as u64);
        for blk in bytes.chunks_exact_mut(fmt.block_bytes()) {
            for (i, &at) in fmt.scale_offsets().iter().enumerate() {
                let v = if i == 0 {
                    2f32.powi(-6)
                } else {
                    -(2f32.powi(-5))
                };
                blk[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
            }
        }
        // Codes in [-7, 7] but one ±127 per block, so the activation scale is exactly 1.
        let mut x: Vec<f32> = (0..2 * cols)
            .map(|_| (rng.next_u64() % 15) as f32 - 7.0)
            .collect();
        for b in x.chunks_mut(QK) {
            b[(rng.next_u64() % 32) as usize] = if rng.next_u64() & 1 == 0 {
                127.0
            } else {
                -127.0
            };
        }
        let mut a = QActs::default();
        a.quantize(&x, 2, cols).unwrap();
        let rb = fmt.row_bytes(cols).unwrap();
        for k in kernels() {
            for o in 0..rows {
                for r in 0..2 {
                    let wr = &bytes[o * rb..(o + 1) * rb];
                    let (got, want) = (
                        k.dot(fmt, wr, a.row(r), h),
                        portable.dot(fmt, wr, a.row(r), h),
                    );
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{fmt} {:?} ({o}, {r})",
                        k.kind()
                    );
                }
            }
        }
    }
}

/// On general scales and Gaussian activations the kernels differ from the portable one only
/// by f32 rounding order: `|y − y_portable| ≤ 1e-5 · Σ_j |W_j·x_j|` (over the dequantized `W`
/// and the quantized `x`, up to a few ulps per block of the magnitudes summed).
#[test]
fn simd_kernels_agree_with_portable_on_general_inputs() {
    let h = F16::table();
    let portable = Kernel::new(KernelKind::Portable).unwrap();
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        let (rows, cols) = (6, 4 * fmt.block_values());
        let bytes = random_blocks(fmt, rows, cols, 80 + s as u64).unwrap();
        let w = dequantized(fmt, &bytes, rows, cols);
        let mut rng = Rng::new(90 + s as u64);
        let x: Vec<f32> = (0..cols).map(|_| rng.normal() as f32).collect();
        let mut a = QActs::default();
        a.quantize(&x, 1, cols).unwrap();
        let rb = fmt.row_bytes(cols).unwrap();
        for k in kernels() {
            for o in 0..rows {
                let wr = &bytes[o * rb..(o + 1) * rb];
                let (got, want) = (
                    k.dot(fmt, wr, a.row(0), h),
                    portable.dot(fmt, wr, a.row(0), h),
                );
                let mag: f32 = (0..cols)
                    .map(|j| (w[o * cols + j] * a.d[j / QK] * f32::from(a.qs[j])).abs())
                    .sum();
                assert!(
                    (got - want).abs() <= 1e-5 * mag,
                    "{fmt} {:?} row {o}: {got} vs {want}",
                    k.kind()
                );
            }
        }
    }
}

/// The Q8_0 quantizer of `prepare`: dequantized by the model crate, every value is within half
/// a step of its block's f16 scale, plus the scale's own f16 rounding times the code.
#[test]
fn q8_0_quantizer_round_trips() {
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..4 * QK).map(|_| rng.normal() as f32 * 0.3).collect();
    let mut bytes = Vec::new();
    assert!(layout::quantize_q8_0(&x, &mut bytes));
    let back = dequantized(QuantFormat::Q8_0, &bytes, 1, x.len());
    for (b, (xb, yb)) in x.chunks(QK).zip(back.chunks(QK)).enumerate() {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let dh = F16::table().get([bytes[34 * b], bytes[34 * b + 1]]);
        for (&v, &y) in xb.iter().zip(yb) {
            assert!(
                (v - y).abs() <= 0.5 * d + 127.0 * (d - dh).abs() + 1e-7,
                "{v} vs {y}"
            );
        }
    }
    // A block whose scale overflows f16 is refused.
    assert!(!layout::quantize_q8_0(&[1e9f32; QK], &mut Vec::new()));
}

/// `prepare_blocks` keeps the file's bytes as they are, and the backend's threaded `linear`
/// (decode and prefill shapes) equals the single kernel's dot per output.
#[test]
fn linear_on_blocks_equals_the_kernel() {
    let b = QuantBackend::new(2).unwrap();
    let h = F16::table();
    for fmt in QuantFormat::ALL {
        let (n, k) = (300, 2 * fmt.block_values());
        let bytes = random_blocks(fmt, n, k, 7).unwrap();
        let w = b
            .prepare_blocks(BlockWeight::new("w", fmt, n, k, &bytes).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (w.bytes(), w.size_bytes(), w.shape()),
            (&bytes[..], bytes.len(), [n, k])
        );
        for rows in [1, 3] {
            let mut rng = Rng::new(rows as u64);
            let x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
            let y = b
                .linear(&Tensor::from_slice(&x, &[rows, k]).unwrap(), &w)
                .unwrap();
            let mut a = QActs::default();
            a.quantize(&x, rows, k).unwrap();
            let rb = w.row_bytes();
            for r in 0..rows {
                for o in 0..n {
                    let want = b
                        .kernel()
                        .dot(fmt, &bytes[o * rb..(o + 1) * rb], a.row(r), h);
                    assert_eq!(
                        y.as_slice()[r * n + o],
                        want,
                        "{fmt} rows {rows} ({r}, {o})"
                    );
                }
            }
        }
    }
}

/// Rows multiplied together ([`Kernel::dots`]) give each row's own dot bit for bit: a row's
/// operations and their order do not depend on its neighbours.
#[test]
fn grouped_rows_equal_single_rows() {
    let h = F16::table();
    let mut rng = Rng::new(41);
    for fmt in QuantFormat::ALL {
        let cols = 2 * 256;
        let bytes = random_blocks(fmt, 4, cols, 17).unwrap();
        let rb = fmt.row_bytes(cols).unwrap();
        let x: Vec<f32> = (0..cols).map(|_| rng.normal() as f32).collect();
        let mut a = QActs::default();
        a.quantize(&x, 1, cols).unwrap();
        let row = |o: usize| &bytes[o * rb..(o + 1) * rb];
        for k in kernels() {
            let four = k.dots(fmt, [row(0), row(1), row(2), row(3)], a.row(0), h);
            for (o, y) in four.iter().enumerate() {
                let one = k.dot(fmt, row(o), a.row(0), h);
                assert_eq!(y.to_bits(), one.to_bits(), "{fmt} {:?} row {o}", k.kind());
            }
        }
    }
}

/// Blocks handed over with a shared owner are kept as that owner's storage (no copy, reported
/// by `shared_storage`), without one they are copied; both multiply alike.
#[test]
fn prepare_blocks_shares_an_owner_and_copies_a_borrow() {
    use nanotensor_core::SharedBytes;
    let b = QuantBackend::new(1).unwrap();
    let (fmt, n, k) = (QuantFormat::Q4_K, 5, 512);
    let bytes = random_blocks(fmt, n, k, 11).unwrap();
    let owner: SharedBytes = std::sync::Arc::new(bytes.clone());
    let shared = b
        .prepare_blocks(BlockWeight::shared("w", fmt, n, k, &owner).unwrap())
        .unwrap()
        .unwrap();
    let copied = b
        .prepare_blocks(BlockWeight::new("w", fmt, n, k, &bytes).unwrap())
        .unwrap()
        .unwrap();
    let storage = (*owner).as_ref();
    assert!(shared.is_shared() && !copied.is_shared());
    assert!(std::ptr::eq(shared.bytes(), storage));
    assert!(std::ptr::eq(shared.shared_storage().unwrap(), storage));
    assert!(copied.shared_storage().is_none());
    assert!(!std::ptr::eq(copied.bytes(), &bytes[..]));
    assert_eq!(
        (shared.size_bytes(), copied.size_bytes()),
        (bytes.len(), bytes.len())
    );
    // The weight holds the storage alive on its own.
    drop(owner);
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..2 * k).map(|_| rng.normal() as f32).collect();
    let x = Tensor::from_slice(&x, &[2, k]).unwrap();
    assert_eq!(
        b.linear(&x, &shared).unwrap().as_slice(),
        b.linear(&x, &copied).unwrap().as_slice()
    );
}
