//! Random interactions with the scheduler, in the style of quinn-proto's
//! `tests/random_interaction.rs`: proptest draws a sequence of events (requests, the
//! passage of time, results in any order, results that never come, failed actions,
//! a stalled driver whose timers fire late, workers lost and back, registrations,
//! retirements) and a harness plays the workers
//! adversarially but plausibly. After every step and at the end it checks the
//! invariants the rest of the system relies on:
//!
//! - every INFER's batch members are pending requests for its model, as many as its
//!   batch size;
//! - every request is answered exactly once, and all are answered by their deadlines
//!   once time has run on, without a shutdown forcing them out;
//! - no success is answered after its request's deadline;
//! - no action is sent with its window already closed;
//! - no GPU is over-committed: a LOAD never finds too few free pages, no more LOADs are
//!   in flight on a GPU than the configuration allows, an INFER only goes to a GPU whose
//!   weights are there or on their way, and never to a worker the scheduler was told is
//!   gone.
//!
//! A shrunk counterexample is a short, replayable list of events.

use clockwork_core::model::{resnet18, resnet50};
use clockwork_core::{
    Action, ActionId, ActionKind, ActionResult, ClientStatus, GpuId, GpuState, Inferred, ModelId,
    ModelProfile, Nanos, Outcome, RegisteredModel, RequestId, Slo, Timing, WorkerId, WorkerState,
    WorkerStatus, DEFAULT_PAGE_SIZE,
};
use clockwork_scheduler::{
    infer_batches, BatchMember, ClientKey, Config, InputRef, Output, Scheduler,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const WORKERS: u32 = 3;
const GPUS_PER_WORKER: u32 = 2;
/// Small GPUs: a handful of ResNet-50s (7 pages) fit, so evictions happen.
const PAGES: u32 = 24;

/// One step of the interaction.
#[derive(Debug, Clone)]
enum Step {
    /// A request for model `model % (registered + 1)` (the extra id is unknown) with an
    /// absolute SLO in milliseconds.
    Request { model: u8, slo_ms: u16 },
    /// Time passes; timers fire on the way.
    Advance { us: u32 },
    /// Time passes and the driver was stalled: timers fire late, only at the next
    /// input (an executor that did not run, a host hiccup).
    Stall { us: u32 },
    /// The worker answers one of the actions in flight (picked by index), honestly.
    Complete { pick: u16 },
    /// The worker answers one action in flight with a failure status.
    Fail { pick: u16, status: u8 },
    /// A result is lost: the action never gets an answer.
    Lose { pick: u16 },
    /// A worker goes away (its connection closes).
    WorkerLost { worker: u8 },
    /// A worker (re)connects with whatever state it has.
    WorkerJoined { worker: u8 },
    /// More models are registered while serving.
    Register { copies: u8, small: bool },
    /// An operator retires a model.
    Retire { model: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<u8>(), 2u16..200).prop_map(|(model, slo_ms)| Step::Request { model, slo_ms }),
        6 => (0u32..20_000).prop_map(|us| Step::Advance { us }),
        2 => (0u32..20_000).prop_map(|us| Step::Stall { us }),
        8 => any::<u16>().prop_map(|pick| Step::Complete { pick }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(pick, status)| Step::Fail { pick, status }),
        1 => any::<u16>().prop_map(|pick| Step::Lose { pick }),
        1 => any::<u8>().prop_map(|worker| Step::WorkerLost { worker }),
        1 => any::<u8>().prop_map(|worker| Step::WorkerJoined { worker }),
        1 => (1u8..4, any::<bool>()).prop_map(|(copies, small)| Step::Register { copies, small }),
        1 => any::<u8>().prop_map(|model| Step::Retire { model }),
    ]
}

/// Failure statuses a worker may answer an action with.
const FAILURES: [WorkerStatus; 6] = [
    WorkerStatus::RuntimeError,
    WorkerStatus::ExecTooLate,
    WorkerStatus::LoadTooLate,
    WorkerStatus::ExecWeightsMissing,
    WorkerStatus::LoadInsufficientCache,
    WorkerStatus::ExecConcurrentWeightsModification,
];

/// One simulated GPU as the harness sees it: what is resident and what is on its way.
#[derive(Debug, Default, Clone)]
struct GpuModel {
    resident: BTreeMap<ModelId, u32>,
    loading: BTreeMap<ModelId, u32>,
}

