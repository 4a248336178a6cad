//! The shape of a trace, computed from its per-minute counts, next to the published
//! targets (reference §7.2): the CDF of daily invocations per function, concentration,
//! the timer share, inter-arrival burstiness, and the diurnal swing of the total.
//!
//! Inter-arrival CVs are approximated from minute counts by spreading a minute's `c`
//! invocations evenly over it (at `(j + ½) / c`): periodic counts give CV 0 exactly;
//! a function that is Poisson within minutes and busier than about one per minute gets
//! a CV below its true one. Only functions with at least
//! [`CV_MIN_INVOCATIONS`] invocations in the day get a CV.

use super::trace::{AzureTrace, MinuteCounts, Trigger, MINUTES_PER_DAY};
use std::fmt;

/// Fewest invocations in the day for a function's inter-arrival CV to count.
pub const CV_MIN_INVOCATIONS: u64 = 10;

/// A CV at or below this counts as "≈ 0" (periodic).
pub const CV_ZERO: f64 = 0.01;

/// Daily-invocation thresholds of the published CDF: label and invocations per day.
pub const CDF_THRESHOLDS: [(&str, f64); 5] = [
    ("<= 1/day", 1.0),
    ("<= 1/hour", 24.0),
    ("<= 1/5min", 288.0),
    ("<= 1/min", 1440.0),
    ("<= 1/s", 86_400.0),
];

/// Published fraction of functions at each [`CDF_THRESHOLDS`] point (Fig 5a).
pub const CDF_TARGETS: [f64; 5] = [0.33, 0.63, 0.80, 0.915, 0.99];

/// Fractions of the busiest functions whose invocation share is reported.
pub const TOP_FRACTIONS: [f64; 3] = [0.001, 0.01, 0.1];

/// Published invocation shares of [`TOP_FRACTIONS`] (Fig 5b).
pub const TOP_TARGETS: [f64; 3] = [0.675, 0.90, 0.99];

/// The inter-arrival CVs of a set of functions, summarised.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct CvSummary {
    /// Functions with a CV (enough invocations).
    pub functions: usize,
    /// Median CV.
    pub median: f64,
    /// Fraction with CV ≤ [`CV_ZERO`].
    pub zero: f64,
    /// Fraction with CV ≤ 1.
    pub le_1: f64,
    /// Fraction with CV ≤ 2.
    pub le_2: f64,
    /// Fraction with CV ≤ 4.
    pub le_4: f64,
    /// Fraction with CV > 10.
    pub gt_10: f64,
}

impl CvSummary {
    /// Summarise a list of CVs.
    pub fn of(mut cvs: Vec<f64>) -> Self {
        if cvs.is_empty() {
            return Self::default();
        }
        cvs.sort_by(f64::total_cmp);
        let n = cvs.len() as f64;
        let frac = |pred: &dyn Fn(f64) -> bool| cvs.iter().filter(|&&c| pred(c)).count() as f64 / n;
        let mid = cvs.len() / 2;
        let median = if cvs.len() % 2 == 1 {
            cvs[mid]
        } else {
            (cvs[mid - 1] + cvs[mid]) / 2.0
        };
        Self {
            functions: cvs.len(),
            median,
            zero: frac(&|c| c <= CV_ZERO),
            le_1: frac(&|c| c <= 1.0),
            le_2: frac(&|c| c <= 2.0),
            le_4: frac(&|c| c <= 4.0),
            gt_10: frac(&|c| c > 10.0),
        }
    }
}

/// The shape of one trace day.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceStats {
    /// Functions (rows).
    pub functions: usize,
    /// Invocations over the day.
    pub total_invocations: u64,
    /// Largest daily total of a function.
    pub max_daily: u64,
    /// Fraction of functions at or below each [`CDF_THRESHOLDS`] point.
    pub daily_cdf: [f64; 5],
    /// Invocation share of the busiest [`TOP_FRACTIONS`] of functions.
    pub top_share: [f64; 3],
    /// Fraction of functions with a timer trigger.
    pub timer_fraction: f64,
    /// Fraction of invocations from timer-triggered functions.
    pub timer_invocation_share: f64,
    /// Inter-arrival CVs of timer functions.
    pub cv_timers: CvSummary,
    /// Inter-arrival CVs of the other functions.
    pub cv_non_timers: CvSummary,
    /// Smallest hourly total over the mean hourly total.
    pub hourly_min_over_mean: f64,
    /// Largest hourly total over the mean hourly total.
    pub hourly_max_over_mean: f64,
    /// Largest per-minute total over the mean per-minute total.
    pub minute_max_over_mean: f64,
}

/// The inter-arrival CV of one function's counts (even spacing within minutes), or
/// `None` below [`CV_MIN_INVOCATIONS`].
pub fn interarrival_cv(counts: &MinuteCounts) -> Option<f64> {
    if counts.total() < CV_MIN_INVOCATIONS {
        return None;
    }
    let (mut n, mut sum, mut sum_sq) = (0.0f64, 0.0f64, 0.0f64);
    let mut last: Option<f64> = None;
    for (m, c) in counts.nonzero() {
        let c = f64::from(c);
        let first = m as f64 + 0.5 / c;
        if let Some(prev) = last {
            let g = first - prev;
            n += 1.0;
            sum += g;
            sum_sq += g * g;
        }
        // c - 1 gaps of 1/c inside the minute.
        n += c - 1.0;
        sum += (c - 1.0) / c;
        sum_sq += (c - 1.0) / (c * c);
        last = Some(m as f64 + (c - 0.5) / c);
    }
    if n < 1.0 || sum <= 0.0 {
        return None;
    }
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0);
    Some(var.sqrt() / mean)
}

