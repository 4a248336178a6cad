//! The simulator's request arrivals: a workload library [`ArrivalSource`], its model
//! indices (`0..models()`) mapped onto a range of registered model ids, with the next
//! arrival held so the event loop can compare its time with the other events'.

use clockwork_core::{ModelId, Nanos, Slo};
use clockwork_scheduler::ModelRange;
use clockwork_workload::{Arrival, ArrivalSource};
use std::fmt;

/// A workload that addresses more models than the range it was given holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadRangeError {
    /// Model indices the workload addresses.
    pub addressed: usize,
    /// Models in the range.
    pub registered: u32,
}

impl fmt::Display for WorkloadRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the workload addresses {} models but the range holds {}",
            self.addressed, self.registered
        )
    }
}

impl std::error::Error for WorkloadRangeError {}

/// The arrivals feeding a simulation.
#[derive(Debug)]
pub(crate) struct Arrivals {
    source: Box<dyn ArrivalSource>,
    first: ModelId,
    /// `source.models()`, checked to fit the range.
    models: usize,
    head: Option<Arrival>,
}

impl Arrivals {
    /// Arrivals of `source`, index `i` meaning model `models.first + i`.
    pub(crate) fn new(
        mut source: Box<dyn ArrivalSource>,
        models: ModelRange,
    ) -> Result<Self, WorkloadRangeError> {
        let addressed = source.models();
        if u32::try_from(addressed)
            .ok()
            .is_none_or(|n| n > models.count)
        {
            return Err(WorkloadRangeError {
                addressed,
                registered: models.count,
            });
        }
        let head = source.next_arrival();
        Ok(Self {
            source,
            first: models.first,
            models: addressed,
            head,
        })
    }

    /// When the next arrival is due.
    pub(crate) fn next_at(&self) -> Option<Nanos> {
        self.head.map(|a| a.at)
    }

    /// Takes the next arrival as (time, model, SLO). An index outside the source's own
    /// `models()` (a broken source) ends the arrivals.
    pub(crate) fn pop(&mut self) -> Option<(Nanos, ModelId, Slo)> {
        let a = self.head.take()?;
        // Below `models`, which fits the range: the sum cannot overflow.
        let model = (a.model < self.models)
            .then(|| u32::try_from(a.model).ok())
            .flatten()
            .and_then(|i| self.first.0.checked_add(i));
        let Some(model) = model else {
            self.head = None;
            return None;
        };
        self.head = self.source.next_arrival();
        Some((a.at, ModelId(model), a.slo))
    }
}
