//! Cache-blocking parameters `mc`, `kc`, `nc` for the Goto/BLIS loop nest, chosen for Zen 4.
//!
//! The register block `MR × NR` belongs to each microkernel (see [`super::kernel`]); the cache
//! blocks below are shared defaults that a kernel may override through its
//! [`GemmKernel`](super::kernel::GemmKernel) constants.
//!
//! # The machine
//! The brief describes a Zen 4 core: 32 KiB L1d, 1 MiB L2, 32 MiB shared L3, one 512-bit FMA per
//! cycle (117 GFLOP/s f32 at 3.65 GHz). The core this was tuned on reports more: `lscpu` gives
//! 48 KiB L1d and 1 MiB L2 per core, `/proc/cpuinfo` lists `avx512_vp2intersect` (new in Zen 5),
//! and the AVX-512 microkernel alone on packed, cache-resident data sustains **253 GFLOP/s**
//! per core (`examples/blocked_timing.rs … kernel`, on-CPU time) — two full-width 512-bit FMAs
//! per cycle, i.e. a Zen 5 core. The parameters below suit both.
//!
//! # The reasoning (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication")
//! Inside LOOP 1 the microkernel reads one packed `MR × kc` micro-panel of A and one
//! `kc × NR` micro-panel of B; LOOP 1 walks down the A block with the *same* B micro-panel, and
//! LOOP 2 reuses the whole A block for every B micro-panel of the `nc` block.
//!
//! * **`kc`** — the classic rule keeps the B micro-panel (`kc · NR · 4` bytes) in L1, which with
//!   `NR = 32` means `kc ≤ 192` on 32 KiB. Measured here, the kernel runs at the same
//!   ~253 GFLOP/s for every `kc` from 96 to 1024: at 24 FMAs per depth step the kernel needs only
//!   176 bytes per 12 cycles (15 B/cycle), well inside L2's 64 B/cycle, so the B micro-panel may
//!   live in L2. What `kc` then buys is fewer passes over C (each depth block reloads and
//!   re-stores the whole C) and fewer packing restarts: the full driver at 1024³ went from
//!   ~160 GFLOP/s at `kc = 192` to ~175 at 512 and ~180 at 1024 (on-CPU time; 2048³ ~185-192
//!   for all `kc ≥ 256`). On 2 threads, where the two cores share the memory bus and meet at a
//!   fork-join after every depth block (a strided B is packed into one shared B~ per block),
//!   1024 beat 512 in interleaved runs: 2048³ +3.0 %, 1024³ +0.8 %, 1024 × 4096 · 4096 × 1024
//!   +2.5 %, SmolLM2 prefill +4 %; 512³ and 1 thread were unchanged. **`kc = 1024`**: the B
//!   micro-panel is 128 KiB (L2), the A micro-panel `12 · 1024 · 4` = 48 KiB, and C is revisited
//!   `k / 1024` times. `kc` is also rebalanced per call so the last depth block is not a sliver
//!   (`k = 1536` → two blocks of 768).
//! * **`mc`** — the packed A block `mc · kc · 4` bytes is reused for every B micro-panel, so it
//!   must stay in **L2** next to the B micro-panel in flight: `mc = 144` gives 576 KiB, a bit
//!   over half of the 1 MiB L2, leaving room for the B micro-panel (128 KiB) and C lines.
//!   Measured `mc` from 48 to 384 changed the driver by less than the noise (±5 %; at `kc` =
//!   1024, 72–240 likewise). `mc` is a multiple of every kernel's `MR` (12, 6, 4).
//! * **`nc`** — the packed B block `kc · nc · 4` bytes is reused by every A block, so it should
//!   stay in **L3**: `nc = 4096` gives up to 16 MiB at `kc` = 1024, half the shared 32 MiB L3,
//!   so both threads' A blocks and the C stream fit beside it. `nc` from 512 to 4096 measured the same
//!   within noise; the larger value packs A fewer times for wide B.

/// Rows of A per packed block (LOOP 3 step). Must be a multiple of every `MR`.
pub const MC: usize = 144;
/// Depth per packed panel (LOOP 4 step).
pub const KC: usize = 1024;
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
