//! Admission, queueing and expiry of inference requests.

use super::{Answer, Request, Scheduler};
use crate::admission::{deadlines, resolve_slo};
use crate::arena::Key;
use crate::gpu_state::HeapEntry;
use crate::model_state::QueueEntry;
use crate::output::{ClientKey, InputRef};
use crate::rollout::serves;
use crate::telemetry::{LogRecord, RequestLog};
use clockwork_core::{ClientStatus, ModelId, Nanos, RequestId, Slo};
use std::borrow::Cow;
use std::cmp::Reverse;

/// Extra margin of the rescue point (see [`Scheduler::rescue_point`]): room for the
/// EXEC backlog the new replica's GPU already has. 10 ms: in the 6.5 scenario in
/// virtual time, 5 ms left a rescued request missing by a few ms behind that backlog
/// (1 miss in 642k at seed 1), 10 ms none over six seeds for 14 % more LOADs at one
/// of them; 20-30 ms only added LOADs.
const RESCUE_SLACK: Nanos = Nanos::from_millis(10);

/// Share of the recent cost per request early refusal counts (a queue that is let grow
/// batches better than the recent batches did). Measured on the 1.5x overload preset
/// (5 s, seed 1): without early refusal 44.0 % served, refusal p50 at 0.90 of the SLO;
/// at 1.0, 39.4 % and p50 ~0; at 0.7, 41.7 % and p50 ~0.
const LATELY_SHARE: f64 = 0.7;

/// GPU time one queued request of model `m` is expected to take on a GPU whose recent
/// batches cost `ratio` of their batch-1 estimate per request: never below the model's
/// best cost per request (its largest batch's).
fn cost_per_request(m: &crate::model_state::ModelState, ratio: f64) -> u64 {
    let lately = (m.b1().get() as f64 * ratio * LATELY_SHARE) as u64;
    lately.max(m.best_per_request().get())
}

/// What admission found for a request ([`Scheduler::some_plan_meets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Some plan completes it by its target.
    Meets,
    /// Only the rollout of this GPU, under pressure, says it misses ([`crate::doubt`]).
    Doubtful(u32),
    /// No plan can complete it in time.
    Misses,
}

/// A request being refused before admission: who asked, for what.
#[derive(Debug, Clone, Copy)]
struct Refused {
    client: ClientKey,
    id: RequestId,
    model: ModelId,
    input: InputRef,
}

