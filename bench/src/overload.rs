//! `clockwork-bench overload`: issue 14's overload goal on real processes. A controller
//! and emulated workers (one **emulated** GPU each) run as processes on loopback
//! (`cluster`); model instances are registered over the native protocol; the load
//! generator (`loadgen`) offers Poisson load over HTTP at a multiple (default 1.5x) of
//! the cluster's capacity, every request with the same SLO.
//!
//! Capacity comes from the profile: GPUs x the best throughput of any batch size
//! whose execution fits in the SLO. A request the controller cannot serve is answered
//! 429; the goal is that refused requests are answered in under a tenth of their SLO
//! at p50. Refusal latency is read on both sides: the load generator's (from each
//! request's scheduled send time) and the controller's request log (from arrival at
//! the controller, with the status: refused at admission or timed out in a queue).
//!
//! Two runs, each on a fresh cluster: `steady` (all workers up) and, unless
//! `--no-kill`, `worker-killed` (one worker SIGKILLed halfway; the rest must carry
//! the load). `--slowdown K` multiplies every execution and load time of the profile
//! and the SLO by K, so that a small or debug build can keep up with the request rate
//! (capacity / K).

use crate::cluster::{free_addr, ControllerCommand, WorkerCommand};
use crate::loadgen::{self, Arrivals, LoadResult, LoadSpec, OpenSource, RetryPolicy};
use crate::stats::histogram;
use crate::tight_slo::{register, wait_ready};
use anyhow::{anyhow, bail, Context as _};
use clockwork_bench::report::{read_request_log, REQUEST_LOG_FILE};
use clockwork_core::model::resnet50;
use clockwork_core::telemetry::RequestLog;
use clockwork_core::{ClientStatus, ModelProfile, MonotonicClock, Nanos, StatusGroup};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `overload`.
#[derive(clap::Args, Debug)]
pub(crate) struct OverloadArgs {
    /// Load per run.
    #[arg(long, default_value = "20s", value_parser = crate::duration::parse_duration)]
    duration: Duration,
    /// Worker processes, one emulated GPU each.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Model instances (V100 ResNet-50 profile), spread by the controller.
    #[arg(long, default_value_t = 15)]
    instances: u32,
    /// The SLO of every request, ms (before --slowdown).
    #[arg(long, default_value_t = 100.0)]
    slo_ms: f64,
    /// Offered load as a multiple of the cluster's capacity.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Multiply the profile's times and the SLO by this (a slower emulated GPU, for
    /// small machines and debug builds).
    #[arg(long, default_value_t = 1.0)]
    slowdown: f64,
    /// Skip the run with one worker killed halfway.
    #[arg(long)]
    no_kill: bool,
    /// Keep-alive connections of the load generator (HTTP/1.1: one request in flight
    /// each). Default: enough for twice the offered rate times the SLO, at least 64.
    #[arg(long)]
    connections: Option<u32>,
    /// Pin the load generator to this CPU (default: the last one).
    #[arg(long)]
    cpu: Option<usize>,
    /// Relative timing noise of the emulated GPUs (normal, sigma as a fraction).
    #[arg(long, default_value_t = 0.02)]
    noise: f64,
    /// Seed of the arrivals.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder for the processes' logs and request logs (default:
    /// out/overload-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The goal: refusals answered within this fraction of the SLO at p50.
const GOAL_FRACTION: f64 = 0.1;

/// `profile` with every time multiplied by `k` (renamed, so it is not mistaken for
/// the real one).
fn slowed(profile: ModelProfile, k: f64) -> ModelProfile {
    if k == 1.0 {
        return profile;
    }
    let scale = |n: Nanos| Nanos((n.get() as f64 * k).round() as u64);
    let mut p = profile;
    p.name = format!("{}_x{k}", p.name);
    p.load_time = scale(p.load_time);
    for b in &mut p.batches {
        b.exec_time = scale(b.exec_time);
    }
    p
}

/// Requests per second one GPU serves at best with batches that fit in `slo`.
fn gpu_capacity(profile: &ModelProfile, slo: Nanos) -> f64 {
    profile
        .batches
        .iter()
        .filter(|b| b.exec_time < slo)
        .map(|b| f64::from(b.batch_size) / (b.exec_time.get() as f64 / 1e9))
        .fold(0.0, f64::max)
}

/// One run's settings.
struct RunPlan {
    name: &'static str,
    profile: ModelProfile,
    slo: Duration,
    rate: f64,
    /// Kill one worker this far into the load.
    kill_after: Option<Duration>,
    /// The load generator's connections.
    connections: u32,
}

/// What one run measured.
struct RunResult {
    load: LoadResult,
    log: Vec<RequestLog>,
    /// When a worker was killed, on the monotonic clock.
    killed_at: Option<Nanos>,
}

/// Wait until the controller's `/metrics` shows `n` connected workers.
fn wait_workers(http: SocketAddr, n: u32) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let url = format!("http://{http}/metrics");
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let text = agent
            .get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        let joined = text
            .lines()
            .find_map(|l| l.strip_prefix("clockwork_workers_connected "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if joined >= f64::from(n) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("fewer than {n} workers joined the controller within 30 s")
}

fn run_once(args: &OverloadArgs, plan: &RunPlan, dir: &Path) -> anyhow::Result<RunResult> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = format!("overload-{}", std::process::id());
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let name = format!("overload-worker-{i}");
        workers.push(
            WorkerCommand::emulated(&token, 1, args.noise, u64::from(i) + 1)
                .flag("--name", &name)
                .start(&name, &dir.join(format!("worker-{i}.log")))?,
        );
    }
    let client_addr = free_addr()?;
    let http_addr = free_addr()?;
    // A lost worker is retried every 200 ms: the kill run's dead worker stays dead.
    let mut controller = ControllerCommand::new(client_addr, &workers, &token)
        .reconnect_ms(200)
        .flag("--http", http_addr)
        .flag("--http-max-connections", plan.connections + 64)
        .flag("--log-dir", dir.display())
        .start(&dir.join("controller.log"))?;
    let models = register(client_addr, &token, plan.profile.clone(), args.instances)?;
    wait_ready(http_addr)?;
    wait_workers(http_addr, args.workers)?;
    let spec = LoadSpec {
        url: format!("http://{http_addr}"),
        models: models.iter().map(u32::to_string).collect(),
        slos: vec![plan.slo],
        body: json!({ "inputs": [] }),
        arrivals: Arrivals::Open {
            source: OpenSource::Poisson { rate: plan.rate },
            connections: plan.connections,
        },
        duration: args.duration,
        drain: None,
        retry: RetryPolicy::Never,
        max_retries: 0,
        cpu: args.cpu,
        spin: None,
        seed: args.seed,
        progress: true,
    };
    let load = std::thread::spawn(move || loadgen::run_load(&spec));
    let mut killed_at = None;
    if let Some(after) = plan.kill_after {
        // Counted from the thread's start: the load generator first opens its
        // connections (up to a second for hundreds in a debug build), so the kill
        // comes that much before halfway; the JSON says when it came.
        std::thread::sleep(after);
        let victim = workers
            .last_mut()
            .ok_or_else(|| anyhow!("no worker to kill"))?;
        eprintln!("overload: SIGKILL {} (pid {:?})", victim.name, victim.pid());
        victim.kill()?;
        killed_at = Some(MonotonicClock::read());
    }
    let load = load
        .join()
        .map_err(|_| anyhow!("the load generator thread panicked"))?;
    controller.stop(Duration::from_secs(20))?;
    for w in &mut workers {
        w.stop(Duration::from_secs(10))?;
    }
    let load = load?;
    let ids: HashSet<u32> = models.iter().copied().collect();
    let log = read_request_log(&dir.join(REQUEST_LOG_FILE))
        .map_err(|e| anyhow!("controller request log: {e}"))?
        .into_iter()
        .filter(|r| r.arrival() >= load.started_at && ids.contains(&r.model_id))
        .collect();
    Ok(RunResult {
        load,
        log,
        killed_at,
    })
}

