//! The scheduler: a sans-IO state machine (quinn style).
//!
//! Inputs are method calls that each take `now` (controller clock): a worker joined
//! or was lost, models were registered, a request arrived ([`Scheduler::request`]), a
//! worker result arrived ([`Scheduler::handle_result`]), a timer fired
//! ([`Scheduler::handle_timeout`]). Outputs are drained with
//! [`Scheduler::poll_output`] and carry everything the driver needs (an
//! [`Output::Send`] lists each INFER's batch members); [`Scheduler::next_deadline`]
//! says when to call `handle_timeout` next. Nothing here reads a clock, touches a
//! socket or spawns.
//!
//! The work is split by concern:
//! - `requests`: admission, queueing, expiry;
//! - `dispatch`: INFER batching and placement on GPU timelines;
//! - `loads`: LOAD/UNLOAD decisions (load tracker, eviction, page accounting);
//! - `results`: worker results (timelines, estimators, answers);
//! - `workers`: joins, losses, registration, resyncs.
//!
//! Cost model: per request, O(1) queue and timer work plus O(replicas · log) heap
//! pushes; per batch, one arena insert and one action. No step scans all models or all
//! GPUs except worker joins/losses and registration, which are rare.

mod dispatch;
mod loads;
mod requests;
mod results;
mod workers;

use crate::admission::Deadlines;
use crate::ahead::{exec_ahead, TightestSlo, MAX_SLACK, MIN_SLACK};
use crate::arena::{Arena, Key};
use crate::config::Config;
use crate::error::ConfigError;
use crate::gpu_state::{BitSet, GpuSlot, Lane, WorkerIndex, WorkerSlot};
use crate::load_tracker::{LoadCandidate, ReadySet};
use crate::margins::MeasuredMargin;
use crate::model_state::ModelState;
use crate::output::{BatchMember, ClientKey, InputRef, Output};
use crate::stats::Stats;
use crate::telemetry::{LogRecord, RequestLog};
use crate::timer::TimerQueue;
use clockwork_core::rng::Rng;
use clockwork_core::{
    Action, ActionId, ClientStatus, GpuId, InferResponse, ModelId, ModelInfo, ModelProfile, Nanos,
    RequestId, WorkerId,
};
use std::borrow::Cow;
use std::collections::{BinaryHeap, VecDeque};

/// A contiguous range of model ids, as allocated by [`Scheduler::register_models`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRange {
    /// The first id.
    pub first: ModelId,
    /// How many.
    pub count: u32,
}

impl ModelRange {
    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = ModelId> {
        (self.first.0..self.first.0 + self.count).map(ModelId)
    }

    /// Whether `m` is in the range.
    pub fn contains(&self, m: ModelId) -> bool {
        m.0 >= self.first.0 && m.0 - self.first.0 < self.count
    }

    /// The range and the next id, extended by one if that is `m`.
    fn extended_to(self, m: ModelId) -> Option<Self> {
        (self.first.0.checked_add(self.count) == Some(m.0)).then_some(Self {
            count: self.count + 1,
            ..self
        })
    }

    /// Its two halves (the first one the shorter; empty for a range of one).
    fn halves(self) -> (Self, Self) {
        let half = self.count / 2;
        let first = Self {
            first: self.first,
            count: half,
        };
        let second = Self {
            first: ModelId(self.first.0 + half),
            count: self.count - half,
        };
        (first, second)
    }
}

/// One admitted inference request.
#[derive(Debug)]
struct Request {
    client: ClientKey,
    id: RequestId,
    model: ModelId,
    arrival: Nanos,
    d: Deadlines,
    /// Batch-1 estimate at admission: its weight in the load tracker.
    work: u64,
    input: InputRef,
    cold: bool,
    /// Part of an INFER sent and not yet answered.
    in_flight: bool,
    /// The GPU whose admission record ([`crate::doubt`]) its outcome feeds: the one
    /// ready replica of its model at admission (`None` with none or several).
    doubt_gpu: Option<u32>,
}

/// One answer to a client, before it becomes an [`Output::Respond`].
#[derive(Debug)]
struct Answer {
    client: ClientKey,
    input: InputRef,
    id: RequestId,
    model: ModelId,
    status: ClientStatus,
    batch_size: u32,
    arrival: Nanos,
    output: Vec<u8>,
    /// Replaces the status's standard message.
    message: Option<Cow<'static, str>>,
}

