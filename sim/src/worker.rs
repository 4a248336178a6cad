//! A simulated worker: what a worker does around its devices, on the simulation's clock.
//!
//! Its GPUs are `clockwork_gpu`'s own device logic ([`VirtualDevice`]: the emulated
//! backend of the code a real worker's engine threads run), so every timing, window,
//! page and weights-versioning decision (EXEC and PCIe queues ordered by `earliest`,
//! *TooLate drops, `LoadInsufficientCache`, 82/84/54, noise) is the device's. This file
//! only does the worker's part, with the semantics of `worker/src/service.rs`:
//!
//! - RegisterModel (checked as the real worker checks it), GET STATE from the devices'
//!   published state, CLEAR CACHE by unloading everything resident and superseding
//!   LOADs in flight, answered once the cache is empty;
//! - the checks a worker makes before a device sees an action (inverted window, no
//!   such GPU, model not registered with this worker, bad batch size, inconsistent
//!   inputs), answered at once;
//! - core [`Action`]s to [`DeviceAction`]s (tagged, so completions find their action),
//!   device [`Completion`]s to [`ActionResult`]s with the statuses the real worker
//!   sends.
//!
//! Each device has at most one live wake-up in the simulation's event queue: the time
//! [`VirtualDevice::next_event`] asks for, re-armed after every submit or advance.

use super::check::Violations;
use super::events::{Event, EventQueue};
use crate::network::{Direction, Network};
use clockwork_core::rng::Rng;
use clockwork_core::{
    Action, ActionId, ActionKind, ActionResult, GpuId, ModelId, Nanos, Outcome, RegisteredModel,
    Window, WorkerId, WorkerState, WorkerStatus,
};
use clockwork_gpu::{
    Completion, DeviceAction, DeviceOp, GpuError, ModelRegistry, NoiseModel, VirtualDevice,
};
use std::collections::{BTreeMap, HashMap};

/// What a worker needs from the simulation while handling an event.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Nanos,
    pub(crate) net: &'a mut Network,
    pub(crate) events: &'a mut EventQueue,
    /// Profiles of every registered model, shared by all simulated devices.
    pub(crate) models: &'a mut ModelRegistry,
    pub(crate) violations: &'a mut Violations,
    /// Scratch for the devices' completions (kept to reuse its allocation).
    pub(crate) done: &'a mut Vec<Completion>,
    /// Set during set-up: results are collected here instead of travelling.
    pub(crate) immediate: Option<&'a mut Vec<ActionResult>>,
}

impl Ctx<'_> {
    fn send(&mut self, worker: u32, epoch: u32, mut result: ActionResult) {
        result.sent = self.now;
        match self.immediate.as_deref_mut() {
            Some(v) => v.push(result),
            None => self.events.push(
                self.net.arrival(self.now, worker, Direction::ToController),
                Event::ToController {
                    worker,
                    epoch,
                    result,
                },
            ),
        }
    }
}

/// How a worker's devices are built (again, after a restart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceLayout {
    pub(crate) gpus: u32,
    pub(crate) total_pages: u32,
    pub(crate) page_size: u64,
    pub(crate) noise: NoiseModel,
    pub(crate) seed: u64,
}

/// One simulated GPU: the device and its live wake-up, if any.
#[derive(Debug)]
pub(crate) struct SimGpu {
    device: VirtualDevice,
    armed: Option<Nanos>,
}

impl SimGpu {
    /// The model is resident, loading, or has a LOAD queued here.
    pub(crate) fn holds_or_loads(&self, model: ModelId) -> bool {
        self.device.holds_or_loads(model)
    }
}

/// A device action in flight, by its tag.
#[derive(Debug)]
struct Pending {
    /// The controller's action.
    action: ActionId,
    /// When it reached the worker.
    received: Nanos,
    /// A LOAD: where, and its `earliest` (CLEAR CACHE supersedes it after it starts).
    load: Option<LoadTarget>,
    /// An UNLOAD that is part of this CLEAR CACHE rather than an action of its own.
    clear_group: Option<u64>,
    /// CLEAR CACHE groups waiting for this LOAD to end (its pages are freed only then).
    awaited_by: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct LoadTarget {
    gpu: u32,
    model: ModelId,
    earliest: Nanos,
}

/// Device actions in flight: a slab whose slot index is the device action's tag, so a
/// completion finds its action without hashing.
#[derive(Debug, Default)]
struct InFlight {
    slots: Vec<Option<Pending>>,
    free: Vec<u64>,
}

impl InFlight {
    /// Store `p`; its tag.
    fn insert(&mut self, p: Pending) -> u64 {
        if let Some(tag) = self.free.pop() {
            self.slots[tag as usize] = Some(p);
            tag
        } else {
            self.slots.push(Some(p));
            self.slots.len() as u64 - 1
        }
    }

