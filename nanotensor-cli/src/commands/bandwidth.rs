//! `nanotensor bandwidth`: the machine's memory read bandwidth at a thread count, measured by
//! the STREAM-like probe of `nanotensor_backends::bandwidth` (the limit a decode step runs
//! against; `bench-model` runs the same probe next to its decode figures).

use nanotensor::memory::{check_budget, default_budget};
use nanotensor::{Error, Result};
use nanotensor_backends::bandwidth::{read_bandwidth, ReadBandwidth, DEFAULT_PASSES};
use serde_json::json;

use crate::output::{parse_bytes, print_json};

/// The library's default buffer ([`nanotensor_backends::bandwidth::DEFAULT_BYTES`]) as a
/// flag's default text.
pub const DEFAULT_PROBE_BYTES_TEXT: &str = "1GiB";

/// Arguments of `nanotensor bandwidth`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Threads reading the buffer (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Buffer size (e.g. 1GiB, 2G); it must be much larger than the last-level cache.
    #[arg(long, value_parser = parse_bytes, default_value = DEFAULT_PROBE_BYTES_TEXT)]
    pub bytes: u64,
    /// Timed passes over the buffer; the fastest is reported.
    #[arg(long, default_value_t = DEFAULT_PASSES)]
    pub passes: usize,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `nanotensor bandwidth`.
pub fn run(args: Args) -> Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let r = probe(args.bytes, threads, args.passes)?;
    if args.json {
        print_json(&probe_json(&r));
    } else {
        println!("{}", probe_line(&r));
    }
    Ok(())
}

/// Fails with [`Error::MemoryBudget`] when a probe buffer of `bytes` exceeds the memory budget
/// (half the physical memory), so a command can refuse it before any other work.
pub fn check_probe_budget(bytes: u64) -> Result<()> {
    check_budget(
        "bandwidth",
        bytes,
        default_budget(),
        " for the read-bandwidth probe's buffer",
    )
}

/// Checks the buffer against the memory budget ([`check_probe_budget`]), then probes.
///
/// # Errors
/// [`Error::MemoryBudget`] for a buffer over the budget, and the probe's errors.
pub fn probe(bytes: u64, threads: usize, passes: usize) -> Result<ReadBandwidth> {
    check_probe_budget(bytes)?;
    let bytes = usize::try_from(bytes).map_err(|_| Error::OutOfMemory {
        op: "bandwidth",
        bytes,
    })?;
    read_bandwidth(bytes, threads, passes)
}

/// One probe as a JSON object.
pub fn probe_json(r: &ReadBandwidth) -> serde_json::Value {
    json!({
        "threads": r.threads,
        "bytes": r.bytes,
        "passes": r.passes,
        "best_seconds": r.best_seconds,
        "read_bandwidth_gb_per_s": r.gb_per_s,
    })
}

/// One probe as a line of text.
pub fn probe_line(r: &ReadBandwidth) -> String {
    format!(
        "read bandwidth, {} thread{}: {:.2} GB/s (sum over a {} buffer, best of {} passes)",
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.gb_per_s,
        nanotensor::error::human_bytes(r.bytes as u64),
        r.passes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotensor_backends::bandwidth::DEFAULT_BYTES;

    #[test]
    fn the_flag_default_is_the_library_default() {
        // `--bytes` / `--probe-bytes` spell the default as text for their help.
        assert_eq!(
            parse_bytes(DEFAULT_PROBE_BYTES_TEXT),
            Ok(DEFAULT_BYTES as u64)
        );
    }
}
