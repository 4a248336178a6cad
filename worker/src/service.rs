//! The network side of the worker, on one glommio executor: the accept loop, the
//! per-controller reader and writer tasks, and the completions task.
//!
//! State shared by the tasks lives in [`Shared`] behind `RefCell`s that are borrowed
//! only between awaits. Every action handed to a device gets a worker-internal tag as
//! its device action id, so that completions can be matched to the controller
//! connection (session) that sent the action, whatever ids the controllers chose.

use crate::clock::ClockMap;
use crate::error::WorkerError;
use crate::StopSignal;
use clockwork_core::action::ArchivedActionKind;
use clockwork_core::wire::{ArchivedToWorker, FromWorker, PeerRole, ToWorker};
use clockwork_core::{
    ActionId, ActionResult, GpuId, Inferred, ModelId, ModelProfile, MonotonicClock, Nanos, Outcome,
    RegisteredModel, Timing, Window, WorkerState, WorkerStatus,
};
use clockwork_gpu::{Completion, Completions, DeviceAction, DeviceOp, DeviceSet, GpuError, OpKind};
use clockwork_net::{FrameReader, FrameWriter, LinkConfig, Listener, PeerInfo, TcpConnection};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::{spawn_local, Task};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

/// What the service needs besides the devices.
pub(crate) struct ServiceConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) link: LinkConfig,
    pub(crate) stop: Arc<StopSignal>,
}

/// The executor's root future: serve until stopped.
pub(crate) async fn run(
    cfg: ServiceConfig,
    devices: DeviceSet,
    completions: Completions,
    ready: SyncSender<Result<SocketAddr, WorkerError>>,
) -> Result<(), WorkerError> {
    let listener = match Listener::bind(cfg.listen, PeerRole::Controller, cfg.link) {
        Ok(l) => l,
        Err(e) => {
            // `serve` is waiting on this channel; it returns the error.
            let _ = ready.send(Err(e.into()));
            return Ok(());
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return Ok(());
        }
    };
    let shared = Rc::new(Shared::new(devices));
    let completions_task = spawn_local(completions_loop(Rc::clone(&shared), completions));
    if ready.send(Ok(addr)).is_err() {
        return Ok(());
    }
    drop(ready);
    tracing::info!(%addr, "worker listening for the controller");
    let listener = Rc::new(listener);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            cfg.stop.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let (shared, listener, stop) = (
                    Rc::clone(&shared),
                    Rc::clone(&listener),
                    Arc::clone(&cfg.stop),
                );
                spawn_local(async move {
                    match listener.handshake(stream).await {
                        Ok((conn, peer)) if !stop.is_stopped() => shared.install(conn, peer),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "refused a connection"),
                    }
                })
                .detach();
            }
            Some(Err(e)) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tracing::info!("worker stopping");
    shared.shutdown();
    // The engines have stopped; the completions task drains what they cancelled.
    completions_task.await;
    Ok(())
}

/// State shared by the worker's tasks.
struct Shared {
    /// `None` once shutting down.
    devices: RefCell<Option<DeviceSet>>,
    /// Device actions in flight, by tag.
    pending: RefCell<HashMap<u64, Pending>>,
    /// CLEAR CACHE actions waiting for their unloads, by group tag.
    clears: RefCell<HashMap<u64, ClearGroup>>,
    next_tag: Cell<u64>,
    next_session: Cell<u64>,
    current: RefCell<Option<Current>>,
}

/// The connected controller.
struct Current {
    link: Rc<Link>,
    /// Reader and writer; dropping them cancels them, which closes the connection.
    tasks: Vec<Task<()>>,
}

/// One controller connection as the other tasks see it.
struct Link {
    session: u64,
    peer: String,
    results: LocalSender<Outgoing>,
}

/// A result on its way to the writer, with the clock map its times use.
struct Outgoing {
    result: ActionResult,
    clock: ClockMap,
}