    fn remove(&mut self, tag: u64) -> Option<Pending> {
        let p = self.slots.get_mut(usize::try_from(tag).ok()?)?.take()?;
        self.free.push(tag);
        Some(p)
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.slots.iter_mut().flatten()
    }
}

/// A CLEAR CACHE waiting for its unloads and for the LOADs they supersede.
#[derive(Debug)]
struct ClearGroup {
    action: ActionId,
    received: Nanos,
    remaining: usize,
    failures: Vec<String>,
}

/// Registered model ids of one worker: a bitset, 12.5 KB for 100,000 models.
#[derive(Debug, Default)]
struct ModelSet {
    words: Vec<u64>,
    ids: Vec<ModelId>,
}

impl ModelSet {
    fn contains(&self, m: ModelId) -> bool {
        let i = m.0 as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn insert(&mut self, m: ModelId) {
        let i = m.0 as usize;
        if self.words.len() <= i / 64 {
            self.words.resize(i / 64 + 1, 0);
        }
        let bit = 1 << (i % 64);
        if self.words[i / 64] & bit == 0 {
            self.words[i / 64] |= bit;
            self.ids.push(m);
        }
    }
}

/// The INFER operation of a batch (the one place the simulator builds it). Simulated
/// workers move no input or output bytes: the device gets no buffers.
fn infer_op(model: ModelId, batch_size: u32) -> DeviceOp {
    DeviceOp::infer(model, batch_size)
}

fn error(id: ActionId, status: WorkerStatus, received: Nanos) -> ActionResult {
    ActionResult {
        action_id: id,
        status,
        received,
        sent: received,
        outcome: Outcome::Error {
            message: String::new(),
        },
    }
}

/// One simulated worker.
#[derive(Debug)]
pub(crate) struct SimWorker {
    pub(crate) id: WorkerId,
    pub(crate) alive: bool,
    /// Bumped on loss and rejoin; events of an older epoch are dropped.
    pub(crate) epoch: u32,
    pub(crate) gpus: Vec<SimGpu>,
    layout: DeviceLayout,
    registered: ModelSet,
    pending: InFlight,
    clears: HashMap<u64, ClearGroup>,
    next_group: u64,
}

impl SimWorker {
    pub(crate) fn new(id: WorkerId, layout: DeviceLayout) -> Self {
        let mut w = Self {
            id,
            alive: true,
            epoch: 0,
            gpus: Vec::new(),
            layout,
            registered: ModelSet::default(),
            pending: InFlight::default(),
            clears: HashMap::new(),
            next_group: 1,
        };
        w.gpus = w.fresh_gpus();
        w
    }

    /// Empty devices; their noise streams depend on the seed, the worker and the epoch.
    fn fresh_gpus(&self) -> Vec<SimGpu> {
        let l = self.layout;
        let stream = (u64::from(self.id.0) << 32) | u64::from(self.epoch);
        let seed = Rng::derive(l.seed, stream).next_u64();
        (0..l.gpus)
            .map(|g| SimGpu {
                device: VirtualDevice::emulated(
                    GpuId(g),
                    l.total_pages,
                    l.page_size,
                    l.noise,
                    seed,
                ),
                armed: None,
            })
            .collect()
    }

    /// Forgets everything, as a restarted process would.
    pub(crate) fn reset(&mut self) {
        self.epoch += 1;
        self.gpus = self.fresh_gpus();
        self.registered = ModelSet::default();
        self.pending = InFlight::default();
        self.clears.clear();
    }

