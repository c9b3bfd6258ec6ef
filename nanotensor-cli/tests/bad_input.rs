//! The bad-input suite: one table of everything a user can get wrong on the command line or in
//! the files they pass, across subcommands. Each case must exit with status 2, print exactly one
//! line on stderr naming the problem (checked by a word it must contain), print nothing on
//! stdout, not panic, and leave no output file behind.
//!
//! Cases that need the real model (prompt longer than the context, a non-UTF-8 perplexity text)
//! run when it is present and skip otherwise, unless `NANOTENSOR_REQUIRE_MODEL` is set (as
//! `scripts/test`, hence CI, does): then they fail. Related one-subcommand checks live in
//! `cli.rs`, `generate_cli.rs` and `model_cli.rs`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("nanotensor-bad-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary and checks the user-error contract; returns the stderr line.
fn expect_user_error<S: AsRef<OsStr> + std::fmt::Debug>(
    args: &[S],
    needle: &str,
    no_file: Option<&str>,
) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: `{needle}` not in: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed to stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if let Some(f) = no_file {
        assert!(!Path::new(f).exists(), "{args:?} left {f} behind");
    }
    stderr.trim_end().to_string()
}

/// A GGUF header that promises one metadata pair, cut inside the key.
fn truncated_gguf() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // metadata pairs
    b.extend(20u64.to_le_bytes()); // key length 20 …
    b.extend(b"general."); // … but only 8 bytes follow
    b
}

