//! Disjoint rows of one output buffer, written by several workers at once.
//!
//! Workers of the flash path each own a different set of output rows `(h, i)`, but a strided
//! layout (token-major output) interleaves the rows of different heads, so the buffer cannot be
//! split into contiguous `&mut` chunks up front. [`SharedRows`] hands out one row at a time from a
//! raw pointer; it is sound because (1) [`rows_disjoint`] proves distinct rows never overlap and
//! (2) the schedulers give every row to exactly one work item.

use nanotensor_core::attention::HeadsLayout;
use std::marker::PhantomData;

/// True when the rows `(h, i)` of `l` occupy pairwise disjoint element ranges (checked for the
/// head-major and row-major nestings; other layouts are reported as overlapping).
pub(crate) fn rows_disjoint(l: &HeadsLayout) -> bool {
    let (h, r, d) = (l.heads, l.rows, l.dim);
    let span = |n: usize, stride: usize| (n - 1).saturating_mul(stride).saturating_add(d);
    let rows_ok = r == 1 || l.row_stride >= d;
    let heads_ok = h == 1 || l.head_stride >= d;
    (rows_ok && (h == 1 || l.head_stride >= span(r, l.row_stride)))
        || (heads_ok && (r == 1 || l.row_stride >= span(h, l.head_stride)))
}

/// A buffer whose rows (per a [`HeadsLayout`] with disjoint rows) are handed out one at a time.
#[derive(Debug)]
pub(crate) struct SharedRows<'a, T> {
    ptr: *mut T,
    len: usize,
    layout: HeadsLayout,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: `SharedRows` is a `&mut [T]` split into disjoint rows; sending or sharing it lets other
// threads write rows they were assigned, exactly like sending disjoint `&mut` sub-slices.
unsafe impl<T: Send> Send for SharedRows<'_, T> {}
// SAFETY: as above; concurrent `row` calls for distinct rows touch disjoint memory.
unsafe impl<T: Send> Sync for SharedRows<'_, T> {}

impl<'a, T> SharedRows<'a, T> {
    /// Wraps `data` laid out by `layout`. Panics (a bug, not user input) if the rows overlap or
    /// do not fit: callers validate both first.
    pub(crate) fn new(data: &'a mut [T], layout: HeadsLayout) -> Self {
        assert!(rows_disjoint(&layout));
        assert!(layout.required_len().is_some_and(|n| n <= data.len()));
        SharedRows {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            layout,
            _borrow: PhantomData,
        }
    }

    /// Row `i` of head `h`.
    ///
    /// # Safety
    /// While the returned slice lives, no other call may return the same `(h, i)`; distinct rows
    /// may be used concurrently from any threads.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, h: usize, i: usize) -> &mut [T] {
        assert!(h < self.layout.heads && i < self.layout.rows);
        let o = self.layout.offset(h, i);
        debug_assert!(o + self.layout.dim <= self.len);
        // SAFETY: the row lies inside the buffer (`new` checked `required_len`), rows are disjoint
        // (`new` checked), and the caller guarantees exclusive use of this row.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(o), self.layout.dim) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjointness_of_common_layouts() {
        assert!(rows_disjoint(&HeadsLayout::contiguous(4, 7, 8)));
        assert!(rows_disjoint(&HeadsLayout::token_major(4, 7, 8)));
        let mut l = HeadsLayout::contiguous(2, 3, 4);
        l.head_stride = 0;
        assert!(!rows_disjoint(&l));
        l.head_stride = 8; // head 1 starts inside head 0's third row
        assert!(!rows_disjoint(&l));
        let mut t = HeadsLayout::token_major(2, 3, 4);
        t.row_stride = 4;
        assert!(!rows_disjoint(&t));
    }
}
