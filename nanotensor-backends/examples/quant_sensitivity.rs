//! Which weight tensors does symmetric int8 quantization hurt? Perplexity (llama.cpp's method,
//! GPL-3 text, n_ctx 128) with the weights of one tensor class at a time replaced by their int8
//! round trip `round(w / s)·s`, `s = max|w| / 127`, per tensor or per row; activations stay f32.
//!
//! `cargo run --release -p nanotensor-backends --features blocked --example quant_sensitivity`
//! (the fastest float backend compiled in is used; set `NANOTENSOR_MODELS_DIR`).

mod common;

use nanotensor_backends::{with_backend, BackendOptions, BackendVisitor};
use nanotensor_core::{Backend, Result, Tensor};
use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model::{perplexity, Llama};

/// Symmetric int8 round trip of each group of `group` consecutive values.
fn round_trip(w: Tensor<f32>, group: usize) -> Result<Tensor<f32>> {
    let shape = w.shape().to_vec();
    let mut v = w.to_vec();
    for g in v.chunks_mut(group) {
        let max = g.iter().fold(0f32, |m, x| m.max(x.abs()));
        if max == 0.0 {
            continue;
        }
        let s = max / 127.0;
        for x in g.iter_mut() {
            *x = (*x / s).round().clamp(-127.0, 127.0) * s;
        }
    }
    Tensor::from_vec(v, &shape)
}

struct Ppl<'a> {
    file: &'a GgufFile,
    tokens: &'a [u32],
    /// Tensor-name fragment to quantize (empty: every matrix; `None`: none).
    class: Option<&'a str>,
    per_row: bool,
}

impl BackendVisitor for Ppl<'_> {
    type Output = f64;
    fn visit<B: Backend>(self, backend: B) -> Result<f64> {
        let (class, per_row) = (self.class, self.per_row);
        let model = Llama::load_with(backend, self.file, |name, w| match class {
            Some(c) if name.contains(c) => {
                let group = if per_row { w.shape()[1] } else { w.numel() };
                round_trip(w, group)
            }
            _ => Ok(w),
        })?;
        Ok(perplexity(&model, self.tokens, 128, |_, _| {})?.ppl)
    }
}

fn main() -> Result<()> {
    let (file, tokens, kind) = common::model_text_backend()?;
    let run = |class, per_row| {
        with_backend(
            kind,
            BackendOptions::default(),
            Ppl {
                file: &file,
                tokens: &tokens,
                class,
                per_row,
            },
        )
    };
    let base = run(None, false)?;
    println!("{kind}: f32 weights: ppl {base:.4}");
    let classes = [
        "",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
        "token_embd",
    ];
    for class in classes {
        for per_row in [false, true] {
            let p = run(Some(class), per_row)?;
            println!(
                "int8 {:<11} {:<10}: ppl {p:.4} ({:+.2}%)",
                if class.is_empty() { "all" } else { class },
                if per_row { "per-row" } else { "per-tensor" },
                100.0 * (p / base - 1.0)
            );
        }
    }
    Ok(())
}
