//! Poisson processes with a piecewise-constant rate, the core of every open-loop
//! generator. Within a segment of constant rate the gaps are exponential; when a gap
//! overshoots the segment, the clock moves to the segment's end and draws again, which
//! is exact because the exponential distribution is memoryless.

use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;

/// Nanoseconds per second, as a float.
pub(crate) const NS_PER_SEC: f64 = 1e9;

/// A float time in nanoseconds, floored onto [`Nanos`] (the cast saturates).
pub(crate) fn to_nanos(t: f64) -> Nanos {
    // Float-to-int `as` saturates and maps NaN to 0: no wrap is possible.
    Nanos(t as u64)
}

/// The clock of one Poisson process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PoissonClock {
    t: f64,
}

impl PoissonClock {
    /// A clock at `start`.
    pub(crate) fn new(start: Nanos) -> Self {
        Self {
            t: start.get() as f64,
        }
    }

    /// The next arrival time. `rate_at(t)` gives the rate in arrivals per second at `t`
    /// and the end of the segment over which it stays constant (`Nanos::MAX`: for
    /// ever), or `None` when the process has ended.
    pub(crate) fn next(
        &mut self,
        rng: &mut Rng,
        mut rate_at: impl FnMut(Nanos) -> Option<(f64, Nanos)>,
    ) -> Option<f64> {
        loop {
            let (rate, seg_end) = rate_at(to_nanos(self.t))?;
            let end = if seg_end == Nanos::MAX {
                f64::INFINITY
            } else {
                seg_end.get() as f64
            };
            if rate > 0.0 {
                let candidate = self.t + rng.exp(1.0) * NS_PER_SEC / rate;
                if candidate < end {
                    self.t = candidate;
                    return Some(candidate);
                }
            }
            if !end.is_finite() || end <= self.t {
                return None;
            }
            self.t = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_gives_the_expected_count() {
        let mut rng = Rng::derive(7, 0);
        let mut clock = PoissonClock::new(Nanos::ZERO);
        let horizon = 100.0 * NS_PER_SEC;
        let mut n = 0u32;
        while let Some(t) = clock.next(&mut rng, |_| Some((1000.0, Nanos::MAX))) {
            if t > horizon {
                break;
            }
            n += 1;
        }
        // Poisson(100_000): sd 316; 5 sd is 1581.
        assert!((f64::from(n) - 100_000.0).abs() < 1_600.0, "{n}");
    }

    #[test]
    fn zero_rate_segments_are_skipped_and_the_end_stops_it() {
        let mut rng = Rng::derive(7, 1);
        let mut clock = PoissonClock::new(Nanos::ZERO);
        let rate = |t: Nanos| {
            if t < Nanos::from_secs(5) {
                Some((0.0, Nanos::from_secs(5)))
            } else if t < Nanos::from_secs(6) {
                Some((1000.0, Nanos::from_secs(6)))
            } else {
                None
            }
        };
        let mut n = 0;
        while let Some(t) = clock.next(&mut rng, rate) {
            assert!((5.0 * NS_PER_SEC..6.0 * NS_PER_SEC).contains(&t));
            n += 1;
        }
        assert!((800..1200).contains(&n), "{n}");
    }
}
