//! `clockwork-bench local`: the main job. Starts a controller and emulated workers as
//! separate processes on loopback, registers the models, replays a workload (by
//! default the synthetic Azure Functions trace at a load the cluster can carry),
//! shows progress, and ends with a report, logs and plots in an output folder.

use crate::cluster::ChildProc;
use anyhow::{anyhow, bail, Context as _};
use clockwork_bench::report::{
    print_report, write_outputs, ClientSample, Progress, RunData, RunLogs, RunMeta, RunReport,
};
use clockwork_client::{Client, ClientReceiver, ClientSender};
use clockwork_core::model::{builtin_profiles, named_profiles};
use clockwork_core::{
    ClientResponse, ClientStatus, ModelId, ModelProfile, MonotonicClock, Nanos, RequestId, Slo,
};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_workload::azure::replay::scale_for_rate;
use clockwork_workload::azure::{ReplayConfig, TraceSource};
use clockwork_workload::profiles::registration_runs;
use clockwork_workload::AzureSpec;
use clockwork_workload::{models_spread, Arrival, Level, SloPlan, Spread, Workload, WorkloadSpec};
use glommio::channels::local_channel::{self, LocalSender};
use std::cell::Cell;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Which workload the main job replays.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkloadKind {
    /// The Azure Functions 2019 trace (synthetic unless --trace-dir is given).
    Azure,
    /// Open-loop Poisson, Zipf-skewed over the models.
    Poisson,
    /// Fixed-rate open loop, split evenly.
    FixedRate,
    /// Closed loop: --concurrency outstanding per model over the first --active models.
    Closed,
    /// Exponential on/off bursts, Poisson while on.
    Bursty,
    /// SLO factor stepped over time (x b1 latency), as the paper's 6.3.
    SloSweep,
    /// Hot, warm and cold models, as the original's fill_memory.
    FillMemory,
    /// One more active model every second, as the paper's 6.2.
    Ramp,
}

/// Arguments of `local`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LocalArgs {
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) workers: u32,
    /// Emulated GPUs per worker.
    #[arg(long, default_value_t = 2)]
    pub(crate) gpus_per_worker: u32,
    /// Model instances (spread over the built-in ResNet18/50/152 profiles, or --profiles).
    #[arg(long, default_value_t = 3000)]
    pub(crate) models: usize,
    /// A JSON file of extra model profiles to use instead of the built-in ones.
    #[arg(long)]
    pub(crate) profiles: Option<PathBuf>,
    /// Use only the profile of this name for every instance (e.g. resnet50_v2, or
    /// resnet50_fp16_h200, a built-in profile outside the default mix).
    #[arg(long)]
    pub(crate) only: Option<String>,
    /// Schedule-ahead of the controller, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) schedule_ahead_ms: f64,
    /// How long to replay, e.g. 60s, 2m, 90.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse_duration)]
    pub(crate) duration: Duration,
    /// Default SLO in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) slo_ms: f64,
    /// The workload.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Azure)]
    pub(crate) workload: WorkloadKind,
    /// Offered load in requests/s for the open-loop workloads (Azure: the trace is
    /// scaled to this mean rate).
    #[arg(long, default_value_t = 600.0)]
    pub(crate) rate: f64,
    /// Closed loop: outstanding requests per active model.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Closed loop: a client whose request was refused waits until that request's
    /// deadline before sending the next (as a client of the original waited for its
    /// timeout), instead of sending it at once.
    #[arg(long)]
    pub(crate) hold_refused: bool,
    /// Ramp: models activated per second (default: all of them over the run).
    #[arg(long)]
    pub(crate) ramp_step: Option<usize>,
    /// Closed loop and SLO sweep: models that receive requests.
    #[arg(long, default_value_t = 12)]
    pub(crate) active: usize,
    /// Directory with the real Azure Functions 2019 trace files
    /// (invocations_per_function_md.anon.dNN.csv). Default: the synthetic trace.
    #[arg(long)]
    pub(crate) trace_dir: Option<PathBuf>,
    /// Trace day (1-14).
    #[arg(long, default_value_t = 1)]
    pub(crate) day: u8,
    /// Trace minute the replay starts at (default: 10:00, the day's busy part).
    #[arg(long, default_value_t = 600)]
    pub(crate) start_minute: usize,
    /// Relative timing noise of the emulated GPUs (normal, sigma as a fraction; 0 = off).
    #[arg(long, default_value_t = 0.02)]
    pub(crate) noise: f64,
    /// Seed of the workload and the noise.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Address of the controller's HTTP front end (Open Inference Protocol, /metrics).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub(crate) http: SocketAddr,
    /// Do not start the HTTP front end.
    #[arg(long)]
    pub(crate) no_http: bool,
    /// Output folder (default: out/local-<unix time>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

