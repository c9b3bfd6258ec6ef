//! Times the int8 backend on the target shapes and prints medians:
//! GEMM 1024³ (dynamic `matmul`, and `linear` with a prepared weight) and the decode matvec
//! 1×576 · 576×49152 with a prepared weight. Run with
//! `cargo run --release -p nanotensor-backends --features int8 --example int8_gemm [threads]`.

use nanotensor_backends::int8::Int8Backend;
use nanotensor_core::{Backend, Tensor};
use std::time::Instant;

/// CPU time consumed so far by all threads of this process, in seconds (Linux
/// `/proc/self/task/*/schedstat`, nanosecond resolution); `None` elsewhere. On a shared machine
/// it measures what the code costs when it does run, independent of time spent descheduled.
fn process_cpu_secs() -> Option<f64> {
    let mut total = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 * 1e-9)
}

/// Median wall seconds and median CPU seconds (all threads) of `reps` calls after a warm-up.
fn median_secs(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let c0 = process_cpu_secs().unwrap_or(0.0);
        let s = Instant::now();
        f();
        wall.push(s.elapsed().as_secs_f64());
        cpu.push(process_cpu_secs().unwrap_or(0.0) - c0);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[reps / 2], cpu[reps / 2])
}

fn main() -> nanotensor_core::Result<()> {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let be = Int8Backend::new(threads)?;
    println!("kernel {:?}, threads {threads}", be.kernel().kind());
    let n = 1024;
    let a = Tensor::<f32>::randn(&[n, n], 1.0, 1)?;
    let b = Tensor::<f32>::randn(&[n, n], 1.0, 2)?;
    let ops = 2.0 * (n * n * n) as f64;
    let (s, c) = median_secs(15, || drop(be.matmul(&a, &b).unwrap()));
    println!(
        "matmul 1024³ (quantize both per call): {:.2} ms, {:.1} GOP/s wall; {:.1} GOP/s per CPU-second",
        s * 1e3,
        ops / s / 1e9,
        ops / c / 1e9
    );
    let w = be.prepare(b.t()?)?;
    let (s, c) = median_secs(15, || drop(be.linear(&a, &w).unwrap()));
    println!(
        "linear 1024³ (prepared weight):        {:.2} ms, {:.1} GOP/s wall; {:.1} GOP/s per CPU-second",
        s * 1e3,
        ops / s / 1e9,
        ops / c / 1e9
    );
    let (k, nn) = (576, 49152);
    let w = be.prepare(Tensor::<f32>::randn(&[nn, k], 0.05, 3)?)?;
    let x = Tensor::<f32>::randn(&[1, k], 1.0, 4)?;
    let mut y = vec![0.0f32; nn];
    let (s, _) = median_secs(51, || be.linear_into(x.as_slice(), 1, &w, &mut y).unwrap());
    println!(
        "decode 1×576·576×49152 (prepared):    {:.3} ms, {:.1} GOP/s, {:.1} GB/s of weights",
        s * 1e3,
        2.0 * (k * nn) as f64 / s / 1e9,
        (k * nn) as f64 / s / 1e9
    );
    Ok(())
}
