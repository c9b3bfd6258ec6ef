//! The mutable side of a forward pass: the KV caches, the RoPE tables and the scratch
//! activations of [`Transformer::forward`](crate::model::Transformer::forward).
//!
//! A model with sliding-window layers (Gemma 3) keeps their K and V in a [`SlidingKvCache`] of
//! about two windows of rows when the state's capacity is larger than that, so a long context
//! costs full-length caches only for the global layers (3 of Gemma 3 270M's 18); a forward pass
//! then runs in batches of at most one window. A smaller state keeps every layer in the
//! [`KvCache`] (the sliding cache would be no smaller); the attention window applies either way.

use crate::model::config::TransformerConfig;
use crate::model::kv_cache::{KvCache, SlidingKvCache};
use crate::model::ops::RopeTable;
use nanotensor_core::error::{Error, Result};

const OP: &str = "state";

/// Everything a forward pass writes: the KV cache, the RoPE table, and scratch activations.
///
/// Scratch buffers grow to the largest batch seen and are reused, so decode steps (one row)
/// allocate nothing.
#[derive(Clone, Debug)]
pub struct State {
    /// Keys and values of every position processed so far, for every layer not in `sliding`.
    pub cache: KvCache,
    /// Keys and values of the last positions of the sliding-window layers, when they are kept
    /// apart (see the module docs).
    pub sliding: Option<SlidingKvCache>,
    /// Where each layer's K and V live: `[n_layers]`.
    pub(crate) slots: Vec<KvSlot>,
    /// `cos`/`sin` for positions `0..capacity`, with the global layers' base.
    pub(crate) rope: RopeTable,
    /// The same with the sliding-window layers' base, for a model that has them.
    pub(crate) rope_local: Option<RopeTable>,
    /// Residual stream: `[rows, dim]`.
    pub(crate) x: Vec<f32>,
    /// Normalised residual (input of the projections): `[rows, dim]`.
    pub(crate) xb: Vec<f32>,
    /// Queries: `[rows, n_heads · head_dim]`.
    pub(crate) q: Vec<f32>,
    /// New keys: `[rows, n_kv_heads · head_dim]`.
    pub(crate) k: Vec<f32>,
    /// New values: `[rows, n_kv_heads · head_dim]`.
    pub(crate) v: Vec<f32>,
    /// Attention output, heads concatenated: `[rows, n_heads · head_dim]`.
    pub(crate) att: Vec<f32>,
    /// Output of `W_o` and of `W_down`: `[rows, dim]`.
    pub(crate) proj: Vec<f32>,
    /// Gate projection, then the gated hidden state: `[rows, ffn_dim]`.
    pub(crate) gate: Vec<f32>,
    /// Up projection: `[rows, ffn_dim]`.
    pub(crate) up: Vec<f32>,
    /// Logits of the selected rows: `[rows, vocab_size]`.
    pub(crate) logits: Vec<f32>,
    /// Scratch of the residual-stream rotation: `[2 · dim]` (f64).
    pub(crate) rot_scratch: Vec<f64>,
}

/// Where a layer's K and V live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KvSlot {
    /// Layer `i` of [`State::cache`].
    Full(usize),
    /// Layer `i` of [`State::sliding`].
    Sliding(usize),
}