impl Scheduler {
    /// A client asks for one inference of `model` within `slo`; `input` says where
    /// the driver stored its input and how long it is (length 0 when the worker
    /// generates inputs). The scheduler hands `input` back in the INFER's
    /// [`crate::output::BatchMember`]s and in the request's one
    /// [`Output::Respond`](crate::Output::Respond).
    ///
    /// Answered at once with `UnknownModel` (also for retired models),
    /// `InvalidRequest` (an input that is not empty and not the model's input size, or
    /// a bad SLO), `Unavailable` (no GPU) or `Rejected` (no plan can complete it by its
    /// target: see [`crate::admission`]). Otherwise queued; answered `Success` when its
    /// INFER completes by its deadline, and otherwise `Timeout` (or another failure) at
    /// the latest at its deadline.
    pub fn request(
        &mut self,
        now: Nanos,
        client: ClientKey,
        id: RequestId,
        model: ModelId,
        slo: Slo,
        input: InputRef,
    ) {
        self.stats.offered += 1;
        self.age_margins(now);
        let refused = Refused {
            client,
            id,
            model,
            input,
        };
        let mi = model.0 as usize;
        let Some(m) = self
            .models
            .get(mi)
            .filter(|_| !self.retired.contains(model.0))
        else {
            self.refuse(now, refused, ClientStatus::UnknownModel, None);
            return;
        };
        let expected = m.profile().input_bytes;
        if input.len != 0 && input.len != expected {
            let why = format!(
                "input is {} bytes; the model takes {expected} bytes per request (or none)",
                input.len
            );
            self.refuse(now, refused, ClientStatus::InvalidRequest, Some(why.into()));
            return;
        }
        let (pages, b1, cold) = (m.pages(), m.b1(), !m.has_ready_replica());
        if self.live_gpus == 0 || pages > self.max_pages {
            self.refuse(now, refused, ClientStatus::Unavailable, None);
            return;
        }
        let Some(slo) = resolve_slo(slo, self.cfg.default_slo, b1) else {
            self.refuse(now, refused, ClientStatus::InvalidRequest, None);
            return;
        };
        self.tightest.record(slo);
        // Inputs of MBs reach the worker their transfer time after the lead time
        // (`crate::margins::transfer_time`; zero below 1 MiB): the request must be
        // sent that much earlier, and a plan must end that much before its target.
        let transfer = self.transfer_time(u64::from(input.len));
        let lead = self.lead.get() + transfer;
        let Some(d) = deadlines(now, slo, self.completion_buffer(), lead, b1) else {
            self.refuse(now, refused, ClientStatus::Rejected, None);
            return;
        };
        match self.some_plan_meets(mi, now, d.target.saturating_sub(transfer)) {
            Plan::Meets => {}
            Plan::Doubtful(g)
                if self.gpus[g as usize]
                    .doubt
                    .admit(self.cfg.late_failure_share) =>
            {
                self.stats.doubtful_admitted += 1;
            }
            plan => {
                if plan != Plan::Misses {
                    self.stats.doubtful_refused += 1;
                }
                self.refuse(now, refused, ClientStatus::Rejected, None);
                return self.warm_if_cold(mi, b1, now);
            }
        }
        if cold {
            self.stats.cold_starts += 1;
        }
        let key = self.requests.insert(Request {
            client,
            id,
            model,
            arrival: now,
            d,
            work: b1.get(),
            input,
            cold,
            in_flight: false,
            doubt_gpu: self.models[mi].only_ready_replica(),
        });
        let new_head = self.enqueue(mi, key, d.target, b1.get());
        self.note_demand(mi, now);
        if new_head {
            // Otherwise every GPU holding the model is already busy with it.
            self.dispatch_model(mi, now);
        }
        // Armed only for requests that stay queued: most are sent at once.
        self.arm_expiry(mi);
        self.schedule_loads(now);
        self.flush(now);
    }

    /// Answers a request that was never admitted; `message` replaces the status's
    /// standard one.
    fn refuse(
        &mut self,
        now: Nanos,
        r: Refused,
        status: ClientStatus,
        message: Option<Cow<'static, str>>,
    ) {
        // A refusal the plan made: the margins may be what stops results coming back
        // ([`crate::margins::MeasuredMargin::thaw`]).
        self.rejected_since_result |= status == ClientStatus::Rejected;
        if self.cfg.telemetry {
            self.logs.push_back(LogRecord::Request(RequestLog {
                t: now,
                request_id: r.id.0,
                result: status.code(),
                user_id: r.client.0,
                model_id: r.model.0,
                slo: Nanos::ZERO,
                latency: Nanos::ZERO,
                deadline: now,
                deadline_met: false,
                arrival_count: self.stats.offered,
                departure_count: self.stats.answered + 1,
                is_coldstart: false,
            }));
        }
        let answer = Answer {
            client: r.client,
            input: r.input,
            id: r.id,
            model: r.model,
            status,
            batch_size: 0,
            arrival: now,
            output: Vec::new(),
            message,
        };
        self.respond(now, answer);
    }

    /// A request refused at admission may be for a model no GPU holds, with an SLO too
    /// tight to wait for a LOAD but maybe not once warm: load it for the requests that
    /// follow.
    fn warm_if_cold(&mut self, mi: usize, b1: Nanos, now: Nanos) {
        if self.models[mi].replicas.is_empty() {
            self.models[mi].warm_demand = b1.get();
            self.note_demand(mi, now);
            self.schedule_loads(now);
            self.flush(now);
        }
    }

