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
    /// Continue a prompt with the model (SmolLM2), streaming tokens as they are produced.
    Generate(commands::generate::Args),
    /// Perplexity of the model on a text file (llama.cpp's method).
    Perplexity(commands::perplexity::Args),
    /// Prefill and decode speed of the model per backend, KV cache on and off.
    BenchModel(commands::bench_model::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Matmul(args) => commands::matmul::run(args),
        Command::Attention(args) => commands::attention::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Perplexity(args) => commands::perplexity::run(args),
        Command::BenchModel(args) => commands::bench_model::run(args),
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
