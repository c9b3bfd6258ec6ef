//! `nanotensor info`: what a GGUF model file holds — architecture, hyperparameters, tensors,
//! parameter count and tokenizer — and how the model runs (or why it cannot).

use std::path::PathBuf;

use nanotensor::gguf::GgufFile;
use nanotensor::model::{Activation, RopeStyle, TransformerConfig};
use nanotensor::model_path::find_model;
use nanotensor::tokenizer::Tokenizer;
use nanotensor::Result;
use serde_json::json;

use crate::output::print_json;

/// Arguments of `nanotensor info`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model file (default: $NANOTENSOR_MODEL, then $NANOTENSOR_MODELS_DIR or ./models).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `nanotensor info`.
pub fn run(args: Args) -> Result<()> {
    let path = find_model(args.model.as_deref())?;
    let gguf = GgufFile::open(&path)?;
    let summary = gguf.summary();
    // A file without a (supported) vocabulary still gets its summary.
    let tokenizer = Tokenizer::from_gguf(&gguf);
    let config = TransformerConfig::from_gguf(&gguf);
    if args.json {
        let tensors: Vec<_> = summary
            .tensors
            .iter()
            .map(|t| json!({"name": t.name, "shape": t.shape, "type": t.ggml_type.name(), "bytes": t.n_bytes}))
            .collect();
        let by_type: Vec<_> = summary
            .by_type
            .iter()
            .map(|t| json!({"type": t.ggml_type.name(), "tensors": t.n_tensors, "params": t.n_elements, "bytes": t.n_bytes}))
            .collect();
        let hyper: serde_json::Map<String, serde_json::Value> = summary
            .hyperparameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let tok = match &tokenizer {
            Ok(t) => json!({
                "model": t.model_name(), "vocab_size": t.vocab_size(), "merges": t.merge_count(),
                "bos": t.bos(), "eos": t.eos(), "add_bos": t.add_bos(),
                "pre": t.pre_tokenizer().map(|p| format!("{p:?}")),
            }),
            Err(e) => json!({"error": e.to_string()}),
        };
        print_json(&json!({
            "path": path.display().to_string(),
            "version": summary.version,
            "file_bytes": summary.file_bytes,
            "architecture": summary.architecture,
            "name": summary.name,
            "hyperparameters": hyper,
            "n_params": summary.n_params,
            "tensor_bytes": summary.tensor_bytes,
            "by_type": by_type,
            "tensors": tensors,
            "tokenizer": tok,
            "model": match &config {
                Ok(c) => json!({
                    "runs": true, "architecture": c.architecture.name(), "head_dim": c.head_dim,
                    "how": model_line(c),
                }),
                Err(e) => json!({"runs": false, "error": e.to_string()}),
            },
        }));
    } else {
        print!("{summary}");
        println!();
        match &tokenizer {
            Ok(t) => {
                let family = match t.pre_tokenizer() {
                    Some(pre) => format!(
                        "byte-level BPE, {} tokens, {} merges, pre-tokenizer {pre:?}",
                        t.vocab_size(),
                        t.merge_count()
                    ),
                    None => format!("SentencePiece-style, {} tokens", t.vocab_size()),
                };
                println!(
                    "tokenizer: {family}, BOS {:?}{}, EOS {:?}",
                    t.bos(),
                    if t.add_bos() { " (added)" } else { "" },
                    t.eos()
                )
            }
            Err(e) => println!("tokenizer: unavailable ({e})"),
        }
        match &config {
            Ok(c) => println!(
                "model: runs as {}: {}",
                c.architecture.name(),
                model_line(c)
            ),
            Err(e) => println!("model: cannot run ({e})"),
        }
    }
    Ok(())
}

/// How the forward pass runs this configuration: its shape and the hooks it switches on.
fn model_line(c: &TransformerConfig) -> String {
    let mut parts = vec![format!(
        "{} layers, {} query / {} KV heads of {}",
        c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim
    )];
    parts.push(match c.activation {
        Activation::Silu => "SwiGLU".into(),
        Activation::GeluTanh => "GELU-tanh gate".into(),
    });
    parts.push(match c.rope_style {
        RopeStyle::Adjacent => "RoPE on adjacent pairs".into(),
        RopeStyle::Neox => "NEOX RoPE".into(),
    });
    if let Some(s) = c.embed_scale {
        parts.push(format!("embedding × {s}"));
    }
    if c.qk_norm {
        parts.push("Q/K norms".into());
    }
    if c.post_norms {
        parts.push("post-norms".into());
    }
    if let Some(w) = &c.sliding_window {
        let local = (0..c.n_layers)
            .filter(|&l| c.layer_window(l).is_some())
            .count();
        parts.push(format!(
            "sliding window {} on {local} of {} layers (RoPE base {})",
            w.size, c.n_layers, w.rope_base
        ));
    }
    if let Some(cap) = c.final_logit_softcap {
        parts.push(format!("logit cap {cap}"));
    }
    parts.join(", ")
}