    /// Whether some plan could complete the request by `target`: on a GPU that holds
    /// the model, after the queued work that runs before it there ([`Scheduler::work_ahead`]),
    /// on one loading it (from the later of the LOAD's end and the EXEC free time), or
    /// after a LOAD started now on a live GPU that does not hold it and that the load
    /// policy would load it on ([`Scheduler::load_plan_meets`]). Each of these is a
    /// lower bound on completion, so [`Plan::Misses`] means no plan can meet the
    /// target: the request is refused at admission instead of waiting in a queue until
    /// it expires. [`Plan::Doubtful`]: only the rollout of a GPU under pressure says it
    /// misses ([`crate::doubt`]).
    fn some_plan_meets(&self, mi: usize, now: Nanos, target: Nanos) -> Plan {
        let m = &self.models[mi];
        let b1 = m.b1();
        let (future, lag) = (self.lead.get(), self.cfg.lag);
        if m.replicas.is_empty() {
            // A cold model may go to any live GPU, evicting what it must.
            let fits = self.live_gpus > 0 && now + future + m.load_estimate() + b1 <= target;
            return if fits { Plan::Meets } else { Plan::Misses };
        }
        let mut doubtful = None;
        let on_replica = m.replicas.iter().any(|r| {
            let g = &self.gpus[r.gpu as usize];
            let mut start = g.exec.available(now, future, lag);
            if !r.ready {
                return start.max(r.ready_at) + b1 <= target;
            }
            // Cheap first: the GPU's queued work at batch-1 cost bounds the work ahead
            // from above (its credit lags by at most a quarter).
            if start + Nanos(g.credit.saturating_mul(2)) + b1 <= target {
                return true;
            }
            if self.under_pressure(mi, r.gpu, start, target) {
                let admits = self.rollout_admits(mi, r.gpu, start, target);
                // The rollout's "no" is a doubt only where batch 1 could still start
                // in time on this GPU.
                if !admits && start + b1 <= target {
                    doubtful = Some(r.gpu);
                }
                return admits;
            }
            start = start + self.work_ahead(r.gpu, mi, target);
            start <= target
        });
        // Checked last: it looks at every GPU.
        if on_replica
            || ((m.replicas.len() as u32) < self.live_gpus && self.load_plan_meets(mi, now, target))
        {
            Plan::Meets
        } else if let Some(g) = doubtful {
            Plan::Doubtful(g)
        } else {
            Plan::Misses
        }
    }

    /// Whether a request of model `mi` with target `target` would be served if GPU
    /// `g`, free at `start`, ran what is queued on it as its dispatch would: the
    /// rollout's first batch, then earliest-deadline-first with batching
    /// ([`crate::rollout::serves`]).
    fn rollout_admits(&self, mi: usize, g: u32, start: Nanos, target: Nanos) -> bool {
        self.with_rollout(mi, g, start, Some(target), |views, from, at, _| {
            at.is_some_and(|at| serves(start, views, (0, at), from))
        })
    }

    /// Whether another replica of model `mi` (it has one) could be loaded now and
    /// complete a batch-1 run by `target`. A replica goes only to a GPU with spare
    /// capacity (see `choose_gpu`): under overload every GPU is above it and no new
    /// replica will come, so counting one would admit requests that can only expire in
    /// the queue at their deadline (issue 14: with two GPUs at 1.5x their capacity,
    /// every failure was such a timeout). On a GPU with spare capacity the run starts
    /// after both the LOAD and that GPU's EXEC backlog.
    fn load_plan_meets(&self, mi: usize, now: Nanos, target: Nanos) -> bool {
        let m = &self.models[mi];
        let (future, lag) = (self.lead.get(), self.cfg.lag);
        let (load, b1) = (m.load_estimate(), m.b1());
        if now + future + load + b1 > target {
            return false;
        }
        let capacity = self.cfg.load_capacity.get();
        (0..self.gpus.len() as u32).any(|g| {
            let gpu = &self.gpus[g as usize];
            let loaded = gpu.pcie.available(now, future, lag) + load;
            self.can_host(mi, g)
                && gpu.outstanding(now) < capacity
                && gpu.exec.available(now, future, lag).max(loaded) + b1 <= target
        })
    }

