//! `clockwork-bench local`: the main job. Starts a controller and emulated workers as
//! separate processes on loopback, registers the models, replays a workload (by
//! default the synthetic Azure Functions trace at a load the cluster can carry),
//! shows progress, and ends with a report, logs and plots in an output folder.
//!
//! With `--backend cpu` the workers' devices really compute (tract on pinned cores):
//! the run serves a generated model from a model repository in its output folder, its
//! requests carry seeded random inputs, and the report checks a sample of answers
//! against a direct run (`local/cpu.rs`).

pub(crate) mod cpu;

pub(crate) use cpu::{BackendKind, CpuArgs};

use crate::cluster::{free_addr, ControllerCommand, WorkerCommand};
use anyhow::{anyhow, bail, Context as _};
use clockwork_bench::report::{
    print_report, write_outputs, ClientSample, OutputCheck, Progress, RunData, RunLogs, RunMeta,
    RunReport,
};
use clockwork_client::{Client, ClientReceiver, ClientSender};
use clockwork_core::model::{builtin_profiles, named_profiles};
use clockwork_core::{
    ClientResponse, ClientStatus, ModelId, ModelProfile, MonotonicClock, Nanos, RequestId, Slo,
};
use clockwork_net::runtime::{run_here, ExecutorConfig, DEFAULT_TICK_US, TICK_US_RANGE};
use clockwork_workload::azure::replay::scale_for_rate;
use clockwork_workload::azure::{ReplayConfig, TraceSource};
use clockwork_workload::profiles::registration_runs;
use clockwork_workload::AzureSpec;
use clockwork_workload::{models_spread, Arrival, Level, SloPlan, Spread, Workload, WorkloadSpec};
use cpu::CpuModel;
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
    /// Worker processes (--backend cpu: default 1).
    #[arg(long, default_value_t = 2, default_value_if("backend", "cpu", "1"))]
    pub(crate) workers: u32,
    /// Emulated GPUs per worker (--backend cpu: CPU devices per worker, default 1).
    #[arg(long, default_value_t = 2, default_value_if("backend", "cpu", "1"))]
    pub(crate) gpus_per_worker: u32,
    /// The backend and its settings.
    #[command(flatten)]
    pub(crate) cpu: CpuArgs,
    /// Model instances (spread over the built-in ResNet18/50/152 profiles, or --profiles;
    /// --backend cpu serves the one generated model).
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
    /// Default SLO in milliseconds (--backend cpu: default from --slo-factor; 0 means
    /// that).
    #[arg(long, default_value_t = 100.0, default_value_if("backend", "cpu", "0"))]
    pub(crate) slo_ms: f64,
    /// The workload (--backend cpu: default poisson).
    #[arg(long, value_enum, default_value_t = WorkloadKind::Azure,
          default_value_if("backend", "cpu", "poisson"))]
    pub(crate) workload: WorkloadKind,
    /// Offered load in requests/s for the open-loop workloads (Azure: the trace is
    /// scaled to this mean rate; --backend cpu: default from --load; 0 means that).
    #[arg(long, default_value_t = 600.0, default_value_if("backend", "cpu", "0"))]
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
    /// Tick guard period of the controller's and the workers' executors in
    /// microseconds (their `--tick-us`; docs/operations.md, "Idle CPU and the tick guard").
    #[arg(long, default_value_t = DEFAULT_TICK_US,
          value_parser = clap::value_parser!(u64).range(TICK_US_RANGE))]
    pub(crate) tick_us: u64,
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
        // 0: derived from the measured model (--backend cpu only).
        let auto = |v: f64| v == 0.0 && self.cpu.backend == BackendKind::Cpu;
        if !(self.slo_ms.is_finite() && self.slo_ms > 0.0 && self.slo_ms <= 3_600_000.0
            || auto(self.slo_ms))
        {
            bail!("--slo-ms must be a positive number of milliseconds");
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0
            || auto(self.rate))
        {
            bail!("--rate must be in (0, 1000000] requests/s");
        }
        self.cpu.validate()?;
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
    /// What executed the requests, in words.
    pub(crate) devices: String,
    /// Answers compared with a direct run (real devices only).
    pub(crate) output_check: Option<OutputCheck>,
    /// Settings resolved during the run (e.g. the measured model, the derived rate),
    /// added to the report's configuration.
    pub(crate) resolved: serde_json::Value,
}

