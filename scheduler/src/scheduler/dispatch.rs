//! INFER dispatch: batching and placement on GPU EXEC timelines (reference 3.4/3.8).
//!
//! Each GPU keeps a min-heap of the models it holds that have queued work, keyed by
//! urgency (head target − batch-1 estimate). While the GPU's predicted free time is
//! before `now + schedule_ahead`, the most urgent model is popped and its batch is
//! formed ([`crate::batching::choose_batch`]) to start at that free time. Offering a
//! model to every GPU that holds it and letting whichever has room take it gives the
//! original's implicit load balancing. A GPU without room arms a wake-up for when it
//! will have some.
//!
//! Windows: `earliest = now` (the worker starts it as soon as the GPU is free) and
//! `latest = min(max(now + future + schedule_ahead, start + schedule_ahead),
//! last_target − estimate)`. The first term is the reference rule; the second is ours:
//! the worker drops a batch that could no longer complete by the target of even its
//! least urgent request, instead of running it for nothing. Since the batch was chosen
//! so that `start + estimate <= head_target <= last_target`,
//! `latest >= start >= now + future`: no action is ever sent with its window closed.

use super::{InFlightKind, InferRecord, RolloutScratch, Scheduler};
use crate::arena::Key;
use crate::batching::{choose_batch, Choice};
use crate::gpu_state::{HeapEntry, Lane};
use crate::rollout::{best_first, QueueView, MAX_CANDIDATES, MAX_QUEUED};
use clockwork_core::{Action, ActionKind, ClientStatus, ModelId, Nanos, Window};
use std::cmp::Reverse;

/// Batch sizes of a model whose inputs' transfer time is weighed (more than any
/// profile has; larger ones weigh none).
const MAX_TRANSFER_SIZES: usize = 32;

impl Scheduler {
    /// Offers a model's new head to the GPUs holding it that have room now, starting
    /// from a rotating one (spreads load over replicas), until its queue is empty.
    pub(super) fn dispatch_model(&mut self, mi: usize, now: Nanos) {
        let (sa, future, lag) = (self.exec_schedule_ahead(), self.lead.get(), self.cfg.lag);
        let m = &mut self.models[mi];
        let n = m.replicas.len();
        if n == 0 {
            return;
        }
        let first = m.rotation as usize % n;
        m.rotation = m.rotation.wrapping_add(1);
        for j in 0..n {
            let m = &self.models[mi];
            if m.live == 0 {
                break;
            }
            // Dispatch never changes the replica set, so the index stays valid.
            let Some(r) = m.replicas.get((first + j) % n).copied() else {
                break;
            };
            if r.ready && self.gpus[r.gpu as usize].exec.available(now, future, lag) < now + sa {
                self.dispatch_gpu(r.gpu, now);
            }
        }
    }

    /// Fills GPU `g`'s EXEC timeline up to `now + schedule_ahead` with the most urgent
    /// work of the models it holds.
    pub(super) fn dispatch_gpu(&mut self, g: u32, now: Nanos) {
        let (sa, future, lag) = (self.exec_schedule_ahead(), self.lead.get(), self.cfg.lag);
        let horizon = now + sa;
        loop {
            let gpu = &mut self.gpus[g as usize];
            if !gpu.alive {
                return;
            }
            let avail = gpu.exec.available(now, future, lag);
            if avail >= horizon {
                // Wanted only with work queued (a push onto an empty heap arms it:
                // `arm_exec_where_pushed`).
                if !gpu.heap.is_empty() {
                    self.arm_exec_for_room(g, avail, sa, now);
                }
                return;
            }
            let Some((e, urgency)) = self.live_heap_top(g) else {
                return;
            };
            self.gpus[g as usize].heap.pop();
            let mi = e.model as usize;
            let Some(r) = self.models[mi].replica_mut(g) else {
                continue; // unreachable: a live entry's replica exists
            };
            if urgency > e.urgency {
                // The head became less urgent since: re-file it.
                r.heap_key = Some(urgency);
                self.gpus[g as usize].heap.push(Reverse(HeapEntry {
                    urgency,
                    model: e.model,
                }));
                continue;
            }
            r.heap_key = None;
            match self.rollout_pick(mi, g, avail) {
                Some((other, k)) => {
                    // The popped model keeps its place in the heap.
                    if let Some(r) = self.models[mi].replica_mut(g) {
                        r.heap_key = Some(e.urgency);
                        self.gpus[g as usize].heap.push(Reverse(e));
                    }
                    self.try_batch(other, g, avail, now, Some(k));
                }
                None => self.try_batch(mi, g, avail, now, None),
            }
        }
    }

