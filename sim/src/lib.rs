//! Virtual-time simulator: the real [`Scheduler`] driven by simulated workers.
//!
//! Deterministic for a seed. One event queue orders request arrivals (pulled from a
//! `clockwork_workload` [`ArrivalSource`]), action deliveries to workers and results
//! back to the controller (each after a configurable one-way network latency, plus a
//! seeded random extra when asked, in order on each link), the
//! wake-ups of simulated GPUs (one live per GPU: its next completion or window), and the
//! scheduler's own timers ([`Scheduler::next_deadline`]). The simulated GPUs are
//! `clockwork_gpu`'s own device logic on its emulated backend
//! ([`clockwork_gpu::VirtualDevice`]): the timing model, windows, page cache, weights
//! versioning and seeded noise ([`NoiseModel`]) that a real worker's emulated GPUs run,
//! on the virtual clock. A simulated worker (`sim/worker.rs`) only does what a worker
//! does around its devices.
//!
//! The simulation observes the scheduler from outside and counts broken invariants
//! ([`Violations`]): double or missing answers, successes after the deadline, actions
//! emitted with their window already closed, INFERs for models not on that GPU, LOADs
//! that find too few free pages on the device, and weights changed while in use.
//!
//! Ready-made cases live in [`presets`] (issue 13's tight-SLO rows, issue 14's
//! overload row), with a simple EDF policy as their baseline ([`edf_baseline`], not
//! Clockwork's scheduler).
//!
//! It owns no I/O and no threads; it does not own scheduling (`clockwork-scheduler`),
//! workload generation (`clockwork-workload`) nor the device model (`clockwork-gpu`).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

mod arrivals;
mod check;
pub mod edf_baseline;
mod events;
mod network;
pub mod presets;
mod worker;

pub use arrivals::WorkloadRangeError;
pub use check::Violations;

pub use clockwork_gpu::NoiseModel;

use arrivals::Arrivals;
use check::Checker;
use clockwork_core::{Action, ActionKind, ModelId, ModelProfile, Nanos, RequestId, Slo, WorkerId};
use clockwork_gpu::{Completion, ModelRegistry};
use clockwork_scheduler::Config;
use clockwork_scheduler::Stats;
use clockwork_scheduler::{ClientKey, InputRef, Output};
use clockwork_scheduler::{ConfigError, RegisterError};
use clockwork_scheduler::{ModelRange, Scheduler};
use clockwork_workload::ArrivalSource;
use events::{Event, EventQueue};
pub use network::Stalls;
use network::{Direction, Network};
use worker::{Ctx, DeviceLayout, SimWorker};

/// Simulated cluster and network.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Workers.
    pub workers: u32,
    /// GPUs per worker.
    pub gpus_per_worker: u32,
    /// Weights-cache pages per GPU (1376 = 21.5 GiB of 16 MiB pages).
    pub total_pages: u32,
    /// Page size in bytes.
    pub page_size: u64,
    /// One-way controller↔worker latency.
    pub net_latency: Nanos,
    /// Mean of a random extra one-way delay per message (exponential, seeded from
    /// `seed`; each link still delivers in order). Zero: every message takes exactly
    /// `net_latency`.
    pub net_jitter: Nanos,
    /// Pauses of the host: while one lasts no message arrives, and every message due
    /// during it arrives when it ends (seeded from `seed`). `None`: the host never
    /// stalls.
    pub host_stalls: Option<Stalls>,
    /// Timing noise of the simulated (emulated) GPUs, as on a worker's emulated GPUs.
    pub noise: NoiseModel,
    /// Requests arriving before this virtual time are served but left out of the
    /// report's measurements (offered, successes, latency, statuses): a warm-up, as the
    /// paper excluded its lead-in. Invariants are checked on every request.
    pub measure_from: Nanos,
    /// Seed of the devices' noise.
    pub seed: u64,
    /// Measure the wall time spent inside the scheduler's calls (for benchmarks; it
    /// reads the host clock around each call, which changes nothing simulated).
    pub time_scheduler: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            gpus_per_worker: 1,
            total_pages: 1376,
            page_size: clockwork_core::DEFAULT_PAGE_SIZE,
            net_latency: Nanos::from_micros(50),
            net_jitter: Nanos::ZERO,
            host_stalls: None,
            noise: NoiseModel::None,
            measure_from: Nanos::ZERO,
            seed: 0,
            time_scheduler: false,
        }
    }
}

