//! The LLaMA model on the real SmolLM2-135M-Instruct file, on every compiled-in backend, against
//! references computed by other tools (`/work/shared/fixtures/smollm2/`, copied below):
//!
//! - `greedy.json`: greedy ids after "Once upon a time" from an exact (float64) evaluation of the
//!   dequantized weights, which llama.cpp on the F32 conversion reproduces; and the top-5 logits
//!   of the first step in float64;
//! - `ppl.json`: llama.cpp's `llama-perplexity` on the GPL-3 text at `n_ctx = 128` with the F32
//!   conversion of the same weights: 24.2318.
//!
//! Every test says it is skipping and returns when the model file is not found
//! (`scripts/fetch-model.sh` fetches it), unless `NANOTENSOR_REQUIRE_MODEL` is set (as
//! `scripts/test`, hence CI, does): then it fails.

use nanotensor::gguf::GgufFile;
use nanotensor::model::{generate, perplexity, GenerateOptions, Llama, Logits, PerplexityReport};
use nanotensor::model_path::find_model;
use nanotensor::tokenizer::Tokenizer;
use nanotensor::{Backend, Result};
use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};

/// "Once upon a time" (greedy.json `prompt_token_ids`).
const PROMPT: [u32; 4] = [6403, 1980, 253, 655];
/// greedy.json `f32_token_ids`; `stable_prefix_len` is 32 (all of them).
const F32_IDS: [u32; 32] = [
    28, 260, 2240, 282, 23324, 27108, 436, 253, 15114, 39228, 28, 351, 25854, 41658, 284, 14055,
    9018, 30, 1249, 347, 260, 929, 3514, 411, 28, 260, 2240, 2585, 288, 5946, 624, 2798,
];
/// greedy.json `first_step_top5_f64`.
const TOP5: [(u32, f64); 5] = [
    (28, 18.142016516347304),
    (281, 14.082531357775387),
    (665, 13.367245938400163),
    (260, 12.935527540913803),
    (253, 12.92802187207367),
];
/// ppl.json: llama.cpp, F32 weights, n_ctx 128, 59 chunks.
const PPL_F32_CTX128: f64 = 24.2318;

fn model_file() -> Option<GgufFile> {
    match find_model(None) {
        Ok(path) => Some(GgufFile::open(&path).expect("the model file should parse")),
        Err(e) if std::env::var_os("NANOTENSOR_REQUIRE_MODEL").is_some() => {
            panic!("NANOTENSOR_REQUIRE_MODEL is set but: {e}")
        }
        Err(e) => {
            // Written to the stderr handle, which libtest does not capture, and only once.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "model tests: SKIPPING (no model): {e}");
            });
            None
        }
    }
}

/// The float backends compiled in (int8 is judged by perplexity, not exact ids).
fn float_backends() -> Vec<BackendKind> {
    [BackendKind::Naive, BackendKind::Blocked]
        .into_iter()
        .filter(|k| k.is_compiled())
        .collect()
}

/// The fastest float backend compiled in.
fn fastest() -> BackendKind {
    *float_backends()
        .last()
        .expect("a float backend is compiled in")
}

/// Greedy tokens for this test: the whole stable prefix on every backend (the naive one takes a
/// few seconds for 32 tokens with the KV cache).
fn tokens_for(_kind: BackendKind) -> usize {
    F32_IDS.len()
}

struct Greedy<'a> {
    file: &'a GgufFile,
    n: usize,
    kv_cache: bool,
}

impl BackendVisitor for Greedy<'_> {
    type Output = Vec<u32>;
    fn visit<B: Backend>(self, backend: B) -> Result<Vec<u32>> {
        let model = Llama::load(backend, self.file)?;
        let opts = GenerateOptions {
            max_new_tokens: self.n,
            kv_cache: self.kv_cache,
            ..Default::default()
        };
        Ok(generate(&model, &PROMPT, &opts, |_| Ok(()))?.ids)
    }
}

struct FirstLogits<'a> {
    file: &'a GgufFile,
}

impl BackendVisitor for FirstLogits<'_> {
    type Output = Vec<f32>;
    fn visit<B: Backend>(self, backend: B) -> Result<Vec<f32>> {
        let model = Llama::load(backend, self.file)?;
        let mut state = model.new_state(PROMPT.len())?;
        Ok(model.forward(&mut state, &PROMPT, Logits::Last)?.to_vec())
    }
}

struct Ppl<'a> {
    file: &'a GgufFile,
    tokens: &'a [u32],
    n_ctx: usize,
}

impl BackendVisitor for Ppl<'_> {
    type Output = PerplexityReport;
    fn visit<B: Backend>(self, backend: B) -> Result<PerplexityReport> {
        let model = Llama::load(backend, self.file)?;
        perplexity(&model, self.tokens, self.n_ctx, |_, _| {})
    }
}