/// `q` of `h` as a fraction of `slo` (`None` when empty).
fn frac_of_slo(h: &Histogram<u64>, q: f64, slo: Nanos) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q).min(h.max()) as f64 / slo.get() as f64)
}

fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q).min(h.max()) as f64 / 1e6)
}

/// The controller's side of a run from its request log: answers by status, and the
/// latency of the unsuccessful ones (arrival to answer) as fractions of the SLO.
fn controller_side(log: &[RequestLog], slo: Nanos, since: Option<Nanos>) -> Value {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = histogram();
    let (mut total, mut within, mut at_admission, mut late_success) = (0u64, 0u64, 0u64, 0u64);
    let mut seen = HashSet::new();
    let mut duplicates = 0u64;
    for r in log
        .iter()
        .filter(|r| since.is_none_or(|t| r.arrival() >= t))
    {
        total += 1;
        if !seen.insert((r.user_id, r.request_id)) {
            duplicates += 1;
        }
        let status = ClientStatus::from_code(r.result);
        let label = status.map_or_else(|| format!("code {}", r.result), |s| s.label().to_owned());
        *by_status.entry(label).or_default() += 1;
        if status == Some(ClientStatus::Success) {
            if r.deadline_met {
                within += 1;
            } else {
                late_success += 1;
            }
            continue;
        }
        // Refused on arrival (rejected, unavailable, ...), not answered late.
        if status.is_some_and(|s| s.group() == StatusGroup::Refused) {
            at_admission += 1;
        }
        failed.saturating_record(r.latency.get().max(1));
    }
    let unsuccessful = total - within - late_success;
    json!({
        "requests": total,
        "within_slo": within,
        "late_successes": late_success,
        "by_status": by_status,
        "duplicate_answers": duplicates,
        "unsuccessful": unsuccessful,
        "refused_at_admission": at_admission,
        "unsuccessful_p50_slo_fraction": frac_of_slo(&failed, 0.5, slo),
        "unsuccessful_p99_slo_fraction": frac_of_slo(&failed, 0.99, slo),
    })
}

