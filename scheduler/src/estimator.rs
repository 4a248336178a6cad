//! Execution-time and LOAD estimators (reference 3.1): a percentile of a sliding window
//! of the last N measurements (10 by default), seeded with the profiled value. The
//! original uses p99, with N = 10 the window's maximum, so that a single slow run
//! raises the estimate for the next ten; the default here is p90, the second largest
//! (`Config::estimator_percentile` says why).
//!
//! GPU clock normalisation (multiplying by the SM clock) is not done: emulated devices
//! report no clock, and the reference clock would cancel out on a pinned-clock GPU.

use crate::config::MAX_ESTIMATOR_WINDOW;
use clockwork_core::Nanos;

/// One sliding-window percentile estimator, one cache line: the window holds
/// microseconds (rounded up, so estimates err on the long side; saturating at 71
/// minutes), the cached estimate nanoseconds. The estimate is recomputed on each
/// measurement, so reading it is free.
#[derive(Debug, Clone)]
pub struct Estimator {
    estimate: Nanos,
    window: [u32; MAX_ESTIMATOR_WINDOW],
    len: u8,
    next: u8,
    capacity: u8,
}

fn to_us(v: Nanos) -> u32 {
    u32::try_from(v.get().div_ceil(1_000)).unwrap_or(u32::MAX)
}

impl Estimator {
    /// An estimator holding `capacity` measurements (clamped to
    /// 1..=[`MAX_ESTIMATOR_WINDOW`]), seeded with `seed` as its first measurement.
    pub fn new(seed: Nanos, capacity: usize) -> Self {
        // Clamped to MAX_ESTIMATOR_WINDOW (12), so it fits in u8.
        let capacity = capacity.clamp(1, MAX_ESTIMATOR_WINDOW) as u8;
        let mut window = [0; MAX_ESTIMATOR_WINDOW];
        window[0] = to_us(seed);
        Self {
            window,
            len: 1,
            next: 1 % capacity,
            capacity,
            estimate: seed,
        }
    }

    /// The current estimate.
    pub const fn estimate(&self) -> Nanos {
        self.estimate
    }

    /// Adds a measurement, evicting the oldest once the window is full, and recomputes
    /// the `percentile` estimate.
    pub fn record(&mut self, value: Nanos, percentile: f64) {
        self.window[self.next as usize] = to_us(value);
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        let n = self.len as usize;
        // Nearest-rank percentile: the rank-th smallest, rank = ceil(p * n) in 1..=n.
        let rank = ((percentile * n as f64).ceil() as usize).clamp(1, n);
        let us = if rank == n {
            // The common case (p99 of 10): the maximum, no sort needed.
            self.window[..n].iter().copied().max().unwrap_or(0)
        } else {
            let mut sorted = [0u32; MAX_ESTIMATOR_WINDOW];
            sorted[..n].copy_from_slice(&self.window[..n]);
            sorted[..n].sort_unstable();
            sorted[rank - 1]
        };
        self.estimate = Nanos::from_micros(u64::from(us));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Nanos {
        Nanos::from_micros(v)
    }

    #[test]
    fn p99_of_ten_is_the_window_max_and_old_values_age_out() {
        let mut e = Estimator::new(us(100), 10);
        assert_eq!(e.estimate(), us(100));
        e.record(us(50), 0.99);
        assert_eq!(e.estimate(), us(100), "seed still in window");
        for _ in 0..9 {
            e.record(us(50), 0.99);
        }
        // 10 measurements of 50 pushed the seed out.
        assert_eq!(e.estimate(), us(50));
        e.record(us(70), 0.99);
        assert_eq!(e.estimate(), us(70));
        for _ in 0..9 {
            e.record(us(60), 0.99);
        }
        assert_eq!(e.estimate(), us(70), "70 is the oldest of the last ten");
        e.record(us(60), 0.99);
        assert_eq!(e.estimate(), us(60));
    }

    #[test]
    fn median_percentile_and_rounding_up() {
        let mut e = Estimator::new(us(1), 4);
        for v in [2, 3, 4] {
            e.record(us(v), 0.5);
        }
        assert_eq!(e.estimate(), us(2));
        let mut e = Estimator::new(Nanos(1), 1);
        e.record(Nanos(1_500), 0.99);
        assert_eq!(e.estimate(), us(2), "sub-microsecond parts round up");
        assert_eq!(size_of::<Estimator>(), 64, "one cache line");
    }
}
