//! Seeded timing noise for emulated devices, so that the controller's estimators see
//! something to estimate. The original emulator had none (prediction error was exactly
//! zero); [`NoiseModel::None`] reproduces that. A small SplitMix64 generator keeps runs
//! reproducible from one seed without a dependency.

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

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for timing jitter.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        // 53 random mantissa bits.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A noise model with its own generator: one per emulated device.
#[derive(Debug, Clone)]
pub struct Jitter {
    model: NoiseModel,
    rng: SplitMix64,
}

impl Jitter {
    /// Jitter for device `device` of a run seeded with `seed` (each device gets its own
    /// stream, independent of how devices are spread over engine threads).
    pub fn new(model: NoiseModel, seed: u64, device: u32) -> Self {
        let mut mix = SplitMix64::new(seed ^ (u64::from(device) << 32 | u64::from(device)));
        let stream = mix.next_u64();
        Self {
            model,
            rng: SplitMix64::new(stream),
        }
    }

    /// `base` with noise applied (never zero unless `base` is).
    pub fn apply(&mut self, base: Nanos) -> Nanos {
        let factor = match self.model {
            NoiseModel::None => return base,
            NoiseModel::Normal { rel_sigma } => 1.0 + rel_sigma * self.rng.next_normal(),
            NoiseModel::Uniform { rel } => 1.0 + rel * (2.0 * self.rng.next_f64() - 1.0),
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
