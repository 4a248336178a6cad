//! One device's executor logic, independent of the backend and of threads: it is driven
//! with an explicit `now`, so tests run it in virtual time.
//!
//! Two timelines per device, as the original: EXEC runs one INFER at a time, PCIe one
//! LOAD at a time, and the two overlap. Each has a queue ordered by `earliest` (ties in
//! arrival order). An action never starts before `earliest`; one still queued after
//! `latest` (its timeline was busy, or it arrived late) is dropped with its kind's
//! *TooLate status and never runs; both bounds are inclusive. The window is checked at
//! start only: a started action runs to completion.
//!
//! UNLOAD is a page-table operation that takes no PCIe time: it is ordered with LOADs by
//! `earliest` but does not wait for a LOAD in flight.
//!
//! Weights versioning (as the original): every (device, model) has a version that LOAD
//! and UNLOAD bump when they start. An INFER records the version at start and fails with
//! `ExecConcurrentWeightsModification` (84) if it changed by completion. A LOAD whose
//! version changed by completion (an UNLOAD of the same model arrived meanwhile) frees its
//! pages and fails with `LoadConcurrentModification` (54); the pages stay allocated until
//! the copy into them has ended.

use crate::action::{Completion, DeviceAction, DeviceOp, OpKind};
use crate::backend::{DeviceBackend, Timeline};
use crate::id_hash::BuildIdHasher;
use crate::page_cache::{PageAllocation, PageCache};
use crate::snapshot::Snapshot;
use clockwork_core::{GpuId, ModelId, ModelProfile, Nanos, Timing, WorkerStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The models known to an engine thread. Registration travels through the same command
/// ring as actions, so an action never overtakes the registration of its model.
pub(crate) type Registry = crate::registry::ProfileTable;

/// A device: page cache, per-model weights state, two queues, two timelines.
#[derive(Debug)]
pub(crate) struct Device<B> {
    id: GpuId,
    backend: B,
    emulated: bool,
    cache: PageCache,
    models: HashMap<ModelId, Slot, BuildIdHasher>,
    exec_q: Queue,
    pcie_q: Queue,
    exec: Option<Running>,
    pcie: Option<Running>,
    snapshot: Arc<Snapshot>,
}

/// Per-model weights state on one device.
#[derive(Debug, Default)]
struct Slot {
    version: u64,
    resident: Option<PageAllocation>,
    /// The backend could not prepare this model (e.g. pinned host memory ran out).
    broken: bool,
}

/// An operation running on a timeline.
#[derive(Debug)]
struct Running {
    action: DeviceAction,
    begin: Nanos,
    version: u64,
    /// A LOAD's pages, until it completes.
    pages: Option<PageAllocation>,
    padded_batch: u32,
}

impl<B: DeviceBackend> Device<B> {
    /// A device with an empty cache of `total_pages` pages of `page_size` bytes.
    pub(crate) fn new(id: GpuId, backend: B, total_pages: u32, page_size: u64) -> Self {
        let emulated = backend.emulated();
        let snapshot = Arc::new(Snapshot::new(id, backend.name(), emulated, total_pages));
        Self {
            id,
            backend,
            emulated,
            cache: PageCache::with_pages(total_pages, page_size),
            models: HashMap::default(),
            exec_q: Queue::default(),
            pcie_q: Queue::default(),
            exec: None,
            pcie: None,
            snapshot,
        }
    }

    /// The snapshot `DeviceSet::state` reads.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot)
    }

    /// Tell the backend about a newly registered model.
    pub(crate) fn register(&mut self, model: ModelId, profile: &ModelProfile) {
        if let Err(e) = self.backend.register(model, profile) {
            tracing::warn!(gpu = %self.id, %model, error = %e, "model registration failed on device; its LOADs will fail");
            self.models.entry(model).or_default().broken = true;
        }
    }

    /// A new action from the ring: refuse it now if it is malformed, else queue it.
    /// Call [`Device::poll`] afterwards.
    pub(crate) fn accept(
        &mut self,
        action: DeviceAction,
        now: Nanos,
        registry: &Registry,
        out: &mut Vec<Completion>,
    ) {
        match Self::check(&action, registry) {
            Err(status) => out.push(Completion::refused(action, status, now, self.emulated)),
            Ok(OpKind::Infer) => self.exec_q.push(action),
            Ok(OpKind::Load | OpKind::Unload) => self.pcie_q.push(action),
        }
    }

    /// What [`Device::accept`] refuses at once: an invalid window, an unregistered
    /// model, a batch size the model does not take.
    fn check(action: &DeviceAction, registry: &Registry) -> Result<OpKind, WorkerStatus> {
        let kind = action.op.kind();
        if !action.window.is_valid() {
            return Err(WorkerStatus::InvalidAction);
        }
        let Some(profile) = registry.get(&action.op.model()) else {
            return Err(kind.unknown_model());
        };
        if let DeviceOp::Infer { batch_size, .. } = action.op {
            if batch_size == 0 || profile.padded_batch(batch_size).is_none() {
                return Err(WorkerStatus::InvalidBatchSize);
            }
        }
        Ok(kind)
    }

    /// Advance to `now`: finish what the backend has finished, drop what missed its
    /// window, start what is due. Idempotent for a given `now`.
    pub(crate) fn poll(&mut self, now: Nanos, registry: &Registry, out: &mut Vec<Completion>) {
        let mut cache_changed = self.finish(Timeline::Pcie, now, out);
        self.finish(Timeline::Exec, now, out);

        for q in [&mut self.exec_q, &mut self.pcie_q] {
            while let Some(late) = q.pop_expired(now) {
                let status = late.op.kind().too_late();
                out.push(Completion::refused(late, status, now, self.emulated));
            }
        }

        // PCIe queue: UNLOADs run at the head whenever due; a LOAD waits for the link.
        while let Some(kind) = self.pcie_q.head_due(now).map(|h| h.op.kind()) {
            if kind == OpKind::Load && self.pcie.is_some() {
                break;
            }
            let Some(head) = self.pcie_q.pop_head() else {
                break;
            };
            match head.op {
                DeviceOp::Unload { model } => {
                    self.unload(head, model, now, out);
                    cache_changed = true;
                }
                DeviceOp::Load { model } => {
                    cache_changed |= self.start_load(head, model, now, registry, out);
                }
                DeviceOp::Infer { .. } => debug_assert!(false, "INFER on the PCIe queue"),
            }
        }
        while self.exec.is_none() && self.exec_q.head_due(now).is_some() {
            let Some(head) = self.exec_q.pop_head() else {
                break;
            };
            self.start_infer(head, now, registry, out);
        }

        if cache_changed {
            self.publish();
        }
    }

    /// The earliest time at which [`Device::poll`] has something to do, if any.
    pub(crate) fn next_due(&self, now: Nanos) -> Option<Nanos> {
        let mut due: Option<Nanos> = None;
        let mut at = |t: Nanos| due = Some(due.map_or(t, |d| d.min(t)));
        if self.exec.is_some() {
            at(self.backend.next_check(Timeline::Exec, now));
        } else if let Some(t) = self.exec_q.next_start() {
            at(t);
        }
        if self.pcie.is_some() {
            at(self.backend.next_check(Timeline::Pcie, now));
        }
        if let Some(head) = self.pcie_q.head() {
            if self.pcie.is_none() || matches!(head.op, DeviceOp::Unload { .. }) {
                at(head.window.earliest);
            }
        }
        for q in [&self.exec_q, &self.pcie_q] {
            if let Some(t) = q.next_expiry() {
                at(t);
            }
        }
        due
    }

    /// Whether `model`'s weights are resident here, being copied in, or wait for the
    /// link in a queued LOAD.
    pub(crate) fn holds_or_loads(&self, model: ModelId) -> bool {
        let loads = |a: &DeviceAction| matches!(a.op, DeviceOp::Load { model: m } if m == model);
        self.models
            .get(&model)
            .is_some_and(|s| s.resident.is_some())
            || self.pcie.as_ref().is_some_and(|r| loads(&r.action))
            || self.pcie_q.by_start.values().any(loads)
    }

    /// Shutdown: abandon running operations and cancel everything queued.
    pub(crate) fn cancel_all(&mut self, now: Nanos, out: &mut Vec<Completion>) {
        for timeline in [Timeline::Exec, Timeline::Pcie] {
            let running = match timeline {
                Timeline::Exec => self.exec.take(),
                Timeline::Pcie => self.pcie.take(),
            };
            if let Some(mut run) = running {
                self.backend.abort(timeline);
                if let Some(pages) = run.pages.take() {
                    self.cache.free(pages);
                }
                out.push(Completion::refused(
                    run.action,
                    WorkerStatus::Cancelled,
                    now,
                    self.emulated,
                ));
            }
        }
        for q in [&mut self.exec_q, &mut self.pcie_q] {
            while let Some(a) = q.pop_head() {
                out.push(Completion::refused(
                    a,
                    WorkerStatus::Cancelled,
                    now,
                    self.emulated,
                ));
            }
        }
        self.publish();
    }

    /// Finish the operation on `timeline` if the backend says it is done. Returns
    /// whether the cache changed.
    fn finish(&mut self, timeline: Timeline, now: Nanos, out: &mut Vec<Completion>) -> bool {
        let running = match timeline {
            Timeline::Exec => &mut self.exec,
            Timeline::Pcie => &mut self.pcie,
        };
        if running.is_none() {
            return false;
        }
        let Some(result) = self.backend.poll(timeline, now) else {
            return false;
        };
        let Some(mut run) = running.take() else {
            return false;
        };
        let model = run.action.op.model();
        let slot = self.models.entry(model).or_default();
        let (status, duration) = match result {
            Ok(d) => (WorkerStatus::Success, d),
            Err(e) => {
                tracing::warn!(gpu = %self.id, action = %run.action.action, error = %e, "device operation failed");
                (WorkerStatus::RuntimeError, Nanos::ZERO)
            }
        };
        let status = match (run.action.op.kind(), status) {
            (_, WorkerStatus::RuntimeError) => WorkerStatus::RuntimeError,
            (OpKind::Infer, _) if slot.version != run.version => {
                WorkerStatus::ExecConcurrentWeightsModification
            }
            (OpKind::Load, _) if slot.version != run.version => {
                WorkerStatus::LoadConcurrentModification
            }
            (_, s) => s,
        };
        // A successful INFER's outputs go into the buffer it brought; both its buffers
        // go back.
        let (input, mut output) = run.action.op.take_buffers();
        let status = match status {
            WorkerStatus::Success if run.action.op.kind() == OpKind::Infer => {
                match self.backend.copy_output(&mut output) {
                    Ok(()) => status,
                    Err(e) => {
                        tracing::warn!(gpu = %self.id, action = %run.action.action, error = %e, "INFER outputs not copied");
                        WorkerStatus::RuntimeError
                    }
                }
            }
            s => s,
        };
        let mut cache_changed = false;
        if let Some(pages) = run.pages.take() {
            cache_changed = true;
            if status == WorkerStatus::Success {
                slot.resident = Some(pages);
            } else {
                self.cache.free(pages);
                self.backend.release(model);
            }
        }
        out.push(Completion {
            action: run.action.action,
            gpu: run.action.gpu,
            model,
            kind: run.action.op.kind(),
            status,
            timing: Timing {
                begin: run.begin,
                end: now,
                duration,
            },
            padded_batch: run.padded_batch,
            emulated: self.emulated,
            output,
            input,
        });
        cache_changed
    }

    fn unload(
        &mut self,
        action: DeviceAction,
        model: ModelId,
        now: Nanos,
        out: &mut Vec<Completion>,
    ) {
        let slot = self.models.entry(model).or_default();
        slot.version += 1;
        let status = match slot.resident.take() {
            Some(pages) => {
                self.cache.free(pages);
                self.backend.release(model);
                WorkerStatus::Success
            }
            None => WorkerStatus::UnloadNotInCache,
        };
        out.push(Completion::refused(action, status, now, self.emulated));
    }

    /// Returns whether the cache changed.
    fn start_load(
        &mut self,
        action: DeviceAction,
        model: ModelId,
        now: Nanos,
        registry: &Registry,
        out: &mut Vec<Completion>,
    ) -> bool {
        match self.begin_load(model, now, registry) {
            Ok((pages, version)) => {
                self.pcie = Some(Running {
                    action,
                    begin: now,
                    version,
                    pages: Some(pages),
                    padded_batch: 0,
                });
                true
            }
            Err(status) => {
                out.push(Completion::refused(action, status, now, self.emulated));
                false
            }
        }
    }

    /// Start copying `model`'s weights in: its pages and its new version, or why not.
    fn begin_load(
        &mut self,
        model: ModelId,
        now: Nanos,
        registry: &Registry,
    ) -> Result<(PageAllocation, u64), WorkerStatus> {
        let profile = registry.get(&model).ok_or(WorkerStatus::LoadUnknownModel)?;
        let slot = self.models.entry(model).or_default();
        if slot.broken {
            return Err(WorkerStatus::RuntimeError);
        }
        if slot.resident.is_some() {
            return Err(WorkerStatus::WeightsAlreadyLoaded);
        }
        let pages = self
            .cache
            .alloc(profile.pages(self.cache.page_size()))
            .ok_or(WorkerStatus::LoadInsufficientCache)?;
        if let Err(e) = self.backend.start_load(model, profile, pages.pages(), now) {
            tracing::warn!(gpu = %self.id, %model, error = %e, "LOAD failed to start");
            self.cache.free(pages);
            return Err(WorkerStatus::RuntimeError);
        }
        slot.version += 1;
        Ok((pages, slot.version))
    }

    fn start_infer(
        &mut self,
        action: DeviceAction,
        now: Nanos,
        registry: &Registry,
        out: &mut Vec<Completion>,
    ) {
        match self.begin_infer(&action, now, registry) {
            Ok((version, padded_batch)) => {
                self.exec = Some(Running {
                    action,
                    begin: now,
                    version,
                    pages: None,
                    padded_batch,
                });
            }
            Err(status) => out.push(Completion::refused(action, status, now, self.emulated)),
        }
    }

    /// Start an INFER: the version of the weights it runs on and its padded batch size,
    /// or why not.
    fn begin_infer(
        &mut self,
        action: &DeviceAction,
        now: Nanos,
        registry: &Registry,
    ) -> Result<(u64, u32), WorkerStatus> {
        let DeviceOp::Infer {
            model,
            batch_size,
            ref input,
            ..
        } = action.op
        else {
            debug_assert!(false, "non-INFER on the EXEC queue");
            return Err(WorkerStatus::InvalidAction);
        };
        let profile = registry.get(&model).ok_or(WorkerStatus::UnknownModel)?;
        let (Some(index), Some(padded)) = (
            profile.batch_index(batch_size),
            profile.padded_batch(batch_size),
        ) else {
            return Err(WorkerStatus::InvalidBatchSize);
        };
        let slot = self.models.entry(model).or_default();
        let resident = slot
            .resident
            .as_ref()
            .ok_or(WorkerStatus::ExecWeightsMissing)?;
        if let Err(e) =
            self.backend
                .start_infer(model, profile, index, resident.pages(), input, now)
        {
            tracing::warn!(gpu = %self.id, %model, error = %e, "INFER failed to start");
            return Err(WorkerStatus::RuntimeError);
        }
        Ok((slot.version, padded))
    }

    fn publish(&self) {
        let mut loaded: Vec<ModelId> = self
            .models
            .iter()
            .filter(|(_, s)| s.resident.is_some())
            .map(|(m, _)| *m)
            .collect();
        loaded.sort_unstable();
        self.snapshot.publish(self.cache.free_pages(), loaded);
    }

    /// Free pages now (tests).
    #[cfg(test)]
    fn free_pages(&self) -> u32 {
        self.cache.free_pages()
    }
}