impl State {
    pub(crate) fn new(c: &TransformerConfig, capacity: usize) -> Result<Self> {
        if capacity > c.context_length {
            return Err(Error::ContextOverflow {
                op: OP,
                needed: capacity,
                capacity: c.context_length,
                detail: " (the model's context length)".into(),
            });
        }
        // One table per RoPE base the layers use ([`TransformerConfig::layer_rope`]).
        let table =
            |(base, scale)| RopeTable::with_style(capacity, c.head_dim, base, scale, c.rope_style);
        let local = (0..c.n_layers).find(|&l| c.layer_window(l).is_some());
        // The sliding cache holds (W − 1) + W rows with batches of at most W: worth it only
        // when that is less than the capacity.
        let window = local
            .and_then(|l| c.layer_window(l))
            .filter(|&w| w.checked_mul(2).is_some_and(|two_w| two_w - 1 < capacity));
        let (mut n_full, mut n_sliding) = (0, 0);
        let slots: Vec<KvSlot> = (0..c.n_layers)
            .map(|l| match (window, c.layer_window(l)) {
                (Some(_), Some(_)) => {
                    n_sliding += 1;
                    KvSlot::Sliding(n_sliding - 1)
                }
                _ => {
                    n_full += 1;
                    KvSlot::Full(n_full - 1)
                }
            })
            .collect();
        let sliding = match window {
            Some(w) => Some(SlidingKvCache::new(n_sliding, w, w, c.kv_dim())?),
            None => None,
        };
        Ok(State {
            // A model whose layers are all sliding still counts positions in `cache` (one
            // layer of it, unused).
            cache: KvCache::new(n_full.max(1), capacity, c.kv_dim())?,
            sliding,
            slots,
            rope: table((c.rope_base, c.rope_freq_scale)),
            rope_local: local.map(|l| table(c.layer_rope(l))),
            x: Vec::new(),
            xb: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            att: Vec::new(),
            proj: Vec::new(),
            gate: Vec::new(),
            up: Vec::new(),
            logits: Vec::new(),
            rot_scratch: vec![0.0; 2 * c.dim],
        })
    }

    /// Grows the scratch buffers for `rows` rows and `logit_rows` rows of logits.
    pub(crate) fn reserve(
        &mut self,
        c: &TransformerConfig,
        rows: usize,
        logit_rows: usize,
    ) -> Result<()> {
        // `rows` is at most the capacity the KV cache was allocated for, so the products fit;
        // checked anyway, since the dimensions come from the model file.
        fn grow(b: &mut Vec<f32>, rows: usize, width: usize) -> Result<()> {
            let n = rows.checked_mul(width).ok_or(Error::OutOfMemory {
                op: "model state",
                bytes: u64::MAX,
            })?;
            if b.len() < n {
                b.try_reserve_exact(n.saturating_sub(b.len()))
                    .map_err(|_| Error::OutOfMemory {
                        op: "model state",
                        bytes: (n as u64).saturating_mul(4),
                    })?;
                b.resize(n, 0.0);
            }
            Ok(())
        }
        grow(&mut self.x, rows, c.dim)?;
        grow(&mut self.xb, rows, c.dim)?;
        grow(&mut self.q, rows, c.q_dim())?;
        grow(&mut self.k, rows, c.kv_dim())?;
        grow(&mut self.v, rows, c.kv_dim())?;
        grow(&mut self.att, rows, c.q_dim())?;
        grow(&mut self.proj, rows, c.dim)?;
        grow(&mut self.gate, rows, c.ffn_dim)?;
        grow(&mut self.up, rows, c.ffn_dim)?;
        grow(&mut self.logits, logit_rows, c.vocab_size)?;
        Ok(())
    }

    /// Bytes of the K and V buffers of all layers (both caches).
    pub fn kv_bytes(&self) -> usize {
        self.cache
            .bytes()
            .saturating_add(self.sliding.as_ref().map_or(0, SlidingKvCache::bytes))
    }

    /// Most rows one batch of a forward pass may hold: the sliding cache's, unbounded without
    /// one ([`Transformer::forward`](crate::model::Transformer::forward) splits longer passes).
    pub(crate) fn max_batch(&self) -> usize {
        self.sliding
            .as_ref()
            .map_or(usize::MAX, SlidingKvCache::max_batch)
    }

    /// Positions processed so far.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True before the first forward pass (or after [`State::reset`]).
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Forgets every position, keeping the buffers (a new sequence from an empty cache).
    pub fn reset(&mut self) {
        self.cache.clear();
        if let Some(s) = &mut self.sliding {
            s.clear();
        }
    }

    /// Positions the state can hold.
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }
}
