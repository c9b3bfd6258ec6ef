//! The JavaScript boundary (browser build only).
//!
//! Every call takes a JSON request and returns a JSON report, or throws a string: the library's
//! error message, which the page shows as it is. Two failures are not `Error`s — a panic and an
//! allocation the 4 GiB wasm32 address space cannot satisfy. Both trap the instance; before
//! trapping, the panic hook and the allocator below record what happened, so the worker can read
//! [`last_failure`] and tell the page instead of hanging.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use wasm_bindgen::prelude::*;

use crate::kernels::{self, AttentionRequest, MatmulRequest};

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: milliseconds, in a page and in a worker alike.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn performance_now_ms() -> f64;

    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Size of the last allocation that failed, 0 if none has.
static FAILED_ALLOC: AtomicUsize = AtomicUsize::new(0);
/// Message of the last panic, empty if none.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// The system allocator, remembering the size of a request it could not satisfy.
struct RecordingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it upholds
// exactly the `GlobalAlloc` contract `System` does; the only addition is an atomic store.
unsafe impl GlobalAlloc for RecordingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` (non-zero size) is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            FAILED_ALLOC.store(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            FAILED_ALLOC.store(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` came from `System` through this allocator; `new_size` obeys
        // the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            FAILED_ALLOC.store(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: RecordingAllocator = RecordingAllocator;

/// Installs the panic hook; runs when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        console_error(&msg);
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = msg;
        }
    }));
}

/// After the instance trapped: why, in words, or an empty string if nothing was recorded.
#[wasm_bindgen]
pub fn last_failure() -> String {
    let bytes = FAILED_ALLOC.load(Ordering::Relaxed);
    if bytes > 0 {
        return format!(
            "out of memory: the browser could not give WebAssembly {} more (wasm32 addresses at most 4 GiB)",
            nanotensor::error::human_bytes(bytes as u64)
        );
    }
    LAST_PANIC.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Forgets the failures recorded by earlier calls: the library turns most allocation failures
/// into an `OutOfMemory` error, after which the instance is fine and a later trap must not be
/// blamed on them. Every exported call starts with this.
fn begin() {
    FAILED_ALLOC.store(0, Ordering::Relaxed);
    if let Ok(mut last) = LAST_PANIC.lock() {
        last.clear();
    }
}

fn to_js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, JsValue> {
    serde_json::from_str(json).map_err(|e| to_js(format!("bad request: {e}")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(to_js)
}

/// [`kernels::build_info`] as JSON.
#[wasm_bindgen]
pub fn build_info() -> Result<String, JsValue> {
    reply(&kernels::build_info())
}

/// Runs a [`MatmulRequest`] (JSON) and returns the [`kernels::MatmulReport`] (JSON).
#[wasm_bindgen]
pub fn matmul(request: &str) -> Result<String, JsValue> {
    begin();
    let req: MatmulRequest = parse(request)?;
    reply(&kernels::run_matmul(&req).map_err(to_js)?)
}

/// Runs an [`AttentionRequest`] (JSON) and returns the [`kernels::AttentionReport`] (JSON).
#[wasm_bindgen]
pub fn attention(request: &str) -> Result<String, JsValue> {
    begin();
    let req: AttentionRequest = parse(request)?;
    reply(&kernels::run_attention(&req).map_err(to_js)?)
}

/// A loaded model, owned by the worker (see [`crate::session::ModelSession`]).
#[wasm_bindgen]
#[derive(Debug)]
pub struct WebModel {
    session: crate::session::ModelSession,
}

#[wasm_bindgen]
impl WebModel {
    /// Parses GGUF `bytes` and prepares the weights for `backend` (`blocked` or `int8`).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: Vec<u8>, backend: &str) -> Result<WebModel, JsValue> {
        begin();
        let session = crate::session::ModelSession::load(bytes, backend).map_err(to_js)?;
        Ok(WebModel { session })
    }

    /// The model's [`crate::session::ModelInfo`] as JSON.
    pub fn summary(&self) -> Result<String, JsValue> {
        reply(self.session.info())
    }

    /// Tokenizes `prompt` and runs the prefill; returns a [`crate::session::StartReport`].
    pub fn start(
        &mut self,
        prompt: &str,
        kv_cache: bool,
        max_new_tokens: usize,
    ) -> Result<String, JsValue> {
        begin();
        reply(
            &self
                .session
                .start(prompt, kv_cache, max_new_tokens)
                .map_err(to_js)?,
        )
    }

    /// One decode step; returns a [`crate::session::TokenReport`].
    pub fn next_token(&mut self) -> Result<String, JsValue> {
        begin();
        reply(&self.session.next_token().map_err(to_js)?)
    }
}

/// [`crate::embed::split_lines`] of `text`, as a JSON array: the lines a search ranks.
#[wasm_bindgen]
pub fn split_lines(text: &str) -> Result<String, JsValue> {
    reply(&crate::embed::split_lines(text))
}

/// A loaded sentence encoder, owned by the worker (see [`crate::embed::EmbedSession`]).
#[wasm_bindgen]
#[derive(Debug)]
pub struct WebEmbedder {
    session: crate::embed::EmbedSession,
}

#[wasm_bindgen]
impl WebEmbedder {
    /// Parses `weights` (the bytes of `model.safetensors`) and `texts_json` (a JSON object from
    /// file name — `tokenizer.json`, `config.json`, optionally `sentence_bert_config.json`,
    /// `1_Pooling/config.json`, `modules.json` — to the file's text) and prepares the weights
    /// for `backend`.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: Vec<u8>, texts_json: &str, backend: &str) -> Result<WebEmbedder, JsValue> {
        begin();
        let texts: crate::embed::ModelTexts = parse(texts_json)?;
        let session = crate::embed::EmbedSession::load(weights, &texts, backend).map_err(to_js)?;
        Ok(WebEmbedder { session })
    }

    /// The encoder's [`crate::embed::EmbedderInfo`] as JSON.
    pub fn summary(&self) -> Result<String, JsValue> {
        reply(self.session.info())
    }

    /// Embeds the JSON array of strings `texts_json`; returns a [`crate::embed::EmbedReport`].
    pub fn embed(&self, texts_json: &str) -> Result<String, JsValue> {
        begin();
        let texts: Vec<String> = parse(texts_json)?;
        reply(&self.session.embed(&texts).map_err(to_js)?)
    }

    /// Ranks the JSON array of lines `lines_json` against `query`; returns a
    /// [`crate::embed::SearchReport`] with the best `top_k`.
    pub fn search(
        &mut self,
        query: &str,
        lines_json: &str,
        top_k: usize,
    ) -> Result<String, JsValue> {
        begin();
        let lines: Vec<String> = parse(lines_json)?;
        reply(&self.session.search(query, &lines, top_k).map_err(to_js)?)
    }
}
