//! [`WorkloadSpec`]: a description of any workload, from which [`Workload::new`] builds
//! the generators.
//!
//! [`Workload::new`]: super::Workload::new

use super::azure::{ReplayConfig, TraceSource};
use super::bursty::BurstySpec;
use super::closed_loop::ClosedLoopSpec;
use super::fill_memory::FillMemorySpec;
use super::open_loop::OpenLoopSpec;
use super::ramp::RampSpec;
use super::slo_sweep::SloSweepSpec;

/// An Azure trace replay: which trace, which day, how to replay it.
#[derive(Clone, Debug, PartialEq)]
pub struct AzureSpec {
    /// The trace (real files or the synthetic generator).
    pub source: TraceSource,
    /// Day 1–14.
    pub day: u8,
    /// Replay parameters.
    pub replay: ReplayConfig,
}

/// Any workload. Model indices of a [`WorkloadSpec::Mix`] are laid end to end: part
/// `i`'s models follow those of parts `0..i`.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadSpec {
    /// N outstanding per model.
    ClosedLoop(ClosedLoopSpec),
    /// Poisson or fixed rate, split evenly, Zipf-skewed or by weights.
    OpenLoop(OpenLoopSpec),
    /// Exponential ON/OFF periods, Poisson while ON.
    Bursty(BurstySpec),
    /// SLO factor stepped every period (`slo-exp-1`).
    SloSweep(SloSweepSpec),
    /// Hot, warm and cold models (`fill_memory`).
    FillMemory(FillMemorySpec),
    /// One more active model every interval (`bursty_experiment`).
    Ramp(RampSpec),
    /// Azure Functions trace replay.
    Azure(AzureSpec),
    /// Several workloads at once (e.g. `slo-exp-2`: an SLO sweep plus closed-loop
    /// background models).
    Mix(Vec<Self>),
}

impl WorkloadSpec {
    /// Model instances the workload addresses (`0..models()`).
    pub fn models(&self) -> usize {
        match self {
            Self::ClosedLoop(s) => s.models,
            Self::OpenLoop(s) => s.models,
            Self::Bursty(s) => s.models,
            Self::SloSweep(s) => s.models,
            Self::FillMemory(s) => s.models(),
            Self::Ramp(s) => s.majors + 1,
            Self::Azure(s) => s.replay.instances,
            Self::Mix(parts) => parts.iter().map(Self::models).sum(),
        }
    }
}
