//! The simulated controller↔worker links: a fixed one-way delay, plus, when asked, a
//! random extra delay per message, drawn from an exponential distribution of a given
//! mean (seeded, so a run stays deterministic). Real links scatter like that: on a
//! shared 2-core host the return delays had a median of 76–112 µs and a p99 of
//! 190–376 µs (docs/benchmarks.md, session 13). Each link delivers in order in each
//! direction, as TCP does: a message never overtakes the one sent before it.
//!
//! Hosts also stall ([`Stalls`]): on the same host the actions sent during a 3 ms pause
//! all reached the worker within 25 µs of its end. A stalled network holds every
//! message due while the pause lasts and lets them through when it ends.

use clockwork_core::rng::Rng;
use clockwork_core::Nanos;
use std::collections::HashMap;

/// The network's stream of the run's seed ([`Rng::derive`]), apart from the devices'.
const STREAM: u64 = 0x4e45_5457_4f52_4b00;

/// The stalls' stream of the run's seed, apart from the jitter's (a run with stalls
/// draws the same jitter as one without).
const STALL_STREAM: u64 = 0x5354_414c_4c53_0000;

/// Pauses of the whole host: none of its messages arrives while it is paused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// How many begin per second, on average (Poisson).
    pub per_second: f64,
    /// Their mean length (exponential).
    pub mean: Nanos,
}

/// The host's stalls, drawn lazily in time order.
#[derive(Debug)]
struct StallSchedule {
    stalls: Stalls,
    rng: Rng,
    /// Drawn stalls that end after the latest time asked about, as (begin, end).
    ahead: std::collections::VecDeque<(Nanos, Nanos)>,
    /// Where the next stall to draw may begin at the earliest.
    drawn_to: Nanos,
}

impl StallSchedule {
    fn new(stalls: Stalls, seed: u64) -> Self {
        Self {
            stalls,
            rng: Rng::derive(seed, STALL_STREAM),
            ahead: std::collections::VecDeque::new(),
            drawn_to: Nanos::ZERO,
        }
    }

    /// When a message due at `at` is delivered: at the end of the stall `at` falls in,
    /// else at `at`. `sent` (<= `at`) says which stalls can be forgotten.
    fn deliver(&mut self, sent: Nanos, at: Nanos) -> Nanos {
        while self.drawn_to <= at {
            let gap = self.rng.exp(1e9 / self.stalls.per_second) as u64;
            let begin = self.drawn_to + Nanos(gap);
            let end = begin + Nanos(self.rng.exp(self.stalls.mean.get() as f64) as u64);
            self.ahead.push_back((begin, end));
            self.drawn_to = end;
        }
        while self.ahead.front().is_some_and(|&(_, end)| end <= sent) {
            self.ahead.pop_front();
        }
        self.ahead
            .iter()
            .find(|&&(begin, end)| begin <= at && at < end)
            .map_or(at, |&(_, end)| end)
    }
}

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
    stalls: Option<StallSchedule>,
}

impl Network {
    /// Links of one-way delay `base`, plus an exponential extra of mean `jitter_mean`
    /// (none when zero), on a host that pauses as `stalls` says (never with `None` or
    /// no pause per second), seeded by `seed`.
    pub(crate) fn new(base: Nanos, jitter_mean: Nanos, stalls: Option<Stalls>, seed: u64) -> Self {
        Self {
            base,
            jitter_mean,
            rng: Rng::derive(seed, STREAM),
            last: HashMap::new(),
            stalls: stalls
                .filter(|s| s.per_second > 0.0 && s.mean > Nanos::ZERO)
                .map(|s| StallSchedule::new(s, seed)),
        }
    }

    /// When a message sent at `now` on `worker`'s link in `direction` arrives.
    pub(crate) fn arrival(&mut self, now: Nanos, worker: u32, direction: Direction) -> Nanos {
        let extra = if self.jitter_mean == Nanos::ZERO {
            Nanos::ZERO
        } else {
            Nanos(self.rng.exp(self.jitter_mean.get() as f64) as u64)
        };
        let mut at = now + self.base + extra;
        if let Some(stalls) = &mut self.stalls {
            at = stalls.deliver(now, at);
        }
        let last = self.last.entry((worker, direction)).or_insert(Nanos::ZERO);
        let at = at.max(*last);
        *last = at;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_link_adds_its_delay_and_nothing_else() {
        let mut n = Network::new(Nanos(150), Nanos::ZERO, None, 1);
        for t in [0, 10, 10, 500] {
            assert_eq!(n.arrival(Nanos(t), 0, Direction::ToWorker), Nanos(t + 150));
        }
    }

    #[test]
    fn jitter_scatters_delays_around_its_mean_and_keeps_each_link_in_order() {
        let mean = 40_000.0;
        let mut n = Network::new(Nanos(50_000), Nanos(mean as u64), None, 7);
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
        let mut n = Network::new(Nanos(50_000), Nanos(mean as u64), None, 7);
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
            let mut n = Network::new(Nanos(0), Nanos(1_000), None, seed);
            (0..8)
                .map(|i| n.arrival(Nanos(i * 1_000_000), 0, Direction::ToWorker))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn a_stalled_host_holds_every_message_due_in_a_pause_until_it_ends() {
        let stalls = Stalls {
            per_second: 50.0,
            mean: Nanos::from_millis(2),
        };
        let mut n = Network::new(Nanos(100_000), Nanos::ZERO, Some(stalls), 3);
        // A message every 10 µs for 10 s.
        let mut held = 0u64;
        let mut releases = std::collections::BTreeMap::<Nanos, u32>::new();
        for i in 0..1_000_000u64 {
            let now = Nanos(i * 10_000);
            let at = n.arrival(now, 0, Direction::ToWorker);
            assert!(at >= now + Nanos(100_000));
            if at > now + Nanos(100_000) {
                held += 1;
                *releases.entry(at).or_default() += 1;
            }
        }
        // About 50 x 2 ms = 10 % of the time is paused, so about 10 % of the messages
        // are held, and each pause lets its messages through at one instant.
        let share = held as f64 / 1e6;
        assert!((share - 0.1).abs() < 0.03, "held {share}");
        assert!(
            (400..600).contains(&releases.len()),
            "{} pauses",
            releases.len()
        );
        // A pause of 2 ms on average holds the 200 messages sent during it.
        let per_pause = held as f64 / releases.len() as f64;
        assert!((100.0..300.0).contains(&per_pause), "{per_pause} per pause");
        // No stalls configured, or none per second: messages are never held.
        let none = Stalls {
            per_second: 0.0,
            ..stalls
        };
        let mut n = Network::new(Nanos(100_000), Nanos::ZERO, Some(none), 3);
        assert_eq!(n.arrival(Nanos(5), 0, Direction::ToWorker), Nanos(100_005));
    }
}
