//! `clockwork-bench loadgen` against its own sink (`--self-test`): every request is
//! accounted for exactly once, refusals and retries are counted as the sink made
//! them, percentiles are ordered, and bad flags are refused in words. Counts only: no
//! wall-clock assertions.

mod common;

use serde_json::Value;

fn loadgen(args: &[&str]) -> (bool, String, String) {
    common::bench(&[&["loadgen"], args].concat())
}

/// Run and parse the JSON line (the last line of stdout).
fn run_json(args: &[&str]) -> Value {
    common::bench_json(&[&["loadgen"], args].concat()).0
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

fn assert_counts_add_up(v: &Value) {
    assert_eq!(
        u(v, "sent"),
        u(v, "ok") + u(v, "refused") + u(v, "errors"),
        "{v}"
    );
    let classes = v["classes"].as_array().unwrap();
    for k in ["sent", "ok", "refused", "errors", "attempts"] {
        assert_eq!(
            classes.iter().map(|c| u(c, k)).sum::<u64>(),
            u(v, k),
            "{k}: {v}"
        );
    }
    for c in classes.iter().chain(std::iter::once(v)) {
        let p: Vec<f64> = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
            .iter()
            .map(|k| c[*k].as_f64().unwrap())
            .collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{p:?} in {c}");
    }
}

#[test]
fn every_request_is_answered_once_and_refusals_are_the_sinks() {
    let v = run_json(&[
        "--self-test",
        "--arrivals",
        "constant",
        "--rate",
        "2000",
        "--duration",
        "1500ms",
        "--connections",
        "8",
        "--model-count",
        "3",
        "--slo-ms",
        "500,1000",
        "--sink-refuse-every",
        "7",
    ]);
    assert_counts_add_up(&v);
    let sent = u(&v, "sent");
    // 2000/s for 1.5 s at constant gaps.
    assert!((2_990..=3_000).contains(&sent), "{v}");
    assert_eq!(u(&v, "errors"), 0, "{v}");
    assert_eq!(u(&v, "not_sent"), 0, "{v}");
    // No retries: one exchange per request, and every 7th the sink answered was a 429.
    let answered = v["self_test"]["sink_answered"].as_u64().unwrap();
    assert_eq!(answered, sent, "{v}");
    assert_eq!(u(&v, "attempts"), sent, "{v}");
    assert_eq!(u(&v, "refused"), sent / 7, "{v}");
    // Two SLO classes, taken in turn.
    let classes = v["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    assert_eq!(classes[0]["slo_ms"], 500.0);
    assert!(u(&classes[0], "sent").abs_diff(u(&classes[1], "sent")) <= 1);
    // The speed goal is not judged at a target below it.
    assert!(v["self_test"]["goal_pass"].is_null(), "{v}");
}

#[test]
fn retrying_at_once_turns_every_refusal_into_an_answer() {
    let v = run_json(&[
        "--self-test",
        "--rate",
        "1000",
        "--duration",
        "1s",
        "--connections",
        "4",
        "--slo-ms",
        "5000",
        "--retry",
        "at-once",
        "--sink-refuse-every",
        "3",
    ]);
    assert_counts_add_up(&v);
    let sent = u(&v, "sent");
    assert!(sent > 0);
    assert_eq!(u(&v, "ok"), sent, "{v}");
    assert_eq!(u(&v, "refused"), 0, "{v}");
    let attempts = u(&v, "attempts");
    assert_eq!(attempts, v["self_test"]["sink_answered"].as_u64().unwrap());
    // Every 3rd exchange was refused and sent again: attempts = sent * 3/2, give or take one.
    assert!(attempts.abs_diff(sent * 3 / 2) <= 1, "{v}");
}

#[test]
fn closed_loop_clients_keep_their_requests_going() {
    let v = run_json(&[
        "--self-test",
        "--arrivals",
        "closed",
        "--clients",
        "2",
        "--models",
        "a,b,c",
        "--duration",
        "1s",
    ]);
    assert_counts_add_up(&v);
    assert!(u(&v, "sent") > 6, "{v}");
    assert_eq!(u(&v, "errors"), 0, "{v}");
    assert_eq!(v["models"], 3);
}

#[test]
fn trace_files_are_replayed_send_by_send() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("sends.txt");
    std::fs::write(&trace, "# offset model\n0.0 0\n0.1 1\n0.1\n0.25 1\n9.0\n").unwrap();
    let v = run_json(&[
        "--self-test",
        "--arrivals",
        "trace",
        "--trace",
        trace.to_str().unwrap(),
        "--models",
        "x,y",
        "--duration",
        "1s",
    ]);
    assert_counts_add_up(&v);
    // The send at 9 s is after the 1 s run.
    assert_eq!(u(&v, "sent"), 4, "{v}");
    assert_eq!(u(&v, "ok"), 4, "{v}");
}

#[test]
fn bad_flags_are_refused_in_words() {
    for (args, words) in [
        (&["--url", "https://127.0.0.1:1"][..], "only http://"),
        (&["--rate=-5"][..], "--rate"),
        (&["--slo-ms", "0"][..], "--slo-ms"),
        (&["--body", "[1]"][..], "JSON object"),
        (&["--arrivals", "trace"][..], "--trace FILE"),
        (
            &["--url", "http://127.0.0.1:1", "--duration", "1s"][..],
            "cannot connect",
        ),
    ] {
        let (ok, stdout, stderr) = loadgen(args);
        assert!(!ok, "{args:?} succeeded: {stdout}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}
