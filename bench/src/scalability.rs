//! `experiment 6.6`, "Can Clockwork scale?": the real scheduler on one thread driving
//! N simulated GPUs in virtual time (`clockwork_sim`), with the offered
//! load ramped as the paper's `azure_scalability_exp` ramps it (load factor 0.1,
//! multiplied by 1.5 every step while it stays at most 4), for each N the peak goodput
//! over the ramp. The load factor is a multiple of the GPUs' batch-1 capacity
//! (N / 3.32 ms for ResNet50); batching lets goodput pass 1.0.
//!
//! In virtual time the controller never falls behind, however slow it is: the
//! simulation just takes longer. Whether ONE core would keep up in real time is
//! measured instead: the wall time spent inside the scheduler's calls per simulated
//! second (the scheduler's "core share"; below 1 one core suffices). The peak over
//! steps whose core share is at most 1 is the peak a one-core controller could serve;
//! the first N where it parts from the virtual-time peak is where one controller
//! saturates. The scheduler's wall time is scaled by the fraction of each window the
//! simulating thread was on a CPU (its thread CPU time over wall time), so that a
//! shared machine's preemption does not count as scheduler work; cache and memory
//! contention still inflate it. The controller's networking (the real system's other
//! per-request cost) is not simulated and not counted.
//!
//! Writes `peak_goodput.svg` (peak goodput and core share against N) and
//! `goodput_over_time.svg` (the ramp at one N, the paper's Fig 11 left) under the
//! output folder, prints a table and a linearity fit, and returns the points as JSON.

use anyhow::{bail, Context as _};
use clockwork_core::model::resnet50;
use clockwork_core::{Nanos, Slo};
use clockwork_scheduler::Config;
use clockwork_sim::{NoiseModel, SimConfig, SimReport, Simulation};
use clockwork_workload::{Arrival, ArrivalSource, AzureLike, AzureLikeConfig};
use plotters::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Simulated GPU counts: the paper's 10..150 (every other one of its steps of 10),
/// then beyond, to find where one controller core saturates.
const GPU_COUNTS: &[u32] = &[10, 30, 50, 70, 90, 110, 130, 150, 200, 300, 400, 500];
/// The upper end of the paper's range (the linearity fit is over N up to this).
const PAPER_MAX_GPUS: u32 = 150;
/// The N whose ramp is drawn over time (the paper's Fig 11 left used 40).
const TIMELINE_GPUS: u32 = 50;
/// ResNet50 instances per GPU (all fit in a GPU's cache: 40 x 7 of 1376 pages).
const MODELS_PER_GPU: u32 = 40;
/// First load factor, the factor it is multiplied by each step, and the largest.
const LF_MIN: f64 = 0.1;
const LF_MUL: f64 = 1.5;
const LF_MAX: f64 = 4.0;
/// Simulated length of one load step at `time_scale` 1 (the paper: 60 s).
const STEP_S: f64 = 10.0;
/// Snapshots per step; the first `SETTLE_TICKS` of a step are left out of its figures.
const TICKS_PER_STEP: u32 = 10;
const SETTLE_TICKS: u32 = 2;
const SLO_MS: u64 = 100;
const SCHEDULE_AHEAD_MS: u64 = 5;
const NOISE: f64 = 0.02;
const SEED: u64 = 1;

/// The load factors of the ramp: `LF_MIN * LF_MUL^k` while at most `LF_MAX`.
fn load_factors() -> Vec<f64> {
    let mut v = Vec::new();
    let mut lf = LF_MIN;
    while lf <= LF_MAX * (1.0 + 1e-9) {
        v.push(lf);
        lf *= LF_MUL;
    }
    v
}

/// The Azure-like workload with its total rate changed at step boundaries. Every step
/// uses the same seed, so models keep their popularity across steps (as trace
/// functions keep their identity); burst on/off states restart at each boundary.
#[derive(Debug)]
struct Ramp {
    /// One configuration per step, in time order; built lazily (checked up front).
    steps: std::vec::IntoIter<AzureLikeConfig>,
    current: Option<AzureLike>,
    models: usize,
}

