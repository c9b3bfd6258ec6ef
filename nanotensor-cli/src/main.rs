//! `nanotensor`: the command-line face of NanoTensor.
//!
//! Exit status: 0 on success, 2 on a user error (bad flag, bad shape, memory budget exceeded,
//! missing or malformed file — one line on stderr), 1 on an internal error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;

/// NanoTensor: a transformer inference engine built from its own kernels.
#[derive(Debug, Parser)]
#[command(name = "nanotensor", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time C = A·B on seeded random matrices with one backend.
    Matmul(commands::matmul::Args),
    /// Time scaled dot-product attention on seeded random Q, K, V.
    Attention(commands::attention::Args),
    /// Continue a prompt with the model (SmolLM2, Gemma 3), streaming tokens as they are produced.
    Generate(commands::generate::Args),
    /// Perplexity of the model on a text file (llama.cpp's method).
    Perplexity(commands::perplexity::Args),
    /// Prefill and decode speed of the model per backend, KV cache on and off.
    BenchModel(commands::bench_model::Args),
    /// Memory read bandwidth at a thread count (a STREAM-like sum over a large buffer): the
    /// limit of a decode step, which streams every weight once.
    Bandwidth(commands::bandwidth::Args),
    /// Describe a GGUF model: architecture, hyperparameters, tensors, tokenizer.
    Info(commands::info::Args),
    /// Turn text into token ids with the model's tokenizer.
    Tokenize(commands::tokenize::Args),
    /// Quantize a random or given tensor to int8 (per tensor and per row) and report the memory
    /// saved and the error.
    Quantize(commands::quantize::Args),
    /// Sentence embeddings with a BERT sentence encoder (all-MiniLM-L6-v2, safetensors).
    Embed(commands::embed::Args),
    /// Rank the lines of a file by semantic similarity to a query (sentence embeddings).
    Search(commands::search::Args),
    /// Sweep attention over N = 128 … 100,000 with the naive and flash paths: table + SVG chart.
    AttentionScaling(commands::attention_scaling::Args),
}

fn main() -> ExitCode {
    // A closed stdout (`nanotensor info | head`) ends the program quietly, as it does for other
    // command-line tools; any other panic is a bug: one line, exit status 1.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        eprintln!("internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_parse_error(e),
    };
    match std::panic::catch_unwind(move || run(cli)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(1),
    }
}

/// `--help` and `--version` print as clap renders them; a bad command line (unknown flag, bad
/// value, missing argument) is a user error like any other: one line on stderr, exit status 2.
/// clap's own rendering spreads over several lines (the message, the arguments it concerns,
/// usage, a hint), so the lines before the usage are joined into one.
fn exit_on_parse_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("{} (see --help)", parts.join(" "));
    std::process::exit(2);
}

fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Matmul(args) => commands::matmul::run(args),
        Command::Attention(args) => commands::attention::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Perplexity(args) => commands::perplexity::run(args),
        Command::BenchModel(args) => commands::bench_model::run(args),
        Command::Bandwidth(args) => commands::bandwidth::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::AttentionScaling(args) => commands::attention_scaling::run(args),
        Command::Embed(args) => commands::embed::run(args),
        Command::Search(args) => commands::search::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_user_error() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
