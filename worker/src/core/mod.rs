//! The worker's sans-IO core: everything the worker decides, with no sockets, tasks or
//! clocks of its own, so it is tested by driving it with events.
//!
//! **Events in** (each a method call): a controller connected ([`WorkerCore::connect`])
//! or disconnected ([`WorkerCore::disconnect`]), a message arrived on a session with the
//! local time it arrived and the link's clock-offset estimate ([`WorkerCore::message`]),
//! a device completion arrived ([`WorkerCore::completion`]), the worker stops
//! ([`WorkerCore::shutdown`]). **Outputs out**, drained by the shell with
//! [`WorkerCore::next_output`]: send this result on session S, close session S. Device
//! actions go to the devices through the small [`Devices`] trait, whose answers (accepted
//! or refused at once) the core needs synchronously to give every action exactly one
//! result.
//!
//! The parts, one file each: [`session`] (one controller at a time, an admitted one
//! replaces the old, a session's clock map), [`decode`] (the archived message read in place and
//! each action's wire-level checks, once), [`devices`] (the trait and its implementation
//! by `DeviceSet`), [`clear`] (CLEAR CACHE), [`answer`] (device completion → result).
//!
//! # Who checks what (each check in one place)
//!
//! | check | owner | status |
//! |---|---|---|
//! | window of REGISTER / GET STATE / CLEAR CACHE | [`decode`] | 12 |
//! | profile readable | [`decode`] | 12 |
//! | INFER `input_sizes` against `inputs` and `batch_size` | [`decode`] | 30 |
//! | profile valid, model id not re-registered differently | `DeviceSet::register_model` | 12, 10 |
//! | GPU id | `DeviceSet::submit` | 13 |
//! | window of LOAD / UNLOAD / INFER (in the local clock) | the device | 12 |
//! | model registered, batch size | the device | 10/52/62, 31 |
//!
//! The core sizes an INFER's output buffer from the model's profile; the device decides
//! whether the batch is valid, so for a batch it will refuse the size is only bounded.
//! One check is the core's own: a batch whose outputs would not fit in a result frame
//! of the link is refused with 31 before anything is allocated (its result could not be
//! sent).

pub(crate) mod answer;
pub(crate) mod buffers;
pub(crate) mod clear;
pub(crate) mod decode;
pub(crate) mod devices;
pub(crate) mod session;
#[cfg(test)]
mod tests;

use crate::clock::ClockMap;
use crate::measure::MeasureError;
use buffers::BufferPool;
use clear::ClearGroups;
use clockwork_core::action::ArchivedAction;
use clockwork_core::model::MeasuredTimes;
use clockwork_core::wire::ArchivedToWorker;
use clockwork_core::{
    ActionId, ActionResult, GpuId, ModelId, ModelProfile, Nanos, Outcome, RegisteredModel, Window,
    WorkerState, WorkerStatus,
};
use clockwork_gpu::{DeviceAction, DeviceOp, GpuError};
use decode::{DeviceRequest, Refusal, Request};
pub(crate) use devices::Devices;
pub(crate) use session::SessionId;
use session::Sessions;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// What the shell must do.
#[derive(Debug, PartialEq)]
pub(crate) enum Output {
    /// Send `result` on `session`. `result.sent` is left 0: the shell stamps it just
    /// before sending, in the controller's clock through `clock`.
    Send {
        /// The controller connection.
        session: SessionId,
        /// The result.
        result: ActionResult,
        /// The clock map the result's times use.
        clock: ClockMap,
    },
    /// Close `session`'s connection and send nothing more on it (it was replaced, or
    /// the worker is stopping).
    Close {
        /// The controller connection.
        session: SessionId,
    },
    /// Measure this real model (on the registration thread) and hand the result to
    /// [`WorkerCore::measured`] with `tag`.
    Measure {
        /// Which REGISTER waits for it.
        tag: u64,
        /// The model's profile as registered.
        profile: ModelProfile,
    },
}

/// Who gets an action's result: the session it came on, with its id, its arrival time
/// in the controller's clock, and the clock map of its session at arrival.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    pub(crate) session: SessionId,
    pub(crate) action: ActionId,
    pub(crate) received: Nanos,
    pub(crate) clock: ClockMap,
}

/// A device action in flight, by its worker-internal tag.
#[derive(Debug)]
struct Pending {
    reply: Reply,
    /// For a LOAD: where it loads and its local `earliest` (CLEAR CACHE unloads these
    /// too, after they start).
    load_target: Option<LoadTarget>,
    /// Part of a CLEAR CACHE rather than an action of its own.
    clear_group: Option<u64>,
    /// CLEAR CACHE groups that wait for this LOAD to end (its pages are freed only then).
    awaited_by: Vec<u64>,
}

