//! The simulated controller↔worker links: a fixed one-way delay, plus, when asked, a
//! random extra delay per message, drawn from an exponential distribution of a given
//! mean (seeded, so a run stays deterministic). Real links scatter like that: on a
//! shared 2-core host the return delays had a median of 76–112 µs and a p99 of
//! 190–376 µs (docs/benchmarks.md, session 13). Each link delivers in order in each
//! direction, as TCP does: a message never overtakes the one sent before it.

use clockwork_core::rng::Rng;
use clockwork_core::Nanos;
use std::collections::HashMap;

/// The network's stream of the run's seed ([`Rng::derive`]), apart from the devices'.
const STREAM: u64 = 0x4e45_5457_4f52_4b00;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    ToWorker,
    ToController,
}

/// Delays of every link.
#[derive(Debug)]
pub(crate) struct Network {
    base: Nanos,
    jitter_mean: Nanos,
    rng: Rng,
    /// The latest arrival scheduled on each (worker, direction).
    last: HashMap<(u32, Direction), Nanos>,
}

impl Network {
    /// Links of one-way delay `base`, plus an exponential extra of mean `jitter_mean`
    /// (none when zero), seeded by `seed`.
    pub(crate) fn new(base: Nanos, jitter_mean: Nanos, seed: u64) -> Self {
        Self {
            base,
            jitter_mean,
            rng: Rng::derive(seed, STREAM),
            last: HashMap::new(),
        }
    }

    /// When a message sent at `now` on `worker`'s link in `direction` arrives.
    pub(crate) fn arrival(&mut self, now: Nanos, worker: u32, direction: Direction) -> Nanos {
        let extra = if self.jitter_mean == Nanos::ZERO {
            Nanos::ZERO
        } else {
            Nanos(self.rng.exp(self.jitter_mean.get() as f64) as u64)
        };
        let last = self.last.entry((worker, direction)).or_insert(Nanos::ZERO);
        let at = (now + self.base + extra).max(*last);
        *last = at;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_link_adds_its_delay_and_nothing_else() {
        let mut n = Network::new(Nanos(150), Nanos::ZERO, 1);
        for t in [0, 10, 10, 500] {
            assert_eq!(n.arrival(Nanos(t), 0, Direction::ToWorker), Nanos(t + 150));
        }
    }

    #[test]
    fn jitter_scatters_delays_around_its_mean_and_keeps_each_link_in_order() {
        let mean = 40_000.0;
        let mut n = Network::new(Nanos(50_000), Nanos(mean as u64), 7);
        let mut delays = Vec::new();
        let mut prev = Nanos::ZERO;
        for i in 0..20_000u64 {
            // Sent every µs: far closer than the jitter, so order has to be kept.
            let now = Nanos(i * 1_000);
            let at = n.arrival(now, 3, Direction::ToController);
            assert!(at >= prev, "message {i} overtook the one before it");
            prev = at;
            delays.push((at - now).get() as f64);
        }
        assert!(delays.iter().all(|&d| d >= 50_000.0));
        // Widely spread messages see the exponential itself: mean about `mean` above
        // the base, and a p99 about 4.6 times the mean above it.
        let mut n = Network::new(Nanos(50_000), Nanos(mean as u64), 7);
        let mut extra: Vec<f64> = (0..20_000u64)
            .map(|i| {
                let now = Nanos(i * 10_000_000);
                (n.arrival(now, 0, Direction::ToWorker) - now).get() as f64 - 50_000.0
            })
            .collect();
        let avg = extra.iter().sum::<f64>() / extra.len() as f64;
        assert!((avg / mean - 1.0).abs() < 0.05, "mean extra {avg}");
        extra.sort_by(f64::total_cmp);
        let p99 = extra[extra.len() * 99 / 100];
        assert!((p99 / mean - 4.6).abs() < 0.4, "p99 extra {p99}");
        // Another seed, other delays; the same seed, the same ones.
        let draw = |seed| {
            let mut n = Network::new(Nanos(0), Nanos(1_000), seed);
            (0..8)
                .map(|i| n.arrival(Nanos(i * 1_000_000), 0, Direction::ToWorker))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
