//! LOAD and UNLOAD decisions: demand-weighted load priority
//! ([`crate::load_tracker`]), GPU choice, eviction ([`crate::eviction`]) and page
//! accounting.
//!
//! A model with queued work and positive unmet demand sits in one global max-heap of
//! candidates. GPUs that can take a LOAD now (fewer than `max_loads_in_flight` loads
//! outstanding and a PCIe timeline with room within `schedule_ahead`) sit in a ready
//! set. Planning pops the best candidate and places it on the better (fewer pages to
//! evict, less outstanding work) of a few GPUs sampled from the ready set — the
//! "power of d choices", so placement costs O(1) however many GPUs there are. Planning
//! runs only when something that could unblock it happened (`loads_dirty`) and tries
//! a bounded number of candidates per call.
//!
//! Candidates are ranked by [`crate::load_tracker::load_priority`]: unmet demand in
//! requests per unit of LOAD time, so that when PCIe is the bottleneck (start-up,
//! bursts of cold models) it serves the most requests.
//!
//! **Rescue replicas.** The load tracker judges a GPU by its average backlog, so a
//! model whose only GPU is transiently swamped (a burst on its co-resident models)
//! gets no replica while another GPU idles, and its oldest request misses. A timer per
//! model fires at its queue front's *rescue point* (the last moment a LOAD elsewhere,
//! with both timelines' schedule-ahead and a margin, can still serve it; see
//! `Scheduler::rescue_point`). If that request is still queued then and no replica is
//! loading, the model becomes a candidate with its whole queued work as demand, and
//! may go only to a GPU where the LOAD plus a batch-1 run behind that GPU's
//! outstanding work completes in time (evicting idle models only, as any replica).
//!
//! LOAD window: `[now, max(now + future + schedule_ahead, pcie_start + schedule_ahead)]`
//! (reference 2.4). UNLOAD window: `[0, MAX]`.

use super::{InFlightKind, Scheduler};
use crate::eviction::{self, Victim};
use crate::gpu_state::Lane;
use crate::load_tracker::{load_priority, unmet_demand, LoadCandidate};
use crate::model_state::Replica;
use clockwork_core::{Action, ActionKind, ClientStatus, ModelId, Nanos, Window};

/// Candidates tried per planning round.
const MAX_ATTEMPTS: usize = 32;
/// GPUs sampled from the ready set per candidate (all of them when at most this many).
const SAMPLE: usize = 4;
/// Ready GPUs scanned when the sample found none.
const FALLBACK_SCAN: usize = 64;
/// Minimum spacing of demand re-evaluations of a replicated model (the original
/// spaced load decisions by 100 µs per GPU).
const DEMAND_CHECK_SPACING: Nanos = Nanos::from_micros(100);
/// When candidates could not be placed, planning is retried after this.
const RETRY_INTERVAL: Nanos = Nanos::from_millis(1);

impl Scheduler {
    /// Re-evaluates a model's unmet demand and makes it a LOAD candidate if positive.
    /// A model with replicas is re-evaluated at most every [`DEMAND_CHECK_SPACING`]
    /// (the computation visits each replica); a cold one every time (O(1)).
    pub(super) fn note_demand(&mut self, mi: usize, now: Nanos) {
        let m = &mut self.models[mi];
        if m.in_load_heap || (m.live == 0 && m.warm_demand == 0) {
            return;
        }
        if !m.replicas.is_empty() {
            if m.demand_checked
                .is_some_and(|t| now < t + DEMAND_CHECK_SPACING)
            {
                return;
            }
            m.demand_checked = Some(now);
        }
        let priority = self.priority(mi, now);
        if priority > 0.0 {
            self.models[mi].in_load_heap = true;
            self.load_heap.push(LoadCandidate {
                priority,
                // Model indices come from ModelId (u32).
                model: ModelId(mi as u32),
            });
            self.loads_dirty = true;
        }
    }

    /// Unmet demand of a model now (reference 3.6).
    fn priority_unmet(&self, mi: usize, now: Nanos) -> f64 {
        let m = &self.models[mi];
        unmet_demand(
            m.queued_work + m.warm_demand,
            self.cfg.load_capacity,
            m.replicas
                .iter()
                .map(|r| self.gpus[r.gpu as usize].outstanding(now)),
        )
    }