/// Who is waiting for a device completion.
struct Pending {
    session: u64,
    action: ActionId,
    /// When the action arrived, in the controller's clock.
    received: Nanos,
    clock: ClockMap,
    /// For a LOAD: where it loads and its local `earliest` (CLEAR CACHE unloads these
    /// too, after they start).
    load_target: Option<LoadTarget>,
    /// Part of a CLEAR CACHE rather than an action of its own.
    clear_group: Option<u64>,
    /// CLEAR CACHE groups that wait for this LOAD to end (its pages are freed only then).
    awaited_by: Vec<u64>,
}

#[derive(Clone, Copy)]
struct LoadTarget {
    gpu: GpuId,
    model: ModelId,
    earliest: Nanos,
}

/// A CLEAR CACHE waiting for its unloads.
struct ClearGroup {
    session: u64,
    action: ActionId,
    received: Nanos,
    clock: ClockMap,
    remaining: usize,
    failures: Vec<String>,
}

/// An action read out of its frame, so the frame can be released before dispatch.
struct Parsed {
    id: ActionId,
    window: Window,
    op: ParsedOp,
}

enum ParsedOp {
    Register {
        model: ModelId,
        profile: Result<ModelProfile, String>,
    },
    Device {
        gpu: GpuId,
        op: DeviceOp,
        /// INFER only: whether `input_sizes`/`inputs` are consistent.
        inputs: Result<(), String>,
    },
    GetState,
    ClearCache,
}

impl Shared {
    fn new(devices: DeviceSet) -> Self {
        Self {
            devices: RefCell::new(Some(devices)),
            pending: RefCell::new(HashMap::new()),
            clears: RefCell::new(HashMap::new()),
            next_tag: Cell::new(1),
            next_session: Cell::new(1),
            current: RefCell::new(None),
        }
    }

    fn tag(&self) -> u64 {
        let t = self.next_tag.get();
        self.next_tag.set(t + 1);
        t
    }

    /// Make `conn` the controller connection, replacing (closing) any previous one.
    fn install(self: &Rc<Self>, conn: TcpConnection, peer: PeerInfo) {
        let session = self.next_session.get();
        self.next_session.set(session + 1);
        let (tx, rx) = local_channel::new_unbounded();
        let link = Rc::new(Link {
            session,
            peer: peer.name,
            results: tx,
        });
        let (reader, writer) = conn.into_split();
        let tasks = vec![
            spawn_local(reader_loop(Rc::clone(self), Rc::clone(&link), reader)),
            spawn_local(writer_loop(rx, writer, link.peer.clone())),
        ];
        let old = self.current.replace(Some(Current {
            link: Rc::clone(&link),
            tasks,
        }));
        match &old {
            Some(old) => tracing::warn!(
                new = %link.peer,
                old = %old.link.peer,
                "a new controller replaces the connected one; closing the old connection \
                 (results of its actions still in flight are dropped)"
            ),
            None => tracing::info!(controller = %link.peer, "controller connected"),
        }
        // Dropping `old` cancels its reader and writer, which closes its socket.
        drop(old);
    }

    /// The reader of `session` saw its connection end.
    fn end_session(&self, session: u64) {
        let ended = {
            let mut cur = self.current.borrow_mut();
            if cur.as_ref().is_some_and(|c| c.link.session == session) {
                cur.take()
            } else {
                None
            }
        };
        if let Some(c) = ended {
            tracing::info!(
                controller = %c.link.peer,
                "controller disconnected; results of its actions still in flight will be dropped"
            );
            // Let both tasks finish on their own: the reader is returning, and the
            // writer ends once the last sender (in `Link`) is gone.
            for t in c.tasks {
                t.detach();
            }
        }
    }

    /// Stop: close the connection, then stop the devices (which cancels what they hold).
    fn shutdown(&self) {
        let cur = self.current.borrow_mut().take();
        drop(cur);
        let devices = self.devices.borrow_mut().take();
        // Joins the engine threads; they hand their cancellations to the completions task.
        drop(devices);
    }

    /// Queue a result for `session`'s writer, if that controller is still connected.
    fn deliver(&self, session: u64, result: ActionResult, clock: ClockMap) {
        let cur = self.current.borrow();
        match cur.as_ref() {
            Some(c) if c.link.session == session => {
                let action = result.action_id;
                if c.link.results.try_send(Outgoing { result, clock }).is_err() {
                    tracing::debug!(%action, "writer gone; result dropped");
                }
            }
            _ => tracing::debug!(
                action = %result.action_id,
                "result of a disconnected controller's action dropped"
            ),
        }
    }

