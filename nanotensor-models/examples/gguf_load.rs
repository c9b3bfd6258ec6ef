//! Times opening the model (header parse over a memory map) and dequantizing every tensor.
//!
//! `cargo run --release -p nanotensor --example gguf_load [-- PATH]`
//! (the model is found as by `find_model`: PATH, `$NANOTENSOR_MODEL`, the models directory).

use std::path::PathBuf;
use std::time::Instant;

use nanotensor_models::gguf::{GgmlType, GgufFile};
use nanotensor_models::model_path::find_model;

fn main() -> Result<(), nanotensor_core::Error> {
    let explicit = std::env::args().nth(1).map(PathBuf::from);
    let path = find_model(explicit.as_deref())?;

    let t0 = Instant::now();
    let file = GgufFile::open(&path)?;
    let open_s = t0.elapsed().as_secs_f64();
    println!(
        "open {}: {:.2} ms ({} metadata pairs, {} tensors)",
        path.display(),
        open_s * 1e3,
        file.metadata().len(),
        file.tensors().len()
    );

    // Per type: (stored bytes, values, seconds). Run twice; the first pass pages the file in.
    for pass in ["cold", "warm"] {
        let mut per_type: Vec<(GgmlType, usize, usize, f64)> = Vec::new();
        for info in file.tensors() {
            let t = Instant::now();
            let out = file.dequantize(&info.name)?;
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&out);
            match per_type.iter_mut().find(|e| e.0 == info.ggml_type) {
                Some(e) => (e.1, e.2, e.3) = (e.1 + info.n_bytes, e.2 + out.numel(), e.3 + s),
                None => per_type.push((info.ggml_type, info.n_bytes, out.numel(), s)),
            }
        }
        for (ty, bytes, values, s) in per_type {
            println!(
                "{pass} dequantize {ty:<5} {:>7.1} MB in {:>7.2} ms: {:>6.2} Gvalues/s, {:>5.2} GB/s read",
                bytes as f64 / 1e6,
                s * 1e3,
                values as f64 / s / 1e9,
                bytes as f64 / s / 1e9
            );
        }
    }

    // The kernel alone: the embedding table into a buffer allocated (and touched) once.
    let embd = file.tensor("token_embd.weight")?;
    let mut buf = vec![0f32; embd.n_elements()];
    for _ in 0..3 {
        let t = Instant::now();
        file.dequantize_rows(&embd.name, 0..embd.n_rows(), &mut buf)?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "dequantize_rows {} (reused buffer): {:.2} ms, {:.2} Gvalues/s",
            embd.name,
            s * 1e3,
            buf.len() as f64 / s / 1e9
        );
    }
    Ok(())
}
