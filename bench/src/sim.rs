//! `clockwork-bench sim`: the real scheduler driven by simulated workers in virtual
//! time (`clockwork_sim`), under a seeded open-loop workload.
//!
//! Prints goodput, SLO attainment, latency percentiles, cold starts, LOADs/UNLOADs,
//! the simulator's wall time and real-time factor (simulated seconds per wall second),
//! and the invariant checks; the last line is JSON.

use anyhow::{anyhow, bail, Context as _};
use clockwork_bench::scenario::{azure_replay, register_spread};
use clockwork_core::model::{builtin_profiles, resnet50};
use clockwork_core::{ModelProfile, Nanos, Slo};
use clockwork_scheduler::Config;
use clockwork_sim::presets::Case;
use clockwork_sim::{NoiseModel, SimConfig, SimReport, Simulation, Stalls};
use clockwork_workload::azure::{AzureReplay, TraceSource};
use clockwork_workload::{
    ArrivalSource, AzureLike, AzureLikeConfig, OpenLoop, OpenLoopSpec, RateSplit,
};
use std::path::PathBuf;
use std::time::Instant;

/// Which arrival process.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkloadKind {
    /// Heavy-tailed (lognormal) per-model rates, half the models bursty (on/off).
    AzureLike,
    /// Poisson, models Zipf-skewed by `--zipf` (0: uniform).
    Poisson,
    /// The Azure Functions trace replay of the main job and `experiment 6.5` (the
    /// synthetic trace unless `--trace-dir`); `--rate` is the day's mean rate.
    AzureTrace,
}

/// Distribution of the devices' timing noise.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoiseKind {
    /// Uniform in `1 ± noise`.
    Uniform,
    /// Normal with sigma `noise` (as the emulated GPUs of the main job).
    Normal,
}

/// Which models.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mix {
    /// All ResNet50 copies (the paper's §6.2/§6.6 setup).
    Resnet50,
    /// ResNet18, ResNet50 and ResNet152 copies in equal numbers, interleaved.
    Zoo,
}

/// Ready-made cases (`clockwork_sim::presets`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Preset {
    /// H200 ResNet-50 fp16 (10 models, 1,500 r/s; SLO 10/5/2.5 ms) and V100 ResNet-50
    /// (15 models, 211 r/s; SLO 10/25 ms), each against the simple EDF baseline.
    TightSlo,
    /// V100 ResNet-50, 15 models on one GPU, 100 ms SLO, 1.5x its best throughput.
    Overload,
}