    /// Handle one action. Results that are known at once are delivered at once.
    fn dispatch(&self, link: &Link, clock: ClockMap, received_local: Nanos, p: Parsed) {
        let received = clock.to_controller(received_local);
        let reply = |status: WorkerStatus, outcome: Outcome| {
            self.deliver(
                link.session,
                ActionResult {
                    action_id: p.id,
                    status,
                    received,
                    sent: Nanos::ZERO,
                    outcome,
                },
                clock,
            );
        };
        let fail = |status: WorkerStatus, message: String| {
            tracing::debug!(action = %p.id, %status, %message, "action refused");
            reply(status, Outcome::Error { message });
        };
        if !p.window.is_valid() {
            return fail(
                WorkerStatus::InvalidAction,
                format!(
                    "inverted window: earliest {} is after latest {}",
                    p.window.earliest.get(),
                    p.window.latest.get()
                ),
            );
        }
        match p.op {
            ParsedOp::Register { model, profile } => {
                let profile = match profile {
                    Ok(p) => p,
                    Err(m) => return fail(WorkerStatus::InvalidAction, m),
                };
                let mut devices = self.devices.borrow_mut();
                let Some(devs) = devices.as_mut() else {
                    return fail(WorkerStatus::ShuttingDown, "worker is shutting down".into());
                };
                match devs.register_model(model, profile) {
                    Ok(pages) => {
                        drop(devices);
                        reply(WorkerStatus::Success, Outcome::Registered { model, pages });
                    }
                    Err(e) => {
                        drop(devices);
                        let status = match &e {
                            GpuError::ModelConflict(_) => WorkerStatus::InvalidModelId,
                            GpuError::InvalidProfile { .. } => WorkerStatus::InvalidAction,
                            GpuError::Stopped => WorkerStatus::ShuttingDown,
                            _ => WorkerStatus::RuntimeError,
                        };
                        fail(status, format!("register {model}: {e}"));
                    }
                }
            }
            ParsedOp::GetState => {
                let state = self.devices.borrow().as_ref().map(|d| {
                    let mut models: Vec<RegisteredModel> = d
                        .models()
                        .map(|(id, p)| RegisteredModel {
                            id,
                            profile: p.clone(),
                        })
                        .collect();
                    models.sort_by_key(|m| m.id);
                    WorkerState {
                        page_size: d.page_size(),
                        gpus: d.state(),
                        models,
                    }
                });
                match state {
                    Some(s) => reply(WorkerStatus::Success, Outcome::State(s)),
                    None => fail(WorkerStatus::ShuttingDown, "worker is shutting down".into()),
                }
            }
            ParsedOp::ClearCache => self.clear_cache(link, clock, received, p.id),
            ParsedOp::Device { gpu, op, inputs } => {
                let kind = op.kind();
                let checked = {
                    let devices = self.devices.borrow();
                    match devices.as_ref() {
                        None => Err((WorkerStatus::ShuttingDown, "worker is shutting down".into())),
                        Some(d) => check_device_action(d, gpu, &op, inputs),
                    }
                };
                if let Err((status, message)) = checked {
                    return fail(status, format!("{} {message}", kind_name(kind)));
                }
                let tag = self.tag();
                let model = op.model();
                let action = DeviceAction {
                    action: ActionId(tag),
                    gpu,
                    window: clock.window_to_local(p.window),
                    op,
                };
                let earliest = action.window.earliest;
                let submitted = match self.devices.borrow_mut().as_mut() {
                    Some(d) => d.submit(action).map_err(|e| (e.status(), e.to_string())),
                    None => Err((WorkerStatus::ShuttingDown, "worker is shutting down".into())),
                };
                match submitted {
                    Ok(()) => {
                        self.pending.borrow_mut().insert(
                            tag,
                            Pending {
                                session: link.session,
                                action: p.id,
                                received,
                                clock,
                                load_target: matches!(kind, OpKind::Load).then_some(LoadTarget {
                                    gpu,
                                    model,
                                    earliest,
                                }),
                                clear_group: None,
                                awaited_by: Vec::new(),
                            },
                        );
                    }
                    Err((status, message)) => {
                        fail(status, format!("{} {message}", kind_name(kind)))
                    }
                }
            }
        }
    }

