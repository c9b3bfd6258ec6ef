//! `nanotensor matmul`: time `C = A·B` on seeded random matrices.

use nanotensor::memory::{check_budget, default_budget};
use nanotensor::reference::{compare, matmul_f64};
use nanotensor::{Backend, BlockWeight, Element, Error, QuantFormat, Result, Tensor};
use nanotensor_backends::{with_backend, BackendVisitor};
use serde_json::json;

use crate::output::{
    backend_choice_with, backend_help, parse_bytes, print_json, print_table, settings_label,
    time_median, with_settings, DTypeArg, Int8Args,
};

/// Arguments of `nanotensor matmul`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "naive", help = backend_help())]
    pub backend: String,
    /// Rows of A and C.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub m: u64,
    /// Columns of A, rows of B.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub k: u64,
    /// Columns of B and C.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub n: u64,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DTypeArg,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repetitions after a warm-up (repeated calls for 0.1 s, at least one); the
    /// median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Compare with a float64 reference and report the NMSE.
    #[arg(long)]
    pub check: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub int8: Int8Args,
    /// Seed of the random inputs (A uses seed, B seed + 1).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Treat B as a weight prepared once (`prepare`, then `linear` per repetition), as a model
    /// layer does; the timing then excludes packing/quantizing B.
    #[arg(long)]
    pub prepared: bool,
    /// Memory the inputs and output may take (e.g. 8G); default half the physical memory.
    #[arg(long, value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// B as a weight in a GGUF block format (q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k):
    /// seeded random valid blocks (random codes, finite scales) prepared as stored
    /// (`prepare_blocks`, then `linear` per repetition), A random f32. Needs a backend that
    /// multiplies stored blocks (quant) and `--dtype f32`; `--k` a whole number of blocks (32,
    /// or 256 for the k-quants). `--check` compares with the float64 product of the
    /// dequantized B and the unquantized A.
    #[arg(long)]
    pub format: Option<String>,
}

