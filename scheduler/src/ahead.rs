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
//! `Config::schedule_ahead` and at least the lead time plus [`SLACK`]: the GPU still
//! gets its next batch before it runs dry, as long as the controller reacts within the
//! slack. The PCIe (LOAD) timeline keeps `Config::schedule_ahead`.

use clockwork_core::Nanos;

/// Admitted requests per bucket of the sliding minimum.
pub const BUCKET: u32 = 1024;
/// Room above the lead time for the controller to react.
pub const SLACK: Nanos = Nanos::from_micros(200);
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

/// The EXEC schedule-ahead for the tightest recent SLO, lead time `lead` and the
/// configured maximum `max` (see the module documentation), never below
/// `lead + SLACK` (else no batch could ever be handed out).
pub fn exec_ahead(tightest: Option<Nanos>, lead: Nanos, max: Nanos) -> Nanos {
    let want = tightest.map_or(max, |s| {
        let s = u128::from(s.get());
        let full = u128::from(max.get()) * u128::from(SLO_DIVISOR);
        // (s / 10) * min(1, s / (10 * max)): at max * 10 (100 ms) and above, a tenth.
        Nanos(((s / u128::from(SLO_DIVISOR)) * s.min(full) / full.max(1)) as u64)
    });
    want.min(max).max(lead + SLACK)
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
        let mut t = TightestSlo::default();
        assert_eq!(exec_ahead(t.get(), lead, ms(10)), ms(10));
        t.record(ms(100));
        assert_eq!(exec_ahead(t.get(), lead, ms(10)), ms(10));
        t.record(ms(50));
        assert_eq!(exec_ahead(t.get(), lead, ms(10)), Nanos::from_micros(2_500));
        // 5 ms: the formula gives 25 µs, below lead + slack.
        t.record(ms(5));
        assert_eq!(exec_ahead(t.get(), lead, ms(10)), Nanos::from_micros(450));
        // The tight requests age out after one to two buckets of looser ones.
        for _ in 0..(2 * BUCKET) {
            t.record(ms(100));
        }
        assert_eq!(t.get(), Some(ms(100)));
        // A configured maximum below lead + slack still leaves room.
        assert_eq!(
            exec_ahead(None, ms(1), Nanos::from_micros(500)),
            Nanos::from_micros(1_200)
        );
    }
}
