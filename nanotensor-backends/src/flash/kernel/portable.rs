//! Portable f32 kernels: fixed-size lane arrays the compiler vectorises. `FMA` selects
//! `mul_add` (only where the target has a fused multiply-add instruction; elsewhere it would be a
//! slow library call) and `R` the register-tile height.

use super::exp::exp2;
use super::LANES;

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// See [`super::qk`]; `R` key rows per register tile.
#[inline(always)]
pub fn qk<const R: usize, const FMA: bool>(
    k: &[f32],
    ks: usize,
    rows: usize,
    d: usize,
    qt: &[f32],
    s: &mut [f32],
) {
    let qt = &qt[..d * LANES];
    let mut j = 0;
    while j + R <= rows {
        let mut acc = [[0.0f32; LANES]; R];
        for (p, qrow) in qt.chunks_exact(LANES).enumerate() {
            for (r, a) in acc.iter_mut().enumerate() {
                let kb = k[(j + r) * ks + p];
                for (al, &ql) in a.iter_mut().zip(qrow) {
                    *al = madd::<FMA>(kb, ql, *al);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            s[(j + r) * LANES..(j + r + 1) * LANES].copy_from_slice(a);
        }
        j += R;
    }
    for jr in j..rows {
        let mut a = [0.0f32; LANES];
        let krow = &k[jr * ks..jr * ks + d];
        for (qrow, &kb) in qt.chunks_exact(LANES).zip(krow) {
            for (al, &ql) in a.iter_mut().zip(qrow) {
                *al = madd::<FMA>(kb, ql, *al);
            }
        }
        s[jr * LANES..(jr + 1) * LANES].copy_from_slice(&a);
    }
}

/// See [`super::softmax_step`].
#[inline(always)]
pub fn softmax_step(
    s: &mut [f32],
    rows: usize,
    m: &mut [f32; LANES],
    l: &mut [f32; LANES],
    alpha: &mut [f32; LANES],
) {
    let s = &mut s[..rows * LANES];
    let mut mx = *m;
    for row in s.chunks_exact(LANES) {
        for (a, &x) in mx.iter_mut().zip(row) {
            *a = a.max(x);
        }
    }
    let mut mref = [0.0f32; LANES];
    for i in 0..LANES {
        mref[i] = if mx[i] == f32::NEG_INFINITY {
            0.0
        } else {
            mx[i]
        };
        alpha[i] = exp2(m[i] - mref[i]);
    }
    let mut sum = [0.0f32; LANES];
    for row in s.chunks_exact_mut(LANES) {
        for i in 0..LANES {
            let p = exp2(row[i] - mref[i]);
            row[i] = p;
            sum[i] += p;
        }
    }
    for i in 0..LANES {
        l[i] = l[i] * alpha[i] + sum[i];
        m[i] = mx[i];
    }
}

/// See [`super::pv`]; `R` output dims per register tile.
#[inline(always)]
pub fn pv<const R: usize, const FMA: bool>(
    v: &[f32],
    vs: usize,
    rows: usize,
    dv: usize,
    p: &[f32],
    alpha: &[f32; LANES],
    ot: &mut [f32],
) {
    let p = &p[..rows * LANES];
    let mut x = 0;
    while x < dv {
        let r = R.min(dv - x);
        let mut acc = [[0.0f32; LANES]; R];
        for (rr, a) in acc.iter_mut().enumerate().take(r) {
            let o = &ot[(x + rr) * LANES..(x + rr + 1) * LANES];
            for i in 0..LANES {
                a[i] = o[i] * alpha[i];
            }
        }
        for (j, prow) in p.chunks_exact(LANES).enumerate() {
            let vrow = &v[j * vs + x..j * vs + x + r];
            for (a, &vb) in acc.iter_mut().zip(vrow) {
                for (al, &pl) in a.iter_mut().zip(prow) {
                    *al = madd::<FMA>(vb, pl, *al);
                }
            }
        }
        for (rr, a) in acc.iter().enumerate().take(r) {
            ot[(x + rr) * LANES..(x + rr + 1) * LANES].copy_from_slice(a);
        }
        x += r;
    }
}

/// Dot product with 16 independent partial sums (vectorisable without reassociation flags).
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const W: usize = 16;
    let mut acc = [0.0f32; W];
    let (ac, bc) = (a.chunks_exact(W), b.chunks_exact(W));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..W {
            acc[i] = madd::<FMA>(x[i], y[i], acc[i]);
        }
    }
    let mut t = 0.0;
    for (x, y) in ar.iter().zip(br) {
        t = madd::<FMA>(*x, *y, t);
    }
    // Pairwise reduction of the partial sums.
    let mut w = W;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0] + t
}

/// See [`super::decode_scores`].
#[inline(always)]
pub fn decode_scores<const FMA: bool>(q: &[f32], k: &[f32], ks: usize, rows: usize, s: &mut [f32]) {
    let d = q.len();
    for (j, sj) in s.iter_mut().enumerate().take(rows) {
        *sj = dot::<FMA>(q, &k[j * ks..j * ks + d]);
    }
}

/// See [`super::decode_values`].
#[inline(always)]
pub fn decode_values<const FMA: bool>(
    v: &[f32],
    vs: usize,
    rows: usize,
    p: &[f32],
    alpha: f32,
    acc: &mut [f32],
) {
    let dv = acc.len();
    for a in acc.iter_mut() {
        *a *= alpha;
    }
    for (j, &pj) in p.iter().enumerate().take(rows) {
        let vrow = &v[j * vs..j * vs + dv];
        for (a, &vx) in acc.iter_mut().zip(vrow) {
            *a = madd::<FMA>(pj, vx, *a);
        }
    }
}

/// See [`super::exp2_sub_sum`].
#[inline(always)]
pub fn exp2_sub_sum(x: &mut [f32], sub: f32) -> f32 {
    const W: usize = 16;
    let mut acc = [0.0f32; W];
    let mut chunks = x.chunks_exact_mut(W);
    for c in &mut chunks {
        for i in 0..W {
            c[i] = exp2(c[i] - sub);
            acc[i] += c[i];
        }
    }
    let mut t = 0.0;
    for v in chunks.into_remainder() {
        *v = exp2(*v - sub);
        t += *v;
    }
    acc.iter().sum::<f32>() + t
}
