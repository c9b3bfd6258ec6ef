//! `nanotensor embed`: sentence embeddings with a BERT sentence encoder (all-MiniLM-L6-v2),
//! one per input text (the positional texts, or the non-empty lines of `--file`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use nanotensor::encoder::{search_lines, Embedder};
use nanotensor::model_path::{find_known_model, MINILM};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
use serde_json::json;

use super::model_io::{default_model_backend, read_utf8_file};
use crate::output::{
    backend_choice_with, backend_help, print_json, print_table, settings_label, with_settings,
    Int8Args,
};

/// Arguments of `nanotensor embed`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model directory (sentence-transformers layout) or its model.safetensors. Default:
    /// $NANOTENSOR_MINILM_MODEL, then all-MiniLM-L6-v2 under $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Embed each non-empty line of this UTF-8 file (after the positional texts).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, default_value = default_model_backend(), help = backend_help())]
    pub backend: String,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object (texts, ids, embeddings, speed) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
    /// The texts (use `--` before text starting with `-`).
    #[arg(allow_hyphen_values = true)]
    pub texts: Vec<String>,
}

/// The model file of `--model` (a directory stands for its `model.safetensors`) or the one the
/// search finds; a missing path is a user error naming the fetch command.
pub fn find_encoder(explicit: Option<&Path>) -> Result<PathBuf> {
    let explicit = explicit.map(|p| {
        if p.is_dir() {
            p.join("model.safetensors")
        } else {
            p.to_path_buf()
        }
    });
    find_known_model(&MINILM, explicit.as_deref())
}

/// The non-blank lines of `path` ([`search_lines`]), for subcommand `op`.
pub fn read_lines(op: &'static str, path: &Path) -> Result<Vec<String>> {
    Ok(search_lines(&read_utf8_file(op, path)?)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// What one run of the encoder gives back.
pub struct Embedded {
    pub backend: &'static str,
    pub threads: usize,
    /// Each text's model input.
    pub ids: Vec<Vec<u32>>,
    pub embeddings: Vec<Vec<f32>>,
    /// Loading the model (reading, preparing the weights).
    pub load_seconds: f64,
    /// Tokenizing and encoding every text.
    pub seconds: f64,
}

impl Embedded {
    /// Tokens over all inputs, `[CLS]` and `[SEP]` included.
    pub fn tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
}

/// Loads the encoder at `model` on the chosen backend and embeds `texts`.
pub fn embed_texts(
    model: &Path,
    kind: BackendKind,
    opts: BackendOptions,
    texts: &[String],
) -> Result<Embedded> {
    with_backend(kind, opts, Run { model, texts })
}

struct Run<'a> {
    model: &'a Path,
    texts: &'a [String],
}

impl BackendVisitor for Run<'_> {
    type Output = Embedded;

    fn visit<B: Backend>(self, backend: B) -> Result<Embedded> {
        let (name, threads) = (backend.name(), backend.threads());
        let t0 = Instant::now();
        let embedder = Embedder::load(self.model, backend)?;
        let load_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let ids: Vec<Vec<u32>> = self.texts.iter().map(|t| embedder.encode(t)).collect();
        let embeddings = embedder.embed_ids(&ids)?;
        Ok(Embedded {
            backend: name,
            threads,
            ids,
            embeddings,
            load_seconds,
            seconds: t1.elapsed().as_secs_f64(),
        })
    }
}

/// Runs `nanotensor embed`.
pub fn run(args: Args) -> Result<()> {
    let (kind, opts) = backend_choice_with(&args.backend, args.threads, &args.int8)?;
    let mut texts = args.texts.clone();
    if let Some(file) = &args.file {
        texts.extend(read_lines("embed", file)?);
    }
    if texts.is_empty() {
        return Err(Error::invalid_arg(
            "embed",
            "nothing to embed: give texts after the options or --file",
        ));
    }
    let model = find_encoder(args.model.as_deref())?;
    let r = embed_texts(&model, kind, opts, &texts)?;
    let tokens = r.tokens();
    let sentences_per_s = texts.len() as f64 / r.seconds;
    let tokens_per_s = tokens as f64 / r.seconds;
    if args.json {
        print_json(&with_settings(
            json!({
                "model": model.display().to_string(),
                "backend": r.backend,
                "threads": r.threads,
                "texts": texts,
                "ids": r.ids,
                "embeddings": r.embeddings,
                "dim": r.embeddings.first().map_or(0, Vec::len),
                "sentences": texts.len(),
                "tokens": tokens,
                "load_seconds": r.load_seconds,
                "seconds": r.seconds,
                "sentences_per_s": sentences_per_s,
                "tokens_per_s": tokens_per_s,
            }),
            kind,
            &opts,
        ));
    } else {
        let mut rows = vec![vec![
            "#".into(),
            "tokens".into(),
            "embedding (first 4 of 384)".into(),
            "text".into(),
        ]];
        for (i, ((text, ids), e)) in texts.iter().zip(&r.ids).zip(&r.embeddings).enumerate() {
            let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.4}")).collect();
            let mut shown: String = text.chars().take(60).collect();
            if text.chars().count() > 60 {
                shown.push('…');
            }
            rows.push(vec![
                i.to_string(),
                ids.len().to_string(),
                head.join(" "),
                shown,
            ]);
        }
        print_table(&rows);
        let backend = match settings_label(kind, &opts) {
            Some(l) => format!("{} ({} threads; {l})", r.backend, r.threads),
            None => format!("{} ({} threads)", r.backend, r.threads),
        };
        println!(
            "{backend}: {} sentences, {tokens} tokens in {:.3} s ({sentences_per_s:.1} sentences/s, {tokens_per_s:.0} tokens/s); load {:.2} s",
            texts.len(),
            r.seconds,
            r.load_seconds
        );
    }
    Ok(())
}
