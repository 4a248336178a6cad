//! `clockwork-bench handoff`: how long an action takes to get from a glommio executor
//! to a device engine thread and its completion back, through `clockwork-gpu`'s real
//! path, against two plain threads doing the same ping-pong over `std::sync::mpsc`.
//!
//! What one round trip measures (one action in flight, both sides pinned):
//! 1. the executor task reads the clock and calls `DeviceSet::submit`: an INFER with
//!    window `[now, MAX]` for an emulated device whose profile says it runs **1 ns**;
//!    `submit` pushes onto the engine's SPSC command ring and unparks the engine if it
//!    sleeps (it does: an idle engine parks);
//! 2. the engine thread wakes, accepts the action, starts it (timing `begin`), finishes
//!    it on its next loop pass (timing `end`), pushes the completion onto its outbound
//!    SPSC ring and wakes the `AtomicWaker` of `Completions`;
//! 3. the wake reaches the parked glommio executor (foreign wake: eventfd), which polls
//!    `Completions::next()` and reads the clock.
//!
//! So it is the ring + wake path both ways, including a thread unpark on each side and
//! the device logic for one action (a few hundred ns), but no network and no emulated
//! execution time. "To device" is `begin − submit time`, "from device" is the receive
//! time − `end`; both use the same `CLOCK_MONOTONIC` on both threads.
//!
//! Baseline: two plain pinned threads, A sends a message over one `mpsc` channel and
//! blocks on another for the answer; B blocks on the first, answers at once. glommio
//! may not block, so there is no glommio-side `mpsc` variant. A second glommio variant
//! spins before parking (`spin_before_park`), which removes most of the executor's
//! wake-up cost at the price of CPU.

