//! Times the flash path on one shape: `cargo run --release --features blocked --example
//! flash_timing -- N H D THREADS [causal] [repeats]`; prints the median seconds and GFLOP/s.
//!
//! `flash_timing -- kernels` times one 64-key × 32-query block step (Q·Kᵀ tile, online-softmax
//! step, P·V tile at d = 64) on L1-resident data: 2000 steps per sample, the *minimum* of 200
//! samples, so that on a shared machine samples hit by preemption are discarded. That is the
//! kernel-level rate the whole call approaches.

use nanotensor_backends::flash::flash_attention;
use nanotensor_backends::threads::Pool;
use nanotensor_core::attention::{check_operands, AttentionSpec, HeadsLayout};
use nanotensor_core::{Heads, HeadsMut, Tensor};
use std::time::Instant;

fn heads(t: &Tensor<f32>, layout: HeadsLayout) -> Heads<'_, f32> {
    Heads {
        data: t.as_slice(),
        layout,
    }
}

fn main() -> nanotensor_core::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.first().is_some_and(|s| s == "kernels") {
        kernels();
        return Ok(());
    }
    let arg = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, h, d, threads) = (arg(0, 4096), arg(1, 8), arg(2, 64), arg(3, 1));
    let causal = a.get(4).is_some_and(|s| s == "causal");
    let repeats = arg(5, 5);
    let l = HeadsLayout::contiguous(h, n, d);
    let q = Tensor::<f32>::randn(&[h * n * d], 1.0, 1)?;
    let k = Tensor::<f32>::randn(&[h * n * d], 1.0, 2)?;
    let v = Tensor::<f32>::randn(&[h * n * d], 1.0, 3)?;
    let mut out = vec![0.0f32; h * n * d];
    let dims = check_operands(
        &heads(&q, l),
        &heads(&k, l),
        &heads(&v, l),
        &HeadsMut {
            data: &mut out,
            layout: l,
        },
    )?;
    let spec = AttentionSpec {
        causal,
        ..AttentionSpec::default()
    };
    let pool = Pool::new(threads)?;
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut busiest = Vec::new();
    let mut scratch = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let per0 = thread_cpu_ns();
        let c0 = process_cpu_ns();
        let plan = flash_attention(
            &pool,
            heads(&q, l),
            heads(&k, l),
            heads(&v, l),
            HeadsMut {
                data: &mut out,
                layout: l,
            },
            &dims,
            &spec,
        )?;
        times.push(t.elapsed().as_secs_f64());
        cpu.push((process_cpu_ns() - c0) as f64 * 1e-9);
        let per1 = thread_cpu_ns();
        let max_ns = per1
            .iter()
            .map(|(tid, ns)| ns - per0.iter().find(|p| p.0 == *tid).map_or(0, |p| p.1))
            .max()
            .unwrap_or(0);
        busiest.push(max_ns as f64 * 1e-9);

        scratch = plan.scratch_bytes;
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    cpu.sort_by(f64::total_cmp);
    let cpu_med = cpu[cpu.len() / 2];
    println!(
        "N={n} H={h} d={d} threads={threads} causal={causal}: median {:.1} ms (min {:.1}) {:.1} GFLOP/s, scratch {scratch} B, isa {:?}",
        med * 1e3,
        times[0] * 1e3,
        dims.flops(causal) / med / 1e9,
        nanotensor_backends::flash::kernel::detect()
    );
    // On a shared machine the wall clock includes time the threads waited for a CPU; the
    // on-CPU time of all threads gives the rate per busy core.
    println!(
        "  on-CPU time (all threads): median {:.1} ms -> {:.1} GFLOP/s per busy core",
        cpu_med * 1e3,
        dims.flops(causal) / cpu_med / 1e9
    );
    // The busiest thread's on-CPU time is the call's critical path on idle cores: with
    // `threads` workers, `total / busiest` is the speed-up the split allows (threads = perfect).
    busiest.sort_by(f64::total_cmp);
    let busy_med = busiest[busiest.len() / 2];
    println!(
        "  busiest thread on-CPU: median {:.1} ms; total / busiest = {:.2} (of {threads})",
        busy_med * 1e3,
        cpu_med / busy_med
    );
    Ok(())
}

/// `(thread id, on-CPU ns)` of every live thread of this process (`/proc/self/task/*/schedstat`).
fn thread_cpu_ns() -> Vec<(u64, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid = e.file_name().to_str()?.parse().ok()?;
        let s = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
        Some((tid, s.split_whitespace().next()?.parse().ok()?))
    })
    .collect()
}

/// On-CPU nanoseconds of every thread of this process (`/proc/self/task/*/schedstat`, first
/// field; 0 where unavailable). Threads that exited are not counted, so pools must be alive.
fn process_cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path().join("schedstat");
        std::fs::read_to_string(p)
            .ok()?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    })
    .sum()
}

fn kernels() {
    use nanotensor_backends::flash::kernel::{self, LANES};
    let (d, bc) = (64usize, 64usize);
    let isa = kernel::detect();
    let k = Tensor::<f32>::randn(&[bc * d], 1.0, 1).unwrap().to_vec();
    let v = Tensor::<f32>::randn(&[bc * d], 1.0, 2).unwrap().to_vec();
    let qt = Tensor::<f32>::randn(&[d * LANES], 0.1, 3).unwrap().to_vec();
    let mut s = vec![0.0f32; bc * LANES];
    let mut ot = vec![0.0f32; d * LANES];
    let (mut m, mut l, mut alpha) = ([f32::NEG_INFINITY; LANES], [0.0f32; LANES], [1.0f32; LANES]);
    let steps = 2000;
    let flops = |n: usize| 2.0 * (LANES * bc * d) as f64 * n as f64;
    let mut best = [f64::INFINITY; 4];
    for _ in 0..200 {
        let t = Instant::now();
        for _ in 0..steps {
            kernel::qk(isa, &k, d, bc, d, &qt, &mut s);
        }
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..steps {
            kernel::pv(isa, &v, d, bc, d, &s, &alpha, &mut ot);
        }
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..steps {
            kernel::softmax_step(isa, &mut s, bc, &mut m, &mut l, &mut alpha);
        }
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..steps {
            kernel::qk(isa, &k, d, bc, d, &qt, &mut s);
            kernel::softmax_step(isa, &mut s, bc, &mut m, &mut l, &mut alpha);
            kernel::pv(isa, &v, d, bc, d, &s, &alpha, &mut ot);
        }
        best[3] = best[3].min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&ot);
    println!("isa {isa:?}, one block = {bc} keys x {LANES} queries x d {d}, min of 200 samples:");
    println!("  qk tile      {:.1} GFLOP/s", flops(steps) / best[0] / 1e9);
    println!("  pv tile      {:.1} GFLOP/s", flops(steps) / best[1] / 1e9);
    println!(
        "  softmax step {:.1} ns per block ({:.2} ns per score)",
        best[2] / steps as f64 * 1e9,
        best[2] / (steps * bc * LANES) as f64 * 1e9
    );
    println!(
        "  full step    {:.1} GFLOP/s",
        2.0 * flops(steps) / best[3] / 1e9
    );
}
