//! Packing: copying blocks of A and B into the contiguous micro-panel layout the microkernels
//! stream through (see [`GemmKernel`](super::kernel::GemmKernel) for the layout).
//!
//! Packing is what makes the microkernel's memory access linear and cache-resident whatever the
//! strides of the operands: a transposed weight, a strided attention head, or a plain row-major
//! matrix all become the same panels.

use std::any::TypeId;

use bytemuck::Pod;

use super::kernel::convert::widen_any;
use super::kernel::transpose::pack_lanes_f32;

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
///
/// `conv` converts element types. When `S` and `P` are the same type it must be the identity:
/// the f32 → f32 transposing copy (the common case: a row-major A block, a transposed weight)
/// then runs as a SIMD transpose ([`pack_lanes_f32`]) without calling it. Likewise, when `S`
/// is `half::bf16` or `half::f16` and `P` is `f32`, `conv` must be the exact widening: the
/// runs are then widened in bulk (F16C / AVX-512 conversions, see
/// [`convert`](super::kernel::convert)) instead of one call per element.
pub fn pack_panels<S: Pod, P: Pod + Default>(
    src: MatRef<'_, S>,
    r: usize,
    g: usize,
    conv: impl Fn(S) -> P,
    out: &mut [P],
) {
    let (width, depth) = (src.rows, src.cols);
    let dp = depth.div_ceil(g) * g;
    let panel_len = r * dp;
    // Scratch for widening bf16/f16 lanes before the f32 transpose, made on first use.
    let mut widened: Option<Vec<f32>> = None;
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
                // Each lane's depth run is contiguous in the source: walk the lanes' rows in
                // step, writing one contiguous group of `r` per depth step.
                let base = i0 * src.rs;
                let need = (lanes - 1) * src.rs + depth;
                let rows = &src.data[base..base + need];
                if let (Some(rows), Some(panel)) = (as_f32(rows), as_f32_mut(panel)) {
                    pack_lanes_f32(rows, src.rs, lanes, depth, r, panel);
                    continue;
                }
                if let Some(panel) = as_f32_mut(panel) {
                    // bf16/f16 into f32 panels: widen each lane's run in bulk, then the SIMD
                    // transpose.
                    let wide = widened.get_or_insert_with(|| vec![0.0f32; r * depth]);
                    let ok = (0..lanes).all(|i| {
                        let run = &rows[i * src.rs..i * src.rs + depth];
                        widen_any(run, &mut wide[i * depth..(i + 1) * depth])
                    });
                    if ok {
                        pack_lanes_f32(wide, depth, lanes, depth, r, panel);
                        continue;
                    }
                }
                for (p, group) in panel.chunks_exact_mut(r).take(depth).enumerate() {
                    for (i, o) in group[..lanes].iter_mut().enumerate() {
                        *o = conv(rows[i * src.rs + p]);
                    }
                }
            } else if src.rs == 1 {
                // Lanes are contiguous in the source (row-major B seen transposed): copy runs.
                // Whole f32 runs of the common widths are copied with a compile-time length so
                // the copy is a few inline vector moves, not a library call per depth step.
                if lanes == r {
                    let run = (depth - 1) * src.cs + r;
                    let data = &src.data[i0..i0 + run];
                    if let (Some(data), Some(panel)) = (as_f32(data), as_f32_mut(panel)) {
                        match r {
                            32 => copy_runs::<32>(data, src.cs, depth, panel),
                            16 => copy_runs::<16>(data, src.cs, depth, panel),
                            8 => copy_runs::<8>(data, src.cs, depth, panel),
                            _ => copy_runs_dyn(data, src.cs, depth, r, panel),
                        }
                        continue;
                    }
                }
                if let Some(panel) = as_f32_mut(panel) {
                    // bf16/f16 into f32 panels: each depth step's run widened in bulk.
                    let ok = (0..depth).all(|p| {
                        let run = &src.data[i0 + p * src.cs..][..lanes];
                        widen_any(run, &mut panel[p * r..p * r + lanes])
                    });
                    if ok {
                        continue;
                    }
                }
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
        } else if g == 2 {
            pack_pairs(src, i0, lanes, r, &conv, panel);
        } else {
            for i in 0..lanes {
                for p in 0..depth {
                    panel[((p / g) * r + i) * g + p % g] = conv(src.at(i0 + i, p));
                }
            }
        }
    }
}