impl ArrivalSource for Ramp {
    fn next_arrival(&mut self) -> Option<Arrival> {
        loop {
            if let Some(a) = self.current.as_mut().and_then(AzureLike::next_arrival) {
                return Some(a);
            }
            // Every step's configuration was accepted when the ramp was built.
            self.current = AzureLike::new(self.steps.next()?).ok();
        }
    }

    fn models(&self) -> usize {
        self.models
    }
}

/// Cumulative counters at one virtual instant.
#[derive(Debug, Clone, Copy)]
struct Snap {
    at: Nanos,
    offered: u64,
    success: u64,
    sched_wall: Duration,
    infers: u64,
    batched: u64,
    /// Wall time since the run began, and this thread's CPU time.
    wall: Duration,
    thread_cpu: Duration,
}

impl Snap {
    fn of(r: &SimReport, at: Nanos, t0: Instant) -> Self {
        Self {
            at,
            offered: r.offered,
            success: r.success,
            sched_wall: r.scheduler_wall,
            infers: r.stats.infers,
            batched: r.stats.batched_requests,
            wall: t0.elapsed(),
            thread_cpu: thread_cpu(),
        }
    }
}

/// CPU time of the calling thread (zero if the clock cannot be read).
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, |t| {
        Duration::new(
            u64::try_from(t.tv_sec()).unwrap_or(0),
            u32::try_from(t.tv_nsec()).unwrap_or(0),
        )
    })
}

/// Figures of a window between two snapshots.
#[derive(Debug, Clone, Copy)]
struct Window {
    offered_rps: f64,
    goodput_rps: f64,
    /// Successes / arrivals in the window (answers of the window's last 100 ms fall
    /// in the next one, those of the previous one's in this one: in steady state they
    /// cancel).
    attainment: f64,
    /// Scheduler wall time per simulated second, as measured.
    raw_core_share: f64,
    /// The fraction of the window's wall time the simulating thread was on a CPU
    /// (below 1: the machine was contended and the thread preempted).
    on_cpu: f64,
    /// `raw_core_share x on_cpu`: the scheduler's CPU time per simulated second,
    /// taking preemption as spread evenly over the window. The figure used.
    core_share: f64,
    mean_batch: f64,
}

fn window(a: &Snap, b: &Snap) -> Window {
    let secs = (b.at.saturating_sub(a.at).get() as f64 / 1e9).max(1e-9);
    let offered = b.offered.saturating_sub(a.offered);
    let success = b.success.saturating_sub(a.success);
    let infers = b.infers.saturating_sub(a.infers);
    let raw_core_share = b.sched_wall.saturating_sub(a.sched_wall).as_secs_f64() / secs;
    let wall = b.wall.saturating_sub(a.wall).as_secs_f64();
    let cpu = b.thread_cpu.saturating_sub(a.thread_cpu).as_secs_f64();
    let on_cpu = if wall > 0.0 && cpu > 0.0 {
        (cpu / wall).min(1.0)
    } else {
        1.0
    };
    Window {
        offered_rps: offered as f64 / secs,
        goodput_rps: success as f64 / secs,
        attainment: if offered == 0 {
            f64::NAN
        } else {
            success as f64 / offered as f64
        },
        raw_core_share,
        on_cpu,
        core_share: raw_core_share * on_cpu,
        mean_batch: if infers == 0 {
            f64::NAN
        } else {
            b.batched.saturating_sub(a.batched) as f64 / infers as f64
        },
    }
}

/// One load step of one run.
#[derive(Debug, Clone, Copy)]
struct Step {
    load_factor: f64,
    w: Window,
}

/// One ramp at N GPUs.
#[derive(Debug)]
struct RunOut {
    gpus: u32,
    capacity_b1: f64,
    steps: Vec<Step>,
    /// (virtual seconds, window) per tick, for the timeline figure.
    ticks: Vec<(f64, Window)>,
    wall_s: f64,
    setup_s: f64,
    simulated_s: f64,
    violations: u64,
}