/// Runs `nanotensor matmul`.
pub fn run(args: Args) -> Result<()> {
    let (kind, opts) = backend_choice_with(&args.backend, args.threads, &args.int8)?;
    let (m, k, n) = (args.m as usize, args.k as usize, args.n as usize);
    let format = args.format.as_deref().map(parse_format).transpose()?;
    if format.is_some() && args.dtype != DTypeArg::F32 {
        return Err(Error::invalid_arg(
            "matmul",
            format!(
                "--format multiplies an f32 A by a block weight: --dtype must be f32, not {}",
                args.dtype.name()
            ),
        ));
    }
    let elem = args.dtype.size();
    // A, B, C (and a prepared copy of B), plus the f64 reference when checking.
    let elems = |a: u64, b: u64| a.saturating_mul(b);
    let mut needed = elems(args.m, args.k)
        .saturating_add(elems(args.k, args.n).saturating_mul(2))
        .saturating_add(elems(args.m, args.n))
        .saturating_mul(elem);
    if args.check {
        needed = needed.saturating_add(elems(args.m, args.n).saturating_mul(8));
    }
    check_budget(
        "matmul",
        needed,
        args.max_memory.unwrap_or_else(default_budget),
        &format!(" for {m}×{k} · {k}×{n} {} operands", args.dtype.name()),
    )?;
    macro_rules! run_as {
        ($t:ty) => {
            with_backend(
                kind,
                opts,
                Run::<$t> {
                    args: &args,
                    m,
                    k,
                    n,
                    _t: Default::default(),
                },
            )?
        };
    }
    let report = match (format, args.dtype) {
        // The dtype was checked to be f32 above.
        (Some(format), _) => with_backend(
            kind,
            opts,
            BlockRun {
                args: &args,
                m,
                k,
                n,
                format,
            },
        )?,
        (None, DTypeArg::F32) => run_as!(f32),
        (None, DTypeArg::F64) => run_as!(f64),
        (None, DTypeArg::Bf16) => run_as!(nanotensor::bf16),
        (None, DTypeArg::F16) => run_as!(nanotensor::f16),
    };
    let gflops = 2.0 * m as f64 * n as f64 * k as f64 / report.seconds / 1e9;
    if args.json {
        let mut v = json!({
            "op": "matmul",
            "backend": report.backend,
            "m": m, "k": k, "n": n,
            "dtype": args.dtype.name(),
            "format": format.map(QuantFormat::name),
            "kernel": report.kernel,
            "threads": report.threads,
            "repeat": args.repeat,
            "prepared": args.prepared || format.is_some(),
            "seconds": report.seconds,
            "gflops": gflops,
        });
        v = with_settings(v, kind, &opts);
        if let Some(nmse) = report.nmse {
            v["nmse"] = json!(nmse);
            v["max_abs_err"] = json!(report.max_abs);
        }
        print_json(&v);
    } else {
        let mut rows = vec![
            vec!["field".into(), "value".into()],
            vec!["op".into(), "matmul".into()],
            vec![
                "backend".into(),
                match settings_label(kind, &opts) {
                    Some(l) => format!("{} ({l})", report.backend),
                    None => report.backend.into(),
                },
            ],
            vec!["shape".into(), format!("{m}×{k} · {k}×{n}")],
            vec!["dtype".into(), args.dtype.name().into()],
            vec![
                "B format".into(),
                format.map_or("-", QuantFormat::name).into(),
            ],
            vec!["kernel".into(), report.kernel.unwrap_or("-").into()],
            vec!["threads".into(), report.threads.to_string()],
            vec![
                "prepared B".into(),
                (args.prepared || format.is_some()).to_string(),
            ],
            vec![
                "median time".into(),
                format!("{:.6} s ({} runs)", report.seconds, args.repeat),
            ],
            vec!["throughput".into(), format!("{gflops:.2} GFLOP/s")],
        ];
        if let Some(nmse) = report.nmse {
            rows.push(vec!["nmse vs f64".into(), format!("{nmse:.3e}")]);
            rows.push(vec![
                "max |error|".into(),
                format!("{:.3e}", report.max_abs),
            ]);
        }
        print_table(&rows);
    }
    Ok(())
}

struct Report {
    backend: &'static str,
    /// The microkernel the product ran on, when the backend names one.
    kernel: Option<&'static str>,
    threads: usize,
    seconds: f64,
    nmse: Option<f64>,
    max_abs: f64,
}

struct Run<'a, T> {
    args: &'a Args,
    m: usize,
    k: usize,
    n: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Element> BackendVisitor for Run<'_, T> {
    type Output = Report;

    fn visit<B: Backend>(self, backend: B) -> Result<Report> {
        let (m, k, n) = (self.m, self.k, self.n);
        let a = Tensor::<T>::randn(&[m, k], 1.0, self.args.seed)?;
        let b = Tensor::<T>::randn(&[k, n], 1.0, self.args.seed + 1)?;
        // One output reused by every repetition, as a BLAS benchmark times SGEMM into a
        // preallocated C: a fresh 4 MiB+ result per call would add allocation, zeroing and
        // page faults that are not the product's.
        let mut c = Tensor::<T>::zeros(&[m, n])?;
        let seconds = if self.args.prepared {
            let w = backend.prepare(b.t()?)?;
            let (x, out) = (a.as_slice(), c.as_mut_slice());
            time_median(self.args.repeat, || backend.linear_into(x, m, &w, out))?.0
        } else {
            time_median(self.args.repeat, || backend.matmul_into(&a, &b, &mut c))?.0
        };
        let (nmse, max_abs) = if self.args.check {
            let r = compare(c.as_slice(), &matmul_f64(&a, &b)?)?;
            (Some(r.nmse), r.max_abs)
        } else {
            (None, 0.0)
        };
        Ok(Report {
            backend: backend.name(),
            kernel: backend.matmul_kernel(T::DTYPE),
            threads: backend.threads(),
            seconds,
            nmse,
            max_abs,
        })
    }
}

