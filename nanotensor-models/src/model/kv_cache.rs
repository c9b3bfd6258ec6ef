//! The key/value cache: every layer's K and V rows of the tokens seen so far.
//!
//! Attention of token `t` needs the keys and values of tokens `0..=t`. Without a cache they are
//! recomputed from scratch at every step — the whole prefix goes through every layer again, so
//! generating `n` tokens costs `O(n²)` token-forwards. With the cache, each step computes K and V
//! for the new token only, appends them, and attends over the stored rows: `O(n)`
//! token-forwards.
//!
//! Layout: per layer, K and V are token-major `[capacity, n_kv_heads · head_dim]` buffers,
//! preallocated once; row `p` holds position `p`. Attention reads them in place through a
//! [`HeadsLayout::token_major`](nanotensor_core::attention::HeadsLayout::token_major) view (head stride
//! `head_dim`, row stride `n_kv_heads · head_dim`), so appending is a row copy and nothing is
//! transposed.
//!
//! # Sliding-window layers
//! A layer whose attention only looks back `W` positions (Gemma 3's local layers, `W = 512`)
//! needs only the last rows, which [`SlidingKvCache`] keeps. A ring buffer would hold exactly `W`
//! rows but wraps around, so its rows are not one strided run and attention could no longer read
//! them in place through a token-major view. [`SlidingKvCache`] keeps them contiguous instead:
//! its buffers hold `capacity = (W − 1) + max(W, max_batch)` rows, row 0 is absolute position
//! [`SlidingKvCache::offset`], and when a forward's new rows would not fit, the oldest rows are
//! dropped by moving the last `W − 1` (all a new query can still see) to the front. Each move
//! copies `W − 1` rows and leaves room for at least `W` new ones, so the copying costs O(1) rows
//! per token amortised — as much as writing the token's own row.
//!
//! Attention over the stored rows with `AttentionSpec::sliding(W)` sees the same keys as
//! attention over the whole history with that window: the new queries are the last stored rows
//! (where the end-aligned causal mask puts them), the window `p − W < j ≤ p` is a difference of
//! positions and so the same relative to row 0, and every key a query's window reaches is still
//! stored.

use nanotensor_core::error::{Error, Result};

/// Per-layer K and V buffers for up to `capacity` positions.
#[derive(Clone, Debug)]
pub struct KvCache {
    /// Values per row: `n_kv_heads · head_dim`.
    kv_dim: usize,
    /// Positions the buffers hold.
    capacity: usize,
    /// Positions filled so far (the same for every layer once a forward pass completes).
    len: usize,
    /// `[n_layers][capacity, kv_dim]`
    k: Vec<Vec<f32>>,
    /// `[n_layers][capacity, kv_dim]`
    v: Vec<Vec<f32>>,
}

