//! The run summary: [`RunReport`], computed from client-side samples, the controller's
//! logs, or both.

use super::logs::RunLogs;
use super::status::{self, UNANSWERED};
use clockwork_core::telemetry::ActionLog;
use clockwork_core::{ClientStatus, StatusGroup};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest timeline kept, in seconds (~11.6 days): events past it count in the
/// totals but not in [`RunReport::timeline`] (a guard against a bogus timestamp).
pub const MAX_TIMELINE_SECONDS: u64 = 1_000_000;

/// The most distinct SLOs listed in [`RunReport::slos_ms`].
pub const MAX_LISTED_SLOS: usize = 32;

/// Highest latency the histograms resolve (1 h); longer ones saturate there.
const HIST_MAX_NS: u64 = 3_600_000_000_000;

/// What the load driver saw of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSample {
    /// When it was sent, ns from the start of the run.
    pub sent_at_ns: u64,
    /// Send to answer, as the client measured it (0 when unanswered).
    pub latency_ns: u64,
    /// `ClientStatus::code`, or [`UNANSWERED`].
    pub status_code: u16,
    /// The model (instance) id.
    pub model: u32,
    /// The request's SLO.
    pub slo_ns: u64,
}

impl ClientSample {
    /// A request that was answered with `status` after `latency_ns`.
    pub fn answered(
        sent_at_ns: u64,
        latency_ns: u64,
        status: ClientStatus,
        model: u32,
        slo_ns: u64,
    ) -> Self {
        Self {
            sent_at_ns,
            latency_ns,
            status_code: status.code(),
            model,
            slo_ns,
        }
    }

    /// A request that got no answer before the run ended.
    pub fn unanswered(sent_at_ns: u64, model: u32, slo_ns: u64) -> Self {
        Self {
            sent_at_ns,
            latency_ns: 0,
            status_code: UNANSWERED,
            model,
            slo_ns,
        }
    }

    /// True unless it is [`ClientSample::unanswered`].
    pub fn is_answered(&self) -> bool {
        self.status_code != UNANSWERED
    }

    /// Answered with success (within its SLO or not).
    pub fn is_success(&self) -> bool {
        self.status_code == ClientStatus::Success.code()
    }

    /// Answered with success, but after its SLO: a late success (the target is none).
    pub fn is_late(&self) -> bool {
        self.is_success() && self.latency_ns > self.slo_ns
    }

    /// Answered with success within its SLO: counts towards goodput.
    pub fn met_slo(&self) -> bool {
        self.is_success() && self.latency_ns <= self.slo_ns
    }
}

/// What the report says about the run that the data cannot: labels, the configuration
/// and what the driver measured itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunMeta {
    /// Workload label (e.g. `azure`, `poisson`).
    pub workload: String,
    /// Where the arrivals came from (e.g. `synthetic azure-like, seed 1`, a trace path).
    pub trace_source: String,
    /// The GPUs were emulated (the figures then say so).
    pub emulated: bool,
    /// The run's length; `None`: from the data (last answer or log event).
    pub duration_s: Option<f64>,
    /// Free-form configuration, copied into the report.
    pub config: serde_json::Value,
    /// Controller CPU time per request, when the driver measured it.
    pub controller_cpu_s_per_request: Option<f64>,
    /// The controller-clock time (ns) the logs' timeline starts at; `None`: the first
    /// request's arrival in the request log (or the first action sent, without
    /// requests). Log events before it count in the totals but not the timeline.
    pub log_origin_ns: Option<u64>,
}

/// The data a report is computed from. Request-level numbers come from `client` when
/// present, otherwise from the request log; action-level ones need the logs.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    /// The load driver's samples, one per request sent.
    pub client: Option<Vec<ClientSample>>,
    /// The controller's telemetry logs.
    pub logs: Option<RunLogs>,
}

/// Latency percentiles, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Requests counted.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// Maximum (exact).
    pub max_ms: f64,
}

/// A signed error distribution (actual − expected), in µs. Positive: slower or later
/// than predicted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Actions counted.
    pub count: u64,
    /// Most negative.
    pub min_us: f64,
    /// 1st percentile.
    pub p1_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Most positive.
    pub max_us: f64,
    /// Mean of the absolute error.
    pub mean_abs_us: f64,
}

