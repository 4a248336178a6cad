//! `clockwork-bench loadgen`: an open- and closed-loop load generator for any Open
//! Inference Protocol REST endpoint (`POST /v2/models/{m}/infer`: Clockwork-RS,
//! Triton, KServe, ...).
//!
//! - [`schedule`]: when requests are due (Poisson, constant, a trace file, the Azure
//!   trace), for which model and SLO class.
//! - [`conn`]: the target URL, request bytes built once per (model, SLO class), one
//!   keep-alive HTTP/1.1 connection on glommio, answers parsed with `httparse`.
//! - [`driver`]: what a connection (open loop) or client (closed loop) does, 429
//!   retries, timing from the scheduled send time (no coordinated omission).
//! - [`accounting`]: counts and latency histograms per SLO class.
//! - [`report`]: progress, the table and the JSON line.
//! - [`sink`]: a server that answers at once, for the speed check (`--self-test`).
//!
//! Everything runs on one glommio executor pinned to one core. The SLO of a class is
//! sent as the request's `timeout` parameter (µs).

mod accounting;
mod conn;
mod driver;
mod report;
mod schedule;
mod sink;

pub(crate) use accounting::Tally;
pub(crate) use driver::RetryPolicy;
pub(crate) use schedule::OpenSource;

use anyhow::{anyhow, bail, Context as _};
use clockwork_core::Nanos;
use clockwork_net::runtime::{run_here, ExecutorConfig};
use conn::{HttpConn, Target, Templates};
use driver::{Clock, Ctx, GlommioClock};
use schedule::OpenSchedule;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// The speed goal of the issue: requests/s on one core against a server that answers
/// at once.
pub(crate) const SPEED_GOAL_RPS: f64 = 20_000.0;

/// How arrivals are made.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrivalKind {
    /// Open loop, exponential gaps (Poisson) at --rate.
    Poisson,
    /// Open loop, constant gaps at --rate.
    Constant,
    /// Open loop, send offsets from --trace FILE.
    Trace,
    /// Open loop, the Azure Functions 2019 trace (synthetic unless --trace-dir),
    /// scaled to --rate on average.
    Azure,
    /// Closed loop: --clients per model, each sending its next request when the last
    /// one ended.
    Closed,
}

/// Arguments of `loadgen`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadgenArgs {
    /// The server: http://host:port (an optional path prefix before /v2 is kept).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// A model to send to (repeatable); requests are spread evenly over all models.
    #[arg(long = "model")]
    model: Vec<String>,
    /// Models as a comma-separated list.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// With --model-count: models named <prefix><i> (e.g. `resnet50_v2-` or empty for
    /// bare ids).
    #[arg(long, default_value = "")]
    model_prefix: String,
    /// Number of <prefix><i> models, i from --model-first.
    #[arg(long, default_value_t = 0)]
    model_count: u32,
    /// First index of the <prefix><i> models.
    #[arg(long, default_value_t = 0)]
    model_first: u32,
    /// The request body: a JSON file (e.g. a real input tensor). The SLO is added as
    /// parameters.timeout. Default: {"inputs": []} (the emulated models' own input).
    #[arg(long, conflicts_with = "body")]
    input_json: Option<PathBuf>,
    /// The request body as a JSON string.
    #[arg(long)]
    body: Option<String>,
    /// An SLO class in milliseconds, sent as the `timeout` parameter (µs); repeatable
    /// or comma-separated: arrivals take the classes in turn. None: no SLO parameter.
    #[arg(long = "slo-ms", value_delimiter = ',')]
    slo_ms: Vec<f64>,
    /// How arrivals are made.
    #[arg(long, value_enum, default_value_t = ArrivalKind::Poisson)]
    arrivals: ArrivalKind,
    /// Open-loop rate in requests/s over all models (default 1000; 25000 with
    /// --self-test).
    #[arg(long)]
    rate: Option<f64>,
    /// The trace file for --arrivals trace: one send offset in seconds per line,
    /// optionally followed by a model index.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Directory of the real Azure Functions trace for --arrivals azure.
    #[arg(long)]
    trace_dir: Option<PathBuf>,
    /// Closed loop: clients per model (each on its own connection).
    #[arg(long, default_value_t = 1)]
    clients: u32,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse_duration)]
    duration: Duration,
    /// How long to wait for the last answers after sending stops (default: twice the
    /// largest SLO plus 2 s; 10 s without an SLO).
    #[arg(long, value_parser = crate::duration::parse_duration)]
    drain: Option<Duration>,
    /// Open loop: keep-alive connections (each carries one request at a time).
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// What to do with a 429.
    #[arg(long, value_enum, default_value_t = RetryPolicy::Never)]
    retry: RetryPolicy,
    /// Most retries of one request (besides its deadline).
    #[arg(long, default_value_t = 1000)]
    max_retries: u32,
    /// Pin the load generator's executor to this CPU (default: the last one).
    #[arg(long)]
    cpu: Option<usize>,
    /// Spin this many µs before the executor parks (steadier send times, more CPU).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// Seed of the arrivals.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// The speed check: start a server that answers at once on another core and load
    /// it (--url is ignored); prints the achieved rate against the target and the
    /// 20,000 r/s goal as pass/fail.
    #[arg(long)]
    self_test: bool,
    /// --self-test: the sink answers every N-th request with 429 (0: never).
    #[arg(long, default_value_t = 0)]
    sink_refuse_every: u64,
}

