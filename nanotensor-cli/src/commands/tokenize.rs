//! `nanotensor tokenize`: text → token ids with the model's tokenizer (byte-level BPE or
//! SentencePiece-style, as the file says). No BOS is added, as `llama-tokenize --no-bos`.
//!
//! The text is taken verbatim — leading and trailing whitespace and newlines included — from the
//! positional argument, `--file`, or standard input.

use std::io::Read;
use std::path::PathBuf;

use nanotensor::gguf::GgufFile;
use nanotensor::model_path::find_model;
use nanotensor::tokenizer::Tokenizer;
use nanotensor::{Error, Result};
use serde_json::json;

use super::model_io::read_utf8_file;
use crate::output::{print_json, print_table};

/// Arguments of `nanotensor tokenize`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (default: $NANOTENSOR_MODEL, then $NANOTENSOR_MODELS_DIR or ./models).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Read the text from this file instead.
    #[arg(long, conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// Print `{"ids": [...]}` (plus pieces) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The text, verbatim (use `--` before text starting with `-`). Without it and without
    /// `--file`, standard input is read.
    #[arg(allow_hyphen_values = true)]
    pub text: Option<String>,
}

fn read_text(args: &Args) -> Result<String> {
    if let Some(text) = &args.text {
        return Ok(text.clone());
    }
    if let Some(path) = &args.file {
        return read_utf8_file("tokenize", path);
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            op: "tokenize",
            path: "<stdin>".into(),
            source,
        })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid_arg(
            "tokenize",
            format!(
                "standard input is not valid UTF-8 text (first bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Runs `nanotensor tokenize`.
pub fn run(args: Args) -> Result<()> {
    let text = read_text(&args)?;
    let path = find_model(args.model.as_deref())?;
    let gguf = GgufFile::open(&path)?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let ids = tok.encode(&text);
    if args.json {
        let pieces: Vec<&str> = ids
            .iter()
            .map(|&id| tok.token_piece(id).unwrap_or(""))
            .collect();
        print_json(&json!({"ids": ids, "pieces": pieces}));
    } else {
        let mut rows = vec![vec![
            "#".to_string(),
            "id".to_string(),
            "piece".to_string(),
            "bytes".to_string(),
        ]];
        for (i, &id) in ids.iter().enumerate() {
            let bytes = tok.token_bytes(id)?;
            rows.push(vec![
                i.to_string(),
                id.to_string(),
                tok.token_piece(id)?.to_string(),
                format!("{:?}", String::from_utf8_lossy(bytes)),
            ]);
        }
        print_table(&rows);
        println!("{} tokens", ids.len());
    }
    Ok(())
}
