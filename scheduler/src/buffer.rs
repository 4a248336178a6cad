//! The completion buffer, measured (reference 3.3 fixes it at 5 ms).
//!
//! A request's batches are planned to complete `buffer` before its deadline: the time
//! the result needs to reach the controller and the answer to leave. The original used
//! a constant 5 ms, which on a fast network wastes most of a tight SLO (a 10 ms SLO
//! keeps 5 ms for a ResNet50's 3.3 ms). Here the buffer is the largest *return delay*
//! (result received at the controller − completion on the worker, in the controller's
//! clock) among the last [`WINDOW`] INFER and LOAD results, plus a margin, kept between
//! `Config::min_buffer` and `Config::buffer`. It starts at `Config::buffer` and
//! shrinks only once results have been measured; one slow result widens it at once.
//! Correctness does not depend on it: a success that arrives after its deadline is
//! answered `Timeout`, never late.

use clockwork_core::Nanos;

/// Results the buffer looks back over.
pub const WINDOW: usize = 256;
/// Added to the largest measured return delay.
pub const MARGIN: Nanos = Nanos::from_micros(500);

/// Sliding maximum of return delays and the buffer derived from it.
#[derive(Debug, Clone)]
pub struct CompletionBuffer {
    delays: Vec<u64>,
    next: usize,
    min: Nanos,
    max: Nanos,
    current: Nanos,
}

impl CompletionBuffer {
    /// A buffer between `min` and `max` (equal: constant), starting at `max`.
    pub fn new(min: Nanos, max: Nanos) -> Self {
        Self {
            delays: Vec::with_capacity(WINDOW),
            next: 0,
            min: min.min(max),
            max,
            current: max,
        }
    }

    /// The buffer now.
    pub const fn get(&self) -> Nanos {
        self.current
    }

    /// One INFER or LOAD result came back `delay` after its completion on the worker.
    pub fn record(&mut self, delay: Nanos) {
        if self.min == self.max {
            return;
        }
        let d = delay.get();
        if self.delays.len() < WINDOW {
            self.delays.push(d);
        } else {
            // Overwrites the oldest (next < WINDOW).
            self.delays[self.next] = d;
        }
        self.next = (self.next + 1) % WINDOW;
        let worst = if Nanos(d) + MARGIN >= self.current {
            // Grows at once.
            d
        } else if self.delays.len() <= 32 || self.next.is_multiple_of(32) {
            // Shrinks with each of the first results, then every 32nd: O(WINDOW / 32)
            // per result.
            self.delays.iter().copied().max().unwrap_or(d)
        } else {
            return;
        };
        self.current = (Nanos(worst) + MARGIN).clamp(self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Nanos {
        Nanos::from_micros(v)
    }

    #[test]
    fn starts_at_the_maximum_shrinks_to_the_measured_delay_and_grows_at_once() {
        let mut b = CompletionBuffer::new(us(1_000), us(5_000));
        assert_eq!(b.get(), us(5_000));
        // The first result is enough to shrink it.
        b.record(us(2_000));
        assert_eq!(b.get(), us(2_500));
        // Once that result has left the window (and a shrink check came round).
        for _ in 0..(WINDOW + 32) {
            b.record(us(200));
        }
        // 200 µs + 500 µs margin, floored at the 1 ms minimum.
        assert_eq!(b.get(), us(1_000));
        for _ in 0..(WINDOW + 32) {
            b.record(us(900));
        }
        assert_eq!(b.get(), us(1_400));
        // One slow result widens it immediately.
        b.record(us(3_000));
        assert_eq!(b.get(), us(3_500));
        // And it stays while that result is in the window...
        for _ in 0..(WINDOW - 2) {
            b.record(us(100));
        }
        assert_eq!(b.get(), us(3_500));
        // ...and shrinks once it has left.
        for _ in 0..64 {
            b.record(us(100));
        }
        assert_eq!(b.get(), us(1_000));
        // Never above the maximum.
        b.record(us(60_000));
        assert_eq!(b.get(), us(5_000));
    }

    #[test]
    fn equal_bounds_keep_it_constant() {
        let mut b = CompletionBuffer::new(us(5_000), us(5_000));
        for _ in 0..100 {
            b.record(us(10));
        }
        assert_eq!(b.get(), us(5_000));
    }
}
