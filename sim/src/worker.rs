//! A simulated worker, emulated like the original's `worker_dummy` (reference 4):
//! per GPU one EXEC executor and one PCIe executor, each running one action at a time
//! in arrival order, and a page-accurate weights cache.
//!
//! - Windows are enforced at start: never before `earliest` (the action waits), and
//!   an action that cannot start by `latest` is dropped with `ExecTooLate` /
//!   `LoadTooLate` and never run.
//! - INFER takes the profile's time for the padded batch, LOAD the profile's load
//!   time, each times a seeded noise factor (uniform `1 ± noise`, or normal with
//!   sigma `noise`: [`super::NoiseShape`]).
//! - LOAD takes its pages at start and fails with `LoadInsufficientCache` when they
//!   are not free; the worker never evicts on its own. UNLOAD frees them at once.
//! - INFER of a model whose weights are not resident fails with `ExecWeightsMissing`.

use super::check::Violations;
use super::events::{Event, EventQueue};
use super::NoiseShape;
type BitSet = std::collections::BTreeSet<u32>;
use clockwork_core::rng::Rng;
use clockwork_core::{
    Action, ActionId, ActionKind, ActionResult, GpuId, GpuState, Inferred, ModelId, ModelProfile,
    Nanos, Outcome, RegisteredModel, Timing, WorkerId, WorkerState, WorkerStatus,
};
use std::collections::VecDeque;

/// Model profiles as registered with the simulated workers, interned: copies of a
/// model share one entry (100,000 instances of three networks take three).
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    profiles: Vec<ModelProfile>,
    of_model: Vec<u32>,
}

const NO_PROFILE: u32 = u32::MAX;

impl Catalogue {
    pub(crate) fn insert(&mut self, model: ModelId, profile: &ModelProfile) {
        let i = match self.profiles.iter().rposition(|p| p == profile) {
            Some(i) => i,
            None => {
                self.profiles.push(profile.clone());
                self.profiles.len() - 1
            }
        };
        let slot = model.0 as usize;
        if self.of_model.len() <= slot {
            self.of_model.resize(slot + 1, NO_PROFILE);
        }
        // A handful of distinct profiles.
        self.of_model[slot] = i as u32;
    }

    pub(crate) fn get(&self, model: ModelId) -> Option<&ModelProfile> {
        let i = *self.of_model.get(model.0 as usize)?;
        self.profiles.get(i as usize)
    }
}

/// What a worker needs from the simulation while handling an event.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Nanos,
    pub(crate) net: Nanos,
    pub(crate) noise: f64,
    pub(crate) noise_shape: NoiseShape,
    pub(crate) page_size: u64,
    pub(crate) events: &'a mut EventQueue,
    pub(crate) rng: &'a mut Rng,
    pub(crate) catalogue: &'a mut Catalogue,
    pub(crate) violations: &'a mut Violations,
    /// Set during set-up: results are collected here instead of travelling.
    pub(crate) immediate: Option<&'a mut Vec<ActionResult>>,
}

impl Ctx<'_> {
    fn send(&mut self, worker: u32, epoch: u32, result: ActionResult) {
        match self.immediate.as_deref_mut() {
            Some(v) => v.push(result),
            None => self.events.push(
                self.now + self.net,
                Event::ToController {
                    worker,
                    epoch,
                    result,
                },
            ),
        }
    }
}

#[derive(Debug)]
struct Running {
    id: ActionId,
    model: ModelId,
    padded: u32,
    received: Nanos,
    begin: Nanos,
    end: Nanos,
}

#[derive(Debug)]
pub(crate) struct SimGpu {
    total_pages: u32,
    free_pages: u32,
    resident: BitSet,
    exec_q: VecDeque<(Nanos, Action)>,
    exec_running: Option<Running>,
    exec_wake_armed: bool,
    pcie_q: VecDeque<(Nanos, Action)>,
    pcie_running: Option<Running>,
}

