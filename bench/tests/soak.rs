//! `clockwork-bench soak`: a short run prints one JSON line per interval with each
//! process's RSS and descriptors, p99 and the refusal rate, then a summary line; every
//! request sent is answered.

use serde_json::Value;
use std::process::Command;

#[test]
fn a_short_soak_reports_every_interval_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clockwork-bench"))
        .args([
            "soak",
            "--minutes",
            "0.2",
            "--interval",
            "3s",
            "--workers",
            "1",
            "--gpus-per-worker",
            "1",
            "--models",
            "3",
            "--rate",
            "40",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("EMULATED"), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (summary, intervals) = lines.split_last().unwrap();
    assert!(intervals.len() >= 3, "{lines:?}");
    for iv in intervals {
        let procs = iv["processes"].as_array().unwrap();
        let names: Vec<&str> = procs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["controller", "worker-0"]);
        for p in procs {
            assert!(p["rss_kb"].as_u64().unwrap() > 1_000, "{p}");
            assert!(p["fds"].as_u64().unwrap() > 2, "{p}");
        }
        let rate = iv["refusal_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "{iv}");
        assert!(iv["p99_ms"].as_f64().is_some());
    }
    let answered: u64 = intervals
        .iter()
        .map(|iv| iv["answered"].as_u64().unwrap())
        .sum();
    assert!(answered > 100, "{lines:?}");
    assert_eq!(summary["bench"], "soak");
    assert_eq!(summary["emulated"], true);
    assert_eq!(summary["unanswered"], 0, "{summary}");
    assert!(summary["flat"].is_boolean());
    assert_eq!(summary["processes"].as_array().unwrap().len(), 2);
}
