//! Workers joining and leaving, model registration, and resyncs from GET STATE.

use super::{InFlightKind, ModelRange, Scheduler};
use crate::arena::Key;
use crate::doubt::DoubtfulAdmissions;
use crate::error::RegisterError;
use crate::gpu_state::{BitSet, GpuSlot, WorkerSlot};
use crate::model_state::{ModelState, Replica, Shape};
use crate::timeline::Timeline;
use clockwork_core::{
    Action, ActionKind, ClientStatus, ModelId, ModelProfile, Nanos, Window, WorkerId, WorkerState,
};
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

impl Scheduler {
    /// A worker connected (or reconnected) with this state: its GPUs join the plan
    /// with the pages and resident models it reports. Models registered here but not
    /// on the worker are registered there (RegisterModel actions); until the worker
    /// acknowledges one, no LOAD of it goes to that worker. A worker id already known
    /// is first treated as lost.
    ///
    /// Resident models the controller does not know keep their pages (the worker's
    /// `free_pages` is trusted); they are never scheduled.
    pub fn worker_joined(&mut self, now: Nanos, worker: WorkerId, state: &WorkerState) {
        if self.worker_index.contains(worker) {
            self.worker_lost(now, worker);
        }
        // Fewer than 4 billion workers ever join.
        let wk = self.workers.len() as u32;
        let mut registered = BitSet::default();
        for rm in &state.models {
            for id in rm.ids() {
                if let Some(m) = self.models.get(id.0 as usize) {
                    if *m.profile() == rm.profile {
                        registered.insert(id.0);
                    }
                }
            }
        }
        self.workers.push(WorkerSlot {
            id: worker,
            alive: true,
            gpus: Vec::new(),
            registered,
            pending: Vec::new(),
            pending_members: Vec::new(),
            resyncing: false,
        });
        self.worker_index.insert(worker, wk);
        for gs in &state.gpus {
            let g = self.gpus.len() as u32;
            self.gpus.push(GpuSlot {
                worker: wk,
                worker_id: worker,
                gpu_id: gs.id,
                alive: true,
                page_size: state.page_size,
                total_pages: gs.total_pages,
                free_pages: gs.free_pages.min(gs.total_pages),
                exec: Timeline::new(),
                pcie: Timeline::new(),
                loads_in_flight: 0,
                residents: Vec::new(),
                heap: BinaryHeap::new(),
                exec_wake: None,
                pcie_wake: None,
                deadline_wake: None,
                credit: 0,
                cost_ratio: 1.0,
                infers: Vec::new(),
                doubt: DoubtfulAdmissions::default(),
            });
            self.workers[wk as usize].gpus.push(g);
            self.live_gpus += 1;
            for &m in &gs.loaded {
                if self.workers[wk as usize].registered.contains(m.0)
                    && self.models[m.0 as usize].replica(g).is_none()
                {
                    self.gpus[g as usize].residents.push(m);
                    self.add_replica(m.0 as usize, ready_replica(g, now));
                    self.ensure_heap_entries(m.0 as usize);
                    self.unload_if_retired(m.0 as usize, g, now);
                }
            }
            self.update_load_ready(g, now);
        }
        self.recompute_max_pages();
        // What the worker lacks, in runs of consecutive instances of one shape (the
        // copies of a registration): one action each.
        let mut run: Option<ModelRange> = None;
        for mi in 0..self.models.len() {
            // Model indices come from ModelId (u32).
            let id = ModelId(mi as u32);
            let missing = !self.workers[wk as usize].registered.contains(id.0);
            if let Some(r) = run {
                let shape = &self.models[r.first.0 as usize].shape;
                let longer = r
                    .extended_to(id)
                    .filter(|_| missing && Arc::ptr_eq(shape, &self.models[mi].shape));
                if longer.is_some() {
                    run = longer;
                    continue;
                }
                self.register_range_on(wk, r, now);
                run = None;
            }
            if missing {
                run = Some(ModelRange {
                    first: id,
                    count: 1,
                });
            }
        }
        if let Some(r) = run {
            self.register_range_on(wk, r, now);
        }
        for i in 0..self.workers[wk as usize].gpus.len() {
            let g = self.workers[wk as usize].gpus[i];
            self.dispatch_gpu(g, now);
        }
        self.loads_dirty = true;
        self.schedule_loads(now);
        self.flush(now);
    }

