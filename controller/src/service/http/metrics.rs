//! Prometheus metrics: counters and histograms the service keeps as it runs, and the
//! text exposition (format 0.0.4) served on `GET /metrics`.
//!
//! Everything is fed from the service's single thread: responses as they leave the
//! scheduler (native and HTTP clients alike), worker results as they arrive, the time
//! of every scheduler call, and each HTTP exchange. Scheduler counters and gauges are
//! read at scrape time. Histograms are Prometheus histograms (cumulative `_bucket`
//! series with `le`, `_sum`, `_count`), so they aggregate across controllers.
//!
//! Label cardinality: only `clockwork_model_requests_total` is per model instance
//! (and only for instances that saw requests); latency histograms are per network
//! (profile name, e.g. `resnet50_v2`), GPU series per GPU, everything else global.

use clockwork_core::{
    GpuId, InferResponse, ModelId, Nanos, Outcome, StatusGroup, WorkerId, WorkerState,
};
use clockwork_scheduler::Scheduler;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

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

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (non-cumulative) counts; the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts one observation.
    pub(crate) fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {acc}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {acc}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub(crate) fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{} {v}", braces(labels));
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

/// The service's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Answers by (model id, status label); unknown ids are counted under `u32::MAX`.
    by_model: HashMap<(u32, &'static str), u64>,
    by_status: BTreeMap<&'static str, u64>,
    /// Controller latency by network (profile name) and status group (indexed by
    /// `StatusGroup as usize`, in `StatusGroup::ALL` order).
    latency: BTreeMap<String, [Histogram; 4]>,
    decision: Vec<Histogram>,
    exec: Histogram,
    load: Histogram,
    batch: Histogram,
    /// GPUs of connected workers: (total pages) by (worker, gpu).
    gpus: BTreeMap<(u32, u32), u32>,
    busy: BTreeMap<(u32, u32), GpuBusy>,
    http: BTreeMap<(&'static str, u16), u64>,
    http_latency: Vec<Histogram>,
    pub(crate) http_open: u64,
    pub(crate) http_accepted: u64,
    pub(crate) http_refused: u64,
    /// Successful inferences whose HTTP answer finished writing after the deadline.
    pub(crate) http_late_answers: u64,
    /// Worker links lost, by why (`closed`, `silent`, `result_overdue`, `error`).
    links_lost: BTreeMap<&'static str, u64>,
    /// Requests refused for want of the right token, by (interface, reason).
    auth_refused: BTreeMap<(&'static str, &'static str), u64>,
    /// Connections closed because their TLS handshake failed, by interface.
    tls_failed: BTreeMap<&'static str, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            by_model: HashMap::new(),
            by_status: BTreeMap::new(),
            latency: BTreeMap::new(),
            decision: CALLS
                .iter()
                .map(|_| Histogram::new(DECISION_BUCKETS))
                .collect(),
            exec: Histogram::new(LATENCY_BUCKETS),
            load: Histogram::new(LATENCY_BUCKETS),
            batch: Histogram::new(BATCH_BUCKETS),
            gpus: BTreeMap::new(),
            busy: BTreeMap::new(),
            http: BTreeMap::new(),
            http_latency: ENDPOINTS
                .iter()
                .map(|_| Histogram::new(LATENCY_BUCKETS))
                .collect(),
            http_open: 0,
            http_accepted: 0,
            http_refused: 0,
            http_late_answers: 0,
            links_lost: BTreeMap::new(),
            auth_refused: BTreeMap::new(),
            tls_failed: BTreeMap::new(),
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
        *self.by_model.entry((id, label)).or_insert(0) += 1;
        *self.by_status.entry(label).or_insert(0) += 1;
        let network = profile.map_or("unknown", |p| p.name.as_str());
        let h = match self.latency.get_mut(network) {
            Some(h) => h,
            None => self
                .latency
                .entry(network.to_owned())
                .or_insert_with(|| std::array::from_fn(|_| Histogram::new(LATENCY_BUCKETS))),
        };
        h[r.status.group() as usize].observe(secs(r.controller_latency));
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
        *self.links_lost.entry(reason).or_insert(0) += 1;
    }

    /// A request on `interface` (`http`, `grpc`) was refused by the token check for
    /// `reason` (`auth::Refusal::label`).
    pub(crate) fn auth_refused(&mut self, interface: &'static str, reason: &'static str) {
        *self.auth_refused.entry((interface, reason)).or_insert(0) += 1;
    }

    /// A connection on `interface` (`http`, `grpc`, `worker`) failed its TLS handshake.
    pub(crate) fn tls_failed(&mut self, interface: &'static str) {
        *self.tls_failed.entry(interface).or_insert(0) += 1;
    }

    /// A worker result arrived at `now`.
    pub(crate) fn result(&mut self, w: WorkerId, outcome: &Outcome, now: Nanos) {
        match outcome {
            Outcome::Inferred(i) => {
                self.exec.observe(secs(i.exec.duration));
                self.batch.observe(f64::from(i.padded_batch));
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
            Outcome::Loaded { timing } => self.load.observe(secs(timing.duration)),
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
        *self.http.entry((endpoint, code)).or_insert(0) += 1;
        if let Some(i) = ENDPOINTS.iter().position(|e| *e == endpoint) {
            self.http_latency[i].observe(secs(took));
        }
    }

    /// The exposition text.
    pub(crate) fn render(&self, sched: &Scheduler, workers: usize, now: Nanos) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let st = sched.stats();

        family(
            &mut o,
            "clockwork_requests_total",
            "counter",
            "Inference requests answered, by status (native and HTTP clients).",
        );
        for (s, n) in &self.by_status {
            sample(
                &mut o,
                "clockwork_requests_total",
                &format!("status=\"{s}\""),
                n,
            );
        }
        family(
            &mut o,
            "clockwork_model_requests_total",
            "counter",
            "Inference requests answered, by model instance and status (instances with traffic only).",
        );
        let mut per_model: Vec<_> = self.by_model.iter().collect();
        per_model.sort_unstable();
        for (&(m, s), n) in per_model {
            let name = if m == u32::MAX {
                String::from("unknown")
            } else {
                sched
                    .model_profile(ModelId(m))
                    .map_or_else(|| m.to_string(), |p| format!("{}-{m}", p.name))
            };
            sample(
                &mut o,
                "clockwork_model_requests_total",
                &format!("model=\"{}\",status=\"{s}\"", escape(&name)),
                n,
            );
        }
        family(
            &mut o,
            "clockwork_request_duration_seconds",
            "histogram",
            "Controller latency of inference requests (arrival to answer), by network and outcome.",
        );
        for (net, hs) in &self.latency {
            for (h, group) in hs.iter().zip(StatusGroup::ALL) {
                let outcome = group.label();
                if h.count > 0 {
                    let l = format!("network=\"{}\",outcome=\"{outcome}\"", escape(net));
                    h.render(&mut o, "clockwork_request_duration_seconds", &l);
                }
            }
        }
        let counters: [(&str, &str, u64); 14] = [
            (
                "clockwork_requests_offered_total",
                "Inference requests received.",
                st.offered,
            ),
            (
                "clockwork_cold_starts_total",
                "Requests that arrived while no GPU had their model ready.",
                st.cold_starts,
            ),
            ("clockwork_infers_total", "INFER actions sent.", st.infers),
            (
                "clockwork_infer_batched_requests_total",
                "Requests carried by INFER actions.",
                st.batched_requests,
            ),
            (
                "clockwork_infer_failures_total",
                "INFER results with a failure status.",
                st.infer_failures,
            ),
            ("clockwork_loads_total", "LOAD actions sent.", st.loads),
            (
                "clockwork_load_failures_total",
                "LOAD results with a failure status.",
                st.load_failures,
            ),
            (
                "clockwork_unloads_total",
                "UNLOAD actions sent.",
                st.unloads,
            ),
            (
                "clockwork_unload_failures_total",
                "UNLOAD results with a failure status.",
                st.unload_failures,
            ),
            (
                "clockwork_late_successes_total",
                "INFERs that succeeded after their request's deadline.",
                st.late_successes,
            ),
            (
                "clockwork_requeued_total",
                "Requests re-queued after their worker was lost or a window was missed.",
                st.requeued,
            ),
            (
                "clockwork_resyncs_total",
                "GET STATE resyncs after a result contradicted the plan.",
                st.resyncs,
            ),
            (
                "clockwork_stale_results_total",
                "Results for actions no longer tracked.",
                st.stale_results,
            ),
            (
                "clockwork_registrations_total",
                "RegisterModel actions sent to workers.",
                st.registrations,
            ),
        ];
        for (name, help, v) in counters {
            family(&mut o, name, "counter", help);
            sample(&mut o, name, "", v);
        }
        let queued: u64 = (0..sched.model_count())
            .map(|m| u64::from(sched.queued(ModelId(m))))
            .sum();
        let retired = (0..sched.model_count())
            .filter(|&m| sched.is_retired(ModelId(m)))
            .count() as u64;
        let gauges: [(&str, &str, u64); 6] = [
            (
                "clockwork_requests_pending",
                "Requests admitted and not yet answered (queued or in flight).",
                sched.pending_requests() as u64,
            ),
            (
                "clockwork_requests_queued",
                "Requests waiting in model queues.",
                queued,
            ),
            (
                "clockwork_gpus",
                "GPUs in the plan.",
                u64::from(sched.live_gpus()),
            ),
            (
                "clockwork_workers_connected",
                "Workers with a live link.",
                workers as u64,
            ),
            (
                "clockwork_models_registered",
                "Model instances registered and not unloaded.",
                u64::from(sched.model_count()) - retired,
            ),
            (
                "clockwork_models_unloaded",
                "Model instances unloaded through the repository API.",
                retired,
            ),
        ];
        for (name, help, v) in gauges {
            family(&mut o, name, "gauge", help);
            sample(&mut o, name, "", v);
        }
        family(
            &mut o,
            "clockwork_actions_pending",
            "gauge",
            "Actions sent to workers and not yet answered.",
        );
        sample(
            &mut o,
            "clockwork_actions_pending",
            "",
            sched.pending_actions(),
        );

        family(
            &mut o,
            "clockwork_worker_links_lost_total",
            "counter",
            "Worker links lost, by reason: closed (by the peer), silent (no frame for the link timeout), result_overdue (a result not back by its window's end plus the grace), error (a bad frame or a socket error).",
        );
        for (reason, n) in &self.links_lost {
            sample(
                &mut o,
                "clockwork_worker_links_lost_total",
                &format!("reason=\"{reason}\""),
                n,
            );
        }

        family(
            &mut o,
            "clockwork_auth_refused_total",
            "counter",
            "Requests refused for want of the right API token, by interface and reason (missing, not_bearer, wrong).",
        );
        for (&(interface, reason), n) in &self.auth_refused {
            sample(
                &mut o,
                "clockwork_auth_refused_total",
                &format!("interface=\"{interface}\",reason=\"{reason}\""),
                n,
            );
        }
        family(
            &mut o,
            "clockwork_tls_handshakes_failed_total",
            "counter",
            "Connections closed because their TLS handshake failed or timed out, by interface.",
        );
        for (interface, n) in &self.tls_failed {
            sample(
                &mut o,
                "clockwork_tls_handshakes_failed_total",
                &format!("interface=\"{interface}\""),
                n,
            );
        }

        let errors = [
            ("exec", &st.exec_error),
            ("completion", &st.completion_error),
            ("load", &st.load_error),
        ];
        family(
            &mut o,
            "clockwork_estimator_samples_total",
            "counter",
            "Prediction-error samples: exec (INFER duration), completion (INFER end), load (LOAD duration).",
        );
        for (k, e) in errors {
            sample(
                &mut o,
                "clockwork_estimator_samples_total",
                &format!("estimate=\"{k}\""),
                e.count,
            );
        }
        family(
            &mut o,
            "clockwork_estimator_abs_error_seconds_total",
            "counter",
            "Sum of absolute prediction errors (actual - expected).",
        );
        for (k, e) in errors {
            sample(
                &mut o,
                "clockwork_estimator_abs_error_seconds_total",
                &format!("estimate=\"{k}\""),
                e.sum_abs as f64 * 1e-9,
            );
        }
        family(
            &mut o,
            "clockwork_estimator_mean_error_seconds",
            "gauge",
            "Mean signed prediction error since start (positive: slower than predicted).",
        );
        for (k, e) in errors {
            let mean = if e.count == 0 { 0.0 } else { e.mean() * 1e-9 };
            sample(
                &mut o,
                "clockwork_estimator_mean_error_seconds",
                &format!("estimate=\"{k}\""),
                mean,
            );
        }
        family(
            &mut o,
            "clockwork_estimator_max_overrun_seconds",
            "gauge",
            "Largest overrun (actual above expected) since start.",
        );
        for (k, e) in errors {
            sample(
                &mut o,
                "clockwork_estimator_max_overrun_seconds",
                &format!("estimate=\"{k}\""),
                e.max_over as f64 * 1e-9,
            );
        }

        family(
            &mut o,
            "clockwork_gpu_cache_pages",
            "gauge",
            "Weights-cache pages of each GPU.",
        );
        for (&(w, g), total) in &self.gpus {
            sample(
                &mut o,
                "clockwork_gpu_cache_pages",
                &format!("worker=\"{w}\",gpu=\"{g}\""),
                total,
            );
        }
        family(
            &mut o,
            "clockwork_gpu_cache_free_pages",
            "gauge",
            "Free weights-cache pages of each GPU, as the controller plans them.",
        );
        for &(w, g) in self.gpus.keys() {
            if let Some(free) = sched.free_pages(WorkerId(w), GpuId(g)) {
                sample(
                    &mut o,
                    "clockwork_gpu_cache_free_pages",
                    &format!("worker=\"{w}\",gpu=\"{g}\""),
                    free,
                );
            }
        }
        family(
            &mut o,
            "clockwork_gpu_busy_seconds_total",
            "counter",
            "Worker-measured INFER execution time per GPU (rate() of it is the utilisation).",
        );
        for (&(w, g), b) in &self.busy {
            sample(
                &mut o,
                "clockwork_gpu_busy_seconds_total",
                &format!("worker=\"{w}\",gpu=\"{g}\""),
                secs(b.busy_total),
            );
        }
        family(
            &mut o,
            "clockwork_gpu_utilization_ratio",
            "gauge",
            "Share of the last completed ~1 s window each GPU spent executing (0 when idle for 2 windows).",
        );
        for (&(w, g), b) in &self.busy {
            let fresh = now.saturating_sub(b.last_at) <= UTIL_WINDOW + UTIL_WINDOW;
            let fresh = fresh && now.saturating_sub(b.window_start) <= UTIL_WINDOW + UTIL_WINDOW;
            let v = if fresh { b.last_ratio } else { 0.0 };
            sample(
                &mut o,
                "clockwork_gpu_utilization_ratio",
                &format!("worker=\"{w}\",gpu=\"{g}\""),
                v,
            );
        }
        family(
            &mut o,
            "clockwork_infer_exec_seconds",
            "histogram",
            "Worker-measured INFER execution time.",
        );
        self.exec.render(&mut o, "clockwork_infer_exec_seconds", "");
        family(
            &mut o,
            "clockwork_load_seconds",
            "histogram",
            "Worker-measured LOAD (weights copy) time.",
        );
        self.load.render(&mut o, "clockwork_load_seconds", "");
        family(
            &mut o,
            "clockwork_infer_batch_size",
            "histogram",
            "Executed (padded) batch size of INFERs.",
        );
        self.batch.render(&mut o, "clockwork_infer_batch_size", "");
        family(
            &mut o,
            "clockwork_controller_decision_seconds",
            "histogram",
            "Time spent inside scheduler calls, by entry point.",
        );
        for ((_, name), h) in CALLS.iter().zip(&self.decision) {
            h.render(
                &mut o,
                "clockwork_controller_decision_seconds",
                &format!("call=\"{name}\""),
            );
        }

        family(
            &mut o,
            "clockwork_http_requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status code.",
        );
        for (&(e, c), n) in &self.http {
            sample(
                &mut o,
                "clockwork_http_requests_total",
                &format!("endpoint=\"{e}\",code=\"{c}\""),
                n,
            );
        }
        family(
            &mut o,
            "clockwork_http_request_duration_seconds",
            "histogram",
            "HTTP request handling time (request read to response written), by endpoint.",
        );
        for (e, h) in ENDPOINTS.iter().zip(&self.http_latency) {
            if h.count > 0 {
                h.render(
                    &mut o,
                    "clockwork_http_request_duration_seconds",
                    &format!("endpoint=\"{e}\""),
                );
            }
        }
        let http: [(&str, &str, &str, u64); 4] = [
            (
                "clockwork_http_connections",
                "gauge",
                "Open HTTP connections.",
                self.http_open,
            ),
            (
                "clockwork_http_connections_total",
                "counter",
                "HTTP connections accepted.",
                self.http_accepted,
            ),
            (
                "clockwork_http_connections_refused_total",
                "counter",
                "HTTP connections refused at the connection limit.",
                self.http_refused,
            ),
            (
                "clockwork_http_late_answers_total",
                "counter",
                "Successful inferences whose HTTP answer finished writing after the request's deadline (counted late in the request log too).",
                self.http_late_answers,
            ),
        ];
        for (name, kind, help, v) in http {
            family(&mut o, name, kind, help);
            sample(&mut o, name, "", v);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_le_semantics() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "a=\"b\"");
        assert_eq!(
            s,
            "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 6\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