/// Queued actions of one timeline, by `(earliest, arrival)` and by `latest`.
#[derive(Debug, Default)]
struct Queue {
    by_start: BTreeMap<(Nanos, u64), DeviceAction>,
    by_deadline: BTreeSet<(Nanos, u64, Nanos)>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, action: DeviceAction) {
        self.seq += 1;
        let w = action.window;
        self.by_start.insert((w.earliest, self.seq), action);
        self.by_deadline.insert((w.latest, self.seq, w.earliest));
    }

    fn head(&self) -> Option<&DeviceAction> {
        self.by_start.values().next()
    }

    /// The head, if its `earliest` has come.
    fn head_due(&self, now: Nanos) -> Option<&DeviceAction> {
        self.by_start
            .iter()
            .next()
            .filter(|((earliest, _), _)| *earliest <= now)
            .map(|(_, a)| a)
    }

    fn pop_head(&mut self) -> Option<DeviceAction> {
        let ((earliest, seq), a) = self.by_start.pop_first()?;
        self.by_deadline.remove(&(a.window.latest, seq, earliest));
        Some(a)
    }

    /// Remove and return one action whose `latest` is before `now`.
    fn pop_expired(&mut self, now: Nanos) -> Option<DeviceAction> {
        let &(latest, seq, earliest) = self.by_deadline.first()?;
        if latest >= now {
            return None;
        }
        self.by_deadline.pop_first();
        self.by_start.remove(&(earliest, seq))
    }

    fn next_start(&self) -> Option<Nanos> {
        self.by_start.keys().next().map(|(e, _)| *e)
    }

    /// First instant at which some queued action is past its `latest`.
    fn next_expiry(&self) -> Option<Nanos> {
        let (latest, _, _) = self.by_deadline.first()?;
        (*latest < Nanos::MAX).then(|| Nanos(latest.get() + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulated::EmulatedDevice;
    use crate::noise::NoiseModel;
    use clockwork_core::model::{resnet152, resnet50};
    use clockwork_core::{ActionId, Window, DEFAULT_PAGE_SIZE};

    const M50: ModelId = ModelId(1);
    const M152: ModelId = ModelId(2);

    /// A device in virtual time, with a log of completions.
    struct Rig {
        dev: Device<EmulatedDevice>,
        reg: Registry,
        out: Vec<Completion>,
        next_id: u64,
    }

    impl Rig {
        fn new(pages: u32) -> Self {
            let mut reg = Registry::default();
            reg.insert(M50, Arc::new(resnet50()));
            reg.insert(M152, Arc::new(resnet152()));
            let backend = EmulatedDevice::new(0, NoiseModel::None, 0);
            Self {
                dev: Device::new(GpuId(0), backend, pages, DEFAULT_PAGE_SIZE),
                reg,
                out: Vec::new(),
                next_id: 0,
            }
        }

        fn submit(&mut self, now: u64, window: (u64, u64), op: DeviceOp) -> ActionId {
            self.next_id += 1;
            let id = ActionId(self.next_id);
            let a = DeviceAction {
                action: id,
                gpu: GpuId(0),
                window: Window::new(Nanos(window.0), Nanos(window.1)),
                op,
            };
            self.dev.accept(a, Nanos(now), &self.reg, &mut self.out);
            self.dev.poll(Nanos(now), &self.reg, &mut self.out);
            id
        }

        /// Step through every due event up to `until` (as the engine would).
        fn run_until(&mut self, until: u64) {
            while let Some(t) = self.dev.next_due(Nanos(until)) {
                if t > Nanos(until) {
                    break;
                }
                self.dev.poll(t, &self.reg, &mut self.out);
            }
        }

        fn get(&self, id: ActionId) -> Completion {
            let found: Vec<_> = self.out.iter().filter(|c| c.action == id).collect();
            assert_eq!(
                found.len(),
                1,
                "exactly one completion for {id}: {:?}",
                self.out
            );
            found[0].clone()
        }
    }

    fn load(model: ModelId) -> DeviceOp {
        DeviceOp::Load { model }
    }
    fn infer(model: ModelId, batch_size: u32) -> DeviceOp {
        DeviceOp::infer(model, batch_size)
    }
    fn ms(x: u64) -> u64 {
        x * 1_000_000
    }

    #[test]
    fn infer_waits_for_earliest_and_runs_for_the_profile_time() {
        let mut r = Rig::new(100);
        let l = r.submit(0, (0, u64::MAX), load(M50));
        r.run_until(ms(100));
        assert_eq!(r.get(l).status, WorkerStatus::Success);
        assert_eq!(r.get(l).timing.duration, resnet50().load_time);
        let i = r.submit(ms(100), (ms(200), ms(300)), infer(M50, 3));
        r.run_until(ms(199));
        assert!(
            r.out.iter().all(|c| c.action != i),
            "started before earliest"
        );
        r.run_until(ms(300));
        let c = r.get(i);
        assert_eq!(c.status, WorkerStatus::Success);
        assert_eq!(c.timing.begin, Nanos(ms(200)), "starts exactly at earliest");
        assert_eq!(c.padded_batch, 4);
        assert_eq!(c.timing.duration, Nanos::from_micros(7_500));
        assert_eq!(c.timing.end, c.timing.begin + c.timing.duration);
    }

    #[test]
    fn infer_output_is_filled_on_success_and_both_buffers_come_back_whatever_happened() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M50));
        r.run_until(ms(10));
        let buffers = |fill: u8| DeviceOp::Infer {
            model: M50,
            batch_size: 2,
            input: vec![1; 32],
            output: vec![fill; 10],
        };
        let ok = r.submit(ms(10), (0, u64::MAX), buffers(7));
        r.run_until(ms(20));
        assert_eq!(r.get(ok).output, vec![0; 10], "emulated outputs are zeros");
        // Weights replaced while it ran (84): its buffer comes back, not filled.
        let broken = r.submit(ms(20), (0, u64::MAX), buffers(7));
        r.submit(ms(21), (0, u64::MAX), DeviceOp::Unload { model: M50 });
        r.run_until(ms(40));
        let c = r.get(broken);
        assert_eq!(c.status, WorkerStatus::ExecConcurrentWeightsModification);
        assert_eq!(c.output, vec![7; 10]);
        // Never ran (82): both buffers come back as they went in.
        let missing = r.submit(ms(40), (0, u64::MAX), buffers(7));
        let c = r.get(missing);
        assert_eq!(c.status, WorkerStatus::ExecWeightsMissing);
        assert_eq!((c.input, c.output), (vec![1; 32], vec![7; 10]));
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M50));
        r.run_until(ms(50));
        // Arrives exactly at latest: accepted.
        let at_latest = r.submit(ms(60), (ms(10), ms(60)), infer(M50, 1));
        // Arrives early, starts exactly at earliest == latest.
        let exact = r.submit(ms(61), (ms(70), ms(70)), infer(M50, 1));
        r.run_until(ms(100));
        assert_eq!(r.get(at_latest).status, WorkerStatus::Success);
        assert_eq!(r.get(at_latest).timing.begin, Nanos(ms(60)));
        assert_eq!(r.get(exact).status, WorkerStatus::Success);
        assert_eq!(r.get(exact).timing.begin, Nanos(ms(70)));
        // Arrives one ns after latest: dropped, never run.
        let late = r.submit(ms(100) + 1, (ms(10), ms(100)), infer(M50, 1));
        let c = r.get(late);
        assert_eq!(c.status, WorkerStatus::ExecTooLate);
        assert_eq!(c.timing.duration, Nanos::ZERO);
        assert_eq!(c.padded_batch, 0);
    }

    #[test]
    fn busy_timeline_drops_what_cannot_start_in_time() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M152));
        r.run_until(ms(30));
        // 61.55 ms batch-16 execution occupies EXEC from 30 ms.
        let long = r.submit(ms(30), (0, ms(30)), infer(M152, 16));
        // Can start no later than 50 ms: the timeline is busy until 91.55 ms.
        let doomed = r.submit(ms(31), (0, ms(50)), infer(M152, 1));
        // Can start at 91.55 ms exactly (latest inclusive).
        let fits = r.submit(ms(32), (0, ms(30) + 61_550_000), infer(M152, 1));
        r.run_until(ms(200));
        assert_eq!(r.get(long).status, WorkerStatus::Success);
        let d = r.get(doomed);
        assert_eq!(d.status, WorkerStatus::ExecTooLate);
        assert_eq!(
            d.timing.begin,
            Nanos(ms(50) + 1),
            "dropped as soon as latest passed"
        );
        let f = r.get(fits);
        assert_eq!(f.status, WorkerStatus::Success);
        assert_eq!(f.timing.begin, r.get(long).timing.end);
    }

    #[test]
    fn loads_overlap_execution() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M50));
        r.run_until(ms(10));
        let i = r.submit(ms(10), (0, u64::MAX), infer(M50, 16)); // 21.73 ms
        let l = r.submit(ms(10), (0, u64::MAX), load(M152)); // 19.68 ms
        r.run_until(ms(100));
        assert_eq!(r.get(i).timing.begin, Nanos(ms(10)));
        assert_eq!(r.get(l).timing.begin, Nanos(ms(10)));
        assert_eq!(r.get(l).status, WorkerStatus::Success);
    }

    #[test]
    fn infer_without_weights_fails_82() {
        let mut r = Rig::new(100);
        let i = r.submit(0, (0, u64::MAX), infer(M50, 1));
        assert_eq!(r.get(i).status, WorkerStatus::ExecWeightsMissing);
    }

    #[test]
    fn unload_during_infer_fails_it_84_and_infer_after_unload_fails_82() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M50));
        r.run_until(ms(10));
        let i = r.submit(ms(10), (0, u64::MAX), infer(M50, 16));
        let u = r.submit(ms(15), (0, u64::MAX), DeviceOp::Unload { model: M50 });
        assert_eq!(r.get(u).status, WorkerStatus::Success);
        r.run_until(ms(100));
        assert_eq!(
            r.get(i).status,
            WorkerStatus::ExecConcurrentWeightsModification
        );
        let again = r.submit(ms(100), (0, u64::MAX), infer(M50, 1));
        assert_eq!(r.get(again).status, WorkerStatus::ExecWeightsMissing);
        assert_eq!(r.dev.free_pages(), 100);
    }

    #[test]
    fn unload_during_load_supersedes_it_54() {
        let mut r = Rig::new(100);
        let l = r.submit(0, (0, u64::MAX), load(M50));
        assert_eq!(r.dev.free_pages(), 93, "an in-flight LOAD holds its pages");
        let u = r.submit(ms(1), (0, u64::MAX), DeviceOp::Unload { model: M50 });
        assert_eq!(r.get(u).status, WorkerStatus::UnloadNotInCache);
        assert_eq!(
            r.dev.free_pages(),
            93,
            "pages stay held while the copy runs"
        );
        r.run_until(ms(100));
        assert_eq!(r.get(l).status, WorkerStatus::LoadConcurrentModification);
        assert_eq!(r.dev.free_pages(), 100);
        assert!(r.dev.snapshot().read().loaded.is_empty());
    }

    #[test]
    fn page_accounting_and_insufficient_cache() {
        let mut r = Rig::new(20);
        let a = r.submit(0, (0, u64::MAX), load(M152)); // 15 pages
        let b = r.submit(0, (0, u64::MAX), load(M50)); // 7 pages: waits for the link
        r.run_until(ms(100));
        assert_eq!(r.get(a).status, WorkerStatus::Success);
        let c = r.get(b);
        assert_eq!(c.status, WorkerStatus::LoadInsufficientCache);
        assert_eq!(
            c.timing.begin,
            r.get(a).timing.end,
            "decided when it reached the link"
        );
        assert_eq!(r.dev.free_pages(), 5);
        let again = r.submit(ms(100), (0, u64::MAX), load(M152));
        assert_eq!(r.get(again).status, WorkerStatus::WeightsAlreadyLoaded);
        let s = r.dev.snapshot().read();
        assert_eq!((s.total_pages, s.free_pages, s.loaded), (20, 5, vec![M152]));
        let u = r.submit(ms(100), (0, u64::MAX), DeviceOp::Unload { model: M152 });
        assert_eq!(r.get(u).status, WorkerStatus::Success);
        let u2 = r.submit(ms(100), (0, u64::MAX), DeviceOp::Unload { model: M152 });
        assert_eq!(r.get(u2).status, WorkerStatus::UnloadNotInCache);
        let b2 = r.submit(ms(100), (0, u64::MAX), load(M50));
        r.run_until(ms(200));
        assert_eq!(r.get(b2).status, WorkerStatus::Success);
        assert_eq!(r.dev.free_pages(), 13);
    }

    #[test]
    fn malformed_actions_are_refused_at_once() {
        let mut r = Rig::new(100);
        let unknown = r.submit(0, (0, u64::MAX), infer(ModelId(99), 1));
        let unknown_load = r.submit(0, (0, u64::MAX), load(ModelId(99)));
        let unknown_unload = r.submit(0, (0, u64::MAX), DeviceOp::Unload { model: ModelId(99) });
        let zero = r.submit(0, (0, u64::MAX), infer(M50, 0));
        let big = r.submit(0, (0, u64::MAX), infer(M50, 17));
        let inverted = r.submit(0, (10, 5), infer(M50, 1));
        assert_eq!(r.get(unknown).status, WorkerStatus::UnknownModel);
        assert_eq!(r.get(unknown_load).status, WorkerStatus::LoadUnknownModel);
        assert_eq!(
            r.get(unknown_unload).status,
            WorkerStatus::UnloadUnknownModel
        );
        assert_eq!(r.get(zero).status, WorkerStatus::InvalidBatchSize);
        assert_eq!(r.get(big).status, WorkerStatus::InvalidBatchSize);
        assert_eq!(r.get(inverted).status, WorkerStatus::InvalidAction);
        assert_eq!(r.dev.next_due(Nanos(0)), None, "nothing queued");
    }

    #[test]
    fn unload_is_ordered_by_earliest_with_loads() {
        let mut r = Rig::new(100);
        // LOAD due at 5 ms, UNLOAD of the same model due at 10 ms: the LOAD starts first
        // and the UNLOAD supersedes it while its copy runs.
        let l = r.submit(0, (ms(5), u64::MAX), load(M50));
        let u = r.submit(0, (ms(10), u64::MAX), DeviceOp::Unload { model: M50 });
        r.run_until(ms(100));
        assert_eq!(r.get(l).timing.begin, Nanos(ms(5)));
        assert_eq!(r.get(u).timing.begin, Nanos(ms(10)));
        assert_eq!(r.get(l).status, WorkerStatus::LoadConcurrentModification);
    }

    #[test]
    fn cancel_all_cancels_running_and_queued_and_frees_pages() {
        let mut r = Rig::new(100);
        r.submit(0, (0, 0), load(M50));
        r.run_until(ms(10));
        let i = r.submit(ms(10), (0, u64::MAX), infer(M50, 1));
        let q = r.submit(ms(10), (0, u64::MAX), infer(M50, 1));
        let l = r.submit(ms(10), (0, u64::MAX), load(M152));
        r.dev.cancel_all(Nanos(ms(11)), &mut r.out);
        for id in [i, q, l] {
            assert_eq!(r.get(id).status, WorkerStatus::Cancelled);
        }
        assert_eq!(
            r.dev.free_pages(),
            93,
            "the cancelled LOAD's pages are back"
        );
        assert_eq!(r.dev.next_due(Nanos(ms(11))), None);
    }

    #[test]
    fn queue_orders_by_earliest_then_arrival() {
        let mut q = Queue::default();
        let a = |id, e, l| DeviceAction {
            action: ActionId(id),
            gpu: GpuId(0),
            window: Window::new(Nanos(e), Nanos(l)),
            op: infer(M50, 1),
        };
        q.push(a(1, 20, 100));
        q.push(a(2, 10, 200));
        q.push(a(3, 10, 50));
        assert_eq!(q.head().map(|x| x.action), Some(ActionId(2)));
        assert_eq!(q.head_due(Nanos(9)), None);
        assert_eq!(q.next_expiry(), Some(Nanos(51)));
        assert_eq!(q.pop_expired(Nanos(50)), None);
        assert_eq!(
            q.pop_expired(Nanos(51)).map(|x| x.action),
            Some(ActionId(3))
        );
        q.pop_head();
        assert_eq!(q.head().map(|x| x.action), Some(ActionId(1)));
        assert_eq!(q.next_expiry(), Some(Nanos(101)));
    }

    proptest::proptest! {
        /// Random streams of LOAD/UNLOAD/INFER in virtual time: exactly one completion
        /// per action; nothing runs outside its window or before it arrived; what was
        /// dropped late was dropped after `latest`; each timeline runs one thing at a
        /// time; page accounting is exact at every step and matches the snapshot.
        #[test]
        fn device_invariants(ops in proptest::collection::vec(
            (0u64..5_000, 0u64..10_000, 0u64..20_000, 0u8..4, 0u8..2, 1u32..17), 1..60)
        ) {
            use proptest::prop_assert;
            let mut r = Rig::new(20);
            let models = [M50, M152];
            let mut arrival = 0u64;
            let mut submitted = HashMap::new();
            for (dt, lead, len, kind, m, batch) in ops {
                arrival += dt * 1_000;
                r.run_until(arrival);
                let model = models[m as usize];
                let op = match kind {
                    0 => DeviceOp::Load { model },
                    1 => DeviceOp::Unload { model },
                    _ => DeviceOp::infer(model, batch),
                };
                let earliest = arrival.saturating_sub(5_000_000) + lead * 1_000;
                let id = r.submit(arrival, (earliest, earliest + len * 1_000), op);
                submitted.insert(id, (arrival, Window::new(Nanos(earliest), Nanos(earliest + len * 1_000))));
                let (free, used, total) = (r.dev.cache.free_pages(), r.dev.cache.used_pages(), r.dev.cache.total_pages());
                prop_assert!(free + used == total && r.dev.cache.is_consistent());
                prop_assert!(r.dev.snapshot().read().free_pages == free);
            }
            r.run_until(u64::MAX / 2);
            prop_assert!(r.dev.next_due(Nanos(u64::MAX / 2)).is_none(), "everything finished");
            prop_assert!(r.out.len() == submitted.len(), "one completion per action");
            let mut ran: HashMap<OpKind, Vec<(Nanos, Nanos)>> = HashMap::new();
            for c in &r.out {
                let (arrived, w) = submitted[&c.action];
                prop_assert!(c.timing.begin >= Nanos(arrived));
                let started = matches!(
                    c.status,
                    WorkerStatus::Success
                        | WorkerStatus::ExecConcurrentWeightsModification
                        | WorkerStatus::LoadConcurrentModification
                        | WorkerStatus::UnloadNotInCache
                        | WorkerStatus::WeightsAlreadyLoaded
                        | WorkerStatus::LoadInsufficientCache
                        | WorkerStatus::ExecWeightsMissing
                );
                if started {
                    prop_assert!(w.admits(c.timing.begin), "{:?} began outside {:?}", c, w);
                } else {
                    prop_assert!(c.status == c.kind.too_late(), "unexpected {:?}", c);
                    prop_assert!(c.timing.begin > w.latest);
                }
                if c.timing.duration > Nanos::ZERO {
                    ran.entry(c.kind).or_default().push((c.timing.begin, c.timing.end));
                }
            }
            for spans in ran.values_mut() {
                spans.sort();
                for pair in spans.windows(2) {
                    prop_assert!(pair[0].1 <= pair[1].0, "overlap on one timeline: {:?}", pair);
                }
            }
            let resident: u32 = r.dev.models.values().filter_map(|s| s.resident.as_ref()).map(PageAllocation::len).sum();
            prop_assert!(resident == r.dev.cache.used_pages());
            prop_assert!(r.dev.snapshot().read().free_pages == r.dev.cache.free_pages());
        }
    }
}