    /// GET STATE: the devices' published state and the registered models by id.
    pub(crate) fn state(&self, models: &ModelRegistry) -> WorkerState {
        let mut ids = self.registered.ids.clone();
        ids.sort_unstable();
        WorkerState {
            page_size: self.layout.page_size,
            gpus: self.gpus.iter().map(|g| g.device.state()).collect(),
            models: ids
                .into_iter()
                .filter_map(|id| {
                    models.get(id).map(|p| RegisteredModel {
                        id,
                        count: 1,
                        profile: p.clone(),
                    })
                })
                .collect(),
        }
    }

    fn group(&mut self) -> u64 {
        let g = self.next_group;
        self.next_group += 1;
        g
    }

    /// Actions arrive.
    pub(crate) fn deliver(&mut self, wi: u32, ctx: &mut Ctx<'_>, actions: Vec<Action>) {
        let received = ctx.now;
        for a in actions {
            if !a.window.is_valid() {
                ctx.send(
                    wi,
                    self.epoch,
                    error(a.id, WorkerStatus::InvalidAction, received),
                );
                continue;
            }
            let (gpu, op, inputs_ok) = match a.kind {
                ActionKind::RegisterModel {
                    model,
                    count,
                    profile,
                } => {
                    let r = self.register(a.id, model, count, &profile, received, ctx);
                    ctx.send(wi, self.epoch, r);
                    continue;
                }
                ActionKind::GetState => {
                    let st = self.state(ctx.models);
                    let r = ActionResult {
                        action_id: a.id,
                        status: WorkerStatus::Success,
                        received,
                        sent: received,
                        outcome: Outcome::State(st),
                    };
                    ctx.send(wi, self.epoch, r);
                    continue;
                }
                ActionKind::ClearCache => {
                    self.clear_cache(wi, ctx, a.id, received);
                    continue;
                }
                ActionKind::LoadWeights { model, gpu, .. } => (gpu, DeviceOp::Load { model }, true),
                ActionKind::Unload { model, gpu } => (gpu, DeviceOp::Unload { model }, true),
                ActionKind::Infer {
                    model,
                    gpu,
                    batch_size,
                    input_sizes,
                    inputs,
                    ..
                } => (
                    gpu,
                    infer_op(model, batch_size),
                    inputs_consistent(batch_size, &input_sizes, inputs.len()),
                ),
            };
            if let Err(status) = self.check(ctx.models, gpu, &op, inputs_ok) {
                ctx.send(wi, self.epoch, error(a.id, status, received));
                continue;
            }
            let load = matches!(op, DeviceOp::Load { .. }).then_some(LoadTarget {
                gpu: gpu.0,
                model: op.model(),
                earliest: a.window.earliest,
            });
            let tag = self.pending.insert(Pending {
                action: a.id,
                received,
                load,
                clear_group: None,
                awaited_by: Vec::new(),
            });
            let gi = gpu.0 as usize;
            let action = DeviceAction {
                action: ActionId(tag),
                gpu,
                window: a.window,
                op,
            };
            self.gpus[gi]
                .device
                .submit(action, ctx.now, ctx.models, ctx.done);
            self.complete_all(wi, ctx);
            self.rearm(wi, gi, ctx);
        }
    }

    /// RegisterModel, checked as `DeviceSet::register_model` checks it.
    fn register(
        &mut self,
        id: ActionId,
        model: ModelId,
        count: u32,
        profile: &clockwork_core::ModelProfile,
        received: Nanos,
        ctx: &mut Ctx<'_>,
    ) -> ActionResult {
        // Every instance of the range, also past one that fails, as the real worker.
        let last = model
            .0
            .checked_add(count.saturating_sub(1))
            .filter(|_| count > 0);
        let Some(last) = last else {
            return error(id, WorkerStatus::InvalidAction, received);
        };
        let mut registered = Ok(0);
        for m in (model.0..=last).map(ModelId) {
            match ctx.models.register(m, profile) {
                Ok(p) => {
                    let pages = p.pages(self.layout.page_size);
                    self.registered.insert(m);
                    if let Ok(n) = &mut registered {
                        *n = pages;
                    }
                }
                Err(e) => {
                    if registered.is_ok() {
                        registered = Err(e);
                    }
                }
            }
        }
        match registered {
            Ok(pages) => ActionResult {
                action_id: id,
                status: WorkerStatus::Success,
                received,
                sent: received,
                outcome: Outcome::Registered {
                    model,
                    pages,
                    measured: None,
                },
            },
            Err(e) => {
                let status = match e {
                    GpuError::ModelConflict(_) => WorkerStatus::InvalidModelId,
                    GpuError::InvalidProfile { .. } => WorkerStatus::InvalidAction,
                    _ => WorkerStatus::RuntimeError,
                };
                error(id, status, received)
            }
        }
    }

