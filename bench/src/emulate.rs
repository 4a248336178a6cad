//! `clockwork-bench emulate`: a worker with many emulated GPUs under a steady planned
//! load, over real loopback TCP.
//!
//! The worker runs in this process (`clockwork_worker::Worker::serve`: its own glommio
//! executor and device engine threads) and a fake controller on another executor
//! connects to it like the real one would. After registering ResNet18 and ResNet50
//! (V100 profiles) and loading one of them on every device, the controller plans every
//! device's timeline ahead, as Clockwork's scheduler does: each INFER gets a random
//! supported batch size, `earliest` = its planned start (the previous INFER's planned
//! end plus an idle gap chosen so the device is busy `--util` of the time on average),
//! `latest` = `earliest + --slack-ms`; actions are sent `--schedule-ahead-ms` before
//! their start, in one frame per tick (about 1 ms) for all devices.
//!
//! Measured, for INFERs planned to start after the warm-up:
//! * **completion error** = reported completion (`exec.end`, converted to the
//!   controller's clock by the worker) − planned completion (`earliest` + the
//!   profile's execution time of the padded batch). With no noise, this is exactly how
//!   late the worker is: start lateness plus completion-detection lateness;
//! * start lateness (`exec.begin − earliest`) and receipt lateness (when the controller
//!   read the result − planned completion: adds the result's trip back);
//! * the worker's CPU time (its executor thread and its engine threads, from
//!   `/proc/self/task/*/schedstat`) per emulated device-second.

use crate::handoff::{loadavg, sched_policy};
use crate::stats::{histogram, Summary};
use anyhow::{anyhow, bail, Context as _};
use clockwork_core::model::{resnet18, resnet50};
use clockwork_core::rng::Rng;
use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::{
    Action, ActionId, ActionKind, GpuId, ModelId, ModelProfile, MonotonicClock, Nanos, Outcome,
    Window, WorkerStatus,
};
use clockwork_gpu::{Backend, DeviceConfig, NoiseModel};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_net::LinkStream;
use clockwork_net::{connect, FrameReader, LinkConfig};
use clockwork_worker::{Worker, WorkerConfig};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Arguments of `emulate`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct EmulateArgs {
    /// Emulated GPUs in the worker.
    #[arg(long, default_value_t = 100)]
    devices: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// Target fraction of time each device is busy.
    #[arg(long, default_value_t = 0.65)]
    util: f64,
    /// Worker engine threads driving the emulated devices.
    #[arg(long, default_value_t = 1)]
    engine_threads: usize,
    /// Pin engine thread i to the i-th of these CPUs.
    #[arg(long, value_delimiter = ',')]
    engine_cpus: Vec<usize>,
    /// Pin the worker's network executor to this CPU.
    #[arg(long)]
    worker_cpu: Option<usize>,
    /// Spin-before-park of the worker's network executor, in microseconds (0: park).
    #[arg(long, default_value_t = 0)]
    worker_spin_us: u64,
    /// Pin the fake controller's executor to this CPU.
    #[arg(long)]
    controller_cpu: Option<usize>,
    /// How far ahead of its start each INFER is sent, in ms.
    #[arg(long, default_value_t = 10)]
    schedule_ahead_ms: u64,
    /// `latest − earliest` of each INFER, in ms.
    #[arg(long, default_value_t = 5)]
    slack_ms: u64,
    /// Seed of the plan (batch sizes, gaps).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Relative sigma of normal timing noise on the devices (0: none, as the original).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
}

const TOKEN: &str = "bench-emulate";
const BATCHES: [u32; 5] = [1, 2, 4, 8, 16];

/// One planned INFER.
#[derive(Clone, Copy)]
struct Plan {
    earliest: Nanos,
    exec: Nanos,
    measured: bool,
}

/// What the result reader collects.
struct Stats {
    plans: HashMap<u64, Plan>,
    completion: Histogram<u64>,
    start: Histogram<u64>,
    detect: Histogram<u64>,
    send: Histogram<u64>,
    receipt: Histogram<u64>,
    /// Completions reported before their planned time (clock-offset estimate error).
    early: u64,
    ok: u64,
    too_late: u64,
    errors: u64,
    first_error: Option<String>,
    busy: Nanos,
}

impl Stats {
    fn new() -> Self {
        Self {
            plans: HashMap::new(),
            completion: histogram(),
            start: histogram(),
            detect: histogram(),
            send: histogram(),
            receipt: histogram(),
            early: 0,
            ok: 0,
            too_late: 0,
            errors: 0,
            first_error: None,
            busy: Nanos::ZERO,
        }
    }

