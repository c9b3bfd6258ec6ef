//! Which activations does symmetric int8 quantization hurt? Perplexity (llama.cpp's method,
//! GPL-3 text, n_ctx 128) with the *input* of one class of linear layers replaced by its int8
//! round trip `round(x / s)·s`, `s = max|x| / 127` over each group of values; weights stay f32.
//! The group is what the int8 backend's activation granularities use:
//!
//! * `per-tensor` — the whole call's input (every token row of a prefill batch at once);
//! * `per-row` — one token row;
//! * `per-block-N` — `N` consecutive values of a row (llama.cpp's Q8_0 activations: `N` = 32).
//!
//! A wrapper backend tags each prepared weight with its class (by load order: q, k, v, o, gate,
//! up, down per block, then the output head). Arguments: the granularities to run (default
//! `per-row per-block-32`); class `all` quantizes every linear input at once.
//!
//! `cargo run --release -p nanotensor-backends --features blocked --example act_quant_sensitivity -- per-block-32`

use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use nanotensor_backends::{with_backend, BackendOptions, BackendVisitor};
use nanotensor_core::attention::{AttentionDims, AttentionPlan, AttentionSpec, Heads, HeadsMut};
use nanotensor_core::shape::MatmulDims;
use nanotensor_core::{Backend, Element, PreparedWeight, Result, Tensor};
use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model::{perplexity, Llama};

const CLASSES: [&str; 9] = ["q", "k", "v", "o", "gate", "up", "down", "head", "all"];
/// Index of `all` in [`CLASSES`].
const ALL: usize = 8;

/// How many consecutive input values share one scale.
#[derive(Clone, Copy)]
enum Group {
    /// The whole input of the call.
    Call,
    /// One token row.
    Row,
    /// `n` values of a row.
    Block(usize),
}

impl Group {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "per-tensor" => Some(Group::Call),
            "per-row" => Some(Group::Row),
            _ => s.strip_prefix("per-block-")?.parse().ok().map(Group::Block),
        }
    }
}

/// Symmetric int8 round trip of each group of `len` consecutive values.
fn round_trip<T: Element>(x: &mut [T], len: usize) {
    for g in x.chunks_mut(len.max(1)) {
        let max = g.iter().fold(0f32, |m, v| m.max(v.as_f32().abs()));
        if max > 0.0 {
            let s = max / 127.0;
            for v in g.iter_mut() {
                *v = T::from_f32((v.as_f32() / s).round().clamp(-127.0, 127.0) * s);
            }
        }
    }
}

/// `inner`, but the input rows of linear layers of class `target` are int8-round-tripped.
struct FakeQuant<B> {
    inner: B,
    target: Option<usize>,
    group: Group,
    n_layers: usize,
    prepared: AtomicUsize,
}

struct Tagged<W> {
    w: W,
    class: usize,
}

impl<W: PreparedWeight> PreparedWeight for Tagged<W> {
    fn shape(&self) -> [usize; 2] {
        self.w.shape()
    }
    fn size_bytes(&self) -> usize {
        self.w.size_bytes()
    }
}

impl<B: Backend> Backend for FakeQuant<B> {
    type Weight<T: Element> = Tagged<B::Weight<T>>;
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn matmul_impl<T: Element>(
        &self,
        a: &Tensor<T>,
        b: &Tensor<T>,
        out: &mut Tensor<T>,
        d: &MatmulDims,
    ) -> Result<()> {
        self.inner.matmul_impl(a, b, out, d)
    }
    fn softmax_impl<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.inner.softmax_impl(x)
    }
    fn attention_plan_impl<T: Element>(
        &self,
        d: &AttentionDims,
        s: &AttentionSpec,
    ) -> Result<AttentionPlan> {
        self.inner.attention_plan_impl::<T>(d, s)
    }
    fn attention_impl<T: Element>(
        &self,
        q: Heads<'_, T>,
        k: Heads<'_, T>,
        v: Heads<'_, T>,
        out: HeadsMut<'_, T>,
        dims: &AttentionDims,
        spec: &AttentionSpec,
        plan: &AttentionPlan,
    ) -> Result<()> {
        self.inner.attention_impl(q, k, v, out, dims, spec, plan)
    }
    fn prepare_impl<T: Element>(&self, w: Tensor<T>, _: [usize; 2]) -> Result<Self::Weight<T>> {
        let i = self.prepared.fetch_add(1, Ordering::Relaxed);
        let class = if i < 7 * self.n_layers { i % 7 } else { 7 };
        Ok(Tagged {
            w: self.inner.prepare(w)?,
            class,
        })
    }
    fn linear_impl<T: Element>(
        &self,
        x: &[T],
        rows: usize,
        w: &Self::Weight<T>,
        out: &mut [T],
    ) -> Result<()> {
        if self.target != Some(ALL) && Some(w.class) != self.target {
            return self.inner.linear_into(x, rows, &w.w, out);
        }
        let mut xq = x.to_vec();
        let len = match self.group {
            Group::Call => x.len(),
            Group::Row => x.len() / rows.max(1),
            Group::Block(n) => n,
        };
        round_trip(&mut xq, len);
        self.inner.linear_into(&xq, rows, &w.w, out)
    }
}

struct Ppl<'a> {
    file: &'a GgufFile,
    tokens: &'a [u32],
    target: Option<usize>,
    group: Group,
}

impl BackendVisitor for Ppl<'_> {
    type Output = f64;
    fn visit<B: Backend>(self, backend: B) -> Result<f64> {
        let n_layers = self.file.get_usize("llama.block_count")?;
        let fq = FakeQuant {
            inner: backend,
            target: self.target,
            group: self.group,
            n_layers,
            prepared: AtomicUsize::new(0),
        };
        let model = Llama::load(fq, self.file)?;
        Ok(perplexity(&model, self.tokens, 128, |_, _| {})?.ppl)
    }
}

fn main() -> Result<()> {
    let (file, tokens, kind) = common::model_text_backend()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = if args.is_empty() {
        vec!["per-row".to_string(), "per-block-32".to_string()]
    } else {
        args
    };
    let run = |target, group| {
        with_backend(
            kind,
            BackendOptions::default(),
            Ppl {
                file: &file,
                tokens: &tokens,
                target,
                group,
            },
        )
    };
    let base = run(None, Group::Row)?;
    println!("{kind}: f32 activations: ppl {base:.4}");
    for g in &names {
        let Some(group) = Group::parse(g) else {
            eprintln!("unknown granularity `{g}` (per-tensor, per-row, per-block-N)");
            std::process::exit(2);
        };
        for (c, name) in CLASSES.iter().enumerate() {
            let p = run(Some(c), group)?;
            println!(
                "int8 {g} input of {name:<5}: ppl {p:.4} ({:+.2}%)",
                100.0 * (p / base - 1.0)
            );
        }
    }
    Ok(())
}
