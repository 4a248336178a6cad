//! `clockwork-bench experiment <name>`: the paper's experiments (section 6) on emulated
//! GPUs, scaled in time so each runs within minutes on a small machine. Each prints a
//! table (and a JSON line) and leaves the runs' logs, reports and plots under
//! `out/experiment-<name>/`. 6.6 runs in the virtual-time simulator: a 2-core machine
//! cannot host 150 emulated GPUs' worth of real traffic.

use crate::local::{args_json, report, run_cluster, LocalArgs, RunOutcome, WorkloadKind};
use anyhow::{bail, Context as _};
use clockwork_bench::scenario::{AzureScenario, RampScenario};
use clockwork_core::Nanos;
use std::path::PathBuf;
use std::time::Duration;

/// Which experiment.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// 6.1: 15 ResNet50 instances, 16 closed-loop clients each, 1 GPU, SLO 10-500 ms.
    #[value(name = "6.1")]
    S61,
    /// 6.2: 3,601 ResNet50 instances on 1 GPU, one more active model per interval.
    #[value(name = "6.2")]
    S62,
    /// 6.3: how low can the SLO go: SLO factor stepped x1.5 from 1x b1, 6 GPUs.
    #[value(name = "6.3")]
    S63,
    /// 6.5: the Azure trace, 4,026 instances, 6 GPUs, 100 ms SLO, timing noise on.
    #[value(name = "6.5")]
    S65,
    /// 6.6: controller scalability, 10 to 150 simulated GPUs (virtual time).
    #[value(name = "6.6")]
    S66,
}

/// Arguments of `experiment`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExperimentArgs {
    /// The experiment (paper section).
    #[arg(value_enum)]
    name: Name,
    /// Stretch (>1) or shrink (<1) every run's duration.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Output folder (default out/experiment-<name>).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn base(out: PathBuf, secs: f64) -> LocalArgs {
    LocalArgs {
        workers: 1,
        gpus_per_worker: 1,
        cpu: crate::local::CpuArgs::default(),
        models: 15,
        profiles: None,
        only: Some("resnet50_v2".into()),
        schedule_ahead_ms: 10.0,
        duration: Duration::from_secs_f64(secs),
        slo_ms: 100.0,
        workload: WorkloadKind::Closed,
        rate: 600.0,
        concurrency: 16,
        hold_refused: false,
        ramp_step: None,
        http: "127.0.0.1:8000"
            .parse()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 8000))),
        no_http: true,
        tick_us: clockwork_net::runtime::DEFAULT_TICK_US,
        active: 15,
        trace_dir: None,
        day: 1,
        start_minute: 600,
        noise: 0.02,
        seed: 1,
        out: Some(out),
    }
}

struct Row {
    cells: Vec<String>,
}

fn print_table(title: &str, header: &[&str], rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{}",
        header
            .iter()
            .map(|h| format!("{h:>14}"))
            .collect::<String>()
    );
    for r in rows {
        println!(
            "{}",
            r.cells
                .iter()
                .map(|c| format!("{c:>14}"))
                .collect::<String>()
        );
    }
}

fn pct(p: f64, v: &mut [u64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)] as f64 / 1e6
}

/// Run the cluster and leave its report.json and plots beside its logs.
fn run_and_report(args: &LocalArgs, quiet: bool) -> anyhow::Result<RunOutcome> {
    let o = run_cluster(args, quiet)?;
    let (r, data) = report(args_json(args), &o)?;
    clockwork_bench::report::write_outputs(&o.out, &r, &data)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !quiet {
        clockwork_bench::report::print_report(&r);
    }
    Ok(o)
}

/// What the client saw of the requests sent from `from` on.
struct Measured {
    offered: u64,
    answered: u64,
    within: u64,
    late: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    p9999_ms: f64,
}

impl Measured {
    fn attainment(&self) -> f64 {
        self.within as f64 / self.offered.max(1) as f64
    }

