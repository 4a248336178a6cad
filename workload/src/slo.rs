//! Which [`Slo`] each arrival carries: fixed, or a factor of the batch-1 latency stepped
//! every period (the original's `slo-exp-1` sweep).

use super::error::SpecError;
use super::step::{StepSchedule, Stepped};
use clockwork_core::client::Slo;
use clockwork_core::time::Nanos;

/// The SLO plan of a generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SloPlan {
    /// Every arrival carries this SLO.
    Fixed(Slo),
    /// Arrivals carry [`Slo::Factor`] with the schedule's value at their time (a multiple
    /// of the model's batch-1 latency); the generator ends with the schedule.
    FactorSweep(StepSchedule),
}

impl Default for SloPlan {
    /// The controller's default SLO.
    fn default() -> Self {
        Self::Fixed(Slo::Default)
    }
}

impl SloPlan {
    pub(crate) fn build(&self) -> Result<BuiltSlo, SpecError> {
        match self {
            Self::Fixed(slo) => Ok(BuiltSlo::Fixed(*slo)),
            Self::FactorSweep(s) => {
                let built = s.build()?;
                for &v in built.values() {
                    super::error::positive("SLO factor", v)?;
                }
                Ok(BuiltSlo::Sweep(built))
            }
        }
    }
}

/// A built [`SloPlan`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum BuiltSlo {
    Fixed(Slo),
    Sweep(Stepped),
}

impl BuiltSlo {
    /// The SLO of an arrival at `t`, or `None` once a sweep has ended.
    pub(crate) fn at(&self, t: Nanos) -> Option<Slo> {
        match self {
            Self::Fixed(slo) => Some(*slo),
            // f64 -> f32: SLO factors are small numbers; f32 is the wire type.
            Self::Sweep(s) => s.at(t).map(|v| Slo::Factor(v as f32)),
        }
    }

    /// When a sweep ends (`Nanos::MAX` for a fixed SLO).
    pub(crate) fn end(&self) -> Nanos {
        match self {
            Self::Fixed(_) => Nanos::MAX,
            Self::Sweep(s) => s.end(),
        }
    }
}
