//! Worker results: timelines, estimators, answers, page accounting.
//!
//! - INFER success: the timeline learns the real end, the estimator the real duration;
//!   each request is answered `Success` if the result arrived by its deadline, else
//!   `Timeout` (counted as a late success). Members already answered at their deadline
//!   are skipped (and counted as late successes too). Outputs are split here: the
//!   worker returns one `output_bytes` slice per request in batch order, and the
//!   scheduler is what knows that order, the model's output size and which members
//!   are still unanswered, so every driver gets each request's own slice in its
//!   `InferResponse` without keeping batch state. A result whose `outputs` is empty
//!   (outputs not returned) or too short for the batch answers with empty outputs.
//! - INFER failure: if the batch missed its window (`ExecTooLate` and kin), requests
//!   that can still be served in time go back to their queue (keeping their
//!   deadlines and timers); the others, and all requests of other failures, are
//!   answered `WorkerFailed(status)`. "Weights missing" means the plan was wrong: the
//!   worker is resynced.
//! - LOAD success: the model is ready there and the GPU pulls its queue. LOAD failure:
//!   its pages come back; "insufficient cache" or "already loaded" trigger a resync.
//! - UNLOAD failure: "not in cache" is harmless (the pages were already counted free);
//!   anything else triggers a resync rather than a crash (reference 3.12).

use super::{InFlight, InFlightKind, InferRecord, Scheduler};
use crate::arena::Key;
use crate::telemetry::{ActionLog, LogRecord};
use clockwork_core::{
    ActionResult, ClientStatus, Inferred, ModelId, Nanos, Outcome, Timing, WorkerId, WorkerStatus,
};

/// Who sent an action, and when (for logs and resyncs).
#[derive(Debug, Clone, Copy)]
struct Origin {
    worker: u32,
    sent: Nanos,
}

impl Scheduler {
    /// A worker reports the result of an action. Timestamps are in the controller's
    /// clock. Results for unknown actions (duplicates, or from a worker already
    /// declared lost) are counted and ignored.
    pub fn handle_result(&mut self, now: Nanos, worker: WorkerId, result: &ActionResult) {
        let key = Key::from_u64(result.action_id.0);
        let Some(wk) = self.worker_index.get(worker) else {
            self.stats.stale_results += 1;
            return;
        };
        if self.actions.get(key).is_none_or(|a| a.worker != wk) {
            self.stats.stale_results += 1;
            return;
        }
        let Some(rec) = self.actions.remove(key) else {
            return;
        };
        let ok = result.status.is_success();
        let InFlight {
            worker: _,
            sent,
            kind,
        } = rec;
        let rec = Origin { worker: wk, sent };
        if matches!(kind, InFlightKind::Infer(_) | InFlightKind::Load { .. }) {
            // The action's trip out: worker receipt - send (controller clock).
            let trip = result.received.saturating_sub(sent);
            match &kind {
                InFlightKind::Infer(inf) if inf.bytes >= crate::margins::BIG_ACTION_BYTES => {
                    // Mostly its bytes: what they cost per MiB beyond the lead time.
                    let beyond = trip.saturating_sub(self.lead.get());
                    let sample = crate::margins::cost_per_mib(beyond, inf.bytes);
                    self.transfer.record(sample, now);
                }
                // One stall's late arrivals come through together: they end at once.
                _ => self.lead.record_from(wk, trip, result.received, now),
            }
            self.rejected_since_result = false;
        }
        match kind {
            InFlightKind::Infer(inf) => {
                let done = match &result.outcome {
                    Outcome::Inferred(i) if ok => Some(i),
                    _ => None,
                };
                self.infer_result(now, rec, inf, result, done);
            }
            InFlightKind::Load {
                model,
                gpu,
                expected,
                expected_end,
            } => {
                let timing = match &result.outcome {
                    Outcome::Loaded { timing } if ok => Some(*timing),
                    _ => None,
                };
                if let Some(t) = timing {
                    // Same path back as an INFER's result.
                    self.buffer
                        .record_from(wk, now.saturating_sub(t.end), now, now);
                }
                self.load_result(
                    now,
                    rec,
                    result.action_id.0,
                    model,
                    gpu,
                    timing,
                    result.status,
                );
                if self.cfg.telemetry {
                    let log = self.action_log(
                        now,
                        rec,
                        result,
                        ActionLog::LOAD,
                        model,
                        gpu,
                        0,
                        expected,
                        expected_end,
                        timing,
                    );
                    self.logs.push_back(LogRecord::Action(log));
                }
            }
            InFlightKind::Unload { model, gpu } => {
                if !ok {
                    self.stats.unload_failures += 1;
                    if result.status != WorkerStatus::UnloadNotInCache {
                        self.resync(wk, now);
                    }
                }
                if self.cfg.telemetry {
                    let timing = match &result.outcome {
                        Outcome::Unloaded { timing } => Some(*timing),
                        _ => None,
                    };
                    let log = self.action_log(
                        now,
                        rec,
                        result,
                        ActionLog::UNLOAD,
                        model,
                        gpu,
                        0,
                        Nanos::ZERO,
                        Nanos::ZERO,
                        timing,
                    );
                    self.logs.push_back(LogRecord::Action(log));
                }
            }
            InFlightKind::Register(range) => {
                if ok {
                    let measured = match &result.outcome {
                        Outcome::Registered { measured, .. } => measured.as_ref(),
                        _ => None,
                    };
                    for id in range.iter() {
                        let state = self.models.get_mut(id.0 as usize);
                        if let (Some(m), Some(state)) = (measured, state) {
                            state.reseed(m, &self.cfg);
                        }
                        self.workers[wk as usize].registered.insert(id.0);
                    }
                    self.loads_dirty = true;
                } else if range.count > 1 {
                    // The worker registered what it could; the halves, down to single
                    // instances, find the ones that failed (a conflicting profile
                    // left by another controller, say) and register the rest.
                    let (first, second) = range.halves();
                    self.register_range_on(wk, first, now);
                    self.register_range_on(wk, second, now);
                }
            }
            InFlightKind::GetState => {
                self.workers[wk as usize].resyncing = false;
                if let Outcome::State(state) = &result.outcome {
                    self.reconcile(wk, state, now);
                }
            }
        }
        self.schedule_loads(now);
        self.flush(now);
    }

