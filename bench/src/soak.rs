//! `clockwork-bench soak --minutes N`: a local cluster (a controller and **emulated**
//! workers as child processes, see `cluster`) under a steady open-loop load for N
//! minutes, watched for leaks.
//!
//! The load is Poisson arrivals over the registered models at a fraction (`--load`,
//! default 0.6) of the cluster's batch-1 capacity (GPUs / mean batch-1 time; batching
//! makes the real capacity higher, so this is a conservative 60 %), or at `--rate`.
//! Every interval (`--interval`, default a minute) one JSON line goes to stdout: the
//! RSS and open file descriptors of each process (from /proc), p99 latency, and the
//! refusal rate of the answers received in that interval. At the end a summary says
//! whether memory and descriptors stayed flat (the least-squares slope of RSS over
//! the intervals after the first, and the last interval's RSS as a ratio of the
//! first's, the baseline of the same run), and ends with one JSON line.

use crate::cluster::{free_addr, ControllerCommand, WorkerCommand};
use crate::duration::parse_duration;
use anyhow::{anyhow, bail};
use clockwork_client::{Client, ClientReceiver};
use clockwork_core::client::ClientResponse;
use clockwork_core::rng::Rng;
use clockwork_core::{ClientStatus, ModelId, ModelProfile, MonotonicClock, Nanos, RequestId, Slo};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Flags of `clockwork-bench soak`.
#[derive(clap::Args, Debug)]
pub(crate) struct SoakArgs {
    /// How long to run, in minutes (fractions allowed: 0.2 is 12 s).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Time between report lines (e.g. 60s, 5s); default a minute, or a quarter of
    /// the run when that is shorter.
    #[arg(long, value_parser = parse_duration)]
    interval: Option<Duration>,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Emulated GPUs per worker.
    #[arg(long, default_value_t = 2)]
    gpus_per_worker: u32,
    /// Model instances (the built-in ResNet18/50/152 profiles in turn).
    #[arg(long, default_value_t = 12)]
    models: u32,
    /// Offered load as a fraction of the batch-1 capacity.
    #[arg(long, default_value_t = 0.6)]
    load: f64,
    /// Offered requests per second (overrides --load).
    #[arg(long)]
    rate: Option<f64>,
    /// The requests' SLO in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    slo_ms: f64,
    /// Seed of the arrivals.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the processes' logs (default: a fresh one under the temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// RSS and descriptors of one process at one moment.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    rss_kb: u64,
    fds: u64,
}

/// Reads `/proc/<pid>/status` (VmRSS) and counts `/proc/<pid>/fd`.
fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample { rss_kb, fds })
}

/// What the receiver counted in the current interval.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    success: u64,
    late: u64,
    refused: u64,
}