#[test]
fn greedy_ids_match_the_exact_reference() {
    let Some(file) = model_file() else { return };
    for kind in float_backends() {
        let n = tokens_for(kind);
        let ids = with_backend(
            kind,
            BackendOptions::default(),
            Greedy {
                file: &file,
                n,
                kv_cache: true,
            },
        )
        .unwrap();
        assert_eq!(ids, F32_IDS[..n], "{kind}: greedy ids differ");
        eprintln!("{kind}: {n} greedy ids match");
    }
}

#[test]
fn first_step_logits_are_within_0_02_of_float64() {
    let Some(file) = model_file() else { return };
    let logits = with_backend(
        fastest(),
        BackendOptions::default(),
        FirstLogits { file: &file },
    )
    .unwrap();
    assert_eq!(logits.len(), 49152);
    for (id, want) in TOP5 {
        let got = f64::from(logits[id as usize]);
        assert!((got - want).abs() < 0.02, "token {id}: {got} vs {want}");
    }
    // The same five are the five largest, in the same order.
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    let top: Vec<u32> = order[..5].to_vec();
    assert_eq!(top, TOP5.map(|(id, _)| id));
}

#[test]
fn kv_cache_on_and_off_give_identical_ids() {
    let Some(file) = model_file() else { return };
    for kind in float_backends() {
        let run = |kv_cache| {
            with_backend(
                kind,
                BackendOptions::default(),
                Greedy {
                    file: &file,
                    n: 5,
                    kv_cache,
                },
            )
            .unwrap()
        };
        let (on, off) = (run(true), run(false));
        assert_eq!(on, off, "{kind}");
        assert_eq!(on, F32_IDS[..5], "{kind}");
    }
}

/// The GPL-3 text as the perplexity fixture used it: one trailing newline stripped.
fn gpl3_tokens(file: &GgufFile) -> Vec<u32> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../nanotensor/tests/data/GPL-3"
    );
    let text = std::fs::read_to_string(path).expect("GPL-3 test data");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Tokenizer::from_gguf(file).unwrap().encode(text)
}

#[test]
fn perplexity_at_ctx_128_is_within_half_a_percent_of_llama_cpp() {
    let Some(file) = model_file() else { return };
    let tokens = gpl3_tokens(&file);
    assert!(
        (7638..=7639).contains(&tokens.len()),
        "{} tokens",
        tokens.len()
    );
    let kind = fastest();
    if kind == BackendKind::Naive {
        eprintln!("SKIPPED: perplexity needs the blocked backend (naive would take minutes)");
        return;
    }
    let r = with_backend(
        kind,
        BackendOptions::default(),
        Ppl {
            file: &file,
            tokens: &tokens,
            n_ctx: 128,
        },
    )
    .unwrap();
    assert_eq!((r.chunks, r.tokens_scored), (59, 59 * 63));
    let rel = (r.ppl / PPL_F32_CTX128 - 1.0).abs();
    eprintln!(
        "{kind}: ppl {:.4} ({:.3}% from llama.cpp) in {:.1} s",
        r.ppl,
        100.0 * rel,
        r.seconds
    );
    assert!(rel < 0.005, "ppl {} vs {PPL_F32_CTX128}", r.ppl);
}

/// Issue 7's int8 target: per-row (per output channel) weight scales within 1 % of llama.cpp's
/// F32 perplexity. Activations need scales per block along `k` for that: one scale per token row
/// measured +6.8 % (outlier channels of the SwiGLU output coarsen the whole row), per 32 values
/// +1.15 %, per 16 values +0.83 % (`nanotensor perplexity --backend int8 --int8-weights per-row
/// --int8-activations per-block-16`).
#[cfg(feature = "int8")]
#[test]
fn int8_per_row_weights_with_per_block_activations_are_within_1_percent() {
    let Some(file) = model_file() else { return };
    let tokens = gpl3_tokens(&file);
    let opts = BackendOptions {
        int8_weights: nanotensor::Granularity::PerRow,
        int8_activations: nanotensor_backends::ActGranularity::parse("per-block-16").unwrap(),
        ..BackendOptions::default()
    };
    let r = with_backend(
        BackendKind::Int8,
        opts,
        Ppl {
            file: &file,
            tokens: &tokens,
            n_ctx: 128,
        },
    )
    .unwrap();
    let rel = r.ppl / PPL_F32_CTX128 - 1.0;
    eprintln!(
        "int8 per-row/per-block-16: ppl {:.4} ({:+.2}%)",
        r.ppl,
        100.0 * rel
    );
    assert!(rel.abs() < 0.01, "ppl {} vs {PPL_F32_CTX128}", r.ppl);
}
