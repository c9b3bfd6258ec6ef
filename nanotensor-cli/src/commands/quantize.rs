//! `nanotensor quantize`: quantize a tensor to int8 under each scheme and report what it costs
//! (error) and saves (bytes).
//!
//! The tensor is seeded random (`--rows --cols --seed --dist`, optionally with an outlier row
//! scaled by `--outlier`), read from a file of raw little-endian f32 (`--file`, with `--cols`
//! giving the row length), or a weight of a model (`--model M --tensor blk.0.ffn_down.weight`).
//! The schemes: one scale per tensor or per row, each with the range set by the largest
//! magnitude (`absmax`) or by the MSE-optimal clip (`mse`); for a model's block matrix or output
//! head also the per-tensor scale after channel equalisation (the factors the loader folds into
//! the RMSNorm gains and the producing matrices), its error measured after mapping back to the
//! original weight. For each the report shows the f32 bytes, the `QTensor` bytes (`n + 4` per
//! scale), the fraction saved, the largest absolute error, the NMSE `Σ(x−x̂)²/Σx²` and the SQNR
//! `10·log10(Σx²/Σ(x−x̂)²)` in dB.

// The tensor's size comes from a file or the command line: overflow must be an error, never a
// wrap or a panic.
#![deny(clippy::arithmetic_side_effects)]