    fn goodput_rps(&self) -> f64 {
        self.within as f64 / self.secs
    }

    /// Answers of any status per second.
    fn throughput_rps(&self) -> f64 {
        self.answered as f64 / self.secs
    }
}

fn measure_after(o: &RunOutcome, from: Nanos) -> Measured {
    let kept = || o.samples.iter().filter(|s| s.sent_at >= from);
    let before = o.samples.iter().filter(|s| s.sent_at < from).count()
        + o.unanswered.iter().filter(|u| u.0 < from).count();
    let answered = kept().count() as u64;
    let within = kept()
        .filter(|s| s.status.is_success() && s.latency <= s.slo)
        .count() as u64;
    let late = kept()
        .filter(|s| s.status.is_success() && s.latency > s.slo)
        .count() as u64;
    let mut lat: Vec<u64> = kept()
        .filter(|s| s.status.is_success())
        .map(|s| s.latency.get())
        .collect();
    Measured {
        // Everything sent, less what was sent before `from`.
        offered: o.offered.saturating_sub(before as u64),
        answered,
        within,
        late,
        secs: (o.duration.as_secs_f64() - from.get() as f64 / 1e9).max(1e-9),
        p50_ms: pct(0.5, &mut lat),
        p99_ms: pct(0.99, &mut lat),
        p9999_ms: pct(0.9999, &mut lat),
    }
}

/// §6.5 in virtual time ([`AzureScenario::paper_6_5`]): `hours` measured after the
/// paper's 10-minute lead-in, seeds 1 and 2; progress every simulated half hour.
fn azure_virtual_time(hours: f64, out: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for seed in [1u64, 2] {
        let measured = Nanos((hours * 3600e9) as u64);
        let scenario = AzureScenario::paper_6_5(seed, Nanos::from_secs(600), measured);
        let wall = std::time::Instant::now();
        let mut sim = scenario.build().map_err(|e| anyhow::anyhow!("{e}"))?;
        let step = Nanos::from_secs(1800);
        let mut at = Nanos::ZERO;
        while at < scenario.end() {
            at = (at + step).min(scenario.end());
            sim.run_until(at);
            let r = sim.report();
            eprintln!(
                "  virtual time, seed {seed}: {:.1} of {:.1} h simulated, {} measured requests, \
                 {} answered, {} of them missed, {:.0} s wall",
                at.get() as f64 / 3600e9,
                scenario.end().get() as f64 / 3600e9,
                r.offered,
                r.answered,
                r.answered - r.success.min(r.answered),
                wall.elapsed().as_secs_f64()
            );
        }
        sim.drain(scenario.slo + Nanos::from_secs(1));
        let r = sim.report();
        if r.violations.total() != 0 {
            bail!("virtual-time 6.5: invariant violations {:?}", r.violations);
        }
        let misses: Vec<String> = r
            .by_status
            .iter()
            .filter(|(s, n)| !s.is_success() && *n > 0)
            .map(|(s, n)| format!("{s:?} {n}"))
            .collect();
        rows.push(Row {
            cells: vec![
                seed.to_string(),
                format!("{hours:.1} h"),
                r.offered.to_string(),
                format!("{:.7}", r.slo_attainment),
                r.stats.late_successes.to_string(),
                format!("{:.0}", r.goodput_rps),
                format!("{:.2}", r.latency_p50.as_millis_f64()),
                format!("{:.2}", r.latency_p99.as_millis_f64()),
                format!("{:.2}", r.latency_max.as_millis_f64()),
                if misses.is_empty() {
                    "-".into()
                } else {
                    misses.join(", ")
                },
            ],
        });
        runs.push(serde_json::json!({
            "seed": seed, "hours": hours, "warmup_s": 600, "offered": r.offered,
            "success": r.success, "slo_attainment": r.slo_attainment,
            "late_successes": r.stats.late_successes, "goodput_rps": r.goodput_rps,
            "p50_ms": r.latency_p50.as_millis_f64(), "p99_ms": r.latency_p99.as_millis_f64(),
            "max_ms": r.latency_max.as_millis_f64(), "misses": misses,
            "cold_starts": r.stats.cold_starts, "loads": r.stats.loads,
            "wall_s": wall.elapsed().as_secs_f64(),
        }));
    }
    print_table(
        "6.5 in virtual time: the same cluster, trace and scheduler; simulated workers with 2% normal noise; 10-min lead-in left out",
        &["seed", "measured", "offered", "attainment", "late succ.", "goodput r/s", "p50 ms", "p99 ms", "max ms", "misses"],
        &rows,
    );
    let offered: u64 = runs.iter().filter_map(|r| r["offered"].as_u64()).sum();
    let success: u64 = runs.iter().filter_map(|r| r["success"].as_u64()).sum();
    let all = success as f64 / offered.max(1) as f64;
    println!("virtual time, both seeds: {success} of {offered} within SLO = {all:.7}");
    let v = serde_json::json!({"runs": runs, "offered": offered, "success": success, "slo_attainment": all});
    std::fs::write(
        out.join("virtual_time.json"),
        serde_json::to_string_pretty(&v)?,
    )?;
    Ok(v)
}