/// Arguments of `sim`.
#[derive(clap::Args, Debug)]
pub(crate) struct SimArgs {
    /// Simulated GPUs.
    #[arg(long, default_value_t = 8)]
    gpus: u32,
    /// GPUs per simulated worker.
    #[arg(long, default_value_t = 8)]
    gpus_per_worker: u32,
    /// Model instances.
    #[arg(long, default_value_t = 1000)]
    models: u32,
    /// Simulated time with arrivals (e.g. 60s, 500ms, 2m). Default 60 s (20 s for a
    /// preset).
    #[arg(long, value_parser = crate::duration::parse_nanos)]
    duration: Option<Nanos>,
    /// Arrival process.
    #[arg(long, value_enum, default_value_t = WorkloadKind::AzureLike)]
    workload: WorkloadKind,
    /// Total request rate (r/s). Default: `--load` × the batch-1 capacity of the GPUs.
    #[arg(long)]
    rate: Option<f64>,
    /// Offered load as a fraction of batch-1 capacity (GPUs / mean b1 time), used when
    /// `--rate` is not given. Batching raises real capacity above this baseline.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// SLO of every request, in ms.
    #[arg(long, default_value_t = 100.0)]
    slo_ms: f64,
    /// Zipf exponent of the Poisson workload (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Model mix.
    #[arg(long, value_enum, default_value_t = Mix::Resnet50)]
    mix: Mix,
    /// Seed of the workload, the devices' noise and the scheduler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timing noise of the simulated devices (fraction: half-width or sigma).
    #[arg(long, default_value_t = 0.05)]
    noise: f64,
    /// Distribution of the timing noise.
    #[arg(long, value_enum, default_value_t = NoiseKind::Uniform)]
    noise_shape: NoiseKind,
    /// Warm-up before `--duration`: arrivals in it are served but not measured (the
    /// paper's 6.5 excluded a 10-minute lead-in), e.g. 60s.
    #[arg(long, value_parser = crate::duration::parse_nanos)]
    warmup: Option<Nanos>,
    /// azure-trace: directory with the real Azure Functions 2019 files (default: the
    /// synthetic trace).
    #[arg(long)]
    trace_dir: Option<PathBuf>,
    /// azure-trace: trace day (1-14).
    #[arg(long, default_value_t = 1)]
    day: u8,
    /// azure-trace: trace minute the replay starts at (default 10:00, as the main job).
    #[arg(long, default_value_t = 600)]
    start_minute: usize,
    /// One-way network latency, µs. Default 50 (150 for a preset).
    #[arg(long)]
    net_us: Option<u64>,
    /// Mean of a random extra one-way delay per message, µs (exponential, seeded; each
    /// link still delivers in order). Default 0: every message takes exactly
    /// `--net-us`. Applies to presets too.
    #[arg(long, default_value_t = 0)]
    net_jitter_us: u64,
    /// Pauses of the host per second, on average (Poisson): while one lasts no message
    /// arrives, and every message due during it arrives when it ends. Default 0: the
    /// host never stalls. Applies to presets too.
    #[arg(long, default_value_t = 0.0)]
    stalls_per_s: f64,
    /// Mean length of a pause of the host, µs (exponential; with --stalls-per-s).
    #[arg(long, default_value_t = 1000)]
    stall_us: u64,
    /// Run a preset instead: `tight-slo` (issue 13's rows against the simple EDF
    /// baseline) or `overload` (issue 14: 1.5x overload, the latency of refusals). Only
    /// --duration, --net-us, --net-jitter-us, --seed, --estimator-percentile and
    /// --late-failure-share apply.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Scheduler schedule-ahead, ms.
    #[arg(long, default_value_t = 10.0)]
    schedule_ahead_ms: f64,
    /// The percentile of recent runs the scheduler estimates execution times at (the
    /// controller's `--estimator-percentile`; default its 0.9). Applies to presets too.
    #[arg(long)]
    estimator_percentile: Option<f64>,
    /// The share of admitted requests failing late below which a request only the
    /// rollout doubts is queued anyway (the controller's `--late-failure-share`; default
    /// its 0.1). Applies to presets too.
    #[arg(long)]
    late_failure_share: Option<f64>,
    /// Weights-cache pages per GPU (1376 = 21.5 GiB).
    #[arg(long, default_value_t = 1376)]
    pages: u32,
}

fn ms(v: f64) -> Nanos {
    Nanos((v * 1e6) as u64)
}

/// `cfg` with the scheduler settings the flags override.
fn with_overrides(a: &SimArgs, mut cfg: Config) -> Config {
    if let Some(p) = a.estimator_percentile {
        cfg.estimator_percentile = p;
    }
    if let Some(s) = a.late_failure_share {
        cfg.late_failure_share = s;
    }
    cfg
}

/// The scheduler settings the flags override, checked before anything runs.
fn check_overrides(a: &SimArgs) -> anyhow::Result<()> {
    with_overrides(a, Config::default())
        .validate()
        .map_err(|e| {
            anyhow!(
                "--estimator-percentile must be in (0, 1] and --late-failure-share in [0, 1]: {e}"
            )
        })
}

