//! Prometheus metrics: the counters and histograms the service keeps as it runs, and
//! their exposition on `GET /metrics` (Prometheus text format 0.0.4), encoded by the
//! `prometheus-client` crate.
//!
//! Everything is fed from the service's single thread: responses as they leave the
//! scheduler (native and HTTP clients alike), worker results as they arrive, the time
//! of every scheduler call, and each HTTP exchange. Event-driven series are
//! `prometheus-client` counters and histograms (`Live`; a label set's handle is looked
//! up once and kept, so a response costs a hash lookup and an atomic add, never a
//! string). Values owned elsewhere (the scheduler's counters and gauges, the GPUs,
//! the HTTP connection counts) are copied into a `Snapshot` at scrape time. One
//! collector (`Exposition`) writes every family in a fixed order, also those with no
//! series yet, so dashboards and alerts find each name from the start. Scrapes encode
//! on the service's thread between events, as every other endpoint answers.
//!
//! Histograms are Prometheus histograms (cumulative `_bucket` series with `le`,
//! `_sum`, `_count`), so they aggregate across controllers.
//!
//! Label cardinality: only `clockwork_model_requests_total` is per model instance
//! (and only for instances that saw requests); latency histograms are per network
//! (profile name, e.g. `resnet50_v2`), GPU series per GPU, everything else global.

use clockwork_core::{GpuId, InferResponse, ModelId, Nanos, Outcome, WorkerId, WorkerState};
use clockwork_scheduler::Scheduler;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Latency buckets, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Scheduler-call buckets, seconds: 1 µs to 10 ms.
const DECISION_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.01,
];
/// Batch-size buckets.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Window over which GPU utilisation gauges are computed.
const UTIL_WINDOW: Nanos = Nanos::from_secs(1);

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS.iter().copied())
}

/// Which scheduler entry point a decision-time sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// `request`.
    Request,
    /// `result`.
    Result,
    /// `handle_timeout`.
    Timeout,
    /// `worker_joined` / `worker_lost`.
    Worker,
    /// Registration, retirement, reinstatement.
    Registry,
}

const CALLS: [(Call, &str); 5] = [
    (Call::Request, "request"),
    (Call::Result, "result"),
    (Call::Timeout, "timeout"),
    (Call::Worker, "worker"),
    (Call::Registry, "registry"),
];

/// The HTTP endpoints, as metric labels.
pub(crate) const ENDPOINTS: [&str; 14] = [
    "infer",
    "model_metadata",
    "model_ready",
    "model_statistics",
    "server_metadata",
    "health_live",
    "health_ready",
    "repository_index",
    "repository_load",
    "repository_unload",
    "metrics",
    "other",
    "bad_request",
    "unauthorized",
];