/// Runs the ramp at `gpus` simulated GPUs with steps of `step` virtual time.
fn run_one(gpus: u32, step: Nanos, lfs: &[f64]) -> anyhow::Result<RunOut> {
    let profile = resnet50();
    let b1_s = profile.batches[0].exec_time.get() as f64 / 1e9;
    let capacity_b1 = f64::from(gpus) / b1_s;
    let slo = Nanos::from_millis(SLO_MS);
    let sched_cfg = Config {
        default_slo: slo,
        load_capacity: slo,
        schedule_ahead: Nanos::from_millis(SCHEDULE_AHEAD_MS),
        seed: SEED,
        ..Config::default()
    };
    let sim_cfg = SimConfig {
        workers: gpus,
        gpus_per_worker: 1,
        noise: NoiseModel::Uniform { rel: NOISE },
        seed: SEED,
        time_scheduler: true,
        ..SimConfig::default()
    };
    let t_setup = Instant::now();
    let mut sim = Simulation::new(sim_cfg, sched_cfg).context("scheduler config")?;
    let models = gpus
        .checked_mul(MODELS_PER_GPU)
        .context("too many models")?;
    let range = sim.register(profile, models).context("register")?;
    sim.start();
    let steps: Vec<AzureLikeConfig> = lfs
        .iter()
        .enumerate()
        .map(|(k, &lf)| {
            let start = Nanos(step.get() * k as u64);
            let mut c = AzureLikeConfig::new(
                range.count as usize,
                lf * capacity_b1,
                Slo::Default,
                start + step,
                SEED,
            );
            c.start = start;
            c
        })
        .collect();
    // Checked here, so the ramp's lazy construction cannot fail.
    for c in &steps {
        c.check().context("azure-like step")?;
    }
    let ramp = Ramp {
        steps: steps.into_iter(),
        current: None,
        models: range.count as usize,
    };
    sim.set_workload(Box::new(ramp), range)
        .context("workload")?;
    let setup_s = t_setup.elapsed().as_secs_f64();

    let t_run = Instant::now();
    let tick = Nanos((step.get() / u64::from(TICKS_PER_STEP)).max(1));
    let mut snaps = vec![Snap::of(&sim.report(), Nanos::ZERO, t_run)];
    for k in 0..lfs.len() as u64 {
        for i in 1..=u64::from(TICKS_PER_STEP) {
            // The last tick ends exactly at the step's end.
            let at = if i == u64::from(TICKS_PER_STEP) {
                Nanos(step.get() * (k + 1))
            } else {
                Nanos(step.get() * k + tick.get() * i)
            };
            sim.run_until(at);
            snaps.push(Snap::of(&sim.report(), at, t_run));
        }
    }
    let simulated_s = sim.now().get() as f64 / 1e9;
    let wall_s = t_run.elapsed().as_secs_f64();
    sim.drain(slo + Nanos::from_secs(1));
    let violations = sim.report().violations.total();

    let per = TICKS_PER_STEP as usize;
    let steps = lfs
        .iter()
        .enumerate()
        .map(|(k, &load_factor)| Step {
            load_factor,
            w: window(
                &snaps[k * per + SETTLE_TICKS as usize],
                &snaps[(k + 1) * per],
            ),
        })
        .collect();
    let ticks = snaps
        .windows(2)
        .map(|p| (p[1].at.get() as f64 / 1e9, window(&p[0], &p[1])))
        .collect();
    Ok(RunOut {
        gpus,
        capacity_b1,
        steps,
        ticks,
        wall_s,
        setup_s,
        simulated_s,
        violations,
    })
}

/// The summary of one N.
#[derive(Debug, Clone, Copy)]
struct Peak {
    gpus: u32,
    /// The step of the largest goodput, in virtual time.
    peak: Step,
    /// The largest core share of any step.
    max_core_share: f64,
    /// The largest goodput of a step whose core share is at most 1, if any.
    one_core: Option<Step>,
    /// The smallest on-CPU fraction of the simulating thread over the steps.
    min_on_cpu: f64,
}