pub(crate) fn run(a: &SimArgs) -> anyhow::Result<()> {
    check_overrides(a)?;
    let stalls = host_stalls(a)?;
    if let Some(p) = a.preset {
        return run_preset(a, p, stalls);
    }
    let duration = a.duration.unwrap_or(Nanos::from_secs(60));
    let net_us = a.net_us.unwrap_or(50);
    if a.gpus == 0 || a.gpus_per_worker == 0 || a.models == 0 {
        bail!("--gpus, --gpus-per-worker and --models must be positive");
    }
    let workers = a.gpus.div_ceil(a.gpus_per_worker);
    let gpus = workers * a.gpus_per_worker;
    let profiles: Vec<ModelProfile> = match a.mix {
        Mix::Resnet50 => vec![resnet50()],
        Mix::Zoo => builtin_profiles(),
    };
    let mean_b1_s = profiles
        .iter()
        .map(|p| p.batches[0].exec_time.get() as f64 / 1e9)
        .sum::<f64>()
        / profiles.len() as f64;
    let capacity_b1 = f64::from(gpus) / mean_b1_s;
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        bail!("--noise must be finite and non-negative");
    }
    let rate = a.rate.unwrap_or(a.load * capacity_b1);
    let slo = ms(a.slo_ms);
    let warmup = a.warmup.unwrap_or(Nanos::ZERO);

    let sched_cfg = with_overrides(
        a,
        Config {
            default_slo: slo,
            load_capacity: slo,
            schedule_ahead: ms(a.schedule_ahead_ms),
            seed: a.seed,
            ..Config::default()
        },
    );
    let sim_cfg = SimConfig {
        workers,
        gpus_per_worker: a.gpus_per_worker,
        total_pages: a.pages,
        net_latency: Nanos::from_micros(net_us),
        net_jitter: Nanos::from_micros(a.net_jitter_us),
        host_stalls: stalls,
        noise: match a.noise_shape {
            NoiseKind::Uniform => NoiseModel::Uniform { rel: a.noise },
            NoiseKind::Normal => NoiseModel::Normal { rel_sigma: a.noise },
        },
        measure_from: warmup,
        seed: a.seed,
        time_scheduler: true,
        ..SimConfig::default()
    };
    println!(
        "sim: {gpus} simulated GPUs ({workers} workers x {}), {} models ({:?}), {:?} workload, \
         {rate:.0} r/s ({:.2} x batch-1 capacity {capacity_b1:.0} r/s), SLO {} ms, {} simulated, \
         noise {} ({:?}) on emulated GPUs, net {} us (+ jitter of mean {} us), host stalls {}/s \
         of mean {} us, seed {}",
        a.gpus_per_worker,
        a.models,
        a.mix,
        a.workload,
        rate / capacity_b1,
        a.slo_ms,
        duration,
        a.noise,
        a.noise_shape,
        net_us,
        a.net_jitter_us,
        a.stalls_per_s,
        a.stall_us,
        a.seed
    );

    let t_setup = Instant::now();
    let mut sim = Simulation::new(sim_cfg, sched_cfg).context("scheduler config")?;
    // Instances spread over the profiles as the main job does.
    let first =
        register_spread(&mut sim, &profiles, a.models as usize, a.seed).context("register")?;
    let range = clockwork_scheduler::ModelRange {
        first,
        count: a.models,
    };
    sim.start();
    let end = warmup + duration;
    let models = a.models as usize;
    let workload: Box<dyn ArrivalSource> = match a.workload {
        WorkloadKind::AzureLike => Box::new(
            AzureLike::new(AzureLikeConfig::new(
                models,
                rate,
                Slo::Default,
                end,
                a.seed,
            ))
            .context("azure-like workload")?,
        ),
        WorkloadKind::Poisson => {
            let spec = OpenLoopSpec {
                split: if a.zipf > 0.0 {
                    RateSplit::Zipf(a.zipf)
                } else {
                    RateSplit::Even
                },
                ..OpenLoopSpec::poisson(models, rate)
            };
            Box::new(OpenLoop::new(&spec, a.seed).context("poisson workload")?)
        }
        WorkloadKind::AzureTrace => Box::new(azure_trace(a, rate)?),
    };
    sim.set_workload(workload, range).context("workload")?;
    let setup_s = t_setup.elapsed().as_secs_f64();

    let t_run = Instant::now();
    sim.run_until(end);
    sim.drain(slo + Nanos::from_secs(1));
    let wall_s = t_run.elapsed().as_secs_f64();
    let r = sim.report();
    print_report(&r, wall_s, setup_s);

    let simulated_s = r.simulated.get() as f64 / 1e9;
    // Scheduler wall time per simulated second of arrivals (warm-up included, as the
    // scheduler's time is): the share of one core it needs to keep up in real time.
    let core_share = r.scheduler_wall.as_secs_f64() / (end.get() as f64 / 1e9).max(1e-9);
    println!(
        "scheduler: {:.3} s wall inside its calls for {:.1} simulated s of arrivals: \
         {core_share:.3} of one core in real time",
        r.scheduler_wall.as_secs_f64(),
        end.get() as f64 / 1e9
    );
    let json = serde_json::json!({
        "bench": "sim",
        "gpus": gpus,
        "models": a.models,
        "workload": format!("{:?}", a.workload),
        "rate_rps": rate,
        "slo_ms": a.slo_ms,
        "net_us": net_us,
        "net_jitter_us": a.net_jitter_us,
        "stalls_per_s": a.stalls_per_s,
        "stall_us": a.stall_us,
        "simulated_s": simulated_s,
        "wall_s": wall_s,
        "setup_s": setup_s,
        "real_time_factor": simulated_s / wall_s,
        "offered": r.offered,
        "goodput_rps": r.goodput_rps,
        "slo_attainment": r.slo_attainment,
        "late_successes": r.stats.late_successes,
        "latency_p50_ms": r.latency_p50.as_millis_f64(),
        "latency_p99_ms": r.latency_p99.as_millis_f64(),
        "latency_p999_ms": r.latency_p999.as_millis_f64(),
        "cold_starts": r.stats.cold_starts,
        "loads": r.stats.loads,
        "unloads": r.stats.unloads,
        "mean_batch": r.stats.mean_batch(),
        "ns_per_request": wall_s * 1e9 / r.offered.max(1) as f64,
        "scheduler_ns_per_request": r.scheduler_wall.as_nanos() as f64 / r.offered.max(1) as f64,
        "scheduler_wall_s": r.scheduler_wall.as_secs_f64(),
        "scheduler_core_share": core_share,
        "violations": r.violations.total(),
    });
    println!("{json}");
    if r.violations.total() != 0 {
        bail!("invariant violations: {:?}", r.violations);
    }
    Ok(())
}

