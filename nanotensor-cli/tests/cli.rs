//! The command-line contract: JSON fields, exit codes, one-line errors, no panics.

use std::process::{Command, Output};

fn nanotensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON object on stdout, got: {stdout}"
    );
    serde_json::from_str(lines[0]).expect("valid JSON")
}

#[test]
fn matmul_json_reports_fields_and_accuracy() {
    let out = nanotensor(&[
        "matmul",
        "--backend",
        "naive",
        "--m",
        "64",
        "--k",
        "64",
        "--n",
        "64",
        "--check",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    for key in [
        "op", "backend", "m", "k", "n", "threads", "dtype", "seconds", "gflops", "nmse",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["op"], "matmul");
    assert_eq!(v["backend"], "naive");
    assert!(v["nmse"].as_f64().unwrap() < 1e-10, "{v}");
    assert!(v["gflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn attention_json_reports_algo_and_scratch() {
    let out = nanotensor(&[
        "attention",
        "--backend",
        "naive",
        "--seq-len",
        "33",
        "--head-dim",
        "16",
        "--heads",
        "4",
        "--kv-heads",
        "2",
        "--causal",
        "--check",
        "--json",
        "--repeat",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["algo"], "naive");
    assert_eq!(v["scratch_bytes"].as_u64().unwrap(), 4 * 33 * 33 * 4);
    assert!(v["nmse"].as_f64().unwrap() < 1e-10, "{v}");
    // 4·H·N²·d, halved when causal.
    let flops = 4.0 * 4.0 * 33.0 * 33.0 * 16.0 / 2.0;
    let expect = flops / v["seconds"].as_f64().unwrap() / 1e9;
    assert!((v["gflops"].as_f64().unwrap() - expect).abs() <= 1e-9 * expect.max(1.0));
}

#[test]
fn naive_attention_at_100k_is_refused_with_the_bytes() {
    let t0 = std::time::Instant::now();
    let out = nanotensor(&[
        "attention",
        "--backend",
        "naive",
        "--seq-len",
        "100000",
        "--head-dim",
        "64",
        "--heads",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("40.0 GB"), "{err}");
    assert!(out.stdout.is_empty());
    // Refused before allocating: not a performance claim, just "did not try to fill 40 GB".
    assert!(t0.elapsed().as_secs() < 30);
}

#[test]
fn user_errors_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["matmul", "--m", "0", "--k", "4", "--n", "4"], "--m"),
        (&["matmul", "--m", "4", "--k", "4"], "--n"),
        (
            &["matmul", "--m", "4", "--k", "4", "--n", "4", "--bogus"],
            "--bogus",
        ),
        (
            &[
                "matmul",
                "--backend",
                "cuda",
                "--m",
                "4",
                "--k",
                "4",
                "--n",
                "4",
            ],
            "unknown backend",
        ),
        (
            &[
                "matmul",
                "--m",
                "4",
                "--k",
                "4",
                "--n",
                "4",
                "--threads",
                "0",
            ],
            "threads",
        ),
        (
            &[
                "matmul", "--m", "4", "--k", "4", "--n", "4", "--repeat", "0",
            ],
            "repeat",
        ),
        (
            &[
                "matmul",
                "--m",
                "1000000000",
                "--k",
                "100000",
                "--n",
                "100000",
            ],
            "memory budget",
        ),
        (
            &[
                "matmul", "--m", "4", "--k", "4", "--n", "4", "--dtype", "f8",
            ],
            "--dtype",
        ),
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--heads",
                "3",
                "--kv-heads",
                "2",
            ],
            "multiple",
        ),
        (
            &[
                "attention",
                "--backend",
                "naive",
                "--algo",
                "flash",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
            ],
            "flash",
        ),
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--max-memory",
                "lots",
            ],
            "byte",
        ),
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--scale",
                "NaN",
            ],
            "scale",
        ),
    ];
    for (args, needle) in cases {
        let out = nanotensor(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