    /// What a worker checks before an action reaches a device, with the real worker's
    /// statuses and precedence. A bad batch size with consistent inputs is left to the
    /// device, which refuses it at once with the same status.
    fn check(
        &self,
        models: &ModelRegistry,
        gpu: GpuId,
        op: &DeviceOp,
        inputs_ok: bool,
    ) -> Result<(), WorkerStatus> {
        if gpu.0 as usize >= self.gpus.len() {
            return Err(WorkerStatus::InvalidGpu);
        }
        let model = op.model();
        if !self.registered.contains(model) {
            return Err(op.kind().unknown_model());
        }
        match op {
            &DeviceOp::Infer { batch_size, .. } if !inputs_ok => {
                let bad_batch = models
                    .get(model)
                    .is_none_or(|p| batch_size == 0 || p.padded_batch(batch_size).is_none());
                Err(if bad_batch {
                    WorkerStatus::InvalidBatchSize
                } else {
                    WorkerStatus::InvalidInput
                })
            }
            _ => Ok(()),
        }
    }

    /// The wake-up of GPU `gi` set for `at` fired.
    pub(crate) fn wake(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize, at: Nanos) {
        let Some(g) = self.gpus.get_mut(gi) else {
            return;
        };
        if g.armed != Some(at) {
            return; // Superseded by an earlier wake-up.
        }
        g.armed = None;
        g.device.advance(ctx.now, ctx.models, ctx.done);
        self.complete_all(wi, ctx);
        self.rearm(wi, gi, ctx);
    }

    /// Keep one wake-up in the queue for GPU `gi`'s next event.
    fn rearm(&mut self, wi: u32, gi: usize, ctx: &mut Ctx<'_>) {
        let g = &mut self.gpus[gi];
        let Some(t) = g.device.next_event(ctx.now) else {
            return;
        };
        if g.armed.is_none_or(|a| t < a) {
            g.armed = Some(t);
            ctx.events.push(
                t,
                Event::DeviceDue {
                    worker: wi,
                    epoch: self.epoch,
                    // A simulated worker has a handful of GPUs.
                    gpu: gi as u32,
                    at: t,
                },
            );
        }
    }

    /// Answer the completions the devices produced.
    fn complete_all(&mut self, wi: u32, ctx: &mut Ctx<'_>) {
        let mut done = std::mem::take(ctx.done);
        for c in done.drain(..) {
            self.complete(wi, ctx, c);
        }
        *ctx.done = done;
    }

    /// A device completion: answer its action (or count it towards its CLEAR CACHE).
    fn complete(&mut self, wi: u32, ctx: &mut Ctx<'_>, c: Completion) {
        let Some(p) = self.pending.remove(c.action.0) else {
            return;
        };
        if let Some(group) = p.clear_group {
            // Not in cache: already gone, or the unload superseded a LOAD (which then
            // fails with 54 and frees its pages). Both leave it cleared.
            let failure = (!matches!(
                c.status,
                WorkerStatus::Success | WorkerStatus::UnloadNotInCache
            ))
            .then(|| format!("unload {} on {}: {}", c.model, c.gpu, c.status));
            self.clear_part_done(wi, ctx, group, failure);
            return;
        }
        for &group in &p.awaited_by {
            self.clear_part_done(wi, ctx, group, None);
        }
        match c.status {
            WorkerStatus::ExecWeightsMissing => ctx.violations.weights_missing += 1,
            WorkerStatus::LoadInsufficientCache => ctx.violations.insufficient_cache += 1,
            WorkerStatus::ExecConcurrentWeightsModification
            | WorkerStatus::LoadConcurrentModification => {
                ctx.violations.weights_changed_in_use += 1;
            }
            _ => {}
        }
        let (status, outcome) = c.into_outcome(|t| t);
        let r = ActionResult {
            action_id: p.action,
            status,
            received: p.received,
            sent: ctx.now,
            outcome,
        };
        ctx.send(wi, self.epoch, r);
    }

