//! Choosing a backend at run time.
//!
//! The [`Backend`] trait has generic methods, so it cannot be a trait object. Instead a caller
//! writes a [`BackendVisitor`] — "what to do with some backend `B`" — and [`with_backend`]
//! matches the run-time choice once and calls it with the concrete type. Everything inside the
//! visitor is monomorphic.

use nanotensor::{Backend, Error, Result};

use crate::scales::{ActGranularity, Granularity};

/// The backends NanoTensor knows, whether or not they are compiled into this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Textbook loops (cargo feature `naive`).
    Naive,
    /// Cache-blocked, packed, SIMD, multi-threaded (cargo feature `blocked`).
    Blocked,
    /// Symmetric int8 quantization with integer kernels (cargo feature `int8`).
    Int8,
}

impl BackendKind {
    /// Every backend, in the order tables and charts show them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Naive, BackendKind::Blocked, BackendKind::Int8];

    /// Name used by `--backend`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Naive => "naive",
            BackendKind::Blocked => "blocked",
            BackendKind::Int8 => "int8",
        }
    }

    /// The cargo feature that compiles it in (same as the name).
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Naive => cfg!(feature = "naive"),
            BackendKind::Blocked => cfg!(feature = "blocked"),
            BackendKind::Int8 => cfg!(feature = "int8"),
        }
    }

    /// The backends compiled into this build.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled()).collect()
    }

    /// Comma-separated names of the compiled-in backends.
    pub fn compiled_names() -> String {
        let names: Vec<&str> = Self::compiled().into_iter().map(Self::name).collect();
        names.join(", ")
    }

    /// Parses a backend name. Unknown names and backends not compiled in are errors; the latter
    /// names the cargo feature to enable.
    pub fn parse(name: &str) -> Result<Self> {
        let kind = Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::invalid_arg(
                    "backend",
                    format!(
                        "unknown backend `{name}` (known: naive, blocked, int8; compiled in: {})",
                        Self::compiled_names()
                    ),
                )
            })?;
        if !kind.is_compiled() {
            return Err(Error::BackendNotCompiled {
                name: name.to_string(),
                feature: kind.feature().to_string(),
                available: Self::compiled_names(),
            });
        }
        Ok(kind)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of the backend constructors (each backend reads the ones that concern it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendOptions {
    /// Worker threads (ignored by single-threaded backends).
    pub threads: usize,
    /// int8 only: scale granularity of the weights (default per tensor).
    pub int8_weights: Granularity,
    /// int8 only: scale granularity of the activations (default per tensor).
    pub int8_activations: ActGranularity,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            int8_weights: Granularity::PerTensor,
            int8_activations: ActGranularity::PerTensor,
        }
    }
}

/// Work to run with whichever backend was chosen at run time.
pub trait BackendVisitor {
    /// What the work produces.
    type Output;
    /// Runs the work with a concrete backend.
    fn visit<B: Backend>(self, backend: B) -> Result<Self::Output>;
}

/// Builds the backend `kind` with `opts` and runs `visitor` with it.
///
/// # Errors
/// [`Error::BackendNotCompiled`] if `kind` is not in this build; zero threads; whatever the
/// visitor returns.
pub fn with_backend<V: BackendVisitor>(
    kind: BackendKind,
    opts: BackendOptions,
    visitor: V,
) -> Result<V::Output> {
    if opts.threads == 0 {
        return Err(Error::invalid_arg(
            "threads",
            "the thread count must be at least 1",
        ));
    }
    match kind {
        #[cfg(feature = "naive")]
        BackendKind::Naive => visitor.visit(crate::naive::NaiveBackend::new()),
        #[cfg(feature = "blocked")]
        BackendKind::Blocked => visitor.visit(crate::blocked::BlockedBackend::new(opts.threads)?),
        #[cfg(feature = "int8")]
        BackendKind::Int8 => visitor.visit(
            crate::int8::Int8Backend::new(opts.threads)?
                .with_weight_granularity(opts.int8_weights)
                .with_activation_granularity(opts.int8_activations),
        ),
        #[allow(unreachable_patterns)]
        other => Err({
            drop(visitor);
            Error::BackendNotCompiled {
                name: other.name().to_string(),
                feature: other.feature().to_string(),
                available: BackendKind::compiled_names(),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;
    impl BackendVisitor for Name {
        type Output = &'static str;
        fn visit<B: Backend>(self, backend: B) -> Result<&'static str> {
            Ok(backend.name())
        }
    }

    #[test]
    fn parse_and_dispatch_agree() {
        for kind in BackendKind::compiled() {
            assert_eq!(BackendKind::parse(kind.name()).unwrap(), kind);
            let name = with_backend(kind, BackendOptions::default(), Name).unwrap();
            assert_eq!(name, kind.name());
        }
        assert!(matches!(
            BackendKind::parse("cuda"),
            Err(Error::InvalidArgument { .. })
        ));
        let zero = BackendOptions {
            threads: 0,
            ..BackendOptions::default()
        };
        assert!(with_backend(BackendKind::Naive, zero, Name).is_err());
    }
}
