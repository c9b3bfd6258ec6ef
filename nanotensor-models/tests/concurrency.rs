//! One loaded model shared by reference across threads: concurrent generations give exactly the
//! tokens of the same generations run one after another.
//!
//! The model (`Llama<B>`, with its prepared weights and backend) is `Send + Sync`; each thread
//! owns only its KV cache and sampler. Every backend compiled in is checked (int8 included: the
//! comparison is with itself, sequential versus concurrent, not with a float reference), with a
//! few tokens per request so the test stays quick. Requests differ in prompt and sampling (greedy
//! and seeded top-k) so a mix-up between threads would show.
//!
//! Skips, saying so, when the model file is not found (`scripts/fetch-model.sh` fetches it),
//! unless `NANOTENSOR_REQUIRE_MODEL` is set (as `scripts/test`, hence CI, does): then it fails.

use nanotensor_backends::{with_backend, BackendKind, BackendOptions, BackendVisitor};
use nanotensor_core::{Backend, Result};
use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model::{generate, GenerateOptions, Llama, SamplerConfig};
use nanotensor_models::model_path::model_for_tests;

fn model_file() -> Option<GgufFile> {
    let path = model_for_tests("concurrency")?;
    Some(GgufFile::open(&path).expect("the model file should parse"))
}

/// Compile-time check: the shared model crosses threads by reference.
fn assert_send_sync<T: Send + Sync>(_: &T) {}

/// Four requests: (prompt ids, sampler).
fn requests() -> Vec<(Vec<u32>, SamplerConfig)> {
    let top_k = |seed| SamplerConfig {
        temperature: 0.8,
        top_k: Some(40),
        top_p: None,
        seed,
    };
    vec![
        // "Once upon a time"
        (vec![6403, 1980, 253, 655], SamplerConfig::greedy()),
        (vec![1, 504, 3458, 282], SamplerConfig::greedy()),
        (vec![6403, 1980, 253, 655], top_k(7)),
        (vec![2683, 314, 260], top_k(42)),
    ]
}

/// Runs every request sequentially, then all at once on scoped threads sharing `&model`, and
/// returns both lists of generated ids.
struct SequentialVsConcurrent<'a> {
    file: &'a GgufFile,
    tokens: usize,
}

type Ids = Vec<Vec<u32>>;

impl BackendVisitor for SequentialVsConcurrent<'_> {
    type Output = (Ids, Ids);
    fn visit<B: Backend>(self, backend: B) -> Result<(Ids, Ids)> {
        let model = Llama::load(backend, self.file)?;
        assert_send_sync(&model);
        let run = |prompt: &[u32], sampler: SamplerConfig| -> Result<Vec<u32>> {
            let opts = GenerateOptions {
                max_new_tokens: self.tokens,
                sampler,
                ..Default::default()
            };
            Ok(generate(&model, prompt, &opts, |_| Ok(()))?.ids)
        };
        let reqs = requests();
        let sequential = reqs
            .iter()
            .map(|(p, s)| run(p, *s))
            .collect::<Result<Ids>>()?;
        let concurrent = std::thread::scope(|scope| {
            let handles: Vec<_> = reqs
                .iter()
                .map(|(p, s)| scope.spawn(|| run(p, *s)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generation thread panicked"))
                .collect::<Result<Ids>>()
        })?;
        Ok((sequential, concurrent))
    }
}

#[test]
fn concurrent_generations_match_sequential_ones() {
    let Some(file) = model_file() else { return };
    let kinds: Vec<BackendKind> = BackendKind::ALL
        .into_iter()
        .filter(|k| k.is_compiled())
        .collect();
    assert!(!kinds.is_empty());
    for kind in kinds {
        let tokens = if kind == BackendKind::Naive { 2 } else { 4 };
        let (seq, conc) = with_backend(
            kind,
            BackendOptions::default(),
            SequentialVsConcurrent {
                file: &file,
                tokens,
            },
        )
        .unwrap();
        assert_eq!(seq.len(), requests().len());
        for ids in &seq {
            assert_eq!(ids.len(), tokens, "{kind}: no early stop is configured");
        }
        assert_eq!(seq, conc, "{kind}");
    }
}
