//! `nanotensor attention-scaling` and the flash algorithm through the CLI.

use std::process::{Command, Output};

fn nanotensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanotensor"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON object, got: {stdout}");
    serde_json::from_str(lines[0]).expect("valid JSON")
}

#[test]
fn sweep_refuses_naive_with_bytes_runs_flash_and_writes_the_chart() {
    let dir = std::env::temp_dir().join(format!("nanotensor-scaling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("chart.svg");
    // Budget 200 kB: the materialised path fits at N = 128 (2·128·(128 + 16)·4 B = 147 kB) and is
    // refused at N = 512 (2.2 MB); flash needs 24.6 kB at every N.
    let v = json(&nanotensor(&[
        "attention-scaling",
        "--backend",
        "blocked",
        "--heads",
        "2",
        "--head-dim",
        "16",
        "--threads",
        "1",
        "--max-n",
        "512",
        "--max-memory",
        "200000",
        "--out",
        chart.to_str().unwrap(),
        "--json",
    ]));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    let find = |n: u64, algo: &str| {
        rows.iter()
            .find(|r| r["n"] == n && r["algo"] == algo)
            .unwrap_or_else(|| panic!("row {n} {algo} in {v}"))
    };
    assert_eq!(find(128, "naive")["status"], "ran");
    let refused = find(512, "naive");
    assert_eq!(refused["status"], "refused");
    assert_eq!(refused["needed_bytes"], 2 * 512 * (512 + 16) * 4);
    for n in [128, 512] {
        let f = find(n, "flash");
        assert_eq!(f["status"], "ran");
        assert_eq!(f["scratch_bytes"], 4 * 32 * (4 * (16 + 16) + 64));
        assert!(f["gflops"].as_f64().unwrap() > 0.0);
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("flash") && svg.contains("naive"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn auto_picks_flash_for_large_scores_and_says_so() {
    // 1 × 2560 × 2560 f32 scores = 26 MB > the 16 MiB threshold.
    let v = json(&nanotensor(&[
        "attention",
        "--backend",
        "blocked",
        "--algo",
        "auto",
        "--seq-len",
        "2560",
        "--head-dim",
        "16",
        "--heads",
        "1",
        "--repeat",
        "1",
        "--check",
        "--json",
    ]));
    assert_eq!(v["algo"], "flash");
    assert_eq!(v["requested_algo"], "auto");
    assert!(v["nmse"].as_f64().unwrap() <= 1e-10, "{v}");
}

#[test]
fn naive_backend_has_no_flash() {
    let dir = std::env::temp_dir().join(format!("nanotensor-naive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("chart.svg");
    let out = nanotensor(&[
        "attention-scaling",
        "--backend",
        "naive",
        "--max-n",
        "128",
        "--out",
        chart.to_str().unwrap(),
        "--json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    // The sweep records the refusal instead of failing.
    let v = json(&out);
    assert_eq!(v["rows"][1]["status"], "unsupported");
    let out = nanotensor(&[
        "attention",
        "--backend",
        "naive",
        "--algo",
        "flash",
        "--seq-len",
        "8",
        "--head-dim",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// A chart destination that is not a regular file (a FIFO here; `/dev/null` or `/dev/stdout` for
/// users) is written in place, never replaced by a rename: the node must survive the run.
#[cfg(unix)]
#[test]
fn chart_to_a_fifo_writes_through_it_and_keeps_the_node() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let dir = std::env::temp_dir().join(format!("nanotensor-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("chart.svg");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !matches!(made, Ok(s) if s.success()) {
        eprintln!("mkfifo is not available; skipping");
        return;
    }
    // The reader drains the FIFO so the CLI's write does not block; it reports through a channel
    // so a CLI that never opens the FIFO fails the test instead of hanging it.
    let path = fifo.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map(|_| text);
        let _ = tx.send(read);
    });
    let v = json(&nanotensor(&[
        "attention-scaling",
        "--backend",
        "blocked",
        "--heads",
        "1",
        "--head-dim",
        "8",
        "--max-n",
        "128",
        "--out",
        fifo.to_str().unwrap(),
        "--json",
    ]));
    let svg = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the CLI wrote nothing through the FIFO")
        .expect("the FIFO is readable");
    assert!(svg.contains("<svg"), "the chart went through the FIFO");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(kind.is_fifo(), "the FIFO node was replaced by a file");
    assert_eq!(v["rows"][0]["n"], 128, "{v}");
}
