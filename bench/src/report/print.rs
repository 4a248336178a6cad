//! The human-readable end-of-run report.

use super::summary::{ErrorStats, LatencyStats, PredictionStats, RunReport};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The report as a multi-line table (what [`print_report`] prints).
pub fn format_report(r: &RunReport) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored throughout.
    let gpus = match (r.emulated, r.devices.as_str()) {
        (true, _) => "EMULATED GPUs",
        (false, "") => "real GPUs",
        (false, named) => named,
    };
    let _ = writeln!(
        s,
        "=== Clockwork-RS run report: {} ({}) - {gpus} ===",
        or_dash(&r.workload),
        or_dash(&r.trace_source)
    );
    let row = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "  {k:<22} {v}");
    };
    row(
        &mut s,
        "duration",
        format!(
            "{:.1} s  (requests from {})",
            r.duration_s, r.request_source
        ),
    );
    row(
        &mut s,
        "requests offered",
        format!("{}  ({:.1} r/s)", r.offered, r.offered_rps),
    );
    row(
        &mut s,
        "requests answered",
        format!(
            "{}  ({}; unanswered {})",
            r.answered,
            pct(r.answered, r.offered),
            r.unanswered
        ),
    );
    row(
        &mut s,
        "succeeded",
        format!("{}  (within SLO {})", r.succeeded, r.succeeded_within_slo),
    );
    row(
        &mut s,
        "goodput",
        format!(
            "{:.1} r/s  (throughput {:.1} r/s)",
            r.goodput_rps, r.throughput_rps
        ),
    );
    row(
        &mut s,
        "SLO attainment",
        format!("{:.4}%  (within SLO / offered)", 100.0 * r.slo_attainment),
    );
    // The controller's log says whether it answered after the deadline (what the design
    // rules out); the client's count also includes delays on the client's side.
    let flag = if r.log_late_successes.unwrap_or(r.late_successes) == 0 {
        ""
    } else {
        "  <-- !"
    };
    match r.log_late_successes.filter(|_| r.request_source == "client") {
        Some(n) => row(
            &mut s,
            "late successes",
            format!(
                "{n} answered after the deadline by the controller (target 0){flag}; {} seen over the SLO by the client",
                r.late_successes
            ),
        ),
        None => row(&mut s, "late successes", format!("{} (target 0){flag}", r.late_successes)),
    }
    row(&mut s, "SLOs", slos(&r.slos_ms));
    row(
        &mut s,
        "latency (successes)",
        latency(&LatencyStats {
            count: r.succeeded,
            mean_ms: r.mean_ms,
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
            p999_ms: r.p999_ms,
            p9999_ms: r.p9999_ms,
            max_ms: r.max_ms,
        }),
    );
    row(&mut s, "latency (all answered)", latency(&r.all_latency));
    row(&mut s, "rejections", counts(&r.rejections_by_cause));
    row(&mut s, "worker failures", counts(&r.failures_by_status));
    row(&mut s, "timeouts", r.timeouts.to_string());
    row(&mut s, "cold starts", opt(r.cold_starts));
    row(
        &mut s,
        "LOADs / UNLOADs",
        match (r.loads, r.unloads) {
            (Some(l), Some(u)) => format!("{l} ({} failed) / {u}", r.load_failures.unwrap_or(0)),
            _ => "- (no action log)".to_owned(),
        },
    );
    row(
        &mut s,
        "INFERs",
        match r.infer_actions {
            Some(n) => format!(
                "{n} ({} failed), mean batch {:.2}",
                r.infer_failures.unwrap_or(0),
                r.mean_batch.unwrap_or(0.0)
            ),
            None => "- (no action log)".to_owned(),
        },
    );
    row(
        &mut s,
        "prediction error INFER",
        error(r.infer_prediction_error_us.as_ref()),
    );
    if let Some(p) = &r.infer_prediction {
        row(&mut s, "INFER |actual-pred|", prediction(p));
        for (b, p) in &r.infer_prediction_by_batch {
            row(&mut s, &format!("  batch {b}"), prediction(p));
        }
    }
    row(
        &mut s,
        "prediction error LOAD",
        error(r.load_prediction_error_us.as_ref()),
    );
    row(
        &mut s,
        "completion error INFER",
        error(r.completion_error_us.as_ref()),
    );
    row(
        &mut s,
        "completion error LOAD",
        error(r.load_completion_error_us.as_ref()),
    );
    row(
        &mut s,
        "controller CPU",
        match r.controller_cpu_s_per_request {
            Some(c) => format!("{:.2} us/request", c * 1e6),
            None => "not measured".to_owned(),
        },
    );
    if let Some(c) = &r.output_check {
        let flag = if c.mismatches == 0 { "" } else { "  <-- !" };
        row(
            &mut s,
            "outputs checked",
            format!(
                "{} answers, {} mismatches{flag} (bitwise, against {})",
                c.checked, c.mismatches, c.against
            ),
        );
    }
    if r.emulated {
        let _ = writeln!(
            s,
            "  (EMULATED GPUs: timings come from profiles, not from a device)"
        );
    }
    s
}

/// Print [`format_report`] to stdout.
pub fn print_report(r: &RunReport) {
    print!("{}", format_report(r));
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}%", 100.0 * a as f64 / b as f64)
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "- (no request log)".to_owned(), |n| n.to_string())
}

fn latency(l: &LatencyStats) -> String {
    if l.count == 0 {
        return "- (none)".to_owned();
    }
    format!(
        "p50 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3} ms  (n {})",
        l.p50_ms, l.p99_ms, l.p999_ms, l.p9999_ms, l.max_ms, l.count
    )
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".to_owned();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn slos(v: &[f64]) -> String {
    match v {
        [] => "-".to_owned(),
        [one] => format!("{one} ms"),
        many if many.len() <= 6 => {
            let list: Vec<String> = many.iter().map(f64::to_string).collect();
            format!("{} ms", list.join(", "))
        }
        many => format!(
            "{} distinct, {} .. {} ms",
            many.len(),
            many[0],
            many[many.len() - 1]
        ),
    }
}

fn prediction(p: &PredictionStats) -> String {
    format!(
        "p50 {:.1}  p99 {:.1} us;  actual/predicted p50 {:.3}  p99 {:.3}  (n {})",
        p.abs_p50_us, p.abs_p99_us, p.ratio_p50, p.ratio_p99, p.count
    )
}

fn error(e: Option<&ErrorStats>) -> String {
    match e {
        None => "- (no data)".to_owned(),
        Some(e) => format!(
            "p1 {:+.1}  p50 {:+.1}  p99 {:+.1}  min {:+.1}  max {:+.1} us  (mean |e| {:.1} us, n {})",
            e.p1_us, e.p50_us, e.p99_us, e.min_us, e.max_us, e.mean_abs_us, e.count
        ),
    }
}
