//! SLO sweep (the original's `slo-exp-1`; §6.3, Fig 7): an open loop whose SLO is a
//! factor of each model's batch-1 latency, starting at `slo_start` and stepped by
//! `step` every `period` until it would pass `slo_end`, when the workload ends.

use super::error::SpecError;
use super::open_loop::{Interarrival, OpenLoopSpec, RateSplit};
use super::slo::SloPlan;
use super::step::{Level, Step, StepSchedule};
use clockwork_core::time::Nanos;

/// An SLO sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloSweepSpec {
    /// Model instances, sharing the rate evenly.
    pub models: usize,
    /// Poisson or fixed-rate.
    pub interarrival: Interarrival,
    /// Total rate, r/s.
    pub rate: f64,
    /// First SLO factor (× batch-1 latency).
    pub slo_start: f64,
    /// Last SLO factor (inclusive).
    pub slo_end: f64,
    /// How the factor changes.
    pub step: Step,
    /// How long each factor lasts.
    pub period: Nanos,
}

impl SloSweepSpec {
    /// The §6.3 sweep: factor 1 × 1.5 every 30 s up to 150, Poisson.
    pub fn paper(models: usize, rate: f64) -> Self {
        Self {
            models,
            interarrival: Interarrival::Poisson,
            rate,
            slo_start: 1.0,
            slo_end: 150.0,
            step: Step::Mul(1.5),
            period: Nanos::from_secs(30),
        }
    }

    /// The SLO schedule.
    pub fn schedule(&self) -> StepSchedule {
        StepSchedule {
            start: self.slo_start,
            end: self.slo_end,
            step: self.step,
            period: self.period,
        }
    }

    /// The equivalent open loop.
    pub fn to_open_loop(&self) -> Result<OpenLoopSpec, SpecError> {
        self.schedule().build()?;
        Ok(OpenLoopSpec {
            models: self.models,
            rate: Level::Constant(self.rate),
            split: RateSplit::Even,
            interarrival: self.interarrival,
            slo: SloPlan::FactorSweep(self.schedule()),
        })
    }
}