    /// A worker disconnected or failed. Its GPUs leave the plan at once. Requests in
    /// its in-flight INFERs are re-queued if they can still be served in time (and a
    /// GPU is left), else answered `Unavailable` now. Its other in-flight actions are
    /// forgotten; results that still arrive for them are ignored.
    pub fn worker_lost(&mut self, now: Nanos, worker: WorkerId) {
        let Some(wk) = self.worker_index.remove(worker) else {
            return;
        };
        let w = &mut self.workers[wk as usize];
        w.alive = false;
        w.pending.clear();
        w.pending_members.clear();
        w.registered = BitSet::default();
        let gpus = std::mem::take(&mut w.gpus);
        let mut affected = Vec::new();
        for &g in &gpus {
            let gpu = &mut self.gpus[g as usize];
            if !gpu.alive {
                continue;
            }
            gpu.alive = false;
            gpu.heap.clear();
            gpu.exec_wake = None;
            gpu.pcie_wake = None;
            gpu.deadline_wake = None;
            gpu.infers.clear();
            let residents = std::mem::take(&mut gpu.residents);
            self.live_gpus -= 1;
            self.load_ready.remove(g);
            for m in residents {
                self.remove_replica(m.0 as usize, g);
                affected.push(m.0 as usize);
            }
        }
        self.workers[wk as usize].gpus = gpus;
        self.recompute_max_pages();
        let keys: Vec<Key> = self
            .actions
            .keys()
            .filter(|&k| self.actions.get(k).is_some_and(|a| a.worker == wk))
            .collect();
        for k in keys {
            let Some(rec) = self.actions.remove(k) else {
                continue;
            };
            let InFlightKind::Infer(inf) = rec.kind else {
                continue;
            };
            for key in inf.members {
                if self.requeue(key, now) {
                    affected.push(inf.model.0 as usize);
                } else {
                    self.answer(key, now, ClientStatus::Unavailable, 0, Vec::new());
                }
            }
        }
        if self.live_gpus == 0 {
            // Nothing left to serve the queues: answer them now rather than at expiry.
            self.answer_all_unavailable(now);
        }
        affected.sort_unstable();
        affected.dedup();
        for mi in affected {
            self.note_demand(mi, now);
            self.dispatch_model(mi, now);
        }
        self.schedule_loads(now);
        self.flush(now);
    }

    /// The controller is stopping: every request not yet answered (queued or in
    /// flight) is answered `Unavailable` now, and in-flight actions are forgotten.
    /// Requests that arrive afterwards are still answered (normally, or `Unavailable`
    /// once no worker is left).
    pub fn shutdown(&mut self, now: Nanos) {
        self.answer_all_unavailable(now);
        let actions: Vec<Key> = self.actions.keys().collect();
        for key in actions {
            self.actions.remove(key);
        }
        self.flush(now);
    }

    /// Answers every request not yet answered (queued or in flight) `Unavailable`,
    /// taking the queued ones out of their model's queue.
    fn answer_all_unavailable(&mut self, now: Nanos) {
        let keys: Vec<Key> = self.requests.keys().collect();
        for key in keys {
            let Some(req) = self.requests.get(key) else {
                continue;
            };
            let (mi, work, queued) = (req.model.0 as usize, req.work, !req.in_flight);
            self.answer(key, now, ClientStatus::Unavailable, 0, Vec::new());
            if queued {
                self.forget_queued(mi, key, work);
            }
        }
    }

    /// Registers `copies` instances of a model, with contiguous ids, and sends a
    /// RegisterModel to every connected worker. Works at any time, also while
    /// requests are being served.
    pub fn register_models(
        &mut self,
        now: Nanos,
        profile: ModelProfile,
        copies: u32,
    ) -> Result<ModelRange, RegisterError> {
        profile.validate()?;
        if copies == 0 {
            return Err(RegisterError::NoCopies);
        }
        // `max_models` is a u32, so every id below it fits the id space.
        let first = self.models.len() as u64;
        let total = first + u64::from(copies);
        if total > u64::from(self.cfg.max_models) {
            return Err(RegisterError::TooManyModels {
                asked: copies,
                total,
                max: self.cfg.max_models,
            });
        }
        let proto = ModelState::new(Arc::new(Shape::new(profile, &self.cfg)?), &self.cfg);
        self.models.reserve(copies as usize);
        for _ in 0..copies {
            self.models.push(proto.clone());
        }
        // Checked above: first + copies fits in u32.
        let range = ModelRange {
            first: ModelId(first as u32),
            count: copies,
        };
        for wk in 0..self.workers.len() {
            if self.workers[wk].alive {
                // Worker indices are u32 (see worker_joined).
                self.register_range_on(wk as u32, range, now);
            }
        }
        self.flush(now);
        Ok(range)
    }

