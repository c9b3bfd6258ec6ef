//! `nanotensor bench-model`: prefill and decode speed of the model per backend, with the KV
//! cache on and off.
//!
//! Prefill: one batched pass over a `--prompt-tokens` prompt (default 128, llama-bench's `pp128`).
//! Decode: `--decode-tokens` steps after it (default 64), greedy, never stopping at EOS. With the
//! cache off every decode step reruns the whole prefix, so its tok/s falls as the sequence grows.

use std::path::PathBuf;

use nanotensor::model::{generate, GenerateOptions, Llama, StopAt};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendVisitor};
use serde_json::json;

use super::model_io::open_model;
use crate::output::{
    backend_options, median, print_json, print_table, settings_label, with_all_settings, Int8Args,
};

/// Prompt text for the benchmark, repeated until it fills `--prompt-tokens`.
const BENCH_TEXT: &str = "The lighthouse keeper climbed the spiral stairs every evening, \
counting the steps out of habit, and lit the lamp before the fishing boats turned for home. \
In winter the storms came early and the sea threw spray as high as the gallery rail, but the \
light never failed, because she cleaned the lens each morning and kept spare wicks in a tin box.";

/// Which KV cache modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KvMode {
    /// Cache on and off.
    Both,
    /// Cache on only.
    On,
    /// Cache off only.
    Off,
}

/// Arguments of `nanotensor bench-model`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (GGUF). Default: $NANOTENSOR_MODEL, $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend to measure (default: every backend compiled in).
    #[arg(long)]
    pub backend: Option<String>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prompt length of the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Decode steps measured after the prompt.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// KV cache modes to measure.
    #[arg(long, value_enum, default_value = "both")]
    pub kv_cache: KvMode,
    /// Runs per configuration; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct Row {
    backend: &'static str,
    threads: usize,
    kv_cache: bool,
    prefill: f64,
    decode: f64,
    weights_bytes: usize,
    kv_bytes: usize,
}

/// Runs `nanotensor bench-model`.
pub fn run(args: Args) -> Result<()> {
    if args.prompt_tokens == 0 || args.decode_tokens == 0 || args.repeat == 0 {
        return Err(Error::invalid_arg(
            "bench-model",
            "--prompt-tokens, --decode-tokens and --repeat must be at least 1",
        ));
    }
    let kinds = match &args.backend {
        Some(name) => vec![BackendKind::parse(name)?],
        None => BackendKind::compiled(),
    };
    // The same options for every backend, validated before any model work.
    let opts = backend_options(args.threads, &args.int8)?;
    let file = open_model(args.model.as_deref())?;
    let base = file.tokenizer.encode(BENCH_TEXT);
    let prompt: Vec<u32> = base
        .iter()
        .copied()
        .cycle()
        .take(args.prompt_tokens)
        .collect();
    let modes: &[bool] = match args.kv_cache {
        KvMode::Both => &[true, false],
        KvMode::On => &[true],
        KvMode::Off => &[false],
    };
    let mut rows = Vec::new();
    for &kind in &kinds {
        rows.extend(with_backend(
            kind,
            opts,
            Bench {
                args: &args,
                gguf: &file.gguf,
                prompt: &prompt,
                modes,
            },
        )?);
    }
    let ratio = |backend: &str| {
        let on = rows.iter().find(|r| r.backend == backend && r.kv_cache)?;
        let off = rows.iter().find(|r| r.backend == backend && !r.kv_cache)?;
        Some(on.decode / off.decode)
    };
    if args.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "backend": r.backend,
                    "threads": r.threads,
                    "kv_cache": r.kv_cache,
                    "prefill_tokens_per_s": r.prefill,
                    "decode_tokens_per_s": r.decode,
                    "weights_bytes": r.weights_bytes,
                    "kv_cache_bytes": r.kv_bytes,
                })
            })
            .collect();
        let mut ratios = serde_json::Map::new();
        for r in &rows {
            if let Some(x) = ratio(r.backend) {
                ratios.insert(r.backend.to_string(), json!(x));
            }
        }
        print_json(&with_all_settings(
            json!({
                "prompt_tokens": args.prompt_tokens,
                "decode_tokens": args.decode_tokens,
                "repeat": args.repeat,
                "results": results,
                "kv_off_over_on_decode_time": ratios,
            }),
            &opts,
        ));
    } else {
        let mut table = vec![vec![
            "backend".to_string(),
            "threads".into(),
            "KV cache".into(),
            format!("prefill tok/s (pp{})", args.prompt_tokens),
            format!("decode tok/s (tg{})", args.decode_tokens),
            "weights".into(),
            "KV buffers".into(),
        ]];
        for r in &rows {
            table.push(vec![
                r.backend.into(),
                r.threads.to_string(),
                if r.kv_cache { "on" } else { "off" }.into(),
                format!("{:.1}", r.prefill),
                format!("{:.1}", r.decode),
                nanotensor::error::human_bytes(r.weights_bytes as u64),
                nanotensor::error::human_bytes(r.kv_bytes as u64),
            ]);
        }
        print_table(&table);
        for &kind in &kinds {
            if let Some(l) = settings_label(kind, &opts) {
                println!("{kind}: {l}");
            }
        }
        let mut seen = Vec::new();
        for r in &rows {
            if seen.contains(&r.backend) {
                continue;
            }
            seen.push(r.backend);
            if let Some(x) = ratio(r.backend) {
                println!(
                    "{}: decoding {} tokens takes {x:.1}× as long without the KV cache",
                    r.backend, args.decode_tokens
                );
            }
        }
    }
    Ok(())
}

struct Bench<'a> {
    args: &'a Args,
    gguf: &'a nanotensor::gguf::GgufFile,
    prompt: &'a [u32],
    modes: &'a [bool],
}

impl BackendVisitor for Bench<'_> {
    type Output = Vec<Row>;

    fn visit<B: Backend>(self, backend: B) -> Result<Vec<Row>> {
        let (name, threads) = (backend.name(), backend.threads());
        let model = Llama::load(backend, self.gguf)?;
        let mut rows = Vec::new();
        for &kv_cache in self.modes {
            let opts = GenerateOptions {
                // The first token comes out of the prefill; then `decode_tokens` decode steps.
                max_new_tokens: self.args.decode_tokens + 1,
                kv_cache,
                stop: StopAt::Never,
                ..Default::default()
            };
            let (mut pre, mut dec) = (Vec::new(), Vec::new());
            let mut kv_bytes = 0;
            for _ in 0..self.args.repeat {
                let g = generate(&model, self.prompt, &opts, |_| Ok(()))?;
                pre.push(g.stats.prefill_tokens_per_s);
                dec.push(g.stats.decode_tokens_per_s);
                kv_bytes = g.stats.kv_cache_bytes;
            }
            eprintln!(
                "{name}, KV cache {}: prefill {:.1} tok/s, decode {:.1} tok/s",
                if kv_cache { "on" } else { "off" },
                median(&mut pre),
                median(&mut dec)
            );
            rows.push(Row {
                backend: name,
                threads,
                kv_cache,
                prefill: median(&mut pre),
                decode: median(&mut dec),
                weights_bytes: model.weights_bytes(),
                kv_bytes,
            });
        }
        Ok(rows)
    }
}
