//! Picking the next token from logits: greedy argmax, or sampling with temperature, top-k and
//! top-p (nucleus) from a seeded generator, so a `--seed` reproduces a run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How tokens are picked. `temperature == 0` is greedy (argmax; the first of equal maxima,
/// as torch's `argmax`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities sum to at least `top_p`; 1 keeps all.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("--temperature must be ≥ 0 and finite, got {0}")]
    Temperature(f32),
    #[error("--top-p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("logits contain NaN")]
    NaN,
    #[error("empty logits row")]
    Empty,
}

pub struct Sampler {
    cfg: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(cfg: Sampling) -> Result<Sampler, SampleError> {
        if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
            return Err(SampleError::Temperature(cfg.temperature));
        }
        if !(cfg.top_p > 0.0 && cfg.top_p <= 1.0) {
            return Err(SampleError::TopP(cfg.top_p));
        }
        Ok(Sampler {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        })
    }

    pub fn is_greedy(&self) -> bool {
        self.cfg.temperature == 0.0
    }

    /// The next token for one row of logits.
    pub fn pick(&mut self, logits: &[f32]) -> Result<usize, SampleError> {
        if logits.is_empty() {
            return Err(SampleError::Empty);
        }
        if logits.iter().any(|v| v.is_nan()) {
            return Err(SampleError::NaN);
        }
        if self.is_greedy() {
            return Ok(argmax(logits));
        }
        // Most likely first; equal logits keep index order.
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.cfg.top_k > 0 {
            order.truncate(self.cfg.top_k);
        }
        let t = self.cfg.temperature as f64;
        let top = logits[order[0]] as f64;
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - top) / t).exp())
            .collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.cfg.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    acc += p;
                    acc >= self.cfg.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        for (p, &i) in probs.iter().zip(&order) {
            if u < *p {
                return Ok(i);
            }
            u -= p;
        }
        Ok(*order.last().expect("at least one token kept"))
    }
}

/// Index of the largest value, the first of equal ones.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(Sampling::default()).unwrap();
        assert_eq!(s.pick(&[0.1, 3.0, -1.0, 3.0]).unwrap(), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(Sampling {
            temperature: 5.0,
            top_k: 1,
            ..Default::default()
        })
        .unwrap();
        for _ in 0..20 {
            assert_eq!(s.pick(&[0.0, 0.5, 0.4]).unwrap(), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus_only() {
        // Probabilities ≈ 0.665, 0.245, 0.090: top_p 0.8 keeps the first two.
        let logits = [2.0f32, 1.0, 0.0];
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 0.8,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let mut seen = [0usize; 3];
        for _ in 0..2000 {
            seen[s.pick(&logits).unwrap()] += 1;
        }
        assert_eq!(seen[2], 0, "{seen:?}");
        // Renormalised over the two kept: 0.731 / 0.269.
        let frac = seen[0] as f64 / 2000.0;
        assert!((frac - 0.731).abs() < 0.04, "{seen:?}");
    }

    #[test]
    fn sampling_follows_softmax_and_the_seed_reproduces() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 0.25, 0.75 at T = 1
        let cfg = Sampling {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let run = || {
            let mut s = Sampler::new(cfg).unwrap();
            (0..4000)
                .map(|_| s.pick(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let frac = a.iter().filter(|&&i| i == 1).count() as f64 / a.len() as f64;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
    }

    #[test]
    fn bad_settings_and_nan_are_refused() {
        assert!(Sampler::new(Sampling {
            temperature: -1.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(Sampling {
            top_p: 0.0,
            ..Default::default()
        })
        .is_err());
        let mut s = Sampler::new(Sampling::default()).unwrap();
        assert!(s.pick(&[0.0, f32::NAN]).is_err());
    }
}