#[test]
fn every_bad_input_exits_2_with_one_line_and_no_output_file() {
    let s = Scratch::new("table");
    let missing = s.path("missing.gguf");
    let dir = s.0.to_str().unwrap().to_string();
    let truncated = s.file("truncated.gguf", &truncated_gguf());
    let magic = s.file(
        "magic.gguf",
        b"GGML\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
    let empty = s.file("empty.gguf", b"");
    let latin1 = s.file("latin1.txt", b"caf\xe9 cr\xe8me\n");
    let svg = s.path("chart.svg");
    let svg_in_missing_dir = s.path("no/such/dir/chart.svg");
    let empty_text = s.file("empty.txt", b"");
    let text = s.file("text.txt", b"Some text to score.\n");
    // GGUF inputs found by the gguf fuzz target: tensor `e` has a shape whose product overflows
    // (a zero dimension last). They once made `info` print a wrapped parameter count.
    let overflow_a = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/fuzz-regressions/crash-0e273eef5be1ae6d0e7b761431407d0c3f14e779"
    );
    let overflow_b = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/fuzz-regressions/crash-d96a2decf165850d46ef5962ff5e1c8815535611"
    );
    // And a truncated file with a zero-byte tensor `a` past its end (the fuzz target's
    // self-consistency check found it accepted).
    let empty_past_eof = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/fuzz-regressions/crash-06b7e07ef7e3fe027f11e4d683b966aba5c530bf"
    );
    let p = |v: &[&'static str]| -> Vec<OsString> { v.iter().map(OsString::from).collect() };
    let with = |mut v: Vec<OsString>, extra: &[&str]| {
        v.extend(extra.iter().map(OsString::from));
        v
    };
    // A command-line argument that is not UTF-8 (0xE9 is Latin-1 `é`).
    let latin1_arg = {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(b"caf\xe9".to_vec())
    };
    let gen_file = p(&["generate", "--prompt-file"]);
    let gen = p(&["generate", "--prompt", "Hello"]);
    let mm = p(&["matmul", "--m", "4", "--k", "4", "--n", "4"]);
    let scaling = p(&["attention-scaling", "--max-n", "128", "--out"]);

    // (name, arguments, a word the message must contain, a file that must not exist afterwards)
    let cases: Vec<(&str, Vec<OsString>, &str, Option<&str>)> = vec![
        (
            "missing model file (info)",
            with(p(&["info", "--model"]), &[&missing]),
            "missing.gguf",
            None,
        ),
        (
            "missing model file (generate)",
            with(gen.clone(), &["--model", &missing]),
            "fetch-model",
            None,
        ),
        (
            "missing text file (tokenize)",
            with(p(&["tokenize", "--file"]), &[&s.path("none.txt")]),
            "none.txt",
            None,
        ),
        (
            "missing raw f32 file (quantize)",
            with(p(&["quantize", "--file"]), &[&s.path("none.f32")]),
            "none.f32",
            None,
        ),
        (
            "directory as model (info)",
            with(p(&["info", "--model"]), &[&dir]),
            "directory",
            None,
        ),
        (
            "directory as model (generate)",
            with(gen.clone(), &["--model", &dir]),
            "directory",
            None,
        ),
        (
            "directory as text (tokenize)",
            with(p(&["tokenize", "--file"]), &[&dir]),
            "directory",
            None,
        ),
        (
            "truncated GGUF (info)",
            with(p(&["info", "--model"]), &[&truncated]),
            "truncated",
            None,
        ),
        (
            "truncated GGUF (generate)",
            with(gen.clone(), &["--model", &truncated]),
            "truncated",
            None,
        ),
        (
            "overflowing tensor shape (info)",
            with(p(&["info", "--model"]), &[overflow_a]),
            "tensor `e`: the element count of shape [81604420608, 824633720834, 0] overflows",
            None,
        ),
        (
            "overflowing tensor shape (info, second input)",
            with(p(&["info", "--model"]), &[overflow_b]),
            "tensor `e`: the element count of shape [864691128455135231, 824633720834, 0] overflows",
            None,
        ),
        (
            "overflowing tensor shape (generate)",
            with(gen.clone(), &["--model", overflow_a]),
            "tensor `e`: the element count",
            None,
        ),
        (
            "overflowing tensor shape (perplexity)",
            with(p(&["perplexity", "--file"]), &[&text, "--model", overflow_b]),
            "tensor `e`: the element count",
            None,
        ),
        (
            "zero-byte tensor past the end of the file (info)",
            with(p(&["info", "--model"]), &[empty_past_eof]),
            "tensor `a`",
            None,
        ),
        (
            "empty file as GGUF",
            with(p(&["info", "--model"]), &[&empty]),
            "truncated",
            None,
        ),
        (
            "wrong magic (info)",
            with(p(&["info", "--model"]), &[&magic]),
            "magic",
            None,
        ),
        (
            "wrong magic (generate)",
            with(gen.clone(), &["--model", &magic]),
            "magic",
            None,
        ),
        (
            "non-UTF-8 text file (tokenize)",
            with(p(&["tokenize", "--file"]), &[&latin1]),
            "UTF-8",
            None,
        ),
        (
            "missing prompt file (generate)",
            with(gen_file.clone(), &[&s.path("none.txt")]),
            "none.txt",
            None,
        ),
        (
            "directory as prompt file (generate)",
            with(gen_file.clone(), &[&dir]),
            "directory",
            None,
        ),
        (
            "non-UTF-8 prompt file (generate)",
            with(gen_file.clone(), &[&latin1]),
            "not valid UTF-8",
            None,
        ),
        (
            "non-UTF-8 prompt argument (generate)",
            vec!["generate".into(), "--prompt".into(), latin1_arg.clone()],
            "UTF-8",
            None,
        ),
        (
            "empty prompt",
            p(&["generate", "--prompt", ""]),
            "prompt is empty",
            None,
        ),
        (
            "empty prompt file",
            with(gen_file.clone(), &[&empty_text]),
            "prompt is empty",
            None,
        ),
        ("no prompt at all", p(&["generate"]), "--prompt", None),
        (
            "--max-tokens 0",
            with(gen.clone(), &["--max-tokens", "0"]),
            "max-tokens",
            None,
        ),
        (
            "negative temperature",
            with(gen.clone(), &["--temperature", "-1"]),
            "temperature",
            None,
        ),
        (
            "NaN temperature",
            with(gen.clone(), &["--temperature", "NaN"]),
            "temperature",
            None,
        ),
        (
            "infinite temperature",
            with(gen.clone(), &["--temperature", "inf"]),
            "temperature",
            None,
        ),
        (
            "--threads 0 (generate)",
            with(gen.clone(), &["--threads", "0"]),
            "threads",
            None,
        ),
        (
            "--threads 0 (matmul)",
            with(mm.clone(), &["--threads", "0"]),
            "threads",
            None,
        ),
        (
            "absurd size (matmul --m 1e9)",
            p(&[
                "matmul",
                "--m",
                "1000000000",
                "--k",
                "100000",
                "--n",
                "100000",
            ]),
            "memory budget",
            None,
        ),
        (
            "absurd size (attention --seq-len 1e9)",
            p(&["attention", "--seq-len", "1000000000", "--head-dim", "64"]),
            "memory",
            None,
        ),
        (
            "zero size (matmul --m 0)",
            p(&["matmul", "--m", "0", "--k", "4", "--n", "4"]),
            "--m",
            None,
        ),
        (
            "size beyond u64 (matmul --m 1e30)",
            p(&[
                "matmul",
                "--m",
                "1000000000000000000000000000000",
                "--k",
                "4",
                "--n",
                "4",
            ]),
            "--m",
            None,
        ),
        (
            "unknown flag",
            with(mm.clone(), &["--frobnicate"]),
            "--frobnicate",
            None,
        ),
        (
            "unknown backend (matmul)",
            with(mm.clone(), &["--backend", "cuda"]),
            "unknown backend",
            None,
        ),
        (
            "unknown backend (generate)",
            with(gen.clone(), &["--backend", "tpu"]),
            "unknown backend",
            None,
        ),
        (
            "attention-scaling --threads 0",
            with(scaling.clone(), &[&svg, "--threads", "0"]),
            "threads",
            Some(&svg),
        ),
        (
            "attention-scaling unknown backend",
            with(scaling.clone(), &[&svg, "--backend", "cuda"]),
            "unknown backend",
            Some(&svg),
        ),
        (
            "attention-scaling into a missing directory",
            with(scaling.clone(), &[&svg_in_missing_dir]),
            "chart.svg",
            Some(&svg_in_missing_dir),
        ),
        (
            "attention-scaling into a directory",
            with(scaling.clone(), &[&dir]),
            "directory",
            None,
        ),
    ];
    let mut report = String::new();
    for (name, args, needle, no_file) in &cases {
        let line = expect_user_error(args, needle, *no_file);
        report.push_str(&format!("  {name}: {line}\n"));
    }
    // The closing note's list of cases and messages (visible with `--nocapture`).
    println!("{} bad-input cases, all exit 2:\n{report}", cases.len());
}

