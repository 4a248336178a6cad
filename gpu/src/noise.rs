//! Seeded timing noise for emulated devices, so that the controller's estimators see
//! something to estimate. The original emulator had none (prediction error was exactly
//! zero); [`NoiseModel::None`] reproduces that. Draws come from the project's one seeded
//! generator, [`clockwork_core::rng::Rng`], one stream per device, so runs are
//! reproducible from one seed. The clamp of the factor lives here and nowhere else: the
//! emulated devices of a worker and the simulator's devices (which are the same code,
//! [`crate::VirtualDevice`]) jitter alike.

use clockwork_core::rng::Rng;
use clockwork_core::Nanos;

/// How emulated durations deviate from the profile.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum NoiseModel {
    /// Exactly the profile's times (the original emulator).
    #[default]
    None,
    /// Multiply by `1 + N(0, rel_sigma²)`, e.g. `rel_sigma = 0.02` for 2 %.
    Normal {
        /// Relative standard deviation.
        rel_sigma: f64,
    },
    /// Multiply by a factor uniform in `[1 - rel, 1 + rel]`.
    Uniform {
        /// Relative half-width.
        rel: f64,
    },
}

/// Factors are clamped to this range so a wild draw never yields a zero or absurd time.
const MIN_FACTOR: f64 = 0.1;
const MAX_FACTOR: f64 = 10.0;

/// A noise model with its own generator: one per emulated device.
#[derive(Debug, Clone)]
pub struct Jitter {
    model: NoiseModel,
    rng: Rng,
}

impl Jitter {
    /// Jitter for device `device` of a run seeded with `seed` (each device gets its own
    /// stream, independent of how devices are spread over engine threads).
    pub fn new(model: NoiseModel, seed: u64, device: u32) -> Self {
        Self {
            model,
            rng: Rng::derive(seed, u64::from(device)),
        }
    }

    /// `base` with noise applied (never zero unless `base` is).
    pub fn apply(&mut self, base: Nanos) -> Nanos {
        let factor = match self.model {
            NoiseModel::None => return base,
            NoiseModel::Normal { rel_sigma } => 1.0 + rel_sigma * self.rng.normal(),
            NoiseModel::Uniform { rel } => self.rng.noise_factor(rel),
        };
        let factor = if factor.is_finite() {
            factor.clamp(MIN_FACTOR, MAX_FACTOR)
        } else {
            1.0
        };
        // `as` saturates for out-of-range floats; the factor is at most 10.
        Nanos((base.get() as f64 * factor).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_exact() {
        let mut j = Jitter::new(NoiseModel::None, 1, 0);
        assert_eq!(j.apply(Nanos(3_320_000)), Nanos(3_320_000));
    }

    #[test]
    fn same_seed_same_sequence_other_device_differs() {
        let m = NoiseModel::Normal { rel_sigma: 0.05 };
        let (mut a, mut b, mut c) = (
            Jitter::new(m, 7, 3),
            Jitter::new(m, 7, 3),
            Jitter::new(m, 7, 4),
        );
        let base = Nanos::from_millis(5);
        let xa: Vec<_> = (0..8).map(|_| a.apply(base)).collect();
        let xb: Vec<_> = (0..8).map(|_| b.apply(base)).collect();
        let xc: Vec<_> = (0..8).map(|_| c.apply(base)).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn uniform_stays_in_bounds_and_normal_has_the_right_spread() {
        let base = 1_000_000.0;
        let mut u = Jitter::new(NoiseModel::Uniform { rel: 0.1 }, 9, 0);
        for _ in 0..10_000 {
            let v = u.apply(Nanos(base as u64)).get() as f64;
            assert!((0.9 * base - 1.0..=1.1 * base + 1.0).contains(&v));
        }
        let mut n = Jitter::new(NoiseModel::Normal { rel_sigma: 0.05 }, 9, 0);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| n.apply(Nanos(base as u64)).get() as f64 / base)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 1.0).abs() < 0.005, "mean {mean}");
        assert!((sd - 0.05).abs() < 0.005, "sd {sd}");
    }

    #[test]
    fn wild_sigma_is_clamped_positive() {
        let mut n = Jitter::new(NoiseModel::Normal { rel_sigma: 50.0 }, 1, 0);
        for _ in 0..1000 {
            let v = n.apply(Nanos(1_000_000));
            assert!(v >= Nanos(100_000) && v <= Nanos(10_000_000));
        }
    }
}