/// How arrivals are made, resolved.
#[derive(Debug, Clone)]
pub(crate) enum Arrivals {
    /// Open loop over this many connections.
    Open {
        source: OpenSource,
        connections: u32,
    },
    /// Closed loop, clients per model.
    Closed { clients: u32 },
}

/// One load run, resolved from the flags (or built by another benchmark).
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub(crate) url: String,
    pub(crate) models: Vec<String>,
    /// SLO classes; empty: one class without an SLO parameter.
    pub(crate) slos: Vec<Duration>,
    pub(crate) body: serde_json::Value,
    pub(crate) arrivals: Arrivals,
    pub(crate) duration: Duration,
    pub(crate) drain: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_retries: u32,
    pub(crate) cpu: Option<usize>,
    pub(crate) spin: Option<Duration>,
    pub(crate) seed: u64,
    pub(crate) progress: bool,
}

impl LoadSpec {
    /// A label of the arrivals, for output.
    pub(crate) fn arrivals_label(&self) -> String {
        match &self.arrivals {
            Arrivals::Open {
                source,
                connections,
            } => {
                let s = match source {
                    OpenSource::Poisson { rate } => format!("poisson {rate} r/s"),
                    OpenSource::Constant { rate } => format!("constant {rate} r/s"),
                    OpenSource::Azure { rate, trace_dir } => format!(
                        "azure trace ({}) scaled to {rate} r/s",
                        if trace_dir.is_some() {
                            "real"
                        } else {
                            "synthetic"
                        }
                    ),
                    OpenSource::Trace { offsets } => format!("trace file, {} sends", offsets.len()),
                };
                format!("open loop, {s}, {connections} connections")
            }
            Arrivals::Closed { clients } => format!("closed loop, {clients} client(s) per model"),
        }
    }

    fn target_rps(&self) -> Option<f64> {
        match &self.arrivals {
            Arrivals::Open {
                source:
                    OpenSource::Poisson { rate }
                    | OpenSource::Constant { rate }
                    | OpenSource::Azure { rate, .. },
                ..
            } => Some(*rate),
            _ => None,
        }
    }
}

/// What a load run measured.
#[derive(Debug)]
pub(crate) struct LoadResult {
    pub(crate) tally: Tally,
    /// The sending period in seconds: the duration, or until the last request went
    /// out if the generator fell behind (rates are per second of it).
    pub(crate) secs: f64,
    /// Scheduled requests never sent: the generator was still behind when the drain
    /// ended.
    pub(crate) not_sent: u64,
    /// The run's start on the monotonic clock (for matching server logs).
    pub(crate) started_at: Nanos,
}

