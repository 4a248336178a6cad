//! What every generator produces: [`Arrival`]s, in time order, from an [`ArrivalSource`].

use clockwork_core::client::Slo;
use clockwork_core::time::Nanos;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

/// One request to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    /// When to send it, as an offset from the start of the workload.
    pub at: Nanos,
    /// The model instance, an index into the driver's list of model instances.
    pub model: usize,
    /// Its latency objective.
    pub slo: Slo,
}

/// An open-loop generator: arrivals that do not depend on responses, produced lazily and
/// in non-decreasing time order. `None` means the generator has finished for good.
pub trait ArrivalSource: fmt::Debug + Send {
    /// The next arrival, or `None` when there are no more.
    fn next_arrival(&mut self) -> Option<Arrival>;
    /// How many model indices this source addresses (`0..models()`).
    fn models(&self) -> usize;
}

impl<S: ArrivalSource + ?Sized> ArrivalSource for Box<S> {
    fn next_arrival(&mut self) -> Option<Arrival> {
        (**self).next_arrival()
    }
    fn models(&self) -> usize {
        (**self).models()
    }
}

/// Drain `source` up to and including time `end`, for tests and offline analysis.
pub fn collect_until(source: &mut dyn ArrivalSource, end: Nanos) -> Vec<Arrival> {
    let mut out = Vec::new();
    while let Some(a) = source.next_arrival() {
        if a.at > end {
            break;
        }
        out.push(a);
    }
    out
}

/// Several open-loop sources merged into one time-ordered stream. Source `i`'s models
/// are shifted by the sum of the model counts of sources `0..i`, so every source keeps
/// its own model indices. Ties are broken by source order, so merging is deterministic.
#[derive(Debug)]
pub struct Merged {
    sources: Vec<(Box<dyn ArrivalSource>, usize)>,
    heads: Vec<Option<Arrival>>,
    heap: BinaryHeap<Reverse<(Nanos, usize)>>,
    models: usize,
    primed: bool,
}

impl Merged {
    /// Merge `sources`, laying their model ranges end to end.
    pub fn new(sources: Vec<Box<dyn ArrivalSource>>) -> Self {
        let mut offset = 0;
        let sources: Vec<_> = sources
            .into_iter()
            .map(|s| {
                let here = offset;
                offset += s.models();
                (s, here)
            })
            .collect();
        Self::with_offsets(sources, offset)
    }

    /// Merge `sources`, each with the offset added to its model indices, addressing
    /// `models` models in all.
    pub fn with_offsets(sources: Vec<(Box<dyn ArrivalSource>, usize)>, models: usize) -> Self {
        Self {
            heads: vec![None; sources.len()],
            sources,
            heap: BinaryHeap::new(),
            models,
            primed: false,
        }
    }

    fn pull(&mut self, i: usize) {
        let (source, offset) = &mut self.sources[i];
        let next = source.next_arrival().map(|mut a| {
            a.model += *offset;
            a
        });
        if let Some(a) = next {
            self.heap.push(Reverse((a.at, i)));
        }
        self.heads[i] = next;
    }

    fn prime(&mut self) {
        if !self.primed {
            self.primed = true;
            for i in 0..self.sources.len() {
                self.pull(i);
            }
        }
    }

    /// The time of the next arrival, without taking it.
    pub fn peek_at(&mut self) -> Option<Nanos> {
        self.prime();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}

impl ArrivalSource for Merged {
    fn next_arrival(&mut self) -> Option<Arrival> {
        self.prime();
        let Reverse((_, i)) = self.heap.pop()?;
        let head = self.heads[i].take();
        self.pull(i);
        head
    }
    fn models(&self) -> usize {
        self.models
    }
}