    /// Registers the instances of `range` (one profile) on worker `wk`, in one action.
    pub(super) fn register_range_on(&mut self, wk: u32, range: ModelRange, now: Nanos) {
        let (_, id) = self.track(wk, now, InFlightKind::Register(range));
        self.stats.registrations += u64::from(range.count);
        let profile = self.models[range.first.0 as usize].profile().clone();
        self.emit(
            wk,
            Action {
                id,
                window: Window::ANY,
                kind: ActionKind::RegisterModel {
                    model: range.first,
                    count: range.count,
                    profile,
                },
            },
        );
    }

    /// Asks a worker for its state after a result that contradicts the plan.
    pub(super) fn resync(&mut self, wk: u32, now: Nanos) {
        let w = &mut self.workers[wk as usize];
        if !w.alive || w.resyncing {
            return;
        }
        w.resyncing = true;
        let (_, id) = self.track(wk, now, InFlightKind::GetState);
        self.stats.resyncs += 1;
        self.emit(
            wk,
            Action {
                id,
                window: Window::ANY,
                kind: ActionKind::GetState,
            },
        );
    }

    /// Aligns the plan with a worker's reported state: ready models it does not report
    /// leave the plan; known models it reports join it; free pages become the smaller
    /// of the plan's count and the worker's (minus LOADs still in flight).
    pub(super) fn reconcile(&mut self, wk: u32, state: &WorkerState, now: Nanos) {
        for gs in &state.gpus {
            let Some(g) = self.workers[wk as usize]
                .gpus
                .iter()
                .copied()
                .find(|&g| self.gpus[g as usize].gpu_id == gs.id)
            else {
                continue;
            };
            let reported: HashSet<u32> = gs.loaded.iter().map(|m| m.0).collect();
            let residents = self.gpus[g as usize].residents.clone();
            for m in residents {
                let mi = m.0 as usize;
                let ready = self.models[mi].replica(g).is_some_and(|r| r.ready);
                if ready && !reported.contains(&m.0) {
                    self.remove_replica(mi, g);
                    self.note_demand(mi, now);
                }
            }
            for &m in &gs.loaded {
                let mi = m.0 as usize;
                if mi < self.models.len()
                    && self.workers[wk as usize].registered.contains(m.0)
                    && self.models[mi].replica(g).is_none()
                {
                    self.gpus[g as usize].residents.push(m);
                    self.add_replica(mi, ready_replica(g, now));
                    self.ensure_heap_entries(mi);
                    self.unload_if_retired(mi, g, now);
                }
            }
            let gpu = &self.gpus[g as usize];
            let mut used: u64 = 0;
            let mut loading_unreported: u32 = 0;
            for &m in &gpu.residents {
                let vm = &self.models[m.0 as usize];
                let p = vm.pages_at(gpu.page_size);
                used += u64::from(p);
                if vm.replica(g).is_some_and(|r| !r.ready) && !reported.contains(&m.0) {
                    loading_unreported += p;
                }
            }
            let ours = u64::from(gpu.total_pages).saturating_sub(used);
            let theirs = gs.free_pages.saturating_sub(loading_unreported);
            // ours <= total_pages (a u32).
            let free = (ours as u32).min(theirs);
            self.gpus[g as usize].free_pages = free;
            self.dispatch_gpu(g, now);
        }
        self.loads_dirty = true;
    }

    fn recompute_max_pages(&mut self) {
        self.max_pages = self
            .gpus
            .iter()
            .filter(|g| g.alive)
            .map(|g| g.total_pages)
            .max()
            .unwrap_or(0);
    }
}

fn ready_replica(gpu: u32, now: Nanos) -> Replica {
    Replica {
        gpu,
        ready: true,
        ready_at: now,
        last_used: now,
        inflight: 0,
        heap_key: None,
    }
}