impl LocalArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if self.workers == 0 || self.workers > 64 {
            bail!("--workers must be 1..=64");
        }
        if self.gpus_per_worker == 0 || self.gpus_per_worker > 256 {
            bail!("--gpus-per-worker must be 1..=256");
        }
        if self.models == 0 || self.models > 1_000_000 {
            bail!("--models must be 1..=1000000");
        }
        if !(self.slo_ms.is_finite() && self.slo_ms > 0.0 && self.slo_ms <= 3_600_000.0) {
            bail!("--slo-ms must be a positive number of milliseconds");
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            bail!("--rate must be in (0, 1000000] requests/s");
        }
        if !(0.0..1.0).contains(&self.noise) {
            bail!("--noise must be in [0, 1)");
        }
        if !(1..=14).contains(&self.day) {
            bail!("--day must be 1..=14");
        }
        if self.start_minute >= 1440 {
            bail!("--start-minute must be below 1440");
        }
        if self.concurrency == 0 || self.active == 0 {
            bail!("--concurrency and --active must be at least 1");
        }
        Ok(())
    }
}

/// The workload spec and a label for it.
fn workload_spec(args: &LocalArgs) -> anyhow::Result<(WorkloadSpec, String, String)> {
    let slo = SloPlan::Fixed(Slo::Default);
    let models = args.models;
    let active = args.active.min(models);
    use clockwork_workload::{
        BurstySpec, ClosedLoopSpec, FillMemorySpec, Interarrival, OpenLoopSpec, RampSpec,
        RateSplit, SloSweepSpec, Step,
    };
    let none = || "none (no trace)".to_owned();
    let (spec, label) = match args.workload {
        WorkloadKind::Azure => {
            let source = TraceSource::real_or_synthetic(args.trace_dir.clone(), args.seed);
            let trace = source.load(args.day).map_err(|e| anyhow!("{e}"))?;
            let mut replay = ReplayConfig::new(models);
            replay.scale = Level::Constant(scale_for_rate(&trace, args.rate));
            replay.start_minute = args.start_minute;
            replay.slo = slo;
            let label = format!("azure trace replay, day {}", args.day);
            let src = source.label();
            return Ok((
                WorkloadSpec::Azure(AzureSpec {
                    source,
                    day: args.day,
                    replay,
                }),
                label,
                src,
            ));
        }
        WorkloadKind::Poisson | WorkloadKind::FixedRate => {
            let poisson = args.workload == WorkloadKind::Poisson;
            (
                WorkloadSpec::OpenLoop(OpenLoopSpec {
                    models,
                    rate: Level::Constant(args.rate),
                    split: if poisson {
                        RateSplit::Zipf(1.0)
                    } else {
                        RateSplit::Even
                    },
                    interarrival: if poisson {
                        Interarrival::Poisson
                    } else {
                        Interarrival::Fixed
                    },
                    slo,
                }),
                format!(
                    "{} open loop, {} r/s",
                    if poisson {
                        "poisson (zipf 1)"
                    } else {
                        "fixed-rate"
                    },
                    args.rate
                ),
            )
        }
        WorkloadKind::Closed => (
            WorkloadSpec::ClosedLoop(ClosedLoopSpec {
                models: active,
                concurrency: args.concurrency,
                slo,
                requests_per_model: None,
                hold_refused: args.hold_refused,
            }),
            format!(
                "closed loop, {active} models x {}{}",
                args.concurrency,
                if args.hold_refused {
                    ", refused clients wait out their SLO"
                } else {
                    ""
                }
            ),
        ),
        WorkloadKind::Bursty => (
            WorkloadSpec::Bursty(BurstySpec {
                models,
                rate: args.rate,
                mean_on: Nanos::from_millis(2_000),
                mean_off: Nanos::from_millis(2_000),
                slo,
            }),
            format!("bursty on/off, {} r/s while on", args.rate),
        ),
        WorkloadKind::SloSweep => (
            WorkloadSpec::SloSweep(SloSweepSpec {
                models: active,
                interarrival: Interarrival::Poisson,
                rate: args.rate,
                slo_start: 2.0,
                slo_end: 200.0,
                step: Step::Mul(1.5),
                period: Nanos::from(args.duration / 12),
            }),
            format!("SLO sweep x1.5 from 2x b1, {} r/s", args.rate),
        ),
        WorkloadKind::FillMemory => {
            let spec = FillMemorySpec {
                scale: args.rate / 1200.0,
                slo,
                ..FillMemorySpec::default()
            };
            (
                WorkloadSpec::FillMemory(spec),
                format!("fill-memory, scaled to {} r/s", args.rate),
            )
        }
        WorkloadKind::Ramp => (
            WorkloadSpec::Ramp(RampSpec {
                majors: models.saturating_sub(1).max(1),
                major_rate: args.rate * 5.0 / 6.0,
                minor_rate: args.rate / 6.0,
                lead_in: Nanos::from_secs(5),
                interval: Nanos::from_secs(1),
                increment: args
                    .ramp_step
                    .unwrap_or_else(|| models / (args.duration.as_secs().max(1) as usize))
                    .max(1),
                slo,
            }),
            format!("ramp, {} r/s", args.rate),
        ),
    };
    Ok((spec, label, none()))
}

