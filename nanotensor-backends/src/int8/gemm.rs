//! The int8 product on the crate's one GEMM loop nest ([`crate::blocked::gemm`]).
//!
//! ```text
//! C[m×n] = Σ_kc-blocks  tile( A panels (MR × kc),  B panels (kc × NR) )  · rs[i] · cs[j]
//! ```
//!
//! Both operands arrive fully packed (A per call, B per call or once at `prepare`), each panel
//! holding the whole `k` range: they enter the driver as [`Panels`] sources, so its LOOP 4/3 skip
//! packing and only choose *which slice* to feed. [`Int8Tiles`] is the [`GemmKernel`] the driver
//! runs: it carries the product's side data (the packed A with its offset corrections and
//! optional per-block scales, the row scales `rs`, the column scales `cs`) and its
//! [`tile`](GemmKernel::tile) hook turns the driver's tile coordinates ([`TileAt`]) into the
//! int8 microkernel call with the fused dequantizing epilogue:
//!
//! * the A micro-panel `row / MR` and depth block `k_block` select the VNNI offset correction
//!   (or, with per-block scales, the block scales from `k0` and the scaled correction);
//! * `row` selects the row scales, `col / NR` the column scales;
//! * `rows`, `cols` are the valid part of the tile: the kernels are specialised on the row count
//!   (`R = 1..=MR`, so a decode row does not pay `MR×`) and mask their stores to `cols`, so the
//!   kernel declares [`NATIVE_TILES`](GemmKernel::NATIVE_TILES) — no scratch tile, and the
//!   driver may split C's columns across threads when `m` is small (decode, LM head);
//! * `accumulate` (depth block > 0) adds the block's dequantized sum into C in f32: each block's
//!   i32 sum is exact, so a block must not span more than [`super::kernel::K_MAX`] values of `k`;
//!   the caller picks `kc` and the driver uses exactly the `kc` A was packed with.
//!
//! Decode (`m ≤ MR`) is the same nest with one A panel and `kc` = all of `k`: every B panel is
//! streamed from memory exactly once — the GEMV path for prepared weights.

use super::kernel::{Kernel, TileOut};
use super::pack::{PackedA, PackedB};
use crate::blocked::gemm::{gemm_ext, ASource, BSource, Panels};
use crate::blocked::kernel::{GemmKernel, TileAt};
use crate::threads::Pool;

/// `kc` for GEMM. Every depth block ends in the f32 epilogue (offset correction, scaling, and an
/// f32 read-modify-write of the whole C block), which next to a VNNI kernel four times faster
/// than f32 FMAs weighs four times more than in the f32 backend; so the deeper the better, as
/// long as the B micro-panel (`KC × 32` bytes, 128 KiB) and the A block (`MC × KC`, 512 KiB)
/// stay in a 1 MiB L2. At 4096 the depths of a small model (`k` = 576, 1536) and of a
/// 4096-deep product run in one block, with one epilogue each.
pub const KC: usize = 4096;
/// Rows of A per block (LOOP 3 step): `MC × KC` = 512 KiB of A stays in L2 across the B
/// micro-panels.
pub const MC: usize = 128;

/// `(kc, mc)` in force: [`KC`] and [`MC`], or the experiment overrides `NT_INT8_KC` /
/// `NT_INT8_MC` from the environment (read once per process; `kc` is rounded down to a
/// multiple of 4, both are clamped to sane ranges).
pub fn blocking() -> (usize, usize) {
    static BLOCKING: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *BLOCKING.get_or_init(|| {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let kc = (var("NT_INT8_KC", KC) / 4 * 4).clamp(4, super::kernel::K_MAX);
        (kc, var("NT_INT8_MC", MC).clamp(1, 1 << 16))
    })
}

/// Products smaller than this many multiply-adds run on the calling thread. At decode
/// (`m = 1`) the count is the weight's bytes, and such a product is bound by reading them: a
/// 64 KiB weight streams from memory in ~5 µs on one core, several times the cost of handing a
/// job to the pool's spinning workers, so every weight of a small model's decode step is split
/// over the threads (on a Zen 4 machine, a SmolLM2 decode step on two threads otherwise ran all
/// but its output head on one: 1.0× the one-thread speed).
pub const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Per-column scales: `cs[j]` for column `j` (`stride` 1, padded to whole panels), or one
/// repeated value (`stride` 0, `NR` copies).
#[derive(Debug, Clone, Copy)]
pub struct ColScales<'a> {
    /// The values.
    pub values: &'a [f32],
    /// 1 for per-column values, 0 for a single repeated scale.
    pub stride: usize,
}

/// The int8 microkernel of tile `MR × NR` as a [`GemmKernel`] of the shared driver, with the
/// side data of one product (see the module docs). Only [`gemm`] builds one, after checking the
/// operands against each other.
#[derive(Debug, Clone, Copy)]
pub struct Int8Tiles<'a, const MR: usize, const NR: usize> {
    kernel: Kernel,
    a: &'a PackedA,
    rs: &'a [f32],
    cs: ColScales<'a>,
}