/// §6.2 at the paper's length in virtual time ([`RampScenario::paper_6_2`]): goodput,
/// SLO attainment, LOADs and UNLOADs per 5-minute window, a table and a plot.
fn ramp_virtual_time(out: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let scenario = RampScenario::paper_6_2(1);
    let wall = std::time::Instant::now();
    let mut sim = scenario.build().map_err(|e| anyhow::anyhow!("{e}"))?;
    // One-minute points for the plot, five-minute rows for the table.
    let step = Nanos::from_secs(60);
    let mut rows = Vec::new();
    let mut pts = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut row_start = (Nanos::ZERO, last);
    let mut at = Nanos::ZERO;
    while at < scenario.end {
        let from = at;
        at = (at + step).min(scenario.end);
        sim.run_until(at);
        let r = sim.report();
        let now = (r.offered, r.success, r.stats.loads, r.stats.unloads);
        let active = scenario.spec.active_majors(at - Nanos(1));
        let point = |from: Nanos, a: (u64, u64, u64, u64)| {
            let secs = (at - from).get() as f64 / 1e9;
            let (off, ok) = (now.0 - a.0, now.1 - a.1);
            serde_json::json!({
                "from_min": from.get() as f64 / 60e9, "to_min": at.get() as f64 / 60e9,
                "active_majors": active, "offered_rps": off as f64 / secs,
                "goodput_rps": ok as f64 / secs,
                "slo_attainment": ok as f64 / off.max(1) as f64,
                "loads": now.2 - a.2, "unloads": now.3 - a.3,
            })
        };
        pts.push(point(from, last));
        last = now;
        if pts.len() % 5 == 0 || at == scenario.end {
            let p = point(row_start.0, row_start.1);
            let f = |k: &str, d: usize| format!("{:.d$}", p[k].as_f64().unwrap_or(0.0));
            rows.push(Row {
                cells: vec![
                    format!("{}-{}", f("from_min", 0), f("to_min", 0)),
                    active.to_string(),
                    f("offered_rps", 0),
                    f("goodput_rps", 0),
                    f("slo_attainment", 4),
                    p["loads"].to_string(),
                    p["unloads"].to_string(),
                ],
            });
            row_start = (at, now);
            eprintln!(
                "  virtual time: {:.0} of {:.0} min simulated, {active} majors active, {:.0} s wall",
                at.get() as f64 / 60e9,
                scenario.end.get() as f64 / 60e9,
                wall.elapsed().as_secs_f64()
            );
        }
    }
    sim.drain(Nanos::from_secs(2));
    let r = sim.report();
    if r.violations.total() != 0 {
        bail!("virtual-time 6.2: invariant violations {:?}", r.violations);
    }
    print_table(
        "6.2 in virtual time: 3,601 ResNet50 on 1 simulated GPU, 5 min lead-in, then one more major per second (the paper's 75 minutes)",
        &["minutes", "majors active", "offered r/s", "goodput r/s", "attainment", "LOADs", "UNLOADs"],
        &rows,
    );
    println!(
        "virtual time: {} requests, {} within SLO, {} late successes, {:.0} s wall",
        r.offered,
        r.success,
        r.stats.late_successes,
        wall.elapsed().as_secs_f64()
    );
    let svg = out.join("virtual_time_goodput.svg");
    plot_ramp(&pts, &svg)?;
    println!("plot: {}", svg.display());
    let summary = serde_json::json!({"offered": r.offered, "success": r.success,
        "late_successes": r.stats.late_successes, "loads": r.stats.loads, "unloads": r.stats.unloads,
        "windows_in": "virtual_time.json"});
    let mut v = summary.clone();
    v["windows"] = pts.into();
    std::fs::write(
        out.join("virtual_time.json"),
        serde_json::to_string_pretty(&v)?,
    )?;
    Ok(summary)
}

