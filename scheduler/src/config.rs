//! Scheduler configuration. Defaults are the original INFER4 constants (reference
//! section 3.10); every field is documented with the rule it feeds.

use crate::error::ConfigError;
use clockwork_core::{Nanos, DEFAULT_PAGE_SIZE};

/// Largest estimator window the scheduler stores inline.
pub const MAX_ESTIMATOR_WINDOW: usize = 12;

/// Tunables of the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How far ahead of `now` each GPU's PCIe timeline is filled, and the most its EXEC
    /// timeline is (the EXEC one follows the tightest recent SLO: [`crate::ahead`]).
    /// Work is handed to a GPU only while its predicted free time is before
    /// `now + schedule_ahead`; it also widens windows (reference 2.4). Default 10 ms
    /// (5 ms in the paper's §6.3/6.4/6.6 runs).
    pub schedule_ahead: Nanos,
    /// SLO of requests that ask for [`clockwork_core::Slo::Default`]. Default 100 ms.
    pub default_slo: Nanos,
    /// Completion target = response deadline − buffer: the time left for the result to
    /// travel back and the answer to leave. This is the largest buffer; the scheduler
    /// measures results' return delays and uses what they need ([`crate::margins`]).
    /// Default 5 ms (the original's constant `buffer`).
    pub buffer: Nanos,
    /// Smallest (and initial, before any link or result is measured) buffer; equal to
    /// `buffer` for the original's constant buffer. Default 200 µs.
    pub min_buffer: Nanos,
    /// Largest lead time: nothing is predicted to start before `now + lead`, where the
    /// lead is measured from actions' send delays ([`crate::margins`]). Default 1 ms
    /// (the original's constant `future`).
    pub future: Nanos,
    /// Smallest (and initial) lead time; equal to `future` for the original's constant.
    /// Default 100 µs.
    pub min_future: Nanos,
    /// A timeline forgets an overdue head action after this. Default 10 ms.
    pub lag: Nanos,
    /// Outstanding LOADs per GPU. Default 2.
    pub max_loads_in_flight: u32,
    /// Largest batch size formed. Default 16 (INFER4).
    pub max_batch: u32,
    /// Batch sizes above 1 whose execution estimate exceeds this are not used. Default
    /// 250 ms (the original's code; its docs say 25 ms).
    pub max_exec: Nanos,
    /// Measurements kept per estimator (1..=[`MAX_ESTIMATOR_WINDOW`]). Default 10.
    pub estimator_window: usize,
    /// Percentile of the window used as the estimate. Default 0.9: with a window of
    /// 10, the second largest (the original uses 0.99, the window's maximum). One slow
    /// run in ten then no longer sets the estimate of every decision that follows: on
    /// a GPU near saturation the maximum made the controller see a GPU a few per cent
    /// slower than it is and drop requests that would have made it. In virtual time
    /// (issue 13's rows, `docs/benchmarks.md`) 0.8 served more still, but cost one
    /// request of 125,136 in the 6.5 run; 0.9 keeps that run at 100 % with 0 late
    /// successes.
    pub estimator_percentile: f64,
    /// Page size used to precompute model page counts (GPUs with another page size are
    /// handled, just not precomputed). Default 16 MiB.
    pub page_size: u64,
    /// LoadTracker capacity: a GPU with more outstanding work than this is overloaded
    /// and its models become replication candidates. Default = 100 ms (the original
    /// uses `default_slo`).
    pub load_capacity: Nanos,
    /// Record per-request and per-action log records (reference section 5) for the
    /// driver to drain with [`crate::Scheduler::poll_log`]. Default off.
    pub telemetry: bool,
    /// Seed of the scheduler's own random choices (sampling GPUs for a LOAD).
    pub seed: u64,
    /// Most model instances ever registered (retired ones included: ids are not
    /// reused). A registration that would pass it is refused whole. Every instance
    /// costs memory here and on each worker, so this bounds what any one client can
    /// ask for over the native port or HTTP. Default [`DEFAULT_MAX_MODELS`].
    pub max_models: u32,
    /// Share of a GPU's admitted requests that may fail (any answer but `Success`)
    /// before the requests its plan under pressure doubts are refused at admission
    /// instead of queued ([`crate::doubt`]), in [0, 1]. 0 refuses every doubtful
    /// request (every failure that can come early does, at some cost in goodput); 1
    /// queues them all. Default [`crate::doubt::LATE_FAILURES_MAX`] (0.1).
    pub late_failure_share: f64,
    /// Most input (and output) bytes one batch may carry: an INFER goes to its worker
    /// in one frame, and its result comes back in one, so a batch larger than the
    /// worker link's frame limit could never be sent (the worker would close the
    /// link). Batch sizes above 1 whose inputs or outputs would pass it are not used;
    /// a profile whose batch 1 passes it is refused. The controller sets it from its
    /// link limit. Default [`DEFAULT_MAX_BATCH_BYTES`].
    pub max_batch_bytes: u64,
}