impl SimGpu {
    fn new(total_pages: u32) -> Self {
        Self {
            total_pages,
            free_pages: total_pages,
            resident: BitSet::default(),
            exec_q: VecDeque::new(),
            exec_running: None,
            exec_wake_armed: false,
            pcie_q: VecDeque::new(),
            pcie_running: None,
        }
    }

    /// The model is resident, loading, or has a LOAD queued here.
    pub(crate) fn holds_or_loads(&self, model: ModelId) -> bool {
        self.resident.contains(&model.0)
            || self.pcie_running.as_ref().is_some_and(|r| r.model == model)
            || self.pcie_q.iter().any(
                |(_, a)| matches!(a.kind, ActionKind::LoadWeights { model: m, .. } if m == model),
            )
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
    registered: BitSet,
    registered_ids: Vec<ModelId>,
}

fn result(
    id: ActionId,
    status: WorkerStatus,
    received: Nanos,
    now: Nanos,
    outcome: Outcome,
) -> ActionResult {
    ActionResult {
        action_id: id,
        status,
        received,
        sent: now,
        outcome,
    }
}

fn error(id: ActionId, status: WorkerStatus, received: Nanos, now: Nanos) -> ActionResult {
    result(
        id,
        status,
        received,
        now,
        Outcome::Error {
            message: String::new(),
        },
    )
}

impl SimWorker {
    pub(crate) fn new(id: WorkerId, gpus: u32, total_pages: u32) -> Self {
        Self {
            id,
            alive: true,
            epoch: 0,
            gpus: (0..gpus).map(|_| SimGpu::new(total_pages)).collect(),
            registered: BitSet::default(),
            registered_ids: Vec::new(),
        }
    }

    /// Forgets everything, as a restarted process would.
    pub(crate) fn reset(&mut self) {
        let (n, pages) = (
            self.gpus.len(),
            self.gpus.first().map_or(0, |g| g.total_pages),
        );
        self.gpus = (0..n).map(|_| SimGpu::new(pages)).collect();
        self.registered = BitSet::default();
        self.registered_ids.clear();
        self.epoch += 1;
    }

