//! Choosing a backend at run time: the one backend registry.
//!
//! The [`Backend`] trait has generic methods, so it cannot be a trait object. Instead a caller
//! writes a [`BackendVisitor`] — "what to do with some backend `B`" — and [`with_backend`]
//! matches the run-time choice once and calls it with the concrete type. Everything inside the
//! visitor is monomorphic.
//!
//! The `registry!` table in the crate root (`lib.rs`, beside the backend modules) is the only
//! list of backends: the
//! [`BackendKind`] enum, its names and cargo features, [`BackendKind::ALL`], the compiled-in
//! check, the dispatch of [`with_backend`] and each backend's settings for reports are all
//! generated from it, so a backend cannot be known by name and missing from dispatch. The CLI's
//! help and errors, the browser build and the scripts' per-backend loops derive from it in turn
//! (`nanotensor backends`, [`BackendKind::compiled`]).

use nanotensor_core::{Backend, Error, Result};

use crate::dispatch;
use crate::scales::Int8Options;
pub use crate::BackendKind;

/// How a registered backend is built from [`BackendOptions`], and which of those options it
/// reads (for reports). Every backend in the registry implements it.
pub trait BuildBackend: Backend + Sized {
    /// The backend configured by `opts` (each backend reads the options that concern it).
    ///
    /// # Errors
    /// Zero threads or threads the OS refuses to start.
    fn build(opts: &BackendOptions) -> Result<Self>;
}

/// Generates the registry from one table (invoked once, in `lib.rs`): `Variant => "name", "feature", module::Type, settings`
/// where `settings` maps the options to the backend's own settings for reports (name, value).
#[macro_export]
#[doc(hidden)]
macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $feature:literal, $ty:path,
        |$o:ident| $settings:expr; )*) => {
        /// The backends NanoTensor knows, whether or not they are compiled into this build.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum BackendKind {
            $( $(#[$doc])* $variant, )*
        }

        /// How many backends the registry holds.
        const COUNT: usize = [$( $name, )*].len();

        impl BackendKind {
            /// Every backend, in the order tables and charts show them.
            pub const ALL: [BackendKind; COUNT] = [$( BackendKind::$variant, )*];

            /// Name used by `--backend`.
            pub fn name(self) -> &'static str {
                match self { $( BackendKind::$variant => $name, )* }
            }

            /// The cargo feature of `nanotensor-backends` that compiles it in.
            pub fn feature(self) -> &'static str {
                match self { $( BackendKind::$variant => $feature, )* }
            }

            /// Whether this build contains the backend.
            pub fn is_compiled(self) -> bool {
                match self { $( BackendKind::$variant => cfg!(feature = $feature), )* }
            }

            /// The backend's own settings among `opts`, as (name, value) pairs for reports;
            /// empty for a backend without settings of its own.
            pub fn settings(self, opts: &$crate::BackendOptions) -> Vec<(&'static str, String)> {
                match self { $( BackendKind::$variant => { let $o = opts; $settings } )* }
            }
        }

        // `opts` is unused in a build with no backend feature.
        #[allow(unused_variables)]
        fn dispatch<V: $crate::BackendVisitor>(
            kind: BackendKind,
            opts: &$crate::BackendOptions,
            visitor: V,
        ) -> nanotensor_core::Result<V::Output> {
            match kind {
                $(
                    #[cfg(feature = $feature)]
                    BackendKind::$variant => visitor.visit(<$ty as $crate::BuildBackend>::build(opts)?),
                )*
                #[allow(unreachable_patterns)]
                other => Err({
                    drop(visitor);
                    other.not_compiled()
                }),
            }
        }
    };
}

