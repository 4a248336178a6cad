//! A bench workload as the arrivals of the virtual-time simulator
//! (`clockwork_sim`), so that `clockwork-bench sim` and tests replay the
//! very workloads the main job sends over the network.

use super::ArrivalSource;
use clockwork_core::{ModelId, Nanos};
use clockwork_sim::workload::{Arrival as SimArrival, Workload};

/// Arrivals of `source` (model indices from 0) as simulator arrivals (model ids from
/// `first`: the first of the models registered in the simulator), up to `end`.
#[derive(Debug)]
pub struct SimArrivals<S> {
    source: S,
    first: ModelId,
    end: Nanos,
}

impl<S: ArrivalSource> SimArrivals<S> {
    /// Arrivals of `source` before `end`, model index `i` mapped to `first + i`.
    pub const fn new(source: S, first: ModelId, end: Nanos) -> Self {
        Self { source, first, end }
    }
}

impl<S: ArrivalSource> Workload for SimArrivals<S> {
    fn next_arrival(&mut self) -> Option<SimArrival> {
        let a = self.source.next_arrival()?;
        if a.at >= self.end {
            return None;
        }
        let index = u32::try_from(a.model).ok()?;
        Some(SimArrival {
            at: a.at,
            model: ModelId(self.first.0.checked_add(index)?),
            slo: a.slo,
        })
    }
}