impl<const MR: usize, const NR: usize> GemmKernel for Int8Tiles<'_, MR, NR> {
    type A = i8;
    type B = u8;
    type C = f32;
    const MR: usize = MR;
    const NR: usize = NR;
    const KGROUP: usize = 4;
    const MC: usize = MC;
    const KC: usize = KC;
    /// No column blocking: a task streams its whole column range per depth block (B panels
    /// are packed whole, so there is nothing to pack per `nc` block).
    const NC: usize = usize::MAX / 2;
    const NATIVE_TILES: bool = true;
    const PAR_MIN_MACS: usize = PARALLEL_MIN_MACS;

    fn name(&self) -> &'static str {
        self.kernel.kind().name()
    }

    fn mc(&self) -> usize {
        blocking().1.div_ceil(MR) * MR
    }

    /// The exact product of the codes, `C (+)= Σ_k a·(b − 128)` as f32 (no scales): the
    /// offset correction is summed from the A micro-panel itself. The driver does not use it
    /// (it calls [`tile`](GemmKernel::tile)); it gives the int8 tile the plain contract of
    /// the trait. `b` holds offset-binary codes, as packed for [`Int8Tiles`].
    fn microkernel(&self, kc: usize, a: &[i8], b: &[u8], c: &mut [f32], ldc: usize, acc: bool) {
        assert!(kc.is_multiple_of(4) && a.len() >= kc * MR && b.len() >= kc * NR);
        assert!(
            ldc >= NR && c.len() >= (MR - 1) * ldc + NR,
            "microkernel: short C tile"
        );
        let mut corr = [0i32; super::kernel::MR_MAX];
        for quad_rows in a[..kc * MR].chunks_exact(4 * MR) {
            for (r, quad) in quad_rows.chunks_exact(4).enumerate() {
                let s: i32 = quad.iter().map(|&q| q as i32).sum();
                corr[r] = corr[r].wrapping_add(s.wrapping_mul(128));
            }
        }
        let ones = [1.0f32; NR];
        let out = TileOut {
            c: c.as_mut_ptr(),
            ldc,
            cols: NR,
            rs: &ones[..MR],
            cs: &ones,
            accumulate: acc,
        };
        // SAFETY: `c` is an exclusive slice holding the MR × NR tile at stride `ldc` (checked
        // above), and the kernel writes only those elements.
        unsafe { self.kernel.tile(MR, kc / 4, a, &corr[..MR], b, &out) };
    }

    unsafe fn tile(
        &self,
        kc: usize,
        a: &[i8],
        b: &[u8],
        at: &TileAt,
        c: *mut f32,
        ldc: usize,
    ) -> bool {
        debug_assert_eq!((self.kernel.mr(), self.kernel.nr()), (MR, NR));
        let (ip, blk) = (at.row / MR, at.k_block);
        let out = TileOut {
            c,
            ldc,
            cols: at.cols,
            rs: self.rs.get(at.row..).unwrap_or(&[]),
            cs: &self.cs.values[at.col * self.cs.stride..],
            accumulate: at.accumulate,
        };
        match self.a.block_len {
            // SAFETY: the driver's contract for NATIVE_TILES kernels: the tile's rows × cols
            // elements at `c` are valid and this call's alone.
            None => unsafe {
                self.kernel
                    .tile(at.rows, kc / 4, a, self.a.corr(ip, blk), b, &out)
            },
            // SAFETY: as above; `k0` is a multiple of the block length (asserted by `gemm`), so
            // the block scales start at block `k0 / len`.
            Some(len) => unsafe {
                let (bs, fc) = (self.a.block_scales(ip, at.k0), self.a.fcorr(ip, blk));
                self.kernel
                    .tile_blocks(at.rows, kc / 4, len / 4, a, bs, fc, b, &out)
            },
        }
        // The int8 operands were checked for NaN/±∞ as they were quantized.
        false
    }
}

