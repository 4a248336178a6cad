//! Errors of the workload generators.

use super::azure::TraceError;
use thiserror::Error;

/// A workload's parameters are unusable.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SpecError {
    /// A workload that addresses no model.
    #[error("{0}: the workload needs at least one model")]
    NoModels(&'static str),
    /// A rate, duration, factor or count that must be positive (and finite) is not.
    #[error("{what} must be positive and finite, got {value}")]
    NotPositive {
        /// The parameter.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// A per-model weight list whose length differs from the model count.
    #[error("{what}: {got} weights for {models} models")]
    WeightCount {
        /// The parameter.
        what: &'static str,
        /// Weights given.
        got: usize,
        /// Models addressed.
        models: usize,
    },
    /// A stepped schedule that never reaches its end, or takes too many steps.
    #[error("stepped schedule from {start} to {end} by {step}: {why}")]
    BadSchedule {
        /// First value.
        start: f64,
        /// Last value.
        end: f64,
        /// The step, in words.
        step: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A start minute outside the trace day.
    #[error("start minute {0} is outside the trace day (0..1440)")]
    StartMinute(usize),
    /// A trace with no invocation at all cannot be replayed.
    #[error("the trace has no invocations to replay")]
    EmptyTrace,
}

/// Why a workload could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// Bad parameters.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The Azure trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// Check that `value` is positive and finite.
pub(crate) fn positive(what: &'static str, value: f64) -> Result<f64, SpecError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(SpecError::NotPositive { what, value })
    }
}