/// The block format named by `--format`, case-insensitively.
fn parse_format(name: &str) -> Result<QuantFormat> {
    QuantFormat::from_name(name).ok_or_else(|| {
        let names: Vec<String> = QuantFormat::ALL
            .iter()
            .map(|f| f.name().to_lowercase())
            .collect();
        Error::invalid_arg(
            "matmul",
            format!(
                "--format `{name}` is not a block format (one of {})",
                names.join(", ")
            ),
        )
    })
}

/// Seeded random valid blocks of `fmt` for a `[rows, cols]` weight: random codes, finite
/// scales of a trained model's size (`nanotensor_backends::quant::random`).
#[cfg(feature = "quant")]
fn random_blocks(fmt: QuantFormat, rows: usize, cols: usize, seed: u64) -> Result<Vec<u8>> {
    nanotensor_backends::quant::random::random_blocks(fmt, rows, cols, seed)
}

/// Without the quant backend no backend multiplies stored blocks.
#[cfg(not(feature = "quant"))]
fn random_blocks(fmt: QuantFormat, _rows: usize, _cols: usize, _seed: u64) -> Result<Vec<u8>> {
    Err(Error::invalid_arg(
        "matmul",
        format!("--format {fmt} needs the quant backend, not compiled into this build"),
    ))
}

/// `C = A·Bᵀ` with `B: [n, k]` in a block format (`--format`): B prepared as stored blocks,
/// timed as `linear_into`, as a model layer runs.
struct BlockRun<'a> {
    args: &'a Args,
    m: usize,
    k: usize,
    n: usize,
    format: QuantFormat,
}

impl BackendVisitor for BlockRun<'_> {
    type Output = Report;

    fn visit<B: Backend>(self, backend: B) -> Result<Report> {
        let (m, k, n, fmt) = (self.m, self.k, self.n, self.format);
        let a = Tensor::<f32>::randn(&[m, k], 1.0, self.args.seed)?;
        let bytes = random_blocks(fmt, n, k, self.args.seed + 1)?;
        let Some(w) = backend.prepare_blocks(BlockWeight::new("B", fmt, n, k, &bytes)?)? else {
            return Err(Error::invalid_arg(
                "matmul",
                format!(
                    "--format needs a backend that multiplies stored blocks (--backend quant); \
                     {} does not",
                    backend.name()
                ),
            ));
        };
        let mut c = Tensor::<f32>::zeros(&[m, n])?;
        let (x, out) = (a.as_slice(), c.as_mut_slice());
        let seconds = time_median(self.args.repeat, || backend.linear_into(x, m, &w, out))?.0;
        let (nmse, max_abs) = if self.args.check {
            // The reference multiplies B's exact values (the bit-exact dequantizer) by the
            // unquantized A: the error is the backend's own (its 8-bit activation blocks).
            let ty = nanotensor::gguf::types::ALL_TYPES
                .into_iter()
                .find(|t| t.quant_format() == Some(fmt))
                .ok_or_else(|| Error::invalid_arg("matmul", format!("no GGUF type for {fmt}")))?;
            let mut deq = Tensor::<f32>::zeros(&[n, k])?;
            nanotensor::gguf::dequant::dequantize("B", ty, &bytes, deq.as_mut_slice())?;
            let r = compare(c.as_slice(), &matmul_f64(&a, &deq.t()?)?)?;
            (Some(r.nmse), r.max_abs)
        } else {
            (None, 0.0)
        };
        Ok(Report {
            backend: backend.name(),
            // `matmul_kernel` names the float product's kernel, not the block product's.
            kernel: None,
            threads: backend.threads(),
            seconds,
            nmse,
            max_abs,
        })
    }
}