    /// Load priority of a model now ([`load_priority`] of its unmet demand, or of its
    /// whole queued work when its oldest request needs a rescue replica).
    fn priority(&self, mi: usize, now: Nanos) -> f64 {
        let m = &self.models[mi];
        let mut unmet = self.priority_unmet(mi, now);
        if unmet <= 0.0 && self.rescue_target(mi, now).is_some() {
            // Its GPUs are too busy for its oldest request: the averages say they
            // have room, but that request will miss without another replica.
            unmet = m.queued_work as f64;
        }
        load_priority(unmet, m.b1(), m.load_estimate())
    }

    /// The target of a replicated model's queue front when it is at risk (see
    /// [`Scheduler::at_risk`]) and no replica is loading: a rescue LOAD elsewhere
    /// must complete in time for it.
    fn rescue_target(&self, mi: usize, now: Nanos) -> Option<Nanos> {
        let m = &self.models[mi];
        if m.replicas.is_empty() || m.replicas.iter().any(|r| !r.ready) || !self.at_risk(mi, now) {
            return None;
        }
        m.queue.front().map(|f| f.target)
    }

    /// Whether a LOAD of model `mi` on GPU `g` started now, followed by a batch-1 run
    /// behind the GPU's outstanding work, could complete by `target`.
    fn in_time_on(&self, mi: usize, g: u32, target: Nanos, now: Nanos) -> bool {
        let (future, lag) = (self.lead.get(), self.cfg.lag);
        let m = &self.models[mi];
        let gpu = &self.gpus[g as usize];
        let loaded = gpu.pcie.available(now, future, lag) + m.load_estimate();
        let exec = (now + Nanos(gpu.outstanding(now))).max(gpu.exec.available(now, future, lag));
        loaded.max(exec) + m.b1() <= target
    }

    /// Plans LOADs while there are candidates and GPUs ready to take them.
    pub(super) fn schedule_loads(&mut self, now: Nanos) {
        if !self.loads_dirty {
            return;
        }
        self.loads_dirty = false;
        let mut deferred = Vec::new();
        let mut attempts = 0;
        let mut emitted = false;
        while !self.load_ready.is_empty() && attempts < MAX_ATTEMPTS {
            let Some(c) = self.load_heap.pop() else {
                break;
            };
            attempts += 1;
            let mi = c.model.0 as usize;
            let idle = self.models[mi].live == 0 && self.models[mi].warm_demand == 0;
            let priority = if idle { 0.0 } else { self.priority(mi, now) };
            if priority <= 0.0 {
                // Demand satisfied (the fixed 3.12 check): not a candidate any more.
                self.models[mi].in_load_heap = false;
                continue;
            }
            let fresh = LoadCandidate {
                priority,
                model: c.model,
            };
            if self.load_heap.peek().is_some_and(|top| *top > fresh) {
                // Its priority fell below another candidate's: take that one first.
                self.load_heap.push(fresh);
                continue;
            }
            match self.choose_gpu(mi, now) {
                Some((g, victims)) => {
                    self.models[mi].in_load_heap = false;
                    self.emit_load(mi, g, &victims, now);
                    emitted = true;
                }
                None => deferred.push(fresh),
            }
        }
        if !deferred.is_empty() && self.load_retry_at.is_none() {
            // Pins, PCIe slots and spare capacity change with time: look again soon.
            self.load_retry_at = Some(now + RETRY_INTERVAL);
        }
        self.load_heap.extend(deferred);
        if emitted && attempts >= MAX_ATTEMPTS {
            self.loads_dirty = true;
        }
    }

