//! Bursty open loop (the original's `BurstyPoissonOpenLoop`): each model alternates
//! between ON periods, when it sends Poisson arrivals at `rate`, and silent OFF periods;
//! both period lengths are exponential. Each model starts at a random point of its
//! cycle (ON with probability `mean_on / (mean_on + mean_off)`), so the models are not
//! in phase.

use super::arrival::{Arrival, ArrivalSource};
use super::error::{positive, SpecError};
use super::process::{to_nanos, NS_PER_SEC};
use super::slo::{BuiltSlo, SloPlan};
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A bursty open-loop workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstySpec {
    /// Model instances addressed (`0..models`), each with its own ON/OFF cycle.
    pub models: usize,
    /// Per-model rate while ON, in requests per second.
    pub rate: f64,
    /// Mean ON period.
    pub mean_on: Nanos,
    /// Mean OFF period.
    pub mean_off: Nanos,
    /// SLO of each request.
    pub slo: SloPlan,
}

impl BurstySpec {
    /// Long-run mean rate of one model: `rate × on / (on + off)`.
    pub fn mean_rate(&self) -> f64 {
        let on = self.mean_on.get() as f64;
        let off = self.mean_off.get() as f64;
        self.rate * on / (on + off)
    }
}

#[derive(Debug)]
struct Cycle {
    rng: Rng,
    /// Time of the last arrival, or the start of the current ON period.
    t: f64,
    /// End of the current ON period.
    on_end: f64,
}

/// The generator of a [`BurstySpec`].
#[derive(Debug)]
pub struct Bursty {
    models: usize,
    gap: f64,
    mean_on: f64,
    mean_off: f64,
    slo: BuiltSlo,
    cycles: Vec<Cycle>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Bursty {
    /// Build the generator; `seed` fixes every arrival.
    pub fn new(spec: &BurstySpec, seed: u64) -> Result<Self, SpecError> {
        if spec.models == 0 {
            return Err(SpecError::NoModels("bursty"));
        }
        let rate = positive("bursty rate", spec.rate)?;
        let mean_on = positive("bursty mean ON period", spec.mean_on.get() as f64)?;
        let mean_off = positive("bursty mean OFF period", spec.mean_off.get() as f64)?;
        let mut this = Self {
            models: spec.models,
            gap: NS_PER_SEC / rate,
            mean_on,
            mean_off,
            slo: spec.slo.build()?,
            cycles: Vec::with_capacity(spec.models),
            heap: BinaryHeap::new(),
        };
        let p_on = mean_on / (mean_on + mean_off);
        for m in 0..spec.models {
            let mut rng = Rng::derive(seed, 0xB0_0000 + m as u64);
            // Exponential periods are memoryless: the residual of the period the model
            // starts in has the same distribution as a whole one.
            let (t, on_end) = if rng.f64() < p_on {
                (0.0, rng.exp(1.0) * mean_on)
            } else {
                let start = rng.exp(1.0) * mean_off;
                (start, start + rng.exp(1.0) * mean_on)
            };
            this.cycles.push(Cycle { rng, t, on_end });
            if let Some(t) = this.advance(m) {
                this.heap.push(Reverse((t.to_bits(), m)));
            }
        }
        Ok(this)
    }

    /// Model `m`'s next arrival time.
    fn advance(&mut self, m: usize) -> Option<f64> {
        let c = self.cycles.get_mut(m)?;
        loop {
            let candidate = c.t + c.rng.exp(1.0) * self.gap;
            if candidate < c.on_end {
                c.t = candidate;
                return Some(candidate);
            }
            let start = c.on_end + c.rng.exp(1.0) * self.mean_off;
            c.t = start;
            c.on_end = start + c.rng.exp(1.0) * self.mean_on;
            if !c.t.is_finite() {
                return None;
            }
        }
    }
}

impl ArrivalSource for Bursty {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let Reverse((bits, model)) = self.heap.pop()?;
        let at = to_nanos(f64::from_bits(bits));
        if let Some(next) = self.advance(model) {
            self.heap.push(Reverse((next.to_bits(), model)));
        }
        let slo = self.slo.at(at)?;
        Some(Arrival { at, model, slo })
    }

    fn models(&self) -> usize {
        self.models
    }
}
