//! The tile path ([`super::tile`]) against the model crate's dequantizers and against the
//! one-row kernels, for every kernel this CPU runs; the backend's `linear` on prefill shapes.

use super::act::{QActs, QK};
use super::kernel::Kernel;
use super::layout::F16;
use super::random::random_blocks;
use super::tests::{dequantized, exact_activations, kernels};
use super::tile::{TileActs, TileOut, WTile, NR};
use super::QuantBackend;
use nanotensor_core::rng::Rng;
use nanotensor_core::{Backend, BlockWeight, QuantFormat, Tensor};

/// `y: [rows, n]` through the tile kernel, one tile of up to `NR` weight rows at a time.
fn tile_product(
    kernel: Kernel,
    fmt: QuantFormat,
    bytes: &[u8],
    n: usize,
    a: &QActs,
    rows: usize,
) -> Vec<f32> {
    let rb = bytes.len() / n;
    let mut ta = TileActs::default();
    ta.build(a, rows);
    let mut tile = WTile {
        signed_q8: kernel.tile_signed_q8(),
        ..WTile::default()
    };
    let mut y = vec![0.0f32; rows * n];
    for o0 in (0..n).step_by(NR) {
        let nr = NR.min(n - o0);
        tile.decode(fmt, &bytes[o0 * rb..], rb, nr, F16::table());
        kernel.tile(&tile, &ta, &mut TileOut::new(&mut y[o0..], rows, n, nr));
    }
    y
}

/// With exact activations (scale 1, codes = values) only f32 rounding separates a tile from
/// `Σ_j W[o, j]·x[j]` in f64 over the dequantized `W`: `|y − ref| ≤ 1e-5 · Σ_j |W[o, j]·x[j]|`
/// (Q8_0's offset codes `q + 128` add a cancellation of at most `128·Σ|x|·d` per block, a few
/// ulps of that sum). Eleven weight rows (a full and a padded tile), thirteen activation rows
/// (groups of 8, 4 and 1), three blocks of the format (an odd count of 32-value blocks for
/// the legacy formats).
#[test]
fn tiles_match_the_dequantizers() {
    for kernel in kernels() {
        for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
            let (n, k, rows) = (11, 3 * fmt.block_values(), 13);
            let bytes = random_blocks(fmt, n, k, 200 + s as u64).unwrap();
            let w = dequantized(fmt, &bytes, n, k);
            let x = exact_activations(rows, k, 300 + s as u64);
            let mut a = QActs::default();
            a.quantize(&x, rows, k).unwrap();
            let y = tile_product(kernel, fmt, &bytes, n, &a, rows);
            for r in 0..rows {
                for o in 0..n {
                    let (mut want, mut mag) = (0.0f64, 0.0f64);
                    for j in 0..k {
                        let t = f64::from(w[o * k + j]) * f64::from(x[r * k + j]);
                        want += t;
                        mag += t.abs();
                    }
                    let got = f64::from(y[r * n + o]);
                    assert!(
                        (got - want).abs() <= 1e-5 * mag,
                        "{fmt} {:?} ({r}, {o}): {got} vs {want} (Σ|t| = {mag})",
                        kernel.kind()
                    );
                }
            }
        }
    }
}

/// With power-of-two scales and small activation codes every f32 operation is exact, so each
/// tile must return the portable one-row kernel's result bit for bit: the integer sums per
/// block and segment, the offsets and minimums, agree exactly.
#[test]
fn tile_integer_sums_equal_the_portable_dot() {
    let h = F16::table();
    let portable = Kernel::new(super::kernel::KernelKind::Portable).unwrap();
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        let (n, k, rows) = (9, 2 * fmt.block_values(), 6);
        let mut bytes = random_blocks(fmt, n, k, 400 + s as u64).unwrap();
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
        let mut rng = Rng::new(500 + s as u64);
        let mut x: Vec<f32> = (0..rows * k)
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
        a.quantize(&x, rows, k).unwrap();
        let rb = fmt.row_bytes(k).unwrap();
        for kernel in kernels() {
            let y = tile_product(kernel, fmt, &bytes, n, &a, rows);
            for r in 0..rows {
                for o in 0..n {
                    let want = portable.dot(fmt, &bytes[o * rb..(o + 1) * rb], a.row(r), h);
                    assert_eq!(
                        y[r * n + o].to_bits(),
                        want.to_bits(),
                        "{fmt} {:?} ({r}, {o})",
                        kernel.kind()
                    );
                }
            }
        }
    }
}