/// Outcome of a simulated run.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Virtual time covered by measured arrivals (the goodput denominator): from
    /// [`SimConfig::measure_from`] to the end of arrivals.
    pub simulated: Nanos,
    /// Requests offered during the warm-up (served, not measured).
    pub warmup_offered: u64,
    /// Requests offered (measured ones).
    pub offered: u64,
    /// Requests answered.
    pub answered: u64,
    /// Answered `Success` (always within the SLO, or counted as a violation).
    pub success: u64,
    /// Successes per simulated second.
    pub goodput_rps: f64,
    /// `success / offered`.
    pub slo_attainment: f64,
    /// Success latency percentiles (arrival to answer, controller clock).
    pub latency_p50: Nanos,
    /// p99.
    pub latency_p99: Nanos,
    /// p99.9.
    pub latency_p999: Nanos,
    /// Max.
    pub latency_max: Nanos,
    /// Latency (arrival to answer) of the answers that are not successes: p50.
    pub failure_latency_p50: Nanos,
    /// p99.
    pub failure_latency_p99: Nanos,
    /// Answers by status.
    pub by_status: Vec<(clockwork_core::ClientStatus, u64)>,
    /// Events processed (arrivals included).
    pub events: u64,
    /// Wall time spent inside scheduler calls during [`Simulation::run_until`] and
    /// [`Simulation::drain`], if [`SimConfig::time_scheduler`] was set (else zero).
    pub scheduler_wall: std::time::Duration,
    /// The scheduler's own counters.
    pub stats: Stats,
    /// Broken invariants (all zero for a correct scheduler).
    pub violations: Violations,
}

/// A simulated cluster driving one scheduler.
#[derive(Debug)]
pub struct Simulation {
    cfg: SimConfig,
    now: Nanos,
    sched: Scheduler,
    events: EventQueue,
    network: Network,
    workers: Vec<SimWorker>,
    /// Profiles of the registered models, shared by every simulated GPU.
    models: ModelRegistry,
    /// Scratch for device completions.
    done: Vec<Completion>,
    arrivals: Option<Arrivals>,
    next_request: u64,
    arrivals_until: Nanos,
    checker: Checker,
    events_done: u64,
    started: bool,
    sched_wall: std::time::Duration,
}

impl Simulation {
    /// A cluster of `cfg.workers` idle workers (not yet joined) and a scheduler.
    pub fn new(cfg: SimConfig, sched: Config) -> Result<Self, ConfigError> {
        let default_slo = sched.default_slo;
        let sched = Scheduler::new(sched)?;
        let layout = DeviceLayout {
            gpus: cfg.gpus_per_worker,
            total_pages: cfg.total_pages,
            page_size: cfg.page_size,
            noise: cfg.noise,
            seed: cfg.seed,
        };
        let workers = (0..cfg.workers)
            .map(|i| SimWorker::new(WorkerId(i), layout))
            .collect();
        Ok(Self {
            network: Network::new(cfg.net_latency, cfg.net_jitter, cfg.host_stalls, cfg.seed),
            cfg,
            now: Nanos::ZERO,
            sched,
            events: EventQueue::default(),
            workers,
            models: ModelRegistry::new(),
            done: Vec::new(),
            arrivals: None,
            next_request: 0,
            arrivals_until: Nanos::ZERO,
            checker: Checker::new(default_slo),
            events_done: 0,
            started: false,
            sched_wall: std::time::Duration::ZERO,
        })
    }

    /// The scheduler.
    pub const fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// Virtual now.
    pub const fn now(&self) -> Nanos {
        self.now
    }

    /// Registers models. Before [`Simulation::start`], registration with the workers
    /// happens instantly (set-up); afterwards it travels like any action.
    pub fn register(
        &mut self,
        profile: ModelProfile,
        copies: u32,
    ) -> Result<ModelRange, RegisterError> {
        let r = self.sched.register_models(self.now, profile, copies)?;
        self.pump();
        Ok(r)
    }

    /// Every worker joins (instantly: the set-up exchange is not timed). Models
    /// registered earlier are registered with each worker here.
    pub fn start(&mut self) {
        self.started = false;
        for wi in 0..self.workers.len() {
            let st = self.workers[wi].state(&self.models);
            let id = self.workers[wi].id;
            // As the controller does after a worker's handshake.
            self.sched
                .link_measured(id, self.cfg.net_latency + self.cfg.net_latency);
            self.sched.worker_joined(self.now, id, &st);
            self.pump();
        }
        self.started = true;
        self.sched_wall = std::time::Duration::ZERO;
    }

