//! The model subcommands' contract: `generate`, `perplexity` and `bench-model` JSON fields,
//! greedy ids against the exact reference (`tests/fixtures/smollm2/greedy.json`), and
//! exit status 2 with a one-line message for every bad input.
//!
//! Tests that run the model skip (saying so) when it is not found, unless
//! `NANOTENSOR_REQUIRE_MODEL` is set, as in CI. Input validation happens before the model is
//! opened, so those tests always run.

use std::process::{Command, Output};

fn nanotensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn have_model() -> bool {
    nanotensor::model_path::model_for_tests("generate_cli").is_some()
}

/// `tests/fixtures/smollm2/greedy.json`'s case for "Once upon a time": its prompt ids and the
/// first `n` exact-reference ids.
fn greedy_reference(n: usize) -> (serde_json::Value, serde_json::Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/smollm2/greedy.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    let case = &fixture["cases"][0];
    assert_eq!(case["prompt"], "Once upon a time");
    let ids = case["f32_token_ids"].as_array().expect("ids")[..n].to_vec();
    (
        case["prompt_token_ids"].clone(),
        serde_json::Value::Array(ids),
    )
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one JSON object, got: {stdout}");
    serde_json::from_str(lines[0]).expect("valid JSON")
}

fn assert_user_error(args: &[&str], needle: &str) {
    let out = nanotensor(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: `{needle}` not in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
}

#[test]
fn bad_generate_inputs_exit_2_before_touching_the_model() {
    let p = ["generate", "--prompt", "Hello"];
    let with = |extra: &[&'static str]| [&p[..], extra].concat();
    assert_user_error(&["generate", "--prompt", ""], "prompt");
    assert_user_error(&with(&["--max-tokens", "0"]), "max-tokens");
    assert_user_error(&with(&["--temperature", "-0.5"]), "temperature");
    assert_user_error(&with(&["--temperature", "NaN"]), "temperature");
    assert_user_error(&with(&["--top-p", "0"]), "top-p");
    assert_user_error(&with(&["--top-p", "1.5"]), "top-p");
    assert_user_error(&with(&["--top-k", "0"]), "top-k");
    assert_user_error(&with(&["--threads", "0"]), "threads");
    assert_user_error(&with(&["--backend", "cuda"]), "unknown backend");
}

#[test]
fn a_missing_model_file_names_the_fetch_command() {
    for cmd in [
        &[
            "generate",
            "--prompt",
            "Hi",
            "--model",
            "/nonexistent/m.gguf",
        ][..],
        &["bench-model", "--model", "/nonexistent/m.gguf"][..],
    ] {
        assert_user_error(cmd, "fetch-model");
    }
    let out = nanotensor(&[
        "perplexity",
        "--model",
        "/nonexistent/m.gguf",
        "--file",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/text/GPL-3"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fetch-model"));
}

#[test]
fn context_overflow_is_a_user_error() {
    if !have_model() {
        return;
    }
    // 8192-token context: a short prompt with 9000 new tokens, and a 9000-token prompt.
    assert_user_error(
        &["generate", "--prompt", "Hi", "--max-tokens", "9000"],
        "exceed the context",
    );
    let long = "a ".repeat(9000);
    assert_user_error(&["generate", "--prompt", &long], "exceed the context");
    assert_user_error(
        &[
            "perplexity",
            "--file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/text/GPL-3"),
            "--ctx",
            "10000",
        ],
        "exceed the context",
    );
}

#[test]
fn generate_json_has_the_fields_and_the_reference_ids() {
    if !have_model() {
        return;
    }
    let v = json(&nanotensor(&[
        "generate",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "3",
        "--json",
    ]));
    for key in [
        "prompt_ids",
        "ids",
        "text",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "weights_bytes",
        "kv_cache_bytes",
        "backend",
        "threads",
        "kv_cache",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    // greedy.json: prompt ids and the first exact-reference ids.
    let (prompt_ids, ids) = greedy_reference(3);
    assert_eq!(v["prompt_ids"], prompt_ids);
    assert_eq!(v["ids"], ids);
    assert_eq!(v["text"], ", the city");
    assert_eq!(v["kv_cache"], true);
    assert!(v["weights_bytes"].as_u64().unwrap() > 100_000_000);
    // 30 layers × 2 (K, V) × 7 positions × 192 values × 4 bytes.
    assert_eq!(v["kv_cache_bytes"], 30 * 2 * 7 * 192 * 4);
}

/// `--dtype bf16` on the blocked backend: the report names the weight type and the greedy ids
/// still follow the exact (float64) reference for the first 12 tokens (the f32 model does too;
/// bf16 weights shift the logits by ~0.1 % of perplexity, not enough to flip these picks).
#[test]
fn bf16_weights_report_their_type_and_keep_the_reference_ids() {
    if !have_model() || !nanotensor_backends::BackendKind::Blocked.is_compiled() {
        return;
    }
    let run = |dtype: &str| {
        json(&nanotensor(&[
            "generate",
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "12",
            "--backend",
            "blocked",
            "--dtype",
            dtype,
            "--json",
        ]))
    };
    let (f32, bf16) = (run("f32"), run("bf16"));
    assert_eq!(
        (&f32["dtype"], &bf16["dtype"]),
        (&"f32".into(), &"bf16".into())
    );
    let (_, ids) = greedy_reference(12);
    assert_eq!(bf16["ids"], ids);
    // Half the matrix bytes where the CPU keeps them as bf16 (AVX512-BF16), else the same.
    let (wf, wb) = (
        f32["weights_bytes"].as_u64().unwrap(),
        bf16["weights_bytes"].as_u64().unwrap(),
    );
    let cpu = nanotensor_backends::cpu::features();
    if cpu.avx512f && cpu.avx512bf16 {
        assert!(wb * 10 < wf * 6, "bf16 {wb} vs f32 {wf} bytes");
    } else {
        assert_eq!(wb, wf);
    }
}

#[test]
fn a_prompt_file_is_read_verbatim() {
    if !have_model() {
        return;
    }
    let path = std::env::temp_dir().join(format!("nanotensor-prompt-{}.txt", std::process::id()));
    std::fs::write(&path, "Once upon a time").unwrap();
    let out = nanotensor(&[
        "generate",
        "--prompt-file",
        path.to_str().unwrap(),
        "--max-tokens",
        "3",
        "--json",
    ]);
    let _ = std::fs::remove_file(&path);
    let v = json(&out);
    // The same reference ids (greedy.json) as `--prompt "Once upon a time"`.
    let (prompt_ids, ids) = greedy_reference(3);
    assert_eq!(v["prompt_ids"], prompt_ids);
    assert_eq!(v["ids"], ids);
    assert_eq!(v["prompt"], "Once upon a time");
    // Both flags at once are refused.
    assert_user_error(
        &["generate", "--prompt", "Hi", "--prompt-file", "x.txt"],
        "cannot be used with",
    );
}

#[test]
fn generate_streams_text_and_stops_at_eos() {
    if !have_model() {
        return;
    }
    let out = nanotensor(&[
        "generate",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "3",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim_end(), "Once upon a time, the city");
    // A chat turn that the instruct model answers "No." and closes with <|im_end|> (id 2).
    let v = json(&nanotensor(&[
        "generate",
        "--prompt",
        "<|im_start|>user\nIs water wet? Answer yes or no.<|im_end|>\n<|im_start|>assistant\n",
        "--max-tokens",
        "12",
        "--json",
    ]));
    assert_eq!(v["stopped_at_eos"], true, "{v}");
    let ids = v["ids"].as_array().unwrap();
    assert_eq!(ids.last().unwrap(), 2);
    assert!(!v["text"].as_str().unwrap().contains("<|im_end|>"));
}

#[test]
fn perplexity_and_bench_model_json() {
    if !have_model() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nanotensor-ppl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("text.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. The dog sleeps, and the fox runs on \
         into the forest, where the trees are tall and the paths are long.\n",
    )
    .unwrap();
    let v = json(&nanotensor(&[
        "perplexity",
        "--file",
        text.to_str().unwrap(),
        "--ctx",
        "16",
        "--json",
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v["ctx"], 16);
    let chunks = v["chunks"].as_u64().unwrap();
    assert_eq!(chunks, v["tokens"].as_u64().unwrap() / 16);
    // Positions 8..=14 of each chunk predict tokens 9..=15: 7 per chunk.
    assert_eq!(v["tokens_scored"].as_u64().unwrap(), 7 * chunks);
    let ppl = v["ppl"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 1000.0, "{v}");

    let v = json(&nanotensor(&[
        "bench-model",
        "--prompt-tokens",
        "4",
        "--decode-tokens",
        "2",
        "--json",
        "--backend",
        "naive",
        "--warmup",
        "1",
        "--probe-bytes",
        "8MiB",
    ]));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    for r in results {
        assert!(r["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
        // naive asks for no rewrites of the weights.
        assert_eq!(r["load_transforms"]["rotate"], false, "{r}");
        assert_eq!(r["load_transforms"]["equalize"], false, "{r}");
    }
    assert!(v["kv_off_over_on_decode_time"]["naive"].as_f64().is_some());
    // Decode traffic (cache on only): bytes/step × steps/s, against the probe at 1 thread.
    let on = results.iter().find(|r| r["kv_cache"] == true).unwrap();
    let bytes = on["decode_bytes_per_token"].as_f64().unwrap();
    assert!(bytes > on["kv_cache_bytes"].as_f64().unwrap(), "{on}");
    let gb = on["decode_gb_per_s"].as_f64().unwrap();
    let tok_s = on["decode_tokens_per_s"].as_f64().unwrap();
    assert!((gb - bytes * tok_s / 1e9).abs() <= 1e-9 * gb, "{on}");
    let bw = on["read_bandwidth_gb_per_s"].as_f64().unwrap();
    assert!(bw.is_finite() && bw > 0.0, "{on}");
    let fraction = on["decode_bandwidth_fraction"].as_f64().unwrap();
    assert!((fraction - gb / bw).abs() <= 1e-9 * fraction, "{on}");
    let probes = v["bandwidth_probes"].as_array().unwrap();
    assert_eq!(probes.len(), 1, "{v}");
    assert_eq!(
        (probes[0]["threads"].as_u64(), probes[0]["bytes"].as_u64()),
        (Some(1), Some(8 << 20))
    );
    let off = results.iter().find(|r| r["kv_cache"] == false).unwrap();
    for key in [
        "decode_bytes_per_token",
        "decode_gb_per_s",
        "read_bandwidth_gb_per_s",
        "decode_bandwidth_fraction",
    ] {
        assert!(off[key].is_null(), "{key} in {off}");
    }

    // Without the probe: the traffic stays, the bandwidth fields are null.
    let v = json(&nanotensor(&[
        "bench-model",
        "--prompt-tokens",
        "4",
        "--decode-tokens",
        "2",
        "--kv-cache",
        "on",
        "--json",
        "--backend",
        "naive",
        "--no-bandwidth-probe",
    ]));
    let r = &v["results"][0];
    assert!(r["decode_bytes_per_token"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["read_bandwidth_gb_per_s"].is_null(), "{r}");
    assert!(r["decode_bandwidth_fraction"].is_null(), "{r}");
    assert_eq!(
        v["bandwidth_probes"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
}