    /// Picks a ready GPU for model `mi` and the models to evict there.
    ///
    /// A cold model (no replica) may go to any ready GPU, evicting idle models first
    /// and busy ones if needed. A *replica* of a model that already has one goes only
    /// to a GPU with spare capacity (outstanding work below the load capacity) and
    /// evicts only idle models: replicating onto an overloaded GPU, or displacing
    /// another model that has demand, would move the overload rather than relieve
    /// it (the original did both; under global overload it churned PCIe for nothing).
    fn choose_gpu(&mut self, mi: usize, now: Nanos) -> Option<(u32, Vec<ModelId>)> {
        let replica = !self.models[mi].replicas.is_empty();
        let rescue = if replica && self.priority_unmet(mi, now) <= 0.0 {
            self.rescue_target(mi, now)
        } else {
            None
        };
        let capacity = self.cfg.load_capacity.get();
        let n = self.load_ready.len();
        let mut picks = [0u32; 2 * SAMPLE];
        let mut k = 0;
        if n <= 2 * SAMPLE {
            for &g in self.load_ready.as_slice() {
                picks[k] = g;
                k += 1;
            }
        } else {
            for _ in 0..SAMPLE {
                // below(n) < n, an index into the ready set.
                let i = self.rng.below(n as u64) as usize;
                picks[k] = self.load_ready.as_slice()[i];
                k += 1;
            }
        }
        let mut scored: Vec<(bool, u64, u32)> = picks[..k]
            .iter()
            .copied()
            .filter(|&g| self.can_host(mi, g))
            .filter(|&g| !replica || self.gpus[g as usize].outstanding(now) < capacity)
            .filter(|&g| rescue.is_none_or(|t| self.in_time_on(mi, g, t, now)))
            .map(|g| {
                let gpu = &self.gpus[g as usize];
                let need = self.models[mi].pages_at(gpu.page_size);
                (gpu.free_pages < need, gpu.outstanding(now), g)
            })
            .collect();
        scored.sort_unstable();
        scored.dedup_by_key(|s| s.2);
        for &(_, _, g) in &scored {
            if let Some(v) = self.plan_eviction(mi, g, !replica) {
                return Some((g, v));
            }
        }
        if n > 2 * SAMPLE {
            let start = self.rng.below(n as u64) as usize;
            for j in 0..FALLBACK_SCAN.min(n) {
                let g = self.load_ready.as_slice()[(start + j) % n];
                let spare = (!replica || self.gpus[g as usize].outstanding(now) < capacity)
                    && rescue.is_none_or(|t| self.in_time_on(mi, g, t, now));
                if spare && self.can_host(mi, g) {
                    if let Some(v) = self.plan_eviction(mi, g, !replica) {
                        return Some((g, v));
                    }
                }
            }
        }
        None
    }

    /// GPU `g` could hold model `mi`: alive, its worker registered the model, the
    /// model is not already there, and it fits the cache at all.
    pub(super) fn can_host(&self, mi: usize, g: u32) -> bool {
        let gpu = &self.gpus[g as usize];
        let m = &self.models[mi];
        gpu.alive
            && self.workers[gpu.worker as usize]
                .registered
                .contains(mi as u32)
            && m.replica(g).is_none()
            && m.pages_at(gpu.page_size) <= gpu.total_pages
    }

    /// The models to evict on GPU `g` to fit model `mi`, or `None` if impossible.
    /// Models with queued demand count as pinned unless `evict_busy`.
    fn plan_eviction(&self, mi: usize, g: u32, evict_busy: bool) -> Option<Vec<ModelId>> {
        let gpu = &self.gpus[g as usize];
        let need = self.models[mi].pages_at(gpu.page_size);
        if gpu.free_pages >= need {
            return Some(Vec::new());
        }
        let mut cands: Vec<Victim> = gpu
            .residents
            .iter()
            .filter_map(|&v| {
                let vm = &self.models[v.0 as usize];
                let r = vm.replica(g)?;
                Some(Victim {
                    model: v,
                    pages: vm.pages_at(gpu.page_size),
                    busy: vm.live > 0,
                    last_used: r.last_used,
                    pinned: !r.ready || r.inflight > 0 || (!evict_busy && vm.live > 0),
                })
            })
            .collect();
        eviction::plan(&mut cands, gpu.free_pages, need)
    }