/// What the client saw of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) sent_at: Nanos,
    pub(crate) latency: Nanos,
    pub(crate) status: ClientStatus,
    pub(crate) model: u32,
    pub(crate) slo: Nanos,
}

/// Everything a run produced.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    pub(crate) samples: Vec<Sample>,
    pub(crate) offered: u64,
    /// Requests sent that never got an answer: (sent at, model, SLO).
    pub(crate) unanswered: Vec<(Nanos, u32, Nanos)>,
    pub(crate) controller_cpu_s: Option<f64>,
    pub(crate) out: PathBuf,
    pub(crate) label: String,
    pub(crate) trace_source: String,
    pub(crate) duration: Duration,
}

/// Start the cluster, replay, stop the cluster.
pub(crate) fn run_cluster(args: &LocalArgs, quiet: bool) -> anyhow::Result<RunOutcome> {
    args.validate()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("out/local-{t}"))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let profiles: Vec<ModelProfile> = match (&args.profiles, &args.only) {
        (Some(p), _) => clockwork_workload::load_profiles(p).map_err(|e| anyhow!("{e}"))?,
        // --only may name a built-in profile outside the default mix (the H200 one).
        (None, Some(_)) => named_profiles(),
        (None, None) => builtin_profiles(),
    };
    let profiles: Vec<ModelProfile> = match &args.only {
        Some(name) => {
            let p: Vec<ModelProfile> = profiles.into_iter().filter(|p| &p.name == name).collect();
            if p.is_empty() {
                bail!("--only {name}: no such profile");
            }
            p
        }
        None => profiles,
    };
    let (spec, label, trace_source) = workload_spec(args)?;
    let spec_models = spec.models();
    if spec_models > args.models {
        bail!(
            "the {label} workload needs {spec_models} models; pass --models {spec_models} or more"
        );
    }
    let token = format!("local-{}", std::process::id());
    if !quiet {
        eprintln!(
            "local cluster: {} worker process(es) x {} EMULATED GPU(s), {} models, workload {label}, {:?}; output in {}",
            args.workers,
            args.gpus_per_worker,
            args.models,
            args.duration,
            out.display()
        );
    }
    let mut workers = Vec::new();
    for i in 0..args.workers {
        // `clockwork-worker`'s flags (see `cluster`).
        let noise = if args.noise > 0.0 {
            format!("normal:{}", args.noise)
        } else {
            "none".to_owned()
        };
        let a = vec![
            "_worker".to_owned(),
            "--emulate".into(),
            args.gpus_per_worker.to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--token".into(),
            token.clone(),
            "--noise".into(),
            noise,
            "--seed".into(),
            (args.seed + u64::from(i)).to_string(),
            "--name".into(),
            format!("local-worker-{i}"),
            "--log".into(),
            "warn".into(),
        ];
        workers.push(ChildProc::start(
            &format!("worker {i}"),
            &a,
            &out.join(format!("worker-{i}.log")),
        )?);
    }
    let client_addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let worker_list = workers
        .iter()
        .map(|w| w.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // `clockwork-controller`'s flags (see `cluster`); workers are retried every 50 ms
    // while they start.
    let ctl_args = vec![
        "_controller".to_owned(),
        "--listen".into(),
        client_addr.to_string(),
        "--workers".into(),
        worker_list,
        "--token".into(),
        token.clone(),
        "--slo-ms".into(),
        args.slo_ms.to_string(),
        "--log-dir".into(),
        out.display().to_string(),
        "--schedule-ahead-ms".into(),
        args.schedule_ahead_ms.to_string(),
        "--reconnect-ms".into(),
        "50".into(),
        "--log".into(),
        "warn".into(),
    ];
    let mut ctl_args = ctl_args;
    // The HTTP port is a convenience of the main job: if it is taken, say so and go on.
    let http = !args.no_http && std::net::TcpListener::bind(args.http).is_ok();
    if http {
        ctl_args.push("--http".into());
        ctl_args.push(args.http.to_string());
        // The README's curl examples register and unload models while it runs: on
        // loopback the admin endpoints are open (docs/http.md, "Admin surface").
        if args.http.ip().is_loopback() {
            ctl_args.push("--admin-open".into());
        }
    } else if !args.no_http {
        eprintln!("warning: {} is in use; running without the HTTP front end (choose another with --http ADDR)", args.http);
    }
    let mut controller = ChildProc::start("controller", &ctl_args, &out.join("controller.log"))?;
    if http && !quiet {
        eprintln!("  HTTP (Open Inference Protocol, /metrics) on http://{} while it runs; see docs/http.md", args.http);
    }
    let spread = models_spread(args.models, &profiles, Spread::Shuffled { seed: args.seed });
    let runs = registration_runs(&spread);
    // Batch-1 time of each instance, to turn SLO factors into milliseconds.
    let b1: Vec<Nanos> = runs
        .iter()
        .flat_map(|&(p, n)| std::iter::repeat_n(profiles[p].batches[0].exec_time, n as usize))
        .collect();
    let workload = Workload::new(&spec, args.seed)
        .map_err(|e| anyhow!("{e}"))?
        .with_end(Nanos::from(args.duration));
    let duration = args.duration;
    let slo_default = Nanos((args.slo_ms * 1e6) as u64);
    let cpu_before = controller.cpu_seconds();
    let result = run_here(ExecutorConfig::named("local-client"), async move {
        drive(
            client_addr,
            &token,
            &profiles,
            &runs,
            b1,
            workload,
            duration,
            slo_default,
            quiet,
        )
        .await
    })
    .map_err(|e| anyhow!("client executor: {e}"))?;
    let cpu_after = controller.cpu_seconds();
    controller.stop(Duration::from_secs(10))?;
    for w in &mut workers {
        w.stop(Duration::from_secs(10))?;
    }
    let (samples, offered, unanswered) = result?;
    Ok(RunOutcome {
        samples,
        offered,
        unanswered,
        controller_cpu_s: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        out,
        label,
        trace_source,
        duration,
    })
}