    fn on_result(&mut self, r: &clockwork_core::ActionResult, seen: Nanos) {
        let Some(plan) = self.plans.remove(&r.action_id.get()) else {
            return;
        };
        if !plan.measured {
            return;
        }
        match (&r.outcome, r.status) {
            (Outcome::Inferred(i), WorkerStatus::Success) => {
                self.ok += 1;
                let planned_end = plan.earliest + plan.exec;
                if i.exec.end < planned_end {
                    self.early += 1;
                }
                self.completion
                    .saturating_record((i.exec.end - planned_end).get());
                self.start
                    .saturating_record((i.exec.begin - plan.earliest).get());
                self.detect
                    .saturating_record((i.exec.end - (i.exec.begin + i.exec.duration)).get());
                self.send.saturating_record((r.sent - i.exec.end).get());
                self.receipt.saturating_record((seen - planned_end).get());
                self.busy = self.busy + i.exec.duration;
            }
            (_, WorkerStatus::ExecTooLate) => self.too_late += 1,
            (o, s) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{s}: {o:?}"));
            }
        }
    }
}

/// CPU time, in ns, of this process's threads whose names start with one of `prefixes`.
fn threads_cpu_ns(prefixes: &[&str]) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let p = entry.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else {
            continue;
        };
        if !prefixes.iter().any(|pre| comm.trim().starts_with(pre)) {
            continue;
        }
        let from_schedstat = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .filter(|&ns| ns > 0);
        total += from_schedstat.unwrap_or_else(|| {
            // utime + stime in clock ticks (USER_HZ = 100 on Linux).
            std::fs::read_to_string(p.join("stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
                })
                .unwrap_or(0)
                * 10_000_000
        });
    }
    total
}

const WORKER_THREADS: [&str; 2] = ["cw-worker", "cw-gpu-engine"];

struct Report {
    stats: Stats,
    /// CPU of the worker's network executor thread.
    net_cpu_ns: u64,
    /// CPU of the worker's device engine threads.
    engines_cpu_ns: u64,
    measured: Duration,
    sent: u64,
    rtt_ns: Option<u64>,
}

fn models() -> [(ModelId, ModelProfile); 2] {
    [(ModelId(0), resnet18()), (ModelId(1), resnet50())]
}

async fn recv_one(
    reader: &mut FrameReader<LinkStream>,
) -> anyhow::Result<clockwork_core::ActionResult> {
    loop {
        let msg = reader.recv_msg::<FromWorker>().await?;
        match rkyv::deserialize::<FromWorker, rkyv::rancor::Error>(msg)? {
            FromWorker::Result(r) => return Ok(r),
            FromWorker::Heartbeat => {}
        }
    }
}