/// An INFER sent and not yet answered.
#[derive(Debug)]
struct InferRecord {
    model: ModelId,
    gpu: u32,
    /// Its requests, earliest deadline first (keys go stale as they are answered).
    members: Vec<Key>,
    /// Input bytes it carries.
    bytes: u64,
    expected: Nanos,
    expected_end: Nanos,
    /// Members answered `Timeout` at their deadline while the INFER was in flight.
    late_answered: u32,
}

/// The two timers a model with queued requests can have armed.
#[derive(Debug, Clone, Copy)]
enum ModelTimer {
    /// Its front's last feasible start ([`Scheduler::expiry_point`]).
    Expiry,
    /// Its front's rescue point ([`Scheduler::rescue_point`]).
    Rescue,
}

#[derive(Debug)]
enum InFlightKind {
    Infer(InferRecord),
    Load {
        model: ModelId,
        gpu: u32,
        expected: Nanos,
        expected_end: Nanos,
    },
    Unload {
        model: ModelId,
        gpu: u32,
    },
    /// Instances with consecutive ids, in one action.
    Register(ModelRange),
    GetState,
}

/// An action sent and not yet answered.
#[derive(Debug)]
struct InFlight {
    worker: u32,
    sent: Nanos,
    kind: InFlightKind,
}

/// The Clockwork scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    cfg: Config,
    models: Vec<ModelState>,
    /// Retired (unloaded by an operator) model ids: refused as unknown, weights freed.
    retired: BitSet,
    gpus: Vec<GpuSlot>,
    workers: Vec<WorkerSlot>,
    worker_index: WorkerIndex,
    live_gpus: u32,
    /// Largest page count of any live GPU: models bigger than this cannot be served.
    max_pages: u32,
    requests: Arena<Request>,
    actions: Arena<InFlight>,
    /// Expiry of each model's queue front (see [`crate::admission`]).
    model_timers: TimerQueue<u32>,
    /// Rescue checks of each model's queue front (a replica elsewhere, in time).
    rescue_timers: TimerQueue<u32>,
    gpu_timers: TimerQueue<(u32, Lane)>,
    /// Emptied member lists of retired INFERs, reused for new batches.
    member_pool: Vec<Vec<Key>>,
    load_heap: BinaryHeap<LoadCandidate>,
    load_ready: ReadySet,
    loads_dirty: bool,
    /// Planning is retried then (candidates were deferred).
    load_retry_at: Option<Nanos>,
    outputs: VecDeque<Output>,
    dirty_workers: Vec<u32>,
    logs: VecDeque<LogRecord>,
    stats: Stats,
    rng: Rng,
    /// The completion buffer's return-trip part, measured from results' return delays.
    buffer: MeasuredMargin,
    /// The completion buffer's plan-overrun part: how much later than planned INFERs
    /// ended (the p99 of recent ones, [`MeasuredMargin::unpadded`]; `crate::margins`).
    overrun: MeasuredMargin,
    /// The lead time (`future`), measured from actions' send delays.
    lead: MeasuredMargin,
    /// Transfer cost per MiB of an INFER's inputs beyond the lead time, measured from
    /// the INFERs of at least [`crate::margins::BIG_ACTION_BYTES`].
    transfer: MeasuredMargin,
    /// The EXEC slack: how late the EXEC wake-ups ran against the time they asked for
    /// ([`crate::ahead`]).
    reaction: MeasuredMargin,
    /// A request was refused `Rejected` since the last INFER or LOAD result: the
    /// margins may be what stops results ([`MeasuredMargin::thaw`]).
    rejected_since_result: bool,
    /// GPUs that got dispatch-heap entries during this call with no EXEC wake armed
    /// ([`Scheduler::arm_exec_where_pushed`]).
    exec_unarmed: Vec<u32>,
    /// The tightest SLO admitted recently (sets the EXEC schedule-ahead).
    tightest: TightestSlo,
    /// Reused space of rollouts ([`crate::rollout`]); in a cell because admission tests
    /// borrow the scheduler immutably.
    rollout: std::cell::RefCell<RolloutScratch>,
}

/// Space a dispatch rollout reuses: candidate models (urgency, id), their live
/// targets and estimates, one span of each per model, and positions.
#[derive(Debug, Default)]
struct RolloutScratch {
    models: Vec<(Nanos, u32)>,
    targets: Vec<Nanos>,
    est: Vec<Nanos>,
    spans: Vec<(usize, usize, usize, usize)>,
    from: Vec<usize>,
}