impl GpuModel {
    fn used(&self) -> u32 {
        self.resident.values().sum::<u32>() + self.loading.values().sum::<u32>()
    }
}

#[derive(Debug)]
struct WorkerModel {
    connected: bool,
    gpus: Vec<GpuModel>,
}

#[derive(Debug)]
struct Pending {
    model: ModelId,
    arrival: Nanos,
    deadline: Nanos,
}

/// The harness: the scheduler, the workers it talks to, and what it has answered.
struct Harness {
    s: Scheduler,
    now: Nanos,
    workers: Vec<WorkerModel>,
    /// Actions sent and not yet answered (or lost), in send order.
    in_flight: Vec<(WorkerId, Action)>,
    requests: HashMap<RequestId, Pending>,
    answered: BTreeMap<RequestId, ClientStatus>,
    next_request: u64,
    violations: Vec<String>,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let cfg = Config {
            seed,
            ..Config::default()
        };
        let mut h = Self {
            s: Scheduler::new(cfg).unwrap(),
            now: Nanos::from_millis(1),
            workers: (0..WORKERS)
                .map(|_| WorkerModel {
                    connected: false,
                    gpus: vec![GpuModel::default(); GPUS_PER_WORKER as usize],
                })
                .collect(),
            in_flight: Vec::new(),
            requests: HashMap::new(),
            answered: BTreeMap::new(),
            next_request: 0,
            violations: Vec::new(),
        };
        h.register(2, false);
        h.register(1, true);
        for w in 0..WORKERS {
            h.join(w);
        }
        h
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Drains the scheduler's outputs and checks each against the invariants.
    fn pump(&mut self) {
        while let Some(out) = self.s.poll_output() {
            match out {
                Output::Send {
                    worker,
                    actions,
                    members,
                } => {
                    self.check_members(&actions, &members);
                    for a in actions {
                        self.sent(worker, a);
                    }
                }
                Output::Respond { response, .. } => {
                    let id = response.id;
                    if self.answered.insert(id, response.status).is_some() {
                        self.violation(format!("{id:?} answered twice"));
                    }
                    match self.requests.remove(&id) {
                        Some(p) => {
                            if response.status == ClientStatus::Success && self.now > p.deadline {
                                self.violation(format!(
                                    "{id:?} succeeded at {} after its deadline {} (arrived {})",
                                    self.now, p.deadline, p.arrival
                                ));
                            }
                        }
                        None => self.violation(format!("{id:?} answered but never asked")),
                    }
                }
            }
        }
    }

