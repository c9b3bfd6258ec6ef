//! Weight storage on huge pages: [`HugeBuf`], a zero-filled buffer of plain values whose
//! large allocations are 2 MiB-aligned and, on Linux, advised as transparent huge pages
//! before their first touch.
//!
//! # Why
//! A decode step streams every prepared weight once, so its speed is the rate one core (or
//! two) can read memory. On 4 KiB pages that rate is well below what the memory system gives:
//! the hardware prefetchers do not follow a stream across a page boundary, so each stream
//! restarts its prefetch every 64 cache lines, and every page costs a TLB miss. Measured on a
//! 2 vCPU AMD EPYC Zen 4 (`cpu family 25`), one thread summing a 1 GiB buffer with 512-bit
//! loads: 19–20 GB/s on 4 KiB pages, 26–29 GB/s on 2 MiB pages (see `docs/benchmarks.md`).
//! llama.cpp reads its weights from the memory-mapped model file, on 4 KiB pages.
//!
//! # How
//! A large buffer is mapped directly from the kernel (anonymous `mmap`, which hands out
//! zero-filled, not yet backed memory), 2 MiB-aligned, and advised `MADV_HUGEPAGE` before its
//! first touch, so the kernel backs it with huge pages as it is written when the system allows
//! them (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise` or `always`). The advice
//! is a hint: where it is refused, off Linux, or for small buffers, the buffer is the same on
//! small pages.
//!
//! Huge pages cost memory at a buffer's end: a huge page touched is backed whole. A buffer of
//! its own ([`HugeBuf::zeroed`], from [`HUGE_MIN_BYTES`]) is therefore advised whole only when
//! rounding it up to huge pages adds at most a quarter of its size ([`advised_len`]). The
//! weights of a small model are mostly smaller than a huge page (SmolLM2's int8 matrices are
//! 0.1–0.9 MB), so weights ([`HugeBuf::weight`]) share **chunks** of [`CHUNK_BYTES`] instead,
//! carved one after the other like llama.cpp's single weight buffer: a chunk is unmapped when
//! the last buffer in it is dropped, so its memory comes back once the model that owns those
//! weights is gone (not when one weight is). Measured on a 2 vCPU AMD EPYC Zen 4
//! (`cpu family 25`), SmolLM2-135M decode on one thread: blocked 28 → 42 tok/s with the large
//! matrices on huge pages, int8 108 → 145 tok/s with every matrix on them.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Buffers of at least this many bytes are mapped on huge pages: one huge page.
pub const HUGE_MIN_BYTES: usize = HUGE_PAGE;

/// Weights of at least this many bytes share the huge-page chunks (smaller ones stay on the
/// heap: a few hundred of them are a rounding error of a model).
pub const WEIGHT_MIN_BYTES: usize = 16 << 10;

/// Size of one shared chunk of weights (address space; only the pages written are backed).
/// Weights above a quarter of it get a mapping of their own.
pub const CHUNK_BYTES: usize = 64 << 20;

/// Size and alignment of one x86-64 huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Alignment of every buffer: one cache line (one 512-bit vector).
const LINE: usize = 64;

/// The bytes of a `bytes`-byte buffer that get the huge-page advice: the buffer rounded up to
/// whole huge pages when that adds at most a quarter of it, else the whole huge pages inside it.
pub fn advised_len(bytes: usize) -> usize {
    let up = bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE;
    if (up - bytes) * 4 <= bytes {
        up
    } else {
        bytes / HUGE_PAGE * HUGE_PAGE
    }
}

/// Where a buffer's memory came from.
enum Storage {
    /// The global allocator (small buffers, and every buffer off Linux).
    Heap(Layout),
    /// An anonymous mapping of this many bytes, starting at the buffer.
    #[cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]
    Mapped(usize),
    /// Part of a shared chunk, kept mapped while any of its buffers lives (the field is held
    /// for its `Drop`).
    #[cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]
    Chunk { _chunk: std::sync::Arc<Chunk> },
}

