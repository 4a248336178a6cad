//! The load generator's accounting: per SLO class, what was sent and how each request
//! ended, with the latency of every answer measured from the request's **scheduled**
//! send time (so a sender that falls behind is charged its delay: no coordinated
//! omission).
//!
//! Every request sent ends exactly once, as `ok` (200), `refused` (429, after any
//! retries the policy allows) or an error (another status, a broken connection, or no
//! answer by the end of the run), so `sent = ok + refused + errors` per class.

use clockwork_core::Nanos;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered 200.
    Ok,
    /// Answered 429 and not (or no longer) retried.
    Refused,
    /// Answered with another status.
    Status(u16),
    /// The exchange failed (connection refused or broken, a malformed answer).
    Failed(String),
}

/// One SLO class's counts and latencies.
#[derive(Debug)]
pub(crate) struct ClassTally {
    /// The SLO sent as `timeout` (`None`: no SLO parameter; every 200 counts).
    pub(crate) slo: Option<Nanos>,
    /// Requests started (their scheduled time came and a connection took them).
    pub(crate) sent: u64,
    /// Answered 200.
    pub(crate) ok: u64,
    /// Answered 200 within the SLO, counted from the scheduled send time.
    pub(crate) within_slo: u64,
    /// Ended refused (429).
    pub(crate) refused: u64,
    /// Ended with another status, a failed exchange, or no answer.
    pub(crate) errors: u64,
    /// HTTP exchanges, retries included.
    pub(crate) attempts: u64,
    /// Latency of the 200 answers, ns, from the scheduled send time.
    pub(crate) ok_latency: Histogram<u64>,
    /// Latency of the requests that ended refused (their last 429), ns, from the
    /// scheduled send time.
    pub(crate) refused_latency: Histogram<u64>,
}

impl ClassTally {
    fn new(slo: Option<Nanos>) -> Self {
        Self {
            slo,
            sent: 0,
            ok: 0,
            within_slo: 0,
            refused: 0,
            errors: 0,
            attempts: 0,
            ok_latency: crate::stats::histogram(),
            refused_latency: crate::stats::histogram(),
        }
    }

    /// Requests started and not ended yet.
    pub(crate) fn in_flight(&self) -> u64 {
        self.sent - self.ok - self.refused - self.errors
    }
}

/// Counts and latencies of a run, per SLO class.
#[derive(Debug)]
pub(crate) struct Tally {
    /// One per SLO class, in the order given.
    pub(crate) classes: Vec<ClassTally>,
    /// Errors by kind (`HTTP 500`, `unanswered`, the first words of a failure).
    pub(crate) errors_by_kind: BTreeMap<String, u64>,
}

impl Tally {
    /// A tally for these SLO classes (`None`: a class without an SLO parameter).
    pub(crate) fn new(slos: &[Option<Nanos>]) -> Self {
        let classes = if slos.is_empty() {
            vec![ClassTally::new(None)]
        } else {
            slos.iter().map(|&s| ClassTally::new(s)).collect()
        };
        Self {
            classes,
            errors_by_kind: BTreeMap::new(),
        }
    }

    fn class(&mut self, class: u8) -> &mut ClassTally {
        let last = self.classes.len() - 1;
        &mut self.classes[usize::from(class).min(last)]
    }

    /// A request of `class` starts.
    pub(crate) fn started(&mut self, class: u8) {
        self.class(class).sent += 1;
    }

    /// A request of `class` ended with `outcome` after `attempts` exchanges, `latency`
    /// after its scheduled send time.
    pub(crate) fn ended(&mut self, class: u8, outcome: &Outcome, latency: Nanos, attempts: u32) {
        let c = self.class(class);
        c.attempts += u64::from(attempts);
        match outcome {
            Outcome::Ok => {
                c.ok += 1;
                if c.slo.is_none_or(|slo| latency <= slo) {
                    c.within_slo += 1;
                }
                c.ok_latency.saturating_record(latency.get().max(1));
            }
            Outcome::Refused => {
                c.refused += 1;
                c.refused_latency.saturating_record(latency.get().max(1));
            }
            Outcome::Status(s) => {
                c.errors += 1;
                *self.errors_by_kind.entry(format!("HTTP {s}")).or_default() += 1;
            }
            Outcome::Failed(e) => {
                c.errors += 1;
                // The kind is the message up to its first colon (`connect`, `read`, ...).
                let kind = e.split(':').next().unwrap_or(e).to_owned();
                *self.errors_by_kind.entry(kind).or_default() += 1;
            }
        }
    }

    /// The run is over: requests still in flight are errors (`unanswered`).
    pub(crate) fn close(&mut self) {
        let mut unanswered = 0;
        for c in &mut self.classes {
            let n = c.in_flight();
            c.errors += n;
            unanswered += n;
        }
        if unanswered > 0 {
            *self.errors_by_kind.entry("unanswered".into()).or_default() += unanswered;
        }
    }

    /// Sums over the classes: (sent, ok, within SLO, refused, errors, attempts).
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.classes {
            t.sent += c.sent;
            t.ok += c.ok;
            t.within_slo += c.within_slo;
            t.refused += c.refused;
            t.errors += c.errors;
            t.attempts += c.attempts;
        }
        t
    }
}

/// Counts summed over the classes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) within_slo: u64,
    pub(crate) refused: u64,
    pub(crate) errors: u64,
    pub(crate) attempts: u64,
}

impl Totals {
    /// Requests ended so far.
    pub(crate) fn ended(&self) -> u64 {
        self.ok + self.refused + self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_ends_once_and_counts_add_up() {
        let mut t = Tally::new(&[Some(Nanos::from_millis(5)), None]);
        for _ in 0..6 {
            t.started(0);
        }
        t.started(1);
        t.ended(0, &Outcome::Ok, Nanos::from_millis(4), 1);
        t.ended(0, &Outcome::Ok, Nanos::from_millis(6), 1);
        t.ended(0, &Outcome::Refused, Nanos::from_millis(1), 3);
        t.ended(0, &Outcome::Status(500), Nanos::from_millis(1), 1);
        t.ended(0, &Outcome::Failed("read: reset".into()), Nanos::ZERO, 1);
        t.ended(1, &Outcome::Ok, Nanos::from_secs(9), 1);
        assert_eq!(t.classes[0].in_flight(), 1);
        t.close();
        let c = &t.classes[0];
        assert_eq!((c.ok, c.within_slo, c.refused, c.errors), (2, 1, 1, 3));
        assert_eq!(c.refused_latency.len(), 1);
        assert_eq!(c.ok_latency.len(), 2);
        assert_eq!(c.attempts, 7);
        // No SLO: every 200 is within it.
        assert_eq!(t.classes[1].within_slo, 1);
        let tot = t.totals();
        assert_eq!(tot.sent, tot.ended());
        assert_eq!(t.errors_by_kind["HTTP 500"], 1);
        assert_eq!(t.errors_by_kind["read"], 1);
        assert_eq!(t.errors_by_kind["unanswered"], 1);
    }
}
