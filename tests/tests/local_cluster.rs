//! A small local cluster (controller + 2 emulated workers, real processes, real loopback
//! TCP) driven through every workload type: every request sent gets exactly one
//! answer, and the answers' statuses add up.

use clockwork_tests::bench_binary;
use std::process::Command;

/// One cluster at a time: each is three processes, and the machine may have two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(workload: &str, models: &str, extra: &[&str]) -> serde_json::Value {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bin = bench_binary().expect("clockwork-bench binary");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec![
        "local",
        "--workload",
        workload,
        "--workers",
        "2",
        "--gpus-per-worker",
        "1",
        "--models",
        models,
        "--duration",
        "3s",
        "--rate",
        "120",
        "--active",
        "4",
        "--concurrency",
        "2",
    ];
    args.extend_from_slice(extra);
    let o = Command::new(&bin)
        .args(&args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{workload}: exit {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The controller's logs are there too.
    assert!(out.join("clockwork_request_log.tsv").exists());
    assert!(out.join("clockwork_action_log.tsv").exists());
    report
}

fn check_accounting(workload: &str, models: &str) {
    let r = run(workload, models, &[]);
    let offered = r["offered"].as_u64().unwrap();
    let answered = r["answered"].as_u64().unwrap();
    assert!(offered > 0, "{workload}: nothing offered: {r}");
    assert_eq!(offered, answered, "{workload}: offered != answered: {r}");
    assert_eq!(r["unanswered"].as_u64(), Some(0), "{workload}: {r}");
    let statuses: u64 = r["status_counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        statuses, answered,
        "{workload}: statuses do not add up: {r}"
    );
    // The controller never answers a success after its deadline (its request log says
    // so); the client-side count can include the client's own delays on a busy machine.
    assert_eq!(
        r["log_late_successes"].as_u64(),
        Some(0),
        "{workload}: late successes: {r}"
    );
    assert_eq!(r["emulated"].as_bool(), Some(true));
    let succeeded = r["succeeded"].as_u64().unwrap();
    assert!(succeeded > 0, "{workload}: no request succeeded: {r}");
}

#[test]
fn azure_trace_replay() {
    check_accounting("azure", "40");
}

#[test]
fn poisson_open_loop() {
    check_accounting("poisson", "40");
}

#[test]
fn fixed_rate_open_loop() {
    check_accounting("fixed-rate", "40");
}

#[test]
fn closed_loop() {
    check_accounting("closed", "40");
}

#[test]
fn bursty() {
    check_accounting("bursty", "40");
}

#[test]
fn slo_sweep() {
    check_accounting("slo-sweep", "40");
}

#[test]
fn fill_memory() {
    check_accounting("fill-memory", "411");
}

#[test]
fn ramp() {
    check_accounting("ramp", "40");
}

#[test]
fn bad_flags_are_refused_in_words() {
    let bin = bench_binary().expect("clockwork-bench binary");
    let o = Command::new(&bin)
        .args(["local", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--workers"), "{err}");
    let o = Command::new(&bin)
        .args(["local", "--duration", "soon"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("duration"));
}
