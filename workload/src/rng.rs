//! Seeded randomness. Every generator draws from its own [`Xoshiro256PlusPlus`] stream,
//! derived from the workload seed and a stream number, so that adding a generator to a
//! mix never perturbs the arrivals of another, and the same seed always gives the same
//! arrivals on every platform.

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp1};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The PRNG of every generator.
pub(crate) type WorkloadRng = Xoshiro256PlusPlus;

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sub-seed for stream `stream` of `seed`.
pub(crate) const fn sub_seed(seed: u64, stream: u64) -> u64 {
    mix64(seed ^ mix64(stream.wrapping_add(0x5DEE_CE66_D1CE_4E5B)))
}

/// The PRNG of stream `stream` of `seed`.
pub(crate) fn stream_rng(seed: u64, stream: u64) -> WorkloadRng {
    WorkloadRng::seed_from_u64(sub_seed(seed, stream))
}

/// A standard exponential variate (mean 1).
pub(crate) fn exp1(rng: &mut WorkloadRng) -> f64 {
    Exp1.sample(rng)
}

/// A uniform variate in `[0, 1)`.
pub(crate) fn unit(rng: &mut WorkloadRng) -> f64 {
    rng.random::<f64>()
}
