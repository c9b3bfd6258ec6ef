//! The model panel's work: load a GGUF file from bytes, then generate one token per call.
//!
//! The page streams output, so generation is driven step by step from JavaScript rather than by
//! [`nanotensor::model::generate()`] (which runs to the end and times itself with
//! `std::time::Instant`, absent in the browser). The steps are the same:
//!
//! - [`ModelSession::start`] tokenizes the prompt and runs the prefill: the whole prompt as one
//!   batch, keeping the last row's logits;
//! - each [`ModelSession::next_token`] first runs the token chosen by the previous call through
//!   the model (with the KV cache: that token alone; without it: the cache is emptied and the
//!   whole sequence so far is recomputed), then picks the next token by greedy argmax.
//!
//! The first call therefore only samples from the prefill logits, and every later call costs
//! exactly one decode step: tokens/s = (tokens − 1) / Σ seconds of calls 2….

use nanotensor::gguf::GgufFile;
use nanotensor::model::{Llama, LlamaConfig, Logits, Sampler, SamplerConfig, State};
use nanotensor::tokenizer::Tokenizer;
use nanotensor::{Backend, Error, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
use serde::Serialize;

use crate::clock::now_seconds;

const OP: &str = "model";

/// What the page shows about a loaded model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `general.name` of the file.
    pub name: String,
    /// Backend the weights were prepared for.
    pub backend: String,
    /// Parameters in the file.
    pub n_params: u64,
    /// Bytes the prepared weights take in memory.
    pub weights_bytes: usize,
    /// Context length the model supports.
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Multi-line human-readable summary.
    pub text: String,
}

/// Result of [`ModelSession::start`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StartReport {
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// Seconds of the prefill forward pass.
    pub prefill_seconds: f64,
}

/// Result of one [`ModelSession::next_token`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenReport {
    /// The chosen token id.
    pub id: u32,
    /// Text that became complete with this token (may be empty inside a multi-byte character).
    pub text: String,
    /// Seconds of this call (one decode step, or ~0 for the first token).
    pub seconds: f64,
}

/// A loaded model (LLaMA or Gemma 3), its backend fixed at load time: the few calls the page makes, behind
/// a trait object so that the backend registry's one dispatch ([`with_backend`]) builds it.
trait PageModel {
    fn config(&self) -> &LlamaConfig;
    fn weights_bytes(&self) -> usize;
    fn backend_name(&self) -> &'static str;
    fn new_state(&self, capacity: usize) -> Result<State>;
    fn forward_last(&self, state: &mut State, tokens: &[u32]) -> Result<Vec<f32>>;
}

impl<B: Backend> PageModel for Llama<B> {
    fn config(&self) -> &LlamaConfig {
        Llama::config(self)
    }
    fn weights_bytes(&self) -> usize {
        Llama::weights_bytes(self)
    }
    fn backend_name(&self) -> &'static str {
        self.backend().name()
    }
    fn new_state(&self, capacity: usize) -> Result<State> {
        Llama::new_state(self, capacity)
    }
    fn forward_last(&self, state: &mut State, tokens: &[u32]) -> Result<Vec<f32>> {
        Ok(self.forward(state, tokens, Logits::Last)?.to_vec())
    }
}

/// Loads the model onto whichever backend [`with_backend`] built.
struct Load<'a>(&'a GgufFile);

impl BackendVisitor for Load<'_> {
    type Output = Box<dyn PageModel>;
    fn visit<B: Backend>(self, backend: B) -> Result<Box<dyn PageModel>> {
        Ok(Box::new(Llama::load(backend, self.0)?))
    }
}

/// A generation in progress.
struct Generation {
    state: State,
    /// Prompt plus every token generated so far.
    seq: Vec<u32>,
    /// Logits of the last forward pass (`[vocab_size]`), consumed by the next sample.
    logits: Vec<f32>,
    /// The token sampled but not yet run through the model.
    pending: Option<u32>,
    kv_cache: bool,
    sampler: Sampler,
    /// Undecoded bytes of a character split across tokens.
    partial: Vec<u8>,
}

