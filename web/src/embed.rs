//! The semantic-search panel's work: load a sentence encoder (all-MiniLM-L6-v2) from the bytes
//! of its files, embed texts, and rank lines against a query.
//!
//! The encoder, the tokenizer, the file parsing, the line rule and the ranking are the library's
//! ([`Embedder::from_bytes`], [`search_lines`], [`rank_by_cosine`]), the same functions
//! `nanotensor embed` and `nanotensor search` run. As the CLI does, a search embeds the query
//! first and then the lines, in one call; the lines' embeddings are kept, so a new query over
//! the same lines embeds only the query.

use std::collections::BTreeMap;

use nanotensor::encoder::{
    rank_by_cosine, search_lines, BertConfig, ConfigFiles, Embedder, CONFIG_FILE_NAMES,
};
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
use serde::Serialize;

use crate::clock::now_seconds;

const OP: &str = "embed";

/// What the page shows about a loaded encoder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EmbedderInfo {
    /// Backend the weights were prepared for.
    pub backend: String,
    /// Embedding size.
    pub dim: usize,
    /// Longest input in tokens (longer texts are truncated).
    pub max_seq_len: usize,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// One-line human-readable summary.
    pub text: String,
}

/// Result of [`EmbedSession::embed`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EmbedReport {
    /// Each text's model input (`[CLS]` … `[SEP]`).
    pub ids: Vec<Vec<u32>>,
    /// Each text's embedding.
    pub embeddings: Vec<Vec<f32>>,
    /// Seconds of tokenizing and encoding.
    pub seconds: f64,
    /// Texts per second.
    pub sentences_per_s: f64,
    /// Tokens (with `[CLS]` and `[SEP]`) per second.
    pub tokens_per_s: f64,
}

/// One ranked line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// 0-based position of the line among the ranked lines.
    pub index: usize,
    /// The line.
    pub line: String,
    /// Cosine similarity to the query.
    pub score: f64,
}

/// Result of [`EmbedSession::search`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchReport {
    /// The best `top_k` lines, best first.
    pub results: Vec<Hit>,
    /// Lines ranked.
    pub lines: usize,
    /// The query's model input.
    pub query_ids: Vec<u32>,
    /// The query's embedding.
    pub query_embedding: Vec<f32>,
    /// Texts embedded by this call: the query, plus the lines unless they were embedded by an
    /// earlier search.
    pub embedded: usize,
    /// Whether the lines' embeddings came from an earlier search.
    pub cached_lines: bool,
    /// Seconds of embedding (tokenizing and encoding).
    pub seconds: f64,
    /// `embedded / seconds`.
    pub sentences_per_s: f64,
    /// Tokens embedded per second.
    pub tokens_per_s: f64,
}

/// The calls the page makes on an [`Embedder`], behind a trait object so that the backend
/// registry's one dispatch ([`with_backend`]) builds it.
trait PageEncoder {
    fn config(&self) -> &BertConfig;
    fn backend_name(&self) -> &'static str;
    fn encode(&self, text: &str) -> Vec<u32>;
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>>;
}

impl<B: Backend> PageEncoder for Embedder<B> {
    fn config(&self) -> &BertConfig {
        Embedder::config(self)
    }
    fn backend_name(&self) -> &'static str {
        self.backend().name()
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        Embedder::encode(self, text)
    }
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        Embedder::embed_ids(self, ids)
    }
}

/// Builds the encoder on whichever backend [`with_backend`] built.
struct Load<'a> {
    weights: Vec<u8>,
    tokenizer_json: &'a str,
    config: &'a ConfigFiles,
}

impl BackendVisitor for Load<'_> {
    type Output = Box<dyn PageEncoder>;
    fn visit<B: Backend>(self, backend: B) -> Result<Box<dyn PageEncoder>> {
        Ok(Box::new(Embedder::from_bytes(
            self.weights,
            self.tokenizer_json,
            self.config,
            backend,
        )?))
    }
}

/// The texts of the model's JSON files, keyed by their path in the model directory
/// (`tokenizer.json`, `config.json`, and optionally `sentence_bert_config.json`,
/// `1_Pooling/config.json`, `modules.json`).
pub type ModelTexts = BTreeMap<String, String>;

/// A loaded encoder and the last lines it embedded.
pub struct EmbedSession {
    encoder: Box<dyn PageEncoder>,
    info: EmbedderInfo,
    /// The lines of the last search and their embeddings.
    cache: Option<(Vec<String>, Vec<Vec<f32>>)>,
}