    /// Each INFER's members are exactly its batch: as many as its batch size, each a
    /// request that was asked for, is not yet answered and is for that model, none twice.
    fn check_members(&mut self, actions: &[Action], members: &[BatchMember]) {
        let infers: u32 = actions
            .iter()
            .map(|a| match a.kind {
                ActionKind::Infer { batch_size, .. } => batch_size,
                _ => 0,
            })
            .sum();
        if infers as usize != members.len() {
            self.violation(format!(
                "{} members for INFERs of {infers} requests in all",
                members.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, batch) in infer_batches(actions, members) {
            let ActionKind::Infer { model, .. } = actions[i].kind else {
                continue;
            };
            for m in batch {
                if !seen.insert(m.id) {
                    self.violation(format!("{:?} twice in one Send", m.id));
                }
                match self.requests.get(&m.id) {
                    Some(p) if p.model == model => {}
                    Some(_) => self.violation(format!("{:?} in a batch of another model", m.id)),
                    None => self.violation(format!("{:?} batched but not pending", m.id)),
                }
            }
        }
    }

    /// An action leaves the scheduler: check it, apply what applies at once.
    fn sent(&mut self, worker: WorkerId, a: Action) {
        let now = self.now;
        let Some(wm) = self.workers.get(worker.0 as usize) else {
            self.violation(format!("action {:?} to unknown worker {worker:?}", a.id));
            return;
        };
        if !wm.connected {
            self.violation(format!("action {:?} to lost worker {worker:?}", a.id));
            return;
        }
        if a.window.latest < now {
            self.violation(format!("{:?} sent with its window closed", a.id));
        }
        let max_loads = self.s.config().max_loads_in_flight as usize;
        match &a.kind {
            ActionKind::LoadWeights { model, gpu, .. } => {
                let pages = self.pages_of(*model);
                let g = &mut self.workers[worker.0 as usize].gpus[gpu.0 as usize];
                let loads = g.loading.len();
                let dup = g.resident.contains_key(model) || g.loading.contains_key(model);
                let fits = g.used() + pages <= PAGES;
                if !dup && fits {
                    g.loading.insert(*model, pages);
                }
                if dup {
                    self.violation(format!("LOAD of {model:?} already on {worker:?}/{gpu:?}"));
                } else if !fits {
                    self.violation(format!("LOAD of {model:?} over-commits {worker:?}/{gpu:?}"));
                } else if loads + 1 > max_loads {
                    self.violation(format!(
                        "{} LOADs in flight on {worker:?}/{gpu:?}",
                        loads + 1
                    ));
                }
            }
            ActionKind::Unload { model, gpu } => {
                // A page-table operation: applied on arrival, like the device does.
                let g = &mut self.workers[worker.0 as usize].gpus[gpu.0 as usize];
                g.resident.remove(model);
            }
            ActionKind::Infer { model, gpu, .. } => {
                let g = &self.workers[worker.0 as usize].gpus[gpu.0 as usize];
                if !g.resident.contains_key(model) && !g.loading.contains_key(model) {
                    self.violation(format!(
                        "INFER of {model:?} on {worker:?}/{gpu:?} without it"
                    ));
                }
            }
            ActionKind::RegisterModel { .. } | ActionKind::GetState | ActionKind::ClearCache => {}
        }
        self.in_flight.push((worker, a));
    }

    fn pages_of(&self, model: ModelId) -> u32 {
        self.s
            .model_profile(model)
            .map_or(1, |p| p.pages(DEFAULT_PAGE_SIZE))
    }

    fn state_of(&self, w: u32) -> WorkerState {
        let wm = &self.workers[w as usize];
        WorkerState {
            page_size: DEFAULT_PAGE_SIZE,
            gpus: wm
                .gpus
                .iter()
                .enumerate()
                .map(|(i, g)| GpuState {
                    id: GpuId(i as u32),
                    name: "harness".into(),
                    emulated: true,
                    total_pages: PAGES,
                    free_pages: PAGES - g.used(),
                    loaded: g.resident.keys().copied().collect(),
                })
                .collect(),
            models: (0..self.s.model_count())
                .filter_map(|i| {
                    let p = self.s.model_profile(ModelId(i))?;
                    Some(RegisteredModel {
                        id: ModelId(i),
                        count: 1,
                        profile: p.clone(),
                    })
                })
                .collect(),
        }
    }

    fn register(&mut self, copies: u32, small: bool) {
        let p: ModelProfile = if small { resnet18() } else { resnet50() };
        self.s
            .register_models(self.now, p, copies)
            .expect("valid profile");
        self.pump();
    }

    fn join(&mut self, w: u32) {
        let w = w % WORKERS;
        if self.workers[w as usize].connected {
            return;
        }
        // A worker that comes back has finished or dropped whatever it was loading.
        for g in &mut self.workers[w as usize].gpus {
            g.loading.clear();
        }
        self.workers[w as usize].connected = true;
        let st = self.state_of(w);
        self.s.worker_joined(self.now, WorkerId(w), &st);
        self.pump();
    }

    fn lose(&mut self, w: u32) {
        let w = w % WORKERS;
        if !self.workers[w as usize].connected {
            return;
        }
        self.workers[w as usize].connected = false;
        self.in_flight.retain(|(wid, _)| wid.0 != w);
        self.s.worker_lost(self.now, WorkerId(w));
        self.pump();
    }

    fn request(&mut self, model: u8, slo_ms: u16) {
        let count = self.s.model_count();
        let model = ModelId(u32::from(model) % (count + 1));
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let slo = Nanos::from_millis(u64::from(slo_ms));
        self.requests.insert(
            id,
            Pending {
                model,
                arrival: self.now,
                deadline: self.now + slo,
            },
        );
        self.s.request(
            self.now,
            ClientKey(1),
            id,
            model,
            Slo::Absolute(slo),
            InputRef::NONE,
        );
        self.pump();
    }

    /// Moves time to `to`, firing every timer on the way at its own time.
    fn advance_to(&mut self, to: Nanos) {
        while let Some(d) = self.s.next_deadline() {
            if d > to {
                break;
            }
            self.now = self.now.max(d);
            self.s.handle_timeout(self.now);
            self.pump();
        }
        self.now = self.now.max(to);
        self.s.handle_timeout(self.now);
        self.pump();
    }

    fn take(&mut self, pick: u16) -> Option<(WorkerId, Action)> {
        if self.in_flight.is_empty() {
            return None;
        }
        let i = usize::from(pick) % self.in_flight.len();
        Some(self.in_flight.remove(i))
    }

    /// Answers an action honestly: what a worker would report for it now.
    fn complete(&mut self, w: WorkerId, a: Action) {
        let now = self.now;
        let timing = |d: Nanos| Timing {
            begin: now - d.min(now),
            end: now,
            duration: d.min(now),
        };
        let (status, outcome) = match a.kind {
            ActionKind::RegisterModel { model, profile, .. } => (
                WorkerStatus::Success,
                Outcome::Registered {
                    model,
                    pages: profile.pages(DEFAULT_PAGE_SIZE),
                    measured: None,
                },
            ),
            ActionKind::LoadWeights {
                model,
                gpu,
                expected_duration,
            } => {
                let g = &mut self.workers[w.0 as usize].gpus[gpu.0 as usize];
                match g.loading.remove(&model) {
                    Some(pages) => {
                        g.resident.insert(model, pages);
                        (
                            WorkerStatus::Success,
                            Outcome::Loaded {
                                timing: timing(expected_duration),
                            },
                        )
                    }
                    None => (WorkerStatus::LoadConcurrentModification, error()),
                }
            }
            ActionKind::Unload { .. } => (
                WorkerStatus::Success,
                Outcome::Unloaded {
                    timing: timing(Nanos::ZERO),
                },
            ),
            ActionKind::Infer {
                model,
                gpu,
                batch_size,
                expected_duration,
                ..
            } => {
                let g = &self.workers[w.0 as usize].gpus[gpu.0 as usize];
                if !g.resident.contains_key(&model) {
                    (WorkerStatus::ExecWeightsMissing, error())
                } else if now < a.window.earliest {
                    (WorkerStatus::ExecTooEarly, error())
                } else {
                    let padded = self
                        .s
                        .model_profile(model)
                        .and_then(|p| p.padded_batch(batch_size))
                        .unwrap_or(batch_size);
                    let t = timing(expected_duration);
                    (
                        WorkerStatus::Success,
                        Outcome::Inferred(Inferred {
                            gpu,
                            padded_batch: padded,
                            copy_input: Timing {
                                end: t.begin,
                                duration: Nanos::ZERO,
                                ..t
                            },
                            exec: t,
                            copy_output: Timing {
                                begin: t.end,
                                duration: Nanos::ZERO,
                                ..t
                            },
                            gpu_clock_before_mhz: 0,
                            gpu_clock_mhz: 0,
                            outputs: Vec::new(),
                        }),
                    )
                }
            }
            ActionKind::GetState => (WorkerStatus::Success, Outcome::State(self.state_of(w.0))),
            ActionKind::ClearCache => {
                for g in &mut self.workers[w.0 as usize].gpus {
                    g.resident.clear();
                }
                (WorkerStatus::Success, Outcome::CacheCleared)
            }
        };
        self.deliver(w, a.id, status, outcome);
    }

    /// Answers an action with a failure, undoing what the harness applied for it.
    fn fail(&mut self, w: WorkerId, a: Action, status: WorkerStatus) {
        if let ActionKind::LoadWeights { model, gpu, .. } = a.kind {
            self.workers[w.0 as usize].gpus[gpu.0 as usize]
                .loading
                .remove(&model);
        }
        if matches!(a.kind, ActionKind::Unload { .. }) {
            // The UNLOAD was applied on arrival; a failure report is still plausible
            // (e.g. it found nothing), and the scheduler must resync rather than trust it.
        }
        self.deliver(w, a.id, status, error());
    }

    fn deliver(&mut self, w: WorkerId, id: ActionId, status: WorkerStatus, outcome: Outcome) {
        let r = ActionResult {
            action_id: id,
            status,
            received: self.now,
            sent: self.now,
            outcome,
        };
        self.s.handle_result(self.now, w, &r);
        self.pump();
    }

    fn run(&mut self, st: Step) {
        match st {
            Step::Request { model, slo_ms } => self.request(model, slo_ms),
            Step::Advance { us } => {
                let to = self.now + Nanos::from_micros(u64::from(us));
                self.advance_to(to);
            }
            Step::Stall { us } => self.now = self.now + Nanos::from_micros(u64::from(us)),
            Step::Complete { pick } => {
                if let Some((w, a)) = self.take(pick) {
                    // A worker never finishes an action before it may start.
                    if self.now < a.window.earliest {
                        self.advance_to(a.window.earliest);
                    }
                    self.complete(w, a);
                }
            }
            Step::Fail { pick, status } => {
                if let Some((w, a)) = self.take(pick) {
                    let s = FAILURES[usize::from(status) % FAILURES.len()];
                    self.fail(w, a, s);
                }
            }
            Step::Lose { pick } => {
                if let Some((w, a)) = self.take(pick) {
                    // Lost in transit: whatever it would have done on the device is undone.
                    if let ActionKind::LoadWeights { model, gpu, .. } = a.kind {
                        self.workers[w.0 as usize].gpus[gpu.0 as usize]
                            .loading
                            .remove(&model);
                    }
                }
            }
            Step::WorkerLost { worker } => self.lose(u32::from(worker)),
            Step::WorkerJoined { worker } => self.join(u32::from(worker)),
            Step::Register { copies, small } => {
                if self.s.model_count() < 40 {
                    self.register(u32::from(copies), small);
                }
            }
            Step::Retire { model } => {
                let count = self.s.model_count();
                if count > 0 {
                    let m = ModelId(u32::from(model) % count);
                    let _ = self.s.retire_model(self.now, m);
                    // Its weights leave every GPU (the service sends the UNLOADs the
                    // scheduler asks for; they go through `sent`).
                    self.pump();
                }
            }
        }
    }

    /// Lets the workers finish everything in send order while time runs on, until
    /// every deadline has passed.
    fn settle(&mut self) {
        let horizon = self.requests.values().map(|p| p.deadline).max();
        let end = horizon.unwrap_or(self.now).max(self.now) + Nanos::from_secs(1);
        while self.now < end {
            if self.in_flight.is_empty() {
                self.advance_to(end);
                break;
            }
            let (w, a) = self.in_flight.remove(0);
            let at = a.window.earliest.max(self.now) + Nanos::from_micros(100);
            self.advance_to(at);
            if self.workers[w.0 as usize].connected {
                self.complete(w, a);
            }
        }
    }
}

fn error() -> Outcome {
    Outcome::Error {
        message: "harness".into(),
    }
}

fn check(seed: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut h = Harness::new(seed);
    for st in steps {
        h.run(st);
        prop_assert!(h.violations.is_empty(), "{:?}", h.violations);
    }
    h.settle();
    prop_assert!(h.violations.is_empty(), "{:?}", h.violations);
    prop_assert!(
        h.requests.is_empty(),
        "{} requests never answered: {:?}",
        h.requests.len(),
        h.requests.keys().collect::<BTreeSet<_>>()
    );
    prop_assert_eq!(h.s.pending_requests(), 0);
    prop_assert_eq!(h.answered.len() as u64, h.next_request);
    let stats = h.s.stats();
    prop_assert_eq!(stats.offered, h.next_request);
    prop_assert_eq!(stats.answered, h.next_request);
    // `late_successes` may be non-zero: the harness delays results at will, and a
    // late INFER is answered Timeout (checked above: never Success after the deadline).
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_interaction_keeps_the_invariants(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..300),
    ) {
        check(seed, steps)?;
    }
}

/// A busy run with honest workers only: everything completes in order, so most
/// requests should succeed (the invariants alone would also hold if none did).
#[test]
fn honest_workers_serve_most_requests() {
    let mut steps = Vec::new();
    for i in 0..400u32 {
        steps.push(Step::Request {
            model: (i % 3) as u8,
            slo_ms: 100,
        });
        steps.push(Step::Complete { pick: 0 });
        steps.push(Step::Advance { us: 2_000 });
        steps.push(Step::Complete { pick: 0 });
    }
    let mut h = Harness::new(7);
    for st in steps {
        h.run(st);
    }
    h.settle();
    assert!(h.violations.is_empty(), "{:?}", h.violations);
    let ok = h
        .answered
        .values()
        .filter(|s| **s == ClientStatus::Success)
        .count();
    assert_eq!(h.answered.len(), 400);
    assert!(ok >= 300, "only {ok} of 400 succeeded");
}
