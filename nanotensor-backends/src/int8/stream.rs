//! Preparing a weight chunk by chunk ([`Backend::prepare_rows`]): the `f32` matrix never
//! exists whole, only one chunk of rows of it and its codes, which go straight into the packed
//! panels.
//!
//! The codes and scales are those [`Backend::prepare`] computes from the same matrix (the
//! conformance harness checks it): a per-row scale depends on its row alone, so per-row
//! weights take one pass over the rows. A per-tensor scale needs a statistic of the whole
//! tensor before any row is quantized, so `fill` is asked for every row more than once: from
//! `max |W|` (the maximum over the chunks' maxima), a first pass, then the pass that quantizes;
//! with [`Clip::Mse`], the clip search's histogram and the exact errors of its two thresholds
//! are summed over the chunks in order (`MseSearch`, `squared_error_from`), two more passes
//! giving bit for bit the whole tensor's answer.
//!
//! [`Backend::prepare_rows`]: nanotensor_core::Backend::prepare_rows
//! [`Backend::prepare`]: nanotensor_core::Backend::prepare

use nanotensor_core::clip::{squared_error_from, MseSearch};
use nanotensor_core::quant::scale_for_max_abs;
use nanotensor_core::{Clip, Element, Error, Granularity, Result};

use super::pack::PackedB;
use super::{quantize, Int8Backend, Int8Weight};
use nanotensor_core::element::f32_values;

/// Values of `W` one chunk holds (about 4 MiB of `f32`): large enough that the workers of the
/// quantizer each get a long run, small next to any weight worth streaming.
const CHUNK_VALUES: usize = 1 << 20;

/// Rows per chunk for a weight of `k` columns: a multiple of the panel width `nr` (so a chunk
/// fills whole panels), at least one panel.
fn chunk_rows(k: usize, nr: usize) -> usize {
    (CHUNK_VALUES / k.max(1) / nr).max(1) * nr
}

impl Int8Backend {
    /// [`Backend::prepare_rows_impl`](nanotensor_core::Backend::prepare_rows_impl) for int8
    /// (see the [module docs](self)).
    pub(super) fn prepare_streamed<T: Element>(
        &self,
        shape: [usize; 2],
        fill: &mut nanotensor_core::backend::FillRows<'_, T>,
    ) -> Result<Int8Weight<T>> {
        let [n, k] = shape;
        let nr = self.kernel.nr();
        let rows = chunk_rows(k, nr).min(n);
        let mut buf = vec![T::default(); rows * k];
        let chunks = (0..n).step_by(rows).map(|r0| r0..(r0 + rows).min(n));
        let level = self.level;
        // A pass over every row, chunk by chunk, calling `f` on each chunk as f32.
        let mut pass = |f: &mut dyn FnMut(&[f32])| -> Result<()> {
            for range in chunks.clone() {
                let (r0, b) = (range.start, &mut buf[..range.len() * k]);
                fill(range, b)?;
                let wf = f32_values(b);
                check_fits(level, &wf, r0 * k)?;
                f(&wf);
            }
            Ok(())
        };
        let tensor_scale = match self.weights {
            Granularity::PerTensor => {
                let mut max = 0f32;
                pass(&mut |w| max = max.max(quantize::max_abs(level, w)))?;
                let threshold = match (self.clip, MseSearch::new(n * k, max)) {
                    (Clip::Mse, Some(mut search)) => {
                        // `mse_threshold`'s steps, each a pass: the histogram (and the exact
                        // error of `max`), then the exact error of the histogram's candidate.
                        let at_max = scale_for_max_abs(max);
                        let mut err_max = 0.0;
                        pass(&mut |w| {
                            search.add(w);
                            err_max = squared_error_from(err_max, w, at_max);
                        })?;
                        let candidate = search.candidate();
                        let at_candidate = scale_for_max_abs(candidate);
                        let mut err = 0.0;
                        pass(&mut |w| err = squared_error_from(err, w, at_candidate))?;
                        if err < err_max {
                            candidate
                        } else {
                            max
                        }
                    }
                    _ => max,
                };
                Some(scale_for_max_abs(threshold))
            }
            Granularity::PerRow => None,
        };
        let mut packed = PackedB::empty(n, k, nr);
        let mut scales = Vec::with_capacity(n);
        let mut codes = Vec::new();
        for range in chunks {
            let (r0, m) = (range.start, range.len());
            let b = &mut buf[..m * k];
            fill(range, b)?;
            let wf = f32_values(b);
            check_fits(level, &wf, r0 * k)?;
            let s: Vec<f32> = match (tensor_scale, self.clip) {
                (Some(s), _) => vec![s; m],
                (None, Clip::AbsMax) => wf
                    .chunks(k)
                    .map(|r| scale_for_max_abs(quantize::max_abs(level, r)))
                    .collect(),
                (None, Clip::Mse) => wf.chunks(k).map(|r| Clip::Mse.scale(r)).collect(),
            };
            codes.clear();
            quantize::quantize_rows_with_scales(level, Some(&self.pool), &wf, m, k, &s, &mut codes);
            packed.write_rows(&codes, r0);
            scales.extend_from_slice(&s);
        }
        Ok(self.weight(packed, &scales, shape))
    }
}

/// `fill` has refused NaN/∞ in the chunk, but a finite f64 can still overflow its conversion to
/// f32, which no int8 scale can represent: refused as [`Backend::prepare`](nanotensor_core::Backend::prepare) refuses it (`start`
/// is the chunk's first index in the weight).
fn check_fits(level: quantize::Level, wf: &[f32], start: usize) -> Result<()> {
    if quantize::all_finite(level, wf) {
        return Ok(());
    }
    let p = wf.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(Error::invalid_arg(
        "prepare",
        format!(
            "value at index {} does not fit the f32 range of the int8 scales",
            start + p
        ),
    ))
}
