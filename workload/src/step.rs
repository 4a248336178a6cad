//! Values stepped by addition or multiplication every period: the original's
//! `AdjustSLO`, `AdjustPoissonRate` and `AdjustScaleFactor` timers.

use super::error::SpecError;
use clockwork_core::time::Nanos;
use std::fmt;

/// Most values a stepped schedule may take (a guard against a step that barely moves).
pub const MAX_STEPS: usize = 100_000;

/// How a stepped value changes every period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Add this (may be negative).
    Add(f64),
    /// Multiply by this (positive, not 1).
    Mul(f64),
}

impl Step {
    /// The next value after `v`.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Self::Add(x) => v + x,
            Self::Mul(m) => v * m,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Add(x) => write!(f, "add {x}"),
            Self::Mul(m) => write!(f, "mul {m}"),
        }
    }
}

/// `start`, then `step` applied once every `period`, for as long as the value has not
/// passed `end` (inclusive). When the next value would pass `end`, the schedule, and
/// the workload it drives, ends: the original's `AdjustSLO` stops the engine then.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSchedule {
    /// First value, in force from time zero.
    pub start: f64,
    /// Last allowed value (inclusive); the direction of travel is from `start` to `end`.
    pub end: f64,
    /// How the value changes.
    pub step: Step,
    /// How long each value lasts.
    pub period: Nanos,
}

impl StepSchedule {
    /// The values in order; fails unless the steps move from `start` towards `end` and
    /// get past it within [`MAX_STEPS`].
    pub fn build(&self) -> Result<Stepped, SpecError> {
        let bad = |why| SpecError::BadSchedule {
            start: self.start,
            end: self.end,
            step: self.step.to_string(),
            why,
        };
        if !self.start.is_finite() || !self.end.is_finite() {
            return Err(bad("start and end must be finite"));
        }
        if self.period == Nanos::ZERO {
            return Err(bad("the period must be positive"));
        }
        let rising = self.end >= self.start;
        let passed = |v: f64| if rising { v > self.end } else { v < self.end };
        let mut values = vec![self.start];
        let mut v = self.start;
        loop {
            let next = self.step.apply(v);
            if !next.is_finite() {
                return Err(bad("the value overflows"));
            }
            if passed(next) {
                break;
            }
            let progress = if rising { next > v } else { next < v };
            if !progress {
                return Err(bad("the step does not move towards the end"));
            }
            if values.len() >= MAX_STEPS {
                return Err(bad("too many steps"));
            }
            values.push(next);
            v = next;
        }
        Ok(Stepped {
            values,
            period: self.period,
        })
    }
}

/// A built [`StepSchedule`]: its values, and lookups by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Stepped {
    values: Vec<f64>,
    period: Nanos,
}

impl Stepped {
    /// The value in force at `t`, or `None` once the schedule has ended.
    pub fn at(&self, t: Nanos) -> Option<f64> {
        let k = usize::try_from(t.get() / self.period.get()).ok()?;
        self.values.get(k).copied()
    }

    /// When the value in force at `t` changes (or the schedule ends).
    pub fn next_change(&self, t: Nanos) -> Nanos {
        let k = t.get() / self.period.get();
        Nanos((k + 1).saturating_mul(self.period.get()))
    }

    /// When the schedule ends: the number of values times the period.
    pub fn end(&self) -> Nanos {
        let n = u64::try_from(self.values.len()).unwrap_or(u64::MAX);
        Nanos(n.saturating_mul(self.period.get()))
    }

    /// All values in order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

/// A level (a rate, a scale factor) that is either constant or stepped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    /// The same value for ever.
    Constant(f64),
    /// Stepped every period; the workload ends with the schedule.
    Stepped(StepSchedule),
}

impl Level {
    /// Build it, checking that every value is positive and finite.
    pub(crate) fn build(&self, what: &'static str) -> Result<BuiltLevel, SpecError> {
        match self {
            Self::Constant(v) => Ok(BuiltLevel::Constant(super::error::positive(what, *v)?)),
            Self::Stepped(s) => {
                let built = s.build()?;
                for &v in built.values() {
                    super::error::positive(what, v)?;
                }
                Ok(BuiltLevel::Stepped(built))
            }
        }
    }
}

/// A built [`Level`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum BuiltLevel {
    Constant(f64),
    Stepped(Stepped),
}

impl BuiltLevel {
    /// The value at `t` and when it next changes (`Nanos::MAX`: never); `None` once a
    /// stepped level has ended.
    pub(crate) fn at(&self, t: Nanos) -> Option<(f64, Nanos)> {
        match self {
            Self::Constant(v) => Some((*v, Nanos::MAX)),
            Self::Stepped(s) => s.at(t).map(|v| (v, s.next_change(t))),
        }
    }
}