/// A heap buffer of `len` values of a plain type, zero-filled at creation, starting on a
/// 64-byte boundary, and 2 MiB-aligned on huge pages when it is large (see the
/// [module documentation](self)).
pub struct HugeBuf<T: bytemuck::Pod> {
    ptr: NonNull<T>,
    len: usize,
    storage: Storage,
}

// SAFETY: the buffer owns its values exclusively (like a `Box<[T]>`), and `T: Pod` values
// carry no thread affinity.
unsafe impl<T: bytemuck::Pod + Send> Send for HugeBuf<T> {}
// SAFETY: shared access only reads through `&[T]`.
unsafe impl<T: bytemuck::Pod + Sync> Sync for HugeBuf<T> {}

impl<T: bytemuck::Pod> HugeBuf<T> {
    /// A buffer of `len` zero values.
    ///
    /// # Panics
    /// When `len` values overflow `isize::MAX` bytes, and (through [`alloc::handle_alloc_error`])
    /// when memory cannot be had, as `Vec` does; [`try_zeroed`](Self::try_zeroed) returns
    /// `None` instead.
    pub fn zeroed(len: usize) -> Self {
        match Self::try_zeroed(len) {
            Some(me) => me,
            None => alloc::handle_alloc_error(Self::heap_layout(len).expect("HugeBuf: size")),
        }
    }

    /// A buffer of `len` zero values, or `None` when the size overflows or memory cannot be
    /// had.
    pub fn try_zeroed(len: usize) -> Option<Self> {
        let layout = Self::heap_layout(len)?;
        if layout.size() >= HUGE_MIN_BYTES {
            if let Some((ptr, mapped)) = map_huge(layout.size()) {
                return Some(HugeBuf {
                    ptr: ptr.cast(),
                    len,
                    storage: Storage::Mapped(mapped),
                });
            }
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        Some(HugeBuf {
            ptr: NonNull::new(raw)?.cast(),
            len,
            storage: Storage::Heap(layout),
        })
    }

    /// A buffer of `len` zero values meant to live as long as a model's weights: from
    /// [`WEIGHT_MIN_BYTES`] up to a quarter of [`CHUNK_BYTES`] it is carved from a shared
    /// huge-page chunk (see the [module documentation](self)), otherwise as [`zeroed`](Self::zeroed).
    ///
    /// # Panics
    /// As [`zeroed`](Self::zeroed).
    pub fn weight(len: usize) -> Self {
        if let Some(layout) = Self::heap_layout(len) {
            let bytes = layout.size();
            if (WEIGHT_MIN_BYTES..=CHUNK_BYTES / 4).contains(&bytes) {
                if let Some((ptr, chunk)) = chunk_alloc(bytes) {
                    return HugeBuf {
                        ptr: ptr.cast(),
                        len,
                        storage: Storage::Chunk { _chunk: chunk },
                    };
                }
            }
        }
        Self::zeroed(len)
    }

    /// The allocator layout of `len` values (at least one byte, 64-byte aligned), `None` when
    /// the size overflows (with room for a mapping's rounding to huge pages).
    fn heap_layout(len: usize) -> Option<Layout> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b <= isize::MAX as usize - 2 * HUGE_PAGE)?;
        Layout::from_size_align(bytes.max(1), LINE.max(std::mem::align_of::<T>())).ok()
    }

    /// The values.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised values (zero-filled at creation; zero bits are
        // a valid `Pod` value), suitably aligned, owned by `self` for the borrow's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Bytes reserved (the mapping of a huge buffer is rounded up to whole huge pages; only
    /// the pages written are backed by memory).
    pub fn size_bytes(&self) -> usize {
        match self.storage {
            Storage::Heap(layout) => layout.size(),
            Storage::Mapped(len) => len,
            Storage::Chunk { .. } => self.len * std::mem::size_of::<T>(),
        }
    }

    /// Whether the buffer lies in memory advised for huge pages (a mapping of its own or a
    /// shared chunk).
    pub fn huge(&self) -> bool {
        !matches!(self.storage, Storage::Heap(_))
    }
}

