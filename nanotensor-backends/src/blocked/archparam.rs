//! Cache-blocking parameters `mc`, `kc`, `nc` for the Goto/BLIS loop nest.
//!
//! The register block `MR × NR` belongs to each microkernel (see [`super::kernel`]); the cache
//! blocks below are shared defaults that a kernel may override through its
//! [`GemmKernel`](super::kernel::GemmKernel) constants.
//!
//! # The target
//! The parameters follow cache sizes, not one CPU model: they suit a core with 32–48 KiB of L1d,
//! 1–2 MiB of private L2 and a shared L3 of tens of MiB, as on recent x86-64 server cores with
//! AVX-512. A core that issues one or two 512-bit FMAs per cycle needs, at the AVX-512 kernel's
//! 24 FMAs per depth step, well under L2's bandwidth to feed its B micro-panel (see `kc`).
//!
//! # The reasoning (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication")
//! Inside LOOP 1 the microkernel reads one packed `MR × kc` micro-panel of A and one
//! `kc × NR` micro-panel of B; LOOP 1 walks down the A block with the *same* B micro-panel, and
//! LOOP 2 reuses the whole A block for every B micro-panel of the `nc` block.
//!
//! * **`kc`** — the classic rule keeps the B micro-panel (`kc · NR · 4` bytes) in L1, which with
//!   `NR = 32` means `kc ≤ 192` on 32 KiB. But the kernel's demand is small: a depth step's 24
//!   FMAs (12 cycles at two 512-bit FMAs per cycle) read 176 bytes (two 64-byte vectors of B,
//!   twelve 4-byte values of A), about 15 B per cycle, well inside the ~64 B per cycle an L2
//!   delivers; so the B micro-panel may live in L2 and the kernel's speed does not depend on
//!   `kc`. What a larger `kc` buys is fewer passes over C (each depth block reloads and
//!   re-stores the whole C), fewer packing restarts and, with several threads, fewer
//!   fork-joins (the threads meet after every depth block when a strided B is packed into one
//!   shared B~ per block). **`kc = 1024`**: the B micro-panel is 128 KiB (L2), the A
//!   micro-panel `12 · 1024 · 4` = 48 KiB, and C is revisited `k / 1024` times. `kc` is also
//!   rebalanced per call so the last depth block is not a sliver (`k = 1536` → two blocks of
//!   768).
//! * **`mc`** — the packed A block `mc · kc · 4` bytes is reused for every B micro-panel, so it
//!   must stay in **L2** next to the B micro-panel in flight: `mc = 144` gives 576 KiB, a bit
//!   over half of a 1 MiB L2, leaving room for the B micro-panel (128 KiB) and C lines. The
//!   driver is not sensitive to `mc` within a wide range around this value. `mc` is a multiple
//!   of every kernel's `MR` (12, 6, 4).
//! * **`nc`** — the packed B block `kc · nc · 4` bytes is reused by every A block, so it should
//!   stay in **L3**: `nc = 4096` gives up to 16 MiB at `kc` = 1024, half of a 32 MiB L3, so
//!   both threads' A blocks and the C stream fit beside it. A large `nc` packs A fewer times
//!   for a wide B.
//!
//! # Other element types
//! The budgets above are bytes of cache. An f64 vector holds half the lanes, so each byte of a
//! B micro-panel feeds half as many multiply-adds as in f32 and the kernel asks twice the
//! bytes per FMA of wherever B lives: the f64 kernels (12 × 16 and 6 × 8 tiles) therefore keep
//! their B micro-panel in **L1**, with **`kc = 256`** ([`KC_F64`]): `256 · 16 · 8` = 32 KiB of
//! a 48 KiB L1d, the A micro-panel streaming past it (24 KiB); the A block is then
//! `144 · 256 · 8` = 288 KiB (L2) and the B block `256 · 4096 · 8` = 8 MiB (L3), and C is
//! revisited `k / 256` times, still a small share of the `k`-deep product. `mc` and `nc`
//! stay. The bf16 kernel packs pairs of 2-byte values (`KGROUP` = 2): as many bytes per depth
//! pair as f32 per depth step, so it takes twice the f32 depth ([`KC_BF16`]) for the same
//! bytes per block.

/// Rows of A per packed block (LOOP 3 step). Must be a multiple of every `MR`.
pub const MC: usize = 144;
/// Depth per packed panel (LOOP 4 step).
pub const KC: usize = 1024;
/// Depth per packed panel for 8-byte elements (f64): the B micro-panel in L1 (see above).
pub const KC_F64: usize = KC / 4;
/// Depth per packed panel for 2-byte elements packed in pairs (bf16): twice [`KC`], the same
/// bytes.
pub const KC_BF16: usize = 2 * KC;
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
        assert_eq!(balanced_block(576, 512, 1), 288);
        assert_eq!(balanced_block(1536, KC, 1), 768);
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