    /// The workload that feeds arrivals from now on: model index `i` of `source` is
    /// model `models.first + i`. Fails, leaving the current workload in place, when
    /// `source` addresses more models than `models` holds.
    pub fn set_workload(
        &mut self,
        source: Box<dyn ArrivalSource>,
        models: ModelRange,
    ) -> Result<(), WorkloadRangeError> {
        self.arrivals = Some(Arrivals::new(source, models)?);
        Ok(())
    }

    /// Runs until virtual time `until` (exclusive), taking arrivals from the workload.
    pub fn run_until(&mut self, until: Nanos) {
        loop {
            let t_arr = self.arrivals.as_ref().and_then(Arrivals::next_at);
            let t_ev = self.events.next_time();
            let t_sched = self.sched.next_deadline();
            let Some(t) = [t_arr, t_ev, t_sched].into_iter().flatten().min() else {
                break;
            };
            if t >= until {
                break;
            }
            self.now = self.now.max(t);
            self.events_done += 1;
            if t_sched == Some(t) {
                let now = self.now;
                self.timed(|s| s.handle_timeout(now));
            } else if t_ev == Some(t) {
                if let Some((_, ev)) = self.events.pop() {
                    self.handle(ev);
                }
            } else if let Some((at, model, slo)) = self.arrivals.as_mut().and_then(Arrivals::pop) {
                self.arrive(at, model, slo);
            }
            self.pump();
        }
        self.now = self.now.max(until);
        self.arrivals_until = self.arrivals_until.max(until);
    }

    /// Stops arrivals and runs until every request is answered and nothing is
    /// pending, or until `limit` more virtual time has passed.
    pub fn drain(&mut self, limit: Nanos) {
        self.arrivals = None;
        let arrivals = self.arrivals_until;
        self.run_until(self.now + limit);
        self.arrivals_until = arrivals;
    }

    /// One request now (outside the workload), with the next request id.
    pub fn inject(&mut self, model: ModelId, slo: Slo) -> RequestId {
        let id = RequestId(self.next_request);
        self.arrive(self.now, model, slo);
        self.pump();
        id
    }

    /// Worker `wi` fails: its queues and in-flight work vanish, and the scheduler is
    /// told at once.
    pub fn lose_worker(&mut self, wi: u32) {
        let Some(w) = self.workers.get_mut(wi as usize) else {
            return;
        };
        w.alive = false;
        w.reset();
        let id = w.id;
        self.sched.worker_lost(self.now, id);
        self.pump();
    }

    /// Worker `wi` comes back as a fresh process (empty caches, no models).
    pub fn rejoin_worker(&mut self, wi: u32) {
        let Some(w) = self.workers.get_mut(wi as usize) else {
            return;
        };
        w.reset();
        w.alive = true;
        let st = w.state(&self.models);
        let id = w.id;
        self.sched
            .link_measured(id, self.cfg.net_latency + self.cfg.net_latency);
        self.sched.worker_joined(self.now, id, &st);
        self.pump();
    }

    /// What happened so far. `unanswered` counts requests not yet answered.
    pub fn report(&self) -> SimReport {
        let c = &self.checker;
        let simulated = self.arrivals_until.saturating_sub(self.cfg.measure_from);
        let secs = simulated.get() as f64 / 1e9;
        let mut violations = c.violations;
        violations.unanswered = c.offered_all() - c.answered_all();
        let q = |p: f64| Nanos(c.latency.value_at_quantile(p));
        let mut by_status: Vec<_> = c.by_status.iter().map(|(&s, &n)| (s, n)).collect();
        by_status.sort_by_key(|(s, _)| s.code());
        SimReport {
            simulated,
            warmup_offered: c.offered_all() - c.offered(),
            offered: c.offered(),
            answered: c.answered(),
            success: c.success,
            goodput_rps: c.success as f64 / secs,
            slo_attainment: c.success as f64 / c.offered() as f64,
            latency_p50: q(0.5),
            latency_p99: q(0.99),
            latency_p999: q(0.999),
            latency_max: Nanos(c.latency.max()),
            failure_latency_p50: Nanos(c.failure_latency.value_at_quantile(0.5)),
            failure_latency_p99: Nanos(c.failure_latency.value_at_quantile(0.99)),
            by_status,
            events: self.events_done,
            scheduler_wall: self.sched_wall,
            stats: self.sched.stats().clone(),
            violations,
        }
    }