fn peak_of(r: &RunOut) -> Option<Peak> {
    let better = |a: &&Step, b: &&Step| a.w.goodput_rps.total_cmp(&b.w.goodput_rps);
    let peak = *r.steps.iter().max_by(better)?;
    let one_core = r
        .steps
        .iter()
        .filter(|s| s.w.core_share <= 1.0)
        .max_by(better)
        .copied();
    let max_core_share = r.steps.iter().map(|s| s.w.core_share).fold(0.0, f64::max);
    let min_on_cpu = r.steps.iter().map(|s| s.w.on_cpu).fold(1.0, f64::min);
    Some(Peak {
        gpus: r.gpus,
        peak,
        max_core_share,
        one_core,
        min_on_cpu,
    })
}

/// Least-squares line `y = a + b x`: (a, b, R²). None with fewer than 2 distinct x.
fn linear_fit(pts: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let r2 = if syy > 0.0 {
        sxy * sxy / (sxx * syy)
    } else {
        1.0
    };
    Some((a, b, r2))
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "-".to_owned()
    }
}

fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn step_json(s: &Step) -> serde_json::Value {
    serde_json::json!({
        "load_factor": num(s.load_factor),
        "offered_rps": num(s.w.offered_rps),
        "goodput_rps": num(s.w.goodput_rps),
        "slo_attainment": num(s.w.attainment),
        "scheduler_core_share": num(s.w.core_share),
        "scheduler_core_share_wall": num(s.w.raw_core_share),
        "thread_on_cpu": num(s.w.on_cpu),
        "mean_batch": num(s.w.mean_batch),
    })
}

