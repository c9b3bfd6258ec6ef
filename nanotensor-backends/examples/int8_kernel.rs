//! Times the int8 microkernel alone on packed, cache-resident data and prints GOP/s (median of
//! repeats) for every kernel this CPU supports. Run with
//! `cargo run --release -p nanotensor-backends --features int8 --example int8_kernel`.

use nanotensor_backends::int8::kernel::{Kernel, TileOut};
use nanotensor_backends::int8::pack::{PackedA, PackedB};
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

fn main() {
    let kc = 512;
    for kernel in Kernel::all_supported() {
        let (mr, nr) = (kernel.mr(), kernel.nr());
        let a: Vec<i8> = (0..mr * kc).map(|i| (i % 251) as i8 / 2).collect();
        let b: Vec<i8> = (0..nr * kc).map(|i| (i % 241) as i8 / 2).collect();
        let mut pa = PackedA::default();
        pa.pack(&a, mr, kc, mr, kc);
        let pb = PackedB::from_rows(&b, nr, kc, nr);
        let ones = vec![1.0f32; 64];
        let mut c = vec![0.0f32; mr * nr];
        let calls = 20_000;
        let (mut rates, mut cpu_rates) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let t = Instant::now();
            let c0 = process_cpu_secs().unwrap_or(0.0);
            for _ in 0..calls {
                // SAFETY: `c` holds exactly one MR × NR tile with ldc = NR.
                unsafe {
                    kernel.tile(
                        mr,
                        kc / 4,
                        pa.block(0, 0, kc / 4),
                        pa.corr(0, 0),
                        pb.block(0, 0, kc / 4),
                        &TileOut {
                            c: c.as_mut_ptr(),
                            ldc: nr,
                            cols: nr,
                            rs: &ones,
                            cs: &ones,
                            accumulate: true,
                        },
                    )
                };
            }
            let s = t.elapsed().as_secs_f64();
            let cpu = process_cpu_secs().unwrap_or(0.0) - c0;
            let ops = 2.0 * (mr * nr * kc) as f64 * calls as f64;
            rates.push(ops / s / 1e9);
            cpu_rates.push(ops / cpu / 1e9);
        }
        rates.sort_by(f64::total_cmp);
        cpu_rates.sort_by(f64::total_cmp);
        println!(
            "{:<12} MR={mr} NR={nr} kc={kc}: median {:.1} GOP/s per CPU-second; wall: median {:.1} GOP/s (min {:.1}, max {:.1}); c[0]={}",
            kernel.kind().name(),
            cpu_rates[cpu_rates.len() / 2],
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            c[0]
        );
    }
}
