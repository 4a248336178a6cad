//! Invariant checks and measurements of a simulated run, observed from outside the
//! scheduler (on its outputs and on the simulated devices).

use clockwork_core::{ClientStatus, InferResponse, Nanos};
use hdrhistogram::Histogram;
use std::collections::HashMap;

/// Broken invariants. A correct scheduler leaves every field at zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Violations {
    /// Requests answered more than once.
    pub double_answers: u64,
    /// Requests never answered (counted at the end of a drained run).
    pub unanswered: u64,
    /// Answers for request ids never offered.
    pub unknown_answers: u64,
    /// `Success` answered after the request's deadline.
    pub late_success_answers: u64,
    /// Actions whose `latest` was already past when the scheduler emitted them.
    pub windows_closed_at_emission: u64,
    /// Actions with `earliest > latest`.
    pub malformed_windows: u64,
    /// INFERs emitted for a model neither resident nor loading on that GPU.
    pub infer_not_resident_at_emission: u64,
    /// LOADs that found too few free pages on the device (the plan over-committed).
    pub insufficient_cache: u64,
    /// INFERs that reached a device without their weights.
    pub weights_missing: u64,
    /// INFERs whose weights were unloaded while they ran (84) and LOADs superseded by an
    /// UNLOAD of their model (54): the plan changed weights that were in use.
    pub weights_changed_in_use: u64,
}

impl Violations {
    /// Sum of all fields.
    pub const fn total(&self) -> u64 {
        self.double_answers
            + self.unanswered
            + self.unknown_answers
            + self.late_success_answers
            + self.windows_closed_at_emission
            + self.malformed_windows
            + self.infer_not_resident_at_emission
            + self.insufficient_cache
            + self.weights_missing
            + self.weights_changed_in_use
    }
}

/// Tracks every request the simulation offered.
#[derive(Debug)]
pub(crate) struct Checker {
    answered: Vec<u64>,
    /// Requests offered, warm-up included (ids are dense: also the next id).
    offered_all: u64,
    answered_all: u64,
    /// Ids below this arrived during the warm-up (arrivals come in id order).
    first_measured: Option<u64>,
    answered_count: u64,
    default_slo: Nanos,
    custom_slo: HashMap<u64, Nanos>,
    pub(crate) violations: Violations,
    pub(crate) latency: Histogram<u64>,
    /// Arrival to answer of every answer that is not a success (1 ns for those
    /// answered at admission).
    pub(crate) failure_latency: Histogram<u64>,
    pub(crate) success: u64,
    pub(crate) by_status: HashMap<ClientStatus, u64>,
}

impl Checker {
    pub(crate) fn new(default_slo: Nanos) -> Self {
        Self {
            answered: Vec::new(),
            offered_all: 0,
            answered_all: 0,
            first_measured: None,
            answered_count: 0,
            default_slo,
            custom_slo: HashMap::new(),
            violations: Violations::default(),
            // Bounds are valid constants (1 ns .. 1 hour, 3 digits): cannot fail.
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!()),
            failure_latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!()),
            success: 0,
            by_status: HashMap::new(),
        }
    }

    /// A request with id `id` (ids are dense from 0) and, if not the default, `slo`.
    /// `measured`: it counts in the measurements (not a warm-up arrival); once one
    /// request is measured, every later one is.
    pub(crate) fn offer(&mut self, id: u64, slo: Option<Nanos>, measured: bool) {
        self.offered_all += 1;
        if measured && self.first_measured.is_none() {
            self.first_measured = Some(id);
        }
        let w = (id / 64) as usize;
        if self.answered.len() <= w {
            self.answered.resize(w + 1, 0);
        }
        if let Some(s) = slo {
            self.custom_slo.insert(id, s);
        }
    }

    pub(crate) fn respond(&mut self, r: &InferResponse) {
        let id = r.id.0;
        let w = (id / 64) as usize;
        let bit = 1u64 << (id % 64);
        if id >= self.offered_all || w >= self.answered.len() {
            self.violations.unknown_answers += 1;
            return;
        }
        if self.answered[w] & bit != 0 {
            self.violations.double_answers += 1;
            return;
        }
        self.answered[w] |= bit;
        self.answered_all += 1;
        let slo = self
            .custom_slo
            .get(&id)
            .copied()
            .unwrap_or(self.default_slo);
        if r.status.is_success() && r.controller_latency > slo {
            self.violations.late_success_answers += 1;
        }
        if !self.is_measured(id) {
            return;
        }
        self.answered_count += 1;
        *self.by_status.entry(r.status).or_default() += 1;
        if r.status.is_success() {
            self.success += 1;
            self.latency
                .saturating_record(r.controller_latency.get().max(1));
        } else {
            self.failure_latency
                .saturating_record(r.controller_latency.get().max(1));
        }
    }

    fn is_measured(&self, id: u64) -> bool {
        self.first_measured.is_some_and(|f| id >= f)
    }

    /// Measured requests offered: ids are dense, so those from the first measured on.
    pub(crate) fn offered(&self) -> u64 {
        self.first_measured
            .map_or(0, |f| self.offered_all.saturating_sub(f))
    }

    /// Every request offered, warm-up included.
    pub(crate) const fn offered_all(&self) -> u64 {
        self.offered_all
    }

    /// Every request answered, warm-up included.
    pub(crate) const fn answered_all(&self) -> u64 {
        self.answered_all
    }

    pub(crate) const fn answered(&self) -> u64 {
        self.answered_count
    }
}
