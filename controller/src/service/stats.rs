//! Per-model inference statistics, in the shape of Triton's statistics extension
//! (`GET /v2/models/{m}/stats` over HTTP; gRPC's `ModelStatistics` maps field for
//! field): counts and summed durations of answered requests and of executed batches.
//!
//! Fed on the service's thread from what the controller already sees: every answer
//! leaving the scheduler ([`InferenceStats::answered`], native and HTTP clients alike)
//! and every INFER result from a worker ([`Shared::worker_result`], which brackets the
//! scheduler's handling of the result so that the answers it produces are matched to
//! the batch that ran). What each figure measures (`docs/http.md`, "Statistics"):
//! - `success` / `fail`: answers with success / any other status, and their
//!   controller latency (arrival to the answer leaving the scheduler);
//! - `queue`: arrival to the start of the batch on the worker (its first stage, in the
//!   controller's clock), per successful request;
//! - `compute_input` / `compute_infer` / `compute_output`: the worker-measured input
//!   copy, execution and output copy of the request's batch (each request of a batch
//!   is charged the whole batch's time, as Triton does); the copies are not separate
//!   stages on the current backends and measure 0;
//! - `inference_count` / `execution_count` / `batch_stats`: requests in successful
//!   INFERs, the INFERs themselves, and per batch size (requests, not the padded size
//!   the device ran) the INFERs' stage times.
//!
//! Cost: O(1) per answer and per result; counters live in a vector indexed by model
//! id and, per model, by batch size, which grow only on the first sight of a model or
//! batch size.

use super::http::metrics::Call;
use super::Shared;
use clockwork_core::{
    ActionResult, ClientStatus, InferResponse, ModelId, MonotonicClock, Nanos, Outcome, WorkerId,
};
use clockwork_scheduler::Scheduler;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// A count and the summed duration of what was counted (Triton's `StatisticDuration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct StatisticDuration {
    /// How many.
    pub(crate) count: u64,
    /// Their summed duration, ns.
    pub(crate) ns: u64,
}

impl StatisticDuration {
    fn add(&mut self, d: Nanos) {
        self.count += 1;
        self.ns = self.ns.saturating_add(d.get());
    }
}

/// Per-request figures of one model (Triton's `InferStatistics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct InferStatistics {
    /// Requests answered with success; ns: their controller latency.
    pub(crate) success: StatisticDuration,
    /// Requests answered with anything else; ns: their controller latency.
    pub(crate) fail: StatisticDuration,
    /// Successful requests; ns: arrival to their batch's start on the worker.
    pub(crate) queue: StatisticDuration,
    /// Successful requests; ns: their batch's input copy.
    pub(crate) compute_input: StatisticDuration,
    /// Successful requests; ns: their batch's execution.
    pub(crate) compute_infer: StatisticDuration,
    /// Successful requests; ns: their batch's output copy.
    pub(crate) compute_output: StatisticDuration,
    /// Always zero: there is no response cache.
    pub(crate) cache_hit: StatisticDuration,
    /// Always zero: there is no response cache.
    pub(crate) cache_miss: StatisticDuration,
}

/// The executed batches of one size (Triton's `InferBatchStatistics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct InferBatchStatistics {
    /// Requests in the batch.
    pub(crate) batch_size: u64,
    /// Batches; ns: their input copies.
    pub(crate) compute_input: StatisticDuration,
    /// Batches; ns: their executions.
    pub(crate) compute_infer: StatisticDuration,
    /// Batches; ns: their output copies.
    pub(crate) compute_output: StatisticDuration,
}

/// One model's statistics, ready to render (Triton's `ModelStatistics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ModelStatistics {
    /// The model's name, as the caller addressed it (or as the index lists it).
    pub(crate) name: String,
    /// Always "1" (every model has one version).
    pub(crate) version: String,
    /// When its last request was answered, ms since the Unix epoch (0: never).
    pub(crate) last_inference: u64,
    /// Requests in successful INFERs.
    pub(crate) inference_count: u64,
    /// Successful INFERs.
    pub(crate) execution_count: u64,
    /// Per-request figures.
    pub(crate) inference_stats: InferStatistics,
    /// Per batch size, ascending; sizes never executed are left out.
    pub(crate) batch_stats: Vec<InferBatchStatistics>,
}

/// The counters of one model.
#[derive(Debug, Clone, Default)]
struct ModelCounters {
    /// When its last answer left (controller clock); zero: never.
    last_answer: Nanos,
    inference_count: u64,
    execution_count: u64,
    inference: InferStatistics,
    /// Indexed by batch size (requests); index 0 is never filled.
    batches: Vec<InferBatchStatistics>,
}

/// The INFER whose result the scheduler is handling: its answers are charged its times.
#[derive(Debug, Clone, Copy)]
struct BatchRun {
    model: ModelId,
    /// The `now` the scheduler handles the result at (its answers' latency ends there).
    handled_at: Nanos,
    /// The batch's first stage began (controller clock).
    start: Nanos,
    copy_input: Nanos,
    infer: Nanos,
    copy_output: Nanos,
}

/// The service's per-model statistics.
#[derive(Debug)]
pub(crate) struct InferenceStats {
    /// Indexed by model id; grown on first sight.
    models: Vec<ModelCounters>,
    running: Option<BatchRun>,
    /// The controller clock and the Unix time (ns) read together, to date answers.
    clock_origin: (Nanos, u64),
}

impl Default for InferenceStats {
    fn default() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            models: Vec::new(),
            running: None,
            clock_origin: (MonotonicClock::read(), unix),
        }
    }
}