/// One report interval, as printed.
struct Interval {
    at_s: f64,
    sent: u64,
    answered: u64,
    refusal_rate: f64,
    p99_ms: f64,
    procs: Vec<Option<ProcSample>>,
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Least-squares slope of `ys` against `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let num: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

pub(crate) fn run(args: &SoakArgs) -> anyhow::Result<()> {
    if !(args.minutes.is_finite() && args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be positive and at most a day");
    }
    if args.workers == 0 || args.gpus_per_worker == 0 || args.models == 0 {
        bail!("--workers, --gpus-per-worker and --models must be at least 1");
    }
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let interval = args
        .interval
        .unwrap_or_else(|| Duration::from_secs(60).min(total / 4));
    let profiles = clockwork_core::model::builtin_profiles();
    let models: Vec<ModelProfile> = (0..args.models as usize)
        .map(|i| profiles[i % profiles.len()].clone())
        .collect();
    let mean_b1_s = models
        .iter()
        .map(|p| p.exec_time(1).map_or(0.0, |n| n.get() as f64 * 1e-9))
        .sum::<f64>()
        / models.len() as f64;
    let gpus = args.workers * args.gpus_per_worker;
    let capacity = f64::from(gpus) / mean_b1_s;
    let rate = args.rate.unwrap_or(capacity * args.load);
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the offered rate must be positive (got {rate})");
    }
    let out = match &args.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("clockwork-soak-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    let token = format!("soak-{}", std::process::id());
    eprintln!(
        "soak: {} worker(s) x {} EMULATED GPU(s), {} models, {rate:.0} requests/s ({:.0} % of the batch-1 capacity of {capacity:.0}/s), SLO {} ms, {:.1} min, a line every {:?}; logs in {}",
        args.workers,
        args.gpus_per_worker,
        args.models,
        100.0 * rate / capacity,
        args.slo_ms,
        args.minutes,
        interval,
        out.display()
    );
    let mut workers = Vec::new();
    for i in 0..args.workers {
        workers.push(
            WorkerCommand::new(&token)
                .flag("--emulate", args.gpus_per_worker)
                .flag("--seed", args.seed + u64::from(i))
                .flag("--name", format!("soak-worker-{i}"))
                .start(&format!("worker {i}"), &out.join(format!("worker-{i}.log")))?,
        );
    }
    let client_addr = free_addr()?;
    let mut controller = ControllerCommand::new(client_addr, &workers, &token)
        .flag("--slo-ms", args.slo_ms)
        .start(&out.join("controller.log"))?;
    let mut procs: Vec<(String, u32)> = Vec::new();
    if let Some(pid) = controller.pid() {
        procs.push(("controller".into(), pid));
    }
    for (i, w) in workers.iter().enumerate() {
        if let Some(pid) = w.pid() {
            procs.push((format!("worker-{i}"), pid));
        }
    }
    let slo = Nanos((args.slo_ms * 1e6) as u64);
    let load = Load {
        addr: client_addr,
        token,
        models,
        rate,
        slo,
        seed: args.seed,
        total,
        interval,
        procs: procs.clone(),
    };
    let result = run_here(ExecutorConfig::named("soak-client"), drive(load))
        .map_err(|e| anyhow!("client executor: {e}"))?;
    controller.stop(Duration::from_secs(10))?;
    for w in &mut workers {
        w.stop(Duration::from_secs(10))?;
    }
    let (intervals, unanswered) = result?;
    summary(&procs, &intervals, unanswered, rate, args.minutes);
    Ok(())
}

/// What the load generator needs.
struct Load {
    addr: SocketAddr,
    token: String,
    models: Vec<ModelProfile>,
    rate: f64,
    slo: Nanos,
    seed: u64,
    total: Duration,
    interval: Duration,
    procs: Vec<(String, u32)>,
}

async fn drive(load: Load) -> anyhow::Result<(Vec<Interval>, u64)> {
    let mut client = None;
    for _ in 0..300 {
        if let Ok(c) = Client::connect(load.addr, &load.token, "clockwork-soak").await {
            client = Some(c);
            break;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    let mut client = client.ok_or_else(|| anyhow!("cannot reach the controller"))?;
    for p in &load.models {
        client.register(p.clone(), 1).await?;
    }
    // Every model answers once before the clock starts (workers joined, weights in).
    for m in 0..load.models.len() {
        let mut ok = false;
        for _ in 0..500 {
            let r = client
                .infer(
                    ModelId(m as u32),
                    Slo::Absolute(Nanos::from_secs(1)),
                    Vec::new(),
                )
                .await?;
            if r.status == ClientStatus::Success {
                ok = true;
                break;
            }
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        if !ok {
            bail!("model {m} was never served: did the workers join?");
        }
    }
    let (mut tx, rx, _) = client.into_split();
    let inflight: Rc<RefCell<HashMap<RequestId, Nanos>>> = Rc::default();
    let window: Rc<RefCell<Window>> = Rc::default();
    let receiver = glommio::spawn_local(receive(rx, inflight.clone(), window.clone(), load.slo));
    let mut rng = Rng::derive(load.seed, 77);
    let start = MonotonicClock::read();
    let end = start + Nanos::from(load.total);
    let mut next_report = start + Nanos::from(load.interval);
    let mut next_arrival = start;
    let mut sent_in_window = 0u64;
    let mut intervals = Vec::new();
    let mean_gap_s = 1.0 / load.rate;
    loop {
        let now = MonotonicClock::read();
        while next_arrival <= now && next_arrival < end {
            let model = ModelId(rng.below(load.models.len() as u64) as u32);
            let id = tx.next_id();
            inflight.borrow_mut().insert(id, MonotonicClock::read());
            tx.send(&clockwork_core::ClientRequest::Infer(
                clockwork_core::InferRequest {
                    id,
                    model,
                    slo: Slo::Absolute(load.slo),
                    input: Default::default(),
                },
            ))
            .await?;
            sent_in_window += 1;
            next_arrival = next_arrival + Nanos((rng.exp(mean_gap_s) * 1e9) as u64);
        }
        let now = MonotonicClock::read();
        if now >= next_report {
            let w = std::mem::take(&mut *window.borrow_mut());
            intervals.push(report(
                &w,
                sent_in_window,
                (now - start).get() as f64 * 1e-9,
                &load.procs,
                intervals.len(),
            ));
            sent_in_window = 0;
            next_report = next_report + Nanos::from(load.interval);
        }
        if now >= end {
            break;
        }
        let wake = next_arrival.min(next_report).min(end).saturating_sub(now);
        glommio::timer::sleep(Duration::from(wake).min(Duration::from_millis(5))).await;
    }
    // Every request sent gets its answer by its deadline; wait a little longer.
    let wait_until = MonotonicClock::read() + load.slo + Nanos::from_secs(5);
    while !inflight.borrow().is_empty() && MonotonicClock::read() < wait_until {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(receiver);
    let unanswered = inflight.borrow().len() as u64;
    Ok((intervals, unanswered))
}

async fn receive(
    mut rx: ClientReceiver,
    inflight: Rc<RefCell<HashMap<RequestId, Nanos>>>,
    window: Rc<RefCell<Window>>,
    slo: Nanos,
) {
    while let Ok(resp) = rx.recv().await {
        let ClientResponse::Inferred(r) = resp else {
            continue;
        };
        let Some(sent) = inflight.borrow_mut().remove(&r.id) else {
            continue;
        };
        let latency = MonotonicClock::read().saturating_sub(sent);
        let mut w = window.borrow_mut();
        w.latencies_us.push(latency.get() / 1_000);
        if r.status.is_success() {
            w.success += 1;
            if latency > slo {
                w.late += 1;
            }
        } else {
            w.refused += 1;
        }
    }
}

/// Prints one interval's JSON line and returns it.
fn report(w: &Window, sent: u64, at_s: f64, procs: &[(String, u32)], index: usize) -> Interval {
    let mut lat = w.latencies_us.clone();
    lat.sort_unstable();
    let answered = w.success + w.refused;
    let refusal_rate = if answered == 0 {
        0.0
    } else {
        w.refused as f64 / answered as f64
    };
    let p99_ms = percentile(&lat, 0.99) as f64 / 1e3;
    let samples: Vec<Option<ProcSample>> = procs.iter().map(|(_, pid)| proc_sample(*pid)).collect();
    let line = json!({
        "interval": index,
        "t_s": (at_s * 10.0).round() / 10.0,
        "sent": sent,
        "answered": answered,
        "success": w.success,
        "late_success": w.late,
        "refused": w.refused,
        "refusal_rate": refusal_rate,
        "p50_ms": percentile(&lat, 0.5) as f64 / 1e3,
        "p99_ms": p99_ms,
        "processes": procs.iter().zip(&samples).map(|((name, pid), s)| json!({
            "name": name,
            "pid": pid,
            "rss_kb": s.map(|s| s.rss_kb),
            "fds": s.map(|s| s.fds),
        })).collect::<Vec<_>>(),
    });
    println!("{line}");
    Interval {
        at_s,
        sent,
        answered,
        refusal_rate,
        p99_ms,
        procs: samples,
    }
}

/// The end of the run: a table on stderr and one JSON line on stdout.
fn summary(
    procs: &[(String, u32)],
    intervals: &[Interval],
    unanswered: u64,
    rate: f64,
    minutes: f64,
) {
    // The first interval holds the warm-up (weights loading, buffers growing): the
    // slope is fitted to the ones after it, and the ratio is against it.
    let steady: Vec<&Interval> = intervals.iter().skip(1).collect();
    let mut per_proc = Vec::new();
    eprintln!("\nprocess       RSS first -> last (ratio)   RSS slope      fds first -> last");
    for (i, (name, _)) in procs.iter().enumerate() {
        let pts: Vec<(f64, ProcSample)> = steady
            .iter()
            .filter_map(|iv| iv.procs.get(i).copied().flatten().map(|s| (iv.at_s, s)))
            .collect();
        let first = intervals
            .first()
            .and_then(|iv| iv.procs.get(i).copied().flatten());
        let last = intervals
            .last()
            .and_then(|iv| iv.procs.get(i).copied().flatten());
        let xs: Vec<f64> = pts.iter().map(|(t, _)| t / 60.0).collect();
        let ys: Vec<f64> = pts.iter().map(|(_, s)| s.rss_kb as f64).collect();
        let kb_per_min = slope(&xs, &ys);
        let mean_kb = if ys.is_empty() {
            0.0
        } else {
            ys.iter().sum::<f64>() / ys.len() as f64
        };
        // Flat: the fitted growth over the whole run is under 5 % of the mean RSS
        // (or under 2 MiB, the noise of allocator arenas).
        let growth_kb = kb_per_min * minutes;
        let flat = growth_kb.abs() <= (0.05 * mean_kb).max(2_048.0);
        let fds_flat = match (first, last) {
            (Some(f), Some(l)) => l.fds <= f.fds + 4,
            _ => false,
        };
        let ratio = match (first, last) {
            (Some(f), Some(l)) if f.rss_kb > 0 => l.rss_kb as f64 / f.rss_kb as f64,
            _ => f64::NAN,
        };
        eprintln!(
            "{name:<12}  {:>7} -> {:>7} kB (x{ratio:.3})  {kb_per_min:>+8.1} kB/min  {:>4} -> {:>4}",
            first.map_or(0, |s| s.rss_kb),
            last.map_or(0, |s| s.rss_kb),
            first.map_or(0, |s| s.fds),
            last.map_or(0, |s| s.fds),
        );
        per_proc.push(json!({
            "name": name,
            "rss_kb_first": first.map(|s| s.rss_kb),
            "rss_kb_last": last.map(|s| s.rss_kb),
            "rss_ratio_last_to_first": ratio,
            "rss_slope_kb_per_min": (kb_per_min * 10.0).round() / 10.0,
            "rss_flat": flat,
            "fds_first": first.map(|s| s.fds),
            "fds_last": last.map(|s| s.fds),
            "fds_flat": fds_flat,
        }));
    }
    let rates: Vec<f64> = intervals.iter().map(|iv| iv.refusal_rate).collect();
    let p99s: Vec<f64> = intervals.iter().map(|iv| iv.p99_ms).collect();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let sent: u64 = intervals.iter().map(|iv| iv.sent).sum();
    let answered: u64 = intervals.iter().map(|iv| iv.answered).sum();
    eprintln!(
        "refusal rate per interval {:.4}..{:.4}; p99 {:.1}..{:.1} ms; {sent} sent, {unanswered} unanswered at the end (EMULATED GPUs)",
        min(&rates),
        max(&rates),
        min(&p99s),
        max(&p99s),
    );
    let all_flat = per_proc
        .iter()
        .all(|p| p["rss_flat"] == json!(true) && p["fds_flat"] == json!(true));
    println!(
        "{}",
        json!({
            "bench": "soak",
            "emulated": true,
            "minutes": minutes,
            "rate_per_s": rate.round(),
            "intervals": intervals.len(),
            "sent": sent,
            "answered_in_intervals": answered,
            "unanswered": unanswered,
            "refusal_rate_min": min(&rates),
            "refusal_rate_max": max(&rates),
            "p99_ms_max": max(&p99s),
            "processes": per_proc,
            "flat": all_flat,
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_and_percentiles() {
        assert!((slope(&[0.0, 1.0, 2.0], &[10.0, 12.0, 14.0]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[1.0], &[5.0]), 0.0);
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 6);
        assert_eq!(percentile(&[], 0.99), 0);
        let me = proc_sample(std::process::id()).unwrap();
        assert!(me.rss_kb > 0 && me.fds > 0);
    }
}