fn validate_rate(rate: f64) -> anyhow::Result<f64> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
        bail!("--rate must be in (0, 10000000] requests/s, got {rate}");
    }
    Ok(rate)
}

impl LoadgenArgs {
    fn spec(&self) -> anyhow::Result<LoadSpec> {
        let mut models: Vec<String> = self.model.clone();
        models.extend(self.models.iter().filter(|m| !m.is_empty()).cloned());
        let last = self
            .model_first
            .checked_add(self.model_count)
            .ok_or_else(|| anyhow!("--model-first + --model-count overflows"))?;
        models.extend((self.model_first..last).map(|i| format!("{}{i}", self.model_prefix)));
        if models.is_empty() {
            models.push("0".into());
        }
        if models.len() > 100_000 {
            bail!("at most 100000 models");
        }
        let mut slos = Vec::new();
        for &ms in &self.slo_ms {
            if !(ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0) {
                bail!("--slo-ms must be a positive number of milliseconds, got {ms}");
            }
            slos.push(Duration::from_secs_f64(ms / 1e3));
        }
        if slos.len() > 64 {
            bail!("at most 64 SLO classes");
        }
        let body: serde_json::Value = match (&self.input_json, &self.body) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?
            }
            (None, Some(b)) => serde_json::from_str(b).context("--body is not JSON")?,
            (None, None) => serde_json::json!({ "inputs": [] }),
        };
        if !body.is_object() {
            bail!("the request body must be a JSON object");
        }
        let default_rate = if self.self_test { 25_000.0 } else { 1_000.0 };
        let rate = validate_rate(self.rate.unwrap_or(default_rate))?;
        if self.connections == 0 || self.connections > 10_000 {
            bail!("--connections must be 1..=10000");
        }
        let open = |source| Arrivals::Open {
            source,
            connections: self.connections,
        };
        let arrivals = match self.arrivals {
            ArrivalKind::Poisson => open(OpenSource::Poisson { rate }),
            ArrivalKind::Constant => open(OpenSource::Constant { rate }),
            ArrivalKind::Azure => open(OpenSource::Azure {
                rate,
                trace_dir: self.trace_dir.clone(),
            }),
            ArrivalKind::Trace => {
                let path = self
                    .trace
                    .as_ref()
                    .ok_or_else(|| anyhow!("--arrivals trace needs --trace FILE"))?;
                open(OpenSource::Trace {
                    offsets: schedule::read_trace_file(path)?,
                })
            }
            ArrivalKind::Closed => {
                let total = u64::from(self.clients) * models.len() as u64;
                if self.clients == 0 || total > 10_000 {
                    bail!("--clients must be at least 1, and clients x models at most 10000");
                }
                Arrivals::Closed {
                    clients: self.clients,
                }
            }
        };
        Ok(LoadSpec {
            url: self.url.clone(),
            models,
            slos,
            body,
            arrivals,
            duration: self.duration,
            drain: self.drain,
            retry: self.retry,
            max_retries: self.max_retries,
            cpu: self.cpu,
            spin: (self.spin_us > 0).then(|| Duration::from_micros(self.spin_us)),
            seed: self.seed,
            progress: !self.quiet,
        })
    }
}

