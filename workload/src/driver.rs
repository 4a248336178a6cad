//! [`Workload`]: one interface through which a driver, a real client or a virtual-time
//! simulator, runs any mix of open- and closed-loop generators.
//!
//! ```text
//! let mut w = Workload::new(&spec, seed)?.with_end(duration);
//! for a in w.start() { send(a) }                  // closed-loop requests, at time 0
//! loop {
//!     // Real client: sleep until min(next_open_at(), next response), then
//!     // Simulator: advance virtual time to the earliest of the two.
//!     w.poll(now, &mut due);                      // open-loop arrivals with at <= now
//!     for r in responses { if let Some(a) = w.on_response(r.model, now) { send(a) } }
//!     if w.is_finished() { break }
//! }
//! ```

use super::arrival::{Arrival, ArrivalSource, Merged};
use super::azure::{AzureReplay, TraceSource};
use super::bursty::Bursty;
use super::closed_loop::ClosedLoop;
use super::error::WorkloadError;
use super::open_loop::OpenLoop;
use super::ramp::Ramp;
use super::spec::WorkloadSpec;
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;

/// One generator of a [`Workload`].
#[derive(Debug)]
pub enum Part {
    /// Arrivals independent of responses.
    Open(Box<dyn ArrivalSource>),
    /// Requests replaced on response.
    Closed(ClosedLoop),
}

impl Part {
    fn models(&self) -> usize {
        match self {
            Self::Open(s) => s.models(),
            Self::Closed(c) => c.models(),
        }
    }
}

/// A running workload: its open-loop arrivals merged in time order, and its closed
/// loops waiting for responses.
#[derive(Debug)]
pub struct Workload {
    open: Merged,
    closed: Vec<(ClosedLoop, usize)>,
    models: usize,
    end: Nanos,
    head: Option<Arrival>,
    traces: Vec<TraceSource>,
}

impl Workload {
    /// Build the generators of `spec`; `seed` fixes every arrival. Each part of a mix
    /// draws from its own stream, so adding a part leaves the others' arrivals alone.
    pub fn new(spec: &WorkloadSpec, seed: u64) -> Result<Self, WorkloadError> {
        let mut parts = Vec::new();
        let mut traces = Vec::new();
        build(spec, seed, &mut 0, &mut parts, &mut traces)?;
        let mut w = Self::from_parts(parts);
        w.traces = traces;
        Ok(w)
    }

    /// A workload of ready-made generators, their model ranges laid end to end (e.g. an
    /// [`AzureReplay`] of a trace already in memory).
    pub fn from_parts(parts: Vec<Part>) -> Self {
        let mut open = Vec::new();
        let mut closed = Vec::new();
        let mut offset = 0;
        for part in parts {
            let n = part.models();
            match part {
                Part::Open(s) => open.push((s, offset)),
                Part::Closed(c) => closed.push((c, offset)),
            }
            offset += n;
        }
        Self {
            open: Merged::with_offsets(open, offset),
            closed,
            models: offset,
            end: Nanos::MAX,
            head: None,
            traces: Vec::new(),
        }
    }

    /// Stop every generator at `end`: no arrival at or after it, and closed loops stop
    /// replacing requests.
    pub fn with_end(mut self, end: Nanos) -> Self {
        self.end = self.end.min(end);
        for (c, _) in &mut self.closed {
            c.set_end(end);
        }
        self
    }

    /// Model instances addressed (`0..models()`).
    pub fn models(&self) -> usize {
        self.models
    }

    /// The traces replayed, for reports (real and synthetic results differ).
    pub fn trace_sources(&self) -> &[TraceSource] {
        &self.traces
    }

    /// The closed loops' first requests, all at time zero. Call once, at the start.
    pub fn start(&mut self) -> Vec<Arrival> {
        let mut out = Vec::new();
        for (c, offset) in &mut self.closed {
            out.extend(c.initial().into_iter().map(|mut a| {
                a.model += *offset;
                a
            }));
        }
        out
    }

    fn fill_head(&mut self) {
        if self.head.is_none() {
            self.head = self.open.next_arrival().filter(|a| a.at < self.end);
        }
    }