fn run_json(args: &OverloadArgs, plan: &RunPlan, capacity: f64, r: &RunResult) -> Value {
    let slo = Nanos::from(plan.slo);
    let class = &r.load.tally.classes[0];
    let t = r.load.tally.totals();
    let refusal_p50 = frac_of_slo(&class.refused_latency, 0.5, slo);
    let goal_met = refusal_p50.is_some_and(|f| f < GOAL_FRACTION);
    let mut v = json!({
        "run": plan.name,
        "workers": args.workers,
        "instances": args.instances,
        "profile": plan.profile.name,
        "slo_ms": plan.slo.as_secs_f64() * 1e3,
        "capacity_rps": capacity,
        "offered_rps": plan.rate,
        "connections": plan.connections,
        "duration_s": r.load.secs,
        "sent": t.sent,
        "ok": t.ok,
        "within_slo": t.within_slo,
        "refused": t.refused,
        "errors": t.errors,
        "errors_by_kind": r.load.tally.errors_by_kind,
        "not_sent": r.load.not_sent,
        "goodput_rps": t.within_slo as f64 / r.load.secs.max(1e-9),
        "refusal_p50_slo_fraction": refusal_p50,
        "refusal_p99_slo_fraction": frac_of_slo(&class.refused_latency, 0.99, slo),
        "refusal_p50_ms": ms(&class.refused_latency, 0.5),
        "refusal_p99_ms": ms(&class.refused_latency, 0.99),
        "success_p50_ms": ms(&class.ok_latency, 0.5),
        "success_p99_ms": ms(&class.ok_latency, 0.99),
        "controller": controller_side(&r.log, slo, None),
        "goal_met": goal_met,
    });
    if let Some(k) = r.killed_at {
        v["killed_after_s"] = json!(k.saturating_sub(r.load.started_at).get() as f64 / 1e9);
        v["controller_after_kill"] = controller_side(&r.log, slo, Some(k));
    }
    v
}

