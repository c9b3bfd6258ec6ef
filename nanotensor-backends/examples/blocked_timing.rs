//! Times the blocked backend on one shape and prints one JSON line (median of the repeats).
//!
//! ```text
//! cargo run --release -p nanotensor-backends --example blocked_timing -- M K N [threads] [repeat] [mode]
//! ```
//! `mode`: `matmul` (default), `prepared` (B is a weight: `prepare` once, then `linear`), or
//! `kernel` (the microkernel alone on packed panels, one thread: kernel quality without the
//! driver, packing or threads). Used by `scripts/bench-vs-numpy.sh` until the CLI has `--json`.

use nanotensor_backends::blocked::kernel::{detect, with_f32_kernel, GemmKernel};
use nanotensor_backends::blocked::BlockedBackend;
use nanotensor_core::{Backend, Tensor};
use std::time::Instant;

/// On-CPU nanoseconds of every thread of this process so far (Linux `schedstat`), so kernel
/// efficiency can be told apart from time spent preempted on a shared machine.
fn cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the microkernel over `reps` sweeps of a packed `mc × kc` A block and one `kc × NR`
/// B micro-panel kept in L1, writing one tile: pure kernel throughput.
fn kernel_only<K: GemmKernel<A = f32, B = f32, C = f32>>(
    k: K,
    kc: usize,
    repeat: usize,
) -> (f64, f64, f64) {
    let tiles = 16;
    let a = vec![0.5f32; tiles * K::MR * kc];
    let b = vec![0.25f32; kc * K::NR];
    let mut c = vec![0.0f32; K::MR * K::NR];
    let mut times = Vec::new();
    let cpu0 = cpu_ns();
    for _ in 0..repeat {
        let t = Instant::now();
        for _ in 0..200 {
            for ap in a.chunks_exact(K::MR * kc) {
                k.microkernel(kc, ap, &b, &mut c, K::NR, true);
            }
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu_s = (cpu_ns() - cpu0) as f64 * 1e-9;
    let s = median(times);
    let flops = 2.0 * (200 * tiles * K::MR * K::NR * kc) as f64;
    (s, flops / s / 1e9, flops * repeat as f64 / cpu_s / 1e9)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (m, k, n) = (num(0, 1024), num(1, 1024), num(2, 1024));
    let (threads, repeat) = (num(3, 1), num(4, 10));
    let mode = args.get(5).map_or("matmul", |s| s.as_str());
    if mode == "kernel" {
        let (s, gf, cpu_gf) = with_f32_kernel!(detect(), kern => kernel_only(kern, k, repeat));
        println!(
            "{{\"op\":\"microkernel\",\"kernel\":\"{}\",\"kc\":{k},\"seconds\":{s:.6e},\"gflops\":{gf:.2},\"gflops_per_cpu_second\":{cpu_gf:.2}}}",
            detect().name()
        );
        return;
    }
    let be = BlockedBackend::new(threads).expect("threads");
    let a = Tensor::<f32>::randn(&[m, k], 1.0, 1).expect("a");
    let mut times = Vec::new();
    let mut cpu0 = 0;
    if mode == "prepared" {
        let w = Tensor::<f32>::randn(&[n, k], 1.0, 2).expect("w");
        let pw = be.prepare(w).expect("prepare");
        let mut out = vec![0.0f32; m * n];
        for r in 0..repeat + 1 {
            if r == 1 {
                cpu0 = cpu_ns();
            }
            let t = Instant::now();
            be.linear_into(a.as_slice(), m, &pw, &mut out)
                .expect("linear");
            times.push(t.elapsed().as_secs_f64());
        }
    } else {
        let b = Tensor::<f32>::randn(&[k, n], 1.0, 2).expect("b");
        for r in 0..repeat + 1 {
            if r == 1 {
                cpu0 = cpu_ns();
            }
            let t = Instant::now();
            let c = be.matmul(&a, &b).expect("matmul");
            times.push(t.elapsed().as_secs_f64());
            std::hint::black_box(c);
        }
    }
    let cpu_s = (cpu_ns() - cpu0) as f64 * 1e-9;
    times.remove(0); // warm-up
    let cpu_gf = 2.0 * (m * n * k * repeat) as f64 / cpu_s / 1e9;
    let s = median(times);
    let gf = 2.0 * (m * n * k) as f64 / s / 1e9;
    let gbs = (k * n * 4) as f64 / s / 1e9;
    println!(
        "{{\"op\":\"matmul\",\"backend\":\"blocked\",\"kernel\":\"{}\",\"mode\":\"{mode}\",\"m\":{m},\"k\":{k},\"n\":{n},\"threads\":{threads},\"seconds\":{s:.6e},\"gflops\":{gf:.2},\"gflops_per_cpu_second\":{cpu_gf:.2},\"b_gbytes_per_s\":{gbs:.2}}}",
        be.kernel_name()
    );
}