/// The backend's threaded `linear` on prefill shapes (from `TILE_MIN_ROWS` rows, weights
/// above the threading threshold) equals the single-threaded tile product bit for bit: the
/// driver only splits the weight rows among workers and transposes.
#[test]
fn linear_on_prefill_shapes_equals_the_tiles() {
    let b = QuantBackend::new(2).unwrap();
    for fmt in QuantFormat::ALL {
        let (n, k) = (300, 2 * fmt.block_values());
        let bytes = random_blocks(fmt, n, k, 9).unwrap();
        let w = b
            .prepare_blocks(BlockWeight::new("w", fmt, n, k, &bytes).unwrap())
            .unwrap()
            .unwrap();
        for rows in [super::TILE_MIN_ROWS, 13, 40] {
            let mut rng = Rng::new(rows as u64);
            let x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
            let y = b
                .linear(&Tensor::from_slice(&x, &[rows, k]).unwrap(), &w)
                .unwrap();
            let mut a = QActs::default();
            a.quantize(&x, rows, k).unwrap();
            let want = tile_product(b.kernel(), fmt, &bytes, n, &a, rows);
            assert_eq!(y.as_slice(), &want[..], "{fmt} rows {rows}");
        }
    }
}

/// Every kernel's tile decode writes the portable decode's tile, byte for byte and scale for
/// scale: full and partial tiles, odd and even block counts, Q8_0 signed and offset.
#[test]
fn tile_decodes_equal_the_portable_one() {
    let h = F16::table();
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        for (blocks, rows) in [(3, NR), (2, 5), (1, 1)] {
            let k = blocks * fmt.block_values();
            let bytes = random_blocks(fmt, rows, k, 600 + s as u64).unwrap();
            let rb = fmt.row_bytes(k).unwrap();
            for kernel in kernels() {
                for signed_q8 in [false, true] {
                    let new = || WTile {
                        signed_q8,
                        ..WTile::default()
                    };
                    let (mut want, mut got) = (new(), new());
                    want.decode(fmt, &bytes, rb, rows, h);
                    kernel.decode_tile(&mut got, fmt, &bytes, rb, rows, h);
                    let same = (want.pairs, want.segs, want.shift, want.has_min, &want.qs)
                        == (got.pairs, got.segs, got.shift, got.has_min, &got.qs)
                        && want
                            .d
                            .iter()
                            .zip(&got.d)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                        && want
                            .m
                            .iter()
                            .zip(&got.m)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{fmt} {:?} {blocks} blocks, {rows} rows",
                        kernel.kind()
                    );
                }
            }
        }
    }
}

/// Every kernel's activation quantizer gives the portable one's codes, scales and sums bit for
/// bit: Gaussian rows with outliers, a zero block, a row length not a multiple of 32.
#[test]
fn activation_quantizers_equal_the_portable_one() {
    let portable = Kernel::new(super::kernel::KernelKind::Portable).unwrap();
    let mut rng = Rng::new(700);
    for k in [32, 96, 70] {
        let rows = 5;
        let mut x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
        x[3] = 900.0;
        x[k + 1] = -1e-30;
        x[2 * k..2 * k + 32].fill(0.0);
        let mut want = QActs::default();
        want.quantize_with(portable, &x, rows, k).unwrap();
        for kernel in kernels() {
            let mut got = QActs::default();
            got.quantize_with(kernel, &x, rows, k).unwrap();
            assert_eq!(
                (&got.qs, &got.sums, got.blocks),
                (&want.qs, &want.sums, want.blocks),
                "{:?} k {k}",
                kernel.kind()
            );
            let bits = |v: &[f32]| v.iter().map(|d| d.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.d), bits(&want.d), "{:?} k {k}", kernel.kind());
        }
    }
}

/// Every kernel's quantizer into the tile layout gives what the portable quantizer and
/// `TileActs::build` give, bit for bit (odd block counts, a short last block), and names the
/// first NaN or infinity as the portable quantizer does.
#[test]
fn tile_quantizers_equal_quantize_then_build() {
    let portable = Kernel::new(super::kernel::KernelKind::Portable).unwrap();
    let mut rng = Rng::new(800);
    for k in [32, 96, 70, 64] {
        let rows = 5;
        let mut x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
        x[1] = -700.0;
        let mut a = QActs::default();
        a.quantize_with(portable, &x, rows, k).unwrap();
        let mut want = TileActs::default();
        want.build(&a, rows);
        for kernel in kernels() {
            let mut got = TileActs::default();
            kernel
                .quantize_tile(&x, rows, k, &mut QActs::default(), &mut got)
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|d| d.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                (got.pairs, &got.qs, &got.sum, &got.sumh),
                (want.pairs, &want.qs, &want.sum, &want.sumh),
                "{:?} k {k}",
                kernel.kind()
            );
            assert_eq!(bits(&got.d), bits(&want.d));
            assert_eq!(bits(&got.sd), bits(&want.sd));
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut y = x.clone();
            y[2 * k + 3] = bad;
            y[3 * k] = f32::NAN;
            for kernel in kernels() {
                let err = kernel
                    .quantize_tile(&y, rows, k, &mut QActs::default(), &mut TileActs::default())
                    .unwrap_err();
                assert!(
                    matches!(err, nanotensor_core::Error::NonFinite { index, .. } if index == 2 * k + 3),
                    "{err:?}"
                );
            }
        }
    }
}
