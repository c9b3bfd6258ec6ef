//! Shared command-line plumbing: backend flags, timing, and printing.

use std::time::Instant;

use nanotensor::{Clip, Error, Result};
use nanotensor_backends::{
    ActGranularity, BackendKind, BackendOptions, Granularity, Int8Options, WeightStorage,
};

/// Help text for `--backend`, naming the backends of the registry and those compiled in.
pub fn backend_help() -> String {
    format!(
        "Backend to run: {} (compiled in: {})",
        BackendKind::all_names(),
        BackendKind::compiled_names()
    )
}

/// A backend's own settings as a JSON object (`null` when it has none).
fn settings_json(kind: BackendKind, opts: &BackendOptions) -> serde_json::Value {
    let settings = kind.settings(opts);
    if settings.is_empty() {
        return serde_json::Value::Null;
    }
    settings
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Backends that have settings of their own (int8's scale granularities), from the registry.
fn backends_with_settings() -> impl Iterator<Item = BackendKind> {
    let defaults = BackendOptions::default();
    BackendKind::ALL
        .into_iter()
        .filter(move |k| !k.settings(&defaults).is_empty())
}

/// Adds to a one-backend report a field per backend that has settings of its own, named after
/// it: the settings for the backend that ran (`"int8": {"weights": …, "activations": …}`),
/// `null` for the others.
pub fn with_settings(
    mut report: serde_json::Value,
    kind: BackendKind,
    opts: &BackendOptions,
) -> serde_json::Value {
    for k in backends_with_settings() {
        let v = if k == kind {
            settings_json(k, opts)
        } else {
            serde_json::Value::Null
        };
        report[k.name()] = v;
    }
    report
}

/// Adds to a several-backend report a field per backend that has settings of its own, with the
/// settings `opts` gives it.
pub fn with_all_settings(
    mut report: serde_json::Value,
    opts: &BackendOptions,
) -> serde_json::Value {
    for k in backends_with_settings() {
        report[k.name()] = settings_json(k, opts);
    }
    report
}

/// A backend's own settings for human-readable output, e.g. `weights per-row, activations
/// per-block-32`; `None` when it has none.
pub fn settings_label(kind: BackendKind, opts: &BackendOptions) -> Option<String> {
    let settings = kind.settings(opts);
    (!settings.is_empty()).then(|| {
        settings
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The weight rewrites a model was loaded with (`"rotate on, equalize off"`): the backend's
/// request, unless the model's architecture declines it.
pub fn transforms_label(t: nanotensor::LoadTransforms) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!("rotate {}, equalize {}", on(t.rotate), on(t.equalize))
}

/// The same as JSON: `{"rotate": bool, "equalize": bool}`.
pub fn transforms_json(t: nanotensor::LoadTransforms) -> serde_json::Value {
    serde_json::json!({"rotate": t.rotate, "equalize": t.equalize})
}

/// A named int8 scheme (`--int8-scheme`): the starting point the other `--int8-*` flags modify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Int8Scheme {
    /// Per-row weight scales, per-block-16 activation scales, residual stream rotated and
    /// channels equalised at load (≤ 1 % perplexity cost).
    #[default]
    Default,
    /// The original design: one scale per weight tensor and one per call for the activations,
    /// no rewrites of the weights.
    Seed,
    /// The default with one scale per weight tensor.
    PerTensor,
}

impl Int8Scheme {
    /// The options of this scheme.
    pub fn options(self) -> Int8Options {
        match self {
            Int8Scheme::Default => Int8Options::default(),
            Int8Scheme::Seed => Int8Options::seed(),
            Int8Scheme::PerTensor => Int8Options::per_tensor(),
        }
    }
}

/// The int8 backend's scheme flags (other backends ignore them): `--int8-scheme` picks a
/// preset, the others override one setting of it.
#[derive(Debug, Clone, clap::Args)]
pub struct Int8Args {
    /// int8 backend: the scheme the other `--int8-*` flags start from: `default` (per-row
    /// weights, per-block-16 activations, rotated and equalised weights), `seed` (one scale per
    /// weight tensor and per call, weights as stored) or `per-tensor` (the default with one
    /// scale per weight tensor).
    #[arg(long, value_enum, default_value = "default")]
    pub int8_scheme: Int8Scheme,
    /// int8 backend: weight scales, `per-tensor` (one per weight matrix) or `per-row` (one per
    /// output channel) [scheme default: per-row].
    #[arg(long, value_parser = Granularity::parse)]
    pub int8_weights: Option<Granularity>,
    /// int8 backend: activation scales, computed per call: `per-tensor` (one for the call's
    /// whole input, e.g. every token of a prefill batch), `per-row` (one per token), or
    /// `per-block[-N]` (one per N consecutive values of a token's row; `per-block` alone is
    /// N = 32, as llama.cpp's Q8_0) [scheme default: per-block-16].
    #[arg(long, value_parser = ActGranularity::parse)]
    pub int8_activations: Option<ActGranularity>,
    /// int8 backend: how a weight scale's range is chosen, `absmax` (the largest magnitude) or
    /// `mse` (the clip that minimises the squared error on the weights themselves) [scheme
    /// default: absmax].
    #[arg(long, value_parser = Clip::parse)]
    pub int8_clip: Option<Clip>,
    /// int8 backend: equalise per-channel weight ranges at load (`on`/`off`), folding the
    /// factors into the RMSNorm gains and the producing matrices (exact in real arithmetic)
    /// [scheme default: on].
    #[arg(long, value_parser = parse_on_off)]
    pub int8_equalize: Option<bool>,
    /// int8 backend: rotate the residual stream at load (`on`/`off`) by an orthogonal matrix,
    /// spreading outlier channels over all channels (exact in real arithmetic; models whose
    /// architecture does not allow it ignore it) [scheme default: on].
    #[arg(long, value_parser = parse_on_off)]
    pub int8_rotate: Option<bool>,
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`).
fn parse_on_off(s: &str) -> Result<bool> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => Err(Error::invalid_arg(
            "int8 equalize",
            format!("expected on or off, got `{other}`"),
        )),
    }
}

impl Int8Args {
    /// The int8 backend's options these flags select.
    pub fn options(&self) -> Int8Options {
        let mut o = self.int8_scheme.options();
        if let Some(w) = self.int8_weights {
            o.weights = w;
        }
        if let Some(a) = self.int8_activations {
            o.activations = a;
        }
        if let Some(c) = self.int8_clip {
            o.clip = c;
        }
        if let Some(e) = self.int8_equalize {
            o.equalize = e;
        }
        if let Some(r) = self.int8_rotate {
            o.rotate = r;
        }
        o
    }
}

/// [`backend_choice`] with the backends' own options applied (int8's scale granularities).
pub fn backend_choice_with(
    name: &str,
    threads: Option<usize>,
    int8: &Int8Args,
) -> Result<(BackendKind, BackendOptions)> {
    Ok((BackendKind::parse(name)?, backend_options(threads, int8)?))
}

/// Resolves `--backend` and `--threads` into a backend choice.
pub fn backend_choice(name: &str, threads: Option<usize>) -> Result<(BackendKind, BackendOptions)> {
    Ok((BackendKind::parse(name)?, thread_options(threads)?))
}

/// The options of every backend from `--threads` and the backends' own flags.
pub fn backend_options(threads: Option<usize>, int8: &Int8Args) -> Result<BackendOptions> {
    Ok(BackendOptions {
        int8: int8.options(),
        ..thread_options(threads)?
    })
}

/// Default options with `--threads` applied (at least 1).
fn thread_options(threads: Option<usize>) -> Result<BackendOptions> {
    let mut opts = BackendOptions::default();
    if let Some(t) = threads {
        if t == 0 {
            return Err(Error::invalid_arg(
                "threads",
                "--threads must be at least 1",
            ));
        }
        opts.threads = t;
    }
    Ok(opts)
}

/// `--dtype` of the model commands (`generate`, `perplexity`, `bench-model`): the element type
/// the model's matrices are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WeightDType {
    /// As loaded: 32-bit floats (each backend's own format for int8 and quant).
    #[default]
    F32,
    /// bfloat16 weights on the blocked backend: half the bytes per decode step; activations
    /// stay f32 at decode, prefill rounds them to bf16 for `vdpbf16ps` where the CPU has it.
    Bf16,
}

/// The `--dtype` flag of the model commands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WeightArgs {
    /// Element type the weights are stored in: f32, or bf16 (blocked backend only).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: WeightDType,
}

impl WeightArgs {
    /// `"f32"` or `"bf16"`.
    pub fn name(&self) -> &'static str {
        self.storage().name()
    }

    /// The blocked backend's weight storage for this flag.
    pub fn storage(&self) -> WeightStorage {
        match self.dtype {
            WeightDType::F32 => WeightStorage::F32,
            WeightDType::Bf16 => WeightStorage::Bf16,
        }
    }

    /// Sets the weight storage in `opts` for a run of the backends `kinds`: bf16 weights are
    /// a blocked-backend setting, so `--dtype bf16` with another backend is a user error.
    pub fn apply(&self, kinds: &[BackendKind], opts: &mut BackendOptions) -> Result<()> {
        let other = kinds.iter().find(|&&k| k != BackendKind::Blocked);
        if let (WeightDType::Bf16, Some(k)) = (self.dtype, other) {
            return Err(Error::invalid_arg(
                "dtype",
                format!(
                    "--dtype {} stores the weights as bf16 on the blocked backend; `{k}` keeps its own format (use --backend blocked)",
                    self.name()
                ),
            ));
        }
        opts.blocked_weights = self.storage();
        Ok(())
    }
}

/// Element type selected with `--dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// bfloat16 (products accumulate in f32).
    Bf16,
    /// IEEE half precision (products accumulate in f32).
    F16,
}

impl DTypeArg {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DTypeArg::F32 => "f32",
            DTypeArg::F64 => "f64",
            DTypeArg::Bf16 => "bf16",
            DTypeArg::F16 => "f16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DTypeArg::F32 => 4,
            DTypeArg::F64 => 8,
            DTypeArg::Bf16 | DTypeArg::F16 => 2,
        }
    }
}

/// Warm-up before timing: calls of `f` until this much time has passed (at least one call).
///
/// The first call pays for page faults of fresh buffers; the first milliseconds of a new
/// process also run a multi-threaded backend at about one thread's speed. Measured here at 256³
/// on 2 threads, calls ran at ~250 GFLOP/s for the first 4–13 ms and ~470 after (the worker's
/// first wake-up lands it on the caller's core until the scheduler moves it), which at the
/// 300 calls of a 256³ measurement (21 ms) halved some runs. 100 ms covers it.
pub const WARMUP: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `f` for [`WARMUP`], then `repeat` times; returns the median wall time in seconds and
/// the last result.
pub fn time_median<R>(repeat: usize, mut f: impl FnMut() -> Result<R>) -> Result<(f64, R)> {
    if repeat == 0 {
        return Err(Error::invalid_arg("repeat", "--repeat must be at least 1"));
    }
    let start = Instant::now();
    let mut last = f()?;
    while start.elapsed() < WARMUP {
        last = f()?;
    }
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t0 = Instant::now();
        last = f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok((median(&mut times), last))
}

/// Median of a non-empty slice (mean of the middle two for even lengths).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Parses a byte count with an optional decimal or binary suffix: `123`, `8G`, `512MiB`, `64k`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown byte unit `{other}` (use k, M, G, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes as u64)
}

/// Prints a table with a header row; columns padded to their widest cell.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
            println!("{}", "-".repeat(total));
        }
    }
}

/// Prints one JSON object on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("8G").unwrap(), 8_000_000_000);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1500);
        assert!(parse_bytes("abc").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