/// The CPUs of this machine (ids 0..n).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Run `spec` on one glommio executor on the calling thread; the counts and
/// latencies.
pub(crate) fn run_load(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let target = Target::parse(&spec.url)?;
    let slos: Vec<Option<Duration>> = spec.slos.iter().map(|&s| Some(s)).collect();
    let templates = Templates::build(
        &target,
        &spec.models,
        if slos.is_empty() { &[None] } else { &slos },
        &spec.body,
    )?;
    let slo_nanos: Vec<Option<Nanos>> = slos.iter().map(|s| s.map(Nanos::from)).collect();
    let classes = u8::try_from(slo_nanos.len().max(1)).unwrap_or(u8::MAX);
    let duration = Nanos::from(spec.duration);
    let schedule = match &spec.arrivals {
        Arrivals::Open { source, .. } => Some(OpenSchedule::new(
            source,
            spec.models.len(),
            classes,
            duration,
            spec.seed,
        )?),
        Arrivals::Closed { .. } => None,
    };
    let drain = spec.drain.unwrap_or_else(|| match spec.slos.iter().max() {
        Some(&m) => m * 2 + Duration::from_secs(2),
        None => Duration::from_secs(10),
    });
    let cpu = spec.cpu.unwrap_or_else(|| cpus() - 1);
    let mut exec = ExecutorConfig::named("loadgen").with_cpu(cpu);
    if let Some(s) = spec.spin {
        exec = exec.with_spin_before_park(s);
    }
    let spec = spec.clone();
    run_here(exec, async move {
        let clock = GlommioClock;
        // Open the connections first, so that the first requests do not pay for it.
        let n_conns = match &spec.arrivals {
            Arrivals::Open { connections, .. } => *connections as usize,
            Arrivals::Closed { clients } => *clients as usize * spec.models.len(),
        };
        let mut conns = Vec::with_capacity(n_conns);
        for _ in 0..n_conns {
            let mut c = HttpConn::new(target.addr);
            c.open()
                .await
                .with_context(|| format!("cannot connect to {}", spec.url))?;
            conns.push(c);
        }
        // A short lead so that every task is waiting before the first arrival.
        let start = clock.now() + Nanos::from_millis(5);
        let ctx = Rc::new(Ctx {
            clock,
            start,
            end: start + duration,
            templates,
            slos: slo_nanos,
            retry: spec.retry,
            max_retries: spec.max_retries,
            schedule: RefCell::new(schedule),
            tally: RefCell::new(Tally::new(
                &spec
                    .slos
                    .iter()
                    .map(|&s| Some(Nanos::from(s)))
                    .collect::<Vec<_>>(),
            )),
            claimed: Cell::new(0),
            last_send: Cell::new(start),
        });
        let running = Rc::new(Cell::new(0usize));
        let mut tasks = Vec::with_capacity(n_conns);
        // Closed loop: clients per model.
        let per_model = match &spec.arrivals {
            Arrivals::Closed { clients } => Some(*clients as usize),
            Arrivals::Open { .. } => None,
        };
        for (i, conn) in conns.into_iter().enumerate() {
            let (ctx, running) = (ctx.clone(), running.clone());
            running.set(running.get() + 1);
            let task = if let Some(model) = per_model.and_then(|n| i.checked_div(n)) {
                let model = u32::try_from(model).unwrap_or(u32::MAX);
                let class = u8::try_from(i % usize::from(classes)).unwrap_or(0);
                glommio::spawn_local(async move {
                    driver::closed_loop_client(&ctx, conn, model, class).await;
                    running.set(running.get() - 1);
                })
            } else {
                glommio::spawn_local(async move {
                    driver::open_loop_connection(&ctx, conn).await;
                    running.set(running.get() - 1);
                })
            };
            tasks.push(task);
        }
        let show_progress = spec.progress && spec.duration > Duration::from_secs(5);
        let hard_end = start + duration + Nanos::from(drain);
        let mut next_print = start + Nanos::from_secs(1);
        let mut last = ctx.tally.borrow().totals();
        let mut second = 0;
        while running.get() > 0 && clock.now() < hard_end {
            glommio::timer::sleep(Duration::from_millis(20)).await;
            if clock.now() >= next_print {
                second += 1;
                next_print = next_print + Nanos::from_secs(1);
                let now = ctx.tally.borrow().totals();
                if show_progress {
                    eprintln!("{}", report::progress_line(second, &now, &last));
                }
                last = now;
            }
        }
        // Cancel whatever still waits (the drain ran out); count what never went out.
        drop(tasks);
        let mut not_sent = 0;
        if let Some(s) = ctx.schedule.borrow_mut().as_mut() {
            while s.next_job().is_some() {
                not_sent += 1;
            }
        }
        let mut tally = std::mem::replace(&mut *ctx.tally.borrow_mut(), Tally::new(&[]));
        tally.close();
        // Rates are per second of sending: the duration, or longer if the generator
        // fell behind and was still sending after it.
        let sending = duration.max(ctx.last_send.get().saturating_sub(start));
        anyhow::Ok(LoadResult {
            tally,
            secs: sending.get() as f64 / 1e9,
            not_sent,
            started_at: start,
        })
    })
    .map_err(|e| anyhow!("load generator executor: {e}"))?
}

