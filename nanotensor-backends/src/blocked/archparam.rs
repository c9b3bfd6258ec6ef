//! Cache-blocking parameters `mc`, `kc`, `nc` for the Goto/BLIS loop nest, chosen for Zen 4.
//!
//! The register block `MR × NR` belongs to each microkernel (see [`super::kernel`]); the cache
//! blocks below are shared defaults that a kernel may override through its
//! [`GemmKernel`](super::kernel::GemmKernel) constants.
//!
//! # The machine
//! Zen 4 per core: 32 KiB L1d (8-way), 1 MiB L2 (8-way), 32 MiB L3 shared by the CCD; two
//! 256-bit FMA pipes, so one 512-bit FMA per cycle (32 flop/cycle in f32: 117 GFLOP/s at
//! 3.65 GHz). AMD's Zen 4 optimisation guide and the `lscpu` of this machine give these sizes.
//!
//! # The reasoning (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication")
//! Inside LOOP 1 the microkernel reads one packed `MR × kc` micro-panel of A and one
//! `kc × NR` micro-panel of B. LOOP 1 walks down the A block with the *same* B micro-panel, so
//! that B micro-panel must stay in **L1** while A micro-panels stream through it:
//!
//! * **`kc`** — the B micro-panel is `kc · NR · 4` bytes; with the AVX-512 kernel's `NR = 32`
//!   and `kc = 256` that is 32 KiB. With `kc = 192` it is 24 KiB, which leaves a quarter of L1 for
//!   the streaming A micro-panel (`12 · 192 · 4` = 9 KiB) — an A panel is touched once per tile,
//!   so it can live partly in L2 without stalling (the hardware prefetcher follows the linear
//!   packed layout). A larger `kc` amortises the `MR × NR` C tile load/store over more FMAs:
//!   at 192 the C traffic is `1/192` of the A/B traffic. `kc` is also rebalanced per call so the
//!   last depth block is not a sliver (e.g. `k = 576` → three blocks of 192).
//! * **`mc`** — the packed A block `mc · kc · 4` bytes is reused for every B micro-panel of the
//!   `nc` block, so it must stay in **L2** together with the B micro-panel in flight:
//!   `mc = 192` gives `192 · 192 · 4` = 144 KiB, a seventh of L2, leaving room for the C tiles
//!   being written and for the second hardware thread's share. `mc` is a multiple of every
//!   kernel's `MR` we ship (12, 6, 4, 8).
//! * **`nc`** — the packed B block `kc · nc · 4` bytes is reused by every A block, so it should
//!   stay in **L3**: `nc = 4096` gives 3 MiB, about a tenth of the shared 32 MiB L3, so both
//!   threads' A blocks and the C stream fit beside it. Larger `nc` only matters for very wide
//!   matrices; smaller would repack A more often.
//!
//! These values were checked against measurements of the microkernel on packed data and of the
//! whole driver (`benches/`); see the README benchmark table.

/// Rows of A per packed block (LOOP 3 step). Must be a multiple of every `MR`.
pub const MC: usize = 192;
/// Depth per packed panel (LOOP 4 step).
pub const KC: usize = 192;
/// Columns of B per packed block (LOOP 5 step). Must be a multiple of every `NR`.
pub const NC: usize = 4096;

/// Splits `len` into `ceil(len / max)` nearly equal blocks whose size is a multiple of `align`,
/// and returns that block size (at least `align`, at most `max` rounded up to `align`).
///
/// Balanced blocks avoid a last sliver block (e.g. `k = 576, kc = 256` would be 256+256+64;
/// balanced it is 192+192+192), which would waste the packing and C traffic of a whole pass.
pub fn balanced_block(len: usize, max: usize, align: usize) -> usize {
    let align = align.max(1);
    let max = max.max(align);
    let blocks = len.div_ceil(max).max(1);
    len.div_ceil(blocks).div_ceil(align) * align
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_blocks_cover_without_slivers() {
        assert_eq!(balanced_block(576, 256, 1), 192);
        assert_eq!(balanced_block(1024, 192, 1), 171);
        assert_eq!(balanced_block(5, 192, 4), 8);
        assert_eq!(balanced_block(1, 192, 12), 12);
        assert_eq!(balanced_block(1000, 192, 12), 168);
        for len in 1..600 {
            let b = balanced_block(len, 192, 12);
            assert!(
                b.is_multiple_of(12) && b <= 192 && b * len.div_ceil(192) >= len,
                "{len}"
            );
        }
    }
}
