//! Seeded random weights in a block format, for tests, benchmarks and `nanotensor matmul
//! --backend quant --format …`: every code byte uniformly random (so every bit pattern of the
//! packed fields occurs), every f16 scale field a finite value of a realistic size.

use half::f16;
use nanotensor_core::rng::Rng;
use nanotensor_core::{BlockWeight, Error, QuantFormat, Result};

/// `rows · cols / block_values` random blocks of `fmt` (`cols` a whole number of blocks),
/// row after row, and the checked [`BlockWeight`] over them is `BlockWeight::new(name, fmt, rows,
/// cols, &bytes)`.
///
/// Scales: `d` uniform in `[0.5, 1.5]·2⁻⁶` (legacy), `2⁻⁹` (k-quants, whose 6-bit sub-block
/// scales multiply it; Q6_K's signed 8-bit ones `2⁻¹²`); `m`/`dmin` of either sign, of the same
/// size. Values then have magnitudes around 0.1, as a trained model's do.
///
/// # Errors
/// [`Error::InvalidShape`] for a zero dimension or `cols` not a whole number of blocks;
/// [`Error::Overflow`] for a size beyond `usize`.
pub fn random_blocks(fmt: QuantFormat, rows: usize, cols: usize, seed: u64) -> Result<Vec<u8>> {
    if rows == 0 {
        return Err(Error::invalid_shape(
            "random_blocks",
            &[rows, cols],
            "no rows",
        ));
    }
    let len = fmt
        .row_bytes(cols)?
        .checked_mul(rows)
        .ok_or_else(|| Error::overflow("random_blocks", fmt.name(), "bytes"))?;
    let mut rng = Rng::new(seed);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let base = match fmt {
        QuantFormat::Q4_K | QuantFormat::Q5_K => 2f64.powi(-9),
        QuantFormat::Q6_K => 2f64.powi(-12),
        _ => 2f64.powi(-6),
    };
    for blk in bytes.chunks_exact_mut(fmt.block_bytes()) {
        for (i, &at) in fmt.scale_offsets().iter().enumerate() {
            let mut v = base * rng.uniform(0.5, 1.5);
            // The second field (`m`, `dmin`) takes either sign.
            if i == 1 && rng.next_u64() & 1 == 1 {
                v = -v;
            }
            blk[at..at + 2].copy_from_slice(&f16::from_f64(v).to_bits().to_le_bytes());
        }
    }
    debug_assert!(BlockWeight::new("random", fmt, rows, cols, &bytes).is_ok());
    Ok(bytes)
}
