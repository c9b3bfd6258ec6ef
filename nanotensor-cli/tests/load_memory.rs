//! The memory a model load needs at most, measured in a fresh process: `nanotensor generate
//! --json` reports the process's peak resident set right after the load
//! (`load_peak_rss_bytes`, `VmHWM`), the file's size and the weights' bytes. With the int8
//! backend the load streams (no whole-model `f32` copy, the output head quantized a chunk of
//! rows at a time, the token embedding borrowed from the mapped file), so the peak stays within
//! the file (every page of it may be resident) plus the prepared weights plus 100 MiB for the
//! rest of the process (tokenizer, code, one chunk of scratch). Dequantizing the tied output
//! head of Gemma 3 whole (`262144 × 640` in `f32`, 640 MiB) would exceed it several times over.
//!
//! With the quant backend the weights are the file's blocks, shared with the map rather than
//! copied: the prepared weights stay within 1.05× the tensors' bytes in the file (a tied head
//! counted once, being the embedding's own bytes) and the load's peak within 1.3× the file.
//!
//! Skips (saying so) when a model is absent, unless `NANOTENSOR_REQUIRE_MODEL` is set, as the
//! README's test command does: then a missing model fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use nanotensor::gguf::GgufFile;

const MIB: u64 = 1 << 20;

fn gemma3() -> Option<PathBuf> {
    use nanotensor::model_path::{known_model_for_tests, GEMMA3_270M};
    known_model_for_tests(&GEMMA3_270M, "load_memory (gemma3)")
}

/// `generate --max-tokens 1 --json` on `model` with `backend`, in a fresh process.
fn generate_json(model: &Path, backend: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(["generate", "--model"])
        .arg(model)
        .args(["--backend", backend, "--max-tokens", "1", "--json"])
        .args(["--prompt", "The capital of France is"])
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

fn field(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is a byte count: {v}"))
}

/// Checks the bound on `model` loaded by the int8 backend; returns the report and the bound's
/// slack (bound − peak; `None` without a peak).
fn check_int8_load(model: &Path) -> (serde_json::Value, Option<u64>) {
    let v = generate_json(model, "int8");
    let file = GgufFile::open(model).expect("model opens");
    // The embedding stays in its stored form: exactly the file's bytes of the tensor.
    let embd = file.tensor("token_embd.weight").expect("embedding");
    assert_eq!(field(&v, "embedding_bytes"), embd.n_bytes as u64);
    assert_eq!(field(&v, "file_bytes"), file.file_size() as u64);
    let Some(peak) = v["load_peak_rss_bytes"].as_u64() else {
        if cfg!(target_os = "linux") {
            panic!("Linux reports VmHWM, so the peak must be a number: {v}");
        }
        eprintln!("load_memory: no peak RSS on this platform, bound not checked");
        return (v, None);
    };
    // The embedding is part of the file: counted once, with the file's bytes.
    let prepared = field(&v, "weights_bytes") - field(&v, "embedding_bytes");
    let bound = field(&v, "file_bytes") + prepared + 100 * MIB;
    assert!(
        peak <= bound,
        "{}: peak RSS after load {} MiB exceeds file {} MiB + prepared weights {} MiB + 100 MiB",
        model.display(),
        peak / MIB,
        field(&v, "file_bytes") / MIB,
        prepared / MIB
    );
    (v, Some(bound - peak))
}

#[test]
fn gemma3_int8_load_stays_within_file_plus_prepared_weights() {
    let Some(model) = gemma3() else { return };
    let (v, slack) = check_int8_load(&model);
    assert_eq!(v["load_transforms"]["rotate"], false, "{v}");
    // The bound means something here: a copy of the tied head in f32 would not fit its slack.
    let file = GgufFile::open(&model).expect("model opens");
    assert!(
        file.tensor("output.weight").is_err(),
        "Gemma 3 ties its head"
    );
    let head_f32 = 4 * file.tensor("token_embd.weight").unwrap().n_elements() as u64;
    if let Some(slack) = slack {
        assert!(
            head_f32 > slack,
            "slack {slack} B, head in f32 {head_f32} B"
        );
    }
}

#[test]
fn smollm2_int8_load_stays_within_file_plus_prepared_weights() {
    // The int8 default rotates and equalises SmolLM2: the head streams through both rewrites.
    let Some(model) = nanotensor::model_path::model_for_tests("load_memory (smollm2)") else {
        return;
    };
    let (v, _) = check_int8_load(&model);
    assert_eq!(v["load_transforms"]["rotate"], true, "{v}");
}

/// Checks the quant backend's bounds on `model`: weights ≤ 1.05 × the tensors' stored bytes
/// (`tensor_bytes`, the sum of every tensor's data size in the file), peak RSS after the load
/// ≤ 1.3 × the file's size. Both models tie their head to the embedding, which the quant
/// backend keeps as the file's bytes: one copy, counted once.
fn check_quant_load(model: &Path) {
    let v = generate_json(model, "quant");
    let file = GgufFile::open(model).expect("model opens");
    assert_eq!(field(&v, "file_bytes"), file.file_size() as u64);
    assert_eq!(field(&v, "tensor_bytes"), file.tensor_bytes());
    assert!(file.tensor("output.weight").is_err(), "a tied head: {v}");
    assert_eq!(v["head_shares_embedding"], true, "{v}");
    let (weights, tensors) = (field(&v, "weights_bytes"), field(&v, "tensor_bytes"));
    // The shared part is the file's storage: never more than the weights, nor the tensors.
    assert!(
        field(&v, "shared_weights_bytes") <= weights.min(tensors),
        "{v}"
    );
    assert!(
        weights * 100 <= tensors * 105,
        "{}: weights {weights} B exceed 1.05 × the tensors' {tensors} B",
        model.display()
    );
    eprintln!(
        "load_memory (quant) {}: weights {weights} B, tensors {tensors} B, file {} B, peak RSS {:?} B",
        model.display(),
        field(&v, "file_bytes"),
        v["load_peak_rss_bytes"].as_u64()
    );
    let Some(peak) = v["load_peak_rss_bytes"].as_u64() else {
        if cfg!(target_os = "linux") {
            panic!("Linux reports VmHWM, so the peak must be a number: {v}");
        }
        eprintln!("load_memory: no peak RSS on this platform, bound not checked");
        return;
    };
    let file_bytes = field(&v, "file_bytes");
    assert!(
        peak * 10 <= file_bytes * 13,
        "{}: peak RSS after load {} MiB exceeds 1.3 × the file's {} MiB",
        model.display(),
        peak / MIB,
        file_bytes / MIB
    );
}

#[test]
fn gemma3_quant_load_keeps_the_file_blocks_once() {
    let Some(model) = gemma3() else { return };
    check_quant_load(&model);
}

#[test]
fn smollm2_quant_load_keeps_the_file_blocks_once() {
    let Some(model) = nanotensor::model_path::model_for_tests("load_memory (smollm2, quant)")
    else {
        return;
    };
    check_quant_load(&model);
}
