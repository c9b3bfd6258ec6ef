//! Times the tokenizer of a model (SmolLM2 by default; with
//! `NANOTENSOR_MODEL=models/gemma-3-270m-q4_k_m.gguf`, Gemma 3's SentencePiece vocabulary) on a
//! text file (default: the GPL-3 text that `ppl.json` uses): loading from the GGUF, `encode`,
//! and `decode`, as medians over repeated runs.
//!
//! ```text
//! NANOTENSOR_MODELS_DIR=/path/to/models cargo run --release -p nanotensor --example tokenize_timing [FILE] [RUNS]
//! ```

use std::time::{Duration, Instant};

use nanotensor_models::gguf::GgufFile;
use nanotensor_models::model_path::find_model;
use nanotensor_models::tokenizer::Tokenizer;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed());
        last = Some(out);
    }
    (median(times), last.expect("at least one run"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/usr/share/common-licenses/GPL-3".into());
    let runs: usize = args.next().map_or(Ok(21), |s| s.parse())?.max(1);
    let text = std::fs::read_to_string(&path)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);

    let model = find_model(None)?;
    let file = GgufFile::open(&model)?;
    let (t_load, tok) = time(5, || Tokenizer::from_gguf(&file));
    let tok = tok?;
    let (t_encode, ids) = time(runs, || tok.encode(text));
    let (t_decode, decoded) = time(runs, || tok.decode(&ids));
    assert_eq!(decoded?, text, "round trip");

    let mb = text.len() as f64 / 1e6;
    println!(
        "file      {path}: {} bytes, {} tokens",
        text.len(),
        ids.len()
    );
    println!(
        "from_gguf {:>9.2} ms (median of 5)",
        t_load.as_secs_f64() * 1e3
    );
    println!(
        "encode    {:>9.2} ms (median of {runs}), {:.1} MB/s",
        t_encode.as_secs_f64() * 1e3,
        mb / t_encode.as_secs_f64()
    );
    println!(
        "decode    {:>9.3} ms (median of {runs})",
        t_decode.as_secs_f64() * 1e3
    );
    Ok(())
}
