//! Sentence embeddings with a BERT encoder from a sentence-transformers directory
//! (all-MiniLM-L6-v2): [`Embedder`] = the WordPiece tokenizer + [`Bert`] + mean pooling + L2
//! normalisation.
//!
//! ```no_run
//! use nanotensor_backends::blocked::BlockedBackend;
//! use nanotensor_models::encoder::{cosine, Embedder};
//!
//! let embedder = Embedder::load("models/all-MiniLM-L6-v2", BlockedBackend::new(2)?)?;
//! let e = embedder.embed(&["A man plays a guitar.", "Someone makes music."])?;
//! println!("similarity {:.3}", cosine(&e[0], &e[1]));
//! # Ok::<(), nanotensor_core::Error>(())
//! ```

pub mod bert;
pub mod config;

use std::path::{Path, PathBuf};

use nanotensor_core::backend::Backend;
use nanotensor_core::Result;

pub use bert::Bert;
pub use config::{BertConfig, ConfigFiles, CONFIG_FILE_NAMES};

use crate::safetensors::SafetensorsFile;
use crate::tokenizer::WordPieceTokenizer;

/// Tokens per packed batch: bounds the activations (`tokens · 4·H` values for the FFN) while
/// keeping each product large enough for the backend's threads.
pub const BATCH_TOKENS: usize = 4096;

/// A sentence encoder: tokenizer, encoder and pooling of one model directory.
#[derive(Debug)]
pub struct Embedder<B: Backend> {
    tokenizer: WordPieceTokenizer,
    bert: Bert<B>,
    dir: Option<PathBuf>,
}

impl<B: Backend> Embedder<B> {
    /// Loads the sentence-transformers directory `path` (or the directory of `path` when it is
    /// the `model.safetensors` file itself): `model.safetensors` (memory-mapped),
    /// `tokenizer.json`, `config.json` and the optional sentence-transformers configs.
    ///
    /// # Errors
    /// [`nanotensor_core::Error::Io`] for a missing file; the errors of
    /// [`BertConfig::from_dir`], [`SafetensorsFile::open`], [`WordPieceTokenizer::open`] and
    /// [`Bert::load`].
    pub fn load(path: impl AsRef<Path>, backend: B) -> Result<Embedder<B>> {
        let path = path.as_ref();
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        };
        let config = BertConfig::from_dir(&dir)?;
        let tokenizer = WordPieceTokenizer::open(dir.join("tokenizer.json"))?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        let mut embedder = Self::from_parts(&file, tokenizer, config, backend)?;
        embedder.dir = Some(dir);
        Ok(embedder)
    }

    /// Builds the embedder from the files' contents, for a caller without a file system (the
    /// browser): the bytes of `model.safetensors`, the text of `tokenizer.json` and the texts of
    /// the configuration files.
    ///
    /// # Errors
    /// The errors of [`SafetensorsFile::from_bytes`], [`WordPieceTokenizer::from_json`],
    /// [`BertConfig::from_files`] and [`Bert::load`].
    pub fn from_bytes(
        weights: Vec<u8>,
        tokenizer_json: &str,
        config: &ConfigFiles,
        backend: B,
    ) -> Result<Embedder<B>> {
        let config = BertConfig::from_files(config)?;
        let tokenizer = WordPieceTokenizer::from_json(tokenizer_json)?;
        let file = SafetensorsFile::from_bytes(weights)?;
        Self::from_parts(&file, tokenizer, config, backend)
    }

    /// The embedder of parsed parts: the weights of `file` prepared on `backend`.
    ///
    /// # Errors
    /// As [`Bert::load`].
    pub fn from_parts(
        file: &SafetensorsFile,
        tokenizer: WordPieceTokenizer,
        config: BertConfig,
        backend: B,
    ) -> Result<Embedder<B>> {
        Ok(Embedder {
            tokenizer,
            bert: Bert::load(file, config, backend)?,
            dir: None,
        })
    }

    /// The model directory (`None` when built from bytes).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The encoder's configuration.
    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WordPieceTokenizer {
        &self.tokenizer
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        self.bert.backend()
    }

    /// The model input of `text`: `[CLS]` … `[SEP]`, truncated to the maximum sequence length.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode_for_model(text, self.config().max_seq_len)
    }

    /// The embeddings of `texts`, in order ([`Embedder::embed_ids`] of their encodings).
    ///
    /// # Errors
    /// The backend's errors.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.encode(t.as_ref())).collect();
        self.embed_ids(&ids)
    }

    /// The embeddings of already encoded inputs, in order. Consecutive inputs are packed into
    /// batches of at most [`BATCH_TOKENS`] tokens (an input longer than that is a batch of its
    /// own); no input is padded.
    ///
    /// # Errors
    /// As [`Bert::embed_batch`].
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut batch: Vec<&[u32]> = Vec::new();
        let mut tokens = 0usize;
        for seq in ids {
            if !batch.is_empty() && tokens + seq.len() > BATCH_TOKENS {
                out.extend(self.bert.embed_batch(&batch)?);
                batch.clear();
                tokens = 0;
            }
            batch.push(seq);
            tokens += seq.len();
        }
        if !batch.is_empty() {
            out.extend(self.bert.embed_batch(&batch)?);
        }
        Ok(out)
    }
}

/// The cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// The indices of `candidates` ranked by their cosine similarity to `query`, each with its
/// score: highest first, equal scores in input order (a stable order, so a ranking is
/// reproducible). The one ranking of semantic search, for the CLI and the browser page.
pub fn rank_by_cosine(query: &[f32], candidates: &[Vec<f32>]) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .map(|(i, e)| (i, cosine(query, e)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The lines of `text` that semantic search ranks: every line (`\n`-separated, a trailing `\r`
/// removed) that is not blank. One rule for a file on disk and a text pasted in the page.
pub fn search_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_is_by_descending_cosine_with_ties_in_input_order() {
        let q = [1.0f32, 0.0];
        let c = vec![
            vec![0.0, 1.0],  // 0
            vec![1.0, 1.0],  // 0.7071
            vec![2.0, 0.0],  // 1
            vec![1.0, 0.0],  // 1, after index 2
            vec![-1.0, 0.0], // -1
            vec![0.0, 0.0],  // 0 (zero vector), after index 0
        ];
        let r = rank_by_cosine(&q, &c);
        let order: Vec<usize> = r.iter().map(|&(i, _)| i).collect();
        assert_eq!(order, [2, 3, 1, 0, 5, 4]);
        assert!((r[2].1 - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(r[5].1, -1.0);
        assert!(rank_by_cosine(&q, &[]).is_empty());
    }

    #[test]
    fn search_lines_skip_blank_lines_and_carriage_returns() {
        let text = "first\r\n\n   \t\nsecond line \n\r\nthird";
        assert_eq!(search_lines(text), ["first", "second line ", "third"]);
        assert!(search_lines("").is_empty());
    }
}
