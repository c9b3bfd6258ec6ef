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
pub use config::BertConfig;

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
    dir: PathBuf,
}

impl<B: Backend> Embedder<B> {
    /// Loads the sentence-transformers directory `path` (or the directory of `path` when it is
    /// the `model.safetensors` file itself): `model.safetensors`, `tokenizer.json`,
    /// `config.json` and the optional sentence-transformers configs.
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
        let bert = Bert::load(&file, config, backend)?;
        Ok(Embedder {
            tokenizer,
            bert,
            dir,
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