impl InferenceStats {
    fn counters(&mut self, model: ModelId) -> &mut ModelCounters {
        let i = model.0 as usize;
        if i >= self.models.len() {
            self.models.resize_with(i + 1, ModelCounters::default);
        }
        &mut self.models[i]
    }

    /// A worker result is about to be handled at `now`: a successful INFER is counted
    /// as an execution and becomes the batch its answers are charged to.
    fn result_arrived(&mut self, sched: &Scheduler, r: &ActionResult, now: Nanos) {
        self.running = None;
        let Outcome::Inferred(i) = &r.outcome else {
            return;
        };
        if !r.status.is_success() {
            return;
        }
        let Some((model, requests)) = sched.infer_in_flight(r.action_id) else {
            return;
        };
        let run = BatchRun {
            model,
            handled_at: now,
            start: i.copy_input.begin.min(i.exec.begin),
            copy_input: i.copy_input.duration,
            infer: i.exec.duration,
            copy_output: i.copy_output.duration,
        };
        let m = self.counters(model);
        m.execution_count += 1;
        m.inference_count += u64::from(requests);
        let size = requests as usize;
        if size >= m.batches.len() {
            let grown = m.batches.len()..=size;
            m.batches.extend(grown.map(|b| InferBatchStatistics {
                batch_size: b as u64,
                ..InferBatchStatistics::default()
            }));
        }
        let b = &mut m.batches[size];
        b.compute_input.add(run.copy_input);
        b.compute_infer.add(run.infer);
        b.compute_output.add(run.copy_output);
        self.running = Some(run);
    }

    /// An answer left the scheduler at `now`. Answers for ids the scheduler does not
    /// know are not counted (they would name no model).
    pub(crate) fn answered(&mut self, sched: &Scheduler, r: &InferResponse, now: Nanos) {
        if sched.model_profile(r.model).is_none() {
            return;
        }
        let run = self
            .running
            .filter(|b| b.model == r.model && r.batch_size > 0);
        let m = self.counters(r.model);
        m.last_answer = now;
        let s = &mut m.inference;
        if r.status != ClientStatus::Success {
            s.fail.add(r.controller_latency);
            return;
        }
        s.success.add(r.controller_latency);
        // A success always comes from a batch result; without one only `success` counts.
        if let Some(b) = run {
            let arrival = b.handled_at.saturating_sub(r.controller_latency);
            s.queue.add(b.start.saturating_sub(arrival));
            s.compute_input.add(b.copy_input);
            s.compute_infer.add(b.infer);
            s.compute_output.add(b.copy_output);
        }
    }

    /// The models that have had at least one answer or execution, in id order.
    pub(crate) fn seen(&self) -> impl Iterator<Item = ModelId> + '_ {
        self.models
            .iter()
            .enumerate()
            .filter(|(_, m)| m.last_answer != Nanos::ZERO || m.execution_count > 0)
            .map(|(i, _)| ModelId(i as u32))
    }

    /// `model`'s statistics under `name` (all zero for a model never asked for).
    pub(crate) fn model(&self, model: ModelId, name: String) -> ModelStatistics {
        let m = self.models.get(model.0 as usize);
        let last_inference = match m.map(|m| m.last_answer) {
            None | Some(Nanos::ZERO) => 0,
            Some(t) => {
                let (mono, unix) = self.clock_origin;
                unix.saturating_add(t.get()).saturating_sub(mono.get()) / 1_000_000
            }
        };
        ModelStatistics {
            name,
            version: String::from("1"),
            last_inference,
            inference_count: m.map_or(0, |m| m.inference_count),
            execution_count: m.map_or(0, |m| m.execution_count),
            inference_stats: m.map_or_else(InferStatistics::default, |m| m.inference),
            batch_stats: m.map_or_else(Vec::new, |m| {
                m.batches
                    .iter()
                    .filter(|b| b.compute_infer.count > 0)
                    .copied()
                    .collect()
            }),
        }
    }
}

/// The statistics extension's JSON body: `{"model_stats": [...]}`.
pub(crate) fn to_json(models: &[ModelStatistics]) -> serde_json::Value {
    serde_json::json!({ "model_stats": models })
}

impl Shared {
    /// Hands a worker's result to the scheduler (at `now`) and routes what it
    /// produced, with the statistics told which batch the answers belong to.
    pub(super) fn worker_result(&mut self, worker: WorkerId, r: &ActionResult, now: Nanos) {
        self.inference_stats.result_arrived(&self.sched, r, now);
        self.timed(Call::Result, |sc| sc.handle_result(now, worker, r));
        self.drain();
        self.inference_stats.running = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_count_and_sum() {
        let mut d = StatisticDuration::default();
        d.add(Nanos(5));
        d.add(Nanos(7));
        assert_eq!(d, StatisticDuration { count: 2, ns: 12 });
    }

    #[test]
    fn an_unseen_model_is_all_zeros_and_renders_in_tritons_shape() {
        let s = InferenceStats::default();
        let m = s.model(ModelId(3), "m".into());
        assert_eq!(m.last_inference, 0);
        assert_eq!(s.seen().count(), 0);
        let v = to_json(&[m]);
        let e = &v["model_stats"][0];
        assert_eq!(e["name"], "m");
        assert_eq!(e["version"], "1");
        assert_eq!(e["inference_stats"]["success"]["count"], 0);
        assert_eq!(e["inference_stats"]["compute_infer"]["ns"], 0);
        assert_eq!(e["batch_stats"], serde_json::json!([]));
    }
}
