//! Translation between the controller's clock and ours.
//!
//! Actions arrive with `[earliest, latest]` in the controller's `CLOCK_MONOTONIC`; the
//! devices work in ours. The link's in-band estimator (`clockwork_net::ClockSync`) gives
//! `offset = local − controller`, so a controller time `t` is `t + offset` here and a
//! local time `u` is `u − offset` there. Both directions saturate at `0` and
//! [`Nanos::MAX`], never wrap, and [`Nanos::MAX`] (an unbounded `latest`) stays
//! unbounded.
//!
//! One action's timestamps are all converted with the **same** offset (the one its
//! window was converted with), so a device start at or after the local `earliest` is
//! reported at or after the controller's `earliest` exactly, even if the estimate moves
//! while the action waits.

use clockwork_core::{Nanos, Timing, Window};

/// A fixed clock offset between this worker and its controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockMap {
    /// `local − controller`, in ns.
    offset_ns: i64,
}

impl ClockMap {
    /// Identical clocks (the fallback before the link has an estimate).
    pub const IDENTITY: Self = Self { offset_ns: 0 };

    /// A map with `offset_ns = local − controller`.
    pub const fn new(offset_ns: i64) -> Self {
        Self { offset_ns }
    }

    /// `local − controller`, in ns.
    pub const fn offset_ns(self) -> i64 {
        self.offset_ns
    }

    /// A controller timestamp in our clock.
    pub fn to_local(self, t: Nanos) -> Nanos {
        if t == Nanos::MAX {
            return t;
        }
        t.offset_by(self.offset_ns)
    }

    /// One of our timestamps in the controller's clock.
    pub fn to_controller(self, t: Nanos) -> Nanos {
        if t == Nanos::MAX {
            return t;
        }
        t.offset_by(self.offset_ns.saturating_neg())
    }

    /// A controller window in our clock. An inverted window stays inverted (saturation
    /// could otherwise turn it into a valid one), so the device still refuses it.
    pub fn window_to_local(self, w: Window) -> Window {
        if !w.is_valid() {
            return w;
        }
        Window::new(self.to_local(w.earliest), self.to_local(w.latest))
    }

    /// A device timing in the controller's clock (`duration` is a duration, unchanged).
    pub fn timing_to_controller(self, t: Timing) -> Timing {
        Timing {
            begin: self.to_controller(t.begin),
            end: self.to_controller(t.end),
            duration: t.duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_saturation() {
        let m = ClockMap::new(-5_000);
        assert_eq!(m.to_local(Nanos(1_000_000)), Nanos(995_000));
        assert_eq!(m.to_controller(Nanos(995_000)), Nanos(1_000_000));
        // Saturates at zero, never wraps.
        assert_eq!(m.to_local(Nanos(10)), Nanos::ZERO);
        let p = ClockMap::new(7);
        assert_eq!(p.to_controller(Nanos(3)), Nanos::ZERO);
        assert_eq!(p.to_local(Nanos(u64::MAX - 2)), Nanos::MAX);
        // The end of time stays the end of time both ways.
        assert_eq!(m.to_local(Nanos::MAX), Nanos::MAX);
        assert_eq!(m.to_controller(Nanos::MAX), Nanos::MAX);
        // An extreme offset does not overflow.
        let x = ClockMap::new(i64::MIN);
        assert_eq!(x.to_controller(Nanos(1)), Nanos(1 + i64::MAX as u64));
    }

    #[test]
    fn inverted_windows_stay_inverted() {
        // Both bounds would saturate to 0 (or to the end of time): still refused.
        let low = Window::new(Nanos(5), Nanos(3));
        assert!(!ClockMap::new(-10).window_to_local(low).is_valid());
        let high = Window::new(Nanos::MAX, Nanos(u64::MAX - 1));
        assert!(!ClockMap::new(10).window_to_local(high).is_valid());
        let ok = Window::new(Nanos(3), Nanos(5));
        assert_eq!(
            ClockMap::new(-10).window_to_local(ok),
            Window::new(Nanos::ZERO, Nanos::ZERO)
        );
    }

    #[test]
    fn start_at_local_earliest_is_at_controller_earliest() {
        for off in [-1_000_000_007i64, -3, 0, 11, 1_000_000_009] {
            let m = ClockMap::new(off);
            let w = Window::new(Nanos(5_000_000_000), Nanos(5_010_000_000));
            let local = m.window_to_local(w);
            for begin in [local.earliest, local.earliest + Nanos(1)] {
                let t = m.timing_to_controller(Timing {
                    begin,
                    end: begin + Nanos(10),
                    duration: Nanos(10),
                });
                assert!(t.begin >= w.earliest, "offset {off}");
                assert_eq!(t.end - t.begin, Nanos(10));
            }
        }
    }
}