    /// CLEAR CACHE: unload everything resident on every GPU and everything a LOAD in
    /// flight will bring in (that unload gets the LOAD's `earliest`, so it supersedes it
    /// once started: 54); answered when those LOADs have ended and freed their pages.
    fn clear_cache(&mut self, wi: u32, ctx: &mut Ctx<'_>, id: ActionId, received: Nanos) {
        let group = self.group();
        let mut targets: BTreeMap<(u32, ModelId), Nanos> = BTreeMap::new();
        let mut awaited = 0;
        for p in self.pending.values_mut() {
            if let Some(t) = p.load {
                let e = targets.entry((t.gpu, t.model)).or_insert(Nanos::ZERO);
                *e = (*e).max(t.earliest);
                p.awaited_by.push(group);
                awaited += 1;
            }
        }
        for (gi, g) in self.gpus.iter().enumerate() {
            for m in g.device.state().loaded {
                // A simulated worker has a handful of GPUs.
                targets.entry((gi as u32, m)).or_insert(Nanos::ZERO);
            }
        }
        if targets.is_empty() {
            let r = ActionResult {
                action_id: id,
                status: WorkerStatus::Success,
                received,
                sent: received,
                outcome: Outcome::CacheCleared,
            };
            ctx.send(wi, self.epoch, r);
            return;
        }
        self.clears.insert(
            group,
            ClearGroup {
                action: id,
                received,
                remaining: awaited + targets.len(),
                failures: Vec::new(),
            },
        );
        let mut touched = Vec::new();
        for ((gpu, model), earliest) in targets {
            let tag = self.pending.insert(Pending {
                action: id,
                received,
                load: None,
                clear_group: Some(group),
                awaited_by: Vec::new(),
            });
            let action = DeviceAction {
                action: ActionId(tag),
                gpu: GpuId(gpu),
                window: Window::new(earliest, Nanos::MAX),
                op: DeviceOp::Unload { model },
            };
            let gi = gpu as usize;
            self.gpus[gi]
                .device
                .submit(action, ctx.now, ctx.models, ctx.done);
            touched.push(gi);
        }
        self.complete_all(wi, ctx);
        touched.dedup();
        for gi in touched {
            self.rearm(wi, gi, ctx);
        }
    }

