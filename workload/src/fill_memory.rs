//! Fill memory (the original's `fill_memory`): many models at very different Poisson
//! rates, so that the hot ones stay resident and the cold ones cycle through the cache.
//! The original: 411 ResNet50 copies, one at 1000 r/s, ten at 10 r/s, 400 at 1 r/s.

use super::error::{positive, SpecError};
use super::open_loop::{Interarrival, OpenLoopSpec, RateSplit};
use super::slo::SloPlan;
use super::step::Level;

/// A group of models sharing a per-model rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateGroup {
    /// Models in the group.
    pub models: usize,
    /// Per-model rate, r/s.
    pub rate: f64,
}

/// A fill-memory workload: groups laid out in order (group 0 gets the first models).
#[derive(Clone, Debug, PartialEq)]
pub struct FillMemorySpec {
    /// The groups.
    pub groups: Vec<RateGroup>,
    /// Multiplies every rate.
    pub scale: f64,
    /// SLO of each request.
    pub slo: SloPlan,
}

impl Default for FillMemorySpec {
    /// The original's 1 × 1000, 10 × 10 and 400 × 1 r/s, unscaled.
    fn default() -> Self {
        Self {
            groups: vec![
                RateGroup {
                    models: 1,
                    rate: 1000.0,
                },
                RateGroup {
                    models: 10,
                    rate: 10.0,
                },
                RateGroup {
                    models: 400,
                    rate: 1.0,
                },
            ],
            scale: 1.0,
            slo: SloPlan::default(),
        }
    }
}

impl FillMemorySpec {
    /// Total model instances.
    pub fn models(&self) -> usize {
        self.groups.iter().map(|g| g.models).sum()
    }

    /// The equivalent Poisson open loop with per-model weights.
    pub fn to_open_loop(&self) -> Result<OpenLoopSpec, SpecError> {
        let scale = positive("fill-memory scale", self.scale)?;
        let mut weights = Vec::with_capacity(self.models());
        for g in &self.groups {
            let r = positive("fill-memory rate", g.rate)?;
            weights.extend(std::iter::repeat_n(r * scale, g.models));
        }
        if weights.is_empty() {
            return Err(SpecError::NoModels("fill memory"));
        }
        let total = weights.iter().sum();
        Ok(OpenLoopSpec {
            models: weights.len(),
            rate: Level::Constant(total),
            split: RateSplit::Weights(weights),
            interarrival: Interarrival::Poisson,
            slo: self.slo,
        })
    }
}