    /// GET STATE.
    pub(crate) fn state(&self, page_size: u64, catalogue: &Catalogue) -> WorkerState {
        WorkerState {
            page_size,
            gpus: self
                .gpus
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let loaded: Vec<ModelId> = g.resident.iter().copied().map(ModelId).collect();
                    GpuState {
                        // A simulated worker has a handful of GPUs.
                        id: GpuId(i as u32),
                        name: "simulated".to_owned(),
                        emulated: true,
                        total_pages: g.total_pages,
                        free_pages: g.free_pages,
                        loaded,
                    }
                })
                .collect(),
            models: self
                .registered_ids
                .iter()
                .filter_map(|&m| {
                    catalogue.get(m).map(|p| RegisteredModel {
                        id: m,
                        profile: p.clone(),
                    })
                })
                .collect(),
        }
    }

    /// Actions arrive.
    pub(crate) fn deliver(&mut self, wi: u32, ctx: &mut Ctx<'_>, actions: Vec<Action>) {
        let now = ctx.now;
        for a in actions {
            match &a.kind {
                ActionKind::RegisterModel { model, profile } => {
                    if ctx.catalogue.get(*model).is_none() {
                        ctx.catalogue.insert(*model, profile);
                    }
                    if !self.registered.contains(&model.0) {
                        self.registered.insert(model.0);
                        self.registered_ids.push(*model);
                    }
                    let pages = profile.pages(ctx.page_size);
                    let r = result(
                        a.id,
                        WorkerStatus::Success,
                        now,
                        now,
                        Outcome::Registered {
                            model: *model,
                            pages,
                            measured: None,
                        },
                    );
                    ctx.send(wi, self.epoch, r);
                }
                ActionKind::GetState => {
                    let st = self.state(ctx.page_size, ctx.catalogue);
                    let r = result(a.id, WorkerStatus::Success, now, now, Outcome::State(st));
                    ctx.send(wi, self.epoch, r);
                }
                ActionKind::ClearCache => {
                    for g in &mut self.gpus {
                        g.resident = BitSet::default();
                        g.free_pages = g.total_pages;
                    }
                    let r = result(a.id, WorkerStatus::Success, now, now, Outcome::CacheCleared);
                    ctx.send(wi, self.epoch, r);
                }
                ActionKind::Unload { model, gpu } => {
                    let gi = gpu.0 as usize;
                    let removed = self.gpus.get_mut(gi).map(|g| g.resident.remove(&model.0));
                    let r = match (self.gpus.get_mut(gi), removed) {
                        (Some(g), Some(true)) => {
                            let pages = ctx
                                .catalogue
                                .get(*model)
                                .map_or(0, |p| p.pages(ctx.page_size));
                            g.free_pages = (g.free_pages + pages).min(g.total_pages);
                            let t = Timing {
                                begin: now,
                                end: now,
                                duration: Nanos::ZERO,
                            };
                            result(
                                a.id,
                                WorkerStatus::Success,
                                now,
                                now,
                                Outcome::Unloaded { timing: t },
                            )
                        }
                        (Some(_), _) => error(a.id, WorkerStatus::UnloadNotInCache, now, now),
                        (None, _) => error(a.id, WorkerStatus::InvalidGpu, now, now),
                    };
                    ctx.send(wi, self.epoch, r);
                }
                ActionKind::LoadWeights { gpu, .. } => {
                    let gi = gpu.0 as usize;
                    if let Some(g) = self.gpus.get_mut(gi) {
                        g.pcie_q.push_back((now, a));
                        self.start_load(wi, ctx, gi);
                    } else {
                        ctx.send(
                            wi,
                            self.epoch,
                            error(a.id, WorkerStatus::InvalidGpu, now, now),
                        );
                    }
                }
                ActionKind::Infer { gpu, .. } => {
                    let gi = gpu.0 as usize;
                    if let Some(g) = self.gpus.get_mut(gi) {
                        g.exec_q.push_back((now, a));
                        self.start_exec(wi, ctx, gi);
                    } else {
                        ctx.send(
                            wi,
                            self.epoch,
                            error(a.id, WorkerStatus::InvalidGpu, now, now),
                        );
                    }
                }
            }
        }
    }

    /// Starts queued INFERs on GPU `gi` while its EXEC executor is idle.
    pub(crate) fn start_exec(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize) {
        let now = ctx.now;
        let epoch = self.epoch;
        let g = &mut self.gpus[gi];
        while g.exec_running.is_none() {
            let Some((received, a)) = g.exec_q.pop_front() else {
                return;
            };
            if now < a.window.earliest {
                let earliest = a.window.earliest;
                g.exec_q.push_front((received, a));
                if !g.exec_wake_armed {
                    g.exec_wake_armed = true;
                    ctx.events.push(
                        earliest,
                        Event::ExecWake {
                            worker: wi,
                            epoch,
                            gpu: gi as u32,
                        },
                    );
                }
                return;
            }
            let ActionKind::Infer {
                model, batch_size, ..
            } = a.kind
            else {
                continue;
            };
            if now > a.window.latest {
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::ExecTooLate, received, now),
                );
                continue;
            }
            if !g.resident.contains(&model.0) {
                ctx.violations.weights_missing += 1;
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::ExecWeightsMissing, received, now),
                );
                continue;
            }
            let Some((padded, exec)) = ctx
                .catalogue
                .get(model)
                .and_then(|p| Some((p.padded_batch(batch_size)?, p.exec_time(batch_size)?)))
            else {
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::InvalidBatchSize, received, now),
                );
                continue;
            };
            let dur = noisy(exec, ctx.noise, ctx.noise_shape, ctx.rng);
            g.exec_running = Some(Running {
                id: a.id,
                model,
                padded,
                received,
                begin: now,
                end: now + dur,
            });
            ctx.events.push(
                now + dur,
                Event::ExecDone {
                    worker: wi,
                    epoch,
                    gpu: gi as u32,
                },
            );
        }
    }

    /// The EXEC wake-up fired.
    pub(crate) fn exec_wake(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize) {
        if let Some(g) = self.gpus.get_mut(gi) {
            g.exec_wake_armed = false;
            self.start_exec(wi, ctx, gi);
        }
    }

    /// The running INFER on GPU `gi` finished.
    pub(crate) fn exec_done(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize) {
        let Some(r) = self.gpus.get_mut(gi).and_then(|g| g.exec_running.take()) else {
            return;
        };
        let now = ctx.now;
        let t = |b: Nanos, e: Nanos| Timing {
            begin: b,
            end: e,
            duration: e - b,
        };
        let out = result(
            r.id,
            WorkerStatus::Success,
            r.received,
            now,
            Outcome::Inferred(Inferred {
                // A simulated worker has a handful of GPUs.
                gpu: GpuId(gi as u32),
                padded_batch: r.padded,
                copy_input: t(r.begin, r.begin),
                exec: t(r.begin, r.end),
                copy_output: t(r.end, r.end),
                gpu_clock_before_mhz: 0,
                gpu_clock_mhz: 0,
                outputs: Vec::new(),
            }),
        );
        let _ = r.model;
        ctx.send(wi, self.epoch, out);
        self.start_exec(wi, ctx, gi);
    }

    /// Starts queued LOADs on GPU `gi` while its PCIe executor is idle.
    pub(crate) fn start_load(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize) {
        let now = ctx.now;
        let epoch = self.epoch;
        let g = &mut self.gpus[gi];
        while g.pcie_running.is_none() {
            let Some((received, a)) = g.pcie_q.pop_front() else {
                return;
            };
            let ActionKind::LoadWeights { model, .. } = a.kind else {
                continue;
            };
            // LOAD windows open at the controller's `now`, which is always past here.
            if now > a.window.latest {
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::LoadTooLate, received, now),
                );
                continue;
            }
            let Some((pages, load_time)) = ctx
                .catalogue
                .get(model)
                .map(|p| (p.pages(ctx.page_size), p.load_time))
            else {
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::LoadUnknownModel, received, now),
                );
                continue;
            };
            if g.resident.contains(&model.0) {
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::WeightsAlreadyLoaded, received, now),
                );
                continue;
            }
            if g.free_pages < pages {
                ctx.violations.insufficient_cache += 1;
                ctx.send(
                    wi,
                    epoch,
                    error(a.id, WorkerStatus::LoadInsufficientCache, received, now),
                );
                continue;
            }
            g.free_pages -= pages;
            let dur = noisy(load_time, ctx.noise, ctx.noise_shape, ctx.rng);
            g.pcie_running = Some(Running {
                id: a.id,
                model,
                padded: 0,
                received,
                begin: now,
                end: now + dur,
            });
            ctx.events.push(
                now + dur,
                Event::LoadDone {
                    worker: wi,
                    epoch,
                    gpu: gi as u32,
                },
            );
        }
    }

    /// The running LOAD on GPU `gi` finished.
    pub(crate) fn load_done(&mut self, wi: u32, ctx: &mut Ctx<'_>, gi: usize) {
        let Some(g) = self.gpus.get_mut(gi) else {
            return;
        };
        let Some(r) = g.pcie_running.take() else {
            return;
        };
        g.resident.insert(r.model.0);
        let timing = Timing {
            begin: r.begin,
            end: r.end,
            duration: r.end - r.begin,
        };
        let out = result(
            r.id,
            WorkerStatus::Success,
            r.received,
            ctx.now,
            Outcome::Loaded { timing },
        );
        ctx.send(wi, self.epoch, out);
        self.start_load(wi, ctx, gi);
    }
}

fn noisy(d: Nanos, noise: f64, shape: NoiseShape, rng: &mut Rng) -> Nanos {
    if noise <= 0.0 {
        return d;
    }
    let factor = match shape {
        NoiseShape::Uniform => rng.noise_factor(noise),
        NoiseShape::Normal => (1.0 + noise * rng.normal()).clamp(0.1, 10.0),
    };
    Nanos((d.get() as f64 * factor).round().max(1.0) as u64)
}