/// The host's stalls from `--stalls-per-s` and `--stall-us` (none at 0 per second).
fn host_stalls(a: &SimArgs) -> anyhow::Result<Option<Stalls>> {
    if !a.stalls_per_s.is_finite() || a.stalls_per_s < 0.0 || a.stalls_per_s > 1e6 {
        bail!(
            "--stalls-per-s must be between 0 and 1,000,000, not {}",
            a.stalls_per_s
        );
    }
    if a.stalls_per_s > 0.0 && a.stall_us == 0 {
        bail!("--stall-us must be above 0 when the host stalls");
    }
    Ok((a.stalls_per_s > 0.0).then(|| Stalls {
        per_second: a.stalls_per_s,
        mean: Nanos::from_micros(a.stall_us),
    }))
}

/// Runs a preset: each case against the real scheduler (and, for `tight-slo`, the
/// simple EDF baseline on the same arrivals); a table, then one JSON line.
fn run_preset(a: &SimArgs, p: Preset, stalls: Option<Stalls>) -> anyhow::Result<()> {
    let duration = a.duration.unwrap_or(Nanos::from_secs(20));
    let net = Nanos::from_micros(a.net_us.unwrap_or(150));
    let mut cases = match p {
        Preset::TightSlo => Case::tight_slo_rows(duration, net, a.seed),
        Preset::Overload => vec![Case::overload_row(duration, net, a.seed)],
    };
    for c in &mut cases {
        c.net_jitter = Nanos::from_micros(a.net_jitter_us);
        c.host_stalls = stalls;
    }
    println!(
        "sim preset {p:?}: one simulated (emulated) GPU per case, Poisson arrivals, 2% normal \
         noise, one-way network {} us (+ jitter of mean {} us), host stalls {}/s of mean {} us, \
         {duration} simulated, seed {}",
        net.get() / 1000,
        a.net_jitter_us,
        a.stalls_per_s,
        a.stall_us,
        a.seed
    );
    println!(
        "{:>20} {:>8} {:>8} {:>10} {:>12} {:>10} {:>10} {:>12} {:>14}",
        "case",
        "rate",
        "SLO ms",
        "offered",
        "attainment",
        "EDF base",
        "late succ",
        "refused@adm",
        "fail p50/SLO"
    );
    let mut rows = Vec::new();
    let mut violations = 0;
    for c in &cases {
        let r = c
            .run(with_overrides(a, c.scheduler_config()))
            .map_err(|e| anyhow!("{}: {e}", c.name))?;
        let base = Some(c.run_baseline());
        let slo_ms = c.slo.as_millis_f64();
        let fail_p50 = r.failure_latency_p50.as_millis_f64() / slo_ms;
        let rejected = r
            .by_status
            .iter()
            .filter(|(s, _)| *s == clockwork_core::ClientStatus::Rejected)
            .map(|(_, n)| *n)
            .sum::<u64>();
        println!(
            "{:>20} {:>8.0} {:>8} {:>10} {:>11.3}% {:>10} {:>10} {:>12} {:>14.3}",
            c.name,
            c.rate,
            slo_ms,
            r.offered,
            100.0 * r.slo_attainment,
            base.map_or_else(|| "-".into(), |b| format!("{:.3}%", 100.0 * b.attainment())),
            r.stats.late_successes,
            rejected,
            fail_p50
        );
        violations += r.violations.total();
        rows.push(serde_json::json!({
            "case": c.name, "rate_rps": c.rate, "slo_ms": slo_ms, "offered": r.offered,
            "slo_attainment": r.slo_attainment,
            "edf_baseline_attainment": base.map(|b| b.attainment()),
            "edf_baseline_served_per_batch": base.map(|b| b.served as f64 / b.batches.max(1) as f64),
            "late_successes": r.stats.late_successes,
            "rejected_at_admission": rejected,
            "doubtful_admitted": r.stats.doubtful_admitted,
            "doubtful_refused": r.stats.doubtful_refused,
            "failure_latency_p50_ms": r.failure_latency_p50.as_millis_f64(),
            "failure_latency_p50_over_slo": fail_p50,
            "failure_latency_p99_ms": r.failure_latency_p99.as_millis_f64(),
            "mean_batch": r.stats.mean_batch(),
            "timeout_queued": r.stats.timeout_queued,
            "timeout_in_flight": r.stats.timeout_in_flight,
            "infer_failures": r.stats.infer_failures,
            "by_status": r.by_status.iter().map(|(s, n)| format!("{s:?} {n}")).collect::<Vec<_>>(),
            "violations": r.violations.total(),
        }));
    }
    println!(
        "{}",
        serde_json::json!({"bench": "sim", "preset": format!("{p:?}"), "net_us": net.get() / 1000,
            "net_jitter_us": a.net_jitter_us, "stalls_per_s": a.stalls_per_s, "stall_us": a.stall_us,
            "duration_s": duration.get() as f64 / 1e9, "seed": a.seed, "rows": rows})
    );
    if violations != 0 {
        bail!("invariant violations: {violations}");
    }
    Ok(())
}

