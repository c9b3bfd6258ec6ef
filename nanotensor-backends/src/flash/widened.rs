//! bf16/f16 attention on the f32 paths: Q, K and V are widened once into contiguous f32
//! copies (exact), the tiled or decode path runs on them with f32 accumulation, and each output
//! row is rounded back to the element type once.

use super::run_f32;
use crate::blocked::kernel::convert::Half16;
use crate::threads::Pool;
use nanotensor_core::attention::{AttentionDims, AttentionSpec, HeadsLayout};
use nanotensor_core::{DType, Element, Heads, HeadsMut};

/// Runs a bf16/f16 call (checked operands, `T` one of the two) through [`run_f32`].
#[allow(clippy::too_many_arguments)]
pub(super) fn run<T: Element>(
    pool: &Pool,
    isa: super::kernel::Isa,
    q: Heads<'_, T>,
    k: Heads<'_, T>,
    v: Heads<'_, T>,
    mut out: HeadsMut<'_, T>,
    dims: &AttentionDims,
    spec: &AttentionSpec,
) {
    let (d, dv) = (dims.head_dim, dims.v_dim);
    let ql = HeadsLayout::contiguous(dims.n_heads, dims.n_q, d);
    let kl = HeadsLayout::contiguous(dims.n_kv_heads, dims.n_kv, d);
    let vl = HeadsLayout::contiguous(dims.n_kv_heads, dims.n_kv, dv);
    let ol = HeadsLayout::contiguous(dims.n_heads, dims.n_q, dv);
    let q32 = widen(&q, &ql, dims.n_q);
    let (k32, v32) = (widen(&k, &kl, dims.n_kv), widen(&v, &vl, dims.n_kv));
    let mut o32 = vec![0.0f32; dims.n_heads * dims.n_q * dv];
    let heads = |data, layout| Heads { data, layout };
    run_f32(
        pool,
        isa,
        heads(&q32, ql),
        heads(&k32, kl),
        heads(&v32, vl),
        HeadsMut {
            data: &mut o32,
            layout: ol,
        },
        dims,
        spec,
    );
    for (r, row) in o32.chunks_exact(dv).enumerate() {
        let (h, i) = (r / dims.n_q, r % dims.n_q);
        narrow_row(row, out.row_mut(h, i));
    }
}

/// The rows of `x` (`rows` per head) as one contiguous f32 buffer in `layout`'s order.
fn widen<T: Element>(x: &Heads<'_, T>, layout: &HeadsLayout, rows: usize) -> Vec<f32> {
    let dim = layout.dim;
    let mut out = vec![0.0f32; layout.heads * rows * dim];
    for (r, dst) in out.chunks_exact_mut(dim).enumerate() {
        widen_row(x.row(r / rows, r % rows), dst);
    }
    out
}

fn widen_row<T: Element>(src: &[T], dst: &mut [f32]) {
    match T::DTYPE {
        DType::BF16 => half::bf16::widen(bytemuck::cast_slice(src), dst),
        DType::F16 => half::f16::widen(bytemuck::cast_slice(src), dst),
        _ => dst.iter_mut().zip(src).for_each(|(o, v)| *o = v.as_f32()),
    }
}

fn narrow_row<T: Element>(src: &[f32], dst: &mut [T]) {
    match T::DTYPE {
        DType::BF16 => half::bf16::narrow(src, bytemuck::cast_slice_mut(dst)),
        DType::F16 => half::f16::narrow(src, bytemuck::cast_slice_mut(dst)),
        _ => dst
            .iter_mut()
            .zip(src)
            .for_each(|(o, &v)| *o = T::from_f32(v)),
    }
}