    /// The input bytes request `key` carries (0 when answered already, or when the
    /// worker makes its input).
    fn input_bytes(&self, key: Key) -> u64 {
        self.requests.get(key).map_or(0, |r| u64::from(r.input.len))
    }

    /// How long `bytes` of inputs take to reach a worker beyond the lead time, as
    /// measured ([`crate::margins::transfer_time`]).
    pub(super) fn transfer_time(&self, bytes: u64) -> Nanos {
        crate::margins::transfer_time(bytes, self.transfer.get())
    }

    /// Whether `n` requests of model `mi` can carry the 1 MiB of inputs from which
    /// they have a transfer time. A request carries its model's input size or none
    /// (checked at admission), so most models never do, and their queued requests
    /// need not be looked at on the dispatch's path.
    fn may_transfer(&self, mi: usize, n: u32) -> bool {
        u64::from(self.models[mi].profile().input_bytes) * u64::from(n)
            >= crate::margins::BIG_ACTION_BYTES
    }

    /// What request `key` of model `mi` takes to reach the worker beyond the lead time.
    fn request_transfer(&self, mi: usize, key: Key) -> Nanos {
        if !self.may_transfer(mi, 1) {
            return Nanos::ZERO;
        }
        self.transfer_time(self.input_bytes(key))
    }

    /// What the first n live queued requests of model `mi` take to reach the worker
    /// beyond the lead time, for each batch size n (zero for all but inputs of MBs).
    fn transfer_by_size(&self, mi: usize) -> [Nanos; MAX_TRANSFER_SIZES] {
        let per_mib = self.transfer.get();
        let mut transfer = [Nanos::ZERO; MAX_TRANSFER_SIZES];
        let m = &self.models[mi];
        if !self.may_transfer(mi, m.sizes().last().copied().unwrap_or(0)) {
            return transfer;
        }
        let mut queued = m.queue.iter().filter(|e| self.requests.contains(e.key));
        let (mut bytes, mut n) = (0u64, 0usize);
        for (k, &b) in m.sizes().iter().enumerate().take(MAX_TRANSFER_SIZES) {
            while n < b as usize {
                let Some(e) = queued.next() else { break };
                bytes += self.input_bytes(e.key);
                n += 1;
            }
            transfer[k] = crate::margins::transfer_time(bytes, per_mib);
        }
        transfer
    }

    /// Arms GPU `g`'s EXEC wake-up for when it has room again: once `now + sa` passes
    /// `avail`, its predicted free time. While its oldest action is overdue, `avail`
    /// moves with `now` (`Timeline::overdue`) and no room comes with time alone: a
    /// result (which dispatches at once) or new SLOs bring it. Then it looks again
    /// after the lag, not at `avail - sa + 1`, which stays the same distance ahead of
    /// `now` and, when that distance is a few ns, made a loop of wake-ups that kept
    /// the controller's executor from reading the very results that would end it.
    pub(super) fn arm_exec_for_room(&mut self, g: u32, avail: Nanos, sa: Nanos, now: Nanos) {
        let mut at = avail - sa + Nanos(1);
        if self.gpus[g as usize].exec.overdue(now, self.cfg.lag) {
            at = at.max(now + self.cfg.lag);
        }
        self.arm(g, Lane::Exec, at);
    }

