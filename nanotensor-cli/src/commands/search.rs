//! `nanotensor search`: ranks the non-empty lines of a file by the cosine similarity of their
//! sentence embeddings to a query's (semantic search with the BERT sentence encoder).

use std::path::PathBuf;

use nanotensor::encoder::rank_by_cosine;
use nanotensor::{Error, Result};
use serde_json::json;

use super::embed::{embed_texts, find_encoder, read_lines};
use super::model_io::default_model_backend;
use crate::output::{
    backend_choice_with, backend_help, print_json, print_table, with_settings, Int8Args,
};

/// Arguments of `nanotensor search`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model directory (sentence-transformers layout) or its model.safetensors. Default:
    /// $NANOTENSOR_MINILM_MODEL, then all-MiniLM-L6-v2 under $NANOTENSOR_MODELS_DIR or ./models.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The UTF-8 file whose non-empty lines are ranked.
    #[arg(long)]
    pub file: PathBuf,
    /// How many lines to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
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
    /// The query (its words are joined with spaces; use `--` before text starting with `-`).
    #[arg(required = true, allow_hyphen_values = true)]
    pub query: Vec<String>,
}

/// Runs `nanotensor search`.
pub fn run(args: Args) -> Result<()> {
    let (kind, opts) = backend_choice_with(&args.backend, args.threads, &args.int8)?;
    if args.top == 0 {
        return Err(Error::invalid_arg("search", "--top must be at least 1"));
    }
    let query = args.query.join(" ");
    let lines = read_lines("search", &args.file)?;
    if lines.is_empty() {
        return Err(Error::invalid_arg(
            "search",
            format!("{} has no non-empty line to rank", args.file.display()),
        ));
    }
    let model = find_encoder(args.model.as_deref())?;
    let mut texts = Vec::with_capacity(lines.len() + 1);
    texts.push(query.clone());
    texts.extend(lines.iter().cloned());
    let r = embed_texts(&model, kind, opts, &texts)?;
    let (q, rest) = r.embeddings.split_first().expect("the query was embedded");
    // Highest score first; equal scores keep file order.
    let mut ranked = rank_by_cosine(q, rest);
    ranked.truncate(args.top);
    let sentences_per_s = texts.len() as f64 / r.seconds;
    if args.json {
        let results: Vec<_> = ranked
            .iter()
            .enumerate()
            .map(|(rank, &(i, score))| {
                json!({"rank": rank + 1, "line": i + 1, "score": score, "text": lines[i]})
            })
            .collect();
        print_json(&with_settings(
            json!({
                "model": model.display().to_string(),
                "file": args.file.display().to_string(),
                "query": query,
                "backend": r.backend,
                "threads": r.threads,
                "lines": lines.len(),
                "results": results,
                "seconds": r.seconds,
                "sentences_per_s": sentences_per_s,
                "tokens_per_s": r.tokens() as f64 / r.seconds,
            }),
            kind,
            &opts,
        ));
    } else {
        let mut rows = vec![vec![
            "rank".into(),
            "score".into(),
            "line".into(),
            "text".into(),
        ]];
        for (rank, &(i, score)) in ranked.iter().enumerate() {
            rows.push(vec![
                (rank + 1).to_string(),
                format!("{score:.4}"),
                (i + 1).to_string(),
                lines[i].clone(),
            ]);
        }
        print_table(&rows);
        println!(
            "{} lines ranked on {} ({} threads) in {:.3} s ({sentences_per_s:.1} sentences/s)",
            lines.len(),
            r.backend,
            r.threads,
            r.seconds
        );
    }
    Ok(())
}