/// Where a pending LOAD loads, and when it may start (local clock).
#[derive(Debug, Clone, Copy)]
struct LoadTarget {
    gpu: GpuId,
    model: ModelId,
    earliest: Nanos,
}

/// Room in a result frame for everything but the outputs (ids, status, timings, the
/// archive's own layout): far more than they take.
const RESULT_HEADROOM: usize = 4096;

/// Room an entry of the registered models' list takes in a state result beyond its
/// profile's own archive (id, count, the archive's layout): more than it needs.
const ENTRY_HEADROOM: usize = 64;

/// Keeps the first entries of `models` whose archives fit `budget` bytes together,
/// so that the state result fits one frame of the link; how many models (ids) it
/// left out. A model left out is registered again by the controller (identical
/// re-registration is allowed), so the list may be short but never wrong. Runs of
/// copies take one entry each, so only thousands of distinct profiles come near it.
fn keep_within(models: &mut Vec<RegisteredModel>, budget: usize) -> u64 {
    let mut used = 0usize;
    let mut keep = models.len();
    for (i, m) in models.iter().enumerate() {
        let size = rkyv::to_bytes::<rkyv::rancor::Error>(&m.profile)
            .map_or(usize::MAX, |b| b.len())
            .saturating_add(ENTRY_HEADROOM);
        used = used.saturating_add(size);
        if used > budget {
            keep = i;
            break;
        }
    }
    models
        .drain(keep..)
        .map(|m| u64::from(m.count))
        .sum::<u64>()
}

/// The worker's state and logic. `D` is the devices (`DeviceSet`; a fake in tests).
#[derive(Debug)]
pub(crate) struct WorkerCore<D> {
    /// `None` once shutting down.
    devices: Option<D>,
    /// The most output bytes one result may carry: what a frame of the link holds.
    max_outputs: usize,
    sessions: Sessions,
    /// Device actions in flight, by tag (each is handed to a device as `ActionId(tag)`,
    /// so completions match whatever ids the controllers chose).
    pending: HashMap<u64, Pending>,
    clears: ClearGroups,
    next_tag: u64,
    outputs: VecDeque<Output>,
    /// REGISTERs of real models waiting for their measurement, by tag.
    measuring: HashMap<u64, (Reply, ModelId, u32, ModelProfile)>,
    /// What registration measured, per model (answered again on re-registration).
    measured: HashMap<ModelId, MeasuredTimes>,
    /// INFER input and output buffers for reuse, shared with the result writers.
    buffers: Rc<BufferPool>,
}

impl<D: Devices> WorkerCore<D> {
    /// A core driving `devices`, with no controller yet, sending results in frames of
    /// at most `max_frame` bytes.
    pub(crate) fn new(devices: D, max_frame: usize) -> Self {
        Self {
            devices: Some(devices),
            max_outputs: max_frame.saturating_sub(RESULT_HEADROOM),
            sessions: Sessions::default(),
            pending: HashMap::new(),
            clears: ClearGroups::default(),
            next_tag: 1,
            outputs: VecDeque::new(),
            measuring: HashMap::new(),
            measured: HashMap::new(),
            buffers: Rc::default(),
        }
    }

    /// The pool INFER buffers come from: a result's outputs go back to it once sent.
    pub(crate) fn buffers(&self) -> Rc<BufferPool> {
        Rc::clone(&self.buffers)
    }

    /// The next thing for the shell to do, in order.
    pub(crate) fn next_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A controller (`peer`) was admitted: it becomes the session, replacing (closing)
    /// the connected one, whose in-flight results are dropped from now on.
    pub(crate) fn connect(&mut self, peer: &str) -> SessionId {
        let (session, replaced) = self.sessions.open(peer);
        if let Some(old) = replaced {
            self.outputs.push_back(Output::Close { session: old });
        }
        session
    }