impl Scheduler {
    /// A scheduler with no workers and no models.
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            rng: Rng::new(cfg.seed),
            buffer: MeasuredMargin::new(cfg.min_buffer, cfg.buffer),
            overrun: MeasuredMargin::unpadded(cfg.buffer),
            lead: MeasuredMargin::new(cfg.min_future, cfg.future),
            transfer: {
                let mut t = MeasuredMargin::unpadded_between(
                    crate::margins::TRANSFER_MIN_PER_MIB,
                    crate::margins::TRANSFER_MAX_PER_MIB,
                );
                t.seed(crate::margins::TRANSFER_SEED_PER_MIB);
                t
            },
            reaction: MeasuredMargin::unpadded_between(MIN_SLACK, MAX_SLACK),
            rejected_since_result: false,
            exec_unarmed: Vec::new(),
            tightest: TightestSlo::default(),
            rollout: std::cell::RefCell::default(),
            cfg,
            models: Vec::new(),
            retired: BitSet::default(),
            gpus: Vec::new(),
            workers: Vec::new(),
            worker_index: WorkerIndex::default(),
            live_gpus: 0,
            max_pages: 0,
            requests: Arena::new(),
            actions: Arena::new(),
            model_timers: TimerQueue::new(),
            rescue_timers: TimerQueue::new(),
            member_pool: Vec::new(),
            gpu_timers: TimerQueue::new(),
            load_heap: BinaryHeap::new(),
            load_ready: ReadySet::default(),
            loads_dirty: false,
            load_retry_at: None,
            outputs: VecDeque::new(),
            dirty_workers: Vec::new(),
            logs: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &Config {
        &self.cfg
    }

    /// The completion buffer new requests get now ([`crate::margins`]): the return
    /// trip plus the plan's overrun, at most `Config::buffer`.
    pub fn completion_buffer(&self) -> Nanos {
        (self.buffer.get() + self.overrun.get()).min(self.cfg.buffer)
    }

    /// The lead time now: nothing is planned to start sooner after it is sent
    /// ([`crate::margins`]).
    pub const fn lead_time(&self) -> Nanos {
        self.lead.get()
    }

    /// The EXEC slack now: the measured reaction delay of the scheduler's EXEC
    /// wake-ups, within its bounds ([`crate::ahead`]).
    pub const fn exec_slack(&self) -> Nanos {
        self.reaction.get()
    }

    /// How far ahead GPUs' EXEC timelines are filled now ([`crate::ahead`]).
    pub fn exec_schedule_ahead(&self) -> Nanos {
        exec_ahead(
            self.tightest.get(),
            self.lead.get(),
            self.cfg.schedule_ahead,
            self.exec_slack(),
        )
    }

    /// The tightest SLO of recent requests (the last one to two buckets of
    /// [`crate::ahead::TightestSlo`]), or the default SLO before any request: what a
    /// driver may let a stall of its own cost a fraction of.
    pub fn tightest_slo(&self) -> Nanos {
        self.tightest.get().unwrap_or(self.cfg.default_slo)
    }

    /// The driver measured the round trip of a worker's link (at its handshake, or
    /// later): until results say more, the completion buffer and the lead time cover
    /// half of it each ([`crate::margins`]). Never lowers a margin.
    pub fn link_measured(&mut self, worker: WorkerId, rtt: Nanos) {
        let _ = worker;
        let one_way = Nanos(rtt.get() / 2);
        self.buffer.seed(one_way);
        self.lead.seed(one_way);
    }