    fn arrive(&mut self, at: Nanos, model: ModelId, slo: Slo) {
        let id = self.next_request;
        self.next_request += 1;
        let custom = match slo {
            Slo::Default => None,
            Slo::Absolute(n) => Some(n),
            // Resolved against the scheduler's estimate: not checked from outside.
            Slo::Factor(_) => Some(Nanos::MAX),
        };
        self.checker.offer(id, custom, at >= self.cfg.measure_from);
        let now = self.now;
        self.timed(|s| s.request(now, ClientKey(0), RequestId(id), model, slo, InputRef::NONE));
    }

    /// Runs one scheduler call, timing it if asked to.
    fn timed(&mut self, f: impl FnOnce(&mut Scheduler)) {
        if self.cfg.time_scheduler {
            let t = std::time::Instant::now();
            f(&mut self.sched);
            self.sched_wall += t.elapsed();
        } else {
            f(&mut self.sched);
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::ToController {
                worker,
                epoch,
                result,
            } => {
                let w = &self.workers[worker as usize];
                if w.alive && w.epoch == epoch {
                    let (now, id) = (self.now, w.id);
                    self.timed(|s| s.handle_result(now, id, &result));
                }
            }
            Event::ToWorker {
                worker,
                epoch,
                actions,
            } => self.with_worker(worker, epoch, None, |w, wi, ctx| {
                w.deliver(wi, ctx, actions);
            }),
            Event::DeviceDue {
                worker,
                epoch,
                gpu,
                at,
            } => self.with_worker(worker, epoch, None, |w, wi, ctx| {
                w.wake(wi, ctx, gpu as usize, at);
            }),
        }
    }

    fn with_worker(
        &mut self,
        wi: u32,
        epoch: u32,
        immediate: Option<&mut Vec<clockwork_core::ActionResult>>,
        f: impl FnOnce(&mut SimWorker, u32, &mut Ctx<'_>),
    ) {
        let Some(w) = self.workers.get_mut(wi as usize) else {
            return;
        };
        if !w.alive || w.epoch != epoch {
            return;
        }
        let mut ctx = Ctx {
            now: self.now,
            net: &mut self.network,
            events: &mut self.events,
            models: &mut self.models,
            violations: &mut self.checker.violations,
            done: &mut self.done,
            immediate,
        };
        f(w, wi, &mut ctx);
    }

    /// Drains the scheduler's outputs: actions travel to workers (or, during set-up,
    /// are handled at once), answers go to the checker.
    fn pump(&mut self) {
        // Draining is a queue pop: not timed (timing it would cost more than it).
        while let Some(out) = self.sched.poll_output() {
            match out {
                // Simulated workers generate inputs: the batch members are not needed.
                Output::Send {
                    worker, actions, ..
                } => {
                    self.check_actions(worker, &actions);
                    let wi = worker.0;
                    let epoch = self.workers.get(wi as usize).map_or(0, |w| w.epoch);
                    if self.started {
                        self.events.push(
                            self.network.arrival(self.now, wi, Direction::ToWorker),
                            Event::ToWorker {
                                worker: wi,
                                epoch,
                                actions,
                            },
                        );
                    } else {
                        let mut results = Vec::new();
                        self.with_worker(wi, epoch, Some(&mut results), |w, wi, ctx| {
                            w.deliver(wi, ctx, actions);
                        });
                        for r in results {
                            self.sched.handle_result(self.now, worker, &r);
                        }
                    }
                }
                Output::Respond { response, .. } => self.checker.respond(&response),
            }
        }
    }

    fn check_actions(&mut self, worker: WorkerId, actions: &[Action]) {
        let v = &mut self.checker.violations;
        for a in actions {
            if a.window.latest < self.now {
                v.windows_closed_at_emission += 1;
            }
            if !a.window.is_valid() {
                v.malformed_windows += 1;
            }
            if let ActionKind::Infer { model, gpu, .. } = &a.kind {
                let on_gpu = self
                    .workers
                    .get(worker.0 as usize)
                    .and_then(|w| w.gpus.get(gpu.0 as usize))
                    .is_some_and(|g| g.holds_or_loads(*model));
                if !on_gpu {
                    v.infer_not_resident_at_emission += 1;
                }
            }
        }
    }

    /// Pending simulator events (for tests).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }
}
