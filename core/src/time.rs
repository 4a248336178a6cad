//! Time. All timestamps are [`Nanos`] of `CLOCK_MONOTONIC` in the **controller's** clock
//! domain; workers convert on ingress and egress with their estimated offset.
//! Durations use the same type. Arithmetic saturates: a window bound never wraps.

use rkyv::{Archive, Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds: a point on a monotonic clock or a duration.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct Nanos(pub u64);

impl Nanos {
    /// Zero: the clock's origin, or an empty duration.
    pub const ZERO: Self = Self(0);
    /// The end of time: an unbounded `latest`.
    pub const MAX: Self = Self(u64::MAX);

    /// From whole microseconds.
    pub const fn from_micros(us: u64) -> Self {
        Self(us.saturating_mul(1_000))
    }
    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000_000_000))
    }
    /// The raw count.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// As fractional milliseconds, for reports.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// `self - other`, or zero if `other` is later.
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
    /// `self + other`, clamped at [`Nanos::MAX`].
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
    /// Signed difference `self - other` in nanoseconds, saturating at the `i64` range.
    pub fn signed_diff(self, other: Self) -> i64 {
        let d = i128::from(self.0) - i128::from(other.0);
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }
    /// Shift by a signed offset, saturating at both ends (used for clock translation).
    pub fn offset_by(self, offset_ns: i64) -> Self {
        Self(self.0.saturating_add_signed(offset_ns))
    }
}

impl Add for Nanos {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        self.saturating_add(rhs)
    }
}

impl Sub for Nanos {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        self.saturating_sub(rhs)
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl From<Nanos> for Duration {
    fn from(n: Nanos) -> Self {
        Self::from_nanos(n.0)
    }
}

impl fmt::Debug for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1_000_000 {
            write!(f, "{:.3}ms", self.as_millis_f64())
        } else if self.0 >= 1_000 {
            write!(f, "{:.3}us", self.0 as f64 / 1e3)
        } else {
            write!(f, "{}ns", self.0)
        }
    }
}

impl ArchivedNanos {
    /// The native value.
    pub fn to_native(&self) -> Nanos {
        Nanos(self.0.to_native())
    }
}

/// A source of `now`. Production code uses [`MonotonicClock`]; tests and the simulator
/// inject their own, so nothing time-dependent reads the OS clock directly.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Nanos;
}

/// The one production clock: `CLOCK_MONOTONIC`, 1 ns resolution, read through the vDSO
/// (about 30 ns). Not shared across hosts; links translate with their clock offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// Read `CLOCK_MONOTONIC` now.
    pub fn read() -> Nanos {
        use nix::time::{clock_gettime, ClockId};
        // CLOCK_MONOTONIC is always supported on Linux; the call cannot fail with a valid id.
        match clock_gettime(ClockId::CLOCK_MONOTONIC) {
            Ok(ts) => {
                let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
                let nsec = u64::try_from(ts.tv_nsec()).unwrap_or(0);
                Nanos(secs.saturating_mul(1_000_000_000).saturating_add(nsec))
            }
            Err(_) => Nanos::ZERO,
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Nanos {
        Self::read()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Nanos(5) - Nanos(7), Nanos::ZERO);
        assert_eq!(Nanos::MAX + Nanos(1), Nanos::MAX);
        assert_eq!(Nanos(10).offset_by(-20), Nanos::ZERO);
        assert_eq!(Nanos(u64::MAX - 1).offset_by(5), Nanos::MAX);
        assert_eq!(Nanos(3).signed_diff(Nanos(10)), -7);
        assert_eq!(Nanos::MAX.signed_diff(Nanos::ZERO), i64::MAX);
    }

    #[test]
    fn unit_constructors() {
        assert_eq!(Nanos::from_millis(3), Nanos(3_000_000));
        assert_eq!(Nanos::from_micros(7), Nanos(7_000));
        assert_eq!(Nanos::from(Duration::from_millis(2)), Nanos(2_000_000));
        assert_eq!(format!("{}", Nanos(2_500_000)), "2.500ms");
    }

    #[test]
    fn monotonic_clock_does_not_go_back() {
        let a = MonotonicClock.now();
        let b = MonotonicClock.now();
        assert!(a > Nanos::ZERO);
        assert!(b >= a);
    }
}