    /// The EXEC time GPU `g` needs, from its free time, to complete a request of model
    /// `mi` with completion target `target`: the requests queued with earlier targets
    /// for the other models it serves, and the request itself with those of its own
    /// model ahead of it (never less than a batch-1 run), each at the cost per request
    /// the batches sent to this GPU lately had ([`cost_per_request`]),
    /// shared over the model's ready replicas. O(models queued on the GPU · log queue).
    fn work_ahead(&self, g: u32, mi: usize, target: Nanos) -> Nanos {
        let gpu = &self.gpus[g as usize];
        let mut others = 0u64;
        for Reverse(e) in gpu.heap.iter() {
            let oi = e.model as usize;
            if oi == mi {
                continue;
            }
            let o = &self.models[oi];
            // One live entry per model and GPU; the rest are superseded.
            if o.replica(g).is_none_or(|r| r.heap_key != Some(e.urgency)) {
                continue;
            }
            let ahead = o.queued_until(target);
            others += ahead * cost_per_request(o, gpu.cost_ratio) / o.ready_replicas().max(1);
        }
        let m = &self.models[mi];
        let own_ahead = m.queued_until(target) / m.ready_replicas().max(1);
        let own = m
            .b1()
            .max(Nanos((own_ahead + 1) * cost_per_request(m, gpu.cost_ratio)));
        Nanos(others) + own
    }

    /// Inserts a request into its model's queue and updates demand accounting.
    /// Returns whether it became the head (the queue was empty, or it is more urgent).
    pub(super) fn enqueue(&mut self, mi: usize, key: Key, target: Nanos, work: u64) -> bool {
        let m = &mut self.models[mi];
        let new_head = m.enqueue(QueueEntry { target, key });
        m.queued_work += work;
        self.refresh_credit(mi);
        if new_head {
            self.ensure_heap_entries(mi);
        }
        new_head
    }

    /// Gives every GPU that holds the model ready a dispatch-heap entry no later than
    /// its current urgency. Entries that are now too early (the head became less
    /// urgent) stay: they are re-pushed with the right key when popped.
    pub(super) fn ensure_heap_entries(&mut self, mi: usize) {
        self.ensure_heap_entries_except(mi, None);
    }

    /// [`Scheduler::ensure_heap_entries`] for every GPU but `skip`.
    pub(super) fn ensure_heap_entries_except(&mut self, mi: usize, skip: Option<u32>) {
        let m = &mut self.models[mi];
        let Some(urgency) = m.urgency() else {
            return;
        };
        let entry = HeapEntry {
            urgency,
            // Model indices come from ModelId (u32).
            model: mi as u32,
        };
        for r in &mut m.replicas {
            if r.ready && Some(r.gpu) != skip && r.heap_key.is_none_or(|k| urgency < k) {
                r.heap_key = Some(urgency);
                let gpu = &mut self.gpus[r.gpu as usize];
                gpu.heap.push(Reverse(entry));
                if gpu.exec_wake.is_none() {
                    self.exec_unarmed.push(r.gpu);
                }
            }
        }
    }

    /// Pops tombstones (answered requests) off the front of a model's queue.
    pub(super) fn clean_front(&mut self, mi: usize) {
        let m = &mut self.models[mi];
        while let Some(f) = m.queue.front() {
            if self.requests.contains(f.key) {
                break;
            }
            m.queue.pop_front();
        }
    }

    /// Arms the model's expiry timer for its queue's front unless an earlier one is
    /// armed (an early firing finds nothing due and re-arms). Invariant: whenever a
    /// request was left queued at the end of an input call, a timer no later than
    /// the front's expiry is armed (fronts only get later, except on enqueue, which
    /// arms).
    pub(super) fn arm_expiry(&mut self, mi: usize) {
        let Some(&front) = self.models[mi].queue.front() else {
            return;
        };
        let at = self.expiry_point(mi, front.target);
        let rescue = self.rescue_point(mi, front.target);
        let m = &mut self.models[mi];
        if !m.replicas.is_empty() && m.rescue_armed.is_none_or(|a| a > rescue) {
            m.rescue_armed = Some(rescue);
            // Model indices come from ModelId (u32).
            self.rescue_timers.push(rescue, mi as u32);
        }
        if m.expiry_armed.is_some_and(|a| a <= at) {
            return;
        }
        m.expiry_armed = Some(at);
        // Model indices come from ModelId (u32).
        self.model_timers.push(at, mi as u32);
    }

