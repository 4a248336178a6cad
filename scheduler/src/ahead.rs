//! How far ahead each GPU's EXEC timeline is filled: the schedule-ahead, following the
//! SLOs being served (reference 3.4 fixes it at 10 ms).
//!
//! Work handed to a GPU early is work that can no longer grow into a larger batch or
//! give way to a more urgent model, and every request that arrives waits behind it. A
//! tenth of a 100 ms SLO (the original's 10 ms) costs little; under a 5 ms SLO the
//! GPU should get its next batch at the last moment. So the EXEC schedule-ahead is a
//! tenth of the tightest SLO among the requests admitted recently (the last one to two
//! [`BUCKET`]s of them), scaled down by how far that SLO is below ten times
//! `Config::schedule_ahead` (100 ms by default): `(slo / 10) · min(1, slo / (10 ·
//! max))`, so 100 ms keeps 10 ms, 50 ms gets 2.5 ms and 10 ms 0.1 ms. It is at most
//! `Config::schedule_ahead` and at least the lead time plus the *slack*: the GPU still
//! gets its next batch before it runs dry, as long as the controller reacts within the
//! slack. The slack is measured, like the other margins ([`crate::margins`]): the p99
//! of how late the scheduler's EXEC wake-ups ran against the time they asked for
//! (`Scheduler::handle_timeout`), between [`MIN_SLACK`] and [`MAX_SLACK`]. A driver
//! whose timers fire on time (the simulator) hands the next batch out
//! [`MIN_SLACK`] before the lead time, at the last moment, with the most requests
//! to choose from; one whose wake-ups run late (a loaded host) gets the room it
//! shows it needs. The PCIe (LOAD) timeline keeps `Config::schedule_ahead`.

use clockwork_core::Nanos;

/// Admitted requests per bucket of the sliding minimum.
pub const BUCKET: u32 = 1024;
/// Least room above the lead time for the controller to react: also what keeps the
/// EXEC wake-up strictly before the lead time's horizon (with none, a GPU whose
/// predicted free time is `now + lead` would be woken again 1 ns later, for ever).
pub const MIN_SLACK: Nanos = Nanos::from_micros(50);
/// Most room above the lead time for the controller to react (a host whose wake-ups
/// run later than this hands batches out this early and pays in bubbles).
pub const MAX_SLACK: Nanos = Nanos::from_millis(1);
/// The schedule-ahead is the tightest SLO divided by this.
pub const SLO_DIVISOR: u64 = 10;

/// Sliding minimum of the SLOs of admitted requests.
#[derive(Debug, Clone)]
pub struct TightestSlo {
    current: Nanos,
    previous: Nanos,
    count: u32,
}

impl Default for TightestSlo {
    fn default() -> Self {
        Self {
            current: Nanos::MAX,
            previous: Nanos::MAX,
            count: 0,
        }
    }
}

impl TightestSlo {
    /// A request with this SLO was admitted.
    pub fn record(&mut self, slo: Nanos) {
        self.current = self.current.min(slo);
        self.count += 1;
        if self.count >= BUCKET {
            self.previous = self.current;
            self.current = Nanos::MAX;
            self.count = 0;
        }
    }

    /// The tightest SLO of the last one to two buckets, if any request was admitted.
    pub fn get(&self) -> Option<Nanos> {
        let t = self.current.min(self.previous);
        (t != Nanos::MAX).then_some(t)
    }
}

/// The EXEC schedule-ahead for the tightest recent SLO, lead time `lead`, the
/// configured maximum `max` and the measured `slack` (see the module documentation),
/// never below `lead + max(slack, MIN_SLACK)` (else no batch could ever be handed out).
pub fn exec_ahead(tightest: Option<Nanos>, lead: Nanos, max: Nanos, slack: Nanos) -> Nanos {
    let want = tightest.map_or(max, |s| {
        let s = u128::from(s.get());
        let full = u128::from(max.get()) * u128::from(SLO_DIVISOR);
        // (s / 10) * min(1, s / (10 * max)): at max * 10 (100 ms) and above, a tenth.
        Nanos(((s / u128::from(SLO_DIVISOR)) * s.min(full) / full.max(1)) as u64)
    });
    want.min(max).max(lead + slack.max(MIN_SLACK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Nanos {
        Nanos::from_millis(v)
    }

    #[test]
    fn a_tenth_of_the_tightest_recent_slo_scaled_and_within_bounds() {
        let lead = Nanos::from_micros(250);
        let slack = Nanos::from_micros(200);
        let mut t = TightestSlo::default();
        assert_eq!(exec_ahead(t.get(), lead, ms(10), slack), ms(10));
        t.record(ms(100));
        assert_eq!(exec_ahead(t.get(), lead, ms(10), slack), ms(10));
        t.record(ms(50));
        assert_eq!(
            exec_ahead(t.get(), lead, ms(10), slack),
            Nanos::from_micros(2_500)
        );
        // 5 ms: the formula gives 25 µs, below lead + slack.
        t.record(ms(5));
        assert_eq!(
            exec_ahead(t.get(), lead, ms(10), slack),
            Nanos::from_micros(450)
        );
        // The tight requests age out after one to two buckets of looser ones.
        for _ in 0..(2 * BUCKET) {
            t.record(ms(100));
        }
        assert_eq!(t.get(), Some(ms(100)));
        // A configured maximum below lead + slack still leaves room.
        assert_eq!(
            exec_ahead(None, ms(1), Nanos::from_micros(500), slack),
            Nanos::from_micros(1_200)
        );
    }

    #[test]
    fn the_slack_follows_the_measured_reaction_but_never_goes_below_its_floor() {
        let lead = Nanos::from_micros(250);
        let five = Some(ms(5));
        // Wake-ups on time: the floor, so the horizon stays past the lead time.
        assert_eq!(
            exec_ahead(five, lead, ms(10), Nanos::ZERO),
            lead + MIN_SLACK
        );
        // Wake-ups that ran up to 700 µs late: that much room.
        assert_eq!(
            exec_ahead(five, lead, ms(10), Nanos::from_micros(700)),
            Nanos::from_micros(950)
        );
        // A loose SLO's schedule-ahead is above either.
        assert_eq!(
            exec_ahead(Some(ms(100)), lead, ms(10), Nanos::from_micros(700)),
            ms(10)
        );
    }
}