/// The report's name for emulated devices.
const EMULATED_DEVICES: &str = "EMULATED GPUs";
/// The report's name for CPU devices.
const CPU_DEVICES: &str = "real (CPU, tract)";

/// Which models a run serves and what its requests carry.
enum Served {
    /// Emulated: register instances of these profiles (contiguous runs of one profile
    /// each); requests carry no input.
    Registered {
        profiles: Vec<ModelProfile>,
        runs: Vec<(usize, u32)>,
    },
    /// The controller's repository model `name`; requests carry inputs from the pool
    /// (request `n` input `n % len`); up to `check` answers are kept for the check.
    Repository {
        name: String,
        inputs: Rc<Vec<Vec<u8>>>,
        check: usize,
    },
}

/// An answer kept to compare with a direct run.
#[derive(Debug)]
pub(crate) struct Kept {
    input: usize,
    batch: u32,
    output: Vec<u8>,
}

/// The cores of a CPU run: each device's (worker by worker) and the one the network
/// executors, the controller and the driver share.
struct CpuCores {
    devices: Vec<Vec<usize>>,
    shared: Option<usize>,
}

impl CpuCores {
    /// Devices on the last cores, core 0 left to everything else (on a 1-core machine
    /// everything shares core 0).
    fn plan(workers: u32, per_worker: u32) -> anyhow::Result<Self> {
        let cores = cpu::cores();
        let total = (workers * per_worker) as usize;
        let spare = cores.saturating_sub(1).max(1);
        if total > spare {
            bail!(
                "--backend cpu: {workers} worker(s) x {per_worker} device(s) need {total} cores besides core 0; this machine has {cores}"
            );
        }
        let mut next = cores - 1;
        let devices = (0..workers)
            .map(|_| {
                (0..per_worker)
                    .map(|_| {
                        let c = next;
                        next = next.saturating_sub(1);
                        c
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            devices,
            shared: (cores > 1).then_some(0),
        })
    }
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
    let mut args = args.clone();
    let (served, b1, mut cpu_run) = match args.cpu.backend {
        BackendKind::Emulated => {
            let (profiles, runs, b1) = emulated_models(&args)?;
            (Served::Registered { profiles, runs }, b1, None)
        }
        BackendKind::Cpu => {
            let cores = CpuCores::plan(args.workers, args.gpus_per_worker)?;
            if !quiet {
                eprintln!(
                    "generating and measuring {} (in this process, on core {})...",
                    args.cpu.model_kind, cores.devices[0][0]
                );
            }
            let model =
                CpuModel::prepare(&out, args.cpu.model_kind, args.seed, cores.devices[0][0])?;
            let b1 = model.b1();
            let devices = f64::from(args.workers * args.gpus_per_worker);
            if args.rate == 0.0 {
                let rate =
                    (args.cpu.load * devices / (b1.get() as f64 / 1e9)).min(cpu::MAX_AUTO_RATE);
                // Rounded to 0.1 r/s, readable in the labels.
                args.rate = ((rate * 10.0).round() / 10.0).max(0.1);
            }
            if args.slo_ms == 0.0 {
                let slo = Nanos((b1.get() as f64 * args.cpu.slo_factor) as u64);
                // Rounded up to 0.1 ms.
                args.slo_ms = (slo.max(cpu::MIN_AUTO_SLO).get() as f64 / 1e5).ceil() / 10.0;
            }
            args.models = 1;
            args.active = 1;
            let served = Served::Repository {
                name: model.name.clone(),
                inputs: Rc::new(model.inputs.clone()),
                check: args.cpu.check_outputs,
            };
            (served, vec![b1], Some((model, cores)))
        }
    };
    let args = &args;
    let (spec, label, trace_source) = workload_spec(args)?;
    let spec_models = spec.models();
    if spec_models > args.models {
        bail!(
            "the {label} workload needs {spec_models} models; pass --models {spec_models} or more"
        );
    }
    let token = format!("local-{}", std::process::id());
    let devices = match &cpu_run {
        None => EMULATED_DEVICES.to_owned(),
        Some(_) => CPU_DEVICES.to_owned(),
    };
    if !quiet {
        match &cpu_run {
            None => eprintln!(
                "local cluster: {} worker process(es) x {} EMULATED GPU(s), {} models, workload {label}, {:?}; output in {}",
                args.workers,
                args.gpus_per_worker,
                args.models,
                args.duration,
                out.display()
            ),
            Some((model, cores)) => eprintln!(
                "local cluster: {} worker process(es) x {} CPU device(s), real compute (tract), cores {:?}; model {} (batch 1 measured {:.3} ms, p99 {:.3} ms), {:.1} r/s, SLO {} ms, workload {label}, {:?}; output in {}",
                args.workers,
                args.gpus_per_worker,
                cores.devices,
                model.name,
                b1[0].get() as f64 / 1e6,
                model.measured.batches.first().map_or(0.0, |b| b.p99.get() as f64 / 1e6),
                args.rate,
                args.slo_ms,
                args.duration,
                out.display()
            ),
        }
    }
    let mut workers = Vec::new();
    for i in 0..args.workers {
        // `clockwork-worker`'s flags (see `cluster`).
        let mut worker = match &cpu_run {
            None => WorkerCommand::emulated(
                &token,
                args.gpus_per_worker,
                args.noise,
                args.seed + u64::from(i),
            ),
            Some((_, cores)) => {
                let engine = &cores.devices[i as usize];
                let w = WorkerCommand::new(&token)
                    .flag("--cpu", args.gpus_per_worker)
                    .flag(
                        "--engine-cpus",
                        engine
                            .iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                match cores.shared {
                    Some(c) => w.flag("--net-cpu", c),
                    None => w,
                }
            }
        };
        worker = worker
            .flag("--name", format!("local-worker-{i}"))
            .flag("--tick-us", args.tick_us);
        workers.push(worker.start(&format!("worker {i}"), &out.join(format!("worker-{i}.log")))?);
    }
    let client_addr = free_addr()?;
    // `clockwork-controller`'s flags (see `cluster`).
    let mut controller_command = ControllerCommand::new(client_addr, &workers, &token)
        .flag("--slo-ms", args.slo_ms)
        .flag("--log-dir", out.display())
        .flag("--schedule-ahead-ms", args.schedule_ahead_ms)
        .flag("--tick-us", args.tick_us);
    let mut client_cpu = None;
    if let Some((model, cores)) = &cpu_run {
        controller_command =
            controller_command.flag("--model-repository", model.repository.display());
        if let Some(c) = cores.shared {
            controller_command = controller_command.flag("--cpu", c);
            client_cpu = Some(c);
        }
    }
    // The HTTP port is a convenience of the main job: if it is taken, say so and go on.
    let http = !args.no_http && std::net::TcpListener::bind(args.http).is_ok();
    if http {
        controller_command = controller_command.flag("--http", args.http);
        // The README's curl examples register and unload models while it runs: on
        // loopback the admin endpoints are open (docs/http.md, "Admin surface").
        if args.http.ip().is_loopback() {
            controller_command = controller_command.switch("--admin-open");
        }
    } else if !args.no_http {
        eprintln!("warning: {} is in use; running without the HTTP front end (choose another with --http ADDR)", args.http);
    }
    let mut controller = controller_command.start(&out.join("controller.log"))?;
    if http && !quiet {
        eprintln!("  HTTP (Open Inference Protocol, /metrics) on http://{} while it runs; see docs/http.md", args.http);
    }
    let workload = Workload::new(&spec, args.seed)
        .map_err(|e| anyhow!("{e}"))?
        .with_end(Nanos::from(args.duration));
    let duration = args.duration;
    let slo_default = Nanos((args.slo_ms * 1e6) as u64);
    let cpu_before = controller.cpu_seconds();
    let mut executor = ExecutorConfig::named("local-client");
    if let Some(c) = client_cpu {
        executor = executor.with_cpu(c);
    }
    let result = run_here(executor, async move {
        drive(
            client_addr,
            &token,
            served,
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
    let driven = result?;
    let (output_check, resolved) = match &mut cpu_run {
        None => (None, serde_json::Value::Null),
        Some((model, cores)) => {
            let mut mismatches = 0;
            for k in &driven.kept {
                if !model.matches(k.input, k.batch, &k.output)? {
                    mismatches += 1;
                }
            }
            let check = OutputCheck {
                checked: driven.kept.len() as u64,
                mismatches,
                against: format!(
                    "tract run in the driver, same input in row 0 of the same planned batch size of {}",
                    model.name
                ),
            };
            let resolved = serde_json::json!({
                "backend": "cpu",
                "model": model.name,
                "device_cores": cores.devices,
                "measured_b1_p50_ms": model.b1().get() as f64 / 1e6,
                "measured": model.measured.batches.iter().map(|b| serde_json::json!({
                    "batch_size": b.batch_size,
                    "p50_ms": b.p50.get() as f64 / 1e6,
                    "p99_ms": b.p99.get() as f64 / 1e6,
                })).collect::<Vec<_>>(),
                "rate": args.rate,
                "slo_ms": args.slo_ms,
            });
            (Some(check), resolved)
        }
    };
    Ok(RunOutcome {
        samples: driven.samples,
        offered: driven.sent,
        unanswered: driven.unanswered,
        controller_cpu_s: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        out,
        label,
        trace_source,
        duration,
        devices,
        output_check,
        resolved,
    })
}

/// The emulated run's profiles, their registration runs, and each instance's batch-1
/// time (to turn SLO factors into milliseconds).
#[allow(clippy::type_complexity)]
fn emulated_models(
    args: &LocalArgs,
) -> anyhow::Result<(Vec<ModelProfile>, Vec<(usize, u32)>, Vec<Nanos>)> {
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
    let spread = models_spread(args.models, &profiles, Spread::Shuffled { seed: args.seed });
    let runs = registration_runs(&spread);
    let b1: Vec<Nanos> = runs
        .iter()
        .flat_map(|&(p, n)| std::iter::repeat_n(profiles[p].batches[0].exec_time, n as usize))
        .collect();
    Ok((profiles, runs, b1))
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
    /// The input pool entry the request carried (repository models).
    input: Option<usize>,
}

/// What the replay produced.
struct Driven {
    samples: Vec<Sample>,
    sent: u64,
    unanswered: Vec<(Nanos, u32, Nanos)>,
    kept: Vec<Kept>,
}

/// Register the emulated models; returns the first model id (0).
async fn register(
    client: &mut Client,
    profiles: &[ModelProfile],
    runs: &[(usize, u32)],
) -> anyhow::Result<u32> {
    // Contiguous runs of one profile each; ids follow in order.
    let mut next = 0u32;
    for &(profile, count) in runs {
        let (first, n) = client.register(profiles[profile].clone(), count).await?;
        if first.0 != next || n != count {
            bail!("controller numbered models unexpectedly ({first:?} x {n}, expected m{next} x {count})");
        }
        next += count;
    }
    // Wait until the workers have joined: a probe is no longer answered Unavailable.
    for _ in 0..500 {
        let r = client.infer(ModelId(0), Slo::Default, Vec::new()).await?;
        if r.status != ClientStatus::Unavailable {
            return Ok(0);
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    bail!("the controller reports no GPUs after 10 s: workers did not join")
}

/// Find the repository model `name` and wait until it has answered once with success
/// (the workers have joined and measured it, and a device has loaded it); returns its id.
async fn await_served(client: &mut Client, name: &str, slo: Nanos) -> anyhow::Result<u32> {
    let models = client.list_models().await?;
    let id = models
        .iter()
        .find(|m| m.name == name)
        .or_else(|| models.first().filter(|_| models.len() == 1))
        .map(|m| m.id)
        .ok_or_else(|| anyhow!("the controller does not serve `{name}` (it lists {models:?})"))?;
    let t0 = MonotonicClock::read();
    let mut last = None;
    while MonotonicClock::read() - t0 < Nanos::from_secs(60) {
        let r = client.infer(id, Slo::Absolute(slo), Vec::new()).await?;
        if r.status == ClientStatus::Success {
            return Ok(id.0);
        }
        last = Some(r.status);
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    bail!("`{name}` was not served within 60 s (last answer: {last:?}); see the worker and controller logs")
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    addr: SocketAddr,
    token: &str,
    served: Served,
    b1: Vec<Nanos>,
    workload: Workload,
    duration: Duration,
    slo_default: Nanos,
    quiet: bool,
) -> anyhow::Result<Driven> {
    let mut client = connect(addr, token).await?;
    let (first_id, inputs, check) = match served {
        Served::Registered { profiles, runs } => {
            (register(&mut client, &profiles, &runs).await?, None, 0)
        }
        Served::Repository {
            name,
            inputs,
            check,
        } => (
            await_served(&mut client, &name, slo_default).await?,
            Some(inputs),
            check,
        ),
    };
    let (tx, rx, _) = client.into_split();
    let workload = Rc::new(RefCell::new(workload));
    let inflight: Rc<RefCell<HashMap<RequestId, InFlight>>> = Rc::new(RefCell::new(HashMap::new()));
    let samples: Rc<RefCell<Vec<Sample>>> = Rc::new(RefCell::new(Vec::new()));
    let kept: Rc<RefCell<Vec<Kept>>> = Rc::new(RefCell::new(Vec::new()));
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
                let input = inputs.as_ref().map(|pool| {
                    let ix = (sent.get() % pool.len().max(1) as u64) as usize;
                    (ix, pool[ix].clone())
                });
                let target = Target {
                    model_base: first_id,
                    start,
                    slo,
                };
                if let Err(e) = send_one(&mut tx, &inflight, a, &target, input).await {
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
            kept: kept.clone(),
            keep: check,
            successes: Cell::new(0),
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
    let kept = std::mem::take(&mut *kept.borrow_mut());
    Ok(Driven {
        samples,
        sent: sent.get(),
        unanswered,
        kept,
    })
}

/// Where a request goes: model ids start at `model_base`; times are from `start`.
struct Target {
    model_base: u32,
    start: Nanos,
    slo: Nanos,
}

async fn send_one(
    tx: &mut ClientSender,
    inflight: &Rc<RefCell<HashMap<RequestId, InFlight>>>,
    a: Arrival,
    target: &Target,
    input: Option<(usize, Vec<u8>)>,
) -> anyhow::Result<()> {
    let model = u32::try_from(a.model).unwrap_or(u32::MAX);
    let sent_at = MonotonicClock::read() - target.start;
    let id = tx.next_id();
    let (input_ix, bytes) = match input {
        Some((ix, bytes)) => (Some(ix), bytes),
        None => (None, Vec::new()),
    };
    inflight.borrow_mut().insert(
        id,
        InFlight {
            sent_at,
            model,
            slo: target.slo,
            input: input_ix,
        },
    );
    // A repository model's own default SLO would apply to `Slo::Default`: requests that
    // carry inputs say theirs.
    let slo = if input_ix.is_some() {
        Slo::Absolute(target.slo)
    } else {
        a.slo
    };
    tx.send(&clockwork_core::ClientRequest::Infer(
        clockwork_core::InferRequest {
            id,
            model: ModelId(target.model_base.saturating_add(model)),
            slo,
            input: bytes.into(),
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
    /// Answers kept for the output check, at most `keep`: the first half of them, then
    /// every 16th success.
    kept: Rc<RefCell<Vec<Kept>>>,
    keep: usize,
    successes: Cell<u64>,
}

impl ReceiverState {
    fn maybe_keep(&self, input: Option<usize>, batch: u32, output: &[u8]) {
        let Some(input) = input else { return };
        let n = self.successes.get();
        self.successes.set(n + 1);
        let mut kept = self.kept.borrow_mut();
        if kept.len() < self.keep && (kept.len() < self.keep / 2 || n.is_multiple_of(16)) {
            kept.push(Kept {
                input,
                batch,
                output: output.to_vec(),
            });
        }
    }
}

async fn receive(mut rx: ClientReceiver, st: ReceiverState) {
    while let Ok(resp) = rx.recv().await {
        let ClientResponse::Inferred(r) = resp else {
            continue;
        };
        let now = MonotonicClock::read() - st.start;
        let Some(f) = st.inflight.borrow_mut().remove(&r.id) else {
            continue;
        };
        let latency = now - f.sent_at;
        st.progress.borrow_mut().answered(
            latency.get(),
            r.status.is_success(),
            r.status.is_success() && latency <= f.slo,
        );
        st.samples.borrow_mut().push(Sample {
            sent_at: f.sent_at,
            latency,
            status: r.status,
            model: f.model,
            slo: f.slo,
        });
        if r.status.is_success() {
            st.maybe_keep(f.input, r.batch_size, &r.output);
        }
        if st.stopped.get() {
            continue;
        }
        let next = if r.status.is_success() {
            st.workload.borrow_mut().on_response(f.model as usize, now)
        } else {
            st.workload
                .borrow_mut()
                .on_refused(f.model as usize, now, f.sent_at + f.slo)
        };
        match next {
            Some(next) if next.at > now => {
                // A refused client waits until its request's deadline.
                let queue = st.queue.clone();
                let wait = Duration::from(next.at - now);
                glommio::spawn_local(async move {
                    glommio::timer::sleep(wait).await;
                    let _ = queue.try_send(next);
                })
                .detach();
            }
            Some(next) => {
                let _ = st.queue.try_send(next);
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
    let mut config = args_json;
    if let (Some(c), Some(resolved)) = (config.as_object_mut(), o.resolved.as_object()) {
        c.insert(
            "resolved".into(),
            serde_json::Value::Object(resolved.clone()),
        );
    }
    let meta = RunMeta {
        workload: o.label.clone(),
        trace_source: o.trace_source.clone(),
        emulated: o.devices == EMULATED_DEVICES,
        duration_s: Some(o.duration.as_secs_f64()),
        config,
        controller_cpu_s_per_request: o.controller_cpu_s.map(|c| c / requests),
        log_origin_ns: None,
    };
    let data = RunData {
        client: Some(client),
        logs,
    };
    let mut report = RunReport::compute(&meta, &data);
    report.devices.clone_from(&o.devices);
    report.output_check.clone_from(&o.output_check);
    Ok((report, data))
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
        "tick_us": a.tick_us,
        "backend": format!("{:?}", a.cpu.backend).to_lowercase(),
        "model_kind": (a.cpu.backend == BackendKind::Cpu).then(|| a.cpu.model_kind.name()),
        "load": a.cpu.load,
        "slo_factor": a.cpu.slo_factor,
    })
}