/// Offered load and goodput per window against time, with the active majors.
fn plot_ramp(pts: &[serde_json::Value], path: &std::path::Path) -> anyhow::Result<()> {
    use clockwork_bench::report::chart::palette::{BLUE, GREEN, GREY};
    use clockwork_bench::report::chart::{DualAxisChart, Line};
    let get = |p: &serde_json::Value, k: &str| p[k].as_f64().unwrap_or(f64::NAN);
    let line = |k: &str| -> Vec<(f64, f64)> {
        pts.iter().map(|p| (get(p, "to_min"), get(p, k))).collect()
    };
    let chart = DualAxisChart {
        caption: "6.2 in virtual time (simulated GPU): goodput as models are added".into(),
        x_desc: "minutes".into(),
        y_desc: "requests / s".into(),
        y2_desc: "majors active".into(),
        left: vec![
            Line::new("offered", BLUE, line("offered_rps")),
            Line::new("goodput (within SLO)", GREEN, line("goodput_rps")),
        ],
        right: vec![Line::new("majors active", GREY, line("active_majors"))],
        y2_min_top: 1.0,
    };
    let svg = chart
        .render()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// Run one experiment.
pub(crate) fn run(a: &ExperimentArgs) -> anyhow::Result<()> {
    if !(a.time_scale.is_finite() && a.time_scale > 0.0 && a.time_scale <= 100.0) {
        bail!("--time-scale must be in (0, 100]");
    }
    let label = match a.name {
        Name::S61 => "6.1",
        Name::S62 => "6.2",
        Name::S63 => "6.3",
        Name::S65 => "6.5",
        Name::S66 => "6.6",
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("out/experiment-{label}")));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let t = |s: f64| s * a.time_scale;
    println!(
        "experiment {label} on EMULATED GPUs (timing noise 2%); output under {}",
        out.display()
    );
    let mut json = serde_json::json!({"bench": "experiment", "name": label, "emulated": true});
    match a.name {
        Name::S61 => {
            // Two kinds of client: one that sends its next request as soon as any
            // answer arrives (rejections come at once, so it retries at once), and one
            // that waits out a refused request's SLO, as a client of the original (which
            // refused nothing up front) waited for the timeout.
            let mut all = serde_json::Map::new();
            for (hold, key, what) in [
                (false, "retry_at_once", "refused clients retry at once"),
                (true, "hold_refused", "refused clients wait out their SLO"),
            ] {
                let mut rows = Vec::new();
                let mut pts = Vec::new();
                for slo in [10.0, 25.0, 50.0, 100.0, 250.0, 500.0] {
                    let dir = if hold {
                        format!("hold/slo-{slo}")
                    } else {
                        format!("slo-{slo}")
                    };
                    let mut args = base(out.join(dir), t(20.0));
                    args.slo_ms = slo;
                    args.hold_refused = hold;
                    eprintln!("  SLO {slo} ms, {what} ...");
                    let o = run_and_report(&args, true)?;
                    let m = measure_after(&o, Nanos::ZERO);
                    let (goodput, thr, att) = (m.goodput_rps(), m.throughput_rps(), m.attainment());
                    let (p50, p99) = (m.p50_ms, m.p99_ms);
                    rows.push(Row {
                        cells: vec![
                            format!("{slo}"),
                            format!("{goodput:.0}"),
                            format!("{thr:.0}"),
                            format!("{:.4}", att),
                            format!("{p50:.2}"),
                            format!("{p99:.2}"),
                        ],
                    });
                    pts.push(serde_json::json!({"slo_ms": slo, "goodput_rps": goodput, "throughput_rps": thr, "slo_attainment": att, "p99_ms": p99}));
                }
                print_table(
                    &format!(
                        "6.1: 15 x ResNet50, 16 closed-loop clients each, 1 emulated GPU; {what}"
                    ),
                    &[
                        "SLO ms",
                        "goodput r/s",
                        "answers r/s",
                        "attainment",
                        "p50 ms",
                        "p99 ms",
                    ],
                    &rows,
                );
                all.insert(key.to_owned(), pts.into());
            }
            json["points"] = all.into();
        }
        Name::S62 => {
            let mut args = base(out.join("run"), t(60.0));
            args.models = 3601;
            args.workload = WorkloadKind::Ramp;
            args.rate = 1200.0;
            // 5 s lead-in, then enough models per second to pass the ~196 that fit in
            // the GPU's cache about halfway through (the paper: one per second over 75
            // minutes).
            args.ramp_step = Some(
                ((400.0 / (args.duration.as_secs_f64() - 5.0).max(1.0)).ceil() as usize).max(1),
            );
            let o = run_and_report(&args, false)?;
            let mut rows = Vec::new();
            let step = (o.duration.as_secs_f64() / 6.0).max(1.0);
            let mut pts = Vec::new();
            for k in 0..6 {
                let (lo, hi) = (
                    Nanos::from(Duration::from_secs_f64(k as f64 * step)),
                    Nanos::from(Duration::from_secs_f64((k + 1) as f64 * step)),
                );
                let win: Vec<_> = o
                    .samples
                    .iter()
                    .filter(|s| s.sent_at >= lo && s.sent_at < hi)
                    .collect();
                let good = win
                    .iter()
                    .filter(|s| s.status.is_success() && s.latency <= s.slo)
                    .count();
                let models: std::collections::HashSet<u32> = win.iter().map(|s| s.model).collect();
                rows.push(Row {
                    cells: vec![
                        format!(
                            "{:.0}-{:.0}",
                            lo.as_millis_f64() / 1e3,
                            hi.as_millis_f64() / 1e3
                        ),
                        format!("{}", models.len()),
                        format!("{:.0}", good as f64 / step),
                        format!("{:.4}", good as f64 / win.len().max(1) as f64),
                    ],
                });
                pts.push(serde_json::json!({"from_s": lo.as_millis_f64() / 1e3, "active_models": models.len(), "goodput_rps": good as f64 / step}));
            }
            print_table(
                "6.2: 3,601 ResNet50 instances on 1 emulated GPU, ramp",
                &["window s", "models seen", "goodput r/s", "attainment"],
                &rows,
            );
            json["windows"] = pts.into();
            // The paper's full 75-minute ramp, one major more per second, in virtual time.
            json["virtual_time"] = ramp_virtual_time(&out)?;
        }
        Name::S63 => {
            let mut args = base(out.join("run"), t(60.0));
            args.workers = 3;
            args.gpus_per_worker = 2;
            args.models = 12;
            args.active = 12;
            args.workload = WorkloadKind::SloSweep;
            args.rate = 600.0;
            args.schedule_ahead_ms = 5.0;
            let o = run_and_report(&args, false)?;
            let mut by_slo: std::collections::BTreeMap<u64, (usize, usize)> = Default::default();
            for s in &o.samples {
                let e = by_slo.entry(s.slo.get() / 100_000).or_default();
                e.0 += 1;
                if s.status.is_success() && s.latency <= s.slo {
                    e.1 += 1;
                }
            }
            let mut rows = Vec::new();
            let mut pts = Vec::new();
            for (slo, (n, good)) in by_slo {
                let ms = slo as f64 / 10.0;
                rows.push(Row {
                    cells: vec![
                        format!("{ms:.1}"),
                        n.to_string(),
                        format!("{:.4}", good as f64 / n as f64),
                    ],
                });
                pts.push(serde_json::json!({"slo_ms": ms, "requests": n, "goodput_fraction": good as f64 / n as f64}));
            }
            print_table(
                "6.3: 12 x ResNet50 on 6 emulated GPUs, 600 r/s Poisson, SLO stepped x1.5",
                &["SLO ms", "requests", "in SLO"],
                &rows,
            );
            json["points"] = pts.into();
        }
        Name::S65 => {
            // Real processes: a warm-up (the paper left out a 10-minute lead-in, with
            // ~15 minutes allowed for loading) and then the measured part.
            let warmup = t(40.0);
            let mut args = base(out.join("run"), warmup + t(120.0));
            args.workers = 3;
            args.gpus_per_worker = 2;
            args.models = 4026;
            args.only = None;
            args.workload = WorkloadKind::Azure;
            args.rate = 900.0;
            let o = run_and_report(&args, false)?;
            let whole = measure_after(&o, Nanos::ZERO);
            let after = measure_after(&o, Nanos((warmup * 1e9) as u64));
            let row = |what: &str, m: &Measured| Row {
                cells: vec![
                    what.to_owned(),
                    m.offered.to_string(),
                    m.answered.to_string(),
                    format!("{:.6}", m.attainment()),
                    m.late.to_string(),
                    format!("{:.0}", m.goodput_rps()),
                    format!("{:.2}", m.p50_ms),
                    format!("{:.2}", m.p99_ms),
                    format!("{:.2}", m.p9999_ms),
                ],
            };
            print_table(
                "6.5: Azure (synthetic trace), 4,026 instances of ResNet18/50/152, 6 emulated GPUs, 100 ms SLO (real processes)",
                &["requests", "offered", "answered", "attainment", "late succ.", "goodput r/s", "p50 ms", "p99 ms", "p99.99 ms"],
                &[row("whole run", &whole), row(&format!("after {warmup:.0} s warm-up"), &after)],
            );
            json["slo_attainment"] = after.attainment().into();
            json["slo_attainment_whole_run"] = whole.attainment().into();
            json["warmup_s"] = warmup.into();
            json["offered"] = after.offered.into();
            json["late_successes_client_side"] = after.late.into();
            json["goodput_rps"] = after.goodput_rps().into();
            // The same scenario in virtual time for the paper's 8 hours.
            let hours = 8.0 * a.time_scale.min(1.0);
            json["virtual_time"] = azure_virtual_time(hours, &out)?;
        }
        Name::S66 => {
            let v = crate::scalability::run_6_6(a.time_scale, &out)?;
            // Every step of every ramp goes to scalability.json; the summary keeps
            // the peaks.
            std::fs::write(
                out.join("scalability.json"),
                serde_json::to_string_pretty(&v)?,
            )?;
            let mut points = v["points"].clone();
            if let Some(ps) = points.as_array_mut() {
                for p in ps {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("steps");
                    }
                }
            }
            json["points"] = points;
        }
    }
    std::fs::write(
        out.join("experiment.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{json}");
    Ok(())
}