/// One micro-panel with depth grouped in pairs (`g = 2`, the bf16 dot-product layout):
/// `panel[((p / 2)·r + i)·2 + p % 2] = conv(src[i0 + i, p])` for lanes `i < lanes`. Padding
/// (lanes past `lanes`, the second half of an odd depth's last pair) is left as it is (the
/// caller zeroes it). The two common layouts get loops that read the source sequentially: a
/// lane's depth run (row-major A) fills that lane's pairs; two consecutive depth rows
/// (row-major B seen transposed) interleave into the pairs of every lane.
fn pack_pairs<S: Pod, P: Pod>(
    src: MatRef<'_, S>,
    i0: usize,
    lanes: usize,
    r: usize,
    conv: &impl Fn(S) -> P,
    panel: &mut [P],
) {
    let depth = src.cols;
    if src.cs == 1 {
        for i in 0..lanes {
            let row = &src.data[(i0 + i) * src.rs..][..depth];
            for (q, pair) in row.chunks(2).enumerate() {
                let o = (q * r + i) * 2;
                panel[o] = conv(pair[0]);
                if let Some(&v) = pair.get(1) {
                    panel[o + 1] = conv(v);
                }
            }
        }
    } else if src.rs == 1 {
        for (q, out) in panel
            .chunks_exact_mut(2 * r)
            .take(depth.div_ceil(2))
            .enumerate()
        {
            let p = 2 * q;
            let r0 = &src.data[i0 + p * src.cs..][..lanes];
            for (o, &v) in out.chunks_exact_mut(2).zip(r0) {
                o[0] = conv(v);
            }
            if p + 1 < depth {
                let r1 = &src.data[i0 + (p + 1) * src.cs..][..lanes];
                for (o, &v) in out.chunks_exact_mut(2).zip(r1) {
                    o[1] = conv(v);
                }
            }
        }
    } else {
        for i in 0..lanes {
            for p in 0..depth {
                panel[((p / 2) * r + i) * 2 + p % 2] = conv(src.at(i0 + i, p));
            }
        }
    }
}

/// `panel[p·R .. (p + 1)·R] = data[p·cs .. p·cs + R]` for `p < depth`.
fn copy_runs<const R: usize>(data: &[f32], cs: usize, depth: usize, panel: &mut [f32]) {
    for (p, out) in panel.chunks_exact_mut(R).take(depth).enumerate() {
        let src: &[f32; R] = data[p * cs..p * cs + R].try_into().expect("R values");
        out.copy_from_slice(src);
    }
}

/// [`copy_runs`] for a width known only at run time.
fn copy_runs_dyn(data: &[f32], cs: usize, depth: usize, r: usize, panel: &mut [f32]) {
    for (p, out) in panel.chunks_exact_mut(r).take(depth).enumerate() {
        out.copy_from_slice(&data[p * cs..p * cs + r]);
    }
}

/// `s` as `f32` values when `S` is `f32` (a no-op view), `None` for every other type.
fn as_f32<S: Pod>(s: &[S]) -> Option<&[f32]> {
    (TypeId::of::<S>() == TypeId::of::<f32>()).then(|| bytemuck::cast_slice(s))
}

/// [`as_f32`] for a mutable slice.
fn as_f32_mut<S: Pod>(s: &mut [S]) -> Option<&mut [f32]> {
    (TypeId::of::<S>() == TypeId::of::<f32>()).then(|| bytemuck::cast_slice_mut(s))
}

/// A heap buffer whose values start on a 64-byte boundary (one cache line, one zmm register),
/// so the microkernels' vector loads never straddle cache lines; a large one lies on huge pages
/// ([`HugeBuf`](crate::hugebuf::HugeBuf)), which a decode step streams faster.
pub type AlignedBuf<T> = crate::hugebuf::HugeBuf<T>;

