//! A once-a-second progress line for the load driver.

use super::summary::ClientSample;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Counts requests as the driver sends and answers them, and prints one line per
/// second to stderr:
///
/// ```text
/// [  12/60 s] sent 24000  answered 23990  success 99.96%  in SLO 99.95%  p99 12.34 ms (last 1 s)
/// ```
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    total: Duration,
    next_print: Instant,
    sent: u64,
    answered: u64,
    succeeded: u64,
    within_slo: u64,
    window: Histogram<u64>,
}

impl Progress {
    /// Start counting now, for a run of `total`.
    pub fn new(total: Duration) -> Self {
        Self::starting_at(Instant::now(), total)
    }

    /// Start counting at `start`, for a run of `total`.
    pub fn starting_at(start: Instant, total: Duration) -> Self {
        Self {
            start,
            total,
            next_print: start + Duration::from_secs(1),
            sent: 0,
            answered: 0,
            succeeded: 0,
            within_slo: 0,
            // 1 µs to 1 h at 2 significant digits: constants hdrhistogram accepts.
            window: Histogram::new_with_bounds(1_000, 3_600_000_000_000, 2)
                .unwrap_or_else(|_| unreachable!()),
        }
    }

    /// `n` more requests were sent.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// A request was answered after `latency_ns`; `success` with status 0, `met_slo`
    /// when also within its SLO.
    pub fn answered(&mut self, latency_ns: u64, success: bool, met_slo: bool) {
        self.answered += 1;
        if success {
            self.succeeded += 1;
            self.within_slo += u64::from(met_slo);
            self.window.saturating_record(latency_ns.max(1_000));
        }
    }

    /// Count a finished sample: [`Progress::answered`] if it was answered (it is
    /// assumed already counted as sent).
    pub fn record(&mut self, s: &ClientSample) {
        if s.is_answered() {
            self.answered(s.latency_ns, s.is_success(), s.met_slo());
        }
    }

    /// Print the line to stderr if a second has passed since the last one; returns
    /// whether it printed.
    pub fn tick(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_print {
            return false;
        }
        eprintln!("{}", self.line(now.saturating_duration_since(self.start)));
        while self.next_print <= now {
            self.next_print += Duration::from_secs(1);
        }
        true
    }

    /// The progress line at `elapsed`; starts a new p99 window.
    pub fn line(&mut self, elapsed: Duration) -> String {
        let pct = |a: u64, b: u64| {
            if b == 0 {
                "-".to_owned()
            } else {
                format!("{:.2}%", 100.0 * a as f64 / b as f64)
            }
        };
        let p99 = if self.window.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2} ms", self.window.value_at_quantile(0.99) as f64 / 1e6)
        };
        self.window.reset();
        format!(
            "[{:>5.0}/{:.0} s] sent {}  answered {}  success {}  in SLO {}  p99 {} (last 1 s)",
            elapsed.as_secs_f64(),
            self.total.as_secs_f64(),
            self.sent,
            self.answered,
            pct(self.succeeded, self.answered),
            pct(self.within_slo, self.answered),
            p99
        )
    }
}
