//! all-MiniLM-L6-v2 sentence embeddings on every backend against sentence-transformers
//! (`tests/fixtures/minilm/reference.json`: float32 PyTorch on CPU, one text per call): each
//! embedding is reproduced with cosine ≥ 0.9999 on the float backends and ≥ 0.995 on int8,
//! whether the texts run one at a time or packed into one batch.
//!
//! Each test skips, saying so, when the model is not found (`scripts/fetch-model.sh minilm`
//! fetches it), unless `NANOTENSOR_REQUIRE_MODEL` is set: then it fails.

use nanotensor_backends::blocked::BlockedBackend;
use nanotensor_backends::int8::Int8Backend;
use nanotensor_backends::naive::NaiveBackend;
use nanotensor_core::backend::Backend;
use nanotensor_core::Error;
use nanotensor_models::encoder::{cosine, Embedder};
use nanotensor_models::model_path::{known_model_for_tests, MINILM};
mod common;
use common::{fixture, ids};

/// (text, ids, embedding) of every reference item.
fn reference() -> Vec<(String, Vec<u32>, Vec<f32>)> {
    let r = fixture("minilm", "reference.json");
    r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let e = item["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|v| v.as_f64().expect("a number") as f32)
                .collect();
            (
                item["text"].as_str().expect("text").to_string(),
                ids(&item["input_ids"]),
                e,
            )
        })
        .collect()
}

/// Loads the model on `backend` and checks every reference embedding, one text per call and
/// all texts in one packed batch, against `min_cos`.
fn check<B: Backend>(backend: B, min_cos: f64) {
    let Some(path) = known_model_for_tests(&MINILM, "minilm") else {
        return;
    };
    let name = backend.name();
    let embedder = Embedder::load(&path, backend).expect("the model should load");
    assert_eq!(embedder.config().hidden, 384);
    assert_eq!(embedder.config().max_seq_len, 256);
    let items = reference();
    let texts: Vec<&str> = items.iter().map(|(t, _, _)| t.as_str()).collect();
    let batched = embedder.embed(&texts).expect("embed the batch");
    assert_eq!(batched.len(), items.len());
    let mut worst = (f64::INFINITY, "");
    for ((text, ids, want), batch) in items.iter().zip(&batched) {
        assert_eq!(&embedder.encode(text), ids, "{text:?}");
        let single = embedder.embed(&[text]).expect("embed one text");
        for (how, got) in [("alone", &single[0]), ("in the batch", batch)] {
            assert_eq!(got.len(), 384);
            let norm = got
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-5,
                "{name}: {text:?} {how}: norm {norm}"
            );
            let c = cosine(got, want);
            if c < worst.0 {
                worst = (c, text.as_str());
            }
            assert!(
                c >= min_cos,
                "{name}: {text:?} {how}: cosine {c:.6} < {min_cos}"
            );
        }
    }
    eprintln!(
        "{name}: lowest cosine to sentence-transformers {:.7} ({:?})",
        worst.0, worst.1
    );
}

#[test]
fn naive_reproduces_sentence_transformers() {
    check(NaiveBackend::new(1).unwrap(), 0.9999);
}

#[test]
fn blocked_reproduces_sentence_transformers() {
    check(BlockedBackend::new(2).expect("blocked"), 0.9999);
}

#[test]
fn int8_reproduces_sentence_transformers() {
    check(Int8Backend::new(2).expect("int8"), 0.995);
}

#[test]
fn a_missing_model_directory_is_a_typed_error() {
    let err = Embedder::load("no/such/model-dir", NaiveBackend::new(1).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.is_user_error());
}

#[test]
fn out_of_vocabulary_ids_are_refused() {
    let Some(path) = known_model_for_tests(&MINILM, "minilm") else {
        return;
    };
    let embedder = Embedder::load(&path, NaiveBackend::new(1).unwrap()).unwrap();
    let err = embedder.embed_ids(&[vec![101, 40_000, 102]]).unwrap_err();
    assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
    let err = embedder.embed_ids(&[vec![]]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}