/// A backend that is not compiled in: only checkable on a build that leaves one out, so this runs
/// against whatever this build lacks (nothing, with `--all-features`; `scripts/reliability.sh`
/// runs it on the naive-only, blocked-only and int8-only builds).
#[test]
fn a_backend_not_compiled_in_is_named_with_its_feature() {
    for kind in nanotensor_backends::BackendKind::ALL {
        if kind.is_compiled() {
            continue;
        }
        let line = expect_user_error(
            &[
                "matmul",
                "--backend",
                kind.name(),
                "--m",
                "4",
                "--k",
                "4",
                "--n",
                "4",
            ],
            "not compiled in",
            None,
        );
        assert!(line.contains(kind.feature()), "{line}");
        println!("  backend not compiled in ({}): {line}", kind.name());
    }
}

/// `--dtype bf16` is the blocked backend's weight storage: any other compiled-in backend is
/// refused before the model is opened (no model needed), and a type the model commands do not
/// offer is a flag error.
#[test]
fn bf16_weights_on_another_backend_are_refused() {
    for kind in nanotensor_backends::BackendKind::compiled() {
        if kind == nanotensor_backends::BackendKind::Blocked {
            continue;
        }
        for cmd in [
            &["generate", "--prompt", "Hi"][..],
            &["perplexity", "--file", "x.txt"][..],
            &["bench-model"][..],
        ] {
            let mut args: Vec<&str> = cmd.to_vec();
            args.extend(["--backend", kind.name(), "--dtype", "bf16"]);
            let line = expect_user_error(&args, "--dtype bf16", None);
            assert!(line.contains(kind.name()), "{line}");
        }
    }
    expect_user_error(
        &["generate", "--prompt", "Hi", "--dtype", "f64"],
        "f64",
        None,
    );
}

fn have_model() -> bool {
    nanotensor::model_path::model_for_tests("bad_input").is_some()
}

#[test]
fn bad_inputs_that_need_the_model() {
    if !have_model() {
        return;
    }
    let s = Scratch::new("model");
    let latin1 = s.file("latin1.txt", b"caf\xe9 cr\xe8me, na\xefve\n");
    // SmolLM2's context is 8192 tokens; "a " is one token each.
    let long = "a ".repeat(9000);
    let cases = [
        (
            "prompt longer than the context",
            vec!["generate", "--prompt", long.as_str()],
            "exceed the context",
        ),
        (
            "absurd --max-tokens 1e9",
            vec!["generate", "--prompt", "Hi", "--max-tokens", "1000000000"],
            "exceed the context",
        ),
        (
            "non-UTF-8 text file (perplexity)",
            vec!["perplexity", "--file", latin1.as_str()],
            "UTF-8",
        ),
        (
            "non-UTF-8 text file (tokenize)",
            vec!["tokenize", "--file", latin1.as_str()],
            "UTF-8",
        ),
    ];
    let mut report = String::new();
    for (name, args, needle) in &cases {
        let line = expect_user_error(args, needle, None);
        report.push_str(&format!("  {name}: {line}\n"));
    }
    println!(
        "{} bad-input cases with the model, all exit 2:\n{report}",
        cases.len()
    );
}