/// Default [`Config::max_batch_bytes`]: a 16 MiB link frame less 64 KiB for the
/// INFER's other fields and the archive's layout.
pub const DEFAULT_MAX_BATCH_BYTES: u64 = (16 << 20) - (64 << 10);

/// Default [`Config::max_models`]: 2^20, ten times the largest simulated cluster's
/// 100,000 instances.
pub const DEFAULT_MAX_MODELS: u32 = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            schedule_ahead: Nanos::from_millis(10),
            default_slo: Nanos::from_millis(100),
            buffer: Nanos::from_millis(5),
            min_buffer: Nanos::from_micros(200),
            future: Nanos::from_millis(1),
            min_future: Nanos::from_micros(100),
            lag: Nanos::from_millis(10),
            max_loads_in_flight: 2,
            max_batch: 16,
            max_exec: Nanos::from_millis(250),
            estimator_window: 10,
            estimator_percentile: 0.9,
            page_size: DEFAULT_PAGE_SIZE,
            load_capacity: Nanos::from_millis(100),
            telemetry: false,
            seed: 0,
            max_models: DEFAULT_MAX_MODELS,
            late_failure_share: crate::doubt::LATE_FAILURES_MAX,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

impl Config {
    /// Checks the values the scheduler relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.schedule_ahead == Nanos::ZERO {
            return Err(ConfigError::Invalid("schedule_ahead must be positive"));
        }
        if self.default_slo == Nanos::ZERO {
            return Err(ConfigError::Invalid("default_slo must be positive"));
        }
        if self.min_buffer > self.buffer {
            return Err(ConfigError::Invalid("min_buffer must not exceed buffer"));
        }
        if self.min_future > self.future {
            return Err(ConfigError::Invalid("min_future must not exceed future"));
        }
        if self.max_loads_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "max_loads_in_flight must be at least 1",
            ));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::Invalid("max_batch must be at least 1"));
        }
        if self.estimator_window == 0 || self.estimator_window > MAX_ESTIMATOR_WINDOW {
            return Err(ConfigError::Invalid("estimator_window must be in 1..=12"));
        }
        if !(self.estimator_percentile > 0.0 && self.estimator_percentile <= 1.0) {
            return Err(ConfigError::Invalid(
                "estimator_percentile must be in (0, 1]",
            ));
        }
        if self.page_size == 0 {
            return Err(ConfigError::Invalid("page_size must be positive"));
        }
        if self.load_capacity == Nanos::ZERO {
            return Err(ConfigError::Invalid("load_capacity must be positive"));
        }
        if self.max_models == 0 {
            return Err(ConfigError::Invalid("max_models must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.late_failure_share) {
            return Err(ConfigError::Invalid("late_failure_share must be in [0, 1]"));
        }
        if self.max_batch_bytes == 0 {
            return Err(ConfigError::Invalid("max_batch_bytes must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        Config::default().validate().unwrap();
        let c = Config {
            estimator_window: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            estimator_percentile: f64::NAN,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        for bad in [-0.1, 1.5, f64::NAN] {
            let c = Config {
                late_failure_share: bad,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
        let c = Config {
            max_batch_bytes: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