/// One cache line; the unit of the per-thread workspaces (64-byte aligned by construction).
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// The per-thread packing workspaces: which buffer a caller wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The packed B block (held by the thread that runs LOOP 4) or skinny accumulators.
    B = 0,
    /// The packed A block (held by each thread running LOOP 3).
    A = 1,
    /// The f32 staging of a product whose C has another element type (bf16, f16).
    C = 2,
}

thread_local! {
    static WORKSPACE: [std::cell::RefCell<Vec<Line>>; 3] = const {
        [
            std::cell::RefCell::new(Vec::new()),
            std::cell::RefCell::new(Vec::new()),
            std::cell::RefCell::new(Vec::new()),
        ]
    };
}

/// Runs `f` with a 64-byte-aligned scratch slice of `len` elements from this thread's `slot`
/// workspace, which grows as needed and is kept for the next call — so repeated products do
/// not pay for allocation and page faults. The contents are *not* cleared: callers overwrite
/// them (packing writes every element). If the slot is already in use on this thread (a nested
/// call), a fresh buffer is used instead.
pub fn with_workspace<T: bytemuck::Pod, R>(
    slot: Slot,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    let lines = (len * std::mem::size_of::<T>()).div_ceil(64);
    WORKSPACE.with(|ws| match ws[slot as usize].try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < lines {
                v.resize(lines, Line([0; 64]));
            }
            f(&mut bytemuck::cast_slice_mut::<Line, T>(&mut v[..lines])[..len])
        }
        Err(_) => {
            let mut v = vec![Line([0; 64]); lines];
            f(&mut bytemuck::cast_slice_mut::<Line, T>(&mut v)[..len])
        }
    })
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
            for (r, g) in [(12, 1), (32, 1), (4, 1), (8, 4), (16, 4), (12, 2), (32, 2)] {
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

    /// bf16 and f16 sources packed into f32 panels (the bulk-widening paths: row-major lanes
    /// through the transpose, column runs, and general strides element by element) give the
    /// exact widened values in the documented layout.
    #[test]
    fn half_sources_widen_while_packing() {
        fn check<H: nanotensor_core::Element>(
            width: usize,
            depth: usize,
            r: usize,
            rs: usize,
            cs: usize,
        ) {
            let len = (width - 1) * rs + (depth - 1) * cs + 1;
            let data: Vec<H> = (0..len)
                .map(|x| H::from_f64(x as f64 * 0.37 - 50.0))
                .collect();
            let src = MatRef::new(&data, width, depth, rs, cs);
            let mut out = vec![-1.0f32; packed_len(width, depth, r, 1)];
            pack_panels(src, r, 1, |x: H| x.as_f32(), &mut out);
            for q in 0..width.div_ceil(r) {
                for i in 0..r {
                    for p in 0..depth {
                        let got = out[q * r * depth + p * r + i];
                        let want = if q * r + i < width {
                            src.at(q * r + i, p).as_f32()
                        } else {
                            0.0
                        };
                        assert_eq!(
                            got,
                            want,
                            "{} w={width} d={depth} r={r} rs={rs} cs={cs}",
                            H::DTYPE
                        );
                    }
                }
            }
        }
        for (w, d) in [(1, 1), (12, 7), (13, 37), (33, 64), (5, 3)] {
            for r in [12, 32, 8] {
                check::<half::bf16>(w, d, r, d, 1);
                check::<half::f16>(w, d, r, d, 1);
                check::<half::bf16>(w, d, r, 1, w);
                check::<half::f16>(w, d, r, 1, w + 3);
                check::<half::f16>(w, d, r, 2 * d + 1, 2);
            }
        }
    }

    #[test]
    fn workspaces_are_aligned_reused_and_nest() {
        let p1 = with_workspace::<f32, _>(Slot::A, 100, |s| {
            s.fill(1.0);
            // A nested request for the same slot gets its own buffer.
            with_workspace::<f32, _>(Slot::A, 10, |t| assert!(t.iter().all(|&v| v == 0.0)));
            s.as_ptr() as usize
        });
        assert_eq!(p1 % 64, 0);
        let p2 = with_workspace::<f32, _>(Slot::A, 50, |s| s.as_ptr() as usize);
        assert_eq!(p1, p2);
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [1, 7, 1000] {
            let b = AlignedBuf::<f32>::zeroed(len);
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
