//! `nanotensor embed` and `nanotensor search` on all-MiniLM-L6-v2, against the
//! sentence-transformers reference (`tests/fixtures/minilm/reference.json`), and their bad-input
//! exits.
//!
//! The model tests skip (saying so) when the model is absent, unless `NANOTENSOR_REQUIRE_MODEL`
//! is set: then a missing model fails.

use std::path::PathBuf;
use std::process::Command;

fn model() -> Option<PathBuf> {
    use nanotensor::model_path::{known_model_for_tests, MINILM};
    known_model_for_tests(&MINILM, "embed_cli")
}

fn reference() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/minilm/reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture readable"))
        .expect("fixture is JSON")
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

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
fn embed_json_reproduces_the_reference() {
    let Some(model) = model() else { return };
    let dir = model.parent().unwrap().to_str().unwrap().to_string();
    let items = reference()["items"].as_array().unwrap().clone();
    let mut args = vec![
        "embed",
        "--model",
        &dir,
        "--json",
        "--backend",
        "blocked",
        "--threads",
        "1",
        "--",
    ];
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    args.extend(&texts);
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["backend"], "blocked");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["sentences"], items.len());
    for key in ["sentences_per_s", "tokens_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}");
    }
    for (i, item) in items.iter().enumerate() {
        assert_eq!(v["ids"][i], item["input_ids"], "{:?}", texts[i]);
        let c = cosine(&floats(&v["embeddings"][i]), &floats(&item["embedding"]));
        assert!(c >= 0.9999, "{:?}: cosine {c}", texts[i]);
    }
}

#[test]
fn search_ranks_the_paraphrase_first() {
    let Some(model) = model() else { return };
    let dir = std::env::temp_dir().join(format!("nanotensor-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lines.txt");
    // Lines 1 and 3 of the reference are unrelated to the query; line 2 is its paraphrase.
    let items = reference()["items"].as_array().unwrap().clone();
    let text = |i: usize| items[i]["text"].as_str().unwrap().to_string();
    std::fs::write(&file, format!("{}\n{}\n\n{}\n", text(2), text(1), text(4))).unwrap();
    let (code, stdout, stderr) = run(&[
        "search",
        "--model",
        model.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--top",
        "2",
        "--json",
        "--",
        &text(0),
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["lines"], 3);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["line"], 2);
    assert_eq!(results[0]["text"], text(1).as_str());
    // The score is the cosine of the two reference embeddings.
    let want = cosine(
        &floats(&items[0]["embedding"]),
        &floats(&items[1]["embedding"]),
    );
    let got = results[0]["score"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-3, "score {got}, reference {want}");
    assert!(results[1]["score"].as_f64().unwrap() < got);
}

#[test]
fn a_bad_model_path_exits_2_naming_the_fetch_command() {
    for cmd in [
        vec!["embed", "--model", "no/such/dir", "--", "hello"],
        vec![
            "search",
            "--model",
            "no/such/dir",
            "--file",
            "Cargo.toml",
            "--",
            "hello",
        ],
    ] {
        let (code, stdout, stderr) = run(&cmd);
        assert_eq!(code, Some(2), "{cmd:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains("no/such/dir") && stderr.contains("scripts/fetch-model.sh minilm"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    let cases: [&[&str]; 4] = [
        &["embed"],
        &["embed", "--file", "no/such/file.txt"],
        &["search", "--file", "no/such/file.txt", "--", "q"],
        &["search", "--file", "Cargo.toml", "--top", "0", "--", "q"],
    ];
    for args in cases {
        let (code, _, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
    }
}