impl ErrorStats {
    /// The statistics of `errors_ns` (sorted in place). `None` when empty.
    pub fn of(errors_ns: &mut [i64]) -> Option<Self> {
        if errors_ns.is_empty() {
            return None;
        }
        errors_ns.sort_unstable();
        let us = |ns: i64| ns as f64 / 1e3;
        let abs_sum: f64 = errors_ns.iter().map(|e| e.unsigned_abs() as f64).sum();
        Some(Self {
            count: errors_ns.len() as u64,
            min_us: us(errors_ns[0]),
            p1_us: us(errors_ns[rank(errors_ns.len(), 0.01)]),
            p50_us: us(errors_ns[rank(errors_ns.len(), 0.5)]),
            p99_us: us(errors_ns[rank(errors_ns.len(), 0.99)]),
            max_us: us(errors_ns[errors_ns.len() - 1]),
            mean_abs_us: abs_sum / errors_ns.len() as f64 / 1e3,
        })
    }
}

/// How far actual INFER durations were from the controller's predictions, as sizes
/// (|actual − predicted|, µs) and as ratios (actual / predicted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionStats {
    /// Actions counted.
    pub count: u64,
    /// Median of |actual − predicted|.
    pub abs_p50_us: f64,
    /// 99th percentile of |actual − predicted|.
    pub abs_p99_us: f64,
    /// Median of actual / predicted.
    pub ratio_p50: f64,
    /// 99th percentile of actual / predicted.
    pub ratio_p99: f64,
}

impl PredictionStats {
    /// The statistics of `(predicted, actual)` pairs in ns; `None` when empty. Pairs
    /// with a zero prediction count in the absolute error only (their ratio is
    /// undefined).
    pub fn of(pairs: &[(u64, u64)]) -> Option<Self> {
        if pairs.is_empty() {
            return None;
        }
        let mut abs: Vec<u64> = pairs.iter().map(|&(p, a)| p.abs_diff(a)).collect();
        abs.sort_unstable();
        let mut ratios: Vec<f64> = pairs
            .iter()
            .filter(|&&(p, _)| p > 0)
            .map(|&(p, a)| a as f64 / p as f64)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let q = |v: &[f64], q: f64| {
            if v.is_empty() {
                f64::NAN
            } else {
                v[rank(v.len(), q)]
            }
        };
        Some(Self {
            count: pairs.len() as u64,
            abs_p50_us: abs[rank(abs.len(), 0.5)] as f64 / 1e3,
            abs_p99_us: abs[rank(abs.len(), 0.99)] as f64 / 1e3,
            ratio_p50: q(&ratios, 0.5),
            ratio_p99: q(&ratios, 0.99),
        })
    }
}

/// Answers whose outputs the driver compared bit for bit with a direct run of the same
/// input (real devices only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputCheck {
    /// Answers compared.
    pub checked: u64,
    /// Of them, answers whose bytes differ from the direct run's.
    pub mismatches: u64,
    /// What they were compared with, in words.
    pub against: String,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the start of the run.
    pub t_s: u64,
    /// Requests sent in this second.
    pub offered: u64,
    /// Requests answered in this second (any status).
    pub answered: u64,
    /// Successes answered in this second (throughput).
    pub succeeded: u64,
    /// Successes within their SLO answered in this second (goodput).
    pub goodput: u64,
    /// Median latency of this second's successes (0 without any).
    pub p50_ms: f64,
    /// 99th percentile latency of this second's successes (0 without any).
    pub p99_ms: f64,
    /// Requests arriving in this second while their model was cold (request log).
    pub cold_starts: u64,
    /// LOADs finishing in this second (action log).
    pub loads: u64,
    /// UNLOADs finishing in this second (action log).
    pub unloads: u64,
    /// Successful INFERs finishing in this second (action log).
    pub infers: u64,
    /// Their mean batch size (0 without any).
    pub mean_batch: f64,
}