    /// CLEAR CACHE: unload everything resident on every GPU, and everything a LOAD
    /// handed to a device before it will bring in. The unload for a pending LOAD gets
    /// that LOAD's `earliest`, so it runs right after the LOAD starts and supersedes it
    /// (the LOAD fails with 54); the answer waits until those LOADs have ended and
    /// released their pages, so the cache is empty when `CacheCleared` is sent.
    fn clear_cache(&self, link: &Link, clock: ClockMap, received: Nanos, id: ActionId) {
        let reply = |status, outcome| {
            self.deliver(
                link.session,
                ActionResult {
                    action_id: id,
                    status,
                    received,
                    sent: Nanos::ZERO,
                    outcome,
                },
                clock,
            );
        };
        let group = self.tag();
        // (gpu, model) -> earliest local start of the unload.
        let mut targets: BTreeMap<(GpuId, ModelId), Nanos> = BTreeMap::new();
        let mut awaited = 0;
        for p in self.pending.borrow_mut().values_mut() {
            if let Some(t) = p.load_target {
                let e = targets.entry((t.gpu, t.model)).or_insert(Nanos::ZERO);
                *e = (*e).max(t.earliest);
                p.awaited_by.push(group);
                awaited += 1;
            }
        }
        {
            let devices = self.devices.borrow();
            let Some(d) = devices.as_ref() else {
                drop(devices);
                self.forget_group(group);
                return reply(
                    WorkerStatus::ShuttingDown,
                    Outcome::Error {
                        message: "worker is shutting down".into(),
                    },
                );
            };
            for g in d.state() {
                for &m in &g.loaded {
                    targets.entry((g.id, m)).or_insert(Nanos::ZERO);
                }
            }
        }
        if targets.is_empty() {
            return reply(WorkerStatus::Success, Outcome::CacheCleared);
        }
        let mut failures = Vec::new();
        let mut remaining = awaited;
        for ((gpu, model), earliest) in targets {
            let tag = self.tag();
            let action = DeviceAction {
                action: ActionId(tag),
                gpu,
                window: Window::new(earliest, Nanos::MAX),
                op: DeviceOp::Unload { model },
            };
            let submitted = match self.devices.borrow_mut().as_mut() {
                Some(d) => d.submit(action).map_err(|e| e.to_string()),
                None => Err("worker is shutting down".into()),
            };
            match submitted {
                Ok(()) => {
                    remaining += 1;
                    self.pending.borrow_mut().insert(
                        tag,
                        Pending {
                            session: link.session,
                            action: id,
                            received,
                            clock,
                            load_target: None,
                            clear_group: Some(group),
                            awaited_by: Vec::new(),
                        },
                    );
                }
                Err(e) => failures.push(format!("unload {model} on {gpu}: {e}")),
            }
        }
        let g = ClearGroup {
            session: link.session,
            action: id,
            received,
            clock,
            remaining,
            failures,
        };
        if remaining == 0 {
            self.finish_clear(g);
        } else {
            self.clears.borrow_mut().insert(group, g);
        }
    }

    /// Undo the `awaited_by` marks of a CLEAR CACHE that did not go ahead.
    fn forget_group(&self, group: u64) {
        for p in self.pending.borrow_mut().values_mut() {
            p.awaited_by.retain(|&g| g != group);
        }
    }

    fn finish_clear(&self, g: ClearGroup) {
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
        self.deliver(
            g.session,
            ActionResult {
                action_id: g.action,
                status,
                received: g.received,
                sent: Nanos::ZERO,
                outcome,
            },
            g.clock,
        );
    }