/// Runs §6.6 with steps of `10 s x time_scale` virtual time; outputs under `out`.
pub(crate) fn run_6_6(time_scale: f64, out: &Path) -> anyhow::Result<serde_json::Value> {
    if !(time_scale.is_finite() && time_scale > 0.0 && time_scale <= 100.0) {
        bail!("--time-scale must be in (0, 100]");
    }
    let step_s = STEP_S * time_scale;
    if step_s < 0.1 {
        bail!("a load step of {step_s} s is too short: --time-scale must be at least 0.01");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let step = Nanos((step_s * 1e9) as u64);
    let lfs = load_factors();
    println!(
        "6.6 in VIRTUAL TIME: one scheduler thread driving N simulated (emulated) GPUs; \
         {MODELS_PER_GPU} ResNet50 per GPU, Azure-like load ramped {LF_MIN} x {LF_MUL} -> \
         {LF_MAX} x batch-1 capacity, {step_s} s per step ({} steps, first {}% of each left \
         out), SLO {SLO_MS} ms, schedule-ahead {SCHEDULE_AHEAD_MS} ms, noise {NOISE}, seed {SEED}",
        lfs.len(),
        100 * SETTLE_TICKS / TICKS_PER_STEP
    );
    let mut peaks = Vec::new();
    let mut points = Vec::new();
    let mut timeline = None;
    let mut violations = 0;
    let t_all = Instant::now();
    for &gpus in GPU_COUNTS {
        eprint!("  {gpus} simulated GPUs ... ");
        let r = run_one(gpus, step, &lfs)?;
        let Some(p) = peak_of(&r) else {
            bail!("no load steps");
        };
        eprintln!(
            "peak {:.0} r/s at {:.2}x, core share {:.2} (max {:.2}); {:.1} s wall + {:.1} s set-up \
             for {:.0} simulated s",
            p.peak.w.goodput_rps,
            p.peak.load_factor,
            p.peak.w.core_share,
            p.max_core_share,
            r.wall_s,
            r.setup_s,
            r.simulated_s
        );
        violations += r.violations;
        points.push(serde_json::json!({
            "gpus": gpus,
            "models": gpus * MODELS_PER_GPU,
            "capacity_b1_rps": num(r.capacity_b1),
            "peak_goodput_rps": num(p.peak.w.goodput_rps),
            "peak_goodput_per_gpu_rps": num(p.peak.w.goodput_rps / f64::from(gpus)),
            "load_factor_at_peak": num(p.peak.load_factor),
            "slo_attainment_at_peak": num(p.peak.w.attainment),
            "mean_batch_at_peak": num(p.peak.w.mean_batch),
            "scheduler_core_share_at_peak": num(p.peak.w.core_share),
            "max_scheduler_core_share": num(p.max_core_share),
            "min_thread_on_cpu": num(p.min_on_cpu),
            "one_core_peak_goodput_rps": p.one_core.map_or(serde_json::Value::Null, |s| num(s.w.goodput_rps)),
            "one_core_load_factor_at_peak": p.one_core.map_or(serde_json::Value::Null, |s| num(s.load_factor)),
            "wall_s": num(r.wall_s),
            "setup_s": num(r.setup_s),
            "simulated_s": num(r.simulated_s),
            "violations": r.violations,
            "steps": r.steps.iter().map(step_json).collect::<Vec<_>>(),
        }));
        peaks.push(p);
        if gpus == TIMELINE_GPUS {
            timeline = Some(r);
        }
    }
    let total_s = t_all.elapsed().as_secs_f64();

    println!(
        "\n6.6: peak goodput vs simulated GPUs, VIRTUAL TIME, one scheduler thread. Core \
         share: scheduler CPU s per simulated s (<= 1: one core keeps up in real time), \
         its wall time scaled by the thread's on-CPU fraction (on CPU: the least over \
         the steps; below 1 the machine was contended)"
    );
    let header = [
        "GPUs",
        "peak r/s",
        "per GPU",
        "LF at peak",
        "attainment",
        "mean batch",
        "core share",
        "max share",
        "1-core peak",
        "on CPU",
    ];
    println!("| {} |", header.join(" | "));
    println!("|{}", "---:|".repeat(header.len()));
    for p in &peaks {
        let g = p.peak.w.goodput_rps;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.gpus,
            f(g, 0),
            f(g / f64::from(p.gpus), 1),
            f(p.peak.load_factor, 2),
            f(p.peak.w.attainment, 4),
            f(p.peak.w.mean_batch, 2),
            f(p.peak.w.core_share, 3),
            f(p.max_core_share, 3),
            f(p.one_core.map_or(f64::NAN, |s| s.w.goodput_rps), 0),
            f(p.min_on_cpu, 2),
        );
    }

    // Linearity over the paper's range.
    let paper: Vec<&Peak> = peaks.iter().filter(|p| p.gpus <= PAPER_MAX_GPUS).collect();
    let per_gpu = |p: &Peak| p.peak.w.goodput_rps / f64::from(p.gpus);
    let ratio = match (paper.first(), paper.last()) {
        (Some(a), Some(b)) => per_gpu(b) / per_gpu(a),
        _ => f64::NAN,
    };
    let fit = linear_fit(
        &paper
            .iter()
            .map(|p| (f64::from(p.gpus), p.peak.w.goodput_rps))
            .collect::<Vec<_>>(),
    );
    let one_core_fit = linear_fit(
        &peaks
            .iter()
            .map(|p| {
                (
                    f64::from(p.gpus),
                    p.one_core.map_or(0.0, |s| s.w.goodput_rps),
                )
            })
            .collect::<Vec<_>>(),
    );
    let first_over = peaks
        .iter()
        .find(|p| p.peak.w.core_share > 1.0)
        .map(|p| p.gpus);
    if let (Some(a), Some(b)) = (paper.first(), paper.last()) {
        println!(
            "linearity ({}..{} GPUs): peak goodput per GPU {:.1} -> {:.1} r/s (ratio {}); \
             linear fit {} + {} r/s per GPU, R^2 {}",
            a.gpus,
            b.gpus,
            per_gpu(a),
            per_gpu(b),
            f(ratio, 3),
            f(fit.map_or(f64::NAN, |x| x.0), 0),
            f(fit.map_or(f64::NAN, |x| x.1), 1),
            f(fit.map_or(f64::NAN, |x| x.2), 5),
        );
    }
    println!(
        "one-core peak over all N: R^2 of a linear fit {}; {}",
        f(one_core_fit.map_or(f64::NAN, |x| x.2), 5),
        match first_over {
            Some(n) => format!("the peak step needs more than one scheduler core from {n} GPUs"),
            None => "every peak step fits on one scheduler core".to_owned(),
        }
    );
    println!(
        "6.6 total wall {total_s:.1} s; figures under {}",
        out.display()
    );

    plot_peaks(&peaks, &out.join("peak_goodput.svg"))?;
    if let Some(r) = &timeline {
        plot_timeline(r, &out.join("goodput_over_time.svg"))?;
    }
    if violations != 0 {
        bail!("the simulator counted {violations} invariant violations");
    }
    Ok(serde_json::json!({
        "virtual_time": true,
        "emulated": true,
        "models_per_gpu": MODELS_PER_GPU,
        "step_s": step_s,
        "settle_fraction": f64::from(SETTLE_TICKS) / f64::from(TICKS_PER_STEP),
        "load_factors": lfs,
        "slo_ms": SLO_MS,
        "schedule_ahead_ms": SCHEDULE_AHEAD_MS,
        "noise": NOISE,
        "seed": SEED,
        "wall_s": num(total_s),
        "linearity": {
            "gpus_max": PAPER_MAX_GPUS,
            "per_gpu_ratio_last_over_first": num(ratio),
            "fit_intercept_rps": fit.map_or(serde_json::Value::Null, |x| num(x.0)),
            "fit_slope_rps_per_gpu": fit.map_or(serde_json::Value::Null, |x| num(x.1)),
            "fit_r2": fit.map_or(serde_json::Value::Null, |x| num(x.2)),
            "one_core_fit_r2_all": one_core_fit.map_or(serde_json::Value::Null, |x| num(x.2)),
            "first_gpus_peak_over_one_core": first_over,
        },
        "points": points,
    }))
}