    fn infer_result(
        &mut self,
        now: Nanos,
        rec: Origin,
        inf: InferRecord,
        result: &ActionResult,
        done: Option<&Inferred>,
    ) {
        let mi = inf.model.0 as usize;
        let g = inf.gpu;
        let action = result.action_id.0;
        let batch = inf.members.len() as u32;
        let mut goodput = 0;
        let infers = &mut self.gpus[g as usize].infers;
        if let Some(p) = infers.iter().position(|&a| a == action) {
            infers.swap_remove(p);
        }
        match done {
            Some(i) => {
                self.gpus[g as usize].exec.complete(action, i.exec.end);
                let m = &mut self.models[mi];
                if let Some(si) = m.sizes().iter().position(|&s| s == i.padded_batch) {
                    m.record_exec(si, i.exec.duration, self.cfg.estimator_percentile);
                }
                self.stats
                    .exec_error
                    .record(i.exec.duration.signed_diff(inf.expected));
                self.stats
                    .completion_error
                    .record(i.exec.end.signed_diff(inf.expected_end));
                // The buffer covers the return trip and the plan's overrun: the batch
                // was planned to end by its head's target, so the answer must arrive
                // within the buffer of that planned end. An action that reached its
                // worker late is measured from its arrival (the lead time covers
                // that delay, not the buffer).
                self.buffer
                    .record_from(rec.worker, now.saturating_sub(i.exec.end), now, now);
                let planned_end = inf.expected_end.max(result.received + inf.expected);
                self.overrun
                    .record(i.exec.end.saturating_sub(planned_end), now);
                self.stats.late_successes += u64::from(inf.late_answered);
                let out_bytes = m.profile().output_bytes as usize;
                let split = out_bytes > 0 && i.outputs.len() >= out_bytes * inf.members.len();
                for (n, &k) in inf.members.iter().enumerate() {
                    let Some(req) = self.requests.get(k) else {
                        continue;
                    };
                    if now <= req.d.deadline {
                        let output = if split {
                            i.outputs[n * out_bytes..(n + 1) * out_bytes].to_vec()
                        } else {
                            Vec::new()
                        };
                        self.answer(k, now, ClientStatus::Success, batch, output);
                        goodput += 1;
                    } else {
                        self.answer(k, now, ClientStatus::Timeout, batch, Vec::new());
                        self.stats.timeout_in_flight += 1;
                        self.stats.late_successes += 1;
                    }
                }
            }
            None => {
                self.gpus[g as usize].exec.remove(action);
                self.stats.infer_failures += 1;
                let status = ClientStatus::WorkerFailed(result.status);
                let retry = result.status.is_window_miss();
                let mut requeued = false;
                for &k in &inf.members {
                    if retry && self.requeue(k, now) {
                        requeued = true;
                    } else {
                        self.answer(k, now, status, 0, Vec::new());
                    }
                }
                if requeued {
                    self.note_demand(mi, now);
                    self.dispatch_model(mi, now);
                }
                if matches!(
                    result.status,
                    WorkerStatus::ExecWeightsMissing | WorkerStatus::WeightsNotPresent
                ) {
                    self.resync(rec.worker, now);
                }
            }
        }
        if let Some(r) = self.models[mi].replica_mut(g) {
            r.inflight = r.inflight.saturating_sub(1);
            r.last_used = now;
        }
        self.unload_if_retired(mi, g, now);
        if self.cfg.telemetry {
            let timing = done.map(|i| i.exec);
            let mut log = self.action_log(
                now,
                rec,
                result,
                ActionLog::INFER,
                inf.model,
                g,
                batch,
                inf.expected,
                inf.expected_end,
                timing,
            );
            if let Some(i) = done {
                log.worker_gpu_clock_before = i.gpu_clock_before_mhz;
                log.worker_gpu_clock = i.gpu_clock_mhz;
                log.worker_copy_output_complete = i.copy_output.end;
            }
            log.goodput = goodput;
            self.logs.push_back(LogRecord::Action(log));
        }
        self.recycle(inf.members);
        self.dispatch_gpu(g, now);
    }