/// The run's settings and figures as the JSON line's object.
pub(crate) fn result_json(spec: &LoadSpec, r: &LoadResult) -> serde_json::Value {
    let mut v = report::json_figures(&r.tally, r.secs);
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("bench".into(), "loadgen".into());
        m.insert("url".into(), spec.url.clone().into());
        m.insert("arrivals".into(), spec.arrivals_label().into());
        m.insert("target_rps".into(), spec.target_rps().into());
        m.insert("duration_s".into(), r.secs.into());
        m.insert("models".into(), spec.models.len().into());
        m.insert(
            "retry".into(),
            format!("{:?}", spec.retry).to_lowercase().into(),
        );
        m.insert("not_sent".into(), r.not_sent.into());
    }
    v
}

/// Print the table of a run.
pub(crate) fn print_result(spec: &LoadSpec, r: &LoadResult) {
    println!(
        "loadgen: {} -> {}, {} model(s), {:.1} s, retry {:?}",
        spec.arrivals_label(),
        spec.url,
        spec.models.len(),
        r.secs,
        spec.retry
    );
    report::print_table(&r.tally, r.secs);
    if r.not_sent > 0 {
        println!(
            "warning: {} scheduled requests were never sent (the generator fell behind)",
            r.not_sent
        );
    }
}

/// `clockwork-bench loadgen`.
pub(crate) fn run(args: &LoadgenArgs) -> anyhow::Result<()> {
    let mut spec = args.spec()?;
    let n = cpus();
    let load_cpu = spec.cpu.unwrap_or(n - 1);
    if load_cpu >= n {
        bail!("--cpu {load_cpu}: this machine has CPUs 0..{}", n - 1);
    }
    let sink = if args.self_test {
        // The sink on another core than the load generator (the same one if there is
        // only one).
        let sink_cpu = if n > 1 { (load_cpu + 1) % n } else { 0 };
        let sink = sink::Sink::start(Some(sink_cpu), args.sink_refuse_every)?;
        spec.url = format!("http://{}", sink.addr);
        eprintln!(
            "self-test: sink on CPU {sink_cpu} at {}, load generator on CPU {load_cpu}",
            sink.addr
        );
        Some(sink)
    } else {
        None
    };
    let result = run_load(&spec);
    let served = sink.map(sink::Sink::stop).transpose()?;
    let r = result?;
    print_result(&spec, &r);
    let mut json = result_json(&spec, &r);
    if let Some(served) = served {
        let t = r.tally.totals();
        let achieved = (t.ok + t.refused) as f64 / r.secs;
        let target = spec.target_rps();
        let ratio = target.map(|t| achieved / t);
        // The goal is checked only when the target asks for at least the goal.
        let pass = target
            .filter(|&t| t >= SPEED_GOAL_RPS)
            .map(|_| achieved >= SPEED_GOAL_RPS);
        println!(
            "self-test: achieved {achieved:.0} r/s answered{}; goal >= {SPEED_GOAL_RPS:.0} r/s on one core: {}",
            match (target, ratio) {
                (Some(t), Some(q)) => format!(" of {t:.0} r/s targeted (ratio {q:.3})"),
                _ => String::new(),
            },
            match pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "not checked (target below the goal)",
            }
        );
        if let serde_json::Value::Object(m) = &mut json {
            m.insert(
                "self_test".into(),
                serde_json::json!({
                    "sink_answered": served,
                    "achieved_rps": achieved,
                    "target_ratio": ratio,
                    "goal_rps": SPEED_GOAL_RPS,
                    "goal_pass": pass,
                }),
            );
        }
    }
    println!("{json}");
    Ok(())
}