    /// A device completion: answer its action (or count it towards its CLEAR CACHE).
    fn complete(&self, c: &Completion) {
        let Some(p) = self.pending.borrow_mut().remove(&c.action.get()) else {
            tracing::warn!(tag = %c.action, "completion for no pending action");
            return;
        };
        if let Some(group) = p.clear_group {
            // Not in cache: the model was already gone, or the unload superseded a LOAD
            // (which then fails with 54 and frees its pages). Both leave it cleared.
            let failure = (!matches!(
                c.status,
                WorkerStatus::Success | WorkerStatus::UnloadNotInCache
            ))
            .then(|| format!("unload {} on {}: {}", c.model, c.gpu, c.status));
            self.clear_part_done(group, failure);
            return;
        }
        for &group in &p.awaited_by {
            // The LOAD has ended (superseded, or failed on its own): its pages are free.
            self.clear_part_done(group, None);
        }
        let timing = p.clock.timing_to_controller(c.timing);
        let (status, outcome) = match (c.status, c.kind) {
            (WorkerStatus::Success, OpKind::Load) => (c.status, Outcome::Loaded { timing }),
            (WorkerStatus::Success, OpKind::Unload) => (c.status, Outcome::Unloaded { timing }),
            (WorkerStatus::Success, OpKind::Infer) => (
                c.status,
                Outcome::Inferred(Inferred {
                    gpu: c.gpu,
                    padded_batch: c.padded_batch,
                    copy_input: instant(timing.begin),
                    exec: timing,
                    copy_output: instant(timing.end),
                    gpu_clock_before_mhz: 0,
                    gpu_clock_mhz: 0,
                    outputs: Vec::new(),
                }),
            ),
            (status, kind) => (
                status,
                Outcome::Error {
                    message: format!(
                        "{} of {} on {} failed: {status}",
                        kind_name(kind),
                        c.model,
                        c.gpu
                    ),
                },
            ),
        };
        self.deliver(
            p.session,
            ActionResult {
                action_id: p.action,
                status,
                received: p.received,
                sent: Nanos::ZERO,
                outcome,
            },
            p.clock,
        );
    }

    fn clear_part_done(&self, group: u64, failure: Option<String>) {
        let done = {
            let mut clears = self.clears.borrow_mut();
            let Some(g) = clears.get_mut(&group) else {
                return;
            };
            g.failures.extend(failure);
            g.remaining = g.remaining.saturating_sub(1);
            if g.remaining == 0 {
                clears.remove(&group)
            } else {
                None
            }
        };
        if let Some(g) = done {
            self.finish_clear(g);
        }
    }
}

fn instant(t: Nanos) -> Timing {
    Timing {
        begin: t,
        end: t,
        duration: Nanos::ZERO,
    }
}

fn kind_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Load => "load",
        OpKind::Unload => "unload",
        OpKind::Infer => "infer",
    }
}

/// Everything about a device action that can be checked before it reaches a device.
fn check_device_action(
    d: &DeviceSet,
    gpu: GpuId,
    op: &DeviceOp,
    inputs: Result<(), String>,
) -> Result<(), (WorkerStatus, String)> {
    let kind = op.kind();
    if gpu.get() as usize >= d.gpu_count() {
        return Err((
            WorkerStatus::InvalidGpu,
            format!("on {gpu}: no such GPU (this worker has {})", d.gpu_count()),
        ));
    }
    let model = op.model();
    let Some(profile) = d.profile(model) else {
        return Err((
            kind.unknown_model(),
            format!("of {model}: model not registered"),
        ));
    };
    if let DeviceOp::Infer { batch_size, .. } = *op {
        if batch_size == 0 || profile.padded_batch(batch_size).is_none() {
            return Err((
                WorkerStatus::InvalidBatchSize,
                format!(
                    "of {model}: batch size {batch_size} not in 1..={}",
                    profile.max_batch()
                ),
            ));
        }
        if let Err(m) = inputs {
            return Err((WorkerStatus::InvalidInput, format!("of {model}: {m}")));
        }
    }
    Ok(())
}