impl std::fmt::Debug for EmbedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl EmbedSession {
    /// Parses `weights` (`model.safetensors`) and `texts` and prepares the weights for
    /// `backend`, on one thread (the page has one).
    ///
    /// # Errors
    /// A missing `tokenizer.json` or `config.json`, a file name the loader does not read, and
    /// the library's errors for a malformed file or an unknown backend.
    pub fn load(weights: Vec<u8>, texts: &ModelTexts, backend: &str) -> Result<Self> {
        let kind = BackendKind::parse(backend)?;
        for name in texts.keys() {
            if name != "tokenizer.json" && !CONFIG_FILE_NAMES.contains(&name.as_str()) {
                return Err(Error::invalid_arg(
                    OP,
                    format!(
                        "unexpected model file `{name}` (expected tokenizer.json, {})",
                        CONFIG_FILE_NAMES.join(", ")
                    ),
                ));
            }
        }
        let required = |name: &str| {
            texts.get(name).ok_or_else(|| {
                Error::invalid_arg(
                    OP,
                    format!("{name} is missing: pick it with the model files"),
                )
            })
        };
        let tokenizer_json = required("tokenizer.json")?;
        let config = ConfigFiles {
            config: required(CONFIG_FILE_NAMES[0])?.clone(),
            sentence_bert_config: texts.get(CONFIG_FILE_NAMES[1]).cloned(),
            pooling_config: texts.get(CONFIG_FILE_NAMES[2]).cloned(),
            modules: texts.get(CONFIG_FILE_NAMES[3]).cloned(),
        };
        let weights_bytes = weights.len();
        let opts = BackendOptions {
            threads: 1,
            ..BackendOptions::default()
        };
        let encoder = with_backend(
            kind,
            opts,
            Load {
                weights,
                tokenizer_json,
                config: &config,
            },
        )?;
        let c = encoder.config().clone();
        let backend_name = encoder.backend_name();
        let settings = kind.settings(&opts);
        let scheme = if settings.is_empty() {
            String::new()
        } else {
            let s: Vec<String> = settings.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!(": {}", s.join(", "))
        };
        let text = format!(
            "BERT encoder · {layers} layers · hidden {h} · {heads} heads · FFN {ffn} · vocab {vocab} · \
             at most {seq} tokens · mean pooling{norm} · file {mib:.1} MiB · weights {backend_name}{scheme}",
            layers = c.layers,
            h = c.hidden,
            heads = c.heads,
            ffn = c.intermediate,
            vocab = c.vocab_size,
            seq = c.max_seq_len,
            norm = if c.normalize { ", L2-normalised" } else { "" },
            mib = weights_bytes as f64 / 1048576.0,
        );
        Ok(EmbedSession {
            info: EmbedderInfo {
                backend: backend_name.to_string(),
                dim: c.hidden,
                max_seq_len: c.max_seq_len,
                normalize: c.normalize,
                text,
            },
            encoder,
            cache: None,
        })
    }

    /// What the page shows about the encoder.
    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    /// Embeds `texts` in order, timed.
    ///
    /// # Errors
    /// No text, and the encoder's errors.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<EmbedReport> {
        if texts.is_empty() {
            return Err(Error::invalid_arg(OP, "nothing to embed"));
        }
        let t0 = now_seconds();
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.encoder.encode(t.as_ref()))
            .collect();
        let embeddings = self.encoder.embed_ids(&ids)?;
        let seconds = now_seconds() - t0;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        Ok(EmbedReport {
            ids,
            embeddings,
            seconds,
            sentences_per_s: texts.len() as f64 / seconds,
            tokens_per_s: tokens as f64 / seconds,
        })
    }

    /// Ranks `lines` by the cosine similarity of their embeddings to the query's and returns
    /// the best `top_k`. The lines are ranked as given (the page splits a text with
    /// [`split_lines`]).
    ///
    /// # Errors
    /// An empty query, no line, `top_k == 0`, and the encoder's errors.
    pub fn search(&mut self, query: &str, lines: &[String], top_k: usize) -> Result<SearchReport> {
        if query.trim().is_empty() {
            return Err(Error::invalid_arg("search", "the query is empty"));
        }
        if lines.is_empty() {
            return Err(Error::invalid_arg("search", "there is no line to rank"));
        }
        if top_k == 0 {
            return Err(Error::invalid_arg("search", "top k must be at least 1"));
        }
        let cached = matches!(&self.cache, Some((l, _)) if l.as_slice() == lines);
        let (query_ids, query_embedding, report) = if cached {
            let mut r = self.embed(&[query])?;
            (r.ids.remove(0), r.embeddings.remove(0), r)
        } else {
            self.cache = None;
            let mut texts = Vec::with_capacity(lines.len() + 1);
            texts.push(query);
            texts.extend(lines.iter().map(String::as_str));
            let mut r = self.embed(&texts)?;
            let rest = r.embeddings.split_off(1);
            self.cache = Some((lines.to_vec(), rest));
            (r.ids.remove(0), r.embeddings.remove(0), r)
        };
        let line_embeddings = &self.cache.as_ref().expect("cached above").1;
        let mut ranked = rank_by_cosine(&query_embedding, line_embeddings);
        ranked.truncate(top_k);
        let results = ranked
            .into_iter()
            .enumerate()
            .map(|(rank, (index, score))| Hit {
                rank: rank + 1,
                index,
                line: lines[index].clone(),
                score,
            })
            .collect();
        Ok(SearchReport {
            results,
            lines: lines.len(),
            query_ids,
            query_embedding,
            embedded: if cached { 1 } else { lines.len() + 1 },
            cached_lines: cached,
            seconds: report.seconds,
            sentences_per_s: report.sentences_per_s,
            tokens_per_s: report.tokens_per_s,
        })
    }
}

