//! Per-link clock offset and RTT estimation, in band, with no extra round trips.
//!
//! Every frame carries the sender's send time and the sender's current minimum
//! receive delta. On receipt, `delta = receive_time - send_time` (one-way delay plus
//! the clock offset). Each side keeps the minimum of its own deltas over a sliding
//! window of [`WINDOW`] samples, and learns the peer's minimum from the headers.
//! With `θ = remote_clock - local_clock` and one-way minima `d₁` (remote→local) and
//! `d₂` (local→remote): `local_min = d₁ - θ`, `remote_min = d₂ + θ`, so
//! `rtt ≈ local_min + remote_min` and `offset = -θ ≈ (local_min - remote_min) / 2`
//! when the path is symmetric. The error of the offset is at most half the difference
//! of the one-way minima, so it is bounded by `rtt / 2`.

use std::collections::VecDeque;

/// Samples in the sliding minimum (as the original).
pub const WINDOW: usize = 1024;

/// Sliding-window minimum over the last [`WINDOW`] samples, O(1) amortized per sample.
#[derive(Debug, Clone)]
pub struct SlidingMin {
    window: usize,
    seq: u64,
    /// (sequence, value), values strictly increasing from front to back.
    q: VecDeque<(u64, i64)>,
}

impl SlidingMin {
    /// An empty window of `window` samples (at least 1).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            seq: 0,
            q: VecDeque::new(),
        }
    }

    /// Add a sample.
    pub fn push(&mut self, v: i64) {
        while self.q.back().is_some_and(|&(_, b)| b >= v) {
            self.q.pop_back();
        }
        self.q.push_back((self.seq, v));
        self.seq += 1;
        let oldest = self.seq.saturating_sub(self.window as u64);
        while self.q.front().is_some_and(|&(s, _)| s < oldest) {
            self.q.pop_front();
        }
    }

    /// The minimum of the window, if it has samples.
    pub fn min(&self) -> Option<i64> {
        self.q.front().map(|&(_, v)| v)
    }
}

/// The estimator of one link.
#[derive(Debug, Clone)]
pub struct ClockSync {
    local: SlidingMin,
    remote_min: Option<i64>,
}

impl Default for ClockSync {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockSync {
    /// A fresh estimator.
    pub fn new() -> Self {
        Self {
            local: SlidingMin::new(WINDOW),
            remote_min: None,
        }
    }

    /// Record a received frame: its sender's send time and reported minimum (in the
    /// header), and our local receive time.
    pub fn on_receive(&mut self, send_ts: u64, sender_delta_min: i64, recv_ts: u64) {
        let delta = i128::from(recv_ts) - i128::from(send_ts);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        self.local.push(delta);
        if sender_delta_min != crate::frame::NO_DELTA {
            self.remote_min = Some(sender_delta_min);
        }
    }

    /// Our current minimum delta, for the header of the next frame we send.
    pub fn local_min(&self) -> i64 {
        self.local.min().unwrap_or(crate::frame::NO_DELTA)
    }

    /// Estimated `local_clock - remote_clock` in ns: add it to a remote timestamp to get
    /// local time. `None` until both directions have carried a sample.
    pub fn offset_ns(&self) -> Option<i64> {
        let l = self.local.min()?;
        let r = self.remote_min?;
        Some(((i128::from(l) - i128::from(r)) / 2) as i64)
    }

    /// Estimated minimum round-trip time in ns.
    pub fn rtt_ns(&self) -> Option<u64> {
        let l = self.local.min()?;
        let r = self.remote_min?;
        u64::try_from(i128::from(l) + i128::from(r)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sliding_min_matches_brute_force(xs in prop::collection::vec(-1000i64..1000, 1..300), w in 1usize..50) {
            let mut m = SlidingMin::new(w);
            for (i, &x) in xs.iter().enumerate() {
                m.push(x);
                let lo = (i + 1).saturating_sub(w);
                let expect = xs[lo..=i].iter().copied().min();
                prop_assert_eq!(m.min(), expect);
            }
        }

        /// Two simulated peers with a clock offset and asymmetric jittery delays: the
        /// estimate is within half the difference of the minimum one-way delays.
        #[test]
        fn offset_and_rtt_from_simulated_link(theta in -1_000_000_000i64..1_000_000_000, d1 in 1_000u64..50_000, d2 in 1_000u64..50_000, jitter in prop::collection::vec(0u64..20_000, 20..60)) {
            // local clock L, remote clock R = L + theta.
            let mut local = ClockSync::new();
            let mut remote = ClockSync::new();
            let base: i64 = 5_000_000_000;
            for (i, j) in jitter.iter().enumerate() {
                let t = base + (i as i64) * 100_000;
                // local -> remote
                let send_l = t as u64;
                let recv_r = (t + d2 as i64 + *j as i64 + theta) as u64;
                remote.on_receive(send_l, local.local_min(), recv_r);
                // remote -> local
                let send_r = (t + 50_000 + theta) as u64;
                let recv_l = (t + 50_000 + d1 as i64 + *j as i64) as u64;
                local.on_receive(send_r, remote.local_min(), recv_l);
            }
            let off = local.offset_ns().unwrap();
            let min_j = *jitter.iter().min().unwrap() as i64;
            let rtt = local.rtt_ns().unwrap() as i64;
            prop_assert_eq!(rtt, d1 as i64 + d2 as i64 + 2 * min_j);
            let err = (off - (-theta)).abs();
            prop_assert!(err <= (d1 as i64 - d2 as i64).abs() / 2 + 1, "err {} rtt {}", err, rtt);
            prop_assert!(err <= rtt / 2);
        }
    }

    #[test]
    fn no_estimate_until_both_directions_speak() {
        let mut s = ClockSync::new();
        assert_eq!(s.offset_ns(), None);
        s.on_receive(100, crate::frame::NO_DELTA, 150);
        assert_eq!(s.offset_ns(), None);
        assert_eq!(s.local_min(), 50);
        s.on_receive(200, 30, 260);
        assert_eq!(s.offset_ns(), Some((50 - 30) / 2));
        assert_eq!(s.rtt_ns(), Some(80));
    }
}