    /// When the next open-loop arrival is due, if any.
    pub fn next_open_at(&mut self) -> Option<Nanos> {
        self.fill_head();
        self.head.map(|a| a.at)
    }

    /// Take the next open-loop arrival, whatever its time (virtual-time drivers).
    pub fn next_open(&mut self) -> Option<Arrival> {
        self.fill_head();
        self.head.take()
    }

    /// Append to `out` every open-loop arrival due at or before `now`; returns how many.
    pub fn poll(&mut self, now: Nanos, out: &mut Vec<Arrival>) -> usize {
        let mut n = 0;
        while self.next_open_at().is_some_and(|at| at <= now) {
            if let Some(a) = self.head.take() {
                out.push(a);
                n += 1;
            }
        }
        n
    }

    /// A response (of any status) for `model` arrived at `now`: the closed loop's
    /// replacement request, if `model` belongs to a running closed loop.
    pub fn on_response(&mut self, model: usize, now: Nanos) -> Option<Arrival> {
        self.closed_loop_of(model, |c, m| c.on_response(m, now))
    }

    /// A refusal (any answer but success) for `model` at `now`, of a request due by
    /// `deadline`: the closed loop's replacement, if `model` belongs to a running
    /// closed loop; its `at` is later than `now` when the loop holds refused clients
    /// ([`ClosedLoopSpec::hold_refused`](super::ClosedLoopSpec::hold_refused)).
    pub fn on_refused(&mut self, model: usize, now: Nanos, deadline: Nanos) -> Option<Arrival> {
        self.closed_loop_of(model, |c, m| c.on_refused(m, now, deadline))
    }

    /// `f` on the closed loop holding `model` (with the loop's own index of it); the
    /// arrival it returns, in this workload's model indices.
    fn closed_loop_of(
        &mut self,
        model: usize,
        f: impl FnOnce(&mut ClosedLoop, usize) -> Option<Arrival>,
    ) -> Option<Arrival> {
        let (c, offset) = self
            .closed
            .iter_mut()
            .find(|(c, off)| (*off..*off + c.models()).contains(&model))?;
        let offset = *offset;
        let mut a = f(c, model - offset)?;
        a.model += offset;
        Some(a)
    }

    /// Closed-loop requests outstanding.
    pub fn outstanding(&self) -> usize {
        self.closed.iter().map(|(c, _)| c.total_outstanding()).sum()
    }

    /// Whether nothing more will happen: no open-loop arrival left and no closed-loop
    /// request outstanding.
    pub fn is_finished(&mut self) -> bool {
        self.next_open_at().is_none() && self.outstanding() == 0
    }
}

fn build(
    spec: &WorkloadSpec,
    seed: u64,
    counter: &mut u64,
    parts: &mut Vec<Part>,
    traces: &mut Vec<TraceSource>,
) -> Result<(), WorkloadError> {
    let part_seed = Rng::derive(seed, *counter).next_u64();
    *counter += 1;
    let part = match spec {
        WorkloadSpec::ClosedLoop(s) => Part::Closed(ClosedLoop::new(s)?),
        WorkloadSpec::OpenLoop(s) => Part::Open(Box::new(OpenLoop::new(s, part_seed)?)),
        WorkloadSpec::Bursty(s) => Part::Open(Box::new(Bursty::new(s, part_seed)?)),
        WorkloadSpec::SloSweep(s) => {
            Part::Open(Box::new(OpenLoop::new(&s.to_open_loop()?, part_seed)?))
        }
        WorkloadSpec::FillMemory(s) => {
            Part::Open(Box::new(OpenLoop::new(&s.to_open_loop()?, part_seed)?))
        }
        WorkloadSpec::Ramp(s) => Part::Open(Box::new(Ramp::new(s, part_seed)?)),
        WorkloadSpec::Azure(s) => {
            let trace = s.source.load(s.day)?;
            traces.push(trace.source.clone());
            Part::Open(Box::new(AzureReplay::new(&trace, &s.replay, part_seed)?))
        }
        WorkloadSpec::Mix(specs) => {
            for s in specs {
                build(s, seed, counter, parts, traces)?;
            }
            return Ok(());
        }
    };
    parts.push(part);
    Ok(())
}