/// The summary of one run, written as `report.json` and printed at the end.
///
/// Latency fields without a prefix are over successful requests; [`Self::all_latency`]
/// is over every answered one. Counts come from [`Self::request_source`]. Fields that
/// need the logs are `None` without them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Workload label.
    pub workload: String,
    /// Arrival source label.
    pub trace_source: String,
    /// The GPUs were emulated.
    pub emulated: bool,
    /// What executed the requests, in words: `EMULATED GPUs`, `real GPUs`, or what the
    /// driver set (e.g. `real (CPU, tract)`).
    #[serde(default)]
    pub devices: String,
    /// Run length the rates are over.
    pub duration_s: f64,
    /// Where request counts came from: `client`, `request_log`, or `none`.
    pub request_source: String,
    /// Requests sent.
    pub offered: u64,
    /// Requests answered (any status).
    pub answered: u64,
    /// Requests never answered.
    pub unanswered: u64,
    /// Requests answered with success (within their SLO or not).
    pub succeeded: u64,
    /// Successes within their SLO.
    pub succeeded_within_slo: u64,
    /// Successes answered after their deadline (client: latency > SLO; log: result 0
    /// and `deadline_met` 0). The target is 0.
    pub late_successes: u64,
    /// `succeeded_within_slo / offered` (0 when nothing was offered).
    pub slo_attainment: f64,
    /// Successes within SLO per second.
    pub goodput_rps: f64,
    /// Successes per second.
    pub throughput_rps: f64,
    /// Requests offered per second.
    pub offered_rps: f64,
    /// Successful requests: median latency.
    pub p50_ms: f64,
    /// Successful requests: 99th percentile.
    pub p99_ms: f64,
    /// Successful requests: 99.9th percentile.
    pub p999_ms: f64,
    /// Successful requests: 99.99th percentile.
    pub p9999_ms: f64,
    /// Successful requests: maximum.
    pub max_ms: f64,
    /// Successful requests: mean.
    pub mean_ms: f64,
    /// Every answered request.
    pub all_latency: LatencyStats,
    /// Answered requests by status name (`Success(0)`, `Timeout(4)`, ...); sums to
    /// `answered`.
    pub status_counts: BTreeMap<String, u64>,
    /// Requests the controller refused up front or could not serve in time (the
    /// [`StatusGroup::Refused`] and [`StatusGroup::Late`] statuses), by status name.
    pub rejections_by_cause: BTreeMap<String, u64>,
    /// Requests that failed ([`StatusGroup::Failed`]: their INFER failed on a worker, a
    /// generic error, or a code no status has), by status name.
    pub failures_by_status: BTreeMap<String, u64>,
    /// Requests answered `Timeout(4)`.
    pub timeouts: u64,
    /// The distinct SLOs of the requests, in ms, ascending (at most
    /// [`MAX_LISTED_SLOS`]).
    pub slos_ms: Vec<f64>,
    /// Late successes according to the request log (also when `request_source` is
    /// `client`, where client-measured latency includes the network).
    pub log_late_successes: Option<u64>,
    /// Requests that arrived while their model was cold (request log).
    pub cold_starts: Option<u64>,
    /// LOAD actions (action log), failed ones included.
    pub loads: Option<u64>,
    /// LOAD actions that failed.
    pub load_failures: Option<u64>,
    /// UNLOAD actions.
    pub unloads: Option<u64>,
    /// INFER actions, failed ones included.
    pub infer_actions: Option<u64>,
    /// INFER actions that failed.
    pub infer_failures: Option<u64>,
    /// Mean batch size of successful INFERs.
    pub mean_batch: Option<f64>,
    /// Successful INFERs: `worker_exec_duration − expected_exec_duration`.
    pub infer_prediction_error_us: Option<ErrorStats>,
    /// Successful INFERs: |actual − predicted| and actual / predicted duration.
    #[serde(default)]
    pub infer_prediction: Option<PredictionStats>,
    /// The same per batch size (as logged: the requests in the batch).
    #[serde(default)]
    pub infer_prediction_by_batch: BTreeMap<u32, PredictionStats>,
    /// Successful LOADs: `worker_exec_duration − expected_exec_duration`.
    pub load_prediction_error_us: Option<ErrorStats>,
    /// Successful INFERs: `worker_exec_complete − expected_exec_complete`.
    pub completion_error_us: Option<ErrorStats>,
    /// Successful LOADs: `worker_exec_complete − expected_exec_complete`.
    pub load_completion_error_us: Option<ErrorStats>,
    /// Controller CPU seconds per request (measured by the driver).
    pub controller_cpu_s_per_request: Option<f64>,
    /// Outputs compared with a direct run (set by the driver; real devices only).
    #[serde(default)]
    pub output_check: Option<OutputCheck>,
    /// The driver's configuration, free-form.
    pub config: serde_json::Value,
    /// Per-second series from the start of the run.
    pub timeline: Vec<SecondStats>,
}

