//! `nanotensor perplexity`: llama.cpp's perplexity method on a text file (see
//! [`nanotensor::model::perplexity`]).

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nanotensor::model::{
    perplexity_with, Llama, PerplexityInput, PerplexityReport, TransformerConfig,
};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendVisitor};
use serde_json::json;

use super::model_io::{default_model_backend, open_model, read_utf8_file};
use crate::output::{
    backend_choice_with, backend_help, print_json, print_table, settings_label, transforms_json,
    transforms_label, with_settings, Int8Args, WeightArgs,
};

/// Arguments of `nanotensor perplexity`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (GGUF). Default: $NANOTENSOR_MODEL, $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// UTF-8 text to score (one trailing newline is stripped, as llama.cpp does).
    #[arg(long)]
    pub file: PathBuf,
    /// Tokens per chunk; the second half of each chunk is scored.
    #[arg(long, default_value_t = 128)]
    pub ctx: usize,
    #[arg(long, default_value = default_model_backend(), help = backend_help())]
    pub backend: String,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
    #[command(flatten)]
    pub weights: WeightArgs,
}

/// Runs `nanotensor perplexity`.
pub fn run(args: Args) -> Result<()> {
    let (kind, mut opts) = backend_choice_with(&args.backend, args.threads, &args.int8)?;
    args.weights.apply(&[kind], &mut opts)?;
    if args.ctx < 4 {
        return Err(Error::invalid_arg("perplexity", "--ctx must be at least 4"));
    }
    let text = read_utf8_file("perplexity", &args.file)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let file = open_model(args.model.as_deref())?;
    let context = TransformerConfig::from_gguf(&file.gguf)?.context_length;
    if args.ctx > context {
        return Err(Error::ContextOverflow {
            op: "perplexity",
            needed: args.ctx,
            capacity: context,
            detail: " (--ctx)".into(),
        });
    }
    // BOS in front and at the start of every chunk when the model asks for it, as llama.cpp.
    let input = PerplexityInput::new(&file.tokenizer, text);
    let tokens = &input.tokens;
    if tokens.len() < args.ctx {
        return Err(Error::invalid_arg(
            "perplexity",
            format!(
                "{} has {} tokens, fewer than one chunk of --ctx {}",
                args.file.display(),
                tokens.len(),
                args.ctx
            ),
        ));
    }
    let t0 = Instant::now();
    let (backend, threads, transforms, r) = with_backend(
        kind,
        opts,
        Run {
            gguf: &file.gguf,
            tokens,
            chunk_bos: input.chunk_bos,
            n_ctx: args.ctx,
        },
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    if args.json {
        print_json(&with_settings(
            json!({
                "model": file.path.display().to_string(),
                "file": args.file.display().to_string(),
                "backend": backend,
                "threads": threads,
                "dtype": args.weights.name(),
                "load_transforms": transforms_json(transforms),
                "ctx": r.n_ctx,
                "tokens": tokens.len(),
                "chunk_bos": input.chunk_bos,
                "chunks": r.chunks,
                "tokens_scored": r.tokens_scored,
                "mean_nll": r.mean_nll,
                "ppl": r.ppl,
                "eval_seconds": r.seconds,
                "seconds": seconds,
                "tokens_per_s": r.chunks as f64 * r.n_ctx as f64 / r.seconds,
            }),
            kind,
            &opts,
        ));
    } else {
        print_table(&[
            vec!["field".into(), "value".into()],
            vec![
                "backend".into(),
                match settings_label(kind, &opts) {
                    Some(l) => format!("{backend} ({threads} threads; {l})"),
                    None => format!("{backend} ({threads} threads)"),
                },
            ],
            vec!["weight rewrites".into(), transforms_label(transforms)],
            vec![
                "file".into(),
                format!("{} ({} tokens)", args.file.display(), tokens.len()),
            ],
            vec!["ctx".into(), r.n_ctx.to_string()],
            vec!["chunks".into(), r.chunks.to_string()],
            vec!["tokens scored".into(), r.tokens_scored.to_string()],
            vec!["perplexity".into(), format!("{:.4}", r.ppl)],
            vec![
                "eval time".into(),
                format!(
                    "{:.2} s ({:.0} tok/s)",
                    r.seconds,
                    r.chunks as f64 * r.n_ctx as f64 / r.seconds
                ),
            ],
        ]);
    }
    Ok(())
}

struct Run<'a> {
    gguf: &'a nanotensor::gguf::GgufFile,
    tokens: &'a [u32],
    chunk_bos: Option<u32>,
    n_ctx: usize,
}

impl BackendVisitor for Run<'_> {
    type Output = (
        &'static str,
        usize,
        nanotensor::LoadTransforms,
        PerplexityReport,
    );

    fn visit<B: Backend>(self, backend: B) -> Result<Self::Output> {
        let (name, threads) = (backend.name(), backend.threads());
        let model = Llama::load(backend, self.gguf)?;
        let chunks = (self.tokens.len() / self.n_ctx) as u64;
        let bar = ProgressBar::with_draw_target(Some(chunks), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("perplexity {bar:40} {pos}/{len} chunks, ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let r = perplexity_with(
            &model,
            self.tokens,
            self.n_ctx,
            self.chunk_bos,
            |done, _| bar.set_position(done as u64),
        );
        bar.finish_and_clear();
        Ok((name, threads, model.transforms(), r?))
    }
}
