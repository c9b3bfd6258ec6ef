//! Times the int8 microkernel alone on packed, cache-resident data and prints GOP/s (median of
//! repeats) for every kernel this CPU supports. Run with
//! `cargo run --release -p nanotensor-backends --features int8 --example int8_kernel`.

use nanotensor_backends::int8::kernel::{Kernel, TileOut};
use nanotensor_backends::int8::pack::{PackedA, PackedB};
use std::time::Instant;

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
        let mut rates = Vec::new();
        for _ in 0..9 {
            let t = Instant::now();
            for _ in 0..calls {
                // SAFETY: `c` holds exactly one MR × NR tile with ldc = NR.
                unsafe {
                    kernel.tile(
                        mr,
                        kc / 4,
                        pa.block(0, 0, kc / 4),
                        pa.corr(0, 0),
                        pb.block(0, 0, kc / 4),
                        TileOut {
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
            rates.push(2.0 * (mr * nr * kc) as f64 * calls as f64 / s / 1e9);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{:<12} MR={mr} NR={nr} kc={kc}: median {:.1} GOP/s (min {:.1}, max {:.1}); c[0]={}",
            kernel.kind().name(),
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            c[0]
        );
    }
}