/// A model loaded from GGUF bytes, and the generation in progress, if any.
pub struct ModelSession {
    model: Box<dyn PageModel>,
    tokenizer: Tokenizer,
    info: ModelInfo,
    generation: Option<Generation>,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ModelSession {
    /// Parses `bytes` as GGUF and prepares every weight for `backend` (`blocked`: f32 packed
    /// panels; `int8`: int8 weights with the backend's default scheme, the same as the CLI's —
    /// one scale per weight row, activations quantized per call with one scale per 16 values;
    /// `naive`: f32 as stored). The info text names the scheme.
    ///
    /// # Errors
    /// Not a GGUF file, a truncated one, an architecture or element type the library does not
    /// support, an unknown or not-compiled backend — each the library's own [`Error`].
    pub fn load(bytes: Vec<u8>, backend: &str) -> Result<Self> {
        let kind = BackendKind::parse(backend)?;
        let file = GgufFile::from_bytes(bytes)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let summary = file.summary();
        // One thread: the page has one (wasm32 without shared memory).
        let opts = BackendOptions {
            threads: 1,
            ..BackendOptions::default()
        };
        let model = with_backend(kind, opts, Load(&file))?;
        let (cfg, weights_bytes, backend_name) = (
            model.config().clone(),
            model.weights_bytes(),
            model.backend_name(),
        );
        let name = summary.name.clone().unwrap_or_else(|| "(unnamed)".into());
        let types: Vec<String> = summary
            .by_type
            .iter()
            .map(|t| format!("{} ×{}", t.ggml_type.name(), t.n_tensors))
            .collect();
        let text = format!(
            "{name} · {arch} · {params} parameters · file {file_mib:.1} MiB ({types})\n\
             {layers} layers · dim {dim} · {heads} heads / {kv} KV heads of {hd} · FFN {ffn} · \
             vocab {vocab} · context {ctx}\n\
             weights in memory ({backend_name}{scheme}): {w_mib:.1} MiB · tokenizer: {tok}",
            arch = summary.architecture.as_deref().unwrap_or("?"),
            params = nanotensor::gguf::thousands(summary.n_params),
            file_mib = summary.file_bytes as f64 / 1048576.0,
            types = types.join(", "),
            layers = cfg.n_layers,
            dim = cfg.dim,
            heads = cfg.n_heads,
            kv = cfg.n_kv_heads,
            hd = cfg.head_dim,
            ffn = cfg.ffn_dim,
            vocab = cfg.vocab_size,
            ctx = cfg.context_length,
            w_mib = weights_bytes as f64 / 1048576.0,
            tok = match tokenizer.merge_count() {
                0 => "SentencePiece-style (scores)".to_string(),
                n => format!("byte-level BPE, {n} merges"),
            },
            scheme = {
                let settings = kind.settings(&opts);
                if settings.is_empty() {
                    String::new()
                } else {
                    let s: Vec<String> = settings.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    format!(": {}", s.join(", "))
                }
            },
        );
        Ok(ModelSession {
            info: ModelInfo {
                name,
                backend: backend_name.to_string(),
                n_params: summary.n_params,
                weights_bytes,
                context_length: cfg.context_length,
                vocab_size: cfg.vocab_size,
                text,
            },
            model,
            tokenizer,
            generation: None,
        })
    }

    /// What the page shows about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The tokenizer read from the file.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Starts a greedy generation of at most `max_new_tokens` after `prompt` (raw text, no chat
    /// template; BOS first when the model asks for it, as `nanotensor generate` feeds a prompt)
    /// and runs the prefill.
    ///
    /// # Errors
    /// An empty prompt, `max_new_tokens == 0`, prompt + tokens past the context length, and the
    /// model's errors.
    pub fn start(
        &mut self,
        prompt: &str,
        kv_cache: bool,
        max_new_tokens: usize,
    ) -> Result<StartReport> {
        self.generation = None;
        let prompt_ids = self.tokenizer.encode_prompt(prompt);
        if prompt_ids.is_empty() {
            return Err(Error::invalid_arg(OP, "the prompt has no tokens"));
        }
        if max_new_tokens == 0 {
            return Err(Error::invalid_arg(OP, "max new tokens must be at least 1"));
        }
        let needed = prompt_ids.len().saturating_add(max_new_tokens);
        if needed > self.info.context_length {
            return Err(Error::ContextOverflow {
                op: OP,
                needed,
                capacity: self.info.context_length,
                detail: format!(
                    " (prompt {} + max new tokens {max_new_tokens})",
                    prompt_ids.len()
                ),
            });
        }
        let t0 = now_seconds();
        let (state, logits) = {
            let m = &self.model;
            let mut state = m.new_state(needed)?;
            let logits = m.forward_last(&mut state, &prompt_ids)?;
            (state, logits)
        };
        let prefill_seconds = now_seconds() - t0;
        self.generation = Some(Generation {
            state,
            seq: prompt_ids.clone(),
            logits,
            pending: None,
            kv_cache,
            sampler: Sampler::new(SamplerConfig::greedy())?,
            partial: Vec::new(),
        });
        Ok(StartReport {
            prompt_ids,
            prefill_seconds,
        })
    }

    /// Runs the previous token through the model (if any) and picks the next one.
    ///
    /// # Errors
    /// No generation started, the context is full, and the model's errors.
    pub fn next_token(&mut self) -> Result<TokenReport> {
        let g = self
            .generation
            .as_mut()
            .ok_or_else(|| Error::invalid_arg(OP, "no generation started"))?;
        let t0 = now_seconds();
        if let Some(tok) = g.pending.take() {
            g.logits = if g.kv_cache {
                self.model.forward_last(&mut g.state, &[tok])?
            } else {
                g.state.reset();
                self.model.forward_last(&mut g.state, &g.seq)?
            };
        }
        let id = g.sampler.sample(&g.logits)?;
        let seconds = now_seconds() - t0;
        g.seq.push(id);
        g.pending = Some(id);
        g.partial.extend_from_slice(self.tokenizer.token_bytes(id)?);
        let text = take_complete_utf8(&mut g.partial);
        Ok(TokenReport { id, text, seconds })
    }
}

/// Removes and returns the longest prefix of `buf` that is complete UTF-8 (invalid bytes become
/// U+FFFD); an incomplete character at the end stays for the next token.
fn take_complete_utf8(buf: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(buf) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => buf.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let done: Vec<u8> = buf.drain(..buf.len() - keep).collect();
    String::from_utf8_lossy(&done).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_tokens_waits_for_its_last_byte() {
        let smile = "🙂".as_bytes(); // 4 bytes
        let mut buf = b"a".to_vec();
        buf.extend_from_slice(&smile[..2]);
        assert_eq!(take_complete_utf8(&mut buf), "a");
        assert_eq!(buf.len(), 2);
        buf.extend_from_slice(&smile[2..]);
        assert_eq!(take_complete_utf8(&mut buf), "🙂");
        assert!(buf.is_empty());
        buf.extend_from_slice(&[0xFF, b'x']);
        assert_eq!(take_complete_utf8(&mut buf), "\u{FFFD}x");
    }

    #[test]
    fn not_a_gguf_file_is_a_format_error() {
        let e = ModelSession::load(b"<!doctype html><html></html>".to_vec(), "naive").unwrap_err();
        assert!(e.to_string().to_lowercase().contains("gguf"), "{e}");
        let e = ModelSession::load(Vec::new(), "naive").unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(ModelSession::load(Vec::new(), "cuda").is_err());
    }

    /// Steps the session as the page does for `model` and compares with the greedy ids of
    /// `tests/fixtures/<fixture>/greedy.json` (the prompt's ids too: BOS first when the model
    /// asks for it). Skipped without the model file, unless `NANOTENSOR_REQUIRE_MODEL` is set.
    fn greedy_steps_reproduce(model: &nanotensor::model_path::KnownModel, fixture: &str) {
        let Some(path) = nanotensor::model_path::known_model_for_tests(model, "web session") else {
            return;
        };
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../tests/fixtures/{fixture}/greedy.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("fixture"),
        )
        .unwrap();
        let case = &fixture["cases"][0];
        assert_eq!(case["prompt"], "Once upon a time");
        let want: Vec<u32> = case["f32_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        // The fastest float32 backend in this build: the fixture's ids are the answer.
        let backend = if BackendKind::Blocked.is_compiled() {
            "blocked"
        } else {
            "naive"
        };
        let mut s = ModelSession::load(std::fs::read(path).unwrap(), backend).unwrap();
        for (kv, n) in [(true, 6), (false, 3)] {
            let start = s.start("Once upon a time", kv, n).unwrap();
            assert_eq!(
                serde_json::json!(start.prompt_ids),
                case["prompt_token_ids"]
            );
            let mut ids = Vec::new();
            let mut text = String::new();
            for _ in 0..n {
                let t = s.next_token().unwrap();
                ids.push(t.id);
                text.push_str(&t.text);
            }
            assert_eq!(ids, want[..n], "kv_cache {kv}");
            assert_eq!(text, s.tokenizer().decode(&ids).unwrap());
        }
    }

    #[test]
    fn greedy_steps_reproduce_the_smollm2_fixture_with_and_without_kv_cache() {
        greedy_steps_reproduce(&nanotensor::model_path::SMOLLM2, "smollm2");
    }

    #[test]
    fn greedy_steps_reproduce_the_gemma3_fixture_with_and_without_kv_cache() {
        greedy_steps_reproduce(&nanotensor::model_path::GEMMA3_270M, "gemma3");
    }
}
