//! `nanotensor quantize`: quantize a tensor to int8 per tensor and per row and report what it
//! costs (error) and saves (bytes).
//!
//! The tensor is seeded random (`--rows --cols --seed --dist`, optionally with an outlier row
//! scaled by `--outlier`) or read from a file of raw little-endian f32 (`--file`, with `--cols`
//! giving the row length). For each granularity the report shows the f32 bytes, the `QTensor`
//! bytes (`n + 4` per scale), the fraction saved, the largest absolute error, the NMSE
//! `Σ(x−x̂)²/Σx²` and the SQNR `10·log10(Σx²/Σ(x−x̂)²)` in dB.

// The tensor's size comes from a file or the command line: overflow must be an error, never a
// wrap or a panic.
#![deny(clippy::arithmetic_side_effects)]

use nanotensor::memory::{check_budget, default_budget};
use nanotensor::{Error, Granularity, QTensor, QuantReport, Result, Tensor};
use serde_json::json;

use crate::output::{parse_bytes, print_json, print_table};

/// Distribution of the random tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dist {
    /// Standard normal.
    Normal,
    /// Uniform in [-1, 1).
    Uniform,
}

/// Arguments of `nanotensor quantize`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Rows of the random tensor (ignored with --file).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "file")]
    pub rows: Option<u64>,
    /// Columns (the row length; also the row length of --file, default: the whole file is one row).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cols: Option<u64>,
    /// Seed of the random tensor.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Distribution of the random tensor.
    #[arg(long, value_enum, default_value = "normal")]
    pub dist: Dist,
    /// Multiply the first row by this factor (an outlier channel, to see what per-tensor costs).
    #[arg(long)]
    pub outlier: Option<f64>,
    /// Read the tensor from a file of raw little-endian f32 instead.
    #[arg(long, conflicts_with_all = ["rows", "seed", "dist"])]
    pub file: Option<std::path::PathBuf>,
    /// Memory the tensor and its copies may take (e.g. 8G); default half the physical memory.
    #[arg(long, value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A size given on the command line as `usize`, or an error naming the flag (on a 32-bit target
/// a u64 may not fit).
fn size_arg(flag: &str, v: u64) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| Error::invalid_arg("quantize", format!("{flag} {v} does not fit in usize")))
}

/// Runs `nanotensor quantize`.
pub fn run(args: Args) -> Result<()> {
    const OP: &str = "quantize";
    let budget = args.max_memory.unwrap_or_else(default_budget);
    // The f32 tensor, its codes and one dequantized f32 copy at a time, per granularity.
    let per_elem = 4 + 1 + 4;
    let (x, source) = match &args.file {
        Some(path) => {
            let len = std::fs::metadata(path)
                .map_err(|source| Error::Io {
                    op: OP,
                    path: path.display().to_string(),
                    source,
                })?
                .len();
            check_budget(
                OP,
                (len / 4).saturating_mul(per_elem),
                budget,
                " for the file's tensor",
            )?;
            let bytes = std::fs::read(path).map_err(|source| Error::Io {
                op: OP,
                path: path.display().to_string(),
                source,
            })?;
            if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
                return Err(Error::format(
                    OP,
                    format!(
                        "{}: {} bytes is not a non-empty whole number of f32 values",
                        path.display(),
                        bytes.len()
                    ),
                ));
            }
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let cols = args
                .cols
                .map_or(Ok(values.len()), |c| size_arg("--cols", c))?;
            // `cols` is at least 1 (clap's range; a file's length is checked non-empty above).
            let rows = values
                .len()
                .checked_div(cols)
                .filter(|_| values.len().is_multiple_of(cols))
                .ok_or_else(|| {
                    Error::invalid_arg(
                        OP,
                        format!("{} values do not split into rows of {cols}", values.len()),
                    )
                })?;
            (Tensor::from_vec(values, &[rows, cols])?, "file")
        }
        None => {
            let rows = size_arg(
                "--rows",
                args.rows.expect("clap requires --rows without --file"),
            )?;
            let cols = size_arg(
                "--cols",
                args.cols
                    .ok_or_else(|| Error::invalid_arg(OP, "--cols is required with --rows"))?,
            )?;
            let n = (rows as u64).saturating_mul(cols as u64);
            check_budget(
                OP,
                n.saturating_mul(per_elem),
                budget,
                &format!(" for a {rows}×{cols} tensor"),
            )?;
            let t = match args.dist {
                Dist::Normal => Tensor::<f32>::randn(&[rows, cols], 1.0, args.seed)?,
                Dist::Uniform => Tensor::<f32>::rand_uniform(&[rows, cols], -1.0, 1.0, args.seed)?,
            };
            (
                t,
                match args.dist {
                    Dist::Normal => "normal",
                    Dist::Uniform => "uniform",
                },
            )
        }
    };
    let mut x = x;
    if let Some(f) = args.outlier {
        if !f.is_finite() {
            return Err(Error::invalid_arg(OP, "--outlier must be finite"));
        }
        let cols = x.shape()[1];
        for v in &mut x.as_mut_slice()[..cols] {
            *v = (*v as f64 * f) as f32;
        }
    }
    let (rows, cols) = (x.shape()[0], x.shape()[1]);
    let mut reports = Vec::new();
    for g in [Granularity::PerTensor, Granularity::PerRow] {
        let q = QTensor::quantize(&x, g)?;
        reports.push(QuantReport::measure(&x, &q)?);
    }
    if args.json {
        let items: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "granularity": r.granularity.name(),
                    "scales": r.scales,
                    "f32_bytes": r.f32_bytes,
                    "qtensor_bytes": r.qtensor_bytes,
                    "saved_fraction": r.saved_fraction,
                    "max_abs_error": r.max_abs_error,
                    "nmse": r.nmse,
                    // JSON has no infinity: an exact reconstruction reports null.
                    "sqnr_db": r.sqnr_db,
                })
            })
            .collect();
        print_json(&json!({
            "op": "quantize",
            "rows": rows,
            "cols": cols,
            "numel": x.numel(),
            "source": source,
            "seed": if args.file.is_none() { json!(args.seed) } else { json!(null) },
            "outlier": args.outlier,
            "reports": items,
        }));
    } else {
        println!("int8 symmetric quantization of a {rows}×{cols} f32 tensor ({source})");
        let mut table = vec![[
            "granularity",
            "scales",
            "f32 bytes",
            "int8 bytes",
            "saved",
            "max |err|",
            "nmse",
            "sqnr",
        ]
        .map(String::from)
        .to_vec()];
        for r in &reports {
            table.push(vec![
                r.granularity.name().into(),
                r.scales.to_string(),
                r.f32_bytes.to_string(),
                r.qtensor_bytes.to_string(),
                format!("{:.2}%", 100.0 * r.saved_fraction),
                format!("{:.3e}", r.max_abs_error),
                format!("{:.3e}", r.nmse),
                format!("{:.1} dB", r.sqnr_db),
            ]);
        }
        print_table(&table);
    }
    Ok(())
}
