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
        let per = capacity.checked_mul(kv_dim).ok_or(Error::OutOfMemory {
            op: OP,
            bytes: u64::MAX,
        })?;
        let alloc = || -> Result<Vec<f32>> {
            let mut b = Vec::new();
            b.try_reserve_exact(per).map_err(|_| Error::OutOfMemory {
                op: OP,
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