/// The fake controller: set up, then plan and send until the end, then collect.
async fn controller(addr: SocketAddr, args: EmulateArgs) -> anyhow::Result<Report> {
    let (conn, _) = connect(
        addr,
        PeerRole::Controller,
        &LinkConfig::new(TOKEN, "bench-ctl"),
    )
    .await?;
    let (mut reader, mut writer) = conn.into_split();
    let mut next_id = 1u64;
    let mut action = |window, kind| {
        let a = Action {
            id: ActionId(next_id),
            window,
            kind,
        };
        next_id += 1;
        a
    };
    let profiles = models();
    let registers: Vec<_> = profiles
        .iter()
        .map(|(m, p)| {
            action(
                Window::ANY,
                ActionKind::RegisterModel {
                    model: *m,
                    count: 1,
                    profile: p.clone(),
                },
            )
        })
        .collect();
    let n = registers.len();
    writer.send(&ToWorker::Actions(registers)).await?;
    for _ in 0..n {
        let r = recv_one(&mut reader).await?;
        if r.status != WorkerStatus::Success {
            bail!("register failed: {:?}", r.outcome);
        }
    }
    let loads: Vec<_> = (0..args.devices)
        .map(|g| {
            action(
                Window::ANY,
                ActionKind::LoadWeights {
                    model: profiles[g as usize % 2].0,
                    gpu: GpuId(g),
                    expected_duration: Nanos::ZERO,
                },
            )
        })
        .collect();
    writer.send(&ToWorker::Actions(loads)).await?;
    for _ in 0..args.devices {
        let r = recv_one(&mut reader).await?;
        if r.status != WorkerStatus::Success {
            bail!("load failed: {:?}", r.outcome);
        }
    }

    let stats = Rc::new(RefCell::new(Stats::new()));
    let received = Rc::new(Cell::new(0u64));
    let rtt = Rc::new(Cell::new(None));
    let reader_task = {
        let (stats, received, rtt) = (Rc::clone(&stats), Rc::clone(&received), Rc::clone(&rtt));
        glommio::spawn_local(async move {
            while let Ok(r) = recv_one(&mut reader).await {
                let seen = MonotonicClock::read();
                stats.borrow_mut().on_result(&r, seen);
                received.set(received.get() + 1);
                if received.get() % 256 == 0 {
                    rtt.set(reader.clock().rtt_ns());
                }
            }
        })
    };

    let mut rng = Rng::new(args.seed);
    let start = MonotonicClock::read();
    let measure_from = start + Nanos::from_secs(args.warmup_s);
    let end = measure_from + Nanos::from_secs(args.seconds);
    let ahead = Nanos::from_millis(args.schedule_ahead_ms);
    let slack = Nanos::from_millis(args.slack_ms);
    let idle_factor = (1.0 / args.util.clamp(0.01, 1.0)) - 1.0;
    let mut next_start: Vec<Nanos> = (0..args.devices)
        .map(|_| start + Nanos::from_millis(20) + Nanos((rng.f64() * 10e6) as u64))
        .collect();
    let mut sent = 0u64;
    let mut cpu_at_measure = None;
    let mut batch = Vec::new();
    loop {
        let now = MonotonicClock::read();
        if now >= end {
            break;
        }
        if cpu_at_measure.is_none() && now >= measure_from {
            cpu_at_measure = Some((
                threads_cpu_ns(&WORKER_THREADS[..1]),
                threads_cpu_ns(&WORKER_THREADS[1..]),
                now,
            ));
        }
        let horizon = now + ahead;
        for g in 0..args.devices {
            let (model, profile) = &profiles[g as usize % 2];
            while next_start[g as usize] <= horizon {
                let earliest = next_start[g as usize].max(now + Nanos::from_millis(1));
                let b = BATCHES[(rng.next_u64() % BATCHES.len() as u64) as usize];
                let exec = profile
                    .exec_time(b)
                    .ok_or_else(|| anyhow!("no batch {b}"))?;
                let a = action(
                    Window::new(earliest, earliest + slack),
                    ActionKind::Infer {
                        model: *model,
                        gpu: GpuId(g),
                        batch_size: b,
                        expected_duration: exec,
                        input_sizes: Vec::new(),
                        inputs: Default::default(),
                    },
                );
                stats.borrow_mut().plans.insert(
                    a.id.get(),
                    Plan {
                        earliest,
                        exec,
                        measured: earliest >= measure_from && earliest < end,
                    },
                );
                batch.push(a);
                let gap = exec.get() as f64 * idle_factor * (0.5 + rng.f64());
                next_start[g as usize] = earliest + exec + Nanos(gap as u64);
            }
        }
        if !batch.is_empty() {
            sent += batch.len() as u64;
            writer
                .send(&ToWorker::Actions(std::mem::take(&mut batch)))
                .await?;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let (net_end, engines_end) = (
        threads_cpu_ns(&WORKER_THREADS[..1]),
        threads_cpu_ns(&WORKER_THREADS[1..]),
    );
    let (net_start, engines_start, t_measure) =
        cpu_at_measure.ok_or_else(|| anyhow!("no measured interval"))?;
    let measured = Duration::from(MonotonicClock::read() - t_measure);
    // Collect what is still running.
    let deadline = MonotonicClock::read() + Nanos::from_secs(5);
    while received.get() < sent && MonotonicClock::read() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    if received.get() < sent {
        bail!("{} of {sent} results never arrived", sent - received.get());
    }
    reader_task.cancel().await;
    let stats = std::mem::replace(&mut *stats.borrow_mut(), Stats::new());
    Ok(Report {
        stats,
        net_cpu_ns: net_end.saturating_sub(net_start),
        engines_cpu_ns: engines_end.saturating_sub(engines_start),
        measured,
        sent,
        rtt_ns: rtt.get(),
    })
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// Run the benchmark.
pub(crate) fn run(args: &EmulateArgs) -> anyhow::Result<()> {
    if args.devices == 0 || args.seconds == 0 {
        bail!("--devices and --seconds must be at least 1");
    }
    if !(args.util > 0.0 && args.util <= 1.0) {
        bail!("--util must be in (0, 1]");
    }
    let mut devices = DeviceConfig::emulated(args.devices);
    devices.backend = Backend::Emulated {
        devices: args.devices,
        engine_threads: args.engine_threads,
        noise: if args.noise > 0.0 {
            NoiseModel::Normal {
                rel_sigma: args.noise,
            }
        } else {
            NoiseModel::None
        },
        seed: args.seed,
    };
    devices.cpus.clone_from(&args.engine_cpus);
    let mut config = WorkerConfig::with_devices(devices);
    config.listen = "127.0.0.1:0".parse().map_err(|e| anyhow!("{e}"))?;
    config.link = LinkConfig::new(TOKEN, "bench-worker");
    // The fake controller sends no heartbeats: never declare it silent.
    config.liveness.timeout = Duration::from_secs(3600);
    config.executor.cpu = args.worker_cpu;
    if args.worker_spin_us > 0 {
        config.executor.spin_before_park = Some(Duration::from_micros(args.worker_spin_us));
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "emulate: in-process worker with {} EMULATED GPUs (ResNet18/ResNet50 V100 profiles, noise {}), {} engine thread(s) {:?}, \
         worker executor CPU {:?} (spin {} us), controller CPU {:?}; target util {:.0} %, batches {BATCHES:?}, sent {} ms ahead, slack {} ms; \
         {}+{} s; {cpus} CPUs, loadavg {}, {}",
        args.devices,
        args.noise,
        args.engine_threads,
        args.engine_cpus,
        args.worker_cpu,
        args.worker_spin_us,
        args.controller_cpu,
        args.util * 100.0,
        args.schedule_ahead_ms,
        args.slack_ms,
        args.warmup_s,
        args.seconds,
        loadavg(),
        sched_policy()
    );
    let worker = Worker::serve(config).context("starting the worker")?;
    let addr = worker.local_addr();
    let mut ctl_cfg = ExecutorConfig::named("bench-ctl");
    ctl_cfg.cpu = args.controller_cpu;
    let ctl_args = args.clone();
    let report = runtime::spawn(ctl_cfg, move || controller(addr, ctl_args))?.join()??;
    worker.stop()?;

    let s = &report.stats;
    let c = Summary::of(&s.completion);
    let st = Summary::of(&s.start);
    let dt = Summary::of(&s.detect);
    let sd = Summary::of(&s.send);
    let rc = Summary::of(&s.receipt);
    let secs = report.measured.as_secs_f64();
    let device_s = f64::from(args.devices) * secs;
    let (net_s, engines_s) = (
        report.net_cpu_ns as f64 / 1e9,
        report.engines_cpu_ns as f64 / 1e9,
    );
    let cpu_s = net_s + engines_s;
    let cpu_per_device_s = cpu_s / device_s;
    let util = s.busy.get() as f64 / 1e9 / device_s;
    println!(
        "\nINFERs measured: {} ok, {} too late (81), {} other errors; {} actions sent in all; achieved busy {:.1} %",
        s.ok,
        s.too_late,
        s.errors,
        report.sent,
        util * 100.0
    );
    if let Some(e) = &s.first_error {
        println!("first error: {e}");
    }
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "us", "p50", "p99", "p99.9", "max"
    );
    for (name, x) in [
        ("completion error (reported end - planned)", &c),
        ("start lateness (begin - earliest)", &st),
        ("end detection (end - begin - duration)", &dt),
        ("worker send delay (sent - end)", &sd),
        ("receipt lateness (controller read - planned)", &rc),
    ] {
        println!(
            "{name:<44} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            us(x.p50),
            us(x.p99),
            us(x.p999),
            us(x.max)
        );
    }
    if s.early > 0 {
        println!(
            "{} completions were reported before their planned time (clock-offset estimate error; counted as 0)",
            s.early
        );
    }
    println!(
        "worker CPU: {cpu_s:.2} s over {secs:.1} s ({:.2} cores: network executor {:.2}, engines {:.2}) = {cpu_per_device_s:.5} CPU-s per device-s",
        cpu_s / secs,
        net_s / secs,
        engines_s / secs
    );
    println!("goal: completion error p99 <= 1000 us");
    let json = serde_json::json!({
        "bench": "emulate",
        "devices": args.devices,
        "completion_error_p50_us": us(c.p50),
        "completion_error_p99_us": us(c.p99),
        "completion_error_p999_us": us(c.p999),
        "completion_error_max_us": us(c.max),
        "start_late_p50_us": us(st.p50), "start_late_p99_us": us(st.p99),
        "end_detect_p50_us": us(dt.p50), "end_detect_p99_us": us(dt.p99),
        "send_delay_p50_us": us(sd.p50), "send_delay_p99_us": us(sd.p99),
        "receipt_late_p50_us": us(rc.p50), "receipt_late_p99_us": us(rc.p99),
        "cpu_s_per_device_s": cpu_per_device_s,
        "worker_cpu_cores": cpu_s / secs,
        "worker_net_cpu_cores": net_s / secs, "worker_engine_cpu_cores": engines_s / secs,
        "infers_ok": s.ok, "too_late": s.too_late, "errors": s.errors,
        "busy_fraction": util, "target_util": args.util,
        "seconds": secs, "engine_threads": args.engine_threads,
        "noise_rel_sigma": args.noise,
        "rtt_ns": report.rtt_ns,
        "sched_policy": sched_policy(),
    });
    println!("{json}");
    Ok(())
}
