//! The quant backend's `linear` on weights in their stored block formats: a decode row (one
//! activation row; throughput in weight bytes read, the figure a decode step is bound by) and a
//! 128-row prefill batch (throughput in multiply-adds), per format, against the blocked
//! backend's f32 `linear` on the same (dequantized) matrix.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nanotensor::{Backend, BlockWeight, QuantFormat, Tensor};
use nanotensor_backends::quant::random::random_blocks;
use nanotensor_backends::{BlockedBackend, QuantBackend};

/// Gemma 3's FFN shape: `ffn_down` is `[640, 2048]`; 2048 is a whole number of super-blocks.
const N: usize = 2048;
const K: usize = 2048;

fn quant(c: &mut Criterion) {
    let quant = QuantBackend::default();
    let blocked = BlockedBackend::default();
    for fmt in [
        QuantFormat::Q4_0,
        QuantFormat::Q4_1,
        QuantFormat::Q5_0,
        QuantFormat::Q8_0,
        QuantFormat::Q4_K,
        QuantFormat::Q6_K,
    ] {
        let bytes = random_blocks(fmt, N, K, 1).unwrap();
        let w = quant
            .prepare_blocks(BlockWeight::new("w", fmt, N, K, &bytes).unwrap())
            .unwrap()
            .expect("the quant backend takes every format it lists");
        for rows in [1usize, 128] {
            let mut group = c.benchmark_group(format!("quant-linear/{rows}x{K}x{N}"));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            if rows == 1 {
                group.throughput(Throughput::Bytes(bytes.len() as u64));
            } else {
                group.throughput(Throughput::Elements((rows * K * N) as u64));
            }
            let x = Tensor::<f32>::randn(&[rows, K], 1.0, 2).unwrap();
            let mut out = vec![0.0f32; rows * N];
            group.bench_function(BenchmarkId::new("quant", fmt.name()), |b| {
                b.iter(|| quant.linear_into(x.as_slice(), rows, &w, &mut out).unwrap());
                black_box(&out);
            });
            group.finish();
        }
    }
    // The f32 reference point: the same shapes with f32 weights (4 bytes per weight).
    let wf = blocked
        .prepare(Tensor::<f32>::randn(&[N, K], 0.05, 3).unwrap())
        .unwrap();
    for rows in [1usize, 128] {
        let mut group = c.benchmark_group(format!("quant-linear/{rows}x{K}x{N}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        if rows == 1 {
            group.throughput(Throughput::Bytes((4 * N * K) as u64));
        } else {
            group.throughput(Throughput::Elements((rows * K * N) as u64));
        }
        let x = Tensor::<f32>::randn(&[rows, K], 1.0, 2).unwrap();
        let mut out = vec![0.0f32; rows * N];
        group.bench_function(BenchmarkId::new("blocked", "f32"), |b| {
            b.iter(|| {
                blocked
                    .linear_into(x.as_slice(), rows, &wf, &mut out)
                    .unwrap()
            });
            black_box(&out);
        });
        group.finish();
    }
}

criterion_group!(benches, quant);
criterion_main!(benches);
