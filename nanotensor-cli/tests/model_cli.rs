//! `nanotensor info` and `nanotensor tokenize` on the real models (SmolLM2, and Gemma 3 for its
//! SentencePiece-style tokenizer), against the fixtures.
//!
//! Skips (saying so) when the model is absent, unless `NANOTENSOR_REQUIRE_MODEL` is set, as the
//! README's test command does: then a missing model fails.

use std::path::PathBuf;
use std::process::Command;

fn model() -> Option<PathBuf> {
    nanotensor::model_path::model_for_tests("model_cli")
}

fn gemma3() -> Option<PathBuf> {
    use nanotensor::model_path::{known_model_for_tests, GEMMA3_270M};
    known_model_for_tests(&GEMMA3_270M, "model_cli (gemma3)")
}

fn fixture(name: &str) -> serde_json::Value {
    fixture_in("smollm2", name)
}

fn fixture_in(dir: &str, name: &str) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
    let text = std::fs::read_to_string(format!("{path}{dir}/{name}")).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tokenize_reproduces_every_fixture_case() {
    let Some(model) = model() else { return };
    let model = model.to_str().unwrap();
    let cases = fixture("tokenize.json");
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let (code, stdout, stderr) = run(&["tokenize", "--model", model, "--json", "--", text]);
        assert_eq!(code, Some(0), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["ids"], case["ids"], "text {text:?}");
    }
}

#[test]
fn tokenize_reproduces_every_gemma3_fixture_case() {
    let Some(model) = gemma3() else { return };
    let model = model.to_str().unwrap();
    let cases = fixture_in("gemma3", "tokenize.json");
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let (code, stdout, stderr) = run(&["tokenize", "--model", model, "--json", "--", text]);
        assert_eq!(code, Some(0), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["ids"], case["ids"], "text {text:?}");
    }
    // The table form shows each token's vocabulary string and decoded bytes.
    let (code, stdout, stderr) = run(&["tokenize", "--model", model, "--", " Hello world"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("▁Hello") && stdout.contains("\" Hello\""),
        "{stdout}"
    );
    assert!(stdout.contains("2 tokens"), "{stdout}");
}

#[test]
fn info_reports_the_gemma3_tokenizer() {
    let Some(model) = gemma3() else { return };
    let (code, stdout, stderr) = run(&["info", "--model", model.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let tok = &v["tokenizer"];
    assert_eq!(tok["model"], "llama", "{tok}");
    assert_eq!(tok["vocab_size"], 262_144);
    assert_eq!(
        (&tok["bos"], &tok["eos"], &tok["add_bos"]),
        (&2.into(), &1.into(), &true.into())
    );
    assert!(tok["pre"].is_null(), "{tok}");
}

#[test]
fn info_shows_the_model_of_the_fixture_readme() {
    let Some(model) = model() else { return };
    let (code, stdout, stderr) = run(&["info", "--model", model.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_params"], 134_515_008u64);
    assert_eq!(v["hyperparameters"]["llama.block_count"], "30");
    let tensors = v["tensors"].as_array().unwrap();
    let embd = tensors
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(embd["type"], "Q8_0");
    assert_eq!(embd["shape"], serde_json::json!([49152, 576]));
    let q4 = tensors.iter().filter(|t| t["type"] == "Q4_1").count();
    assert_eq!(q4, 30 * 7);
    assert_eq!(v["tokenizer"]["vocab_size"], 49152);
    assert_eq!(v["tokenizer"]["model"], "gpt2");
    assert_eq!(v["tokenizer"]["pre"], "Smollm");
}

#[test]
fn malformed_model_files_exit_2() {
    let dir = std::env::temp_dir().join(format!("nanotensor-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_magic = dir.join("bad.gguf");
    std::fs::write(&bad_magic, b"GGUX\x03\0\0\0").unwrap();
    for path in [
        bad_magic.to_str().unwrap(),
        dir.to_str().unwrap(),
        "/definitely/not/here.gguf",
    ] {
        let (code, stdout, stderr) = run(&["info", "--model", path]);
        assert_eq!(code, Some(2), "{path}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quantize_reports_every_int8_scheme_on_a_model_weight() {
    let Some(model) = model() else { return };
    let model = model.to_str().unwrap();
    let (code, stdout, stderr) = run(&[
        "quantize",
        "--model",
        model,
        "--tensor",
        "blk.0.ffn_down.weight",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (v["rows"].as_u64(), v["cols"].as_u64()),
        (Some(576), Some(1536))
    );
    let reports = v["reports"].as_array().unwrap();
    let nmse = |scheme: &str| {
        reports
            .iter()
            .find(|r| r["scheme"] == scheme)
            .unwrap_or_else(|| panic!("no `{scheme}` in {reports:?}"))["nmse"]
            .as_f64()
            .unwrap()
    };
    for r in reports {
        let e = r["nmse"].as_f64().unwrap();
        assert!(e > 0.0 && e < 0.1, "{r}");
    }
    // One scale per tensor on ffn_down: its outlier rows set the step of every other row; the
    // rotation spreads them, the equalisation balances the columns with ffn_up's rows.
    let plain = nmse("per-tensor absmax");
    assert!(nmse("per-row absmax") < plain / 5.0);
    assert!(nmse("per-tensor absmax rotated") < plain / 3.0);
    assert!(nmse("per-tensor absmax rotated+equalised") < nmse("per-tensor absmax rotated"));
    assert!(nmse("per-tensor absmax equalised") < plain);
    // The table form names the tensor.
    let (code, stdout, _) = run(&[
        "quantize",
        "--model",
        model,
        "--tensor",
        "blk.0.attn_q.weight",
    ]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("blk.0.attn_q.weight") && stdout.contains("rotated+equalised"));
    // A tensor that is not there, or not a matrix: exit 2.
    for bad in ["blk.99.ffn_down.weight", "blk.0.attn_norm.weight"] {
        let (code, _, stderr) = run(&["quantize", "--model", model, "--tensor", bad]);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
    }
}

#[test]
fn generate_with_int8_names_its_scheme() {
    let Some(model) = model() else { return };
    let (code, _, stderr) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "int8",
        "--prompt",
        "Hi",
        "--max-tokens",
        "2",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "weights per-row, activations per-block-16, clip absmax, rotate on, equalize on"
        ),
        "{stderr}"
    );
}
