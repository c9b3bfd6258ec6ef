//! Choosing the next token from the logits: greedy, temperature, top-k, top-p.
//!
//! With temperature `T = 0` the sampler is greedy: the arg-max, ties broken towards the lowest
//! id (so results do not depend on iteration order). Otherwise it draws from
//!
//! `p_i ∝ exp((z_i − max z) / T)`
//!
//! restricted first to the `k` most likely tokens (top-k) and then to the smallest set of most
//! likely tokens whose probability reaches `p` (top-p, "nucleus", Holtzman et al., 2020). Draws
//! come from the seeded [`Rng`], so a seed reproduces a run on every platform.

use nanotensor_core::error::{Error, Result};
use nanotensor_core::rng::Rng;

const OP: &str = "sampler";

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// `T ≥ 0`; 0 means greedy.
    pub temperature: f32,
    /// Keep only the `k ≥ 1` most likely tokens; `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest most-likely set with probability mass `≥ p`, `p ∈ (0, 1]`; `None`
    /// (or 1) keeps all.
    pub top_p: Option<f32>,
    /// Seed of the random draws.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Checks the ranges: finite `T ≥ 0`, `k ≥ 1`, `p ∈ (0, 1]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad setting.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::invalid_arg(
                OP,
                format!(
                    "temperature must be a finite number ≥ 0, got {}",
                    self.temperature
                ),
            ));
        }
        if self.top_k == Some(0) {
            return Err(Error::invalid_arg(OP, "top-k must be at least 1"));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::invalid_arg(
                    OP,
                    format!("top-p must lie in (0, 1], got {p}"),
                ));
            }
        }
        Ok(())
    }
}

/// A sampler: the settings, the random stream, and a reusable candidate buffer.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: Rng,
    /// `(probability, id)` candidates, reused between steps.
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler with validated settings.
    ///
    /// # Errors
    /// See [`SamplerConfig::validate`].
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Sampler {
            config,
            rng: Rng::new(config.seed),
            candidates: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Picks the next token id from one row of logits.
    ///
    /// # Errors
    /// Empty logits; NaN logits ([`Error::NonFinite`]).
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::invalid_arg(OP, "no logits to sample from"));
        }
        if let Some(i) = logits.iter().position(|z| z.is_nan()) {
            return Err(Error::NonFinite {
                op: OP,
                operand: "logits",
                index: i,
                value: f64::NAN,
            });
        }
        if self.config.temperature == 0.0 || self.config.top_k == Some(1) {
            return Ok(argmax(logits));
        }
        Ok(self.draw(logits))
    }

    fn draw(&mut self, logits: &[f32]) -> u32 {
        let inv_t = 1.0 / f64::from(self.config.temperature);
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z));
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &z)| {
            (
                ((f64::from(z) - f64::from(max)) * inv_t).exp() as f32,
                i as u32,
            )
        }));
        // Most likely first; equal probabilities by id, so the order is deterministic.
        let by_prob = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let mut n = c.len();
        if let Some(k) = self.config.top_k.filter(|&k| k < n) {
            c.select_nth_unstable_by(k - 1, by_prob);
            n = k;
        }
        let kept = &mut c[..n];
        kept.sort_unstable_by(by_prob);
        let total: f64 = kept.iter().map(|&(p, _)| f64::from(p)).sum();
        if let Some(p) = self.config.top_p.filter(|&p| p < 1.0) {
            // Smallest prefix whose mass reaches p·total.
            let target = f64::from(p) * total;
            let mut mass = 0.0;
            let mut cut = kept.len();
            for (i, &(q, _)) in kept.iter().enumerate() {
                mass += f64::from(q);
                if mass >= target {
                    cut = i + 1;
                    break;
                }
            }
            n = cut;
        }
        let kept = &c[..n];
        let mass: f64 = kept.iter().map(|&(p, _)| f64::from(p)).sum();
        let u = self.rng.next_f64() * mass;
        let mut acc = 0.0;
        for &(p, id) in kept {
            acc += f64::from(p);
            if u < acc {
                return id;
            }
        }
        kept[kept.len() - 1].1
    }
}