    #[allow(clippy::too_many_arguments)] // the LOAD's full description, one call site
    fn load_result(
        &mut self,
        now: Nanos,
        rec: Origin,
        action: u64,
        model: ModelId,
        g: u32,
        timing: Option<Timing>,
        status: WorkerStatus,
    ) {
        let mi = model.0 as usize;
        {
            let gpu = &mut self.gpus[g as usize];
            gpu.loads_in_flight = gpu.loads_in_flight.saturating_sub(1);
        }
        match timing {
            Some(t) => {
                let gpu = &mut self.gpus[g as usize];
                gpu.pcie.complete(action, t.end);
                let m = &mut self.models[mi];
                let expected = m.record_load(t.duration, self.cfg.estimator_percentile);
                self.stats
                    .load_error
                    .record(t.duration.signed_diff(expected));
                if let Some(r) = m.replica_mut(g) {
                    r.ready = true;
                    r.last_used = now;
                }
                self.ensure_heap_entries(mi);
                self.dispatch_gpu(g, now);
                self.unload_if_retired(mi, g, now);
            }
            None => {
                self.gpus[g as usize].pcie.remove(action);
                self.stats.load_failures += 1;
                self.remove_replica(mi, g);
                if matches!(
                    status,
                    WorkerStatus::LoadInsufficientCache | WorkerStatus::WeightsAlreadyLoaded
                ) {
                    self.resync(rec.worker, now);
                }
                self.note_demand(mi, now);
            }
        }
        self.update_load_ready(g, now);
    }

    #[allow(clippy::too_many_arguments)] // mirrors the log columns
    fn action_log(
        &self,
        now: Nanos,
        rec: Origin,
        result: &ActionResult,
        action_type: u8,
        model: ModelId,
        g: u32,
        batch: u32,
        expected: Nanos,
        expected_end: Nanos,
        timing: Option<Timing>,
    ) -> ActionLog {
        let gpu = &self.gpus[g as usize];
        let m = &self.models[model.0 as usize];
        ActionLog {
            t: now,
            action_id: result.action_id.0,
            action_type,
            status: result.status.code(),
            worker_id: gpu.worker_id.0,
            gpu_id: gpu.gpu_id.0,
            model_id: model.0,
            batch_size: batch,
            expected_exec_duration: expected,
            worker_exec_duration: timing.map_or(Nanos::ZERO, |t| t.duration),
            expected_exec_complete: expected_end,
            worker_exec_complete: timing.map_or(Nanos::ZERO, |t| t.end),
            worker_action_received: result.received,
            worker_result_sent: result.sent,
            controller_result_enqueue: now,
            controller_action_duration: now - rec.sent,
            requests_queued: m.live,
            copies_loaded: m.replicas.iter().filter(|r| r.ready).count() as u32,
            ..ActionLog::default()
        }
    }
}
