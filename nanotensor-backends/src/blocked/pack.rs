//! Packing: copying blocks of A and B into the contiguous micro-panel layout the microkernels
//! stream through (see [`GemmKernel`](super::kernel::GemmKernel) for the layout).
//!
//! Packing is what makes the microkernel's memory access linear and cache-resident whatever the
//! strides of the operands: a transposed weight, a strided attention head, or a plain row-major
//! matrix all become the same panels.

/// A read-only strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
///
/// Strides let one packing routine read row-major matrices (`cs = 1`), transposed ones
/// (`rs = 1`, e.g. `Wᵀ` of a linear layer or `Kᵀ` in attention) and strided attention heads.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A view of `rows × cols` elements with row stride `rs` and column stride `cs`.
    ///
    /// # Panics
    /// If a non-empty view would reach past the end of `data` (callers validate shapes first).
    pub fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            assert!(last < data.len(), "MatRef: view reaches past its buffer");
        }
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Rows of the view.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the view.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transpose (a view, no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// The sub-view of `rows × cols` starting at `(i0, j0)`, clipped to the matrix.
    pub fn block(self, i0: usize, j0: usize, rows: usize, cols: usize) -> Self {
        let rows = rows.min(self.rows.saturating_sub(i0));
        let cols = cols.min(self.cols.saturating_sub(j0));
        let start = if rows > 0 && cols > 0 {
            i0 * self.rs + j0 * self.cs
        } else {
            0
        };
        MatRef {
            data: &self.data[start..],
            rows,
            cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// Element `(i, j)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Length of the packing of a `width × depth` source into `r`-wide micro-panels with depth
/// grouped by `g`: `ceil(width / r)·r × ceil(depth / g)·g`.
pub fn packed_len(width: usize, depth: usize, r: usize, g: usize) -> usize {
    width.div_ceil(r) * r * depth.div_ceil(g) * g
}

/// Packs `src` (`width × depth`: its rows become the `r` lanes of each micro-panel, its columns
/// the depth) into consecutive micro-panels:
/// `out[q·r·dp + ((p / g)·r + i)·g + p % g] = conv(src[q·r + i, p])`, where `dp` is `depth`
/// rounded up to `g`; positions past the edges are `P::default()` (zero).
///
/// For A, `src` is the A block itself (`r = MR`); for B, it is the transpose of the B block
/// (`r = NR`), so one routine serves both.
pub fn pack_panels<S: Copy, P: Copy + Default>(
    src: MatRef<'_, S>,
    r: usize,
    g: usize,
    conv: impl Fn(S) -> P,
    out: &mut [P],
) {
    let (width, depth) = (src.rows, src.cols);
    let dp = depth.div_ceil(g) * g;
    let panel_len = r * dp;
    assert_eq!(
        out.len(),
        packed_len(width, depth, r, g),
        "pack: output length"
    );
    for (q, panel) in out.chunks_exact_mut(panel_len).enumerate() {
        let i0 = q * r;
        let lanes = r.min(width - i0);
        if lanes < r || dp > depth {
            panel.fill(P::default());
        }
        if g == 1 {
            if src.cs == 1 {
                // Each lane's depth run is contiguous in the source: read rows, write strided.
                for i in 0..lanes {
                    let row = &src.data[(i0 + i) * src.rs..][..depth];
                    for (p, &v) in row.iter().enumerate() {
                        panel[p * r + i] = conv(v);
                    }
                }
            } else if src.rs == 1 {
                // Lanes are contiguous in the source (row-major B seen transposed): copy runs.
                for p in 0..depth {
                    let run = &src.data[i0 + p * src.cs..][..lanes];
                    for (o, &v) in panel[p * r..p * r + lanes].iter_mut().zip(run) {
                        *o = conv(v);
                    }
                }
            } else {
                for i in 0..lanes {
                    for p in 0..depth {
                        panel[p * r + i] = conv(src.at(i0 + i, p));
                    }
                }
            }
        } else {
            for i in 0..lanes {
                for p in 0..depth {
                    panel[((p / g) * r + i) * g + p % g] = conv(src.at(i0 + i, p));
                }
            }
        }
    }
}

/// A heap buffer whose usable part starts on a 64-byte boundary (one cache line, one zmm
/// register), so the microkernels' vector loads never straddle cache lines.
#[derive(Debug, Clone)]
pub struct AlignedBuf<T> {
    vec: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    /// A buffer of `len` default (zero) values.
    pub fn new(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<T>().max(1);
        let vec = vec![T::default(); len + slack];
        let off = vec.as_ptr().align_offset(64).min(slack);
        AlignedBuf { vec, off, len }
    }

    /// The usable elements.
    pub fn as_slice(&self) -> &[T] {
        &self.vec[self.off..self.off + self.len]
    }

    /// The usable elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.vec[self.off..self.off + self.len]
    }

    /// Usable length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the allocation (including the alignment slack).
    pub fn size_bytes(&self) -> usize {
        self.vec.len() * std::mem::size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpacks by the documented formula; the round trip must give back the source.
    fn roundtrip(width: usize, depth: usize, r: usize, g: usize, rs: usize, cs: usize) {
        let len = (width - 1) * rs + (depth - 1) * cs + 1;
        let data: Vec<f64> = (0..len).map(|x| x as f64 + 1.0).collect();
        let src = MatRef::new(&data, width, depth, rs, cs);
        let mut out = vec![-1.0; packed_len(width, depth, r, g)];
        pack_panels(src, r, g, |x| x, &mut out);
        let dp = depth.div_ceil(g) * g;
        for q in 0..width.div_ceil(r) {
            for i in 0..r {
                for p in 0..dp {
                    let got = out[q * r * dp + ((p / g) * r + i) * g + p % g];
                    let want = if q * r + i < width && p < depth {
                        src.at(q * r + i, p)
                    } else {
                        0.0
                    };
                    assert_eq!(
                        got, want,
                        "w={width} d={depth} r={r} g={g} q={q} i={i} p={p}"
                    );
                }
            }
        }
    }

    #[test]
    fn packing_round_trips_for_every_layout_and_edge() {
        for (w, d) in [(1, 1), (12, 7), (13, 5), (31, 64), (5, 3)] {
            for (r, g) in [(12, 1), (32, 1), (4, 1), (8, 4), (16, 4)] {
                roundtrip(w, d, r, g, d, 1); // row-major
                roundtrip(w, d, r, g, 1, w); // column-major
                roundtrip(w, d, r, g, 2 * d + 1, 2); // general strides
            }
        }
    }

    #[test]
    fn conversion_is_applied_while_packing() {
        let a = [half::bf16::from_f32(1.5), half::bf16::from_f32(-2.0)];
        let mut out = vec![0.0f32; packed_len(1, 2, 4, 1)];
        pack_panels(MatRef::new(&a, 1, 2, 2, 1), 4, 1, |x| x.to_f32(), &mut out);
        assert_eq!(out, [1.5, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [1, 7, 1000] {
            let b = AlignedBuf::<f32>::new(len);
            assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
            assert_eq!(b.len(), len);
        }
    }

    #[test]
    fn blocks_clip_to_the_matrix() {
        let d: Vec<i32> = (0..12).collect();
        let m = MatRef::new(&d, 3, 4, 4, 1);
        let b = m.block(1, 2, 5, 5);
        assert_eq!((b.rows(), b.cols(), b.at(0, 0), b.at(1, 1)), (2, 2, 6, 11));
        assert_eq!(m.t().at(3, 2), 11);
    }
}