use nanotensor::memory::{check_budget, default_budget};
use nanotensor::{Clip, Error, Granularity, QTensor, QuantReport, Result, Tensor};
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
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present_any = ["file", "model"])]
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
    /// Read a weight of this model (GGUF) instead: the tensor named by --tensor.
    #[arg(long, requires = "tensor", conflicts_with_all = ["rows", "seed", "dist", "file", "cols", "outlier"])]
    pub model: Option<std::path::PathBuf>,
    /// The model's tensor to quantize, e.g. `blk.0.ffn_down.weight` (with --model).
    #[arg(long, requires = "model")]
    pub tensor: Option<String>,
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
    let mut equalized = None;
    let (x, source) = match (&args.file, &args.model) {
        (_, Some(model)) => {
            let name = args
                .tensor
                .as_deref()
                .expect("clap requires --tensor with --model");
            let (x, eq) = model_tensor(model, name, budget)?;
            equalized = eq;
            (x, "model")
        }
        (Some(path), None) => {
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
        (None, None) => {
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
    // Each variant: the matrix to quantize, how to map its reconstruction back to the matrix
    // the model applies, and the schemes (granularity, clip) to try on it.
    let variants = match equalized {
        Some(v) => v,
        None => vec![Variant::plain(x.clone(), None)],
    };
    let reference = variants[0].effective(&x)?;
    let mut reports: Vec<(String, &'static str, Clip, QuantReport)> = Vec::new();
    for v in &variants {
        for &(g, clip) in v.schemes {
            let q = QTensor::quantize_clipped(&v.matrix, g, clip)?;
            let mut restored = q.dequantize::<f32>()?;
            (v.back)(&mut restored);
            let scheme = format!("{} {}{}", g.name(), clip.name(), v.label_suffix());
            reports.push((
                scheme,
                v.transform,
                clip,
                QuantReport::compare(&reference, &restored, &q)?,
            ));
        }
    }
    if args.json {
        let items: Vec<serde_json::Value> = reports
            .iter()
            .map(|(scheme, transform, clip, r)| {
                json!({
                    "scheme": scheme,
                    "clip": clip.name(),
                    "transform": transform,
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
            "tensor": args.tensor,
            "reports": items,
        }));
    } else {
        let what = args.tensor.as_deref().unwrap_or(source);
        println!("int8 symmetric quantization of a {rows}×{cols} f32 tensor ({what})");
        let mut table = vec![[
            "scheme",
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
        for (scheme, _, _, r) in &reports {
            table.push(vec![
                scheme.clone(),
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

/// A transformed matrix, its equalisation factors and the norm gain that fed the original.
type Transformed = (Tensor<f32>, nanotensor::model::equalize::Factors, Vec<f32>);

/// Boxed map from a reconstruction back to the matrix the model applies.
type Back = Box<dyn Fn(&mut Tensor<f32>)>;

/// One way to present a weight to the quantizer.
struct Variant {
    /// `plain`, `equalised`, `rotated` or `rotated+equalised`.
    transform: &'static str,
    /// The matrix quantized.
    matrix: Tensor<f32>,
    /// Maps a reconstruction of `matrix` to the matrix the model applies to normalised
    /// activations (for a matrix fed by an RMSNorm: the weight times the norm's gain).
    back: Back,
    /// (granularity, clip) pairs reported.
    schemes: &'static [(Granularity, Clip)],
}

const ALL_SCHEMES: &[(Granularity, Clip)] = &[
    (Granularity::PerTensor, Clip::AbsMax),
    (Granularity::PerTensor, Clip::Mse),
    (Granularity::PerRow, Clip::AbsMax),
    (Granularity::PerRow, Clip::Mse),
];
const TENSOR_SCHEMES: &[(Granularity, Clip)] = &[
    (Granularity::PerTensor, Clip::AbsMax),
    (Granularity::PerTensor, Clip::Mse),
];
const ROTATED_SCHEMES: &[(Granularity, Clip)] = &[
    (Granularity::PerTensor, Clip::AbsMax),
    (Granularity::PerRow, Clip::AbsMax),
];

impl Variant {
    /// The weight as stored; `gain`: the RMSNorm gain that feeds it, if any.
    fn plain(w: Tensor<f32>, gain: Option<Vec<f32>>) -> Self {
        Variant {
            transform: "plain",
            matrix: w,
            back: Box::new(move |m| {
                if let Some(g) = &gain {
                    nanotensor::model::rotate::fold_gain(m, g);
                }
            }),
            schemes: ALL_SCHEMES,
        }
    }

    fn label_suffix(&self) -> String {
        if self.transform == "plain" {
            String::new()
        } else {
            format!(" {}", self.transform)
        }
    }

    /// The matrix the model applies, from the original weight.
    fn effective(&self, w: &Tensor<f32>) -> Result<Tensor<f32>> {
        let mut e = w.clone();
        (self.back)(&mut e);
        Ok(e)
    }
}

/// The model's tensor `name` in f32 and, for a matrix the loader can rewrite (a block's
/// projections, the output head), the variants the int8 schemes quantize: plain, equalised,
/// rotated, rotated and equalised — each transformed exactly as the loader does.
fn model_tensor(
    path: &std::path::Path,
    name: &str,
    budget: u64,
) -> Result<(Tensor<f32>, Option<Vec<Variant>>)> {
    use nanotensor::gguf::GgufFile;
    use nanotensor::model::equalize::Factors;
    use nanotensor::model::rotate::Rotation;
    use nanotensor::model::{load_block, TransformerConfig};
    use std::rc::Rc;
    const OP: &str = "quantize";
    let file = GgufFile::open(nanotensor::model_path::find_model(Some(path))?)?;
    let info = file.tensor(name)?;
    if info.shape.len() != 2 {
        return Err(Error::invalid_arg(
            OP,
            format!("tensor `{name}` has shape {:?}: not a matrix", info.shape),
        ));
    }
    // The tensor and, per variant, a transformed copy, its codes and a reconstruction.
    let n = info
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    check_budget(
        OP,
        n.unwrap_or(u64::MAX).saturating_mul(4 + 4 * (4 + 1 + 4)),
        budget,
        &format!(" for `{name}`"),
    )?;
    let x = file.dequantize(name)?;
    let config = TransformerConfig::from_gguf(&file)?;
    let rotation = Rc::new(Rotation::new(config.dim)?);
    let parts: Vec<&str> = name.split('.').collect();
    // (layer or None for the head, kind, fed by a norm, reads (true) or writes the stream).
    let (layer, kind) = match parts.as_slice() {
        ["blk", layer, kind, "weight"] => (
            Some(
                layer
                    .parse::<usize>()
                    .map_err(|_| Error::invalid_arg(OP, format!("bad layer in `{name}`")))?,
            ),
            *kind,
        ),
        ["output" | "token_embd", "weight"] => (None, "output"),
        _ => return Ok((x, None)),
    };
    let reads_stream = !matches!(kind, "attn_output" | "ffn_down");
    let norm_fed = !matches!(kind, "attn_output" | "ffn_down");
    // A matrix writing into the stream through a post-norm is not rotated (see
    // `BlockWeights::rotate`).
    let rotated = reads_stream || !config.post_norms;
    // The transformed matrix for (rotate, equalize), with its equalisation factors.
    let transformed = |rotate: bool, equalize: bool| -> Result<Option<Transformed>> {
        match layer {
            Some(l) => {
                let mut b = load_block(&file, &config, l)?;
                let gain = match kind {
                    "ffn_gate" | "ffn_up" => b.ffn_norm.clone(),
                    _ => b.attn_norm.clone(),
                };
                if rotate {
                    b.rotate(&rotation);
                }
                let factors = if equalize {
                    b.equalize(config.n_heads, config.n_kv_heads, config.head_dim)
                } else {
                    Vec::new()
                };
                let f = factors
                    .into_iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, f)| f)
                    .unwrap_or_default();
                let m = match kind {
                    "attn_q" => b.wq,
                    "attn_k" => b.wk,
                    "attn_v" => b.wv,
                    "attn_output" => b.wo,
                    "ffn_gate" => b.w_gate,
                    "ffn_up" => b.w_up,
                    "ffn_down" => b.w_down,
                    _ => return Ok(None),
                };
                Ok(Some((m, f, gain)))
            }
            None => {
                let gain = file.dequantize("output_norm.weight")?.to_vec();
                let mut head = x.clone();
                let mut g = gain.clone();
                if rotate {
                    nanotensor::model::rotate::fold_gain(&mut head, &g);
                    g.fill(1.0);
                    rotation.rotate_inputs(&mut head);
                }
                let cols = if equalize && !rotate {
                    Some(nanotensor::model::equalize::norm_into_matrices(
                        &mut g,
                        &mut [&mut head],
                    ))
                } else {
                    None
                };
                Ok(Some((head, Factors { rows: None, cols }, gain)))
            }
        }
    };
    let Some((_, _, gain)) = transformed(false, false)? else {
        return Ok((x, None));
    };
    let gain = norm_fed.then_some(gain);
    let mut variants = vec![Variant::plain(x.clone(), gain.clone())];
    for (label, rotate, equalize, schemes) in [
        ("equalised", false, true, TENSOR_SCHEMES),
        ("rotated", true, false, ROTATED_SCHEMES),
        ("rotated+equalised", true, true, TENSOR_SCHEMES),
    ] {
        let Some((m, factors, _)) = transformed(rotate, equalize)? else {
            continue;
        };
        let (rot, gain) = (Rc::clone(&rotation), gain.clone());
        let back: Back = Box::new(move |w: &mut Tensor<f32>| {
            factors.restore(w);
            if rotate && rotated {
                // The rotation folded the gain in: undoing it gives the effective matrix.
                if reads_stream {
                    rot.unrotate_inputs(w);
                } else {
                    rot.unrotate_outputs(w);
                }
            } else if let Some(g) = &gain {
                nanotensor::model::rotate::fold_gain(w, g);
            }
        });
        variants.push(Variant {
            transform: label,
            matrix: m,
            back,
            schemes,
        });
    }
    Ok((x, Some(variants)))
}