use crate::stats::{histogram, median, Summary};
use anyhow::{anyhow, bail, Context as _};
use clockwork_core::model::{BatchProfile, ModelProfile};
use clockwork_core::{ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window, WorkerStatus};
use clockwork_gpu::{DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
use clockwork_net::runtime::{self, ExecutorConfig};
use hdrhistogram::Histogram;
use std::sync::mpsc;
use std::time::Duration;

/// Arguments of `handoff`.
#[derive(clap::Args, Debug)]
pub(crate) struct HandoffArgs {
    /// Measured round trips per run.
    #[arg(long, default_value_t = 20_000)]
    round_trips: u64,
    /// Unmeasured round trips before each run.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Runs of each variant, interleaved; medians across runs are reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// CPU of the glommio executor (and of baseline thread A).
    #[arg(long, default_value_t = 0)]
    executor_cpu: usize,
    /// CPU of the device engine thread (and of baseline thread B).
    #[arg(long, default_value_t = 1)]
    device_cpu: usize,
    /// Spin-before-park of the spinning glommio variant, in microseconds.
    #[arg(long, default_value_t = 100)]
    spin_us: u64,
}

const MODEL: ModelId = ModelId(1);

/// A model that "runs" in 1 ns and "loads" in 1 ns: the device adds no time of its own.
fn instant_model() -> ModelProfile {
    ModelProfile {
        name: "handoff-1ns".into(),
        weights_bytes: 1,
        input_bytes: 0,
        output_bytes: 0,
        load_time: Nanos(1),
        batches: vec![BatchProfile {
            batch_size: 1,
            exec_time: Nanos(1),
        }],
        source: clockwork_core::ModelSource::Emulated,
        inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

/// Round trip, to-device and from-device histograms of one run.
struct Legs {
    rt: Histogram<u64>,
    to: Histogram<u64>,
    from: Histogram<u64>,
}

impl Legs {
    fn new() -> Self {
        Self {
            rt: histogram(),
            to: histogram(),
            from: histogram(),
        }
    }

    fn record(&mut self, t0: Nanos, begin: Nanos, end: Nanos, t1: Nanos) {
        self.rt.saturating_record((t1 - t0).get());
        self.to.saturating_record((begin - t0).get());
        self.from.saturating_record((t1 - end).get());
    }
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// One run through the gpu crate's rings.
fn rings_run(args: &HandoffArgs, spin: Option<Duration>) -> anyhow::Result<Legs> {
    let mut config = DeviceConfig::emulated(1);
    config.cpus = vec![args.device_cpu];
    let (mut set, mut done) = DeviceSet::start(config)?;
    set.register_model(MODEL, instant_model())?;
    set.submit(DeviceAction {
        action: ActionId(0),
        gpu: GpuId(0),
        window: Window::ANY,
        op: DeviceOp::Load { model: MODEL },
    })
    .map_err(|e| anyhow!("submit: {e}"))?;
    let c = done.recv_timeout(Duration::from_secs(10))?;
    if c.status != WorkerStatus::Success {
        bail!("LOAD failed: {}", c.status);
    }
    let mut cfg = ExecutorConfig::named("bench-handoff").with_cpu(args.executor_cpu);
    if let Some(s) = spin {
        cfg = cfg.with_spin_before_park(s);
    }
    let (total, warmup) = (args.warmup + args.round_trips, args.warmup);
    let exec = runtime::spawn(cfg, move || async move {
        let mut legs = Legs::new();
        for i in 1..=total {
            let t0 = MonotonicClock::read();
            set.submit(DeviceAction {
                action: ActionId(i),
                gpu: GpuId(0),
                window: Window::new(t0, Nanos::MAX),
                op: DeviceOp::infer(MODEL, 1),
            })
            .map_err(|e| anyhow!("submit: {e}"))?;
            let c = done.next().await.ok_or_else(|| anyhow!("engine stopped"))?;
            let t1 = MonotonicClock::read();
            if c.action != ActionId(i) || c.status != WorkerStatus::Success {
                bail!("unexpected completion {c:?}");
            }
            if i > warmup {
                legs.record(t0, c.timing.begin, c.timing.end, t1);
            }
        }
        drop(set);
        Ok::<_, anyhow::Error>(legs)
    })?;
    exec.join()?
}

/// One run of the baseline: two pinned threads, `std::sync::mpsc` both ways.
fn mpsc_run(args: &HandoffArgs) -> anyhow::Result<Legs> {
    let (to_b, from_a) = mpsc::channel::<u64>();
    let (to_a, from_b) = mpsc::channel::<(u64, Nanos, Nanos)>();
    let device_cpu = args.device_cpu;
    let b = std::thread::spawn(move || {
        pin(device_cpu);
        while let Ok(i) = from_a.recv() {
            let begin = MonotonicClock::read();
            let end = MonotonicClock::read();
            if to_a.send((i, begin, end)).is_err() {
                break;
            }
        }
    });
    let (total, warmup, executor_cpu) = (
        args.warmup + args.round_trips,
        args.warmup,
        args.executor_cpu,
    );
    let a = std::thread::spawn(move || -> anyhow::Result<Legs> {
        pin(executor_cpu);
        let mut legs = Legs::new();
        for i in 1..=total {
            let t0 = MonotonicClock::read();
            to_b.send(i).context("thread B gone")?;
            let (j, begin, end) = from_b.recv().context("thread B gone")?;
            let t1 = MonotonicClock::read();
            if j != i {
                bail!("out of order");
            }
            if i > warmup {
                legs.record(t0, begin, end, t1);
            }
        }
        Ok(legs)
    });
    let legs = a.join().map_err(|_| anyhow!("thread A panicked"))??;
    b.join().map_err(|_| anyhow!("thread B panicked"))?;
    Ok(legs)
}

/// Medians across runs of each leg's percentiles.
struct Row {
    rt: Summary,
    to: Summary,
    from: Summary,
}

fn median_summary(v: &[Summary]) -> Summary {
    let pick = |f: fn(&Summary) -> u64| median(v.iter().map(|s| f(s) as f64).collect()) as u64;
    Summary {
        p50: pick(|s| s.p50),
        p99: pick(|s| s.p99),
        p999: pick(|s| s.p999),
        max: pick(|s| s.max),
        count: v.iter().map(|s| s.count).sum(),
    }
}

fn median_row(runs: &[Legs]) -> Row {
    let of = |f: fn(&Legs) -> &Histogram<u64>| {
        median_summary(&runs.iter().map(|l| Summary::of(f(l))).collect::<Vec<_>>())
    };
    Row {
        rt: of(|l| &l.rt),
        to: of(|l| &l.to),
        from: of(|l| &l.from),
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn print_row(name: &str, r: &Row) {
    println!(
        "{name:<34} {:>8.2} {:>8.2} {:>9.2} | {:>8.2} {:>8.2} | {:>8.2} {:>8.2}",
        us(r.rt.p50),
        us(r.rt.p99),
        us(r.rt.p999),
        us(r.to.p50),
        us(r.to.p99),
        us(r.from.p50),
        us(r.from.p99)
    );
}

/// Run the benchmark.
pub(crate) fn run(args: &HandoffArgs) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if args.executor_cpu >= cpus || args.device_cpu >= cpus {
        bail!("--executor-cpu/--device-cpu must be below the {cpus} CPUs of this machine");
    }
    if args.round_trips == 0 || args.repeats == 0 {
        bail!("--round-trips and --repeats must be at least 1");
    }
    println!(
        "handoff: glommio executor on CPU {} <-> device engine thread on CPU {} through clockwork-gpu's rings \
         (emulated INFER of 1 ns, window [now, MAX]); baseline: std::sync::mpsc between two threads on the same CPUs; \
         {} round trips x {} runs per variant; {cpus} CPUs, loadavg {}, {}",
        args.executor_cpu,
        args.device_cpu,
        args.round_trips,
        args.repeats,
        loadavg(),
        sched_policy()
    );
    let spin = Duration::from_micros(args.spin_us);
    let (mut parked, mut spun, mut base) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.repeats {
        eprintln!(
            "  run {}/{}: rings (park), rings (spin {} us), mpsc baseline",
            rep + 1,
            args.repeats,
            args.spin_us
        );
        parked.push(rings_run(args, None)?);
        spun.push(rings_run(args, Some(spin))?);
        base.push(mpsc_run(args)?);
    }
    let (parked, spun, base) = (median_row(&parked), median_row(&spun), median_row(&base));
    println!(
        "\n{:<34} {:>8} {:>8} {:>9} | {:>17} | {:>17}",
        "variant (median of runs), us",
        "rt p50",
        "rt p99",
        "rt p99.9",
        "to device p50/p99",
        "from device p50/p99"
    );
    print_row("gpu rings, executor parks", &parked);
    print_row(
        &format!("gpu rings, executor spins {} us", args.spin_us),
        &spun,
    );
    print_row("std mpsc, two threads (baseline)", &base);
    let json = serde_json::json!({
        "bench": "handoff",
        "p50_ns": parked.rt.p50, "p99_ns": parked.rt.p99, "p999_ns": parked.rt.p999,
        "to_device_p50_ns": parked.to.p50, "to_device_p99_ns": parked.to.p99,
        "from_device_p50_ns": parked.from.p50, "from_device_p99_ns": parked.from.p99,
        "spin_us": args.spin_us,
        "spin_p50_ns": spun.rt.p50, "spin_p99_ns": spun.rt.p99, "spin_p999_ns": spun.rt.p999,
        "spin_from_device_p50_ns": spun.from.p50,
        "baseline_p50_ns": base.rt.p50, "baseline_p99_ns": base.rt.p99, "baseline_p999_ns": base.rt.p999,
        "round_trips": args.round_trips, "repeats": args.repeats,
        "executor_cpu": args.executor_cpu, "device_cpu": args.device_cpu,
        "sched_policy": sched_policy(),
    });
    println!("{json}");
    Ok(())
}

/// The 1-minute load average, for the record.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// This process's scheduling policy, for the record (`chrt -f N` makes it SCHED_FIFO).
pub(crate) fn sched_policy() -> &'static str {
    let policy = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_owned();
            // Field 41 of stat; `rest` starts at field 3.
            rest.split_whitespace().nth(38)?.parse::<u32>().ok()
        });
    match policy {
        Some(0) => "SCHED_OTHER",
        Some(1) => "SCHED_FIFO",
        Some(2) => "SCHED_RR",
        Some(3) => "SCHED_BATCH",
        Some(5) => "SCHED_IDLE",
        _ => "unknown",
    }
}
