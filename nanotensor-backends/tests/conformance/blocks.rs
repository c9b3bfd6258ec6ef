//! `linear` on weights in GGUF block formats ([`Backend::prepare_blocks`]) against the float64
//! product of the dequantized weight (the model crate's bit-exact dequantizer) with the
//! unquantized input.

use nanotensor_core::reference::matmul_f64;
use nanotensor_core::{Backend, BlockWeight, PreparedWeight, QuantFormat, Tensor};
use nanotensor_models::gguf::dequant::dequantize;
use nanotensor_models::gguf::types::ALL_TYPES;

/// (rows of x, output features, input blocks): decode (one row) and prefill shapes, outputs
/// below and above the driver's threading threshold, one to several blocks of input.
const SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (1, 300, 3), (4, 7, 2), (33, 129, 1), (5, 64, 9)];

/// Runs every format through `b.prepare_blocks` and `b.linear` with two requirements:
///
/// * per output, `|y − ref| ≤ Σ_b (max_{j∈b}|x_j|/254)·Σ_{j∈b}|W_j| + 1e-5·Σ_j|W_j·x_j|`: the
///   activations' 8-bit rounding moves each `x_j` by at most half its block's step (blocks of
///   32 values, step `max|x_b|/127`), plus f32 rounding — a worst case that cannot fail
///   by chance;
/// * pooled over all shapes, NMSE = Σ(y − ref)²/Σref² below `bound(format)` (pooled, because
///   one output's `e²/y²` fluctuates with `y²`; over hundreds it concentrates).
///
/// A backend that declines a format (`Ok(None)`) is skipped for it only when `must_accept` is
/// false.
#[allow(dead_code)] // without the `quant` feature nothing calls it
pub fn block_linear_cases<B: Backend>(
    b: &B,
    bound: impl Fn(QuantFormat) -> f64,
    must_accept: bool,
) {
    for (s, fmt) in QuantFormat::ALL.into_iter().enumerate() {
        let ty = ALL_TYPES
            .into_iter()
            .find(|t| t.quant_format() == Some(fmt))
            .expect("a GGUF type per format");
        let (mut err2, mut ref2) = (0.0f64, 0.0f64);
        for (i, &(m, n, blocks)) in SHAPES.iter().enumerate() {
            let k = blocks * fmt.block_values();
            let seed = 1000 * s as u64 + i as u64;
            let bytes = nanotensor_backends::quant::random::random_blocks(fmt, n, k, seed).unwrap();
            let mut w = vec![0.0f32; n * k];
            dequantize("w", ty, &bytes, &mut w).unwrap();
            let w = Tensor::from_slice(&w, &[n, k]).unwrap();
            let x = Tensor::<f32>::randn(&[m, k], 1.0, seed + 7).unwrap();
            let reference = matmul_f64(&x, &w.t().unwrap()).unwrap();
            let bw = BlockWeight::new("w", fmt, n, k, &bytes).unwrap();
            let Some(pw) = b.prepare_blocks(bw).unwrap() else {
                assert!(!must_accept, "{} declined {fmt}", b.name());
                continue;
            };
            assert_eq!(pw.shape(), [n, k]);
            let y = b.linear(&x, &pw).unwrap();
            let (xs, ws) = (x.as_slice(), w.as_slice());
            for r in 0..m {
                for o in 0..n {
                    let (xr, wr) = (&xs[r * k..(r + 1) * k], &ws[o * k..(o + 1) * k]);
                    let mut limit = 0.0f64;
                    for (xb, wb) in xr.chunks(32).zip(wr.chunks(32)) {
                        let step = xb.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                        let wsum: f64 = wb.iter().map(|v| f64::from(v.abs())).sum();
                        let mag: f64 = xb
                            .iter()
                            .zip(wb)
                            .map(|(a, b)| f64::from((a * b).abs()))
                            .sum();
                        limit += 0.5 * step * wsum + 1e-5 * mag;
                    }
                    let (got, want) = (f64::from(y.as_slice()[r * n + o]), reference[r * n + o]);
                    assert!(
                        (got - want).abs() <= limit,
                        "{} {fmt} {m}x{k}x{n} ({r}, {o}): {got} vs {want}, limit {limit}",
                        b.name()
                    );
                    err2 += (got - want).powi(2);
                    ref2 += want * want;
                }
            }
        }
        if ref2 > 0.0 {
            let nmse = err2 / ref2;
            assert!(
                nmse <= bound(fmt),
                "{} {fmt}: pooled NMSE {nmse:e}",
                b.name()
            );
        }
    }
}