/// One request as the report sees it, from either source. Times relative to the run's
/// start (`None`: before it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req {
    pub(crate) sent_ns: Option<u64>,
    pub(crate) latency_ns: u64,
    pub(crate) code: u16,
    pub(crate) slo_ns: u64,
    /// Success after the deadline.
    pub(crate) late: bool,
}

impl Req {
    pub(crate) fn answered(&self) -> bool {
        self.code != UNANSWERED
    }

    pub(crate) fn success(&self) -> bool {
        self.code == ClientStatus::Success.code()
    }

    fn done_ns(&self) -> Option<u64> {
        self.sent_ns.map(|s| s.saturating_add(self.latency_ns))
    }
}

/// Where request-level numbers come from.
pub(crate) fn request_source(data: &RunData) -> &'static str {
    match (&data.client, &data.logs) {
        (Some(_), _) => "client",
        (None, Some(_)) => "request_log",
        (None, None) => "none",
    }
}

/// The controller-clock origin of the logs' timeline.
pub(crate) fn log_origin(meta: &RunMeta, logs: &RunLogs) -> u64 {
    if let Some(o) = meta.log_origin_ns {
        return o;
    }
    logs.requests
        .iter()
        .map(|r| r.arrival().get())
        .min()
        .or_else(|| logs.actions.iter().map(|a| a.sent().get()).min())
        .unwrap_or(0)
}

/// Every request of the run, from the source [`request_source`] picks.
pub(crate) fn requests<'a>(
    meta: &RunMeta,
    data: &'a RunData,
) -> Box<dyn Iterator<Item = Req> + 'a> {
    if let Some(client) = &data.client {
        return Box::new(client.iter().map(|s| Req {
            sent_ns: Some(s.sent_at_ns),
            latency_ns: s.latency_ns,
            code: s.status_code,
            slo_ns: s.slo_ns,
            late: s.is_late(),
        }));
    }
    if let Some(logs) = &data.logs {
        let origin = log_origin(meta, logs);
        return Box::new(logs.requests.iter().map(move |r| Req {
            sent_ns: r.arrival().get().checked_sub(origin),
            latency_ns: r.latency.get(),
            code: r.result,
            slo_ns: r.slo.get(),
            late: r.late_success(),
        }));
    }
    Box::new(std::iter::empty())
}

/// A latency histogram in ns (1 ns to 1 h, 3 significant digits).
pub(crate) fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).unwrap_or_else(|_| unreachable!())
}

/// Latency histograms of the successful and of all answered requests.
pub(crate) fn latency_histograms(
    meta: &RunMeta,
    data: &RunData,
) -> (Histogram<u64>, Histogram<u64>) {
    let mut success = latency_histogram();
    let mut all = latency_histogram();
    for r in requests(meta, data).filter(Req::answered) {
        let v = r.latency_ns.max(1);
        all.saturating_record(v);
        if r.success() {
            success.saturating_record(v);
        }
    }
    (success, all)
}

/// Nearest-rank index of quantile `q` among `n > 0` sorted values.
pub(crate) fn rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n) - 1
}