/// The lines of a pasted or loaded text that the search ranks: the library's rule
/// ([`search_lines`]), the same as `nanotensor search --file`.
pub fn split_lines(text: &str) -> Vec<String> {
    search_lines(text).into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of the MiniLM directory's JSON files, and its weights, or `None` (the test
    /// skips) without the model.
    fn model_files() -> Option<(Vec<u8>, ModelTexts)> {
        let path = nanotensor::model_path::known_model_for_tests(
            &nanotensor::model_path::MINILM,
            "web embed",
        )?;
        let dir = if path.is_file() {
            path.parent()?.to_path_buf()
        } else {
            path
        };
        let mut texts = ModelTexts::new();
        for name in std::iter::once("tokenizer.json").chain(CONFIG_FILE_NAMES) {
            if let Ok(t) = std::fs::read_to_string(dir.join(name)) {
                texts.insert(name.to_string(), t);
            }
        }
        Some((std::fs::read(dir.join("model.safetensors")).ok()?, texts))
    }

    #[test]
    fn missing_or_unexpected_files_are_refused_by_name() {
        let mut texts = ModelTexts::new();
        texts.insert("config.json".into(), "{}".into());
        let e = EmbedSession::load(Vec::new(), &texts, "naive").unwrap_err();
        assert!(e.to_string().contains("tokenizer.json is missing"), "{e}");
        texts.insert("vocab.txt".into(), String::new());
        let e = EmbedSession::load(Vec::new(), &texts, "naive").unwrap_err();
        assert!(e.to_string().contains("vocab.txt"), "{e}");
        assert!(EmbedSession::load(Vec::new(), &ModelTexts::new(), "cuda").is_err());
    }

    /// The session built from bytes gives the embeddings and the ranking of the path loader
    /// with the library's ranking: the same function, so equal bits on the same backend.
    #[test]
    fn from_bytes_search_equals_the_path_loader_and_library_ranking() {
        let Some((weights, texts)) = model_files() else {
            return;
        };
        let backend = if BackendKind::Blocked.is_compiled() {
            "blocked"
        } else {
            "naive"
        };
        let mut s = EmbedSession::load(weights, &texts, backend).unwrap();
        assert_eq!(s.info().dim, 384);
        assert_eq!(s.info().max_seq_len, 256);
        assert!(s.info().normalize);
        let lines = split_lines(
            "A man is playing a guitar on the street corner.\r\n\n  \nThe stock market fell sharply.\nSomeone plays music outdoors.\nPlants turn light into chemical energy.",
        );
        assert_eq!(lines.len(), 4);
        let r = s.search("music on the street", &lines, 3).unwrap();
        assert!(!r.cached_lines);
        assert_eq!(r.embedded, 5);
        assert_eq!(r.results.len(), 3);

        let path = nanotensor::model_path::known_model_for_tests(
            &nanotensor::model_path::MINILM,
            "web embed",
        )
        .unwrap();
        let native = Embedder::load(
            path,
            nanotensor_backends::blocked::BlockedBackend::new(1).unwrap(),
        )
        .unwrap();
        let mut all = vec!["music on the street".to_string()];
        all.extend(lines.iter().cloned());
        let e = native.embed(&all).unwrap();
        if backend == "blocked" {
            assert_eq!(r.query_embedding, e[0]);
        }
        let want = rank_by_cosine(&e[0], &e[1..]);
        for (hit, (i, score)) in r.results.iter().zip(&want) {
            assert_eq!(hit.index, *i);
            assert_eq!(hit.line, lines[*i]);
            assert!((hit.score - score).abs() < 1e-6, "{} vs {score}", hit.score);
        }
        // Music lines first.
        assert_eq!(r.results[0].index.min(r.results[1].index), 0);
        assert_eq!(r.results[0].index.max(r.results[1].index), 2);
        // A second query over the same lines embeds only the query, and ranks alike.
        let again = s.search("music on the street", &lines, 3).unwrap();
        assert!(again.cached_lines);
        assert_eq!(again.embedded, 1);
        for (a, b) in again.results.iter().zip(&r.results) {
            assert_eq!(a.index, b.index);
            assert!((a.score - b.score).abs() < 1e-5);
        }
        assert!(s.search(" ", &lines, 3).is_err());
        assert!(s.search("q", &[], 3).is_err());
        assert!(s.search("q", &lines, 0).is_err());
    }
}