    /// Sends the UNLOADs, then the LOAD of model `mi` on GPU `g`.
    fn emit_load(&mut self, mi: usize, g: u32, victims: &[ModelId], now: Nanos) {
        self.models[mi].warm_demand = 0;
        for &v in victims {
            self.unload(v.0 as usize, g, now);
        }
        let cfg = &self.cfg;
        let gpu = &self.gpus[g as usize];
        let future = self.lead.get();
        let start = gpu.pcie.available(now, future, cfg.lag);
        let latest = (now + future + cfg.schedule_ahead).max(start + cfg.schedule_ahead);
        let (worker, gpu_id, page_size) = (gpu.worker, gpu.gpu_id, gpu.page_size);
        let m = &self.models[mi];
        let expected = m.load_estimate();
        let pages = m.pages_at(page_size);
        let model = ModelId(mi as u32);
        let (key, id) = self.track(
            worker,
            now,
            InFlightKind::Load {
                model,
                gpu: g,
                expected,
                expected_end: Nanos::ZERO,
            },
        );
        let gpu = &mut self.gpus[g as usize];
        let end = gpu.pcie.push(id.0, now + future, start, expected);
        // plan_eviction guaranteed free_pages >= pages after the UNLOADs above.
        gpu.free_pages = gpu.free_pages.saturating_sub(pages);
        gpu.residents.push(model);
        gpu.loads_in_flight += 1;
        if let Some(super::InFlight {
            kind: InFlightKind::Load { expected_end, .. },
            ..
        }) = self.actions.get_mut(key)
        {
            *expected_end = end;
        }
        self.add_replica(
            mi,
            Replica {
                gpu: g,
                ready: false,
                ready_at: end,
                last_used: now,
                inflight: 0,
                heap_key: None,
            },
        );
        self.stats.loads += 1;
        self.emit(
            worker,
            Action {
                id,
                window: Window::new(now, latest),
                kind: ActionKind::LoadWeights {
                    model,
                    gpu: gpu_id,
                    expected_duration: expected,
                },
            },
        );
        self.update_load_ready(g, now);
    }

    /// Evicts model `vi` from GPU `g`: its pages are free from now on in the plan.
    fn unload(&mut self, vi: usize, g: u32, now: Nanos) {
        self.remove_replica(vi, g);
        let gpu = &self.gpus[g as usize];
        let (worker, gpu_id) = (gpu.worker, gpu.gpu_id);
        let model = ModelId(vi as u32);
        let (_, id) = self.track(worker, now, InFlightKind::Unload { model, gpu: g });
        self.stats.unloads += 1;
        self.emit(
            worker,
            Action {
                id,
                window: Window::ANY,
                kind: ActionKind::Unload { model, gpu: gpu_id },
            },
        );
        self.note_demand(vi, now);
    }

    /// Retires a model instance (an operator unloads it while the system serves):
    /// from now on its requests are answered `UnknownModel`, and so are those still
    /// queued, at once; INFERs already sent finish and are answered normally. Its
    /// weights are unloaded from every GPU: at once where idle, otherwise as soon as
    /// its last INFER or LOAD there completes. Its id is never reused;
    /// [`Scheduler::reinstate_model`] brings it back (cold). Returns `false` for an
    /// unknown id; retiring a retired model does nothing.
    pub fn retire_model(&mut self, now: Nanos, model: ModelId) -> bool {
        let mi = model.0 as usize;
        if mi >= self.models.len() {
            return false;
        }
        if self.retired.contains(model.0) {
            return true;
        }
        self.retired.insert(model.0);
        let queued: Vec<_> = self.models[mi]
            .queue
            .iter()
            .map(|e| e.key)
            .filter(|&k| self.requests.get(k).is_some_and(|r| !r.in_flight))
            .collect();
        for k in queued {
            self.answer(k, now, ClientStatus::UnknownModel, 0, Vec::new());
        }
        let m = &mut self.models[mi];
        m.queue.clear();
        m.live = 0;
        m.queued_work = 0;
        self.refresh_credit(mi);
        let gpus: Vec<u32> = self.models[mi].replicas.iter().map(|r| r.gpu).collect();
        for g in gpus {
            self.unload_if_retired(mi, g, now);
        }
        self.flush(now);
        true
    }