    /// Counters since start.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next output, if any. Drain after every input call.
    #[must_use = "every output must be acted on: a dropped Respond leaves a client unanswered"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next telemetry record, if [`Config::telemetry`] is on.
    #[must_use = "drained records are gone: write them or drop them on purpose"]
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        self.logs.pop_front()
    }

    /// When [`Scheduler::handle_timeout`] must next be called (it may be called
    /// earlier; it then does nothing that is not due).
    #[must_use]
    pub fn next_deadline(&self) -> Option<Nanos> {
        [
            self.model_timers.next_time(),
            self.rescue_timers.next_time(),
            self.gpu_timers.next_time(),
            self.load_retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs everything due at `now`: requests whose last feasible start passed are
    /// answered `Timeout`; in-flight requests past their deadline are answered
    /// `Timeout`; GPUs whose timeline has room again get work; LOADs are planned.
    pub fn handle_timeout(&mut self, now: Nanos) {
        self.age_margins(now);
        while let Some((at, mi)) = self.model_timers.pop_due(now) {
            self.expire_front(mi as usize, at, now);
        }
        while let Some((at, mi)) = self.rescue_timers.pop_due(now) {
            self.rescue_front(mi as usize, at, now);
        }
        while let Some((at, (g, lane))) = self.gpu_timers.pop_due(now) {
            let gpu = &mut self.gpus[g as usize];
            match lane {
                Lane::Exec if gpu.exec_wake == Some(at) => {
                    gpu.exec_wake = None;
                    // How late the driver ran this wake-up: the slack the next ones get.
                    self.reaction.record(now - at, now);
                    self.dispatch_gpu(g, now);
                }
                Lane::Pcie if gpu.pcie_wake == Some(at) => {
                    gpu.pcie_wake = None;
                    self.update_load_ready(g, now);
                }
                Lane::Deadline if gpu.deadline_wake == Some(at) => {
                    gpu.deadline_wake = None;
                    self.in_flight_deadlines(g, now);
                }
                _ => {}
            }
        }
        if self.load_retry_at.is_some_and(|t| t <= now) {
            self.load_retry_at = None;
            self.loads_dirty = true;
        }
        self.schedule_loads(now);
        self.flush(now);
    }

    /// Number of registered models (ids are `0..n`).
    pub fn model_count(&self) -> u32 {
        // Registration refuses to go past u32::MAX models.
        self.models.len() as u32
    }

    /// A model's profile.
    pub fn model_profile(&self, model: ModelId) -> Option<&ModelProfile> {
        self.models.get(model.0 as usize).map(|m| m.profile())
    }

    /// Every registered model that is not retired, as listed to clients.
    pub fn model_infos(&self) -> impl Iterator<Item = ModelInfo> + '_ {
        self.models
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.retired.contains(i as u32))
            .map(|(i, m)| ModelInfo {
                // Indices are below model_count, a u32.
                id: ModelId(i as u32),
                name: m.profile().name.clone(),
                input_bytes: m.profile().input_bytes,
                output_bytes: m.profile().output_bytes,
                max_batch: m.sizes().last().copied().unwrap_or(1),
            })
    }

    /// Live queued requests of a model.
    pub fn queued(&self, model: ModelId) -> u32 {
        self.models.get(model.0 as usize).map_or(0, |m| m.live)
    }

    /// Where a model is: `(worker, gpu, ready)` for each GPU holding or loading it.
    pub fn replicas(&self, model: ModelId) -> Vec<(WorkerId, GpuId, bool)> {
        self.models
            .get(model.0 as usize)
            .map(|m| {
                m.replicas
                    .iter()
                    .map(|r| {
                        let g = &self.gpus[r.gpu as usize];
                        (g.worker_id, g.gpu_id, r.ready)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The controller's view of a GPU's free pages.
    pub fn free_pages(&self, worker: WorkerId, gpu: GpuId) -> Option<u32> {
        let wk = self.worker_index.get(worker)?;
        self.workers[wk as usize]
            .gpus
            .iter()
            .map(|&g| &self.gpus[g as usize])
            .find(|g| g.gpu_id == gpu)
            .map(|g| g.free_pages)
    }

    /// GPUs currently in the plan.
    pub const fn live_gpus(&self) -> u32 {
        self.live_gpus
    }

    /// Requests admitted and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Actions sent and not yet answered.
    pub fn pending_actions(&self) -> usize {
        self.actions.len()
    }

    /// The model and number of requests of the INFER `action`, while it is in flight
    /// (before its result is handled); `None` for other actions and unknown ids.
    pub fn infer_in_flight(&self, action: ActionId) -> Option<(ModelId, u32)> {
        match &self.actions.get(Key::from_u64(action.0))?.kind {
            InFlightKind::Infer(inf) => Some((inf.model, inf.members.len() as u32)),
            _ => None,
        }
    }

    // ---- helpers shared by the submodules ----

    /// Answers an admitted request (removing it) with `status`.
    fn answer(&mut self, key: Key, now: Nanos, status: ClientStatus, batch: u32, output: Vec<u8>) {
        let Some(req) = self.requests.remove(key) else {
            return;
        };
        if let Some(gpu) = req.doubt_gpu.and_then(|g| self.gpus.get_mut(g as usize)) {
            gpu.doubt.record(status == ClientStatus::Success);
        }
        if self.cfg.telemetry {
            self.log_request(now, &req, status);
        }
        let answer = Answer {
            client: req.client,
            input: req.input,
            id: req.id,
            model: req.model,
            status,
            batch_size: batch,
            arrival: req.arrival,
            output,
            message: None,
        };
        self.respond(now, answer);
    }

    /// Emits a response and counts it.
    fn respond(&mut self, now: Nanos, a: Answer) {
        self.stats.answer(a.status);
        let message = a.message.unwrap_or(Cow::Borrowed(match a.status {
            ClientStatus::UnknownModel => "unknown model id",
            ClientStatus::Unavailable => "no GPU can serve this model now",
            ClientStatus::InvalidRequest => "invalid SLO",
            ClientStatus::Rejected => "no plan meets the SLO",
            _ => "",
        }));
        self.outputs.push_back(Output::Respond {
            client: a.client,
            input: a.input,
            response: InferResponse {
                id: a.id,
                model: a.model,
                status: a.status,
                batch_size: a.batch_size,
                controller_latency: now - a.arrival,
                output: a.output,
                message: message.into_owned(),
            },
        });
    }

    fn log_request(&mut self, now: Nanos, req: &Request, status: ClientStatus) {
        self.logs.push_back(LogRecord::Request(RequestLog {
            t: now,
            request_id: req.id.0,
            result: status.code(),
            user_id: req.client.0,
            model_id: req.model.0,
            slo: req.d.slo,
            latency: now - req.arrival,
            deadline: req.d.deadline,
            deadline_met: status.is_success() && now <= req.d.deadline,
            arrival_count: self.stats.offered,
            departure_count: self.stats.answered + 1,
            is_coldstart: req.cold,
        }));
    }

    /// Records an in-flight action and returns its id (the arena key, packed).
    fn track(&mut self, worker: u32, now: Nanos, kind: InFlightKind) -> (Key, ActionId) {
        let key = self.actions.insert(InFlight {
            worker,
            sent: now,
            kind,
        });
        (key, ActionId(key.to_u64()))
    }

    /// Queues an action for a worker; sent at the end of the current input call.
    fn emit(&mut self, worker: u32, action: Action) {
        let w = &mut self.workers[worker as usize];
        if w.pending.is_empty() {
            self.dirty_workers.push(worker);
        }
        w.pending.push(action);
    }

    /// Lists the batch members of the INFER about to be emitted for a worker (the
    /// requests behind `members`, in order; all are live, since a batch is formed
    /// from live requests). Call right before that INFER's [`Scheduler::emit`].
    fn list_batch_members(&mut self, worker: u32, members: &[Key]) {
        let requests = &self.requests;
        let listed = members
            .iter()
            .filter_map(|&k| requests.get(k))
            .map(|r| BatchMember {
                client: r.client,
                id: r.id,
                input: r.input,
            });
        self.workers[worker as usize].pending_members.extend(listed);
    }

    /// Arms the EXEC wakes that the work queued during this call needs, drops the
    /// timers that would fire for nothing, and turns the actions queued during this
    /// call into one `Send` per worker.
    fn flush(&mut self, now: Nanos) {
        self.arm_exec_where_pushed(now);
        self.prune_timers();
        for wk in self.dirty_workers.drain(..) {
            let w = &mut self.workers[wk as usize];
            if w.pending.is_empty() || !w.alive {
                w.pending.clear();
                w.pending_members.clear();
                continue;
            }
            let actions = std::mem::take(&mut w.pending);
            let members = std::mem::take(&mut w.pending_members);
            self.outputs.push_back(Output::Send {
                worker: w.id,
                actions,
                members,
            });
        }
    }

    /// GPUs that got dispatch-heap entries during this call with no EXEC wake armed:
    /// one without room arms it for when it will have some. (A GPU with nothing
    /// queued keeps no EXEC wake: [`Scheduler::prune_timers`]. One with room was
    /// dispatched by the caller.)
    fn arm_exec_where_pushed(&mut self, now: Nanos) {
        if self.exec_unarmed.is_empty() {
            return;
        }
        let (sa, future, lag) = (self.exec_schedule_ahead(), self.lead.get(), self.cfg.lag);
        let mut pushed = std::mem::take(&mut self.exec_unarmed);
        for g in pushed.drain(..) {
            let gpu = &self.gpus[g as usize];
            if !gpu.alive || gpu.exec_wake.is_some() || gpu.heap.is_empty() {
                continue;
            }
            let avail = gpu.exec.available(now, future, lag);
            if avail >= now + sa {
                self.arm_exec_for_room(g, avail, sa, now);
            }
        }
        self.exec_unarmed = pushed;
    }

    /// Lets the measured margins forget samples older than [`crate::margins::AGE`].
    fn age_margins(&mut self, now: Nanos) {
        self.buffer.age(now);
        self.overrun.age(now);
        self.lead.age(now);
        self.transfer.age(now);
        self.reaction.age(now);
        if self.rejected_since_result {
            self.buffer.thaw(now);
            self.overrun.thaw(now);
            self.lead.thaw(now);
        }
    }

    /// Drops timers at the head of the queues that would fire for nothing, and moves
    /// queue-expiry and rescue timers whose model's front moved later to its new time,
    /// so that [`Scheduler::next_deadline`] names a time when something is due (a
    /// driver wakes for it: issue 13 counted 0.4 wake-ups per request on the main job
    /// for timers with nothing due). Amortised O(1): each entry is dropped or moved
    /// once. An EXEC wake is dropped when its GPU has nothing queued (the stale
    /// entries at the top of its heap are popped to tell); a PCIe wake only when
    /// superseded.
    fn prune_timers(&mut self) {
        self.prune_model_timers(ModelTimer::Expiry);
        self.prune_model_timers(ModelTimer::Rescue);
        while let Some((at, &(g, lane))) = self.gpu_timers.peek() {
            let gpu = &mut self.gpus[g as usize];
            let slot = match lane {
                Lane::Exec => &mut gpu.exec_wake,
                Lane::Pcie => &mut gpu.pcie_wake,
                Lane::Deadline => &mut gpu.deadline_wake,
            };
            if *slot != Some(at) {
                self.gpu_timers.pop_next();
            } else if lane == Lane::Deadline && gpu.infers.is_empty() {
                gpu.deadline_wake = None;
                self.gpu_timers.pop_next();
            } else if lane == Lane::Exec && self.live_heap_top(g).is_none() {
                // Nothing queued here (another GPU took it, or it was answered): the
                // next push arms it again.
                self.gpus[g as usize].exec_wake = None;
                self.gpu_timers.pop_next();
            } else {
                break;
            }
        }
    }

    /// [`Scheduler::prune_timers`] for one kind of per-model timer: drops entries that
    /// are superseded or whose model's queue is empty, and moves those whose front's
    /// due time moved later, until the earliest entry is one that is due then.
    fn prune_model_timers(&mut self, kind: ModelTimer) {
        loop {
            let timers = match kind {
                ModelTimer::Expiry => &self.model_timers,
                ModelTimer::Rescue => &self.rescue_timers,
            };
            let Some((at, &mi)) = timers.peek() else {
                return;
            };
            let m = &self.models[mi as usize];
            let armed = match kind {
                ModelTimer::Expiry => m.expiry_armed,
                ModelTimer::Rescue => m.rescue_armed,
            };
            // A stale entry goes; a live one goes too when its model's queue is empty
            // (and disarms), or moves to its front's time when that is later.
            let live = armed == Some(at);
            let due = m.queue.front().filter(|_| live).map(|f| match kind {
                ModelTimer::Expiry => self.expiry_point(mi as usize, f.target),
                ModelTimer::Rescue => self.rescue_point(mi as usize, f.target),
            });
            if due.is_some_and(|due| due <= at) {
                return;
            }
            let (timers, armed) = match kind {
                ModelTimer::Expiry => (
                    &mut self.model_timers,
                    &mut self.models[mi as usize].expiry_armed,
                ),
                ModelTimer::Rescue => (
                    &mut self.rescue_timers,
                    &mut self.models[mi as usize].rescue_armed,
                ),
            };
            timers.pop_next();
            if live {
                *armed = due;
                if let Some(due) = due {
                    timers.push(due, mi);
                }
            }
        }
    }

    /// Returns an INFER's member list to the pool.
    fn recycle(&mut self, mut members: Vec<Key>) {
        if self.member_pool.len() < 4096 {
            members.clear();
            self.member_pool.push(members);
        }
    }

    /// Arms a GPU wake-up at `at` unless an earlier one is armed.
    fn arm(&mut self, g: u32, lane: Lane, at: Nanos) {
        let gpu = &mut self.gpus[g as usize];
        let slot = match lane {
            Lane::Exec => &mut gpu.exec_wake,
            Lane::Pcie => &mut gpu.pcie_wake,
            Lane::Deadline => &mut gpu.deadline_wake,
        };
        if slot.is_some_and(|t| t <= at) {
            return;
        }
        *slot = Some(at);
        self.gpu_timers.push(at, (g, lane));
    }
}