async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Client> {
    let mut last = None;
    for _ in 0..300 {
        match Client::connect(addr, token, "clockwork-bench").await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    Err(anyhow!("cannot reach the controller at {addr}: {last:?}"))
}

struct InFlight {
    sent_at: Nanos,
    model: u32,
    slo: Nanos,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    addr: SocketAddr,
    token: &str,
    profiles: &[ModelProfile],
    runs: &[(usize, u32)],
    b1: Vec<Nanos>,
    workload: Workload,
    duration: Duration,
    slo_default: Nanos,
    quiet: bool,
) -> anyhow::Result<(Vec<Sample>, u64, Vec<(Nanos, u32, Nanos)>)> {
    let mut client = connect(addr, token).await?;
    // Register the models: contiguous runs of one profile each; ids follow in order.
    let mut next = 0u32;
    for &(profile, count) in runs {
        let (first, n) = client.register(profiles[profile].clone(), count).await?;
        if first.0 != next || n != count {
            bail!("controller numbered models unexpectedly ({first:?} x {n}, expected m{next} x {count})");
        }
        next += count;
    }
    // Wait until the workers have joined: a probe is no longer answered Unavailable.
    let mut ready = false;
    for _ in 0..500 {
        let r = client.infer(ModelId(0), Slo::Default, Vec::new()).await?;
        if r.status != ClientStatus::Unavailable {
            ready = true;
            break;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    if !ready {
        bail!("the controller reports no GPUs after 10 s: workers did not join");
    }
    let (tx, rx, _) = client.into_split();
    let workload = Rc::new(RefCell::new(workload));
    let inflight: Rc<RefCell<HashMap<RequestId, InFlight>>> = Rc::new(RefCell::new(HashMap::new()));
    let samples: Rc<RefCell<Vec<Sample>>> = Rc::new(RefCell::new(Vec::new()));
    let sent = Rc::new(Cell::new(0u64));
    let stopped = Rc::new(Cell::new(false));
    let start = MonotonicClock::read();
    let progress = Rc::new(RefCell::new(Progress::new(duration)));
    let (queue_tx, queue_rx) = local_channel::new_unbounded::<Arrival>();
    let queue = Rc::new(queue_tx);
    // Sender: takes arrivals from the queue (open-loop pacing and closed-loop
    // replacements) and sends them; the only task that writes to the controller.
    let sender = {
        let (inflight, sent, progress) = (inflight.clone(), sent.clone(), progress.clone());
        glommio::spawn_local(async move {
            let mut tx = tx;
            while let Some(a) = queue_rx.recv().await {
                let slo = match a.slo {
                    Slo::Absolute(n) => n,
                    Slo::Factor(f) => {
                        Nanos((b1.get(a.model).map_or(0, |b| b.get()) as f64 * f64::from(f)) as u64)
                    }
                    Slo::Default => slo_default,
                };
                if let Err(e) = send_one(&mut tx, &inflight, a, start, slo).await {
                    tracing::error!(error = %e, "sending to the controller failed");
                    break;
                }
                sent.set(sent.get() + 1);
                progress.borrow_mut().sent(1);
            }
        })
    };
    // Receiver: records answers and feeds closed loops until the run stops.
    let receiver = glommio::spawn_local(receive(
        rx,
        ReceiverState {
            inflight: inflight.clone(),
            samples: samples.clone(),
            workload: workload.clone(),
            queue: queue.clone(),
            stopped: stopped.clone(),
            progress: progress.clone(),
            start,
        },
    ));
    // Pacer: open-loop arrivals at their times, plus the closed loop's first requests.
    for a in workload.borrow_mut().start() {
        let _ = queue.try_send(a);
    }
    let mut due = Vec::new();
    loop {
        let now = MonotonicClock::read() - start;
        due.clear();
        let finished = {
            let mut w = workload.borrow_mut();
            w.poll(now, &mut due);
            Nanos::from(duration) <= now || w.is_finished()
        };
        for a in due.drain(..) {
            let _ = queue.try_send(a);
        }
        if !quiet {
            progress.borrow_mut().tick();
        }
        if finished {
            break;
        }
        let next = workload.borrow_mut().next_open_at();
        let wake = next.map_or(Duration::from_millis(5), |t| {
            Duration::from(t.saturating_sub(now)).min(Duration::from_millis(5))
        });
        if !wake.is_zero() {
            glommio::timer::sleep(wake).await;
        }
    }
    // No new requests from here on; wait until every request sent has its answer
    // (each gets one by its deadline at the latest) and the queue is empty.
    stopped.set(true);
    let wait_until = MonotonicClock::read() + Nanos::from_secs(10) + slo_default;
    while (!inflight.borrow().is_empty() || queue.len() > 0) && MonotonicClock::read() < wait_until
    {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let unanswered = inflight
        .borrow()
        .values()
        .map(|f| (f.sent_at, f.model, f.slo))
        .collect();
    drop(receiver);
    drop(sender);
    let samples = std::mem::take(&mut *samples.borrow_mut());
    Ok((samples, sent.get(), unanswered))
}

async fn send_one(
    tx: &mut ClientSender,
    inflight: &Rc<RefCell<HashMap<RequestId, InFlight>>>,
    a: Arrival,
    start: Nanos,
    slo: Nanos,
) -> anyhow::Result<()> {
    let model = u32::try_from(a.model).unwrap_or(u32::MAX);
    let sent_at = MonotonicClock::read() - start;
    let id = tx.next_id();
    inflight.borrow_mut().insert(
        id,
        InFlight {
            sent_at,
            model,
            slo,
        },
    );
    tx.send(&clockwork_core::ClientRequest::Infer(
        clockwork_core::InferRequest {
            id,
            model: ModelId(model),
            slo: a.slo,
            input: Vec::new(),
        },
    ))
    .await?;
    Ok(())
}

/// What the receiving task shares with the rest of the replay.
struct ReceiverState {
    inflight: Rc<RefCell<HashMap<RequestId, InFlight>>>,
    samples: Rc<RefCell<Vec<Sample>>>,
    workload: Rc<RefCell<Workload>>,
    queue: Rc<LocalSender<Arrival>>,
    stopped: Rc<Cell<bool>>,
    progress: Rc<RefCell<Progress>>,
    start: Nanos,
}

async fn receive(mut rx: ClientReceiver, st: ReceiverState) {
    let ReceiverState {
        inflight,
        samples,
        workload,
        queue,
        stopped,
        progress,
        start,
    } = st;
    while let Ok(resp) = rx.recv().await {
        let ClientResponse::Inferred(r) = resp else {
            continue;
        };
        let now = MonotonicClock::read() - start;
        let Some(f) = inflight.borrow_mut().remove(&r.id) else {
            continue;
        };
        let latency = now - f.sent_at;
        progress.borrow_mut().answered(
            latency.get(),
            r.status.is_success(),
            r.status.is_success() && latency <= f.slo,
        );
        samples.borrow_mut().push(Sample {
            sent_at: f.sent_at,
            latency,
            status: r.status,
            model: f.model,
            slo: f.slo,
        });
        if stopped.get() {
            continue;
        }
        let next = if r.status.is_success() {
            workload.borrow_mut().on_response(f.model as usize, now)
        } else {
            workload
                .borrow_mut()
                .on_refused(f.model as usize, now, f.sent_at + f.slo)
        };
        match next {
            Some(next) if next.at > now => {
                // A refused client waits until its request's deadline.
                let queue = queue.clone();
                let wait = Duration::from(next.at - now);
                glommio::spawn_local(async move {
                    glommio::timer::sleep(wait).await;
                    let _ = queue.try_send(next);
                })
                .detach();
            }
            Some(next) => {
                let _ = queue.try_send(next);
            }
            None => {}
        }
    }
}

/// The report of a finished run: client samples plus the controller's logs.
pub(crate) fn report(
    args_json: serde_json::Value,
    o: &RunOutcome,
) -> anyhow::Result<(RunReport, RunData)> {
    let mut client: Vec<ClientSample> = o
        .samples
        .iter()
        .map(|s| {
            ClientSample::answered(
                s.sent_at.get(),
                s.latency.get(),
                s.status,
                s.model,
                s.slo.get(),
            )
        })
        .collect();
    client.extend(
        o.unanswered
            .iter()
            .map(|&(at, m, slo)| ClientSample::unanswered(at.get(), m, slo.get())),
    );
    let logs = match RunLogs::read_dir(&o.out) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!(
                "warning: controller logs unreadable ({e}); the report uses client data only"
            );
            None
        }
    };
    let requests = o.samples.len().max(1) as f64;
    let meta = RunMeta {
        workload: o.label.clone(),
        trace_source: o.trace_source.clone(),
        emulated: true,
        duration_s: Some(o.duration.as_secs_f64()),
        config: args_json,
        controller_cpu_s_per_request: o.controller_cpu_s.map(|c| c / requests),
        log_origin_ns: None,
    };
    let data = RunData {
        client: Some(client),
        logs,
    };
    Ok((RunReport::compute(&meta, &data), data))
}

/// Run the main job and print its report.
pub(crate) fn run(args: &LocalArgs) -> anyhow::Result<()> {
    let outcome = run_cluster(args, false)?;
    let (report, data) = report(args_json(args), &outcome)?;
    print_report(&report);
    let files = write_outputs(&outcome.out, &report, &data).map_err(|e| anyhow!("{e}"))?;
    println!("\nwrote to {}:", outcome.out.display());
    for f in files {
        println!("  {}", f.display());
    }
    for f in [
        "clockwork_request_log.tsv",
        "clockwork_action_log.tsv",
        "controller.log",
    ] {
        println!("  {}", outcome.out.join(f).display());
    }
    Ok(())
}

/// The run's settings, for report.json.
pub(crate) fn args_json(a: &LocalArgs) -> serde_json::Value {
    serde_json::json!({
        "workers": a.workers,
        "gpus_per_worker": a.gpus_per_worker,
        "models": a.models,
        "only": a.only,
        "duration_s": a.duration.as_secs_f64(),
        "slo_ms": a.slo_ms,
        "schedule_ahead_ms": a.schedule_ahead_ms,
        "workload": format!("{:?}", a.workload),
        "rate": a.rate,
        "concurrency": a.concurrency,
        "hold_refused": a.hold_refused,
        "active": a.active,
        "trace_dir": a.trace_dir,
        "day": a.day,
        "start_minute": a.start_minute,
        "noise": a.noise,
        "seed": a.seed,
    })
}