    /// Actions handed to a device or to the registration thread whose results are not
    /// out yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len() + self.measuring.len()
    }

    /// `session`'s connection ended. Its in-flight actions run on; their results are
    /// dropped. Device state survives.
    pub(crate) fn disconnect(&mut self, session: SessionId) {
        self.sessions.end(session);
    }

    /// Stop: close the session and hand the devices back (dropping them stops the
    /// engines, whose cancellations then arrive as completions and are dropped). Later
    /// actions are answered `ShuttingDown`.
    pub(crate) fn shutdown(&mut self) -> Option<D> {
        if let Some(session) = self.sessions.close_current() {
            self.outputs.push_back(Output::Close { session });
        }
        self.devices.take()
    }

    /// A message arrived on `session` at local time `now`; `offset_ns` is the link's
    /// `local − controller` estimate, if it has one. Every action in it is answered
    /// exactly once, now or when its device completes. Messages of a session that is no
    /// longer current are ignored: nothing could be sent back on it.
    pub(crate) fn message(
        &mut self,
        session: SessionId,
        now: Nanos,
        offset_ns: Option<i64>,
        msg: &ArchivedToWorker,
    ) {
        let Some(clock) = self.sessions.clock(session, offset_ns) else {
            tracing::debug!(?session, "message of a closed session ignored");
            return;
        };
        let received = clock.to_controller(now);
        let actions = match msg {
            ArchivedToWorker::Actions(actions) => actions,
            // Liveness only: the shell already noted that the controller spoke.
            ArchivedToWorker::Heartbeat => return,
        };
        for a in actions.iter() {
            let reply = Reply {
                session,
                action: a.id.to_native(),
                received,
                clock,
            };
            self.action(reply, a);
        }
    }

    fn action(&mut self, reply: Reply, a: &ArchivedAction) {
        let request = match decode::decode(a) {
            Ok(r) => r,
            Err(Refusal { status, message }) => return self.fail(reply, status, message),
        };
        if self.devices.is_none() {
            return self.fail(
                reply,
                WorkerStatus::ShuttingDown,
                "worker is shutting down".into(),
            );
        }
        match request {
            Request::Register {
                model,
                count,
                profile,
            } => self.register(reply, model, count, profile),
            Request::GetState => self.get_state(reply),
            Request::ClearCache => self.clear_cache(reply),
            Request::Device {
                gpu,
                window,
                request,
            } => self.submit(reply, gpu, window, request),
        }
    }

    /// REGISTER of `count` instances from `model`. On devices that compute, a real
    /// model not yet registered is measured first, once for all its instances (off
    /// this thread, see `measure.rs`), and answered in [`Self::measured`].
    fn register(&mut self, reply: Reply, model: ModelId, count: u32, profile: ModelProfile) {
        let Some(devices) = self.devices.as_mut() else {
            return;
        };
        if devices.computes() && profile.is_real() && devices.profile(model).is_none() {
            if let Err(e) = profile.validate() {
                return self.fail(
                    reply,
                    WorkerStatus::InvalidAction,
                    format!("register {model}: invalid profile: {e}"),
                );
            }
            let tag = self.tag();
            self.measuring
                .insert(tag, (reply, model, count, profile.clone()));
            self.outputs.push_back(Output::Measure { tag, profile });
            return;
        }
        let measured = self.measured.get(&model).cloned();
        self.register_on_devices(reply, model, count, profile, measured);
    }

    /// The registration thread measured the model of REGISTER `tag`.
    pub(crate) fn measured(&mut self, tag: u64, result: Result<MeasuredTimes, MeasureError>) {
        let Some((reply, model, count, profile)) = self.measuring.remove(&tag) else {
            tracing::debug!(tag, "measurement of an unknown registration ignored");
            return;
        };
        if self.devices.is_none() {
            return self.fail(
                reply,
                WorkerStatus::ShuttingDown,
                "worker is shutting down".into(),
            );
        }
        match result {
            Ok(times) => self.register_on_devices(reply, model, count, profile, Some(times)),
            Err(MeasureError { status, message }) => {
                self.fail(reply, status, format!("register {model}: {message}"));
            }
        }
    }

    /// Registers every instance of the range, also past one that fails (so that the
    /// controller, which narrows a failed range down, finds the others registered),
    /// and answers once: success, or the first failure with how many failed.
    fn register_on_devices(
        &mut self,
        reply: Reply,
        model: ModelId,
        count: u32,
        profile: ModelProfile,
        measured: Option<MeasuredTimes>,
    ) {
        let Some(devices) = self.devices.as_mut() else {
            return;
        };
        let mut pages = 0;
        let mut failed: Option<(GpuError, ModelId)> = None;
        let mut failures = 0u32;
        // The decoder checked that the range fits the id space.
        for id in (model.0..=model.0 + (count - 1)).map(ModelId) {
            match devices.register_model(id, profile.clone()) {
                Ok(p) => {
                    pages = p;
                    if let Some(times) = &measured {
                        self.measured.insert(id, times.clone());
                    }
                }
                Err(e) => {
                    failures += 1;
                    if matches!(e, GpuError::Stopped) {
                        failed = Some((e, id));
                        break;
                    }
                    failed.get_or_insert((e, id));
                }
            }
        }
        let Some((e, id)) = failed else {
            return self.answer(
                reply,
                WorkerStatus::Success,
                Outcome::Registered {
                    model,
                    pages,
                    measured,
                },
            );
        };
        let status = match &e {
            GpuError::ModelConflict(_) => WorkerStatus::InvalidModelId,
            GpuError::InvalidProfile { .. } | GpuError::EmulatedModelOnCpu(_) => {
                WorkerStatus::InvalidAction
            }
            GpuError::Stopped => WorkerStatus::ShuttingDown,
            _ => WorkerStatus::RuntimeError,
        };
        let message = if count == 1 {
            format!("register {id}: {e}")
        } else {
            format!(
                "register {model} and {} more: {failures} failed; {id}: {e}",
                count - 1
            )
        };
        self.fail(reply, status, message);
    }

    fn get_state(&mut self, reply: Reply) {
        let Some(devices) = self.devices.as_ref() else {
            return;
        };
        let gpus = devices.state();
        // What the GPUs' entries take (names, resident models), from the same budget.
        let gpu_bytes: usize = gpus
            .iter()
            .map(|g| 256 + g.name.len() + 4 * g.loaded.len())
            .sum();
        let mut models = devices.registered();
        let left_out = keep_within(&mut models, self.max_outputs.saturating_sub(gpu_bytes));
        if left_out > 0 {
            tracing::warn!(
                left_out,
                "the registered models' list does not fit one frame of the link; the state \
                 leaves the last ones out, and the controller registers them again"
            );
        }
        let state = WorkerState {
            page_size: devices.page_size(),
            gpus,
            models,
        };
        self.answer(reply, WorkerStatus::Success, Outcome::State(state));
    }

    /// Hand a LOAD, UNLOAD or INFER to its device, its window in the local clock.
    fn submit(&mut self, reply: Reply, gpu: GpuId, window: Window, request: DeviceRequest<'_>) {
        let tag = self.tag();
        let Some(devices) = self.devices.as_mut() else {
            return;
        };
        let op = match request {
            DeviceRequest::Load { model } => DeviceOp::Load { model },
            DeviceRequest::Unload { model } => DeviceOp::Unload { model },
            DeviceRequest::Infer {
                model,
                batch_size,
                input,
            } => {
                let len = output_len(devices.profile(model), batch_size);
                if len > self.max_outputs {
                    // The result could not be sent: the link refuses frames that big.
                    return self.fail(
                        reply,
                        WorkerStatus::InvalidBatchSize,
                        format!(
                            "infer of {model}: a batch of {batch_size} has {len} output \
                             bytes, more than a result may carry ({})",
                            self.max_outputs
                        ),
                    );
                }
                DeviceOp::Infer {
                    model,
                    batch_size,
                    input: self.buffers.copy_of(input),
                    output: self.buffers.zeroed(len),
                }
            }
        };
        let (kind, model) = (op.kind(), op.model());
        let window = reply.clock.window_to_local(window);
        let load_target = matches!(op, DeviceOp::Load { .. }).then_some(LoadTarget {
            gpu,
            model,
            earliest: window.earliest,
        });
        let action = DeviceAction {
            action: ActionId(tag),
            gpu,
            window,
            op,
        };
        match devices.submit(action) {
            Ok(()) => {
                self.pending.insert(
                    tag,
                    Pending {
                        reply,
                        load_target,
                        clear_group: None,
                        awaited_by: Vec::new(),
                    },
                );
            }
            Err(e) => self.fail(
                reply,
                e.status(),
                format!("{} of {model} on {gpu}: {e}", kind.name()),
            ),
        }
    }

    fn tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag += 1;
        t
    }

    /// Queue `reply`'s result, if its session is still the current one.
    fn answer(&mut self, reply: Reply, status: WorkerStatus, outcome: Outcome) {
        if !self.sessions.is_current(reply.session) {
            tracing::debug!(action = %reply.action, "result of a closed session's action dropped");
            return;
        }
        self.outputs.push_back(Output::Send {
            session: reply.session,
            result: ActionResult {
                action_id: reply.action,
                status,
                received: reply.received,
                sent: Nanos::ZERO,
                outcome,
            },
            clock: reply.clock,
        });
    }

    fn fail(&mut self, reply: Reply, status: WorkerStatus, message: String) {
        tracing::debug!(action = %reply.action, %status, %message, "action failed");
        self.answer(reply, status, Outcome::Error { message });
    }
}

/// The output buffer of an INFER: one `output_bytes` slice per request. No profile (the
/// device refuses the model) means no buffer; a batch larger than the profile allows
/// (the device refuses it too) is bounded by the largest it allows, so a hostile
/// `batch_size` cannot make the worker allocate without limit.
fn output_len(profile: Option<&ModelProfile>, batch_size: u32) -> usize {
    profile.map_or(0, |p| {
        p.output_bytes as usize * batch_size.min(p.max_batch()) as usize
    })
}