/// Index of the largest value; the lowest index among equal maxima.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cfg: SamplerConfig, logits: &[f32], draws: usize) -> Vec<usize> {
        let mut s = Sampler::new(cfg).unwrap();
        let mut n = vec![0; logits.len()];
        for _ in 0..draws {
            n[s.sample(logits).unwrap() as usize] += 1;
        }
        n
    }

    #[test]
    fn greedy_takes_the_max_and_breaks_ties_low() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]).unwrap(), 1);
        assert_eq!(s.sample(&[1.0, 5.0, 5.0, 5.0]).unwrap(), 1);
        assert_eq!(s.sample(&[f32::NEG_INFINITY, -3.0]).unwrap(), 1);
        assert!(s.sample(&[0.0, f32::NAN]).is_err());
        assert!(s.sample(&[]).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "statistical: tens of thousands of draws")]
    fn temperature_one_follows_softmax() {
        // Logits ln[1, 2, 5]: probabilities 1/8, 2/8, 5/8.
        let z = [1f32.ln(), 2f32.ln(), 5f32.ln()];
        let cfg = SamplerConfig {
            temperature: 1.0,
            seed: 7,
            ..Default::default()
        };
        let n = counts(cfg, &z, 40_000);
        for (c, p) in n.iter().zip([0.125, 0.25, 0.625]) {
            let f = *c as f64 / 40_000.0;
            assert!((f - p).abs() < 0.01, "{n:?}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "statistical: tens of thousands of draws")]
    fn temperature_sharpens_and_flattens() {
        // T = 0.5 squares the odds: ln[1, 2] → probabilities 1/5, 4/5.
        let z = [0.0, 2f32.ln()];
        let sharp = SamplerConfig {
            temperature: 0.5,
            seed: 3,
            ..Default::default()
        };
        let n = counts(sharp, &z, 20_000);
        assert!((n[1] as f64 / 20_000.0 - 0.8).abs() < 0.015, "{n:?}");
        // T = 100 makes them nearly uniform.
        let flat = SamplerConfig {
            temperature: 100.0,
            ..sharp
        };
        let n = counts(flat, &z, 20_000);
        assert!((n[1] as f64 / 20_000.0 - 0.5).abs() < 0.02, "{n:?}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "statistical: tens of thousands of draws")]
    fn top_k_keeps_only_the_k_best() {
        let z = [0.0, 3.0, 1.0, 2.0, 2.5];
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: Some(2),
            seed: 11,
            ..Default::default()
        };
        let n = counts(cfg, &z, 5_000);
        assert_eq!((n[0], n[2], n[3]), (0, 0, 0), "{n:?}");
        // Renormalised over {3.0, 2.5}: p(1) = 1 / (1 + e^-0.5) ≈ 0.6225.
        assert!((n[1] as f64 / 5_000.0 - 0.6225).abs() < 0.03, "{n:?}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "statistical: tens of thousands of draws")]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (logits ln p).
        let z = [0.5f32.ln(), 0.3f32.ln(), 0.15f32.ln(), 0.05f32.ln()];
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_p: Some(0.75),
            seed: 5,
            ..Default::default()
        };
        // 0.5 < 0.75 ≤ 0.8: the nucleus is {0, 1}, renormalised to 5/8, 3/8.
        let n = counts(cfg, &z, 20_000);
        assert_eq!((n[2], n[3]), (0, 0), "{n:?}");
        assert!((n[0] as f64 / 20_000.0 - 0.625).abs() < 0.015, "{n:?}");
        // p small enough that only the top token survives.
        let tiny = SamplerConfig {
            top_p: Some(0.1),
            ..cfg
        };
        assert_eq!(counts(tiny, &z, 100)[0], 100);
    }

    #[test]
    fn same_seed_same_tokens() {
        let z: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let cfg = SamplerConfig {
            temperature: 0.8,
            top_k: Some(20),
            top_p: Some(0.9),
            seed: 42,
        };
        // 30 draws per run natively, 10 under Miri (about a tenth of a second per draw there).
        let draws = if cfg!(miri) { 10 } else { 30 };
        let run = |cfg| {
            let mut s = Sampler::new(cfg).unwrap();
            (0..draws)
                .map(|_| s.sample(&z).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(cfg), run(cfg));
        assert_ne!(run(cfg), run(SamplerConfig { seed: 43, ..cfg }));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        for (t, k, p) in [
            (-0.1, None, None),
            (f32::NAN, None, None),
            (f32::INFINITY, None, None),
            (1.0, Some(0), None),
            (1.0, None, Some(0.0)),
            (1.0, None, Some(1.5)),
            (1.0, None, Some(f32::NAN)),
        ] {
            let cfg = SamplerConfig {
                temperature: t,
                top_k: k,
                top_p: p,
                seed: 0,
            };
            assert!(
                matches!(Sampler::new(cfg), Err(Error::InvalidArgument { .. })),
                "{cfg:?}"
            );
        }
    }
}