/// The main job's Azure replay: the same trace, mapping, scaling and start minute.
fn azure_trace(a: &SimArgs, rate: f64) -> anyhow::Result<AzureReplay> {
    if !(1..=14).contains(&a.day) {
        bail!("--day must be 1..=14");
    }
    if a.start_minute >= 1440 {
        bail!("--start-minute must be below 1440");
    }
    let source = TraceSource::real_or_synthetic(a.trace_dir.clone(), a.seed);
    println!(
        "sim: workload {} (day {}, from minute {})",
        source.label(),
        a.day,
        a.start_minute
    );
    let replay = azure_replay(
        &source,
        a.day,
        a.models as usize,
        rate,
        a.start_minute,
        a.seed,
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok(replay)
}

fn print_report(r: &SimReport, wall_s: f64, setup_s: f64) {
    let s = &r.stats;
    let simulated_s = r.simulated.get() as f64 / 1e9;
    println!(
        "requests: offered {} ({:.0}/s), success {} ({:.0}/s goodput), SLO attainment {:.4}%",
        r.offered,
        r.offered as f64 / simulated_s,
        r.success,
        r.goodput_rps,
        100.0 * r.slo_attainment
    );
    println!(
        "  rejected {}  timeout(queued) {}  could-not-start {}  skipped {}  timeout(in flight) {}  \
         worker-failed {}  late successes {}  requeued {}",
        s.rejected,
        s.timeout_queued,
        s.could_not_start,
        s.skipped,
        s.timeout_in_flight,
        s.worker_failed,
        s.late_successes,
        s.requeued
    );
    println!(
        "latency of successes: p50 {}  p99 {}  p99.9 {}  max {}",
        r.latency_p50, r.latency_p99, r.latency_p999, r.latency_max
    );
    println!(
        "actions: {} INFER (mean batch {:.2}, {} failed), {} LOAD ({} failed), {} UNLOAD; \
         cold starts {}",
        s.infers,
        s.mean_batch(),
        s.infer_failures,
        s.loads,
        s.load_failures,
        s.unloads,
        s.cold_starts
    );
    println!(
        "prediction error: INFER mean {:.1} us (|mean| {:.1} us, max over {:.1} us), \
         completion |mean| {:.1} us, LOAD |mean| {:.1} us",
        s.exec_error.mean() / 1e3,
        s.exec_error.mean_abs() / 1e3,
        s.exec_error.max_over as f64 / 1e3,
        s.completion_error.mean_abs() / 1e3,
        s.load_error.mean_abs() / 1e3
    );
    println!(
        "invariants: {} violations {:?}",
        r.violations.total(),
        r.violations
    );
    println!(
        "wall: set-up {setup_s:.2} s, run {wall_s:.2} s for {simulated_s:.1} simulated s \
         (real-time factor {:.2}), {} events, {:.0} ns/request, of which {:.0} ns inside \
         the scheduler ({:.0}%)",
        simulated_s / wall_s,
        r.events,
        wall_s * 1e9 / r.offered.max(1) as f64,
        r.scheduler_wall.as_nanos() as f64 / r.offered.max(1) as f64,
        100.0 * r.scheduler_wall.as_secs_f64() / wall_s
    );
}