use clockwork_bench::report::chart::palette::{BLUE, FONT, GREEN, GREY, ORANGE, RED};
use clockwork_bench::report::chart::{legend, DualAxisChart, Line};

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn write_svg(path: &Path, draw: &dyn Fn(&Area<'_>) -> DrawResult) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 750)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        draw(&root).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

fn mark(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
}

/// Peak goodput (left axis) and the scheduler's core share (right axis) against N.
fn plot_peaks(peaks: &[Peak], path: &Path) -> anyhow::Result<()> {
    write_svg(path, &|root| {
        let x_hi = f64::from(peaks.iter().map(|p| p.gpus).max().unwrap_or(1)) * 1.05;
        let y_hi = peaks
            .iter()
            .map(|p| p.peak.w.goodput_rps)
            .fold(1.0, f64::max)
            * 1.1;
        let s_hi = peaks.iter().map(|p| p.max_core_share).fold(1.2, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .caption(
                "6.6: peak goodput vs simulated GPUs (virtual time, one scheduler thread)",
                (FONT, 24),
            )
            .x_label_area_size(50)
            .y_label_area_size(80)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?
            .set_secondary_coord(0.0..x_hi, 0.0..s_hi);
        chart
            .configure_mesh()
            .x_desc("simulated GPUs")
            .y_desc("peak goodput (requests / s)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("scheduler core share (CPU s / simulated s)")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let series = |f: &dyn Fn(&Peak) -> Option<f64>| -> Vec<(f64, f64)> {
            peaks
                .iter()
                .filter_map(|p| f(p).map(|y| (f64::from(p.gpus), y)))
                .collect()
        };
        let peak = series(&|p| Some(p.peak.w.goodput_rps));
        let one_core = series(&|p| Some(p.one_core.map_or(0.0, |s| s.w.goodput_rps)));
        if let Some(first) = peaks.first() {
            let per = first.peak.w.goodput_rps / f64::from(first.gpus);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, 0.0), (x_hi, per * x_hi)],
                    6,
                    4,
                    GREY.stroke_width(1),
                ))?
                .label(format!("linear from {} GPUs", first.gpus))
                .legend(mark(GREY));
        }
        chart
            .draw_series(LineSeries::new(one_core.clone(), GREEN.stroke_width(5)))?
            .label("peak over steps a single core keeps up with")
            .legend(mark(GREEN));
        chart.draw_series(one_core.iter().map(|&p| Circle::new(p, 6, GREEN.filled())))?;
        // Drawn over the one-core line, thinner, so both show where they coincide.
        chart
            .draw_series(LineSeries::new(peak.clone(), BLUE.stroke_width(2)))?
            .label("peak goodput (virtual time)")
            .legend(mark(BLUE));
        chart.draw_series(peak.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))?;
        chart
            .draw_secondary_series(LineSeries::new(
                series(&|p| Some(p.peak.w.core_share)),
                ORANGE.stroke_width(2),
            ))?
            .label("scheduler core share at the peak (right)")
            .legend(mark(ORANGE));
        chart
            .draw_secondary_series(LineSeries::new(
                series(&|p| Some(p.max_core_share)),
                RED.stroke_width(2),
            ))?
            .label("max scheduler core share over the ramp (right)")
            .legend(mark(RED));
        chart.draw_secondary_series(DashedLineSeries::new(
            vec![(0.0, 1.0), (x_hi, 1.0)],
            6,
            4,
            RED.stroke_width(1),
        ))?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Offered load and goodput over the ramp at one N, with the core share.
fn plot_timeline(r: &RunOut, path: &Path) -> anyhow::Result<()> {
    let line = |g: &dyn Fn(&Window) -> f64| -> Vec<(f64, f64)> {
        r.ticks.iter().map(|t| (t.0, g(&t.1))).collect()
    };
    let chart = DualAxisChart {
        caption: format!("6.6: load ramp at {} simulated GPUs (virtual time)", r.gpus),
        x_desc: "virtual time (s)".into(),
        y_desc: "requests / s".into(),
        y2_desc: "scheduler core share".into(),
        left: vec![
            Line::new("offered", GREY, line(&|w| w.offered_rps)),
            Line::new("goodput", GREEN, line(&|w| w.goodput_rps)),
        ],
        right: vec![Line::new(
            "scheduler core share",
            ORANGE,
            line(&|w| w.core_share),
        )],
        y2_min_top: 1.2,
    };
    let svg = chart
        .render()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_matches_the_paper() {
        let lfs = load_factors();
        assert_eq!(lfs.len(), 10);
        assert!((lfs[0] - 0.1).abs() < 1e-12);
        assert!(lfs[9] <= LF_MAX && lfs[9] * LF_MUL > LF_MAX);
    }

    #[test]
    fn linear_fit_of_a_line() {
        let pts: Vec<(f64, f64)> = (1..5)
            .map(|x| (f64::from(x), 3.0 + 2.0 * f64::from(x)))
            .collect();
        let (a, b, r2) = linear_fit(&pts).expect("fit");
        assert!((a - 3.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-9);
        assert!(linear_fit(&[(1.0, 1.0)]).is_none());
        assert!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    #[test]
    fn small_ramp_runs() {
        let r = run_one(2, Nanos::from_millis(500), &[0.5, 1.0]).expect("run");
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.violations, 0);
        assert!(r.steps.iter().all(|s| s.w.goodput_rps > 0.0));
        let p = peak_of(&r).expect("peak");
        assert!(p.max_core_share.is_finite());
    }

    #[test]
    fn bad_time_scale_is_an_error() {
        let dir = std::env::temp_dir();
        assert!(run_6_6(f64::NAN, &dir).is_err());
        assert!(run_6_6(0.0, &dir).is_err());
        assert!(run_6_6(0.001, &dir).is_err());
    }
}