/// Busy time of one GPU.
#[derive(Debug, Clone, Default)]
struct GpuBusy {
    busy_total: Nanos,
    window_start: Nanos,
    window_busy: Nanos,
    last_ratio: f64,
    last_at: Nanos,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    network: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    endpoint: &'static str,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    interface: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabel {
    interface: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The event-driven series: `prometheus-client` handles, shared (they are `Arc`s
/// inside) between the service, which counts, and the collector, which encodes.
#[derive(Debug, Clone)]
struct Live {
    requests: Family<StatusLabel, Counter>,
    model_requests: Family<ModelLabels, Counter>,
    latency: HistogramFamily<LatencyLabels>,
    decision: HistogramFamily<CallLabel>,
    exec: Histogram,
    load: Histogram,
    batch: Histogram,
    links_lost: Family<ReasonLabel, Counter>,
    auth_refused: Family<AuthLabels, Counter>,
    tls_failed: Family<InterfaceLabel, Counter>,
    http: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<EndpointLabel>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            model_requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            decision: Family::new_with_constructor(decision_histogram),
            exec: latency_histogram(),
            load: latency_histogram(),
            batch: Histogram::new(BATCH_BUCKETS.iter().copied()),
            links_lost: Family::default(),
            auth_refused: Family::default(),
            tls_failed: Family::default(),
            http: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// The scheduler's counters, in exposition order: name (without `_total`), help.
const SCHED_COUNTERS: [(&str, &str); 16] = [
    ("clockwork_requests_offered", "Inference requests received."),
    (
        "clockwork_cold_starts",
        "Requests that arrived while no GPU had their model ready.",
    ),
    (
        "clockwork_admission_doubtful_queued",
        "Requests the plan under pressure said would miss, queued because their GPU served most of what it admitted.",
    ),
    (
        "clockwork_admission_doubtful_refused",
        "Requests the plan under pressure said would miss, refused because too many admitted requests failed on their GPU.",
    ),
    ("clockwork_infers", "INFER actions sent."),
    (
        "clockwork_infer_batched_requests",
        "Requests carried by INFER actions.",
    ),
    (
        "clockwork_infer_failures",
        "INFER results with a failure status.",
    ),
    ("clockwork_loads", "LOAD actions sent."),
    (
        "clockwork_load_failures",
        "LOAD results with a failure status.",
    ),
    ("clockwork_unloads", "UNLOAD actions sent."),
    (
        "clockwork_unload_failures",
        "UNLOAD results with a failure status.",
    ),
    (
        "clockwork_late_successes",
        "INFERs that succeeded after their request's deadline.",
    ),
    (
        "clockwork_requeued",
        "Requests re-queued after their worker was lost or a window was missed.",
    ),
    (
        "clockwork_resyncs",
        "GET STATE resyncs after a result contradicted the plan.",
    ),
    (
        "clockwork_stale_results",
        "Results for actions no longer tracked.",
    ),
    (
        "clockwork_registrations",
        "RegisterModel actions sent to workers.",
    ),
];

/// The scheduler's and the service's gauges, in exposition order.
const GAUGES: [(&str, &str); 7] = [
    (
        "clockwork_requests_pending",
        "Requests admitted and not yet answered (queued or in flight).",
    ),
    (
        "clockwork_requests_queued",
        "Requests waiting in model queues.",
    ),
    ("clockwork_gpus", "GPUs in the plan."),
    ("clockwork_workers_connected", "Workers with a live link."),
    (
        "clockwork_models_registered",
        "Model instances registered and not unloaded.",
    ),
    (
        "clockwork_models_unloaded",
        "Model instances unloaded through the repository API.",
    ),
    (
        "clockwork_actions_pending",
        "Actions sent to workers and not yet answered.",
    ),
];

/// The HTTP connection series: name (counters without `_total`), type, help.
const HTTP_CONNECTIONS: [(&str, MetricType, &str); 4] = [
    (
        "clockwork_http_connections",
        MetricType::Gauge,
        "Open HTTP connections.",
    ),
    (
        "clockwork_http_connections",
        MetricType::Counter,
        "HTTP connections accepted.",
    ),
    (
        "clockwork_http_connections_refused",
        MetricType::Counter,
        "HTTP connections refused at the connection limit.",
    ),
    (
        "clockwork_http_late_answers",
        MetricType::Counter,
        "Successful inferences whose HTTP answer finished writing after the request's deadline (counted late in the request log too).",
    ),
];

/// Prediction errors of one estimate: samples, sum of absolute errors (s), mean
/// signed error (s), largest overrun (s).
#[derive(Debug, Clone, Copy, Default)]
struct ErrorSnapshot {
    samples: u64,
    abs_sum: f64,
    mean: f64,
    max_over: f64,
}

/// A GPU's labels.
type GpuLabels = [(&'static str, u32); 2];

fn gpu_labels(w: u32, g: u32) -> GpuLabels {
    [("worker", w), ("gpu", g)]
}

/// What the scrape reads from outside the event-driven series, copied at scrape time.
#[derive(Debug, Default)]
struct Snapshot {
    sched_counters: [u64; SCHED_COUNTERS.len()],
    gauges: [u64; 7],
    estimator: [(&'static str, ErrorSnapshot); 3],
    gpu_pages: Vec<(GpuLabels, u32)>,
    gpu_free: Vec<(GpuLabels, u32)>,
    gpu_busy: Vec<(GpuLabels, f64)>,
    gpu_util: Vec<(GpuLabels, f64)>,
    http_connections: [u64; 4],
    /// The plan's margins now, in seconds, in [`MARGINS`] order.
    margins: [f64; 4],
}

/// The `margin` label values of `clockwork_plan_margin_seconds`.
const MARGINS: [&str; 4] = [
    "completion_buffer",
    "lead_time",
    "exec_slack",
    "exec_schedule_ahead",
];

/// Writes one family: its HELP and TYPE, then each metric under its labels.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    members: impl IntoIterator<Item = (S, M)>,
) -> fmt::Result {
    let mut e = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, m) in members {
        m.encode(e.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one metric (a family handle writes all its members) under its own name.
fn single(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    m: &impl EncodeMetric,
) -> fmt::Result {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

/// Every family, in a fixed order: the collector `/metrics` encodes.
#[derive(Debug)]
struct Exposition {
    live: Live,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let e = &mut enc;
        let l = &self.live;
        let s = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        single(
            e,
            "clockwork_requests",
            "Inference requests answered, by status (native and HTTP clients).",
            &l.requests,
        )?;
        single(
            e,
            "clockwork_model_requests",
            "Inference requests answered, by model instance and status (instances with traffic only).",
            &l.model_requests,
        )?;
        single(
            e,
            "clockwork_request_duration_seconds",
            "Controller latency of inference requests (arrival to answer), by network and outcome.",
            &l.latency,
        )?;
        for ((name, help), v) in SCHED_COUNTERS.iter().zip(s.sched_counters) {
            single(e, name, help, &ConstCounter::new(v))?;
        }
        for ((name, help), v) in GAUGES.iter().zip(s.gauges) {
            single(e, name, help, &ConstGauge::new(v))?;
        }
        single(
            e,
            "clockwork_worker_links_lost",
            "Worker links lost, by reason: closed (by the peer), silent (no frame for the link timeout), result_overdue (a result not back by its window's end plus the grace), error (a bad frame or a socket error).",
            &l.links_lost,
        )?;
        single(
            e,
            "clockwork_auth_refused",
            "Requests refused for want of the right API token, by interface and reason (missing, not_bearer, wrong).",
            &l.auth_refused,
        )?;
        single(
            e,
            "clockwork_tls_handshakes_failed",
            "Connections closed because their TLS handshake failed or timed out, by interface.",
            &l.tls_failed,
        )?;
        let estimate = |k: &'static str| [("estimate", k)];
        family(
            e,
            "clockwork_estimator_samples",
            "Prediction-error samples: exec (INFER duration), completion (INFER end), load (LOAD duration).",
            MetricType::Counter,
            s.estimator
                .iter()
                .map(|&(k, x)| (estimate(k), ConstCounter::new(x.samples))),
        )?;
        family(
            e,
            "clockwork_estimator_abs_error_seconds",
            "Sum of absolute prediction errors (actual - expected).",
            MetricType::Counter,
            s.estimator
                .iter()
                .map(|&(k, x)| (estimate(k), ConstCounter::new(x.abs_sum))),
        )?;
        family(
            e,
            "clockwork_estimator_mean_error_seconds",
            "Mean signed prediction error since start (positive: slower than predicted).",
            MetricType::Gauge,
            s.estimator
                .iter()
                .map(|&(k, x)| (estimate(k), ConstGauge::new(x.mean))),
        )?;
        family(
            e,
            "clockwork_estimator_max_overrun_seconds",
            "Largest overrun (actual above expected) since start.",
            MetricType::Gauge,
            s.estimator
                .iter()
                .map(|&(k, x)| (estimate(k), ConstGauge::new(x.max_over))),
        )?;
        family(
            e,
            "clockwork_gpu_cache_pages",
            "Weights-cache pages of each GPU.",
            MetricType::Gauge,
            s.gpu_pages.iter().map(|&(g, v)| (g, ConstGauge::new(v))),
        )?;
        family(
            e,
            "clockwork_gpu_cache_free_pages",
            "Free weights-cache pages of each GPU, as the controller plans them.",
            MetricType::Gauge,
            s.gpu_free.iter().map(|&(g, v)| (g, ConstGauge::new(v))),
        )?;
        family(
            e,
            "clockwork_gpu_busy_seconds",
            "Worker-measured INFER execution time per GPU (rate() of it is the utilisation).",
            MetricType::Counter,
            s.gpu_busy.iter().map(|&(g, v)| (g, ConstCounter::new(v))),
        )?;
        family(
            e,
            "clockwork_plan_margin_seconds",
            "The scheduler's margins now, measured (docs/scheduler.md): completion_buffer (planned end to deadline), lead_time (send to earliest start), exec_slack (room for late wake-ups), exec_schedule_ahead (how far ahead GPUs get work).",
            MetricType::Gauge,
            MARGINS
                .iter()
                .zip(s.margins)
                .map(|(&k, v)| ([("margin", k)], ConstGauge::new(v))),
        )?;
        family(
            e,
            "clockwork_gpu_utilization_ratio",
            "Share of the last completed ~1 s window each GPU spent executing (0 when idle for 2 windows).",
            MetricType::Gauge,
            s.gpu_util.iter().map(|&(g, v)| (g, ConstGauge::new(v))),
        )?;
        single(
            e,
            "clockwork_infer_exec_seconds",
            "Worker-measured INFER execution time.",
            &l.exec,
        )?;
        single(
            e,
            "clockwork_load_seconds",
            "Worker-measured LOAD (weights copy) time.",
            &l.load,
        )?;
        single(
            e,
            "clockwork_infer_batch_size",
            "Executed (padded) batch size of INFERs.",
            &l.batch,
        )?;
        single(
            e,
            "clockwork_controller_decision_seconds",
            "Time spent inside scheduler calls, by entry point.",
            &l.decision,
        )?;
        single(
            e,
            "clockwork_http_requests",
            "HTTP requests answered, by endpoint and status code.",
            &l.http,
        )?;
        single(
            e,
            "clockwork_http_request_duration_seconds",
            "HTTP request handling time (request read to response written), by endpoint.",
            &l.http_latency,
        )?;
        for ((name, kind, help), v) in HTTP_CONNECTIONS.iter().zip(s.http_connections) {
            match kind {
                MetricType::Counter => single(e, name, help, &ConstCounter::new(v))?,
                _ => single(e, name, help, &ConstGauge::new(v))?,
            }
        }
        Ok(())
    }
}

/// The service's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    live: Live,
    /// `clockwork_requests_total` members by status label, kept like `model_counters`.
    status_counters: HashMap<&'static str, Counter>,
    /// Per-model counters by (model id, status label), kept so that a response does
    /// not build its label strings again; unknown ids are counted under `u32::MAX`.
    model_counters: HashMap<(u32, &'static str), Counter>,
    /// Latency histograms by network, per status group (indexed by
    /// `clockwork_core::StatusGroup as usize`), made on first use.
    latency: HashMap<String, [Option<Histogram>; 4]>,
    /// `decision` members, in `CALLS` order.
    decision: Vec<Histogram>,
    /// GPUs of connected workers: (total pages) by (worker, gpu).
    gpus: BTreeMap<(u32, u32), u32>,
    busy: BTreeMap<(u32, u32), GpuBusy>,
    pub(crate) http_open: u64,
    pub(crate) http_accepted: u64,
    pub(crate) http_refused: u64,
    /// Successful inferences whose HTTP answer finished writing after the deadline.
    pub(crate) http_late_answers: u64,
    /// What the exposition reads besides `live`, filled by `render`.
    snapshot: Arc<Mutex<Snapshot>>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let live = Live::default();
        let decision = CALLS
            .iter()
            .map(|&(_, call)| live.decision.get_or_create_owned(&CallLabel { call }))
            .collect();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition {
            live: live.clone(),
            snapshot: snapshot.clone(),
        }));
        Self {
            live,
            status_counters: HashMap::new(),
            model_counters: HashMap::new(),
            latency: HashMap::new(),
            decision,
            gpus: BTreeMap::new(),
            busy: BTreeMap::new(),
            http_open: 0,
            http_accepted: 0,
            http_refused: 0,
            http_late_answers: 0,
            snapshot,
            registry,
        }
    }
}

fn secs(n: Nanos) -> f64 {
    n.get() as f64 * 1e-9
}

impl Metrics {
    /// A response left the scheduler.
    pub(crate) fn response(&mut self, sched: &Scheduler, r: &InferResponse) {
        let label = r.status.label();
        let profile = sched.model_profile(r.model);
        let id = if profile.is_some() {
            r.model.0
        } else {
            u32::MAX
        };
        let live = &self.live;
        self.model_counters
            .entry((id, label))
            .or_insert_with(|| {
                let model = match profile {
                    Some(p) => format!("{}-{id}", p.name),
                    None => String::from("unknown"),
                };
                live.model_requests.get_or_create_owned(&ModelLabels {
                    model,
                    status: label,
                })
            })
            .inc();
        self.status_counters
            .entry(label)
            .or_insert_with(|| {
                live.requests
                    .get_or_create_owned(&StatusLabel { status: label })
            })
            .inc();
        let network = profile.map_or("unknown", |p| p.name.as_str());
        let hs = match self.latency.get_mut(network) {
            Some(hs) => hs,
            None => self.latency.entry(network.to_owned()).or_default(),
        };
        let group = r.status.group();
        hs[group as usize]
            .get_or_insert_with(|| {
                live.latency.get_or_create_owned(&LatencyLabels {
                    network: network.to_owned(),
                    outcome: group.label(),
                })
            })
            .observe(secs(r.controller_latency));
    }

    /// A scheduler call took `d`.
    pub(crate) fn decision(&mut self, call: Call, d: Nanos) {
        let i = CALLS.iter().position(|(c, _)| *c == call).unwrap_or(0);
        self.decision[i].observe(secs(d));
    }

    /// A worker joined with these GPUs.
    pub(crate) fn worker_joined(&mut self, w: WorkerId, state: &WorkerState) {
        self.worker_lost(w);
        for g in &state.gpus {
            self.gpus.insert((w.0, g.id.0), g.total_pages);
        }
    }

    /// A worker's link was lost.
    pub(crate) fn worker_lost(&mut self, w: WorkerId) {
        self.gpus.retain(|&(wk, _), _| wk != w.0);
    }

    /// A worker's link was lost for `reason` (counted once per loss).
    pub(crate) fn link_lost(&mut self, reason: &'static str) {
        self.live
            .links_lost
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A request on `interface` (`http`, `grpc`) was refused by the token check for
    /// `reason` (`auth::Refusal::label`).
    pub(crate) fn auth_refused(&mut self, interface: &'static str, reason: &'static str) {
        self.live
            .auth_refused
            .get_or_create(&AuthLabels { interface, reason })
            .inc();
    }

    /// A connection on `interface` (`http`, `grpc`, `worker`) failed its TLS handshake.
    pub(crate) fn tls_failed(&mut self, interface: &'static str) {
        self.live
            .tls_failed
            .get_or_create(&InterfaceLabel { interface })
            .inc();
    }

    /// A worker result arrived at `now`.
    pub(crate) fn result(&mut self, w: WorkerId, outcome: &Outcome, now: Nanos) {
        match outcome {
            Outcome::Inferred(i) => {
                self.live.exec.observe(secs(i.exec.duration));
                self.live.batch.observe(f64::from(i.padded_batch));
                let b = self.busy.entry((w.0, i.gpu.0)).or_default();
                b.busy_total = b.busy_total + i.exec.duration;
                if b.window_start == Nanos::ZERO {
                    b.window_start = now;
                }
                b.window_busy = b.window_busy + i.exec.duration;
                let span = now - b.window_start;
                if span >= UTIL_WINDOW {
                    b.last_ratio = (secs(b.window_busy) / secs(span)).min(1.0);
                    b.last_at = now;
                    b.window_start = now;
                    b.window_busy = Nanos::ZERO;
                }
            }
            Outcome::Loaded { timing } => self.live.load.observe(secs(timing.duration)),
            // No metric follows these.
            Outcome::Error { .. }
            | Outcome::Registered { .. }
            | Outcome::Unloaded { .. }
            | Outcome::State(_)
            | Outcome::CacheCleared => {}
        }
    }

    /// One HTTP exchange ended.
    pub(crate) fn http(&mut self, endpoint: &'static str, code: u16, took: Nanos) {
        self.live
            .http
            .get_or_create(&HttpLabels { endpoint, code })
            .inc();
        if ENDPOINTS.contains(&endpoint) {
            self.live
                .http_latency
                .get_or_create(&EndpointLabel { endpoint })
                .observe(secs(took));
        }
    }

    /// Copies what the exposition reads from the scheduler and the service.
    fn snapshot(&self, sched: &Scheduler, workers: usize, now: Nanos) {
        let st = sched.stats();
        let mut s = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        s.sched_counters = [
            st.offered,
            st.cold_starts,
            st.doubtful_admitted,
            st.doubtful_refused,
            st.infers,
            st.batched_requests,
            st.infer_failures,
            st.loads,
            st.load_failures,
            st.unloads,
            st.unload_failures,
            st.late_successes,
            st.requeued,
            st.resyncs,
            st.stale_results,
            st.registrations,
        ];
        let queued: u64 = (0..sched.model_count())
            .map(|m| u64::from(sched.queued(ModelId(m))))
            .sum();
        let retired = (0..sched.model_count())
            .filter(|&m| sched.is_retired(ModelId(m)))
            .count() as u64;
        s.gauges = [
            sched.pending_requests() as u64,
            queued,
            u64::from(sched.live_gpus()),
            workers as u64,
            u64::from(sched.model_count()) - retired,
            retired,
            sched.pending_actions() as u64,
        ];
        s.margins = [
            secs(sched.completion_buffer()),
            secs(sched.lead_time()),
            secs(sched.exec_slack()),
            secs(sched.exec_schedule_ahead()),
        ];
        let error = |e: &clockwork_scheduler::stats::ErrorStats| ErrorSnapshot {
            samples: e.count,
            abs_sum: e.sum_abs as f64 * 1e-9,
            mean: if e.count == 0 { 0.0 } else { e.mean() * 1e-9 },
            max_over: e.max_over as f64 * 1e-9,
        };
        s.estimator = [
            ("exec", error(&st.exec_error)),
            ("completion", error(&st.completion_error)),
            ("load", error(&st.load_error)),
        ];
        s.gpu_pages.clear();
        s.gpu_pages.extend(
            self.gpus
                .iter()
                .map(|(&(w, g), &total)| (gpu_labels(w, g), total)),
        );
        s.gpu_free.clear();
        s.gpu_free.extend(self.gpus.keys().filter_map(|&(w, g)| {
            sched
                .free_pages(WorkerId(w), GpuId(g))
                .map(|free| (gpu_labels(w, g), free))
        }));
        s.gpu_busy.clear();
        s.gpu_busy.extend(
            self.busy
                .iter()
                .map(|(&(w, g), b)| (gpu_labels(w, g), secs(b.busy_total))),
        );
        s.gpu_util.clear();
        s.gpu_util.extend(self.busy.iter().map(|(&(w, g), b)| {
            let fresh = now.saturating_sub(b.last_at) <= UTIL_WINDOW + UTIL_WINDOW;
            let fresh = fresh && now.saturating_sub(b.window_start) <= UTIL_WINDOW + UTIL_WINDOW;
            (gpu_labels(w, g), if fresh { b.last_ratio } else { 0.0 })
        }));
        s.http_connections = [
            self.http_open,
            self.http_accepted,
            self.http_refused,
            self.http_late_answers,
        ];
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub(crate) fn render(&self, sched: &Scheduler, workers: usize, now: Nanos) -> String {
        self.snapshot(sched, workers, now);
        let mut o = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail, and our encoders return no error of their own.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut o, &self.registry)
        {
            tracing::error!(error = %e, "metrics exposition failed");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::{ClientStatus, RequestId};

    fn scheduler_with_models() -> Scheduler {
        let mut sched = Scheduler::new(clockwork_scheduler::Config::default()).unwrap();
        for p in [
            clockwork_core::model::resnet18(),
            clockwork_core::model::resnet50(),
            clockwork_core::model::resnet152(),
        ] {
            let copies = if p.name == "resnet152_v2" { 334 } else { 333 };
            sched.register_models(Nanos::ZERO, p, copies).unwrap();
        }
        sched
    }

    fn response(model: u32, status: ClientStatus, latency: Nanos) -> InferResponse {
        InferResponse {
            id: RequestId(u64::from(model)),
            model: ModelId(model),
            status,
            batch_size: 1,
            controller_latency: latency,
            output: Vec::new(),
            message: String::new(),
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_le_semantics() {
        let sched = scheduler_with_models();
        let mut m = Metrics::default();
        for ms in [1, 2, 3, 20_000] {
            m.response(
                &sched,
                &response(400, ClientStatus::Success, Nanos::from_millis(ms)),
            );
        }
        let text = m.render(&sched, 0, Nanos::from_secs(1));
        let series = "clockwork_request_duration_seconds_bucket{network=\"resnet50_v2\",outcome=\"success\",le=";
        // 1 ms lands in le="0.001" (le is <=); 20 s only in +Inf.
        for (le, n) in [
            ("0.0005", 0),
            ("0.001", 1),
            ("0.002", 2),
            ("0.005", 3),
            ("10", 3),
            ("+Inf", 4),
        ] {
            let line = format!("{series}\"{le}\"}} {n}");
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        assert!(
            text.contains("clockwork_requests_total{status=\"success\"} 4"),
            "{text}"
        );
        assert!(
            text.contains(
                "clockwork_model_requests_total{model=\"resnet50_v2-400\",status=\"success\"} 4"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_family_is_declared_before_traffic_in_text_format_0_0_4() {
        let sched = scheduler_with_models();
        let text = Metrics::default().render(&sched, 2, Nanos::from_secs(1));
        for family in [
            "# TYPE clockwork_requests_total counter",
            "# TYPE clockwork_model_requests_total counter",
            "# TYPE clockwork_request_duration_seconds histogram",
            "# TYPE clockwork_requests_pending gauge",
            "# TYPE clockwork_http_connections gauge",
            "# TYPE clockwork_http_connections_total counter",
            "# TYPE clockwork_gpu_busy_seconds_total counter",
            "# TYPE clockwork_estimator_abs_error_seconds_total counter",
            "# HELP clockwork_infers_total INFER actions sent.",
        ] {
            assert!(text.contains(family), "no {family} in\n{text}");
        }
        assert!(
            text.contains("\nclockwork_models_registered 1000\n"),
            "{text}"
        );
        assert!(text.contains("\nclockwork_workers_connected 2\n"), "{text}");
        // A cold scheduler's margins: the configured minimums (buffer 200 µs, lead
        // 100 µs), the slack's floor, and the full schedule-ahead (no SLO seen yet).
        for (margin, v) in [
            ("completion_buffer", "0.0002"),
            ("lead_time", "0.0001"),
            ("exec_slack", "0.00005"),
            ("exec_schedule_ahead", "0.01"),
        ] {
            let line = format!("clockwork_plan_margin_seconds{{margin=\"{margin}\"}} {v}\n");
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "0.0.4 has no EOF marker");
        // The scheduler-call histograms exist for every entry point from the start.
        for (_, call) in CALLS {
            let line = format!("clockwork_controller_decision_seconds_count{{call=\"{call}\"}} 0");
            assert!(text.contains(&line), "no {line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let sched = scheduler_with_models();
        let mut m = Metrics::default();
        // An endpoint label is a static string in practice; any string is escaped.
        m.auth_refused("a\"b\\c\nd", "wrong");
        let text = m.render(&sched, 0, Nanos::ZERO);
        assert!(
            text.contains("interface=\"a\\\"b\\\\c\\nd\",reason=\"wrong\"} 1"),
            "{text}"
        );
    }

    /// The exposition's cost for 1,000 model instances that all saw traffic (2,000
    /// per-model series, 3 networks' latency histograms, every HTTP endpoint): printed,
    /// not asserted (`cargo test --workspace --lib encode_cost -- --nocapture`).
    #[test]
    fn encode_cost_for_1000_models() {
        let sched = scheduler_with_models();
        let mut m = Metrics::default();
        for i in 0..sched.model_count() {
            for (k, status) in [ClientStatus::Success, ClientStatus::Rejected]
                .into_iter()
                .enumerate()
            {
                let latency = Nanos::from_micros(500 + 100 * k as u64 + u64::from(i));
                m.response(&sched, &response(i, status, latency));
            }
        }
        for (i, e) in ENDPOINTS.iter().enumerate() {
            m.http(e, 200, Nanos::from_micros(100 * i as u64));
        }
        let text = m.render(&sched, 0, Nanos::from_secs(1));
        let rounds = 50u32;
        let t0 = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes += m.render(&sched, 0, Nanos::from_secs(1)).len();
        }
        let per = t0.elapsed() / rounds;
        assert_eq!(bytes, text.len() * rounds as usize);
        assert!(text.contains(
            "clockwork_model_requests_total{model=\"resnet50_v2-400\",status=\"success\"} 1"
        ));
        // And the cost of counting one response once its series exist.
        let t0 = std::time::Instant::now();
        let n = 100_000u32;
        for i in 0..n {
            let r = response(i % 1000, ClientStatus::Success, Nanos::from_micros(700));
            m.response(&sched, &r);
        }
        let per_response = t0.elapsed() / n;
        println!(
            "metrics encode, 1,000 models (prometheus-client): {per:?} per scrape, {} bytes, {} lines; {per_response:?} per counted response",
            text.len(),
            text.lines().count()
        );
    }
}