    /// Pops the entries at the top of GPU `g`'s dispatch heap that the dispatch skips
    /// (superseded by a more urgent entry of their model, a replica not ready, a model
    /// with nothing queued; the latter two lose their heap key, so that the next head
    /// files a fresh entry), and returns the live entry left on top, with its model's
    /// urgency now (at or after the entry's: a less urgent head is re-filed).
    pub(super) fn live_heap_top(&mut self, g: u32) -> Option<(HeapEntry, Nanos)> {
        let gpu = &mut self.gpus[g as usize];
        while let Some(&Reverse(e)) = gpu.heap.peek() {
            let m = &mut self.models[e.model as usize];
            let urgency = m.urgency();
            if let Some(r) = m.replica_mut(g).filter(|r| r.heap_key == Some(e.urgency)) {
                if let Some(u) = urgency.filter(|_| r.ready) {
                    return Some((e, u));
                }
                r.heap_key = None;
            }
            gpu.heap.pop();
        }
        None
    }

    /// Under pressure, another model that GPU `g` should run first instead of `mi`
    /// (the most urgent), with the size index of its batch: a rollout over the queues
    /// of the [`MAX_CANDIDATES`] most urgent models that only this GPU serves
    /// ([`crate::rollout`]). `None` keeps `mi`: everything queued fits before `mi`'s
    /// head target, `mi` is served elsewhere too, or no other first batch serves more.
    fn rollout_pick(&mut self, mi: usize, g: u32, start: Nanos) -> Option<(usize, usize)> {
        let head = self.models[mi].queue.front()?.target;
        if !self.under_pressure(mi, g, start, head) {
            return None;
        }
        self.with_rollout(
            mi,
            g,
            start,
            None,
            |views, from, _, models| match best_first(start, views, 0, from) {
                Some((q, k)) if q != 0 => Some((models[q].1 as usize, k)),
                _ => None,
            },
        )
    }

    /// Whether GPU `g`, free at `start`, may not serve everything queued on it in
    /// earliest-deadline order: its queued work at batch-1 cost (the credit, which lags
    /// by at most a quarter) does not fit before `head` (the earliest target), and
    /// model `mi` is served by this GPU alone (a rollout sees one GPU).
    pub(super) fn under_pressure(&self, mi: usize, g: u32, start: Nanos, head: Nanos) -> bool {
        let credit = self.gpus[g as usize].credit;
        start + Nanos(credit.saturating_mul(2)) > head && self.models[mi].ready_replicas() == 1
    }

    /// Fills `scratch` with a rollout's queues on GPU `g` from `start`: model `mi`
    /// first, then the most urgent others that only `g` serves (up to
    /// [`MAX_CANDIDATES`] in all), each with the targets of its live queued requests
    /// that can still make it. `extra`, a new request's target, joins `mi`'s queue;
    /// its position there is returned.
    pub(super) fn fill_rollout(
        &self,
        scratch: &mut RolloutScratch,
        mi: usize,
        g: u32,
        start: Nanos,
        extra: Option<Nanos>,
    ) -> Option<usize> {
        let gpu = &self.gpus[g as usize];
        scratch.models.clear();
        scratch.models.push((Nanos::ZERO, mi as u32));
        for Reverse(e) in gpu.heap.iter() {
            let oi = e.model as usize;
            let o = &self.models[oi];
            let live = o
                .replica(g)
                .is_some_and(|r| r.ready && r.heap_key == Some(e.urgency));
            if oi == mi || !live || o.ready_replicas() != 1 {
                continue;
            }
            // The most urgent others, kept sorted by insertion.
            let others = &mut scratch.models;
            if others.len() < MAX_CANDIDATES {
                others.push((e.urgency, e.model));
            } else if let Some(last) = others.last_mut().filter(|l| e.urgency < l.0) {
                *last = (e.urgency, e.model);
            } else {
                continue;
            }
            others[1..].sort_unstable();
        }
        scratch.targets.clear();
        scratch.est.clear();
        scratch.spans.clear();
        let mut extra_at = None;
        for (n, &(_, model)) in scratch.models.iter().enumerate() {
            let o = &self.models[model as usize];
            let est1 = o.b1();
            let t0 = scratch.targets.len();
            // Inputs of MBs arrive their transfer time late: a request whose own cannot
            // arrive in time is not counted, and a batch takes that much longer.
            let transfer = self.transfer_by_size(model as usize);
            let live = o
                .queue
                .iter()
                .filter(|q| {
                    self.requests.contains(q.key)
                        && start + est1 + self.request_transfer(model as usize, q.key) <= q.target
                })
                .take(MAX_QUEUED)
                .map(|q| q.target);
            scratch.targets.extend(live);
            if let Some(x) = extra.filter(|_| n == 0) {
                let at = t0 + scratch.targets[t0..].partition_point(|&t| t <= x);
                scratch.targets.insert(at, x);
                extra_at = Some(at - t0);
            }
            let e0 = scratch.est.len();
            let est = |k: usize| o.est(k) + transfer.get(k).copied().unwrap_or(Nanos::ZERO);
            scratch.est.extend((0..o.sizes().len()).map(est));
            scratch
                .spans
                .push((t0, scratch.targets.len(), e0, scratch.est.len()));
        }
        extra_at
    }