impl<T: bytemuck::Pod> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        match self.storage {
            // SAFETY: `ptr` came from `alloc::alloc_zeroed(layout)` and is freed once, here.
            Storage::Heap(layout) => unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), layout) },
            Storage::Mapped(len) => unmap(self.ptr.cast(), len),
            // The chunk is unmapped when its last buffer lets go of it.
            Storage::Chunk { .. } => {}
        }
    }
}

impl<T: bytemuck::Pod> Clone for HugeBuf<T> {
    fn clone(&self) -> Self {
        let mut me = match self.storage {
            Storage::Chunk { .. } => Self::weight(self.len),
            _ => Self::zeroed(self.len),
        };
        me.as_mut_slice().copy_from_slice(self.as_slice());
        me
    }
}

impl<T: bytemuck::Pod> Default for HugeBuf<T> {
    fn default() -> Self {
        Self::zeroed(0)
    }
}

impl<T: bytemuck::Pod> std::ops::Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: bytemuck::Pod> std::ops::DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: bytemuck::Pod + PartialEq> PartialEq for HugeBuf<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeBuf")
            .field("len", &self.len)
            .field("huge", &self.huge())
            .finish()
    }
}

/// Maps `bytes` (rounded up to whole huge pages) of zeroed memory at a 2 MiB boundary and
/// advises huge pages on [`advised_len`] of it; `None` when the kernel refuses the mapping
/// (the caller then falls back to the allocator).
#[cfg(all(target_os = "linux", not(miri)))]
fn map_huge(bytes: usize) -> Option<(NonNull<u8>, usize)> {
    let len = bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE;
    let span = len + HUGE_PAGE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory; the result is checked against MAP_FAILED.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let base = base as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (start - base, base + span - (start + len));
    // SAFETY: the head `[base, start)` and the tail `[start + len, base + span)` are
    // page-aligned parts of the mapping just made (the kernel maps at page boundaries and
    // `span`, `len` are multiples of 2 MiB), outside the buffer kept; unmapping them only
    // returns address space. The advice covers part of `[start, start + len)`, which we own,
    // and never changes its contents.
    unsafe {
        if head > 0 {
            libc::munmap(base as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        let advised = advised_len(bytes);
        if advised > 0 {
            libc::madvise(start as *mut libc::c_void, advised, libc::MADV_HUGEPAGE);
        }
    }
    NonNull::new(start as *mut u8).map(|p| (p, len))
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn map_huge(_bytes: usize) -> Option<(NonNull<u8>, usize)> {
    None
}

/// A shared chunk of weights: a 2 MiB-aligned mapping advised for huge pages, unmapped when
/// the last buffer in it (each holds an `Arc`) is dropped.
pub(crate) struct Chunk {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the chunk is only an address range; the buffers carved from it are disjoint, and each
// is accessed under the borrow rules of its own `HugeBuf`.
unsafe impl Send for Chunk {}
// SAFETY: as above; `Chunk` itself exposes nothing.
unsafe impl Sync for Chunk {}

impl Drop for Chunk {
    fn drop(&mut self) {
        unmap(self.base, self.len);
    }
}

/// The chunk weights are carved from now (held weakly: a chunk lives only as long as its
/// buffers) and the bytes of it handed out.
static CURRENT: std::sync::Mutex<(std::sync::Weak<Chunk>, usize)> =
    std::sync::Mutex::new((std::sync::Weak::new(), 0));

/// `bytes` (≤ `CHUNK_BYTES`) of never-used, zero memory from the current chunk, or from a new
/// one when it is full or gone; `None` when no chunk can be mapped.
fn chunk_alloc(bytes: usize) -> Option<(NonNull<u8>, std::sync::Arc<Chunk>)> {
    let bytes = bytes.next_multiple_of(LINE);
    // A panic elsewhere while the lock was held leaves the pair consistent (it is only ever
    // replaced whole), so a poisoned lock is still usable.
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(chunk) = current.0.upgrade() {
        let used = current.1;
        if used + bytes <= chunk.len {
            current.1 = used + bytes;
            // SAFETY: `used + bytes ≤ len`: the range lies inside the live chunk.
            let ptr = unsafe { NonNull::new_unchecked(chunk.base.as_ptr().add(used)) };
            return Some((ptr, chunk));
        }
    }
    let (base, len) = map_huge(CHUNK_BYTES)?;
    let chunk = std::sync::Arc::new(Chunk { base, len });
    *current = (std::sync::Arc::downgrade(&chunk), bytes);
    Some((base, chunk))
}

/// Unmaps a buffer made by [`map_huge`].
#[cfg(all(target_os = "linux", not(miri)))]
fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: `ptr`/`len` are exactly the mapping `map_huge` kept for this buffer, unmapped
    // once, when the buffer is dropped.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn unmap(_ptr: NonNull<u8>, _len: usize) {
    unreachable!("no mapped buffers on this target")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_share_chunks_and_stay_zero_and_apart() {
        let n = WEIGHT_MIN_BYTES / 4 + 5;
        let mut bufs: Vec<HugeBuf<f32>> = (0..40).map(|_| HugeBuf::weight(n)).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.iter().all(|&v| v == 0.0));
            assert_eq!(b.as_ptr() as usize % LINE, 0);
            b.fill(i as f32);
        }
        for (i, b) in bufs.iter().enumerate() {
            assert!(b.iter().all(|&v| v == i as f32), "buffer {i} overwritten");
            let c = b.clone();
            assert_eq!(c.as_slice(), b.as_slice());
            assert_eq!(c.huge(), b.huge());
        }
        let on_linux = cfg!(all(target_os = "linux", not(miri)));
        assert!(bufs.iter().all(|b| b.huge() == on_linux));
        // The 40 buffers (0.6 MiB) share chunks: at most two, where a chunk filled by other
        // tests running at the same time was replaced in between.
        let mut chunks: Vec<*const Chunk> = bufs
            .iter()
            .filter_map(|b| match &b.storage {
                Storage::Chunk { _chunk } => Some(std::sync::Arc::as_ptr(_chunk)),
                _ => None,
            })
            .collect();
        chunks.dedup();
        assert!(
            !on_linux || (1..=2).contains(&chunks.len()),
            "{}",
            chunks.len()
        );
        // Below the chunk threshold a weight stays on the heap.
        assert!(!HugeBuf::<u8>::weight(100).huge());
    }

    #[test]
    fn advice_rounds_up_only_when_cheap() {
        const M: usize = 1 << 20;
        assert_eq!(advised_len(2 * M), 2 * M);
        assert_eq!(advised_len(3 * M + M / 2), 4 * M); // +0.5 MiB on 3.5: up
        assert_eq!(advised_len(2 * M + M / 4), 2 * M); // +1.75 MiB on 2.25: inside only
        assert_eq!(advised_len(M), 0);
        assert_eq!(advised_len(113 * M), 114 * M);
    }

    #[test]
    fn zeroed_aligned_and_writable() {
        for len in [0usize, 1, 7, 1000, HUGE_MIN_BYTES / 4 + 3] {
            let mut b = HugeBuf::<f32>::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.as_slice().iter().all(|&v| v == 0.0));
            assert_eq!(b.as_slice().as_ptr() as usize % LINE, 0);
            assert_eq!(
                b.huge(),
                cfg!(all(target_os = "linux", not(miri))) && len * 4 >= HUGE_MIN_BYTES
            );
            if b.huge() {
                assert_eq!(b.as_slice().as_ptr() as usize % HUGE_PAGE, 0);
            }
            for (i, v) in b.as_mut_slice().iter_mut().enumerate() {
                *v = i as f32;
            }
            let c = b.clone();
            assert_eq!(c.as_slice(), b.as_slice());
            assert_ne!(c.as_slice().as_ptr(), b.as_slice().as_ptr());
        }
    }
}
