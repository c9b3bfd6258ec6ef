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
fn attention_window_is_reported_and_checked() {
    // A 16-position window over a 200-token causal prefill, on the naive path and on flash.
    for (backend, algo) in [("naive", "naive"), ("blocked", "flash")] {
        let out = nanotensor(&[
            "attention",
            "--backend",
            backend,
            "--algo",
            algo,
            "--seq-len",
            "200",
            "--head-dim",
            "16",
            "--heads",
            "2",
            "--causal",
            "--window",
            "16",
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
        assert_eq!(v["window"], 16, "{v}");
        assert_eq!(v["algo"], algo);
        assert!(v["nmse"].as_f64().unwrap() < 1e-10, "{v}");
        // Work counts the visible pairs only: rows 0..15 see 1..16 keys, the other 184 see 16.
        let pairs = (1..=16).sum::<usize>() as f64 + 184.0 * 16.0;
        let flops = 2.0 * 2.0 * pairs * (16.0 + 16.0);
        let expect = flops / v["seconds"].as_f64().unwrap() / 1e9;
        assert!((v["gflops"].as_f64().unwrap() - expect).abs() <= 1e-9 * expect.max(1.0));
    }
    // Without --window the field is null.
    let out = nanotensor(&[
        "attention",
        "--backend",
        "naive",
        "--seq-len",
        "8",
        "--head-dim",
        "8",
        "--json",
        "--repeat",
        "1",
    ]);
    assert!(json(&out)["window"].is_null());
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
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--causal",
                "--window",
                "0",
            ],
            "window",
        ),
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--window",
                "4",
            ],
            "causal",
        ),
        (
            &[
                "attention",
                "--seq-len",
                "8",
                "--head-dim",
                "8",
                "--causal",
                "--window",
                "many",
            ],
            "--window",
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

#[test]
fn int8_matmul_check_reports_quantization_nmse() {
    let out = nanotensor(&[
        "matmul",
        "--backend",
        "int8",
        "--m",
        "64",
        "--k",
        "96",
        "--n",
        "48",
        "--check",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["backend"], "int8");
    // Per-tensor quantization of Gaussian operands: NMSE ≈ 2e-4 vs the unquantized f64 product.
    let nmse = v["nmse"].as_f64().unwrap();
    assert!(nmse > 1e-6 && nmse < 1e-3, "{nmse}");
    assert!(v["gflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn int8_scale_granularities_are_selectable_and_reported() {
    let run = |w: &str, a: &str| {
        nanotensor(&[
            "matmul",
            "--backend",
            "int8",
            "--m",
            "32",
            "--k",
            "256",
            "--n",
            "40",
            "--int8-weights",
            w,
            "--int8-activations",
            a,
            "--check",
            "--json",
        ])
    };
    let mut nmse = Vec::new();
    for (w, a) in [
        ("per-tensor", "per-tensor"),
        ("per-row", "per-row"),
        ("per-row", "per-block"),
    ] {
        let out = run(w, a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["int8"]["weights"], w);
        let want = if a == "per-block" { "per-block-32" } else { a };
        assert_eq!(v["int8"]["activations"], want);
        nmse.push(v["nmse"].as_f64().unwrap());
    }
    // Finer scales, less noise (Gaussian operands: ≈2e-4, then ≈1e-4 and below).
    assert!(
        nmse[2] < nmse[1] && nmse[1] < nmse[0] && nmse[0] < 1e-3,
        "{nmse:?}"
    );
    for (w, a) in [("per-block", "per-row"), ("per-row", "per-block-30")] {
        let out = run(w, a);
        assert_eq!(out.status.code(), Some(2), "{w} {a}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn quantize_reports_memory_and_error_per_granularity() {
    let out = nanotensor(&[
        "quantize",
        "--rows",
        "64",
        "--cols",
        "128",
        "--outlier",
        "50",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["op"], "quantize");
    let r = v["reports"].as_array().unwrap();
    let by = |scheme: &str| {
        r.iter()
            .find(|x| x["scheme"] == scheme)
            .unwrap_or_else(|| panic!("no `{scheme}` report"))
    };
    let (t, p, tm) = (
        by("per-tensor absmax"),
        by("per-row absmax"),
        by("per-tensor mse"),
    );
    assert_eq!(t["granularity"], "per-tensor");
    assert_eq!(t["f32_bytes"], 4 * 64 * 128);
    assert_eq!(t["qtensor_bytes"], 64 * 128 + 4);
    assert_eq!(p["qtensor_bytes"], 64 * 128 + 4 * 64);
    // The outlier row costs the per-tensor scale accuracy on every other row.
    let nmse = |x: &serde_json::Value| x["nmse"].as_f64().unwrap();
    assert!(nmse(t) > 10.0 * nmse(p), "per-tensor {t} vs per-row {p}");
    // The MSE-optimal clip never loses to the largest magnitude on the values it is chosen on.
    assert!(nmse(tm) <= nmse(t), "mse {tm} vs absmax {t}");
    assert_eq!(tm["clip"], "mse");
    let table = nanotensor(&["quantize", "--rows", "8", "--cols", "8"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("per-row"));
}

#[test]
fn quantize_reads_raw_f32_files_and_rejects_bad_ones() {
    let dir = std::env::temp_dir().join(format!("nanotensor-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("x.f32");
    // 2 rows of 2: [127, -63.5 | 1, 0]; max 127 → scale 1 → codes exact except -63.5 → -64.
    let vals = [127.0f32, -63.5, 1.0, 0.0];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&good, bytes).unwrap();
    let out = nanotensor(&[
        "quantize",
        "--file",
        good.to_str().unwrap(),
        "--cols",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!((v["rows"].as_u64(), v["cols"].as_u64()), (Some(2), Some(2)));
    assert_eq!(v["reports"][0]["max_abs_error"].as_f64(), Some(0.5));
    let bad = dir.join("bad.f32");
    std::fs::write(&bad, [0u8; 5]).unwrap();
    let out = nanotensor(&["quantize", "--file", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = nanotensor(&["quantize", "--file", good.to_str().unwrap(), "--cols", "3"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn info_lists_every_ggml_type_by_name() {
    use nanotensor::gguf::types::ALL_TYPES;
    // A GGUF v3 file with one tensor of one block of every known type (zero bytes).
    let mut infos = Vec::new();
    let mut offset = 0u64;
    for ty in ALL_TYPES {
        let name = format!("t.{}", ty.name());
        infos.extend((name.len() as u64).to_le_bytes());
        infos.extend(name.as_bytes());
        infos.extend(1u32.to_le_bytes());
        infos.extend((ty.block_size() as u64).to_le_bytes());
        infos.extend(ty.id().to_le_bytes());
        infos.extend(offset.to_le_bytes());
        offset += (ty.type_size() as u64).div_ceil(32) * 32;
    }
    let mut file = b"GGUF".to_vec();
    file.extend(3u32.to_le_bytes());
    file.extend((ALL_TYPES.len() as u64).to_le_bytes());
    file.extend(0u64.to_le_bytes());
    file.extend(infos);
    file.resize(file.len().div_ceil(32) * 32 + offset as usize, 0);
    let path = std::env::temp_dir().join(format!("nanotensor-types-{}.gguf", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let p = path.to_str().unwrap();
    let out = nanotensor(&["info", "--model", p, "--json"]);
    let text = nanotensor(&["info", "--model", p]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let tensor_types: Vec<&str> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    let names: Vec<&str> = ALL_TYPES.iter().map(|t| t.name()).collect();
    assert_eq!(tensor_types, names);
    assert_eq!(v["by_type"].as_array().unwrap().len(), ALL_TYPES.len());
    let text = String::from_utf8_lossy(&text.stdout);
    for name in [
        "Q4_K", "Q6_K", "IQ2_XXS", "IQ4_XS", "IQ1_M", "TQ2_0", "MXFP4",
    ] {
        assert!(text.contains(name), "{name} not in:\n{text}");
    }
}

#[test]
fn bandwidth_reports_a_finite_positive_rate_and_refuses_bad_input() {
    // A small buffer: a shape check of the report, not a timing claim.
    let out = nanotensor(&[
        "bandwidth",
        "--bytes",
        "4MiB",
        "--threads",
        "2",
        "--passes",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["threads"], 2);
    assert_eq!(v["bytes"], 4 << 20);
    assert_eq!(v["passes"], 2);
    let gb = v["read_bandwidth_gb_per_s"].as_f64().unwrap();
    assert!(gb.is_finite() && gb > 0.0, "{v}");
    assert!(v["best_seconds"].as_f64().unwrap() > 0.0, "{v}");

    for (args, needle) in [
        (&["bandwidth", "--threads", "0"][..], "threads"),
        (&["bandwidth", "--passes", "0"][..], "passes"),
        (&["bandwidth", "--bytes", "100T"][..], "budget"),
        (&["bandwidth", "--bytes", "lots"][..], "byte count"),
        (&["bench-model", "--probe-bytes", "100T"][..], "budget"),
    ] {
        let out = nanotensor(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.to_lowercase().contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Every `--dtype` runs matmul (plain and prepared) and attention on the blocked backend,
/// reports the dtype and the kernel that ran, and stays within the dtype's bound against the
/// float64 reference (the conformance bounds: f32 1e-10, f64 1e-24, bf16 1e-5, f16 1e-7).
#[cfg(feature = "blocked")]
#[test]
fn every_dtype_reports_its_kernel_and_accuracy() {
    for (dtype, bound) in [
        ("f32", 1e-10),
        ("f64", 1e-24),
        ("bf16", 1e-5),
        ("f16", 1e-7),
    ] {
        for prepared in [false, true] {
            let mut args = vec![
                "matmul",
                "--backend",
                "blocked",
                "--m",
                "37",
                "--k",
                "129",
                "--n",
                "65",
                "--dtype",
                dtype,
                "--threads",
                "2",
                "--repeat",
                "1",
                "--check",
                "--json",
            ];
            if prepared {
                args.push("--prepared");
            }
            let out = nanotensor(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v = json(&out);
            assert_eq!(v["dtype"], dtype);
            let kernel = v["kernel"]
                .as_str()
                .expect("the blocked backend names its kernel");
            assert!(
                kernel.contains(if dtype == "f64" { "f64" } else { "f32" })
                    || kernel.starts_with("avx512bf16"),
                "{v}"
            );
            assert!(v["nmse"].as_f64().unwrap() < bound, "{v}");
        }
        let out = nanotensor(&[
            "attention",
            "--backend",
            "blocked",
            "--seq-len",
            "40",
            "--head-dim",
            "16",
            "--heads",
            "2",
            "--causal",
            "--dtype",
            dtype,
            "--repeat",
            "1",
            "--check",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["dtype"], dtype);
        assert!(v["kernel"].as_str().is_some(), "{v}");
        assert!(v["nmse"].as_f64().unwrap() < bound, "{v}");
    }
}

#[test]
fn info_says_why_an_unsupported_architecture_cannot_run() {
    // A GGUF v3 file with no tensors and one metadata pair: general.architecture = "qwen2".
    let mut file = b"GGUF".to_vec();
    file.extend(3u32.to_le_bytes());
    file.extend(0u64.to_le_bytes());
    file.extend(1u64.to_le_bytes());
    let key = "general.architecture";
    file.extend((key.len() as u64).to_le_bytes());
    file.extend(key.as_bytes());
    file.extend(8u32.to_le_bytes()); // string
    file.extend(5u64.to_le_bytes());
    file.extend(b"qwen2");
    let path = std::env::temp_dir().join(format!("nanotensor-arch-{}.gguf", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let p = path.to_str().unwrap();
    let out = nanotensor(&["info", "--model", p, "--json"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["model"]["runs"], false);
    let e = v["model"]["error"].as_str().unwrap();
    assert!(
        e.contains("`qwen2` is not supported") && e.contains("llama, gemma3"),
        "{e}"
    );
}

/// `matmul --format`: B as random valid blocks of a GGUF format, multiplied as stored by the
/// quant backend; `--check` against the float64 product of the dequantized B and the
/// unquantized A.
#[cfg(feature = "quant")]
#[test]
fn quant_matmul_format_reports_format_and_accuracy() {
    let out = nanotensor(&[
        "matmul",
        "--backend",
        "quant",
        "--format",
        "q4_k",
        "--m",
        "16",
        "--k",
        "512",
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
        "op",
        "backend",
        "m",
        "k",
        "n",
        "threads",
        "dtype",
        "seconds",
        "gflops",
        "nmse",
        "max_abs_err",
        "kernel",
        "repeat",
        "prepared",
        "format",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(
        (&v["backend"], &v["format"], &v["prepared"]),
        (&"quant".into(), &"Q4_K".into(), &true.into()),
        "{v}"
    );
    // The bound of the conformance harness for every format (pooled NMSE ≤ 1e-4; the 8-bit
    // activation blocks give about 2e-5 on Gaussian A). It is not zero: A is quantized.
    let nmse = v["nmse"].as_f64().unwrap();
    assert!(nmse > 1e-7 && nmse < 1e-4, "{nmse}");
    assert!(v["gflops"].as_f64().unwrap() > 0.0);
}

#[cfg(feature = "quant")]
#[test]
fn quant_matmul_format_bad_flags_exit_2() {
    let shape = ["--m", "4", "--k", "512", "--n", "8"];
    for (args, needle) in [
        (
            &["--backend", "naive", "--format", "q4_k"][..],
            "--backend quant",
        ),
        (
            &["--backend", "quant", "--format", "q3_k"][..],
            "not a block format",
        ),
        (
            &["--backend", "quant", "--format", "q8_0", "--dtype", "f64"][..],
            "--dtype must be f32",
        ),
    ] {
        let mut all = vec!["matmul"];
        all.extend_from_slice(args);
        all.extend_from_slice(&shape);
        let out = nanotensor(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(
            err.contains(needle),
            "{all:?}: expected `{needle}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{all:?}: {err}");
    }
    // `--k` must be a whole number of the format's blocks (256 values for Q4_K).
    let out = nanotensor(&[
        "matmul",
        "--backend",
        "quant",
        "--format",
        "q4_k",
        "--m",
        "4",
        "--k",
        "500",
        "--n",
        "8",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("whole blocks of 256"), "{err}");
}