/// `clockwork-bench overload`.
pub(crate) fn run(args: &OverloadArgs) -> anyhow::Result<()> {
    if args.workers == 0 || args.workers > 16 {
        bail!("--workers must be 1..=16");
    }
    if !args.no_kill && args.workers < 2 {
        bail!("the worker-killed run needs --workers 2 or more (or --no-kill)");
    }
    if args.instances == 0 || args.instances > 10_000 {
        bail!("--instances must be 1..=10000");
    }
    if !(args.slo_ms.is_finite() && args.slo_ms > 0.0) {
        bail!("--slo-ms must be positive");
    }
    if !(args.factor.is_finite() && args.factor > 0.0 && args.factor <= 100.0) {
        bail!("--factor must be in (0, 100]");
    }
    if !(args.slowdown.is_finite() && (1.0..=1000.0).contains(&args.slowdown)) {
        bail!("--slowdown must be in [1, 1000]");
    }
    if !(0.0..1.0).contains(&args.noise) {
        bail!("--noise must be in [0, 1)");
    }
    let profile = slowed(resnet50(), args.slowdown);
    let slo = Duration::from_secs_f64(args.slo_ms * args.slowdown / 1e3);
    let per_gpu = gpu_capacity(&profile, Nanos::from(slo));
    if per_gpu <= 0.0 {
        bail!("no batch size of {} runs within the SLO", profile.name);
    }
    let capacity = per_gpu * f64::from(args.workers);
    let rate = capacity * args.factor;
    // Fewer connections than requests in flight would queue requests in the load
    // generator and charge that wait to the controller.
    let connections = args
        .connections
        .unwrap_or_else(|| ((2.0 * rate * slo.as_secs_f64()).ceil() as u32).clamp(64, 10_000));
    if connections == 0 || connections > 10_000 {
        bail!("--connections must be 1..=10000");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("out/overload-{t}"))
    });
    let cpus = loadgen::cpus();
    let note = format!(
        "EMULATED GPUs ({} worker(s), 1 GPU each); controller, workers and load generator share this machine's {cpus} CPU(s), the load generator pinned to CPU {}",
        args.workers,
        args.cpu.unwrap_or(cpus - 1)
    );
    let mut plans = vec![RunPlan {
        name: "steady",
        profile: profile.clone(),
        slo,
        rate,
        kill_after: None,
        connections,
    }];
    if !args.no_kill {
        plans.push(RunPlan {
            name: "worker-killed",
            profile,
            slo,
            rate,
            kill_after: Some(args.duration / 2),
            connections,
        });
    }
    eprintln!(
        "overload: capacity {capacity:.0} r/s ({per_gpu:.0} per GPU), offering {rate:.0} r/s ({}x), SLO {:?}; {note}; logs in {}",
        args.factor,
        slo,
        out.display()
    );
    let mut runs = Vec::new();
    for plan in &plans {
        eprintln!("overload: run {} for {:?}", plan.name, args.duration);
        let r = run_once(args, plan, &out.join(plan.name))?;
        let v = run_json(args, plan, capacity, &r);
        eprintln!(
            "overload: run {}: sent {}, ok {}, within SLO {}, refused {}, errors {}; refusal p50 {} of the SLO",
            plan.name,
            v["sent"],
            v["ok"],
            v["within_slo"],
            v["refused"],
            v["errors"],
            v["refusal_p50_slo_fraction"]
        );
        runs.push(v);
    }
    println!("overload: {note}");
    println!(
        "{:<14} {:>9} {:>9} {:>8} {:>8} {:>7} {:>13} {:>13} {:>10} {:>10}",
        "run",
        "offered/s",
        "goodput/s",
        "sent",
        "refused",
        "errors",
        "refusal p50/S",
        "refusal p99/S",
        "ok p50 ms",
        "ok p99 ms"
    );
    let f = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
    };
    for v in &runs {
        println!(
            "{:<14} {:>9.0} {:>9.0} {:>8} {:>8} {:>7} {:>13} {:>13} {:>10} {:>10}",
            v["run"].as_str().unwrap_or_default(),
            v["offered_rps"].as_f64().unwrap_or_default(),
            v["goodput_rps"].as_f64().unwrap_or_default(),
            v["sent"],
            v["refused"],
            v["errors"],
            f(&v["refusal_p50_slo_fraction"]),
            f(&v["refusal_p99_slo_fraction"]),
            f(&v["success_p50_ms"]),
            f(&v["success_p99_ms"]),
        );
    }
    let all_goals = runs.iter().all(|v| v["goal_met"] == true);
    println!(
        "{}",
        json!({
            "bench": "overload",
            "emulated": true,
            "factor": args.factor,
            "slowdown": args.slowdown,
            "goal": format!("refusal p50 < {GOAL_FRACTION} x SLO"),
            "note": note,
            "runs": runs,
            "all_goals_met": all_goals,
        })
    );
    Ok(())
}
