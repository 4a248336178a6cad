//! Doubtful admissions: whether a request that the plan under pressure says will miss
//! is refused at once or queued anyway, decided by how many admitted requests fail.
//!
//! Under pressure, admission asks a rollout of the GPU's queues
//! ([`crate::rollout::serves`]) whether the new request would be served. The rollout
//! sees only the requests queued now, at the estimator's p90 costs, on a GPU that runs
//! its batches from its free time with no gaps. It cannot know which queued requests
//! will be dropped, how much faster than p90 the next batches run, or which later
//! arrivals will share a batch. So its "no" is a doubt, not a proof. In virtual time,
//! on one GPU at 1,500 r/s with a 10 ms SLO, 58 of 29,976 requests were refused on such
//! a doubt; queued instead, most were served (attainment 99.80 → 99.91 %). Under
//! sustained overload (issue 14) the doubt is right nearly every time, and a queued
//! request then fails only at its expiry, late, instead of at once.
//!
//! So each GPU keeps the share of the requests admitted for it that failed (any answer
//! but `Success`, as a running average). While that share is below
//! [`LATE_FAILURES_MAX`], failures are rare whether they come at admission or later,
//! and a doubtful request is queued: it may be served, and it may complete a batch.
//! At or above it, as under overload, the rollout's "no" is followed and the request
//! is refused at once. Queueing doubtful requests raises the share, so it stays near
//! the bound where they mostly fail: the bound caps how many admitted requests fail
//! late.

/// Default share of admitted requests failing at or above which a GPU refuses the
/// requests its rollout doubts ([`crate::Config::late_failure_share`]). Measured in
/// virtual time (`sim --preset tight-slo` and `--preset overload`, seed 1, 20 s) with
/// every doubtful request refused: 0.01 % of admitted requests failed on the H200
/// 10 ms row, 0.23 % at 5 ms, 0.76 % at 2.5 ms, 0.47 % on the V100 10 ms row, and 24 %
/// on the 1.5x overload row, which must refuse at admission. `docs/scheduler.md` has
/// what other bounds serve.
pub const LATE_FAILURES_MAX: f64 = 0.1;

/// Weight of one admitted request's outcome in the share (an exponential average over
/// about the last 256).
const WEIGHT: f64 = 1.0 / 256.0;

/// One GPU's record of how its admitted requests fared. Starts with none failed: a
/// cold scheduler queues what it doubts, and learns from the outcomes.
#[derive(Debug, Clone, Default)]
pub struct DoubtfulAdmissions {
    failed_share: f64,
}

impl DoubtfulAdmissions {
    /// Whether to queue a request the rollout says will miss, with `bound` the share
    /// of admitted requests that may fail ([`crate::Config::late_failure_share`]).
    pub fn admit(&self, bound: f64) -> bool {
        self.failed_share < bound
    }

    /// An admitted request was answered; `served` if `Success`.
    pub fn record(&mut self, served: bool) {
        let failed = if served { 0.0 } else { 1.0 };
        self.failed_share += (failed - self.failed_share) * WEIGHT;
    }

    /// The running share of admitted requests that failed.
    pub fn failed_share(&self) -> f64 {
        self.failed_share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubtful_requests_are_queued_while_few_admitted_ones_fail() {
        let mut d = DoubtfulAdmissions::default();
        assert!(d.admit(LATE_FAILURES_MAX), "a cold record queues");
        assert!(!d.admit(0.0), "a bound of 0 refuses every doubt");
        for i in 0..10_000 {
            d.record(i % 20 != 0); // one in twenty fails
            assert!(
                d.admit(LATE_FAILURES_MAX),
                "after {i}: share {}",
                d.failed_share()
            );
        }
    }

    #[test]
    fn many_failures_refuse_doubtful_requests_until_admitted_ones_are_served_again() {
        let mut d = DoubtfulAdmissions::default();
        // Overload: a third of the admitted requests fail.
        let mut first_refusal = None;
        for i in 0..1_000 {
            d.record(i % 3 != 0);
            if first_refusal.is_none() && !d.admit(LATE_FAILURES_MAX) {
                first_refusal = Some(i);
            }
        }
        // About a tenth of the window of 256 outcomes at a third failing.
        let first = first_refusal.expect("overload refuses doubtful requests");
        assert!((50..150).contains(&first), "first refusal after {first}");
        assert!(!d.admit(LATE_FAILURES_MAX));
        // The load falls: admitted requests are served, and doubtful ones queued again.
        let mut served = 0;
        while !d.admit(LATE_FAILURES_MAX) {
            d.record(true);
            served += 1;
        }
        assert!((100..1_000).contains(&served), "reopened after {served}");
    }
}