fn stats_of(h: &Histogram<u64>, exact_max_ns: u64) -> LatencyStats {
    if h.is_empty() {
        return LatencyStats::default();
    }
    let max_ms = exact_max_ns as f64 / 1e6;
    let q = |q: f64| (h.value_at_quantile(q) as f64 / 1e6).min(max_ms);
    LatencyStats {
        count: h.len(),
        mean_ms: h.mean() / 1e6,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        p9999_ms: q(0.9999),
        max_ms,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The timeline slot of second `s`, growing the timeline (up to the cap).
fn slot(timeline: &mut Vec<SecondStats>, s: u64) -> Option<&mut SecondStats> {
    if s >= MAX_TIMELINE_SECONDS {
        return None;
    }
    let i = s as usize;
    if timeline.len() <= i {
        let from = timeline.len() as u64;
        timeline.extend((from..=s).map(|t_s| SecondStats {
            t_s,
            ..SecondStats::default()
        }));
    }
    timeline.get_mut(i)
}

impl RunReport {
    /// Compute the report of a run.
    pub fn compute(meta: &RunMeta, data: &RunData) -> Self {
        let mut r = Self {
            workload: meta.workload.clone(),
            trace_source: meta.trace_source.clone(),
            emulated: meta.emulated,
            devices: if meta.emulated {
                "EMULATED GPUs"
            } else {
                "real GPUs"
            }
            .to_owned(),
            request_source: request_source(data).to_owned(),
            controller_cpu_s_per_request: meta.controller_cpu_s_per_request,
            config: meta.config.clone(),
            ..Self::default()
        };
        let mut timeline: Vec<SecondStats> = Vec::new();
        let mut last_ns = 0u64;

        // Request-level: counts, histograms, per-second counts.
        let (mut h_success, mut h_all) = (latency_histogram(), latency_histogram());
        let (mut max_success, mut max_all) = (0u64, 0u64);
        let mut codes: BTreeMap<u16, u64> = BTreeMap::new();
        let mut slos: BTreeSet<u64> = BTreeSet::new();
        for q in requests(meta, data) {
            r.offered += 1;
            if slos.len() < MAX_LISTED_SLOS || slos.contains(&q.slo_ns) {
                slos.insert(q.slo_ns);
            }
            if let Some(t) = q
                .sent_ns
                .and_then(|s| slot(&mut timeline, s / 1_000_000_000))
            {
                t.offered += 1;
            }
            if !q.answered() {
                r.unanswered += 1;
                continue;
            }
            r.answered += 1;
            *codes.entry(q.code).or_default() += 1;
            let v = q.latency_ns.max(1);
            h_all.saturating_record(v);
            max_all = max_all.max(q.latency_ns);
            let done = q.done_ns();
            if let Some(d) = done {
                last_ns = last_ns.max(d);
            }
            if let Some(t) = done.and_then(|d| slot(&mut timeline, d / 1_000_000_000)) {
                t.answered += 1;
                if q.success() {
                    t.succeeded += 1;
                    t.goodput += u64::from(!q.late);
                }
            }
            if q.success() {
                r.succeeded += 1;
                r.late_successes += u64::from(q.late);
                h_success.saturating_record(v);
                max_success = max_success.max(q.latency_ns);
            }
        }
        r.succeeded_within_slo = r.succeeded - r.late_successes;
        r.slos_ms = slos.iter().map(|&s| s as f64 / 1e6).collect();
        for (&code, &n) in &codes {
            let name = status::status_name(code);
            *r.status_counts.entry(name.clone()).or_default() += n;
            match status::group(code) {
                StatusGroup::Refused | StatusGroup::Late => {
                    *r.rejections_by_cause.entry(name).or_default() += n;
                }
                StatusGroup::Failed => *r.failures_by_status.entry(name).or_default() += n,
                StatusGroup::Success => {}
            }
        }
        r.timeouts = codes
            .get(&ClientStatus::Timeout.code())
            .copied()
            .unwrap_or(0);
        let s = stats_of(&h_success, max_success);
        (
            r.p50_ms, r.p99_ms, r.p999_ms, r.p9999_ms, r.max_ms, r.mean_ms,
        ) = (
            s.p50_ms, s.p99_ms, s.p999_ms, s.p9999_ms, s.max_ms, s.mean_ms,
        );
        r.all_latency = stats_of(&h_all, max_all);
        per_second_latency(meta, data, &mut timeline);

        if let Some(logs) = &data.logs {
            last_ns = last_ns.max(r.add_logs(meta, logs, &mut timeline));
        }

        r.duration_s = meta.duration_s.unwrap_or(last_ns as f64 / 1e9).max(0.0);
        let want = (r.duration_s.ceil() as u64).min(MAX_TIMELINE_SECONDS);
        if want > 0 {
            slot(&mut timeline, want - 1);
        }
        r.timeline = timeline;
        r.slo_attainment = ratio(r.succeeded_within_slo as f64, r.offered as f64);
        r.goodput_rps = ratio(r.succeeded_within_slo as f64, r.duration_s);
        r.throughput_rps = ratio(r.succeeded as f64, r.duration_s);
        r.offered_rps = ratio(r.offered as f64, r.duration_s);
        r
    }

    /// The log-derived fields; returns the last log event's time relative to the origin.
    fn add_logs(&mut self, meta: &RunMeta, logs: &RunLogs, timeline: &mut Vec<SecondStats>) -> u64 {
        let origin = log_origin(meta, logs);
        let second = |t: u64| t.checked_sub(origin).map(|d| d / 1_000_000_000);
        let mut last = 0u64;
        let (mut cold, mut late) = (0u64, 0u64);
        for q in &logs.requests {
            last = last.max(q.t.get().saturating_sub(origin));
            late += u64::from(q.late_success());
            if q.is_coldstart {
                cold += 1;
                if let Some(t) = second(q.arrival().get()).and_then(|s| slot(timeline, s)) {
                    t.cold_starts += 1;
                }
            }
        }
        self.cold_starts = Some(cold);
        self.log_late_successes = Some(late);

        let (mut loads, mut load_fail, mut unloads, mut infers, mut infer_fail) = (0, 0, 0, 0, 0);
        let (mut batch_sum, mut batch_n) = (0u64, 0u64);
        let (mut infer_pred, mut load_pred, mut infer_done, mut load_done) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut batch_by_second: Vec<u64> = Vec::new();
        let mut infer_pairs: Vec<(u64, u64)> = Vec::new();
        let mut infer_pairs_by_batch: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for a in &logs.actions {
            last = last.max(a.t.get().saturating_sub(origin));
            let t = second(a.t.get()).and_then(|s| slot(timeline, s));
            match a.action_type {
                ActionLog::LOAD => {
                    loads += 1;
                    load_fail += u64::from(!a.succeeded());
                    load_pred.extend(a.prediction_error_ns());
                    load_done.extend(a.completion_error_ns());
                    if let Some(t) = t {
                        t.loads += 1;
                    }
                }
                ActionLog::UNLOAD => {
                    unloads += 1;
                    if let Some(t) = t {
                        t.unloads += 1;
                    }
                }
                ActionLog::INFER => {
                    infers += 1;
                    infer_fail += u64::from(!a.succeeded());
                    infer_pred.extend(a.prediction_error_ns());
                    infer_done.extend(a.completion_error_ns());
                    if a.succeeded() {
                        let pair = (a.expected_exec_duration.get(), a.worker_exec_duration.get());
                        infer_pairs.push(pair);
                        infer_pairs_by_batch
                            .entry(a.batch_size)
                            .or_default()
                            .push(pair);
                        batch_sum += u64::from(a.batch_size);
                        batch_n += 1;
                        if let Some(t) = t {
                            t.infers += 1;
                            let i = t.t_s as usize;
                            if batch_by_second.len() <= i {
                                batch_by_second.resize(i + 1, 0);
                            }
                            batch_by_second[i] += u64::from(a.batch_size);
                        }
                    }
                }
                _ => {}
            }
        }
        for (t, &sum) in timeline.iter_mut().zip(&batch_by_second) {
            t.mean_batch = ratio(sum as f64, t.infers as f64);
        }
        self.loads = Some(loads);
        self.load_failures = Some(load_fail);
        self.unloads = Some(unloads);
        self.infer_actions = Some(infers);
        self.infer_failures = Some(infer_fail);
        self.mean_batch = Some(ratio(batch_sum as f64, batch_n as f64));
        self.infer_prediction_error_us = ErrorStats::of(&mut infer_pred);
        self.load_prediction_error_us = ErrorStats::of(&mut load_pred);
        self.infer_prediction = PredictionStats::of(&infer_pairs);
        self.infer_prediction_by_batch = infer_pairs_by_batch
            .iter()
            .filter_map(|(&b, pairs)| PredictionStats::of(pairs).map(|s| (b, s)))
            .collect();
        self.completion_error_us = ErrorStats::of(&mut infer_done);
        self.load_completion_error_us = ErrorStats::of(&mut load_done);
        last
    }
}

/// Fill each second's p50 / p99 of its successes (exact, nearest rank), bucketing the
/// latencies by completion second with a counting sort.
fn per_second_latency(meta: &RunMeta, data: &RunData, timeline: &mut [SecondStats]) {
    let done_second = |q: &Req| {
        q.done_ns()
            .map(|d| (d / 1_000_000_000) as usize)
            .filter(|&s| s < timeline.len())
    };
    let mut start = vec![0usize; timeline.len() + 1];
    for q in requests(meta, data).filter(Req::success) {
        if let Some(s) = done_second(&q) {
            start[s + 1] += 1;
        }
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut next = start.clone();
    let mut lat = vec![0u64; start[timeline.len()]];
    for q in requests(meta, data).filter(Req::success) {
        if let Some(s) = done_second(&q) {
            lat[next[s]] = q.latency_ns;
            next[s] += 1;
        }
    }
    for (s, t) in timeline.iter_mut().enumerate() {
        let v = &mut lat[start[s]..start[s + 1]];
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        t.p50_ms = v[rank(v.len(), 0.5)] as f64 / 1e6;
        t.p99_ms = v[rank(v.len(), 0.99)] as f64 / 1e6;
    }
}