impl TraceStats {
    /// Compute the statistics of `trace`.
    pub fn compute(trace: &AzureTrace) -> Self {
        let n = trace.functions.len();
        let nf = n.max(1) as f64;
        let mut totals: Vec<u64> = trace.functions.iter().map(|f| f.counts.total()).collect();
        totals.sort_unstable_by(|a, b| b.cmp(a));
        let total: u64 = totals.iter().sum();
        let daily_cdf = CDF_THRESHOLDS
            .map(|(_, x)| totals.iter().filter(|&&t| t as f64 <= x).count() as f64 / nf);
        let top_share = TOP_FRACTIONS.map(|f| {
            let k = ((n as f64 * f).round() as usize).clamp(1, n.max(1));
            let s: u64 = totals.iter().take(k).sum();
            s as f64 / total.max(1) as f64
        });
        let timers: Vec<_> = trace
            .functions
            .iter()
            .filter(|f| f.trigger == Trigger::Timer)
            .collect();
        let timer_total: u64 = timers.iter().map(|f| f.counts.total()).sum();
        let (mut cv_t, mut cv_o) = (Vec::new(), Vec::new());
        for f in &trace.functions {
            if let Some(cv) = interarrival_cv(&f.counts) {
                if f.trigger == Trigger::Timer {
                    cv_t.push(cv);
                } else {
                    cv_o.push(cv);
                }
            }
        }
        let minutes = trace.minute_totals();
        let minute_mean = total as f64 / MINUTES_PER_DAY as f64;
        let hours: Vec<u64> = minutes.chunks(60).map(|h| h.iter().sum()).collect();
        let hour_mean = total as f64 / hours.len().max(1) as f64;
        let ratio = |x: u64, mean: f64| if mean > 0.0 { x as f64 / mean } else { 0.0 };
        Self {
            functions: n,
            total_invocations: total,
            max_daily: totals.first().copied().unwrap_or(0),
            daily_cdf,
            top_share,
            timer_fraction: timers.len() as f64 / nf,
            timer_invocation_share: timer_total as f64 / total.max(1) as f64,
            cv_timers: CvSummary::of(cv_t),
            cv_non_timers: CvSummary::of(cv_o),
            hourly_min_over_mean: ratio(hours.iter().copied().min().unwrap_or(0), hour_mean),
            hourly_max_over_mean: ratio(hours.iter().copied().max().unwrap_or(0), hour_mean),
            minute_max_over_mean: ratio(minutes.iter().copied().max().unwrap_or(0), minute_mean),
        }
    }

    /// Rows of (statistic, published target, measured value), for reports.
    pub fn comparison(&self) -> Vec<(String, &'static str, f64)> {
        let mut rows = Vec::new();
        let cdf_targets = ["~0.33", "~0.63", "~0.80", "~0.90-0.93", "~0.99"];
        for (i, (label, _)) in CDF_THRESHOLDS.iter().enumerate() {
            rows.push((
                format!("CDF daily invocations {label}"),
                cdf_targets[i],
                self.daily_cdf[i],
            ));
        }
        let top_targets = ["~0.65-0.70", "~0.90", "~0.99"];
        for (i, f) in TOP_FRACTIONS.iter().enumerate() {
            rows.push((
                format!("share of invocations, top {}% functions", f * 100.0),
                top_targets[i],
                self.top_share[i],
            ));
        }
        rows.push((
            "log10(max daily invocations)".into(),
            "~7-8",
            (self.max_daily.max(1) as f64).log10(),
        ));
        rows.push((
            "timer fraction of functions".into(),
            "~0.15-0.20",
            self.timer_fraction,
        ));
        rows.push((
            "timer share of invocations".into(),
            "~0.02",
            self.timer_invocation_share,
        ));
        rows.push((
            "timers: fraction with CV ~ 0".into(),
            "high (periodic)",
            self.cv_timers.zero,
        ));
        rows.push((
            "non-timers: median IAT CV".into(),
            "~1.5-2",
            self.cv_non_timers.median,
        ));
        rows.push((
            "non-timers: fraction CV <= 1".into(),
            "~0.35",
            self.cv_non_timers.le_1,
        ));
        rows.push((
            "non-timers: fraction CV <= 2".into(),
            "~0.55",
            self.cv_non_timers.le_2,
        ));
        rows.push((
            "non-timers: fraction CV > 10".into(),
            "~0.07-0.09",
            self.cv_non_timers.gt_10,
        ));
        rows.push((
            "hourly total min / mean".into(),
            "~0.8",
            self.hourly_min_over_mean,
        ));
        rows.push((
            "hourly total max / mean".into(),
            "~1.2 (spikes 1.5)",
            self.hourly_max_over_mean,
        ));
        rows.push((
            "minute total max / mean".into(),
            "spikes ~1.5",
            self.minute_max_over_mean,
        ));
        rows
    }
}

impl fmt::Display for TraceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} functions, {} invocations; CVs over {} non-timer and {} timer functions",
            self.functions,
            self.total_invocations,
            self.cv_non_timers.functions,
            self.cv_timers.functions
        )?;
        writeln!(f, "| statistic | target | measured |")?;
        writeln!(f, "|---|---|---|")?;
        for (name, target, value) in self.comparison() {
            writeln!(f, "| {name} | {target} | {value:.3} |")?;
        }
        Ok(())
    }
}