impl BackendKind {
    /// The backends compiled into this build.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled()).collect()
    }

    /// Comma-separated names of every backend.
    pub fn all_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }

    /// Comma-separated names of the compiled-in backends.
    pub fn compiled_names() -> String {
        let names: Vec<&str> = Self::compiled().into_iter().map(Self::name).collect();
        names.join(", ")
    }

    /// The fastest float backend compiled in (blocked, else int8, else naive), as
    /// [`crate::DefaultBackend`] is at compile time.
    pub fn best_compiled() -> BackendKind {
        [BackendKind::Blocked, BackendKind::Int8, BackendKind::Naive]
            .into_iter()
            .find(|k| k.is_compiled())
            .unwrap_or(BackendKind::Naive)
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
                        "unknown backend `{name}` (known: {}; compiled in: {})",
                        Self::all_names(),
                        Self::compiled_names()
                    ),
                )
            })?;
        if !kind.is_compiled() {
            return Err(kind.not_compiled());
        }
        Ok(kind)
    }

    pub(crate) fn not_compiled(self) -> Error {
        Error::BackendNotCompiled {
            name: self.name().to_string(),
            feature: format!("nanotensor-backends/{}", self.feature()),
            available: Self::compiled_names(),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of the backend constructors: what all share, and each backend's own options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendOptions {
    /// Worker threads (ignored by single-threaded backends).
    pub threads: usize,
    /// The int8 backend's options (scale granularities).
    pub int8: Int8Options,
    /// How the blocked backend stores the f32 weights it prepares.
    pub blocked_weights: WeightStorage,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            int8: Int8Options::default(),
            blocked_weights: WeightStorage::F32,
        }
    }
}

/// How the blocked backend stores an `f32` weight it prepares (`prepare`, `prepare_rows`);
/// activations, outputs and weights of other element types are not affected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightStorage {
    /// As given: f32, exact.
    #[default]
    F32,
    /// Rounded to bf16 (to nearest, ties to even), half the bytes to stream per product.
    ///
    /// On a CPU with AVX512-BF16 the weight is kept as bf16, packed for the `vdpbf16ps`
    /// kernel. Products of up to 8 rows (decode) widen the weights to f32 in registers and keep
    /// the activations in f32; larger ones (prefill) round the activations to bf16 too and
    /// run on `vdpbf16ps`, accumulating in f32. Elsewhere the rounded weight is stored as f32:
    /// the same values, at f32's cost.
    Bf16,
}

impl WeightStorage {
    /// `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            WeightStorage::F32 => "f32",
            WeightStorage::Bf16 => "bf16",
        }
    }

    /// The blocked backend's settings for reports: `weights bf16`, or none for the default
    /// (so reports of f32 runs are as they were; the model commands print `dtype` as well).
    pub fn settings(self) -> Vec<(&'static str, String)> {
        match self {
            WeightStorage::F32 => Vec::new(),
            WeightStorage::Bf16 => vec![("weights", self.name().to_string())],
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
    dispatch(kind, &opts, visitor)
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

    /// Every backend feature of this crate's Cargo.toml is a registry entry and every entry a
    /// feature: a backend added with a feature but no entry (or the reverse) fails here.
    #[test]
    fn registry_matches_the_cargo_features() {
        let manifest = include_str!("../Cargo.toml");
        let features = manifest
            .split("[features]")
            .nth(1)
            .expect("a [features] table")
            .split("\n[")
            .next()
            .unwrap();
        let mut names: Vec<&str> = features
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .filter(|k| !k.is_empty() && *k != "default")
            .collect();
        names.sort_unstable();
        let mut registered: Vec<&str> = BackendKind::ALL.iter().map(|k| k.feature()).collect();
        registered.sort_unstable();
        assert_eq!(names, registered);
    }

    /// A compiled backend is reachable through dispatch, and one left out is refused naming
    /// the dependency's feature.
    #[test]
    fn dispatch_covers_every_compiled_backend() {
        for kind in BackendKind::ALL {
            match with_backend(kind, BackendOptions::default(), Name) {
                Ok(name) => {
                    assert!(kind.is_compiled());
                    assert_eq!(name, kind.name());
                }
                Err(Error::BackendNotCompiled { feature, .. }) => {
                    assert!(!kind.is_compiled());
                    assert_eq!(feature, format!("nanotensor-backends/{}", kind.feature()));
                }
                Err(e) => panic!("{kind}: {e}"),
            }
        }
        assert!(BackendKind::best_compiled().is_compiled());
    }
}
