//! `Tensor<T>`: an owned, row-major, 64-byte-aligned n-dimensional array.
//!
//! Storage is a `Vec` of 64-byte chunks viewed as `[T]` through `bytemuck`, so alignment (one
//! cache line, one AVX-512 register) comes without a line of `unsafe`. The tensor owns its buffer;
//! dropping it frees the memory — Rust's ownership does what `new`/`delete` pairs did by hand in
//! the C++ original, and borrowing (`&Tensor`, `as_slice`) replaces raw pointers.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::shape::{numel, row_major_strides};

/// One cache line of raw bytes; the unit of tensor storage.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Chunk([u8; 64]);

/// Alignment in bytes of every tensor's first element.
pub const ALIGN: usize = 64;

/// An owned, contiguous, row-major tensor of `T` with a shape.
#[derive(Clone)]
pub struct Tensor<T: Element> {
    chunks: Vec<Chunk>,
    len: usize,
    shape: Vec<usize>,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Element> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: Vec<T> = self.as_slice().iter().take(8).copied().collect();
        f.debug_struct("Tensor")
            .field("dtype", &T::DTYPE)
            .field("shape", &self.shape)
            .field("head", &head)
            .finish()
    }
}

impl<T: Element> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.as_slice() == other.as_slice()
    }
}

/// Allocates zeroed, aligned storage for `len` elements of `T`, refusing politely when the
/// allocator cannot provide it (instead of aborting the process).
fn alloc_chunks<T: Element>(op: &'static str, len: usize) -> Result<Vec<Chunk>> {
    let bytes = len
        .checked_mul(std::mem::size_of::<T>())
        .ok_or(Error::OutOfMemory {
            op,
            bytes: u64::MAX,
        })?;
    let n_chunks = bytes.div_ceil(ALIGN);
    let mut chunks = Vec::new();
    chunks
        .try_reserve_exact(n_chunks)
        .map_err(|_| Error::OutOfMemory {
            op,
            bytes: bytes as u64,
        })?;
    chunks.resize(n_chunks, Chunk([0; 64]));
    Ok(chunks)
}

impl<T: Element> Tensor<T> {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Self> {
        let len = numel("Tensor::zeros", shape)?;
        Ok(Tensor {
            chunks: alloc_chunks::<T>("Tensor::zeros", len)?,
            len,
            shape: shape.to_vec(),
            _elem: std::marker::PhantomData,
        })
    }

    /// A tensor with every element equal to `value`.
    pub fn full(shape: &[usize], value: T) -> Result<Self> {
        let mut t = Self::zeros(shape)?;
        t.as_mut_slice().fill(value);
        Ok(t)
    }

