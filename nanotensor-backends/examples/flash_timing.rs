//! Times the flash path on one shape: `cargo run --release --features blocked --example
//! flash_timing -- N H D THREADS [causal] [repeats]`; prints the median seconds and GFLOP/s.

use nanotensor::attention::{check_operands, AttentionSpec, HeadsLayout};
use nanotensor::{Heads, HeadsMut, Tensor};
use nanotensor_backends::flash::flash_attention;
use nanotensor_backends::threads::Pool;
use std::time::Instant;

fn heads(t: &Tensor<f32>, layout: HeadsLayout) -> Heads<'_, f32> {
    Heads {
        data: t.as_slice(),
        layout,
    }
}

fn main() -> nanotensor::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
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
    let mut scratch = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let c0 = thread_cpu_ns();
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
        cpu.push((thread_cpu_ns() - c0) as f64 * 1e-9);
        scratch = plan.scratch_bytes;
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    if threads == 1 {
        // On a shared machine the wall clock includes time the thread spent descheduled; the
        // thread's own CPU time gives the kernel-level rate.
        let c = cpu[cpu.len() / 2];
        println!(
            "  calling-thread CPU time: median {:.1} ms -> {:.1} GFLOP/s per busy core",
            c * 1e3,
            dims.flops(causal) / c / 1e9
        );
    }
    let med = times[times.len() / 2];
    println!(
        "N={n} H={h} d={d} threads={threads} causal={causal}: median {:.1} ms (min {:.1}) {:.1} GFLOP/s, scratch {scratch} B, isa {:?}",
        med * 1e3,
        times[0] * 1e3,
        dims.flops(causal) / med / 1e9,
        nanotensor_backends::flash::kernel::detect()
    );
    Ok(())
}

/// CPU time of the calling thread in ns (`/proc/thread-self/schedstat`; 0 where unavailable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