    /// When the expiry timer of a queued request of model `mi` with completion target
    /// `target` is due: strictly after its last feasible start (a batch-1 run sent
    /// then), so that firing makes progress.
    pub(super) fn expiry_point(&self, mi: usize, target: Nanos) -> Nanos {
        target - self.models[mi].b1() - self.lead.get() + Nanos(1)
    }

    /// The last moment at which a LOAD on another GPU could still help a queued
    /// request with completion target `target`: room for the PCIe and EXEC
    /// timelines' schedule-ahead, the LOAD and a batch-1 run.
    pub(super) fn rescue_point(&self, mi: usize, target: Nanos) -> Nanos {
        let m = &self.models[mi];
        let cfg = &self.cfg;
        target
            - m.b1()
            - m.load_estimate()
            - self.lead.get()
            - cfg.schedule_ahead
            - cfg.schedule_ahead
            - RESCUE_SLACK
    }

    /// Whether a model's queue front is still queued past its rescue point: the GPUs
    /// holding the model are too busy to serve it, so another replica is wanted now
    /// whatever the load tracker's averages say.
    pub(super) fn at_risk(&self, mi: usize, now: Nanos) -> bool {
        let m = &self.models[mi];
        m.queue
            .front()
            .is_some_and(|f| now >= self.rescue_point(mi, f.target))
    }

    /// A model's rescue timer fired: if its front is at risk and no replica is
    /// loading, it becomes a LOAD candidate at once. Re-arms for the new front.
    pub(super) fn rescue_front(&mut self, mi: usize, at: Nanos, now: Nanos) {
        let m = &mut self.models[mi];
        if m.rescue_armed != Some(at) {
            return;
        }
        m.rescue_armed = None;
        if self.at_risk(mi, now) {
            self.models[mi].demand_checked = None;
            self.note_demand(mi, now);
        }
        let m = &self.models[mi];
        let Some(front) = m.queue.front() else {
            return;
        };
        let rescue = self.rescue_point(mi, front.target);
        if rescue > now && !m.replicas.is_empty() {
            self.models[mi].rescue_armed = Some(rescue);
            // Model indices come from ModelId (u32).
            self.rescue_timers.push(rescue, mi as u32);
        }
    }

    /// A model's expiry timer fired: queued requests that can no longer start in
    /// time even alone, on an idle GPU, are answered `Timeout` now.
    pub(super) fn expire_front(&mut self, mi: usize, at: Nanos, now: Nanos) {
        let m = &mut self.models[mi];
        if m.expiry_armed != Some(at) {
            return;
        }
        m.expiry_armed = None;
        let late = now + self.lead.get() + m.b1();
        while let Some(front) = self.models[mi].queue.front().copied() {
            if late <= front.target {
                break;
            }
            let work = self.requests.get(front.key).map_or(0, |r| r.work);
            self.answer(front.key, now, ClientStatus::Timeout, 0, Vec::new());
            self.stats.timeout_queued += 1;
            self.forget_queued(mi, front.key, work);
        }
        self.arm_expiry(mi);
    }

    /// Accounting after a queued request was answered (the caller removed it from
    /// the arena): its queue entry is popped if at the front, else left as a tombstone.
    pub(super) fn forget_queued(&mut self, mi: usize, key: Key, work: u64) {
        let m = &mut self.models[mi];
        m.live -= 1;
        m.queued_work -= work;
        let was_front = m.queue.front().is_some_and(|f| f.key == key);
        if was_front {
            m.queue.pop_front();
            self.clean_front(mi);
        }
        self.refresh_credit(mi);
    }

    /// Puts an in-flight request back into its model's queue if it can still be
    /// served (its last feasible start has not passed, and its model was not retired);
    /// returns whether it did.
    pub(super) fn requeue(&mut self, key: Key, now: Nanos) -> bool {
        let Some(req) = self.requests.get_mut(key) else {
            return false;
        };
        if now > req.d.expire_at || self.live_gpus == 0 || self.retired.contains(req.model.0) {
            return false;
        }
        req.in_flight = false;
        let (mi, target, work) = (req.model.0 as usize, req.d.target, req.work);
        self.enqueue(mi, key, target, work);
        self.arm_expiry(mi);
        self.stats.requeued += 1;
        true
    }
}