    /// Takes the elements of `data` (row-major) with the given shape. Copies once into aligned
    /// storage.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        Self::from_slice(&data, shape)
    }

    /// Copies `data` (row-major) into a new tensor of the given shape.
    pub fn from_slice(data: &[T], shape: &[usize]) -> Result<Self> {
        const OP: &str = "Tensor::from_slice";
        let expected = numel(OP, shape)?;
        if data.len() != expected {
            return Err(Error::LengthMismatch {
                op: OP,
                len: data.len(),
                shape: shape.into(),
                expected,
            });
        }
        let mut t = Self::zeros(shape)?;
        t.as_mut_slice().copy_from_slice(data);
        Ok(t)
    }

    /// Builds a tensor from a function of the flat (row-major) index.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(usize) -> T) -> Result<Self> {
        let mut t = Self::zeros(shape)?;
        for (i, x) in t.as_mut_slice().iter_mut().enumerate() {
            *x = f(i);
        }
        Ok(t)
    }

    /// Reinterprets little-endian bytes as elements (copying into aligned storage).
    pub fn from_bytes(bytes: &[u8], shape: &[usize]) -> Result<Self> {
        const OP: &str = "Tensor::from_bytes";
        let expected = numel(OP, shape)?;
        let size = std::mem::size_of::<T>();
        if bytes.len() != expected.saturating_mul(size) {
            return Err(Error::LengthMismatch {
                op: OP,
                len: bytes.len() / size,
                shape: shape.into(),
                expected,
            });
        }
        let mut t = Self::zeros(shape)?;
        t.as_bytes_mut().copy_from_slice(bytes);
        Ok(t)
    }

    /// Standard-normal samples scaled by `std`, reproducible from `seed` on every platform.
    pub fn randn(shape: &[usize], std: f64, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        Self::from_fn(shape, |_| T::from_f64(std * rng.normal()))
    }

    /// Uniform samples in `[lo, hi)`, reproducible from `seed` on every platform.
    pub fn rand_uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        Self::from_fn(shape, |_| T::from_f64(rng.uniform(lo, hi)))
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Size of axis `axis`.
    pub fn dim(&self, axis: usize) -> Result<usize> {
        self.shape.get(axis).copied().ok_or(Error::OutOfRange {
            op: "Tensor::dim",
            index: axis,
            len: self.shape.len(),
        })
    }

    /// Total number of elements.
    pub fn numel(&self) -> usize {
        self.len
    }

    /// True when some dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        row_major_strides(&self.shape)
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        &bytemuck::cast_slice::<Chunk, T>(&self.chunks)[..self.len]
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut::<Chunk, T>(&mut self.chunks)[..self.len]
    }

    /// Zero-copy view of the elements as bytes (native endianness).
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// Zero-copy mutable view of the elements as bytes.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self.as_mut_slice())
    }

    /// Bytes of element storage (excluding the small shape vector and alignment padding).
    pub fn size_bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// Copies the elements out into a `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// The same elements with a new shape of equal element count (no copy).
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n = numel("reshape", shape)?;
        if n != self.len {
            return Err(Error::mismatch(
                "reshape",
                &self.shape,
                shape,
                format!("{} elements cannot take a shape of {n}", self.len),
            ));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// A borrowed sub-tensor: index `i` along the first axis (e.g. one head, one row).
    pub fn outer(&self, i: usize) -> Result<&[T]> {
        let (&d0, _) = self.shape.split_first().ok_or_else(|| {
            Error::invalid_shape("Tensor::outer", &self.shape, "a scalar has no first axis")
        })?;
        if i >= d0 {
            return Err(Error::OutOfRange {
                op: "Tensor::outer",
                index: i,
                len: d0,
            });
        }
        let inner = self.len / d0;
        Ok(&self.as_slice()[i * inner..(i + 1) * inner])
    }

    /// Mutable counterpart of [`Tensor::outer`].
    pub fn outer_mut(&mut self, i: usize) -> Result<&mut [T]> {
        let d0 = *self.shape.first().ok_or_else(|| {
            Error::invalid_shape(
                "Tensor::outer_mut",
                &self.shape,
                "a scalar has no first axis",
            )
        })?;
        if i >= d0 {
            return Err(Error::OutOfRange {
                op: "Tensor::outer_mut",
                index: i,
                len: d0,
            });
        }
        let inner = self.len / d0;
        Ok(&mut self.as_mut_slice()[i * inner..(i + 1) * inner])
    }

    /// A copy with axes `a` and `b` swapped (materialised in row-major order).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        let rank = self.rank();
        if a >= rank || b >= rank {
            return Err(Error::OutOfRange {
                op: "transpose",
                index: a.max(b),
                len: rank,
            });
        }
        let mut out_shape = self.shape.clone();
        out_shape.swap(a, b);
        let mut out = Self::zeros(&out_shape)?;
        if self.len == 0 {
            return Ok(out);
        }
        let in_strides = self.strides();
        let mut src_strides = in_strides.clone();
        src_strides.swap(a, b);
        // Walk the output in row-major order with a multi-index, reading the input through the
        // swapped strides.
        let src = self.as_slice();
        let mut idx = vec![0usize; rank];
        for dst in out.as_mut_slice().iter_mut() {
            let off: usize = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum();
            *dst = src[off];
            for ax in (0..rank).rev() {
                idx[ax] += 1;
                if idx[ax] < out_shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        Ok(out)
    }

    /// The transpose of a 2-D tensor.
    pub fn t(&self) -> Result<Self> {
        crate::shape::check_rank("t", &self.shape, 2)?;
        self.transpose(0, 1)
    }

    /// Element-wise conversion to another element type.
    pub fn cast<U: Element>(&self) -> Result<Tensor<U>> {
        let mut out = Tensor::<U>::zeros(&self.shape)?;
        for (o, &x) in out.as_mut_slice().iter_mut().zip(self.as_slice()) {
            *o = U::from_f64(x.as_f64());
        }
        Ok(out)
    }

    /// Fails with [`Error::NonFinite`] on the first NaN or infinity; `operand` names this tensor
    /// in the error (`"A"`, `"weight"`, …).
    pub fn check_finite(&self, op: &'static str, operand: &'static str) -> Result<()> {
        match crate::element::first_non_finite(self.as_slice()) {
            Some(p) => Err(Error::NonFinite {
                op,
                operand,
                index: p,
                value: self.as_slice()[p].as_f64(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_aligned_and_sized() {
        for n in [0usize, 1, 3, 17, 1000] {
            let t = Tensor::<f32>::zeros(&[n]).unwrap();
            assert_eq!(t.as_slice().len(), n);
            assert_eq!(t.as_slice().as_ptr() as usize % ALIGN, 0);
        }
    }

    #[test]
    fn from_slice_checks_length() {
        let t = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.outer(1).unwrap(), &[4.0, 5.0, 6.0]);
        let e = Tensor::from_slice(&[1.0f32; 5], &[2, 3]).unwrap_err();
        assert!(
            matches!(e, Error::LengthMismatch { expected: 6, .. }),
            "{e}"
        );
        assert!(t.outer(2).is_err());
    }

    #[test]
    fn transpose_matches_index_formula() {
        let t = Tensor::<f64>::from_fn(&[2, 3, 4], |i| i as f64).unwrap();
        let u = t.transpose(0, 2).unwrap();
        assert_eq!(u.shape(), &[4, 3, 2]);
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(
                        u.as_slice()[k * 6 + j * 2 + i],
                        t.as_slice()[i * 12 + j * 4 + k]
                    );
                }
            }
        }
        assert!(t.t().unwrap_err().to_string().contains("expected 2"));
    }

    #[test]
    fn reshape_keeps_data_and_rejects_bad_counts() {
        let t = Tensor::<f32>::from_fn(&[2, 6], |i| i as f32).unwrap();
        let r = t.clone().reshape(&[3, 4]).unwrap();
        assert_eq!(r.as_slice(), t.as_slice());
        assert!(t.reshape(&[5, 2]).is_err());
    }

    #[test]
    fn seeded_random_is_reproducible() {
        let a = Tensor::<f32>::randn(&[64], 1.0, 42).unwrap();
        let b = Tensor::<f32>::randn(&[64], 1.0, 42).unwrap();
        let c = Tensor::<f32>::randn(&[64], 1.0, 43).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let u = Tensor::<f64>::rand_uniform(&[1000], -1.0, 1.0, 1).unwrap();
        assert!(u.as_slice().iter().all(|x| (-1.0..1.0).contains(x)));
    }

    #[test]
    fn bytes_round_trip_and_finite_check() {
        let t = Tensor::<f32>::from_slice(&[1.5, -2.0], &[2]).unwrap();
        let u = Tensor::<f32>::from_bytes(t.as_bytes(), &[2]).unwrap();
        assert_eq!(t, u);
        let bad = Tensor::<f32>::from_slice(&[1.0, f32::NAN], &[2]).unwrap();
        assert!(matches!(
            bad.check_finite("x", "x"),
            Err(Error::NonFinite { index: 1, .. })
        ));
    }

    #[test]
    fn absurd_sizes_are_errors_not_aborts() {
        assert!(Tensor::<f32>::zeros(&[usize::MAX / 2, 4]).is_err());
        assert!(Tensor::<f32>::zeros(&[1 << 62]).is_err());
    }
}