/// `C = (A·B) ⊙ (rs ⊗ cs)` into `c` (`m × n`, row stride `n`), overwriting it.
///
/// * `a` — `m` rows packed with the `kc` that also blocks the loop (≤ `K_MAX`)
/// * `rs` — one scale per row of A (`m` values); unused (may be empty) when `a` carries
///   per-block scales ([`PackedA::set_block_scales`]), which then take its place:
///   `C = Σ_blocks (A_blk·B_blk) ⊙ (bs_blk ⊗ cs)`
/// * `b` — `k × n` packed panels
/// * `cs` — column scales
#[allow(clippy::too_many_arguments)] // the BLAS-style operand list reads best flat
pub fn gemm(
    pool: &Pool,
    kernel: Kernel,
    a: &PackedA,
    rs: &[f32],
    b: &PackedB,
    cs: ColScales<'_>,
    m: usize,
    c: &mut [f32],
) {
    let (mr, nr, n, k, kc) = (kernel.mr(), kernel.nr(), b.n, b.k, a.kc);
    assert!(a.mr == mr && b.nr == nr && a.kp == b.kp && c.len() >= m * n);
    assert!(kc.is_multiple_of(4) && kc <= super::kernel::K_MAX);
    assert!(a.data.len() >= m.div_ceil(mr) * mr * a.kp);
    if let Some(len) = a.block_len {
        assert!(kc >= k || kc.is_multiple_of(len));
    } else {
        assert!(rs.len() >= m);
    }
    assert!(cs.values.len() >= (b.panels() - 1) * nr * cs.stride + nr);
    let a_src = ASource::<i8, i8>::Panels(Panels::new(&a.data, m, k, mr * a.kp));
    let b_src = BSource::<u8, u8>::Panels(Panels::new(&b.data, n, k, nr * b.kp));
    let pool = Some(pool);
    match (mr, nr) {
        (8, 32) => {
            let tiles = Int8Tiles::<8, 32> { kernel, a, rs, cs };
            gemm_ext(tiles, pool, a_src, |x| x, b_src, |x| x, Some(kc), c, n);
        }
        (4, 16) => {
            let tiles = Int8Tiles::<4, 16> { kernel, a, rs, cs };
            gemm_ext(tiles, pool, a_src, |x| x, b_src, |x| x, Some(kc), c, n);
        }
        _ => unreachable!("int8 kernels have 8 × 32 or 4 × 16 tiles"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::kernel::tests::check_kernel;

    /// The product through the shared nest on one thread (small enough for Miri): edge tiles
    /// in rows and columns, several depth blocks (`kc` = 8 of k = 42), per-row and per-column
    /// scales, against the scaled i64 product of the codes.
    #[test]
    fn gemm_matches_the_scaled_integer_product() {
        let (m, k, n) = (11, 42, 37);
        let mut rng = nanotensor_core::rng::Rng::new(9);
        let mut codes = |len: usize| -> Vec<i8> {
            (0..len)
                .map(|_| rng.uniform(-127.0, 127.0).round() as i8)
                .collect()
        };
        let (ca, cb) = (codes(m * k), codes(n * k));
        let rs: Vec<f32> = (0..m).map(|i| 0.5 + i as f32 / 8.0).collect();
        let pool = Pool::new(1).unwrap();
        for kernel in Kernel::all_supported() {
            let (mr, nr) = (kernel.mr(), kernel.nr());
            let mut csv: Vec<f32> = (0..n).map(|j| 1.0 + j as f32 / 16.0).collect();
            csv.resize(n.div_ceil(nr) * nr, 0.0);
            let b = PackedB::from_rows(&cb, n, k, nr);
            for kc in [8, 44] {
                let mut a = PackedA::default();
                a.pack(&ca, m, k, mr, kc);
                let mut c = vec![f32::NAN; m * n];
                let cs = ColScales {
                    values: &csv,
                    stride: 1,
                };
                gemm(&pool, kernel, &a, &rs, &b, cs, m, &mut c);
                for i in 0..m {
                    for j in 0..n {
                        let dot: i64 = (0..k)
                            .map(|q| ca[i * k + q] as i64 * cb[j * k + q] as i64)
                            .sum();
                        let want = dot as f64 * rs[i] as f64 * csv[j] as f64;
                        let got = c[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "{:?} kc {kc} ({i},{j}): {got} vs {want}",
                            kernel.kind()
                        );
                    }
                }
            }
        }
    }

    /// The adapter's plain [`GemmKernel::microkernel`] (the exact code product, no scales) on
    /// every int8 kernel of this CPU, against direct integer sums.
    #[test]
    fn int8_tiles_microkernel_is_the_exact_code_product() {
        let a = PackedA::default();
        let cs = ColScales {
            values: &[],
            stride: 0,
        };
        let to_a = |x: f64| x as i8;
        // B is stored offset-binary: code + 128.
        let to_b = |x: f64| ((x as i8) as u8) ^ 0x80;
        for kernel in Kernel::all_supported() {
            let rs: &[f32] = &[];
            match (kernel.mr(), kernel.nr()) {
                (8, 32) => {
                    let t = Int8Tiles::<8, 32> {
                        kernel,
                        a: &a,
                        rs,
                        cs,
                    };
                    check_kernel(t, to_a, to_b, |c| c as f64, 0.0);
                }
                _ => {
                    let t = Int8Tiles::<4, 16> {
                        kernel,
                        a: &a,
                        rs,
                        cs,
                    };
                    check_kernel(t, to_a, to_b, |c| c as f64, 0.0);
                }
            }
        }
    }
}