    /// Undoes [`Scheduler::retire_model`]: the model is served again (cold, loaded on
    /// demand). Returns `false` for an unknown id.
    pub fn reinstate_model(&mut self, model: ModelId) -> bool {
        if model.0 as usize >= self.models.len() {
            return false;
        }
        self.retired.remove(model.0);
        true
    }

    /// Whether a model was retired (and not reinstated).
    pub fn is_retired(&self, model: ModelId) -> bool {
        self.retired.contains(model.0)
    }

    /// Unloads a retired model from GPU `g` if it is resident and idle there.
    pub(super) fn unload_if_retired(&mut self, mi: usize, g: u32, now: Nanos) {
        // Model indices come from ModelId (u32).
        if !self.retired.contains(mi as u32) {
            return;
        }
        if self.models[mi]
            .replica(g)
            .is_some_and(|r| r.ready && r.inflight == 0)
        {
            self.unload(mi, g, now);
        }
    }

    /// Adds a replica (loading or ready) of model `mi`, re-splitting its demand.
    pub(super) fn add_replica(&mut self, mi: usize, r: Replica) {
        self.uncredit(mi);
        self.models[mi].replicas.push(r);
        self.refresh_credit(mi);
    }

    /// Removes model `mi` from GPU `g`: replica, residency and pages.
    pub(super) fn remove_replica(&mut self, mi: usize, g: u32) {
        self.uncredit(mi);
        let m = &mut self.models[mi];
        let had = m.replicas.iter().position(|r| r.gpu == g);
        if let Some(p) = had {
            m.replicas.swap_remove(p);
        }
        let pages = m.pages_at(self.gpus[g as usize].page_size);
        self.refresh_credit(mi);
        let gpu = &mut self.gpus[g as usize];
        if let Some(p) = gpu.residents.iter().position(|&x| x.0 as usize == mi) {
            gpu.residents.swap_remove(p);
            gpu.free_pages = (gpu.free_pages + pages).min(gpu.total_pages);
        }
    }

    /// Withdraws a model's credited demand from its replicas' GPUs.
    fn uncredit(&mut self, mi: usize) {
        let m = &mut self.models[mi];
        let old = std::mem::take(&mut m.credited);
        if old == 0 {
            return;
        }
        for r in &m.replicas {
            let gpu = &mut self.gpus[r.gpu as usize];
            gpu.credit = gpu.credit.saturating_sub(old);
        }
    }

    /// Credits each replica's GPU with an equal share of the model's queued work.
    /// Shares move only when they change by a quarter or more (or to or from zero):
    /// the load tracker needs magnitudes, and this keeps the per-request cost O(1)
    /// for models with many replicas and long queues.
    pub(super) fn refresh_credit(&mut self, mi: usize) {
        let m = &mut self.models[mi];
        let n = m.replicas.len() as u64;
        let new = m.queued_work.checked_div(n).unwrap_or(0);
        let old = m.credited;
        if new == old || (new != 0 && old != 0 && new.abs_diff(old) * 4 < old) {
            return;
        }
        m.credited = new;
        for r in &m.replicas {
            let gpu = &mut self.gpus[r.gpu as usize];
            gpu.credit = gpu.credit.saturating_sub(old) + new;
        }
    }

    /// Puts GPU `g` into, or takes it out of, the set of GPUs that can take a LOAD now.
    pub(super) fn update_load_ready(&mut self, g: u32, now: Nanos) {
        let (sa, future, lag) = (self.cfg.schedule_ahead, self.lead.get(), self.cfg.lag);
        let gpu = &self.gpus[g as usize];
        if !gpu.alive || gpu.loads_in_flight >= self.cfg.max_loads_in_flight {
            self.load_ready.remove(g);
            return;
        }
        let avail = gpu.pcie.available(now, future, lag);
        if avail >= now + sa {
            self.load_ready.remove(g);
            self.arm(g, Lane::Pcie, avail - sa + Nanos(1));
            return;
        }
        if self.load_ready.insert(g) {
            self.loads_dirty = true;
        }
    }
}