impl KvCache {
    /// An empty cache of `n_layers` layers for `capacity` positions of `kv_dim` values.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero size; [`Error::OutOfMemory`] when the buffers
    /// cannot be allocated.
    pub fn new(n_layers: usize, capacity: usize, kv_dim: usize) -> Result<Self> {
        const OP: &str = "KvCache::new";
        if n_layers == 0 || capacity == 0 || kv_dim == 0 {
            return Err(Error::invalid_arg(
                OP,
                format!("layers {n_layers}, capacity {capacity}, kv_dim {kv_dim} must be positive"),
            ));
        }
        let (k, v) = alloc_layers(OP, n_layers, capacity, kv_dim)?;
        Ok(KvCache {
            kv_dim,
            capacity,
            len: 0,
            k,
            v,
        })
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no position is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values per row (`n_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Forgets every position (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes of the K and V buffers of all layers.
    pub fn bytes(&self) -> usize {
        // Each factor pair was allocated (capacity · kv_dim f32 per buffer), so this fits in
        // any realistic address space; saturating rather than wrapping all the same.
        [
            self.k.len(),
            self.capacity,
            self.kv_dim,
            std::mem::size_of::<f32>(),
        ]
        .iter()
        .fold(2usize, |acc, &x| acc.saturating_mul(x))
    }

    /// Fails with [`Error::ContextOverflow`] unless `rows` more positions fit.
    pub fn check_room(&self, rows: usize) -> Result<()> {
        let needed = self.len.saturating_add(rows);
        if needed > self.capacity {
            return Err(Error::ContextOverflow {
                op: "KvCache",
                needed,
                capacity: self.capacity,
                detail: format!(" ({} cached + {rows} new)", self.len),
            });
        }
        Ok(())
    }

    /// Writes the K and V rows of `rows` new positions (`len..len + rows`) of `layer`.
    /// `k` and `v` hold `rows · kv_dim` values each. The new rows become visible to
    /// [`KvCache::layer`] at once; [`KvCache::advance`] commits them after the last layer.
    pub(crate) fn write(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let start = self.len * self.kv_dim;
        debug_assert!(start + k.len() <= self.capacity * self.kv_dim && k.len() == v.len());
        self.k[layer][start..start + k.len()].copy_from_slice(k);
        self.v[layer][start..start + v.len()].copy_from_slice(v);
    }

    /// K and V of `layer` for positions `0..n` (token-major `[n, kv_dim]`).
    pub(crate) fn layer(&self, layer: usize, n: usize) -> (&[f32], &[f32]) {
        let end = n * self.kv_dim;
        (&self.k[layer][..end], &self.v[layer][..end])
    }

    /// Commits `rows` positions written by [`KvCache::write`] to every layer.
    pub(crate) fn advance(&mut self, rows: usize) {
        debug_assert!(self.len + rows <= self.capacity);
        self.len += rows;
    }
}

/// One buffer per layer.
type LayerBuffers = Vec<Vec<f32>>;

/// `n_layers` zeroed K and V buffers of `rows · kv_dim` values each.
///
/// # Errors
/// [`Error::OutOfMemory`] when the size overflows or the allocator refuses.
fn alloc_layers(
    op: &'static str,
    n_layers: usize,
    rows: usize,
    kv_dim: usize,
) -> Result<(LayerBuffers, LayerBuffers)> {
    let per = rows.checked_mul(kv_dim).ok_or(Error::OutOfMemory {
        op,
        bytes: u64::MAX,
    })?;
    let alloc = || -> Result<Vec<f32>> {
        let mut b = Vec::new();
        b.try_reserve_exact(per).map_err(|_| Error::OutOfMemory {
            op,
            bytes: (per as u64).saturating_mul(4),
        })?;
        b.resize(per, 0.0);
        Ok(b)
    };
    let mut k = Vec::with_capacity(n_layers);
    let mut v = Vec::with_capacity(n_layers);
    for _ in 0..n_layers {
        k.push(alloc()?);
        v.push(alloc()?);
    }
    Ok((k, v))
}

/// Per-layer K and V of the last positions only, for layers that attend through a sliding
/// window of `window` positions (see the module docs for the layout and why it stays
/// contiguous).
///
/// Positions are absolute: [`SlidingKvCache::len`] counts every position processed, buffer row
/// `r` holds position [`SlidingKvCache::offset`]` + r`, and [`SlidingKvCache::stored`] rows are
/// held. A forward pass of `rows` new tokens at positions `len..len + rows` runs:
///
/// ```text
/// cache.make_room(rows)?;                   // may drop the oldest rows (offset grows)
/// let checked = cache.stored();             // rows an earlier forward wrote and scanned
/// let n_kv = checked + rows;                // the new tokens are buffer rows checked..n_kv
/// for each sliding layer l:
///     RoPE with the absolute positions len..len + rows
///     cache.write(l, k_new, v_new)?;
///     let (k, v) = cache.layer(l, n_kv)?;   // token-major [n_kv, kv_dim], read in place
///     attention_into(q: n_q = rows, k/v: n_kv rows,
///                    AttentionSpec { kv_rows_checked: checked, ..AttentionSpec::sliding(W) })
/// cache.advance(rows)?;
/// ```
///
/// A model mixing window and full-attention layers (Gemma 3: five local layers per global one)
/// keeps a [`KvCache`] for the global layers and a `SlidingKvCache` for the local ones, indexes
/// each by its own layer count, and advances both by the same rows; the sliding cache then holds
/// `2W` rows per local layer instead of the whole context. Forward passes must come in batches of
/// at most `max_batch` rows (a longer prompt is fed in chunks): all of a batch's new rows and
/// the `W − 1` before them must be stored at once.
#[derive(Clone, Debug)]
pub struct SlidingKvCache {
    /// Values per row: `n_kv_heads · head_dim`.
    kv_dim: usize,
    /// Positions each query sees, its own included.
    window: usize,
    /// Most rows one forward pass may add.
    max_batch: usize,
    /// Rows the buffers hold: `(window − 1) + max(window, max_batch)`.
    capacity: usize,
    /// Positions processed so far (absolute).
    len: usize,
    /// Absolute position of buffer row 0.
    offset: usize,
    /// `[n_layers][capacity, kv_dim]`
    k: Vec<Vec<f32>>,
    /// `[n_layers][capacity, kv_dim]`
    v: Vec<Vec<f32>>,
}

impl SlidingKvCache {
    /// An empty cache of `n_layers` layers with a window of `window` positions, for forward
    /// passes of up to `max_batch` rows of `kv_dim` values.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero size; [`Error::OutOfMemory`] when the buffers
    /// cannot be allocated (or their size overflows).
    pub fn new(n_layers: usize, window: usize, max_batch: usize, kv_dim: usize) -> Result<Self> {
        const OP: &str = "SlidingKvCache::new";
        if n_layers == 0 || window == 0 || max_batch == 0 || kv_dim == 0 {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "layers {n_layers}, window {window}, max batch {max_batch}, kv_dim {kv_dim} \
                     must be positive"
                ),
            ));
        }
        let capacity =
            (window - 1)
                .checked_add(window.max(max_batch))
                .ok_or(Error::OutOfMemory {
                    op: OP,
                    bytes: u64::MAX,
                })?;
        let (k, v) = alloc_layers(OP, n_layers, capacity, kv_dim)?;
        Ok(SlidingKvCache {
            kv_dim,
            window,
            max_batch,
            capacity,
            len: 0,
            offset: 0,
            k,
            v,
        })
    }

