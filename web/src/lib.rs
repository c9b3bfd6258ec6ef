//! NanoTensor in the browser.
//!
//! This crate is built for the browser and natively:
//! - for `wasm32-unknown-unknown` with simd128, and once more with relaxed SIMD (by
//!   `web/build.sh`; the page loads the second where the engine validates it): a `cdylib` whose
//!   [wasm-bindgen](https://docs.rs/wasm-bindgen) exports the demo page's Web Worker calls
//!   (`bindings`, browser build only);
//! - natively, as part of the workspace: the same [`kernels`] functions, which the
//!   `expect` example runs to produce the numbers the browser test must find in the page.
//!
//! Every exported call takes and returns JSON text: the worker forwards it to the page with
//! `postMessage`, so a structured value would be serialised again anyway, and one string keeps
//! the boundary small and easy to read in both languages.

pub mod clock;
pub mod embed;
pub mod kernels;
pub mod session;

#[cfg(target_arch = "wasm32")]
mod bindings;

/// Whether this build can load a model and generate (the model panel).
pub const MODEL_AVAILABLE: bool = true;