    fn clear_part_done(&mut self, wi: u32, ctx: &mut Ctx<'_>, group: u64, failure: Option<String>) {
        let Some(g) = self.clears.get_mut(&group) else {
            return;
        };
        g.failures.extend(failure);
        g.remaining = g.remaining.saturating_sub(1);
        if g.remaining > 0 {
            return;
        }
        let Some(g) = self.clears.remove(&group) else {
            return;
        };
        let (status, outcome) = if g.failures.is_empty() {
            (WorkerStatus::Success, Outcome::CacheCleared)
        } else {
            (
                WorkerStatus::RuntimeError,
                Outcome::Error {
                    message: format!("clear cache incomplete: {}", g.failures.join("; ")),
                },
            )
        };
        let r = ActionResult {
            action_id: g.action,
            status,
            received: g.received,
            sent: ctx.now,
            outcome,
        };
        ctx.send(wi, self.epoch, r);
    }
}

/// Whether an INFER's inputs are consistent, as the real worker checks them: no bytes
/// without sizes, one size per request when sizes are given, sizes summing to the bytes.
fn inputs_consistent(batch_size: u32, input_sizes: &[u32], input_bytes: usize) -> bool {
    let total: u64 = input_sizes.iter().map(|s| u64::from(*s)).sum();
    if input_sizes.is_empty() && input_bytes != 0 {
        return false;
    }
    if !input_sizes.is_empty() && input_sizes.len() as u64 != u64::from(batch_size) {
        return false;
    }
    total == input_bytes as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::resnet50;
    use clockwork_core::{ModelProfile, DEFAULT_PAGE_SIZE};

    const M: ModelId = ModelId(0);

    /// One simulated worker with one GPU, its own event queue, and the results it sent.
    struct Rig {
        worker: SimWorker,
        events: EventQueue,
        network: Network,
        models: ModelRegistry,
        violations: Violations,
        done: Vec<Completion>,
        now: Nanos,
        results: Vec<ActionResult>,
        next_id: u64,
    }

    impl Rig {
        fn new() -> Self {
            let layout = DeviceLayout {
                gpus: 1,
                total_pages: 100,
                page_size: DEFAULT_PAGE_SIZE,
                noise: NoiseModel::None,
                seed: 1,
            };
            Self {
                worker: SimWorker::new(WorkerId(0), layout),
                events: EventQueue::default(),
                network: Network::new(Nanos::ZERO, Nanos::ZERO, None, 0),
                models: ModelRegistry::new(),
                violations: Violations::default(),
                done: Vec::new(),
                now: Nanos::ZERO,
                results: Vec::new(),
                next_id: 0,
            }
        }

        fn with_ctx(&mut self, f: impl FnOnce(&mut SimWorker, &mut Ctx<'_>)) {
            let mut ctx = Ctx {
                now: self.now,
                net: &mut self.network,
                events: &mut self.events,
                models: &mut self.models,
                violations: &mut self.violations,
                done: &mut self.done,
                immediate: None,
            };
            f(&mut self.worker, &mut ctx);
        }

        /// Deliver `kinds` (with their windows) now, as one message; their action ids.
        fn deliver(&mut self, kinds: Vec<(Window, ActionKind)>) -> Vec<ActionId> {
            let actions: Vec<Action> = kinds
                .into_iter()
                .map(|(window, kind)| {
                    self.next_id += 1;
                    Action {
                        id: ActionId(self.next_id),
                        window,
                        kind,
                    }
                })
                .collect();
            let ids = actions.iter().map(|a| a.id).collect();
            self.with_ctx(|w, ctx| w.deliver(0, ctx, actions));
            ids
        }

        /// Run the events up to `until`: device wake-ups and results sent.
        fn run_until(&mut self, until: Nanos) {
            while self.events.next_time().is_some_and(|t| t <= until) {
                let Some((t, ev)) = self.events.pop() else {
                    break;
                };
                self.now = self.now.max(t);
                match ev {
                    Event::DeviceDue { gpu, at, .. } => {
                        self.with_ctx(|w, ctx| w.wake(0, ctx, gpu as usize, at));
                    }
                    Event::ToController { result, .. } => self.results.push(result),
                    Event::ToWorker { .. } => unreachable!("no controller here"),
                }
            }
            self.now = self.now.max(until);
        }

        fn result(&self, id: ActionId) -> &ActionResult {
            let found: Vec<_> = self.results.iter().filter(|r| r.action_id == id).collect();
            assert_eq!(found.len(), 1, "one result for {id}: {:?}", self.results);
            found[0]
        }
    }

    fn register(profile: ModelProfile) -> ActionKind {
        ActionKind::RegisterModel {
            model: M,
            count: 1,
            profile,
        }
    }

    fn load() -> ActionKind {
        ActionKind::LoadWeights {
            model: M,
            gpu: GpuId(0),
            expected_duration: Nanos::ZERO,
        }
    }

    fn infer(batch_size: u32) -> ActionKind {
        ActionKind::Infer {
            model: M,
            gpu: GpuId(0),
            batch_size,
            expected_duration: Nanos::ZERO,
            input_sizes: Vec::new(),
            inputs: Default::default(),
        }
    }

    fn ms(x: u64) -> Nanos {
        Nanos::from_millis(x)
    }

    fn window(earliest: Nanos, latest: Nanos) -> Window {
        Window::new(earliest, latest)
    }

    /// A worker with `M` registered and loaded, at 20 ms.
    fn loaded() -> Rig {
        let mut r = Rig::new();
        let ids = r.deliver(vec![
            (Window::ANY, register(resnet50())),
            (Window::ANY, load()),
        ]);
        r.run_until(ms(20));
        assert_eq!(r.result(ids[0]).status, WorkerStatus::Success);
        assert_eq!(r.result(ids[1]).status, WorkerStatus::Success);
        r
    }

    #[test]
    fn infers_delivered_out_of_earliest_order_run_in_earliest_order() {
        let mut r = loaded();
        // The simulator used to run these in arrival order: the later window first.
        let ids = r.deliver(vec![
            (window(ms(40), ms(100)), infer(1)),
            (window(ms(30), ms(100)), infer(1)),
        ]);
        r.run_until(ms(100));
        let begin = |id| match &r.result(id).outcome {
            Outcome::Inferred(i) => i.exec.begin,
            other => panic!("{other:?}"),
        };
        assert_eq!(begin(ids[1]), ms(30));
        assert_eq!(begin(ids[0]), ms(40));
        assert_eq!(r.violations.total(), 0);
    }

    #[test]
    fn infer_during_an_unload_of_its_model_fails_84() {
        let mut r = loaded();
        // Batch 16 runs 21.73 ms; the UNLOAD arrives 1 ms into it.
        let infer_id = r.deliver(vec![(Window::ANY, infer(16))])[0];
        r.run_until(ms(21));
        let unload = ActionKind::Unload {
            model: M,
            gpu: GpuId(0),
        };
        let unload_id = r.deliver(vec![(Window::ANY, unload)])[0];
        r.run_until(ms(100));
        assert_eq!(r.result(unload_id).status, WorkerStatus::Success);
        assert_eq!(
            r.result(infer_id).status,
            WorkerStatus::ExecConcurrentWeightsModification
        );
        assert_eq!(r.violations.weights_changed_in_use, 1);
        // And afterwards the weights are gone: 82.
        let again = r.deliver(vec![(Window::ANY, infer(1))])[0];
        r.run_until(ms(200));
        assert_eq!(r.result(again).status, WorkerStatus::ExecWeightsMissing);
        assert_eq!(r.violations.weights_missing, 1);
    }

    #[test]
    fn refusals_match_the_real_worker() {
        let mut r = Rig::new();
        let mut bad = resnet50();
        bad.batches.clear();
        let other_gpu = ActionKind::LoadWeights {
            model: M,
            gpu: GpuId(5),
            expected_duration: Nanos::ZERO,
        };
        let ids = r.deliver(vec![
            (Window::ANY, load()),               // not registered here
            (Window::ANY, register(bad)),        // invalid profile
            (Window::ANY, register(resnet50())), // fine
            (Window::ANY, register(clockwork_core::model::resnet18())), // conflict
            (Window::ANY, other_gpu),            // no such GPU
            (window(ms(5), ms(1)), infer(1)),    // inverted window
            (Window::ANY, infer(17)),            // batch too large
            (Window::ANY, infer(1)),             // no weights: 82
        ]);
        r.run_until(ms(10));
        let statuses: Vec<_> = ids.iter().map(|id| r.result(*id).status).collect();
        assert_eq!(
            statuses,
            vec![
                WorkerStatus::LoadUnknownModel,
                WorkerStatus::InvalidAction,
                WorkerStatus::Success,
                WorkerStatus::InvalidModelId,
                WorkerStatus::InvalidGpu,
                WorkerStatus::InvalidAction,
                WorkerStatus::InvalidBatchSize,
                WorkerStatus::ExecWeightsMissing,
            ]
        );
    }

    #[test]
    fn clear_cache_supersedes_a_load_in_flight_and_answers_when_empty() {
        let mut r = loaded();
        let other = ModelId(1);
        let reg = ActionKind::RegisterModel {
            model: other,
            count: 1,
            profile: clockwork_core::model::resnet152(),
        };
        let load_other = ActionKind::LoadWeights {
            model: other,
            gpu: GpuId(0),
            expected_duration: Nanos::ZERO,
        };
        let ids = r.deliver(vec![
            (Window::ANY, reg),
            (Window::ANY, load_other),
            (Window::ANY, ActionKind::ClearCache),
        ]);
        r.run_until(ms(100));
        assert_eq!(
            r.result(ids[1]).status,
            WorkerStatus::LoadConcurrentModification
        );
        let clear = r.result(ids[2]);
        assert_eq!(clear.status, WorkerStatus::Success);
        assert_eq!(clear.outcome, Outcome::CacheCleared);
        let st = r.worker.state(&r.models);
        assert!(st.gpus[0].loaded.is_empty());
        assert_eq!(st.gpus[0].free_pages, 100);
        assert_eq!(st.models.len(), 2);
        assert!(st.gpus[0].emulated);
    }
}