    /// Positions processed so far (the absolute position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no position has been processed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute position of buffer row 0: positions before it were dropped.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Rows held: positions `offset..len`.
    pub fn stored(&self) -> usize {
        self.len - self.offset
    }

    /// The window `W`: a query at position `p` sees positions `p − W < j ≤ p`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Most rows one forward pass may add.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Rows the buffers hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values per row (`n_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Forgets every position (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.len = 0;
        self.offset = 0;
    }

    /// Bytes of the K and V buffers of all layers.
    pub fn bytes(&self) -> usize {
        [
            self.k.len(),
            self.capacity,
            self.kv_dim,
            std::mem::size_of::<f32>(),
        ]
        .iter()
        .fold(2usize, |acc, &x| acc.saturating_mul(x))
    }

    /// Fails with [`Error::ContextOverflow`] when a forward pass of `rows` new positions is
    /// larger than `max_batch` or would take the absolute position past `usize::MAX`.
    pub fn check_room(&self, rows: usize) -> Result<()> {
        if rows > self.max_batch {
            return Err(Error::ContextOverflow {
                op: "SlidingKvCache",
                needed: rows,
                capacity: self.max_batch,
                detail: format!(
                    " (one forward pass of a sliding-window cache with a {}-position window)",
                    self.window
                ),
            });
        }
        if self.len.checked_add(rows).is_none() {
            return Err(Error::ContextOverflow {
                op: "SlidingKvCache",
                needed: usize::MAX,
                capacity: usize::MAX,
                detail: " (absolute position)".into(),
            });
        }
        Ok(())
    }

    /// Makes room for `rows` new positions (call once per forward pass, before the first
    /// [`SlidingKvCache::write`]): when `stored() + rows` would pass the capacity, moves the last
    /// `W − 1` stored rows of every layer to the front and advances the offset past the dropped
    /// ones. Keeps every row a query at positions `len..len + rows` can see.
    ///
    /// # Errors
    /// Those of [`SlidingKvCache::check_room`]; nothing changes then.
    pub fn make_room(&mut self, rows: usize) -> Result<()> {
        self.check_room(rows)?;
        let stored = self.stored();
        if stored + rows <= self.capacity {
            return Ok(());
        }
        // `stored + rows > capacity ≥ (W − 1) + rows` so `stored > W − 1`: a real drop.
        let keep = self.window - 1;
        let drop = stored - keep;
        let (from, len) = (drop * self.kv_dim, keep * self.kv_dim);
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            buf.copy_within(from..from + len, 0);
        }
        self.offset += drop;
        Ok(())
    }

    /// Writes the K and V rows of new positions of `layer` at buffer rows `stored()..`, after
    /// [`SlidingKvCache::make_room`]. `k` and `v` hold `rows · kv_dim` values each, `rows` at
    /// most the room made. [`SlidingKvCache::advance`] commits them after the last layer.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a layer past the last; [`Error::InvalidArgument`] when `k` and
    /// `v` differ in length, are not whole rows, or do not fit after the stored rows.
    pub fn write(&mut self, layer: usize, k: &[f32], v: &[f32]) -> Result<()> {
        const OP: &str = "SlidingKvCache::write";
        self.check_layer(OP, layer)?;
        let start = self.stored() * self.kv_dim;
        let room = self.capacity * self.kv_dim - start;
        if k.len() != v.len() || !k.len().is_multiple_of(self.kv_dim) || k.len() > room {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "K and V of {} and {} values: need equal whole rows of {} within the room \
                     of {} rows (call make_room first)",
                    k.len(),
                    v.len(),
                    self.kv_dim,
                    room / self.kv_dim
                ),
            ));
        }
        self.k[layer][start..start + k.len()].copy_from_slice(k);
        self.v[layer][start..start + v.len()].copy_from_slice(v);
        Ok(())
    }

    /// K and V of `layer` for buffer rows `0..n` — positions `offset..offset + n`
    /// (token-major `[n, kv_dim]`): `n = stored() + rows` during a forward pass of `rows` new
    /// positions written by [`SlidingKvCache::write`].
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a layer past the last or `n` past the capacity.
    pub fn layer(&self, layer: usize, n: usize) -> Result<(&[f32], &[f32])> {
        const OP: &str = "SlidingKvCache::layer";
        self.check_layer(OP, layer)?;
        if n > self.capacity {
            return Err(Error::OutOfRange {
                op: OP,
                index: n,
                len: self.capacity,
            });
        }
        let end = n * self.kv_dim;
        Ok((&self.k[layer][..end], &self.v[layer][..end]))
    }

    /// Commits `rows` positions written by [`SlidingKvCache::write`] to every layer.
    ///
    /// # Errors
    /// [`Error::ContextOverflow`] when `rows` do not fit after the stored rows.
    pub fn advance(&mut self, rows: usize) -> Result<()> {
        let needed = self.stored().saturating_add(rows);
        match self.len.checked_add(rows) {
            Some(len) if needed <= self.capacity => {
                self.len = len;
                Ok(())
            }
            _ => Err(Error::ContextOverflow {
                op: "SlidingKvCache::advance",
                needed,
                capacity: self.capacity,
                detail: " (rows held by a sliding-window cache)".into(),
            }),
        }
    }

    fn check_layer(&self, op: &'static str, layer: usize) -> Result<()> {
        if layer >= self.k.len() {
            return Err(Error::OutOfRange {
                op,
                index: layer,
                len: self.k.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_overflow() {
        let mut c = KvCache::new(2, 3, 2).unwrap();
        assert_eq!(c.bytes(), 2 * 2 * 3 * 2 * 4);
        c.write(0, &[1.0, 2.0], &[3.0, 4.0]);
        c.write(1, &[5.0, 6.0], &[7.0, 8.0]);
        c.advance(1);
        c.write(0, &[9.0, 10.0, 11.0, 12.0], &[0.0; 4]);
        c.advance(2);
        assert_eq!(c.len(), 3);
        let (k, v) = c.layer(0, 3);
        assert_eq!(k, [1.0, 2.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!(&v[..2], [3.0, 4.0]);
        assert_eq!(c.layer(1, 1), (&[5.0, 6.0][..], &[7.0, 8.0][..]));
        let e = c.check_room(1).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ContextOverflow {
                    needed: 4,
                    capacity: 3,
                    ..
                }
            ),
            "{e}"
        );
        c.clear();
        assert!(c.is_empty() && c.check_room(3).is_ok());
        assert!(KvCache::new(1, 0, 4).is_err());
    }
}

#[cfg(test)]
mod sliding_tests;
