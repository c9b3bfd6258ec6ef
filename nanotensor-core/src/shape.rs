//! Shapes, row-major strides and the checks every operation shares.

use crate::error::{Error, Result};

/// Number of elements of `shape`, or [`Error::SizeOverflow`] if it does not fit in `usize`.
pub fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::SizeOverflow {
            op,
            shape: shape.into(),
        })
}

/// Bytes needed for `shape` with elements of `elem_size` bytes, computed in `u64` without overflow
/// (saturating at `u64::MAX`, which every budget refuses).
pub fn bytes_u64(shape: &[usize], elem_size: usize) -> u64 {
    shape
        .iter()
        .fold(elem_size as u64, |acc, &d| acc.saturating_mul(d as u64))
}

/// Row-major (C order) strides in elements: the last axis has stride 1.
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Fails with [`Error::InvalidShape`] if any dimension is zero. Most operations accept empty
/// tensors only where the result is well defined; those that do not call this.
pub fn check_non_empty(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::invalid_shape(op, shape, "a dimension is zero"));
    }
    Ok(())
}

/// Fails unless `shape` has exactly `rank` axes.
pub fn check_rank(op: &'static str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        return Err(Error::invalid_shape(
            op,
            shape,
            format!("expected {rank} dimensions, got {}", shape.len()),
        ));
    }
    Ok(())
}

/// The dimensions of a (possibly batched) matrix product `A·B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Number of independent products (product of the dims before the last two; 1 for 2-D inputs).
    pub batch: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Whether B is shared by every batch (B is 2-D while A is batched).
    pub broadcast_b: bool,
}

/// Checks the operands of `matmul` and returns its dimensions and the output shape.
///
/// Accepted: A `[.., m, k]` with B `[k, n]` (B shared by every batch) or B `[.., k, n]` with the
/// same leading dims as A. All dims must be non-zero.
pub fn matmul_dims(a: &[usize], b: &[usize]) -> Result<(MatmulDims, Vec<usize>)> {
    const OP: &str = "matmul";
    if a.len() < 2 || b.len() < 2 {
        return Err(Error::mismatch(
            OP,
            a,
            b,
            "both operands need at least 2 dimensions",
        ));
    }
    check_non_empty(OP, a)?;
    check_non_empty(OP, b)?;
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (kb, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != kb {
        return Err(Error::mismatch(
            OP,
            a,
            b,
            format!("inner dimensions differ ({k} vs {kb})"),
        ));
    }
    let lead_a = &a[..a.len() - 2];
    let lead_b = &b[..b.len() - 2];
    let broadcast_b = lead_b.is_empty();
    if !broadcast_b && lead_a != lead_b {
        return Err(Error::mismatch(
            OP,
            a,
            b,
            "batch dimensions differ (B must be 2-D or have A's leading dims)",
        ));
    }
    let batch = numel(OP, lead_a)?;
    let mut out = lead_a.to_vec();
    out.extend([m, n]);
    numel(OP, &out)?;
    Ok((
        MatmulDims {
            batch,
            m,
            k,
            n,
            broadcast_b,
        },
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(row_major_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(row_major_strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn numel_detects_overflow() {
        assert_eq!(numel("t", &[2, 3]).unwrap(), 6);
        assert!(matches!(
            numel("t", &[usize::MAX, 2]),
            Err(Error::SizeOverflow { .. })
        ));
        assert_eq!(bytes_u64(&[usize::MAX, usize::MAX], 4), u64::MAX);
    }

    #[test]
    fn matmul_dims_checks_inner_and_batch() {
        let (d, out) = matmul_dims(&[2, 3, 4], &[4, 5]).unwrap();
        assert_eq!((d.batch, d.m, d.k, d.n, d.broadcast_b), (2, 3, 4, 5, true));
        assert_eq!(out, vec![2, 3, 5]);
        assert!(matmul_dims(&[3, 4], &[5, 6]).is_err());
        assert!(matmul_dims(&[2, 3, 4], &[3, 4, 5]).is_err());
        assert!(matmul_dims(&[0, 4], &[4, 5]).is_err());
        assert!(matmul_dims(&[4], &[4, 5]).is_err());
    }
}