/// Read the actions of one frame into owned form (inputs are checked, not copied).
fn parse(msg: &ArchivedToWorker, out: &mut Vec<Parsed>) {
    let ArchivedToWorker::Actions(actions) = msg;
    for a in actions.iter() {
        let op = match &a.kind {
            ArchivedActionKind::RegisterModel { model, profile } => ParsedOp::Register {
                model: model.to_native(),
                profile: rkyv::deserialize::<ModelProfile, rkyv::rancor::Error>(profile)
                    .map_err(|e| format!("unreadable profile: {e}")),
            },
            ArchivedActionKind::LoadWeights { model, gpu, .. } => ParsedOp::Device {
                gpu: gpu.to_native(),
                op: DeviceOp::Load {
                    model: model.to_native(),
                },
                inputs: Ok(()),
            },
            ArchivedActionKind::Unload { model, gpu } => ParsedOp::Device {
                gpu: gpu.to_native(),
                op: DeviceOp::Unload {
                    model: model.to_native(),
                },
                inputs: Ok(()),
            },
            ArchivedActionKind::Infer {
                model,
                gpu,
                batch_size,
                input_sizes,
                inputs,
                ..
            } => {
                let batch_size = batch_size.to_native();
                let total: u64 = input_sizes.iter().map(|s| u64::from(s.to_native())).sum();
                let inputs = if input_sizes.is_empty() && !inputs.is_empty() {
                    Err(format!("{} input bytes but no input_sizes", inputs.len()))
                } else if !input_sizes.is_empty()
                    && input_sizes.len() as u64 != u64::from(batch_size)
                {
                    Err(format!(
                        "{} input sizes for a batch of {batch_size}",
                        input_sizes.len()
                    ))
                } else if total != inputs.len() as u64 {
                    Err(format!(
                        "input sizes sum to {total} bytes but {} input bytes were sent",
                        inputs.len()
                    ))
                } else {
                    Ok(())
                };
                ParsedOp::Device {
                    gpu: gpu.to_native(),
                    op: DeviceOp::infer(model.to_native(), batch_size),
                    inputs,
                }
            }
            ArchivedActionKind::GetState => ParsedOp::GetState,
            ArchivedActionKind::ClearCache => ParsedOp::ClearCache,
        };
        out.push(Parsed {
            id: a.id.to_native(),
            window: a.window.to_native(),
            op,
        });
    }
}

/// Receive action frames until the connection ends.
async fn reader_loop(shared: Rc<Shared>, link: Rc<Link>, mut reader: FrameReader<TcpStream>) {
    let mut batch = Vec::new();
    let mut warned_no_offset = false;
    loop {
        let received_local = match reader.recv_msg::<ToWorker>().await {
            Ok(msg) => {
                let at = MonotonicClock::read();
                parse(msg, &mut batch);
                at
            }
            Err(e) => {
                if e.is_disconnect() {
                    tracing::debug!(controller = %link.peer, error = %e, "connection ended");
                } else {
                    tracing::warn!(controller = %link.peer, error = %e, "closing the controller connection");
                }
                break;
            }
        };
        let clock = match reader.clock().offset_ns() {
            Some(off) => ClockMap::new(off),
            None => {
                if !warned_no_offset {
                    warned_no_offset = true;
                    tracing::debug!(
                        controller = %link.peer,
                        "no clock offset estimate yet; using 0 (same clock) for now"
                    );
                }
                ClockMap::IDENTITY
            }
        };
        for p in batch.drain(..) {
            shared.dispatch(&link, clock, received_local, p);
        }
    }
    shared.end_session(link.session);
}

/// Send results in the order they are queued; `sent` is stamped just before each send.
async fn writer_loop(
    rx: LocalReceiver<Outgoing>,
    mut writer: FrameWriter<TcpStream>,
    peer: String,
) {
    while let Some(Outgoing { mut result, clock }) = rx.recv().await {
        result.sent = clock.to_controller(MonotonicClock::read());
        if let Err(e) = writer.send(&FromWorker::Result(result)).await {
            tracing::debug!(controller = %peer, error = %e, "result not sent; connection lost");
            return;
        }
    }
}

/// Turn device completions into results until every engine has stopped.
async fn completions_loop(shared: Rc<Shared>, mut completions: Completions) {
    while let Some(c) = completions.next().await {
        shared.complete(&c);
    }
}
