//! Closed loop: `concurrency` requests outstanding per model, each response (success or
//! failure) immediately replaced by a new request for the same model
//! (`comparison_experiment2`, `simple`, `spam`, and `slo-exp-2`'s background models).

use super::arrival::Arrival;
use super::error::SpecError;
use super::slo::{BuiltSlo, SloPlan};
use clockwork_core::time::Nanos;

/// A closed-loop workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClosedLoopSpec {
    /// Model instances addressed (`0..models`).
    pub models: usize,
    /// Requests kept outstanding per model.
    pub concurrency: usize,
    /// SLO of each request.
    pub slo: SloPlan,
    /// Stop after this many requests per model (the original's `num_requests`), or never.
    pub requests_per_model: Option<u64>,
    /// A client whose request was refused (any answer but success) waits until that
    /// request's deadline before sending the next, as in the original, which refused
    /// nothing up front and dropped such a request only at its expiry; `false`: the
    /// next goes at once (a client that retries immediately).
    pub hold_refused: bool,
}

impl ClosedLoopSpec {
    /// `concurrency` outstanding on each of `models`, default SLO, no request limit.
    pub fn new(models: usize, concurrency: usize) -> Self {
        Self {
            models,
            concurrency,
            slo: SloPlan::default(),
            requests_per_model: None,
            hold_refused: false,
        }
    }
}

/// The state of a closed loop: how many requests each model has outstanding and sent.
#[derive(Clone, Debug)]
pub struct ClosedLoop {
    models: usize,
    concurrency: usize,
    slo: BuiltSlo,
    limit: Option<u64>,
    end: Nanos,
    outstanding: Vec<usize>,
    issued: Vec<u64>,
    started: bool,
    hold_refused: bool,
}

impl ClosedLoop {
    /// Build it.
    pub fn new(spec: &ClosedLoopSpec) -> Result<Self, SpecError> {
        if spec.models == 0 {
            return Err(SpecError::NoModels("closed loop"));
        }
        if spec.concurrency == 0 {
            return Err(SpecError::NotPositive {
                what: "closed-loop concurrency",
                value: 0.0,
            });
        }
        let slo = spec.slo.build()?;
        Ok(Self {
            models: spec.models,
            concurrency: spec.concurrency,
            end: slo.end(),
            slo,
            limit: spec.requests_per_model,
            outstanding: vec![0; spec.models],
            issued: vec![0; spec.models],
            started: false,
            hold_refused: spec.hold_refused,
        })
    }

    /// Stop issuing requests at `end` (responses after it are not replaced).
    pub fn set_end(&mut self, end: Nanos) {
        self.end = self.end.min(end);
    }

    /// Models addressed.
    pub fn models(&self) -> usize {
        self.models
    }

    /// The first requests, all at time zero: `concurrency` per model, models in order.
    /// Later calls return nothing.
    pub fn initial(&mut self) -> Vec<Arrival> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        let mut out = Vec::with_capacity(self.models * self.concurrency);
        for _ in 0..self.concurrency {
            for model in 0..self.models {
                if let Some(a) = self.issue(model, Nanos::ZERO) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// A response for `model` arrived at `now`: the replacement request, if the loop is
    /// still running. A response for a model with nothing outstanding is ignored.
    pub fn on_response(&mut self, model: usize, now: Nanos) -> Option<Arrival> {
        self.replace(model, now)
    }

    /// A refusal (any answer but success) for `model` arrived at `now`, for a request
    /// whose deadline is `deadline`: the replacement, due at once or, with
    /// [`ClosedLoopSpec::hold_refused`], at the deadline (its `at` may be in the
    /// future: the driver sends it then). No replacement due at or after the end.
    pub fn on_refused(&mut self, model: usize, now: Nanos, deadline: Nanos) -> Option<Arrival> {
        let at = if self.hold_refused {
            deadline.max(now)
        } else {
            now
        };
        self.replace(model, at)
    }

    /// One of `model`'s outstanding requests was answered: its replacement, due at
    /// `at`. Nothing for a model with nothing outstanding.
    fn replace(&mut self, model: usize, at: Nanos) -> Option<Arrival> {
        let slot = self.outstanding.get_mut(model)?;
        if *slot == 0 {
            return None;
        }
        *slot -= 1;
        self.issue(model, at)
    }

    fn issue(&mut self, model: usize, now: Nanos) -> Option<Arrival> {
        if now >= self.end {
            return None;
        }
        if self.limit.is_some_and(|l| self.issued[model] >= l) {
            return None;
        }
        let slo = self.slo.at(now)?;
        self.outstanding[model] += 1;
        self.issued[model] += 1;
        Some(Arrival {
            at: now,
            model,
            slo,
        })
    }

    /// Requests outstanding for `model`.
    pub fn outstanding(&self, model: usize) -> usize {
        self.outstanding.get(model).copied().unwrap_or(0)
    }

    /// Requests outstanding over all models.
    pub fn total_outstanding(&self) -> usize {
        self.outstanding.iter().sum()
    }

    /// Requests issued for `model` so far.
    pub fn issued(&self, model: usize) -> u64 {
        self.issued.get(model).copied().unwrap_or(0)
    }
}