    /// Runs `f` on a rollout of GPU `g` from `start` ([`Scheduler::fill_rollout`]): its
    /// queue views, positions (zero, one per view), the position of `extra` in the first
    /// queue, and the models (urgency, id) in view order. Reuses the scheduler's scratch.
    pub(super) fn with_rollout<R>(
        &self,
        mi: usize,
        g: u32,
        start: Nanos,
        extra: Option<Nanos>,
        f: impl FnOnce(&[QueueView<'_>], &mut [usize], Option<usize>, &[(Nanos, u32)]) -> R,
    ) -> R {
        let mut scratch = self.rollout.take();
        let extra_at = self.fill_rollout(&mut scratch, mi, g, start, extra);
        let mut from = std::mem::take(&mut scratch.from);
        let views: Vec<QueueView<'_>> = scratch
            .spans
            .iter()
            .zip(&scratch.models)
            .map(|(&(t0, t1, e0, e1), &(_, model))| QueueView {
                targets: &scratch.targets[t0..t1],
                sizes: self.models[model as usize].sizes(),
                est: &scratch.est[e0..e1],
            })
            .collect();
        from.clear();
        from.resize(views.len(), 0);
        let out = f(&views, &mut from, extra_at, &scratch.models);
        drop(views);
        scratch.from = from;
        self.rollout.replace(scratch);
        out
    }

    /// Forms and sends one batch of model `mi` on GPU `g` starting at `start`, after
    /// dropping queue heads no GPU can serve in time. Leaves the model alone if its
    /// head cannot make it here but can on another GPU holding it.
    /// `size`, when given, is the batch's size index (a rollout's choice), used if it
    /// still fits; otherwise [`choose_batch`] picks.
    fn try_batch(&mut self, mi: usize, g: u32, start: Nanos, now: Nanos, size: Option<usize>) {
        let est1 = self.models[mi].b1();
        while let Some(front) = self.models[mi].queue.front().copied() {
            let arrival = self.request_transfer(mi, front.key);
            if start + est1 + arrival <= front.target {
                break;
            }
            if self.other_replica_can(mi, g, front.target, est1 + arrival, now) {
                // Leave it to that GPU (make sure it has an entry); this one gets an
                // entry again after the next batch of this model.
                self.ensure_heap_entries_except(mi, Some(g));
                return;
            }
            // Doomed everywhere: answer now rather than at expiry.
            let work = self.requests.get(front.key).map_or(0, |r| r.work);
            self.answer(
                front.key,
                now,
                ClientStatus::CouldNotStartInTime,
                0,
                Vec::new(),
            );
            self.forget_queued_front(mi, work);
        }
        if self.models[mi].queue.is_empty() {
            return;
        }
        self.compact_queue(mi);
        let transfer = self.transfer_by_size(mi);
        let m = &self.models[mi];
        // The batching lookahead sees when the model's other replicas (up to 8) come
        // free. An overloaded GPU (more outstanding work than the load capacity) keeps
        // INFER4's rule: there, GPU time spent on small batches of heads is taken from
        // other requests (test `overloaded_gpus_keep_large_batches`); its replicas are then
        // not looked at.
        let (future, lag) = (self.lead.get(), self.cfg.lag);
        let overloaded = self.gpus[g as usize].outstanding(now) > self.cfg.load_capacity.get();
        let mut others = [Nanos::ZERO; 8];
        let mut n_others = 0;
        let lookahead_replicas = m
            .replicas
            .iter()
            .filter(|r| !overloaded && r.ready && r.gpu != g);
        for r in lookahead_replicas {
            let Some(slot) = others.get_mut(n_others) else {
                break;
            };
            *slot = self.gpus[r.gpu as usize].exec.available(now, future, lag);
            n_others += 1;
        }
        let est = |k: usize| m.est(k) + transfer.get(k).copied().unwrap_or(Nanos::ZERO);
        let forced = size.filter(|&k| {
            m.sizes()
                .get(k)
                .is_some_and(|&b| b as usize <= m.queue.len())
                && m.queue.front().is_some_and(|f| start + est(k) <= f.target)
        });
        let chosen = forced.map(|k| Choice {
            size_index: k,
            skip: 0,
        });
        let Some(choice) = chosen.or_else(|| {
            choose_batch(
                m.sizes(),
                est,
                m.queue.len(),
                |i| m.queue[i].target,
                start,
                (!overloaded).then_some(&others[..n_others]),
            )
        }) else {
            // Unreachable: the head was checked feasible at batch size 1 above.
            return;
        };
        // Heads that would only fit smaller, less pressing batches give way.
        for _ in 0..choice.skip {
            let Some(e) = self.models[mi].queue.front().copied() else {
                break;
            };
            let work = self.requests.get(e.key).map_or(0, |r| r.work);
            self.answer(e.key, now, ClientStatus::ControllerSkipped, 0, Vec::new());
            self.stats.skipped += 1;
            self.forget_queued_front(mi, work);
        }
        let m = &mut self.models[mi];
        let size = m.sizes()[choice.size_index] as usize;
        let mut members = self.member_pool.pop().unwrap_or_default();
        let mut work = 0;
        let mut last_target = start;
        while members.len() < size {
            let Some(e) = m.queue.pop_front() else {
                break;
            };
            if let Some(req) = self.requests.get_mut(e.key) {
                req.in_flight = true;
                work += req.work;
                members.push(e.key);
                last_target = e.target;
            }
        }
        // members.len() <= size <= 1024.
        m.live -= members.len() as u32;
        m.queued_work -= work;
        self.clean_front(mi);
        self.refresh_credit(mi);
        self.ensure_heap_entries(mi);
        self.emit_infer(mi, g, members, choice.size_index, start, last_target, now);
    }

    /// Drops tombstones from anywhere in a model's queue (rare: only requests that
    /// expired behind a live head leave them), so that positions count live requests.
    fn compact_queue(&mut self, mi: usize) {
        let m = &mut self.models[mi];
        if m.queue.len() != m.live as usize {
            let requests = &self.requests;
            m.queue.retain(|e| requests.contains(e.key));
        }
    }

    /// Pops the (live) front of a model's queue after the caller answered it.
    fn forget_queued_front(&mut self, mi: usize, work: u64) {
        let m = &mut self.models[mi];
        m.live -= 1;
        m.queued_work -= work;
        m.queue.pop_front();
        self.clean_front(mi);
        self.refresh_credit(mi);
    }

    /// Whether another GPU holding the model could run batch 1 (`est1`, the inputs'
    /// transfer time included) in time for `target`.
    fn other_replica_can(&self, mi: usize, g: u32, target: Nanos, est1: Nanos, now: Nanos) -> bool {
        self.models[mi].replicas.iter().any(|r| {
            r.ready
                && r.gpu != g
                && self.gpus[r.gpu as usize]
                    .exec
                    .available(now, self.lead.get(), self.cfg.lag)
                    + est1
                    <= target
        })
    }

    #[allow(clippy::too_many_arguments)] // the batch's full description, one call site
    fn emit_infer(
        &mut self,
        mi: usize,
        g: u32,
        members: Vec<Key>,
        si: usize,
        start: Nanos,
        last_target: Nanos,
        now: Nanos,
    ) {
        let (future, sa) = (self.lead.get(), self.exec_schedule_ahead());
        let est = self.models[mi].est(si);
        // Inputs of MBs take longer than the lead time to reach the worker: the batch
        // starts, and its window closes, that much later.
        let bytes: u64 = members.iter().map(|&k| self.input_bytes(k)).sum();
        let reach = now + future + self.transfer_time(bytes);
        let start = start.max(reach);
        let latest = (reach + sa).max(start + sa).min(last_target - est);
        let first_deadline = members
            .first()
            .and_then(|&k| self.requests.get(k))
            .map_or(now, |r| r.d.deadline);
        // A batch holds at most 1024 requests (core's MAX_BATCH_SIZE).
        let batch_size = members.len() as u32;
        // Model indices come from ModelId (u32).
        let model = ModelId(mi as u32);
        let (worker, gpu_id) = {
            let gpu = &self.gpus[g as usize];
            (gpu.worker, gpu.gpu_id)
        };
        self.list_batch_members(worker, &members);
        let (key, id) = self.track(
            worker,
            now,
            InFlightKind::Infer(InferRecord {
                model,
                gpu: g,
                members,
                bytes,
                expected: est,
                expected_end: Nanos::ZERO,
                late_answered: 0,
            }),
        );
        let b1 = self.models[mi].b1().get().max(1) as f64;
        let gpu = &mut self.gpus[g as usize];
        let sample = est.get() as f64 / (f64::from(batch_size.max(1)) * b1);
        gpu.cost_ratio += (sample.min(1.0) - gpu.cost_ratio) / 16.0;
        let end = gpu.exec.push(id.0, reach, start, est);
        gpu.infers.push(id.0);
        if let Some(super::InFlight {
            kind: InFlightKind::Infer(rec),
            ..
        }) = self.actions.get_mut(key)
        {
            rec.expected_end = end;
        }
        if let Some(r) = self.models[mi].replica_mut(g) {
            r.inflight += 1;
            r.last_used = now;
        }
        self.arm(g, Lane::Deadline, first_deadline);
        self.stats.infers += 1;
        self.stats.batched_requests += u64::from(batch_size);
        self.emit(
            worker,
            Action {
                id,
                window: Window::new(now, latest),
                kind: ActionKind::Infer {
                    model,
                    gpu: gpu_id,
                    batch_size,
                    expected_duration: est,
                    // Filled by the driver from the batch members.
                    input_sizes: Vec::new(),
                    inputs: Default::default(),
                },
            },
        );
    }

    /// The earliest deadline among the requests in flight on GPU `g` passed: answer
    /// `Timeout` to every in-flight request there whose deadline passed, and re-arm
    /// for the next one. One timer per GPU, not per INFER: results normally beat
    /// their deadlines, and most per-INFER timers would fire for nothing.
    pub(super) fn in_flight_deadlines(&mut self, g: u32, now: Nanos) {
        let ids = self.gpus[g as usize].infers.clone();
        let mut next: Option<Nanos> = None;
        for id in ids {
            let key = Key::from_u64(id);
            let members = match self.actions.get_mut(key) {
                Some(super::InFlight {
                    kind: InFlightKind::Infer(rec),
                    ..
                }) => std::mem::take(&mut rec.members),
                _ => continue,
            };
            let mut late = 0;
            for &k in &members {
                let Some(req) = self.requests.get(k) else {
                    continue;
                };
                if req.d.deadline <= now {
                    self.answer(k, now, ClientStatus::Timeout, 0, Vec::new());
                    self.stats.timeout_in_flight += 1;
                    late += 1;
                } else {
                    next = Some(next.map_or(req.d.deadline, |t: Nanos| t.min(req.d.deadline)));
                }
            }
            if let Some(super::InFlight {
                kind: InFlightKind::Infer(rec),
                ..
            }) = self.actions.get_mut(key)
            {
                rec.members = members;
                rec.late_answered += late;
            }
        }
        if let Some(t) = next {
            self.arm(g, Lane::Deadline, t);
        }
    }
}
